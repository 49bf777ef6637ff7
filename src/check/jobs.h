/*
 * Evaluations as jobs that run side by side: the check runs the original
 * in float64 and in its own precision and the folded model together, and
 * the cores are shared out between them. Private to the check room.
 */
#ifndef BNF_CHECK_JOBS_H
#define BNF_CHECK_JOBS_H

#include <stddef.h>

#include "util/error.h"
#include "eval/tensor.h"
#include "check/inputs.h"
#include "onnx.pb-c.h"

struct bnf_external;

/* One evaluation: model on inputs (borrowed), in float64 when promote. */
struct bnf_check_job {
	const Onnx__ModelProto *model;
	const struct bnf_named_tensors *in;
	int promote;
	size_t max_bytes;
	const struct bnf_external *ext;
	int threads;              /* set by bnf_check_jobs_run */
	struct bnf_tensor **outs; /* the outputs, owned: bnf_check_outputs_free */
	struct bnf_error err;
	int rc;
};

void bnf_check_job_init(struct bnf_check_job *j, const Onnx__ModelProto *model,
                        const struct bnf_named_tensors *in, int promote, size_t max_bytes,
                        const struct bnf_external *ext);

/* Run n jobs (at most BNF_CHECK_JOBS_MAX), at most `threads` at once,
 * each taking the next job not yet started, in order (put the slowest
 * first); the threads are shared out between the jobs running at once
 * (the evaluator's results do not depend on how many it has). Returns the
 * first failure in job order, its message in err. */
#define BNF_CHECK_JOBS_MAX 6
int bnf_check_jobs_run(struct bnf_check_job *jobs, int n, int threads, struct bnf_error *err);

/* Free each job's outputs (n_out each); the jobs may be run again. */
void bnf_check_jobs_free(struct bnf_check_job *jobs, int n, size_t n_out);

/* Free an output array of n tensors; NULL is allowed. */
void bnf_check_outputs_free(struct bnf_tensor **outs, size_t n);

#endif
