/*
 * The combiner (ttt/combine.h): the published forecast is f + w (a - f)
 * for the fixed weight w = ttt.combine_weight; its error obeys the convex
 * identity; a shrunk calibration publishes exactly the mix; and through
 * the engine w = 0 publishes the frozen forecast, w = 1 the adapted one,
 * and an adapter that realised errors show to be harmful is stopped by
 * the shadow whatever w is.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/combine.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

#define L 32
#define H 8

/* (p - y)^2 = (1 - w)(f - y)^2 + w (a - y)^2 - w (1 - w)(a - f)^2: the
 * published error is never above the weighted mean of the two, and below
 * it by the correction's own spread. */
Test(combine, published_error_is_the_convex_identity)
{
	uint64_t rng = 11;
	float f[H], a[H], y[H], p[H];
	for (int trial = 0; trial < 50; trial++) {
		double w = (double)fc_rng_uniform(&rng);
		for (int h = 0; h < H; h++) {
			f[h] = 4.0f * fc_rng_uniform(&rng) - 2.0f;
			a[h] = 4.0f * fc_rng_uniform(&rng) - 2.0f;
			y[h] = 4.0f * fc_rng_uniform(&rng) - 2.0f;
		}
		memcpy(p, a, sizeof(p));
		ttt_cmb_mix((float)w, f, p, H);
		double ef = ttt_mse(f, y, H), ea = ttt_mse(a, y, H),
		       ed = ttt_mse(a, f, H), ep = ttt_mse(p, y, H);
		double want = (1 - w) * ef + w * ea - w * (1 - w) * ed;
		/* float forecasts of magnitude <= 2: a few ulps of 4 */
		cr_assert_float_eq(ep, want, 1e-5, "w %g: %g vs %g", (double)w,
				   ep, want);
		cr_assert_leq(ep, (1 - w) * ef + w * ea + 1e-5);
	}
	/* w = 0 and w = 1 are the two forecasts themselves */
	memcpy(p, a, sizeof(p));
	ttt_cmb_mix(0.0f, f, p, H);
	cr_assert_arr_eq(p, f, sizeof(p));
	memcpy(p, a, sizeof(p));
	ttt_cmb_mix(1.0f, f, p, H);
	cr_assert_arr_eq(p, a, sizeof(p));
}

/* The deferred path publishes a shrunk calibration in one pass; it must
 * be the mix f + w (a - f) of the frozen and the calibrated forecast. */
Test(combine, shrunk_calibration_publishes_the_mix)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct fc_workspace *ws;
	float x[L], fc[H], mu, sd, cal[2 * H], sh[2 * H];
	float f[H], a[H], p[H];
	struct fc_head_raw raw = {fc, &mu, &sd};
	uint64_t rng = 7;
	cr_assert_eq(fc_workspace_new(m, 1, &ws), 0);
	for (int i = 0; i < L; i++)
		x[i] = 5.0f + 2.0f * sinf(0.4f * (float)i);
	cr_assert_eq(fc_forecast_raw(m, ws, x, 1, &raw), 0);
	for (int i = 0; i < 2 * H; i++)
		cal[i] = fc_rng_uniform(&rng) - 0.5f;
	const float w = 0.3f;
	fc_calib_forecast(m, &raw, 1, NULL, f);
	fc_calib_forecast(m, &raw, 1, cal, a);
	memcpy(p, a, sizeof(p));
	ttt_cmb_mix(w, f, p, H);
	cr_assert_eq(ttt_cmb_calib(w, cal, sh, H), 1);
	fc_calib_forecast(m, &raw, 1, sh, a);
	/* ((1 + w a) r + w c) sd + mu against f + w (a - f): the same value
	 * by two orders of float operations, a few ulps of the forecast */
	for (int h = 0; h < H; h++)
		cr_assert_float_eq(a[h], p[h], 1e-5f * (1.0f + fabsf(p[h])),
				   "step %d: %g vs %g", h, (double)a[h],
				   (double)p[h]);
	/* w = 0: the identity, forecast by the frozen path */
	cr_assert_eq(ttt_cmb_calib(0.0f, cal, sh, H), 0);
	for (int i = 0; i < 2 * H; i++)
		cr_assert_eq(sh[i], 0.0f);
	fc_workspace_free(ws);
	fc_model_free(m);
}

