/*
 * If and Loop, and the helpers the control-flow operators share. Each runs
 * its subgraph through the executor (bnf_subgraph_*), which lets the body
 * read the enclosing graphs' values by name; the outputs are the body's,
 * so everything happens in the shape step.
 */
#include "eval/ctrl_ops.h"

#include <stdlib.h>
#include <string.h>

#include "eval/shape_common.h"

const Onnx__GraphProto *bnf_ctrl_graph_attr(const struct bnf_op_ctx *ctx, const char *name)
{
	const Onnx__AttributeProto *a = bnf_attr_find(ctx->node, name);

	if (!a || !a->g) {
		bnf_fail(ctx->err, BNF_ERR_INPUT, "graph attribute '%s' is missing", name);
		return NULL;
	}
	return a->g;
}

struct bnf_tensor *bnf_ctrl_scalar_int64(int64_t v, struct bnf_error *err)
{
	struct bnf_tensor *t = bnf_tensor_new(DT(INT64), 0, NULL, err);

	if (t)
		((int64_t *)t->data)[0] = v;
	return t;
}

struct bnf_tensor *bnf_ctrl_scalar_bool(int v, struct bnf_error *err)
{
	struct bnf_tensor *t = bnf_tensor_new(DT(BOOL), 0, NULL, err);

	if (t)
		((uint8_t *)t->data)[0] = v != 0;
	return t;
}

int bnf_ctrl_truth(const struct bnf_tensor *t, const char *what, struct bnf_error *err)
{
	if (!t || t->count != 1) {
		bnf_fail(err, BNF_ERR_INPUT, "%s must hold exactly one value", what);
		return -1;
	}
	return bnf_tensor_get_double(t, 0) != 0.0;
}

int bnf_ctrl_declared_dtype(const Onnx__ValueInfoProto *vi)
{
	if (vi && vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
	    vi->type->tensor_type->has_elem_type && vi->type->tensor_type->elem_type)
		return vi->type->tensor_type->elem_type;
	return DT(FLOAT);
}

struct bnf_tensor *bnf_ctrl_stack(struct bnf_tensor *const *parts, size_t n, int axis, int reverse,
                                  struct bnf_error *err)
{
	const struct bnf_tensor *first = parts[0];
	struct bnf_tensor *out;
	int64_t dims[BNF_MAX_RANK], ostride[BNF_MAX_RANK], pstride[BNF_MAX_RANK],
	    dstride[BNF_MAX_RANK];
	size_t esize = bnf_tensor_elem_size(first->dtype), k;
	int a;

	if (first->rank + 1 > BNF_MAX_RANK || axis < 0 || axis > first->rank) {
		bnf_fail(err, BNF_ERR_UNSUPPORTED, "cannot stack rank %d tensors on axis %d",
		         first->rank, axis);
		return NULL;
	}
	for (k = 1; k < n; k++)
		if (parts[k]->dtype != first->dtype || parts[k]->rank != first->rank ||
		    memcmp(parts[k]->dims, first->dims, sizeof(int64_t) * (size_t)first->rank)) {
			bnf_fail(err, BNF_ERR_INPUT,
			         "iteration %zu's scan output differs in type or shape from the "
			         "first's",
			         k);
			return NULL;
		}
	for (a = 0; a <= first->rank; a++)
		dims[a] = a < axis ? first->dims[a] : a == axis ? (int64_t)n : first->dims[a - 1];
	out = bnf_tensor_new_uninit(first->dtype, first->rank + 1, dims, err);
	if (!out)
		return NULL;
	bnf_shp_strides(out->rank, out->dims, ostride);
	bnf_shp_strides(first->rank, first->dims, pstride);
	for (a = 0; a < first->rank; a++)
		dstride[a] = ostride[a < axis ? a : a + 1];
	for (k = 0; k < n; k++) {
		size_t pos = reverse ? n - 1 - k : k;
		bnf_shp_copy(esize, first->rank, first->dims, parts[k]->data, pstride,
		             (char *)out->data + pos * (size_t)ostride[axis] * esize, dstride);
	}
	return out;
}

struct bnf_tensor *bnf_ctrl_slice(const struct bnf_tensor *t, int axis, int64_t index,
                                  struct bnf_error *err)
{
	struct bnf_tensor *out;
	int64_t dims[BNF_MAX_RANK], tstride[BNF_MAX_RANK], sstride[BNF_MAX_RANK],
	    ostride[BNF_MAX_RANK];
	size_t esize = bnf_tensor_elem_size(t->dtype);
	int a, r = 0;

