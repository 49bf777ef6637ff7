/*
 * The table of neural-network operators (convolution, pooling,
 * normalisation, matrix products): data read by the registry.
 */
#include <string.h>

#include "eval/nn.h"

/* Rows start at the operator's first opset: each reads ctx->opset itself
 * where an attribute or default changed between versions. */
const struct bnf_op bnf_ops_nn[] = {
    {"Conv", 1, 0, bnf_nn_conv_shape, bnf_nn_conv_compute, 0},
    {"ConvTranspose", 1, 0, bnf_nn_conv_transpose_shape, bnf_nn_conv_transpose_compute, 0},
    {"BatchNormalization", 1, 0, bnf_nn_batch_norm_shape, bnf_nn_batch_norm_compute, 1},
    {"InstanceNormalization", 1, 0, bnf_nn_instance_norm_shape, bnf_nn_instance_norm_compute, 0},
    {"LayerNormalization", 17, 0, bnf_nn_layer_norm_shape, bnf_nn_layer_norm_compute, 0},
    {"MaxPool", 1, 0, bnf_nn_max_pool_shape, bnf_nn_max_pool_compute, 0},
    {"AveragePool", 1, 0, bnf_nn_average_pool_shape, bnf_nn_average_pool_compute, 0},
    {"GlobalAveragePool", 1, 0, bnf_nn_global_pool_shape, bnf_nn_global_average_pool_compute, 0},
    {"GlobalMaxPool", 1, 0, bnf_nn_global_pool_shape, bnf_nn_global_max_pool_compute, 0},
    {"Gemm", 1, 0, bnf_nn_gemm_shape, bnf_nn_gemm_compute, 0},
    {"MatMul", 1, 0, bnf_nn_matmul_shape, bnf_nn_matmul_compute, 0},
    {"NegativeLogLikelihoodLoss", 12, 0, bnf_nn_nll_loss_shape, bnf_nn_done_compute, 0},
    {"SoftmaxCrossEntropyLoss", 12, 0, bnf_nn_sce_loss_shape, bnf_nn_done_compute, 0},
    {"RNN", 7, 0, bnf_nn_rnn_shape, bnf_nn_rnn_compute, 0},
    {"GRU", 7, 0, bnf_nn_rnn_shape, bnf_nn_rnn_compute, 0},
    {"LSTM", 7, 0, bnf_nn_rnn_shape, bnf_nn_rnn_compute, 0},
    {"LRN", 1, 0, bnf_nn_lrn_shape, bnf_nn_done_compute, 0},
    {"MeanVarianceNormalization", 9, 0, bnf_nn_mvn_shape, bnf_nn_done_compute, 0},
    {"MaxUnpool", 9, 0, bnf_nn_max_unpool_shape, bnf_nn_done_compute, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

_Static_assert(sizeof(bnf_ops_nn) / sizeof(bnf_ops_nn[0]) == 20,
               "bnf_ops_nn: nineteen operators and the closing row");
