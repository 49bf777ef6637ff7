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

/* bnfold --run MODEL --output-dir DIR. */
int cli_mode_run(const struct cli *cli);

/* bnfold --compare A B. */
int cli_mode_compare(const struct cli *cli);

#endif
