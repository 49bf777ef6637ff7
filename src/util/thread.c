/*
 * Worker threads started with the handled asynchronous signals blocked
 * (see thread.h).
 */
#include "util/thread.h"

#include <signal.h>

int bnf_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	int rc;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void bnf_thread_team(int threads, void *(*fn)(void *), void *arg)
{
	pthread_t tid[BNF_MAX_THREADS];
	int started[BNF_MAX_THREADS], t;

	if (threads > BNF_MAX_THREADS)
		threads = BNF_MAX_THREADS;
	for (t = 1; t < threads; t++)
		started[t] = bnf_thread_start(&tid[t], fn, arg) == 0;
	fn(arg);
	for (t = 1; t < threads; t++)
		if (started[t])
			pthread_join(tid[t], NULL);
}
