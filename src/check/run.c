/*
 * The fold pipeline (see run.h): read, train-mode conversion, fold, check,
 * write and lint as one call that returns what happened. The order of the
 * steps is where the speed comes from: the check's reference tree is
 * unpacked on another core while the model folds, and the output is
 * written to its temporary file while the check runs, renamed into place
 * only when the check passes.
 */
#include "check/run.h"

#include "check/compare.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "io/validate.h"
#include "util/format.h"
#include "util/mem.h"
#include "util/path.h"
#include "util/sha256.h"
#include "util/thread.h"

static void phase(const struct bnf_run_options *opt, enum bnf_run_phase p, int begin)
{
	if (opt->on_phase)
		opt->on_phase(opt->arg, p, begin);
}

static enum bnf_run_verdict unusable(struct bnf_run_result *res)
{
	res->verdict = BNF_RUN_VERDICT_UNUSABLE;
	return res->verdict;
}

int bnf_run_read_model(const char *path, struct bnf_external *ext, struct bnf_model *model,
                       struct bnf_error *err)
{
	int rc = bnf_model_read_ext(path, ext, model, err);

	if (rc == BNF_OK &&
	    (rc = bnf_validate_model(model->proto, bnf_path_label(path, 0), err)) != BNF_OK)
		bnf_model_release(model);
	return rc;
}

/* The read phase: read, validate, and note the input's size, counts and
 * (for a report) hash. */
static int read_input(const struct bnf_run_options *opt, struct bnf_run_result *res)
{
	int rc;

	phase(opt, BNF_RUN_PHASE_READ, 1);
	rc = bnf_run_read_model(opt->input, opt->ext, &res->model, &res->err);
	phase(opt, BNF_RUN_PHASE_READ, 0);
	if (rc != BNF_OK)
		return rc;
	res->in_size = res->model.size;
	if (opt->hash)
		bnf_sha256_of(res->model.bytes, res->model.size, res->input_sha256);
	bnf_model_count(res->model.proto, &res->nodes_before, &res->initializers_before);
	res->nodes_after = res->nodes_before;
	res->initializers_after = res->initializers_before;
	return BNF_OK;
}

/* Lint the model in memory: the input as read (probe receives what a fold
 * would do), or the folded result whose folds folded describes. */
static int lint_model(const struct bnf_run_options *opt, struct bnf_run_result *res,
                      const struct bnf_fold_report *folded, struct bnf_fold_report *probe)
{
	struct bnf_lint_options lo;
	int rc;

	memset(&lo, 0, sizeof(lo));
	lo.folded = folded;
	lo.ext = opt->ext;
	lo.probe_report = probe;
	lo.freeze_initializer_inputs = opt->freeze_initializer_inputs;
	if (!folded && res->model.bytes && res->model.n_external == 0) {
		lo.bytes = res->model.bytes; /* the model is the file as read */
		lo.size = res->model.size;
		lo.bytes_file_backed = res->model.mapped;
	}
	phase(opt, BNF_RUN_PHASE_LINT, 1);
	rc = bnf_lint_model(res->model.proto, &lo, &res->lint, &res->err);
	phase(opt, BNF_RUN_PHASE_LINT, 0);
	if (rc != BNF_OK) {
		bnf_error_prefix(&res->err, "%s", bnf_path_label(opt->input, 0));
		return rc;
	}
	res->lint_ran = 1;
	return BNF_OK;
}

enum bnf_run_verdict bnf_run_lint(const struct bnf_run_options *opt, struct bnf_run_result *res)
{
	memset(res, 0, sizeof(*res));
	if (read_input(opt, res) != BNF_OK || lint_model(opt, res, NULL, &res->fold) != BNF_OK)
		return unusable(res);
	return res->verdict;
}

/* A second, independent tree of model (the check's reference), or NULL.
 * Unpacked with the allocator that bnf_run_result_free frees it with. */
static Onnx__ModelProto *copy_model(const Onnx__ModelProto *model)
{
	size_t size = onnx__model_proto__get_packed_size(model);
	uint8_t *buf = malloc(size ? size : 1);
	Onnx__ModelProto *copy = NULL;

	if (buf) {
		onnx__model_proto__pack(model, buf);
		copy = onnx__model_proto__unpack(&bnf_large_allocator, size, buf);
	}
	free(buf);
	return copy;
}

