/*
 * Worker processes (pool.c): one forked process per job, up to a number at
 * once, each with its standard error and a result stream piped back to the
 * parent, which collects both and reaps the worker. A worker that crashes
 * or is killed ends its own job only.
 */
#ifndef BNF_CLI_POOL_H
#define BNF_CLI_POOL_H

#include <stddef.h>

/* What a finished worker left behind, borrowed for the done callback. */
struct cli_pool_result {
	int wait_status; /* as waitpid reports it; -1 when no worker started */
	int start_errno; /* why no worker started */
	const char *err; /* what it wrote to standard error */
	size_t err_len;
	const char *out; /* what it sent on its result stream */
	size_t out_len;
	double ms; /* from its start to its end, as the parent saw them */
};

struct cli_pool {
	size_t n;            /* jobs */
	const size_t *order; /* the order to start them in (n indices) */
	int at_once;         /* workers running together, 1..BNF_MAX_THREADS */
	/* In the worker process: do job i, started while `unfinished` jobs
	 * remained; send the result on fd. Returns the worker's exit code. */
	int (*work)(void *arg, size_t i, size_t unfinished, int fd);
	/* In the parent, as each worker starts; may be NULL. */
	void (*started)(void *arg, size_t i);
	/* In the parent, as each job ends (in the order they end). */
	void (*done)(void *arg, size_t i, const struct cli_pool_result *r);
	/* In the parent, every quarter of a second while workers run, and
	 * after each done; may be NULL. */
	void (*tick)(void *arg);
	void *arg;
};

/* Run every job. Returns 0, or -1 when the parent itself failed (out of
 * memory, poll failed): the jobs still running are then killed and
 * reaped, and the remaining ones never started. */
int cli_pool_run(const struct cli_pool *pool);

#endif
