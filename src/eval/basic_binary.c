/*
 * Elementwise operators of two or more inputs: Add, Sub, Mul, Div, Pow,
 * Equal and PRelu, the variadic Sum, Mean, Max and Min, and Where. Each is
 * a row of scalar functions (these, and the comparisons and logic of
 * logic_binary.c) run by the shared broadcasting map (basic_map.c);
 * numpy-style broadcasting from opset 7, the limited "broadcast"/"axis"
 * form of opset 1-6 before it.
 */
#include "eval/basic_ops.h"
#include "eval/parallel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Integer arithmetic wraps as in two's complement, as numpy's does. */
static double add_f(double a, double b)
{
	return a + b;
}
static double sub_f(double a, double b)
{
	return a - b;
}
static double mul_f(double a, double b)
{
	return a * b;
}
static double div_f(double a, double b)
{
	return a / b;
}
static double equal_f(double a, double b)
{
	return a == b;
}
static double prelu_f(double x, double slope)
{
	return x < 0 ? slope * x : x;
}
/* Max and Min propagate NaN, as numpy's maximum and minimum do. */
static double max_f(double a, double b)
{
	return isnan(a) || a > b ? a : b;
}
static double min_f(double a, double b)
{
	return isnan(a) || a < b ? a : b;
}

static int64_t add_i(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}
static int64_t sub_i(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a - (uint64_t)b);
}
static int64_t mul_i(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a * (uint64_t)b);
}
static int64_t equal_i(int64_t a, int64_t b)
{
	return a == b;
}
static int64_t max_i(int64_t a, int64_t b)
{
	return a > b ? a : b;
}
static int64_t min_i(int64_t a, int64_t b)
{
	return a < b ? a : b;
}
static int64_t prelu_i(int64_t x, int64_t slope)
{
	return x < 0 ? mul_i(slope, x) : x;
}

/* Integer Div truncates toward zero, as C and onnxruntime do; the kernel
 * has refused a zero divisor already. */
static int64_t div_i(int64_t a, int64_t b)
{
	return b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b;
}

static int64_t div_u(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a / (uint64_t)b);
}
static int64_t max_u(int64_t a, int64_t b)
{
	return (uint64_t)a > (uint64_t)b ? a : b;
}
static int64_t min_u(int64_t a, int64_t b)
{
	return (uint64_t)a < (uint64_t)b ? a : b;
}

static double mean_f(double a, double b)
{
	return a + b; /* the sum; the variadic step divides at the end */
}

static const struct basic_binary_op binary_ops[] = {
    {"Add", NULL, NULL, BINARY_LEGACY_BCAST, add_f, add_i, NULL},
    {"Sub", NULL, NULL, BINARY_LEGACY_BCAST, sub_f, sub_i, NULL},
    {"Mul", NULL, NULL, BINARY_LEGACY_BCAST, mul_f, mul_i, NULL},
    {"Div", NULL, NULL, BINARY_LEGACY_BCAST | BINARY_DIVISOR, div_f, div_i, div_u},
    {"Pow", NULL, NULL, BINARY_LEGACY_BCAST | BINARY_MIXED_TYPES, pow, NULL, NULL},
    {"Equal", NULL, NULL, BINARY_LEGACY_BCAST | BINARY_BOOL_OUT | BINARY_ALLOW_BOOL, equal_f,
     equal_i, NULL},
    {"PRelu", NULL, NULL, BINARY_SLOPE, prelu_f, prelu_i, NULL},
    {"Sum", NULL, NULL, 0, add_f, NULL, NULL},
    {"Mean", NULL, NULL, BINARY_MEAN, mean_f, NULL, NULL},
    {"Max", NULL, NULL, 0, max_f, max_i, max_u},
    {"Min", NULL, NULL, 0, min_f, min_i, min_u},
    {NULL, NULL, NULL, 0, NULL, NULL, NULL},
};

/* Whether row applies to the node: its operator, and for a row chosen by
 * an attribute (BitShift's direction, Mod's fmod), that attribute's value
 * (an integer attribute compares as its decimal text). */
