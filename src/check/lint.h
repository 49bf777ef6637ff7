/*
 * The deploy gate's lint: looks at an exported graph for the
 * BatchNormalization and Dropout pathologies that make a model unfit to
 * ship (training mode, untrained or broken statistics, folds not done,
 * folded weights that float16/bfloat16 cannot hold) and returns them as
 * findings with stable codes. It never changes the model and never prints.
 */
#ifndef BNF_LINT_H
#define BNF_LINT_H

#include <stddef.h>

#include "util/error.h"
#include "fold/fold.h"
#include "onnx.pb-c.h"

/* The finding codes: stable names, listed in bnfold(1). */
enum bnf_finding_code {
	BNF_FINDING_CODE_BN_TRAINING_MODE = 0,
	BNF_FINDING_CODE_BN_UNTRAINED_STATS,
	BNF_FINDING_CODE_BN_BAD_VARIANCE,
	BNF_FINDING_CODE_BN_NONFINITE_PARAM,
	BNF_FINDING_CODE_BN_ZERO_EPSILON,
	BNF_FINDING_CODE_BN_UNFOLDED,
	BNF_FINDING_CODE_FP16_OVERFLOW,
	BNF_FINDING_CODE_FP16_UNDERFLOW,
	BNF_FINDING_CODE_DROPOUT_TRAINING_MODE,
	BNF_FINDING_CODE_COUNT
};

/* "bn-training-mode", ...; "?" for a value out of range. */
const char *bnf_finding_code_name(enum bnf_finding_code code);

/* The code named name: returns 0 and sets *code, or -1 when unknown. */
int bnf_finding_code_parse(const char *name, enum bnf_finding_code *code);

struct bnf_finding {
	enum bnf_finding_code code;
	char *op;      /* op type of the node */
	char *node;    /* node name, or its first output when unnamed */
	char *graph;   /* "" for the main graph, else the subgraph's path */
	char *message; /* one line, without the node name */
};

struct bnf_lint_report {
	struct bnf_finding *findings; /* in graph order */
	size_t n_findings;
};

struct bnf_external;

struct bnf_lint_options {
	/* Folds already applied to the model being linted (the report of
	 * bnf_fold_model on it), or NULL: the weights they produced get the
	 * float16/bfloat16 check too. Borrowed. */
	const struct bnf_fold_report *folded;
	/* External data of the model (external.h), or NULL when it has none:
	 * parameters and weights kept outside the file are read through it. */
	struct bnf_external *ext;
	/* The serialized model when model is exactly its unpacking and has no
	 * external tensors, or NULL: the fold probe's copy is unpacked from
	 * these bytes, borrowing its tensors' data from them (model.h), instead
	 * of packing the model first. bytes_file_backed: they map a file. */
	const uint8_t *bytes;
	size_t size;
	int bytes_file_backed;
	/* When not NULL (and folded is NULL), receives the fold probe's
	 * report: what bnf_fold_model would do to the model. */
	struct bnf_fold_report *probe_report;
	/* The probe reads initializers listed as graph inputs as constants
	 * (--freeze-initializer-inputs; below IR version 4 it always does). */
	int freeze_initializer_inputs;
};

/* Lint model (unchanged; a copy is folded to learn which BatchNormalization
 * nodes could still fold; after bnfold's own fold, which runs to a fixed
 * point, its report says it without a copy) into rep, which the caller
 * zeroes first and frees with bnf_lint_report_free. Fails only on a model
 * too malformed to analyse (err names the node or tensor) or on memory. */
int bnf_lint_model(const Onnx__ModelProto *model, const struct bnf_lint_options *opt,
                   struct bnf_lint_report *rep, struct bnf_error *err);

void bnf_lint_report_free(struct bnf_lint_report *rep);

struct bnf_graph;

#endif
