/*
 * The one broadcasting walk shared by every elementwise operator: operands
 * are aligned on the right against the output's shape, runs of dimensions
 * that are laid out alike are merged, and values move through double or
 * int64 lanes a chunk at a time, so each operator only supplies a kernel.
 */
#include "eval/basic_ops.h"

#include <stdio.h>
#include <string.h>

int bnf_basic_is_float(int dtype)
{
	return dtype == BASIC_FLOAT || dtype == BASIC_DOUBLE || dtype == BASIC_FLOAT16 ||
	       dtype == BASIC_BFLOAT16;
}

int bnf_basic_is_integer(int dtype)
{
	return bnf_dtype_is_integer(dtype);
}

enum basic_lane bnf_basic_natural_lane(int dtype)
{
	return bnf_basic_is_float(dtype) ? BASIC_LANE_F64 : BASIC_LANE_I64;
}

int bnf_basic_check_arity(const struct bnf_op_ctx *ctx, size_t min_in, size_t max_in,
                          size_t max_out)
{
	size_t i;

	if (ctx->n_in < min_in || ctx->n_in > max_in) {
		if (max_in == SIZE_MAX)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "has %zu inputs, expected at least %zu", ctx->n_in, min_in);
		if (min_in == max_in)
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "has %zu inputs, expected %zu",
			                ctx->n_in, min_in);
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "has %zu inputs, expected %zu to %zu",
		                ctx->n_in, min_in, max_in);
	}
	if (ctx->n_out < 1 || ctx->n_out > max_out)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "has %zu outputs, expected 1 to %zu",
		                ctx->n_out, max_out);
	for (i = 0; i < min_in; i++) {
		if (!ctx->in[i])
			return bnf_fail(ctx->err, BNF_ERR_INPUT, "input %zu is missing", i);
	}
	return BNF_OK;
}

