/*
 * The shapes of the check's made-up inputs (bnf_inputs_choose in inputs.h),
 * in the order of authority: what the user gave, what the model declares,
 * what it implies (input_facts.c), the batch, then sizes the evaluator
 * accepts (input_probe.c).
 */
#include "check/inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/input_choose.h"
#include "graph/graph.h"

/* The sizes tried first, and the least a spatial dim may get. */
#define SPATIAL_PREFERRED_2D 224
#define SPATIAL_PREFERRED_3D 64
#define SPATIAL_MIN          32
#define OTHER_PREFERRED      16

static const char *const source_names[BNF_DIM_SOURCE_COUNT] = {
    [BNF_DIM_SOURCE_USER] = "user",         [BNF_DIM_SOURCE_FILE] = "file",
    [BNF_DIM_SOURCE_DECLARED] = "declared", [BNF_DIM_SOURCE_MODEL] = "model",
    [BNF_DIM_SOURCE_BATCH] = "batch",       [BNF_DIM_SOURCE_PROBED] = "probed",
    [BNF_DIM_SOURCE_DEFAULT] = "default",
};

const char *bnf_dim_source_name(enum bnf_dim_source source)
{
	return (unsigned)source < BNF_DIM_SOURCE_COUNT ? source_names[source] : "?";
}

void bnf_input_shapes_free(struct bnf_input_shapes *shapes)
{
	size_t i;

	if (!shapes)
		return;
	for (i = 0; i < shapes->n; i++) {
		free(shapes->inputs[i].name);
		bnf_tensor_free(shapes->inputs[i].value);
	}
	free(shapes->inputs);
	memset(shapes, 0, sizeof(*shapes));
}

static int is_initializer(const Onnx__GraphProto *g, const char *name)
{
	size_t i;
	for (i = 0; i < g->n_initializer; i++)
		if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
			return 1;
	return 0;
}

/* The graph inputs the evaluator needs values for. */
static int is_fed_input(const Onnx__GraphProto *g, const Onnx__ValueInfoProto *vi)
{
	return vi->name && !is_initializer(g, vi->name);
}

const Onnx__TensorShapeProto *bnf_choose_declared_shape(const Onnx__ValueInfoProto *vi)
{
	if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
		return NULL;
	return vi->type->tensor_type->shape;
}

/* ---- setting dims ---- */

static void set_one(struct bnf_input_shape *s, int axis, int64_t v, enum bnf_dim_source source,
                    const char *origin)
{
	s->dims[axis] = v;
	s->source[axis] = (unsigned char)source;
	snprintf(s->origin[axis], sizeof(s->origin[axis]), "%s", origin ? origin : "");
}

void bnf_choose_settle(struct chooser *c, size_t i, int axis, int64_t v, enum bnf_dim_source source,
                       const char *origin)
{
	const char *sym = c->sym[i][axis];
	size_t j;
	int a;

	if (c->out->inputs[i].dims[axis] != BNF_CHOOSE_UNKNOWN || v < 0)
		return;
	set_one(&c->out->inputs[i], axis, v, source, origin);
	for (j = 0; sym && j < c->out->n; j++)
		for (a = 0; a < c->out->inputs[j].rank; a++)
			if (c->out->inputs[j].dims[a] == BNF_CHOOSE_UNKNOWN && c->sym[j][a] &&
			    strcmp(c->sym[j][a], sym) == 0)
				set_one(&c->out->inputs[j], a, v, source, origin);
}

int bnf_choose_count_unknown(const struct bnf_input_shape *s)
{
	int a, n = 0;
	for (a = 0; a < s->rank; a++)
		n += s->dims[a] == BNF_CHOOSE_UNKNOWN;
	return n;
}

int bnf_choose_op_in(const Onnx__NodeProto *node, const char *const *ops, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (bnf_node_is(node, ops[i]))
			return 1;
	return 0;
}

int bnf_choose_constant(const struct chooser *c, const char *name, struct bnf_const_ref *ref)
{
	return name && name[0] && bnf_graph_constant(&c->gi, name, ref);
}

/* ---- what the user gave and the model declares ---- */

