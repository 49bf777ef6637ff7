/*
 * The command line's modes: fold (with its check and optional lint), the
 * deploy gate alone, --run and --compare. Each turns the parsed options
 * into a library call, renders the result as human lines and the JSON
 * report, and maps it to an exit code.
 */
#include "cli/modes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/inputs.h"
#include "check/run.h"
#include "cli/human.h"
#include "eval/eval.h"
#include "util/path.h"
#include "util/sha256.h"

/* Progress and the time of each phase, as the pipeline reports them. */
struct phase_clock {
	const struct cli *cli;
	struct cli_facts *facts;
	double start;
};

static const char *const phase_labels[BNF_RUN_PHASE_COUNT] = {
    [BNF_RUN_PHASE_READ] = "reading",
    [BNF_RUN_PHASE_TRAIN_MODE] = "converting to eval mode",
    [BNF_RUN_PHASE_FOLD] = "folding",
    [BNF_RUN_PHASE_CHECK] = "checking",
    [BNF_RUN_PHASE_LINT] = "checking the graph",
    [BNF_RUN_PHASE_WRITE] = "writing",
};

static void on_phase(void *arg, enum bnf_run_phase phase, int begin)
{
	struct phase_clock *pc = arg;
	double ms;

	if (begin) {
		pc->start = cli_now_ms();
		if (!pc->cli->quiet)
			cli_progress_begin(phase_labels[phase]);
		return;
	}
	cli_progress_end();
	/* A phase may come twice (the check: before and after the fold). */
	ms = cli_now_ms() - pc->start;
	pc->facts->phase_ms[phase] =
	    pc->facts->phase_ms[phase] > 0 ? pc->facts->phase_ms[phase] + ms : ms;
}

static void facts_init(struct cli_facts *facts, const struct cli *cli, const char *mode)
{
	size_t k;

	memset(facts, 0, sizeof(*facts));
	for (k = 0; k < BNF_RUN_PHASE_COUNT; k++)
		facts->phase_ms[k] = -1;
	facts->mode = mode;
	facts->input = cli->input;
	facts->levels = cli->levels;
}

/* The run's figures as the JSON report reads them (borrowed from res). */
static void facts_from_result(struct cli_facts *f, const struct cli *cli,
                              const struct bnf_run_result *res)
{
	f->input_size = res->model.size;
	memcpy(f->input_sha256, res->input_sha256, sizeof(f->input_sha256));
	memcpy(f->output_sha256, res->output_sha256, sizeof(f->output_sha256));
	f->nodes_before = res->nodes_before;
	f->initializers_before = res->initializers_before;
	f->nodes_after = res->fold_ran ? res->nodes_after : res->nodes_before;
	f->initializers_after = res->fold_ran ? res->initializers_after : res->initializers_before;
	f->fold = res->fold_ran || res->lint_ran ? &res->fold : NULL;
	f->folding = res->fold_ran;
	f->train = res->train_ran ? &res->train : NULL;
	f->verify = res->check_ran ? &res->verify : NULL;
	f->lint = res->lint_ran ? &res->lint : NULL;
	if (res->written) {
		f->output = cli->output;
		f->output_size = res->out_size;
	}
}

int cli_write_report(const char *path, const char *text)
{
	struct bnf_error err;
	int bad;

	memset(&err, 0, sizeof(err));
	if (strcmp(path, "-") == 0) {
		bad = fputs(text, stdout) == EOF;
		bad = fflush(stdout) != 0 || bad || ferror(stdout);
		if (bad) {
			cli_say("cannot write the JSON report to <stdout>");
			return -1;
		}
	} else if (bnf_model_write_bytes(path, (const uint8_t *)text, strlen(text), &err) !=
	           BNF_OK) {
		cli_say("%s", err.msg);
		return -1;
	}
	return 0;
}

/* Write the JSON report when one was asked for; returns the exit code,
 * which becomes 2 when the report cannot be written. */
