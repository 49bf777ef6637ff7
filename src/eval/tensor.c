/*
 * Evaluator tensors: allocation, decoding ONNX TensorProtos (raw_data is
 * little-endian; on a little-endian host types stored as held are copied
 * or viewed in place, otherwise read byte by byte), encoding results back,
 * and the float16 / bfloat16 conversions with round-to-nearest-even.
 */
#include "eval/tensor.h"
#include "io/external.h"
#include "util/le.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

size_t bnf_tensor_elem_size(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
		return 4;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		return 8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
		return 2;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
		return 1;
	default:
		return 0;
	}
}

int bnf_dtype_is_integer(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
		return 1;
	default:
		return 0;
	}
}

int bnf_dtype_is_unsigned(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
}

int64_t bnf_tensor_get_int(const struct bnf_tensor *t, size_t i)
{
	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		return ((const int64_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
		return ((const int32_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
		return ((const uint32_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
		return ((const int16_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
		return ((const uint16_t *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
		return ((const int8_t *)t->data)[i];
	default: /* UINT8, BOOL */
		return ((const uint8_t *)t->data)[i];
	}
}

void bnf_tensor_set_int(struct bnf_tensor *t, size_t i, int64_t v)
{
	uint64_t u = (uint64_t)v;

	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		((int64_t *)t->data)[i] = v;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
		((uint32_t *)t->data)[i] = (uint32_t)u;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
		((uint16_t *)t->data)[i] = (uint16_t)u;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
		((uint8_t *)t->data)[i] = u != 0;
		break;
	default: /* INT8, UINT8 */
		((uint8_t *)t->data)[i] = (uint8_t)u;
		break;
	}
}

/* Bytes per element as stored in a TensorProto's raw_data. */
static size_t stored_elem_size(int dtype)
{
	if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	    dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)
		return 2;
	return bnf_tensor_elem_size(dtype);
}

const char *bnf_dtype_name(int dtype)
{
	/* Indexed by the ONNX TensorProto.DataType number. */
	static const char *const names[] = {
	    "undefined", "float",  "uint8",     "int8",       "uint16",   "int16",
	    "int32",     "int64",  "string",    "bool",       "float16",  "double",
	    "uint32",    "uint64", "complex64", "complex128", "bfloat16",
	};
	if (dtype < 0 || (size_t)dtype >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[dtype];
}

/* Element count of a shape, refusing negative dims and counts above
 * BNF_MAX_ELEMENTS (which also rules out size_t overflow). */
static int shape_count(int rank, const int64_t *dims, size_t *count, struct bnf_error *err)
{
	size_t nonzero = 1; /* product of the non-zero dims: must fit even if a dim is 0 */
	int any_zero = 0;
	int i;

	if (rank < 0 || rank > BNF_MAX_RANK)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED, "rank %d is above the limit of %d", rank,
		                BNF_MAX_RANK);
	for (i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return bnf_fail(err, BNF_ERR_INPUT, "negative dimension %lld",
			                (long long)dims[i]);
		if (dims[i] == 0) {
			any_zero = 1;
			continue;
		}
		if ((uint64_t)dims[i] > BNF_MAX_ELEMENTS / nonzero)
			return bnf_fail(err, BNF_ERR_NOMEM, "tensor has more than %zu elements",
			                (size_t)BNF_MAX_ELEMENTS);
		nonzero *= (size_t)dims[i];
	}
	*count = any_zero ? 0 : nonzero;
	return BNF_OK;
}

/* A tensor without its buffer (data NULL); NULL with err set on a bad
 * dtype or shape or no memory. */
static struct bnf_tensor *tensor_shell(int dtype, int rank, const int64_t *dims,
                                       struct bnf_error *err)
{
	struct bnf_tensor *t = NULL;
	size_t count = 0;

	if (bnf_tensor_elem_size(dtype) == 0)
		bnf_fail(err, BNF_ERR_UNSUPPORTED, "unsupported dtype %s", bnf_dtype_name(dtype));
	else if (shape_count(rank, dims, &count, err) == BNF_OK && !(t = calloc(1, sizeof(*t))))
		bnf_fail(err, BNF_ERR_NOMEM, "out of memory allocating a tensor");
	if (t) {
		t->dtype = dtype;
		t->rank = rank;
		if (rank > 0)
			memcpy(t->dims, dims, (size_t)rank * sizeof(dims[0]));
		t->count = count;
	}
	return t;
}

/* bnf_tensor_new and bnf_tensor_new_uninit. */
static struct bnf_tensor *tensor_alloc(int dtype, int rank, const int64_t *dims, int zeroed,
                                       struct bnf_error *err)
{
	struct bnf_tensor *t = tensor_shell(dtype, rank, dims, err);
	size_t n = t && t->count ? t->count : 1;

	if (t && !(t->data = zeroed ? bnf_calloc_large(n, bnf_tensor_elem_size(dtype))
	                            : bnf_malloc_large(n * bnf_tensor_elem_size(dtype)))) {
		bnf_fail(err, BNF_ERR_NOMEM, "out of memory allocating a tensor of %zu elements",
		         t->count);
		free(t);
		t = NULL;
	}
	return t;
}

struct bnf_tensor *bnf_tensor_new(int dtype, int rank, const int64_t *dims, struct bnf_error *err)
{
	return tensor_alloc(dtype, rank, dims, 1, err);
}

struct bnf_tensor *bnf_tensor_new_uninit(int dtype, int rank, const int64_t *dims,
                                         struct bnf_error *err)
{
	return tensor_alloc(dtype, rank, dims, 0, err);
}

struct bnf_tensor *bnf_tensor_clone(const struct bnf_tensor *t, struct bnf_error *err)
{
	struct bnf_tensor *c = bnf_tensor_new(t->dtype, t->rank, t->dims, err);

	if (c && t->count)
		memcpy(c->data, t->data, t->count * bnf_tensor_elem_size(t->dtype));
	return c;
}

void bnf_tensor_free(struct bnf_tensor *t)
{
	if (!t)
		return;
	free(t->data);
	free(t);
}

uint16_t bnf_f32_to_f16(float f)
{
	uint32_t x, mant, rem, half, r;
	uint16_t sign;
	int e, shift;

	memcpy(&x, &f, sizeof(x));
	sign = (uint16_t)((x >> 16) & 0x8000u);
	mant = x & 0x7fffffu;
	if (((x >> 23) & 0xffu) == 0xffu) /* inf stays inf, NaN stays a quiet NaN */
		return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
	e = (int)((x >> 23) & 0xffu) - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00u);
	if (e <= 0) {
		/* Subnormal half: value = m * 2^-24, with the implicit bit made
		 * explicit (float32 subnormals are far below half's range). */
		if ((x & 0x7f800000u) == 0)
			return sign;
		shift = 14 - e;
		if (shift > 25)
			return sign;
		mant |= 0x800000u;
		r = mant >> shift;
		rem = mant & ((1u << shift) - 1);
		half = 1u << (shift - 1);
	} else {
		r = ((uint32_t)e << 10) | (mant >> 13);
		rem = mant & 0x1fffu;
		half = 0x1000u;
	}
	/* A carry out of the mantissa correctly bumps the exponent, and from
	 * the largest finite value on to infinity. */
	if (rem > half || (rem == half && (r & 1u)))
		r++;
	return (uint16_t)(sign | r);
}

float bnf_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu;
	uint32_t mant = h & 0x3ffu;
	uint32_t x;
	float f;

	if (e == 0) {
		/* Zero or subnormal: m * 2^-24 is exact in float32. */
		f = (float)mant * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000u | (mant << 13);
	else
		x = sign | ((e - 15 + 127) << 23) | (mant << 13);
	memcpy(&f, &x, sizeof(f));
	return f;
}

uint16_t bnf_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40u);
	/* Adding 0x7fff plus the lowest kept bit rounds to nearest even; a
	 * carry into the exponent overflows to infinity as it should. */
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t)(x >> 16);
}

float bnf_bf16_to_f32(uint16_t h)
{
	uint32_t x = (uint32_t)h << 16;
	float f;

	memcpy(&f, &x, sizeof(f));
	return f;
}

/* Store element i of t from the raw bits of its stored representation. */
static void set_from_bits(struct bnf_tensor *t, size_t i, uint64_t bits)
{
	uint32_t u32 = (uint32_t)bits;
	float f;
	double d;

	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		memcpy(&f, &u32, sizeof(f));
		((float *)t->data)[i] = f;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		((float *)t->data)[i] = bnf_f16_to_f32((uint16_t)bits);
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		((float *)t->data)[i] = bnf_bf16_to_f32((uint16_t)bits);
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		memcpy(&d, &bits, sizeof(d));
		((double *)t->data)[i] = d;
		break;
	default: /* the integers and bool */
		bnf_tensor_set_int(t, i, (int64_t)bits);
		break;
	}
}

/* The raw bits of element i in its stored representation. */
static uint64_t get_bits(const struct bnf_tensor *t, size_t i)
{
	uint32_t u32;
	uint64_t u64;

	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		memcpy(&u32, (const float *)t->data + i, sizeof(u32));
		return u32;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return bnf_f32_to_f16(((const float *)t->data)[i]);
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return bnf_f32_to_bf16(((const float *)t->data)[i]);
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		memcpy(&u64, (const uint8_t *)t->data + 8 * i, sizeof(u64));
		return u64;
	default: /* the integers and bool; the caller keeps the low bytes */
		return (uint64_t)bnf_tensor_get_int(t, i);
	}
}

/* Fill t from the typed repeated field that the dtype uses. */
static int decode_typed(const Onnx__TensorProto *tp, struct bnf_tensor *t, const char *name,
                        struct bnf_error *err)
{
	size_t n, i;

	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		n = tp->n_float_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		n = tp->n_double_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
		n = tp->n_int64_data;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		n = tp->n_uint64_data;
		break;
	default:
		n = tp->n_int32_data;
		break;
	}
	if (n != t->count)
		return bnf_fail(err, BNF_ERR_INPUT, "tensor '%s' has %zu values for %zu elements",
		                name, n, t->count);
	for (i = 0; i < n; i++) {
		switch (t->dtype) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
			((float *)t->data)[i] = tp->float_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
			((double *)t->data)[i] = tp->double_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
			((int64_t *)t->data)[i] = tp->int64_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
			set_from_bits(t, i, tp->uint64_data[i]);
			break;
		default:
			/* float16 / bfloat16 bits, bool and small ints all
			 * travel in int32_data. */
			set_from_bits(t, i, (uint32_t)tp->int32_data[i]);
			break;
		}
	}
	return BNF_OK;
}

