/*
 * External tensor data, reading side: the registry of validated data files,
 * path safety (nothing outside the model's folder), on-demand mappings of a
 * tensor's bytes, and the spill file that takes the tensors a fold rewrites
 * so that they do not pile up in memory.
 */
#include "io/external.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/external_internal.h"
#include "util/mem.h"
#include "util/path.h"
#include "io/model.h"
#include "util/tempfiles.h"

struct bnf_external *bnf_external_new(void)
{
	struct bnf_external *ext = calloc(1, sizeof(*ext));

	if (ext) {
		ext->spill_fd = -1;
		ext->spill_slot = -1;
	}
	return ext;
}

void bnf_external_free(struct bnf_external *ext)
{
	size_t i;

	if (!ext)
		return;
	for (i = 0; i < ext->n_files; i++)
		free(ext->files[i].path);
	free(ext->files);
	if (ext->spill_fd >= 0)
		close(ext->spill_fd);
	if (ext->spill_path && !ext->committed)
		unlink(ext->spill_path);
	bnf_temp_untrack(ext->spill_slot);
	free(ext->spill_path);
	free(ext->spill_folder);
	free(ext);
}

int bnf_tensor_is_external(const Onnx__TensorProto *t)
{
	return (t->has_data_location &&
	        t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
	       t->n_external_data > 0;
}

/* ---- external_data entries ---- */

const char *bnf_ext_entry_get(const Onnx__TensorProto *t, const char *key)
{
	size_t i;

	for (i = 0; i < t->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = t->external_data[i];
		if (e->key && strcmp(e->key, key) == 0)
			return e->value ? e->value : "";
	}
	return NULL;
}

int bnf_ext_entry_set(Onnx__TensorProto *t, const char *key, const char *value)
{
	Onnx__StringStringEntryProto *e = NULL, **arr;
	char *copy = strdup(value);
	size_t i;

	if (!copy)
		return -1;
	for (i = 0; i < t->n_external_data && !e; i++)
		if (t->external_data[i]->key && strcmp(t->external_data[i]->key, key) == 0)
			e = t->external_data[i];
	if (!e) {
		arr = realloc(t->external_data, (t->n_external_data + 1) * sizeof(*arr));
		if (!arr) {
			free(copy);
			return -1;
		}
		t->external_data = arr;
		e = malloc(sizeof(*e));
		if (e) {
			onnx__string_string_entry_proto__init(e);
			e->key = strdup(key);
		}
		if (!e || !e->key) {
			free(e);
			free(copy);
			return -1;
		}
		arr[t->n_external_data++] = e;
	}
	free(e->value);
	e->value = copy;
	return 0;
}

int bnf_ext_entry_set_u64(Onnx__TensorProto *t, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return bnf_ext_entry_set(t, key, buf);
}

/* A decimal number with nothing around it; -1 when it is not one. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

void bnf_tensor_drop_external(Onnx__TensorProto *t)
{
	size_t i;

	for (i = 0; i < t->n_external_data; i++)
		onnx__string_string_entry_proto__free_unpacked(t->external_data[i],
		                                               &bnf_large_allocator);
	free(t->external_data);
	t->external_data = NULL;
	t->n_external_data = 0;
	t->has_data_location = 0;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
}

int bnf_ext_tensor_region(const struct bnf_external *ext, const Onnx__TensorProto *t,
                          struct ext_region *r, struct bnf_error *err)
{
	const char *name = t->name ? t->name : "";
	const char *loc = bnf_ext_entry_get(t, "location");
	size_t i;

	memset(r, 0, sizeof(*r));
	r->file = -1;
	if (!loc || parse_u64(bnf_ext_entry_get(t, "offset"), &r->offset) != 0 ||
	    parse_u64(bnf_ext_entry_get(t, "length"), &r->length) != 0)
		return bnf_fail(
		    err, BNF_ERR_INPUT,
		    "tensor '%s': external data was not validated when its model was read", name);
	if (ext && strcmp(loc, EXT_SPILL_LOCATION) == 0 && ext->spill_fd >= 0) {
		r->spill = 1;
		return BNF_OK;
	}
	for (i = 0; ext && i < ext->n_files; i++)
		if (strcmp(ext->files[i].path, loc) == 0) {
			r->file = (long)i;
			return BNF_OK;
		}
	return bnf_fail(err, BNF_ERR_INPUT,
	                "tensor '%s': external data location '%s' was not validated when its model "
	                "was read",
	                name, loc);
}

/* ---- views ---- */

int bnf_ext_map_region(const struct bnf_external *ext, const struct ext_region *r, const char *name,
                       struct bnf_tensor_bytes *view, struct bnf_error *err)
{
	const char *path = r->spill ? "the spill file" : ext->files[r->file].path;
	int fd = r->spill ? ext->spill_fd : open(path, O_RDONLY | O_CLOEXEC);
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	uint64_t base;
	int rc = BNF_OK;

	memset(view, 0, sizeof(*view));
	if (fd < 0)
		return bnf_fail(err, BNF_ERR_IO, "tensor '%s': cannot open '%s': %s", name, path,
		                strerror(errno));
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < r->offset ||
	    (uint64_t)st.st_size - r->offset < r->length) {
		rc = bnf_fail(err, BNF_ERR_INPUT,
		              "tensor '%s': '%s' is shorter than its offset and length say "
		              "(did it change?)",
		              name, path);
		goto out;
	}
	if (r->length > SIZE_MAX - (size_t)page) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s' is too large to map", name);
		goto out;
	}
	if (r->length == 0) {
		view->data = (const uint8_t *)"";
		goto out;
	}
	base = r->offset - r->offset % (uint64_t)page;
	view->map_len = (size_t)(r->length + (r->offset - base));
	view->map = mmap(NULL, view->map_len, PROT_READ, MAP_SHARED, fd, (off_t)base);
	if (view->map == MAP_FAILED) {
		view->map = NULL;
		rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': cannot map '%s': %s", name, path,
		              strerror(errno));
		goto out;
	}
	view->data = (const uint8_t *)view->map + (r->offset - base);
	view->len = (size_t)r->length;
