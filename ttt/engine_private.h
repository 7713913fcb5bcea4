/*
 * Private to ttt/: the engine's state, shared by the files that split its
 * work -- engine.c (the object, observe() and the learning decision),
 * series.c (series, adapter states, rings), adapt.c (an adaptation),
 * shadow.c and trust.c (shadow scoring, rollback, the drift sample:
 * shadow.h) and queue.c (deferred forecasts and learning) -- and the
 * helpers they all use.
 */
#ifndef DRIFTCAST_TTT_ENGINE_PRIVATE_H
#define DRIFTCAST_TTT_ENGINE_PRIVATE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "ttt/combine.h"
#include "ttt/internal.h"
#include "ttt/shadow.h"
#include "ttt/ttt.h"

struct adstate {
	struct adstate *next; /* hash chain (group and global scope) */
	/* [n_ad] current, active range: the anchor until it first changes,
	 * then its own block, followed by the last good version and the
	 * version on probation as half-precision differences from the anchor
	 * (combine.h; ad_good(), ad_pend()) */
	float *a;
	/* [n_ad] with ttt.average_rate > 0 (else NULL): the running average
	 * of the accepted versions that the series publishes, the same way,
	 * after those two */
	uint16_t *avg;
	uint64_t version, good_version, next_version;
	int identity;	   /* a is the anchor: forecast with the frozen path */
	int good_identity; /* good is the anchor */
	float ew_adapt, ew_shadow;
	int n_track;
	struct ttt_trust tr; /* what a rollback may restore (shadow.h) */
	size_t bytes;
	char key[];
};

/* A series' level correction (level.c): the weighted sums of the errors,
 * their squares and the weights, what the corrections gained, the
 * forecasts published with it off, the flag the newest value replaced;
 * then [2K] slots (forecast means, then the corrections they published)
 * and [K] flag bytes. */
struct level {
	double m, q, w, gain;
	long off;
	int prev;
	float slot[];
};

/* A series' recalibration (recal.c): the weighted sums of f^2, f, the
 * weights, f r and r; what its corrections gained and the r^2 they were
 * judged against; whether position n - 1 - K had a forecast; then the
 * K steps' rings of kept forecasts, [K][2] corrections and [K] flags. */
struct recal {
	double sum[5];
	double gain, energy;
	int prev;
	float slot[];
};

/* One later segment's judge of a series' recalibration (recal.c): what
 * the corrections gained on the segment's middle step and the r^2 they
 * were judged against, then the ring of that step's forecasts from every
 * RECAL_EVERY-th origin (tag: origin + 1; 0: none). */
struct recal_pair {
	float f, g;
	uint32_t tag;
};
struct recal_seg {
	double gain, energy;
	struct recal_pair slot[];
};

/* Where a later segment's steps are and its judge's state lies. */
struct recal_geo {
	int s0, s1, m, nslot;
	size_t off; /* from the series' struct recal */
};
#define RECAL_MAX_SEGS 6

struct series {
	struct series *next; /* hash chain */
	struct adstate *ad;
	float *ring; /* [R] */
	int64_t last_ts, step;
	long n;		  /* values since the series (re)started */
	long since_adapt; /* values since the last adaptation */
	uint64_t n_adapt; /* adaptations so far (mask seeds) */
	uint64_t hash;
	unsigned char has_ts;
	unsigned char queued; /* learning waits in the queue (flush first) */
	/* on the engine's list of series whose recent values changed since
	 * ttt_engine_recent_saved (chg_prev, chg_next) */
	unsigned char changed;
	/* the step is learnt again from the next gap (engine.c) */
	unsigned char relearn;
	/* of the last 16 values, those off the step (a bit each, newest
	 * lowest): at OFF_STEP_RELEARN of them the step is learnt again */
	uint16_t off_bits;
	union { /* the drift detector of ttt.drift (ttt_drift_reset) */
		struct ttt_ph ph;
		struct ttt_adwin adwin;
	} det;
	struct series *chg_prev, *chg_next;
	size_t bytes;
	char key[];
};

