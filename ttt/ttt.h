/*
 * ttt: the per-series online loop -- ring buffers, masking, the adaptation
 * schedule, drift detection, the guard, shadow scoring and rollback -- and
 * the causal evaluator.  No I/O, no logging: results come back as status
 * codes and as events through a callback.  One engine serves many series
 * with one shared base model (forecast/); each series owns a ring of its
 * recent values and, by ttt.scope, an adapter block (or shares one per
 * group or globally).  The daemon calls ttt_engine_observe() per value;
 * ttt_eval_run() replays a dataset through the very same calls.
 *
 * Order of work inside one observe() call (what makes the online loop
 * causal, and what tests/ttt checks):
 *   1. validate and append the value (gaps, duplicates, late values);
 *   2. forecast from the last L values with the current adapter and emit
 *      TTT_EV_FORECAST -- before anything below can use this value;
 *   3. shadow scoring on a matured window (an adapter worse than the
 *      frozen model is rolled back or reset), drift sampling;
 *   4. maybe adapt (schedule or drift), guard, accept/reject.
 * So an update at t reads only values up to t, and no window is forecast
 * by a state that has seen its horizon. */
#ifndef DRIFTCAST_TTT_H
#define DRIFTCAST_TTT_H

#include <stddef.h>
#include <stdint.h>

#include "forecast/forecast.h" /* struct fc_model, fc_dataset, fc_split */

enum ttt_event_type {
	TTT_EV_FORECAST = 0,   /* a forecast was issued */
	TTT_EV_ADAPT_ACCEPTED, /* a candidate update passed the guard */
	TTT_EV_ADAPT_REJECTED, /* a candidate update failed the guard */
	TTT_EV_DRIFT,	       /* the drift detector fired */
	TTT_EV_ROLLBACK,       /* back to the last good version */
	TTT_EV_RESET,	       /* soft or hard reset toward the anchor */
	TTT_EV_GAP_FILLED,     /* short gap filled by interpolation */
	TTT_EV_REJECTED_VALUE, /* duplicate, late or non-finite value */
	TTT_EV_REALISED,       /* a matured window scored; ts: its origin */
};

enum ttt_trigger {
	TTT_TRIGGER_NONE = 0,
	TTT_TRIGGER_SCHEDULE, /* every ttt.every observations */
	TTT_TRIGGER_DRIFT,    /* early, on drift */
	TTT_TRIGGER_SHADOW,   /* realised error worse than the frozen shadow */
	TTT_TRIGGER_MANUAL,   /* operator (rollback command) */
	TTT_TRIGGER_FALLBACK, /* kept failing: the frozen model, paused */
};

/* One event.  Pointers are valid only during the callback.  Versions are
 * per-series counters assigned by the engine (0 = the initial adapter);
 * storage/ maps them to rows.  Fields that do not apply to a type are 0. */
struct ttt_event {
	enum ttt_event_type type;
	enum ttt_trigger trigger;
	const char *series; /* series key */
	int64_t ts, step;   /* observation's series time; step, 0: unknown */
	uint64_t version_from, version_to;
	int steps;			   /* optimizer steps taken */
	float loss_before, loss_after;	   /* objective on the step batch */
	float guard_before, guard_after;   /* forecast MSE, held-out windows */
	float update_norm;		   /* L2 norm of the accepted delta */
	float adapted_error, shadow_error; /* realised MSE, adapter/frozen */
	const char *reason;		   /* static human-readable text */
	const float *forecast;		   /* TTT_EV_FORECAST: [horizon] */
	int horizon;
	const float *adapter; /* new version's adapter block, or NULL */
	size_t adapter_len;   /* floats */
	/* With a new version, what the series publishes from it on
	 * (ttt.average_rate > 0): the running average of its versions in
	 * ttt_recent's format, [average_len]; NULL: the version itself. */
	const uint16_t *average;
	size_t average_len;
	int64_t data_from, data_until; /* adaptations: oldest, newest ts used */
	float value;		       /* REJECTED_VALUE, FORECAST: the value */
	int filled;		       /* TTT_EV_GAP_FILLED: points filled */
	float detector_stat;	       /* TTT_EV_DRIFT: statistic that fired */
	uint64_t version_restored;     /* ROLLBACK: the version it repeats */
	uint64_t tag; /* ttt_engine_set_tag() as of the causing observation */
};

