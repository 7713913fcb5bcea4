/*
 * The TTT engine (ttt/engine.c) on a small randomly initialised model:
 * causality (garbage after t changes nothing up to t; every window is
 * forecast before any update that used its horizon), timestamp handling,
 * the guard and the update bound, rollback and resets, restore, scopes,
 * ephemeral mode and memory per series.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/fnv1a.h"
#include "forecast/forecast.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"
#include "tests/alloc_count.h"

#define L 32
#define H 8

/* A series with a daily-like cycle, noise and a level shift at 150. */
static float series_value(int i)
{
	uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
	float noise = fc_rng_uniform(&s) - 0.5f;
	return sinf((float)i * 0.3f) + 0.2f * noise + (i >= 150 ? 2.0f : 0.0f);
}

static void fast_params(struct ttt_params *p)
{
	ttt_params_default(p);
	p->every = 5;
	p->steps = 3;
	p->lr = 0.02f;
	p->max_update = 1.0f;
	p->window_stride = 2;
	p->shadow_every = 2;
	p->rollback_window = 4;
	p->drift_every = 2;
	p->families = FC_ADAPT_ALL;
	/* rollbacks come every few observations at these settings: no
	 * fall-back to the frozen model (test_rollback.c tests it) */
	p->fallback_rollbacks = 0;
}

/* ---- an event log ---------------------------------------------------- */

struct logged {
	struct ttt_event ev; /* pointers cleared */
	float forecast[H];
	uint64_t adapter_hash, average_hash;
	float cal[2 * H]; /* the adapter's calibration, with log.cal_off */
	int64_t obs_ts;	  /* timestamp being observed when it was emitted */
	int obs_index;	  /* which observe() call */
};

struct log {
	struct logged *v;
	int n, cap;
	int64_t obs_ts;
	int obs_index;
	size_t cal_off; /* nonzero: keep the calibration of ev->adapter */
};

static uint64_t hash_bytes(const void *x, size_t n)
{
	return fc_fnv1a(FC_FNV1A_INIT, x, n);
}

static void on_event(void *user, const struct ttt_event *ev)
{
	struct log *lg = user;
	if (lg->n == lg->cap) {
		lg->cap = lg->cap ? 2 * lg->cap : 1024;
		lg->v = realloc(lg->v, (size_t)lg->cap * sizeof(*lg->v));
		cr_assert(lg->v);
	}
	struct logged *x = &lg->v[lg->n++];
	memset(x, 0, sizeof(*x));
	x->ev = *ev;
	if (ev->forecast)
		memcpy(x->forecast, ev->forecast, sizeof(x->forecast));
	if (ev->adapter)
		x->adapter_hash =
		    hash_bytes(ev->adapter, ev->adapter_len * sizeof(float));
	if (ev->adapter && lg->cal_off)
		memcpy(x->cal, ev->adapter + lg->cal_off, sizeof(x->cal));
	if (ev->average)
		x->average_hash =
		    hash_bytes(ev->average, ev->average_len * sizeof(uint16_t));
	x->ev.forecast = NULL;
	x->ev.adapter = NULL;
	x->ev.average = NULL;
	x->ev.series = NULL;
	x->ev.reason = NULL;
	x->obs_ts = lg->obs_ts;
	x->obs_index = lg->obs_index;
}

static int count(const struct log *lg, enum ttt_event_type t)
{
	int c = 0;
	for (int i = 0; i < lg->n; i++)
		c += lg->v[i].ev.type == t;
	return c;
}

static void feed(struct ttt_engine *e, struct log *lg, const char *key,
		 int64_t ts, float v)
{
	lg->obs_ts = ts;
	lg->obs_index++;
	cr_assert_eq(ttt_engine_observe(e, key, ts, v), 0);
}

/* ---- causality ------------------------------------------------------- */

static void garbage_after_t(unsigned families)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *ea, *eb;
	struct log la = {0}, lb = {0};
	const int T = 220, N = 300;
	size_t A = fc_adapter_len(m);
	float *ada = malloc(A * sizeof(float)),
	      *adb = malloc(A * sizeof(float));
	uint64_t va, vb;
	char err[256];
	fast_params(&p);
	p.families = families;
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &la, &ea, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &lb, &eb, err, sizeof(err)), 0);
	int na_at_t = -1, nb_at_t = -1;
	for (int i = 0; i < N; i++) {
		float v = series_value(i);
		/* garbage after T: huge values, and NaNs */
		float g = i % 7 == 0 ? NAN : 1e4f * (float)((i * 37) % 11 - 5);
		feed(ea, &la, "s", (int64_t)i * 60, v);
		feed(eb, &lb, "s", (int64_t)i * 60, i <= T ? v : g);
		if (i == T) {
			na_at_t = la.n;
			nb_at_t = lb.n;
			cr_assert_eq(
			    ttt_engine_series_adapter(ea, "s", ada, A, &va), 0);
			cr_assert_eq(
			    ttt_engine_series_adapter(eb, "s", adb, A, &vb), 0);
		}
	}
	/* The streams really differ after T ... */
	cr_assert(la.n != lb.n ||
		      memcmp(la.v, lb.v, (size_t)la.n * sizeof(*la.v)) != 0,
		  "the garbage changed nothing");
	/* ... and everything up to T is bit-identical. */
	cr_assert_eq(na_at_t, nb_at_t);
	cr_assert_eq(memcmp(la.v, lb.v, (size_t)na_at_t * sizeof(*la.v)), 0,
		     "event logs differ before t");
	cr_assert_eq(va, vb);
	cr_assert_eq(memcmp(ada, adb, A * sizeof(float)), 0);
	/* The test means something: adaptation happened before T. */
	int accepted = 0, forecasts = 0;
	for (int i = 0; i < na_at_t; i++) {
		accepted += la.v[i].ev.type == TTT_EV_ADAPT_ACCEPTED;
		forecasts += la.v[i].ev.type == TTT_EV_FORECAST;
	}
	cr_assert_gt(accepted, 0, "no accepted adaptation before t");
	cr_assert_gt(va, 0);
	cr_assert_eq(forecasts, T + 1 - (L - 1));
	ttt_engine_free(ea);
	ttt_engine_free(eb);
	free(la.v);
	free(lb.v);
	free(ada);
	free(adb);
	fc_model_free(m);
}

Test(engine, garbage_after_t_changes_nothing_up_to_t)
{
	garbage_after_t(FC_ADAPT_ALL);
}

