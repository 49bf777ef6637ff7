/*
 * The executor of the eval-mode evaluator: indexes every value of the main
 * graph by name, orders the nodes by their data dependencies (Kahn's
 * algorithm), runs each through its operator row and frees every
 * intermediate tensor as soon as its last consumer has run.
 */
#include "eval/eval.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/op.h"
#include "io/external.h"
#include "util/strmap.h"

/* Who frees a value's tensor: caller inputs are borrowed; initializers
 * may be views of the model's raw data (only the struct is ours). */
enum value_owner { value_owner_none, value_owner_all, value_owner_shell };

/* One named value of the graph: a graph input, an initializer or a node
 * output. */
struct value {
	const char *name;     /* borrowed from the model */
	struct bnf_tensor *t; /* NULL until produced, and again once freed */
	int owned;            /* an enum value_owner */
	int producer;         /* index of the producing node, or -1 */
	int graph_input;
	int graph_output;
	int unknown;      /* shapes_only: its shape is right, its values are not */
	size_t uses_left; /* node inputs that still have to read it */
};

struct run {
	const Onnx__GraphProto *graph;
	struct value *values;
	size_t n_values;
	struct bnf_strmap names; /* value name -> index in values */
	int *in_val;             /* per node input occurrence: value index or -1 */
	size_t *in_off;          /* node i's inputs are in_val[in_off[i] .. in_off[i+1]) */
	int *out_val;
	size_t *out_off;
	size_t *order; /* node indices in execution order */
	int opset;
	int promote;
	int shapes_only;
	int threads;
	size_t live_bytes;
	size_t max_bytes;
	struct bnf_error *err;
	const struct bnf_external *ext;
};

static int constant_shape(struct bnf_op_ctx *ctx);
static int constant_compute(struct bnf_op_ctx *ctx);

/* Constant is part of the executor rather than an operator family: every
 * graph uses it. Its row is read by the registry like any other table. */
