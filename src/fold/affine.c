/*
 * Affine maps by constants: a Mul, Add, Sub or Div by a constant after a
 * layer is, per output channel, y = a * x + b, the same map an eval-mode
 * BatchNormalization is; the layer folds take it as one. Also the reverse
 * for --lower-bn: a BatchNormalization nothing absorbs becomes Mul + Add.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold/internal.h"
#include "util/mem.h"
#include "io/tensor_data.h"

#define FOLD_MAX_RANK 16

static int tensor_dtype(const Onnx__TensorProto *t)
{
	return t->has_data_type ? t->data_type : 0;
}

/* A layer a Mul/Add/Sub/Div by a constant after it folds into. */
static int is_layer(const Onnx__NodeProto *node)
{
	const struct bnf_fold_target *t = bnf_fold_target_of(node);
	return t && t->affine_after;
}

/* The layer behind value x through Identity and Dropout nodes, whether or
 * not they are safe to remove: decides whether node is worth reporting. */
static Onnx__NodeProto *layer_behind(const struct bnf_graph *gi, const char *x)
{
	Onnx__NodeProto *p = bnf_graph_producer(gi, x, NULL);
	int n = 0;

	while (p && (bnf_node_is(p, "Identity") || bnf_node_is(p, "Dropout")) && p->n_input >= 1 &&
	       n++ < 8)
		p = bnf_graph_producer(gi, p->input[0], NULL);
	return p && is_layer(p) ? p : NULL;
}

/* Output channels (the channel axis is 1), output rank and weight dtype of
 * a layer, as its row of the target table says. Returns 1, or 0 with a
 * keep outcome. */
static int layer_channels(struct fold_ctx *ctx, const struct bnf_graph *gi,
                          const Onnx__NodeProto *layer, size_t *m, int *rank, int *dtype,
                          struct fold_outcome *out)
{
	const struct bnf_fold_target *target = bnf_fold_target_of(layer);
	struct bnf_const_ref w;
	const Onnx__TensorProto *t;

	if (layer->n_input < 2)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "%s '%s' has no weight input", layer->op_type,
		                     bnf_node_label(layer)),
		       0;
	if (bnf_fold_constant(ctx, gi, layer->input[1], &w) != 1)
		return bnf_fold_keep_not_constant(ctx, gi, layer, "weight", layer->input[1], out),
		       0;
	t = w.tensor;
	*dtype = tensor_dtype(t);
	*m = bnf_fold_target_channels(target, layer, t);
	if (*m == 0)
		return bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		                     "the weight of %s '%s' has rank %zu%s", layer->op_type,
		                     bnf_node_label(layer), t->n_dims,
		                     target->max_weight_rank == 2 ? ", not 2" : ""),
		       0;
	/* The output has the weight's rank (a MatMul's only on a 2-D input). */
	*rank = (int)t->n_dims;
	if (!target->input_2d)
		return 1;
	*rank = bnf_fold_value_rank(gi, layer->input[0]);
	if (*rank < 0)
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
		           "the input '%s' of %s '%s' is not known to be 2-D, so its output "
		           "columns are not known to be the channels",
		           layer->input[0], layer->op_type, bnf_node_label(layer)),
		       0;
	if (*rank != 2)
		return bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		                     "the input '%s' of %s '%s' has rank %d: its output columns "
		                     "are not axis 1",
		                     layer->input[0], layer->op_type, bnf_node_label(layer), *rank),
		       0;
	return 1;
}

/* Is a constant of shape dims (rank rc) a scalar or one value per channel
 * of an output of rank `rank` with m channels on axis 1? Aligning the
 * shapes on the right (numpy broadcasting), every dim must be 1 except the
 * one on axis 1, which may be m. Returns 1 (per_channel says which) or 0
 * with a keep outcome. */
static int channel_constant(const Onnx__NodeProto *node, size_t slot, const Onnx__TensorProto *ct,
                            int rank, size_t m, const Onnx__NodeProto *layer, int *per_channel,
                            struct fold_outcome *out)
{
	int rc = (int)ct->n_dims, j;

	*per_channel = 0;
	if (rc > rank)
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_NOT_PER_CHANNEL,
		           "constant '%s' has rank %d and would broadcast the rank-%d output of "
		           "%s '%s' to a higher rank",
		           node->input[slot], rc, rank, layer->op_type, bnf_node_label(layer)),
		       0;
	for (j = 0; j < rc; j++) {
		int axis = j + rank - rc;
		if (ct->dims[j] == 1)
			continue;
		if (axis == 1 && (size_t)ct->dims[j] == m) {
			*per_channel = 1;
			continue;
		}
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_NOT_PER_CHANNEL,
		           "constant '%s' has %lld values along axis %d of the rank-%d output of "
		           "%s '%s'; only axis 1 (its %zu channels) can fold",
		           node->input[slot], (long long)ct->dims[j], axis, rank, layer->op_type,
		           bnf_node_label(layer), m),
		       0;
	}
	return 1;
}

