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

#include "eval/eval.h"
#include "fold.h"
#include "inputs.h"
#include "model.h"
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
	struct bnf_input_spec inputs;
	struct bnf_verify_options verify;
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
	      "\n"
	      "Other modes:\n"
	      "      --run MODEL       evaluate MODEL in eval mode; write each output to\n"
	      "                        DIR/<output name>.pb (--output-dir DIR)\n"
	      "      --compare A B     run two models on the same inputs and compare outputs\n"
	      "\n"
	      "  -h, --help            show this help and exit\n"
	      "  -V, --version         show the version and exit\n"
	      "\n"
	      "Exit status: 0 success, 1 the model was processed but a check failed,\n"
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
};

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
	if (!cli->output && !cli->dry_run)
		return usage_error("no output given (use -o FILE, or -n for a dry run)");
	if (cli->verbose && cli->quiet)
		return usage_error("--verbose and --quiet cannot be combined");
	return -1;
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
		if (r->kind != BNF_FOLD_KIND_NONE)
			say("BatchNormalization '%s': folded into %s '%s' (%s)%s", r->bn_name,
			    r->target_op, r->target_name, bnf_fold_kind_name(r->kind), where);
		else
			say("BatchNormalization '%s': kept (%s): %s%s", r->bn_name,
			    bnf_keep_reason_code(r->reason), r->detail, where);
	}
}

static void print_summary(const struct bnf_fold_report *rep, size_t in_size, size_t out_size)
{
	char kinds[160] = "", a[32], b[32];
	size_t k, used = 0;

	for (k = 1; k < BNF_FOLD_KIND_COUNT; k++) {
		if (!rep->by_kind[k])
			continue;
		used += (size_t)snprintf(kinds + used, sizeof(kinds) - used, "%s%s %zu",
					 used ? ", " : " (", bnf_fold_kind_name((enum bnf_fold_kind)k),
					 rep->by_kind[k]);
		if (used >= sizeof(kinds))
			break;
	}
	if (used && used + 1 < sizeof(kinds))
		strcat(kinds, ")");
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
		if (f->note) {
			if (verbose || !vr->whole_graph)
				say("fold of '%s' into %s: not checked: %s", f->bn_name, f->target, f->note);
			continue;
		}
		if (verbose || !f->pass)
			say("fold of '%s' into %s: folded vs float64 max abs err %.2g, rel %.2g; "
			    "original vs float64 abs %.2g, rel %.2g%s",
			    f->bn_name, f->target, f->folded_abs, f->folded_rel, f->orig_abs, f->orig_rel,
			    f->pass ? "" : " FAILED");
	}
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
	rc = bnf_compare_models(orig, folded, &cli->verify, vr, &err);
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

static int run_fold(const struct cli *cli)
{
	struct bnf_model model;
	struct bnf_fold_report rep;
	struct bnf_fold_options opt;
	struct bnf_verify_report vr;
	struct bnf_error err;
	Onnx__ModelProto *orig = NULL;
	size_t in_size, out_size = 0;
	int rc = EXIT_CODE_OK, verified = 0, usable;

	memset(&rep, 0, sizeof(rep));
	memset(&opt, 0, sizeof(opt));
	memset(&vr, 0, sizeof(vr));
	memset(&err, 0, sizeof(err));
	if (bnf_model_read(cli->input, &model, &err) != BNF_OK) {
		say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	in_size = model.size;
	if (bnf_fold_model(model.proto, &opt, &rep, &err) != BNF_OK) {
		say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (!cli->quiet)
		print_records(&rep, cli->verbose);
	if (rep.n_folded > 0 && !cli->no_verify) {
		/* The reference: the input as it was, unpacked a second time. */
		orig = onnx__model_proto__unpack(NULL, model.size, model.bytes);
		if (!orig) {
			say("out of memory");
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		bnf_model_drop_bytes(&model);
		verified = verify_fold(cli, orig, model.proto, &rep, &vr, &usable);
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
	} else if (rep.n_folded > 0) {
		bnf_model_drop_bytes(&model);
	}
	if (cli->dry_run) {
		out_size = rep.n_folded ? onnx__model_proto__get_packed_size(model.proto) : in_size;
	} else if (rep.n_folded == 0) {
		/* Nothing changed: hand back the input exactly as it was. */
		if (bnf_model_write_bytes(cli->output, model.bytes, model.size, &err) != BNF_OK) {
			say("%s", err.msg);
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		out_size = in_size;
	} else if (bnf_model_write(cli->output, model.proto, &out_size, &err) != BNF_OK) {
		say("%s", err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (!cli->quiet) {
		print_summary(&rep, in_size, out_size);
		if (verified)
			print_verified(&vr);
		else if (rep.n_folded > 0 && cli->no_verify)
			say("not verified (--no-verify)");
	}
out:
	if (orig)
		onnx__model_proto__free_unpacked(orig, NULL);
	bnf_verify_report_free(&vr);
	bnf_fold_report_free(&rep);
	bnf_model_release(&model);
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
	if (bnf_model_read(cli->input, &model, &err) != BNF_OK) {
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
	if (bnf_model_read(cli->input, &a, &err) != BNF_OK) {
		say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	if (bnf_model_read(cli->second, &b, &err) != BNF_OK) {
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
	rc = parse_args(argc, argv, &cli);
	if (rc < 0) {
		if (cli.mode == CLI_MODE_RUN)
			rc = run_model_mode(&cli);
		else if (cli.mode == CLI_MODE_COMPARE)
			rc = compare_mode(&cli);
		else
			rc = run_fold(&cli);
	}
	bnf_input_spec_free(&cli.inputs);
	return rc;
}
