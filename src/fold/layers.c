/*
 * The layer folds: Conv, Gemm and MatMul (with an optional bias Add) that
 * feed an eval-mode BatchNormalization y = s * x + t. Each fold checks its
 * guards first and changes nothing until all of them hold; new weights are
 * computed in double and rounded once to the weight's storage type.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold/internal.h"
#include "io/tensor_data.h"
#include "util/mem.h"

/* Everything a fold reads and writes, freed in one place. The weight, the
 * largest tensor of a fold, goes from its stored bytes to its new stored
 * bytes (bnf_proto_scale) without an array of doubles; the bias, small,
 * is read into doubles. */
struct fold_buffers {
	struct bnf_scaled w; /* the folded weight, stored */
	double *b;           /* the layer's bias as read */
	double *b_new;       /* the folded bias */
};

static void free_buffers(struct fold_buffers *fb)
{
	free(fb->w.raw);
	free(fb->b);
	free(fb->b_new);
}

/* The weight scaled channel by channel: element i by s[(i / inner) % m]. */
static int scale_weight(struct fold_ctx *ctx, const Onnx__NodeProto *node,
                        const Onnx__TensorProto *wt, const double *s, size_t inner, size_t m,
                        struct fold_buffers *fb)
{
	int rc = bnf_proto_scale(ctx->opt ? ctx->opt->ext : NULL, wt, s, inner ? inner : 1, m,
	                         &fb->w, ctx->err);
	if (rc != BNF_OK)
		bnf_error_prefix(ctx->err, "node '%s'", bnf_node_label(node));
	return rc;
}

/* The scaled weight would overflow its dtype: keep, naming the channel. */
static int keep_if_weight_overflow(struct fold_outcome *out, const struct bnf_scaled *w, int dtype,
                                   size_t per_channel)
{
	if (!w->overflow)
		return 0;
	bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
	              "folded weight of channel %zu would be %.4g, outside the range of %s",
	              per_channel ? w->where / per_channel : w->where, w->value,
	              bnf_dtype_label(dtype));
	return 1;
}

/* Hand the scaled weight to node input 1. */
static int store_weight(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                        int dtype, const Onnx__TensorProto *wt, struct fold_buffers *fb)
{
	uint8_t *raw = fb->w.raw;

	fb->w.raw = NULL; /* taken over, also on failure */
	return bnf_fold_store_raw(ctx, gi, node, 1, dtype, wt->dims, wt->n_dims, raw, fb->w.len,
	                          node->input[1]);
}

static int alloc_bias(struct fold_ctx *ctx, struct fold_buffers *fb, size_t nb)
{
	fb->b_new = malloc((nb ? nb : 1) * sizeof(double));
	if (!fb->b_new)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	return BNF_OK;
}

static int tensor_dtype(const Onnx__TensorProto *t)
{
	return t->has_data_type ? t->data_type : 0;
}

/* Refuse values that would not fit the storage type (float16 overflows at
 * 65504): name the worst value instead of writing infinity. */
static int keep_if_overflow(struct fold_outcome *out, const double *vals, size_t count, int dtype,
                            const char *what, size_t per_channel)
{
	size_t where;
	if (!bnf_fold_overflows(vals, count, dtype, &where))
		return 0;
	bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
	              "folded %s of channel %zu would be %.4g, outside the range of %s", what,
	              per_channel ? where / per_channel : where, vals[where],
	              bnf_dtype_label(dtype));
	return 1;
}

/*
 * Conv -> BatchNormalization
 *
 *   X -> Conv(W, B?) -> BN(scale, bias, mean, var) -> Y
 *   becomes
 *   X -> Conv(W', B') -> Y
 *
 * Folds when: W (and B if present) are constants of a float type; W has
 * rank >= 3 and M = W.dims[0] output channels equal to the BN's channel
 * count. Any group count works because W's first axis is the output
 * channel whatever the grouping (M x C/group x k...).
 *
 *   W'[m, ...] = W[m, ...] * s[m]
 *   B'[m]      = (B[m] or 0) * s[m] + t[m]
 */
