/*
 * The state topic (kafka.state_topic): every series' state as a changelog,
 * keyed by series and written to the partition number of the series'
 * input partition, so whichever host owns a partition can restore its
 * series from Kafka (Kafka Streams' changelog topics are the model).
 *
 * Writing: when offsets are committed (run_commit_offsets, never with a
 * batch open, so the engine's state is exactly what the offsets say), the
 * state of every series of each committed partition that changed since
 * its last record is produced, then a handover mark "partition p is
 * complete up to offset N"; the offsets are committed only once all of it
 * is acknowledged.  So for every commit or mark at N, each series' newest
 * record at or below N is its exact state at N.
 *
 * Reading, on assignment: the partition is read to its end; the start
 * moves past the newest mark (a commit the group refused during the
 * rebalance is made good by it); per series, the newest valid record at
 * or below the start is kept.  A record that does not parse, fails its
 * checksum, or belongs to another model or adapter layout is refused with
 * the reason logged and counted.  Then run_handover.c asks which series
 * it restored: those do not use this host's (older) stored state.
 */
#include "daemon/run_handover.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/changelog.h"
#include "daemon/log.h"
#include "daemon/notify.h"
#include "forecast/forecast.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"

#define READ_TIMEOUT_MS 60000
/* State records are encoded into chunks of this size that librdkafka
 * sends from without a copy; a larger record is copied. */
#define CHUNK_BYTES (1u << 20)

/* A chunk of encoded records, kept from commit to commit: a fresh
 * allocation per record (librdkafka's copy) faulted new pages in at every
 * commit (glibc gives the freed heap back between commits), which cost
 * more than everything else a record does. */
struct chunk {
	struct chunk *next;
	size_t used;
	unsigned char data[];
};

/* One state record read from the topic: its bytes, in log order. */
struct kept {
	unsigned char *bytes;
	size_t len;
	const char *key; /* into bytes */
	size_t key_len;
	int64_t next_offset;
	size_t order;
	bool chosen, applied;
};

struct changelog {
	struct dc_changelog_host check;	     /* what records must match */
	size_t seg_off[4], seg_len[4], nseg; /* where adapters may differ */
	float *block; /* [adapter_len]: the base, but in those ranges */
	char host[DC_CHANGELOG_HOST_MAX];
	unsigned char *enc; /* encode buffer [enc_cap] */
	size_t enc_cap;
	/* the chunks (all kept) and the one being filled; usable: this
	 * publish fills them (no record of an earlier one is still in
	 * flight, else records are copied) */
	struct chunk *chunks, *cur;
	bool usable;
	/* state records produced and not yet reported delivered, and how
	 * many of those reported failed */
	long inflight;
	size_t failed;
	/* the offsets whose states are in flight: committed once they are
	 * all acknowledged (NULL: none) */
	rd_kafka_topic_partition_list_t *pending;
	float *ring; /* [ring_len] */
	size_t ring_len;
	float *dec; /* decode scratch [dec_cap] */
	size_t dec_cap;
	/* the partition being assigned */
	struct kept *kept;
	size_t nkept, capkept;
	int64_t mark; /* newest handover mark, -1 */
	int32_t part;
	/* a read of partition resume_part that ran out of time: what it kept
	 * is still kept, and the next read goes on at resume_from (-1: none)
	 */
	int64_t resume_from;
	int32_t resume_part;
	size_t refused;
	bool missing_logged;
};

const char *run_state_topic(const struct run *r)
{
	return strcmp(r->cfg.kafka.state_topic, "off")
		   ? r->cfg.kafka.state_topic
		   : NULL;
}

