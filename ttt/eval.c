/*
 * The causal evaluator (docs/EVAL.md, "The online loop").
 *
 * The test split's rows [val_end - L, n) are streamed in time order, row
 * by row and, within a row, channel by channel, into one engine per model
 * arm -- the same ttt_engine_observe() the daemon calls; the timestamp is
 * the row index, so windows are row-based as offline (weather's duplicate
 * timestamp and gap do not move them).  When the engine emits the forecast
 * of the window whose lookback ends at row r, that window is scored at
 * once against rows r+1 .. r+H, which the engine has not seen yet: every
 * window is scored before any update that could have used its data.
 * Windows whose horizon runs past the end of the file are not scored
 * (there are exactly fc_dataset_split_windows(TEST) scored per channel).
 * The validation split can be replayed the same way, to choose settings
 * without looking at the test split.
 *
 * Forecasts are batched as the daemon batches them
 * (ttt_engine_defer_forecasts, model.forecast_batch): the engine queues
 * every forecast that can share a pass and emits them, in observation
 * order, when the queue is full, a series with queued learning comes back
 * or the replay ends.  The frozen arm never learns, so its whole split
 * goes through full batches; an adapting arm's windows share a pass as
 * far as its learning allows (calibration only).  A forecast is scored by
 * its event's row (ts) and channel (tag), not by the row being fed.
 *
 * The naive arms read the same rows directly: persistence repeats the
 * window's last value; seasonal naive the last period before the origin
 * (the period from the data's step; it may reach back before the test
 * split, which is past data and causal).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"

static const char *const arm_names[TTT_ARM_COUNT] = {
    "frozen",	     "ttt",	    "ttt_recon",      "ttt_supervised",
    "ttt_nocombine", "persistence", "seasonal_naive",
};

const char *ttt_arm_name(int arm)
{
	return arm >= 0 && arm < TTT_ARM_COUNT ? arm_names[arm] : "?";
}

int ttt_arm_parse(const char *name, int *ret_arm)
{
	for (int i = 0; i < TTT_ARM_COUNT; i++)
		if (strcmp(name, arm_names[i]) == 0) {
			*ret_arm = i;
			return 0;
		}
	if (strcmp(name, "ttt_hybrid") == 0) { /* its name until 0.2 */
		*ret_arm = TTT_ARM_TTT;
		return 0;
	}
	return -EINVAL;
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct acc {
	double se, ae;
	long windows;
};

/* Score forecast y [H] of the window with origin row r, channel c. */
static void score(struct acc *a, const struct fc_dataset *d, int c, int r,
		  const float *y, int H)
{
	for (int h = 0; h < H; h++) {
		double t =
		    (double)
			d->scaled[(size_t)(r + 1 + h) * d->n_cols + (size_t)c];
		double diff = (double)y[h] - t;
		a->se += diff * diff;
		a->ae += fabs(diff);
	}
	a->windows++;
}

static void finish(struct ttt_arm_result *res, const struct acc *a, int H,
		   double t0)
{
	res->ran = 1;
	res->windows = a->windows;
	res->mse = a->windows ? a->se / ((double)a->windows * H) : (double)NAN;
	res->mae = a->windows ? a->ae / ((double)a->windows * H) : (double)NAN;
	res->seconds = wall() - t0;
	res->adapt_ms_mean = res->stats.adaptations
				 ? 1e3 * res->stats.adapt_seconds /
				       (double)res->stats.adaptations
				 : 0.0;
}

int ttt_eval_split_end(const struct fc_dataset *d, enum fc_split split)
{
	return split == FC_SPLIT_TEST  ? d->n_rows
	       : split == FC_SPLIT_VAL ? d->val_end
				       : d->train_end;
}

int ttt_eval_scored(int64_t origin, int horizon, int end)
{
	return origin + horizon <= (int64_t)end - 1;
}

/* Rows [start, end) of the split replayed. */
static int split_rows(const struct fc_dataset *d, enum fc_split split, int L,
		      int *ret_end)
{
	*ret_end = ttt_eval_split_end(d, split);
	return fc_dataset_split_start(d, split, L);
}