int bnf_fold_into_conv(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                       Onnx__NodeProto *conv, struct fold_outcome *out)
{
	struct fold_buffers fb;
	const Onnx__TensorProto *wt = NULL, *bt = NULL;
	size_t nw = 0, nb = 0, m, per, i;
	int has_bias = conv->n_input >= 3 && conv->input[2][0];
	int rc, dtype;
	int64_t bias_dims[1];

	if (conv->n_input < 2 || conv->n_output != 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "Conv '%s' does not have the inputs and output of a Conv",
		                     bnf_node_label(conv));
	memset(&fb, 0, sizeof(fb));
	rc = bnf_fold_read_layer(ctx, gi, conv, "weight", NULL, &nw, &wt, "bias", &fb.b, &nb, &bt,
	                         out);
	if (rc != 1)
		goto out;
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims < 3) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "weight '%s' of Conv '%s' has rank %zu", conv->input[1],
		              bnf_node_label(conv), wt->n_dims);
		goto out;
	}
	m = (size_t)wt->dims[0];
	if (m != bn->channels || (has_bias && nb != m) || m == 0) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "the BatchNormalization has %zu channels but Conv '%s' has %zu output "
		    "channels%s",
		    bn->channels, bnf_node_label(conv), m,
		    has_bias && nb != m ? " and a bias of another length" : "");
		goto out;
	}
	if (has_bias && tensor_dtype(bt) != dtype) {
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "Conv '%s' has weight of dtype %s and bias of dtype %s",
		              bnf_node_label(conv), bnf_dtype_label(dtype),
		              bnf_dtype_label(tensor_dtype(bt)));
		goto out;
	}
	if ((rc = alloc_bias(ctx, &fb, m)) != BNF_OK)
		goto out;
	per = nw / m;
	if ((rc = scale_weight(ctx, conv, wt, bn->s, per, m, &fb)) != BNF_OK)
		goto out;
	for (i = 0; i < m; i++)
		fb.b_new[i] = (has_bias ? fb.b[i] : 0.0) * bn->s[i] + bn->t[i];
	if (keep_if_weight_overflow(out, &fb.w, dtype, per) ||
	    keep_if_overflow(out, fb.b_new, m, dtype, "bias", 0))
		goto out;

	bias_dims[0] = (int64_t)m;
	rc = store_weight(ctx, gi, conv, dtype, wt, &fb);
	if (rc == BNF_OK)
		rc = bnf_fold_store_bias(ctx, gi, conv, 2, dtype, bias_dims, 1, fb.b_new, m, conv);
	if (rc == BNF_OK)
		rc = bnf_fold_take_output(ctx, gi, bn, conv);
	if (rc == BNF_OK) {
		bnf_fold_done(out, BNF_FOLD_KIND_CONV, conv);
	}
out:
	free_buffers(&fb);
	return rc < 0 ? rc : BNF_OK;
}

/* The attribute `name` of node, added (with the given type) when absent. */
static Onnx__AttributeProto *attr_for_update(struct fold_ctx *ctx, Onnx__NodeProto *node,
                                             const char *name,
                                             Onnx__AttributeProto__AttributeType type)
{
	Onnx__AttributeProto **p, *a;
	size_t i;

	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			return node->attribute[i];
	a = malloc(sizeof(*a));
	p = realloc(node->attribute, (node->n_attribute + 1) * sizeof(*p));
	if (p)
		node->attribute = p;
	if (a)
		onnx__attribute_proto__init(a);
	if (!a || !p || !(a->name = strdup(name))) {
		free(a);
		bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		return NULL;
	}
	a->type = type;
	a->has_type = 1;
	node->attribute[node->n_attribute++] = a;
	return a;
}

