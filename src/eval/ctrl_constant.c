/*
 * Constant: the node whose value is an attribute (a tensor, or from opset
 * 12 value_float(s) / value_int(s)). Its shape step makes the value; the
 * executor stores and promotes it like any other output.
 */
#include "eval/ctrl_ops.h"

#include <string.h>

int bnf_ctrl_constant_shape(struct bnf_op_ctx *ctx)
{
	const Onnx__NodeProto *node = ctx->node;
	const Onnx__AttributeProto *a = node->n_attribute == 1 ? node->attribute[0] : NULL;
	const char *name = a && a->name ? a->name : "";
	int64_t n;
	size_t i;

	if (ctx->n_out < 1)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "has no output");
	if (!a)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "needs exactly one value attribute");
	if (strcmp(name, "value") == 0 && a->t)
		return bnf_tensor_from_proto_ext(ctx->ext, a->t, &ctx->out[0], ctx->err);
	if (strcmp(name, "value_float") == 0 || strcmp(name, "value_floats") == 0) {
		int scalar = strcmp(name, "value_float") == 0;
		n = scalar ? 1 : (int64_t)a->n_floats;
		ctx->out[0] =
		    bnf_tensor_new(ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, !scalar, &n, ctx->err);
		for (i = 0; ctx->out[0] && i < (size_t)n; i++)
			((float *)ctx->out[0]->data)[i] = scalar ? a->f : a->floats[i];
	} else if (strcmp(name, "value_int") == 0 || strcmp(name, "value_ints") == 0) {
		int scalar = strcmp(name, "value_int") == 0;
		n = scalar ? 1 : (int64_t)a->n_ints;
		ctx->out[0] =
		    bnf_tensor_new(ONNX__TENSOR_PROTO__DATA_TYPE__INT64, !scalar, &n, ctx->err);
		for (i = 0; ctx->out[0] && i < (size_t)n; i++)
			((int64_t *)ctx->out[0]->data)[i] = scalar ? a->i : a->ints[i];
	} else {
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "attribute '%s' is not supported",
		                name);
	}
	return ctx->out[0] ? BNF_OK : ctx->err->status;
}

/* Shape and compute steps of operators that do all their work in the
 * shape step (Constant, and the control flow, whose output shapes are
 * known only once the subgraph has run). */
int bnf_ctrl_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx;
	return BNF_OK;
}
