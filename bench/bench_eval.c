/*
 * bench-eval: the causal evaluator (`driftcast eval`) with one window per
 * forward pass (the engine at once: how eval worked before it batched)
 * and with its forecasts batched (ttt_eval_run's default), measured in
 * the same run on one BLAS thread, as thread CPU time (the machine is
 * shared: wall time would charge other processes' work to us), best of
 * a few runs per arm.
 *
 *   build/bench/bench-eval [--data F.csv] [--model M] [--batch N] [--runs R]
 *                          [--backbone gru|transformer] [--frozen]
 *
 * Defaults: data/ETTh1.csv (run from the checkout) and a freshly
 * initialised default model of each backbone (the cost does not depend on
 * the weights; a model file replaces both; --backbone keeps one).  For the
 * frozen arm and the default adapting arm it prints CPU seconds one at a time
 * and batched, the ratio new/old, and the relative difference of the two MSEs
 * (the batch size can change a forecast's last bits: BLAS picks its kernels by
 * the shape).  Exit 1 if the MSEs differ by more than 1e-6 relative.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best CPU seconds of runs evaluations of arm; its result in *ret. */
static double time_arm(const struct fc_model *m, const struct fc_dataset *d,
		       int arm, int batch, int runs, struct ttt_arm_result *ret)
{
	struct ttt_arm_result res[TTT_ARM_COUNT];
	struct ttt_params p;
	char err[512];
	double best = INFINITY;
	ttt_params_default(&p);
	/* the season + 1 cadence `driftcast eval` takes for hourly data */
	p.every = ttt_season_period(d->step_seconds) + 1;
	for (int k = 0; k < runs; k++) {
		double t0 = cpu_now();
		if (ttt_eval_run_batched(m, d, FC_SPLIT_TEST, &p, 1u << arm,
					 batch, NULL, NULL, NULL, res, err,
					 sizeof(err)) < 0) {
			fprintf(stderr, "bench-eval: %s\n", err);
			exit(1);
		}
		double t = cpu_now() - t0;
		if (t < best)
			best = t;
	}
	*ret = res[arm];
	return best;
}

/* --frozen: the frozen arm only (repeated measurements of the ratio) */
static int frozen_only;

static int bench_model(const struct fc_model *m, const char *what,
		       const struct fc_dataset *d, int batch, int runs)
{
	static const int arms[] = {TTT_ARM_FROZEN, TTT_ARM_TTT};
	int bad = 0;
	size_t n_arms = frozen_only ? 1 : sizeof(arms) / sizeof(arms[0]);
	for (size_t i = 0; i < n_arms; i++) {
		struct ttt_arm_result r1, rb;
		double t1 = time_arm(m, d, arms[i], 1, runs, &r1);
		double tb = time_arm(m, d, arms[i], batch, runs, &rb);
		double rel = fabs(rb.mse - r1.mse) / r1.mse;
		printf("%-12s %-11s %6ld windows: one at a time %6.3f s "
		       "(%5.1f us/window), batched by %d %6.3f s (%5.1f "
		       "us/window): new/old %.2fx faster; MSE %.6f vs %.6f "
		       "(rel. diff %.1e)\n",
		       what, ttt_arm_name(arms[i]), r1.windows, t1,
		       1e6 * t1 / (double)r1.windows, batch, tb,
		       1e6 * tb / (double)rb.windows, t1 / tb, r1.mse, rb.mse,
		       rel);
		bad |= !(rel <= 1e-6) || r1.windows != rb.windows;
	}
	return bad;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"model", required_argument, NULL, 'm'},
	    {"batch", required_argument, NULL, 'b'},
	    {"runs", required_argument, NULL, 'r'},
	    {"backbone", required_argument, NULL, 'k'},
	    {"frozen", no_argument, NULL, 'f'},
	    {NULL, 0, NULL, 0},
	};
	const char *data = "data/ETTh1.csv", *model = NULL, *only = NULL;
	int batch = TTT_EVAL_BATCH, runs = 3, opt, bad = 0;
	struct fc_dataset *d = NULL;
	char err[512], blas[512];
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'm':
			model = optarg;
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'k':
			only = optarg;
			break;
		case 'f':
			frozen_only = 1;
			break;
		default:
			fprintf(stderr, "usage: bench-eval [--data F.csv] "
					"[--model M] [--batch N] [--runs R] "
					"[--backbone gru|transformer] "
					"[--frozen]\n");
			return 2;
		}
	}
	if (only && strcmp(only, "gru") != 0 && strcmp(only, "transformer")) {
		fprintf(stderr, "bench-eval: --backbone gru or transformer\n");
		return 2;
	}
	if (batch < 2 || runs < 1) {
		fprintf(stderr, "bench-eval: --batch >= 2, --runs >= 1\n");
		return 2;
	}
	fc_blas_set_threads(1);
	fc_blas_describe(blas, sizeof(blas));
	printf("BLAS: %s\n", blas);
	if (fc_dataset_load(data, NULL, &d, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-eval: %s\n", err);
		return 1;
	}
	printf("%s: test split, %d channels\n", data, d->n_cols);
	if (model) {
		struct fc_model *m = NULL;
		if (fc_model_load(model, &m, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench-eval: %s\n", err);
			return 1;
		}
		bad |= bench_model(m, "model", d, batch, runs);
		fc_model_free(m);
	} else {
		static const char *const backbones[] = {"gru", "transformer"};
		for (int b = 0; b < 2; b++) {
			struct fc_config c;
			struct fc_model *m = NULL;
			if (only && strcmp(only, backbones[b]) != 0)
				continue;
			fc_config_default(&c);
			if (fc_backbone_parse(backbones[b], &c.backbone) < 0 ||
			    fc_model_new(&c, 1, &m, err, sizeof(err)) < 0) {
				fprintf(stderr, "bench-eval: %s\n", err);
				return 1;
			}
			bad |= bench_model(m, backbones[b], d, batch, runs);
			fc_model_free(m);
		}
	}
	fc_dataset_free(d);
	return bad;
}
