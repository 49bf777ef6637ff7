/*
 * The whole-graph check (verify.h): the original in float64 as the exact
 * reference, the original and the folded model in their stored precision,
 * on the same seeded inputs, every graph output judged by the error model
 * of errmodel.c (or by --atol/--rtol when given). The per-fold check is in
 * foldcheck.c, the search for where two models diverge in locate.c.
 */
#include "check/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/compare.h"
#include "check/internal.h"
#include "check/jobs.h"
#include "eval/eval.h"
#include "io/external.h"
#include "io/validate.h"

void bnf_default_tolerance(int dtype, double *atol, double *rtol)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		*atol = 1e-3;
		*rtol = 1e-2;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		*atol = 1e-2;
		*rtol = 5e-2;
		break;
	default:
		*atol = 1e-5;
		*rtol = 1e-4;
		break;
	}
}

size_t bnf_compare_bytes(const Onnx__ModelProto *a, const Onnx__ModelProto *b)
{
	size_t wa = bnf_model_eval_bytes(a), wb = bnf_model_eval_bytes(b), need;

	/* a's weights held as float32 and again as float64 (twice the bytes). */
	need = wa > SIZE_MAX / 3 ? SIZE_MAX : 3 * wa;
	return wb > SIZE_MAX - need ? SIZE_MAX : need + wb;
}

void bnf_verify_report_free(struct bnf_verify_report *rep)
{
	size_t i;
	if (!rep)
		return;
	for (i = 0; i < rep->n_outputs; i++)
		free(rep->outputs[i].name);
	for (i = 0; i < rep->n_folds; i++) {
		free(rep->folds[i].bn_name);
		free(rep->folds[i].op_type);
		free(rep->folds[i].target);
		free(rep->folds[i].note);
	}
	free(rep->outputs);
	free(rep->folds);
	bnf_input_shapes_free(&rep->inputs);
	memset(rep, 0, sizeof(*rep));
	rep->first_failed_fold = -1;
}

int bnf_verify_fixed_tolerance(const struct bnf_verify_options *opt)
{
	return opt->atol >= 0 || opt->rtol >= 0;
}

void bnf_verify_tolerance(const struct bnf_verify_options *opt, int dtype,
                          struct bnf_tolerance *tol)
{
	bnf_default_tolerance(dtype, &tol->atol, &tol->rtol);
	if (opt->atol >= 0)
		tol->atol = opt->atol;
	if (opt->rtol >= 0)
		tol->rtol = opt->rtol;
}

int bnf_verify_nonfinite_ok(const struct bnf_err_acc *acc, int allow_nan)
{
	if (allow_nan)
		return acc->n_unmatched == 0;
	return acc->n_nonfinite == 0;
}

/* All the operators the evaluator lacks, in one message. */
static int unsupported(const Onnx__ModelProto *m, const char *which, struct bnf_error *err)
{
	char op[300], node[160];
	size_t n = bnf_eval_find_unsupported(m, op, sizeof(op), node, sizeof(node));

	if (n)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "the evaluator does not support operator%s %s (%snode '%s' of the "
		                "%s model)",
		                n > 1 ? "s" : "", op, n > 1 ? "first at " : "", node, which);
	return BNF_OK;
}

int bnf_verify_ref_samples(const struct bnf_verify_options *opt)
{
	int n = opt->ref_samples > 0 ? opt->ref_samples : 1;
	return n < opt->samples ? n : opt->samples;
}

/* Per output: the sums of its comparisons, and the reference samples'
 * outputs (to count the elements beyond the elementwise limit). */
struct output_acc {
	struct bnf_err_acc pair;     /* B against A, every sample */
	struct bnf_err_acc exact;    /* B against R */
	struct bnf_err_acc original; /* A against R */
	struct bnf_err_acc noref;    /* B against A, samples without R */
};

