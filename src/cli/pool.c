/*
 * The worker pool (see pool.h). Processes rather than threads: each model
 * gets its own memory (returned whole when it ends), its own signal
 * handlers (a SIGBUS on a file cut short names that file and ends only
 * that model), and its own copy of the library's process-wide state.
 */
#include "cli/pool.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli/report.h"
#include "cli/signals.h"
#include "util/thread.h"

/* A growing byte buffer. */
struct buffer {
	char *data;
	size_t len, cap;
};

struct slot {
	size_t job;
	pid_t pid; /* 0: the slot is free */
	int fd[2]; /* read ends: [0] standard error, [1] the result; -1 once closed */
	struct buffer text[2];
	double start;
};

static int buffer_read(struct buffer *b, int fd)
{
	ssize_t got;

	if (b->cap - b->len < 4096) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		char *p = realloc(b->data, cap);
		if (!p)
			return -1;
		b->data = p;
		b->cap = cap;
	}
	do
		got = read(fd, b->data + b->len, b->cap - b->len - 1);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return 0; /* end of the stream (or a broken one: the same to us) */
	b->len += (size_t)got;
	b->data[b->len] = '\0';
	return 1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The worker's side of a fork: its standard error and result stream go
 * to the pipes, and nothing of the other workers stays open. */
static void run_worker(const struct cli_pool *pool, struct slot *slots, struct slot *s,
                       const int err_pipe[2], const int out_pipe[2], size_t unfinished)
{
	int i, rc;

#ifdef __linux__
	/* A parent killed outright takes its workers (and their temporary
	 * files, which SIGTERM removes) with it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	for (i = 0; i < pool->at_once; i++) {
		close_fd(&slots[i].fd[0]);
		close_fd(&slots[i].fd[1]);
	}
	close(err_pipe[0]);
	close(out_pipe[0]);
	dup2(err_pipe[1], STDERR_FILENO);
	close(err_pipe[1]);
	rc = pool->work(pool->arg, s->job, unfinished, out_pipe[1]);
	close(out_pipe[1]);
	fflush(stdout);
	fflush(stderr);
	exit(rc);
}

/* Start job in slot s; returns 0, or -1 with errno when no worker could
 * be started. */
static int start(const struct cli_pool *pool, struct slot *slots, struct slot *s, size_t job,
                 size_t unfinished)
{
	int err_pipe[2], out_pipe[2];
	pid_t pid;

	memset(s, 0, sizeof(*s));
	s->job = job;
	s->fd[0] = s->fd[1] = -1;
	if (pipe(err_pipe) != 0)
		return -1;
	if (pipe(out_pipe) != 0) {
		close(err_pipe[0]);
		close(err_pipe[1]);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	s->start = cli_now_ms();
	pid = fork();
	if (pid == 0)
		run_worker(pool, slots, s, err_pipe, out_pipe, unfinished);
	close(err_pipe[1]);
	close(out_pipe[1]);
	if (pid < 0) {
		int saved = errno;
		close(err_pipe[0]);
		close(out_pipe[0]);
		errno = saved;
		return -1;
	}
	s->pid = pid;
	s->fd[0] = err_pipe[0];
	s->fd[1] = out_pipe[0];
	cli_signals_add_worker(pid);
	if (pool->started)
		pool->started(pool->arg, job);
	return 0;
}

/* Reap the worker of s (whose streams have ended) and report its job. */
static void finish(const struct cli_pool *pool, struct slot *s)
{
	struct cli_pool_result r;
	int status = 0;

	while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
		;
	cli_signals_remove_worker(s->pid);
	memset(&r, 0, sizeof(r));
	r.wait_status = status;
	r.err = s->text[0].data ? s->text[0].data : "";
	r.err_len = s->text[0].len;
	r.out = s->text[1].data ? s->text[1].data : "";
	r.out_len = s->text[1].len;
	r.ms = cli_now_ms() - s->start;
	pool->done(pool->arg, s->job, &r);
	free(s->text[0].data);
	free(s->text[1].data);
	memset(s, 0, sizeof(*s));
	s->fd[0] = s->fd[1] = -1;
}

/* A job whose worker never started ends at once, with the reason. */
static void not_started(const struct cli_pool *pool, size_t job)
{
	struct cli_pool_result r;

	memset(&r, 0, sizeof(r));
	r.wait_status = -1;
	r.start_errno = errno;
	r.err = r.out = "";
	pool->done(pool->arg, job, &r);
}

/* Wait for output from the running workers and take it in; returns the
 * number of fds polled, or -1 when poll failed. */
static int collect(const struct cli_pool *pool, struct slot *slots, struct pollfd *fds)
{
	int i, k, n = 0, ready;

	for (i = 0; i < pool->at_once; i++)
		for (k = 0; k < 2; k++)
			if (slots[i].pid && slots[i].fd[k] >= 0) {
				fds[n].fd = slots[i].fd[k];
				fds[n].events = POLLIN;
				fds[n].revents = 0;
				n++;
			}
	if (n == 0)
		return 0;
	ready = poll(fds, (nfds_t)n, pool->tick ? 250 : -1);
	if (ready < 0)
		return errno == EINTR ? n : -1;
	for (i = 0; i < pool->at_once && ready > 0; i++)
		for (k = 0; k < 2; k++) {
			struct slot *s = &slots[i];
			int j;
			if (!s->pid || s->fd[k] < 0)
				continue;
			for (j = 0; j < n && fds[j].fd != s->fd[k]; j++)
				;
			if (j == n || !fds[j].revents)
				continue;
			if (buffer_read(&s->text[k], s->fd[k]) <= 0)
				close_fd(&s->fd[k]);
		}
	return n;
}

int cli_pool_run(const struct cli_pool *pool)
{
	struct slot *slots = calloc((size_t)pool->at_once, sizeof(*slots));
	struct pollfd *fds = calloc((size_t)pool->at_once * 2, sizeof(*fds));
	size_t next = 0, ended = 0;
	int i, rc = 0;

	if (!slots || !fds) {
		free(slots);
		free(fds);
		return -1;
	}
	for (i = 0; i < pool->at_once; i++)
		slots[i].fd[0] = slots[i].fd[1] = -1;
	while (ended < pool->n && rc == 0) {
		for (i = 0; i < pool->at_once && next < pool->n; i++) {
			if (slots[i].pid)
				continue;
			if (start(pool, slots, &slots[i], pool->order[next], pool->n - ended) !=
			    0) {
				not_started(pool, pool->order[next]);
				ended++;
			}
			next++;
		}
		if (collect(pool, slots, fds) < 0)
			rc = -1;
		for (i = 0; i < pool->at_once; i++)
			if (slots[i].pid && slots[i].fd[0] < 0 && slots[i].fd[1] < 0) {
				finish(pool, &slots[i]);
				ended++;
			}
		if (pool->tick)
			pool->tick(pool->arg);
	}
	for (i = 0; i < pool->at_once; i++) {
		if (!slots[i].pid)
			continue; /* the parent failed: end the others */
		kill(slots[i].pid, SIGTERM);
		close_fd(&slots[i].fd[0]);
		close_fd(&slots[i].fd[1]);
		finish(pool, &slots[i]);
	}
	free(slots);
	free(fds);
	return rc;
}
