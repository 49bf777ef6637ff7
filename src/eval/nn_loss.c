/*
 * NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opsets 12, 13):
 * deterministic functions of their inputs, so an eval-mode check of a
 * graph that computes them (an exported training step, a scored
 * evaluation) can run them. The cross entropy is the NLL of the log of
 * the softmax over axis 1. Summed in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/shape_common.h"

enum loss_reduction {
	LOSS_REDUCTION_NONE,
	LOSS_REDUCTION_SUM,
	LOSS_REDUCTION_MEAN,
};

struct loss_plan {
	enum loss_reduction reduction;
	int has_ignore;
	int64_t ignore;
	int64_t n, c, inner; /* input [n, c, inner...] */
};

static int loss_plan(const struct bnf_op_ctx *ctx, const struct bnf_tensor *x,
                     const struct bnf_tensor *target, const struct bnf_tensor *weight,
                     struct loss_plan *p)
{
	char red[8];
	int a;

	memset(p, 0, sizeof(*p));
	if (bnf_attr_string(ctx->node, "reduction", "mean", red, sizeof(red), ctx->err) != BNF_OK)
		return ctx->err->status;
	if (strcmp(red, "none") == 0)
		p->reduction = LOSS_REDUCTION_NONE;
	else if (strcmp(red, "sum") == 0)
		p->reduction = LOSS_REDUCTION_SUM;
	else if (strcmp(red, "mean") == 0)
		p->reduction = LOSS_REDUCTION_MEAN;
	else
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown reduction '%s'", red);
	p->has_ignore = bnf_attr_find(ctx->node, "ignore_index") != NULL;
	if (bnf_attr_int(ctx->node, "ignore_index", 0, &p->ignore, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (!bnf_nn_is_real(x->dtype) || x->rank < 2 || target->rank != x->rank - 1 ||
	    !bnf_dtype_is_integer(target->dtype))
		return bnf_shp_fail(
		    ctx, BNF_ERR_INPUT,
		    "input must be floating [N, C, ...] and target integer [N, ...]");
	p->n = x->dims[0];
	p->c = x->dims[1];
	p->inner = 1;
	for (a = 2; a < x->rank; a++) {
		if (target->dims[a - 1] != x->dims[a])
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "target's dim %d differs", a - 1);
		p->inner *= x->dims[a];
	}
	if (target->dims[0] != p->n)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "target's batch differs");
	if (weight && (weight->rank != 1 || weight->dims[0] != p->c))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "weight must have C values");
	return BNF_OK;
}

/* The loss from log-probabilities logp (x, or x's log-softmax), into out
 * (target's shape for no reduction, a scalar otherwise). */
static int nll(const struct bnf_op_ctx *ctx, const struct loss_plan *p, const double *logp,
               const struct bnf_tensor *target, const struct bnf_tensor *weight,
               struct bnf_tensor *out)
{
	double sum = 0, wsum = 0;
	int64_t n, d;

	for (n = 0; n < p->n; n++) {
		for (d = 0; d < p->inner; d++) {
			size_t ti = (size_t)(n * p->inner + d);
			int64_t cls = bnf_shp_get_int(target, ti);
			double w, loss = 0;
			if (p->has_ignore && cls == p->ignore) {
				w = 0;
			} else {
				if (cls < 0 || cls >= p->c)
					return bnf_shp_fail(ctx, BNF_ERR_INPUT,
					                    "target %lld is outside [0, %lld)",
					                    (long long)cls, (long long)p->c);
				w = weight ? bnf_shp_get(weight, (size_t)cls) : 1.0;
				loss = -logp[(n * p->c + cls) * p->inner + d] * w;
			}
			if (p->reduction == LOSS_REDUCTION_NONE)
				bnf_shp_set(out, ti, loss);
			sum += loss;
			wsum += w;
		}
	}
	if (p->reduction == LOSS_REDUCTION_SUM)
		bnf_shp_set(out, 0, sum);
	else if (p->reduction == LOSS_REDUCTION_MEAN)
		bnf_shp_set(out, 0, wsum != 0 ? sum / wsum : 0.0);
	return BNF_OK;
}

static int loss_output(struct bnf_op_ctx *ctx, const struct loss_plan *p,
                       const struct bnf_tensor *x, const struct bnf_tensor *target)
{
	if (p->reduction == LOSS_REDUCTION_NONE)
		return bnf_shp_new_out(ctx, 0, x->dtype, target->rank, target->dims);
	return bnf_shp_new_out(ctx, 0, x->dtype, 0, NULL);
}

int bnf_nn_nll_loss_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *target, *weight;
	struct loss_plan p;
	double *logp;
	size_t i;
	int rc;

	if (bnf_nn_check_inputs(ctx, 2, 3, 1u) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	target = ctx->in[1];
	weight = bnf_shp_in(ctx, 2);
	if (loss_plan(ctx, x, target, weight, &p) != BNF_OK || loss_output(ctx, &p, x, target))
		return ctx->err->status;
	if (!ctx->out[0])
		return BNF_OK;
	logp = malloc((x->count + 1) * sizeof(*logp));
	if (!logp)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (i = 0; i < x->count; i++)
		logp[i] = bnf_shp_get(x, i);
	rc = nll(ctx, &p, logp, target, weight, ctx->out[0]);
	free(logp);
	return rc;
}

/* SoftmaxCrossEntropyLoss: scores [N, C, ...], labels [N, ...], weights;
 * output 1 (optional) is the log-softmax of the scores over axis 1. */
int bnf_nn_sce_loss_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *target, *weight;
	struct loss_plan p;
	double *logp;
	int64_t n, c, d;
	size_t i;
	int rc;

	if (bnf_nn_check_inputs(ctx, 2, 3, 1u) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	target = ctx->in[1];
	weight = bnf_shp_in(ctx, 2);
	if (loss_plan(ctx, x, target, weight, &p) != BNF_OK || loss_output(ctx, &p, x, target) ||
	    bnf_shp_new_out(ctx, 1, x->dtype, x->rank, x->dims) != BNF_OK)
		return ctx->err->status;
	logp = malloc((x->count + 1) * sizeof(*logp));
	if (!logp)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (n = 0; n < p.n; n++) {
		for (d = 0; d < p.inner; d++) {
			double max = -INFINITY, sum = 0, lse;
			for (c = 0; c < p.c; c++) {
				double v = bnf_shp_get(x, (size_t)((n * p.c + c) * p.inner + d));
				max = v > max ? v : max;
			}
			for (c = 0; c < p.c; c++)
				sum += exp(bnf_shp_get(x, (size_t)((n * p.c + c) * p.inner + d)) -
				           max);
			lse = max + log(sum);
			for (c = 0; c < p.c; c++) {
				i = (size_t)((n * p.c + c) * p.inner + d);
				logp[i] = bnf_shp_get(x, i) - lse;
			}
		}
	}
	rc = ctx->out[0] ? nll(ctx, &p, logp, target, weight, ctx->out[0]) : BNF_OK;
	for (i = 0; rc == BNF_OK && ctx->n_out > 1 && ctx->out[1] && i < x->count; i++)
		bnf_shp_set(ctx->out[1], i, logp[i]);
	free(logp);
	return rc;
}

int bnf_nn_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the outputs */
	return BNF_OK;
}
