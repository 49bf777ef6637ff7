/*
 * The integer convolution and matrix product (ConvInteger, MatMulInteger)
 * and their quantized forms (QLinearConv, QLinearMatMul). Inputs less
 * their zero points are exact in double, and so are the sums of their
 * products for any tensor that fits in memory, so the float64 Conv and
 * MatMul steps compute the integer results; the quantized forms then
 * scale each by x_scale * w_scale / y_scale in float32, round half to even
 * and saturate, as onnxruntime requantizes.
 */
#include "eval/quant_ops.h"
#include "eval/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A double copy of t less its zero point zp: one value, or one per index
 * along axis (ConvInteger's per-channel w, MatMulInteger's per-row A and
 * per-column B). NULL with err set. */
static struct bnf_tensor *centered(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t,
                                   const struct bnf_tensor *zp, int axis, const char *what)
{
	struct bnf_tensor *d;
	int64_t strides[BNF_MAX_RANK];
	size_t i;

	if (t->dtype != DT(UINT8) && t->dtype != DT(INT8)) {
		bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "%s must be int8 or uint8, not %s", what,
		             bnf_dtype_name(t->dtype));
		return NULL;
	}
	if (zp &&
	    (zp->dtype != t->dtype || (zp->count != 1 && (axis < 0 || axis >= t->rank ||
	                                                  (int64_t)zp->count != t->dims[axis])))) {
		bnf_shp_fail(ctx, BNF_ERR_INPUT, "the zero point of %s does not fit it", what);
		return NULL;
	}
	d = bnf_tensor_new_uninit(DT(DOUBLE), t->rank, t->dims, ctx->err);
	if (!d)
		return NULL;
	bnf_shp_strides(t->rank, t->dims, strides);
	for (i = 0; i < t->count; i++) {
		size_t k = zp && zp->count > 1
		               ? (size_t)(((int64_t)i / strides[axis]) % t->dims[axis])
		               : 0;
		((double *)d->data)[i] =
		    (double)(bnf_shp_get_int(t, i) - (zp ? bnf_shp_get_int(zp, k) : 0));
	}
	return d;
}

/* Run an nn step pair on double operands in place of the node's own. */
static int nested(const struct bnf_op_ctx *ctx, int (*shape)(struct bnf_op_ctx *),
                  int (*compute)(struct bnf_op_ctx *), struct bnf_tensor **in, size_t n_in,
                  struct bnf_tensor **out)
{
	struct bnf_op_ctx sub = *ctx;
	int rc;

	sub.n_in = n_in;
	sub.in = in;
	sub.n_out = 1;
	sub.out = out;
	sub.donor = NULL;
	sub.donor_taken = 0;
	*out = NULL;
	rc = shape(&sub);
	if (rc == BNF_OK)
		rc = compute(&sub);
	return rc;
}

/* The integer result of (x - x_zp) conv (w - w_zp) or (a - a_zp) @ (b -
 * b_zp), in double. */
static int integer_product(const struct bnf_op_ctx *ctx, int conv, size_t x_at, size_t xz_at,
                           size_t w_at, size_t wz_at, struct bnf_tensor **acc)
{
	const struct bnf_tensor *x = ctx->in[x_at], *w = ctx->in[w_at];
	struct bnf_tensor *in[2];
	int rc;

	*acc = NULL;
	in[0] = centered(ctx, x, bnf_shp_in(ctx, xz_at), conv ? -1 : x->rank - 2, "input A/x");
	in[1] = centered(ctx, w, bnf_shp_in(ctx, wz_at), conv ? 0 : w->rank - 1, "input B/w");
	if (conv && in[0] && bnf_shp_in(ctx, xz_at) && bnf_shp_in(ctx, xz_at)->count != 1)
		rc = bnf_shp_fail(ctx, BNF_ERR_INPUT, "x's zero point must be a scalar");
	else if (!in[0] || !in[1])
		rc = ctx->err->status;
	else if (conv)
		rc = nested(ctx, bnf_nn_conv_shape, bnf_nn_conv_compute, in, 2, acc);
	else
		rc = nested(ctx, bnf_nn_matmul_shape, bnf_nn_matmul_compute, in, 2, acc);
	bnf_tensor_free(in[0]);
	bnf_tensor_free(in[1]);
	return rc;
}

/* Output 0 of dtype shaped like acc, from acc's values through store. */
static int integer_output(struct bnf_op_ctx *ctx, const struct bnf_tensor *acc, int dtype)
{
	size_t i;

	if (bnf_shp_new_out(ctx, 0, dtype, acc->rank, acc->dims) != BNF_OK)
		return ctx->err->status;
	for (i = 0; ctx->out[0] && i < acc->count; i++)
		bnf_tensor_set_int(ctx->out[0], i, (int64_t)((const double *)acc->data)[i]);
	return BNF_OK;
}

