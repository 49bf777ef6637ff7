/*
 * TensorProto <-> double conversion for the folds. All arithmetic of a fold
 * happens in double; this file owns the single rounding back to storage.
 */
#include "io/tensor_data.h"

#include "io/external.h"
#include "util/le.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bnf_dtype_is_foldable(int dtype)
{
	return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

const char *bnf_dtype_label(int dtype)
{
	static const char *const names[] = {
	    "undefined",      "float",    "uint8",        "int8",           "uint16",
	    "int16",          "int32",    "int64",        "string",         "bool",
	    "float16",        "double",   "uint32",       "uint64",         "complex64",
	    "complex128",     "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
	    "float8e5m2fnuz", "uint4",    "int4",         "float4e2m1",     "float8e8m0",
	    "uint2",          "int2",
	};
	if (dtype < 0 || (size_t)dtype >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[dtype];
}

static size_t dtype_bytes(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
		return 8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		return 4;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return 2;
	default:
		return 0;
	}
}

int bnf_proto_numel(const Onnx__TensorProto *t, size_t *count, struct bnf_error *err)
{
	size_t n = 1, i;
	const char *name = t->name ? t->name : "";

	for (i = 0; i < t->n_dims; i++) {
		int64_t d = t->dims[i];
		if (d < 0)
			return bnf_fail(err, BNF_ERR_INPUT, "tensor '%s': negative dimension %lld",
			                name, (long long)d);
		if (d != 0 && n > SIZE_MAX / (size_t)d)
			return bnf_fail(err, BNF_ERR_INPUT, "tensor '%s': element count overflows",
			                name);
		n *= (size_t)d;
	}
	*count = n;
	return BNF_OK;
}

/* Rounding of a double to a small binary float format with mant explicit
 * mantissa bits, exponent bias `bias` and exp_bits exponent bits (float16:
 * 10, 15, 5; bfloat16: 7, 127, 8),
 * to nearest even, as a bit pattern. Scaling by powers of two is exact in
 * double, and nearbyint rounds to nearest even in the default mode. */
static uint16_t round_small_float(double v, int mant, int bias, int exp_bits)
{
	unsigned exp_all_ones = (1u << exp_bits) - 1;
	uint16_t sign = signbit(v) ? (uint16_t)(1u << (mant + exp_bits)) : 0;
	double a = fabs(v);
	int e;
	double q;

	if (isnan(v))
		return (uint16_t)((exp_all_ones << mant) | (1u << (mant - 1)));
	if (isinf(v))
		return (uint16_t)(sign | (exp_all_ones << mant));
	if (a < ldexp(1.0, 1 - bias)) {
		/* Subnormal range: multiples of 2^(1 - bias - mant). A result
		 * of 2^mant is the smallest normal and encodes the same way. */
		q = nearbyint(ldexp(a, bias - 1 + mant));
		return (uint16_t)(sign | (unsigned)q);
	}
	frexp(a, &e);
	e -= 1; /* a = 1.f * 2^e */
	q = nearbyint(ldexp(a, mant - e));
	if (q >= ldexp(1.0, mant + 1)) {
		q = ldexp(1.0, mant);
		e += 1;
	}
	if (e + bias >= (int)exp_all_ones)
		return (uint16_t)(sign | (exp_all_ones << mant));
	return (uint16_t)(sign | ((unsigned)(e + bias) << mant) | ((unsigned)q - (1u << mant)));
}

static double small_float_value(uint16_t h, int mant, int bias, int exp_bits)
{
	unsigned e = (h >> mant) & ((1u << exp_bits) - 1);
	unsigned f = h & ((1u << mant) - 1);
	double sign = (h >> (mant + exp_bits)) ? -1.0 : 1.0;

	if (e == (1u << exp_bits) - 1)
		return f ? NAN : sign * INFINITY;
	if (e == 0)
		return sign * ldexp((double)f, 1 - bias - mant);
	return sign * ldexp((double)(f | (1u << mant)), (int)e - bias - mant);
}

uint16_t bnf_double_to_f16(double v)
{
	return round_small_float(v, 10, 15, 5);
}

uint16_t bnf_double_to_bf16(double v)
{
	return round_small_float(v, 7, 127, 8);
}

double bnf_f16_bits_to_double(uint16_t h)
{
	return small_float_value(h, 10, 15, 5);
}

double bnf_bf16_bits_to_double(uint16_t h)
{
	return small_float_value(h, 7, 127, 8);
}

double bnf_round_to_dtype(double v, int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		return (double)(float)v;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return bnf_f16_bits_to_double(bnf_double_to_f16(v));
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return bnf_bf16_bits_to_double(bnf_double_to_bf16(v));
	default:
		return v;
	}
}

double bnf_dtype_max(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
		return 3.4028234663852886e38;
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return 65504.0;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		return 3.3895313892515355e38;
	default:
		return 1.7976931348623157e308;
	}
}