int bnf_fold_set_float_attr(struct fold_ctx *ctx, Onnx__NodeProto *node, const char *name, float v)
{
	Onnx__AttributeProto *a =
	    attr_for_update(ctx, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	if (!a)
		return BNF_ERR_NOMEM;
	a->f = v;
	a->has_f = 1;
	return BNF_OK;
}

/* Before opset 7, Gemm broadcast C only when told to. */
static int set_int_attr(struct fold_ctx *ctx, Onnx__NodeProto *node, const char *name, int64_t v)
{
	Onnx__AttributeProto *a =
	    attr_for_update(ctx, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	if (!a)
		return BNF_ERR_NOMEM;
	a->i = v;
	a->has_i = 1;
	return BNF_OK;
}

/*
 * Gemm -> BatchNormalization
 *
 *   A -> Gemm(B, C?; alpha, beta, transA, transB) -> BN -> Y
 *   becomes
 *   A -> Gemm(B', C'; alpha, beta = 1, transA, transB) -> Y
 *
 * Folds when: B (and C if present) are constants of one float type, B is
 * 2-D with N output columns (B' is (K, N), or (N, K) with transB=1) equal to
 * the BN's channel count, and C broadcasts to (M, N) (scalar, (N), (1, N),
 * (M, 1) or (M, N)). The BN's channel axis of a 2-D output is axis 1 = N.
 *
 *   B'[., n] = B[., n] * s[n]                 (a row of B when transB=1)
 *   C'[r, n] = beta * (C[r, n] or 0) * s[n] + t[n]   and beta becomes 1
 */
int bnf_fold_into_gemm(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                       Onnx__NodeProto *gemm, struct fold_outcome *out)
{
	struct fold_buffers fb;
	const Onnx__TensorProto *wt = NULL, *ct = NULL;
	size_t nw = 0, nc = 0, n, rows_c = 1, cols_c = 1, r, c;
	int has_c = gemm->n_input >= 3 && gemm->input[2][0];
	int trans_b = bnf_fold_attr_int(gemm, "transB", 0) != 0;
	double beta = bnf_fold_attr_float(gemm, "beta", 1.0);
	int rc, dtype;
	int64_t c_dims[2];
	size_t c_rank;

	if (gemm->n_input < 2 || gemm->n_output != 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "Gemm '%s' does not have the inputs and output of a Gemm",
		                     bnf_node_label(gemm));
	memset(&fb, 0, sizeof(fb));
	rc = bnf_fold_read_layer(ctx, gi, gemm, "B", NULL, &nw, &wt, "C", &fb.b, &nc, &ct, out);
	if (rc != 1)
		goto out;
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims != 2) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "B '%s' of Gemm '%s' has rank %zu", gemm->input[1],
		              bnf_node_label(gemm), wt->n_dims);
		goto out;
	}
	n = (size_t)wt->dims[trans_b ? 0 : 1];
	if (n != bn->channels || n == 0) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "the BatchNormalization has %zu channels but Gemm '%s' has %zu outputs",
		    bn->channels, bnf_node_label(gemm), n);
		goto out;
	}
	if (has_c) {
		if (tensor_dtype(ct) != dtype) {
			bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
			              "Gemm '%s' has B of dtype %s and C of dtype %s",
			              bnf_node_label(gemm), bnf_dtype_label(dtype),
			              bnf_dtype_label(tensor_dtype(ct)));
			goto out;
		}
		/* C as (rows_c, cols_c) with numpy broadcasting against (M, N). */
		if (ct->n_dims == 2) {
			rows_c = (size_t)ct->dims[0];
			cols_c = (size_t)ct->dims[1];
		} else if (ct->n_dims <= 1) {
			cols_c = nc;
		}
		if (ct->n_dims > 2 || (cols_c != 1 && cols_c != n) || rows_c * cols_c != nc) {
			bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			              "C '%s' of Gemm '%s' does not broadcast to (M, %zu)",
			              gemm->input[2], bnf_node_label(gemm), n);
			goto out;
		}
	}
	if ((rc = alloc_bias(ctx, &fb, rows_c * n)) != BNF_OK)
		goto out;
	/* Output column n of B: its last axis, or its first when transB. */
	rc = scale_weight(ctx, gemm, wt, bn->s, trans_b ? (size_t)wt->dims[1] : 1, n, &fb);
	if (rc != BNF_OK)
		goto out;
	for (r = 0; r < rows_c; r++)
		for (c = 0; c < n; c++) {
			double cv = has_c ? fb.b[r * cols_c + (cols_c == 1 ? 0 : c)] : 0.0;
			fb.b_new[r * n + c] = beta * cv * bn->s[c] + bn->t[c];
		}
	if (keep_if_weight_overflow(out, &fb.w, dtype, 0) ||
	    keep_if_overflow(out, fb.b_new, rows_c * n, dtype, "bias", 0))
		goto out;

	if (has_c && ct->n_dims == 2) {
		c_dims[0] = (int64_t)rows_c;
		c_dims[1] = (int64_t)n;
		c_rank = 2;
	} else {
		c_dims[0] = (int64_t)n;
		c_rank = 1;
	}
	rc = store_weight(ctx, gi, gemm, dtype, wt, &fb);
	if (rc == BNF_OK)
		rc = bnf_fold_store_bias(ctx, gi, gemm, 2, dtype, c_dims, c_rank, fb.b_new,
		                         rows_c * n, gemm);
	if (rc == BNF_OK && beta != 1.0)
		rc = bnf_fold_set_float_attr(ctx, gemm, "beta", 1.0f);
	if (rc == BNF_OK && gi->opset < 7 && !(rows_c > 1 && c_rank == 2))
		rc = set_int_attr(ctx, gemm, "broadcast", 1);
	if (rc == BNF_OK)
		rc = bnf_fold_take_output(ctx, gi, bn, gemm);
	if (rc == BNF_OK) {
		bnf_fold_done(out, BNF_FOLD_KIND_GEMM, gemm);
	}