/* When the output keeps tensors in a data file, the tensors the fold
 * rewrites go straight to it (a temporary file beside the output; an
 * anonymous one for a dry run) instead of piling up in memory. */
static int prepare_spill(const struct bnf_run_options *opt, const struct bnf_write_plan *plan,
                         size_t in_size, struct bnf_error *err)
{
	char folder[4096];

	if (bnf_data_mode_resolve(plan->mode, plan->input_external, in_size) ==
	    BNF_DATA_MODE_INLINE)
		return BNF_OK;
	if (!opt->output)
		return bnf_external_spill_open(opt->ext, NULL, plan->threshold, err);
	if (strcmp(opt->output, "-") == 0)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "%s has external data, which cannot be written next to <stdout>: "
		                "use -o FILE, or --external-data=inline",
		                bnf_path_label(opt->input, 0));
	if (bnf_path_folder(opt->output, folder, sizeof(folder)) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", opt->output);
	return bnf_external_spill_open(opt->ext, folder, plan->threshold, err);
}

/* Between the whole-graph check and the per-fold check: the input's pages
 * the runs read, and the heap they freed (which bnf_mem_init's settings
 * keep for reuse by the next run), go back to the system, so the per-fold
 * check starts from the two trees, not from the runs' high-water mark. */
static void release_whole_graph(struct bnf_run_result *res)
{
	bnf_model_release_pages(&res->model);
	malloc_trim(0); /* glibc; bnf_mem_init's mallopt assumes it too */
}

/* Whether the original's runs of the check come before the fold: when
 * the fold may change anything, and no --input file is given (one is
 * read when the check starts, which then stays after the fold, with the
 * output's temporary file in place, as it always was: it may be a FIFO
 * written only then). */
static int may_check_first(const struct bnf_run_options *opt, const Onnx__ModelProto *model)
{
	if (opt->no_verify || (opt->verify.inputs && opt->verify.inputs->n_files > 0))
		return 0;
	return bnf_fold_may_change(model);
}

/* The options of the whole-graph check's evaluations: the --check-memory
 * budget also bounds the activations of each. */
static struct bnf_verify_options compare_options(const struct bnf_run_options *opt)
{
	struct bnf_verify_options vo = opt->verify;

	if (opt->check_memory && (!vo.max_bytes || vo.max_bytes > opt->check_memory))
		vo.max_bytes = opt->check_memory;
	return vo;
}

/* The reference half of the whole-graph check (compare.h), run before
 * the fold so that the original's runs never share memory with the
 * folded weights. It runs on the check's reference tree: *orig after a
 * train-mode conversion, else the one ref_job unpacks now (it borrows
 * every weight; *orig is then that tree, which the per-fold check uses
 * too). Skipped (cmp left unrun) when the original's weights alone pass
 * the --check-memory budget, which the whole check then refuses anyway.
 * Its pages and heap go back after. */
static void compare_reference_first(const struct bnf_run_options *opt, struct bnf_run_result *res,
                                    struct bnf_unpack_job *ref_job, Onnx__ModelProto **orig,
                                    struct bnf_compare_state *cmp)
{
	struct bnf_verify_options vo = compare_options(opt);
	size_t wa = bnf_model_eval_bytes(res->model.proto);
	struct bnf_error ignored; /* no tree: the model's own runs instead */

	if (opt->check_memory && (wa > SIZE_MAX / 3 || 3 * wa > opt->check_memory))
		return;
	if (!*orig)
		bnf_model_unpack_finish(ref_job, &res->model, opt->input, opt->ext, orig, &ignored);
	phase(opt, BNF_RUN_PHASE_CHECK, 1);
	bnf_compare_reference(*orig ? *orig : res->model.proto, &vo, cmp, &res->verify);
	phase(opt, BNF_RUN_PHASE_CHECK, 0);
	release_whole_graph(res);
}

/* The first failing output, when every failing one failed only for NaN or
 * infinity that the original has too, at the same places (its finite
 * values within the error model); else NULL. */
static const struct bnf_output_check *nonfinite_only(const struct bnf_verify_report *vr)
{
	const struct bnf_output_check *first = NULL;
	size_t i;

	for (i = 0; i < vr->n_outputs; i++) {
		const struct bnf_output_check *o = &vr->outputs[i];
		if (o->pass)
			continue;
		if (!o->nonfinite_only)
			return NULL;
		if (!first)
			first = o;
	}
	return first;
}

