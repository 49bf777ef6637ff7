/*
 * Resize (opsets 10 to 19) and Upsample (7 to 10) in nearest, N-linear and
 * N-cubic modes. Each output coordinate is mapped to the input axis by axis
 * (the coordinate_transformation_mode formulas of the spec) into a table
 * of neighbours and weights; the output is then a weighted sum of one
 * (nearest), two (linear) or four (cubic) neighbours per axis. Antialias
 * and aspect-ratio policies other than "stretch" (opset 18) are refused.
 */
#include "eval/parallel.h"
#include "eval/shape_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum resize_coord {
	RESIZE_COORD_HALF_PIXEL,
	RESIZE_COORD_HALF_PIXEL_SYMMETRIC,
	RESIZE_COORD_PYTORCH_HALF_PIXEL,
	RESIZE_COORD_ALIGN_CORNERS,
	RESIZE_COORD_ASYMMETRIC,
	RESIZE_COORD_TF_HALF_PIXEL_FOR_NN,
	RESIZE_COORD_TF_CROP_AND_RESIZE,
};

enum resize_round {
	RESIZE_ROUND_PREFER_FLOOR,
	RESIZE_ROUND_PREFER_CEIL,
	RESIZE_ROUND_FLOOR,
	RESIZE_ROUND_CEIL,
	/* Upsample and Resize-10 had no nearest_mode: round down when
	 * enlarging and up when shrinking, as onnxruntime does for them. */
	RESIZE_ROUND_LEGACY,
};

enum resize_mode {
	RESIZE_MODE_NEAREST,
	RESIZE_MODE_LINEAR,
	RESIZE_MODE_CUBIC,
};

struct resize_plan {
	enum resize_mode mode;
	double cubic_a;      /* cubic_coeff_a */
	int exclude_outside; /* cubic: neighbours outside the input weigh 0 */
	enum resize_coord coord;
	enum resize_round round;
	double extrapolation;
	int64_t dims[BNF_MAX_RANK];   /* output dims */
	double scale[BNF_MAX_RANK];   /* output length / input length */
	double length[BNF_MAX_RANK];  /* the output length the formulas use */
	double roi[2 * BNF_MAX_RANK]; /* starts then ends, for tf_crop_and_resize */
};

/* One output index of one axis: n input neighbours and their weights;
 * n == 0 means "outside the crop: use the extrapolation". */
struct resize_tap {
	int64_t at[4];
	double w[4];
	int n;
};

/* Look a string attribute up in a NULL-terminated name list; *index gets
 * its position. Valid values that bnfold does not implement are refused
 * as such. */
static int pick_string(const struct bnf_op_ctx *ctx, const char *attr, const char *def,
                       const char *const *names, int *index)
{
	static const char *const refused[] = {"not_larger", "not_smaller", NULL};
	char s[32];
	int i;

	if (bnf_attr_string(ctx->node, attr, def, s, sizeof(s), ctx->err) != BNF_OK)
		return ctx->err->status;
	for (i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0) {
			*index = i;
			return BNF_OK;
		}
	}
	for (i = 0; refused[i]; i++)
		if (strcmp(s, refused[i]) == 0)
			return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "%s '%s' is not implemented",
			                    attr, s);
	return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown %s '%s'", attr, s);
}

/* The attributes: mode, and from Resize-11 the coordinate mapping, the
 * rounding, the extrapolation value and the opset-18 options we refuse. */
