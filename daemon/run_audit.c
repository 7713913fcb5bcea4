/*
 * The audit topic (kafka.audit_topic): every audit row of the database --
 * what `driftcast history` shows -- is also published to Kafka, as JSON
 * keyed by series (docs/OUTPUT.md), so that a fleet's history can be sunk
 * into one database.
 *
 * Rows are read back from SQLite once their batch has committed, by row id
 * from a cursor, so the topic never carries a row the database could still
 * lose (a held batch publishes nothing until it commits), and every writer
 * of audit rows is covered (the engine, new series, operator rollbacks).
 * In the batch's durability order: SQLite commit, then forecasts and audit
 * rows produced, then Kafka offsets committed.  The cursor -- the first row
 * the broker has not acknowledged -- is stored in kafka_offsets (topic
 * "audit:<audit topic>", partition 0) with the next batch: after a failed
 * delivery or a crash the rows from it are published again.  At least once; a
 * row is identified by (host, db, id).
 */
#include "daemon/run_audit.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/fmt.h"
#include "daemon/log.h"
#include "storage/storage.h"

/* config/config.c's audit_formats, value for value */
enum audit_format { AUDIT_JSON = 0, AUDIT_CONNECT = 1 };

#define AUDIT_ROWS_PER_READ  1000
#define AUDIT_READS_PER_CALL 10
/* The cursor's row in kafka_offsets: topic "audit:<topic>" (not a Kafka
 * topic name: those have no ':'), partition 0. */
#define AUDIT_CURSOR_PREFIX "audit:"

struct run_audit {
	const char *topic;
	char cursor[CFG_NAME_MAX + sizeof(AUDIT_CURSOR_PREFIX)];
	int64_t next;	/* first row id not yet produced */
	int64_t acked;	/* first row id not yet acknowledged: the cursor */
	int64_t stored; /* the cursor SQLite holds (committed) */
	int64_t put;	/* the cursor written into the open batch, -1 none */
	long inflight;
	bool failed; /* a delivery since the last quiet moment failed */
	uint64_t last_tick_usec;
	uint64_t published, failures;
	json_t *schema; /* AUDIT_CONNECT: the envelope's schema */
	struct run *r;	/* for the row callback */
};

/* The connect envelope's schema: the fields of dc_event_json, then host
 * and db. */
static json_t *connect_schema(void)
{
	static const struct {
		const char *name, *type;
		bool optional;
	} f[] = {
	    {"id", "int64", false},
	    {"time", "string", false},
	    {"ts", "int64", false},
	    {"series", "string", false},
	    {"event", "string", false},
	    {"trigger", "string", false},
	    {"version_from", "int64", false},
	    {"version_to", "int64", false},
	    {"steps", "int32", false},
	    {"loss_before", "double", true},
	    {"loss_after", "double", true},
	    {"guard_before", "double", true},
	    {"guard_after", "double", true},
	    {"update_norm", "double", true},
	    {"adapted_error", "double", true},
	    {"shadow_error", "double", true},
	    {"data_from", "int64", true},
	    {"data_until", "int64", true},
	    {"value", "double", true},
	    {"filled", "int32", true},
	    {"detector_stat", "double", true},
	    {"version_restored", "int64", true},
	    {"reason", "string", false},
	    {"host", "string", false},
	    {"db", "string", false},
	};
	json_t *fields = json_array();
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_array_append_new(
		    fields,
		    json_pack("{s:s, s:s, s:b}", "field", f[i].name, "type",
			      /* Connect's name for a double */
			      !strcmp(f[i].type, "double") ? "float64"
							   : f[i].type,
			      "optional", f[i].optional));
	return json_pack("{s:s, s:o, s:b, s:s}", "type", "struct", "fields",
			 fields, "optional", false, "name", "driftcast.audit");
}

int run_audit_open(struct run *r)
{
	const char *topic = r->cfg.kafka.audit_topic;
	int64_t next = 0;
	bool found = false;
	if (!strcmp(topic, "off"))
		return 0;
	struct run_audit *a = calloc(1, sizeof(*a));
	if (!a) {
		log_error("audit topic: out of memory");
		return -ENOMEM;
	}
	a->topic = topic;
	snprintf(a->cursor, sizeof(a->cursor), AUDIT_CURSOR_PREFIX "%s", topic);
	a->r = r;
	a->put = -1;
	if (r->cfg.kafka.audit_format == AUDIT_CONNECT &&
	    !(a->schema = connect_schema())) {
		free(a);
		log_error("audit topic: out of memory");
		return -ENOMEM;
	}
	if (store_offset_get(r->store, a->cursor, 0, &next, &found, r->err,
			     sizeof(r->err)) < 0) {
		log_error("audit topic %s: reading its cursor: %s", topic,
			  r->err);
		json_decref(a->schema);
		free(a);
		return -EIO;
	}
	a->next = a->acked = a->stored = found ? next : 0;
	log_info("audit topic %s: publishing the audit log %s%" PRId64, topic,
		 found ? "from row " : "from its start, row ",
		 found ? next : INT64_C(1));
	r->audit = a;
	return 0;
}

