/*
 * Scan: runs its body once per element of the scan inputs along their
 * scan axes, carrying state variables from one iteration to the next and
 * stacking the per-iteration scan outputs. Opset 8 puts a batch axis in
 * front of everything (each batch entry is scanned on its own) and has no
 * axes attributes; from opset 9 there is no batch.
 */
#include "eval/ctrl_ops.h"

#include <stdlib.h>
#include <string.h>

#include "eval/shape_common.h"

#define SCAN_MAX 64 /* state variables, scan inputs or scan outputs */

struct scan_plan {
	size_t n_state, n_in, n_out; /* N, M, K */
	int in_axis[SCAN_MAX], in_rev[SCAN_MAX];
	int out_axis[SCAN_MAX], out_rev[SCAN_MAX];
	int64_t length; /* iterations */
};

/* An integer-list attribute of at most SCAN_MAX values (count must be
 * want, or 0 for the default of zeros). */
static int scan_ints(const struct bnf_op_ctx *ctx, const char *name, size_t want, int *out)
{
	int64_t v[SCAN_MAX];
	size_t n, k;

	if (bnf_attr_ints(ctx->node, name, v, SCAN_MAX, &n, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (n && n != want)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "attribute '%s' has %zu values, not %zu",
		                name, n, want);
	for (k = 0; k < want; k++)
		out[k] = n ? (int)v[k] : 0;
	return BNF_OK;
}

/* Scan the inputs in[0 .. N+M) (states, then scan inputs, no batch axis):
 * the node's outputs go to out[0 .. N+K). */
static int scan_run(struct bnf_op_ctx *ctx, struct bnf_subgraph *sg, const struct scan_plan *p,
                    struct bnf_tensor *const *in, struct bnf_tensor **out)
{
	size_t n_body_in = p->n_state + p->n_in, n_body_out = p->n_state + p->n_out, k;
	size_t n_iter = (size_t)p->length;
	struct bnf_tensor **body_in = calloc(n_body_in + 1, sizeof(*body_in));
	struct bnf_tensor **body_out = calloc(n_body_out + 1, sizeof(*body_out));
	struct bnf_tensor **state = calloc(p->n_state + 1, sizeof(*state));
	struct bnf_tensor **parts = calloc(p->n_out * n_iter + 1, sizeof(*parts));
	int64_t t;
	int rc = BNF_OK;

	if (!body_in || !body_out || !state || !parts) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (t = 0; rc == BNF_OK && t < p->length; t++) {
		for (k = 0; k < p->n_state; k++)
			body_in[k] = state[k] ? state[k] : in[k];
		for (k = 0; rc == BNF_OK && k < p->n_in; k++) {
			const struct bnf_tensor *x = in[p->n_state + k];
			int64_t at = p->in_rev[k] ? p->length - 1 - t : t;
			body_in[p->n_state + k] = bnf_ctrl_slice(x, p->in_axis[k], at, ctx->err);
			if (!body_in[p->n_state + k])
				rc = ctx->err->status;
		}
		if (rc == BNF_OK)
			rc = bnf_subgraph_run(sg, n_body_in, body_in, body_out);
		for (k = 0; k < p->n_in; k++) {
			bnf_tensor_free(body_in[p->n_state + k]);
			body_in[p->n_state + k] = NULL;
		}
		if (rc != BNF_OK) {
			bnf_error_prefix(ctx->err, "iteration %lld", (long long)t);
			break;
		}
		for (k = 0; k < p->n_state; k++) {
			bnf_tensor_free(state[k]);
			state[k] = body_out[k];
		}
		for (k = 0; k < p->n_out; k++)
			parts[k * n_iter + (size_t)t] = body_out[p->n_state + k];
	}
	for (k = 0; rc == BNF_OK && k < p->n_state; k++) {
		out[k] = state[k] ? state[k] : bnf_tensor_clone(in[k], ctx->err);
		state[k] = NULL;
		if (!out[k])
			rc = ctx->err->status;
	}
	for (k = 0; rc == BNF_OK && k < p->n_out; k++) {
		if (n_iter == 0) {
			rc = bnf_fail(
			    ctx->err, BNF_ERR_UNSUPPORTED,
			    "the scan inputs are empty: the scan outputs' shapes are unknown");
			break;
		}
		out[p->n_state + k] = bnf_ctrl_stack(parts + k * n_iter, n_iter, p->out_axis[k],
		                                     p->out_rev[k], ctx->err);
		if (!out[p->n_state + k])
			rc = ctx->err->status;
	}
out:
	for (k = 0; state && k < p->n_state; k++)
		bnf_tensor_free(state[k]);
	for (k = 0; parts && k < p->n_out * n_iter; k++)
		bnf_tensor_free(parts[k]);
	free(body_in);
	free(body_out);
	free(state);
	free(parts);
	return rc;
}

/* The plan of the node's scan: counts, axes normalised against the ranks
 * of the inputs (first_in: index of the first state input), and the
 * number of iterations. */
static int scan_plan(struct bnf_op_ctx *ctx, const Onnx__GraphProto *g, size_t first_in,
                     int batched, struct scan_plan *p)
{
	int64_t m;
	size_t k;
	int a, rank;

	memset(p, 0, sizeof(*p));
	if (!bnf_attr_find(ctx->node, "num_scan_inputs"))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "attribute 'num_scan_inputs' is missing");
	if (bnf_attr_int(ctx->node, "num_scan_inputs", 0, &m, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (m < 1 || (size_t)m > ctx->n_in - first_in || (size_t)m > SCAN_MAX)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "num_scan_inputs %lld does not fit %zu inputs", (long long)m,
		                ctx->n_in - first_in);
	p->n_in = (size_t)m;
	p->n_state = ctx->n_in - first_in - p->n_in;
	if (p->n_state > SCAN_MAX || g->n_input != p->n_state + p->n_in ||
	    g->n_output < p->n_state || ctx->n_out != g->n_output ||
	    g->n_output - p->n_state > SCAN_MAX)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "body has %zu inputs and %zu outputs for %zu states and %zu scan "
		                "inputs",
		                g->n_input, g->n_output, p->n_state, p->n_in);
	p->n_out = g->n_output - p->n_state;
	for (k = first_in; k < ctx->n_in; k++)
		if (!ctx->in[k])
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "input %zu is missing", k);
	if (batched) {
		/* Opset 8: after the batch axis is taken off, the scan axis is 0. */
		if (scan_ints(ctx, "directions", p->n_in, p->in_rev) != BNF_OK)
			return ctx->err->status;
	} else if (scan_ints(ctx, "scan_input_axes", p->n_in, p->in_axis) != BNF_OK ||
	           scan_ints(ctx, "scan_input_directions", p->n_in, p->in_rev) != BNF_OK ||
	           scan_ints(ctx, "scan_output_axes", p->n_out, p->out_axis) != BNF_OK ||
	           scan_ints(ctx, "scan_output_directions", p->n_out, p->out_rev) != BNF_OK) {
		return ctx->err->status;
	}
	p->length = -1;
	for (k = 0; k < p->n_in; k++) {
		const struct bnf_tensor *x = ctx->in[first_in + p->n_state + k];
		rank = x->rank - batched;
		if (bnf_shp_axis(ctx, p->in_axis[k], rank, "scan_input_axes", &a) != BNF_OK)
			return ctx->err->status;
		p->in_axis[k] = a;
		if (p->length >= 0 && x->dims[a + batched] != p->length)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "scan inputs have %lld and %lld elements to scan",
			                (long long)p->length, (long long)x->dims[a + batched]);
		p->length = x->dims[a + batched];
	}
	for (k = 0; k < p->n_out; k++) {
		/* A scan output has the rank of the body's output plus one;
		 * negative axes count from there (known once the body ran: the
		 * declared rank, when there is one). */
		if (p->out_axis[k] < 0) {
			const Onnx__ValueInfoProto *vi = g->output[p->n_state + k];
			if (!vi->type ||
			    vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
			    !vi->type->tensor_type->shape)
				return bnf_fail(
				    ctx->err, BNF_ERR_UNSUPPORTED,
				    "a negative scan_output_axes needs the body output's "
				    "rank");
			p->out_axis[k] += (int)vi->type->tensor_type->shape->n_dim + 1;
		}
	}
	return BNF_OK;
}

