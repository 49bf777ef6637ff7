/*
 * The table of shape, indexing, reduction, padding and resizing operators:
 * data read by the registry.
 */
#include "eval/shape_common.h"

/* Rows cite the first opset whose semantics they cover (and the last, when
 * the spec deprecated the operator: Upsample after 9); the steps look at
 * ctx->opset where later versions moved attributes to inputs. */
const struct bnf_op bnf_ops_shape[] = {
    {"Flatten", 1, 0, bnf_shp_flatten_shape, bnf_shp_copy_compute, 0},
    {"Reshape", 1, 0, bnf_shp_reshape_shape, bnf_shp_copy_compute, 0},
    {"Squeeze", 1, 0, bnf_shp_squeeze_shape, bnf_shp_copy_compute, 0},
    {"Unsqueeze", 1, 0, bnf_shp_unsqueeze_shape, bnf_shp_copy_compute, 0},
    {"Shape", 1, 0, bnf_shp_shape_shape, bnf_shp_shape_compute, 0},
    {"Transpose", 1, 0, bnf_shp_transpose_shape, bnf_shp_transpose_compute, 0},
    {"Expand", 8, 0, bnf_shp_expand_shape, bnf_shp_expand_compute, 0},
    {"Tile", 6, 0, bnf_shp_tile_shape, bnf_shp_tile_compute, 0},
    {"ConstantOfShape", 9, 0, bnf_shp_constant_of_shape_shape, bnf_shp_constant_of_shape_compute,
     0},
    {"Range", 11, 0, bnf_shp_range_shape, bnf_shp_range_compute, 0},
    {"Concat", 1, 0, bnf_shp_concat_shape, bnf_shp_concat_compute, 0},
    {"Split", 1, 0, bnf_shp_split_shape, bnf_shp_split_compute, 0},
    {"Slice", 1, 0, bnf_shp_slice_shape, bnf_shp_slice_compute, 0},
    {"Gather", 1, 0, bnf_shp_gather_shape, bnf_shp_gather_compute, 0},
    {"GatherElements", 11, 0, bnf_shp_gather_elements_shape, bnf_shp_gather_elements_compute, 0},
    {"Pad", 1, 0, bnf_shp_pad_shape, bnf_shp_pad_compute, 0},
    {"ReduceMean", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceSum", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceSumSquare", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceMax", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceMin", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceProd", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceL1", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceL2", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceLogSum", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ReduceLogSumExp", 1, 0, bnf_shp_reduce_shape, bnf_shp_reduce_compute, 0},
    {"ArgMax", 1, 0, bnf_shp_arg_shape, bnf_shp_arg_compute, 0},
    {"ArgMin", 1, 0, bnf_shp_arg_shape, bnf_shp_arg_compute, 0},
    {"SpaceToDepth", 1, 0, bnf_shp_space_shape, bnf_shp_space_compute, 0},
    {"DepthToSpace", 1, 0, bnf_shp_space_shape, bnf_shp_space_compute, 0},
    {"Resize", 10, 0, bnf_shp_resize_shape, bnf_shp_resize_compute, 0},
    {"Upsample", 7, 9, bnf_shp_resize_shape, bnf_shp_resize_compute, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
