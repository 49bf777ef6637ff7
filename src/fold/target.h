/*
 * What a fold target is, as data: the layers a BatchNormalization (or an
 * affine node) folds into, where each keeps its output channel, and which
 * folds it takes. The fold driver, the affine, layout and before-layer
 * folds and the lint all read this one table (targets.c).
 */
#ifndef BNF_FOLD_TARGET_H
#define BNF_FOLD_TARGET_H

#include <stddef.h>

#include "fold/fold.h"
#include "onnx.pb-c.h"

/* Where a layer's weight (input 1) keeps the output channel. */
enum bnf_weight_channel {
	BNF_WEIGHT_CHANNEL_FIRST = 0, /* W[m, ...]: Conv; Gemm with transB=1 */
	BNF_WEIGHT_CHANNEL_LAST,      /* W[..., m]: MatMul; Gemm with transB=0 */
	BNF_WEIGHT_CHANNEL_GROUPED,   /* W[c_in, m / group, ...]: ConvTranspose,
	                                 channel g * (m / group) + j of group g */
};

struct bnf_graph;
struct fold_ctx;
struct fold_bn;
struct fold_outcome;

/* A fold of a per-channel affine map y = s * x + t into a layer (the
 * layer folds of fold_layers.c, fold_convtranspose.c, fold_before.c). */
typedef int (*bnf_fold_fn)(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                           Onnx__NodeProto *layer, struct fold_outcome *out);

struct bnf_fold_target {
	const char *op_type;
	enum bnf_fold_kind kind;        /* of a BatchNormalization folded into it */
	int channel_last;               /* its output channel: 0 axis 1, 1 the last axis */
	enum bnf_weight_channel weight; /* where its weight keeps that channel */
	const char *weight_flip;        /* an int attribute that, set, swaps FIRST and
	                                   LAST ("transB"), or NULL */
	unsigned min_weight_rank, max_weight_rank;
	int input_2d;       /* a BN right after it folds only on a 2-D input,
	                       else its channel is not axis 1 */
	int affine_after;   /* a Mul/Add/Sub/Div by a constant after it folds */
	bnf_fold_fn after;  /* fold a BN (or affine map) after it */
	bnf_fold_fn before; /* fold a BN in front of it into its input side,
	                       or NULL */
};

/* The row of node's operator (default domain), or NULL when the node is
 * not a fold target. */
const struct bnf_fold_target *bnf_fold_target_of(const Onnx__NodeProto *node);

/* Where node's weight keeps its output channel (weight_flip applied). */
enum bnf_weight_channel bnf_fold_target_weight_channel(const struct bnf_fold_target *t,
                                                       const Onnx__NodeProto *node);

/* The output channels of node (a row of t) given its weight w: 0 when w's
 * rank is outside the row's bounds or a dim is not positive. */
size_t bnf_fold_target_channels(const struct bnf_fold_target *t, const Onnx__NodeProto *node,
                                const Onnx__TensorProto *w);

/* "Conv, ConvTranspose, Gemm and MatMul": the layers that take a fold. */
extern const char bnf_fold_targets_named[];

#endif