/* Elements of B beyond the elementwise limit of the error model. */
static size_t count_beyond(const struct bnf_tensor *b, const struct bnf_tensor *r, double limit)
{
	size_t i, n = 0;

	if (b->count != r->count)
		return b->count;
	for (i = 0; i < b->count; i++) {
		double x = bnf_tensor_get_double(b, i), y = bnf_tensor_get_double(r, i);
		if (isfinite(x) && isfinite(y) && fabs(x - y) > limit)
			n++;
	}
	return n;
}

static void judge_output(const struct bnf_verify_options *opt, const struct output_acc *acc,
                         struct bnf_output_check *o)
{
	int fixed = bnf_verify_fixed_tolerance(opt);

	o->max_abs = acc->pair.max_abs;
	o->max_rel = acc->pair.max_rel;
	o->norm_err = acc->pair.sum_sq_ref > 0 ? acc->pair.sum_sq_diff / acc->pair.sum_sq_ref
	                                       : acc->pair.sum_sq_diff;
	o->n_elements = acc->pair.n;
	o->nan_a = acc->pair.nonfinite_r; /* a is the reference */
	o->nan_b = acc->pair.nonfinite_x;
	o->exact_abs = acc->exact.max_abs;
	o->exact_norm = bnf_err_norm(&acc->exact) * bnf_err_norm(&acc->exact);
	o->original_abs = acc->original.max_abs;
	o->original_norm = bnf_err_norm(&acc->original) * bnf_err_norm(&acc->original);
	bnf_err_judge(&acc->exact, &acc->original, &acc->noref, o->dtype, &o->verdict);
	o->fixed_tolerance = fixed;
	o->n_bad += opt->allow_nan ? acc->pair.n_unmatched : acc->pair.n_nonfinite;
	if (fixed)
		o->n_bad += acc->pair.n_bad;
	o->pass = !acc->pair.shape_mismatch &&
	          bnf_verify_nonfinite_ok(&acc->pair, opt->allow_nan) &&
	          (fixed ? acc->pair.n_bad == 0 : o->verdict.pass);
	o->nonfinite_only = !o->pass && !acc->pair.shape_mismatch && acc->pair.nonfinite_r > 0 &&
	                    acc->pair.n_unmatched == 0 &&
	                    (fixed ? acc->pair.n_bad == 0 : o->verdict.pass);
	if (acc->pair.shape_mismatch)
		o->n_bad = o->n_elements ? o->n_elements : 1;
}

static int name_outputs(const Onnx__ModelProto *a, struct bnf_verify_report *rep,
                        struct bnf_error *err)
{
	size_t i, n_out = a->graph->n_output;

	rep->outputs = calloc(n_out + 1, sizeof(*rep->outputs));
	if (!rep->outputs)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	rep->n_outputs = n_out;
	for (i = 0; i < n_out; i++) {
		rep->outputs[i].name =
		    strdup(a->graph->output[i]->name ? a->graph->output[i]->name : "");
		if (!rep->outputs[i].name)
			return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	return BNF_OK;
}

/* The shapes of the check's inputs, chosen by probing the reference. */
static int choose_shapes(const Onnx__ModelProto *a, const struct bnf_verify_options *opt,
                         struct bnf_input_shapes *shapes, struct bnf_error *err)
{
	struct bnf_eval_options probe;

	memset(&probe, 0, sizeof(probe));
	probe.threads = 1;
	probe.max_bytes = opt->max_bytes;
	probe.ext = opt->ext;
	return bnf_inputs_choose(a, opt->inputs, &probe, shapes, err);
}

/* "x=1x3x224x224, mask=1x224" into buf. */
static void format_shapes(const struct bnf_input_shapes *shapes, char *buf, size_t len)
{
	size_t i, used = 0;
	int d;

	buf[0] = '\0';
	for (i = 0; i < shapes->n && used < len; i++) {
		const struct bnf_input_shape *s = &shapes->inputs[i];
		used += (size_t)snprintf(buf + used, len - used, "%s%s=", i ? ", " : "", s->name);
		for (d = 0; d < s->rank && used < len; d++)
			used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? "x" : "",
			                         (long long)s->dims[d]);
		if (s->rank == 0 && used < len)
			used += (size_t)snprintf(buf + used, len - used, "scalar");
	}
}

