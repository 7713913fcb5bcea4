/*
 * Invariants of the forecasting core (float build): the initial adapter
 * forecasts exactly like the frozen model, save -> load -> forecast is
 * bit-identical, an optimizer step with lr 0 changes nothing, the same seed
 * gives the same training curve, family masks, the masked-segment sampler,
 * and input checks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/fnv1a.h"
#include "forecast/internal.h" /* fc_model_set_scaler, fc_adapter_tensor */

static struct fc_model *m;
static struct fc_workspace *ws;
static float *bufs[16];
static int nbufs;

static float *buf(size_t n)
{
	float *p = calloc(n ? n : 1, sizeof(float));
	cr_assert(p);
	cr_assert_lt(nbufs, 16);
	bufs[nbufs++] = p;
	return p;
}

static void teardown(void)
{
	fc_workspace_free(ws);
	fc_model_free(m);
	ws = NULL;
	m = NULL;
	while (nbufs > 0)
		free(bufs[--nbufs]);
}

TestSuite(model, .fini = teardown);

static void small_config(struct fc_config *c, int backbone)
{
	fc_config_default(c);
	c->backbone = backbone;
	c->lookback = 48;
	c->horizon = 12;
	c->d_model = 16;
	c->n_layers = 2;
	c->n_heads = 2;
	c->d_ff = 24;
}

static void make(int backbone, int max_batch)
{
	struct fc_config c;
	char err[256];
	small_config(&c, backbone);
	cr_assert_eq(fc_model_new(&c, 3, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_workspace_new(m, max_batch, &ws), 0);
}

static void series(float *x, size_t n, unsigned seed)
{
	uint64_t r = seed;
	for (size_t i = 0; i < n; i++)
		x[i] = 3.0f + 2.0f * sinf((float)i * 0.3f) +
		       0.3f * fc_rng_uniform(&r);
}

static void identity_adapter(int backbone)
{
	make(backbone, 4);
	const struct fc_config *c = fc_model_config(m);
	float *x = buf((size_t)4 * c->lookback), *y0 = buf(4 * 12),
	      *y1 = buf(4 * 12), *ad = buf(fc_adapter_len(m));
	series(x, (size_t)4 * c->lookback, 1);
	fc_adapter_init(m, ad, 9);
	/* Exact, not to rounding: an initial adapter merges to the base
	 * weights (the same GEMMs on the same rows), and its calibration
	 * (1 + 0) y + 0 gives y back exactly in IEEE arithmetic. */
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 4, y0), 0);
	cr_assert_eq(fc_forecast(m, ad, ws, x, 4, y1), 0);
	cr_assert_eq(memcmp(y0, y1, sizeof(float) * 48), 0,
		     "initial adapter differs from the frozen model");
	/* and the adapter does act once it moves */
	size_t off, len;
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	ad[off + len - 1] = 0.5f; /* shift of the last horizon step */
	cr_assert_eq(fc_forecast(m, ad, ws, x, 4, y1), 0);
	cr_assert_neq(y0[11], y1[11]);
	cr_assert_eq(y0[0], y1[0]);
}

Test(model, initial_adapter_is_frozen_gru)
{
	identity_adapter(FC_BACKBONE_GRU);
}

Test(model, initial_adapter_is_frozen_transformer)
{
	identity_adapter(FC_BACKBONE_TRANSFORMER);
}

/* One batched pass with a different calibration per window equals
 * forecasting each window with its own adapter (other families initial). */
static void per_window_calibration(int backbone)
{
	make(backbone, 4);
	const struct fc_config *c = fc_model_config(m);
	size_t A = fc_adapter_len(m), off, len;
	const int H = c->horizon;
	float *x = buf((size_t)4 * c->lookback), *y = buf(4 * 12),
	      *want = buf(4 * 12), *ad = buf(4 * A);
	series(x, (size_t)4 * c->lookback, 4);
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	cr_assert_eq(len, (size_t)2 * H);
	uint64_t rng = 11;
	const float *cal[4];
	for (int i = 0; i < 4; i++) {
		fc_adapter_init(m, ad + i * A, 9);
		for (size_t k = 0; k < len; k++)
			ad[i * A + off + k] =
			    0.2f * fc_rng_uniform(&rng) - 0.1f;
		cal[i] = i == 1 ? NULL : ad + i * A + off;
	}
	cr_assert_eq(fc_forecast_calibrated(m, ws, x, 4, cal, y), 0);
	/* Exact: both are one pass over the same 4 rows with the base
	 * weights, and a row's calibration is the same expression whether
	 * it comes from cal[] or from the adapter. */
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(
		    fc_forecast(m, i == 1 ? NULL : ad + i * A, ws, x, 4, want),
		    0);
		cr_assert_eq(
		    memcmp(y + i * H, want + i * H, sizeof(float) * (size_t)H),
		    0, "window %d differs", i);
	}
	/* the calibration does act: window 1 (identity) != window 0 */
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 4, want), 0);
	cr_assert_neq(memcmp(y, want, sizeof(float) * (size_t)H), 0);
	/* no calibration at all is the frozen model */
	cr_assert_eq(fc_forecast_calibrated(m, ws, x, 4, NULL, y), 0);
	cr_assert_eq(memcmp(y, want, sizeof(float) * 4 * (size_t)H), 0);
	cr_assert_eq(fc_forecast_calibrated(m, ws, x, 5, NULL, y), -EINVAL);
}

