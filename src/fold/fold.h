/*
 * Folding BatchNormalization into the layer in front of it. The driver
 * walks every graph (subgraphs of If/Loop/Scan included), tries each
 * BatchNormalization against its producer until nothing more folds, and
 * records for every one of them what happened and why.
 */
#ifndef BNF_FOLD_H
#define BNF_FOLD_H

#include <stddef.h>

#include "util/error.h"
#include "onnx.pb-c.h"

enum bnf_fold_kind {
	BNF_FOLD_KIND_NONE = 0,
	BNF_FOLD_KIND_CONV,
	BNF_FOLD_KIND_GEMM,
	BNF_FOLD_KIND_MATMUL,
	BNF_FOLD_KIND_CONVTRANSPOSE,
	BNF_FOLD_KIND_AFFINE,  /* a Mul/Add/Sub/Div by a constant folded into its layer */
	BNF_FOLD_KIND_LOWERED, /* a lone BN rewritten as Mul + Add (--lower-bn) */
	BNF_FOLD_KIND_COUNT
};

/* Why a BatchNormalization stays: a closed set, with stable codes that
 * appear in -v output and reports. */
enum bnf_keep_reason {
	BNF_KEEP_REASON_NONE = 0,
	BNF_KEEP_REASON_OTHER_CONSUMER,
	BNF_KEEP_REASON_GRAPH_OUTPUT,
	BNF_KEEP_REASON_NON_CONSTANT,
	BNF_KEEP_REASON_TRAINING_MODE,
	BNF_KEEP_REASON_SPATIAL,
	BNF_KEEP_REASON_SHAPE_MISMATCH,
	BNF_KEEP_REASON_UNKNOWN_SHAPE,
	BNF_KEEP_REASON_UNSUPPORTED_PRODUCER,
	BNF_KEEP_REASON_NO_PRODUCER,
	BNF_KEEP_REASON_UNSUPPORTED_DTYPE,
	BNF_KEEP_REASON_OVERFLOW,
	BNF_KEEP_REASON_PADDING,             /* BN before a layer that pads */
	BNF_KEEP_REASON_NOT_PER_CHANNEL,     /* constant broadcasts along another axis */
	BNF_KEEP_REASON_PASS_THROUGH_UNSAFE, /* Dropout in training mode or with its mask read */
	BNF_KEEP_REASON_ZERO_DIVISOR,        /* Div by a constant holding 0 */
	BNF_KEEP_REASON_NOT_AFFINE,          /* c / x: not an affine map of x */
	BNF_KEEP_REASON_COUNT
};

/* "conv", "gemm", ... and "other-consumer", "graph-output", ... */
const char *bnf_fold_kind_name(enum bnf_fold_kind kind);
const char *bnf_keep_reason_code(enum bnf_keep_reason reason);

/* 1 when a user can act on the reason (an option, the model's export): a
 * Mul/Add/Sub/Div kept for another one is no news. */
int bnf_keep_reason_actionable(enum bnf_keep_reason reason);

/* The fate of one BatchNormalization node (or, in the affine list, of one
 * Mul/Add/Sub/Div by a constant after a layer). */
struct bnf_bn_record {
	char *bn_name;           /* node name, or its first output when unnamed */
	char *bn_output;         /* the node's output value */
	char *op_type;           /* "BatchNormalization", "Mul", "Add", "Sub", "Div" */
	char *result;            /* the value the folded node ends up producing: the
	                            BN's output, the layer's output when the BN was
	                            before the layer, or the output of a later fold
	                            that absorbed this one ("" when kept) */
	char *graph;             /* "" for the main graph, else the path of the
	                            subgraph ("If_0/then_branch") */
	enum bnf_fold_kind kind; /* NONE when kept */
	char *target_op;         /* op type and name of the node folded into */
	char *target_name;
	enum bnf_keep_reason reason;
	char *detail;     /* one-line explanation of the reason */
	double max_scale; /* largest |scale / sqrt(var + eps)| over channels */
	size_t max_scale_channel;
	int verbosity; /* the -v level that lists it: 1 (-v) for every BN and
	                  for a Mul/Add/Sub/Div folded or kept for a reason a
	                  user can act on, 2 (-vv) for the other ones */
};

struct bnf_fold_report {
	struct bnf_bn_record *records; /* one per BatchNormalization */
	size_t n_records;
	size_t n_folded;              /* BatchNormalization nodes folded into a layer */
	size_t n_lowered;             /* BatchNormalization nodes rewritten as Mul + Add */
	struct bnf_bn_record *affine; /* Mul/Add/Sub/Div after a layer: folded (kind
	                                 AFFINE) or kept with a reason */
	size_t n_affine;
	size_t n_affine_folded;
	size_t n_changed; /* folds and lowerings of any kind: 0 means the
	                     model was not touched */
	size_t by_kind[BNF_FOLD_KIND_COUNT];
	size_t nodes_removed;
	size_t initializers_removed;
};

struct bnf_external;

struct bnf_fold_options {
	int lower_bn;                  /* rewrite a BN nothing absorbs as Mul + Add (--lower-bn) */
	int freeze_initializer_inputs; /* an initializer also listed as a graph input
	                                  is a constant, and one a fold consumes leaves
	                                  the inputs (--freeze-initializer-inputs);
	                                  below IR version 4 that is always so */
	struct bnf_external *ext;      /* external data of the model and the spill
	                                  file for rewritten tensors (external.h);
	                                  NULL: external tensors are refused */
};

/* Fold every foldable BatchNormalization of model in place and describe
 * each one in rep (which the caller zeroes first and frees with
 * bnf_fold_report_free). A malformed model (a node input that names no
 * tensor, BatchNormalization parameters of different lengths, unreadable
 * tensor data) fails with err naming the node or tensor; the model may then
 * be partly changed and must not be written. */
int bnf_fold_model(Onnx__ModelProto *model, const struct bnf_fold_options *opt,
                   struct bnf_fold_report *rep, struct bnf_error *err);

void bnf_fold_report_free(struct bnf_fold_report *rep);

/* 0 when bnf_fold_model certainly leaves model as it is (no
 * BatchNormalization, no Mul/Add/Sub/Div in a graph with a layer it could
 * fold into), else 1: a cheap look that lets the check start on the
 * original before the fold. */
int bnf_fold_may_change(const Onnx__ModelProto *model);

#endif
