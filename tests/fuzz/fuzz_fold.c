/*
 * Fuzz target 2: load, fold, pack, reload. A model the loader accepts must
 * fold or fail cleanly; a folded model must pack to bytes that unpack
 * again, validate, and pack to the same bytes (protobuf-c's own habit).
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#include "fold/fold.h"
#include "util/mem.h"
#include "io/validate.h"

static void check_reload(const Onnx__ModelProto *m)
{
	size_t len = onnx__model_proto__get_packed_size(m), again_len;
	uint8_t *buf = malloc(len ? len : 1), *again = NULL;
	Onnx__ModelProto *back;
	struct bnf_error err;

	if (!buf)
		return;
	if (onnx__model_proto__pack(m, buf) != len)
		bnf_fuzz_fail("pack", "packed size differs from get_packed_size");
	back = onnx__model_proto__unpack(&bnf_large_allocator, len, buf);
	if (!back)
		bnf_fuzz_fail("reload", "the folded model does not unpack");
	if (bnf_validate_model(back, "folded", &err) != BNF_OK)
		bnf_fuzz_fail("reload", err.msg);
	again_len = onnx__model_proto__get_packed_size(back);
	again = malloc(again_len ? again_len : 1);
	if (again) {
		onnx__model_proto__pack(back, again);
		if (again_len != len || memcmp(again, buf, len) != 0)
			bnf_fuzz_fail("reload", "unpack + pack changed the bytes");
	}
	free(again);
	onnx__model_proto__free_unpacked(back, &bnf_large_allocator);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Onnx__ModelProto *m = bnf_fuzz_load(data, size);
	struct bnf_fold_options opt;
	struct bnf_fold_report rep;
	struct bnf_error err;

	if (!m)
		return 0;
	memset(&opt, 0, sizeof(opt));
	memset(&rep, 0, sizeof(rep));
	if (bnf_fold_model(m, &opt, &rep, &err) == BNF_OK && rep.n_folded > 0)
		check_reload(m);
	bnf_fold_report_free(&rep);
	bnf_fuzz_release(m, data);
	return 0;
}
