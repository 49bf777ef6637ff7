/*
 * Gemm (Y = alpha * A' * B' + beta * C with optional transposes and a C
 * broadcast to Y) and MatMul (numpy semantics: 1-D operands promoted,
 * batch dims broadcast), both on the shared blocked matrix multiply.
 */
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"

static int is_double(const struct bnf_tensor *t)
{
	return t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

/* c[m x n] = a[m x k] * b[k x n] with leading dims lda, ldb and n. */
static void multiply(const struct bnf_op_ctx *ctx, int dbl, size_t m, size_t n, size_t k,
                     const void *a, size_t lda, const void *b, size_t ldb, void *c)
{
	if (dbl)
		bnf_dgemm(ctx->threads, m, n, k, a, lda, b, ldb, c, n, 0);
	else
		bnf_sgemm(ctx->threads, m, n, k, a, lda, b, ldb, c, n, 0);
}

/* Held as float32 (float16 and bfloat16 are widened when read). */
static int held_as_float32(const struct bnf_tensor *t)
{
	return t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* B left float32 by a promote_double run (eval.c keeps_float32) while A is
 * float64: B is widened as its panels are packed. */
static int float32_beside_double(const struct bnf_op_ctx *ctx, const struct bnf_tensor *a,
                                 const struct bnf_tensor *b)
{
	return ctx->promote && is_double(a) && held_as_float32(b);
}

struct gemm_plan {
	int64_t trans_a, trans_b;
	float alpha, beta;
	size_t m, n, k;
};

static int gemm_plan(const struct bnf_op_ctx *ctx, struct gemm_plan *p)
{
	const struct bnf_tensor *a, *b, *c;
	size_t ka, kb;
	int rc = bnf_nn_check_inputs(ctx, 2, 3, 0x7);

	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "transA", 0, &p->trans_a, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_int(ctx->node, "transB", 0, &p->trans_b, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_float(ctx->node, "alpha", 1.0f, &p->alpha, ctx->err);
	if (rc == BNF_OK)
		rc = bnf_attr_float(ctx->node, "beta", 1.0f, &p->beta, ctx->err);
	if (rc != BNF_OK)
		return rc;
	a = ctx->in[0];
	b = ctx->in[1];
	c = ctx->n_in > 2 ? ctx->in[2] : NULL;
	/* C became optional in opset 11. */
	if (!c && ctx->opset < 11)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "input C is required before opset 11");
	if (a->rank != 2 || b->rank != 2)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "A and B must be matrices (ranks %d, %d)",
		                a->rank, b->rank);
	if ((b->dtype != a->dtype && !float32_beside_double(ctx, a, b)) ||
	    (c && c->dtype != a->dtype))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "A, B and C must share one dtype");
	p->m = (size_t)a->dims[p->trans_a ? 1 : 0];
	ka = (size_t)a->dims[p->trans_a ? 0 : 1];
	kb = (size_t)b->dims[p->trans_b ? 1 : 0];
	p->n = (size_t)b->dims[p->trans_b ? 0 : 1];
	if (ka != kb)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "inner dims differ: %zu and %zu", ka, kb);
	p->k = ka;
	/* C broadcasts to [M, N] (the opset < 7 `broadcast` flag only
	 * allowed a subset of this). */
	if (c && (c->rank > 2 ||
	          (c->rank == 2 && ((c->dims[0] != 1 && (size_t)c->dims[0] != p->m) ||
	                            (c->dims[1] != 1 && (size_t)c->dims[1] != p->n))) ||
	          (c->rank == 1 && c->dims[0] != 1 && (size_t)c->dims[0] != p->n)))
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "C does not broadcast to %zu x %zu", p->m,
		                p->n);
	return BNF_OK;
}

int bnf_nn_gemm_shape(struct bnf_op_ctx *ctx)
{
	struct gemm_plan p;
	int64_t dims[2];
	int rc = gemm_plan(ctx, &p);

	if (rc != BNF_OK)
		return rc;
	dims[0] = (int64_t)p.m;
	dims[1] = (int64_t)p.n;
	return bnf_nn_new_output(ctx, 0, 0, 2, dims);
}

