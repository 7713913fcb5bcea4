/*
 * Private to ttt/: what watches an adapter after it was accepted --
 * shadow.c (shadow scoring, rollback, the drift sample) and trust.c (which
 * version a rollback may restore, and the fall-back to the frozen model of
 * a series that keeps failing).
 */
#ifndef DRIFTCAST_TTT_SHADOW_H
#define DRIFTCAST_TTT_SHADOW_H

#include <stdint.h>

struct ttt_engine;
struct series;
struct adstate;
struct fc_head_raw;
struct ttt_event;

/*
 * An adapter state's trust (trust.c).  A version becomes the last good
 * one (the rollback target) only after probation: a copy of the version
 * on probation (ad_pend(), engine_private.h) is scored on the shadow's
 * windows whose origin is at or after the time it was first seen in use;
 * with rollback_window of them whose mean error is no worse than the
 * frozen model's, and no suspicion (a drift alarm or a rollback) while
 * they were collected, it is promoted.  A suspicion drops the version on
 * probation.
 */
struct ttt_trust {
	uint64_t pend_version;	 /* the version on probation */
	int has_pend;		 /* one is */
	int pend_n;		 /* its windows scored so far */
	double pend_sa, pend_ss; /* their summed adapted and frozen MSE */
	int64_t pend_from;	 /* first origin that counts (series time) */
	uint64_t seen_version;	 /* the current version, when first scored */
	int64_t seen_ts;	 /* at this time (series time) */
	int seen;		 /* seen_* are set */
	int fails;		 /* rollbacks and resets since fail_from */
	int64_t fail_from;	 /* the first of them (series time) */
	int paused;		 /* adaptation paused before paused_until */
	int64_t paused_until;	 /* (series time) */
};

/* ---- shadow.c: shadow scoring, rollback, the drift sample ---------------- */

int ttt_shadow_load(const struct ttt_engine *e, const struct series *s,
		    float *x, float *y);
void ttt_shadow_calib(struct ttt_engine *e, const struct adstate *ad,
		      const struct fc_head_raw *raw, float *f, float *a);
/* Score the shadow's window x [L] -> y [H] from the frozen and adapted
 * forecasts f, a (NULL when the pass failed), with raw its frozen head
 * output on the calibration-only fast path (else NULL). */
/* a [H] is overwritten (the published mix) */
void ttt_shadow_score(struct ttt_engine *e, struct series *s, const float *f,
		      float *a, const float *y, const float *x,
		      const struct fc_head_raw *raw);
void ttt_shadow_step(struct ttt_engine *e, struct series *s);
/* s's drift detector starts afresh: a new or restarted series, or
 * ttt.drift changed (the detectors share their memory). */
void ttt_drift_reset(const struct ttt_engine *e, struct series *s);
void ttt_drift_load(const struct ttt_engine *e, const struct series *s,
		    float *x, float *m);
int ttt_drift_update(struct ttt_engine *e, struct series *s, float recon,
		     float *ret_stat);
void ttt_drift_emit(struct ttt_engine *e, struct series *s, float stat,
		    float recon);
int ttt_drift_step(struct ttt_engine *e, struct series *s);

/* ---- trust.c: the rollback target, the fall-back ------------------------- */

/* Score the version on probation (starting one if none) on the shadow's
 * window with origin ts origin (x, raw as ttt_shadow_score; ea, es: the
 * current adapter's and the frozen model's MSE against y); promote it to
 * last good when its probation is complete and it held. */
void ttt_trust_sample(struct ttt_engine *e, struct series *s, int64_t origin,
		      float ea, float es, const float *y, const float *x,
		      const struct fc_head_raw *raw);
/* A suspicion began (drift alarm, rollback, reset): nothing on probation
 * now can be promoted. */
void ttt_trust_suspect(struct adstate *ad);
/* Forget probation, failures and any pause (restore, operator rollback). */
void ttt_trust_restart(struct adstate *ad);
/* Count a rollback or reset of s at its current time; 1 when it makes
 * ttt.fallback_rollbacks within ttt.fallback_within observations (the
 * count starts again), else 0. */
int ttt_trust_failed(const struct ttt_engine *e, struct series *s);
/* Fall back to the frozen model: the anchor becomes current and last
 * good, adaptation pauses for ttt.fallback_pause observations; fills the
 * event's type, trigger and reason. */
void ttt_trust_fall_back(struct ttt_engine *e, struct series *s,
			 struct ttt_event *ev);
/* Adaptation of s is paused (after a fall-back). */
int ttt_trust_paused(const struct ttt_engine *e, const struct series *s);

#endif
