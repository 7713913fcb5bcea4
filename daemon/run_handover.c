/*
 * A partition's series changing hands between the hosts of a consumer
 * group (docs/OPERATIONS.md, "Running several hosts"):
 *   - which series this host serves, by input partition (the owner table,
 *     fed by every observation, recorded in SQLite's series.partition);
 *   - on assignment: where the partition starts (dc_kafka_start_offset,
 *     moved on by the state topic's handover marks) and whose state its
 *     series continue from -- this host's database when it is at least
 *     as new as the group, else the state topic (run_changelog.c), else
 *     the base adapter with the version numbering going on;
 *   - on revocation: after the partition's batch is durable (and its
 *     state published), the series are forgotten: engine, metrics; the
 *     database marks them handed over and keeps their recent values, saved
 *     with every batch (used only if the partition comes back with
 *     nothing applied elsewhere).
 */
#include "daemon/run_handover.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/status.h"
#include "forecast/fnv1a.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"

/* a held partition's state partition read again after 1 s, then after
 * twice as long each time, at most every 30 s */
#define RESTORE_RETRY_MIN_USEC 1000000u
#define RESTORE_RETRY_MAX_USEC 30000000u

/* ---- the owner table: series key -> input partition ------------------ */

struct owned {
	struct owned *next;
	uint64_t hash;
	int32_t part;
	bool dirty; /* changed since its state was last published */
	char key[];
};

struct owners {
	struct owned **b;
	size_t nb, count;
};

static uint64_t key_hash(const char *s)
{
	return fc_fnv1a_str(FC_FNV1A_INIT, s);
}

static struct owned *owner_find(const struct owners *o, const char *key,
				uint64_t h)
{
	if (!o || !o->nb)
		return NULL;
	for (struct owned *w = o->b[h & (o->nb - 1)]; w; w = w->next)
		if (w->hash == h && strcmp(w->key, key) == 0)
			return w;
	return NULL;
}

static int owners_grow(struct owners *o)
{
	size_t nb = o->nb ? o->nb * 2 : 256;
	struct owned **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < o->nb; i++)
		for (struct owned *w = o->b[i], *n; w; w = n) {
			n = w->next;
			w->next = b[w->hash & (nb - 1)];
			b[w->hash & (nb - 1)] = w;
		}
	free(o->b);
	o->b = b;
	o->nb = nb;
	return 0;
}

static struct owned *owner_add(struct run *r, const char *key, uint64_t h,
			       int32_t p)
{
	struct owners *o = r->owners;
	struct owned *w = owner_find(o, key, h);
	if (w) {
		w->part = p;
		return w;
	}
	if (!o && !(o = r->owners = calloc(1, sizeof(*o))))
		return NULL;
	if (o->count + 1 > o->nb && owners_grow(o) < 0)
		return NULL;
	size_t len = strlen(key);
	w = malloc(sizeof(*w) + len + 1);
	if (!w)
		return NULL;
	memcpy(w->key, key, len + 1);
	w->hash = h;
	w->part = p;
	w->dirty = false;
	w->next = o->b[h & (o->nb - 1)];
	o->b[h & (o->nb - 1)] = w;
	o->count++;
	return w;
}

void run_owner_claim(struct run *r, const char *key, int32_t p)
{
	if (!owner_add(r, key, key_hash(key), p))
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"out of memory noting series %s", key);
}

void run_owners_free(struct run *r)
{
	struct owners *o = r->owners;
	if (!o)
		return;
	for (size_t i = 0; i < o->nb; i++)
		for (struct owned *w = o->b[i], *n; w; w = n) {
			n = w->next;
			free(w);
		}
	free(o->b);
	free(o);
	r->owners = NULL;
}

