/*
 * The skeleton of a serialized model: the same bytes, except that the
 * payload of every large TensorProto raw_data field is replaced by a short
 * marker (random bytes and the field's index) and the lengths of the
 * messages around it are adjusted. protobuf-c unpacks the skeleton without
 * copying the weights; model.c then points each marked tensor at its bytes
 * in the original buffer.
 */
#ifndef BNF_SKELETON_H
#define BNF_SKELETON_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the marker: BNF_SKELETON_MAGIC random bytes, then the index of
 * the field (little-endian, 8 bytes). */
#define BNF_SKELETON_MAGIC 16
#define BNF_SKELETON_MARK  (BNF_SKELETON_MAGIC + 8)

struct bnf_skeleton {
	uint8_t *bytes; /* the skeleton (malloc'd) */
	size_t len;
	struct {
		size_t offset, length; /* the replaced payload in the original */
	} * range;
	size_t n, cap;
	uint8_t magic[BNF_SKELETON_MAGIC];
};

/* Build the skeleton of buf[0, len), replacing raw_data payloads of at
 * least min_len bytes (min_len > BNF_SKELETON_MARK). Returns 0, or -1 when
 * buf does not walk as a model (malformed: unpack the original, which
 * reports it), has nothing to replace, or memory or randomness runs out. */
int bnf_skeleton_build(const uint8_t *buf, size_t len, size_t min_len, struct bnf_skeleton *sk);

void bnf_skeleton_free(struct bnf_skeleton *sk);

#endif
