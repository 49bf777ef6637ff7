/*
 * The helpers every fold shares (declared in fold_internal.h): outcomes,
 * name bookkeeping, attribute readers, constant reading and the one place
 * where a fold writes a constant back, in place or as a fresh copy.
 */
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

int bnf_fold_keep(struct fold_outcome *out, enum bnf_keep_reason reason, const char *fmt, ...)
{
	va_list ap;
	out->reason = reason;
	va_start(ap, fmt);
	vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
	va_end(ap);
	return BNF_OK;
}

/* Hand s (malloc'd) to ctx, which frees it when the run ends. Strings the
 * fold replaces in the tree go here rather than to free(): the graph index
 * of the current sweep still uses them as keys. */
static int fold_keep_string(struct fold_ctx *ctx, char *s)
{
	char **p = realloc(ctx->owned, (ctx->n_owned + 1) * sizeof(*p));
	if (!p)
		return -1;
	ctx->owned = p;
	ctx->owned[ctx->n_owned++] = s;
	return 0;
}

static char *owned_copy(struct fold_ctx *ctx, const char *s)
{
	char *copy = strdup(s);

	if (copy && fold_keep_string(ctx, copy) != 0) {
		free(copy);
		return NULL;
	}
	return copy;
}

int bnf_fold_release(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name)
{
	struct fold_released *p;
	Onnx__GraphProto *g;
	char *copy;

	if (!name || !name[0])
		return BNF_OK;
	/* Record it where it is defined: a subgraph may read an outer value. */
	g = bnf_graph_owner(gi, name);
	if (!g)
		g = gi->g;
	copy = strdup(name);
	p = realloc(ctx->released, (ctx->n_released + 1) * sizeof(*p));
	if (!copy || !p) {
		free(copy);
		if (p)
			ctx->released = p;
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	ctx->released = p;
	p[ctx->n_released].g = g;
	p[ctx->n_released].name = copy;
	ctx->n_released++;
	return BNF_OK;
}

const char *bnf_fold_unique_name(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *base)
{
	size_t len = strlen(base) + 32;
	char *buf = malloc(len);
	const char *result = NULL;
	unsigned n;

	if (!buf) {
		bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (n = 0; n < 1000000; n++) {
		if (n == 0)
			snprintf(buf, len, "%s", base);
		else
			snprintf(buf, len, "%s_%u", base, n);
		if (!bnf_graph_name_taken(gi, buf) && !bnf_strmap_get(&ctx->new_names, buf, NULL))
			break;
	}
	result = owned_copy(ctx, buf);
	if (!result || bnf_strmap_put(&ctx->new_names, result, 1) != 0) {
		bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		result = NULL;
	}
	free(buf);
	return result;
}

long long bnf_fold_attr_int(const Onnx__NodeProto *node, const char *name, long long def)
{
	size_t i;
	for (i = 0; i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		if (a->name && strcmp(a->name, name) == 0 && a->has_i)
			return (long long)a->i;
	}
	return def;
}

double bnf_fold_attr_float(const Onnx__NodeProto *node, const char *name, double def)
{
	size_t i;
	for (i = 0; i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		if (a->name && strcmp(a->name, name) == 0 && a->has_f)
			return (double)a->f; /* float32 attribute, widened */
	}
	return def;
}

int bnf_fold_overflows(const double *vals, size_t count, int dtype, size_t *where)
{
	double max = bnf_dtype_max(dtype);
	size_t i;
	/* Anything beyond the largest finite value would round to it or to
	 * infinity; refusing both keeps the check one comparison per value. */
	for (i = 0; i < count; i++)
		if (!(fabs(vals[i]) <= max)) /* also true for NaN */
			goto found;
	return 0;
found:
	*where = i;
	return 1;
}

int bnf_fold_keep_not_constant(struct fold_ctx *ctx, const struct bnf_graph *gi,
                               const Onnx__NodeProto *node, const char *role, const char *name,
                               struct fold_outcome *out)
{
	if (bnf_graph_is_overridable(gi, name))
		return bnf_fold_keep(out, BNF_KEEP_REASON_NON_CONSTANT,
		                     "%s '%s' of %s '%s' is an initializer also listed as a graph "
		                     "input, which can be fed at run time (IR version %lld); "
		                     "--freeze-initializer-inputs treats such inputs as constants",
		                     role, name, node->op_type, bnf_node_label(node),
		                     ctx->ir_version);
	return bnf_fold_keep(out, BNF_KEEP_REASON_NON_CONSTANT,
	                     "%s '%s' of %s '%s' is not a constant", role, name, node->op_type,
	                     bnf_node_label(node));
}

int bnf_fold_index(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__GraphProto *g,
                   const struct bnf_graph *parent, int opset)
{
	int rc = bnf_graph_build(gi, g, parent, opset, ctx->err);

	if (!parent)
		gi->frozen_inputs = ctx->frozen_inputs;
	return rc;
}

int bnf_fold_read_constant(struct fold_ctx *ctx, const struct bnf_graph *gi,
                           const Onnx__NodeProto *node, size_t slot, const char *role,
                           double **vals, size_t *count, const Onnx__TensorProto **tensor,
                           struct fold_outcome *out)
{
	struct bnf_const_ref ref;
	const char *name = slot < node->n_input ? node->input[slot] : NULL;
	int dtype, rc;

	if (!name) /* a node with fewer inputs than its operator needs */
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "node '%s' (%s) has no input %zu (%s)",
		                bnf_node_label(node), node->op_type, slot, role);
	rc = bnf_fold_constant(ctx, gi, name, &ref);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		bnf_fold_keep_not_constant(ctx, gi, node, role, name, out);
		return 0;
	}
	dtype = ref.tensor->has_data_type ? ref.tensor->data_type : 0;
	if (!bnf_dtype_is_foldable(dtype)) {
		bnf_fold_keep(
		    out, BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
		    "%s '%s' of %s '%s' has dtype %s; bnfold folds float, double, float16 "
		    "and bfloat16",
		    role, name, node->op_type, bnf_node_label(node), bnf_dtype_label(dtype));
		return 0;
	}
	if (vals)
		rc = bnf_proto_read_doubles_ext(ctx->opt ? ctx->opt->ext : NULL, ref.tensor, vals,
		                                count, ctx->err);
	else
		rc = bnf_proto_numel(ref.tensor, count, ctx->err);
	if (rc != BNF_OK) {
		bnf_error_prefix(ctx->err, "node '%s'", bnf_node_label(node));
		return rc;
	}
	if (tensor)
		*tensor = ref.tensor;
	return 1;
}

