/*
 * The fold driver: finds every BatchNormalization, decides whether it runs
 * in eval mode with constant parameters, hands it to the fold for its
 * producer, repeats until nothing more folds (a fold can expose another),
 * then removes the tensors and nodes that no longer have readers.
 */
#include "fold/fold.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/external.h"
#include "fold/internal.h"
#include "util/mem.h"
#include "io/tensor_data.h"
#include "io/validate.h"

static const char *const fold_kind_names[BNF_FOLD_KIND_COUNT] = {
    [BNF_FOLD_KIND_NONE] = "none",
    [BNF_FOLD_KIND_CONV] = "conv",
    [BNF_FOLD_KIND_GEMM] = "gemm",
    [BNF_FOLD_KIND_MATMUL] = "matmul",
    [BNF_FOLD_KIND_CONVTRANSPOSE] = "convtranspose",
    [BNF_FOLD_KIND_AFFINE] = "affine",
    [BNF_FOLD_KIND_LOWERED] = "lowered",
};

/* Each reason's code, and whether a user can act on it when it keeps a
 * Mul/Add/Sub/Div (those not actionable are listed only with -vv: on a
 * typical exported detector most such nodes are activation arithmetic). */
static const struct {
	const char *code;
	int actionable;
} keep_reasons[BNF_KEEP_REASON_COUNT] = {
    [BNF_KEEP_REASON_NONE] = {"none", 0},
    [BNF_KEEP_REASON_OTHER_CONSUMER] = {"other-consumer", 0},
    [BNF_KEEP_REASON_GRAPH_OUTPUT] = {"graph-output", 0},
    [BNF_KEEP_REASON_NON_CONSTANT] = {"non-constant", 1},
    [BNF_KEEP_REASON_TRAINING_MODE] = {"training-mode", 1},
    [BNF_KEEP_REASON_SPATIAL] = {"spatial", 0},
    [BNF_KEEP_REASON_SHAPE_MISMATCH] = {"shape-mismatch", 0},
    [BNF_KEEP_REASON_UNKNOWN_SHAPE] = {"unknown-shape", 0},
    [BNF_KEEP_REASON_UNSUPPORTED_PRODUCER] = {"unsupported-producer", 0},
    [BNF_KEEP_REASON_NO_PRODUCER] = {"no-producer", 0},
    [BNF_KEEP_REASON_UNSUPPORTED_DTYPE] = {"unsupported-dtype", 0},
    [BNF_KEEP_REASON_OVERFLOW] = {"overflow", 1},
    [BNF_KEEP_REASON_PADDING] = {"padding", 0},
    [BNF_KEEP_REASON_NOT_PER_CHANNEL] = {"not-per-channel", 0},
    [BNF_KEEP_REASON_PASS_THROUGH_UNSAFE] = {"pass-through-unsafe", 1},
    [BNF_KEEP_REASON_ZERO_DIVISOR] = {"zero-divisor", 0},
    [BNF_KEEP_REASON_NOT_AFFINE] = {"not-affine", 0},
};

const char *bnf_fold_kind_name(enum bnf_fold_kind kind)
{
	return (unsigned)kind < BNF_FOLD_KIND_COUNT ? fold_kind_names[kind] : "?";
}

const char *bnf_keep_reason_code(enum bnf_keep_reason reason)
{
	return (unsigned)reason < BNF_KEEP_REASON_COUNT ? keep_reasons[reason].code : "?";
}

int bnf_keep_reason_actionable(enum bnf_keep_reason reason)
{
	return (unsigned)reason < BNF_KEEP_REASON_COUNT && keep_reasons[reason].actionable;
}

/* ---- eval-mode identities between a layer and what follows it ---- */

/* ---- BatchNormalization analysis ---- */

/* Is the BN used for training? Each opset family says so differently:
 * is_test=0 before opset 7, training_mode=1 from opset 14, and in every
 * version the optional running-statistics outputs exist only for training. */
