/*
 * Private to the control-flow family (src/eval/ctrl_*.c): Constant and the
 * operators that run subgraphs (If, Loop, Scan), whose shape steps do all
 * the work because their outputs' shapes are known only once a subgraph
 * has run. Not part of the evaluator API.
 */
#ifndef BNF_EVAL_CTRL_OPS_H
#define BNF_EVAL_CTRL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "eval/op.h"

/* Loops stop with an error after this many iterations: a body whose
 * condition never turns false must not hang the check. */
#ifndef BNF_MAX_LOOP_ITERATIONS
#define BNF_MAX_LOOP_ITERATIONS ((int64_t)(BNF_MAX_ELEMENTS / 128))
#endif

/* The graph-valued attribute `name` of the node, or NULL with err set. */
const Onnx__GraphProto *bnf_ctrl_graph_attr(const struct bnf_op_ctx *ctx, const char *name);

/* A new scalar (rank 0) tensor; NULL with err set. */
struct bnf_tensor *bnf_ctrl_scalar_int64(int64_t v, struct bnf_error *err);
struct bnf_tensor *bnf_ctrl_scalar_bool(int v, struct bnf_error *err);

/* Whether a one-element tensor is true (non-zero); err set and -1 when t
 * has not exactly one element. */
int bnf_ctrl_truth(const struct bnf_tensor *t, const char *what, struct bnf_error *err);

/* Element type of a graph output as declared, or float when undeclared
 * (what an empty loop's scan output takes). */
int bnf_ctrl_declared_dtype(const Onnx__ValueInfoProto *vi);

/* Stack n tensors of one dtype and shape along a new axis `axis` (0 ..
 * rank), in order, or reversed. NULL with err set on a shape mismatch or
 * no memory. */
struct bnf_tensor *bnf_ctrl_stack(struct bnf_tensor *const *parts, size_t n, int axis, int reverse,
                                  struct bnf_error *err);

/* Element `index` of t along `axis`, that axis dropped: a new tensor. */
struct bnf_tensor *bnf_ctrl_slice(const struct bnf_tensor *t, int axis, int64_t index,
                                  struct bnf_error *err);

/* The steps of the family's rows (ctrl_table.c). */
int bnf_ctrl_constant_shape(struct bnf_op_ctx *ctx);
int bnf_ctrl_if_shape(struct bnf_op_ctx *ctx);
int bnf_ctrl_loop_shape(struct bnf_op_ctx *ctx);
int bnf_ctrl_scan_shape(struct bnf_op_ctx *ctx);
int bnf_ctrl_done_compute(struct bnf_op_ctx *ctx);

#endif
