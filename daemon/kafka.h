/*
 * Kafka (daemon/kafka.c): one consumer-group member (cooperative-sticky,
 * offsets stored only by dc_kafka_commit after state is durable) and one
 * idempotent producer, behind the dc_kafka_* calls; the loop's hooks into
 * assignment, revocation and delivery; librdkafka's check of pass-through
 * properties.
 */
#ifndef DRIFTCAST_DAEMON_KAFKA_H
#define DRIFTCAST_DAEMON_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"

struct dc_kafka;

/* Where an assigned partition starts, and why (dc_kafka_start_offset). */
enum dc_start_from {
	DC_START_RESET = 0, /* neither offset known: kafka.offset_reset */
	DC_START_APPLIED,   /* this host's applied offset, as new as the group's
			     */
	DC_START_COMMITTED, /* the group's; this host's state is older or none
			     */
};

/* One assigned partition: the offsets the start rule read, and where
 * consumption starts (-1: the reset policy).  on_assign may move start
 * later (never earlier: what lies before was applied by some host). */
struct dc_kafka_start {
	const char *topic;
	int32_t partition;
	int64_t committed;    /* the group's next offset, or -1 */
	int64_t applied_next; /* this host's next offset to apply, or -1 */
	int64_t start;
	enum dc_start_from from;
	/* set by the on_assign hook: assign the partition paused, until
	 * dc_kafka_release (its series' state could not be read yet) */
	bool hold;
};

/* The start-offset rule: a partition starts at the later of the group's
 * committed offset and this host's own next offset to apply (-1: none),
 * so a host whose state is older than what the group committed never
 * re-applies (and re-forecasts) what another host already did.  Ties go to
 * the host's own state.  Returns the offset, or -1 for the reset policy. */
int64_t dc_kafka_start_offset(int64_t committed, int64_t applied_next,
			      enum dc_start_from *ret_from);
const char *dc_start_from_name(enum dc_start_from from);

struct dc_kafka_hooks {
	void *user;
	/* Last offset of topic/partition whose effect is durable in SQLite,
	 * or -1 (one input to the start-offset rule). */
	int64_t (*applied_offset)(void *user, const char *topic,
				  int32_t partition);
	/* Called (from dc_kafka_poll) before partitions are assigned, with
	 * each one's start already decided by the rule. */
	void (*on_assign)(void *user, struct dc_kafka_start *parts, int n);
	/* Called before partitions are revoked: make everything applied so
	 * far durable now.  lost: the group already gave them away (do not
	 * commit offsets). */
	void (*on_revoke)(void *user,
			  const rd_kafka_topic_partition_list_t *parts,
			  bool lost);
	/* Called (from dc_kafka_poll/flush) when a message produced with a
	 * token != 0 is delivered (failed: it could not be); produce_us is
	 * the time since it was handed to the producer (-1 if unknown). */
	void (*on_delivered)(void *user, int64_t token, int64_t produce_us,
			     bool failed);
	/* True once waiting must end (a second SIGTERM, the stop's time is
	 * up): dc_kafka_produce then stops waiting for room in a full
	 * producer queue, and dc_kafka_free does not flush. */
	bool (*stop_forced)(void *user);
};

/* Create the consumer (subscribed to kafka.input_topic) and the producer.
 * *ret is owned by the caller (dc_kafka_free closes the consumer, which
 * leaves the group, and flushes the producer for up to 10 s, or drops
 * what it holds once the stop_forced hook says so). */
int dc_kafka_new(const struct cfg *c, const struct dc_kafka_hooks *hooks,
		 struct dc_kafka **ret, char *errbuf, size_t errbuf_size);
void dc_kafka_free(struct dc_kafka *k);

/* librdkafka's own check of one pass-through property (cfg_kprop_check_fn;
 * registered with cfg_set_kprop_check before configurations are loaded):
 * 0, or -1 with librdkafka's reason in why. */
int dc_kafka_check_property(const char *name, const char *value, char *why,
			    size_t why_size);

/* Apply the pass-through properties of one client (scope
 * CFG_KSCOPE_CONSUMER or _PRODUCER: [librdkafka] and its own section) to
 * conf, after the caller's own settings.  0, or -EINVAL with the property
 * (never its value, it may be a password) and librdkafka's reason in err.
 * `driftcast produce` shares it with the daemon's clients. */
int dc_kafka_conf_passthrough(rd_kafka_conf_t *conf, const struct cfg *c,
			      int scope, char *err, size_t n);

/* Next message or NULL after timeout_ms; serves callbacks.  The caller
 * destroys the message with rd_kafka_message_destroy(). */
rd_kafka_message_t *dc_kafka_poll(struct dc_kafka *k, int timeout_ms);

/* Serve the producer's callbacks (delivery reports) now; dc_kafka_poll
 * serves them only every 256th message while input flows. */
void dc_kafka_serve_producer(struct dc_kafka *k);
/* The same, waiting up to timeout_ms for a report: a wait for some
 * messages (the state topic's) that does not flush the others. */
