/*
 * Elementwise functions of one input: the math functions, the activations
 * and Clip. One table row per operator names its scalar function, its
 * integer form where the spec allows integers, and its attributes with the
 * spec's defaults; one kernel runs them all (and the rows of math_unary.c)
 * through the shared map.
 */
#include "eval/basic_ops.h"
#include "eval/parallel.h"

#include <float.h>
#include <math.h>
#include <string.h>

static double sqrt_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return sqrt(x);
}
static double exp_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return exp(x);
}
static double log_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return log(x);
}
static double abs_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return fabs(x);
}
static double neg_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return -x;
}
static double recip_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return 1.0 / x;
}
static double erf_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return erf(x);
}
static double tanh_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return tanh(x);
}
/* NaN stays NaN in Relu and the activations below, as in the reference. */
static double relu_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return x < 0 ? 0 : x;
}

static double leaky_relu_f(double x, const struct basic_unary_params *p)
{
	return x < 0 ? p->alpha * x : x;
}

static double elu_f(double x, const struct basic_unary_params *p)
{
	return x < 0 ? p->alpha * (exp(x) - 1.0) : x;
}

static double selu_f(double x, const struct basic_unary_params *p)
{
	return x > 0 ? p->gamma * x : p->gamma * (p->alpha * exp(x) - p->alpha);
}

static double sigmoid_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return 1.0 / (1.0 + exp(-x));
}

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

static double hard_sigmoid_f(double x, const struct basic_unary_params *p)
{
	return clamp01(p->alpha * x + p->beta);
}

/* HardSwish (opset 14) is x * HardSigmoid(x) with alpha 1/6, beta 0.5. */
static double hard_swish_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return x * clamp01(x / 6.0 + 0.5);
}

