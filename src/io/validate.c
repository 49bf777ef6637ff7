/*
 * Validation before use (see validate.h), the graphs of the unpacked tree:
 * the attributes of the operators bnfold reads, names and their scopes,
 * nesting depth, and dependency cycles (subgraph reads of outer values
 * included), so that later code can trust them. The bytes themselves are
 * checked in validate_data.c. Limits are the BNF_LIMIT_*, in bnfold(1).
 */
#include "io/validate.h"

#include <stdlib.h>
#include <string.h>

#include "io/model.h"
#include "util/strmap.h"
#include "io/validate_internal.h"

/* ---- operators bnfold reads ---- */

struct attr_rule {
	const char *name;
	Onnx__AttributeProto__AttributeType type;
};

#define A_F  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
#define A_I  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
#define A_S  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
#define A_T  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
#define A_G  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
#define A_FS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
#define A_IS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
#define A_SS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS

/* Which constant inputs an operator needs as floating point or numeric. */
enum const_rule {
	CONST_RULE_NONE = 0,
	CONST_RULE_FLOAT,
	CONST_RULE_NUMERIC,
};

/* Input counts are those of the operator's specification (max_in 255:
 * no bound); every listed operator has at least one output. */
struct op_rule {
	const char *op_type;
	unsigned min_in, max_in;
	enum const_rule consts;
	struct attr_rule attrs[9];
};

static const struct op_rule op_rules[] = {
    {"BatchNormalization",
     5,
     5,
     CONST_RULE_FLOAT,
     {{"epsilon", A_F},
      {"momentum", A_F},
      {"training_mode", A_I},
      {"spatial", A_I},
      {"is_test", A_I},
      {"consumed_inputs", A_IS}}},
    {"Conv",
     2,
     3,
     CONST_RULE_FLOAT,
     {{"auto_pad", A_S},
      {"dilations", A_IS},
      {"group", A_I},
      {"kernel_shape", A_IS},
      {"pads", A_IS},
      {"strides", A_IS}}},
    {"ConvTranspose",
     2,
     3,
     CONST_RULE_FLOAT,
     {{"auto_pad", A_S},
      {"dilations", A_IS},
      {"group", A_I},
      {"kernel_shape", A_IS},
      {"pads", A_IS},
      {"strides", A_IS},
      {"output_padding", A_IS},
      {"output_shape", A_IS}}},
    {"Gemm",
     2,
     3,
     CONST_RULE_NUMERIC,
     {{"alpha", A_F}, {"beta", A_F}, {"transA", A_I}, {"transB", A_I}, {"broadcast", A_I}}},
    {"MatMul", 2, 2, CONST_RULE_NUMERIC, {{NULL, 0}}},
    {"Constant",
     0,
     0,
     CONST_RULE_NONE,
     {{"value", A_T},
      {"value_float", A_F},
      {"value_floats", A_FS},
      {"value_int", A_I},
      {"value_ints", A_IS},
      {"value_string", A_S},
      {"value_strings", A_SS}}},
    {"If", 1, 1, CONST_RULE_NONE, {{"then_branch", A_G}, {"else_branch", A_G}}},
    {"Loop", 2, 255, CONST_RULE_NONE, {{"body", A_G}}},
    {"Scan",
     1,
     255,
     CONST_RULE_NONE,
     {{"body", A_G},
      {"num_scan_inputs", A_I},
      {"scan_input_axes", A_IS},
      {"scan_input_directions", A_IS},
      {"scan_output_axes", A_IS},
      {"scan_output_directions", A_IS}}},
};

static const char *const attr_type_names[] = {
    "UNDEFINED",      "FLOAT",      "INT",         "STRING",  "TENSOR", "GRAPH",
    "FLOATS",         "INTS",       "STRINGS",     "TENSORS", "GRAPHS", "SPARSE_TENSOR",
    "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS",
};

static const char *attr_type_name(int type)
{
	if (type < 0 || (size_t)type >= sizeof(attr_type_names) / sizeof(attr_type_names[0]))
		return "unknown";
	return attr_type_names[type];
}

static int is_default_domain(const char *domain)
{
	return !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
}

