/*
 * The level correction (ttt/level.c): what a series publishes is its
 * forecast plus the shrunk mean error of its freshest forecasts.  Checked
 * against a reference written here from the rule in level.c's comment,
 * over a stream that starts to rise, a short gap (interpolated values, no
 * forecast there) and a long one (positions restart); the batched path
 * gives the same corrections; a restored series starts from zero; and a
 * persistent offset is corrected while the adapter learns what it learns
 * without the correction.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

#define L	32
#define H	8
#define K	4
#define FORGET	0.99f
#define SHRINK	1.0f
#define MAXTS	1300
#define FLIP_AT 600 /* values rise until here, then flip by 3 every 40 */

#include "tests/ttt/shift_stream.h"
#define PAUSE 100

static float share = 1.0f; /* ttt.level_share of the engines made */

static void params(struct ttt_params *p, int level_steps)
{
	ttt_params_default(p);
	p->recal_steps = 0; /* the level correction's rule alone */
	p->level_steps = level_steps;
	p->level_forget = FORGET;
	p->level_shrink = SHRINK;
	p->level_share = share;
	p->fallback_pause = PAUSE;
}

static struct ttt_engine *engine(struct fc_model *m, int level_steps, int batch,
				 struct ss_run *r)
{
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	params(&p, level_steps);
	memset(r, 0, sizeof(*r));
	cr_assert_eq(
	    ttt_engine_new(m, &p, ss_on_event, r, &e, err, sizeof(err)), 0,
	    "%s", err);
	if (batch > 1)
		cr_assert_eq(ttt_engine_defer_forecasts(e, batch), 0);
	return e;
}

/* The reference: the corrections the rule gives the forecasts of run
 * `off` (the level off, otherwise the same engine), in double as level.c
 * computes them; b[ts] for every origin with a forecast. */
static int gated; /* origins whose correction its losses turned off */

static void reference(const struct ss_run *off, float *b)
{
	static struct ss_positions ps;
	const float *y = ps.y;
	const int64_t *at = ps.at;
	double sm = 0, sq = 0, sw = 0, gain = 0;
	long off_for = 0;
	memset(&ps, 0, sizeof(ps));
	ps.last = -1;
	for (int64_t ts = 0; ts < MAXTS; ts++) {
		if (!ss_fed(ts))
			continue;
		long pos = ss_advance(&ps, off, ts);
		if (pos < 0)
			continue;
		if (pos >= K && at[pos - K] >= 0) {
			double sy = 0, sf = 0;
			for (long i = pos - K + 1; i <= pos; i++)
				sy += (double)y[i];
			for (int k = 0; k < K; k++)
				sf += (double)off->fc[at[pos - K]][k];
			double err = sy / K - (double)(float)(sf / K);
			sm = (double)FORGET * sm + err;
			sq = (double)FORGET * sq + err * err;
			sw = (double)FORGET * sw + 1.0;
			double after = err - (double)b[at[pos - K]];
			gain = 0.99 * gain + err * err - after * after;
		}
		double corr = 0, nn = sw / K;
		if (sw > 0 && nn >= 2.0) {
			double mean = sm / sw, var = sq / sw - mean * mean;
			var = var < 0 ? 0 : var;
			double c = (double)SHRINK * var;
			if (mean * mean * nn > c)
				corr = mean * (1.0 - c / (nn * mean * mean));
		}
		if (gain < 0 && ++off_for > PAUSE) {
			gain = 0;
			off_for = 0;
		}
		b[ts] = gain < 0 ? 0.0f : share * (float)corr;
		gated += gain < 0;
	}
}

/* Every forecast is the one without the correction plus the reference's
 * correction; the adapter's versions are the same with and without it
 * (it learns from the model's forecasts, not from what is published). */