void run_audit_free(struct run_audit *a)
{
	if (a)
		json_decref(a->schema);
	free(a);
}

/* One audit row to the producer; nonzero stops the read (the producer
 * refused it: it is read again next time). */
static int audit_row(void *user, const struct store_event *ev)
{
	struct run_audit *a = user;
	struct run *r = a->r;
	json_t *j = dc_event_json(ev);
	json_object_set_new(j, "host", json_string(r->host));
	json_object_set_new(j, "db", json_string(r->cfg.storage.path));
	if (a->schema) {
		json_t *v = json_object_get(j, "value");
		if (json_is_string(v)) /* "inf": no float64 in Connect */
			json_object_set_new(j, "value", json_null());
		j = json_pack("{s:O, s:o}", "schema", a->schema, "payload", j);
	}
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	int e = text ? dc_kafka_produce(r->kafka, a->topic, ev->series,
					strlen(ev->series), text, strlen(text),
					NULL, 0, RUN_AUDIT_TOKEN)
		     : -ENOMEM;
	free(text);
	if (e < 0) {
		log_ratelimited(&r->rl_store, LOG_ERR,
				"audit topic %s: row %" PRId64
				" of %s not produced (%s): tried again later",
				a->topic, ev->id, ev->series, strerror(-e));
		return 1;
	}
	a->inflight++;
	a->published++;
	a->next = ev->id + 1;
	return 0;
}

void run_audit_publish(struct run *r)
{
	struct run_audit *a = r->audit;
	if (!a)
		return;
	/* the cursor written with the batch that just committed */
	if (a->put >= 0)
		a->stored = a->put;
	a->put = -1;
	/* after a failed delivery, the rows from the cursor again once the
	 * round is over (run_audit_delivered) */
	if (a->failed)
		return;
	/* a backlog (the topic turned on for an old database) a slice per
	 * batch, so the loop goes on */
	for (int i = 0; i < AUDIT_READS_PER_CALL; i++) {
		int64_t before = a->next;
		int e = store_history_from_id(r->store, a->next,
					      AUDIT_ROWS_PER_READ, audit_row, a,
					      r->err, sizeof(r->err));
		if (e < 0)
			log_ratelimited(&r->rl_store, LOG_ERR,
					"audit topic %s: reading rows: %s",
					a->topic, r->err);
		if (e != 0 || a->next - before < AUDIT_ROWS_PER_READ)
			return;
	}
}

void run_audit_delivered(struct run *r, bool failed)
{
	struct run_audit *a = r->audit;
	if (!a)
		return;
	a->inflight--;
	if (failed) {
		a->failed = true;
		a->failures++;
	}
	if (a->inflight > 0)
		return;
	if (a->failed) {
		log_error("audit topic %s: rows not acknowledged by the broker "
			  "(%" PRIu64 " so far): publishing again from row "
			  "%" PRId64,
			  a->topic, a->failures, a->acked);
		a->next = a->acked;
		a->failed = false;
	} else {
		a->acked = a->next;
	}
}

void run_audit_persist(struct run *r)
{
	struct run_audit *a = r->audit;
	if (!a || a->acked == a->stored)
		return;
	if (store_offset_put(r->store, a->cursor, 0, a->acked, r->err,
			     sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR,
				"audit topic %s: storing its cursor: %s",
				a->topic, r->err);
	else
		a->put = a->acked;
}

void run_audit_tick(struct run *r, uint64_t now, bool force)
{
	struct run_audit *a = r->audit;
	/* rows committed outside a batch flush (an operator's rollback), a
	 * retry after a failure, the cursor of the last acknowledgements:
	 * only with no batch open (its rows are not committed) */
	if (!a || r->batch_dirty || r->held ||
	    (!force && now - a->last_tick_usec <
			   (uint64_t)r->cfg.kafka.commit_interval_ms * 1000u))
		return;
	a->last_tick_usec = now;
	run_audit_persist(r);
	if (a->put >= 0 &&
	    store_batch_commit(r->store, r->err, sizeof(r->err)) < 0) {
		log_ratelimited(&r->rl_store, LOG_ERR,
				"audit topic %s: storing its cursor: %s",
				a->topic, r->err);
		a->put = -1;
	}
	run_audit_publish(r);
}
