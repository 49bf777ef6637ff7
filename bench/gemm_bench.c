/*
 * GEMM throughput of the evaluator on the im2col shapes of ResNet-50's
 * convolutions (M = output channels, N = output pixels, K = input channels
 * x kernel), with 1 and with 2 threads: the median of several runs per
 * shape, in GFLOP/s and, given the machine's peak, as a fraction of it.
 *
 *   gemm_bench [PEAK_GFLOPS_PER_CORE] [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "eval/op.h"

struct gemm_shape {
	const char *layer;
	size_t m, n, k;
	int count; /* how many convolutions of ResNet-50 have this shape */
};

static const struct gemm_shape shapes[] = {
    {"conv1 7x7/2", 64, 12544, 147, 1},       {"l1 1x1 64", 64, 3136, 64, 1},
    {"l1 3x3 64", 64, 3136, 576, 3},          {"l1 1x1 ->256", 256, 3136, 64, 4},
    {"l1 1x1 256->64", 64, 3136, 256, 2},     {"l2 1x1 256->128", 128, 3136, 256, 1},
    {"l2 3x3/2 128", 128, 784, 1152, 1},      {"l2 3x3 128", 128, 784, 1152, 3},
    {"l2 1x1 ->512", 512, 784, 128, 4},       {"l2 ds 256->512/2", 512, 784, 256, 1},
    {"l2 1x1 512->128", 128, 784, 512, 3},    {"l3 1x1 512->256", 256, 784, 512, 1},
    {"l3 3x3 256", 256, 196, 2304, 6},        {"l3 1x1 ->1024", 1024, 196, 256, 6},
    {"l3 ds 512->1024/2", 1024, 196, 512, 1}, {"l3 1x1 1024->256", 256, 196, 1024, 5},
    {"l4 1x1 1024->512", 512, 196, 1024, 1},  {"l4 3x3 512", 512, 49, 4608, 3},
    {"l4 1x1 ->2048", 2048, 49, 512, 3},      {"l4 ds 1024->2048/2", 2048, 49, 1024, 1},
    {"l4 1x1 2048->512", 512, 49, 2048, 2},
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median seconds of `runs` multiplies of one shape. */
static double time_shape(const struct gemm_shape *s, int threads, int runs, const float *a,
                         const float *b, float *c)
{
	double t[64];
	int r;

	for (r = 0; r < runs; r++) {
		double t0 = now();
		bnf_sgemm(threads, s->m, s->n, s->k, a, s->k, b, s->n, c, s->n, 0);
		t[r] = now() - t0;
	}
	qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
	return t[runs / 2];
}

int main(int argc, char **argv)
{
	size_t n_shapes = sizeof(shapes) / sizeof(shapes[0]), max = 0, i;
	double peak_core = argc > 1 ? atof(argv[1]) : 0;
	int runs = argc > 2 ? atoi(argv[2]) : 7, rc = 0, th;
	double flops = 0, secs[2] = {0, 0};
	float *a = NULL, *b = NULL, *c = NULL;

	if (runs < 1 || runs > 64)
		runs = 7;
	for (i = 0; i < n_shapes; i++) {
		size_t need = shapes[i].m * shapes[i].k;
		if (shapes[i].k * shapes[i].n > need)
			need = shapes[i].k * shapes[i].n;
		if (shapes[i].m * shapes[i].n > need)
			need = shapes[i].m * shapes[i].n;
		if (need > max)
			max = need;
	}
	a = malloc(max * sizeof(*a));
	b = malloc(max * sizeof(*b));
	c = malloc(max * sizeof(*c));
	if (!a || !b || !c) {
		fprintf(stderr, "gemm_bench: out of memory\n");
		rc = 1;
		goto out;
	}
	for (i = 0; i < max; i++) {
		a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
		b[i] = (float)((i * 104729) % 997) / 997.0f - 0.5f;
	}
	printf("| shape (layer) | M x N x K | x | GFLOP/s 1 thread | GFLOP/s 2 threads |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	for (i = 0; i < n_shapes; i++) {
		const struct gemm_shape *s = &shapes[i];
		double f = 2.0 * (double)s->m * (double)s->n * (double)s->k, g[2];
		for (th = 0; th < 2; th++) {
			double t = time_shape(s, th + 1, runs, a, b, c);
			g[th] = f / t * 1e-9;
			secs[th] += t * s->count;
		}
		flops += f * s->count;
		printf("| %s | %zu x %zu x %zu | %d | %.1f | %.1f |\n", s->layer, s->m, s->n, s->k,
		       s->count, g[0], g[1]);
	}
	printf("\nAll %.2f GFLOP of ResNet-50's convolutions: %.1f GFLOP/s with 1 thread, "
	       "%.1f GFLOP/s with 2",
	       flops * 1e-9, flops / secs[0] * 1e-9, flops / secs[1] * 1e-9);
	if (peak_core > 0)
		printf(" (%.2f and %.2f of the peak of %.1f and %.1f)",
		       flops / secs[0] * 1e-9 / peak_core, flops / secs[1] * 1e-9 / (2 * peak_core),
		       peak_core, 2 * peak_core);
	printf(".\n");
out:
	free(a);
	free(b);
	free(c);
	return rc;
}
