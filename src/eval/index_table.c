/*
 * The table of the index family: selection, sorting, scattering and the
 * operators that place elements by computed positions. Data read by the
 * registry; every step does its work in the shape step, since most output
 * shapes depend on values.
 */
#include "eval/index_ops.h"

#define DONE bnf_idx_done_compute, 0

/* Rows cite the first opset whose semantics they cover; the steps read
 * ctx->opset where an attribute became an input (TopK's K in 10) or a
 * behaviour changed (GatherND's batch_dims in 12, reductions in 16). */
const struct bnf_op bnf_ops_index[] = {
    {"TopK", 1, 0, bnf_idx_topk_shape, DONE},
    {"NonZero", 9, 0, bnf_idx_nonzero_shape, DONE},
    {"Compress", 9, 0, bnf_idx_compress_shape, DONE},
    {"Unique", 11, 0, bnf_idx_unique_shape, DONE},
    {"GatherND", 11, 0, bnf_idx_gather_nd_shape, DONE},
    {"ScatterND", 11, 0, bnf_idx_scatter_nd_shape, DONE},
    {"ScatterElements", 11, 0, bnf_idx_scatter_elements_shape, DONE},
    {"Scatter", 9, 10, bnf_idx_scatter_elements_shape, DONE},
    {"CumSum", 11, 0, bnf_idx_cumsum_shape, DONE},
    {"Trilu", 14, 0, bnf_idx_trilu_shape, DONE},
    {"OneHot", 9, 0, bnf_idx_onehot_shape, DONE},
    {"EyeLike", 9, 0, bnf_idx_eyelike_shape, DONE},
    {"Size", 1, 0, bnf_idx_size_shape, DONE},
    {"Hardmax", 1, 0, bnf_idx_hardmax_shape, DONE},
    {"ReverseSequence", 10, 0, bnf_idx_reverse_sequence_shape, DONE},
    {"TfIdfVectorizer", 9, 0, bnf_idx_tfidf_shape, DONE},
    {NULL, 0, 0, NULL, NULL, 0},
};
