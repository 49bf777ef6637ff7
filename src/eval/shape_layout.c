/*
 * Operators that change only a tensor's shape or build one from a shape:
 * Flatten, Reshape, Squeeze, Unsqueeze (the bytes are copied unchanged),
 * Shape, Transpose, Expand, Tile, ConstantOfShape and Range. Every shape
 * read from an input is checked before anything is allocated.
 */
#include "eval/shape_common.h"

#include <math.h>
#include <string.h>

/* Product of dims[from .. to), all already checked non-negative and within
 * an existing tensor's shape, so it cannot overflow. */
static int64_t dims_product(const int64_t *dims, int from, int to)
{
	int64_t p = 1;

	for (; from < to; from++)
		p *= dims[from];
	return p;
}

int bnf_shp_flatten_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axis, dims[2];

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", 1, &axis, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	/* Axis may equal the rank (everything in the first dim); negative
	 * values count from the end since opset 11. */
	if (axis < -(int64_t)x->rank || axis > x->rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "axis %lld is outside [%d, %d]",
		                    (long long)axis, -x->rank, x->rank);
	if (axis < 0)
		axis += x->rank;
	dims[0] = dims_product(x->dims, 0, (int)axis);
	dims[1] = dims_product(x->dims, (int)axis, x->rank);
	return bnf_shp_new_out(ctx, 0, x->dtype, 2, dims);
}

int bnf_shp_reshape_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t shape[BNF_MAX_RANK + 1], allowzero = 0, known = 1;
	size_t n, i;
	int present, infer = -1;

	/* Opset 1 took the shape as an attribute; from 5 it is input 1. */
	if (bnf_shp_check_io(ctx, ctx->opset < 5 ? 1 : 2, ctx->opset < 5 ? 1 : 2) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "shape", 5, 1, shape, BNF_MAX_RANK, &n, &present) != BNF_OK)
		return ctx->err->status;
	if (ctx->opset >= 14 &&
	    bnf_attr_int(ctx->node, "allowzero", 0, &allowzero, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	for (i = 0; i < n; i++) {
		if (shape[i] == 0 && !allowzero) {
			/* 0 copies the input's dim at the same index. */
			if (i >= (size_t)x->rank)
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "shape[%zu] is 0 but the input has rank %d", i,
				                    x->rank);
			shape[i] = x->dims[i];
		} else if (shape[i] == -1) {
			if (infer >= 0)
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "shape has more than one -1");
			infer = (int)i;
			continue;
		} else if (shape[i] < 0 || shape[i] > (int64_t)BNF_MAX_ELEMENTS) {
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "shape[%zu] = %lld is invalid", i,
			                    (long long)shape[i]);
		}
		/* known stays below 2^31 * 2^31 before this check fails. */
		known *= shape[i];
		if (known > (int64_t)BNF_MAX_ELEMENTS)
			known = (int64_t)BNF_MAX_ELEMENTS + 1;
	}
	if (infer >= 0) {
		if (known == 0 || (int64_t)x->count % known != 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "cannot infer the -1 in shape: %zu elements do not "
			                    "divide by %lld",
			                    x->count, (long long)known);
		shape[infer] = (int64_t)x->count / known;
		known = (int64_t)x->count;
	}
	if (known != (int64_t)x->count)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "shape holds %lld elements but the input has %zu",
		                    (long long)known, x->count);
	return bnf_shp_new_out(ctx, 0, x->dtype, (int)n, shape);
}

int bnf_shp_squeeze_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	size_t n;
	unsigned mask;
	int present, i, rank = 0;

	if (bnf_shp_check_io(ctx, 1, ctx->opset < 13 ? 1 : 2) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "axes", 13, 1, axes, BNF_MAX_RANK, &n, &present) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (bnf_shp_axes(ctx, axes, n, x->rank, "axes", &mask) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < x->rank; i++) {
		int named = (mask >> i) & 1;
		if (named && x->dims[i] != 1)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "cannot squeeze axis %d of size %lld", i,
			                    (long long)x->dims[i]);
		/* Without axes every dim of size 1 goes. */
		if (named || (n == 0 && x->dims[i] == 1))
			continue;
		dims[rank++] = x->dims[i];
	}
	return bnf_shp_new_out(ctx, 0, x->dtype, rank, dims);
}

int bnf_shp_unsqueeze_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	size_t n;
	unsigned mask;
	int present, i, rank, next = 0;

	if (bnf_shp_check_io(ctx, ctx->opset < 13 ? 1 : 2, ctx->opset < 13 ? 1 : 2) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "axes", 13, 1, axes, BNF_MAX_RANK, &n, &present) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (n == 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "axes is missing or empty");
	rank = x->rank + (int)n;
	if (rank > BNF_MAX_RANK)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "output rank %d is above %d", rank,
		                    BNF_MAX_RANK);
	/* Axes count in the output's rank. */
	if (bnf_shp_axes(ctx, axes, n, rank, "axes", &mask) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < rank; i++)
		dims[i] = ((mask >> i) & 1) ? 1 : x->dims[next++];
	return bnf_shp_new_out(ctx, 0, x->dtype, rank, dims);
}