/* Opset 8: scan each batch entry on its own and stack the results. */
static int scan_batched(struct bnf_op_ctx *ctx, struct bnf_subgraph *sg, const struct scan_plan *p)
{
	const struct bnf_tensor *lens = ctx->in[0];
	size_t n = p->n_state + p->n_in, n_res = p->n_state + p->n_out, k;
	int64_t batch = ctx->in[1]->rank ? ctx->in[1]->dims[0] : 0, b;
	struct bnf_tensor **in = calloc(n + 1, sizeof(*in));
	struct bnf_tensor **res = calloc(n_res * (size_t)(batch > 0 ? batch : 1) + 1, sizeof(*res));
	int rc = BNF_OK;

	if (!in || !res)
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	for (k = 1; rc == BNF_OK && k <= n; k++)
		if (ctx->in[k]->rank < 1 || ctx->in[k]->dims[0] != batch)
			rc = bnf_fail(ctx->err, BNF_ERR_INPUT,
			              "input %zu does not have the batch size", k);
	for (b = 0; rc == BNF_OK && lens && b < (int64_t)lens->count; b++)
		if (bnf_shp_get_int(lens, (size_t)b) != p->length)
			rc = bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
			              "sequences shorter than the scan axis are not supported");
	for (b = 0; rc == BNF_OK && b < batch; b++) {
		for (k = 0; rc == BNF_OK && k < n; k++)
			if (!(in[k] = bnf_ctrl_slice(ctx->in[1 + k], 0, b, ctx->err)))
				rc = ctx->err->status;
		if (rc == BNF_OK)
			rc = scan_run(ctx, sg, p, in, res + (size_t)b * n_res);
		for (k = 0; k < n; k++) {
			bnf_tensor_free(in[k]);
			in[k] = NULL;
		}
	}
	for (k = 0; rc == BNF_OK && k < n_res; k++) {
		struct bnf_tensor **parts = malloc(((size_t)batch + 1) * sizeof(*parts));
		if (!parts || batch == 0) {
			rc = bnf_fail(ctx->err, parts ? BNF_ERR_UNSUPPORTED : BNF_ERR_NOMEM,
			              parts ? "an empty batch is not supported" : "out of memory");
		} else {
			for (b = 0; b < batch; b++)
				parts[b] = res[(size_t)b * n_res + k];
			ctx->out[k] = bnf_ctrl_stack(parts, (size_t)batch, 0, 0, ctx->err);
			if (!ctx->out[k])
				rc = ctx->err->status;
		}
		free(parts);
	}
	for (k = 0; res && k < n_res * (size_t)(batch > 0 ? batch : 0); k++)
		bnf_tensor_free(res[k]);
	free(in);
	free(res);
	return rc;
}

int bnf_ctrl_scan_shape(struct bnf_op_ctx *ctx)
{
	const Onnx__GraphProto *g = bnf_ctrl_graph_attr(ctx, "body");
	int batched = ctx->opset < 9;
	struct bnf_subgraph *sg = NULL;
	struct scan_plan p;
	int rc;

	if (!g)
		return ctx->err->status;
	if (ctx->n_in < (size_t)(1 + batched))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "has no scan input");
	rc = scan_plan(ctx, g, (size_t)batched, batched, &p);
	if (rc == BNF_OK)
		rc = bnf_subgraph_open(ctx, g, &sg);
	if (rc == BNF_OK && batched)
		rc = scan_batched(ctx, sg, &p);
	else if (rc == BNF_OK)
		rc = scan_run(ctx, sg, &p, ctx->in, ctx->out);
	if (rc != BNF_OK)
		bnf_error_prefix(ctx->err, "body");
	bnf_subgraph_close(sg);
	return rc;
}