Test(model, per_window_calibration_gru)
{
	per_window_calibration(FC_BACKBONE_GRU);
}

Test(model, per_window_calibration_transformer)
{
	per_window_calibration(FC_BACKBONE_TRANSFORMER);
}

Test(model, forecast_is_batch_independent)
{
	make(FC_BACKBONE_GRU, 8);
	float *x = buf(8 * 48), *y8 = buf(8 * 12), *y1 = buf(12);
	series(x, 8 * 48, 2);
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 8, y8), 0);
	cr_assert_eq(fc_forecast(m, NULL, ws, x + 5 * 48, 1, y1), 0);
	/* Different GEMM shapes (8 rows vs 1), so OpenBLAS may pick other
	 * kernels and summation orders: a few float ulps (~1e-6 at these
	 * values of 1..5), well inside 1e-4; a mixed-up row is off by ~1. */
	for (int j = 0; j < 12; j++)
		cr_assert_float_eq(y1[j], y8[5 * 12 + j], 1e-4);
}

/* From 16 windows a forecast-only pass takes the fused kernels (the GRU
 * with the embedding folded into layer 0, the transformer's linear maps
 * with their bias, residual or GELU; nn_fused.c); one window takes the
 * GEMV path: each of 37 windows (tail blocks included; both layers of
 * the small config, d_ff 32 so that the transformer's widths fit the
 * kernel) forecast alone agrees with its row of the batch.  The two
 * paths sum the same products in different orders (and the fold rounds
 * W_ih W_emb once instead of W_emb tok and then W_ih emb): float errors
 * of a few 1e-7 relative (2.2e-7 and 4.4e-7 measured); 1e-5 relative
 * leaves room for other CPUs' BLAS kernels, while a wrong gate, weight,
 * bias or row is off by 1e-2 or more. */
