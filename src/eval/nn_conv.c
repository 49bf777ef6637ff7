/*
 * Conv and ConvTranspose over 1 to 6 spatial dims, with groups, strides,
 * pads, dilations and auto_pad. Conv gathers each group's input windows
 * into a column matrix (im2col) and multiplies it by the weights;
 * ConvTranspose multiplies first and scatters the columns back (col2im).
 */
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/parallel.h"
#include "util/mem.h"

struct conv_plan {
	struct bnf_nn_window w; /* image: X (Conv) or Y (ConvTranspose) spatial dims */
	int transpose;
	size_t batch, c_in, c_out, group;
	size_t kernel_size; /* elements of one kernel: prod(kernel) */
	size_t image_size;  /* prod(w.image) */
	size_t grid_size;   /* prod(w.grid) */
	int64_t y_dims[BNF_MAX_RANK];
};

/* ConvTranspose's output size and pads (opset 1 and 11 agree): from
 * output_shape when given, from auto_pad SAME_* (input times stride), or
 * from the pads. */
static int transpose_output(const struct bnf_op_ctx *ctx, struct conv_plan *p)
{
	struct bnf_nn_window *w = &p->w;
	int64_t out_pad[BNF_MAX_RANK], out_shape[BNF_MAX_RANK + 2];
	size_t n_pad, n_shape;
	int same = strncmp(w->auto_pad, "SAME_", 5) == 0;
	int rc, i;

	rc = bnf_attr_ints(ctx->node, "output_padding", out_pad, BNF_MAX_RANK, &n_pad, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_ints(ctx->node, "output_shape", out_shape, BNF_MAX_RANK + 2, &n_shape,
		                   ctx->err);
	if (rc != BNF_OK)
		return rc;
	if (n_pad != 0 && n_pad != (size_t)w->n)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "output_padding has %zu values", n_pad);
	/* output_shape may also list N and C in front: keep the spatial part. */
	if (n_shape == (size_t)w->n + 2)
		memmove(out_shape, out_shape + 2, (size_t)w->n * sizeof(out_shape[0]));
	else if (n_shape != 0 && n_shape != (size_t)w->n)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "output_shape has %zu values", n_shape);
	for (i = 0; i < w->n; i++) {
		int64_t op = n_pad ? out_pad[i] : 0;
		int64_t full =
		    w->stride[i] * (w->grid[i] - 1) + op + (w->kernel[i] - 1) * w->dilation[i] + 1;
		if (op < 0 || (op >= w->stride[i] && op >= w->dilation[i]))
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "output_padding %lld must be below the stride or dilation",
			                (long long)op);
		if (n_shape || same) {
			int64_t want = n_shape ? out_shape[i] : w->grid[i] * w->stride[i];
			int64_t total = full - want;
			/* The spec's total / 2 floors: an output_shape past
			 * what the kernel reaches (negative total) pads the
			 * end with zeros. */
			int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
			w->pad_begin[i] =
			    strcmp(w->auto_pad, "SAME_UPPER") == 0 ? half : total - half;
			w->pad_end[i] = total - w->pad_begin[i];
		} else if (strcmp(w->auto_pad, "VALID") == 0) {
			w->pad_begin[i] = w->pad_end[i] = 0;
		}
		w->image[i] = full - w->pad_begin[i] - w->pad_end[i];
		if (w->image[i] < 0)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "pads leave a negative output size in spatial dim %d", i);
	}
	return BNF_OK;
}

/* W left float32 by a promote_double run (eval.c keeps_float32) while X is
 * float64: Conv widens it as the multiply reads it. */
static int weights_widened(const struct bnf_op_ctx *ctx)
{
	return ctx->promote && ctx->in[0]->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
	       bnf_nn_is_f32(ctx->in[1]);
}

