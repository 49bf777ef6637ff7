/*
 * The loading step of every fuzz target (see fuzz_common.h), kept in step
 * with bnf_model_read_ext in src/model.c and the validation main.c runs.
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>

#include "external.h"
#include "validate.h"

static int is_external(Onnx__TensorProto *t, void *arg)
{
	(void)arg;
	return bnf_tensor_is_external(t);
}

Onnx__ModelProto *bnf_fuzz_load(const uint8_t *data, size_t size)
{
	struct bnf_error err;
	Onnx__ModelProto *m = NULL;

	if (size == 0 || bnf_validate_wire(data, size, "fuzz", &err) != BNF_OK)
		return NULL;
	m = onnx__model_proto__unpack(NULL, size, data);
	if (!m)
		return NULL;
	/* A buffer has no folder to read external data from: refused, as the
	 * CLI refuses it on standard input. */
	if (!m->graph || bnf_model_for_each_tensor(m, is_external, NULL) != 0 ||
	    bnf_validate_model(m, "fuzz", &err) != BNF_OK) {
		onnx__model_proto__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

void bnf_fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz finding: %s: %s\n", what, detail ? detail : "");
	abort();
}