/*
 * Mul / Add / Sub / Div by a constant -> folded into the layer in front
 *
 *   X -> Layer(W, B?) [-> Identity | eval Dropout]* -> Op(x, c) -> Y
 *   becomes
 *   X -> Layer(W', B') -> Y
 *
 * Folds when: exactly one operand is a constant of the weight's float
 * dtype; the other comes from a Conv, ConvTranspose, Gemm or 2-D MatMul
 * through values read by nothing else; the constant is a scalar or one
 * value per output channel ([M,1,...,1] or [1,M,1,...,1] after a
 * convolution, [N] or [1,N] after a 2-D Gemm/MatMul) and does not raise
 * the output's rank; a divisor has no zero. Per channel m:
 *
 *   x * c -> a = c,   b = 0        x + c -> a = 1,   b = c
 *   x - c -> a = 1,   b = -c       c - x -> a = -1,  b = c
 *   x / c -> a = 1/c, b = 0        c / x -> not affine in x: kept
 *
 * and the layer fold of the BN y = a * x + b applies (fold_layers.c).
 */
int bnf_fold_affine(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                    struct fold_outcome *out, int *tried)
{
	struct bnf_const_ref ref;
	struct fold_bn fb;
	const Onnx__TensorProto *ct = NULL;
	Onnx__NodeProto *layer, *producer;
	const char *op = node->op_type, *x;
	double *cv = NULL;
	size_t nc = 0, m = 0, ch;
	int c0, c1, cslot, rc, rank = 0, dtype = 0, per = 0;

	*tried = 0;
	memset(&fb, 0, sizeof(fb));
	if (node->n_input != 2 || node->n_output != 1 || !node->output[0][0] ||
	    !node->input[0][0] || !node->input[1][0])
		return BNF_OK;
	c0 = bnf_fold_constant(ctx, gi, node->input[0], &ref);
	c1 = c0 < 0 ? c0 : bnf_fold_constant(ctx, gi, node->input[1], &ref);
	if (c0 < 0 || c1 < 0)
		return BNF_ERR_NOMEM;
	if (c0 == c1)
		return BNF_OK;
	cslot = c0 ? 0 : 1;
	x = node->input[1 - cslot];
	layer = layer_behind(gi, x);
	if (!layer)
		return BNF_OK;
	*tried = 1;
	producer = bnf_fold_walk_back(ctx, gi, &x, out);
	if (out->reason != BNF_KEEP_REASON_NONE)
		return BNF_OK;
	if (producer != layer || bnf_graph_uses(gi, x) > 1 || bnf_graph_is_output(gi, x))
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_OTHER_CONSUMER,
		    "the output '%s' on the way from %s '%s' is also read elsewhere", x,
		    layer->op_type, bnf_node_label(layer));
	if (strcmp(op, "Div") == 0 && cslot == 0)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_NOT_AFFINE,
		    "it divides the constant '%s' by the layer output: not an affine map",
		    node->input[0]);
	if (!layer_channels(ctx, gi, layer, &m, &rank, &dtype, out))
		return BNF_OK;
	rc = bnf_fold_read_constant(ctx, gi, node, (size_t)cslot, "constant", &cv, &nc, &ct, out);
	if (rc != 1)
		return rc < 0 ? rc : BNF_OK;
	rc = BNF_OK;
	if (tensor_dtype(ct) != dtype) {
		bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		              "constant '%s' has dtype %s but the weight of %s '%s' has %s",
		              node->input[cslot], bnf_dtype_label(tensor_dtype(ct)), layer->op_type,
		              bnf_node_label(layer), bnf_dtype_label(dtype));
		goto out;
	}
	if (!channel_constant(node, (size_t)cslot, ct, rank, m, layer, &per, out))
		goto out;
	if (m == 0 || nc != (per ? m : 1)) {
		bnf_fold_keep(out, BNF_KEEP_REASON_SHAPE_MISMATCH,
		              "constant '%s' has %zu values for %zu channels", node->input[cslot],
		              nc, m);
		goto out;
	}
	fb.node = node;
	fb.channels = m;
	fb.s = malloc(m * sizeof(double));
	fb.t = malloc(m * sizeof(double));
	if (!fb.s || !fb.t) {
		rc = bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (ch = 0; ch < m; ch++) {
		double v = cv[per ? ch : 0];
		if (strcmp(op, "Mul") == 0) {
			fb.s[ch] = v;
			fb.t[ch] = 0.0;
		} else if (strcmp(op, "Add") == 0) {
			fb.s[ch] = 1.0;
			fb.t[ch] = v;
		} else if (strcmp(op, "Sub") == 0) {
			fb.s[ch] = cslot == 1 ? 1.0 : -1.0;
			fb.t[ch] = cslot == 1 ? -v : v;
		} else {
			if (v == 0.0 || !isfinite(v)) {
				bnf_fold_keep(out, BNF_KEEP_REASON_ZERO_DIVISOR,
				              "the divisor '%s' is %g for channel %zu",
				              node->input[cslot], v, ch);
				goto out;
			}
			fb.s[ch] = 1.0 / v;
			fb.t[ch] = 0.0;
		}
	}
	rc = bnf_fold_target_of(layer)->after(ctx, gi, &fb, layer, out);
	if (rc == BNF_OK && out->reason == BNF_KEEP_REASON_NONE)
		out->kind = BNF_FOLD_KIND_AFFINE;
out:
	free(cv);
	free(fb.s);
	free(fb.t);
	return rc;
}

