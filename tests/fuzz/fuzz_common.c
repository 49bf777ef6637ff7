/*
 * The loading step of every fuzz target (see fuzz_common.h), kept in step
 * with bnf_model_read_ext in src/model.c and the validation main.c runs.
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/external.h"
#include "util/mem.h"
#include "io/model.h"
#include "io/validate.h"

static int is_external(Onnx__TensorProto *t, void *arg)
{
	(void)arg;
	return bnf_tensor_is_external(t);
}

Onnx__ModelProto *bnf_fuzz_load(const uint8_t *data, size_t size)
{
	struct bnf_error err;
	Onnx__ModelProto *m;
	int borrowed;

	if (size == 0 || bnf_validate_wire(data, size, "fuzz", &err) != BNF_OK)
		return NULL;
	/* A lower threshold than the CLI's, so that small inputs borrow too. */
	m = bnf_model_unpack_borrowing(data, size, 0, 32, &borrowed);
	if (!m)
		return NULL;
	/* A buffer has no folder to read external data from: refused, as the
	 * CLI refuses it on standard input. */
	if (!m->graph || bnf_model_for_each_tensor(m, is_external, NULL) != 0 ||
	    bnf_validate_model(m, "fuzz", &err) != BNF_OK) {
		bnf_fuzz_release(m, data);
		return NULL;
	}
	return m;
}

void bnf_fuzz_release(Onnx__ModelProto *m, const uint8_t *data)
{
	onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
	bnf_mem_unborrow(data);
}

void bnf_fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz finding: %s: %s\n", what, detail ? detail : "");
	abort();
}
