/*
 * The recurrent layers RNN, GRU and LSTM (opsets 7 and 14, which added
 * the batch-first layout): one table row per kind gives its gate count
 * and default activations; one step function per kind applies the spec's
 * equations to a batch row, in double. Directions forward, reverse and
 * bidirectional; sequence_lens stops a batch entry's state early (its
 * later outputs are zero); clip bounds every gate's input.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/nn.h"
#include "eval/shape_common.h"

enum rnn_kind { RNN_KIND_RNN, RNN_KIND_GRU, RNN_KIND_LSTM };

struct rnn_info {
	const char *op_type;
	enum rnn_kind kind;
	int gates; /* rows of W and R per hidden unit */
	int n_act; /* activations per direction */
	const char *default_act[3];
};

static const struct rnn_info rnn_infos[] = {
    {"RNN", RNN_KIND_RNN, 1, 1, {"Tanh"}},
    {"GRU", RNN_KIND_GRU, 3, 2, {"Sigmoid", "Tanh"}},
    {"LSTM", RNN_KIND_LSTM, 4, 3, {"Sigmoid", "Tanh", "Tanh"}},
};

/* An activation function and its alpha and beta. */
struct rnn_act {
	int fn;
	double alpha, beta;
};

static const struct {
	const char *name;
	int params;         /* how many of alpha, beta it takes from the lists */
	double alpha, beta; /* onnxruntime's defaults when the lists run out */
} act_names[] = {
    {"Relu", 0, 0, 0},         {"Tanh", 0, 0, 0},
    {"Sigmoid", 0, 0, 0},      {"Affine", 2, 1, 0},
    {"LeakyRelu", 1, 0.01, 0}, {"ThresholdedRelu", 1, 1, 0},
    {"ScaledTanh", 2, 1, 1},   {"HardSigmoid", 2, 0.2, 0.5},
    {"Elu", 1, 1, 0},          {"Softsign", 0, 0, 0},
    {"Softplus", 0, 0, 0},
};

static double act_apply(const struct rnn_act *a, double x)
{
	switch (a->fn) {
	case 0:
		return x > 0 ? x : 0;
	case 1:
		return tanh(x);
	case 2:
		return 1 / (1 + exp(-x));
	case 3:
		return a->alpha * x + a->beta;
	case 4:
		return x >= 0 ? x : a->alpha * x;
	case 5:
		return x >= a->alpha ? x : 0;
	case 6:
		return a->alpha * tanh(a->beta * x);
	case 7: {
		double v = a->alpha * x + a->beta;
		return v < 0 ? 0 : v > 1 ? 1 : v;
	}
	case 8:
		return x >= 0 ? x : a->alpha * (exp(x) - 1);
	case 9:
		return x / (1 + fabs(x));
	default:
		return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
	}
}

struct rnn_plan {
	const struct rnn_info *info;
	int64_t seq, batch, input, hidden, dirs;
	int layout, reverse_only, input_forget, linear_before_reset;
	double clip; /* 0: none */
	struct rnn_act act[2][3];
};

/* The activations attribute (a list of names for every direction) with
 * its alpha and beta lists, or the kind's defaults. */
