/*
 * The equivalence check (see verify.h). Comparisons follow numpy's rule,
 * |a - b| <= atol + rtol * |b|, with atol scaled by the output's RMS so that
 * rounding noise on large outputs is not called a failure, and any NaN or
 * infinity reported instead of compared.
 */
#include "check/verify.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "graph/graph.h"
#include "util/mem.h"
#include "util/thread.h"
#include "io/validate.h"

void bnf_default_tolerance(int dtype, double *atol, double *rtol)
{
	switch (dtype) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
		*atol = 1e-3;
		*rtol = 1e-2;
		break;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
		*atol = 1e-2;
		*rtol = 5e-2;
		break;
	default:
		*atol = 1e-5;
		*rtol = 1e-4;
		break;
	}
}

void bnf_verify_report_free(struct bnf_verify_report *rep)
{
	size_t i;
	if (!rep)
		return;
	for (i = 0; i < rep->n_outputs; i++)
		free(rep->outputs[i].name);
	for (i = 0; i < rep->n_folds; i++) {
		free(rep->folds[i].bn_name);
		free(rep->folds[i].op_type);
		free(rep->folds[i].target);
		free(rep->folds[i].note);
	}
	free(rep->outputs);
	free(rep->folds);
	bnf_input_shapes_free(&rep->inputs);
	memset(rep, 0, sizeof(*rep));
}

/* Running sums of a comparison, so several samples add up to one figure. */
struct compare_acc {
	double max_abs, max_rel, sum_sq_diff, sum_sq_ref;
	size_t n, n_bad, nan_a, nan_b;
	int shape_mismatch;
};

/* Compare a (under test) with b (reference) element by element. */
static void compare_tensors(const struct bnf_tensor *a, const struct bnf_tensor *b, double atol,
                            double rtol, int allow_nan, struct compare_acc *acc)
{
	double rms = 0.0, scaled_atol;
	size_t i;
	int d;

	if (a->count != b->count || a->rank != b->rank) {
		acc->shape_mismatch = 1;
		return;
	}
	for (d = 0; d < a->rank; d++)
		if (a->dims[d] != b->dims[d]) {
			acc->shape_mismatch = 1;
			return;
		}
	for (i = 0; i < b->count; i++) {
		double v = bnf_tensor_get_double(b, i);
		if (isfinite(v))
			rms += v * v;
	}
	rms = b->count ? sqrt(rms / (double)b->count) : 0.0;
	scaled_atol = atol * (rms > 1.0 ? rms : 1.0);
	for (i = 0; i < a->count; i++) {
		double x = bnf_tensor_get_double(a, i), y = bnf_tensor_get_double(b, i), diff;
		int fx = isfinite(x), fy = isfinite(y);
		acc->n++;
		if (!fx)
			acc->nan_a++;
		if (!fy)
			acc->nan_b++;
		if (!fx || !fy) {
			/* Non-finite values are never "close": they pass only when
			 * asked to and when both runs have the same value here. */
			int same = (isnan(x) && isnan(y)) || x == y;
			if (!(allow_nan && same))
				acc->n_bad++;
			continue;
		}
		diff = fabs(x - y);
		if (diff > acc->max_abs)
			acc->max_abs = diff;
		if (fabs(y) > 0 && diff / fabs(y) > acc->max_rel)
			acc->max_rel = diff / fabs(y);
		acc->sum_sq_diff += diff * diff;
		acc->sum_sq_ref += y * y;
		if (diff > scaled_atol + rtol * fabs(y))
			acc->n_bad++;
	}
}

static void tolerance_for(const struct bnf_verify_options *opt, int dtype, double *atol,
                          double *rtol)
{
	bnf_default_tolerance(dtype, atol, rtol);
	if (opt->atol >= 0)
		*atol = opt->atol;
	if (opt->rtol >= 0)
		*rtol = opt->rtol;
}

static void free_outputs(struct bnf_tensor **outs, size_t n)
{
	size_t i;
	if (!outs)
		return;
	for (i = 0; i < n; i++)
		bnf_tensor_free(outs[i]);
	free(outs);
}

/* One evaluation, as a job that may run on a thread of its own. */
struct run_job {
	const Onnx__ModelProto *model;
	const struct bnf_verify_options *opt;
	const struct bnf_named_tensors *in;
	int promote;
	int threads;
	struct bnf_tensor **outs;
	struct bnf_error err;
	int rc;
};

