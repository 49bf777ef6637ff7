/*
 * BatchNormalization (always eval mode: the given mean and variance, never
 * batch statistics), InstanceNormalization and LayerNormalization. All
 * arithmetic is in double, rounded once to the output dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/parallel.h"

/* How BatchNormalization lays X out: `params` values per input (C, or
 * C * spatial for the per-element form of opsets before 9), each applied
 * to `inner` consecutive elements, `outer` times. */
struct bn_plan {
	size_t outer, params, inner;
	float epsilon;
};

static int bn_plan(const struct bnf_op_ctx *ctx, struct bn_plan *p)
{
	const struct bnf_tensor *x;
	int64_t spatial = 1;
	size_t channels, spatial_size, i;
	int rc = bnf_nn_check_inputs(ctx, 5, 5, 0x1f);

	if (rc == BNF_OK)
		rc = bnf_attr_float(ctx->node, "epsilon", 1e-5f, &p->epsilon, ctx->err);
	/* `spatial` existed until opset 9; training_mode (opset 14) and
	 * is_test (before 7) are ignored on purpose: this is eval mode. */
	if (rc == BNF_OK && ctx->opset < 9)
		rc = bnf_attr_int(ctx->node, "spatial", 1, &spatial, ctx->err);
	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	if (x->rank < 1)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X must have rank 1 or more");
	/* A 1-D X is N samples of one channel. */
	channels = x->rank >= 2 ? (size_t)x->dims[1] : 1;
	spatial_size = x->rank >= 2 ? bnf_nn_prod(x->dims + 2, x->rank - 2) : 1;
	p->outer = (size_t)x->dims[0];
	p->params = channels;
	p->inner = spatial_size;
	if (!spatial && ctx->in[1]->count == channels * spatial_size) {
		/* Opsets 1-7 with spatial=0: one parameter per element of a sample. */
		p->params = channels * spatial_size;
		p->inner = 1;
	}
	for (i = 1; i < 5; i++)
		if (ctx->in[i]->count != p->params)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "input %zu ('%s') has %zu values, expected %zu", i,
			                ctx->node->input[i], ctx->in[i]->count, p->params);
	return BNF_OK;
}

int bnf_nn_batch_norm_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	struct bn_plan p;
	size_t i;
	int rc = bn_plan(ctx, &p);

	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	rc = bnf_nn_new_output(ctx, 0, 0, x->rank, x->dims);
	/* Extra outputs (running or saved mean / variance of the training
	 * forms) are the given statistics: mean at odd, variance at even. */
	for (i = 1; rc == BNF_OK && i < ctx->n_out && i <= 4; i++) {
		if (bnf_op_wants_output(ctx, i)) {
			ctx->out[i] = bnf_tensor_clone(ctx->in[i % 2 ? 3 : 4], ctx->err);
			rc = ctx->out[i] ? BNF_OK : ctx->err->status;
		}
	}
	return rc;
}

/* One float32 plane of BatchNormalization, in double as the general loop
 * computes it. */
BNF_NN_VECTORIZE static void bn_plane_f32(const float *x, float *y, size_t n, double shift,
                                          double scale, double b)
{
	size_t i;

	for (i = 0; i < n; i++)
		y[i] = (float)(((double)x[i] - shift) * scale + b);
}

/* What the planes of one BatchNormalization share. */
struct bn_planes {
	const struct bnf_tensor *x, *bias;
	struct bnf_tensor *y;
	const double *scale, *shift;
	size_t params, inner;
};

/* Planes lo .. hi - 1 (plane o * params + c holds channel c). */
static void bn_planes_run(void *arg, size_t lo, size_t hi)
{
	const struct bn_planes *bp = arg;
	size_t pl, i;

	for (pl = lo; pl < hi; pl++) {
		size_t c = pl % bp->params, at = pl * bp->inner;
		double b = bnf_nn_get(bp->bias, c);
		if (bnf_nn_is_f32(bp->x) && bnf_nn_is_f32(bp->y)) {
			/* The same arithmetic without a dtype switch per element. */
			bn_plane_f32((const float *)bp->x->data + at, (float *)bp->y->data + at,
			             bp->inner, bp->shift[c], bp->scale[c], b);
			continue;
		}
		for (i = 0; i < bp->inner; i++, at++)
			bnf_nn_set(bp->y, at,
			           (bnf_nn_get(bp->x, at) - bp->shift[c]) * bp->scale[c] + b);
	}
}

