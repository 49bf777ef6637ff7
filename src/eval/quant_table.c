/*
 * The table of the quantization family: QuantizeLinear and its inverse,
 * the dynamic form, and the integer and quantized convolution and matrix
 * product. Data read by the registry; each works in its shape step.
 */
#include "eval/quant_ops.h"

#define DONE bnf_q_done_compute, 0

/* QuantizeLinear and DequantizeLinear took a per-axis scale in opset 13;
 * their step reads the opset. */
const struct bnf_op bnf_ops_quant[] = {
    {"QuantizeLinear", 10, 0, bnf_q_quantize_shape, DONE},
    {"DequantizeLinear", 10, 0, bnf_q_dequantize_shape, DONE},
    {"DynamicQuantizeLinear", 11, 0, bnf_q_dynamic_quantize_shape, DONE},
    {"ConvInteger", 10, 0, bnf_q_conv_integer_shape, DONE},
    {"MatMulInteger", 10, 0, bnf_q_matmul_integer_shape, DONE},
    {"QLinearConv", 10, 0, bnf_q_qlinear_conv_shape, DONE},
    {"QLinearMatMul", 10, 0, bnf_q_qlinear_matmul_shape, DONE},
    {NULL, 0, 0, NULL, NULL, 0},
};