static int finish_json(const struct cli *cli, struct cli_facts *facts, int rc)
{
	char *text;

	if (!cli->json)
		return rc;
	facts->exit_code = rc;
	text = cli_report_json(facts, BNF_VERSION);
	if (!text) {
		cli_say("out of memory");
		return EXIT_CODE_UNUSABLE;
	}
	if (cli_write_report(cli->json, text) != 0)
		rc = EXIT_CODE_UNUSABLE;
	free(text);
	return rc;
}

static void options_from_cli(struct bnf_run_options *opt, const struct cli *cli,
                             struct phase_clock *pc)
{
	memset(opt, 0, sizeof(*opt));
	opt->input = cli->input;
	opt->output = cli->dry_run ? NULL : cli->output;
	opt->no_verify = cli->no_verify;
	opt->force = cli->force;
	opt->lower_bn = cli->lower_bn;
	opt->freeze_initializer_inputs = cli->freeze_inputs;
	opt->train_eval = cli->train_eval;
	opt->lint = cli->check;
	opt->hash = cli->json != NULL;
	opt->ext = cli->ext;
	opt->plan = cli->plan;
	opt->verify = cli->verify;
	opt->check_memory = cli->check_memory;
	opt->on_phase = on_phase;
	opt->arg = pc;
}

/* The lines of a fold run, in the order its phases ran. */
static void print_fold_run(const struct cli *cli, const struct bnf_run_result *res)
{
	const struct bnf_verify_report *vr = &res->verify;

	if (cli->verbose && res->model.proto)
		cli_print_model_notes(res->model.proto, bnf_path_label(cli->input, 0));
	if (res->train_ran && !cli->quiet)
		cli_print_train(&res->train, cli->verbose);
	if (res->fold_ran && !cli->quiet) {
		cli_print_records(&res->fold, cli->verbose);
		if (cli->verbose)
			cli_print_bn_table(&res->fold, 1);
	}
	if (!res->check_ran)
		return;
	if (res->folded_broke)
		cli_say("check: the folded model fails where the original runs: %s", vr->fallback);
	else if (!vr->whole_graph && !cli->quiet)
		cli_say("whole-graph check %s: %s; checking each fold instead",
		        vr->inconclusive ? "inconclusive" : "skipped", vr->fallback);
	if (cli->verbose || !vr->pass)
		cli_print_output_checks(vr, "original", "folded model");
	cli_print_fold_checks(vr, cli->verbose);
	if (!vr->pass)
		cli_print_where(vr, "the folded model");
	if (res->forced)
		cli_say("check failed; writing anyway because of --force");
	else if (!res->verified)
		cli_say("check failed: the folded model does not compute what %s does; "
		        "nothing written%s",
		        bnf_path_label(cli->input, 0),
		        cli->dry_run ? "" : " (--force writes it anyway)");
}

static void print_fold_end(const struct cli *cli, const struct bnf_run_result *res)
{
	if (cli->quiet)
		return;
	cli_print_summary(&res->fold, res->in_size, res->out_size);
	if (cli->train_eval)
		cli_say("converted %zu of %zu training-mode node%s to eval mode",
		        res->train.n_converted, res->train.n_nodes,
		        res->train.n_nodes == 1 ? "" : "s");
	if (res->verified)
		cli_print_verified(&res->verify, cli->verbose);
	else if (res->fold.n_changed > 0 && cli->no_verify)
		cli_say("not verified (--no-verify)");
}

/* Fold one model as the single-model form does, its lines on stderr.
 * say_error: an unusable model's reason is printed too (else it stays in
 * res->err). Fills facts and res (the caller frees res); returns the exit
 * code. */
