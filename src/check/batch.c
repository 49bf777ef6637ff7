/*
 * The plan of a many-model run (see batch.h): folder walks in a fixed
 * order, output names, the conflicts between them found by comparing
 * canonical paths, and the share of cores and memory each model gets.
 */
#include "check/batch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/path.h"

/* Folders nested deeper than this are not walked (a loop of bind mounts,
 * or a tree nobody keeps models in). */
#define WALK_DEPTH_MAX 64

struct plan_ctx {
	const struct bnf_batch_options *opt;
	struct bnf_batch *batch;
	size_t cap;
	struct stat out_dir; /* valid when has_out_dir */
	int has_out_dir;
	struct bnf_error *err;
};

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s;

	while (la > 1 && a[la - 1] == '/')
		la--; /* "models/" and "models" walk the same files */
	s = malloc(la + lb + 2);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	if (la == 1 && a[0] == '/')
		memmove(s + 1, s + 2, lb + 1); /* "/" + "x": "/x", not "//x" */
	return s;
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);
	return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The output name of input, whose path below out_dir is rel: the suffix
 * goes before ".onnx". */
static char *output_name(const struct bnf_batch_options *opt, const char *input, const char *rel)
{
	char *path, *out;
	size_t n, stem;

	if (!opt->write)
		return NULL;
	path = opt->out_dir ? join(opt->out_dir, rel) : strdup(input);
	if (!path || !opt->suffix)
		return path;
	n = strlen(path);
	stem = ends_with(path, ".onnx") ? n - 5 : n;
	out = malloc(n + strlen(opt->suffix) + 1);
	if (out) {
		memcpy(out, path, stem);
		strcpy(out + stem, opt->suffix);
		strcat(out, path + stem);
	}
	free(path);
	return out;
}

static int add_item(struct plan_ctx *c, const char *input, const char *rel)
{
	struct bnf_batch *b = c->batch;
	struct bnf_batch_item *it;
	struct stat st;

	if (b->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct bnf_batch_item *items = realloc(b->items, cap * sizeof(*items));
		if (!items)
			return bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
		b->items = items;
		c->cap = cap;
	}
	it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->input = strdup(input);
	it->output = output_name(c->opt, input, rel);
	if (!it->input || (c->opt->write && !it->output)) {
		free(it->input);
		free(it->output);
		return bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
	}
	if (stat(input, &st) == 0 && S_ISREG(st.st_mode))
		it->size = (uint64_t)st.st_size;
	b->n++;
	return BNF_OK;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What the walk takes from a folder entry at path: 0 skip, 1 a model,
 * 2 a folder to walk. */
static int entry_kind(const struct plan_ctx *c, const char *name, const char *path)
{
	struct stat st;

	if (name[0] == '.' || lstat(path, &st) != 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		return c->has_out_dir && st.st_dev == c->out_dir.st_dev &&
		               st.st_ino == c->out_dir.st_ino
		           ? 0
		           : 2;
	if (!ends_with(name, ".onnx") || (S_ISLNK(st.st_mode) && stat(path, &st) != 0) ||
	    !S_ISREG(st.st_mode))
		return 0;
	if (c->opt->suffix) {
		size_t n = strlen(name), m = strlen(c->opt->suffix);
		if (n >= m + 5 && strncmp(name + n - 5 - m, c->opt->suffix, m) == 0)
			return 0; /* an earlier run's output */
	}
	return 1;
}

/* The sorted names in folder path (excluding "." and ".."); *names and its
 * strings are the caller's to free. */
static int read_folder(struct plan_ctx *c, const char *path, char ***names, size_t *n)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t cap = 0;
	char **list = NULL;
	int rc = BNF_OK;

	*names = NULL;
	*n = 0;
	if (!d)
		return bnf_fail(c->err, BNF_ERR_IO, "cannot read folder '%s': %s", path,
		                strerror(errno));
	while (rc == BNF_OK && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			char **more = realloc(list, (cap = cap ? cap * 2 : 32) * sizeof(*list));
			if (!more) {
				rc = bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
				break;
			}
			list = more;
		}
		if (!(list[*n] = strdup(e->d_name)))
			rc = bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
		else
			(*n)++;
	}
	closedir(d);
	if (*n > 1)
		qsort(list, *n, sizeof(*list), compare_names);
	*names = list;
	return rc;
}

