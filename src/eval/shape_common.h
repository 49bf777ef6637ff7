/*
 * Private to the shape family (src/eval/shape_*.c): the helpers its files
 * share (error records, reading shape/axes inputs, one strided
 * copy for every data-movement operator, element access as double) and the
 * shape and compute steps that the family's table in shape_common.c lists.
 */
#ifndef BNF_EVAL_SHAPE_COMMON_H
#define BNF_EVAL_SHAPE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "eval/op.h"
#include "eval/tensor.h"

/* ONNX dtype numbers, shortened: DT(FLOAT) */
#define DT(x) ONNX__TENSOR_PROTO__DATA_TYPE__##x

/* Views handed to bnf_shp_copy may have up to twice the tensor rank (Tile
 * splits every axis into a repeat axis and a data axis). */
#define BNF_SHP_MAX_VIEW (2 * BNF_MAX_RANK)

/* Record a failure and return status. The executor prefixes the message
 * with the node's name and type, so messages name only the argument. */
int bnf_shp_fail(const struct bnf_op_ctx *ctx, enum bnf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Check that the node has between min_in and max_in inputs, that the first
 * min_in are present, and that it has at least one output. */
int bnf_shp_check_io(const struct bnf_op_ctx *ctx, size_t min_in, size_t max_in);

/* Input i, or NULL when it is absent or omitted. */
const struct bnf_tensor *bnf_shp_in(const struct bnf_op_ctx *ctx, size_t i);

/* Normalise an axis in [-rank, rank - 1] to [0, rank - 1]; `what` names the
 * attribute or input in the error. */
int bnf_shp_axis(const struct bnf_op_ctx *ctx, int64_t axis, int rank, const char *what, int *out);

/* Normalise n axes in place against rank and refuse repeats; on success
 * *mask has bit a set for every axis a named. */
int bnf_shp_axes(const struct bnf_op_ctx *ctx, int64_t *axes, size_t n, int rank, const char *what,
                 unsigned *mask);

/* Copy the values of an INT64 or INT32 tensor of rank 0 or 1 into out
 * (at most max values; *n receives the count). */
int bnf_shp_read_ints(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, const char *what,
                      int64_t *out, size_t max, size_t *n);

/* The same for a floating tensor (float, float16, bfloat16 or double). */
int bnf_shp_read_doubles(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, const char *what,
                         double *out, size_t max, size_t *n);

/* The integer list from attribute `name` (opsets before `input_from`) or
 * from input `input` (from that opset on); *present says whether either
 * was given. */
int bnf_shp_ints_arg(const struct bnf_op_ctx *ctx, const char *name, int input_from, size_t input,
                     int64_t *out, size_t max, size_t *n, int *present);

/* Allocate output i with the given dtype and dims after checking that every
 * dim is in [0, BNF_MAX_ELEMENTS] and that their product stays within it.
 * Outputs the node does not want stay NULL. */
int bnf_shp_new_out(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims);

/* Row-major element strides of dims. */
void bnf_shp_strides(int rank, const int64_t *dims, int64_t *strides);

/* Copy every element of a view: element (i0, ..., ik) moves from
 * src + sum(i * sstride) to dst + sum(i * dstride), strides counted in
 * elements of esize bytes and allowed to be zero or negative. */
void bnf_shp_copy(size_t esize, int rank, const int64_t *dims, const void *src,
                  const int64_t *sstride, void *dst, const int64_t *dstride);

/* Fill every element of t with the esize-byte value at elem. */
void bnf_shp_fill(struct bnf_tensor *t, const void *elem);

/* Whether dtype is one of the floating types the evaluator holds. */
int bnf_shp_is_float(int dtype);

/* Element i of t as a double, and storing a double into element i (rounded
 * to float16/bfloat16 for those dtypes; integer dtypes take the value
 * truncated and saturated to their range). */
double bnf_shp_get(const struct bnf_tensor *t, size_t i);
/* Element i of an integer or bool tensor (uint64: its bit pattern). */
int64_t bnf_shp_get_int(const struct bnf_tensor *t, size_t i);
void bnf_shp_set(struct bnf_tensor *t, size_t i, double v);

/* Compute step shared by operators whose output holds the input's bytes
 * under another shape (Flatten, Reshape, Squeeze, Unsqueeze). */
int bnf_shp_copy_compute(struct bnf_op_ctx *ctx);

/* shape_layout.c */
int bnf_shp_flatten_shape(struct bnf_op_ctx *ctx);
int bnf_shp_reshape_shape(struct bnf_op_ctx *ctx);
int bnf_shp_squeeze_shape(struct bnf_op_ctx *ctx);
int bnf_shp_unsqueeze_shape(struct bnf_op_ctx *ctx);
int bnf_shp_shape_shape(struct bnf_op_ctx *ctx);
int bnf_shp_shape_compute(struct bnf_op_ctx *ctx);
int bnf_shp_transpose_shape(struct bnf_op_ctx *ctx);
int bnf_shp_transpose_compute(struct bnf_op_ctx *ctx);
int bnf_shp_expand_shape(struct bnf_op_ctx *ctx);
int bnf_shp_expand_compute(struct bnf_op_ctx *ctx);
int bnf_shp_tile_shape(struct bnf_op_ctx *ctx);
int bnf_shp_tile_compute(struct bnf_op_ctx *ctx);
int bnf_shp_constant_of_shape_shape(struct bnf_op_ctx *ctx);
int bnf_shp_constant_of_shape_compute(struct bnf_op_ctx *ctx);
int bnf_shp_range_shape(struct bnf_op_ctx *ctx);
int bnf_shp_range_compute(struct bnf_op_ctx *ctx);

/* shape_index.c */
int bnf_shp_concat_shape(struct bnf_op_ctx *ctx);
int bnf_shp_concat_compute(struct bnf_op_ctx *ctx);
int bnf_shp_split_shape(struct bnf_op_ctx *ctx);
int bnf_shp_split_compute(struct bnf_op_ctx *ctx);
int bnf_shp_slice_shape(struct bnf_op_ctx *ctx);
int bnf_shp_slice_compute(struct bnf_op_ctx *ctx);
int bnf_shp_gather_shape(struct bnf_op_ctx *ctx);
int bnf_shp_gather_compute(struct bnf_op_ctx *ctx);
int bnf_shp_gather_elements_shape(struct bnf_op_ctx *ctx);
int bnf_shp_gather_elements_compute(struct bnf_op_ctx *ctx);

/* shape_pad.c */
int bnf_shp_pad_shape(struct bnf_op_ctx *ctx);
int bnf_shp_pad_compute(struct bnf_op_ctx *ctx);

/* shape_reduce.c */
int bnf_shp_reduce_shape(struct bnf_op_ctx *ctx);
int bnf_shp_reduce_compute(struct bnf_op_ctx *ctx);
int bnf_shp_arg_shape(struct bnf_op_ctx *ctx); /* ArgMax ArgMin */
int bnf_shp_arg_compute(struct bnf_op_ctx *ctx);

/* shape_space.c: SpaceToDepth DepthToSpace */
int bnf_shp_space_shape(struct bnf_op_ctx *ctx);
int bnf_shp_space_compute(struct bnf_op_ctx *ctx);

/* shape_resize.c */
int bnf_shp_resize_shape(struct bnf_op_ctx *ctx);
int bnf_shp_resize_compute(struct bnf_op_ctx *ctx);

#endif