/* A whole-graph check that failed where the outputs tell nothing about
 * the folds, which are then judged on their own (in stored precision
 * too): the outputs first differ at a discrete choice made from values
 * that agree, or the original itself gives NaN or infinity at these
 * inputs and the folded model gives them at the same places. */
static void whole_graph_inconclusive(struct bnf_verify_report *vr)
{
	const struct bnf_output_check *o;
	int n;

	if (vr->pass)
		return;
	if (vr->diverge.found && vr->diverge.discrete)
		n = snprintf(vr->fallback, sizeof(vr->fallback),
		             "the outputs first differ at value '%s' of %s '%s', a discrete choice "
		             "(inputs that tie to the last bit may choose differently), and agree "
		             "before it",
		             vr->diverge.value, vr->diverge.op, vr->diverge.node);
	else if ((o = nonfinite_only(vr)) != NULL)
		n = snprintf(vr->fallback, sizeof(vr->fallback),
		             "the original's output '%s' holds %zu NaN or infinite values at these "
		             "inputs, the folded model's the same, and the finite values agree",
		             o->name, o->nan_a);
	else
		return;
	if (n >= (int)sizeof(vr->fallback))
		vr->fallback[sizeof(vr->fallback) - 1] = '\0'; /* cut, not lost */
	vr->whole_graph = 0;
	vr->inconclusive = 1;
	vr->pass = 1;
	vr->max_abs = vr->max_rel = vr->exact_abs = vr->ratio = vr->used = 0;
}

/* The per-fold check in slices of the folds (at most FOLD_SLICES, each
 * indexing the graphs once): the original's weights are read through the
 * file's pages, given back after each slice so that they never pile up
 * beside the folded weights. Adds to rep what one call over all the folds
 * would. */
#define FOLD_SLICES 16

static int verify_each_fold(const Onnx__ModelProto *orig, struct bnf_run_result *res,
                            const struct bnf_verify_options *vo, struct bnf_verify_report *rep,
                            struct bnf_error *err)
{
	const struct bnf_fold_report *all = &res->fold;
	struct bnf_fold_report part = *all;
	size_t i, k, n = all->n_records + all->n_affine, step = (n + FOLD_SLICES - 1) / FOLD_SLICES;
	int rc = BNF_OK;

	if (n == 0)
		return bnf_verify_folds(orig, res->model.proto, all, vo, rep, err);
	for (i = 0; i < n && rc == BNF_OK; i += k) {
		/* A slice of records, or of the affine list, never both. */
		size_t end = i < all->n_records ? all->n_records : n;
		k = end - i < step ? end - i : step;
		part.records = i < all->n_records ? &all->records[i] : NULL;
		part.n_records = i < all->n_records ? k : 0;
		part.affine = i < all->n_records ? NULL : &all->affine[i - all->n_records];
		part.n_affine = i < all->n_records ? 0 : k;
		rc = bnf_verify_folds(orig, res->model.proto, &part, vo, rep, err);
		bnf_model_release_pages(&res->model);
	}
	return rc;
}

/* Bytes of the weight of the node of g that produces value, as float32;
 * SIZE_MAX when there is no such node or weight in g. */
static size_t weight_bytes(const Onnx__GraphProto *g, const char *value)
{
	const Onnx__NodeProto *node = NULL;
	size_t i, d, n = 4;

	for (i = 0; i < g->n_node && !node; i++)
		if (g->node[i]->n_output > 0 && g->node[i]->n_input > 1 && g->node[i]->output[0] &&
		    strcmp(g->node[i]->output[0], value) == 0)
			node = g->node[i];
	for (i = 0; node && i < g->n_initializer; i++) {
		const Onnx__TensorProto *t = g->initializer[i];
		if (!t->name || !node->input[1] || strcmp(t->name, node->input[1]) != 0)
			continue;
		for (d = 0; d < t->n_dims; d++)
			n = t->dims[d] > 0 && (size_t)t->dims[d] <= SIZE_MAX / n
			        ? n * (size_t)t->dims[d]
			        : SIZE_MAX;
		return n;
	}
	return SIZE_MAX;
}

