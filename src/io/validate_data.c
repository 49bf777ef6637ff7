/*
 * Validation of the bytes (see validate.h): the bounded walk of the wire
 * format that runs before protobuf-c unpacks anything, and the checks of
 * each tensor's dims against its stored data and of declared shapes.
 */
#include "io/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/external.h"
#include "io/validate_internal.h"
#include "util/le.h"

/* ---- the wire format ---- */

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
		if (!bnf_varint_read(buf, end, &pos, &key))
			break;
		if (key >> 3 == 0)
			return WIRE_FAULT_FIELD_ZERO;
		if ((key & 7) == 0 && !bnf_varint_read(buf, end, &pos, &len))
			break;
		if ((key & 7) == 1 || (key & 7) == 5) {
			len = (key & 7) == 1 ? 8 : 4;
			if (end - pos < len)
				break;
			pos += (size_t)len;
		}
		if ((key & 7) == 2) {
			if (!bnf_varint_read(buf, end, &pos, &len) || len > end - pos)
				break;
			f = key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(
			                                 desc, (unsigned)(key >> 3))
			                           : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
				fault = wire_check(f->descriptor, buf, pos, pos + (size_t)len,
				                   depth + 1);
			else if (f && f->type == PROTOBUF_C_TYPE_STRING &&
			         memchr(buf + pos, 0, (size_t)len))
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
		return bnf_fail(err, BNF_ERR_INPUT,
		                "%s: protobuf messages nested more than %d deep", label,
		                BNF_LIMIT_MESSAGE_DEPTH);
	case WIRE_FAULT_FIELD_ZERO:
		return bnf_fail(err, BNF_ERR_INPUT,
		                "%s: not a valid ONNX model (a protobuf field numbered 0)", label);
	case WIRE_FAULT_NUL:
		return bnf_fail(err, BNF_ERR_INPUT,
		                "%s: not a valid ONNX model (a name or string holds a NUL byte)",
		                label);
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

int bnf_validate_tensor(const Onnx__TensorProto *t, const char *label, struct bnf_error *err)
{
	const char *name = bnf_str_or_empty(t->name);
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
	if (bnf_tensor_is_external(t))
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

/* Declared shapes: a dim below 0 (paddle2onnx and older converters write
 * -1) is an unknown dim, as a dim_param is, and counts as 1; no
 * overflowing product. Returns the element count in *count. */
int bnf_validate_value_info(const Onnx__ValueInfoProto *vi, const char *label, uint64_t *count,
                            struct bnf_error *err)
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
		if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
		    d->dim_value < 0)
			continue;
		v = d->dim_value;
		if (v != 0 && n > (uint64_t)INT64_MAX / (uint64_t)v)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "%s: value '%s': the element count of its declared shape "
			                "overflows",
			                label, bnf_str_or_empty(vi->name));
		n *= (uint64_t)v;
	}
	*count = n;
	return BNF_OK;
}

/* ---- declared dims read as unknown ---- */

static void note_value_info(const Onnx__ValueInfoProto *vi, struct bnf_unknown_dims *u)
{
	const Onnx__TypeProto *tp = vi->type;
	const Onnx__TensorShapeProto *shape;
	size_t i, before = u->n_dims;

	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
	    !(shape = tp->tensor_type->shape))
		return;
	for (i = 0; i < shape->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
		if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
		    d->dim_value >= 0)
			continue;
		if (u->n_dims++ == 0) {
			snprintf(u->first_value, sizeof(u->first_value), "%s",
			         bnf_str_or_empty(vi->name));
			u->first_axis = i;
			u->first_dim = (long long)d->dim_value;
		}
	}
	if (u->n_dims > before)
		u->n_values++;
}

static void note_graph(const Onnx__GraphProto *g, struct bnf_unknown_dims *u, int depth)
{
	size_t i, j;

	if (depth > BNF_LIMIT_GRAPH_DEPTH)
		return;
	for (i = 0; i < g->n_input; i++)
		note_value_info(g->input[i], u);
	for (i = 0; i < g->n_output; i++)
		note_value_info(g->output[i], u);
	for (i = 0; i < g->n_value_info; i++)
		note_value_info(g->value_info[i], u);
	for (i = 0; i < g->n_node; i++)
		for (j = 0; j < g->node[i]->n_attribute; j++) {
			const Onnx__AttributeProto *a = g->node[i]->attribute[j];
			size_t k;
			if (a->g)
				note_graph(a->g, u, depth + 1);
			for (k = 0; k < a->n_graphs; k++)
				note_graph(a->graphs[k], u, depth + 1);
		}
}

void bnf_validate_unknown_dims(const Onnx__ModelProto *model, struct bnf_unknown_dims *u)
{
	memset(u, 0, sizeof(*u));
	if (model->graph)
		note_graph(model->graph, u, 0);
}
