/*
 * Private to the executor (eval.c): the names a node's subgraphs read from
 * the graphs around them. Such a read is an input of the node in all but
 * name: the value must be computed before the node runs and kept until it
 * has run.
 */
#ifndef BNF_EVAL_SCOPE_H
#define BNF_EVAL_SCOPE_H

#include <stddef.h>

#include "onnx.pb-c.h"

/* A growable list of borrowed names. */
struct bnf_name_list {
	const char **names;
	size_t n, cap;
};

void bnf_name_list_free(struct bnf_name_list *l);

/* Append to l, once each, the names that the subgraphs of node (at any
 * depth) read but define nowhere inside themselves: in node inputs and as
 * graph outputs. Returns 0, or -1 when memory runs out. */
int bnf_scope_outer_reads(const Onnx__NodeProto *node, struct bnf_name_list *l);

#endif
