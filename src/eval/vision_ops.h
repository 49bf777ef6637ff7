/*
 * Private to the vision family (src/eval/vision_*.c): the detection and
 * sampling operators (NonMaxSuppression, RoiAlign, GridSample) that work on
 * boxes and image coordinates. Not part of the evaluator API.
 */
#ifndef BNF_EVAL_VISION_OPS_H
#define BNF_EVAL_VISION_OPS_H

#include "eval/shape_common.h"

/* Steps of the family's rows (vision_table.c). */
int bnf_vis_nms_shape(struct bnf_op_ctx *ctx);
int bnf_vis_roi_align_shape(struct bnf_op_ctx *ctx);
int bnf_vis_grid_sample_shape(struct bnf_op_ctx *ctx);
int bnf_vis_done_compute(struct bnf_op_ctx *ctx);

/* Bilinear sample of plane p (h x w, row-major doubles read through get)
 * at (y, x) as RoiAlign defines it: points more than one pixel outside
 * give 0, others clamp to the edge. The four weights and offsets are
 * returned for the max mode, which weighs before taking the maximum. */
struct bnf_vis_bilinear {
	size_t at[4];
	double w[4];
	int inside;
};
void bnf_vis_bilinear_at(int64_t h, int64_t w, double y, double x, struct bnf_vis_bilinear *b);

#endif
