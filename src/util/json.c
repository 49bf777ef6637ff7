/*
 * The JSON writer: values are appended with the separators and indentation
 * their nesting needs; strings are escaped per RFC 8259 (quote, backslash,
 * control characters) and bytes that are not valid UTF-8 become U+FFFD.
 */
#include "util/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bnf_json_free(struct bnf_json *j)
{
	if (!j)
		return;
	free(j->buf);
	memset(j, 0, sizeof(*j));
}

static void put(struct bnf_json *j, const char *s, size_t n)
{
	if (j->failed)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		char *p;
		while (cap < j->len + n + 1)
			cap *= 2;
		p = realloc(j->buf, cap);
		if (!p) {
			j->failed = 1;
			return;
		}
		j->buf = p;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void put_str(struct bnf_json *j, const char *s)
{
	put(j, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid. */
static size_t utf8_sequence(const unsigned char *s)
{
	size_t n, i;
	unsigned long cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static void put_quoted(struct bnf_json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	put(j, "\"", 1);
	while (*p) {
		size_t n;
		switch (*p) {
		case '"':
			put(j, "\\\"", 2);
			break;
		case '\\':
			put(j, "\\\\", 2);
			break;
		case '\n':
			put(j, "\\n", 2);
			break;
		case '\r':
			put(j, "\\r", 2);
			break;
		case '\t':
			put(j, "\\t", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				put(j, esc, 6);
				break;
			}
			n = utf8_sequence(p);
			if (n == 0) {
				put(j, "\\ufffd", 6);
				break;
			}
			put(j, (const char *)p, n);
			p += n;
			continue;
		}
		p++;
	}
	put(j, "\"", 1);
}

static void indent(struct bnf_json *j)
{
	int i;
	put(j, "\n", 1);
	for (i = 0; i < j->depth; i++)
		put(j, "  ", 2);
}

/* The separator, indentation and key in front of a value. */
static void begin_value(struct bnf_json *j, const char *key)
{
	if (j->depth > 0) {
		if (j->count[j->depth - 1]++ > 0)
			put(j, ",", 1);
		indent(j);
	}
	if (key) {
		put_quoted(j, key);
		put(j, ": ", 2);
	}
}

static void open_level(struct bnf_json *j, const char *key, const char *bracket)
{
	begin_value(j, key);
	put_str(j, bracket);
	if (j->depth >= BNF_JSON_MAX_DEPTH) {
		j->failed = 1;
		return;
	}
	j->count[j->depth++] = 0;
}

static void close_level(struct bnf_json *j, const char *bracket)
{
	int had_members;

	if (j->depth == 0) {
		j->failed = 1;
		return;
	}
	had_members = j->count[j->depth - 1] > 0;
	j->depth--;
	if (had_members)
		indent(j);
	put_str(j, bracket);
}

void bnf_json_object_begin(struct bnf_json *j, const char *key)
{
	open_level(j, key, "{");
}

void bnf_json_object_end(struct bnf_json *j)
{
	close_level(j, "}");
}

void bnf_json_array_begin(struct bnf_json *j, const char *key)
{
	open_level(j, key, "[");
}

void bnf_json_array_end(struct bnf_json *j)
{
	close_level(j, "]");
}

void bnf_json_string(struct bnf_json *j, const char *key, const char *value)
{
	begin_value(j, key);
	if (value)
		put_quoted(j, value);
	else
		put_str(j, "null");
}

void bnf_json_number(struct bnf_json *j, const char *key, double value)
{
	char text[40];
	int precision;

	begin_value(j, key);
	if (!isfinite(value)) {
		put_str(j, "null");
		return;
	}
	/* The shortest of 15..17 significant digits that reads back exactly. */
	for (precision = 15; precision <= 17; precision++) {
		snprintf(text, sizeof(text), "%.*g", precision, value);
		if (strtod(text, NULL) == value)
			break;
	}
	put_str(j, text);
}

void bnf_json_integer(struct bnf_json *j, const char *key, long long value)
{
	char text[32];
	begin_value(j, key);
	snprintf(text, sizeof(text), "%lld", value);
	put_str(j, text);
}

void bnf_json_bool(struct bnf_json *j, const char *key, int value)
{
	begin_value(j, key);
	put_str(j, value ? "true" : "false");
}

void bnf_json_null(struct bnf_json *j, const char *key)
{
	begin_value(j, key);
	put_str(j, "null");
}

void bnf_json_raw(struct bnf_json *j, const char *key, const char *text)
{
	size_t n = strlen(text);
	const char *line = text, *nl;

	while (n > 0 && text[n - 1] == '\n')
		n--; /* bnf_json_finish's closing newline */
	begin_value(j, key);
	while ((nl = memchr(line, '\n', (size_t)(text + n - line))) != NULL) {
		put(j, line, (size_t)(nl - line));
		indent(j);
		line = nl + 1;
	}
	put(j, line, (size_t)(text + n - line));
}

const char *bnf_json_finish(struct bnf_json *j)
{
	if (j->depth != 0)
		j->failed = 1;
	put(j, "\n", 1);
	return j->failed ? NULL : j->buf;
}
