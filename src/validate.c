/*
 * Validation before use (see validate.h): a bounded walk of the wire format
 * that keeps protobuf-c's recursive unpacker off deep nesting, then checks
 * of the unpacked tree so that later code can trust counts, lengths, names
 * and types. Limits are the BNF_LIMIT_* values, documented in bnfold(1).
 */
#include "validate.h"

#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "strmap.h"

/* ---- the wire format ---- */

/* Read a varint at *pos; 0 when it runs past end or is longer than 10
 * bytes. */
static int wire_varint(const uint8_t *buf, size_t end, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift;

	for (shift = 0; shift < 70 && *pos < end; shift += 7) {
		uint8_t b = buf[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
		if (!(b & 0x80)) {
			*out = v;
			return 1;
		}
	}
	return 0;
}

/* What the wire walk can find that protobuf-c would not refuse itself. */
enum wire_fault {
	WIRE_FAULT_NONE = 0,
	WIRE_FAULT_TOO_DEEP,   /* the unpacker would recurse too deep */
	WIRE_FAULT_FIELD_ZERO, /* kept as an unknown field, packed again as
	                          bytes protobuf-c then refuses */
	WIRE_FAULT_NUL,        /* a string with a NUL byte: protobuf-c's char *
	                          would silently cut it short */
};

/* Walk one message of type desc in buf[pos, end). Malformed data stops the
 * walk quietly: the unpacker reports it. */
static enum wire_fault wire_check(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
				  size_t pos, size_t end, int depth)
{
	enum wire_fault fault = WIRE_FAULT_NONE;
	uint64_t key, len;

	if (depth > BNF_LIMIT_MESSAGE_DEPTH)
		return WIRE_FAULT_TOO_DEEP;
	while (fault == WIRE_FAULT_NONE && pos < end) {
		const ProtobufCFieldDescriptor *f;
		if (!wire_varint(buf, end, &pos, &key))
			break;
		if (key >> 3 == 0)
			return WIRE_FAULT_FIELD_ZERO;
		if ((key & 7) == 0 && !wire_varint(buf, end, &pos, &len))
			break;
		if ((key & 7) == 1 || (key & 7) == 5) {
			len = (key & 7) == 1 ? 8 : 4;
			if (end - pos < len)
				break;
			pos += (size_t)len;
		}
		if ((key & 7) == 2) {
			if (!wire_varint(buf, end, &pos, &len) || len > end - pos)
				break;
			f = key >> 3 <= UINT32_MAX
				    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
				    : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
				fault = wire_check(f->descriptor, buf, pos, pos + (size_t)len, depth + 1);
			else if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(buf + pos, 0, (size_t)len))
				fault = WIRE_FAULT_NUL;
			pos += (size_t)len;
		} else if ((key & 7) != 0 && (key & 7) != 1 && (key & 7) != 5) {
			break;
		}
	}
	return fault;
}

int bnf_validate_wire(const uint8_t *buf, size_t len, const char *label, struct bnf_error *err)
{
	switch (wire_check(&onnx__model_proto__descriptor, buf, 0, len, 1)) {
	case WIRE_FAULT_TOO_DEEP:
		return bnf_fail(err, BNF_ERR_INPUT, "%s: protobuf messages nested more than %d deep",
				label, BNF_LIMIT_MESSAGE_DEPTH);
	case WIRE_FAULT_FIELD_ZERO:
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s: not a valid ONNX model (a protobuf field numbered 0)", label);
	case WIRE_FAULT_NUL:
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s: not a valid ONNX model (a name or string holds a NUL byte)", label);
	default:
		return BNF_OK;
	}
}

/* ---- tensors and shapes ---- */

int bnf_validate_shape_count(size_t rank, const int64_t *dims, uint64_t *count)
{
	uint64_t n = 1;
	size_t i;

	for (i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)dims[i])
			return -1;
		n *= (uint64_t)dims[i];
	}
	*count = n;
	return 0;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* Bytes of n elements of dtype in raw_data; 0 with *known 0 for dtypes
 * without a fixed size (string, unknown). */
static uint64_t raw_bytes(int dtype, uint64_t n, int *known)
{
	*known = 1;
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT8E4M3FN:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT8E4M3FNUZ:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT8E5M2:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT8E5M2FNUZ:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT8E8M0:
		return n;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return n * 2;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
		return n * 4;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
		return n * 8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
		return n * 16;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT4:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT4:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT4E2M1:
		return n / 2 + n % 2;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT2:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT2:
		return n / 4 + (n % 4 != 0);
	default:
		*known = 0;
		return 0;
	}
}

