/*
 * bnf_parallel_for: ranges of independent pieces handed to threads as they
 * come free (parallel.h). Where a range runs never changes what it
 * computes.
 */
#include <stdatomic.h>

#include "eval/parallel.h"
#include "util/thread.h"

/* Ranges per thread: a thread slowed by a busy core just takes fewer. */
#define PARALLEL_CHUNKS_PER_THREAD 4

struct parallel_queue {
	void (*fn)(void *arg, size_t lo, size_t hi);
	void *arg;
	size_t n, chunks;
	atomic_size_t next;
};

static void *parallel_worker(void *qv)
{
	struct parallel_queue *q = qv;
	size_t c;

	while ((c = atomic_fetch_add(&q->next, 1)) < q->chunks) {
		size_t lo = q->n * c / q->chunks, hi = q->n * (c + 1) / q->chunks;
		if (hi > lo)
			q->fn(q->arg, lo, hi);
	}
	return NULL;
}

size_t bnf_parallel_grain(size_t piece_size)
{
	size_t g = piece_size ? BNF_PARALLEL_MIN_WORK / piece_size : 1;

	return g ? g : 1;
}

void bnf_parallel_for(int threads, size_t n, size_t grain,
                      void (*fn)(void *arg, size_t lo, size_t hi), void *arg)
{
	struct parallel_queue q;
	size_t most = n / (grain ? grain : 1);

	if (n == 0)
		return;
	if (threads > BNF_MAX_THREADS)
		threads = BNF_MAX_THREADS;
	if (threads < 2 || most < 2) {
		fn(arg, 0, n);
		return;
	}
	q.fn = fn;
	q.arg = arg;
	q.n = n;
	q.chunks = (size_t)threads * PARALLEL_CHUNKS_PER_THREAD;
	if (q.chunks > most)
		q.chunks = most;
	if ((size_t)threads > q.chunks)
		threads = (int)q.chunks;
	atomic_init(&q.next, 0);
	bnf_thread_team(threads, parallel_worker, &q);
}
