/*
 * One Kafka message through the daemon loop: skipped when SQLite says it
 * was applied already, parsed (an unusable message goes to the dead-letter
 * topic unchanged, with the reason), its observations into the TTT engine,
 * and the message into the open batch.  The engine's events come back
 * here: counted, forecasts into the outbox, rows into the batch's SQLite
 * transaction (daemon/record.c).
 */
#include "daemon/run_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/record.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

_Static_assert(DC_REASON_COUNT < 32,
	       "dc_run_stats.dead_by_reason is too small");

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

void run_on_engine_event(void *user, const struct ttt_event *ev)
{
	struct run *r = user;

	switch (ev->type) {
	case TTT_EV_FORECAST:
		r->st.forecasts++;
		if (outbox_add_forecast(&r->forecasts, ev, r->model_json,
					r->model_json_len) < 0)
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

void run_handle_message(struct run *r, const rd_kafka_message_t *m)
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
				   outbox_tag(created, r->t_lap / 1000));
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
			if (e == 0)
				run_owner_note(r, o->series, p);
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
	run_batch_add(r, p, m->offset);
}
