/*
 * The command line's reports: assembles the --json document (schema 1 for
 * one model, schema 2 for many, documented in bnfold(1): add fields, never
 * rename or remove them without raising "schema"), prints the -v table,
 * and shows progress on a terminal.
 */
#include "cli/report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph/graph.h"
#include "util/json.h"
#include "util/sha256.h"
#include "io/tensor_data.h"
#include "util/thread.h"
#include "io/validate.h"

static const char *const phase_names[BNF_RUN_PHASE_COUNT] = {
    [BNF_RUN_PHASE_READ] = "read", [BNF_RUN_PHASE_TRAIN_MODE] = "train_mode",
    [BNF_RUN_PHASE_FOLD] = "fold", [BNF_RUN_PHASE_CHECK] = "check",
    [BNF_RUN_PHASE_LINT] = "lint", [BNF_RUN_PHASE_WRITE] = "write",
};

static const char *const level_names[] = {"error", "warning", "ignored"};

double cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the JSON report ---- */

/* Milliseconds to the microsecond, as every report writes them. */
static double rounded_ms(double ms)
{
	return (double)(long long)(ms * 1000) / 1000;
}

static void json_file(struct bnf_json *j, const char *key, const char *path, size_t size,
                      const char *sha)
{
	bnf_json_object_begin(j, key);
	bnf_json_string(j, "path", path);
	bnf_json_integer(j, "size", (long long)size);
	bnf_json_string(j, "sha256", sha[0] ? sha : NULL);
	bnf_json_object_end(j);
}

static void json_counts(struct bnf_json *j, const char *key, size_t nodes, size_t inits)
{
	bnf_json_object_begin(j, key);
	bnf_json_integer(j, "nodes", (long long)nodes);
	bnf_json_integer(j, "initializers", (long long)inits);
	bnf_json_object_end(j);
}

static void json_batchnorms(struct bnf_json *j, const struct cli_facts *f)
{
	size_t i;

	bnf_json_array_begin(j, "batchnorms");
	for (i = 0; f->fold && i < f->fold->n_records; i++) {
		const struct bnf_bn_record *r = &f->fold->records[i];
		int folded = r->kind != BNF_FOLD_KIND_NONE;

		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "name", r->bn_name);
		bnf_json_string(j, "graph", r->graph);
		bnf_json_string(j, "fate", !folded ? "kept" : f->folding ? "folded" : "foldable");
		if (folded) {
			bnf_json_object_begin(j, "target");
			bnf_json_string(j, "op", r->target_op);
			bnf_json_string(j, "name", r->target_name);
			bnf_json_object_end(j);
			bnf_json_string(j, "fold_kind", bnf_fold_kind_name(r->kind));
			bnf_json_null(j, "reason");
			bnf_json_null(j, "detail");
		} else {
			bnf_json_null(j, "target");
			bnf_json_null(j, "fold_kind");
			bnf_json_string(j, "reason", bnf_keep_reason_code(r->reason));
			bnf_json_string(j, "detail", r->detail);
		}
		if (folded || r->max_scale != 0.0) {
			bnf_json_number(j, "max_scale", r->max_scale);
			bnf_json_integer(j, "max_scale_channel", (long long)r->max_scale_channel);
		} else {
			bnf_json_null(j, "max_scale");
			bnf_json_null(j, "max_scale_channel");
		}
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
}

static void json_train_mode(struct bnf_json *j, const struct bnf_train_report *t)
{
	size_t i;

	if (!t) {
		bnf_json_null(j, "train_mode");
		return;
	}
	bnf_json_array_begin(j, "train_mode");
	for (i = 0; i < t->n_nodes; i++) {
		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "op", t->nodes[i].op);
		bnf_json_string(j, "node", t->nodes[i].node);
		bnf_json_string(j, "graph", t->nodes[i].graph);
		bnf_json_bool(j, "converted", t->nodes[i].converted);
		bnf_json_string(j, "detail", t->nodes[i].detail);
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
}

/* The check's input shapes: per input its shape, and per dimension the
 * declared symbol and where the value came from. */
