/*
 * BatchNormalization in front of a layer: Layer(s * X + t). The scale goes
 * into the layer's input-channel axis and the shift, pushed through the
 * weights, into its bias. Kept apart from fold_layers.c because the channel
 * is the layer's input channel, not its output channel.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold/internal.h"
#include "io/tensor_data.h"

static int tensor_dtype(const Onnx__TensorProto *t)
{
	return t->has_data_type ? t->data_type : 0;
}

/* A layer a BN in front of it folds into (its row has a before fold). */
static const struct bnf_fold_target *before_target(const Onnx__NodeProto *node)
{
	const struct bnf_fold_target *t = bnf_fold_target_of(node);
	return t && t->before ? t : NULL;
}

/* The node of this graph reading y as its first input, or NULL. */
static Onnx__NodeProto *layer_reading(const struct bnf_graph *gi, const char *y)
{
	size_t i;
	for (i = 0; i < gi->g->n_node; i++) {
		Onnx__NodeProto *n = gi->g->node[i];
		if (n->n_input >= 1 && strcmp(n->input[0], y) == 0 && before_target(n))
			return n;
	}
	return NULL;
}

static int keep_overflow(struct fold_outcome *out, const double *v, size_t n, int dtype,
                         const char *what)
{
	size_t where;
	if (!bnf_fold_overflows(v, n, dtype, &where))
		return 0;
	bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
	              "folded %s value %zu would be %.4g, outside %s", what, where, v[where],
	              bnf_dtype_label(dtype));
	return 1;
}

/* Does the Conv pad? Explicit pads, or SAME_* with a kernel larger than 1. */
static int conv_pads(const Onnx__NodeProto *conv, const Onnx__TensorProto *w)
{
	size_t i, j;
	for (i = 0; i < conv->n_attribute; i++) {
		const Onnx__AttributeProto *a = conv->attribute[i];
		if (!a->name)
			continue;
		if (strcmp(a->name, "pads") == 0)
			for (j = 0; j < a->n_ints; j++)
				if (a->ints[j] != 0)
					return 1;
		if (strcmp(a->name, "auto_pad") == 0 && a->has_s &&
		    !(a->s.len == 6 && memcmp(a->s.data, "NOTSET", 6) == 0) &&
		    !(a->s.len == 5 && memcmp(a->s.data, "VALID", 5) == 0))
			for (j = 2; j < w->n_dims; j++)
				if (w->dims[j] != 1)
					return 1;
	}
	return 0;
}

/*
 * BatchNormalization -> Conv
 *
 *   X -> BN(scale, B, mean, var) -> Conv(W, B?; group) -> Y
 *   becomes
 *   X -> Conv(W', B'; group) -> Y
 *
 * Folds when: the Conv pads nothing (pads all 0, auto_pad NOTSET or VALID:
 * a padded zero would be t in the original and 0 once folded); W (and B)
 * are constants of one float type; W is M x C/group x k... with C =
 * W.dims[1] * group equal to the BN's channel count. Input channel c
 * belongs to group c / (C/group) and meets only that group's output
 * channels; with cg = C/group and W's channel index j = c mod cg:
 *
 *   W'[m, j, k] = W[m, j, k] * s[g(m) * cg + j]
 *   B'[m]       = (B[m] or 0) + sum over j, k of W[m, j, k] * t[g(m) * cg + j]
 */
