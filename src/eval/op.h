/*
 * The operator interface of the evaluator. Each operator is a row in a
 * table (struct bnf_op) with a shape step, which validates the inputs and
 * allocates the outputs, and a compute step, which fills them. Families of
 * operators live in their own files, each exporting one table.
 */
#ifndef BNF_EVAL_OP_H
#define BNF_EVAL_OP_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "eval/tensor.h"
#include "io/model.h"
#include "onnx.pb-c.h"

struct bnf_run; /* the executor's run of one graph (eval.c) */

struct bnf_op_ctx {
	const Onnx__NodeProto *node;
	int opset; /* version of the default ("" / ai.onnx) domain */
	size_t n_in;
	struct bnf_tensor **in; /* borrowed; NULL for an omitted optional input */
	size_t n_out;
	struct bnf_tensor **out;  /* the shape step stores new tensors here; the
	                             executor owns them afterwards. NULL entries
	                             are outputs the node leaves out. */
	int threads;              /* worker threads the op may use (>= 1) */
	struct bnf_tensor *donor; /* in[0], when nothing reads it after this node
	                             and the op is elementwise: the output
	                             allocators may take it as out[0] */
	int donor_taken;          /* set when they did */
	struct bnf_error *err;
	const struct bnf_external *ext; /* external tensor data (Constant) */
	struct bnf_run *run;            /* the run of the graph holding the node:
	                                   its subgraphs run inside it */
	int promote;                    /* a promote_double run: the inputs it leaves held as
	                                   float32 (Gemm's B) sit beside float64 ones */
};

struct bnf_op {
	const char *op_type;
	int min_opset; /* first opset version whose semantics this row covers */
	int max_opset; /* last one, or 0 when the row covers every later opset
	                  (an operator the spec deprecated has a last version) */
	int (*shape)(struct bnf_op_ctx *ctx);
	int (*compute)(struct bnf_op_ctx *ctx);
	int elementwise; /* 1: output element i needs input 0's element
	                    i only (others broadcast), so the output may
	                    overwrite input 0 in place */
};

/* One table per family; each ends with a row whose op_type is NULL. */
extern const struct bnf_op bnf_ops_ctrl[];   /* Constant, If, Loop, Scan */
extern const struct bnf_op bnf_ops_nn[];     /* conv, pooling, normalisation, gemm */
extern const struct bnf_op bnf_ops_basic[];  /* elementwise, activations, softmax, cast */
extern const struct bnf_op bnf_ops_shape[];  /* shapes, indexing, reductions, pad, resize */
extern const struct bnf_op bnf_ops_logic[];  /* comparisons, logic, bitwise operators */
extern const struct bnf_op bnf_ops_math[];   /* rounding, trigonometry, Mod, Mean, more */
extern const struct bnf_op bnf_ops_index[];  /* TopK, NonZero, GatherND, Scatter*, OneHot, ... */
extern const struct bnf_op bnf_ops_vision[]; /* NonMaxSuppression, RoiAlign, GridSample */
extern const struct bnf_op bnf_ops_quant[];  /* QuantizeLinear, QLinearConv, ... */
extern const struct bnf_op bnf_ops_signal[]; /* DFT, STFT, windows, MelWeightMatrix */

/* Take ctx->donor as output i when it may be: output 0 of a one-output
 * node, with the donor's dtype and shape. Returns 1 when taken. */
int bnf_op_take_donor(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims);

/* The row for op_type at the given opset (the row with the largest
 * min_opset <= opset whose max_opset, if any, is >= opset), or NULL if the
 * evaluator does not implement it. */
const struct bnf_op *bnf_op_find(const char *op_type, int opset);

/* One line of what the evaluator implements: an operator and the opsets a
 * row of its covers, first to last (last 0: every later opset). A row that
 * a later row of the same operator replaces ends where that one begins. */
struct bnf_op_range {
	const char *op_type; /* static string */
	int first, last;
};

/* Every row of every table, sorted by operator name, then first opset, in
 * a new array that the caller frees with free(). Returns the count, or 0
 * when memory runs out (*out is then NULL). */
size_t bnf_op_ranges(struct bnf_op_range **out);

/* Whether a node's domain is the default one ("", or "ai.onnx"). */
int bnf_op_is_default_domain(const char *domain);

/* The model's version of the default operator set, or -1 if absent. */
int bnf_op_model_opset(const Onnx__ModelProto *model);

/* Subgraphs: what the executor offers the control-flow operators. A
 * subgraph (If's branch, a Loop or Scan body, an attribute of ctx's node)
 * is opened once, may run many times, and reads the values of the graphs
 * around it by name, as the spec's scoping says. */
struct bnf_subgraph;

/* Index g to run inside ctx->run. *out is NULL on failure (err set);
 * close it with bnf_subgraph_close. */
int bnf_subgraph_open(const struct bnf_op_ctx *ctx, const Onnx__GraphProto *g,
                      struct bnf_subgraph **out);

