/*
 * Sizes for the unknown dims left after what the user and the model say:
 * candidates, best first (the preferred size, multiples of the model's
 * total stride near it, common sizes), each tried in a shapes-only run of
 * the evaluator (eval.h), which costs allocations, not arithmetic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check/input_choose.h"
#include "io/external.h"
#include "io/validate.h"

/* Shapes-only runs one choice may make. */
#define PROBES_MAX 48

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the model's total stride ---- */

/* Operators after which the spatial axes are no longer where they were. */
static const char *const stride_stops[] = {
    "Flatten",        "Reshape",   "Transpose",    "Gemm",         "MatMul",
    "Squeeze",        "Unsqueeze", "Shape",        "Size",         "Gather",
    "GatherElements", "GatherND",  "ArgMax",       "ArgMin",       "TopK",
    "NonZero",        "Einsum",    "DepthToSpace", "SpaceToDepth", "Expand",
    "Tile",           "RoiAlign",  "LSTM",         "GRU",          "RNN",
};
static const char *const stride_stops_long[] = {
    "GlobalAveragePool", "GlobalMaxPool",   "GlobalLpPool",      "ReduceMean", "ReduceSum",
    "ReduceMax",         "ReduceMin",       "ReduceProd",        "ReduceL1",   "ReduceL2",
    "ReduceSumSquare",   "ReduceLogSumExp", "NonMaxSuppression",
};
static const char *const strided_ops[] = {"Conv",   "MaxPool",     "AveragePool",
                                          "LpPool", "ConvInteger", "QLinearConv"};

#define STRIDE_AXES 3 /* spatial axes 2, 3 and 4 */
#define STRIDE_MAX  1024

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* lcm, or the larger of the two once it passes STRIDE_MAX. */
static int64_t lcm_capped(int64_t a, int64_t b)
{
	int64_t l = a / gcd64(a, b) * b;
	return l <= STRIDE_MAX ? l : a > b ? a : b;
}

struct strides {
	struct bnf_strmap index; /* value name -> row */
	double (*row)[STRIDE_AXES];
	size_t n;
};

static void stride_put(struct strides *st, const char *name, const double *s)
{
	size_t r;
	if (!name || !name[0] || bnf_strmap_get(&st->index, name, &r))
		return;
	if (bnf_strmap_put(&st->index, name, st->n) != 0)
		return; /* out of memory: the estimate misses a value */
	memcpy(st->row[st->n++], s, sizeof(st->row[0]));
}

/* The scale of each spatial axis a Resize or Upsample applies, when it is
 * a constant: 1 when found, 0 when not. */
static int resize_scales(const struct chooser *c, const Onnx__NodeProto *node, double *scale)
{
	const Onnx__AttributeProto *attr = bnf_node_attr(node, "scales");
	struct bnf_const_ref ref;
	struct bnf_tensor *t = NULL;
	struct bnf_error err;
	size_t idx = bnf_node_is(node, "Upsample") || c->gi.opset < 11 ? 1 : 2, a;
	int ok = 0;

	if (attr && attr->n_floats > 2) { /* Upsample before opset 9 */
		for (a = 0; a < STRIDE_AXES; a++)
			scale[a] = a + 2 < attr->n_floats ? attr->floats[a + 2] : 1.0;
		return 1;
	}
	if (node->n_input <= idx || !bnf_choose_constant(c, node->input[idx], &ref) ||
	    bnf_tensor_is_external(ref.tensor) ||
	    bnf_tensor_from_proto(ref.tensor, &t, &err) != BNF_OK)
		return 0;
	if (t->count > 2) {
		for (a = 0; a < STRIDE_AXES; a++)
			scale[a] = a + 2 < t->count ? bnf_tensor_get_double(t, a + 2) : 1.0;
		ok = scale[0] > 0 && scale[1] > 0 && scale[2] > 0;
	}
	bnf_tensor_free(t);
	return ok;
}

/* One node: the stride of its outputs from its inputs'. */
static void stride_node(const struct chooser *c, struct strides *st, const Onnx__NodeProto *node)
{
	double s[STRIDE_AXES] = {0, 0, 0}, scale[STRIDE_AXES];
	int64_t attr[STRIDE_AXES];
	size_t k, a, r, n;
	int seen = 0;

	if (BNF_CHOOSE_OP_IN(node, stride_stops) || BNF_CHOOSE_OP_IN(node, stride_stops_long))
		return;
	for (k = 0; k < node->n_input; k++)
		if (bnf_strmap_get(&st->index, node->input[k], &r)) {
			for (a = 0; a < STRIDE_AXES; a++)
				if (st->row[r][a] > s[a])
					s[a] = st->row[r][a];
			seen = 1;
		}
	if (!seen)
		return;
	if (BNF_CHOOSE_OP_IN(node, strided_ops) || bnf_node_is(node, "ConvTranspose")) {
		const Onnx__AttributeProto *sa = bnf_node_attr(node, "strides");
		n = sa ? (sa->n_ints < STRIDE_AXES ? sa->n_ints : STRIDE_AXES) : 0;
		for (a = 0; a < STRIDE_AXES; a++)
			attr[a] = a < n && sa->ints[a] > 0 ? sa->ints[a] : 1;
		for (a = 0; a < STRIDE_AXES; a++)
			s[a] = bnf_node_is(node, "ConvTranspose") ? s[a] / (double)attr[a]
			                                          : s[a] * (double)attr[a];
	} else if (bnf_node_is(node, "Resize") || bnf_node_is(node, "Upsample")) {
		/* Sizes computed at run time (an FPN's Resize to its lateral's
		 * shape) leave the stride unknown; the lateral has it. */
		if (!resize_scales(c, node, scale))
			return;
		for (a = 0; a < STRIDE_AXES; a++)
			s[a] /= scale[a];
	}
	for (k = 0; k < node->n_output; k++)
		stride_put(st, node->output[k], s);
}