/* log(1 + e^x), written so that neither branch overflows. */
static double softplus_f(double x, const struct basic_unary_params *p)
{
	(void)p;
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double mish_f(double x, const struct basic_unary_params *p)
{
	return x * tanh(softplus_f(x, p));
}

/* As numpy.clip: max first, then min, so max wins when min > max. */
static double clip_f(double x, const struct basic_unary_params *p)
{
	double y = x < p->lo ? p->lo : x;
	return y > p->hi ? p->hi : y;
}

static int64_t abs_i(int64_t x, const struct basic_unary_params *p)
{
	return x < 0 && !p->is_u64 ? (int64_t)(0 - (uint64_t)x) : x;
}

static int64_t neg_i(int64_t x, const struct basic_unary_params *p)
{
	(void)p;
	return (int64_t)(0 - (uint64_t)x);
}

static int64_t relu_i(int64_t x, const struct basic_unary_params *p)
{
	(void)p;
	return x < 0 ? 0 : x;
}

static int64_t clip_i(int64_t x, const struct basic_unary_params *p)
{
	int64_t y;
	uint64_t u;

	if (p->is_u64) {
		u = (uint64_t)x < (uint64_t)p->lo_i ? (uint64_t)p->lo_i : (uint64_t)x;
		return (int64_t)(u > (uint64_t)p->hi_i ? (uint64_t)p->hi_i : u);
	}
	y = x < p->lo_i ? p->lo_i : x;
	return y > p->hi_i ? p->hi_i : y;
}

/* Selu's defaults are the float32 values of the constants in its paper. */
static const struct basic_unary_op unary_ops[] = {
    {"Sqrt", sqrt_f, NULL, {NULL}, {0}, 0},
    {"Exp", exp_f, NULL, {NULL}, {0}, 0},
    {"Log", log_f, NULL, {NULL}, {0}, 0},
    {"Abs", abs_f, abs_i, {NULL}, {0}, 0},
    {"Neg", neg_f, neg_i, {NULL}, {0}, 0},
    {"Reciprocal", recip_f, NULL, {NULL}, {0}, 0},
    {"Erf", erf_f, NULL, {NULL}, {0}, 0},
    {"Tanh", tanh_f, NULL, {NULL}, {0}, 0},
    {"Relu", relu_f, relu_i, {NULL}, {0}, 0},
    {"LeakyRelu", leaky_relu_f, NULL, {"alpha"}, {0.01f}, 0},
    {"Elu", elu_f, NULL, {"alpha"}, {1.0f}, 0},
    {"Selu",
     selu_f,
     NULL,
     {"alpha", NULL, "gamma"},
     {1.67326319217681884765625f, 0, 1.05070102214813232421875f},
     0},
    {"Sigmoid", sigmoid_f, NULL, {NULL}, {0}, 0},
    {"HardSigmoid", hard_sigmoid_f, NULL, {"alpha", "beta"}, {0.2f, 0.5f}, 0},
    {"HardSwish", hard_swish_f, NULL, {NULL}, {0}, 0},
    {"Softplus", softplus_f, NULL, {NULL}, {0}, 0},
    {"Mish", mish_f, NULL, {NULL}, {0}, 0},
    {"Clip", clip_f, clip_i, {NULL}, {0}, 0},
    {NULL, NULL, NULL, {NULL}, {0}, 0},
};

static const struct basic_unary_op *unary_find(const struct bnf_op_ctx *ctx)
{
	const struct basic_unary_op *const tables[] = {unary_ops, bnf_math_unary_ops};
	const struct basic_unary_op *row;
	size_t t;

	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (row = tables[t]; row->op_type; row++)
			if (strcmp(row->op_type, ctx->node->op_type) == 0)
				return row;
	return NULL;
}

/* The extremes of an integer dtype, Clip's bounds when one is omitted. */
static void int_range(int dtype, int64_t *lo, int64_t *hi)
{
	switch (dtype) {
	case BASIC_INT32:
		*lo = INT32_MIN;
		*hi = INT32_MAX;
		break;
	case BASIC_INT8:
		*lo = INT8_MIN;
		*hi = INT8_MAX;
		break;
	case BASIC_UINT8:
		*lo = 0;
		*hi = UINT8_MAX;
		break;
	case BASIC_INT16:
		*lo = INT16_MIN;
		*hi = INT16_MAX;
		break;
	case BASIC_UINT16:
		*lo = 0;
		*hi = UINT16_MAX;
		break;
	case BASIC_UINT32:
		*lo = 0;
		*hi = UINT32_MAX;
		break;
	case BASIC_UINT64:
		*lo = 0;
		*hi = -1; /* the bit pattern of UINT64_MAX */
		break;
	default:
		*lo = INT64_MIN;
		*hi = INT64_MAX;
		break;
	}
}

/* Clip's bounds: attributes min and max before opset 11 (defaulting to the
 * float range), optional scalar inputs from opset 11 on. */
static int clip_bounds(const struct bnf_op_ctx *ctx, struct basic_unary_params *p)
{
	union basic_lane_buf v;
	float lo, hi;
	size_t k;
	int rc;

	int_range(ctx->in[0]->dtype, &p->lo_i, &p->hi_i);
	p->lo = -INFINITY;
	p->hi = INFINITY;
	if (ctx->opset < 11) {
		if ((rc = bnf_attr_float(ctx->node, "min", -FLT_MAX, &lo, ctx->err)) != BNF_OK ||
		    (rc = bnf_attr_float(ctx->node, "max", FLT_MAX, &hi, ctx->err)) != BNF_OK)
			return rc;
		p->lo = lo;
		p->hi = hi;
		return BNF_OK;
	}
	for (k = 1; k < ctx->n_in && k < 3; k++) {
		const struct bnf_tensor *b = ctx->in[k];
		if (!b)
			continue;
		if (b->count != 1 || b->dtype != ctx->in[0]->dtype)
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "%s must be a single %s value",
			                k == 1 ? "min" : "max", bnf_dtype_name(ctx->in[0]->dtype));
		if (bnf_basic_natural_lane(b->dtype) == BASIC_LANE_F64) {
			bnf_basic_load(b, BASIC_LANE_F64, 0, 1, 1, &v);
			*(k == 1 ? &p->lo : &p->hi) = v.f[0];
		} else {
			bnf_basic_load(b, BASIC_LANE_I64, 0, 1, 1, &v);
			*(k == 1 ? &p->lo_i : &p->hi_i) = v.i[0];
		}
	}
	return BNF_OK;
}

static int unary_params_read(const struct bnf_op_ctx *ctx, const struct basic_unary_op *op,
                             struct basic_unary_params *p)
{
	double *slot[3] = {&p->alpha, &p->beta, &p->gamma};
	int64_t n;
	float v;
	int k, rc;