static const struct op_rule *find_op_rule(const Onnx__NodeProto *node)
{
	size_t i;

	if (!node->op_type || !is_default_domain(node->domain))
		return NULL;
	for (i = 0; i < sizeof(op_rules) / sizeof(op_rules[0]); i++)
		if (strcmp(op_rules[i].op_type, node->op_type) == 0)
			return &op_rules[i];
	return NULL;
}

/* An attribute without a type field (old writers) must still hold the
 * field of its expected type. */
static int attr_has_value(const Onnx__AttributeProto *a, int type)
{
	switch (type) {
	case A_F:
		return a->has_f;
	case A_I:
		return a->has_i;
	case A_S:
		return a->has_s;
	case A_T:
		return a->t != NULL;
	case A_G:
		return a->g != NULL;
	default:
		return 1; /* lists may be empty */
	}
}

static int validate_attr_types(const Onnx__NodeProto *node, const struct op_rule *rule,
                               const char *label, struct bnf_error *err)
{
	size_t i, k;

	for (i = 0; i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		for (k = 0; k < sizeof(rule->attrs) / sizeof(rule->attrs[0]) && rule->attrs[k].name;
		     k++) {
			int want = (int)rule->attrs[k].type;
			int have = a->has_type ? (int)a->type : 0;
			if (!a->name || strcmp(a->name, rule->attrs[k].name) != 0)
				continue;
			if ((have && have != want) || !attr_has_value(a, want))
				return bnf_fail(
				    err, BNF_ERR_INPUT,
				    "%s: node '%s' (%s): attribute '%s' is %s, expected %s", label,
				    bnf_node_label(node), node->op_type, a->name,
				    have ? attr_type_name(have) : "without a value",
				    attr_type_name(want));
		}
	}
	return BNF_OK;
}

/* ---- graphs ---- */

/* The names a graph defines, with the constants among them: value is
 * 2 * initializer index, or 2 * node index + 1 for a Constant's output,
 * or SIZE_MAX for any other value. */
struct scope {
	const Onnx__GraphProto *g;
	struct bnf_strmap names;
	const struct scope *parent;
};

static int scope_find(const struct scope *s, const char *name, const struct scope **owner,
                      size_t *val)
{
	for (; s; s = s->parent) {
		if (bnf_strmap_get(&s->names, name, val)) {
			*owner = s;
			return 1;
		}
	}
	return 0;
}

