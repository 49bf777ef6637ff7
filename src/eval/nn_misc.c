/*
 * Normalisations and unpooling of older networks: LRN (AlexNet, GoogLeNet
 * v1), MeanVarianceNormalization (the spec's function: (x - mean) /
 * (sqrt(E[x^2] - mean^2) + 1e-9) over axes), and MaxUnpool, which puts
 * each value back where MaxPool's flat indices say it came from.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/shape_common.h"

/* ---- LRN ---- */

/* y = x / (bias + alpha / size * sum of x^2 over the size channels around
 * c) ^ beta: floor((size - 1) / 2) channels below c, ceil above. */
int bnf_nn_lrn_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	float alpha, beta, bias;
	int64_t size, n, c, k, inner, lo, hi, i;
	int a;

	if (bnf_nn_check_inputs(ctx, 1, 1, 1u) != BNF_OK ||
	    bnf_attr_float(ctx->node, "alpha", 1e-4f, &alpha, ctx->err) != BNF_OK ||
	    bnf_attr_float(ctx->node, "beta", 0.75f, &beta, ctx->err) != BNF_OK ||
	    bnf_attr_float(ctx->node, "bias", 1.0f, &bias, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "size", 0, &size, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (size < 1 || x->rank < 2)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "needs size >= 1 and an input [N, C, ...]");
	if (bnf_shp_new_out(ctx, 0, x->dtype, x->rank, x->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	inner = 1;
	for (a = 2; a < x->rank; a++)
		inner *= x->dims[a];
	for (n = 0; n < x->dims[0]; n++)
		for (c = 0; c < x->dims[1]; c++) {
			lo = c - (size - 1) / 2;
			hi = c + size / 2; /* c + ceil((size - 1) / 2) */
			lo = lo < 0 ? 0 : lo;
			hi = hi >= x->dims[1] ? x->dims[1] - 1 : hi;
			for (i = 0; i < inner; i++) {
				double sq = 0, v;
				for (k = lo; k <= hi; k++) {
					v = bnf_shp_get(x,
					                (size_t)((n * x->dims[1] + k) * inner + i));
					sq += v * v;
				}
				v = bnf_shp_get(x, (size_t)((n * x->dims[1] + c) * inner + i));
				bnf_shp_set(
				    ctx->out[0], (size_t)((n * x->dims[1] + c) * inner + i),
				    v / pow((double)bias + (double)alpha / (double)size * sq,
				            (double)beta));
			}
		}
	return BNF_OK;
}

/* ---- MeanVarianceNormalization ---- */

int bnf_nn_mvn_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axes[BNF_MAX_RANK] = {0, 2, 3}, full[BNF_MAX_RANK], str[BNF_MAX_RANK];
	int64_t pos[BNF_MAX_RANK] = {0}, off = 0;
	double *sum, *sq;
	size_t n_axes, i, n_out = 1, per;
	unsigned mask;
	int a, pass;

	if (bnf_nn_check_inputs(ctx, 1, 1, 1u) != BNF_OK ||
	    bnf_attr_ints(ctx->node, "axes", axes, BNF_MAX_RANK, &n_axes, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_attr_find(ctx->node, "axes")) {
		axes[0] = 0, axes[1] = 2, axes[2] = 3;
		n_axes = 3;
	}
	if (bnf_shp_axes(ctx, axes, n_axes, x->rank, "axes", &mask) != BNF_OK ||
	    bnf_shp_new_out(ctx, 0, x->dtype, x->rank, x->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	/* The statistics' offset of each element: strides of the kept axes. */
	for (a = 0; a < x->rank; a++) {
		full[a] = (mask >> a) & 1 ? 1 : x->dims[a];
		n_out *= (size_t)full[a];
	}
	bnf_shp_strides(x->rank, full, str);
	for (a = 0; a < x->rank; a++)
		if ((mask >> a) & 1)
			str[a] = 0;
	sum = calloc(2 * n_out + 1, sizeof(*sum));
	if (!sum)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	sq = sum + n_out;
	per = n_out ? x->count / n_out : 0;
	/* First the sums, then each element from its statistics. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < x->count; i++) {
			double v = bnf_shp_get(x, i);
			if (pass == 0) {
				sum[off] += v;
				sq[off] += v * v;
			} else {
				double mean = sum[off] / (double)per;
				double var = sq[off] / (double)per - mean * mean;
				bnf_shp_set(ctx->out[0], i,
				            (v - mean) /
				                (sqrt(var) + (double)9.999999717180685e-10f));
			}
			for (a = x->rank - 1; a >= 0; a--) {
				off += str[a];
				if (++pos[a] < x->dims[a])
					break;
				off -= str[a] * x->dims[a];
				pos[a] = 0;
			}
		}
	}
	free(sum);
	return BNF_OK;
}

/* ---- MaxUnpool ---- */

/* MaxUnpool: zeros of the unpooled shape (what the kernel, strides and
 * pads give), with each X value at the flat position its index names in
 * that shape; an output_shape (input 2) larger than it keeps each value
 * at the same coordinates. */
int bnf_nn_max_unpool_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *ind, *shape;
	struct bnf_nn_window w;
	int64_t dims[BNF_MAX_RANK], out_dims[BNF_MAX_RANK], ins[BNF_MAX_RANK], outs[BNF_MAX_RANK];
	size_t i, n, inferred = 1;
	int a;

	if (bnf_nn_check_inputs(ctx, 2, 3, 1u) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	ind = ctx->in[1];
	shape = bnf_shp_in(ctx, 2);
	if (x->rank < 3 || ind->count != x->count || ind->dtype != DT(INT64))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "X must be [N, C, ...] with an int64 index "
		                    "per element");
	if (bnf_nn_read_window(ctx, x->rank - 2, NULL, &w) != BNF_OK)
		return ctx->err->status;
	dims[0] = x->dims[0];
	dims[1] = x->dims[1];
	for (a = 0; a < w.n; a++)
		dims[a + 2] = (x->dims[a + 2] - 1) * w.stride[a] + w.kernel[a] - w.pad_begin[a] -
		              w.pad_end[a];
	memcpy(out_dims, dims, sizeof(dims));
	if (shape) {
		if (bnf_shp_read_ints(ctx, shape, "output_shape", out_dims, BNF_MAX_RANK, &n) !=
		    BNF_OK)
			return ctx->err->status;
		if (n != (size_t)x->rank)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "output_shape has %zu values", n);
	}
	for (a = 0; a < x->rank; a++) {
		if (dims[a] < 0 || out_dims[a] < dims[a])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "output_shape is smaller than the "
			                    "unpooled shape");
		inferred *= (size_t)dims[a];
	}
	if (bnf_shp_new_out(ctx, 0, x->dtype, x->rank, out_dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	bnf_shp_strides(x->rank, dims, ins);
	bnf_shp_strides(x->rank, out_dims, outs);
	for (i = 0; i < x->count; i++) {
		int64_t at = bnf_shp_get_int(ind, i), rem = at, off = 0;
		if (at < 0 || (size_t)at >= inferred)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "index %lld is outside the output",
			                    (long long)at);
		for (a = 0; a < x->rank; a++) {
			off += rem / ins[a] * outs[a];
			rem %= ins[a];
		}
		bnf_shp_set(ctx->out[0], (size_t)off, bnf_shp_get(x, i));
	}
	return BNF_OK;
}
