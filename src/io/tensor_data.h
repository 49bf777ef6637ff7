/*
 * Numeric access to the floating-point tensors a fold reads and rewrites:
 * decoding any storage form (raw_data, little-endian on every host, or the
 * typed fields) to double, and writing doubles back rounded once to the
 * tensor's storage type.
 */
#ifndef BNF_TENSOR_DATA_H
#define BNF_TENSOR_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "onnx.pb-c.h"

/* 1 for the dtypes bnfold folds: float, double, float16, bfloat16. */
int bnf_dtype_is_foldable(int dtype);

/* Short lower-case name of an ONNX dtype number ("float16", "int64", ...). */
const char *bnf_dtype_label(int dtype);

/* Element count of t from its dims, refusing negative dims and overflow. */
int bnf_proto_numel(const Onnx__TensorProto *t, size_t *count, struct bnf_error *err);

struct bnf_external;

/* Decode a float, double, float16 or bfloat16 tensor into a new array of
 * doubles (*out, freed by the caller with free). The stored data must hold
 * exactly the number of elements the dims say; err names the tensor.
 * External data is read through ext (external.h; NULL refuses it). */
int bnf_proto_read_doubles_ext(const struct bnf_external *ext, const Onnx__TensorProto *t,
                               double **out, size_t *count, struct bnf_error *err);

/* Replace t's data by vals[0..count) rounded once to dtype (round to
 * nearest even), stored as raw_data; typed data fields and external-data
 * entries are cleared and data_type is set. dims are left to the caller. */
int bnf_proto_write_doubles(Onnx__TensorProto *t, int dtype, const double *vals, size_t count,
                            struct bnf_error *err);

/* Give t the stored bytes raw[0..len) of dtype (malloc'd; t owns them
 * now), replacing whatever data it had, inline or external. */
void bnf_proto_set_raw(Onnx__TensorProto *t, int dtype, uint8_t *raw, size_t len);

/* A tensor's values scaled for a fold, as new stored bytes. */
struct bnf_scaled {
	uint8_t *raw; /* malloc'd, len bytes; NULL on overflow */
	size_t len;
	int overflow; /* a value would not fit the dtype: nothing made */
	size_t where; /* then: the first such element */
	double value; /* and its value */
};

/* src's values with element i multiplied by s[(i / inner) % m] (inner 1:
 * the last axis is the channel; inner = row length: the first is), each
 * product computed in double and rounded once to src's dtype, read straight
 * from its stored (or external, mapped) bytes. A value beyond the dtype's
 * largest finite one, or NaN, is an overflow: out->raw stays NULL. */
int bnf_proto_scale(const struct bnf_external *ext, const Onnx__TensorProto *src, const double *s,
                    size_t inner, size_t m, struct bnf_scaled *out, struct bnf_error *err);

/* v rounded once to dtype and widened back to double (inf on overflow). */
double bnf_round_to_dtype(double v, int dtype);

/* Largest finite value of a foldable dtype. */
double bnf_dtype_max(int dtype);

/* The 16-bit patterns of v rounded once (to nearest even) to float16 and
 * bfloat16; overflow gives infinity, NaN a quiet NaN. */
uint16_t bnf_double_to_f16(double v);
uint16_t bnf_double_to_bf16(double v);
double bnf_f16_bits_to_double(uint16_t h);
double bnf_bf16_bits_to_double(uint16_t h);

#endif
