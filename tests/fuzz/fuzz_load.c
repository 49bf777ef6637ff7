/*
 * Fuzz target 1: loading a model (wire check, unpack, validation), the
 * work bnfold does on every input before it trusts any of it.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Onnx__ModelProto *m = bnf_fuzz_load(data, size);

	if (m)
		bnf_fuzz_release(m, data);
	return 0;
}