static void fused_batch(int backbone)
{
	const int B = 37;
	struct fc_config c;
	char err[256];
	small_config(&c, backbone);
	c.d_ff = 32;
	cr_assert_eq(fc_model_new(&c, 3, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_workspace_new(m, B, &ws), 0);
	float *x = buf(B * 48), *yb = buf(B * 12), *y1 = buf(12);
	series(x, B * 48, 4);
	cr_assert_eq(fc_forecast(m, NULL, ws, x, B, yb), 0);
	double worst = 0;
	for (int b = 0; b < B; b++) {
		cr_assert_eq(fc_forecast(m, NULL, ws, x + b * 48, 1, y1), 0);
		for (int j = 0; j < 12; j++) {
			double d =
			    fabs((double)y1[j] - (double)yb[b * 12 + j]) /
			    (1.0 + fabs((double)y1[j]));
			worst = d > worst ? d : worst;
			cr_assert_float_eq(y1[j], yb[b * 12 + j],
					   1e-5f * (1.0f + fabsf(y1[j])),
					   "window %d step %d", b, j);
		}
	}
	cr_log_info("worst relative difference %.2e", worst);
}

Test(model, fused_batch_matches_one_window_gru)
{
	fused_batch(FC_BACKBONE_GRU);
}

Test(model, fused_batch_matches_one_window_transformer)
{
	fused_batch(FC_BACKBONE_TRANSFORMER);
}

static void save_load(int backbone)
{
	make(backbone, 3);
	char path[] = "/tmp/dc-model-XXXXXX", err[256];
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	float mean[2] = {1.5f, -2.0f}, sd[2] = {0.5f, 3.0f};
	const char *names[2] = {"OT", "HUFL"};
	cr_assert_eq(fc_model_set_scaler(m, 2, mean, sd, names), 0);
	cr_assert_eq(fc_model_save(m, path, err, sizeof(err)), 0, "%s", err);
	struct fc_model *m2 = NULL;
	cr_assert_eq(fc_model_load(path, &m2, err, sizeof(err)), 0, "%s", err);
	unlink(path);
	cr_assert_eq(memcmp(fc_model_config(m), fc_model_config(m2),
			    sizeof(struct fc_config)),
		     0);
	const float *mu, *s;
	const char *const *nm;
	cr_assert_eq(fc_model_scaler(m2, &mu, &s, &nm), 2);
	cr_assert_eq(mu[1], -2.0f);
	cr_assert_eq(s[0], 0.5f);
	cr_assert_str_eq(nm[1], "HUFL");
	float *x = buf(3 * 48), *y0 = buf(36), *y1 = buf(36);
	float *ad = buf(fc_adapter_len(m));
	series(x, 3 * 48, 3);
	fc_adapter_init(m, ad, 1);
	for (size_t i = 0; i < fc_adapter_len(m); i++)
		ad[i] += 0.01f * (float)((i % 7) - 3);
	/* the loaded weights are the saved bits: same rows, same path */
	cr_assert_eq(fc_forecast(m, ad, ws, x, 3, y0), 0);
	cr_assert_eq(fc_forecast(m2, ad, ws, x, 3, y1), 0);
	cr_assert_eq(memcmp(y0, y1, sizeof(float) * 36), 0);
	fc_model_free(m2);
}

Test(model, save_load_forecast_bit_identical_gru)
{
	save_load(FC_BACKBONE_GRU);
}

Test(model, save_load_forecast_bit_identical_transformer)
{
	save_load(FC_BACKBONE_TRANSFORMER);
}

Test(model, adam_with_lr_zero_changes_nothing)
{
	size_t n = 1000;
	float *p = buf(n), *p0 = buf(n), *g = buf(n);
	float *st = buf(fc_adam_state_len(n));
	series(p, n, 4);
	series(g, n, 5);
	memcpy(p0, p, sizeof(float) * n);
	struct fc_adam o = {0.0f, 0.9f, 0.999f, 1e-8f, 0.01f};
	fc_adam_step(&o, p, g, st, n, 1);
	/* exact: p - 0 * u is p (the AVX2 and scalar updates round alike) */
	cr_assert_eq(memcmp(p, p0, sizeof(float) * n), 0);
	o.lr = 1e-2f;
	fc_adam_step(&o, p, g, st, n, 2);
	cr_assert_neq(memcmp(p, p0, sizeof(float) * n), 0);
	/* Adam's first step moves every weight by about lr */
	for (size_t i = 0; i < n; i++)
		p[i] = 0;
	memset(st, 0, sizeof(float) * 2 * n);
	o.weight_decay = 0;
	fc_adam_step(&o, p, g, st, n, 1);
	for (size_t i = 0; i < n; i++)
		cr_assert_float_eq(fabsf(p[i]), 1e-2f, 1e-4);
}

Test(model, grad_clip_global_norm)
{
	float g[4] = {3, 4, 0, 0};
	cr_assert_float_eq(fc_grad_clip(g, 4, 1.0f), 5.0f, 1e-6);
	cr_assert_float_eq(g[0], 0.6f, 1e-6);
	cr_assert_float_eq(g[1], 0.8f, 1e-6);
	cr_assert_float_eq(fc_grad_clip(g, 4, 2.0f), 1.0f, 1e-6);
	cr_assert_float_eq(g[1], 0.8f, 1e-6); /* below the bound: unchanged */
}

Test(model, mask_sampler_covers_the_share_in_segments)
{
	float a[96], b[96];
	uint64_t r1 = 42, r2 = 42, r3 = 43;
	fc_mask_sample(a, 96, 0.33f, 16, &r1);
	fc_mask_sample(b, 96, 0.33f, 16, &r2);
	cr_assert_eq(memcmp(a, b, sizeof(a)), 0, "not deterministic");
	int hidden = 0, runs = 0;
	for (int t = 0; t < 96; t++) {
		hidden += a[t] == 1.0f;
		cr_assert(a[t] == 0.0f || a[t] == 1.0f);
		runs += a[t] == 1.0f && (t == 0 || a[t - 1] == 0.0f);
	}
	cr_assert_eq(hidden, 32); /* round(0.33 * 96) */
	cr_assert_leq(runs, 3, "%d runs: segments are not contiguous", runs);
	fc_mask_sample(b, 96, 0.33f, 16, &r3);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
}

Test(model, loss_grad_respects_families)
{
	make(FC_BACKBONE_TRANSFORMER, 6);
	size_t n = fc_adapter_len(m);
	float *ad = buf(n), *g = buf(n), *x = buf(3 * 48), *y = buf(3 * 12),
	      *mk = buf(3 * 48);
	fc_adapter_init(m, ad, 1);
	series(x, 3 * 48, 6);
	series(y, 3 * 12, 7);
	uint64_t r = 1;
	for (int i = 0; i < 3; i++)
		fc_mask_sample(mk + i * 48, 48, 0.33f, 8, &r);
	/* reconstruction only: the calibration and the head get nothing */
	struct fc_batch bt = {NULL, NULL, 0, x, mk, 3, 0.0f, 1.0f};
	struct fc_loss l;
	cr_assert_eq(fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ALL, &l), 0);
	cr_assert_gt(l.recon, 0.0f);
	for (int fam = 0; fam < 4; fam++) {
		size_t off, len;
		double s = 0;
		fc_adapter_family_range(m, 1u << fam, &off, &len);
		cr_assert_gt(len, 0);
		for (size_t i = off; i < off + len; i++)
			s += fabs((double)g[i]);
		if (1u << fam == FC_ADAPT_ENC || 1u << fam == FC_ADAPT_NORM)
			cr_assert_gt(s, 0.0, "family %d has no recon grad",
				     fam);
		else
			cr_assert_eq(s, 0.0, "family %d has recon grad", fam);
	}
	/* forecast only, CALIB selected: everything else is zeroed */
	struct fc_batch bf = {x, y, 3, NULL, NULL, 0, 1.0f, 0.0f};
	cr_assert_eq(fc_loss_grad(m, ad, ws, &bf, g, FC_ADAPT_CALIB, &l), 0);
	size_t off, len;
	fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len);
	double in = 0, out = 0;
	for (size_t i = 0; i < n; i++)
		*(i >= off && i < off + len ? &in : &out) += fabs((double)g[i]);
	cr_assert_gt(in, 0.0);
	cr_assert_eq(out, 0.0);
	/* too many windows, NaN input */
	struct fc_batch big = {x, y, 3, x, mk, 4, 1.0f, 1.0f};
	cr_assert_eq(fc_loss_grad(m, ad, ws, &big, g, FC_ADAPT_ALL, &l),
		     -EINVAL);
	x[5] = NAN;
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 1, y), -EINVAL);
}

