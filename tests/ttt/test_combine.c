/*
 * The combiner (ttt/combine.h): its weights are the shrunk least-squares
 * coefficient of the realised residual on the adapter's correction; a
 * shrunk calibration publishes exactly the mix; and through the engine, an
 * adapter that hurts is not published while one that helps is.
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

Test(combine, weight_is_the_shrunk_least_squares_coefficient)
{
	float f[H], a[H], y[H];
	struct ttt_combiner c;
	for (int h = 0; h < H; h++) {
		f[h] = 0.1f * (float)h;
		a[h] = f[h] + 1.0f + 0.25f * (float)h; /* correction d */
	}
	/* y = f + 0.5 d: half of the correction is real */
	for (int h = 0; h < H; h++)
		y[h] = f[h] + 0.5f * (a[h] - f[h]);
	memset(&c, 0, sizeof(c));
	ttt_cmb_update(&c, f, a, y, H, 1.0f, 0.0f);
	for (int b = 0; b < H; b++)
		cr_assert_float_eq(c.w[b], 0.5f, 1e-6f, "bucket %d", b);
	/* prior 2 pseudo-windows of no correction: one window weighs 1/3 */
	memset(&c, 0, sizeof(c));
	ttt_cmb_update(&c, f, a, y, H, 1.0f, 2.0f);
	cr_assert_float_eq(c.w[0], 0.5f / 3.0f, 1e-6f);
	/* a correction the wrong way is never published, however sure */
	for (int h = 0; h < H; h++)
		y[h] = f[h] - (a[h] - f[h]);
	memset(&c, 0, sizeof(c));
	for (int k = 0; k < 50; k++)
		ttt_cmb_update(&c, f, a, y, H, 0.99f, 2.0f);
	for (int b = 0; b < H; b++)
		cr_assert_eq(c.w[b], 0.0f);
	/* nor more than all of it; and the old evidence decays */
	for (int h = 0; h < H; h++)
		y[h] = f[h] + 3.0f * (a[h] - f[h]);
	for (int k = 0; k < 2000; k++)
		ttt_cmb_update(&c, f, a, y, H, 0.99f, 2.0f);
	for (int b = 0; b < H; b++)
		cr_assert_float_eq(c.w[b], 1.0f, 0.03f, "bucket %d", b);
	float p[H];
	memcpy(p, a, sizeof(p));
	ttt_cmb_mix(&c, f, p, H);
	for (int h = 0; h < H; h++)
		cr_assert_float_eq(p[h], a[h], 0.03f * fabsf(a[h] - f[h]));
}

Test(combine, buckets_split_a_long_horizon)
{
	cr_assert_eq(ttt_cmb_bucket(96, 0), 0);
	cr_assert_eq(ttt_cmb_bucket(96, 11), 0);
	cr_assert_eq(ttt_cmb_bucket(96, 12), 1);
	cr_assert_eq(ttt_cmb_bucket(96, 95), TTT_CMB_BUCKETS - 1);
	cr_assert_eq(ttt_cmb_bucket(720, 719), TTT_CMB_BUCKETS - 1);
	cr_assert_eq(ttt_cmb_bucket(4, 3), 3);
}

static struct fc_model *small_model(void)
{
	struct fc_model *m = tt_small_model(L, H);
	cr_assert(m);
	return m;
}

/* The deferred path publishes a shrunk calibration in one pass; it must
 * be the mix f + w (a - f) of the frozen and the calibrated forecast. */
Test(combine, shrunk_calibration_publishes_the_mix)
{
	struct fc_model *m = small_model();
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
	struct ttt_combiner c;
	memset(&c, 0, sizeof(c));
	for (int b = 0; b < H; b++)
		c.w[b] = 0.125f * (float)b;
	fc_calib_forecast(m, &raw, 1, NULL, f);
	fc_calib_forecast(m, &raw, 1, cal, a);
	memcpy(p, a, sizeof(p));
	ttt_cmb_mix(&c, f, p, H);
	cr_assert_eq(ttt_cmb_calib(&c, cal, sh, H), 1);
	fc_calib_forecast(m, &raw, 1, sh, a);
	/* ((1 + w a) r + w c) sd + mu against f + w (a - f): the same value
	 * by two orders of float operations, a few ulps of the forecast */
	for (int h = 0; h < H; h++)
		cr_assert_float_eq(a[h], p[h], 1e-5f * (1.0f + fabsf(p[h])),
				   "step %d: %g vs %g", h, (double)a[h],
				   (double)p[h]);
	/* every weight 0: the identity, forecast by the frozen path */
	memset(&c, 0, sizeof(c));
	cr_assert_eq(ttt_cmb_calib(&c, cal, sh, H), 0);
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
	double se[N]; /* squared error of the forecast issued at i */
	int n;
};

