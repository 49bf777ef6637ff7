/*
 * The index family's operators that place each element by its own
 * position: CumSum, Trilu, OneHot, EyeLike, Size, Hardmax and
 * ReverseSequence, and TfIdfVectorizer, which counts n-grams.
 */
#include "eval/index_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The split of t around axis a: outer (before), n (the axis), inner
 * (after). */
static void around_axis(const struct bnf_tensor *t, int a, int64_t *outer, int64_t *n,
                        int64_t *inner)
{
	int d;

	*outer = 1;
	*inner = 1;
	for (d = 0; d < a; d++)
		*outer *= t->dims[d];
	for (d = a + 1; d < t->rank; d++)
		*inner *= t->dims[d];
	*n = t->dims[a];
}

/* A new output 0 shaped like input 0 (the steps below write it whole). */
static int like_input(struct bnf_op_ctx *ctx, int dtype)
{
	const struct bnf_tensor *x = ctx->in[0];

	if (bnf_shp_new_out(ctx, 0, dtype, x->rank, x->dims) != BNF_OK)
		return ctx->err->status;
	return BNF_OK;
}

/* ---- CumSum ---- */

/* v rounded to a floating dtype's storage. */
static double round_as(int dtype, double v)
{
	switch (dtype) {
	case DT(FLOAT):
		return (float)v;
	case DT(FLOAT16):
		return bnf_f16_to_f32(bnf_f32_to_f16((float)v));
	case DT(BFLOAT16):
		return bnf_bf16_to_f32(bnf_f32_to_bf16((float)v));
	default:
		return v;
	}
}

/* CumSum: running sums along the axis (input 1), from the end with
 * reverse, each leaving out its own element with exclusive. Each partial
 * sum is rounded to the output's type before the next is added, as the
 * type's own arithmetic would do it; integers wrap. */