/* The reference model cannot be run at these inputs: the check cannot
 * run (BNF_ERR_UNSUPPORTED), unless memory ran out. */
static int cannot_run(const struct bnf_input_shapes *shapes, int rc, struct bnf_error *err)
{
	char at[256];

	if (rc == BNF_ERR_NOMEM || rc == BNF_ERR_IO || !err)
		return rc;
	format_shapes(shapes, at, sizeof(at));
	bnf_error_prefix(err, "check could not run: at input shapes %s", at);
	err->status = BNF_ERR_UNSUPPORTED;
	return BNF_ERR_UNSUPPORTED;
}

/* Add sample outputs to one output's sums: B against A always, and
 * against R (with A against R) when R ran on the sample (tr not NULL). */
static void add_output(const struct bnf_verify_options *opt, struct output_acc *acc,
                       const struct bnf_tensor *tb, const struct bnf_tensor *ta,
                       const struct bnf_tensor *tr, struct bnf_output_check *o)
{
	struct bnf_tolerance tol;

	o->dtype = ta->dtype;
	bnf_verify_tolerance(opt, ta->dtype, &tol);
	bnf_err_acc_add(&acc->pair, tb, ta, bnf_verify_fixed_tolerance(opt) ? &tol : NULL);
	if (tr) {
		bnf_err_acc_add(&acc->exact, tb, tr, NULL);
		bnf_err_acc_add(&acc->original, ta, tr, NULL);
	} else {
		bnf_err_acc_add(&acc->noref, tb, ta, NULL);
	}
}

/* One sample of the reference half: R (first: it is the slowest) and A
 * side by side on the sample's inputs; st keeps their outputs. Any
 * failure is the reference's: the check cannot run. */
static int reference_sample(const Onnx__ModelProto *a, struct bnf_compare_state *st, int s,
                            struct bnf_verify_report *rep, struct bnf_error *err)
{
	const struct bnf_verify_options *opt = &st->opt;
	struct bnf_named_tensors in;
	struct bnf_check_job job[2];
	int n = 0, rc, r, ia;

	rc = bnf_inputs_make_shaped(&rep->inputs, opt->seed, s, &in, err);
	if (rc != BNF_OK)
		return rc == BNF_ERR_UNSUPPORTED ? cannot_run(&rep->inputs, rc, err) : rc;
	bnf_check_job_init(&job[r = n++], a, &in, 1, opt->max_bytes, opt->ext);
	bnf_check_job_init(&job[ia = n++], a, &in, 0, opt->max_bytes, opt->ext);
	rc = bnf_check_jobs_run(job, n, opt->threads, err);
	bnf_named_tensors_free(&in);
	if (rc != BNF_OK) {
		bnf_check_jobs_free(job, n, st->n_out);
		return cannot_run(&rep->inputs, rc, err);
	}
	st->r_outs[s] = job[r].outs;
	st->a_outs[s] = job[ia].outs;
	return BNF_OK;
}

/* One sample of the candidate half: b on the sample's inputs, against
 * the kept outputs of a sample with the float64 reference, else side by
 * side with A (run on a now, as the samples without it always were);
 * added to acc. b's outputs of sample 0, when R ran on it, go to *keep_b:
 * the elements beyond the elementwise limit are counted once the limit is
 * known. b failing where a ran sets rep->second_failed. */
static int candidate_sample(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                            const struct bnf_compare_state *st, int s, struct output_acc *acc,
                            struct bnf_tensor ***keep_b, struct bnf_verify_report *rep,
                            struct bnf_error *err)
{
	const struct bnf_verify_options *opt = &st->opt;
	int kept = s < st->ref_samples, n = 0, ia = -1, ib, rc;
	struct bnf_tensor **tr = kept ? st->r_outs[s] : NULL, **ta;
	struct bnf_named_tensors in;
	struct bnf_check_job job[2];
	size_t i;