static int row_matches(const struct bnf_op_ctx *ctx, const struct basic_binary_op *row)
{
	const Onnx__AttributeProto *a;
	char have[32];
	size_t n;

	if (strcmp(row->op_type, ctx->node->op_type) != 0)
		return 0;
	if (!row->choice_attr)
		return 1;
	a = bnf_attr_find(ctx->node, row->choice_attr);
	if (!a)
		have[0] = '\0';
	else if (a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
		snprintf(have, sizeof(have), "%lld", (long long)a->i);
	else {
		n = a->s.len < sizeof(have) - 1 ? a->s.len : sizeof(have) - 1;
		if (n)
			memcpy(have, a->s.data, n);
		have[n] = '\0';
	}
	/* An absent attribute takes the row marked with the default. */
	if (!a)
		return row->choice[0] == '*';
	return strcmp(row->choice[0] == '*' ? row->choice + 1 : row->choice, have) == 0;
}

static const struct basic_binary_op *binary_find(const struct bnf_op_ctx *ctx)
{
	const struct basic_binary_op *const tables[] = {binary_ops, bnf_logic_binary_ops};
	const struct basic_binary_op *row;
	size_t t;

	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (row = tables[t]; row->op_type; row++)
			if (row_matches(ctx, row))
				return row;
	return NULL;
}

static int binary_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                         const union basic_lane_buf *in)
{
	const struct basic_binary_op *op = m->params;
	int64_t (*fi)(int64_t a, int64_t b);
	size_t k;

	if (m->in_lane[0] == BASIC_LANE_F64) {
		for (k = 0; k < n; k++)
			out->f[k] = op->f(in[0].f[k], in[1].f[k]);
		return 0;
	}
	fi = op->u && m->in[0]->dtype == BASIC_UINT64 ? op->u : op->i;
	for (k = 0; k < n; k++) {
		if ((op->flags & BINARY_DIVISOR) && in[1].i[k] == 0)
			return -1;
		out->i[k] = fi(in[0].i[k], in[1].i[k]);
	}
	return 0;
}

/* Whether op accepts values of dtype (for Pow, the base's). */
static int binary_dtype_ok(const struct basic_binary_op *op, int dtype)
{
	if (op->flags & BINARY_BOOL_ONLY)
		return dtype == BASIC_BOOL;
	if (bnf_basic_is_float(dtype))
		return op->f != NULL;
	if ((op->flags & BINARY_UNSIGNED_ONLY) && !bnf_dtype_is_unsigned(dtype))
		return 0;
	if (bnf_basic_is_integer(dtype))
		return op->i || (op->flags & BINARY_MIXED_TYPES);
	return dtype == BASIC_BOOL && (op->flags & BINARY_ALLOW_BOOL);
}

static int check_dtypes(const struct bnf_op_ctx *ctx, const struct basic_binary_op *op)
{
	size_t k;

	for (k = 0; k < ctx->n_in; k++) {
		int dt = ctx->in[k]->dtype;
		if (!binary_dtype_ok(op, dt))
			return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
			                "input %zu has unsupported dtype %s", k,
			                bnf_dtype_name(dt));
		if (dt != ctx->in[0]->dtype && !(op->flags & BINARY_MIXED_TYPES))
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "input %zu has dtype %s, input 0 has %s", k,
			                bnf_dtype_name(dt), bnf_dtype_name(ctx->in[0]->dtype));
	}
	return BNF_OK;
}

/* Opset 1-6: with broadcast=1, B's shape lines up with A's from `axis`
 * (default: the trailing dimensions). Without it the shapes should be
 * equal; the caller also accepts B broadcast on the right, which is what
 * broadcast=1 without an axis would mean. */
static int legacy_view(const struct bnf_op_ctx *ctx, struct bnf_tensor *b)
{
	const struct bnf_tensor *a = ctx->in[0];
	int64_t broadcast, axis;
	int i;
	int rc = bnf_attr_int(ctx->node, "broadcast", 0, &broadcast, ctx->err);

	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "axis", a->rank - b->rank, &axis, ctx->err);
	if (rc != BNF_OK)
		return rc;
	if (!broadcast)
		return BNF_OK; /* checked for equal shapes by the caller */
	if (axis < 0 || b->rank > a->rank || axis > a->rank - b->rank)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "axis %lld does not fit B in A",
		                (long long)axis);
	for (i = b->rank - 1; i >= 0; i--)
		b->dims[i + axis] = b->dims[i];
	for (i = 0; i < a->rank; i++)
		if (i < axis || i >= axis + b->rank)
			b->dims[i] = 1;
	b->rank = a->rank;
	return BNF_OK;
}

/* The two operands as the map sees them (shallow views of the inputs) and
 * the output's shape in out_shape. */
static int binary_operands(const struct bnf_op_ctx *ctx, const struct basic_binary_op *op,
                           struct bnf_tensor *views, struct bnf_tensor *out_shape)
{
	const struct bnf_tensor *pair[2] = {&views[0], &views[1]};
	char sa[96], sb[96];
	int legacy = (op->flags & BINARY_LEGACY_BCAST) && ctx->opset < 7;
	int rc;