/* Whether raw_data of dtype has exactly the in-memory layout: the same
 * element size and a little-endian host. */
static int raw_is_held(int dtype)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return dtype != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 &&
	       dtype != ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 &&
	       dtype != ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
#else
	(void)dtype;
	return 0;
#endif
}

/* How decode_proto may point into tp's raw data instead of copying it. */
enum decode_view {
	decode_view_none,
	decode_view_aligned,   /* when aligned for the type */
	decode_view_unaligned, /* wherever it lies */
};

/* Decode tp into *out. With view set, raw data already in the held layout
 * (and aligned for its type, unless decode_view_unaligned) is pointed to
 * rather than copied (*borrowed becomes 1). */
static int decode_proto(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                        enum decode_view how, struct bnf_tensor **out, int *borrowed,
                        struct bnf_error *err)
{
	const char *name = tp->name ? tp->name : "";
	struct bnf_tensor *t = NULL;
	struct bnf_tensor_bytes raw; /* raw_data, or an external file's bytes */
	int64_t dims[BNF_MAX_RANK];
	size_t i, stored, es = bnf_tensor_elem_size(tp->data_type);
	int rc, view = 0;

	*out = NULL;
	*borrowed = 0;
	memset(&raw, 0, sizeof(raw));
	if (bnf_tensor_is_external(tp) && !ext) {
		rc = bnf_fail(err, BNF_ERR_UNSUPPORTED,
		              "tensor '%s' keeps its data in an external file", name);
		goto out;
	}
	if (tp->segment) {
		rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s' is segmented", name);
		goto out;
	}
	if (es == 0) {
		rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s' has unsupported dtype %s",
		              name, bnf_dtype_name(tp->data_type));
		goto out;
	}
	if (tp->n_dims > BNF_MAX_RANK) {
		rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s' has rank %zu, above %d", name,
		              tp->n_dims, BNF_MAX_RANK);
		goto out;
	}
	for (i = 0; i < tp->n_dims; i++)
		dims[i] = tp->dims[i];
	view = how != decode_view_none && tp->has_raw_data && raw_is_held(tp->data_type) &&
	       tp->raw_data.len &&
	       (how == decode_view_unaligned || (uintptr_t)tp->raw_data.data % es == 0);
	t = view ? tensor_shell(tp->data_type, (int)tp->n_dims, dims, err)
	         : bnf_tensor_new(tp->data_type, (int)tp->n_dims, dims, err);
	if (!t) {
		bnf_error_prefix(err, "tensor '%s'", name);
		rc = err ? err->status : BNF_ERR_INPUT;
		goto out;
	}
	if (tp->has_raw_data || bnf_tensor_is_external(tp)) {
		/* External bytes are mapped only while they are copied. */
		if ((rc = bnf_tensor_bytes_get(ext, tp, &raw, err)) != BNF_OK)
			goto out;
		stored = stored_elem_size(t->dtype);
		if (raw.len != t->count * stored) {
			rc =
			    bnf_fail(err, BNF_ERR_INPUT,
			             "tensor '%s' has %zu bytes of raw data for %zu elements of %s",
			             name, raw.len, t->count, bnf_dtype_name(t->dtype));
			goto out;
		}
		if (view)
			t->data = tp->raw_data.data;
		else if (raw_is_held(t->dtype) && t->count)
			memcpy(t->data, raw.data, raw.len);
		else
			for (i = 0; i < t->count; i++)
				set_from_bits(t, i, bnf_load_le(raw.data + i * stored, stored));
	} else {
		rc = decode_typed(tp, t, name, err);
		if (rc != BNF_OK)
			goto out;
	}
	*out = t;
	*borrowed = view;
	t = NULL;
	rc = BNF_OK;
