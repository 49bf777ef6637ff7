/*
 * After the folds: removing what lost its last reader (initializers,
 * Constant and Identity nodes, subgraphs computing constants) and the
 * value_info of values that are gone, subgraphs first.
 */
#include <stdlib.h>
#include <string.h>

#include "fold/internal.h"
#include "io/validate.h"
#include "util/mem.h"

struct cleanup_sub {
	struct fold_ctx *ctx;
	const struct bnf_graph *parent;
	int opset;
	int depth;
};

static int cleanup_subgraph_cb(Onnx__GraphProto *sub, void *arg)
{
	struct cleanup_sub *s = arg;
	return bnf_fold_cleanup_graph(s->ctx, sub, s->parent, s->opset, s->depth + 1);
}

/* A node computing constants (Constant, Identity of a constant, or a
 * subgraph computing one: Reshape, Unsqueeze, Cast, ... of constants)
 * whose outputs nothing reads any more. */
static int removable_constant(const struct bnf_graph *gi, const Onnx__NodeProto *node)
{
	size_t k;

	if (!bnf_node_is_constant_op(node) ||
	    (node->n_output != 1 &&
	     (bnf_node_is(node, "Constant") || bnf_node_is(node, "Identity"))))
		return 0;
	for (k = 0; k < node->n_output; k++)
		if (node->output[k][0] && (bnf_graph_uses(gi, node->output[k]) > 0 ||
		                           bnf_graph_is_output(gi, node->output[k])))
			return 0;
	if (bnf_node_is(node, "Identity"))
		return 1; /* of anything: it reads what it outputs */
	for (k = 0; k < node->n_input; k++)
		if (node->input[k][0] && !bnf_graph_is_computed_constant(gi, node->input[k]))
			return 0;
	return 1;
}

/* What one sweep over the released values marks for removal. */
struct sweep {
	unsigned char *init; /* per initializer of g */
	unsigned char *node; /* per node of g */
	unsigned char *vi;   /* per released value: its value_info goes */
	int marked;
};

/* Consider released value i of g against the index gi (built before this
 * sweep: what the sweep marks is still in it, and nothing of g is freed
 * until the sweep ends, as the index points into it). 1 when handled. */
static int sweep_one(struct fold_ctx *ctx, const struct bnf_graph *gi,
                     const struct bnf_graph *parent, size_t i, struct sweep *sw, int *rc)
{
	const char *name = ctx->released[i].name;
	size_t idx, k;
	Onnx__NodeProto *node;

	/* A graph input stays, unless it is a frozen initializer of the main
	 * graph (those leave the inputs with it). */
	if (bnf_graph_uses(gi, name) > 0 || bnf_graph_is_output(gi, name) ||
	    (bnf_strmap_get(&gi->inputs, name, NULL) &&
	     !(gi->frozen_inputs && !parent && bnf_strmap_get(&gi->initializer, name, NULL))))
		return 0;
	if (bnf_strmap_get(&gi->initializer, name, &idx)) {
		if (!sw->init[idx]) {
			sw->init[idx] = 1;
			sw->marked = 1;
			ctx->rep->initializers_removed++;
		}
	} else if ((node = bnf_graph_producer(gi, name, &idx)) != NULL) {
		if (sw->node[idx])
			return 1;
		if (!removable_constant(gi, node))
			return 0;
		/* Its inputs may lose their last reader: the next sweep sees. */
		for (k = 0; k < node->n_input; k++)
			if ((*rc = bnf_fold_release(ctx, gi, node->input[k])) != BNF_OK)
				return 0;
		sw->node[idx] = 1;
		sw->marked = 1;
		ctx->rep->nodes_removed++;
	} else {
		sw->vi[i] = 1;
	}
	return 1;
}

/* Drop what a sweep marked, keeping the order of the rest (an
 * initializer leaves the graph inputs with it). */