/* ---- through the engine ---------------------------------------------- */

static float value(int i)
{
	uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ull + 3;
	return 3.0f + sinf((float)i * 0.3f) +
	       0.3f * (fc_rng_uniform(&s) - 0.5f);
}

#define N 900

struct run {
	float fc[N][H]; /* the forecast issued at i */
	int have[N];
};

static void on_forecast(void *user, const struct ttt_event *ev)
{
	struct run *r = user;
	if (ev->type != TTT_EV_FORECAST || ev->ts + H >= N)
		return;
	memcpy(r->fc[ev->ts], ev->forecast, sizeof(r->fc[0]));
	r->have[ev->ts] = 1;
}

static double mse_from(const struct run *r, int from)
{
	double s = 0;
	int n = 0;
	for (int i = from; i < N; i++)
		if (r->have[i]) {
			for (int h = 0; h < H; h++) {
				double d = (double)r->fc[i][h] -
					   (double)value(i + 1 + h);
				s += d * d;
			}
			n++;
		}
	return s / (n * H);
}

/* Stream the series through an engine whose adapter is set to the
 * calibration cal [2H] and never adapts: frozen (enabled 0) or published
 * with weight w; shadow 1: the shadow scores it every value and a
 * realised-worse adapter is reset to the anchor. */
static void run_fixed(struct fc_model *m, const float *cal, int enabled,
		      float w, int shadow, struct run *r)
{
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	size_t A = fc_adapter_len(m), off, len;
	float *block = malloc(A * sizeof(float));
	ttt_params_default(&p);
	p.recal_steps = 0; /* the combiner's publishing alone */
	p.enabled = enabled;
	p.combine_weight = w;
	p.steps = 0; /* the adapter stays what it is set to */
	p.shadow_every = shadow ? 1 : 0;
	p.reset_policy = TTT_RESET_HARD;
	p.drift = TTT_DRIFT_NONE;
	/* the combiner alone: the level correction would cancel the fixed
	 * bias these tests give the adapter (tests/ttt/test_level.c) */
	p.level_steps = 0;
	memset(r, 0, sizeof(*r));
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_forecast, r, &e, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(ttt_engine_observe(e, "s", 0, value(0)), 0);
	uint64_t v;
	cr_assert_eq(ttt_engine_series_adapter(e, "s", block, A, &v), 0);
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	cr_assert_eq(len, 2 * H);
	memcpy(block + off, cal, len * sizeof(float));
	cr_assert_eq(ttt_engine_restore_series(e, "s", block, A, 1, 0), 0);
	for (int i = 1; i < N; i++)
		cr_assert_eq(ttt_engine_observe(e, "s", i, value(i)), 0);
	ttt_engine_free(e);
	free(block);
}

static struct run frozen, comb, raw; /* large: not on the stack */

/* A calibration that helps: the frozen model's mean residual per step,
 * in lookback stds, from a first pass. */
static void helpful_cal(struct fc_model *m, float *cal)
{
	double res[H] = {0};
	int nres = 0;
	struct fc_workspace *ws;
	float fc[H], mu, sd, x[L], f[H];
	struct fc_head_raw rw = {fc, &mu, &sd};
	cr_assert_eq(fc_workspace_new(m, 1, &ws), 0);
	for (int i = L - 1; i + H < N / 2; i++) {
		for (int k = 0; k < L; k++)
			x[k] = value(i - L + 1 + k);
		cr_assert_eq(fc_forecast_raw(m, ws, x, 1, &rw), 0);
		fc_calib_forecast(m, &rw, 1, NULL, f);
		for (int h = 0; h < H; h++)
			res[h] += (double)((value(i + 1 + h) - f[h]) / sd);
		nres++;
	}
	memset(cal, 0, 2 * H * sizeof(float));
	for (int h = 0; h < H; h++)
		cal[H + h] = (float)(res[h] / nres);
	fc_workspace_free(ws);
}

/* Through the engine (the calibration-only path, one pass with the
 * shrunk calibration): w = 0 is the frozen forecast and w = 1 the
 * adapted one bit for bit (the same arithmetic path); in between, the
 * mix of the two, to float rounding. */