/* Validate the inputs and attributes and size the output. */
static int conv_plan(const struct bnf_op_ctx *ctx, int transpose, struct conv_plan *p)
{
	const struct bnf_tensor *x, *wt, *b;
	int64_t group;
	int rc, n, i;

	memset(p, 0, sizeof(*p));
	p->transpose = transpose;
	rc = bnf_nn_check_inputs(ctx, 2, 3, 0x7);
	if (rc != BNF_OK)
		return rc;
	x = ctx->in[0];
	wt = ctx->in[1];
	b = ctx->n_in > 2 ? ctx->in[2] : NULL;
	if (x->rank < 3 || wt->rank != x->rank)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "X (rank %d) and W (rank %d) need the same rank of at least 3",
		                x->rank, wt->rank);
	if ((wt->dtype != x->dtype && !(transpose == 0 && weights_widened(ctx))) ||
	    (b && b->dtype != x->dtype))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "X, W and B must share one dtype");
	rc = bnf_attr_int(ctx->node, "group", 1, &group, ctx->err);
	if (rc != BNF_OK)
		return rc;
	n = x->rank - 2;
	p->batch = (size_t)x->dims[0];
	p->c_in = (size_t)x->dims[1];
	p->group = group > 0 ? (size_t)group : 0;
	if (group < 1 || p->c_in % p->group != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "group %lld does not divide %zu channels",
		                (long long)group, p->c_in);
	if (!transpose && (int64_t)(p->c_in / p->group) != wt->dims[1])
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "W has %lld input channels per group, X gives %zu",
		                (long long)wt->dims[1], p->c_in / p->group);
	if (transpose && (size_t)wt->dims[0] != p->c_in)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "W has %lld input channels, X has %zu",
		                (long long)wt->dims[0], p->c_in);
	p->c_out = transpose ? (size_t)wt->dims[1] * p->group : (size_t)wt->dims[0];
	if (!transpose && p->c_out % p->group != 0)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "group %zu does not divide %zu outputs",
		                p->group, p->c_out);
	if (b && (b->rank != 1 || (size_t)b->dims[0] != p->c_out))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "B must be a vector of %zu values",
		                p->c_out);
	rc = bnf_nn_read_window(ctx, n, wt->dims + 2, &p->w);
	if (rc != BNF_OK)
		return rc;
	for (i = 0; i < n; i++)
		if (p->w.kernel[i] != wt->dims[2 + i])
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "kernel_shape disagrees with W in spatial dim %d", i);
	if (transpose) {
		memcpy(p->w.grid, x->dims + 2, (size_t)n * sizeof(x->dims[0]));
		rc = transpose_output(ctx, p);
	} else {
		memcpy(p->w.image, x->dims + 2, (size_t)n * sizeof(x->dims[0]));
		rc = bnf_nn_window_output(ctx, &p->w, 0);
	}
	if (rc != BNF_OK)
		return rc;
	p->y_dims[0] = (int64_t)p->batch;
	p->y_dims[1] = (int64_t)p->c_out;
	memcpy(p->y_dims + 2, transpose ? p->w.image : p->w.grid, (size_t)n * sizeof(int64_t));
	p->kernel_size = bnf_nn_prod(p->w.kernel, n);
	p->image_size = bnf_nn_prod(p->w.image, n);
	p->grid_size = bnf_nn_prod(p->w.grid, n);
	return BNF_OK;
}

/* Copy `count` elements from src, `stride` apart, to consecutive dst. */
static void gather_run(char *dst, const char *src, size_t count, int64_t stride, size_t es)
{
	size_t i;

	if (stride == 1)
		memcpy(dst, src, count * es);
	else if (es == sizeof(float))
		for (i = 0; i < count; i++)
			((float *)dst)[i] = ((const float *)src)[i * (size_t)stride];
	else
		for (i = 0; i < count; i++)
			((double *)dst)[i] = ((const double *)src)[i * (size_t)stride];
}

/* Add `count` consecutive src elements to dst elements `stride` apart. */
static void scatter_run(char *dst, const char *src, size_t count, int64_t stride, size_t es)
{
	size_t i;

	if (es == sizeof(float))
		for (i = 0; i < count; i++)
			((float *)dst)[i * (size_t)stride] += ((const float *)src)[i];
	else
		for (i = 0; i < count; i++)
			((double *)dst)[i * (size_t)stride] += ((const double *)src)[i];
}