const struct bnf_op bnf_ops_exec[] = {
    {"Constant", 1, 0, constant_shape, constant_compute, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int is_default_domain(const char *domain)
{
	return !domain || domain[0] == '\0' || strcmp(domain, "ai.onnx") == 0;
}

static const struct bnf_op *find_op(const Onnx__NodeProto *node, int opset)
{
	if (!is_default_domain(node->domain) || !node->op_type)
		return NULL;
	return bnf_op_find(node->op_type, opset);
}

/* The model's version of the default operator set, or -1 if absent. */
static int default_opset(const Onnx__ModelProto *model)
{
	size_t i;

	for (i = 0; i < model->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = model->opset_import[i];
		if (is_default_domain(o->domain) && o->has_version)
			return (int)o->version;
	}
	return -1;
}

/* What bnf_eval_find_unsupported gathers: one node for each distinct
 * operator missing, and the text written so far. */
struct unsupported {
	const Onnx__NodeProto **seen; /* first node of each operator listed */
	size_t count, cap;
	char *ops;
	size_t ops_len, used;
	int truncated;
};

static int same_operator(const Onnx__NodeProto *a, const Onnx__NodeProto *b)
{
	int da = is_default_domain(a->domain), db = is_default_domain(b->domain);

	return strcmp(a->op_type ? a->op_type : "", b->op_type ? b->op_type : "") == 0 &&
	       da == db && (da || strcmp(a->domain, b->domain) == 0);
}

/* Add the operator of node to the list unless it is there already. */
static void note_unsupported(struct unsupported *u, const Onnx__NodeProto *node)
{
	const Onnx__NodeProto **grown;
	char name[256];
	size_t i, n;
	int dflt = is_default_domain(node->domain);

	for (i = 0; i < u->count; i++)
		if (same_operator(u->seen[i], node))
			return;
	if (u->count == u->cap) {
		grown = realloc(u->seen, (u->cap * 2 + 8) * sizeof(*grown));
		if (!grown) {
			u->truncated = 1; /* the list stops; the count is a lower bound */
			return;
		}
		u->seen = grown;
		u->cap = u->cap * 2 + 8;
	}
	u->seen[u->count++] = node;
	snprintf(name, sizeof(name), "%s%s%s", dflt ? "" : node->domain, dflt ? "" : ".",
	         node->op_type ? node->op_type : "");
	n = strlen(name);
	if (u->truncated || !u->ops_len)
		return;
	/* Room for the name, its separator and a closing ", ..." mark. */
	if (u->used + n + 2 + 5 >= u->ops_len) {
		u->truncated = 1;
		snprintf(u->ops + u->used, u->ops_len - u->used, "%s...", u->used ? ", " : "");
		return;
	}
	u->used += (size_t)snprintf(u->ops + u->used, u->ops_len - u->used, "%s%s",
	                            u->used ? ", " : "", name);
}

static void find_unsupported_in(const Onnx__GraphProto *g, int opset, int depth,
                                struct unsupported *u)
{
	size_t i, j, k;

	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		if (!find_op(node, opset))
			note_unsupported(u, node);
		for (j = 0; depth < BNF_EVAL_MAX_DEPTH && j < node->n_attribute; j++) {
			const Onnx__AttributeProto *a = node->attribute[j];
			if (a->g)
				find_unsupported_in(a->g, opset, depth + 1, u);
			for (k = 0; k < a->n_graphs; k++)
				find_unsupported_in(a->graphs[k], opset, depth + 1, u);
		}
	}
}

size_t bnf_eval_find_unsupported(const Onnx__ModelProto *model, char *op_types, size_t op_len,
                                 char *node_name, size_t node_len)
{
	struct unsupported u;

	memset(&u, 0, sizeof(u));
	u.ops = op_types;
	u.ops_len = op_len;
	if (op_len)
		op_types[0] = '\0';
	if (node_len)
		node_name[0] = '\0';
	if (model->graph)
		find_unsupported_in(model->graph, default_opset(model), 0, &u);
	if (u.count && node_len)
		snprintf(node_name, node_len, "%s", bnf_node_label(u.seen[0]));
	free(u.seen);
	return u.count;
}

/* ---- the name table ---- */

static int lookup(const struct run *r, const char *name)
{
	size_t idx;

	return bnf_strmap_get(&r->names, name, &idx) ? (int)idx : -1;
}

/* Index of name, adding it if new; -1 when memory runs out. */
static int intern(struct run *r, const char *name)
{
	int idx = lookup(r, name);
	struct value *v = &r->values[r->n_values];

	if (idx >= 0)
		return idx;
	if (bnf_strmap_put(&r->names, name, r->n_values) != 0)
		return -1;
	memset(v, 0, sizeof(*v));
	v->name = name;
	v->producer = -1;
	return (int)r->n_values++;
}

/* ---- memory accounting ---- */

static size_t tensor_bytes(const struct bnf_tensor *t)
{
	return t ? t->count * bnf_tensor_elem_size(t->dtype) : 0;
}

static int account(struct run *r, const struct bnf_tensor *t)
{
	r->live_bytes += tensor_bytes(t);
	if (r->max_bytes && r->live_bytes > r->max_bytes)
		return bnf_fail(r->err, BNF_ERR_NOMEM,
		                "live tensors would take %zu bytes, above the limit of %zu",
		                r->live_bytes, r->max_bytes);
	return BNF_OK;
}

static void release(struct run *r, struct value *v)
{
	r->live_bytes -= tensor_bytes(v->t);
	if (v->owned == value_owner_all)
		bnf_tensor_free(v->t);
	else if (v->owned == value_owner_shell)
		free(v->t);
	v->t = NULL;
	v->owned = value_owner_none;
}

/* Store t (owned as `owned` says) as the value of v, replacing what it held. */
static int assign(struct run *r, struct value *v, struct bnf_tensor *t, int owned)
{
	release(r, v);
	v->t = t;
	v->owned = owned;
	return account(r, t);
}

/* ---- dtype fix-ups ---- */

static int is_float32_held(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* A float64 copy of a tensor held as float32; NULL with err set. */
static struct bnf_tensor *to_double(const struct bnf_tensor *t, struct bnf_error *err)
{
	struct bnf_tensor *d =
	    bnf_tensor_new(ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, t->rank, t->dims, err);
	size_t i;

	for (i = 0; d && i < t->count; i++)
		((double *)d->data)[i] = ((const float *)t->data)[i];
	return d;
}

/* Round a float16 / bfloat16 tensor's float32 values to what the type
 * can hold, so the next operator sees stored values. */
static void round_to_storage(struct bnf_tensor *t)
{
	float *p = t->data;
	size_t i;

	if (t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16) {
		for (i = 0; i < t->count; i++)
			p[i] = bnf_f16_to_f32(bnf_f32_to_f16(p[i]));
	} else if (t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16) {
		for (i = 0; i < t->count; i++)
			p[i] = bnf_bf16_to_f32(bnf_f32_to_bf16(p[i]));
	}
}

/* In a promote_double run, replace v's float tensor by a float64 one. */
static int promote_value(struct run *r, struct value *v)
{
	struct bnf_tensor *d;

	if (!r->promote || !v->t || !is_float32_held(v->t->dtype))
		return BNF_OK;
	d = to_double(v->t, r->err);
	if (!d) {
		bnf_error_prefix(r->err, "promoting '%s' to double", v->name);
		return r->err ? r->err->status : BNF_ERR_NOMEM;
	}
	return assign(r, v, d, value_owner_all);
}

/* ---- Constant ---- */

static int constant_shape(struct bnf_op_ctx *ctx)
{
	const Onnx__NodeProto *node = ctx->node;
	const Onnx__AttributeProto *a = node->n_attribute == 1 ? node->attribute[0] : NULL;
	const char *name = a && a->name ? a->name : "";
	int64_t n;
	size_t i;

	if (ctx->n_out < 1)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "has no output");
	if (!a)
		return bnf_fail(ctx->err, BNF_ERR_INPUT, "needs exactly one value attribute");
	if (strcmp(name, "value") == 0 && a->t)
		return bnf_tensor_from_proto_ext(ctx->ext, a->t, &ctx->out[0], ctx->err);
	if (strcmp(name, "value_float") == 0 || strcmp(name, "value_floats") == 0) {
		int scalar = strcmp(name, "value_float") == 0;
		n = scalar ? 1 : (int64_t)a->n_floats;
		ctx->out[0] =
		    bnf_tensor_new(ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, !scalar, &n, ctx->err);
		for (i = 0; ctx->out[0] && i < (size_t)n; i++)
			((float *)ctx->out[0]->data)[i] = scalar ? a->f : a->floats[i];
	} else if (strcmp(name, "value_int") == 0 || strcmp(name, "value_ints") == 0) {
		int scalar = strcmp(name, "value_int") == 0;
		n = scalar ? 1 : (int64_t)a->n_ints;
		ctx->out[0] =
		    bnf_tensor_new(ONNX__TENSOR_PROTO__DATA_TYPE__INT64, !scalar, &n, ctx->err);
		for (i = 0; ctx->out[0] && i < (size_t)n; i++)
			((int64_t *)ctx->out[0]->data)[i] = scalar ? a->i : a->ints[i];
	} else {
		return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, "attribute '%s' is not supported",
		                name);
	}
	return ctx->out[0] ? BNF_OK : ctx->err->status;
}

