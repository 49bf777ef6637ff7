/*
 * MaxPool (with its optional Indices output), AveragePool, and the global
 * variants, over any number of spatial dims. Windows follow the same
 * kernel / strides / pads / dilations / auto_pad rules as Conv, plus
 * ceil_mode; sums are taken in double.
 */
#include <math.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/parallel.h"

enum pool_kind {
	POOL_KIND_MAX,
	POOL_KIND_AVERAGE,
};

struct pool_plan {
	struct bnf_nn_window w;
	enum pool_kind kind;
	int64_t count_include_pad;
	int64_t storage_order; /* Indices: 0 row-major, 1 column-major */
	size_t planes;         /* N * C */
	int64_t y_dims[BNF_MAX_RANK];
};

static int pool_plan(const struct bnf_op_ctx *ctx, enum pool_kind kind, struct pool_plan *p)
{
	const struct bnf_tensor *x;
	int64_t ceil_mode = 0;
	int small_ints, rc;

	memset(p, 0, sizeof(*p));
	p->kind = kind;
	rc = bnf_nn_check_inputs(ctx, 1, 1, 0);
	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	/* int8 and uint8 MaxPool arrived in opset 12. */
	small_ints = kind == POOL_KIND_MAX && ctx->opset >= 12 &&
	             (x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
	              x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8);
	if (!bnf_nn_is_real(x->dtype) && !small_ints)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                bnf_dtype_name(x->dtype));
	if (x->rank < 3)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X needs rank 3 or more, not %d", x->rank);
	rc = bnf_nn_read_window(ctx, x->rank - 2, NULL, &p->w);
	if (rc == BNF_OK && bnf_attr_find(ctx->node, "kernel_shape") == NULL)
		rc = bnf_fail(ctx->err, BNF_ERR_INPUT, "kernel_shape is required");
	/* ceil_mode came in opset 10 (both pools); count_include_pad in
	 * AveragePool 7; storage_order in MaxPool 8. Older models cannot
	 * carry them, so reading them always is safe. */
	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "ceil_mode", 0, &ceil_mode, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "count_include_pad", 0, &p->count_include_pad,
		                  ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "storage_order", 0, &p->storage_order, ctx->err);
	if (rc != BNF_OK)
		return rc;
	memcpy(p->w.image, x->dims + 2, (size_t)p->w.n * sizeof(x->dims[0]));
	rc = bnf_nn_window_output(ctx, &p->w, ceil_mode != 0);
	if (rc != BNF_OK)
		return rc;
	p->y_dims[0] = x->dims[0];
	p->y_dims[1] = x->dims[1];
	memcpy(p->y_dims + 2, p->w.grid, (size_t)p->w.n * sizeof(p->w.grid[0]));
	p->planes = (size_t)x->dims[0] * (size_t)x->dims[1];
	return BNF_OK;
}

static int pool_shape(struct bnf_op_ctx *ctx, enum pool_kind kind)
{
	struct pool_plan p;
	int rank = ctx->in[0] ? ctx->in[0]->rank : 0;
	int rc = pool_plan(ctx, kind, &p);

	if (rc == BNF_OK)
		rc = bnf_nn_new_output_uninit(ctx, 0, 0, rank, p.y_dims);
	if (rc == BNF_OK && kind == POOL_KIND_MAX && bnf_op_wants_output(ctx, 1))
		rc =
		    bnf_nn_new_output(ctx, 1, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, rank, p.y_dims);
	return rc;
}

int bnf_nn_max_pool_shape(struct bnf_op_ctx *ctx)
{
	return pool_shape(ctx, POOL_KIND_MAX);
}

int bnf_nn_average_pool_shape(struct bnf_op_ctx *ctx)
{
	return pool_shape(ctx, POOL_KIND_AVERAGE);
}

