/*
 * The signal family (opset 17): DFT, STFT, the Hann, Hamming and Blackman
 * windows and MelWeightMatrix, the front end of audio models. Transforms
 * are the textbook sums in double (O(n^2) per transform, which a check of
 * a model's front end affords); complex values travel as a last axis of
 * two (real, imaginary).
 */
#include "eval/shape_common.h"
#include "eval/signal_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIG_TAU 6.283185307179586476925286766559

int bnf_sig_done_compute(struct bnf_op_ctx *ctx)
{
	(void)ctx; /* the shape step filled the output */
	return BNF_OK;
}

/* A scalar integer input (a 0-D or one-element int32/int64 tensor). */
static int scalar_int(const struct bnf_op_ctx *ctx, size_t i, const char *what, int64_t *v)
{
	const struct bnf_tensor *t = bnf_shp_in(ctx, i);
	size_t n;

	if (!t || bnf_shp_read_ints(ctx, t, what, v, 1, &n) != BNF_OK || n != 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "%s must be one integer", what);
	return BNF_OK;
}

/* Output datatype attribute (float by default), checked. */
static int out_dtype(const struct bnf_op_ctx *ctx, int *dtype)
{
	int64_t dt;

	if (bnf_attr_int(ctx->node, "output_datatype", DT(FLOAT), &dt, ctx->err) != BNF_OK)
		return ctx->err->status;
	if (!bnf_shp_is_float((int)dt) && !bnf_dtype_is_integer((int)dt))
		return bnf_shp_fail(ctx, BNF_ERR_UNSUPPORTED,
		                    "output_datatype %lld is not supported", (long long)dt);
	*dtype = (int)dt;
	return BNF_OK;
}

/* ---- windows ---- */

/* w[n] = a0 - a1 cos(tau n / N) + a2 cos(2 tau n / N), N the size when
 * periodic, one less when symmetric (the spec's function bodies). */
static const struct {
	const char *op_type;
	double a0, a1, a2;
} windows[] = {
    {"HannWindow", 0.5, 0.5, 0.0},
    {"HammingWindow", 25.0 / 46.0, 21.0 / 46.0, 0.0},
    {"BlackmanWindow", 0.42, 0.5, 0.08},
};

int bnf_sig_window_shape(struct bnf_op_ctx *ctx)
{
	int64_t size, periodic, n;
	double denom;
	size_t k;
	int dtype;

	if (bnf_shp_check_io(ctx, 1, 1) != BNF_OK || scalar_int(ctx, 0, "size", &size) != BNF_OK ||
	    bnf_attr_int(ctx->node, "periodic", 1, &periodic, ctx->err) != BNF_OK ||
	    out_dtype(ctx, &dtype) != BNF_OK)
		return ctx->err->status;
	for (k = 0; k < sizeof(windows) / sizeof(windows[0]); k++)
		if (strcmp(windows[k].op_type, ctx->node->op_type) == 0)
			break;
	if (k == sizeof(windows) / sizeof(windows[0]) || size < 0)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "not a window of size >= 0");
	if (bnf_shp_new_out(ctx, 0, dtype, 1, &size) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	denom = (double)(periodic ? size : size - 1);
	for (n = 0; n < size; n++) {
		double a = SIG_TAU * (double)n / denom;
		bnf_shp_set(ctx->out[0], (size_t)n,
		            windows[k].a0 - windows[k].a1 * cos(a) + windows[k].a2 * cos(2 * a));
	}
	return BNF_OK;
}

/* ---- MelWeightMatrix ---- */

/* [dft_length / 2 + 1, num_mel_bins] triangles with peak 1, their edges at
 * num_mel_bins + 2 points equally spaced on the mel scale (mel(f) = 2595
 * log10(1 + f / 700)) from lower to upper edge, each mapped down to an
 * FFT bin as onnxruntime does: floor((dft_length + 1) * hz / rate). */
