/*
 * RoiAlign: each region of interest (x1, y1, x2, y2 in input coordinates,
 * times spatial_scale) cut into output_height x output_width bins, each
 * bin the average (or maximum) of bilinear samples on a regular grid
 * (sampling_ratio per side, or as many as the bin is pixels high and
 * wide). half_pixel (the opset-16 default) shifts the region by half a
 * pixel; output_half_pixel (opset 10's only behaviour) does not, and makes
 * the region at least one pixel. The max mode takes the largest weighted
 * corner of each sample, as onnxruntime does.
 */
#include "eval/vision_ops.h"

#include <math.h>
#include <string.h>

void bnf_vis_bilinear_at(int64_t h, int64_t w, double y, double x, struct bnf_vis_bilinear *b)
{
	int64_t y_lo, x_lo, y_hi, x_hi;
	double ly, lx;

	memset(b, 0, sizeof(*b));
	if (y < -1.0 || y > (double)h || x < -1.0 || x > (double)w)
		return;
	b->inside = 1;
	y = y <= 0 ? 0 : y;
	x = x <= 0 ? 0 : x;
	y_lo = (int64_t)y;
	x_lo = (int64_t)x;
	if (y_lo >= h - 1) {
		y_lo = y_hi = h - 1;
		y = (double)y_lo;
	} else {
		y_hi = y_lo + 1;
	}
	if (x_lo >= w - 1) {
		x_lo = x_hi = w - 1;
		x = (double)x_lo;
	} else {
		x_hi = x_lo + 1;
	}
	ly = y - (double)y_lo;
	lx = x - (double)x_lo;
	b->w[0] = (1 - ly) * (1 - lx);
	b->w[1] = (1 - ly) * lx;
	b->w[2] = ly * (1 - lx);
	b->w[3] = ly * lx;
	b->at[0] = (size_t)(y_lo * w + x_lo);
	b->at[1] = (size_t)(y_lo * w + x_hi);
	b->at[2] = (size_t)(y_hi * w + x_lo);
	b->at[3] = (size_t)(y_hi * w + x_hi);
}

struct roi_params {
	int64_t oh, ow, sampling;
	double scale, offset;
	int max_mode, min_one; /* at least one pixel (output_half_pixel) */
	int f32;               /* geometry in single precision */
};

/* v as the input's precision holds it. */
static double rnd(const struct roi_params *p, double v)
{
	return p->f32 ? (double)(float)v : v;
}

static int roi_params(const struct bnf_op_ctx *ctx, struct roi_params *p)
{
	char mode[16], trans[32];
	float scale;

	if (bnf_attr_int(ctx->node, "output_height", 1, &p->oh, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "output_width", 1, &p->ow, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "sampling_ratio", 0, &p->sampling, ctx->err) != BNF_OK ||
	    bnf_attr_float(ctx->node, "spatial_scale", 1.0f, &scale, ctx->err) != BNF_OK ||
	    bnf_attr_string(ctx->node, "mode", "avg", mode, sizeof(mode), ctx->err) != BNF_OK ||
	    bnf_attr_string(ctx->node, "coordinate_transformation_mode",
	                    ctx->opset >= 16 ? "half_pixel" : "output_half_pixel", trans,
	                    sizeof(trans), ctx->err) != BNF_OK)
		return ctx->err->status;
	if (strcmp(mode, "avg") != 0 && strcmp(mode, "max") != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "mode '%s' is neither avg nor max", mode);
	if (strcmp(trans, "half_pixel") != 0 && strcmp(trans, "output_half_pixel") != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "coordinate_transformation_mode '%s' is "
		                    "unknown",
		                    trans);
	if (p->oh < 1 || p->ow < 1 || p->sampling < 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "output size and sampling_ratio must be "
		                    "positive");
	p->scale = scale;
	p->max_mode = strcmp(mode, "max") == 0;
	p->min_one = strcmp(trans, "output_half_pixel") == 0;
	p->offset = p->min_one ? 0.0 : 0.5;
	return BNF_OK;
}

