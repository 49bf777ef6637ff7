/*
 * The command line's shared state: the parsed options of one run, its
 * exit codes, and the option parser (cli_args.c) that fills them. Only the
 * CLI files include this.
 */
#ifndef BNF_CLI_H
#define BNF_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "cli/report.h"
#include "io/external.h"
#include "check/inputs.h"
#include "check/lint.h"
#include "check/verify.h"

#ifndef BNF_VERSION
#define BNF_VERSION "0.1.0"
#endif

enum exit_code {
	EXIT_CODE_OK = 0,
	EXIT_CODE_CHECK_FAILED = 1,
	EXIT_CODE_UNUSABLE = 2,
};

enum cli_mode {
	CLI_MODE_FOLD = 0,
	CLI_MODE_RUN,
	CLI_MODE_COMPARE,
};

struct cli {
	enum cli_mode mode;
	const char *input;
	const char *second; /* --compare: the model under test */
	const char *output;
	const char *output_dir; /* -O: the folded models of many; --run: its outputs */
	char *const *models;    /* every model argument (files and folders) */
	size_t n_models;
	const char *suffix; /* --suffix: output names NAME<suffix>.onnx */
	int recursive;      /* -r: folder arguments are walked for *.onnx */
	int many;           /* the many-model form (see cli_mode_many) */
	int dry_run;
	int verbose; /* 1: -v, 2: -vv */
	int quiet;
	int no_verify;
	int force;
	int lower_bn;      /* --lower-bn */
	int freeze_inputs; /* --freeze-initializer-inputs */
	int check;         /* --check: lint the model (or the folded result) */
	int train_eval;    /* --train-mode=eval */
	const char *json;  /* --json FILE, "-" for stdout */
	enum cli_finding_level levels[BNF_FINDING_CODE_COUNT]; /* --warn-only, --ignore */
	struct bnf_input_spec inputs;
	struct bnf_verify_options verify;
	struct bnf_external *ext;   /* external data of every model read */
	struct bnf_write_plan plan; /* --external-data, --external-threshold */
	size_t check_memory;        /* --check-memory: whole-graph check budget */
	uint64_t memory;            /* the machine's physical memory (0: unknown) */
};

/* Parse argv into cli (which the caller has filled with defaults). Returns
 * -1 to go on, or the exit code to leave with (after --help, --version or
 * a usage error, which it has printed with "Try 'bnfold --help'."). */
int cli_parse_args(int argc, char **argv, struct cli *cli);

#endif