out:
	free_buffers(&fb);
	return rc < 0 ? rc : BNF_OK;
}

int bnf_fold_value_rank(const struct bnf_graph *gi, const char *name)
{
	return bnf_graph_value_rank(gi, name);
}

/* Turn the BN node into Add(x, t') with t' of shape [C, 1, ..., 1] for its
 * input of rank r: the bias of an N-D MatMul in front that has none. */
static int bn_becomes_bias_add(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                               int dtype, struct fold_outcome *out)
{
	Onnx__NodeProto *node = bn->node;
	int64_t dims[16];
	size_t d, r = (size_t)bn->input_rank;
	int rc;

	if (bn->input_rank < 2 || bn->input_rank > 16)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
		    "the rank of its input '%s' is not known, so the shift cannot be "
		    "added in its place",
		    node->input[0]);
	if (keep_if_overflow(out, bn->t, bn->channels, dtype, "shift", 0))
		return BNF_OK;
	dims[0] = (int64_t)bn->channels;
	for (d = 1; d + 1 < r; d++)
		dims[d] = 1;
	rc = bnf_fold_store_constant(ctx, gi, node, 1, dtype, dims, r - 1, bn->t, bn->channels,
	                             node->input[2]);
	if (rc == BNF_OK)
		rc = bnf_fold_become_add(ctx, gi, node);
	if (rc != BNF_OK)
		return rc;
	out->rewritten = 1;
	return BNF_OK;
}

/* Which Add input is the MatMul, which the constant: fills *mm and *slot,
 * or returns 0 with a keep outcome. */
static int split_bias_add(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *add,
                          Onnx__NodeProto **mm, size_t *slot, struct fold_outcome *out)
{
	Onnx__NodeProto *p0, *p1;

	if (add->n_input != 2)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "Add '%s' does not have two inputs", bnf_node_label(add)),
		       0;
	p0 = bnf_fold_producer(ctx, gi, add->input[0]);
	p1 = bnf_fold_producer(ctx, gi, add->input[1]);
	if (p0 && bnf_node_is(p0, "MatMul")) {
		*mm = p0;
		*slot = 1;
	} else if (p1 && bnf_node_is(p1, "MatMul")) {
		*mm = p1;
		*slot = 0;
	} else {
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		           "its input comes from Add '%s', which does not add to a MatMul "
		           "output",
		           bnf_node_label(add)),
		       0;
	}
	if (bnf_graph_uses(gi, (*mm)->output[0]) != 1 || bnf_graph_is_output(gi, (*mm)->output[0]))
		return bnf_fold_keep(out, BNF_KEEP_REASON_OTHER_CONSUMER,
		                     "the output of MatMul '%s' is also read outside Add '%s'",
		                     bnf_node_label(*mm), bnf_node_label(add)),
		       0;
	return 1;
}

/* The folded bias of MatMul mm: into a Gemm it becomes (C, the Add's
 * constant moved into it when there is an Add), or into the Add's
 * constant, or (neither) already added by the BN node turned Add. */
static int store_matmul_bias(struct fold_ctx *ctx, struct bnf_graph *gi, const struct fold_bn *bn,
                             Onnx__NodeProto *mm, Onnx__NodeProto *add, size_t add_slot,
                             int use_gemm, int dtype, const int64_t *b_dims, size_t b_rank,
                             struct fold_buffers *fb, struct fold_outcome *out)
{
	size_t n = bn->channels;
	int rc = BNF_OK;