out:
	bnf_tensor_bytes_release(&raw);
	if (view)
		free(t);
	else
		bnf_tensor_free(t);
	return rc;
}

int bnf_tensor_from_proto(const Onnx__TensorProto *tp, struct bnf_tensor **out,
                          struct bnf_error *err)
{
	int borrowed;

	return decode_proto(NULL, tp, decode_view_none, out, &borrowed, err);
}

int bnf_tensor_from_proto_ext(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                              struct bnf_tensor **out, struct bnf_error *err)
{
	int borrowed;

	return decode_proto(ext, tp, decode_view_none, out, &borrowed, err);
}

int bnf_tensor_from_proto_ext_double(const struct bnf_external *ext, const Onnx__TensorProto *tp,
                                     struct bnf_tensor **out, struct bnf_error *err)
{
	const size_t chunk = (size_t)1 << 18; /* values converted between page drops */
	const char *name = tp->name ? tp->name : "";
	struct bnf_tensor_bytes raw;
	struct bnf_tensor *t;
	int64_t dims[BNF_MAX_RANK];
	uintptr_t dropped;
	size_t i, j;
	int rc;

	if (tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !ext || tp->segment ||
	    tp->n_dims > BNF_MAX_RANK || !bnf_tensor_is_external(tp))
		return bnf_tensor_from_proto_ext(ext, tp, out, err);
	*out = NULL;
	for (i = 0; i < tp->n_dims; i++)
		dims[i] = tp->dims[i];
	t = bnf_tensor_new_uninit(ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, (int)tp->n_dims, dims,
	                          err);
	if (!t) {
		bnf_error_prefix(err, "tensor '%s'", name);
		return err ? err->status : BNF_ERR_INPUT;
	}
	memset(&raw, 0, sizeof(raw));
	if ((rc = bnf_tensor_bytes_get(ext, tp, &raw, err)) != BNF_OK)
		goto out;
	if (raw.len != t->count * 4) {
		rc = bnf_fail(err, BNF_ERR_INPUT,
		              "tensor '%s' has %zu bytes of raw data for %zu elements of float",
		              name, raw.len, t->count);
		goto out;
	}
	/* Straight from the file's pages to double, dropping the pages behind
	 * (they read back from the file if needed): the float copy and the
	 * mapped file never add to the double's memory. */
	dropped = (uintptr_t)raw.map;
	for (i = 0; i < t->count; i = j) {
		j = t->count - i < chunk ? t->count : i + chunk;
		for (; i < j; i++) {
			uint32_t bits = (uint32_t)bnf_load_le(raw.data + 4 * i, 4);
			float f;
			memcpy(&f, &bits, sizeof(f));
			((double *)t->data)[i] = f;
		}
		if (raw.map) {
			uintptr_t hi = ((uintptr_t)(raw.data + 4 * j)) & ~(uintptr_t)4095;
			if (hi > dropped) {
				(void)madvise((void *)dropped, hi - dropped, MADV_DONTNEED);
				dropped = hi;
			}
		}
	}
	*out = t;
	t = NULL;
out:
	bnf_tensor_bytes_release(&raw);
	bnf_tensor_free(t);
	return rc;
}

