/*
 * Saying where two models part ways (verify.h), for --compare of a model
 * and its folded version whose value names match, as Polygraphy does:
 *
 *   - every value both compute, in the candidate's topological order, is
 *     judged by the error model (its error against the reference's float64
 *     value, against the reference's own rounding error); the first one
 *     beyond it is where they diverge;
 *   - every Conv, ConvTranspose, Gemm or MatMul (+ Add) of the candidate
 *     whose input and output values the reference also has, computed there
 *     by another chain of nodes or other weights, is checked as a fold.
 */
#include "check/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/chain.h"
#include "check/internal.h"
#include "check/jobs.h"
#include "eval/tensor.h"
#include "graph/graph.h"
#include "util/strmap.h"

/* The nodes of g in a topological order (node indices, caller frees);
 * NULL when out of memory. Nodes on a cycle (refused by validation) are
 * left out. */
static size_t *topological_order(const Onnx__GraphProto *g, size_t *n_out)
{
	struct bnf_strmap made, producer;
	size_t *order = calloc(g->n_node + 1, sizeof(*order)), n = 0, i, j;
	char *done = calloc(g->n_node + 1, 1);
	int progress = 1;

	bnf_strmap_init(&made);
	bnf_strmap_init(&producer);
	if (!order || !done)
		goto fail;
	for (i = 0; i < g->n_node; i++)
		for (j = 0; j < g->node[i]->n_output; j++)
			if (g->node[i]->output[j][0] &&
			    bnf_strmap_put(&producer, g->node[i]->output[j], i) != 0)
				goto fail;
	/* Sweeps over the node list: one suffices for a sorted graph. */
	while (progress && n < g->n_node) {
		progress = 0;
		for (i = 0; i < g->n_node; i++) {
			int ready = !done[i];
			for (j = 0; ready && j < g->node[i]->n_input; j++) {
				const char *in = g->node[i]->input[j];
				ready = !in[0] || !bnf_strmap_get(&producer, in, NULL) ||
				        bnf_strmap_get(&made, in, NULL);
			}
			if (!ready)
				continue;
			for (j = 0; j < g->node[i]->n_output; j++)
				if (g->node[i]->output[j][0] &&
				    bnf_strmap_put(&made, g->node[i]->output[j], 1) != 0)
					goto fail;
			done[i] = 1;
			order[n++] = i;
			progress = 1;
		}
	}
	bnf_strmap_free(&made);
	bnf_strmap_free(&producer);
	free(done);
	*n_out = n;
	return order;
fail:
	bnf_strmap_free(&made);
	bnf_strmap_free(&producer);
	free(done);
	free(order);
	return NULL;
}

/* A shallow twin of m whose graph outputs are `names` (borrowed): the
 * evaluator then keeps and returns those values. */
struct probe_model {
	Onnx__ModelProto model;
	Onnx__GraphProto graph;
	Onnx__ValueInfoProto *vis;
	Onnx__ValueInfoProto **outs;
};

static int probe_init(struct probe_model *p, const Onnx__ModelProto *m, char **names, size_t n)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	p->model = *m;
	p->graph = *m->graph;
	p->model.graph = &p->graph;
	p->vis = calloc(n + 1, sizeof(*p->vis));
	p->outs = calloc(n + 1, sizeof(*p->outs));
	if (!p->vis || !p->outs)
		return -1;
	for (i = 0; i < n; i++) {
		onnx__value_info_proto__init(&p->vis[i]);
		p->vis[i].name = names[i];
		p->outs[i] = &p->vis[i];
	}
	p->graph.output = p->outs;
	p->graph.n_output = n;
	return 0;
}

static void probe_release(struct probe_model *p)
{
	free(p->vis);
	free(p->outs);
}

