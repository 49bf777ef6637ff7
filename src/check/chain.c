/*
 * Cutting a fold's chain out of a model for the per-fold check (chain.h):
 * the chain of nodes, an input shape that reads every weight, and the
 * squares twin that gives each output element its rounding scale.
 */
#include "check/chain.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/tensor.h"
#include "io/external.h"
#include "io/validate.h"
#include "util/le.h"
#include "util/mem.h"
/* A deep copy of any message of the tree: pack and unpack. */
void *bnf_chain_copy_message(const void *msg, const ProtobufCMessageDescriptor *desc)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	void *copy = NULL;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(msg, buf);
	copy = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	return copy;
}

/* The bytes of a message, packed; NULL when out of memory. */
static uint8_t *packed(const void *msg, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(msg);
	buf = malloc(*len ? *len : 1);
	if (buf)
		protobuf_c_message_pack(msg, buf);
	return buf;
}

int bnf_chain_same_message(const void *x, const void *y)
{
	size_t lx, ly;
	uint8_t *bx = packed(x, &lx), *by = packed(y, &ly);
	int same = bx && by && lx == ly && memcmp(bx, by, lx) == 0;

	free(bx);
	free(by);
	return same;
}

int bnf_chain_append(void ***arr, size_t *n, void *item)
{
	void **p = realloc(*arr, (*n + 1) * sizeof(*p));
	if (!p)
		return -1;
	p[(*n)++] = item;
	*arr = p;
	return 0;
}

/* Index g as index[depth] of the site. Returns 1, or 0 (released). */
static int index_graph(Onnx__GraphProto *g, int opset, struct bnf_pair_site *site, int depth)
{
	struct bnf_graph *gi = &site->index[depth];

	if (depth >= BNF_LIMIT_GRAPH_DEPTH ||
	    bnf_graph_build(gi, g, depth ? &site->index[depth - 1] : NULL, opset, NULL) != BNF_OK) {
		bnf_graph_release(gi);
		return 0;
	}
	/* Both runs of a fold's pair take an initializer listed as a graph
	 * input at its initializer's value, as the whole-graph check does: a
	 * constant here (folds of IR < 4 models, --freeze-initializer-inputs). */
	gi->frozen_inputs = 1;
	return 1;
}

/* Search the graph of index[depth] (built) and, indexing them, its
 * subgraphs. */
static int search_site(const char *output, const char *op_type, struct bnf_pair_site *site,
                       int depth)
{
	const struct bnf_graph *gi = &site->index[depth];
	Onnx__GraphProto *g = gi->g;
	Onnx__NodeProto *node = bnf_graph_producer(gi, output, NULL);
	size_t i, j, k;

	if (node && (!op_type || bnf_node_is(node, op_type))) {
		site->depth = depth;
		site->node = node;
		return 1;
	}
	for (i = 0; i < g->n_node; i++)
		for (j = 0; j < g->node[i]->n_attribute; j++) {
			Onnx__AttributeProto *a = g->node[i]->attribute[j];
			if (a->g &&
			    bnf_chain_find_site(a->g, gi->opset, output, op_type, site, depth + 1))
				return 1;
			for (k = 0; k < a->n_graphs; k++)
				if (bnf_chain_find_site(a->graphs[k], gi->opset, output, op_type,
				                        site, depth + 1))
					return 1;
		}
	return 0;
}

/* Find, in g and its subgraphs, the node producing `output` (with op type
 * op_type when given). Indexes every graph on the path. */
int bnf_chain_find_site(Onnx__GraphProto *g, int opset, const char *output, const char *op_type,
                        struct bnf_pair_site *site, int depth)
{
	if (!index_graph(g, opset, site, depth))
		return 0;
	if (search_site(output, op_type, site, depth))
		return 1;
	bnf_graph_release(&site->index[depth]);
	return 0;
}

int bnf_chain_index_main(Onnx__GraphProto *g, int opset, struct bnf_pair_site *site)
{
	site->depth = 0;
	return index_graph(g, opset, site, 0);
}

int bnf_chain_find_site_in(struct bnf_pair_site *site, const char *output, const char *op_type)
{
	site->depth = 0;
	return search_site(output, op_type, site, 0);
}

void bnf_chain_release_subsites(struct bnf_pair_site *site)
{
	for (; site->depth > 0; site->depth--)
		bnf_graph_release(&site->index[site->depth]);
}

void bnf_chain_release_site(struct bnf_pair_site *site)
{
	int d;
	for (d = 0; d <= site->depth; d++)
		bnf_graph_release(&site->index[d]);
}

/* Free a chain model: its initializers are shallow copies of the source
 * model's tensors, of which only the struct and the name are its own. */
