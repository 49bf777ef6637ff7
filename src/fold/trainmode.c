/*
 * The --train-mode=eval pass. BatchNormalization: training_mode=1 (opset
 * 14+) is removed (its default is 0), is_test=0 (before opset 7) becomes 1,
 * and the optional running-statistics outputs are dropped, unless something
 * reads them. Dropout: is_test set before opset 7; from opset 12 a constant
 * true training_mode input is disconnected (an absent input means false).
 */
#include "fold/trainmode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "util/mem.h"

struct train_ctx {
	struct bnf_train_report *rep;
	struct bnf_error *err;
	int opset;
	char **garbage; /* strings taken out of the tree, freed at the end:
	                   the graph index still uses them as keys */
	size_t n_garbage;
};

static int throw_away(struct train_ctx *ctx, char *s)
{
	char **p = realloc(ctx->garbage, (ctx->n_garbage + 1) * sizeof(*p));
	if (!p)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	ctx->garbage = p;
	ctx->garbage[ctx->n_garbage++] = s;
	return BNF_OK;
}

static int add_entry(struct train_ctx *ctx, const Onnx__NodeProto *node, const char *path,
                     int converted, const char *detail)
{
	struct bnf_train_report *rep = ctx->rep;
	struct bnf_train_node *p = realloc(rep->nodes, (rep->n_nodes + 1) * sizeof(*p));
	struct bnf_train_node *e;

	if (!p)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	rep->nodes = p;
	e = &p[rep->n_nodes];
	e->op = strdup(node->op_type);
	e->node = strdup(bnf_node_label(node));
	e->graph = strdup(path);
	e->detail = strdup(detail);
	e->converted = converted;
	if (!e->op || !e->node || !e->graph || !e->detail) {
		free(e->op);
		free(e->node);
		free(e->graph);
		free(e->detail);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	rep->n_nodes++;
	rep->n_converted += converted ? 1 : 0;
	return BNF_OK;
}

/* Set integer attribute name of node to value, adding it when absent. */
static int set_int_attr(Onnx__NodeProto *node, const char *name, int64_t value)
{
	Onnx__AttributeProto *a = NULL, **list;
	size_t i;

	for (i = 0; i < node->n_attribute && !a; i++)
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			a = node->attribute[i];

	if (!a) {
		list = realloc(node->attribute, (node->n_attribute + 1) * sizeof(*list));
		if (!list)
			return -1;
		node->attribute = list;
		a = malloc(sizeof(*a));
		if (!a)
			return -1;
		onnx__attribute_proto__init(a);
		a->name = strdup(name);
		if (!a->name) {
			free(a);
			return -1;
		}
		node->attribute[node->n_attribute++] = a;
	}
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	a->has_i = 1;
	a->i = value;
	return 0;
}

static void remove_attr(Onnx__NodeProto *node, const char *name)
{
	size_t i, j = 0;
	for (i = 0; i < node->n_attribute; i++) {
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			onnx__attribute_proto__free_unpacked(node->attribute[i],
			                                     &bnf_large_allocator);
		else
			node->attribute[j++] = node->attribute[i];
	}
	node->n_attribute = j;
}

static int convert_bn(struct train_ctx *ctx, const struct bnf_graph *gi, Onnx__NodeProto *bn,
                      const char *path)
{
	char why[400], detail[600];
	size_t i;

	if (!bnf_bn_training_mode(gi, bn, why, sizeof(why)))
		return BNF_OK;
	for (i = 1; i < bn->n_output; i++) {
		const char *out = bn->output[i];
		if (out[0] && (bnf_graph_uses(gi, out) > 0 || bnf_graph_is_output(gi, out))) {
			snprintf(detail, sizeof(detail),
			         "left in training mode: its running-statistics output '%s' is %s",
			         out,
			         bnf_graph_is_output(gi, out) ? "a graph output"
			                                      : "read by another node");
			return add_entry(ctx, bn, path, 0, detail);
		}
	}
	snprintf(detail, sizeof(detail), "converted to eval mode (%s)", why);
	for (i = 1; i < bn->n_output; i++) {
		if (bn->output[i][0])
			bnf_graph_remove_value_info(gi->g, bn->output[i]);
		if (throw_away(ctx, bn->output[i]) != BNF_OK)
			return BNF_ERR_NOMEM;
	}
	if (bn->n_output > 1)
		bn->n_output = 1;
	remove_attr(bn, "training_mode");
	if (ctx->opset < 7 && set_int_attr(bn, "is_test", 1) != 0)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	return add_entry(ctx, bn, path, 1, detail);
}

static int convert_dropout(struct train_ctx *ctx, const struct bnf_graph *gi, Onnx__NodeProto *node,
                           const char *path)
{
	char why[400], detail[600];

	if (!bnf_dropout_training_mode(gi, node, why, sizeof(why)))
		return BNF_OK;
	snprintf(detail, sizeof(detail), "converted to eval mode (%s)", why);
	if (ctx->opset < 7) {
		if (set_int_attr(node, "is_test", 1) != 0)
			return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	} else {
		/* training_mode is the last input: dropping it leaves the default,
		 * false. The constant itself stays for whoever else reads it. */
		if (throw_away(ctx, node->input[2]) != BNF_OK)
			return BNF_ERR_NOMEM;
		node->n_input = 2;
	}
	return add_entry(ctx, node, path, 1, detail);
}

/* Convert one node when it runs in training mode. */
static int train_node(struct bnf_graph *gi, Onnx__NodeProto *node, const char *path, void *arg)
{
	struct train_ctx *ctx = arg;

	if (bnf_node_is(node, "BatchNormalization"))
		return convert_bn(ctx, gi, node, path);
	if (bnf_node_is(node, "Dropout"))
		return convert_dropout(ctx, gi, node, path);
	return BNF_OK;
}

int bnf_train_mode_to_eval(Onnx__ModelProto *model, struct bnf_train_report *rep,
                           struct bnf_error *err)
{
	struct train_ctx ctx;
	size_t i;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.rep = rep;
	ctx.err = err;
	ctx.opset = bnf_model_opset(model);
	if (!model->graph)
		return bnf_fail(err, BNF_ERR_INPUT, "the model has no graph");
	{
		struct bnf_walk walk = {train_node, &ctx, ctx.opset, err};
		rc = bnf_graph_walk(&walk, model->graph, NULL, "");
	}
	for (i = 0; i < ctx.n_garbage; i++)
		free(ctx.garbage[i]);
	free(ctx.garbage);
	return rc;
}

void bnf_train_report_free(struct bnf_train_report *rep)
{
	size_t i;
	if (!rep)
		return;
	for (i = 0; i < rep->n_nodes; i++) {
		free(rep->nodes[i].op);
		free(rep->nodes[i].node);
		free(rep->nodes[i].graph);
		free(rep->nodes[i].detail);
	}
	free(rep->nodes);
	memset(rep, 0, sizeof(*rep));
}