static void on_forecast(void *user, const struct ttt_event *ev)
{
	struct run *r = user;
	if (ev->type != TTT_EV_FORECAST || ev->ts + H >= N)
		return;
	double se = 0;
	for (int h = 0; h < H; h++) {
		double d = (double)ev->forecast[h] -
			   (double)value((int)ev->ts + 1 + h);
		se += d * d;
	}
	r->se[ev->ts] = se / H;
	r->n++;
}

static double mse_from(const struct run *r, int from)
{
	double s = 0;
	int n = 0;
	for (int i = from; i < N; i++)
		if (r->se[i] > 0) {
			s += r->se[i];
			n++;
		}
	return s / n;
}

/* Stream the series through an engine whose adapter is fixed (no
 * adaptation) at calibration cal [2H]: frozen (enabled 0), published
 * through the combiner, or as it is. */
static void run_fixed(struct fc_model *m, const float *cal, int enabled,
		      int combine, struct run *r)
{
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	size_t A = fc_adapter_len(m), off, len;
	float *block = malloc(A * sizeof(float));
	ttt_params_default(&p);
	p.enabled = enabled;
	p.combine = combine;
	p.steps = 0; /* the adapter stays what it is set to */
	p.shadow_every = 1;
	p.rollback_window = 1000000; /* the shadow never rolls it back */
	p.drift = TTT_DRIFT_NONE;
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

Test(combine, a_harmful_adapter_is_not_published)
{
	struct fc_model *m = small_model();
	struct run frozen, comb, raw;
	float cal[2 * H];
	for (int h = 0; h < H; h++) {
		cal[h] = 0.0f;
		cal[H + h] = 1.5f; /* a bias of 1.5 lookback stds */
	}
	run_fixed(m, cal, 0, 0, &frozen);
	run_fixed(m, cal, 1, 1, &comb);
	run_fixed(m, cal, 1, 0, &raw);
	double mf = mse_from(&frozen, 0), mc = mse_from(&comb, 0),
	       mr = mse_from(&raw, 0);
	cr_log_info("harmful: frozen %.4f, combined %.4f, as is %.4f", mf, mc,
		    mr);
	cr_assert_gt(mr, 2.0 * mf, "the adapter is not harmful");
	/* the whole stream: the combiner learns within a few windows */
	cr_assert_lt(mc, mf * 1.05, "combined %g vs frozen %g", mc, mf);
	/* once it knows, nothing of the adapter is published */
	cr_assert_lt(mse_from(&comb, N / 2), mse_from(&frozen, N / 2) * 1.001);
	fc_model_free(m);
}

Test(combine, a_helpful_adapter_is_published)
{
	struct fc_model *m = small_model();
	struct run frozen, comb, raw;
	float cal[2 * H] = {0};
	/* the frozen model's mean residual per step, in lookback stds,
	 * from a first pass: a bias correction that helps this series */
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
	for (int h = 0; h < H; h++)
		cal[H + h] = (float)(res[h] / nres);
	run_fixed(m, cal, 0, 0, &frozen);
	run_fixed(m, cal, 1, 1, &comb);
	run_fixed(m, cal, 1, 0, &raw);
	double mf = mse_from(&frozen, N / 2), mc = mse_from(&comb, N / 2),
	       mr = mse_from(&raw, N / 2);
	cr_log_info("helpful: frozen %.4f, combined %.4f, as is %.4f", mf, mc,
		    mr);
	cr_assert_lt(mr, 0.95 * mf, "the adapter does not help");
	/* most of the gain is published once the evidence is in */
	cr_assert_lt(mc - mr, 0.25 * (mf - mr), "combined %g", mc);
	fc_workspace_free(ws);
	fc_model_free(m);
}