static void json_input_shapes(struct bnf_json *j, const struct bnf_input_shapes *s)
{
	size_t i;
	int d;

	bnf_json_array_begin(j, "inputs");
	for (i = 0; i < s->n; i++) {
		const struct bnf_input_shape *in = &s->inputs[i];
		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "name", in->name);
		bnf_json_string(j, "dtype", bnf_dtype_label(in->dtype));
		bnf_json_array_begin(j, "shape");
		for (d = 0; d < in->rank; d++)
			bnf_json_integer(j, NULL, (long long)in->dims[d]);
		bnf_json_array_end(j);
		bnf_json_array_begin(j, "symbols");
		for (d = 0; d < in->rank; d++)
			bnf_json_string(j, NULL, in->symbol[d][0] ? in->symbol[d] : NULL);
		bnf_json_array_end(j);
		bnf_json_array_begin(j, "sources");
		for (d = 0; d < in->rank; d++)
			bnf_json_string(j, NULL,
			                bnf_dim_source_name((enum bnf_dim_source)in->source[d]));
		bnf_json_array_end(j);
		bnf_json_array_begin(j, "origins");
		for (d = 0; d < in->rank; d++)
			bnf_json_string(j, NULL, in->origin[d][0] ? in->origin[d] : NULL);
		bnf_json_array_end(j);
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
	if (!s->probes) {
		bnf_json_null(j, "input_probe");
		return;
	}
	bnf_json_object_begin(j, "input_probe");
	bnf_json_integer(j, "probes", s->probes);
	bnf_json_number(j, "ms", (double)(long long)(s->probe_ms * 1000) / 1000);
	bnf_json_bool(j, "passed", s->probe_passed);
	bnf_json_integer(j, "stride", (long long)s->stride);
	bnf_json_object_end(j);
}

/* The error model's verdict on one output or fold (errmodel.h). */
static void json_verdict(struct bnf_json *j, const struct bnf_err_verdict *v)
{
	bnf_json_number(j, "ratio", v->ratio);
	bnf_json_number(j, "ratio_norm", v->ratio_norm);
	bnf_json_number(j, "ratio_elementwise", v->ratio_max);
	bnf_json_number(j, "limit_norm", v->limit_norm);
	bnf_json_number(j, "limit_max_abs", v->limit_max);
	bnf_json_number(j, "budget_used", v->used);
}

static void json_outputs(struct bnf_json *j, const struct bnf_verify_report *v)
{
	size_t i;

	bnf_json_array_begin(j, "outputs");
	for (i = 0; i < v->n_outputs; i++) {
		const struct bnf_output_check *o = &v->outputs[i];
		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "name", o->name);
		bnf_json_string(j, "dtype", bnf_dtype_label(o->dtype));
		bnf_json_bool(j, "pass", o->pass);
		bnf_json_number(j, "max_abs", o->max_abs);
		bnf_json_number(j, "max_rel", o->max_rel);
		bnf_json_number(j, "norm_err", o->norm_err);
		bnf_json_integer(j, "elements", (long long)o->n_elements);
		bnf_json_integer(j, "outside_tolerance", (long long)o->n_bad);
		bnf_json_integer(j, "nonfinite_original", (long long)o->nan_a);
		bnf_json_integer(j, "nonfinite_folded", (long long)o->nan_b);
		bnf_json_integer(j, "reference_samples", o->ref_samples);
		if (o->ref_samples) {
			bnf_json_number(j, "exact_max_abs", o->exact_abs);
			bnf_json_number(j, "exact_norm_err", o->exact_norm);
			bnf_json_number(j, "original_max_abs", o->original_abs);
			bnf_json_number(j, "original_norm_err", o->original_norm);
			json_verdict(j, &o->verdict);
		}
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
}

static void json_folds(struct bnf_json *j, const struct bnf_verify_report *v)
{
	size_t i;

	bnf_json_array_begin(j, "folds");
	for (i = 0; i < v->n_folds; i++) {
		const struct bnf_fold_check *c = &v->folds[i];
		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "batchnorm", c->bn_name);
		bnf_json_string(j, "target", c->target);
		bnf_json_bool(j, "checked", c->note == NULL);
		bnf_json_bool(j, "pass", c->pass);
		bnf_json_number(j, "folded_abs", c->folded_abs);
		bnf_json_number(j, "folded_rel", c->folded_rel);
		bnf_json_number(j, "original_abs", c->orig_abs);
		bnf_json_number(j, "original_rel", c->orig_rel);
		bnf_json_string(j, "note", c->note);
		if (!c->note) {
			int d;
			bnf_json_string(j, "dtype", bnf_dtype_label(c->dtype));
			bnf_json_bool(j, "stored_checked", c->stored);
			bnf_json_array_begin(j, "input_shape");
			for (d = 0; d < c->input_rank; d++)
				bnf_json_integer(j, NULL, (long long)c->input_dims[d]);
			bnf_json_array_end(j);
			bnf_json_bool(j, "undilated", c->undilated);
		}
		if (!c->note && c->stored) {
			bnf_json_number(j, "folded_norm_err", c->folded_norm);
			bnf_json_number(j, "original_norm_err", c->orig_norm);
			json_verdict(j, &c->verdict);
		}
		if (!c->note) {
			if (c->weight_ulps >= 0)
				bnf_json_number(j, "weight_ulps", c->weight_ulps);
			else
				bnf_json_null(j, "weight_ulps");
		}
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
}