	views[0] = *ctx->in[0];
	views[1] = *ctx->in[1];
	if (legacy && (rc = legacy_view(ctx, &views[1])) != BNF_OK)
		return rc;
	*out_shape = views[0];
	if (bnf_basic_broadcast_shape(2, pair, &out_shape->rank, out_shape->dims) != 0)
		goto mismatch;
	/* The legacy form and PRelu broadcast only the second input. */
	if ((legacy || (op->flags & BINARY_SLOPE)) &&
	    (out_shape->rank != views[0].rank ||
	     memcmp(out_shape->dims, views[0].dims, sizeof(int64_t) * (size_t)views[0].rank)))
		goto mismatch;
	return BNF_OK;
mismatch:
	return bnf_fail(ctx->err, BNF_ERR_INPUT, "input shapes %s and %s do not broadcast",
	                bnf_basic_shape_str(ctx->in[0], sa, sizeof(sa)),
	                bnf_basic_shape_str(ctx->in[1], sb, sizeof(sb)));
}

static int binary_find_checked(const struct bnf_op_ctx *ctx, const struct basic_binary_op **op)
{
	*op = binary_find(ctx);
	if (!*op)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "not an elementwise operator");
	return BNF_OK;
}

int bnf_basic_binary_shape(struct bnf_op_ctx *ctx)
{
	const struct basic_binary_op *op;
	struct bnf_tensor views[2], shape;
	int rc;

	if ((rc = binary_find_checked(ctx, &op)) != BNF_OK ||
	    (rc = bnf_basic_check_arity(ctx, 2, 2, 1)) != BNF_OK ||
	    (rc = check_dtypes(ctx, op)) != BNF_OK ||
	    (rc = binary_operands(ctx, op, views, &shape)) != BNF_OK)
		return rc;
	return bnf_basic_new_output(
	    ctx, 0, op->flags & BINARY_BOOL_OUT ? BASIC_BOOL : ctx->in[0]->dtype, &shape);
}

/* Elements lo .. hi - 1 of one binary_f32_direct. */
struct binary_f32 {
	double (*f)(double, double);
	const float *x, *y;
	float *z;
};

static void binary_f32_range(void *arg, size_t lo, size_t hi)
{
	const struct binary_f32 *j = arg;
	const float *x = j->x, *y = j->y;
	float *z = j->z;
	size_t i;

	if (j->f == add_f)
		for (i = lo; i < hi; i++)
			z[i] = x[i] + y[i];
	else if (j->f == sub_f)
		for (i = lo; i < hi; i++)
			z[i] = x[i] - y[i];
	else if (j->f == mul_f)
		for (i = lo; i < hi; i++)
			z[i] = x[i] * y[i];
	else
		for (i = lo; i < hi; i++)
			z[i] = x[i] / y[i];
}

/* Add, Sub, Mul and Div of two float32 tensors of out's own shape, the
 * hot case of CNNs, straight in float: for these four operations float
 * arithmetic gives exactly the double result rounded once to float. Each
 * element is its own, so ranges run on any thread. Returns 0 when the
 * case does not apply. */
static int binary_f32_direct(int threads, const struct basic_binary_op *op,
                             const struct bnf_tensor *a, const struct bnf_tensor *b,
                             struct bnf_tensor *out)
{
	struct binary_f32 j = {op->f, a->data, b->data, out->data};
	size_t n = out->count;

	if (a->dtype != BASIC_FLOAT || b->dtype != BASIC_FLOAT || out->dtype != BASIC_FLOAT ||
	    a->count != n || b->count != n)
		return 0;
	if (op->f != add_f && op->f != sub_f && op->f != mul_f && op->f != div_f)
		return 0;
	bnf_parallel_for(threads, n, BNF_PARALLEL_MIN_WORK, binary_f32_range, &j);
	return 1;
}

static int run_binary(const struct bnf_op_ctx *ctx, const struct basic_binary_op *op,
                      const struct bnf_tensor *a, const struct bnf_tensor *b,
                      struct bnf_tensor *out)
{
	struct basic_map m = {0};
	/* Pow, and any op on floats, runs in double; integers stay exact. */
	enum basic_lane lane =
	    (op->flags & BINARY_MIXED_TYPES) ? BASIC_LANE_F64 : bnf_basic_natural_lane(a->dtype);

	m.n_in = 2;
	m.in[0] = a;
	m.in[1] = b;
	m.in_lane[0] = m.in_lane[1] = lane;
	m.out = out;
	m.out_lane = lane;
	m.kernel = binary_kernel;
	m.params = op;
	if (binary_f32_direct(ctx->threads, op, a, b, out))
		return BNF_OK;
	if (bnf_basic_map_run(&m) != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "integer division by zero");
	return BNF_OK;
}

/* Mean: the sum of the inputs divided by their count. */
static int mean_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                       const union basic_lane_buf *in)
{
	const double *count = m->params;
	size_t k;

	for (k = 0; k < n; k++)
		out->f[k] = in[0].f[k] / *count;
	return 0;
}