/* ConvInteger: x, w, x_zero_point, w_zero_point; Conv's attributes. */
int bnf_q_conv_integer_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *acc;
	int rc;

	if (bnf_shp_check_io(ctx, 2, 4) != BNF_OK)
		return ctx->err->status;
	rc = integer_product(ctx, 1, 0, 2, 1, 3, &acc);
	if (rc == BNF_OK)
		rc = integer_output(ctx, acc, DT(INT32));
	bnf_tensor_free(acc);
	return rc;
}

/* MatMulInteger: A, B, a_zero_point (scalar or per row), b_zero_point
 * (scalar or per column); MatMul's broadcasting. */
int bnf_q_matmul_integer_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *acc;
	int rc;

	if (bnf_shp_check_io(ctx, 2, 4) != BNF_OK)
		return ctx->err->status;
	if (ctx->in[0]->rank < 2 || ctx->in[1]->rank < 2)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "A and B must be matrices or stacks "
		                    "of them");
	rc = integer_product(ctx, 0, 0, 2, 1, 3, &acc);
	if (rc == BNF_OK)
		rc = integer_output(ctx, acc, DT(INT32));
	bnf_tensor_free(acc);
	return rc;
}

/* Requantize acc (+ bias per channel of axis 1 for a convolution) to the
 * type of y_zero_point: x_scale * w_scale[c] / y_scale, float32. The
 * scale of w is per channel (axis 1 of a conv output) or per column (the
 * last axis of a product); a's scale per row is not supported. */
static int requantize(struct bnf_op_ctx *ctx, const struct bnf_tensor *acc,
                      const struct bnf_tensor *xs, const struct bnf_tensor *ws,
                      const struct bnf_tensor *ys, const struct bnf_tensor *yz,
                      const struct bnf_tensor *bias, int conv)
{
	int64_t strides[BNF_MAX_RANK], n_chan;
	int axis = conv ? 1 : acc->rank - 1;
	size_t i;

	if (xs->count != 1 || ys->count != 1 || yz->count != 1)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "the scales of x/a and y and y's zero point must be scalars");
	n_chan = acc->dims[axis];
	if (ws->count != 1 && (int64_t)ws->count != n_chan)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "w's scale has %zu values for %lld channels", ws->count,
		                    (long long)n_chan);
	if (bias && ((int64_t)bias->count != n_chan || bias->dtype != DT(INT32)))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "B must be int32 with one value per channel");
	if (bnf_shp_new_out(ctx, 0, yz->dtype, acc->rank, acc->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	bnf_shp_strides(acc->rank, acc->dims, strides);
	for (i = 0; i < acc->count; i++) {
		size_t c = (size_t)(((int64_t)i / strides[axis]) % n_chan);
		float mult = (float)bnf_shp_get(xs, 0) *
		             (float)bnf_shp_get(ws, ws->count > 1 ? c : 0) /
		             (float)bnf_shp_get(ys, 0);
		double a = ((const double *)acc->data)[i] + (bias ? bnf_shp_get(bias, c) : 0.0);
		float v = (float)a * mult;
		bnf_tensor_set_int(
		    ctx->out[0], i,
		    bnf_q_saturate(yz->dtype, rint((double)v) + (double)bnf_shp_get_int(yz, 0)));
	}
	return BNF_OK;
}

/* QLinearConv: x, x_scale, x_zero_point, w, w_scale, w_zero_point,
 * y_scale, y_zero_point, B (int32, optional). */
int bnf_q_qlinear_conv_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *acc;
	int rc;

	if (bnf_shp_check_io(ctx, 8, 9) != BNF_OK)
		return ctx->err->status;
	rc = integer_product(ctx, 1, 0, 2, 3, 5, &acc);
	if (rc == BNF_OK)
		rc = requantize(ctx, acc, ctx->in[1], ctx->in[4], ctx->in[6], ctx->in[7],
		                bnf_shp_in(ctx, 8), 1);
	bnf_tensor_free(acc);
	return rc;
}

/* QLinearMatMul: a, a_scale, a_zero_point, b, b_scale, b_zero_point,
 * y_scale, y_zero_point. */
int bnf_q_qlinear_matmul_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *acc;
	int rc;

	if (bnf_shp_check_io(ctx, 8, 8) != BNF_OK)
		return ctx->err->status;
	if (ctx->in[0]->rank < 2 || ctx->in[3]->rank < 2)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "a and b must be matrices or stacks "
		                    "of them");
	rc = integer_product(ctx, 0, 0, 2, 3, 5, &acc);
	if (rc == BNF_OK)
		rc = requantize(ctx, acc, ctx->in[1], ctx->in[4], ctx->in[6], ctx->in[7], NULL, 0);
	bnf_tensor_free(acc);
	return rc;
}
