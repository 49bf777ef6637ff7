/*
 * Inputs for evaluating a model: what the user said on the command line
 * (--shape, --dim, --input), the shapes chosen for what the model leaves
 * unknown (input_shapes.c), tensors read from .pb or .npy files, seeded
 * random tensors for graph inputs given no file, and TensorProto files
 * written for --run.
 */
#ifndef BNF_INPUTS_H
#define BNF_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "eval/eval.h"
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

/* Where a dimension of a graph input's shape came from, in the order they
 * are consulted. */
enum bnf_dim_source {
	BNF_DIM_SOURCE_USER = 0, /* --shape, --dim, or a symbol another input's
	                            --shape fixes */
	BNF_DIM_SOURCE_FILE,     /* the shape of the --input file (and the
	                            symbols it fixes) */
	BNF_DIM_SOURCE_DECLARED, /* the input's dim_value */
	BNF_DIM_SOURCE_MODEL,    /* another declaration of the value, a constant
	                            it meets (Conv weight, Add operand, Reshape
	                            target), or exporter metadata */
	BNF_DIM_SOURCE_BATCH,    /* axis 0 left unknown: 1 */
	BNF_DIM_SOURCE_PROBED,   /* the first candidate size a shapes-only run
	                            of the evaluator accepts */
	BNF_DIM_SOURCE_DEFAULT,  /* a default no probe confirmed or moved */
	BNF_DIM_SOURCE_COUNT
};

/* "user", "file", "declared", "model", "batch", "probed", "default". */
const char *bnf_dim_source_name(enum bnf_dim_source source);

/* The shape one graph input is made with. */
struct bnf_input_shape {
	char *name;
	int dtype; /* declared, or the file's when none is declared */
	int rank;
	int64_t dims[BNF_MAX_RANK];
	unsigned char source[BNF_MAX_RANK]; /* enum bnf_dim_source */
	char symbol[BNF_MAX_RANK][64];      /* the declared dim_param (cut short
	                                       when longer), or "" */
	char origin[BNF_MAX_RANK][112];     /* BNF_DIM_SOURCE_MODEL: what said so */
	struct bnf_tensor *value;           /* the --input file's values, read once
	                                       (a FIFO cannot be read twice), or NULL */
};

/* The shapes of every graph input that is not an initializer, in graph
 * order, and how they were found (all owned). */
struct bnf_input_shapes {
	struct bnf_input_shape *inputs;
	size_t n;
	size_t n_chosen;     /* dims bnfold chose (model, batch, probed, default) */
	int probes;          /* shapes-only runs of the evaluator made */
	double probe_ms;     /* their wall time */
	int probe_passed;    /* the shapes as chosen passed a shapes-only run */
	int64_t stride;      /* the spatial sizes' divisor the probe preferred
	                        (the model's total stride), 1 when none */
	int64_t spatial_min; /* the smallest spatial size a probe may choose */
};

void bnf_input_shapes_free(struct bnf_input_shapes *shapes);

/* --shape and --input must name a graph input that is not an initializer,
 * --dim a symbol some graph input declares: BNF_ERR_INPUT naming the
 * argument otherwise. Reads no file. */
int bnf_inputs_check_names(const Onnx__ModelProto *model, const struct bnf_input_spec *spec,
                           struct bnf_error *err);

/* Choose the shape of every graph input that is not an initializer. The
 * user's --shape and --input files (their shapes) win, then --dim and the
 * symbols another input's --shape or file fixes, then the declared
 * dim_values; what is still unknown (a dim_param, a missing or negative
 * dim_value) is taken from the model: another declaration of the input,
 * the constants the input meets unchanged (the channels of a Conv weight,
 * an Add operand, a Reshape target, a Gemm or MatMul weight) and exporter
 * metadata (imgsz, batch, stride). Then axis 0 is 1; the spatial dims of an
 * image-like input (rank 4 or 5 with known channels) and all other dims
 * are sizes the evaluator accepts: with probe (options for the runs, of
 * which shapes_only is set here), shapes-only runs try 224 (64 for rank
 * 5, 16 for other dims) first, then multiples of the model's total stride
 * near it, then common sizes, at least 32 for spatial dims, and keep the
 * first that passes; without probe (or when none passes) the first
 * candidate stays. A symbol takes one value everywhere. Fails with
 * BNF_ERR_INPUT when --shape, --dim or --input name no graph input or
 * symbol or an --input file cannot be read or holds another dtype than
 * declared, and BNF_ERR_UNSUPPORTED (the check cannot run) when an input is
 * not a tensor or has no declared rank and no --shape. out is zeroed
 * first and freed on failure. */
int bnf_inputs_choose(const Onnx__ModelProto *model, const struct bnf_input_spec *spec,
                      const struct bnf_eval_options *probe, struct bnf_input_shapes *out,
                      struct bnf_error *err);

/* The inputs of model's main graph for one sample, with the shapes of
 * bnf_inputs_choose: each gets a copy of its file's values, or seeded
 * random values (a function of seed, sample and the input's name only) of
 * its dtype and shape. A made-up input past BNF_LIMIT_INPUT_ELEMENTS fails
 * with BNF_ERR_INPUT when the user set its shape, else BNF_ERR_UNSUPPORTED. */
int bnf_inputs_make_shaped(const struct bnf_input_shapes *shapes, uint64_t seed, int sample,
                           struct bnf_named_tensors *out, struct bnf_error *err);

/* bnf_inputs_choose without a probe, then bnf_inputs_make_shaped. */
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