/* The typed field a dtype keeps its values in, with its length; packed
 * sub-byte types may hold one element per entry or be packed. */
struct typed_field {
	const char *name;
	size_t len;
	uint64_t want, want_packed;
};

static int typed_field_of(const Onnx__TensorProto *t, uint64_t n, struct typed_field *tf)
{
	memset(tf, 0, sizeof(*tf));
	tf->want = n;
	tf->want_packed = n;
	switch (t->data_type) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
		tf->name = "float_data";
		tf->len = t->n_float_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
		tf->name = "double_data";
		tf->len = t->n_double_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
		tf->name = "int64_data";
		tf->len = t->n_int64_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		tf->name = "uint64_data";
		tf->len = t->n_uint64_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
		tf->name = "string_data";
		tf->len = t->n_string_data;
		break;
	default:
		tf->name = "int32_data";
		tf->len = t->n_int32_data;
		break;
	}
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64 ||
	    t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128)
		tf->want = tf->want_packed = n * 2; /* n < 2^62: no overflow */
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT4 ||
	    t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT4 ||
	    t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT4E2M1)
		tf->want_packed = n / 2 + n % 2;
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT2 ||
	    t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT2)
		tf->want_packed = n / 4 + (n % 4 != 0);
	return (t->n_float_data != 0) + (t->n_double_data != 0) + (t->n_int64_data != 0) +
	       (t->n_uint64_data != 0) + (t->n_string_data != 0) + (t->n_int32_data != 0);
}

static int is_external(const Onnx__TensorProto *t)
{
	return (t->has_data_location &&
		t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	       t->n_external_data > 0;
}

static int validate_tensor(const Onnx__TensorProto *t, const char *label, struct bnf_error *err)
{
	const char *name = str_or_empty(t->name);
	struct typed_field tf;
	uint64_t n, bytes;
	int known, n_typed;

	if (bnf_validate_shape_count(t->n_dims, t->dims, &n) != 0)
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s: tensor '%s': dims are negative or their product overflows",
				label, name);
	if (t->data_type <= ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED ||
	    t->data_type > ONNX__TENSOR_PROTO__DATA_TYPE__INT2)
		return bnf_fail(err, BNF_ERR_INPUT, "%s: tensor '%s': unknown data type %d", label,
				name, (int)t->data_type);
	if (is_external(t))
		return BNF_OK; /* lengths are checked against the data file */
	n_typed = typed_field_of(t, n, &tf);
	if (t->has_raw_data) {
		bytes = raw_bytes(t->data_type, n, &known);
		if (!known)
			return bnf_fail(err, BNF_ERR_INPUT,
					"%s: tensor '%s': a tensor of type %d cannot use raw_data",
					label, name, (int)t->data_type);
		if (n_typed)
			return bnf_fail(err, BNF_ERR_INPUT,
					"%s: tensor '%s': holds both raw_data and %s", label, name,
					tf.name);
		if (bytes != t->raw_data.len)
			return bnf_fail(err, BNF_ERR_INPUT,
					"%s: tensor '%s': raw_data holds %zu bytes, its dims need "
					"%llu",
					label, name, t->raw_data.len, (unsigned long long)bytes);
		return BNF_OK;
	}
	if (n_typed > 1 || (n_typed == 1 && tf.len == 0))
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s: tensor '%s': its values are not in %s, the field of its type",
				label, name, tf.name);
	if (tf.len != tf.want && tf.len != tf.want_packed)
		return bnf_fail(err, BNF_ERR_INPUT,
				"%s: tensor '%s': %s holds %zu values, its dims need %llu", label,
				name, tf.name, tf.len, (unsigned long long)tf.want_packed);
	return BNF_OK;
}

/* Declared shapes: no negative dim, no overflowing product. Returns the
 * element count (symbolic dims as 1) in *count. */
