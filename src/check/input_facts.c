/*
 * What a model says about its inputs' unknown dims beyond their own
 * declaration: another declaration of the same value, the constants the
 * input meets unchanged (a Conv weight's channels, a broadcast operand, a
 * Reshape target, a Gemm or MatMul weight) and exporter metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/input_choose.h"
#include "io/external.h"

/* Another declaration of the input itself (value_info, a graph output of
 * the same name) with dim_values where the input has none. */
void bnf_choose_facts_declared(struct chooser *c, size_t i)
{
	const Onnx__GraphProto *g = c->g;
	struct bnf_input_shape *s = &c->out->inputs[i];
	size_t k;
	int a;

	for (k = 0; k < g->n_value_info + g->n_output; k++) {
		const Onnx__ValueInfoProto *vi =
		    k < g->n_value_info ? g->value_info[k] : g->output[k - g->n_value_info];
		const Onnx__TensorShapeProto *sh = bnf_choose_declared_shape(vi);
		char origin[112];
		if (!vi->name || strcmp(vi->name, s->name) != 0 || !sh || (int)sh->n_dim != s->rank)
			continue;
		snprintf(origin, sizeof(origin), "%s '%s'",
		         k < g->n_value_info ? "value_info" : "graph output", s->name);
		for (a = 0; a < s->rank; a++)
			if (sh->dim[a]->value_case ==
			        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			    sh->dim[a]->dim_value > 0)
				bnf_choose_settle(c, i, a, sh->dim[a]->dim_value,
				                  BNF_DIM_SOURCE_MODEL, origin);
	}
}

/* ---- exporter metadata ---- */

/* Up to max integers found in text, in order; returns how many. */
static int parse_ints(const char *text, int64_t *out, int max)
{
	int n = 0;
	while (*text && n < max) {
		if (*text >= '0' && *text <= '9') {
			char *end;
			long long v = strtoll(text, &end, 10);
			out[n++] = v;
			text = end;
		} else {
			text++;
		}
	}
	return n;
}

/* metadata_props some exporters leave (Ultralytics: imgsz "[640, 640]",
 * batch "1", stride "32"): sizes of image-like inputs, their batch, and
 * the divisor of their sizes. */
void bnf_choose_facts_metadata(struct chooser *c)
{
	static const char *const size_keys[] = {"imgsz", "img_size", "image_size", "input_size"};
	static const char *const batch_keys[] = {"batch", "batch_size"};
	size_t m, k, i;

	for (m = 0; m < c->model->n_metadata_props; m++) {
		const Onnx__StringStringEntryProto *p = c->model->metadata_props[m];
		int64_t v[8];
		int n, a;
		char origin[112];
		if (!p->key || !p->value || (n = parse_ints(p->value, v, 8)) == 0)
			continue;
		snprintf(origin, sizeof(origin), "metadata %s=%.80s", p->key, p->value);
		if (strcmp(p->key, "stride") == 0 && v[0] > 0 && v[0] <= 1024)
			c->stride[BNF_CHOOSE_GROUP_SPATIAL] = v[0];
		for (k = 0; k < sizeof(batch_keys) / sizeof(batch_keys[0]); k++)
			for (i = 0; strcmp(p->key, batch_keys[k]) == 0 && i < c->out->n; i++)
				if (c->out->inputs[i].rank > 0 && v[0] > 0)
					bnf_choose_settle(c, i, 0, v[0], BNF_DIM_SOURCE_MODEL,
					                  origin);
		for (k = 0; k < sizeof(size_keys) / sizeof(size_keys[0]); k++) {
			if (strcmp(p->key, size_keys[k]) != 0)
				continue;
			for (i = 0; i < c->out->n; i++) {
				struct bnf_input_shape *s = &c->out->inputs[i];
				int spatial = s->rank - 2;
				if ((s->rank != 4 && s->rank != 5) ||
				    s->dims[1] == BNF_CHOOSE_UNKNOWN)
					continue;
				/* One size for every axis, or the last `spatial` ones. */
				for (a = 0; a < spatial; a++) {
					int64_t x = n == 1         ? v[0]
					            : n >= spatial ? v[n - spatial + a]
					                           : 0;
					if (x > 0)
						bnf_choose_settle(c, i, 2 + a, x,
						                  BNF_DIM_SOURCE_MODEL, origin);
				}
			}
		}
	}
}