	rc = bnf_inputs_make_shaped(&rep->inputs, opt->seed, s, &in, err);
	if (rc != BNF_OK)
		return rc == BNF_ERR_UNSUPPORTED ? cannot_run(&rep->inputs, rc, err) : rc;
	if (!kept)
		bnf_check_job_init(&job[ia = n++], a, &in, 0, opt->max_bytes, opt->ext);
	bnf_check_job_init(&job[ib = n++], b, &in, 0, opt->max_bytes, opt->ext);
	rc = bnf_check_jobs_run(job, n, opt->threads, err);
	bnf_named_tensors_free(&in);
	if (rc != BNF_OK && ia >= 0 && job[ia].rc != BNF_OK)
		rc = cannot_run(&rep->inputs, rc, err);
	else if (rc != BNF_OK && rc != BNF_ERR_NOMEM && job[ib].rc != BNF_OK)
		rep->second_failed = 1;
	ta = kept ? st->a_outs[s] : job[ia].outs;
	for (i = 0; rc == BNF_OK && i < st->n_out; i++)
		add_output(opt, &acc[i], job[ib].outs[i], ta[i], tr ? tr[i] : NULL,
		           &rep->outputs[i]);
	if (rc == BNF_OK && s == 0 && tr) {
		*keep_b = job[ib].outs;
		job[ib].outs = NULL;
	}
	bnf_check_jobs_free(job, n, st->n_out);
	return rc;
}

/* The declared shape of input vi accepts shape: same rank, and every
 * fixed dim equal (a declared shape may be absent or leave dims open). */
static int declared_accepts(const Onnx__ValueInfoProto *vi, const struct bnf_input_shape *shape)
{
	const Onnx__TensorShapeProto *ts;
	size_t d;

	if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
	    !vi->type->tensor_type->shape)
		return 1;
	ts = vi->type->tensor_type->shape;
	if (ts->n_dim != (size_t)shape->rank)
		return 0;
	for (d = 0; d < ts->n_dim; d++)
		if (ts->dim[d]->value_case ==
		        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
		    ts->dim[d]->dim_value > 0 && ts->dim[d]->dim_value != shape->dims[d])
			return 0;
	return 1;
}

/* Every input fed to the first model is an input of the second, declared
 * to take that shape: models with other interfaces are not comparable
 * (which is not a failure of either). */
static int same_inputs(const Onnx__ModelProto *b, const struct bnf_input_shapes *fed,
                       struct bnf_error *err)
{
	size_t i, j;

	for (i = 0; i < fed->n; i++) {
		const Onnx__ValueInfoProto *vi = NULL;
		for (j = 0; j < b->graph->n_input && !vi; j++)
			if (b->graph->input[j]->name &&
			    strcmp(b->graph->input[j]->name, fed->inputs[i].name) == 0)
				vi = b->graph->input[j];
		if (!vi)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "'%s' is an input of the first model, not of the second",
			                fed->inputs[i].name);
		if (!declared_accepts(vi, &fed->inputs[i]))
			return bnf_fail(
			    err, BNF_ERR_INPUT,
			    "input '%s': the second model declares another shape than the "
			    "first is fed",
			    fed->inputs[i].name);
	}
	return BNF_OK;
}

void bnf_compare_state_free(struct bnf_compare_state *st)
{
	int s;

	for (s = 0; s < st->ref_samples; s++) {
		if (st->r_outs)
			bnf_check_outputs_free(st->r_outs[s], st->n_out);
		if (st->a_outs)
			bnf_check_outputs_free(st->a_outs[s], st->n_out);
	}
	free(st->r_outs);
	free(st->a_outs);
	memset(st, 0, sizeof(*st));
}

/* The reference half stops at stage with rc (its message in st->err). */
static int reference_failed(struct bnf_compare_state *st, enum bnf_compare_stage stage, int rc)
{
	st->stage = stage;
	st->rc = rc;
	return rc;
}

