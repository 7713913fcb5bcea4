/*
 * What the pieces of the daemon loop share: struct run, the loop's whole
 * state, and the calls between
 *   run.c          open, loop, close; signals, reload, operator control,
 *                  retention, status and backpressure between messages;
 *   run_message.c  one Kafka message through the parser and the engine,
 *                  and the engine's events into the batch and the outbox;
 *   run_outbox.c   the batch's forecast messages, formatted and waiting
 *                  for the batch's commit, and their latency;
 *   run_batch.c    the batch and its durability order, offsets, and the
 *                  rebalance hooks; a batch that cannot be made durable
 *                  is held (kept open, input paused, retried);
 *   run_dead.c     the batch's dead letters, kept until the broker has
 *                  each one;
 *   run_journal.c  the batch's SQLite rows, kept until they commit;
 *   run_restart.c  what survives a restart: stored adapters and the recent
 *                  values saved at a clean stop;
 *   run_handover.c a partition's series moving between hosts: start
 *                  offsets, restore on assignment, forgetting on revoke
 *                  (its calls and run_changelog.c's: run_handover.h).
 * Used from the loop's thread only (librdkafka calls the hooks from
 * dc_kafka_poll/flush).
 */
#ifndef DRIFTCAST_DAEMON_RUN_PRIVATE_H
#define DRIFTCAST_DAEMON_RUN_PRIVATE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"
#include "daemon/parse.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/run.h"

#define MAX_OBS_PER_MESSAGE 1024
#define MAX_PARTITIONS	    4096

struct dc_metrics;
struct fc_model;
struct store;
struct ttt_engine;
struct ttt_event;

/* The forecast messages of the open batch: one growable byte buffer and
 * one record per message, reused across batches (no allocation once they
 * have grown to the batch's size). */
struct outbox {
	char *buf;
	size_t len, cap;
	/* the records: key_off, key_len, val_off, val_len, tag (the
	 * engine's tag of the message behind it: see outbox_tag) */
	size_t *rec;
	size_t nrec, caprec;
};

/* The open batch's SQLite writes, kept (deep copies, 8-byte aligned
 * records) until its commit succeeds: a failed commit is rolled back
 * whole, and the retry writes them again (run_journal.c). */
struct journal {
	char *buf;
	size_t len, cap;
	size_t n;
	bool incomplete; /* a row could not be kept (out of memory) */
};

/* The open batch's dead letters: each one's copy (payload truncated to
 * what the producer accepts) until the broker acknowledged it, so a
 * refused one is produced again, never skipped (run_dead.c). */
struct dead_rec;
struct deadbox {
	char *buf;
	size_t len, cap;
	struct dead_rec *rec;
	size_t n, caprec;
	size_t inflight, failed; /* records in those states */
	uint64_t tries;		 /* re-produced, since the batch opened */
};

/* Why a batch is held (struct run.held). */
enum run_hold { HOLD_NONE = 0, HOLD_DEADLETTER, HOLD_STORAGE };

struct run {
	struct cfg cfg;
	const struct dc_run_options *opts;
	struct dc_kafka *kafka;
	struct store *store;
	struct fc_model *model;
	struct ttt_engine *engine;
	struct dc_parser *parser;
	int64_t model_id;
	char model_name[128];
	char host[256]; /* gethostname(), or "unknown" */
	/* ,"model":M,"host":H,"db":P,"adapter_version": -- the fields every
	 * forecast message shares, escaped for JSON, no NUL */
	char *forecast_fields;
	size_t forecast_fields_len;

	struct dc_obs *obs; /* [MAX_OBS_PER_MESSAGE] */