int bnf_basic_binary_compute(struct bnf_op_ctx *ctx)
{
	const struct basic_binary_op *op;
	struct bnf_tensor views[2], shape;
	int rc;

	if ((rc = binary_find_checked(ctx, &op)) != BNF_OK ||
	    (rc = binary_operands(ctx, op, views, &shape)) != BNF_OK)
		return rc;
	return run_binary(ctx, op, &views[0], &views[1], ctx->out[0]);
}

/* Sum, Max and Min take one or more inputs; numpy-style broadcasting since
 * opset 8 (equal shapes before, which broadcasting accepts as well). */
int bnf_basic_variadic_shape(struct bnf_op_ctx *ctx)
{
	const struct basic_binary_op *op;
	struct bnf_tensor shape;
	int rc;

	if ((rc = binary_find_checked(ctx, &op)) != BNF_OK ||
	    (rc = bnf_basic_check_arity(ctx, ctx->n_in > 0 ? ctx->n_in : 1, SIZE_MAX, 1)) !=
	        BNF_OK ||
	    (rc = check_dtypes(ctx, op)) != BNF_OK)
		return rc;
	shape = *ctx->in[0];
	if (bnf_basic_broadcast_shape(ctx->n_in, (const struct bnf_tensor *const *)ctx->in,
	                              &shape.rank, shape.dims) != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "input shapes do not broadcast");
	return bnf_basic_new_output(ctx, 0, ctx->in[0]->dtype, &shape);
}

/* out = in[0] broadcast, then out = op(out, in[k]) for each further input,
 * in input order. */
int bnf_basic_variadic_compute(struct bnf_op_ctx *ctx)
{
	const struct basic_binary_op *op;
	size_t k;
	int rc;

	if ((rc = binary_find_checked(ctx, &op)) != BNF_OK)
		return rc;
	bnf_basic_convert(ctx->in[0], ctx->out[0]);
	for (k = 1; k < ctx->n_in; k++)
		if ((rc = run_binary(ctx, op, ctx->out[0], ctx->in[k], ctx->out[0])) != BNF_OK)
			return rc;
	if (op->flags & BINARY_MEAN) {
		/* The sum is stored rounded to the output's type, then divided:
		 * onnxruntime's order for float32 and float16. */
		double count = (double)ctx->n_in;
		struct basic_map m = {0};
		m.n_in = 1;
		m.in[0] = ctx->out[0];
		m.in_lane[0] = m.out_lane = BASIC_LANE_F64;
		m.out = ctx->out[0];
		m.kernel = mean_kernel;
		m.params = &count;
		bnf_basic_map_run(&m);
	}
	return BNF_OK;
}

/* Where(condition, X, Y), opset 9: all three broadcast together. */
static int where_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                        const union basic_lane_buf *in)
{
	size_t k;

	(void)m;
	for (k = 0; k < n; k++)
		out->i[k] = in[0].i[k] ? in[1].i[k] : in[2].i[k]; /* copies either lane */
	return 0;
}

int bnf_basic_where_shape(struct bnf_op_ctx *ctx)
{
	struct bnf_tensor shape;
	int rc;

	if ((rc = bnf_basic_check_arity(ctx, 3, 3, 1)) != BNF_OK)
		return rc;
	if (ctx->in[0]->dtype != BASIC_BOOL)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "condition has dtype %s, not bool",
		                bnf_dtype_name(ctx->in[0]->dtype));
	if (ctx->in[1]->dtype != ctx->in[2]->dtype)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X has dtype %s but Y has %s",
		                bnf_dtype_name(ctx->in[1]->dtype),
		                bnf_dtype_name(ctx->in[2]->dtype));
	shape = *ctx->in[1];
	if (bnf_basic_broadcast_shape(3, (const struct bnf_tensor *const *)ctx->in, &shape.rank,
	                              shape.dims) != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "input shapes do not broadcast");
	return bnf_basic_new_output(ctx, 0, ctx->in[1]->dtype, &shape);
}

int bnf_basic_where_compute(struct bnf_op_ctx *ctx)
{
	struct basic_map m = {0};
	enum basic_lane lane = bnf_basic_natural_lane(ctx->in[1]->dtype);

	m.n_in = 3;
	memcpy(m.in, ctx->in, 3 * sizeof(m.in[0]));
	m.in_lane[0] = BASIC_LANE_I64;
	m.in_lane[1] = m.in_lane[2] = m.out_lane = lane;
	m.out = ctx->out[0];
	m.kernel = where_kernel;
	bnf_basic_map_run(&m);
	return BNF_OK;
}