static struct changelog *cl_get(struct run *r)
{
	if (!run_state_topic(r))
		return NULL;
	if (r->changelog)
		return r->changelog;
	struct changelog *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ring_len = ttt_engine_ring_len(r->engine);
	c->ring = calloc(c->ring_len, sizeof(float));
	/* adapter, values, and a published average of at most the adapter's
	 * length in half precision */
	c->dec_cap = r->adapter_len + c->ring_len + (r->adapter_len + 1) / 2;
	c->dec = calloc(c->dec_cap ? c->dec_cap : 1, sizeof(float));
	c->block = calloc(r->adapter_len ? r->adapter_len : 1, sizeof(float));
	if (!c->ring || !c->dec || !c->block) {
		free(c->ring);
		free(c->dec);
		free(c->block);
		free(c);
		return NULL;
	}
	c->check = (struct dc_changelog_host){
	    .model_hash = r->model_hash,
	    .adapter_len = r->adapter_len,
	    .base = ttt_engine_base_adapter(r->engine),
	};
	c->check.base_hash =
	    dc_changelog_floats_hash(c->check.base, r->adapter_len);
	c->nseg =
	    ttt_engine_adapter_segments(r->engine, c->seg_off, c->seg_len, 4);
	if (c->nseg > 4)
		c->nseg = 0; /* more than we hold: look everywhere */
	memcpy(c->block, c->check.base, r->adapter_len * sizeof(float));
	snprintf(c->host, sizeof(c->host), "%.*s", (int)sizeof(c->host) - 1,
		 r->host);
	c->mark = -1;
	c->resume_from = -1;
	r->changelog = c;
	return c;
}

static void kept_clear(struct changelog *c)
{
	for (size_t i = 0; i < c->nkept; i++)
		free(c->kept[i].bytes);
	c->nkept = 0;
	c->mark = -1;
	c->refused = 0;
	c->resume_from = -1;
}

void run_changelog_free(struct run *r)
{
	struct changelog *c = r->changelog;
	if (!c)
		return;
	kept_clear(c);
	free(c->kept);
	free(c->enc);
	if (c->pending)
		rd_kafka_topic_partition_list_destroy(c->pending);
	/* after dc_kafka_free: nothing points into the chunks any more */
	while (c->chunks) {
		struct chunk *next = c->chunks->next;
		free(c->chunks);
		c->chunks = next;
	}
	free(c->ring);
	free(c->dec);
	free(c->block);
	free(c);
	r->changelog = NULL;
}

/* ---- writing ----------------------------------------------------------- */

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Room for n bytes in the chunks, or NULL (copy the record instead). */
static unsigned char *chunk_room(struct changelog *c, size_t n)
{
	if (!c->usable || n > CHUNK_BYTES)
		return NULL;
	while (c->cur && c->cur->used + n > CHUNK_BYTES) {
		if (!c->cur->next) {
			struct chunk *k = malloc(sizeof(*k) + CHUNK_BYTES);
			if (!k)
				return NULL;
			k->next = NULL;
			c->cur->next = k;
		}
		c->cur = c->cur->next;
		c->cur->used = 0;
	}
	if (!c->cur) {
		if (!(c->chunks = malloc(sizeof(*c->chunks) + CHUNK_BYTES)))
			return NULL;
		c->chunks->next = NULL;
		c->chunks->used = 0;
		c->cur = c->chunks;
	}
	return c->cur->data + c->cur->used;
}

void run_changelog_delivered(struct run *r, bool failed)
{
	struct changelog *c = r->changelog;
	if (!c || c->inflight == 0)
		return;
	c->inflight--;
	c->failed += failed;
}

static int produce(struct run *r, struct changelog *c, int32_t p,
		   const char *key, size_t key_len,
		   const struct dc_changelog_rec *rec)
{
	size_t n = dc_changelog_size(rec);
	unsigned char *room = chunk_room(c, n);
	if (room) {
		n = dc_changelog_encode(rec, room, n);
		if (!n)
			return -EINVAL;
		int e = dc_kafka_produce_borrowed(
		    r->kafka, r->cfg.kafka.state_topic, p, key, key_len, room,
		    n, RUN_STATE_TOKEN);
		if (e == 0) {
			c->cur->used += n;
			c->inflight++;
		}
		return e;
	}
	if (n > c->enc_cap) {
		unsigned char *b = realloc(c->enc, n);
		if (!b)
			return -ENOMEM;
		c->enc = b;
		c->enc_cap = n;
	}
	n = dc_changelog_encode(rec, c->enc, c->enc_cap);
	if (!n)
		return -EINVAL;
	int e =
	    dc_kafka_produce_to(r->kafka, r->cfg.kafka.state_topic, p, key,
				key_len, c->enc, n, NULL, 0, RUN_STATE_TOKEN);
	c->inflight += e == 0;
	return e;
}