const char *bnf_basic_shape_str(const struct bnf_tensor *t, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	used += (size_t)snprintf(buf, len, "[");
	for (i = 0; i < t->rank && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "",
		                         (long long)t->dims[i]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
	return buf;
}

int bnf_basic_new_output(struct bnf_op_ctx *ctx, size_t i, int dtype, const struct bnf_tensor *like)
{
	if (bnf_op_take_donor(ctx, i, dtype, like->rank, like->dims))
		return BNF_OK;
	ctx->out[i] = bnf_tensor_new(dtype, like->rank, like->dims, ctx->err);
	if (!ctx->out[i])
		return ctx->err ? ctx->err->status : BNF_ERR_NOMEM;
	return BNF_OK;
}

int bnf_basic_broadcast_shape(size_t n, const struct bnf_tensor *const *t, int *rank, int64_t *dims)
{
	size_t k;
	int i;

	*rank = 0;
	for (k = 0; k < n; k++)
		if (t[k]->rank > *rank)
			*rank = t[k]->rank;
	for (i = 0; i < *rank; i++)
		dims[i] = 1;
	for (k = 0; k < n; k++) {
		int shift = *rank - t[k]->rank;
		for (i = 0; i < t[k]->rank; i++) {
			int64_t d = t[k]->dims[i];
			int64_t *o = &dims[i + shift];
			if (d == *o || d == 1)
				continue;
			if (*o != 1)
				return -1;
			*o = d;
		}
	}
	return 0;
}

/* The walk over the output: dims after merging, and each operand's element
 * stride along every dimension (0 where it is broadcast). */
struct bcast_walk {
	int rank;
	int64_t dims[BNF_MAX_RANK];
	size_t stride[BASIC_MAX_OPERANDS][BNF_MAX_RANK];
};

static void walk_init(struct bcast_walk *w, const struct basic_map *m)
{
	const struct bnf_tensor *out = m->out;
	size_t raw[BASIC_MAX_OPERANDS][BNF_MAX_RANK];
	size_t k;
	int i;

	for (k = 0; k < m->n_in; k++) {
		const struct bnf_tensor *t = m->in[k];
		int shift = out->rank - t->rank;
		size_t s = 1;
		for (i = out->rank - 1; i >= 0; i--) {
			int64_t d = i >= shift ? t->dims[i - shift] : 1;
			raw[k][i] = d == 1 ? 0 : s;
			s *= (size_t)d;
		}
	}
	/* Drop dimensions of size 1 and merge a dimension into the one before
	 * it when every operand steps through both as one contiguous run. */
	w->rank = 0;
	for (i = 0; i < out->rank; i++) {
		int merge = w->rank > 0;
		if (out->dims[i] == 1)
			continue;
		for (k = 0; k < m->n_in && merge; k++)
			merge = w->stride[k][w->rank - 1] == raw[k][i] * (size_t)out->dims[i];
		if (merge) {
			w->dims[w->rank - 1] *= out->dims[i];
			for (k = 0; k < m->n_in; k++)
				w->stride[k][w->rank - 1] = raw[k][i];
			continue;
		}
		w->dims[w->rank] = out->dims[i];
		for (k = 0; k < m->n_in; k++)
			w->stride[k][w->rank] = raw[k][i];
		w->rank++;
	}
	if (w->rank == 0) {
		w->rank = 1;
		w->dims[0] = 1;
		for (k = 0; k < m->n_in; k++)
			w->stride[k][0] = 0;
	}
}

/* Out-of-range and NaN conversions give the "integer indefinite" value,
 * as the x86 conversion numpy relies on does. */
static int64_t f64_to_i64(double x)
{
	if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
		return INT64_MIN;
	return (int64_t)x;
}

static int32_t f64_to_i32(double x)
{
	if (!(x > -2147483649.0 && x < 2147483648.0))
		return INT32_MIN;
	return (int32_t)x;
}

/* As the x86 conversion does: below 2^63 through int64 (so -1.0 wraps to
 * 2^64 - 1), from 2^63 to 2^64 exactly, anything else 2^63. */
static int64_t f64_to_u64(double x)
{
	if (x >= 9223372036854775808.0 && x < 18446744073709551616.0)
		return (int64_t)((uint64_t)(x - 9223372036854775808.0) ^ ((uint64_t)1 << 63));
	return f64_to_i64(x);
}

void bnf_basic_load(const struct bnf_tensor *t, enum basic_lane lane, size_t off, size_t step,
                    size_t n, union basic_lane_buf *dst)
{
	size_t i;

	switch (t->dtype) {
	case BASIC_FLOAT:
	case BASIC_FLOAT16:
	case BASIC_BFLOAT16: {
		const float *p = (const float *)t->data + off;
		for (i = 0; i < n; i++)
			dst->f[i] = p[i * step];
		break;
	}
	case BASIC_DOUBLE: {
		const double *p = (const double *)t->data + off;
		for (i = 0; i < n; i++)
			dst->f[i] = p[i * step];
		break;
	}
	case BASIC_INT64: {
		const int64_t *p = (const int64_t *)t->data + off;
		for (i = 0; i < n; i++)
			dst->i[i] = p[i * step];
		break;
	}
	case BASIC_INT32: {
		const int32_t *p = (const int32_t *)t->data + off;
		for (i = 0; i < n; i++)
			dst->i[i] = p[i * step];
		break;
	}
	case BASIC_INT8: {
		const int8_t *p = (const int8_t *)t->data + off;
		for (i = 0; i < n; i++)
			dst->i[i] = p[i * step];
		break;
	}
	case BASIC_UINT64:
	case BASIC_UINT32:
	case BASIC_INT16:
	case BASIC_UINT16:
		for (i = 0; i < n; i++)
			dst->i[i] = bnf_tensor_get_int(t, off + i * step);
		break;
	default: { /* UINT8, BOOL */
		const uint8_t *p = (const uint8_t *)t->data + off;
		for (i = 0; i < n; i++)
			dst->i[i] = p[i * step];
		break;
	}
	}
	if (lane == bnf_basic_natural_lane(t->dtype))
		return;
	if (lane == BASIC_LANE_F64 && t->dtype == BASIC_UINT64) {
		for (i = 0; i < n; i++)
			dst->f[i] = (double)(uint64_t)dst->i[i];
	} else if (lane == BASIC_LANE_F64) {
		for (i = 0; i < n; i++)
			dst->f[i] = (double)dst->i[i];
	} else {
		for (i = 0; i < n; i++)
			dst->i[i] = f64_to_i64(dst->f[i]);
	}
}

void bnf_basic_store(struct bnf_tensor *t, enum basic_lane lane, size_t off, size_t step, size_t n,
                     union basic_lane_buf *src)
{
	size_t i;

	if (lane == BASIC_LANE_I64 && bnf_basic_is_float(t->dtype)) {
		for (i = 0; i < n; i++)
			src->f[i] = (double)src->i[i];
		lane = BASIC_LANE_F64;
	}
	if (lane == BASIC_LANE_F64 && !bnf_basic_is_float(t->dtype)) {
		for (i = 0; i < n; i++) {
			double x = src->f[i];
			if (t->dtype == BASIC_BOOL)
				src->i[i] = x != 0.0; /* NaN is true, as in numpy */
			else if (t->dtype == BASIC_INT64 || t->dtype == BASIC_UINT32)
				src->i[i] = f64_to_i64(x);
			else if (t->dtype == BASIC_UINT64)
				src->i[i] = f64_to_u64(x);
			else /* narrower types go through int32, then wrap */
				src->i[i] = f64_to_i32(x);
		}
	}
	switch (t->dtype) {
	case BASIC_FLOAT:
		for (i = 0; i < n; i++)
			((float *)t->data)[off + i * step] = (float)src->f[i];
		break;
	case BASIC_FLOAT16:
		for (i = 0; i < n; i++)
			((float *)t->data)[off + i * step] =
			    bnf_f16_to_f32(bnf_f32_to_f16((float)src->f[i]));
		break;
	case BASIC_BFLOAT16:
		for (i = 0; i < n; i++)
			((float *)t->data)[off + i * step] =
			    bnf_bf16_to_f32(bnf_f32_to_bf16((float)src->f[i]));
		break;
	case BASIC_DOUBLE:
		for (i = 0; i < n; i++)
			((double *)t->data)[off + i * step] = src->f[i];
		break;
	case BASIC_INT64:
		for (i = 0; i < n; i++)
			((int64_t *)t->data)[off + i * step] = src->i[i];
		break;
	case BASIC_INT32:
		for (i = 0; i < n; i++)
			((int32_t *)t->data)[off + i * step] = (int32_t)(uint32_t)src->i[i];
		break;
	case BASIC_INT8:
		for (i = 0; i < n; i++)
			((int8_t *)t->data)[off + i * step] = (int8_t)(uint8_t)src->i[i];
		break;
	case BASIC_BOOL:
		for (i = 0; i < n; i++)
			((uint8_t *)t->data)[off + i * step] = src->i[i] != 0;
		break;
	case BASIC_UINT64:
	case BASIC_UINT32:
	case BASIC_INT16:
	case BASIC_UINT16:
		for (i = 0; i < n; i++)
			bnf_tensor_set_int(t, off + i * step, src->i[i]);
		break;
	default: /* UINT8 */
		for (i = 0; i < n; i++)
			((uint8_t *)t->data)[off + i * step] = (uint8_t)src->i[i];
		break;
	}
}

static int copy_kernel(const struct basic_map *m, size_t n, union basic_lane_buf *out,
                       const union basic_lane_buf *in)
{
	(void)m;
	memcpy(out, in, n * sizeof(out->f[0]));
	return 0;
}

/* Run the kernel along one row of the walk, a chunk at a time. */
static int map_row(const struct basic_map *m, const struct bcast_walk *w, const size_t *off,
                   size_t out_off, union basic_lane_buf *lanes)
{
	size_t row = (size_t)w->dims[w->rank - 1];
	size_t done, k;

	for (done = 0; done < row; done += BASIC_CHUNK) {
		size_t n = row - done < BASIC_CHUNK ? row - done : BASIC_CHUNK;
		for (k = 0; k < m->n_in; k++) {
			size_t step = w->stride[k][w->rank - 1];
			bnf_basic_load(m->in[k], m->in_lane[k], off[k] + done * step, step, n,
			               &lanes[k + 1]);
		}
		if (m->kernel(m, n, &lanes[0], &lanes[1]) != 0)
			return -1;
		bnf_basic_store(m->out, m->out_lane, out_off + done, 1, n, &lanes[0]);
	}
	return 0;
}

int bnf_basic_map_run(const struct basic_map *m)
{
	union basic_lane_buf lanes[BASIC_MAX_OPERANDS + 1]; /* [0] is the output */
	struct bcast_walk w;
	int64_t idx[BNF_MAX_RANK] = {0};
	size_t off[BASIC_MAX_OPERANDS] = {0};
	size_t row, out_off;
	size_t k;
	int i;

	if (m->out->count == 0)
		return 0;
	walk_init(&w, m);
	row = (size_t)w.dims[w.rank - 1];
	for (out_off = 0; out_off < m->out->count; out_off += row) {
		if (map_row(m, &w, off, out_off, lanes) != 0)
			return -1;
		/* Advance the outer dimensions like an odometer. */
		for (i = w.rank - 2; i >= 0; i--) {
			for (k = 0; k < m->n_in; k++)
				off[k] += w.stride[k][i];
			if (++idx[i] < w.dims[i])
				break;
			for (k = 0; k < m->n_in; k++)
				off[k] -= w.stride[k][i] * (size_t)w.dims[i];
			idx[i] = 0;
		}
	}
	return 0;
}

void bnf_basic_convert(const struct bnf_tensor *in, struct bnf_tensor *out)
{
	struct basic_map m = {0};

	m.n_in = 1;
	m.in[0] = in;
	m.in_lane[0] = m.out_lane = bnf_basic_natural_lane(in->dtype);
	/* The int64 lane would read a uint64 above 2^63 as negative. */
	if (in->dtype == BASIC_UINT64 && bnf_basic_is_float(out->dtype))
		m.in_lane[0] = m.out_lane = BASIC_LANE_F64;
	m.out = out;
	m.kernel = copy_kernel;
	bnf_basic_map_run(&m);
}
