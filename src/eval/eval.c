/*
 * The executor of the eval-mode evaluator: indexes every value of a graph
 * by name, orders the nodes by their data dependencies (Kahn's algorithm),
 * runs each through its operator row and frees every intermediate tensor
 * as soon as its last reader has run. Subgraphs (If branches, Loop and Scan
 * bodies) run through the same machinery inside the run of the graph that
 * holds their node, reading its values by name.
 */
#include "eval/eval.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/op.h"
#include "eval/run.h"
#include "eval/scope.h"
#include "io/external.h"
#include "util/strmap.h"

/* ---- the name table ---- */

int bnf_run_lookup(const struct bnf_run *r, const char *name)
{
	size_t idx;

	return bnf_strmap_get(&r->names, name, &idx) ? (int)idx : -1;
}

/* Index of name, adding it if new; -1 when memory runs out. The values
 * array was sized for every name the graph can mention. */
static int intern(struct bnf_run *r, const char *name)
{
	int idx = bnf_run_lookup(r, name);
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

size_t bnf_run_tensor_bytes(const struct bnf_tensor *t)
{
	return t ? t->count * bnf_tensor_elem_size(t->dtype) : 0;
}

static int account(struct bnf_run *r, const struct bnf_tensor *t)
{
	r->live_bytes += bnf_run_tensor_bytes(t);
	if (r->max_bytes && r->live_bytes > r->max_bytes)
		return bnf_fail(r->err, BNF_ERR_NOMEM,
		                "live tensors would take %zu bytes, above the limit of %zu",
		                r->live_bytes, r->max_bytes);
	return BNF_OK;
}

static void release(struct bnf_run *r, struct value *v)
{
	r->live_bytes -= bnf_run_tensor_bytes(v->t);
	if (v->owned == value_owner_all)
		bnf_tensor_free(v->t);
	else if (v->owned == value_owner_shell)
		free(v->t);
	v->t = NULL;
	v->owned = value_owner_none;
}

/* Store t (owned as `owned` says) as the value of v, replacing what it held. */
int bnf_run_assign(struct bnf_run *r, struct value *v, struct bnf_tensor *t, int owned)
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
	    bnf_tensor_new_uninit(ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, t->rank, t->dims, err);
	size_t i;

	float f;

	/* Byte-wise: an initializer may lie unaligned in the model file. */
	for (i = 0; d && i < t->count; i++) {
		memcpy(&f, (const char *)t->data + i * sizeof(f), sizeof(f));
		((double *)d->data)[i] = f;
	}
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
int bnf_run_promote(struct bnf_run *r, struct value *v)
{
	struct bnf_tensor *d;

	if (!r->promote || !v->t || !is_float32_held(v->t->dtype))
		return BNF_OK;
	d = to_double(v->t, r->err);
	if (!d) {
		bnf_error_prefix(r->err, "promoting '%s' to double", v->name);
		return r->err ? r->err->status : BNF_ERR_NOMEM;
	}
	if (v->outer && v->owned == value_owner_none) {
		/* A value of an enclosing graph not yet promoted there: the
		 * copy is this run's own (bnf_run_drop frees it); the borrowed
		 * tensor was never counted here. */
		v->t = d;
		v->owned = value_owner_all;
		return account(r, d);
	}
	return bnf_run_assign(r, v, d, value_owner_all);
}

/* Forget v's tensor: a value of an enclosing graph is only borrowed here
 * (unless this run promoted its own float64 copy of it),
 * anything else is released (and no longer counted). */
void bnf_run_drop(struct bnf_run *r, struct value *v)
{
	if (v->outer && v->owned == value_owner_none) {
		v->t = NULL;
		v->owned = value_owner_none;
	} else {
		release(r, v);
	}
}

/* ---- building the index ---- */

/* What node i's subgraphs read from the graphs around them, one list per
 * node (the names are borrowed from the model). */
static int implicit_reads(struct bnf_run *r, struct bnf_name_list **out)
{
	const Onnx__GraphProto *g = r->graph;
	struct bnf_name_list *lists = calloc(g->n_node + 1, sizeof(*lists));
	size_t i;

	*out = lists;
	if (!lists)
		return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
	for (i = 0; i < g->n_node; i++)
		if (bnf_scope_outer_reads(g->node[i], &lists[i]) != 0)
			return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
	return BNF_OK;
}

static void implicit_free(struct bnf_name_list *lists, size_t n)
{
	size_t i;

	for (i = 0; lists && i < n; i++)
		bnf_name_list_free(&lists[i]);
	free(lists);
}

/* A shapes_only run does not read initializers whose values can only be
 * weights (stored in a data file, or of more than this many elements):
 * shape arithmetic reads small tensors, and reading every weight on each
 * probe would cost what the probe is meant to spare. */
#define SHAPES_ONLY_READ_MAX 1024

/* In a shapes_only run, a tensor of tp's shape left unread (*t NULL when
 * tp is to be read as usual). */
static int unread_initializer(const struct bnf_run *r, const Onnx__TensorProto *tp,
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
static int read_initializer(const struct bnf_run *r, const Onnx__TensorProto *tp,
                            struct bnf_tensor **t, int *borrowed)
{
	if (bnf_tensor_is_external(tp) && r->promote)
		return bnf_tensor_from_proto_ext_double(r->ext, tp, t, r->err);
	if (bnf_tensor_is_external(tp))
		return bnf_tensor_from_proto_ext(r->ext, tp, t, r->err);
	return bnf_tensor_view_proto_unaligned(tp, t, borrowed, r->err);
}

/* Load an initializer as the value v holds. A subgraph's initializers
 * stay for all its runs (promoted once, in a double run). */
static int load_initializer(struct bnf_run *r, struct value *v, const Onnx__TensorProto *tp)
{
	struct bnf_tensor *t;
	int borrowed = 0, rc;

	rc = unread_initializer(r, tp, &t);
	v->unknown = t != NULL;
	if (rc == BNF_OK && !t)
		rc = read_initializer(r, tp, &t, &borrowed);
	if (rc == BNF_OK)
		rc = bnf_run_assign(r, v, t, borrowed ? value_owner_shell : value_owner_all);
	if (rc == BNF_OK && r->reusable) {
		v->persistent = 1;
		rc = bnf_run_promote(r, v);
	}
	return rc;
}

static int add_graph_values(struct bnf_run *r, const struct bnf_name_list *implicit)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j, total = 0, n_reads = 0, n_writes = 0;
	int rc;

	for (i = 0; i < g->n_node; i++) {
		n_reads += g->node[i]->n_input + implicit[i].n;
		n_writes += g->node[i]->n_output;
	}
	total = n_reads + n_writes + g->n_input + g->n_initializer + g->n_output;
	r->values = calloc(total + 1, sizeof(r->values[0]));
	r->in_off = calloc(g->n_node + 1, sizeof(r->in_off[0]));
	r->out_off = calloc(g->n_node + 1, sizeof(r->out_off[0]));
	r->in_val = calloc(n_reads + 1, sizeof(r->in_val[0]));
	r->out_val = calloc(n_writes + 1, sizeof(r->out_val[0]));
	r->order = calloc(g->n_node + 1, sizeof(r->order[0]));
	if (!r->values || !r->in_off || !r->out_off || !r->in_val || !r->out_val || !r->order)
		return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");

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
		if (!v)
			return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
		if (v->t)
			return bnf_fail(r->err, BNF_ERR_INPUT, "initializer '%s' appears twice",
			                v->name);
		if ((rc = load_initializer(r, v, tp)) != BNF_OK)
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
static int check_input_type(struct bnf_run *r, const Onnx__ValueInfoProto *vi,
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

static int bind_inputs(struct bnf_run *r, size_t n, const char *const *names,
                       struct bnf_tensor *const *inputs)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++) {
		int idx = bnf_run_lookup(r, names[i]);
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
		rc = bnf_run_assign(r, &r->values[idx], inputs[i], value_owner_none);
		if (rc != BNF_OK)
			return rc;
		r->values[idx].unknown = r->shapes_only;
	}
	for (i = 0; i < g->n_input; i++) {
		struct value *v =
		    &r->values[bnf_run_lookup(r, g->input[i]->name ? g->input[i]->name : "")];
		if (!v->t)
			return bnf_fail(r->err, BNF_ERR_INPUT, "graph input '%s' was not given",
			                v->name);
	}
	/* A double run promotes the inputs now and each initializer when a
	 * node first reads it (run_node): a weight in float64 lives only until
	 * its last reader has run, so the copies reuse the same memory. */
	for (i = 0; i < r->n_values; i++) {
		if (!r->values[i].graph_input)
			continue;
		rc = bnf_run_promote(r, &r->values[i]);
		if (rc != BNF_OK)
			return rc;
	}
	return BNF_OK;
}

/* The value that a node input or a graph output names: one of this
 * graph's, or one of an enclosing graph's, which becomes a value here too
 * (borrowed at each run). -1 when nothing defines it, -2 when memory runs
 * out. */
static int resolve_name(struct bnf_run *r, const char *name)
{
	const struct bnf_run *p;
	int idx = bnf_run_lookup(r, name), pidx;

	if (idx >= 0)
		return idx;
	for (p = r->parent; p; p = p->parent) {
		pidx = bnf_run_lookup(p, name);
		if (pidx < 0)
			continue;
		idx = intern(r, name);
		if (idx < 0)
			return -2;
		r->values[idx].outer = p;
		r->values[idx].outer_idx = pidx;
		return idx;
	}
	return -1;
}

/* Resolve every value a node reads (its inputs, and what its subgraphs
 * read from this graph or above) and every graph output, and count the
 * readers of each value. */
static int resolve_uses(struct bnf_run *r, const struct bnf_name_list *implicit)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i, j;

	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		size_t n_reads = node->n_input + implicit[i].n;
		r->in_off[i + 1] = r->in_off[i] + n_reads;
		for (j = 0; j < n_reads; j++) {
			int explicit = j < node->n_input;
			const char *name =
			    explicit ? node->input[j] : implicit[i].names[j - node->n_input];
			int idx = -1;
			if (name && name[0]) {
				idx = resolve_name(r, name);
				if (idx == -2)
					return bnf_fail(r->err, BNF_ERR_NOMEM,
					                "out of memory indexing the graph");
				if (idx < 0 && explicit)
					return bnf_fail(r->err, BNF_ERR_INPUT,
					                "node '%s' (%s): input '%s' is produced by "
					                "nothing in the graph",
					                bnf_node_label(node), node->op_type, name);
				if (idx < 0)
					return bnf_fail(
					    r->err, BNF_ERR_INPUT,
					    "node '%s' (%s): its subgraph reads '%s', which "
					    "nothing defines",
					    bnf_node_label(node), node->op_type, name);
				r->values[idx].uses++;
			}
			r->in_val[r->in_off[i] + j] = idx;
		}
	}
	for (i = 0; i < g->n_output; i++) {
		int idx = resolve_name(r, g->output[i]->name ? g->output[i]->name : "");
		if (idx == -2)
			return bnf_fail(r->err, BNF_ERR_NOMEM, "out of memory indexing the graph");
		if (idx < 0)
			return bnf_fail(r->err, BNF_ERR_INPUT,
			                "graph output '%s' is produced by nothing in the graph",
			                g->output[i]->name);
		r->values[idx].graph_output = 1;
	}
	return BNF_OK;
}