out:
	if (!r->spill)
		close(fd);
	return rc;
}

int bnf_tensor_bytes_get(const struct bnf_external *ext, const Onnx__TensorProto *t,
                         struct bnf_tensor_bytes *view, struct bnf_error *err)
{
	const char *name = t->name ? t->name : "";
	struct ext_region r;
	int rc;

	memset(view, 0, sizeof(*view));
	if (!bnf_tensor_is_external(t)) {
		if (!t->has_raw_data)
			return bnf_fail(err, BNF_ERR_INPUT, "tensor '%s' has no raw data", name);
		view->data = t->raw_data.data ? t->raw_data.data : (const uint8_t *)"";
		view->len = t->raw_data.len;
		return BNF_OK;
	}
	if (!ext)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "tensor '%s' keeps its data in an external file, which this caller "
		                "cannot read",
		                name);
	if ((rc = bnf_ext_tensor_region(ext, t, &r, err)) != BNF_OK)
		return rc;
	return bnf_ext_map_region(ext, &r, name, view, err);
}

void bnf_tensor_bytes_release(struct bnf_tensor_bytes *view)
{
	if (view && view->map)
		munmap(view->map, view->map_len);
	if (view)
		memset(view, 0, sizeof(*view));
}

/* ---- walking every tensor of a model ---- */

static int walk_graph(Onnx__GraphProto *g, int (*fn)(Onnx__TensorProto *, void *), void *arg);

static int walk_nodes(Onnx__NodeProto **nodes, size_t n, int (*fn)(Onnx__TensorProto *, void *),
                      void *arg)
{
	size_t i, j, k;
	int rc = 0;

	for (i = 0; i < n && !rc; i++)
		for (j = 0; j < nodes[i]->n_attribute && !rc; j++) {
			Onnx__AttributeProto *a = nodes[i]->attribute[j];
			if (a->t)
				rc = fn(a->t, arg);
			for (k = 0; k < a->n_tensors && !rc; k++)
				rc = fn(a->tensors[k], arg);
			if (!rc && a->sparse_tensor && a->sparse_tensor->values)
				rc = fn(a->sparse_tensor->values, arg);
			if (!rc && a->sparse_tensor && a->sparse_tensor->indices)
				rc = fn(a->sparse_tensor->indices, arg);
			if (!rc && a->g)
				rc = walk_graph(a->g, fn, arg);
			for (k = 0; k < a->n_graphs && !rc; k++)
				rc = walk_graph(a->graphs[k], fn, arg);
		}
	return rc;
}

