/*
 * Subgraphs for the control-flow operators: an If branch or a Loop or Scan
 * body indexed once inside the run of the graph holding its node, run as
 * often as the operator needs, its initializers kept between runs.
 */
#include "eval/eval.h"

#include <stdlib.h>
#include <string.h>

#include "eval/run.h"

int bnf_subgraph_open(const struct bnf_op_ctx *ctx, const Onnx__GraphProto *g,
                      struct bnf_subgraph **out)
{
	struct bnf_run *parent = ctx->run;
	struct bnf_subgraph *sg;
	struct bnf_run *r;
	int rc;

	*out = NULL;
	if (!parent)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "subgraphs run only inside a graph");
	if (parent->depth + 1 > BNF_EVAL_MAX_DEPTH)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "subgraphs nested more than %d deep",
		                BNF_EVAL_MAX_DEPTH);
	sg = calloc(1, sizeof(*sg));
	if (!sg)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	r = &sg->r;
	bnf_strmap_init(&r->names);
	r->graph = g;
	r->parent = parent;
	r->depth = parent->depth + 1;
	r->reusable = 1;
	r->opset = parent->opset;
	r->promote = parent->promote;
	r->shapes_only = parent->shapes_only;
	r->threads = ctx->threads;
	r->err = ctx->err;
	r->ext = parent->ext;
	/* What the enclosing runs have not taken of the budget. */
	if (parent->max_bytes)
		r->max_bytes = parent->max_bytes > parent->live_bytes
		                   ? parent->max_bytes - parent->live_bytes
		                   : 1;
	rc = bnf_run_index(r, 0, NULL, NULL);
	if (rc != BNF_OK) {
		bnf_subgraph_close(sg);
		return rc;
	}
	*out = sg;
	return BNF_OK;
}

int bnf_subgraph_run(struct bnf_subgraph *sg, size_t n_in, struct bnf_tensor *const *in,
                     struct bnf_tensor **out)
{
	struct bnf_run *r = &sg->r;
	const Onnx__GraphProto *g = r->graph;
	size_t i;
	int rc = BNF_OK;

	if (n_in != g->n_input)
		return bnf_fail(r->err, BNF_ERR_INPUT, "the subgraph takes %zu inputs, not %zu",
		                g->n_input, n_in);
	for (i = 0; rc == BNF_OK && i < n_in; i++) {
		struct value *v =
		    &r->values[bnf_run_lookup(r, g->input[i]->name ? g->input[i]->name : "")];
		if (!in[i])
			rc = bnf_fail(r->err, BNF_ERR_INPUT, "subgraph input '%s' has no value",
			              v->name);
		else if (!v->persistent)
			rc = bnf_run_assign(r, v, in[i], value_owner_none);
		/* A probe of the shapes cannot tell what the operator passed. */
		v->unknown = r->shapes_only;
		if (rc == BNF_OK)
			rc = bnf_run_promote(r, v);
	}
	if (rc == BNF_OK)
		rc = bnf_run_execute(r);
	if (rc == BNF_OK)
		rc = bnf_run_collect(r, out);
	/* Everything but the initializers goes; what stays is all that is
	 * counted. */
	for (i = 0; i < r->n_values; i++)
		if (!r->values[i].persistent)
			bnf_run_drop(r, &r->values[i]);
	r->live_bytes = 0;
	for (i = 0; i < r->n_values; i++)
		if (r->values[i].persistent)
			r->live_bytes += bnf_run_tensor_bytes(r->values[i].t);
	return rc;
}

const Onnx__GraphProto *bnf_subgraph_graph(const struct bnf_subgraph *sg)
{
	return sg->r.graph;
}

void bnf_subgraph_close(struct bnf_subgraph *sg)
{
	if (!sg)
		return;
	bnf_run_free(&sg->r);
	free(sg);
}