static int bn_training_mode(const Onnx__NodeProto *bn, int opset, struct fold_outcome *out)
{
	size_t i;

	if (opset < 7 && bnf_fold_attr_int(bn, "is_test", 0) == 0)
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_TRAINING_MODE,
		           "is_test=0 (opset %d): the node normalises with batch statistics",
		           opset),
		       1;
	if (opset >= 14 && bnf_fold_attr_int(bn, "training_mode", 0) != 0)
		return bnf_fold_keep(out, BNF_KEEP_REASON_TRAINING_MODE,
		                     "training_mode=1: the node normalises with batch statistics"),
		       1;
	for (i = 1; i < bn->n_output; i++)
		if (bn->output[i][0])
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_TRAINING_MODE,
			           "optional output '%s' is present: the node is exported "
			           "for training",
			           bn->output[i]),
			       1;
	return 0;
}

/* Read scale, B, mean and var and turn them into s and t. Returns 1 when
 * the BN is usable, 0 when kept (out set), negative on a malformed model. */
static int bn_affine(struct fold_ctx *ctx, const struct bnf_graph *gi, struct fold_bn *bn,
                     struct fold_outcome *out)
{
	static const char *const roles[4] = {"scale", "B", "mean", "var"};
	const Onnx__NodeProto *node = bn->node;
	const Onnx__TensorProto *tensors[4] = {NULL, NULL, NULL, NULL};
	double *v[4] = {NULL, NULL, NULL, NULL};
	size_t n[4] = {0, 0, 0, 0};
	double eps = bnf_fold_attr_float(node, "epsilon", (double)1e-5f);
	int rc = 1, k;
	size_t c;

	for (k = 0; k < 4 && rc == 1; k++)
		rc = bnf_fold_read_constant(ctx, gi, node, (size_t)k + 1, roles[k], &v[k], &n[k],
		                            &tensors[k], out);
	if (rc != 1)
		goto out;
	for (k = 1; k < 4; k++)
		if (n[k] != n[0]) {
			rc = bnf_fail(ctx->err, BNF_ERR_INPUT,
			              "node '%s': BatchNormalization %s '%s' has %zu values but "
			              "scale '%s' has %zu",
			              bnf_node_label(node), roles[k], node->input[k + 1], n[k],
			              node->input[1], n[0]);
			goto out;
		}
	/* spatial=0 (opsets before 9) means one parameter per element of
	 * C x D1 x ...; that is only per-channel when the extra dims are 1. */
	if (gi->opset < 9 && bnf_fold_attr_int(node, "spatial", 1) == 0) {
		size_t d;
		for (d = 1; d < tensors[0]->n_dims; d++)
			if (tensors[0]->dims[d] != 1) {
				rc = bnf_fold_keep(
				    out, BNF_KEEP_REASON_SPATIAL,
				    "spatial=0 with per-element parameters of rank %zu",
				    tensors[0]->n_dims);
				rc = 0;
				goto out;
			}
	}
	bn->channels = n[0];
	bn->s = malloc((n[0] ? n[0] : 1) * sizeof(double));
	bn->t = malloc((n[0] ? n[0] : 1) * sizeof(double));
	if (!bn->s || !bn->t) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (c = 0; c < n[0]; c++) {
		bn->s[c] = v[0][c] / sqrt(v[3][c] + eps);
		bn->t[c] = v[1][c] - v[2][c] * bn->s[c];
	}
out:
	for (k = 0; k < 4; k++)
		free(v[k]);
	return rc;
}

static int is_affine_op(const Onnx__NodeProto *node)
{
	return bnf_node_is(node, "Mul") || bnf_node_is(node, "Add") || bnf_node_is(node, "Sub") ||
	       bnf_node_is(node, "Div");
}

