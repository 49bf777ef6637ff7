/*
 * After the cleanup: folds that made the same tensor twice keep one copy.
 * A layer and its BN shared by several paths (the class and box heads a
 * detector runs on every pyramid level) fold into equal weights once per
 * path; each fold writes its own copy (never in place: FOLDING trap 3), so
 * the model would grow by a head per level. Only initializers this run
 * created are merged, and only when type, dims and bytes are equal; the
 * readers of a copy read the first one instead.
 */
#include <stdlib.h>
#include <string.h>

#include "fold/internal.h"
#include "io/validate.h"
#include "util/mem.h"

/* A tensor this run created, held in memory as raw bytes. */
static int candidate(const struct fold_ctx *ctx, const Onnx__TensorProto *t)
{
	return t->name && t->has_raw_data && t->raw_data.len > 0 &&
	       t->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL &&
	       bnf_strmap_get(&ctx->new_names, t->name, NULL);
}

static int same_tensor(const Onnx__TensorProto *a, const Onnx__TensorProto *b)
{
	return a->data_type == b->data_type && a->n_dims == b->n_dims &&
	       memcmp(a->dims, b->dims, a->n_dims * sizeof(*a->dims)) == 0 &&
	       a->raw_data.len == b->raw_data.len &&
	       memcmp(a->raw_data.data, b->raw_data.data, a->raw_data.len) == 0;
}

struct rename {
	const char *from, *to;
};

static int rename_cb(Onnx__GraphProto *sub, void *arg);

/* Every read of r->from in g and its subgraphs reads r->to. */
static int rename_reads(Onnx__GraphProto *g, struct rename *r)
{
	size_t i, k;

	for (i = 0; i < g->n_node; i++) {
		Onnx__NodeProto *node = g->node[i];
		for (k = 0; k < node->n_input; k++)
			if (strcmp(node->input[k], r->from) == 0) {
				char *copy = strdup(r->to);
				if (!copy)
					return BNF_ERR_NOMEM;
				free(node->input[k]);
				node->input[k] = copy;
			}
		if (bnf_node_for_each_subgraph(node, rename_cb, r) != BNF_OK)
			return BNF_ERR_NOMEM;
	}
	return BNF_OK;
}

static int rename_cb(Onnx__GraphProto *sub, void *arg)
{
	return rename_reads(sub, arg);
}

/* Initializer i of g equals an earlier one of this run: index of that
 * one, or -1. */
static long earlier_equal(const struct fold_ctx *ctx, const Onnx__GraphProto *g, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (candidate(ctx, g->initializer[j]) &&
		    same_tensor(g->initializer[j], g->initializer[i]))
			return (long)j;
	return -1;
}

struct share_sub {
	struct fold_ctx *ctx;
	int depth;
};

static int share_graph(struct fold_ctx *ctx, Onnx__GraphProto *g, int depth);

static int share_cb(Onnx__GraphProto *sub, void *arg)
{
	struct share_sub *s = arg;
	return share_graph(s->ctx, sub, s->depth + 1);
}

static int share_graph(struct fold_ctx *ctx, Onnx__GraphProto *g, int depth)
{
	struct share_sub s = {ctx, depth};
	size_t i = 0, k;
	int rc;

	if (depth > BNF_LIMIT_GRAPH_DEPTH)
		return BNF_OK;
	while (i < g->n_initializer) {
		Onnx__TensorProto *t = g->initializer[i];
		long first = candidate(ctx, t) ? earlier_equal(ctx, g, i) : -1;
		struct rename r;
		if (first < 0) {
			i++;
			continue;
		}
		r.from = t->name;
		r.to = g->initializer[first]->name;
		if (rename_reads(g, &r) != BNF_OK)
			return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		bnf_graph_remove_input(g, t->name);
		bnf_graph_remove_value_info(g, t->name);
		onnx__tensor_proto__free_unpacked(t, &bnf_large_allocator);
		memmove(&g->initializer[i], &g->initializer[i + 1],
		        (g->n_initializer - i - 1) * sizeof(*g->initializer));
		g->n_initializer--;
		ctx->rep->initializers_removed++;
	}
	for (k = 0; k < g->n_node; k++)
		if ((rc = bnf_node_for_each_subgraph(g->node[k], share_cb, &s)) != BNF_OK)
			return rc;
	return BNF_OK;
}

int bnf_fold_share_equal(struct fold_ctx *ctx, Onnx__GraphProto *g)
{
	return share_graph(ctx, g, 0);
}
