/*
 * One adaptation of a series' adapter: load its windows from the ring
 * (guard, step and reconstruction windows), run the bounded optimizer
 * steps, bound the update, guard it on the held-out windows and accept
 * it as a new version or reject it -- at once (ttt_adapt) or from a
 * deferred frozen pass (queue.c); and ephemeral mode's throwaway
 * adaptation per forecast.
 *
 * Windows.  Values are numbered by their position i since the series
 * (re)started, n values so far (the newest is i = n - 1).  A window with
 * origin i has lookback [i - L + 1, i] and horizon [i + 1, i + H]; it is
 * matured once i + H <= n - 1.  An adaptation at n uses
 *   guard windows (held out):   i = n - 1 - H - j * stride,  j < G
 *   step windows (matured):     i = n - 1 - H - (G + j) * stride, j < M
 *   reconstruction windows:     i = n - 1 - j * stride,  j < Rw
 * all inside the ring.  Matured windows are normalised by their own
 * lookback's mean and std before the loss, so the forecast loss and the
 * guard are scale-free (the model normalises each window the same way, so
 * this changes no forecast).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/ttt.h"

/* ---- forecast errors ------------------------------------------------- */

/* Mean squared error of forecasting b windows x [b, L] against y [b, H]
 * (normalised) with adapter (may be NULL).  NAN on failure. */
float ttt_batch_mse(struct ttt_engine *e, const float *adapter, const float *x,
		    const float *y, int b)
{
	if (fc_forecast(e->m, adapter, e->ws, x, b, e->yh) < 0)
		return NAN;
	return ttt_mse(e->yh, y, (size_t)b * (size_t)e->H);
}

/* ttt_batch_mse on the calibration-only fast path: the frozen head outputs
 * of b windows (raw) calibrated by cal (packed; NULL for the identity)
 * against y [b, H]. */
float ttt_calib_mse(struct ttt_engine *e, const struct fc_head_raw *raw,
		    const float *cal, const float *y, int b)
{
	fc_calib_forecast(e->m, raw, b, cal, e->yh);
	return ttt_mse(e->yh, y, (size_t)b * (size_t)e->H);
}

static float sqdist(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - (double)b[i];
		s += d * d;
	}
	return (float)s;
}

/* ---- adaptation ------------------------------------------------------ */

uint64_t ttt_mask_seed(const struct ttt_engine *e, const struct series *s,
		       uint64_t salt)
{
	uint64_t st = e->p.seed ^ s->hash ^ (salt * 0x9E3779B97F4A7C15ull);
	return fc_rng_next(&st);
}

/*
 * The data part of the objective on batch at the packed candidate c, and
 * with g not NULL its packed gradient: with raw (the calibration-only
 * fast path) from the cached frozen pass over the batch (raw's rows are
 * the batch's forecast windows, recon_s its reconstruction loss), else
 * from a full pass.
 */
static int step_loss(struct ttt_engine *e, const struct fc_batch *batch,
		     const struct fc_head_raw *raw, const float *c, float *g,
		     struct fc_loss *loss)
{
	if (raw)
		return fc_calib_loss_grad(e->m, raw, batch->yf, batch->bf, c,
					  batch->wf, batch->wr, e->recon_s, g,
					  loss);
	unpack(e, e->cand, c);
	int rc = fc_loss_grad(e->m, e->cand, e->ws, batch, g ? e->grad : NULL,
			      e->p.families, loss);
	if (rc == 0 && g)
		pack(e, g, e->grad);
	return rc;
}

/*
 * Run the bounded optimizer steps from the packed candidate e->cc on
 * batch (raw: see step_loss); cc is updated in place.  Returns the loss
 * before the first and after the last step, and the steps taken.
 */
