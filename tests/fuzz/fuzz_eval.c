/*
 * Fuzz target 3: the evaluator on a fuzzed graph. The model is loaded as
 * the CLI loads it, its input shapes are chosen as the check chooses them
 * (shapes-only runs included), and it runs on seeded random inputs, once in
 * its own types and once promoted to float64, under a strict memory budget
 * (the fuzz build also lowers BNF_MAX_ELEMENTS: every tensor stays small).
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "check/inputs.h"

#define FUZZ_EVAL_BUDGET ((size_t)64 << 20)

static void run_once(const Onnx__ModelProto *m, const struct bnf_named_tensors *in, int promote)
{
	struct bnf_eval_options eo;
	struct bnf_tensor **outs = NULL;
	struct bnf_error err;
	size_t i;

	memset(&eo, 0, sizeof(eo));
	eo.threads = 1;
	eo.promote_double = promote;
	eo.max_bytes = FUZZ_EVAL_BUDGET;
	if (bnf_eval_run(m, &eo, in->n, (const char *const *)in->names,
	                 (struct bnf_tensor *const *)in->tensors, &outs, &err) != BNF_OK)
		return;
	for (i = 0; i < m->graph->n_output; i++)
		bnf_tensor_free(outs[i]);
	free(outs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Onnx__ModelProto *m = bnf_fuzz_load(data, size);
	struct bnf_input_spec spec;
	struct bnf_input_shapes shapes;
	struct bnf_named_tensors in;
	struct bnf_eval_options probe;
	struct bnf_error err;
	char op[64], node[64];

	if (!m)
		return 0;
	memset(&spec, 0, sizeof(spec));
	memset(&shapes, 0, sizeof(shapes));
	memset(&in, 0, sizeof(in));
	memset(&probe, 0, sizeof(probe));
	probe.threads = 1;
	probe.max_bytes = FUZZ_EVAL_BUDGET;
	/* The shapes as the check chooses them: what the model says, then
	 * shapes-only runs of the evaluator. */
	if (!bnf_eval_find_unsupported(m, op, sizeof(op), node, sizeof(node)) &&
	    bnf_inputs_choose(m, &spec, &probe, &shapes, &err) == BNF_OK &&
	    bnf_inputs_make_shaped(&shapes, 1, 0, &in, &err) == BNF_OK) {
		run_once(m, &in, 0);
		run_once(m, &in, 1);
	}
	bnf_named_tensors_free(&in);
	bnf_input_shapes_free(&shapes);
	bnf_fuzz_release(m, data);
	return 0;
}