int bnf_compare_reference(const Onnx__ModelProto *a, const struct bnf_verify_options *opt,
                          struct bnf_compare_state *st, struct bnf_verify_report *rep)
{
	struct bnf_error *err = &st->err;
	int rc, s;

	memset(st, 0, sizeof(*st));
	memset(rep, 0, sizeof(*rep));
	rep->first_failed_fold = -1;
	rep->weight_ulps = -1;
	st->opt = *opt;
	st->n_out = a->graph->n_output;
	st->ref_samples = bnf_verify_ref_samples(opt);
	if ((rc = unsupported(a, "first", err)) != BNF_OK)
		return reference_failed(st, BNF_COMPARE_STAGE_OPERATORS, rc);
	if ((rc = choose_shapes(a, opt, &rep->inputs, err)) != BNF_OK) {
		if (rc == BNF_ERR_UNSUPPORTED)
			bnf_error_prefix(err, "check could not run");
		return reference_failed(st, BNF_COMPARE_STAGE_SHAPES, rc);
	}
	st->samples = opt->samples > 0 ? opt->samples : 0;
	st->r_outs = calloc((size_t)st->ref_samples + 1, sizeof(*st->r_outs));
	st->a_outs = calloc((size_t)st->ref_samples + 1, sizeof(*st->a_outs));
	if (!st->r_outs || !st->a_outs)
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	else
		rc = name_outputs(a, rep, err);
	if (rc != BNF_OK)
		return reference_failed(st, BNF_COMPARE_STAGE_OUTPUTS, rc);
	for (s = 0; s < st->ref_samples; s++)
		if ((rc = reference_sample(a, st, s, rep, err)) != BNF_OK) {
			st->failed_sample = s;
			return reference_failed(st, BNF_COMPARE_STAGE_SAMPLES, rc);
		}
	st->stage = BNF_COMPARE_STAGE_DONE;
	return BNF_OK;
}

/* Every output judged over all samples, and the worst of them in rep.
 * r0 and b0: R's and b's outputs of sample 0, or NULL. */
static void judge_outputs(const struct bnf_compare_state *st, const struct output_acc *acc,
                          struct bnf_tensor *const *r0, struct bnf_tensor *const *b0,
                          struct bnf_verify_report *rep)
{
	size_t i;

	rep->whole_graph = 1;
	rep->samples = st->samples;
	rep->ref_samples = st->ref_samples;
	rep->fixed_tolerance = bnf_verify_fixed_tolerance(&st->opt);
	rep->pass = 1;
	rep->ratio_dtype = st->n_out ? rep->outputs[0].dtype : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	for (i = 0; i < st->n_out; i++) {
		struct bnf_output_check *o = &rep->outputs[i];
		o->ref_samples = st->ref_samples;
		judge_output(&st->opt, &acc[i], o);
		if (!o->fixed_tolerance && r0 && b0 && !o->verdict.pass)
			o->n_bad += count_beyond(b0[i], r0[i], o->verdict.limit_max);
		if (!o->pass)
			rep->pass = 0;
		if (o->max_abs > rep->max_abs)
			rep->max_abs = o->max_abs;
		if (o->max_rel > rep->max_rel)
			rep->max_rel = o->max_rel;
		if (o->exact_abs > rep->exact_abs)
			rep->exact_abs = o->exact_abs;
		if (i == 0 || o->verdict.ratio > rep->ratio) {
			rep->ratio = o->verdict.ratio;
			rep->ratio_dtype = o->dtype;
		}
		if (o->verdict.used > rep->used)
			rep->used = o->verdict.used;
	}
}

/* rep as a comparison that failed before its runs leaves it. */
static void reset_report(struct bnf_verify_report *rep)
{
	bnf_verify_report_free(rep);
	rep->weight_ulps = -1;
}

/* rep as a comparison that failed with rc leaves it: which shapes the
 * check could not run at stays, and which model failed. */
