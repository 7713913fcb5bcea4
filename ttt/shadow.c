/*
 * Shadow scoring and rollback, and the drift sample: the signals that
 * watch an adapter after it was accepted.  Every shadow_every
 * observations, the newest matured window is forecast by the current
 * adapter and by the frozen model; both errors feed exponentially weighted
 * means with span rollback_window.  With at least rollback_window
 * samples, an adapter whose mean error exceeds the shadow's by the margin
 * is rolled back (or reset, by policy; to the frozen model when the
 * series keeps failing); which version is the last good one, the
 * rollback target, trust.c decides.  Every drift_every observations, the
 * reconstruction loss of the current lookback feeds the series' drift
 * detector, which may trigger an early adaptation.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/ttt.h"

/* The shadow's window, the newest matured one, into x [L] and y [H]
 * (normalised); 0 when it is not in the ring yet. */
int ttt_shadow_load(const struct ttt_engine *e, const struct series *s,
		    float *x, float *y)
{
	long i = s->n - 1 - e->H;
	if (i - e->L + 1 < ring_first(e, s))
		return 0;
	ttt_load_matured(e, s, i, x, y);
	return 1;
}

/* The shadow window's frozen and adapted forecasts f, a [H] on the
 * calibration-only fast path, from its frozen head output raw (one row). */
void ttt_shadow_calib(struct ttt_engine *e, const struct adstate *ad,
		      const struct fc_head_raw *raw, float *f, float *a)
{
	fc_calib_forecast(e->m, raw, 1, NULL, f);
	if (ad->identity)
		memcpy(a, f, (size_t)e->H * sizeof(float));
	else
		fc_calib_forecast(e->m, raw, 1, ad->a, a);
}

/* Score the shadow's window from the frozen and adapted forecasts f, a
 * (NULL when its pass failed) against y [H]: the record of the realised
 * error, the probation of trust.c (x, raw), tracking, rollback and
 * reset. */
void ttt_shadow_score(struct ttt_engine *e, struct series *s, const float *f,
		      float *a, const float *y, const float *x,
		      const struct fc_head_raw *raw)
{
	struct adstate *ad = s->ad;
	const int H = e->H;
	struct ttt_event ev;
	if (!f || !a)
		return;
	float es = ttt_mse(f, y, (size_t)H), ea = ttt_mse(a, y, (size_t)H);
	if (!isfinite(ea) || !isfinite(es))
		return;
	/* The realised error of the newest matured window, for the record
	 * (storage's errors table): its origin is H steps back, and the
	 * current adapter, combined as it is published, forecasts it. */
	float ep = ea;
	if (ad->avg && !ad->identity) {
		/* what the series publishes is the share of its average */
		ep = ttt_publish_window(e, ad, x, raw, f, a) == 0
			 ? ttt_mse(a, y, (size_t)H)
			 : NAN;
	} else if (e->p.combine_weight != 1.0f) {
		ttt_cmb_mix(e->p.combine_weight, f, a, H);
		ep = ttt_mse(a, y, (size_t)H);
	}
	ev_init(&ev, TTT_EV_REALISED, s);
	ev.ts = s->last_ts - (int64_t)H * s->step;
	ev.version_from = ev.version_to = ad->version;
	ev.adapted_error = ep;
	ev.shadow_error = es;
	ev.horizon = H;
	emit(e, &ev);
	if (ad->identity || ttt_ad_own(e, ad) < 0)
		return;
	float w = 2.0f / ((float)e->p.rollback_window + 1.0f);
	if (ad->n_track == 0) {
		ad->ew_adapt = ea;
		ad->ew_shadow = es;
	} else {
		ad->ew_adapt += w * (ea - ad->ew_adapt);
		ad->ew_shadow += w * (es - ad->ew_shadow);
	}
	if (ad->n_track < INT_MAX) /* only its first rollback_window count */
		ad->n_track++;
	if (ad->n_track < e->p.rollback_window ||
	    ad->ew_adapt <= ad->ew_shadow * (1.0f + e->p.rollback_margin)) {
		/* No excess: the window may vouch for a version (trust.c);
		 * beating the shadow does not make the current one good. */
		ttt_trust_sample(e, s, s->last_ts - (int64_t)H * s->step, ea,
				 es, y, x, raw);
		return;
	}
	/* Realised-worse than the frozen shadow: a suspicion, and fall back
	 * -- to the frozen model when the series keeps failing. */
	ttt_trust_suspect(ad);
	ev_init(&ev, TTT_EV_ROLLBACK, s);
	ev.trigger = TTT_TRIGGER_SHADOW;
	ev.version_from = ad->version;
	ev.adapted_error = ad->ew_adapt;
	ev.shadow_error = ad->ew_shadow;
	if (ttt_trust_failed(e, s)) {
		ttt_trust_fall_back(e, s, &ev);
	} else if (e->p.reset_policy == TTT_RESET_ROLLBACK &&
		   ad->good_version != ad->version) {
		/* The restored content becomes a new version (versions are
		 * immutable; storage links it to its parent). */
		ttt_halves_get(e, ad->a, ad_good(e, ad));
		ttt_avg_reset(e, ad);
		ev.version_restored = ad->good_version;
		ad->version = ad->next_version++;
		ad->identity = ad->good_identity;
		ev.reason = "adapted error above the shadow's: back to the "
			    "last good version";
		e->st.rollbacks++;
	} else if (e->p.reset_policy == TTT_RESET_SOFT) {
		const float *anc = e->anchor;
		for (size_t k = 0; k < e->n_ad; k++)
			ad->a[k] += e->p.reset_alpha * (anc[k] - ad->a[k]);
		ttt_avg_reset(e, ad);
		ad->version = ad->next_version++;
		if (e->p.reset_alpha >= 1.0f)
			ad->identity = 1;
		ev.type = TTT_EV_RESET;
		ev.reason = "adapted error above the shadow's: soft reset "
			    "toward the anchor";
		e->st.resets++;
	} else {
		ttt_ad_set_anchor(e, ad);
		ad->version = ad->next_version++;
		memset(ad_good(e, ad), 0, e->n_ad * sizeof(uint16_t));
		ad->good_version = ad->version;
		ad->good_identity = 1;
		ev.type = TTT_EV_RESET;
		ev.reason = "adapted error above the shadow's: hard reset to "
			    "the anchor";
		e->st.resets++;
	}
	ev.version_to = ad->version;
	ev.adapter = expand(e, ad);
	if (!ev.adapter) {
		memcpy(e->full, e->ident, e->A * sizeof(float));
		ev.adapter = e->full;
	}
	ev.adapter_len = e->A;
	ttt_avg_event(e, ad, &ev);
	ttt_ad_track_reset(ad);
	emit(e, &ev);
}

