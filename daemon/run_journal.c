/*
 * The open batch's SQLite rows, kept in memory until the batch commits.
 * SQLite rolls a failed commit back whole (a full disk: SQLITE_FULL), and
 * the engine's state that produced those rows lives on in memory, so the
 * held batch (run_batch.c) writes them again from here when it is tried
 * again: no adaptation, version or audit row is lost to a full disk, and
 * no offset is committed ahead of them.
 *
 * Each entry is one engine event (or a series' initial version) with deep
 * copies of what it points to, in one growable buffer reused from batch to
 * batch (no allocation once it has grown to a batch's size).  Every part
 * starts on an 8-byte boundary, so floats are read back in place.
 */
#include "daemon/run_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/record.h"
#include "daemon/run_control.h"
#include "storage/handover.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

enum { J_EVENT, J_INIT, J_MANUAL };

struct jrec {
	int kind;
	size_t size; /* of the whole entry, header included */
	struct ttt_event ev;
	size_t series_len, reason_len; /* with the NUL; reason 0: NULL */
};

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/* ev into the journal, its pointers' data after it. */
static void journal_put(struct run *r, int kind, const struct ttt_event *ev)
{
	struct journal *j = &r->journal;
	struct jrec h = {.kind = kind, .ev = *ev};
	h.series_len = strlen(ev->series) + 1;
	h.reason_len = ev->reason ? strlen(ev->reason) + 1 : 0;
	size_t nf = ev->forecast ? (size_t)ev->horizon : 0;
	size_t na = ev->adapter ? ev->adapter_len : 0;
	size_t nv = ev->average ? ev->average_len : 0;
	h.size = ALIGN8(sizeof(h)) + ALIGN8(h.series_len) +
		 ALIGN8(h.reason_len) + ALIGN8(nf * sizeof(float)) +
		 ALIGN8(na * sizeof(float)) + ALIGN8(nv * sizeof(uint16_t));
	if (run_reserve(&j->buf, &j->cap, j->len + h.size) < 0) {
		/* a retry after a failed commit would miss this row */
		log_ratelimited(&r->rl_store, LOG_ERR,
				"out of memory keeping the batch's rows");
		j->incomplete = true;
		return;
	}
	_Static_assert(alignof(struct jrec) <= 8, "journal alignment");
	char *p = j->buf + j->len;
	memcpy(p, &h, sizeof(h));
	p += ALIGN8(sizeof(h));
	memcpy(p, ev->series, h.series_len);
	p += ALIGN8(h.series_len);
	if (h.reason_len)
		memcpy(p, ev->reason, h.reason_len);
	p += ALIGN8(h.reason_len);
	if (nf)
		memcpy(p, ev->forecast, nf * sizeof(float));
	p += ALIGN8(nf * sizeof(float));
	if (na)
		memcpy(p, ev->adapter, na * sizeof(float));
	p += ALIGN8(na * sizeof(float));
	if (nv)
		memcpy(p, ev->average, nv * sizeof(uint16_t));
	j->len += h.size;
	j->n++;
}

/* A series seen for the first time: its initial adapter is version 0, the
 * root of its lineage and a target for rollbacks.  It is the identity
 * adapter of the base model, stored as an empty blob: the same for every
 * series, so a million series do not store a million copies of it. */
static void store_init(struct run *r, const char *series, int64_t ts)
{
	static const float identity[1];
	struct store_event se = store_event_unmeasured(
	    STORE_EV_INIT, STORE_TRIGGER_NONE, series, ts, 0, 0,
	    "initial adapter: the identity (forecasts equal the base model's); "
	    "stored empty");
	se.adapter = identity;
	se.adapter_len = 0;
	if (store_event_put(r->store, &se, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

static void store_ev(struct run *r, const struct ttt_event *ev)
{
	if (dc_record_event(r->store, ev, NULL, r->err, sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

/* An operator rollback (run_control.c), kept as the event that says
 * what store_rollback_put needs. */
static void store_manual(struct run *r, const struct ttt_event *ev)
{
	struct store_rollback_result rb = {
	    .from_version = ev->version_from,
	    .restored = ev->version_restored,
	    .new_version = ev->version_to,
	    .adapter = (float *)ev->adapter,
	    .adapter_len = ev->adapter_len,
	    .average = (uint16_t *)ev->average,
	    .average_len = ev->average ? ev->average_len : 0,
	};
	snprintf(rb.series, sizeof(rb.series), "%s", ev->series);
	if (store_rollback_put(r->store, &rb, ev->ts, ev->reason, r->err,
			       sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_ERR, "storage: %s", r->err);
}

void run_write_manual(struct run *r, const struct ttt_event *ev)
{
	store_manual(r, ev);
	journal_put(r, J_MANUAL, ev);
}

void run_write_event(struct run *r, const struct ttt_event *ev)
{
	store_ev(r, ev);
	journal_put(r, J_EVENT, ev);
}

void run_write_init(struct run *r, const char *series, int64_t ts)
{
	struct ttt_event ev = {.series = series, .ts = ts};
	store_init(r, series, ts);
	journal_put(r, J_INIT, &ev);
}

void run_journal_replay(struct run *r)
{
	struct journal *j = &r->journal;
	/* forget the failed batch (and whatever a write since began, the
	 * recent values a held revoke saved among it) */
	store_batch_abort(r->store);
	memset(r->held_saved, 0, sizeof(r->held_saved));
	if (j->incomplete)
		log_error("storage: rows of the held batch were not kept (out "
			  "of memory): its retry misses them");
	for (size_t off = 0; off < j->len;) {
		struct jrec h;
		memcpy(&h, j->buf + off, sizeof(h));
		const char *p = j->buf + off + ALIGN8(sizeof(h));
		h.ev.series = p;
		p += ALIGN8(h.series_len);
		h.ev.reason = h.reason_len ? p : NULL;
		p += ALIGN8(h.reason_len);
		if (h.ev.forecast) {
			h.ev.forecast = (const float *)(const void *)p;
			p += ALIGN8((size_t)h.ev.horizon * sizeof(float));
		}
		if (h.ev.adapter) {
			h.ev.adapter = (const float *)(const void *)p;
			p += ALIGN8(h.ev.adapter_len * sizeof(float));
		}
		if (h.ev.average)
			h.ev.average = (const uint16_t *)(const void *)p;
		if (h.kind == J_INIT)
			store_init(r, h.ev.series, h.ev.ts);
		else if (h.kind == J_MANUAL)
			store_manual(r, &h.ev);
		else
			store_ev(r, &h.ev);
		off += h.size;
	}
}

void run_journal_clear(struct run *r)
{
	r->journal.len = 0;
	r->journal.n = 0;
	r->journal.incomplete = false;
}

void run_journal_free(struct journal *j)
{
	free(j->buf);
}
