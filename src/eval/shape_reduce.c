/*
 * ReduceMean, ReduceSum, ReduceSumSquare and ReduceMax. Floating inputs are
 * accumulated in double and rounded once to the output's type; integer
 * inputs in 64-bit integers (sums wrap as the narrower type would). The
 * axes come from the attribute, or from input 1 once the opset moved them.
 */
#include "eval/shape_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum reduce_kind {
	REDUCE_KIND_MEAN,
	REDUCE_KIND_SUM,
	REDUCE_KIND_SUM_SQUARE,
	REDUCE_KIND_MAX,
};

struct reduce_plan {
	enum reduce_kind kind;
	unsigned mask; /* bit a set: axis a is reduced */
	int rank;      /* output rank */
	int64_t dims[BNF_MAX_RANK];
};

static enum reduce_kind reduce_kind(const char *op_type)
{
	if (strcmp(op_type, "ReduceMean") == 0)
		return REDUCE_KIND_MEAN;
	if (strcmp(op_type, "ReduceSum") == 0)
		return REDUCE_KIND_SUM;
	if (strcmp(op_type, "ReduceSumSquare") == 0)
		return REDUCE_KIND_SUM_SQUARE;
	return REDUCE_KIND_MAX;
}

static int reduce_plan(const struct bnf_op_ctx *ctx, struct reduce_plan *p)
{
	const struct bnf_tensor *x;
	int64_t axes[BNF_MAX_RANK], keepdims, noop = 0;
	size_t n, i;
	int present, a = 0, from;

	p->kind = reduce_kind(ctx->node->op_type);
	/* ReduceSum took its axes as input 1 from opset 13, the others from 18,
	 * which also brought them noop_with_empty_axes. */
	from = p->kind == REDUCE_KIND_SUM ? 13 : 18;
	if (bnf_shp_check_io(ctx, 1, ctx->opset < from ? 1 : 2) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "axes", from, 1, axes, BNF_MAX_RANK, &n, &present) != BNF_OK ||
	    bnf_attr_int(ctx->node, "keepdims", 1, &keepdims, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (ctx->opset >= from &&
	    bnf_attr_int(ctx->node, "noop_with_empty_axes", 0, &noop, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_shp_is_float(x->dtype) && !bnf_dtype_is_integer(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	/* A repeated axis is harmless here, and onnxruntime accepts it. */
	p->mask = 0;
	for (i = 0; i < n; i++) {
		if (bnf_shp_axis(ctx, axes[i], x->rank, "axes", &a) != BNF_OK)
			return ctx->err->status;
		p->mask |= 1u << a;
	}
	/* No axes reduces everything, unless noop_with_empty_axes asks for
	 * none: each output element then comes from one input element. */
	if (n == 0 && !noop)
		p->mask = (1u << x->rank) - 1;
	p->rank = 0;
	for (a = 0; a < x->rank; a++) {
		if (!((p->mask >> a) & 1))
			p->dims[p->rank++] = x->dims[a];
		else if (keepdims)
			p->dims[p->rank++] = 1;
	}
	return BNF_OK;
}

int bnf_shp_reduce_shape(struct bnf_op_ctx *ctx)
{
	struct reduce_plan p;

	if (reduce_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, p.rank, p.dims);
}

/* Fold element i of x into accumulator o (fsum for floating dtypes, isum
 * for integer ones). */
static void reduce_add(enum reduce_kind kind, const struct bnf_tensor *x, size_t i, double *fsum,
                       int64_t *isum, size_t o)
{
	if (fsum) {
		double v = bnf_shp_get(x, i);
		if (kind == REDUCE_KIND_MAX)
			fsum[o] = (isnan(v) || v > fsum[o]) ? v : fsum[o];
		else
			fsum[o] += kind == REDUCE_KIND_SUM_SQUARE ? v * v : v;
	} else {
		/* Unsigned arithmetic: overflow wraps instead of being undefined. */
		uint64_t v = (uint64_t)bnf_shp_get_int(x, i);
		if (kind == REDUCE_KIND_MAX)
			isum[o] = (int64_t)v > isum[o] ? (int64_t)v : isum[o];
		else
			isum[o] = (int64_t)((uint64_t)isum[o] +
			                    (kind == REDUCE_KIND_SUM_SQUARE ? v * v : v));
	}
}

int bnf_shp_reduce_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct reduce_plan p;
	int64_t xs_out[BNF_MAX_RANK], full[BNF_MAX_RANK], pos[BNF_MAX_RANK] = {0}, off = 0;
	double *fsum = NULL;
	int64_t *isum = NULL;
	size_t i, per_out;
	int a, is_float = bnf_shp_is_float(x->dtype);

	if (!y)
		return BNF_OK;
	if (reduce_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (y->count == 0)
		return BNF_OK;
	per_out = x->count / y->count;
	if (per_out == 0 && (!is_float || p.kind == REDUCE_KIND_MAX))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "cannot reduce an empty axis");
	if (is_float)
		fsum = malloc(y->count * sizeof(*fsum));
	else
		isum = malloc(y->count * sizeof(*isum));
	if (!fsum && !isum)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (i = 0; i < y->count; i++) {
		if (fsum)
			fsum[i] = p.kind == REDUCE_KIND_MAX ? -INFINITY : 0.0;
		else
			isum[i] = p.kind == REDUCE_KIND_MAX ? INT64_MIN : 0;
	}
	/* The output offset of each input element: the output's strides on
	 * kept axes, 0 on reduced ones (the output seen with keepdims). */
	for (a = 0; a < x->rank; a++)
		full[a] = ((p.mask >> a) & 1) ? 1 : x->dims[a];
	bnf_shp_strides(x->rank, full, xs_out);
	for (a = 0; a < x->rank; a++)
		if ((p.mask >> a) & 1)
			xs_out[a] = 0;
	for (i = 0; i < x->count; i++) {
		reduce_add(p.kind, x, i, fsum, isum, (size_t)off);
		for (a = x->rank - 1; a >= 0; a--) {
			off += xs_out[a];
			if (++pos[a] < x->dims[a])
				break;
			off -= xs_out[a] * x->dims[a];
			pos[a] = 0;
		}
	}
	for (i = 0; i < y->count; i++) {
		if (fsum)
			bnf_shp_set(
			    y, i, p.kind == REDUCE_KIND_MEAN ? fsum[i] / (double)per_out : fsum[i]);
		else
			bnf_tensor_set_int(y, i,
			                   p.kind == REDUCE_KIND_MEAN ? isum[i] / (int64_t)per_out
			                                              : isum[i]);
	}
	free(fsum);
	free(isum);
	return BNF_OK;
}
