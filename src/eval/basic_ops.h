/*
 * Private to the basic_*.c files (elementwise operators, activations,
 * softmax, cast): the chunked "map" driver that walks broadcast operands,
 * the value lanes it fills, and the shape and compute steps each family
 * file hands to the table in basic_table.c. Not part of the evaluator API.
 */
#ifndef BNF_EVAL_BASIC_OPS_H
#define BNF_EVAL_BASIC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "eval/op.h"

/* Most operands of one map: Where's condition, X and Y. */
#define BASIC_MAX_OPERANDS 3
/* Elements moved through the lanes at a time. */
#define BASIC_CHUNK 256

/* Short names for the ONNX dtypes this family handles. */
enum basic_dtype {
	BASIC_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
	BASIC_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
	BASIC_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
	BASIC_UINT16 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16,
	BASIC_INT16 = ONNX__TENSOR_PROTO__DATA_TYPE__INT16,
	BASIC_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
	BASIC_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
	BASIC_UINT32 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT32,
	BASIC_UINT64 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT64,
	BASIC_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
	BASIC_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
	BASIC_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
	BASIC_BFLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16,
};

/* Values are computed in one of two lanes: float types in double (and
 * rounded once to the output's type when stored), integer and bool types in
 * int64 (and wrapped to the output's width when stored). uint64 values
 * travel as their bit pattern: kernels whose result depends on the sign
 * (comparisons, division, min and max) look at the operand's dtype. */
enum basic_lane {
	BASIC_LANE_F64,
	BASIC_LANE_I64,
};

union basic_lane_buf {
	double f[BASIC_CHUNK];
	int64_t i[BASIC_CHUNK];
};

/* One elementwise pass: every operand is broadcast (numpy-style, aligned on
 * the right) to the output's shape, loaded into its lane, and the kernel's
 * result is stored into out. An operand may be out itself (full shape). */
struct basic_map {
	size_t n_in;
	const struct bnf_tensor *in[BASIC_MAX_OPERANDS]; /* borrowed */
	enum basic_lane in_lane[BASIC_MAX_OPERANDS];
	struct bnf_tensor *out; /* borrowed */
	enum basic_lane out_lane;
	/* Computes n output values from the operands' lanes. Returns 0, or -1
	 * when a value cannot be computed (integer division by zero). */
	int (*kernel)(const struct basic_map *m, size_t n, union basic_lane_buf *out,
	              const union basic_lane_buf *in);
	const void *params; /* the kernel's own data, borrowed */
};

/* A row of the elementwise operators of two inputs (and of the variadic
 * ones, applied pairwise), run by basic_binary.c. */
enum basic_binary_flags {
	BINARY_BOOL_OUT = 1,        /* comparisons: the output is bool */
	BINARY_ALLOW_BOOL = 2,      /* Equal also compares bool tensors */
	BINARY_MIXED_TYPES = 4,     /* Pow: base and exponent types may differ;
	                               computed in double, stored as the base type */
	BINARY_LEGACY_BCAST = 8,    /* has opset < 7 "broadcast"/"axis" attributes */
	BINARY_SLOPE = 16,          /* PRelu: only the second input is broadcast */
	BINARY_DIVISOR = 32,        /* Div, Mod: an integer zero divisor is an error */
	BINARY_BOOL_ONLY = 64,      /* And, Or, Xor: bool inputs only */
	BINARY_UNSIGNED_ONLY = 128, /* BitShift: unsigned integers only */
	BINARY_MEAN = 256,          /* Mean: the variadic sum, divided by the count */
};

struct basic_binary_op {
	const char *op_type;
	/* A row for one value of an attribute (BitShift's direction, Mod's
	 * fmod; an integer compares as its decimal text, a leading '*' marks
	 * the default), or NULL for every node of the operator. */
	const char *choice_attr, *choice;
	unsigned flags;
	double (*f)(double a, double b);    /* NULL when floats are not allowed */
	int64_t (*i)(int64_t a, int64_t b); /* NULL when integers are not allowed */
	int64_t (*u)(int64_t a, int64_t b); /* uint64 bit patterns, when the result
	                                       differs from i's (NULL: use i) */
};

/* logic_binary.c: comparisons, And/Or/Xor, bitwise ops, BitShift, Mod;
 * the table ends with a row whose op_type is NULL. */
extern const struct basic_binary_op bnf_logic_binary_ops[];

/* A row of the elementwise operators of one input, run by basic_unary.c. */
struct basic_unary_params {
	double alpha, beta, gamma; /* the row's attributes, in its order */
	double lo, hi;             /* Clip bounds on float tensors */
	int64_t lo_i, hi_i;        /* Clip bounds on integer tensors */
	int is_u64;                /* integer lane values are uint64 bit patterns */
};

