/*
 * Reading and writing ONNX model files. A model is mapped from a path (or
 * read whole from standard input) and unpacked with protobuf-c; it is written through a
 * temporary file in the target folder that is renamed into place only when
 * complete, so the output appears whole or not at all.
 */
#ifndef BNF_MODEL_H
#define BNF_MODEL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"
#include "onnx.pb-c.h"

struct bnf_external;

struct bnf_model {
	Onnx__ModelProto *proto; /* owned; freed by bnf_model_release */
	uint8_t *bytes;          /* the file as read, kept so that an unchanged
	                            model can be written back byte for byte */
	size_t size;
	int mapped;        /* bytes is a read-only mapping of the file
	                      (regular files), else malloc'd (stdin) */
	size_t n_external; /* tensors whose data is in external files */
	int borrowed;      /* proto's raw_data points into bytes, which
	                      then stay until bnf_model_release */
};

/* Unpack buf (checked by bnf_validate_wire) so that raw_data fields of at
 * least min_len bytes point into buf instead of holding copies, when that
 * can be done safely (*borrowed set; buf is then registered with
 * bnf_mem_borrow, file_backed saying whether it is a mapping of a file, and
 * must outlive the tree); otherwise an ordinary unpack. Free the tree with
 * &bnf_large_allocator. NULL when protobuf-c refuses the bytes. */
/* raw_data under this many bytes is copied by bnf_model_read_ext: not worth
 * borrowing. */
#define BNF_BORROW_MIN 4096

Onnx__ModelProto *bnf_model_unpack_borrowing(const uint8_t *buf, size_t len, int file_backed,
                                             size_t min_len, int *borrowed);

/* Read and unpack the model at path ("-" for standard input) into *model
 * and check that a graph is present; on failure nothing is left allocated
 * and err names the file. Tensors with external data are accepted: every location
 * is validated against the model's folder and registered in ext (see
 * external.h), through which their bytes are then read. A model read from
 * standard input may not have external data. */
int bnf_model_read_ext(const char *path, struct bnf_external *ext, struct bnf_model *model,
                       struct bnf_error *err);

/* A second, independent unpacking of the bytes a model was read from (the
 * check's reference), which may run on a thread of its own while the first
 * tree is folded. */
struct bnf_unpack_job {
	const struct bnf_model *model;
	Onnx__ModelProto *proto;
	pthread_t thread;
	int started; /* a thread is running or awaits its join */
};

/* Start unpacking model's bytes on a new thread (or, when no thread can be
 * made, leave it to bnf_model_unpack_finish). The bytes must stay until
 * the job is finished or cancelled. */
void bnf_model_unpack_start(const struct bnf_model *model, struct bnf_unpack_job *job);

/* Wait for the job (or do it now if never started) and register the new
 * tree's external tensors in ext (NULL when it has none). *out stays the
 * job's, freed by bnf_model_unpack_cancel, which must come before
 * bnf_model_release of model: the tree may borrow model's bytes. Call
 * before bnf_model_drop_bytes. */
int bnf_model_unpack_finish(struct bnf_unpack_job *job, const struct bnf_model *model,
                            const char *path, struct bnf_external *ext, Onnx__ModelProto **out,
                            struct bnf_error *err);

/* Wait for a started job and free what it made (the tree
 * bnf_model_unpack_finish gave out too); a zeroed job is allowed. */
void bnf_model_unpack_cancel(struct bnf_unpack_job *job);

/* Before the output is put in place: BNF_OK, or BNF_ERR_INPUT naming path
 * when the file model was mapped from has been cut short since it was
 * read (its tensors may then have been read from the copies the check
 * made rather than from the file, so no fault reported it). */
int bnf_model_check_intact(const struct bnf_model *model, const char *path, struct bnf_error *err);

/* Free what bnf_model_read_ext allocated; a zeroed model is allowed. */
void bnf_model_release(struct bnf_model *model);

/* Drop the file's bytes (when the model has changed and they are no longer
 * needed), to lower peak memory; kept while the tree borrows them. */
void bnf_model_drop_bytes(struct bnf_model *model);

/* Give the memory of a mapped file's pages back while keeping the bytes
 * readable (they are read again from the file when touched, also through
 * the trees that borrow them): for the time between unpacking and an
 * eventual verbatim write, or once the check's reference is made. No
 * effect on stdin buffers. */
void bnf_model_release_pages(struct bnf_model *model);

/* Pack proto into path ("-" for standard output). Returns 0 and the number
 * of bytes written in *written (may be NULL). */
int bnf_model_write(const char *path, const Onnx__ModelProto *proto, size_t *written,
                    struct bnf_error *err);

/* Like bnf_model_write to a path, with a companion data file already
 * complete at data_tmp (in the same file system): the model is written to
 * a temporary file, and only then data_tmp is renamed to data_path and the
 * model into place, so no half-written pair is ever visible. */
int bnf_model_write_pair(const char *path, const Onnx__ModelProto *proto, const char *data_tmp,
                         const char *data_path, size_t *written, struct bnf_error *err);

/* Write buf to path ("-" for standard output) with the same guarantees. */
int bnf_model_write_bytes(const char *path, const uint8_t *buf, size_t len, struct bnf_error *err);

/* Read a whole file ("-" for stdin) into a new buffer (*buf, freed by the
 * caller with free). Short reads and EINTR are handled. */
int bnf_read_file(const char *path, uint8_t **buf, size_t *len, struct bnf_error *err);

/* A write of the model to a file that runs on a thread of its own while
 * the caller checks the model, and is put in place only afterwards: the
 * temporary file is complete and synced when bnf_model_write_commit
 * renames it, or removed by bnf_model_write_abort. The model must not
 * change in between. */
struct bnf_staged_write {
	const Onnx__ModelProto *proto;
	FILE *f;
	char path[4096];
	char tmp[4096];
	pthread_t thread;
	int started; /* the thread runs or awaits its join */
	int open;    /* the temporary file exists */
	int slot;    /* its tempfiles.h slot */
	int errnum;  /* errno of a failed write, 0 if none */
	size_t written;
};

int bnf_model_write_start(const char *path, const Onnx__ModelProto *proto,
                          struct bnf_staged_write *sw, struct bnf_error *err);
int bnf_model_write_commit(struct bnf_staged_write *sw, size_t *written, struct bnf_error *err);
/* Allowed on a zeroed or finished write. */
void bnf_model_write_abort(struct bnf_staged_write *sw);

/* The name shown for a node in messages: its name, or its first output. */
const char *bnf_node_label(const Onnx__NodeProto *node);

/* SHA-256 of model as it packs, without holding the packed bytes. */
void bnf_model_sha256(const Onnx__ModelProto *model, char hex[65]);

#endif
