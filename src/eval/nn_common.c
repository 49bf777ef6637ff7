/*
 * The helpers the neural-network operators share: input checks, output
 * allocation and the sliding-window attributes (kernel, strides, pads,
 * dilations, auto_pad).
 */
#include <string.h>

#include "eval/nn.h"

int bnf_nn_is_real(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

int bnf_nn_check_inputs(const struct bnf_op_ctx *ctx, size_t min, size_t max, unsigned real_mask)
{
	size_t i;

	if (ctx->n_in < min || ctx->n_in > max)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "takes %zu to %zu inputs, not %zu", min,
		                max, ctx->n_in);
	for (i = 0; i < ctx->n_in; i++) {
		const struct bnf_tensor *t = ctx->in[i];
		if (!t && i < min)
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "input %zu is required", i);
		if (t && i < 32 && (real_mask >> i & 1u) && !bnf_nn_is_real(t->dtype))
			return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
			                "input %zu ('%s') has dtype %s, not a floating type", i,
			                ctx->node->input[i], bnf_dtype_name(t->dtype));
	}
	return BNF_OK;
}

static int new_output(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims,
                      int zeroed)
{
	if (i >= ctx->n_out)
		return i == 0 ? bnf_fail(ctx->err, BNF_ERR_INPUT, "has no output") : BNF_OK;
	if (!dtype)
		dtype = ctx->in[0]->dtype;
	if (bnf_op_take_donor(ctx, i, dtype, rank, dims))
		return BNF_OK;
	ctx->out[i] = zeroed ? bnf_tensor_new(dtype, rank, dims, ctx->err)
	                     : bnf_tensor_new_uninit(dtype, rank, dims, ctx->err);
	return ctx->out[i] ? BNF_OK : ctx->err->status;
}

int bnf_nn_new_output(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank, const int64_t *dims)
{
	return new_output(ctx, i, dtype, rank, dims, 1);
}

int bnf_nn_new_output_uninit(struct bnf_op_ctx *ctx, size_t i, int dtype, int rank,
                             const int64_t *dims)
{
	return new_output(ctx, i, dtype, rank, dims, 0);
}

size_t bnf_nn_prod(const int64_t *dims, int n)
{
	size_t p = 1;
	int i;

	for (i = 0; i < n; i++)
		p *= (size_t)dims[i];
	return p;
}

/* Largest kernel, stride, dilation or pad accepted: products of two such
 * values and a dim stay far inside int64_t. */
#define WINDOW_LIMIT ((int64_t)1 << 31)

/* Read an INTS attribute of exactly `want` values, or fill `def`. */
static int read_ints_or(const struct bnf_op_ctx *ctx, const char *name, size_t want, int64_t def,
                        int64_t *out)
{
	size_t n, i;
	int rc = bnf_attr_ints(ctx->node, name, out, 2 * BNF_MAX_RANK, &n, ctx->err);

	if (rc != BNF_OK)
		return rc;
	if (n == 0) {
		for (i = 0; i < want; i++)
			out[i] = def;
		return BNF_OK;
	}
	if (n != want)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "attribute '%s' has %zu values, expected %zu", name, n, want);
	return BNF_OK;
}

int bnf_nn_read_window(const struct bnf_op_ctx *ctx, int n, const int64_t *kernel,
                       struct bnf_nn_window *w)
{
	int64_t pads[2 * BNF_MAX_RANK];
	size_t nk;
	int rc, i;

	memset(w, 0, sizeof(*w));
	w->n = n;
	if (n < 1 || n > BNF_MAX_RANK - 2)
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "%d spatial dims are not supported",
		                n);
	rc = bnf_attr_ints(ctx->node, "kernel_shape", w->kernel, BNF_MAX_RANK, &nk, ctx->err);
	if (rc == BNF_OK && nk == 0 && kernel)
		memcpy(w->kernel, kernel, (size_t)n * sizeof(kernel[0]));
	else if (rc == BNF_OK && nk != (size_t)n)
		rc = bnf_fail(ctx->err, BNF_ERR_INPUT,
		              "kernel_shape has %zu values for %d spatial dims", nk, n);
	if (rc == BNF_OK)
		rc = read_ints_or(ctx, "strides", (size_t)n, 1, w->stride);
	if (rc == BNF_OK)
		rc = read_ints_or(ctx, "dilations", (size_t)n, 1, w->dilation);
	if (rc == BNF_OK)
		rc = read_ints_or(ctx, "pads", 2 * (size_t)n, 0, pads);
	if (rc == BNF_OK)
		rc = bnf_attr_string(ctx->node, "auto_pad", "NOTSET", w->auto_pad,
		                     sizeof(w->auto_pad), ctx->err);
	if (rc != BNF_OK)
		return rc;
	if (strcmp(w->auto_pad, "NOTSET") != 0 && strcmp(w->auto_pad, "VALID") != 0 &&
	    strcmp(w->auto_pad, "SAME_UPPER") != 0 && strcmp(w->auto_pad, "SAME_LOWER") != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "unknown auto_pad '%s'", w->auto_pad);
	for (i = 0; i < n; i++) {
		w->pad_begin[i] = pads[i];
		w->pad_end[i] = pads[n + i];
		if (w->kernel[i] < 1 || w->stride[i] < 1 || w->dilation[i] < 1 || pads[i] < 0 ||
		    pads[n + i] < 0)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "spatial dim %d has a kernel, stride or dilation below 1 "
			                "or a negative pad",
			                i);
		/* Keep window arithmetic far from int64 overflow. */
		if (w->kernel[i] > WINDOW_LIMIT || w->stride[i] > WINDOW_LIMIT ||
		    w->dilation[i] > WINDOW_LIMIT || pads[i] > WINDOW_LIMIT ||
		    pads[n + i] > WINDOW_LIMIT)
			return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
			                "window attributes of spatial dim %d are too large", i);
	}
	return BNF_OK;
}

int bnf_nn_window_output(const struct bnf_op_ctx *ctx, struct bnf_nn_window *w, int ceil_mode)
{
	int i;

	for (i = 0; i < w->n; i++) {
		int64_t span = (w->kernel[i] - 1) * w->dilation[i] + 1; /* dilated kernel */
		int64_t s = w->stride[i], in = w->image[i], room, out;
		if (strcmp(w->auto_pad, "SAME_UPPER") == 0 ||
		    strcmp(w->auto_pad, "SAME_LOWER") == 0) {
			int64_t total;
			out = (in + s - 1) / s;
			total = (out - 1) * s + span - in;
			if (total < 0)
				total = 0;
			/* SAME_UPPER puts the odd pad at the end, SAME_LOWER at
			 * the beginning. */
			w->pad_end[i] = w->auto_pad[5] == 'U' ? total - total / 2 : total / 2;
			w->pad_begin[i] = total - w->pad_end[i];
		} else {
			if (strcmp(w->auto_pad, "VALID") == 0)
				w->pad_begin[i] = w->pad_end[i] = 0;
			room = in + w->pad_begin[i] + w->pad_end[i] - span;
			if (room < 0)
				return bnf_fail(ctx->err, BNF_ERR_INPUT,
				                "the window (%lld) is larger than the padded input "
				                "(%lld) in spatial dim %d",
				                (long long)span,
				                (long long)(in + w->pad_begin[i] + w->pad_end[i]),
				                i);
			out = (ceil_mode ? room + s - 1 : room) / s + 1;
			/* With ceil_mode the last window must still start inside
			 * the input or its leading pad. */
			if (ceil_mode && (out - 1) * s >= in + w->pad_begin[i])
				out--;
		}
		w->grid[i] = out;
	}
	return BNF_OK;
}
