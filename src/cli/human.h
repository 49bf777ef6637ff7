/*
 * The human lines of a run (see human.c): every function prints to stderr
 * and reads only the reports it is given.
 */
#ifndef BNF_CLI_HUMAN_H
#define BNF_CLI_HUMAN_H

#include <stddef.h>

#include "cli/report.h"

/* One line on stderr: "bnfold: " and the message. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line per BatchNormalization; without -v only the kept ones, since
 * every node that stays must come with its reason. With -v, the affine
 * (Mul/Add/Sub/Div) candidates too. */
void cli_print_records(const struct bnf_fold_report *rep, int verbose);

/* "folded N of M BatchNormalization nodes ...; sizes". */
void cli_print_summary(const struct bnf_fold_report *rep, size_t in_size, size_t out_size);

/* Each output's figures; a_label and b_label name the two models. */
void cli_print_output_checks(const struct bnf_verify_report *vr, const char *a_label,
                             const char *b_label);

/* The per-fold checks: every one with -v, else the failed ones (and the
 * unchecked ones when the whole graph was not checked). */
void cli_print_fold_checks(const struct bnf_verify_report *vr, int verbose);

/* The closing "verified: ..." line (how the folded model's error against
 * the exact result compares with the original's own), and the input
 * shapes the check used (which were chosen, and all of them with
 * verbose). cli_print_equal: the same for --compare. */
void cli_print_verified(const struct bnf_verify_report *vr, int verbose);
void cli_print_equal(const struct bnf_verify_report *vr, int verbose);

/* Where a failed check went wrong: the first fold that fails its own
 * check, and the first value where the models diverge (b_label names the
 * model under test). */
void cli_print_where(const struct bnf_verify_report *vr, const char *b_label);

/* The nodes --train-mode=eval converted (with -v) or could not. */
void cli_print_train(const struct bnf_train_report *t, int verbose);

/* The findings not ignored, and a closing count unless quiet; returns how
 * many count as errors. */
size_t cli_print_findings(const struct bnf_lint_report *lint, const enum cli_finding_level *levels,
                          int quiet);

#endif