static int is_float_dtype(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

static int is_numeric_dtype(int dtype)
{
	return is_float_dtype(dtype) ||
	       (dtype >= ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 &&
	        dtype <= ONNX__TENSOR_PROTO__DATA_TYPE__INT64) ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64;
}

/* The dtype of a constant (initializer or Constant output), or -1. */
static int constant_dtype(const struct scope *owner, size_t val)
{
	const Onnx__NodeProto *node;
	size_t i;

	if (val == SIZE_MAX)
		return -1;
	if (val % 2 == 0)
		return owner->g->initializer[val / 2]->data_type;
	node = owner->g->node[val / 2];
	for (i = 0; i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		const char *n = bnf_str_or_empty(a->name);
		if (strcmp(n, "value") == 0 && a->t)
			return a->t->data_type;
		if (strcmp(n, "value_float") == 0 || strcmp(n, "value_floats") == 0)
			return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
		if (strcmp(n, "value_int") == 0 || strcmp(n, "value_ints") == 0)
			return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
		if (strcmp(n, "value_string") == 0 || strcmp(n, "value_strings") == 0)
			return ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
	}
	return -1;
}

static const char *dtype_word(int dtype)
{
	static const char *const names[] = {
	    "undefined", "float",  "uint8",     "int8",       "uint16",   "int16",
	    "int32",     "int64",  "string",    "bool",       "float16",  "double",
	    "uint32",    "uint64", "complex64", "complex128", "bfloat16",
	};
	if (dtype < 0 || (size_t)dtype >= sizeof(names) / sizeof(names[0]))
		return "an 8-bit or smaller float or integer type";
	return names[dtype];
}

struct validator {
	const char *label;
	struct bnf_error *err;
};

/* Names without repeats, in the order first added, borrowed from the tree.
 * Restarting the map lets one array hold consecutive groups (one per node
 * of a graph), each free of repeats but not of names of other groups. */
struct name_list {
	struct bnf_strmap seen; /* the current group's names */
	const char **names;
	size_t n, cap;
};

static void name_list_init(struct name_list *l)
{
	memset(l, 0, sizeof(*l));
	bnf_strmap_init(&l->seen);
}

static void name_list_restart(struct name_list *l)
{
	bnf_strmap_free(&l->seen);
	bnf_strmap_init(&l->seen);
}

static void name_list_free(struct name_list *l)
{
	bnf_strmap_free(&l->seen);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

/* Add name to the current group; NULL and "" (an absent optional input)
 * are skipped. Returns 0, or -1 when memory runs out. */
static int name_list_add(struct name_list *l, const char *name)
{
	if (!name || !name[0] || bnf_strmap_get(&l->seen, name, NULL))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		const char **bigger;
		if (cap > SIZE_MAX / sizeof(*bigger))
			return -1;
		bigger = realloc(l->names, cap * sizeof(*bigger));
		if (!bigger)
			return -1;
		l->names = bigger;
		l->cap = cap;
	}
	if (bnf_strmap_put(&l->seen, name, l->n) != 0)
		return -1;
	l->names[l->n++] = name;
	return 0;
}

static int validate_graph(struct validator *v, const Onnx__GraphProto *g,
                          const struct scope *parent, int depth, int is_main,
                          struct name_list *outer_reads);

/* Subgraphs are checked with outer_reads collecting, for the node that
 * holds them, the enclosing graphs' values they read. */
static int validate_attributes(struct validator *v, const Onnx__NodeProto *node,
                               const struct scope *sc, int depth, struct name_list *outer_reads)
{
	size_t i, j;
	int rc = BNF_OK;

	for (i = 0; rc == BNF_OK && i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		if (a->t)
			rc = bnf_validate_tensor(a->t, v->label, v->err);
		for (j = 0; rc == BNF_OK && j < a->n_tensors; j++)
			rc = bnf_validate_tensor(a->tensors[j], v->label, v->err);
		if (rc == BNF_OK && a->g)
			rc = validate_graph(v, a->g, sc, depth + 1, 0, outer_reads);
		for (j = 0; rc == BNF_OK && j < a->n_graphs; j++)
			rc = validate_graph(v, a->graphs[j], sc, depth + 1, 0, outer_reads);
	}
	return rc;
}

static int validate_node(struct validator *v, const Onnx__NodeProto *node, const struct scope *sc,
                         int depth, struct name_list *outer_reads)
{
	const struct op_rule *rule = find_op_rule(node);
	const char *op = bnf_str_or_empty(node->op_type);
	size_t i, val;
	int rc;

	if (!op[0])
		return bnf_fail(v->err, BNF_ERR_INPUT, "%s: node '%s' has no operator type",
		                v->label, bnf_node_label(node));
	for (i = 0; i < node->n_input; i++) {
		const struct scope *owner;
		const char *in = bnf_str_or_empty(node->input[i]);
		int dt;
		if (!in[0])
			continue;
		if (!scope_find(sc, in, &owner, &val))
			return bnf_fail(
			    v->err, BNF_ERR_INPUT,
			    "%s: node '%s' (%s): input '%s' names no tensor of the graph", v->label,
			    bnf_node_label(node), op, in);
		if (!rule || rule->consts == CONST_RULE_NONE ||
		    (dt = constant_dtype(owner, val)) < 0)
			continue;
		if (rule->consts == CONST_RULE_FLOAT ? !is_float_dtype(dt) : !is_numeric_dtype(dt))
			return bnf_fail(
			    v->err, BNF_ERR_INPUT,
			    "%s: node '%s' (%s): input '%s' is %s, the operator needs %s", v->label,
			    bnf_node_label(node), op, in, dtype_word(dt),
			    rule->consts == CONST_RULE_FLOAT ? "floating point" : "numbers");
	}
	if (rule &&
	    (node->n_input < rule->min_in || node->n_input > rule->max_in || node->n_output < 1))
		return bnf_fail(v->err, BNF_ERR_INPUT,
		                "%s: node '%s' (%s): has %zu inputs and %zu outputs; the operator "
		                "takes %u to %u inputs and at least one output",
		                v->label, bnf_node_label(node), op, node->n_input, node->n_output,
		                rule->min_in, rule->max_in);
	if (rule && (rc = validate_attr_types(node, rule, v->label, v->err)) != BNF_OK)
		return rc;
	return validate_attributes(v, node, sc, depth, outer_reads);
}

/* Define name in sc; a second definition is an error. */
static int define(struct validator *v, struct scope *sc, const char *name, size_t val,
                  const Onnx__NodeProto *node)
{
	if (bnf_strmap_get(&sc->names, name, NULL)) {
		if (node)
			return bnf_fail(v->err, BNF_ERR_INPUT,
			                "%s: node '%s' (%s): output '%s' is already defined in the "
			                "graph",
			                v->label, bnf_node_label(node),
			                bnf_str_or_empty(node->op_type), name);
		return BNF_OK; /* an initializer that is also a graph input */
	}
	if (bnf_strmap_put(&sc->names, name, val) != 0)
		return bnf_fail(v->err, BNF_ERR_NOMEM, "%s: out of memory validating the graph",
		                v->label);
	return BNF_OK;
}

/* What each node of a graph reads, for the cycle check: its inputs, then
 * the enclosing-graph values its subgraphs read at any depth (If and Loop
 * bodies read outer values by name), implicit[off[i] .. off[i + 1]) for
 * node i. A value read that way must be computed before the node runs,
 * exactly like an input. */
struct node_reads {
	const Onnx__GraphProto *g;
	const char *const *implicit;
	const size_t *off;
};

static size_t node_read_count(const struct node_reads *r, size_t i)
{
	return r->g->node[i]->n_input + (r->off[i + 1] - r->off[i]);
}

static const char *node_read(const struct node_reads *r, size_t i, size_t k)
{
	const Onnx__NodeProto *node = r->g->node[i];

	return k < node->n_input ? node->input[k] : r->implicit[r->off[i] + k - node->n_input];
}

static int producer_of(const struct bnf_strmap *producer, const char *name, size_t *p)
{
	return name && name[0] && bnf_strmap_get(producer, name, p);
}

/* Name a node on a cycle among those Kahn's algorithm left (waiting > 0).
 * Each of them reads a value of another one left, so following such reads
 * backwards must meet a node seen before: that node is on a cycle. Going
 * round it once tells whether a subgraph's read closes it, which the
 * message then names. seen and via are scratch arrays of n_node entries. */
static int report_cycle(struct validator *v, const struct node_reads *r,
                        const struct bnf_strmap *producer, const size_t *waiting, size_t *seen,
                        size_t *via)
{
	const Onnx__GraphProto *g = r->g;
	const Onnx__NodeProto *node;
	size_t x = 0, y, k, p = 0;

	while (x < g->n_node && !waiting[x])
		x++;
	memset(seen, 0, g->n_node * sizeof(*seen));
	while (x < g->n_node && !seen[x]) {
		seen[x] = 1;
		for (k = 0; k < node_read_count(r, x); k++)
			if (producer_of(producer, node_read(r, x, k), &p) && waiting[p])
				break;
		if (k == node_read_count(r, x))
			goto plain; /* not expected: x waits for some producer */
		via[x] = k;
		x = p;
	}
	y = x;
	do {
		node = g->node[y];
		if (via[y] >= node->n_input)
			return bnf_fail(
			    v->err, BNF_ERR_INPUT,
			    "%s: node '%s' (%s): its subgraph reads '%s', which depends "
			    "on the node's own output (a cycle in the graph)",
			    v->label, bnf_node_label(node), bnf_str_or_empty(node->op_type),
			    node_read(r, y, via[y]));
		producer_of(producer, node_read(r, y, via[y]), &y);
	} while (y != x);
plain:
	node = g->node[x < g->n_node ? x : 0];
	return bnf_fail(v->err, BNF_ERR_INPUT,
	                "%s: node '%s' (%s): its inputs depend on its own output "
	                "(a cycle in the graph)",
	                v->label, bnf_node_label(node), bnf_str_or_empty(node->op_type));
}

/* Kahn's algorithm over the data dependencies between a graph's nodes, the
 * reads of their subgraphs included: a node left unordered is on (or
 * behind) a cycle. Readers of node p are cons[off[p] .. off[p + 1]). */
static int check_cycles(struct validator *v, const struct node_reads *r)
{
	const Onnx__GraphProto *g = r->g;
	struct bnf_strmap producer;
	size_t n = g->n_node, n_uses = 0, head = 0, tail = 0, i, j, k, p;
	size_t *waiting = NULL, *ready = NULL, *off = NULL, *cons = NULL;
	int rc = BNF_OK;

	bnf_strmap_init(&producer);
	for (i = 0; i < n; i++)
		n_uses += node_read_count(r, i);
	waiting = calloc(n + 1, sizeof(*waiting));
	ready = calloc(n + 1, sizeof(*ready));
	off = calloc(n + 2, sizeof(*off));
	cons = calloc(n_uses + 1, sizeof(*cons));
	if (!waiting || !ready || !off || !cons)
		goto nomem;
	for (i = 0; i < n; i++)
		for (j = 0; j < g->node[i]->n_output; j++)
			if (g->node[i]->output[j] && g->node[i]->output[j][0] &&
			    bnf_strmap_put(&producer, g->node[i]->output[j], i) != 0)
				goto nomem;
	for (i = 0; i < n; i++)
		for (j = 0; j < node_read_count(r, i); j++)
			if (producer_of(&producer, node_read(r, i, j), &p)) {
				off[p + 2]++;
				waiting[i]++;
			}
	for (p = 0; p < n; p++)
		off[p + 2] += off[p + 1];
	for (i = 0; i < n; i++) {
		for (j = 0; j < node_read_count(r, i); j++)
			if (producer_of(&producer, node_read(r, i, j), &p))
				cons[off[p + 1]++] = i;
		if (waiting[i] == 0)
			ready[tail++] = i;
	}
	while (head < tail) {
		size_t done = ready[head++];
		for (k = off[done]; k < off[done + 1]; k++)
			if (--waiting[cons[k]] == 0)
				ready[tail++] = cons[k];
	}
	/* ready and off are spent: they serve as the report's scratch. */
	if (tail < n)
		rc = report_cycle(v, r, &producer, waiting, ready, off);
	goto out;
nomem:
	rc = bnf_fail(v->err, BNF_ERR_NOMEM, "%s: out of memory validating the graph", v->label);
out:
	bnf_strmap_free(&producer);
	free(waiting);
	free(ready);
	free(off);
	free(cons);
	return rc;
}

/* Add name to outer unless g defines it (then it is no read of an
 * enclosing graph's value). */
static int add_outer_read(const struct scope *sc, const char *name, struct name_list *outer)
{
	if (!name || bnf_strmap_get(&sc->names, name, NULL))
		return 0;
	return name_list_add(outer, name);
}

/* Add to outer the enclosing graphs' values g reads: in node inputs, in
 * its own subgraphs (reads), and as graph outputs, which may name an
 * outer value directly. */
static int add_outer_reads(struct validator *v, const Onnx__GraphProto *g, const struct scope *sc,
                           const struct name_list *reads, struct name_list *outer)
{
	size_t i, j;
	int fail = 0;

	for (i = 0; !fail && i < g->n_node; i++)
		for (j = 0; !fail && j < g->node[i]->n_input; j++)
			fail = add_outer_read(sc, g->node[i]->input[j], outer);
	for (i = 0; !fail && i < reads->n; i++)
		fail = add_outer_read(sc, reads->names[i], outer);
	for (i = 0; !fail && i < g->n_output; i++)
		fail = add_outer_read(sc, g->output[i]->name, outer);
	if (fail)
		return bnf_fail(v->err, BNF_ERR_NOMEM, "%s: out of memory validating the graph",
		                v->label);
	return BNF_OK;
}

/* Check g and its subgraphs. outer_reads (NULL for the main graph) gets
 * the enclosing graphs' values that g reads. */
static int validate_graph(struct validator *v, const Onnx__GraphProto *g,
                          const struct scope *parent, int depth, int is_main,
                          struct name_list *outer_reads)
{
	struct scope sc;
	struct name_list reads; /* per node, what its subgraphs read from g or above */
	struct node_reads nr;
	size_t *reads_off = NULL;
	uint64_t count;
	size_t i, j;
	int rc = BNF_OK;

	memset(&sc, 0, sizeof(sc));
	sc.g = g;
	sc.parent = parent;
	bnf_strmap_init(&sc.names);
	name_list_init(&reads);
	if (depth > BNF_LIMIT_GRAPH_DEPTH) {
		rc = bnf_fail(v->err, BNF_ERR_INPUT,
		              "%s: graph '%s': subgraphs nested more than %d deep", v->label,
		              bnf_str_or_empty(g->name), BNF_LIMIT_GRAPH_DEPTH);
		goto out;
	}
	for (i = 0; rc == BNF_OK && i < g->n_initializer; i++) {
		rc = bnf_validate_tensor(g->initializer[i], v->label, v->err);
		if (rc == BNF_OK)
			rc = define(v, &sc, bnf_str_or_empty(g->initializer[i]->name), 2 * i, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
		if (sp->values)
			rc = define(v, &sc, bnf_str_or_empty(sp->values->name), SIZE_MAX, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_input + g->n_output; i++) {
		const Onnx__ValueInfoProto *vi =
		    i < g->n_input ? g->input[i] : g->output[i - g->n_input];
		if (!vi->name || !vi->name[0])
			rc = bnf_fail(v->err, BNF_ERR_INPUT, "%s: graph '%s': %s %zu has no name",
			              v->label, bnf_str_or_empty(g->name),
			              i < g->n_input ? "input" : "output",
			              i < g->n_input ? i : i - g->n_input);
	}
	for (i = 0; rc == BNF_OK && i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		rc = bnf_validate_value_info(vi, v->label, &count, v->err);
		if (rc == BNF_OK && is_main &&
		    !bnf_strmap_get(&sc.names, bnf_str_or_empty(vi->name), NULL) &&
		    count > BNF_LIMIT_INPUT_ELEMENTS)
			rc = bnf_fail(
			    v->err, BNF_ERR_INPUT,
			    "%s: graph input '%s' declares %llu elements, above the limit "
			    "of %llu",
			    v->label, bnf_str_or_empty(vi->name), (unsigned long long)count,
			    (unsigned long long)BNF_LIMIT_INPUT_ELEMENTS);
		if (rc == BNF_OK && !bnf_strmap_get(&sc.names, bnf_str_or_empty(vi->name), NULL))
			rc = define(v, &sc, bnf_str_or_empty(vi->name), SIZE_MAX, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_output; i++)
		rc = bnf_validate_value_info(g->output[i], v->label, &count, v->err);
	for (i = 0; rc == BNF_OK && i < g->n_value_info; i++)
		rc = bnf_validate_value_info(g->value_info[i], v->label, &count, v->err);
	for (i = 0; rc == BNF_OK && i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		int is_constant = node->op_type && strcmp(node->op_type, "Constant") == 0 &&
		                  is_default_domain(node->domain);
		for (j = 0; rc == BNF_OK && j < node->n_output; j++)
			if (node->output[j] && node->output[j][0])
				rc = define(v, &sc, node->output[j],
				            is_constant ? 2 * i + 1 : SIZE_MAX, node);
	}
	if (rc == BNF_OK && !(reads_off = calloc(g->n_node + 1, sizeof(*reads_off))))
		rc = bnf_fail(v->err, BNF_ERR_NOMEM, "%s: out of memory validating the graph",
		              v->label);
	for (i = 0; rc == BNF_OK && i < g->n_node; i++) {
		reads_off[i] = reads.n;
		name_list_restart(&reads);
		rc = validate_node(v, g->node[i], &sc, depth, &reads);
		reads_off[i + 1] = reads.n;
	}
	for (i = 0; rc == BNF_OK && i < g->n_output; i++) {
		const struct scope *owner;
		size_t val;
		if (!scope_find(&sc, bnf_str_or_empty(g->output[i]->name), &owner, &val))
			rc = bnf_fail(v->err, BNF_ERR_INPUT,
			              "%s: graph output '%s' is produced by nothing in the graph",
			              v->label, bnf_str_or_empty(g->output[i]->name));
	}
	nr.g = g;
	nr.implicit = reads.names;
	nr.off = reads_off;
	if (rc == BNF_OK)
		rc = check_cycles(v, &nr);
	if (rc == BNF_OK && outer_reads)
		rc = add_outer_reads(v, g, &sc, &reads, outer_reads);
out:
	name_list_free(&reads);
	free(reads_off);
	bnf_strmap_free(&sc.names);
	return rc;
}

int bnf_validate_model(const Onnx__ModelProto *model, const char *label, struct bnf_error *err)
{
	struct validator v;

	v.label = label;
	v.err = err;
	if (!model->graph)
		return bnf_fail(err, BNF_ERR_INPUT, "%s: not an ONNX model (it has no graph)",
		                label);
	return validate_graph(&v, model->graph, NULL, 0, 1, NULL);
}