/* The [start, end) range of dims Shape reports (start/end from opset 15,
 * clamped to [0, rank] after counting negatives from the end). */
static int shape_range(const struct bnf_op_ctx *ctx, int *start, int *end)
{
	int64_t s = 0, e = ctx->in[0]->rank, r = ctx->in[0]->rank;

	if (ctx->opset >= 15 && (bnf_attr_int(ctx->node, "start", 0, &s, ctx->err) != BNF_OK ||
	                         bnf_attr_int(ctx->node, "end", r, &e, ctx->err) != BNF_OK))
		return ctx->err->status;
	s = s < 0 ? s + r : s;
	e = e < 0 ? e + r : e;
	*start = (int)(s < 0 ? 0 : s > r ? r : s);
	*end = (int)(e < 0 ? 0 : e > r ? r : e);
	if (*end < *start)
		*end = *start;
	return BNF_OK;
}

int bnf_shp_shape_shape(struct bnf_op_ctx *ctx)
{
	int64_t n;
	int start, end;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK || shape_range(ctx, &start, &end) != BNF_OK)
		return ctx->err->status;
	n = end - start;
	return bnf_shp_new_out(ctx, 0, DT(INT64), 1, &n);
}

int bnf_shp_shape_compute(struct bnf_op_ctx *ctx)
{
	int start, end;

	if (!ctx->out[0] || shape_range(ctx, &start, &end) != BNF_OK)
		return ctx->out[0] ? ctx->err->status : BNF_OK;
	if (end > start)
		memcpy(ctx->out[0]->data, ctx->in[0]->dims + start,
		       (size_t)(end - start) * sizeof(int64_t));
	return BNF_OK;
}

/* The permutation: the attribute, or the reversed axes by default. */
static int transpose_perm(const struct bnf_op_ctx *ctx, int64_t *perm)
{
	int rank = ctx->in[0]->rank, i;
	unsigned mask;
	size_t n;

	if (bnf_attr_ints(ctx->node, "perm", perm, BNF_MAX_RANK, &n, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (!bnf_attr_find(ctx->node, "perm")) {
		for (i = 0; i < rank; i++)
			perm[i] = rank - 1 - i;
		return BNF_OK;
	}
	if (n != (size_t)rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "perm has %zu values for rank %d", n, rank);
	for (i = 0; i < rank; i++)
		if (perm[i] < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "perm[%d] = %lld is negative", i,
			                    (long long)perm[i]);
	return bnf_shp_axes(ctx, perm, n, rank, "perm", &mask);
}

int bnf_shp_transpose_shape(struct bnf_op_ctx *ctx)
{
	int64_t perm[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	int i;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK || transpose_perm(ctx, perm) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < ctx->in[0]->rank; i++)
		dims[i] = ctx->in[0]->dims[perm[i]];
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, dims);
}

int bnf_shp_transpose_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	int64_t perm[BNF_MAX_RANK], xs[BNF_MAX_RANK], ss[BNF_MAX_RANK], ys[BNF_MAX_RANK];
	int i;

	if (!y)
		return BNF_OK;
	if (transpose_perm(ctx, perm) != BNF_OK)
		return ctx->err->status;
	bnf_shp_strides(x->rank, x->dims, xs);
	bnf_shp_strides(y->rank, y->dims, ys);
	/* Walk the output in order, reading the input through permuted strides. */
	for (i = 0; i < x->rank; i++)
		ss[i] = xs[perm[i]];
	bnf_shp_copy(bnf_tensor_elem_size(x->dtype), y->rank, y->dims, x->data, ss, y->data, ys);
	return BNF_OK;
}

/* Input strides over the output's dims, right-aligned as in numpy
 * broadcasting: a dim of 1 (or a missing leading dim) repeats, stride 0. */
static void broadcast_strides(const struct bnf_tensor *x, int rank, int64_t *strides)
{
	int64_t xs[BNF_MAX_RANK];
	int i, lead = rank - x->rank;

	bnf_shp_strides(x->rank, x->dims, xs);
	for (i = 0; i < rank; i++)
		strides[i] = i < lead || x->dims[i - lead] == 1 ? 0 : xs[i - lead];
}