	for (a = 0; a < t->rank; a++)
		if (a != axis)
			dims[r++] = t->dims[a];
	out = bnf_tensor_new_uninit(t->dtype, r, dims, err);
	if (!out)
		return NULL;
	bnf_shp_strides(t->rank, t->dims, tstride);
	bnf_shp_strides(r, dims, ostride);
	for (a = 0, r = 0; a < t->rank; a++)
		if (a != axis)
			sstride[r++] = tstride[a];
	bnf_shp_copy(esize, r, dims,
	             (const char *)t->data + (size_t)(index * tstride[axis]) * esize, sstride,
	             out->data, ostride);
	return out;
}

/* ---- If ---- */

/* If: runs then_branch or else_branch on nothing but the enclosing values;
 * the node's outputs are the branch's. */
int bnf_ctrl_if_shape(struct bnf_op_ctx *ctx)
{
	const char *branch;
	const Onnx__GraphProto *g;
	struct bnf_subgraph *sg = NULL;
	int truth, rc;

	if (ctx->n_in != 1 || !ctx->in[0])
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "takes one input, the condition");
	truth = bnf_ctrl_truth(ctx->in[0], "the condition", ctx->err);
	if (truth < 0)
		return ctx->err->status;
	branch = truth ? "then_branch" : "else_branch";
	if (!(g = bnf_ctrl_graph_attr(ctx, branch)))
		return ctx->err->status;
	if (g->n_output != ctx->n_out)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "%s has %zu outputs, the node %zu", branch,
		                g->n_output, ctx->n_out);
	rc = bnf_subgraph_open(ctx, g, &sg);
	if (rc == BNF_OK)
		rc = bnf_subgraph_run(sg, 0, NULL, ctx->out);
	bnf_subgraph_close(sg);
	if (rc != BNF_OK)
		bnf_error_prefix(ctx->err, "%s", branch);
	return rc;
}

/* ---- Loop ---- */

/* The state of a Loop: the carried values (the node's inputs at first,
 * then the body's outputs, which are ours) and the scan outputs of every
 * iteration so far. */
struct loop_state {
	size_t n_carried, n_scan;
	struct bnf_tensor **carried;
	int *owned;
	struct bnf_tensor ***scans; /* scans[k][iteration] */
	size_t n_iter, cap_iter;
};

static void loop_state_free(struct loop_state *s)
{
	size_t k, i;

	for (k = 0; s->carried && k < s->n_carried; k++)
		if (s->owned[k])
			bnf_tensor_free(s->carried[k]);
	for (k = 0; s->scans && k < s->n_scan; k++) {
		for (i = 0; s->scans[k] && i < s->n_iter; i++)
			bnf_tensor_free(s->scans[k][i]);
		free(s->scans[k]);
	}
	free(s->carried);
	free(s->owned);
	free(s->scans);
}

/* Keep one iteration's body outputs: out[0] is the condition (freed by
 * the caller), then the carried values, then the scan outputs. */
static int loop_keep(struct loop_state *s, struct bnf_tensor **out, struct bnf_error *err)
{
	size_t k;

	if (s->n_iter == s->cap_iter && s->n_scan) {
		size_t cap = s->cap_iter * 2 + 16;
		for (k = 0; k < s->n_scan; k++) {
			struct bnf_tensor **grown = realloc(s->scans[k], cap * sizeof(*grown));
			if (!grown)
				return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
			s->scans[k] = grown;
		}
		s->cap_iter = cap;
	}
	for (k = 0; k < s->n_carried; k++) {
		if (s->owned[k])
			bnf_tensor_free(s->carried[k]);
		s->carried[k] = out[1 + k];
		s->owned[k] = 1;
		out[1 + k] = NULL;
	}
	for (k = 0; k < s->n_scan; k++) {
		s->scans[k][s->n_iter] = out[1 + s->n_carried + k];
		out[1 + s->n_carried + k] = NULL;
	}
	s->n_iter++;
	return BNF_OK;
}

/* The node's outputs: the last carried values, then each scan output's
 * iterations stacked on a new first axis (an empty loop gives [0]). */
static int loop_outputs(struct bnf_op_ctx *ctx, struct loop_state *s, const Onnx__GraphProto *g)
{
	size_t k;
	int64_t zero = 0;

	for (k = 0; k < s->n_carried; k++) {
		if (s->owned[k]) {
			ctx->out[k] = s->carried[k];
			s->owned[k] = 0;
		} else if (!(ctx->out[k] = bnf_tensor_clone(s->carried[k], ctx->err))) {
			return ctx->err->status;
		}
	}
	for (k = 0; k < s->n_scan; k++) {
		struct bnf_tensor **o = &ctx->out[s->n_carried + k];
		if (s->n_iter)
			*o = bnf_ctrl_stack(s->scans[k], s->n_iter, 0, 0, ctx->err);
		else
			*o =
			    bnf_tensor_new(bnf_ctrl_declared_dtype(g->output[1 + s->n_carried + k]),
			                   1, &zero, ctx->err);
		if (!*o)
			return ctx->err->status;
	}
	return BNF_OK;
}