static int rnn_activations(const struct bnf_op_ctx *ctx, struct rnn_plan *p)
{
	const Onnx__AttributeProto *names = bnf_attr_find(ctx->node, "activations");
	float alpha[8], beta[8];
	size_t n_alpha, n_beta, used_a = 0, used_b = 0, k, j, want;
	int d, i;

	if (bnf_attr_floats(ctx->node, "activation_alpha", alpha, 8, &n_alpha, ctx->err) !=
	        BNF_OK ||
	    bnf_attr_floats(ctx->node, "activation_beta", beta, 8, &n_beta, ctx->err) != BNF_OK)
		return ctx->err->status;
	want = (size_t)(p->info->n_act * p->dirs);
	if (names && names->n_strings && names->n_strings != want)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "activations has %zu names, expected %zu",
		                    names->n_strings, want);
	for (k = 0; k < want; k++) {
		char name[32] = "";
		d = (int)(k / (size_t)p->info->n_act);
		i = (int)(k % (size_t)p->info->n_act);
		if (names && names->n_strings) {
			size_t len = names->strings[k].len < 31 ? names->strings[k].len : 31;
			memcpy(name, names->strings[k].data, len);
			name[len] = '\0';
		} else {
			strcpy(name, p->info->default_act[i]);
		}
		for (j = 0; j < sizeof(act_names) / sizeof(act_names[0]); j++)
			if (strcmp(act_names[j].name, name) == 0)
				break;
		if (j == sizeof(act_names) / sizeof(act_names[0]))
			return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "activation '%s' is unknown",
			                    name);
		p->act[d][i].fn = (int)j;
		p->act[d][i].alpha = act_names[j].alpha;
		p->act[d][i].beta = act_names[j].beta;
		if (act_names[j].params >= 1 && used_a < n_alpha)
			p->act[d][i].alpha = alpha[used_a++];
		if (act_names[j].params >= 2 && used_b < n_beta)
			p->act[d][i].beta = beta[used_b++];
	}
	return BNF_OK;
}

static int rnn_plan(const struct bnf_op_ctx *ctx, struct rnn_plan *p)
{
	const struct bnf_tensor *x, *w;
	char dir[16];
	float clip = 0;
	int64_t hidden, layout = 0, input_forget = 0, lbr = 0;
	size_t k;

	memset(p, 0, sizeof(*p));
	for (k = 0; k < sizeof(rnn_infos) / sizeof(rnn_infos[0]); k++)
		if (strcmp(rnn_infos[k].op_type, ctx->node->op_type) == 0)
			p->info = &rnn_infos[k];
	if (!p->info)
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED, "not a recurrent layer");
	if (bnf_nn_check_inputs(ctx, 3, p->info->kind == RNN_KIND_LSTM ? 8 : 6, 7u) != BNF_OK ||
	    bnf_attr_string(ctx->node, "direction", "forward", dir, sizeof(dir), ctx->err) !=
	        BNF_OK ||
	    bnf_attr_int(ctx->node, "hidden_size", 0, &hidden, ctx->err) != BNF_OK ||
	    bnf_attr_float(ctx->node, "clip", 0, &clip, ctx->err) != BNF_OK ||
	    (ctx->opset >= 14 &&
	     bnf_attr_int(ctx->node, "layout", 0, &layout, ctx->err) != BNF_OK) ||
	    bnf_attr_int(ctx->node, "input_forget", 0, &input_forget, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "linear_before_reset", 0, &lbr, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	w = ctx->in[1];
	if (strcmp(dir, "forward") != 0 && strcmp(dir, "reverse") != 0 &&
	    strcmp(dir, "bidirectional") != 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "unknown direction '%s'", dir);
	p->dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
	p->reverse_only = strcmp(dir, "reverse") == 0;
	p->layout = layout != 0;
	p->input_forget = input_forget != 0;
	p->linear_before_reset = lbr != 0;
	p->clip = clip > 0 ? clip : 0;
	if (x->rank != 3 || w->rank != 3)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "X and W must have rank 3");
	p->seq = x->dims[p->layout ? 1 : 0];
	p->batch = x->dims[p->layout ? 0 : 1];
	p->input = x->dims[2];
	p->hidden = hidden > 0 ? hidden : w->dims[1] / p->info->gates;
	if (w->dims[0] != p->dirs || w->dims[1] != p->info->gates * p->hidden ||
	    w->dims[2] != p->input || ctx->in[2]->rank != 3 || ctx->in[2]->dims[0] != p->dirs ||
	    ctx->in[2]->dims[1] != p->info->gates * p->hidden || ctx->in[2]->dims[2] != p->hidden)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "W or R does not fit %lld directions of "
		                    "%d gates x %lld units",
		                    (long long)p->dirs, p->info->gates, (long long)p->hidden);
	return rnn_activations(ctx, p);
}

