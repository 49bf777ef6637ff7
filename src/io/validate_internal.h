/*
 * What the two validation files share: validate_data.c checks tensors and
 * declared shapes, validate.c the graphs that hold them.
 */
#ifndef BNF_VALIDATE_INTERNAL_H
#define BNF_VALIDATE_INTERNAL_H

#include <stdint.h>

#include "util/error.h"
#include "onnx.pb-c.h"

static inline const char *bnf_str_or_empty(const char *s)
{
	return s ? s : "";
}

/* A tensor's dims, dtype and stored data agree (count, lengths, external
 * entries); label names the model in the message. */
int bnf_validate_tensor(const Onnx__TensorProto *t, const char *label, struct bnf_error *err);

/* A declared value's type and shape make sense; *count receives the
 * element count of its shape (symbolic dims counted as 1). */
int bnf_validate_value_info(const Onnx__ValueInfoProto *vi, const char *label, uint64_t *count,
                            struct bnf_error *err);

#endif
