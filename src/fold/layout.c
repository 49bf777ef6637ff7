/*
 * BatchNormalization behind layout nodes (BatchNorm1d as Unsqueeze -> BN ->
 * Squeeze; channels-last MatMul -> Transpose/Reshape -> BN): the walk
 * follows the BN's channel axis back to the layer, whose fold applies when
 * that axis is its output channel.
 */
#include <stdio.h>
#include <string.h>

#include "fold/internal.h"

#define LAYOUT_MAX_NODES 8
#define LAYOUT_MAX_RANK  16

/* Where the BN's channel is on the way back: axis of the current value
 * (>= 0 from the front, < 0 from the back: -1 is the last axis) and the
 * value's rank (-1 when unknown). */
struct channel_axis {
	int axis;
	int rank;
};

struct layout_path {
	Onnx__NodeProto *nodes[LAYOUT_MAX_NODES]; /* from the BN's producer back */
	size_t n;
	char via[200]; /* "Transpose 't'" or "Transpose 't' and 2 more", for messages */
};

static int normalized(const struct channel_axis *c)
{
	return c->axis < 0 && c->rank >= 0 ? c->axis + c->rank : c->axis;
}

/* Axes of a Squeeze/Unsqueeze (attribute before opset 13, a constant input
 * since), normalised against rank r when negative. Returns their count, -1
 * when unknown or negative without a known rank. */
static int layout_axes(struct fold_ctx *ctx, const struct bnf_graph *gi, const Onnx__NodeProto *p,
                       int r, long long *axes)
{
	const Onnx__AttributeProto *a = bnf_node_attr(p, "axes");
	int n = -1, i;

	if (a && a->n_ints <= LAYOUT_MAX_RANK) {
		n = (int)a->n_ints;
		for (i = 0; i < n; i++)
			axes[i] = a->ints[i];
	} else if (!a && p->n_input >= 2 && p->input[1][0]) {
		n = bnf_fold_int_values(ctx, gi, p->input[1], axes, LAYOUT_MAX_RANK);
	}
	for (i = 0; i < n; i++)
		if (axes[i] < 0) {
			if (r < 0)
				return -1;
			axes[i] += r;
		}
	return n;
}

static int axis_listed(const long long *axes, int n, int axis)
{
	int i;
	for (i = 0; i < n; i++)
		if (axes[i] == axis)
			return 1;
	return 0;
}

/* Map the channel from the output of layout node p to its input, as the
 * proof in bnf_fold_through_layout's header says. Returns 1, or 0 with a keep
 * outcome. */
static int map_back(struct fold_ctx *ctx, const struct bnf_graph *gi, const Onnx__NodeProto *p,
                    const struct fold_bn *bn, struct channel_axis *c, struct fold_outcome *out)
{
	long long v[LAYOUT_MAX_RANK];
	const char *op = p->op_type, *name = bnf_node_label(p);
	int n, i, a, k;

	if (bnf_node_is(p, "Identity") || bnf_node_is(p, "Dropout"))
		return 1;
	if (bnf_node_is(p, "Transpose")) {
		const Onnx__AttributeProto *perm = bnf_node_attr(p, "perm");
		n = perm ? (int)perm->n_ints : c->rank;
		if (n < 0 || n > LAYOUT_MAX_RANK)
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
			           "the rank of the output of Transpose '%s' is not known", name),
			       0;
		c->rank = n;
		a = normalized(c);
		if (a < 0 || a >= n)
			return bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			                     "Transpose '%s' has no axis %d", name, a),
			       0;
		c->axis = perm ? (int)perm->ints[a] : n - 1 - a;
		return 1;
	}
	if (bnf_node_is(p, "Unsqueeze")) {
		n = layout_axes(ctx, gi, p, c->rank, v);
		a = normalized(c);
		if (n < 0 || a < 0)
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
			           "the axes of Unsqueeze '%s' or the rank of its output are "
			           "not known",
			           name),
			       0;
		if (axis_listed(v, n, a))
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			           "the BatchNormalization channel is axis %d, which Unsqueeze "
			           "'%s' inserts",
			           a, name),
			       0;
		for (i = 0, k = a; i < n; i++)
			if (v[i] < a)
				k--;
		c->axis = k;
		c->rank = c->rank >= 0 ? c->rank - n : -1;
		return 1;
	}
	if (bnf_node_is(p, "Squeeze")) {
		int in_rank = -1;
		if (c->rank >= 0) {
			/* the input rank is the output's plus the axes removed */
			n = layout_axes(ctx, gi, p, -1, v);
			in_rank = n >= 0 ? c->rank + n : -1;
		}
		n = layout_axes(ctx, gi, p, in_rank, v);
		a = normalized(c);
		if (n < 0 || a < 0)
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
			           "the axes of Squeeze '%s' or the rank of its output are not "
			           "known",
			           name),
			       0;
		/* output axis a is the a-th input axis Squeeze keeps */
		for (k = 0, i = -1; i < a; k++)
			if (!axis_listed(v, n, k))
				i++;
		c->axis = k - 1;
		c->rank = in_rank;
		return 1;
	}
	if (bnf_node_is(p, "Reshape")) {
		n = p->n_input >= 2 ? bnf_fold_int_values(ctx, gi, p->input[1], v, LAYOUT_MAX_RANK)
		                    : -1;
		if (n < 0)
			return bnf_fold_keep(out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
			                     "the shape of Reshape '%s' is not a constant", name),
			       0;
		c->rank = n;
		a = normalized(c);
		if (a < 0 || a >= n || v[a] != (long long)bn->channels)
			return bnf_fold_keep(
			           out, BNF_KEEP_REASON_SHAPE_MISMATCH,
			           "Reshape '%s' does not give the BatchNormalization channel "
			           "(axis %d) as a literal %zu in its shape",
			           name, a, bn->channels),
			       0;
		for (k = a + 1; k < n; k++)
			if (v[k] != 1)
				return bnf_fold_keep(
				           out, BNF_KEEP_REASON_SHAPE_MISMATCH,
				           "Reshape '%s' has %lld (not 1) on axis %d after the "
				           "BatchNormalization channel: the channel is not "
				           "provably the "
				           "last axis of its input",
				           name, v[k], k),
				       0;
		c->axis = -1; /* the last axis of the Reshape's input */
		c->rank = bnf_fold_value_rank(gi, p->input[0]);
		return 1;
	}
	return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
	                     "%s '%s' is not a layout node", op, name),
	       0;
}