Test(combine, the_engine_publishes_the_mix)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	float cal[2 * H];
	helpful_cal(m, cal);
	run_fixed(m, cal, 0, 1.0f, 0, &frozen);
	run_fixed(m, cal, 1, 1.0f, 0, &raw);
	run_fixed(m, cal, 1, 0.0f, 0, &comb);
	int n = 0;
	for (int i = 0; i < N; i++) {
		cr_assert_eq(frozen.have[i], comb.have[i]);
		if (!frozen.have[i])
			continue;
		cr_assert_arr_eq(comb.fc[i], frozen.fc[i], sizeof(comb.fc[i]),
				 "w = 0, window %d", i);
		n++;
	}
	cr_assert_gt(n, N / 2);
	run_fixed(m, cal, 1, 0.3f, 0, &comb);
	for (int i = 0; i < N; i++) {
		if (!frozen.have[i])
			continue;
		for (int h = 0; h < H; h++) {
			float want = frozen.fc[i][h] +
				     0.3f * (raw.fc[i][h] - frozen.fc[i][h]);
			/* calibrate-then-denormalise vs mix: two orders
			 * of float operations on values near 3 */
			cr_assert_float_eq(comb.fc[i][h], want,
					   1e-5f * (1.0f + fabsf(want)),
					   "w = 0.3, window %d step %d", i, h);
		}
	}
	double mf = mse_from(&frozen, N / 2), mc = mse_from(&comb, N / 2),
	       mr = mse_from(&raw, N / 2);
	cr_log_info("helpful: frozen %.4f, w = 0.3 %.4f, as is %.4f", mf, mc,
		    mr);
	cr_assert_lt(mr, 0.95 * mf, "the adapter does not help");
	cr_assert_lt(mc, mf, "a helpful correction, shrunk, still helps");
	fc_model_free(m);
}

/* A harmful adapter is published at w, but the shadow sees its realised
 * errors and resets it: the stream ends at the frozen model's error. */
Test(combine, a_harmful_adapter_is_stopped_by_the_shadow)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	float cal[2 * H];
	for (int h = 0; h < H; h++) {
		cal[h] = 0.0f;
		cal[H + h] = 1.5f; /* a bias of 1.5 lookback stds */
	}
	run_fixed(m, cal, 0, 1.0f, 0, &frozen);
	run_fixed(m, cal, 1, 0.3f, 0, &raw);
	run_fixed(m, cal, 1, 0.3f, 1, &comb);
	double mf = mse_from(&frozen, N / 2), mr = mse_from(&raw, N / 2),
	       mc = mse_from(&comb, N / 2);
	cr_log_info("harmful: frozen %.4f, unwatched %.4f, watched %.4f", mf,
		    mr, mc);
	cr_assert_gt(mr, 1.1 * mf, "the adapter is not harmful");
	/* reset within the first shadow window: frozen from then on */
	cr_assert_lt(mc, mf * 1.001, "watched %g vs frozen %g", mc, mf);
	fc_model_free(m);
}

/* ---- the published average (ttt.average_rate) ------------------------- */

/* Every half comes back from float unchanged; each midpoint between two
 * neighbours rounds to the even one and anything off it to the nearer;
 * past the largest half is infinity; NaN stays NaN. */
Test(combine, half_precision_rounds_to_nearest_even)
{
	for (uint32_t h = 0; h <= 0xffff; h++) {
		float f = ttt_unhalf((uint16_t)h);
		if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
			cr_assert(isnan(f));
			uint16_t back = ttt_half(f);
			cr_assert((back & 0x7c00u) == 0x7c00u &&
				      (back & 0x3ffu),
				  "NaN %#x came back as %#x", h, back);
			continue;
		}
		cr_assert_eq(ttt_half(f), h, "%#x: %a", h, (double)f);
		if ((h & 0x7fffu) >= 0x7bffu) /* the last finite and up */
			continue;
		/* h and h + 1 are neighbours away from zero */
		float g = ttt_unhalf((uint16_t)(h + 1));
		float mid = (float)(((double)f + (double)g) / 2.0); /* exact */
		uint16_t even = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
		cr_assert_eq(ttt_half(mid), even, "midpoint of %#x", h);
		float out = copysignf(INFINITY, g);
		cr_assert_eq(ttt_half(nextafterf(mid, out)), h + 1,
			     "beyond the midpoint of %#x", h);
		cr_assert_eq(ttt_half(nextafterf(mid, 0.0f)), h,
			     "short of the midpoint of %#x", h);
	}
	cr_assert_eq(ttt_unhalf(0x3c00), 1.0f);
	cr_assert_eq(ttt_unhalf(0x0001), 0x1p-24f);
	cr_assert_eq(ttt_half(65504.0f), 0x7bff);
	cr_assert_eq(ttt_half(65519.99f), 0x7bff);
	cr_assert_eq(ttt_half(65520.0f), 0x7c00);
	cr_assert_eq(ttt_half(-1e30f), 0xfc00);
	cr_assert_eq(ttt_half(1e-30f), 0x0000);
	cr_assert_eq(ttt_half(-0.0f), 0x8000);
}

