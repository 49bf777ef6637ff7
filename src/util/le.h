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

#endif