static void *run_job_main(void *arg)
{
	struct run_job *j = arg;
	struct bnf_eval_options eo;

	memset(&eo, 0, sizeof(eo));
	eo.threads = j->threads > 0 ? j->threads : 1;
	eo.promote_double = j->promote;
	eo.max_bytes = j->opt->max_bytes;
	eo.ext = j->opt->ext;
	j->rc = bnf_eval_run(j->model, &eo, j->in->n, (const char *const *)j->in->names,
	                     (struct bnf_tensor *const *)j->in->tensors, &j->outs, &j->err);
	return NULL;
}

static void run_job_init(struct run_job *j, const Onnx__ModelProto *m,
                         const struct bnf_verify_options *opt, int promote,
                         const struct bnf_named_tensors *in)
{
	memset(j, 0, sizeof(*j));
	j->model = m;
	j->opt = opt;
	j->promote = promote;
	j->in = in;
	j->threads = opt->threads > 0 ? opt->threads : 1;
}

/* Run the jobs, side by side when there are threads for it: job 0 and
 * those past the threads on the calling thread, in order, the others on
 * threads of their own. The cores are shared out between the jobs that run
 * at once (the evaluator's results do not depend on how many threads it
 * has). Returns the first failure, its message in err. */
#define RUN_JOBS_MAX 3
static int run_jobs(struct run_job *jobs, int n, int threads, struct bnf_error *err)
{
	pthread_t tid[RUN_JOBS_MAX];
	int started[RUN_JOBS_MAX] = {0}, conc, i;

	conc = threads < n ? (threads > 0 ? threads : 1) : n;
	for (i = 0; i < n; i++)
		jobs[i].threads = i < conc ? threads / conc + (i < threads % conc) : 1;
	for (i = 1; i < conc; i++)
		started[i] = bnf_thread_start(&tid[i], run_job_main, &jobs[i]) == 0;
	for (i = 0; i < n; i++)
		if (i == 0 || i >= conc || !started[i])
			run_job_main(&jobs[i]);
	for (i = 1; i < conc; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	for (i = 0; i < n; i++)
		if (jobs[i].rc != BNF_OK) {
			if (err)
				*err = jobs[i].err;
			return jobs[i].rc;
		}
	return BNF_OK;
}

/* All the operators the evaluator lacks, in one message. */
static int unsupported(const Onnx__ModelProto *m, const char *which, struct bnf_error *err)
{
	char op[300], node[160];
	size_t n = bnf_eval_find_unsupported(m, op, sizeof(op), node, sizeof(node));

	if (n)
		return bnf_fail(err, BNF_ERR_UNSUPPORTED,
		                "the evaluator does not support operator%s %s (%snode '%s' of the "
		                "%s model)",
		                n > 1 ? "s" : "", op, n > 1 ? "first at " : "", node, which);
	return BNF_OK;
}

/* The shapes of the check's inputs, chosen by probing the reference. */
static int choose_shapes(const Onnx__ModelProto *a, const struct bnf_verify_options *opt,
                         struct bnf_input_shapes *shapes, struct bnf_error *err)
{
	struct bnf_eval_options probe;

	memset(&probe, 0, sizeof(probe));
	probe.threads = 1;
	probe.max_bytes = opt->max_bytes;
	probe.ext = opt->ext;
	return bnf_inputs_choose(a, opt->inputs, &probe, shapes, err);
}

/* "x=1x3x224x224, mask=1x224" into buf. */
static void format_shapes(const struct bnf_input_shapes *shapes, char *buf, size_t len)
{
	size_t i, used = 0;
	int d;

	buf[0] = '\0';
	for (i = 0; i < shapes->n && used < len; i++) {
		const struct bnf_input_shape *s = &shapes->inputs[i];
		used += (size_t)snprintf(buf + used, len - used, "%s%s=", i ? ", " : "", s->name);
		for (d = 0; d < s->rank && used < len; d++)
			used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? "x" : "",
			                         (long long)s->dims[d]);
		if (s->rank == 0 && used < len)
			used += (size_t)snprintf(buf + used, len - used, "scalar");
	}
}

/* The reference model cannot be run at these inputs: the check cannot
 * run (BNF_ERR_UNSUPPORTED), unless memory ran out. */
static int cannot_run(const struct bnf_input_shapes *shapes, int rc, struct bnf_error *err)
{
	char at[256];

	if (rc == BNF_ERR_NOMEM || rc == BNF_ERR_IO || !err)
		return rc;
	format_shapes(shapes, at, sizeof(at));
	bnf_error_prefix(err, "check could not run: at input shapes %s", at);
	err->status = BNF_ERR_UNSUPPORTED;
	return BNF_ERR_UNSUPPORTED;
}

