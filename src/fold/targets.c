/*
 * The table of fold targets (target.h): one row per layer a fold goes
 * into. Adding a layer means adding a row and its folds; the driver, the
 * affine, layout and before-layer folds and the lint find it here.
 */
#include "fold/target.h"

#include "fold/internal.h"

static const struct bnf_fold_target targets[] = {
    {
        .op_type = "Conv",
        .kind = BNF_FOLD_KIND_CONV,
        .channel_last = 0,
        .weight = BNF_WEIGHT_CHANNEL_FIRST,
        .min_weight_rank = 3,
        .max_weight_rank = 64,
        .affine_after = 1,
        .after = bnf_fold_into_conv,
        .before = bnf_fold_before_conv,
    },
    {
        .op_type = "ConvTranspose",
        .kind = BNF_FOLD_KIND_CONVTRANSPOSE,
        .channel_last = 0,
        .weight = BNF_WEIGHT_CHANNEL_GROUPED,
        .min_weight_rank = 3,
        .max_weight_rank = 64,
        .affine_after = 1,
        .after = bnf_fold_into_conv_transpose,
        .before = NULL, /* its input channels are W's first axis: not written */
    },
    {
        .op_type = "Gemm",
        .kind = BNF_FOLD_KIND_GEMM,
        .channel_last = 0, /* its output is 2-D: axis 1 is the last too */
        .weight = BNF_WEIGHT_CHANNEL_LAST,
        .weight_flip = "transB",
        .min_weight_rank = 2,
        .max_weight_rank = 2,
        .affine_after = 1,
        .after = bnf_fold_into_gemm,
        .before = bnf_fold_before_matrix,
    },
    {
        .op_type = "MatMul",
        .kind = BNF_FOLD_KIND_MATMUL,
        .channel_last = 1,
        .weight = BNF_WEIGHT_CHANNEL_LAST,
        .min_weight_rank = 2,
        .max_weight_rank = 2,
        .input_2d = 1,
        .affine_after = 1,
        .after = bnf_fold_into_matmul,
        .before = bnf_fold_before_matrix,
    },
};

const char bnf_fold_targets_named[] = "Conv, ConvTranspose, Gemm and MatMul";

const struct bnf_fold_target *bnf_fold_target_of(const Onnx__NodeProto *node)
{
	size_t i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
		if (bnf_node_is(node, targets[i].op_type))
			return &targets[i];
	return NULL;
}

enum bnf_weight_channel bnf_fold_target_weight_channel(const struct bnf_fold_target *t,
                                                       const Onnx__NodeProto *node)
{
	if (t->weight_flip && bnf_node_attr_int(node, t->weight_flip, 0) != 0)
		return t->weight == BNF_WEIGHT_CHANNEL_LAST ? BNF_WEIGHT_CHANNEL_FIRST
		                                            : BNF_WEIGHT_CHANNEL_LAST;
	return t->weight;
}

size_t bnf_fold_target_channels(const struct bnf_fold_target *t, const Onnx__NodeProto *node,
                                const Onnx__TensorProto *w)
{
	long long group;
	size_t d;

	if (w->n_dims < t->min_weight_rank || w->n_dims > t->max_weight_rank)
		return 0;
	for (d = 0; d < w->n_dims; d++)
		if (w->dims[d] <= 0)
			return 0;
	switch (bnf_fold_target_weight_channel(t, node)) {
	case BNF_WEIGHT_CHANNEL_FIRST:
		return (size_t)w->dims[0];
	case BNF_WEIGHT_CHANNEL_LAST:
		return (size_t)w->dims[w->n_dims - 1];
	case BNF_WEIGHT_CHANNEL_GROUPED:
		group = bnf_node_attr_int(node, "group", 1);
		return group >= 1 ? (size_t)w->dims[1] * (size_t)group : 0;
	}
	return 0;
}

/* A graph (its subgraphs included) that holds a BatchNormalization, or a
 * Mul/Add/Sub/Div beside a layer that takes an affine map after it. */
static int graph_may_change(const Onnx__GraphProto *g)
{
	int layer = 0, affine = 0;
	size_t i, k, j;

	for (i = 0; g && i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		const struct bnf_fold_target *t = bnf_fold_target_of(node);
		if (bnf_node_is(node, "BatchNormalization"))
			return 1;
		layer |= t && t->affine_after;
		affine |= bnf_node_is(node, "Mul") || bnf_node_is(node, "Add") ||
		          bnf_node_is(node, "Sub") || bnf_node_is(node, "Div");
		for (k = 0; k < node->n_attribute; k++) {
			const Onnx__AttributeProto *at = node->attribute[k];
			if (graph_may_change(at->g))
				return 1;
			for (j = 0; j < at->n_graphs; j++)
				if (graph_may_change(at->graphs[j]))
					return 1;
		}
	}
	return layer && affine;
}

int bnf_fold_may_change(const Onnx__ModelProto *model)
{
	return model && graph_may_change(model->graph);
}