/* The calibration only: the combiner's record of what was published
 * (ttt/combine.h) is in play too. */
Test(engine, garbage_after_t_changes_nothing_up_to_t_calibration)
{
	garbage_after_t(FC_ADAPT_CALIB);
}

Test(engine, every_window_forecast_before_updates_that_saw_its_horizon)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	fast_params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 300; i++)
		feed(e, &lg, "s", i, series_value(i));
	int updates = 0;
	for (int u = 0; u < lg.n; u++) {
		const struct logged *U = &lg.v[u];
		if (U->ev.type != TTT_EV_ADAPT_ACCEPTED &&
		    U->ev.type != TTT_EV_ADAPT_REJECTED)
			continue;
		updates++;
		/* only data that has arrived */
		cr_assert_leq(U->ev.data_until, U->obs_ts);
		cr_assert_leq(U->ev.data_from, U->ev.data_until);
		for (int f = 0; f < lg.n; f++) {
			const struct logged *F = &lg.v[f];
			if (F->ev.type != TTT_EV_FORECAST)
				continue;
			/* F's horizon starts at F.ts + 1: an update that
			 * read it must come after F. */
			if (U->ev.data_until > F->ev.ts)
				cr_assert_lt(f, u,
					     "window %ld forecast after an "
					     "update that used data up to %ld",
					     (long)F->ev.ts,
					     (long)U->ev.data_until);
		}
	}
	cr_assert_gt(updates, 10);
	/* Within one observe(), the forecast is the first event. */
	for (int i = 1; i < lg.n; i++)
		if (lg.v[i].ev.type == TTT_EV_FORECAST)
			cr_assert(lg.v[i - 1].obs_index < lg.v[i].obs_index ||
				      lg.v[i - 1].ev.type == TTT_EV_GAP_FILLED,
				  "forecast not first in its observe()");
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* ---- timestamps ------------------------------------------------------ */

Test(engine, gaps_duplicates_late_and_nonfinite_values)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct fc_workspace *ws;
	struct log lg = {0};
	float x[L], want[H];
	char err[256];
	ttt_params_default(&p);
	p.enabled = 0; /* frozen: forecasts are a pure function of the ring */
	p.max_gap = 3;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(fc_workspace_new(m, 1, &ws), 0);
	int64_t ts = 1000;
	for (int i = 0; i < L - 3; i++, ts += 10)
		feed(e, &lg, "k", ts, (float)i);
	ts -= 10; /* last accepted timestamp */
	int n0 = lg.n;
	feed(e, &lg, "k", ts, 5.0f);	  /* duplicate */
	feed(e, &lg, "k", ts - 10, 5.0f); /* late */
	feed(e, &lg, "k", ts + 5, 5.0f);  /* not on the 10 s step */
	feed(e, &lg, "k", ts + 10, NAN);  /* non-finite */
	feed(e, &lg, "k", ts + 10, INFINITY);
	cr_assert_eq(lg.n - n0, 5);
	for (int i = n0; i < lg.n; i++)
		cr_assert_eq(lg.v[i].ev.type, TTT_EV_REJECTED_VALUE);
	/* Values 0 .. 28 so far; a gap of 2 missing steps before 31 is
	 * filled with 29, 30, which completes the lookback 0 .. 31. */
	feed(e, &lg, "k", ts + 30, 31.0f);
	cr_assert_eq(lg.v[lg.n - 2].ev.type, TTT_EV_GAP_FILLED);
	cr_assert_eq(lg.v[lg.n - 2].ev.filled, 2);
	cr_assert_eq(lg.v[lg.n - 1].ev.type, TTT_EV_FORECAST);
	for (int i = 0; i < L; i++)
		x[i] = (float)i;
	/* exact: the frozen engine forecasts one row with fc_forecast too */
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 1, want), 0);
	cr_assert_eq(memcmp(lg.v[lg.n - 1].forecast, want, sizeof(want)), 0,
		     "forecast does not see the interpolated values");
	ts += 30;
	/* A gap longer than max_gap restarts the history: no forecast until
	 * L new values. */
	int f0 = count(&lg, TTT_EV_FORECAST);
	feed(e, &lg, "k", ts + 160, 1.0f);
	cr_assert_eq(lg.v[lg.n - 1].ev.type, TTT_EV_GAP_FILLED);
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), f0);
	cr_assert_eq(lg.v[lg.n - 1].ev.filled, 0);
	for (int i = 1; i < L - 1; i++)
		feed(e, &lg, "k", ts + 160 + 10 * i, 1.0f);
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), f0);
	feed(e, &lg, "k", ts + 160 + 10 * (L - 1), 1.0f);
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), f0 + 1);
	struct ttt_stats st;
	ttt_engine_stats(e, &st);
	cr_assert_eq(st.rejected_values, 5);
	cr_assert_eq(st.gap_filled, 2);
	cr_assert_eq(ttt_engine_observe(e, "", 1, 1.0f), -EINVAL);
	fc_workspace_free(ws);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* A step learnt from a wrong first gap (a clock not yet set: the first value
 * at 5, then hourly; or the second value a second late) refused every later
 * value for good.  Now a stray value costs one value, and values in a row
 * off the step make the series learn it again. */
static void off_step_run(int64_t first_ts, int64_t second_ts)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	ttt_params_default(&p);
	p.enabled = 0;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	feed(e, &lg, "k", first_ts, 1.0f);
	feed(e, &lg, "k", second_ts, 1.0f);
	int64_t ts = 3 * 3600;
	for (int i = 0; i < 100; i++, ts += 3600)
		feed(e, &lg, "k", ts, (float)i);
	/* 7 refused, the 8th starts the history again: forecasts from its
	 * L-th value on */
	cr_assert_eq(count(&lg, TTT_EV_REJECTED_VALUE), 7);
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), 100 - 7 - L + 1);
	/* one stray value later costs that value only */
	feed(e, &lg, "k", ts + 1, 1.0f);
	feed(e, &lg, "k", ts + 3600, 1.0f);
	cr_assert_eq(count(&lg, TTT_EV_REJECTED_VALUE), 8);
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), 100 - 7 - L + 2);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

Test(engine, a_wrong_first_step_is_learnt_again)
{
	off_step_run(5, 3600); /* step 3595: the hourly grid is off it */
	off_step_run(3600, 2 * 3600 + 1); /* step 3601 */
}

static int newest_step(void *user, const struct ttt_recent *r)
{
	*(int64_t *)user = r->step;
	return 0;
}