static int fold_model(const struct cli *cli, struct cli_facts *facts, struct bnf_run_result *res,
                      int say_error)
{
	struct bnf_run_options opt;
	struct phase_clock pc = {cli, facts, 0};
	enum bnf_run_verdict verdict;
	int rc;

	facts_init(facts, cli, cli->check ? "fold+check" : "fold");
	options_from_cli(&opt, cli, &pc);
	verdict = bnf_run_fold(&opt, res);
	print_fold_run(cli, res);
	rc = verdict == BNF_RUN_VERDICT_CHECK_FAILED ? EXIT_CODE_CHECK_FAILED : EXIT_CODE_OK;
	if (verdict == BNF_RUN_VERDICT_UNUSABLE) {
		if (say_error)
			cli_say("%s", res->err.msg);
		rc = EXIT_CODE_UNUSABLE;
	} else if (verdict == BNF_RUN_VERDICT_OK || res->forced) {
		print_fold_end(cli, res);
		if (res->lint_ran && cli_print_findings(&res->lint, cli->levels, cli->quiet) > 0)
			rc = EXIT_CODE_CHECK_FAILED;
	}
	facts_from_result(facts, cli, res);
	return rc;
}

/* The deploy gate alone on one model, as fold_model. */
static int check_model(const struct cli *cli, struct cli_facts *facts, struct bnf_run_result *res,
                       int say_error)
{
	struct bnf_run_options opt;
	struct phase_clock pc = {cli, facts, 0};
	int rc = EXIT_CODE_OK;

	facts_init(facts, cli, "check");
	options_from_cli(&opt, cli, &pc);
	if (bnf_run_lint(&opt, res) == BNF_RUN_VERDICT_UNUSABLE) {
		if (say_error)
			cli_say("%s", res->err.msg);
		rc = EXIT_CODE_UNUSABLE;
	} else {
		if (cli->verbose)
			cli_print_model_notes(res->model.proto, bnf_path_label(cli->input, 0));
		if (cli_print_findings(&res->lint, cli->levels, cli->quiet) > 0)
			rc = EXIT_CODE_CHECK_FAILED;
		if (cli->verbose)
			cli_print_bn_table(&res->fold, 0);
	}
	facts_from_result(facts, cli, res);
	return rc;
}

int cli_mode_fold(const struct cli *cli)
{
	struct bnf_run_result res;
	struct cli_facts facts;
	int rc = fold_model(cli, &facts, &res, 1);

	rc = finish_json(cli, &facts, rc);
	bnf_run_result_free(&res);
	return rc;
}

int cli_mode_check(const struct cli *cli)
{
	struct bnf_run_result res;
	struct cli_facts facts;
	int rc = check_model(cli, &facts, &res, 1);

	rc = finish_json(cli, &facts, rc);
	bnf_run_result_free(&res);
	return rc;
}

/* What one model came to, for the summary of a many-model run. */
static void outcome_from_result(struct cli_outcome *o, const struct cli *cli,
                                const struct bnf_run_result *res, int rc, int lint_only)
{
	size_t i;

	o->exit_code = rc;
	o->lint_ran = res->lint_ran;
	if (res->fold_ran || res->lint_ran) {
		o->batchnorms = res->fold.n_records;
		o->folded = res->fold.n_folded;
		for (i = 0; i < res->fold.n_records; i++)
			if (res->fold.records[i].kind == BNF_FOLD_KIND_NONE)
				o->kept[res->fold.records[i].reason]++;
	}
	for (i = 0; res->lint_ran && i < res->lint.n_findings; i++) {
		enum cli_finding_level level = cli->levels[res->lint.findings[i].code];
		if (level == CLI_FINDING_LEVEL_ERROR)
			o->findings_errors++;
		else if (level == CLI_FINDING_LEVEL_WARNING)
			o->findings_warnings++;
	}
	if (rc == EXIT_CODE_UNUSABLE) {
		o->status = CLI_MODEL_STATUS_ERROR;
		snprintf(o->error, sizeof(o->error), "%s", res->err.msg);
	} else if (lint_only)
		o->status = CLI_MODEL_STATUS_LINTED;
	else if (res->forced)
		o->status = CLI_MODEL_STATUS_FORCED;
	else if (res->verdict == BNF_RUN_VERDICT_CHECK_FAILED)
		o->status = CLI_MODEL_STATUS_CHECK_FAILED;
	else if (!res->changed)
		o->status = CLI_MODEL_STATUS_UNCHANGED;
	else if (res->verified)
		o->status = CLI_MODEL_STATUS_VERIFIED;
	else
		o->status = CLI_MODEL_STATUS_UNVERIFIED;
}

