/*
 * Operator lookup: the one place that reads the family tables (basic, nn,
 * shape). Operators and their helpers never call back into it.
 */
#include "eval/op.h"

#include <string.h>

const struct bnf_op *bnf_op_find(const char *op_type, int opset)
{
	const struct bnf_op *const tables[] = {bnf_ops_nn, bnf_ops_basic, bnf_ops_shape};
	const struct bnf_op *best = NULL;
	const struct bnf_op *row;
	size_t i;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		for (row = tables[i]; row->op_type; row++) {
			if (strcmp(row->op_type, op_type) != 0 || row->min_opset > opset)
				continue;
			if (!best || row->min_opset > best->min_opset)
				best = row;
		}
	}
	return best;
}