static int run_steps(struct ttt_engine *e, const struct fc_batch *batch,
		     const struct fc_head_raw *raw, float *ret_before,
		     float *ret_after)
{
	const float *anchor = e->anchor;
	float *c = e->cc, *g = e->gc;
	struct fc_adam opt = {e->p.lr, 0.9f, 0.999f, 1e-8f, 0.0f};
	struct fc_loss loss;
	int steps = 0;
	memset(e->adam, 0, 2 * e->n_ad * sizeof(float));
	for (int k = 0; k < e->p.steps; k++) {
		if (step_loss(e, batch, raw, c, g, &loss) < 0)
			return -EINVAL;
		float anc = e->p.w_anchor * sqdist(c, anchor, e->n_ad);
		if (k == 0)
			*ret_before = loss.total + anc;
		for (size_t i = 0; i < e->n_ad; i++)
			g[i] += 2.0f * e->p.w_anchor * (c[i] - anchor[i]);
		fc_grad_clip(g, e->n_ad, e->p.clip);
		fc_adam_step(&opt, c, g, e->adam, e->n_ad, k + 1);
		steps++;
	}
	if (step_loss(e, batch, raw, c, NULL, &loss) < 0)
		return -EINVAL;
	*ret_after = loss.total + e->p.w_anchor * sqdist(c, anchor, e->n_ad);
	if (steps == 0)
		*ret_before = *ret_after;
	return steps;
}

/* Scale the update cand - cur to at most max_update, then the candidate's
 * distance from the anchor to at most max_drift; returns the update's
 * norm. */
static float bound_update(struct ttt_engine *e, const float *cur)
{
	float *c = e->cc;
	const float *anc = e->anchor;
	float norm = sqrtf(sqdist(c, cur, e->n_ad));
	if (norm > e->p.max_update) {
		float f = e->p.max_update / norm;
		for (size_t i = 0; i < e->n_ad; i++)
			c[i] = cur[i] + f * (c[i] - cur[i]);
		norm = e->p.max_update;
	}
	float dist = sqrtf(sqdist(c, anc, e->n_ad));
	if (dist > e->p.max_drift) {
		float f = e->p.max_drift / dist;
		for (size_t i = 0; i < e->n_ad; i++)
			c[i] = anc[i] + f * (c[i] - anc[i]);
		norm = sqrtf(sqdist(c, cur, e->n_ad));
	}
	unpack(e, e->cand, c);
	return norm;
}

/*
 * Load the windows of an adaptation of s into fx, fy, rx, rm (room for
 * guard + step windows, and recon windows); 0 when there is not enough
 * matured data yet (nothing changes), else 1 with the adaptation under
 * way (since_adapt and the mask counter advanced).
 */
int ttt_adapt_load(struct ttt_engine *e, struct series *s,
		   enum ttt_trigger trig, float *fx, float *fy, float *rx,
		   float *rm, struct adapt_job *j)
{
	const int L = e->L, H = e->H, stride = e->p.window_stride;
	const long first = ring_first(e, s), last = s->n - 1;
	int ng = 0, nm = 0, nr = 0;
	long oldest = last;

	for (int k = 0; k < e->p.guard_windows; k++) {
		long i = last - H - (long)k * stride;
		if (i - L + 1 < first)
			break;
		ttt_load_matured(e, s, i, fx + (size_t)ng * L,
				 fy + (size_t)ng * H);
		oldest = i - L + 1;
		ng++;
	}
	if (ng == 0)
		return 0; /* not enough matured data yet: wait */
	s->since_adapt = 0;

	size_t cap = (size_t)e->maxb - (size_t)ng;
	float *sx = fx + (size_t)ng * L, *sy = fy + (size_t)ng * H;
	if (e->p.w_matured > 0.0f) {
		for (int k = 0; k < e->p.step_windows && (size_t)nm < cap;
		     k++) {
			long i =
			    last - H - (long)(e->p.guard_windows + k) * stride;
			if (i - L + 1 < first)
				break;
			ttt_load_matured(e, s, i, sx + (size_t)nm * L,
					 sy + (size_t)nm * H);
			if (i - L + 1 < oldest)
				oldest = i - L + 1;
			nm++;
		}
	}
	if (e->p.w_recon > 0.0f) {
		uint64_t rng = ttt_mask_seed(e, s, s->n_adapt + 1);
		for (int k = 0;
		     k < e->p.recon_windows && (size_t)(nm + nr) < cap; k++) {
			long i = last - (long)k * stride;
			if (i - L + 1 < first)
				break;
			ring_copy(e, s, i - L + 1, L, rx + (size_t)nr * L);
			fc_mask_sample(rm + (size_t)nr * L, L,
				       fc_model_config(e->m)->mask_ratio,
				       fc_model_config(e->m)->mask_seg, &rng);
			if (i - L + 1 < oldest)
				oldest = i - L + 1;
			nr++;
		}
	}
	s->n_adapt++;
	*j = (struct adapt_job){
	    .trig = trig,
	    .ng = ng,
	    .nm = nm,
	    .nr = nr,
	    .data_from = s->last_ts - (int64_t)(last - oldest) * s->step,
	    .fx = fx,
	    .fy = fy,
	    .rx = rx,
	    .rm = rm,
	};
	return 1;
}

