/*
 * External tensor data, writing side: decides where each tensor of the
 * output goes (inline, kept in its file, or the output's data file), copies
 * tensor bytes in bounded chunks, and hands the finished data file to the
 * model writer, which renames both into place only when both are complete.
 */
#include "io/external.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/external_internal.h"
#include "util/mem.h"
#include "util/path.h"
#include "io/model.h"
#include "util/tempfiles.h"

/* The protobuf format cannot hold a message of 2 GB or more. */
#define INLINE_LIMIT ((size_t)INT32_MAX)

/* Chunk size of copies between data files: bounded memory whatever the
 * tensor's size. */
#define COPY_CHUNK ((size_t)1 << 20)

enum bnf_data_mode bnf_data_mode_resolve(enum bnf_data_mode requested, size_t input_external,
                                         uint64_t model_bytes)
{
	if (requested != BNF_DATA_MODE_AUTO)
		return requested;
	return input_external == 0 && model_bytes < INLINE_LIMIT ? BNF_DATA_MODE_INLINE
	                                                         : BNF_DATA_MODE_FILE;
}

struct write_state {
	struct bnf_external *ext;
	const struct bnf_write_plan *plan;
	const char *out_root;  /* real path of the output's folder */
	const char *data_name; /* location written into the model */
	const char *data_real; /* out_root/data_name */
	uint8_t *chunk;        /* COPY_CHUNK bytes */
	size_t n_out;          /* tensors placed in the data file */
	int kept_clash;        /* a kept tensor lives in the file being replaced */
	struct bnf_error *err;
	int rc;
};