int cli_mode_one(const struct cli *cli, struct cli_outcome *out, char **json)
{
	struct bnf_run_result res;
	struct cli_facts facts;
	int lint_only = cli->check && !cli->output && !cli->dry_run;
	double start = cli_now_ms();
	int rc;

	memset(out, 0, sizeof(*out));
	rc = lint_only ? check_model(cli, &facts, &res, 0) : fold_model(cli, &facts, &res, 0);
	outcome_from_result(out, cli, &res, rc, lint_only);
	out->ms = cli_now_ms() - start;
	facts.exit_code = rc;
	facts.outcome = out;
	*json = cli->json ? cli_report_entry_json(&facts) : NULL;
	bnf_run_result_free(&res);
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

/* Each graph output of model as DIR/<name>.pb. */
static int save_outputs(const struct cli *cli, const Onnx__GraphProto *g,
                        struct bnf_tensor *const *outs, struct bnf_error *err)
{
	size_t i;

	for (i = 0; i < g->n_output; i++) {
		const char *name = g->output[i]->name ? g->output[i]->name : "";
		char path[4096];
		output_file_name(cli->output_dir, name, path, sizeof(path));
		if (bnf_tensor_save_pb(outs[i], name, path, err) != BNF_OK)
			return err->status;
		if (cli->verbose)
			cli_say("wrote output '%s' to %s", name, path);
	}
	return BNF_OK;
}

int cli_mode_run(const struct cli *cli)
{
	struct bnf_model model;
	struct bnf_named_tensors in;
	struct bnf_input_shapes shapes;
	struct bnf_eval_options eo;
	struct bnf_tensor **outs = NULL;
	struct bnf_error err;
	char op[1024], node[256];
	size_t i, n_out = 0, n_missing;
	int rc = EXIT_CODE_UNUSABLE;
	double t0 = cli_now_ms(), t1;

	memset(&err, 0, sizeof(err));
	memset(&in, 0, sizeof(in));
	memset(&shapes, 0, sizeof(shapes));
	if (bnf_run_read_model(cli->input, cli->ext, &model, &err) != BNF_OK) {
		cli_say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	if (cli->verbose)
		cli_print_model_notes(model.proto, bnf_path_label(cli->input, 0));
	n_missing = bnf_eval_find_unsupported(model.proto, op, sizeof(op), node, sizeof(node));
	if (n_missing) {
		cli_say("%s: unsupported operator%s %s (%snode '%s')",
		        bnf_path_label(cli->input, 0), n_missing > 1 ? "s" : "", op,
		        n_missing > 1 ? "first at " : "", node);
		goto out;
	}
	memset(&eo, 0, sizeof(eo));
	eo.threads = cli->verify.threads;
	eo.max_bytes = cli->verify.max_bytes;
	eo.ext = cli->ext;
	if (bnf_inputs_choose(model.proto, &cli->inputs, &eo, &shapes, &err) != BNF_OK ||
	    bnf_inputs_make_shaped(&shapes, cli->verify.seed, 0, &in, &err) != BNF_OK) {
		cli_say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		goto out;
	}
	if (!cli->quiet)
		cli_print_input_shapes(&shapes, cli->verbose);
	t1 = cli_now_ms();
	if (bnf_eval_run(model.proto, &eo, in.n, (const char *const *)in.names,
	                 (struct bnf_tensor *const *)in.tensors, &outs, &err) != BNF_OK) {
		cli_say("%s: %s", bnf_path_label(cli->input, 0), err.msg);
		goto out;
	}
	if (cli->verbose)
		cli_say("evaluated in %.1f ms (read and inputs %.1f ms)", cli_now_ms() - t1,
		        t1 - t0);
	n_out = model.proto->graph->n_output;
	if (save_outputs(cli, model.proto->graph, outs, &err) != BNF_OK) {
		cli_say("%s", err.msg);
		goto out;
	}
	rc = EXIT_CODE_OK;
out:
	if (outs) {
		for (i = 0; i < n_out; i++)
			bnf_tensor_free(outs[i]);
		free(outs);
	}
	bnf_named_tensors_free(&in);
	bnf_input_shapes_free(&shapes);
	bnf_model_release(&model);
	return rc;
}

/* The sizes and hashes of the two models, for the report. */
static void note_model(const struct bnf_model *m, size_t *size, char *sha256)
{
	*size = m->size;
	if (m->bytes)
		bnf_sha256_of(m->bytes, m->size, sha256);
}

/* Compare the two models (read into a and b) and say what was found:
 * the exit code; f->verdict set, and f->error (pointing into err). */
static int compare_read(const struct cli *cli, struct bnf_model *a, struct bnf_model *b,
                        struct bnf_verify_report *vr, struct cli_compare_facts *f,
                        struct bnf_error *err)
{
	struct bnf_verify_options vo = cli->verify;
	const char *label = bnf_path_label(cli->input, 0);

	vo.pair_folds = 1; /* the candidate's nodes that replace chains, as folds */
	if (bnf_compare_models(a->proto, b->proto, &vo, vr, err) != BNF_OK) {
		f->error = err->msg;
		if (vr->second_failed) {
			cli_say("different: %s fails where %s runs: %s", cli->second, label,
			        err->msg);
			f->verdict = "different";
			return EXIT_CODE_CHECK_FAILED;
		}
		cli_say("cannot compare %s and %s: %s", label, cli->second, err->msg);
		f->verdict = "not-comparable";
		return EXIT_CODE_UNUSABLE;
	}
	f->verify = vr;
	if (!cli->quiet || !vr->pass) {
		cli_print_output_checks(vr, label, cli->second);
		cli_print_fold_checks(vr, cli->verbose);
	}
	if (vr->pass) {
		if (!cli->quiet)
			cli_print_equal(vr, cli->verbose);
		f->verdict = "equal";
		return EXIT_CODE_OK;
	}
	cli_print_where(vr, cli->second);
	cli_say("different: %s does not compute what %s does", cli->second, label);
	f->verdict = "different";
	return EXIT_CODE_CHECK_FAILED;
}

int cli_mode_compare(const struct cli *cli)
{
	struct bnf_model a, b;
	struct bnf_verify_report vr;
	struct cli_compare_facts f;
	struct bnf_error err;
	int rc = EXIT_CODE_UNUSABLE;
	char *text;

	memset(&err, 0, sizeof(err));
	memset(&vr, 0, sizeof(vr));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&f, 0, sizeof(f));
	f.reference = cli->input;
	f.candidate = cli->second;
	f.verdict = "error";
	if (bnf_run_read_model(cli->input, cli->ext, &a, &err) != BNF_OK ||
	    bnf_run_read_model(cli->second, cli->ext, &b, &err) != BNF_OK) {
		cli_say("%s", err.msg);
		f.error = err.msg;
	} else {
		if (cli->json) {
			note_model(&a, &f.reference_size, f.reference_sha256);
			note_model(&b, &f.candidate_size, f.candidate_sha256);
		}
		rc = compare_read(cli, &a, &b, &vr, &f, &err);
	}
	f.exit_code = rc;
	if (cli->json) {
		text = cli_report_compare_json(&f, BNF_VERSION);
		if (!text)
			cli_say("out of memory");
		if (!text || cli_write_report(cli->json, text) != 0)
			rc = EXIT_CODE_UNUSABLE;
		free(text);
	}
	bnf_verify_report_free(&vr);
	bnf_model_release(&a);
	bnf_model_release(&b);
	return rc;
}
