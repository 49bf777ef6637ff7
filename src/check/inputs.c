/*
 * Model inputs for the evaluator: command-line shape and file arguments,
 * .pb and .npy readers, seeded random tensors, and TensorProto output
 * files. Randomness is a splitmix64 stream seeded from (seed, sample, input
 * name), so results do not depend on input order or on thread counts.
 */
#include "check/inputs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "io/model.h"
#include "io/validate.h"

/* ---- command-line arguments ---- */

static char *split_arg(const char *arg, const char **value)
{
	const char *eq = strrchr(arg, '=');
	char *name;

	if (!eq || eq == arg || !eq[1])
		return NULL;
	name = strndup(arg, (size_t)(eq - arg));
	*value = eq + 1;
	return name;
}

static int parse_dims(const char *s, int64_t *dims, int *rank)
{
	int r = 0;
	char *end;

	if (strcmp(s, "scalar") == 0) {
		*rank = 0;
		return 0;
	}
	for (;;) {
		long long v;
		if (r == BNF_MAX_RANK || *s < '0' || *s > '9')
			return -1;
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || v < 0 || end == s)
			return -1;
		dims[r++] = v;
		if (*end == '\0')
			break;
		if (*end != 'x' && *end != ',')
			return -1;
		s = end + 1;
	}
	*rank = r;
	return 0;
}

#define APPEND(arr, n, item)                                                                       \
	do {                                                                                       \
		void *grown_ = realloc((arr), ((n) + 1) * sizeof(*(arr)));                         \
		if (!grown_)                                                                       \
			goto nomem;                                                                \
		(arr) = grown_;                                                                    \
		(arr)[(n)++] = (item);                                                             \
	} while (0)

int bnf_input_spec_add_shape(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err)
{
	struct bnf_shape_arg s;
	const char *value;

	memset(&s, 0, sizeof(s));
	s.name = split_arg(arg, &value);
	if (!s.name || parse_dims(value, s.dims, &s.rank) != 0) {
		free(s.name);
		return bnf_fail(err, BNF_ERR_INPUT,
		                "--shape '%s': expected NAME=DIMS such as input=1x3x224x224", arg);
	}
	APPEND(spec->shapes, spec->n_shapes, s);
	return BNF_OK;
nomem:
	free(s.name);
	return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}

int bnf_input_spec_add_dim(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err)
{
	struct bnf_dim_arg d;
	const char *value;
	char *end;

	d.symbol = split_arg(arg, &value);
	if (d.symbol) {
		errno = 0;
		d.value = strtoll(value, &end, 10);
		if (errno || *end || d.value < 0) {
			free(d.symbol);
			d.symbol = NULL;
		}
	}
	if (!d.symbol)
		return bnf_fail(err, BNF_ERR_INPUT, "--dim '%s': expected SYMBOL=N such as batch=8",
		                arg);
	APPEND(spec->dims, spec->n_dims, d);
	return BNF_OK;
nomem:
	free(d.symbol);
	return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}

int bnf_input_spec_add_file(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err)
{
	struct bnf_file_arg f;
	const char *value;

	f.name = split_arg(arg, &value);
	f.path = f.name ? strdup(value) : NULL;
	if (!f.name || !f.path) {
		free(f.name);
		return bnf_fail(err, BNF_ERR_INPUT,
		                "--input '%s': expected NAME=FILE (.pb or .npy)", arg);
	}
	APPEND(spec->files, spec->n_files, f);
	return BNF_OK;
nomem:
	free(f.name);
	free(f.path);
	return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}

void bnf_input_spec_free(struct bnf_input_spec *spec)
{
	size_t i;
	for (i = 0; i < spec->n_shapes; i++)
		free(spec->shapes[i].name);
	for (i = 0; i < spec->n_dims; i++)
		free(spec->dims[i].symbol);
	for (i = 0; i < spec->n_files; i++) {
		free(spec->files[i].name);
		free(spec->files[i].path);
	}
	free(spec->shapes);
	free(spec->dims);
	free(spec->files);
	memset(spec, 0, sizeof(*spec));
}

void bnf_named_tensors_free(struct bnf_named_tensors *set)
{
	size_t i;
	for (i = 0; i < set->n; i++) {
		free(set->names[i]);
		bnf_tensor_free(set->tensors[i]);
	}
	free(set->names);
	free(set->tensors);
	memset(set, 0, sizeof(*set));
}