/* Copy an input tensor's region to the data file, chunk by chunk. */
static int copy_region(struct write_state *s, const struct ext_region *r, const char *name,
                       uint64_t *offset)
{
	const char *path = s->ext->files[r->file].path;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = BNF_OK;
	uint64_t done = 0, at;

	if (fd < 0)
		return bnf_fail(s->err, BNF_ERR_IO, "tensor '%s': cannot open '%s': %s", name, path,
		                strerror(errno));
	while (done < r->length && rc == BNF_OK) {
		size_t want =
		    r->length - done < COPY_CHUNK ? (size_t)(r->length - done) : COPY_CHUNK;
		ssize_t n = pread(fd, s->chunk, want, (off_t)(r->offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = bnf_fail(s->err, BNF_ERR_IO, "tensor '%s': cannot read '%s': %s", name,
			              path, n < 0 ? strerror(errno) : "file ends early");
			break;
		}
		/* The first chunk sets the aligned start; the rest follow it. */
		rc = bnf_ext_spill_append(s->ext, s->chunk, (size_t)n,
		                          done == 0 ? ext_alignment(r->length) : 1, &at, s->err);
		if (done == 0)
			*offset = at;
		done += (uint64_t)n;
	}
	close(fd);
	return rc;
}

/* Replace an external tensor by an inline copy of its bytes. */
static int inline_tensor(const struct bnf_external *ext, Onnx__TensorProto *t,
                         struct bnf_error *err)
{
	struct bnf_tensor_bytes view;
	uint8_t *copy;
	int rc;

	if ((rc = bnf_tensor_bytes_get(ext, t, &view, err)) != BNF_OK)
		return rc;
	copy = malloc(view.len ? view.len : 1);
	if (!copy) {
		bnf_tensor_bytes_release(&view);
		return bnf_fail(err, BNF_ERR_NOMEM, "tensor '%s': out of memory",
		                t->name ? t->name : "");
	}
	memcpy(copy, view.data, view.len);
	bnf_free_sized(t->raw_data.data, t->raw_data.len);
	t->raw_data.data = copy;
	t->raw_data.len = view.len;
	t->has_raw_data = 1;
	bnf_tensor_bytes_release(&view);
	bnf_tensor_drop_external(t);
	return BNF_OK;
}

static int place_external(struct write_state *s, Onnx__TensorProto *t, const char *name)
{
	struct ext_region r;
	const char *path;
	uint64_t offset = 0;
	int rc;

	if ((rc = bnf_ext_tensor_region(s->ext, t, &r, s->err)) != BNF_OK)
		return rc;
	if (r.spill) {
		s->n_out++;
		return bnf_ext_entry_set(t, "location", s->data_name) == 0
		           ? BNF_OK
		           : bnf_fail(s->err, BNF_ERR_NOMEM, "out of memory");
	}
	path = s->ext->files[r.file].path;
	if (s->plan->mode == BNF_DATA_MODE_KEEP && bnf_ext_path_inside(path, s->out_root)) {
		size_t skip = strlen(s->out_root) + (strcmp(s->out_root, "/") != 0);
		if (strcmp(path, s->data_real) == 0)
			s->kept_clash = 1;
		return bnf_ext_entry_set(t, "location", path + skip) == 0
		           ? BNF_OK
		           : bnf_fail(s->err, BNF_ERR_NOMEM, "out of memory");
	}
	if (r.length < s->plan->threshold)
		return inline_tensor(s->ext, t, s->err);
	if ((rc = copy_region(s, &r, name, &offset)) != BNF_OK)
		return rc;
	s->n_out++;
	if (bnf_ext_entry_set(t, "location", s->data_name) != 0 ||
	    bnf_ext_entry_set_u64(t, "offset", offset) != 0)
		return bnf_fail(s->err, BNF_ERR_NOMEM, "out of memory");
	return BNF_OK;
}

static int place_tensor(Onnx__TensorProto *t, void *arg)
{
	struct write_state *s = arg;
	const char *name = t->name ? t->name : "";

	if (bnf_tensor_is_external(t)) {
		s->rc = place_external(s, t, name);
	} else if (t->has_raw_data && t->raw_data.len > 0 &&
	           t->raw_data.len >= s->plan->threshold) {
		s->rc = bnf_external_spill(s->ext, t, s->err);
		if (s->rc == BNF_OK) {
			s->n_out++;
			if (bnf_ext_entry_set(t, "location", s->data_name) != 0)
				s->rc = bnf_fail(s->err, BNF_ERR_NOMEM, "out of memory");
		}
	}
	return s->rc;
}

static int write_files(struct bnf_external *ext, Onnx__ModelProto *model, const char *path,
                       const struct bnf_write_plan *plan, size_t *written, size_t *data_written,
                       struct bnf_error *err)
{
	char folder[PATH_MAX], root[PATH_MAX], data_real[PATH_MAX], data_path[PATH_MAX];
	char default_name[PATH_MAX];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct write_state s;
	int rc;

	memset(&s, 0, sizeof(s));
	if (bnf_path_folder(path, folder, sizeof(folder)) != 0 || !realpath(folder, root))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path,
		                strerror(errno ? errno : ENAMETOOLONG));
	if (!plan->data_name && (size_t)snprintf(default_name, sizeof(default_name), "%s.data",
	                                         base) >= sizeof(default_name))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", path);
	s.data_name = plan->data_name ? plan->data_name : default_name;
	if (!bnf_ext_location_is_safe(s.data_name) || strcmp(s.data_name, base) == 0)
		return bnf_fail(
		    err, BNF_ERR_INPUT,
		    "data file '%s' must be a relative path inside the output's folder, "
		    "other than the model itself",
		    s.data_name);
	if ((size_t)snprintf(data_real, sizeof(data_real), "%s/%s", root, s.data_name) >=
	        sizeof(data_real) ||
	    (size_t)snprintf(data_path, sizeof(data_path), "%s/%s", folder, s.data_name) >=
	        sizeof(data_path))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", path);
	if ((rc = bnf_external_spill_open(ext, folder, plan->threshold, err)) != BNF_OK)
		return rc;
	if (!ext->spill_path || strcmp(ext->spill_folder, folder) != 0)
		return bnf_fail(err, BNF_ERR_IO,
		                "cannot write '%s': its data file was started in another folder",
		                path);
	s.ext = ext;
	s.plan = plan;
	s.out_root = root;
	s.data_real = data_real;
	s.err = err;
	s.chunk = malloc(COPY_CHUNK);
	if (!s.chunk)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	bnf_model_for_each_tensor(model, place_tensor, &s);
	free(s.chunk);
	if (s.rc != BNF_OK)
		return s.rc;
	if (s.kept_clash && s.n_out > 0)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "data file '%s' holds tensors that --external-data=keep leaves in "
		                "place; name another with --external-data=FILE",
		                data_path);
	if (s.n_out == 0) {
		/* Nothing goes outside: no data file at all. */
		close(ext->spill_fd);
		ext->spill_fd = -1;
		unlink(ext->spill_path);
		bnf_temp_untrack(ext->spill_slot);
		ext->spill_slot = -1;
		free(ext->spill_path);
		ext->spill_path = NULL;
		return bnf_model_write(path, model, written, err);
	}
	if (fsync(ext->spill_fd) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", data_path,
		                strerror(errno));
	rc = bnf_model_write_pair(path, model, ext->spill_path, data_path, written, err);
	if (rc == BNF_OK) {
		ext->committed = 1;
		if (data_written)
			*data_written = (size_t)ext->spill_size;
	}
	return rc;
}