int bnf_idx_cumsum_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	struct bnf_tensor *y;
	int64_t axis_v, exclusive, reverse, outer, n, inner, o, i, j;
	size_t n_axis;
	int axis, is_float;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "exclusive", 0, &exclusive, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "reverse", 0, &reverse, ctx->err) != BNF_OK ||
	    bnf_shp_read_ints(ctx, ctx->in[1], "axis", &axis_v, 1, &n_axis) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (n_axis != 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "axis must be one value");
	if (bnf_shp_axis(ctx, axis_v, x->rank, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	is_float = bnf_shp_is_float(x->dtype);
	if (!is_float && !bnf_dtype_is_integer(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	if (like_input(ctx, x->dtype) != BNF_OK)
		return ctx->err->status;
	if (!(y = ctx->out[0]))
		return BNF_OK;
	around_axis(x, axis, &outer, &n, &inner);
	for (o = 0; o < outer; o++) {
		for (i = 0; i < inner; i++) {
			double acc = 0.0;
			uint64_t iacc = 0;
			for (j = 0; j < n; j++) {
				size_t at =
				    (size_t)((o * n + (reverse ? n - 1 - j : j)) * inner + i);
				if (is_float) {
					double before = acc;
					acc = round_as(x->dtype, acc + bnf_shp_get(x, at));
					bnf_shp_set(y, at, exclusive ? before : acc);
				} else {
					uint64_t before = iacc;
					iacc += (uint64_t)bnf_shp_get_int(x, at);
					bnf_tensor_set_int(y, at,
					                   (int64_t)(exclusive ? before : iacc));
				}
			}
		}
	}
	return BNF_OK;
}

/* ---- Trilu ---- */

/* Trilu: the upper (or lower) triangle of each matrix in the last two
 * axes, above (below) diagonal k (input 1, default 0); zeros elsewhere. */
int bnf_idx_trilu_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t upper, k = 0, rows, cols, i, j, m, n_mat;
	size_t n_k, esize;

	if (bnf_shp_check_io(ctx, 1, 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "upper", 1, &upper, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (bnf_shp_in(ctx, 1) &&
	    (bnf_shp_read_ints(ctx, ctx->in[1], "k", &k, 1, &n_k) != BNF_OK || n_k != 1))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "k must be one int64 value");
	if (x->rank < 2)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input has rank %d, below 2", x->rank);
	if (like_input(ctx, x->dtype) != BNF_OK)
		return ctx->err->status;
	if (!ctx->out[0] || x->count == 0)
		return BNF_OK;
	rows = x->dims[x->rank - 2];
	cols = x->dims[x->rank - 1];
	n_mat = (int64_t)x->count / (rows * cols);
	esize = bnf_tensor_elem_size(x->dtype);
	for (m = 0; m < n_mat; m++)
		for (i = 0; i < rows; i++)
			for (j = 0; j < cols; j++) {
				size_t at = (size_t)((m * rows + i) * cols + j);
				if (upper ? j - i >= k : j - i <= k)
					memcpy((char *)ctx->out[0]->data + at * esize,
					       (const char *)x->data + at * esize, esize);
			}
	return BNF_OK;
}

/* ---- OneHot ---- */

/* OneHot: a new axis of length depth (input 1) at axis; each position
 * holds values[1] where it equals the index (negative indices count from
 * depth, opset 11) and values[0] elsewhere. */
int bnf_idx_onehot_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *ind, *vals;
	int64_t axis_attr, depth, dims[BNF_MAX_RANK], outer, inner, o, d, i, at;
	size_t esize;
	int axis, a;

	if (bnf_shp_check_io(ctx, 3, 3) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", -1, &axis_attr, ctx->err) != BNF_OK)
		return ctx->err->status;
	ind = ctx->in[0];
	vals = ctx->in[2];
	if (ctx->in[1]->count != 1 || vals->count != 2)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "depth must be one value and values two (off, on)");
	depth = (int64_t)bnf_tensor_get_double(ctx->in[1], 0);
	if (depth < 1 || ind->rank + 1 > BNF_MAX_RANK)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "depth %lld is not positive",
		                    (long long)depth);
	if (bnf_shp_axis(ctx, axis_attr, ind->rank + 1, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	for (a = 0; a <= ind->rank; a++)
		dims[a] = a < axis ? ind->dims[a] : a == axis ? depth : ind->dims[a - 1];
	if (bnf_shp_new_out(ctx, 0, vals->dtype, ind->rank + 1, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	outer = 1;
	inner = 1;
	for (a = 0; a < axis; a++)
		outer *= ind->dims[a];
	for (a = axis; a < ind->rank; a++)
		inner *= ind->dims[a];
	esize = bnf_tensor_elem_size(vals->dtype);
	for (o = 0; o < outer; o++)
		for (i = 0; i < inner; i++) {
			double v = bnf_tensor_get_double(ind, (size_t)(o * inner + i));
			int64_t hot = isnan(v) ? -1 : (int64_t)v;
			if (hot < 0 && hot >= -depth)
				hot += depth;
			for (d = 0; d < depth; d++) {
				at = (o * depth + d) * inner + i;
				memcpy((char *)ctx->out[0]->data + (size_t)at * esize,
				       (const char *)vals->data + (d == hot ? esize : 0), esize);
			}
		}
	return BNF_OK;
}

/* ---- EyeLike, Size ---- */

/* EyeLike: zeros of input 0's shape (a matrix) with ones on diagonal k,
 * in the dtype attribute's type or the input's. */
int bnf_idx_eyelike_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t dtype, k, i;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_attr_int(ctx->node, "k", 0, &k, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (bnf_attr_int(ctx->node, "dtype", x->dtype, &dtype, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (x->rank != 2)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input has rank %d, not 2", x->rank);
	if (dtype < 0 || dtype > 64 || bnf_tensor_elem_size((int)dtype) == 0)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %lld is not supported",
		                    (long long)dtype);
	if (like_input(ctx, (int)dtype) != BNF_OK)
		return ctx->err->status;
	for (i = 0; ctx->out[0] && i < x->dims[0]; i++)
		if (i + k >= 0 && i + k < x->dims[1])
			bnf_shp_set(ctx->out[0], (size_t)(i * x->dims[1] + i + k), 1.0);
	return BNF_OK;
}

/* Size: the element count of input 0, a scalar int64. */
int bnf_idx_size_shape(struct bnf_op_ctx *ctx)
{
	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_shp_new_out(ctx, 0, DT(INT64), 0, NULL) != BNF_OK)
		return ctx->err->status;
	if (ctx->out[0])
		((int64_t *)ctx->out[0]->data)[0] = (int64_t)ctx->in[0]->count;
	return BNF_OK;
}

/* ---- Hardmax ---- */

/* Hardmax: 1 at the first maximum, 0 elsewhere. Before opset 13 the input
 * is seen as a matrix split at axis (default 1), the maximum taken over
 * each row; from 13 along axis alone (default -1). */
int bnf_idx_hardmax_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axis_attr, outer, n, inner, o, i, j, best;
	int axis, a;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", ctx->opset < 13 ? 1 : -1, &axis_attr, ctx->err) !=
	        BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_shp_is_float(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	if (bnf_shp_axis(ctx, axis_attr, x->rank, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	if (like_input(ctx, x->dtype) != BNF_OK)
		return ctx->err->status;
	if (!ctx->out[0] || x->count == 0)
		return BNF_OK;
	around_axis(x, axis, &outer, &n, &inner);
	if (ctx->opset < 13) {
		for (a = axis + 1; a < x->rank; a++)
			n *= x->dims[a];
		inner = 1;
	}
	for (o = 0; o < outer; o++)
		for (i = 0; i < inner; i++) {
			best = 0;
			for (j = 1; j < n; j++)
				if (bnf_shp_get(x, (size_t)((o * n + j) * inner + i)) >
				    bnf_shp_get(x, (size_t)((o * n + best) * inner + i)))
					best = j;
			bnf_shp_set(ctx->out[0], (size_t)((o * n + best) * inner + i), 1.0);
		}
	return BNF_OK;
}

/* ---- ReverseSequence ---- */

/* ReverseSequence: for batch entry b (along batch_axis), the first
 * sequence_lens[b] elements along time_axis in reverse order, the rest as
 * they are. */
int bnf_idx_reverse_sequence_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *lens;
	int64_t batch_attr, time_attr, xs[BNF_MAX_RANK], rem, pos, b, t, len, src;
	size_t i, esize;
	int batch_axis, time_axis, a;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "batch_axis", 1, &batch_attr, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "time_axis", 0, &time_attr, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	lens = ctx->in[1];
	if (bnf_shp_axis(ctx, batch_attr, x->rank, "batch_axis", &batch_axis) != BNF_OK ||
	    bnf_shp_axis(ctx, time_attr, x->rank, "time_axis", &time_axis) != BNF_OK)
		return ctx->err->status;
	if (batch_axis == time_axis || lens->count != (size_t)x->dims[batch_axis])
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "sequence_lens must have one entry per batch entry");
	if (like_input(ctx, x->dtype) != BNF_OK)
		return ctx->err->status;
	if (!ctx->out[0])
		return BNF_OK;
	bnf_shp_strides(x->rank, x->dims, xs);
	esize = bnf_tensor_elem_size(x->dtype);
	for (i = 0; i < x->count; i++) {
		rem = (int64_t)i;
		b = t = 0;
		for (a = 0; a < x->rank; a++) {
			pos = rem / xs[a];
			rem %= xs[a];
			if (a == batch_axis)
				b = pos;
			if (a == time_axis)
				t = pos;
		}
		len = bnf_shp_get_int(lens, (size_t)b);
		if (len < 0 || len > x->dims[time_axis])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "sequence length %lld is out of range", (long long)len);
		src = (int64_t)i + (t < len ? (len - 1 - 2 * t) * xs[time_axis] : 0);
		memcpy((char *)ctx->out[0]->data + i * esize,
		       (const char *)x->data + (size_t)src * esize, esize);
	}
	return BNF_OK;
}

/* ---- TfIdfVectorizer ---- */

/* TfIdfVectorizer on integer rows: for every n-gram of the pool (sizes
 * min_gram_length to max_gram_length), how often it occurs in a row with
 * its items 1 to max_skip_count + 1 apart; unigrams are counted once,
 * whatever the skip, as in onnxruntime. The count, or its weight (IDF),
 * or both multiplied (TFIDF), goes to the pool entry's column. */
struct tfidf {
	int64_t min_n, max_n, max_skip;
	int64_t counts[16], n_counts;
	const int64_t *pool, *index;
	size_t n_pool, n_index;
	const float *weights;
	size_t n_weights;
	int mode; /* 0 TF, 1 IDF, 2 TFIDF */
};

static int tfidf_attrs(const struct bnf_op_ctx *ctx, struct tfidf *t)
{
	const Onnx__AttributeProto *a;
	char mode[8];
	size_t n;

	memset(t, 0, sizeof(*t));
	if (bnf_attr_int(ctx->node, "min_gram_length", 1, &t->min_n, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "max_gram_length", 1, &t->max_n, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "max_skip_count", 0, &t->max_skip, ctx->err) != BNF_OK ||
	    bnf_attr_ints(ctx->node, "ngram_counts", t->counts, 16, &n, ctx->err) != BNF_OK ||
	    bnf_attr_string(ctx->node, "mode", "TF", mode, sizeof(mode), ctx->err) != BNF_OK)
		return ctx->err->status;
	t->n_counts = (int64_t)n;
	t->mode = strcmp(mode, "TF") == 0 ? 0 : strcmp(mode, "IDF") == 0 ? 1 : 2;
	if (t->mode == 2 && strcmp(mode, "TFIDF") != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown mode '%s'", mode);
	if (bnf_attr_find(ctx->node, "pool_strings"))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "string pools are not supported");
	if ((a = bnf_attr_find(ctx->node, "pool_int64s")) != NULL) {
		t->pool = a->ints;
		t->n_pool = a->n_ints;
	}
	if ((a = bnf_attr_find(ctx->node, "ngram_indexes")) != NULL) {
		t->index = a->ints;
		t->n_index = a->n_ints;
	}
	if ((a = bnf_attr_find(ctx->node, "weights")) != NULL) {
		t->weights = a->floats;
		t->n_weights = a->n_floats;
	}
	if (t->min_n < 1 || t->max_n < t->min_n || t->max_n > t->n_counts || t->max_skip < 0 ||
	    (t->weights && t->n_weights != t->n_index) || !t->pool || !t->index)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "inconsistent n-gram attributes");
	/* Each size's n-grams start where the previous size's end. */
	for (n = 0; n < (size_t)t->n_counts; n++)
		if (t->counts[n] < (n ? t->counts[n - 1] : 0) || t->counts[n] > (int64_t)t->n_pool)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "ngram_counts must rise within the pool of %zu",
			                    t->n_pool);
	return BNF_OK;
}

/* Add to row the pool n-grams of size n found at start s, items d apart
 * (positions within [0, len)). */
static void tfidf_match(const struct tfidf *t, const struct bnf_tensor *x, size_t base, int64_t len,
                        int64_t s, int64_t d, int64_t n, double *row)
{
	int64_t start = t->counts[n - 1], end = n < t->n_counts ? t->counts[n] : (int64_t)t->n_pool;
	int64_t ordinal = 0, k, i, m;

	if (s + (n - 1) * d >= len)
		return;
	/* The ordinal of the first n-gram of size n among all pool n-grams. */
	for (m = 1; m < n; m++)
		ordinal +=
		    ((m < t->n_counts ? t->counts[m] : (int64_t)t->n_pool) - t->counts[m - 1]) / m;
	for (k = start; k + n <= end; k += n, ordinal++) {
		for (i = 0; i < n; i++)
			if (t->pool[k + i] != bnf_shp_get_int(x, base + (size_t)(s + i * d)))
				break;
		if (i == n && (size_t)ordinal < t->n_index)
			row[t->index[ordinal]] += 1;
	}
}

int bnf_idx_tfidf_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	struct tfidf t;
	int64_t rows, len, width = 0, dims[2], r, d, s, n;
	double *row;
	size_t k;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK || tfidf_attrs(ctx, &t) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if ((x->dtype != DT(INT64) && x->dtype != DT(INT32)) || x->rank < 1 || x->rank > 2)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "input must be int32 or int64 [C] or "
		                    "[N, C]");
	for (k = 0; k < t.n_index; k++) {
		if (t.index[k] < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "negative ngram_indexes");
		width = t.index[k] + 1 > width ? t.index[k] + 1 : width;
	}
	rows = x->rank == 2 ? x->dims[0] : 1;
	len = x->dims[x->rank - 1];
	dims[0] = rows;
	dims[1] = width;
	if (bnf_shp_new_out(ctx, 0, DT(FLOAT), x->rank, x->rank == 2 ? dims : dims + 1) != BNF_OK ||
	    !ctx->out[0])
		return ctx->err->status;
	row = calloc((size_t)width + 1, sizeof(*row));
	if (!row)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (r = 0; r < rows; r++) {
		memset(row, 0, ((size_t)width + 1) * sizeof(*row));
		/* Items len or more apart never form an n-gram of two or more. */
		for (d = 1; d <= t.max_skip + 1 && d <= len; d++)
			for (s = 0; s < len; s++)
				for (n = d == 1 ? t.min_n : (t.min_n > 2 ? t.min_n : 2);
				     n <= t.max_n; n++)
					tfidf_match(&t, x, (size_t)(r * len), len, s, d, n, row);
		for (k = 0; k < (size_t)width; k++) {
			double w = 1.0, c = row[k];
			size_t j;
			for (j = 0; t.weights && j < t.n_index; j++)
				if (t.index[j] == (int64_t)k)
					w = t.weights[j];
			bnf_shp_set(ctx->out[0], (size_t)(r * width) + k,
			            t.mode == 0   ? c
			            : t.mode == 1 ? (c > 0 ? w : 0)
			                          : c * w);
		}
	}
	free(row);
	return BNF_OK;
}
