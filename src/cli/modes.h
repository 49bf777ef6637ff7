/*
 * The command line's modes (see modes.c). Each takes the parsed options,
 * prints its lines and report, and returns the exit code.
 */
#ifndef BNF_CLI_MODES_H
#define BNF_CLI_MODES_H

#include "cli/cli.h"

/* bnfold INPUT -o OUTPUT (and -n, --check with -o/-n). */
int cli_mode_fold(const struct cli *cli);

/* bnfold --check MODEL: the deploy gate alone, nothing written. */
int cli_mode_check(const struct cli *cli);

/* One model of a many-model run, as the single-model form would run it
 * (fold, or the deploy gate alone for --check without an output): its
 * lines on stderr, except an unusable model's reason, which goes to
 * out->error. *json receives its schema 2 entry when cli->json is set
 * (malloc'd; NULL otherwise or when memory ran out). Returns the exit
 * code. */
int cli_mode_one(const struct cli *cli, struct cli_outcome *out, char **json);

/* bnfold -O DIR | --suffix S | -r | MODEL MODEL...: many models (many.c). */
int cli_mode_many(const struct cli *cli);

/* Write a JSON report to path ("-": standard output, a terminal included;
 * a file is replaced whole, as a model is). Returns 0, or -1 after saying
 * why. */
int cli_write_report(const char *path, const char *text);

/* bnfold --run MODEL --output-dir DIR. */
int cli_mode_run(const struct cli *cli);

/* bnfold --compare A B. */
int cli_mode_compare(const struct cli *cli);

#endif