/* Walk folder path, whose path below the folder argument is rel ("" at
 * the top). */
static int walk(struct plan_ctx *c, const char *path, const char *rel, int depth)
{
	char **names, *child, *child_rel;
	size_t n, i;
	int rc, kind;

	if (depth > WALK_DEPTH_MAX)
		return bnf_fail(c->err, BNF_ERR_INPUT, "'%s' is nested more than %d folders deep",
		                path, WALK_DEPTH_MAX);
	rc = read_folder(c, path, &names, &n);
	for (i = 0; i < n && rc == BNF_OK; i++) {
		child = join(path, names[i]);
		child_rel = rel[0] ? join(rel, names[i]) : strdup(names[i]);
		if (!child || !child_rel)
			rc = bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
		else if ((kind = entry_kind(c, names[i], child)) == 1)
			rc = add_item(c, child, child_rel);
		else if (kind == 2)
			rc = walk(c, child, child_rel, depth + 1);
		free(child);
		free(child_rel);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int take_argument(struct plan_ctx *c, const char *arg)
{
	struct stat st;
	const char *slash;
	size_t before = c->batch->n;
	int rc;

	if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) {
		slash = strrchr(arg, '/');
		return add_item(c, arg, slash ? slash + 1 : arg);
	}
	if (!c->opt->recursive)
		return bnf_fail(c->err, BNF_ERR_INPUT,
		                "'%s' is a folder: give -r to fold or check the *.onnx files in it",
		                arg);
	if ((rc = walk(c, arg, "", 0)) != BNF_OK)
		return rc;
	if (c->batch->n == before)
		return bnf_fail(c->err, BNF_ERR_IO, "no *.onnx file in folder '%s'", arg);
	return BNF_OK;
}

/* ---- conflicts ---- */

/* A path as the file system sees it: its folder resolved (symbolic
 * links, "..", "."), the name as it is. A folder that does not exist yet
 * (an output folder to create) keeps its spelling. */
static char *canonical(const char *path)
{
	char folder[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	if (bnf_path_folder(path, folder, sizeof(folder)) != 0 || !realpath(folder, real))
		return strdup(path);
	return join(real, name);
}

struct path_key {
	char *key;
	size_t item;
	int is_output;
};

static int compare_keys(const void *a, const void *b)
{
	const struct path_key *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	if (x->is_output != y->is_output)
		return x->is_output - y->is_output; /* the input first */
	return x->item < y->item ? -1 : x->item > y->item;
}

static int conflict(const struct bnf_batch *b, const struct path_key *x, const struct path_key *y,
                    struct bnf_error *err)
{
	const struct bnf_batch_item *a = &b->items[x->item], *o = &b->items[y->item];

	if (x->is_output)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "'%s' and '%s' would both be written to '%s': give them different "
		                "names or folders",
		                a->input, o->input, o->output);
	if (x->item == y->item)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "'%s' would be written over itself: give -O another folder, or "
		                "--suffix",
		                a->input);
	return bnf_fail(err, BNF_ERR_INPUT,
	                "the output of '%s' would be written over the input '%s'", o->input,
	                a->input);
}

/* Refuse two outputs that are the same file, and an output that is an
 * input. Inputs given twice are left alone (each is only read). */
static int find_conflicts(const struct bnf_batch *b, struct bnf_error *err)
{
	struct path_key *keys = calloc(b->n * 2 + 1, sizeof(*keys));
	size_t n = 0, i;
	int rc = BNF_OK;

	if (!keys)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	for (i = 0; i < b->n && rc == BNF_OK; i++) {
		keys[n].item = keys[n + 1].item = i;
		keys[n + 1].is_output = 1;
		if (!(keys[n].key = canonical(b->items[i].input)) ||
		    !(keys[n + 1].key = canonical(b->items[i].output)))
			rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		n += 2;
	}
	if (rc == BNF_OK)
		qsort(keys, n, sizeof(*keys), compare_keys);
	for (i = 1; i < n && rc == BNF_OK; i++)
		if (strcmp(keys[i - 1].key, keys[i].key) == 0 && keys[i].is_output)
			rc = conflict(b, &keys[i - 1], &keys[i], err);
	for (i = 0; i < n; i++)
		free(keys[i].key);
	free(keys);
	return rc;
}