static int walk_graph(Onnx__GraphProto *g, int (*fn)(Onnx__TensorProto *, void *), void *arg)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < g->n_initializer && !rc; i++)
		rc = fn(g->initializer[i], arg);
	for (i = 0; i < g->n_sparse_initializer && !rc; i++) {
		if (g->sparse_initializer[i]->values)
			rc = fn(g->sparse_initializer[i]->values, arg);
		if (!rc && g->sparse_initializer[i]->indices)
			rc = fn(g->sparse_initializer[i]->indices, arg);
	}
	if (!rc)
		rc = walk_nodes(g->node, g->n_node, fn, arg);
	return rc;
}

int bnf_model_for_each_tensor(const Onnx__ModelProto *model,
                              int (*fn)(Onnx__TensorProto *t, void *arg), void *arg)
{
	size_t i;
	int rc = 0;

	if (model->graph)
		rc = walk_graph(model->graph, fn, arg);
	for (i = 0; i < model->n_functions && !rc; i++)
		rc = walk_nodes(model->functions[i]->node, model->functions[i]->n_node, fn, arg);
	for (i = 0; i < model->n_training_info && !rc; i++) {
		Onnx__TrainingInfoProto *ti = model->training_info[i];
		if (ti->initialization)
			rc = walk_graph(ti->initialization, fn, arg);
		if (!rc && ti->algorithm)
			rc = walk_graph(ti->algorithm, fn, arg);
	}
	return rc;
}

/* ---- adopting a model: validation of every location ---- */

struct adopt_state {
	struct bnf_external *ext;
	const char *label; /* the model's path for messages */
	const char *root;  /* real path of the model's folder, NULL for stdin */
	size_t n_external;
	struct bnf_error *err;
	int rc;
};

/* 1 when a relative location climbs out of its folder with "..". */
static int location_climbs_out(const char *loc)
{
	long depth = 0;
	const char *p = loc;

	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return 1;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
}

int bnf_ext_location_is_safe(const char *loc)
{
	return loc[0] != '\0' && loc[0] != '/' && !location_climbs_out(loc);
}

/* 1 when real lies inside the folder root (both real paths). */
int bnf_ext_path_inside(const char *real, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return real[0] == '/' && real[1] != '\0';
	return strncmp(real, root, n) == 0 && real[n] == '/';
}

/* The registry entry for a validated real path, added when new. */
static long register_file(struct bnf_external *ext, const char *real, uint64_t size)
{
	struct ext_file *files;
	size_t i;

	for (i = 0; i < ext->n_files; i++)
		if (strcmp(ext->files[i].path, real) == 0)
			return (long)i;
	files = realloc(ext->files, (ext->n_files + 1) * sizeof(*files));
	if (!files)
		return -1;
	ext->files = files;
	files[ext->n_files].path = strdup(real);
	if (!files[ext->n_files].path)
		return -1;
	files[ext->n_files].size = size;
	return (long)ext->n_files++;
}

