/*
 * bench-forecast: forward throughput of the forecasting core and how close
 * it comes to the machine's sgemm peak, measured by this program in the
 * same run, on one BLAS thread.  Times are this thread's CPU time (the
 * machine is shared; BLAS is single-threaded here, so CPU time is the
 * work done), best of repeated runs.
 *
 *   - sgemm peak: best GFLOP/s of square products (n = 256 .. 1024);
 *   - forward (frozen forecast) at batch 1 and 256 for both backbones
 *     (GRU with 1 and 2 layers, transformer with 2):
 *     windows/s, microseconds per window, achieved GFLOP/s (matrix FLOPs of
 *     the forward pass counted from the config) and its share of the peak;
 *   - with a data file: seconds per training epoch (every training window
 *     of every channel once, plus the validation pass).
 *
 * Usage: bench-forecast [--train ETTh1.csv] [--seconds S]
 */
#include <gsl/gsl_blas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"

/* CPU time of this thread: the machine is shared, and wall time would
 * charge other processes' work to us.  BLAS runs on this thread only. */
static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double sgemm_peak(double budget)
{
	double best = 0;
	for (int n = 256; n <= 1024; n *= 2) {
		size_t nn = (size_t)n * (size_t)n;
		float *a = malloc(sizeof(float) * nn),
		      *b = malloc(sizeof(float) * nn),
		      *c = malloc(sizeof(float) * nn);
		if (!a || !b || !c) {
			free(a), free(b), free(c);
			continue;
		}
		for (size_t i = 0; i < nn; i++)
			a[i] = b[i] = (float)(i % 7) * 0.1f;
		double start = now_sec();
		do {
			double t0 = now_sec();
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				    n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
			double gf =
			    2.0 * (double)nn * n / (now_sec() - t0) * 1e-9;
			if (gf > best)
				best = gf;
		} while (now_sec() - start < budget);
		free(a), free(b), free(c);
	}
	return best;
}

/* Matrix FLOPs of one window's forward pass (what the GEMMs do). */
static double forward_flops(const struct fc_config *c)
{
	double N = fc_config_patches(c), D = c->d_model, P = c->patch_len;
	double H = c->horizon, F = c->d_ff, f = 2 * N * 2 * P * D;
	for (int l = 0; l < c->n_layers; l++) {
		if (c->backbone == FC_BACKBONE_GRU)
			f += 2 * N * D * 3 * D + 2 * (N - 1) * D * 3 * D;
		else
			f += 2 * N * D * 3 * D + 4 * N * N * D + 2 * N * D * D +
			     4 * N * D * F;
	}
	return f + 2 * N * D * H;
}

