/*
 * The table of the vision family: box selection and image sampling. Data
 * read by the registry; the output of NonMaxSuppression depends on the
 * values, so every step works in the shape step.
 */
#include "eval/vision_ops.h"

#define DONE bnf_vis_done_compute, 0

/* RoiAlign-16 added coordinate_transformation_mode (its step reads the
 * opset); GridSample is opset 16. */
const struct bnf_op bnf_ops_vision[] = {
    {"NonMaxSuppression", 10, 0, bnf_vis_nms_shape, DONE},
    {"RoiAlign", 10, 0, bnf_vis_roi_align_shape, DONE},
    {"GridSample", 16, 0, bnf_vis_grid_sample_shape, DONE},
    {NULL, 0, 0, NULL, NULL, 0},
};
