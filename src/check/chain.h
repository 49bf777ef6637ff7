/*
 * Small models cut out of a big one for the per-fold check: the chain of
 * nodes between a layer's input and a fold's result, with its constants
 * as initializers, an input shape that reads every weight, and the
 * "squares" twin whose output is each element's rounding scale. Private to
 * the check room.
 */
#ifndef BNF_CHECK_CHAIN_H
#define BNF_CHECK_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "graph/graph.h"
#include "onnx.pb-c.h"

struct bnf_external;

/* Where a value is produced: the graph index of its graph (with the
 * indexes of the enclosing graphs below it). */
struct bnf_pair_site {
	struct bnf_graph index[66]; /* index[depth], parents below it */
	int depth;
	Onnx__NodeProto *node; /* the node producing the wanted value */
};

/* Find, in g and its subgraphs, the node producing output (with op type
 * op_type when given) and index every graph on the path. Returns 1 when
 * found (release the site with bnf_chain_release_site), 0 otherwise. */
int bnf_chain_find_site(Onnx__GraphProto *g, int opset, const char *output, const char *op_type,
                        struct bnf_pair_site *site, int depth);
void bnf_chain_release_site(struct bnf_pair_site *site);

/* The same search many times over one graph: bnf_chain_index_main indexes
 * g as the site's main graph once (1, or 0 when it cannot: nothing to
 * release); bnf_chain_find_site_in searches it and its subgraphs, indexing
 * only the subgraphs on the path, which bnf_chain_release_subsites
 * releases before the next search. bnf_chain_release_site releases the
 * main graph's index last. Each search of bnf_chain_find_site indexes the
 * whole graph again: per fold, that made the check quadratic in the
 * number of folds. */
int bnf_chain_index_main(Onnx__GraphProto *g, int opset, struct bnf_pair_site *site);
int bnf_chain_find_site_in(struct bnf_pair_site *site, const char *output, const char *op_type);
void bnf_chain_release_subsites(struct bnf_pair_site *site);

/* A model holding the chain of nodes that computes output from data in
 * the site's graph (walking back through each node's first non-constant
 * input, at most 16 nodes), every constant an initializer, data a graph
 * input of dtype and shape dims. The initializers are shallow copies of
 * the source's tensors: free with bnf_chain_model_free, and do not let it
 * outlive src. NULL when there is no such chain or memory ran out. */
Onnx__ModelProto *bnf_chain_model(const Onnx__ModelProto *src, struct bnf_pair_site *site,
                                  const char *data, const char *output, int dtype, int rank,
                                  const int64_t *dims);
void bnf_chain_model_free(Onnx__ModelProto *m);

/* A valid input shape for a Conv, ConvTranspose, Gemm or MatMul layer,
 * small enough to be quick but reading every weight, its dtype (that of
 * the weight), and which dim may grow to hold several samples at once
 * (*batch_dim, -1 when none may). Returns 0, or -1 when none is found.
 * layer's weight is looked up in gi by name: layer may be a chain's copy.
 * A Conv gets, per spatial axis, the shortest length at which an output
 * position reads every tap from the input, the first and the last read
 * the padding (when there is some), and every tap is read at two output
 * positions at least; a ConvTranspose 3 per axis, or more where its pads
 * would crop a tap away; 3 rows (times the samples) for Gemm and MatMul:
 * the cost of the check is the weights times the positions.
 * (layer_shape.c) */
int bnf_chain_layer_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *layer,
                                int *dtype, int *rank, int64_t *dims, int *batch_dim);

/* A dilated Conv as one residue class of itself: with unit stride and pads
 * that are whole multiples of the dilation d, the outputs at positions
 * r, r + d, r + 2d, ... of an axis read only the inputs at r, r + d, ...:
 * they are the same Conv with dilation 1 and pads / d over those inputs.
 * So every weight is tested, borders included, at a d times shorter axis.
 * (auto_pad VALID: no pads at all.) When before and after each hold one
 * Conv and their attributes are the same (a fold never changes them; one
 * that did is checked as it is), both are rewritten so. Returns after's
 * Conv when rewritten, else NULL. */
Onnx__NodeProto *bnf_chain_undilate(Onnx__ModelProto *before, Onnx__ModelProto *after);

/* Set the dims of a chain model's input (its rank stays). */
void bnf_chain_set_input_dims(Onnx__ModelProto *m, int rank, const int64_t *dims);

/* The input of a lowered BN's Mul: [1, C, 3, ...] with C the length of
 * its constant [C, 1, ..., 1]. */
int bnf_chain_lowered_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *mul,
                                  int *dtype, int *rank, int64_t *dims);

/* The squares twin of a chain model made of Conv, ConvTranspose, Gemm,
 * MatMul, Mul and Add nodes: the same nodes on float32 values, every
 * constant w replaced by w^2 + n^2 (n: the smallest normal number of w's
 * dtype, below which rounding is absolute), Gemm's alpha and beta squared.
 * Run on the squared input, its output is sum (w x)^2 + b^2 per element:
 * the scale of the rounding error of the weights. Its terms are all
 * positive, so float32 holds it to a few units in 10^-6, plenty for a
 * scale. Returns BNF_OK and *out, or BNF_OK and NULL when the chain holds
 * another operator or a non-float constant. Free the result with
 * bnf_chain_squares_free. */
int bnf_chain_squares(const Onnx__ModelProto *chain, const struct bnf_external *ext,
                      Onnx__ModelProto **out, struct bnf_error *err);
void bnf_chain_squares_free(Onnx__ModelProto *m);

/* Protobuf helpers: a deep copy of any message (pack and unpack; NULL
 * when out of memory), two messages packing to the same bytes (0 also
 * when out of memory), appending to a repeated field (0 or -1). */
void *bnf_chain_copy_message(const void *msg, const ProtobufCMessageDescriptor *desc);
int bnf_chain_same_message(const void *x, const void *y); /* same packed bytes */
int bnf_chain_append(void ***arr, size_t *n, void *item);

#endif
