/*
 * Deferred forecasts and learning (ttt_engine_defer_forecasts): the queue
 * of forecasts that share one batched pass, each with a snapshot of its
 * series' calibration, and -- with scope series on the calibration-only
 * fast path -- the learning of the queued observations (the plan
 * ttt_learn_decide made for each), whose frozen passes the flush batches
 * before it replays each observation's steps in order.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/ttt.h"

/* Observations whose learning waits for one flush, at most. */
#define TTT_LEARN_MAX 512

/* One queued forecast (ttt_engine_defer_forecasts), and its learning. */
struct qslot {
	const char *key; /* the series' own copy (never freed before the
			    engine) */
	int64_t ts, step;
	float value; /* the value observed at ts (the newest of the window) */
	uint64_t version, tag;
	struct series *ser;	   /* the series (flushed before it is freed) */
	long pos;		   /* the forecast's position in it */
	struct ttt_fresh_in fresh; /* what observe() saw for the corrections */
	/* deferred learning (ttt_learn_enqueue), or s = NULL */
	struct series *s;
	struct learn_plan plan;
	unsigned char fired;	   /* the drift sample fired */
	int shadow_row, drift_row; /* in the learning batch, or -1 */
	int job_ok, job_row, job_rrow;
	float stat, recon; /* the drift sample */
	double t_pass;	   /* the job's share of the passes */
	struct adapt_job job;
};

/* Queued forecasts share one batched pass: the frozen backbone with each
 * window's own output calibration, which is exact when the calibration is
 * the only adapting family (or TTT is off, or the adapter is the
 * identity).  Other families merge into the weights: forecast at once. */
int ttt_deferrable(const struct ttt_engine *e)
{
	if (e->qmax == 0)
		return 0;
	if (!e->p.enabled)
		return 1;
	return e->calib_only && !(e->p.ephemeral && e->p.steps > 0);
}

/* Whether the learning of a queued observation waits for the flush too:
 * on the calibration-only fast path every window it needs is a frozen
 * pass, which does not depend on the state the learning changes, so the
 * windows of many series can share one pass.  Only where series do not
 * share adapters (scope series, the condition for the buffers). */
int ttt_learning_deferrable(const struct ttt_engine *e)
{
	return e->lmax > 0 && e->fast && e->p.enabled && !e->p.ephemeral;
}

void ttt_enqueue_forecast(struct ttt_engine *e, struct series *s,
			  const struct ttt_fresh_in *lin)
{
	const int L = e->L, H = e->H;
	int k = e->qn;
	ring_copy(e, s, s->n - L, L, e->qx + (size_t)k * L);
	float *c = e->qcal + (size_t)k * 2 * H;
	e->qcalp[k] = ttt_publish_calib(e, s, c) ? c : NULL;
	e->qs[k] = (struct qslot){.key = s->key,
				  .ts = s->last_ts,
				  .step = s->step,
				  .value = e->qx[(size_t)k * L + L - 1],
				  .version = s->ad->version,
				  .tag = e->tag,
				  .ser = s,
				  .pos = s->n - 1,
				  .fresh = *lin};
	e->qn++;
}

/* Queue the learning of the observation whose forecast was just queued,
 * as ttt_learn_decide plans it (the series is not observed again before
 * the flush, so nothing the plan read can change before then). */
void ttt_learn_enqueue(struct ttt_engine *e, struct series *s)
{
	struct qslot *q = &e->qs[e->qn - 1];
	struct learn_plan d = ttt_learn_decide(e, s);
	if (!d.shadow && !d.drift && d.adapt == LEARN_ADAPT_NONE)
		return;
	q->s = s;
	q->plan = d;
	q->fired = 0;
	q->job_ok = 0;
	q->shadow_row = q->drift_row = -1;
	s->queued = 1;
	e->ln++;
}

/* Load the windows of q's learning into the learning batch: phase 0 the
 * shadow's window, the drift sample and a scheduled adaptation's windows;
 * phase 1 an adaptation on drift, once the drift sample fired. */
static void learn_load(struct ttt_engine *e, struct qslot *q, int phase)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	struct series *s = q->s;
	if (phase == 0) {
		if (q->plan.shadow &&
		    ttt_shadow_load(e, s, e->lfx + (size_t)e->fc_rows * L,
				    e->lfy + (size_t)e->fc_rows * H))
			q->shadow_row = e->fc_rows++;
		if (q->plan.drift) {
			ttt_drift_load(e, s, e->lrx + (size_t)e->recon_rows * L,
				       e->lrm + (size_t)e->recon_rows * L);
			q->drift_row = e->recon_rows++;
		}
	}
	if (q->plan.adapt !=
		(phase == 0 ? LEARN_ADAPT_SCHEDULE : LEARN_ADAPT_ON_DRIFT) ||
	    (phase == 1 && !q->fired))
		return;
	q->job_row = e->fc_rows;
	q->job_rrow = e->recon_rows;
	q->job_ok = ttt_adapt_load(
	    e, s, phase == 0 ? TTT_TRIGGER_SCHEDULE : TTT_TRIGGER_DRIFT,
	    e->lfx + (size_t)e->fc_rows * L, e->lfy + (size_t)e->fc_rows * H,
	    e->lrx + (size_t)e->recon_rows * L,
	    e->lrm + (size_t)e->recon_rows * L, &q->job);
	if (q->job_ok) {
		e->fc_rows += q->job.ng + q->job.nm;
		e->recon_rows += q->job.nr;
	}
}