/* A second value missing made the step twice the true one: every other
 * value was refused, and since each one on the step reset the count of
 * refusals in a row, it was never learnt again.  And a relearn set the
 * step to 0 until the next value, so the series' saved recent values were
 * not written and the older row stayed, behind the offsets stored. */
Test(engine, a_step_twice_the_true_one_is_learnt_again)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	ttt_params_default(&p);
	p.enabled = 0;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	feed(e, &lg, "k", 0, 1.0f);
	feed(e, &lg, "k", 7200, 1.0f); /* 3600 missing: step 7200 */
	int64_t ts = 3 * 3600, step = 0;
	int relearnt_at = -1;
	for (int i = 0; i < 100; i++, ts += 3600) {
		int n0 = count(&lg, TTT_EV_GAP_FILLED);
		feed(e, &lg, "k", ts, (float)i);
		if (relearnt_at < 0 && count(&lg, TTT_EV_GAP_FILLED) > n0 &&
		    lg.v[lg.n - 1].ev.filled == 0) {
			relearnt_at = i;
			/* the series saves a step at once, the old one */
			cr_assert_eq(
			    ttt_engine_each_recent(e, newest_step, &step), 0);
			cr_assert_eq(step, 7200);
		}
	}
	cr_assert_geq(relearnt_at, 0, "never learnt again");
	cr_assert_leq(relearnt_at, 16);
	/* from the relearn on, every value is taken and, after a lookback,
	 * forecast */
	cr_assert_eq(count(&lg, TTT_EV_FORECAST), 100 - relearnt_at - L + 1);
	cr_assert_eq(ttt_engine_each_recent(e, newest_step, &step), 0);
	cr_assert_eq(step, 3600);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* ---- guard, bound, rollback ------------------------------------------- */

Test(engine, guard_decides_and_updates_are_bounded)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	fast_params(&p);
	p.lr = 0.2f; /* big steps: some candidates must fail the guard */
	p.max_update = 0.3f;
	p.shadow_every = 0;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 400; i++)
		feed(e, &lg, "s", i, series_value(i));
	int acc = 0, rej = 0;
	uint64_t version = 0;
	for (int i = 0; i < lg.n; i++) {
		const struct ttt_event *ev = &lg.v[i].ev;
		if (ev->type == TTT_EV_ADAPT_ACCEPTED) {
			acc++;
			cr_assert_leq(ev->guard_after, ev->guard_before);
			cr_assert_leq(ev->update_norm, 0.3f * 1.0001f);
			cr_assert_eq(ev->version_from, version);
			cr_assert_eq(ev->version_to, version + 1);
			cr_assert_gt(ev->steps, 0);
			version = ev->version_to;
		} else if (ev->type == TTT_EV_ADAPT_REJECTED) {
			rej++;
			cr_assert_gt(ev->guard_after, ev->guard_before);
			cr_assert_eq(ev->version_to, ev->version_from);
		}
	}
	cr_assert_gt(acc, 0);
	cr_assert_gt(rej, 0);
	struct ttt_stats st;
	ttt_engine_stats(e, &st);
	cr_assert_eq(st.accepted, (uint64_t)acc);
	cr_assert_eq(st.rejected, (uint64_t)rej);
	cr_assert_gt(st.adapt_seconds, 0.0);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* However many updates pass, an adapter stays within max_drift of its
 * anchor (the identity calibration: zeros). */
Test(engine, drift_from_the_anchor_is_bounded)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	size_t off, len;
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	lg.cal_off = off;
	fast_params(&p);
	p.families = FC_ADAPT_CALIB;
	p.guard = 0;
	p.lr = 0.2f;
	p.max_update = 50.0f;
	p.max_drift = 0.7f;
	p.shadow_every = 0;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 400; i++)
		feed(e, &lg, "s", i, series_value(i));
	int acc = 0, at_bound = 0;
	for (int i = 0; i < lg.n; i++) {
		if (lg.v[i].ev.type != TTT_EV_ADAPT_ACCEPTED)
			continue;
		double d = 0;
		for (size_t k = 0; k < len; k++)
			d += (double)lg.v[i].cal[k] * (double)lg.v[i].cal[k];
		d = sqrt(d);
		cr_assert_leq(d, 0.7 * 1.0001, "version %d: %g from the anchor",
			      (int)lg.v[i].ev.version_to, d);
		at_bound += d > 0.7 * 0.999;
		acc++;
	}
	cr_assert_gt(acc, 10);
	cr_assert_gt(at_bound, 0, "the bound never bound: the test is void");
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* Unguarded, large steps on the reconstruction loss alone: damage the
 * shadow sees and answers by policy. */
static void unguarded_params(struct ttt_params *p, int policy)
{
	fast_params(p);
	p->guard = 0;
	p->lr = 0.5f;
	p->steps = 5;
	p->max_update = 50.0f;
	p->w_recon = 1.0f;
	p->w_matured = 0.0f;
	p->w_anchor = 0.0f;
	p->shadow_every = 1;
	p->rollback_window = 3;
	p->rollback_margin = 0.0f;
	p->reset_policy = policy;
}

static void run_unguarded(int policy, struct log *lg, struct ttt_engine **ret,
			  struct fc_model *m)
{
	struct ttt_params p;
	char err[256];
	unguarded_params(&p, policy);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, lg, ret, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 300; i++)
		feed(*ret, lg, "s", i, series_value(i));
}

Test(engine, unguarded_damage_is_rolled_back_or_reset)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	size_t A = fc_adapter_len(m);
	float *ident = malloc(A * sizeof(float)),
	      *cur = malloc(A * sizeof(float));
	struct ttt_engine *e;
	uint64_t v;
	fc_adapter_init(m, ident, 1);

	struct log l1 = {0};
	run_unguarded(TTT_RESET_HARD, &l1, &e, m);
	cr_assert_gt(count(&l1, TTT_EV_RESET), 0, "no reset");
	/* Right after a hard reset the adapter is the anchor. */
	for (int i = 0; i < l1.n; i++)
		if (l1.v[i].ev.type == TTT_EV_RESET)
			cr_assert_eq(l1.v[i].adapter_hash,
				     hash_bytes(ident, A * sizeof(float)));
	ttt_engine_free(e);

	struct log l2 = {0};
	run_unguarded(TTT_RESET_ROLLBACK, &l2, &e, m);
	cr_assert_gt(count(&l2, TTT_EV_ROLLBACK), 0, "no rollback");
	for (int i = 0; i < l2.n; i++)
		if (l2.v[i].ev.type == TTT_EV_ROLLBACK) {
			cr_assert_gt(l2.v[i].ev.adapted_error,
				     l2.v[i].ev.shadow_error);
			/* a new version with the good version's content */
			cr_assert_gt(l2.v[i].ev.version_to,
				     l2.v[i].ev.version_from);
			cr_assert_lt(l2.v[i].ev.version_restored,
				     l2.v[i].ev.version_from);
		}
	cr_assert_eq(ttt_engine_series_adapter(e, "s", cur, A, &v), 0);
	ttt_engine_free(e);

	struct log l3 = {0};
	run_unguarded(TTT_RESET_SOFT, &l3, &e, m);
	cr_assert_gt(count(&l3, TTT_EV_RESET), 0, "no soft reset");
	ttt_engine_free(e);

	free(l1.v);
	free(l2.v);
	free(l3.v);
	free(ident);
	free(cur);
	fc_model_free(m);
}

