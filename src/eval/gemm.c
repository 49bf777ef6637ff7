/*
 * The shared matrix multiply behind Conv, ConvTranspose, Gemm and MatMul.
 * Blocked in the usual way (panels of A and B packed so a register-blocked
 * micro-kernel streams them from cache) and split across threads by blocks
 * of C only, handed to threads as they come free: every element of C is
 * summed in the same order, k block after k block, whatever the thread
 * count or the cut, so results are bit-reproducible.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "eval/gemm_order.h"
#include "eval/op.h"
#include "util/thread.h"

/* Micro-tile: MR rows of A by two vectors of B. A vector is 64 bytes (16
 * floats or 8 doubles), one AVX-512 register; narrower targets split it.
 * The kernel is compiled for several targets and picked at load time. No
 * target reorders the sums; targets with FMA fuse each multiply-add (one
 * rounding instead of two), so results are identical on every FMA CPU and
 * on every CPU without, whatever the thread count, but differ between the
 * two kinds. */
#define GEMM_MR        6
#define GEMM_VEC_BYTES 64
#define GEMM_MC        240  /* rows of A swept per packed B panel (stay in L2) */
#define GEMM_NC        3072 /* columns of B packed at once (B from a producer) */
/* A stored B packs with plain copies, so its packed block is worth
 * keeping in L2 (half of it) between the packing and the multiply: on
 * 64-row products a 3 MB block went to L3 and back (a fifth slower). A
 * producer's packing (im2col) pays a setup per row per block, so it
 * keeps the larger block. */
#define GEMM_NC_STORED_BYTES ((size_t)512 << 10)

/* Below this many multiply-adds threads cost more than they save. */
#define GEMM_THREAD_MIN_WORK ((size_t)1 << 18)
/* Work is cut into up to this many chunks per thread, none smaller than
 * GEMM_CHUNK_MIN_WORK multiply-adds. A chunk's place never changes how its
 * elements are summed, so the cut does not change the result. */
#define GEMM_CHUNKS_PER_THREAD 4
#define GEMM_CHUNK_MIN_WORK    ((size_t)1 << 17)
#define GEMM_MAX_CHUNKS        (BNF_MAX_THREADS * GEMM_CHUNKS_PER_THREAD)

/* A vector of `real` filling GEMM_VEC_BYTES (GCC / Clang vector extension). */
#define GEMM_VEC(real) real __attribute__((vector_size(GEMM_VEC_BYTES)))

/* Everything that depends on the element type, so one driver serves both. */
struct gemm_kind {
	size_t elem; /* bytes per element */
	size_t nr;   /* columns of a micro-tile: two vectors */
	void (*pack_b)(const void *b, size_t ldb, size_t kc, size_t nc, void *dst);
	/* c (mv x nv valid of MR x NR) = or += A rows x packed B panel */
	void (*kernel)(size_t kc, const void *a, size_t lda, const void *bp, void *c, size_t ldc,
	               size_t mv, size_t nv, int add);
	void (*plain)(size_t m, size_t n, size_t k, const void *a, size_t lda, const void *b,
	              size_t ldb, void *c, size_t ldc, int accumulate);
};

/* Pack kc x nc of B into panels of NR columns, k-major, zero-padding the
 * last panel. Rows of B are read in order, which streams from memory. */
#define GEMM_DEFINE_PACK_B(name, real, nr)                                                         \
	static void name(const void *src, size_t ldb, size_t kc, size_t nc, void *dst)             \
	{                                                                                          \
		const real *b = src;                                                               \
		real *d = dst;                                                                     \
		size_t jr, p, j;                                                                   \
		for (p = 0; p < kc; p++) {                                                         \
			for (jr = 0; jr < nc; jr += (nr)) {                                        \
				size_t w = nc - jr < (nr) ? nc - jr : (nr);                        \
				real *panel = d + jr * kc + p * (nr);                              \
				if (w == (nr)) /* a constant size: vector moves, not rep movs */   \
					memcpy(panel, b + p * ldb + jr, (nr) * sizeof(real));      \
				else                                                               \
					memcpy(panel, b + p * ldb + jr, w * sizeof(real));         \
				for (j = w; j < (nr); j++)                                         \
					panel[j] = 0;                                              \
			}                                                                          \
		}                                                                                  \
	}

/* One row of the micro-tile: two vector accumulators. A's element is read
 * byte-wise: A may be a weight lying unaligned in the model file. */
