/*
 * The deploy gate's lint. One walk over the graphs (subgraphs included)
 * looks at each BatchNormalization and Dropout as exported; a packed copy
 * of the model is then folded to find the nodes that could still fold and
 * the folded weights that float16 or bfloat16 could not hold.
 */
#include "check/lint.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold/target.h"
#include "graph/graph.h"
#include "util/mem.h"
#include "io/model.h"
#include "io/tensor_data.h"

static const char *const finding_code_names[BNF_FINDING_CODE_COUNT] = {
    [BNF_FINDING_CODE_BN_TRAINING_MODE] = "bn-training-mode",
    [BNF_FINDING_CODE_BN_UNTRAINED_STATS] = "bn-untrained-stats",
    [BNF_FINDING_CODE_BN_BAD_VARIANCE] = "bn-bad-variance",
    [BNF_FINDING_CODE_BN_NONFINITE_PARAM] = "bn-nonfinite-param",
    [BNF_FINDING_CODE_BN_ZERO_EPSILON] = "bn-zero-epsilon",
    [BNF_FINDING_CODE_BN_UNFOLDED] = "bn-unfolded",
    [BNF_FINDING_CODE_FP16_OVERFLOW] = "fp16-overflow",
    [BNF_FINDING_CODE_FP16_UNDERFLOW] = "fp16-underflow",
    [BNF_FINDING_CODE_DROPOUT_TRAINING_MODE] = "dropout-training-mode",
};

_Static_assert(sizeof(finding_code_names) / sizeof(finding_code_names[0]) == BNF_FINDING_CODE_COUNT,
               "one name per finding code");

const char *bnf_finding_code_name(enum bnf_finding_code code)
{
	return (unsigned)code < BNF_FINDING_CODE_COUNT ? finding_code_names[code] : "?";
}

int bnf_finding_code_parse(const char *name, enum bnf_finding_code *code)
{
	int k;
	for (k = 0; k < BNF_FINDING_CODE_COUNT; k++)
		if (strcmp(name, finding_code_names[k]) == 0) {
			*code = (enum bnf_finding_code)k;
			return 0;
		}
	return -1;
}

/* ---- findings ---- */

struct lint_ctx {
	struct bnf_lint_report *rep;
	struct bnf_error *err;
	int opset;
	struct bnf_external *ext; /* borrowed from the options, may be NULL */
};

