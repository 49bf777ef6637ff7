/*
 * The equivalence check: runs models with bnfold's own eval-mode evaluator
 * and compares their outputs. Whole graph: the original and the folded
 * model on the same seeded inputs. Per fold: the original layer + BN pair
 * and the folded node on random inputs, each against a float64 reference.
 */
#ifndef BNF_VERIFY_H
#define BNF_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "fold/fold.h"
#include "check/inputs.h"
#include "onnx.pb-c.h"

struct bnf_external;

struct bnf_verify_options {
	const struct bnf_input_spec *inputs; /* borrowed */
	int samples;
	uint64_t seed;
	int threads;
	double atol, rtol;              /* negative: the defaults for each output's dtype */
	int allow_nan;                  /* NaN/inf at the same places in both is no failure */
	size_t max_bytes;               /* memory budget of one evaluation (0: none) */
	const struct bnf_external *ext; /* external tensor data (external.h) */
};

/* The default tolerances for a dtype: 1e-5 / 1e-4 for float and double,
 * 1e-3 / 1e-2 for float16, 1e-2 / 5e-2 for bfloat16. */
void bnf_default_tolerance(int dtype, double *atol, double *rtol);

struct bnf_output_check {
	char *name;
	int dtype;
	double max_abs, max_rel, norm_err;
	size_t n_elements, n_bad;
	size_t nan_a, nan_b; /* non-finite values in each run */
	int pass;
};

struct bnf_fold_check {
	char *bn_name;
	char *op_type;                 /* NULL for a BatchNormalization, else "Mul", "Add", ... */
	char *target;                  /* "Conv 'name'" */
	double folded_abs, folded_rel; /* folded node vs float64 reference */
	double orig_abs, orig_rel;     /* original pair vs float64 reference */
	int pass;
	char *note; /* why it was not checked, or NULL */
};

struct bnf_verify_report {
	int whole_graph;    /* 1 when the whole-graph comparison ran */
	char fallback[512]; /* why it did not, when it did not */
	int samples;
	struct bnf_output_check *outputs;
	size_t n_outputs;
	struct bnf_fold_check *folds;
	size_t n_folds;
	size_t n_unchecked;      /* folds the per-fold check could not run */
	double max_abs, max_rel; /* worst over outputs (or folds) */
	int pass;
	struct bnf_input_shapes inputs; /* the whole-graph check's input shapes and
	                                   how they were chosen (n == 0 when it
	                                   did not get that far) */
};

void bnf_verify_report_free(struct bnf_verify_report *rep);

/* Run a (the reference) and b on the same inputs and compare every graph
 * output, the inputs shaped by bnf_inputs_choose (probing a). Fails with
 * BNF_ERR_UNSUPPORTED when the check cannot run: the evaluator lacks an
 * operator of either model (err names it), or a's inputs cannot be made or
 * a cannot be evaluated at the shapes used (err says "check could not run
 * at input shapes ...: " and why); rep->inputs then still holds the
 * shapes. BNF_ERR_UNSUPPORTED is the status to answer with per-fold
 * checking. Fails with BNF_ERR_INPUT for --shape/--dim/--input arguments
 * naming nothing or a file that does not fit, and when the models' outputs
 * differ in count. rep is zeroed first. */
int bnf_compare_models(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                       const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                       struct bnf_error *err);

/* Check each fold of frep: the BatchNormalization and its layer as they are
 * in orig against the node that replaced them in folded. Appends to
 * rep->folds and updates rep->pass. */
int bnf_verify_folds(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                     const struct bnf_fold_report *frep, const struct bnf_verify_options *opt,
                     struct bnf_verify_report *rep, struct bnf_error *err);

#endif
