/*
 * The state shared by the files that choose the check's input shapes
 * (input_shapes.c, input_facts.c, input_probe.c): one struct chooser per
 * bnf_inputs_choose call, and the steps each file contributes. Private to
 * src/check.
 */
#ifndef BNF_INPUT_CHOOSE_H
#define BNF_INPUT_CHOOSE_H

#include <stddef.h>
#include <stdint.h>

#include "check/inputs.h"
#include "graph/graph.h"

/* A dim no step has set yet. */
#define BNF_CHOOSE_UNKNOWN (-1)

/* What an unknown dim becomes once the batch is set: a spatial dim of an
 * image-like input, or any other. */
enum bnf_choose_group {
	BNF_CHOOSE_GROUP_NONE = 0,
	BNF_CHOOSE_GROUP_SPATIAL,
	BNF_CHOOSE_GROUP_OTHER,
	BNF_CHOOSE_GROUP_COUNT
};

struct chooser {
	const Onnx__ModelProto *model;        /* borrowed */
	const Onnx__GraphProto *g;            /* its main graph */
	struct bnf_graph gi;                  /* index of g */
	struct bnf_input_shapes *out;         /* the result being filled */
	const char *(*sym)[BNF_MAX_RANK];     /* per input and axis: the declared
	                                         dim_param (borrowed), or NULL */
	int *decl_rank;                       /* per input: declared rank, or -1 */
	unsigned char (*group)[BNF_MAX_RANK]; /* per input and axis */
	/* Per group: the size tried first, the least, and the divisor the
	 * model's strides ask for (1: none). */
	int64_t preferred[BNF_CHOOSE_GROUP_COUNT];
	int64_t minimum[BNF_CHOOSE_GROUP_COUNT];
	int64_t stride[BNF_CHOOSE_GROUP_COUNT];
	struct bnf_error *err;
};

/* Give dim axis of input i the value v (when it is still unknown), and
 * every unknown dim declared with the same symbol too; origin (or NULL)
 * says what in the model gave it. */
void bnf_choose_settle(struct chooser *c, size_t i, int axis, int64_t v, enum bnf_dim_source source,
                       const char *origin);

/* The shape a graph input declares, or NULL. */
const Onnx__TensorShapeProto *bnf_choose_declared_shape(const Onnx__ValueInfoProto *vi);

/* Unknown dims of input s. */
int bnf_choose_count_unknown(const struct bnf_input_shape *s);

/* 1 when node is one of the n default-domain operators in ops; the macro
 * takes an array. */
int bnf_choose_op_in(const Onnx__NodeProto *node, const char *const *ops, size_t n);
#define BNF_CHOOSE_OP_IN(node, ops) bnf_choose_op_in((node), (ops), sizeof(ops) / sizeof((ops)[0]))

/* 1 when name is a constant of the main graph (bnf_graph_constant). */
int bnf_choose_constant(const struct chooser *c, const char *name, struct bnf_const_ref *ref);

/* input_facts.c: what the model says about input i's unknown dims:
 * another declaration of it, and the constants it meets unchanged; and
 * what exporter metadata says about every input. */
void bnf_choose_facts_declared(struct chooser *c, size_t i);
void bnf_choose_facts_consumers(struct chooser *c, size_t i);
void bnf_choose_facts_metadata(struct chooser *c);

/* input_probe.c: the sizes of the groups' unknown dims, written into
 * them. With probe (evaluator options), shapes-only runs choose among
 * candidates; without, the preferred sizes stay. */
void bnf_choose_sizes(struct chooser *c, const struct bnf_eval_options *probe);

#endif