static int validate_value_info(const Onnx__ValueInfoProto *vi, const char *label,
			       uint64_t *count, struct bnf_error *err)
{
	const Onnx__TypeProto *tp = vi->type;
	const Onnx__TensorShapeProto *shape = NULL;
	uint64_t n = 1;
	size_t i;

	*count = 1;
	if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type)
		shape = tp->tensor_type->shape;
	for (i = 0; shape && i < shape->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
		int64_t v;
		if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
			continue;
		v = d->dim_value;
		if (v < 0)
			return bnf_fail(err, BNF_ERR_INPUT,
					"%s: value '%s': negative dimension %lld in its declared shape",
					label, str_or_empty(vi->name), (long long)v);
		if (v != 0 && n > (uint64_t)INT64_MAX / (uint64_t)v)
			return bnf_fail(err, BNF_ERR_INPUT,
					"%s: value '%s': the element count of its declared shape "
					"overflows",
					label, str_or_empty(vi->name));
		n *= (uint64_t)v;
	}
	*count = n;
	return BNF_OK;
}

/* ---- operators bnfold reads ---- */

struct attr_rule {
	const char *name;
	Onnx__AttributeProto__AttributeType type;
};

#define A_F ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
#define A_I ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
#define A_S ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
#define A_T ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
#define A_G ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH
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
	{ "BatchNormalization", 5, 5, CONST_RULE_FLOAT,
	  { { "epsilon", A_F }, { "momentum", A_F }, { "training_mode", A_I }, { "spatial", A_I },
	    { "is_test", A_I }, { "consumed_inputs", A_IS } } },
	{ "Conv", 2, 3, CONST_RULE_FLOAT,
	  { { "auto_pad", A_S }, { "dilations", A_IS }, { "group", A_I }, { "kernel_shape", A_IS },
	    { "pads", A_IS }, { "strides", A_IS } } },
	{ "ConvTranspose", 2, 3, CONST_RULE_FLOAT,
	  { { "auto_pad", A_S }, { "dilations", A_IS }, { "group", A_I }, { "kernel_shape", A_IS },
	    { "pads", A_IS }, { "strides", A_IS }, { "output_padding", A_IS },
	    { "output_shape", A_IS } } },
	{ "Gemm", 2, 3, CONST_RULE_NUMERIC,
	  { { "alpha", A_F }, { "beta", A_F }, { "transA", A_I }, { "transB", A_I },
	    { "broadcast", A_I } } },
	{ "MatMul", 2, 2, CONST_RULE_NUMERIC, { { NULL, 0 } } },
	{ "Constant", 0, 0, CONST_RULE_NONE,
	  { { "value", A_T }, { "value_float", A_F }, { "value_floats", A_FS },
	    { "value_int", A_I }, { "value_ints", A_IS }, { "value_string", A_S },
	    { "value_strings", A_SS } } },
	{ "If", 1, 1, CONST_RULE_NONE, { { "then_branch", A_G }, { "else_branch", A_G } } },
	{ "Loop", 2, 255, CONST_RULE_NONE, { { "body", A_G } } },
	{ "Scan", 1, 255, CONST_RULE_NONE,
	  { { "body", A_G }, { "num_scan_inputs", A_I }, { "scan_input_axes", A_IS },
	    { "scan_input_directions", A_IS }, { "scan_output_axes", A_IS },
	    { "scan_output_directions", A_IS } } },
};

static const char *const attr_type_names[] = {
	"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS",
	"TENSORS", "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS",
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
				return bnf_fail(err, BNF_ERR_INPUT,
						"%s: node '%s' (%s): attribute '%s' is %s, expected %s",
						label, bnf_node_label(node), node->op_type, a->name,
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
		const char *n = str_or_empty(a->name);
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
		"undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
		"string", "bool", "float16", "double", "uint32", "uint64", "complex64",
		"complex128", "bfloat16",
	};
	if (dtype < 0 || (size_t)dtype >= sizeof(names) / sizeof(names[0]))
		return "an 8-bit or smaller float or integer type";
	return names[dtype];
}

struct validator {
	const char *label;
	struct bnf_error *err;
};

static int validate_graph(struct validator *v, const Onnx__GraphProto *g,
			  const struct scope *parent, int depth, int is_main);

static int validate_attributes(struct validator *v, const Onnx__NodeProto *node,
			       const struct scope *sc, int depth)
{
	size_t i, j;
	int rc = BNF_OK;

	for (i = 0; rc == BNF_OK && i < node->n_attribute; i++) {
		const Onnx__AttributeProto *a = node->attribute[i];
		if (a->t)
			rc = validate_tensor(a->t, v->label, v->err);
		for (j = 0; rc == BNF_OK && j < a->n_tensors; j++)
			rc = validate_tensor(a->tensors[j], v->label, v->err);
		if (rc == BNF_OK && a->g)
			rc = validate_graph(v, a->g, sc, depth + 1, 0);
		for (j = 0; rc == BNF_OK && j < a->n_graphs; j++)
			rc = validate_graph(v, a->graphs[j], sc, depth + 1, 0);
	}
	return rc;
}