/* The stride of every value from the inputs to choose, per spatial axis,
 * combined (lcm) over values into the sizes' divisor of each group. */
static void find_strides(struct chooser *c)
{
	const Onnx__GraphProto *g = c->g;
	struct strides st;
	int64_t axis[STRIDE_AXES] = {1, 1, 1};
	const double one[STRIDE_AXES] = {1, 1, 1};
	size_t i, a, total = g->n_input;
	int grp, b;

	for (i = 0; i < g->n_node; i++)
		total += g->node[i]->n_output;
	memset(&st, 0, sizeof(st));
	bnf_strmap_init(&st.index);
	st.row = calloc(total + 1, sizeof(*st.row));
	for (i = 0; st.row && i < c->out->n; i++)
		if (c->out->inputs[i].rank >= 3)
			stride_put(&st, c->out->inputs[i].name, one);
	for (i = 0; st.row && i < g->n_node; i++)
		stride_node(c, &st, g->node[i]);
	for (i = 0; i < st.n; i++)
		for (a = 0; a < STRIDE_AXES; a++) {
			double v = st.row[i][a];
			int64_t iv = (int64_t)(v + 0.5);
			if (v >= 1.0 && iv <= STRIDE_MAX && v - (double)iv < 1e-6 &&
			    (double)iv - v < 1e-6)
				axis[a] = lcm_capped(axis[a], iv);
		}
	/* Each group divides by the strides of the axes it holds. */
	for (i = 0; i < c->out->n; i++)
		for (b = 2; b < c->out->inputs[i].rank && b < 2 + STRIDE_AXES; b++)
			if ((grp = c->group[i][b]) != BNF_CHOOSE_GROUP_NONE)
				c->stride[grp] = lcm_capped(c->stride[grp], axis[b - 2]);
	bnf_strmap_free(&st.index);
	free(st.row);
}

/* ---- probing ---- */

/* Append cand to out[0..*n) unless it is there or outside [lo, hi]. */
static void add_candidate(int64_t *out, size_t *n, size_t max, int64_t cand, int64_t lo, int64_t hi)
{
	size_t i;

	for (i = 0; i < *n && out[i] != cand; i++)
		;
	if (i == *n && *n < max && cand >= lo && cand <= hi)
		out[(*n)++] = cand;
}

/* The sizes to try for group grp, best first: the preferred size; then it
 * and common sizes each moved to the nearest multiple of the group's stride
 * (ties upward, so 224 becomes 256 for a stride of 64), which keeps every
 * level of a feature pyramid whole; then the common sizes as they are. */
static size_t candidates(const struct chooser *c, int grp, int64_t *out, size_t max)
{
	static const int64_t spatial[] = {256, 320, 384, 416, 448, 512, 640, 299,
	                                  227, 192, 160, 128, 96,  64,  48,  32};
	static const int64_t other[] = {32, 64, 128, 256, 8, 4, 2, 1};
	const int64_t *common = grp == BNF_CHOOSE_GROUP_SPATIAL ? spatial : other;
	size_t n_common = grp == BNF_CHOOSE_GROUP_SPATIAL ? sizeof(spatial) / sizeof(spatial[0])
	                                                  : sizeof(other) / sizeof(other[0]);
	int64_t p = c->preferred[grp], s = c->stride[grp], lo = c->minimum[grp];
	int64_t hi = 4 * (p > s ? p : s), k;
	size_t n = 0, j;

	add_candidate(out, &n, max, p, 0, INT64_MAX);
	for (j = 0; j <= n_common; j++) {
		k = ((j ? common[j - 1] : p) + s / 2) / s;
		add_candidate(out, &n, max, (k > 0 ? k : 1) * s, lo, hi);
	}
	for (j = 0; j < n_common; j++)
		add_candidate(out, &n, max, common[j], lo, hi);
	return n;
}

/* One shapes-only run with the unknown dims of each group at value[grp].
 * Returns 1 when the evaluator accepts the model at those shapes. */
