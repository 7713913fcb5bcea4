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
 *                  rebalance hooks;
 *   run_restart.c  what survives a restart: stored adapters and the recent
 *                  values saved at a clean stop;
 *   run_handover.c a partition's series moving between hosts: start
 *                  offsets, restore on assignment, forgetting on revoke.
 * Used from the loop's thread only (librdkafka calls the hooks from
 * dc_kafka_poll/flush).
 */
#ifndef DRIFTCAST_DAEMON_RUN_PRIVATE_H
#define DRIFTCAST_DAEMON_RUN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	char model_json[6 * 128]; /* model_name escaped for JSON, no NUL */
	size_t model_json_len;

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
	uint64_t kafka_commit_usec; /* when offsets were last committed */
	bool kafka_pending;	    /* some kafka_next[] >= 0 */
	bool batch_dirty;
	uint64_t batch_due_usec; /* when the open batch must be flushed */
	size_t batch_messages;

	struct outbox forecasts;
	size_t batch_dead; /* dead letters produced in the open batch */
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

/* Charge the time since the last lap to phase; returns the time now. */
static inline uint64_t run_lap(struct run *r, int phase)
{
	uint64_t now = dc_now_monotonic_usec();
	r->st.phase_us[phase] += now - r->t_lap;
	r->t_lap = now;
	return now;
}

/* run.c: true once a second SIGTERM/SIGINT asked to stop waiting for
 * Kafka (what is in flight is replayed after the restart). */
bool run_stop_forced(void);

/* ---- run_message.c */

/* Apply one consumed message (not an error event). */
void run_handle_message(struct run *r, const rd_kafka_message_t *m);
/* The engine's event callback (user: the struct run). */
void run_on_engine_event(void *user, const struct ttt_event *ev);

/* ---- run_outbox.c */

/* The engine tag of the observations of a message created at created_ms
 * (Kafka CreateTime) and consumed at consumed_ms (the loop's monotonic
 * clock); the outbox reads both back from each forecast. */
uint64_t outbox_tag(int64_t created_ms, uint64_t consumed_ms);
/* Format ev's forecast message into o; -ENOMEM. */
int outbox_add_forecast(struct outbox *o, const struct ttt_event *ev,
			const char *model_json, size_t model_json_len);
/* Hand every message of o to the producer for topic, observe each one's
 * processing latency in m, and empty o; -EIO if one could not be
 * produced. */
int outbox_produce(struct outbox *o, struct dc_kafka *k, const char *topic,
		   struct dc_metrics *m);
void outbox_free(struct outbox *o);
/* dc_kafka_hooks.on_delivered: the end-to-end and delivery latencies. */
void run_hook_on_delivered(void *user, int64_t origin_ms, int64_t produce_us,
			   bool failed);

/* ---- run_batch.c */

/* The message at offset of partition p is applied (used or
 * dead-lettered): it joins the open batch, which opens with it when none
 * is open. */
void run_batch_add(struct run *r, int32_t p, int64_t offset);
/* Make the open batch durable, publish its forecasts and, with
 * commit_kafka, commit its offsets; 0, -ETIMEDOUT (a forced stop while
 * dead letters were in flight: nothing committed) or -EIO (a forecast not
 * produced). */
int run_batch_flush(struct run *r, bool commit_kafka);
/* Commit the offsets SQLite has made durable to Kafka: when
 * kafka.commit_interval_ms has passed since the last commit, or now;
 * final (a revoke, a stop): every owned partition's durable position,
 * and with wait, synchronously (retried). */
void run_commit_offsets(struct run *r, bool now, bool final, bool wait);
/* Wait until everything produced is acknowledged by the broker; what
 * names the topic in the log.  -ETIMEDOUT on a forced stop, -EIO when a
 * delivery failed. */
int run_drain_deliveries(struct run *r, const char *what);
/* dc_kafka_hooks.applied_offset and .on_revoke. */
int64_t run_hook_applied_offset(void *user, const char *topic,
				int32_t partition);
void run_hook_on_revoke(void *user,
			const rd_kafka_topic_partition_list_t *parts,
			bool lost);

/* ---- run_handover.c */

/* dc_kafka_hooks.on_assign: each partition's start, then its series'
 * state restored (this host's database, the state topic or the base
 * adapter). */
void run_hook_on_assign(void *user, struct dc_kafka_start *st, int n);
/* Series key arrived on input partition p (every observation): noted as
 * served here, changed since its state was published. */
void run_owner_note(struct run *r, const char *key, int32_t p);
/* fn for every series served here of partition p (-1: all); *dirty: it
 * changed since its state was last published.  A nonzero return stops. */
typedef int (*run_owner_fn)(struct run *r, const char *key, int32_t p,
			    bool *dirty, void *user);
int run_owner_each(struct run *r, int32_t p, run_owner_fn fn, void *user);
/* After a revoked (or lost) partition's batch is durable: its series
 * forgotten here, their rows marked handed over. */
/* Series key is served here, on partition p (restored on assignment). */
void run_owner_claim(struct run *r, const char *key, int32_t p);
void run_handover_out(struct run *r,
		      const rd_kafka_topic_partition_list_t *parts, bool lost);
void run_owners_free(struct run *r);

/* ---- run_changelog.c: the state topic (kafka.state_topic) */

/* Before partition st is restored: read its state partition to the end;
 * the newest valid state of each series is kept for
 * run_changelog_restore, and st->start moves past a later handover mark. */
void run_changelog_start(struct run *r, struct dc_kafka_start *st);
/* Restore the kept states that are newer than this host's own; returns
 * how many series were. */
size_t run_changelog_restore(struct run *r, const struct dc_kafka_start *st);
/* Whether series key was restored from the state topic just now (this
 * host's stored state is then not used), and the end of that. */
bool run_changelog_restored(struct run *r, const char *key);
void run_changelog_forget_restored(struct run *r);
/* Before offsets are committed (no batch open): the state of every
 * series of their partitions that changed since its last record, and a
 * handover mark per partition, produced and acknowledged.  0 (commit
 * them), or a negative errno (do not: the state is not in the topic). */
int run_changelog_publish(struct run *r,
			  const rd_kafka_topic_partition_list_t *offsets);
void run_changelog_free(struct run *r);
/* kafka.state_topic, or NULL when it is off. */
const char *run_state_topic(const struct run *r);

/* ---- run_restart.c */

struct store_restored;
struct store_recent;
/* A stored adapter version into the engine (logged and counted); 0 or a
 * negative errno. */
int run_restore_stored(struct run *r, const struct store_restored *rs);
/* Recent values saved at a clean stop into the engine; 0 or a negative
 * errno (-EBADMSG: they failed their checksum). */
int run_restore_ring(struct run *r, const struct store_recent *sr);
/* At start: every stored series' current adapter into the engine, then
 * the recent values saved at the last clean stop. */
void run_restore(struct run *r);
/* At a clean stop, after the last batch is durable: every series' recent
 * values into SQLite. */
void run_save_recent(struct run *r);

#endif
