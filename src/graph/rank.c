/*
 * Ranks proven from the graph's structure (declared shapes, constants, and
 * the operators that set or keep a rank), and the lengths of 1-D shape
 * values built at run time: Reshape(x, Concat(Gather(Shape(x), 0), [-1]))
 * is 2-D whatever x is.
 */
#include "graph/graph.h"

#include <string.h>

#define RANK_MAX_DEPTH 48
/* Values one question may visit: a residual network's Add of Adds would
 * otherwise be walked once per path, exponentially many times. */
#define RANK_MAX_STEPS 2048

struct rank_walk {
	const struct bnf_graph *gi;
	int steps_left;
};

static int value_rank(struct rank_walk *w, const char *name, int depth);
static long long value_length(struct rank_walk *w, const char *name, int depth);

/* Operators whose output has the rank of their first input. */
static const char *const rank_keepers[] = {
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "HardSigmoid",
    "Tanh",
    "Softplus",
    "Mish",
    "HardSwish",
    "Clip",
    "Erf",
    "Abs",
    "Neg",
    "Exp",
    "Log",
    "Sqrt",
    "Reciprocal",
    "Identity",
    "Dropout",
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "Cast",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Pad",
    "Resize",
    "Upsample",
    "Slice",
    "Tile",
    "Split",
    "Concat",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Not",
    "LpNormalization",
};

/* Elementwise operators with numpy broadcasting: the largest input rank. */
static const char *const broadcasters[] = {
    "Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less",  "Greater",
    "And", "Or",  "Max", "Min", "Sum", "Mean",  "Where",
};

static int in_list(const Onnx__NodeProto *node, const char *const *ops, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (bnf_node_is(node, ops[i]))
			return 1;
	return 0;
}

#define IN_LIST(node, ops) in_list(node, ops, sizeof(ops) / sizeof(ops[0]))

/* The integer values of a small constant (axes, perm, a shape): count of
 * them, or -1 when name is not such a constant. */
static int small_ints(const struct bnf_graph *gi, const char *name, long long *v, int max)
{
	struct bnf_const_ref ref;

	if (!bnf_graph_constant(gi, name, &ref))
		return -1;
	return bnf_tensor_int_values(ref.tensor, v, max);
}

int bnf_tensor_int_values(const Onnx__TensorProto *t, long long *v, int max)
{
	size_t n = 1, i;

	for (i = 0; i < t->n_dims; i++)
		n *= t->dims[i] > 0 ? (size_t)t->dims[i] : 0;
	if (n > (size_t)max)
		return -1;
	for (i = 0; i < n; i++) {
		if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->has_raw_data &&
		    t->raw_data.len == n * 8) {
			int64_t x = 0;
			int b;
			for (b = 7; b >= 0; b--)
				x = (int64_t)((uint64_t)x << 8 |
				              t->raw_data.data[i * 8 + (size_t)b]);
			v[i] = x;
		} else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
		           t->n_int64_data == n) {
			v[i] = t->int64_data[i];
		} else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 &&
		           t->n_int32_data == n) {
			v[i] = t->int32_data[i];
		} else {
			return -1;
		}
	}
	return (int)n;
}

/* The axes of a Squeeze/Unsqueeze/Reduce*: an attribute before opset 13
 * (18 for the reductions), an input after. -2 when absent, -1 unknown. */
static int node_axes(const struct bnf_graph *gi, const Onnx__NodeProto *node, long long *v, int max)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, "axes");
	size_t i;

	if (a) {
		if (a->n_ints > (size_t)max)
			return -1;
		for (i = 0; i < a->n_ints; i++)
			v[i] = a->ints[i];
		return (int)a->n_ints;
	}
	if (node->n_input >= 2 && node->input[1][0])
		return small_ints(gi, node->input[1], v, max);
	return -2;
}

int bnf_graph_int_values(const struct bnf_graph *gi, const char *name, long long *v, int max)
{
	return small_ints(gi, name, v, max);
}

/* The largest rank among the inputs, or -1 when one is unknown. */
static int broadcast_rank(struct rank_walk *w, const Onnx__NodeProto *p, int depth)
{
	int best = -1;
	size_t i;
	for (i = 0; i < p->n_input; i++) {
		int r;
		if (!p->input[i][0])
			continue;
		if ((r = value_rank(w, p->input[i], depth + 1)) < 0)
			return -1;
		if (r > best)
			best = r;
	}
	return best;
}

static int matmul_rank(struct rank_walk *w, const Onnx__NodeProto *p, int depth)
{
	int ra, rb;
	if (p->n_input != 2)
		return -1;
	ra = value_rank(w, p->input[0], depth + 1);
	rb = value_rank(w, p->input[1], depth + 1);
	if (ra < 1 || rb < 1)
		return -1;
	if (ra == 1 && rb == 1)
		return 0;
	if (ra == 1 || rb == 1)
		return (ra > rb ? ra : rb) - 1;
	return ra > rb ? ra : rb;
}

