/*
 * Det (opset 11): the determinant of each square matrix in the last two
 * axes, by Gaussian elimination with partial pivoting in double.
 */
#include "eval/basic_ops.h"
#include "eval/shape_common.h"

#include <math.h>
#include <stdlib.h>

int bnf_math_det_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t n, m, n_mat, i, j, k, piv;
	double *a, det, t;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2] ||
	    !bnf_shp_is_float(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input must be floating square matrices");
	if (bnf_shp_new_out(ctx, 0, x->dtype, x->rank - 2, x->dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	n = x->dims[x->rank - 1];
	n_mat = (int64_t)ctx->out[0]->count;
	a = malloc(((size_t)(n * n) + 1) * sizeof(*a));
	if (!a)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	for (m = 0; m < n_mat; m++) {
		for (i = 0; i < n * n; i++)
			a[i] = bnf_shp_get(x, (size_t)(m * n * n + i));
		det = 1;
		for (k = 0; k < n && det != 0; k++) {
			piv = k;
			for (i = k + 1; i < n; i++)
				if (fabs(a[i * n + k]) > fabs(a[piv * n + k]))
					piv = i;
			if (a[piv * n + k] == 0) {
				det = 0;
				break;
			}
			if (piv != k) {
				for (j = 0; j < n; j++) {
					t = a[k * n + j];
					a[k * n + j] = a[piv * n + j];
					a[piv * n + j] = t;
				}
				det = -det;
			}
			det *= a[k * n + k];
			for (i = k + 1; i < n; i++) {
				t = a[i * n + k] / a[k * n + k];
				for (j = k; j < n; j++)
					a[i * n + j] -= t * a[k * n + j];
			}
		}
		bnf_shp_set(ctx->out[0], (size_t)m, det);
	}
	free(a);
	return BNF_OK;
}

int bnf_math_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the output */
	return BNF_OK;
}
