/*
 * The per-fold check (verify.h): each fold's original chain (layer + BN,
 * or BN + layer, or layer + Mul/Add...) and the node that replaced it,
 * cut out of their models and run on random inputs, in the terms of the
 * error model (errmodel.c):
 *
 *   in float64           |B64 - R| <= W u sqrt(sum (w'x)^2 + b'^2) for
 *                        every element, W = 16: evaluated exactly, the
 *                        folded node differs from the exact pair only by
 *                        the one rounding of each folded weight to its
 *                        type (a few roundings for a chain of folds), so
 *                        each element's error is within a few units u of
 *                        its own scale (the squares twin of chain.h gives
 *                        it). This is what catches a fold a little wrong
 *                        (epsilon ignored moves a weight by 5e-6 = 84 u
 *                        in float32) where the stored-precision rounding
 *                        of a big layer would hide it. The original's
 *                        error is 0 here: the limit is the floor of this
 *                        test, the rounding of the weights.
 *   in stored precision  |B - R| <= K |A - R| + F u s, normwise and
 *                        elementwise, as for graph outputs (R: the
 *                        original chain in float64, A: in its own type,
 *                        B: the folded node in its own type), when the
 *                        whole-graph check could not run or failed (one
 *                        that passed vouches for the stored precision),
 *                        and whenever the float64 test cannot run.
 *
 * For --compare it also pairs the nodes of the candidate that replace
 * chains of the reference.
 */
#include "check/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/chain.h"
#include "check/internal.h"
#include "check/jobs.h"
#include "eval/tensor.h"

/* The inputs squared, in float32: the input of the squares twin. */
static int squared_inputs(const struct bnf_named_tensors *in, struct bnf_named_tensors *out,
                          struct bnf_error *err)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	out->names = calloc(in->n + 1, sizeof(*out->names));
	out->tensors = calloc(in->n + 1, sizeof(*out->tensors));
	if (!out->names || !out->tensors) {
		bnf_named_tensors_free(out);
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < in->n; i++) {
		const struct bnf_tensor *t = in->tensors[i];
		struct bnf_tensor *sq = bnf_tensor_new_uninit(ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
		                                              t->rank, t->dims, err);
		out->names[i] = strdup(in->names[i]);
		out->tensors[i] = sq;
		out->n++;
		if (!sq || !out->names[i]) {
			bnf_named_tensors_free(out);
			return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		}
		for (j = 0; j < t->count; j++) {
			double v = bnf_tensor_get_double(t, j);
			((float *)sq->data)[j] = (float)(v * v);
		}
	}
	return BNF_OK;
}

/* The worst element of the float64 run: |B64 - R| in units u of its
 * scale sqrt(sq), sq from the squares twin. */
static double weight_ulps(const struct bnf_tensor *b64, const struct bnf_tensor *r,
                          const struct bnf_tensor *sq, double u)
{
	double worst = 0;
	size_t i;

	if (b64->count != r->count || sq->count != r->count)
		return INFINITY;
	for (i = 0; i < r->count; i++) {
		double d = fabs(bnf_tensor_get_double(b64, i) - bnf_tensor_get_double(r, i));
		double scale = u * sqrt(bnf_tensor_get_double(sq, i));
		double x = scale > 0 ? d / scale : (d > 0 ? INFINITY : 0);
		if (!(x <= worst)) /* NaN counts as the worst */
			worst = isnan(x) ? INFINITY : x;
	}
	return worst;
}

/* The models of one fold's evaluations: R and B64 (float64) from before
 * and after, A and B (stored precision) too, and the squares (float32). */
struct pair_models {
	const Onnx__ModelProto *before, *after, *squares; /* squares may be NULL */
	int dtype;
	int stored; /* run A and B too */
};

static int check_pair(const struct pair_models *pm, int runs, const struct bnf_verify_options *opt,
                      struct bnf_fold_check *fc, struct bnf_error *err)
{
	struct bnf_err_acc acc_fold, acc_orig;
	double u = bnf_unit_roundoff(pm->dtype), worst = -1;
	int s, rc = BNF_OK,
	       exact = pm->squares && pm->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
	/* Without the float64 test, the stored-precision one decides. */
	int stored = pm->stored || !exact, ia = -1, ib = -1, ie = -1, iq = -1;