void ttt_shadow_step(struct ttt_engine *e, struct series *s)
{
	struct adstate *ad = s->ad;
	const size_t H = (size_t)e->H;
	float *f = e->yb + H, *a = f + H; /* scratch rows 1-2 */
	int ok = 0;
	if (!ttt_shadow_load(e, s, e->xb, e->yb))
		return;
	if (e->fast) {
		/* frozen and adapted from one frozen pass: they share the
		 * backbone */
		ok = fc_forecast_raw(e->m, e->ws, e->xb, 1, &e->raw) == 0;
		if (ok)
			ttt_shadow_calib(e, ad, &e->raw, f, a);
	} else {
		ok = fc_forecast(e->m, NULL, e->ws, e->xb, 1, f) == 0 &&
		     (ad->identity ? (memcpy(a, f, H * sizeof(float)), 1)
				   : fc_forecast(e->m, expand(e, ad), e->ws,
						 e->xb, 1, a) == 0);
	}
	ttt_shadow_score(e, s, ok ? f : NULL, ok ? a : NULL, e->yb, e->xb,
			 ok && e->fast ? &e->raw : NULL);
}

/* The drift sample's window, the current lookback, into x [L] with its
 * mask m [L]. */
void ttt_drift_load(const struct ttt_engine *e, const struct series *s,
		    float *x, float *m)
{
	const int L = e->L;
	uint64_t rng = ttt_mask_seed(e, s, ~(uint64_t)s->n);
	ring_copy(e, s, s->n - L, L, x);
	fc_mask_sample(m, L, fc_model_config(e->m)->mask_ratio,
		       fc_model_config(e->m)->mask_seg, &rng);
}

void ttt_drift_reset(const struct ttt_engine *e, struct series *s)
{
	if (e->p.drift == TTT_DRIFT_PH)
		ttt_ph_init(&s->det.ph);
	else
		ttt_adwin_init(&s->det.adwin);
}

/* Feed the drift detector the sampled reconstruction loss; 1 when it
 * fires (*ret_stat: the statistic). */
int ttt_drift_update(struct ttt_engine *e, struct series *s, float recon,
		     float *ret_stat)
{
	*ret_stat = 0.0f;
	if (e->p.drift == TTT_DRIFT_PH)
		return ttt_ph_update(&s->det.ph, recon, e->p.ph_delta,
				     e->p.ph_lambda, ret_stat);
	return ttt_adwin_update(&s->det.adwin, recon, e->p.adwin_delta,
				ret_stat);
}

void ttt_drift_emit(struct ttt_engine *e, struct series *s, float stat,
		    float recon)
{
	struct ttt_event ev;
	ev_init(&ev, TTT_EV_DRIFT, s);
	ev.trigger = TTT_TRIGGER_DRIFT;
	ev.detector_stat = stat;
	ev.loss_after = recon;
	ev.version_from = ev.version_to = s->ad->version;
	ev.reason = e->p.drift == TTT_DRIFT_PH
			? "Page-Hinkley: reconstruction loss rose"
			: "ADWIN: reconstruction loss changed";
	ttt_trust_suspect(s->ad);
	e->st.drifts++;
	emit(e, &ev);
}

/* Sample the reconstruction loss of the current lookback and feed the
 * drift detector; returns 1 when it fires. */
int ttt_drift_step(struct ttt_engine *e, struct series *s)
{
	struct fc_loss loss;
	float stat;
	ttt_drift_load(e, s, e->xb, e->mb);
	struct fc_batch batch = {.xr = e->xb, .mr = e->mb, .br = 1, .wr = 1.0f};
	/* The reconstruction head does not pass through the output
	 * calibration: with calibration-only adapters the frozen pass gives
	 * the same loss without merging the adapter into the weights. */
	if (fc_loss_grad(e->m, e->calib_only ? NULL : expand(e, s->ad), e->ws,
			 &batch, NULL, e->p.families, &loss) < 0)
		return 0;
	if (!ttt_drift_update(e, s, loss.recon, &stat))
		return 0;
	ttt_drift_emit(e, s, stat, loss.recon);
	return 1;
}
