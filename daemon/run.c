/*
 * `driftcast run`: the daemon's main loop.
 *
 *   poll a message -> skip it if SQLite says it was applied already ->
 *   parse (unusable: to the dead-letter topic, unchanged, with the reason)
 *   -> the TTT engine, whose events go into the open SQLite batch and whose
 *   forecasts go into an outbox -> when the batch is due:
 *     1. wait until the dead letters of the batch are delivered,
 *     2. commit the SQLite transaction (events, versions, and the next
 *        offset of every partition touched),
 *     3. produce the batch's forecasts and wait for their delivery,
 *     4. commit the Kafka offsets (best effort: SQLite is the authority).
 *
 * A crash anywhere replays from the offsets SQLite holds, so no adapter
 * update is applied twice and nothing is lost; forecasts are at least once
 * (idempotent by series and origin time).
 *
 * Signal handlers only set flags.  Everything else -- reload, stop, the
 * watchdog, STATUS=, operator rollbacks from the control table -- happens
 * here, in the loop, between messages.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

#define MAX_OBS_PER_MESSAGE 1024

_Static_assert(DC_REASON_COUNT < 32,
	       "dc_run_stats.dead_by_reason is too small");
#define MAX_PARTITIONS 4096
#define STATUS_MS      1000

static volatile sig_atomic_t got_stop, got_reload;

/* The first SIGTERM/SIGINT drains; a second one also gives up waiting for
 * Kafka to accept what is in flight (it is replayed after the restart). */
static void on_stop_signal(int sig)
{
	(void)sig;
	got_stop = got_stop ? 2 : 1;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	got_reload = 1;
}

/* A growable byte buffer, reused across batches (no allocation once it
 * has grown to the batch's size). */
struct outbox {
	char *buf;
	size_t len, cap;
	/* the records: key_off, key_len, val_off, val_len, tag (the
	 * engine's tag of the message behind it: see tag_make) */
	size_t *rec;
	size_t nrec, caprec;
};

static int outbox_reserve(struct outbox *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 65536;
	while (cap < o->len + more)
		cap *= 2;
	char *p = realloc(o->buf, cap);
	if (!p)
		return -ENOMEM;
	o->buf = p;
	o->cap = cap;
	return 0;
}

#define OUTBOX_FIELDS 5

/* Room for one more record. */
static int outbox_grow_rec(struct outbox *o)
{
	if (o->nrec < o->caprec)
		return 0;
	size_t cap = o->caprec ? o->caprec * 2 : 1024;
	size_t *p = realloc(o->rec, cap * OUTBOX_FIELDS * sizeof(*p));
	if (!p)
		return -ENOMEM;
	o->rec = p;
	o->caprec = cap;
	return 0;
}

/*
 * The engine carries one 64-bit tag per observation to its forecast: here
 * the input message's Kafka CreateTime in ms (the upper 44 bits, enough
 * until the year 2527) and the low 20 bits of the loop's monotonic clock in
 * ms when the message was consumed, so the time spent in the daemon is
 * known modulo 2^20 ms (~17 min) when the forecast is handed on.
 */
#define TAG_CLOCK_BITS 20
#define TAG_CLOCK_MASK ((UINT64_C(1) << TAG_CLOCK_BITS) - 1)

static uint64_t tag_make(int64_t created_ms, uint64_t consumed_ms)
{
	uint64_t c = created_ms > 0 && created_ms < (INT64_C(1) << 44)
			 ? (uint64_t)created_ms
			 : 0;
	return c << TAG_CLOCK_BITS | (consumed_ms & TAG_CLOCK_MASK);
}

static int64_t tag_created_ms(uint64_t tag)
{
	return (int64_t)(tag >> TAG_CLOCK_BITS);
}

static uint64_t tag_held_ms(uint64_t tag, uint64_t now_ms)
{
	return (now_ms - tag) & TAG_CLOCK_MASK;
}

static void outbox_clear(struct outbox *o)
{
	o->len = 0;
	o->nrec = 0;
}

static void outbox_free(struct outbox *o)
{
	free(o->buf);
	free(o->rec);
}

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
	uint64_t kafka_commit_usec; /* when offsets were last committed */
	bool kafka_pending;	    /* some kafka_next[] >= 0 */
	bool batch_dirty;
	uint64_t batch_due_usec; /* when the open batch must be flushed */
	size_t batch_messages;

	struct outbox forecasts;
	size_t batch_dead; /* dead letters produced in the open batch */
	struct dc_run_stats st;
	struct dc_metrics *metrics;
	bool degraded;

	/* Values of the current message the engine refused (duplicate, late,
	 * off-step): the message goes to the dead-letter topic too. */
	char rejected[DC_PARSE_TEXT_MAX * 2];
	int n_rejected;

	uint64_t t_lap; /* end of the last timed phase (lap()) */
	struct log_ratelimit rl_dead, rl_store, rl_engine;
	char err[1024];
};

