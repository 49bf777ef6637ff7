/*
 * Little-endian loads and stores of 1 to 8 bytes. ONNX raw_data is
 * little-endian on every host, so tensor bytes are always read through
 * these rather than by casting pointers.
 */
#ifndef BNF_LE_H
#define BNF_LE_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t bnf_load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;
	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void bnf_store_le(uint8_t *p, uint64_t v, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A base-128 varint (the protobuf wire format) at buf[*pos], at most 10
 * bytes, not reading at or past end: 1 with *v and *pos moved past it,
 * or 0 when it is cut short or too long. */
static inline int bnf_varint_read(const uint8_t *buf, size_t end, size_t *pos, uint64_t *v)
{
	uint64_t value = 0;
	unsigned shift;

	for (shift = 0; shift < 70 && *pos < end; shift += 7) {
		uint8_t b = buf[(*pos)++];
		value |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
		if (!(b & 0x80)) {
			*v = value;
			return 1;
		}
	}
	return 0;
}

#endif
