/*
 * The index family's shared helpers (a stable sort of indices, index
 * reading, comparing elements of any dtype) and its selecting operators:
 * TopK, NonZero, Compress and Unique.
 */
#include "eval/index_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bnf_idx_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the outputs */
	return BNF_OK;
}

/* Merge sort: stable, and O(n log n) whatever the order of the input. */
void bnf_idx_sort(int64_t *idx, size_t n, int64_t *scratch,
                  int (*before)(const void *ctx, int64_t a, int64_t b), const void *ctx)
{
	size_t width, lo, i, j, k, mid, hi;
	int64_t *src = idx, *dst = scratch, *tmp;

	for (width = 1; width < n; width *= 2) {
		for (lo = 0; lo < n; lo += 2 * width) {
			mid = lo + width < n ? lo + width : n;
			hi = lo + 2 * width < n ? lo + 2 * width : n;
			for (i = lo, j = mid, k = lo; k < hi; k++)
				dst[k] = (j >= hi || (i < mid && !before(ctx, src[j], src[i])))
				             ? src[i++]
				             : src[j++];
		}
		tmp = src;
		src = dst;
		dst = tmp;
	}
	if (src != idx)
		memcpy(idx, src, n * sizeof(*idx));
}

int bnf_idx_read(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, size_t i, int64_t dim,
                 int64_t *out)
{
	int64_t v = bnf_shp_get_int(t, i);

	if (v < -dim || v >= dim) {
		bnf_shp_fail(ctx, BNF_ERR_INPUT, "index %lld is outside [%lld, %lld]", (long long)v,
		             (long long)-dim, (long long)dim - 1);
		return -1;
	}
	*out = v < 0 ? v + dim : v;
	return 0;
}

int bnf_idx_compare(const struct bnf_tensor *a, size_t i, const struct bnf_tensor *b, size_t j)
{
	if (bnf_shp_is_float(a->dtype)) {
		double x = bnf_shp_get(a, i), y = bnf_shp_get(b, j);
		if (isnan(x) || isnan(y))
			return isnan(x) - isnan(y);
		return (x > y) - (x < y);
	}
	if (a->dtype == DT(UINT64)) {
		uint64_t x = (uint64_t)bnf_shp_get_int(a, i), y = (uint64_t)bnf_shp_get_int(b, j);
		return (x > y) - (x < y);
	} else {
		int64_t x = bnf_shp_get_int(a, i), y = bnf_shp_get_int(b, j);
		return (x > y) - (x < y);
	}
}

/* ---- TopK ---- */

/* One line of x along the axis: element k is at base + k * step. */
struct line {
	const struct bnf_tensor *x;
	size_t base, step;
	int largest;
};

/* Larger (or smaller) values first; equal ones keep their order, so the
 * lower index wins a tie, as in onnxruntime. */
static int topk_before(const void *p, int64_t a, int64_t b)
{
	const struct line *l = p;
	int c = bnf_idx_compare(l->x, l->base + (size_t)a * l->step, l->x,
	                        l->base + (size_t)b * l->step);

	return l->largest ? c > 0 : c < 0;
}

/* TopK: K from the attribute k before opset 10, from input 1 after;
 * largest and sorted from opset 11 (the output is always sorted, which
 * sorted=0 allows). */
