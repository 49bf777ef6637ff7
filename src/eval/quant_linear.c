/*
 * QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear. A scale and
 * zero point apply to the whole tensor, or from opset 13 one per index
 * along `axis` (a 1-D scale). Quantizing divides in float32 and rounds
 * half to even, then adds the zero point and saturates; dequantizing
 * multiplies in float32, as onnxruntime does.
 */
#include "eval/quant_ops.h"

#include <math.h>
#include <string.h>

int bnf_q_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the outputs */
	return BNF_OK;
}

int64_t bnf_q_saturate(int dtype, double v)
{
	double lo, hi;

	switch (dtype) {
	case DT(UINT8):
		lo = 0, hi = 255;
		break;
	case DT(INT8):
		lo = -128, hi = 127;
		break;
	case DT(UINT16):
		lo = 0, hi = 65535;
		break;
	case DT(INT16):
		lo = -32768, hi = 32767;
		break;
	default: /* INT32 */
		lo = -2147483648.0, hi = 2147483647.0;
		break;
	}
	if (isnan(v))
		return 0;
	return (int64_t)(v < lo ? lo : v > hi ? hi : v);
}

/* Which scale and zero-point entry element i of x uses: 0 for a per-tensor
 * pair, else its index along the axis. */
struct q_axis {
	int per_axis;
	int64_t inner, n; /* stride and length of the axis in x */
};

static int q_axis(const struct bnf_op_ctx *ctx, const struct bnf_tensor *x,
                  const struct bnf_tensor *scale, const struct bnf_tensor *zp, struct q_axis *q)
{
	int64_t axis_attr, strides[BNF_MAX_RANK];
	int axis;

	memset(q, 0, sizeof(*q));
	if (scale->count == 1 && scale->rank <= 1) {
		if (zp && zp->count != 1)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "the zero point must be a scalar "
			                    "with a scalar scale");
		return BNF_OK;
	}
	if (ctx->opset < 13 || scale->rank != 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "the scale must be a scalar%s",
		                    ctx->opset < 13 ? " before opset 13" : " or 1-D");
	if (bnf_attr_int(ctx->node, "axis", 1, &axis_attr, ctx->err) != BNF_OK ||
	    bnf_shp_axis(ctx, axis_attr, x->rank, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	if (scale->dims[0] != x->dims[axis] || (zp && zp->count != scale->count))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "scale and zero point need %lld values",
		                    (long long)x->dims[axis]);
	bnf_shp_strides(x->rank, x->dims, strides);
	q->per_axis = 1;
	q->inner = strides[axis];
	q->n = x->dims[axis];
	return BNF_OK;
}

static size_t q_index(const struct q_axis *q, size_t i)
{
	return q->per_axis ? (size_t)(((int64_t)i / q->inner) % q->n) : 0;
}

/* QuantizeLinear: y = saturate(round(x / scale) + zero_point), of the zero
 * point's type (uint8 when it is absent). */
int bnf_q_quantize_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *scale, *zp;
	struct q_axis q;
	int dtype;
	size_t i;

	if (bnf_shp_check_io(ctx, 2, 3) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	scale = ctx->in[1];
	zp = bnf_shp_in(ctx, 2);
	dtype = zp ? zp->dtype : DT(UINT8);
	if (!bnf_shp_is_float(scale->dtype) || !bnf_dtype_is_integer(dtype) ||
	    bnf_tensor_elem_size(dtype) > 2)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "a %s scale and a %s zero point are not supported",
		                    bnf_dtype_name(scale->dtype), bnf_dtype_name(dtype));
	if (q_axis(ctx, x, scale, zp, &q) != BNF_OK ||
	    bnf_shp_new_out(ctx, 0, dtype, x->rank, x->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (i = 0; i < x->count; i++) {
		size_t k = q_index(&q, i);
		double v;
		if (x->dtype == DT(DOUBLE))
			v = bnf_shp_get(x, i) / bnf_shp_get(scale, k);
		else
			v = (float)bnf_shp_get(x, i) / (float)bnf_shp_get(scale, k);
		v = rint(v) + (zp ? (double)bnf_shp_get_int(zp, k) : 0.0);
		bnf_tensor_set_int(ctx->out[0], i, bnf_q_saturate(dtype, v));
	}
	return BNF_OK;
}

/* DequantizeLinear: y = (x - zero_point) * scale, of the scale's type. */
int bnf_q_dequantize_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *scale, *zp;
	struct q_axis q;
	size_t i;

	if (bnf_shp_check_io(ctx, 2, 3) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	scale = ctx->in[1];
	zp = bnf_shp_in(ctx, 2);
	if (!bnf_dtype_is_integer(x->dtype) || !bnf_shp_is_float(scale->dtype) ||
	    (zp && zp->dtype != x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "x must be integer, the zero point of its type and the scale "
		                    "floating");
	if (q_axis(ctx, x, scale, zp, &q) != BNF_OK ||
	    bnf_shp_new_out(ctx, 0, scale->dtype, x->rank, x->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (i = 0; i < x->count; i++) {
		size_t k = q_index(&q, i);
		double d = (double)(bnf_shp_get_int(x, i) - (zp ? bnf_shp_get_int(zp, k) : 0));
		double v = scale->dtype == DT(DOUBLE)
		               ? d * bnf_shp_get(scale, k)
		               : (double)((float)d * (float)bnf_shp_get(scale, k));
		bnf_shp_set(ctx->out[0], i, v);
	}
	return BNF_OK;
}

/* DynamicQuantizeLinear: uint8 quantization whose range covers the input
 * and zero: scale = (max(x, 0) - min(x, 0)) / 255 (1 when that range is
 * empty), zero point = saturate(round(-min / scale)). */
int bnf_q_dynamic_quantize_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	float lo = 0.0f, hi = 0.0f, scale, v;
	int64_t zp;
	size_t i;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (x->dtype != DT(FLOAT))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "x must be float, not %s",
		                    bnf_dtype_name(x->dtype));
	for (i = 0; i < x->count; i++) {
		v = ((const float *)x->data)[i];
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
	zp = bnf_q_saturate(DT(UINT8), rint(0.0f - lo / scale));
	if (bnf_shp_new_out(ctx, 0, DT(UINT8), x->rank, x->dims) != BNF_OK ||
	    bnf_shp_new_out(ctx, 1, DT(FLOAT), 0, NULL) != BNF_OK ||
	    bnf_shp_new_out(ctx, 2, DT(UINT8), 0, NULL) != BNF_OK)
		return ctx->err->status;
	for (i = 0; ctx->out[0] && i < x->count; i++)
		((uint8_t *)ctx->out[0]->data)[i] = (uint8_t)bnf_q_saturate(
		    DT(UINT8), rint(((const float *)x->data)[i] / scale) + (double)zp);
	if (ctx->n_out > 1 && ctx->out[1])
		((float *)ctx->out[1]->data)[0] = scale;
	if (ctx->n_out > 2 && ctx->out[2])
		((uint8_t *)ctx->out[2]->data)[0] = (uint8_t)zp;
	return BNF_OK;
}
