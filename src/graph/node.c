/*
 * Node and opset predicates: what op a node is, its attributes, the opset a
 * model imports, and whether a BatchNormalization or Dropout runs in
 * training mode. Read by the folds, the train-mode pass, the lint and the
 * check alike.
 */
#include "graph/graph.h"

#include <stdio.h>
#include <string.h>

const Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *node, const char *name)
{
	size_t i;
	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			return node->attribute[i];
	return NULL;
}

int bnf_node_is(const Onnx__NodeProto *node, const char *op_type)
{
	int default_domain =
	    !node->domain || !node->domain[0] || strcmp(node->domain, "ai.onnx") == 0;
	return default_domain && node->op_type && strcmp(node->op_type, op_type) == 0;
}

long long bnf_node_attr_int(const Onnx__NodeProto *node, const char *name, long long def)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, name);
	return a && a->has_i ? (long long)a->i : def;
}

int bnf_bn_training_mode(const struct bnf_graph *gi, const Onnx__NodeProto *bn, char *why,
                         size_t len)
{
	size_t i;

	if (gi->opset < 7 && bnf_node_attr_int(bn, "is_test", 0) == 0) {
		snprintf(why, len, "is_test=0 (opset %d)", gi->opset);
		return 1;
	}
	if (gi->opset >= 14 && bnf_node_attr_int(bn, "training_mode", 0) != 0) {
		snprintf(why, len, "training_mode=1");
		return 1;
	}
	for (i = 1; i < bn->n_output; i++) {
		const char *out = bn->output[i];
		if (!out[0])
			continue;
		if (bnf_graph_is_output(gi, out))
			snprintf(why, len, "its running-statistics output '%s' is a graph output",
			         out);
		else if (bnf_graph_uses(gi, out) > 0)
			snprintf(why, len,
			         "its running-statistics output '%s' is read by another node", out);
		else
			snprintf(why, len, "it has the optional training output '%s'", out);
		return 1;
	}
	return 0;
}

/* The first element of a bool (or integer) constant, as 0 or 1. */
static int tensor_first_true(const Onnx__TensorProto *t)
{
	if (t->has_raw_data && t->raw_data.len > 0)
		return t->raw_data.data[0] != 0;
	if (t->n_int32_data > 0)
		return t->int32_data[0] != 0;
	if (t->n_int64_data > 0)
		return t->int64_data[0] != 0;
	if (t->n_float_data > 0)
		return t->float_data[0] != 0.0f;
	return 0;
}

int bnf_dropout_training_mode(const struct bnf_graph *gi, const Onnx__NodeProto *node, char *why,
                              size_t len)
{
	struct bnf_const_ref ref;

	if (gi->opset < 7 && bnf_node_attr_int(node, "is_test", 0) == 0) {
		snprintf(why, len, "is_test=0 (opset %d)", gi->opset);
		return 1;
	}
	if (gi->opset >= 12 && node->n_input >= 3 && node->input[2][0] &&
	    bnf_graph_constant(gi, node->input[2], &ref) && tensor_first_true(ref.tensor)) {
		snprintf(why, len, "its training_mode input '%s' is true", node->input[2]);
		return 1;
	}
	return 0;
}

int bnf_model_opset(const Onnx__ModelProto *model)
{
	size_t i;
	for (i = 0; i < model->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = model->opset_import[i];
		if ((!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0) &&
		    o->has_version)
			return o->version > 1000 ? 1000 : (int)o->version;
	}
	return 1;
}
