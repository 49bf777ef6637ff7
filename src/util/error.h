/*
 * The error record every bnfold library function fills when it fails.
 * Library code never prints and never exits: it returns a status and leaves
 * a one-line message here (naming the file, node or tensor at fault); the
 * command-line program decides what to print and which exit code to use.
 */
#ifndef BNF_ERROR_H
#define BNF_ERROR_H

#include <stddef.h>

/* Status codes returned by library functions; 0 is success. */
enum bnf_status {
	BNF_OK = 0,
	BNF_ERR_INPUT = -1,       /* malformed or unusable model / argument */
	BNF_ERR_IO = -2,          /* a read or write failed */
	BNF_ERR_NOMEM = -3,       /* an allocation failed or a limit was hit */
	BNF_ERR_UNSUPPORTED = -4, /* valid input that bnfold does not handle */
};

struct bnf_error {
	enum bnf_status status;
	char msg[512];
};

/* Record a failure (printf-style message, no trailing newline or full stop)
 * and return its status, so callers can write `return bnf_fail(err, ...)`.
 * A NULL err is allowed: the message is dropped. The first error recorded
 * wins only if the caller checks; later calls overwrite. */
int bnf_fail(struct bnf_error *err, enum bnf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the current message with "prefix: " (for context such as a node
 * name added by an outer caller). */
void bnf_error_prefix(struct bnf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
