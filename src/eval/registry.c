/*
 * Operator lookup: the one place that reads the family tables. Operators
 * and their helpers never call back into it. It also lists what the
 * tables hold (bnfold --list-ops), so the list cannot drift from the code.
 */
#include "eval/op.h"

#include <stdlib.h>
#include <string.h>

static const struct bnf_op *const tables[] = {
    bnf_ops_exec, bnf_ops_nn, bnf_ops_basic, bnf_ops_shape, bnf_ops_logic, bnf_ops_math,
};

static int row_covers(const struct bnf_op *row, int opset)
{
	return row->min_opset <= opset && (row->max_opset == 0 || opset <= row->max_opset);
}

const struct bnf_op *bnf_op_find(const char *op_type, int opset)
{
	const struct bnf_op *best = NULL;
	const struct bnf_op *row;
	size_t i;

	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		for (row = tables[i]; row->op_type; row++) {
			if (strcmp(row->op_type, op_type) != 0 || !row_covers(row, opset))
				continue;
			if (!best || row->min_opset > best->min_opset)
				best = row;
		}
	}
	return best;
}

static int range_order(const void *pa, const void *pb)
{
	const struct bnf_op_range *a = pa, *b = pb;
	int c = strcmp(a->op_type, b->op_type);

	return c ? c : (a->first > b->first) - (a->first < b->first);
}

size_t bnf_op_ranges(struct bnf_op_range **out)
{
	const struct bnf_op *row;
	struct bnf_op_range *r;
	size_t n = 0, i, k;

	*out = NULL;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		for (row = tables[i]; row->op_type; row++)
			n++;
	r = calloc(n + 1, sizeof(*r));
	if (!r)
		return 0;
	k = 0;
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		for (row = tables[i]; row->op_type; row++) {
			r[k].op_type = row->op_type;
			r[k].first = row->min_opset;
			r[k].last = row->max_opset;
			k++;
		}
	}
	qsort(r, n, sizeof(*r), range_order);
	/* An open row followed by a later row of the same operator ends
	 * where that one begins. */
	for (k = 0; k + 1 < n; k++)
		if (strcmp(r[k].op_type, r[k + 1].op_type) == 0 &&
		    (r[k].last == 0 || r[k].last >= r[k + 1].first))
			r[k].last = r[k + 1].first - 1;
	*out = r;
	return n;
}
