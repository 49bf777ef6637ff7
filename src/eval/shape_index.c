/*
 * Indexing operators: Concat, Split, Slice, Gather and GatherElements.
 * Each works out its plan (offsets, sizes, strides) from the attributes and
 * the already-computed index inputs in a helper that both steps call, then
 * moves bytes through the family's strided copy, whatever the dtype.
 */
#include "eval/shape_common.h"

#include <stdlib.h>
#include <string.h>

/* ---- Concat ---- */

/* The concatenation axis, after checking that every input has the first
 * input's dtype and rank and the same dims off that axis. */
static int concat_axis(const struct bnf_op_ctx *ctx, int *axis)
{
	const struct bnf_tensor *x0 = ctx->in[0];
	int64_t a;
	size_t i;
	int d;

	if (bnf_shp_check_io(ctx, 1, SIZE_MAX) != BNF_OK)
		return ctx->err->status;
	/* Optional with default 1 in opset 1, required from opset 4. */
	if (ctx->opset >= 4 && !bnf_attr_find(ctx->node, "axis"))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "attribute 'axis' is missing");
	if (bnf_attr_int(ctx->node, "axis", 1, &a, ctx->err) != BNF_OK ||
	    bnf_shp_axis(ctx, a, x0->rank, "axis", axis) != BNF_OK)
		return ctx->err->status;
	for (i = 1; i < ctx->n_in; i++) {
		const struct bnf_tensor *x = ctx->in[i];
		if (!x)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input %zu is missing", i);
		if (x->dtype != x0->dtype || x->rank != x0->rank)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "input %zu is %s of rank %d, input 0 %s of rank %d", i,
			                    bnf_dtype_name(x->dtype), x->rank,
			                    bnf_dtype_name(x0->dtype), x0->rank);
		for (d = 0; d < x0->rank; d++)
			if (d != *axis && x->dims[d] != x0->dims[d])
				return bnf_shp_fail(
				    ctx, BNF_ERR_INPUT, "input %zu has dim %d = %lld, input 0 %lld",
				    i, d, (long long)x->dims[d], (long long)x0->dims[d]);
	}
	return BNF_OK;
}

int bnf_shp_concat_shape(struct bnf_op_ctx *ctx)
{
	int64_t dims[BNF_MAX_RANK];
	size_t i;
	int axis;

	if (concat_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	memcpy(dims, ctx->in[0]->dims, sizeof(dims));
	for (i = 1; i < ctx->n_in; i++) {
		dims[axis] += ctx->in[i]->dims[axis];
		if (dims[axis] > (int64_t)BNF_MAX_ELEMENTS)
			return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "output is too large");
	}
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, dims);
}