	/* Per partition of the input topic: the next offset to apply
	 * (-1: unknown) and the next offset of the open batch (-1: none). */
	int64_t applied_next[MAX_PARTITIONS];
	int64_t batch_next[MAX_PARTITIONS];
	/* the partitions with batch_next >= 0, so that a flush (many a
	 * second with storage.flush_when_idle) does not scan them all */
	int32_t batch_parts[MAX_PARTITIONS];
	int nbatch_parts;
	/* ... and the next offset durable in SQLite but not yet committed to
	 * Kafka (-1: none); committed at most every kafka.commit_interval_ms
	 */
	int64_t kafka_next[MAX_PARTITIONS];
	/* ... and the next offset durable in SQLite, committed or not (-1:
	 * unknown): a revoke or a stop commits it for every owned partition,
	 * so a commit the group refused once (e.g. during a rebalance) is
	 * made good even if that partition receives nothing more. */
	int64_t durable_next[MAX_PARTITIONS];
	/* ... revoked while the batch was held, its series' recent values
	 * and its batch_next written into the held batch (run_held_revoke):
	 * the batch commits them whole, and an assignment meanwhile reads
	 * them (the same connection) */
	bool held_saved[MAX_PARTITIONS];
	/* ... assigned while its state partition could not be read whole:
	 * held, as it was assigned, until it is (run_handover_retry) */
	bool restoring[MAX_PARTITIONS];
	struct dc_kafka_start restore_st[MAX_PARTITIONS];
	int nrestoring;
	uint64_t restore_due_usec, restore_wait_usec;
	int32_t restore_next;	    /* the partition tried next, or after it */
	uint64_t kafka_commit_usec; /* when offsets were last committed */
	bool kafka_pending;	    /* some kafka_next[] >= 0 */
	bool batch_dirty;
	uint64_t batch_due_usec; /* when the open batch must be flushed */
	size_t batch_messages;

	struct outbox forecasts;
	struct run_audit *audit; /* kafka.audit_topic, NULL when off */
	struct deadbox dead;
	struct journal journal;
	/* A batch that cannot be made durable (enum run_hold) stays open
	 * with its offsets, the input paused, and is tried again at
	 * hold_retry_usec, the wait doubling up to HOLD_BACKOFF_MAX_MS. */
	int held;
	uint64_t hold_since_usec, hold_retry_usec;
	unsigned hold_backoff_ms;
	/* a stop under way: when it stops waiting for the broker or the
	 * disk (kafka.stop_timeout_ms after SIGTERM); 0: running */
	uint64_t stop_deadline_usec;
	struct dc_run_stats st;
	struct dc_metrics *metrics;
	/* scale-out (run_handover.c, run_changelog.c): the series served
	 * here by input partition, a scratch adapter block [adapter_len],
	 * and the state topic's reader and writer */
	struct owners *owners;
	float *adapter_buf;
	size_t adapter_len;
	struct changelog *changelog;
	uint64_t model_hash; /* of the model file: states carry it */
	bool degraded;

	/* Values of the current message the engine refused (duplicate, late,
	 * off-step): the message goes to the dead-letter topic too. */
	char rejected[DC_PARSE_TEXT_MAX * 2];
	int n_rejected;

	uint64_t t_lap; /* end of the last timed phase (run_lap()) */
	struct log_ratelimit rl_dead, rl_store, rl_engine;
	char err[1024];
};

/* Room for need bytes in the growable buffer *buf of *cap bytes
 * (doubling from 64 KiB: no allocation once it has grown to a batch's
 * size); -ENOMEM leaves it as it was. */
static inline int run_reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 65536;
	while (c < need)
		c *= 2;
	char *p = realloc(*buf, c);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = c;
	return 0;
}

/* Charge the time since the last lap to phase; returns the time now. */
static inline uint64_t run_lap(struct run *r, int phase)
{
	uint64_t now = dc_now_monotonic_usec();
	r->st.phase_us[phase] += now - r->t_lap;
	r->t_lap = now;
	return now;
}

/* run.c: true once waiting for Kafka or the disk must end -- a second
 * SIGTERM/SIGINT, or kafka.stop_timeout_ms after the first (what is not
 * durable then is replayed after the restart). */
bool run_stop_forced(const struct run *r);

/* ---- run_message.c */

/* Apply one consumed message (not an error event). */
void run_handle_message(struct run *r, const rd_kafka_message_t *m);
/* The engine's event callback (user: the struct run). */
void run_on_engine_event(void *user, const struct ttt_event *ev);

/* Whether a value dated ts_ns is refused as future_timestamp: more than
 * tol_ns after now_ns, and either its series has no clock yet (step 0) or
 * it lies more than max_steps steps after the series' newest value. */
bool run_future_refused(int64_t ts_ns, int64_t now_ns, int64_t tol_ns,
			int64_t last_ts, int64_t step, int64_t max_steps);

/* ---- run_outbox.c */

/* The engine tag of the observations of a message created at created_ms
 * (Kafka CreateTime) and consumed at consumed_ms (the loop's monotonic
 * clock); the outbox reads both back from each forecast. */
