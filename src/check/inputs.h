/*
 * Inputs for evaluating a model: what the user said on the command line
 * (--shape, --dim, --input), tensors read from .pb or .npy files, seeded
 * random tensors for graph inputs given no file, and TensorProto files
 * written for --run.
 */
#ifndef BNF_INPUTS_H
#define BNF_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "eval/tensor.h"
#include "onnx.pb-c.h"

struct bnf_shape_arg {
	char *name;
	int rank;
	int64_t dims[BNF_MAX_RANK];
};

struct bnf_dim_arg {
	char *symbol;
	int64_t value;
};

struct bnf_file_arg {
	char *name;
	char *path;
};

struct bnf_input_spec {
	struct bnf_shape_arg *shapes;
	size_t n_shapes;
	struct bnf_dim_arg *dims;
	size_t n_dims;
	struct bnf_file_arg *files;
	size_t n_files;
};

/* Add "NAME=1x3x224x224", "SYMBOL=N" and "NAME=path" arguments. Each
 * returns 0 or fails with a message quoting the argument. */
int bnf_input_spec_add_shape(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err);
int bnf_input_spec_add_dim(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err);
int bnf_input_spec_add_file(struct bnf_input_spec *spec, const char *arg, struct bnf_error *err);
void bnf_input_spec_free(struct bnf_input_spec *spec);

/* A set of named tensors (owned). */
struct bnf_named_tensors {
	size_t n;
	char **names;
	struct bnf_tensor **tensors;
};

void bnf_named_tensors_free(struct bnf_named_tensors *set);

/* The inputs of model's main graph for one sample: every graph input that
 * is not an initializer gets the file given for it, or seeded random
 * values (a function of seed, sample and the input's name only) of its
 * declared dtype and shape, symbolic dims taken from --dim or 1, the whole
 * shape from --shape when given. A file whose shape or dtype disagrees with
 * the declaration is refused. */
int bnf_inputs_make(const Onnx__ModelProto *model, const struct bnf_input_spec *spec, uint64_t seed,
                    int sample, struct bnf_named_tensors *out, struct bnf_error *err);

/* A random tensor of dtype and shape (floats normal(0, 1), integers 0 or 1,
 * bools random) from seed. Caller owns it. */
struct bnf_tensor *bnf_tensor_random(int dtype, int rank, const int64_t *dims, uint64_t seed,
                                     struct bnf_error *err);

/* Read a tensor from an ONNX TensorProto file (.pb) or a NumPy .npy file
 * (chosen by content). Caller owns the result. */
int bnf_tensor_load(const char *path, struct bnf_tensor **out, struct bnf_error *err);

/* Write t as a TensorProto named name to path (atomically). */
int bnf_tensor_save_pb(const struct bnf_tensor *t, const char *name, const char *path,
                       struct bnf_error *err);

#endif
