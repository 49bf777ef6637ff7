/*
 * NonMaxSuppression: for each batch entry and class, the boxes in order of
 * falling score (equal scores: lower index first), each kept unless its
 * intersection over union with a box already kept exceeds iou_threshold,
 * until max_output_boxes_per_class are kept. Boxes scoring no more than
 * score_threshold are never candidates. The rules on edges (strict
 * comparisons, boxes without area suppressing nothing) are onnxruntime's.
 */
#include "eval/vision_ops.h"
#include "eval/index_ops.h"

#include <stdlib.h>
#include <string.h>

int bnf_vis_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the outputs */
	return BNF_OK;
}

struct box {
	double y1, x1, y2, x2;
};

/* Box i of batch b as corners, whatever the encoding. */
static struct box box_at(const struct bnf_tensor *boxes, int64_t b, int64_t i, int center)
{
	size_t at = (size_t)((b * boxes->dims[1] + i) * 4);
	double v0 = bnf_shp_get(boxes, at), v1 = bnf_shp_get(boxes, at + 1);
	double v2 = bnf_shp_get(boxes, at + 2), v3 = bnf_shp_get(boxes, at + 3);
	struct box r;

	if (center) { /* x_center, y_center, width, height */
		r.x1 = v0 - v2 / 2.0;
		r.x2 = v0 + v2 / 2.0;
		r.y1 = v1 - v3 / 2.0;
		r.y2 = v1 + v3 / 2.0;
	} else { /* y1, x1, y2, x2: any two opposite corners */
		r.y1 = v0 < v2 ? v0 : v2;
		r.y2 = v0 < v2 ? v2 : v0;
		r.x1 = v1 < v3 ? v1 : v3;
		r.x2 = v1 < v3 ? v3 : v1;
	}
	return r;
}

static int suppresses(const struct box *a, const struct box *b, double threshold)
{
	double area_a = (a->y2 - a->y1) * (a->x2 - a->x1);
	double area_b = (b->y2 - b->y1) * (b->x2 - b->x1);
	double iy1 = a->y1 > b->y1 ? a->y1 : b->y1, iy2 = a->y2 < b->y2 ? a->y2 : b->y2;
	double ix1 = a->x1 > b->x1 ? a->x1 : b->x1, ix2 = a->x2 < b->x2 ? a->x2 : b->x2;
	double inter;

	if (area_a <= 0 || area_b <= 0 || iy2 <= iy1 || ix2 <= ix1)
		return 0;
	inter = (iy2 - iy1) * (ix2 - ix1);
	return inter / (area_a + area_b - inter) > threshold;
}

struct scores_line {
	const struct bnf_tensor *scores;
	size_t base;
};

/* Higher score first; the stable sort keeps equal scores in index order. */
static int score_before(const void *p, int64_t a, int64_t b)
{
	const struct scores_line *l = p;

	return bnf_shp_get(l->scores, l->base + (size_t)a) >
	       bnf_shp_get(l->scores, l->base + (size_t)b);
}

/* The optional scalar input i as a double, or def when absent. */
static double scalar_in(const struct bnf_op_ctx *ctx, size_t i, double def, int *present)
{
	const struct bnf_tensor *t = bnf_shp_in(ctx, i);

	*present = t && t->count > 0;
	return *present ? bnf_tensor_get_double(t, 0) : def;
}

int bnf_vis_nms_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *boxes, *scores;
	int64_t center, max_out, n_batch, n_class, n_box, b, c, i, k, n_sel = 0, cap = 0;
	int64_t *cand = NULL, *kept = NULL, *scratch = NULL, *sel = NULL, dims[2];
	double iou, thr;
	struct scores_line l;
	int has_thr, present, rc = BNF_OK;

	if (bnf_shp_check_io(ctx, 2, 5) != BNF_OK ||
	    bnf_attr_int(ctx->node, "center_point_box", 0, &center, ctx->err) != BNF_OK)
		return ctx->err->status;
	boxes = ctx->in[0];
	scores = ctx->in[1];
	if (boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 ||
	    scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1] ||
	    !bnf_shp_is_float(boxes->dtype) || !bnf_shp_is_float(scores->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "boxes must be [batch, boxes, 4] and scores [batch, classes, "
		                    "boxes], floating");
	/* An integer read as such: exporters pass INT64_MAX for "all". */
	max_out = bnf_shp_in(ctx, 2) && ctx->in[2]->count ? bnf_shp_get_int(ctx->in[2], 0) : 0;
	iou = scalar_in(ctx, 3, 0, &present);
	thr = scalar_in(ctx, 4, 0, &has_thr);
	n_batch = boxes->dims[0];
	n_class = scores->dims[1];
	n_box = boxes->dims[1];
	cand = malloc(((size_t)n_box + 1) * sizeof(*cand));
	kept = malloc(((size_t)n_box + 1) * sizeof(*kept));
	scratch = malloc(((size_t)n_box + 1) * sizeof(*scratch));
	if (!cand || !kept || !scratch) {
		rc = bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	l.scores = scores;
	for (b = 0; b < n_batch && max_out > 0; b++) {
		for (c = 0; c < n_class; c++) {
			size_t n_cand = 0, n_kept = 0, j;
			l.base = (size_t)((b * n_class + c) * n_box);
			for (i = 0; i < n_box; i++)
				if (!has_thr || bnf_shp_get(scores, l.base + (size_t)i) > thr)
					cand[n_cand++] = i;
			bnf_idx_sort(cand, n_cand, scratch, score_before, &l);
			for (j = 0; j < n_cand && (int64_t)n_kept < max_out; j++) {
				struct box x = box_at(boxes, b, cand[j], (int)center);
				for (k = 0; k < (int64_t)n_kept; k++) {
					struct box y = box_at(boxes, b, kept[k], (int)center);
					if (suppresses(&x, &y, iou))
						break;
				}
				if (k == (int64_t)n_kept)
					kept[n_kept++] = cand[j];
			}
			if (n_sel + (int64_t)n_kept > cap) {
				int64_t *grown;
				cap = (n_sel + (int64_t)n_kept) * 2 + 16;
				grown = realloc(sel, (size_t)cap * 3 * sizeof(*grown));
				if (!grown) {
					rc = bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
					goto out;
				}
				sel = grown;
			}
			for (j = 0; j < n_kept; j++, n_sel++) {
				sel[n_sel * 3] = b;
				sel[n_sel * 3 + 1] = c;
				sel[n_sel * 3 + 2] = kept[j];
			}
		}
	}
	dims[0] = n_sel;
	dims[1] = 3;
	rc = bnf_shp_new_out(ctx, 0, DT(INT64), 2, dims);
	if (rc == BNF_OK && ctx->out[0] && n_sel)
		memcpy(ctx->out[0]->data, sel, (size_t)n_sel * 3 * sizeof(*sel));
out:
	free(cand);
	free(kept);
	free(scratch);
	free(sel);
	return rc;
}
