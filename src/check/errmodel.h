/*
 * The error model of bnfold's proof: how far a folded model may be from
 * the exact result, measured against the original model's own rounding
 * error. Running sums of a comparison, the unit roundoff of each dtype,
 * and the verdicts (the formulas are stated in errmodel.c).
 */
#ifndef BNF_ERRMODEL_H
#define BNF_ERRMODEL_H

#include <stddef.h>

#include "eval/tensor.h"

/* K: the folded model may be at most K times as far from the exact
 * (float64) result as the original is, plus the floor. */
#define BNF_PROOF_K 4.0
/* The floor, in units of rounding (unit roundoff u of the output's dtype)
 * of the output's scale (its RMS): what a correct fold may add where the
 * original happens to be exact. */
#define BNF_PROOF_FLOOR_ULPS 8.0
/* Float64 outputs: the reference is no more precise than the model, so
 * the original's error reads 0 and the floor alone decides; it is then
 * this many units of float64 rounding (2^12 u = 4.5e-13 of the scale). */
#define BNF_PROOF_FLOOR_ULPS_F64 4096.0
/* Per fold, the folded node evaluated in float64 may differ from the exact
 * pair by at most this many units of rounding of its stored type, in
 * each element's own scale sqrt(sum (w'x)^2 + b'^2). */
#define BNF_PROOF_WEIGHT_ULPS 16.0

/* The unit roundoff of a float dtype: 2^-24 float, 2^-11 float16, 2^-8
 * bfloat16, 2^-53 double (and float's for any other dtype). */
double bnf_unit_roundoff(int dtype);

/* "float32", "float16", "bfloat16", "float64": the dtype as the headline
 * names its rounding. */
const char *bnf_rounding_name(int dtype);

/* Running sums of one comparison of x (under test) with r (reference),
 * over the finite elements of both; several tensors (samples) add up. */
struct bnf_err_acc {
	double sum_sq_diff, sum_sq_ref;
	double max_abs, max_rel;
	double max_scaled; /* max over tensors of max|x - r| / rms(r) */
	size_t n, nonfinite_x, nonfinite_r;
	size_t n_nonfinite; /* elements non-finite in either */
	size_t n_unmatched; /* of those, not the same value in both */
	size_t n_bad;       /* finite elements outside the fixed tolerance (when given) */
	int shape_mismatch;
};

/* Fixed tolerances (--atol/--rtol): an element fails when
 * |x - r| > atol * max(1, rms(r)) + rtol * |r|. */
struct bnf_tolerance {
	double atol, rtol;
};

/* Add the comparison of x with r to acc. tol may be NULL (n_bad stays 0).
 * A non-finite value is counted, never compared: it is unmatched unless r
 * holds the same value (NaN for NaN, the same infinity) at that place. */
void bnf_err_acc_add(struct bnf_err_acc *acc, const struct bnf_tensor *x,
                     const struct bnf_tensor *r, const struct bnf_tolerance *tol);

/* The normwise error sqrt(sum (x-r)^2 / sum r^2) (the relative RMS
 * error; its square is the "normalised error"), and the RMS of r. */
double bnf_err_norm(const struct bnf_err_acc *acc);
double bnf_err_rms(const struct bnf_err_acc *acc);

/* The verdict of the error model on one output (or one fold):
 *   folded: the model under test against the float64 reference
 *   original: the original (stored precision) against the same reference
 *   pair: extra samples without a reference, under test against original
 * Each may be NULL / empty. */
struct bnf_err_verdict {
	double ratio;                 /* max of the two below (inf: original exact) */
	double ratio_norm, ratio_max; /* folded / original, normwise and elementwise */
	double limit_norm, limit_max; /* K * original + floor */
	double used;                  /* worst error / its limit: <= 1 passes */
	double floor_norm, floor_max; /* the floors applied */
	int pass;
};

void bnf_err_judge(const struct bnf_err_acc *folded, const struct bnf_err_acc *original,
                   const struct bnf_err_acc *pair, int dtype, struct bnf_err_verdict *v);

#endif
