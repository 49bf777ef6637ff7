/*
 * Softmax and LogSoftmax. Before opset 13 the input is seen as a 2-D
 * matrix split at `axis` (default 1) and each row of the flattened trailing
 * dimensions is normalised; from opset 13 only the one dimension `axis`
 * (default -1) is. Sums run in double, after subtracting the row's maximum.
 */
#include "eval/basic_ops.h"

#include <math.h>
#include <string.h>

/* The input seen as [outer, n, inner]: each of the outer * inner rows has
 * n elements, inner apart. */
struct softmax_layout {
	size_t outer, n, inner;
};

static int softmax_layout(const struct bnf_op_ctx *ctx, struct softmax_layout *l)
{
	const struct bnf_tensor *x = ctx->in[0];
	int modern = ctx->opset >= 13;
	int64_t axis;
	int i, rc;

	if ((rc = bnf_attr_int(ctx->node, "axis", modern ? -1 : 1, &axis, ctx->err)) != BNF_OK)
		return rc;
	if (axis < -x->rank || axis >= x->rank)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "axis %lld is out of range for rank %d",
		                (long long)axis, x->rank);
	if (axis < 0)
		axis += x->rank;
	l->outer = l->n = l->inner = 1;
	for (i = 0; i < x->rank; i++) {
		size_t d = (size_t)x->dims[i];
		if (i < axis)
			l->outer *= d;
		else if (i == axis || !modern)
			l->n *= d;
		else
			l->inner *= d;
	}
	return BNF_OK;
}

int bnf_basic_softmax_shape(struct bnf_op_ctx *ctx)
{
	struct softmax_layout l;
	int rc;

	if ((rc = bnf_basic_check_arity(ctx, 1, 1, 1)) != BNF_OK)
		return rc;
	if (!bnf_basic_is_float(ctx->in[0]->dtype))
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "input has unsupported dtype %s",
		                bnf_dtype_name(ctx->in[0]->dtype));
	if ((rc = softmax_layout(ctx, &l)) != BNF_OK)
		return rc;
	return bnf_basic_new_output(ctx, 0, ctx->in[0]->dtype, ctx->in[0]);
}

/* Normalise one row starting at element start: three passes (maximum, sum
 * of exponentials, output), each a chunk at a time. */
static void softmax_row(const struct bnf_tensor *x, struct bnf_tensor *y, size_t start,
                        const struct softmax_layout *l, int log_form)
{
	union basic_lane_buf v;
	double max = -INFINITY, sum = 0.0, log_sum = 0.0;
	size_t done, n, k;
	int pass;

	for (pass = 0; pass < 3; pass++) {
		for (done = 0; done < l->n; done += n) {
			n = l->n - done < BASIC_CHUNK ? l->n - done : BASIC_CHUNK;
			bnf_basic_load(x, BASIC_LANE_F64, start + done * l->inner, l->inner, n, &v);
			for (k = 0; k < n; k++) {
				if (pass == 0)
					max = v.f[k] > max || isnan(v.f[k]) ? v.f[k] : max;
				else if (pass == 1)
					sum += exp(v.f[k] - max);
				else
					v.f[k] = log_form ? v.f[k] - max - log_sum
					                  : exp(v.f[k] - max) / sum;
			}
			if (pass == 2)
				bnf_basic_store(y, BASIC_LANE_F64, start + done * l->inner,
				                l->inner, n, &v);
		}
		log_sum = log(sum);
	}
}

int bnf_basic_softmax_compute(struct bnf_op_ctx *ctx)
{
	struct softmax_layout l;
	int log_form = strcmp(ctx->node->op_type, "LogSoftmax") == 0;
	size_t o, j;
	int rc;

	if ((rc = softmax_layout(ctx, &l)) != BNF_OK)
		return rc;
	if (ctx->in[0]->count == 0)
		return BNF_OK;
	for (o = 0; o < l.outer; o++)
		for (j = 0; j < l.inner; j++)
			softmax_row(ctx->in[0], ctx->out[0], o * l.n * l.inner + j, &l, log_form);
	return BNF_OK;
}