/* Kahn's algorithm over the node-to-node data dependencies. A node is
 * ready when every input produced by another node has been produced. */
static int order_nodes(struct bnf_run *r)
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
static int store_outputs(struct bnf_run *r, size_t i, struct bnf_tensor **out, size_t n_out,
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
			r->live_bytes -= bnf_run_tensor_bytes(out[j]);
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
			rc = bnf_run_promote(r, v);
		if (v->uses_left == 0 && !v->graph_output)
			release(r, v);
	}
	return rc;
}

/* In a shapes_only run, whether node i is left at its shape step: it reads
 * a value whose contents were not computed, and is not an operator whose
 * result depends on its input's shape alone. */
static int shape_step_only(const struct bnf_run *r, size_t i)
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

/* Whether the node's first input may become its output: the op is
 * elementwise, this node is the value's last reader, and the tensor is
 * ours and nobody else's to see. */
static int may_donate(const struct bnf_run *r, const struct bnf_op *op, int idx)
{
	const struct value *v = idx >= 0 ? &r->values[idx] : NULL;

	return op->elementwise && v && v->t && v->owned == value_owner_all && v->uses_left == 1 &&
	       !v->graph_output && !v->persistent && !v->outer;
}

/* Whether a promote_double run leaves input j of the node held as float32:
 * an op that converts while it packs the input needs no float64 copy of
 * it first (every float32 is exactly a float64, so the values are the
 * same), which spares copying a big weight on every run. */