/* Record in the batch that key arrives on partition p. */
static void record_partition(struct run *r, const char *key, int32_t p)
{
	if (store_series_partition_put(r->store, key, p, r->err,
				       sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

void run_owner_note(struct run *r, const char *key, int32_t p)
{
	uint64_t h = key_hash(key);
	struct owned *w = owner_find(r->owners, key, h);
	if (w && w->part == p) {
		w->dirty = true;
		return;
	}
	if (w) {
		/* the input was repartitioned (or a producer changed its
		 * partitioner): the series now lives with p */
		log_warning("series %s arrives on partition %d, before on %d",
			    key, p, w->part);
		w->part = p;
	} else if (!(w = owner_add(r, key, h, p))) {
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"out of memory noting series %s", key);
		return;
	}
	w->dirty = true;
	record_partition(r, key, p);
}

int run_owner_each(struct run *r, int32_t p, run_owner_fn fn, void *user)
{
	struct owners *o = r->owners;
	if (!o)
		return 0;
	for (size_t i = 0; i < o->nb; i++)
		for (struct owned *w = o->b[i]; w; w = w->next)
			if (p < 0 || w->part == p) {
				int e = fn(r, w->key, w->part, &w->dirty, user);
				if (e)
					return e;
			}
	return 0;
}

/* Drop every entry of partition p. */
static void owners_drop(struct run *r, int32_t p)
{
	struct owners *o = r->owners;
	if (!o)
		return;
	for (size_t i = 0; i < o->nb; i++)
		for (struct owned **pp = &o->b[i]; *pp;) {
			struct owned *w = *pp;
			if (w->part != p) {
				pp = &w->next;
				continue;
			}
			*pp = w->next;
			free(w);
			o->count--;
		}
}

/* ---- a revoke while the batch is held -------------------------------- */

struct held_save {
	struct run *r;
	bool part[MAX_PARTITIONS];
};

static int save_if_revoked(void *user, const struct ttt_recent *rc)
{
	struct held_save *h = user;
	const struct owned *w =
	    owner_find(h->r->owners, rc->key, key_hash(rc->key));
	if (!w || w->part < 0 || w->part >= MAX_PARTITIONS || !h->part[w->part])
		return 0;
	return run_recent_put(h->r, rc);
}

void run_held_revoke(struct run *r,
		     const rd_kafka_topic_partition_list_t *parts)
{
	struct held_save h = {.r = r};
	bool any = false;
	/* a batch the database refused is written again from the journal,
	 * without these: run_batch_flush drops the partitions' saved values */
	if (!r->held || r->degraded)
		return;
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		if (p < 0 || p >= MAX_PARTITIONS || r->batch_next[p] < 0)
			continue;
		if (store_offset_put(r->store, r->cfg.kafka.input_topic, p,
				     r->batch_next[p], r->err,
				     sizeof(r->err)) < 0) {
			log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s",
					r->err);
			return;
		}
		h.part[p] = any = true;
	}
	if (!any)
		return;
	/* the series that changed since the last durable batch: the others'
	 * saved values already describe them */
	r->err[0] = '\0';
	int e = ttt_engine_each_changed_recent(r->engine, save_if_revoked, &h);
	if (e < 0) {
		log_ratelimited(&r->rl_store, LOG_ERR,
				"saving the recent values of revoked series: "
				"%s",
				r->err[0] ? r->err : strerror(-e));
		return;
	}
	for (int p = 0; p < MAX_PARTITIONS; p++)
		r->held_saved[p] |= h.part[p];
}

/* ---- assignment: restore a partition's series ------------------------ */

struct assign_ctx {
	struct run *r;
	int32_t p;
	int64_t start;
	bool fresh; /* this host's state is as new as the group's */
	size_t local, anchored, rings, bad;
};

/* A series of the partition whose state here is current. */
static int restore_local(void *user, const struct store_restored *rs)
{
	struct assign_ctx *c = user;
	struct run *r = c->r;
	if (run_changelog_restored(r, rs->series))
		return 0; /* the state topic had a newer one */
	if (run_restore_stored(r, rs) < 0) {
		c->bad++;
		return 0;
	}
	run_owner_claim(r, rs->series, c->p);
	c->local++;
	return 0;
}

/* A series of the partition whose state here is older than what the group
 * committed, and of which the state topic had nothing newer: its stored
 * adapter is not used; it continues from the base adapter as a new version
 * of its lineage (so version numbers never go back). */
