/*
 * Elementwise functions of one input added to the basic family: rounding
 * (Round, Floor, Ceil), Sign, the trigonometric and hyperbolic functions,
 * Softsign, ThresholdedRelu, Shrink, Celu, the tests IsNaN and IsInf, Not
 * and BitwiseNot. Rows of scalar functions that basic_unary.c runs.
 */
#include "eval/basic_ops.h"

#include <math.h>
#include <stdint.h>

#define MATH_F(name, expr)                                                                         \
	static double name(double x, const struct basic_unary_params *p)                           \
	{                                                                                          \
		(void)p;                                                                           \
		return expr;                                                                       \
	}

/* Round-11 rounds halves to the even neighbour: rint in the default
 * rounding mode, which bnfold never changes. */
MATH_F(round_f, rint(x))
MATH_F(floor_f, floor(x))
MATH_F(ceil_f, ceil(x))
MATH_F(sin_f, sin(x))
MATH_F(cos_f, cos(x))
MATH_F(tan_f, tan(x))
MATH_F(asin_f, asin(x))
MATH_F(acos_f, acos(x))
MATH_F(atan_f, atan(x))
MATH_F(sinh_f, sinh(x))
MATH_F(cosh_f, cosh(x))
MATH_F(asinh_f, asinh(x))
MATH_F(acosh_f, acosh(x))
MATH_F(atanh_f, atanh(x))
MATH_F(softsign_f, x / (1.0 + fabs(x)))
MATH_F(isnan_f, isnan(x) ? 1.0 : 0.0)
/* Sign of NaN is NaN, as numpy's. */
MATH_F(sign_f, x > 0 ? 1.0 : x < 0 ? -1.0 : x)

static int64_t sign_i(int64_t x, const struct basic_unary_params *p)
{
	if (p->is_u64)
		return x != 0;
	return x > 0 ? 1 : x < 0 ? -1 : 0;
}

/* IsInf-10: alpha is detect_negative, beta detect_positive. */
static double isinf_f(double x, const struct basic_unary_params *p)
{
	return (isinf(x) && ((x < 0 && p->alpha != 0) || (x > 0 && p->beta != 0))) ? 1.0 : 0.0;
}

/* ThresholdedRelu-10: x where x > alpha, else 0. */
static double thresholded_relu_f(double x, const struct basic_unary_params *p)
{
	return x > p->alpha ? x : 0.0;
}

/* Shrink-9: alpha is lambd, beta is bias. */
static double shrink_f(double x, const struct basic_unary_params *p)
{
	return x < -p->alpha ? x + p->beta : x > p->alpha ? x - p->beta : 0.0;
}

/* On integers the result is computed in double and truncated, as a
 * numpy reference on the integer array would store it. */
static int64_t shrink_i(int64_t x, const struct basic_unary_params *p)
{
	double y;

	if (p->is_u64)
		y = shrink_f((double)(uint64_t)x, p);
	else
		y = shrink_f((double)x, p);
	return (int64_t)y;
}

/* Celu-12: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). */
static double celu_f(double x, const struct basic_unary_params *p)
{
	double neg = p->alpha * (exp(x / p->alpha) - 1.0);

	return (x > 0 ? x : 0.0) + (neg < 0 ? neg : 0.0);
}

static int64_t not_i(int64_t x, const struct basic_unary_params *p)
{
	(void)p;
	return !x;
}

/* The store keeps the bits of the output's width. */
static int64_t bitwise_not_i(int64_t x, const struct basic_unary_params *p)
{
	(void)p;
	return ~x;
}

const struct basic_unary_op bnf_math_unary_ops[] = {
    {"Round", round_f, NULL, {NULL}, {0}, 0},
    {"Floor", floor_f, NULL, {NULL}, {0}, 0},
    {"Ceil", ceil_f, NULL, {NULL}, {0}, 0},
    {"Sign", sign_f, sign_i, {NULL}, {0}, 0},
    {"Sin", sin_f, NULL, {NULL}, {0}, 0},
    {"Cos", cos_f, NULL, {NULL}, {0}, 0},
    {"Tan", tan_f, NULL, {NULL}, {0}, 0},
    {"Asin", asin_f, NULL, {NULL}, {0}, 0},
    {"Acos", acos_f, NULL, {NULL}, {0}, 0},
    {"Atan", atan_f, NULL, {NULL}, {0}, 0},
    {"Sinh", sinh_f, NULL, {NULL}, {0}, 0},
    {"Cosh", cosh_f, NULL, {NULL}, {0}, 0},
    {"Asinh", asinh_f, NULL, {NULL}, {0}, 0},
    {"Acosh", acosh_f, NULL, {NULL}, {0}, 0},
    {"Atanh", atanh_f, NULL, {NULL}, {0}, 0},
    {"Softsign", softsign_f, NULL, {NULL}, {0}, 0},
    {"ThresholdedRelu", thresholded_relu_f, NULL, {"alpha"}, {1.0f}, 0},
    {"Shrink", shrink_f, shrink_i, {"lambd", "bias"}, {0.5f, 0.0f}, 0},
    {"Celu", celu_f, NULL, {"alpha"}, {1.0f}, 0},
    {"IsNaN", isnan_f, NULL, {NULL}, {0}, UNARY_BOOL_OUT},
    {"IsInf",
     isinf_f,
     NULL,
     {"detect_negative", "detect_positive"},
     {1.0f, 1.0f},
     UNARY_BOOL_OUT | UNARY_INT_ATTRS},
    {"Not", NULL, not_i, {NULL}, {0}, UNARY_BOOL_ONLY},
    {"BitwiseNot", NULL, bitwise_not_i, {NULL}, {0}, 0},
    {NULL, NULL, NULL, {NULL}, {0}, 0},
};