int bnf_compare_models(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                       const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                       struct bnf_error *err)
{
	struct compare_acc *acc = NULL;
	struct bnf_input_shapes shapes;
	size_t n_out = a->graph->n_output, i;
	int rc, s;

	memset(rep, 0, sizeof(*rep));
	memset(&shapes, 0, sizeof(shapes));
	if ((rc = unsupported(a, "first", err)) != BNF_OK ||
	    (rc = unsupported(b, "second", err)) != BNF_OK)
		return rc;
	if (b->graph->n_output != n_out)
		return bnf_fail(err, BNF_ERR_INPUT, "the models have %zu and %zu outputs", n_out,
		                b->graph->n_output);
	if ((rc = choose_shapes(a, opt, &rep->inputs, err)) != BNF_OK) {
		if (rc == BNF_ERR_UNSUPPORTED)
			bnf_error_prefix(err, "check could not run");
		return rc;
	}
	acc = calloc(n_out + 1, sizeof(*acc));
	rep->outputs = calloc(n_out + 1, sizeof(*rep->outputs));
	if (!acc || !rep->outputs) {
		free(acc);
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	}
	rep->n_outputs = n_out;
	for (i = 0; i < n_out; i++) {
		rep->outputs[i].name =
		    strdup(a->graph->output[i]->name ? a->graph->output[i]->name : "");
		if (!rep->outputs[i].name) {
			rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	for (s = 0; s < opt->samples; s++) {
		struct bnf_named_tensors in;
		struct bnf_tensor **oa = NULL, **ob = NULL;

		struct run_job job[2];

		rc = bnf_inputs_make_shaped(&rep->inputs, opt->seed, s, &in, err);
		if (rc != BNF_OK) {
			if (rc == BNF_ERR_UNSUPPORTED)
				rc = cannot_run(&rep->inputs, rc, err);
			goto out;
		}
		run_job_init(&job[0], a, opt, 0, &in);
		run_job_init(&job[1], b, opt, 0, &in);
		rc = run_jobs(job, 2, opt->threads, err);
		if (job[0].rc != BNF_OK)
			rc = cannot_run(&rep->inputs, job[0].rc, err);
		oa = job[0].outs;
		ob = job[1].outs;
		bnf_named_tensors_free(&in);
		if (rc == BNF_OK) {
			for (i = 0; i < n_out; i++) {
				double atol, rtol;
				rep->outputs[i].dtype = oa[i]->dtype;
				tolerance_for(opt, oa[i]->dtype, &atol, &rtol);
				/* b is the model under test, a the reference. */
				compare_tensors(ob[i], oa[i], atol, rtol, opt->allow_nan, &acc[i]);
			}
		}
		free_outputs(oa, n_out);
		free_outputs(ob, b->graph->n_output);
		if (rc != BNF_OK)
			goto out;
	}
	rep->whole_graph = 1;
	rep->samples = opt->samples;
	rep->pass = 1;
	for (i = 0; i < n_out; i++) {
		struct bnf_output_check *o = &rep->outputs[i];
		o->max_abs = acc[i].max_abs;
		o->max_rel = acc[i].max_rel;
		o->norm_err = acc[i].sum_sq_ref > 0 ? acc[i].sum_sq_diff / acc[i].sum_sq_ref
		                                    : acc[i].sum_sq_diff;
		o->n_elements = acc[i].n;
		o->n_bad = acc[i].n_bad;
		o->nan_a = acc[i].nan_b; /* a is the reference */
		o->nan_b = acc[i].nan_a;
		o->pass = !acc[i].shape_mismatch && acc[i].n_bad == 0;
		if (acc[i].shape_mismatch)
			o->n_bad = o->n_elements ? o->n_elements : 1;
		if (!o->pass)
			rep->pass = 0;
		if (o->max_abs > rep->max_abs)
			rep->max_abs = o->max_abs;
		if (o->max_rel > rep->max_rel)
			rep->max_rel = o->max_rel;
	}
	rc = BNF_OK;
out:
	free(acc);
	if (rc != BNF_OK) {
		/* Which shapes the check could not run at stays in the report. */
		if (rc == BNF_ERR_UNSUPPORTED) {
			shapes = rep->inputs;
			memset(&rep->inputs, 0, sizeof(rep->inputs));
		}
		bnf_verify_report_free(rep);
		rep->inputs = shapes;
	}
	return rc;
}

/* ---- per-fold check ---- */

/* A deep copy of any message of the tree: pack and unpack. */
static void *copy_message(const void *msg, const ProtobufCMessageDescriptor *desc)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len ? len : 1);
	void *copy = NULL;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(msg, buf);
	copy = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	return copy;
}