static const struct bnf_shape_arg *shape_arg(const struct bnf_input_spec *spec, const char *name)
{
	size_t i;
	for (i = 0; i < spec->n_shapes; i++)
		if (strcmp(spec->shapes[i].name, name) == 0)
			return &spec->shapes[i];
	return NULL;
}

static const char *file_arg(const struct bnf_input_spec *spec, const char *name)
{
	const char *path = NULL;
	size_t i;
	for (i = 0; i < spec->n_files; i++)
		if (strcmp(spec->files[i].name, name) == 0)
			path = spec->files[i].path; /* the last one given wins */
	return path;
}

/* Input i as --shape, its --input file or its declaration say. */
static int collect_input(struct chooser *c, const Onnx__ValueInfoProto *vi,
                         const struct bnf_input_spec *spec, size_t i)
{
	struct bnf_input_shape *s = &c->out->inputs[i];
	const Onnx__TensorShapeProto *sh = bnf_choose_declared_shape(vi);
	const struct bnf_shape_arg *given = shape_arg(spec, vi->name);
	const char *file = file_arg(spec, vi->name);
	size_t d, k;

	if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
		return bnf_fail(c->err, BNF_ERR_UNSUPPORTED, "graph input '%s' is not a tensor",
		                vi->name);
	if (!(s->name = strdup(vi->name)))
		return bnf_fail(c->err, BNF_ERR_NOMEM, "out of memory");
	s->dtype = vi->type->tensor_type->has_elem_type ? vi->type->tensor_type->elem_type : 0;
	c->decl_rank[i] = sh && sh->n_dim <= BNF_MAX_RANK ? (int)sh->n_dim : -1;
	for (d = 0; c->decl_rank[i] > 0 && d < sh->n_dim; d++)
		if (sh->dim[d]->value_case ==
		        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
		    sh->dim[d]->dim_param && sh->dim[d]->dim_param[0])
			c->sym[i][d] = sh->dim[d]->dim_param;
	if (given) {
		s->rank = given->rank;
		for (d = 0; d < (size_t)s->rank; d++)
			set_one(s, (int)d, given->dims[d], BNF_DIM_SOURCE_USER, NULL);
	} else if (file) {
		int rc = bnf_tensor_load(file, &s->value, c->err);
		if (rc != BNF_OK)
			return rc;
		if (s->dtype && s->value->dtype != s->dtype)
			return bnf_fail(c->err, BNF_ERR_INPUT,
			                "--input %s: file holds %s, the model declares %s", s->name,
			                bnf_dtype_name(s->value->dtype), bnf_dtype_name(s->dtype));
		s->dtype = s->value->dtype;
		s->rank = s->value->rank;
		for (d = 0; d < (size_t)s->rank; d++)
			set_one(s, (int)d, s->value->dims[d], BNF_DIM_SOURCE_FILE, NULL);
	} else if (!sh || c->decl_rank[i] < 0) {
		return bnf_fail(c->err, BNF_ERR_UNSUPPORTED,
		                "graph input '%s' has %s; give its shape with --shape %s=DIMS",
		                vi->name, sh ? "too many dimensions" : "no declared shape",
		                vi->name);
	} else {
		s->rank = c->decl_rank[i];
		for (d = 0; d < sh->n_dim; d++) {
			const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
			s->dims[d] = BNF_CHOOSE_UNKNOWN; /* a dim_param, nothing, or negative */
			if (dim->value_case ==
			        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			    dim->dim_value >= 0)
				set_one(s, (int)d, dim->dim_value, BNF_DIM_SOURCE_DECLARED, NULL);
			for (k = 0; c->sym[i][d] && k < spec->n_dims; k++)
				if (strcmp(spec->dims[k].symbol, c->sym[i][d]) == 0)
					set_one(s, (int)d, spec->dims[k].value, BNF_DIM_SOURCE_USER,
					        NULL);
		}
	}
	if (given || file || c->decl_rank[i] != s->rank)
		memset(c->sym[i], 0, sizeof(c->sym[i])); /* its dims are all known */
	for (d = 0; d < (size_t)s->rank && c->decl_rank[i] == s->rank; d++)
		if (sh->dim[d]->value_case ==
		        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
		    sh->dim[d]->dim_param)
			snprintf(s->symbol[d], sizeof(s->symbol[d]), "%s", sh->dim[d]->dim_param);
	return BNF_OK;
}