static void published_is_the_rule(float share_)
{
	share = share_;
	gated = 0;
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run off, on;
	static float b[MAXTS];
	struct ttt_engine *e0 = engine(m, 0, 1, &off),
			  *e1 = engine(m, K, 1, &on);
	ss_feed(e0, 0, MAXTS);
	ss_feed(e1, 0, MAXTS);
	reference(&off, b);
	int moved = 0, checked = 0;
	for (int ts = 0; ts < MAXTS; ts++) {
		cr_assert_eq(off.have[ts], on.have[ts], "ts %d", ts);
		if (!on.have[ts])
			continue;
		cr_assert_eq(off.version[ts], on.version[ts], "ts %d", ts);
		for (int h = 0; h < H; h++) {
			float want = off.fc[ts][h] + b[ts];
			/* the reference's double sums in this file's order
			 * and contraction: the correction to a few ulps */
			cr_assert_float_eq(on.fc[ts][h], want,
					   1e-6f * (1.0f + fabsf(want)),
					   "ts %d step %d: %.9g vs %.9g", ts, h,
					   (double)on.fc[ts][h], (double)want);
		}
		moved += b[ts] != 0.0f;
		checked++;
	}
	/* not vacuous: the rule corrected a good share of the forecasts,
	 * and none in a refilled lookback's first 2 K origins after the
	 * restart */
	cr_assert_gt(checked, MAXTS / 2);
	cr_assert_gt(moved, checked / 4, "%d of %d corrected", moved, checked);
	/* and where the level flips, the corrections lost and were turned
	 * off for a while */
	cr_assert_gt(gated, PAUSE, "%d origins without a correction", gated);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

Test(level, published_forecast_is_the_forecast_plus_the_rule)
{
	published_is_the_rule(1.0f);
}

/* ttt.level_share: that share of the correction is published, and judged */
Test(level, a_share_of_the_correction_is_published)
{
	published_is_the_rule(0.5f);
}

/* Once the values rise, the model (normalising each lookback by its own
 * mean) forecasts below them by a persistent offset, and the correction
 * takes a good part of that error away. */
Test(level, a_persistent_offset_is_corrected)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run off, on;
	struct ttt_engine *e0 = engine(m, 0, 1, &off),
			  *e1 = engine(m, K, 1, &on);
	ss_feed(e0, 0, MAXTS);
	ss_feed(e1, 0, MAXTS);
	double m0 = ss_mse(&off, 100, FLIP_AT), m1 = ss_mse(&on, 100, FLIP_AT);
	cr_log_info("after the shift: without %.4f, with the level %.4f", m0,
		    m1);
	cr_assert_lt(m1, 0.9 * m0, "%g vs %g", m1, m0);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

/* Forecasts batched (published from the flush, several of the series'
 * forecasts queued at once) get the corrections of the forecasts made at
 * once: the sums follow the forecasts in the order they were made. */
Test(level, batched_forecasts_get_the_same_corrections)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run now, later;
	struct ttt_engine *e1 = engine(m, K, 1, &now),
			  *e2 = engine(m, K, 16, &later);
	ss_feed(e1, 0, MAXTS);
	ss_feed(e2, 0, MAXTS);
	cr_assert_eq(now.forecasts, later.forecasts);
	ss_assert_close(&now, &later, 0, MAXTS);
	ttt_engine_free(e1);
	ttt_engine_free(e2);
	fc_model_free(m);
}

/* The sums are not saved with the recent values: a series given recent
 * values publishes no correction until 2 K errors have arrived, then
 * corrects again -- also when it had sums before (here: its own values
 * restored into the engine that saved them).  Its forecasts for those
 * origins equal, bit for bit, those of the level-off engine that went
 * through the same (the same arithmetic path: the correction is not
 * added at all). */
Test(level, restored_recent_values_start_from_zero)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run b0, b1;
	struct ttt_engine *e0 = engine(m, 0, 1, &b0),
			  *e1 = engine(m, K, 1, &b1);
	ss_feed(e0, 0, 450);
	ss_feed(e1, 0, 450);
	ss_save_restore(e0, e1);
	ss_feed(e0, 450, FLIP_AT);
	ss_feed(e1, 450, FLIP_AT);
	int same = 0, differ = 0;
	for (int ts = 450; ts < FLIP_AT; ts++) {
		cr_assert(b1.have[ts], "ts %d", ts);
		int eq = !memcmp(b0.fc[ts], b1.fc[ts], sizeof(b0.fc[ts]));
		if (ts < 450 + 3 * K)
			cr_assert(eq, "ts %d corrected after a restore", ts);
		same += eq;
		differ += !eq;
	}
	cr_assert_gt(differ, (FLIP_AT - 450) / 2, "%d corrected", differ);
	cr_assert_geq(same, 3 * K);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

/* Recent values restored while some of the series' forecasts still wait
 * in the batch (scope group: learning at once, forecasts queued): the
 * queued forecasts are published before the reset, so the sums start
 * from zero as when nothing was queued.  Without the flush they would
 * reach the fresh sums after the reset and move the later corrections. */
Test(level, a_restore_with_forecasts_queued_starts_from_zero_too)
{
	struct ttt_params p;
	params(&p, K);
	ss_restore_with_queue(&p);
}
