/*
 * Reading and writing ONNX model files. A model is read whole from a path
 * or standard input and unpacked with protobuf-c; it is written through a
 * temporary file in the target folder that is renamed into place only when
 * complete, so the output appears whole or not at all.
 */
#ifndef BNF_MODEL_H
#define BNF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "onnx.pb-c.h"

struct bnf_model {
	Onnx__ModelProto *proto;   /* owned; freed by bnf_model_release */
	uint8_t *bytes;            /* the file as read, kept so that an unchanged
	                              model can be written back byte for byte */
	size_t size;
};

/* Read and unpack the model at path ("-" for standard input) into *model,
 * and check that it is usable: a graph is present and no tensor keeps its
 * data in an external file (not supported yet). On failure nothing is left
 * allocated and err names the file. */
int bnf_model_read(const char *path, struct bnf_model *model, struct bnf_error *err);

/* Free what bnf_model_read allocated; a zeroed model is allowed. */
void bnf_model_release(struct bnf_model *model);

/* Drop the copy of the file's bytes (when the model has changed and they
 * are no longer needed), to lower peak memory. */
void bnf_model_drop_bytes(struct bnf_model *model);

/* Pack proto into path ("-" for standard output). Returns 0 and the number
 * of bytes written in *written (may be NULL). */
int bnf_model_write(const char *path, const Onnx__ModelProto *proto, size_t *written,
		    struct bnf_error *err);

/* Write buf to path ("-" for standard output) with the same guarantees. */
int bnf_model_write_bytes(const char *path, const uint8_t *buf, size_t len,
			  struct bnf_error *err);

/* Read a whole file ("-" for stdin) into a new buffer (*buf, freed by the
 * caller with free). Short reads and EINTR are handled. */
int bnf_read_file(const char *path, uint8_t **buf, size_t *len, struct bnf_error *err);

/* The name to show for path in messages ("<stdin>" / "<stdout>" for "-"). */
const char *bnf_path_label(const char *path, int writing);

#endif