/* Every version's content, and the newest event's that carried one. */
struct contents {
	size_t A;
	uint64_t cap;
	float *byv;  /* [cap][A] by version */
	float *last; /* [A] */
	enum ttt_event_type last_type;
	int rollbacks;
	const float *ident;
};

static void keep_contents(void *user, const struct ttt_event *ev)
{
	struct contents *c = user;
	if (!ev->adapter)
		return;
	cr_assert_eq(ev->adapter_len, c->A);
	cr_assert_lt(ev->version_to, c->cap);
	if (ev->type == TTT_EV_ROLLBACK) {
		/* The last good version, kept as half-precision differences
		 * from the anchor: each weight within half precision's
		 * rounding of its difference (2^-11 of it, or 2^-25 below
		 * the smallest normal half) and the float sum's (2^-24 of
		 * the weight). */
		const float *good = c->byv + ev->version_restored * c->A;
		for (size_t k = 0; k < c->A; k++) {
			float d = good[k] - c->ident[k];
			float tol = fabsf(d) * 0x1p-11f + 0x1p-25f +
				    fabsf(good[k]) * 0x1p-24f;
			cr_assert_leq(fabsf(ev->adapter[k] - good[k]), tol,
				      "weight %zu: %g restored as %g", k,
				      (double)good[k], (double)ev->adapter[k]);
		}
		c->rollbacks++;
	}
	memcpy(c->byv + ev->version_to * c->A, ev->adapter,
	       c->A * sizeof(float));
	memcpy(c->last, ev->adapter, c->A * sizeof(float));
	c->last_type = ev->type;
}

Test(engine, a_rollback_restores_the_last_good_version_in_half_precision)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct contents c = {.A = fc_adapter_len(m), .cap = 4096};
	float *ident = malloc(c.A * sizeof(float)),
	      *cur = malloc(c.A * sizeof(float));
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	uint64_t v;
	c.byv = calloc(c.cap * c.A, sizeof(float));
	c.last = malloc(c.A * sizeof(float));
	cr_assert(ident && cur && c.byv && c.last);
	fc_adapter_init(m, ident, 1);
	c.ident = ident;
	memcpy(c.byv, ident, c.A * sizeof(float)); /* version 0 */
	unguarded_params(&p, TTT_RESET_ROLLBACK);
	cr_assert_eq(
	    ttt_engine_new(m, &p, keep_contents, &c, &e, err, sizeof(err)), 0,
	    "%s", err);
	for (int i = 0; i < 300; i++) {
		c.last_type = TTT_EV_FORECAST;
		cr_assert_eq(ttt_engine_observe(e, "s", i, series_value(i)), 0);
		if (c.last_type != TTT_EV_ROLLBACK)
			continue;
		/* what the event stored is what the series now has */
		cr_assert_eq(ttt_engine_series_adapter(e, "s", cur, c.A, &v),
			     0);
		cr_assert_eq(memcmp(cur, c.last, c.A * sizeof(float)), 0,
			     "observation %d", i);
	}
	cr_assert_gt(c.rollbacks, 0, "no rollback: the test is void");
	ttt_engine_free(e);
	free(c.byv);
	free(c.last);
	free(ident);
	free(cur);
	fc_model_free(m);
}

/* ---- restore, params, scopes, ephemeral -------------------------------- */

Test(engine, restore_and_set_params)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	size_t A = fc_adapter_len(m);
	float *a = malloc(A * sizeof(float)), *b = malloc(A * sizeof(float));
	uint64_t v;
	char err[256];
	ttt_params_default(&p);
	cr_assert_eq(ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err)), 0,
		     "%s", err);
	fc_adapter_init(m, a, 1);
	for (size_t i = 0; i < A; i++)
		a[i] += 0.001f * (float)(i % 13);
	cr_assert_eq(ttt_engine_restore_series(e, "x", a, A, 7, 100), 0);
	cr_assert_eq(ttt_engine_series_adapter(e, "x", b, A, &v), 0);
	cr_assert_eq(v, 7);
	/* the adapting families' range is restored exactly */
	size_t off, len;
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	cr_assert_eq(memcmp(a + off, b + off, len * sizeof(float)), 0);
	cr_assert_eq(ttt_engine_restore_series(e, "x", a, A - 1, 8, 100),
		     -EINVAL);
	a[0] = NAN;
	cr_assert_eq(ttt_engine_restore_series(e, "x", a, A, 8, 100), -EINVAL);
	cr_assert_eq(ttt_engine_series_adapter(e, "nope", b, A, &v), -ENOENT);
	/* late values are judged against the restored last_ts */
	struct log lg = {0};
	ttt_engine_free(e);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0);
	cr_assert_eq(ttt_engine_restore_series(e, "x", NULL, 0, 3, 100), 0);
	feed(e, &lg, "x", 90, 1.0f);
	cr_assert_eq(lg.v[lg.n - 1].ev.type, TTT_EV_REJECTED_VALUE);
	cr_assert_eq(ttt_engine_series_count(e), 1);
	/* params: invalid ones refused, restart-only ones kept */
	struct ttt_params q = p;
	q.every = 0;
	cr_assert_eq(ttt_engine_set_params(e, &q), -EINVAL);
	q = p;
	q.every = 3;
	q.scope = TTT_SCOPE_GLOBAL;
	cr_assert_eq(ttt_engine_set_params(e, &q), 0);
	ttt_engine_observe(e, "y", 1, 1.0f);
	struct ttt_stats st;
	ttt_engine_stats(e, &st);
	cr_assert_eq(st.adapters, 2, "scope changed at run time");
	ttt_engine_free(e);
	free(lg.v);
	free(a);
	free(b);
	fc_model_free(m);
}

