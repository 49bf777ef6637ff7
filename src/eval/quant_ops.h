/*
 * Private to the quantization family (src/eval/quant_*.c): the linear
 * quantization operators and the integer convolution and matrix product
 * they pair with. Arithmetic follows onnxruntime's: float32 division and
 * multiplication, rounding half to even, saturation to the integer type.
 * Not part of the evaluator API.
 */
#ifndef BNF_EVAL_QUANT_OPS_H
#define BNF_EVAL_QUANT_OPS_H

#include "eval/shape_common.h"

/* round(v) half to even, plus zero_point, saturated to dtype's range. */
int64_t bnf_q_saturate(int dtype, double rounded_plus_zp);

/* Steps of the family's rows (quant_table.c). */
int bnf_q_quantize_shape(struct bnf_op_ctx *ctx);
int bnf_q_dequantize_shape(struct bnf_op_ctx *ctx);
int bnf_q_dynamic_quantize_shape(struct bnf_op_ctx *ctx);
int bnf_q_conv_integer_shape(struct bnf_op_ctx *ctx);
int bnf_q_matmul_integer_shape(struct bnf_op_ctx *ctx);
int bnf_q_qlinear_conv_shape(struct bnf_op_ctx *ctx);
int bnf_q_qlinear_matmul_shape(struct bnf_op_ctx *ctx);
int bnf_q_done_compute(struct bnf_op_ctx *ctx);

#endif
