/*
 * Eval-mode identities between a layer and what folds into it: the walk
 * from a value back through Identity and eval-mode Dropout to the node that
 * really produces it. Shared by the BatchNormalization and affine folds.
 */
#include <string.h>

#include "fold/internal.h"

/* 1 when the bool constant name holds false. */
static int constant_false(const struct bnf_graph *gi, const char *name)
{
	struct bnf_const_ref ref;
	const Onnx__TensorProto *t;

	if (!bnf_graph_constant(gi, name, &ref))
		return 0;
	t = ref.tensor;
	if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)
		return 0;
	if (t->has_raw_data && t->raw_data.len == 1)
		return t->raw_data.data[0] == 0;
	if (!t->has_raw_data && t->n_int32_data == 1)
		return t->int32_data[0] == 0;
	return 0;
}

/* Is Dropout node p the identity here? Eval mode (is_test=1 before opset
 * 7; training_mode absent or constant false from opset 12) and a mask
 * that nothing reads. The ratio does not matter in eval mode. */
int bnf_fold_dropout_is_identity(const struct bnf_graph *gi, const Onnx__NodeProto *p,
                                 struct fold_outcome *out)
{
	if (gi->opset < 7 && bnf_fold_attr_int(p, "is_test", 0) == 0)
		return bnf_fold_keep(out, BNF_KEEP_REASON_PASS_THROUGH_UNSAFE,
		                     "Dropout '%s' has is_test=0 (opset %d): it drops values",
		                     bnf_node_label(p), gi->opset),
		       0;
	if (p->n_output >= 2 && p->output[1][0] &&
	    (bnf_graph_uses(gi, p->output[1]) > 0 || bnf_graph_is_output(gi, p->output[1])))
		return bnf_fold_keep(out, BNF_KEEP_REASON_PASS_THROUGH_UNSAFE,
		                     "the mask '%s' of Dropout '%s' is read", p->output[1],
		                     bnf_node_label(p)),
		       0;
	if (p->n_input >= 3 && p->input[2][0] && !constant_false(gi, p->input[2]))
		return bnf_fold_keep(
		           out, BNF_KEEP_REASON_PASS_THROUGH_UNSAFE,
		           "the training_mode '%s' of Dropout '%s' is not a constant false",
		           p->input[2], bnf_node_label(p)),
		       0;
	return 1;
}

Onnx__NodeProto *bnf_fold_walk_back(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                    const char **x, struct fold_outcome *out)
{
	Onnx__NodeProto *p;

	for (;;) {
		if (bnf_graph_producer(gi, *x, NULL) && !bnf_fold_producer(ctx, gi, *x)) {
			bnf_fold_keep(out, BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
			              "'%s' was changed by another fold of this sweep", *x);
			return NULL;
		}
		p = bnf_fold_producer(ctx, gi, *x);
		if (!p || !(bnf_node_is(p, "Identity") || bnf_node_is(p, "Dropout")))
			return p;
		/* A value read elsewhere stops the walk: the caller refuses it. */
		if (bnf_graph_uses(gi, *x) != 1 || bnf_graph_is_output(gi, *x) || p->n_input < 1 ||
		    !p->input[0][0] || out->n_pass >= sizeof(out->pass) / sizeof(out->pass[0]))
			return p;
		if (bnf_node_is(p, "Dropout") && !bnf_fold_dropout_is_identity(gi, p, out))
			return NULL;
		out->pass[out->n_pass++] = p;
		*x = p->input[0];
	}
}