static int resize_attrs(const struct bnf_op_ctx *ctx, struct resize_plan *p)
{
	static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
	static const char *const coords[] = {
	    "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
	    "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize", NULL};
	static const char *const rounds[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
	                                     "ceil", NULL};
	static const char *const policies[] = {"stretch", NULL};
	int mode, coord, round, policy;
	int64_t antialias = 0, exclude = 0;
	float extrapolation, cubic_a;

	if (pick_string(ctx, "mode", "nearest", modes, &mode) != BNF_OK)
		return ctx->err->status;
	p->mode = (enum resize_mode)mode;
	if (p->mode == RESIZE_MODE_CUBIC && ctx->opset < 11)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "mode 'cubic' is not in opset %d",
		                    ctx->opset);
	p->cubic_a = -0.75;
	p->exclude_outside = 0;
	p->coord = RESIZE_COORD_ASYMMETRIC;
	p->round = RESIZE_ROUND_LEGACY;
	p->extrapolation = 0;
	if (strcmp(ctx->node->op_type, "Upsample") == 0 || ctx->opset < 11)
		return BNF_OK;
	if (pick_string(ctx, "coordinate_transformation_mode", "half_pixel", coords, &coord) !=
	        BNF_OK ||
	    pick_string(ctx, "nearest_mode", "round_prefer_floor", rounds, &round) != BNF_OK ||
	    bnf_attr_float(ctx->node, "extrapolation_value", 0.0f, &extrapolation, ctx->err) !=
	        BNF_OK ||
	    bnf_attr_int(ctx->node, "antialias", 0, &antialias, ctx->err) != BNF_OK ||
	    pick_string(ctx, "keep_aspect_ratio_policy", "stretch", policies, &policy) != BNF_OK ||
	    bnf_attr_float(ctx->node, "cubic_coeff_a", -0.75f, &cubic_a, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "exclude_outside", 0, &exclude, ctx->err) != BNF_OK)
		return ctx->err->status;
	p->cubic_a = cubic_a;
	p->exclude_outside = exclude != 0;
	if (antialias != 0 && p->mode != RESIZE_MODE_NEAREST)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "antialias is not implemented");
	/* tf_half_pixel_for_nn left the spec in opset 13 and half_pixel_symmetric
	 * joined it in 19. */
	if ((coord == RESIZE_COORD_TF_HALF_PIXEL_FOR_NN && ctx->opset >= 13) ||
	    (coord == RESIZE_COORD_HALF_PIXEL_SYMMETRIC && ctx->opset < 19))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "coordinate_transformation_mode '%s' is not in opset %d",
		                    coords[coord], ctx->opset);
	p->coord = (enum resize_coord)coord;
	p->round = (enum resize_round)round;
	p->extrapolation = extrapolation;
	return BNF_OK;
}

/* The scales, or the sizes, for the axes they name (all axes, or the 'axes'
 * attribute from opset 18); axes left out keep scale 1. *by_size says
 * which was given. roi is filled for tf_crop_and_resize. */
