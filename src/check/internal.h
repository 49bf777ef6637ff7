/*
 * What the files of the check room share and nobody else calls: the
 * fixed-tolerance rules, the per-fold check of one pair of chains, and
 * the search for where two models diverge.
 */
#ifndef BNF_CHECK_INTERNAL_H
#define BNF_CHECK_INTERNAL_H

#include "check/errmodel.h"
#include "check/verify.h"

/* 1 when --atol or --rtol was given: graph outputs are then judged by
 * fixed tolerances (tol: the given ones, the dtype's defaults for the
 * other). */
int bnf_verify_fixed_tolerance(const struct bnf_verify_options *opt);
void bnf_verify_tolerance(const struct bnf_verify_options *opt, int dtype,
                          struct bnf_tolerance *tol);

/* The non-finite values of a comparison pass: none, or with allow_nan
 * the same values at the same places. */
int bnf_verify_nonfinite_ok(const struct bnf_err_acc *acc, int allow_nan);

/* How many samples get the float64 reference. */
int bnf_verify_ref_samples(const struct bnf_verify_options *opt);

/* The main graphs of orig and folded, indexed once for every pair
 * checked between them (indexing them for each pair made the check
 * quadratic in the number of folds). NULL when out of memory; free with
 * bnf_fold_sites_free (NULL is fine). Neither model may change meanwhile. */
struct bnf_fold_sites;
struct bnf_fold_sites *bnf_fold_sites_new(const Onnx__ModelProto *orig,
                                          const Onnx__ModelProto *folded);
void bnf_fold_sites_free(struct bnf_fold_sites *fs);

/* Check one fold (fs: the sites of orig and folded): the chain computing
 * result in orig (from the data input of the folded side's layer) against
 * the chain computing it in folded.
 * lowered: the folded side is a lowered BN (Mul + Add). The fold is run
 * in float64 against the exact pair, and in stored precision too when
 * stored is set (or the float64 test cannot run). Fills fc's figures and
 * pass, or its note when the pair cannot be checked. With same non-NULL,
 * two identical chains are not run: *same is set to 1. */
int bnf_check_fold_pair(struct bnf_fold_sites *fs, const Onnx__ModelProto *orig,
                        const Onnx__ModelProto *folded, const char *result, int lowered, int stored,
                        const struct bnf_verify_options *opt, struct bnf_fold_check *fc, int *same,
                        struct bnf_error *err);

/* Append fc to rep->folds (rep takes its strings, also on failure) and
 * count its verdict. */
int bnf_verify_add_fold(struct bnf_verify_report *rep, struct bnf_fold_check *fc,
                        struct bnf_error *err);

/* --compare: every node of b that replaces a chain of a (the same input
 * and output value names, other weights) checked as a fold. */
int bnf_compare_fold_pairs(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                           const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                           struct bnf_error *err);

/* The first value of b, in topological order, that a also computes and
 * whose error against a's float64 value is beyond the error model;
 * fills rep->diverge (found 0 when names do not match or none is). */
int bnf_locate_divergence(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                          const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                          struct bnf_error *err);

#endif