static int validate_node(struct validator *v, const Onnx__NodeProto *node, const struct scope *sc,
			 int depth)
{
	const struct op_rule *rule = find_op_rule(node);
	const char *op = str_or_empty(node->op_type);
	size_t i, val;
	int rc;

	if (!op[0])
		return bnf_fail(v->err, BNF_ERR_INPUT, "%s: node '%s' has no operator type", v->label,
				bnf_node_label(node));
	for (i = 0; i < node->n_input; i++) {
		const struct scope *owner;
		const char *in = str_or_empty(node->input[i]);
		int dt;
		if (!in[0])
			continue;
		if (!scope_find(sc, in, &owner, &val))
			return bnf_fail(v->err, BNF_ERR_INPUT,
					"%s: node '%s' (%s): input '%s' names no tensor of the graph",
					v->label, bnf_node_label(node), op, in);
		if (!rule || rule->consts == CONST_RULE_NONE || (dt = constant_dtype(owner, val)) < 0)
			continue;
		if (rule->consts == CONST_RULE_FLOAT ? !is_float_dtype(dt) : !is_numeric_dtype(dt))
			return bnf_fail(v->err, BNF_ERR_INPUT,
					"%s: node '%s' (%s): input '%s' is %s, the operator needs %s",
					v->label, bnf_node_label(node), op, in, dtype_word(dt),
					rule->consts == CONST_RULE_FLOAT ? "floating point" : "numbers");
	}
	if (rule && (node->n_input < rule->min_in || node->n_input > rule->max_in ||
		     node->n_output < 1))
		return bnf_fail(v->err, BNF_ERR_INPUT,
				"%s: node '%s' (%s): has %zu inputs and %zu outputs; the operator "
				"takes %u to %u inputs and at least one output",
				v->label, bnf_node_label(node), op, node->n_input, node->n_output,
				rule->min_in, rule->max_in);
	if (rule && (rc = validate_attr_types(node, rule, v->label, v->err)) != BNF_OK)
		return rc;
	return validate_attributes(v, node, sc, depth);
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
					v->label, bnf_node_label(node), str_or_empty(node->op_type), name);
		return BNF_OK; /* an initializer that is also a graph input */
	}
	if (bnf_strmap_put(&sc->names, name, val) != 0)
		return bnf_fail(v->err, BNF_ERR_NOMEM, "%s: out of memory validating the graph",
				v->label);
	return BNF_OK;
}

/* Kahn's algorithm over the data dependencies between this graph's nodes:
 * a node left unordered is on (or behind) a cycle. Readers of each node
 * are listed in cons[off[p] .. off[p + 1]). */
