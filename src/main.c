/*
 * The bnfold command line: parses options, runs the fold, writes the model
 * and owns every message and exit code (0 success, 1 a check failed,
 * 2 usage error or unusable input or output).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"
#include "model.h"

#ifndef BNF_VERSION
#define BNF_VERSION "0.1.0"
#endif

enum exit_code {
	EXIT_CODE_OK = 0,
	EXIT_CODE_CHECK_FAILED = 1,
	EXIT_CODE_UNUSABLE = 2,
};

struct cli {
	const char *input;
	const char *output;
	int dry_run;
	int verbose;
	int quiet;
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
	      "Fold eval-mode BatchNormalization nodes of an ONNX model into the Conv,\n"
	      "Gemm or MatMul in front of them and write the leaner model.\n"
	      "INPUT and OUTPUT may be '-' for standard input and output.\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE   where to write the folded model\n"
	      "  -n, --dry-run       analyse and report, write nothing\n"
	      "  -v, --verbose       one line per BatchNormalization: folded into what,\n"
	      "                      or kept and why\n"
	      "  -q, --quiet         print errors only\n"
	      "  -h, --help          show this help and exit\n"
	      "  -V, --version       show the version and exit\n"
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
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:nvqhV", options, NULL)) != -1) {
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
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no input model given");
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	cli->input = argv[optind];
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

static void print_records(const struct bnf_fold_report *rep)
{
	size_t i;
	for (i = 0; i < rep->n_records; i++) {
		const struct bnf_bn_record *r = &rep->records[i];
		char where[600] = "";
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

static int run_fold(const struct cli *cli)
{
	struct bnf_model model;
	struct bnf_fold_report rep;
	struct bnf_fold_options opt;
	struct bnf_error err;
	size_t in_size, out_size = 0;
	int rc = EXIT_CODE_OK;

	memset(&rep, 0, sizeof(rep));
	memset(&opt, 0, sizeof(opt));
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
	if (cli->verbose)
		print_records(&rep);
	if (rep.n_folded > 0)
		bnf_model_drop_bytes(&model);
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
	if (!cli->quiet)
		print_summary(&rep, in_size, out_size);
out:
	bnf_fold_report_free(&rep);
	bnf_model_release(&model);
	return rc;
}

int main(int argc, char **argv)
{
	struct cli cli;
	int rc;

	/* A closed pipe on stdout must be an error we report, not a silent
	 * death by signal. */
	signal(SIGPIPE, SIG_IGN);
	memset(&cli, 0, sizeof(cli));
	rc = parse_args(argc, argv, &cli);
	if (rc >= 0)
		return rc;
	return run_fold(&cli);
}
