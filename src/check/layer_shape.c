/*
 * The input shape a fold's chain runs at in the per-fold check (chain.h):
 * the channels exact, the rest as small as still reads every weight. A
 * convolution gets, per spatial axis, the shortest length with an output
 * position reading every tap, the padded borders, and every tap read at
 * two positions; a dilated one is run as one residue class of itself.
 */
#include "check/chain.h"

#include <stdlib.h>
#include <string.h>

#include "eval/tensor.h"

static Onnx__AttributeProto *attr_find(const Onnx__NodeProto *node, const char *name)
{
	size_t i;
	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
			return node->attribute[i];
	return NULL;
}

static long long attr_int(const Onnx__NodeProto *node, const char *name, long long def)
{
	const Onnx__AttributeProto *a = attr_find(node, name);
	return a && a->has_i ? a->i : def;
}

/* Value i of an ints attribute, def when it has none. */
static int64_t attr_ints_at(const Onnx__NodeProto *node, const char *name, size_t i, int64_t def)
{
	const Onnx__AttributeProto *a = attr_find(node, name);
	return a && a->n_ints > i ? a->ints[i] : def;
}

/* auto_pad: NOTSET (explicit pads), SAME_UPPER, SAME_LOWER or VALID. */
enum conv_auto_pad {
	CONV_AUTO_PAD_NOTSET,
	CONV_AUTO_PAD_SAME_UPPER,
	CONV_AUTO_PAD_SAME_LOWER,
	CONV_AUTO_PAD_VALID,
};

static enum conv_auto_pad conv_auto_pad(const Onnx__NodeProto *node)
{
	const Onnx__AttributeProto *a = attr_find(node, "auto_pad");
	size_t len = a && a->has_s ? a->s.len : 0;

	if (len == 10 && memcmp(a->s.data, "SAME_UPPER", 10) == 0)
		return CONV_AUTO_PAD_SAME_UPPER;
	if (len == 10 && memcmp(a->s.data, "SAME_LOWER", 10) == 0)
		return CONV_AUTO_PAD_SAME_LOWER;
	if (len == 5 && memcmp(a->s.data, "VALID", 5) == 0)
		return CONV_AUTO_PAD_VALID;
	return CONV_AUTO_PAD_NOTSET;
}

/* One spatial axis of a Conv as its attributes give it. */
struct conv_axis {
	int64_t extent; /* of the kernel, dilation included: (k - 1) d + 1 */
	int64_t kernel, dilation, stride;
	int64_t pad_begin, pad_end; /* explicit pads (auto_pad NOTSET) */
	enum conv_auto_pad auto_pad;
};

/* Read spatial axis i of a Conv or ConvTranspose. Returns 0, or -1 for
 * values no layer has (the extent is kept far from overflowing). */
static int conv_axis_of(const Onnx__NodeProto *conv, const Onnx__TensorProto *w, size_t i,
                        struct conv_axis *ax)
{
	const int64_t big = INT64_C(1) << 30;
	size_t n = w->n_dims - 2;

	ax->kernel = w->dims[2 + i];
	ax->dilation = attr_ints_at(conv, "dilations", i, 1);
	ax->stride = attr_ints_at(conv, "strides", i, 1);
	ax->pad_begin = attr_ints_at(conv, "pads", i, 0);
	ax->pad_end = attr_ints_at(conv, "pads", n + i, 0);
	ax->auto_pad = conv_auto_pad(conv);
	if (ax->kernel < 1 || ax->kernel > big || ax->dilation < 1 ||
	    ax->dilation > big / ax->kernel || ax->stride < 1 || ax->pad_begin < 0 ||
	    ax->pad_end < 0)
		return -1;
	ax->extent = (ax->kernel - 1) * ax->dilation + 1;
	return 0;
}

/* The pads of the axis at input length len (auto_pad SAME_* pads to an
 * output of ceil(len / stride), the odd one at the end for UPPER). */