static int is_float_tensor(const struct bnf_tensor *t)
{
	return t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
	       t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
	       t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16 ||
	       t->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

/* The values of b (in its topological order) that a's nodes also
 * produce, and the b node producing each. */
static char **common_values(const Onnx__ModelProto *a, const Onnx__ModelProto *b, size_t *n,
                            size_t **producer)
{
	const Onnx__GraphProto *ga = a->graph, *gb = b->graph;
	struct bnf_strmap in_a;
	size_t n_order = 0, *order = topological_order(gb, &n_order), i, j, k = 0;
	char **names = NULL;

	bnf_strmap_init(&in_a);
	*producer = NULL;
	for (i = 0; order && i < ga->n_node; i++)
		for (j = 0; j < ga->node[i]->n_output; j++)
			if (ga->node[i]->output[j][0] &&
			    bnf_strmap_put(&in_a, ga->node[i]->output[j], 1) != 0)
				goto out;
	names = order ? calloc(gb->n_node * 4 + 1, sizeof(*names)) : NULL;
	*producer = order ? calloc(gb->n_node * 4 + 1, sizeof(**producer)) : NULL;
	for (i = 0; names && *producer && i < n_order; i++) {
		const Onnx__NodeProto *node = gb->node[order[i]];
		/* The first output is the one that carries data (the others
		 * are masks, indices, running statistics). */
		if (node->n_output && node->output[0][0] &&
		    bnf_strmap_get(&in_a, node->output[0], NULL) && k < gb->n_node * 4) {
			(*producer)[k] = order[i];
			names[k++] = node->output[0];
		}
	}
out:
	bnf_strmap_free(&in_a);
	free(order);
	if (!names || !*producer) {
		free(names);
		free(*producer);
		*producer = NULL;
		return NULL;
	}
	*n = k;
	return names;
}

static void note_divergence(struct bnf_verify_report *rep, const Onnx__NodeProto *node,
                            const char *value, int dtype, size_t position, size_t n_values,
                            const struct bnf_err_acc *exact, const struct bnf_err_acc *orig,
                            const struct bnf_err_verdict *v)
{
	struct bnf_divergence *d = &rep->diverge;

	d->found = 1;
	snprintf(d->value, sizeof(d->value), "%s", value);
	snprintf(d->node, sizeof(d->node), "%s", node->name && node->name[0] ? node->name : value);
	snprintf(d->op, sizeof(d->op), "%s", node->op_type ? node->op_type : "");
	d->dtype = dtype;
	d->position = position + 1;
	d->n_values = n_values;
	d->verdict = *v;
	d->exact_abs = exact->max_abs;
	d->original_abs = orig->max_abs;
}

/* Operators whose output is a choice, not a rounded quantity: a change in
 * the last bit of an input may change it entirely. */
static int is_discrete_choice(const Onnx__NodeProto *node, const struct bnf_tensor *out)
{
	static const char *const ops[] = {
	    "TopK",           "NonMaxSuppression",
	    "ArgMax",         "ArgMin",
	    "NonZero",        "Unique",
	    "Hardmax",        "Greater",
	    "GreaterOrEqual", "Less",
	    "LessOrEqual",    "Equal",
	    "Round",          "Floor",
	    "Ceil",           "Sign",
	};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is(node, ops[i]))
			return 1;
	return bnf_node_is(node, "Cast") && !is_float_tensor(out);
}

/* Whether two integer or bool tensors hold the same values. */
static int same_values(const struct bnf_tensor *a, const struct bnf_tensor *b)
{
	return a->dtype == b->dtype && a->count == b->count &&
	       (a->count == 0 ||
	        memcmp(a->data, b->data, a->count * bnf_tensor_elem_size(a->dtype)) == 0);
}

/* Judge each common value of sample 0's three runs, in order. */
static void judge_values(const Onnx__ModelProto *b, char **names, const size_t *producer, size_t n,
                         struct bnf_check_job *job, struct bnf_verify_report *rep)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct bnf_tensor *r = job[0].outs[i], *ta = job[1].outs[i], *tb = job[2].outs[i];
		struct bnf_err_acc exact, orig;
		struct bnf_err_verdict v;

		if (!r || !ta || !tb)
			continue;
		if (!is_float_tensor(ta)) {
			/* Integers and bools (indices, masks) must be equal. */
			if (same_values(ta, tb))
				continue;
			memset(&exact, 0, sizeof(exact));
			memset(&v, 0, sizeof(v));
			note_divergence(rep, b->graph->node[producer[i]], names[i], ta->dtype, i, n,
			                &exact, &exact, &v);
			rep->diverge.discrete = is_discrete_choice(b->graph->node[producer[i]], tb);
			return;
		}
		memset(&exact, 0, sizeof(exact));
		memset(&orig, 0, sizeof(orig));
		bnf_err_acc_add(&exact, tb, r, NULL);
		bnf_err_acc_add(&orig, ta, r, NULL);
		bnf_err_judge(&exact, &orig, NULL, ta->dtype, &v);
		if (v.pass && exact.n_unmatched == 0)
			continue;
		note_divergence(rep, b->graph->node[producer[i]], names[i], ta->dtype, i, n, &exact,
		                &orig, &v);
		rep->diverge.discrete = is_discrete_choice(b->graph->node[producer[i]], tb);
		return;
	}
}

