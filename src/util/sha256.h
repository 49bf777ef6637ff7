/*
 * SHA-256 (FIPS 180-4), incremental: the JSON report names the input and
 * output files by their hash. Written from the standard's description.
 */
#ifndef BNF_SHA256_H
#define BNF_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct bnf_sha256 {
	uint32_t state[8];
	uint64_t total;    /* bytes fed so far */
	uint8_t block[64]; /* a partial block waiting for more bytes */
	size_t used;
};

void bnf_sha256_init(struct bnf_sha256 *h);
void bnf_sha256_update(struct bnf_sha256 *h, const void *data, size_t len);

/* Finish and write the digest as 64 lower-case hex digits and a NUL. */
void bnf_sha256_hex(struct bnf_sha256 *h, char hex[65]);

/* The digest of a buffer; of a whole file (-1 when it cannot be read). */
void bnf_sha256_of(const void *buf, size_t len, char hex[65]);
int bnf_sha256_file(const char *path, char hex[65]);

#endif