typedef void (*ttt_event_fn)(void *user, const struct ttt_event *ev);

/* ---- parameters ----------------------------------------------------------
 * The [ttt] settings as plain data (config/config.c documents each; the
 * daemon maps struct cfg onto this), defaults as in the settings table. */
enum ttt_drift_kind { TTT_DRIFT_NONE = 0, TTT_DRIFT_PH, TTT_DRIFT_ADWIN };
enum ttt_reset_policy {
	TTT_RESET_ROLLBACK = 0, /* to the last good version (else anchor) */
	TTT_RESET_SOFT,		/* a += alpha * (anchor - a) */
	TTT_RESET_HARD,		/* a = anchor */
};
enum ttt_scope { TTT_SCOPE_SERIES = 0, TTT_SCOPE_GROUP, TTT_SCOPE_GLOBAL };

struct ttt_params {
	int enabled;	 /* 0: forecast with the frozen model only */
	int every;	 /* adapt every this many observations (K) */
	float w_recon;	 /* weight of masked reconstruction */
	float w_matured; /* weight of forecast MSE on matured windows */
	float w_anchor;	 /* weight of ||a - anchor||^2 */
	float lr;	 /* learning rate */
	int steps;	 /* optimizer steps per adaptation */
	float clip;	 /* gradient norm clip per step */
	float max_update, max_drift; /* L2 bounds: an update, from anchor */
	unsigned families;	     /* FC_ADAPT_* bits that adapt */
	/* windows of an adaptation: lookbacks in the recon batch, matured
	 * in the step batch, most recent matured held out for the guard */
	int recon_windows, step_windows, guard_windows;
	int window_stride; /* spacing of the windows of one batch */
	int guard;	   /* 0: accept every candidate (for ablations) */
	float guard_tol;   /* accept iff guard_after <= guard_before*(1+tol) */
	int drift;	   /* enum ttt_drift_kind */
	int drift_every;   /* sample the recon loss every this many obs */
	float ph_delta, ph_lambda; /* Page-Hinkley tolerance, threshold */
	float adwin_delta;	   /* ADWIN confidence */
	int drift_min_gap;	   /* min obs between adaptations on drift */
	int shadow_every;	   /* score adapted vs frozen every n obs */
	float rollback_margin;	   /* relative margin over the shadow */
	int rollback_window;	   /* samples (EWMA span, min count) */
	int reset_policy;	   /* enum ttt_reset_policy */
	float reset_alpha;	   /* soft reset interpolation */
	int scope;		   /* enum ttt_scope */
	char group_sep;		   /* group key = key up to the last sep */
	int ephemeral; /* adapt per forecast on its own lookback, discard */
	float combine_weight; /* publish f + w (a - f) (ttt/combine.h) */
	float average_rate;   /* a: the versions' running average; 0 off */
	int level_steps;      /* level correction (ttt/level.c); 0: off */
	float level_forget, level_shrink, level_share;
	int recal_steps; /* recalibration (ttt/recal.c); 0: off */
	float recal_forget, recal_ridge, recal_share, recal_judge, recal_margin;
	float recal_later; /* later segments' judges' forgetting; 0: none */
	int fallback_rollbacks, fallback_within, fallback_pause; /* trust.c */
	int max_gap;   /* gaps up to this many steps are interpolated */
	int64_t step;  /* series step in ts units; 0 = from the data */
	uint64_t seed; /* masks */
};

void ttt_params_default(struct ttt_params *p);
/* 0, or -EINVAL with the first violated rule in errbuf. */
int ttt_params_check(const struct ttt_params *p, char *errbuf,
		     size_t errbuf_size);