int bnf_nn_batch_norm_compute(struct bnf_op_ctx *ctx)
{
	double *scale = NULL, *shift = NULL;
	struct bn_plan p;
	struct bn_planes bp;
	size_t c;
	int rc = bn_plan(ctx, &p);

	if (rc != BNF_OK)
		goto out;
	scale = malloc(p.params * sizeof(*scale) + 1);
	shift = malloc(p.params * sizeof(*shift) + 1);
	if (!scale || !shift) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* y = (x - mean) / sqrt(var + epsilon) * scale + B */
	for (c = 0; c < p.params; c++) {
		scale[c] =
		    bnf_nn_get(ctx->in[1], c) / sqrt(bnf_nn_get(ctx->in[4], c) + (double)p.epsilon);
		shift[c] = bnf_nn_get(ctx->in[3], c);
	}
	bp.x = ctx->in[0];
	bp.bias = ctx->in[2];
	bp.y = ctx->out[0];
	bp.scale = scale;
	bp.shift = shift;
	bp.params = p.params;
	bp.inner = p.inner;
	/* Each element is its own: planes may run on any thread. */
	bnf_parallel_for(ctx->threads, p.outer * p.params, bnf_parallel_grain(p.inner),
	                 bn_planes_run, &bp);
out:
	free(scale);
	free(shift);
	return rc;
}

static int instance_norm_check(const struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int rc = bnf_nn_check_inputs(ctx, 3, 3, 0x7);

	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	if (x->rank < 3)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X needs rank 3 or more, not %d", x->rank);
	if (ctx->in[1]->count != (size_t)x->dims[1] || ctx->in[2]->count != (size_t)x->dims[1])
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "scale and B need %lld values",
		                (long long)x->dims[1]);
	return BNF_OK;
}

int bnf_nn_instance_norm_shape(struct bnf_op_ctx *ctx)
{
	int rc = instance_norm_check(ctx);

	return rc ? rc : bnf_nn_new_output(ctx, 0, 0, ctx->in[0]->rank, ctx->in[0]->dims);
}

/* Mean and 1 / sqrt(variance + epsilon) of n values of t from `at`
 * (two passes, for accuracy). */
static void moments(const struct bnf_tensor *t, size_t at, size_t n, double epsilon, double *mean,
                    double *inv_std)
{
	double sum = 0, sq = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += bnf_nn_get(t, at + i);
	*mean = n ? sum / (double)n : 0.0;
	for (i = 0; i < n; i++) {
		double d = bnf_nn_get(t, at + i) - *mean;
		sq += d * d;
	}
	*inv_std = 1.0 / sqrt((n ? sq / (double)n : 0.0) + epsilon);
}

int bnf_nn_instance_norm_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	size_t channels = (size_t)x->dims[1], size = bnf_nn_prod(x->dims + 2, x->rank - 2);
	size_t planes = (size_t)x->dims[0] * channels, pl, i;
	float epsilon;
	int rc = bnf_attr_float(ctx->node, "epsilon", 1e-5f, &epsilon, ctx->err);

	for (pl = 0; rc == BNF_OK && pl < planes; pl++) {
		double mean, inv_std;
		double s = bnf_nn_get(ctx->in[1], pl % channels);
		double b = bnf_nn_get(ctx->in[2], pl % channels);
		moments(x, pl * size, size, epsilon, &mean, &inv_std);
		for (i = 0; i < size; i++)
			bnf_nn_set(ctx->out[0], pl * size + i,
			           (bnf_nn_get(x, pl * size + i) - mean) * inv_std * s + b);
	}
	return rc;
}

/* LayerNormalization (opset 17) normalises X over dims [axis, rank). */
struct ln_plan {
	int axis;
	float epsilon;
	size_t outer, inner;
	int64_t stat_dims[BNF_MAX_RANK]; /* X's dims with 1 from axis on */
};

/* Whether t broadcasts onto X's trailing dims from `axis` without varying
 * over the dims before it. */
