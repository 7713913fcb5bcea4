/*
 * The daemon loop's batch and its durability order.  Messages join the
 * open batch as they are applied; when it is due, run_batch_flush makes it
 * durable in this order:
 *   1. the batch's dead letters are delivered -- they are the only copy of
 *      a message, so SQLite may not mark their offsets applied before;
 *   2. one SQLite transaction: the engine's events and versions, the
 *      recent values of the series the batch changed, and the next offset
 *      of every partition the batch touched;
 *   3. the batch's forecasts are handed to the producer, not waited for --
 *      they are derived data, and idempotent delivery retries them until
 *      the broker has them; so are its audit rows, once committed
 *      (run_audit.c: their cursor is stored with the next batch);
 *   4. the Kafka offsets of what SQLite made durable are committed, at most
 *      every kafka.commit_interval_ms (best effort: SQLite is the
 *      authority, and a partition resumes after the offset it holds);
 *      with the state topic, the changed series' states are produced and
 *      acknowledged first (run_changelog.c), never while a batch is held.
 * Also here: the rebalance hooks, which read the applied offsets from
 * SQLite and flush before partitions are taken away, and the rule for how
 * long the loop may wait in a poll with a batch open.
 */
#include "daemon/run_private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/notify.h"
#include "daemon/run_handover.h"
#include "daemon/run_audit.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

void run_batch_add(struct run *r, int32_t p, int64_t offset)
{
	if (r->batch_next[p] < 0)
		r->batch_parts[r->nbatch_parts++] = p;
	r->batch_next[p] = offset + 1;
	r->applied_next[p] = offset + 1;
	if (!r->batch_dirty)
		r->batch_due_usec = dc_now_monotonic_usec() +
				    (uint64_t)r->cfg.storage.batch_ms * 1000u;
	r->batch_dirty = true;
	r->batch_messages++;
}

#define HOLD_BACKOFF_MIN_MS 100
#define HOLD_BACKOFF_MAX_MS 30000

static void degrade(struct run *r, bool on, const char *why)
{
	if (on && !r->degraded)
		log_error("storage degraded: the batch could not be committed "
			  "(%s); it is kept and tried again, the input is "
			  "paused and no offset advances until it commits",
			  why);
	else if (!on && r->degraded)
		log_notice("storage recovered: the held batch is committed, "
			   "input resumes");
	r->degraded = on;
	r->st.degraded = on;
}

/* The batch stays open: tried again after the backoff when something
 * failed, else (dead letters still in flight) at the loop's next turn. */
static void hold(struct run *r, int why, bool failed)
{
	uint64_t now = dc_now_monotonic_usec();
	if (!r->held) {
		r->hold_since_usec = now;
		r->hold_backoff_ms = HOLD_BACKOFF_MIN_MS / 2;
	}
	if (failed && r->hold_backoff_ms < HOLD_BACKOFF_MAX_MS) {
		r->hold_backoff_ms *= 2;
		if (r->hold_backoff_ms > HOLD_BACKOFF_MAX_MS)
			r->hold_backoff_ms = HOLD_BACKOFF_MAX_MS;
	}
	r->held = why;
	r->hold_retry_usec =
	    now + (failed ? (uint64_t)r->hold_backoff_ms * 1000u : 0);
	r->st.deadletter_undelivered = r->dead.inflight + r->dead.failed;
}

static void unhold(struct run *r)
{
	if (r->held == HOLD_DEADLETTER)
		log_notice(
		    "dead letters delivered after %.1f s: the held "
		    "batch goes on",
		    (double)(dc_now_monotonic_usec() - r->hold_since_usec) /
			1e6);
	r->held = HOLD_NONE;
	r->st.deadletter_undelivered = 0;
}

const char *run_batch_describe(const struct run *r, char *buf, size_t n)
{
	size_t o = 0;
	buf[0] = '\0';
	for (int i = 0; i < r->nbatch_parts && o < n; i++) {
		int32_t p = r->batch_parts[i];
		if (r->durable_next[p] >= 0)
			o += (size_t)snprintf(
			    buf + o, n - o, "%s%d from offset %" PRId64,
			    i ? ", " : "", p, r->durable_next[p]);
		else
			o += (size_t)snprintf(
			    buf + o, n - o, "%s%d up to offset %" PRId64,
			    i ? ", " : "", p, r->batch_next[p] - 1);
	}
	return buf;
}

