/*
 * The table of the elementwise family: each row names an operator, the
 * first opset whose semantics the row covers, and its shape and compute
 * steps. Version differences inside a row (Clip's bounds becoming inputs in
 * 11, Softmax's axis in 13, broadcasting in 7) are handled by the steps.
 */
#include "eval/basic_ops.h"

/* Rows ending in 1 are elementwise in input 0 (see struct bnf_op). */
#define BINARY   bnf_basic_binary_shape, bnf_basic_binary_compute, 1
#define VARIADIC bnf_basic_variadic_shape, bnf_basic_variadic_compute, 0
#define UNARY    bnf_basic_unary_shape, bnf_basic_unary_compute, 1
#define SOFTMAX  bnf_basic_softmax_shape, bnf_basic_softmax_compute, 0
#define PASS     bnf_basic_identity_shape, bnf_basic_identity_compute, 0

const struct bnf_op bnf_ops_basic[] = {
    {"Add", 1, BINARY},
    {"Sub", 1, BINARY},
    {"Mul", 1, BINARY},
    {"Div", 1, BINARY},
    {"Pow", 1, BINARY},
    {"Equal", 1, BINARY},
    {"PRelu", 1, BINARY},
    {"Sum", 1, VARIADIC},
    {"Max", 1, VARIADIC},
    {"Min", 1, VARIADIC},
    {"Where", 9, bnf_basic_where_shape, bnf_basic_where_compute, 0},
    {"Sqrt", 1, UNARY},
    {"Exp", 1, UNARY},
    {"Log", 1, UNARY},
    {"Abs", 1, UNARY},
    {"Neg", 1, UNARY},
    {"Reciprocal", 1, UNARY},
    {"Erf", 9, UNARY},
    {"Tanh", 1, UNARY},
    {"Relu", 1, UNARY},
    {"LeakyRelu", 1, UNARY},
    {"Elu", 1, UNARY},
    {"Selu", 1, UNARY},
    {"Sigmoid", 1, UNARY},
    {"HardSigmoid", 1, UNARY},
    {"HardSwish", 14, UNARY},
    {"Softplus", 1, UNARY},
    {"Mish", 18, UNARY},
    {"Clip", 1, UNARY},
    {"Softmax", 1, SOFTMAX},
    {"LogSoftmax", 1, SOFTMAX},
    {"Cast", 1, bnf_basic_cast_shape, bnf_basic_cast_compute, 0},
    {"Identity", 1, PASS},
    {"Dropout", 1, PASS},
    {NULL, 0, NULL, NULL, 0},
};