/* Whether the per-fold check may run beside the folded model's run: the
 * reference half ran, two cores or more, and each fold's evaluations
 * (a few times its weight) stay small next to the model, so that both
 * at once do not raise the run's peak (r3d18's 28 MB convolutions do). */
static int fold_check_beside(const struct bnf_run_options *opt, const struct bnf_run_result *res,
                             const struct bnf_compare_state *cmp)
{
	size_t i, largest = 0;

	if (cmp->stage != BNF_COMPARE_STAGE_DONE || opt->verify.threads < 2)
		return 0;
	for (i = 0; i < res->fold.n_records + res->fold.n_affine; i++) {
		const struct bnf_bn_record *r = i < res->fold.n_records
		                                    ? &res->fold.records[i]
		                                    : &res->fold.affine[i - res->fold.n_records];
		size_t w;
		if (r->kind == BNF_FOLD_KIND_NONE)
			continue;
		if (r->graph[0] || !r->result)
			return 0; /* in a subgraph: not looked for */
		w = weight_bytes(res->model.proto->graph, r->result);
		if (w > largest)
			largest = w;
	}
	return largest <= res->in_size / 8;
}

/* The per-fold check run ahead on a thread of its own while the folded
 * model runs, as it runs after a whole-graph check that passed (computed
 * exactly only), into a report of its own, taken only if it did pass. */
struct fold_ahead {
	const Onnx__ModelProto *orig;
	struct bnf_run_result *res;
	struct bnf_verify_options vo;
	struct bnf_verify_report rep;
	struct bnf_error err;
	int rc;
	pthread_t thread;
	int started;
};

static void *fold_ahead_main(void *arg)
{
	struct fold_ahead *fa = arg;

	fa->rc = verify_each_fold(fa->orig, fa->res, &fa->vo, &fa->rep, &fa->err);
	return NULL;
}

static void fold_ahead_start(struct fold_ahead *fa, const Onnx__ModelProto *orig,
                             struct bnf_run_result *res, const struct bnf_verify_options *vo)
{
	memset(fa, 0, sizeof(*fa));
	fa->orig = orig;
	fa->res = res;
	fa->vo = *vo;
	fa->rep.whole_graph = 1;
	fa->rep.pass = 1;
	fa->rep.first_failed_fold = -1;
	fa->started = bnf_thread_start(&fa->thread, fold_ahead_main, fa) == 0;
}

/* Wait for the per-fold check run ahead; when take, its folds go to vr as
 * a per-fold check run now would have added them (vr has none yet), and
 * its status is returned (its message in err); else it is dropped and 1
 * is returned: the per-fold check is still to run. */
static int fold_ahead_finish(struct fold_ahead *fa, int take, struct bnf_verify_report *vr,
                             struct bnf_error *err)
{
	if (!fa->started)
		return 1;
	pthread_join(fa->thread, NULL);
	fa->started = 0;
	if (!take) {
		bnf_verify_report_free(&fa->rep);
		return 1;
	}
	vr->folds = fa->rep.folds;
	vr->n_folds = fa->rep.n_folds;
	vr->n_unchecked = fa->rep.n_unchecked;
	vr->first_failed_fold = fa->rep.first_failed_fold;
	vr->weight_ulps = fa->rep.weight_ulps;
	if (!fa->rep.pass)
		vr->pass = 0;
	fa->rep.folds = NULL;
	fa->rep.n_folds = 0;
	bnf_verify_report_free(&fa->rep);
	if (fa->rc != BNF_OK)
		*err = fa->err;
	return fa->rc;
}

/* The whole-graph check holds every weight of both models while it runs:
 * refuse it (the reason in err) when their weights alone pass the
 * --check-memory budget, and let the evaluator refuse activations beyond
 * it. *over_budget says memory was the reason. The reference half runs
 * now unless it ran before the fold (cmp). */
static int compare_within_budget(const struct bnf_run_options *opt, const Onnx__ModelProto *orig,
                                 const Onnx__ModelProto *folded, struct bnf_compare_state *cmp,
                                 struct bnf_verify_report *vr, int *over_budget,
                                 struct bnf_error *err)
{
	struct bnf_verify_options vo = compare_options(opt);
	size_t need = bnf_compare_bytes(orig, folded);
	char a[32], b[32];
	int rc;