/* The frozen pass over the learning rows loaded since rows f0 and r0
 * (forecast and recon); returns its time per row. */
static double learn_pass(struct ttt_engine *e, int f0, int r0)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	int nf = e->fc_rows - f0, nr = e->recon_rows - r0;
	if (nf + nr == 0)
		return 0.0;
	double t0 = now_seconds();
	struct fc_head_raw raw = {e->lraw.fc + (size_t)f0 * H, e->lraw.mu + f0,
				  e->lraw.sd + f0};
	if (fc_frozen_pass(e->m, e->wsq, e->lfx + (size_t)f0 * L, nf,
			   e->lrx + (size_t)r0 * L, e->lrm + (size_t)r0 * L, nr,
			   &raw, e->lrsum + r0, e->lrcnt + r0) < 0) {
		/* cannot happen (the workspace fits); as windows that
		 * failed, every step takes its at-once path's fallback */
		for (int r = f0; r < e->fc_rows; r++)
			e->lraw.mu[r] = NAN;
		for (int r = r0; r < e->recon_rows; r++)
			e->lrsum[r] = NAN;
	}
	return (now_seconds() - t0) / (double)(nf + nr);
}

/* The reconstruction loss of learning recon rows [r0, r0 + n) as nn_loss
 * has it (to rounding: summed per row first); NAN if one failed. */
static float learn_recon(const struct ttt_engine *e, int r0, int n)
{
	double sum = 0.0, cnt = 0.0;
	for (int r = r0; r < r0 + n; r++) {
		sum += e->lrsum[r];
		cnt += (double)e->lrcnt[r];
	}
	if (cnt > 0)
		sum /= cnt;
	return (float)sum;
}

/* Phase 0 and phase 1: every frozen pass the queued learning needs, and
 * the drift detectors fed in between (what fires decides phase 1). */
static void learn_prepare(struct ttt_engine *e, int n)
{
	for (int k = 0; k < n; k++)
		if (e->qs[k].s)
			learn_load(e, &e->qs[k], 0);
	double per_row0 = learn_pass(e, 0, 0);
	int f1 = e->fc_rows, r1 = e->recon_rows;
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (!q->s || q->drift_row < 0)
			continue;
		/* as ttt_drift_step: a failed sample feeds nothing */
		q->recon = learn_recon(e, q->drift_row, 1);
		q->fired = isfinite(q->recon) &&
			   ttt_drift_update(e, q->s, q->recon, &q->stat);
		if (q->plan.adapt == LEARN_ADAPT_ON_DRIFT && q->fired)
			learn_load(e, q, 1);
	}
	double per_row1 = learn_pass(e, f1, r1);
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (q->s && q->job_ok)
			q->t_pass = (q->job_row < f1 ? per_row0 : per_row1) *
				    (double)(q->job.ng + q->job.nm + q->job.nr);
	}
}

/* Steps 3 and 4 of q's observation from the learning batch, in the order
 * learn_now() (engine.c) takes them. */
static void learn_run(struct ttt_engine *e, struct qslot *q)
{
	const size_t H = (size_t)e->H;
	struct series *s = q->s;
	if (q->shadow_row >= 0) {
		size_t r = (size_t)q->shadow_row;
		struct fc_head_raw raw = {e->lraw.fc + r * H, e->lraw.mu + r,
					  e->lraw.sd + r};
		float *f = e->yb, *a = f + H;
		int ok = isfinite(raw.mu[0]); /* else its pass failed */
		if (ok)
			ttt_shadow_calib(e, s->ad, &raw, f, a);
		ttt_shadow_score(e, s, ok ? f : NULL, ok ? a : NULL,
				 e->lfy + r * H, e->lfx + r * (size_t)e->L,
				 &raw);
	}
	if (q->fired)
		ttt_drift_emit(e, s, q->stat, q->recon);
	if (!q->job_ok)
		return;
	/* ttt_adapt(): the general path when the frozen pass of any of the
	 * job's windows failed or its loss is not finite */
	const struct adapt_job *j = &q->job;
	size_t r0 = (size_t)q->job_row, nf = (size_t)(j->ng + j->nm);
	struct fc_head_raw raw = {e->lraw.fc + r0 * H, e->lraw.mu + r0,
				  e->lraw.sd + r0};
	float recon = learn_recon(e, q->job_rrow, j->nr);
	int ok = j->nm + j->nr > 0 && isfinite(recon);
	for (size_t r = 0; ok && r < nf; r++)
		ok = isfinite(raw.mu[r]);
	for (size_t i = 0; ok && i < nf * H; i++)
		ok = isfinite(j->fy[i]);
	ttt_adapt_run(e, s, j, ok ? &raw : NULL, recon,
		      now_seconds() - q->t_pass);
}

