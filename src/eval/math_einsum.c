/*
 * Einsum (opset 12): the sum, over every label the output leaves out, of
 * the product of the inputs, whose axes the equation labels. One odometer
 * walks every combination of label values (and of the broadcast "..."
 * axes); each input reads through a stride per label (a label repeated in
 * one term walks the diagonal), the output through its own strides, zero
 * on the labels it sums over. Accumulated in double (int64 for integers)
 * and stored once.
 */
#include "eval/basic_ops.h"
#include "eval/shape_common.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define EIN_MAX_INPUTS 16
#define EIN_LETTERS    52                           /* A-Z then a-z */
#define EIN_AXES       (EIN_LETTERS + BNF_MAX_RANK) /* then the "..." axes */
/* Products this large would take hours in a reference evaluator. */
#define EIN_MAX_STEPS ((uint64_t)1 << 34)

struct einsum_plan {
	size_t n_in;
	int64_t dims[EIN_AXES]; /* -1: axis not used */
	int64_t in_stride[EIN_MAX_INPUTS][EIN_AXES];
	int64_t out_stride[EIN_AXES];
	int out_rank;
	int out_axis[BNF_MAX_RANK];
	int ell_rank; /* "..." axes: EIN_AXES - ell_rank .. EIN_AXES - 1 */
};

/* Axis number of a label letter: ASCII order, upper case first. */
static int letter_axis(char c)
{
	return isupper((unsigned char)c) ? c - 'A' : 26 + (c - 'a');
}

/* The labels of one term, up to ',' '-' or the end: axis numbers, -1 for
 * the ellipsis. */
static int parse_term(const struct bnf_op_ctx *ctx, const char **s, int *axes, int *n)
{
	const char *p = *s;
	int ell = 0;

	*n = 0;
	for (; *p && *p != ',' && *p != '-'; p++) {
		if (*p == ' ')
			continue;
		if (*n >= BNF_MAX_RANK + 1)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "a term has too many labels");
		if (strncmp(p, "...", 3) == 0 && !ell) {
			ell = 1;
			axes[(*n)++] = -1;
			p += 2;
		} else if (isalpha((unsigned char)*p)) {
			axes[(*n)++] = letter_axis(*p);
		} else {
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unexpected '%c' in the equation",
			                    *p);
		}
	}
	*s = p;
	return BNF_OK;
}

/* Input k against its term: letters take their dims (equal wherever a
 * letter appears), the ellipsis the rest, right-aligned and broadcast. */
static int bind_input(const struct bnf_op_ctx *ctx, struct einsum_plan *p, size_t k,
                      const int *axes, int n)
{
	const struct bnf_tensor *x = ctx->in[k];
	int64_t xs[BNF_MAX_RANK];
	int has_ell = 0, i, e, d = 0, n_ell;

	for (i = 0; i < n; i++)
		has_ell |= axes[i] < 0;
	n_ell = x->rank - (n - has_ell);
	if (n_ell < 0 || (!has_ell && n_ell))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input %zu has rank %d, its term %d labels",
		                    k, x->rank, n);
	if (n_ell > p->ell_rank)
		p->ell_rank = n_ell;
	bnf_shp_strides(x->rank, x->dims, xs);
	for (i = 0; i < n; i++) {
		if (axes[i] >= 0) {
			int a = axes[i];
			if (p->dims[a] >= 0 && p->dims[a] != x->dims[d])
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "label '%c' has dims %lld and "
				                    "%lld",
				                    a < 26 ? 'A' + a : 'a' + a - 26,
				                    (long long)p->dims[a], (long long)x->dims[d]);
			p->dims[a] = x->dims[d];
			p->in_stride[k][a] += xs[d++];
			continue;
		}
		for (e = 0; e < n_ell; e++, d++) {
			int a = EIN_AXES - n_ell + e;
			if (x->dims[d] == 1)
				continue; /* broadcast: stride 0 */
			if (p->dims[a] > 1 && p->dims[a] != x->dims[d])
				return bnf_shp_fail(ctx, BNF_ERR_INPUT,
				                    "the '...' axes do not "
				                    "broadcast");
			p->dims[a] = x->dims[d];
			p->in_stride[k][a] += xs[d];
		}
	}
	return BNF_OK;
}

/* The output's axes: the right-hand side, or (implicit form) the "..."
 * axes then every letter used exactly once, in ASCII order. */
static int output_axes(const struct bnf_op_ctx *ctx, struct einsum_plan *p, const char *rhs,
                       const int *uses)
{
	int axes[BNF_MAX_RANK + 1], n, i, e, a;

	p->out_rank = 0;
	if (rhs) {
		if (parse_term(ctx, &rhs, axes, &n) != BNF_OK)
			return ctx->err->status;
		if (*rhs)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "the output term is malformed");
	} else {
		n = 0;
		if (p->ell_rank)
			axes[n++] = -1;
		for (a = 0; a < EIN_LETTERS && n <= BNF_MAX_RANK; a++)
			if (uses[a] == 1)
				axes[n++] = a;
	}
	for (i = 0; i < n; i++) {
		if (axes[i] >= 0 && p->dims[axes[i]] < 0)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT, "an output label is in no input");
		for (e = 0; e < (axes[i] < 0 ? p->ell_rank : 1); e++) {
			if (p->out_rank >= BNF_MAX_RANK)
				return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
				                    "output rank too large");
			p->out_axis[p->out_rank++] =
			    axes[i] < 0 ? EIN_AXES - p->ell_rank + e : axes[i];
		}
	}
	return BNF_OK;
}

