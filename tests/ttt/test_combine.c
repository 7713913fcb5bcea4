/*
 * The combiner (ttt/combine.h): the published forecast is f + w (a - f)
 * for the fixed weight w = ttt.combine_weight; its error obeys the convex
 * identity; a shrunk calibration publishes exactly the mix; and through
 * the engine w = 0 publishes the frozen forecast, w = 1 the adapted one,
 * and an adapter that realised errors show to be harmful is stopped by
 * the shadow whatever w is.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/combine.h"
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
