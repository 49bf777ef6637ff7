/*
 * Gathering and scattering by index tuples or per element: GatherND,
 * ScatterND, ScatterElements and the deprecated Scatter (ScatterElements
 * without reduction, opsets 9 and 10). Scatters copy the data, then write
 * (or, from opset 16, add, multiply and from 18 take the max or min of)
 * each update in order.
 */
#include "eval/index_ops.h"

#include <string.h>

enum scatter_reduction {
	SCATTER_REDUCTION_NONE,
	SCATTER_REDUCTION_ADD,
	SCATTER_REDUCTION_MUL,
	SCATTER_REDUCTION_MAX,
	SCATTER_REDUCTION_MIN,
};

static int scatter_reduction(const struct bnf_op_ctx *ctx, enum scatter_reduction *out)
{
	static const struct {
		const char *name;
		int since;
		enum scatter_reduction r;
	} modes[] = {
	    {"none", 16, SCATTER_REDUCTION_NONE}, {"add", 16, SCATTER_REDUCTION_ADD},
	    {"mul", 16, SCATTER_REDUCTION_MUL},   {"max", 18, SCATTER_REDUCTION_MAX},
	    {"min", 18, SCATTER_REDUCTION_MIN},
	};
	char name[16];
	size_t k;

	*out = SCATTER_REDUCTION_NONE;
	if (ctx->opset < 16)
		return BNF_OK;
	if (bnf_attr_string(ctx->node, "reduction", "none", name, sizeof(name), ctx->err) != BNF_OK)
		return ctx->err->status;
	for (k = 0; k < sizeof(modes) / sizeof(modes[0]); k++)
		if (strcmp(modes[k].name, name) == 0 && ctx->opset >= modes[k].since) {
			*out = modes[k].r;
			return BNF_OK;
		}
	return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "reduction '%s' is not supported", name);
}

/* Element yi of y combined with element ui of u. */
static void scatter_one(struct bnf_tensor *y, size_t yi, const struct bnf_tensor *u, size_t ui,
                        enum scatter_reduction r)
{
	size_t esize = bnf_tensor_elem_size(y->dtype);
	int c;

	if (r == SCATTER_REDUCTION_NONE) {
		memcpy((char *)y->data + yi * esize, (const char *)u->data + ui * esize, esize);
	} else if (r == SCATTER_REDUCTION_MAX || r == SCATTER_REDUCTION_MIN) {
		c = bnf_idx_compare(u, ui, y, yi);
		if ((r == SCATTER_REDUCTION_MAX && c > 0) || (r == SCATTER_REDUCTION_MIN && c < 0))
			memcpy((char *)y->data + yi * esize, (const char *)u->data + ui * esize,
			       esize);
	} else if (bnf_shp_is_float(y->dtype)) {
		double a = bnf_shp_get(y, yi), b = bnf_shp_get(u, ui);
		bnf_shp_set(y, yi, r == SCATTER_REDUCTION_ADD ? a + b : a * b);
	} else {
		uint64_t a = (uint64_t)bnf_shp_get_int(y, yi), b = (uint64_t)bnf_shp_get_int(u, ui);
		bnf_tensor_set_int(y, yi, (int64_t)(r == SCATTER_REDUCTION_ADD ? a + b : a * b));
	}
}

/* ---- GatherND and ScatterND ---- */

/* The offset in data of the slice that index tuple t (the last axis of
 * indices) names, after `batch` leading axes at batch offset base. */
static int tuple_offset(const struct bnf_op_ctx *ctx, const struct bnf_tensor *data,
                        const int64_t *dstride, const struct bnf_tensor *indices, size_t t,
                        int batch, int64_t k, int64_t *off)
{
	int64_t j, v;

	*off = 0;
	for (j = 0; j < k; j++) {
		if (bnf_idx_read(ctx, indices, (size_t)((int64_t)t * k + j), data->dims[batch + j],
		                 &v) != 0)
			return ctx->err->status;
		*off += v * dstride[batch + j];
	}
	return BNF_OK;
}

/* GatherND: batch_dims (opset 12) leading axes are shared by data and
 * indices; each index tuple picks a slice of the rest of data. */