	out->target = mm;
	if (use_gemm) {
		if (add) {
			/* The Add's constant moves into the Gemm as C. */
			rc = bnf_fold_store_bias(ctx, gi, add, add_slot, dtype, b_dims, 1,
			                         fb->b_new, n, mm);
			if (rc == BNF_OK)
				rc = bnf_node_append_input(mm, add->input[add_slot]) == 0
				         ? BNF_OK
				         : bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
			out->also_removed = add;
		} else {
			rc =
			    bnf_fold_store_bias(ctx, gi, mm, 2, dtype, b_dims, 1, fb->b_new, n, mm);
		}
		if (rc == BNF_OK)
			rc = bnf_fold_set_op_type(ctx, mm, "Gemm");
		if (rc == BNF_OK && gi->opset < 7)
			rc = set_int_attr(ctx, mm, "broadcast", 1);
		return rc == BNF_OK ? bnf_fold_take_output(ctx, gi, bn, mm) : rc;
	}
	if (!add)
		return BNF_OK; /* the BN node is the bias Add now */
	rc = bnf_fold_store_constant(ctx, gi, add, add_slot, dtype, b_dims, b_rank, fb->b_new, n,
	                             add->input[add_slot]);
	if (!bn->output_node)
		out->target = add;
	return rc == BNF_OK ? bnf_fold_take_output(ctx, gi, bn, add) : rc;
}

/* Is the MatMul's channel (its last axis) the BN's? Directly after it only
 * when its input is 2-D; through layout nodes the walk proved it. */
static int matmul_channel_proven(struct bnf_graph *gi, const struct fold_bn *bn,
                                 const Onnx__NodeProto *mm, int x_rank, struct fold_outcome *out)
{
	if (bn->output_node)
		return 1;
	if (x_rank < 0)
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
		           "the input '%s' of MatMul '%s' is not known to be 2-D; for other "
		           "ranks the BatchNormalization channel is not the MatMul output "
		           "column",
		           mm->input[0], bnf_node_label(mm)),
		       0;
	if (x_rank != 2)
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		           "the input '%s' of MatMul '%s' has rank %d: the BatchNormalization "
		           "channel (axis 1) is not the MatMul output column",
		           mm->input[0], bnf_node_label(mm), x_rank),
		       0;
	(void)gi;
	return 1;
}

/*
 * MatMul [-> Add] -> BatchNormalization
 *
 *   X -> MatMul(W) [-> Add(bias)] -> BN -> Y
 *   becomes
 *   X -> Gemm(W', bias') -> Y            (or MatMul(W') -> Add(bias') -> Y
 *                                          where Gemm cannot take the dtype:
 *                                          bfloat16 before opset 13)
 *
 * Folds when: X is known to be 2-D (for higher ranks BN's channel axis 1 is
 * not the last axis N), W is a constant 2-D (K, N) matrix with N equal to
 * the BN's channel count, and the optional Add adds a constant of N values
 * (shape (N), (1, N) or a scalar) to a MatMul output read by nothing else.
 *
 * Through layout nodes (layout.c proved that the BN's channel is the
 * MatMul's last axis, whatever X's rank): MatMul(W') [-> Add(bias')] -> the
 * layout nodes, the Add keeping its place (its bias shaped [1, ..., 1, N]
 * or [N]); without an Add, a 2-D X gives Gemm(W', bias'), any other the BN
 * node turned into Add(t') of shape [C, 1, ..., 1] where it was.
 *
 *   W'[k, n] = W[k, n] * s[n]
 *   bias'[n] = (bias[n] or 0) * s[n] + t[n]
 */
