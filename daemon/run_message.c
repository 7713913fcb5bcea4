/*
 * One Kafka message through the daemon loop: skipped when SQLite says it
 * was applied already, parsed (an unusable message goes to the dead-letter
 * topic unchanged, with the reason), its observations into the TTT engine,
 * and the message into the open batch.  The engine's events come back
 * here: counted, forecasts into the outbox, rows into the batch's SQLite
 * transaction (daemon/record.c), kept until it commits (run_journal.c).
 */
#include "daemon/run_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/run_control.h"
#include "daemon/run_handover.h"
#include "daemon/status.h"
#include "forecast/fnv1a.h"
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
	uint64_t h = fc_fnv1a_str(FC_FNV1A_INIT ^ (uint64_t)ev->ts, ev->series);
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
		if (outbox_add_forecast(&r->forecasts, ev, r->forecast_fields,
					r->forecast_fields_len) < 0)
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
	case TTT_EV_REALISED:
		dc_status_realised(dc_metrics_status(r->metrics), ev->series,
				   ev->adapted_error, ev->shadow_error);
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
	run_write_event(r, ev);
}

bool run_future_refused(int64_t ts_ns, int64_t now_ns, int64_t tol_ns,
			int64_t last_ts, int64_t step, int64_t max_steps)
{
	if (ts_ns <= now_ns || ts_ns - now_ns <= tol_ns)
		return false; /* the past (history, replays) or nearly now */
	if (step <= 0)
		return true; /* no series clock to be near */
	return ts_ns > last_ts && (ts_ns - last_ts) / step > max_steps;
}

static int64_t wall_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Refuse o if it is dated too far ahead (kafka.future_tolerance_s and
 * kafka.max_ahead_steps): applied, it would make every later real value of
 * its series late.  Says why in r->rejected when it is the first. */
static bool future_value(struct run *r, const struct dc_obs *o, int64_t now)
{
	int64_t last = 0, step = 0;
	int64_t tol = (int64_t)r->cfg.kafka.future_tolerance_s * 1000000000;
	if (o->ts_ns - now <= tol) /* the common case: no lookup */
		return false;
	if (ttt_engine_series_clock(r->engine, o->series, &last, &step) < 0)
		step = 0;
	if (!run_future_refused(o->ts_ns, now, tol, last, step,
				r->cfg.kafka.max_ahead_steps))
		return false;
	if (r->n_rejected++ == 0) {
		char t[48];
		store_format_time(o->ts_ns, t, sizeof(t));
		snprintf(r->rejected, sizeof(r->rejected),
			 "future_timestamp: %.100s: %s is %.3g s ahead of this "
			 "host's clock (kafka.future_tolerance_s = %d) and %s",
			 o->series, t, (double)(o->ts_ns - now) * 1e-9,
			 r->cfg.kafka.future_tolerance_s,
			 step > 0 ? "more than kafka.max_ahead_steps steps "
				    "after its series' newest value"
				  : "its series has no clock yet");
	}
	return true;
}

void run_dead_letter(struct run *r, const rd_kafka_message_t *m,
		     const char *reason, int reason_class)
{
	r->st.deadlettered++;
	if (reason_class >= 0 && reason_class < DC_REASON_COUNT)
		r->st.dead_by_reason[reason_class]++;
	log_ratelimited(&r->rl_dead, LOG_WARNING,
			"dead letter (partition %d offset %" PRId64 "): %s",
			m->partition, m->offset, reason);
	run_dead_add(r, m, reason);
}

void run_handle_message(struct run *r, const rd_kafka_message_t *m)
{
	int32_t p = m->partition;
	if (p < 0 || p >= MAX_PARTITIONS) {
		run_dead_letter(r, m, "partition number out of range", -1);
		return;
	}
	if (r->restoring[p]) { /* paused before any fetch: not expected */
		log_ratelimited(&r->rl_dead, LOG_WARNING,
				"partition %d offset %" PRId64
				": consumed while held; it is read again from "
				"its start once released",
				p, m->offset);
		return;
	}
	if (r->applied_next[p] >= 0 && m->offset < r->applied_next[p]) {
		r->st.skipped_replay++; /* applied before a crash/rebalance */
		return;
	}
	r->st.messages++;
	if (run_is_control(m)) { /* an operator's rollback: run_control.c */
		run_handle_control(r, m);
		run_batch_add(r, p, m->offset);
		return;
	}

	size_t n = 0;
	struct dc_parse_error perr;
	if (dc_parse(r->parser, m->payload, m->len, m->key, m->key_len, r->obs,
		     MAX_OBS_PER_MESSAGE, &n, &perr) < 0) {
		run_dead_letter(r, m, perr.text, perr.reason);
	} else {
		r->n_rejected = 0;
		int why = DC_REASON_REJECTED_VALUE; /* the first refusal's */
		int64_t now = wall_ns();
		rd_kafka_timestamp_type_t tt;
		int64_t created = rd_kafka_message_timestamp(m, &tt);
		/* consumed when the loop's poll returned (its lap clock) */
		ttt_engine_set_tag(r->engine,
				   outbox_tag(created, r->t_lap / 1000));
		for (size_t i = 0; i < n; i++) {
			struct dc_obs *o = &r->obs[i];
			r->st.observations++;
			if (future_value(r, o, now)) {
				if (r->n_rejected == 1)
					why = DC_REASON_FUTURE_TIMESTAMP;
				continue;
			}
			dc_status_series_seen(dc_metrics_status(r->metrics),
					      o->series, p);
			size_t known = ttt_engine_series_count(r->engine);
			/* full resolution: the engine and the store count
			 * series time in ns (docs/SQL.md) */
			int e = ttt_engine_observe(r->engine, o->series,
						   o->ts_ns, (float)o->value);
			if (e == 0 &&
			    ttt_engine_series_count(r->engine) > known)
				run_write_init(r, o->series, o->ts_ns);
			if (e == 0)
				run_owner_note(r, o->series, p);
			/* refused whole -- its series could not be made (too
			 * many series, out of memory), so the value is not in
			 * it: the message goes to the dead letters.  An error
			 * after the value was taken (a forecast) is logged. */
			int64_t clk_last, clk_step;
			if (e < 0 &&
			    ttt_engine_series_clock(r->engine, o->series,
						    &clk_last,
						    &clk_step) == -ENOENT &&
			    r->n_rejected++ == 0)
				snprintf(
				    r->rejected, sizeof(r->rejected),
				    "rejected_value: %.200s: %s", o->series,
				    e == -ENOSPC ? "too many series in "
						   "memory (ttt.max_series)"
						 : strerror(-e));
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
			run_dead_letter(r, m, r->rejected, why);
		}
	}
	run_batch_add(r, p, m->offset);
}
