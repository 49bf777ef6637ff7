/*
 * Validation of a model before anything uses it: the wire format's nesting
 * (before unpacking), then the unpacked tree's tensors, shapes, names,
 * attributes and graph structure, against the limits documented under
 * LIMITS in bnfold(1). Every failure is one message naming the file and the
 * node, value or tensor at fault.
 */
#ifndef BNF_VALIDATE_H
#define BNF_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "onnx.pb-c.h"

/* Protobuf messages nested deeper than this are refused before unpacking
 * (protobuf-c recurses once per level and has no limit of its own). */
#define BNF_LIMIT_MESSAGE_DEPTH 256

/* Subgraphs (If/Loop/Scan bodies) nested deeper than this are refused. */
#define BNF_LIMIT_GRAPH_DEPTH 64

/* Elements of one graph input the evaluator has to make up (its declared
 * shape, symbolic dims taken as 1 or from --dim / --shape). */
#define BNF_LIMIT_INPUT_ELEMENTS ((uint64_t)1 << 26)

/* Check, before protobuf-c unpacks buf, what it would not refuse itself:
 * messages nested more than BNF_LIMIT_MESSAGE_DEPTH deep (its unpacker
 * recurses), a field numbered 0 (kept, then packed as bytes it refuses)
 * and a NUL byte inside a string field (its char * would cut the name
 * short). Other malformed data is left to the unpacker (this returns 0 for
 * it); label names the file in the message. */
int bnf_validate_wire(const uint8_t *buf, size_t len, const char *label, struct bnf_error *err);

/* Check an unpacked model (borrowed, not changed): every tensor's dims
 * (no negative dim, no element-count overflow), dtype and data length;
 * declared shapes (a negative declared dim of a value is an unknown dim,
 * as runtimes read it; see bnf_validate_unknown_dims); main-graph inputs within
 * BNF_LIMIT_INPUT_ELEMENTS; node inputs that name existing values (outer graphs included); no value
 * defined twice; no dependency cycle (a node carrying a subgraph depends on
 * the outer values its subgraphs read); attribute types and constant dtypes
 * of the operators bnfold reads; subgraph depth. Tensors kept in external
 * files are checked for dims only. Returns 0 or BNF_ERR_INPUT. */
int bnf_validate_model(const Onnx__ModelProto *model, const char *label, struct bnf_error *err);

/* Declared dims of values (graph inputs, outputs, value_info, subgraphs
 * included) that are negative: paddle2onnx and older converters write -1
 * for an unknown dim. bnfold reads them as unknown, like a dim_param, and
 * writes them back as they were; this says how many there are so that the
 * command line can say so once. */
struct bnf_unknown_dims {
	size_t n_dims;         /* negative declared dims */
	size_t n_values;       /* values declaring at least one */
	char first_value[128]; /* the first such value (cut short if longer) */
	size_t first_axis;     /* and the axis of its first negative dim */
	long long first_dim;   /* and that dim as written */
};

void bnf_validate_unknown_dims(const Onnx__ModelProto *model, struct bnf_unknown_dims *u);

/* The element count of a declared shape, symbolic dims counted as 1:
 * returns 0 and *count, or -1 on a negative dim or overflow of int64. */
int bnf_validate_shape_count(size_t rank, const int64_t *dims, uint64_t *count);

#endif
