/*
 * The engine object and its entry points: creation (the shared scratch
 * and the active adapter ranges), parameters, statistics, and observe()
 * -- the order of work inside one observation (ttt.h), with the decision
 * of what its learning does (ttt_learn_decide), taken at once here or
 * queued with its forecast (queue.c).  The parts it calls: series.c
 * (series, adapter states, rings), adapt.c (an adaptation), shadow.c
 * (shadow scoring, rollback, the drift sample), queue.c (deferred
 * forecasts and learning); engine_private.h holds their shared state.
 *
 * Calibration only.  The output calibration is the model's last step, so
 * with ttt.families = calib every window the learning needs (the shadow's,
 * the drift sample's, an adaptation's guard, step and recon windows) is a
 * frozen pass that no adapter state changes: an adaptation takes one pass
 * over all its windows and computes its losses, gradients, steps and guard
 * from the head outputs (forecast/'s fc_calib_*), and with deferred
 * forecasts and scope series the learning of queued observations waits
 * for the flush, which batches the passes of all of them (two: the second
 * for adaptations that the drift samples of the first trigger) and then
 * replays each observation's steps in order.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/ttt.h"

/* Values off a series' step (or after a gap too long to fill), of its
 * last 16, at which it is learnt again from the next gap: one stray
 * timestamp costs one value; a wrong step (or a new cadence) about this
 * many and a lookback -- also a multiple of the true step (a second value
 * missing), whose values are every other one off it, and a cadence slowed
 * to a multiple beyond ttt.max_gap. */
#define OFF_STEP_RELEARN 8

/* The ranges of the families in fam, in block order. */
static int active_segments(struct ttt_engine *e, unsigned fam)
{
	e->nseg = 0;
	e->n_ad = 0;
	for (unsigned bit = 1; bit <= FC_ADAPT_CALIB; bit <<= 1) {
		size_t off, len;
		if (!(fam & bit))
			continue;
		if (fc_adapter_family_range(e->m, bit, &off, &len) < 0)
			return -EINVAL;
		if (len == 0)
			continue;
		e->seg_off[e->nseg] = off;
		e->seg_len[e->nseg] = len;
		e->nseg++;
		e->n_ad += len;
	}
	return e->n_ad ? 0 : -EINVAL;
}