uint64_t outbox_tag(int64_t created_ms, uint64_t consumed_ms);
/* The fields every forecast message of a run shares (model, host, db),
 * formatted for outbox_add_forecast: a new string of *ret_len bytes, no
 * NUL; NULL when out of memory. */
char *outbox_forecast_fields(const char *model, const char *host,
			     const char *db, size_t *ret_len);
/* Format ev's forecast message into o, with the shared fields between
 * step_seconds and the version; -ENOMEM. */
int outbox_add_forecast(struct outbox *o, const struct ttt_event *ev,
			const char *fields, size_t fields_len);
/* Hand every message of o to the producer for topic, observe each one's
 * processing latency in m, and empty o; -EIO if one could not be
 * produced. */
int outbox_produce(struct outbox *o, struct dc_kafka *k, const char *topic,
		   struct dc_metrics *m);
void outbox_free(struct outbox *o);
/* dc_kafka_hooks.on_delivered: the end-to-end and delivery latencies of
 * forecasts (token: origin ms), dead letters' fate (token < 0). */
void run_hook_on_delivered(void *user, int64_t token, int64_t produce_us,
			   bool failed);

/* ---- delivery tokens of the loop's own messages (run_outbox.c) */

/* The delivery token of audit messages (forecasts' are > 0, dead
 * letters' small negative numbers). */
#define RUN_AUDIT_TOKEN INT64_MIN
/* ... and of state records (run_changelog.c) */
#define RUN_STATE_TOKEN (INT64_MIN + 1)

/* ---- run_dead.c */

/* Copy m into the batch's dead letters with reason, and produce it. */
void run_dead_add(struct run *r, const rd_kafka_message_t *m,
		  const char *reason);
/* A dead letter's delivery report (token < 0, from dc_kafka_produce). */
void run_dead_delivered(struct run *r, int64_t token, bool failed);
/* Produce the refused dead letters again, then wait (feeding the
 * watchdog) until none is in flight, at most until wait_until: 0 when
 * the broker has all of them (the box is emptied), -EAGAIN while some are
 * in flight, -EIO when some were refused (kept for the next try). */
int run_dead_settle(struct run *r, uint64_t wait_until);
void run_dead_free(struct deadbox *d);

/* ---- run_journal.c */

/* Write ev (or, for a series seen for the first time, its initial
 * version) into the open SQLite batch, and keep it in the journal. */
void run_write_event(struct run *r, const struct ttt_event *ev);
void run_write_init(struct run *r, const char *series, int64_t ts);
/* After a failed commit: the journal's rows into a new SQLite batch. */
void run_journal_replay(struct run *r);
/* The batch committed (or an operator rollback committed it). */
void run_journal_clear(struct run *r);
void run_journal_free(struct journal *j);

/* ---- run_batch.c */

/* The message at offset of partition p is applied (used or
 * dead-lettered): it joins the open batch, which opens with it when none
 * is open. */
void run_batch_add(struct run *r, int32_t p, int64_t offset);
/* Make the open batch durable, publish its forecasts and, with
 * commit_kafka, commit its offsets; 0, -EAGAIN (held: a dead letter not
 * delivered or the SQLite commit failed; nothing of it committed, the
 * input paused, tried again at r->hold_retry_usec) or -EIO (a forecast
 * not produced). */
int run_batch_flush(struct run *r, bool commit_kafka);
/* The held batch's partitions and first offsets into buf (for the log);
 * returns buf. */
const char *run_batch_describe(const struct run *r, char *buf, size_t n);
/* Commit the offsets SQLite has made durable to Kafka: when
 * kafka.commit_interval_ms has passed since the last commit, or now;
 * final (a revoke, a stop): every owned partition's durable position,
 * and with wait, synchronously (retried). */
void run_commit_offsets(struct run *r, bool now, bool final, bool wait);
/* Wait until everything produced is acknowledged by the broker; what
 * names the topic in the log.  -ETIMEDOUT when the stop stops waiting
 * (run_stop_forced), -EIO when a delivery failed. */
int run_drain_deliveries(struct run *r, const char *what);
/* dc_kafka_hooks.applied_offset and .on_revoke. */
int64_t run_hook_applied_offset(void *user, const char *topic,
				int32_t partition);
void run_hook_on_revoke(void *user,
			const rd_kafka_topic_partition_list_t *parts,
			bool lost);

#endif