static Onnx__TensorProto *new_tensor(const char *name, const int64_t *dims, size_t rank)
{
	Onnx__TensorProto *t = malloc(sizeof(*t));

	if (!t)
		return NULL;
	onnx__tensor_proto__init(t);
	t->name = strdup(name);
	t->dims = malloc((rank ? rank : 1) * sizeof(*t->dims));
	if (!t->name || !t->dims) {
		onnx__tensor_proto__free_unpacked(t, &bnf_large_allocator);
		return NULL;
	}
	if (rank)
		memcpy(t->dims, dims, rank * sizeof(*dims));
	t->n_dims = rank;
	return t;
}

static int set_dims(Onnx__TensorProto *t, const int64_t *dims, size_t rank)
{
	int64_t *p = malloc((rank ? rank : 1) * sizeof(*p));
	if (!p)
		return -1;
	if (rank)
		memcpy(p, dims, rank * sizeof(*dims));
	free(t->dims);
	t->dims = p;
	t->n_dims = rank;
	return 0;
}

/* bnf_fold_store_constant and bnf_fold_store_raw: the new data is vals (doubles)
 * or raw (stored bytes, owned from here on). */
static int store_constant(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                          size_t slot, int dtype, const int64_t *dims, size_t rank,
                          const double *vals, size_t count, uint8_t *raw, size_t len,
                          const char *base)
{
	struct bnf_const_ref ref;
	Onnx__TensorProto *t;
	const char *name;
	char *input_copy;
	int rc;

	/* Only this node can see a constant of the tree: rewrite it where it
	 * is (a computed or synthesized one gets a new initializer below). */
	if (slot < node->n_input && node->input[slot][0] &&
	    bnf_fold_constant(ctx, gi, node->input[slot], &ref) == 1 && ref.owner == gi &&
	    !ref.through_identity && !ref.synthesized &&
	    !bnf_strmap_get(&gi->inputs, node->input[slot], NULL) &&
	    bnf_graph_uses(gi, node->input[slot]) == 1 &&
	    !bnf_graph_is_output(gi, node->input[slot]) &&
	    (t = bnf_graph_constant_in_tree(&ref)) != NULL) {
		if (set_dims(t, dims, rank) != 0) {
			free(raw);
			return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		}
		if (raw) {
			bnf_proto_set_raw(t, dtype, raw, len);
		} else {
			rc = bnf_proto_write_doubles(t, dtype, vals, count, ctx->err);
			if (rc != BNF_OK)
				return rc;
		}
		/* Large results go to the spill file, not memory (external.h). */
		return bnf_external_spill(ctx->opt ? ctx->opt->ext : NULL, t, ctx->err);
	}
	if (slot < node->n_input && node->input[slot][0])
		base = node->input[slot];
	name = bnf_fold_unique_name(ctx, gi, base);
	t = name ? new_tensor(name, dims, rank) : NULL;
	if (!t) {
		free(raw);
		return name ? bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory") : BNF_ERR_NOMEM;
	}
	if (raw)
		bnf_proto_set_raw(t, dtype, raw, len);
	if ((!raw && bnf_proto_write_doubles(t, dtype, vals, count, ctx->err) != BNF_OK) ||
	    bnf_external_spill(ctx->opt ? ctx->opt->ext : NULL, t, ctx->err) != BNF_OK ||
	    bnf_graph_append_initializer(gi->g, t) != 0) {
		onnx__tensor_proto__free_unpacked(t, &bnf_large_allocator);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	/* Below IR version 4 the main graph lists every initializer as an
	 * input (an initializer listed as an input is rewritten into a new
	 * one above, never in place, so its declared shape stays true). */
	if (ctx->list_initializers && !gi->parent && bnf_graph_append_input_for(gi->g, t) != 0)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	if (slot >= node->n_input) {
		/* Pad skipped optional inputs with empty names, then append. */
		while (node->n_input < slot)
			if (bnf_node_append_input(node, "") != 0)
				return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		if (bnf_node_append_input(node, name) != 0)
			return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		return BNF_OK;
	}
	input_copy = strdup(name);
	if (!input_copy)
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	if (bnf_fold_release(ctx, gi, node->input[slot]) != BNF_OK ||
	    fold_keep_string(ctx, node->input[slot]) != 0) {
		free(input_copy);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	node->input[slot] = input_copy;
	return BNF_OK;
}

int bnf_fold_store_constant(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                            size_t slot, int dtype, const int64_t *dims, size_t rank,
                            const double *vals, size_t count, const char *base)
{
	return store_constant(ctx, gi, node, slot, dtype, dims, rank, vals, count, NULL, 0, base);
}

int bnf_fold_store_bias(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                        size_t slot, int dtype, const int64_t *dims, size_t rank,
                        const double *vals, size_t count, const Onnx__NodeProto *layer)
{
	char base[256];

	snprintf(base, sizeof(base), "%s_bias", layer->input[1]);
	return bnf_fold_store_constant(ctx, gi, node, slot, dtype, dims, rank, vals, count, base);
}

int bnf_fold_store_raw(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                       size_t slot, int dtype, const int64_t *dims, size_t rank, uint8_t *raw,
                       size_t len, const char *base)
{
	return store_constant(ctx, gi, node, slot, dtype, dims, rank, NULL, 0, raw, len, base);
}

int bnf_fold_rename_output(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                           const char *name)
{
	char *copy = strdup(name);

	if (!copy || bnf_fold_release(ctx, gi, node->output[0]) != BNF_OK ||
	    fold_keep_string(ctx, node->output[0]) != 0) {
		free(copy);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	ctx->renamed_from = node->output[0];
	node->output[0] = copy;
	return BNF_OK;
}

int bnf_fold_take_output(struct fold_ctx *ctx, struct bnf_graph *gi, const struct fold_bn *bn,
                         Onnx__NodeProto *layer)
{
	return bnf_fold_rename_output(ctx, gi, bn->output_node ? bn->output_node : layer,
	                              bn->node->output[0]);
}

int bnf_fold_set_input(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                       size_t slot, const char *name)
{
	char *copy = strdup(name);

	if (!copy || bnf_fold_release(ctx, gi, node->input[slot]) != BNF_OK ||
	    fold_keep_string(ctx, node->input[slot]) != 0) {
		free(copy);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	node->input[slot] = copy;
	return BNF_OK;
}

int bnf_fold_truncate_inputs(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                             size_t n)
{
	while (node->n_input > n) {
		char *name = node->input[node->n_input - 1];
		if (bnf_fold_release(ctx, gi, name) != BNF_OK || fold_keep_string(ctx, name) != 0)
			return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
		node->n_input--;
	}
	return BNF_OK;
}

int bnf_fold_set_op_type(struct fold_ctx *ctx, Onnx__NodeProto *node, const char *op_type)
{
	char *copy = strdup(op_type);

	if (!copy || fold_keep_string(ctx, node->op_type) != 0) {
		free(copy);
		return bnf_fail(ctx->err, BNF_ERR_NOMEM, "out of memory");
	}
	node->op_type = copy;
	return BNF_OK;
}

int bnf_fold_node_stale(const struct fold_ctx *ctx, const struct bnf_graph *gi,
                        const Onnx__NodeProto *node)
{
	size_t i;

	if (!ctx->stale)
		return 0;
	for (i = 0; i < gi->g->n_node; i++)
		if (gi->g->node[i] == node)
			return ctx->stale[i];
	return 0;
}

Onnx__NodeProto *bnf_fold_producer(const struct fold_ctx *ctx, const struct bnf_graph *gi,
                                   const char *name)
{
	size_t idx;
	Onnx__NodeProto *p = bnf_graph_producer(gi, name, &idx);

	if (p && ctx->stale && idx < gi->g->n_node && ctx->stale[idx])
		return NULL;
	return p;
}

int bnf_fold_become_add(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node)
{
	size_t i;
	int rc = bnf_fold_truncate_inputs(ctx, gi, node, 2);

	if (rc == BNF_OK)
		rc = bnf_fold_set_op_type(ctx, node, "Add");
	if (rc != BNF_OK)
		return rc;
	for (i = 0; i < node->n_attribute; i++)
		onnx__attribute_proto__free_unpacked(node->attribute[i], &bnf_large_allocator);
	node->n_attribute = 0;
	return BNF_OK;
}

int bnf_fold_read_layer(struct fold_ctx *ctx, const struct bnf_graph *gi,
                        const Onnx__NodeProto *layer, const char *w_role, double **w, size_t *nw,
                        const Onnx__TensorProto **wt, const char *b_role, double **b, size_t *nb,
                        const Onnx__TensorProto **bt, struct fold_outcome *out)
{
	int rc = bnf_fold_read_constant(ctx, gi, layer, 1, w_role, w, nw, wt, out);

	if (rc == 1 && layer->n_input >= 3 && layer->input[2][0])
		rc = bnf_fold_read_constant(ctx, gi, layer, 2, b_role, b, nb, bt, out);
	return rc;
}

void bnf_fold_done(struct fold_outcome *out, enum bnf_fold_kind kind, Onnx__NodeProto *target)
{
	out->reason = BNF_KEEP_REASON_NONE;
	out->kind = kind;
	out->target = target;
}