static int restore_anchor(void *user, const struct store_restored *rs)
{
	struct assign_ctx *c = user;
	struct run *r = c->r;
	if (run_changelog_restored(r, rs->series))
		return 0;
	char note[160];
	snprintf(note, sizeof(note),
		 "handed over: the state here (version %" PRIu64
		 ") is older than the group's offset %" PRId64
		 " of partition %d and no newer state was found: base "
		 "adapter",
		 rs->version, c->start, c->p);
	struct store_adopted a = {
	    .series = rs->series,
	    .number = rs->version + 1,
	    .parent = (int64_t)rs->version,
	    .ts = rs->last_ts,
	    .note = note,
	};
	uint64_t number = a.number;
	if (store_version_adopt(r->store, &a, &number, r->err, sizeof(r->err)) <
	    0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
	struct store_handover h = {
	    .series = rs->series,
	    .partition = c->p,
	    .in = true,
	    .source = "anchor",
	    .version = (int64_t)number,
	    .next_offset = c->start,
	    .note = note,
	};
	if (store_handover_put(r->store, &h, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
	if (ttt_engine_restore_series(r->engine, rs->series, NULL, 0, number,
				      INT64_MIN) == 0) {
		run_owner_claim(r, rs->series, c->p);
		c->anchored++;
	}
	return 0;
}

static int restore_ring(void *user, const struct store_recent *sr)
{
	struct assign_ctx *c = user;
	if (!run_changelog_restored(c->r, sr->series) &&
	    run_restore_ring(c->r, sr) == 0)
		c->rings++;
	return 0;
}

/* The rows of a handover now, unless a batch is held (a dead letter not
 * delivered, a full disk): committing would make its rows durable before
 * their dead letters are, so they join it and commit with it. */
static bool commit_unless_held(struct run *r)
{
	if (r->held)
		return false;
	if (store_batch_commit(r->store, r->err, sizeof(r->err)) < 0) {
		log_error("storage: %s", r->err);
		return false;
	}
	return true;
}

static void assign_one(struct run *r, const struct dc_kafka_start *st)
{
	struct assign_ctx c = {.r = r, .p = st->partition, .start = st->start};
	uint64_t t0 = dc_now_monotonic_usec();
	uint64_t resets0 = r->st.model_resets;
	c.fresh = st->from == DC_START_APPLIED;
	size_t from_log = run_changelog_restore(r, st);
	int e = store_restore_partition(
	    r->store, c.p, c.fresh ? restore_local : restore_anchor, &c, NULL,
	    r->err, sizeof(r->err));
	if (e < 0)
		log_error("storage: restoring partition %d: %s", c.p, r->err);
	/* saved rings describe the state at this host's applied offset:
	 * used only when that is where the partition starts */
	if (store_recent_take_partition(r->store, c.p,
					c.fresh ? restore_ring : NULL, &c, NULL,
					r->err, sizeof(r->err)) < 0)
		log_error("storage: saved recent values of partition %d: %s",
			  c.p, r->err);
	/* the take deleted the rows: the restored values (from here or the
	 * state topic) saved again with the rows of the move, in case the
	 * next stop or crash comes before their next value */
	run_recent_changed_put(r);
	if (commit_unless_held(r))
		ttt_engine_recent_saved(r->engine);
	run_changelog_forget_restored(r);
	r->st.restored += from_log;
	log_notice("%s[%d] assigned at offset %" PRId64
		   ": %zu series from this host's database (%zu with their "
		   "recent values), %zu from the state topic, %zu from the "
		   "base adapter (state here too old), %zu unusable, in "
		   "%.3f s",
		   st->topic, c.p, st->start, c.local, c.rings, from_log,
		   c.anchored, c.bad,
		   (double)(dc_now_monotonic_usec() - t0) / 1e6);
	if (r->st.model_resets > resets0)
		log_notice("%s[%d]: %" PRIu64 " of the series from this "
			   "host's database start again from the base "
			   "adapter: their versions were made with another "
			   "base model",
			   st->topic, c.p, r->st.model_resets - resets0);
}

/* This host's state is ahead of the group's commit but its recent values
 * were not saved (it crashed between a batch and the next commit): alone,
 * each series would refill a lookback before forecasting again.  With the
 * state topic, the states at the group's commit carry the recent values:
 * start there, as another host would, and apply the messages after it
 * again (their forecasts are published again; the states' versions join
 * the lineage here after its newest, store_version_adopt).  Unless the
 * topic holds nothing of the partition (created or emptied since): then
 * every series would go back to the base adapter, and this host's
 * database is the better state.  Reads the state topic either way. */
static bool ahead_without_rings(struct run *r, const struct dc_kafka_start *st)
{
	size_t saved = 0;
	if (!run_state_topic(r) || st->from != DC_START_APPLIED ||
	    st->committed < 0 || st->applied_next <= st->committed)
		return false;
	if (store_recent_count_partition(r->store, st->partition, &saved,
					 r->err, sizeof(r->err)) < 0) {
		log_error("storage: %s", r->err);
		return false;
	}
	return saved == 0;
}

static int start_after_crash(struct run *r, struct dc_kafka_start *st)
{
	int64_t applied = st->applied_next;
	if (!ahead_without_rings(r, st))
		return run_changelog_start(r, st);
	st->start = st->committed;
	st->from = DC_START_COMMITTED;
	int e = run_changelog_start(r, st);
	if (e < 0)
		return e;
	if (run_changelog_read_count(r) == 0) {
		log_notice("%s[%d]: this host's state (offset %" PRId64
			   ") is ahead of the group's commit (%" PRId64
			   ") without its recent values (the last stop was "
			   "not clean), and the state topic holds no state "
			   "of it: continuing from this host's database "
			   "(lookbacks refill)",
			   st->topic, st->partition, applied, st->committed);
		st->start = applied;
		st->from = DC_START_APPLIED;
		return 0;
	}
	log_notice("%s[%d]: this host's state (offset %" PRId64
		   ") is ahead of the group's commit (%" PRId64
		   ") but its recent values were not saved (the last stop "
		   "was not clean): starting at offset %" PRId64
		   " from the state topic; the forecasts of offsets %" PRId64
		   "-%" PRId64 " are published again",
		   st->topic, st->partition, applied, st->committed, st->start,
		   st->start, applied - 1);
	return 0;
}

/* Restore partition st (p in range) and decide where it starts; false if
 * its state partition could not be read whole: st is then as it came, and
 * the partition is held (nothing of it applied or committed). */
static bool assign_partition(struct run *r, struct dc_kafka_start *st)
{
	int32_t p = st->partition;
	struct dc_kafka_start orig = *st;
	/* another held partition's read goes on first (its records are the
	 * reader's): this one waits, unread */
	int32_t busy = run_changelog_resuming(r);
	bool wait = busy >= 0 && busy != p && busy < MAX_PARTITIONS &&
		    r->restoring[busy];
	if (wait && !r->restoring[p])
		log_notice("%s[%d] is held, unread, until the read of the "
			   "state partition %d, stopped part way, ends",
			   st->topic, p, busy);
	if (wait || start_after_crash(r, st) < 0) { /* reads the state topic */
		*st = orig;
		if (!r->restoring[p]) {
			r->restoring[p] = true;
			r->restore_st[p] = orig;
			r->restore_st[p].topic = r->cfg.kafka.input_topic;
			r->nrestoring++;
		}
		r->applied_next[p] = r->durable_next[p] = -1;
		return false;
	}
	if (st->from == DC_START_COMMITTED && st->applied_next >= 0 &&
	    st->applied_next < st->start)
		log_notice("%s[%d]: this host's state (offset %" PRId64
			   ") is older than the group's (%" PRId64
			   "): another host served the partition since; it "
			   "is not re-applied",
			   st->topic, p, st->applied_next, st->start);
	/* messages below the start were applied by some host (a held
	 * batch's: durable once it commits) */
	r->applied_next[p] = r->durable_next[p] = st->start;
	if (r->held && r->batch_next[p] >= 0)
		r->durable_next[p] = -1;
	assign_one(r, st);
	return true;
}

static void restoring_end(struct run *r, int32_t p)
{
	if (r->restoring[p]) {
		r->restoring[p] = false;
		r->nrestoring--;
	}
}

void run_hook_on_assign(void *user, struct dc_kafka_start *st, int n)
{
	struct run *r = user;
	/* the open batch durable first: restoring writes rows of its own */
	run_batch_flush(r, true);
	for (int i = 0; i < n; i++) {
		int32_t p = st[i].partition;
		if (p < 0 || p >= MAX_PARTITIONS)
			continue;
		restoring_end(r, p); /* revoked while held, and back */
		st[i].hold = !assign_partition(r, &st[i]);
	}
	if (r->nrestoring) {
		r->restore_wait_usec = RESTORE_RETRY_MIN_USEC;
		r->restore_due_usec =
		    dc_now_monotonic_usec() + r->restore_wait_usec;
	}
}

void run_handover_retry(struct run *r, uint64_t now)
{
	if (!r->nrestoring || now < r->restore_due_usec)
		return;
	/* one partition a turn, in turn: the loop serves the others (and
	 * the group) between two reads */
	int32_t p = r->restore_next;
	for (int i = 0; i < MAX_PARTITIONS && !r->restoring[p]; i++)
		p = (p + 1) % MAX_PARTITIONS;
	if (!r->restoring[p]) { /* the count without its flags: none */
		r->nrestoring = 0;
		return;
	}
	r->restore_next = (p + 1) % MAX_PARTITIONS;
	/* a read that stopped part way goes on first, to its end */
	int32_t busy = run_changelog_resuming(r);
	if (busy >= 0 && busy < MAX_PARTITIONS && r->restoring[busy])
		p = busy;
	if (!dc_kafka_held(r->kafka, p)) { /* gone: a rebalance error */
		restoring_end(r, p);
		run_changelog_drop_resume(r, p);
		return;
	}
	run_batch_flush(r, true);
	/* where it starts, asked again: a held batch may have committed its
	 * offset meanwhile (the group's commit cannot move: nobody else owns
	 * the partition) */
	struct dc_kafka_start st = r->restore_st[p];
	int64_t applied = run_hook_applied_offset(r, st.topic, st.partition);
	st.applied_next = applied >= 0 ? applied + 1 : -1;
	st.start =
	    dc_kafka_start_offset(st.committed, st.applied_next, &st.from);
	if (!assign_partition(r, &st)) {
		if (r->restore_wait_usec < RESTORE_RETRY_MAX_USEC)
			r->restore_wait_usec *= 2;
		r->restore_due_usec = now + r->restore_wait_usec;
		return;
	}
	restoring_end(r, p);
	r->restore_wait_usec = RESTORE_RETRY_MIN_USEC;
	r->restore_due_usec = now; /* the next one at once */
	if (dc_kafka_release(r->kafka, p, st.start, r->err, sizeof(r->err)) < 0)
		return; /* held, not released: fatal, the loop stops */
	log_notice("%s[%d]: its states read, consumed from offset %" PRId64,
		   st.topic, p, st.start);
}

/* ---- revocation: forget a partition's series ------------------------- */

struct revoke_ctx {
	bool lost;
	bool stopping; /* this host's own stop, not another host's take */
	size_t n;
};

static int forget_one(struct run *r, const char *key, int32_t p, bool *dirty,
		      void *user)
{
	struct revoke_ctx *c = user;
	uint64_t version = 0;
	bool known = r->adapter_buf &&
		     ttt_engine_series_adapter(r->engine, key, r->adapter_buf,
					       r->adapter_len, &version) == 0;
	(void)dirty;
	struct store_handover h = {
	    .series = key,
	    .partition = p,
	    .in = false,
	    .source = c->lost	    ? "lost"
		      : c->stopping ? "stopped"
				    : "revoked",
	    .version = known ? (int64_t)version : -1,
	    .next_offset = r->durable_next[p],
	};
	if (store_handover_put(r->store, &h, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
	int e = ttt_engine_forget_series(r->engine, key);
	if (e < 0 && e != -ENOENT)
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"series %s: cannot forget it: %s", key,
				strerror(-e));
	c->n++;
	return 0;
}

void run_handover_out(struct run *r,
		      const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		struct revoke_ctx c = {.lost = lost,
				       .stopping = r->stop_deadline_usec != 0};
		if (p < 0 || p >= MAX_PARTITIONS)
			continue;
		restoring_end(r, p);
		run_changelog_drop_resume(r, p);
		run_owner_each(r, p, forget_one, &c);
		owners_drop(r, p);
		dc_status_partition_forgotten(dc_metrics_status(r->metrics), p);
		/* Durable, the batch saved the series' recent values with
		 * its offsets: when the partition comes back and nobody
		 * served it meanwhile (a lost session, a rebalance that
		 * returns it), they forecast at their next value; when
		 * another host did, assign_one drops them.  Held, the batch
		 * will store offsets past them: run_batch_flush drops them
		 * when it commits. */
		bool held = r->held;
		commit_unless_held(r);
		log_notice("%s[%d] %s: %zu series handed over and forgotten "
			   "here (%s)",
			   parts->elems[i].topic, p, lost ? "lost" : "revoked",
			   c.n,
			   held ? "the batch is held: their saved recent "
				  "values go with it"
				: "their recent values saved");
	}
}
