/*
 * The graph index: who produces each value, how many readers it has,
 * which names are initializers, graph inputs and outputs, and where a
 * constant really comes from (initializer, Constant node, through Identity
 * nodes, in this graph or an enclosing one). Folds consult it before they
 * change anything.
 */
#ifndef BNF_GRAPH_H
#define BNF_GRAPH_H

#include <stddef.h>

#include "util/error.h"
#include "onnx.pb-c.h"
#include "io/model.h"
#include "util/strmap.h"

struct bnf_graph {
	Onnx__GraphProto *g;            /* borrowed */
	const struct bnf_graph *parent; /* enclosing graph of a subgraph, or NULL */
	int opset;                      /* default-domain opset of the model */
	struct bnf_strmap producer;     /* value name -> index of its node */
	struct bnf_strmap initializer;  /* initializer name -> index */
	struct bnf_strmap uses;         /* value name -> number of node inputs
	                                   reading it, nested subgraphs included */
	struct bnf_strmap inputs;       /* graph input names */
	struct bnf_strmap outputs;      /* graph output names */
	struct bnf_graph_synth *synth;  /* tensors made for Constant nodes that
	                                   hold value_float(s) or value_int(s) */
	int frozen_inputs;              /* 1: an initializer also listed as a graph
	                                   input is a constant (IR version < 4, where
	                                   every initializer is listed and none can
	                                   be overridden, or the user said so). 0 by
	                                   default; a subgraph's index takes its
	                                   parent's; set it on the main graph's
	                                   index after bnf_graph_build. */
};

/* Index g. parent is the index of the enclosing graph (for outer-scope
 * names) or NULL. The index borrows g's strings: rebuild it after the graph
 * changes. Release with bnf_graph_release even on failure. */
int bnf_graph_build(struct bnf_graph *gi, Onnx__GraphProto *g, const struct bnf_graph *parent,
                    int opset, struct bnf_error *err);
void bnf_graph_release(struct bnf_graph *gi);

/* The node producing name in this graph (not in enclosing ones), or NULL. */
Onnx__NodeProto *bnf_graph_producer(const struct bnf_graph *gi, const char *name, size_t *index);

/* Readers of name among node inputs of this graph and its subgraphs. */
size_t bnf_graph_uses(const struct bnf_graph *gi, const char *name);

/* 1 if name is an output of this graph. */
int bnf_graph_is_output(const struct bnf_graph *gi, const char *name);

/* Where a constant lives, as found by bnf_graph_constant. */
struct bnf_const_ref {
	const Onnx__TensorProto *tensor; /* the value (borrowed) */
	const struct bnf_graph *owner;   /* graph holding it */
	int is_initializer;              /* 1: owner->g->initializer[index] */
	size_t index;                    /* initializer index or Constant node index */
	int through_identity;            /* reached through one or more Identity nodes */
	int synthesized;                 /* made from value_float(s)/value_int(s):
	                                    not part of the tree, never rewrite it */
};

/* Resolve name to a constant tensor: an initializer that is not also a
 * graph input (those can be overridden at run time; unless frozen_inputs),
 * or the value of a
 * Constant node (`value`, or value_float(s)/value_int(s) as a tensor the
 * index owns), possibly through Identity nodes, looking outward through
 * enclosing graphs. Returns 1 and fills ref, or 0 if not a constant. */
int bnf_graph_constant(const struct bnf_graph *gi, const char *name, struct bnf_const_ref *ref);

/* The tree's own tensor behind ref, for a fold that rewrites a constant
 * only it reads: the initializer, or the value attribute of the Constant
 * node. NULL for a synthesized tensor (not part of the tree). */
Onnx__TensorProto *bnf_graph_constant_in_tree(const struct bnf_const_ref *ref);

/* A value computed only from constants, as found by its structure
 * (consts.c): the nodes of its subgraph in an order that runs, each after
 * what it reads, and the constants it starts from (names as read). */
#define BNF_CONST_PLAN_NODES  64
#define BNF_CONST_PLAN_LEAVES 128
struct bnf_const_plan {
	Onnx__NodeProto *nodes[BNF_CONST_PLAN_NODES];
	size_t n_nodes;
	const char *leaf_names[BNF_CONST_PLAN_LEAVES];
	const Onnx__TensorProto *leaves[BNF_CONST_PLAN_LEAVES];
	size_t n_leaves;
};

/* 1 for an operator such a subgraph may hold: a pure function of its
 * inputs that the evaluator runs (Identity, Reshape, Unsqueeze, Squeeze,
 * Flatten, Transpose, Concat, Expand, Tile, Cast, Gather, Slice, Shape,
 * Split, Range, ConstantOfShape, Add, Sub, Mul, Div, Neg, Sqrt,
 * Reciprocal, Abs, Pow) and Constant itself; never one with a subgraph. */
int bnf_node_is_constant_op(const Onnx__NodeProto *node);

/* 1 and the plan when name (of this graph) is computed from constants by
 * such operators in this graph (plain constants give a plan of no node),
 * 0 when it is not or the subgraph passes the plan's bounds. */
int bnf_graph_plan_constant(const struct bnf_graph *gi, const char *name,
                            struct bnf_const_plan *plan);

/* bnf_graph_plan_constant without the plan. */
int bnf_graph_is_computed_constant(const struct bnf_graph *gi, const char *name);

/* The rank of value name when the graph proves it (rank.c): a declared
 * shape or a constant's dims, or its producer's rule: Flatten and Gemm give
 * 2, Shape 1, Reshape the length of its shape input, Squeeze/Unsqueeze the
 * input's rank less/plus their known axes, Transpose the length of perm,
 * MatMul, Gather and Expand theirs, elementwise operators the largest input
 * rank, and the operators that keep their input's rank keep it. -1 when
 * unknown. */