int run_drain_deliveries(struct run *r, const char *what)
{
	long failed = 0, f = 0;
	uint64_t warned = dc_now_monotonic_usec();
	/* short slices: the watchdog is fed between them (waiting on the
	 * broker is not a hung loop; the warning says what we wait for) */
	while (dc_kafka_flush(r->kafka, 100, &f) == -ETIMEDOUT) {
		uint64_t now = dc_now_monotonic_usec();
		failed += f;
		notify_watchdog_tick(now);
		if (now - warned >= 1000000) {
			log_warning("waiting for the %s to accept messages "
				    "(%ld in flight)",
				    what, dc_kafka_in_flight(r->kafka));
			warned = now;
		}
		if (run_stop_forced(r))
			return -ETIMEDOUT;
	}
	failed += f; /* failures of every slice, not just the last */
	return failed ? -EIO : 0;
}

void run_commit_offsets(struct run *r, bool now, bool final, bool wait)
{
	uint64_t t = dc_now_monotonic_usec();
	if (run_state_topic(r) && run_changelog_waiting(r, final, wait))
		return;
	if ((!r->kafka_pending && !final) ||
	    (!now && t - r->kafka_commit_usec <
			 (uint64_t)r->cfg.kafka.commit_interval_ms * 1000u))
		return;
	/* states are published with the commit: only when the engine holds
	 * exactly what the offsets say (no batch open).  A held batch's
	 * series are ahead of every durable offset, so no state matches
	 * them: nothing is published or committed until it is durable (a
	 * revoke or a stop meanwhile commits nothing; the next owner starts
	 * at the last commit and its published states) */
	if (run_state_topic(r) && r->batch_dirty && (!final || r->held))
		return;
	rd_kafka_topic_partition_list_t *l = NULL;
	for (int p = 0; p < MAX_PARTITIONS; p++) {
		int64_t next = r->kafka_next[p];
		if (next < 0 && final)
			next = r->durable_next[p];
		if (next < 0)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, r->cfg.kafka.input_topic,
						  p)
		    ->offset = next;
		r->kafka_next[p] = -1;
	}
	r->kafka_commit_usec = t;
	r->kafka_pending = false;
	if (l) {
		if (run_state_topic(r))
			run_changelog_commit(r, l, final, wait);
		else
			dc_kafka_commit(r->kafka, l, wait);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

int run_batch_flush(struct run *r, bool commit_kafka)
{
	int rc = 0;

	/* the batch's queued forecasts: into the outbox and SQLite */
	run_lap(r, DC_PHASE_OTHER);
	int e = ttt_engine_flush(r->engine);
	run_lap(r, DC_PHASE_FORECAST);
	if (e < 0)
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"forecasts of the batch lost: %s",
				strerror(-e));
	if (!r->batch_dirty && r->forecasts.nrec == 0)
		return 0;

	/* 1. dead letters of this batch delivered (never lose a message);
	 * a second at a time, so the loop goes on serving everything else */
	if (r->dead.n > 0 &&
	    (e = run_dead_settle(r, dc_now_monotonic_usec() + 1000000)) < 0) {
		hold(r, HOLD_DEADLETTER, e == -EIO);
		run_lap(r, DC_PHASE_DEADLETTER_WAIT);
		return -EAGAIN;
	}
	run_lap(r, DC_PHASE_DEADLETTER_WAIT);

	/* 2. SQLite: the state and the offsets it came from; after a failed
	 * commit, the kept rows written again */
	if (r->degraded)
		run_journal_replay(r);
	for (int i = 0; i < r->nbatch_parts; i++) {
		int32_t p = r->batch_parts[i];
		if (store_offset_put(r->store, r->cfg.kafka.input_topic, p,
				     r->batch_next[p], r->err,
				     sizeof(r->err)) < 0)
			log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s",
					r->err);
		/* revoked while the batch was held: its series are forgotten,
		 * their saved values older than the offset just stored --
		 * unless the revoke saved them (run_held_revoke) */
		if (r->applied_next[p] < 0 && !r->held_saved[p] &&
		    store_recent_drop_partition(r->store, p, r->err,
						sizeof(r->err)) < 0)
			log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s",
					r->err);
	}
	run_audit_persist(r);
	run_recent_changed_put(r);
	bool durable =
	    store_batch_commit(r->store, r->err, sizeof(r->err)) == 0;
	degrade(r, !durable, r->err);
	run_lap(r, DC_PHASE_COMMIT);

	/* 3. forecasts (also while the storage is held: forecasting goes on;
	 * a replay after a crash sends them again) */
	if (outbox_produce(&r->forecasts, r->kafka, r->cfg.kafka.output_topic,
			   r->metrics) < 0)
		rc = -EIO;
	run_lap(r, DC_PHASE_PRODUCE);
	if (!durable) {
		hold(r, HOLD_STORAGE, true);
		return -EAGAIN;
	}
	unhold(r);
	run_journal_clear(r);
	ttt_engine_recent_saved(r->engine);
	r->st.batches++;
	run_audit_publish(r); /* the rows just committed */

	/* 4. Kafka offsets of what SQLite made durable, for the partitions
	 * still ours (one revoked while the batch was held is another
	 * member's: applied_next < 0) */
	for (int i = 0; i < r->nbatch_parts; i++) {
		int32_t p = r->batch_parts[i];
		if (r->applied_next[p] >= 0) {
			r->durable_next[p] = r->batch_next[p];
			if (commit_kafka) {
				r->kafka_next[p] = r->batch_next[p];
				r->kafka_pending = true;
			}
		}
		r->batch_next[p] = -1;
		r->held_saved[p] = false;
	}
	r->nbatch_parts = 0;
	r->batch_dirty = false;
	r->batch_messages = 0;
	/* no batch open: the engine holds what the offsets say (the state
	 * topic's records are written with the commit) */
	if (commit_kafka)
		run_commit_offsets(r, false, false, false);
	return rc;
}

