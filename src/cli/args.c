/*
 * Option parsing for the bnfold command line (getopt_long): the --help
 * text, usage errors, and the checks of every option's value.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "eval/op.h"
#include "util/thread.h"

static void usage(FILE *f)
{
	fputs("Usage: bnfold [OPTIONS] INPUT -o OUTPUT\n"
	      "       bnfold [OPTIONS] -O DIR | --suffix SUFFIX [-r] MODEL|FOLDER...\n"
	      "       bnfold --run MODEL --output-dir DIR [--input NAME=FILE ...]\n"
	      "       bnfold --compare REFERENCE.onnx CANDIDATE.onnx\n"
	      "       bnfold --check [-r] MODEL|FOLDER... [--warn-only CODES] [--ignore CODES]\n"
	      "Fold eval-mode BatchNormalization nodes of an ONNX model into the Conv,\n"
	      "ConvTranspose, Gemm or MatMul in front of them, prove with bnfold's own\n"
	      "evaluator that the new model computes what the old one did, and write it.\n"
	      "INPUT and OUTPUT may be '-' for standard input and output.\n"
	      "\n"
	      "Folding:\n"
	      "  -o, --output FILE     where to write the folded model\n"
	      "  -n, --dry-run         analyse, fold and check, write nothing\n"
	      "  -v, --verbose         one line per BatchNormalization (folded into what,\n"
	      "                        or kept and why) and per checked output and fold;\n"
	      "                        -vv also every Mul/Add/Sub/Div after a layer kept\n"
	      "                        for a reason nobody can act on\n"
	      "  -q, --quiet           print errors only\n"
	      "      --lower-bn        rewrite each BatchNormalization nothing can absorb\n"
	      "                        as Mul + Add with constant per-channel factors\n"
	      "      --freeze-initializer-inputs  initializers also listed as graph\n"
	      "                        inputs are constants (always so below IR version\n"
	      "                        4); the ones folded leave the inputs\n"
	      "      --train-mode=MODE refuse (default: training-mode nodes are kept) or\n"
	      "                        eval (convert them to eval mode, then fold)\n"
	      "      --json FILE       write a JSON report to FILE ('-': standard output)\n"
	      "\n"
	      "Many models (several MODEL arguments, -O, --suffix or -r), each in a process\n"
	      "of its own, one summary line each and a total; exit status the worst:\n"
	      "  -O, --output-dir DIR  write each model to DIR/<its name> (a file found\n"
	      "                        under a FOLDER keeps its path below the FOLDER)\n"
	      "      --suffix SUFFIX   name the output NAME<SUFFIX>.onnx: --suffix .folded\n"
	      "                        writes a.folded.onnx beside a.onnx (or in DIR)\n"
	      "  -r, --recursive       take the *.onnx files under each FOLDER argument\n"
	      "\n"
	      "The deploy gate:\n"
	      "      --check           lint MODEL (write nothing; exit 1 on findings), or\n"
	      "                        with -o/-n fold first and lint the result\n"
	      "      --warn-only CODES report these finding codes without failing\n"
	      "      --ignore CODES    do not report these finding codes\n"
	      "      --external-data=MODE  where tensors go: inline, keep (external ones\n"
	      "                        stay in their files), or FILE (a data file next to\n"
	      "                        the output); default inline unless the input has\n"
	      "                        external data or the model passes 2 GB\n"
	      "      --external-threshold BYTES  tensors this big or bigger go to the\n"
	      "                        data file (default 1024)\n"
	      "\n"
	      "The equivalence check (on by default):\n"
	      "      --no-verify       do not check; write the folded model unverified\n"
	      "      --force           write the model even when the check fails (exit 1)\n"
	      "      --samples N       random input samples for the check (default 1)\n"
	      "      --seed S          seed of the random inputs (default 1)\n"
	      "      --shape NAME=DIMS input shape, e.g. input=1x3x224x224 (repeatable)\n"
	      "      --dim SYMBOL=N    value of a symbolic dimension (default 1; repeatable)\n"
	      "      --input NAME=FILE input values from a TensorProto .pb or .npy file\n"
	      "      --atol X          absolute tolerance (default 1e-5; float16 1e-3,\n"
	      "                        bfloat16 1e-2), scaled by the output's RMS when > 1\n"
	      "      --rtol X          relative tolerance (default 1e-4; float16 1e-2,\n"
	      "                        bfloat16 5e-2)\n"
	      "      --allow-nan       NaN/inf at the same places in both outputs is no failure\n"
	      "  -j, --threads N       evaluator threads (default: all cores); with many\n"
	      "                        models the cores of the run: up to N models at once\n"
	      "                        (fewer when memory does not hold --check-memory each)\n"
	      "      --check-memory BYTES  skip the whole-graph check when it would need\n"
	      "                        more (suffix K, M, G; default half the memory, at\n"
	      "                        most 4G); each fold is still checked\n"
	      "\n"
	      "Other modes:\n"
	      "      --run MODEL       evaluate MODEL in eval mode; write each output to\n"
	      "                        DIR/<output name>.pb (--output-dir DIR)\n"
	      "      --compare A B     run two models on the same inputs and compare outputs\n"
	      "      --list-ops        list the operators the evaluator runs, one per line\n"
	      "                        with its opsets ('Conv 1-', 'Upsample 7-9'), and exit\n"
	      "\n"
	      "  -h, --help            show this help and exit\n"
	      "  -V, --version         show the version and exit\n"
	      "\n"
	      "Exit status: 0 success, 1 the model was processed but a check failed\n"
	      "(--check: findings), 2 usage error, unreadable or malformed input, or\n"
	      "unwritable output; with many models the worst of theirs.\n"
	      "See bnfold(1) for details.\n",
	      f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("bnfold: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'bnfold --help'.\n", stderr);
	return EXIT_CODE_UNUSABLE;
}

static int parse_number(const char *opt, const char *arg, double min, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || v < min || v != v)
		return usage_error("option '%s' needs a number, not '%s'", opt, arg);
	*out = v;
	return -1;
}

/* A whole number in [min, max]; anything else is a usage error. */
static int parse_count(const char *opt, const char *arg, long long min, long long max,
                       long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		return usage_error("option '%s' needs a whole number from %lld to %lld, not '%s'",
		                   opt, min, max, arg);
	*out = v;
	return -1;
}

