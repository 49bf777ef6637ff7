/*
 * The table of the signal family (signal_dft.c): Fourier transforms,
 * windows and the mel filter bank, all opset 17. Data read by the
 * registry.
 */
#include "eval/signal_ops.h"

#define DONE bnf_sig_done_compute, 0

const struct bnf_op bnf_ops_signal[] = {
    {"DFT", 17, 0, bnf_sig_dft_shape, DONE},
    {"STFT", 17, 0, bnf_sig_stft_shape, DONE},
    {"HannWindow", 17, 0, bnf_sig_window_shape, DONE},
    {"HammingWindow", 17, 0, bnf_sig_window_shape, DONE},
    {"BlackmanWindow", 17, 0, bnf_sig_window_shape, DONE},
    {"MelWeightMatrix", 17, 0, bnf_sig_mel_shape, DONE},
    {NULL, 0, 0, NULL, NULL, 0},
};