int bnf_batch_plan(const struct bnf_batch_options *opt, struct bnf_batch *batch,
                   struct bnf_error *err)
{
	struct plan_ctx c;
	size_t i;
	int rc = BNF_OK;

	memset(batch, 0, sizeof(*batch));
	memset(&c, 0, sizeof(c));
	c.opt = opt;
	c.batch = batch;
	c.err = err;
	c.has_out_dir = opt->write && opt->out_dir && stat(opt->out_dir, &c.out_dir) == 0;
	for (i = 0; i < opt->n_args && rc == BNF_OK; i++)
		rc = take_argument(&c, opt->args[i]);
	if (rc == BNF_OK && opt->write)
		rc = find_conflicts(batch, err);
	if (rc != BNF_OK)
		bnf_batch_free(batch);
	return rc;
}

void bnf_batch_free(struct bnf_batch *batch)
{
	size_t i;

	if (!batch)
		return;
	for (i = 0; i < batch->n; i++) {
		free(batch->items[i].input);
		free(batch->items[i].output);
	}
	free(batch->items);
	memset(batch, 0, sizeof(*batch));
}

/* ---- folders ---- */

int bnf_batch_make_folder(const char *folder, int *made, struct bnf_error *err)
{
	char path[PATH_MAX];
	size_t i, n = strlen(folder);
	struct stat st;

	if (n == 0 || n >= sizeof(path))
		return bnf_fail(err, BNF_ERR_IO, "cannot create folder '%s': bad length", folder);
	memcpy(path, folder, n + 1);
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0777) == 0) {
			if (made)
				*made = 1;
		} else if (errno != EEXIST) {
			return bnf_fail(err, BNF_ERR_IO, "cannot create folder '%s': %s", path,
			                strerror(errno));
		}
		path[i] = i < n ? '/' : '\0';
	}
	if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
		return bnf_fail(err, BNF_ERR_IO, "cannot create folder '%s': a file is in the way",
		                folder);
	return BNF_OK;
}

int bnf_batch_make_output_folder(const char *output, int *made, struct bnf_error *err)
{
	char folder[PATH_MAX];

	if (bnf_path_folder(output, folder, sizeof(folder)) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", output);
	return bnf_batch_make_folder(folder, made, err);
}

void bnf_batch_remove_empty_folders(const char *output, const char *top)
{
	char folder[PATH_MAX], up[PATH_MAX];
	size_t n = strlen(top);

	while (n > 1 && top[n - 1] == '/')
		n--;
	if (bnf_path_folder(output, folder, sizeof(folder)) != 0)
		return;
	while (strlen(folder) > n && strncmp(folder, top, n) == 0 && folder[n] == '/' &&
	       rmdir(folder) == 0 && bnf_path_folder(folder, up, sizeof(up)) == 0)
		memcpy(folder, up, strlen(up) + 1);
}

/* ---- the share of the machine ---- */

int bnf_batch_at_once(int cores, size_t n_models, size_t check_memory, uint64_t memory)
{
	uint64_t n = cores < 1 ? 1 : (uint64_t)cores;

	if (n > n_models)
		n = n_models;
	if (memory && check_memory && n > memory / check_memory)
		n = memory / check_memory;
	return n < 1 ? 1 : (int)n;
}

int bnf_batch_threads(int cores, int at_once, size_t unfinished)
{
	size_t together = (size_t)(at_once < 1 ? 1 : at_once);

	if (unfinished < together)
		together = unfinished ? unfinished : 1;
	return cores / (int)together < 1 ? 1 : cores / (int)together;
}