int bnf_tensor_view_proto(const Onnx__TensorProto *tp, struct bnf_tensor **out, int *borrowed,
                          struct bnf_error *err)
{
	return decode_proto(NULL, tp, decode_view_aligned, out, borrowed, err);
}

int bnf_tensor_view_proto_unaligned(const Onnx__TensorProto *tp, struct bnf_tensor **out,
                                    int *borrowed, struct bnf_error *err)
{
	return decode_proto(NULL, tp, decode_view_unaligned, out, borrowed, err);
}

int bnf_tensor_is_aligned(const struct bnf_tensor *t)
{
	size_t es = bnf_tensor_elem_size(t->dtype);

	return !t->data || es == 0 || (uintptr_t)t->data % es == 0;
}

struct bnf_tensor *bnf_tensor_aligned_copy(const struct bnf_tensor *t, struct bnf_error *err)
{
	struct bnf_tensor *c = bnf_tensor_new_uninit(t->dtype, t->rank, t->dims, err);

	if (c && t->count)
		memcpy(c->data, t->data, t->count * bnf_tensor_elem_size(t->dtype));
	return c;
}

int bnf_tensor_to_proto(const struct bnf_tensor *t, const char *name, Onnx__TensorProto **out,
                        struct bnf_error *err)
{
	Onnx__TensorProto *tp;
	char *name_copy;
	size_t stored = stored_elem_size(t->dtype);
	size_t i;