/* ---- the engine ------------------------------------------------------- */

struct ttt_engine;

/* A new engine over model m (borrowed: it must outlive the engine) with a
 * copy of params.  cb (may be NULL) receives every event synchronously,
 * from inside the engine's calls, and must not call back into it.  *ret is
 * owned by the caller (ttt_engine_free). */
int ttt_engine_new(const struct fc_model *m, const struct ttt_params *params,
		   ttt_event_fn cb, void *user, struct ttt_engine **ret,
		   char *errbuf, size_t errbuf_size);
void ttt_engine_free(struct ttt_engine *e);

/* Feed one measurement of series `key` (copied on first sight) at
 * timestamp ts (integer units, regular per series).  When the series has
 * a full lookback, the forecast is delivered as TTT_EV_FORECAST (its
 * values live until the callback returns).  Data problems are not errors:
 * a duplicate or late timestamp, a misaligned one or a non-finite value is
 * dropped with TTT_EV_REJECTED_VALUE; a gap of at most max_gap steps is
 * filled by linear interpolation (TTT_EV_GAP_FILLED, filled > 0); a longer
 * gap restarts the series' history (TTT_EV_GAP_FILLED, filled = 0; its
 * adapter is kept).  Returns 0, -ENOMEM, or -EINVAL for an empty key. */
int ttt_engine_observe(struct ttt_engine *e, const char *key, int64_t ts,
		       float value);

/* Forecast in batches: with max > 1, a forecast that can share a batched
 * pass (the calibration is the only adapting family, or TTT is off) is
 * queued with a snapshot of its published calibration; its TTT_EV_FORECAST
 * comes out of ttt_engine_flush(), called by the engine when max are
 * queued and by the caller before it needs them.  With scope series the
 * observation's learning waits for the flush too (frozen passes batched).
 * The flush emits, observation by observation, the forecast and then its
 * learning's events, as the engine working at once would, up to float
 * rounding (which depends on the batch size).  A series observed or
 * restored again is flushed first; until then stats and series_adapter do
 * not show its queued learning.  max <= 1 turns batching off (flushing
 * first).  0, -EINVAL, -ENOMEM.  Still queued at ttt_engine_free: dropped. */
int ttt_engine_defer_forecasts(struct ttt_engine *e, int max);

/* Emit the queued forecasts and run the queued learning, in observation
 * order; 0, or forecast/'s errno (forecasts lost, learning still runs). */
int ttt_engine_flush(struct ttt_engine *e);

/* A caller's value copied into the tag of every event caused by the next
 * observations (e.g. the Kafka timestamp of the message they came in). */
void ttt_engine_set_tag(struct ttt_engine *e, uint64_t tag);

/* Replace the parameters (SIGHUP); the restart-only settings (scope,
 * group_sep, families, the batch windows and stride, seed) keep their
 * running values.  -EINVAL (nothing changes) for invalid parameters. */
int ttt_engine_set_params(struct ttt_engine *e, const struct ttt_params *p);

/* Set the adapter of series key (created if needed) from storage or an
 * operator rollback: adapter (copied) holds the full block, len =
 * fc_adapter_len floats, or is NULL for the identity (anchor); version
 * becomes the current one, the anchor (0) the last good (ttt/trust.c);
 * last_ts (INT64_MIN: unknown) tells which timestamps are late.  With scope
 * group or global this sets the shared adapter.  No event is emitted.  -EINVAL
 * on a length mismatch or a non-finite weight, -ENOMEM. */
int ttt_engine_restore_series(struct ttt_engine *e, const char *key,
			      const float *adapter, size_t len,
			      uint64_t version, int64_t last_ts);

/* Copy series key's adapter, expanded to the full block (len =
 * fc_adapter_len floats), into out, and its version; -ENOENT if unknown. */
int ttt_engine_series_adapter(const struct ttt_engine *e, const char *key,
			      float *out, size_t len, uint64_t *ret_version);