static int adopt_tensor(Onnx__TensorProto *t, void *arg)
{
	struct adopt_state *s = arg;
	const char *name = t->name ? t->name : "";
	const char *loc, *off_s, *len_s;
	char joined[PATH_MAX], real[PATH_MAX];
	uint64_t offset = 0, length;
	struct stat st;

	if (!bnf_tensor_is_external(t))
		return 0;
	s->n_external++;
	loc = bnf_ext_entry_get(t, "location");
	if (!s->root)
		s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                 "%s: tensor '%s' keeps its data in external file '%s'; a model "
		                 "with external data must be read from a file, not standard input",
		                 s->label, name, loc ? loc : "");
	else if (!loc || !loc[0])
		s->rc =
		    bnf_fail(s->err, BNF_ERR_INPUT,
		             "%s: tensor '%s' is external but names no data file", s->label, name);
	else if (!bnf_ext_location_is_safe(loc))
		s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                 "%s: tensor '%s': external data location '%s' is outside the "
		                 "model's folder (absolute or with '..')",
		                 s->label, name, loc);
	else if ((size_t)snprintf(joined, sizeof(joined), "%s/%s", s->root, loc) >= sizeof(joined))
		s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                 "%s: tensor '%s': external data location '%s' is too long",
		                 s->label, name, loc);
	else if (!realpath(joined, real))
		s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                 "%s: tensor '%s': cannot open external data '%s': %s", s->label,
		                 name, loc, strerror(errno));
	else if (!bnf_ext_path_inside(real, s->root))
		s->rc =
		    bnf_fail(s->err, BNF_ERR_INPUT,
		             "%s: tensor '%s': external data location '%s' resolves outside the "
		             "model's folder (through a symbolic link)",
		             s->label, name, loc);
	else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
		s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                 "%s: tensor '%s': external data '%s' is not a regular file",
		                 s->label, name, loc);
	if (s->rc)
		return s->rc;
	off_s = bnf_ext_entry_get(t, "offset");
	len_s = bnf_ext_entry_get(t, "length");
	if ((off_s && parse_u64(off_s, &offset) != 0) || (len_s && parse_u64(len_s, &length) != 0))
		return s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                        "%s: tensor '%s': external data '%s' has an offset or "
		                        "length that is not a number",
		                        s->label, name, loc);
	if (offset > (uint64_t)st.st_size || (len_s && length > (uint64_t)st.st_size - offset))
		return s->rc = bnf_fail(s->err, BNF_ERR_INPUT,
		                        "%s: tensor '%s': offset %" PRIu64 " and length %s reach "
		                        "beyond the end of external data '%s' (%lld bytes)",
		                        s->label, name, offset, len_s ? len_s : "(rest)", loc,
		                        (long long)st.st_size);
	if (!len_s)
		length = (uint64_t)st.st_size - offset;
	if (register_file(s->ext, real, (uint64_t)st.st_size) < 0 ||
	    bnf_ext_entry_set(t, "location", real) != 0 ||
	    bnf_ext_entry_set_u64(t, "offset", offset) ||
	    bnf_ext_entry_set_u64(t, "length", length) != 0)
		return s->rc = bnf_fail(s->err, BNF_ERR_NOMEM, "out of memory");
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	return 0;
}

int bnf_external_adopt(struct bnf_external *ext, Onnx__ModelProto *model, const char *model_path,
                       size_t *n_external, struct bnf_error *err)
{
	struct adopt_state s;
	char folder[PATH_MAX], root[PATH_MAX];
	int from_stdin = strcmp(model_path, "-") == 0;

	memset(&s, 0, sizeof(s));
	s.ext = ext;
	s.label = from_stdin ? "<stdin>" : model_path;
	s.err = err;
	if (!from_stdin) {
		if (bnf_path_folder(model_path, folder, sizeof(folder)) != 0 ||
		    !realpath(folder, root))
			return bnf_fail(err, BNF_ERR_IO, "%s: cannot find the model's folder: %s",
			                model_path, strerror(errno ? errno : ENAMETOOLONG));
		s.root = root;
	}
	bnf_model_for_each_tensor(model, adopt_tensor, &s);
	if (n_external)
		*n_external = s.n_external;
	return s.rc;
}

/* ---- the spill file ---- */

int bnf_external_spill_open(struct bnf_external *ext, const char *folder, size_t threshold,
                            struct bnf_error *err)
{
	char tmp[PATH_MAX];
	const char *dir = folder;
	mode_t mask;
	int rc = BNF_OK;

