/*
 * The Reduce* operators (Mean, Sum, SumSquare, Max, Min, Prod, L1, L2,
 * LogSum, LogSumExp): one table of how each folds its elements. Floating
 * inputs are accumulated in double and rounded once to the output's type;
 * integer inputs in 64-bit integers (sums wrap as the narrower type
 * would). The axes come from the attribute, or from input 1 once the
 * opset moved them.
 */
#include "eval/shape_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How each operator folds its elements: start value, step and finish, in
 * double for floating inputs and in 64-bit integers for integer ones (whose
 * L2, LogSum and LogSumExp go through double and are truncated). */
enum reduce_fold {
	REDUCE_FOLD_SUM,    /* v */
	REDUCE_FOLD_SQUARE, /* v * v */
	REDUCE_FOLD_ABS,    /* |v| */
	REDUCE_FOLD_EXP,    /* exp(v - max), after a pass for the max */
	REDUCE_FOLD_PROD,
	REDUCE_FOLD_MAX,
	REDUCE_FOLD_MIN,
};

enum reduce_finish {
	REDUCE_FINISH_NONE,
	REDUCE_FINISH_MEAN, /* divide by the count */
	REDUCE_FINISH_SQRT,
	REDUCE_FINISH_LOG,
	REDUCE_FINISH_LOG_MAX, /* log, plus the max taken out first */
};

struct reduce_op {
	const char *op_type;
	enum reduce_fold fold;
	enum reduce_finish finish;
	int axes_input_from; /* opset from which axes is input 1 */
};

/* ReduceSum took its axes as input 1 from opset 13, the others from 18,
 * which also brought them noop_with_empty_axes. */
static const struct reduce_op reduce_ops[] = {
    {"ReduceMean", REDUCE_FOLD_SUM, REDUCE_FINISH_MEAN, 18},
    {"ReduceSum", REDUCE_FOLD_SUM, REDUCE_FINISH_NONE, 13},
    {"ReduceSumSquare", REDUCE_FOLD_SQUARE, REDUCE_FINISH_NONE, 18},
    {"ReduceMax", REDUCE_FOLD_MAX, REDUCE_FINISH_NONE, 18},
    {"ReduceMin", REDUCE_FOLD_MIN, REDUCE_FINISH_NONE, 18},
    {"ReduceProd", REDUCE_FOLD_PROD, REDUCE_FINISH_NONE, 18},
    {"ReduceL1", REDUCE_FOLD_ABS, REDUCE_FINISH_NONE, 18},
    {"ReduceL2", REDUCE_FOLD_SQUARE, REDUCE_FINISH_SQRT, 18},
    {"ReduceLogSum", REDUCE_FOLD_SUM, REDUCE_FINISH_LOG, 18},
    {"ReduceLogSumExp", REDUCE_FOLD_EXP, REDUCE_FINISH_LOG_MAX, 18},
};

struct reduce_plan {
	const struct reduce_op *op;
	unsigned mask; /* bit a set: axis a is reduced */
	int rank;      /* output rank */
	int64_t dims[BNF_MAX_RANK];
};

static const struct reduce_op *reduce_find(const char *op_type)
{
	size_t k;

	for (k = 0; k < sizeof(reduce_ops) / sizeof(reduce_ops[0]); k++)
		if (strcmp(reduce_ops[k].op_type, op_type) == 0)
			return &reduce_ops[k];
	return NULL;
}