void bnf_chain_model_free(Onnx__ModelProto *m)
{
	Onnx__GraphProto *g;
	size_t i;

	if (!m)
		return;
	g = m->graph;
	for (i = 0; g && i < g->n_initializer; i++) {
		free(g->initializer[i]->name);
		free(g->initializer[i]);
	}
	if (g) {
		free(g->initializer);
		g->initializer = NULL;
		g->n_initializer = 0;
	}
	onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
}

/* Make the constant t, read as name, an initializer of g (once): a
 * shallow copy, the weights are borrowed. Returns 0 or -1. */
static int add_borrowed_initializer(Onnx__GraphProto *g, const char *name,
                                    const Onnx__TensorProto *t)
{
	Onnx__TensorProto *copy;
	size_t j;

	for (j = 0; j < g->n_initializer; j++)
		if (strcmp(g->initializer[j]->name, name) == 0)
			return 0;
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -1;
	*copy = *t;
	copy->name = strdup(name);
	if (!copy->name || bnf_chain_append((void ***)&g->initializer, &g->n_initializer, copy)) {
		free(copy->name);
		free(copy);
		return -1;
	}
	return 0;
}

/* A value computed only from constants (Reshape of a Constant, ...):
 * its subgraph and constants go into g too. Returns 0 or -1. */
static int add_constant_subgraph(Onnx__GraphProto *g, const struct bnf_graph *gi, const char *name)
{
	struct bnf_const_plan *plan = malloc(sizeof(*plan));
	size_t i, j;
	int rc = -1;

	if (!plan || !bnf_graph_plan_constant(gi, name, plan))
		goto out;
	for (i = 0; i < plan->n_leaves; i++)
		if (add_borrowed_initializer(g, plan->leaf_names[i], plan->leaves[i]) != 0)
			goto out;
	for (i = 0; i < plan->n_nodes; i++) {
		Onnx__NodeProto *copy;
		for (j = 0; j < g->n_node; j++)
			if (g->node[j]->n_output && plan->nodes[i]->n_output &&
			    strcmp(g->node[j]->output[0], plan->nodes[i]->output[0]) == 0)
				break;
		if (j < g->n_node)
			continue; /* another input's subgraph brought it already */
		copy = bnf_chain_copy_message(plan->nodes[i], &onnx__node_proto__descriptor);
		if (!copy || bnf_chain_append((void ***)&g->node, &g->n_node, copy)) {
			if (copy)
				onnx__node_proto__free_unpacked(copy, &bnf_large_allocator);
			goto out;
		}
	}
	rc = 0;
out:
	free(plan);
	return rc;
}

/* Build a model holding the chain of nodes that computes `output` from
 * `data` in the site's graph, with every other input as an initializer
 * (or, computed from constants, with the nodes computing it). */
Onnx__ModelProto *bnf_chain_model(const Onnx__ModelProto *src, struct bnf_pair_site *site,
                                  const char *data, const char *output, int dtype, int rank,
                                  const int64_t *dims)
{
	const struct bnf_graph *gi = &site->index[site->depth];
	Onnx__NodeProto *chain[16];
	int n_chain = 0, i;
	const char *value = output;
	Onnx__ModelProto *m = calloc(1, sizeof(*m));
	Onnx__GraphProto *g = calloc(1, sizeof(*g));
	size_t k;

	if (!m || !g) {
		free(m);
		free(g);
		return NULL;
	}
	onnx__model_proto__init(m);
	onnx__graph_proto__init(g);
	m->graph = g;
	m->has_ir_version = 1;
	m->ir_version = src->ir_version;
	/* Walk back from the output through non-constant inputs to data. */
	while (strcmp(value, data) != 0 && n_chain < 16) {
		struct bnf_const_ref ref;
		Onnx__NodeProto *p = bnf_graph_producer(gi, value, NULL);
		if (!p)
			goto fail;
		chain[n_chain++] = p;
		value = NULL;
		for (k = 0; k < p->n_input; k++)
			if (p->input[k][0] && !bnf_graph_constant(gi, p->input[k], &ref) &&
			    !bnf_graph_is_computed_constant(gi, p->input[k])) {
				value = p->input[k];
				break;
			}
		if (!value)
			goto fail;
	}
	if (strcmp(value, data) != 0)
		goto fail;
	for (k = 0; k < src->n_opset_import; k++) {
		void *op = bnf_chain_copy_message(src->opset_import[k],
		                                  &onnx__operator_set_id_proto__descriptor);
		if (!op || bnf_chain_append((void ***)&m->opset_import, &m->n_opset_import, op))
			goto fail;
	}
	for (i = n_chain - 1; i >= 0; i--) {
		Onnx__NodeProto *copy =
		    bnf_chain_copy_message(chain[i], &onnx__node_proto__descriptor);
		if (!copy || bnf_chain_append((void ***)&g->node, &g->n_node, copy))
			goto fail;
		for (k = 0; k < copy->n_input; k++) {
			struct bnf_const_ref ref;
			if (!copy->input[k][0] || strcmp(copy->input[k], data) == 0)
				continue;
			if (bnf_graph_constant(gi, copy->input[k], &ref)) {
				if (add_borrowed_initializer(g, copy->input[k], ref.tensor) != 0)
					goto fail;
			} else if (bnf_graph_is_computed_constant(gi, copy->input[k]) &&
			           add_constant_subgraph(g, gi, copy->input[k]) != 0) {
				goto fail;
			}
		}
	}
	{
		Onnx__ValueInfoProto *in = bnf_graph_value_info(data, dtype, rank, dims);
		Onnx__ValueInfoProto *out = bnf_graph_value_info(output, dtype, -1, NULL);
		if (!in || bnf_chain_append((void ***)&g->input, &g->n_input, in)) {
			if (in)
				onnx__value_info_proto__free_unpacked(in, &bnf_large_allocator);
			if (out)
				onnx__value_info_proto__free_unpacked(out, &bnf_large_allocator);
			goto fail;
		}
		if (!out || bnf_chain_append((void ***)&g->output, &g->n_output, out)) {
			if (out)
				onnx__value_info_proto__free_unpacked(out, &bnf_large_allocator);
			goto fail;
		}
	}
	return m;
fail:
	bnf_chain_model_free(m);
	return NULL;
}