enum long_only_option {
	OPT_NO_VERIFY = 256,
	OPT_FORCE,
	OPT_SAMPLES,
	OPT_SEED,
	OPT_SHAPE,
	OPT_DIM,
	OPT_INPUT,
	OPT_ATOL,
	OPT_RTOL,
	OPT_ALLOW_NAN,
	OPT_RUN,
	OPT_COMPARE,
	OPT_CHECK,
	OPT_TRAIN_MODE,
	OPT_JSON,
	OPT_WARN_ONLY,
	OPT_IGNORE,
	OPT_EXTERNAL_DATA,
	OPT_EXTERNAL_THRESHOLD,
	OPT_CHECK_MEMORY,
	OPT_LOWER_BN,
	OPT_FREEZE_INPUTS,
	OPT_LIST_OPS,
	OPT_SUFFIX,
};

/* --list-ops: "Conv 1-" (every opset from 1 on) or "Upsample 7-9", one
 * line per table row, sorted by name; the backend tests read this list. */
static int list_ops(void)
{
	struct bnf_op_range *r;
	size_t n = bnf_op_ranges(&r), i;

	if (!n) {
		fputs("bnfold: out of memory\n", stderr);
		return EXIT_CODE_UNUSABLE;
	}
	for (i = 0; i < n; i++) {
		if (r[i].last)
			printf("%s %d-%d\n", r[i].op_type, r[i].first, r[i].last);
		else
			printf("%s %d-\n", r[i].op_type, r[i].first);
	}
	free(r);
	if (fflush(stdout) != 0) {
		perror("bnfold: writing the operator list");
		return EXIT_CODE_UNUSABLE;
	}
	return EXIT_CODE_OK;
}