struct inline_state {
	const struct bnf_external *ext;
	struct bnf_error *err;
};

static int inline_one(Onnx__TensorProto *t, void *arg)
{
	const struct inline_state *st = arg;

	if (!bnf_tensor_is_external(t))
		return 0;
	return inline_tensor(st->ext, t, st->err);
}

/* Bring every external tensor of model into raw_data. */
static int inline_all(const struct bnf_external *ext, Onnx__ModelProto *model,
                      struct bnf_error *err)
{
	struct inline_state st = {ext, err};

	return bnf_model_for_each_tensor(model, inline_one, &st);
}

static int write_inline(const struct bnf_external *ext, Onnx__ModelProto *model, const char *path,
                        size_t *written, struct bnf_error *err)
{
	int rc = inline_all(ext, model, err);

	if (rc != BNF_OK)
		return rc;
	if (onnx__model_proto__get_packed_size(model) >= INLINE_LIMIT)
		return bnf_fail(
		    err, BNF_ERR_INPUT,
		    "cannot write '%s' inline: the model would take 2 GB or more, beyond "
		    "what the protobuf format holds; use --external-data",
		    bnf_path_label(path, 1));
	return bnf_model_write(path, model, written, err);
}

int bnf_external_write(struct bnf_external *ext, Onnx__ModelProto *model, const char *path,
                       const struct bnf_write_plan *plan, size_t *written, size_t *data_written,
                       struct bnf_error *err)
{
	uint64_t total =
	    onnx__model_proto__get_packed_size(model) + bnf_model_external_bytes(model);
	struct bnf_write_plan resolved = *plan;

	if (data_written)
		*data_written = 0;
	resolved.mode = bnf_data_mode_resolve(plan->mode, plan->input_external, total);
	if (resolved.mode == BNF_DATA_MODE_INLINE)
		return write_inline(ext, model, path, written, err);
	if (strcmp(path, "-") == 0)
		return bnf_fail(err, BNF_ERR_INPUT,
		                "cannot write external data next to <stdout>: use -o FILE, or "
		                "--external-data=inline");
	return write_files(ext, model, path, &resolved, written, data_written, err);
}

int bnf_external_write_is_plain(const Onnx__ModelProto *model, const struct bnf_write_plan *plan,
                                const char *path)
{
	uint64_t ext_bytes = bnf_model_external_bytes(model);
	uint64_t total = onnx__model_proto__get_packed_size(model) + ext_bytes;

	return strcmp(path, "-") != 0 && ext_bytes == 0 && total < INLINE_LIMIT &&
	       bnf_data_mode_resolve(plan->mode, plan->input_external, total) ==
	           BNF_DATA_MODE_INLINE;
}
