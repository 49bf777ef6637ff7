/*
 * The eval-mode reference evaluator: runs an ONNX graph on given inputs.
 * BatchNormalization always uses its running statistics, whatever its
 * training_mode says; Dropout is the identity.
 */
#ifndef BNF_EVAL_H
#define BNF_EVAL_H

#include <stddef.h>

#include "util/error.h"
#include "eval/tensor.h"
#include "onnx.pb-c.h"

struct bnf_external;

struct bnf_eval_options {
	int threads;                    /* >= 1 */
	int promote_double;             /* compute every float tensor (inputs, initializers,
	                                   constants) in float64: the reference run */
	size_t max_bytes;               /* refuse graphs whose live tensors would exceed
	                                   this many bytes (0: no limit) */
	const struct bnf_external *ext; /* reads external tensor data
	                                   (external.h); NULL: refused */
	int shapes_only;                /* a probe of the shapes: nodes that read a
	                                   value derived from a graph input run
	                                   their shape step only (outputs hold no
	                                   values), the others (constants, Shape
	                                   and what is computed from them) run
	                                   whole; costs allocations, not arithmetic */
};

/* Subgraphs (If, Loop, Scan bodies) nested deeper than this are refused. */
#define BNF_EVAL_MAX_DEPTH 64

/* Name every operator of the model's graphs, subgraphs included, that the
 * evaluator cannot run: op_types receives them once each, in the order
 * first met, separated by ", " ("If, com.microsoft.FusedConv"), and ends
 * in "..." when op_len is too short for all; node_name receives the first
 * node that needs one (its name or first output). Returns how many
 * distinct operators are missing, 0 when the evaluator runs them all. */
size_t bnf_eval_find_unsupported(const Onnx__ModelProto *model, char *op_types, size_t op_len,
                                 char *node_name, size_t node_len);

/* Run the model's main graph. inputs[i] is the value for the graph input
 * names[i] (borrowed); graph inputs that are also initializers take the
 * initializer unless given. On success *outputs is a new array of
 * model->graph->n_output tensors, in graph output order, owned by the caller
 * (free each with bnf_tensor_free, then free the array). */
int bnf_eval_run(const Onnx__ModelProto *model, const struct bnf_eval_options *opt, size_t n_inputs,
                 const char *const *names, struct bnf_tensor *const *inputs,
                 struct bnf_tensor ***outputs, struct bnf_error *err);

#endif