/*
 * One adaptation's windows: ng guard windows (held out) then nm matured
 * step windows as forecast rows fx [ng + nm, L] with their horizons fy
 * [ng + nm, H], and nr reconstruction windows rx [nr, L] with masks rm
 * [nr, L] -- wherever the caller put them (the scratch for an adaptation
 * at once, the learning batch for a deferred one).
 */
struct adapt_job {
	enum ttt_trigger trig;
	int ng, nm, nr;
	int64_t data_from;
	float *fx, *fy, *rx, *rm;
};

/*
 * What steps 3 and 4 of observe() (ttt.h) do for one observation, decided
 * by ttt_learn_decide() when it is fed and acted on at once (engine.c) or
 * at the flush (queue.c).
 */
enum learn_adapt {
	LEARN_ADAPT_NONE = 0,
	LEARN_ADAPT_SCHEDULE, /* adapt on schedule */
	LEARN_ADAPT_ON_DRIFT, /* adapt if the drift sample fires */
};
struct learn_plan {
	unsigned char shadow; /* score the shadow */
	unsigned char drift;  /* sample the drift detector */
	unsigned char adapt;  /* enum learn_adapt */
};

struct qslot;
struct table {
	void **b; /* buckets; entries chain through their first member */
	size_t nb, count;
};

struct ttt_engine {
	const struct fc_model *m;
	struct ttt_params p;
	size_t max_series; /* 0: no limit (ttt_engine_set_max_series) */
	ttt_event_fn cb;
	void *user;
	int L, H, R;
	int K;				       /* ttt.level_steps (level.c) */
	int KR;				       /* ttt.recal_steps (recal.c) */
	struct recal_geo rseg[RECAL_MAX_SEGS]; /* its later segments */
	int nrseg;
	/* a series' allocation after its key: the ring, then the level
	 * correction's and the recalibration's state (ttt_series_layout) */
	size_t lv_off, rc_off, tail_bytes;
	uint64_t model_fp; /* fc_model_fingerprint, with the recalibration */
	size_t A;	   /* fc_adapter_len */
	size_t seg_off[4], seg_len[4]; /* active family ranges in the block */
	int nseg;
	size_t n_ad; /* floats in the active ranges, packed */
	int maxb;
	struct table series, groups;
	struct series *changed; /* recent values changed since saved */
	struct adstate *global;
	struct fc_workspace *ws;
	/* scratch, once per engine */
	float *ident;  /* [A] the anchor (identity adapter) */
	float *full;   /* [A] expanded current adapter */
	float *cand;   /* [A] expanded candidate */
	float *grad;   /* [A] */
	float *adam;   /* [2 n_ad] */
	float *anchor; /* [n_ad] the identity, packed */
	float *cc;     /* [n_ad] candidate, packed */
	float *gc;     /* [n_ad] its gradient, packed */
	float *pub;    /* [n_ad] a published average, decoded */
	float *pdec;   /* [n_ad] the version on probation, decoded */
	float *xb;     /* [maxb, L] */
	float *yb;     /* [maxb, H] */
	float *mb;     /* [maxb, L] masks */
	float *yh;     /* [maxb, H] */
	float *out;    /* [H] last forecast */
	/* The calibration-only fast paths (fast = calib_only unless a test
	 * turns them off): an adaptation's frozen pass, its head outputs
	 * (rows as in xb) and the step batch's reconstruction loss. */
	int fast;
	struct fc_head_raw raw; /* into the three below */
	float *rfc;		/* [maxb, H] */
	float *rmu;		/* [maxb] */
	float *rsd;		/* [maxb] */
	float recon_s;
	/* Deferred forecasts (ttt_engine_defer_forecasts): up to qmax queued
	 * windows with a snapshot of their calibration, forecast together by
	 * ttt_engine_flush(). */
	int qmax, qn;
	uint64_t tag; /* ttt_engine_set_tag(), copied into events */
	struct fc_workspace *wsq;
	float *qx;	     /* [qmax, L] lookbacks */
	float *qcal;	     /* [qmax, 2H] calibration snapshots */
	const float **qcalp; /* [qmax] into qcal, or NULL (identity) */
	float *qy;	     /* [qmax, H] */
	struct qslot *qs;    /* [qmax] (queue.c) */
	/* Deferred learning (ttt_engine_defer_forecasts, with scope series
	 * and the calibration only): the steps 3 and 4 of up to lmax queued
	 * observations (ln so far) wait for the flush, which runs the
	 * frozen passes of all their windows together (fc_rows forecast
	 * rows with horizons, recon_rows reconstruction rows loaded). */
	int lmax, ln, fc_rows, recon_rows;
	float *lfx;		 /* [lmax (1 + G + M), L]; G guard, M step */
	float *lfy;		 /* [lmax (1 + G + M), H] */
	struct fc_head_raw lraw; /* their rows */
	float *lrx;		 /* [lmax (1 + Rw), L]; Rw recon windows */
	float *lrm;		 /* [lmax (1 + Rw), L] masks */
	double *lrsum;		 /* [lmax (1 + Rw)] */
	int *lrcnt;		 /* [lmax (1 + Rw)] */
	int calib_only; /* the adapting families are the calibration only */
	struct ttt_stats st;
	size_t bytes_shared;
};