/* ---- the input meets constants ---- */

/* Values holding the input unchanged in shape: itself, then the outputs of
 * elementwise nodes reading one of them and constants only. */
#define SAME_SHAPE_MAX 32

static const char *const unary_ops[] = {
    "Identity", "Cast",      "Relu",        "LeakyRelu", "Sigmoid", "Tanh", "Clip",
    "Dropout",  "Neg",       "Abs",         "Exp",       "Log",     "Sqrt", "Elu",
    "Selu",     "HardSwish", "HardSigmoid", "Softplus",  "Erf",     "Mish", "Reciprocal",
};
/* Per-channel constants after the input: the output keeps its shape. */
static const char *const norm_ops[] = {"BatchNormalization", "InstanceNormalization"};
static const char *const binary_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Max", "Min"};

static int in_list(const char *const *names, size_t n, const char *name)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* The values of a small constant integer or float tensor as int64 (n of
 * them, at most max); -1 when it is not one. */
static int constant_ints(const struct chooser *c, const char *name, int64_t *out, int max)
{
	struct bnf_const_ref ref;
	struct bnf_tensor *t = NULL;
	struct bnf_error err;
	size_t i;
	int n = -1;

	if (!bnf_choose_constant(c, name, &ref) || bnf_tensor_is_external(ref.tensor) ||
	    bnf_tensor_from_proto(ref.tensor, &t, &err) != BNF_OK)
		return -1;
	if (t->count <= (size_t)max) {
		for (i = 0; i < t->count; i++)
			out[i] = (int64_t)bnf_tensor_get_double(t, i);
		n = (int)t->count;
	}
	bnf_tensor_free(t);
	return n;
}

static int grow_same(const struct chooser *c, const char **same, int n)
{
	const Onnx__GraphProto *g = c->g;
	size_t i, k;
	int changed = 1, pass;

	for (pass = 0; changed && pass < 4; pass++) {
		changed = 0;
		for (i = 0; i < g->n_node && n < SAME_SHAPE_MAX; i++) {
			const Onnx__NodeProto *node = g->node[i];
			struct bnf_const_ref ref;
			int reads = 0, others_const = 1;
			if (node->n_output < 1 || !node->output[0][0] ||
			    in_list(same, (size_t)n, node->output[0]))
				continue;
			for (k = 0; k < node->n_input; k++) {
				if (in_list(same, (size_t)n, node->input[k]))
					reads = 1;
				else if (node->input[k][0] &&
				         !bnf_choose_constant(c, node->input[k], &ref))
					others_const = 0;
			}
			if (!reads || !others_const ||
			    !(BNF_CHOOSE_OP_IN(node, unary_ops) ||
			      BNF_CHOOSE_OP_IN(node, norm_ops) ||
			      BNF_CHOOSE_OP_IN(node, binary_ops)))
				continue;
			same[n++] = node->output[0];
			changed = 1;
		}
	}
	return n;
}

static void origin_of(char *buf, size_t len, const char *what, const char *tensor,
                      const Onnx__NodeProto *node)
{
	snprintf(buf, len, "%s '%.32s' of %s '%.32s'", what, tensor, node->op_type,
	         bnf_node_label(node));
}

/* Reshape(value, constant target without 0 or -1): the input holds as many
 * elements as the target, which fixes its only unknown dim. */
static void fact_from_reshape(struct chooser *c, size_t i, const Onnx__NodeProto *node)
{
	struct bnf_input_shape *s = &c->out->inputs[i];
	int64_t target[BNF_MAX_RANK], total = 1, known = 1;
	int n, a, unknown = -1;
	char origin[112];

	if (node->n_input < 2 || bnf_choose_count_unknown(s) != 1 ||
	    (n = constant_ints(c, node->input[1], target, BNF_MAX_RANK)) < 0)
		return;
	for (a = 0; a < n; a++) {
		if (target[a] <= 0 || total > INT64_MAX / target[a])
			return;
		total *= target[a];
	}
	for (a = 0; a < s->rank; a++) {
		if (s->dims[a] == BNF_CHOOSE_UNKNOWN)
			unknown = a;
		else if (s->dims[a] == 0 || known > INT64_MAX / s->dims[a])
			return;
		else
			known *= s->dims[a];
	}
	if (unknown < 0 || total % known != 0)
		return;
	origin_of(origin, sizeof(origin), "target", node->input[1], node);
	bnf_choose_settle(c, i, unknown, total / known, BNF_DIM_SOURCE_MODEL, origin);
}

