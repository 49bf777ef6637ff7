/*
 * Values computed only from constants, found by their structure: the
 * subgraph of pure operators (Reshape, Unsqueeze, Cast, Concat, ...) that
 * computes a value from initializers and Constant nodes alone. The folds
 * evaluate such values (fold/constants.c); the check's pair models carry
 * the subgraph along.
 */
#include "graph/graph.h"

#include <stdlib.h>
#include <string.h>

#define CONST_MAX_DEPTH 32

/* The operators a computed constant may pass through: pure functions of
 * their inputs that the evaluator runs, moving, casting or doing simple
 * arithmetic on values. Nothing with a subgraph, state or randomness. */
static const char *const constant_ops[] = {
    "Identity", "Reshape",   "Unsqueeze",  "Squeeze",
    "Flatten",  "Transpose", "Concat",     "Expand",
    "Tile",     "Cast",      "Gather",     "Slice",
    "Shape",    "Split",     "Range",      "ConstantOfShape",
    "Add",      "Sub",       "Mul",        "Div",
    "Neg",      "Sqrt",      "Reciprocal", "Abs",
    "Pow",      "Constant",
};

int bnf_node_is_constant_op(const Onnx__NodeProto *node)
{
	size_t i;

	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->g || node->attribute[i]->n_graphs)
			return 0;
	for (i = 0; i < sizeof(constant_ops) / sizeof(constant_ops[0]); i++)
		if (bnf_node_is(node, constant_ops[i]))
			return 1;
	return 0;
}

static int plan_has_node(const struct bnf_const_plan *p, const Onnx__NodeProto *node)
{
	size_t i;
	for (i = 0; i < p->n_nodes; i++)
		if (p->nodes[i] == node)
			return 1;
	return 0;
}

static int plan_value(const struct bnf_graph *gi, const char *name, struct bnf_const_plan *p,
                      int depth)
{
	struct bnf_const_ref ref;
	Onnx__NodeProto *node;
	size_t i;

	if (bnf_graph_constant(gi, name, &ref)) {
		for (i = 0; i < p->n_leaves; i++)
			if (strcmp(p->leaf_names[i], name) == 0)
				return 1;
		if (p->n_leaves == BNF_CONST_PLAN_LEAVES)
			return 0;
		p->leaf_names[p->n_leaves] = name;
		p->leaves[p->n_leaves++] = ref.tensor;
		return 1;
	}
	node = bnf_graph_producer(gi, name, NULL);
	if (!node || depth > CONST_MAX_DEPTH || !bnf_node_is_constant_op(node) ||
	    bnf_node_is(node, "Constant"))
		return 0;
	if (plan_has_node(p, node))
		return 1;
	for (i = 0; i < node->n_input; i++)
		if (node->input[i][0] && !plan_value(gi, node->input[i], p, depth + 1))
			return 0;
	if (p->n_nodes == BNF_CONST_PLAN_NODES)
		return 0;
	p->nodes[p->n_nodes++] = node; /* after everything it reads */
	return 1;
}

int bnf_graph_plan_constant(const struct bnf_graph *gi, const char *name, struct bnf_const_plan *p)
{
	memset(p, 0, sizeof(*p));
	return plan_value(gi, name, p, 0);
}

int bnf_graph_is_computed_constant(const struct bnf_graph *gi, const char *name)
{
	struct bnf_const_plan *p = malloc(sizeof(*p));
	int yes = p && bnf_graph_plan_constant(gi, name, p);

	free(p);
	return yes;
}