static int add_finding(struct lint_ctx *ctx, enum bnf_finding_code code, const char *op,
                       const char *node, const char *graph, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int add_finding(struct lint_ctx *ctx, enum bnf_finding_code code, const char *op,
                       const char *node, const char *graph, const char *fmt, ...)
{
	struct bnf_lint_report *rep = ctx->rep;
	struct bnf_finding *p = realloc(rep->findings, (rep->n_findings + 1) * sizeof(*p));
	struct bnf_finding *f;
	char message[512];
	va_list ap;

	if (!p)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	rep->findings = p;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	f = &p[rep->n_findings];
	f->code = code;
	f->op = strdup(op);
	f->node = strdup(node);
	f->graph = strdup(graph);
	f->message = strdup(message);
	if (!f->op || !f->node || !f->graph || !f->message) {
		free(f->op);
		free(f->node);
		free(f->graph);
		free(f->message);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	rep->n_findings++;
	return BNF_OK;
}

/* The values of a constant float input, or 0 (not a constant or not a
 * float type: nothing to check) or negative on a malformed tensor. */
static int read_param(struct lint_ctx *ctx, const struct bnf_graph *gi, const Onnx__NodeProto *node,
                      size_t slot, double **vals, size_t *count)
{
	struct bnf_const_ref ref;
	int rc;

	if (slot >= node->n_input || !node->input[slot][0] ||
	    !bnf_graph_constant(gi, node->input[slot], &ref) || !ref.tensor->has_data_type ||
	    !bnf_dtype_is_foldable(ref.tensor->data_type))
		return 0;
	rc = bnf_proto_read_doubles_ext(ctx->ext, ref.tensor, vals, count, ctx->err);
	if (rc != BNF_OK) {
		bnf_error_prefix(ctx->err, "node '%s'", bnf_node_label(node));
		return rc;
	}
	return 1;
}

static int all_equal(const double *v, size_t n, double value)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (v[i] != value)
			return 0;
	return n > 0;
}

/* The parameter checks of one BatchNormalization: non-finite values,
 * variances that are negative or zero with eps 0, eps 0, and statistics
 * that were never trained. */
static int lint_bn_params(struct lint_ctx *ctx, const struct bnf_graph *gi,
                          const Onnx__NodeProto *bn, const char *path)
{
	static const char *const roles[4] = {"scale", "B", "input_mean", "input_var"};
	const Onnx__AttributeProto *eps_attr = bnf_node_attr(bn, "epsilon");
	double eps = eps_attr && eps_attr->has_f ? (double)eps_attr->f : (double)1e-5f;
	const char *label = bnf_node_label(bn);
	double *v[4] = {NULL, NULL, NULL, NULL};
	size_t n[4] = {0, 0, 0, 0}, c;
	int have[4] = {0, 0, 0, 0}, k, rc = BNF_OK, nonfinite = 0;

	for (k = 0; k < 4; k++) {
		have[k] = read_param(ctx, gi, bn, (size_t)k + 1, &v[k], &n[k]);
		if (have[k] < 0) {
			rc = have[k];
			goto out;
		}
	}
	if (!isfinite(eps)) {
		nonfinite = 1;
		rc = add_finding(ctx, BNF_FINDING_CODE_BN_NONFINITE_PARAM, "BatchNormalization",
		                 label, path, "epsilon is %g", eps);
	}
	for (k = 0; k < 4 && rc == BNF_OK && !nonfinite; k++)
		for (c = 0; have[k] == 1 && c < n[k]; c++)
			if (!isfinite(v[k][c])) {
				nonfinite = 1;
				rc = add_finding(ctx, BNF_FINDING_CODE_BN_NONFINITE_PARAM,
				                 "BatchNormalization", label, path,
				                 "%s '%s' holds %g at channel %zu", roles[k],
				                 bn->input[k + 1], v[k][c], c);
				break;
			}
	if (rc != BNF_OK)
		goto out;
	if (eps == 0.0)
		rc = add_finding(ctx, BNF_FINDING_CODE_BN_ZERO_EPSILON, "BatchNormalization", label,
		                 path, "epsilon is 0: a variance of 0 divides by zero");
	for (c = 0; rc == BNF_OK && have[3] == 1 && c < n[3]; c++) {
		if (v[3][c] < 0.0) {
			rc = add_finding(ctx, BNF_FINDING_CODE_BN_BAD_VARIANCE,
			                 "BatchNormalization", label, path,
			                 "input_var '%s' is negative (%g) at channel %zu",
			                 bn->input[4], v[3][c], c);
			break;
		}
		if (v[3][c] + eps <= 0.0) {
			rc = add_finding(ctx, BNF_FINDING_CODE_BN_BAD_VARIANCE,
			                 "BatchNormalization", label, path,
			                 "input_var '%s' is 0 at channel %zu and epsilon is %g: "
			                 "division by zero",
			                 bn->input[4], c, eps);
			break;
		}
	}
	if (rc == BNF_OK && have[2] == 1 && have[3] == 1 && all_equal(v[2], n[2], 0.0) &&
	    all_equal(v[3], n[3], 1.0))
		rc = add_finding(ctx, BNF_FINDING_CODE_BN_UNTRAINED_STATS, "BatchNormalization",
		                 label, path,
		                 "every running mean is 0 and every running variance 1%s: the "
		                 "statistics look never trained or reset",
		                 have[0] == 1 && have[1] == 1 && all_equal(v[0], n[0], 1.0) &&
		                         all_equal(v[1], n[1], 0.0)
		                     ? " (and scale 1, B 0)"
		                     : "");
out:
	for (k = 0; k < 4; k++)
		free(v[k]);
	return rc;
}

/* The findings of one node: training mode and parameter health. */
static int lint_node(struct bnf_graph *gi, Onnx__NodeProto *node, const char *path, void *arg)
{
	struct lint_ctx *ctx = arg;
	char why[400];
	int rc = BNF_OK;

	if (bnf_node_is(node, "BatchNormalization")) {
		if (bnf_bn_training_mode(gi, node, why, sizeof(why)))
			rc = add_finding(ctx, BNF_FINDING_CODE_BN_TRAINING_MODE,
			                 "BatchNormalization", bnf_node_label(node), path,
			                 "%s: exported in training mode? outputs will depend on "
			                 "the batch",
			                 why);
		if (rc == BNF_OK)
			rc = lint_bn_params(ctx, gi, node, path);
	} else if (bnf_node_is(node, "Dropout") &&
	           bnf_dropout_training_mode(gi, node, why, sizeof(why))) {
		rc = add_finding(ctx, BNF_FINDING_CODE_DROPOUT_TRAINING_MODE, "Dropout",
		                 bnf_node_label(node), path,
		                 "%s: exported in training mode? outputs will be randomly "
		                 "dropped",
		                 why);
	}
	return rc;
}

/* ---- folded weights in float16 and bfloat16 ---- */

/* How the elements of a folded weight map to BatchNormalization channels. */
struct channel_layout {
	size_t channels;
	size_t inner;        /* elements per channel run */
	size_t per_group;    /* ConvTranspose: output channels per group */
	size_t in_per_group; /* ConvTranspose: input channels per group */
	int by_column;       /* Gemm/MatMul with (K, N): channel = column */
	int transpose;       /* ConvTranspose layout */
};

/* 1 when the layout is known, 0 when the weight's shape does not allow it:
 * where the target keeps its channel comes from the fold-target table. */
static int weight_layout(const Onnx__NodeProto *target, const Onnx__TensorProto *w, size_t count,
                         struct channel_layout *lay)
{
	const struct bnf_fold_target *t = bnf_fold_target_of(target);
	size_t d;

	memset(lay, 0, sizeof(*lay));
	if (!t || w->n_dims < 2 || w->dims[0] <= 0 || w->dims[1] <= 0 || count == 0)
		return 0;
	switch (bnf_fold_target_weight_channel(t, target)) {
	case BNF_WEIGHT_CHANNEL_FIRST:
		lay->channels = (size_t)w->dims[0];
		lay->inner = count / lay->channels;
		break;
	case BNF_WEIGHT_CHANNEL_GROUPED: {
		long long group = bnf_node_attr_int(target, "group", 1);
		if (group < 1 || (size_t)w->dims[0] % (size_t)group)
			return 0;
		lay->transpose = 1;
		lay->per_group = (size_t)w->dims[1];
		lay->in_per_group = (size_t)w->dims[0] / (size_t)group;
		lay->channels = lay->per_group * (size_t)group;
		lay->inner = 1;
		for (d = 2; d < w->n_dims; d++)
			lay->inner *= w->dims[d] > 0 ? (size_t)w->dims[d] : 1;
		break;
	}
	case BNF_WEIGHT_CHANNEL_LAST:
		lay->channels = (size_t)w->dims[w->n_dims - 1];
		lay->by_column = 1;
		break;
	}
	return lay->channels > 0 && (lay->by_column || lay->inner > 0);
}

static size_t channel_of(const struct channel_layout *lay, size_t idx)
{
	if (lay->by_column)
		return idx % lay->channels;
	if (lay->transpose) {
		size_t ci = idx / (lay->per_group * lay->inner);
		size_t j = (idx / lay->inner) % lay->per_group;
		return (ci / lay->in_per_group) * lay->per_group + j;
	}
	return idx / lay->inner;
}

/* The first channel whose values are not all zero but all round to zero
 * in dtype, or (size_t)-1. */
static size_t flushed_channel(const double *w, size_t count, const struct channel_layout *lay,
                              int dtype, unsigned char *nonzero, unsigned char *survives)
{
	/* The smallest normal value of dtype: at or above it nothing rounds to
	 * zero, and the exact rounding is needed below it only. */
	double normal = ldexp(1.0, dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? -14 : -126);
	size_t i, c;

	memset(nonzero, 0, lay->channels);
	memset(survives, 0, lay->channels);
	for (i = 0; i < count; i++) {
		c = channel_of(lay, i);
		if (c >= lay->channels || w[i] == 0.0)
			continue;
		nonzero[c] = 1;
		if (fabs(w[i]) >= normal || bnf_round_to_dtype(w[i], dtype) != 0.0)
			survives[c] = 1;
	}
	for (c = 0; c < lay->channels; c++)
		if (nonzero[c] && !survives[c])
			return c;
	return (size_t)-1;
}

struct weight_check {
	struct lint_ctx *ctx;
	const struct bnf_fold_report *folds;
	int probe; /* 1: the folds of a copy (name the BN), 0: done on the model */
};

static int check_folded_weight(struct weight_check *wc, const struct bnf_graph *gi,
                               const Onnx__NodeProto *target, const struct bnf_bn_record *r,
                               const char *path)
{
	const int f16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
	const int bf16 = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
	struct lint_ctx *ctx = wc->ctx;
	struct bnf_const_ref ref;
	struct channel_layout lay;
	const char *op = wc->probe ? "BatchNormalization" : r->target_op;
	const char *name = wc->probe ? r->bn_name : r->target_name;
	unsigned char *nonzero = NULL, *survives = NULL;
	char what[400];
	double *w = NULL, worst = 0.0;
	size_t count = 0, i, where = 0, ch;
	int rc = BNF_OK, slot, in_f16, in_bf16;

	if (wc->probe)
		snprintf(what, sizeof(what), "folding it into %s '%s' (%s) gives", r->target_op,
		         r->target_name, bnf_fold_kind_name(r->kind));
	else
		snprintf(what, sizeof(what), "the fold of BatchNormalization '%s' gave",
		         r->bn_name);
	for (slot = 1; slot <= 2 && rc == BNF_OK; slot++) {
		free(w);
		w = NULL;
		rc = read_param(ctx, gi, target, (size_t)slot, &w, &count);
		if (rc <= 0)
			break;
		rc = BNF_OK;
		worst = 0.0;
		for (i = 0; i < count; i++)
			if (fabs(w[i]) > worst) {
				worst = fabs(w[i]);
				where = i;
			}
		in_f16 = isinf(bnf_round_to_dtype(worst, f16));
		in_bf16 = isinf(bnf_round_to_dtype(worst, bf16));
		if (in_f16) {
			rc = add_finding(ctx, BNF_FINDING_CODE_FP16_OVERFLOW, op, name, path,
			                 "%s %s '%s' values up to %.6g (element %zu): beyond "
			                 "float16's largest 65504%s",
			                 what, slot == 1 ? "weight" : "bias", target->input[slot],
			                 worst, where, in_bf16 ? " and bfloat16's" : "");
			break;
		}
		if (slot != 1 || !bnf_graph_constant(gi, target->input[1], &ref) ||
		    !weight_layout(target, ref.tensor, count, &lay))
			continue;
		nonzero = malloc(lay.channels);
		survives = malloc(lay.channels);
		if (!nonzero || !survives) {
			rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
			break;
		}
		ch = flushed_channel(w, count, &lay, f16, nonzero, survives);
		if (ch != (size_t)-1)
			rc = add_finding(ctx, BNF_FINDING_CODE_FP16_UNDERFLOW, op, name, path,
			                 "%s weight '%s' whose channel %zu rounds to 0 entirely in "
			                 "float16%s",
			                 what, target->input[1], ch,
			                 flushed_channel(w, count, &lay, bf16, nonzero, survives) ==
			                         ch
			                     ? " and bfloat16"
			                     : "");
	}
	free(nonzero);
	free(survives);
	free(w);
	return rc < 0 ? rc : BNF_OK;
}

/* Find the node each folded record now names (it produces the BN's old
 * output) and check its weight and bias. */
static int weights_node(struct bnf_graph *gi, Onnx__NodeProto *node, const char *path, void *arg)
{
	struct weight_check *wc = arg;
	size_t k;
	int rc = BNF_OK;

	for (k = 0; k < wc->folds->n_records && rc == BNF_OK && node->n_output > 0; k++) {
		const struct bnf_bn_record *r = &wc->folds->records[k];
		if (r->kind != BNF_FOLD_KIND_NONE && strcmp(r->graph, path) == 0 &&
		    strcmp(r->bn_output, node->output[0]) == 0 && node->n_input >= 2)
			rc = check_folded_weight(wc, gi, node, r, path);
	}
	return rc;
}

static int walk_weights(struct weight_check *wc, Onnx__GraphProto *g)
{
	struct bnf_walk walk = {weights_node, wc, wc->ctx->opset, wc->ctx->err};
	return bnf_graph_walk(&walk, g, NULL, "");
}

/* ---- the fold a deployment-ready model would already have ---- */

/* Findings from a fold report: the BatchNormalization nodes an overflow
 * kept and, from a probe's report (`probed`), those it could fold. */
static int probe_findings(struct lint_ctx *ctx, const struct bnf_fold_report *probe, int probed)
{
	size_t k;
	int rc = BNF_OK;

	for (k = 0; k < probe->n_records && rc == BNF_OK; k++) {
		const struct bnf_bn_record *r = &probe->records[k];
		if (r->kind != BNF_FOLD_KIND_NONE && probed)
			rc = add_finding(ctx, BNF_FINDING_CODE_BN_UNFOLDED, "BatchNormalization",
			                 r->bn_name, r->graph,
			                 "could be folded into %s '%s' (%s): the model is not "
			                 "deployment-ready",
			                 r->target_op, r->target_name, bnf_fold_kind_name(r->kind));
		else if (r->reason == BNF_KEEP_REASON_OVERFLOW)
			rc = add_finding(ctx, BNF_FINDING_CODE_FP16_OVERFLOW, "BatchNormalization",
			                 r->bn_name, r->graph, "cannot be folded: %s", r->detail);
	}
	return rc;
}

static int lint_fold_probe(struct lint_ctx *ctx, const Onnx__ModelProto *model,
                           const struct bnf_lint_options *opt)
{
	struct bnf_fold_report probe;
	struct bnf_fold_options fo;
	struct weight_check wc;
	Onnx__ModelProto *copy = NULL;
	uint8_t *buf = NULL;
	size_t size;
	int rc = BNF_OK, borrowed = 0;

	memset(&probe, 0, sizeof(probe));
	memset(&fo, 0, sizeof(fo));
	fo.ext = ctx->ext; /* the copy's external tensors point at the same files */
	fo.freeze_initializer_inputs = opt && opt->freeze_initializer_inputs;
	if (opt && opt->bytes) {
		copy = bnf_model_unpack_borrowing(opt->bytes, opt->size, opt->bytes_file_backed,
		                                  BNF_BORROW_MIN, &borrowed);
	} else {
		size = onnx__model_proto__get_packed_size(model);
		buf = bnf_malloc_large(size);
		if (buf) {
			onnx__model_proto__pack(model, buf);
			copy = onnx__model_proto__unpack(&bnf_large_allocator, size, buf);
			free(buf);
		}
	}
	if (!copy) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = bnf_fold_model(copy, &fo, &probe, ctx->err)) != BNF_OK)
		goto out;
	rc = probe_findings(ctx, &probe, 1);
	wc.ctx = ctx;
	wc.folds = &probe;
	wc.probe = 1;
	if (rc == BNF_OK && probe.n_folded > 0)
		rc = walk_weights(&wc, copy->graph);
	if (rc == BNF_OK && opt && opt->probe_report) {
		*opt->probe_report = probe; /* handed over */
		memset(&probe, 0, sizeof(probe));
	}