Test(engine, global_scope_shares_one_adapter)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	size_t A = fc_adapter_len(m);
	float *a = malloc(A * sizeof(float)), *b = malloc(A * sizeof(float));
	uint64_t va, vb;
	char err[256];
	fast_params(&p);
	p.scope = TTT_SCOPE_GROUP;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 200; i++) {
		feed(e, &lg, "dev1/a", i, series_value(i));
		feed(e, &lg, "dev1/b", i, series_value(i + 17));
		feed(e, &lg, "dev2/a", i, 0.5f * series_value(i + 5));
	}
	struct ttt_stats st;
	ttt_engine_stats(e, &st);
	cr_assert_eq(st.series, 3);
	cr_assert_eq(st.adapters, 2);
	cr_assert_gt(st.accepted, 0);
	ttt_engine_series_adapter(e, "dev1/a", a, A, &va);
	ttt_engine_series_adapter(e, "dev1/b", b, A, &vb);
	cr_assert_eq(va, vb);
	cr_assert_eq(memcmp(a, b, A * sizeof(float)), 0);
	ttt_engine_free(e);
	free(lg.v);
	free(a);
	free(b);
	fc_model_free(m);
}

Test(engine, ephemeral_adapts_per_forecast_and_keeps_no_version)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *ef, *ee;
	struct log lf = {0}, le = {0};
	char err[256];
	fast_params(&p);
	p.enabled = 0;
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &lf, &ef, err, sizeof(err)), 0);
	p.enabled = 1;
	p.ephemeral = 1;
	p.lr = 0.05f;
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &le, &ee, err, sizeof(err)), 0);
	for (int i = 0; i < 100; i++) {
		feed(ef, &lf, "s", i, series_value(i));
		feed(ee, &le, "s", i, series_value(i));
	}
	cr_assert_eq(lf.n, le.n);
	cr_assert_eq(count(&le, TTT_EV_ADAPT_ACCEPTED), 0);
	int differ = 0;
	for (int i = 0; i < le.n; i++) {
		cr_assert_eq(le.v[i].ev.version_to, 0);
		differ += memcmp(le.v[i].forecast, lf.v[i].forecast,
				 sizeof(lf.v[i].forecast)) != 0;
	}
	cr_assert_gt(differ, 0, "ephemeral adaptation changed nothing");
	ttt_engine_free(ef);
	ttt_engine_free(ee);
	free(lf.v);
	free(le.v);
	fc_model_free(m);
}

/* ---- memory ------------------------------------------------------------ */

Test(engine, memory_per_series_at_default_model_size)
{
	struct fc_config c;
	struct fc_model *m = NULL;
	struct ttt_params p;
	struct ttt_engine *e;
	struct ttt_stats st;
	char err[256], key[32];
	fc_config_default(&c); /* L = 96, H = 96, D = 64 */
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0, "%s", err);
	const unsigned fams[] = {FC_ADAPT_CALIB, FC_ADAPT_CALIB,
				 FC_ADAPT_ENC | FC_ADAPT_NORM | FC_ADAPT_CALIB};
	size_t per_default = 0;
	for (size_t k = 0; k < 3; k++) {
		ttt_params_default(&p);
		p.families = fams[k];
		if (k == 1)
			p.recal_steps = 0;
		cr_assert_eq(
		    ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err)), 0,
		    "%s", err);
		/* 300 values each for the default: every series publishes
		 * forecasts and adapts, so its own adapter blocks are
		 * allocated (the other families are
		 * only logged, and adapt slowly) */
		for (int i = 0; i < 100; i++)
			for (int t = 0; t < (k < 2 ? 300 : 100); t++) {
				snprintf(key, sizeof(key), "meter-%05d", i);
				ttt_engine_observe(e, key, t,
						   sinf(0.3f * (float)t));
			}
		ttt_engine_stats(e, &st);
		if (k < 2)
			cr_assert_gt(st.accepted, 100, "too few adaptations");
		size_t per = (st.bytes_series + st.bytes_adapters) / st.series;
		cr_log_info("families %#x: %zu adapter floats, %zu bytes per "
			    "series",
			    fams[k], st.adapter_params, per);
		/* The 4 KB goal holds with the defaults (4072 B with these
		 * 11-byte keys: the current version, the last good one and
		 * the one on probation, ttt/trust.c, the published average,
		 * the ring, and the recalibration's 832 B at recal_steps = 12
		 * and H = 96, ttt/recal.c) -- and the recalibration costs
		 * exactly that, so growth anywhere fails here. */
		if (k == 0) {
			per_default = per;
			cr_assert_leq(per, 4096, "%zu bytes per series", per);
		}
		if (k == 1)
			cr_assert_eq(per_default, per + 832, "%zu vs %zu",
				     per_default, per);
		ttt_engine_free(e);
	}
	fc_model_free(m);
}

/* ---- batched (deferred) forecasts -------------------------------------- */

/* Feed three interleaved series through one engine; with batch > 1 the
 * forecasts are queued and flushed. */
static void run_interleaved(struct ttt_engine *e, struct log *lg, int batch)
{
	static const char *keys[3] = {"a", "b", "c"};
	cr_assert_eq(ttt_engine_defer_forecasts(e, batch), 0);
	for (int i = 0; i < 260; i++)
		for (int k = 0; k < 3; k++) {
			ttt_engine_set_tag(e, (uint64_t)(i * 3 + k + 1));
			feed(e, lg, keys[k], 1000 + i,
			     series_value(i + 40 * k) * (float)(k + 1));
		}
	cr_assert_eq(ttt_engine_flush(e), 0);
}

static void same_events(const struct log *l1, const struct log *l2,
			int exact_realised);

/* Learning events (not forecasts) of b emitted during a later observe()
 * than the same event of a (the same sequence, at once). */
static int late_learning(const struct log *a, const struct log *b)
{
	int late = 0;
	for (int i = 0; i < a->n && i < b->n; i++)
		late += b->v[i].ev.type != TTT_EV_FORECAST &&
			b->v[i].obs_index != a->v[i].obs_index;
	return late;
}

