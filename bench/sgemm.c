/*
 * bench-sgemm: achieved single-precision GEMM throughput through GSL's
 * gsl_blas_sgemm (which the build routes to OpenBLAS), on one thread and
 * on all threads, and, for comparison, GSL's reference libgslcblas when it
 * is installed (loaded with dlopen; the driftcast binary never links it).
 *
 * Prints GFLOP/s per size and the ratio OpenBLAS / reference measured in
 * this run.  Usage: bench-sgemm [max_size]
 */
#include <dlfcn.h>
#include <gsl/gsl_blas.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "forecast/forecast.h"

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE,
			 enum CBLAS_TRANSPOSE, int, int, int, float,
			 const float *, int, const float *, int, float, float *,
			 int);

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(float *x, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		x[i] = (float)((seed >> 9) & 0x3fff) / 16384.0f - 0.5f;
	}
}

/* GFLOP/s of C = A B for n x n matrices, best of several repetitions
 * lasting at least `budget` seconds. */
static double measure_gsl(int n, double budget)
{
	float *a = malloc(sizeof(float) * (size_t)n * (size_t)n);
	float *b = malloc(sizeof(float) * (size_t)n * (size_t)n);
	float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
	if (!a || !b || !c) {
		free(a), free(b), free(c);
		return 0;
	}
	fill(a, (size_t)n * (size_t)n, 1);
	fill(b, (size_t)n * (size_t)n, 2);
	gsl_matrix_float_view A =
	    gsl_matrix_float_view_array(a, (size_t)n, (size_t)n);
	gsl_matrix_float_view B =
	    gsl_matrix_float_view_array(b, (size_t)n, (size_t)n);
	gsl_matrix_float_view C =
	    gsl_matrix_float_view_array(c, (size_t)n, (size_t)n);
	double best = 0, start = now_sec();
	do {
		double t0 = now_sec();
		gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &A.matrix,
			       &B.matrix, 0.0f, &C.matrix);
		double dt = now_sec() - t0;
		double gf = 2.0 * n * n * (double)n / dt * 1e-9;
		if (gf > best)
			best = gf;
	} while (now_sec() - start < budget);
	free(a), free(b), free(c);
	return best;
}

static double measure_fn(sgemm_fn f, int n, double budget)
{
	float *a = malloc(sizeof(float) * (size_t)n * (size_t)n);
	float *b = malloc(sizeof(float) * (size_t)n * (size_t)n);
	float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
	if (!a || !b || !c) {
		free(a), free(b), free(c);
		return 0;
	}
	fill(a, (size_t)n * (size_t)n, 1);
	fill(b, (size_t)n * (size_t)n, 2);
	double best = 0, start = now_sec();
	do {
		double t0 = now_sec();
		f(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a,
		  n, b, n, 0.0f, c, n);
		double dt = now_sec() - t0;
		double gf = 2.0 * n * n * (double)n / dt * 1e-9;
		if (gf > best)
			best = gf;
	} while (now_sec() - start < budget);
	free(a), free(b), free(c);
	return best;
}

int main(int argc, char **argv)
{
	int max_n = argc > 1 ? atoi(argv[1]) : 1024;
	char desc[512];
	int sizes[] = {64, 128, 256, 512, 1024, 2048};
	double peak1 = 0;

	fc_blas_set_threads(1);
	fc_blas_describe(desc, sizeof(desc));
	printf("BLAS: %s\n", desc);
	printf("%6s %16s %16s\n", "n", "GFLOP/s 1 thread", "GFLOP/s all");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int n = sizes[i];
		if (n > max_n)
			break;
		fc_blas_set_threads(1);
		double g1 = measure_gsl(n, 0.3);
		int threads =
		    fc_blas_set_threads((int)sysconf(_SC_NPROCESSORS_ONLN));
		double gall = measure_gsl(n, 0.3);
		printf("%6d %16.1f %16.1f (%d threads)\n", n, g1, gall,
		       threads);
		if (g1 > peak1)
			peak1 = g1;
	}
	fc_blas_set_threads(1);
	printf("sgemm peak through gsl_blas_sgemm, 1 thread: %.1f GFLOP/s\n",
	       peak1);

	void *ref = dlopen("libgslcblas.so.0", RTLD_NOW | RTLD_LOCAL);
	if (ref) {
		sgemm_fn f = (sgemm_fn)(uintptr_t)dlsym(ref, "cblas_sgemm");
		if (f) {
			double g = measure_fn(f, 512, 0.5);
			printf(
			    "GSL reference libgslcblas (dlopen, n=512): %.1f "
			    "GFLOP/s; OpenBLAS/reference = %.1fx\n",
			    g, g > 0 ? peak1 / g : 0);
		}
		dlclose(ref);
	} else {
		printf("GSL reference libgslcblas not installed; no "
		       "comparison\n");
	}
	return 0;
}