int bnf_shp_concat_compute(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor *y = ctx->out[0];
	int64_t ys[BNF_MAX_RANK], xs[BNF_MAX_RANK], at = 0;
	size_t i, esize;
	int axis;

	if (!y)
		return BNF_OK;
	if (concat_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	esize = bnf_tensor_elem_size(y->dtype);
	bnf_shp_strides(y->rank, y->dims, ys);
	/* Each input lands in the output's slab starting at `at` on the axis. */
	for (i = 0; i < ctx->n_in; i++) {
		const struct bnf_tensor *x = ctx->in[i];
		bnf_shp_strides(x->rank, x->dims, xs);
		bnf_shp_copy(esize, x->rank, x->dims, x->data, xs,
		             (char *)y->data + at * ys[axis] * (int64_t)esize, ys);
		at += x->dims[axis];
	}
	return BNF_OK;
}

/* ---- Split ---- */

/* The split axis and the size of each of the n_out parts (sizes holds
 * n_out values). The sizes come from the 'split' attribute (before opset
 * 13) or input (from 13); without them the axis is cut into equal parts,
 * or from opset 18 into num_outputs parts of ceil(dim / n), the last one
 * smaller. */
static int split_plan(const struct bnf_op_ctx *ctx, int *axis, int64_t *sizes)
{
	const struct bnf_tensor *x = ctx->in[0];
	const struct bnf_tensor *given = NULL;
	size_t n = ctx->n_out, i;
	int64_t a, dim, total = 0, parts = 0;

	if (bnf_attr_int(ctx->node, "axis", 0, &a, ctx->err) != BNF_OK ||
	    bnf_shp_axis(ctx, a, x->rank, "axis", axis) != BNF_OK)
		return ctx->err->status;
	dim = x->dims[*axis];
	/* Opset 1 took the sizes from an optional input as well. */
	if (ctx->opset >= 13 || ctx->opset < 2)
		given = bnf_shp_in(ctx, 1);
	else if (bnf_shp_in(ctx, 1))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "takes 'split' as an attribute in opset %d",
		                    ctx->opset);
	if (given) {
		if (bnf_shp_read_ints(ctx, given, "split", sizes, n, &i) != BNF_OK)
			return ctx->err->status;
	} else if (ctx->opset < 13 && bnf_attr_find(ctx->node, "split")) {
		if (bnf_attr_ints(ctx->node, "split", sizes, n, &i, ctx->err) != BNF_OK)
			return ctx->err->status;
	} else {
		if (ctx->opset >= 18 &&
		    bnf_attr_int(ctx->node, "num_outputs", 0, &parts, ctx->err) != BNF_OK)
			return ctx->err->status;
		if (parts != 0 && parts != (int64_t)n)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "num_outputs is %lld but the node has %zu outputs",
			                    (long long)parts, n);
		if (parts == 0 && dim % (int64_t)n != 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "axis of size %lld does not split into %zu equal parts",
			                    (long long)dim, n);
		for (i = 0; i < n; i++)
			sizes[i] = (dim + (int64_t)n - 1) / (int64_t)n;
		if (sizes[0] * (int64_t)(n - 1) > dim)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "axis of size %lld does not split into %zu parts",
			                    (long long)dim, n);
		sizes[n - 1] = dim - sizes[0] * (int64_t)(n - 1);
	}
	if (i != n)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "split has %zu sizes for %zu outputs", i,
		                    n);
	for (i = 0; i < n; i++) {
		if (sizes[i] < 0 || sizes[i] > dim)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "split[%zu] = %lld is invalid", i,
			                    (long long)sizes[i]);
		total += sizes[i];
	}
	if (total != dim)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "split sizes add to %lld, not %lld",
		                    (long long)total, (long long)dim);
	return BNF_OK;
}