static int append_ptr(void ***arr, size_t *n, void *item)
{
	void **p = realloc(*arr, (*n + 1) * sizeof(*p));
	if (!p)
		return -1;
	p[(*n)++] = item;
	*arr = p;
	return 0;
}

static Onnx__ValueInfoProto *tensor_value_info(const char *name, int dtype, int rank,
                                               const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = calloc(1, sizeof(*vi));
	Onnx__TypeProto *tp = calloc(1, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = calloc(1, sizeof(*tt));
	Onnx__TensorShapeProto *sh = calloc(1, sizeof(*sh));
	int i;

	if (!vi || !tp || !tt || !sh)
		goto fail;
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	vi->type = tp;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = dtype;
	if (rank >= 0) {
		tt->shape = sh;
		sh = NULL;
		tt->shape->dim = calloc((size_t)rank + 1, sizeof(*tt->shape->dim));
		if (!tt->shape->dim)
			goto fail_tree;
		for (i = 0; i < rank; i++) {
			Onnx__TensorShapeProto__Dimension *d = calloc(1, sizeof(*d));
			if (!d)
				goto fail_tree;
			onnx__tensor_shape_proto__dimension__init(d);
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[i];
			tt->shape->dim[tt->shape->n_dim++] = d;
		}
	}
	free(sh);
	vi->name = strdup(name);
	if (!vi->name)
		goto fail_tree;
	return vi;
fail_tree:
	free(sh);
	onnx__value_info_proto__free_unpacked(vi, &bnf_large_allocator);
	return NULL;
fail:
	free(vi);
	free(tp);
	free(tt);
	free(sh);
	return NULL;
}

/* Where a BN and its layer live: the graph index (with its parents). */
struct pair_site {
	struct bnf_graph index[66]; /* index[depth], parents below it */
	int depth;
	Onnx__NodeProto *node; /* the node producing the wanted value */
};

/* Find, in g and its subgraphs, the node producing `output` (with op type
 * op_type when given). Indexes every graph on the path. */
static int find_site(Onnx__GraphProto *g, int opset, const char *output, const char *op_type,
                     struct pair_site *site, int depth)
{
	struct bnf_graph *gi = &site->index[depth];
	Onnx__NodeProto *node;
	size_t i, j, k;

	if (depth >= BNF_LIMIT_GRAPH_DEPTH ||
	    bnf_graph_build(gi, g, depth ? &site->index[depth - 1] : NULL, opset, NULL) != BNF_OK) {
		bnf_graph_release(gi);
		return 0;
	}
	/* Both runs of a fold's pair take an initializer listed as a graph
	 * input at its initializer's value, as the whole-graph check does: a
	 * constant here (folds of IR < 4 models, --freeze-initializer-inputs). */
	gi->frozen_inputs = 1;
	node = bnf_graph_producer(gi, output, NULL);
	if (node && (!op_type || bnf_node_is(node, op_type))) {
		site->depth = depth;
		site->node = node;
		return 1;
	}
	for (i = 0; i < g->n_node; i++)
		for (j = 0; j < g->node[i]->n_attribute; j++) {
			Onnx__AttributeProto *a = g->node[i]->attribute[j];
			if (a->g && find_site(a->g, opset, output, op_type, site, depth + 1))
				return 1;
			for (k = 0; k < a->n_graphs; k++)
				if (find_site(a->graphs[k], opset, output, op_type, site,
				              depth + 1))
					return 1;
		}
	bnf_graph_release(gi);
	return 0;
}

static void release_site(struct pair_site *site)
{
	int d;
	for (d = 0; d <= site->depth; d++)
		bnf_graph_release(&site->index[d]);
}

/* Free a chain model: its initializers are shallow copies of the source
 * model's tensors, of which only the struct and the name are its own. */
static void free_chain_model(Onnx__ModelProto *m)
{
	Onnx__GraphProto *g;
	size_t i;

	if (!m)
		return;
	g = m->graph;
	for (i = 0; g && i < g->n_initializer; i++) {
		free(g->initializer[i]->name);
		free(g->initializer[i]);
	}
	if (g) {
		free(g->initializer);
		g->initializer = NULL;
		g->n_initializer = 0;
	}
	onnx__model_proto__free_unpacked(m, &bnf_large_allocator);
}

/* Make the constant t, read as name, an initializer of g (once): a
 * shallow copy, the weights are borrowed. Returns 0 or -1. */
static int add_borrowed_initializer(Onnx__GraphProto *g, const char *name,
                                    const Onnx__TensorProto *t)
{
	Onnx__TensorProto *copy;
	size_t j;

	for (j = 0; j < g->n_initializer; j++)
		if (strcmp(g->initializer[j]->name, name) == 0)
			return 0;
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -1;
	*copy = *t;
	copy->name = strdup(name);
	if (!copy->name || append_ptr((void ***)&g->initializer, &g->n_initializer, copy)) {
		free(copy->name);
		free(copy);
		return -1;
	}
	return 0;
}

/* A value computed only from constants (Reshape of a Constant, ...):
 * its subgraph and constants go into g too. Returns 0 or -1. */
static int add_constant_subgraph(Onnx__GraphProto *g, const struct bnf_graph *gi, const char *name)
{
	struct bnf_const_plan *plan = malloc(sizeof(*plan));
	size_t i, j;
	int rc = -1;

	if (!plan || !bnf_graph_plan_constant(gi, name, plan))
		goto out;
	for (i = 0; i < plan->n_leaves; i++)
		if (add_borrowed_initializer(g, plan->leaf_names[i], plan->leaves[i]) != 0)
			goto out;
	for (i = 0; i < plan->n_nodes; i++) {
		Onnx__NodeProto *copy;
		for (j = 0; j < g->n_node; j++)
			if (g->node[j]->n_output && plan->nodes[i]->n_output &&
			    strcmp(g->node[j]->output[0], plan->nodes[i]->output[0]) == 0)
				break;
		if (j < g->n_node)
			continue; /* another input's subgraph brought it already */
		copy = copy_message(plan->nodes[i], &onnx__node_proto__descriptor);
		if (!copy || append_ptr((void ***)&g->node, &g->n_node, copy)) {
			if (copy)
				onnx__node_proto__free_unpacked(copy, &bnf_large_allocator);
			goto out;
		}
	}
	rc = 0;
out:
	free(plan);
	return rc;
}

/* Build a model holding the chain of nodes that computes `output` from
 * `data` in the site's graph, with every other input as an initializer
 * (or, computed from constants, with the nodes computing it). */
static Onnx__ModelProto *chain_model(const Onnx__ModelProto *src, struct pair_site *site,
                                     const char *data, const char *output, int dtype, int rank,
                                     const int64_t *dims)
{
	const struct bnf_graph *gi = &site->index[site->depth];
	Onnx__NodeProto *chain[16];
	int n_chain = 0, i;
	const char *value = output;
	Onnx__ModelProto *m = calloc(1, sizeof(*m));
	Onnx__GraphProto *g = calloc(1, sizeof(*g));
	size_t k;

	if (!m || !g) {
		free(m);
		free(g);
		return NULL;
	}
	onnx__model_proto__init(m);
	onnx__graph_proto__init(g);
	m->graph = g;
	m->has_ir_version = 1;
	m->ir_version = src->ir_version;
	/* Walk back from the output through non-constant inputs to data. */
	while (strcmp(value, data) != 0 && n_chain < 16) {
		struct bnf_const_ref ref;
		Onnx__NodeProto *p = bnf_graph_producer(gi, value, NULL);
		if (!p)
			goto fail;
		chain[n_chain++] = p;
		value = NULL;
		for (k = 0; k < p->n_input; k++)
			if (p->input[k][0] && !bnf_graph_constant(gi, p->input[k], &ref) &&
			    !bnf_graph_is_computed_constant(gi, p->input[k])) {
				value = p->input[k];
				break;
			}
		if (!value)
			goto fail;
	}
	if (strcmp(value, data) != 0)
		goto fail;
	for (k = 0; k < src->n_opset_import; k++) {
		void *op =
		    copy_message(src->opset_import[k], &onnx__operator_set_id_proto__descriptor);
		if (!op || append_ptr((void ***)&m->opset_import, &m->n_opset_import, op))
			goto fail;
	}
	for (i = n_chain - 1; i >= 0; i--) {
		Onnx__NodeProto *copy = copy_message(chain[i], &onnx__node_proto__descriptor);
		if (!copy || append_ptr((void ***)&g->node, &g->n_node, copy))
			goto fail;
		for (k = 0; k < copy->n_input; k++) {
			struct bnf_const_ref ref;
			if (!copy->input[k][0] || strcmp(copy->input[k], data) == 0)
				continue;
			if (bnf_graph_constant(gi, copy->input[k], &ref)) {
				if (add_borrowed_initializer(g, copy->input[k], ref.tensor) != 0)
					goto fail;
			} else if (bnf_graph_is_computed_constant(gi, copy->input[k]) &&
			           add_constant_subgraph(g, gi, copy->input[k]) != 0) {
				goto fail;
			}
		}
	}
	{
		Onnx__ValueInfoProto *in = tensor_value_info(data, dtype, rank, dims);
		Onnx__ValueInfoProto *out = tensor_value_info(output, dtype, -1, NULL);
		if (!in || append_ptr((void ***)&g->input, &g->n_input, in)) {
			if (in)
				onnx__value_info_proto__free_unpacked(in, &bnf_large_allocator);
			if (out)
				onnx__value_info_proto__free_unpacked(out, &bnf_large_allocator);
			goto fail;
		}
		if (!out || append_ptr((void ***)&g->output, &g->n_output, out)) {
			if (out)
				onnx__value_info_proto__free_unpacked(out, &bnf_large_allocator);
			goto fail;
		}
	}
	return m;
fail:
	free_chain_model(m);
	return NULL;
}

static long long attr_int(const Onnx__NodeProto *node, const char *name, long long def)
{
	size_t i;
	for (i = 0; i < node->n_attribute; i++)
		if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0 &&
		    node->attribute[i]->has_i)
			return node->attribute[i]->i;
	return def;
}