static int run_naive(const struct fc_dataset *d, enum fc_split split, int arm,
		     int L, int H, ttt_eval_progress_fn progress, void *user,
		     struct ttt_arm_result *res, char *errbuf,
		     size_t errbuf_size)
{
	int n, C = d->n_cols;
	int start = split_rows(d, split, L, &n);
	int period = ttt_season_period(d->step_seconds);
	float *col = malloc((size_t)n * sizeof(float));
	float *y = malloc((size_t)H * sizeof(float));
	struct acc a = {0};
	double t0 = wall();
	if (!col || !y) {
		free(col);
		free(y);
		return -ENOMEM;
	}
	if (period > start + L) {
		snprintf(errbuf, errbuf_size,
			 "seasonal period %d longer than the history", period);
		free(col);
		free(y);
		return -EINVAL;
	}
	for (int c = 0; c < C; c++) {
		for (int r = 0; r < n; r++)
			col[r] = d->scaled[(size_t)r * C + (size_t)c];
		for (int r = start + L - 1; r + H <= n - 1; r++) {
			if (arm == TTT_ARM_PERSISTENCE)
				ttt_naive_persistence(y, col, r + 1, H);
			else
				ttt_naive_seasonal(y, col, r + 1, H, period);
			score(&a, d, c, r, y, H);
		}
		if (progress && progress(user, arm, c + 1, C)) {
			free(col);
			free(y);
			return -ECANCELED;
		}
	}
	free(col);
	free(y);
	finish(res, &a, H, t0);
	return 0;
}

/* Forecast events of the engine of one model arm go here. */
struct model_ctx {
	struct acc *a;
	const struct fc_dataset *d;
	int H, arm, end;
	ttt_eval_tap_fn tap;
	void *user;
};

static void on_event(void *user, const struct ttt_event *ev)
{
	struct model_ctx *x = user;
	/* The forecast of the window whose lookback ends at row ts (the
	 * engine's timestamp is the row index) of channel tag (set before
	 * each observation; a queued forecast keeps its own). */
	if (ev->type == TTT_EV_FORECAST &&
	    ttt_eval_scored(ev->ts, x->H, x->end))
		score(x->a, x->d, (int)ev->tag, (int)ev->ts, ev->forecast,
		      x->H);
	if (x->tap)
		x->tap(x->user, x->arm, ev);
}

static int run_model(const struct fc_model *m, const struct fc_dataset *d,
		     enum fc_split split, const struct ttt_params *p, int arm,
		     int batch, ttt_eval_progress_fn progress,
		     ttt_eval_tap_fn tap, void *user,
		     struct ttt_arm_result *res, char *errbuf,
		     size_t errbuf_size)
{
	const struct fc_config *mc = fc_model_config(m);
	int L = mc->lookback, H = mc->horizon, n, C = d->n_cols;
	int start = split_rows(d, split, L, &n);
	struct ttt_engine *e = NULL;
	struct acc a = {0};
	char **keys;
	double t0 = wall();
	int rc;

	keys = calloc((size_t)C, sizeof(char *));
	if (!keys)
		return -ENOMEM;
	for (int c = 0; c < C; c++) {
		if (asprintf(&keys[c], "%s/%s", d->name, d->col_names[c]) < 0) {
			keys[c] = NULL;
			rc = -ENOMEM;
			goto out;
		}
	}
	struct model_ctx ctx = {
	    .a = &a,
	    .d = d,
	    .H = H,
	    .arm = arm,
	    .end = n,
	    .tap = tap,
	    .user = user,
	};
	rc = ttt_engine_new(m, p, on_event, &ctx, &e, errbuf, errbuf_size);
	if (rc < 0)
		goto out;
	rc = ttt_engine_defer_forecasts(e, batch);
	if (rc < 0) {
		snprintf(errbuf, errbuf_size, "cannot batch %d forecasts: %s",
			 batch, strerror(-rc));
		goto out;
	}
	for (int r = start; r < n; r++) {
		for (int c = 0; c < C; c++) {
			ttt_engine_set_tag(e, (uint64_t)c);
			rc = ttt_engine_observe(
			    e, keys[c], r,
			    d->scaled[(size_t)r * C + (size_t)c]);
			if (rc < 0) {
				snprintf(errbuf, errbuf_size,
					 "%s row %d: engine: %s", keys[c], r,
					 strerror(-rc));
				goto out;
			}
		}
		if (progress && (r - start) % 64 == 0 &&
		    progress(user, arm, r - start, n - start)) {
			rc = -ECANCELED;
			goto out;
		}
	}
	rc = ttt_engine_flush(e);
	if (rc < 0) {
		snprintf(errbuf, errbuf_size, "the last forecasts: %s",
			 strerror(-rc));
		goto out;
	}
	if (progress)
		progress(user, arm, n - start, n - start);
	ttt_engine_stats(e, &res->stats);
	finish(res, &a, H, t0);
	rc = 0;
out:
	ttt_engine_free(e);
	for (int c = 0; c < C; c++)
		free(keys[c]);
	free(keys);
	return rc;
}