/* ---- random tensors ---- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1], never 0 so that log() below is finite. */
static double uniform01(uint64_t *state)
{
	return ((double)(splitmix64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

struct bnf_tensor *bnf_tensor_random(int dtype, int rank, const int64_t *dims, uint64_t seed,
                                     struct bnf_error *err)
{
	struct bnf_tensor *t = bnf_tensor_new(dtype, rank, dims, err);
	uint64_t state = seed;
	size_t i;

	if (!t)
		return NULL;
	for (i = 0; i < t->count; i++) {
		/* Box-Muller: one normal value per pair of uniforms. */
		double u1 = uniform01(&state), u2 = uniform01(&state);
		double v = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
		int bit = (int)(splitmix64(&state) & 1);
		switch (dtype) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
			((double *)t->data)[i] = v;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
			((float *)t->data)[i] = (float)v;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
			((float *)t->data)[i] = bnf_f16_to_f32(bnf_f32_to_f16((float)v));
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
			((float *)t->data)[i] = bnf_bf16_to_f32(bnf_f32_to_bf16((float)v));
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
			((int64_t *)t->data)[i] = bit;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
			((int32_t *)t->data)[i] = bit;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
			((int8_t *)t->data)[i] = (int8_t)bit;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
			((uint16_t *)t->data)[i] = (uint16_t)bit;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
			((uint32_t *)t->data)[i] = (uint32_t)bit;
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
			((uint64_t *)t->data)[i] = (uint64_t)bit;
			break;
		default: /* BOOL, UINT8 */
			((uint8_t *)t->data)[i] = (uint8_t)bit;
			break;
		}
	}
	return t;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* ---- files ---- */

/* NumPy .npy: magic, version, header length, a Python dict literal with
 * descr, fortran_order and shape, then C-order data. */
static int npy_dtype(const char *descr)
{
	static const struct {
		const char *descr;
		int dtype;
	} map[] = {
	    {"<f4", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT},
	    {"<f8", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE},
	    {"<f2", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16},
	    {"<i8", ONNX__TENSOR_PROTO__DATA_TYPE__INT64},
	    {"<i4", ONNX__TENSOR_PROTO__DATA_TYPE__INT32},
	    {"<i2", ONNX__TENSOR_PROTO__DATA_TYPE__INT16},
	    {"<u2", ONNX__TENSOR_PROTO__DATA_TYPE__UINT16},
	    {"<u4", ONNX__TENSOR_PROTO__DATA_TYPE__UINT32},
	    {"<u8", ONNX__TENSOR_PROTO__DATA_TYPE__UINT64},
	    {"|i1", ONNX__TENSOR_PROTO__DATA_TYPE__INT8},
	    {"|u1", ONNX__TENSOR_PROTO__DATA_TYPE__UINT8},
	    {"|b1", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL},
	};
	size_t i;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(descr, map[i].descr, 3) == 0)
			return map[i].dtype;
	return 0;
}

static int npy_parse(const char *path, const uint8_t *buf, size_t len, struct bnf_tensor **out,
                     struct bnf_error *err)
{
	size_t hlen, off, i, esize;
	char header[4096];
	const char *p;
	int64_t dims[BNF_MAX_RANK];
	int rank = 0, dtype;
	struct bnf_tensor *t;
	const uint8_t *data;

	if (len < 10 || buf[6] < 1 || buf[6] > 3)
		return bnf_fail(err, BNF_ERR_INPUT, "%s: not a NumPy .npy file", path);
	if (buf[6] == 1) {
		hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
		off = 10;
	} else {
		if (len < 12)
			return bnf_fail(err, BNF_ERR_INPUT, "%s: truncated .npy header", path);
		hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
		       (size_t)buf[11] << 24;
		off = 12;
	}
	if (hlen >= sizeof(header) || off + hlen > len)
		return bnf_fail(err, BNF_ERR_INPUT, "%s: bad .npy header", path);
	memcpy(header, buf + off, hlen);
	header[hlen] = '\0';
	if (strstr(header, "'fortran_order': True"))
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "%s: Fortran-order arrays are not supported", path);
	p = strstr(header, "'descr':");
	if (!p || !(p = strchr(p + 8, '\'')))
		return bnf_fail(err, BNF_ERR_INPUT, "%s: .npy header has no descr", path);
	dtype = npy_dtype(p + 1);
	if (!dtype)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s: unsupported .npy dtype '%.3s'", path,
		                p + 1);
	p = strstr(header, "'shape':");
	if (!p || !(p = strchr(p, '(')))
		return bnf_fail(err, BNF_ERR_INPUT, "%s: .npy header has no shape", path);
	for (p++; *p && *p != ')';) {
		char *end;
		long long v;
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			break;
		v = strtoll(p, &end, 10);
		if (end == p || v < 0 || rank == BNF_MAX_RANK)
			return bnf_fail(err, BNF_ERR_INPUT, "%s: bad .npy shape", path);
		dims[rank++] = v;
		p = end;
	}
	t = bnf_tensor_new(dtype, rank, dims, err);
	if (!t)
		return err ? err->status : BNF_ERR_NOMEM;
	esize = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? 2 : bnf_tensor_elem_size(dtype);
	data = buf + off + hlen;
	if (len - off - hlen != t->count * esize) {
		bnf_tensor_free(t);
		return bnf_fail(err, BNF_ERR_INPUT,
		                "%s: .npy data holds %zu bytes, shape needs %zu", path,
		                len - off - hlen, t->count * esize);
	}
	for (i = 0; i < t->count; i++) {
		const uint8_t *e = data + i * esize;
		uint64_t bits = 0;
		size_t b;
		for (b = 0; b < esize; b++)
			bits |= (uint64_t)e[b] << (8 * b);
		switch (dtype) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
			((float *)t->data)[i] = bnf_f16_to_f32((uint16_t)bits);
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
			uint32_t u = (uint32_t)bits;
			memcpy((float *)t->data + i, &u, 4);
			break;
		}
		default:
			memcpy((uint8_t *)t->data + i * esize, &bits,
			       esize); /* little-endian host */
			break;
		}
	}
	*out = t;
	return BNF_OK;
}

