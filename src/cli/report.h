/*
 * The command line's reports: the JSON report of --json (schema 1, see
 * bnfold(1)), the -v table of BatchNormalization nodes, the progress line
 * shown on a terminal, and the figures they need (hashes, counts, clocks).
 * Part of the CLI: these functions print.
 */
#ifndef BNF_CLI_REPORT_H
#define BNF_CLI_REPORT_H

#include <stddef.h>

#include "fold/fold.h"
#include "check/lint.h"
#include "onnx.pb-c.h"
#include "fold/trainmode.h"
#include "check/verify.h"
#include "check/run.h"

/* How a finding code counts: an error (exit 1), a warning, or ignored. */
enum cli_finding_level {
	CLI_FINDING_LEVEL_ERROR = 0,
	CLI_FINDING_LEVEL_WARNING,
	CLI_FINDING_LEVEL_IGNORED,
};

/* Everything one run learnt, borrowed from the run's own records. */
struct cli_facts {
	const char *mode; /* "fold", "check" or "fold+check" */
	const char *input;
	const char *output; /* NULL when nothing was written */
	size_t input_size, output_size;
	char input_sha256[65], output_sha256[65];
	size_t nodes_before, initializers_before, nodes_after, initializers_after;
	int folding; /* 0: the fold report is an analysis only */
	const struct bnf_fold_report *fold;
	const struct bnf_train_report *train;   /* NULL without --train-mode=eval */
	const struct bnf_verify_report *verify; /* NULL when no check ran */
	const struct bnf_lint_report *lint;     /* NULL without --check */
	const enum cli_finding_level *levels;   /* per finding code */
	double phase_ms[BNF_RUN_PHASE_COUNT];   /* negative: phase not run */
	int exit_code;
};

/* The report as JSON text (malloc'd, freed by the caller), or NULL when
 * memory ran out. */
char *cli_report_json(const struct cli_facts *facts, const char *version);

/* The shapes the check's inputs were made with, one line per input on
 * stderr: the inputs with a dimension bnfold chose, or with verbose every
 * input and how many shape probes ran. */
void cli_print_input_shapes(const struct bnf_input_shapes *shapes, int verbose);

/* The -v table: one aligned row per BatchNormalization, on stderr. */
void cli_print_bn_table(const struct bnf_fold_report *rep, int folding);

/* Under -v: what bnfold read differently from what the model declares
 * (negative declared dims, read as unknown), one line on stderr naming
 * the model by label; nothing when there is nothing to say. */
void cli_print_model_notes(const Onnx__ModelProto *model, const char *label);

/* A monotonic clock in milliseconds. */
double cli_now_ms(void);

/* Progress on a terminal: after a phase has run for about a second, a
 * line on stderr says which phase and for how long; nothing when stderr
 * is not a terminal. cli_progress_end clears the line. */
void cli_progress_begin(const char *phase);
void cli_progress_end(void);

#endif
