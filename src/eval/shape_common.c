/*
 * The helpers the shape family's files share: errors that
 * name the node, reading shape and axes inputs, a single strided copy by
 * element size that every data-movement operator uses (so no operator is
 * written once per dtype), and element access as double for the arithmetic.
 */
#include "eval/shape_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bnf_shp_fail(const struct bnf_op_ctx *ctx, enum bnf_status status, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return bnf_fail(ctx->err, status, "%s", msg);
}

int bnf_shp_check_io(const struct bnf_op_ctx *ctx, size_t min_in, size_t max_in)
{
	size_t i;

	if (ctx->n_in < min_in || ctx->n_in > max_in)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "has %zu inputs, expected %zu to %zu",
		                    ctx->n_in, min_in, max_in);
	for (i = 0; i < min_in; i++)
		if (!ctx->in[i])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "required input %zu is missing", i);
	if (ctx->n_out < 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "has no output");
	return BNF_OK;
}

const struct bnf_tensor *bnf_shp_in(const struct bnf_op_ctx *ctx, size_t i)
{
	return i < ctx->n_in ? ctx->in[i] : NULL;
}

int bnf_shp_axis(const struct bnf_op_ctx *ctx, int64_t axis, int rank, const char *what, int *out)
{
	if (axis < -(int64_t)rank || axis >= rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s %lld is outside [%d, %d]", what,
		                    (long long)axis, -rank, rank - 1);
	*out = (int)(axis < 0 ? axis + rank : axis);
	return BNF_OK;
}

int bnf_shp_axes(const struct bnf_op_ctx *ctx, int64_t *axes, size_t n, int rank, const char *what,
                 unsigned *mask)
{
	size_t i;
	int a = 0;

	*mask = 0;
	for (i = 0; i < n; i++) {
		if (bnf_shp_axis(ctx, axes[i], rank, what, &a) != BNF_OK)
			return ctx->err->status;
		if (*mask & (1u << a))
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s names axis %d twice", what, a);
		*mask |= 1u << a;
		axes[i] = a;
	}
	return BNF_OK;
}

/* Shared checks of the list readers: rank at most 1 and at most max values. */
static int check_list(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, const char *what,
                      size_t max)
{
	if (t->rank > 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s must have rank 0 or 1, not %d", what,
		                    t->rank);
	if (t->count > max)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s has %zu values, more than %zu", what,
		                    t->count, max);
	return BNF_OK;
}

int bnf_shp_read_ints(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, const char *what,
                      int64_t *out, size_t max, size_t *n)
{
	size_t i;

	if (t->dtype != DT(INT64) && t->dtype != DT(INT32))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s must be int64 or int32, not %s", what,
		                    bnf_dtype_name(t->dtype));
	if (check_list(ctx, t, what, max) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < t->count; i++)
		out[i] = bnf_shp_get_int(t, i);
	*n = t->count;
	return BNF_OK;
}

int bnf_shp_read_doubles(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, const char *what,
                         double *out, size_t max, size_t *n)
{
	size_t i;

	if (!bnf_shp_is_float(t->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s must be a floating tensor, not %s",
		                    what, bnf_dtype_name(t->dtype));
	if (check_list(ctx, t, what, max) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < t->count; i++)
		out[i] = bnf_shp_get(t, i);
	*n = t->count;
	return BNF_OK;
}

int bnf_shp_ints_arg(const struct bnf_op_ctx *ctx, const char *name, int input_from, size_t input,
                     int64_t *out, size_t max, size_t *n, int *present)
{
	const struct bnf_tensor *t;

	*n = 0;
	*present = 0;
	if (ctx->opset < input_from) {
		if (bnf_shp_in(ctx, input))
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "takes '%s' as an attribute before opset %d, not as "
			                    "input %zu",
			                    name, input_from, input);
		*present = bnf_attr_find(ctx->node, name) != NULL;
		return bnf_attr_ints(ctx->node, name, out, max, n, ctx->err);
	}
	if (bnf_attr_find(ctx->node, name))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "takes '%s' as input %zu from opset %d, not as an attribute",
		                    name, input, input_from);
	t = bnf_shp_in(ctx, input);
	if (!t)
		return BNF_OK;
	*present = 1;
	return bnf_shp_read_ints(ctx, t, name, out, max, n);
}

int bnf_shp_new_out(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims)
{
	if (!bnf_op_wants_output(ctx, i))
		return BNF_OK;
	ctx->out[i] = bnf_tensor_new(dtype, rank, dims, ctx->err);
	if (!ctx->out[i]) {
		bnf_error_prefix(ctx->err, "output %zu", i);
		return ctx->err->status;
	}
	return BNF_OK;
}

void bnf_shp_strides(int rank, const int64_t *dims, int64_t *strides)
{
	int64_t s = 1;
	int i;

	for (i = rank - 1; i >= 0; i--) {
		strides[i] = s;
		s *= dims[i];
	}
}

/* One element; the switch turns into a single load and store for the sizes
 * the evaluator holds. */
