/*
 * Round-trip test of our ONNX schema: every model given on the command line
 * (written by the real onnx library) must come back byte for byte after
 * protobuf-c unpacks and packs it again. A mismatch means a field number,
 * type or packed option in proto/onnx.proto differs from the ONNX format.
 * The same holds for the unpacking that borrows tensor bytes from the
 * buffer (model.c), which must give the very same tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "io/model.h"

static int borrowed_models;

/* Pack m and compare with the bytes it came from; 1 when equal. */
static int same_bytes(const char *path, const char *how, const Onnx__ModelProto *m,
                      const uint8_t *bytes, size_t len)
{
	size_t packed_len = onnx__model_proto__get_packed_size(m), i;
	uint8_t *packed = malloc(packed_len ? packed_len : 1);
	int ok = 0;

	if (!packed || onnx__model_proto__pack(m, packed) != packed_len) {
		printf("FAIL %s: cannot pack (%s)\n", path, how);
	} else if (packed_len != len || memcmp(packed, bytes, len) != 0) {
		for (i = 0; i < len && i < packed_len && packed[i] == bytes[i]; i++)
			;
		printf("FAIL %s: repacked %zu bytes (%s) differ from the %zu read, first at "
		       "offset %zu\n",
		       path, packed_len, how, len, i);
	} else {
		ok = 1;
	}
	free(packed);
	return ok;
}

/* The borrowing unpack (with a low threshold, so that small fixtures
 * borrow too) must pack to the same bytes. */
static int roundtrip_borrowing(const char *path, const uint8_t *bytes, size_t len)
{
	int borrowed = 0, ok;
	Onnx__ModelProto *m = bnf_model_unpack_borrowing(bytes, len, 0, 32, &borrowed);

	if (!m) {
		printf("FAIL %s: the borrowing unpack refuses it\n", path);
		return 0;
	}
	ok = same_bytes(path, "borrowing", m, bytes, len);
	borrowed_models += borrowed;
	onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
	if (borrowed)
		bnf_mem_unborrow(bytes);
	return ok;
}

static int roundtrip_one(const char *path)
{
	struct bnf_error err;
	uint8_t *bytes = NULL;
	size_t len = 0;
	Onnx__ModelProto *m = NULL;
	int ok = 0;

	memset(&err, 0, sizeof(err));
	if (bnf_read_file(path, &bytes, &len, &err) != BNF_OK) {
		printf("FAIL %s: %s\n", path, err.msg);
		goto out;
	}
	m = onnx__model_proto__unpack(NULL, len, bytes);
	if (!m) {
		printf("FAIL %s: protobuf-c cannot unpack it\n", path);
		goto out;
	}
	if (!same_bytes(path, "plain", m, bytes, len) || !roundtrip_borrowing(path, bytes, len))
		goto out;
	printf("ok   %s (%zu bytes)\n", path, len);
	ok = 1;
out:
	if (m)
		onnx__model_proto__free_unpacked(m, NULL);
	free(bytes);
	return ok;
}

int main(int argc, char **argv)
{
	int i, passed = 0, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: roundtrip MODEL.onnx...\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (roundtrip_one(argv[i]))
			passed++;
		else
			failed++;
	}
	printf("roundtrip: %d passed, %d failed; %d borrowed their tensors' bytes\n", passed,
	       failed, borrowed_models);
	/* Most models have raw_data: a borrowing unpack that never borrows is
	 * a fault, not a pass. */
	if (borrowed_models == 0) {
		printf("FAIL: no model borrowed its tensors' bytes\n");
		return 1;
	}
	return failed ? 1 : 0;
}