int bnf_fold_keep_behind_affine(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                Onnx__NodeProto *node, struct fold_outcome *out)
{
	struct bnf_const_ref ref;
	const Onnx__NodeProto *layer, *p;
	const char *op = node->op_type, *label = bnf_node_label(node);
	int c0, c1;

	if (node->n_input != 2 || !node->input[0][0] || !node->input[1][0])
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		                     "its input comes from %s '%s', which does not have two inputs",
		                     op, label);
	c0 = bnf_fold_constant(ctx, gi, node->input[0], &ref);
	c1 = c0 < 0 ? c0 : bnf_fold_constant(ctx, gi, node->input[1], &ref);
	if (c0 < 0 || c1 < 0)
		return BNF_ERR_NOMEM;
	if (!c0 && !c1)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		    "its input comes from %s '%s', which combines two computed values "
		    "('%s' and '%s'), not a layer output and a constant",
		    op, label, node->input[0], node->input[1]);
	if (c0 && c1)
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_NO_PRODUCER,
		    "its input comes from %s '%s' of two constants, not from a layer", op, label);
	layer = layer_behind(gi, node->input[c0 ? 1 : 0]);
	if (!layer) {
		p = bnf_graph_producer(gi, node->input[c0 ? 1 : 0], NULL);
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
		    "its input comes from %s '%s', which applies the constant '%s' to "
		    "%s%s%s%s, not to the output of a Conv, ConvTranspose, Gemm or MatMul",
		    op, label, node->input[c0 ? 0 : 1], p ? "the output of " : "'",
		    p ? p->op_type : node->input[c0 ? 1 : 0], p ? " " : "'",
		    p ? bnf_node_label(p) : "");
	}
	/* An affine node after a layer: it folds first (the driver's second
	 * pass), then this BN. If it stays, the driver puts its reason here. */
	out->blocker = node;
	return bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
	                     "its input comes from %s '%s', a constant applied to the output of "
	                     "%s '%s' that has to fold into it first",
	                     op, label, layer->op_type, bnf_node_label(layer));
}

/* The element type of value name as declared (value_info, graph inputs
 * and outputs, here or in enclosing graphs), or 0. */
static int declared_elem_type(const struct bnf_graph *gi, const char *name)
{
	for (; gi; gi = gi->parent) {
		const Onnx__GraphProto *g = gi->g;
		Onnx__ValueInfoProto *const *lists[3] = {g->input, g->output, g->value_info};
		size_t counts[3] = {g->n_input, g->n_output, g->n_value_info}, l, i;
		for (l = 0; l < 3; l++)
			for (i = 0; i < counts[l]; i++) {
				const Onnx__ValueInfoProto *vi = lists[l][i];
				if (vi->name && strcmp(vi->name, name) == 0 && vi->type &&
				    vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
				    vi->type->tensor_type && vi->type->tensor_type->has_elem_type)
					return vi->type->tensor_type->elem_type;
			}
	}
	return 0;
}

static char *string_with_suffix(const char *base, const char *suffix)
{
	size_t len = strlen(base) + strlen(suffix) + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s%s", base, suffix);
	return s;
}

/* A new Mul node reading x and scale, producing mid; NULL on no memory. */
static Onnx__NodeProto *new_mul(const char *name, const char *x, const char *scale, const char *mid)
{
	Onnx__NodeProto *n = malloc(sizeof(*n));
	if (!n)
		return NULL;
	onnx__node_proto__init(n);
	n->input = calloc(2, sizeof(*n->input));
	n->output = calloc(1, sizeof(*n->output));
	if (!n->input || !n->output) {
		onnx__node_proto__free_unpacked(n, &bnf_large_allocator);
		return NULL;
	}
	n->n_input = 2;
	n->n_output = 1;
	n->op_type = strdup("Mul");
	n->name = string_with_suffix(name, "/scale");
	n->input[0] = strdup(x);
	n->input[1] = strdup(scale);
	n->output[0] = strdup(mid);
	if (!n->op_type || !n->name || !n->input[0] || !n->input[1] || !n->output[0]) {
		onnx__node_proto__free_unpacked(n, &bnf_large_allocator);
		return NULL;
	}
	return n;
}