static void forward_bench(int backbone, int layers, double peak, double budget)
{
	struct fc_config c;
	struct fc_model *m;
	struct fc_workspace *ws;
	char err[256];
	fc_config_default(&c);
	c.backbone = backbone;
	c.n_layers = layers;
	if (fc_model_new(&c, 1, &m, err, sizeof(err)) < 0 ||
	    fc_workspace_new(m, 256, &ws) < 0) {
		fprintf(stderr, "bench-forecast: %s\n", err);
		return;
	}
	float *x = malloc(sizeof(float) * 256 * (size_t)c.lookback);
	float *y = malloc(sizeof(float) * 256 * (size_t)c.horizon);
	if (!x || !y) {
		free(x), free(y);
		return;
	}
	uint64_t r = 1;
	for (int i = 0; i < 256 * c.lookback; i++)
		x[i] = fc_rng_uniform(&r);
	double fl = forward_flops(&c);
	int batches[2] = {1, 256};
	for (int i = 0; i < 2; i++) {
		int b = batches[i];
		long windows = 0;
		fc_forecast(m, NULL, ws, x, b, y); /* warm-up */
		double best = 1e9, start = now_sec();
		do {
			double t0 = now_sec();
			for (int k = 0; k < (b == 1 ? 200 : 2); k++) {
				fc_forecast(m, NULL, ws, x, b, y);
				windows += b;
			}
			double per = (now_sec() - t0) / (b == 1 ? 200 : 2) / b;
			if (per < best)
				best = per;
		} while (now_sec() - start < budget);
		double gf = fl / best * 1e-9;
		printf("%-11s layers=%d D=%d L=%d H=%d batch %3d: %9.0f "
		       "windows/s, %7.2f us/window, %.2f MFLOP/window, %6.2f "
		       "GFLOP/s = %4.1f %% of sgemm peak\n",
		       fc_backbone_name(backbone), layers, c.d_model,
		       c.lookback, c.horizon, b, 1.0 / best, best * 1e6,
		       fl * 1e-6, gf, 100.0 * gf / peak);
		(void)windows;
	}
	/* batch 1 with an adapter (unchanged between calls, as for a series
	 * between two updates: the merged weights are reused) */
	float *ad = malloc(sizeof(float) * fc_adapter_len(m));
	if (ad) {
		fc_adapter_init(m, ad, 1);
		fc_forecast(m, ad, ws, x, 1, y);
		double best = 1e9, start = now_sec();
		do {
			double t0 = now_sec();
			for (int k = 0; k < 200; k++)
				fc_forecast(m, ad, ws, x, 1, y);
			double per = (now_sec() - t0) / 200;
			if (per < best)
				best = per;
		} while (now_sec() - start < budget);
		printf("%-11s layers=%d batch   1 with an adapter (%zu "
		       "floats): %7.2f us/window\n",
		       fc_backbone_name(backbone), layers, fc_adapter_len(m),
		       best * 1e6);
		free(ad);
	}
	free(x), free(y);
	fc_workspace_free(ws);
	fc_model_free(m);
}

static void train_bench(const char *path, int backbone, int layers)
{
	struct fc_dataset *d;
	char err[512];
	if (fc_dataset_load(path, NULL, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-forecast: %s\n", err);
		return;
	}
	struct fc_config c;
	struct fc_train_config t;
	struct fc_train_report rep;
	struct fc_model *m = NULL;
	fc_config_default(&c);
	c.backbone = backbone;
	c.n_layers = layers;
	fc_train_config_default(&t);
	t.epochs = 1;
	double cpu0 = now_sec();
	int r = fc_train(&c, &t, d, NULL, NULL, &m, &rep, err, sizeof(err));
	double cpu = now_sec() - cpu0;
	if (r < 0)
		fprintf(stderr, "bench-forecast: %s\n", err);
	else
		printf("training %s layers=%d on %s: %.1f s CPU (%.1f s wall) "
		       "per epoch (%d windows x %d channels, batch %d, %d "
		       "thread), val mse %.4f after 1 epoch\n",
		       fc_backbone_name(backbone), layers, d->name, cpu,
		       rep.seconds, rep.train_windows, rep.channels, t.batch,
		       rep.threads, (double)rep.best_val_mse);
	fc_model_free(m);
	fc_dataset_free(d);
}

int main(int argc, char **argv)
{
	const char *train = NULL;
	double budget = 1.0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--train") && i + 1 < argc)
			train = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			budget = atof(argv[++i]);
		else {
			fprintf(stderr, "Usage: bench-forecast [--train FILE] "
					"[--seconds S]\n");
			return 2;
		}
	}
	char desc[512];
	fc_blas_set_threads(1);
	fc_blas_describe(desc, sizeof(desc));
	printf("BLAS: %s\n", desc);
	double peak = sgemm_peak(budget);
	printf("sgemm peak (1 thread, n = 256..1024): %.1f GFLOP/s\n", peak);
	forward_bench(FC_BACKBONE_GRU, 1, peak, budget);
	forward_bench(FC_BACKBONE_GRU, 2, peak, budget);
	forward_bench(FC_BACKBONE_TRANSFORMER, 2, peak, budget);
	if (train) {
		train_bench(train, FC_BACKBONE_GRU, 1);
		train_bench(train, FC_BACKBONE_TRANSFORMER, 2);
	}
	return 0;
}