/* ---- small helpers every part uses --------------------------------------- */

/* ad's last good version and its version on probation (trust.c), in its
 * own block after the current version (ttt_ad_own); NULL while ad shares
 * the anchor. */
static inline uint16_t *ad_good(const struct ttt_engine *e,
				const struct adstate *ad)
{
	return ad->a == e->anchor ? NULL
				  : (uint16_t *)(void *)(ad->a + e->n_ad);
}
static inline uint16_t *ad_pend(const struct ttt_engine *e,
				const struct adstate *ad)
{
	return ad->a == e->anchor ? NULL : ad_good(e, ad) + e->n_ad;
}
static inline void emit(struct ttt_engine *e, struct ttt_event *ev)
{
	ev->tag = e->tag;
	if (e->cb)
		e->cb(e->user, ev);
}

/* An event with nothing set: what it does not measure is NaN (NULL in the
 * audit log), not a 0 that reads as a measurement. */
static inline void ev_clear(struct ttt_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->loss_before = ev->loss_after = NAN;
	ev->guard_before = ev->guard_after = NAN;
	ev->update_norm = NAN;
	ev->adapted_error = ev->shadow_error = NAN;
	ev->value = ev->detector_stat = NAN;
}

static inline void ev_init(struct ttt_event *ev, enum ttt_event_type type,
			   const struct series *s)
{
	ev_clear(ev);
	ev->type = type;
	ev->series = s->key;
	ev->ts = s->last_ts;
	ev->step = s->step;
}

/* Full block -> packed active part, and back. */
static inline void pack(const struct ttt_engine *e, float *dst,
			const float *full)
{
	for (int i = 0; i < e->nseg; i++) {
		memcpy(dst, full + e->seg_off[i],
		       e->seg_len[i] * sizeof(float));
		dst += e->seg_len[i];
	}
}

static inline void unpack(const struct ttt_engine *e, float *full,
			  const float *src)
{
	for (int i = 0; i < e->nseg; i++) {
		memcpy(full + e->seg_off[i], src,
		       e->seg_len[i] * sizeof(float));
		src += e->seg_len[i];
	}
}

/* The adapter block to forecast with for ad: NULL for the identity
 * (bit-identical to the frozen model, and cheaper), else e->full. */