/* First grid position g in [0, n) whose coordinate g * s + off is >= 0,
 * and one past the last whose coordinate is < len. */
static void valid_range(int64_t off, int64_t s, int64_t len, int64_t n, int64_t *lo, int64_t *hi)
{
	*lo = off >= 0 ? 0 : (-off + s - 1) / s;
	*hi = len - off > 0 ? (len - off + s - 1) / s : 0;
	if (*hi > n)
		*hi = n;
	if (*lo > *hi)
		*lo = *hi;
}

/* For `channels` channels of an image, walk every kernel offset and grid
 * position of the window. Gathering (im2col) fills col[channel * K + k][g]
 * with the image value under it, 0 in the padding; scattering (col2im)
 * adds each column value to the image element under it. */
static void window_walk(const struct bnf_nn_window *w, size_t channels, size_t es, int scatter,
                        char *image, char *col)
{
	int n = w->n, last = w->n - 1, i;
	size_t kernel_size = bnf_nn_prod(w->kernel, n);
	size_t grid_size = bnf_nn_prod(w->grid, n), image_size = bnf_nn_prod(w->image, n);
	size_t runs = grid_size / (size_t)(w->grid[last] ? w->grid[last] : 1), c, r, o;
	int64_t kidx[BNF_MAX_RANK] = {0}, gidx[BNF_MAX_RANK];

	if (grid_size == 0)
		return;
	for (c = 0; c < channels; c++) {
		for (r = 0; r < kernel_size; r++) {
			char *row = col + ((c * kernel_size + r) * grid_size) * es;
			int64_t off = kidx[last] * w->dilation[last] - w->pad_begin[last], lo, hi;
			valid_range(off, w->stride[last], w->image[last], w->grid[last], &lo, &hi);
			memset(gidx, 0, sizeof(gidx));
			for (o = 0; o < runs; o++) {
				char *dst = row + o * (size_t)w->grid[last] * es;
				size_t base = 0;
				int inside = 1;
				/* Image offset of the run from the outer dims. */
				for (i = 0; i < last; i++) {
					int64_t x = gidx[i] * w->stride[i] - w->pad_begin[i] +
					            kidx[i] * w->dilation[i];
					inside = inside && x >= 0 && x < w->image[i];
					base =
					    base * (size_t)w->image[i] + (size_t)(inside ? x : 0);
				}
				if (!scatter && (!inside || lo > 0 || hi < w->grid[last]))
					memset(dst, 0, (size_t)w->grid[last] * es);
				if (inside && hi > lo) {
					char *src = image + (c * image_size +
					                     base * (size_t)w->image[last] +
					                     (size_t)(lo * w->stride[last] + off)) *
					                        es;
					if (scatter)
						scatter_run(src, dst + (size_t)lo * es,
						            (size_t)(hi - lo), w->stride[last], es);
					else
						gather_run(dst + (size_t)lo * es, src,
						           (size_t)(hi - lo), w->stride[last], es);
				}
				for (i = last - 1; i >= 0 && ++gidx[i] == w->grid[i]; i--)
					gidx[i] = 0;
			}
			for (i = last; i >= 0 && ++kidx[i] == w->kernel[i]; i--)
				kidx[i] = 0;
		}
	}
}

/* The im2col matrix of one group (window_walk's col) as a producer for the
 * multiply: each block of it is made straight into the packed layout, so
 * the matrix is never stored and read back. */
struct conv_bsrc {
	struct bnf_gemm_bsrc base;
	const struct bnf_nn_window *w;
	const char *image; /* the group's first channel of X */
	size_t image_size, kernel_size;
};

/* Element (row p0 + p, column j0 + j) of the block for j < nc, written by
 * runs along the grid's last dim (valid_range gives the part of a run
 * inside the image; the rest is padding). */