static void axis_pads(const struct conv_axis *ax, int64_t len, int64_t *pb, int64_t *pe)
{
	int64_t total;

	switch (ax->auto_pad) {
	case CONV_AUTO_PAD_NOTSET:
		*pb = ax->pad_begin;
		*pe = ax->pad_end;
		return;
	case CONV_AUTO_PAD_VALID:
		*pb = *pe = 0;
		return;
	default:
		total = ((len + ax->stride - 1) / ax->stride - 1) * ax->stride + ax->extent - len;
		total = total > 0 ? total : 0;
		*pb = ax->auto_pad == CONV_AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
		*pe = total - *pb;
	}
}

/* Does input length len test the axis well: an output position reading
 * every tap from the input (the weights as the interior sees them), the
 * last position reading the end padding when there is one (the first
 * reads the begin padding whenever there is one), and every tap read
 * from the input at two output positions at least (two random factors
 * per weight, not one that may happen to be small)? */
static int axis_reads_well(const struct conv_axis *ax, int64_t len)
{
	int64_t pb, pe, n_out, o, t, interior = 0;

	axis_pads(ax, len, &pb, &pe);
	n_out = (len + pb + pe - ax->extent) / ax->stride + 1;
	if (len + pb + pe < ax->extent || n_out < 1)
		return 0;
	for (o = 0; o < n_out; o++) {
		int64_t first = o * ax->stride - pb;
		interior |= first >= 0 && first + ax->extent <= len;
	}
	if (!interior || (pe > 0 && (n_out - 1) * ax->stride - pb + ax->extent <= len))
		return 0;
	for (t = 0; t < ax->kernel; t++) {
		int64_t reads = 0;
		for (o = 0; o < n_out; o++) {
			int64_t at = o * ax->stride - pb + t * ax->dilation;
			reads += at >= 0 && at < len;
		}
		if (reads < 2)
			return 0;
	}
	return 1;
}

/* Beyond these the search below is not worth its cost (a hostile model's
 * pads of 10^9 would make it quadratic in them): the kernel's extent plus
 * one, the shape the check always used, then stands. */
#define AXIS_SEARCH_MAX_STRIDE 64
#define AXIS_SEARCH_MAX_EXTENT 256
#define AXIS_SEARCH_MAX_PADS   256

static int axis_searchable(const struct conv_axis *ax)
{
	return ax->stride <= AXIS_SEARCH_MAX_STRIDE && ax->extent <= AXIS_SEARCH_MAX_EXTENT &&
	       ax->pad_begin <= AXIS_SEARCH_MAX_PADS && ax->pad_end <= AXIS_SEARCH_MAX_PADS;
}

/* The shortest input length that tests the axis well; one past the
 * kernel's extent when none up to a few strides past it does (pads far
 * wider than the kernel). */
static int64_t axis_length(const struct conv_axis *ax)
{
	int64_t len;

	if (!axis_searchable(ax))
		return ax->extent + 1;
	for (len = ax->extent; len <= ax->extent + ax->pad_begin + ax->pad_end + 4 * ax->stride;
	     len++)
		if (axis_reads_well(ax, len))
			return len;
	return ax->extent + 1;
}

static int conv_input_shape(const Onnx__NodeProto *layer, const Onnx__TensorProto *w, int *rank,
                            int64_t *dims)
{
	long long group = attr_int(layer, "group", 1);
	size_t i;

	if (w->n_dims < 3 || w->n_dims > BNF_MAX_RANK)
		return -1;
	*rank = (int)w->n_dims;
	dims[0] = 1;
	dims[1] = w->dims[1] * group;
	for (i = 2; i < w->n_dims; i++) {
		struct conv_axis ax;
		if (conv_axis_of(layer, w, i - 2, &ax) != 0)
			return -1;
		dims[i] = axis_length(&ax);
	}
	return 0;
}

/* Does input length len test a ConvTranspose axis well: input position
 * i and tap t write output i s + t d - pad_begin, kept when inside the
 * output; is every tap kept at two input positions at least? */
static int transpose_axis_reads_well(const struct conv_axis *ax, int64_t out_pad, int64_t len)
{
	int64_t n_out = (len - 1) * ax->stride + out_pad + ax->extent - ax->pad_begin - ax->pad_end;
	int64_t i, t;

	if (n_out < 1)
		return 0;
	for (t = 0; t < ax->kernel; t++) {
		int64_t kept = 0;
		for (i = 0; i < len; i++) {
			int64_t at = i * ax->stride + t * ax->dilation - ax->pad_begin;
			kept += at >= 0 && at < n_out;
		}
		if (kept < 2)
			return 0;
	}
	return 1;
}

