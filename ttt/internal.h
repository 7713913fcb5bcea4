/*
 * Private to ttt/ and its tests: the drift detectors and naive baselines
 * (the evaluator's and the engine's building blocks), and the switch that
 * lets tests compare the engine's fast paths with the general code they
 * replace.  The engine's own state is in engine_private.h.
 */
#ifndef DRIFTCAST_TTT_INTERNAL_H
#define DRIFTCAST_TTT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ttt/ttt.h"

/*
 * The calibration-only fast paths (on by default when the calibration is
 * the only adapting family): an adaptation's losses, gradients and guard
 * from one frozen pass, the shadow's two scores from one.  on = 0 makes
 * the engine take the general path (full passes per evaluation) for the
 * same work; results agree to float rounding.  Flushes queued work first;
 * 0 or its negative errno.
 */
int ttt_engine_set_fast_paths(struct ttt_engine *e, int on);

/*
 * ttt_eval_run() with forecasts batched by up to batch windows
 * (ttt_engine_defer_forecasts; batch <= 1: one window per pass, as the
 * engine works at once).  ttt_eval_run() takes TTT_EVAL_BATCH.  Tests and
 * bench/ compare the two.
 */
#define TTT_EVAL_BATCH 256
int ttt_eval_run_batched(const struct fc_model *m, const struct fc_dataset *d,
			 enum fc_split split, const struct ttt_params *params,
			 unsigned arm_mask, int batch,
			 ttt_eval_progress_fn progress, ttt_eval_tap_fn tap,
			 void *user, struct ttt_arm_result *results,
			 char *errbuf, size_t errbuf_size);

/* ---- drift detectors (detect.c) ------------------------------------------
 * Fixed-size state, no allocation.  update() returns 1 when the detector
 * fires (it then resets itself), 0 otherwise.
 */
struct ttt_ph {
	double mean, cum, min_cum;
	long n;
};
void ttt_ph_init(struct ttt_ph *ph);
int ttt_ph_update(struct ttt_ph *ph, float x, float delta, float lambda,
		  float *ret_stat);

#define TTT_ADWIN_MAX 32 /* bounded window: the last 32 samples */
struct ttt_adwin {
	float v[TTT_ADWIN_MAX];
	int head, n;
};
void ttt_adwin_init(struct ttt_adwin *a);
int ttt_adwin_update(struct ttt_adwin *a, float x, float delta,
		     float *ret_stat);

/* ---- naive baselines (naive.c) -------------------------------------------
 * y [H] from the history x [n] ending at the forecast origin: persistence
 * repeats x[n-1]; seasonal naive repeats the last full period,
 * y[h] = x[n - period + (h mod period)] (needs n >= period >= 1; the
 * period may exceed the model's lookback, e.g. 144 for 10-minute data).
 */
void ttt_naive_persistence(float *y, const float *x, int n, int H);
void ttt_naive_seasonal(float *y, const float *x, int n, int H, int period);

#endif