/* --warn-only / --ignore: a comma-separated list of finding codes. */
static int parse_codes(const char *opt, const char *arg, enum cli_finding_level level,
                       struct cli *cli)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	enum bnf_finding_code code;
	int rc = -1;

	if (!copy)
		return usage_error("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok && rc < 0; tok = strtok_r(NULL, ",", &save)) {
		if (bnf_finding_code_parse(tok, &code) != 0)
			rc = usage_error("option '%s': unknown finding code '%s'", opt, tok);
		else
			cli->levels[code] = level;
	}
	free(copy);
	return rc;
}

/* A byte count with an optional binary suffix K, M or G. */
static int parse_bytes(const char *opt, const char *arg, size_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M')
		shift = 20;
	else if (*end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == arg || *end || arg[0] == '-' || v > (SIZE_MAX >> shift))
		return usage_error("option '%s' needs a byte count (suffix K, M or G allowed), "
		                   "not '%s'",
		                   opt, arg);
	*out = (size_t)v << shift;
	return -1;
}

/* --external-data=inline|keep|FILE */
static void parse_external_data(const char *arg, struct bnf_write_plan *plan)
{
	plan->data_name = NULL;
	if (strcmp(arg, "inline") == 0)
		plan->mode = BNF_DATA_MODE_INLINE;
	else if (strcmp(arg, "keep") == 0)
		plan->mode = BNF_DATA_MODE_KEEP;
	else {
		plan->mode = BNF_DATA_MODE_FILE;
		plan->data_name = arg;
	}
}

static const struct option long_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"dry-run", no_argument, NULL, 'n'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"threads", required_argument, NULL, 'j'},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"force", no_argument, NULL, OPT_FORCE},
    {"samples", required_argument, NULL, OPT_SAMPLES},
    {"seed", required_argument, NULL, OPT_SEED},
    {"shape", required_argument, NULL, OPT_SHAPE},
    {"dim", required_argument, NULL, OPT_DIM},
    {"input", required_argument, NULL, OPT_INPUT},
    {"atol", required_argument, NULL, OPT_ATOL},
    {"rtol", required_argument, NULL, OPT_RTOL},
    {"allow-nan", no_argument, NULL, OPT_ALLOW_NAN},
    {"run", no_argument, NULL, OPT_RUN},
    {"output-dir", required_argument, NULL, 'O'},
    {"suffix", required_argument, NULL, OPT_SUFFIX},
    {"recursive", no_argument, NULL, 'r'},
    {"compare", no_argument, NULL, OPT_COMPARE},
    {"check", no_argument, NULL, OPT_CHECK},
    {"train-mode", required_argument, NULL, OPT_TRAIN_MODE},
    {"json", required_argument, NULL, OPT_JSON},
    {"warn-only", required_argument, NULL, OPT_WARN_ONLY},
    {"ignore", required_argument, NULL, OPT_IGNORE},
    {"external-data", required_argument, NULL, OPT_EXTERNAL_DATA},
    {"external-threshold", required_argument, NULL, OPT_EXTERNAL_THRESHOLD},
    {"check-memory", required_argument, NULL, OPT_CHECK_MEMORY},
    {"lower-bn", no_argument, NULL, OPT_LOWER_BN},
    {"freeze-initializer-inputs", no_argument, NULL, OPT_FREEZE_INPUTS},
    {"list-ops", no_argument, NULL, OPT_LIST_OPS},
    {NULL, 0, NULL, 0},
};

/* Apply option c (with its argument) to cli: -1 to go on, or the exit code
 * to leave with. */
