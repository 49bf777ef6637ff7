/*
 * Building and querying the graph index (see graph.h). Reader counts cover
 * nested subgraphs, because an If or Loop body may read an outer value by
 * name: such a read must stop a fold as surely as a direct one.
 */
#include "graph/graph.h"

#include "io/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* Tensors the index builds for Constant nodes written with value_float,
 * value_floats, value_int or value_ints, so that folds see every constant
 * as a TensorProto. Owned by the index. */
struct bnf_graph_synth {
	Onnx__TensorProto **tensors;
	const Onnx__NodeProto **nodes;
	size_t n;
};

void bnf_subgraph_path(char *buf, size_t len, const char *path, const Onnx__NodeProto *node,
                       const Onnx__GraphProto *sub)
{
	snprintf(buf, len, "%s%s%s/%s", path, path[0] ? "/" : "", bnf_node_label(node),
	         sub->name ? sub->name : "body");
}

int bnf_node_for_each_subgraph(Onnx__NodeProto *node, int (*fn)(Onnx__GraphProto *sub, void *arg),
                               void *arg)
{
	size_t i, j;
	int rc;

	for (i = 0; i < node->n_attribute; i++) {
		Onnx__AttributeProto *a = node->attribute[i];
		if (a->g && (rc = fn(a->g, arg)) != 0)
			return rc;
		for (j = 0; j < a->n_graphs; j++)
			if ((rc = fn(a->graphs[j], arg)) != 0)
				return rc;
	}
	return 0;
}

/* Count every node input of a subgraph (and its subgraphs) as a reader in
 * the outer index. Names the subgraph defines itself are counted too: an
 * over-count can only make a fold more cautious. Depth is bounded so a
 * hostile model cannot exhaust the stack. */
struct count_ctx {
	struct bnf_strmap *uses;
	int depth;
};

static int count_subgraph_uses(Onnx__GraphProto *sub, void *arg)
{
	struct count_ctx *ctx = arg;
	size_t i, j;
	int rc = 0;

	if (ctx->depth >= BNF_LIMIT_GRAPH_DEPTH)
		return -2;
	ctx->depth++;
	for (i = 0; i < sub->n_node && rc == 0; i++) {
		for (j = 0; j < sub->node[i]->n_input; j++)
			if (sub->node[i]->input[j][0] &&
			    bnf_strmap_add(ctx->uses, sub->node[i]->input[j], 1) != 0)
				rc = -1;
		if (rc == 0)
			rc = bnf_node_for_each_subgraph(sub->node[i], count_subgraph_uses, ctx);
	}
	for (i = 0; i < sub->n_output && rc == 0; i++)
		if (sub->output[i]->name && bnf_strmap_add(ctx->uses, sub->output[i]->name, 1) != 0)
			rc = -1;
	ctx->depth--;
	return rc;
}

int bnf_graph_build(struct bnf_graph *gi, Onnx__GraphProto *g, const struct bnf_graph *parent,
                    int opset, struct bnf_error *err)
{
	struct count_ctx ctx;
	size_t i, j;
	int rc;

	memset(gi, 0, sizeof(*gi));
	gi->synth = calloc(1, sizeof(*gi->synth));
	if (!gi->synth)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory indexing a graph");
	gi->g = g;
	gi->parent = parent;
	gi->opset = opset;
	gi->frozen_inputs = parent ? parent->frozen_inputs : 0;
	bnf_strmap_init(&gi->producer);
	bnf_strmap_init(&gi->initializer);
	bnf_strmap_init(&gi->uses);
	bnf_strmap_init(&gi->inputs);
	bnf_strmap_init(&gi->outputs);
	ctx.uses = &gi->uses;
	ctx.depth = 0;

	for (i = 0; i < g->n_initializer; i++)
		if (g->initializer[i]->name &&
		    bnf_strmap_put(&gi->initializer, g->initializer[i]->name, i))
			goto nomem;
	for (i = 0; i < g->n_input; i++)
		if (g->input[i]->name && bnf_strmap_put(&gi->inputs, g->input[i]->name, i))
			goto nomem;
	for (i = 0; i < g->n_output; i++)
		if (g->output[i]->name && bnf_strmap_put(&gi->outputs, g->output[i]->name, i))
			goto nomem;
	for (i = 0; i < g->n_node; i++) {
		Onnx__NodeProto *node = g->node[i];
		for (j = 0; j < node->n_output; j++) {
			if (!node->output[j][0])
				continue;
			if (bnf_strmap_get(&gi->producer, node->output[j], NULL))
				return bnf_fail(
				    err, BNF_ERR_INPUT,
				    "value '%s' is produced by more than one node (node '%s')",
				    node->output[j], bnf_node_label(node));
			if (bnf_strmap_put(&gi->producer, node->output[j], i))
				goto nomem;
		}
		for (j = 0; j < node->n_input; j++)
			if (node->input[j][0] && bnf_strmap_add(&gi->uses, node->input[j], 1))
				goto nomem;
		rc = bnf_node_for_each_subgraph(node, count_subgraph_uses, &ctx);
		if (rc == -2)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "node '%s': subgraphs nested more than 64 deep",
			                bnf_node_label(node));
		if (rc)
			goto nomem;
	}
	return BNF_OK;