static int constant_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step already filled the value */
	return BNF_OK;
}

/* ---- building the index ---- */

/* A shapes_only run does not read initializers whose values can only be
 * weights (stored in a data file, or of more than this many elements):
 * shape arithmetic reads small tensors, and reading every weight on each
 * probe would cost what the probe is meant to spare. */
#define SHAPES_ONLY_READ_MAX 1024

/* In a shapes_only run, a tensor of tp's shape left unread (*t NULL when
 * tp is to be read as usual). */
static int unread_initializer(const struct run *r, const Onnx__TensorProto *tp,
                              struct bnf_tensor **t)
{
	int64_t count = 1;
	size_t i;

	*t = NULL;
	if (!r->shapes_only || tp->n_dims > BNF_MAX_RANK || !bnf_tensor_elem_size(tp->data_type))
		return BNF_OK;
	for (i = 0; i < tp->n_dims && count > 0; i++)
		count =
		    tp->dims[i] > 0 && count <= INT64_MAX / tp->dims[i] ? count * tp->dims[i] : 0;
	/* (an empty or overflowing shape is read as usual, and refused there) */
	if (count <= SHAPES_ONLY_READ_MAX && !bnf_tensor_is_external(tp))
		return BNF_OK;
	*t = bnf_tensor_new_uninit(tp->data_type, (int)tp->n_dims, tp->dims, r->err);
	return *t ? BNF_OK : r->err ? r->err->status : BNF_ERR_NOMEM;
}

