/*
 * The pipeline as one library call: read -> (train mode to eval) -> fold ->
 * check -> write, and the lint of the deploy gate. It never prints: what
 * happened, with every figure the command line reports, is in the result.
 */
#ifndef BNF_CHECK_RUN_H
#define BNF_CHECK_RUN_H

#include <stddef.h>

#include "check/lint.h"
#include "check/verify.h"
#include "fold/fold.h"
#include "fold/trainmode.h"
#include "io/external.h"
#include "io/model.h"
#include "util/error.h"

enum bnf_run_phase {
	BNF_RUN_PHASE_READ = 0,
	BNF_RUN_PHASE_TRAIN_MODE,
	BNF_RUN_PHASE_FOLD,
	BNF_RUN_PHASE_CHECK,
	BNF_RUN_PHASE_LINT,
	BNF_RUN_PHASE_WRITE,
	BNF_RUN_PHASE_COUNT
};

/* How a run ended, which the command line maps to its exit code. */
enum bnf_run_verdict {
	BNF_RUN_VERDICT_OK = 0,       /* done (lint findings are the caller's to weigh) */
	BNF_RUN_VERDICT_CHECK_FAILED, /* the folded model is not equivalent */
	BNF_RUN_VERDICT_UNUSABLE,     /* unreadable or malformed input, unwritable output */
};

struct bnf_run_options {
	const char *input;             /* a path, or "-" for standard input */
	const char *output;            /* a path, or "-"; NULL writes nothing (dry run) */
	int no_verify;                 /* skip the equivalence check */
	int force;                     /* write even when the check fails */
	int lower_bn;                  /* rewrite what cannot fold as Mul + Add */
	int freeze_initializer_inputs; /* initializers listed as inputs are constants */
	int train_eval;                /* convert training-mode nodes to eval mode first */
	int lint;                      /* lint the result (bnf_run_fold) */
	int hash;                      /* fill the SHA-256 digests of the result */
	struct bnf_external *ext;
	struct bnf_write_plan plan;
	struct bnf_verify_options verify;
	size_t check_memory; /* budget of the whole-graph check (0: none) */
	/* Called as each phase begins (begin=1) and ends (0), for progress
	 * and timing; may be NULL. */
	void (*on_phase)(void *arg, enum bnf_run_phase phase, int begin);
	void *arg;
};

/* What a run learnt. Each part is filled only when its phase ran: *_ran
 * says so. Owned by the result; bnf_run_result_free releases it all. */
struct bnf_run_result {
	enum bnf_run_verdict verdict;
	struct bnf_error err; /* the reason, when UNUSABLE */
	struct bnf_model model;
	int train_ran, fold_ran, check_ran, lint_ran, written;
	struct bnf_train_report train;
	struct bnf_fold_report fold; /* bnf_run_lint: the analysis of the model */
	struct bnf_verify_report verify;
	struct bnf_lint_report lint;
	int folded_broke;         /* the folded model failed to run where the
	                             original ran: the check fails, and
	                             verify.fallback says why */
	int changed;              /* the model differs from the input */
	int verified;             /* the check ran and passed */
	int forced;               /* written although the check failed (--force) */
	size_t in_size, out_size; /* with external data counted */
	size_t nodes_before, initializers_before, nodes_after, initializers_after;
	char input_sha256[65], output_sha256[65]; /* with opt->hash */
};

/* Fold opt->input into opt->output: read and validate it, convert it to
 * eval mode when asked, fold, check the result (the whole graph when the
 * evaluator can run it, each fold in any case; a whole-graph check that
 * cannot run falls back to the per-fold check and says why in
 * res->verify.fallback), write it only when verified (or forced), and lint
 * it when asked. res is zeroed first. Returns the verdict. */
enum bnf_run_verdict bnf_run_fold(const struct bnf_run_options *opt, struct bnf_run_result *res);

/* The deploy gate alone: read and lint opt->input, write nothing. The
 * lint's fold probe fills res->fold with what a fold would do. */
enum bnf_run_verdict bnf_run_lint(const struct bnf_run_options *opt, struct bnf_run_result *res);

/* Read and validate one model (for --run and --compare). */
int bnf_run_read_model(const char *path, struct bnf_external *ext, struct bnf_model *model,
                       struct bnf_error *err);

void bnf_run_result_free(struct bnf_run_result *res);

#endif