/* A valid input shape for the layer, small enough to be quick, and which
 * of its dims may grow to hold several samples at once (*batch_dim, -1 when
 * none may). */
static int layer_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *layer, int *dtype,
                             int *rank, int64_t *dims, int *batch_dim)
{
	struct bnf_const_ref w, c;
	size_t i;

	if (layer->n_input < 2 || !bnf_graph_constant(gi, layer->input[1], &w))
		return -1;
	*dtype = w.tensor->data_type;
	*batch_dim = 0;
	if (bnf_node_is(layer, "Conv")) {
		const Onnx__AttributeProto *dil = NULL;
		long long group = attr_int(layer, "group", 1);
		if (w.tensor->n_dims < 3 || w.tensor->n_dims > BNF_MAX_RANK)
			return -1;
		for (i = 0; i < layer->n_attribute; i++)
			if (layer->attribute[i]->name &&
			    strcmp(layer->attribute[i]->name, "dilations") == 0)
				dil = layer->attribute[i];
		*rank = (int)w.tensor->n_dims;
		dims[0] = 1;
		dims[1] = w.tensor->dims[1] * group;
		/* The kernel's extent plus one: at unit stride two positions per
		 * axis away from any padding, each reading every weight (and the
		 * cost of the check stays proportional to the weights). */
		for (i = 2; i < w.tensor->n_dims; i++) {
			int64_t d = dil && dil->n_ints > i - 2 ? dil->ints[i - 2] : 1;
			dims[i] = (w.tensor->dims[i] - 1) * d + 1 + 1;
		}
		return 0;
	}
	if (bnf_node_is(layer, "ConvTranspose")) {
		/* W is C_in x M/group x k...: the input has all C_in channels, a
		 * multiple of group. The evaluator derives the output size from
		 * strides, pads, output_padding or output_shape. */
		long long group = attr_int(layer, "group", 1);
		if (w.tensor->n_dims < 3 || w.tensor->n_dims > BNF_MAX_RANK || group < 1 ||
		    w.tensor->dims[0] % group != 0)
			return -1;
		*rank = (int)w.tensor->n_dims;
		dims[0] = 1;
		dims[1] = w.tensor->dims[0];
		for (i = 2; i < w.tensor->n_dims; i++)
			dims[i] = 3;
		return 0;
	}
	if (w.tensor->n_dims != 2)
		return -1;
	*rank = 2;
	if (bnf_node_is(layer, "Gemm")) {
		int64_t m = 3,
		        k = attr_int(layer, "transB", 0) ? w.tensor->dims[1] : w.tensor->dims[0];
		if (layer->n_input >= 3 && layer->input[2][0] &&
		    bnf_graph_constant(gi, layer->input[2], &c) && c.tensor->n_dims == 2 &&
		    c.tensor->dims[0] > 1) {
			m = c.tensor->dims[0]; /* C's rows fix A's */
			*batch_dim = -1;
		}
		if (attr_int(layer, "transA", 0)) {
			if (*batch_dim == 0)
				*batch_dim = 1;
			dims[0] = k;
			dims[1] = m;
		} else {
			dims[0] = m;
			dims[1] = k;
		}
		return 0;
	}
	dims[0] = 3;
	dims[1] = w.tensor->dims[0];
	return 0;
}