int bnf_shp_expand_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t shape[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	size_t n;
	int i, rank, lead_x, lead_s;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    bnf_shp_read_ints(ctx, ctx->in[1], "shape", shape, BNF_MAX_RANK, &n) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	rank = x->rank > (int)n ? x->rank : (int)n;
	lead_x = rank - x->rank;
	lead_s = rank - (int)n;
	for (i = 0; i < rank; i++) {
		int64_t a = i < lead_x ? 1 : x->dims[i - lead_x];
		int64_t b = i < lead_s ? 1 : shape[i - lead_s];
		if (b < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "shape[%d] = %lld is negative",
			                    i - lead_s, (long long)b);
		if (a != b && a != 1 && b != 1)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "cannot broadcast dim %lld of the input to %lld",
			                    (long long)a, (long long)b);
		dims[i] = a == 1 ? b : a;
	}
	return bnf_shp_new_out(ctx, 0, x->dtype, rank, dims);
}

int bnf_shp_expand_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	int64_t ss[BNF_MAX_RANK], ys[BNF_MAX_RANK];

	if (!y)
		return BNF_OK;
	broadcast_strides(x, y->rank, ss);
	bnf_shp_strides(y->rank, y->dims, ys);
	bnf_shp_copy(bnf_tensor_elem_size(x->dtype), y->rank, y->dims, x->data, ss, y->data, ys);
	return BNF_OK;
}

static int tile_repeats(const struct bnf_op_ctx *ctx, int64_t *rep)
{
	const struct bnf_tensor *x = ctx->in[0];
	size_t n;
	int i;

	if (bnf_shp_read_ints(ctx, ctx->in[1], "repeats", rep, BNF_MAX_RANK, &n) != BNF_OK)
		return ctx->err->status;
	if (n != (size_t)x->rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "repeats has %zu values for rank %d", n,
		                    x->rank);
	for (i = 0; i < x->rank; i++)
		if (rep[i] < 0 || rep[i] > (int64_t)BNF_MAX_ELEMENTS)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "repeats[%d] = %lld is invalid", i,
			                    (long long)rep[i]);
	return BNF_OK;
}

int bnf_shp_tile_shape(struct bnf_op_ctx *ctx)
{
	int64_t rep[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	int i;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK || tile_repeats(ctx, rep) != BNF_OK)
		return ctx->err->status;
	/* Both factors are at most 2^31: the product fits and is then checked. */
	for (i = 0; i < ctx->in[0]->rank; i++)
		dims[i] = ctx->in[0]->dims[i] * rep[i];
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, dims);
}

int bnf_shp_tile_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	int64_t rep[BNF_MAX_RANK], xs[BNF_MAX_RANK];
	int64_t vdims[BNF_SHP_MAX_VIEW], vs[BNF_SHP_MAX_VIEW], vd[BNF_SHP_MAX_VIEW];
	int i;

	if (!y)
		return BNF_OK;
	if (tile_repeats(ctx, rep) != BNF_OK)
		return ctx->err->status;
	/* The output seen as (rep0, d0, rep1, d1, ...) is contiguous; the input
	 * is read with stride 0 along every repeat axis. */
	bnf_shp_strides(x->rank, x->dims, xs);
	for (i = 0; i < x->rank; i++) {
		vdims[2 * i] = rep[i];
		vdims[2 * i + 1] = x->dims[i];
		vs[2 * i] = 0;
		vs[2 * i + 1] = xs[i];
	}
	bnf_shp_strides(2 * x->rank, vdims, vd);
	bnf_shp_copy(bnf_tensor_elem_size(x->dtype), 2 * x->rank, vdims, x->data, vs, y->data, vd);
	return BNF_OK;
}

/* The fill value: the one-element `value` tensor, or float 0 by default.
 * The caller frees *out. */
static int constant_of_shape_value(const struct bnf_op_ctx *ctx, struct bnf_tensor **out)
{
	const Onnx__AttributeProto *a = bnf_attr_find(ctx->node, "value");
	int64_t one = 1;

	*out = NULL;
	if (!a) {
		*out = bnf_tensor_new(DT(FLOAT), 1, &one, ctx->err);
		return *out ? BNF_OK : ctx->err->status;
	}
	if (!a->t)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "attribute 'value' is not a tensor");
	if (bnf_tensor_from_proto(a->t, out, ctx->err) != BNF_OK) {
		bnf_error_prefix(ctx->err, "attribute 'value'");
		return ctx->err->status;
	}
	if ((*out)->count != 1) {
		bnf_tensor_free(*out);
		*out = NULL;
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "attribute 'value' must hold one element");
	}
	return BNF_OK;
}

