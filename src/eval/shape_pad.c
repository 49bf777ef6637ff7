/*
 * Pad in the constant, reflect and edge modes (wrap, added in opset 19, is
 * refused). Negative pads crop first; the kept input is then copied into
 * the middle of the output and the borders are filled axis by axis, each
 * border slab copied from a row of the output that is already complete.
 */
#include "eval/shape_common.h"

#include <string.h>

enum pad_mode {
	PAD_MODE_CONSTANT,
	PAD_MODE_REFLECT,
	PAD_MODE_EDGE,
};

struct pad_plan {
	enum pad_mode mode;
	int64_t crop[BNF_MAX_RANK]; /* input elements dropped at the start of each axis */
	int64_t kept[BNF_MAX_RANK]; /* input elements kept on each axis */
	int64_t head[BNF_MAX_RANK]; /* output elements added before them */
	int64_t dims[BNF_MAX_RANK]; /* output dims */
};

static int pad_mode(const struct bnf_op_ctx *ctx, enum pad_mode *mode)
{
	char s[16];

	if (bnf_attr_string(ctx->node, "mode", "constant", s, sizeof(s), ctx->err) != BNF_OK)
		return ctx->err->status;
	if (strcmp(s, "constant") == 0)
		*mode = PAD_MODE_CONSTANT;
	else if (strcmp(s, "reflect") == 0)
		*mode = PAD_MODE_REFLECT;
	else if (strcmp(s, "edge") == 0)
		*mode = PAD_MODE_EDGE;
	else if (strcmp(s, "wrap") == 0)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "mode 'wrap' is not implemented");
	else
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown mode '%s'", s);
	return BNF_OK;
}

/* The pads as (begin, end) per axis of the data: the 'paddings' attribute in
 * opset 1, 'pads' in 2 to 10, input 1 from 11, for the axes of input 3 (from
 * opset 18) or all axes. */
static int pad_amounts(const struct bnf_op_ctx *ctx, int64_t *begin, int64_t *end)
{
	int rank = ctx->in[0]->rank, i;
	int64_t pads[2 * BNF_MAX_RANK], axes[BNF_MAX_RANK];
	size_t n, n_axes = (size_t)rank;
	unsigned mask;
	int present;

	if (bnf_shp_ints_arg(ctx, ctx->opset < 2 ? "paddings" : "pads", 11, 1, pads,
	                     2 * BNF_MAX_RANK, &n, &present) != BNF_OK)
		return ctx->err->status;
	if (ctx->opset >= 18 && bnf_shp_in(ctx, 3)) {
		if (bnf_shp_read_ints(ctx, ctx->in[3], "axes", axes, BNF_MAX_RANK, &n_axes) !=
		        BNF_OK ||
		    bnf_shp_axes(ctx, axes, n_axes, rank, "axes", &mask) != BNF_OK)
			return ctx->err->status;
	} else {
		for (i = 0; i < rank; i++)
			axes[i] = i;
	}
	if (n != 2 * n_axes)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "pads has %zu values for %zu axes", n,
		                    n_axes);
	for (i = 0; i < rank; i++)
		begin[i] = end[i] = 0;
	for (n = 0; n < n_axes; n++) {
		begin[axes[n]] = pads[n];
		end[axes[n]] = pads[n + n_axes];
	}
	return BNF_OK;
}