/* Where a failed check went wrong (null when nothing is named). */
static void json_where(struct bnf_json *j, const struct bnf_verify_report *v)
{
	const struct bnf_divergence *d = &v->diverge;

	if (v->first_failed_fold >= 0 && (size_t)v->first_failed_fold < v->n_folds)
		bnf_json_integer(j, "first_failed_fold", v->first_failed_fold);
	else
		bnf_json_null(j, "first_failed_fold");
	if (!d->found) {
		bnf_json_null(j, "divergence");
		return;
	}
	bnf_json_object_begin(j, "divergence");
	bnf_json_string(j, "value", d->value);
	bnf_json_string(j, "node", d->node);
	bnf_json_string(j, "op", d->op);
	bnf_json_integer(j, "position", (long long)d->position);
	bnf_json_integer(j, "values_compared", (long long)d->n_values);
	bnf_json_number(j, "exact_max_abs", d->exact_abs);
	bnf_json_number(j, "original_max_abs", d->original_abs);
	json_verdict(j, &d->verdict);
	bnf_json_object_end(j);
}

static void json_check(struct bnf_json *j, const struct bnf_verify_report *v)
{
	if (!v) {
		bnf_json_null(j, "check");
		return;
	}
	bnf_json_object_begin(j, "check");
	bnf_json_bool(j, "pass", v->pass);
	bnf_json_bool(j, "whole_graph", v->whole_graph);
	bnf_json_string(j, "fallback", v->whole_graph || !v->fallback[0] ? NULL : v->fallback);
	bnf_json_integer(j, "samples", v->samples);
	bnf_json_number(j, "max_abs", v->max_abs);
	bnf_json_number(j, "max_rel", v->max_rel);
	bnf_json_string(j, "criterion",
	                v->whole_graph && v->fixed_tolerance ? "tolerance" : "error-model");
	bnf_json_number(j, "k", BNF_PROOF_K);
	bnf_json_number(j, "floor_ulps", BNF_PROOF_FLOOR_ULPS);
	bnf_json_number(j, "weight_ulps_limit", BNF_PROOF_WEIGHT_ULPS);
	bnf_json_integer(j, "reference_samples", v->ref_samples);
	bnf_json_number(j, "ratio", v->ratio);
	bnf_json_string(j, "ratio_rounding", bnf_rounding_name(v->ratio_dtype));
	bnf_json_number(j, "budget_used", v->used);
	bnf_json_number(j, "exact_max_abs", v->exact_abs);
	if (v->weight_ulps >= 0)
		bnf_json_number(j, "weight_ulps", v->weight_ulps);
	else
		bnf_json_null(j, "weight_ulps");
	json_where(j, v);
	json_outputs(j, v);
	json_folds(j, v);
	json_input_shapes(j, &v->inputs);
	bnf_json_object_end(j);
}

static void json_findings(struct bnf_json *j, const struct cli_facts *f)
{
	size_t i;

	if (!f->lint) {
		bnf_json_null(j, "findings");
		return;
	}
	bnf_json_array_begin(j, "findings");
	for (i = 0; i < f->lint->n_findings; i++) {
		const struct bnf_finding *x = &f->lint->findings[i];
		enum cli_finding_level level = f->levels[x->code];
		if (level == CLI_FINDING_LEVEL_IGNORED)
			continue;
		bnf_json_object_begin(j, NULL);
		bnf_json_string(j, "code", bnf_finding_code_name(x->code));
		bnf_json_string(j, "level", level_names[level]);
		bnf_json_string(j, "op", x->op);
		bnf_json_string(j, "node", x->node);
		bnf_json_string(j, "graph", x->graph);
		bnf_json_string(j, "message", x->message);
		bnf_json_object_end(j);
	}
	bnf_json_array_end(j);
}

