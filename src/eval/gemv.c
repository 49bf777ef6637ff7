/*
 * The matrix-vector product behind a one-row multiply (batch-1 Gemm and
 * MatMul): B is read once where it lies, stored rows in order, with no
 * packing. Each output element is summed in exactly the matrix multiply's
 * order (gemm_order.h), so a one-row product gives the bits a many-row one
 * gives its rows, whatever the thread count.
 */
#include <pthread.h>
#include <string.h>

#include "eval/gemm_order.h"
#include "eval/op.h"
#include "util/thread.h"

/* The matrix multiply's targets, with the vectorizer off: left on, it
 * turns the transposed kernel's independent scalar chains into 256-bit
 * vectors, which the avx512f target cannot fuse (that needs AVX512VL),
 * and the sums would lose the fused rounding the multiply has. The
 * explicit vectors below need no vectorizer. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define GEMV_TARGETS                                                                               \
	__attribute__((target_clones("avx512f", "fma", "default"),                                 \
	               optimize("fp-contract=fast", "no-tree-vectorize")))
#else
#define GEMV_TARGETS GEMM_TARGETS
#endif

/* Stored rows of a transposed B summed at once: independent chains keep
 * the adders busy while each chain waits on its own sum. */
#define GEMV_T_ROWS 8
/* Columns of an untransposed B summed at once: four vectors of 64 bytes. */
#define GEMV_N_VECS    4
#define GEMV_VEC(real) real __attribute__((vector_size(64)))
/* Below this many multiply-adds threads cost more than they save. */
#define GEMV_THREAD_MIN_WORK ((size_t)1 << 20)

/* Element i of B's (or A's) bytes, which need not be aligned (a weight
 * borrowed from the model file). */
static inline float gemv_load_f32(const char *p, size_t i)
{
	float v;

	memcpy(&v, p + i * sizeof(v), sizeof(v));
	return v;
}

static inline double gemv_load_f64(const char *p, size_t i)
{
	double v;

	memcpy(&v, p + i * sizeof(v), sizeof(v));
	return v;
}

/* Element i of A, as real: float32 or float64 like y. */
#define gemv_load_a(real, a, i)                                                                    \
	(sizeof(real) == sizeof(float) ? (real)gemv_load_f32(a, i) : (real)gemv_load_f64(a, i))

/* y[j] = or += s, the way the multiply adds a block's sum to C. */
#define GEMV_STORE(y, s, first) ((y) = (first) ? (s) : (y) + (s))

#define GEMV_T_STEP(r, real, load) s##r += (real)load(row##r, p) * ap

/* Transposed B (n x k, row j is column j): rows j0 .. j1 - 1 of it, eight
 * at a time (a short last group repeats its first row and keeps only its
 * own sums). */
#define GEMV_DEFINE_T(name, real, load)                                                            \
	GEMV_TARGETS static void name(const struct bnf_gemv *g, size_t j0, size_t j1)              \
	{                                                                                          \
		const char *a = g->a; /* A too may be a weight (Conv) */                           \
		real *y = g->y;                                                                    \
		size_t es = sizeof(real) == sizeof(float) || g->b_float ? 4 : 8;                   \
		size_t j, pc, p, r, w;                                                             \
		for (j = j0; j < j1; j += w) {                                                     \
			const char *rows[GEMV_T_ROWS];                                             \
			w = j1 - j < GEMV_T_ROWS ? j1 - j : GEMV_T_ROWS;                           \
			for (r = 0; r < GEMV_T_ROWS; r++)                                          \
				rows[r] =                                                          \
				    (const char *)g->b + (j + (r < w ? r : 0)) * g->ldb * es;      \
			for (pc = 0; pc < g->k; pc += GEMM_KC) {                                   \
				size_t end = g->k - pc < GEMM_KC ? g->k : pc + GEMM_KC;            \
				const char *row0 = rows[0], *row1 = rows[1], *row2 = rows[2];      \
				const char *row3 = rows[3], *row4 = rows[4], *row5 = rows[5];      \
				const char *row6 = rows[6], *row7 = rows[7];                       \
				real s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0,       \
				     s7 = 0, s[GEMV_T_ROWS];                                       \
				int first = pc == 0 && !g->accumulate;                             \
				for (p = pc; p < end; p++) {                                       \
					real ap = gemv_load_a(real, a, p);                         \
					GEMV_T_STEP(0, real, load);                                \
					GEMV_T_STEP(1, real, load);                                \
					GEMV_T_STEP(2, real, load);                                \
					GEMV_T_STEP(3, real, load);                                \
					GEMV_T_STEP(4, real, load);                                \
					GEMV_T_STEP(5, real, load);                                \
					GEMV_T_STEP(6, real, load);                                \
					GEMV_T_STEP(7, real, load);                                \
				}                                                                  \
				s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;                        \
				s[4] = s4, s[5] = s5, s[6] = s6, s[7] = s7;                        \
				for (r = 0; r < w; r++)                                            \
					GEMV_STORE(y[j + r], s[r], first);                         \
			}                                                                          \
		}                                                                                  \
	}

/* Untransposed B (k x n): columns j0 .. j1 - 1, GEMV_N_VECS vectors of
 * columns at a time down each k block, then the last columns one by one
 * (the same chain per element either way). */