/* raw_data is little-endian; on such hosts a float can be copied as is. */
static int host_is_little_endian(void)
{
	const uint16_t probe = 1;
	uint8_t first;
	memcpy(&first, &probe, 1);
	return first == 1;
}

static double decode_bits(uint64_t bits, int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
		uint32_t u = (uint32_t)bits;
		float f;
		memcpy(&f, &u, sizeof(f));
		return f;
	}
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
		double d;
		memcpy(&d, &bits, sizeof(d));
		return d;
	}
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return bnf_f16_bits_to_double((uint16_t)bits);
	default:
		return bnf_bf16_bits_to_double((uint16_t)bits);
	}
}

static uint64_t encode_bits(double v, int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
		float f = (float)v;
		uint32_t u;
		memcpy(&u, &f, sizeof(u));
		return u;
	}
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
		uint64_t u;
		memcpy(&u, &v, sizeof(u));
		return u;
	}
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		return bnf_double_to_f16(v);
	default:
		return bnf_double_to_bf16(v);
	}
}

int bnf_proto_read_doubles_ext(const struct bnf_external *ext, const Onnx__TensorProto *t,
                               double **out, size_t *count, struct bnf_error *err)
{
	const char *name = t->name ? t->name : "";
	int dtype = t->has_data_type ? t->data_type : 0;
	size_t bytes = dtype_bytes(dtype);
	size_t n, i, stored;
	double *v = NULL;
	struct bnf_tensor_bytes raw;
	int has_raw = t->has_raw_data || bnf_tensor_is_external(t);
	int rc;

	memset(&raw, 0, sizeof(raw));
	if (!bytes)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "tensor '%s': dtype %s is not a float type", name,
		                bnf_dtype_label(dtype));
	if ((rc = bnf_proto_numel(t, &n, err)) != BNF_OK)
		return rc;
	/* raw_data or the external file's bytes, mapped only while decoding. */
	if (has_raw && (rc = bnf_tensor_bytes_get(ext, t, &raw, err)) != BNF_OK)
		return rc;
	if (has_raw)
		stored = raw.len / bytes;
	else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
		stored = t->n_float_data;
	else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
		stored = t->n_double_data;
	else
		stored = t->n_int32_data;
	if (stored != n || (has_raw && raw.len != n * bytes)) {
		rc =
		    bnf_fail(err, BNF_ERR_INPUT,
		             "tensor '%s': holds %zu values but its dims say %zu", name, stored, n);
		goto out;
	}
	v = bnf_malloc_large(n * sizeof(*v));
	if (!v) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s': out of memory", name);
		goto out;
	}
	if (has_raw && dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && host_is_little_endian()) {
		/* The common case, a hundred megabytes at a time: no per-element
		 * dispatch. */
		for (i = 0; i < n; i++) {
			float f;
			memcpy(&f, raw.data + i * 4, 4);
			v[i] = f;
		}
	} else {
		for (i = 0; i < n; i++) {
			if (has_raw)
				v[i] = decode_bits(bnf_load_le(raw.data + i * bytes, bytes), dtype);
			else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
				v[i] = t->float_data[i];
			else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
				v[i] = t->double_data[i];
			else
				v[i] = decode_bits((uint16_t)t->int32_data[i], dtype);
		}
	}
	*out = v;
	*count = n;
out:
	bnf_tensor_bytes_release(&raw);
	return rc;
}

void bnf_proto_set_raw(Onnx__TensorProto *t, int dtype, uint8_t *raw, size_t len)
{
	/* The tree's buffers come from malloc (protobuf-c's allocator and
	 * mem.h's both), so replacing them with our own is safe. */
	bnf_free_sized(t->raw_data.data, t->raw_data.len);
	free(t->float_data);
	free(t->double_data);
	free(t->int32_data);
	t->float_data = NULL;
	t->n_float_data = 0;
	t->double_data = NULL;
	t->n_double_data = 0;
	t->int32_data = NULL;
	t->n_int32_data = 0;
	t->raw_data.data = raw;
	t->raw_data.len = len;
	bnf_tensor_drop_external(t); /* the new bytes are inline */
	t->has_raw_data = 1;
	t->data_type = dtype;
	t->has_data_type = 1;
}

/* vals[0..count) rounded once to dtype, as new little-endian bytes. */
static uint8_t *encode_all(const double *vals, size_t count, int dtype, size_t bytes)
{
	uint8_t *raw = bnf_malloc_large(count * bytes + 1);
	size_t i;

	if (!raw)
		return NULL;
	if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && host_is_little_endian()) {
		for (i = 0; i < count; i++) {
			float f = (float)vals[i];
			memcpy(raw + i * 4, &f, 4);
		}
	} else {
		for (i = 0; i < count; i++)
			bnf_store_le(raw + i * bytes, encode_bits(vals[i], dtype), bytes);
	}
	return raw;
}

int bnf_proto_write_doubles(Onnx__TensorProto *t, int dtype, const double *vals, size_t count,
                            struct bnf_error *err)
{
	size_t bytes = dtype_bytes(dtype);
	uint8_t *raw;

