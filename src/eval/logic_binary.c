/*
 * Comparisons (Greater, Less, GreaterOrEqual, LessOrEqual), the logic of
 * bool tensors (And, Or, Xor), the bitwise operators, BitShift and Mod:
 * rows of scalar functions that basic_binary.c runs through the shared
 * broadcasting map, like Add or Equal.
 */
#include "eval/basic_ops.h"

#include <math.h>
#include <stdint.h>

/* Comparisons: false when either side is NaN, as IEEE 754 says. */
static double greater_f(double a, double b)
{
	return a > b;
}
static double less_f(double a, double b)
{
	return a < b;
}
static double greater_equal_f(double a, double b)
{
	return a >= b;
}
static double less_equal_f(double a, double b)
{
	return a <= b;
}

static int64_t greater_i(int64_t a, int64_t b)
{
	return a > b;
}
static int64_t less_i(int64_t a, int64_t b)
{
	return a < b;
}
static int64_t greater_equal_i(int64_t a, int64_t b)
{
	return a >= b;
}
static int64_t less_equal_i(int64_t a, int64_t b)
{
	return a <= b;
}

static int64_t greater_u(int64_t a, int64_t b)
{
	return (uint64_t)a > (uint64_t)b;
}
static int64_t less_u(int64_t a, int64_t b)
{
	return (uint64_t)a < (uint64_t)b;
}
static int64_t greater_equal_u(int64_t a, int64_t b)
{
	return (uint64_t)a >= (uint64_t)b;
}
static int64_t less_equal_u(int64_t a, int64_t b)
{
	return (uint64_t)a <= (uint64_t)b;
}

/* Logic on bool lanes (0 or 1) and bitwise operations: the store keeps
 * the bits the output's width holds. */
static int64_t and_i(int64_t a, int64_t b)
{
	return a & b;
}
static int64_t or_i(int64_t a, int64_t b)
{
	return a | b;
}
static int64_t xor_i(int64_t a, int64_t b)
{
	return a ^ b;
}

/* BitShift-11 on unsigned integers: a shift by the width or more leaves
 * nothing (C would leave it undefined). Narrower types wrap on store. */
static int64_t shift_left_u(int64_t a, int64_t b)
{
	return (uint64_t)b >= 64 ? 0 : (int64_t)((uint64_t)a << (uint64_t)b);
}
static int64_t shift_right_u(int64_t a, int64_t b)
{
	return (uint64_t)b >= 64 ? 0 : (int64_t)((uint64_t)a >> (uint64_t)b);
}

/* Mod-10 with fmod=1: the remainder of truncated division, the sign of the
 * dividend (C's % and fmod). The kernel has refused a zero divisor. */
static double fmod_f(double a, double b)
{
	return fmod(a, b);
}
static int64_t fmod_i(int64_t a, int64_t b)
{
	return b == -1 ? 0 : a % b;
}
static int64_t mod_u(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a % (uint64_t)b);
}

/* With fmod=0 (integers only): the remainder of floored division, the
 * sign of the divisor, as Python's % and numpy's mod. */
static int64_t mod_i(int64_t a, int64_t b)
{
	int64_t r = fmod_i(a, b);

	return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

/* Rows: op_type, choice attribute and value, flags, float, integer and
 * uint64 functions. Greater and Less have the opset 1-6 broadcast form;
 * GreaterOrEqual and LessOrEqual start at 12 and never had it. */
const struct basic_binary_op bnf_logic_binary_ops[] = {
    {"Greater", NULL, NULL, BINARY_BOOL_OUT | BINARY_LEGACY_BCAST, greater_f, greater_i, greater_u},
    {"Less", NULL, NULL, BINARY_BOOL_OUT | BINARY_LEGACY_BCAST, less_f, less_i, less_u},
    {"GreaterOrEqual", NULL, NULL, BINARY_BOOL_OUT, greater_equal_f, greater_equal_i,
     greater_equal_u},
    {"LessOrEqual", NULL, NULL, BINARY_BOOL_OUT, less_equal_f, less_equal_i, less_equal_u},
    {"And", NULL, NULL, BINARY_BOOL_OUT | BINARY_BOOL_ONLY | BINARY_LEGACY_BCAST, NULL, and_i,
     NULL},
    {"Or", NULL, NULL, BINARY_BOOL_OUT | BINARY_BOOL_ONLY | BINARY_LEGACY_BCAST, NULL, or_i, NULL},
    {"Xor", NULL, NULL, BINARY_BOOL_OUT | BINARY_BOOL_ONLY | BINARY_LEGACY_BCAST, NULL, xor_i,
     NULL},
    {"BitwiseAnd", NULL, NULL, 0, NULL, and_i, NULL},
    {"BitwiseOr", NULL, NULL, 0, NULL, or_i, NULL},
    {"BitwiseXor", NULL, NULL, 0, NULL, xor_i, NULL},
    {"BitShift", "direction", "LEFT", BINARY_UNSIGNED_ONLY, NULL, shift_left_u, NULL},
    {"BitShift", "direction", "RIGHT", BINARY_UNSIGNED_ONLY, NULL, shift_right_u, NULL},
    {"Mod", "fmod", "*0", BINARY_DIVISOR, NULL, mod_i, mod_u},
    {"Mod", "fmod", "1", BINARY_DIVISOR, fmod_f, fmod_i, mod_u},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL},
};