/*
 * Steps, bound, guard and decision of the adaptation j of s, and its
 * event.  raw: the calibration-only fast path, the frozen head outputs
 * of j's ng + nm forecast rows with recon the loss of its recon windows
 * (every loss, gradient and guard evaluation comes from them); NULL: the
 * general path (full passes).  t0: when the adaptation's work started.
 */
void ttt_adapt_run(struct ttt_engine *e, struct series *s,
		   const struct adapt_job *j, const struct fc_head_raw *raw,
		   float recon, double t0)
{
	struct adstate *ad = s->ad;
	const int L = e->L, H = e->H, ng = j->ng, nm = j->nm;
	struct ttt_event ev;
	float before = 0, after = 0, g_before, g_after, norm;

	/* this observation's shadow step fell back to the frozen model
	 * (ttt/trust.c), after the adaptation was planned */
	if (ttt_trust_paused(e, s))
		return;
	/* Candidate from the current adapter. */
	memcpy(e->cc, ad->a, e->n_ad * sizeof(float));
	unpack(e, e->cand, e->cc);
	ev_init(&ev, TTT_EV_ADAPT_REJECTED, s);
	ev.trigger = j->trig;
	ev.version_from = ad->version;
	ev.data_until = s->last_ts;
	ev.data_from = j->data_from;
	if (nm + j->nr == 0) {
		ev.reason = "no data for the step batch";
		goto rejected;
	}
	struct fc_batch batch = {
	    .xf = j->fx + (size_t)ng * L,
	    .yf = j->fy + (size_t)ng * H,
	    .bf = nm,
	    .xr = j->rx,
	    .mr = j->rm,
	    .br = j->nr,
	    .wf = e->p.w_matured,
	    .wr = e->p.w_recon,
	};
	struct fc_head_raw raw_s = {0};
	if (raw) {
		raw_s = (struct fc_head_raw){raw->fc + (size_t)ng * H,
					     raw->mu + ng, raw->sd + ng};
		e->recon_s = recon;
	}
	/* Guard error of the current adapter */
	if (raw)
		g_before = ttt_calib_mse(e, raw, ad->identity ? NULL : ad->a,
					 j->fy, ng);
	else
		g_before = ttt_batch_mse(e, expand(e, ad), j->fx, j->fy, ng);
	int steps = run_steps(e, &batch, raw ? &raw_s : NULL, &before, &after);
	if (steps < 0) {
		ev.reason = "loss evaluation failed (non-finite data)";
		goto rejected;
	}
	norm = bound_update(e, ad->a);
	g_after = raw ? ttt_calib_mse(e, raw, e->cc, j->fy, ng)
		      : ttt_batch_mse(e, e->cand, j->fx, j->fy, ng);
	ev.steps = steps;
	ev.loss_before = before;
	ev.loss_after = after;
	ev.guard_before = g_before;
	ev.guard_after = g_after;
	ev.update_norm = norm;
	if (!(norm > 0.0f)) {
		/* e.g. reconstruction only with families it does not reach
		 * (calib): no new version for an unchanged adapter */
		ev.reason = "zero update: no gradient reaches the adapting "
			    "families";
		goto rejected;
	}
	if (!isfinite(g_after) || !isfinite(before) || !isfinite(after)) {
		ev.reason = "non-finite loss";
		goto rejected;
	}
	if (e->p.guard && !(g_after <= g_before * (1.0f + e->p.guard_tol))) {
		ev.reason = "guard: held-out matured error got worse";
		goto rejected;
	}
	/* Accepted: a new version. */
	if (ttt_ad_own(e, ad) < 0) {
		ev.reason = "out of memory for the adapter";
		goto rejected;
	}
	memcpy(ad->a, e->cc, e->n_ad * sizeof(float));
	ttt_avg_update(e, ad);
	ad->identity = 0;
	ad->version = ad->next_version++;
	ev.type = TTT_EV_ADAPT_ACCEPTED;
	ev.version_to = ad->version;
	ev.reason = j->trig == TTT_TRIGGER_DRIFT ? "drift" : "schedule";
	ev.adapter = e->cand;
	ev.adapter_len = e->A;
	ttt_avg_event(e, ad, &ev);
	e->st.accepted++;
	e->st.adapt_seconds += now_seconds() - t0;
	emit(e, &ev);
	return;
rejected:
	ev.version_to = ad->version;
	e->st.rejected++;
	e->st.adapt_seconds += now_seconds() - t0;
	emit(e, &ev);
}