int ttt_engine_new(const struct fc_model *m, const struct ttt_params *params,
		   ttt_event_fn cb, void *user, struct ttt_engine **ret,
		   char *errbuf, size_t errbuf_size)
{
	const struct fc_config *c = fc_model_config(m);
	struct ttt_engine *e;
	int rc = ttt_params_check(params, errbuf, errbuf_size);
	if (rc < 0)
		return rc;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->m = m;
	e->p = *params;
	e->cb = cb;
	e->user = user;
	e->L = c->lookback;
	e->H = c->horizon;
	/* the level correction reads its forecasts' first K steps */
	e->K = params->level_steps < e->H ? params->level_steps : e->H;
	/* the recalibration likewise */
	e->KR = params->recal_steps < e->H ? params->recal_steps : e->H;
	e->R = e->L + e->H +
	       (params->guard_windows + params->step_windows) *
		   params->window_stride;
	ttt_series_layout(e);
	if (e->KR > 0)
		e->model_fp = fc_model_fingerprint(m);
	e->A = fc_adapter_len(m);
	if (active_segments(e, params->families) < 0) {
		if (errbuf && errbuf_size)
			snprintf(errbuf, errbuf_size,
				 "ttt.families: the model has no adapter "
				 "weights in the chosen families");
		free(e);
		return -EINVAL;
	}
	/* Scratch rows hold the held-out guard windows and the step batch
	 * side by side, and the calibration-only fast path forecasts them
	 * in one pass. */
	e->maxb = params->recon_windows + params->step_windows +
		  params->guard_windows;
	if (e->maxb < 4)
		e->maxb = 4; /* the shadow's window and three forecasts */
	int wsb = e->maxb;
	rc = fc_workspace_new(m, wsb, &e->ws);
	if (rc < 0) {
		free(e);
		return rc;
	}
	size_t L = (size_t)e->L, H = (size_t)e->H, B = (size_t)e->maxb;
	size_t nfl = 4 * e->A + 7 * e->n_ad + B * L * 2 + B * H * 3 + H + 2 * B;
	e->ident = calloc(nfl, sizeof(float));
	if (!e->ident) {
		ttt_engine_free(e);
		return -ENOMEM;
	}
	e->full = e->ident + e->A;
	e->cand = e->full + e->A;
	e->grad = e->cand + e->A;
	e->adam = e->grad + e->A;
	e->anchor = e->adam + 2 * e->n_ad;
	e->cc = e->anchor + e->n_ad;
	e->gc = e->cc + e->n_ad;
	e->pub = e->gc + e->n_ad;
	e->pdec = e->pub + e->n_ad;
	e->xb = e->pdec + e->n_ad;
	e->mb = e->xb + B * L;
	e->yb = e->mb + B * L;
	e->yh = e->yb + B * H;
	e->out = e->yh + B * H;
	e->rfc = e->out + H;
	e->rmu = e->rfc + B * H;
	e->rsd = e->rmu + B;
	e->raw = (struct fc_head_raw){e->rfc, e->rmu, e->rsd};
	fc_adapter_init(m, e->ident, params->seed);
	memcpy(e->full, e->ident, e->A * sizeof(float));
	memcpy(e->cand, e->ident, e->A * sizeof(float));
	pack(e, e->anchor, e->ident);
	e->calib_only = params->families == FC_ADAPT_CALIB && e->nseg == 1;
	e->fast = e->calib_only;
	e->bytes_shared = sizeof(*e) + nfl * sizeof(float);
	e->st.adapter_params = e->n_ad;
	*ret = e;
	return 0;
}

void ttt_engine_free(struct ttt_engine *e)
{
	if (!e)
		return;
	ttt_series_free_all(e);
	fc_workspace_free(e->ws);
	ttt_queue_free(e);
	free(e->ident);
	free(e);
}

int ttt_engine_set_params(struct ttt_engine *e, const struct ttt_params *p)
{
	struct ttt_params n = *p;
	if (ttt_params_check(p, NULL, 0) < 0)
		return -EINVAL;
	/* queued forecasts were taken under the old settings */
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	/* restart-only settings keep their running values */
	n.scope = e->p.scope;
	n.group_sep = e->p.group_sep;
	n.families = e->p.families;
	n.recon_windows = e->p.recon_windows;
	n.step_windows = e->p.step_windows;
	n.guard_windows = e->p.guard_windows;
	n.window_stride = e->p.window_stride;
	n.level_steps = e->p.level_steps;
	n.recal_steps = e->p.recal_steps;
	n.seed = e->p.seed;
	bool new_detector = n.drift != e->p.drift;
	e->p = n;
	if (new_detector)
		for (size_t i = 0; i < e->series.nb; i++)
			for (struct series *s = e->series.b[i]; s; s = s->next)
				ttt_drift_reset(e, s);
	return 0;
}

int ttt_engine_set_fast_paths(struct ttt_engine *e, int on)
{
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	e->fast = on && e->calib_only;
	return 0;
}

void ttt_engine_set_tag(struct ttt_engine *e, uint64_t tag)
{
	e->tag = tag;
}

void ttt_engine_stats(const struct ttt_engine *e, struct ttt_stats *ret)
{
	*ret = e->st;
	ret->bytes_shared = e->bytes_shared + e->series.nb * sizeof(void *) +
			    e->groups.nb * sizeof(void *);
	ret->adaptations = e->st.accepted + e->st.rejected;
}

/* ---- observe --------------------------------------------------------- */