int bnf_idx_topk_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t k, axis_attr, largest = 1, dims[BNF_MAX_RANK], strides[BNF_MAX_RANK];
	int64_t *idx = NULL, *scratch = NULL, n, outer, inner, o, in, j;
	struct line l;
	size_t n_k, esize;
	int axis, rc;

	if (bnf_shp_check_io(ctx, 1, ctx->opset < 10 ? 1 : 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", -1, &axis_attr, ctx->err) != BNF_OK ||
	    (ctx->opset >= 11 &&
	     bnf_attr_int(ctx->node, "largest", 1, &largest, ctx->err) != BNF_OK))
		return ctx->err->status;
	x = ctx->in[0];
	if (ctx->opset < 10) {
		if (bnf_attr_int(ctx->node, "k", -1, &k, ctx->err) != BNF_OK)
			return ctx->err->status;
	} else if (!bnf_shp_in(ctx, 1) ||
	           bnf_shp_read_ints(ctx, ctx->in[1], "K", &k, 1, &n_k) != BNF_OK || n_k != 1) {
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "K must be one int64 value");
	}
	if (bnf_shp_axis(ctx, axis_attr, x->rank, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	n = x->dims[axis];
	if (k < 0 || k > n)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "K = %lld is outside [0, %lld]",
		                    (long long)k, (long long)n);
	if (!bnf_shp_is_float(x->dtype) && !bnf_dtype_is_integer(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	memcpy(dims, x->dims, sizeof(dims));
	dims[axis] = k;
	if (bnf_shp_new_out(ctx, 0, x->dtype, x->rank, dims) != BNF_OK ||
	    bnf_shp_new_out(ctx, 1, DT(INT64), x->rank, dims) != BNF_OK)
		return ctx->err->status;
	idx = malloc(((size_t)n + 1) * sizeof(*idx));
	scratch = malloc(((size_t)n + 1) * sizeof(*scratch));
	if (!idx || !scratch) {
		rc = bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	bnf_shp_strides(x->rank, x->dims, strides);
	inner = strides[axis];
	outer = inner && n ? (int64_t)x->count / (n * inner) : 0;
	l.x = x;
	l.step = (size_t)inner;
	l.largest = largest != 0;
	esize = bnf_tensor_elem_size(x->dtype);
	for (o = 0; o < outer; o++) {
		for (in = 0; in < inner; in++) {
			l.base = (size_t)(o * n * inner + in);
			for (j = 0; j < n; j++)
				idx[j] = j;
			bnf_idx_sort(idx, (size_t)n, scratch, topk_before, &l);
			for (j = 0; j < k; j++) {
				size_t dst = (size_t)(o * k * inner + j * inner + in);
				size_t src = l.base + (size_t)idx[j] * l.step;
				if (ctx->out[0])
					memcpy((char *)ctx->out[0]->data + dst * esize,
					       (const char *)x->data + src * esize, esize);
				if (ctx->n_out > 1 && ctx->out[1])
					((int64_t *)ctx->out[1]->data)[dst] = idx[j];
			}
		}
	}
	rc = BNF_OK;
out:
	free(idx);
	free(scratch);
	return rc;
}

/* ---- NonZero ---- */

/* NonZero: the indices of the non-zero elements, one row per dimension,
 * in row-major order ([rank, count], int64). A scalar has rank 0: the
 * output is [0, count] then, as onnxruntime gives. */
int bnf_idx_nonzero_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t dims[2], strides[BNF_MAX_RANK], rem;
	size_t i, n = 0, col = 0;
	int a;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	for (i = 0; i < x->count; i++)
		n += bnf_tensor_get_double(x, i) != 0.0;
	dims[0] = x->rank;
	dims[1] = (int64_t)n;
	if (bnf_shp_new_out(ctx, 0, DT(INT64), 2, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	bnf_shp_strides(x->rank, x->dims, strides);
	for (i = 0; i < x->count; i++) {
		if (bnf_tensor_get_double(x, i) == 0.0)
			continue;
		rem = (int64_t)i;
		for (a = 0; a < x->rank; a++) {
			((int64_t *)ctx->out[0]->data)[(size_t)a * n + col] = rem / strides[a];
			rem %= strides[a];
		}
		col++;
	}
	return BNF_OK;
}

/* ---- Compress ---- */

/* Compress: the slices along axis (or the elements of the flattened input
 * when there is no axis) whose condition entry is true; a condition
 * shorter than the axis leaves the rest out. */
int bnf_idx_compress_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *cond;
	struct bnf_tensor flat;
	int64_t axis_attr, dims[BNF_MAX_RANK], xs[BNF_MAX_RANK], ys[BNF_MAX_RANK], keep = 0, j;
	int64_t outer = 1, inner = 1, n;
	size_t esize;
	int axis = 0, a;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	cond = ctx->in[1];
	if (cond->dtype != DT(BOOL) || cond->rank != 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "condition must be a 1-D bool tensor");
	flat = *x;
	if (!bnf_attr_find(ctx->node, "axis")) {
		flat.rank = 1;
		flat.dims[0] = (int64_t)x->count;
	} else if (bnf_attr_int(ctx->node, "axis", 0, &axis_attr, ctx->err) != BNF_OK ||
	           bnf_shp_axis(ctx, axis_attr, x->rank, "axis", &axis) != BNF_OK) {
		return ctx->err->status;
	}
	n = flat.dims[axis];
	if (cond->dims[0] > n)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "condition has %lld entries for %lld slices",
		                    (long long)cond->dims[0], (long long)n);
	for (j = 0; j < cond->dims[0]; j++)
		keep += ((const uint8_t *)cond->data)[j] != 0;
	memcpy(dims, flat.dims, sizeof(dims));
	dims[axis] = keep;
	if (bnf_shp_new_out(ctx, 0, x->dtype, flat.rank, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (a = 0; a < axis; a++)
		outer *= flat.dims[a];
	for (a = axis + 1; a < flat.rank; a++)
		inner *= flat.dims[a];
	esize = bnf_tensor_elem_size(x->dtype);
	xs[0] = n * inner;
	xs[1] = 1;
	ys[0] = keep * inner;
	ys[1] = 1;
	/* Copy each kept slice: outer rows of inner elements. */
	for (j = 0, keep = 0; j < cond->dims[0]; j++) {
		int64_t view[2] = {outer, inner};
		if (!((const uint8_t *)cond->data)[j])
			continue;
		bnf_shp_copy(esize, 2, view, (const char *)x->data + (size_t)(j * inner) * esize,
		             xs, (char *)ctx->out[0]->data + (size_t)(keep * inner) * esize, ys);
		keep++;
	}
	return BNF_OK;
}

/* ---- Unique ---- */

/* The slices of Unique: slice s of x along the axis (or element s of the
 * flattened x) is `inner` elements, `outer` times, step apart. */
struct slices {
	const struct bnf_tensor *x;
	int64_t outer, inner, n;
};

static int slice_compare(const struct slices *s, int64_t a, int64_t b)
{
	int64_t o, i;
	int c;

	for (o = 0; o < s->outer; o++)
		for (i = 0; i < s->inner; i++) {
			size_t base = (size_t)(o * s->n * s->inner + i);
			c = bnf_idx_compare(s->x, base + (size_t)(a * s->inner), s->x,
			                    base + (size_t)(b * s->inner));
			if (c)
				return c;
		}
	return 0;
}

static int slice_before(const void *p, int64_t a, int64_t b)
{
	return slice_compare(p, a, b) < 0;
}

static int first_before(const void *p, int64_t a, int64_t b)
{
	const int64_t *first = p;

	return first[a] < first[b];
}

/* Renumber Unique's runs (first[r], count[r], inverse[slice] = r) by
 * first occurrence; work has room for n_uniq entries. Returns -1 when
 * memory runs out. */
static int unique_by_occurrence(int64_t *first, int64_t *count, int64_t *inverse, int64_t n_uniq,
                                int64_t n, int64_t *work)
{
	int64_t *perm = malloc(((size_t)n_uniq + 1) * 3 * sizeof(*perm));
	int64_t *pos = perm + n_uniq + 1, *tmp = pos + n_uniq + 1, p, j;

	if (!perm)
		return -1;
	for (p = 0; p < n_uniq; p++)
		perm[p] = p;
	bnf_idx_sort(perm, (size_t)n_uniq, work, first_before, first);
	for (p = 0; p < n_uniq; p++)
		pos[perm[p]] = p;
	for (p = 0; p < n_uniq; p++)
		tmp[p] = first[perm[p]];
	memcpy(first, tmp, (size_t)n_uniq * sizeof(*tmp));
	for (p = 0; p < n_uniq; p++)
		tmp[p] = count[perm[p]];
	memcpy(count, tmp, (size_t)n_uniq * sizeof(*tmp));
	for (j = 0; j < n; j++)
		inverse[j] = pos[inverse[j]];
	free(perm);
	return 0;
}

/* Unique: the distinct elements (or slices along axis), sorted ascending
 * or in order of first occurrence, with the index of each one's first
 * occurrence, each input element's position in the output, and counts. */
int bnf_idx_unique_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	struct slices s;
	int64_t sorted, axis_attr, *order = NULL, *scratch = NULL, *first = NULL, *inverse = NULL,
	                           *count = NULL, n_uniq = 0, j, o, i, dims[BNF_MAX_RANK];
	size_t esize;
	int axis = 0, has_axis, a, rc = BNF_OK;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_attr_int(ctx->node, "sorted", 1, &sorted, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	has_axis = bnf_attr_find(ctx->node, "axis") != NULL;
	if (has_axis && (bnf_attr_int(ctx->node, "axis", 0, &axis_attr, ctx->err) != BNF_OK ||
	                 bnf_shp_axis(ctx, axis_attr, x->rank, "axis", &axis) != BNF_OK))
		return ctx->err->status;
	s.x = x;
	s.outer = 1;
	s.inner = 1;
	s.n = has_axis ? x->dims[axis] : (int64_t)x->count;
	for (a = 0; has_axis && a < axis; a++)
		s.outer *= x->dims[a];
	for (a = axis + 1; has_axis && a < x->rank; a++)
		s.inner *= x->dims[a];
	order = malloc(((size_t)s.n + 1) * sizeof(*order));
	scratch = malloc(((size_t)s.n + 1) * sizeof(*scratch));
	first = malloc(((size_t)s.n + 1) * sizeof(*first));
	inverse = malloc(((size_t)s.n + 1) * sizeof(*inverse));
	count = calloc((size_t)s.n + 1, sizeof(*count));
	if (!order || !scratch || !first || !inverse || !count) {
		rc = bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (j = 0; j < s.n; j++)
		order[j] = j;
	bnf_idx_sort(order, (size_t)s.n, scratch, slice_before, &s);
	/* Runs of equal slices in the sorted order; the stable sort puts each
	 * run's first occurrence first. scratch[slice] = its run. */
	for (j = 0; j < s.n; j++) {
		if (j == 0 || slice_compare(&s, order[j - 1], order[j]) != 0)
			first[n_uniq++] = order[j];
		scratch[order[j]] = n_uniq - 1;
		count[n_uniq - 1]++;
	}
	for (j = 0; j < s.n; j++)
		inverse[j] = scratch[j];
	/* Unsorted: the runs in order of their first occurrence. */
	if (!sorted && unique_by_occurrence(first, count, inverse, n_uniq, s.n, order) != 0) {
		rc = bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(dims, x->dims, sizeof(dims));
	if (!has_axis) {
		dims[0] = n_uniq;
		a = 1;
	} else {
		dims[axis] = n_uniq;
		a = x->rank;
	}
	if (bnf_shp_new_out(ctx, 0, x->dtype, a, dims) != BNF_OK ||
	    bnf_shp_new_out(ctx, 1, DT(INT64), 1, &n_uniq) != BNF_OK ||
	    bnf_shp_new_out(ctx, 2, DT(INT64), 1, &s.n) != BNF_OK ||
	    bnf_shp_new_out(ctx, 3, DT(INT64), 1, &n_uniq) != BNF_OK) {
		rc = ctx->err->status;
		goto out;
	}
	esize = bnf_tensor_elem_size(x->dtype);
	for (j = 0; ctx->out[0] && j < n_uniq; j++)
		for (o = 0; o < s.outer; o++)
			for (i = 0; i < s.inner; i++)
				memcpy((char *)ctx->out[0]->data +
				           (size_t)((o * n_uniq + j) * s.inner + i) * esize,
				       (const char *)x->data +
				           (size_t)((o * s.n + first[j]) * s.inner + i) * esize,
				       esize);
	for (j = 0; ctx->n_out > 1 && ctx->out[1] && j < n_uniq; j++)
		((int64_t *)ctx->out[1]->data)[j] = first[j];
	for (j = 0; ctx->n_out > 2 && ctx->out[2] && j < s.n; j++)
		((int64_t *)ctx->out[2]->data)[j] = inverse[j];
	for (j = 0; ctx->n_out > 3 && ctx->out[3] && j < n_uniq; j++)
		((int64_t *)ctx->out[3]->data)[j] = count[j];
out:
	free(order);
	free(scratch);
	free(first);
	free(inverse);
	free(count);
	return rc;
}