/* An engine on the drifting stream of these tests, adapting every 5
 * values, the shadow off (no rollbacks): its events' versions kept. */
#define NV 64
struct vers {
	int n;
	uint64_t version[NV];
	float *block[NV];  /* accepted versions' adapter blocks */
	uint16_t *avg[NV]; /* and the averages their events carry */
	size_t avg_len[NV];
	int at[NV]; /* the observation that made each */
	int obs;    /* observations fed so far */
	size_t A;
	int nfc;
	float fc[N][H];
};

static void on_version(void *user, const struct ttt_event *ev)
{
	struct vers *v = user;
	if (ev->type == TTT_EV_FORECAST && v->nfc < N) {
		memcpy(v->fc[v->nfc++], ev->forecast, sizeof(v->fc[0]));
		return;
	}
	if (ev->type != TTT_EV_ADAPT_ACCEPTED || v->n == NV)
		return;
	v->version[v->n] = ev->version_to;
	v->block[v->n] = malloc(v->A * sizeof(float));
	memcpy(v->block[v->n], ev->adapter, v->A * sizeof(float));
	if (ev->average) {
		v->avg[v->n] = malloc(ev->average_len * sizeof(uint16_t));
		memcpy(v->avg[v->n], ev->average,
		       ev->average_len * sizeof(uint16_t));
		v->avg_len[v->n] = ev->average_len;
	}
	v->at[v->n++] = v->obs;
}

static struct ttt_engine *run_until(struct fc_model *m, float rate,
				    struct vers *v, int stop)
{
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	ttt_params_default(&p);
	p.recal_steps = 0; /* the combiner's publishing alone */
	p.every = 5;
	p.drift = TTT_DRIFT_NONE;
	p.shadow_every = 0;
	p.guard = 0; /* every candidate a version */
	p.average_rate = rate;
	memset(v, 0, sizeof(*v));
	v->A = fc_adapter_len(m);
	cr_assert_eq(ttt_engine_new(m, &p, on_version, v, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < stop; i++) {
		v->obs = i;
		cr_assert_eq(
		    ttt_engine_observe(e, "s", i,
				       value(i) + (i >= 150 ? 1.0f : 0.0f)),
		    0);
	}
	return e;
}

static struct ttt_engine *run_versions(struct fc_model *m, float rate,
				       struct vers *v)
{
	return run_until(m, rate, v, 300);
}

static void free_versions(struct vers *v)
{
	for (int k = 0; k < v->n; k++) {
		free(v->block[k]);
		free(v->avg[k]);
	}
}

static struct vers va, vb; /* large: not on the stack */

/* The saved average is m <- m + r (a - m) over the accepted versions a,
 * from the anchor; a restored version starts it afresh at that version,
 * exactly. */
Test(combine, the_published_average_follows_the_versions)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	const float r = 0.25f;
	struct ttt_engine *e = run_versions(m, r, &va);
	cr_assert_gt(va.n, 10, "%d versions", va.n);
	size_t off[4], len[4];
	size_t nseg = ttt_engine_adapter_segments(e, off, len, 4);
	cr_assert_eq(nseg, 1);
	cr_assert_eq(len[0], 2 * H);
	const float *base = ttt_engine_base_adapter(e);
	double want[2 * H] = {0}, top = 0.0;
	for (int k = 0; k < va.n; k++)
		for (size_t j = 0; j < len[0]; j++) {
			double a = (double)va.block[k][off[0] + j] -
				   (double)base[off[0] + j];
			want[j] += (double)r * (a - want[j]);
		}
	for (size_t j = 0; j < len[0]; j++)
		top = fmax(top, fabs(want[j]));
	cr_assert_gt(top, 1e-3, "the versions did not move");
	float ring[512];
	struct ttt_recent rc;
	cr_assert_eq(ttt_engine_series_recent(e, "s", ring, 512, &rc), 0);
	cr_assert_not_null(rc.average);
	cr_assert_eq(rc.average_len, 2 * H);
	cr_assert_eq(rc.average_version, va.version[va.n - 1]);
	/* each update rounds to half precision (relative 2^-11); the
	 * recursion shrinks an old rounding by 1 - r a step, so the sum of
	 * them stays below (2^-11 / r) of the largest value: 4 of those */
	for (size_t j = 0; j < len[0]; j++) {
		double got = (double)ttt_unhalf(rc.average[j]);
		cr_assert(fabs(got - want[j]) <=
			      4.0 * 0x1p-11 / (double)r * top,
			  "element %zu: %g vs %g", j, got, want[j]);
	}
	/* a restore sets it to the restored version's difference from the
	 * base, one rounding of the same float subtraction */
	float *blk = va.block[va.n / 2];
	cr_assert_eq(
	    ttt_engine_restore_series(e, "s", blk, va.A, 77, INT64_MIN), 0);
	cr_assert_eq(ttt_engine_series_recent(e, "s", ring, 512, &rc), 0);
	cr_assert_eq(rc.average_version, 77);
	for (size_t j = 0; j < len[0]; j++)
		cr_assert_eq(rc.average[j],
			     ttt_half(blk[off[0] + j] - base[off[0] + j]),
			     "element %zu", j);
	ttt_engine_free(e);
	free_versions(&va);
	fc_model_free(m);
}

