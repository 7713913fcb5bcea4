/*
 * The open batch's dead letters.  A dead letter is the only copy of a
 * message the daemon could not use, so its offset may become durable only
 * once the broker has it: each one is copied here when it is produced and
 * kept until its delivery report says so.  One the producer or the broker
 * refused (too large, not authorised, the topic gone) is produced again on
 * the next try of the held batch (run_batch.c), never skipped.
 *
 * A payload above what the producer accepts (message.max.bytes) is
 * truncated to fit, its size before in a "driftcast-original-size"
 * header, rather than refused for ever.
 */
#include "daemon/run_private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/notify.h"

/* Key, headers (the reason, the original size) and record framing: what a
 * message costs beyond its payload is well below this. */
#define DEAD_OVERHEAD 512

enum { DL_INFLIGHT, DL_DELIVERED, DL_FAILED };

struct dead_rec {
	size_t key_off, key_len, val_off, val_len, reason_off;
	size_t full_len; /* the payload's size before truncation */
	int32_t partition;
	int64_t offset;
	int state;
	bool keyed;
	bool valued; /* not a tombstone: a null value stays null */
};

static int dead_grow_rec(struct deadbox *d)
{
	if (d->n < d->caprec)
		return 0;
	size_t cap = d->caprec ? d->caprec * 2 : 64;
	struct dead_rec *p = realloc(d->rec, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	d->rec = p;
	d->caprec = cap;
	return 0;
}

static void dead_produce(struct run *r, size_t i)
{
	struct deadbox *d = &r->dead;
	struct dead_rec *x = &d->rec[i];
	int e = dc_kafka_produce(
	    r->kafka, r->cfg.kafka.deadletter_topic,
	    x->keyed ? d->buf + x->key_off : NULL, x->key_len,
	    x->valued ? d->buf + x->val_off : NULL, x->val_len,
	    d->buf + x->reason_off, x->full_len, -(int64_t)i - 1);
	x->state = e < 0 ? DL_FAILED : DL_INFLIGHT;
	if (e < 0)
		d->failed++;
	else
		d->inflight++;
}

void run_dead_add(struct run *r, const rd_kafka_message_t *m,
		  const char *reason)
{
	struct deadbox *d = &r->dead;
	size_t max = dc_kafka_max_message_bytes(r->kafka);
	/* a key too large to go with the reason is truncated as well (the
	 * broker may accept larger messages on the input than the producer
	 * makes), and the reason says so */
	char why[1024];
	size_t klen = m->key_len;
	size_t fixed = strlen(reason) + 64 + DEAD_OVERHEAD;
	if (klen > (max > fixed ? max - fixed : 0)) {
		klen = max > fixed ? max - fixed : 0;
		snprintf(why, sizeof(why), "%s (key truncated from %zu bytes)",
			 reason, m->key_len);
		reason = why;
	}
	size_t rlen = strlen(reason) + 1;
	size_t room = max > klen + rlen + DEAD_OVERHEAD
			  ? max - klen - rlen - DEAD_OVERHEAD
			  : 0;
	size_t vlen = m->len < room ? m->len : room;
	if (dead_grow_rec(d) < 0 ||
	    run_reserve(&d->buf, &d->cap, d->len + klen + vlen + rlen) < 0) {
		/* the batch cannot be made durable without it: held until
		 * the loop's next try finds memory (it never will skip it) */
		log_error("out of memory keeping a dead letter (partition %d "
			  "offset %" PRId64 ")",
			  m->partition, m->offset);
		d->failed++;
		return;
	}
	struct dead_rec *x = &d->rec[d->n];
	*x = (struct dead_rec){
	    .key_off = d->len,
	    .key_len = klen,
	    .val_off = d->len + klen,
	    .val_len = vlen,
	    .reason_off = d->len + klen + vlen,
	    .full_len = m->len,
	    .partition = m->partition,
	    .offset = m->offset,
	    .keyed = m->key != NULL,
	    .valued = m->payload != NULL,
	};
	if (klen)
		memcpy(d->buf + x->key_off, m->key, klen);
	if (vlen)
		memcpy(d->buf + x->val_off, m->payload, vlen);
	memcpy(d->buf + x->reason_off, reason, rlen);
	d->len += klen + vlen + rlen;
	if (vlen < m->len)
		log_ratelimited(&r->rl_dead, LOG_WARNING,
				"dead letter (partition %d offset %" PRId64
				"): %zu bytes, truncated to %zu for the "
				"producer's message.max.bytes = %zu",
				m->partition, m->offset, m->len, vlen, max);
	dead_produce(r, d->n++);
}

void run_dead_delivered(struct run *r, int64_t token, bool failed)
{
	struct deadbox *d = &r->dead;
	size_t i = (size_t)(-(token + 1));
	if (i >= d->n || d->rec[i].state != DL_INFLIGHT)
		return;
	d->rec[i].state = failed ? DL_FAILED : DL_DELIVERED;
	d->inflight--;
	if (failed)
		d->failed++;
}

/* The first refused dead letter, for the alarm. */
static const struct dead_rec *first_failed(const struct deadbox *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->rec[i].state == DL_FAILED)
			return &d->rec[i];
	return NULL;
}

int run_dead_settle(struct run *r, uint64_t wait_until)
{
	struct deadbox *d = &r->dead;
	if (d->failed) {
		/* the ones refused last time go again (records past n were
		 * never made: out of memory; they count in failed) */
		size_t lost = d->failed;
		d->failed = 0;
		for (size_t i = 0; i < d->n; i++)
			if (d->rec[i].state == DL_FAILED) {
				lost--;
				d->tries++;
				dead_produce(r, i);
			}
		d->failed += lost;
	}
	long f;
	/* short slices: the watchdog is fed between them */
	while (d->inflight > 0 &&
	       dc_kafka_flush(r->kafka, 100, &f) == -ETIMEDOUT) {
		uint64_t now = dc_now_monotonic_usec();
		notify_watchdog_tick(now);
		if (d->inflight == 0 || now >= wait_until || run_stop_forced(r))
			break;
	}
	if (d->failed) {
		const struct dead_rec *x = first_failed(d);
		if (x)
			log_error("%zu dead letters not accepted by %s (first: "
				  "partition %d offset %" PRId64
				  "): their offsets stay uncommitted, the "
				  "input is paused and they are produced again",
				  d->failed, r->cfg.kafka.deadletter_topic,
				  x->partition, x->offset);
		return -EIO;
	}
	if (d->inflight) {
		log_ratelimited(&r->rl_dead, LOG_WARNING,
				"waiting for the dead-letter topic to accept "
				"%zu messages: the batch is held",
				d->inflight);
		return -EAGAIN;
	}
	d->n = d->len = 0;
	d->tries = 0;
	return 0;
}

void run_dead_free(struct deadbox *d)
{
	free(d->buf);
	free(d->rec);
}