int bnf_locate_divergence(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                          const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                          struct bnf_error *err)
{
	struct probe_model pa, pb;
	struct bnf_named_tensors in;
	struct bnf_check_job job[3];
	size_t n = 0, *producer = NULL;
	char **names = common_values(a, b, &n, &producer);
	int rc = BNF_OK;

	memset(&rep->diverge, 0, sizeof(rep->diverge));
	memset(&in, 0, sizeof(in));
	if (!names)
		return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
	if (n == 0)
		goto out;
	if (probe_init(&pa, a, names, n) != 0 || probe_init(&pb, b, names, n) != 0) {
		rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
		goto release;
	}
	/* The whole-graph check's inputs (the shapes it chose). */
	if ((rc = bnf_inputs_make_shaped(&rep->inputs, opt->seed, 0, &in, err)) != BNF_OK)
		goto release;
	bnf_check_job_init(&job[0], &pa.model, &in, 1, opt->max_bytes, opt->ext);
	bnf_check_job_init(&job[1], &pa.model, &in, 0, opt->max_bytes, opt->ext);
	bnf_check_job_init(&job[2], &pb.model, &in, 0, opt->max_bytes, opt->ext);
	rc = bnf_check_jobs_run(job, 3, opt->threads, err);
	if (rc == BNF_OK)
		judge_values(b, names, producer, n, job, rep);
	else if (rc == BNF_ERR_NOMEM || rc == BNF_ERR_UNSUPPORTED)
		rc = BNF_OK; /* no place named, the verdict stands */
	bnf_check_jobs_free(job, 3, n);
release:
	bnf_named_tensors_free(&in);
	probe_release(&pa);
	probe_release(&pb);
out:
	free(names);
	free(producer);
	return rc;
}

/* ---- node pairs of --compare ---- */

static int is_layer(const Onnx__NodeProto *node)
{
	return bnf_node_is(node, "Conv") || bnf_node_is(node, "ConvTranspose") ||
	       bnf_node_is(node, "Gemm") || bnf_node_is(node, "MatMul");
}

/* The value a layer's fold would end in: its output, or that of the Add
 * by a constant that is the only reader of a MatMul's output. */
static const char *layer_result(const struct bnf_graph *gi, const Onnx__NodeProto *layer)
{
	const Onnx__GraphProto *g = gi->g;
	const char *out = layer->output[0];
	size_t i;

	if (!bnf_node_is(layer, "MatMul") || bnf_graph_uses(gi, out) != 1)
		return out;
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		struct bnf_const_ref ref;
		if (bnf_node_is(n, "Add") && n->n_input == 2 && n->n_output >= 1 &&
		    (strcmp(n->input[0], out) == 0 || strcmp(n->input[1], out) == 0) &&
		    bnf_graph_constant(
		        gi, strcmp(n->input[0], out) == 0 ? n->input[1] : n->input[0], &ref))
			return n->output[0];
	}
	return out;
}

/* The only node of g reading name, or NULL. */
static const Onnx__NodeProto *only_reader(const struct bnf_graph *gi, const char *name)
{
	const Onnx__GraphProto *g = gi->g;
	size_t i, k;

	if (bnf_graph_uses(gi, name) != 1 || bnf_graph_is_output(gi, name))
		return NULL;
	for (i = 0; i < g->n_node; i++)
		for (k = 0; k < g->node[i]->n_input; k++)
			if (strcmp(g->node[i]->input[k], name) == 0)
				return g->node[i];
	return NULL;
}

/* In the reference, name reaches a BatchNormalization through layout
 * nodes only (Transpose, Squeeze, Unsqueeze, Reshape), and the candidate
 * makes that BN's output otherwise: a layout fold, which leaves the values
 * between the layer and the BN their names with other meanings. */