static int check_cycles(struct validator *v, const Onnx__GraphProto *g)
{
	struct bnf_strmap producer;
	size_t n = g->n_node, n_uses = 0, head = 0, tail = 0, i, j, k, p;
	size_t *waiting = NULL, *ready = NULL, *off = NULL, *cons = NULL;
	int rc = BNF_OK;

	bnf_strmap_init(&producer);
	for (i = 0; i < n; i++)
		n_uses += g->node[i]->n_input;
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
		for (j = 0; j < g->node[i]->n_input; j++)
			if (g->node[i]->input[j] && bnf_strmap_get(&producer, g->node[i]->input[j], &p)) {
				off[p + 2]++;
				waiting[i]++;
			}
	for (p = 0; p < n; p++)
		off[p + 2] += off[p + 1];
	for (i = 0; i < n; i++) {
		for (j = 0; j < g->node[i]->n_input; j++)
			if (g->node[i]->input[j] && bnf_strmap_get(&producer, g->node[i]->input[j], &p))
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
	for (i = 0; tail < n && i < n; i++)
		if (waiting[i]) {
			rc = bnf_fail(v->err, BNF_ERR_INPUT,
				      "%s: node '%s' (%s): its inputs depend on its own output "
				      "(a cycle in the graph)",
				      v->label, bnf_node_label(g->node[i]),
				      str_or_empty(g->node[i]->op_type));
			break;
		}
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

static int validate_graph(struct validator *v, const Onnx__GraphProto *g,
			  const struct scope *parent, int depth, int is_main)
{
	struct scope sc;
	uint64_t count;
	size_t i, j;
	int rc = BNF_OK;

	memset(&sc, 0, sizeof(sc));
	sc.g = g;
	sc.parent = parent;
	bnf_strmap_init(&sc.names);
	if (depth > BNF_LIMIT_GRAPH_DEPTH) {
		rc = bnf_fail(v->err, BNF_ERR_INPUT, "%s: graph '%s': subgraphs nested more than %d deep",
			      v->label, str_or_empty(g->name), BNF_LIMIT_GRAPH_DEPTH);
		goto out;
	}
	for (i = 0; rc == BNF_OK && i < g->n_initializer; i++) {
		rc = validate_tensor(g->initializer[i], v->label, v->err);
		if (rc == BNF_OK)
			rc = define(v, &sc, str_or_empty(g->initializer[i]->name), 2 * i, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
		if (sp->values)
			rc = define(v, &sc, str_or_empty(sp->values->name), SIZE_MAX, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_input + g->n_output; i++) {
		const Onnx__ValueInfoProto *vi =
			i < g->n_input ? g->input[i] : g->output[i - g->n_input];
		if (!vi->name || !vi->name[0])
			rc = bnf_fail(v->err, BNF_ERR_INPUT, "%s: graph '%s': %s %zu has no name",
				      v->label, str_or_empty(g->name),
				      i < g->n_input ? "input" : "output",
				      i < g->n_input ? i : i - g->n_input);
	}
	for (i = 0; rc == BNF_OK && i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		rc = validate_value_info(vi, v->label, &count, v->err);
		if (rc == BNF_OK && is_main && !bnf_strmap_get(&sc.names, str_or_empty(vi->name), NULL) &&
		    count > BNF_LIMIT_INPUT_ELEMENTS)
			rc = bnf_fail(v->err, BNF_ERR_INPUT,
				      "%s: graph input '%s' declares %llu elements, above the limit "
				      "of %llu",
				      v->label, str_or_empty(vi->name), (unsigned long long)count,
				      (unsigned long long)BNF_LIMIT_INPUT_ELEMENTS);
		if (rc == BNF_OK && !bnf_strmap_get(&sc.names, str_or_empty(vi->name), NULL))
			rc = define(v, &sc, str_or_empty(vi->name), SIZE_MAX, NULL);
	}
	for (i = 0; rc == BNF_OK && i < g->n_output; i++)
		rc = validate_value_info(g->output[i], v->label, &count, v->err);
	for (i = 0; rc == BNF_OK && i < g->n_value_info; i++)
		rc = validate_value_info(g->value_info[i], v->label, &count, v->err);
	for (i = 0; rc == BNF_OK && i < g->n_node; i++) {
		const Onnx__NodeProto *node = g->node[i];
		int is_constant = node->op_type && strcmp(node->op_type, "Constant") == 0 &&
				  is_default_domain(node->domain);
		for (j = 0; rc == BNF_OK && j < node->n_output; j++)
			if (node->output[j] && node->output[j][0])
				rc = define(v, &sc, node->output[j], is_constant ? 2 * i + 1 : SIZE_MAX,
					    node);
	}
	for (i = 0; rc == BNF_OK && i < g->n_node; i++)
		rc = validate_node(v, g->node[i], &sc, depth);
	for (i = 0; rc == BNF_OK && i < g->n_output; i++) {
		const struct scope *owner;
		size_t val;
		if (!scope_find(&sc, str_or_empty(g->output[i]->name), &owner, &val))
			rc = bnf_fail(v->err, BNF_ERR_INPUT,
				      "%s: graph output '%s' is produced by nothing in the graph",
				      v->label, str_or_empty(g->output[i]->name));
	}
	if (rc == BNF_OK)
		rc = check_cycles(v, g);
out:
	bnf_strmap_free(&sc.names);
	return rc;
}

int bnf_validate_model(const Onnx__ModelProto *model, const char *label, struct bnf_error *err)
{
	struct validator v;

	v.label = label;
	v.err = err;
	if (!model->graph)
		return bnf_fail(err, BNF_ERR_INPUT, "%s: not an ONNX model (it has no graph)", label);
	return validate_graph(&v, model->graph, NULL, 0, 1);
}