/* An Add one of whose operands a MatMul produces: the MatMul's bias. */
static int adds_to_matmul(struct fold_ctx *ctx, const struct bnf_graph *gi,
                          const Onnx__NodeProto *node)
{
	size_t k;
	if (!bnf_node_is(node, "Add"))
		return 0;
	for (k = 0; k < node->n_input; k++) {
		const Onnx__NodeProto *p = bnf_fold_producer(ctx, gi, node->input[k]);
		if (p && bnf_node_is(p, "MatMul"))
			return 1;
	}
	return 0;
}

/* Fold the BN into the layer producing its input x (through pass-through
 * nodes already walked), or say why not. */
static int fold_after_layer(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                            Onnx__NodeProto *producer, const char *x, struct fold_outcome *out)
{
	const struct bnf_fold_target *target;

	if (!producer)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_NO_PRODUCER,
		    "its input '%s' is a graph input or constant, not a layer output", x);
	if (bnf_graph_is_output(gi, x))
		return bnf_fold_keep(out, BNF_KEEP_REASON_GRAPH_OUTPUT,
		                     "the output '%s' of %s '%s' is also a graph output", x,
		                     producer->op_type, bnf_node_label(producer));
	if (bnf_graph_uses(gi, x) > 1)
		return bnf_fold_keep(out, BNF_KEEP_REASON_OTHER_CONSUMER,
		                     "the output '%s' of %s '%s' is also read by another node", x,
		                     producer->op_type, bnf_node_label(producer));
	if ((target = bnf_fold_target_of(producer)) != NULL)
		return target->after(ctx, gi, bn, producer, out);
	if (adds_to_matmul(ctx, gi, producer))
		return bnf_fold_into_matmul(ctx, gi, bn, producer, out);
	if (is_affine_op(producer))
		return bnf_fold_keep_behind_affine(ctx, gi, producer, out);
	return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
	                     "its input comes from %s '%s'; bnfold folds into %s",
	                     producer->op_type ? producer->op_type : "?", bnf_node_label(producer),
	                     bnf_fold_targets_named);
}

/* Try to fold the BN: into the layer before it (through Identity and
 * eval-mode Dropout), else into the layer after it. On return out says
 * what happened. */
static int fold_one(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *bn_node,
                    struct fold_outcome *out, struct fold_bn *bn)
{
	struct fold_outcome before;
	Onnx__NodeProto *producer;
	const char *x;
	int rc, tried = 0;

	memset(bn, 0, sizeof(*bn));
	bn->node = bn_node;
	if (bn_node->n_input < 5 || bn_node->n_output < 1 || !bn_node->output[0][0])
		return bnf_fail(
		    ctx->err, BNF_ERR_INPUT,
		    "node '%s': BatchNormalization needs 5 inputs and an output, has %zu "
		    "inputs",
		    bnf_node_label(bn_node), bn_node->n_input);
	if (bn_training_mode(bn_node, gi->opset, out))
		return BNF_OK;
	rc = bn_affine(ctx, gi, bn, out);
	if (rc <= 0)
		return rc;
	x = bn_node->input[0];
	producer = bnf_fold_walk_back(ctx, gi, &x, out);
	if (out->reason == BNF_KEEP_REASON_NONE && producer && bnf_fold_is_layout_op(producer)) {
		/* Transpose, Reshape, ... between: the walk keeps every node on
		 * the way, identities included. */
		out->n_pass = 0;
		rc = bnf_fold_through_layout(ctx, gi, bn,
		                             bnf_fold_producer(ctx, gi, bn_node->input[0]), out);
		if (rc != BNF_OK || out->reason == BNF_KEEP_REASON_NONE)
			return rc;
	} else if (out->reason == BNF_KEEP_REASON_NONE) {
		rc = fold_after_layer(ctx, gi, bn, producer, x, out);
		if (rc != BNF_OK || out->reason == BNF_KEEP_REASON_NONE)
			return rc;
	}
	/* The affine node in front folds first, if it can: wait for it. */
	if (out->blocker && !ctx->settled)
		return BNF_OK;
	/* No layer in front can take it: maybe the one after it can. */
	switch (out->reason) {
	case BNF_KEEP_REASON_NO_PRODUCER:
	case BNF_KEEP_REASON_UNSUPPORTED_PRODUCER:
	case BNF_KEEP_REASON_OTHER_CONSUMER:
	case BNF_KEEP_REASON_GRAPH_OUTPUT:
	case BNF_KEEP_REASON_PASS_THROUGH_UNSAFE:
		break;
	default:
		return BNF_OK;
	}
	memset(&before, 0, sizeof(before));
	rc = bnf_fold_bn_before_layer(ctx, gi, bn, &before, &tried);
	/* An affine node in front that stays is the obstacle to name, unless
	 * the layer after takes the BN. */
	if (rc == BNF_OK && tried && (!out->blocker || before.reason == BNF_KEEP_REASON_NONE))
		*out = before;
	return rc;
}