/* One iteration: run the body on (i, cond, carried...) and keep what it
 * gives. *go becomes the body's condition when the node has one. */
static int loop_step(struct bnf_op_ctx *ctx, struct bnf_subgraph *sg, struct loop_state *s,
                     int64_t i, int *go, struct bnf_tensor **in, struct bnf_tensor **out)
{
	size_t k, n_out = 1 + s->n_carried + s->n_scan;
	int rc = BNF_OK, truth;

	in[0] = bnf_ctrl_scalar_int64(i, ctx->err);
	in[1] = bnf_ctrl_scalar_bool(*go, ctx->err);
	for (k = 0; k < s->n_carried; k++)
		in[2 + k] = s->carried[k];
	if (!in[0] || !in[1])
		rc = ctx->err->status;
	if (rc == BNF_OK)
		rc = bnf_subgraph_run(sg, 2 + s->n_carried, in, out);
	if (rc == BNF_OK && ctx->n_in > 1 && ctx->in[1]) {
		truth = bnf_ctrl_truth(out[0], "the body's condition", ctx->err);
		rc = truth < 0 ? ctx->err->status : BNF_OK;
		*go = truth > 0;
	}
	if (rc == BNF_OK)
		rc = loop_keep(s, out, ctx->err);
	bnf_tensor_free(in[0]);
	bnf_tensor_free(in[1]);
	for (k = 0; k < n_out; k++) {
		bnf_tensor_free(out[k]);
		out[k] = NULL;
	}
	if (rc != BNF_OK)
		bnf_error_prefix(ctx->err, "iteration %lld", (long long)i);
	return rc;
}

/* Loop: M (the trip count) and cond are optional; without either the loop
 * would never end, so it is refused. */
int bnf_ctrl_loop_shape(struct bnf_op_ctx *ctx)
{
	const Onnx__GraphProto *g = bnf_ctrl_graph_attr(ctx, "body");
	const struct bnf_tensor *m = ctx->n_in > 0 ? ctx->in[0] : NULL;
	const struct bnf_tensor *cond = ctx->n_in > 1 ? ctx->in[1] : NULL;
	struct bnf_subgraph *sg = NULL;
	struct loop_state s;
	struct bnf_tensor **in = NULL, **out = NULL;
	int64_t trips = INT64_MAX, i;
	size_t k;
	int go = 1, rc;

	memset(&s, 0, sizeof(s));
	if (!g)
		return ctx->err->status;
	if (ctx->n_in < 2)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "needs the inputs M and cond");
	s.n_carried = ctx->n_in - 2;
	if (g->n_input != 2 + s.n_carried || g->n_output < 1 + s.n_carried ||
	    ctx->n_out != g->n_output - 1)
		return bnf_fail(
		    ctx->err, BNF_ERR_INPUT,
		    "body has %zu inputs and %zu outputs for %zu carried values and %zu "
		    "node outputs",
		    g->n_input, g->n_output, s.n_carried, ctx->n_out);
	s.n_scan = g->n_output - 1 - s.n_carried;
	if (!m && !cond)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
		                "has neither M nor cond: it would never end");
	if (m && (m->count != 1 || m->dtype != DT(INT64)))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "M must be one int64 value");
	if (m)
		trips = ((const int64_t *)m->data)[0];
	if (cond && (go = bnf_ctrl_truth(cond, "cond", ctx->err)) < 0)
		return ctx->err->status;
	for (k = 0; k < s.n_carried; k++)
		if (!ctx->in[2 + k])
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "carried value %zu is missing", k);
	s.carried = calloc(s.n_carried + 1, sizeof(*s.carried));
	s.owned = calloc(s.n_carried + 1, sizeof(*s.owned));
	s.scans = calloc(s.n_scan + 1, sizeof(*s.scans));
	in = calloc(g->n_input + 1, sizeof(*in));
	out = calloc(g->n_output + 1, sizeof(*out));
	if (!s.carried || !s.owned || !s.scans || !in || !out) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (k = 0; k < s.n_carried; k++)
		s.carried[k] = ctx->in[2 + k];
	rc = bnf_subgraph_open(ctx, g, &sg);
	for (i = 0; rc == BNF_OK && i < trips && go; i++) {
		if (i >= BNF_MAX_LOOP_ITERATIONS)
			rc = bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
			              "still running after %lld iterations",
			              (long long)BNF_MAX_LOOP_ITERATIONS);
		else
			rc = loop_step(ctx, sg, &s, i, &go, in, out);
	}
	if (rc == BNF_OK)
		rc = loop_outputs(ctx, &s, g);
out:
	if (rc != BNF_OK)
		bnf_error_prefix(ctx->err, "body");
	bnf_subgraph_close(sg);
	loop_state_free(&s);
	free(in);
	free(out);
	return rc;
}