/* Charge the time since the last lap to phase; returns the time now. */
static uint64_t lap(struct run *r, int phase)
{
	uint64_t now = dc_now_monotonic_usec();
	r->st.phase_us[phase] += now - r->t_lap;
	r->t_lap = now;
	return now;
}

/* ---- engine events -> storage and the forecast outbox ----------------- */

/* v in decimal, no NUL; returns the length (at most 20). */
static size_t format_u64(char *p, uint64_t v)
{
	char d[20];
	size_t n = 0;
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = d[n - 1 - i];
	return n;
}

/* The forecast message into the outbox, formatted in place (no printf, no
 * copy: ~100 numbers per message at tens of thousands of messages a
 * second):
 *   {"series":S,"origin":T,"model":M,"adapter_version":V,"horizon":[...]}
 * keyed by the series. */
static int outbox_add_forecast(struct run *r, const struct ttt_event *ev)
{
	struct outbox *o = &r->forecasts;
	size_t key_len = strlen(ev->series);
	size_t most = key_len + 6 * key_len + r->model_json_len + 128 +
		      (size_t)ev->horizon * 32;
	if (outbox_grow_rec(o) < 0 || outbox_reserve(o, most) < 0)
		return -ENOMEM;
	size_t *rec = &o->rec[o->nrec * OUTBOX_FIELDS];
	char *p = o->buf + o->len, *v;
	memcpy(p, ev->series, key_len);
	v = p + key_len;
	p = v;
#define PUT(lit) (memcpy(p, lit, sizeof(lit) - 1), p += sizeof(lit) - 1)
	PUT("{\"series\":\"");
	p += dc_json_escape(p, ev->series);
	PUT("\",\"origin\":");
	if (ev->ts < 0) {
		*p++ = '-';
		p += format_u64(p, -(uint64_t)ev->ts);
	} else {
		p += format_u64(p, (uint64_t)ev->ts);
	}
	PUT(",\"model\":\"");
	memcpy(p, r->model_json, r->model_json_len);
	p += r->model_json_len;
	PUT("\",\"adapter_version\":");
	p += format_u64(p, ev->version_to);
	PUT(",\"horizon\":[");
	for (int i = 0; i < ev->horizon; i++) {
		if (i)
			*p++ = ',';
		p += dc_format_float(p, ev->forecast[i]);
	}
	PUT("]}");
#undef PUT
	rec[0] = o->len;
	rec[1] = key_len;
	rec[2] = o->len + key_len;
	rec[3] = (size_t)(p - v);
	rec[4] = (size_t)ev->tag;
	o->len += key_len + rec[3];
	o->nrec++;
	return 0;
}

/* storage.forecast_sample: 1 in N forecasts becomes a row, chosen by a
 * hash of series and origin time (the same choice on a replay). */