static int take_option(int c, const char *arg, char **argv, struct cli *cli)
{
	struct bnf_error err;
	long long n;
	int rc = -1;

	memset(&err, 0, sizeof(err));
	switch (c) {
	case 'o':
		cli->output = arg;
		break;
	case 'n':
		cli->dry_run = 1;
		break;
	case 'v':
		cli->verbose++; /* -vv: also what is not news */
		break;
	case 'q':
		cli->quiet = 1;
		break;
	case 'h':
		usage(stdout);
		return fflush(stdout) == 0 ? EXIT_CODE_OK : EXIT_CODE_UNUSABLE;
	case 'V':
		printf("bnfold %s\n", BNF_VERSION);
		return fflush(stdout) == 0 ? EXIT_CODE_OK : EXIT_CODE_UNUSABLE;
	case 'j':
		if ((rc = parse_count("--threads", arg, 1, BNF_MAX_THREADS, &n)) < 0)
			cli->verify.threads = (int)n;
		break;
	case OPT_NO_VERIFY:
		cli->no_verify = 1;
		break;
	case OPT_FORCE:
		cli->force = 1;
		break;
	case OPT_SAMPLES:
		if ((rc = parse_count("--samples", arg, 1, 1000, &n)) < 0)
			cli->verify.samples = (int)n;
		break;
	case OPT_SEED:
		if ((rc = parse_count("--seed", arg, 0, INT64_MAX, &n)) < 0)
			cli->verify.seed = (uint64_t)n;
		break;
	case OPT_SHAPE:
		if (bnf_input_spec_add_shape(&cli->inputs, arg, &err) != BNF_OK)
			rc = usage_error("%s", err.msg);
		break;
	case OPT_DIM:
		if (bnf_input_spec_add_dim(&cli->inputs, arg, &err) != BNF_OK)
			rc = usage_error("%s", err.msg);
		break;
	case OPT_INPUT:
		if (bnf_input_spec_add_file(&cli->inputs, arg, &err) != BNF_OK)
			rc = usage_error("%s", err.msg);
		break;
	case OPT_ATOL:
		rc = parse_number("--atol", arg, 0, &cli->verify.atol);
		break;
	case OPT_RTOL:
		rc = parse_number("--rtol", arg, 0, &cli->verify.rtol);
		break;
	case OPT_ALLOW_NAN:
		cli->verify.allow_nan = 1;
		break;
	case OPT_RUN:
		cli->mode = CLI_MODE_RUN;
		break;
	case 'O':
		cli->output_dir = arg;
		break;
	case OPT_SUFFIX:
		cli->suffix = arg;
		break;
	case 'r':
		cli->recursive = 1;
		break;
	case OPT_COMPARE:
		cli->mode = CLI_MODE_COMPARE;
		break;
	case OPT_CHECK:
		cli->check = 1;
		break;
	case OPT_TRAIN_MODE:
		if (strcmp(arg, "eval") == 0 || strcmp(arg, "refuse") == 0)
			cli->train_eval = strcmp(arg, "eval") == 0;
		else
			rc = usage_error("--train-mode takes 'refuse' or 'eval', not '%s'", arg);
		break;
	case OPT_JSON:
		cli->json = arg;
		break;
	case OPT_WARN_ONLY:
		rc = parse_codes("--warn-only", arg, CLI_FINDING_LEVEL_WARNING, cli);
		break;
	case OPT_IGNORE:
		rc = parse_codes("--ignore", arg, CLI_FINDING_LEVEL_IGNORED, cli);
		break;
	case OPT_EXTERNAL_DATA:
		parse_external_data(arg, &cli->plan);
		break;
	case OPT_EXTERNAL_THRESHOLD:
		rc = parse_bytes("--external-threshold", arg, &cli->plan.threshold);
		break;
	case OPT_CHECK_MEMORY:
		rc = parse_bytes("--check-memory", arg, &cli->check_memory);
		break;
	case OPT_LOWER_BN:
		cli->lower_bn = 1;
		break;
	case OPT_FREEZE_INPUTS:
		cli->freeze_inputs = 1;
		break;
	case OPT_LIST_OPS:
		return list_ops();
	case ':':
		return usage_error("option '%s' needs an argument", argv[optind - 1]);
	default:
		if (optopt && optopt < 256)
			return usage_error("unknown option '-%c'", optopt);
		return usage_error("unknown option '%s'", argv[optind - 1]);
	}
	return rc;
}

