/*
 * The command line's reports: the JSON report of --json (schema 1 for one
 * model, schema 2 for many; see bnfold(1)), the -v table of
 * BatchNormalization nodes, the progress line shown on a terminal, and the
 * figures they need (hashes, counts, clocks).
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

/* How one model of a many-model run ended: schema 2's "status". */
enum cli_model_status {
	CLI_MODEL_STATUS_VERIFIED = 0, /* folded, and the check passed */
	CLI_MODEL_STATUS_UNCHANGED,    /* nothing to fold */
	CLI_MODEL_STATUS_UNVERIFIED,   /* folded under --no-verify */
	CLI_MODEL_STATUS_CHECK_FAILED, /* the check failed: nothing written */
	CLI_MODEL_STATUS_FORCED,       /* the check failed, written anyway (--force) */
	CLI_MODEL_STATUS_LINTED,       /* the deploy gate alone ran */
	CLI_MODEL_STATUS_ERROR,        /* unreadable or malformed input, unwritable output */
	CLI_MODEL_STATUS_COUNT
};

/* "verified", "unchanged", "unverified", "check-failed", "forced",
 * "linted", "error". */
const char *cli_model_status_name(enum cli_model_status status);

/* What one model came to, as its worker process sends it back. */
struct cli_outcome {
	enum cli_model_status status;
	int exit_code;
	int lint_ran;
	size_t batchnorms, folded;          /* folded: done, or foldable when only the gate ran */
	size_t kept[BNF_KEEP_REASON_COUNT]; /* BatchNormalization nodes kept, per reason */
	size_t findings_errors, findings_warnings;
	double ms;       /* the model's wall time */
	char error[512]; /* why, when status is ERROR */
};

/* The totals of a many-model run. */
struct cli_totals {
	size_t models;
	size_t by_status[CLI_MODEL_STATUS_COUNT];
	size_t with_findings; /* models whose findings count as errors */
	size_t batchnorms, folded;
	double ms;
	int exit_code; /* the worst of the models' */
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
	const struct cli_outcome *outcome; /* a many-model entry: status, error, ms */
};

/* What --compare found, for its JSON report. */
struct cli_compare_facts {
	const char *reference, *candidate; /* paths as given */
	size_t reference_size, candidate_size;
	char reference_sha256[65], candidate_sha256[65]; /* "" when not read */
	const char *verdict; /* "equal", "different", "not-comparable" or "error" */
	const char *error;   /* the reason, or NULL */
	const struct bnf_verify_report *verify; /* NULL when no comparison was made */
	int exit_code;
};

/* The --compare report as JSON text (schema 1, mode "compare"; malloc'd),
 * or NULL when memory ran out. */
char *cli_report_compare_json(const struct cli_compare_facts *facts, const char *version);

/* The report as JSON text (malloc'd, freed by the caller), or NULL when
 * memory ran out. */
char *cli_report_json(const struct cli_facts *facts, const char *version);

/* One model's entry of a schema 2 report: schema 1's members from "input"
 * to "timings_ms", then "ms", "status", "error" and "exit_code" from
 * facts->outcome. malloc'd JSON text, or NULL when memory ran out. */
char *cli_report_entry_json(const struct cli_facts *facts);

/* The schema 2 document of a many-model run: the entries (JSON text as
 * cli_report_entry_json makes it) in input order, and the totals.
 * malloc'd, or NULL when memory ran out. */
char *cli_report_many_json(const char *version, const char *mode, char *const *entries, size_t n,
                           const struct cli_totals *totals);

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