/* A copy of the matrix t transposed, or NULL with err set. */
static void *transposed(const struct bnf_tensor *t, struct bnf_error *err)
{
	size_t es = bnf_tensor_elem_size(t->dtype);
	size_t rows = (size_t)t->dims[0], cols = (size_t)t->dims[1], i, j;
	char *d = malloc(t->count * es + 1);

	if (!d) {
		bnf_fail(err, BNF_ERR_NOMEM, "out of memory transposing a matrix");
		return NULL;
	}
	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++)
			memcpy(d + (j * rows + i) * es, (const char *)t->data + (i * cols + j) * es,
			       es);
	return d;
}

/* B packed straight from where it lies: stored transposed (transB=1: the
 * tensor is n x k, row j holding column j of B), or float32 under a
 * float64 A (a promote_double run). The panels hold the values a
 * transposed or widened copy would give them (every float32 is exactly a
 * float64), so the sums are the same. */
struct gemm_b_src {
	struct bnf_gemm_bsrc base;
	const char *data; /* row-major, ld elements apart; read byte-wise (may be unaligned) */
	size_t ld;
};

/* Transposed: a block of GEMM_PACK_BT_P values (one cache line of
 * float32) of each of a panel's stored rows at a time, so that both the
 * rows read and the panel rows written stay in L1. */
#define GEMM_PACK_BT_P 16
#define GEMM_DEFINE_PACK_BT(name, real, stored)                                                    \
	static void name(const struct bnf_gemm_bsrc *src, size_t p0, size_t kc, size_t j0,         \
	                 size_t nc, size_t nr, void *dst)                                          \
	{                                                                                          \
		const struct gemm_b_src *bs = (const struct gemm_b_src *)src;                      \
		real *d = dst;                                                                     \
		stored v;                                                                          \
		size_t jb, jj, pb, p;                                                              \
		for (jb = 0; jb < nc; jb += nr) {                                                  \
			size_t w = nc - jb < nr ? nc - jb : nr;                                    \
			real *panel = d + jb * kc;                                                 \
			for (pb = 0; pb < kc; pb += GEMM_PACK_BT_P) {                              \
				size_t pe = kc - pb < GEMM_PACK_BT_P ? kc : pb + GEMM_PACK_BT_P;   \
				for (jj = 0; jj < w; jj++) {                                       \
					const char *row =                                          \
					    bs->data + ((j0 + jb + jj) * bs->ld + p0) * sizeof(v); \
					for (p = pb; p < pe; p++) {                                \
						memcpy(&v, row + p * sizeof(v), sizeof(v));        \
						panel[p * nr + jj] = (real)v;                      \
					}                                                          \
				}                                                                  \
			}                                                                          \
			for (jj = w; jj < nr; jj++)                                                \
				for (p = 0; p < kc; p++)                                           \
					panel[p * nr + jj] = 0;                                    \
		}                                                                                  \
	}

/* Not transposed (float32 under float64 only): rows of B in order. */
#define GEMM_DEFINE_PACK_BN(name, real, stored)                                                    \
	static void name(const struct bnf_gemm_bsrc *src, size_t p0, size_t kc, size_t j0,         \
	                 size_t nc, size_t nr, void *dst)                                          \
	{                                                                                          \
		const struct gemm_b_src *bs = (const struct gemm_b_src *)src;                      \
		real *d = dst;                                                                     \
		stored v;                                                                          \
		size_t j, p;                                                                       \
		for (p = 0; p < kc; p++) {                                                         \
			const char *row = bs->data + ((p0 + p) * bs->ld + j0) * sizeof(v);         \
			for (j = 0; j < (nc + nr - 1) / nr * nr; j++) {                            \
				if (j < nc)                                                        \
					memcpy(&v, row + j * sizeof(v), sizeof(v));                \
				d[(j / nr) * nr * kc + p * nr + j % nr] = j < nc ? (real)v : 0;    \
			}                                                                          \
		}                                                                                  \
	}

GEMM_DEFINE_PACK_BT(pack_bt_f32, float, float)
GEMM_DEFINE_PACK_BT(pack_bt_f64, double, double)
GEMM_DEFINE_PACK_BT(pack_bt_f64_from_f32, double, float)
GEMM_DEFINE_PACK_BN(pack_bn_f64_from_f32, double, float)

