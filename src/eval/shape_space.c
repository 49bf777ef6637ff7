/*
 * SpaceToDepth and DepthToSpace: blocks of blocksize x blocksize pixels
 * moved into channels and back. Both are one strided copy of a 6-D view
 * (the spec's reshape, transpose, reshape); DepthToSpace's mode (opset 11)
 * says whether the block index comes before the channel (DCR, the
 * default) or after it (CRD).
 */
#include "eval/shape_common.h"

#include <string.h>

struct space_plan {
	int64_t dims[6]; /* the output seen as a 6-D view */
	int64_t sstr[6]; /* source element strides along those axes */
	int64_t out_dims[4];
};

static int space_blocksize(const struct bnf_op_ctx *ctx, int64_t *bs)
{
	const struct bnf_tensor *x;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (!bnf_attr_find(ctx->node, "blocksize"))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "attribute 'blocksize' is missing");
	if (bnf_attr_int(ctx->node, "blocksize", 1, bs, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (*bs < 1 || x->rank != 4)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "needs blocksize >= 1 and a 4-D input");
	return BNF_OK;
}

/* y[n, (b1 * bs + b2) * C + c, h, w] = x[n, c, h * bs + b1, w * bs + b2] */
static int space_to_depth_plan(const struct bnf_op_ctx *ctx, struct space_plan *p)
{
	const struct bnf_tensor *x = ctx->in[0];
	int64_t bs, n, c, h, w;

	if (space_blocksize(ctx, &bs) != BNF_OK)
		return ctx->err->status;
	n = x->dims[0];
	c = x->dims[1];
	h = x->dims[2];
	w = x->dims[3];
	if (h % bs || w % bs)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "%lldx%lld is not a multiple of blocksize "
		                    "%lld",
		                    (long long)h, (long long)w, (long long)bs);
	p->out_dims[0] = n;
	p->out_dims[1] = c * bs * bs;
	p->out_dims[2] = h / bs;
	p->out_dims[3] = w / bs;
	/* output view (n, b1, b2, c, h', w') */
	memcpy(p->dims, (int64_t[6]){n, bs, bs, c, h / bs, w / bs}, sizeof(p->dims));
	memcpy(p->sstr, (int64_t[6]){c * h * w, w, 1, h * w, bs * w, bs}, sizeof(p->sstr));
	return BNF_OK;
}

/* DCR: y[n, c, h * bs + b1, w * bs + b2] = x[n, (b1 * bs + b2) * C' + c, h, w];
 * CRD: the same from x[n, c * bs * bs + b1 * bs + b2, h, w]. */
static int depth_to_space_plan(const struct bnf_op_ctx *ctx, struct space_plan *p)
{
	const struct bnf_tensor *x = ctx->in[0];
	char mode[8];
	int64_t bs, n, c, h, w, hw;

	if (space_blocksize(ctx, &bs) != BNF_OK ||
	    (ctx->opset >= 11 &&
	     bnf_attr_string(ctx->node, "mode", "DCR", mode, sizeof(mode), ctx->err) != BNF_OK))
		return ctx->err->status;
	if (ctx->opset < 11)
		strcpy(mode, "DCR");
	if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "mode '%s' is neither DCR nor CRD", mode);
	n = x->dims[0];
	h = x->dims[2];
	w = x->dims[3];
	hw = h * w;
	if (x->dims[1] % (bs * bs))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "%lld channels do not split into %lldx%lld "
		                    "blocks",
		                    (long long)x->dims[1], (long long)bs, (long long)bs);
	c = x->dims[1] / (bs * bs);
	p->out_dims[0] = n;
	p->out_dims[1] = c;
	p->out_dims[2] = h * bs;
	p->out_dims[3] = w * bs;
	/* output view (n, c, h, b1, w, b2) */
	memcpy(p->dims, (int64_t[6]){n, c, h, bs, w, bs}, sizeof(p->dims));
	if (strcmp(mode, "DCR") == 0)
		memcpy(p->sstr, (int64_t[6]){x->dims[1] * hw, hw, w, bs * c * hw, 1, c * hw},
		       sizeof(p->sstr));
	else
		memcpy(p->sstr, (int64_t[6]){x->dims[1] * hw, bs * bs * hw, w, bs * hw, 1, hw},
		       sizeof(p->sstr));
	return BNF_OK;
}

static int space_plan(const struct bnf_op_ctx *ctx, struct space_plan *p)
{
	return strcmp(ctx->node->op_type, "SpaceToDepth") == 0 ? space_to_depth_plan(ctx, p)
	                                                       : depth_to_space_plan(ctx, p);
}

int bnf_shp_space_shape(struct bnf_op_ctx *ctx)
{
	struct space_plan p;

	if (space_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, 4, p.out_dims);
}

int bnf_shp_space_compute(struct bnf_op_ctx *ctx)
{
	struct space_plan p;
	int64_t dstr[6];

	if (!ctx->out[0])
		return BNF_OK;
	if (space_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	bnf_shp_strides(6, p.dims, dstr);
	bnf_shp_copy(bnf_tensor_elem_size(ctx->in[0]->dtype), 6, p.dims, ctx->in[0]->data, p.sstr,
	             ctx->out[0]->data, dstr);
	return BNF_OK;
}
