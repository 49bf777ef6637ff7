/*
 * Private to the executor (eval.c, eval_subgraph.c): the run of one graph,
 * its table of named values, and the steps that index, execute and free
 * it. A subgraph is a run whose values may come from the runs around it.
 */
#ifndef BNF_EVAL_RUN_H
#define BNF_EVAL_RUN_H

#include <stddef.h>

#include "eval/op.h"
#include "util/strmap.h"

/* Who frees a value's tensor: caller inputs are borrowed; initializers
 * may be views of the model's raw data (only the struct is ours). */
enum value_owner { value_owner_none, value_owner_all, value_owner_shell };

/* One named value of the graph: a graph input, an initializer, a node
 * output, or a value of an enclosing graph that this one reads. */
struct value {
	const char *name;     /* borrowed from the model */
	struct bnf_tensor *t; /* NULL until produced, and again once freed */
	int owned;            /* an enum value_owner */
	int producer;         /* index of the producing node, or -1 */
	int graph_input;
	int graph_output;
	int persistent;              /* an initializer of a subgraph: kept between runs */
	int unknown;                 /* shapes_only: its shape is right, its values are not */
	const struct bnf_run *outer; /* the enclosing run that holds the value, or NULL */
	int outer_idx;               /* its index there */
	size_t uses;                 /* node inputs reading it, subgraph reads included */
	size_t uses_left;            /* of those, the ones still to run */
};

struct bnf_run {
	const Onnx__GraphProto *graph;
	const struct bnf_run *parent; /* the run of the enclosing graph, or NULL */
	int depth;                    /* subgraph nesting, 0 for the main graph */
	int reusable;                 /* a subgraph: may run many times */
	struct value *values;
	size_t n_values;
	struct bnf_strmap names; /* value name -> index in values */
	/* Node i reads in_val[in_off[i] .. in_off[i+1]): its inputs, then the
	 * enclosing values its subgraphs read. */
	int *in_val;
	size_t *in_off;
	int *out_val;
	size_t *out_off;
	size_t *order; /* node indices in execution order */
	int opset;
	int promote;
	int shapes_only; /* see bnf_eval_options */
	int threads;
	size_t live_bytes;
	size_t max_bytes;
	struct bnf_error *err;
	const struct bnf_external *ext;
};

struct bnf_subgraph {
	struct bnf_run r;
};

/* The executor's steps that eval_subgraph.c shares (eval.c). */

/* Index of a value by name, or -1. */
int bnf_run_lookup(const struct bnf_run *r, const char *name);
/* Store t (owned as `owned` says) as the value of v, counting its bytes. */
int bnf_run_assign(struct bnf_run *r, struct value *v, struct bnf_tensor *t, int owned);
/* In a promote_double run, replace v's float tensor by a float64 one. */
int bnf_run_promote(struct bnf_run *r, struct value *v);
/* Forget v's tensor (freed when ours). */
void bnf_run_drop(struct bnf_run *r, struct value *v);
/* Bytes of t's buffer (0 for NULL). */
size_t bnf_run_tensor_bytes(const struct bnf_tensor *t);
/* Index r->graph: values, what each node reads, the order to run. The
 * main graph (not reusable) binds its inputs by name on the way. */
int bnf_run_index(struct bnf_run *r, size_t n_inputs, const char *const *names,
                  struct bnf_tensor *const *inputs);
/* Run every node once. */
int bnf_run_execute(struct bnf_run *r);
/* Move or copy the graph outputs into res (room for every output). */
int bnf_run_collect(struct bnf_run *r, struct bnf_tensor **res);
/* Free everything the run holds (not r itself). */
void bnf_run_free(struct bnf_run *r);

#endif