static void copy_elem(char *d, const char *s, size_t esize)
{
	switch (esize) {
	case 1:
		*d = *s;
		break;
	case 4:
		memcpy(d, s, 4);
		break;
	case 8:
		memcpy(d, s, 8);
		break;
	default:
		memcpy(d, s, esize);
		break;
	}
}

void bnf_shp_copy(size_t esize, int rank, const int64_t *dims, const void *src,
                  const int64_t *sstride, void *dst, const int64_t *dstride)
{
	const char *s = src;
	char *d = dst;
	int64_t idx[BNF_SHP_MAX_VIEW] = {0};
	int64_t soff = 0, doff = 0, inner = 1, sin = 0, din = 0, j;
	int i;

	for (i = 0; i < rank; i++)
		if (dims[i] == 0)
			return;
	if (rank > 0) {
		inner = dims[rank - 1];
		sin = sstride[rank - 1];
		din = dstride[rank - 1];
	}
	/* Offsets stay integers until an element is touched, so a negative
	 * stride never forms a pointer outside the buffer. */
	for (;;) {
		if (sin == 1 && din == 1) {
			memcpy(d + doff * (int64_t)esize, s + soff * (int64_t)esize,
			       (size_t)inner * esize);
		} else {
			for (j = 0; j < inner; j++)
				copy_elem(d + (doff + j * din) * (int64_t)esize,
				          s + (soff + j * sin) * (int64_t)esize, esize);
		}
		for (i = rank - 2; i >= 0; i--) {
			soff += sstride[i];
			doff += dstride[i];
			if (++idx[i] < dims[i])
				break;
			soff -= sstride[i] * dims[i];
			doff -= dstride[i] * dims[i];
			idx[i] = 0;
		}
		if (i < 0)
			return;
	}
}

void bnf_shp_fill(struct bnf_tensor *t, const void *elem)
{
	size_t esize = bnf_tensor_elem_size(t->dtype);
	size_t total = t->count * esize, done;
	char *d = t->data;

	if (t->count == 0)
		return;
	memcpy(d, elem, esize);
	/* Double the filled prefix until the buffer is full. */
	for (done = esize; done < total; done *= 2)
		memcpy(d + done, d, done < total - done ? done : total - done);
}

int bnf_shp_is_float(int dtype)
{
	return dtype == DT(FLOAT) || dtype == DT(DOUBLE) || dtype == DT(FLOAT16) ||
	       dtype == DT(BFLOAT16);
}

double bnf_shp_get(const struct bnf_tensor *t, size_t i)
{
	switch (t->dtype) {
	case DT(FLOAT):
	case DT(FLOAT16):
	case DT(BFLOAT16):
		return ((const float *)t->data)[i];
	case DT(DOUBLE):
		return ((const double *)t->data)[i];
	default:
		return bnf_tensor_get_double(t, i);
	}
}

int64_t bnf_shp_get_int(const struct bnf_tensor *t, size_t i)
{
	return bnf_tensor_get_int(t, i);
}

/* v truncated toward zero and saturated to [lo, hi]; NaN becomes 0. */
static double saturate(double v, double lo, double hi)
{
	if (isnan(v))
		return 0;
	v = trunc(v);
	return v < lo ? lo : v > hi ? hi : v;
}

void bnf_shp_set(struct bnf_tensor *t, size_t i, double v)
{
	switch (t->dtype) {
	case DT(FLOAT):
		((float *)t->data)[i] = (float)v;
		break;
	case DT(FLOAT16):
		((float *)t->data)[i] = bnf_f16_to_f32(bnf_f32_to_f16((float)v));
		break;
	case DT(BFLOAT16):
		((float *)t->data)[i] = bnf_bf16_to_f32(bnf_f32_to_bf16((float)v));
		break;
	case DT(DOUBLE):
		((double *)t->data)[i] = v;
		break;
	case DT(INT64):
		/* 2^63 is the first double above INT64_MAX. */
		v = saturate(v, -9223372036854775808.0, 9223372036854775808.0);
		((int64_t *)t->data)[i] = v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)v;
		break;
	case DT(INT32):
		((int32_t *)t->data)[i] = (int32_t)saturate(v, INT32_MIN, INT32_MAX);
		break;
	case DT(INT8):
		((int8_t *)t->data)[i] = (int8_t)saturate(v, INT8_MIN, INT8_MAX);
		break;
	case DT(INT16):
		((int16_t *)t->data)[i] = (int16_t)saturate(v, INT16_MIN, INT16_MAX);
		break;
	case DT(UINT16):
		((uint16_t *)t->data)[i] = (uint16_t)saturate(v, 0, UINT16_MAX);
		break;
	case DT(UINT32):
		((uint32_t *)t->data)[i] = (uint32_t)saturate(v, 0, UINT32_MAX);
		break;
	case DT(UINT64):
		/* 2^64 is the first double above UINT64_MAX. */
		v = saturate(v, 0, 18446744073709551616.0);
		((uint64_t *)t->data)[i] = v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
		break;
	case DT(BOOL):
		((uint8_t *)t->data)[i] = v != 0;
		break;
	default:
		((uint8_t *)t->data)[i] = (uint8_t)saturate(v, 0, UINT8_MAX);
		break;
	}
}
