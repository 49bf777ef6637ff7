/*
 * The bnfold command line: runs the fold, the check, the lint, --run and
 * --compare on the options cli_args.c parsed, writes the model
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

#include "cli/report.h"
#include "eval/eval.h"
#include "io/external.h"
#include "fold/fold.h"
#include "check/inputs.h"
#include "check/lint.h"
#include "util/mem.h"
#include "util/path.h"
#include "io/model.h"
#include "util/tempfiles.h"
#include "fold/trainmode.h"
#include "io/validate.h"
#include "check/verify.h"

#include "cli/cli.h"

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
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
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
		if (r->verbosity > verbose)
			continue; /* -vv */
		if (r->graph[0])
			snprintf(where, sizeof(where), " [in %s]", r->graph);
		if (r->kind != BNF_FOLD_KIND_NONE)
			say("%s '%s': folded into %s '%s' (%s)%s", r->op_type, r->bn_name,
			    r->target_op, r->target_name, bnf_fold_kind_name(r->kind), where);
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
		used += (size_t)snprintf(
		    kinds + used, sizeof(kinds) - used, "%s%s %zu", used ? ", " : " (",
		    bnf_fold_kind_name((enum bnf_fold_kind)k), rep->by_kind[k]);
		if (used >= sizeof(kinds))
			break;
	}
	if (used && used + 1 < sizeof(kinds))
		strcat(kinds, ")");
	used = strlen(kinds);
	if (rep->n_lowered)
		used += (size_t)snprintf(kinds + used, sizeof(kinds) - used,
		                         ", lowered %zu to Mul + Add", rep->n_lowered);
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
		say("output '%s': max abs err %.2g, max rel err %.2g, normalised err %.2g%s",
		    o->name, o->max_abs, o->max_rel, o->norm_err, o->pass ? "" : " FAILED");
		if (o->nan_a || o->nan_b)
			say("output '%s': %zu NaN or infinite values in the %s, %zu in the %s",
			    o->name, o->nan_a, a_label, o->nan_b, b_label);
		if (!o->pass && o->n_bad)
			say("output '%s': %zu of %zu values outside the tolerance", o->name,
			    o->n_bad, o->n_elements);
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
				say("fold of %s into %s: not checked: %s", what, f->target,
				    f->note);
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
                                 int *over_budget, struct bnf_error *err)
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
		*over_budget = 1;
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "the weights of both models need %s, above the --check-memory "
		                "budget of %s",
		                a, b);
	}
	if (cli->check_memory && (!vo.max_bytes || vo.max_bytes > cli->check_memory))
		vo.max_bytes = cli->check_memory;
	rc = bnf_compare_models(orig, folded, &vo, vr, err);
	if (rc == BNF_ERR_NOMEM && cli->check_memory) {
		*over_budget = 1;
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
	struct bnf_verify_options per_fold = cli->verify;
	struct bnf_error err;
	int rc, over_budget = 0;

	memset(&err, 0, sizeof(err));
	*usable = 1;
	rc = compare_within_budget(cli, orig, folded, vr, &over_budget, &err);
	if (rc == BNF_ERR_UNSUPPORTED) {
		snprintf(vr->fallback, sizeof(vr->fallback), "%s", err.msg);
		vr->pass = 1;
	} else if (rc != BNF_OK) {
		say("check: %s", err.msg);
		*usable = 0;
		return 0;
	}
	/* Memory is short: the evaluations of each fold one at a time. */
	if (over_budget)
		per_fold.threads = 1;
	rc = bnf_verify_folds(orig, folded, rep, &per_fold, vr, &err);
	if (rc != BNF_OK) {
		say("check: %s", err.msg);
		*usable = 0;
		return 0;
	}
	if (!vr->whole_graph) {
		if (!cli->quiet)
			say("whole-graph check skipped: %s; checking each fold instead",
			    vr->fallback);
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
		say("verified: %d sample%s, max abs err %.2g, max rel err %.2g (graph)",
		    vr->samples, vr->samples == 1 ? "" : "s", vr->max_abs, vr->max_rel);
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
			say("%s '%s': %s%s%s%s", n->op, n->node, n->detail,
			    n->graph[0] ? " [in " : "", n->graph, n->graph[0] ? "]" : "");
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
			    errors + warnings == 1 ? "" : "s", errors, errors == 1 ? "" : "s",
			    warnings, warnings == 1 ? "" : "s");
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
static int lint_step(const struct cli *cli, struct run_state *st, const struct bnf_fold_report *rep,
                     struct bnf_fold_report *probe_report)
{
	struct bnf_lint_options lo;
	struct bnf_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	memset(&lo, 0, sizeof(lo));
	lo.folded = rep;
	lo.ext = cli->ext;
	lo.probe_report = probe_report;
	if (!rep && st->model.bytes && st->model.n_external == 0) {
		lo.bytes = st->model.bytes; /* the model is the file as read */
		lo.size = st->model.size;
		lo.bytes_file_backed = st->model.mapped;
	}
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

/* The read phase of a fold or check run: read, validate and note the
 * input (its size and hash for the report). Prints the error. */
static int read_input(const struct cli *cli, struct run_state *st)
{
	struct bnf_error err;
	int r;

	memset(&err, 0, sizeof(err));
	phase_begin(st, cli, "reading");
	r = read_valid_model(cli->input, cli->ext, &st->model, &err);
	phase_end(st, CLI_PHASE_READ);
	if (r != BNF_OK) {
		say("%s", err.msg);
		return r;
	}
	note_input(st, cli);
	if (cli->verbose)
		cli_print_model_notes(st->model.proto, bnf_path_label(cli->input, 0));
	return BNF_OK;
}

/* --check MODEL: lint, write nothing. The lint folds a copy of the model
 * to see what could fold; that report is the table of -v and the report's. */
static int run_check(const struct cli *cli)
{
	struct run_state st;
	int rc = EXIT_CODE_OK, r;

	run_state_init(&st, cli, "check");
	if (read_input(cli, &st) != BNF_OK) {
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	/* The lint's fold probe is the analysis of the table and the report. */
	r = lint_step(cli, &st, NULL, &st.rep);
	if (r >= 0)
		rc = r;
	if (rc == EXIT_CODE_UNUSABLE)
		goto out;
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
static int prepare_spill(const struct cli *cli, const struct bnf_write_plan *plan, size_t in_size,
                         struct bnf_error *err)
{
	char folder[4096];

	if (bnf_data_mode_resolve(plan->mode, plan->input_external, in_size) ==
	    BNF_DATA_MODE_INLINE)
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
	struct bnf_unpack_job ref_job;
	struct bnf_staged_write staged;
	size_t in_size, out_size = 0, data_size = 0;
	int rc = EXIT_CODE_OK, verified = 0, usable, changed, r, verbatim, early = 0;

	memset(&ref_job, 0, sizeof(ref_job));
	memset(&staged, 0, sizeof(staged));

	run_state_init(&st, cli, cli->check ? "fold+check" : "fold");
	memset(&opt, 0, sizeof(opt));
	memset(&err, 0, sizeof(err));
	if (read_input(cli, &st) != BNF_OK) {
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	/* The check's reference, the input as it is, is unpacked a second time
	 * (with copies of the weights, which the evaluator wants aligned) on
	 * another core while this tree is folded. Without a check, a tree that
	 * copied the file's bytes (one that borrows them keeps them) lets the
	 * file's pages go while folding. */
	if (!cli->no_verify && !cli->train_eval)
		bnf_model_unpack_start(&st.model, &ref_job);
	else
		bnf_model_release_pages(&st.model);
	in_size = st.model.size + (size_t)bnf_model_external_bytes(st.model.proto);
	plan.input_external = st.model.n_external;
	opt.ext = cli->ext;
	opt.lower_bn = cli->lower_bn;
	opt.freeze_initializer_inputs = cli->freeze_inputs;
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
		if (st.train.n_converted > 0 && !cli->no_verify &&
		    !(orig = copy_model(st.model.proto))) {
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
		if (!orig && bnf_model_unpack_finish(&ref_job, &st.model, cli->input, cli->ext,
		                                     &orig, &err) != BNF_OK) {
			say("%s", err.msg);
			rc = EXIT_CODE_UNUSABLE;
			goto out;
		}
		bnf_model_drop_bytes(&st.model);
		/* The output is written to its temporary file while the check
		 * runs, and renamed into place only if it passes. */
		early = !cli->dry_run &&
		        bnf_external_write_is_plain(st.model.proto, &plan, cli->output) &&
		        bnf_model_write_start(cli->output, st.model.proto, &staged, &err) == BNF_OK;
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
		bnf_model_unpack_cancel(&ref_job);
		bnf_model_drop_bytes(&st.model);
	}
	cli_count_model(st.model.proto, &st.facts.nodes_after, &st.facts.initializers_after);
	if (cli->dry_run) {
		/* What would be written: the model and its external tensors. */
		out_size = changed ? onnx__model_proto__get_packed_size(st.model.proto) +
		                         (size_t)bnf_model_external_bytes(st.model.proto)
		                   : in_size;
	} else {
		phase_begin(&st, cli, "writing");
		/* Nothing changed and nothing to move: hand back the input exactly
		 * as it was. Otherwise tensors go where --external-data says. */
		verbatim = !changed && st.model.n_external == 0 &&
		           bnf_data_mode_resolve(plan.mode, 0, in_size) == BNF_DATA_MODE_INLINE;
		if (early)
			r = bnf_model_write_commit(&staged, &out_size, &err);
		else if (verbatim)
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
			    st.train.n_converted, st.train.n_nodes,
			    st.train.n_nodes == 1 ? "" : "s");
		if (verified)
			print_verified(&st.vr);
		else if (st.rep.n_changed > 0 && cli->no_verify)
			say("not verified (--no-verify)");
	}
	if (cli->check && (r = lint_step(cli, &st, &st.rep, NULL)) >= 0 && rc != EXIT_CODE_UNUSABLE)
		rc = r;
out:
	bnf_model_write_abort(&staged);
	bnf_model_unpack_cancel(&ref_job);
	rc = finish_json(cli, &st, rc);
	if (orig)
		onnx__model_proto__free_unpacked(orig, &bnf_large_allocator);
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
	if (cli->verbose)
		cli_print_model_notes(model.proto, bnf_path_label(cli->input, 0));
	if (bnf_eval_find_unsupported(model.proto, op, sizeof(op), node, sizeof(node))) {
		say("%s: unsupported operator %s (node '%s')", bnf_path_label(cli->input, 0), op,
		    node);
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
		say("cannot compare %s and %s: %s", bnf_path_label(cli->input, 0), cli->second,
		    err.msg);
		rc = EXIT_CODE_UNUSABLE;
		goto out;
	}
	if (!cli->quiet || !vr.pass)
		print_output_checks(&vr, bnf_path_label(cli->input, 0), cli->second);
	if (vr.pass) {
		if (!cli->quiet)
			say("equal within tolerance: %d sample%s, max abs err %.2g, max rel err "
			    "%.2g",
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

/* A run ended by a signal takes its temporary files with it, then dies of
 * the signal as it would have. */
static void on_fatal_signal(int sig)
{
	bnf_temp_remove_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Tensor bytes are read from mappings of the model and data files while
 * bnfold runs: a file cut short by someone else meanwhile faults on the
 * missing pages. Say so and stop as for any unreadable input. */
static char bus_error_msg[512] = "bnfold: an input file was truncated while bnfold was "
                                 "reading it; nothing written\n";

static void on_bus_error(int sig)
{
	(void)sig;
	bnf_temp_remove_all();
	if (write(STDERR_FILENO, bus_error_msg, strlen(bus_error_msg)) < 0) {
		/* nothing more to do: the exit status says it */
	}
	_exit(EXIT_CODE_UNUSABLE);
}

int main(int argc, char **argv)
{
	struct cli cli;
	int rc;

	/* A closed pipe on stdout must be an error we report, not a silent
	 * death by signal. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGBUS, on_bus_error);
	bnf_mem_init();
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
	rc = cli_parse_args(argc, argv, &cli);
	if (cli.input)
		snprintf(
		    bus_error_msg, sizeof(bus_error_msg),
		    "bnfold: '%s' (or a data file of it) was truncated while bnfold was reading "
		    "it; nothing written\n",
		    bnf_path_label(cli.input, 0));
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