static int keeps_float32(const struct bnf_run *r, const Onnx__NodeProto *node, size_t j)
{
	static const struct {
		const char *op_type;
		size_t input;
	} readers[] = {{"Gemm", 1}, {"Conv", 1}};
	size_t k;

	for (k = 0; r->promote && node->op_type && k < sizeof(readers) / sizeof(readers[0]); k++)
		if (strcmp(node->op_type, readers[k].op_type) == 0 && j == readers[k].input)
			return 1;
	return 0;
}

/* Whether input j of the node may stay unaligned (an initializer viewed
 * where it lies in the model file): the op reads it only byte-wise, or
 * packs it anyway, so an aligned copy would only cost a copy of every
 * weight on every run. Every other input is copied aligned first. */
static int reads_unaligned(const Onnx__NodeProto *node, size_t j)
{
	static const struct {
		const char *op_type;
		size_t input;
	} readers[] = {{"Conv", 1}, {"ConvTranspose", 1}, {"Gemm", 1}, {"MatMul", 1}};
	size_t k;

	for (k = 0; node->op_type && k < sizeof(readers) / sizeof(readers[0]); k++)
		if (strcmp(node->op_type, readers[k].op_type) == 0 && j == readers[k].input)
			return 1;
	return 0;
}

/* Replace v's unaligned tensor by an aligned copy of its own, which lives
 * until v's last reader has run, like a promoted one. */