#define CONV_DEFINE_PACK(name, real)                                                               \
	static void name(const struct bnf_gemm_bsrc *src, size_t p0, size_t kc, size_t j0,         \
	                 size_t nc, size_t nr, void *dst)                                          \
	{                                                                                          \
		const struct conv_bsrc *cs = (const struct conv_bsrc *)src;                        \
		const struct bnf_nn_window *w = cs->w;                                             \
		int last = w->n - 1, i;                                                            \
		size_t p, j, t;                                                                    \
		for (p = 0; p < kc; p++) {                                                         \
			size_t r = p0 + p, kr = r % cs->kernel_size, g1 = j0;                      \
			const real *chan =                                                         \
			    (const real *)cs->image + (r / cs->kernel_size) * cs->image_size;      \
			int64_t kidx[BNF_MAX_RANK], gidx[BNF_MAX_RANK], off, lo, hi;               \
			real *panel = (real *)dst + p * nr;                                        \
			size_t within = 0;                                                         \
			for (i = last; i >= 0; i--) {                                              \
				kidx[i] = (int64_t)(kr % (size_t)w->kernel[i]);                    \
				kr /= (size_t)w->kernel[i];                                        \
				gidx[i] = (int64_t)(g1 % (size_t)w->grid[i]);                      \
				g1 /= (size_t)w->grid[i];                                          \
			}                                                                          \
			off = kidx[last] * w->dilation[last] - w->pad_begin[last];                 \
			valid_range(off, w->stride[last], w->image[last], w->grid[last], &lo,      \
			            &hi);                                                          \
			for (j = 0; j < nc;) {                                                     \
				size_t run = (size_t)(w->grid[last] - gidx[last]), base = 0;       \
				int inside = 1;                                                    \
				if (run > nc - j)                                                  \
					run = nc - j;                                              \
				for (i = 0; i < last; i++) {                                       \
					int64_t x = gidx[i] * w->stride[i] - w->pad_begin[i] +     \
					            kidx[i] * w->dilation[i];                      \
					inside = inside && x >= 0 && x < w->image[i];              \
					base =                                                     \
					    base * (size_t)w->image[i] + (size_t)(inside ? x : 0); \
				}                                                                  \
				/* In pieces that stay inside one panel: padding,                  \
				 * the values under the window, padding. */                        \
				for (t = 0; t < run;) {                                            \
					size_t seg =                                               \
					    nr - within < run - t ? nr - within : run - t;         \
					int64_t g0 = gidx[last] + (int64_t)t, a, b, s;             \
					real *out = panel + within;                                \
					a = inside ? lo - g0 : (int64_t)seg;                       \
					b = inside ? hi - g0 : (int64_t)seg;                       \
					a = a < 0 ? 0 : a > (int64_t)seg ? (int64_t)seg : a;       \
					b = b < a ? a : b > (int64_t)seg ? (int64_t)seg : b;       \
					for (s = 0; s < a; s++)                                    \
						out[s] = 0;                                        \
					if (b > a) {                                               \
						const real *in =                                   \
						    chan + base * (size_t)w->image[last] +         \
						    (size_t)((g0 + a) * w->stride[last] + off);    \
						if (w->stride[last] == 1)                          \
							memcpy(out + a, in,                        \
							       (size_t)(b - a) * sizeof(real));    \
						else                                               \
							for (s = a; s < b; s++)                    \
								out[s] =                           \
								    in[(s - a) * w->stride[last]]; \
					}                                                          \
					for (s = b; s < (int64_t)seg; s++)                         \
						out[s] = 0;                                        \
					t += seg;                                                  \
					within += seg;                                             \
					if (within == nr) {                                        \
						within = 0;                                        \
						panel += nr * kc;                                  \
					}                                                          \
				}                                                                  \
				j += run;                                                          \
				gidx[last] += (int64_t)run;                                        \
				for (i = last; i > 0 && gidx[i] == w->grid[i]; i--) {              \
					gidx[i] = 0;                                               \
					gidx[i - 1]++;                                             \
				}                                                                  \
			}                                                                          \
			while (within > 0 && within < nr)                                          \
				panel[within++] = 0;                                               \
		}                                                                                  \
	}

CONV_DEFINE_PACK(conv_pack_f32, float)
CONV_DEFINE_PACK(conv_pack_f64, double)