	memset(&acc_fold, 0, sizeof(acc_fold));
	memset(&acc_orig, 0, sizeof(acc_orig));
	for (s = 0; s < runs && rc == BNF_OK; s++) {
		struct bnf_named_tensors in, in_sq;
		struct bnf_input_spec none;
		struct bnf_check_job job[5];
		int n = 0;

		memset(&none, 0, sizeof(none));
		memset(&in_sq, 0, sizeof(in_sq));
		if ((rc = bnf_inputs_make(pm->before, &none, opt->seed, s, &in, err)) != BNF_OK)
			break;
		if (exact && (rc = squared_inputs(&in, &in_sq, err)) != BNF_OK) {
			bnf_named_tensors_free(&in);
			break;
		}
		/* R first; B64 and the squares; A and B when asked. */
		bnf_check_job_init(&job[n++], pm->before, &in, 1, opt->max_bytes, opt->ext);
		if (exact) {
			bnf_check_job_init(&job[ie = n++], pm->after, &in, 1, opt->max_bytes,
			                   opt->ext);
			bnf_check_job_init(&job[iq = n++], pm->squares, &in_sq, 0, opt->max_bytes,
			                   opt->ext);
		}
		if (stored) {
			bnf_check_job_init(&job[ia = n++], pm->before, &in, 0, opt->max_bytes,
			                   opt->ext);
			bnf_check_job_init(&job[ib = n++], pm->after, &in, 0, opt->max_bytes,
			                   opt->ext);
		}
		rc = bnf_check_jobs_run(job, n, opt->threads, err);
		if (rc == BNF_OK && stored) {
			bnf_err_acc_add(&acc_fold, job[ib].outs[0], job[0].outs[0], NULL);
			bnf_err_acc_add(&acc_orig, job[ia].outs[0], job[0].outs[0], NULL);
		}
		if (rc == BNF_OK && exact) {
			double w = weight_ulps(job[ie].outs[0], job[0].outs[0], job[iq].outs[0], u);
			if (w > worst)
				worst = w;
		}
		bnf_check_jobs_free(job, n, 1);
		bnf_named_tensors_free(&in);
		bnf_named_tensors_free(&in_sq);
	}
	if (rc != BNF_OK)
		return rc;
	fc->dtype = pm->dtype;
	fc->stored = stored;
	fc->weight_ulps = worst;
	fc->pass = worst < 0 || worst <= BNF_PROOF_WEIGHT_ULPS;
	if (!stored)
		return BNF_OK;
	fc->folded_abs = acc_fold.max_abs;
	fc->folded_rel = acc_fold.max_rel;
	fc->orig_abs = acc_orig.max_abs;
	fc->orig_rel = acc_orig.max_rel;
	fc->folded_norm = bnf_err_norm(&acc_fold) * bnf_err_norm(&acc_fold);
	fc->orig_norm = bnf_err_norm(&acc_orig) * bnf_err_norm(&acc_orig);
	bnf_err_judge(&acc_fold, &acc_orig, NULL, pm->dtype, &fc->verdict);
	fc->pass =
	    fc->pass && !acc_fold.shape_mismatch && acc_fold.nonfinite_x == 0 && fc->verdict.pass;
	return BNF_OK;
}

/* Two chain models with the same nodes and the same constants (names,
 * types, shapes and bytes): nothing to check between them. */
static int chains_identical(const Onnx__ModelProto *x, const Onnx__ModelProto *y)
{
	const Onnx__GraphProto *gx = x->graph, *gy = y->graph;
	size_t i;

	if (gx->n_node != gy->n_node || gx->n_initializer != gy->n_initializer)
		return 0;
	for (i = 0; i < gx->n_node; i++)
		if (!bnf_chain_same_message(gx->node[i], gy->node[i]))
			return 0;
	for (i = 0; i < gx->n_initializer; i++) {
		const Onnx__TensorProto *tx = gx->initializer[i], *ty = gy->initializer[i];
		if (tx->has_raw_data && ty->has_raw_data && tx->raw_data.len == ty->raw_data.len &&
		    tx->data_type == ty->data_type && tx->n_dims == ty->n_dims &&
		    strcmp(tx->name, ty->name) == 0 &&
		    memcmp(tx->dims, ty->dims, tx->n_dims * sizeof(tx->dims[0])) == 0 &&
		    memcmp(tx->raw_data.data, ty->raw_data.data, tx->raw_data.len) == 0)
			continue;
		if (!bnf_chain_same_message(tx, ty))
			return 0;
	}
	return 1;
}

/* The layout nodes a fold leaves between the layer and the BN's output
 * (fold/layout.c): each reads its data on input 0. */