/* 3 per axis, or longer when pads crop a tap away there (pads wider than
 * the kernel). With output_shape or auto_pad the evaluator derives the
 * pads from the output size: 3. */
static int transpose_input_shape(const Onnx__NodeProto *layer, const Onnx__TensorProto *w,
                                 int *rank, int64_t *dims)
{
	long long group = attr_int(layer, "group", 1);
	int derived =
	    attr_find(layer, "output_shape") || conv_auto_pad(layer) != CONV_AUTO_PAD_NOTSET;
	size_t i;

	/* W is C_in x M/group x k...: the input has all C_in channels, a
	 * multiple of group. */
	if (w->n_dims < 3 || w->n_dims > BNF_MAX_RANK || group < 1 || w->dims[0] % group != 0)
		return -1;
	*rank = (int)w->n_dims;
	dims[0] = 1;
	dims[1] = w->dims[0];
	for (i = 2; i < w->n_dims; i++) {
		struct conv_axis ax;
		int64_t out_pad = attr_ints_at(layer, "output_padding", i - 2, 0), len = 3;
		if (!derived && conv_axis_of(layer, w, i - 2, &ax) == 0 && axis_searchable(&ax) &&
		    out_pad >= 0 && out_pad <= AXIS_SEARCH_MAX_STRIDE)
			while (len < 3 + ax.pad_begin + ax.pad_end + 4 &&
			       !transpose_axis_reads_well(&ax, out_pad, len))
				len++;
		dims[i] = len;
	}
	return 0;
}

static int gemm_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *layer,
                            const Onnx__TensorProto *w, int64_t *dims, int *batch_dim)
{
	struct bnf_const_ref c;
	int64_t m = 3, k = attr_int(layer, "transB", 0) ? w->dims[1] : w->dims[0];

	if (layer->n_input >= 3 && layer->input[2][0] &&
	    bnf_graph_constant(gi, layer->input[2], &c) && c.tensor->n_dims == 2 &&
	    c.tensor->dims[0] > 1) {
		m = c.tensor->dims[0]; /* C's rows fix A's */
		*batch_dim = -1;
	}
	if (attr_int(layer, "transA", 0)) {
		if (*batch_dim == 0)
			*batch_dim = 1;
		dims[0] = k;
		dims[1] = m;
	} else {
		dims[0] = m;
		dims[1] = k;
	}
	return 0;
}

/* A valid input shape for the layer, small enough to be quick, and which
 * of its dims may grow to hold several samples at once (*batch_dim, -1 when
 * none may). */
int bnf_chain_layer_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *layer,
                                int *dtype, int *rank, int64_t *dims, int *batch_dim)
{
	struct bnf_const_ref w;

	if (layer->n_input < 2 || !bnf_graph_constant(gi, layer->input[1], &w))
		return -1;
	*dtype = w.tensor->data_type;
	*batch_dim = 0;
	if (bnf_node_is(layer, "Conv"))
		return conv_input_shape(layer, w.tensor, rank, dims);
	if (bnf_node_is(layer, "ConvTranspose"))
		return transpose_input_shape(layer, w.tensor, rank, dims);
	if (w.tensor->n_dims != 2)
		return -1;
	*rank = 2;
	if (bnf_node_is(layer, "Gemm"))
		return gemm_input_shape(gi, layer, w.tensor, dims, batch_dim);
	dims[0] = 3;
	dims[1] = w.tensor->dims[0];
	return 0;
}

/* The input of a lowered BN's Mul: [1, C, 3, ...] with C the length of
 * its constant [C, 1, ..., 1]. */
int bnf_chain_lowered_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *mul,
                                  int *dtype, int *rank, int64_t *dims)
{
	struct bnf_const_ref s;
	size_t i;

	if (mul->n_input != 2 || !bnf_graph_constant(gi, mul->input[1], &s) ||
	    s.tensor->n_dims < 1 || s.tensor->n_dims + 1 > BNF_MAX_RANK)
		return -1;
	*dtype = s.tensor->data_type;
	*rank = (int)s.tensor->n_dims + 1;
	dims[0] = 1;
	dims[1] = s.tensor->dims[0];
	for (i = 2; i < (size_t)*rank; i++)
		dims[i] = 3;
	return 0;
}