void dc_kafka_wait_producer(struct dc_kafka *k, int timeout_ms);

/* True after a fatal librdkafka error; *ret_reason describes it. */
bool dc_kafka_fatal(const struct dc_kafka *k, const char **ret_reason);

/* Produce a copy of payload to topic, keyed.  reason (may be NULL) goes in
 * a "driftcast-reason" header, and with it full_len, when above len (a
 * truncated payload), in "driftcast-original-size".  A token != 0 comes
 * back to the on_delivered hook (the loop's forecasts pass their input's
 * Kafka timestamp in ms, > 0, and dead letters a number < 0); a token > 0
 * is also the message's timestamp (0: the time of producing).  Blocks while the
 * producer queue is full; -EIO when the producer refused the message. */
int dc_kafka_produce(struct dc_kafka *k, const char *topic, const void *key,
		     size_t key_len, const void *payload, size_t len,
		     const char *reason, size_t full_len, int64_t token);
/* The producer's message.max.bytes: a larger message (payload, key,
 * headers and framing) is refused by dc_kafka_produce. */
size_t dc_kafka_max_message_bytes(const struct dc_kafka *k);

/* The same to one partition (the state topic is co-partitioned with the
 * input by partition number, whatever partitioner producers use). */
int dc_kafka_produce_to(struct dc_kafka *k, const char *topic,
			int32_t partition, const void *key, size_t key_len,
			const void *payload, size_t len, const char *reason,
			size_t full_len, int64_t token);
/* dc_kafka_produce_to without the copy: payload must stay as it is until
 * the message's delivery report (token != 0 says when), or until the
 * producer is freed, which purges or delivers what is left. */
int dc_kafka_produce_borrowed(struct dc_kafka *k, const char *topic,
			      int32_t partition, const void *key,
			      size_t key_len, const void *payload, size_t len,
			      int64_t token);

/* Read partition of topic from its low to its high watermark (as of the
 * call), each message to fn (a nonzero return stops and is returned), with
 * a reader that never joins the group; watchdog fed.  *from: where to
 * start (-1: the low watermark), and on return the next offset not read.
 * 0, -ENOENT (no such topic or partition), -ETIMEDOUT after timeout_ms,
 * -ERANGE (*from is outside the watermarks: read again from -1), -EIO
 * (also when the watermarks are not known within 5 s: no leader); err
 * says why. */
typedef int (*dc_kafka_read_fn)(void *user, int64_t offset, const void *key,
				size_t key_len, const void *payload,
				size_t len);
int dc_kafka_read_partition(struct dc_kafka *k, const char *topic,
			    int32_t partition, dc_kafka_read_fn fn, void *user,
			    int64_t *from, int timeout_ms, char *err, size_t n);

/* Messages produced and not yet delivered (or failed). */
long dc_kafka_in_flight(const struct dc_kafka *k);

/* Wait until everything produced is delivered; *ret_failed = deliveries
 * that failed since the previous flush.  -ETIMEDOUT if still in flight. */
int dc_kafka_flush(struct dc_kafka *k, int timeout_ms, long *ret_failed);

/* Commit offsets (next offset to read per partition): asynchronously, or
 * with wait, waiting for the result (at most ~3.5 s) and retrying when
 * the group refuses it for a moment (a rebalance under way): the last
 * commit of a clean stop must land, nothing later retries it. */
int dc_kafka_commit(struct dc_kafka *k,
		    const rd_kafka_topic_partition_list_t *offsets, bool wait);

/* Pause or resume every assigned partition, and those assigned while
 * paused (backpressure); a partition held (dc_kafka_start.hold) stays
 * paused until it is released. */
int dc_kafka_pause(struct dc_kafka *k, bool pause);
/* Release a held partition of the input topic: it is consumed from offset
 * (-1: where it was assigned), unless the input is paused for
 * backpressure (then from there once resumed).  -ENOENT if not held;
 * -EIO if the seek or the resume failed, which is fatal (dc_kafka_fatal):
 * the partition would never be consumed. */
int dc_kafka_release(struct dc_kafka *k, int32_t partition, int64_t offset,
		     char *err, size_t n);
/* Whether partition of the input topic is assigned here and held. */
bool dc_kafka_held(const struct dc_kafka *k, int32_t partition);
bool dc_kafka_paused(const struct dc_kafka *k);

/* Messages behind the high watermark over the assignment, or -1. */
int64_t dc_kafka_lag(struct dc_kafka *k);
/* The same, and each assigned partition of the input topic with its own
 * lag (-1: unknown yet) in out[0..*ret_n), at most max of them. */
struct dc_partition_lag {
	int32_t partition;
	int64_t lag;
};
int64_t dc_kafka_lags(struct dc_kafka *k, struct dc_partition_lag *out, int max,
		      int *ret_n);
int dc_kafka_assigned_count(const struct dc_kafka *k);

#endif
