/*
 * The daemon loop's calls for scale-out across hosts (docs/OPERATIONS.md,
 * "Running several hosts"): run_handover.c, a partition's series moving
 * between hosts (start offsets, restore on assignment, forgetting on
 * revoke), and run_changelog.c, the state topic; and run_restart.c's
 * saving of recent values, which a revocation does too.  Kept out of
 * run_private.h, which holds struct run and the rest of the loop, so that
 * each header stays within 300 lines.  Used from the loop's thread only.
 */
#ifndef DRIFTCAST_DAEMON_RUN_HANDOVER_H
#define DRIFTCAST_DAEMON_RUN_HANDOVER_H

#include "daemon/run_private.h"

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
/* Series key is served here, on partition p (restored on assignment). */
void run_owner_claim(struct run *r, const char *key, int32_t p);
/* Partitions assigned while their state partition could not be read
 * whole are held (paused, nothing of them applied): read again, with a
 * growing pause between tries, and released once it is read; call from
 * the loop, no batch open needed (it flushes). */
void run_handover_retry(struct run *r, uint64_t now_usec);
/* After a revoked (or lost) partition's batch is durable: its series
 * forgotten here, their rows marked handed over. */
void run_handover_out(struct run *r,
		      const rd_kafka_topic_partition_list_t *parts, bool lost);
void run_owners_free(struct run *r);
/* A revoke while the batch is held (before run_handover_out): the held
 * batch keeps the partitions' rows and will store the offset they reach,
 * so their series' recent values and that offset go into it now
 * (held_saved) -- the database then describes that state whole when the
 * batch commits, and the partition, assigned back here meanwhile,
 * continues from it instead of applying those messages again. */
void run_held_revoke(struct run *r,
		     const rd_kafka_topic_partition_list_t *parts);

/* ---- run_changelog.c: the state topic (kafka.state_topic) */

/* Before partition st is restored: read its state partition to the end;
 * the newest valid state of each series is kept for
 * run_changelog_restore, and st->start moves past a later handover mark.
 * 0, also without a state topic or without that partition in it; < 0 if
 * the read did not reach the end (nothing of it is kept: the partition
 * must wait, run_handover_retry). */
int run_changelog_start(struct run *r, struct dc_kafka_start *st);
/* Restore the kept states that are newer than this host's own; returns
 * how many series were. */
size_t run_changelog_restore(struct run *r, const struct dc_kafka_start *st);
/* The partition whose state read stopped part way and goes on at its next
 * read (-1: none); that progress dropped (the partition revoked). */
int32_t run_changelog_resuming(const struct run *r);
void run_changelog_drop_resume(struct run *r, int32_t partition);
/* Records (states and handover marks) read for the partition being
 * assigned. */
size_t run_changelog_read_count(const struct run *r);
/* Whether series key was restored from the state topic just now (this
 * host's stored state is then not used), and the end of that. */
bool run_changelog_restored(struct run *r, const char *key);
void run_changelog_forget_restored(struct run *r);
/* Commit offsets l (no batch open) the state topic's way: the state of
 * every series of their partitions that changed since its last record,
 * and a handover mark per partition, produced now; the offsets committed
 * once all of it is acknowledged (the loop goes on meanwhile: see
 * run_changelog_waiting), never if some of it fails.  final (a revoke, a
 * stop): waited for here. */
int run_changelog_publish(struct run *r,
			  const rd_kafka_topic_partition_list_t *offsets);
void run_changelog_commit(struct run *r, rd_kafka_topic_partition_list_t *l,
			  bool final, bool wait);
/* True while a commit's states are in flight (no other commit starts
 * meanwhile); once they are acknowledged (final: waited for) the commit
 * is made and false returned. */
bool run_changelog_waiting(struct run *r, bool final, bool wait);
/* Partitions lost: their offsets are not committed by a waiting commit
 * (another member may be ahead already). */
void run_changelog_drop(struct run *r,
			const rd_kafka_topic_partition_list_t *parts);
/* The delivery report of a state record (token RUN_STATE_TOKEN). */
void run_changelog_delivered(struct run *r, bool failed);
void run_changelog_free(struct run *r);
/* kafka.state_topic, or NULL when it is off. */
const char *run_state_topic(const struct run *r);

/* ---- run_restart.c: restoring at start, saving at a stop, and what the
 * revocation shares */

struct store_restored;
struct store_recent;
/* A version into the engine as series key's current version: its adapter
 * block (NULL: the base adapter) and the average the series published
 * from it (NULL: none stored; one this model cannot take is logged), so
 * that the series publishes what it published then.  1: with that
 * average; 0: from the version itself; the engine's negative errno when
 * the adapter was not loaded (nothing logged). */
int run_restore_version(struct run *r, const char *key, const float *adapter,
			size_t len, uint64_t version, const uint16_t *average,
			size_t average_len);
/* A stored adapter version into the engine (logged and counted); 0 or a
 * negative errno. */
int run_restore_stored(struct run *r, const struct store_restored *rs);
/* Saved recent values into the engine; 0 or a negative
 * errno (-EBADMSG: they failed their checksum). */
int run_restore_ring(struct run *r, const struct store_recent *sr);
/* At start: every stored series' current adapter into the engine, then
 * the saved recent values. */
void run_restore(struct run *r);
/* At a clean stop, after the last batch is durable: every series' recent
 * values into SQLite. */
void run_save_recent(struct run *r);
/* The recent values of every series changed since the last durable batch
 * into the open one (ttt_engine_recent_saved once it is durable).  On
 * failure (r->err says why) every saved row is deleted in the batch
 * instead, so that none is older than the offsets it stores. */
int run_recent_changed_put(struct run *r);
struct ttt_recent;
/* A series' recent values (ring and position) into the open batch, as a
 * clean stop saves them; 0 or a negative errno (r->err says why). */
int run_recent_put(struct run *r, const struct ttt_recent *rc);

#endif
