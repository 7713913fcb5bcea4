/*
 * Operator control records on the input topic (daemon/control.h): an
 * operator's rollback, produced by `driftcast rollback --brokers` keyed by
 * its series, reaches the host that owns the series' input partition and
 * is applied here in order with the series' data: the engine's queued
 * work is finished, the target is resolved in this host's database (or
 * taken from the block the record carries, for a version made on another
 * host), and the rollback joins the open batch as a 'manual' version and
 * audit row naming the operator, so it commits together with the record's
 * offset (applied once, also across a crash: a replayed record is skipped
 * like any applied message).  The series is marked changed, so the state
 * topic gets its new state with the next commit.  A record that cannot be
 * applied goes to the dead-letter topic with its reason.
 */
#include "daemon/run_control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/control.h"
#include "daemon/log.h"
#include "daemon/run_handover.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

bool run_is_control(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	return rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	       rd_kafka_header_get_last(h, DC_CONTROL_HEADER, &v, &n) ==
		   RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Resolve and apply c; 0, or a dead-letter reason class with the text in
 * why. */
static int apply(struct run *r, const struct dc_control *c, int32_t p,
		 int64_t offset, char *why, size_t why_size)
{
	struct store_rollback_result rb;
	struct store_rollback_target t = {
	    .by_time = c->by_time, .number = c->to_version, .at = c->at_ns};
	char err[512], note[DC_CONTROL_REASON_MAX + DC_CONTROL_BY_MAX + 160];

	/* the series' earlier data first: its queued learning may not land
	 * on top of the restored adapter */
	int e = ttt_engine_flush(r->engine);
	if (e < 0)
		log_ratelimited(&r->rl_engine, LOG_ERR,
				"forecasts of the batch lost: %s",
				strerror(-e));
	/* its readings arrive on another partition: the record's producer
	 * hashes keys otherwise than theirs, and the series' owner (maybe
	 * another host) would never see it */
	struct store_series_where w = {.partition = -1};
	if (store_series_where(r->store, c->series, &w, err, sizeof(err)) ==
		0 &&
	    w.partition >= 0 && w.partition != p) {
		snprintf(why, why_size,
			 "unknown_series: %s: its readings arrive on input "
			 "partition %d, this record on %d (produce it with "
			 "the readings' partitioner)",
			 c->series, w.partition, p);
		return DC_REASON_UNKNOWN_SERIES;
	}
	e = store_rollback_prepare(r->store, c->series, &t, c->adapter,
				   c->adapter_len, &rb, err, sizeof(err));
	if (e == -ENOENT) {
		snprintf(why, why_size,
			 "unknown_series: %s: this host (input partition %d) "
			 "has no record of it",
			 c->series, p);
		return DC_REASON_UNKNOWN_SERIES;
	}
	if (e == -EXDEV) { /* of another base model: no hint of a host */
		snprintf(why, why_size, "unknown_version: %s", err);
		return DC_REASON_UNKNOWN_VERSION;
	}
	if (e == -EINVAL || e == -EBADMSG) {
		snprintf(why, why_size, "unknown_version: %s%s", err,
			 c->adapter || c->by_time
			     ? ""
			     : " (a version made on another host: give "
			       "`driftcast rollback --brokers` that host's "
			       "--db, and the record carries it)");
		return DC_REASON_UNKNOWN_VERSION;
	}
	if (e < 0) { /* the database failed: nothing applied */
		snprintf(why, why_size, "bad_control: not applied: %s", err);
		return DC_REASON_BAD_CONTROL;
	}
	if (rb.adapter_len && rb.adapter_len != r->adapter_len) {
		snprintf(why, why_size,
			 "unknown_version: version %" PRIu64 " of %s has %zu "
			 "adapter floats, this model %zu",
			 rb.restored, c->series, rb.adapter_len,
			 r->adapter_len);
		return DC_REASON_UNKNOWN_VERSION;
	}
	e = run_restore_version(r, c->series, rb.adapter, rb.adapter_len,
				rb.new_version, rb.average, rb.average_len);
	if (e < 0) {
		snprintf(why, why_size,
			 "unknown_version: version %" PRIu64 " of %s not "
			 "loaded: %s",
			 rb.restored, c->series, strerror(-e));
		return DC_REASON_UNKNOWN_VERSION;
	}
	int64_t last = 0, step = 0;
	if (ttt_engine_series_clock(r->engine, c->series, &last, &step) < 0)
		last = 0;
	snprintf(note, sizeof(note),
		 "rollback to version %" PRIu64 " by %s via Kafka (input "
		 "partition %d offset %" PRId64 "%s): %s",
		 rb.restored, c->by[0] ? c->by : "unknown", p, offset,
		 rb.adapter == c->adapter ? ", block carried by the record"
					  : "",
		 c->reason);
	struct ttt_event ev = {
	    .trigger = TTT_TRIGGER_MANUAL,
	    .series = c->series,
	    .ts = last,
	    .version_from = rb.from_version,
	    .version_to = rb.new_version,
	    .version_restored = rb.restored,
	    .reason = note,
	    .adapter = rb.adapter,
	    .adapter_len = rb.adapter_len,
	    .average = rb.average,
	    .average_len = rb.average_len,
	};
	run_write_manual(r, &ev);
	run_owner_note(r, c->series, p); /* its new state to the state topic */
	r->st.manual_rollbacks++;
	log_notice("operator rollback from Kafka (partition %d offset %" PRId64
		   ", by %s): %s now runs version %" PRIu64
		   " (content of version %" PRIu64 "%s): %s",
		   p, offset, c->by[0] ? c->by : "unknown", c->series,
		   rb.new_version, rb.restored,
		   e ? ", publishing its stored average" : "", c->reason);
	return 0;
}

void run_handle_control(struct run *r, const rd_kafka_message_t *m)
{
	struct dc_control c;
	char why[1024];
	int cls = DC_REASON_BAD_CONTROL;
	if (dc_control_decode(m->payload, m->len, m->key, m->key_len,
			      r->adapter_len, &c, why, sizeof(why)) == 0) {
		cls = apply(r, &c, m->partition, m->offset, why, sizeof(why));
		dc_control_clear(&c);
	}
	if (cls != 0)
		run_dead_letter(r, m, why, cls);
}
