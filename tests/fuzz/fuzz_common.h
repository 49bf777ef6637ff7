/*
 * Shared by the fuzz targets: what bnf_model_read does after reading the
 * file, on a buffer (wire check, unpack, graph present, no external data,
 * validation), so every target starts from a model the CLI would accept.
 */
#ifndef BNF_FUZZ_COMMON_H
#define BNF_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

/* The libFuzzer entry point every target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The model in data[0, size) as the CLI would load it (its tensors'
 * raw_data borrowed from data where that can be done), or NULL when the
 * CLI would refuse it. The caller frees it with bnf_fuzz_release before
 * data goes. */
Onnx__ModelProto *bnf_fuzz_load(const uint8_t *data, size_t size);
void bnf_fuzz_release(Onnx__ModelProto *m, const uint8_t *data);

/* Stop the run with a message: a finding, not an input to refuse. */
void bnf_fuzz_fail(const char *what, const char *detail) __attribute__((noreturn));

#endif