/* The members of one model's report, from "input" to "timings_ms". */
static void json_model(struct bnf_json *j, const struct cli_facts *f)
{
	size_t k;

	json_file(j, "input", f->input, f->input_size, f->input_sha256);
	if (f->output)
		json_file(j, "output", f->output, f->output_size, f->output_sha256);
	else
		bnf_json_null(j, "output");
	bnf_json_object_begin(j, "counts");
	json_counts(j, "before", f->nodes_before, f->initializers_before);
	json_counts(j, "after", f->nodes_after, f->initializers_after);
	bnf_json_object_end(j);
	bnf_json_object_begin(j, "summary");
	bnf_json_integer(j, "batchnorms", f->fold ? (long long)f->fold->n_records : 0);
	bnf_json_integer(j, "folded", f->fold && f->folding ? (long long)f->fold->n_folded : 0);
	bnf_json_integer(j, "foldable", f->fold ? (long long)f->fold->n_folded : 0);
	bnf_json_object_begin(j, "by_kind");
	for (k = 1; k < BNF_FOLD_KIND_COUNT; k++)
		bnf_json_integer(j, bnf_fold_kind_name((enum bnf_fold_kind)k),
		                 f->fold ? (long long)f->fold->by_kind[k] : 0);
	bnf_json_object_end(j);
	bnf_json_integer(j, "nodes_removed",
	                 f->fold && f->folding ? (long long)f->fold->nodes_removed : 0);
	bnf_json_integer(j, "initializers_removed",
	                 f->fold && f->folding ? (long long)f->fold->initializers_removed : 0);
	bnf_json_integer(j, "converted_to_eval", f->train ? (long long)f->train->n_converted : 0);
	bnf_json_object_end(j);
	json_batchnorms(j, f);
	json_train_mode(j, f->train);
	json_check(j, f->verify);
	json_findings(j, f);
	bnf_json_object_begin(j, "timings_ms");
	for (k = 0; k < BNF_RUN_PHASE_COUNT; k++) {
		if (f->phase_ms[k] < 0)
			bnf_json_null(j, phase_names[k]);
		else
			bnf_json_number(j, phase_names[k], rounded_ms(f->phase_ms[k]));
	}
	bnf_json_object_end(j);
}

/* The text of j (a copy), or NULL when building it failed. */
static char *finish(struct bnf_json *j)
{
	const char *text = bnf_json_finish(j);
	char *copy = text ? strdup(text) : NULL;

	bnf_json_free(j);
	return copy;
}

/* The members every schema 1 document starts with. */
static void json_head(struct bnf_json *j, const char *version, const char *mode)
{
	memset(j, 0, sizeof(*j));
	bnf_json_object_begin(j, NULL);
	bnf_json_integer(j, "schema", 1);
	bnf_json_string(j, "tool", "bnfold");
	bnf_json_string(j, "version", version);
	bnf_json_string(j, "mode", mode);
}

char *cli_report_json(const struct cli_facts *f, const char *version)
{
	struct bnf_json j;

	json_head(&j, version, f->mode);
	json_model(&j, f);
	bnf_json_integer(&j, "exit_code", f->exit_code);
	bnf_json_object_end(&j);
	return finish(&j);
}

char *cli_report_compare_json(const struct cli_compare_facts *f, const char *version)
{
	struct bnf_json j;

	json_head(&j, version, "compare");
	json_file(&j, "reference", f->reference, f->reference_size, f->reference_sha256);
	json_file(&j, "candidate", f->candidate, f->candidate_size, f->candidate_sha256);
	bnf_json_string(&j, "verdict", f->verdict);
	bnf_json_string(&j, "error", f->error);
	json_check(&j, f->verify);
	bnf_json_integer(&j, "exit_code", f->exit_code);
	bnf_json_object_end(&j);
	return finish(&j);
}

static const char *const status_names[CLI_MODEL_STATUS_COUNT] = {
    [CLI_MODEL_STATUS_VERIFIED] = "verified",     [CLI_MODEL_STATUS_UNCHANGED] = "unchanged",
    [CLI_MODEL_STATUS_UNVERIFIED] = "unverified", [CLI_MODEL_STATUS_CHECK_FAILED] = "check-failed",
    [CLI_MODEL_STATUS_FORCED] = "forced",         [CLI_MODEL_STATUS_LINTED] = "linted",
    [CLI_MODEL_STATUS_ERROR] = "error",
};

const char *cli_model_status_name(enum cli_model_status status)
{
	return (unsigned)status < CLI_MODEL_STATUS_COUNT ? status_names[status] : "?";
}

