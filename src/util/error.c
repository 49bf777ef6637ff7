/*
 * Filling the error record: formatting into a fixed buffer so that reporting
 * a failure never needs an allocation that could itself fail.
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bnf_fail(struct bnf_error *err, enum bnf_status status, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->status = status;
	}
	return status;
}

void bnf_error_prefix(struct bnf_error *err, const char *fmt, ...)
{
	char old[sizeof(err->msg)];
	size_t used, rest;
	va_list ap;

	if (!err)
		return;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Append ": " and the old message, truncating at the buffer's end. */
	used = strlen(err->msg);
	rest = sizeof(err->msg) - used;
	if (rest > 2) {
		memcpy(err->msg + used, ": ", 2);
		used += 2;
		rest -= 2;
		strncpy(err->msg + used, old, rest - 1);
		err->msg[sizeof(err->msg) - 1] = '\0';
	}
}
