/*
 * Values computed only from constants (paddle2onnx's conv bias is
 * Reshape(Constant b, Constant [1, C, 1, 1])): the evaluator computes each
 * once per sweep and the folds take it as a constant tensor; the cleanup
 * drops the subgraph once nothing reads it.
 */
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "fold/internal.h"
#include "util/mem.h"

/* A computed constant whose tensors would pass this many bytes is not
 * worth evaluating. */
#define CONST_MAX_BYTES ((size_t)256 << 20)

/* Run the plan's nodes on its constants with the evaluator: the value of
 * name as a new TensorProto, or NULL when the evaluator cannot. */
static Onnx__TensorProto *evaluate_plan(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                        const struct bnf_const_plan *p, const char *name)
{
	Onnx__ModelProto m;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto opset, *opsets[1];
	Onnx__ValueInfoProto out, *outs[1];
	Onnx__TensorProto *inits = NULL, **init_ptrs = NULL, *result = NULL;
	Onnx__NodeProto *nodes[BNF_CONST_PLAN_NODES];
	char **names = NULL; /* protobuf-c's names are not const: copies */
	struct bnf_eval_options eo;
	struct bnf_tensor **values = NULL;
	struct bnf_error err;
	size_t i;

	memset(&err, 0, sizeof(err));
	onnx__model_proto__init(&m);
	onnx__graph_proto__init(&g);
	onnx__operator_set_id_proto__init(&opset);
	onnx__value_info_proto__init(&out);
	opset.domain = "";
	opset.has_version = 1;
	opset.version = gi->opset;
	opsets[0] = &opset;
	outs[0] = &out;
	inits = calloc(p->n_leaves + 1, sizeof(*inits));
	init_ptrs = calloc(p->n_leaves + 1, sizeof(*init_ptrs));
	names = calloc(p->n_leaves + 1, sizeof(*names));
	if (!inits || !init_ptrs || !names || !(names[p->n_leaves] = strdup(name)))
		goto out;
	out.name = names[p->n_leaves];
	/* The constants are borrowed: shallow copies under the names read. */
	for (i = 0; i < p->n_leaves; i++) {
		if (!(names[i] = strdup(p->leaf_names[i])))
			goto out;
		inits[i] = *p->leaves[i];
		inits[i].name = names[i];
		init_ptrs[i] = &inits[i];
	}
	memcpy(nodes, p->nodes, p->n_nodes * sizeof(*nodes));
	m.graph = &g;
	m.opset_import = opsets;
	m.n_opset_import = 1;
	g.node = nodes;
	g.n_node = p->n_nodes;
	g.initializer = init_ptrs;
	g.n_initializer = p->n_leaves;
	g.output = outs;
	g.n_output = 1;
	if (bnf_eval_find_unsupported(&m, NULL, 0, NULL, 0))
		goto out;
	memset(&eo, 0, sizeof(eo));
	eo.threads = 1;
	eo.max_bytes = CONST_MAX_BYTES;
	eo.ext = ctx->opt ? ctx->opt->ext : NULL;
	if (bnf_eval_run(&m, &eo, 0, NULL, NULL, &values, &err) != BNF_OK)
		goto out;
	if (bnf_tensor_to_proto(values[0], name, &result, &err) != BNF_OK)
		result = NULL;
	bnf_tensor_free(values[0]);
	free(values);
out:
	for (i = 0; names && i <= p->n_leaves; i++)
		free(names[i]);
	free(names);
	free(inits);
	free(init_ptrs);
	return result;
}

struct fold_computed {
	const Onnx__GraphProto *g;
	char *name;
	Onnx__TensorProto *tensor; /* NULL: tried, not a constant */
};

static int remember(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name,
                    Onnx__TensorProto *t)
{
	struct fold_computed *c =
	    realloc(ctx->computed, (ctx->n_computed + 1) * sizeof(*ctx->computed));
	char *copy = strdup(name);

	if (c)
		ctx->computed = c;
	if (!c || !copy) {
		free(copy);
		if (t)
			onnx__tensor_proto__free_unpacked(t, NULL);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	c[ctx->n_computed].g = gi->g;
	c[ctx->n_computed].name = copy;
	c[ctx->n_computed].tensor = t;
	/* A name of another graph seen before is shadowed: looked up again,
	 * it misses and is computed anew. */
	if (bnf_strmap_put(&ctx->computed_index, copy, ctx->n_computed) != 0) {
		free(copy);
		if (t)
			onnx__tensor_proto__free_unpacked(t, NULL);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	ctx->n_computed++;
	return BNF_OK;
}

int bnf_fold_constant(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name,
                      struct bnf_const_ref *ref)
{
	struct bnf_const_plan *p;
	Onnx__TensorProto *t;
	size_t i;

	if (bnf_graph_constant(gi, name, ref))
		return 1;
	if (bnf_strmap_get(&ctx->computed_index, name, &i) && ctx->computed[i].g == gi->g) {
		t = ctx->computed[i].tensor;
		goto found;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	t = bnf_graph_plan_constant(gi, name, p) ? evaluate_plan(ctx, gi, p, name) : NULL;
	free(p);
	if (remember(ctx, gi, name, t) != BNF_OK)
		return BNF_ERR_NOMEM;
found:
	if (!t)
		return 0;
	memset(ref, 0, sizeof(*ref));
	ref->tensor = t;
	ref->owner = gi;
	ref->synthesized = 1; /* the evaluator's result, not part of the tree */
	return 1;
}

void bnf_fold_constants_forget(struct fold_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->n_computed; i++) {
		free(ctx->computed[i].name);
		if (ctx->computed[i].tensor)
			onnx__tensor_proto__free_unpacked(ctx->computed[i].tensor, NULL);
	}
	free(ctx->computed);
	ctx->computed = NULL;
	ctx->n_computed = 0;
	bnf_strmap_free(&ctx->computed_index);
	bnf_strmap_init(&ctx->computed_index);
}

int bnf_fold_int_values(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name,
                        long long *v, int max)
{
	struct bnf_const_ref ref;

	if (bnf_fold_constant(ctx, gi, name, &ref) != 1)
		return -1;
	return bnf_tensor_int_values(ref.tensor, v, max);
}