/* ---- a dilated convolution as one residue class of itself ---- */

/* The one Conv of a chain's graph, or NULL when it has none or several. */
static Onnx__NodeProto *only_conv(const Onnx__GraphProto *g)
{
	Onnx__NodeProto *conv = NULL;
	size_t i;

	for (i = 0; i < g->n_node; i++)
		if (bnf_node_is(g->node[i], "Conv")) {
			if (conv)
				return NULL;
			conv = g->node[i];
		}
	return conv;
}

static int same_attributes(const Onnx__NodeProto *a, const Onnx__NodeProto *b)
{
	size_t i;

	if (a->n_attribute != b->n_attribute)
		return 0;
	for (i = 0; i < a->n_attribute; i++)
		if (!bnf_chain_same_message(a->attribute[i], b->attribute[i]))
			return 0;
	return 1;
}

/* Can axis i of n, dilated by d > 1, be read with dilation 1: unit
 * stride, and pads that are whole multiples of d: explicit ones, or
 * VALID's none. (SAME_* with a dilation, which onnxruntime refuses, is
 * run as it is.) */
static int axis_undilatable(const Onnx__NodeProto *conv, size_t n, size_t i, int64_t d)
{
	if (d < 1 || attr_ints_at(conv, "strides", i, 1) != 1)
		return 0;
	switch (conv_auto_pad(conv)) {
	case CONV_AUTO_PAD_NOTSET:
		return attr_ints_at(conv, "pads", i, 0) % d == 0 &&
		       attr_ints_at(conv, "pads", n + i, 0) % d == 0;
	case CONV_AUTO_PAD_VALID:
		return 1;
	default:
		return 0;
	}
}

/* A dilation can be read as 1: every dilated axis can, and some axis is
 * dilated. */
static int undilatable(const Onnx__NodeProto *conv)
{
	const Onnx__AttributeProto *dil = attr_find(conv, "dilations");
	const Onnx__AttributeProto *pads = attr_find(conv, "pads");
	size_t i, n = dil ? dil->n_ints : 0;
	int dilated = 0;

	if (pads && pads->n_ints != 2 * n)
		return 0;
	for (i = 0; i < n; i++) {
		if (dil->ints[i] == 1)
			continue;
		if (!axis_undilatable(conv, n, i, dil->ints[i]))
			return 0;
		dilated = 1;
	}
	return dilated;
}

/* Dilations 1, explicit pads divided by them (VALID has none). */
static void undilate(Onnx__NodeProto *conv)
{
	Onnx__AttributeProto *dil = attr_find(conv, "dilations");
	Onnx__AttributeProto *pads = attr_find(conv, "pads");
	int explicit_pads = pads && conv_auto_pad(conv) == CONV_AUTO_PAD_NOTSET;
	size_t i, n = dil->n_ints;

	for (i = 0; i < n; i++) {
		if (explicit_pads) {
			pads->ints[i] /= dil->ints[i];
			pads->ints[n + i] /= dil->ints[i];
		}
		dil->ints[i] = 1;
	}
}

Onnx__NodeProto *bnf_chain_undilate(Onnx__ModelProto *before, Onnx__ModelProto *after)
{
	Onnx__NodeProto *a = only_conv(before->graph), *b = only_conv(after->graph);

	if (!a || !b || !same_attributes(a, b) || !undilatable(b))
		return NULL;
	undilate(a);
	undilate(b);
	return b;
}

void bnf_chain_set_input_dims(Onnx__ModelProto *m, int rank, const int64_t *dims)
{
	const Onnx__TypeProto *tp = m->graph->n_input ? m->graph->input[0]->type : NULL;
	Onnx__TensorShapeProto *sh = tp && tp->tensor_type ? tp->tensor_type->shape : NULL;
	int i;

	for (i = 0; sh && i < rank && (size_t)i < sh->n_dim; i++)
		sh->dim[i]->dim_value = dims[i];
}