/* One output bin (ph, pw) of region (y0, x0, bin sizes) on plane at base. */
static double roi_bin(const struct bnf_tensor *x, size_t base, const struct roi_params *p,
                      double y0, double x0, double bh, double bw, int64_t gh, int64_t gw,
                      int64_t ph, int64_t pw)
{
	int64_t h = x->dims[2], w = x->dims[3], iy, ix;
	struct bnf_vis_bilinear b;
	double acc = 0.0, v, best;
	int k, first = 1;

	for (iy = 0; iy < gh; iy++) {
		double y = rnd(p, rnd(p, y0 + rnd(p, (double)ph * bh)) +
		                      rnd(p, rnd(p, ((double)iy + 0.5) * bh) / (double)gh));
		for (ix = 0; ix < gw; ix++) {
			double xx =
			    rnd(p, rnd(p, x0 + rnd(p, (double)pw * bw)) +
			               rnd(p, rnd(p, ((double)ix + 0.5) * bw) / (double)gw));
			bnf_vis_bilinear_at(h, w, y, xx, &b);
			if (!p->max_mode) {
				for (k = 0; b.inside && k < 4; k++)
					acc += b.w[k] * bnf_shp_get(x, base + b.at[k]);
				continue;
			}
			best = b.w[0] * bnf_shp_get(x, base + b.at[0]);
			for (k = 1; k < 4; k++) {
				v = b.w[k] * bnf_shp_get(x, base + b.at[k]);
				best = v > best ? v : best;
			}
			acc = first || best > acc ? best : acc;
			first = 0;
		}
	}
	if (p->max_mode)
		return acc;
	return acc / (double)(gh * gw > 0 ? gh * gw : 1);
}

int bnf_vis_roi_align_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *rois, *bi;
	struct roi_params p;
	int64_t dims[4], r, c, ph, pw, b, n_rois;
	size_t out = 0;

	if (bnf_shp_check_io(ctx, 3, 3) != BNF_OK || roi_params(ctx, &p) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	rois = ctx->in[1];
	bi = ctx->in[2];
	if (x->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || bi->rank != 1 ||
	    bi->dims[0] != rois->dims[0] || !bnf_shp_is_float(x->dtype) ||
	    !bnf_shp_is_float(rois->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "X must be [N, C, H, W], rois [R, 4] and batch_indices [R]");
	p.f32 = x->dtype != DT(DOUBLE);
	p.scale = rnd(&p, p.scale);
	n_rois = rois->dims[0];
	dims[0] = n_rois;
	dims[1] = x->dims[1];
	dims[2] = p.oh;
	dims[3] = p.ow;
	if (bnf_shp_new_out(ctx, 0, x->dtype, 4, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (r = 0; r < n_rois; r++) {
		double x1 = rnd(&p, rnd(&p, bnf_shp_get(rois, (size_t)r * 4) * p.scale) - p.offset);
		double y1 =
		    rnd(&p, rnd(&p, bnf_shp_get(rois, (size_t)r * 4 + 1) * p.scale) - p.offset);
		double x2 =
		    rnd(&p, rnd(&p, bnf_shp_get(rois, (size_t)r * 4 + 2) * p.scale) - p.offset);
		double y2 =
		    rnd(&p, rnd(&p, bnf_shp_get(rois, (size_t)r * 4 + 3) * p.scale) - p.offset);
		double rh = rnd(&p, y2 - y1), rw = rnd(&p, x2 - x1), bh, bw;
		int64_t gh, gw;
		b = bnf_shp_get_int(bi, (size_t)r);
		if (b < 0 || b >= x->dims[0])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "batch index %lld is out of range",
			                    (long long)b);
		if (p.min_one) {
			rh = rh > 1.0 ? rh : 1.0;
			rw = rw > 1.0 ? rw : 1.0;
		}
		bh = rnd(&p, rh / (double)p.oh);
		bw = rnd(&p, rw / (double)p.ow);
		gh = p.sampling > 0 ? p.sampling : (int64_t)ceil(bh);
		gw = p.sampling > 0 ? p.sampling : (int64_t)ceil(bw);
		for (c = 0; c < x->dims[1]; c++) {
			size_t base = (size_t)((b * x->dims[1] + c) * x->dims[2] * x->dims[3]);
			for (ph = 0; ph < p.oh; ph++)
				for (pw = 0; pw < p.ow; pw++)
					bnf_shp_set(
					    ctx->out[0], out++,
					    roi_bin(x, base, &p, y1, x1, bh, bw, gh, gw, ph, pw));
		}
	}
	return BNF_OK;
}