/* The value of initializer tp; *borrowed when it views the tree's bytes
 * (viewing spares copying every weight on every run). */
static int read_initializer(const struct run *r, const Onnx__TensorProto *tp, struct bnf_tensor **t,
                            int *borrowed)
{
	if (bnf_tensor_is_external(tp) && r->promote)
		return bnf_tensor_from_proto_ext_double(r->ext, tp, t, r->err);
	if (bnf_tensor_is_external(tp))
		return bnf_tensor_from_proto_ext(r->ext, tp, t, r->err);
	return bnf_tensor_view_proto(tp, t, borrowed, r->err);
}

static int add_graph_values(struct run *r, const Onnx__ModelProto *model)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j, total = 0;
	int rc;

	for (i = 0; i < g->n_node; i++)
		total += g->node[i]->n_output + g->node[i]->n_input;
	total += g->n_input + g->n_initializer + g->n_output;
	r->values = calloc(total + 1, sizeof(r->values[0]));
	r->in_off = calloc(g->n_node + 1, sizeof(r->in_off[0]));
	r->out_off = calloc(g->n_node + 1, sizeof(r->out_off[0]));
	r->in_val = calloc(total + 1, sizeof(r->in_val[0]));
	r->out_val = calloc(total + 1, sizeof(r->out_val[0]));
	r->order = calloc(g->n_node + 1, sizeof(r->order[0]));
	if (!r->values || !r->in_off || !r->out_off || !r->in_val || !r->out_val || !r->order)
		return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");

	r->opset = default_opset(model);
	if (r->opset < 0)
		return bnf_fail(r->err, BNF_ERR_INPUT,
		                "the model does not import the default operator set");
	for (i = 0; i < g->n_input; i++) {
		int idx = intern(r, g->input[i]->name ? g->input[i]->name : "");
		if (idx < 0)
			return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
		r->values[idx].graph_input = 1;
	}
	for (i = 0; i < g->n_initializer; i++) {
		const Onnx__TensorProto *tp = g->initializer[i];
		int idx = intern(r, tp->name ? tp->name : "");
		struct value *v = idx >= 0 ? &r->values[idx] : NULL;
		struct bnf_tensor *t;
		int borrowed;
		if (!v)
			return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
		if (v->t)
			return bnf_fail(r->err, BNF_ERR_INPUT, "initializer '%s' appears twice",
			                v->name);
		borrowed = 0;
		rc = unread_initializer(r, tp, &t);
		v->unknown = t != NULL;
		if (rc == BNF_OK && !t)
			rc = read_initializer(r, tp, &t, &borrowed);
		if (rc == BNF_OK)
			rc = assign(r, v, t, borrowed ? value_owner_shell : value_owner_all);
		if (rc != BNF_OK)
			return rc;
	}
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		r->out_off[i + 1] = r->out_off[i] + node->n_output;
		for (j = 0; j < node->n_output; j++) {
			const char *name = node->output[j];
			struct value *v;
			int idx = -1;
			if (name && name[0]) {
				idx = intern(r, name);
				if (idx < 0)
					return bnf_fail(r->err, BNF_ERR_NOMEM,
					                "out of memory indexing the graph");
				v = &r->values[idx];
				if (v->producer >= 0 || v->t || v->graph_input)
					return bnf_fail(r->err, BNF_ERR_INPUT,
					                "node '%s' (%s): output '%s' is already "
					                "defined elsewhere in the graph",
					                bnf_node_label(node), node->op_type, name);
				v->producer = (int)i;
			}
			r->out_val[r->out_off[i] + j] = idx;
		}
	}
	return BNF_OK;
}