int bnf_fold_into_matmul(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                         Onnx__NodeProto *producer, struct fold_outcome *out)
{
	struct fold_buffers fb;
	const Onnx__TensorProto *wt = NULL, *bt = NULL;
	Onnx__NodeProto *mm = producer, *add = NULL;
	size_t nw = 0, nb = 0, n, i, d, add_slot = 1;
	int rc = BNF_OK, dtype, use_gemm, x_rank, through = bn->output_node != NULL;
	int64_t b_dims[16];
	size_t b_rank = 1;

	if (bnf_node_is(producer, "Add")) {
		add = producer;
		if (!split_bias_add(ctx, gi, add, &mm, &add_slot, out))
			return BNF_OK;
	}
	if (mm->n_input != 2 || mm->n_output != 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "MatMul '%s' does not have two inputs", bnf_node_label(mm));
	memset(&fb, 0, sizeof(fb));
	rc = bnf_fold_read_constant(ctx, gi, mm, 1, "weight", NULL, &nw, &wt, out);
	if (rc != 1)
		goto out;
	if (add) {
		rc = bnf_fold_read_constant(ctx, gi, add, add_slot, "bias", &fb.b, &nb, &bt, out);
		if (rc != 1)
			goto out;
	}
	rc = BNF_OK;
	dtype = tensor_dtype(wt);
	if (wt->n_dims != 2) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "weight '%s' of MatMul '%s' has rank %zu, not 2", mm->input[1],
		              bnf_node_label(mm), wt->n_dims);
		goto out;
	}
	x_rank = bnf_fold_value_rank(gi, mm->input[0]);
	if (!matmul_channel_proven(gi, bn, mm, x_rank, out))
		goto out;
	n = (size_t)wt->dims[1];
	if (n != bn->channels || n == 0) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		    "the BatchNormalization has %zu channels but MatMul '%s' has %zu outputs",
		    bn->channels, bnf_node_label(mm), n);
		goto out;
	}
	b_dims[0] = (int64_t)n;
	if (add) {
		/* The bias keeps its rank (a rank above X's would raise the
		 * Add's); all its dims but the last are 1. */
		int per_column = bt->n_dims <= (through ? 16u : 2u) && (nb == n || nb == 1);
		for (d = 0; per_column && d + 1 < bt->n_dims; d++)
			per_column = bt->dims[d] == 1;
		if (!per_column || tensor_dtype(bt) != dtype) {
			bnf_fold_keep(
			    out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			    "the bias '%s' of Add '%s' is not %zu values of the weight's dtype",
			    add->input[add_slot], bnf_node_label(add), n);
			goto out;
		}
		if (through && bt->n_dims > 1) {
			for (d = 0; d + 1 < bt->n_dims; d++)
				b_dims[d] = 1;
			b_dims[bt->n_dims - 1] = (int64_t)n;
			b_rank = bt->n_dims;
		}
	}
	if ((rc = alloc_bias(ctx, &fb, n)) != BNF_OK)
		goto out;
	if ((rc = scale_weight(ctx, mm, wt, bn->s, 1, n, &fb)) != BNF_OK)
		goto out;
	for (i = 0; i < n; i++)
		fb.b_new[i] = (add ? fb.b[nb == 1 ? 0 : i] : 0.0) * bn->s[i] + bn->t[i];
	if (keep_if_weight_overflow(out, &fb.w, dtype, 0) ||
	    keep_if_overflow(out, fb.b_new, n, dtype, "bias", 0))
		goto out;

	use_gemm = !(dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 && gi->opset < 13) &&
	           x_rank == 2 && !(through && add);
	if (!use_gemm && !add && !through) {
		/* MatMul + Add would need a new node; the BN node is the only
		 * slot we could reuse, so keep the pair as it is. */
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "MatMul '%s' is bfloat16 and Gemm takes bfloat16 only from opset 13",
		              bnf_node_label(mm));
		goto out;
	}
	if (!use_gemm && !add && (rc = bn_becomes_bias_add(ctx, gi, bn, dtype, out)) != BNF_OK)
		goto out;
	if (out->reason != BNF_KEEP_REASON_NONE)
		goto out;
	rc = store_weight(ctx, gi, mm, dtype, wt, &fb);
	if (rc == BNF_OK)
		rc = store_matmul_bias(ctx, gi, bn, mm, add, add_slot, use_gemm, dtype, b_dims,
		                       b_rank, &fb, out);
	if (rc == BNF_OK) {
		out->reason = BNF_KEEP_REASON_NONE;
		out->kind = BNF_FOLD_KIND_MATMUL;
	}
out:
	free_buffers(&fb);
	return rc < 0 ? rc : BNF_OK;
}
