/*
 * The helpers every operator uses: which outputs a node wants, taking a
 * donor input's buffer as the output, and the attribute readers: each takes the spec's default when
 * the attribute is absent and refuses an attribute of the wrong type.
 */
#include "eval/op.h"

#include <string.h>

int bnf_op_wants_output(const struct bnf_op_ctx *ctx, size_t i)
{
	return i < ctx->n_out && i < ctx->node->n_output && ctx->node->output[i] &&
	       ctx->node->output[i][0] != '\0';
}

const Onnx__AttributeProto *bnf_attr_find(const Onnx__NodeProto *node, const char *name)
{
	size_t i;

	for (i = 0; i < node->n_attribute; i++) {
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			return node->attribute[i];
	}
	return NULL;
}

/* The attribute `name` if present with the wanted type (an old model may
 * leave the type unset: then `has_value` decides). *found is 0 when absent. */
static int attr_typed(const Onnx__NodeProto *node, const char *name,
                      Onnx__AttributeProto__AttributeType want, const Onnx__AttributeProto **found,
                      struct bnf_error *err)
{
	const Onnx__AttributeProto *a = bnf_attr_find(node, name);
	int type_unset;

	*found = NULL;
	if (!a)
		return BNF_OK;
	type_unset = !a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
	if (!type_unset && a->type != want)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "attribute '%s' of node '%s' has the wrong type", name,
		                bnf_node_label(node));
	*found = a;
	return BNF_OK;
}

int bnf_attr_int(const Onnx__NodeProto *node, const char *name, int64_t def, int64_t *out,
                 struct bnf_error *err)
{
	const Onnx__AttributeProto *a;
	int rc = attr_typed(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, &a, err);

	*out = a ? a->i : def;
	return rc;
}

int bnf_attr_float(const Onnx__NodeProto *node, const char *name, float def, float *out,
                   struct bnf_error *err)
{
	const Onnx__AttributeProto *a;
	int rc = attr_typed(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, &a, err);

	*out = a ? a->f : def;
	return rc;
}

int bnf_attr_ints(const Onnx__NodeProto *node, const char *name, int64_t *out, size_t max,
                  size_t *n, struct bnf_error *err)
{
	const Onnx__AttributeProto *a;
	int rc = attr_typed(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, &a, err);

	*n = 0;
	if (rc != BNF_OK || !a)
		return rc;
	if (a->n_ints > max)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "attribute '%s' of node '%s' has %zu values, more than %zu", name,
		                bnf_node_label(node), a->n_ints, max);
	if (a->n_ints)
		memcpy(out, a->ints, a->n_ints * sizeof(out[0]));
	*n = a->n_ints;
	return BNF_OK;
}

int bnf_attr_floats(const Onnx__NodeProto *node, const char *name, float *out, size_t max,
                    size_t *n, struct bnf_error *err)
{
	const Onnx__AttributeProto *a;
	int rc = attr_typed(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, &a, err);

	*n = 0;
	if (rc != BNF_OK || !a)
		return rc;
	if (a->n_floats > max)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "attribute '%s' of node '%s' has %zu values, more than %zu", name,
		                bnf_node_label(node), a->n_floats, max);
	if (a->n_floats)
		memcpy(out, a->floats, a->n_floats * sizeof(out[0]));
	*n = a->n_floats;
	return BNF_OK;
}

int bnf_attr_string(const Onnx__NodeProto *node, const char *name, const char *def, char *out,
                    size_t len, struct bnf_error *err)
{
	const Onnx__AttributeProto *a;
	const char *src = def;
	size_t n;
	int rc = attr_typed(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, &a, err);

	if (rc != BNF_OK)
		return rc;
	/* `s` is a bytes field: not NUL-terminated, so copy by its length. */
	n = a ? a->s.len : strlen(def);
	if (a)
		src = (const char *)a->s.data;
	if (n >= len)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "attribute '%s' of node '%s' is longer than %zu bytes", name,
		                bnf_node_label(node), len - 1);
	if (n)
		memcpy(out, src, n);
	out[n] = '\0';
	return BNF_OK;
}

int bnf_op_take_donor(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims)
{
	struct bnf_tensor *d = ctx->donor;

	if (!d || i != 0 || ctx->n_out != 1 || d->dtype != dtype || d->rank != rank ||
	    (rank > 0 && memcmp(d->dims, dims, (size_t)rank * sizeof(dims[0])) != 0))
		return 0;
	ctx->out[0] = d;
	ctx->donor = NULL;
	ctx->donor_taken = 1;
	return 1;
}