/* Check the dtype and the fixed dims of a given input against the graph's
 * declaration, when it declares them. */
static int check_input_type(struct run *r, const Onnx__ValueInfoProto *vi,
                            const struct bnf_tensor *t)
{
	const Onnx__TypeProto__Tensor *tt =
	    vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
	        ? vi->type->tensor_type
	        : NULL;
	size_t i;

	if (!tt)
		return BNF_OK;
	if (tt->has_elem_type && tt->elem_type != t->dtype)
		return bnf_fail(r->err, BNF_ERR_INPUT, "input '%s' is %s, the graph expects %s",
		                vi->name, bnf_dtype_name(t->dtype), bnf_dtype_name(tt->elem_type));
	if (!tt->shape)
		return BNF_OK;
	if (tt->shape->n_dim != (size_t)t->rank)
		return bnf_fail(r->err, BNF_ERR_INPUT,
		                "input '%s' has rank %d, the graph expects %zu", vi->name, t->rank,
		                tt->shape->n_dim);
	for (i = 0; i < tt->shape->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
		/* A negative declared dim is unknown (bnf_validate_unknown_dims). */
		if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
		    d->dim_value >= 0 && d->dim_value != t->dims[i])
			return bnf_fail(r->err, BNF_ERR_INPUT,
			                "input '%s' has dim %zu = %lld, the graph expects %lld",
			                vi->name, i, (long long)t->dims[i],
			                (long long)d->dim_value);
	}
	return BNF_OK;
}

static int bind_inputs(struct run *r, size_t n, const char *const *names,
                       struct bnf_tensor *const *inputs)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++) {
		int idx = lookup(r, names[i]);
		if (idx < 0 || !r->values[idx].graph_input)
			return bnf_fail(r->err, BNF_ERR_INPUT, "'%s' is not an input of the graph",
			                names[i]);
		for (j = 0; j < g->n_input; j++) {
			if (g->input[j]->name && strcmp(g->input[j]->name, names[i]) == 0) {
				rc = check_input_type(r, g->input[j], inputs[i]);
				if (rc != BNF_OK)
					return rc;
			}
		}
		/* A given input overrides an initializer of the same name. */
		rc = assign(r, &r->values[idx], inputs[i], value_owner_none);
		if (rc != BNF_OK)
			return rc;
		r->values[idx].unknown = r->shapes_only;
	}
	for (i = 0; i < g->n_input; i++) {
		struct value *v = &r->values[lookup(r, g->input[i]->name ? g->input[i]->name : "")];
		if (!v->t)
			return bnf_fail(r->err, BNF_ERR_INPUT, "graph input '%s' was not given",
			                v->name);
	}
	for (i = 0; i < r->n_values; i++) {
		rc = promote_value(r, &r->values[i]);
		if (rc != BNF_OK)
			return rc;
	}
	return BNF_OK;
}

/* Resolve every node input and graph output to its value and count the
 * readers of each value. */