char *cli_report_entry_json(const struct cli_facts *f)
{
	const struct cli_outcome *o = f->outcome;
	struct bnf_json j;

	memset(&j, 0, sizeof(j));
	bnf_json_object_begin(&j, NULL);
	json_model(&j, f);
	bnf_json_number(&j, "ms", o ? rounded_ms(o->ms) : 0);
	bnf_json_string(&j, "status", o ? cli_model_status_name(o->status) : NULL);
	bnf_json_string(&j, "error", o && o->status == CLI_MODEL_STATUS_ERROR ? o->error : NULL);
	bnf_json_integer(&j, "exit_code", f->exit_code);
	bnf_json_object_end(&j);
	return finish(&j);
}

char *cli_report_many_json(const char *version, const char *mode, char *const *entries, size_t n,
                           const struct cli_totals *t)
{
	struct bnf_json j;
	size_t i, k;

	memset(&j, 0, sizeof(j));
	bnf_json_object_begin(&j, NULL);
	bnf_json_integer(&j, "schema", 2);
	bnf_json_string(&j, "tool", "bnfold");
	bnf_json_string(&j, "version", version);
	bnf_json_string(&j, "mode", mode);
	bnf_json_array_begin(&j, "models");
	for (i = 0; i < n; i++)
		bnf_json_raw(&j, NULL, entries[i]);
	bnf_json_array_end(&j);
	bnf_json_object_begin(&j, "totals");
	bnf_json_integer(&j, "models", (long long)t->models);
	for (k = 0; k < CLI_MODEL_STATUS_COUNT; k++)
		bnf_json_integer(&j, status_names[k], (long long)t->by_status[k]);
	bnf_json_integer(&j, "with_findings", (long long)t->with_findings);
	bnf_json_integer(&j, "batchnorms", (long long)t->batchnorms);
	bnf_json_integer(&j, "folded", (long long)t->folded);
	bnf_json_number(&j, "ms", rounded_ms(t->ms));
	bnf_json_object_end(&j);
	bnf_json_integer(&j, "exit_code", t->exit_code);
	bnf_json_object_end(&j);
	return finish(&j);
}

/* ---- input shapes ---- */

/* "1x3x48x224" (or "scalar") into buf. */
static void format_dims(const struct bnf_input_shape *in, char *buf, size_t len)
{
	size_t used = 0;
	int d;

	snprintf(buf, len, "scalar");
	for (d = 0; d < in->rank && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? "x" : "",
		                         (long long)in->dims[d]);
}

void cli_print_input_shapes(const struct bnf_input_shapes *shapes, int verbose)
{
	size_t i;

	for (i = 0; i < shapes->n; i++) {
		const struct bnf_input_shape *in = &shapes->inputs[i];
		char dims[160], why[1024] = "";
		size_t used = 0;
		int d;

		for (d = 0; d < in->rank && used < sizeof(why); d++) {
			enum bnf_dim_source src = (enum bnf_dim_source)in->source[d];
			if (src < BNF_DIM_SOURCE_MODEL)
				continue;
			used += (size_t)snprintf(why + used, sizeof(why) - used, "%s",
			                         used ? "; " : "");
			if (in->symbol[d][0] && used < sizeof(why))
				used += (size_t)snprintf(why + used, sizeof(why) - used,
				                         "%s=", in->symbol[d]);
			else if (used < sizeof(why))
				used +=
				    (size_t)snprintf(why + used, sizeof(why) - used, "dim %d=", d);
			/* "224 probed", "1 batch", or what in the model said so. */
			if (used < sizeof(why))
				used += (size_t)snprintf(
				    why + used, sizeof(why) - used, "%lld %s%s",
				    (long long)in->dims[d],
				    in->origin[d][0] ? "from " : bnf_dim_source_name(src),
				    in->origin[d]);
		}
		if (!why[0] && !verbose)
			continue;
		format_dims(in, dims, sizeof(dims));
		fprintf(stderr, "bnfold: input '%s': %s (%s)\n", in->name, dims,
		        why[0] ? why : "as given or declared");
	}
	if (verbose && shapes->probes)
		fprintf(stderr, "bnfold: input shapes: %d shape probe%s%s, total stride %lld\n",
		        shapes->probes, shapes->probes == 1 ? "" : "s",
		        shapes->probe_passed ? "" : " (none passed)", (long long)shapes->stride);
}

/* ---- the -v table ---- */

static int text_width(const char *s)
{
	size_t n = strlen(s);
	return n > 200 ? 200 : (int)n;
}