/* The many-model form: -1 to go on, or the exit code to leave with. */
static int check_many(struct cli *cli)
{
	size_t i;

	if (cli->output)
		return usage_error("-o names one output file: with several models give -O DIR or "
		                   "--suffix SUFFIX");
	for (i = 0; i < cli->n_models; i++)
		if (strcmp(cli->models[i], "-") == 0)
			return usage_error("'-' (standard input) is for one model: with several, "
			                   "name their files");
	if (!cli->output_dir && !cli->suffix && !cli->dry_run && !cli->check)
		return usage_error(
		    "several models need -O DIR or --suffix SUFFIX for their outputs "
		    "(or -n, or --check)");
	if (cli->suffix && (!cli->suffix[0] || strchr(cli->suffix, '/')))
		return usage_error(
		    "--suffix takes a part of a file name such as '.folded', not '%s'",
		    cli->suffix);
	if (cli->plan.mode == BNF_DATA_MODE_FILE)
		return usage_error("--external-data=FILE names one data file: with several models "
		                   "use inline, keep, or the default (OUTPUT.data beside each)");
	if (cli->check && cli->train_eval && !cli->output_dir && !cli->suffix && !cli->dry_run)
		return usage_error("--train-mode=eval converts before folding: with --check, give "
		                   "-O DIR, --suffix SUFFIX or -n");
	if (cli->verbose && cli->quiet)
		return usage_error("--verbose and --quiet cannot be combined");
	return -1;
}

/* The positional arguments and the combinations of options: -1 to go on,
 * or the exit code to leave with. */
static int check_arguments(int argc, char **argv, struct cli *cli)
{
	int positional;

	if (cli->mode != CLI_MODE_FOLD && (cli->check || cli->train_eval))
		return usage_error("--check and --train-mode apply to folding, not to --run or "
		                   "--compare");
	if (cli->mode == CLI_MODE_RUN && cli->json)
		return usage_error("--json applies to folding and --compare, not to --run");
	if (cli->mode != CLI_MODE_FOLD && (cli->suffix || cli->recursive))
		return usage_error("--suffix and -r apply to folding and --check, not to --run or "
		                   "--compare");
	positional = argc - optind;
	if (positional < 1)
		return usage_error("no input model given");
	cli->input = argv[optind];
	cli->models = argv + optind;
	cli->n_models = (size_t)positional;
	if (cli->mode == CLI_MODE_COMPARE) {
		if (positional != 2)
			return usage_error("--compare takes two models");
		cli->second = argv[optind + 1];
		return -1;
	}
	if (cli->mode == CLI_MODE_RUN) {
		if (positional > 1)
			return usage_error("unexpected argument '%s'", argv[optind + 1]);
		if (!cli->output_dir)
			return usage_error("--run needs --output-dir DIR");
		return -1;
	}
	cli->many = positional > 1 || cli->output_dir || cli->suffix || cli->recursive;
	if (cli->many)
		return check_many(cli);
	if (!cli->output && !cli->dry_run && !cli->check)
		return usage_error("no output given (use -o FILE, or -n for a dry run)");
	if (cli->json && strcmp(cli->json, "-") == 0 && cli->output &&
	    strcmp(cli->output, "-") == 0)
		return usage_error("--json - and -o - cannot both use standard output");
	if (cli->check && cli->train_eval && !cli->output && !cli->dry_run)
		return usage_error("--train-mode=eval converts before folding: with --check, give "
		                   "-o FILE or -n");
	if (cli->verbose && cli->quiet)
		return usage_error("--verbose and --quiet cannot be combined");
	return -1;
}

int cli_parse_args(int argc, char **argv, struct cli *cli)
{
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:O:rnvqhVj:", long_options, NULL)) != -1)
		if ((rc = take_option(c, optarg, argv, cli)) >= 0)
			return rc;
	return check_arguments(argc, argv, cli);
}

/* Read a model and validate it (validate.h) before anything uses it. */