static int resolve_uses(struct run *r)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j;

	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		r->in_off[i + 1] = r->in_off[i] + node->n_input;
		for (j = 0; j < node->n_input; j++) {
			const char *name = node->input[j];
			int idx = -1;
			if (name && name[0]) {
				idx = lookup(r, name);
				if (idx < 0 || (!r->values[idx].t && r->values[idx].producer < 0))
					return bnf_fail(r->err, BNF_ERR_INPUT,
					                "node '%s' (%s): input '%s' is produced by "
					                "nothing in the graph",
					                bnf_node_label(node), node->op_type, name);
				r->values[idx].uses_left++;
			}
			r->in_val[r->in_off[i] + j] = idx;
		}
	}
	for (i = 0; i < g->n_output; i++) {
		int idx = lookup(r, g->output[i]->name ? g->output[i]->name : "");
		if (idx < 0 || (!r->values[idx].t && r->values[idx].producer < 0))
			return bnf_fail(r->err, BNF_ERR_INPUT,
			                "graph output '%s' is produced by nothing in the graph",
			                g->output[i]->name);
		r->values[idx].graph_output = 1;
	}
	return BNF_OK;
}

/* Kahn's algorithm over the node-to-node data dependencies. A node is
 * ready when every input produced by another node has been produced. */
static int order_nodes(struct run *r)
{
	const Onnx__GraphProto *g = r->graph;
	size_t n = g->n_node, n_uses = r->in_off[n], head = 0, tail = 0, i, j, k;
	size_t *waiting = calloc(n + 1, sizeof(*waiting));
	size_t *cons_off = calloc(r->n_values + 2, sizeof(*cons_off)); /* per value */
	size_t *cons = calloc(n_uses + 1, sizeof(*cons));              /* reader nodes */
	int rc = BNF_OK;

	if (!waiting || !cons_off || !cons) {
		rc = bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory ordering the graph");
		goto out;
	}
	for (j = 0; j < n_uses; j++)
		if (r->in_val[j] >= 0)
			cons_off[r->in_val[j] + 2]++;
	for (k = 0; k < r->n_values; k++)
		cons_off[k + 2] += cons_off[k + 1];
	for (i = 0; i < n; i++) {
		for (j = r->in_off[i]; j < r->in_off[i + 1]; j++) {
			int v = r->in_val[j];
			if (v < 0)
				continue;
			cons[cons_off[v + 1]++] = i;
			waiting[i] += r->values[v].producer >= 0;
		}
		if (waiting[i] == 0)
			r->order[tail++] = i;
	}
	/* cons_off[v] .. cons_off[v + 1] now delimit value v's readers. */
	while (head < tail) {
		size_t done = r->order[head++];
		for (j = r->out_off[done]; j < r->out_off[done + 1]; j++) {
			int v = r->out_val[j];
			for (k = v >= 0 ? cons_off[v] : 0; v >= 0 && k < cons_off[v + 1]; k++)
				if (--waiting[cons[k]] == 0)
					r->order[tail++] = cons[k];
		}
	}
	if (tail < n) {
		for (i = 0; i < n && waiting[i] == 0; i++)
			;
		for (j = r->in_off[i]; j < r->in_off[i + 1]; j++) {
			int v = r->in_val[j];
			if (v >= 0 && r->values[v].producer >= 0 &&
			    waiting[r->values[v].producer] != 0)
				break;
		}
		rc = bnf_fail(r->err, BNF_ERR_INPUT,
		              "node '%s' (%s): input '%s' is part of a dependency cycle",
		              bnf_node_label(g->node[i]), g->node[i]->op_type,
		              j < r->in_off[i + 1] ? r->values[r->in_val[j]].name : "?");
	}
out:
	free(waiting);
	free(cons_off);
	free(cons);
	return rc;
}

/* ---- running ---- */

/* Hand node i's fresh outputs to their values: round float16/bfloat16,
 * promote in a double run, and drop the ones nobody asked for or reads.
 * unknown: a shapes_only run did not compute them. */
