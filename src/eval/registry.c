/*
 * Operator lookup: the one place that reads the family tables. Operators
 * and their helpers never call back into it. It also lists what the
 * tables hold (bnfold --list-ops) and what a model needs that they lack,
 * so neither list can drift from the code.
 */
#include "eval/eval.h"
#include "eval/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct bnf_op *const tables[] = {
    bnf_ops_ctrl, bnf_ops_nn,    bnf_ops_basic,  bnf_ops_shape, bnf_ops_logic,
    bnf_ops_math, bnf_ops_index, bnf_ops_vision, bnf_ops_quant, bnf_ops_signal,
};

static int row_covers(const struct bnf_op *row, int opset)
{
	return row->min_opset <= opset && (row->max_opset == 0 || opset <= row->max_opset);
}

const struct bnf_op *bnf_op_find(const char *op_type, int opset)
{
	const struct bnf_op *best = NULL;
	const struct bnf_op *row;
	size_t i;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		for (row = tables[i]; row->op_type; row++) {
			if (strcmp(row->op_type, op_type) != 0 || !row_covers(row, opset))
				continue;
			if (!best || row->min_opset > best->min_opset)
				best = row;
		}
	}
	return best;
}

static int range_order(const void *pa, const void *pb)
{
	const struct bnf_op_range *a = pa, *b = pb;
	int c = strcmp(a->op_type, b->op_type);

	return c ? c : (a->first > b->first) - (a->first < b->first);
}

size_t bnf_op_ranges(struct bnf_op_range **out)
{
	const struct bnf_op *row;
	struct bnf_op_range *r;
	size_t n = 0, i, k;

	*out = NULL;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		for (row = tables[i]; row->op_type; row++)
			n++;
	r = calloc(n + 1, sizeof(*r));
	if (!r)
		return 0;
	k = 0;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		for (row = tables[i]; row->op_type; row++) {
			r[k].op_type = row->op_type;
			r[k].first = row->min_opset;
			r[k].last = row->max_opset;
			k++;
		}
	}
	qsort(r, n, sizeof(*r), range_order);
	/* An open row followed by a later row of the same operator ends
	 * where that one begins. */
	for (k = 0; k + 1 < n; k++)
		if (strcmp(r[k].op_type, r[k + 1].op_type) == 0 &&
		    (r[k].last == 0 || r[k].last >= r[k + 1].first))
			r[k].last = r[k + 1].first - 1;
	*out = r;
	return n;
}

int bnf_op_is_default_domain(const char *domain)
{
	return !domain || domain[0] == '\0' || strcmp(domain, "ai.onnx") == 0;
}

static const struct bnf_op *find_op(const Onnx__NodeProto *node, int opset)
{
	if (!bnf_op_is_default_domain(node->domain) || !node->op_type)
		return NULL;
	return bnf_op_find(node->op_type, opset);
}

int bnf_op_model_opset(const Onnx__ModelProto *model)
{
	size_t i;

	for (i = 0; i < model->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = model->opset_import[i];
		if (bnf_op_is_default_domain(o->domain) && o->has_version)
			return (int)o->version;
	}
	return -1;
}

/* What bnf_eval_find_unsupported gathers: one node for each distinct
 * operator missing, and the text written so far. */
struct unsupported {
	const Onnx__NodeProto **seen; /* first node of each operator listed */
	size_t count, cap;
	char *ops;
	size_t ops_len, used;
	int truncated;
};

static int same_operator(const Onnx__NodeProto *a, const Onnx__NodeProto *b)
{
	int da = bnf_op_is_default_domain(a->domain), db = bnf_op_is_default_domain(b->domain);

	return strcmp(a->op_type ? a->op_type : "", b->op_type ? b->op_type : "") == 0 &&
	       da == db && (da || strcmp(a->domain, b->domain) == 0);
}

/* Add the operator of node to the list unless it is there already. */
static void note_unsupported(struct unsupported *u, const Onnx__NodeProto *node)
{
	const Onnx__NodeProto **grown;
	char name[256];
	size_t i, n;
	int dflt = bnf_op_is_default_domain(node->domain);

	for (i = 0; i < u->count; i++)
		if (same_operator(u->seen[i], node))
			return;
	if (u->count == u->cap) {
		grown = realloc(u->seen, (u->cap * 2 + 8) * sizeof(*grown));
		if (!grown) {
			u->truncated = 1; /* the list stops; the count is a lower bound */
			return;
		}
		u->seen = grown;
		u->cap = u->cap * 2 + 8;
	}
	u->seen[u->count++] = node;
	snprintf(name, sizeof(name), "%s%s%s", dflt ? "" : node->domain, dflt ? "" : ".",
	         node->op_type ? node->op_type : "");
	n = strlen(name);
	if (u->truncated || !u->ops_len)
		return;
	/* Room for the name, its separator and a closing ", ..." mark. */
	if (u->used + n + 2 + 5 >= u->ops_len) {
		u->truncated = 1;
		snprintf(u->ops + u->used, u->ops_len - u->used, "%s...", u->used ? ", " : "");
		return;
	}
	u->used += (size_t)snprintf(u->ops + u->used, u->ops_len - u->used, "%s%s",
	                            u->used ? ", " : "", name);
}

static void find_unsupported_in(const Onnx__GraphProto *g, int opset, int depth,
                                struct unsupported *u)
{
	size_t i, j, k;

	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		if (!find_op(node, opset))
			note_unsupported(u, node);
		for (j = 0; depth < BNF_EVAL_MAX_DEPTH && j < node->n_attribute; j++) {
			const Onnx__AttributeProto *a = node->attribute[j];
			if (a->g)
				find_unsupported_in(a->g, opset, depth + 1, u);
			for (k = 0; k < a->n_graphs; k++)
				find_unsupported_in(a->graphs[k], opset, depth + 1, u);
		}
	}
}

size_t bnf_eval_find_unsupported(const Onnx__ModelProto *model, char *op_types, size_t op_len,
                                 char *node_name, size_t node_len)
{
	struct unsupported u;

	memset(&u, 0, sizeof(u));
	u.ops = op_types;
	u.ops_len = op_len;
	if (op_len)
		op_types[0] = '\0';
	if (node_len)
		node_name[0] = '\0';
	if (model->graph)
		find_unsupported_in(model->graph, bnf_op_model_opset(model), 0, &u);
	if (u.count && node_len)
		snprintf(node_name, node_len, "%s", bnf_node_label(u.seen[0]));
	free(u.seen);
	return u.count;
}