static int is_layout(const Onnx__NodeProto *node)
{
	return bnf_node_is(node, "Transpose") || bnf_node_is(node, "Squeeze") ||
	       bnf_node_is(node, "Unsqueeze") || bnf_node_is(node, "Reshape");
}

/* The layer of the folded side: the node producing result (behind the
 * layout nodes of a layout fold), or the MatMul under the Add of a MatMul
 * + Add, or the Mul of a lowered BN. */
/* The producer of name behind any layout nodes. */
static Onnx__NodeProto *behind_layout(const struct bnf_graph *gi, const char *name)
{
	Onnx__NodeProto *node = bnf_graph_producer(gi, name, NULL);
	int hops;

	for (hops = 0; node && is_layout(node) && node->n_input && hops < 16; hops++)
		node = bnf_graph_producer(gi, node->input[0], NULL);
	return node;
}

static Onnx__NodeProto *folded_layer(struct bnf_pair_site *sf, int lowered)
{
	const struct bnf_graph *gi = &sf->index[sf->depth];
	Onnx__NodeProto *node = sf->node, *p = NULL;
	size_t k;

	if (lowered)
		return node->n_input ? bnf_graph_producer(gi, node->input[0], NULL) : NULL;
	if (is_layout(node) && node->n_input)
		node = behind_layout(gi, node->input[0]);
	if (!node || !bnf_node_is(node, "Add"))
		return node;
	/* A MatMul's Add: its bias, or the shift a fold put behind layout
	 * nodes in the BN's place. */
	for (k = 0; k < node->n_input && !p; k++) {
		p = behind_layout(gi, node->input[k]);
		if (p && !bnf_node_is(p, "MatMul"))
			p = NULL;
	}
	return p;
}

/* A MatMul whose input the graph proves of rank r > 2 (a layout fold's
 * [N, T, C] @ [C, M]) gets that rank: the declared dims where fixed (a
 * Reshape behind it may depend on them), 3 elsewhere, K last. */
static int matmul_rank(const struct bnf_graph *gi, const Onnx__NodeProto *layer, int *rank,
                       int64_t *dims, int *batch_dim)
{
	int64_t declared[BNF_MAX_RANK];
	int r, d, n;

	if (!bnf_node_is(layer, "MatMul") || *rank != 2)
		return 0;
	r = bnf_graph_value_rank(gi, layer->input[0]);
	if (r <= 2)
		return 0;
	if (r > BNF_MAX_RANK)
		return -1;
	n = bnf_graph_value_shape(gi, layer->input[0], declared, BNF_MAX_RANK);
	dims[r - 1] = dims[1];
	for (d = 0; d < r - 1; d++)
		dims[d] = n == r && declared[d] > 0 ? declared[d] : 3;
	*rank = r;
	*batch_dim = -1;
	return 0;
}

/* A dilated Conv run as one residue class of itself (chain.h), at the
 * input shape of its rewritten copy. Returns 1 when rewritten. */
static int undilate_chains(const struct bnf_graph *gi, Onnx__ModelProto *before,
                           Onnx__ModelProto *after, int *rank, int64_t *dims, int *batch_dim)
{
	Onnx__NodeProto *conv = bnf_chain_undilate(before, after);
	int dtype;

	return conv && bnf_chain_layer_input_shape(gi, conv, &dtype, rank, dims, batch_dim) == 0;
}

/* How to check one pair: a lowered BN, the stored-precision test too,
 * skip identical chains (*same set to 1). */
struct pair_how {
	int lowered, stored;
	int *same;
};

/* Cut the two chains out and run them; a pair that cannot be cut out or
 * run gets a note. */
static int check_sites(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                       struct bnf_pair_site *so, struct bnf_pair_site *sf, const char *result,
                       const struct pair_how *how, const struct bnf_verify_options *opt,
                       struct bnf_fold_check *fc, char *note, size_t len, struct bnf_error *err)
{
	const struct bnf_graph *gi = &sf->index[sf->depth];
	Onnx__NodeProto *layer = folded_layer(sf, how->lowered);
	struct pair_models pm;
	Onnx__ModelProto *before = NULL, *after = NULL, *squares = NULL;
	int rank = 0, rc = BNF_OK, batch_dim = -1, runs = opt->samples > 0 ? opt->samples : 1;
	int64_t dims[BNF_MAX_RANK];