int bnf_sig_mel_shape(struct bnf_op_ctx *ctx)
{
	int64_t n_mel, dft_len, rate, dims[2], i, j, *bins;
	double lo, hi, step;
	int dtype;

	if (bnf_shp_check_io(ctx, 5, 5) != BNF_OK ||
	    scalar_int(ctx, 0, "num_mel_bins", &n_mel) != BNF_OK ||
	    scalar_int(ctx, 1, "dft_length", &dft_len) != BNF_OK ||
	    scalar_int(ctx, 2, "sample_rate", &rate) != BNF_OK || out_dtype(ctx, &dtype) != BNF_OK)
		return ctx->err->status;
	if (ctx->in[3]->count != 1 || ctx->in[4]->count != 1 || n_mel < 1 || dft_len < 1 ||
	    rate < 1)
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "the bins, length, rate and edges must be "
		                    "positive scalars");
	lo = 2595 * log10(1 + bnf_tensor_get_double(ctx->in[3], 0) / 700);
	hi = 2595 * log10(1 + bnf_tensor_get_double(ctx->in[4], 0) / 700);
	dims[0] = dft_len / 2 + 1;
	dims[1] = n_mel;
	if (bnf_shp_new_out(ctx, 0, dtype, 2, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	bins = malloc((size_t)(n_mel + 2) * sizeof(*bins));
	if (!bins)
		return bnf_shp_fail(ctx, BNF_ERR_NOMEM, "out of memory");
	step = (hi - lo) / (double)(n_mel + 2);
	for (i = 0; i < n_mel + 2; i++) {
		double hz = 700 * (pow(10, (lo + step * (double)i) / 2595) - 1);
		bins[i] = (int64_t)floor((double)(dft_len + 1) * hz / (double)rate);
	}
	for (i = 0; i < n_mel; i++) {
		int64_t left = bins[i], centre = bins[i + 1], right = bins[i + 2];
		for (j = left; j <= centre; j++)
			if (j >= 0 && j < dims[0])
				bnf_shp_set(ctx->out[0], (size_t)(j * n_mel + i),
				            centre == left
				                ? 1.0
				                : (double)(j - left) / (double)(centre - left));
		for (j = centre; j < right; j++)
			if (j >= 0 && j < dims[0])
				bnf_shp_set(ctx->out[0], (size_t)(j * n_mel + i),
				            (double)(right - j) / (double)(right - centre));
	}
	free(bins);
	return BNF_OK;
}

/* ---- DFT and STFT ---- */

/* One transform: n_out bins of the length-n transform of the signal
 * x[at + k * step] (k < n_in, the rest zeros), complex when cplx; window
 * w (or NULL) multiplies the signal; inverse takes the conjugate sum
 * divided by n. out receives re, im pairs, out_step pairs apart. */
static void dft_line(const struct bnf_tensor *x, size_t at, size_t step, int64_t n_in, int cplx,
                     const struct bnf_tensor *w, int64_t n, int64_t n_out, int inverse,
                     struct bnf_tensor *out, size_t out_at, size_t out_step)
{
	double sign = inverse ? 1.0 : -1.0;
	int64_t k, j;

	for (k = 0; k < n_out; k++) {
		double re = 0, im = 0;
		for (j = 0; j < n_in && j < n; j++) {
			size_t e = at + (size_t)j * step;
			double xr = bnf_shp_get(x, cplx ? 2 * e : e),
			       xi = cplx ? bnf_shp_get(x, 2 * e + 1) : 0;
			double a = sign * SIG_TAU * (double)((k * j) % n) / (double)n;
			double wj = w ? bnf_shp_get(w, (size_t)j) : 1.0;
			re += wj * (xr * cos(a) - xi * sin(a));
			im += wj * (xr * sin(a) + xi * cos(a));
		}
		if (inverse) {
			re /= (double)n;
			im /= (double)n;
		}
		bnf_shp_set(out, 2 * (out_at + (size_t)k * out_step), re);
		bnf_shp_set(out, 2 * (out_at + (size_t)k * out_step) + 1, im);
	}
}

/* DFT-17: along axis (not the last, which holds 1 or 2 components), of
 * length dft_length (input 1; the signal is cut or zero-padded), only the
 * first n / 2 + 1 bins when onesided. */
int bnf_sig_dft_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x;
	int64_t axis_attr, inverse, onesided, n, n_out, dims[BNF_MAX_RANK], outer = 1, inner = 1;
	int64_t o, i;
	int axis, a, cplx;

	if (bnf_shp_check_io(ctx, 1, 2) != BNF_OK ||
	    bnf_attr_int(ctx->node, "axis", 1, &axis_attr, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "inverse", 0, &inverse, ctx->err) != BNF_OK ||
	    bnf_attr_int(ctx->node, "onesided", 0, &onesided, ctx->err) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	if (x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2) ||
	    !bnf_shp_is_float(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT, "input must be floating [..., 1 or 2]");
	if (bnf_shp_axis(ctx, axis_attr, x->rank - 1, "axis", &axis) != BNF_OK)
		return ctx->err->status;
	cplx = x->dims[x->rank - 1] == 2;
	n = x->dims[axis];
	if (bnf_shp_in(ctx, 1) && scalar_int(ctx, 1, "dft_length", &n) != BNF_OK)
		return ctx->err->status;
	if (n < 1 || (onesided && (inverse || cplx)))
		return bnf_shp_fail(
		    ctx, BNF_ERR_INPUT,
		    "dft_length must be positive; onesided needs a real forward DFT");
	n_out = onesided ? n / 2 + 1 : n;
	memcpy(dims, x->dims, sizeof(dims));
	dims[axis] = n_out;
	dims[x->rank - 1] = 2;
	if (bnf_shp_new_out(ctx, 0, x->dtype, x->rank, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (a = 0; a < axis; a++)
		outer *= x->dims[a];
	for (a = axis + 1; a < x->rank - 1; a++)
		inner *= x->dims[a];
	for (o = 0; o < outer; o++)
		for (i = 0; i < inner; i++)
			dft_line(x, (size_t)(o * x->dims[axis] * inner + i), (size_t)inner,
			         x->dims[axis], cplx, NULL, n, n_out, inverse != 0, ctx->out[0],
			         (size_t)(o * n_out * inner + i), (size_t)inner);
	return BNF_OK;
}

/* STFT-17: signal [batch, length, 1 or 2], frame_step, window (optional),
 * frame_length (optional: the window's length); frames of frame_length
 * every frame_step, each windowed and transformed. */
int bnf_sig_stft_shape(struct bnf_op_ctx *ctx)
{
	const struct bnf_tensor *x, *w;
	int64_t onesided, fstep, flen, n_frames, bins, dims[4], b, f;
	int cplx;

	if (bnf_shp_check_io(ctx, 2, 4) != BNF_OK ||
	    bnf_attr_int(ctx->node, "onesided", 1, &onesided, ctx->err) != BNF_OK ||
	    scalar_int(ctx, 1, "frame_step", &fstep) != BNF_OK)
		return ctx->err->status;
	x = ctx->in[0];
	w = bnf_shp_in(ctx, 2);
	if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2) || !bnf_shp_is_float(x->dtype))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "signal must be floating [batch, length, 1 "
		                    "or 2]");
	cplx = x->dims[2] == 2;
	flen = w ? (int64_t)w->count : 0;
	if (bnf_shp_in(ctx, 3) && scalar_int(ctx, 3, "frame_length", &flen) != BNF_OK)
		return ctx->err->status;
	if (flen < 1 || fstep < 1 || flen > x->dims[1] || (w && (int64_t)w->count != flen) ||
	    (onesided && cplx))
		return bnf_shp_fail(ctx, BNF_ERR_INPUT,
		                    "frame length, step and window do not fit the signal");
	n_frames = (x->dims[1] - flen) / fstep + 1;
	bins = onesided ? flen / 2 + 1 : flen;
	memcpy(dims, (int64_t[4]){x->dims[0], n_frames, bins, 2}, sizeof(dims));
	if (bnf_shp_new_out(ctx, 0, x->dtype, 4, dims) != BNF_OK || !ctx->out[0])
		return ctx->err->status;
	for (b = 0; b < x->dims[0]; b++)
		for (f = 0; f < n_frames; f++)
			dft_line(x, (size_t)(b * x->dims[1] + f * fstep), 1, flen, cplx, w, flen,
			         bins, 0, ctx->out[0], (size_t)((b * n_frames + f) * bins), 1);
	return BNF_OK;
}
