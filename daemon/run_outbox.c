/*
 * The forecast outbox of the daemon loop: the forecast messages of the open
 * batch, formatted in place as the engine emits them and handed to the
 * producer only after the batch's SQLite commit (run_batch.c), and the
 * latency they measure -- the engine's per-observation tag carries the
 * input's Kafka CreateTime and the time it was consumed to the forecast,
 * and the delivery report closes the end-to-end interval.
 */
#include "daemon/run_audit.h"
#include "daemon/run_handover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/fmt.h"
#include "daemon/metrics.h"
#include "ttt/ttt.h"

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

uint64_t outbox_tag(int64_t created_ms, uint64_t consumed_ms)
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

void outbox_free(struct outbox *o)
{
	free(o->buf);
	free(o->rec);
}

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

/* The fields every forecast message of a run shares: the model file's
 * name, and the host and database that hold the versions adapter_version
 * numbers -- after a crash two hosts may both have made a version N of a
 * series, and (host, db) says whose. */
char *outbox_forecast_fields(const char *model, const char *host,
			     const char *db, size_t *ret_len)
{
	char *s = malloc(6 * (strlen(model) + strlen(host) + strlen(db)) + 64);
	char *p = s;
	if (!s)
		return NULL;
#define PUT(lit) (memcpy(p, lit, sizeof(lit) - 1), p += sizeof(lit) - 1)
	PUT(",\"model\":\"");
	p += dc_json_escape(p, model);
	PUT("\",\"host\":\"");
	p += dc_json_escape(p, host);
	PUT("\",\"db\":\"");
	p += dc_json_escape(p, db);
	PUT("\",\"adapter_version\":");
#undef PUT
	*ret_len = (size_t)(p - s);
	return s;
}

/* The forecast message into the outbox, formatted in place (no printf, no
 * copy: ~100 numbers per message at tens of thousands of messages a
 * second):
 *   {"series":S,"origin":T,"step_seconds":D,"model":M,"host":H,"db":P,
 *    "adapter_version":V,"horizon":[...]}
 * keyed by the series. */
int outbox_add_forecast(struct outbox *o, const struct ttt_event *ev,
			const char *fields, size_t fields_len)
{
	size_t key_len = strlen(ev->series);
	size_t most =
	    key_len + 6 * key_len + fields_len + 192 + (size_t)ev->horizon * 32;
	if (outbox_grow_rec(o) < 0 ||
	    run_reserve(&o->buf, &o->cap, o->len + most) < 0)
		return -ENOMEM;
	size_t *rec = &o->rec[o->nrec * OUTBOX_FIELDS];
	char *p = o->buf + o->len, *v;
	memcpy(p, ev->series, key_len);
	v = p + key_len;
	p = v;
#define PUT(lit) (memcpy(p, lit, sizeof(lit) - 1), p += sizeof(lit) - 1)
	PUT("{\"series\":\"");
	p += dc_json_escape(p, ev->series);
	/* series time is in ns (run_message.c); the message says seconds,
	 * exactly, and when the horizon's steps fall (docs/OUTPUT.md) */
	PUT("\",\"origin\":");
	p += dc_format_ns_seconds(p, ev->ts);
	PUT(",\"step_seconds\":");
	if (ev->step > 0)
		p += dc_format_ns_seconds(p, ev->step);
	else
		PUT("null");
	memcpy(p, fields, fields_len);
	p += fields_len;
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

int outbox_produce(struct outbox *o, struct dc_kafka *k, const char *topic,
		   struct dc_metrics *m)
{
	int rc = 0;
	uint64_t now_ms = dc_now_monotonic_usec() / 1000;
	for (size_t i = 0; i < o->nrec; i++) {
		const size_t *rec = &o->rec[i * OUTBOX_FIELDS];
		uint64_t tag = (uint64_t)rec[4];
		dc_metrics_observe_latency(m, DC_LAT_PROCESSING,
					   tag_held_ms(tag, now_ms) * 1000u);
		if (dc_kafka_produce(k, topic, o->buf + rec[0], rec[1],
				     o->buf + rec[2], rec[3], NULL, 0,
				     tag_created_ms(tag)) < 0)
			rc = -EIO;
	}
	outbox_clear(o);
	return rc;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void run_hook_on_delivered(void *user, int64_t token, int64_t produce_us,
			   bool failed)
{
	struct run *r = user;
	int64_t origin_ms = token;
	if (token == RUN_AUDIT_TOKEN) {
		run_audit_delivered(r, failed);
		return;
	}
	if (token == RUN_STATE_TOKEN) {
		run_changelog_delivered(r, failed);
		return;
	}
	if (token < 0) {
		run_dead_delivered(r, token, failed);
		return;
	}
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
