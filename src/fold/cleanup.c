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

/* Remove released values of g that nothing reads any more: initializers,
 * Constant nodes, the Identity nodes exporters put in front of shared
 * constants and the subgraphs computing constants (whose own inputs are
 * then released in turn). Subgraphs are cleaned first because their reads
 * keep outer values alive. */
int bnf_fold_cleanup_graph(struct fold_ctx *ctx, Onnx__GraphProto *g,
                           const struct bnf_graph *parent, int opset, int depth)
{
	struct bnf_graph gi;
	size_t i, k;
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
	while (again) {
		again = 0;
		bnf_graph_release(&gi);
		if ((rc = bnf_fold_index(ctx, &gi, g, parent, opset)) != BNF_OK)
			goto out;
		for (i = 0; i < ctx->n_released; i++) {
			const char *name = ctx->released[i].name;
			size_t idx;
			Onnx__NodeProto *node;

			if (ctx->released[i].g != g || !name)
				continue;
			/* A graph input stays, unless it is a frozen initializer of
			 * the main graph (those leave the inputs with it). */
			if (bnf_graph_uses(&gi, name) > 0 || bnf_graph_is_output(&gi, name) ||
			    (bnf_strmap_get(&gi.inputs, name, NULL) &&
			     !(gi.frozen_inputs && !parent &&
			       bnf_strmap_get(&gi.initializer, name, NULL))))
				continue;
			if (bnf_strmap_get(&gi.initializer, name, &idx)) {
				bnf_graph_remove_input(g, name);
				onnx__tensor_proto__free_unpacked(g->initializer[idx],
				                                  &bnf_large_allocator);
				memmove(&g->initializer[idx], &g->initializer[idx + 1],
				        (g->n_initializer - idx - 1) * sizeof(*g->initializer));
				g->n_initializer--;
				ctx->rep->initializers_removed++;
				again = 1;
			} else if ((node = bnf_graph_producer(&gi, name, &idx)) != NULL &&
			           removable_constant(&gi, node)) {
				for (k = 0; k < node->n_input; k++)
					if ((rc = bnf_fold_release(ctx, &gi, node->input[k])) !=
					    BNF_OK)
						goto out;
				onnx__node_proto__free_unpacked(node, &bnf_large_allocator);
				memmove(&g->node[idx], &g->node[idx + 1],
				        (g->n_node - idx - 1) * sizeof(*g->node));
				g->n_node--;
				ctx->rep->nodes_removed++;
				again = 1;
			} else if (bnf_graph_producer(&gi, name, NULL) == NULL) {
				bnf_graph_remove_value_info(g, name);
			} else {
				continue;
			}
			/* Handled: forget it so it is not considered again. */
			free(ctx->released[i].name);
			ctx->released[i].name = NULL;
			if (again)
				break; /* the index is stale: rebuild it */
		}
	}
	/* Value infos of removed values describe nothing any more. */
	for (i = 0; i < ctx->n_released; i++)
		if (ctx->released[i].g == g && ctx->released[i].name &&
		    !bnf_graph_name_taken(&gi, ctx->released[i].name))
			bnf_graph_remove_value_info(g, ctx->released[i].name);
out:
	bnf_graph_release(&gi);
	return rc;
}