/* Pool one output position g of one plane (offset `plane` in X). */
static void pool_window(const struct pool_plan *p, const struct bnf_tensor *x, size_t plane,
                        const int64_t *g, double *value, int64_t *index)
{
	const struct bnf_nn_window *w = &p->w;
	int64_t k[BNF_MAX_RANK] = {0};
	size_t kernel_size = bnf_nn_prod(w->kernel, w->n), r, counted = 0;
	double best = -INFINITY, sum = 0;
	int64_t best_at = -1;
	int i;

	for (r = 0; r < kernel_size; r++) {
		size_t off = 0, col_off = 0, col_step = 1;
		int inside = 1, in_padded = 1;
		for (i = 0; i < w->n; i++) {
			int64_t c = g[i] * w->stride[i] - w->pad_begin[i] + k[i] * w->dilation[i];
			inside = inside && c >= 0 && c < w->image[i];
			in_padded =
			    in_padded && c >= -w->pad_begin[i] && c < w->image[i] + w->pad_end[i];
			off = off * (size_t)w->image[i] + (size_t)(inside ? c : 0);
			col_off += (size_t)(inside ? c : 0) * col_step;
			col_step *= (size_t)w->image[i];
		}
		if (inside) {
			double v = bnf_nn_get(x, plane + off);
			sum += v;
			if (v > best || best_at < 0) {
				best = v;
				best_at = (int64_t)(p->storage_order ? col_off : off);
			}
		}
		/* count_include_pad counts pad positions, but not the part of
		 * a ceil_mode window hanging past the pads. */
		counted += inside || (p->count_include_pad && in_padded);
		for (i = w->n - 1; i >= 0 && ++k[i] == w->kernel[i]; i--)
			k[i] = 0;
	}
	if (p->kind == POOL_KIND_MAX) {
		*value = best;
		*index = best_at;
	} else {
		*value = counted ? sum / (double)counted : 0.0;
	}
}

/* pool_window for one plane of a 2-D float32 image, all positions at once:
 * the same windows, order of summation and NaN rule (the first value inside
 * a window is taken, later ones only when greater), without the odometer
 * and dtype switch per element. */
static void pool_plane_2d(const struct pool_plan *p, const float *x, float *y)
{
	const struct bnf_nn_window *w = &p->w;
	int64_t oy, ox, ky, kx;

	for (oy = 0; oy < w->grid[0]; oy++) {
		int64_t y0 = oy * w->stride[0] - w->pad_begin[0];
		for (ox = 0; ox < w->grid[1]; ox++) {
			int64_t x0 = ox * w->stride[1] - w->pad_begin[1];
			double best = -INFINITY, sum = 0;
			size_t counted = 0;
			int have = 0;
			for (ky = 0; ky < w->kernel[0]; ky++) {
				int64_t iy = y0 + ky * w->dilation[0];
				int in_y = iy >= 0 && iy < w->image[0];
				int pad_y =
				    iy >= -w->pad_begin[0] && iy < w->image[0] + w->pad_end[0];
				const float *row = x + (in_y ? iy : 0) * w->image[1];
				for (kx = 0; kx < w->kernel[1]; kx++) {
					int64_t ix = x0 + kx * w->dilation[1];
					int inside = in_y && ix >= 0 && ix < w->image[1];
					if (inside) {
						double v = row[ix];
						sum += v;
						if (v > best || !have) {
							best = v;
							have = 1;
						}
						counted++;
					} else if (p->count_include_pad && pad_y &&
					           ix >= -w->pad_begin[1] &&
					           ix < w->image[1] + w->pad_end[1]) {
						counted++;
					}
				}
			}
			if (p->kind == POOL_KIND_MAX)
				*y++ = (float)best;
			else
				*y++ = (float)(counted ? sum / (double)counted : 0.0);
		}
	}
}

/* pool_plane_2d for MaxPool: the same first-value-then-greater rule, in
 * float32 (every value compares the same as it did widened), with a
 * select instead of a branch that mispredicted on every other value. */
static void max_plane_2d(const struct pool_plan *p, const float *x, float *y)
{
	const struct bnf_nn_window *w = &p->w;
	int64_t oy, ox, ky, kx;

	for (oy = 0; oy < w->grid[0]; oy++) {
		int64_t y0 = oy * w->stride[0] - w->pad_begin[0];
		for (ox = 0; ox < w->grid[1]; ox++) {
			int64_t x0 = ox * w->stride[1] - w->pad_begin[1];
			float best = -INFINITY;
			int have = 0;
			for (ky = 0; ky < w->kernel[0]; ky++) {
				int64_t iy = y0 + ky * w->dilation[0];
				const float *row;
				if (iy < 0 || iy >= w->image[0])
					continue;
				row = x + iy * w->image[1];
				for (kx = 0; kx < w->kernel[1]; kx++) {
					int64_t ix = x0 + kx * w->dilation[1];
					float v;
					if (ix < 0 || ix >= w->image[1])
						continue;
					v = row[ix];
					best = !have || v > best ? v : best;
					have = 1;
				}
			}
			*y++ = best;
		}
	}
}