/* The average changes what is published, not what is learnt: the same
 * versions with and without it, the same forecasts until the first one,
 * other forecasts after; and rate 1 (the average is the newest version,
 * in half precision) publishes the newest version's forecasts to that
 * precision. */
Test(combine, the_average_changes_what_is_published_only)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_engine *e = run_versions(m, 0.0f, &va);
	ttt_engine_free(e);
	e = run_versions(m, 0.25f, &vb);
	ttt_engine_free(e);
	cr_assert_eq(va.n, vb.n);
	cr_assert_gt(va.n, 10);
	for (int k = 0; k < va.n; k++) {
		cr_assert_eq(va.version[k], vb.version[k]);
		cr_assert_arr_eq(va.block[k], vb.block[k], va.A * sizeof(float),
				 "version %d", k);
	}
	cr_assert_eq(va.nfc, vb.nfc);
	int same = 0, differ = 0;
	for (int i = 0; i < va.nfc; i++) {
		if (memcmp(va.fc[i], vb.fc[i], sizeof(va.fc[i])) == 0)
			same += differ == 0;
		else
			differ++;
	}
	cr_assert_gt(same, 0, "forecasts before the first version");
	cr_assert_gt(differ, va.nfc / 2, "%d of %d differ", differ, va.nfc);
	free_versions(&vb);
	e = run_versions(m, 1.0f, &vb);
	ttt_engine_free(e);
	cr_assert_eq(va.nfc, vb.nfc);
	/* calibration deltas in half precision (relative 2^-11 of deltas of
	 * at most ~1) move a forecast of values near 3 by ~1e-3 at most */
	for (int i = 0; i < va.nfc; i++)
		for (int h = 0; h < H; h++)
			cr_assert_float_eq(vb.fc[i][h], va.fc[i][h], 2e-3f,
					   "forecast %d step %d", i, h);
	free_versions(&va);
	free_versions(&vb);
	fc_model_free(m);
}

/* A rollback or a reset starts the average afresh at the version it
 * leaves current: after each, the saved average is that version's
 * difference from the base, exactly (one rounding of the same float
 * subtraction).  The shadow here is strict (margin 0, a short window) so
 * that rollbacks happen on this stream. */
struct rb_seen {
	int rollbacks, resets, last; /* last: one happened in this observe */
};