static void deferred_equals_immediate(unsigned families, int scope)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e1, *e2;
	struct log l1 = {0}, l2 = {0};
	char err[256];
	size_t off, len;
	fast_params(&p);
	p.families = families;
	p.scope = scope;
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	l1.cal_off = l2.cal_off = off;
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &l1, &e1, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_event, &l2, &e2, err, sizeof(err)), 0,
	    "%s", err);
	run_interleaved(e1, &l1, 0);
	run_interleaved(e2, &l2, 7);
	cr_assert_eq(l1.n, l2.n);
	cr_assert_gt(count(&l1, TTT_EV_ADAPT_ACCEPTED), 0,
		     "the stream must adapt for the test to mean anything");
	int i1 = 0, i2 = 0, nf = 0, deferred = 0;
	if (families == FC_ADAPT_CALIB && scope == TTT_SCOPE_SERIES) {
		/* the learning waits for the flush too: every event in the
		 * order of the immediate engine, the numbers to rounding
		 * (the windows of several series share passes) */
		same_events(&l1, &l2, 0);
		cr_assert_gt(late_learning(&l1, &l2),
			     (l2.n - count(&l2, TTT_EV_FORECAST)) / 2,
			     "learning was not deferred");
		i1 = l1.n, i2 = l2.n; /* the learning loop has nothing left */
	}
	/* otherwise the learning events are the same, in the same order,
	 * and only the forecasts come later */
	for (;;) {
		while (i1 < l1.n && l1.v[i1].ev.type == TTT_EV_FORECAST)
			i1++;
		while (i2 < l2.n && l2.v[i2].ev.type == TTT_EV_FORECAST)
			i2++;
		if (i1 == l1.n || i2 == l2.n)
			break;
		cr_assert_eq(l1.v[i1].ev.type, l2.v[i2].ev.type);
		cr_assert_eq(l1.v[i1].ev.version_to, l2.v[i2].ev.version_to);
		cr_assert_eq(l1.v[i1].adapter_hash, l2.v[i2].adapter_hash);
		cr_assert_eq(l1.v[i1].ev.tag, l2.v[i2].ev.tag);
		i1++, i2++;
	}
	cr_assert(i1 == l1.n && i2 == l2.n);
	/* the forecasts: same observations, versions, values (to rounding) */
	i1 = i2 = 0;
	for (;;) {
		while (i1 < l1.n && l1.v[i1].ev.type != TTT_EV_FORECAST)
			i1++;
		while (i2 < l2.n && l2.v[i2].ev.type != TTT_EV_FORECAST)
			i2++;
		if (i1 == l1.n || i2 == l2.n)
			break;
		const struct logged *a = &l1.v[i1], *b = &l2.v[i2];
		cr_assert_eq(a->ev.tag, b->ev.tag);
		cr_assert_eq(a->ev.ts, b->ev.ts);
		cr_assert_eq(a->ev.version_to, b->ev.version_to);
		for (int j = 0; j < H; j++)
			cr_assert_float_eq(a->forecast[j], b->forecast[j],
					   1e-4f *
					       (1.0f + fabsf(a->forecast[j])),
					   "forecast %d step %d", nf, j);
		/* emitted later than its observation when batched */
		deferred += b->obs_index != a->obs_index;
		nf++;
		i1++, i2++;
	}
	cr_assert(i1 == l1.n && i2 == l2.n);
	cr_assert_eq(nf, 3 * (260 - L + 1));
	if (families == FC_ADAPT_CALIB)
		cr_assert_gt(deferred, nf / 2, "forecasts were not batched");
	else
		cr_assert_eq(deferred, 0, "only the calibration can batch");
	ttt_engine_free(e1);
	ttt_engine_free(e2);
	free(l1.v);
	free(l2.v);
	fc_model_free(m);
}

Test(engine, deferred_forecasts_equal_immediate_calibration)
{
	deferred_equals_immediate(FC_ADAPT_CALIB, TTT_SCOPE_SERIES);
}

Test(engine, deferred_forecasts_learn_at_once_with_shared_adapters)
{
	deferred_equals_immediate(FC_ADAPT_CALIB, TTT_SCOPE_GROUP);
}

Test(engine, deferred_forecasts_fall_back_with_other_families)
{
	deferred_equals_immediate(FC_ADAPT_ALL, TTT_SCOPE_SERIES);
}

/* ---- the calibration-only fast paths ----------------------------------- */

static void near(float a, float b, const char *what, int i)
{
	cr_assert(isfinite(a) == isfinite(b), "event %d: %s %g vs %g", i, what,
		  (double)a, (double)b);
	if (isfinite(a))
		cr_assert_float_eq(a, b, 1e-5f * (1.0f + fabsf(a)),
				   "event %d: %s %.9g vs %.9g", i, what,
				   (double)a, (double)b);
}

/* What is published (forecasts, their realised error) passes through the
 * combiner, which reads the issued calibration at 8 bits (ttt/combine.h):
 * an adapter weight that differs in its last bit between two paths can
 * round to the neighbouring step, 1/127 of the block's largest weight, and
 * that moves the combiner's weights and the published forecasts of later
 * windows by up to ~1e-3 relative -- never a decision or a version. */
static void near_published(float a, float b, const char *what, int i)
{
	cr_assert(isfinite(a) == isfinite(b), "event %d: %s %g vs %g", i, what,
		  (double)a, (double)b);
	if (isfinite(a))
		cr_assert_float_eq(a, b, 2e-3f * (1.0f + fabsf(a)),
				   "event %d: %s %.9g vs %.9g", i, what,
				   (double)a, (double)b);
}

/* Two logs of the same stream: the same events in the same order, with
 * the same decisions and versions, and the same numbers to rounding
 * (exact_realised: the frozen shadow's realised errors to the bit; the
 * adapted ones follow adapters that may differ in the last bits). */
