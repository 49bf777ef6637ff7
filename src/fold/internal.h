/*
 * Shared between the fold driver (fold.c) and the layer folds
 * (fold_layers.c, fold_convtranspose.c): the state of one fold run, the BatchNormalization being
 * folded as a per-channel affine map, and the outcome of one attempt.
 */
#ifndef BNF_FOLD_INTERNAL_H
#define BNF_FOLD_INTERNAL_H

#include <stddef.h>

#include "fold/fold.h"
#include "fold/target.h"
#include "graph/graph.h"
#include "util/strmap.h"

struct fold_released {
	Onnx__GraphProto *g; /* graph the name belongs to */
	char *name;          /* owned copy */
};

struct fold_ctx {
	const struct bnf_fold_options *opt;
	struct bnf_fold_report *rep;
	struct bnf_error *err;
	struct bnf_strmap new_names; /* names this run created (keys in owned) */
	char **owned;
	size_t n_owned;
	struct fold_released *released; /* values that may have lost their last reader */
	size_t n_released;
	const unsigned char *stale;     /* per node index of the current sweep: 1 when a
	                                   fold of this sweep removed or changed the node,
	                                   so the graph index no longer describes it */
	const char *renamed_from;       /* the output name the last bnf_fold_rename_output
	                                   replaced (owned by ctx), or NULL */
	int frozen_inputs;              /* initializers listed as graph inputs are
	                                   constants (IR < 4, or the option) */
	int list_initializers;          /* IR < 4: every main-graph initializer must
	                                   also be a graph input, new ones too */
	long long ir_version;           /* of the model, for messages */
	int settled;                    /* the affine nodes a BN waits for stay: it
	                                   may fold into the layer after it */
	struct fold_computed *computed; /* values computed from constants in this
	                                   sweep (constants.c) */
	size_t n_computed;
	struct bnf_strmap computed_index; /* their names -> index */
};

/* A BatchNormalization in eval mode as y = s * x + t per channel, in double. */
struct fold_bn {
	Onnx__NodeProto *node;
	size_t channels;
	double *s;
	double *t;
	Onnx__NodeProto *output_node; /* the node that takes over the BN's output
	                                 name once folded: the layer (NULL), or the
	                                 last layout node between (layout.c) */
	int input_rank;               /* rank of the BN's input, -1 unknown (set by
	                                 the layout walk) */
};

/* The outcome of one layer fold: reason NONE means it folded. */
struct fold_outcome {
	enum bnf_keep_reason reason;
	char detail[320];
	enum bnf_fold_kind kind;
	Onnx__NodeProto *target;       /* node that now produces the BN's output */
	Onnx__NodeProto *also_removed; /* a node between layer and BN folded away, or NULL */
	Onnx__NodeProto *pass[8];      /* eval-mode identities (Identity, Dropout) between
	                                  the layer and the folded node, removed with it */
	size_t n_pass;
	const char *result;       /* value the folded node produces when it is not the
	                             folded node's own output (BN before a layer) */
	int rewritten;            /* folded, and the BN node itself became the
	                             bias Add of an N-D MatMul (not removed) */
	Onnx__NodeProto *blocker; /* kept: the Mul/Add/Sub/Div after a layer that
	                             must fold before this BN can (its own reason
	                             then becomes this one's) */
};

/* Set the outcome to "kept" with a formatted explanation; returns BNF_OK so
 * a fold can `return bnf_fold_keep(...)`. */