static int store_outputs(struct run *r, size_t i, struct bnf_tensor **out, size_t n_out,
                         int unknown)
{
	size_t j;
	int rc = BNF_OK;

	for (j = 0; j < n_out; j++) {
		int idx = r->out_val[r->out_off[i] + j];
		struct value *v;
		if (!out[j])
			continue;
		if (!unknown)
			round_to_storage(out[j]);
		if (idx < 0) {
			r->live_bytes -= tensor_bytes(out[j]);
			bnf_tensor_free(out[j]);
			out[j] = NULL;
			continue;
		}
		v = &r->values[idx];
		v->t = out[j];
		v->owned = value_owner_all;
		v->unknown = unknown;
		out[j] = NULL; /* already counted in live_bytes by the caller */
		if (rc == BNF_OK)
			rc = promote_value(r, v);
		if (v->uses_left == 0 && !v->graph_output)
			release(r, v);
	}
	return rc;
}

/* In a shapes_only run, whether node i is left at its shape step: it reads
 * a value whose contents were not computed, and is not an operator whose
 * result depends on its input's shape alone. */
static int shape_step_only(const struct run *r, size_t i)
{
	static const char *const shape_readers[] = {"Shape", "Size"};
	const char *op_type = r->graph->node[i]->op_type;
	size_t j;
	int unknown = 0;

	if (!r->shapes_only)
		return 0;
	for (j = r->in_off[i]; j < r->in_off[i + 1]; j++)
		if (r->in_val[j] >= 0 && r->values[r->in_val[j]].unknown)
			unknown = 1;
	for (j = 0; unknown && j < sizeof(shape_readers) / sizeof(shape_readers[0]); j++)
		if (op_type && strcmp(op_type, shape_readers[j]) == 0)
			unknown = 0;
	return unknown;
}

static int run_node(struct run *r, size_t i)
{
	const Onnx__NodeProto *node = r->graph->node[i];
	const struct bnf_op *op = find_op(node, r->opset);
	size_t n_in = node->n_input, n_out = node->n_output, j;
	struct bnf_tensor **in = calloc(n_in + 1, sizeof(*in));
	struct bnf_tensor **out = calloc(n_out + 1, sizeof(*out));
	struct bnf_op_ctx ctx;
	int rc, donor, unknown = shape_step_only(r, i);

	if (!in || !out) {
		rc = bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!op) {
		rc = bnf_fail(r->err, BNF_ERR_UNSUPPORTED,
		              "operator is not supported (domain '%s', opset %d)",
		              node->domain ? node->domain : "", r->opset);
		goto out;
	}
	for (j = 0; j < n_in; j++) {
		int idx = r->in_val[r->in_off[i] + j];
		in[j] = idx >= 0 ? r->values[idx].t : NULL;
	}
	ctx.node = node;
	ctx.opset = r->opset;
	ctx.n_in = n_in;
	ctx.in = in;
	ctx.n_out = n_out;
	ctx.out = out;
	ctx.threads = r->threads;
	ctx.err = r->err;
	ctx.ext = r->ext;
	ctx.donor = NULL;
	ctx.donor_taken = 0;
	donor = n_in > 0 ? r->in_val[r->in_off[i]] : -1;
	/* An elementwise op may write over its first input when this node is
	 * its last reader, it is ours and nobody else is to see it. */
	if (op->elementwise && donor >= 0 && in[0] && r->values[donor].owned == value_owner_all &&
	    r->values[donor].uses_left == 1 && !r->values[donor].graph_output)
		ctx.donor = in[0];
	rc = op->shape(&ctx);
	if (ctx.donor_taken) {
		/* out[0] is in[0] now: the value lets go of it (its bytes are
		 * counted again below, as the output's). */
		r->live_bytes -= tensor_bytes(in[0]);
		r->values[donor].t = NULL;
		r->values[donor].owned = value_owner_none;
	}
	for (j = 0; j < n_out; j++)
		r->live_bytes += tensor_bytes(out[j]);
	for (j = 0; rc == BNF_OK && j < n_out; j++) {
		if (!out[j] && r->out_val[r->out_off[i] + j] >= 0)
			rc = bnf_fail(r->err, BNF_ERR_UNSUPPORTED,
			              "output %zu ('%s') is not produced", j, node->output[j]);
	}
	if (rc == BNF_OK)
		rc = account(r, NULL);
	if (rc == BNF_OK && !unknown)
		rc = op->compute(&ctx);
	if (rc == BNF_OK)
		rc = store_outputs(r, i, out, n_out, unknown);
	/* Inputs whose last reader this was are freed now. */
	for (j = 0; j < n_in; j++) {
		int idx = r->in_val[r->in_off[i] + j];
		struct value *v = idx >= 0 ? &r->values[idx] : NULL;
		if (v && --v->uses_left == 0 && !v->graph_output)
			release(r, v);
	}
out:
	if (rc != BNF_OK)
		bnf_error_prefix(r->err, "node '%s' (%s)", bnf_node_label(node),
		                 node->op_type ? node->op_type : "");
	for (j = 0; out && j < n_out; j++) {
		r->live_bytes -= tensor_bytes(out[j]);
		bnf_tensor_free(out[j]);
	}
	free(in);
	free(out);
	return rc;
}