nomem:
	return bnf_fail(err, BNF_ERR_NOMEM, "out of memory indexing graph '%s'",
	                g->name ? g->name : "");
}

void bnf_graph_release(struct bnf_graph *gi)
{
	size_t i;

	if (gi->synth) {
		for (i = 0; i < gi->synth->n; i++)
			onnx__tensor_proto__free_unpacked(gi->synth->tensors[i],
			                                  &bnf_large_allocator);
		free(gi->synth->tensors);
		free(gi->synth->nodes);
		free(gi->synth);
		gi->synth = NULL;
	}
	bnf_strmap_free(&gi->producer);
	bnf_strmap_free(&gi->initializer);
	bnf_strmap_free(&gi->uses);
	bnf_strmap_free(&gi->inputs);
	bnf_strmap_free(&gi->outputs);
}

Onnx__NodeProto *bnf_graph_producer(const struct bnf_graph *gi, const char *name, size_t *index)
{
	size_t i;

	if (!bnf_strmap_get(&gi->producer, name, &i))
		return NULL;
	if (index)
		*index = i;
	return gi->g->node[i];
}

size_t bnf_graph_uses(const struct bnf_graph *gi, const char *name)
{
	return bnf_strmap_value(&gi->uses, name);
}

int bnf_graph_is_output(const struct bnf_graph *gi, const char *name)
{
	return bnf_strmap_get(&gi->outputs, name, NULL);
}

int bnf_graph_name_taken(const struct bnf_graph *gi, const char *name)
{
	for (; gi; gi = gi->parent)
		if (bnf_strmap_get(&gi->producer, name, NULL) ||
		    bnf_strmap_get(&gi->initializer, name, NULL) ||
		    bnf_strmap_get(&gi->inputs, name, NULL) ||
		    bnf_strmap_get(&gi->uses, name, NULL))
			return 1;
	return 0;
}

/* The tensor of a Constant node written with a list attribute, built once
 * and cached in the index. */
static const Onnx__TensorProto *synth_constant(const struct bnf_graph *gi,
                                               const Onnx__NodeProto *node,
                                               const Onnx__AttributeProto *a)
{
	struct bnf_graph_synth *sy = gi->synth;
	Onnx__TensorProto *t, **tp;
	const Onnx__NodeProto **np;
	int is_list = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS ||
	              a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	int is_float = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT ||
	               a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
	size_t i, n = is_list ? (is_float ? a->n_floats : a->n_ints) : 1;

	for (i = 0; i < sy->n; i++)
		if (sy->nodes[i] == node)
			return sy->tensors[i];
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	onnx__tensor_proto__init(t);
	t->name = strdup(node->output[0]);
	t->dims = malloc(sizeof(*t->dims));
	if (is_float)
		t->float_data = malloc((n ? n : 1) * sizeof(float));
	else
		t->int64_data = malloc((n ? n : 1) * sizeof(int64_t));
	tp = realloc(sy->tensors, (sy->n + 1) * sizeof(*tp));
	if (tp)
		sy->tensors = tp;
	np = realloc(sy->nodes, (sy->n + 1) * sizeof(*np));
	if (np)
		sy->nodes = np;
	if (!t->name || !t->dims || (is_float ? !t->float_data : !t->int64_data) || !tp || !np) {
		onnx__tensor_proto__free_unpacked(t, &bnf_large_allocator);
		return NULL;
	}
	t->has_data_type = 1;
	t->data_type =
	    is_float ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	if (is_list) {
		t->dims[0] = (int64_t)n;
		t->n_dims = 1;
	}
	for (i = 0; i < n; i++) {
		if (is_float)
			t->float_data[i] = is_list ? a->floats[i] : a->f;
		else
			t->int64_data[i] = is_list ? a->ints[i] : a->i;
	}
	if (is_float)
		t->n_float_data = n;
	else
		t->n_int64_data = n;
	sy->tensors[sy->n] = t;
	sy->nodes[sy->n] = node;
	sy->n++;
	return t;
}