/* One node reading `value` (shaped like input i) at input k: what the
 * constants it meets there say about the input's dims. */
static void fact_from_node(struct chooser *c, size_t i, const Onnx__NodeProto *node, size_t k)
{
	struct bnf_input_shape *s = &c->out->inputs[i];
	struct bnf_const_ref w;
	char origin[112];
	int r = s->rank, a;

	if (BNF_CHOOSE_OP_IN(node, binary_ops) && node->n_input == 2 &&
	    bnf_choose_constant(c, node->input[1 - k], &w) && (int)w.tensor->n_dims <= r) {
		/* Broadcasting aligns the last axes; a dim above 1 must match. */
		int off = r - (int)w.tensor->n_dims;
		origin_of(origin, sizeof(origin), "operand", node->input[1 - k], node);
		for (a = 0; a < (int)w.tensor->n_dims; a++)
			if (w.tensor->dims[a] > 1)
				bnf_choose_settle(c, i, off + a, w.tensor->dims[a],
				                  BNF_DIM_SOURCE_MODEL, origin);
		return;
	}
	if (k != 0 || node->n_input < 2 || !bnf_choose_constant(c, node->input[1], &w))
		return;
	origin_of(origin, sizeof(origin), "weight", node->input[1], node);
	if (bnf_node_is(node, "Conv") && (int)w.tensor->n_dims == r && r >= 3)
		bnf_choose_settle(c, i, 1, w.tensor->dims[1] * bnf_node_attr_int(node, "group", 1),
		                  BNF_DIM_SOURCE_MODEL, origin);
	else if (bnf_node_is(node, "ConvTranspose") && (int)w.tensor->n_dims == r && r >= 3)
		bnf_choose_settle(c, i, 1, w.tensor->dims[0], BNF_DIM_SOURCE_MODEL, origin);
	else if ((bnf_node_is(node, "BatchNormalization") ||
	          bnf_node_is(node, "InstanceNormalization")) &&
	         w.tensor->n_dims == 1 && r >= 2)
		bnf_choose_settle(c, i, 1, w.tensor->dims[0], BNF_DIM_SOURCE_MODEL, origin);
	else if (bnf_node_is(node, "Gemm") && w.tensor->n_dims == 2 && r == 2)
		bnf_choose_settle(c, i, bnf_node_attr_int(node, "transA", 0) ? 0 : 1,
		                  w.tensor->dims[bnf_node_attr_int(node, "transB", 0) ? 1 : 0],
		                  BNF_DIM_SOURCE_MODEL, origin);
	else if (bnf_node_is(node, "MatMul") && w.tensor->n_dims == 2 && r >= 2)
		bnf_choose_settle(c, i, r - 1, w.tensor->dims[0], BNF_DIM_SOURCE_MODEL, origin);
	else if (bnf_node_is(node, "Reshape"))
		fact_from_reshape(c, i, node);
}

/* What the nodes reading input i (or values shaped like it) say. */
void bnf_choose_facts_consumers(struct chooser *c, size_t i)
{
	const char *same[SAME_SHAPE_MAX];
	const Onnx__GraphProto *g = c->g;
	size_t j, k;
	int n = 1, v;

	same[0] = c->out->inputs[i].name;
	n = grow_same(c, same, n);
	for (v = 0; v < n && bnf_choose_count_unknown(&c->out->inputs[i]) > 0; v++) {
		int64_t dims[BNF_MAX_RANK];
		int a;
		char origin[112];
		/* A value_info of an unchanged copy counts as well. */
		if (v > 0 && bnf_graph_value_shape(&c->gi, same[v], dims, BNF_MAX_RANK) ==
		                 c->out->inputs[i].rank) {
			snprintf(origin, sizeof(origin), "the declared shape of '%.80s'", same[v]);
			for (a = 0; a < c->out->inputs[i].rank; a++)
				if (dims[a] > 0)
					bnf_choose_settle(c, i, a, dims[a], BNF_DIM_SOURCE_MODEL,
					                  origin);
		}
		for (j = 0; j < g->n_node; j++)
			for (k = 0; k < g->node[j]->n_input; k++)
				if (strcmp(g->node[j]->input[k], same[v]) == 0)
					fact_from_node(c, i, g->node[j], k);
	}
}
