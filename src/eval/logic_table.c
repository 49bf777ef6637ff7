/*
 * The table of comparison and logic operators: data read by the registry.
 * Their scalar functions are in logic_binary.c and math_unary.c; the
 * basic family's steps run them.
 */
#include "eval/basic_ops.h"

/* Rows ending in 1 are elementwise in input 0 (see struct bnf_op). */
#define BINARY bnf_basic_binary_shape, bnf_basic_binary_compute, 1
#define UNARY  bnf_basic_unary_shape, bnf_basic_unary_compute, 1

const struct bnf_op bnf_ops_logic[] = {
    {"Greater", 1, 0, BINARY},      {"Less", 1, 0, BINARY},       {"GreaterOrEqual", 12, 0, BINARY},
    {"LessOrEqual", 12, 0, BINARY}, {"And", 1, 0, BINARY},        {"Or", 1, 0, BINARY},
    {"Xor", 1, 0, BINARY},          {"Not", 1, 0, UNARY},         {"BitShift", 11, 0, BINARY},
    {"BitwiseAnd", 18, 0, BINARY},  {"BitwiseOr", 18, 0, BINARY}, {"BitwiseXor", 18, 0, BINARY},
    {"BitwiseNot", 18, 0, UNARY},   {"IsNaN", 9, 0, UNARY},       {"IsInf", 10, 0, UNARY},
    {NULL, 0, 0, NULL, NULL, 0},
};