static int resize_targets(const struct bnf_op_ctx *ctx, struct resize_plan *p, double *scales,
                          int64_t *sizes, int *by_size)
{
	const struct bnf_tensor *x = ctx->in[0], *t;
	int upsample = strcmp(ctx->node->op_type, "Upsample") == 0;
	int64_t axes[BNF_MAX_RANK], given[BNF_MAX_RANK];
	double vals[2 * BNF_MAX_RANK];
	float fvals[BNF_MAX_RANK];
	size_t n_axes = 0, n = 0, i;
	size_t at = upsample || ctx->opset < 11 ? 1 : 2; /* the scales input */
	unsigned mask;

	if (ctx->opset >= 18 && !upsample &&
	    (bnf_attr_ints(ctx->node, "axes", axes, BNF_MAX_RANK, &n_axes, ctx->err) != BNF_OK ||
	     bnf_shp_axes(ctx, axes, n_axes, x->rank, "axes", &mask) != BNF_OK))
		return ctx->err->status;
	if (n_axes == 0) {
		n_axes = (size_t)x->rank;
		for (i = 0; i < n_axes; i++)
			axes[i] = (int64_t)i;
	}
	for (i = 0; i < (size_t)x->rank; i++) {
		scales[i] = 1;
		sizes[i] = x->dims[i];
		p->roi[i] = 0;
		p->roi[x->rank + i] = 1;
	}
	*by_size = 0;
	if (upsample && ctx->opset < 9) {
		/* Upsample-7 took the scales as an attribute. */
		if (bnf_attr_floats(ctx->node, "scales", fvals, BNF_MAX_RANK, &n, ctx->err) !=
		    BNF_OK)
			return ctx->err->status;
		for (i = 0; i < n; i++)
			vals[i] = fvals[i];
	} else {
		/* An empty tensor stands for an absent input (Resize-11 had
		 * to pass one for the scales when it gave sizes). */
		t = bnf_shp_in(ctx, at);
		if (t && t->count &&
		    bnf_shp_read_doubles(ctx, t, "scales", vals, BNF_MAX_RANK, &n) != BNF_OK)
			return ctx->err->status;
		t = at == 2 ? bnf_shp_in(ctx, 3) : NULL;
		if (t && t->count) {
			if (n)
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "both scales and sizes are given");
			if (bnf_shp_read_ints(ctx, t, "sizes", given, BNF_MAX_RANK, &n) != BNF_OK)
				return ctx->err->status;
			*by_size = 1;
		}
	}
	if (n != n_axes)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s has %zu values for %zu axes",
		                    *by_size ? "sizes" : "scales", n, n_axes);
	for (i = 0; i < n_axes; i++) {
		if (*by_size)
			sizes[axes[i]] = given[i];
		else
			scales[axes[i]] = vals[i];
	}
	/* Input 1 is the roi from Resize-11; only tf_crop_and_resize reads it. */
	t = at == 2 ? bnf_shp_in(ctx, 1) : NULL;
	if (p->coord == RESIZE_COORD_TF_CROP_AND_RESIZE && t && t->count) {
		if (bnf_shp_read_doubles(ctx, t, "roi", vals, 2 * BNF_MAX_RANK, &n) != BNF_OK)
			return ctx->err->status;
		if (n != 2 * n_axes)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "roi has %zu values for %zu axes",
			                    n, n_axes);
		for (i = 0; i < n_axes; i++) {
			p->roi[axes[i]] = vals[i];
			p->roi[x->rank + axes[i]] = vals[n_axes + i];
		}
	}
	return BNF_OK;
}

static int resize_plan(const struct bnf_op_ctx *ctx, struct resize_plan *p)
{
	const struct bnf_tensor *x;
	double scales[BNF_MAX_RANK];
	int64_t sizes[BNF_MAX_RANK];
	int by_size = 0, a;

	if (bnf_shp_check_io(ctx, 1, 4) != BNF_OK || resize_attrs(ctx, p) != BNF_OK ||
	    resize_targets(ctx, p, scales, sizes, &by_size) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (p->mode != RESIZE_MODE_NEAREST && !bnf_shp_is_float(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "%s mode on %s is not implemented",
		                    p->mode == RESIZE_MODE_LINEAR ? "linear" : "cubic",
		                    bnf_dtype_name(x->dtype));
	for (a = 0; a < x->rank; a++) {
		double in = (double)x->dims[a], out;
		if (by_size) {
			if (sizes[a] < 0 || (x->dims[a] == 0 && sizes[a] != 0))
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "cannot resize axis %d of size %lld to %lld", a,
				                    (long long)x->dims[a], (long long)sizes[a]);
			p->dims[a] = sizes[a];
			p->scale[a] = x->dims[a] ? (double)sizes[a] / in : 1;
			p->length[a] = (double)sizes[a];
			continue;
		}
		if (!(scales[a] > 0) || isinf(scales[a]))
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "scale %g of axis %d is invalid",
			                    scales[a], a);
		/* The output length before flooring is also what the
		 * align_corners and crop formulas divide by (as in ONNX's
		 * reference; onnxruntime divides by the floored length). The
		 * spec's text scales it by the roi's extent for
		 * tf_crop_and_resize, but neither the reference nor
		 * onnxruntime does. */
		out = in * scales[a];
		if (!(out >= 0 && out < (double)BNF_MAX_ELEMENTS + 1))
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "axis %d would have %g elements", a,
			                    out);
		p->dims[a] = (int64_t)floor(out);
		p->scale[a] = scales[a];
		p->length[a] = out;
	}
	return BNF_OK;
}

