/*
 * Model file I/O: whole-file reads (paths and stdin), protobuf-c unpacking
 * with the checks bnfold needs before it trusts a model, and atomic writes
 * (temporary file in the target folder, fsync, rename).
 */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *bnf_path_label(const char *path, int writing)
{
	if (strcmp(path, "-") == 0)
		return writing ? "<stdout>" : "<stdin>";
	return path;
}

int bnf_read_file(const char *path, uint8_t **buf, size_t *len, struct bnf_error *err)
{
	const char *label = bnf_path_label(path, 0);
	int fd = STDIN_FILENO;
	uint8_t *data = NULL;
	size_t cap = 0, used = 0;
	struct stat st;
	int rc = BNF_OK;

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return bnf_fail(err, BNF_ERR_IO, "cannot open '%s': %s", label, strerror(errno));
	}
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
				rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading '%s'", label);
				goto out;
			}
			data = p;
			cap = bigger;
		}
		if (!data) {
			data = malloc(cap);
			if (!data) {
				rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading '%s'", label);
				goto out;
			}
		}
		n = read(fd, data + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = bnf_fail(err, BNF_ERR_IO, "cannot read '%s': %s", label, strerror(errno));
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
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

/* Walk every tensor of a graph (initializers, Constant values and nested
 * subgraphs) and refuse external data, which bnfold cannot read yet. */
static int graph_refuse_external(const Onnx__GraphProto *g, const char *label,
				 struct bnf_error *err);

static int tensor_refuse_external(const Onnx__TensorProto *t, const char *label,
				  struct bnf_error *err)
{
	size_t i;
	const char *location = "?";

	if (!t)
		return BNF_OK;
	if (!(t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) &&
	    t->n_external_data == 0)
		return BNF_OK;
	for (i = 0; i < t->n_external_data; i++)
		if (t->external_data[i]->key && strcmp(t->external_data[i]->key, "location") == 0 &&
		    t->external_data[i]->value)
			location = t->external_data[i]->value;
	return bnf_fail(err, BNF_ERR_UNSUPPORTED,
			"%s: tensor '%s' keeps its data in an external file ('%s'), "
			"which this version of bnfold cannot read",
			label, t->name ? t->name : "", location);
}

static int attribute_refuse_external(const Onnx__AttributeProto *a, const char *label,
				     struct bnf_error *err)
{
	size_t i;
	int rc;

	if ((rc = tensor_refuse_external(a->t, label, err)) != BNF_OK)
		return rc;
	for (i = 0; i < a->n_tensors; i++)
		if ((rc = tensor_refuse_external(a->tensors[i], label, err)) != BNF_OK)
			return rc;
	if (a->sparse_tensor && (rc = tensor_refuse_external(a->sparse_tensor->values, label, err)) != BNF_OK)
		return rc;
	if (a->g && (rc = graph_refuse_external(a->g, label, err)) != BNF_OK)
		return rc;
	for (i = 0; i < a->n_graphs; i++)
		if ((rc = graph_refuse_external(a->graphs[i], label, err)) != BNF_OK)
			return rc;
	return BNF_OK;
}

static int nodes_refuse_external(Onnx__NodeProto *const *nodes, size_t n, const char *label,
				 struct bnf_error *err)
{
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++)
		for (j = 0; j < nodes[i]->n_attribute; j++)
			if ((rc = attribute_refuse_external(nodes[i]->attribute[j], label, err)) != BNF_OK)
				return rc;
	return BNF_OK;
}

static int graph_refuse_external(const Onnx__GraphProto *g, const char *label,
				 struct bnf_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < g->n_initializer; i++)
		if ((rc = tensor_refuse_external(g->initializer[i], label, err)) != BNF_OK)
			return rc;
	for (i = 0; i < g->n_sparse_initializer; i++)
		if ((rc = tensor_refuse_external(g->sparse_initializer[i]->values, label, err)) != BNF_OK)
			return rc;
	return nodes_refuse_external(g->node, g->n_node, label, err);
}

static int model_refuse_external(const Onnx__ModelProto *m, const char *label,
				 struct bnf_error *err)
{
	size_t i;
	int rc;

	if ((rc = graph_refuse_external(m->graph, label, err)) != BNF_OK)
		return rc;
	for (i = 0; i < m->n_functions; i++)
		if ((rc = nodes_refuse_external(m->functions[i]->node, m->functions[i]->n_node,
						label, err)) != BNF_OK)
			return rc;
	for (i = 0; i < m->n_training_info; i++) {
		const Onnx__TrainingInfoProto *ti = m->training_info[i];
		if (ti->initialization && (rc = graph_refuse_external(ti->initialization, label, err)) != BNF_OK)
			return rc;
		if (ti->algorithm && (rc = graph_refuse_external(ti->algorithm, label, err)) != BNF_OK)
			return rc;
	}
	return BNF_OK;
}