int bnf_fold_is_layout_op(const Onnx__NodeProto *node)
{
	return bnf_node_is(node, "Transpose") || bnf_node_is(node, "Unsqueeze") ||
	       bnf_node_is(node, "Squeeze") || bnf_node_is(node, "Reshape");
}

static void describe_path(struct layout_path *path)
{
	const Onnx__NodeProto *first = path->nodes[path->n - 1];
	size_t layout = 0, i;

	for (i = 0; i < path->n; i++)
		layout += bnf_fold_is_layout_op(path->nodes[i]);
	snprintf(path->via, sizeof(path->via), "%s '%s'", first->op_type, bnf_node_label(first));
	if (layout > 1)
		snprintf(path->via + strlen(path->via), sizeof(path->via) - strlen(path->via),
		         " and %zu more layout node%s", layout - 1, layout == 2 ? "" : "s");
}

/* The MatMul an Add with a constant operand adds to, or NULL. */
static Onnx__NodeProto *bias_of_matmul(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                       const Onnx__NodeProto *add)
{
	struct bnf_const_ref ref;
	size_t k;

	if (!bnf_node_is(add, "Add") || add->n_input != 2)
		return NULL;
	for (k = 0; k < 2; k++) {
		Onnx__NodeProto *p = bnf_fold_producer(ctx, gi, add->input[k]);
		if (p && bnf_node_is(p, "MatMul") &&
		    bnf_fold_constant(ctx, gi, add->input[1 - k], &ref) == 1)
			return p;
	}
	return NULL;
}

/* The axis of a target's output that holds its channels, given the rank r
 * of that output (-1 when unknown): 1, or the last (-1 when r is unknown). */
static int channel_axis_of(const struct bnf_fold_target *t, int r)
{
	if (!t->channel_last)
		return 1;
	return r >= 0 ? r - 1 : -1;
}