static void same_events(const struct log *l1, const struct log *l2,
			int exact_realised)
{
	cr_assert_eq(l1->n, l2->n, "%d vs %d events", l1->n, l2->n);
	for (int i = 0; i < l1->n; i++) {
		const struct logged *a = &l1->v[i], *b = &l2->v[i];
		cr_assert_eq(a->ev.type, b->ev.type, "event %d", i);
		cr_assert_eq(a->ev.trigger, b->ev.trigger, "event %d", i);
		cr_assert_eq(a->ev.ts, b->ev.ts, "event %d", i);
		cr_assert_eq(a->ev.tag, b->ev.tag, "event %d", i);
		cr_assert_eq(a->ev.version_from, b->ev.version_from);
		cr_assert_eq(a->ev.version_to, b->ev.version_to, "event %d", i);
		cr_assert_eq(a->ev.version_restored, b->ev.version_restored);
		cr_assert_eq(a->ev.steps, b->ev.steps, "event %d", i);
		cr_assert_eq(a->ev.data_from, b->ev.data_from);
		cr_assert_eq(a->ev.data_until, b->ev.data_until);
		near(a->ev.loss_before, b->ev.loss_before, "loss_before", i);
		near(a->ev.loss_after, b->ev.loss_after, "loss_after", i);
		near(a->ev.guard_before, b->ev.guard_before, "guard_before", i);
		near(a->ev.guard_after, b->ev.guard_after, "guard_after", i);
		near(a->ev.update_norm, b->ev.update_norm, "update_norm", i);
		near_published(a->ev.adapted_error, b->ev.adapted_error,
			       "adapted", i);
		near(a->ev.shadow_error, b->ev.shadow_error, "shadow", i);
		near(a->ev.detector_stat, b->ev.detector_stat, "stat", i);
		if (exact_realised && a->ev.type == TTT_EV_REALISED)
			cr_assert_eq(a->ev.shadow_error, b->ev.shadow_error,
				     "event %d", i);
		for (int j = 0; j < H; j++)
			near_published(a->forecast[j], b->forecast[j],
				       "forecast", i);
		for (int j = 0; j < 2 * H; j++)
			near(a->cal[j], b->cal[j], "calibration", i);
	}
}

/* The same stream through the fast paths and the general path. */
static void fast_equals_general(const struct ttt_params *p, int batch)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_engine *e1, *e2;
	struct log l1 = {0}, l2 = {0};
	size_t off, len;
	char err[256];
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	l1.cal_off = l2.cal_off = off;
	cr_assert_eq(ttt_engine_new(m, p, on_event, &l1, &e1, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_new(m, p, on_event, &l2, &e2, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_set_fast_paths(e2, 0), 0);
	run_interleaved(e1, &l1, batch);
	run_interleaved(e2, &l2, 0);
	cr_assert_gt(count(&l2, TTT_EV_ADAPT_ACCEPTED), 3);
	cr_assert_gt(count(&l2, TTT_EV_ADAPT_REJECTED), 3);
	cr_assert_gt(count(&l2, TTT_EV_REALISED), 3);
	cr_assert_gt(count(&l2, TTT_EV_DRIFT), 0);
	/* the shadow's pass has the same single row on both paths */
	same_events(&l1, &l2, batch <= 1);
	ttt_engine_free(e1);
	ttt_engine_free(e2);
	free(l1.v);
	free(l2.v);
	fc_model_free(m);
}

Test(engine, calibration_fast_path_equals_general_path)
{
	struct ttt_params p;
	fast_params(&p);
	p.families = FC_ADAPT_CALIB;
	fast_equals_general(&p, 0);
	/* one optimizer step (the default), another objective mix */
	p.steps = 1;
	p.w_anchor = 0.5f;
	p.w_recon = 0.3f;
	p.guard_windows = 3;
	fast_equals_general(&p, 0);
	/* and the fast path deferred to the flush */
	fast_equals_general(&p, 7);
}

/* n interleaved series, forecasts (and learning) queued up to batch. */
static void run_many(struct ttt_engine *e, struct log *lg, int n, int batch)
{
	char key[16];
	cr_assert_eq(ttt_engine_defer_forecasts(e, batch), 0);
	for (int i = 0; i < 230; i++)
		for (int k = 0; k < n; k++) {
			snprintf(key, sizeof(key), "s%d", k);
			ttt_engine_set_tag(e, (uint64_t)(i * n + k + 1));
			feed(e, lg, key, 1000 + i,
			     series_value(i + 7 * k) * (1.0f + 0.1f * k));
		}
	cr_assert_eq(ttt_engine_flush(e), 0);
}

/* Deferred learning over many series: flushes when a series comes back
 * (batch > n), when the queue is full (batch < n), and interleaved with
 * the general path: every event as at once, to rounding. */
Test(engine, deferred_learning_equals_immediate_many_series)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e[4];
	struct log lg[4] = {{0}};
	static const int batch[4] = {0, 256, 5, 0};
	size_t off, len;
	char err[256];
	fast_params(&p);
	p.families = FC_ADAPT_CALIB;
	p.every = 9;
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	for (int i = 0; i < 4; i++) {
		lg[i].cal_off = off;
		cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg[i], &e[i], err,
					    sizeof(err)),
			     0, "%s", err);
	}
	cr_assert_eq(ttt_engine_set_fast_paths(e[3], 0), 0);
	for (int i = 0; i < 4; i++)
		run_many(e[i], &lg[i], 24, batch[i]);
	cr_assert_gt(count(&lg[0], TTT_EV_ADAPT_ACCEPTED), 20);
	cr_assert_gt(count(&lg[0], TTT_EV_ADAPT_REJECTED), 20);
	cr_assert_gt(count(&lg[0], TTT_EV_DRIFT), 5);
	int drift_adapt = 0;
	for (int i = 0; i < lg[0].n; i++)
		drift_adapt += lg[0].v[i].ev.trigger == TTT_TRIGGER_DRIFT &&
			       lg[0].v[i].ev.type != TTT_EV_DRIFT;
	cr_assert_gt(drift_adapt, 0, "no adaptation on drift");
	for (int i = 1; i < 4; i++)
		same_events(&lg[0], &lg[i], 0);
	cr_assert_gt(late_learning(&lg[0], &lg[1]), lg[1].n / 10);
	struct ttt_stats st;
	ttt_engine_stats(e[1], &st);
	cr_assert_eq(st.accepted,
		     (uint64_t)count(&lg[0], TTT_EV_ADAPT_ACCEPTED));
	cr_assert_gt(st.adapt_seconds, 0.0);
	for (int i = 0; i < 4; i++) {
		ttt_engine_free(e[i]);
		free(lg[i].v);
	}
	fc_model_free(m);
}

#if INTERPOSED
static void count_events(void *user, const struct ttt_event *ev)
{
	(void)ev;
	(*(long *)user)++;
}
#endif

/* No allocation per observation, with forecasts and learning deferred
 * (and flushed when the queue fills or a series comes back), except the
 * one that gives an adapter its own block when it first changes. */