/* Symbols that a --shape or an --input file fixes hold for the other
 * inputs declared with them. */
static void bind_given_symbols(struct chooser *c, const Onnx__GraphProto *g)
{
	size_t i, j = 0;
	int a;

	for (i = 0; i < g->n_input; i++) {
		const Onnx__TensorShapeProto *sh;
		struct bnf_input_shape *s;
		char origin[112];
		if (!is_fed_input(g, g->input[i]))
			continue;
		s = &c->out->inputs[j++];
		sh = bnf_choose_declared_shape(g->input[i]);
		if (!sh || (int)sh->n_dim != s->rank || s->rank == 0 ||
		    (s->source[0] != BNF_DIM_SOURCE_USER && s->source[0] != BNF_DIM_SOURCE_FILE))
			continue;
		snprintf(origin, sizeof(origin), "the shape of '%s'", s->name);
		for (a = 0; a < s->rank; a++) {
			const Onnx__TensorShapeProto__Dimension *d = sh->dim[a];
			size_t k;
			int b;
			if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ||
			    !d->dim_param)
				continue;
			for (k = 0; k < c->out->n; k++)
				for (b = 0; b < c->out->inputs[k].rank; b++)
					if (c->sym[k][b] && strcmp(c->sym[k][b], d->dim_param) == 0)
						bnf_choose_settle(c, k, b, s->dims[a],
						                  (enum bnf_dim_source)s->source[a],
						                  origin);
		}
	}
}

/* ---- the unknown dims that remain ---- */

/* Axis 0 is the batch: 1. */
static void set_batch(struct chooser *c)
{
	size_t i;
	for (i = 0; i < c->out->n; i++)
		if (c->out->inputs[i].rank > 0)
			bnf_choose_settle(c, i, 0, 1, BNF_DIM_SOURCE_BATCH, NULL);
}

/* The first spatial axis of an image-like input: rank 4 or 5 with known
 * channels, at axis 1 (NCHW, ONNX's layout) or last (NHWC, as converted
 * TensorFlow models keep it); 0 when the input is not one. */
static int first_spatial_axis(const struct bnf_input_shape *s)
{
	if (s->rank != 4 && s->rank != 5)
		return 0;
	if (s->dims[1] != BNF_CHOOSE_UNKNOWN)
		return 2;
	return s->dims[s->rank - 1] != BNF_CHOOSE_UNKNOWN ? 1 : 0;
}

/* The unknown spatial dims of image-like inputs are spatial, all other
 * unknown dims "other". A symbol is spatial when it is spatial anywhere. */
static void classify(struct chooser *c)
{
	size_t i, j;
	int a, b;

	for (i = 0; i < c->out->n; i++) {
		struct bnf_input_shape *s = &c->out->inputs[i];
		int first = first_spatial_axis(s);
		for (a = 0; a < s->rank; a++) {
			if (s->dims[a] != BNF_CHOOSE_UNKNOWN)
				continue;
			if (!first || a < first || a > first + s->rank - 3) {
				if (c->group[i][a] == BNF_CHOOSE_GROUP_NONE)
					c->group[i][a] = BNF_CHOOSE_GROUP_OTHER;
				continue;
			}
			c->group[i][a] = BNF_CHOOSE_GROUP_SPATIAL;
			for (j = 0; c->sym[i][a] && j < c->out->n; j++)
				for (b = 0; b < c->out->inputs[j].rank; b++)
					if (c->sym[j][b] && strcmp(c->sym[j][b], c->sym[i][a]) == 0)
						c->group[j][b] = BNF_CHOOSE_GROUP_SPATIAL;
		}
		if (first && s->rank == 4)
			c->preferred[BNF_CHOOSE_GROUP_SPATIAL] = SPATIAL_PREFERRED_2D;
	}
}

/* ---- the whole choice ---- */

int bnf_inputs_check_names(const Onnx__ModelProto *model, const struct bnf_input_spec *spec,
                           struct bnf_error *err)
{
	const Onnx__GraphProto *g = model->graph;
	size_t i, j, d;
	int found;