static int einsum_plan(const struct bnf_op_ctx *ctx, struct einsum_plan *p)
{
	char eq[512];
	const char *s = eq, *rhs = NULL;
	int axes[BNF_MAX_RANK + 1], uses[EIN_LETTERS] = {0}, n, i, a;
	size_t k;

	memset(p, 0, sizeof(*p));
	for (a = 0; a < EIN_AXES; a++)
		p->dims[a] = -1;
	if (bnf_shp_check_io(ctx, 1, EIN_MAX_INPUTS) != BNF_OK ||
	    bnf_attr_string(ctx->node, "equation", "", eq, sizeof(eq), ctx->err) != BNF_OK)
		return ctx->err->status;
	p->n_in = ctx->n_in;
	for (k = 0; k < ctx->n_in; k++) {
		if (!ctx->in[k] || ctx->in[k]->dtype != ctx->in[0]->dtype)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "input %zu is missing or of "
			                    "another dtype",
			                    k);
		if (parse_term(ctx, &s, axes, &n) != BNF_OK ||
		    bind_input(ctx, p, k, axes, n) != BNF_OK)
			return ctx->err->status;
		for (i = 0; i < n; i++)
			if (axes[i] >= 0)
				uses[axes[i]]++;
		if (k + 1 < ctx->n_in && *s++ != ',')
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "the equation has fewer terms than "
			                    "inputs");
	}
	if (strncmp(s, "->", 2) == 0)
		rhs = s + 2;
	else if (*s)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "the equation has more terms than inputs");
	for (a = EIN_AXES - p->ell_rank; a < EIN_AXES; a++)
		if (p->dims[a] < 0)
			p->dims[a] = 1; /* broadcast from 1 everywhere */
	return output_axes(ctx, p, rhs, uses);
}

int bnf_math_einsum_shape(struct bnf_op_ctx *ctx)
{
	struct einsum_plan p;
	int64_t dims[BNF_MAX_RANK];
	int i;

	if (einsum_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (!bnf_shp_is_float(ctx->in[0]->dtype) && !bnf_dtype_is_integer(ctx->in[0]->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "dtype %s is not supported",
		                    bnf_dtype_name(ctx->in[0]->dtype));
	for (i = 0; i < p.out_rank; i++)
		dims[i] = p.dims[p.out_axis[i]];
	return bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, p.out_rank, dims);
}

int bnf_math_einsum_compute(struct bnf_op_ctx *ctx)
{
	struct einsum_plan p;
	struct bnf_tensor *y = ctx->out[0];
	int active[EIN_AXES], n_active = 0, i, a, is_float;
	int64_t ostr[BNF_MAX_RANK], idx[EIN_AXES] = {0}, off[EIN_MAX_INPUTS] = {0}, out_off = 0;
	double *acc = NULL;
	int64_t *iacc = NULL;
	uint64_t steps = 1;
	size_t k;

	if (!y)
		return BNF_OK;
	if (einsum_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	is_float = bnf_shp_is_float(y->dtype);
	bnf_shp_strides(p.out_rank, y->dims, ostr);
	for (i = 0; i < p.out_rank; i++)
		p.out_stride[p.out_axis[i]] += ostr[i];
	/* Output axes outermost, the summed ones inside. */
	for (i = 0; i < p.out_rank; i++)
		active[n_active++] = p.out_axis[i];
	for (a = 0; a < EIN_AXES; a++)
		if (p.dims[a] >= 0 && p.out_stride[a] == 0)
			active[n_active++] = a;
	for (i = 0; i < n_active; i++) {
		if (p.dims[active[i]] == 0)
			steps = 0;
		else if (steps > EIN_MAX_STEPS / (uint64_t)p.dims[active[i]])
			return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "more than %llu products",
			                    (unsigned long long)EIN_MAX_STEPS);
		else
			steps *= (uint64_t)p.dims[active[i]];
	}
	if (is_float)
		acc = calloc(y->count + 1, sizeof(*acc));
	else
		iacc = calloc(y->count + 1, sizeof(*iacc));
	if (!acc && !iacc)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (; steps > 0; steps--) {
		if (is_float) {
			double prod = 1.0;
			for (k = 0; k < p.n_in; k++)
				prod *= bnf_shp_get(ctx->in[k], (size_t)off[k]);
			acc[out_off] += prod;
		} else {
			uint64_t prod = 1;
			for (k = 0; k < p.n_in; k++)
				prod *= (uint64_t)bnf_shp_get_int(ctx->in[k], (size_t)off[k]);
			iacc[out_off] = (int64_t)((uint64_t)iacc[out_off] + prod);
		}
		for (i = n_active - 1; i >= 0; i--) {
			a = active[i];
			for (k = 0; k < p.n_in; k++)
				off[k] += p.in_stride[k][a];
			out_off += p.out_stride[a];
			if (++idx[a] < p.dims[a])
				break;
			for (k = 0; k < p.n_in; k++)
				off[k] -= p.in_stride[k][a] * p.dims[a];
			out_off -= p.out_stride[a] * p.dims[a];
			idx[a] = 0;
		}
	}
	for (k = 0; k < y->count; k++) {
		if (is_float)
			bnf_shp_set(y, k, acc[k]);
		else
			bnf_tensor_set_int(y, k, iacc[k]);
	}
	free(acc);
	free(iacc);
	return BNF_OK;
}
