/*
 * Open-addressing string hash map with linear probing. Deletion is not
 * supported: graph indexes are rebuilt rather than edited key by key.
 */
#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: short, well distributed for identifier-like names. */
static size_t strmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

void bnf_strmap_init(struct bnf_strmap *map)
{
	memset(map, 0, sizeof(*map));
}

static size_t strmap_slot(const struct bnf_strmap *map, const char *key)
{
	size_t mask = map->cap - 1;
	size_t i = strmap_hash(key) & mask;
	while (map->keys[i] && strcmp(map->keys[i], key) != 0)
		i = (i + 1) & mask;
	return i;
}

static int strmap_grow(struct bnf_strmap *map)
{
	size_t cap = map->cap ? map->cap * 2 : 16;
	struct bnf_strmap bigger = {cap, 0, NULL, NULL};
	size_t i;

	if (cap < map->cap)
		return -1;
	bigger.keys = calloc(cap, sizeof(*bigger.keys));
	bigger.vals = calloc(cap, sizeof(*bigger.vals));
	if (!bigger.keys || !bigger.vals) {
		free(bigger.keys);
		free(bigger.vals);
		return -1;
	}
	for (i = 0; i < map->cap; i++) {
		if (map->keys[i]) {
			size_t j = strmap_slot(&bigger, map->keys[i]);
			bigger.keys[j] = map->keys[i];
			bigger.vals[j] = map->vals[i];
			bigger.len++;
		}
	}
	bnf_strmap_free(map);
	*map = bigger;
	return 0;
}

int bnf_strmap_put(struct bnf_strmap *map, const char *key, size_t val)
{
	size_t i;

	/* Keep the load factor under 1/2 so probes stay short. */
	if ((map->len + 1) * 2 > map->cap && strmap_grow(map) != 0)
		return -1;
	i = strmap_slot(map, key);
	if (!map->keys[i]) {
		map->keys[i] = key;
		map->len++;
	}
	map->vals[i] = val;
	return 0;
}

int bnf_strmap_add(struct bnf_strmap *map, const char *key, size_t delta)
{
	return bnf_strmap_put(map, key, bnf_strmap_value(map, key) + delta);
}

int bnf_strmap_get(const struct bnf_strmap *map, const char *key, size_t *val)
{
	size_t i;

	if (map->cap == 0)
		return 0;
	i = strmap_slot(map, key);
	if (!map->keys[i])
		return 0;
	if (val)
		*val = map->vals[i];
	return 1;
}

size_t bnf_strmap_value(const struct bnf_strmap *map, const char *key)
{
	size_t v = 0;
	bnf_strmap_get(map, key, &v);
	return v;
}

void bnf_strmap_free(struct bnf_strmap *map)
{
	free(map->keys);
	free(map->vals);
	memset(map, 0, sizeof(*map));
}