/* ---- the squares twin ---- */

/* The smallest normal number of a float dtype: below it rounding to the
 * type is absolute (half a subnormal step) rather than relative. */
static double smallest_normal(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return ldexp(1.0, -14);
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return ldexp(1.0, -1022);
	default: /* float and bfloat16 share float's exponent range */
		return ldexp(1.0, -126);
	}
}

static int is_float_dtype(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

static int host_is_little_endian(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

/* raw (4-byte aligned) receives w^2 + n2 for every element of t, as
 * little-endian floats. */
static void fill_squares(const struct bnf_tensor *t, float n2, uint8_t *raw)
{
	size_t i;

	if (host_is_little_endian() && t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
		const float *src = t->data; /* every float type is held as float */
		float *dst = (float *)(void *)raw;
		for (i = 0; i < t->count; i++)
			dst[i] = src[i] * src[i] + n2;
		return;
	}
	for (i = 0; i < t->count; i++) {
		double v = bnf_tensor_get_double(t, i);
		float w = (float)(v * v) + n2;
		uint32_t bits;
		memcpy(&bits, &w, sizeof(bits));
		bnf_store_le(raw + 4 * i, bits, 4);
	}
}

/* w^2 + n^2 as a float32 initializer of the same name and shape, written
 * straight into its raw_data (little-endian, as the evaluator reads it
 * in place); *out stays NULL for a constant that is not floating point.
 * n^2 is at least the smallest normal float (float32's own n^2 would
 * flush to zero): a tiny weight's allowance is then 2^-87, not 2^-150. */
static int square_tensor(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                         Onnx__TensorProto **out, struct bnf_error *err)
{
	struct bnf_tensor *t = NULL;
	Onnx__TensorProto *sq = NULL;
	float n2;
	int rc, borrowed = 0;

	*out = NULL;
	if (!tp->has_data_type || !is_float_dtype(tp->data_type))
		return BNF_OK;
	n2 = (float)(smallest_normal(tp->data_type) * smallest_normal(tp->data_type));
	if (n2 < FLT_MIN)
		n2 = FLT_MIN;
	if (bnf_tensor_is_external(tp))
		rc = bnf_tensor_from_proto_ext(ext, tp, &t, err);
	else
		rc = bnf_tensor_view_proto(tp, &t, &borrowed, err);
	if (rc != BNF_OK)
		return rc;
	sq = calloc(1, sizeof(*sq));
	if (!sq)
		goto nomem;
	onnx__tensor_proto__init(sq);
	sq->has_data_type = 1;
	sq->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	sq->name = strdup(tp->name ? tp->name : "");
	sq->dims = malloc((tp->n_dims + 1) * sizeof(sq->dims[0]));
	sq->raw_data.data = bnf_malloc_large(t->count * 4 + 4);
	if (!sq->name || !sq->dims || !sq->raw_data.data)
		goto nomem;
	memcpy(sq->dims, tp->dims, tp->n_dims * sizeof(sq->dims[0]));
	sq->n_dims = tp->n_dims;
	sq->has_raw_data = 1;
	sq->raw_data.len = t->count * 4;
	fill_squares(t, n2, sq->raw_data.data);
	*out = sq;
	sq = NULL;
	rc = BNF_OK;
	goto out;
nomem:
	rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
out:
	if (sq)
		onnx__tensor_proto__free_unpacked(sq, &bnf_large_allocator);
	if (borrowed)
		free(t);
	else
		bnf_tensor_free(t);
	return rc;
}

static int squarable_node(const Onnx__NodeProto *node)
{
	static const char *const ops[] = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Mul", "Add"};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is(node, ops[i]))
			return 1;
	return 0;
}

void bnf_chain_squares_free(Onnx__ModelProto *m)
{
	if (m)
		onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
}

/* Copy the chain's nodes, Gemm's alpha and beta squared. */
static int square_nodes(const Onnx__GraphProto *src, Onnx__GraphProto *g, int *ok)
{
	size_t i, j;

	for (i = 0; i < src->n_node; i++) {
		Onnx__NodeProto *copy;
		if (!squarable_node(src->node[i])) {
			*ok = 0;
			return BNF_OK;
		}
		copy = bnf_chain_copy_message(src->node[i], &onnx__node_proto__descriptor);
		if (!copy || bnf_chain_append((void ***)&g->node, &g->n_node, copy)) {
			if (copy)
				onnx__node_proto__free_unpacked(copy, NULL);
			return BNF_ERR_NOMEM;
		}
		for (j = 0; j < copy->n_attribute; j++) {
			Onnx__AttributeProto *a = copy->attribute[j];
			if (a->name && (!strcmp(a->name, "alpha") || !strcmp(a->name, "beta")))
				a->f = a->f * a->f;
		}
	}
	return BNF_OK;
}

int bnf_chain_squares(const Onnx__ModelProto *chain, const struct bnf_external *ext,
                      Onnx__ModelProto **out, struct bnf_error *err)
{
	const Onnx__GraphProto *src = chain->graph;
	Onnx__ModelProto *m = calloc(1, sizeof(*m));
	Onnx__GraphProto *g = calloc(1, sizeof(*g));
	int rc = BNF_OK, ok = 1;
	size_t i;

	*out = NULL;
	if (!m || !g) {
		free(m);
		free(g);
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	onnx__model_proto__init(m);
	onnx__graph_proto__init(g);
	m->graph = g;
	m->has_ir_version = 1;
	m->ir_version = chain->ir_version;
	for (i = 0; rc == BNF_OK && i < chain->n_opset_import; i++) {
		void *op = bnf_chain_copy_message(chain->opset_import[i],
		                                  &onnx__operator_set_id_proto__descriptor);
		if (!op || bnf_chain_append((void ***)&m->opset_import, &m->n_opset_import, op))
			rc = BNF_ERR_NOMEM;
	}
	if (rc == BNF_OK)
		rc = square_nodes(src, g, &ok);
	for (i = 0; rc == BNF_OK && ok && i < src->n_initializer; i++) {
		Onnx__TensorProto *t;
		rc = square_tensor(ext, src->initializer[i], &t, err);
		if (rc == BNF_OK && !t)
			ok = 0;
		else if (rc == BNF_OK &&
		         bnf_chain_append((void ***)&g->initializer, &g->n_initializer, t)) {
			onnx__tensor_proto__free_unpacked(t, &bnf_large_allocator);
			rc = BNF_ERR_NOMEM;
		}
	}
	for (i = 0; rc == BNF_OK && ok && i < src->n_input + src->n_output; i++) {
		int is_in = i < src->n_input;
		const Onnx__ValueInfoProto *vi =
		    is_in ? src->input[i] : src->output[i - src->n_input];
		const Onnx__TensorShapeProto *sh =
		    vi->type && vi->type->tensor_type ? vi->type->tensor_type->shape : NULL;
		int64_t dims[16];
		int rank = -1;
		Onnx__ValueInfoProto *copy;
		size_t d;
		if (sh && sh->n_dim <= 16) {
			rank = (int)sh->n_dim;
			for (d = 0; d < sh->n_dim; d++)
				dims[d] = sh->dim[d]->dim_value;
		}
		copy = bnf_graph_value_info(vi->name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, rank,
		                            dims);
		if (!copy || bnf_chain_append(is_in ? (void ***)&g->input : (void ***)&g->output,
		                              is_in ? &g->n_input : &g->n_output, copy)) {
			if (copy)
				onnx__value_info_proto__free_unpacked(copy, &bnf_large_allocator);
			rc = BNF_ERR_NOMEM;
		}
	}
	if (rc == BNF_ERR_NOMEM)
		bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	if (rc != BNF_OK || !ok) {
		bnf_chain_squares_free(m);
		return rc;
	}
	*out = m;
	return BNF_OK;
}
