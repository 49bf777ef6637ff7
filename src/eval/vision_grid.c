/*
 * GridSample (opset 16): each output pixel samples the input at the
 * position its grid entry gives (x, y in [-1, 1], the corners' centres
 * with align_corners, the image's edges without). Bilinear, nearest
 * (halves to even) and bicubic (coefficient -0.75); padding zeros, border
 * or reflection. The rules are PyTorch's grid_sample, which the spec
 * follows: border and reflection move the coordinate into the image
 * before bilinear and nearest sampling, and move each bicubic tap.
 */
#include "eval/vision_ops.h"

#include <math.h>
#include <string.h>

enum grid_mode { GRID_MODE_BILINEAR, GRID_MODE_NEAREST, GRID_MODE_BICUBIC };
enum grid_pad { GRID_PAD_ZEROS, GRID_PAD_BORDER, GRID_PAD_REFLECTION };

struct grid_plan {
	enum grid_mode mode;
	enum grid_pad pad;
	int align;
};

static int grid_pick(const struct bnf_op_ctx *ctx, const char *attr, const char *def,
                     const char *const *names, int *out)
{
	char s[16];
	int i;

	if (bnf_attr_string(ctx->node, attr, def, s, sizeof(s), ctx->err) != BNF_OK)
		return ctx->err->status;
	for (i = 0; names[i]; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return BNF_OK;
		}
	return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown %s '%s'", attr, s);
}

/* Grid coordinate g in [-1, 1] to pixel units of an axis of n pixels. */
static double unnormalize(const struct grid_plan *p, double g, int64_t n)
{
	return p->align ? (g + 1) / 2 * (double)(n - 1) : ((g + 1) * (double)n - 1) / 2;
}

/* Reflect v into [lo2 / 2, hi2 / 2] (PyTorch passes doubled bounds). */
static double reflect(double v, double lo2, double hi2)
{
	double lo = lo2 / 2, span = (hi2 - lo2) / 2, extra, flips;

	if (lo2 == hi2)
		return 0;
	v = fabs(v - lo);
	extra = fmod(v, span);
	flips = floor(v / span);
	return fmod(flips, 2) == 0 ? extra + lo : span - extra + lo;
}

/* The padding's move of coordinate v on an axis of n pixels. */
static double pad_coord(const struct grid_plan *p, double v, int64_t n)
{
	double hi = (double)(n - 1);

	if (p->pad == GRID_PAD_ZEROS)
		return v;
	if (p->pad == GRID_PAD_REFLECTION)
		v = p->align ? reflect(v, 0, 2 * hi) : reflect(v, -1, 2 * (double)n - 1);
	return v < 0 ? 0 : v > hi ? hi : v;
}

/* Pixel (y, x) of a plane, 0 outside. */
static double pixel(const struct bnf_tensor *t, size_t base, int64_t h, int64_t w, int64_t y,
                    int64_t x)
{
	if (y < 0 || y >= h || x < 0 || x >= w)
		return 0;
	return bnf_shp_get(t, base + (size_t)(y * w + x));
}

static void cubic_coeffs(double t, double *c)
{
	const double a = -0.75;
	double s = t + 1, u = 1 - t, v = 2 - t;

	c[0] = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a;
	c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
	c[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
	c[3] = ((a * v - 5 * a) * v + 8 * a) * v - 4 * a;
}

static double sample(const struct grid_plan *p, const struct bnf_tensor *t, size_t base, int64_t h,
                     int64_t w, double gx, double gy)
{
	double x = unnormalize(p, gx, w), y = unnormalize(p, gy, h), x0, y0, cx[4], cy[4], sum = 0;
	int i, j;

	if (p->mode == GRID_MODE_BICUBIC) {
		x0 = floor(x);
		y0 = floor(y);
		cubic_coeffs(x - x0, cx);
		cubic_coeffs(y - y0, cy);
		for (i = 0; i < 4; i++)
			for (j = 0; j < 4; j++) {
				double ty = pad_coord(p, y0 - 1 + i, h),
				       tx = pad_coord(p, x0 - 1 + j, w);
				sum +=
				    cy[i] * cx[j] * pixel(t, base, h, w, (int64_t)ty, (int64_t)tx);
			}
		return sum;
	}
	x = pad_coord(p, x, w);
	y = pad_coord(p, y, h);
	if (p->mode == GRID_MODE_NEAREST)
		return pixel(t, base, h, w, (int64_t)nearbyint(y), (int64_t)nearbyint(x));
	x0 = floor(x);
	y0 = floor(y);
	return (1 - (y - y0)) * (1 - (x - x0)) * pixel(t, base, h, w, (int64_t)y0, (int64_t)x0) +
	       (1 - (y - y0)) * (x - x0) * pixel(t, base, h, w, (int64_t)y0, (int64_t)x0 + 1) +
	       (y - y0) * (1 - (x - x0)) * pixel(t, base, h, w, (int64_t)y0 + 1, (int64_t)x0) +
	       (y - y0) * (x - x0) * pixel(t, base, h, w, (int64_t)y0 + 1, (int64_t)x0 + 1);
}

int bnf_vis_grid_sample_shape(struct bnf_op_ctx *ctx)
{
	static const char *const modes[] = {"bilinear", "nearest", "bicubic", NULL};
	static const char *const pads[] = {"zeros", "border", "reflection", NULL};
	const struct bnf_tensor *x, *grid;
	struct grid_plan p;
	int64_t align, dims[4], n, c, i, h, w, ho, wo;
	int mode, pad;

	if (bnf_shp_check_io(ctx, 2, 2) != BNF_OK ||
	    grid_pick(ctx, "mode", "bilinear", modes, &mode) != BNF_OK ||
	    grid_pick(ctx, "padding_mode", "zeros", pads, &pad) != BNF_OK ||
	    bnf_attr_int(ctx->node, "align_corners", 0, &align, ctx->err) != BNF_OK)
		return ctx->err->status;
	p.mode = (enum grid_mode)mode;
	p.pad = (enum grid_pad)pad;
	p.align = align != 0;
	x = ctx->in[0];
	grid = ctx->in[1];
	if (x->rank != 4 || grid->rank != 4 || grid->dims[0] != x->dims[0] || grid->dims[3] != 2 ||
	    !bnf_shp_is_float(x->dtype) || !bnf_shp_is_float(grid->dtype))
		return bnf_shp_fail(
		    ctx, BNF_ERR_INPUT,
		    "X must be [N, C, H, W] and grid [N, H_out, W_out, 2], floating");
	h = x->dims[2];
	w = x->dims[3];
	ho = grid->dims[1];
	wo = grid->dims[2];
	memcpy(dims, (int64_t[4]){x->dims[0], x->dims[1], ho, wo}, sizeof(dims));
	if (bnf_shp_new_out(ctx, 0, x->dtype, 4, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (n = 0; n < x->dims[0]; n++)
		for (c = 0; c < x->dims[1]; c++)
			for (i = 0; i < ho * wo; i++) {
				size_t g = (size_t)((n * ho * wo + i) * 2);
				bnf_shp_set(
				    ctx->out[0], (size_t)((n * x->dims[1] + c) * ho * wo + i),
				    sample(&p, x, (size_t)((n * x->dims[1] + c) * h * w), h, w,
				           bnf_shp_get(grid, g), bnf_shp_get(grid, g + 1)));
			}
	return BNF_OK;
}