struct publish_ctx {
	struct changelog *c;
	int64_t next;
	size_t n;
	int err;
};

static int publish_one(struct run *r, const char *key, int32_t p, bool *dirty,
		       void *user)
{
	struct publish_ctx *x = user;
	struct changelog *c = x->c;
	uint64_t version = 0;
	if (!*dirty)
		return 0;
	/* only the active ranges: c->block is the base elsewhere */
	int e = c->nseg
		    ? ttt_engine_series_adapter_active(r->engine, key, c->block,
						       r->adapter_len, &version)
		    : ttt_engine_series_adapter(r->engine, key, c->block,
						r->adapter_len, &version);
	if (e < 0)
		return 0; /* not in the engine: nothing to hand on */
	struct dc_changelog_rec rec = {
	    .kind = DC_CHANGELOG_STATE,
	    .model_hash = c->check.model_hash,
	    .partition = p,
	    .next_offset = x->next,
	    .made_at_ms = store_now_ms(),
	    .key = key,
	    .key_len = strlen(key),
	    .version = version,
	    .parent = version ? (int64_t)version - 1 : -1,
	    .adapter = c->block,
	    .adapter_len = r->adapter_len,
	    .base = c->check.base,
	    .base_hash = c->check.base_hash,
	    .seg_off = c->seg_off,
	    .seg_len = c->seg_len,
	    .nseg = c->nseg,
	};
	memcpy(rec.host, c->host, sizeof(rec.host));
	struct ttt_recent rc;
	if (ttt_engine_series_recent(r->engine, key, c->ring, c->ring_len,
				     &rc) == 0) {
		rec.has_ring = true;
		rec.last_ts = rc.last_ts;
		rec.step = rc.step;
		rec.position = rc.position;
		rec.since_adapt = rc.since_adapt;
		rec.adaptations = rc.adaptations;
		rec.values = rc.values;
		rec.count = (size_t)rc.count;
		rec.average = rc.average;
		rec.average_len = rc.average_len;
		rec.average_version = rc.average_version;
		rec.recal = rc.recal;
		rec.recal_len = rc.recal_len;
	}
	e = produce(r, c, p, key, rec.key_len, &rec);
	if (e < 0) {
		x->err = e;
		return e;
	}
	*dirty = false;
	x->n++;
	r->st.states_bytes += dc_changelog_size(&rec);
	return 0;
}

int run_changelog_publish(struct run *r,
			  const rd_kafka_topic_partition_list_t *offsets)
{
	struct changelog *c = cl_get(r);
	size_t n = 0;
	if (!run_state_topic(r))
		return 0;
	if (!c) {
		log_error("state topic: out of memory; offsets not committed");
		return -ENOMEM;
	}
	uint64_t cpu0 = thread_cpu_ns();
	/* every earlier record delivered: the chunks are free again */
	c->usable = c->inflight == 0;
	if (c->usable && c->chunks) {
		c->cur = c->chunks;
		c->cur->used = 0;
	}
	c->failed = 0;
	/* queued learning would change the states being written */
	if (ttt_engine_flush(r->engine) < 0)
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"forecasts before publishing states lost");
	for (int i = 0; i < offsets->cnt; i++) {
		int32_t p = offsets->elems[i].partition;
		struct publish_ctx x = {.c = c,
					.next = offsets->elems[i].offset};
		run_owner_each(r, p, publish_one, &x);
		struct dc_changelog_rec mark = {
		    .kind = DC_CHANGELOG_MARK,
		    .model_hash = c->check.model_hash,
		    .partition = p,
		    .next_offset = x.next,
		    .made_at_ms = store_now_ms(),
		};
		memcpy(mark.host, c->host, sizeof(mark.host));
		if (x.err == 0)
			x.err = produce(r, c, p, DC_CHANGELOG_MARK_KEY,
					strlen(DC_CHANGELOG_MARK_KEY), &mark);
		if (x.err < 0) {
			log_ratelimited(&r->rl_store, LOG_ERR,
					"state topic %s: cannot produce: %s; "
					"offsets not committed",
					r->cfg.kafka.state_topic,
					strerror(-x.err));
			return x.err;
		}
		n += x.n;
	}
	r->st.states_cpu_ns += thread_cpu_ns() - cpu0;
	r->st.states_published += n;
	return 0;
}