	bnf_format_size((double)need, a, sizeof(a));
	bnf_format_size((double)opt->check_memory, b, sizeof(b));
	if (opt->check_memory && need > opt->check_memory) {
		*over_budget = 1;
		bnf_verify_report_free(vr);
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "the weights of both models need %s, above the --check-memory "
		                "budget of %s",
		                a, b);
	}
	if (cmp->stage == BNF_COMPARE_STAGE_NONE)
		bnf_compare_reference(orig, &vo, cmp, vr);
	rc = bnf_compare_candidate(orig, folded, cmp, vr, err);
	if (rc == BNF_ERR_NOMEM && opt->check_memory) {
		*over_budget = 1;
		bnf_error_prefix(err, "above the --check-memory budget of %s", b);
	}
	return rc;
}

/* The check of a fold: the whole graph when it can run, and each folded
 * pair in any case. A whole-graph check that cannot run (an operator the
 * evaluator lacks, inputs the model rejects, the memory budget) never
 * fails the fold: its reason goes to vr->fallback and the per-fold check
 * stands alone. Returns BNF_OK with res->verified set, or an error when
 * the per-fold check itself cannot run. */
static int check_fold(const struct bnf_run_options *opt, const Onnx__ModelProto *orig,
                      struct bnf_compare_state *cmp, struct bnf_run_result *res)
{
	struct bnf_verify_options per_fold = opt->verify;
	struct bnf_verify_report *vr = &res->verify;
	struct fold_ahead ahead;
	struct bnf_error why;
	int rc, over_budget = 0;

	memset(&why, 0, sizeof(why));
	/* The evaluations of each fold one at a time: side by side they held
	 * the working memory of the largest layer twice (r3d18: +215 MiB
	 * above the folded weights instead of +140, the peak of the whole
	 * run), and took no less time, each being small. */
	per_fold.threads = 1;
	memset(&ahead, 0, sizeof(ahead));
	if (fold_check_beside(opt, res, cmp)) {
		fold_ahead_start(&ahead, orig, res, &per_fold);
		if (ahead.started)
			cmp->opt.threads = opt->verify.threads - 1; /* the folded model */
	}
	rc = compare_within_budget(opt, orig, res->model.proto, cmp, vr, &over_budget, &why);
	bnf_compare_state_free(cmp);
	if (rc != BNF_OK) {
		/* What the comparison learnt stays (the input shapes it tried). */
		vr->whole_graph = 0;
		snprintf(vr->fallback, sizeof(vr->fallback), "%s", why.msg);
		/* The folded model failed where the original ran: a wrong fold,
		 * not a reason to skip. An input the user gave that cannot be
		 * made is a bad argument. Anything else (the original cannot run
		 * at these inputs, memory) means the check could not run. */
		res->folded_broke = vr->second_failed;
		if (rc == BNF_ERR_INPUT && !res->folded_broke && !over_budget) {
			fold_ahead_finish(&ahead, 0, vr, &res->err);
			res->err = why;
			bnf_error_prefix(&res->err, "check");
			return rc;
		}
		vr->pass = !res->folded_broke;
	}
	if (rc == BNF_OK)
		whole_graph_inconclusive(vr);
	rc = fold_ahead_finish(&ahead, rc == BNF_OK && vr->whole_graph && vr->pass, vr, &res->err);
	release_whole_graph(res);
	if (rc == 1)
		rc = verify_each_fold(orig, res, &per_fold, vr, &res->err);
	if (rc != BNF_OK) {
		bnf_error_prefix(&res->err, "check");
		return rc;
	}
	if (!vr->whole_graph && vr->n_unchecked)
		vr->pass = 0; /* neither proof ran for some fold */
	if (res->folded_broke)
		vr->pass = 0;
	res->check_ran = 1;
	res->verified = vr->pass;
	return BNF_OK;
}

/* The names of the user's --shape, --input and --dim against the model,
 * before any work: a misspelt name is a usage error, not a reason to skip
 * the check. (The files themselves are read when the check runs: one may
 * be a pipe that is written only then.) */
static int check_input_names(const struct bnf_run_options *opt, struct bnf_run_result *res)
{
	int rc;

	if (opt->no_verify || !opt->verify.inputs)
		return BNF_OK;
	rc = bnf_inputs_check_names(res->model.proto, opt->verify.inputs, &res->err);
	if (rc != BNF_OK)
		bnf_error_prefix(&res->err, "check");
	return rc;
}