	memset(&pm, 0, sizeof(pm));
	if (how->lowered) {
		/* X -> Mul(s) -> Add(t): X has the rank of s plus one. */
		if (!layer ||
		    bnf_chain_lowered_input_shape(gi, layer, &pm.dtype, &rank, dims) != 0) {
			snprintf(note, len, "cannot find a valid input shape for the Mul");
			return BNF_OK;
		}
	} else if (!layer ||
	           bnf_chain_layer_input_shape(gi, layer, &pm.dtype, &rank, dims, &batch_dim) !=
	               0 ||
	           matmul_rank(gi, layer, &rank, dims, &batch_dim) != 0) {
		snprintf(note, len, "cannot find a valid input shape for the layer");
		return BNF_OK;
	}
	before = bnf_chain_model(orig, so, layer->input[0], result, pm.dtype, rank, dims);
	after = bnf_chain_model(folded, sf, layer->input[0], result, pm.dtype, rank, dims);
	if (!before || !after) {
		snprintf(note, len, "cannot extract the pair from the models");
		goto out;
	}
	if (how->same && chains_identical(before, after)) {
		*how->same = 1;
		goto out;
	}
	if (!how->lowered && undilate_chains(gi, before, after, &rank, dims, &batch_dim))
		fc->undilated = 1;
	/* All samples in one batch: each evaluation then reads the weights
	 * once, which is most of its cost. */
	if (batch_dim >= 0) {
		dims[batch_dim] *= runs;
		runs = 1;
	}
	bnf_chain_set_input_dims(before, rank, dims);
	bnf_chain_set_input_dims(after, rank, dims);
	fc->input_rank = rank;
	memcpy(fc->input_dims, dims, (size_t)rank * sizeof(dims[0]));
	/* A float64 fold computed exactly is the fold itself: no squares. */
	if (pm.dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
	    (rc = bnf_chain_squares(after, opt->ext, &squares, err)) != BNF_OK)
		goto out;
	pm.before = before;
	pm.after = after;
	pm.squares = squares;
	pm.stored = how->stored;
	rc = check_pair(&pm, runs, opt, fc, err);
	if (rc == BNF_ERR_UNSUPPORTED) {
		snprintf(note, len, "%s", err ? err->msg : "unsupported");
		rc = BNF_OK;
	}
out:
	bnf_chain_squares_free(squares);
	bnf_chain_model_free(before);
	bnf_chain_model_free(after);
	return rc;
}

struct bnf_fold_sites {
	struct bnf_pair_site orig, folded;
	int orig_indexed, folded_indexed;
};

struct bnf_fold_sites *bnf_fold_sites_new(const Onnx__ModelProto *orig,
                                          const Onnx__ModelProto *folded)
{
	struct bnf_fold_sites *fs = calloc(1, sizeof(*fs));
	int opset = bnf_model_opset(orig);

	if (!fs)
		return NULL;
	fs->orig_indexed = bnf_chain_index_main(orig->graph, opset, &fs->orig);
	fs->folded_indexed = bnf_chain_index_main(folded->graph, opset, &fs->folded);
	return fs;
}

void bnf_fold_sites_free(struct bnf_fold_sites *fs)
{
	if (!fs)
		return;
	if (fs->orig_indexed)
		bnf_chain_release_site(&fs->orig);
	if (fs->folded_indexed)
		bnf_chain_release_site(&fs->folded);
	free(fs);
}

int bnf_check_fold_pair(struct bnf_fold_sites *fs, const Onnx__ModelProto *orig,
                        const Onnx__ModelProto *folded, const char *result, int lowered, int stored,
                        const struct bnf_verify_options *opt, struct bnf_fold_check *fc, int *same,
                        struct bnf_error *err)
{
	struct pair_how how = {lowered, stored, same};
	struct bnf_pair_site *so = &fs->orig, *sf = &fs->folded;
	char note[600] = "";
	int rc = BNF_OK;

	fc->weight_ulps = -1;
	/* The fold's result value: made by the original chain (BN, Mul, ...
	 * or the layer after a BN) and by the folded node, which reads data. */
	if (!fs->orig_indexed || !bnf_chain_find_site_in(so, result, NULL))
		snprintf(note, sizeof(note), "the folded value '%s' is not in the original model",
		         result);
	else if (!fs->folded_indexed || !bnf_chain_find_site_in(sf, result, NULL))
		snprintf(note, sizeof(note), "folded node not found in the new model");
	else
		rc = check_sites(orig, folded, so, sf, result, &how, opt, fc, note, sizeof(note),
		                 err);
	bnf_chain_release_subsites(so);
	bnf_chain_release_subsites(sf);
	if (note[0]) {
		fc->note = strdup(note);
		fc->pass = 0;
	}
	return rc;
}