static int settle(struct run *r, bool wait);

static int redirty(struct run *r, const char *key, int32_t p, bool *dirty,
		   void *user)
{
	(void)r, (void)key, (void)p, (void)user;
	*dirty = true;
	return 0;
}

/* A commit whose states did not all reach the topic: every series of its
 * partitions is published again with the next one (which of them failed
 * is not known), and its offsets are due again, so the next interval
 * retries even when no new message arrives. */
static void retry(struct run *r, const rd_kafka_topic_partition_list_t *l)
{
	for (int i = 0; i < l->cnt; i++) {
		int32_t p = l->elems[i].partition;
		if (p < 0 || p >= MAX_PARTITIONS)
			continue;
		run_owner_each(r, p, redirty, NULL);
		if (r->kafka_next[p] < 0)
			r->kafka_next[p] = l->elems[i].offset;
		r->kafka_pending = true;
	}
}

bool run_changelog_waiting(struct run *r, bool final, bool wait)
{
	struct changelog *c = r->changelog;
	if (!c || !c->pending)
		return false;
	int e = settle(r, final);
	if (e == 0)
		return true;
	if (e > 0)
		dc_kafka_commit(r->kafka, c->pending, wait);
	else if (e != -ETIMEDOUT)
		retry(r, c->pending);
	rd_kafka_topic_partition_list_destroy(c->pending);
	c->pending = NULL;
	return false;
}

void run_changelog_commit(struct run *r, rd_kafka_topic_partition_list_t *l,
			  bool final, bool wait)
{
	struct changelog *c = r->changelog;
	if (run_changelog_publish(r, l) < 0 || !(c = r->changelog)) {
		retry(r, l);
		return;
	}
	if (!(c->pending = rd_kafka_topic_partition_list_copy(l))) {
		log_error("state topic: out of memory; offsets not committed");
		return;
	}
	if (final) /* a revoke or a stop: now, before anyone takes over */
		run_changelog_waiting(r, true, wait);
}

void run_changelog_drop(struct run *r,
			const rd_kafka_topic_partition_list_t *parts)
{
	struct changelog *c = r->changelog;
	if (!c || !c->pending)
		return;
	for (int i = 0; i < parts->cnt; i++)
		rd_kafka_topic_partition_list_del(c->pending,
						  parts->elems[i].topic,
						  parts->elems[i].partition);
}

/* The states in flight acknowledged, waited for at most
 * kafka.stop_timeout_ms: delivery reports served in slices, the watchdog
 * fed.  Not a flush of the producer: forecasts and dead letters stay in
 * flight (a forecasts topic without a leader held every rebalance, and
 * the partitions this host keeps, until it had one again).  -ETIMEDOUT
 * when the time is up or the stop forced: the offsets are not committed,
 * and the partitions' next owner replays from the last commit. */
static int wait_states(struct run *r)
{
	struct changelog *c = r->changelog;
	uint64_t t0 = dc_now_monotonic_usec(), warned = t0;
	uint64_t until = t0 + (uint64_t)r->cfg.kafka.stop_timeout_ms * 1000u;
	while (c->inflight > 0) {
		dc_kafka_wait_producer(r->kafka, 100);
		uint64_t now = dc_now_monotonic_usec();
		notify_watchdog_tick(now);
		if (c->inflight == 0)
			break;
		if (run_stop_forced(r) || now >= until) {
			log_warning("state topic %s: %ld states not "
				    "acknowledged after %.1f s: offsets not "
				    "committed (the partitions' next owner "
				    "replays from the last commit)",
				    r->cfg.kafka.state_topic, c->inflight,
				    (double)(now - t0) / 1e6);
			return -ETIMEDOUT;
		}
		if (now - warned >= 1000000) {
			log_warning("waiting for the state topic %s to accept "
				    "%ld states",
				    r->cfg.kafka.state_topic, c->inflight);
			warned = now;
		}
	}
	return 0;
}