/* Run split_plan, then either allocate the outputs or fill them. */
static int split_run(struct bnf_op_ctx *ctx, int fill)
{
	const struct bnf_tensor *x;
	int64_t *sizes, dims[BNF_MAX_RANK], xs[BNF_MAX_RANK], ys[BNF_MAX_RANK], at = 0;
	size_t i, esize;
	int axis, rc;

	if (bnf_shp_check_io(ctx, 1, 2) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	esize = bnf_tensor_elem_size(x->dtype);
	sizes = malloc(ctx->n_out * sizeof(*sizes));
	if (!sizes)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	rc = split_plan(ctx, &axis, sizes);
	memcpy(dims, x->dims, sizeof(dims));
	bnf_shp_strides(x->rank, x->dims, xs);
	for (i = 0; rc == BNF_OK && i < ctx->n_out; i++) {
		dims[axis] = sizes[i];
		if (!fill) {
			rc = bnf_shp_new_out(ctx, i, x->dtype, x->rank, dims);
		} else if (ctx->out[i]) {
			bnf_shp_strides(x->rank, dims, ys);
			bnf_shp_copy(esize, x->rank, dims,
			             (const char *)x->data + at * xs[axis] * (int64_t)esize, xs,
			             ctx->out[i]->data, ys);
		}
		at += sizes[i];
	}
	free(sizes);
	return rc;
}

int bnf_shp_split_shape(struct bnf_op_ctx *ctx)
{
	return split_run(ctx, 0);
}

int bnf_shp_split_compute(struct bnf_op_ctx *ctx)
{
	return split_run(ctx, 1);
}

/* ---- Slice ---- */

struct slice_plan {
	int64_t dims[BNF_MAX_RANK];    /* output dims */
	int64_t strides[BNF_MAX_RANK]; /* input strides scaled by the steps */
	int64_t base;                  /* input offset of the first element */
};

/* Clamp one axis's start and end as the spec says (after counting
 * negatives from the end) and return the number of elements taken. */
static int64_t slice_axis(int64_t dim, int64_t *start, int64_t end, int64_t step)
{
	int64_t s = *start, e = end;
	uint64_t span, mag;

	if (dim == 0) {
		*start = 0;
		return 0;
	}
	s = s < 0 ? s + dim : s;
	e = e < 0 ? e + dim : e;
	if (step > 0) {
		s = s < 0 ? 0 : s > dim ? dim : s;
		e = e < 0 ? 0 : e > dim ? dim : e;
		span = e > s ? (uint64_t)(e - s) : 0;
		mag = (uint64_t)step;
	} else {
		s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
		e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
		span = s > e ? (uint64_t)(s - e) : 0;
		mag = 0 - (uint64_t)step;
	}
	*start = s;
	/* span is at most dim + 1, so span + mag - 1 cannot wrap. */
	return (int64_t)((span + mag - 1) / mag);
}

static int slice_plan(const struct bnf_op_ctx *ctx, struct slice_plan *p)
{
	const struct bnf_tensor *x;
	int64_t starts[BNF_MAX_RANK], ends[BNF_MAX_RANK], axes[BNF_MAX_RANK], steps[BNF_MAX_RANK],
	    xs[BNF_MAX_RANK];
	size_t n, n_end, n_axes = 0, n_steps = 0, i;
	unsigned mask;
	int present, a;

	/* Opset 1 took starts/ends/axes as attributes; from 10 they are inputs
	 * 1 to 3 and input 4 adds steps. */
	if (bnf_shp_check_io(ctx, ctx->opset < 10 ? 1 : 3, ctx->opset < 10 ? 1 : 5) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "starts", 10, 1, starts, BNF_MAX_RANK, &n, &present) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "ends", 10, 2, ends, BNF_MAX_RANK, &n_end, &present) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "axes", 10, 3, axes, BNF_MAX_RANK, &n_axes, &present) != BNF_OK)
		return ctx->err->status;
	if (ctx->opset >= 10 && bnf_shp_in(ctx, 4) &&
	    bnf_shp_read_ints(ctx, ctx->in[4], "steps", steps, BNF_MAX_RANK, &n_steps) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (n_end != n || (present && n_axes != n) || (n_steps && n_steps != n))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "starts, ends, axes and steps have different lengths");
	if (!present) {
		if (n > (size_t)x->rank)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%zu starts for rank %d", n,
			                    x->rank);
		for (i = 0; i < n; i++)
			axes[i] = (int64_t)i;
	}
	if (bnf_shp_axes(ctx, axes, n, x->rank, "axes", &mask) != BNF_OK)
		return ctx->err->status;
	bnf_shp_strides(x->rank, x->dims, xs);
	memcpy(p->dims, x->dims, sizeof(p->dims));
	memcpy(p->strides, xs, sizeof(p->strides));
	p->base = 0;
	for (i = 0; i < n; i++) {
		int64_t step = n_steps ? steps[i] : 1;
		a = (int)axes[i];
		if (step == 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "steps[%zu] is 0", i);
		p->dims[a] = slice_axis(x->dims[a], &starts[i], ends[i], step);
		p->base += starts[i] * xs[a];
		/* With two or more elements |step| < dim, so the product fits;
		 * with fewer the stride is never used. */
		p->strides[a] = p->dims[a] > 1 ? xs[a] * step : 0;
	}
	return BNF_OK;
}

int bnf_shp_slice_shape(struct bnf_op_ctx *ctx)
{
	struct slice_plan p;

	if (slice_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, p.dims);
}

int bnf_shp_slice_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct slice_plan p;
	int64_t ys[BNF_MAX_RANK];
	size_t esize = bnf_tensor_elem_size(x->dtype);

	if (!y)
		return BNF_OK;
	if (slice_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (y->count == 0)
		return BNF_OK;
	bnf_shp_strides(y->rank, y->dims, ys);
	bnf_shp_copy(esize, y->rank, y->dims, (const char *)x->data + p.base * (int64_t)esize,
	             p.strides, y->data, ys);
	return BNF_OK;
}

/* ---- Gather and GatherElements ---- */

/* The normalised 'axis' attribute against the data's rank, after checking
 * the indices' dtype. */
static int gather_axis(const struct bnf_op_ctx *ctx, int *axis)
{
	int64_t a;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", 0, &a, ctx->err) != BNF_OK ||
	    bnf_shp_axis(ctx, a, ctx->in[0]->rank, "axis", axis) != BNF_OK)
		return ctx->err->status;
	if (ctx->in[1]->dtype != DT(INT64) && ctx->in[1]->dtype != DT(INT32))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "indices must be int64 or int32, not %s",
		                    bnf_dtype_name(ctx->in[1]->dtype));
	return BNF_OK;
}