out:
	if (copy)
		onnx__model_proto__free_unpacked(copy, &bnf_large_allocator);
	if (borrowed)
		bnf_mem_unborrow(opt->bytes);
	bnf_fold_report_free(&probe);
	return rc;
}

int bnf_lint_model(const Onnx__ModelProto *model, const struct bnf_lint_options *opt,
                   struct bnf_lint_report *rep, struct bnf_error *err)
{
	struct lint_ctx ctx;
	struct weight_check wc;
	int rc;

	ctx.rep = rep;
	ctx.err = err;
	ctx.opset = bnf_model_opset(model);
	ctx.ext = opt ? opt->ext : NULL;
	if (!model->graph)
		return bnf_fail(err, BNF_ERR_INPUT, "the model has no graph");
	{
		struct bnf_walk walk = {lint_node, &ctx, ctx.opset, ctx.err};
		rc = bnf_graph_walk(&walk, model->graph, NULL, "");
	}
	if (rc == BNF_OK && opt && opt->folded && opt->folded->n_folded > 0) {
		wc.ctx = &ctx;
		wc.folds = opt->folded;
		wc.probe = 0;
		rc = walk_weights(&wc, model->graph);
	}
	/* bnfold's fold runs to a fixed point: on its result a probe would
	 * fold nothing and keep for overflow what the fold kept. */
	if (rc == BNF_OK && opt && opt->folded)
		rc = probe_findings(&ctx, opt->folded, 0);
	else if (rc == BNF_OK)
		rc = lint_fold_probe(&ctx, model, opt);
	return rc;
}

void bnf_lint_report_free(struct bnf_lint_report *rep)
{
	size_t i;
	if (!rep)
		return;
	for (i = 0; i < rep->n_findings; i++) {
		free(rep->findings[i].op);
		free(rep->findings[i].node);
		free(rep->findings[i].graph);
		free(rep->findings[i].message);
	}
	free(rep->findings);
	memset(rep, 0, sizeof(*rep));
}