/* A series' recent values (its ring buffer) and where it stands, which the
 * daemon saves at a clean stop and restores at start, so that forecasts
 * need not wait for a lookback to refill. */
struct ttt_recent {
	const char *key;
	int64_t last_ts, step; /* the newest value's time, the series' step */
	int64_t position;      /* values since the series (re)started */
	int64_t since_adapt;   /* values since its last adaptation */
	uint64_t adaptations;  /* so far (they seed the masks) */
	const float *values; /* [count], oldest first, the newest at last_ts */
	int count;	     /* at most the ring's size, at most position */
	/* What the series publishes the share of (ttt.average_rate > 0):
	 * the running average of its adapter versions, [average_len] half-
	 * precision differences from the base adapter's active ranges, made
	 * with version average_version; NULL: none (the version itself). */
	const uint16_t *average;
	size_t average_len;
	uint64_t average_version;
	/* The recalibration's state (ttt.recal_steps > 0, else NULL): opaque
	 * bytes, [recal_len], that an engine with the same model, lookback,
	 * horizon and ttt.recal_steps takes back; another drops them and
	 * starts it from zero. */
	const void *recal;
	size_t recal_len;
};
typedef int (*ttt_recent_fn)(void *user, const struct ttt_recent *r);

/* Call fn for every series that has a time step and values; stops at the
 * first nonzero return and returns it.  -ENOMEM; -EBUSY while forecasts
 * or learning are queued (ttt_engine_defer_forecasts: flush first). */
int ttt_engine_each_recent(const struct ttt_engine *e, ttt_recent_fn fn,
			   void *user);

/* The same for every series whose recent values changed (a value
 * appended, or restored by ttt_engine_restore_recent) since the last
 * ttt_engine_recent_saved: what to write with a durable batch so that the
 * saved values always describe the stored state.  -EBUSY while forecasts
 * or learning are queued (flush first); -ENOMEM. */
int ttt_engine_each_changed_recent(const struct ttt_engine *e, ttt_recent_fn fn,
				   void *user);

/* The changed series' values are durable: the list starts empty again.
 * A forgotten series leaves it too. */
void ttt_engine_recent_saved(struct ttt_engine *e);

/* Give series r->key (created if needed) the recent values and position of
 * r, as if it had seen them: forecasts resume at its next value; the drift
 * detector starts afresh.  Values saved with a larger ring keep the newest;
 * a history shorter than this engine's ring restarts the position at its
 * start.  The recalibration's state is taken while the position continues
 * and it fits (see recal above), else it starts from zero; the level
 * correction always does.  The published average is taken when it was made with
 * the series' current adapter version (restore that first) and has the active
 * ranges' length; else the series publishes from the version, as after a
 * rollback.  -ESTALE (nothing changes) when the series already has another last
 * timestamp (its stored state moved on since the save); -EINVAL for a position
 * below count, a step <= 0, a non-finite value or average, or a recalibration
 * state that fits but no engine could have made; -ENOMEM.  No event is emitted.
 */
int ttt_engine_restore_recent(struct ttt_engine *e, const struct ttt_recent *r);

/* Give series key the published average of a version (ttt_event.average,
 * as stored with it) after ttt_engine_restore_series has made that
 * version's content its current version `version`: an operator's rollback
 * then publishes what the version published.  1: taken; 0: not taken (this
 * engine keeps no average, the series runs the base adapter, or its
 * version is not `version`: it publishes from the version itself, as
 * after a rollback); -EINVAL (nothing changes) for another length or a
 * non-finite value; -ENOENT for an unknown series.  No event is emitted. */
int ttt_engine_restore_average(struct ttt_engine *e, const char *key,
			       const uint16_t *average, size_t len,
			       uint64_t version);

/* At most n series at once (0: no limit, the default): a value of a new
 * series beyond them is refused with -ENOSPC (a restore is not: the
 * series is this host's already). */
