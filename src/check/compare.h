/*
 * The whole-graph comparison in two halves, so that the original's runs
 * can be made before the folded model exists: the reference half runs a
 * (R in float64 and A in stored precision) and keeps their outputs, the
 * candidate half runs b on the same inputs and judges it against them.
 * bnf_compare_models (verify.h) is the two halves back to back.
 */
#ifndef BNF_CHECK_COMPARE_H
#define BNF_CHECK_COMPARE_H

#include <stddef.h>

#include "check/verify.h"
#include "eval/tensor.h"
#include "util/error.h"
#include "onnx.pb-c.h"

/* Where the reference half stopped, in the order bnf_compare_models has
 * always checked things, so that the candidate half can put b's own
 * failures first where they came first. */
enum bnf_compare_stage {
	BNF_COMPARE_STAGE_NONE = 0,  /* not run */
	BNF_COMPARE_STAGE_OPERATORS, /* the evaluator lacks an operator of a */
	BNF_COMPARE_STAGE_SHAPES,    /* the input shapes could not be chosen */
	BNF_COMPARE_STAGE_OUTPUTS,   /* out of memory naming the outputs */
	BNF_COMPARE_STAGE_SAMPLES,   /* a run of a failed at sample failed_sample */
	BNF_COMPARE_STAGE_DONE,      /* every sample of a ran */
};

/* What the reference half learnt, for the candidate half. Zero it first;
 * bnf_compare_state_free releases it. */
struct bnf_compare_state {
	struct bnf_verify_options opt;
	enum bnf_compare_stage stage;
	int rc;               /* the reference half's failure, when stage < DONE */
	struct bnf_error err; /* its message */
	int failed_sample;    /* STAGE_SAMPLES: the sample whose run failed */
	int samples, ref_samples;
	size_t n_out;
	struct bnf_tensor ***r_outs; /* [ref_samples]: R's outputs */
	struct bnf_tensor ***a_outs; /* [ref_samples]: A's outputs */
};

/* The reference half: check that the evaluator can run a, choose the
 * input shapes (probing a; into rep->inputs), name the outputs, and run
 * R and A side by side on each sample that has the float64 reference
 * (the first opt->ref_samples), keeping their outputs in st.
 * rep is zeroed first. opt is copied (its borrowed pointers must outlive
 * st). A failure is kept in st for bnf_compare_candidate, which reports
 * it in its place; it is also returned. */
int bnf_compare_reference(const Onnx__ModelProto *a, const struct bnf_verify_options *opt,
                          struct bnf_compare_state *st, struct bnf_verify_report *rep);

/* The candidate half: run b on the inputs of every sample (side by side
 * with A on the samples without the float64 reference) and judge it
 * as bnf_compare_models does (which it returns exactly: the same report,
 * status and message as if both halves had run together); a is the
 * reference model as the reference half ran it (another tree of the same
 * model will do), read again only to say where a failing b parts from it
 * and for opt.pair_folds. */
int bnf_compare_candidate(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                          struct bnf_compare_state *st, struct bnf_verify_report *rep,
                          struct bnf_error *err);

/* Free the kept outputs; a zeroed state is allowed. */
void bnf_compare_state_free(struct bnf_compare_state *st);

#endif