int dc_poll_wait_ms(bool batch_open, bool flush_when_idle, uint64_t due_usec,
		    uint64_t now_usec, long in_flight)
{
	int t = 100;
	if (batch_open && flush_when_idle)
		return 0;
	if (batch_open) {
		uint64_t left = due_usec > now_usec
				    ? (due_usec - now_usec + 999) / 1000
				    : 0;
		if (left < (uint64_t)t)
			t = (int)left;
	}
	if (t > 5 && in_flight > 0)
		t = 5;
	return t;
}

int64_t run_hook_applied_offset(void *user, const char *topic,
				int32_t partition)
{
	struct run *r = user;
	int64_t next = 0;
	bool found = false;
	if (partition < 0 || partition >= MAX_PARTITIONS)
		return -1;
	if (store_offset_get(r->store, topic, partition, &next, &found, r->err,
			     sizeof(r->err)) < 0) {
		log_error("storage: applied offset of %s[%d]: %s", topic,
			  partition, r->err);
		found = false;
	}
	/* a batch held since the partition was revoked holds its rows up to
	 * batch_next, and will store that offset: the partition continues
	 * there, not before (its messages would be applied twice) */
	if (r->held && r->batch_next[partition] >= 0 &&
	    (!found || next < r->batch_next[partition])) {
		next = r->batch_next[partition];
		found = true;
	}
	r->applied_next[partition] = r->durable_next[partition] =
	    found ? next : -1;
	return found ? next - 1 : -1;
}

void run_hook_on_revoke(void *user,
			const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct run *r = user;
	char parts_held[256];
	if (run_batch_flush(r, !lost) == -EAGAIN) {
		if (!r->stop_deadline_usec)
			log_warning("partitions revoked while the batch is "
				    "held: the new owner replays what is not "
				    "durable here (partition %s)",
				    run_batch_describe(r, parts_held,
						       sizeof(parts_held)));
		run_held_revoke(r, parts);
	}
	/* what was applied is committed before another member takes over;
	 * a lost partition's offsets may already be another member's.  While
	 * the batch is held only durable offsets are (without the state
	 * topic; with it none, run_commit_offsets), and the revoked series
	 * are still forgotten: the held batch keeps its rows (the journal)
	 * and commits them later, but no Kafka offset of a partition no
	 * longer ours (applied_next < 0 below) */
	if (!lost)
		run_commit_offsets(r, true, true, false);
	else
		run_changelog_drop(r, parts);
	run_handover_out(r, parts, lost);
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		if (p >= 0 && p < MAX_PARTITIONS)
			r->applied_next[p] = r->kafka_next[p] =
			    r->durable_next[p] = -1;
	}
}
