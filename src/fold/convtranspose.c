/*
 * The ConvTranspose fold. ConvTranspose lays its weight out input channel
 * first (C_in x M/group x k...), so the BatchNormalization's output channel
 * is not W's first axis as it is for Conv: scaling axis 0 is the mistake
 * other tools made (FOLDING.md section 6, trap 1). Kept apart from
 * fold_layers.c because its channel mapping is its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fold/internal.h"
#include "io/tensor_data.h"

static int tensor_dtype(const Onnx__TensorProto *t)
{
	return t->has_data_type ? t->data_type : 0;
}

/* The output channel of element i of W, flattened C_in x mg x per. */
static size_t weight_channel(size_t i, size_t per, size_t mg, size_t cin_per_group)
{
	size_t ci = i / (mg * per), j = (i / per) % mg;
	return (ci / cin_per_group) * mg + j;
}

/*
 * ConvTranspose -> BatchNormalization
 *
 *   X -> ConvTranspose(W, B?; group) -> BN(scale, bias, mean, var) -> Y
 *   becomes
 *   X -> ConvTranspose(W', B'; group) -> Y
 *
 * Folds when: W (and B if present) are constants of one float type; W has
 * rank >= 3 with C_in = W.dims[0] a positive multiple of group; the output
 * channel count M = W.dims[1] * group equals the BN's channel count and B
 * (if present) has M values. Strides, pads, dilations, output_padding,
 * output_shape and auto_pad only move values in space, never across
 * channels, so they do not matter here.
 *
 * With mg = M / group, input channel ci belongs to group g(ci) = ci / (C_in /
 * group), and W[ci, j, ...] feeds output channel o = g(ci) * mg + j:
 *
 *   W'[ci, j, ...] = W[ci, j, ...] * s[g(ci) * mg + j]
 *   B'[o]          = (B[o] or 0) * s[o] + t[o]
 */
int bnf_fold_into_conv_transpose(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                                 Onnx__NodeProto *convt, struct fold_outcome *out)
{
	const Onnx__TensorProto *wt = NULL, *bt = NULL;
	double *w = NULL, *b = NULL, *b_new = NULL; /* w is scaled in place */
	size_t nw = 0, nb = 0, cin, mg, m, per, cin_per_group, i, where;
	int has_bias = convt->n_input >= 3 && convt->input[2][0];
	long long group = bnf_fold_attr_int(convt, "group", 1);
	int rc, dtype;
	int64_t bias_dims[1];

	if (convt->n_input < 2 || convt->n_output != 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "ConvTranspose '%s' does not have the inputs and output of a "
		                     "ConvTranspose",
		                     bnf_node_label(convt));
	rc = bnf_fold_read_layer(ctx, gi, convt, "weight", &w, &nw, &wt, "bias", &b, &nb, &bt, out);
	if (rc != 1)
		goto out;
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims < 3) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "weight '%s' of ConvTranspose '%s' has rank %zu", convt->input[1],
		              bnf_node_label(convt), wt->n_dims);
		goto out;
	}
	cin = (size_t)wt->dims[0];
	mg = (size_t)wt->dims[1];
	if (group < 1 || cin == 0 || cin % (size_t)group != 0) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "ConvTranspose '%s' has group %lld, which does not divide its %zu input "
		    "channels",
		    bnf_node_label(convt), group, cin);
		goto out;
	}
	/* group divides cin, so M = mg * group <= cin * mg <= nw: no overflow. */
	if (mg == 0) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "weight '%s' of ConvTranspose '%s' has no output channels",
		              convt->input[1], bnf_node_label(convt));
		goto out;
	}
	m = mg * (size_t)group;
	if (m != bn->channels || (has_bias && nb != m)) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "the BatchNormalization has %zu channels but ConvTranspose '%s' has %zu "
		    "output channels (%zu per group x group %lld)%s",
		    bn->channels, bnf_node_label(convt), m, mg, group,
		    has_bias && nb != m ? " and a bias of another length" : "");
		goto out;
	}
	if (has_bias && tensor_dtype(bt) != dtype) {
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "ConvTranspose '%s' has weight of dtype %s and bias of dtype %s",
		              bnf_node_label(convt), bnf_dtype_label(dtype),
		              bnf_dtype_label(tensor_dtype(bt)));
		goto out;
	}
	b_new = malloc(m * sizeof(double));
	if (!b_new) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	per = nw / (cin * mg);
	cin_per_group = cin / (size_t)group;
	for (i = 0; i < nw; i++)
		w[i] *= bn->s[weight_channel(i, per, mg, cin_per_group)];
	for (i = 0; i < m; i++)
		b_new[i] = (has_bias ? b[i] : 0.0) * bn->s[i] + bn->t[i];
	/* As keep_if_overflow in fold_layers.c, but naming the output channel
	 * of the weight element, which is not its first index here. */
	if (bnf_fold_overflows(w, nw, dtype, &where)) {
		bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
		              "folded weight of channel %zu would be %.4g, outside the range of %s",
		              weight_channel(where, per, mg, cin_per_group), w[where],
		              bnf_dtype_label(dtype));
		goto out;
	}
	if (bnf_fold_overflows(b_new, m, dtype, &where)) {
		bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
		              "folded bias of channel %zu would be %.4g, outside the range of %s",
		              where, b_new[where], bnf_dtype_label(dtype));
		goto out;
	}

	bias_dims[0] = (int64_t)m;
	rc = bnf_fold_store_constant(ctx, gi, convt, 1, dtype, wt->dims, wt->n_dims, w, nw,
	                             convt->input[1]);
	if (rc == BNF_OK)
		rc = bnf_fold_store_bias(ctx, gi, convt, 2, dtype, bias_dims, 1, b_new, m, convt);
	if (rc == BNF_OK)
		rc = bnf_fold_take_output(ctx, gi, bn, convt);
	if (rc == BNF_OK) {
		bnf_fold_done(out, BNF_FOLD_KIND_CONVTRANSPOSE, convt);
	}
out:
	free(w);
	free(b);
	free(b_new);
	return rc < 0 ? rc : BNF_OK;
}
