/*
 * The human lines of a run on stderr, each starting "bnfold: ": what
 * folded or stayed and why, the check's figures, the summary and the
 * deploy gate's findings. Rendered from the reports after the run.
 */
#include "cli/human.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/format.h"

void cli_say(const char *fmt, ...)
{
	va_list ap;
	fputs("bnfold: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* One line per BatchNormalization; without -v only the kept ones, since
 * every node that stays must come with its reason. */
void cli_print_records(const struct bnf_fold_report *rep, int verbose)
{
	size_t i;
	for (i = 0; i < rep->n_records; i++) {
		const struct bnf_bn_record *r = &rep->records[i];
		char where[600] = "";
		if (!verbose && r->kind != BNF_FOLD_KIND_NONE)
			continue;
		if (r->graph[0])
			snprintf(where, sizeof(where), " [in %s]", r->graph);
		if (r->kind == BNF_FOLD_KIND_LOWERED)
			cli_say("BatchNormalization '%s': lowered to %s '%s' and Add '%s' (%s)%s",
			        r->bn_name, r->target_op, r->target_name, r->bn_name,
			        bnf_fold_kind_name(r->kind), where);
		else if (r->kind != BNF_FOLD_KIND_NONE)
			cli_say("BatchNormalization '%s': folded into %s '%s' (%s)%s", r->bn_name,
			        r->target_op, r->target_name, bnf_fold_kind_name(r->kind), where);
		else
			cli_say("BatchNormalization '%s': kept (%s): %s%s", r->bn_name,
			        bnf_keep_reason_code(r->reason), r->detail, where);
	}
	/* Mul/Add/Sub/Div by constants after a layer: only with -v. */
	for (i = 0; verbose && i < rep->n_affine; i++) {
		const struct bnf_bn_record *r = &rep->affine[i];
		char where[600] = "";
		if (r->verbosity > verbose)
			continue; /* -vv */
		if (r->graph[0])
			snprintf(where, sizeof(where), " [in %s]", r->graph);
		if (r->kind != BNF_FOLD_KIND_NONE)
			cli_say("%s '%s': folded into %s '%s' (%s)%s", r->op_type, r->bn_name,
			        r->target_op, r->target_name, bnf_fold_kind_name(r->kind), where);
		else
			cli_say("%s '%s': kept (%s): %s%s", r->op_type, r->bn_name,
			        bnf_keep_reason_code(r->reason), r->detail, where);
	}
}

void cli_print_summary(const struct bnf_fold_report *rep, size_t in_size, size_t out_size)
{
	char kinds[160] = "", a[32], b[32];
	size_t k, used = 0;

	for (k = 1; k < BNF_FOLD_KIND_COUNT; k++) {
		if (!rep->by_kind[k] || k == BNF_FOLD_KIND_AFFINE || k == BNF_FOLD_KIND_LOWERED)
			continue;
		used += (size_t)snprintf(
		    kinds + used, sizeof(kinds) - used, "%s%s %zu", used ? ", " : " (",
		    bnf_fold_kind_name((enum bnf_fold_kind)k), rep->by_kind[k]);
		if (used >= sizeof(kinds))
			break;
	}
	if (used && used + 1 < sizeof(kinds))
		strcat(kinds, ")");
	used = strlen(kinds);
	if (rep->n_lowered)
		used += (size_t)snprintf(kinds + used, sizeof(kinds) - used,
		                         ", lowered %zu to Mul + Add", rep->n_lowered);
	if (rep->n_affine_folded && used < sizeof(kinds))
		snprintf(kinds + used, sizeof(kinds) - used, " and %zu affine node%s",
		         rep->n_affine_folded, rep->n_affine_folded == 1 ? "" : "s");
	bnf_format_size((double)in_size, a, sizeof(a));
	bnf_format_size((double)out_size, b, sizeof(b));
	cli_say("folded %zu of %zu BatchNormalization nodes%s; %zu nodes and %zu initializers "
	        "removed; %s -> %s",
	        rep->n_folded, rep->n_records, kinds, rep->nodes_removed, rep->initializers_removed,
	        a, b);
}

/* How an error compares with the original's own: "1.2x the original's
 * float32 rounding error (limit 4x)", or, where the original is exact (a
 * float64 model is its own reference), its share of the floor. */
static void describe_ratio(const struct bnf_err_verdict *v, int dtype, const char *whose, char *buf,
                           size_t len)
{
	if (isfinite(v->ratio))
		snprintf(buf, len, "%.2gx %s %s rounding error (limit %gx)", v->ratio, whose,
		         bnf_rounding_name(dtype), BNF_PROOF_K);
	else
		snprintf(buf, len, "%.2g of the %s floor (%s result is exact)", v->used,
		         bnf_rounding_name(dtype), whose);
}

void cli_print_output_checks(const struct bnf_verify_report *vr, const char *a_label,
                             const char *b_label)
{
	size_t i;
	for (i = 0; i < vr->n_outputs; i++) {
		const struct bnf_output_check *o = &vr->outputs[i];
		char ratio[160];
		if (o->fixed_tolerance || !o->ref_samples) {
			cli_say(
			    "output '%s': max abs err %.2g, max rel err %.2g, normalised err %.2g "
			    "against the original%s",
			    o->name, o->max_abs, o->max_rel, o->norm_err, o->pass ? "" : " FAILED");
		} else {
			describe_ratio(&o->verdict, o->dtype, "the original's", ratio,
			               sizeof(ratio));
			cli_say("output '%s': %s; max abs err %.2g against the exact result "
			        "(original %.2g), normalised err %.2g%s",
			        o->name, ratio, o->exact_abs, o->original_abs, o->exact_norm,
			        o->pass ? "" : " FAILED");
		}
		if (o->nan_a || o->nan_b)
			cli_say("output '%s': %zu NaN or infinite values in the %s, %zu in the %s",
			        o->name, o->nan_a, a_label, o->nan_b, b_label);
		if (!o->pass && o->n_bad)
			cli_say("output '%s': %zu of %zu values outside the %s", o->name, o->n_bad,
			        o->n_elements,
			        o->fixed_tolerance ? "tolerance" : "error model's limit");
	}
}

void cli_print_fold_checks(const struct bnf_verify_report *vr, int verbose)
{
	size_t i;
	for (i = 0; i < vr->n_folds; i++) {
		const struct bnf_fold_check *f = &vr->folds[i];
		char what[400], ratio[160], exact[160] = "";
		/* A BN by its name; a Mul/Add/Sub/Div by its op and name. */
		if (f->op_type)
			snprintf(what, sizeof(what), "%s '%s'", f->op_type, f->bn_name);
		else
			snprintf(what, sizeof(what), "'%s'", f->bn_name);
		if (f->note) {
			if (verbose || !vr->whole_graph)
				cli_say("fold of %s into %s: not checked: %s", what, f->target,
				        f->note);
			continue;
		}
		if (!verbose && f->pass)
			continue;
		if (f->weight_ulps >= 0)
			snprintf(exact, sizeof(exact),
			         "computed exactly, %.2g units of rounding of the weights from the "
			         "exact pair (limit %g)",
			         f->weight_ulps, BNF_PROOF_WEIGHT_ULPS);
		if (!f->stored) {
			cli_say("fold of %s into %s: %s%s", what, f->target, exact,
			        f->pass ? "" : " FAILED");
			continue;
		}
		describe_ratio(&f->verdict, f->dtype, "the original pair's", ratio, sizeof(ratio));
		cli_say("fold of %s into %s: %s, max abs err %.2g against the exact result "
		        "(original %.2g)%s%s%s",
		        what, f->target, ratio, f->folded_abs, f->orig_abs, exact[0] ? "; " : "",
		        exact, f->pass ? "" : " FAILED");
	}
}

void cli_print_where(const struct bnf_verify_report *vr, const char *b_label)
{
	if (vr->first_failed_fold >= 0 && (size_t)vr->first_failed_fold < vr->n_folds) {
		const struct bnf_fold_check *f = &vr->folds[vr->first_failed_fold];
		cli_say("first failing fold: %s%s'%s' into %s", f->op_type ? f->op_type : "",
		        f->op_type ? " " : "", f->bn_name, f->target);
	}
	if (vr->diverge.found && vr->diverge.discrete) {
		cli_say("first divergence: value '%s' of %s '%s' in %s (value %zu of %zu in "
		        "common), a discrete choice made from values that agree within the "
		        "error model",
		        vr->diverge.value, vr->diverge.op, vr->diverge.node, b_label,
		        vr->diverge.position, vr->diverge.n_values);
	} else if (vr->diverge.found) {
		char ratio[160];
		describe_ratio(&vr->diverge.verdict, vr->diverge.dtype, "the reference's", ratio,
		               sizeof(ratio));
		cli_say("first divergence: value '%s' of %s '%s' in %s (value %zu of %zu in "
		        "common): %s, max abs err %.2g against the exact result",
		        vr->diverge.value, vr->diverge.op, vr->diverge.node, b_label,
		        vr->diverge.position, vr->diverge.n_values, ratio, vr->diverge.exact_abs);
	}
}

/* The proof's headline: "verified" after a fold, "equal" for --compare. */
static void print_headline(const struct bnf_verify_report *vr, const char *verdict)
{
	char ratio[200];

	if (vr->whole_graph && vr->fixed_tolerance) {
		cli_say(
		    "%s: outputs within --atol/--rtol of the original: max abs err %.2g, max rel "
		    "err %.2g (graph, %d sample%s)",
		    verdict, vr->max_abs, vr->max_rel, vr->samples, vr->samples == 1 ? "" : "s");
		return;
	}
	if (isfinite(vr->ratio))
		snprintf(ratio, sizeof(ratio), "within %.2gx of the original%s %s rounding error",
		         vr->ratio, vr->whole_graph ? "'s" : " pairs'",
		         bnf_rounding_name(vr->ratio_dtype));
	else
		snprintf(ratio, sizeof(ratio),
		         "within %.2g of the %s floor (the original is exact)", vr->used,
		         bnf_rounding_name(vr->ratio_dtype));
	if (vr->whole_graph)
		cli_say("%s: outputs %s; max abs err %.2g against the exact result (graph, %d "
		        "sample%s, float64 reference on %d)",
		        verdict, ratio, vr->exact_abs, vr->samples, vr->samples == 1 ? "" : "s",
		        vr->ref_samples);
	else
		cli_say("%s: folds %s; max abs err %.2g against the exact result (per fold, %zu "
		        "fold%s)",
		        verdict, ratio, vr->exact_abs, vr->n_folds, vr->n_folds == 1 ? "" : "s");
}

void cli_print_verified(const struct bnf_verify_report *vr, int verbose)
{
	print_headline(vr, "verified");
	if (vr->whole_graph)
		cli_print_input_shapes(&vr->inputs, verbose);
}

void cli_print_equal(const struct bnf_verify_report *vr, int verbose)
{
	print_headline(vr, "equal");
	cli_print_input_shapes(&vr->inputs, verbose);
}

void cli_print_train(const struct bnf_train_report *t, int verbose)
{
	size_t i;
	for (i = 0; i < t->n_nodes; i++) {
		const struct bnf_train_node *n = &t->nodes[i];
		if (!n->converted || verbose)
			cli_say("%s '%s': %s%s%s%s", n->op, n->node, n->detail,
			        n->graph[0] ? " [in " : "", n->graph, n->graph[0] ? "]" : "");
	}
}

/* Print the findings that are not ignored; returns how many count as
 * errors. */
size_t cli_print_findings(const struct bnf_lint_report *lint, const enum cli_finding_level *levels,
                          int quiet)
{
	size_t i, errors = 0, warnings = 0;

	for (i = 0; i < lint->n_findings; i++) {
		const struct bnf_finding *f = &lint->findings[i];
		enum cli_finding_level level = levels[f->code];
		char where[600] = "";

		if (level == CLI_FINDING_LEVEL_IGNORED)
			continue;
		if (level == CLI_FINDING_LEVEL_WARNING)
			warnings++;
		else
			errors++;
		if (level == CLI_FINDING_LEVEL_WARNING && quiet)
			continue;
		if (f->graph[0])
			snprintf(where, sizeof(where), " [in %s]", f->graph);
		cli_say("%s: %s '%s'%s: %s%s", bnf_finding_code_name(f->code), f->op, f->node,
		        where, f->message,
		        level == CLI_FINDING_LEVEL_WARNING ? " (warning only)" : "");
	}
	if (!quiet) {
		if (errors + warnings == 0)
			cli_say("check: no findings");
		else
			cli_say("check: %zu finding%s (%zu error%s, %zu warning%s)",
			        errors + warnings, errors + warnings == 1 ? "" : "s", errors,
			        errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s");
	}
	return errors;
}
