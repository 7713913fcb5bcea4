/*
 * Kafka for the daemon: one consumer-group member for the input topic and
 * one idempotent producer for the forecasts and dead-letter topics.
 *
 * Offsets are never stored automatically.  The run loop makes a batch
 * durable in SQLite (with the last applied offset of each partition) and
 * only then calls dc_kafka_commit().  On assignment, each partition starts
 * at the later of the group's committed offset and the offset SQLite says
 * this host applied last (dc_kafka_start_offset): a restart on the same
 * host never applies a message twice, and a host coming back after
 * another one served its partitions never re-applies (or re-forecasts)
 * what that host did.  A commit the group refuses (the mock cluster
 * refuses commits during a rebalance, see docs/OPERATIONS.md) leaves the
 * next owner an older start: at least once across hosts.
 *
 * Assignment is cooperative-sticky everywhere (mixed strategies crash the
 * mock cluster), so the rebalance callback uses incremental assign/unassign.
 */
#include "daemon/kafka.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/notify.h"

/* dc_kafka_read_partition's question for a partition's end */
#define QUERY_TIMEOUT_MS 5000

struct dc_kafka {
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	rd_kafka_t *reader;    /* reads state partitions (no group), lazily */
	const struct cfg *cfg; /* for the reader; outlives k (struct run) */
	rd_kafka_topic_partition_list_t *assigned; /* current assignment */
	/* ... of it, the partitions held paused until released */
	rd_kafka_topic_partition_list_t *held;
	struct dc_kafka_hooks hooks;
	char input_topic[CFG_NAME_MAX];
	bool paused;
	bool fatal;
	char fatal_reason[512];
	/* Producer delivery accounting: in flight and failed since the last
	 * dc_kafka_flush(). */
	long in_flight;
	long failed;
	/* dc_kafka_poll calls since the producer was last polled, and
	 * whether the consumer had nothing the last time */
	unsigned polls;
	bool idle;
	struct log_ratelimit rl_log;
};

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err,
	       size_t n)
{
	char e[512];
	if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
		snprintf(err, n, "kafka setting %s=%s: %s", k, v, e);
		return -EINVAL;
	}
	return 0;
}

/* The pass-through properties of one client ([librdkafka] and its own
 * section), after driftcast's settings.  Errors name the property, never
 * its value (it may be a password). */
int dc_kafka_conf_passthrough(rd_kafka_conf_t *conf, const struct cfg *c,
			      int scope, char *err, size_t n)
{
	for (int i = 0; i < c->librdkafka.n; i++) {
		const struct cfg_kprop *p = &c->librdkafka.prop[i];
		char e[512];
		if (p->scope != CFG_KSCOPE_BOTH && p->scope != scope)
			continue;
		if (rd_kafka_conf_set(conf, p->name, p->value, e, sizeof(e)) !=
		    RD_KAFKA_CONF_OK) {
			snprintf(err, n, "%s.%s: %s", cfg_kscope_name(p->scope),
				 p->name, e);
			return -EINVAL;
		}
	}
	return 0;
}

