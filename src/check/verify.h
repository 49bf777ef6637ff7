/*
 * The equivalence check: runs models with bnfold's own eval-mode evaluator
 * and judges them by the error model of errmodel.h. Whole graph: the
 * original in float64 (the exact reference), the original and the folded
 * model in their stored precision, on the same seeded inputs. Per fold:
 * the original layer + BN pair and the folded node on random inputs, in
 * the same terms. When it fails it says where: the first fold that fails
 * its own check, or the first intermediate value where two models diverge.
 */
#ifndef BNF_VERIFY_H
#define BNF_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "fold/fold.h"
#include "check/errmodel.h"
#include "check/inputs.h"
#include "onnx.pb-c.h"

struct bnf_external;

struct bnf_verify_options {
	const struct bnf_input_spec *inputs; /* borrowed */
	int samples;
	uint64_t seed;
	int threads;
	double atol, rtol;              /* negative: not given (the error model decides);
	                                   given: fixed tolerances on graph outputs */
	int allow_nan;                  /* NaN/inf at the same places in both is no failure */
	size_t max_bytes;               /* memory budget of one evaluation (0: none) */
	const struct bnf_external *ext; /* external tensor data (external.h) */
	int ref_samples;                /* samples that also get the float64 reference
	                                   (0: the default, 1; at most samples) */
	int pair_folds;                 /* bnf_compare_models: check every node of b that
	                                   replaces a chain of a as a fold (--compare) */
};

/* The default tolerances for a dtype when only one of atol and rtol is
 * given: 1e-5 / 1e-4 for float and double, 1e-3 / 1e-2 for float16,
 * 1e-2 / 5e-2 for bfloat16. */
void bnf_default_tolerance(int dtype, double *atol, double *rtol);

/* Bytes the whole-graph check needs for the weights of both models,
 * with the float64 copy of the reference's. */
size_t bnf_compare_bytes(const Onnx__ModelProto *a, const Onnx__ModelProto *b);

struct bnf_output_check {
	char *name;
	int dtype;
	/* Folded (b) against original (a), both in stored precision, over all
	 * samples: what --atol/--rtol judge. */
	double max_abs, max_rel, norm_err;
	size_t n_elements, n_bad;
	size_t nan_a, nan_b; /* non-finite values in each run */
	int pass;
	/* Against the float64 reference, on the samples that have it. */
	int ref_samples;
	double exact_abs, exact_norm;       /* the folded model: max |B-R|, normalised */
	double original_abs, original_norm; /* the original: max |A-R|, normalised */
	struct bnf_err_verdict verdict;     /* the error model's (errmodel.h) */
	int fixed_tolerance;                /* the pass is --atol/--rtol's */
	int nonfinite_only;                 /* failed only for NaN/inf the original has too, at the
	                                       same places; its finite values pass */
};

struct bnf_fold_check {
	char *bn_name;
	char *op_type;                  /* NULL for a BatchNormalization, else "Mul", "Add", ... */
	char *target;                   /* "Conv 'name'" */
	int dtype;                      /* stored type of the folded weights */
	double folded_abs, folded_rel;  /* folded node vs float64 reference */
	double orig_abs, orig_rel;      /* original pair vs float64 reference */
	double folded_norm, orig_norm;  /* normalised errors against the reference */
	int stored;                     /* the stored-precision test ran (below) */
	struct bnf_err_verdict verdict; /* stored precision, as for outputs */
	/* The folded node in float64: its worst element's distance from the
	 * exact pair, in units of rounding of the stored type at that
	 * element's scale (negative: not measured). */
	double weight_ulps;
	/* The input shape the two chains ran at (every sample in it), with
	 * the Conv's dilation read as 1 when undilated (chain.h). */
	int input_rank;
	int64_t input_dims[BNF_MAX_RANK];
	int undilated;
	int pass;
	char *note; /* why it was not checked, or NULL */
};

/* Where two models part ways: the first value, in the candidate's
 * topological order, whose error against the reference's float64 value is
 * beyond the error model. */
struct bnf_divergence {
	int found;
	char value[256];
	char node[256]; /* the candidate's node producing it */
	char op[64];
	int dtype;
	size_t position, n_values; /* its place among the values compared */
	int discrete;              /* made by a discrete choice (TopK, NonMaxSuppression,
	                              ArgMax, a comparison, rounding, a cast to integers)
	                              from inputs that agreed: ties to the last bit may
	                              choose differently, so it proves no fold wrong */
	struct bnf_err_verdict verdict;
	double exact_abs, original_abs;
};

struct bnf_verify_report {
	int whole_graph;    /* 1 when the whole-graph comparison ran */
	char fallback[512]; /* why it did not, when it did not */
	int inconclusive;   /* it ran, but its outputs first differ at a
	                       discrete choice (diverge.discrete): each fold
	                       is judged on its own instead */
	int second_failed;  /* bnf_compare_models failed because the second
	                       model could not run where the first ran */
	int samples;
	int ref_samples;     /* samples with the float64 reference */
	int fixed_tolerance; /* graph outputs judged by --atol/--rtol */
	struct bnf_output_check *outputs;
	size_t n_outputs;
	struct bnf_fold_check *folds;
	size_t n_folds;
	size_t n_unchecked;      /* folds the per-fold check could not run */
	double max_abs, max_rel; /* worst over outputs (or folds), folded vs original */
	double ratio;            /* worst error-model ratio over outputs (or folds) */
	double used;             /* worst share of its limit an error uses (<= 1 passes) */
	double exact_abs;        /* worst max |B - R| over outputs (or folds) */
	double weight_ulps;      /* worst over folds (negative: none measured) */
	int ratio_dtype;         /* the dtype whose rounding `ratio` is measured in */
	long first_failed_fold;  /* index in folds, -1 when none failed */
	struct bnf_divergence diverge;
	int pass;
	struct bnf_input_shapes inputs; /* the whole-graph check's input shapes and
	                                   how they were chosen (n == 0 when it
	                                   did not get that far) */
};

void bnf_verify_report_free(struct bnf_verify_report *rep);

/* Run a (the reference) and b on the same inputs, shaped by
 * bnf_inputs_choose (probing a), and judge every graph output by the
 * error model (or by fixed tolerances when given). A failure is traced to
 * the first intermediate value where they diverge (rep->diverge) when
 * their value names match. With opt->pair_folds, every node of b that
 * replaces a chain of a (same input and output names, other weights) is
 * also checked as a fold (rep->folds). Fails with BNF_ERR_UNSUPPORTED when
 * the check cannot run: the evaluator lacks an operator of either model
 * (err names it), or a's inputs cannot be made or a cannot be evaluated
 * at the shapes used (err says "check could not run at input shapes ...:
 * " and why); rep->inputs then still holds the shapes. BNF_ERR_UNSUPPORTED
 * is the status to answer with per-fold checking. Fails with
 * BNF_ERR_INPUT for --shape/--dim/--input arguments naming nothing or a
 * file that does not fit, and when the models' outputs differ in count.
 * rep is zeroed first. */
int bnf_compare_models(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                       const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                       struct bnf_error *err);

/* Check each fold of frep: the BatchNormalization and its layer as they are
 * in orig against the node that replaced them in folded. Appends to
 * rep->folds and updates rep->pass and rep->first_failed_fold. */
int bnf_verify_folds(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                     const struct bnf_fold_report *frep, const struct bnf_verify_options *opt,
                     struct bnf_verify_report *rep, struct bnf_error *err);

#endif