/* Move (or copy, when not ours or already handed out) the graph outputs
 * into a new array for the caller. */
static int collect_outputs(struct run *r, struct bnf_tensor ***outputs)
{
	const Onnx__GraphProto *g = r->graph;
	struct bnf_tensor **res = calloc(g->n_output + 1, sizeof(*res));
	size_t i;

	if (!res)
		return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory");
	for (i = 0; i < g->n_output; i++) {
		struct value *v = &r->values[lookup(r, g->output[i]->name)];
		if (v->owned == value_owner_all) {
			res[i] = v->t;
			v->owned = value_owner_none;
		} else {
			res[i] = v->t ? bnf_tensor_clone(v->t, r->err) : NULL;
		}
		if (!res[i]) {
			while (i-- > 0)
				bnf_tensor_free(res[i]);
			free(res);
			if (!v->t)
				return bnf_fail(r->err, BNF_ERR_INPUT,
				                "graph output '%s' has no value", v->name);
			return r->err ? r->err->status : BNF_ERR_NOMEM;
		}
	}
	*outputs = res;
	return BNF_OK;
}

int bnf_eval_run(const Onnx__ModelProto *model, const struct bnf_eval_options *opt, size_t n_inputs,
                 const char *const *names, struct bnf_tensor *const *inputs,
                 struct bnf_tensor ***outputs, struct bnf_error *err)
{
	struct run r;
	size_t i;
	int rc;

	*outputs = NULL;
	memset(&r, 0, sizeof(r));
	bnf_strmap_init(&r.names);
	r.err = err;
	r.threads = opt && opt->threads > 1 ? opt->threads : 1;
	r.promote = opt ? opt->promote_double : 0;
	r.max_bytes = opt ? opt->max_bytes : 0;
	r.ext = opt ? opt->ext : NULL;
	r.shapes_only = opt ? opt->shapes_only : 0;
	r.graph = model->graph;
	if (!r.graph) {
		rc = bnf_fail(err, BNF_ERR_INPUT, "the model has no graph");
		goto out;
	}
	rc = add_graph_values(&r, model);
	if (rc == BNF_OK)
		rc = bind_inputs(&r, n_inputs, names, inputs);
	if (rc == BNF_OK)
		rc = resolve_uses(&r);
	if (rc == BNF_OK)
		rc = order_nodes(&r);
	for (i = 0; rc == BNF_OK && i < r.graph->n_node; i++)
		rc = run_node(&r, r.order[i]);
	if (rc == BNF_OK)
		rc = collect_outputs(&r, outputs);
out:
	for (i = 0; i < r.n_values; i++)
		release(&r, &r.values[i]);
	free(r.values);
	bnf_strmap_free(&r.names);
	free(r.in_val);
	free(r.in_off);
	free(r.out_val);
	free(r.out_off);
	free(r.order);
	return rc;
}