static int inside_layout_fold(const struct bnf_graph *ga, const struct bnf_graph *gb,
                              const char *name)
{
	const Onnx__NodeProto *r, *p;
	int hops;

	for (hops = 0; hops < 16; hops++) {
		if (!(r = only_reader(ga, name)) || !r->n_output)
			return 0;
		if (bnf_node_is(r, "BatchNormalization")) {
			p = bnf_graph_producer(gb, r->output[0], NULL);
			return p && !bnf_node_is(p, "BatchNormalization");
		}
		if (!bnf_node_is(r, "Transpose") && !bnf_node_is(r, "Squeeze") &&
		    !bnf_node_is(r, "Unsqueeze") && !bnf_node_is(r, "Reshape"))
			return 0;
		name = r->output[0];
	}
	return 0;
}

/* Fill fc's names: the reference's node producing result (a BN, or the
 * last node of its chain) folded into the candidate's layer. */
static int name_pair(const struct bnf_graph *ga, const struct bnf_graph *gb,
                     const Onnx__NodeProto *layer, const char *result, struct bnf_fold_check *fc)
{
	const Onnx__NodeProto *last = bnf_graph_producer(ga, result, NULL);
	char target[512];

	(void)gb;
	snprintf(target, sizeof(target), "%s '%s'", layer->op_type,
	         layer->name && layer->name[0] ? layer->name : layer->output[0]);
	fc->bn_name = strdup(last && last->name && last->name[0] ? last->name : result);
	fc->op_type =
	    last && !bnf_node_is(last, "BatchNormalization") ? strdup(last->op_type) : NULL;
	fc->target = strdup(target);
	return fc->bn_name && fc->target ? 0 : -1;
}

int bnf_compare_fold_pairs(const Onnx__ModelProto *a, const Onnx__ModelProto *b,
                           const struct bnf_verify_options *opt, struct bnf_verify_report *rep,
                           struct bnf_error *err)
{
	struct bnf_graph ga, gb;
	struct bnf_fold_sites *fs = NULL;
	int opset = bnf_model_opset(b), rc;
	size_t i;

	if (rep->n_folds == 0) {
		rep->first_failed_fold = -1;
		rep->weight_ulps = -1;
	}
	rc = bnf_graph_build(&ga, a->graph, NULL, bnf_model_opset(a), err);
	if (rc == BNF_OK)
		rc = bnf_graph_build(&gb, b->graph, NULL, opset, err);
	else
		memset(&gb, 0, sizeof(gb));
	for (i = 0; rc == BNF_OK && i < b->graph->n_node; i++) {
		const Onnx__NodeProto *layer = b->graph->node[i];
		struct bnf_fold_check fc;
		const char *result;
		int same = 0;

		if (!is_layer(layer) || layer->n_input < 2 || !layer->input[0][0] ||
		    layer->n_output < 1)
			continue;
		result = layer_result(&gb, layer);
		/* The reference must compute both ends of the chain itself; a
		 * value inside a layout fold is no end of one. */
		if (!bnf_graph_producer(&ga, result, NULL) ||
		    inside_layout_fold(&ga, &gb, result) ||
		    (!bnf_graph_producer(&ga, layer->input[0], NULL) &&
		     !bnf_strmap_get(&ga.inputs, layer->input[0], NULL)))
			continue;
		if (!fs && !(fs = bnf_fold_sites_new(a, b))) {
			rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
			break;
		}
		memset(&fc, 0, sizeof(fc));
		rc = bnf_check_fold_pair(fs, a, b, result, 0, !rep->pass, opt, &fc, &same, err);
		if (same || (rc == BNF_OK && fc.note)) {
			/* Identical chains, or not a fold of this node. */
			free(fc.note);
			continue;
		}
		if (name_pair(&ga, &gb, layer, result, &fc) != 0) {
			free(fc.bn_name);
			fc.bn_name = NULL; /* bnf_verify_add_fold reports it */
		}
		if (bnf_verify_add_fold(rep, &fc, err) != BNF_OK)
			rc = BNF_ERR_NOMEM;
	}
	bnf_fold_sites_free(fs);
	bnf_graph_release(&ga);
	bnf_graph_release(&gb);
	return rc;
}