	if (!bytes)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s': cannot store dtype %s",
		                t->name ? t->name : "", bnf_dtype_label(dtype));
	raw = encode_all(vals, count, dtype, bytes);
	if (!raw)
		return bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s': out of memory",
		                t->name ? t->name : "");
	bnf_proto_set_raw(t, dtype, raw, count * bytes);
	return BNF_OK;
}

/* The scale factor of element i (see bnf_proto_scale). */
static inline double scale_of(const double *s, size_t i, size_t inner, size_t m)
{
	return s[(i / inner) % m];
}

/* One run of count values with one scale factor, stored bytes to stored
 * bytes. Returns 0 when some product does not fit dtype (see
 * bnf_proto_scale), found again afterwards by the caller. */
static int scale_run(const uint8_t *src, uint8_t *dst, size_t count, double scale, int dtype,
                     size_t bytes, double max)
{
	size_t i;
	int ok = 1;

	if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && host_is_little_endian()) {
		/* No branch in the loop: the compiler may vectorise it. */
		for (i = 0; i < count; i++) {
			float f;
			double v;
			memcpy(&f, src + i * 4, 4);
			v = (double)f * scale;
			ok &= fabs(v) <= max;
			f = (float)v;
			memcpy(dst + i * 4, &f, 4);
		}
		return ok;
	}
	for (i = 0; i < count; i++) {
		double v = decode_bits(bnf_load_le(src + i * bytes, bytes), dtype) * scale;
		ok &= fabs(v) <= max;
		bnf_store_le(dst + i * bytes, encode_bits(v, dtype), bytes);
	}
	return ok;
}

int bnf_proto_scale(const struct bnf_external *ext, const Onnx__TensorProto *src, const double *s,
                    size_t inner, size_t m, struct bnf_scaled *out, struct bnf_error *err)
{
	const char *name = src->name ? src->name : "";
	int dtype = src->has_data_type ? src->data_type : 0;
	size_t bytes = dtype_bytes(dtype), n, i;
	double max = bnf_dtype_max(dtype);
	struct bnf_tensor_bytes view;
	uint8_t *raw;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&view, 0, sizeof(view));
	if (!bytes || inner == 0 || m == 0)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s': cannot scale dtype %s",
		                name, bnf_dtype_label(dtype));
	if ((rc = bnf_proto_numel(src, &n, err)) != BNF_OK)
		return rc;
	if (!(src->has_raw_data || bnf_tensor_is_external(src))) {
		/* Typed data fields (small tensors, old exporters): by way of
		 * doubles. */
		double *v;
		if ((rc = bnf_proto_read_doubles_ext(ext, src, &v, &n, err)) != BNF_OK)
			return rc;
		for (i = 0; i < n; i++) {
			v[i] *= scale_of(s, i, inner, m);
			if (!(fabs(v[i]) <= max) && !out->overflow) {
				out->overflow = 1;
				out->where = i;
				out->value = v[i];
			}
		}
		raw = out->overflow ? NULL : encode_all(v, n, dtype, bytes);
		free(v);
		if (!out->overflow && !raw)
			return bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s': out of memory", name);
		out->raw = raw;
		out->len = out->overflow ? 0 : n * bytes;
		return BNF_OK;
	}
	/* Stored bytes (mapped, when external) straight to new stored bytes:
	 * no array of doubles, the largest buffer of a fold otherwise. The
	 * values are (outer, m, inner): a run of inner values per scale. */
	if (n % (inner * m) != 0)
		return bnf_fail(err, BNF_ERR_INPUT, "tensor '%s': %zu values are not %zu channels",
		                name, n, m);
	if ((rc = bnf_tensor_bytes_get(ext, src, &view, err)) != BNF_OK)
		return rc;
	if (view.len != n * bytes) {
		bnf_tensor_bytes_release(&view);
		return bnf_fail(err, BNF_ERR_INPUT,
		                "tensor '%s': holds %zu values but its dims say %zu", name,
		                view.len / bytes, n);
	}
	raw = bnf_malloc_large(n * bytes + 1);
	if (!raw) {
		bnf_tensor_bytes_release(&view);
		return bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s': out of memory", name);
	}
	for (i = 0; i < n && !out->overflow; i += inner) {
		size_t k;
		double scale = scale_of(s, i, inner, m);
		if (scale_run(view.data + i * bytes, raw + i * bytes, inner, scale, dtype, bytes,
		              max))
			continue;
		for (k = 0; k < inner; k++) {
			double v =
			    decode_bits(bnf_load_le(view.data + (i + k) * bytes, bytes), dtype) *
			    scale;
			if (!(fabs(v) <= max)) {
				out->overflow = 1;
				out->where = i + k;
				out->value = v;
				break;
			}
		}
	}
	bnf_tensor_bytes_release(&view);
	if (out->overflow) {
		free(raw);
		return BNF_OK;
	}
	out->raw = raw;
	out->len = n * bytes;
	return BNF_OK;
}
