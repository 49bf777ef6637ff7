/*
 * Shared between the fold driver (fold.c) and the layer folds
 * (fold_layers.c, fold_convtranspose.c): the state of one fold run, the BatchNormalization being
 * folded as a per-channel affine map, and the outcome of one attempt.
 */
#ifndef BNF_FOLD_INTERNAL_H
#define BNF_FOLD_INTERNAL_H

#include <stddef.h>

#include "fold.h"
#include "graph.h"
#include "strmap.h"

struct fold_released {
	Onnx__GraphProto *g;   /* graph the name belongs to */
	char *name;            /* owned copy */
};

struct fold_ctx {
	const struct bnf_fold_options *opt;
	struct bnf_fold_report *rep;
	struct bnf_error *err;
	struct bnf_strmap new_names;     /* names this run created (keys in owned) */
	char **owned;
	size_t n_owned;
	struct fold_released *released;  /* values that may have lost their last reader */
	size_t n_released;
};

/* A BatchNormalization in eval mode as y = s * x + t per channel, in double. */
struct fold_bn {
	Onnx__NodeProto *node;
	size_t channels;
	double *s;
	double *t;
};

/* The outcome of one layer fold: reason NONE means it folded. */
struct fold_outcome {
	enum bnf_keep_reason reason;
	char detail[320];
	enum bnf_fold_kind kind;
	Onnx__NodeProto *target;      /* node that now produces the BN's output */
	Onnx__NodeProto *also_removed; /* a node between layer and BN folded away, or NULL */
};

/* Set the outcome to "kept" with a formatted explanation; returns BNF_OK so
 * a fold can `return fold_keep(...)`. */
int fold_keep(struct fold_outcome *out, enum bnf_keep_reason reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Remember that name (read in gi, defined there or in an enclosing graph)
 * may have lost its last reader. */
int fold_release(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name);

/* A fresh value name based on base, unused in gi, its enclosing graphs and
 * this run. Owned by ctx. NULL when memory runs out (err set). */
const char *fold_unique_name(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *base);

/* Give node input `slot` the values vals (count of them, shape dims/rank)
 * stored as dtype. The constant currently there is rewritten in place when
 * nothing else can see it (an initializer or Constant of this graph, read
 * only by this node, reached without Identity); otherwise a new
 * initializer with a unique name is added and the input rewired, leaving
 * the old constant to whoever else reads it. slot == node->n_input appends
 * a new input (named after base). */
int fold_store_constant(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
			size_t slot, int dtype, const int64_t *dims, size_t rank, const double *vals,
			size_t count, const char *base);

/* Make node produce `name` as its first output (the BN's output). */
int fold_rename_output(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
		       const char *name);

/* Decode a constant input of a node: 1 and the values when it is a constant
 * of a foldable dtype, 0 (with a keep outcome set) otherwise, negative on a
 * hard error. *tensor (may be NULL) receives the TensorProto. */
int fold_read_constant(struct fold_ctx *ctx, const struct bnf_graph *gi, const Onnx__NodeProto *node,
		       size_t slot, const char *role, double **vals, size_t *count,
		       const Onnx__TensorProto **tensor, struct fold_outcome *out);

/* Largest |v| of vals after rounding to dtype would overflow: returns 1 and
 * the offending index when some value does not fit in dtype. */
int fold_overflows(const double *vals, size_t count, int dtype, size_t *where);

/* Integer and float attributes with their defaults. */
long long fold_attr_int(const Onnx__NodeProto *node, const char *name, long long def);
double fold_attr_float(const Onnx__NodeProto *node, const char *name, double def);

/* The layer folds. Each returns BNF_OK with out->reason NONE when it
 * folded, BNF_OK with a reason when the BN is kept, negative on error. */
int fold_into_conv(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
		   Onnx__NodeProto *conv, struct fold_outcome *out);
int fold_into_conv_transpose(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
			     Onnx__NodeProto *convt, struct fold_outcome *out);
int fold_into_gemm(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
		   Onnx__NodeProto *gemm, struct fold_outcome *out);
int fold_into_matmul(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
		     Onnx__NodeProto *producer, struct fold_outcome *out);

#endif