Test(model, adapter_steps_reduce_the_recon_loss)
{
	make(FC_BACKBONE_GRU, 8);
	size_t n = fc_adapter_len(m);
	float *ad = buf(n), *g = buf(n), *st = buf(fc_adam_state_len(n));
	float *x = buf(8 * 48), *mk = buf(8 * 48);
	fc_adapter_init(m, ad, 1);
	series(x, 8 * 48, 8);
	uint64_t r = 5;
	for (int i = 0; i < 8; i++)
		fc_mask_sample(mk + i * 48, 48, 0.33f, 8, &r);
	struct fc_batch bt = {NULL, NULL, 0, x, mk, 8, 0.0f, 1.0f};
	struct fc_adam o = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f};
	struct fc_loss l0, l;
	cr_assert_eq(fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ENC, &l0), 0);
	for (int s = 1; s <= 30; s++) {
		cr_assert_eq(fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ENC, &l),
			     0);
		fc_grad_clip(g, n, 1.0f);
		fc_adam_step(&o, ad, g, st, n, s);
	}
	cr_assert_eq(fc_loss_grad(m, NULL, ws, &bt, g, 0, &l), -EINVAL);
	cr_assert_eq(fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ENC, &l), 0);
	cr_assert_lt(l.recon, 0.8f * l0.recon, "recon %g -> %g",
		     (double)l0.recon, (double)l.recon);
}

/* ---- training on a small synthetic dataset ----------------------------- */

static struct fc_dataset *synthetic(void)
{
	static float raw[900 * 2], mean[2] = {0, 0}, sd[2] = {1, 1};
	static char n0[] = "a", n1[] = "b";
	static char *names[2] = {n0, n1};
	static struct fc_dataset d;
	uint64_t r = 11;
	for (int t = 0; t < 900; t++) {
		raw[t * 2] = sinf((float)t * 0.26f) + 0.1f * fc_rng_uniform(&r);
		raw[t * 2 + 1] =
		    cosf((float)t * 0.13f) * 0.5f + 0.1f * fc_rng_uniform(&r);
	}
	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "synthetic");
	d.n_rows = 900;
	d.n_cols = 2;
	d.col_names = names;
	d.raw = raw;
	d.scaled = raw;
	d.mean = mean;
	d.std = sd;
	d.train_end = 600;
	d.val_end = 750;
	return &d;
}

static int count_calls(void *user, const struct fc_train_progress *p)
{
	int *n = user;
	(*n) += p->epoch_done;
	return 0;
}