int bnf_fold_keep(struct fold_outcome *out, enum bnf_keep_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Remember that name (read in gi, defined there or in an enclosing graph)
 * may have lost its last reader. */
int bnf_fold_release(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name);

/* A fresh value name based on base, unused in gi, its enclosing graphs and
 * this run. Owned by ctx. NULL when memory runs out (err set). */
const char *bnf_fold_unique_name(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                 const char *base);

/* Give node input `slot` the values vals (count of them, shape dims/rank)
 * stored as dtype. The constant currently there is rewritten in place when
 * nothing else can see it (an initializer or Constant of this graph, read
 * only by this node, reached without Identity); otherwise a new
 * initializer with a unique name is added and the input rewired, leaving
 * the old constant to whoever else reads it. slot == node->n_input appends
 * a new input (named after base). */
int bnf_fold_store_constant(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                            size_t slot, int dtype, const int64_t *dims, size_t rank,
                            const double *vals, size_t count, const char *base);

/* bnf_fold_store_constant for a layer's folded bias: a new constant is named
 * after the layer's weight (input 1) with "_bias" appended. */
int bnf_fold_store_bias(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                        size_t slot, int dtype, const int64_t *dims, size_t rank,
                        const double *vals, size_t count, const Onnx__NodeProto *layer);

/* As bnf_fold_store_constant, with the values already stored: raw (len bytes of
 * dtype, malloc'd) is taken over in every case, also on failure. */
int bnf_fold_store_raw(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                       size_t slot, int dtype, const int64_t *dims, size_t rank, uint8_t *raw,
                       size_t len, const char *base);

/* Make node produce `name` as its first output (the BN's output). */
int bnf_fold_rename_output(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                           const char *name);

/* Keep (reason non-constant) because the value `name`, the `role` input of
 * node, is not a constant; when it is an initializer listed as a graph input,
 * the reason says so and names --freeze-initializer-inputs. Returns BNF_OK. */
int bnf_fold_keep_not_constant(struct fold_ctx *ctx, const struct bnf_graph *gi,
                               const Onnx__NodeProto *node, const char *role, const char *name,
                               struct fold_outcome *out);

/* Resolve name to a constant as bnf_graph_constant does, or else, when it
 * is computed only from constants by operators the evaluator runs (see
 * bnf_node_is_constant_op), to the value the evaluator computes for it (cached
 * for the sweep; ref->synthesized is set: never rewrite it in place).
 * Returns 1, 0 when not a constant, negative when memory runs out. */
int bnf_fold_constant(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name,
                      struct bnf_const_ref *ref);

/* Forget the values bnf_fold_constant computed (the graph is about to change). */
void bnf_fold_constants_forget(struct fold_ctx *ctx);

/* Index g (parent: the enclosing graph's index, or NULL) as the run reads
 * it: with the main graph's frozen_inputs set from ctx. */
int bnf_fold_index(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__GraphProto *g,
                   const struct bnf_graph *parent, int opset);

/* Decode a constant input of a node: 1 and the values when it is a constant
 * of a foldable dtype, 0 (with a keep outcome set) otherwise, negative on a
 * hard error. *tensor (may be NULL) receives the TensorProto. With vals
 * NULL nothing is decoded: *count is the element count of its dims. */
int bnf_fold_read_constant(struct fold_ctx *ctx, const struct bnf_graph *gi,
                           const Onnx__NodeProto *node, size_t slot, const char *role,
                           double **vals, size_t *count, const Onnx__TensorProto **tensor,
                           struct fold_outcome *out);

/* Record a fold that succeeded: of kind, into target (the node that now
 * produces what the folded nodes did). */
void bnf_fold_done(struct fold_outcome *out, enum bnf_fold_kind kind, Onnx__NodeProto *target);

/* A layer's constants as every fold reads them: its weight (input 1, role
 * w_role, decoded into *w unless w is NULL) and, when input 2 is given,
 * its bias or C (role b_role, decoded into *b). Returns as
 * bnf_fold_read_constant: 1 when both are constants (or there is no
 * bias), 0 with out saying why not, negative on a hard error. */
int bnf_fold_read_layer(struct fold_ctx *ctx, const struct bnf_graph *gi,
                        const Onnx__NodeProto *layer, const char *w_role, double **w, size_t *nw,
                        const Onnx__TensorProto **wt, const char *b_role, double **b, size_t *nb,
                        const Onnx__TensorProto **bt, struct fold_outcome *out);

/* Largest |v| of vals after rounding to dtype would overflow: returns 1 and
 * the offending index when some value does not fit in dtype. */
int bnf_fold_overflows(const double *vals, size_t count, int dtype, size_t *where);

/* Integer and float attributes with their defaults. */
long long bnf_fold_attr_int(const Onnx__NodeProto *node, const char *name, long long def);
double bnf_fold_attr_float(const Onnx__NodeProto *node, const char *name, double def);

/* The layer folds. Each returns BNF_OK with out->reason NONE when it
 * folded, BNF_OK with a reason when the BN is kept, negative on error. */
int bnf_fold_into_conv(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                       Onnx__NodeProto *conv, struct fold_outcome *out);
int bnf_fold_into_conv_transpose(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                                 Onnx__NodeProto *convt, struct fold_outcome *out);
int bnf_fold_into_gemm(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                       Onnx__NodeProto *gemm, struct fold_outcome *out);
int bnf_fold_into_matmul(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                         Onnx__NodeProto *producer, struct fold_outcome *out);

/* The before-layer folds (fold_before.c), rows of the target table: a BN
 * in front of a Conv, or of a Gemm / 2-D MatMul. */
int bnf_fold_before_conv(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                         Onnx__NodeProto *conv, struct fold_outcome *out);
int bnf_fold_before_matrix(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                           Onnx__NodeProto *layer, struct fold_outcome *out);

/* The producer of name in this graph, or NULL when there is none or when
 * a fold of the current sweep changed it (the index is stale for it: the
 * next sweep sees it fresh). */
Onnx__NodeProto *bnf_fold_producer(const struct fold_ctx *ctx, const struct bnf_graph *gi,
                                   const char *name);

/* 1 if node (of gi's graph) was changed or removed by a fold of this sweep. */
int bnf_fold_node_stale(const struct fold_ctx *ctx, const struct bnf_graph *gi,
                        const Onnx__NodeProto *node);

/* Walk back from value *x through the eval-mode identities (Identity;
 * Dropout whose mask nobody reads and whose training_mode is absent or a
 * constant false) to the node producing it. Each value passed must have
 * one reader and not be a graph output. Fills out->pass and *x (the
 * layer's output) and returns the producer found (NULL when none), or
 * NULL with a keep outcome set when a pass-through node is unsafe. */
Onnx__NodeProto *bnf_fold_walk_back(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                    const char **x, struct fold_outcome *out);

/* The rank of value name when the graph proves it (bnf_graph_value_rank),
 * or -1. */
int bnf_fold_value_rank(const struct bnf_graph *gi, const char *name);

/* Point node input slot at name, releasing the old value. */
int bnf_fold_set_input(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                       size_t slot, const char *name);

/* Drop node inputs from index n on, releasing them. */
/* Turn node (whose inputs 0 and 1 are already what the sum reads) into a
 * plain Add: inputs past the second dropped, attributes freed. */
int bnf_fold_become_add(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node);

int bnf_fold_truncate_inputs(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                             size_t n);

/* Replace a node's op type (the tree owns the string). */
int bnf_fold_set_op_type(struct fold_ctx *ctx, Onnx__NodeProto *node, const char *op_type);

/* A BatchNormalization whose output is read by one Conv, Gemm or MatMul:
 * fold it into the layer's input side (fold_before.c). Returns BNF_OK with
 * out->reason NONE when folded; *tried is 0 when no such layer reads it. */
int bnf_fold_bn_before_layer(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                             struct fold_outcome *out, int *tried);

/* A Mul, Add, Sub or Div by a constant after a layer (bnf_fold_affine.c):
 * *tried is 0 when node is not such a pattern (nothing to report), else
 * out says whether it folded or why not. */
int bnf_fold_affine(struct fold_ctx *ctx, struct bnf_graph *gi, Onnx__NodeProto *node,
                    struct fold_outcome *out, int *tried);

/* The keep outcome of a BN whose input comes from node, a Mul, Add, Sub
 * or Div that is not a MatMul's bias: names what the node combines, or,
 * when it is an affine node after a layer, sets out->blocker to it. */
int bnf_fold_keep_behind_affine(struct fold_ctx *ctx, const struct bnf_graph *gi,
                                Onnx__NodeProto *node, struct fold_outcome *out);

/* 1 for Transpose, Unsqueeze, Squeeze and Reshape: nodes that only move
 * values, which a BN's channel can be followed through (layout.c). */
int bnf_fold_is_layout_op(const Onnx__NodeProto *node);

/* A BN whose input comes from layout node first: follow its channel back
 * to the layer and fold into it when the channel is the layer's output
 * channel, or say why not (layout.c). */
int bnf_fold_through_layout(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                            Onnx__NodeProto *first, struct fold_outcome *out);

/* Is Dropout node p the identity (eval mode, mask unread)? 1, or 0 with a
 * keep outcome (walk.c). */
int bnf_fold_dropout_is_identity(const struct bnf_graph *gi, const Onnx__NodeProto *p,
                                 struct fold_outcome *out);

/* The values of a small integer constant (a plain or computed one): their
 * count, or -1 when name is not such a constant. */
int bnf_fold_int_values(struct fold_ctx *ctx, const struct bnf_graph *gi, const char *name,
                        long long *v, int max);

/* Give the BN's output name to the node that now produces its value: the
 * layer, or bn->output_node when layout nodes lie between. */
int bnf_fold_take_output(struct fold_ctx *ctx, struct bnf_graph *gi, const struct fold_bn *bn,
                         Onnx__NodeProto *layer);

/* Rewrite a BN nothing absorbs as Mul + Add (bnf_fold_affine.c): the BN node
 * becomes the Add (keeping its name and output) and a new Mul is inserted
 * in front of it. Returns BNF_OK with out->reason NONE when lowered. */
int bnf_fold_lower_bn(struct fold_ctx *ctx, struct bnf_graph *gi, struct fold_bn *bn,
                      struct fold_outcome *out);

/* Remove the values released during the run (ctx->released) of g and its
 * subgraphs that nothing reads any more (cleanup.c). */
int bnf_fold_cleanup_graph(struct fold_ctx *ctx, Onnx__GraphProto *g,
                           const struct bnf_graph *parent, int opset, int depth);

/* Merge the initializers of g and its subgraphs that this run created
 * equal (type, dims, bytes) into the first of them (dedupe.c). */
int bnf_fold_share_equal(struct fold_ctx *ctx, Onnx__GraphProto *g);

/* Set (or add) a float attribute of node. */
int bnf_fold_set_float_attr(struct fold_ctx *ctx, Onnx__NodeProto *node, const char *name, float v);

#endif
