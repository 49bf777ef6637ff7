/*
 * Paths as bnfold shows and splits them: "-" is standard input or output,
 * and a file's folder is where its temporary files and data files go.
 */
#ifndef BNF_PATH_H
#define BNF_PATH_H

#include <stddef.h>

/* The folder part of path ("." when none, "/" for the root) in out;
 * -1 when it does not fit in len bytes. */
int bnf_path_folder(const char *path, char *out, size_t len);

/* The name to show for path in messages ("<stdin>" / "<stdout>" for "-"). */
const char *bnf_path_label(const char *path, int writing);

#endif
