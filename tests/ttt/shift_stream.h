/*
 * The stream the publishing corrections are tested on (test_level.c,
 * test_recal.c): values that rise until FLIP_AT and then flip by 3 every
 * 40, with a short gap (interpolated values, no forecast there) and a
 * long one (positions restart); a run records every forecast by its
 * origin.  The includer defines L, H, MAXTS and FLIP_AT first.
 */
#ifndef DRIFTCAST_TESTS_TTT_SHIFT_STREAM_H
#define DRIFTCAST_TESTS_TTT_SHIFT_STREAM_H

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

static inline float ss_value(int64_t ts)
{
	uint64_t s = (uint64_t)ts * 0x9E3779B97F4A7C15ull + 5;
	float level = ts < FLIP_AT ? 0.02f * (float)ts
				   : 12.0f + ((ts / 40) % 2 ? 3.0f : 0.0f);
	return 3.0f + 0.3f * sinf((float)ts * 0.3f) + level +
	       0.3f * (fc_rng_uniform(&s) - 0.5f);
}

/* The timestamps fed: every step, but 2 missing before 300 (interpolated)
 * and 20 missing before 700 (longer than ttt.max_gap: history restarts). */
static inline int ss_fed(int64_t ts)
{
	return !(ts >= 298 && ts < 300) && !(ts >= 680 && ts < 700);
}

struct ss_run {
	float fc[MAXTS][H];
	int have[MAXTS];
	uint64_t version[MAXTS];
	int forecasts;
};

static inline void ss_on_event(void *user, const struct ttt_event *ev)
{
	struct ss_run *r = user;
	if (ev->type != TTT_EV_FORECAST)
		return;
	memcpy(r->fc[ev->ts], ev->forecast, sizeof(r->fc[0]));
	r->have[ev->ts] = 1;
	r->version[ev->ts] = ev->version_to;
	r->forecasts++;
}

static inline void ss_feed(struct ttt_engine *e, int64_t from, int64_t to)
{
	for (int64_t ts = from; ts < to; ts++)
		if (ss_fed(ts))
			cr_assert_eq(
			    ttt_engine_observe(e, "s", ts, ss_value(ts)), 0);
	cr_assert_eq(ttt_engine_flush(e), 0);
}

/* The forecasts' MSE over the origins from..to - H. */
static inline double ss_mse(const struct ss_run *r, int from, int to)
{
	double s = 0;
	long n = 0;
	for (int ts = from; ts < to - H; ts++) {
		if (!r->have[ts])
			continue;
		for (int h = 0; h < H; h++) {
			double d =
			    (double)r->fc[ts][h] - (double)ss_value(ts + 1 + h);
			s += d * d;
			n++;
		}
	}
	return s / (double)n;
}

/* The positions the engine numbers a stream's values by (values and
 * interpolated ones, restarting after the long gap) as the origins of a
 * run: y[n] the value at position n, at[n] the timestamp of the forecast
 * made there or -1; calls visit(pos) at each position with a forecast. */
struct ss_positions {
	float y[MAXTS];
	int64_t at[MAXTS];
	long n;
	int64_t last;
};

/* Advance p by ts (a fed timestamp); returns the new position or -1 if
 * it has no forecast in run r. */
static inline long ss_advance(struct ss_positions *p, const struct ss_run *r,
			      int64_t ts)
{
	if (p->last >= 0 && ts - p->last > 1) {
		int64_t miss = ts - p->last - 1;
		if (miss <= 4) {
			float v0 = p->y[p->n - 1], v = ss_value(ts);
			for (int64_t k = 1; k <= miss; k++) {
				p->y[p->n] = v0 + (v - v0) * (float)k /
						      (float)(miss + 1);
				p->at[p->n++] = -1;
			}
		} else
			p->n = 0;
	}
	p->last = ts;
	p->y[p->n] = ss_value(ts);
	p->at[p->n] = r->have[ts] ? ts : -1;
	p->n++;
	return p->at[p->n - 1] < 0 ? -1 : p->n - 1;
}