static double max_abs(const double *v, size_t n, size_t *where)
{
	double best = 0.0;
	size_t i;
	*where = 0;
	for (i = 0; i < n; i++)
		if (fabs(v[i]) > best || isnan(v[i])) {
			best = fabs(v[i]);
			*where = i;
		}
	return best;
}

static void free_record(struct bnf_bn_record *r)
{
	free(r->bn_name);
	free(r->bn_output);
	free(r->op_type);
	free(r->result);
	free(r->graph);
	free(r->detail);
	free(r->target_op);
	free(r->target_name);
}

/* A later fold renamed `from` (the value an earlier fold's node produced)
 * to `to`: the earlier folds of this graph now end in `to`. */
static int absorb_records(struct bnf_bn_record *recs, size_t n, const char *path, const char *from,
                          const char *to)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char *copy;
		if (recs[i].kind == BNF_FOLD_KIND_NONE || strcmp(recs[i].graph, path) != 0 ||
		    strcmp(recs[i].result, from) != 0)
			continue;
		if (!(copy = strdup(to)))
			return -1;
		free(recs[i].result);
		recs[i].result = copy;
	}
	return 0;
}

/* Record what happened to node (a BN, or with affine set a Mul/Add/Sub/Div). */
static int add_record(struct fold_ctx *ctx, const char *path, const Onnx__NodeProto *bn_node,
                      const struct fold_outcome *out, const struct fold_bn *bn, int affine)
{
	struct bnf_fold_report *rep = ctx->rep;
	struct bnf_bn_record **list = affine ? &rep->affine : &rep->records;
	size_t *n = affine ? &rep->n_affine : &rep->n_records;
	struct bnf_bn_record *p = realloc(*list, (*n + 1) * sizeof(*p));
	struct bnf_bn_record *r;
	const char *result = "";

	if (!p)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	*list = p;
	r = &p[*n];
	memset(r, 0, sizeof(*r));
	if (out->reason == BNF_KEEP_REASON_NONE)
		result = out->result ? out->result : bn_node->output[0];
	r->bn_name = strdup(bnf_node_label(bn_node));
	r->bn_output = strdup(bn_node->n_output ? bn_node->output[0] : "");
	r->op_type = strdup(affine ? bn_node->op_type : "BatchNormalization");
	r->result = strdup(result);
	r->graph = strdup(path);
	r->reason = out->reason;
	r->detail = strdup(out->reason ? out->detail : "");
	/* Every BN is worth a line under -v; a Mul/Add/Sub/Div kept for a
	 * reason nobody can act on only under -vv. */
	r->verbosity = affine && out->reason != BNF_KEEP_REASON_NONE &&
	                       !bnf_keep_reason_actionable(out->reason)
	                   ? 2
	                   : 1;
	if (out->reason == BNF_KEEP_REASON_NONE) {
		r->kind = out->kind;
		r->target_op = strdup(out->target->op_type);
		r->target_name = strdup(bnf_node_label(out->target));
	} else {
		r->target_op = strdup("");
		r->target_name = strdup("");
	}
	if (bn && bn->s)
		r->max_scale = max_abs(bn->s, bn->channels, &r->max_scale_channel);
	if (!r->bn_name || !r->bn_output || !r->op_type || !r->result || !r->graph || !r->detail ||
	    !r->target_op || !r->target_name) {
		free_record(r);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	/* Folds this one absorbed now end where it ends. */
	if (out->reason == BNF_KEEP_REASON_NONE && ctx->renamed_from &&
	    (absorb_records(rep->records, rep->n_records, path, ctx->renamed_from, result) != 0 ||
	     absorb_records(rep->affine, rep->n_affine, path, ctx->renamed_from, result) != 0)) {
		free_record(r);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	(*n)++;
	if (out->reason == BNF_KEEP_REASON_NONE) {
		rep->n_changed++;
		rep->by_kind[out->kind]++;
		if (affine)
			rep->n_affine_folded++;
		else if (out->kind == BNF_FOLD_KIND_LOWERED)
			rep->n_lowered++;
		else
			rep->n_folded++;
	}
	return BNF_OK;
}

/* Free the nodes marked dead and close the gaps, keeping node order. */
static void compact_nodes(Onnx__GraphProto *g, const unsigned char *dead, size_t *removed)
{
	size_t i, j = 0;
	for (i = 0; i < g->n_node; i++) {
		if (dead[i]) {
			onnx__node_proto__free_unpacked(g->node[i], &bnf_large_allocator);
			(*removed)++;
		} else {
			g->node[j++] = g->node[i];
		}
	}
	g->n_node = j;
}

static int mark_dead(const struct bnf_graph *gi, const Onnx__NodeProto *node, unsigned char *dead)
{
	size_t i;
	for (i = 0; i < gi->g->n_node; i++)
		if (gi->g->node[i] == node) {
			dead[i] = 1;
			return 1;
		}
	return 0;
}

/* Check that every node input names something that exists: a node output,
 * an initializer or a graph input here or in an enclosing graph. */
static int check_inputs(struct fold_ctx *ctx, const struct bnf_graph *gi)
{
	size_t i, j;
	for (i = 0; i < gi->g->n_node; i++) {
		const Onnx__NodeProto *node = gi->g->node[i];
		for (j = 0; j < node->n_input; j++) {
			const struct bnf_graph *scope;
			const char *name = node->input[j];
			if (!name[0])
				continue;
			for (scope = gi; scope; scope = scope->parent)
				if (bnf_strmap_get(&scope->producer, name, NULL) ||
				    bnf_strmap_get(&scope->initializer, name, NULL) ||
				    bnf_strmap_get(&scope->inputs, name, NULL))
					break;
			if (!scope)
				return bnf_fail(
				    ctx->err, BNF_ERR_INPUT,
				    "node '%s': input '%s' names a tensor that does not exist",
				    bnf_node_label(node), name);
		}
	}
	return BNF_OK;
}

struct kept_entry {
	Onnx__NodeProto *node;
	struct fold_outcome out;
	struct fold_bn bn;
	int affine; /* a Mul/Add/Sub/Div, not a BN */
};

static int waits_for_affine(const struct kept_entry *kept, size_t n_kept)
{
	size_t i;
	for (i = 0; i < n_kept; i++)
		if (!kept[i].affine && kept[i].out.blocker)
			return 1;
	return 0;
}

/* A BN kept behind an affine node that stays: the affine node's reason
 * is the real obstacle, so it becomes the BN's. */
static void explain_blocked(struct kept_entry *kept, size_t n_kept)
{
	size_t i, j;

	for (i = 0; i < n_kept; i++) {
		struct fold_outcome *o = &kept[i].out;
		if (kept[i].affine || !o->blocker)
			continue;
		for (j = 0; j < n_kept; j++) {
			const struct fold_outcome *a = &kept[j].out;
			char detail[sizeof(o->detail)];
			if (!kept[j].affine || kept[j].node != o->blocker)
				continue;
			/* A reason too long for the record is cut, not lost. */
			if (snprintf(detail, sizeof(detail), "%s; %s '%s' stays (%s): %s",
			             o->detail, kept[j].node->op_type, bnf_node_label(kept[j].node),
			             bnf_keep_reason_code(a->reason),
			             a->detail) >= (int)sizeof(detail))
				detail[sizeof(detail) - 1] = '\0';
			memcpy(o->detail, detail, sizeof(detail));
			o->reason = a->reason;
		}
	}
}

/* Mark node (of gi's graph) in flags; returns 0 when it is not there. */
static int mark_node(const struct bnf_graph *gi, const Onnx__NodeProto *node, unsigned char *flags)
{
	return node ? mark_dead(gi, node, flags) : 0;
}

/* Release every input and output of a node that a fold removed. */
static int release_node(struct fold_ctx *ctx, const struct bnf_graph *gi,
                        const Onnx__NodeProto *node)
{
	size_t k;
	int rc = BNF_OK;
	for (k = 0; k < node->n_input && rc == BNF_OK; k++)
		rc = bnf_fold_release(ctx, gi, node->input[k]);
	for (k = 1; k < node->n_output && rc == BNF_OK; k++)
		rc = bnf_fold_release(ctx, gi, node->output[k]);
	return rc;
}

/* Keep what an attempt that did not fold says (when it was one: tried),
 * its parameters included (they may serve --lower-bn); free them if not. */
static void remember_kept(struct kept_entry *kept, size_t *n_kept, Onnx__NodeProto *node,
                          const struct fold_outcome *out, struct fold_bn *bn, int affine, int tried)
{
	if (!tried) {
		free(bn->s);
		free(bn->t);
		return;
	}
	kept[*n_kept].node = node;
	kept[*n_kept].out = *out;
	kept[*n_kept].bn = *bn;
	kept[*n_kept].affine = affine;
	(*n_kept)++;
}

/* A fold of node i of the sweep happened: release what it read and mark
 * the nodes it removed (dead) or changed (stale, for this sweep). */
static int commit_fold(struct fold_ctx *ctx, struct bnf_graph *gi, size_t i,
                       const struct fold_outcome *out, unsigned char *dead, unsigned char *stale)
{
	size_t k;
	int rc = BNF_OK;

	/* A BN rewritten as its MatMul's bias Add stays a node. */
	if (!out->rewritten)
		rc = release_node(ctx, gi, gi->g->node[i]);
	for (k = 0; k < out->n_pass && rc == BNF_OK; k++) {
		rc = release_node(ctx, gi, out->pass[k]);
		if (rc == BNF_OK)
			rc = bnf_fold_release(ctx, gi, out->pass[k]->output[0]);
		mark_node(gi, out->pass[k], dead);
		mark_node(gi, out->pass[k], stale);
	}
	dead[i] = !out->rewritten;
	stale[i] = 1;
	mark_node(gi, out->also_removed, dead);
	mark_node(gi, out->also_removed, stale);
	mark_node(gi, out->target, stale);
	return rc;
}

/* Can a kept BN be lowered to Mul + Add? Not when its parameters are
 * unusable or it runs in training mode. */
static int lowerable(const struct kept_entry *k)
{
	switch (k->out.reason) {
	case BNF_KEEP_REASON_NON_CONSTANT:
	case BNF_KEEP_REASON_TRAINING_MODE:
	case BNF_KEEP_REASON_SPATIAL:
	case BNF_KEEP_REASON_UNSUPPORTED_DTYPE:
		return 0;
	default:
		return !k->affine && k->bn.s && k->bn.t;
	}
}

static void free_kept(struct kept_entry *kept, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		free(kept[i].bn.s);
		free(kept[i].bn.t);
	}
	free(kept);
}

static int fold_graph(struct fold_ctx *ctx, Onnx__GraphProto *g, const struct bnf_graph *parent,
                      int opset, const char *path, int depth);

struct sub_ctx {
	struct fold_ctx *ctx;
	const struct bnf_graph *parent;
	int opset;
	const char *path;
	const Onnx__NodeProto *node;
	int depth;
};

static int fold_subgraph_cb(Onnx__GraphProto *sub, void *arg)
{
	struct sub_ctx *s = arg;
	char path[512];

	bnf_subgraph_path(path, sizeof(path), s->path, s->node, sub);
	return fold_graph(s->ctx, sub, s->parent, s->opset, path, s->depth + 1);
}

static int fold_graph(struct fold_ctx *ctx, Onnx__GraphProto *g, const struct bnf_graph *parent,
                      int opset, const char *path, int depth)
{
	struct bnf_graph gi;
	struct kept_entry *kept = NULL;
	size_t n_kept = 0, i;
	unsigned char *dead = NULL, *stale = NULL;
	int rc = BNF_OK, changed = 1, pass;

	if (depth > BNF_LIMIT_GRAPH_DEPTH)
		return bnf_fail(ctx->err, BNF_ERR_INPUT,
		                "subgraphs nested more than 64 deep at '%s'", path);
	memset(&gi, 0, sizeof(gi));
	ctx->settled = 0;
	while (changed) {
		changed = 0;
		free_kept(kept, n_kept);
		kept = NULL;
		n_kept = 0;
		bnf_fold_constants_forget(ctx);
		bnf_graph_release(&gi);
		if ((rc = bnf_fold_index(ctx, &gi, g, parent, opset)) != BNF_OK)
			goto out;
		if ((rc = check_inputs(ctx, &gi)) != BNF_OK)
			goto out;
		free(dead);
		free(stale);
		dead = calloc(g->n_node + 1, 1);
		stale = calloc(g->n_node + 1, 1);
		kept = calloc(g->n_node + 1, sizeof(*kept));
		ctx->stale = stale;
		if (!dead || !stale || !kept) {
			rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
			goto out;
		}
		/* BNs first (so MatMul -> Add -> BN stays one matmul fold), then
		 * the Mul/Add/Sub/Div by constants. A node a fold of this sweep
		 * touched waits for the next sweep and its fresh index. */
		for (pass = 0; pass < 2; pass++)
			for (i = 0; i < g->n_node; i++) {
				Onnx__NodeProto *node = g->node[i];
				struct fold_outcome out;
				struct fold_bn bn;
				int tried = 1;

				if (stale[i] ||
				    !(pass == 0 ? bnf_node_is(node, "BatchNormalization")
				                : is_affine_op(node)))
					continue;
				memset(&out, 0, sizeof(out));
				memset(&bn, 0, sizeof(bn));
				ctx->renamed_from = NULL;
				if (pass == 0)
					rc = fold_one(ctx, &gi, node, &out, &bn);
				else
					rc = bnf_fold_affine(ctx, &gi, node, &out, &tried);
				if (rc != BNF_OK || !tried || out.reason != BNF_KEEP_REASON_NONE) {
					remember_kept(kept, &n_kept, node, &out, &bn, pass,
					              rc == BNF_OK && tried);
					if (rc != BNF_OK)
						goto out;
					continue;
				}
				rc = add_record(ctx, path, node, &out, &bn, pass);
				free(bn.s);
				free(bn.t);
				if (rc == BNF_OK)
					rc = commit_fold(ctx, &gi, i, &out, dead, stale);
				if (rc != BNF_OK)
					goto out;
				changed = 1;
			}
		ctx->stale = NULL;
		compact_nodes(g, dead, &ctx->rep->nodes_removed);
		/* Nothing more folds, yet some BN waits for an affine node in
		 * front of it that stays: one more sweep lets it fold after. */
		if (!changed && !ctx->settled && waits_for_affine(kept, n_kept))
			ctx->settled = changed = 1;
	}
	explain_blocked(kept, n_kept);
	/* Nothing more folds: lower what is left, if asked. */
	for (i = 0; i < n_kept && ctx->opt && ctx->opt->lower_bn; i++) {
		struct fold_outcome lo;
		if (!lowerable(&kept[i]))
			continue;
		memset(&lo, 0, sizeof(lo));
		ctx->renamed_from = NULL;
		if ((rc = bnf_fold_lower_bn(ctx, &gi, &kept[i].bn, &lo)) != BNF_OK)
			goto out;
		if (lo.reason == BNF_KEEP_REASON_NONE) {
			kept[i].out = lo;
		} else {
			size_t used = strlen(kept[i].out.detail);
			snprintf(kept[i].out.detail + used, sizeof(kept[i].out.detail) - used,
			         "; not lowered: %s", lo.detail);
		}
	}
	for (i = 0; i < n_kept; i++)
		if ((rc = add_record(ctx, path, kept[i].node, &kept[i].out, &kept[i].bn,
		                     kept[i].affine)) != BNF_OK)
			goto out;
	/* Subgraphs see this graph's values: index it as it is now. */
	bnf_graph_release(&gi);
	if ((rc = bnf_fold_index(ctx, &gi, g, parent, opset)) != BNF_OK)
		goto out;
	for (i = 0; i < g->n_node; i++) {
		struct sub_ctx s = {ctx, &gi, opset, path, g->node[i], depth};
		rc = bnf_node_for_each_subgraph(g->node[i], fold_subgraph_cb, &s);
		if (rc != BNF_OK)
			goto out;
	}
out:
	ctx->stale = NULL;
	free_kept(kept, n_kept);
	free(dead);
	free(stale);
	bnf_graph_release(&gi);
	return rc;
}

int bnf_fold_model(Onnx__ModelProto *model, const struct bnf_fold_options *opt,
                   struct bnf_fold_report *rep, struct bnf_error *err)
{
	struct fold_ctx ctx;
	int opset = bnf_model_opset(model);
	size_t i;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.opt = opt;
	ctx.rep = rep;
	ctx.err = err;
	ctx.ir_version = model->has_ir_version ? (long long)model->ir_version : 0;
	/* Below IR version 4 every initializer is listed as a graph input and
	 * none can be overridden: runtimes take them as constants. */
	ctx.list_initializers = model->has_ir_version && model->ir_version < 4;
	ctx.frozen_inputs = ctx.list_initializers || (opt && opt->freeze_initializer_inputs);
	bnf_strmap_init(&ctx.new_names);
	rc = fold_graph(&ctx, model->graph, NULL, opset, "", 0);
	if (rc == BNF_OK && rep->n_changed > 0)
		rc = bnf_fold_cleanup_graph(&ctx, model->graph, NULL, opset, 0);
	if (rc == BNF_OK && rep->n_changed > 0)
		rc = bnf_fold_share_equal(&ctx, model->graph);
	bnf_fold_constants_forget(&ctx);
	for (i = 0; i < ctx.n_released; i++)
		free(ctx.released[i].name);
	free(ctx.released);
	for (i = 0; i < ctx.n_owned; i++)
		free(ctx.owned[i]);
	free(ctx.owned);
	bnf_strmap_free(&ctx.new_names);
	return rc;
}

void bnf_fold_report_free(struct bnf_fold_report *rep)
{
	size_t i;
	if (!rep)
		return;
	for (i = 0; i < rep->n_records; i++)
		free_record(&rep->records[i]);
	for (i = 0; i < rep->n_affine; i++)
		free_record(&rep->affine[i]);
	free(rep->records);
	free(rep->affine);
	memset(rep, 0, sizeof(*rep));
}