static int fits_normalized(const struct bnf_tensor *t, const struct bnf_tensor *x, int axis)
{
	int i;

	if (t->rank > x->rank)
		return 0;
	for (i = 0; i < t->rank; i++) {
		int xi = x->rank - t->rank + i;
		int64_t d = t->dims[i];
		if (d != 1 && (d != x->dims[xi] || xi < axis))
			return 0;
	}
	return 1;
}

static int ln_plan(const struct bnf_op_ctx *ctx, struct ln_plan *p)
{
	const struct bnf_tensor *x;
	int64_t axis;
	int rc = bnf_nn_check_inputs(ctx, 2, 3, 0x7), i;

	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "axis", -1, &axis, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_float(ctx->node, "epsilon", 1e-5f, &p->epsilon, ctx->err);
	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	if (axis < -x->rank || axis >= x->rank)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "axis %lld is out of range for rank %d",
		                (long long)axis, x->rank);
	p->axis = (int)(axis < 0 ? axis + x->rank : axis);
	for (i = 1; i < (int)ctx->n_in; i++)
		if (ctx->in[i] && !fits_normalized(ctx->in[i], x, p->axis))
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "input %d ('%s') does not broadcast to the normalised dims",
			                i, ctx->node->input[i]);
	p->outer = bnf_nn_prod(x->dims, p->axis);
	p->inner = bnf_nn_prod(x->dims + p->axis, x->rank - p->axis);
	for (i = 0; i < x->rank; i++)
		p->stat_dims[i] = i < p->axis ? x->dims[i] : 1;
	return BNF_OK;
}

int bnf_nn_layer_norm_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	struct ln_plan p;
	int stat_dtype, rc = ln_plan(ctx, &p);
	size_t i;

	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	/* Mean and InvStdDev are float (stash_type 1), or double in a double
	 * run. */
	stat_dtype = x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
	                 ? ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
	                 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	rc = bnf_nn_new_output(ctx, 0, 0, x->rank, x->dims);
	for (i = 1; rc == BNF_OK && i < 3; i++)
		if (bnf_op_wants_output(ctx, i))
			rc = bnf_nn_new_output(ctx, i, stat_dtype, x->rank, p.stat_dims);
	return rc;
}

/* Index into t (broadcast onto X's trailing dims) of element j of the
 * normalised block of X. */
static size_t block_index(const struct bnf_tensor *t, const struct bnf_tensor *x, size_t j)
{
	size_t idx = 0, step = 1;
	int i;

	for (i = t->rank - 1; i >= 0; i--) {
		size_t xd = (size_t)x->dims[x->rank - t->rank + i];
		if (t->dims[i] != 1)
			idx += (j % xd) * step;
		step *= (size_t)t->dims[i];
		j /= xd;
	}
	return idx;
}

int bnf_nn_layer_norm_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0], *scale = ctx->in[1];
	const struct bnf_tensor *bias = ctx->n_in > 2 ? ctx->in[2] : NULL;
	struct bnf_tensor *mean_out = ctx->n_out > 1 ? ctx->out[1] : NULL;
	struct bnf_tensor *inv_out = ctx->n_out > 2 ? ctx->out[2] : NULL;
	size_t *s_idx = NULL, *b_idx = NULL, o, j;
	struct ln_plan p;
	int rc = ln_plan(ctx, &p);

	if (rc != BNF_OK)
		goto out;
	s_idx = malloc(p.inner * sizeof(*s_idx) + 1);
	b_idx = malloc(p.inner * sizeof(*b_idx) + 1);
	if (!s_idx || !b_idx) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (j = 0; j < p.inner; j++) {
		s_idx[j] = block_index(scale, x, j);
		b_idx[j] = bias ? block_index(bias, x, j) : 0;
	}
	for (o = 0; o < p.outer; o++) {
		double mean, inv_std;
		size_t at = o * p.inner;
		moments(x, at, p.inner, p.epsilon, &mean, &inv_std);
		for (j = 0; j < p.inner; j++) {
			double v =
			    (bnf_nn_get(x, at + j) - mean) * inv_std * bnf_nn_get(scale, s_idx[j]);
			bnf_nn_set(ctx->out[0], at + j, bias ? v + bnf_nn_get(bias, b_idx[j]) : v);
		}
		if (mean_out)
			bnf_nn_set(mean_out, o, mean);
		if (inv_out)
			bnf_nn_set(inv_out, o, inv_std);
	}
out:
	free(s_idx);
	free(b_idx);
	return rc;
}