int bnf_shp_resize_shape(struct bnf_op_ctx *ctx)
{
	struct resize_plan p;

	if (resize_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, ctx->in[0]->rank, p.dims);
}

/* Input coordinate of output index o on axis a (the spec's formulas). It
 * is worked out in single precision, as onnxruntime does, so that nearest
 * picks the same pixels where a coordinate falls on a rounding boundary,
 * and the float and the float64 runs always agree on them. */
static float resize_coord(const struct resize_plan *p, int rank, int a, int64_t o, int64_t in_len)
{
	float x = (float)o, s = (float)p->scale[a], len = (float)p->length[a];
	float in = (float)in_len, start = (float)p->roi[a], end = (float)p->roi[rank + a];

	switch (p->coord) {
	case RESIZE_COORD_HALF_PIXEL:
		return (x + 0.5f) / s - 0.5f;
	case RESIZE_COORD_HALF_PIXEL_SYMMETRIC:
		/* Centre the floored output on the input. */
		return in / 2 * (1 - (float)p->dims[a] / len) + (x + 0.5f) / s - 0.5f;
	case RESIZE_COORD_PYTORCH_HALF_PIXEL:
		return len > 1 ? (x + 0.5f) / s - 0.5f : 0;
	case RESIZE_COORD_ALIGN_CORNERS:
		return len == 1 ? 0 : x * (in - 1) / (len - 1);
	case RESIZE_COORD_TF_HALF_PIXEL_FOR_NN:
		return (x + 0.5f) / s;
	case RESIZE_COORD_TF_CROP_AND_RESIZE:
		return len > 1 ? start * (in - 1) + x * (end - start) * (in - 1) / (len - 1)
		               : 0.5f * (start + end) * (in - 1);
	default:
		return x / s;
	}
}

/* v rounded down into [0, n - 1]; the bound is checked again after the
 * conversion because (float)n may round. NaN gives 0. */
static int64_t clamp_index(float v, int64_t n)
{
	int64_t i;

	if (!(v > 0))
		return 0;
	if (v >= (float)n)
		return n - 1;
	i = (int64_t)v;
	return i > n - 1 ? n - 1 : i;
}

/* Keys' cubic convolution weights of the neighbours at offsets -1, 0, 1
 * and 2 from floor(x), t = x - floor(x), coefficient a. */