/* What the float32 2-D planes of one pooling share. */
struct pool_planes {
	const struct pool_plan *p;
	void (*plane_fn)(const struct pool_plan *p, const float *x, float *y);
	const float *x;
	float *y;
	size_t image_size, grid_size;
};

/* Planes lo .. hi - 1: each its own, so they may run on any thread. */
static void pool_planes_run(void *arg, size_t lo, size_t hi)
{
	const struct pool_planes *pp = arg;
	size_t plane;

	for (plane = lo; plane < hi; plane++)
		pp->plane_fn(pp->p, pp->x + plane * pp->image_size, pp->y + plane * pp->grid_size);
}

static int pool_compute(struct bnf_op_ctx *ctx, enum pool_kind kind)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct bnf_tensor *indices = ctx->n_out > 1 ? ctx->out[1] : NULL;
	struct pool_plan p;
	size_t image_size, grid_size, plane, o, at = 0;
	int rc = pool_plan(ctx, kind, &p);
	int i;

	if (rc != BNF_OK)
		return rc;
	image_size = bnf_nn_prod(p.w.image, p.w.n);
	grid_size = bnf_nn_prod(p.w.grid, p.w.n);
	if (p.w.n == 2 && !indices && bnf_nn_is_f32(x) && bnf_nn_is_f32(y)) {
		struct pool_planes pp = {
		    &p,         kind == POOL_KIND_MAX ? max_plane_2d : pool_plane_2d,
		    x->data,    y->data,
		    image_size, grid_size};
		bnf_parallel_for(ctx->threads, p.planes, bnf_parallel_grain(image_size),
		                 pool_planes_run, &pp);
		return BNF_OK;
	}
	for (plane = 0; plane < p.planes; plane++) {
		int64_t g[BNF_MAX_RANK] = {0};
		for (o = 0; o < grid_size; o++, at++) {
			double v;
			int64_t index = 0;
			pool_window(&p, x, plane * image_size, g, &v, &index);
			bnf_nn_set(y, at, v);
			/* Indices count over the whole flattened X. */
			if (indices)
				((int64_t *)indices->data)[at] =
				    index < 0 ? -1 : (int64_t)(plane * image_size) + index;
			for (i = p.w.n - 1; i >= 0 && ++g[i] == p.w.grid[i]; i--)
				g[i] = 0;
		}
	}
	return BNF_OK;
}

int bnf_nn_max_pool_compute(struct bnf_op_ctx *ctx)
{
	return pool_compute(ctx, POOL_KIND_MAX);
}

int bnf_nn_average_pool_compute(struct bnf_op_ctx *ctx)
{
	return pool_compute(ctx, POOL_KIND_AVERAGE);
}

int bnf_nn_global_pool_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t dims[BNF_MAX_RANK];
	int rc = bnf_nn_check_inputs(ctx, 1, 1, 0x1), i;

	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	if (x->rank < 3)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X needs rank 3 or more, not %d", x->rank);
	for (i = 0; i < x->rank; i++)
		dims[i] = i < 2 ? x->dims[i] : 1;
	return bnf_nn_new_output(ctx, 0, 0, x->rank, dims);
}

static int global_pool(struct bnf_op_ctx *ctx, enum pool_kind kind)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	size_t planes = y->count, size = planes ? x->count / planes : 0, c, i;

	for (c = 0; c < planes; c++) {
		double acc = kind == POOL_KIND_MAX ? -INFINITY : 0.0;
		if (kind == POOL_KIND_AVERAGE && bnf_nn_is_f32(x) && bnf_nn_is_f32(y)) {
			const float *xf = (const float *)x->data + c * size;
			for (i = 0; i < size; i++)
				acc += xf[i];
			((float *)y->data)[c] = (float)(size ? acc / (double)size : 0.0);
			continue;
		}
		for (i = 0; i < size; i++) {
			double v = bnf_nn_get(x, c * size + i);
			if (kind == POOL_KIND_MAX)
				acc = v > acc ? v : acc;
			else
				acc += v;
		}
		bnf_nn_set(y, c, kind == POOL_KIND_MAX ? acc : size ? acc / (double)size : 0.0);
	}
	return BNF_OK;
}

int bnf_nn_global_average_pool_compute(struct bnf_op_ctx *ctx)
{
	return global_pool(ctx, POOL_KIND_AVERAGE);
}

int bnf_nn_global_max_pool_compute(struct bnf_op_ctx *ctx)
{
	return global_pool(ctx, POOL_KIND_MAX);
}
