/*
 * Shared between the reading side (external.c) and the writing side
 * (external_write.c) of external tensor data: the registry's layout and
 * the helpers both use. Not for the rest of bnfold: use external.h.
 */
#ifndef BNF_EXTERNAL_INTERNAL_H
#define BNF_EXTERNAL_INTERNAL_H

#include "io/external.h"

/* The location of tensors that live in the spill file. Validated
 * locations are real paths and start with '/', so this cannot clash. */
#define EXT_SPILL_LOCATION ":bnfold-spill:"

struct ext_file {
	char *path;    /* real path, validated inside its model's folder */
	uint64_t size; /* size when validated */
};

struct bnf_external {
	struct ext_file *files;
	size_t n_files;
	int spill_fd;       /* -1 until bnf_external_spill_open */
	char *spill_path;   /* NULL when anonymous */
	int spill_slot;     /* its tempfiles.h slot, or -1 */
	char *spill_folder; /* the folder it was created in */
	uint64_t spill_size;
	size_t threshold;
	int committed; /* renamed into place: do not unlink */
};

/* Where an external tensor's bytes are: the spill file or files[file]. */
struct ext_region {
	int spill;
	long file;
	uint64_t offset, length;
};

const char *bnf_ext_entry_get(const Onnx__TensorProto *t, const char *key);
int bnf_ext_entry_set(Onnx__TensorProto *t, const char *key, const char *value);
int bnf_ext_entry_set_u64(Onnx__TensorProto *t, const char *key, uint64_t v);

/* The region of an adopted or spilled tensor; err names the tensor. */
int bnf_ext_tensor_region(const struct bnf_external *ext, const Onnx__TensorProto *t,
                          struct ext_region *r, struct bnf_error *err);
int bnf_ext_map_region(const struct bnf_external *ext, const struct ext_region *r, const char *name,
                       struct bnf_tensor_bytes *view, struct bnf_error *err);

/* Path rules: a relative location that stays in its folder; real inside
 * root (both real paths). */
int bnf_ext_location_is_safe(const char *loc);
int bnf_ext_path_inside(const char *real, const char *root);

/* Append bytes to the spill file at the next multiple of align (*offset). */
int bnf_ext_spill_append(struct bnf_external *ext, const uint8_t *data, size_t len, uint64_t align,
                         uint64_t *offset, struct bnf_error *err);

/* Tensors of a page or more start on a page boundary (4096), so that
 * readers can map them; smaller ones on 64 bytes. */
static inline uint64_t ext_alignment(uint64_t len)
{
	return len >= 4096 ? 4096 : 64;
}
/* Point t at the spill file region; -1 when memory runs out. */
int bnf_ext_make_spilled(Onnx__TensorProto *t, uint64_t offset, uint64_t length);

#endif
