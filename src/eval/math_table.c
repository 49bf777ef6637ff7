/*
 * The table of the math operators added to the elementwise family
 * (rounding, sign, trigonometry, Mod, Mean, more activations): data read
 * by the registry. Their scalar functions are in math_unary.c and
 * logic_binary.c; the basic family's steps run them.
 */
#include "eval/basic_ops.h"

/* Rows ending in 1 are elementwise in input 0 (see struct bnf_op). */
#define BINARY   bnf_basic_binary_shape, bnf_basic_binary_compute, 1
#define VARIADIC bnf_basic_variadic_shape, bnf_basic_variadic_compute, 0
#define UNARY    bnf_basic_unary_shape, bnf_basic_unary_compute, 1

const struct bnf_op bnf_ops_math[] = {
    {"Round", 11, 0, UNARY},
    {"Floor", 1, 0, UNARY},
    {"Ceil", 1, 0, UNARY},
    {"Sign", 9, 0, UNARY},
    {"Mod", 10, 0, BINARY},
    {"Mean", 1, 0, VARIADIC},
    {"Sin", 7, 0, UNARY},
    {"Cos", 7, 0, UNARY},
    {"Tan", 7, 0, UNARY},
    {"Asin", 7, 0, UNARY},
    {"Acos", 7, 0, UNARY},
    {"Atan", 7, 0, UNARY},
    {"Sinh", 9, 0, UNARY},
    {"Cosh", 9, 0, UNARY},
    {"Asinh", 9, 0, UNARY},
    {"Acosh", 9, 0, UNARY},
    {"Atanh", 9, 0, UNARY},
    {"Softsign", 1, 0, UNARY},
    {"ThresholdedRelu", 10, 0, UNARY},
    {"Shrink", 9, 0, UNARY},
    {"Celu", 12, 0, UNARY},
    {"Einsum", 12, 0, bnf_math_einsum_shape, bnf_math_einsum_compute, 0},
    {"Det", 11, 0, bnf_math_det_shape, bnf_math_done_compute, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