	if (ext->spill_fd >= 0)
		return BNF_OK;
	if (!dir) {
		dir = getenv("TMPDIR");
		if (!dir || !dir[0])
			dir = "/tmp";
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.bnfold-XXXXXX", dir) >= sizeof(tmp))
		return bnf_fail(err, BNF_ERR_IO, "cannot create a data file in '%s': path too long",
		                dir);
	ext->spill_fd = mkstemp(tmp);
	if (ext->spill_fd < 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot create a data file in '%s': %s", dir,
		                strerror(errno));
	mask = umask(0); /* the mode a plain create would give, as for the model */
	umask(mask);
	if (fchmod(ext->spill_fd, 0666 & ~mask) != 0) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot create a data file in '%s': %s", dir,
		              strerror(errno));
	}
	if (!folder) {
		unlink(tmp); /* anonymous: gone when closed */
	} else if (!(ext->spill_path = strdup(tmp)) || !(ext->spill_folder = strdup(folder))) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	} else {
		ext->spill_slot = bnf_temp_track(tmp);
	}
	ext->threshold = threshold;
	ext->spill_size = 0;
	return rc;
}

int bnf_ext_spill_append(struct bnf_external *ext, const uint8_t *data, size_t len, uint64_t align,
                         uint64_t *offset, struct bnf_error *err)
{
	uint64_t off = (ext->spill_size + align - 1) / align * align;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(ext->spill_fd, data + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return bnf_fail(err, BNF_ERR_IO, "cannot write the data file in '%s': %s",
			                ext->spill_folder ? ext->spill_folder : "$TMPDIR",
			                n < 0 ? strerror(errno) : "short write");
		done += (size_t)n;
	}
	ext->spill_size = off + len;
	*offset = off;
	return BNF_OK;
}

int bnf_ext_make_spilled(Onnx__TensorProto *t, uint64_t offset, uint64_t length)
{
	if (bnf_ext_entry_set(t, "location", EXT_SPILL_LOCATION) != 0 ||
	    bnf_ext_entry_set_u64(t, "offset", offset) != 0 ||
	    bnf_ext_entry_set_u64(t, "length", length) != 0)
		return -1;
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	return 0;
}

int bnf_external_spill(struct bnf_external *ext, Onnx__TensorProto *t, struct bnf_error *err)
{
	uint64_t offset;
	int rc;

	if (!ext || ext->spill_fd < 0 || bnf_tensor_is_external(t) || !t->has_raw_data ||
	    t->raw_data.len < ext->threshold || t->raw_data.len == 0)
		return BNF_OK;
	if ((rc = bnf_ext_spill_append(ext, t->raw_data.data, t->raw_data.len,
	                               ext_alignment(t->raw_data.len), &offset, err)) != BNF_OK)
		return rc;
	if (bnf_ext_make_spilled(t, offset, t->raw_data.len) != 0)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	bnf_free_sized(t->raw_data.data, t->raw_data.len);
	t->raw_data.data = NULL;
	t->raw_data.len = 0;
	t->has_raw_data = 0;
	return BNF_OK;
}

static int add_external_bytes(Onnx__TensorProto *t, void *arg)
{
	uint64_t *total = arg, len;

	if (bnf_tensor_is_external(t) && parse_u64(bnf_ext_entry_get(t, "length"), &len) == 0)
		*total += len;
	return 0;
}

uint64_t bnf_model_external_bytes(const Onnx__ModelProto *model)
{
	uint64_t total = 0;

	bnf_model_for_each_tensor(model, add_external_bytes, &total);
	return total;
}

/* ---- sizes ---- */

static size_t eval_elem_bytes(int dtype)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
		return 8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
		return 16;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
		return 1;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
		return 2;
	default:
		return 4; /* float, the 16-bit floats held as float, int32 */
	}
}

static int add_eval_bytes(Onnx__TensorProto *t, void *arg)
{
	size_t *total = arg, n = 1, i;

	for (i = 0; i < t->n_dims; i++) {
		if (t->dims[i] < 0)
			return 0;
		if (t->dims[i] != 0 && n > SIZE_MAX / 16 / (size_t)t->dims[i]) {
			*total = SIZE_MAX;
			return 1;
		}
		n *= (size_t)t->dims[i];
	}
	n *= eval_elem_bytes(t->has_data_type ? t->data_type : 0);
	*total = n > SIZE_MAX - *total ? SIZE_MAX : *total + n;
	return 0;
}

size_t bnf_model_eval_bytes(const Onnx__ModelProto *model)
{
	size_t total = 0;

	bnf_model_for_each_tensor(model, add_eval_bytes, &total);
	return total;
}