static void reject_value(struct ttt_engine *e, struct series *s, int64_t ts,
			 float v, const char *why)
{
	struct ttt_event ev;
	ev_init(&ev, TTT_EV_REJECTED_VALUE, s);
	ev.ts = ts;
	ev.value = v;
	ev.reason = why;
	ev.version_from = ev.version_to = s->ad->version;
	e->st.rejected_values++;
	emit(e, &ev);
}

static void ring_push(const struct ttt_engine *e, struct series *s, float v)
{
	s->ring[(size_t)(s->n % e->R)] = v;
	s->n++;
	s->since_adapt++;
	ttt_level_push(e, s);
	ttt_recal_push(e, s);
}

/* Forget the values (a long gap): positions restart at 0. */
static void restart_history(const struct ttt_engine *e, struct series *s)
{
	ttt_level_clear(e, s);
	ttt_recal_clear(e, s);
	s->n = 0;
	s->since_adapt = 0;
	ttt_drift_reset(e, s);
}

/* The one decision of what an observation's learning does; learn_now()
 * and queue.c act on it. */
struct learn_plan ttt_learn_decide(const struct ttt_engine *e,
				   const struct series *s)
{
	struct learn_plan d = {0};
	d.shadow = e->p.shadow_every > 0 && s->n % e->p.shadow_every == 0;
	d.drift = e->p.drift != TTT_DRIFT_NONE && s->n % e->p.drift_every == 0;
	if (e->p.steps > 0 && !ttt_trust_paused(e, s)) {
		if (s->since_adapt >= e->p.every)
			d.adapt = LEARN_ADAPT_SCHEDULE;
		else if (d.drift && s->since_adapt >= e->p.drift_min_gap)
			d.adapt = LEARN_ADAPT_ON_DRIFT;
	}
	return d;
}

/* Steps 3 and 4 of observe() (ttt.h) for s, at once. */
static void learn_now(struct ttt_engine *e, struct series *s)
{
	struct learn_plan d = ttt_learn_decide(e, s);
	if (d.shadow)
		ttt_shadow_step(e, s);
	int fired = d.drift && ttt_drift_step(e, s);
	if (d.adapt == LEARN_ADAPT_SCHEDULE)
		ttt_adapt(e, s, TTT_TRIGGER_SCHEDULE);
	else if (d.adapt == LEARN_ADAPT_ON_DRIFT && fired)
		ttt_adapt(e, s, TTT_TRIGGER_DRIFT);
}