static inline const float *expand(struct ttt_engine *e,
				  const struct adstate *ad)
{
	if (ad->identity)
		return NULL;
	unpack(e, e->full, ad->a);
	return e->full;
}

/* Copy values [i0, i0 + len) (positions since restart) into dst. */
static inline void ring_copy(const struct ttt_engine *e, const struct series *s,
			     long i0, int len, float *dst)
{
	for (int k = 0; k < len; k++)
		dst[k] = s->ring[(size_t)((i0 + k) % e->R)];
}

/* Oldest position still in the ring. */
static inline long ring_first(const struct ttt_engine *e,
			      const struct series *s)
{
	return s->n > e->R ? s->n - e->R : 0;
}

static inline double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- level.c: the level correction ------------------------------------ */

/* What the corrections from the freshest errors need from the values,
 * taken when a forecast's origin is observed (so that a forecast published
 * later from a batch sees what one published at once sees).  The level
 * correction's (level.c): whether the forecast K positions before exists,
 * and the mean of the K values since then.  The recalibration's (recal.c):
 * the value at the origin, and bit h set if the forecast made h + 1
 * positions before exists. */
struct ttt_fresh_in {
	int valid;
	double ymean;
	float y;
	uint64_t rmask;
};
/* No position of s had a forecast (positions restart). */
void ttt_level_clear(const struct ttt_engine *e, struct series *s);
/* ... and its sums start afresh (correction 0 until they fill again). */
void ttt_level_reset(const struct ttt_engine *e, struct series *s);
/* After every value pushed into s's ring (at position s->n - 1). */
void ttt_level_push(const struct ttt_engine *e, struct series *s);
/* At the origin s->n - 1 of a forecast about to be made. */
struct ttt_fresh_in ttt_level_observe(const struct ttt_engine *e,
				      struct series *s);
/* fc [H], the forecast s made at position pos before the correction, in
 * the order the forecasts were made: the error of the forecast made K
 * positions before enters the sums, fc's first K steps are kept for K
 * positions later, and the correction is added to every step. */
void ttt_level_publish(const struct ttt_engine *e, struct series *s,
		       const struct ttt_fresh_in *in, long pos, float *fc);

/* ---- recal.c: the recalibration --------------------------------------- */

/* The layout of a series' recalibration state (e->rseg, nrseg); returns
 * its bytes, 0 when off. */
size_t ttt_recal_layout(struct ttt_engine *e);
/* As ttt_level_clear, ttt_level_reset and ttt_level_push. */
void ttt_recal_clear(const struct ttt_engine *e, struct series *s);
void ttt_recal_reset(const struct ttt_engine *e, struct series *s);
void ttt_recal_push(const struct ttt_engine *e, struct series *s);
/* At the origin s->n - 1 of a forecast about to be made: fills in's
 * value and flags. */
void ttt_recal_observe(const struct ttt_engine *e, struct series *s,
		       struct ttt_fresh_in *in);
/* fc [H], the forecast s made at position pos (after the level
 * correction), in the order the forecasts were made: the pairs the value
 * at pos completes enter the sums and the judgement, fc's first K steps
 * are kept, and the correction is added while it is judged to pay. */
void ttt_recal_publish(const struct ttt_engine *e, struct series *s,
		       const struct ttt_fresh_in *in, long pos, float *fc);

/* A series' recalibration as saved with its recent values (ttt_recent):
 * bytes of ttt_recal_save's output, 0 when off. */
size_t ttt_recal_saved_len(const struct ttt_engine *e);
void ttt_recal_save(const struct ttt_engine *e, const struct series *s,
		    void *out);
/* Whether this engine takes a saved state in [len] back at position pos:
 * 1 yes; 0 made by another layout or model; -EINVAL its content is not
 * one this engine could have made; -ENOMEM. */
int ttt_recal_fits(const struct ttt_engine *e, const void *in, size_t len,
		   long pos);
/* Take a state that fits into s. */
void ttt_recal_take(const struct ttt_engine *e, struct series *s,
		    const void *in);