int bnf_fold_before_conv(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                         Onnx__NodeProto *conv, struct fold_outcome *out)
{
	const Onnx__TensorProto *wt = NULL, *bt = NULL;
	double *w = NULL, *b = NULL, *b_new = NULL; /* w is scaled in place */
	size_t nw = 0, nb = 0, m, cg, per, mg, i, c, k;
	long long group = bnf_fold_attr_int(conv, "group", 1);
	int has_bias = conv->n_input >= 3 && conv->input[2][0];
	int rc, dtype;
	int64_t bias_dims[1];

	rc = bnf_fold_read_layer(ctx, gi, conv, "weight", &w, &nw, &wt, "bias", &b, &nb, &bt, out);
	if (rc != 1)
		goto out;
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims < 3 || group < 1 || wt->dims[0] % group != 0 || wt->dims[0] == 0) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "weight '%s' of Conv '%s' has rank %zu and %lld groups",
		              conv->input[1], bnf_node_label(conv), wt->n_dims, group);
		goto out;
	}
	m = (size_t)wt->dims[0];
	cg = (size_t)wt->dims[1];
	if (cg * (size_t)group != bn->channels || (has_bias && nb != m)) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "the BatchNormalization has %zu channels but Conv '%s' reads %zu",
		              bn->channels, bnf_node_label(conv), cg * (size_t)group);
		goto out;
	}
	if (has_bias && tensor_dtype(bt) != dtype) {
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "Conv '%s' has weight and bias of different dtypes",
		              bnf_node_label(conv));
		goto out;
	}
	if (conv_pads(conv, wt)) {
		bnf_fold_keep(out, BNF_KEEP_REASON_PADDING,
		              "Conv '%s' after it pads its input: padded zeros would become the "
		              "BatchNormalization's shift",
		              bnf_node_label(conv));
		goto out;
	}
	b_new = malloc(m * sizeof(double));
	if (!b_new) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	per = nw / (m * cg);
	mg = m / (size_t)group;
	for (i = 0; i < m; i++) {
		double acc = has_bias ? b[i] : 0.0;
		for (c = 0; c < cg; c++) {
			size_t ch = (i / mg) * cg + c;
			for (k = 0; k < per; k++) {
				size_t idx = (i * cg + c) * per + k;
				acc += w[idx] * bn->t[ch]; /* the weight as read, then */
				w[idx] *= bn->s[ch];
			}
		}
		b_new[i] = acc;
	}
	if (keep_overflow(out, w, nw, dtype, "weight") ||
	    keep_overflow(out, b_new, m, dtype, "bias"))
		goto out;
	bias_dims[0] = (int64_t)m;
	rc = bnf_fold_store_constant(ctx, gi, conv, 1, dtype, wt->dims, wt->n_dims, w, nw,
	                             conv->input[1]);
	if (rc == BNF_OK)
		rc = bnf_fold_store_bias(ctx, gi, conv, 2, dtype, bias_dims, 1, b_new, m, conv);
	if (rc == BNF_OK)
		rc = bnf_fold_set_input(ctx, gi, conv, 0, bn->node->input[0]);
	if (rc == BNF_OK) {
		bnf_fold_done(out, BNF_FOLD_KIND_CONV, conv);
		out->result = conv->output[0];
	}
out:
	free(w);
	free(b);
	free(b_new);
	return rc < 0 ? rc : BNF_OK;
}

/*
 * BatchNormalization -> Gemm / MatMul (2-D)
 *
 *   X -> BN -> Gemm(B, C?; alpha, beta, transA = 0, transB) -> Y
 *   X -> BN -> MatMul(W) -> Y
 *   becomes
 *   X -> Gemm(B', C'; alpha, beta = 1, transA = 0, transB) -> Y
 *
 * Folds when: the operand read is 2-D with the BN's channel axis 1 the
 * contracted axis K (Gemm with transA = 0; MatMul whose input is known to
 * be 2-D), the weight is a constant (K, N) matrix ((N, K) with transB = 1)
 * with K equal to the BN's channel count, C (if any) broadcasts to (rows,
 * N), opset >= 7 (Gemm broadcasts C) and Gemm takes the dtype (bfloat16
 * from opset 13). MatMul becomes Gemm.
 *
 *   B'[k, n] = B[k, n] * s[k]
 *   C'[r, n] = beta * (C[r, n] or 0) + alpha * sum over k of t[k] * B[k, n]
 */
