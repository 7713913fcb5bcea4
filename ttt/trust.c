/*
 * What a rollback may restore, and the fall-back of a series that keeps
 * failing: the poisoning defences of shadow.c's rollback (docs/DESIGN.md,
 * "The last good version", "The fall-back").
 *
 * Last good.  An adapter beating the frozen shadow proves little while
 * the series is under attack: the frozen model is wrong on the attacked
 * values too, and a version fitted to them beats it -- and was then
 * restored by every rollback after the attack.  So a version becomes the
 * last good one only after probation: it is scored on the shadow's
 * windows that it had not seen (origin at or after the time it was first
 * scored in use), and with ttt.rollback_window of them whose mean error
 * is no worse than the frozen model's it is promoted -- unless a
 * suspicion began meanwhile (a drift alarm, or the shadow's excess that
 * rolls back or resets), which ends the probation unpromoted.  So the
 * evidence behind the last good version is a full window that ended
 * before any current suspicion began (a suspicion counts as current until
 * a whole window passed without another), and until a version has such
 * evidence the rollback target stays the previous one, or the anchor.
 * One version is on probation at a time: a copy of the current version
 * when none is, scored alongside the current adapter once newer versions
 * replace it (one more forecast per shadow window; none on the
 * calibration-only fast path, which reuses the frozen head output).  A
 * restored adapter is not trusted (its probation is not stored).  An
 * attack longer than a probation that raises no suspicion looks like a
 * change of regime: the fall-back bounds what follows it.
 *
 * Fall-back.  ttt.fallback_rollbacks rollbacks or resets within
 * ttt.fallback_within observations (counted from the first of them) mean
 * adaptation does not work on this series now: it falls back to the
 * frozen model (the anchor becomes current and last good) and adapts
 * again after ttt.fallback_pause observations.  The reset says so
 * (trigger TTT_TRIGGER_FALLBACK, stored as triggered_by = 'fallback').
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/shadow.h"
#include "ttt/ttt.h"

/* The version on probation's MSE on the shadow's window x [L] -> y [H]
 * (NAN when its pass fails): from the frozen head output raw on the
 * calibration-only fast path, else by a full pass. */
static float pend_error(struct ttt_engine *e, const struct adstate *ad,
			const float *y, const float *x,
			const struct fc_head_raw *raw)
{
	float *p = e->yh; /* [H]: free while the shadow scores */
	ttt_halves_get(e, e->pdec, ad_pend(e, ad));
	if (raw) {
		fc_calib_forecast(e->m, raw, 1, e->pdec, p);
	} else {
		unpack(e, e->full, e->pdec);
		if (fc_forecast(e->m, e->full, e->ws, x, 1, p) < 0)
			return NAN;
	}
	return ttt_mse(p, y, (size_t)e->H);
}

void ttt_trust_sample(struct ttt_engine *e, struct series *s, int64_t origin,
		      float ea, float es, const float *y, const float *x,
		      const struct fc_head_raw *raw)
{
	struct adstate *ad = s->ad;
	struct ttt_trust *t = &ad->tr;
	if (ad->identity || !ad_pend(e, ad))
		return;
	if (!t->seen || t->seen_version != ad->version) {
		t->seen = 1;
		t->seen_version = ad->version;
		t->seen_ts = s->last_ts;
	}
	/* (a difference beyond half precision's range, from a restored
	 * adapter, is never a rollback target) */
	if (!t->has_pend && ad->version != ad->good_version &&
	    ttt_halves_put(e, ad_pend(e, ad), ad->a)) {
		t->pend_version = ad->version;
		t->pend_from = t->seen_ts;
		t->pend_n = 0;
		t->pend_sa = t->pend_ss = 0.0;
		t->has_pend = 1;
	}
	if (!t->has_pend || origin < t->pend_from)
		return; /* no version on probation, or a window it saw */
	float ep =
	    t->pend_version == ad->version ? ea : pend_error(e, ad, y, x, raw);
	if (!isfinite(ep))
		return;
	t->pend_sa += (double)ep;
	t->pend_ss += (double)es;
	if (++t->pend_n < e->p.rollback_window)
		return;
	if (t->pend_sa <= t->pend_ss) {
		memcpy(ad_good(e, ad), ad_pend(e, ad),
		       e->n_ad * sizeof(uint16_t));
		ad->good_version = t->pend_version;
		ad->good_identity = 0;
	}
	t->has_pend = 0;
}

void ttt_trust_suspect(struct adstate *ad)
{
	ad->tr.has_pend = 0;
}

void ttt_trust_restart(struct adstate *ad)
{
	ad->tr.has_pend = 0;
	ad->tr.seen = 0;
	ad->tr.fails = 0;
	ad->tr.paused = 0;
}

/* Series time n steps after t, saturating (n and step come from the
 * settings and the data). */
static int64_t steps_after(int64_t t, int64_t n, int64_t step)
{
	double d = (double)t + (double)n * (double)(step > 0 ? step : 1);
	if (d >= 9.2e18)
		return INT64_MAX;
	return t + n * (step > 0 ? step : 1);
}

int ttt_trust_failed(const struct ttt_engine *e, struct series *s)
{
	struct ttt_trust *t = &s->ad->tr;
	int64_t now = s->last_ts;
	if (t->fails == 0 ||
	    now > steps_after(t->fail_from, e->p.fallback_within, s->step)) {
		t->fails = 0;
		t->fail_from = now;
	}
	t->fails++;
	if (e->p.fallback_rollbacks == 0 || t->fails < e->p.fallback_rollbacks)
		return 0;
	t->fails = 0;
	return 1;
}

void ttt_trust_fall_back(struct ttt_engine *e, struct series *s,
			 struct ttt_event *ev)
{
	struct adstate *ad = s->ad;
	ttt_ad_set_anchor(e, ad);
	ad->version = ad->next_version++;
	if (ad_good(e, ad)) /* the anchor */
		memset(ad_good(e, ad), 0, e->n_ad * sizeof(uint16_t));
	ad->good_version = ad->version;
	ad->good_identity = 1;
	ad->tr.has_pend = 0;
	ad->tr.paused = e->p.fallback_pause > 0;
	ad->tr.paused_until =
	    steps_after(s->last_ts, e->p.fallback_pause, s->step);
	ev->type = TTT_EV_RESET;
	ev->trigger = TTT_TRIGGER_FALLBACK;
	ev->reason = "kept failing (ttt.fallback_rollbacks rollbacks or "
		     "resets within ttt.fallback_within observations): the "
		     "frozen model, adaptation paused for ttt.fallback_pause "
		     "observations";
	e->st.resets++;
	e->st.fallbacks++;
}

int ttt_trust_paused(const struct ttt_engine *e, const struct series *s)
{
	(void)e;
	return s->ad->tr.paused && s->last_ts < s->ad->tr.paused_until;
}
