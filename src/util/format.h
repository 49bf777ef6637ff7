/*
 * Numbers as people read them in messages: sizes in decimal units, as file
 * managers show them.
 */
#ifndef BNF_FORMAT_H
#define BNF_FORMAT_H

#include <stddef.h>

/* bytes as "512 B", "102.5 MB", ... into buf. */
void bnf_format_size(double bytes, char *buf, size_t len);

#endif
