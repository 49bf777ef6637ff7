/*
 * Evaluations run side by side (jobs.h): a few worker threads take the
 * jobs in order from a shared counter, so a slow float64 run on one core
 * overlaps two float32 runs on the other.
 */
#include "check/jobs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "util/thread.h"

void bnf_check_job_init(struct bnf_check_job *j, const Onnx__ModelProto *model,
                        const struct bnf_named_tensors *in, int promote, size_t max_bytes,
                        const struct bnf_external *ext)
{
	memset(j, 0, sizeof(*j));
	j->model = model;
	j->in = in;
	j->promote = promote;
	j->max_bytes = max_bytes;
	j->ext = ext;
	j->threads = 1;
}

static void run_one(struct bnf_check_job *j)
{
	struct bnf_eval_options eo;

	memset(&eo, 0, sizeof(eo));
	eo.threads = j->threads > 0 ? j->threads : 1;
	eo.promote_double = j->promote;
	eo.max_bytes = j->max_bytes;
	eo.ext = j->ext;
	j->rc = bnf_eval_run(j->model, &eo, j->in->n, (const char *const *)j->in->names,
	                     (struct bnf_tensor *const *)j->in->tensors, &j->outs, &j->err);
}

struct queue {
	struct bnf_check_job *jobs;
	int n, next;
	pthread_mutex_t lock;
};

static void *worker(void *arg)
{
	struct queue *q = arg;

	for (;;) {
		int i;
		pthread_mutex_lock(&q->lock);
		i = q->next < q->n ? q->next++ : -1;
		pthread_mutex_unlock(&q->lock);
		if (i < 0)
			return NULL;
		run_one(&q->jobs[i]);
	}
}

int bnf_check_jobs_run(struct bnf_check_job *jobs, int n, int threads, struct bnf_error *err)
{
	int conc, i;
	struct queue q;

	if (n > BNF_CHECK_JOBS_MAX)
		return bnf_fail(err, BNF_ERR_INPUT, "too many evaluations at once");
	if (threads < 1)
		threads = 1;
	conc = threads < n ? threads : n;
	for (i = 0; i < n; i++)
		jobs[i].threads = threads / conc;
	jobs[0].threads += threads % conc; /* the first job is the slowest */
	q.jobs = jobs;
	q.n = n;
	q.next = 0;
	pthread_mutex_init(&q.lock, NULL);
	bnf_thread_team(conc, worker, &q);
	pthread_mutex_destroy(&q.lock);
	for (i = 0; i < n; i++)
		if (jobs[i].rc != BNF_OK) {
			if (err)
				*err = jobs[i].err;
			return jobs[i].rc;
		}
	return BNF_OK;
}

void bnf_check_outputs_free(struct bnf_tensor **outs, size_t n)
{
	size_t i;

	if (!outs)
		return;
	for (i = 0; i < n; i++)
		bnf_tensor_free(outs[i]);
	free(outs);
}

void bnf_check_jobs_free(struct bnf_check_job *jobs, int n, size_t n_out)
{
	int i;

	for (i = 0; i < n; i++) {
		bnf_check_outputs_free(jobs[i].outs, n_out);
		jobs[i].outs = NULL;
	}
}