int bnf_verify_add_fold(struct bnf_verify_report *rep, struct bnf_fold_check *fc,
                        struct bnf_error *err)
{
	struct bnf_fold_check *p = realloc(rep->folds, (rep->n_folds + 1) * sizeof(*p));

	if (!p || !fc->bn_name || !fc->target) {
		free(fc->bn_name);
		free(fc->op_type);
		free(fc->target);
		free(fc->note);
		if (p)
			rep->folds = p;
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	rep->folds = p;
	rep->folds[rep->n_folds++] = *fc;
	if (fc->note) {
		rep->n_unchecked++;
		return BNF_OK;
	}
	if (!fc->pass) {
		rep->pass = 0;
		if (rep->first_failed_fold < 0)
			rep->first_failed_fold = (long)rep->n_folds - 1;
	}
	if (fc->weight_ulps > rep->weight_ulps)
		rep->weight_ulps = fc->weight_ulps;
	if (!rep->whole_graph) {
		if (fc->folded_abs > rep->max_abs)
			rep->max_abs = fc->folded_abs;
		if (fc->folded_rel > rep->max_rel)
			rep->max_rel = fc->folded_rel;
		if (fc->folded_abs > rep->exact_abs)
			rep->exact_abs = fc->folded_abs;
		if (rep->n_folds - rep->n_unchecked == 1 || fc->verdict.ratio > rep->ratio) {
			rep->ratio = fc->verdict.ratio;
			rep->ratio_dtype = fc->dtype;
		}
		if (fc->verdict.used > rep->used)
			rep->used = fc->verdict.used;
	}
	return BNF_OK;
}

/* Check the fold of record r and append it to rep. */
static int verify_record(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                         struct bnf_fold_sites *fs, const struct bnf_bn_record *r, int affine,
                         int stored, const struct bnf_verify_options *opt,
                         struct bnf_verify_report *rep, struct bnf_error *err)
{
	struct bnf_fold_check fc;
	char target[512];
	int rc;

	memset(&fc, 0, sizeof(fc));
	snprintf(target, sizeof(target), "%s '%s'", r->target_op, r->target_name);
	fc.bn_name = strdup(r->bn_name);
	fc.op_type = affine ? strdup(r->op_type) : NULL;
	fc.target = strdup(target);
	if (affine && !fc.op_type) {
		free(fc.bn_name);
		fc.bn_name = NULL; /* bnf_verify_add_fold reports it */
	}
	rc = bnf_check_fold_pair(fs, orig, folded, r->result, r->kind == BNF_FOLD_KIND_LOWERED,
	                         stored, opt, &fc, NULL, err);
	if (bnf_verify_add_fold(rep, &fc, err) != BNF_OK)
		return BNF_ERR_NOMEM;
	if (rc != BNF_OK)
		bnf_error_prefix(err, "checking the fold of '%s'", r->bn_name);
	return rc;
}

int bnf_verify_folds(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                     const struct bnf_fold_report *frep, const struct bnf_verify_options *opt,
                     struct bnf_verify_report *rep, struct bnf_error *err)
{
	struct bnf_fold_sites *fs = NULL;
	size_t i;
	int rc = BNF_OK;

	/* A whole-graph check that passed vouches for the stored precision:
	 * each fold is then checked computed exactly, the stronger test of
	 * its weights; in stored precision too when the whole graph could not
	 * run or failed. */
	int stored = !rep->whole_graph || !rep->pass;

	if (rep->n_folds == 0) {
		rep->first_failed_fold = -1;
		rep->weight_ulps = -1;
	}
	for (i = 0; rc == BNF_OK && i < frep->n_records + frep->n_affine; i++) {
		int affine = i >= frep->n_records;
		const struct bnf_bn_record *r =
		    affine ? &frep->affine[i - frep->n_records] : &frep->records[i];

		if (r->kind == BNF_FOLD_KIND_NONE)
			continue;
		/* The graphs are indexed once: per fold, that was quadratic. */
		if (!fs && !(fs = bnf_fold_sites_new(orig, folded)))
			return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		rc = verify_record(orig, folded, fs, r, affine, stored, opt, rep, err);
	}
	bnf_fold_sites_free(fs);
	return rc;
}
