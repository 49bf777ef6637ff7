/*
 * Tensors of the eval-mode evaluator: a dtype, a shape and one owned
 * buffer. Floating types the evaluator computes in float32 (float16 and
 * bfloat16) are held as float32 values already rounded to their storage
 * type, so the arithmetic is float32 but the values are what the model
 * would hold.
 */
#ifndef BNF_EVAL_TENSOR_H
#define BNF_EVAL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "onnx.pb-c.h"

#define BNF_MAX_RANK 8

/* Largest tensor the evaluator will allocate, in elements. A model that
 * asks for more is refused rather than allowed to exhaust memory. */
#ifndef BNF_MAX_ELEMENTS /* the fuzz build sets a smaller one */
#define BNF_MAX_ELEMENTS ((size_t)1 << 31)
#endif

/* dtype values are ONNX TensorProto.DataType numbers. The buffer's C type:
 *   FLOAT, FLOAT16, BFLOAT16: float      DOUBLE: double
 *   INT64: int64_t    INT32: int32_t    INT16: int16_t    INT8: int8_t
 *   UINT64: uint64_t  UINT32: uint32_t  UINT16: uint16_t  UINT8, BOOL: uint8_t */
struct bnf_tensor {
	int dtype;
	int rank;
	int64_t dims[BNF_MAX_RANK];
	size_t count;
	void *data;
};

/* Bytes per element of the in-memory buffer for dtype, or 0 if the
 * evaluator does not support that dtype. */
size_t bnf_tensor_elem_size(int dtype);

/* The signed and unsigned integer dtypes (not bool). */
int bnf_dtype_is_integer(int dtype);
/* The unsigned integer dtypes and bool. */
int bnf_dtype_is_unsigned(int dtype);

/* Element i of an integer or bool tensor; a uint64 element comes back as
 * its bit pattern. */
int64_t bnf_tensor_get_int(const struct bnf_tensor *t, size_t i);
/* Store v into element i of an integer or bool tensor, keeping the low
 * bits the dtype holds (two's complement wrap-around); bool stores v != 0. */
void bnf_tensor_set_int(struct bnf_tensor *t, size_t i, int64_t v);

/* Short lower-case name of an ONNX dtype ("float", "float16", ...). */
const char *bnf_dtype_name(int dtype);

/* Allocate a tensor of the given dtype and shape with zeroed data.
 * Returns NULL on overflow, an unsupported dtype or no memory (err set).
 * The caller owns the result: bnf_tensor_free. */
struct bnf_tensor *bnf_tensor_new(int dtype, int rank, const int64_t *dims, struct bnf_error *err);

/* The same with data left uninitialised, for outputs an operator writes
 * in full. */
struct bnf_tensor *bnf_tensor_new_uninit(int dtype, int rank, const int64_t *dims,
                                         struct bnf_error *err);

/* Deep copy; NULL with err set on failure. */
struct bnf_tensor *bnf_tensor_clone(const struct bnf_tensor *t, struct bnf_error *err);

/* Free a tensor and its buffer; NULL is allowed. */
void bnf_tensor_free(struct bnf_tensor *t);

/* Decode an ONNX TensorProto (raw_data little-endian or typed fields) into a
 * new tensor. Refuses external data, element-count overflow, negative dims
 * and data whose length does not match the dims. Caller owns the result. */
int bnf_tensor_from_proto(const Onnx__TensorProto *tp, struct bnf_tensor **out,
                          struct bnf_error *err);

/* The same, reading external data through ext (external.h). */
struct bnf_external;
int bnf_tensor_from_proto_ext(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                              struct bnf_tensor **out, struct bnf_error *err);

/* An external float tensor decoded straight to float64 for the
 * evaluator's double runs, the file's pages dropped as they are read (any
 * other tensor: bnf_tensor_from_proto_ext). */
int bnf_tensor_from_proto_ext_double(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                                     struct bnf_tensor **out, struct bnf_error *err);

/* Like bnf_tensor_from_proto, but raw data that already has the in-memory
 * layout (float32, double and integers on a little-endian host, aligned
 * for the type) is not copied: the tensor's data points into
 * tp->raw_data and *borrowed is 1. Such a tensor must not be written to or
 * outlive tp, and is freed with free(t), not bnf_tensor_free. Otherwise
 * *borrowed is 0 and the tensor owns a copy. */
int bnf_tensor_view_proto(const Onnx__TensorProto *tp, struct bnf_tensor **out, int *borrowed,
                          struct bnf_error *err);

/* bnf_tensor_view_proto, also viewing raw data that is not aligned for
 * its type (the evaluator's weights, wherever they lie in the model
 * file). Read such data only byte-wise (memcpy), or after
 * bnf_tensor_aligned_copy. */
int bnf_tensor_view_proto_unaligned(const Onnx__TensorProto *tp, struct bnf_tensor **out,
                                    int *borrowed, struct bnf_error *err);

/* Whether t's data is aligned for its element type. */
int bnf_tensor_is_aligned(const struct bnf_tensor *t);

/* An owned, aligned copy of t (which may be unaligned); NULL with err set. */
struct bnf_tensor *bnf_tensor_aligned_copy(const struct bnf_tensor *t, struct bnf_error *err);

/* Encode a tensor as a new TensorProto with raw_data (float16/bfloat16 are
 * rounded to nearest even). The caller owns the result and frees it with
 * onnx__tensor_proto__free_unpacked(p, NULL). */
int bnf_tensor_to_proto(const struct bnf_tensor *t, const char *name, Onnx__TensorProto **out,
                        struct bnf_error *err);

/* Element i of t as a double, whatever its dtype. */
double bnf_tensor_get_double(const struct bnf_tensor *t, size_t i);

/* Scalar conversions between float32 and the 16-bit float formats, rounding
 * to nearest even; NaN stays NaN. */
uint16_t bnf_f32_to_f16(float f);
float bnf_f16_to_f32(uint16_t h);
uint16_t bnf_f32_to_bf16(float f);
float bnf_bf16_to_f32(uint16_t h);

#endif
