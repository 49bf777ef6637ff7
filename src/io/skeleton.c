/* The skeleton of a serialized model (see skeleton.h). */
#include "io/skeleton.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "onnx.pb-c.h"
#include "io/validate.h"
#include "util/le.h"

/* A growing output buffer. */
struct out {
	uint8_t *p;
	size_t len, cap;
};

static int put(struct out *o, const void *data, size_t n)
{
	if (n == 0) /* an empty message's buffer is NULL */
		return 0;
	if (n > o->cap - o->len) {
		size_t cap = o->cap ? o->cap : 256;
		uint8_t *q;
		while (cap - o->len < n) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		q = realloc(o->p, cap);
		if (!q)
			return -1;
		o->p = q;
		o->cap = cap;
	}
	memcpy(o->p + o->len, data, n);
	o->len += n;
	return 0;
}

static int put_varint(struct out *o, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	do {
		b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return put(o, b, n);
}

static int note_range(struct bnf_skeleton *sk, size_t offset, size_t length)
{
	if (sk->n == sk->cap) {
		size_t cap = sk->cap ? 2 * sk->cap : 64;
		void *p = realloc(sk->range, cap * sizeof(*sk->range));
		if (!p)
			return -1;
		sk->range = p;
		sk->cap = cap;
	}
	sk->range[sk->n].offset = offset;
	sk->range[sk->n].length = length;
	sk->n++;
	return 0;
}

/* Copy the message of type desc in buf[pos, end) into o, marking large
 * raw_data payloads: a message field is built into its own buffer first,
 * since its length prefix changes. */
static int build(struct bnf_skeleton *sk, const ProtobufCMessageDescriptor *desc,
                 const uint8_t *buf, size_t pos, size_t end, size_t min_len, struct out *o,
                 int depth)
{
	if (depth > BNF_LIMIT_MESSAGE_DEPTH)
		return -1;
	while (pos < end) {
		size_t start = pos, key_end;
		const ProtobufCFieldDescriptor *f;
		uint64_t key, len;

		if (!bnf_varint_read(buf, end, &pos, &key))
			return -1;
		key_end = pos;
		switch (key & 7) {
		case 0:
			if (!bnf_varint_read(buf, end, &pos, &len) ||
			    put(o, buf + start, pos - start))
				return -1;
			continue;
		case 1:
		case 5:
			len = (key & 7) == 1 ? 8 : 4;
			if (end - pos < len || put(o, buf + start, (size_t)(key_end - start + len)))
				return -1;
			pos += (size_t)len;
			continue;
		case 2:
			break;
		default:
			return -1; /* groups: never in ONNX; leave it to the unpacker */
		}
		if (!bnf_varint_read(buf, end, &pos, &len) || len > end - pos)
			return -1;
		f = key >> 3 <= UINT32_MAX
		        ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
		        : NULL;
		if (f && desc == &onnx__tensor_proto__descriptor &&
		    f->type == PROTOBUF_C_TYPE_BYTES && strcmp(f->name, "raw_data") == 0 &&
		    len >= min_len) {
			uint8_t mark[BNF_SKELETON_MARK];
			uint64_t k = sk->n;
			int i;
			memcpy(mark, sk->magic, BNF_SKELETON_MAGIC);
			for (i = 0; i < 8; i++)
				mark[BNF_SKELETON_MAGIC + i] = (uint8_t)(k >> (8 * i));
			if (note_range(sk, pos, (size_t)len) ||
			    put(o, buf + start, key_end - start) || put_varint(o, sizeof(mark)) ||
			    put(o, mark, sizeof(mark)))
				return -1;
		} else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
			struct out sub = {NULL, 0, 0};
			int rc = build(sk, f->descriptor, buf, pos, pos + (size_t)len, min_len,
			               &sub, depth + 1);
			if (rc == 0)
				rc = put(o, buf + start, key_end - start) ||
				             put_varint(o, sub.len) || put(o, sub.p, sub.len)
				         ? -1
				         : 0;
			free(sub.p);
			if (rc)
				return -1;
		} else if (put(o, buf + start, (size_t)(pos - start + len))) {
			return -1;
		}
		pos += (size_t)len;
	}
	return 0;
}

int bnf_skeleton_build(const uint8_t *buf, size_t len, size_t min_len, struct bnf_skeleton *sk)
{
	struct out o = {NULL, 0, 0};

	memset(sk, 0, sizeof(*sk));
	if (min_len <= BNF_SKELETON_MARK ||
	    getrandom(sk->magic, sizeof(sk->magic), GRND_NONBLOCK) != (ssize_t)sizeof(sk->magic))
		return -1;
	if (build(sk, &onnx__model_proto__descriptor, buf, 0, len, min_len, &o, 1) != 0 ||
	    sk->n == 0) {
		free(o.p);
		bnf_skeleton_free(sk);
		return -1;
	}
	sk->bytes = o.p;
	sk->len = o.len;
	return 0;
}

void bnf_skeleton_free(struct bnf_skeleton *sk)
{
	free(sk->bytes);
	free(sk->range);
	memset(sk, 0, sizeof(*sk));
}
