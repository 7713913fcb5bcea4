/*
 * What survives a restart of the daemon loop.  At start the current
 * adapter version of every stored series whose input partition is not
 * recorded (written before schema 9) is restored into the engine; the
 * others are restored when their partition is assigned (run_handover.c).
 * Every durable batch also saves the recent values (the ring) of each
 * series it changed, in the same transaction as its offsets, so the saved
 * values always describe the stored state: a start -- after a clean stop
 * or a crash -- takes them back and forecasting resumes at the first new
 * value instead of after a refilled lookback.  The offsets SQLite holds
 * make the replay apply nothing twice.
 */
#include "daemon/run_handover.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

/* rs's version was made with another base model than this host runs (a
 * new model.path over the database): its adapter corrects the other
 * model's forecasts; the series starts again from the base adapter, as a
 * new version that says so (storage/handover.h).  Its recent values stay
 * (they are data); their published average belongs to the old version
 * and is not taken, and the recalibration checks the model itself. */
static int restore_other_model(struct run *r, const struct store_restored *rs)
{
	uint64_t number = 0;
	if (store_model_reset(r->store, rs, &number, r->err, sizeof(r->err)) <
	    0) {
		log_error("series %s: storage: %s", rs->series, r->err);
		return -EIO;
	}
	log_ratelimited(&r->rl_store, LOG_NOTICE,
			"series %s: version %" PRIu64 " was made with another "
			"base model; it starts again from the base adapter "
			"(version %" PRIu64 ")",
			rs->series, rs->version, number);
	int e = ttt_engine_restore_series(r->engine, rs->series, NULL, 0,
					  number, INT64_MIN);
	if (e < 0) {
		log_error("series %s: cannot restore the base adapter: %s",
			  rs->series, strerror(-e));
		return e;
	}
	r->st.restored++;
	r->st.model_resets++;
	return 0;
}

int run_restore_stored(struct run *r, const struct store_restored *rs)
{
	if (rs->model_id && r->model_id && rs->model_id != r->model_id)
		return restore_other_model(r, rs);
	if (rs->status < 0) {
		log_error("series %s: stored adapter version %" PRIu64
			  " fails its checksum; it starts from the base "
			  "adapter",
			  rs->series, rs->version);
		return rs->status;
	}
	/* last_ts stays unknown: the engine infers a series' step from
	 * consecutive timestamps, and the gap across a restart is not one;
	 * replays are already excluded by the applied offsets. */
	/* what it published: the recent values carry it too, but only for
	 * the version they were saved with */
	if (rs->average_status < 0)
		log_warning("series %s: the published average stored with "
			    "version %" PRIu64 " fails its checksum; it "
			    "publishes the version itself",
			    rs->series, rs->version);
	int e = run_restore_version(r, rs->series, rs->adapter, rs->adapter_len,
				    rs->version, rs->average, rs->average_len);
	if (e < 0) {
		log_error("series %s: cannot restore version %" PRIu64 ": %s",
			  rs->series, rs->version, strerror(-e));
		return e;
	}
	r->st.restored++;
	return 0;
}

int run_restore_version(struct run *r, const char *key, const float *adapter,
			size_t len, uint64_t version, const uint16_t *average,
			size_t average_len)
{
	int e = ttt_engine_restore_series(r->engine, key, len ? adapter : NULL,
					  len, version, INT64_MIN);
	if (e < 0 || !average)
		return e;
	e = ttt_engine_restore_average(r->engine, key, average, average_len,
				       version);
	if (e < 0)
		log_warning("series %s: the published average stored with "
			    "version %" PRIu64 " does not fit this model's "
			    "adapter (%s); it publishes the version itself",
			    key, version, strerror(-e));
	return e > 0;
}

static int restore_one(void *user, const struct store_restored *rs)
{
	run_restore_stored(user, rs);
	return 0;
}

int run_restore_ring(struct run *r, const struct store_recent *sr)
{
	struct ttt_recent rc = {
	    .key = sr->series,
	    .last_ts = sr->last_ts,
	    .step = sr->step,
	    .position = sr->position,
	    .since_adapt = sr->since_adapt,
	    .adaptations = sr->adaptations,
	    .values = sr->values,
	    .count = (int)sr->count,
	    .average = sr->average,
	    .average_len = sr->average_len,
	    .average_version = sr->average_version,
	    .recal = sr->recal,
	    .recal_len = sr->recal_len,
	};
	if (sr->status == 0 && sr->average_status < 0)
		log_ratelimited(
		    &r->rl_store, LOG_WARNING,
		    "series %s: saved published average not used "
		    "(%s): it starts again from the adapter version",
		    sr->series, strerror(-sr->average_status));
	if (sr->status == 0 && sr->recal_status < 0)
		log_ratelimited(&r->rl_store, LOG_WARNING,
				"series %s: saved recalibration not used "
				"(%s): it starts from zero",
				sr->series, strerror(-sr->recal_status));
	return sr->status ? sr->status
	       : sr->count > INT_MAX
		   ? -EINVAL
		   : ttt_engine_restore_recent(r->engine, &rc);
}