/* The input of a lowered BN's Mul: [1, C, 3, ...] with C the length of
 * its constant [C, 1, ..., 1]. */
static int lowered_input_shape(const struct bnf_graph *gi, const Onnx__NodeProto *mul, int *dtype,
                               int *rank, int64_t *dims)
{
	struct bnf_const_ref s;
	size_t i;

	if (mul->n_input != 2 || !bnf_graph_constant(gi, mul->input[1], &s) ||
	    s.tensor->n_dims < 1 || s.tensor->n_dims + 1 > BNF_MAX_RANK)
		return -1;
	*dtype = s.tensor->data_type;
	*rank = (int)s.tensor->n_dims + 1;
	dims[0] = 1;
	dims[1] = s.tensor->dims[0];
	for (i = 2; i < (size_t)*rank; i++)
		dims[i] = 3;
	return 0;
}

static double max_of(double a, double b)
{
	return a > b ? a : b;
}

/* Run the three evaluations of one fold `runs` times and fill fc. */
static int check_pair(const Onnx__ModelProto *before, const Onnx__ModelProto *after, int dtype,
                      int runs, const struct bnf_verify_options *opt, struct bnf_fold_check *fc,
                      struct bnf_error *err)
{
	struct compare_acc acc_fold, acc_orig;
	double atol, rtol;
	int s, rc = BNF_OK;