/* Run it once: in[i] (borrowed) is the value of the graph's input i, and
 * out[j] receives a new tensor for its output j (the caller owns it; the
 * array has room for every output). n_in must equal the graph's input
 * count. On failure no out[j] is set. */
int bnf_subgraph_run(struct bnf_subgraph *sg, size_t n_in, struct bnf_tensor *const *in,
                     struct bnf_tensor **out);

/* The graph a subgraph runs, borrowed from the model. */
const Onnx__GraphProto *bnf_subgraph_graph(const struct bnf_subgraph *sg);

/* Free a subgraph and the values it kept; NULL is allowed. */
void bnf_subgraph_close(struct bnf_subgraph *sg);

/* Whether the node asks for output i: it exists and its name is not empty.
 * The shape step may skip allocating outputs that are not wanted. */
int bnf_op_wants_output(const struct bnf_op_ctx *ctx, size_t i);

/* Attribute readers; each returns the spec's default when the attribute is
 * absent and fails (err set, naming the node and attribute) when it has
 * the wrong type. */
const Onnx__AttributeProto *bnf_attr_find(const Onnx__NodeProto *node, const char *name);
int bnf_attr_int(const Onnx__NodeProto *node, const char *name, int64_t def, int64_t *out,
                 struct bnf_error *err);
int bnf_attr_float(const Onnx__NodeProto *node, const char *name, float def, float *out,
                   struct bnf_error *err);
/* Copies at most max values into out and sets *n to the attribute's count
 * (0 when absent); more than max values is an error. */
int bnf_attr_ints(const Onnx__NodeProto *node, const char *name, int64_t *out, size_t max,
                  size_t *n, struct bnf_error *err);
int bnf_attr_floats(const Onnx__NodeProto *node, const char *name, float *out, size_t max,
                    size_t *n, struct bnf_error *err);
/* Borrowed, NUL-terminated copy kept in a caller buffer of size len. */
int bnf_attr_string(const Onnx__NodeProto *node, const char *name, const char *def, char *out,
                    size_t len, struct bnf_error *err);

/* The shared single-precision matrix multiply: C[m x n] = A[m x k] * B[k x n]
 * (+ C when accumulate), row-major with leading dimensions lda, ldb, ldc.
 * Cache-blocked and split across `threads` threads by blocks of C, so that
 * every element is summed in the same order whatever the thread count. */
void bnf_sgemm(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
               const float *b, size_t ldb, float *c, size_t ldc, int accumulate);
/* A B matrix that is never stored whole (Conv's im2col matrix): it writes
 * rows p0 .. p0+kc-1 and columns j0 .. j0+nc-1 of itself into dst the way
 * the multiply packs B, panels of nr columns one after the other, each
 * k-major (element (p, j) of the block at dst[(j / nr) * nr * kc +
 * p * nr + j % nr]), with zeros past column nc in the last panel. Called
 * from several threads at once. */
struct bnf_gemm_bsrc {
	void (*pack)(const struct bnf_gemm_bsrc *src, size_t p0, size_t kc, size_t j0, size_t nc,
	             size_t nr, void *dst);
};

/* bnf_sgemm / bnf_dgemm (without accumulation) with B from a producer;
 * results are those of the stored matrix. Returns 0, or -1 when the
 * packing buffers cannot be allocated (C is then incomplete). */
int bnf_sgemm_bsrc(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
                   const struct bnf_gemm_bsrc *b, float *c, size_t ldc);
int bnf_dgemm_bsrc(int threads, size_t m, size_t n, size_t k, const double *a, size_t lda,
                   const struct bnf_gemm_bsrc *b, double *c, size_t ldc);

/* bnf_dgemm (B stored, ldb apart) or bnf_dgemm_bsrc (bsrc not NULL)
 * with A stored as float32 (a float64 reference run's weights, left as
 * they are in the model): widened block by block as the multiply reads
 * it, the same sums as with a float64 copy of A. Returns 0, or -1 when
 * the buffers cannot be allocated (C is then incomplete). */
int bnf_dgemm_fa(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
                 const double *b, size_t ldb, const struct bnf_gemm_bsrc *bsrc, double *c,
                 size_t ldc);

/* y[n] = a[k] x B (+ y when accumulate), the one-row product (gemv.c).
 * B is row-major, ldb elements apart: k x n, or with trans_b n x k (row j
 * holding column j); its bytes need not be aligned. Every element is
 * summed in the multiply's order, so the result has the bits bnf_sgemm /
 * bnf_dgemm give a row of A, whatever the thread count. */
struct bnf_gemv {
	int dbl;        /* a and y are double, else float */
	int b_float;    /* with dbl: B is stored as float32, widened as read */
	int trans_b;    /* B stored transposed */
	int accumulate; /* y += a x B */
	size_t n, k, ldb;
	const void *a, *b;
	void *y;
};
void bnf_gemv(int threads, const struct bnf_gemv *g);

/* The same in double precision, for the float64 reference runs. */
void bnf_dgemm(int threads, size_t m, size_t n, size_t k, const double *a, size_t lda,
               const double *b, size_t ldb, double *c, size_t ldc, int accumulate);

#endif