/* A one-row A (batch 1): B read once in place, stored transposed or as
 * float32 under a float64 A, the multiply's bits (bnf_gemv). */
static void one_row(const struct bnf_op_ctx *ctx, const struct gemm_plan *p, const void *a,
                    const struct bnf_tensor *b, void *y)
{
	struct bnf_gemv g;

	memset(&g, 0, sizeof(g));
	g.dbl = is_double(ctx->in[0]);
	g.b_float = g.dbl && !is_double(b);
	g.trans_b = p->trans_b != 0;
	g.n = p->n;
	g.k = p->k;
	g.ldb = p->trans_b ? p->k : p->n;
	g.a = a;
	g.b = b->data;
	g.y = y;
	bnf_gemv(ctx->threads, &g);
}

int bnf_nn_gemm_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *a = ctx->in[0], *b = ctx->in[1];
	const struct bnf_tensor *c = ctx->n_in > 2 ? ctx->in[2] : NULL;
	struct bnf_tensor *y = ctx->out[0];
	struct gemm_plan p;
	void *at = NULL;
	size_t i, j;
	int rc = gemm_plan(ctx, &p);

	if (rc != BNF_OK)
		goto out;
	if (p.trans_a && !(at = transposed(a, ctx->err)))
		goto nomem;
	if (p.m == 1 && (p.trans_b || b->dtype != a->dtype)) {
		one_row(ctx, &p, at ? at : a->data, b, y->data);
	} else if (p.trans_b || b->dtype != a->dtype) {
		struct gemm_b_src bs;
		int dbl = is_double(a), wide = b->dtype != a->dtype;
		bs.base.pack = !dbl        ? pack_bt_f32
		               : !wide     ? pack_bt_f64
		               : p.trans_b ? pack_bt_f64_from_f32
		                           : pack_bn_f64_from_f32;
		bs.data = b->data;
		bs.ld = p.trans_b ? p.k : p.n;
		if ((dbl ? bnf_dgemm_bsrc(ctx->threads, p.m, p.n, p.k, at ? at : a->data, p.k,
		                          &bs.base, y->data, p.n)
		         : bnf_sgemm_bsrc(ctx->threads, p.m, p.n, p.k, at ? at : a->data, p.k,
		                          &bs.base, y->data, p.n)) != 0) {
			rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory packing B");
			goto out;
		}
	} else {
		multiply(ctx, is_double(a), p.m, p.n, p.k, at ? at : a->data, p.k, b->data, p.n,
		         y->data);
	}
	if (p.alpha == 1.0f && !c)
		goto out;
	for (i = 0; i < p.m; i++) {
		for (j = 0; j < p.n; j++) {
			double v = p.alpha * bnf_nn_get(y, i * p.n + j);
			if (c) {
				/* Index C by its own shape, broadcasting dims of 1. */
				size_t ci = c->rank == 2
				                ? (c->dims[0] == 1 ? 0 : i) * (size_t)c->dims[1]
				                : 0;
				ci += c->rank >= 1 && c->dims[c->rank - 1] != 1 ? j : 0;
				v += p.beta * bnf_nn_get(c, ci);
			}
			bnf_nn_set(y, i * p.n + j, v);
		}
	}
	goto out;
nomem:
	rc = ctx->err->status;
out:
	free(at);
	return rc;
}

/* MatMul operands seen as batches of matrices: rank >= 2 after 1-D
 * promotion, with the broadcast batch dims of the result. */
struct matmul_plan {
	size_t m, n, k;
	int batch_rank;
	int64_t batch[BNF_MAX_RANK];
	int64_t a_batch[BNF_MAX_RANK]; /* batch dims of A, right-aligned, 1 if absent */
	int64_t b_batch[BNF_MAX_RANK];
	int y_rank;
	int64_t y_dims[BNF_MAX_RANK];
};