	memset(&acc_fold, 0, sizeof(acc_fold));
	memset(&acc_orig, 0, sizeof(acc_orig));
	tolerance_for(opt, dtype, &atol, &rtol);
	for (s = 0; s < runs && rc == BNF_OK; s++) {
		struct bnf_named_tensors in;
		struct bnf_input_spec none;
		struct bnf_tensor **ref, **orig, **fold;
		struct run_job job[3];

		memset(&none, 0, sizeof(none));
		if ((rc = bnf_inputs_make(before, &none, opt->seed, s, &in, err)) != BNF_OK)
			break;
		run_job_init(&job[0], before, opt, 1, &in);
		run_job_init(&job[1], before, opt, 0, &in);
		run_job_init(&job[2], after, opt, 0, &in);
		rc = run_jobs(job, 3, opt->threads, err);
		ref = job[0].outs;
		orig = job[1].outs;
		fold = job[2].outs;
		if (rc == BNF_OK) {
			compare_tensors(fold[0], ref[0], atol, rtol, 0, &acc_fold);
			compare_tensors(orig[0], ref[0], atol, rtol, 0, &acc_orig);
		}
		free_outputs(ref, 1);
		free_outputs(orig, 1);
		free_outputs(fold, 1);
		bnf_named_tensors_free(&in);
	}
	if (rc != BNF_OK)
		return rc;
	fc->folded_abs = acc_fold.max_abs;
	fc->folded_rel = acc_fold.max_rel;
	fc->orig_abs = acc_orig.max_abs;
	fc->orig_rel = acc_orig.max_rel;
	/* The folded node passes when it is within tolerance of the float64
	 * reference, or no further from it than the original pair's own
	 * rounding (which matters in float16). */
	fc->pass =
	    !acc_fold.shape_mismatch && acc_fold.nan_a == 0 &&
	    (acc_fold.n_bad == 0 || acc_fold.max_abs <= 2.0 * max_of(acc_orig.max_abs, 1e-300));
	return BNF_OK;
}

static int verify_one(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                      const struct bnf_bn_record *r, const struct bnf_verify_options *opt,
                      struct bnf_fold_check *fc, struct bnf_error *err)
{
	struct pair_site so, sf;
	Onnx__NodeProto *layer;
	Onnx__ModelProto *before = NULL, *after = NULL;
	int opset = bnf_model_opset(orig), dtype = 0, rank = 0, rc = BNF_OK, batch_dim = 0;
	int runs = opt->samples > 0 ? opt->samples : 1;
	int64_t dims[BNF_MAX_RANK];
	const char *data;
	char note[600] = "";

