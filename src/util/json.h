/*
 * A small JSON writer for bnfold's reports: builds indented JSON text in a
 * growing buffer, escaping strings (control characters, quotes, invalid
 * UTF-8) so that any node name makes a valid document.
 */
#ifndef BNF_JSON_H
#define BNF_JSON_H

#include <stddef.h>

#define BNF_JSON_MAX_DEPTH 32

struct bnf_json {
	char *buf; /* owned; NUL-terminated text so far */
	size_t len, cap;
	int failed; /* an allocation failed or nesting went too deep */
	int depth;
	int count[BNF_JSON_MAX_DEPTH]; /* members written at each open level */
};

/* Zero j before the first call; free its buffer with bnf_json_free. */
void bnf_json_free(struct bnf_json *j);

/* Each value takes a key inside an object and NULL inside an array or at
 * the top level. */
void bnf_json_object_begin(struct bnf_json *j, const char *key);
void bnf_json_object_end(struct bnf_json *j);
void bnf_json_array_begin(struct bnf_json *j, const char *key);
void bnf_json_array_end(struct bnf_json *j);

/* A string (NULL writes null). */
void bnf_json_string(struct bnf_json *j, const char *key, const char *value);
/* A number; NaN and infinities, which JSON lacks, are written as null. */
void bnf_json_number(struct bnf_json *j, const char *key, double value);
void bnf_json_integer(struct bnf_json *j, const char *key, long long value);
void bnf_json_bool(struct bnf_json *j, const char *key, int value);
void bnf_json_null(struct bnf_json *j, const char *key);

/* A value already written as JSON text by another writer at the top level
 * (a worker process's report): copied as it is, its lines indented to this
 * depth. The text is trusted to be valid JSON. */
void bnf_json_raw(struct bnf_json *j, const char *key, const char *text);

/* Finish the text with a newline: returns the text (owned by j) or NULL
 * when building it failed. */
const char *bnf_json_finish(struct bnf_json *j);

#endif