void cli_print_bn_table(const struct bnf_fold_report *rep, int folding)
{
	static const char *const head[5] = {"BatchNormalization", "fate", "kind", "into / reason",
	                                    "worst scale"};
	char(*cells)[5][160];
	int width[5], c;
	size_t i;

	if (rep->n_records == 0)
		return;
	cells = calloc(rep->n_records, sizeof(*cells));
	if (!cells)
		return;
	for (c = 0; c < 5; c++)
		width[c] = text_width(head[c]);
	for (i = 0; i < rep->n_records; i++) {
		const struct bnf_bn_record *r = &rep->records[i];
		int folded = r->kind != BNF_FOLD_KIND_NONE;

		snprintf(cells[i][0], sizeof(cells[i][0]), "%s%s%s", r->graph,
		         r->graph[0] ? "/" : "", r->bn_name);
		snprintf(cells[i][1], sizeof(cells[i][1]), "%s",
		         !folded   ? "kept"
		         : folding ? "folded"
		                   : "foldable");
		snprintf(cells[i][2], sizeof(cells[i][2]), "%s",
		         folded ? bnf_fold_kind_name(r->kind) : "-");
		if (folded)
			snprintf(cells[i][3], sizeof(cells[i][3]), "%s '%s'", r->target_op,
			         r->target_name);
		else
			snprintf(cells[i][3], sizeof(cells[i][3]), "%s",
			         bnf_keep_reason_code(r->reason));
		if (folded || r->max_scale != 0.0)
			snprintf(cells[i][4], sizeof(cells[i][4]), "%.4g (channel %zu)",
			         r->max_scale, r->max_scale_channel);
		else
			snprintf(cells[i][4], sizeof(cells[i][4]), "-");
		for (c = 0; c < 5; c++)
			if (text_width(cells[i][c]) > width[c])
				width[c] = text_width(cells[i][c]);
	}
	/* Every stderr line starts with "bnfold: ", the table's too. */
	fprintf(stderr, "bnfold:   %-*s  %-*s  %-*s  %-*s  %s\n", width[0], head[0], width[1],
	        head[1], width[2], head[2], width[3], head[3], head[4]);
	for (i = 0; i < rep->n_records; i++)
		fprintf(stderr, "bnfold:   %-*s  %-*s  %-*s  %-*s  %s\n", width[0], cells[i][0],
		        width[1], cells[i][1], width[2], cells[i][2], width[3], cells[i][3],
		        cells[i][4]);
	free(cells);
}

/* ---- notes on the model as read ---- */

void cli_print_model_notes(const Onnx__ModelProto *model, const char *label)
{
	struct bnf_unknown_dims u;

	bnf_validate_unknown_dims(model, &u);
	if (u.n_dims == 0)
		return;
	fprintf(stderr,
	        "bnfold: %s: %zu declared dimension%s of %zu value%s %s negative (first: "
	        "'%s' dim %zu is %lld): read as unknown, like a dim_param, and written as "
	        "%s\n",
	        label, u.n_dims, u.n_dims == 1 ? "" : "s", u.n_values, u.n_values == 1 ? "" : "s",
	        u.n_dims == 1 ? "is" : "are", u.first_value, u.first_axis, u.first_dim,
	        u.n_dims == 1 ? "it was" : "they were");
}

/* ---- progress on a terminal ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	const char *phase;
	double started;
	int active, shown;
} progress = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void *progress_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&progress.lock);
	while (progress.active) {
		struct timespec until;
		double elapsed;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 250 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&progress.wake, &progress.lock, &until);
		elapsed = cli_now_ms() - progress.started;
		if (progress.active && elapsed >= 1000.0) {
			fprintf(stderr, "\rbnfold: %s... %.0f s", progress.phase, elapsed / 1000.0);
			fflush(stderr);
			progress.shown = 1;
		}
	}
	pthread_mutex_unlock(&progress.lock);
	return NULL;
}

void cli_progress_begin(const char *phase)
{
	if (!isatty(STDERR_FILENO) || progress.active)
		return;
	progress.phase = phase;
	progress.started = cli_now_ms();
	progress.shown = 0;
	progress.active = 1;
	if (bnf_thread_start(&progress.thread, progress_main, NULL) != 0)
		progress.active = 0;
}

void cli_progress_end(void)
{
	if (!progress.active)
		return;
	pthread_mutex_lock(&progress.lock);
	progress.active = 0;
	pthread_cond_signal(&progress.wake);
	pthread_mutex_unlock(&progress.lock);
	pthread_join(progress.thread, NULL);
	if (progress.shown)
		fputs("\r\033[K", stderr);
}