/* Put node into g in front of the node `before`. */
static int insert_before(Onnx__GraphProto *g, Onnx__NodeProto *node, const Onnx__NodeProto *before)
{
	Onnx__NodeProto **p = realloc(g->node, (g->n_node + 1) * sizeof(*p));
	size_t i;

	if (!p)
		return -1;
	g->node = p;
	for (i = 0; i < g->n_node && g->node[i] != before; i++)
		;
	memmove(&g->node[i + 1], &g->node[i], (g->n_node - i) * sizeof(*p));
	g->node[i] = node;
	g->n_node++;
	return 0;
}

/*
 * --lower-bn: a BatchNormalization nothing absorbs -> Mul + Add
 *
 *   X -> BN(scale, B, mean, var) -> Y
 *   becomes
 *   X -> Mul(s) -> Add(t) -> Y         s, t of shape [C, 1, ..., 1]
 *
 * Lowers when: the BN is in eval mode with constant parameters (the
 * driver only offers those), the rank r >= 2 of X is known (declared, or
 * from the layer in front) so that [C] + [1] * (r - 2) broadcasts on axis
 * 1, the element type of X is known (declared, or the scale's type before
 * opset 15 where X and scale share T), and s and t fit that type.
 *
 *   s[c] = scale[c] / sqrt(var[c] + eps)      t[c] = B[c] - mean[c] * s[c]
 */
int bnf_fold_lower_bn(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                      struct fold_outcome *out)
{
	Onnx__NodeProto *node = bn->node, *mul = NULL;
	const char *x = node->input[0], *mid;
	struct bnf_const_ref ref;
	int64_t dims[FOLD_MAX_RANK];
	size_t c = bn->channels, where, d;
	int rank = bnf_fold_value_rank(gi, x), dtype = declared_elem_type(gi, x), rc;

	if (rank < 0)
		rank = bnf_fold_value_rank(gi, node->output[0]);
	if (rank < 2 || rank > FOLD_MAX_RANK)
		return bnf_fold_keep(out, BNF_KEEP_REASON_UNKNOWN_SHAPE,
		                     "the rank of its input '%s' is not known", x);
	if (!dtype)
		dtype = declared_elem_type(gi, node->output[0]);
	if (!dtype && gi->opset < 15 && bnf_graph_constant(gi, node->input[1], &ref))
		dtype = tensor_dtype(ref.tensor);
	if (!bnf_dtype_is_foldable(dtype))
		return bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		    "the element type of its input '%s' is not known to be a float type", x);
	if (bnf_fold_overflows(bn->s, c, dtype, &where) ||
	    bnf_fold_overflows(bn->t, c, dtype, &where))
		return bnf_fold_keep(out, BNF_KEEP_REASON_OVERFLOW,
		                     "the scale or shift of channel %zu does not fit %s", where,
		                     bnf_dtype_label(dtype));
	dims[0] = (int64_t)c;
	for (d = 1; d + 1 < (size_t)rank; d++)
		dims[d] = 1;
	mid = bnf_fold_unique_name(ctx, gi, node->output[0]);
	if (!mid)
		return BNF_ERR_NOMEM;
	mul = new_mul(bnf_node_label(node), x, node->input[1], mid);
	if (!mul || insert_before(gi->g, mul, node) != 0) {
		if (mul)
			onnx__node_proto__free_unpacked(mul, &bnf_large_allocator);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	/* The Mul takes over the scale (rewritten in place when only the BN
	 * read it), the BN node becomes the Add and keeps B for the shift. */
	rc = bnf_fold_store_constant(ctx, gi, mul, 1, dtype, dims, (size_t)rank - 1, bn->s, c,
	                             node->input[1]);
	if (rc == BNF_OK)
		rc = bnf_fold_store_constant(ctx, gi, node, 2, dtype, dims, (size_t)rank - 1, bn->t,
		                             c, node->input[2]);
	if (rc == BNF_OK)
		rc = bnf_fold_set_input(ctx, gi, node, 0, mid);
	if (rc == BNF_OK)
		rc = bnf_fold_set_input(ctx, gi, node, 1, node->input[2]);
	if (rc == BNF_OK)
		rc = bnf_fold_become_add(ctx, gi, node);
	if (rc != BNF_OK)
		return rc;
	bnf_fold_done(out, BNF_FOLD_KIND_LOWERED, mul);
	return BNF_OK;
}
