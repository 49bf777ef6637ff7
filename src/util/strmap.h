/*
 * A small open-addressing hash map from strings to size_t values, used to
 * index value names in a graph. Keys are borrowed: the strings must outlive
 * the map (they usually live in the unpacked protobuf tree).
 */
#ifndef BNF_STRMAP_H
#define BNF_STRMAP_H

#include <stddef.h>

struct bnf_strmap {
	size_t cap;        /* number of slots, a power of two (0 when empty) */
	size_t len;        /* number of keys stored */
	const char **keys; /* NULL marks a free slot */
	size_t *vals;
};

/* Start an empty map; no allocation until the first put. */
void bnf_strmap_init(struct bnf_strmap *map);

/* Set key to val, replacing an existing value. Returns 0, or -1 when
 * memory runs out (the map is unchanged then). */
int bnf_strmap_put(struct bnf_strmap *map, const char *key, size_t val);

/* Add delta to the value of key (a missing key counts as 0). Returns 0 or -1. */
int bnf_strmap_add(struct bnf_strmap *map, const char *key, size_t delta);

/* Look key up: returns 1 and stores the value in *val (if val is not NULL)
 * when present, 0 when absent. */
int bnf_strmap_get(const struct bnf_strmap *map, const char *key, size_t *val);

/* The value of key, or 0 when absent. */
size_t bnf_strmap_value(const struct bnf_strmap *map, const char *key);

/* Release the slots; the map may be reused after bnf_strmap_init. */
void bnf_strmap_free(struct bnf_strmap *map);

#endif