int bnf_graph_constant(const struct bnf_graph *gi, const char *name, struct bnf_const_ref *ref)
{
	int hops = 0;

	memset(ref, 0, sizeof(*ref));
	while (gi && hops < 64) {
		size_t i;
		Onnx__NodeProto *node;

		if (bnf_strmap_get(&gi->initializer, name, &i)) {
			/* An initializer that is also a graph input is only a
			 * default: the caller may feed another value. */
			if (bnf_strmap_get(&gi->inputs, name, NULL) && !gi->frozen_inputs)
				return 0;
			ref->tensor = gi->g->initializer[i];
			ref->owner = gi;
			ref->is_initializer = 1;
			ref->index = i;
			return 1;
		}
		node = bnf_graph_producer(gi, name, &i);
		if (node) {
			const Onnx__AttributeProto *a;
			if (node->op_type && strcmp(node->op_type, "Identity") == 0 &&
			    (!node->domain || !node->domain[0]) && node->n_input == 1) {
				name = node->input[0];
				ref->through_identity = 1;
				hops++;
				continue;
			}
			if (!node->op_type || strcmp(node->op_type, "Constant") != 0 ||
			    (node->domain && node->domain[0]) || node->n_attribute != 1 ||
			    node->n_output != 1)
				return 0;
			a = node->attribute[0];
			ref->owner = gi;
			ref->index = i;
			if (a->name && strcmp(a->name, "value") == 0 && a->t) {
				ref->tensor = a->t;
				return 1;
			}
			if (!a->name || (strcmp(a->name, "value_float") != 0 &&
			                 strcmp(a->name, "value_floats") != 0 &&
			                 strcmp(a->name, "value_int") != 0 &&
			                 strcmp(a->name, "value_ints") != 0))
				return 0;
			ref->tensor = synth_constant(gi, node, a);
			ref->synthesized = 1;
			return ref->tensor != NULL;
		}
		/* A graph input (without initializer) is not a constant; any
		 * other name may come from the enclosing graph. */
		if (bnf_strmap_get(&gi->inputs, name, NULL))
			return 0;
		gi = gi->parent;
	}
	return 0;
}

int bnf_graph_is_overridable(const struct bnf_graph *gi, const char *name)
{
	int hops = 0;

	while (gi && hops++ < 64) {
		Onnx__NodeProto *node;
		if (bnf_strmap_get(&gi->initializer, name, NULL))
			return bnf_strmap_get(&gi->inputs, name, NULL) && !gi->frozen_inputs;
		node = bnf_graph_producer(gi, name, NULL);
		if (node) {
			if (!bnf_node_is(node, "Identity") || node->n_input != 1)
				return 0;
			name = node->input[0];
			continue;
		}
		if (bnf_strmap_get(&gi->inputs, name, NULL))
			return 0;
		gi = gi->parent;
	}
	return 0;
}

/* The graph of gi or its parents that defines name (by initializer or
 * node output), or NULL. */
Onnx__GraphProto *bnf_graph_owner(const struct bnf_graph *gi, const char *name)
{
	for (; gi; gi = gi->parent)
		if (bnf_strmap_get(&gi->initializer, name, NULL) ||
		    bnf_strmap_get(&gi->producer, name, NULL))
			return gi->g;
	return NULL;
}