#define GEMM_ROW_UPDATE(r, real)                                                                   \
	do {                                                                                       \
		real ar;                                                                           \
		memcpy(&ar, a##r + p * sizeof(real), sizeof(ar));                                  \
		acc[r][0] += b0 * ar;                                                              \
		acc[r][1] += b1 * ar;                                                              \
	} while (0)

/* The micro-kernel: MR rows of A read in place (lda apart; each row is
 * read in order) times a packed B panel. acc[][] has constant indexes
 * only, so the compiler keeps all 2 * MR vectors in registers. Full tiles
 * are added to C directly; edge tiles go through a small buffer. */
#define GEMM_DEFINE_KERNEL(name, real, nr)                                                         \
	GEMM_TARGETS static void name(size_t kc, const void *av, size_t lda, const void *bpv,      \
	                              void *cv, size_t ldc, size_t mv, size_t nv, int add)         \
	{                                                                                          \
		const size_t ls = lda * sizeof(real);                                              \
		const char *a0 = av, *a1 = a0 + ls, *a2 = a1 + ls, *a3 = a2 + ls;                  \
		const char *a4 = a3 + ls, *a5 = a4 + ls;                                           \
		const real *bp = bpv;                                                              \
		real *c = cv;                                                                      \
		GEMM_VEC(real) acc[GEMM_MR][2], b0, b1, t, z = {0};                                \
		real tile[GEMM_MR][(nr)];                                                          \
		size_t p, i, j;                                                                    \
		/* Not memset: GCC makes that a rep stos to the stack on every call. */            \
		acc[0][0] = acc[0][1] = acc[1][0] = acc[1][1] = acc[2][0] = acc[2][1] = z;         \
		acc[3][0] = acc[3][1] = acc[4][0] = acc[4][1] = acc[5][0] = acc[5][1] = z;         \
		for (p = 0; p < kc; p++, bp += (nr)) {                                             \
			memcpy(&b0, bp, sizeof(b0));                                               \
			memcpy(&b1, bp + (nr) / 2, sizeof(b1));                                    \
			GEMM_ROW_UPDATE(0, real);                                                  \
			GEMM_ROW_UPDATE(1, real);                                                  \
			GEMM_ROW_UPDATE(2, real);                                                  \
			GEMM_ROW_UPDATE(3, real);                                                  \
			GEMM_ROW_UPDATE(4, real);                                                  \
			GEMM_ROW_UPDATE(5, real);                                                  \
		}                                                                                  \
		if (mv == GEMM_MR && nv == (nr)) {                                                 \
			for (i = 0; i < GEMM_MR; i++)                                              \
				for (j = 0; j < 2; j++) {                                          \
					real *cp = c + i * ldc + j * ((nr) / 2);                   \
					memcpy(&t, cp, sizeof(t));                                 \
					t = add ? t + acc[i][j] : acc[i][j];                       \
					memcpy(cp, &t, sizeof(t));                                 \
				}                                                                  \
			return;                                                                    \
		}                                                                                  \
		memcpy(tile, acc, sizeof(tile));                                                   \
		for (i = 0; i < mv; i++)                                                           \
			for (j = 0; j < nv; j++)                                                   \
				c[i * ldc + j] = add ? c[i * ldc + j] + tile[i][j] : tile[i][j];   \
	}

/* The fallback when the packing buffers cannot be allocated: plain loops
 * that add in exactly the kernel's order (a fresh sum per k block, then
 * added to C) and fuse where it fuses, so the result does not depend on
 * which path ran. */
#define GEMM_DEFINE_PLAIN(name, real)                                                              \
	GEMM_TARGETS static void name(size_t m, size_t n, size_t k, const void *av, size_t lda,    \
	                              const void *bv, size_t ldb, void *cv, size_t ldc,            \
	                              int accumulate)                                              \
	{                                                                                          \
		const char *a = av, *b = bv;                                                       \
		real *c = cv, av_, bv_;                                                            \
		size_t i, j, pc, p;                                                                \
		for (i = 0; i < m; i++)                                                            \
			for (j = 0; j < n; j++)                                                    \
				for (pc = 0; pc < k; pc += GEMM_KC) {                              \
					size_t end = k - pc < GEMM_KC ? k : pc + GEMM_KC;          \
					real s = 0;                                                \
					for (p = pc; p < end; p++) {                               \
						memcpy(&bv_, b + (p * ldb + j) * sizeof(real),     \
						       sizeof(bv_));                               \
						memcpy(&av_, a + (i * lda + p) * sizeof(real),     \
						       sizeof(av_));                               \
						s += bv_ * av_;                                    \
					}                                                          \
					c[i * ldc + j] =                                           \
					    pc > 0 || accumulate ? c[i * ldc + j] + s : s;         \
				}                                                                  \
	}

#define GEMM_NR_F32 (2 * GEMM_VEC_BYTES / sizeof(float))
#define GEMM_NR_F64 (2 * GEMM_VEC_BYTES / sizeof(double))

GEMM_DEFINE_PACK_B(pack_b_f32, float, GEMM_NR_F32)
GEMM_DEFINE_PACK_B(pack_b_f64, double, GEMM_NR_F64)
GEMM_DEFINE_KERNEL(kernel_f32, float, GEMM_NR_F32)
GEMM_DEFINE_KERNEL(kernel_f64, double, GEMM_NR_F64)
GEMM_DEFINE_PLAIN(plain_f32, float)
GEMM_DEFINE_PLAIN(plain_f64, double)

_Static_assert(GEMM_MR == 6, "the kernel body updates exactly six rows");
_Static_assert(GEMM_MC % GEMM_MR == 0, "A blocks hold whole micro-panels");

static const struct gemm_kind gemm_f32 = {sizeof(float), GEMM_NR_F32, pack_b_f32, kernel_f32,
                                          plain_f32};
static const struct gemm_kind gemm_f64 = {sizeof(double), GEMM_NR_F64, pack_b_f64, kernel_f64,
                                          plain_f64};

/* One thread's share: a block of rows and columns of C. */
struct gemm_job {
	const struct gemm_kind *kind;
	size_t m, n, k;
	const char *a, *b;
	const struct bnf_gemm_bsrc *bsrc; /* B's producer, instead of b */
	size_t col0;                      /* the job's first column of B */
	char *c;
	size_t lda, ldb, ldc;
	int accumulate;
	int a_float; /* A is float32 under a float64 multiply: widened as read */
	int failed;  /* no packing buffers, with bsrc or a_float */
};

static size_t round_up(size_t x, size_t to)
{
	return (x + to - 1) / to * to;
}

/* Rows i0 .. i1 - 1 of A, columns pc .. pc + kc - 1, into dst kc apart:
 * copied, or widened when A is float32 under a float64 multiply (every
 * float32 is exactly a float64, so the sums do not change). */
static void copy_a_rows(const struct gemm_job *job, size_t i0, size_t i1, size_t pc, size_t kc,
                        char *dst)
{
	size_t es = job->kind->elem, i, p;
	float f;

	for (i = i0; i < i1; i++) {
		char *row = dst + (i - i0) * kc * es;
		if (!job->a_float) {
			memcpy(row, job->a + (i * job->lda + pc) * es, kc * es);
			continue;
		}
		for (p = 0; p < kc; p++) {
			memcpy(&f, job->a + (i * job->lda + pc + p) * sizeof(f), sizeof(f));
			((double *)(void *)row)[p] = f;
		}
	}
}

/* The packing buffers of one job, and where its A rows are read from. */
struct gemm_bufs {
	char *edge; /* the last rows of A (fewer than MR), zero-padded */
	char *pb;   /* the packed B panel */
	char *ab;   /* a float32 A's block widened (a_float only) */
};

/* Rows ic .. ic + mc - 1 of C, columns jc .. jc + nc - 1, for the k block
 * pc .. pc + kc - 1 (B packed in bf->pb). */
static void gemm_rows(const struct gemm_job *job, const struct gemm_bufs *bf, size_t ic, size_t mc,
                      size_t jc, size_t nc, size_t pc, size_t kc)
{
	const struct gemm_kind *kd = job->kind;
	size_t es = kd->elem, jr, ir;
	int add = pc > 0 || job->accumulate;

	for (jr = 0; jr < nc; jr += kd->nr) {
		size_t nv = nc - jr < kd->nr ? nc - jr : kd->nr;
		for (ir = ic; ir < ic + mc; ir += GEMM_MR) {
			size_t mv = job->m - ir < GEMM_MR ? job->m - ir : GEMM_MR, lda = kc;
			const char *a = bf->edge;
			if (mv == GEMM_MR && bf->ab) {
				a = bf->ab + (ir - ic) * kc * es;
			} else if (mv == GEMM_MR) {
				a = job->a + (ir * job->lda + pc) * es;
				lda = job->lda;
			}
			kd->kernel(kc, a, lda, bf->pb + jr * kc * es,
			           job->c + (ir * job->ldc + jc + jr) * es, job->ldc, mv, nv, add);
		}
	}
}

/* Columns of B packed at once: a whole number of panels. The cut of the
 * columns never changes how an element is summed. */
static size_t gemm_nc(const struct gemm_job *job)
{
	size_t nr = job->kind->nr, nc;

	if (job->bsrc)
		return GEMM_NC;
	nc = GEMM_NC_STORED_BYTES / (GEMM_KC * job->kind->elem) / nr * nr;
	return nc ? nc : nr;
}

/* The sequential blocked multiply over one job. */
static void gemm_block(struct gemm_job *job)
{
	const struct gemm_kind *kd = job->kind;
	size_t es = kd->elem;
	size_t nc_blk = gemm_nc(job);
	size_t nc_max = job->n < nc_blk ? round_up(job->n, kd->nr) : nc_blk;
	size_t m_full = job->m - job->m % GEMM_MR; /* rows in whole micro-panels */
	struct gemm_bufs bf;
	size_t jc, pc, ic;

	bf.edge = calloc(GEMM_MR * GEMM_KC, es);
	bf.pb = malloc(nc_max * GEMM_KC * es);
	bf.ab = job->a_float ? malloc(GEMM_MC * GEMM_KC * es) : NULL;
	if (!bf.edge || !bf.pb || (job->a_float && !bf.ab)) {
		if (job->bsrc || job->a_float)
			job->failed = 1; /* nothing to read B or A from without a buffer */
		else
			kd->plain(job->m, job->n, job->k, job->a, job->lda, job->b, job->ldb,
			          job->c, job->ldc, job->accumulate);
		goto out;
	}
	for (jc = 0; jc < job->n; jc += nc_blk) {
		size_t nc = job->n - jc < nc_blk ? job->n - jc : nc_blk;
		for (pc = 0; pc < job->k; pc += GEMM_KC) {
			size_t kc = job->k - pc < GEMM_KC ? job->k - pc : GEMM_KC;
			if (job->bsrc)
				job->bsrc->pack(job->bsrc, pc, kc, job->col0 + jc, nc, kd->nr,
				                bf.pb);
			else
				kd->pack_b(job->b + (pc * job->ldb + jc) * es, job->ldb, kc, nc,
				           bf.pb);
			copy_a_rows(job, m_full, job->m, pc, kc, bf.edge);
			for (ic = 0; ic < job->m; ic += GEMM_MC) {
				size_t mc = job->m - ic < GEMM_MC ? job->m - ic : GEMM_MC;
				if (bf.ab)
					copy_a_rows(job, ic, ic + mc < m_full ? ic + mc : m_full,
					            pc, kc, bf.ab);
				gemm_rows(job, &bf, ic, mc, jc, nc, pc, kc);
			}
		}
	}
out:
	free(bf.edge);
	free(bf.pb);
	free(bf.ab);
}

/* Without k, C is 0 (or unchanged when accumulating). */
static void gemm_empty_k(const struct gemm_kind *kd, size_t m, size_t n, char *c, size_t ldc,
                         int accumulate)
{
	size_t i;

	for (i = 0; !accumulate && i < m; i++)
		memset(c + i * ldc * kd->elem, 0, n * kd->elem);
}

/* The chunks of C of one multiply, handed out one at a time: a thread
 * slowed by a busy core just takes fewer of them. */
struct gemm_queue {
	struct gemm_job *jobs;
	size_t n;
	atomic_size_t next;
};

static void *gemm_worker(void *arg)
{
	struct gemm_queue *q = arg;
	size_t i;

	while ((i = atomic_fetch_add(&q->next, 1)) < q->n)
		gemm_block(&q->jobs[i]);
	return NULL;
}

/* One row of A: B is read once where it lies, in the same sum order. */
static int gemm_one_row(const struct gemm_kind *kd, int threads, size_t n, size_t k, const void *a,
                        const void *b, size_t ldb, void *c, int accumulate)
{
	struct bnf_gemv g;

	memset(&g, 0, sizeof(g));
	g.dbl = kd == &gemm_f64;
	g.accumulate = accumulate;
	g.n = n;
	g.k = k;
	g.ldb = ldb;
	g.a = a;
	g.b = b;
	g.y = c;
	bnf_gemv(threads, &g);
	return 0;
}

/* The multiply C = A x B (+ C) described by `op` (kind, sizes, operands;
 * the cut fields are set here), split into chunks across threads. */
static int gemm_run(int threads, const struct gemm_job *op)
{
	const struct gemm_kind *kd = op->kind;
	struct gemm_job jobs[GEMM_MAX_CHUNKS];
	struct gemm_queue q;
	size_t m = op->m, n = op->n, k = op->k, es = kd->elem, parts, unit, len, tiles, i;
	size_t a_es = op->a_float ? sizeof(float) : es;
	int by_cols;

	if (m == 0 || n == 0)
		return 0;
	if (m == 1 && !op->bsrc && !op->a_float)
		return gemm_one_row(kd, threads, n, k, op->a, op->b, op->ldb, op->c,
		                    op->accumulate);
	if (k == 0) {
		gemm_empty_k(kd, m, n, op->c, op->ldc, op->accumulate);
		return 0;
	}
	if (threads < 1 || m * n * k < GEMM_THREAD_MIN_WORK)
		threads = 1;
	if (threads > BNF_MAX_THREADS)
		threads = BNF_MAX_THREADS;
	/* Split the longer side of C in whole micro-tiles, into a few chunks
	 * per thread of at least GEMM_CHUNK_MIN_WORK multiply-adds. */
	by_cols = n / kd->nr >= m / GEMM_MR;
	unit = by_cols ? kd->nr : GEMM_MR;
	len = by_cols ? n : m;
	tiles = (len + unit - 1) / unit;
	parts = threads == 1 ? 1 : (size_t)threads * GEMM_CHUNKS_PER_THREAD;
	if (parts > m * n * k / GEMM_CHUNK_MIN_WORK)
		parts = m * n * k / GEMM_CHUNK_MIN_WORK;
	if (parts > tiles)
		parts = tiles;
	if (parts < 1)
		parts = 1;
	for (i = 0; i < parts; i++) {
		size_t lo = tiles * i / parts * unit, hi = tiles * (i + 1) / parts * unit;
		struct gemm_job *j = &jobs[i];
		if (hi > len)
			hi = len;
		*j = *op;
		j->m = by_cols ? m : hi - lo;
		j->n = by_cols ? hi - lo : n;
		j->a = op->a + (by_cols ? 0 : lo * op->lda) * a_es;
		j->b = op->bsrc ? NULL : op->b + (by_cols ? lo : 0) * es;
		j->col0 = by_cols ? lo : 0;
		j->failed = 0;
		j->c = op->c + (by_cols ? lo : lo * op->ldc) * es;
	}
	q.jobs = jobs;
	q.n = parts;
	atomic_init(&q.next, 0);
	if ((size_t)threads > parts)
		threads = (int)parts;
	bnf_thread_team(threads, gemm_worker, &q);
	for (i = 0; i < parts; i++)
		if (jobs[i].failed)
			return -1;
	return 0;
}

/* The description of C[m x n] = A[m x k] x B (+ C), B stored or produced. */
static struct gemm_job gemm_op(const struct gemm_kind *kd, size_t m, size_t n, size_t k,
                               const void *a, size_t lda, const void *b, size_t ldb,
                               const struct bnf_gemm_bsrc *bsrc, void *c, size_t ldc)
{
	struct gemm_job op;

	memset(&op, 0, sizeof(op));
	op.kind = kd;
	op.m = m;
	op.n = n;
	op.k = k;
	op.a = a;
	op.lda = lda;
	op.b = b;
	op.ldb = ldb;
	op.bsrc = bsrc;
	op.c = c;
	op.ldc = ldc;
	return op;
}

void bnf_sgemm(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
               const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
	struct gemm_job op = gemm_op(&gemm_f32, m, n, k, a, lda, b, ldb, NULL, c, ldc);

	op.accumulate = accumulate;
	gemm_run(threads, &op);
}

int bnf_sgemm_bsrc(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
                   const struct bnf_gemm_bsrc *b, float *c, size_t ldc)
{
	struct gemm_job op = gemm_op(&gemm_f32, m, n, k, a, lda, NULL, 0, b, c, ldc);

	return gemm_run(threads, &op);
}

int bnf_dgemm_bsrc(int threads, size_t m, size_t n, size_t k, const double *a, size_t lda,
                   const struct bnf_gemm_bsrc *b, double *c, size_t ldc)
{
	struct gemm_job op = gemm_op(&gemm_f64, m, n, k, a, lda, NULL, 0, b, c, ldc);

	return gemm_run(threads, &op);
}

void bnf_dgemm(int threads, size_t m, size_t n, size_t k, const double *a, size_t lda,
               const double *b, size_t ldb, double *c, size_t ldc, int accumulate)
{
	struct gemm_job op = gemm_op(&gemm_f64, m, n, k, a, lda, b, ldb, NULL, c, ldc);

	op.accumulate = accumulate;
	gemm_run(threads, &op);
}

int bnf_dgemm_fa(int threads, size_t m, size_t n, size_t k, const float *a, size_t lda,
                 const double *b, size_t ldb, const struct bnf_gemm_bsrc *bsrc, double *c,
                 size_t ldc)
{
	struct gemm_job op = gemm_op(&gemm_f64, m, n, k, a, lda, b, ldb, bsrc, c, ldc);

	op.a_float = 1;
	return gemm_run(threads, &op);
}