int bnf_idx_gather_nd_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *data, *ind;
	int64_t b_attr = 0, k, dims[BNF_MAX_RANK], dstride[BNF_MAX_RANK], istride[BNF_MAX_RANK];
	int64_t slice = 1, n_tuples, t, off, base, rem;
	size_t esize;
	int b, a, rank = 0;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    (ctx->opset >= 12 &&
	     bnf_attr_int(ctx->node, "batch_dims", 0, &b_attr, ctx->err) != BNF_OK))
		return ctx->err->status;
	data = ctx->in[0];
	ind = ctx->in[1];
	b = (int)b_attr;
	if (ind->dtype != DT(INT64) || ind->rank < 1 || b < 0 || b >= ind->rank || b >= data->rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "indices must be int64 of rank > batch_dims");
	k = ind->dims[ind->rank - 1];
	if (k < 1 || k > data->rank - b)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "index tuples of %lld for data of rank %d",
		                    (long long)k, data->rank);
	for (a = 0; a < b; a++)
		if (ind->dims[a] != data->dims[a])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "batch dim %d differs", a);
	if (ind->rank - 1 + data->rank - b - k > BNF_MAX_RANK)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "output rank is too large");
	for (a = 0; a < ind->rank - 1; a++)
		dims[rank++] = ind->dims[a];
	for (a = b + (int)k; a < data->rank; a++) {
		dims[rank++] = data->dims[a];
		slice *= data->dims[a];
	}
	if (bnf_shp_new_out(ctx, 0, data->dtype, rank, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	bnf_shp_strides(data->rank, data->dims, dstride);
	bnf_shp_strides(ind->rank, ind->dims, istride);
	esize = bnf_tensor_elem_size(data->dtype);
	n_tuples = k ? (int64_t)ind->count / k : 0;
	for (t = 0; t < n_tuples; t++) {
		/* The batch position of tuple t: its first b coordinates. */
		base = 0;
		rem = t * k;
		for (a = 0; a < b; a++) {
			base += rem / istride[a] * dstride[a];
			rem %= istride[a];
		}
		if (tuple_offset(ctx, data, dstride, ind, (size_t)t, b, k, &off) != BNF_OK)
			return ctx->err->status;
		memcpy((char *)ctx->out[0]->data + (size_t)(t * slice) * esize,
		       (const char *)data->data + (size_t)(base + off) * esize,
		       (size_t)slice * esize);
	}
	return BNF_OK;
}

/* ScatterND: a copy of data with the slice each index tuple names
 * replaced by (or reduced with) the matching slice of updates. */
int bnf_idx_scatter_nd_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *data, *ind, *upd;
	enum scatter_reduction r;
	int64_t k, dstride[BNF_MAX_RANK], slice = 1, n_tuples, t, off, j, want = 1;
	int a;

	if (bnf_shp_check_io(ctx, 3, 3) != BNF_OK || scatter_reduction(ctx, &r) != BNF_OK)
		return ctx->err->status;
	data = ctx->in[0];
	ind = ctx->in[1];
	upd = ctx->in[2];
	if (ind->dtype != DT(INT64) || ind->rank < 1 || upd->dtype != data->dtype)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "indices must be int64 and updates of data's dtype");
	k = ind->dims[ind->rank - 1];
	if (k < 1 || k > data->rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "index tuples of %lld for data of rank %d",
		                    (long long)k, data->rank);
	for (a = (int)k; a < data->rank; a++)
		slice *= data->dims[a];
	for (a = 0; a < ind->rank - 1; a++)
		want *= ind->dims[a];
	if ((size_t)(want * slice) != upd->count)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "updates has %zu elements, expected %lld",
		                    upd->count, (long long)(want * slice));
	if (bnf_shp_new_out(ctx, 0, data->dtype, data->rank, data->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	if (data->count)
		memcpy(ctx->out[0]->data, data->data,
		       data->count * bnf_tensor_elem_size(data->dtype));
	bnf_shp_strides(data->rank, data->dims, dstride);
	n_tuples = (int64_t)ind->count / k;
	for (t = 0; t < n_tuples; t++) {
		if (tuple_offset(ctx, data, dstride, ind, (size_t)t, 0, k, &off) != BNF_OK)
			return ctx->err->status;
		for (j = 0; j < slice; j++)
			scatter_one(ctx->out[0], (size_t)(off + j), upd, (size_t)(t * slice + j),
			            r);
	}
	return BNF_OK;
}

/* ---- ScatterElements ---- */

/* ScatterElements (and Scatter): element i of updates goes to the output
 * position of element i of indices, its coordinate on axis replaced by
 * the index value. */
int bnf_idx_scatter_elements_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *data, *ind, *upd;
	enum scatter_reduction r;
	int64_t axis_attr, dstride[BNF_MAX_RANK], istride[BNF_MAX_RANK], rem, pos, off, v;
	size_t i;
	int axis, a;

	if (bnf_shp_check_io(ctx, 3, 3) != BNF_OK || scatter_reduction(ctx, &r) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", 0, &axis_attr, ctx->err) != BNF_OK)
		return ctx->err->status;
	data = ctx->in[0];
	ind = ctx->in[1];
	upd = ctx->in[2];
	if (bnf_shp_axis(ctx, axis_attr, data->rank, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	if ((ind->dtype != DT(INT64) && ind->dtype != DT(INT32)) || upd->dtype != data->dtype ||
	    ind->rank != data->rank || upd->rank != ind->rank ||
	    memcmp(ind->dims, upd->dims, sizeof(int64_t) * (size_t)ind->rank) != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "indices and updates must have one shape and data's rank");
	for (a = 0; a < data->rank; a++)
		if (a != axis && ind->dims[a] > data->dims[a])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "indices dim %d exceeds data's", a);
	if (bnf_shp_new_out(ctx, 0, data->dtype, data->rank, data->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	if (data->count)
		memcpy(ctx->out[0]->data, data->data,
		       data->count * bnf_tensor_elem_size(data->dtype));
	bnf_shp_strides(data->rank, data->dims, dstride);
	bnf_shp_strides(ind->rank, ind->dims, istride);
	for (i = 0; i < ind->count; i++) {
		if (bnf_idx_read(ctx, ind, i, data->dims[axis], &v) != 0)
			return ctx->err->status;
		rem = (int64_t)i;
		off = 0;
		for (a = 0; a < ind->rank; a++) {
			pos = rem / istride[a];
			rem %= istride[a];
			off += (a == axis ? v : pos) * dstride[a];
		}
		scatter_one(ctx->out[0], (size_t)off, upd, i, r);
	}
	return BNF_OK;
}