#define GEMV_DEFINE_N(name, real, stored, load)                                                    \
	GEMV_TARGETS static void name(const struct bnf_gemv *g, size_t j0, size_t j1)              \
	{                                                                                          \
		const char *a = g->a; /* A too may be a weight (Conv) */                           \
		real *y = g->y;                                                                    \
		const char *b = g->b;                                                              \
		const size_t lanes = 64 / sizeof(real), wide = GEMV_N_VECS * lanes;                \
		size_t j, pc, p, v, l;                                                             \
		for (pc = 0; pc < g->k; pc += GEMM_KC) {                                           \
			size_t end = g->k - pc < GEMM_KC ? g->k : pc + GEMM_KC;                    \
			int first = pc == 0 && !g->accumulate;                                     \
			for (j = j0; j < j1; j += wide) {                                          \
				size_t nc = j1 - j < wide ? j1 - j : wide;                         \
				GEMV_VEC(real) acc[GEMV_N_VECS], bv;                               \
				stored __attribute__((                                             \
				    vector_size(64 / sizeof(real) * sizeof(stored)))) sv;          \
				real s[GEMV_N_VECS * 64 / sizeof(real)];                           \
				if (nc < wide) {                                                   \
					for (l = 0; l < nc; l++) {                                 \
						real t = 0;                                        \
						for (p = pc; p < end; p++)                         \
							t += (real)load(b, p * g->ldb + j + l) *   \
							     gemv_load_a(real, a, p);              \
						GEMV_STORE(y[j + l], t, first);                    \
					}                                                          \
					continue;                                                  \
				}                                                                  \
				memset(acc, 0, sizeof(acc));                                       \
				for (p = pc; p < end; p++) {                                       \
					const char *row = b + (p * g->ldb + j) * sizeof(stored);   \
					for (v = 0; v < GEMV_N_VECS; v++) {                        \
						memcpy(&sv, row + v * sizeof(sv), sizeof(sv));     \
						bv = __builtin_convertvector(sv, GEMV_VEC(real));  \
						acc[v] += bv * gemv_load_a(real, a, p);            \
					}                                                          \
				}                                                                  \
				memcpy(s, acc, sizeof(s));                                         \
				for (l = 0; l < wide; l++)                                         \
					GEMV_STORE(y[j + l], s[l], first);                         \
			}                                                                          \
		}                                                                                  \
	}

GEMV_DEFINE_T(gemv_t_f32, float, gemv_load_f32)
GEMV_DEFINE_T(gemv_t_f64, double, gemv_load_f64)
GEMV_DEFINE_T(gemv_t_f64_from_f32, double, gemv_load_f32)
GEMV_DEFINE_N(gemv_n_f32, float, float, gemv_load_f32)
GEMV_DEFINE_N(gemv_n_f64, double, double, gemv_load_f64)
GEMV_DEFINE_N(gemv_n_f64_from_f32, double, float, gemv_load_f32)

typedef void (*gemv_fn)(const struct bnf_gemv *g, size_t j0, size_t j1);

static gemv_fn gemv_pick(const struct bnf_gemv *g)
{
	if (!g->dbl)
		return g->trans_b ? gemv_t_f32 : gemv_n_f32;
	if (g->b_float)
		return g->trans_b ? gemv_t_f64_from_f32 : gemv_n_f64_from_f32;
	return g->trans_b ? gemv_t_f64 : gemv_n_f64;
}

/* One thread's columns of y. */
struct gemv_job {
	const struct bnf_gemv *g;
	gemv_fn fn;
	size_t j0, j1;
};

static void *gemv_worker(void *arg)
{
	struct gemv_job *job = arg;

	job->fn(job->g, job->j0, job->j1);
	return NULL;
}

void bnf_gemv(int threads, const struct bnf_gemv *g)
{
	struct gemv_job jobs[BNF_MAX_THREADS];
	pthread_t tid[BNF_MAX_THREADS];
	int started[BNF_MAX_THREADS];
	size_t unit = 64, units = (g->n + unit - 1) / unit;
	int t;

	if (g->n == 0)
		return;
	if (g->k == 0) {
		/* Without k, y is 0 (or unchanged when accumulating). */
		if (!g->accumulate)
			memset(g->y, 0, g->n * (g->dbl ? sizeof(double) : sizeof(float)));
		return;
	}
	if (threads < 1 || g->n * g->k < GEMV_THREAD_MIN_WORK)
		threads = 1;
	if (threads > BNF_MAX_THREADS)
		threads = BNF_MAX_THREADS;
	if ((size_t)threads > units)
		threads = (int)units;
	/* Each column's sum is its own: the cut does not change the result. */
	for (t = 0; t < threads; t++) {
		jobs[t].g = g;
		jobs[t].fn = gemv_pick(g);
		jobs[t].j0 = units * (size_t)t / (size_t)threads * unit;
		jobs[t].j1 = units * (size_t)(t + 1) / (size_t)threads * unit;
		if (jobs[t].j1 > g->n)
			jobs[t].j1 = g->n;
	}
	for (t = 1; t < threads; t++)
		started[t] = bnf_thread_start(&tid[t], gemv_worker, &jobs[t]) == 0;
	gemv_worker(&jobs[0]);
	for (t = 1; t < threads; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else
			gemv_worker(&jobs[t]);
	}
}
