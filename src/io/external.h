/*
 * Tensors whose bytes live outside the model file (ONNX external data:
 * data_location EXTERNAL with location / offset / length entries). Reading
 * validates every location once and maps tensor bytes on demand; writing
 * lays tensors out in one data file next to the output model.
 */
#ifndef BNF_EXTERNAL_H
#define BNF_EXTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "onnx.pb-c.h"

/* The registry of data files every loaded model may read (each validated
 * when its model was adopted), plus the spill file that receives the
 * tensors a fold rewrites. One per process run; shared by all its models. */
struct bnf_external;

/* A new, empty registry (NULL when memory runs out). Free with
 * bnf_external_free, which also removes an uncommitted spill file. */
struct bnf_external *bnf_external_new(void);
void bnf_external_free(struct bnf_external *ext);

/* 1 when t keeps its bytes outside the model (data_location EXTERNAL or
 * external_data entries present). */
int bnf_tensor_is_external(const Onnx__TensorProto *t);

/* Validate every external tensor of model, read from model_path ("-" for
 * standard input, which may not have any), and rewrite its entries into
 * the canonical form this registry resolves: location the real path of the
 * data file, offset and length explicit. Refused (BNF_ERR_INPUT, err naming
 * the file, tensor and location): an absolute location, one that leaves the
 * model's folder by `..` or through a symbolic link, a missing or non-regular
 * file, offset or length past the end of the file. *n_external (may be
 * NULL) receives the number of external tensors. */
int bnf_external_adopt(struct bnf_external *ext, Onnx__ModelProto *model, const char *model_path,
                       size_t *n_external, struct bnf_error *err);

/* A read-only view of a tensor's stored bytes: raw_data as it is, or a
 * private mapping of the tensor's region of its data file. */
struct bnf_tensor_bytes {
	const uint8_t *data;
	size_t len;
	void *map; /* mapping to release, or NULL */
	size_t map_len;
};

/* Fill view with t's bytes. ext may be NULL when t is not external. Fails
 * (err naming the tensor) when t has no raw_data and is not external, or
 * when its data file cannot be mapped. Release with
 * bnf_tensor_bytes_release, which accepts a zeroed view. */
int bnf_tensor_bytes_get(const struct bnf_external *ext, const Onnx__TensorProto *t,
                         struct bnf_tensor_bytes *view, struct bnf_error *err);
void bnf_tensor_bytes_release(struct bnf_tensor_bytes *view);

/* Remove t's external markers (after its data was replaced in raw_data). */
void bnf_tensor_drop_external(Onnx__TensorProto *t);

/* Open the spill file: a temporary file in folder (kept until
 * bnf_external_commit renames it) or, with folder NULL, an anonymous one
 * in $TMPDIR. Tensors of at least threshold bytes that the fold rewrites
 * then go there instead of memory. Opening twice is allowed. */
int bnf_external_spill_open(struct bnf_external *ext, const char *folder, size_t threshold,
                            struct bnf_error *err);

/* When a spill file is open and t's raw_data has at least threshold bytes,
 * move those bytes to the spill file and make t refer to them. */
int bnf_external_spill(struct bnf_external *ext, Onnx__TensorProto *t, struct bnf_error *err);

/* Call fn on every tensor of the model: initializers, sparse initializers,
 * Constant and other tensor attributes, subgraphs, functions and training
 * graphs. Stops at the first nonzero return, which it returns. The walk
 * itself changes nothing (so a read-only caller passes its const model);
 * fn may change the tensors it is handed, as protobuf-c's const is shallow. */
int bnf_model_for_each_tensor(const Onnx__ModelProto *model,
                              int (*fn)(Onnx__TensorProto *t, void *arg), void *arg);

/* Total length of the model's external tensors (after adoption). */
uint64_t bnf_model_external_bytes(const Onnx__ModelProto *model);

/* Bytes the evaluator needs to hold every tensor of model in memory
 * (float16 and bfloat16 count as float32, as it stores them). */
size_t bnf_model_eval_bytes(const Onnx__ModelProto *model);

/* How the output model keeps its tensors. */
enum bnf_data_mode {
	BNF_DATA_MODE_AUTO = 0, /* inline when the input had no external data
	                           and the model fits in 2 GB, else FILE */
	BNF_DATA_MODE_INLINE,   /* every tensor inside the model file */
	BNF_DATA_MODE_KEEP,     /* external tensors stay in their files */
	BNF_DATA_MODE_FILE,     /* tensors of threshold bytes or more in one data file */
};

struct bnf_write_plan {
	enum bnf_data_mode mode; /* as requested; AUTO is resolved when writing */
	const char *data_name;   /* data file, relative to the output's folder
	                            (NULL: "<output file name>.data") */
	size_t threshold;        /* tensors of at least this many bytes go out */
	size_t input_external;   /* external tensors the input had (for AUTO) */
};

/* AUTO resolves to INLINE when the input had no external tensors and the
 * model takes less than 2 GB (the protobuf limit), else to FILE; other
 * modes stay as they are. */
enum bnf_data_mode bnf_data_mode_resolve(enum bnf_data_mode requested, size_t input_external,
                                         uint64_t model_bytes);

/* Write model to path as the plan says. INLINE: every external tensor is
 * brought into the model (which must stay under 2 GB) and path may be "-".
 * KEEP and FILE: path is a file; the data file and the model are written to
 * temporary files in the output's folder and renamed into place only when
 * both are complete. Tensors already in the spill file stay there (it
 * becomes the data file); others of at least threshold bytes are copied to
 * it in bounded chunks (KEEP leaves external tensors whose file is inside
 * the output's folder where they are); smaller external ones come inline.
 * model's tensor entries are rewritten for the output, so it is only fit
 * for writing afterwards. *written gets the model file's size and
 * *data_written the data file's (0 when there is none); both may be NULL. */
int bnf_external_write(struct bnf_external *ext, Onnx__ModelProto *model, const char *path,
                       const struct bnf_write_plan *plan, size_t *written, size_t *data_written,
                       struct bnf_error *err);

/* 1 when bnf_external_write would write the model to the file path as it
 * is, inline, with nothing to move (so bnf_model_write_start may do it). */
int bnf_external_write_is_plain(const Onnx__ModelProto *model, const struct bnf_write_plan *plan,
                                const char *path);

#endif