static void cubic_weights(double t, double a, double *w)
{
	double s = t + 1, u = 1 - t, v = 2 - t;

	w[0] = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a;
	w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
	w[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
	w[3] = ((a * v - 5 * a) * v + 8 * a) * v - 4 * a;
}

/* The four cubic taps around x: indices clamped to the edge, or with
 * exclude_outside those outside weighing 0 and the rest renormalised. */
static void cubic_tap(const struct resize_plan *p, float x, int64_t in_len, struct resize_tap *t)
{
	double f = floor((double)x), sum = 0;
	int k;

	cubic_weights((double)x - f, p->cubic_a, t->w);
	t->n = 4;
	for (k = 0; k < 4; k++) {
		double at = f - 1 + k;
		if (p->exclude_outside && (at < 0 || at >= (double)in_len))
			t->w[k] = 0;
		sum += t->w[k];
		t->at[k] = at < 0 ? 0 : at >= (double)in_len ? in_len - 1 : (int64_t)at;
	}
	if (p->exclude_outside && sum != 0)
		for (k = 0; k < 4; k++)
			t->w[k] /= sum;
}

/* The nearest neighbour of x under the plan's rounding. */
static int64_t nearest_index(const struct resize_plan *p, int a, float x, int64_t in_len)
{
	float f = floorf(x), r = x - f;

	switch (p->round) {
	case RESIZE_ROUND_PREFER_FLOOR:
		f += r > 0.5;
		break;
	case RESIZE_ROUND_PREFER_CEIL:
		f += r >= 0.5;
		break;
	case RESIZE_ROUND_FLOOR:
		break;
	case RESIZE_ROUND_CEIL:
		f = ceilf(x);
		break;
	case RESIZE_ROUND_LEGACY:
		f = p->scale[a] < 1 ? ceilf(x) : f;
		break;
	}
	return clamp_index(f, in_len);
}

/* The taps of every output index of axis a. A linear tap with no weight
 * on its upper neighbour keeps only the lower one. */
static void resize_axis(const struct resize_plan *p, int rank, int a, int64_t in_len,
                        struct resize_tap *taps)
{
	int64_t o;

	for (o = 0; o < p->dims[a]; o++) {
		float x = resize_coord(p, rank, a, o, in_len), f = floorf(x);
		struct resize_tap *t = &taps[o];
		if (p->coord == RESIZE_COORD_TF_CROP_AND_RESIZE &&
		    (x < 0 || x > (float)(in_len - 1) || isnan(x))) {
			t->n = 0;
			continue;
		}
		if (p->mode == RESIZE_MODE_CUBIC) {
			cubic_tap(p, x, in_len, t);
			continue;
		}
		t->at[0] = p->mode == RESIZE_MODE_LINEAR ? clamp_index(f, in_len)
		                                         : nearest_index(p, a, x, in_len);
		t->w[0] = 1;
		t->n = 1;
		if (p->mode == RESIZE_MODE_LINEAR && x - f != 0) {
			t->at[1] = clamp_index(f + 1, in_len);
			t->w[1] = x - f;
			t->w[0] = 1 - t->w[1];
			t->n = 2;
		}
	}
}

/* One output element: the weighted sum over every combination of the
 * taps of the axes that have more than one (the first such axis varying
 * fastest), or a copy for nearest. */
static void resize_element(const struct bnf_tensor *x, struct bnf_tensor *y, size_t i,
                           struct resize_tap *const *cur, const int64_t *xs, int nearest,
                           const unsigned char *extra)
{
	const struct resize_tap *multi[BNF_MAX_RANK];
	int64_t base = 0, mstride[BNF_MAX_RANK];
	int idx[BNF_MAX_RANK] = {0};
	double sum = 0;
	size_t esize = bnf_tensor_elem_size(x->dtype);
	int a, k = 0, b;

	for (a = 0; a < x->rank; a++) {
		if (cur[a]->n == 0) {
			memcpy((char *)y->data + i * esize, extra, esize);
			return;
		}
		if (cur[a]->n == 1) {
			base += cur[a]->at[0] * xs[a];
		} else {
			multi[k] = cur[a];
			mstride[k++] = xs[a];
		}
	}
	if (nearest) {
		memcpy((char *)y->data + i * esize, (const char *)x->data + base * (int64_t)esize,
		       esize);
		return;
	}
	for (;;) {
		double weight = 1;
		int64_t off = base;
		for (b = 0; b < k; b++) {
			weight *= multi[b]->w[idx[b]];
			off += multi[b]->at[idx[b]] * mstride[b];
		}
		sum += weight * bnf_shp_get(x, (size_t)off);
		for (b = 0; b < k && ++idx[b] == multi[b]->n; b++)
			idx[b] = 0;
		if (b == k)
			break;
	}
	bnf_shp_set(y, i, sum);
}

/* What every row of the output shares: the tensors, the taps of each
 * axis, the input strides, the extrapolation value's bytes. */
struct resize_rows {
	const struct bnf_tensor *x;
	struct bnf_tensor *y;
	struct resize_tap *first[BNF_MAX_RANK];
	int64_t xs[BNF_MAX_RANK];
	int nearest;
	_Alignas(8) unsigned char extra[8];
};

/* Nearest along one output row whose other axes each have one tap at
 * input offset `base`: copies of whole elements. */
static void resize_row_nearest(const struct resize_rows *rr, size_t i0, int64_t base)
{
	const struct resize_tap *t = rr->first[rr->x->rank - 1];
	int64_t len = rr->y->dims[rr->x->rank - 1], step = rr->xs[rr->x->rank - 1], j;
	size_t es = bnf_tensor_elem_size(rr->x->dtype);
	const char *x = rr->x->data;
	char *y = (char *)rr->y->data + i0 * es;

	for (j = 0; j < len; j++) {
		const char *src =
		    t[j].n ? x + (base + t[j].at[0] * step) * (int64_t)es : (const char *)rr->extra;
		if (es == sizeof(float))
			memcpy(y + (size_t)j * sizeof(float), src, sizeof(float));
		else
			memcpy(y + (size_t)j * es, src, es);
	}
}

/* Output rows lo .. hi - 1 (a row: every index but the last fixed). */
static void resize_rows_run(void *arg, size_t lo, size_t hi)
{
	const struct resize_rows *rr = arg;
	int rank = rr->x->rank, last = rank - 1, a;
	size_t len = (size_t)rr->y->dims[last], r, j;
	struct resize_tap *cur[BNF_MAX_RANK];

	for (r = lo; r < hi; r++) {
		size_t rest = r;
		int64_t base = 0;
		int single = 1;
		for (a = last - 1; a >= 0; a--) {
			cur[a] = rr->first[a] + rest % (size_t)rr->y->dims[a];
			rest /= (size_t)rr->y->dims[a];
			single = single && cur[a]->n == 1;
			if (cur[a]->n) /* none: the extrapolation value, no input */
				base += cur[a]->at[0] * rr->xs[a];
		}
		if (rr->nearest && single) {
			resize_row_nearest(rr, r * len, base);
			continue;
		}
		for (j = 0; j < len; j++) {
			cur[last] = rr->first[last] + j;
			resize_element(rr->x, rr->y, r * len + j, cur, rr->xs, rr->nearest,
			               rr->extra);
		}
	}
}

int bnf_shp_resize_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct resize_plan p;
	struct resize_tap *taps = NULL;
	struct resize_rows rr;
	struct bnf_tensor extra_t = {x->dtype, 0, {0}, 1, rr.extra};
	size_t total = 0, len;
	int a;

	if (!y)
		return BNF_OK;
	if (resize_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (y->count == 0)
		return BNF_OK;
	if (x->rank == 0) {
		/* No axis to resize: the one element is the input's. */
		memcpy(y->data, x->data, bnf_tensor_elem_size(x->dtype));
		return BNF_OK;
	}
	/* Every output dim is at most y->count here, so the tables are small
	 * next to the output. */
	for (a = 0; a < x->rank; a++)
		total += (size_t)p.dims[a];
	taps = malloc((total ? total : 1) * sizeof(*taps));
	if (!taps)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	memset(&rr, 0, sizeof(rr));
	rr.x = x;
	rr.y = y;
	rr.nearest = p.mode == RESIZE_MODE_NEAREST;
	for (total = 0, a = 0; a < x->rank; a++) {
		rr.first[a] = taps + total;
		resize_axis(&p, x->rank, a, x->dims[a], rr.first[a]);
		total += (size_t)p.dims[a];
	}
	bnf_shp_set(&extra_t, 0, p.extrapolation);
	bnf_shp_strides(x->rank, x->dims, rr.xs);
	/* Each output element is its own sum: rows may run on any thread. */
	len = (size_t)y->dims[x->rank - 1];
	bnf_parallel_for(ctx->threads, y->count / len, bnf_parallel_grain(len), resize_rows_run,
	                 &rr);
	free(taps);
	return BNF_OK;
}