static bool keep_forecast_row(const struct run *r, const struct ttt_event *ev)
{
	int n = r->cfg.storage.forecast_sample;
	if (n <= 1)
		return n == 1;
	uint64_t h = 1469598103934665603ull ^ (uint64_t)ev->ts;
	for (const char *p = ev->series; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h % (uint64_t)n == 0;
}

static void on_engine_event(void *user, const struct ttt_event *ev)
{
	struct run *r = user;

	switch (ev->type) {
	case TTT_EV_FORECAST:
		r->st.forecasts++;
		if (outbox_add_forecast(r, ev) < 0)
			log_ratelimited(&r->rl_engine, LOG_ERR,
					"out of memory queueing a forecast");
		break;
	case TTT_EV_ADAPT_ACCEPTED:
		r->st.accepted++;
		break;
	case TTT_EV_ADAPT_REJECTED:
		r->st.rejected++;
		break;
	case TTT_EV_DRIFT:
		r->st.drifts++;
		break;
	case TTT_EV_ROLLBACK:
		r->st.rollbacks++;
		break;
	case TTT_EV_RESET:
		r->st.resets++;
		break;
	case TTT_EV_REJECTED_VALUE:
		if (r->n_rejected++ == 0)
			snprintf(r->rejected, sizeof(r->rejected),
				 "rejected_value: %.200s: %s", ev->series,
				 ev->reason ? ev->reason : "refused");
		break;
	default:
		break;
	}
	if (ev->type == TTT_EV_FORECAST && !keep_forecast_row(r, ev))
		return;
	if (dc_record_event(r->store, ev, NULL, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

/* ---- the batch ---------------------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void degrade(struct run *r, bool on, const char *why)
{
	if (on && !r->degraded)
		log_error("storage degraded, forecasting continues without "
			  "persistence: %s",
			  why);
	else if (!on && r->degraded)
		log_notice("storage recovered");
	r->degraded = on;
	r->st.degraded = on;
}

/* Wait until everything produced is acknowledged by the broker (the
 * second SIGTERM gives up: it is replayed after the restart). */
static int drain_deliveries(struct run *r, const char *what)
{
	long failed = 0;
	while (dc_kafka_flush(r->kafka, 1000, &failed) == -ETIMEDOUT) {
		log_warning("waiting for the %s to accept messages (%ld in "
			    "flight)",
			    what, dc_kafka_in_flight(r->kafka));
		if (got_stop > 1)
			return -ETIMEDOUT;
	}
	return failed ? -EIO : 0;
}

/* Commit the offsets SQLite has made durable to Kafka: when
 * kafka.commit_interval_ms has passed since the last commit, or now. */
static void commit_offsets(struct run *r, bool now)
{
	uint64_t t = dc_now_monotonic_usec();
	if (!r->kafka_pending ||
	    (!now && t - r->kafka_commit_usec <
			 (uint64_t)r->cfg.kafka.commit_interval_ms * 1000u))
		return;
	rd_kafka_topic_partition_list_t *l = NULL;
	for (int p = 0; p < MAX_PARTITIONS; p++) {
		if (r->kafka_next[p] < 0)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, r->cfg.kafka.input_topic,
						  p)
		    ->offset = r->kafka_next[p];
		r->kafka_next[p] = -1;
	}
	r->kafka_commit_usec = t;
	r->kafka_pending = false;
	if (l) {
		dc_kafka_commit(r->kafka, l);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/*
 * Make the open batch durable, publish its forecasts, commit offsets.
 * Forecasts are handed to the producer and not waited for: they are
 * derived data, and idempotent delivery retries them until the broker has
 * them; dead letters are the only copy of a message, so a batch with dead
 * letters waits for them before SQLite marks their offsets applied.
 */
static int flush_batch(struct run *r, bool commit_kafka)
{
	int rc = 0;

	/* the batch's queued forecasts: into the outbox and SQLite */
	lap(r, DC_PHASE_OTHER);
	int e = ttt_engine_flush(r->engine);
	lap(r, DC_PHASE_FORECAST);
	if (e < 0)
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"forecasts of the batch lost: %s",
				strerror(-e));
	if (!r->batch_dirty && r->forecasts.nrec == 0)
		return 0;

	/* 1. dead letters of this batch delivered (never lose a message) */
	if (r->batch_dead > 0 &&
	    drain_deliveries(r, "dead-letter topic") == -ETIMEDOUT)
		return -ETIMEDOUT;
	lap(r, DC_PHASE_DEADLETTER_WAIT);

	/* 2. SQLite: the state and the offsets it came from */
	for (int i = 0; i < r->nbatch_parts; i++) {
		int32_t p = r->batch_parts[i];
		if (store_offset_put(r->store, r->cfg.kafka.input_topic, p,
				     r->batch_next[p], r->err,
				     sizeof(r->err)) < 0)
			log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s",
					r->err);
	}
	bool durable =
	    store_batch_commit(r->store, r->err, sizeof(r->err)) == 0;
	degrade(r, !durable, r->err);
	if (durable)
		r->st.batches++;
	lap(r, DC_PHASE_COMMIT);

	/* 3. forecasts (kept even when degraded: forecasting continues) */
	uint64_t now_ms = dc_now_monotonic_usec() / 1000;
	for (size_t i = 0; i < r->forecasts.nrec; i++) {
		const size_t *rec = &r->forecasts.rec[i * OUTBOX_FIELDS];
		uint64_t tag = (uint64_t)rec[4];
		dc_metrics_observe_latency(r->metrics, DC_LAT_PROCESSING,
					   tag_held_ms(tag, now_ms) * 1000u);
		if (dc_kafka_produce(r->kafka, r->cfg.kafka.output_topic,
				     r->forecasts.buf + rec[0], rec[1],
				     r->forecasts.buf + rec[2], rec[3], NULL,
				     tag_created_ms(tag)) < 0)
			rc = -EIO;
	}
	outbox_clear(&r->forecasts);
	lap(r, DC_PHASE_PRODUCE);

	/* 4. Kafka offsets: only for what SQLite made durable */
	for (int i = 0; i < r->nbatch_parts; i++) {
		int32_t p = r->batch_parts[i];
		if (durable && commit_kafka) {
			r->kafka_next[p] = r->batch_next[p];
			r->kafka_pending = true;
		}
		r->batch_next[p] = -1;
	}
	r->nbatch_parts = 0;
	if (durable && commit_kafka)
		commit_offsets(r, false);
	r->batch_dirty = false;
	r->batch_messages = 0;
	r->batch_dead = 0;
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

static int poll_timeout_ms(struct run *r, uint64_t now)
{
	return dc_poll_wait_ms(r->batch_dirty, r->cfg.storage.flush_when_idle,
			       r->batch_due_usec, now,
			       dc_kafka_in_flight(r->kafka));
}

/* Backpressure: pause the input while too much is unacknowledged. */
static void backpressure(struct run *r)
{
	long n = dc_kafka_in_flight(r->kafka);
	bool paused = dc_kafka_paused(r->kafka);
	if (!paused && n > r->cfg.kafka.max_in_flight) {
		if (dc_kafka_pause(r->kafka, true) == 0) {
			r->st.pauses++;
			log_warning("input paused: %ld produced messages not "
				    "yet acknowledged (kafka.max_in_flight = "
				    "%d)",
				    n, r->cfg.kafka.max_in_flight);
		}
	} else if (paused && n <= r->cfg.kafka.max_in_flight / 2) {
		if (dc_kafka_pause(r->kafka, false) == 0)
			log_notice("input resumed: %ld in flight", n);
	}
	r->st.paused = dc_kafka_paused(r->kafka);
}

/* ---- Kafka hooks ----------------------------------------------------------
 */

static int64_t hook_applied_offset(void *user, const char *topic,
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
	r->applied_next[partition] = found ? next : -1;
	return found ? next - 1 : -1;
}

static void hook_on_delivered(void *user, int64_t origin_ms, int64_t produce_us,
			      bool failed)
{
	struct run *r = user;
	if (failed)
		return;
	int64_t now = wall_ms();
	dc_metrics_observe_latency(
	    r->metrics, DC_LAT_E2E,
	    now > origin_ms ? (uint64_t)(now - origin_ms) * 1000u : 0);
	if (produce_us >= 0)
		dc_metrics_observe_latency(r->metrics, DC_LAT_DELIVERY,
					   (uint64_t)produce_us);
}

static void hook_on_revoke(void *user,
			   const rd_kafka_topic_partition_list_t *parts,
			   bool lost)
{
	struct run *r = user;
	flush_batch(r, !lost);
	/* what was applied is committed before another member takes over;
	 * a lost partition's offsets may already be another member's */
	if (!lost)
		commit_offsets(r, true);
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		if (p >= 0 && p < MAX_PARTITIONS)
			r->applied_next[p] = r->kafka_next[p] = -1;
	}
}

/* ---- messages ---------------------------------------------------------------
 */

/* A series seen for the first time: its initial adapter is version 0, the
 * root of its lineage and a target for rollbacks.  It is the identity
 * adapter of the base model, stored as an empty blob: the same for every
 * series, so a million series do not store a million copies of it. */
static void record_init(struct run *r, const char *series, int64_t ts)
{
	static const float identity[1];
	struct store_event se = {
	    .type = STORE_EV_INIT,
	    .series = series,
	    .ts = ts,
	    .reason = "initial adapter: the identity (forecasts equal the "
		      "base model's); stored empty",
	    .adapter = identity,
	    .adapter_len = 0,
	};
	if (store_event_put(r->store, &se, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

static void dead_letter(struct run *r, const rd_kafka_message_t *m,
			const char *reason, int reason_class)
{
	r->st.deadlettered++;
	if (reason_class >= 0 && reason_class < DC_REASON_COUNT)
		r->st.dead_by_reason[reason_class]++;
	log_ratelimited(&r->rl_dead, LOG_WARNING,
			"dead letter (partition %d offset %" PRId64 "): %s",
			m->partition, m->offset, reason);
	dc_kafka_produce(r->kafka, r->cfg.kafka.deadletter_topic, m->key,
			 m->key_len, m->payload, m->len, reason, 0);
	r->batch_dead++;
}

static void handle_message(struct run *r, const rd_kafka_message_t *m)
{
	int32_t p = m->partition;
	if (p < 0 || p >= MAX_PARTITIONS) {
		dead_letter(r, m, "partition number out of range", -1);
		return;
	}
	if (r->applied_next[p] >= 0 && m->offset < r->applied_next[p]) {
		r->st.skipped_replay++; /* applied before a crash/rebalance */
		return;
	}
	r->st.messages++;

	size_t n = 0;
	struct dc_parse_error perr;
	if (dc_parse(r->parser, m->payload, m->len, m->key, m->key_len, r->obs,
		     MAX_OBS_PER_MESSAGE, &n, &perr) < 0) {
		dead_letter(r, m, perr.text, perr.reason);
	} else {
		r->n_rejected = 0;
		rd_kafka_timestamp_type_t tt;
		int64_t created = rd_kafka_message_timestamp(m, &tt);
		/* consumed when the loop's poll returned (its lap clock) */
		ttt_engine_set_tag(r->engine,
				   tag_make(created, r->t_lap / 1000));
		for (size_t i = 0; i < n; i++) {
			struct dc_obs *o = &r->obs[i];
			r->st.observations++;
			size_t known = ttt_engine_series_count(r->engine);
			int64_t ts = o->ts_ns / 1000000000;
			int e = ttt_engine_observe(r->engine, o->series, ts,
						   (float)o->value);
			if (e == 0 &&
			    ttt_engine_series_count(r->engine) > known)
				record_init(r, o->series, ts);
			if (e < 0)
				log_ratelimited(&r->rl_engine, LOG_WARNING,
						"series %s: observation "
						"refused: %s",
						o->series, strerror(-e));
		}
		if (r->n_rejected > 0) {
			/* e.g. "rejected_value: s1: duplicate timestamp"; the
			 * other values of the message were used. */
			if (r->n_rejected > 1 && n > 1) {
				size_t l = strlen(r->rejected);
				snprintf(r->rejected + l,
					 sizeof(r->rejected) - l,
					 " (and %d more of %zu values)",
					 r->n_rejected - 1, n);
			}
			dead_letter(r, m, r->rejected,
				    DC_REASON_REJECTED_VALUE);
		}
	}
	if (r->batch_next[p] < 0)
		r->batch_parts[r->nbatch_parts++] = p;
	r->batch_next[p] = m->offset + 1;
	r->applied_next[p] = m->offset + 1;
	if (!r->batch_dirty)
		r->batch_due_usec = dc_now_monotonic_usec() +
				    (uint64_t)r->cfg.storage.batch_ms * 1000u;
	r->batch_dirty = true;
	r->batch_messages++;
}

/* ---- start-up pieces
 * ---------------------------------------------------------- */

static int restore_one(void *user, const struct store_restored *rs)
{
	struct run *r = user;
	if (rs->status < 0) {
		log_error("series %s: stored adapter version %" PRIu64
			  " fails its checksum; it starts from the base "
			  "adapter",
			  rs->series, rs->version);
		return 0;
	}
	/* last_ts stays unknown: the engine infers a series' step from
	 * consecutive timestamps, and the gap across a restart is not one;
	 * replays are already excluded by the applied offsets. */
	int e = ttt_engine_restore_series(
	    r->engine, rs->series, rs->adapter_len ? rs->adapter : NULL,
	    rs->adapter_len, rs->version, INT64_MIN);
	if (e < 0)
		log_error("series %s: cannot restore version %" PRIu64 ": %s",
			  rs->series, rs->version, strerror(-e));
	else
		r->st.restored++;
	return 0;
}

/* ---- recent values across a clean restart ------------------------------
 * At a clean stop every series' ring is saved; the next start takes the
 * rows back (and deletes them), so forecasting resumes at the first new
 * value instead of after a refilled lookback.  After a crash there are
 * none and lookbacks refill, as before.
 */

struct recent_count {
	struct run *r;
	size_t done, bad;
};

static int restore_recent_one(void *user, const struct store_recent *sr)
{
	struct recent_count *c = user;
	struct ttt_recent rc = {
	    .key = sr->series,
	    .last_ts = sr->last_ts,
	    .step = sr->step,
	    .position = sr->position,
	    .since_adapt = sr->since_adapt,
	    .adaptations = sr->adaptations,
	    .values = sr->values,
	    .count = (int)sr->count,
	};
	int e = sr->status ? sr->status
		: sr->count > INT_MAX
		    ? -EINVAL
		    : ttt_engine_restore_recent(c->r->engine, &rc);
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
	if (store_recent_take(r->store, restore_recent_one, &c, &n, r->err,
			      sizeof(r->err)) < 0) {
		log_error("storage: saved recent values: %s (lookbacks refill)",
			  r->err);
		return;
	}
	if (n > 0)
		log_info("recent values of %zu series restored from the last "
			 "clean stop (%zu unusable): they forecast at their "
			 "next value",
			 c.done, c.bad);
}

static int save_recent_one(void *user, const struct ttt_recent *rc)
{
	struct recent_count *c = user;
	struct store_recent sr = {
	    .series = rc->key,
	    .last_ts = rc->last_ts,
	    .step = rc->step,
	    .position = rc->position,
	    .since_adapt = rc->since_adapt,
	    .adaptations = rc->adaptations,
	    .values = rc->values,
	    .count = (size_t)rc->count,
	};
	int e =
	    store_recent_put(c->r->store, &sr, c->r->err, sizeof(c->r->err));
	if (e < 0)
		return e;
	c->done++;
	return 0;
}

/* Only after a durable last batch: the saved values must be exactly the
 * state the stored offsets describe, or the next start would see replayed
 * values as duplicates. */
static void save_recent(struct run *r)
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

static int register_model(struct run *r)
{
	FILE *f = fopen(r->cfg.model.path, "rb");
	char *bytes = NULL;
	long n;
	int e = -EIO;
	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)n)) &&
	    fread(bytes, 1, (size_t)n, f) == (size_t)n) {
		const char *base = strrchr(r->cfg.model.path, '/');
		snprintf(r->model_name, sizeof(r->model_name), "%.120s",
			 base ? base + 1 : r->cfg.model.path);
		r->model_json_len =
		    dc_json_escape(r->model_json, r->model_name);
		char desc[256];
		const struct fc_config *mc = fc_model_config(r->model);
		snprintf(desc, sizeof(desc),
			 "backbone=%s lookback=%d horizon=%d d_model=%d "
			 "layers=%d",
			 fc_backbone_name(mc->backbone), mc->lookback,
			 mc->horizon, mc->d_model, mc->n_layers);
		e = store_model_register(r->store, r->model_name, desc, bytes,
					 (size_t)n, NULL, &r->model_id, r->err,
					 sizeof(r->err));
	}
	free(bytes);
	fclose(f);
	return e;
}

static void apply_runtime_settings(struct run *r, const struct cfg *c)
{
	log_set_level(c->log.level);
	struct ttt_params tp;
	char err[512];
	if (dc_ttt_params_from_cfg(&tp, c, err, sizeof(err)) < 0 ||
	    ttt_engine_set_params(r->engine, &tp) < 0)
		log_error("reload: TTT settings refused: %s", err);
}

static void reload(struct run *r)
{
	struct cfg c;
	char err[8192];
	const char *names[16];

	notify_reloading(dc_now_monotonic_usec());
	if (cfg_load(r->opts->config_path, r->opts->sets, r->opts->nsets, &c,
		     NULL, err, sizeof(err)) < 0) {
		log_error(
		    "reload failed, keeping the running configuration:\n%s",
		    err);
		notify_status(dc_now_monotonic_usec(), true,
			      "reload failed: %s", err);
		notify_ready();
		return;
	}
	size_t n = cfg_diff_static(&r->cfg, &c, names, 16);
	for (size_t i = 0; i < n && i < 16; i++)
		log_warning("reload: %s changed but needs a restart; the "
			    "running value stays",
			    names[i]);
	/* restart-only settings keep their running values */
	cfg_apply_reloadable(&r->cfg, &c);
	apply_runtime_settings(r, &r->cfg);
	log_notice("configuration reloaded (%zu restart-only change%s "
		   "ignored)",
		   n, n == 1 ? "" : "s");
	notify_ready();
}

static void control_poll(struct run *r)
{
	struct store_rollback_result rb;
	for (;;) {
		int e =
		    store_control_poll(r->store, &rb, r->err, sizeof(r->err));
		if (e == 0)
			return;
		if (e < 0) {
			log_error("operator rollback refused: %s", r->err);
			return;
		}
		e = ttt_engine_restore_series(
		    r->engine, rb.series, rb.adapter_len ? rb.adapter : NULL,
		    rb.adapter_len, rb.new_version, INT64_MIN);
		if (e < 0)
			log_error("operator rollback of %s to version %" PRIu64
				  " stored but not applied: %s",
				  rb.series, rb.restored, strerror(-e));
		else
			log_notice("operator rollback: %s now runs version "
				   "%" PRIu64 " (content of version %" PRIu64
				   ")",
				   rb.series, rb.new_version, rb.restored);
		r->st.manual_rollbacks++;
	}
}

/* One small retention step (at most storage.prune_batch rows), between
 * batches, so the loop never stalls on a big delete. */
static void prune_step(struct run *r)
{
	struct store_retention ret = {
	    .keep_versions = r->cfg.storage.keep_versions,
	    .keep_days = r->cfg.storage.keep_days,
	    .batch = r->cfg.storage.prune_batch,
	};
	size_t deleted = 0;
	if (r->cfg.storage.keep_days == 0 || r->batch_dirty)
		return;
	if (store_prune(r->store, &ret, store_now_ms(), &deleted, NULL, r->err,
			sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_WARNING, "retention: %s",
				r->err);
	else if (deleted)
		log_debug("retention: %zu old rows pruned", deleted);
}

static void publish_status(struct run *r)
{
	r->st.lag = dc_kafka_lag(r->kafka);
	r->st.series = ttt_engine_series_count(r->engine);
	r->st.assigned = dc_kafka_assigned_count(r->kafka);
	dc_metrics_publish(r->metrics, &r->st);
	notify_status(dc_now_monotonic_usec(), false,
		      "%d partitions, %zu series, lag %" PRId64 ", %" PRIu64
		      " adaptations accepted, %" PRIu64 " rejected, %" PRIu64
		      " rollbacks%s",
		      r->st.assigned, r->st.series, r->st.lag, r->st.accepted,
		      r->st.rejected, r->st.rollbacks,
		      r->degraded ? ", STORAGE DEGRADED" : "");
}

int dc_run(const struct dc_run_options *opts, struct dc_run_stats *ret_stats)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sigaction sa = {0};
	struct store_options so = {0};
	int rc = DC_EXIT_FAILURE, e;

	if (!r)
		return DC_EXIT_FAILURE;
	r->opts = opts;
	r->rl_dead = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	r->rl_store = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	r->rl_engine = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	for (int p = 0; p < MAX_PARTITIONS; p++)
		r->applied_next[p] = r->batch_next[p] = r->kafka_next[p] = -1;

	/* also when called without dc_main (benchmarks, tests) */
	cfg_set_kprop_check(dc_kafka_check_property);
	if (cfg_load(opts->config_path, opts->sets, opts->nsets, &r->cfg, NULL,
		     r->err, sizeof(r->err)) < 0) {
		fprintf(stderr, "%s\n", r->err);
		free(r);
		return DC_EXIT_USAGE;
	}
	log_set_level(r->cfg.log.level);
	notify_init();
	/* One thread: the loop forecasts small batches, where OpenBLAS's
	 * worker threads only spin (sched_yield) and steal the core. */
	fc_blas_set_threads(1);

	got_stop = got_reload = 0;
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload_signal;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* model */
	e = fc_model_load(r->cfg.model.path, &r->model, r->err, sizeof(r->err));
	if (e < 0) {
		log_error("model %s: %s", r->cfg.model.path, r->err);
		rc = DC_EXIT_USAGE;
		goto out;
	}
	const struct fc_config *mc = fc_model_config(r->model);
	if (mc->lookback != r->cfg.model.lookback ||
	    mc->horizon != r->cfg.model.horizon) {
		log_error("model %s has lookback %d and horizon %d, the "
			  "configuration says model.lookback = %d, "
			  "model.horizon = %d",
			  r->cfg.model.path, mc->lookback, mc->horizon,
			  r->cfg.model.lookback, r->cfg.model.horizon);
		rc = DC_EXIT_USAGE;
		goto out;
	}

	/* storage: migrated before READY */
	so.daemon = true;
	so.batch_rows = r->cfg.storage.batch_rows;
	so.batch_ms = r->cfg.storage.batch_ms;
	so.busy_timeout_ms = r->cfg.storage.busy_timeout_ms;
	so.rename_corrupt = r->cfg.storage.rename_corrupt;
	so.check = r->cfg.storage.check_on_start;
	e = store_open(r->cfg.storage.path, &so, &r->store, r->err,
		       sizeof(r->err));
	if (e < 0) {
		log_error("storage %s: %s", r->cfg.storage.path, r->err);
		goto out;
	}
	if (register_model(r) < 0)
		log_warning("storage: cannot register the base model: %s",
			    r->err);

	/* engine, restored from storage */
	struct ttt_params tp;
	if (dc_ttt_params_from_cfg(&tp, &r->cfg, r->err, sizeof(r->err)) < 0) {
		log_error("[ttt] settings: %s", r->err);
		rc = DC_EXIT_USAGE;
		goto out;
	}
	e = ttt_engine_new(r->model, &tp, on_engine_event, r, &r->engine,
			   r->err, sizeof(r->err));
	if (e < 0) {
		log_error("engine: %s", r->err);
		goto out;
	}
	e = ttt_engine_defer_forecasts(r->engine, r->cfg.model.forecast_batch);
	if (e < 0) {
		log_error("engine: forecast batches of %d: %s",
			  r->cfg.model.forecast_batch, strerror(-e));
		goto out;
	}
	size_t bad = 0;
	if (store_restore(r->store, NULL, restore_one, r, &bad, r->err,
			  sizeof(r->err)) < 0)
		log_error("storage: restore: %s", r->err);
	log_info("restored %" PRIu64 " series from %s (%zu unusable)",
		 r->st.restored, r->cfg.storage.path, bad);
	restore_recent(r);

	struct dc_parse_opts po = {
	    .format = r->cfg.kafka.input_format,
	    .ts_unit = r->cfg.kafka.ts_unit,
	    .max_message_bytes = (size_t)r->cfg.kafka.max_message_bytes,
	};
	r->parser = dc_parser_new(&po);
	r->obs = calloc(MAX_OBS_PER_MESSAGE, sizeof(*r->obs));
	if (!r->parser || !r->obs) {
		log_error("out of memory");
		goto out;
	}

	r->metrics = dc_metrics_new();
	if (!r->metrics || dc_metrics_listen(r->metrics, r->cfg.metrics.listen,
					     r->err, sizeof(r->err)) < 0) {
		log_error("metrics on %s: %s", r->cfg.metrics.listen, r->err);
		rc = DC_EXIT_USAGE;
		goto out;
	}
	if (dc_metrics_port(r->metrics) > 0)
		log_info("metrics on http://%s/metrics (port %d)",
			 r->cfg.metrics.listen, dc_metrics_port(r->metrics));

	struct dc_kafka_hooks hooks = {
	    .user = r,
	    .applied_offset = hook_applied_offset,
	    .on_revoke = hook_on_revoke,
	    .on_delivered = hook_on_delivered,
	};
	e = dc_kafka_new(&r->cfg, &hooks, &r->kafka, r->err, sizeof(r->err));
	if (e < 0) {
		log_error("kafka: %s", r->err);
		goto out;
	}

	log_notice("driftcast %s running: %s -> %s (dead letters: %s), "
		   "model %s, database %s",
		   DRIFTCAST_VERSION, r->cfg.kafka.input_topic,
		   r->cfg.kafka.output_topic, r->cfg.kafka.deadletter_topic,
		   r->cfg.model.path, r->cfg.storage.path);
	notify_ready();

	uint64_t last_control = 0, last_status = 0, last_prune = 0,
		 last_delivery = 0;
	r->t_lap = dc_now_monotonic_usec();
	while (!got_stop) {
		uint64_t t = lap(r, DC_PHASE_OTHER);
		rd_kafka_message_t *m =
		    dc_kafka_poll(r->kafka, poll_timeout_ms(r, t));
		uint64_t now = lap(r, DC_PHASE_POLL);
		if (m) {
			if (!m->err)
				handle_message(r, m);
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_ratelimited(&r->rl_dead, LOG_WARNING,
						"consumer: %s",
						rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			now = lap(r, DC_PHASE_MESSAGE);
		}
		int64_t now_ms = (int64_t)(now / 1000);
		/* delivery reports at least every millisecond: they time the
		 * end-to-end latency and count what is in flight */
		if (now - last_delivery >= 1000) {
			last_delivery = now;
			dc_kafka_serve_producer(r->kafka);
		}
		if (r->batch_dirty &&
		    (!m ||
		     r->batch_messages >=
			 (size_t)r->cfg.kafka.max_poll_records ||
		     store_batch_due(r->store, now_ms)))
			flush_batch(r, true);
		commit_offsets(r, false); /* what waits for the interval */

		const char *why;
		if (dc_kafka_fatal(r->kafka, &why)) {
			log_error("stopping on a fatal Kafka error: %s", why);
			flush_batch(r, false);
			goto out;
		}
		if (now - last_control >=
		    (uint64_t)r->cfg.storage.control_poll_ms * 1000u) {
			last_control = now;
			control_poll(r);
		}
		if (now - last_prune >=
		    (uint64_t)r->cfg.storage.prune_every_ms * 1000u) {
			last_prune = now;
			prune_step(r);
		}
		if (now - last_status >= STATUS_MS * 1000u) {
			last_status = now;
			publish_status(r);
		}
		backpressure(r);
		notify_watchdog_tick(now);
		if (got_reload) {
			got_reload = 0;
			reload(r);
		}
		if (opts->tick && opts->tick(opts->user, &r->st))
			break;
	}

	notify_stopping();
	log_notice("stopping: making the last batch durable");
	flush_batch(r, true);
	commit_offsets(r, true);
	lap(r, DC_PHASE_OTHER);
	drain_deliveries(r, "forecasts topic");
	lap(r, DC_PHASE_DELIVERY_WAIT);
	save_recent(r);
	lap(r, DC_PHASE_OTHER);
	publish_status(r);
	char phases[512];
	size_t o = 0;
	for (int i = 0; i < DC_PHASE_COUNT && o < sizeof(phases); i++)
		o += (size_t)snprintf(
		    phases + o, sizeof(phases) - o, "%s%s %.2f", i ? ", " : "",
		    dc_phase_name(i), (double)r->st.phase_us[i] / 1e6);
	log_info("loop seconds by phase: %s", phases);
	rc = DC_EXIT_OK;
out:
	if (ret_stats)
		*ret_stats = r->st;
	dc_kafka_free(r->kafka); /* leaves the group */
	dc_metrics_free(r->metrics);
	dc_parser_free(r->parser);
	free(r->obs);
	outbox_free(&r->forecasts);
	ttt_engine_free(r->engine);
	store_free(r->store);
	fc_model_free(r->model);
	free(r);
	return rc;
}