int dc_kafka_check_property(const char *name, const char *value, char *why,
			    size_t why_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	int r = rd_kafka_conf_set(conf, name, value, why, why_size) ==
			RD_KAFKA_CONF_OK
		    ? 0
		    : -1;
	rd_kafka_conf_destroy(conf);
	return r;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	struct dc_kafka *k = rd_kafka_opaque(rk);
	if (k)
		log_ratelimited(&k->rl_log, level, "kafka %s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct dc_kafka *k = opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char buf[512];
		rd_kafka_fatal_error(rk, buf, sizeof(buf));
		snprintf(k->fatal_reason, sizeof(k->fatal_reason), "%s", buf);
		k->fatal = true;
		log_error("kafka fatal error: %s", buf);
		return;
	}
	/* Broker down, transport errors, ...: librdkafka retries them. */
	log_ratelimited(&k->rl_log, LOG_WARNING, "kafka: %s: %s",
			rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	struct dc_kafka *k = opaque;
	(void)rk;
	k->in_flight--;
	if (k->hooks.on_delivered && m->_private)
		k->hooks.on_delivered(k->hooks.user,
				      (int64_t)(intptr_t)m->_private,
				      rd_kafka_message_latency(m),
				      m->err != RD_KAFKA_RESP_ERR_NO_ERROR);
	if (m->err) {
		k->failed++;
		log_ratelimited(
		    &k->rl_log, LOG_ERR, "delivery to %s failed: %s",
		    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
	}
}

int64_t dc_kafka_start_offset(int64_t committed, int64_t applied_next,
			      enum dc_start_from *ret_from)
{
	enum dc_start_from from = DC_START_RESET;
	int64_t start = -1;
	if (applied_next >= 0 && applied_next >= committed) {
		from = DC_START_APPLIED;
		start = applied_next;
	} else if (committed >= 0) {
		from = DC_START_COMMITTED;
		start = committed;
	}
	if (ret_from)
		*ret_from = from;
	return start;
}

const char *dc_start_from_name(enum dc_start_from from)
{
	switch (from) {
	case DC_START_APPLIED:
		return "this host's applied offset";
	case DC_START_COMMITTED:
		return "the group's committed offset";
	default:
		return "kafka.offset_reset";
	}
}

/* The group's committed offsets of parts into committed[] (-1: none or
 * unknown).  A failed fetch leaves every one unknown: the host's own
 * offsets then decide, as before the rule existed, and that is logged. */
static void committed_offsets(rd_kafka_t *rk,
			      const rd_kafka_topic_partition_list_t *parts,
			      int64_t *committed)
{
	rd_kafka_topic_partition_list_t *c =
	    rd_kafka_topic_partition_list_copy(parts);
	for (int i = 0; i < parts->cnt; i++)
		committed[i] = -1;
	rd_kafka_resp_err_t err = rd_kafka_committed(rk, c, 10000);
	if (err) {
		log_warning("assignment: the group's committed offsets are "
			    "unknown (%s): partitions start after this host's "
			    "applied offsets",
			    rd_kafka_err2str(err));
	} else {
		for (int i = 0; i < c->cnt && i < parts->cnt; i++)
			if (!c->elems[i].err && c->elems[i].offset >= 0)
				committed[i] = c->elems[i].offset;
	}
	rd_kafka_topic_partition_list_destroy(c);
}

/* Each assigned partition's start offset by the rule, offered to the
 * on_assign hook (which may move it later, or hold it), into parts for
 * assign. */
static void assign_starts(struct dc_kafka *k, rd_kafka_t *rk,
			  rd_kafka_topic_partition_list_t *parts)
{
	int n = parts->cnt;
	int64_t *committed = calloc((size_t)n + 1, sizeof(*committed));
	struct dc_kafka_start *st = calloc((size_t)n + 1, sizeof(*st));
	if (!committed || !st) {
		free(committed);
		free(st);
		log_error("assignment: out of memory; partitions start at "
			  "the group's committed offsets");
		return;
	}
	committed_offsets(rk, parts, committed);
	for (int i = 0; i < n; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		int64_t applied =
		    k->hooks.applied_offset
			? k->hooks.applied_offset(k->hooks.user, p->topic,
						  p->partition)
			: -1;
		st[i].topic = p->topic;
		st[i].partition = p->partition;
		st[i].committed = committed[i];
		st[i].applied_next = applied >= 0 ? applied + 1 : -1;
		st[i].start = dc_kafka_start_offset(
		    st[i].committed, st[i].applied_next, &st[i].from);
	}
	if (k->hooks.on_assign)
		k->hooks.on_assign(k->hooks.user, st, n);
	for (int i = 0; i < n; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		p->offset =
		    st[i].start >= 0 ? st[i].start : RD_KAFKA_OFFSET_INVALID;
		rd_kafka_topic_partition_list_add(k->assigned, p->topic,
						  p->partition);
		if (st[i].hold)
			rd_kafka_topic_partition_list_add(k->held, p->topic,
							  p->partition);
		log_info(
		    "assigned %s[%d] from offset %lld (%s; committed "
		    "%lld, applied here %lld)%s",
		    p->topic, p->partition, (long long)st[i].start,
		    dc_start_from_name(st[i].from), (long long)st[i].committed,
		    (long long)st[i].applied_next, st[i].hold ? ", held" : "");
	}
	free(committed);
	free(st);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct dc_kafka *k = opaque;
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign_starts(k, rk, parts);
		e = rd_kafka_incremental_assign(rk, parts);
		/* paused for backpressure: so are partitions that arrive; and
		 * the held ones, before anything of them is fetched */
		if (!e && k->paused)
			rd_kafka_pause_partitions(rk, parts);
		else if (!e && k->held->cnt)
			rd_kafka_pause_partitions(rk, k->held);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		bool lost = rd_kafka_assignment_lost(rk);
		/* Make everything applied so far durable before the
		 * partitions go; the new owner starts after it. */
		if (k->hooks.on_revoke)
			k->hooks.on_revoke(k->hooks.user, parts, lost);
		for (int i = 0; i < parts->cnt; i++) {
			rd_kafka_topic_partition_list_del(
			    k->assigned, parts->elems[i].topic,
			    parts->elems[i].partition);
			rd_kafka_topic_partition_list_del(
			    k->held, parts->elems[i].topic,
			    parts->elems[i].partition);
			log_info("revoked %s[%d]%s", parts->elems[i].topic,
				 parts->elems[i].partition,
				 lost ? " (lost)" : "");
		}
		e = rd_kafka_incremental_unassign(rk, parts);
	} else {
		log_error("rebalance error: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
		rd_kafka_topic_partition_list_destroy(k->assigned);
		k->assigned = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_destroy(k->held);
		k->held = rd_kafka_topic_partition_list_new(8);
	}
	if (e) {
		log_error("incremental rebalance: %s",
			  rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

static rd_kafka_conf_t *common_conf(const struct cfg *c, struct dc_kafka *k,
				    char *err, size_t n)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (set(conf, "bootstrap.servers", c->kafka.brokers, err, n) < 0 ||
	    set(conf, "client.id", "driftcast", err, n) < 0 ||
	    set(conf, "log.connection.close", "false", err, n) < 0 ||
	    /* small requests (acks, commits) otherwise wait for Nagle and
	     * the peer's delayed ACK: ~40 ms per round trip */
	    set(conf, "socket.nagle.disable", "true", err, n) < 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_error_cb(conf, on_error);
	return conf;
}

int dc_kafka_new(const struct cfg *c, const struct dc_kafka_hooks *hooks,
		 struct dc_kafka **ret, char *err, size_t n)
{
	struct dc_kafka *k = calloc(1, sizeof(*k));
	rd_kafka_conf_t *conf = NULL;
	char buf[64], e[512];
	int r = -EINVAL;

	if (!k)
		return -ENOMEM;
	k->rl_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 20);
	if (hooks)
		k->hooks = *hooks;
	k->cfg = c;
	snprintf(k->input_topic, sizeof(k->input_topic), "%s",
		 c->kafka.input_topic);
	k->assigned = rd_kafka_topic_partition_list_new(8);
	k->held = rd_kafka_topic_partition_list_new(8);

	/* consumer */
	if (!(conf = common_conf(c, k, err, n)))
		goto fail;
	snprintf(buf, sizeof(buf), "%d", c->kafka.session_timeout_ms);
	char hb[32];
	int hbms = c->kafka.session_timeout_ms / 10;
	snprintf(hb, sizeof(hb), "%d", hbms < 100 ? 100 : hbms);
	if (set(conf, "group.id", c->kafka.group, err, n) < 0 ||
	    set(conf, "partition.assignment.strategy", "cooperative-sticky",
		err, n) < 0 ||
	    set(conf, "enable.auto.offset.store", "false", err, n) < 0 ||
	    set(conf, "enable.auto.commit", "false", err, n) < 0 ||
	    set(conf, "enable.partition.eof", "false", err, n) < 0 ||
	    set(conf, "session.timeout.ms", buf, err, n) < 0 ||
	    set(conf, "heartbeat.interval.ms", hb, err, n) < 0 ||
	    set(conf, "auto.offset.reset",
		c->kafka.offset_reset == CFG_OFFSET_LATEST ? "latest"
							   : "earliest",
		err, n) < 0 ||
	    /* a caught-up consumer gets new messages within 20 ms (the
	     * default parks an empty fetch for 500 ms) */
	    set(conf, "fetch.wait.max.ms", "20", err, n) < 0 ||
	    /* bound the prefetch: backpressure instead of memory growth */
	    set(conf, "queued.max.messages.kbytes", "16384", err, n) < 0 ||
	    /* ... by bytes only.  queued.min.messages (default 100000) is
	     * meant per partition, but librdkafka 2.0.2 compares it with the
	     * length of the one consumer queue all partitions forward to:
	     * with a backlog, fetching stops at 100000 queued messages and is
	     * decided again only when the broker thread next wakes (up to
	     * ~1 s), while the loop drains them in ~0.15 s.  bench-daemon
	     * --mode ingest, steady state: the daemon thread is blocked 6.1
	     * of 11.5 s with the default, 0.4 of 4.7 s with this. */
	    set(conf, "queued.min.messages", "10000000", err, n) < 0 ||
	    /* one fetch response (all partitions of a broker) stays within
	     * the same bound (default 50 MB on top of the queue) */
	    set(conf, "fetch.max.bytes", "16777216", err, n) < 0 ||
	    dc_kafka_conf_passthrough(conf, c, CFG_KSCOPE_CONSUMER, err, n) < 0)
		goto fail;
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
	if (!k->consumer) {
		snprintf(err, n, "kafka consumer: %s", e);
		goto fail;
	}
	conf = NULL; /* owned by the handle now */
	rd_kafka_poll_set_consumer(k->consumer);

	/* producer: idempotent, never gives up on a message by itself; its
	 * queue holds twice what the loop lets be in flight before pausing */
	char qmax[32];
	snprintf(qmax, sizeof(qmax), "%d",
		 c->kafka.max_in_flight * 2 > 100000
		     ? c->kafka.max_in_flight * 2
		     : 100000);
	if (!(conf = common_conf(c, k, err, n)))
		goto fail;
	if (set(conf, "enable.idempotence", "true", err, n) < 0 ||
	    set(conf, "message.timeout.ms", "0", err, n) < 0 ||
	    set(conf, "linger.ms", "5", err, n) < 0 ||
	    set(conf, "queue.buffering.max.messages", qmax, err, n) < 0 ||
	    /* forecast JSON (H numbers) shrinks about 3x */
	    set(conf, "compression.codec", "lz4", err, n) < 0 ||
	    dc_kafka_conf_passthrough(conf, c, CFG_KSCOPE_PRODUCER, err, n) < 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
	if (!k->producer) {
		snprintf(err, n, "kafka producer: %s", e);
		goto fail;
	}
	conf = NULL;

	rd_kafka_topic_partition_list_t *topics =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, c->kafka.input_topic,
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t kerr = rd_kafka_subscribe(k->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (kerr) {
		snprintf(err, n, "subscribe to %s: %s", c->kafka.input_topic,
			 rd_kafka_err2str(kerr));
		goto fail;
	}
	*ret = k;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	dc_kafka_free(k);
	return r;
}

void dc_kafka_free(struct dc_kafka *k)
{
	if (!k)
		return;
	if (k->consumer) {
		rd_kafka_consumer_close(k->consumer);
		rd_kafka_destroy(k->consumer);
	}
	if (k->producer) {
		/* a stop that gave up waiting does not wait here either */
		if (k->hooks.stop_forced && k->hooks.stop_forced(k->hooks.user))
			rd_kafka_purge(k->producer,
				       RD_KAFKA_PURGE_F_QUEUE |
					   RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(k->producer, 10000);
		rd_kafka_destroy(k->producer);
	}
	if (k->reader) {
		rd_kafka_consumer_close(k->reader);
		rd_kafka_destroy(k->reader);
	}
	if (k->assigned)
		rd_kafka_topic_partition_list_destroy(k->assigned);
	if (k->held)
		rd_kafka_topic_partition_list_destroy(k->held);
	free(k);
}

rd_kafka_message_t *dc_kafka_poll(struct dc_kafka *k, int timeout_ms)
{
	/* The producer's callbacks (deliveries, errors): on every call while
	 * the input is idle, else every 256th message (dc_kafka_flush and a
	 * full producer queue serve them too).  Each rd_kafka_poll takes a
	 * lock and reads the clock: 2.5 % of the loop's time per message in
	 * bench-daemon's ingest steady state. */
	if (k->idle || ++k->polls >= 256) {
		rd_kafka_poll(k->producer, 0);
		k->polls = 0;
	}
	/* Without waiting first: with a timeout, librdkafka 2.0.2 reads the
	 * clock some five times per call, without one about twice, and
	 * clock_gettime costs ~50 ns on this kind of VM (the clock reads were
	 * a quarter of the loop's time per message in bench-daemon's ingest
	 * steady state).  Only an empty queue waits. */
	rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, 0);
	if (!m && timeout_ms)
		m = rd_kafka_consumer_poll(k->consumer, timeout_ms);
	k->idle = !m;
	return m;
}

void dc_kafka_serve_producer(struct dc_kafka *k)
{
	rd_kafka_poll(k->producer, 0);
	k->polls = 0;
}

void dc_kafka_wait_producer(struct dc_kafka *k, int timeout_ms)
{
	rd_kafka_poll(k->producer, timeout_ms);
	k->polls = 0;
}

bool dc_kafka_fatal(const struct dc_kafka *k, const char **ret_reason)
{
	if (ret_reason)
		*ret_reason = k->fatal_reason;
	return k->fatal;
}

int dc_kafka_produce(struct dc_kafka *k, const char *topic, const void *key,
		     size_t key_len, const void *payload, size_t len,
		     const char *reason, size_t full_len, int64_t token)
{
	return dc_kafka_produce_to(k, topic, RD_KAFKA_PARTITION_UA, key,
				   key_len, payload, len, reason, full_len,
				   token);
}

static int produce_flags(struct dc_kafka *k, const char *topic,
			 int32_t partition, const void *key, size_t key_len,
			 const void *payload, size_t len, const char *reason,
			 size_t full_len, int64_t token, int flags)
{
	void *opaque = (void *)(intptr_t)token;
	rd_kafka_resp_err_t err;
	for (;;) {
		rd_kafka_headers_t *h = NULL;
		if (reason) {
			char size[24];
			h = rd_kafka_headers_new(2);
			rd_kafka_header_add(h, "driftcast-reason", -1, reason,
					    -1);
			if (full_len > len) {
				snprintf(size, sizeof(size), "%zu", full_len);
				rd_kafka_header_add(
				    h, "driftcast-original-size", -1, size, -1);
			}
			err = rd_kafka_producev(
			    k->producer, RD_KAFKA_V_TOPIC(topic),
			    RD_KAFKA_V_PARTITION(partition),
			    RD_KAFKA_V_MSGFLAGS(flags),
			    RD_KAFKA_V_KEY((void *)key, key_len),
			    RD_KAFKA_V_VALUE((void *)payload, len),
			    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque),
			    RD_KAFKA_V_END);
			if (err) /* the message owns them only once queued */
				rd_kafka_headers_destroy(h);
		} else {
			err = rd_kafka_producev(
			    k->producer, RD_KAFKA_V_TOPIC(topic),
			    RD_KAFKA_V_PARTITION(partition),
			    RD_KAFKA_V_MSGFLAGS(flags),
			    RD_KAFKA_V_KEY((void *)key, key_len),
			    RD_KAFKA_V_VALUE((void *)payload, len),
			    RD_KAFKA_V_TIMESTAMP(token > 0 ? token : 0),
			    RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		if (k->hooks.stop_forced && k->hooks.stop_forced(k->hooks.user))
			break; /* the message is not produced: -EIO */
		/* backpressure from the producer queue: serve deliveries; the
		 * loop is waiting on the broker, not stuck */
		rd_kafka_poll(k->producer, 50);
		notify_watchdog_tick(dc_now_monotonic_usec());
	}
	if (err) {
		log_ratelimited(&k->rl_log, LOG_ERR, "produce to %s: %s", topic,
				rd_kafka_err2str(err));
		return -EIO;
	}
	k->in_flight++;
	return 0;
}

int dc_kafka_produce_to(struct dc_kafka *k, const char *topic,
			int32_t partition, const void *key, size_t key_len,
			const void *payload, size_t len, const char *reason,
			size_t full_len, int64_t token)
{
	return produce_flags(k, topic, partition, key, key_len, payload, len,
			     reason, full_len, token, RD_KAFKA_MSG_F_COPY);
}

int dc_kafka_produce_borrowed(struct dc_kafka *k, const char *topic,
			      int32_t partition, const void *key,
			      size_t key_len, const void *payload, size_t len,
			      int64_t token)
{
	/* flags 0: librdkafka points at payload (the key is always copied) */
	return produce_flags(k, topic, partition, key, key_len, payload, len,
			     NULL, 0, token, 0);
}

size_t dc_kafka_max_message_bytes(const struct dc_kafka *k)
{
	char v[32];
	size_t n = sizeof(v);
	if (rd_kafka_conf_get(rd_kafka_conf(k->producer), "message.max.bytes",
			      v, &n) != RD_KAFKA_CONF_OK)
		return 1000000; /* librdkafka's default */
	return (size_t)strtoull(v, NULL, 10);
}

int dc_kafka_flush(struct dc_kafka *k, int timeout_ms, long *ret_failed)
{
	rd_kafka_resp_err_t err = rd_kafka_flush(k->producer, timeout_ms);
	if (ret_failed)
		*ret_failed = k->failed;
	k->failed = 0;
	return err == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : 0;
}

/* One commit and its result, waited for at most a second (a synchronous
 * rd_kafka_commit() has no bound while the broker is unreachable, and a
 * stop must end in the operator's TimeoutStopSec). */
static rd_kafka_resp_err_t
commit_wait(struct dc_kafka *k, const rd_kafka_topic_partition_list_t *offsets)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(k->consumer);
	if (!q)
		return RD_KAFKA_RESP_ERR__FAIL;
	rd_kafka_resp_err_t err =
	    rd_kafka_commit_queue(k->consumer, offsets, q, NULL, NULL);
	if (!err) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 1000);
		err = ev ? rd_kafka_event_error(ev)
			 : RD_KAFKA_RESP_ERR__TIMED_OUT;
		if (ev)
			rd_kafka_event_destroy(ev);
	}
	rd_kafka_queue_destroy(q);
	return err;
}

int dc_kafka_commit(struct dc_kafka *k,
		    const rd_kafka_topic_partition_list_t *offsets, bool wait)
{
	if (!offsets || offsets->cnt == 0)
		return 0;
	rd_kafka_resp_err_t err =
	    wait ? commit_wait(k, offsets)
		 : rd_kafka_commit(k->consumer, offsets, 1);
	for (int tries = 1; wait && err && tries < 3; tries++) {
		struct timespec ts = {0, 250 * 1000 * 1000};
		nanosleep(&ts, NULL);
		err = commit_wait(k, offsets);
	}
	if (err) {
		log_ratelimited(&k->rl_log, LOG_NOTICE,
				"offset commit: %s (harmless: SQLite holds the "
				"applied offsets)",
				rd_kafka_err2str(err));
		return -EIO;
	}
	return 0;
}

int dc_kafka_pause(struct dc_kafka *k, bool pause)
{
	if (pause == k->paused)
		return 0;
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(k->consumer, &a) || !a)
		return -EIO;
	for (int i = 0; !pause && i < k->held->cnt; i++)
		rd_kafka_topic_partition_list_del(a, k->held->elems[i].topic,
						  k->held->elems[i].partition);
	rd_kafka_resp_err_t err =
	    pause ? rd_kafka_pause_partitions(k->consumer, a)
		  : rd_kafka_resume_partitions(k->consumer, a);
	rd_kafka_topic_partition_list_destroy(a);
	if (err)
		return -EIO;
	k->paused = pause;
	return 0;
}

long dc_kafka_in_flight(const struct dc_kafka *k)
{
	return k->in_flight;
}

bool dc_kafka_paused(const struct dc_kafka *k)
{
	return k->paused;
}

bool dc_kafka_held(const struct dc_kafka *k, int32_t partition)
{
	return rd_kafka_topic_partition_list_find(k->held, k->input_topic,
						  partition) != NULL;
}

int dc_kafka_release(struct dc_kafka *k, int32_t partition, int64_t offset,
		     char *err, size_t n)
{
	if (!rd_kafka_topic_partition_list_find(k->held, k->input_topic,
						partition)) {
		snprintf(err, n, "%s[%d] is not held", k->input_topic,
			 partition);
		return -ENOENT;
	}
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, k->input_topic, partition)
	    ->offset = offset;
	/* seeking while it is still paused: a seek before a pause is lost
	 * at the resume (librdkafka #3471) */
	rd_kafka_error_t *e = NULL;
	if (offset >= 0)
		e = rd_kafka_seek_partitions(k->consumer, l, 10000);
	int r = 0;
	if (e) {
		snprintf(err, n, "%s[%d]: seek to %lld: %s", k->input_topic,
			 partition, (long long)offset,
			 rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		r = -EIO;
	} else if (l->elems[0].err) {
		snprintf(err, n, "%s[%d]: seek to %lld: %s", k->input_topic,
			 partition, (long long)offset,
			 rd_kafka_err2str(l->elems[0].err));
		r = -EIO;
	} else {
		rd_kafka_topic_partition_list_del(k->held, k->input_topic,
						  partition);
		if (!k->paused &&
		    rd_kafka_resume_partitions(k->consumer, l) != 0) {
			snprintf(err, n, "%s[%d]: cannot resume it",
				 k->input_topic, partition);
			r = -EIO;
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (r < 0) { /* held, and never consumed: a restart does better */
		snprintf(k->fatal_reason, sizeof(k->fatal_reason), "%s", err);
		k->fatal = true;
	}
	return r;
}

int64_t dc_kafka_lags(struct dc_kafka *k, struct dc_partition_lag *out, int max,
		      int *ret_n)
{
	rd_kafka_topic_partition_list_t *a = NULL;
	int64_t lag = 0;
	int n = 0;
	if (ret_n)
		*ret_n = 0;
	if (rd_kafka_assignment(k->consumer, &a) || !a)
		return -1;
	bool have_pos =
	    rd_kafka_position(k->consumer, a) == RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < a->cnt; i++) {
		int64_t lo, hi, plag = -1;
		if (have_pos &&
		    rd_kafka_get_watermark_offsets(
			k->consumer, a->elems[i].topic, a->elems[i].partition,
			&lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    hi >= 0) {
			int64_t pos = a->elems[i].offset;
			if (pos < 0)
				pos = lo;
			plag = hi > pos ? hi - pos : 0;
			lag += plag;
		}
		if (n < max)
			out[n++] = (struct dc_partition_lag){
			    .partition = a->elems[i].partition, .lag = plag};
	}
	rd_kafka_topic_partition_list_destroy(a);
	if (ret_n)
		*ret_n = n;
	return lag;
}

int64_t dc_kafka_lag(struct dc_kafka *k)
{
	return dc_kafka_lags(k, NULL, 0, NULL);
}

int dc_kafka_assigned_count(const struct dc_kafka *k)
{
	return k->assigned ? k->assigned->cnt : 0;
}

/* The reader: a consumer that never joins the group (assign only, no
 * commits), with the consumer's pass-through properties (SASL, TLS). */
static int reader_new(struct dc_kafka *k, char *err, size_t n)
{
	char e[512], gid[CFG_NAME_MAX + 16];
	rd_kafka_conf_t *conf = common_conf(k->cfg, k, err, n);
	if (!conf)
		return -EINVAL;
	snprintf(gid, sizeof(gid), "%s-state-reader", k->cfg->kafka.group);
	if (set(conf, "group.id", gid, err, n) < 0 ||
	    set(conf, "enable.auto.commit", "false", err, n) < 0 ||
	    set(conf, "enable.partition.eof", "false", err, n) < 0 ||
	    set(conf, "fetch.wait.max.ms", "20", err, n) < 0 ||
	    dc_kafka_conf_passthrough(conf, k->cfg, CFG_KSCOPE_CONSUMER, err,
				      n) < 0 ||
	    /* a start below the log's (records deleted since the watermark
	     * query) restarts at its start, not at its end: after the
	     * consumers' settings, whatever they say for the input */
	    set(conf, "auto.offset.reset", "earliest", err, n) < 0) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	k->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
	if (!k->reader) {
		snprintf(err, n, "state topic reader: %s", e);
		return -EINVAL;
	}
	return 0;
}

/* After a question about topic[partition] failed as unknown: -ENOENT if
 * the cluster's metadata does not list it, else -EIO (it has no leader
 * now, or the metadata is not known either); err appended to. */
static int partition_listed(rd_kafka_t *rk, const char *topic,
			    int32_t partition, char *err, size_t n)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t kerr =
	    t ? rd_kafka_metadata(rk, 0, t, &md, QUERY_TIMEOUT_MS)
	      : RD_KAFKA_RESP_ERR__INVALID_ARG;
	int r = -EIO;
	if (!kerr && md->topic_cnt == 1) {
		const rd_kafka_metadata_topic_t *mt = &md->topics[0];
		bool listed = false;
		for (int i = 0; i < mt->partition_cnt; i++)
			listed |= mt->partitions[i].id == partition;
		if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    (!mt->err && !listed))
			r = -ENOENT;
	}
	size_t l = strlen(err);
	if (r == -EIO && l < n)
		snprintf(err + l, n - l, " (%s)",
			 kerr ? rd_kafka_err2str(kerr)
			      : "it exists: no leader now");
	if (md)
		rd_kafka_metadata_destroy(md);
	if (t)
		rd_kafka_topic_destroy(t);
	return r;
}

int dc_kafka_read_partition(struct dc_kafka *k, const char *topic,
			    int32_t partition, dc_kafka_read_fn fn, void *user,
			    int64_t *from, int timeout_ms, char *err, size_t n)
{
	int64_t lo = 0, hi = 0;
	int r = 0;
	if (!k->reader && (r = reader_new(k, err, n)) < 0)
		return r;
	/* the end first, within QUERY_TIMEOUT_MS: a partition without a
	 * leader fails here at once, not after the whole read's time */
	rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
	    k->reader, topic, partition, &lo, &hi,
	    timeout_ms < QUERY_TIMEOUT_MS ? timeout_ms : QUERY_TIMEOUT_MS);
	if (kerr) {
		snprintf(err, n, "%s[%d]: %s", topic, partition,
			 rd_kafka_err2str(kerr));
		/* "unknown partition" is also what a partition without a
		 * leader gives: only the metadata tells them apart */
		if (kerr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    kerr == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
		    kerr == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
			return partition_listed(k->reader, topic, partition,
						err, n);
		return -EIO;
	}
	if (*from >= 0 && (*from < lo || *from > hi)) {
		/* records gone before it, or a log that ends before it (the
		 * topic made again): what was read before is no longer a
		 * prefix of this log */
		snprintf(err, n,
			 "%s[%d]: offsets %lld..%lld, not where the last read "
			 "stopped (%lld)",
			 topic, partition, (long long)lo, (long long)hi,
			 (long long)*from);
		return -ERANGE;
	}
	int64_t start = *from > lo ? *from : lo;
	if (hi <= start) {
		*from = start;
		return 0;
	}
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = start;
	kerr = rd_kafka_assign(k->reader, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (kerr) {
		snprintf(err, n, "%s[%d]: %s", topic, partition,
			 rd_kafka_err2str(kerr));
		return -EIO;
	}
	uint64_t end = dc_now_monotonic_usec() + (uint64_t)timeout_ms * 1000u;
	int64_t next = start;
	while (next < hi && r == 0) {
		uint64_t now = dc_now_monotonic_usec();
		if (now > end) {
			snprintf(err, n,
				 "%s[%d]: read to offset %lld of %lld in %d ms",
				 topic, partition, (long long)next,
				 (long long)hi, timeout_ms);
			r = -ETIMEDOUT;
			break;
		}
		notify_watchdog_tick(now);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->reader, 100);
		if (!m)
			continue;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_ratelimited(&k->rl_log, LOG_WARNING,
						"state topic: %s",
						rd_kafka_message_errstr(m));
		} else {
			next = m->offset + 1;
			r = fn(user, m->offset, m->key, m->key_len, m->payload,
			       m->len);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_assign(k->reader, NULL);
	*from = next;
	return r;
}