int bnf_shp_constant_of_shape_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *v;
	int64_t dims[BNF_MAX_RANK];
	size_t n, i;
	int rc;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_shp_read_ints(ctx, ctx->in[0], "input shape", dims, BNF_MAX_RANK, &n) != BNF_OK)
		return ctx->err->status;
	for (i = 0; i < n; i++)
		if (dims[i] < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "shape[%zu] = %lld is negative", i,
			                    (long long)dims[i]);
	if (constant_of_shape_value(ctx, &v) != BNF_OK)
		return ctx->err->status;
	/* An empty shape gives a scalar. */
	rc = bnf_shp_new_out(ctx, 0, v->dtype, (int)n, dims);
	bnf_tensor_free(v);
	return rc;
}

int bnf_shp_constant_of_shape_compute(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *v;

	if (!ctx->out[0])
		return BNF_OK;
	if (constant_of_shape_value(ctx, &v) != BNF_OK)
		return ctx->err->status;
	bnf_shp_fill(ctx->out[0], v->data);
	bnf_tensor_free(v);
	return BNF_OK;
}

/* Range's element count, max(ceil((limit - start) / delta), 0): exact for
 * the integer dtypes, in double for the floating ones. */
static int range_count(const struct bnf_op_ctx *ctx, int64_t *count)
{
	const struct bnf_tensor *s = ctx->in[0], *l = ctx->in[1], *d = ctx->in[2];
	int i;

	for (i = 0; i < 3; i++) {
		if (ctx->in[i]->count != 1 || ctx->in[i]->rank > 1)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input %d must be a scalar", i);
		if (ctx->in[i]->dtype != s->dtype)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "inputs mix %s and %s",
			                    bnf_dtype_name(s->dtype),
			                    bnf_dtype_name(ctx->in[i]->dtype));
	}
	if (bnf_shp_is_float(s->dtype)) {
		double n = ceil((bnf_shp_get(l, 0) - bnf_shp_get(s, 0)) / bnf_shp_get(d, 0));
		if (bnf_shp_get(d, 0) == 0 || isnan(n) || n > (double)BNF_MAX_ELEMENTS)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "cannot produce a range of %g elements", n);
		*count = n > 0 ? (int64_t)n : 0;
	} else if (s->dtype == DT(INT64) || s->dtype == DT(INT32)) {
		int64_t a, b, step;
		uint64_t span, mag;
		size_t one;
		bnf_shp_read_ints(ctx, s, "start", &a, 1, &one);
		bnf_shp_read_ints(ctx, l, "limit", &b, 1, &one);
		bnf_shp_read_ints(ctx, d, "delta", &step, 1, &one);
		if (step == 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "delta is 0");
		/* The span and the step's magnitude, in unsigned arithmetic so
		 * that no extreme value overflows. */
		if ((step > 0 && b <= a) || (step < 0 && b >= a)) {
			*count = 0;
			return BNF_OK;
		}
		span = step > 0 ? (uint64_t)b - (uint64_t)a : (uint64_t)a - (uint64_t)b;
		mag = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
		span = span / mag + (span % mag != 0);
		if (span > BNF_MAX_ELEMENTS)
			return bnf_shp_fail(ctx, BNF_ERR_NOMEM,
			                    "range of %llu elements is too large",
			                    (unsigned long long)span);
		*count = (int64_t)span;
	} else {
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(s->dtype));
	}
	return BNF_OK;
}

int bnf_shp_range_shape(struct bnf_op_ctx *ctx)
{
	int64_t n;

	if (bnf_shp_check_io(ctx, 3, 3) != BNF_OK || range_count(ctx, &n) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, 1, &n);
}

int bnf_shp_range_compute(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *y = ctx->out[0];
	size_t i, one;

	if (!y)
		return BNF_OK;
	if (bnf_shp_is_float(y->dtype)) {
		double start = bnf_shp_get(ctx->in[0], 0), delta = bnf_shp_get(ctx->in[2], 0);
		for (i = 0; i < y->count; i++)
			bnf_shp_set(y, i, start + (double)i * delta);
	} else {
		int64_t start, delta;
		bnf_shp_read_ints(ctx, ctx->in[0], "start", &start, 1, &one);
		bnf_shp_read_ints(ctx, ctx->in[2], "delta", &delta, 1, &one);
		/* Every value lies between start and limit, so the wrapping
		 * unsigned sum is the exact result. */
		for (i = 0; i < y->count; i++) {
			int64_t v = (int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)delta);
			if (y->dtype == DT(INT64))
				((int64_t *)y->data)[i] = v;
			else
				((int32_t *)y->data)[i] = (int32_t)v;
		}
	}
	return BNF_OK;
}

/* Flatten, Reshape, Squeeze and Unsqueeze: the data does not move. */
int bnf_shp_copy_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];

	if (y && y->count)
		memcpy(y->data, x->data, y->count * bnf_tensor_elem_size(y->dtype));
	return BNF_OK;
}
