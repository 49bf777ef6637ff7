/*
 * Model file I/O: mapped reads of files, whole reads of stdin, protobuf-c
 * unpacking with the checks bnfold needs before it trusts a model, and
 * atomic writes (temporary file in the target folder, fsync, rename; with
 * a data file, both renamed only when both are complete).
 */
#include "io/model.h"
#include "util/path.h"
#include "util/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/external.h"
#include "util/mem.h"
#include "io/skeleton.h"
#include "io/source.h"
#include "util/tempfiles.h"
#include "io/validate.h"
#include "util/thread.h"

/* Read all of fd (a file, pipe or FIFO already open) into *buf. */
static int read_fd(int fd, const char *label, uint8_t **buf, size_t *len, struct bnf_error *err)
{
	uint8_t *data = NULL;
	size_t cap = 0, used = 0;
	struct stat st;
	int rc = BNF_OK;

	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot read '%s': is a directory", label);
		goto out;
	}
	/* Size the buffer from the file when it is a regular file; grow it
	 * otherwise (pipes). One extra byte lets us see EOF without a resize. */
	cap = (S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t)st.st_size + 1 : 1 << 16;
	for (;;) {
		ssize_t n;
		if (used == cap) {
			size_t bigger = cap * 2;
			uint8_t *p;
			if (bigger < cap) {
				rc = bnf_fail(err, BNF_ERR_NOMEM, "'%s' is too large", label);
				goto out;
			}
			p = realloc(data, bigger);
			if (!p) {
				rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading '%s'",
				              label);
				goto out;
			}
			data = p;
			cap = bigger;
		}
		if (!data) {
			data = malloc(cap);
			if (!data) {
				rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading '%s'",
				              label);
				goto out;
			}
		}
		n = read(fd, data + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = bnf_fail(err, BNF_ERR_IO, "cannot read '%s': %s", label,
			              strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*buf = data;
	*len = used;
	data = NULL;
out:
	free(data);
	return rc;
}

int bnf_read_file(const char *path, uint8_t **buf, size_t *len, struct bnf_error *err)
{
	const char *label = bnf_path_label(path, 0);
	int fd, rc;

	if (strcmp(path, "-") == 0)
		return read_fd(STDIN_FILENO, label, buf, len, err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot open '%s': %s", label, strerror(errno));
	rc = read_fd(fd, label, buf, len, err);
	close(fd);
	return rc;
}

/* Map a regular file read-only; 1 when mapped (the file stays open for
 * copies from it: source.h), 0 when the file is not a regular file or is
 * empty: it is then read from the descriptor opened here, as a FIFO's
 * bytes are there once only (a second open would wait for a writer that
 * has gone); -1 on error. */
static int map_file(const char *path, uint8_t **buf, size_t *len, struct bnf_error *err)
{
	struct stat st;
	void *p;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		bnf_fail(err, BNF_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
		goto read;
	if ((uint64_t)st.st_size > SIZE_MAX) {
		rc = -1;
		bnf_fail(err, BNF_ERR_NOMEM, "'%s' is too large", path);
		goto out;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		goto read;
	*buf = p;
	*len = (size_t)st.st_size;
	bnf_source_add(p, *len, fd);
	return 1;
read:
	if (read_fd(fd, bnf_path_label(path, 0), buf, len, err) != BNF_OK)
		rc = -1;
out:
	close(fd);
	return rc;
}

static int count_external(Onnx__TensorProto *t, void *arg)
{
	const Onnx__TensorProto **first = arg;

	if (bnf_tensor_is_external(t)) {
		*first = t;
		return 1;
	}
	return 0;
}

/* Refuse external data when the caller cannot read it. */
static int refuse_external(Onnx__ModelProto *m, const char *label, struct bnf_error *err)
{
	const Onnx__TensorProto *t = NULL;
	const char *location = "?";
	size_t i;

	if (!bnf_model_for_each_tensor(m, count_external, &t))
		return BNF_OK;
	for (i = 0; i < t->n_external_data; i++)
		if (t->external_data[i]->key && strcmp(t->external_data[i]->key, "location") == 0 &&
		    t->external_data[i]->value)
			location = t->external_data[i]->value;
	return bnf_fail(err, BNF_ERR_UNSUPPORTED,
	                "%s: tensor '%s' keeps its data in an external file ('%s'), "
	                "which this mode of bnfold cannot read",
	                label, t->name ? t->name : "", location);
}

static void unmap_or_free(struct bnf_model *model)
{
	if (model->mapped && model->bytes) {
		bnf_source_remove(model->bytes);
		munmap(model->bytes, model->size);
	} else
		free(model->bytes);
	model->bytes = NULL;
	model->mapped = 0;
}

/* ---- unpacking that borrows the tensors' bytes ----
 *
 * protobuf-c copies every bytes field out of the buffer it parses: for a
 * model that is every weight, so the tree would be a second copy of the
 * file. Instead the skeleton of the bytes (skeleton.h), in which each large
 * raw_data payload is a marker, is unpacked, and each marked tensor is
 * pointed at its bytes in the buffer. Anything unexpected (a marker missing
 * or met twice) and the model is unpacked the ordinary way. Borrowed bytes
 * are registered with mem.h, whose free leaves them alone. */

struct attach {
	const uint8_t *buf;
	const struct bnf_skeleton *sk;
	unsigned char *seen;
	size_t found;
	int bad;
};

static int attach_tensor(Onnx__TensorProto *t, void *arg)
{
	struct attach *at = arg;
	const uint8_t *mark = t->raw_data.data;
	uint64_t k = 0;
	int i;

	if (t->raw_data.len != BNF_SKELETON_MARK ||
	    memcmp(mark, at->sk->magic, BNF_SKELETON_MAGIC) != 0)
		return 0;
	for (i = 7; i >= 0; i--)
		k = k << 8 | mark[BNF_SKELETON_MAGIC + i];
	if (k >= at->sk->n || at->seen[k]) {
		at->bad = 1;
		return 0;
	}
	at->seen[k] = 1;
	bnf_free(t->raw_data.data);
	t->raw_data.len = at->sk->range[k].length;
	t->raw_data.data = bnf_mem_borrowed_field(at->buf + at->sk->range[k].offset);
	at->found++;
	return 0;
}

/* bnf_model_unpack_borrowing; for the check's reference (reference set),
 * buf is already registered by the first tree. Every payload is borrowed,
 * aligned for its type or not: the evaluator reads weights where they lie
 * and copies any other misaligned input only while an operator reads it. */
static Onnx__ModelProto *unpack_borrowing(const uint8_t *buf, size_t len, int file_backed,
                                          size_t min_len, int reference, int *borrowed)
{
	struct bnf_skeleton sk;
	struct attach at;
	Onnx__ModelProto *m = NULL;

	*borrowed = 0;
	memset(&at, 0, sizeof(at));
	if (bnf_skeleton_build(buf, len, min_len, &sk) == 0 &&
	    (at.seen = calloc(sk.n, 1)) != NULL &&
	    (m = onnx__model_proto__unpack(&bnf_large_allocator, sk.len, sk.bytes)) != NULL &&
	    (reference || bnf_mem_borrow(buf, len, file_backed) == 0)) {
		at.buf = buf;
		at.sk = &sk;
		bnf_model_for_each_tensor(m, attach_tensor, &at);
		if (!at.bad && at.found == sk.n) {
			*borrowed = 1;
		} else {
			onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
			m = NULL;
			if (!reference)
				bnf_mem_unborrow(buf);
		}
	} else if (m) {
		onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
		m = NULL;
	}
	free(at.seen);
	bnf_skeleton_free(&sk);
	if (!*borrowed)
		m = onnx__model_proto__unpack(&bnf_large_allocator, len, buf);
	return m;
}

Onnx__ModelProto *bnf_model_unpack_borrowing(const uint8_t *buf, size_t len, int file_backed,
                                             size_t min_len, int *borrowed)
{
	return unpack_borrowing(buf, len, file_backed, min_len, 0, borrowed);
}

int bnf_model_read_ext(const char *path, struct bnf_external *ext, struct bnf_model *model,
                       struct bnf_error *err)
{
	const char *label = bnf_path_label(path, 0);
	int rc = BNF_OK, mapped = 0;

	memset(model, 0, sizeof(*model));
	if (strcmp(path, "-") != 0 &&
	    (mapped = map_file(path, &model->bytes, &model->size, err)) < 0)
		return err ? err->status : BNF_ERR_IO;
	model->mapped = mapped;
	if (strcmp(path, "-") == 0 &&
	    (rc = bnf_read_file(path, &model->bytes, &model->size, err)) != BNF_OK)
		return rc;
	if (model->size == 0) {
		rc = bnf_fail(err, BNF_ERR_INPUT, "%s: empty file, not an ONNX model", label);
		goto fail;
	}
	/* protobuf-c recurses once per nesting level: bound it first. */
	if ((rc = bnf_validate_wire(model->bytes, model->size, label, err)) != BNF_OK)
		goto fail;
	model->proto = bnf_model_unpack_borrowing(model->bytes, model->size, model->mapped,
	                                          BNF_BORROW_MIN, &model->borrowed);
	if (!model->proto) {
		rc = bnf_fail(
		    err, BNF_ERR_INPUT,
		    "%s: not a valid ONNX model (the protobuf data is truncated or corrupt)",
		    label);
		goto fail;
	}
	if (!model->proto->graph) {
		rc = bnf_fail(err, BNF_ERR_INPUT, "%s: not an ONNX model (it has no graph)", label);
		goto fail;
	}
	if (ext)
		rc = bnf_external_adopt(ext, model->proto, path, &model->n_external, err);
	else
		rc = refuse_external(model->proto, label, err);
	if (rc != BNF_OK)
		goto fail;
	return BNF_OK;
fail:
	bnf_model_release(model);
	return rc;
}

/* The reference borrows the bytes the first tree borrows, under its
 * registration (bnf_mem_borrow, undone by bnf_model_release, after the
 * job), so weights the fold leaves alone are held once and the others only
 * as the file's pages, which can be dropped and read again; else it is an
 * ordinary unpack. */
static void *unpack_main(void *arg)
{
	struct bnf_unpack_job *job = arg;
	const struct bnf_model *model = job->model;
	int borrowed;

	if (model->borrowed)
		job->proto = unpack_borrowing(model->bytes, model->size, model->mapped,
		                              BNF_BORROW_MIN, 1, &borrowed);
	else
		job->proto =
		    onnx__model_proto__unpack(&bnf_large_allocator, model->size, model->bytes);
	return NULL;
}

void bnf_model_unpack_start(const struct bnf_model *model, struct bnf_unpack_job *job)
{
	memset(job, 0, sizeof(*job));
	job->model = model;
	if (model->bytes)
		job->started = bnf_thread_start(&job->thread, unpack_main, job) == 0;
}

int bnf_model_unpack_finish(struct bnf_unpack_job *job, const struct bnf_model *model,
                            const char *path, struct bnf_external *ext, Onnx__ModelProto **out,
                            struct bnf_error *err)
{
	Onnx__ModelProto *m;
	int rc = BNF_OK;

	*out = NULL;
	if (job->started) {
		pthread_join(job->thread, NULL);
		job->started = 0;
	} else {
		if (!model->bytes)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "%s: the model's bytes were already dropped",
			                bnf_path_label(path, 0));
		job->model = model;
		unpack_main(job);
	}
	m = job->proto;
	if (!m)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	if (ext)
		rc = bnf_external_adopt(ext, m, path, NULL, err);
	if (rc != BNF_OK)
		bnf_model_unpack_cancel(job);
	else
		*out = m;
	return rc;
}

void bnf_model_unpack_cancel(struct bnf_unpack_job *job)
{
	if (job->started)
		pthread_join(job->thread, NULL);
	if (job->proto)
		onnx__model_proto__free_unpacked(job->proto, &bnf_large_allocator);
	memset(job, 0, sizeof(*job));
}

int bnf_model_check_intact(const struct bnf_model *model, const char *path, struct bnf_error *err)
{
	if (!model->mapped || !model->bytes || bnf_source_intact(model->bytes))
		return BNF_OK;
	return bnf_fail(err, BNF_ERR_INPUT, "'%s' was truncated while bnfold was reading it",
	                bnf_path_label(path, 0));
}

void bnf_model_release(struct bnf_model *model)
{
	if (!model)
		return;
	if (model->proto)
		onnx__model_proto__free_unpacked(model->proto, &bnf_large_allocator);
	if (model->borrowed)
		bnf_mem_unborrow(model->bytes);
	unmap_or_free(model);
	memset(model, 0, sizeof(*model));
}

void bnf_model_drop_bytes(struct bnf_model *model)
{
	if (!model->borrowed) /* else the tree's tensors are these bytes */
		unmap_or_free(model);
}

void bnf_model_release_pages(struct bnf_model *model)
{
	/* A private read-only file mapping refills dropped pages from the
	 * file on the next access, so the bytes stay usable, borrowed or not. */
	if (model->mapped && model->bytes && model->size)
		madvise(model->bytes, model->size, MADV_DONTNEED);
}

/* A protobuf-c output sink that streams packed bytes into a stdio stream,
 * so the packed model never exists twice in memory. */
struct file_sink {
	ProtobufCBuffer base;
	FILE *f;
	int fd;     /* f's file when the kernel may copy into it, else -1 */
	int failed; /* errno of the first failed write, 0 if none */
	size_t written;
	size_t synced; /* bytes handed to writeback (fd's files only) */
};

/* Every this many bytes written to a file, writeback starts, so that
 * the disk works while the rest is packed. */
#define WRITEBACK_STEP (16u << 20)

static void file_sink_writeback(struct file_sink *sink)
{
	if (sink->fd < 0 || sink->written - sink->synced < WRITEBACK_STEP)
		return;
	if (fflush(sink->f) != 0) {
		sink->failed = errno ? errno : EIO;
		return;
	}
	bnf_source_start_writeback(sink->fd, sink->synced, sink->written - sink->synced);
	sink->synced = sink->written;
}

/* Bytes from this size up that lie in a model's file are copied by the
 * kernel (source.h). */
#define KERNEL_COPY_MIN (64u << 10)

/* Let the kernel copy what it can of data from the file it was mapped
 * from; data and len then describe what is left to write. */
static void file_sink_copy(struct file_sink *sink, const uint8_t **data, size_t *len)
{
	size_t done;

	if (sink->fd < 0 || *len < KERNEL_COPY_MIN)
		return;
	if (fflush(sink->f) != 0) {
		sink->failed = errno ? errno : EIO;
		return;
	}
	done = bnf_source_copy(sink->fd, *data, *len);
	sink->written += done;
	*data += done;
	*len -= done;
}

static void file_sink_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
	struct file_sink *sink = (struct file_sink *)buffer;

	if (sink->failed || len == 0)
		return;
	file_sink_copy(sink, &data, &len);
	if (sink->failed || len == 0)
		return;
	if (fwrite(data, 1, len, sink->f) != len)
		sink->failed = errno ? errno : EIO;
	else
		sink->written += len;
	file_sink_writeback(sink);
}

/* Write the model or the byte buffer (exactly one is non-NULL) to f. */
static int stream_write(FILE *f, const Onnx__ModelProto *proto, const uint8_t *buf, size_t len,
                        size_t *written)
{
	struct file_sink sink;
	struct stat st;

	memset(&sink, 0, sizeof(sink));
	sink.base.append = file_sink_append;
	sink.f = f;
	sink.fd = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? fileno(f) : -1;
	errno = 0;
	if (proto)
		onnx__model_proto__pack_to_buffer(proto, &sink.base);
	else
		file_sink_append(&sink.base, len, buf);
	if (!sink.failed && fflush(f) != 0)
		sink.failed = errno ? errno : EIO;
	if (written)
		*written = sink.written;
	return sink.failed;
}

static int write_stdout(const Onnx__ModelProto *proto, const uint8_t *buf, size_t len,
                        size_t *written, struct bnf_error *err)
{
	int e;

	if (isatty(STDOUT_FILENO))
		return bnf_fail(
		    err, BNF_ERR_IO,
		    "refusing to write a binary model to a terminal; redirect standard output");
	e = stream_write(stdout, proto, buf, len, written);
	if (e)
		return bnf_fail(err, BNF_ERR_IO, "cannot write to <stdout>: %s", strerror(e));
	return BNF_OK;
}

/* Create the temporary file next to path (its name into tmp, tracked in
 * *slot for removal on a signal) with the mode a plain create would give;
 * returns the open stream or NULL (err). */
static FILE *open_temp(const char *path, char *tmp, size_t tmp_len, int *slot,
                       struct bnf_error *err)
{
	char folder[PATH_MAX];
	FILE *f;
	int fd;
	mode_t mask;
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		bnf_fail(err, BNF_ERR_IO, "cannot write '%s': is a directory", path);
		return NULL;
	}
	if (bnf_path_folder(path, folder, sizeof(folder)) != 0 ||
	    snprintf(tmp, tmp_len, "%s/.bnfold-XXXXXX", folder) >= (int)tmp_len) {
		bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", path);
		return NULL;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		return NULL;
	}
	*slot = bnf_temp_track(tmp);
	/* mkstemp makes the file private; give it the mode a plain create
	 * would have had under the user's umask. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0 || !(f = fdopen(fd, "wb"))) {
		bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		bnf_temp_untrack(*slot);
		return NULL;
	}
	return f;
}

/* Stream the model (or buf) into f, make it durable and close f: 0 or the
 * errno of the first failure. */
static int fill_temp(FILE *f, const Onnx__ModelProto *proto, const uint8_t *buf, size_t len,
                     size_t *written)
{
	int e = stream_write(f, proto, buf, len, written);

	if (!e && fsync(fileno(f)) != 0)
		e = errno;
	if (fclose(f) != 0 && !e)
		e = errno;
	return e;
}

/* Put the complete temporary file in place: the companion data file
 * (data_tmp, NULL if none) first, renamed to data_path, then the model. */
static int commit_temp(const char *tmp, const char *path, const char *data_tmp,
                       const char *data_path, struct bnf_error *err)
{
	if (data_tmp && rename(data_tmp, data_path) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", data_path,
		                strerror(errno));
	if (rename(tmp, path) != 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
	return BNF_OK;
}

/* Write the model (or buf) to a temporary file next to path and rename it
 * into place; a companion data file (data_tmp, NULL if none) is renamed to
 * data_path just before, once the model is complete. */
static int write_atomic(const char *path, const Onnx__ModelProto *proto, const uint8_t *buf,
                        size_t len, const char *data_tmp, const char *data_path, size_t *written,
                        struct bnf_error *err)
{
	char tmp[PATH_MAX];
	int slot = -1, e, rc;
	FILE *f = open_temp(path, tmp, sizeof(tmp), &slot, err);

	if (!f)
		return err ? err->status : BNF_ERR_IO;
	e = fill_temp(f, proto, buf, len, written);
	if (e)
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(e));
	else
		rc = commit_temp(tmp, path, data_tmp, data_path, err);
	if (rc != BNF_OK)
		unlink(tmp);
	bnf_temp_untrack(slot);
	return rc;
}

/* ---- a write that runs beside the check ---- */

static void *staged_main(void *arg)
{
	struct bnf_staged_write *sw = arg;

	sw->errnum = fill_temp(sw->f, sw->proto, NULL, 0, &sw->written);
	sw->f = NULL;
	return NULL;
}

int bnf_model_write_start(const char *path, const Onnx__ModelProto *proto,
                          struct bnf_staged_write *sw, struct bnf_error *err)
{
	memset(sw, 0, sizeof(*sw));
	if ((size_t)snprintf(sw->path, sizeof(sw->path), "%s", path) >= sizeof(sw->path))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", path);
	sw->proto = proto;
	sw->f = open_temp(path, sw->tmp, sizeof(sw->tmp), &sw->slot, err);
	if (!sw->f)
		return err ? err->status : BNF_ERR_IO;
	sw->open = 1;
	if (bnf_thread_start(&sw->thread, staged_main, sw) == 0)
		sw->started = 1;
	else
		staged_main(sw); /* no thread: write it now */
	return BNF_OK;
}

static void staged_wait(struct bnf_staged_write *sw)
{
	if (sw->started) {
		pthread_join(sw->thread, NULL);
		sw->started = 0;
	}
}

int bnf_model_write_commit(struct bnf_staged_write *sw, size_t *written, struct bnf_error *err)
{
	int rc;

	staged_wait(sw);
	if (!sw->open)
		return bnf_fail(err, BNF_ERR_IO, "no write in progress");
	sw->open = 0;
	if (sw->errnum)
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", sw->path,
		              strerror(sw->errnum));
	else
		rc = commit_temp(sw->tmp, sw->path, NULL, NULL, err);
	if (rc != BNF_OK)
		unlink(sw->tmp);
	else if (written)
		*written = sw->written;
	bnf_temp_untrack(sw->slot);
	return rc;
}

void bnf_model_write_abort(struct bnf_staged_write *sw)
{
	staged_wait(sw);
	if (sw->open) {
		unlink(sw->tmp);
		bnf_temp_untrack(sw->slot);
	}
	sw->open = 0;
}

int bnf_model_write(const char *path, const Onnx__ModelProto *proto, size_t *written,
                    struct bnf_error *err)
{
	if (strcmp(path, "-") == 0)
		return write_stdout(proto, NULL, 0, written, err);
	return write_atomic(path, proto, NULL, 0, NULL, NULL, written, err);
}

int bnf_model_write_bytes(const char *path, const uint8_t *buf, size_t len, struct bnf_error *err)
{
	if (strcmp(path, "-") == 0)
		return write_stdout(NULL, buf, len, NULL, err);
	return write_atomic(path, NULL, buf, len, NULL, NULL, NULL, err);
}

int bnf_model_write_pair(const char *path, const Onnx__ModelProto *proto, const char *data_tmp,
                         const char *data_path, size_t *written, struct bnf_error *err)
{
	if (strcmp(path, "-") == 0)
		return bnf_fail(err, BNF_ERR_IO,
		                "cannot write a model with a data file to <stdout>");
	return write_atomic(path, proto, NULL, 0, data_tmp, data_path, written, err);
}

const char *bnf_node_label(const Onnx__NodeProto *node)
{
	if (node->name && node->name[0])
		return node->name;
	if (node->n_output > 0 && node->output[0][0])
		return node->output[0];
	return node->op_type ? node->op_type : "?";
}

/* ---- the digest of a model as packed ---- */

struct hashing_buffer {
	ProtobufCBuffer base; /* first: protobuf-c calls base.append */
	struct bnf_sha256 h;
};

static void hashing_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
	struct hashing_buffer *hb = (struct hashing_buffer *)buffer;
	bnf_sha256_update(&hb->h, data, len);
}

void bnf_model_sha256(const Onnx__ModelProto *model, char hex[65])
{
	struct hashing_buffer hb;

	hb.base.append = hashing_append;
	bnf_sha256_init(&hb.h);
	onnx__model_proto__pack_to_buffer(model, &hb.base);
	bnf_sha256_hex(&hb.h, hex);
}