Test(engine, no_allocation_per_observation)
{
#if INTERPOSED
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct ttt_stats s0, s1;
	long events = 0;
	char err[256], key[8];
	cr_assert_eq(fc_blas_set_threads(1), 1);
	fast_params(&p);
	p.families = FC_ADAPT_CALIB;
	cr_assert_eq(
	    ttt_engine_new(m, &p, count_events, &events, &e, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(ttt_engine_defer_forecasts(e, 16), 0);
	for (int i = 0; i < 400; i++)
		for (int k = 0; k < 12; k++) {
			snprintf(key, sizeof(key), "s%d", k);
			if (i == 200 && k == 0) {
				ttt_engine_stats(e, &s0);
				allocations = 0;
				counting = 1;
			}
			cr_assert_eq(ttt_engine_observe(
					 e, key, i, series_value(i + 9 * k)),
				     0);
		}
	cr_assert_eq(ttt_engine_flush(e), 0);
	counting = 0;
	ttt_engine_stats(e, &s1);
	long owned = (long)((s1.bytes_adapters - s0.bytes_adapters) /
			    (2 * s1.adapter_params * sizeof(float)));
	cr_assert_gt(s1.accepted, s0.accepted);
	cr_assert_gt(s1.drifts + s1.rollbacks, 0);
	cr_assert_eq(allocations, owned,
		     "%ld allocations, %ld adapters got their own block",
		     allocations, owned);
	ttt_engine_free(e);
	fc_model_free(m);
#else
	cr_skip_test("allocator interposition is off under ASan");
#endif
}

static int count_recent(void *user, const struct ttt_recent *r)
{
	(void)r;
	(*(int *)user)++;
	return 0;
}

/* Recent values are handed out only with no learning queued (it would
 * change the series' adaptation counters after the save). */
Test(engine, recent_values_wait_for_queued_learning)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	int n = 0;
	fast_params(&p);
	p.families = FC_ADAPT_CALIB;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_defer_forecasts(e, 64), 0);
	for (int i = 0; i < 2 * L; i++)
		feed(e, &lg, "a", 100 + i, series_value(i));
	cr_assert_eq(ttt_engine_each_recent(e, count_recent, &n), -EBUSY);
	cr_assert_eq(ttt_engine_flush(e), 0);
	cr_assert_eq(ttt_engine_each_recent(e, count_recent, &n), 0);
	cr_assert_eq(n, 1);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* What an event does not measure is NaN -- NULL in the audit log and null
 * on the audit topic -- not a 0 that reads as a measured error or loss:
 * an adaptation has no realised error, a drift alarm no guard, a realised
 * error no loss. */
Test(engine, events_leave_what_they_do_not_measure_nan)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	fast_params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 400; i++)
		feed(e, &lg, "s", i, series_value(i));
	int seen[TTT_EV_REALISED + 1] = {0};
	for (int i = 0; i < lg.n; i++) {
		const struct ttt_event *ev = &lg.v[i].ev;
		switch (ev->type) {
		case TTT_EV_ADAPT_ACCEPTED:
			cr_assert(isfinite(ev->guard_before) &&
				  isfinite(ev->update_norm));
			cr_assert(isnan(ev->adapted_error) &&
				  isnan(ev->shadow_error));
			cr_assert(isnan(ev->detector_stat) && isnan(ev->value));
			break;
		case TTT_EV_DRIFT:
			cr_assert(isfinite(ev->detector_stat));
			cr_assert(isnan(ev->guard_before) &&
				  isnan(ev->guard_after));
			cr_assert(isnan(ev->update_norm) &&
				  isnan(ev->adapted_error) &&
				  isnan(ev->shadow_error));
			break;
		case TTT_EV_REALISED:
			cr_assert(isfinite(ev->adapted_error) &&
				  isfinite(ev->shadow_error));
			cr_assert(isnan(ev->loss_before) &&
				  isnan(ev->guard_before) &&
				  isnan(ev->update_norm));
			break;
		default:
			continue;
		}
		seen[ev->type]++;
	}
	cr_assert_gt(seen[TTT_EV_ADAPT_ACCEPTED], 0);
	cr_assert_gt(seen[TTT_EV_DRIFT], 0);
	cr_assert_gt(seen[TTT_EV_REALISED], 0);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

/* ttt.max_series: a value of a new series beyond it is refused; a series
 * restored (this host's already, its versions numbered in the database) is
 * not, and counts. */
/* A cadence slowed to ten times the learnt step: every value was a gap too
 * long to fill, restarted the history and was never forecast (499 audit
 * rows for 500 values).  The step is learnt again. */
Test(engine, a_cadence_slowed_past_max_gap_is_learnt_again)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	ttt_params_default(&p);
	p.enabled = 0;
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	int64_t ts = 0;
	for (int i = 0; i < 10; i++, ts += 60) /* step 60 s */
		feed(e, &lg, "k", ts, (float)i);
	int gaps0 = count(&lg, TTT_EV_GAP_FILLED);
	for (int i = 0; i < 200; i++, ts += 600)
		feed(e, &lg, "k", ts, (float)i);
	int gaps = count(&lg, TTT_EV_GAP_FILLED) - gaps0;
	cr_assert_leq(gaps, 9, "%d history restarts", gaps);
	cr_assert_geq(count(&lg, TTT_EV_FORECAST), 200 - 9 - L + 1);
	int64_t step = 0;
	cr_assert_eq(ttt_engine_each_recent(e, newest_step, &step), 0);
	cr_assert_eq(step, 600);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}

Test(engine, max_series_refuses_new_series_not_restores)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	ttt_params_default(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	ttt_engine_set_max_series(e, 1);
	cr_assert_eq(ttt_engine_observe(e, "a", 1, 1.0f), 0);
	cr_assert_eq(ttt_engine_observe(e, "a", 2, 1.0f), 0);
	cr_assert_eq(ttt_engine_observe(e, "b", 1, 1.0f), -ENOSPC);
	cr_assert_eq(ttt_engine_series_count(e), 1);
	cr_assert_eq(ttt_engine_restore_series(e, "c", NULL, 0, 3, INT64_MIN),
		     0);
	cr_assert_eq(ttt_engine_series_count(e), 2);
	cr_assert_eq(ttt_engine_observe(e, "c", 1, 1.0f), 0);
	cr_assert_eq(ttt_engine_observe(e, "d", 1, 1.0f), -ENOSPC);
	ttt_engine_set_max_series(e, 0);
	cr_assert_eq(ttt_engine_observe(e, "d", 1, 1.0f), 0);
	ttt_engine_free(e);
	free(lg.v);
	fc_model_free(m);
}
