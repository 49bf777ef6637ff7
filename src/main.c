/*
 * The bnfold command line: parses options, runs the fold, writes the model
 * and owns every message and exit code (0 success, 1 a check failed,
 * 2 usage error or unusable input or output).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cli_report.h"
#include "eval/eval.h"
#include "external.h"
#include "fold.h"
#include "inputs.h"
#include "lint.h"
#include "model.h"
#include "trainmode.h"
#include "validate.h"
#include "verify.h"

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
	const char *second;       /* --compare: the model under test */
	const char *output;
	const char *output_dir;   /* --run */
	int dry_run;
	int verbose;
	int quiet;
	int no_verify;
	int force;
	int lower_bn;             /* --lower-bn */
	int check;                /* --check: lint the model (or the folded result) */
	int train_eval;           /* --train-mode=eval */
	const char *json;         /* --json FILE, "-" for stdout */
	enum cli_finding_level levels[BNF_FINDING_CODE_COUNT]; /* --warn-only, --ignore */
	struct bnf_input_spec inputs;
	struct bnf_verify_options verify;
	struct bnf_external *ext;       /* external data of every model read */
	struct bnf_write_plan plan;     /* --external-data, --external-threshold */
	size_t check_memory;            /* --check-memory: whole-graph check budget */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;
	fputs("bnfold: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f)
{
	fputs("Usage: bnfold [OPTIONS] INPUT -o OUTPUT\n"
	      "       bnfold --run MODEL --output-dir DIR [--input NAME=FILE ...]\n"
	      "       bnfold --compare REFERENCE.onnx CANDIDATE.onnx\n"
	      "       bnfold --check MODEL [--warn-only CODE,...] [--ignore CODE,...]\n"
	      "Fold eval-mode BatchNormalization nodes of an ONNX model into the Conv,\n"
	      "ConvTranspose, Gemm or MatMul in front of them, prove with bnfold's own\n"
	      "evaluator that the new model computes what the old one did, and write it.\n"
	      "INPUT and OUTPUT may be '-' for standard input and output.\n"
	      "\n"
	      "Folding:\n"
	      "  -o, --output FILE     where to write the folded model\n"
	      "  -n, --dry-run         analyse, fold and check, write nothing\n"
	      "  -v, --verbose         one line per BatchNormalization (folded into what,\n"
	      "                        or kept and why) and per checked output and fold\n"
	      "  -q, --quiet           print errors only\n"
	      "      --lower-bn        rewrite each BatchNormalization nothing can absorb\n"
	      "                        as Mul + Add with constant per-channel factors\n"
	      "      --train-mode=MODE refuse (default: training-mode nodes are kept) or\n"
	      "                        eval (convert them to eval mode, then fold)\n"
	      "      --json FILE       write a JSON report to FILE ('-': standard output)\n"
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
	      "      --samples N       random input samples for the check (default 2)\n"
	      "      --seed S          seed of the random inputs (default 1)\n"
	      "      --shape NAME=DIMS input shape, e.g. input=1x3x224x224 (repeatable)\n"
	      "      --dim SYMBOL=N    value of a symbolic dimension (default 1; repeatable)\n"
	      "      --input NAME=FILE input values from a TensorProto .pb or .npy file\n"
	      "      --atol X          absolute tolerance (default 1e-5; float16 1e-3,\n"
	      "                        bfloat16 1e-2), scaled by the output's RMS when > 1\n"
	      "      --rtol X          relative tolerance (default 1e-4; float16 1e-2,\n"
	      "                        bfloat16 5e-2)\n"
	      "      --allow-nan       NaN/inf at the same places in both outputs is no failure\n"
	      "  -j, --threads N       evaluator threads (default: all cores)\n"
	      "      --check-memory BYTES  skip the whole-graph check when it would need\n"
	      "                        more (suffix K, M, G; default half the memory, at\n"
	      "                        most 4G); each fold is still checked\n"
	      "\n"
	      "Other modes:\n"
	      "      --run MODEL       evaluate MODEL in eval mode; write each output to\n"
	      "                        DIR/<output name>.pb (--output-dir DIR)\n"
	      "      --compare A B     run two models on the same inputs and compare outputs\n"
	      "\n"
	      "  -h, --help            show this help and exit\n"
	      "  -V, --version         show the version and exit\n"
	      "\n"
	      "Exit status: 0 success, 1 the model was processed but a check failed\n"
	      "(--check: findings), "
	      "2 usage error, unreadable or malformed input, or unwritable output.\n"
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
		return usage_error("option '%s' needs a whole number from %lld to %lld, not '%s'", opt,
				   min, max, arg);
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
	OPT_OUTPUT_DIR,
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
};

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

/* Parse argv into cli. Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
	static const struct option options[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "threads", required_argument, NULL, 'j' },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "samples", required_argument, NULL, OPT_SAMPLES },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "shape", required_argument, NULL, OPT_SHAPE },
		{ "dim", required_argument, NULL, OPT_DIM },
		{ "input", required_argument, NULL, OPT_INPUT },
		{ "atol", required_argument, NULL, OPT_ATOL },
		{ "rtol", required_argument, NULL, OPT_RTOL },
		{ "allow-nan", no_argument, NULL, OPT_ALLOW_NAN },
		{ "run", no_argument, NULL, OPT_RUN },
		{ "output-dir", required_argument, NULL, OPT_OUTPUT_DIR },
		{ "compare", no_argument, NULL, OPT_COMPARE },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "train-mode", required_argument, NULL, OPT_TRAIN_MODE },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "warn-only", required_argument, NULL, OPT_WARN_ONLY },
		{ "ignore", required_argument, NULL, OPT_IGNORE },
		{ "external-data", required_argument, NULL, OPT_EXTERNAL_DATA },
		{ "external-threshold", required_argument, NULL, OPT_EXTERNAL_THRESHOLD },
		{ "check-memory", required_argument, NULL, OPT_CHECK_MEMORY },
		{ "lower-bn", no_argument, NULL, OPT_LOWER_BN },
		{ NULL, 0, NULL, 0 },
	};
	struct bnf_error err;
	long long n;
	int c, rc, positional;

	memset(&err, 0, sizeof(err));
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:nvqhVj:", options, NULL)) != -1) {
		rc = -1;
		switch (c) {
		case 'o':
			cli->output = optarg;
			break;
		case 'n':
			cli->dry_run = 1;
			break;
		case 'v':
			cli->verbose = 1;
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
			if ((rc = parse_count("--threads", optarg, 1, 256, &n)) < 0)
				cli->verify.threads = (int)n;
			break;
		case OPT_NO_VERIFY:
			cli->no_verify = 1;
			break;
		case OPT_FORCE:
			cli->force = 1;
			break;
		case OPT_SAMPLES:
			if ((rc = parse_count("--samples", optarg, 1, 1000, &n)) < 0)
				cli->verify.samples = (int)n;
			break;
		case OPT_SEED:
			if ((rc = parse_count("--seed", optarg, 0, INT64_MAX, &n)) < 0)
				cli->verify.seed = (uint64_t)n;
			break;
		case OPT_SHAPE:
			if (bnf_input_spec_add_shape(&cli->inputs, optarg, &err) != BNF_OK)
				rc = usage_error("%s", err.msg);
			break;
		case OPT_DIM:
			if (bnf_input_spec_add_dim(&cli->inputs, optarg, &err) != BNF_OK)
				rc = usage_error("%s", err.msg);
			break;
		case OPT_INPUT:
			if (bnf_input_spec_add_file(&cli->inputs, optarg, &err) != BNF_OK)
				rc = usage_error("%s", err.msg);
			break;
		case OPT_ATOL:
			rc = parse_number("--atol", optarg, 0, &cli->verify.atol);
			break;
		case OPT_RTOL:
			rc = parse_number("--rtol", optarg, 0, &cli->verify.rtol);
			break;
		case OPT_ALLOW_NAN:
			cli->verify.allow_nan = 1;
			break;
		case OPT_RUN:
			cli->mode = CLI_MODE_RUN;
			break;
		case OPT_OUTPUT_DIR:
			cli->output_dir = optarg;
			break;
		case OPT_COMPARE:
			cli->mode = CLI_MODE_COMPARE;
			break;
		case OPT_CHECK:
			cli->check = 1;
			break;
		case OPT_TRAIN_MODE:
			if (strcmp(optarg, "eval") == 0 || strcmp(optarg, "refuse") == 0)
				cli->train_eval = strcmp(optarg, "eval") == 0;
			else
				rc = usage_error("--train-mode takes 'refuse' or 'eval', not '%s'", optarg);
			break;
		case OPT_JSON:
			cli->json = optarg;
			break;
		case OPT_WARN_ONLY:
			rc = parse_codes("--warn-only", optarg, CLI_FINDING_LEVEL_WARNING, cli);
			break;
		case OPT_IGNORE:
			rc = parse_codes("--ignore", optarg, CLI_FINDING_LEVEL_IGNORED, cli);
			break;
		case OPT_EXTERNAL_DATA:
			parse_external_data(optarg, &cli->plan);
			break;
		case OPT_EXTERNAL_THRESHOLD:
			rc = parse_bytes("--external-threshold", optarg, &cli->plan.threshold);
			break;
		case OPT_CHECK_MEMORY:
			rc = parse_bytes("--check-memory", optarg, &cli->check_memory);
			break;
		case OPT_LOWER_BN:
			cli->lower_bn = 1;
			break;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (rc >= 0)
			return rc;
	}
	if (cli->mode != CLI_MODE_FOLD && (cli->check || cli->json || cli->train_eval))
		return usage_error("--check, --json and --train-mode apply to folding, not to "
				   "--run or --compare");
	positional = argc - optind;
	if (positional < 1)
		return usage_error("no input model given");
	cli->input = argv[optind];
	if (cli->mode == CLI_MODE_COMPARE) {
		if (positional != 2)
			return usage_error("--compare takes two models");
		cli->second = argv[optind + 1];
		return -1;
	}
	if (positional > 1)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	if (cli->mode == CLI_MODE_RUN) {
		if (!cli->output_dir)
			return usage_error("--run needs --output-dir DIR");
		return -1;
	}
	if (!cli->output && !cli->dry_run && !cli->check)
		return usage_error("no output given (use -o FILE, or -n for a dry run)");
	if (cli->json && strcmp(cli->json, "-") == 0 && cli->output && strcmp(cli->output, "-") == 0)
		return usage_error("--json - and -o - cannot both use standard output");
	if (cli->check && cli->train_eval && !cli->output && !cli->dry_run)
		return usage_error("--train-mode=eval converts before folding: with --check, give "
				   "-o FILE or -n");
	if (cli->verbose && cli->quiet)
		return usage_error("--verbose and --quiet cannot be combined");
	return -1;
}

/* Read a model and validate it (validate.h) before anything uses it. */
static int read_valid_model(const char *path, struct bnf_external *ext, struct bnf_model *model,
			    struct bnf_error *err)
{
	int rc = bnf_model_read_ext(path, ext, model, err);

	if (rc == BNF_OK &&
	    (rc = bnf_validate_model(model->proto, bnf_path_label(path, 0), err)) != BNF_OK)
		bnf_model_release(model);
	return rc;
}

/* Sizes in decimal units, as file managers show them. */
static void format_size(double bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	size_t u = 0;
	while (bytes >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		bytes /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", bytes);
	else
		snprintf(buf, len, "%.1f %s", bytes, units[u]);
}

/* One line per BatchNormalization; without -v only the kept ones, since
 * every node that stays must come with its reason. */
static void print_records(const struct bnf_fold_report *rep, int verbose)
{
	size_t i;
	for (i = 0; i < rep->n_records; i++) {
		const struct bnf_bn_record *r = &rep->records[i];
		char where[600] = "";
		if (!verbose && r->kind != BNF_FOLD_KIND_NONE)
			continue;
		if (r->graph[0])
			snprintf(where, sizeof(where), " [in %s]", r->graph);
		if (r->kind == BNF_FOLD_KIND_LOWERED)
			say("BatchNormalization '%s': lowered to %s '%s' and Add '%s' (%s)%s",
			    r->bn_name, r->target_op, r->target_name, r->bn_name,
			    bnf_fold_kind_name(r->kind), where);
		else if (r->kind != BNF_FOLD_KIND_NONE)
			say("BatchNormalization '%s': folded into %s '%s' (%s)%s", r->bn_name,
			    r->target_op, r->target_name, bnf_fold_kind_name(r->kind), where);
		else
			say("BatchNormalization '%s': kept (%s): %s%s", r->bn_name,
			    bnf_keep_reason_code(r->reason), r->detail, where);
	}
	/* Mul/Add/Sub/Div by constants after a layer: only with -v. */
	for (i = 0; verbose && i < rep->n_affine; i++) {
		const struct bnf_bn_record *r = &rep->affine[i];
		char where[600] = "";
		if (r->graph[0])
			snprintf(where, sizeof(where), " [in %s]", r->graph);
		if (r->kind != BNF_FOLD_KIND_NONE)
			say("%s '%s': folded into %s '%s' (%s)%s", r->op_type, r->bn_name, r->target_op,
			    r->target_name, bnf_fold_kind_name(r->kind), where);
		else
			say("%s '%s': kept (%s): %s%s", r->op_type, r->bn_name,
			    bnf_keep_reason_code(r->reason), r->detail, where);
	}
}

static void print_summary(const struct bnf_fold_report *rep, size_t in_size, size_t out_size)
{
	char kinds[160] = "", a[32], b[32];
	size_t k, used = 0;

	for (k = 1; k < BNF_FOLD_KIND_COUNT; k++) {
		if (!rep->by_kind[k] || k == BNF_FOLD_KIND_AFFINE || k == BNF_FOLD_KIND_LOWERED)
			continue;
		used += (size_t)snprintf(kinds + used, sizeof(kinds) - used, "%s%s %zu",
					 used ? ", " : " (", bnf_fold_kind_name((enum bnf_fold_kind)k),
					 rep->by_kind[k]);
		if (used >= sizeof(kinds))
			break;
	}
	if (used && used + 1 < sizeof(kinds))
		strcat(kinds, ")");
	used = strlen(kinds);
	if (rep->n_lowered)
		used += (size_t)snprintf(kinds + used, sizeof(kinds) - used, ", lowered %zu to Mul + Add",
					 rep->n_lowered);
	if (rep->n_affine_folded && used < sizeof(kinds))
		snprintf(kinds + used, sizeof(kinds) - used, " and %zu affine node%s",
			 rep->n_affine_folded, rep->n_affine_folded == 1 ? "" : "s");
	format_size((double)in_size, a, sizeof(a));
	format_size((double)out_size, b, sizeof(b));
	say("folded %zu of %zu BatchNormalization nodes%s; %zu nodes and %zu initializers "
	    "removed; %s -> %s",
	    rep->n_folded, rep->n_records, kinds, rep->nodes_removed, rep->initializers_removed, a,
	    b);
}

static void print_output_checks(const struct bnf_verify_report *vr, const char *a_label,
				const char *b_label)
{
	size_t i;
	for (i = 0; i < vr->n_outputs; i++) {
		const struct bnf_output_check *o = &vr->outputs[i];
		say("output '%s': max abs err %.2g, max rel err %.2g, normalised err %.2g%s", o->name,
		    o->max_abs, o->max_rel, o->norm_err, o->pass ? "" : " FAILED");
		if (o->nan_a || o->nan_b)
			say("output '%s': %zu NaN or infinite values in the %s, %zu in the %s", o->name,
			    o->nan_a, a_label, o->nan_b, b_label);
		if (!o->pass && o->n_bad)
			say("output '%s': %zu of %zu values outside the tolerance", o->name, o->n_bad,
			    o->n_elements);
	}
}

static void print_fold_checks(const struct bnf_verify_report *vr, int verbose)
{
	size_t i;
	for (i = 0; i < vr->n_folds; i++) {
		const struct bnf_fold_check *f = &vr->folds[i];
		char what[400];
		/* A BN by its name; a Mul/Add/Sub/Div by its op and name. */
		if (f->op_type)
			snprintf(what, sizeof(what), "%s '%s'", f->op_type, f->bn_name);
		else
			snprintf(what, sizeof(what), "'%s'", f->bn_name);
		if (f->note) {
			if (verbose || !vr->whole_graph)
				say("fold of %s into %s: not checked: %s", what, f->target, f->note);
			continue;
		}
		if (verbose || !f->pass)
			say("fold of %s into %s: folded vs float64 max abs err %.2g, rel %.2g; "
			    "original vs float64 abs %.2g, rel %.2g%s",
			    what, f->target, f->folded_abs, f->folded_rel, f->orig_abs, f->orig_rel,
			    f->pass ? "" : " FAILED");
	}
}

/* The whole-graph check holds every weight of a model while it runs, and
 * runs both models: skip it (BNF_ERR_UNSUPPORTED, the reason in err) when
 * their weights alone pass the --check-memory budget, and let the evaluator
 * refuse activations beyond it. */
static int compare_within_budget(const struct cli *cli, const Onnx__ModelProto *orig,
				 const Onnx__ModelProto *folded, struct bnf_verify_report *vr,
				 struct bnf_error *err)
{
	struct bnf_verify_options vo = cli->verify;
	size_t need = bnf_model_eval_bytes(orig), more = bnf_model_eval_bytes(folded);
	char a[32], b[32];
	int rc;

	need = more > SIZE_MAX - need ? SIZE_MAX : need + more;
	format_size((double)need, a, sizeof(a));
	format_size((double)cli->check_memory, b, sizeof(b));
	if (cli->check_memory && need > cli->check_memory) {
		memset(vr, 0, sizeof(*vr));
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
				"the weights of both models need %s, above the --check-memory "
				"budget of %s",
				a, b);
	}
	if (cli->check_memory && (!vo.max_bytes || vo.max_bytes > cli->check_memory))
		vo.max_bytes = cli->check_memory;
	rc = bnf_compare_models(orig, folded, &vo, vr, err);
	if (rc == BNF_ERR_NOMEM && cli->check_memory) {
		bnf_error_prefix(err, "above the --check-memory budget of %s", b);
		rc = BNF_ERR_UNSUPPORTED;
	}
	return rc;
}

/* The check of a fold: the whole graph when the evaluator supports every
 * operator, and each folded pair in any case. Returns 1 when verified. */
static int verify_fold(const struct cli *cli, const Onnx__ModelProto *orig,
		       const Onnx__ModelProto *folded, const struct bnf_fold_report *rep,
		       struct bnf_verify_report *vr, int *usable)
{
	struct bnf_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	*usable = 1;
	rc = compare_within_budget(cli, orig, folded, vr, &err);
	if (rc == BNF_ERR_UNSUPPORTED) {
		snprintf(vr->fallback, sizeof(vr->fallback), "%s", err.msg);
		vr->pass = 1;
	} else if (rc != BNF_OK) {
		say("check: %s", err.msg);
		*usable = 0;
		return 0;
	}
	rc = bnf_verify_folds(orig, folded, rep, &cli->verify, vr, &err);
	if (rc != BNF_OK) {
		say("check: %s", err.msg);
		*usable = 0;
		return 0;
	}
	if (!vr->whole_graph) {
		if (!cli->quiet)
			say("whole-graph check skipped: %s; checking each fold instead", vr->fallback);
		if (vr->n_unchecked)
			vr->pass = 0; /* neither proof ran for some fold */
	}
	if (cli->verbose || !vr->pass)
		print_output_checks(vr, "original", "folded model");
	print_fold_checks(vr, cli->verbose);
	return vr->pass;
}

static void print_verified(const struct bnf_verify_report *vr)
{
	if (vr->whole_graph)
		say("verified: %d sample%s, max abs err %.2g, max rel err %.2g (graph)", vr->samples,
		    vr->samples == 1 ? "" : "s", vr->max_abs, vr->max_rel);
	else
		say("verified: %zu fold%s, max abs err %.2g, max rel err %.2g (per fold)",
		    vr->n_folds, vr->n_folds == 1 ? "" : "s", vr->max_abs, vr->max_rel);
}

/* What a fold or check run gathers for its messages and the JSON report. */
struct run_state {
	struct bnf_model model;
	struct bnf_fold_report rep;
	struct bnf_verify_report vr;
	struct bnf_train_report train;
	struct bnf_lint_report lint;
	struct cli_facts facts;
	double phase_start;
};

static void run_state_init(struct run_state *st, const struct cli *cli, const char *mode)
{
	size_t k;

	memset(st, 0, sizeof(*st));
	for (k = 0; k < CLI_PHASE_COUNT; k++)
		st->facts.phase_ms[k] = -1;
	st->facts.mode = mode;
	st->facts.input = cli->input;
	st->facts.levels = cli->levels;
}

static void phase_begin(struct run_state *st, const struct cli *cli, const char *label)
{
	st->phase_start = cli_now_ms();
	if (!cli->quiet)
		cli_progress_begin(label);
}

static void phase_end(struct run_state *st, enum cli_phase phase)
{
	cli_progress_end();
	st->facts.phase_ms[phase] = cli_now_ms() - st->phase_start;
}

/* Size, hash and counts of the model just read. */
static void note_input(struct run_state *st, const struct cli *cli)
{
	st->facts.input_size = st->model.size;
	if (cli->json)
		cli_sha256_bytes(st->model.bytes, st->model.size, st->facts.input_sha256);
	cli_count_model(st->model.proto, &st->facts.nodes_before, &st->facts.initializers_before);
	st->facts.nodes_after = st->facts.nodes_before;
	st->facts.initializers_after = st->facts.initializers_before;
}

/* The output as written: its size, and its hash when a report wants it. */
static void note_output(struct run_state *st, const struct cli *cli, size_t size, int changed)
{
	st->facts.output = cli->output;
	st->facts.output_size = size;
	if (!cli->json)
		return;
	if (strcmp(cli->output, "-") != 0)
		cli_sha256_file(cli->output, st->facts.output_sha256);
	else if (changed)
		cli_sha256_model(st->model.proto, st->facts.output_sha256);
	else
		memcpy(st->facts.output_sha256, st->facts.input_sha256, 65);
}

static void print_train(const struct cli *cli, const struct bnf_train_report *t)
{
	size_t i;
	for (i = 0; i < t->n_nodes; i++) {
		const struct bnf_train_node *n = &t->nodes[i];
		if (!n->converted || cli->verbose)
			say("%s '%s': %s%s%s%s", n->op, n->node, n->detail, n->graph[0] ? " [in " : "",
			    n->graph, n->graph[0] ? "]" : "");
	}
}

/* Print the findings that are not ignored; returns how many count as
 * errors. */
static size_t print_findings(const struct cli *cli, const struct bnf_lint_report *lint)
{
	size_t i, errors = 0, warnings = 0;

	for (i = 0; i < lint->n_findings; i++) {
		const struct bnf_finding *f = &lint->findings[i];
		enum cli_finding_level level = cli->levels[f->code];
		char where[600] = "";

		if (level == CLI_FINDING_LEVEL_IGNORED)
			continue;
		if (level == CLI_FINDING_LEVEL_WARNING)
			warnings++;
		else
			errors++;
		if (level == CLI_FINDING_LEVEL_WARNING && cli->quiet)
			continue;
		if (f->graph[0])
			snprintf(where, sizeof(where), " [in %s]", f->graph);
		say("%s: %s '%s'%s: %s%s", bnf_finding_code_name(f->code), f->op, f->node, where,
		    f->message, level == CLI_FINDING_LEVEL_WARNING ? " (warning only)" : "");
	}
	if (!cli->quiet) {
		if (errors + warnings == 0)
			say("check: no findings");
		else
			say("check: %zu finding%s (%zu error%s, %zu warning%s)", errors + warnings,
			    errors + warnings == 1 ? "" : "s", errors, errors == 1 ? "" : "s", warnings,
			    warnings == 1 ? "" : "s");
	}
	return errors;
}

/* Write the JSON report when one was asked for; returns the exit code,
 * which becomes 2 when the report cannot be written. */
static int finish_json(const struct cli *cli, struct run_state *st, int rc)
{
	struct bnf_error err;
	char *text;

	if (!cli->json)
		return rc;
	memset(&err, 0, sizeof(err));
	st->facts.exit_code = rc;
	text = cli_report_json(&st->facts, BNF_VERSION);
	if (!text) {
		say("out of memory");
		return EXIT_CODE_UNUSABLE;
	}
	if (bnf_model_write_bytes(cli->json, (const uint8_t *)text, strlen(text), &err) != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
	}
	free(text);
	return rc;
}

/* Lint the model in memory (the input, or the folded result whose folds
 * rep describes); returns -1 to go on, or an exit code. */
static int lint_step(const struct cli *cli, struct run_state *st, const struct bnf_fold_report *rep)
{
	struct bnf_lint_options lo;
	struct bnf_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	lo.folded = rep;
	phase_begin(st, cli, "checking the graph");
	rc = bnf_lint_model(st->model.proto, &lo, &st->lint, &err);
	phase_end(st, CLI_PHASE_LINT);
	if (rc != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	st->facts.lint = &st->lint;
	return print_findings(cli, &st->lint) > 0 ? EXIT_CODE_CHECK_FAILED : -1;
}

/* --check MODEL: lint, write nothing. The fold then runs on the model in
 * memory as an analysis, for the table of -v and the report. */
static int run_check(const struct cli *cli)
{
	struct run_state st;
	struct bnf_fold_options opt;
	struct bnf_error err;
	int rc = EXIT_CODE_OK, r;

	run_state_init(&st, cli, "check");
	memset(&opt, 0, sizeof(opt));
	memset(&err, 0, sizeof(err));
	phase_begin(&st, cli, "reading");
	r = read_valid_model(cli->input, cli->ext, &st.model, &err);
	phase_end(&st, CLI_PHASE_READ);
	if (r != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	note_input(&st, cli);
	r = lint_step(cli, &st, NULL);
	if (r >= 0)
		rc = r;
	if (rc == EXIT_CODE_UNUSABLE || (!cli->verbose && !cli->json))
		goto out;
	if (bnf_fold_model(st.model.proto, &opt, &st.rep, &err) != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	st.facts.fold = &st.rep;
	if (cli->verbose)
		cli_print_bn_table(&st.rep, 0);
out:
	rc = finish_json(cli, &st, rc);
	bnf_lint_report_free(&st.lint);
	bnf_fold_report_free(&st.rep);
	bnf_model_release(&st.model);
	return rc;
}

/* A second, independent tree of model (the check's reference), or NULL. */
static Onnx__ModelProto *copy_model(const Onnx__ModelProto *model)
{
	size_t size = onnx__model_proto__get_packed_size(model);
	uint8_t *buf = malloc(size ? size : 1);
	Onnx__ModelProto *copy = NULL;

	if (buf) {
		onnx__model_proto__pack(model, buf);
		copy = onnx__model_proto__unpack(NULL, size, buf);
	}
	free(buf);
	return copy;
}

/* When the output keeps tensors in a data file, the tensors the fold
 * rewrites go straight to it (a temporary file beside the output; an
 * anonymous one for a dry run) instead of piling up in memory. */
static int prepare_spill(const struct cli *cli, const struct bnf_write_plan *plan,
			 size_t in_size, struct bnf_error *err)
{
	char folder[4096];

	if (bnf_data_mode_resolve(plan->mode, plan->input_external, in_size) == BNF_DATA_MODE_INLINE)
		return BNF_OK;
	if (cli->dry_run || !cli->output)
		return bnf_external_spill_open(cli->ext, NULL, plan->threshold, err);
	if (strcmp(cli->output, "-") == 0)
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s has external data, which cannot be written next to <stdout>: "
				"use -o FILE, or --external-data=inline",
				bnf_path_label(cli->input, 0));
	if (bnf_path_folder(cli->output, folder, sizeof(folder)) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", cli->output);
	return bnf_external_spill_open(cli->ext, folder, plan->threshold, err);
}

static int run_fold(const struct cli *cli)
{
	struct run_state st;
	struct bnf_fold_options opt;
	struct bnf_error err;
	Onnx__ModelProto *orig = NULL;
	struct bnf_write_plan plan = cli->plan;
	size_t in_size, out_size = 0, data_size = 0;
	int rc = EXIT_CODE_OK, verified = 0, usable, changed, r, verbatim;

	run_state_init(&st, cli, cli->check ? "fold+check" : "fold");
	memset(&opt, 0, sizeof(opt));
	memset(&err, 0, sizeof(err));
	phase_begin(&st, cli, "reading");
	r = read_valid_model(cli->input, cli->ext, &st.model, &err);
	phase_end(&st, CLI_PHASE_READ);
	if (r != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	note_input(&st, cli);
	/* The unpacked tree holds its own copy of every byte: the file's pages
	 * need not stay resident while folding. */
	bnf_model_release_pages(&st.model);
	in_size = st.model.size + (size_t)bnf_model_external_bytes(st.model.proto);
	plan.input_external = st.model.n_external;
	opt.ext = cli->ext;
	opt.lower_bn = cli->lower_bn;
	if (prepare_spill(cli, &plan, in_size, &err) != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (cli->train_eval) {
		phase_begin(&st, cli, "converting to eval mode");
		r = bnf_train_mode_to_eval(st.model.proto, &st.train, &err);
		phase_end(&st, CLI_PHASE_TRAIN_MODE);
		st.facts.train = &st.train;
		if (r != BNF_OK) {
			say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		if (!cli->quiet)
			print_train(cli, &st.train);
		/* The check's reference is the model in eval mode, before folding. */
		if (st.train.n_converted > 0 && !cli->no_verify && !(orig = copy_model(st.model.proto))) {
			say("out of memory");
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
	}
	phase_begin(&st, cli, "folding");
	r = bnf_fold_model(st.model.proto, &opt, &st.rep, &err);
	phase_end(&st, CLI_PHASE_FOLD);
	if (r != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	st.facts.fold = &st.rep;
	st.facts.folding = 1;
	changed = st.rep.n_changed > 0 || st.train.n_converted > 0;
	if (!cli->quiet) {
		print_records(&st.rep, cli->verbose);
		if (cli->verbose)
			cli_print_bn_table(&st.rep, 1);
	}
	if (st.rep.n_changed > 0 && !cli->no_verify) {
		/* The reference: the input as it was, unpacked a second time. */
		if (!orig)
			bnf_model_unpack_again(&st.model, cli->input, cli->ext, &orig, &err);
		if (!orig) {
			say("out of memory");
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		bnf_model_drop_bytes(&st.model);
		phase_begin(&st, cli, "checking");
		verified = verify_fold(cli, orig, st.model.proto, &st.rep, &st.vr, &usable);
		phase_end(&st, CLI_PHASE_CHECK);
		st.facts.verify = usable ? &st.vr : NULL;
		if (!usable) {
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		if (!verified) {
			rc = EXIT_CODE_CHECK_FAILED;
			if (!cli->force || cli->dry_run) {
				say("check failed: the folded model does not compute what %s does; "
				    "nothing written%s",
				    bnf_path_label(cli->input, 0),
				    cli->dry_run ? "" : " (--force writes it anyway)");
				goto out;
			}
			say("check failed; writing anyway because of --force");
		}
	} else if (changed) {
		bnf_model_drop_bytes(&st.model);
	}
	cli_count_model(st.model.proto, &st.facts.nodes_after, &st.facts.initializers_after);
	if (cli->dry_run) {
		out_size = changed ? onnx__model_proto__get_packed_size(st.model.proto) : in_size;
	} else {
		phase_begin(&st, cli, "writing");
		/* Nothing changed and nothing to move: hand back the input exactly
		 * as it was. Otherwise tensors go where --external-data says. */
		verbatim = !changed && st.model.n_external == 0 &&
			   bnf_data_mode_resolve(plan.mode, 0, in_size) == BNF_DATA_MODE_INLINE;
		if (verbatim)
			r = bnf_model_write_bytes(cli->output, st.model.bytes, st.model.size, &err);
		else
			r = bnf_external_write(cli->ext, st.model.proto, cli->output, &plan,
					       &out_size, &data_size, &err);
		phase_end(&st, CLI_PHASE_WRITE);
		if (r != BNF_OK) {
			say("%s", err.msg);
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		out_size = verbatim ? in_size : out_size + data_size;
		note_output(&st, cli, out_size, changed);
	}
	if (!cli->quiet) {
		print_summary(&st.rep, in_size, out_size);
		if (cli->train_eval)
			say("converted %zu of %zu training-mode node%s to eval mode",
			    st.train.n_converted, st.train.n_nodes, st.train.n_nodes == 1 ? "" : "s");
		if (verified)
			print_verified(&st.vr);
		else if (st.rep.n_changed > 0 && cli->no_verify)
			say("not verified (--no-verify)");
	}
	if (cli->check && (r = lint_step(cli, &st, &st.rep)) >= 0 && rc != EXIT_CODE_UNUSABLE)
		rc = r;
out:
	rc = finish_json(cli, &st, rc);
	if (orig)
		onnx__model_proto__free_unpacked(orig, NULL);
	bnf_lint_report_free(&st.lint);
	bnf_train_report_free(&st.train);
	bnf_verify_report_free(&st.vr);
	bnf_fold_report_free(&st.rep);
	bnf_model_release(&st.model);
	return rc;
}

/* A graph output name as a file name: path separators become '_'. */
static void output_file_name(const char *dir, const char *name, char *buf, size_t len)
{
	size_t used = (size_t)snprintf(buf, len, "%s/", dir), i;
	for (i = 0; name[i] && used + 4 < len; i++)
		buf[used++] = (name[i] == '/' || name[i] == '\\') ? '_' : name[i];
	if (i == 0 && used + 4 < len)
		buf[used++] = '_';
	snprintf(buf + used, len - used, ".pb");
}

static int run_model_mode(const struct cli *cli)
{
	struct bnf_model model;
	struct bnf_named_tensors in;
	struct bnf_eval_options eo;
	struct bnf_tensor **outs = NULL;
	struct bnf_error err;
	char op[128], node[256];
	size_t i, n_out = 0;
	int rc = EXIT_CODE_OK;

	memset(&err, 0, sizeof(err));
	memset(&in, 0, sizeof(in));
	if (read_valid_model(cli->input, cli->ext, &model, &err) != BNF_OK) {
		say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	if (bnf_eval_find_unsupported(model.proto, op, sizeof(op), node, sizeof(node))) {
		say("%s: unsupported operator %s (node '%s')", bnf_path_label(cli->input, 0), op, node);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (bnf_inputs_make(model.proto, &cli->inputs, cli->verify.seed, 0, &in, &err) != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	memset(&eo, 0, sizeof(eo));
	eo.threads = cli->verify.threads;
	eo.max_bytes = cli->verify.max_bytes;
	eo.ext = cli->ext;
	if (bnf_eval_run(model.proto, &eo, in.n, (const char *const *)in.names,
			 (struct bnf_tensor *const *)in.tensors, &outs, &err) != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	n_out = model.proto->graph->n_output;
	for (i = 0; i < n_out; i++) {
		const char *name = model.proto->graph->output[i]->name;
		char path[4096];
		output_file_name(cli->output_dir, name ? name : "", path, sizeof(path));
		if (bnf_tensor_save_pb(outs[i], name ? name : "", path, &err) != BNF_OK) {
			say("%s", err.msg);
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		if (cli->verbose)
			say("wrote output '%s' to %s", name ? name : "", path);
	}
out:
	if (outs) {
		for (i = 0; i < n_out; i++)
			bnf_tensor_free(outs[i]);
		free(outs);
	}
	bnf_named_tensors_free(&in);
	bnf_model_release(&model);
	return rc;
}

static int compare_mode(const struct cli *cli)
{
	struct bnf_model a, b;
	struct bnf_verify_report vr;
	struct bnf_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	memset(&vr, 0, sizeof(vr));
	memset(&b, 0, sizeof(b));
	if (read_valid_model(cli->input, cli->ext, &a, &err) != BNF_OK) {
		say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	if (read_valid_model(cli->second, cli->ext, &b, &err) != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (bnf_compare_models(a.proto, b.proto, &cli->verify, &vr, &err) != BNF_OK) {
		say("cannot compare %s and %s: %s", bnf_path_label(cli->input, 0), cli->second, err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (!cli->quiet || !vr.pass)
		print_output_checks(&vr, bnf_path_label(cli->input, 0), cli->second);
	if (vr.pass) {
		if (!cli->quiet)
			say("equal within tolerance: %d sample%s, max abs err %.2g, max rel err %.2g",
			    vr.samples, vr.samples == 1 ? "" : "s", vr.max_abs, vr.max_rel);
		rc = EXIT_CODE_OK;
	} else {
		say("different: %s does not compute what %s does", cli->second,
		    bnf_path_label(cli->input, 0));
		rc = EXIT_CODE_CHECK_FAILED;
	}
out:
	bnf_verify_report_free(&vr);
	bnf_model_release(&a);
	bnf_model_release(&b);
	return rc;
}

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* The whole-graph check's default budget: half the physical memory, at
 * most 4 GiB. */
static size_t default_check_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	unsigned long long half = 0, cap = 4ULL << 30;

	if (pages > 0 && page > 0)
		half = (unsigned long long)pages * (unsigned long long)page / 2;
	if (half == 0 || half > cap)
		half = cap;
	return half > SIZE_MAX ? SIZE_MAX : (size_t)half;
}

int main(int argc, char **argv)
{
	struct cli cli;
	int rc;

	/* A closed pipe on stdout must be an error we report, not a silent
	 * death by signal. */
	signal(SIGPIPE, SIG_IGN);
	memset(&cli, 0, sizeof(cli));
	cli.verify.inputs = &cli.inputs;
	cli.verify.samples = 2;
	cli.verify.seed = 1;
	cli.verify.threads = default_threads();
	cli.verify.atol = -1;
	cli.verify.rtol = -1;
	cli.plan.threshold = 1024; /* as the ONNX tools' size_threshold */
	cli.check_memory = default_check_memory();
	cli.ext = bnf_external_new();
	cli.verify.ext = cli.ext;
	if (!cli.ext) {
		say("out of memory");
		return EXIT_CODE_UNUSABLE;
	}
	rc = parse_args(argc, argv, &cli);
	if (rc < 0) {
		if (cli.mode == CLI_MODE_RUN)
			rc = run_model_mode(&cli);
		else if (cli.mode == CLI_MODE_COMPARE)
			rc = compare_mode(&cli);
		else if (cli.check && !cli.output && !cli.dry_run)
			rc = run_check(&cli);
		else
			rc = run_fold(&cli);
	}
	bnf_input_spec_free(&cli.inputs);
	bnf_external_free(cli.ext);
	return rc;
}