int bnf_fold_before_matrix(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                           Onnx__NodeProto *layer, struct fold_outcome *out)
{
	const Onnx__TensorProto *wt = NULL, *ct = NULL;
	double *w = NULL, *cv = NULL, *c_new = NULL; /* w is scaled in place */
	int gemm = bnf_node_is(layer, "Gemm");
	int trans_b = gemm && bnf_fold_attr_int(layer, "transB", 0) != 0;
	int has_c = gemm && layer->n_input >= 3 && layer->input[2][0];
	double alpha = gemm ? bnf_fold_attr_float(layer, "alpha", 1.0) : 1.0;
	double beta = gemm ? bnf_fold_attr_float(layer, "beta", 1.0) : 1.0;
	size_t nw = 0, nc = 0, kdim, n, rows_c = 1, cols_c = 1, r, k, j;
	int rc, dtype;
	int64_t c_dims[2];
	size_t c_rank = 1;

	if (gemm && bnf_fold_attr_int(layer, "transA", 0) != 0)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "Gemm '%s' has transA=1: the BatchNormalization channel is its "
		    "output row, not the contracted axis",
		    bnf_node_label(layer));
	if (!gemm && bnf_fold_value_rank(gi, bn->node->input[0]) != 2)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
		                     "the input of MatMul '%s' is not known to be 2-D",
		                     bnf_node_label(layer));
	if (gi->opset < 7)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "opset %d: Gemm does not broadcast its bias", gi->opset);
	rc = bnf_fold_read_layer(ctx, gi, layer, gemm ? "B" : "weight", &w, &nw, &wt, "C", &cv, &nc,
	                         &ct, out);
	if (rc != 1)
		goto out;
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims != 2) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "the weight of %s '%s' has rank %zu", layer->op_type,
		              bnf_node_label(layer), wt->n_dims);
		goto out;
	}
	kdim = (size_t)wt->dims[trans_b ? 1 : 0];
	n = (size_t)wt->dims[trans_b ? 0 : 1];
	if (kdim != bn->channels || n == 0) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "the BatchNormalization has %zu channels but %s '%s' contracts %zu",
		              bn->channels, layer->op_type, bnf_node_label(layer), kdim);
		goto out;
	}
	if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 && gi->opset < 13) {
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "%s '%s' is bfloat16 and Gemm takes bfloat16 only from opset 13",
		              layer->op_type, bnf_node_label(layer));
		goto out;
	}
	if (has_c) {
		if (ct->n_dims == 2) {
			rows_c = (size_t)ct->dims[0];
			cols_c = (size_t)ct->dims[1];
		} else {
			cols_c = nc;
		}
		if (ct->n_dims > 2 || (cols_c != 1 && cols_c != n) || rows_c * cols_c != nc ||
		    tensor_dtype(ct) != dtype) {
			bnf_fold_keep(
			    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			    "C '%s' of Gemm '%s' is not a (rows, %zu) bias of the weight's dtype",
			    layer->input[2], bnf_node_label(layer), n);
			goto out;
		}
		if (ct->n_dims == 2) {
			c_dims[0] = (int64_t)rows_c;
			c_rank = 2;
		}
	}
	c_new = malloc(rows_c * n * sizeof(double));
	if (!c_new) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (j = 0; j < n; j++) {
		double shift = 0.0;
		for (k = 0; k < kdim; k++) {
			size_t idx = trans_b ? j * kdim + k : k * n + j;
			shift += bn->t[k] * w[idx]; /* the weight as read, then */
			w[idx] *= bn->s[k];
		}
		for (r = 0; r < rows_c; r++)
			c_new[r * n + j] =
			    (has_c ? beta * cv[r * cols_c + (cols_c == 1 ? 0 : j)] : 0.0) +
			    alpha * shift;
	}
	if (keep_overflow(out, w, nw, dtype, "weight") ||
	    keep_overflow(out, c_new, rows_c * n, dtype, "bias"))
		goto out;
	c_dims[c_rank - 1] = (int64_t)n;
	rc = bnf_fold_store_constant(ctx, gi, layer, 1, dtype, wt->dims, 2, w, nw, layer->input[1]);
	if (rc == BNF_OK)
		rc = bnf_fold_store_bias(ctx, gi, layer, 2, dtype, c_dims, c_rank, c_new,
		                         rows_c * n, layer);
	if (rc == BNF_OK && gemm && beta != 1.0)
		rc = bnf_fold_set_float_attr(ctx, layer, "beta", 1.0f);
	if (rc == BNF_OK && !gemm)
		rc = bnf_fold_set_op_type(ctx, layer, "Gemm");
	if (rc == BNF_OK)
		rc = bnf_fold_set_input(ctx, gi, layer, 0, bn->node->input[0]);
	if (rc == BNF_OK) {
		bnf_fold_done(out, gemm ? BNF_FOLD_KIND_GEMM : BNF_FOLD_KIND_MATMUL, layer);
		out->result = layer->output[0];
	}
out:
	free(w);
	free(cv);
	free(c_new);
	return rc < 0 ? rc : BNF_OK;
}

int bnf_fold_bn_before_layer(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                             struct fold_outcome *out, int *tried)
{
	const char *y = bn->node->output[0];
	Onnx__NodeProto *layer = layer_reading(gi, y);

	*tried = 0;
	if (!layer)
		return BNF_OK;
	*tried = 1;
	if (bnf_graph_is_output(gi, y))
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_GRAPH_OUTPUT,
		    "its output '%s' is a graph output, so it cannot fold into %s '%s' "
		    "after it",
		    y, layer->op_type, bnf_node_label(layer));
	if (bnf_graph_uses(gi, y) != 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_OTHER_CONSUMER,
		                     "its output '%s' is read by %s '%s' and by other nodes", y,
		                     layer->op_type, bnf_node_label(layer));
	if (bnf_fold_node_stale(ctx, gi, layer))
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "%s '%s' was changed by another fold of this sweep",
		                     layer->op_type, bnf_node_label(layer));
	return before_target(layer)->before(ctx, gi, bn, layer, out);
}