int ttt_engine_flush(struct ttt_engine *e)
{
	int n = e->qn, rc;
	if (n == 0)
		return 0;
	e->qn = 0;
	rc = fc_forecast_calibrated(e->m, e->wsq, e->qx, n, e->qcalp, e->qy);
	if (e->ln > 0)
		learn_prepare(e, n);
	/* in the order of the observations, each one's forecast and then
	 * its learning's events, as at once */
	uint64_t tag = e->tag;
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (rc == 0) {
			struct ttt_event ev;
			ev_clear(&ev);
			ev.type = TTT_EV_FORECAST;
			ev.series = q->key;
			ev.ts = q->ts;
			ev.step = q->step;
			ev.value = q->value;
			ev.version_from = ev.version_to = q->version;
			float *fc = e->qy + (size_t)k * e->H;
			ttt_level_publish(e, q->ser, &q->fresh, q->pos, fc);
			ttt_recal_publish(e, q->ser, &q->fresh, q->pos, fc);
			ev.forecast = fc;
			ev.horizon = e->H;
			ev.tag = q->tag;
			e->st.forecasts++;
			if (e->cb)
				e->cb(e->user, &ev);
		}
		if (!q->s)
			continue;
		e->tag = q->tag;
		learn_run(e, q);
		q->s->queued = 0;
	}
	e->tag = tag;
	e->ln = e->fc_rows = e->recon_rows = 0;
	return rc;
}

void ttt_queue_free(struct ttt_engine *e)
{
	fc_workspace_free(e->wsq);
	free(e->qx);
	free(e->qs);
	free(e->qcalp);
	free(e->lfx);
	free(e->lrsum);
	free(e->lrcnt);
	e->wsq = NULL;
	e->qx = NULL;
	e->qs = NULL;
	e->qcalp = NULL;
	e->lfx = NULL;
	e->lrsum = NULL;
	e->lrcnt = NULL;
	e->qmax = 0;
	e->lmax = 0;
}

/* Learning buffers for lmax queued observations: per observation the
 * shadow's window and up to guard + step forecast rows, the drift sample
 * and up to recon_windows recon rows. */
static int learn_alloc(struct ttt_engine *e, int lmax)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	const size_t F =
	    (size_t)lmax * (size_t)(1 + e->p.guard_windows + e->p.step_windows);
	const size_t R = (size_t)lmax * (size_t)(1 + e->p.recon_windows);
	e->lfx = malloc((F * (L + 2 * H + 2) + 2 * R * L) * sizeof(float));
	e->lrsum = malloc(R * sizeof(*e->lrsum));
	e->lrcnt = malloc(R * sizeof(*e->lrcnt));
	if (!e->lfx || !e->lrsum || !e->lrcnt)
		return -ENOMEM;
	e->lfy = e->lfx + F * L;
	e->lraw.fc = e->lfy + F * H;
	e->lraw.mu = e->lraw.fc + F * H;
	e->lraw.sd = e->lraw.mu + F;
	e->lrx = e->lraw.sd + F;
	e->lrm = e->lrx + R * L;
	e->lmax = lmax;
	return 0;
}

int ttt_engine_defer_forecasts(struct ttt_engine *e, int max)
{
	if (max < 0 || max > 65536)
		return -EINVAL;
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	ttt_queue_free(e);
	if (max <= 1)
		return 0;
	size_t L = (size_t)e->L, H = (size_t)e->H, Q = (size_t)max;
	rc = fc_workspace_new(e->m, max, &e->wsq);
	if (rc < 0)
		return rc;
	e->qx = malloc(Q * (L + 3 * H) * sizeof(float));
	e->qs = malloc(Q * sizeof(*e->qs));
	e->qcalp = malloc(Q * sizeof(*e->qcalp));
	if (!e->qx || !e->qs || !e->qcalp ||
	    (e->calib_only && e->p.scope == TTT_SCOPE_SERIES &&
	     learn_alloc(e, max < TTT_LEARN_MAX ? max : TTT_LEARN_MAX) < 0)) {
		ttt_queue_free(e);
		return -ENOMEM;
	}
	e->qcal = e->qx + Q * L;
	e->qy = e->qcal + Q * 2 * H;
	e->qmax = max;
	return 0;
}