/* Runs a and b made the same forecasts for the origins from..to-1, to the
 * rounding a batched pass differs by from a single one
 * (tests/ttt/test_engine.c, deferred_forecasts_...). */
static inline void ss_assert_close(const struct ss_run *a,
				   const struct ss_run *b, int from, int to)
{
	for (int ts = from; ts < to; ts++) {
		cr_assert_eq(a->have[ts], b->have[ts], "ts %d", ts);
		if (!a->have[ts])
			continue;
		for (int h = 0; h < H; h++)
			cr_assert_float_eq(a->fc[ts][h], b->fc[ts][h],
					   1e-4f * (1.0f + fabsf(a->fc[ts][h])),
					   "ts %d step %d", ts, h);
	}
}

/* Each engine's one series saved and restored into it (its recent values
 * through ttt_engine_each_recent and ttt_engine_restore_recent). */
static inline void ss_save_restore(struct ttt_engine *e0, struct ttt_engine *e1)
{
	struct tt_saved s0 = {0}, s1 = {0};
	cr_assert_eq(ttt_engine_each_recent(e0, tt_save_recent, &s0), 0);
	cr_assert_eq(ttt_engine_each_recent(e1, tt_save_recent, &s1), 0);
	cr_assert(s0.n == 1 && s1.n == 1);
	cr_assert_eq(ttt_engine_restore_recent(e0, &s0.r[0]), 0);
	cr_assert_eq(ttt_engine_restore_recent(e1, &s1.r[0]), 0);
}

/* Recent values restored while some of the series' forecasts still wait
 * in the batch (scope group: learning at once, forecasts queued), with
 * the correction p turns on: the queued forecasts are published before
 * the reset, so the correction starts from what was saved (the
 * recalibration) or from zero (the level correction) as when nothing was
 * queued.  Engine a restores with forecasts queued, engine b after a
 * flush, both what b saved (no engine saves with forecasts queued); both
 * then publish the same. */
static inline void ss_restore_with_queue(struct ttt_params *p)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run qa, qb;
	struct ttt_engine *ea, *eb;
	char err[256];
	p->scope = TTT_SCOPE_GROUP;
	memset(&qa, 0, sizeof(qa));
	memset(&qb, 0, sizeof(qb));
	cr_assert_eq(
	    ttt_engine_new(m, p, ss_on_event, &qa, &ea, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    ttt_engine_new(m, p, ss_on_event, &qb, &eb, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(ttt_engine_defer_forecasts(ea, 16), 0);
	cr_assert_eq(ttt_engine_defer_forecasts(eb, 16), 0);
	for (int64_t ts = 0; ts < 456; ts++) {
		cr_assert_eq(ttt_engine_observe(ea, "s", ts, ss_value(ts)), 0);
		cr_assert_eq(ttt_engine_observe(eb, "s", ts, ss_value(ts)), 0);
	}
	cr_assert_eq(ttt_engine_flush(eb), 0);
	cr_assert_lt(qa.forecasts, qb.forecasts,
		     "nothing was left in the batch");
	struct tt_saved sv = {0};
	cr_assert_eq(ttt_engine_each_recent(ea, tt_save_recent, &sv), -EBUSY);
	cr_assert_eq(ttt_engine_each_recent(eb, tt_save_recent, &sv), 0);
	cr_assert_eq(sv.n, 1);
	cr_assert_eq(ttt_engine_restore_recent(ea, &sv.r[0]), 0);
	cr_assert_eq(ttt_engine_restore_recent(eb, &sv.r[0]), 0);
	cr_assert_eq(qa.forecasts, qb.forecasts);
	ss_feed(ea, 456, FLIP_AT);
	ss_feed(eb, 456, FLIP_AT);
	for (int ts = 456; ts < FLIP_AT; ts++)
		cr_assert(qa.have[ts] && qb.have[ts], "ts %d", ts);
	ss_assert_close(&qa, &qb, 456, FLIP_AT);
	ttt_engine_free(ea);
	ttt_engine_free(eb);
	fc_model_free(m);
}

#endif