int bnf_graph_value_rank(const struct bnf_graph *gi, const char *name);

/* The element count of a 1-D value known from the structure (a constant,
 * Shape(x) of a known rank, a Concat of known lengths, Gather with known
 * indices, Unsqueeze of a scalar, Cast/Identity of those), or -1. */
int bnf_graph_value_length(const struct bnf_graph *gi, const char *name);

/* The values of a small integer constant (axes, perm, a shape): their
 * count (at most max), or -1 when name is not such a constant. */
int bnf_graph_int_values(const struct bnf_graph *gi, const char *name, long long *v, int max);

/* The same for a tensor: int64 or int32 values, inline (not external). */
int bnf_tensor_int_values(const Onnx__TensorProto *t, long long *v, int max);

/* 1 when name resolves (here or in an enclosing graph) to an initializer
 * that is also listed as a graph input and is therefore not a constant
 * (frozen_inputs is 0): what a user may feed at run time instead. */
int bnf_graph_is_overridable(const struct bnf_graph *gi, const char *name);

/* The graph (gi's or an enclosing one) whose initializer or node defines
 * name, or NULL. */
Onnx__GraphProto *bnf_graph_owner(const struct bnf_graph *gi, const char *name);

/* 1 if name is a value, initializer or graph input of this graph or an
 * enclosing one. */
int bnf_graph_name_taken(const struct bnf_graph *gi, const char *name);

/* The shape of value name as declared in value_info, graph inputs or
 * outputs (this graph or enclosing ones): returns the rank (>= 0) and
 * copies up to max dims (-1 for a symbolic or unknown dim), or -1 when
 * no shape is declared. */
int bnf_graph_value_shape(const struct bnf_graph *gi, const char *name, int64_t *dims, int max);

/* Drop the value_info entries describing name (a value that is gone). */
void bnf_graph_remove_value_info(Onnx__GraphProto *g, const char *name);

/* Drop the graph input called name (an initializer that is gone). */
void bnf_graph_remove_input(Onnx__GraphProto *g, const char *name);

/* A new ValueInfoProto: a tensor named name of element type dtype and
 * fixed dims (rank < 0: no shape). NULL when out of memory. */
Onnx__ValueInfoProto *bnf_graph_value_info(const char *name, int dtype, int rank,
                                           const int64_t *dims);

/* List initializer t among the graph inputs, with its element type and
 * dims (IR version < 4 wants every initializer there). Returns 0 or -1 on
 * allocation failure. */
int bnf_graph_append_input_for(Onnx__GraphProto *g, const Onnx__TensorProto *t);

/* Append to repeated protobuf-c fields (the tree's arrays are malloc'd,
 * so realloc is safe). Return 0 or -1 on allocation failure. */
int bnf_graph_append_initializer(Onnx__GraphProto *g, Onnx__TensorProto *t);
int bnf_node_append_input(Onnx__NodeProto *node, const char *name);

/* The path of subgraph sub of node inside the graph at path ("" for the
 * main graph), as reports spell it: "If_0/then_branch". */
void bnf_subgraph_path(char *buf, size_t len, const char *path, const Onnx__NodeProto *node,
                       const Onnx__GraphProto *sub);

/* A depth-first visit of every node of a graph and of its subgraphs: visit
 * is called for each node (in order) with the index of the graph holding
 * it and that graph's path, and the node's subgraphs are walked right
 * after it, indexed with the holding graph as parent. The walk stops at the
 * first non-zero return; subgraphs nested more than 64 deep fail. */
struct bnf_walk {
	int (*visit)(struct bnf_graph *gi, Onnx__NodeProto *node, const char *path, void *arg);
	void *arg;
	int opset;
	struct bnf_error *err;
};

int bnf_graph_walk(const struct bnf_walk *walk, Onnx__GraphProto *g, const struct bnf_graph *parent,
                   const char *path);

/* The subgraphs held by a node's attributes: calls fn for each. */
int bnf_node_for_each_subgraph(Onnx__NodeProto *node, int (*fn)(Onnx__GraphProto *sub, void *arg),
                               void *arg);

/* 1 when BatchNormalization bn of the graph indexed by gi runs in training
 * mode: is_test=0 before opset 7, training_mode=1 from opset 14, or an
 * optional running-statistics output present (read or not). why receives
 * a clause saying which. Shared with the --train-mode=eval pass. */
int bnf_bn_training_mode(const struct bnf_graph *gi, const Onnx__NodeProto *bn, char *why,
                         size_t len);

/* 1 when Dropout node runs in training mode: is_test=0 (the default)
 * before opset 7, or a constant true training_mode input from opset 12. */
int bnf_dropout_training_mode(const struct bnf_graph *gi, const Onnx__NodeProto *node, char *why,
                              size_t len);

/* The attribute called name of node, or NULL. */
const Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *node, const char *name);

/* Nodes and initializers of the model, subgraphs included. */
void bnf_model_count(const Onnx__ModelProto *model, size_t *nodes, size_t *initializers);

/* The integer attribute called name of node, or def when it is absent. */
long long bnf_node_attr_int(const Onnx__NodeProto *node, const char *name, long long def);

/* 1 for a node of op_type in the default ONNX domain. */
int bnf_node_is(const Onnx__NodeProto *node, const char *op_type);

/* The default-domain opset version the model imports (1 if none). */
int bnf_model_opset(const Onnx__ModelProto *model);

#endif