	for (j = 0; j < spec->n_files + spec->n_shapes; j++) {
		int is_file = j < spec->n_files;
		const char *name =
		    is_file ? spec->files[j].name : spec->shapes[j - spec->n_files].name;
		for (i = 0, found = 0; i < g->n_input && !found; i++)
			found =
			    is_fed_input(g, g->input[i]) && strcmp(g->input[i]->name, name) == 0;
		if (!found)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "%s %s: the model has no such graph input",
			                is_file ? "--input" : "--shape", name);
	}
	for (j = 0; j < spec->n_dims; j++) {
		for (i = 0, found = 0; i < g->n_input && !found; i++) {
			const Onnx__TensorShapeProto *sh = bnf_choose_declared_shape(g->input[i]);
			for (d = 0; sh && d < sh->n_dim; d++)
				if (sh->dim[d]->value_case ==
				        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
				    sh->dim[d]->dim_param &&
				    strcmp(sh->dim[d]->dim_param, spec->dims[j].symbol) == 0)
					found = 1;
		}
		if (!found)
			return bnf_fail(err, BNF_ERR_INPUT,
			                "--dim %s: no graph input has a dimension of that name",
			                spec->dims[j].symbol);
	}
	return BNF_OK;
}

static void chooser_free(struct chooser *c)
{
	bnf_graph_release(&c->gi);
	free(c->sym);
	free(c->decl_rank);
	free(c->group);
}

int bnf_inputs_choose(const Onnx__ModelProto *model, const struct bnf_input_spec *spec,
                      const struct bnf_eval_options *probe, struct bnf_input_shapes *out,
                      struct bnf_error *err)
{
	const Onnx__GraphProto *g = model->graph;
	struct chooser c;
	size_t i, n = 0;
	int rc, a;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if ((rc = bnf_inputs_check_names(model, spec, err)) != BNF_OK)
		return rc;
	for (i = 0; i < g->n_input; i++)
		n += is_fed_input(g, g->input[i]);
	c.model = model;
	c.g = g;
	c.out = out;
	c.err = err;
	out->inputs = calloc(n + 1, sizeof(*out->inputs));
	c.sym = calloc(n + 1, sizeof(*c.sym));
	c.decl_rank = calloc(n + 1, sizeof(*c.decl_rank));
	c.group = calloc(n + 1, sizeof(*c.group));
	if (!out->inputs || !c.sym || !c.decl_rank || !c.group) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* The index borrows the graph and does not change it. */
	rc = bnf_graph_build(&c.gi, model->graph, NULL, bnf_model_opset(model), err);
	for (i = 0; rc == BNF_OK && i < g->n_input; i++)
		if (is_fed_input(g, g->input[i]))
			rc = collect_input(&c, g->input[i], spec, out->n++);
	if (rc != BNF_OK)
		goto out;
	c.preferred[BNF_CHOOSE_GROUP_SPATIAL] = SPATIAL_PREFERRED_3D;
	c.preferred[BNF_CHOOSE_GROUP_OTHER] = OTHER_PREFERRED;
	c.minimum[BNF_CHOOSE_GROUP_SPATIAL] = SPATIAL_MIN;
	c.minimum[BNF_CHOOSE_GROUP_OTHER] = 1;
	c.stride[BNF_CHOOSE_GROUP_SPATIAL] = c.stride[BNF_CHOOSE_GROUP_OTHER] = 1;
	bind_given_symbols(&c, g);
	for (i = 0; i < out->n; i++) {
		bnf_choose_facts_declared(&c, i);
		bnf_choose_facts_consumers(&c, i);
	}
	bnf_choose_facts_metadata(&c);
	/* With the batch set, a Reshape target may fix the one dim left. */
	set_batch(&c);
	for (i = 0; i < out->n; i++)
		bnf_choose_facts_consumers(&c, i);
	classify(&c);
	bnf_choose_sizes(&c, probe);
	for (i = 0; i < out->n; i++)
		for (a = 0; a < out->inputs[i].rank; a++)
			out->n_chosen += out->inputs[i].source[a] >= BNF_DIM_SOURCE_MODEL;
out:
	chooser_free(&c);
	if (rc != BNF_OK)
		bnf_input_shapes_free(out);
	return rc;
}