static int align_value(struct bnf_run *r, struct value *v)
{
	struct bnf_tensor *c;

	if (!v->t || bnf_tensor_is_aligned(v->t))
		return BNF_OK;
	if (!(c = bnf_tensor_aligned_copy(v->t, r->err)))
		return r->err ? r->err->status : BNF_ERR_NOMEM;
	if (v->outer && v->owned == value_owner_none) {
		v->t = c;
		v->owned = value_owner_all;
		return account(r, c);
	}
	return bnf_run_assign(r, v, c, value_owner_all);
}

/* Make input j of node i ready for its op: promoted in a double run
 * (unless the op widens it itself), aligned unless the op reads it where
 * it lies. */
static int prepare_input(struct bnf_run *r, const Onnx__NodeProto *node, size_t j, struct value *v)
{
	int rc = BNF_OK;

	if (!keeps_float32(r, node, j))
		rc = bnf_run_promote(r, v);
	if (rc == BNF_OK && !reads_unaligned(node, j))
		rc = align_value(r, v);
	return rc;
}

static int run_node(struct bnf_run *r, size_t i)
{
	const Onnx__NodeProto *node = r->graph->node[i];
	const struct bnf_op *op = bnf_op_is_default_domain(node->domain) && node->op_type
	                              ? bnf_op_find(node->op_type, r->opset)
	                              : NULL;
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
		if (idx >= 0 && (rc = prepare_input(r, node, j, &r->values[idx])) != BNF_OK)
			goto out;
		in[j] = idx >= 0 ? r->values[idx].t : NULL;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.node = node;
	ctx.opset = r->opset;
	ctx.n_in = n_in;
	ctx.in = in;
	ctx.n_out = n_out;
	ctx.out = out;
	ctx.threads = r->threads;
	ctx.err = r->err;
	ctx.ext = r->ext;
	ctx.run = r;
	ctx.promote = r->promote;
	donor = n_in > 0 ? r->in_val[r->in_off[i]] : -1;
	if (may_donate(r, op, donor))
		ctx.donor = in[0];
	rc = op->shape(&ctx);
	if (ctx.donor_taken) {
		/* out[0] is in[0] now: the value lets go of it (its bytes are
		 * counted again below, as the output's). */
		r->live_bytes -= bnf_run_tensor_bytes(in[0]);
		r->values[donor].t = NULL;
		r->values[donor].owned = value_owner_none;
	}
	for (j = 0; j < n_out; j++)
		r->live_bytes += bnf_run_tensor_bytes(out[j]);
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
	/* Values whose last reader this was (inputs, and what the node's
	 * subgraphs read) are freed now. */
	for (j = r->in_off[i]; j < r->in_off[i + 1]; j++) {
		int idx = r->in_val[j];
		struct value *v = idx >= 0 ? &r->values[idx] : NULL;
		if (v && --v->uses_left == 0 && !v->graph_output && !v->persistent)
			bnf_run_drop(r, v);
	}
out:
	if (rc != BNF_OK)
		bnf_error_prefix(r->err, "node '%s' (%s)", bnf_node_label(node),
		                 node->op_type ? node->op_type : "");
	for (j = 0; out && j < n_out; j++) {
		r->live_bytes -= bnf_run_tensor_bytes(out[j]);
		bnf_tensor_free(out[j]);
	}
	free(in);
	free(out);
	return rc;
}

/* Run every node once: readers counted afresh, enclosing values borrowed
 * as they are now. */
