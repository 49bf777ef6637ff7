/*
 * Private to the index family (src/eval/index_*.c): selection, sorting,
 * scattering and the other operators that move elements by computed
 * positions (TopK, NonZero, GatherND, ScatterND, OneHot, ...). They use the
 * shape family's element access and strided copy (shape_common.h). Not part
 * of the evaluator API.
 */
#ifndef BNF_EVAL_INDEX_OPS_H
#define BNF_EVAL_INDEX_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "eval/shape_common.h"

/* Sort idx[0 .. n) stably by before(ctx, a, b) ("a goes first"); scratch
 * has room for n entries. */
void bnf_idx_sort(int64_t *idx, size_t n, int64_t *scratch,
                  int (*before)(const void *ctx, int64_t a, int64_t b), const void *ctx);

/* An index read from t (int32 or int64) at element i, negative values
 * counted from dim, refused (err set, -1 returned) outside [0, dim). */
int bnf_idx_read(const struct bnf_op_ctx *ctx, const struct bnf_tensor *t, size_t i, int64_t dim,
                 int64_t *out);

/* Whether elements i of a and j of b compare in the order of their dtype
 * (floats as doubles, integers exactly, uint64 unsigned): -1, 0 or 1. NaN
 * sorts after every number. */
int bnf_idx_compare(const struct bnf_tensor *a, size_t i, const struct bnf_tensor *b, size_t j);

/* Steps of the family's rows (index_table.c). Operators whose output
 * shape depends on the values compute everything in the shape step and
 * use bnf_idx_done_compute. */
int bnf_idx_done_compute(struct bnf_op_ctx *ctx);
int bnf_idx_topk_shape(struct bnf_op_ctx *ctx);
int bnf_idx_nonzero_shape(struct bnf_op_ctx *ctx);
int bnf_idx_compress_shape(struct bnf_op_ctx *ctx);
int bnf_idx_unique_shape(struct bnf_op_ctx *ctx);
int bnf_idx_gather_nd_shape(struct bnf_op_ctx *ctx);
int bnf_idx_scatter_nd_shape(struct bnf_op_ctx *ctx);
int bnf_idx_scatter_elements_shape(struct bnf_op_ctx *ctx);
int bnf_idx_cumsum_shape(struct bnf_op_ctx *ctx);
int bnf_idx_trilu_shape(struct bnf_op_ctx *ctx);
int bnf_idx_onehot_shape(struct bnf_op_ctx *ctx);
int bnf_idx_eyelike_shape(struct bnf_op_ctx *ctx);
int bnf_idx_size_shape(struct bnf_op_ctx *ctx);
int bnf_idx_hardmax_shape(struct bnf_op_ctx *ctx);
int bnf_idx_reverse_sequence_shape(struct bnf_op_ctx *ctx);
int bnf_idx_tfidf_shape(struct bnf_op_ctx *ctx); /* TfIdfVectorizer */

#endif