/* An adaptation at once: windows in the scratch (guard and step windows
 * in rows [0, guard + step) of xb/yb, recon windows after them). */
void ttt_adapt(struct ttt_engine *e, struct series *s, enum ttt_trigger trig)
{
	const size_t L = (size_t)e->L;
	const size_t nf = (size_t)(e->p.guard_windows + e->p.step_windows);
	double t0 = now_seconds();
	struct adapt_job j;
	if (!ttt_adapt_load(e, s, trig, e->xb, e->yb, e->xb + nf * L, e->mb,
			    &j))
		return;
	/* Calibration only: the backbone does not depend on the candidate,
	 * so one frozen pass over the guard windows and the step batch
	 * serves every loss, gradient and guard evaluation.  When it fails
	 * (non-finite data), the general path finds out why. */
	const struct fc_head_raw *raw = NULL;
	float recon = 0.0f;
	if (e->fast && j.nm + j.nr > 0) {
		struct fc_batch all = {.xf = j.fx,
				       .yf = j.fy,
				       .bf = j.ng + j.nm,
				       .xr = j.rx,
				       .mr = j.rm,
				       .br = j.nr,
				       .wf = e->p.w_matured,
				       .wr = e->p.w_recon};
		if (fc_loss_raw(e->m, e->ws, &all, &e->raw, &recon) == 0)
			raw = &e->raw;
	}
	ttt_adapt_run(e, s, &j, raw, recon, t0);
}

/* Ephemeral mode: adapt a copy on the current lookback only (masked
 * reconstruction, anchored, bounded), forecast with it into e->out and
 * discard it. */
int ttt_forecast_ephemeral(struct ttt_engine *e, struct series *s)
{
	const int L = e->L;
	float before, after;
	double t0 = now_seconds();
	uint64_t rng = ttt_mask_seed(e, s, (uint64_t)s->n);
	ring_copy(e, s, s->n - L, L, e->xb);
	fc_mask_sample(e->mb, L, fc_model_config(e->m)->mask_ratio,
		       fc_model_config(e->m)->mask_seg, &rng);
	memcpy(e->cc, s->ad->a, e->n_ad * sizeof(float));
	unpack(e, e->cand, e->cc);
	struct fc_batch batch = {.xr = e->xb,
				 .mr = e->mb,
				 .br = 1,
				 .wr =
				     e->p.w_recon > 0.0f ? e->p.w_recon : 1.0f};
	if (run_steps(e, &batch, NULL, &before, &after) >= 0)
		bound_update(e, s->ad->a);
	else
		unpack(e, e->cand, s->ad->a);
	e->st.adapt_seconds += now_seconds() - t0;
	return fc_forecast(e->m, e->cand, e->ws, e->xb, 1, e->out);
}