static int pad_plan(const struct bnf_op_ctx *ctx, struct pad_plan *p)
{
	const struct bnf_tensor *x;
	int64_t begin[BNF_MAX_RANK], end[BNF_MAX_RANK];
	int i;

	if (bnf_shp_check_io(ctx, ctx->opset < 11 ? 1 : 2, ctx->opset < 11 ? 1 : 4) != BNF_OK ||
	    pad_mode(ctx, &p->mode) != BNF_OK || pad_amounts(ctx, begin, end) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	for (i = 0; i < x->rank; i++) {
		int64_t dim = x->dims[i];
		if (begin[i] < -dim || end[i] < -dim || begin[i] > (int64_t)BNF_MAX_ELEMENTS ||
		    end[i] > (int64_t)BNF_MAX_ELEMENTS)
			return bnf_shp_fail(
			    ctx, BNF_ERR_INPUT,
			    "pads (%lld, %lld) are invalid for axis %d of size %lld",
			    (long long)begin[i], (long long)end[i], i, (long long)dim);
		p->crop[i] = begin[i] < 0 ? -begin[i] : 0;
		p->kept[i] = dim - p->crop[i] - (end[i] < 0 ? -end[i] : 0);
		p->head[i] = begin[i] > 0 ? begin[i] : 0;
		if (p->kept[i] < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "pads crop more than axis %d holds",
			                    i);
		p->dims[i] = p->kept[i] + p->head[i] + (end[i] > 0 ? end[i] : 0);
		if (p->dims[i] == p->kept[i] || p->mode == PAD_MODE_CONSTANT)
			continue;
		/* Edge needs one element to repeat; reflect mirrors without
		 * repeating the border element, so it needs more than the pad. */
		if (p->kept[i] == 0 || (p->mode == PAD_MODE_REFLECT &&
		                        (p->head[i] >= p->kept[i] ||
		                         p->dims[i] - p->head[i] - p->kept[i] >= p->kept[i])))
			return bnf_shp_fail(
			    ctx, BNF_ERR_INPUT,
			    "cannot pad axis %d of size %lld by (%lld, %lld) in this "
			    "mode",
			    i, (long long)p->kept[i], (long long)begin[i], (long long)end[i]);
	}
	return BNF_OK;
}

int bnf_shp_pad_shape(struct bnf_op_ctx *ctx)
{
	struct pad_plan p;

	if (pad_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, p.dims);
}

/* The constant mode's fill value as one element of y's dtype: the 'value'
 * attribute before opset 11, input 2 from then on, 0 by default. */
static int pad_value(const struct bnf_op_ctx *ctx, const struct bnf_tensor *y, unsigned char *elem)
{
	struct bnf_tensor one = {y->dtype, 0, {0}, 1, elem};
	const struct bnf_tensor *v = bnf_shp_in(ctx, 2);
	float f;

	memset(elem, 0, 8);
	if (ctx->opset < 11) {
		if (bnf_attr_float(ctx->node, "value", 0.0f, &f, ctx->err) != BNF_OK)
			return ctx->err->status;
		bnf_shp_set(&one, 0, f);
		return BNF_OK;
	}
	if (!v || v->count == 0)
		return BNF_OK;
	if (v->dtype != y->dtype || v->count != 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "constant_value must be one %s element, not %zu of %s",
		                    bnf_dtype_name(y->dtype), v->count, bnf_dtype_name(v->dtype));
	memcpy(elem, v->data, bnf_tensor_elem_size(v->dtype));
	return BNF_OK;
}

/* The already-filled output index that border index q of an axis copies:
 * the nearest kept element (edge), or its mirror image around the border
 * element (reflect). */
static int64_t pad_source(const struct pad_plan *p, int axis, int64_t q)
{
	int64_t first = p->head[axis], last = p->head[axis] + p->kept[axis] - 1;

	if (p->mode == PAD_MODE_EDGE)
		return q < first ? first : last;
	return q < first ? 2 * first - q : 2 * last - q;
}

int bnf_shp_pad_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct pad_plan p;
	unsigned char elem[8];
	int64_t xs[BNF_MAX_RANK], ys[BNF_MAX_RANK], vdims[BNF_MAX_RANK], xoff = 0, yoff = 0, q;
	size_t esize = bnf_tensor_elem_size(x->dtype);
	int a, b;

	if (!y)
		return BNF_OK;
	if (pad_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (y->count == 0)
		return BNF_OK;
	if (p.mode == PAD_MODE_CONSTANT) {
		if (pad_value(ctx, y, elem) != BNF_OK)
			return ctx->err->status;
		bnf_shp_fill(y, elem);
	}
	bnf_shp_strides(x->rank, x->dims, xs);
	bnf_shp_strides(y->rank, y->dims, ys);
	for (a = 0; a < x->rank; a++) {
		xoff += p.crop[a] * xs[a];
		yoff += p.head[a] * ys[a];
	}
	bnf_shp_copy(esize, x->rank, p.kept, (const char *)x->data + xoff * (int64_t)esize, xs,
	             (char *)y->data + yoff * (int64_t)esize, ys);
	if (p.mode == PAD_MODE_CONSTANT)
		return BNF_OK;
	/* Borders of axis a span the full output on the axes before a (their
	 * borders are done) and only the kept part on the axes after it. */
	for (a = 0; a < y->rank; a++) {
		yoff = 0;
		for (b = 0; b < y->rank; b++) {
			vdims[b] = b < a ? y->dims[b] : b == a ? 1 : p.kept[b];
			yoff += b > a ? p.head[b] * ys[b] : 0;
		}
		for (q = 0; q < y->dims[a]; q++) {
			if (q == p.head[a])
				q += p.kept[a];
			if (q >= y->dims[a])
				break;
			bnf_shp_copy(esize, y->rank, vdims,
			             (char *)y->data +
			                 (yoff + pad_source(&p, a, q) * ys[a]) * (int64_t)esize,
			             ys, (char *)y->data + (yoff + q * ys[a]) * (int64_t)esize, ys);
		}
	}
	return BNF_OK;
}