/* ---- series.c: series, adapter states, windows --------------------------- */

/* Series key, created on first sight (with its adapter state); NULL when
 * out of memory, or when capped and max_series are there. */
struct series *ttt_series_get(struct ttt_engine *e, const char *key,
			      bool capped);
/* Why a capped ttt_series_get returned NULL: -ENOSPC (max_series reached)
 * or -ENOMEM. */
int ttt_series_refused(const struct ttt_engine *e);
/* The layout of every series' ring and correction states (e->lv_off,
 * rc_off, tail_bytes), from L, H, R, K and KR; once, when the engine is
 * made. */
void ttt_series_layout(struct ttt_engine *e);
/* s's recent values changed: onto the list ttt_engine_each_changed_recent
 * walks (once). */
void ttt_series_changed(struct ttt_engine *e, struct series *s);
/* Free every series and adapter state. */
void ttt_series_free_all(struct ttt_engine *e);
/* Give ad its own current and last-good blocks (copies of the anchor)
 * before they are written; 0 or -ENOMEM. */
int ttt_ad_own(struct ttt_engine *e, struct adstate *ad);
void ttt_ad_set_anchor(struct ttt_engine *e, struct adstate *ad);
void ttt_ad_track_reset(struct adstate *ad);
/* Load the matured window with origin i into x [L] and y [H], both
 * normalised by the lookback's mean and std. */
void ttt_load_matured(const struct ttt_engine *e, const struct series *s,
		      long i, float *x, float *y);

/* ---- adapt.c: an adaptation ---------------------------------------------- */

uint64_t ttt_mask_seed(const struct ttt_engine *e, const struct series *s,
		       uint64_t salt);
/* Forecast MSE of b windows x [b, L] against y [b, H] with adapter (may
 * be NULL), by a full pass; NAN on failure. */
float ttt_batch_mse(struct ttt_engine *e, const float *adapter, const float *x,
		    const float *y, int b);
/* The same on the calibration-only fast path, from the frozen head
 * outputs raw of the b windows and the packed calibration cal (NULL: the
 * identity). */
float ttt_calib_mse(struct ttt_engine *e, const struct fc_head_raw *raw,
		    const float *cal, const float *y, int b);
/* Load an adaptation's windows into fx, fy, rx, rm and describe them in
 * *j; 0 when there is not enough matured data yet (nothing changes). */
int ttt_adapt_load(struct ttt_engine *e, struct series *s,
		   enum ttt_trigger trig, float *fx, float *fy, float *rx,
		   float *rm, struct adapt_job *j);
/* Steps, bound, guard, decision and event of the adaptation j. */
void ttt_adapt_run(struct ttt_engine *e, struct series *s,
		   const struct adapt_job *j, const struct fc_head_raw *raw,
		   float recon, double t0);
/* An adaptation of s at once. */
void ttt_adapt(struct ttt_engine *e, struct series *s, enum ttt_trigger trig);
/* Ephemeral mode's forecast of s into e->out; 0 or a negative errno. */
int ttt_forecast_ephemeral(struct ttt_engine *e, struct series *s);

/* shadow.c and trust.c: ttt/shadow.h */

/* ---- engine.c and queue.c: an observation's learning, deferred forecasts */

/* What steps 3 and 4 will do for s's newest observation (nothing they do
 * changes what this reads, so it can be decided before any of it). */
struct learn_plan ttt_learn_decide(const struct ttt_engine *e,
				   const struct series *s);
int ttt_deferrable(const struct ttt_engine *e);
int ttt_learning_deferrable(const struct ttt_engine *e);
void ttt_enqueue_forecast(struct ttt_engine *e, struct series *s,
			  const struct ttt_fresh_in *lin);
void ttt_learn_enqueue(struct ttt_engine *e, struct series *s);
void ttt_queue_free(struct ttt_engine *e);

#endif