Test(model, same_seed_same_training_curve, .timeout = 120)
{
	struct fc_config c;
	struct fc_train_config t;
	small_config(&c, FC_BACKBONE_GRU);
	c.n_layers = 1;
	fc_train_config_default(&t);
	t.epochs = 3;
	t.patience = 5;
	t.batch = 32;
	t.epoch_windows = 256;
	struct fc_dataset *d = synthetic();
	struct fc_model *a = NULL, *b = NULL, *cm = NULL;
	struct fc_train_report ra, rb, rc;
	char err[256];
	int epochs = 0;
	cr_assert_eq(fc_train(&c, &t, d, count_calls, &epochs, &a, &ra, err,
			      sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(epochs, 3);
	cr_assert_eq(fc_train(&c, &t, d, NULL, NULL, &b, &rb, err, sizeof(err)),
		     0);
	cr_assert_eq(ra.epochs_run, 3);
	cr_assert_eq(
	    memcmp(ra.train_loss, rb.train_loss, sizeof(ra.train_loss)), 0);
	cr_assert_eq(memcmp(ra.val_mse, rb.val_mse, sizeof(ra.val_mse)), 0);
	cr_assert_lt(ra.train_loss[2], ra.train_loss[0], "does not learn");
	t.seed = 2;
	cr_assert_eq(
	    fc_train(&c, &t, d, NULL, NULL, &cm, &rc, err, sizeof(err)), 0);
	cr_assert_neq(ra.train_loss[0], rc.train_loss[0]);
	/* two worker threads: deterministic, and the same sums up to
	 * rounding */
	struct fc_model *p2 = NULL, *q2 = NULL;
	struct fc_train_report rp, rq;
	t.seed = 1;
	t.threads = 2;
	cr_assert_eq(
	    fc_train(&c, &t, d, NULL, NULL, &p2, &rp, err, sizeof(err)), 0);
	cr_assert_eq(
	    fc_train(&c, &t, d, NULL, NULL, &q2, &rq, err, sizeof(err)), 0);
	cr_assert_eq(rp.threads, 2);
	/* same thread count: the slices' sums are added in a fixed order */
	cr_assert_eq(
	    memcmp(rp.train_loss, rq.train_loss, sizeof(rp.train_loss)), 0);
	/* 1 vs 2 threads: other GEMM shapes and another order of the
	 * gradient sums, carried through 3 epochs of optimizer steps;
	 * rounding stays orders of magnitude below 1e-3 relative, a slice
	 * lost or counted twice does not */
	for (int e = 0; e < 3; e++)
		cr_assert_float_eq(rp.train_loss[e], ra.train_loss[e],
				   1e-3f * ra.train_loss[e],
				   "epoch %d: 2 threads %g, 1 thread %g", e,
				   (double)rp.train_loss[e],
				   (double)ra.train_loss[e]);
	fc_model_free(p2);
	fc_model_free(q2);
	/* the scaler travels with the model */
	const char *const *nm;
	cr_assert_eq(fc_model_scaler(a, NULL, NULL, &nm), 2);
	cr_assert_str_eq(nm[1], "b");
	/* evaluation of the returned model agrees with the report */
	struct fc_workspace *w = NULL;
	double mse, mae;
	cr_assert_eq(fc_workspace_new(a, 16, &w), 0);
	cr_assert_eq(fc_evaluate(a, NULL, w, d, FC_SPLIT_VAL, &mse, &mae), 0);
	/* batches of 16 here, of 64 (twice train.batch) in the training:
	 * other GEMM shapes, so each forecast may differ by a few ulps;
	 * averaged over the split, that is ~1e-7, and 1e-4 (absolute, on
	 * an MSE of order 1) leaves room while a different model would not
	 * fit in it */
	cr_assert_float_eq(mse, (double)ra.best_val_mse, 1e-4);
	fc_workspace_free(w);
	fc_model_free(a);
	fc_model_free(b);
	fc_model_free(cm);
}

float nn_tanh_for_test(float x); /* forecast/nn_layers.c, float build */

Test(model, fast_tanh_matches_libm)
{
	double worst = 0;
	for (int i = -20000; i <= 20000; i++) {
		float x = (float)i * 0.001f;
		double e = fabs((double)nn_tanh_for_test(x) - tanh((double)x));
		if (e > worst)
			worst = e;
	}
	cr_assert_lt(worst, 1e-6, "max error %g", worst);
	cr_assert_eq(nn_tanh_for_test(100.0f), 1.0f);
	cr_assert_eq(nn_tanh_for_test(-100.0f), -1.0f);
}

/* The workspace reuses merged adapter weights only for the same model and
 * an adapter with equal contents. */
Test(model, merged_adapter_cache_follows_contents_and_model)
{
	make(FC_BACKBONE_GRU, 2);
	struct fc_config c;
	char err[256];
	small_config(&c, FC_BACKBONE_GRU);
	struct fc_model *m2 = NULL;
	struct fc_workspace *ws2 = NULL;
	cr_assert_eq(fc_model_new(&c, 77, &m2, err, sizeof(err)), 0);
	cr_assert_eq(fc_workspace_new(m2, 2, &ws2), 0);
	size_t n = fc_adapter_len(m);
	float *ad = buf(n), *x = buf(2 * 48), *y1 = buf(24), *y2 = buf(24),
	      *y3 = buf(24);
	fc_adapter_init(m, ad, 1);
	for (size_t i = 0; i < n; i++)
		ad[i] += 0.05f * (float)((int)(i % 5) - 2);
	series(x, 2 * 48, 9);
	cr_assert_eq(fc_forecast(m, ad, ws, x, 2, y1), 0);
	/* Restored from a saved copy, not by subtracting again: x + 0.5f -
	 * 0.5f need not give back x's bits, and the test is about the cache
	 * following the contents (same bits in, same path, same bits out). */
	const float saved = ad[3];
	ad[3] += 0.5f; /* an embedding LoRA weight, changed in place */
	cr_assert_eq(fc_forecast(m, ad, ws, x, 2, y2), 0);
	cr_assert_neq(memcmp(y1, y2, sizeof(float) * 24), 0);
	ad[3] = saved;
	cr_assert_eq(fc_forecast(m, ad, ws, x, 2, y2), 0);
	cr_assert_eq(memcmp(y1, y2, sizeof(float) * 24), 0);
	/* another model with the same config through the same workspace */
	cr_assert_eq(fc_forecast(m2, ad, ws, x, 2, y2), 0);
	cr_assert_eq(fc_forecast(m2, ad, ws2, x, 2, y3), 0);
	cr_assert_eq(memcmp(y2, y3, sizeof(float) * 24), 0);
	cr_assert_neq(memcmp(y1, y2, sizeof(float) * 24), 0);
	fc_workspace_free(ws2);
	fc_model_free(m2);
}

/* The calibration-only gradient (no backward pass through the model) is
 * the calibration part of the full gradient, for adapters whose other
 * families are initial (the merge-free path) and for adapters with moved
 * LoRA weights (merged). */
/* A batch of 3 forecast windows (x, y) and 3 masked reconstruction windows
 * (the second half of x, mask): x holds 6 lookbacks, y 3 horizons, mask 3
 * lookbacks; series seed and seed + 1, masks drawn from rng. */
static struct fc_batch three_and_three(const struct fc_config *c, float *x,
				       float *y, float *mask, unsigned seed,
				       uint64_t *rng, float wf)
{
	const size_t L = (size_t)c->lookback, H = (size_t)c->horizon;
	series(x, 6 * L, seed);
	series(y, 3 * H, seed + 1);
	for (int i = 0; i < 3; i++)
		fc_mask_sample(mask + i * L, (int)L, 0.33f, c->mask_seg, rng);
	return (struct fc_batch){.xf = x,
				 .yf = y,
				 .bf = 3,
				 .xr = x + 3 * L,
				 .mr = mask,
				 .br = 3,
				 .wf = wf,
				 .wr = 0.5f};
}

static void calib_gradient_shortcut(int backbone)
{
	make(backbone, 6);
	const struct fc_config *c = fc_model_config(m);
	const size_t L = (size_t)c->lookback, H = (size_t)c->horizon;
	size_t A = fc_adapter_len(m), off, len;
	float *x = buf(6 * L), *y = buf(3 * H), *mask = buf(3 * L),
	      *ad = buf(A), *g1 = buf(A), *g2 = buf(A);
	uint64_t rng = 3;
	struct fc_batch bt = three_and_three(c, x, y, mask, 5, &rng, 1.0f);
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	for (int moved = 0; moved < 2; moved++) {
		fc_adapter_init(m, ad, 9);
		for (size_t k = 0; k < len; k++)
			ad[off + k] = 0.3f * fc_rng_uniform(&rng) - 0.15f;
		if (moved) /* a nonzero LoRA B: the merged path */
			for (size_t i = 0; i < fc_adapter_tensor_count(m);
			     i++) {
				const char *name;
				size_t o, n;
				unsigned fam;
				cr_assert_eq(fc_adapter_tensor(m, i, &name, &o,
							       &n, &fam),
					     0);
				if (strstr(name, "lora_b"))
					for (size_t k = 0; k < n; k++)
						ad[o + k] = 0.01f;
			}
		struct fc_loss l1, l2;
		cr_assert_eq(
		    fc_loss_grad(m, ad, ws, &bt, g1, FC_ADAPT_ALL, &l1), 0);
		cr_assert_eq(
		    fc_loss_grad(m, ad, ws, &bt, g2, FC_ADAPT_CALIB, &l2), 0);
		/* the loss: the same forward pass in both, exact; the
		 * gradient: the full backward pass vs the calibration's own
		 * loop, compared to rounding (1e-5 relative: a sum of a few
		 * dozen products per entry) */
		cr_assert_eq(l1.total, l2.total);
		float nrm = 0.0f;
		for (size_t k = 0; k < len; k++)
			nrm += fabsf(g1[off + k]);
		cr_assert_gt(nrm, 0.0f);
		for (size_t k = 0; k < A; k++) {
			bool in = k >= off && k < off + len;
			if (!in)
				cr_assert_eq(g2[k], 0.0f, "entry %zu", k);
			else
				cr_assert_float_eq(
				    g2[k], g1[k], 1e-5f * (1.0f + fabsf(g1[k])),
				    "moved %d entry %zu", moved, k - off);
		}
	}
}

Test(model, calibration_gradient_shortcut_gru)
{
	calib_gradient_shortcut(FC_BACKBONE_GRU);
}

Test(model, calibration_gradient_shortcut_transformer)
{
	calib_gradient_shortcut(FC_BACKBONE_TRANSFORMER);
}

/* The calibration-only fast paths: one frozen pass (fc_loss_raw,
 * fc_forecast_raw) and then any calibration gives the loss, the
 * calibration gradient and the forecasts of the full passes -- the same
 * floats, since the frozen pass had the same rows. */
static void calib_fast_path(int backbone)
{
	make(backbone, 6);
	const struct fc_config *c = fc_model_config(m);
	const size_t L = (size_t)c->lookback, H = (size_t)c->horizon;
	size_t A = fc_adapter_len(m), off, len;
	float *x = buf(6 * L), *y = buf(3 * H), *mask = buf(3 * L),
	      *ad = buf(A), *g1 = buf(A), *g2 = buf(2 * H), *yf1 = buf(6 * H),
	      *yf2 = buf(6 * H), *rfc = buf(6 * H), *rmu = buf(6),
	      *rsd = buf(6);
	struct fc_head_raw raw = {rfc, rmu, rsd};
	uint64_t rng = 5;
	struct fc_batch bt = three_and_three(c, x, y, mask, 7, &rng, 0.7f);
	float recon = NAN;
	cr_assert_eq(fc_loss_raw(m, ws, &bt, &raw, &recon), 0);
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	cr_assert_eq(len, 2 * H);
	for (int trial = 0; trial < 3; trial++) {
		fc_adapter_init(m, ad, 9);
		if (trial > 0) /* trial 0: the identity calibration */
			for (size_t k = 0; k < len; k++)
				ad[off + k] =
				    0.4f * fc_rng_uniform(&rng) - 0.2f;
		const float *cal = ad + off;
		struct fc_loss l1, l2;
		cr_assert_eq(
		    fc_loss_grad(m, ad, ws, &bt, g1, FC_ADAPT_CALIB, &l1), 0);
		cr_assert_eq(fc_calib_loss_grad(m, &raw, y, 3, cal, bt.wf,
						bt.wr, recon, g2, &l2),
			     0);
		/* Exact on purpose: the frozen pass had the same rows, and
		 * calib.c repeats nn_model.c's and model.c's expressions in
		 * their order; neither has target clones, and the x86-64
		 * baseline has no FMA to contract one copy and not the
		 * other, so this holds on every x86-64 CPU. */
		cr_assert_eq(l1.total, l2.total, "trial %d", trial);
		cr_assert_eq(l1.forecast, l2.forecast);
		cr_assert_eq(l1.recon, l2.recon);
		cr_assert_eq(memcmp(g1 + off, g2, sizeof(float) * len), 0,
			     "trial %d: gradient differs", trial);
		/* no gradient asked: the same loss */
		cr_assert_eq(fc_calib_loss_grad(m, &raw, y, 3, cal, bt.wf,
						bt.wr, recon, NULL, &l2),
			     0);
		cr_assert_eq(l1.total, l2.total);
		/* forecasts of the batch's forecast rows: a pass over other
		 * rows (a forecast-only pass over 3 windows) may round
		 * differently */
		cr_assert_eq(fc_forecast(m, ad, ws, x, 3, yf1), 0);
		fc_calib_forecast(m, &raw, 3, cal, yf2);
		for (size_t k = 0; k < 3 * H; k++)
			cr_assert_float_eq(yf1[k], yf2[k],
					   1e-5f * (1.0f + fabsf(yf1[k])));
		/* of 6 windows, from the forecast pass over the same rows */
		cr_assert_eq(fc_forecast(m, ad, ws, x, 6, yf1), 0);
		cr_assert_eq(fc_forecast_raw(m, ws, x, 6, &raw), 0);
		fc_calib_forecast(m, &raw, 6, cal, yf2);
		cr_assert_eq(memcmp(yf1, yf2, sizeof(float) * 6 * H), 0,
			     "trial %d: forecasts differ", trial);
		cr_assert_eq(fc_forecast(m, NULL, ws, x, 6, yf1), 0);
		fc_calib_forecast(m, &raw, 6, NULL, yf2);
		cr_assert_eq(memcmp(yf1, yf2, sizeof(float) * 6 * H), 0);
		cr_assert_eq(fc_loss_raw(m, ws, &bt, &raw, &recon), 0);
	}
	/* bad input is refused as fc_loss_grad refuses it */
	y[1] = NAN;
	struct fc_loss l;
	cr_assert_eq(
	    fc_calib_loss_grad(m, &raw, y, 3, NULL, 1.0f, 0.0f, 0.0f, NULL, &l),
	    -EINVAL);
	cr_assert_eq(fc_loss_raw(m, ws, &bt, &raw, &recon), -EINVAL);
	cr_assert_eq(fc_forecast_raw(m, ws, x, 7, &raw), -EINVAL);
}

Test(model, calibration_fast_path_gru)
{
	calib_fast_path(FC_BACKBONE_GRU);
}

Test(model, calibration_fast_path_transformer)
{
	calib_fast_path(FC_BACKBONE_TRANSFORMER);
}

/* fc_frozen_pass: the windows of many series in slices of the workspace;
 * each window's head output and reconstruction error as a pass over it
 * alone (to rounding), and a window that cannot be forecast comes back
 * as NAN without spoiling the others. */
Test(model, frozen_pass_in_slices)
{
	make(FC_BACKBONE_GRU, 3);
	const struct fc_config *c = fc_model_config(m);
	const size_t L = (size_t)c->lookback, H = (size_t)c->horizon;
	const int bf = 5, br = 4;
	float *xf = buf(bf * L), *xr = buf(br * L), *mr = buf(br * L),
	      *rfc = buf(bf * H), *rmu = buf(bf), *rsd = buf(bf),
	      *one = buf(H + 2), *rs = buf(2 * br);
	double *rsum = (double *)rs;
	int rcnt[4];
	struct fc_head_raw raw = {rfc, rmu, rsd};
	struct fc_head_raw r1 = {one, one + H, one + H + 1};
	series(xf, bf * L, 11);
	series(xr, br * L, 12);
	uint64_t rng = 9;
	for (int i = 0; i < br; i++)
		fc_mask_sample(mr + i * L, (int)L, 0.33f, c->mask_seg, &rng);
	xf[2 * L + 5] = INFINITY; /* window 2 cannot be forecast */
	cr_assert_eq(
	    fc_frozen_pass(m, ws, xf, bf, xr, mr, br, &raw, rsum, rcnt), 0);
	for (int b = 0; b < bf; b++) {
		if (b == 2) {
			cr_assert(isnan(rmu[b]) && isnan(rfc[b * H]));
			cr_assert_eq(fc_forecast_raw(m, ws, xf + b * L, 1, &r1),
				     -EINVAL);
			continue;
		}
		cr_assert_eq(fc_forecast_raw(m, ws, xf + b * L, 1, &r1), 0);
		/* a window's mean and std come from its own values whatever
		 * the batch (exact); its head output from GEMMs of another
		 * shape (to rounding) */
		cr_assert_eq(rmu[b], one[H]);
		cr_assert_eq(rsd[b], one[H + 1]);
		for (size_t j = 0; j < H; j++)
			cr_assert_float_eq(rfc[b * H + j], one[j],
					   1e-5f * (1.0f + fabsf(one[j])),
					   "window %d step %zu", b, j);
	}
	for (int b = 0; b < br; b++) {
		struct fc_batch bt = {
		    .xr = xr + b * L, .mr = mr + b * L, .br = 1, .wr = 1.0f};
		struct fc_loss l;
		cr_assert_eq(
		    fc_loss_grad(m, NULL, ws, &bt, NULL, FC_ADAPT_CALIB, &l),
		    0);
		cr_assert_eq(rcnt[b], (int)lrintf(0.33f * (float)L));
		float lr = (float)(rsum[b] / rcnt[b]);
		cr_assert_float_eq(lr, l.recon, 1e-5f * l.recon, "window %d",
				   b);
	}
	cr_assert_eq(
	    fc_frozen_pass(m, ws, xf, -1, xr, mr, br, &raw, rsum, rcnt),
	    -EINVAL);
}

/* The one FNV-1a (forecast/fnv1a.h): its values are stored (model ids,
 * state-topic hashes), so they may not change.  Its basis is the published
 * one without the last digit; with the published basis, FNV-1a's own test
 * vectors. */
Test(model, fnv1a_values_do_not_change)
{
	cr_assert_eq(fc_fnv1a(FC_FNV1A_INIT, "", 0), 0x14650fb0739d0383ull);
	cr_assert_eq(fc_fnv1a(FC_FNV1A_INIT, "a", 1), 0x44bd8ad473cd9906ull);
	cr_assert_eq(fc_fnv1a_str(FC_FNV1A_INIT, "foobar"),
		     0x88fad7c0a8ff07f2ull);
	cr_assert_eq(fc_fnv1a(14695981039346656037ull, "a", 1),
		     0xaf63dc4c8601ec8cull);
	cr_assert_eq(fc_fnv1a_str(14695981039346656037ull, "foobar"),
		     0x85944171f73967e8ull);
	cr_assert_eq(fc_fnv1a(FC_FNV1A_INIT, "foobar", 6),
		     fc_fnv1a_str(FC_FNV1A_INIT, "foobar"));
}

/* A series whose values vary by little is forecast as the same series at
 * a larger scale: the instance normalisation added an absolute 1e-5 to the
 * variance, so a window of deviation 1e-3 was divided by about 3e-3 and
 * the model saw it almost flat (fc_norm_sd).  Within 1 % of the forecast's
 * range: the small-variance eps (1 % of the variance) and float32's
 * resolution at the offset differ from the unscaled path by less. */
static void scale_free(int backbone)
{
	make(backbone, 1);
	float x[48], xs[48], y[12], ys[12];
	series(x, 48, 5);
	const float k = 1e-3f, off = 7.0f;
	for (int i = 0; i < 48; i++)
		xs[i] = off + k * (x[i] - 3.0f);
	cr_assert_eq(fc_forecast(m, NULL, ws, x, 1, y), 0);
	cr_assert_eq(fc_forecast(m, NULL, ws, xs, 1, ys), 0);
	float lo = y[0], hi = y[0];
	for (int h = 0; h < 12; h++) {
		lo = fminf(lo, y[h]);
		hi = fmaxf(hi, y[h]);
	}
	for (int h = 0; h < 12; h++) {
		float back = (ys[h] - off) / k + 3.0f;
		cr_assert_float_eq(back, y[h], 0.01f * (hi - lo) + 1e-3f,
				   "step %d: %g at scale 1e-3, %g at 1", h,
				   (double)back, (double)y[h]);
	}
}

Test(model, a_series_of_small_variance_is_forecast_at_its_own_scale)
{
	scale_free(FC_BACKBONE_GRU);
	fc_model_free(m), m = NULL;
	fc_workspace_free(ws), ws = NULL;
	scale_free(FC_BACKBONE_TRANSFORMER);
}