enum basic_unary_flags {
	UNARY_BOOL_OUT = 1,  /* IsNaN, IsInf: the output is bool */
	UNARY_BOOL_ONLY = 2, /* Not: bool input (and output) only */
	UNARY_INT_ATTRS = 4, /* the attributes are integers (IsInf's detect_*) */
};

struct basic_unary_op {
	const char *op_type;
	double (*f)(double x, const struct basic_unary_params *p);   /* NULL: no floats */
	int64_t (*i)(int64_t x, const struct basic_unary_params *p); /* NULL: no integers */
	const char *attr[3]; /* read into alpha, beta, gamma */
	float def[3];        /* their defaults */
	unsigned flags;
};

/* math_unary.c: rounding, sign, trigonometry, the activations added since;
 * the table ends with a row whose op_type is NULL. */
extern const struct basic_unary_op bnf_math_unary_ops[];

/* Load n elements of t, from element off in steps of step, into a lane
 * (converting integers to double or truncating floats as needed). */
void bnf_basic_load(const struct bnf_tensor *t, enum basic_lane lane, size_t off, size_t step,
                    size_t n, union basic_lane_buf *dst);
/* Store n lane values at t's elements off, off+step, ...: one rounding to
 * the float type, or numpy's truncating conversion and wrap to the integer
 * width. The lane is scratch and may be overwritten. */
void bnf_basic_store(struct bnf_tensor *t, enum basic_lane lane, size_t off, size_t step, size_t n,
                     union basic_lane_buf *src);

/* Run a map. Returns 0, or -1 when the kernel failed. The operands' shapes
 * must already be known to broadcast to out's shape. */
int bnf_basic_map_run(const struct basic_map *m);

/* Copy in, broadcast to out's shape, into out, converting each value once
 * to out's dtype (the rules of bnf_basic_store). */
void bnf_basic_convert(const struct bnf_tensor *in, struct bnf_tensor *out);

/* The numpy-style broadcast of n shapes into rank/dims. Returns 0, or -1
 * when two dimensions differ and neither is 1. */
int bnf_basic_broadcast_shape(size_t n, const struct bnf_tensor *const *t, int *rank,
                              int64_t *dims);

/* dtype classes. */
int bnf_basic_is_float(int dtype);   /* float, double, float16, bfloat16 */
int bnf_basic_is_integer(int dtype); /* signed and unsigned integers (not bool) */
/* The lane a dtype's values are held in without loss. */
enum basic_lane bnf_basic_natural_lane(int dtype);

/* Errors are recorded with bnf_fail(ctx->err, ...); the executor adds the
 * node's name and operator in front of the message. */
/* Check the node's input and output counts against the spec's bounds;
 * inputs below min_in must be present. */
int bnf_basic_check_arity(const struct bnf_op_ctx *ctx, size_t min_in, size_t max_in,
                          size_t max_out);
/* Format a tensor's shape as "[2,3,4]" into buf. */
const char *bnf_basic_shape_str(const struct bnf_tensor *t, char *buf, size_t len);
/* Allocate out[i] with the given dtype and the shape of like. */
int bnf_basic_new_output(struct bnf_op_ctx *ctx, size_t i, int dtype,
                         const struct bnf_tensor *like);

/* Shape and compute steps of the families. */
int bnf_basic_binary_shape(struct bnf_op_ctx *ctx); /* Add ... PRelu, logic_binary.c's */
int bnf_basic_binary_compute(struct bnf_op_ctx *ctx);
int bnf_basic_variadic_shape(struct bnf_op_ctx *ctx); /* Sum Mean Max Min */
int bnf_basic_variadic_compute(struct bnf_op_ctx *ctx);
int bnf_basic_where_shape(struct bnf_op_ctx *ctx);
int bnf_basic_where_compute(struct bnf_op_ctx *ctx);
int bnf_basic_unary_shape(struct bnf_op_ctx *ctx); /* the activations, Clip */
int bnf_basic_unary_compute(struct bnf_op_ctx *ctx);
int bnf_basic_softmax_shape(struct bnf_op_ctx *ctx); /* Softmax LogSoftmax */
int bnf_basic_softmax_compute(struct bnf_op_ctx *ctx);
int bnf_basic_cast_shape(struct bnf_op_ctx *ctx);
int bnf_basic_cast_compute(struct bnf_op_ctx *ctx);
int bnf_basic_identity_shape(struct bnf_op_ctx *ctx); /* Identity Dropout */
int bnf_math_einsum_shape(struct bnf_op_ctx *ctx);    /* math_einsum.c */
int bnf_math_einsum_compute(struct bnf_op_ctx *ctx);
int bnf_math_det_shape(struct bnf_op_ctx *ctx); /* math_det.c */
int bnf_math_done_compute(struct bnf_op_ctx *ctx);
int bnf_basic_identity_compute(struct bnf_op_ctx *ctx);

#endif