static int reduce_plan(const struct bnf_op_ctx *ctx, struct reduce_plan *p)
{
	const struct bnf_tensor *x;
	int64_t axes[BNF_MAX_RANK], keepdims, noop = 0;
	size_t n, i;
	int present, a = 0, from;

	p->op = reduce_find(ctx->node->op_type);
	if (!p->op)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "not a reduction");
	from = p->op->axes_input_from;
	if (bnf_shp_check_io(ctx, 1, ctx->opset < from ? 1 : 2) != BNF_OK ||
	    bnf_shp_ints_arg(ctx, "axes", from, 1, axes, BNF_MAX_RANK, &n, &present) != BNF_OK ||
	    bnf_attr_int(ctx->node, "keepdims", 1, &keepdims, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (ctx->opset >= from &&
	    bnf_attr_int(ctx->node, "noop_with_empty_axes", 0, &noop, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_shp_is_float(x->dtype) && !bnf_dtype_is_integer(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	/* A repeated axis is harmless here, and onnxruntime accepts it. */
	p->mask = 0;
	for (i = 0; i < n; i++) {
		if (bnf_shp_axis(ctx, axes[i], x->rank, "axes", &a) != BNF_OK)
			return ctx->err->status;
		p->mask |= 1u << a;
	}
	/* No axes reduces everything, unless noop_with_empty_axes asks for
	 * none: each output element then comes from one input element. */
	if (n == 0 && !noop)
		p->mask = (1u << x->rank) - 1;
	p->rank = 0;
	for (a = 0; a < x->rank; a++) {
		if (!((p->mask >> a) & 1))
			p->dims[p->rank++] = x->dims[a];
		else if (keepdims)
			p->dims[p->rank++] = 1;
	}
	return BNF_OK;
}

int bnf_shp_reduce_shape(struct bnf_op_ctx *ctx)
{
	struct reduce_plan p;

	if (reduce_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, p.rank, p.dims);
}

/* The value a reduction over no element gives (opset 18 spells them out):
 * the fold's identity, passed through the finish. */
static double empty_value(const struct reduce_op *op)
{
	switch (op->fold) {
	case REDUCE_FOLD_PROD:
		return 1.0;
	case REDUCE_FOLD_MAX:
		return -INFINITY;
	case REDUCE_FOLD_MIN:
		return INFINITY;
	default:
		return op->finish == REDUCE_FINISH_MEAN ? NAN
		       : op->finish == REDUCE_FINISH_LOG || op->finish == REDUCE_FINISH_LOG_MAX
		           ? -INFINITY
		           : 0.0;
	}
}

static double fold_double(enum reduce_fold fold, double acc, double v, double shift)
{
	switch (fold) {
	case REDUCE_FOLD_SUM:
		return acc + v;
	case REDUCE_FOLD_SQUARE:
		return acc + v * v;
	case REDUCE_FOLD_ABS:
		return acc + fabs(v);
	case REDUCE_FOLD_EXP:
		return acc + exp(v - shift);
	case REDUCE_FOLD_PROD:
		return acc * v;
	case REDUCE_FOLD_MAX:
		return (isnan(v) || v > acc) ? v : acc;
	default: /* MIN */
		return (isnan(v) || v < acc) ? v : acc;
	}
}

/* Integer folds wrap as arithmetic in the type would (unsigned
 * arithmetic: overflow is no undefined behaviour); uint64 compares as
 * unsigned. */
static int64_t fold_int(enum reduce_fold fold, int64_t acc, int64_t v, int is_u64)
{
	uint64_t a = (uint64_t)acc, u = (uint64_t)v;
	int greater = is_u64 ? u > a : v > acc;

	switch (fold) {
	case REDUCE_FOLD_SUM:
		return (int64_t)(a + u);
	case REDUCE_FOLD_SQUARE:
		return (int64_t)(a + u * u);
	case REDUCE_FOLD_ABS:
		return (int64_t)(a + (v < 0 && !is_u64 ? 0 - u : u));
	case REDUCE_FOLD_PROD:
		return (int64_t)(a * u);
	case REDUCE_FOLD_MAX:
		return greater ? v : acc;
	default: /* MIN */
		return !greater && v != acc ? v : acc;
	}
}

static int64_t int_start(enum reduce_fold fold, int is_u64)
{
	switch (fold) {
	case REDUCE_FOLD_PROD:
		return 1;
	case REDUCE_FOLD_MAX:
		return is_u64 ? 0 : INT64_MIN;
	case REDUCE_FOLD_MIN:
		return is_u64 ? -1 : INT64_MAX;
	default:
		return 0;
	}
}

/* Visit every element of x with the offset of its output element (the
 * output's strides on kept axes, 0 on reduced ones). */
struct reduce_walk {
	const struct bnf_tensor *x;
	int64_t xs_out[BNF_MAX_RANK];
};

static void walk_init(struct reduce_walk *w, const struct bnf_tensor *x, unsigned mask)
{
	int64_t full[BNF_MAX_RANK];
	int a;

	w->x = x;
	for (a = 0; a < x->rank; a++)
		full[a] = ((mask >> a) & 1) ? 1 : x->dims[a];
	bnf_shp_strides(x->rank, full, w->xs_out);
	for (a = 0; a < x->rank; a++)
		if ((mask >> a) & 1)
			w->xs_out[a] = 0;
}

/* One pass of fold over x into acc (double) or iacc (integer); shift is
 * the per-output max taken out of LogSumExp's exponentials. */
static void reduce_pass(const struct reduce_walk *w, enum reduce_fold fold, double *acc,
                        int64_t *iacc, const double *shift)
{
	const struct bnf_tensor *x = w->x;
	int64_t pos[BNF_MAX_RANK] = {0}, off = 0;
	int is_u64 = x->dtype == DT(UINT64);
	size_t i;
	int a;

	for (i = 0; i < x->count; i++) {
		if (acc)
			acc[off] = fold_double(fold, acc[off], bnf_shp_get(x, i),
			                       shift ? shift[off] : 0.0);
		else
			iacc[off] = fold_int(fold, iacc[off], bnf_shp_get_int(x, i), is_u64);
		for (a = x->rank - 1; a >= 0; a--) {
			off += w->xs_out[a];
			if (++pos[a] < x->dims[a])
				break;
			off -= w->xs_out[a] * x->dims[a];
			pos[a] = 0;
		}
	}
}

static double finish(const struct reduce_op *op, double v, size_t count, double shift)
{
	switch (op->finish) {
	case REDUCE_FINISH_MEAN:
		return v / (double)count;
	case REDUCE_FINISH_SQRT:
		return sqrt(v);
	case REDUCE_FINISH_LOG:
		return log(v);
	case REDUCE_FINISH_LOG_MAX:
		return log(v) + shift;
	default:
		return v;
	}
}

/* Integer inputs: exact folds stay integers (Mean divides with
 * truncation); the others are computed in double from the exact sum. */
static int reduce_ints(const struct reduce_plan *p, const struct reduce_walk *w,
                       struct bnf_tensor *y, size_t per_out)
{
	const struct reduce_op *op = p->op;
	int is_u64 = w->x->dtype == DT(UINT64);
	int64_t *iacc = malloc(y->count * sizeof(*iacc));
	double *dacc = NULL, *shift = NULL;
	size_t i;

	if (!iacc)
		return -1;
	if (op->fold == REDUCE_FOLD_EXP) {
		/* exp has no integer form: max first, then the shifted sum. */
		dacc = malloc(y->count * sizeof(*dacc));
		shift = malloc(y->count * sizeof(*shift));
		if (!dacc || !shift) {
			free(iacc);
			free(dacc);
			free(shift);
			return -1;
		}
		for (i = 0; i < y->count; i++) {
			shift[i] = -INFINITY;
			dacc[i] = 0.0;
		}
		reduce_pass(w, REDUCE_FOLD_MAX, shift, NULL, NULL);
		reduce_pass(w, REDUCE_FOLD_EXP, dacc, NULL, shift);
		for (i = 0; i < y->count; i++)
			bnf_shp_set(y, i, finish(op, dacc[i], per_out, shift[i]));
		free(iacc);
		free(dacc);
		free(shift);
		return 0;
	}
	for (i = 0; i < y->count; i++)
		iacc[i] = int_start(op->fold, is_u64);
	reduce_pass(w, op->fold, NULL, iacc, NULL);
	for (i = 0; i < y->count; i++) {
		double v = is_u64 ? (double)(uint64_t)iacc[i] : (double)iacc[i];
		if (op->finish == REDUCE_FINISH_NONE)
			bnf_tensor_set_int(y, i, iacc[i]);
		else if (op->finish == REDUCE_FINISH_MEAN)
			bnf_tensor_set_int(y, i,
			                   is_u64 ? (int64_t)((uint64_t)iacc[i] / per_out)
			                          : iacc[i] / (int64_t)per_out);
		else
			bnf_shp_set(y, i, finish(op, v, per_out, 0.0));
	}
	free(iacc);
	return 0;
}

static int reduce_floats(const struct reduce_plan *p, const struct reduce_walk *w,
                         struct bnf_tensor *y, size_t per_out)
{
	const struct reduce_op *op = p->op;
	double *acc = malloc(y->count * sizeof(*acc)), *shift = NULL;
	size_t i;

	if (!acc)
		return -1;
	if (op->fold == REDUCE_FOLD_EXP) {
		shift = malloc(y->count * sizeof(*shift));
		if (!shift) {
			free(acc);
			return -1;
		}
		for (i = 0; i < y->count; i++)
			shift[i] = -INFINITY;
		reduce_pass(w, REDUCE_FOLD_MAX, shift, NULL, NULL);
		/* An infinite or NaN max would turn the shift into NaN. */
		for (i = 0; i < y->count; i++)
			if (!isfinite(shift[i]))
				shift[i] = 0.0;
	}
	for (i = 0; i < y->count; i++)
		acc[i] = op->fold == REDUCE_FOLD_MAX    ? -INFINITY
		         : op->fold == REDUCE_FOLD_MIN  ? INFINITY
		         : op->fold == REDUCE_FOLD_PROD ? 1.0
		                                        : 0.0;
	reduce_pass(w, op->fold, acc, NULL, shift);
	for (i = 0; i < y->count; i++)
		bnf_shp_set(y, i,
		            per_out ? finish(op, acc[i], per_out, shift ? shift[i] : 0.0)
		                    : empty_value(op));
	free(acc);
	free(shift);
	return 0;
}

int bnf_shp_reduce_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct reduce_plan p;
	struct reduce_walk w;
	size_t per_out;
	int rc;

	if (!y)
		return BNF_OK;
	if (reduce_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (y->count == 0)
		return BNF_OK;
	per_out = x->count / y->count;
	/* Integers have no infinity or NaN to stand for these. */
	if (per_out == 0 && !bnf_shp_is_float(x->dtype) &&
	    (p.op->fold == REDUCE_FOLD_MAX || p.op->fold == REDUCE_FOLD_MIN ||
	     p.op->finish != REDUCE_FINISH_NONE))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "cannot reduce an empty axis");
	walk_init(&w, x, p.mask);
	rc = bnf_shp_is_float(x->dtype) ? reduce_floats(&p, &w, y, per_out)
	                                : reduce_ints(&p, &w, y, per_out);
	if (rc != 0)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	return BNF_OK;
}

/* ArgMax and ArgMin: the index of the first (or, with select_last_index
 * from opset 12, the last) extreme element along axis; NaN counts as the
 * extreme, as in numpy. The output is int64. */
struct arg_plan {
	int axis;
	int keepdims, last;
	int rank;
	int64_t dims[BNF_MAX_RANK];
};

static int arg_plan(const struct bnf_op_ctx *ctx, struct arg_plan *p)
{
	const struct bnf_tensor *x;
	int64_t axis, keepdims, last = 0;
	int a;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", 0, &axis, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "keepdims", 1, &keepdims, ctx->err) != BNF_OK ||
	    (ctx->opset >= 12 &&
	     bnf_attr_int(ctx->node, "select_last_index", 0, &last, ctx->err) != BNF_OK))
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_shp_is_float(x->dtype) && !bnf_dtype_is_integer(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(x->dtype));
	if (bnf_shp_axis(ctx, axis, x->rank, "axis", &p->axis) != BNF_OK)
		return ctx->err->status;
	if (x->dims[p->axis] == 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "axis %d is empty", p->axis);
	p->keepdims = keepdims != 0;
	p->last = last != 0;
	p->rank = 0;
	for (a = 0; a < x->rank; a++) {
		if (a != p->axis)
			p->dims[p->rank++] = x->dims[a];
		else if (keepdims)
			p->dims[p->rank++] = 1;
	}
	return BNF_OK;
}

int bnf_shp_arg_shape(struct bnf_op_ctx *ctx)
{
	struct arg_plan p;

	if (arg_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, DT(INT64), p.rank, p.dims);
}

/* Whether v beats the best so far: strictly, or also on a tie when the
 * last index is wanted. */
static int arg_better(double v, double best, int want_max, int last)
{
	if (isnan(best))
		return 0;
	if (isnan(v))
		return 1;
	if (v == best)
		return last;
	return want_max ? v > best : v < best;
}

static int arg_better_int(int64_t v, int64_t best, int want_max, int last, int is_u64)
{
	int above = is_u64 ? (uint64_t)v > (uint64_t)best : v > best;

	if (v == best)
		return last;
	return want_max ? above : !above;
}

int bnf_shp_arg_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct bnf_tensor *y = ctx->out[0];
	struct arg_plan p;
	int64_t outer = 1, inner = 1, n, o, in, k, best_k;
	int want_max = strcmp(ctx->node->op_type, "ArgMax") == 0;
	int is_float = bnf_shp_is_float(x->dtype), is_u64 = x->dtype == DT(UINT64);
	int a;

	if (!y)
		return BNF_OK;
	if (arg_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	for (a = 0; a < p.axis; a++)
		outer *= x->dims[a];
	for (a = p.axis + 1; a < x->rank; a++)
		inner *= x->dims[a];
	n = x->dims[p.axis];
	for (o = 0; o < outer; o++) {
		for (in = 0; in < inner; in++) {
			size_t base = (size_t)(o * n * inner + in);
			best_k = 0;
			for (k = 1; k < n; k++) {
				size_t i = base + (size_t)(k * inner),
				       b = base + (size_t)(best_k * inner);
				int better = is_float
				                 ? arg_better(bnf_shp_get(x, i), bnf_shp_get(x, b),
				                              want_max, p.last)
				                 : arg_better_int(bnf_shp_get_int(x, i),
				                                  bnf_shp_get_int(x, b), want_max,
				                                  p.last, is_u64);
				if (better)
					best_k = k;
			}
			((int64_t *)y->data)[o * inner + in] = best_k;
		}
	}
	return BNF_OK;
}