/* Convert training-mode nodes to eval mode; *orig receives the check's
 * reference (the model in eval mode, before folding) when anything
 * changed and a check will run. */
static int train_to_eval(const struct bnf_run_options *opt, struct bnf_run_result *res,
                         Onnx__ModelProto **orig)
{
	int rc;

	phase(opt, BNF_RUN_PHASE_TRAIN_MODE, 1);
	rc = bnf_train_mode_to_eval(res->model.proto, &res->train, &res->err);
	phase(opt, BNF_RUN_PHASE_TRAIN_MODE, 0);
	if (rc != BNF_OK) {
		bnf_error_prefix(&res->err, "%s", bnf_path_label(opt->input, 0));
		return rc;
	}
	res->train_ran = 1;
	if (res->train.n_converted > 0 && !opt->no_verify &&
	    !(*orig = copy_model(res->model.proto)))
		return bnf_fail(&res->err, BNF_ERR_NOMEM, "out of memory");
	return BNF_OK;
}

/* Write the result: the staged file when the check already wrote it, the
 * input's own bytes when nothing changed and nothing moves, else the tree
 * with its tensors where the plan says. */
static int write_output(const struct bnf_run_options *opt, struct bnf_run_result *res,
                        const struct bnf_write_plan *plan, struct bnf_staged_write *staged,
                        int early)
{
	size_t out_size = 0, data_size = 0;
	int verbatim, rc;

	if ((rc = bnf_model_check_intact(&res->model, opt->input, &res->err)) != BNF_OK)
		return rc;
	phase(opt, BNF_RUN_PHASE_WRITE, 1);
	verbatim = !res->changed && res->model.n_external == 0 &&
	           bnf_data_mode_resolve(plan->mode, 0, res->in_size) == BNF_DATA_MODE_INLINE;
	if (early)
		rc = bnf_model_write_commit(staged, &out_size, &res->err);
	else if (verbatim)
		rc = bnf_model_write_bytes(opt->output, res->model.bytes, res->model.size,
		                           &res->err);
	else
		rc = bnf_external_write(opt->ext, res->model.proto, opt->output, plan, &out_size,
		                        &data_size, &res->err);
	phase(opt, BNF_RUN_PHASE_WRITE, 0);
	if (rc != BNF_OK)
		return rc;
	res->written = 1;
	res->out_size = verbatim ? res->in_size : out_size + data_size;
	if (!opt->hash)
		return BNF_OK;
	if (strcmp(opt->output, "-") != 0)
		bnf_sha256_file(opt->output, res->output_sha256);
	else if (res->changed)
		bnf_model_sha256(res->model.proto, res->output_sha256);
	else
		memcpy(res->output_sha256, res->input_sha256, 65);
	return BNF_OK;
}

/* Fold, then check what changed. Returns BNF_OK to go on to writing, 1
 * when the check failed and nothing is to be written, or an error. */
static int fold_and_check(const struct bnf_run_options *opt, struct bnf_run_result *res,
                          const struct bnf_write_plan *plan, struct bnf_unpack_job *ref_job,
                          Onnx__ModelProto **orig, struct bnf_compare_state *cmp,
                          struct bnf_staged_write *staged, int *early)
{
	struct bnf_fold_options fo;
	int rc;