static int rank_from_producer(struct rank_walk *w, const Onnx__NodeProto *p, int depth)
{
	long long axes[16];
	int n, r;

	if (bnf_node_is(p, "Flatten") || bnf_node_is(p, "Gemm"))
		return 2;
	if (bnf_node_is(p, "Shape"))
		return 1;
	if (bnf_node_is(p, "MatMul"))
		return matmul_rank(w, p, depth);
	if ((bnf_node_is(p, "Conv") || bnf_node_is(p, "ConvTranspose")) && p->n_input >= 2) {
		struct bnf_const_ref wt;
		if (bnf_graph_constant(w->gi, p->input[1], &wt) && wt.tensor->n_dims >= 3)
			return (int)wt.tensor->n_dims;
		return value_rank(w, p->input[0], depth + 1);
	}
	if (bnf_node_is(p, "Reshape") && p->n_input == 2) {
		long long len = value_length(w, p->input[1], depth + 1);
		return len >= 0 && len < 64 ? (int)len : -1;
	}
	if (bnf_node_is(p, "Transpose")) {
		const Onnx__AttributeProto *perm = bnf_node_attr(p, "perm");
		if (perm)
			return (int)perm->n_ints;
		return value_rank(w, p->input[0], depth + 1);
	}
	if (bnf_node_is(p, "Unsqueeze") || bnf_node_is(p, "Squeeze")) {
		n = node_axes(w->gi, p, axes, 16);
		if (n < 0)
			return -1; /* Squeeze without axes drops dims of 1: unknown */
		r = value_rank(w, p->input[0], depth + 1);
		if (r < 0)
			return -1;
		r += bnf_node_is(p, "Unsqueeze") ? n : -n;
		return r >= 0 ? r : -1;
	}
	if (bnf_node_is(p, "Gather") && p->n_input == 2) {
		int rd = value_rank(w, p->input[0], depth + 1);
		int ri = value_rank(w, p->input[1], depth + 1);
		return rd >= 1 && ri >= 0 ? rd - 1 + ri : -1;
	}
	if (bnf_node_is(p, "Expand") && p->n_input == 2) {
		long long len = value_length(w, p->input[1], depth + 1);
		r = value_rank(w, p->input[0], depth + 1);
		if (len < 0 || r < 0)
			return -1;
		return len > r ? (int)len : r;
	}
	if (IN_LIST(p, broadcasters))
		return broadcast_rank(w, p, depth);
	if (IN_LIST(p, rank_keepers) && p->n_input >= 1)
		return value_rank(w, p->input[0], depth + 1);
	return -1;
}

static int value_rank(struct rank_walk *w, const char *name, int depth)
{
	struct bnf_const_ref ref;
	int64_t dims[8];
	const Onnx__NodeProto *p;
	int rank;

	if (depth > RANK_MAX_DEPTH || w->steps_left-- <= 0)
		return -1;
	if ((rank = bnf_graph_value_shape(w->gi, name, dims, 8)) >= 0)
		return rank;
	if (bnf_graph_constant(w->gi, name, &ref))
		return (int)ref.tensor->n_dims;
	p = bnf_graph_producer(w->gi, name, NULL);
	return p ? rank_from_producer(w, p, depth) : -1;
}

/* Elements of a value known to be 1-D (a shape being built), or -1. */
static long long value_length(struct rank_walk *w, const char *name, int depth)
{
	struct bnf_const_ref ref;
	int64_t dims[8];
	const Onnx__NodeProto *p;
	long long total = 0;
	size_t i;

	if (depth > RANK_MAX_DEPTH || w->steps_left-- <= 0)
		return -1;
	if (bnf_graph_constant(w->gi, name, &ref))
		return ref.tensor->n_dims == 1 ? (long long)ref.tensor->dims[0] : -1;
	if (bnf_graph_value_shape(w->gi, name, dims, 8) == 1 && dims[0] >= 0)
		return (long long)dims[0];
	p = bnf_graph_producer(w->gi, name, NULL);
	if (!p || p->n_input < 1)
		return -1;
	if (bnf_node_is(p, "Shape")) {
		if (bnf_node_attr(p, "start") || bnf_node_attr(p, "end"))
			return -1;
		return value_rank(w, p->input[0], depth + 1);
	}
	if (bnf_node_is(p, "Concat")) {
		for (i = 0; i < p->n_input; i++) {
			long long len = value_length(w, p->input[i], depth + 1);
			if (len < 0)
				return -1;
			total += len;
		}
		return total;
	}
	if (bnf_node_is(p, "Cast") || bnf_node_is(p, "Identity"))
		return value_length(w, p->input[0], depth + 1);
	if (bnf_node_is(p, "Unsqueeze"))
		return value_rank(w, p->input[0], depth + 1) == 0 ? 1 : -1;
	if (bnf_node_is(p, "Gather") && p->n_input == 2 &&
	    value_rank(w, p->input[0], depth + 1) == 1) {
		if (bnf_graph_constant(w->gi, p->input[1], &ref))
			return ref.tensor->n_dims == 1 ? (long long)ref.tensor->dims[0] : -1;
		return value_length(w, p->input[1], depth + 1);
	}
	return -1;
}

int bnf_graph_value_rank(const struct bnf_graph *gi, const char *name)
{
	struct rank_walk w = {gi, RANK_MAX_STEPS};
	return value_rank(&w, name, 0);
}

int bnf_graph_value_length(const struct bnf_graph *gi, const char *name)
{
	struct rank_walk w = {gi, RANK_MAX_STEPS};
	long long len = value_length(&w, name, 0);
	return len >= 0 && len <= 1 << 20 ? (int)len : -1;
}