static void on_rollback(void *user, const struct ttt_event *ev)
{
	struct rb_seen *s = user;
	if (ev->type == TTT_EV_ROLLBACK && ev->version_restored > 0) {
		s->rollbacks++;
		s->last = 1;
	} else if (ev->type == TTT_EV_RESET) {
		s->resets++;
		s->last = 1;
	} else if (ev->type == TTT_EV_ADAPT_ACCEPTED) {
		s->last = 0; /* the average moved on since */
	}
}

static void rollbacks_restart_the_average(int policy)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct rb_seen seen = {0};
	char err[256];
	ttt_params_default(&p);
	p.recal_steps = 0; /* the combiner's publishing alone */
	p.every = 3;
	p.drift = TTT_DRIFT_NONE;
	p.guard = 0;
	p.lr = 0.05f;
	p.shadow_every = 1;
	p.rollback_window = 3;
	p.rollback_margin = 0.0f;
	p.fallback_rollbacks = 1000000; /* never give up on the series */
	p.reset_policy = policy;
	cr_assert_eq(
	    ttt_engine_new(m, &p, on_rollback, &seen, &e, err, sizeof(err)), 0,
	    "%s", err);
	size_t A = fc_adapter_len(m), off[4], len[4];
	cr_assert_eq(ttt_engine_adapter_segments(e, off, len, 4), 1);
	const float *base = ttt_engine_base_adapter(e);
	float *blk = malloc(A * sizeof(float)), ring[512];
	int checked = 0;
	for (int i = 0; i < N; i++) {
		seen.last = 0;
		cr_assert_eq(ttt_engine_observe(
				 e, "s", i, value(i) + (float)((i / 50) % 3)),
			     0);
		if (!seen.last)
			continue;
		struct ttt_recent rc;
		uint64_t v;
		cr_assert_eq(ttt_engine_series_recent(e, "s", ring, 512, &rc),
			     0);
		cr_assert_eq(ttt_engine_series_adapter(e, "s", blk, A, &v), 0);
		if (!rc.average)
			continue; /* back at the anchor: the frozen model */
		cr_assert_eq(rc.average_version, v);
		for (size_t j = 0; j < len[0]; j++)
			cr_assert_eq(
			    rc.average[j],
			    ttt_half(blk[off[0] + j] - base[off[0] + j]),
			    "observation %d element %zu", i, j);
		checked++;
	}
	cr_log_info("%d rollbacks, %d resets, %d checked", seen.rollbacks,
		    seen.resets, checked);
	cr_assert_gt(checked, 0, "no rollback to an adapted version");
	free(blk);
	ttt_engine_free(e);
	fc_model_free(m);
}

Test(combine, a_rollback_restarts_the_average)
{
	rollbacks_restart_the_average(TTT_RESET_ROLLBACK);
}

Test(combine, a_soft_reset_restarts_the_average)
{
	rollbacks_restart_the_average(TTT_RESET_SOFT);
}

/* ---- the average stored with a version ------------------------------ */

#define NF 12
struct fcs {
	int n;
	float fc[NF][H];
};

static void on_fc(void *user, const struct ttt_event *ev)
{
	struct fcs *f = user;
	if (ev->type == TTT_EV_FORECAST && f->n < NF)
		memcpy(f->fc[f->n++], ev->forecast, sizeof(f->fc[0]));
}

/* Adaptation off from here on: what is published is a function of the
 * lookback, the version and the average alone. */
static void stand_still(struct ttt_engine *e)
{
	struct ttt_params p;
	ttt_params_default(&p);
	p.recal_steps = 0; /* the combiner's publishing alone */
	p.every = 1000000;
	p.drift = TTT_DRIFT_NONE;
	p.shadow_every = 0;
	p.average_rate = 0.25f;
	cr_assert_eq(ttt_engine_set_params(e, &p), 0);
}

static void feed_after(struct ttt_engine *e, int from)
{
	for (int i = from; i < from + NF; i++)
		cr_assert_eq(ttt_engine_observe(e, "s", i, value(i) + 1.0f), 0);
}

static struct fcs fa, fb, fc2;

/* Each new version's event carries the average the series publishes from
 * it on, which the daemon stores with the version: an engine given a
 * version's content, then that average (an operator's rollback), publishes
 * exactly what the series published while the version was current --
 * and without the average it would not. */