static int matmul_plan(const struct bnf_op_ctx *ctx, struct matmul_plan *p)
{
	const struct bnf_tensor *a, *b;
	int ra, rb, i;
	int rc = bnf_nn_check_inputs(ctx, 2, 2, 0x3);

	if (rc != BNF_OK)
		return rc;
	a = ctx->in[0];
	b = ctx->in[1];
	if (a->rank < 1 || b->rank < 1 || a->dtype != b->dtype)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "A and B need rank 1 or more and one dtype");
	memset(p, 0, sizeof(*p));
	p->m = a->rank == 1 ? 1 : (size_t)a->dims[a->rank - 2];
	p->k = (size_t)a->dims[a->rank - 1];
	p->n = b->rank == 1 ? 1 : (size_t)b->dims[b->rank - 1];
	if ((size_t)b->dims[b->rank == 1 ? 0 : b->rank - 2] != p->k)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "inner dims differ: %zu and %lld", p->k,
		                (long long)b->dims[b->rank == 1 ? 0 : b->rank - 2]);
	ra = a->rank > 2 ? a->rank - 2 : 0;
	rb = b->rank > 2 ? b->rank - 2 : 0;
	p->batch_rank = ra > rb ? ra : rb;
	for (i = 0; i < p->batch_rank; i++) {
		int ia = i - (p->batch_rank - ra), ib = i - (p->batch_rank - rb);
		p->a_batch[i] = ia >= 0 ? a->dims[ia] : 1;
		p->b_batch[i] = ib >= 0 ? b->dims[ib] : 1;
		if (p->a_batch[i] != p->b_batch[i] && p->a_batch[i] != 1 && p->b_batch[i] != 1)
			return bnf_fail(ctx->err, BNF_ERR_INPUT,
			                "batch dims %lld and %lld do not broadcast",
			                (long long)p->a_batch[i], (long long)p->b_batch[i]);
		p->batch[i] = p->a_batch[i] == 1 ? p->b_batch[i] : p->a_batch[i];
	}
	memcpy(p->y_dims, p->batch, (size_t)p->batch_rank * sizeof(p->batch[0]));
	p->y_rank = p->batch_rank;
	if (a->rank > 1)
		p->y_dims[p->y_rank++] = (int64_t)p->m;
	if (b->rank > 1)
		p->y_dims[p->y_rank++] = (int64_t)p->n;
	return BNF_OK;
}

int bnf_nn_matmul_shape(struct bnf_op_ctx *ctx)
{
	struct matmul_plan p;
	int rc = matmul_plan(ctx, &p);

	return rc ? rc : bnf_nn_new_output(ctx, 0, 0, p.y_rank, p.y_dims);
}

int bnf_nn_matmul_compute(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *a = ctx->in[0], *b = ctx->in[1];
	struct bnf_tensor *y = ctx->out[0];
	size_t es = bnf_tensor_elem_size(a->dtype), batches, t, a_off, b_off;
	int64_t idx[BNF_MAX_RANK] = {0};
	struct matmul_plan p;
	int i, b_shared = 1;
	int rc = matmul_plan(ctx, &p);

	if (rc != BNF_OK)
		return rc;
	for (i = 0; i < p.batch_rank; i++)
		b_shared = b_shared && p.b_batch[i] == 1;
	batches = bnf_nn_prod(p.batch, p.batch_rank);
	/* One B for every batch and A's batches all distinct: the batches of
	 * A stack into one tall matrix. */
	if (b_shared && bnf_nn_prod(p.a_batch, p.batch_rank) == batches) {
		multiply(ctx, is_double(a), batches * p.m, p.n, p.k, a->data, p.k, b->data, p.n,
		         y->data);
		return BNF_OK;
	}
	for (t = 0; t < batches; t++) {
		a_off = b_off = 0;
		for (i = 0; i < p.batch_rank; i++) {
			a_off =
			    a_off * (size_t)p.a_batch[i] + (size_t)(p.a_batch[i] == 1 ? 0 : idx[i]);
			b_off =
			    b_off * (size_t)p.b_batch[i] + (size_t)(p.b_batch[i] == 1 ? 0 : idx[i]);
		}
		multiply(ctx, is_double(a), p.m, p.n, p.k,
		         (const char *)a->data + a_off * p.m * p.k * es, p.k,
		         (const char *)b->data + b_off * p.k * p.n * es, p.n,
		         (char *)y->data + t * p.m * p.n * es);
		for (i = p.batch_rank - 1; i >= 0 && ++idx[i] == p.batch[i]; i--)
			idx[i] = 0;
	}
	return BNF_OK;
}