static int shape_from_value_info(const Onnx__ValueInfoProto *vi, int64_t *dims, int max)
{
	const Onnx__TensorShapeProto *shape;
	size_t i;

	if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    !vi->type->tensor_type->shape)
		return -1;
	shape = vi->type->tensor_type->shape;
	for (i = 0; i < shape->n_dim && (int)i < max; i++) {
		const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
		dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
		              ? d->dim_value
		              : -1;
	}
	return (int)shape->n_dim;
}

int bnf_graph_value_shape(const struct bnf_graph *gi, const char *name, int64_t *dims, int max)
{
	size_t i;

	for (; gi; gi = gi->parent) {
		const Onnx__GraphProto *g = gi->g;
		for (i = 0; i < g->n_value_info; i++)
			if (g->value_info[i]->name && strcmp(g->value_info[i]->name, name) == 0)
				return shape_from_value_info(g->value_info[i], dims, max);
		for (i = 0; i < g->n_input; i++)
			if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0)
				return shape_from_value_info(g->input[i], dims, max);
		for (i = 0; i < g->n_output; i++)
			if (g->output[i]->name && strcmp(g->output[i]->name, name) == 0)
				return shape_from_value_info(g->output[i], dims, max);
	}
	return -1;
}

void bnf_graph_remove_value_info(Onnx__GraphProto *g, const char *name)
{
	size_t i, j = 0;
	for (i = 0; i < g->n_value_info; i++) {
		if (g->value_info[i]->name && strcmp(g->value_info[i]->name, name) == 0)
			onnx__value_info_proto__free_unpacked(g->value_info[i],
			                                      &bnf_large_allocator);
		else
			g->value_info[j++] = g->value_info[i];
	}
	g->n_value_info = j;
}

void bnf_graph_remove_input(Onnx__GraphProto *g, const char *name)
{
	size_t i, j = 0;
	for (i = 0; i < g->n_input; i++) {
		if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0)
			onnx__value_info_proto__free_unpacked(g->input[i], &bnf_large_allocator);
		else
			g->input[j++] = g->input[i];
	}
	g->n_input = j;
}