	memset(p, 0, sizeof(*p));
	p->is_u64 = ctx->in[0]->dtype == BASIC_UINT64;
	for (k = 0; k < 3; k++) {
		if (!op->attr[k])
			continue;
		if (op->flags & UNARY_INT_ATTRS) {
			rc =
			    bnf_attr_int(ctx->node, op->attr[k], (int64_t)op->def[k], &n, ctx->err);
			*slot[k] = (double)n;
		} else {
			rc = bnf_attr_float(ctx->node, op->attr[k], op->def[k], &v, ctx->err);
			*slot[k] = v;
		}
		if (rc != BNF_OK)
			return rc;
	}
	return op->f == clip_f ? clip_bounds(ctx, p) : BNF_OK;
}

int bnf_basic_unary_shape(struct bnf_op_ctx *ctx)
{
	const struct basic_unary_op *op = unary_find(ctx);
	struct basic_unary_params p;
	int dt, rc;

	if (!op)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "not a unary operator");
	/* Clip from opset 11 has the optional inputs min and max. */
	rc = bnf_basic_check_arity(ctx, 1, op->f == clip_f && ctx->opset >= 11 ? 3 : 1, 1);
	if (rc != BNF_OK)
		return rc;
	dt = ctx->in[0]->dtype;
	if ((op->flags & UNARY_BOOL_ONLY)
	        ? dt != BASIC_BOOL
	        : !(op->f && bnf_basic_is_float(dt)) && !(op->i && bnf_basic_is_integer(dt)))
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "input has unsupported dtype %s",
		                bnf_dtype_name(dt));
	if ((rc = unary_params_read(ctx, op, &p)) != BNF_OK)
		return rc;
	return bnf_basic_new_output(ctx, 0, (op->flags & UNARY_BOOL_OUT) ? BASIC_BOOL : dt,
	                            ctx->in[0]);
}

struct unary_job {
	const struct basic_unary_op *op;
	struct basic_unary_params p;
};

static int unary_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                        const union basic_lane_buf *in)
{
	const struct unary_job *job = m->params;
	size_t k;

	if (m->in_lane[0] == BASIC_LANE_F64) {
		for (k = 0; k < n; k++)
			out->f[k] = job->op->f(in->f[k], &job->p);
	} else {
		for (k = 0; k < n; k++)
			out->i[k] = job->op->i(in->i[k], &job->p);
	}
	return 0;
}

/* Relu on float32, the hot case of CNNs, without the double lanes (the
 * same values: max(x, 0) is exact). Four at a time (the baseline SSE2
 * vector) with a compare and a mask: a branch per element mispredicts on
 * every other sign, which cost ResNet-50 a tenth of its run. x < 0 is
 * false for -0 and NaN, which stay as they are, as with the branch. x and
 * y may be the same array. */
typedef float relu_vec __attribute__((vector_size(16)));
typedef int32_t relu_mask __attribute__((vector_size(16)));

static void relu_f32(const float *x, float *y, size_t n)
{
	size_t i;

	for (i = 0; i + 4 <= n; i += 4) {
		relu_vec v;
		relu_mask bits, neg;
		memcpy(&v, x + i, sizeof(v));
		neg = v < 0;
		memcpy(&bits, &v, sizeof(bits));
		bits &= ~neg;
		memcpy(y + i, &bits, sizeof(bits));
	}
	for (; i < n; i++)
		y[i] = x[i] < 0 ? 0 : x[i];
}

/* relu_f32 over elements lo .. hi - 1 of ctx's input and output. */
static void relu_f32_range(void *arg, size_t lo, size_t hi)
{
	const struct bnf_op_ctx *ctx = arg;

	relu_f32((const float *)ctx->in[0]->data + lo, (float *)ctx->out[0]->data + lo, hi - lo);
}

int bnf_basic_unary_compute(struct bnf_op_ctx *ctx)
{
	struct unary_job job;
	struct basic_map m = {0};
	int rc;

	job.op = unary_find(ctx);
	if (!job.op)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "not a unary operator");
	if ((rc = unary_params_read(ctx, job.op, &job.p)) != BNF_OK)
		return rc;
	m.n_in = 1;
	m.in[0] = ctx->in[0];
	m.in_lane[0] = m.out_lane = bnf_basic_natural_lane(ctx->in[0]->dtype);
	m.out = ctx->out[0];
	m.kernel = unary_kernel;
	m.params = &job;
	if (job.op->f == relu_f && ctx->in[0]->dtype == BASIC_FLOAT &&
	    ctx->out[0]->dtype == BASIC_FLOAT)
		bnf_parallel_for(ctx->threads, ctx->out[0]->count, BNF_PARALLEL_MIN_WORK,
		                 relu_f32_range, ctx);
	else
		bnf_basic_map_run(&m);
	return BNF_OK;
}