Test(combine, a_versions_average_republishes_its_forecasts)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	struct ttt_engine *e = run_versions(m, 0.25f, &va);
	cr_assert_gt(va.n, 10, "%d versions", va.n);
	/* the newest version's event: what the series publishes now */
	float ring[512];
	struct ttt_recent rc;
	cr_assert_eq(ttt_engine_series_recent(e, "s", ring, 512, &rc), 0);
	int last = va.n - 1;
	cr_assert_not_null(va.avg[last]);
	cr_assert_eq(va.avg_len[last], rc.average_len);
	cr_assert_arr_eq(va.avg[last], rc.average,
			 rc.average_len * sizeof(uint16_t));
	ttt_engine_free(e);

	/* version k, well after the first: its average is not the version */
	int k = va.n / 2, t = va.at[k];
	cr_assert_not_null(va.avg[k]);
	e = run_until(m, 0.25f, &vb, t + 1); /* the same run, stopped at k */
	cr_assert_eq(vb.n, k + 1);
	cr_assert_arr_eq(vb.block[k], va.block[k], va.A * sizeof(float));
	cr_assert_eq(ttt_engine_series_recent(e, "s", ring, 512, &rc), 0);
	struct ttt_recent saved = rc;
	saved.average = NULL; /* the ring only */
	saved.key = "s";      /* not e's copy: e is freed below */
	float *vals = malloc((size_t)rc.count * sizeof(float));
	memcpy(vals, rc.values, (size_t)rc.count * sizeof(float));
	saved.values = vals;
	stand_still(e);
	int nfc0 = vb.nfc;
	feed_after(e, t + 1);
	cr_assert_eq(vb.nfc, nfc0 + NF);
	memcpy(fa.fc, vb.fc[nfc0], sizeof(fa.fc));
	fa.n = NF;
	ttt_engine_free(e);

	struct ttt_params p;
	char err[256];
	ttt_params_default(&p);
	p.recal_steps = 0; /* the combiner's publishing alone */
	p.average_rate = 0.25f;
	struct ttt_engine *b, *c;
	cr_assert_eq(ttt_engine_new(m, &p, on_fc, &fb, &b, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(ttt_engine_new(m, &p, on_fc, &fc2, &c, err, sizeof(err)),
		     0, "%s", err);
	struct ttt_engine *both[2] = {b, c};
	for (int j = 0; j < 2; j++) {
		cr_assert_eq(ttt_engine_restore_series(both[j], "s",
						       va.block[k], va.A, 500,
						       INT64_MIN),
			     0);
		cr_assert_eq(ttt_engine_restore_recent(both[j], &saved), 0);
		stand_still(both[j]);
	}
	/* refusals change nothing */
	uint16_t bad[2 * H];
	memcpy(bad, va.avg[k], sizeof(bad));
	bad[3] = 0x7c00; /* infinity */
	cr_assert_eq(ttt_engine_restore_average(b, "s", bad, 2 * H, 500),
		     -EINVAL);
	cr_assert_eq(
	    ttt_engine_restore_average(b, "s", va.avg[k], 2 * H - 1, 500),
	    -EINVAL);
	cr_assert_eq(ttt_engine_restore_average(b, "zz", va.avg[k], 2 * H, 500),
		     -ENOENT);
	cr_assert_eq(ttt_engine_restore_average(b, "s", va.avg[k], 2 * H, 499),
		     0, "another version's average is not taken");
	cr_assert_eq(ttt_engine_series_recent(b, "s", ring, 512, &rc), 0);
	cr_assert(memcmp(rc.average, va.avg[k], sizeof(bad)) != 0);
	cr_assert_eq(ttt_engine_restore_average(b, "s", va.avg[k], 2 * H, 500),
		     1);
	feed_after(b, t + 1);
	feed_after(c, t + 1);
	cr_assert_eq(fa.n, NF);
	cr_assert_eq(fb.n, NF);
	cr_assert_eq(fc2.n, NF);
	cr_assert_arr_eq(fb.fc, fa.fc, sizeof(fa.fc),
			 "the version with its average publishes what it did");
	cr_assert(memcmp(fc2.fc, fa.fc, sizeof(fa.fc)) != 0,
		  "without the average it publishes something else");
	free(vals);
	ttt_engine_free(b);
	ttt_engine_free(c);
	free_versions(&va);
	free_versions(&vb);
	fc_model_free(m);
}