void ttt_engine_set_max_series(struct ttt_engine *e, size_t n);

/* Number of series seen; a series' clock: its newest timestamp and step
 * (0: not known yet), -ENOENT (nothing set) before its first value. */
size_t ttt_engine_series_count(const struct ttt_engine *e);
int ttt_engine_series_clock(const struct ttt_engine *e, const char *key,
			    int64_t *ret_last_ts, int64_t *ret_step);

struct ttt_stats {
	uint64_t observations, forecasts, gap_filled, rejected_values;
	uint64_t accepted, rejected, rollbacks, resets, drifts, fallbacks;
	uint64_t adaptations; /* accepted + rejected */
	double adapt_seconds; /* wall time inside adaptations */
	size_t series, adapters;
	size_t bytes_series;   /* memory of all series (ring, state, key) */
	size_t bytes_adapters; /* memory of all adapter states */
	size_t bytes_shared;   /* workspace and scratch, once per engine */
	size_t adapter_params; /* floats adapted per adapter state */
};
void ttt_engine_stats(const struct ttt_engine *e, struct ttt_stats *ret);
/* Seasonal period for a step in seconds: a day of steps (24 hourly, 96 for
 * 15 min, 144 for 10), 7 for daily data, a day if it divides and fits, 1. */
int ttt_season_period(double step_seconds);

/* ---- the causal evaluator (ttt/eval.c) ---------------------------------
 * Replays a split (docs/EVAL.md) through one engine per arm in time
 * order, every channel a series "NAME/COLUMN"; a window is scored when its
 * forecast, made before any value of its horizon, is emitted (batched).
 * ttt: what `driftcast run` runs; the ablations drop one part of it. */
enum ttt_arm {
	TTT_ARM_FROZEN = 0,
	TTT_ARM_TTT,
	TTT_ARM_RECON,
	TTT_ARM_SUPERVISED,
	TTT_ARM_NOCOMBINE,
	TTT_ARM_PERSISTENCE,
	TTT_ARM_SEASONAL,
	TTT_ARM_COUNT
};
const char *ttt_arm_name(int arm);
int ttt_arm_parse(const char *name, int *ret_arm);
struct ttt_arm_result {
	int ran;
	double mse, mae;
	long windows; /* scored windows (all channels) */
	struct ttt_stats stats;
	double seconds;	      /* wall time of the arm */
	double adapt_ms_mean; /* per adaptation */
};

/* Called every few hundred rows; return nonzero to cancel (-ECANCELED). */
typedef int (*ttt_eval_progress_fn)(void *user, int arm, long done, long total);

/* Sees every engine event of the model arms (e.g. to store them), after
 * the evaluator has scored it; same lifetime rules as ttt_event_fn. */
typedef void (*ttt_eval_tap_fn)(void *user, int arm,
				const struct ttt_event *ev);

/* The row after the last of split (its end), and whether the window whose
 * lookback ends at row origin is scored: its whole horizon lies before
 * end (docs/EVAL.md).  The forecasts of the others are made, not scored. */
int ttt_eval_split_end(const struct fc_dataset *d, enum fc_split split);
int ttt_eval_scored(int64_t origin, int horizon, int end);

/* Replay split (FC_SPLIT_TEST as docs/EVAL.md; FC_SPLIT_VAL for tuning)
 * and run the arms whose bits are set in arm_mask (1u << TTT_ARM_*) with
 * params (eval.c says what each arm changes).  d must hold the scaled values
 * the model was trained on. progress and tap may be NULL; both get user.
 * results[TTT_ARM_COUNT] is filled.  Returns 0 or a negative errno with errbuf.
 */
int ttt_eval_run(const struct fc_model *m, const struct fc_dataset *d,
		 enum fc_split split, const struct ttt_params *params,
		 unsigned arm_mask, ttt_eval_progress_fn progress,
		 ttt_eval_tap_fn tap, void *user,
		 struct ttt_arm_result *results, char *errbuf,
		 size_t errbuf_size);

#endif
