/*
 * Private to the signal family (src/eval/signal_*.c): the steps its table
 * names. Not part of the evaluator API.
 */
#ifndef BNF_EVAL_SIGNAL_OPS_H
#define BNF_EVAL_SIGNAL_OPS_H

#include "eval/op.h"

int bnf_sig_done_compute(struct bnf_op_ctx *ctx);
int bnf_sig_window_shape(struct bnf_op_ctx *ctx); /* Hann, Hamming, Blackman */
int bnf_sig_mel_shape(struct bnf_op_ctx *ctx);
int bnf_sig_dft_shape(struct bnf_op_ctx *ctx);
int bnf_sig_stft_shape(struct bnf_op_ctx *ctx);

#endif
