/*
 * Splitting an op's independent pieces (planes, rows, runs of elements)
 * across threads. Each piece is computed exactly as one thread would
 * compute it, so results never depend on the thread count or the cut.
 */
#ifndef BNF_EVAL_PARALLEL_H
#define BNF_EVAL_PARALLEL_H

#include <stddef.h>

/* Below this many elements of work, threads cost more than they save. */
#define BNF_PARALLEL_MIN_WORK ((size_t)1 << 16)

/* Run fn(arg, lo, hi) over [0, n) cut into ranges, on up to `threads`
 * threads (the caller's among them), each range at least `grain` pieces
 * long where n allows. Each piece must be independent of the others.
 * Every range is run once, whether threads start or not. */
void bnf_parallel_for(int threads, size_t n, size_t grain,
                      void (*fn)(void *arg, size_t lo, size_t hi), void *arg);

/* The grain that gives each range about BNF_PARALLEL_MIN_WORK elements
 * when one piece holds `piece_size` of them (at least 1). */
size_t bnf_parallel_grain(size_t piece_size);

#endif