int bnf_model_read(const char *path, struct bnf_model *model, struct bnf_error *err)
{
	const char *label = bnf_path_label(path, 0);
	int rc;

	memset(model, 0, sizeof(*model));
	if ((rc = bnf_read_file(path, &model->bytes, &model->size, err)) != BNF_OK)
		return rc;
	if (model->size == 0) {
		rc = bnf_fail(err, BNF_ERR_INPUT, "%s: empty file, not an ONNX model", label);
		goto fail;
	}
	model->proto = onnx__model_proto__unpack(NULL, model->size, model->bytes);
	if (!model->proto) {
		rc = bnf_fail(err, BNF_ERR_INPUT,
			      "%s: not a valid ONNX model (the protobuf data is truncated or corrupt)",
			      label);
		goto fail;
	}
	if (!model->proto->graph) {
		rc = bnf_fail(err, BNF_ERR_INPUT, "%s: not an ONNX model (it has no graph)", label);
		goto fail;
	}
	if ((rc = model_refuse_external(model->proto, label, err)) != BNF_OK)
		goto fail;
	return BNF_OK;
fail:
	bnf_model_release(model);
	return rc;
}

void bnf_model_release(struct bnf_model *model)
{
	if (!model)
		return;
	if (model->proto)
		onnx__model_proto__free_unpacked(model->proto, NULL);
	free(model->bytes);
	memset(model, 0, sizeof(*model));
}

void bnf_model_drop_bytes(struct bnf_model *model)
{
	free(model->bytes);
	model->bytes = NULL;
}

/* A protobuf-c output sink that streams packed bytes into a stdio stream,
 * so the packed model never exists twice in memory. */
struct file_sink {
	ProtobufCBuffer base;
	FILE *f;
	int failed;      /* errno of the first failed write, 0 if none */
	size_t written;
};

static void file_sink_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
	struct file_sink *sink = (struct file_sink *)buffer;

	if (sink->failed || len == 0)
		return;
	if (fwrite(data, 1, len, sink->f) != len)
		sink->failed = errno ? errno : EIO;
	else
		sink->written += len;
}

/* Write the model or the byte buffer (exactly one is non-NULL) to f. */
static int stream_write(FILE *f, const Onnx__ModelProto *proto, const uint8_t *buf, size_t len,
			size_t *written)
{
	struct file_sink sink;

	memset(&sink, 0, sizeof(sink));
	sink.base.append = file_sink_append;
	sink.f = f;
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
		return bnf_fail(err, BNF_ERR_IO,
				"refusing to write a binary model to a terminal; redirect standard output");
	e = stream_write(stdout, proto, buf, len, written);
	if (e)
		return bnf_fail(err, BNF_ERR_IO, "cannot write to <stdout>: %s", strerror(e));
	return BNF_OK;
}

/* The folder part of path, for the temporary file ("." when none). */
static int path_folder(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		if (len < 2)
			return -1;
		strcpy(out, ".");
		return 0;
	}
	n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* "/model.onnx": the root folder */
	if (n + 1 > len)
		return -1;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

static int write_atomic(const char *path, const Onnx__ModelProto *proto, const uint8_t *buf,
			size_t len, size_t *written, struct bnf_error *err)
{
	char folder[PATH_MAX];
	char tmp[PATH_MAX];
	FILE *f = NULL;
	int fd = -1, e, rc = BNF_OK;
	mode_t mask;
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': is a directory", path);
	if (path_folder(path, folder, sizeof(folder)) != 0 ||
	    snprintf(tmp, sizeof(tmp), "%s/.bnfold-XXXXXX", folder) >= (int)sizeof(tmp))
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': path too long", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
	/* mkstemp makes the file private; give it the mode a plain create
	 * would have had under the user's umask. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		goto fail;
	}
	f = fdopen(fd, "wb");
	if (!f) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	e = stream_write(f, proto, buf, len, written);
	if (!e && fsync(fileno(f)) != 0)
		e = errno;
	if (fclose(f) != 0 && !e)
		e = errno;
	f = NULL;
	if (e) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(e));
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		rc = bnf_fail(err, BNF_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		goto fail;
	}
	return BNF_OK;
fail:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int bnf_model_write(const char *path, const Onnx__ModelProto *proto, size_t *written,
		    struct bnf_error *err)
{
	if (strcmp(path, "-") == 0)
		return write_stdout(proto, NULL, 0, written, err);
	return write_atomic(path, proto, NULL, 0, written, err);
}

int bnf_model_write_bytes(const char *path, const uint8_t *buf, size_t len,
			  struct bnf_error *err)
{
	if (strcmp(path, "-") == 0)
		return write_stdout(NULL, buf, len, NULL, err);
	return write_atomic(path, NULL, buf, len, NULL, err);
}