static int probe_once(struct chooser *c, const struct bnf_eval_options *opt, const int64_t *value)
{
	struct bnf_input_shapes *s = c->out;
	struct bnf_tensor **t = calloc(s->n + 1, sizeof(*t)), **outs = NULL;
	const char **names = calloc(s->n + 1, sizeof(*names));
	struct bnf_eval_options eo = *opt;
	struct bnf_error err; /* the operators' shape steps write their reasons */
	size_t i, made = 0;
	int ok = 0, a;

	memset(&err, 0, sizeof(err));
	if (!t || !names)
		goto out;
	for (i = 0; i < s->n; i++, made++) {
		int64_t dims[BNF_MAX_RANK];
		uint64_t count;
		for (a = 0; a < s->inputs[i].rank; a++)
			dims[a] = s->inputs[i].dims[a] == BNF_CHOOSE_UNKNOWN ? value[c->group[i][a]]
			                                                     : s->inputs[i].dims[a];
		if (bnf_validate_shape_count((size_t)s->inputs[i].rank, dims, &count) != 0 ||
		    count > BNF_LIMIT_INPUT_ELEMENTS)
			goto out;
		names[i] = s->inputs[i].name;
		t[i] = bnf_tensor_new(s->inputs[i].dtype, s->inputs[i].rank, dims, &err);
		if (!t[i])
			goto out;
	}
	eo.shapes_only = 1;
	eo.promote_double = 0;
	eo.threads = 1;
	s->probes++;
	ok = bnf_eval_run(c->model, &eo, s->n, names, t, &outs, &err) == BNF_OK;
	for (i = 0; outs && i < c->g->n_output; i++)
		bnf_tensor_free(outs[i]);
	free(outs);
out:
	for (i = 0; t && i < made; i++)
		bnf_tensor_free(t[i]);
	free(t);
	free(names);
	return ok;
}

/* Try group grp's candidates with the other groups at value[]; keep the
 * first that passes in value[grp]. Returns 1 when one did. */
static int search(struct chooser *c, const struct bnf_eval_options *opt, int grp, int64_t *value)
{
	int64_t cand[32], keep = value[grp];
	size_t n = candidates(c, grp, cand, sizeof(cand) / sizeof(cand[0])), i;

	for (i = 0; i < n && c->out->probes < PROBES_MAX; i++) {
		value[grp] = cand[i];
		if (probe_once(c, opt, value))
			return 1;
	}
	value[grp] = keep;
	return 0;
}

/* Whether any unknown dim belongs to group grp. */
static int group_used(const struct chooser *c, int grp)
{
	size_t i;
	int a;
	for (i = 0; i < c->out->n; i++)
		for (a = 0; a < c->out->inputs[i].rank; a++)
			if (c->out->inputs[i].dims[a] == BNF_CHOOSE_UNKNOWN &&
			    c->group[i][a] == grp)
				return 1;
	return 0;
}

/* Choose the groups' sizes and write them into the unknown dims. */
void bnf_choose_sizes(struct chooser *c, const struct bnf_eval_options *probe)
{
	const int sp = BNF_CHOOSE_GROUP_SPATIAL, ot = BNF_CHOOSE_GROUP_OTHER;
	int64_t value[BNF_CHOOSE_GROUP_COUNT];
	int found[BNF_CHOOSE_GROUP_COUNT] = {0}, grp, a;
	int spatial = group_used(c, sp), other = group_used(c, ot);
	double start = now_ms();
	size_t i;

	for (grp = 0; grp < BNF_CHOOSE_GROUP_COUNT; grp++)
		value[grp] = c->preferred[grp];
	if (probe && (spatial || other)) {
		find_strides(c);
		if (spatial)
			found[sp] = search(c, probe, sp, value);
		if (other)
			found[ot] = search(c, probe, ot, value);
		/* The other dims may have been what refused every spatial size. */
		if (spatial && other && !found[sp] && found[ot])
			found[sp] = search(c, probe, sp, value);
		c->out->probe_passed = (!spatial || found[sp]) && (!other || found[ot]);
		c->out->probe_ms = now_ms() - start;
	}
	c->out->stride = c->stride[sp];
	c->out->spatial_min = c->minimum[sp];
	for (i = 0; i < c->out->n; i++)
		for (a = 0; a < c->out->inputs[i].rank; a++) {
			int g = c->group[i][a];
			enum bnf_dim_source source = BNF_DIM_SOURCE_DEFAULT;
			if (c->out->inputs[i].dims[a] != BNF_CHOOSE_UNKNOWN)
				continue;
			/* Spatial sizes are always a choice among candidates; the
			 * other dims' default only counts as probed once moved. */
			if (found[g] && (g == sp || value[g] != c->preferred[g]))
				source = BNF_DIM_SOURCE_PROBED;
			bnf_choose_settle(c, i, a, value[g], source, NULL);
		}
}