	memset(&so, 0, sizeof(so));
	memset(&sf, 0, sizeof(sf));
	/* The fold's result value: made by the original chain (BN, Mul, ...
	 * or the layer after a BN) and by the folded node, which reads data. */
	if (!find_site(orig->graph, opset, r->result, NULL, &so, 0)) {
		snprintf(note, sizeof(note), "the folded value '%s' is not in the original model",
		         r->result);
		goto done;
	}
	if (!find_site(folded->graph, opset, r->result, NULL, &sf, 0)) {
		release_site(&so);
		snprintf(note, sizeof(note), "folded node not found in the new model");
		goto done;
	}
	layer = sf.node;
	if (layer && bnf_node_is(layer, "Add") && r->kind != BNF_FOLD_KIND_LOWERED) {
		size_t k;
		Onnx__NodeProto *p = NULL;
		for (k = 0; k < layer->n_input && !p; k++) {
			p = bnf_graph_producer(&sf.index[sf.depth], layer->input[k], NULL);
			if (p && !bnf_node_is(p, "MatMul"))
				p = NULL;
		}
		layer = p;
	}
	if (r->kind == BNF_FOLD_KIND_LOWERED) {
		/* X -> Mul(s) -> Add(t): X has the rank of s plus one, C = s's
		 * first dim. */
		layer = bnf_graph_producer(&sf.index[sf.depth], sf.node->input[0], NULL);
		if (!layer ||
		    lowered_input_shape(&sf.index[sf.depth], layer, &dtype, &rank, dims) != 0) {
			snprintf(note, sizeof(note), "cannot find a valid input shape for the Mul");
			goto release;
		}
	} else if (!layer || layer_input_shape(&sf.index[sf.depth], layer, &dtype, &rank, dims,
	                                       &batch_dim) != 0) {
		snprintf(note, sizeof(note), "cannot find a valid input shape for the layer");
		goto release;
	}
	/* All samples in one batch: each evaluation then reads the weights
	 * once, which is most of its cost. */
	if (batch_dim >= 0) {
		dims[batch_dim] *= runs;
		runs = 1;
	}
	data = layer->input[0];
	before = chain_model(orig, &so, data, r->result, dtype, rank, dims);
	after = chain_model(folded, &sf, data, r->result, dtype, rank, dims);
	if (!before || !after) {
		snprintf(note, sizeof(note), "cannot extract the pair from the models");
		goto release;
	}
	rc = check_pair(before, after, dtype, runs, opt, fc, err);
	if (rc == BNF_ERR_UNSUPPORTED) {
		snprintf(note, sizeof(note), "%s", err ? err->msg : "unsupported");
		rc = BNF_OK;
	}
release:
	release_site(&so);
	release_site(&sf);
done:
	free_chain_model(before);
	free_chain_model(after);
	if (note[0]) {
		fc->note = strdup(note);
		fc->pass = 0;
	}
	return rc;
}

int bnf_verify_folds(const Onnx__ModelProto *orig, const Onnx__ModelProto *folded,
                     const struct bnf_fold_report *frep, const struct bnf_verify_options *opt,
                     struct bnf_verify_report *rep, struct bnf_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < frep->n_records + frep->n_affine; i++) {
		int affine = i >= frep->n_records;
		const struct bnf_bn_record *r =
		    affine ? &frep->affine[i - frep->n_records] : &frep->records[i];
		struct bnf_fold_check fc, *p;
		char target[512];

		if (r->kind == BNF_FOLD_KIND_NONE)
			continue;
		memset(&fc, 0, sizeof(fc));
		snprintf(target, sizeof(target), "%s '%s'", r->target_op, r->target_name);
		fc.bn_name = strdup(r->bn_name);
		fc.op_type = affine ? strdup(r->op_type) : NULL;
		fc.target = strdup(target);
		rc = verify_one(orig, folded, r, opt, &fc, err);
		p = realloc(rep->folds, (rep->n_folds + 1) * sizeof(*p));
		if (!p || !fc.bn_name || !fc.target || (affine && !fc.op_type)) {
			free(fc.bn_name);
			free(fc.op_type);
			free(fc.target);
			free(fc.note);
			if (p)
				rep->folds = p;
			return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		}
		rep->folds = p;
		rep->folds[rep->n_folds++] = fc;
		if (rc != BNF_OK) {
			bnf_error_prefix(err, "checking the fold of '%s'", r->bn_name);
			return rc;
		}
		if (fc.note)
			rep->n_unchecked++;
		else if (!fc.pass)
			rep->pass = 0;
		if (!rep->whole_graph) {
			if (fc.folded_abs > rep->max_abs)
				rep->max_abs = fc.folded_abs;
			if (fc.folded_rel > rep->max_rel)
				rep->max_rel = fc.folded_rel;
		}
	}
	return BNF_OK;
}
