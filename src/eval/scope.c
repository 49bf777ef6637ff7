/*
 * The free names of subgraphs: what an If branch or a Loop or Scan body
 * reads from the graphs around it. A name is free in a graph when it is
 * read there (or free in a graph nested in it) and the graph defines it
 * neither as an input, an initializer nor a node output.
 */
#include "eval/scope.h"

#include <stdlib.h>

#include "util/strmap.h"

void bnf_name_list_free(struct bnf_name_list *l)
{
	free(l->names);
	l->names = NULL;
	l->n = l->cap = 0;
}

/* Append name unless seen (a map of the names already in l). */
static int add_name(struct bnf_name_list *l, struct bnf_strmap *seen, const char *name)
{
	const char **grown;

	if (!name || !name[0] || bnf_strmap_get(seen, name, NULL))
		return 0;
	if (l->n == l->cap) {
		grown = realloc(l->names, (l->cap * 2 + 8) * sizeof(*grown));
		if (!grown)
			return -1;
		l->names = grown;
		l->cap = l->cap * 2 + 8;
	}
	l->names[l->n++] = name;
	return bnf_strmap_put(seen, name, 1);
}

static int graph_free_names(const Onnx__GraphProto *g, struct bnf_name_list *out,
                            struct bnf_strmap *seen);

/* The free names of node's subgraphs that g does not define, into out. */
static int node_free_names(const Onnx__NodeProto *node, const struct bnf_strmap *defined,
                           struct bnf_name_list *out, struct bnf_strmap *seen)
{
	struct bnf_name_list inner = {0};
	struct bnf_strmap inner_seen;
	size_t j, k;
	int rc = 0;

	bnf_strmap_init(&inner_seen);
	for (j = 0; rc == 0 && j < node->n_attribute; j++) {
		const Onnx__AttributeProto *a = node->attribute[j];
		if (a->g)
			rc = graph_free_names(a->g, &inner, &inner_seen);
		for (k = 0; rc == 0 && k < a->n_graphs; k++)
			rc = graph_free_names(a->graphs[k], &inner, &inner_seen);
	}
	for (k = 0; rc == 0 && k < inner.n; k++)
		if (!defined || !bnf_strmap_get(defined, inner.names[k], NULL))
			rc = add_name(out, seen, inner.names[k]);
	bnf_name_list_free(&inner);
	bnf_strmap_free(&inner_seen);
	return rc;
}

static int graph_free_names(const Onnx__GraphProto *g, struct bnf_name_list *out,
                            struct bnf_strmap *seen)
{
	struct bnf_strmap defined;
	size_t i, j;
	int rc = 0;

	bnf_strmap_init(&defined);
	for (i = 0; rc == 0 && i < g->n_input; i++)
		if (g->input[i]->name)
			rc = bnf_strmap_put(&defined, g->input[i]->name, 1);
	for (i = 0; rc == 0 && i < g->n_initializer; i++)
		if (g->initializer[i]->name)
			rc = bnf_strmap_put(&defined, g->initializer[i]->name, 1);
	for (i = 0; rc == 0 && i < g->n_node; i++)
		for (j = 0; rc == 0 && j < g->node[i]->n_output; j++)
			if (g->node[i]->output[j] && g->node[i]->output[j][0])
				rc = bnf_strmap_put(&defined, g->node[i]->output[j], 1);
	for (i = 0; rc == 0 && i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		for (j = 0; rc == 0 && j < node->n_input; j++)
			if (node->input[j] && !bnf_strmap_get(&defined, node->input[j], NULL))
				rc = add_name(out, seen, node->input[j]);
		if (rc == 0)
			rc = node_free_names(node, &defined, out, seen);
	}
	for (i = 0; rc == 0 && i < g->n_output; i++)
		if (g->output[i]->name && !bnf_strmap_get(&defined, g->output[i]->name, NULL))
			rc = add_name(out, seen, g->output[i]->name);
	bnf_strmap_free(&defined);
	return rc;
}

int bnf_scope_outer_reads(const Onnx__NodeProto *node, struct bnf_name_list *l)
{
	struct bnf_strmap seen;
	size_t i;
	int rc = 0;

	bnf_strmap_init(&seen);
	for (i = 0; rc == 0 && i < l->n; i++)
		rc = bnf_strmap_put(&seen, l->names[i], 1);
	if (rc == 0)
		rc = node_free_names(node, NULL, l, &seen);
	bnf_strmap_free(&seen);
	return rc;
}
