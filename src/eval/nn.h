/*
 * Internals shared by the neural-network operators (nn_*.c): element
 * access that hides float / double storage, input checks, and the sliding
 * window (kernel, strides, pads, dilations, auto_pad) of Conv and pooling.
 */
#ifndef BNF_EVAL_NN_H
#define BNF_EVAL_NN_H

#include <stdint.h>

#include "eval/op.h"

/* Element i of a float-family (float32 storage), double, int8 or uint8
 * tensor as a double. */
static inline double bnf_nn_get(const struct bnf_tensor *t, size_t i)
{
	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return ((const double *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
		return ((const int8_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
		return ((const uint8_t *)t->data)[i];
	default:
		return ((const float *)t->data)[i];
	}
}

/* Whether t keeps its elements as float32 (float, float16, bfloat16): the
 * fast paths of the operators index such data directly. */
static inline int bnf_nn_is_f32(const struct bnf_tensor *t)
{
	return t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
	       t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__INT8 &&
	       t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
}

/* Store v (already in range for integer dtypes) as element i. */
static inline void bnf_nn_set(struct bnf_tensor *t, size_t i, double v)
{
	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		((double *)t->data)[i] = v;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
		((int8_t *)t->data)[i] = (int8_t)v;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
		((uint8_t *)t->data)[i] = (uint8_t)v;
		break;
	default:
		((float *)t->data)[i] = (float)v;
		break;
	}
}

/* For the plain per-element loops of the hot float32 paths: -O2 leaves
 * them scalar. Vectorizing does not reorder anything (each element is
 * computed alone, in the same operations), and fp-contract stays off so
 * no multiply and add fuse where they did not. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
/* Also compiled for wider vectors, picked at load time (as gemm_order.h
 * does; not under AddressSanitizer, whose start-up the ifunc resolver
 * would precede): a wider lane does the same IEEE operations. */
#define BNF_NN_VECTORIZE                                                                           \
	__attribute__((target_clones("avx512f", "avx2", "default"),                                \
	               optimize("tree-vectorize", "fp-contract=off")))
#elif defined(__GNUC__) && !defined(__clang__)
#define BNF_NN_VECTORIZE __attribute__((optimize("tree-vectorize", "fp-contract=off")))
#else
#define BNF_NN_VECTORIZE
#endif

/* Float, float16, bfloat16 or double. */
int bnf_nn_is_real(int dtype);

/* Check that the node has between min and max inputs, that the first min
 * are present, and that every present input listed in `real_mask` (bit i
 * for input i) has a real dtype; the message names the offending input. */
int bnf_nn_check_inputs(const struct bnf_op_ctx *ctx, size_t min, size_t max, unsigned real_mask);

/* Output i, uninitialised, for operators that write every element. */
int bnf_nn_new_output_uninit(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank,
                             const int64_t *dims);

/* Allocate output i with X's dtype (or `dtype` when not 0) and shape. */
int bnf_nn_new_output(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims);

/* A sliding window over the spatial dims of an image. `image` is the
 * side being read (Conv, pooling) or written (ConvTranspose); `grid` the
 * window positions, one per output (Conv, pooling) or input
 * (ConvTranspose) element. Position p covers image coordinates
 * p * stride - pad_begin + j * dilation for kernel index j. */
struct bnf_nn_window {
	int n; /* spatial dims */
	int64_t image[BNF_MAX_RANK];
	int64_t grid[BNF_MAX_RANK];
	int64_t kernel[BNF_MAX_RANK];
	int64_t stride[BNF_MAX_RANK];
	int64_t dilation[BNF_MAX_RANK];
	int64_t pad_begin[BNF_MAX_RANK];
	int64_t pad_end[BNF_MAX_RANK];
	char auto_pad[16]; /* NOTSET, VALID, SAME_UPPER, SAME_LOWER */
};

/* Read kernel_shape (or take `kernel` when not NULL and the attribute is
 * absent), strides, dilations, pads and auto_pad for n spatial dims.
 * `image` is left for the caller. */
int bnf_nn_read_window(const struct bnf_op_ctx *ctx, int n, const int64_t *kernel,
                       struct bnf_nn_window *w);

/* Fill w->grid (and the pads, for auto_pad SAME_*) from w->image, the way
 * Conv and the pooling operators size their output; ceil_mode rounds the
 * count of window positions up. */
int bnf_nn_window_output(const struct bnf_op_ctx *ctx, struct bnf_nn_window *w, int ceil_mode);

/* Product of n dims (the caller has checked that it fits). */
size_t bnf_nn_prod(const int64_t *dims, int n);

/* The operator steps named in bnf_ops_nn (nn_table.c). */
int bnf_nn_conv_shape(struct bnf_op_ctx *ctx);
int bnf_nn_conv_compute(struct bnf_op_ctx *ctx);
int bnf_nn_conv_transpose_shape(struct bnf_op_ctx *ctx);
int bnf_nn_conv_transpose_compute(struct bnf_op_ctx *ctx);
int bnf_nn_batch_norm_shape(struct bnf_op_ctx *ctx);
int bnf_nn_batch_norm_compute(struct bnf_op_ctx *ctx);
int bnf_nn_instance_norm_shape(struct bnf_op_ctx *ctx);
int bnf_nn_instance_norm_compute(struct bnf_op_ctx *ctx);
int bnf_nn_layer_norm_shape(struct bnf_op_ctx *ctx);
int bnf_nn_layer_norm_compute(struct bnf_op_ctx *ctx);
int bnf_nn_max_pool_shape(struct bnf_op_ctx *ctx);
int bnf_nn_max_pool_compute(struct bnf_op_ctx *ctx);
int bnf_nn_average_pool_shape(struct bnf_op_ctx *ctx);
int bnf_nn_average_pool_compute(struct bnf_op_ctx *ctx);
int bnf_nn_global_pool_shape(struct bnf_op_ctx *ctx);
int bnf_nn_global_average_pool_compute(struct bnf_op_ctx *ctx);
int bnf_nn_global_max_pool_compute(struct bnf_op_ctx *ctx);
int bnf_nn_gemm_shape(struct bnf_op_ctx *ctx);
int bnf_nn_gemm_compute(struct bnf_op_ctx *ctx);
int bnf_nn_matmul_shape(struct bnf_op_ctx *ctx);
int bnf_nn_matmul_compute(struct bnf_op_ctx *ctx);
int bnf_nn_nll_loss_shape(struct bnf_op_ctx *ctx); /* nn_loss.c */
int bnf_nn_sce_loss_shape(struct bnf_op_ctx *ctx);
int bnf_nn_done_compute(struct bnf_op_ctx *ctx); /* for steps done in the shape step */
int bnf_nn_rnn_shape(struct bnf_op_ctx *ctx);    /* nn_rnn.c: RNN GRU LSTM */
int bnf_nn_rnn_compute(struct bnf_op_ctx *ctx);
int bnf_nn_lrn_shape(struct bnf_op_ctx *ctx); /* nn_misc.c */
int bnf_nn_mvn_shape(struct bnf_op_ctx *ctx);
int bnf_nn_max_unpool_shape(struct bnf_op_ctx *ctx);

#endif