int bnf_run_execute(struct bnf_run *r)
{
	size_t i;
	int rc = BNF_OK;

	for (i = 0; i < r->n_values; i++) {
		struct value *v = &r->values[i];
		v->uses_left = v->uses;
		if (!v->outer)
			continue;
		bnf_run_drop(r, v); /* a copy promoted by the previous run */
		v->t = v->outer->values[v->outer_idx].t;
		v->unknown = v->outer->values[v->outer_idx].unknown;
		v->owned = value_owner_none;
		if (!v->t)
			return bnf_fail(r->err, BNF_ERR_INPUT,
			                "'%s', read from an enclosing graph, has no value",
			                v->name);
	}
	for (i = 0; rc == BNF_OK && i < r->graph->n_node; i++)
		rc = run_node(r, r->order[i]);
	return rc;
}

/* Move (or copy, when not ours, kept for later runs or already handed
 * out) the graph outputs into res, which has room for all. */
int bnf_run_collect(struct bnf_run *r, struct bnf_tensor **res)
{
	const Onnx__GraphProto *g = r->graph;
	size_t i;

	for (i = 0; i < g->n_output; i++) {
		struct value *v = &r->values[bnf_run_lookup(r, g->output[i]->name)];
		int rc = bnf_run_promote(r, v); /* an initializer read by no node */
		if (rc != BNF_OK) {
			while (i-- > 0) {
				bnf_tensor_free(res[i]);
				res[i] = NULL;
			}
			return rc;
		}
		if (v->owned == value_owner_all && !v->persistent) {
			res[i] = v->t;
			v->owned = value_owner_none;
		} else {
			res[i] = v->t ? bnf_tensor_clone(v->t, r->err) : NULL;
		}
		if (!res[i]) {
			while (i-- > 0) {
				bnf_tensor_free(res[i]);
				res[i] = NULL;
			}
			if (!v->t)
				return bnf_fail(r->err, BNF_ERR_INPUT,
				                "graph output '%s' has no value", v->name);
			return r->err ? r->err->status : BNF_ERR_NOMEM;
		}
	}
	return BNF_OK;
}

/* Index r->graph: its values, what each node reads, the order to run. */
int bnf_run_index(struct bnf_run *r, size_t n_inputs, const char *const *names,
                  struct bnf_tensor *const *inputs)
{
	struct bnf_name_list *implicit = NULL;
	int rc = implicit_reads(r, &implicit);

	if (rc == BNF_OK)
		rc = add_graph_values(r, implicit);
	/* The main graph's inputs are bound once, before anything else. */
	if (rc == BNF_OK && !r->reusable)
		rc = bind_inputs(r, n_inputs, names, inputs);
	if (rc == BNF_OK)
		rc = resolve_uses(r, implicit);
	if (rc == BNF_OK)
		rc = order_nodes(r);
	implicit_free(implicit, r->graph->n_node);
	return rc;
}

void bnf_run_free(struct bnf_run *r)
{
	size_t i;

	for (i = 0; r->values && i < r->n_values; i++)
		bnf_run_drop(r, &r->values[i]);
	free(r->values);
	bnf_strmap_free(&r->names);
	free(r->in_val);
	free(r->in_off);
	free(r->out_val);
	free(r->out_off);
	free(r->order);
}

int bnf_eval_run(const Onnx__ModelProto *model, const struct bnf_eval_options *opt, size_t n_inputs,
                 const char *const *names, struct bnf_tensor *const *inputs,
                 struct bnf_tensor ***outputs, struct bnf_error *err)
{
	struct bnf_run r;
	struct bnf_tensor **res = NULL;
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
	r.opset = bnf_op_model_opset(model);
	if (!r.graph)
		rc = bnf_fail(err, BNF_ERR_INPUT, "the model has no graph");
	else if (r.opset < 0)
		rc = bnf_fail(err, BNF_ERR_INPUT,
		              "the model does not import the default operator set");
	else
		rc = bnf_run_index(&r, n_inputs, names, inputs);
	if (rc == BNF_OK)
		rc = bnf_run_execute(&r);
	if (rc == BNF_OK && !(res = calloc(r.graph->n_output + 1, sizeof(*res))))
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	if (rc == BNF_OK)
		rc = bnf_run_collect(&r, res);
	if (rc == BNF_OK) {
		*outputs = res;
		res = NULL;
	}
	free(res);
	bnf_run_free(&r);
	return rc;
}