/* The optional input i if present with count values, else NULL. */
static const struct bnf_tensor *rnn_opt(const struct bnf_op_ctx *ctx, size_t i, int64_t count,
                                        const char *what, int *bad)
{
	const struct bnf_tensor *t = bnf_shp_in(ctx, i);

	if (t && (int64_t)t->count != count) {
		*bad = 1;
		bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s has %zu values, expected %lld", what, t->count,
		             (long long)count);
	}
	return t;
}

int bnf_nn_rnn_shape(struct bnf_op_ctx *ctx)
{
	struct rnn_plan p;
	int64_t y[4], h[3];

	if (rnn_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	if (p.layout) {
		memcpy(y, (int64_t[4]){p.batch, p.seq, p.dirs, p.hidden}, sizeof(y));
		memcpy(h, (int64_t[3]){p.batch, p.dirs, p.hidden}, sizeof(h));
	} else {
		memcpy(y, (int64_t[4]){p.seq, p.dirs, p.batch, p.hidden}, sizeof(y));
		memcpy(h, (int64_t[3]){p.dirs, p.batch, p.hidden}, sizeof(h));
	}
	if (bnf_shp_new_out(ctx, 0, ctx->in[0]->dtype, 4, y) != BNF_OK ||
	    bnf_shp_new_out(ctx, 1, ctx->in[0]->dtype, 3, h) != BNF_OK ||
	    (p.info->kind == RNN_KIND_LSTM &&
	     bnf_shp_new_out(ctx, 2, ctx->in[0]->dtype, 3, h) != BNF_OK))
		return ctx->err->status;
	return BNF_OK;
}

/* The state of one direction over the batch, and its parameters. */
struct rnn_dir {
	const struct rnn_plan *p;
	const struct bnf_tensor *w, *r, *b, *peep;
	int64_t d;       /* direction index */
	double *h, *c;   /* hidden and cell state of the batch entry running */
	double *gx, *gh; /* W . x + Wb and R . h + Rb, per gate row */
	double *tmp;     /* GRU's z, r and candidate */
};

static double clipped(const struct rnn_plan *p, double v)
{
	if (p->clip > 0)
		return v < -p->clip ? -p->clip : v > p->clip ? p->clip : v;
	return v;
}

/* gx[g] = W[g] . x + Wb[g] and gh[g] = R[g] . h + Rb[g] for every gate row. */
static void rnn_sums(struct rnn_dir *s, const struct bnf_tensor *x, size_t x_at, const double *h)
{
	const struct rnn_plan *p = s->p;
	int64_t rows = p->info->gates * p->hidden, g, k;
	size_t wbase = (size_t)(s->d * rows * p->input), rbase = (size_t)(s->d * rows * p->hidden);
	size_t bbase = (size_t)(s->d * 2 * rows);

	for (g = 0; g < rows; g++) {
		double ax = s->b ? bnf_shp_get(s->b, bbase + (size_t)g) : 0;
		double ah = s->b ? bnf_shp_get(s->b, bbase + (size_t)(rows + g)) : 0;
		for (k = 0; k < p->input; k++)
			ax += bnf_shp_get(s->w, wbase + (size_t)(g * p->input + k)) *
			      bnf_shp_get(x, x_at + (size_t)k);
		for (k = 0; k < p->hidden; k++)
			ah += bnf_shp_get(s->r, rbase + (size_t)(g * p->hidden + k)) * h[k];
		s->gx[g] = ax;
		s->gh[g] = ah;
	}
}

/* GRU-7: gates z, r, h. With linear_before_reset the reset gate scales
 * R_h . h + Rb_h; without it, R_h multiplies (r . h). */
static void gru_step(struct rnn_dir *s, double *h)
{
	const struct rnn_plan *p = s->p;
	const struct rnn_act *act = p->act[s->d];
	int64_t H = p->hidden, k, j, rows = 3 * H;
	double *z = s->tmp, *r = s->tmp + H, *hh = s->tmp + 2 * H;
	size_t rbase = (size_t)(s->d * rows * H), bbase = (size_t)(s->d * 2 * rows);

	for (k = 0; k < H; k++) {
		z[k] = act_apply(&act[0], clipped(p, s->gx[k] + s->gh[k]));
		r[k] = act_apply(&act[0], clipped(p, s->gx[H + k] + s->gh[H + k]));
	}
	for (k = 0; k < H; k++) {
		double v;
		if (p->linear_before_reset) {
			v = s->gx[2 * H + k] + r[k] * s->gh[2 * H + k];
		} else {
			v = s->gx[2 * H + k] +
			    (s->b ? bnf_shp_get(s->b, bbase + (size_t)(rows + 2 * H + k)) : 0);
			for (j = 0; j < H; j++)
				v += bnf_shp_get(s->r, rbase + (size_t)((2 * H + k) * H + j)) *
				     r[j] * h[j];
		}
		hh[k] = act_apply(&act[1], clipped(p, v));
	}
	for (k = 0; k < H; k++)
		h[k] = (1 - z[k]) * hh[k] + z[k] * h[k];
}

/* LSTM-7: gates i, o, f, c; peepholes i, o, f; input_forget makes the
 * forget gate 1 - i. */
static void lstm_step(struct rnn_dir *s, double *h, double *c)
{
	const struct rnn_plan *p = s->p;
	const struct rnn_act *act = p->act[s->d];
	int64_t H = p->hidden, k;
	size_t pb = (size_t)(s->d * 3 * H);

	for (k = 0; k < H; k++) {
		double pi = s->peep ? bnf_shp_get(s->peep, pb + (size_t)k) : 0;
		double po = s->peep ? bnf_shp_get(s->peep, pb + (size_t)(H + k)) : 0;
		double pf = s->peep ? bnf_shp_get(s->peep, pb + (size_t)(2 * H + k)) : 0;
		double i = act_apply(&act[0], clipped(p, s->gx[k] + s->gh[k] + pi * c[k]));
		double f = p->input_forget
		               ? 1 - i
		               : act_apply(&act[0], clipped(p, s->gx[2 * H + k] + s->gh[2 * H + k] +
		                                                   pf * c[k]));
		double g = act_apply(&act[1], clipped(p, s->gx[3 * H + k] + s->gh[3 * H + k]));
		double cn = f * c[k] + i * g;
		double o = act_apply(&act[0], clipped(p, s->gx[H + k] + s->gh[H + k] + po * cn));
		c[k] = cn;
		h[k] = o * act_apply(&act[2], cn);
	}
}

/* One step of one batch entry: h (and c) updated in place. */
static void rnn_step(struct rnn_dir *s, double *h, double *c)
{
	const struct rnn_plan *p = s->p;
	int64_t k;

	if (p->info->kind == RNN_KIND_GRU)
		gru_step(s, h);
	else if (p->info->kind == RNN_KIND_LSTM)
		lstm_step(s, h, c);
	else
		for (k = 0; k < p->hidden; k++)
			h[k] = act_apply(&p->act[s->d][0], clipped(p, s->gx[k] + s->gh[k]));
}

/* Offset of X[t, n, :] (or X[n, t, :] batch-first). */
static size_t x_at(const struct rnn_plan *p, int64_t t, int64_t n)
{
	return (size_t)((p->layout ? n * p->seq + t : t * p->batch + n) * p->input);
}

/* Offsets of Y[t, d, n, :] and of Y_h[d, n, :] for either layout. */
static size_t y_at(const struct rnn_plan *p, int64_t t, int64_t d, int64_t n)
{
	return (size_t)((p->layout ? (n * p->seq + t) * p->dirs + d
	                           : (t * p->dirs + d) * p->batch + n) *
	                p->hidden);
}

static size_t h_at(const struct rnn_plan *p, int64_t d, int64_t n)
{
	return (size_t)((p->layout ? n * p->dirs + d : d * p->batch + n) * p->hidden);
}

/* Run direction d over every batch entry, writing Y, Y_h and Y_c. */
static int rnn_direction(struct bnf_op_ctx *ctx, struct rnn_dir *s, int reverse,
                         const struct bnf_tensor *lens, const struct bnf_tensor *h0,
                         const struct bnf_tensor *c0)
{
	const struct rnn_plan *p = s->p;
	int64_t H = p->hidden, n, t, k, len;
	struct bnf_tensor *y = ctx->out[0], *yh = ctx->n_out > 1 ? ctx->out[1] : NULL;
	struct bnf_tensor *yc = ctx->n_out > 2 ? ctx->out[2] : NULL;

	for (n = 0; n < p->batch; n++) {
		len = lens ? bnf_shp_get_int(lens, (size_t)n) : p->seq;
		if (len < 0 || len > p->seq)
			return bnf_shp_fail(ctx, BNF_ERR_INPUT,
			                    "sequence length %lld is out of range", (long long)len);
		for (k = 0; k < H; k++) {
			/* initial_h and initial_c are [dirs, batch, hidden], or
			 * [batch, dirs, hidden] batch-first */
			s->h[k] = h0 ? bnf_shp_get(h0, h_at(p, s->d, n) + (size_t)k) : 0;
			s->c[k] = c0 ? bnf_shp_get(c0, h_at(p, s->d, n) + (size_t)k) : 0;
		}
		for (t = 0; t < len; t++) {
			int64_t tt = reverse ? len - 1 - t : t;
			rnn_sums(s, ctx->in[0], x_at(p, tt, n), s->h);
			rnn_step(s, s->h, s->c);
			for (k = 0; y && k < H; k++)
				bnf_shp_set(y, y_at(p, tt, s->d, n) + (size_t)k, s->h[k]);
		}
		for (k = 0; k < H; k++) {
			if (yh)
				bnf_shp_set(yh, h_at(p, s->d, n) + (size_t)k, s->h[k]);
			if (yc)
				bnf_shp_set(yc, h_at(p, s->d, n) + (size_t)k, s->c[k]);
		}
	}
	return BNF_OK;
}

int bnf_nn_rnn_compute(struct bnf_op_ctx *ctx)
{
	struct rnn_plan p;
	struct rnn_dir s;
	const struct bnf_tensor *lens, *h0, *c0 = NULL;
	int64_t rows;
	int bad = 0, rc = BNF_OK, lstm;

	if (rnn_plan(ctx, &p) != BNF_OK)
		return ctx->err->status;
	lstm = p.info->kind == RNN_KIND_LSTM;
	rows = p.info->gates * p.hidden;
	memset(&s, 0, sizeof(s));
	s.p = &p;
	s.w = ctx->in[1];
	s.r = ctx->in[2];
	s.b = rnn_opt(ctx, 3, p.dirs * 2 * rows, "B", &bad);
	lens = rnn_opt(ctx, 4, p.batch, "sequence_lens", &bad);
	h0 = rnn_opt(ctx, 5, p.dirs * p.batch * p.hidden, "initial_h", &bad);
	if (lstm) {
		c0 = rnn_opt(ctx, 6, p.dirs * p.batch * p.hidden, "initial_c", &bad);
		s.peep = rnn_opt(ctx, 7, p.dirs * 3 * p.hidden, "P", &bad);
	}
	if (bad)
		return ctx->err->status;
	s.h = calloc((size_t)(p.hidden * 2 + rows * 2 + p.hidden * 3) + 1, sizeof(double));
	if (!s.h)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	s.c = s.h + p.hidden;
	s.gx = s.c + p.hidden;
	s.gh = s.gx + rows;
	s.tmp = s.gh + rows;
	for (s.d = 0; rc == BNF_OK && s.d < p.dirs; s.d++)
		rc = rnn_direction(ctx, &s, s.d == 1 || p.reverse_only, lens, h0, c0);
	free(s.h);
	return rc;
}