Onnx__ValueInfoProto *bnf_graph_value_info(const char *name, int dtype, int rank,
                                           const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = calloc(1, sizeof(*vi));
	Onnx__TypeProto *tp = calloc(1, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = calloc(1, sizeof(*tt));
	Onnx__TensorShapeProto *sh = calloc(1, sizeof(*sh));
	int i;

	if (!vi || !tp || !tt || !sh)
		goto fail;
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	vi->type = tp;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = dtype;
	if (rank >= 0) {
		tt->shape = sh;
		sh = NULL;
		tt->shape->dim = calloc((size_t)rank + 1, sizeof(*tt->shape->dim));
		if (!tt->shape->dim)
			goto fail_tree;
		for (i = 0; i < rank; i++) {
			Onnx__TensorShapeProto__Dimension *d = calloc(1, sizeof(*d));
			if (!d)
				goto fail_tree;
			onnx__tensor_shape_proto__dimension__init(d);
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[i];
			tt->shape->dim[tt->shape->n_dim++] = d;
		}
	}
	free(sh);
	vi->name = strdup(name);
	if (!vi->name)
		goto fail_tree;
	return vi;
fail_tree:
	free(sh);
	onnx__value_info_proto__free_unpacked(vi, &bnf_large_allocator);
	return NULL;
fail:
	free(vi);
	free(tp);
	free(tt);
	free(sh);
	return NULL;
}

int bnf_graph_append_input_for(Onnx__GraphProto *g, const Onnx__TensorProto *t)
{
	Onnx__ValueInfoProto *vi =
	    bnf_graph_value_info(t->name, t->data_type, (int)t->n_dims, t->dims);
	Onnx__ValueInfoProto **p;

	if (!vi)
		return -1;
	p = realloc(g->input, (g->n_input + 1) * sizeof(*p));
	if (!p) {
		onnx__value_info_proto__free_unpacked(vi, &bnf_large_allocator);
		return -1;
	}
	g->input = p;
	g->input[g->n_input++] = vi;
	return 0;
}

struct walk_step {
	const struct bnf_walk *walk;
	const struct bnf_graph *parent;
	const char *path;
	const Onnx__NodeProto *node;
	int depth;
};

static int walk_graph(const struct bnf_walk *walk, Onnx__GraphProto *g,
                      const struct bnf_graph *parent, const char *path, int depth);

static int walk_subgraph_cb(Onnx__GraphProto *sub, void *arg)
{
	struct walk_step *step = arg;
	char path[512];

	bnf_subgraph_path(path, sizeof(path), step->path, step->node, sub);
	return walk_graph(step->walk, sub, step->parent, path, step->depth + 1);
}

static int walk_graph(const struct bnf_walk *walk, Onnx__GraphProto *g,
                      const struct bnf_graph *parent, const char *path, int depth)
{
	struct bnf_graph gi;
	size_t i;
	int rc;

	memset(&gi, 0, sizeof(gi));
	if (depth > BNF_LIMIT_GRAPH_DEPTH) {
		rc = bnf_fail(walk->err, BNF_ERR_INPUT,
		              "subgraphs nested more than 64 deep at '%s'", path);
		goto out;
	}
	if ((rc = bnf_graph_build(&gi, g, parent, walk->opset, walk->err)) != BNF_OK)
		goto out;
	for (i = 0; i < g->n_node && rc == BNF_OK; i++) {
		struct walk_step step = {walk, &gi, path, g->node[i], depth};

		rc = walk->visit(&gi, g->node[i], path, walk->arg);
		if (rc == BNF_OK)
			rc = bnf_node_for_each_subgraph(g->node[i], walk_subgraph_cb, &step);
	}
out:
	bnf_graph_release(&gi);
	return rc;
}

int bnf_graph_walk(const struct bnf_walk *walk, Onnx__GraphProto *g, const struct bnf_graph *parent,
                   const char *path)
{
	return walk_graph(walk, g, parent, path, 0);
}

int bnf_graph_append_initializer(Onnx__GraphProto *g, Onnx__TensorProto *t)
{
	Onnx__TensorProto **p = realloc(g->initializer, (g->n_initializer + 1) * sizeof(*p));
	if (!p)
		return -1;
	p[g->n_initializer++] = t;
	g->initializer = p;
	return 0;
}

int bnf_node_append_input(Onnx__NodeProto *node, const char *name)
{
	char *copy = strdup(name);
	char **p;

	if (!copy)
		return -1;
	p = realloc(node->input, (node->n_input + 1) * sizeof(*p));
	if (!p) {
		free(copy);
		return -1;
	}
	p[node->n_input++] = copy;
	node->input = p;
	return 0;
}

/* ---- counts ---- */

struct counts {
	size_t nodes, initializers;
	int depth;
};

static int count_graph(Onnx__GraphProto *g, void *arg)
{
	struct counts *c = arg;
	size_t i;

	c->nodes += g->n_node;
	c->initializers += g->n_initializer;
	if (c->depth++ > BNF_LIMIT_GRAPH_DEPTH)
		return BNF_OK;
	for (i = 0; i < g->n_node; i++)
		bnf_node_for_each_subgraph(g->node[i], count_graph, c);
	c->depth--;
	return BNF_OK;
}

void bnf_model_count(const Onnx__ModelProto *model, size_t *nodes, size_t *initializers)
{
	struct counts c = {0, 0, 0};
	if (model->graph)
		count_graph(model->graph, &c);
	*nodes = c.nodes;
	*initializers = c.initializers;
}

Onnx__TensorProto *bnf_graph_constant_in_tree(const struct bnf_const_ref *ref)
{
	const Onnx__GraphProto *g = ref->owner->g;
	const Onnx__NodeProto *node;
	size_t i;

	if (ref->synthesized)
		return NULL;
	if (ref->is_initializer)
		return ref->index < g->n_initializer && g->initializer[ref->index] == ref->tensor
		           ? g->initializer[ref->index]
		           : NULL;
	if (ref->index >= g->n_node)
		return NULL;
	node = g->node[ref->index];
	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->t == ref->tensor)
			return node->attribute[i]->t;
	return NULL;
}
