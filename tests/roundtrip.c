/*
 * Round-trip test of our ONNX schema: every model given on the command line
 * (written by the real onnx library) must come back byte for byte after
 * protobuf-c unpacks and packs it again. A mismatch means a field number,
 * type or packed option in proto/onnx.proto differs from the ONNX format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int roundtrip_one(const char *path)
{
	struct bnf_error err;
	uint8_t *bytes = NULL, *packed = NULL;
	size_t len = 0, packed_len, i;
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
	packed_len = onnx__model_proto__get_packed_size(m);
	packed = malloc(packed_len ? packed_len : 1);
	if (!packed || onnx__model_proto__pack(m, packed) != packed_len) {
		printf("FAIL %s: cannot pack\n", path);
		goto out;
	}
	if (packed_len != len || memcmp(packed, bytes, len) != 0) {
		for (i = 0; i < len && i < packed_len && packed[i] == bytes[i]; i++)
			;
		printf("FAIL %s: repacked %zu bytes differ from the %zu read, first at offset %zu\n",
		       path, packed_len, len, i);
		goto out;
	}
	printf("ok   %s (%zu bytes)\n", path, len);
	ok = 1;
out:
	if (m)
		onnx__model_proto__free_unpacked(m, NULL);
	free(packed);
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
	printf("roundtrip: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