/* C[m x n] = A[m x k] * B[k x n] in the tensor's precision. */
static void matmul(const struct bnf_op_ctx *ctx, int dbl, size_t m, size_t n, size_t k,
                   const void *a, const void *b, void *c)
{
	if (dbl)
		bnf_dgemm(ctx->threads, m, n, k, a, k, b, n, c, n, 0);
	else
		bnf_sgemm(ctx->threads, m, n, k, a, k, b, n, c, n, 0);
}

/* row[j] += v for a float32 plane. */
BNF_NN_VECTORIZE static void add_to_plane_f32(float *row, size_t n, float v)
{
	size_t j;

	for (j = 0; j < n; j++)
		row[j] += v;
}

/* What the planes of one bias add share. */
struct bias_planes {
	struct bnf_tensor *y;
	const struct bnf_tensor *b;
	size_t channels, size;
};

/* Planes lo .. hi - 1 (plane i holds channel i % channels): each its
 * own, so they may run on any thread. */
static void bias_planes_run(void *arg, size_t lo, size_t hi)
{
	const struct bias_planes *bp = arg;
	size_t i, j, size = bp->size;

	for (i = lo; i < hi; i++) {
		double v = bnf_nn_get(bp->b, i % bp->channels);
		if (bp->y->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
			/* float + float rounds like the double sum stored as float. */
			add_to_plane_f32((float *)bp->y->data + i * size, size, (float)v);
			continue;
		}
		for (j = 0; j < size; j++)
			bnf_nn_set(bp->y, i * size + j, bnf_nn_get(bp->y, i * size + j) + v);
	}
}

/* Add bias b[channel] to every element of y [batch, channels, size]. */
static void add_bias(int threads, struct bnf_tensor *y, const struct bnf_tensor *b, size_t batch,
                     size_t channels, size_t size)
{
	struct bias_planes bp = {y, b, channels, size};

	if (b)
		bnf_parallel_for(threads, batch * channels, bnf_parallel_grain(size),
		                 bias_planes_run, &bp);
}

/* Whether im2col would only copy X: 1x1 kernel, unit strides, no pads. */
static int is_pointwise(const struct bnf_nn_window *w)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (w->kernel[i] != 1 || w->stride[i] != 1 || w->pad_begin[i] || w->pad_end[i])
			return 0;
	return 1;
}

static size_t elem_of(const struct bnf_tensor *t)
{
	return bnf_tensor_elem_size(t->dtype);
}

int bnf_nn_conv_shape(struct bnf_op_ctx *ctx)
{
	struct conv_plan p;
	int rc = conv_plan(ctx, 0, &p);

	return rc ? rc : bnf_nn_new_output_uninit(ctx, 0, 0, ctx->in[0]->rank, p.y_dims);
}

/* One group's Y[mg x grid] = W[mg x rows] x im2col(X) (or X itself when
 * direct), W stored as X's type or, widened, as float32. */
static int conv_group(const struct bnf_op_ctx *ctx, const struct conv_plan *p, int direct,
                      struct conv_bsrc *cs, const char *wg, char *xg, char *yg)
{
	size_t mg = p->c_out / p->group, rows = p->c_in / p->group * p->kernel_size;
	int dbl = ctx->in[0]->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
	int rc = 0;

	cs->image = xg;
	if (direct && !weights_widened(ctx))
		/* A 1x1 window at unit stride: X is the matrix. */
		matmul(ctx, dbl, mg, p->grid_size, rows, wg, xg, yg);
	else if (weights_widened(ctx))
		rc = bnf_dgemm_fa(ctx->threads, mg, p->grid_size, rows, (const float *)wg, rows,
		                  direct ? (const double *)xg : NULL, p->grid_size,
		                  direct ? NULL : &cs->base, (double *)yg, p->grid_size);
	else if (dbl)
		rc = bnf_dgemm_bsrc(ctx->threads, mg, p->grid_size, rows, (const double *)wg, rows,
		                    &cs->base, (double *)yg, p->grid_size);
	else
		rc = bnf_sgemm_bsrc(ctx->threads, mg, p->grid_size, rows, (const float *)wg, rows,
		                    &cs->base, (float *)yg, p->grid_size);
	return rc == 0 ? BNF_OK
	               : bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory for the matrix multiply");
}

