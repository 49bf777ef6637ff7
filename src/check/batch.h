/*
 * The plan of a run over many models: which files (folder arguments walked
 * for *.onnx), where each one's output goes, the conflicts refused before
 * any work starts, and how many models run at once with how many threads.
 * It reads folders, never a model, and never prints.
 */
#ifndef BNF_CHECK_BATCH_H
#define BNF_CHECK_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct bnf_batch_options {
	char *const *args; /* files and folders as given (borrowed) */
	size_t n_args;
	int recursive;       /* walk folder arguments for *.onnx (else a folder is refused) */
	const char *out_dir; /* outputs go under this folder (NULL: beside each input) */
	const char *suffix;  /* inserted before ".onnx" in output names (NULL: none) */
	int write;           /* outputs are written: name them and refuse conflicts */
};

struct bnf_batch_item {
	char *input;   /* the path to read */
	char *output;  /* the path to write, NULL when nothing is written */
	uint64_t size; /* the input's size in bytes (0 when it cannot be read) */
};

/* Owns its items and their strings; free with bnf_batch_free. */
struct bnf_batch {
	struct bnf_batch_item *items;
	size_t n;
};

/* Fill batch (zeroed first) with one item per file argument and per *.onnx
 * file under each folder argument, in argument order; a folder's files in
 * byte order of their paths. The walk skips names starting with '.',
 * folders reached through a symbolic link, the output folder, and (with a
 * suffix) files whose names already end in SUFFIX.onnx, as earlier runs'
 * outputs do. A file argument that does not exist stays: reading it fails
 * later, as that model's own error.
 *
 * Output names: out_dir/NAME for a file argument, out_dir/RELATIVE for a
 * file found under a folder argument (the folder's layout is kept), or the
 * input's own folder when out_dir is NULL; SUFFIX goes before the ".onnx"
 * ending (after the name when it has none).
 *
 * Fails with BNF_ERR_INPUT (a usage error: err says what to change) for a
 * folder without recursive, two inputs whose outputs are the same file,
 * and an output that is an input; with BNF_ERR_IO when a folder cannot be
 * read or holds no *.onnx file. */
int bnf_batch_plan(const struct bnf_batch_options *opt, struct bnf_batch *batch,
                   struct bnf_error *err);

void bnf_batch_free(struct bnf_batch *batch);

/* Create folder and the folders above it that are missing (mkdir -p);
 * *made (may be NULL) is set to 1 when one was created. */
int bnf_batch_make_folder(const char *folder, int *made, struct bnf_error *err);

/* Create the folder an output goes to, when it is missing. */
int bnf_batch_make_output_folder(const char *output, int *made, struct bnf_error *err);

/* Remove output's folder and those above it up to top (not top itself)
 * while they are empty: after a model that wrote nothing into folders made
 * for it. Call it only when nothing else may be writing there. */
void bnf_batch_remove_empty_folders(const char *output, const char *top);

/* How many models run at once: at most cores (-j) and n_models, and no
 * more than the machine's memory holds at check_memory bytes each (the
 * --check-memory budget each model's check keeps within); at least 1.
 * memory or check_memory 0: no memory bound. */
int bnf_batch_at_once(int cores, size_t n_models, size_t check_memory, uint64_t memory);

/* The evaluator threads of a model started while `unfinished` models
 * (itself, the running ones and those waiting) remain: the cores shared
 * among the models that can still run together, at least 1. The threads
 * of all running models never add up to more than cores. */
int bnf_batch_threads(int cores, int at_once, size_t unfinished);

#endif