struct recent_count {
	struct run *r;
	size_t done, bad;
};

static int restore_recent_one(void *user, const struct store_recent *sr)
{
	struct recent_count *c = user;
	int e = run_restore_ring(c->r, sr);
	if (e < 0) {
		c->bad++;
		log_ratelimited(&c->r->rl_store, LOG_WARNING,
				"series %s: saved recent values not used (%s): "
				"its lookback refills",
				sr->series, strerror(-e));
	} else {
		c->done++;
	}
	return 0;
}

static void restore_recent(struct run *r)
{
	struct recent_count c = {.r = r};
	size_t n = 0;
	if (store_recent_take_partition(r->store, -1, restore_recent_one, &c,
					&n, r->err, sizeof(r->err)) < 0) {
		log_error("storage: saved recent values: %s (lookbacks refill)",
			  r->err);
		store_batch_abort(r->store);
		return;
	}
	if (n > 0)
		log_info("recent values of %zu series restored (%zu unusable): "
			 "they forecast at their next value",
			 c.done, c.bad);
	/* taking them deleted the rows: saved again with the deletion, in
	 * case the next stop comes before their next value */
	if (run_recent_changed_put(r) == 0 &&
	    store_batch_commit(r->store, r->err, sizeof(r->err)) == 0)
		ttt_engine_recent_saved(r->engine);
	else
		log_error("storage: saving the restored recent values: %s",
			  r->err);
}

void run_restore(struct run *r)
{
	size_t bad = 0;
	/* only series recorded before their partition was: the others are
	 * restored when their partition is assigned (run_handover.c) */
	if (store_restore_partition(r->store, -1, restore_one, r, &bad, r->err,
				    sizeof(r->err)) < 0)
		log_error("storage: restore: %s", r->err);
	log_info("restored %" PRIu64 " series from %s (%zu unusable)",
		 r->st.restored, r->cfg.storage.path, bad);
	if (r->st.model_resets)
		log_notice("%" PRIu64 " of them start again from the base "
			   "adapter: their versions were made with another "
			   "base model",
			   r->st.model_resets);
	restore_recent(r);
}

int run_recent_put(struct run *r, const struct ttt_recent *rc)
{
	struct store_recent sr = {
	    .series = rc->key,
	    .last_ts = rc->last_ts,
	    .step = rc->step,
	    .position = rc->position,
	    .since_adapt = rc->since_adapt,
	    .adaptations = rc->adaptations,
	    .values = rc->values,
	    .count = (size_t)rc->count,
	    .average = rc->average,
	    .average_len = rc->average_len,
	    .average_version = rc->average_version,
	    .recal = rc->recal,
	    .recal_len = rc->recal_len,
	};
	return store_recent_put(r->store, &sr, r->err, sizeof(r->err));
}

static int save_recent_one(void *user, const struct ttt_recent *rc)
{
	struct recent_count *c = user;
	int e = run_recent_put(c->r, rc);
	if (e < 0)
		return e;
	c->done++;
	return 0;
}

int run_recent_changed_put(struct run *r)
{
	struct recent_count c = {.r = r};
	r->err[0] = '\0';
	int e = ttt_engine_each_changed_recent(r->engine, save_recent_one, &c);
	if (e == 0)
		return 0;
	if (!r->err[0])
		snprintf(r->err, sizeof(r->err), "%s", strerror(-e));
	/* a value saved must never be older than the offsets stored with
	 * it, or the next start would take it: without them, each series
	 * refills its lookback instead */
	log_ratelimited(&r->rl_store, LOG_ERR,
			"saving recent values: %s: every saved one is "
			"dropped (lookbacks refill after a restart)",
			r->err);
	if (!store_degraded(r->store, NULL, 0))
		store_recent_drop_partition(r->store, STORE_ALL_PARTITIONS,
					    r->err, sizeof(r->err));
	return e;
}

/* Only after a durable last batch: the saved values must be exactly the
 * state the stored offsets describe, or the next start would see replayed
 * values as duplicates. */
void run_save_recent(struct run *r)
{
	struct recent_count c = {.r = r};
	uint64_t t0 = dc_now_monotonic_usec();
	if (store_degraded(r->store, NULL, 0)) {
		log_warning("not saving recent values: the database is "
			    "degraded; lookbacks refill after the restart");
		return;
	}
	/* the store's errors fill r->err; the engine's (-ENOMEM, -EBUSY
	 * with learning still queued) only return */
	r->err[0] = '\0';
	int e = ttt_engine_each_recent(r->engine, save_recent_one, &c);
	if (e == 0)
		e = store_batch_commit(r->store, r->err, sizeof(r->err));
	else
		store_batch_abort(r->store);
	if (e < 0) {
		log_error("saving recent values: %s; lookbacks refill after "
			  "the restart",
			  r->err[0] ? r->err : strerror(-e));
		return;
	}
	log_notice("recent values of %zu series saved in %.2f s: the next "
		   "start forecasts at once",
		   c.done, (double)(dc_now_monotonic_usec() - t0) / 1e6);
}