int ttt_eval_run(const struct fc_model *m, const struct fc_dataset *d,
		 enum fc_split split, const struct ttt_params *params,
		 unsigned arm_mask, ttt_eval_progress_fn progress,
		 ttt_eval_tap_fn tap, void *user,
		 struct ttt_arm_result *results, char *errbuf,
		 size_t errbuf_size)
{
	return ttt_eval_run_batched(m, d, split, params, arm_mask,
				    TTT_EVAL_BATCH, progress, tap, user,
				    results, errbuf, errbuf_size);
}

int ttt_eval_run_batched(const struct fc_model *m, const struct fc_dataset *d,
			 enum fc_split split, const struct ttt_params *params,
			 unsigned arm_mask, int batch,
			 ttt_eval_progress_fn progress, ttt_eval_tap_fn tap,
			 void *user, struct ttt_arm_result *results,
			 char *errbuf, size_t errbuf_size)
{
	const struct fc_config *mc = fc_model_config(m);
	int L = mc->lookback, H = mc->horizon;
	memset(results, 0, TTT_ARM_COUNT * sizeof(*results));
	if (fc_dataset_split_windows(d, split, L, H) <= 0) {
		snprintf(errbuf, errbuf_size,
			 "%s: the split has no window of L=%d, H=%d", d->name,
			 L, H);
		return -EINVAL;
	}
	for (int arm = 0; arm < TTT_ARM_COUNT; arm++) {
		struct ttt_params p = *params;
		int rc;
		if (!(arm_mask & (1u << arm)))
			continue;
		switch (arm) {
		case TTT_ARM_FROZEN:
			p.enabled = 0;
			break;
		case TTT_ARM_TTT: /* as `driftcast run` with these settings */
			p.enabled = 1;
			break;
		case TTT_ARM_RECON: /* label-free: reconstruction only */
			p.enabled = 1;
			p.w_matured = 0.0f;
			if (p.w_recon <= 0.0f)
				p.w_recon = 1.0f;
			break;
		case TTT_ARM_SUPERVISED: /* matured windows only */
			p.enabled = 1;
			p.w_recon = 0.0f;
			if (p.w_matured <= 0.0f)
				p.w_matured = 1.0f;
			break;
		case TTT_ARM_NOCOMBINE: /* publish the adapted forecast */
			p.enabled = 1;
			p.combine_weight = 1.0f;
			p.average_rate = 0.0f; /* the newest version */
			break;
		default:
			break;
		}
		if (arm == TTT_ARM_PERSISTENCE || arm == TTT_ARM_SEASONAL)
			rc = run_naive(d, split, arm, L, H, progress, user,
				       &results[arm], errbuf, errbuf_size);
		else
			rc = run_model(m, d, split, &p, arm, batch, progress,
				       tap, user, &results[arm], errbuf,
				       errbuf_size);
		if (rc < 0)
			return rc;
	}
	return 0;
}