	*out = NULL;
	if (stored == 0)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED, "cannot encode tensor '%s' of dtype %s",
		                name, bnf_dtype_name(t->dtype));
	tp = malloc(sizeof(*tp));
	if (!tp)
		goto nomem;
	onnx__tensor_proto__init(tp);
	tp->has_data_type = 1;
	tp->data_type = t->dtype;
	name_copy = strdup(name ? name : "");
	if (!name_copy)
		goto nomem;
	tp->name = name_copy;
	if (t->rank > 0) {
		tp->dims = malloc((size_t)t->rank * sizeof(tp->dims[0]));
		if (!tp->dims)
			goto nomem;
		for (i = 0; i < (size_t)t->rank; i++)
			tp->dims[i] = t->dims[i];
		tp->n_dims = (size_t)t->rank;
	}
	tp->has_raw_data = 1;
	tp->raw_data.len = t->count * stored;
	tp->raw_data.data = bnf_malloc_large(tp->raw_data.len);
	if (!tp->raw_data.data)
		goto nomem;
	for (i = 0; i < t->count; i++)
		bnf_store_le(tp->raw_data.data + i * stored, get_bits(t, i), stored);
	*out = tp;
	return BNF_OK;
nomem:
	if (tp)
		onnx__tensor_proto__free_unpacked(tp, &bnf_large_allocator);
	return bnf_fail(err, BNF_ERR_NOMEM, "out of memory encoding tensor '%s'", name);
}

double bnf_tensor_get_double(const struct bnf_tensor *t, size_t i)
{
	switch (t->dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return ((const double *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return ((const float *)t->data)[i];
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
		return (double)((const uint64_t *)t->data)[i];
	default:
		return (double)bnf_tensor_get_int(t, i);
	}
}