static void drop_marked(Onnx__GraphProto *g, const struct sweep *sw)
{
	size_t i, kept = 0;

	for (i = 0; i < g->n_initializer; i++)
		if (sw->init[i]) {
			bnf_graph_remove_input(g, g->initializer[i]->name);
			onnx__tensor_proto__free_unpacked(g->initializer[i], &bnf_large_allocator);
		} else
			g->initializer[kept++] = g->initializer[i];
	g->n_initializer = kept;
	for (i = kept = 0; i < g->n_node; i++)
		if (sw->node[i])
			onnx__node_proto__free_unpacked(g->node[i], &bnf_large_allocator);
		else
			g->node[kept++] = g->node[i];
	g->n_node = kept;
}

/* One sweep: every released value of g that nothing reads is removed at
 * once, the index rebuilt once (rebuilding it after each removal made the
 * cleanup quadratic: 4.4 s for 1200 folds). *again: something went. */
static int sweep_graph(struct fold_ctx *ctx, Onnx__GraphProto *g, struct bnf_graph *gi,
                       const struct bnf_graph *parent, int opset, int *again)
{
	struct sweep sw;
	size_t i, n = ctx->n_released;
	unsigned char *handled;
	int rc;

	bnf_graph_release(gi);
	if ((rc = bnf_fold_index(ctx, gi, g, parent, opset)) != BNF_OK)
		return rc;
	sw.init = calloc(g->n_initializer + 1, 1);
	sw.node = calloc(g->n_node + 1, 1);
	sw.vi = calloc(n + 1, 1);
	handled = calloc(n + 1, 1);
	sw.marked = 0;
	if (!sw.init || !sw.node || !sw.vi || !handled)
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	for (i = 0; i < n && rc == BNF_OK; i++)
		if (ctx->released[i].g == g && ctx->released[i].name)
			handled[i] = (unsigned char)sweep_one(ctx, gi, parent, i, &sw, &rc);
	if (rc == BNF_OK) {
		drop_marked(g, &sw);
		for (i = 0; i < n; i++) {
			if (sw.vi[i])
				bnf_graph_remove_value_info(g, ctx->released[i].name);
			/* Handled: forget it so it is not considered again. */
			if (handled[i]) {
				free(ctx->released[i].name);
				ctx->released[i].name = NULL;
			}
		}
	}
	*again = sw.marked;
	free(sw.init);
	free(sw.node);
	free(sw.vi);
	free(handled);
	return rc;
}

/* Remove released values of g that nothing reads any more: initializers,
 * Constant nodes, the Identity nodes exporters put in front of shared
 * constants and the subgraphs computing constants (whose own inputs are
 * then released in turn, and go in the next sweep). Subgraphs are cleaned
 * first because their reads keep outer values alive. */
int bnf_fold_cleanup_graph(struct fold_ctx *ctx, Onnx__GraphProto *g,
                           const struct bnf_graph *parent, int opset, int depth)
{
	struct bnf_graph gi;
	size_t i;
	int rc, again = 1;

	if (depth > BNF_LIMIT_GRAPH_DEPTH)
		return BNF_OK;
	if ((rc = bnf_fold_index(ctx, &gi, g, parent, opset)) != BNF_OK)
		goto out;
	for (i = 0; i < g->n_node; i++) {
		struct cleanup_sub s = {ctx, &gi, opset, depth};
		if ((rc = bnf_node_for_each_subgraph(g->node[i], cleanup_subgraph_cb, &s)) !=
		    BNF_OK)
			goto out;
	}
	while (again && rc == BNF_OK)
		rc = sweep_graph(ctx, g, &gi, parent, opset, &again);
	if (rc != BNF_OK)
		goto out;
	bnf_graph_release(&gi);
	if ((rc = bnf_fold_index(ctx, &gi, g, parent, opset)) != BNF_OK)
		goto out;
	/* Value infos of removed values describe nothing any more. */
	for (i = 0; i < ctx->n_released; i++)
		if (ctx->released[i].g == g && ctx->released[i].name &&
		    !bnf_graph_name_taken(&gi, ctx->released[i].name))
			bnf_graph_remove_value_info(g, ctx->released[i].name);
out:
	bnf_graph_release(&gi);
	return rc;
}