static void failed_report(struct bnf_verify_report *rep, int rc)
{
	struct bnf_input_shapes shapes;
	int second_failed = rep->second_failed;

	memset(&shapes, 0, sizeof(shapes));
	if (rc == BNF_ERR_UNSUPPORTED) {
		shapes = rep->inputs;
		memset(&rep->inputs, 0, sizeof(rep->inputs));
	}
	bnf_verify_report_free(rep);
	rep->inputs = shapes;
	rep->second_failed = second_failed;
}

/* The reference half's failure, reported now. */
static int reference_failure(const struct bnf_compare_state *st, struct bnf_error *err)
{
	if (err)
		*err = st->err;
	return st->rc;
}

/* The checks of b that come before any run, in the order they have
 * always come among a's: operators, then (once a's input shapes are
 * known) outputs and inputs. Returns BNF_OK to go on to b's runs, else
 * the first failure, a's or b's, with rep as it was then left. */
static int candidate_first(const Onnx__ModelProto *b, const struct bnf_compare_state *st,
                           struct bnf_verify_report *rep, struct bnf_error *err)
{
	int rc;

	if (st->stage == BNF_COMPARE_STAGE_OPERATORS)
		return reference_failure(st, err);
	if ((rc = unsupported(b, "second", err)) == BNF_OK && b->graph->n_output != st->n_out)
		rc = bnf_fail(err, BNF_ERR_INPUT, "the models have %zu and %zu outputs", st->n_out,
		              b->graph->n_output);
	if (rc == BNF_OK && st->stage == BNF_COMPARE_STAGE_SHAPES)
		return reference_failure(st, err);
	if (rc == BNF_OK)
		rc = same_inputs(b, &rep->inputs, err);
	if (rc != BNF_OK)
		reset_report(rep);
	else if (st->stage == BNF_COMPARE_STAGE_OUTPUTS)
		failed_report(rep, rc = reference_failure(st, err));
	return rc;
}

int bnf_compare_candidate(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                          struct bnf_compare_state *st, struct bnf_verify_report *rep,
                          struct bnf_error *err)
{
	struct output_acc *acc = NULL;
	struct bnf_tensor **keep_b = NULL;
	int rc, s;

	if (st->stage == BNF_COMPARE_STAGE_NONE)
		return bnf_fail(err, BNF_ERR_INPUT, "the reference half of the check did not run");
	if ((rc = candidate_first(b, st, rep, err)) != BNF_OK)
		return rc;
	if (!(acc = calloc(st->n_out + 1, sizeof(*acc)))) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (s = 0; s < st->samples; s++) {
		if (st->stage == BNF_COMPARE_STAGE_SAMPLES && s == st->failed_sample) {
			rc = reference_failure(st, err);
			goto out;
		}
		if ((rc = candidate_sample(a, b, st, s, acc, &keep_b, rep, err)) != BNF_OK)
			goto out;
	}
	judge_outputs(st, acc, st->ref_samples ? st->r_outs[0] : NULL, keep_b, rep);
	bnf_check_outputs_free(keep_b, st->n_out);
	keep_b = NULL;
	if (!rep->pass && (rc = bnf_locate_divergence(a, b, &st->opt, rep, err)) != BNF_OK)
		goto out;
	if (st->opt.pair_folds && (rc = bnf_compare_fold_pairs(a, b, &st->opt, rep, err)) != BNF_OK)
		goto out;
	rc = BNF_OK;
out:
	bnf_check_outputs_free(keep_b, st->n_out);
	free(acc);
	if (rc != BNF_OK)
		failed_report(rep, rc);
	return rc;
}

int bnf_compare_models(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                       const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                       struct bnf_error *err)
{
	struct bnf_compare_state st;
	int rc;

	bnf_compare_reference(a, opt, &st, rep);
	rc = bnf_compare_candidate(a, b, &st, rep, err);
	bnf_compare_state_free(&st);
	return rc;
}