/*
 * Layer -> layout nodes -> BatchNormalization
 *
 *   X -> Layer(W, B?) -> L1 -> ... -> Lk -> BN -> Y
 *   becomes
 *   X -> Layer(W', B') -> L1 -> ... -> Lk -> Y
 *   (a MatMul of rank > 2 without a bias Add: X -> MatMul(W') -> L1 ... ->
 *    Lk -> Add(t') -> Y, the BN node rewritten as the Add, t' of shape
 *    [C, 1, ..., 1])
 *
 * Proof that the channel maps. Each Li (Transpose, Unsqueeze, Squeeze,
 * Reshape, Identity, eval-mode Dropout) only moves values; the walk takes
 * the BN's channel, axis 1 of Lk's output, back to the axis of Li's input
 * that holds the same index for every element:
 *   Transpose(perm): output axis a is input axis perm[a] (perm absent: the
 *     reversal, rank - 1 - a);
 *   Unsqueeze(axes): output axis a not in axes is input axis a - #{axes < a}
 *     (a in axes: the channel is an axis of size 1 Unsqueeze made: kept);
 *   Squeeze(axes): output axis a is the a-th input axis not in axes
 *     (Squeeze without axes: kept, which dims go is not known);
 *   Reshape(shape), shape constant (or computed from constants): a reshape
 *     keeps the row-major flat index f of every element; when shape[a] = C
 *     (the BN's channel count, literally) and every later entry is 1, the
 *     index along axis a is f mod C, and so is the index along the input's
 *     last axis if that axis has C elements: the channel is the input's
 *     last axis. That axis has C elements because the walk ends on a layer
 *     axis of C channels, which the axes before it only carry along.
 * When the walk reaches a layer and the axis is its output channel (axis 1
 * of a Conv, ConvTranspose or Gemm; the last axis of a MatMul with a
 * constant 2-D weight (K, C), whose columns are its channels), each element
 * in channel c of the BN's input is an element of the layer's channel c,
 * so BN(L(layer(x))) = L(s * layer(x) + t) per channel and the layer's own
 * fold (fold_layers.c) applies, its channel count checked there.
 *
 * Folds when also: every value on the way is read by one node only and is
 * not a graph output; at most 8 nodes between. Lk then takes over the BN's
 * output name.
 */
int bnf_fold_through_layout(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                            Onnx__NodeProto *first, struct fold_outcome *out)
{
	const struct bnf_fold_target *target;
	struct layout_path path;
	struct channel_axis c;
	Onnx__NodeProto *p = first, *layer = NULL, *add = NULL;
	const char *v = bn->node->input[0];
	int want;

	memset(&path, 0, sizeof(path));
	c.axis = 1;
	c.rank = bnf_fold_value_rank(gi, v);
	bn->input_rank = c.rank;
	for (;;) {
		if (bnf_graph_is_output(gi, v))
			return bnf_fold_keep(out, BNF_KEEP_REASON_GRAPH_OUTPUT,
			                     "'%s' on the way from the layer is a graph output", v);
		if (bnf_graph_uses(gi, v) != 1)
			return bnf_fold_keep(
			    out, BNF_KEEP_REASON_OTHER_CONSUMER,
			    "'%s' on the way from the layer is also read by another node", v);
		if (!p || bnf_fold_node_stale(ctx, gi, p))
			return bnf_fold_keep(
			    out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
			    "'%s' comes from no layer, or from one another fold of this "
			    "sweep changed",
			    v);
		if (!bnf_fold_is_layout_op(p) && !bnf_node_is(p, "Identity") &&
		    !bnf_node_is(p, "Dropout"))
			break;
		if (bnf_node_is(p, "Dropout") && !bnf_fold_dropout_is_identity(gi, p, out))
			return BNF_OK;
		if (path.n == LAYOUT_MAX_NODES || p->n_input < 1 || !p->input[0][0])
			return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
			                     "more than %d layout nodes between the layer and it",
			                     LAYOUT_MAX_NODES);
		path.nodes[path.n++] = p;
		if (!map_back(ctx, gi, p, bn, &c, out))
			return BNF_OK;
		v = p->input[0];
		p = bnf_fold_producer(ctx, gi, v);
	}
	describe_path(&path);
	if ((add = p) && (layer = bias_of_matmul(ctx, gi, add)) != NULL) {
		const char *mm_out = layer->output[0];
		if (bnf_graph_uses(gi, mm_out) != 1 || bnf_graph_is_output(gi, mm_out))
			return bnf_fold_keep(
			    out, BNF_KEEP_REASON_OTHER_CONSUMER,
			    "the output of MatMul '%s' is also read outside Add '%s'",
			    bnf_node_label(layer), bnf_node_label(add));
	} else {
		add = NULL;
		layer = p;
	}
	if (!(target = bnf_fold_target_of(layer)))
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		    "its input comes through %s from %s '%s'; bnfold folds into %s", path.via,
		    layer->op_type, bnf_node_label(layer), bnf_fold_targets_named);
	if (c.rank < 0)
		c.rank = bnf_fold_value_rank(gi, layer->output[0]);
	want = channel_axis_of(target, c.rank);
	/* A channel counted from the end is the last axis, whatever the rank. */
	if (target->channel_last ? !(c.axis == -1 || (want >= 0 && normalized(&c) == want))
	                         : normalized(&c) != want)
		return bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		                     "through %s the BatchNormalization channel is axis %d of the "
		                     "output of %s '%s'%s, not its channel axis (%s)",
		                     path.via, normalized(&c), layer->op_type,
		                     bnf_node_label(layer),
		                     c.axis < 0 ? " counted from the end" : "",
		                     target->channel_last ? "the last" : "1");
	bn->output_node = path.nodes[0];
	return target->after(ctx, gi, bn, add ? add : layer, out);
}