int bnf_tensor_load(const char *path, struct bnf_tensor **out, struct bnf_error *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Onnx__TensorProto *tp;
	int rc;

	if ((rc = bnf_read_file(path, &buf, &len, err)) != BNF_OK)
		return rc;
	if (len >= 6 && memcmp(buf, "\x93NUMPY", 6) == 0) {
		rc = npy_parse(path, buf, len, out, err);
	} else {
		tp = onnx__tensor_proto__unpack(NULL, len, buf);
		if (!tp) {
			rc = bnf_fail(err, BNF_ERR_INPUT,
			              "%s: neither a TensorProto nor a .npy file", path);
		} else {
			rc = bnf_tensor_from_proto(tp, out, err);
			if (rc != BNF_OK)
				bnf_error_prefix(err, "%s", path);
			onnx__tensor_proto__free_unpacked(tp, &bnf_large_allocator);
		}
	}
	free(buf);
	return rc;
}

int bnf_tensor_save_pb(const struct bnf_tensor *t, const char *name, const char *path,
                       struct bnf_error *err)
{
	Onnx__TensorProto *tp = NULL;
	uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = bnf_tensor_to_proto(t, name, &tp, err)) != BNF_OK)
		return rc;
	len = onnx__tensor_proto__get_packed_size(tp);
	buf = malloc(len ? len : 1);
	if (!buf) {
		onnx__tensor_proto__free_unpacked(tp, &bnf_large_allocator);
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	onnx__tensor_proto__pack(tp, buf);
	onnx__tensor_proto__free_unpacked(tp, &bnf_large_allocator);
	rc = bnf_model_write_bytes(path, buf, len, err);
	free(buf);
	return rc;
}

/* ---- the inputs of a model ---- */

/* Seeded random values of the input's dtype and shape. */
static int random_input(const struct bnf_input_shape *shape, uint64_t seed, int sample,
                        struct bnf_tensor **t, struct bnf_error *err)
{
	uint64_t s = seed ^ name_hash(shape->name) ^ ((uint64_t)sample * 0x9e3779b97f4a7c15ull);
	uint64_t count;
	int a, chosen = 0;

	/* Made-up values must not let a declaration exhaust memory. A size
	 * bnfold chose means the check cannot run; one the user set is a
	 * bad argument. */
	if (bnf_validate_shape_count((size_t)shape->rank, shape->dims, &count) != 0 ||
	    count > BNF_LIMIT_INPUT_ELEMENTS) {
		for (a = 0; a < shape->rank; a++)
			chosen |= shape->source[a] >= BNF_DIM_SOURCE_MODEL;
		return bnf_fail(err, chosen ? BNF_ERR_UNSUPPORTED : BNF_ERR_INPUT,
		                "graph input '%s': its shape has more than %llu elements, the "
		                "limit for random inputs",
		                shape->name, (unsigned long long)BNF_LIMIT_INPUT_ELEMENTS);
	}
	*t = bnf_tensor_random(shape->dtype, shape->rank, shape->dims, s, err);
	if (!*t) {
		bnf_error_prefix(err, "graph input '%s'", shape->name);
		return err ? err->status : BNF_ERR_NOMEM;
	}
	return BNF_OK;
}

int bnf_inputs_make_shaped(const struct bnf_input_shapes *shapes, uint64_t seed, int sample,
                           struct bnf_named_tensors *out, struct bnf_error *err)
{
	size_t i;
	int rc = BNF_OK;

	memset(out, 0, sizeof(*out));
	out->names = calloc(shapes->n + 1, sizeof(*out->names));
	out->tensors = calloc(shapes->n + 1, sizeof(*out->tensors));
	if (!out->names || !out->tensors) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < shapes->n; i++) {
		const struct bnf_input_shape *shape = &shapes->inputs[i];
		struct bnf_tensor **t = &out->tensors[out->n];

		if (!(out->names[out->n] = strdup(shape->name))) {
			rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
			goto fail;
		}
		out->n++;
		if (shape->value && !(*t = bnf_tensor_clone(shape->value, err)))
			rc = err ? err->status : BNF_ERR_NOMEM;
		else if (!shape->value)
			rc = random_input(shape, seed, sample, t, err);
		if (rc != BNF_OK)
			goto fail;
	}
	return BNF_OK;
fail:
	bnf_named_tensors_free(out);
	return rc;
}

int bnf_inputs_make(const Onnx__ModelProto *model, const struct bnf_input_spec *spec, uint64_t seed,
                    int sample, struct bnf_named_tensors *out, struct bnf_error *err)
{
	struct bnf_input_shapes shapes;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = bnf_inputs_choose(model, spec, NULL, &shapes, err)) != BNF_OK)
		return rc;
	rc = bnf_inputs_make_shaped(&shapes, seed, sample, out, err);
	bnf_input_shapes_free(&shapes);
	return rc;
}