	memset(&fo, 0, sizeof(fo));
	fo.ext = opt->ext;
	fo.lower_bn = opt->lower_bn;
	fo.freeze_initializer_inputs = opt->freeze_initializer_inputs;
	phase(opt, BNF_RUN_PHASE_FOLD, 1);
	rc = bnf_fold_model(res->model.proto, &fo, &res->fold, &res->err);
	phase(opt, BNF_RUN_PHASE_FOLD, 0);
	if (rc != BNF_OK) {
		bnf_error_prefix(&res->err, "%s", bnf_path_label(opt->input, 0));
		return rc;
	}
	res->fold_ran = 1;
	res->changed = res->fold.n_changed > 0 || res->train.n_converted > 0;
	if (res->fold.n_changed == 0 || opt->no_verify) {
		/* The original's runs were for nothing: no check. */
		bnf_compare_state_free(cmp);
		bnf_verify_report_free(&res->verify);
		memset(&res->verify, 0, sizeof(res->verify));
		if (res->changed) {
			bnf_model_unpack_cancel(ref_job);
			bnf_model_drop_bytes(&res->model);
		}
		return BNF_OK;
	}
	if (!*orig && (rc = bnf_model_unpack_finish(ref_job, &res->model, opt->input, opt->ext,
	                                            orig, &res->err)) != BNF_OK)
		return rc;
	bnf_model_drop_bytes(&res->model);
	/* The pages the fold read are not needed now; the check reads back
	 * those it needs. */
	bnf_model_release_pages(&res->model);
	/* The output goes to its temporary file while the check runs. */
	*early = opt->output && bnf_external_write_is_plain(res->model.proto, plan, opt->output) &&
	         bnf_model_write_start(opt->output, res->model.proto, staged, &res->err) == BNF_OK;
	phase(opt, BNF_RUN_PHASE_CHECK, 1);
	rc = check_fold(opt, *orig, cmp, res);
	phase(opt, BNF_RUN_PHASE_CHECK, 0);
	if (rc != BNF_OK)
		return rc;
	if (!res->verified) {
		res->verdict = BNF_RUN_VERDICT_CHECK_FAILED;
		if (!opt->force || !opt->output)
			return 1;
		res->forced = 1;
	}
	return BNF_OK;
}

enum bnf_run_verdict bnf_run_fold(const struct bnf_run_options *opt, struct bnf_run_result *res)
{
	struct bnf_write_plan plan = opt->plan;
	struct bnf_unpack_job ref_job;
	struct bnf_staged_write staged;
	struct bnf_compare_state cmp;
	Onnx__ModelProto *orig = NULL;
	int rc, early = 0, first;

	memset(res, 0, sizeof(*res));
	memset(&cmp, 0, sizeof(cmp));
	memset(&ref_job, 0, sizeof(ref_job));
	memset(&staged, 0, sizeof(staged));
	if ((rc = read_input(opt, res)) != BNF_OK || (rc = check_input_names(opt, res)) != BNF_OK)
		goto out;
	/* The check's reference, the input as it is, is unpacked a second
	 * time on another core. Without a check, a tree that copied the
	 * file's bytes lets the file's pages go. */
	first = may_check_first(opt, res->model.proto);
	if (!opt->no_verify && !opt->train_eval && !first)
		bnf_model_unpack_start(&res->model, &ref_job);
	else if (opt->no_verify || opt->train_eval)
		bnf_model_release_pages(&res->model);
	res->in_size = res->model.size + (size_t)bnf_model_external_bytes(res->model.proto);
	plan.input_external = res->model.n_external;
	if ((rc = prepare_spill(opt, &plan, res->in_size, &res->err)) != BNF_OK)
		goto out;
	if (opt->train_eval && (rc = train_to_eval(opt, res, &orig)) != BNF_OK)
		goto out;
	/* The original's runs of the check come before the fold, when it
	 * may fold anything: the folded weights are not made until they end. */
	if (first)
		compare_reference_first(opt, res, &ref_job, &orig, &cmp);
	rc = fold_and_check(opt, res, &plan, &ref_job, &orig, &cmp, &staged, &early);
	if (rc != BNF_OK)
		goto out;
	bnf_model_count(res->model.proto, &res->nodes_after, &res->initializers_after);
	if (!opt->output)
		/* What would be written: the model and its external tensors. */
		res->out_size = res->changed
		                    ? onnx__model_proto__get_packed_size(res->model.proto) +
		                          (size_t)bnf_model_external_bytes(res->model.proto)
		                    : res->in_size;
	else if ((rc = write_output(opt, res, &plan, &staged, early)) != BNF_OK)
		goto out;
	if (opt->lint)
		rc = lint_model(opt, res, &res->fold, NULL);
out:
	bnf_compare_state_free(&cmp);
	bnf_model_write_abort(&staged);
	if (orig && orig != ref_job.proto) /* train_to_eval's copy */
		onnx__model_proto__free_unpacked(orig, &bnf_large_allocator);
	bnf_model_unpack_cancel(&ref_job);
	if (rc < 0)
		return unusable(res);
	return res->verdict;
}

void bnf_run_result_free(struct bnf_run_result *res)
{
	if (!res)
		return;
	bnf_lint_report_free(&res->lint);
	bnf_train_report_free(&res->train);
	bnf_verify_report_free(&res->verify);
	bnf_fold_report_free(&res->fold);
	bnf_model_release(&res->model);
}