static int settle(struct run *r, bool wait)
{
	struct changelog *c = r->changelog;
	if (!c)
		return 1;
	if (c->inflight > 0 && wait) {
		uint64_t t0 = dc_now_monotonic_usec();
		int e = wait_states(r);
		r->st.states_wait_us += dc_now_monotonic_usec() - t0;
		if (e == -ETIMEDOUT)
			return e;
	}
	if (c->inflight > 0)
		return 0;
	if (c->failed) {
		log_ratelimited(&r->rl_store, LOG_ERR,
				"state topic %s: %zu states not acknowledged; "
				"offsets not committed",
				r->cfg.kafka.state_topic, c->failed);
		c->failed = 0;
		return -EIO;
	}
	return 1;
}

/* ---- reading ----------------------------------------------------------- */

static int read_one(void *user, int64_t offset, const void *key, size_t key_len,
		    const void *payload, size_t len)
{
	struct run *r = user;
	struct changelog *c = r->changelog;
	struct dc_changelog_rec rec;
	char why[160];
	(void)key, (void)key_len;
	int e = dc_changelog_decode(payload, len, &c->check, NULL, 0, &rec, why,
				    sizeof(why));
	if (e == 0 && rec.partition != c->part) {
		snprintf(why, sizeof(why),
			 "written for input partition %d, not %d",
			 rec.partition, c->part);
		e = -EINVAL;
	}
	if (e < 0) {
		c->refused++;
		r->st.states_refused++;
		log_ratelimited(&r->rl_store, LOG_WARNING,
				"state topic %s[%d] offset %" PRId64
				": record refused: %s",
				r->cfg.kafka.state_topic, c->part, offset, why);
		return 0;
	}
	if (rec.kind == DC_CHANGELOG_MARK) {
		if (rec.next_offset > c->mark)
			c->mark = rec.next_offset;
		return 0;
	}
	if (c->nkept == c->capkept) {
		size_t cap = c->capkept ? c->capkept * 2 : 256;
		struct kept *k = realloc(c->kept, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		c->kept = k;
		c->capkept = cap;
	}
	struct kept *k = &c->kept[c->nkept];
	if (!(k->bytes = malloc(len)))
		return -ENOMEM;
	memcpy(k->bytes, payload, len);
	k->len = len;
	k->key = (const char *)k->bytes + (rec.key - (const char *)payload);
	k->key_len = rec.key_len;
	k->next_offset = rec.next_offset;
	k->order = c->nkept++;
	k->chosen = k->applied = false;
	return 0;
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int d = memcmp(a, b, al < bl ? al : bl);
	return d ? d : (al > bl) - (al < bl);
}

static int kept_order(const void *x, const void *y)
{
	const struct kept *a = x, *b = y;
	int d = key_cmp(a->key, a->key_len, b->key, b->key_len);
	return d ? d : (a->order > b->order) - (a->order < b->order);
}

int run_changelog_start(struct run *r, struct dc_kafka_start *st)
{
	struct changelog *c = cl_get(r);
	if (!c && run_state_topic(r)) { /* out of memory: read nothing */
		r->st.state_reads_failed++;
		log_error("state topic: out of memory: %s[%d] is held until "
			  "its states can be read",
			  st->topic, st->partition);
		return -ENOMEM;
	}
	if (!c)
		return 0;
	/* a read of this partition that ran out of time goes on from where
	 * it stopped: a partition too long to read in READ_TIMEOUT_MS is
	 * read in several */
	int64_t from = -1;
	if (c->resume_from >= 0 && c->resume_part == st->partition)
		from = c->resume_from;
	else
		kept_clear(c);
	c->resume_from = -1;
	c->part = st->partition;
	uint64_t t0 = dc_now_monotonic_usec();
	int e = dc_kafka_read_partition(
	    r->kafka, r->cfg.kafka.state_topic, st->partition, read_one, r,
	    &from, READ_TIMEOUT_MS, r->err, sizeof(r->err));
	if (e == -ENOENT) {
		kept_clear(c); /* a resumed read's records: no longer a log */
		if (!c->missing_logged)
			log_warning("state topic %s has no partition %d (%s): "
				    "create it with at least as many "
				    "partitions as %s",
				    r->cfg.kafka.state_topic, st->partition,
				    r->err, r->cfg.kafka.input_topic);
		c->missing_logged = true;
	} else if (e < 0) {
		/* a series whose newest state was not read would start from
		 * an older one, over this host's newer state perhaps */
		r->st.state_reads_failed++;
		log_error("state topic: %s (%s): %s[%d] is held, nothing of "
			  "it applied, until its states are read whole",
			  r->err, strerror(-e), st->topic, st->partition);
		if (e == -ETIMEDOUT || e == -EIO) { /* what was read is kept */
			c->resume_part = st->partition;
			c->resume_from = from;
		} else { /* -ENOMEM: a record was lost; -ERANGE: not a prefix */
			kept_clear(c);
		}
		return e;
	}
	/* a host that handed the partition over published every state up
	 * to its mark: what lies before was applied */
	if (c->mark > st->start) {
		log_notice("%s[%d]: handover mark at offset %" PRId64
			   " in the state topic, after the start %" PRId64
			   " (a commit the group refused): starting there",
			   st->topic, st->partition, c->mark, st->start);
		st->start = c->mark;
		if (st->applied_next < c->mark)
			st->from = DC_START_COMMITTED;
	}
	/* per series, dc_changelog_pick's record */
	int64_t consistent = c->mark > st->committed ? c->mark : st->committed;
	if (c->nkept) /* qsort's base may not be NULL, even for none */
		qsort(c->kept, c->nkept, sizeof(*c->kept), kept_order);
	int64_t *next = malloc((c->nkept ? c->nkept : 1) * sizeof(*next));
	if (!next) {
		r->st.state_reads_failed++;
		log_error("state topic: out of memory choosing states: "
			  "%s[%d] is held until they are read again",
			  st->topic, st->partition);
		kept_clear(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->nkept;) {
		size_t j = i;
		for (; j < c->nkept &&
		       !key_cmp(c->kept[i].key, c->kept[i].key_len,
				c->kept[j].key, c->kept[j].key_len);
		     j++)
			next[j - i] = c->kept[j].next_offset;
		long best =
		    dc_changelog_pick(next, j - i, st->start, consistent);
		if (best >= 0)
			c->kept[i + (size_t)best].chosen = true;
		i = j;
	}
	free(next);
	log_info("state topic %s[%d]: %zu records read, %zu refused, in %.3f s",
		 r->cfg.kafka.state_topic, st->partition, c->nkept, c->refused,
		 (double)(dc_now_monotonic_usec() - t0) / 1e6);
	return 0;
}

/* Restore one chosen record into the engine and the database; *n_avg
 * and *n_rcl count the records that carried a published average and a
 * recalibration. */
static int apply(struct run *r, struct changelog *c, struct kept *k,
		 const struct dc_kafka_start *st, size_t *n_avg, size_t *n_rcl)
{
	struct dc_changelog_rec rec;
	char why[160], key[STORE_KEY_MAX], note[512];
	int e = dc_changelog_decode(k->bytes, k->len, &c->check, c->dec,
				    c->dec_cap, &rec, why, sizeof(why));
	if (e < 0 || rec.key_len >= sizeof(key))
		return e < 0 ? e : -EINVAL;
	memcpy(key, rec.key, rec.key_len);
	key[rec.key_len] = '\0';
	ttt_engine_forget_series(r->engine, key); /* any older state here */
	e = ttt_engine_restore_series(r->engine, key, rec.adapter,
				      rec.adapter ? rec.adapter_len : 0,
				      rec.version, INT64_MIN);
	if (e == 0 && rec.has_ring) {
		struct ttt_recent rc = {
		    .key = key,
		    .last_ts = rec.last_ts,
		    .step = rec.step,
		    .position = rec.position,
		    .since_adapt = rec.since_adapt,
		    .adaptations = rec.adaptations,
		    .values = rec.values,
		    .count = (int)rec.count,
		    .average = rec.average,
		    .average_len = rec.average_len,
		    .average_version = rec.average_version,
		    .recal = rec.recal,
		    .recal_len = rec.recal_len,
		};
		e = ttt_engine_restore_recent(r->engine, &rc);
	}
	if (e < 0)
		return e;
	*n_avg += rec.has_ring && rec.average;
	*n_rcl += rec.has_ring && rec.recal;
	snprintf(note, sizeof(note),
		 "from the state topic %s[%d] (state at offset %" PRId64
		 ", version %" PRIu64 " there), made on %s",
		 r->cfg.kafka.state_topic, st->partition, rec.next_offset,
		 rec.version, rec.host[0] ? rec.host : "?");
	struct store_adopted a = {
	    .series = key,
	    .number = rec.version,
	    .parent = rec.parent,
	    .ts = rec.has_ring ? rec.last_ts : 0,
	    .adapter = rec.adapter,
	    .adapter_len = rec.adapter ? rec.adapter_len : 0,
	    .note = note,
	};
	if (rec.has_ring && rec.average && rec.average_version == rec.version) {
		a.average = rec.average;
		a.average_len = rec.average_len;
	}
	uint64_t number = rec.version;
	if (store_version_adopt(r->store, &a, &number, r->err, sizeof(r->err)) <
	    0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
	if (number != rec.version) /* the lineage here went further */
		run_restore_version(r, key, rec.adapter,
				    rec.adapter ? rec.adapter_len : 0, number,
				    a.average, a.average_len);
	struct store_handover h = {
	    .series = key,
	    .partition = st->partition,
	    .in = true,
	    .source = "changelog",
	    .version = (int64_t)number,
	    .next_offset = rec.next_offset,
	    .note = note,
	};
	if (store_handover_put(r->store, &h, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
	run_owner_claim(r, key, st->partition);
	return 0;
}

size_t run_changelog_restore(struct run *r, const struct dc_kafka_start *st)
{
	struct changelog *c = r->changelog;
	size_t n = 0, n_avg = 0, n_rcl = 0;
	if (!c || !run_state_topic(r))
		return 0;
	for (size_t i = 0; i < c->nkept; i++) {
		struct kept *k = &c->kept[i];
		if (!k->chosen)
			continue;
		int e = apply(r, c, k, st, &n_avg, &n_rcl);
		if (e < 0) {
			r->st.states_refused++;
			log_ratelimited(&r->rl_store, LOG_WARNING,
					"state topic %s[%d]: a state of %.*s "
					"not restored (%s): it continues from "
					"this host's state or the base adapter",
					r->cfg.kafka.state_topic, st->partition,
					(int)k->key_len, k->key, strerror(-e));
			continue;
		}
		k->applied = true;
		n++;
	}
	r->st.states_restored += n;
	if (n)
		log_info("state topic %s[%d]: %zu states restored, %zu with "
			 "a published average, %zu with a recalibration",
			 r->cfg.kafka.state_topic, st->partition, n, n_avg,
			 n_rcl);
	return n;
}

int32_t run_changelog_resuming(const struct run *r)
{
	const struct changelog *c = r->changelog;
	return c && c->resume_from >= 0 ? c->resume_part : -1;
}

void run_changelog_drop_resume(struct run *r, int32_t partition)
{
	struct changelog *c = r->changelog;
	if (c && c->resume_from >= 0 && c->resume_part == partition)
		kept_clear(c);
}

size_t run_changelog_read_count(const struct run *r)
{
	const struct changelog *c = r->changelog;
	return c ? c->nkept + (c->mark >= 0) : 0;
}

bool run_changelog_restored(struct run *r, const char *key)
{
	struct changelog *c = r->changelog;
	if (!c || !c->nkept)
		return false;
	size_t lo = 0, hi = c->nkept, len = strlen(key);
	/* sorted by key, then log order: find the first of key */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(c->kept[mid].key, c->kept[mid].key_len, key, len) <
		    0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < c->nkept &&
	       !key_cmp(c->kept[lo].key, c->kept[lo].key_len, key, len);
	     lo++)
		if (c->kept[lo].applied)
			return true;
	return false;
}

void run_changelog_forget_restored(struct run *r)
{
	if (r->changelog)
		kept_clear(r->changelog);
}