static int observe(struct ttt_engine *e, struct series *s, int64_t ts,
		   float value)
{
	struct ttt_event ev;
	e->st.observations++;

	/* 1. validate and append */
	if (!isfinite(value)) {
		reject_value(e, s, ts, value, "non-finite value");
		return 0;
	}
	if (s->has_ts) {
		int64_t d = ts - s->last_ts;
		if (d == 0) {
			reject_value(e, s, ts, value, "duplicate timestamp");
			return 0;
		}
		if (d < 0) {
			reject_value(e, s, ts, value,
				     "late value (timestamp before the last)");
			return 0;
		}
		if (s->step == 0 || s->relearn)
			s->step = d;
		s->relearn = 0;
		int off = d % s->step != 0;
		/* a gap too long to fill counts as well: a cadence slowed to
		 * a multiple of the step restarted the history at every value
		 * and was never forecast */
		int lost = off || (d / s->step - 1 > e->p.max_gap);
		s->off_bits = (uint16_t)(s->off_bits << 1 | (unsigned)lost);
		int relearn =
		    __builtin_popcount(s->off_bits) >= OFF_STEP_RELEARN;
		if (off && !relearn) {
			reject_value(e, s, ts, value,
				     "timestamp not on the series' step");
			return 0;
		}
		if (relearn) {
			/* the step was learnt from a wrong first gap (a
			 * clock not yet set, a late second value) or the
			 * cadence changed: from this value, learnt again */
			ev_init(&ev, TTT_EV_GAP_FILLED, s);
			ev.ts = ts;
			ev.filled = 0;
			ev.reason = "values off the series' step (or after "
				    "long gaps): history restarted, step "
				    "learnt again";
			ev.version_from = ev.version_to = s->ad->version;
			restart_history(e, s);
			/* the old step stays until the next gap gives the
			 * new one: the saved recent values (one, now) keep a
			 * step */
			s->relearn = 1;
			s->off_bits = 0;
			e->st.gap_filled++;
			emit(e, &ev);
			goto append;
		}
		int64_t missing = d / s->step - 1;
		if (missing > 0 && missing <= e->p.max_gap && s->n > 0) {
			float v0 = s->ring[(size_t)((s->n - 1) % e->R)];
			for (int64_t k = 1; k <= missing; k++)
				ring_push(e, s,
					  v0 + (value - v0) * (float)k /
						   (float)(missing + 1));
			ev_init(&ev, TTT_EV_GAP_FILLED, s);
			ev.ts = ts;
			ev.filled = (int)missing;
			ev.reason = "short gap filled by linear interpolation";
			ev.version_from = ev.version_to = s->ad->version;
			e->st.gap_filled++;
			emit(e, &ev);
		} else if (missing > 0) {
			restart_history(e, s);
			ev_init(&ev, TTT_EV_GAP_FILLED, s);
			ev.ts = ts;
			ev.filled = 0;
			ev.reason = "gap longer than ttt.max_gap: history "
				    "restarted";
			ev.version_from = ev.version_to = s->ad->version;
			e->st.gap_filled++;
			emit(e, &ev);
		}
	}
append:
	s->has_ts = 1;
	s->last_ts = ts;
	ring_push(e, s, value);
	ttt_series_changed(e, s);
	if (s->n < e->L)
		return 0;

	/* 2. forecast, emitted (or queued with a snapshot of the adapter)
	 * before anything can learn from this value */
	int rc, queued = 0;
	struct ttt_fresh_in lin = ttt_level_observe(e, s);
	ttt_recal_observe(e, s, &lin);
	if (ttt_deferrable(e)) {
		ttt_enqueue_forecast(e, s, &lin);
		queued = 1;
		goto learn;
	}
	if (e->p.enabled && e->p.ephemeral && e->p.steps > 0)
		rc = ttt_forecast_ephemeral(e, s);
	else {
		ring_copy(e, s, s->n - e->L, e->L, e->xb);
		rc = ttt_publish_forecast(e, s, e->xb, e->out);
	}
	if (rc < 0)
		return rc;
	ttt_level_publish(e, s, &lin, s->n - 1, e->out);
	ttt_recal_publish(e, s, &lin, s->n - 1, e->out);
	e->st.forecasts++;
	ev_init(&ev, TTT_EV_FORECAST, s);
	ev.value = value;
	ev.forecast = e->out;
	ev.horizon = e->H;
	ev.version_from = ev.version_to = s->ad->version;
	emit(e, &ev);
learn:
	/* 3. shadow scoring and drift sampling; 4. adapt on schedule or
	 * early on drift -- at once, or queued with the forecast */
	if (e->p.enabled && !e->p.ephemeral) {
		if (queued && ttt_learning_deferrable(e))
			ttt_learn_enqueue(e, s);
		else
			learn_now(e, s);
	}
	if (queued && (e->qn == e->qmax || (e->lmax && e->ln == e->lmax)))
		return ttt_engine_flush(e);
	return 0;
}

void ttt_engine_set_max_series(struct ttt_engine *e, size_t n)
{
	e->max_series = n;
}

int ttt_engine_observe(struct ttt_engine *e, const char *key, int64_t ts,
		       float value)
{
	struct series *s;
	if (!key || !*key)
		return -EINVAL;
	s = ttt_series_get(e, key, true);
	if (!s)
		return ttt_series_refused(e);
	/* its queued learning first: this value must not reach it, and the
	 * series' events stay in order */
	int frc = s->queued ? ttt_engine_flush(e) : 0;
	int rc = observe(e, s, ts, value);
	return rc < 0 ? rc : frc;
}