/* Index i of the indices tensor, checked against [-dim, dim - 1] and made
 * non-negative. */
static int gather_index(const struct bnf_op_ctx *ctx, size_t i, int64_t dim, int64_t *out)
{
	int64_t v = bnf_shp_get_int(ctx->in[1], i);

	if (v < -dim || v >= dim)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "index %lld is outside [%lld, %lld]",
		                    (long long)v, (long long)-dim, (long long)dim - 1);
	*out = v < 0 ? v + dim : v;
	return BNF_OK;
}

int bnf_shp_gather_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *idx;
	int64_t dims[BNF_MAX_RANK];
	int axis, rank;

	if (gather_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	idx = ctx->in[1];
	rank = x->rank - 1 + idx->rank;
	if (rank > BNF_MAX_RANK)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "output rank %d is above %d", rank,
		                    BNF_MAX_RANK);
	/* data dims before the axis, then the indices' dims, then the rest. */
	memcpy(dims, x->dims, (size_t)axis * sizeof(dims[0]));
	memcpy(dims + axis, idx->dims, (size_t)idx->rank * sizeof(dims[0]));
	memcpy(dims + axis + idx->rank, x->dims + axis + 1,
	       (size_t)(x->rank - axis - 1) * sizeof(dims[0]));
	return bnf_shp_new_out(ctx, 0, x->dtype, rank, dims);
}

int bnf_shp_gather_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0], *idx = ctx->in[1];
	struct bnf_tensor *y = ctx->out[0];
	int64_t xs[BNF_MAX_RANK], outer, dim, k;
	size_t esize = bnf_tensor_elem_size(x->dtype), block, i, o;
	int axis;

	if (!y)
		return BNF_OK;
	if (gather_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	bnf_shp_strides(x->rank, x->dims, xs);
	dim = x->dims[axis];
	for (outer = 1, k = 0; k < axis; k++)
		outer *= x->dims[k];
	block = (size_t)xs[axis] * esize;
	for (o = 0; o < (size_t)outer; o++) {
		for (i = 0; i < idx->count; i++) {
			if (gather_index(ctx, i, dim, &k) != BNF_OK)
				return ctx->err->status;
			if (y->count)
				memcpy((char *)y->data + (o * idx->count + i) * block,
				       (const char *)x->data +
				           ((int64_t)o * dim + k) * xs[axis] * (int64_t)esize,
				       block);
		}
	}
	return BNF_OK;
}

int bnf_shp_gather_elements_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *idx;
	int axis, d;

	if (gather_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	idx = ctx->in[1];
	if (idx->rank != x->rank)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "indices have rank %d, data rank %d",
		                    idx->rank, x->rank);
	for (d = 0; d < x->rank; d++)
		if (d != axis && idx->dims[d] > x->dims[d])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "indices dim %d = %lld exceeds the data's %lld", d,
			                    (long long)idx->dims[d], (long long)x->dims[d]);
	return bnf_shp_new_out(ctx, 0, x->dtype, idx->rank, idx->dims);
}

int bnf_shp_gather_elements_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	int64_t xs[BNF_MAX_RANK], pos[BNF_MAX_RANK] = {0}, off = 0, k;
	size_t esize = bnf_tensor_elem_size(x->dtype), i;
	int axis, d;

	if (!y)
		return BNF_OK;
	if (gather_axis(ctx, &axis) != BNF_OK)
		return ctx->err->status;
	bnf_shp_strides(x->rank, x->dims, xs);
	/* off tracks the data offset of pos with the axis coordinate left out. */
	for (i = 0; i < y->count; i++) {
		if (gather_index(ctx, i, x->dims[axis], &k) != BNF_OK)
			return ctx->err->status;
		memcpy((char *)y->data + i * esize,
		       (const char *)x->data + (off + k * xs[axis]) * (int64_t)esize, esize);
		for (d = y->rank - 1; d >= 0; d--) {
			int64_t step = d == axis ? 0 : xs[d];
			off += step;
			if (++pos[d] < y->dims[d])
				break;
			off -= step * y->dims[d];
			pos[d] = 0;
		}
	}
	return BNF_OK;
}
