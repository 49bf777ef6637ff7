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
    {"Add", 1, 0, BINARY},
    {"Sub", 1, 0, BINARY},
    {"Mul", 1, 0, BINARY},
    {"Div", 1, 0, BINARY},
    {"Pow", 1, 0, BINARY},
    {"Equal", 1, 0, BINARY},
    {"PRelu", 1, 0, BINARY},
    {"Sum", 1, 0, VARIADIC},
    {"Max", 1, 0, VARIADIC},
    {"Min", 1, 0, VARIADIC},
    {"Where", 9, 0, bnf_basic_where_shape, bnf_basic_where_compute, 0},
    {"Sqrt", 1, 0, UNARY},
    {"Exp", 1, 0, UNARY},
    {"Log", 1, 0, UNARY},
    {"Abs", 1, 0, UNARY},
    {"Neg", 1, 0, UNARY},
    {"Reciprocal", 1, 0, UNARY},
    {"Erf", 9, 0, UNARY},
    {"Tanh", 1, 0, UNARY},
    {"Relu", 1, 0, UNARY},
    {"LeakyRelu", 1, 0, UNARY},
    {"Elu", 1, 0, UNARY},
    {"Selu", 1, 0, UNARY},
    {"Sigmoid", 1, 0, UNARY},
    {"HardSigmoid", 1, 0, UNARY},
    {"HardSwish", 14, 0, UNARY},
    {"Softplus", 1, 0, UNARY},
    {"Mish", 18, 0, UNARY},
    {"Clip", 1, 0, UNARY},
    {"Softmax", 1, 0, SOFTMAX},
    {"LogSoftmax", 1, 0, SOFTMAX},
    {"Cast", 1, 0, bnf_basic_cast_shape, bnf_basic_cast_compute, 0},
    {"CastLike", 15, 0, bnf_basic_cast_shape, bnf_basic_cast_compute, 0},
    {"Identity", 1, 0, PASS},
    {"Dropout", 1, 0, PASS},
    {NULL, 0, 0, NULL, NULL, 0},
};
