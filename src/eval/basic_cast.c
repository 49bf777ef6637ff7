/*
 * Cast (and CastLike) between the float and integer dtypes the evaluator
 * holds, and the operators that pass their input through in eval mode:
 * Identity, and Dropout (whose optional mask is then all true).
 */
#include "eval/basic_ops.h"

#include <string.h>

/* Whether Cast handles dtype. */
static int cast_dtype_ok(int dtype)
{
	return bnf_basic_is_float(dtype) || bnf_basic_is_integer(dtype) || dtype == BASIC_BOOL;
}

/* Cast-1 names the target type with a string such as "FLOAT"; Cast-6 on
 * uses the TensorProto.DataType number. */
static int cast_target(const struct bnf_op_ctx *ctx, int64_t *to)
{
	static const struct {
		const char *name;
		int dtype;
	} names[] = {
	    {"FLOAT", BASIC_FLOAT},       {"DOUBLE", BASIC_DOUBLE}, {"FLOAT16", BASIC_FLOAT16},
	    {"BFLOAT16", BASIC_BFLOAT16}, {"INT64", BASIC_INT64},   {"INT32", BASIC_INT32},
	    {"INT8", BASIC_INT8},         {"UINT8", BASIC_UINT8},   {"BOOL", BASIC_BOOL},
	    {"INT16", BASIC_INT16},       {"UINT16", BASIC_UINT16}, {"UINT32", BASIC_UINT32},
	    {"UINT64", BASIC_UINT64},
	};
	char name[32];
	size_t k;
	int rc;

	/* CastLike (opset 15) takes the type of its second input. */
	if (strcmp(ctx->node->op_type, "CastLike") == 0) {
		*to = ctx->in[1]->dtype;
		return BNF_OK;
	}
	if (!bnf_attr_find(ctx->node, "to"))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "attribute 'to' is missing");
	if (ctx->opset >= 6)
		return bnf_attr_int(ctx->node, "to", 0, to, ctx->err);
	if ((rc = bnf_attr_string(ctx->node, "to", "", name, sizeof(name), ctx->err)) != BNF_OK)
		return rc;
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (strcmp(names[k].name, name) == 0) {
			*to = names[k].dtype;
			return BNF_OK;
		}
	}
	return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "cannot cast to type '%s'", name);
}

int bnf_basic_cast_shape(struct bnf_op_ctx *ctx)
{
	size_t n_in = strcmp(ctx->node->op_type, "CastLike") == 0 ? 2 : 1;
	int64_t to;
	int rc;

	if ((rc = bnf_basic_check_arity(ctx, n_in, n_in, 1)) != BNF_OK ||
	    (rc = cast_target(ctx, &to)) != BNF_OK)
		return rc;
	if (!cast_dtype_ok(ctx->in[0]->dtype))
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "cannot cast from %s",
		                bnf_dtype_name(ctx->in[0]->dtype));
	if (to < 0 || to > 64 || !cast_dtype_ok((int)to))
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "cannot cast to %s",
		                bnf_dtype_name((int)to));
	return bnf_basic_new_output(ctx, 0, (int)to, ctx->in[0]);
}

/* Floats to integers truncate toward zero as numpy's astype does, integers
 * wrap to the narrower width, anything non-zero (NaN too) becomes true. */
int bnf_basic_cast_compute(struct bnf_op_ctx *ctx)
{
	bnf_basic_convert(ctx->in[0], ctx->out[0]);
	return BNF_OK;
}

/* Identity takes one input; Dropout takes data, and from opset 12 the
 * optional ratio and training_mode, which eval mode ignores. Dropout's mask
 * is bool from opset 10 and of the data's type before. */
int bnf_basic_identity_shape(struct bnf_op_ctx *ctx)
{
	int dropout = strcmp(ctx->node->op_type, "Dropout") == 0;
	int rc;

	rc = bnf_basic_check_arity(ctx, 1, dropout && ctx->opset >= 12 ? 3 : 1, dropout ? 2 : 1);
	if (rc != BNF_OK)
		return rc;
	if (bnf_tensor_elem_size(ctx->in[0]->dtype) == 0)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "input has unsupported dtype %s",
		                bnf_dtype_name(ctx->in[0]->dtype));
	if ((rc = bnf_basic_new_output(ctx, 0, ctx->in[0]->dtype, ctx->in[0])) != BNF_OK)
		return rc;
	if (dropout && bnf_op_wants_output(ctx, 1))
		return bnf_basic_new_output(
		    ctx, 1, ctx->opset >= 10 ? BASIC_BOOL : ctx->in[0]->dtype, ctx->in[0]);
	return BNF_OK;
}

static int ones_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                       const union basic_lane_buf *in)
{
	size_t k;

	(void)in;
	for (k = 0; k < n; k++) {
		if (m->out_lane == BASIC_LANE_F64)
			out->f[k] = 1.0;
		else
			out->i[k] = 1;
	}
	return 0;
}

int bnf_basic_identity_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0];
	struct basic_map m = {0};

	if (x->count > 0)
		memcpy(ctx->out[0]->data, x->data, x->count * bnf_tensor_elem_size(x->dtype));
	if (ctx->n_out < 2 || !ctx->out[1])
		return BNF_OK;
	m.out = ctx->out[1];
	m.out_lane = bnf_basic_natural_lane(m.out->dtype);
	m.kernel = ones_kernel;
	bnf_basic_map_run(&m);
	return BNF_OK;
}