int bnf_nn_conv_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0], *wt = ctx->in[1];
	struct bnf_tensor *y = ctx->out[0];
	struct conv_plan p;
	size_t es = elem_of(x), cg, mg, rows, nb, g;
	int dbl = x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, direct;
	struct conv_bsrc cs;
	int rc = conv_plan(ctx, 0, &p);

	if (rc != BNF_OK)
		return rc;
	cg = p.c_in / p.group;
	mg = p.c_out / p.group;
	rows = cg * p.kernel_size;
	direct = is_pointwise(&p.w);
	cs.base.pack = dbl ? conv_pack_f64 : conv_pack_f32;
	cs.w = &p.w;
	cs.image_size = p.image_size;
	cs.kernel_size = p.kernel_size;
	for (nb = 0; nb < p.batch; nb++) {
		for (g = 0; g < p.group; g++) {
			char *xg = (char *)x->data + ((nb * p.c_in + g * cg) * p.image_size) * es;
			char *yg = (char *)y->data + ((nb * p.c_out + g * mg) * p.grid_size) * es;
			const char *wg = (const char *)wt->data + g * mg * rows * elem_of(wt);
			if ((rc = conv_group(ctx, &p, direct, &cs, wg, xg, yg)) != BNF_OK)
				return rc;
		}
	}
	add_bias(ctx->threads, y, ctx->n_in > 2 ? ctx->in[2] : NULL, p.batch, p.c_out, p.grid_size);
	return BNF_OK;
}

int bnf_nn_conv_transpose_shape(struct bnf_op_ctx *ctx)
{
	struct conv_plan p;
	int rc = conv_plan(ctx, 1, &p);

	return rc ? rc : bnf_nn_new_output(ctx, 0, 0, ctx->in[0]->rank, p.y_dims);
}

/* dst[cols x rows] = transpose of src[rows x cols]. */
static void transpose(char *dst, const char *src, size_t rows, size_t cols, size_t es)
{
	size_t i, j;

	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++)
			memcpy(dst + (j * rows + i) * es, src + (i * cols + j) * es, es);
}

int bnf_nn_conv_transpose_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x = ctx->in[0], *wt = ctx->in[1];
	struct bnf_tensor *y = ctx->out[0];
	struct conv_plan p;
	size_t es = elem_of(x), cg, rows, nb, g;
	int dbl = x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
	char *col = NULL, *wt_t = NULL;
	int rc = conv_plan(ctx, 1, &p);

	if (rc != BNF_OK)
		goto out;
	cg = p.c_in / p.group;
	rows = p.c_out / p.group * p.kernel_size; /* one group's outputs x kernel */
	if (rows && p.grid_size > BNF_MAX_ELEMENTS / rows) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "the column matrix is too large");
		goto out;
	}
	col = bnf_malloc_large(rows * p.grid_size * es + 1);
	wt_t = malloc(wt->count * es + 1);
	if (!col || !wt_t) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory for the column matrix");
		goto out;
	}
	/* W is [C_in, M / group, k...]: each group's block transposed gives
	 * the [M / group * K, C_in / group] left operand. */
	for (g = 0; g < p.group; g++)
		transpose(wt_t + g * rows * cg * es, (const char *)wt->data + g * cg * rows * es,
		          cg, rows, es);
	for (nb = 0; nb < p.batch; nb++) {
		for (g = 0; g < p.group; g++) {
			const char *xg =
			    (const char *)x->data + ((nb * p.c_in + g * cg) * p.grid_size) * es;
			char *yg = (char *)y->data +
			           ((nb * p.c_out + g * (p.c_out / p.group)) * p.image_size) * es;
			matmul(ctx, dbl, rows, p.grid_size, cg, wt_t + g * rows * cg * es, xg, col);
			window_walk(&p.w, p.c_out / p.group, es, 1, yg, col);
		}
	}
	add_bias(ctx->threads, y, ctx->n_in > 2 ? ctx->in[2] : NULL, p.batch, p.c_out,
	         p.image_size);
out:
	free(col);
	free(wt_t);
	return rc;
}
