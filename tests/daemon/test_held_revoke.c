/*
 * A partition revoked while the batch is held (daemon/run_batch.c): the
 * batch's dead letter is refused, so the batch -- with values of every
 * series -- waits; meanwhile a second member joins the group and takes a
 * partition, whose series this host forgets.  When the dead letter is
 * delivered the held batch commits the offsets of both partitions, and the
 * saved recent values of the revoked partition's series must describe the
 * same state: a later start would otherwise take values that miss what the
 * batch applied.  The revoke writes them, as of the held batch, into it
 * (before, the held batch dropped the older ones: a partition assigned
 * back refilled its lookbacks, or applied the held messages twice:
 * tests/integration/held_reassign.sh).  The kept partition's series keep
 * theirs, up to date.  dc_run in this process against librdkafka's mock
 * cluster.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "tests/daemon/mockrun.h"

#define PARTS  2
#define SERIES 6
#define STEPS  30 /* durable before the hold */
#define EXTRA  5  /* in the held batch */
#define GROUP  "held-revoke"

struct world {
	struct mr_world mr;
	rd_kafka_t *intruder;
	int phase, revoked; /* revoked: the intruder's partition */
	int64_t t0;	    /* the current wait's start (mr_waited) */
	int64_t want;	    /* messages produced in all */
	uint64_t batches_at_clear;
	bool done;
};

static void join_intruder(struct world *w)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", w->mr.bootstraps, err,
			  sizeof(err));
	rd_kafka_conf_set(conf, "group.id", GROUP, err, sizeof(err));
	rd_kafka_conf_set(conf, "partition.assignment.strategy",
			  "cooperative-sticky", err, sizeof(err));
	rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
			  sizeof(err));
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	w->intruder = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	cr_assert_not_null(w->intruder, "%s", err);
	rd_kafka_poll_set_consumer(w->intruder);
	rd_kafka_topic_partition_list_t *t =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, "measurements",
					  RD_KAFKA_PARTITION_UA);
	cr_assert_eq(rd_kafka_subscribe(w->intruder, t), 0);
	rd_kafka_topic_partition_list_destroy(t);
}

/* The intruder's one partition once it has one, else -1; polls it (its
 * rebalance callbacks run in the poll: the default assigns). */
static int intruder_partition(struct world *w)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(w->intruder, 0);
	if (m)
		rd_kafka_message_destroy(m);
	rd_kafka_topic_partition_list_t *a = NULL;
	int p = -1;
	if (rd_kafka_assignment(w->intruder, &a) == 0 && a) {
		if (a->cnt == 1)
			p = a->elems[0].partition;
		rd_kafka_topic_partition_list_destroy(a);
	}
	return p;
}

/* After every poll of the loop, on its thread. */
static bool tick(void *user, const struct dc_run_stats *st)
{
	struct world *w = user;
	uint64_t applied = st->messages + st->skipped_replay;
	switch (w->phase) {
	case 0: /* the first STEPS applied and durable (batches of 1 s) */
		if (applied < (uint64_t)w->want || !mr_waited(&w->t0, 2500))
			return false;
		/* a bad message and EXTRA steps of every series in one batch,
		 * then every Produce refused: the dead letter holds it */
		mr_produce(&w->mr, "s0", "not a measurement");
		w->want +=
		    1 + mr_produce_steps(&w->mr, SERIES, STEPS, STEPS + EXTRA);
		mr_refuse_produce(&w->mr);
		w->phase = 1;
		w->t0 = 0;
		return false;
	case 1: /* all of it applied, the batch held: a member joins */
		if (applied < (uint64_t)w->want ||
		    st->deadletter_undelivered == 0)
			return mr_waited(&w->t0, 30000);
		join_intruder(w);
		w->phase = 2;
		w->t0 = 0;
		return false;
	case 2: /* it took a partition from this host, still held */
		w->revoked = intruder_partition(w);
		if (w->revoked < 0 || st->assigned != 1)
			return mr_waited(&w->t0, 30000);
		cr_assert_gt(st->deadletter_undelivered, 0,
			     "the batch was not held at the revoke");
		rd_kafka_mock_clear_request_errors(w->mr.mc, MR_PRODUCE_APIKEY);
		w->batches_at_clear = st->batches;
		w->phase = 3;
		w->t0 = 0;
		return false;
	default: /* the dead letter delivered, the held batch committed */
		intruder_partition(w);
		if (st->deadletter_undelivered == 0 &&
		    st->batches > w->batches_at_clear) {
			w->done = true;
			return true;
		}
		return mr_waited(&w->t0, 30000);
	}
}

Test(held_revoke, a_partition_revoked_while_held_saves_values_with_the_batch,
     .timeout = 120)
{
	struct world w = {0};
	mr_start(&w.mr, PARTS, false);
	w.want = mr_produce_steps(&w.mr, SERIES, 0, STEPS);
	const char *sets[] = {w.mr.s_brokers,
			      w.mr.s_db,
			      w.mr.s_model,
			      "kafka.group=" GROUP,
			      "kafka.deadletter_topic=deadletter",
			      "kafka.commit_interval_ms=100",
			      "kafka.session_timeout_ms=6000",
			      "storage.batch_ms=1000",
			      "storage.flush_when_idle=false",
			      "metrics.listen=off",
			      "model.lookback=16",
			      "model.horizon=4",
			      "log.level=error"};
	struct dc_run_options o = {.sets = sets,
				   .nsets = sizeof(sets) / sizeof(sets[0]),
				   .tick = tick,
				   .user = &w};
	struct dc_run_stats st;
	cr_assert_eq(dc_run(&o, &st), 0);
	cr_assert(w.done, "stopped in phase %d", w.phase);

	sqlite3 *d = su_raw(w.mr.db);
	char q[256];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM series WHERE partition = %d", w.revoked);
	int gone = su_int(d, q);
	cr_assert(gone > 0 && gone < SERIES,
		  "%d of the series on the revoked partition", gone);
	/* the held batch's offsets of the revoked partition are stored ... */
	snprintf(q, sizeof(q),
		 "SELECT next_offset FROM kafka_offsets WHERE partition = %d",
		 w.revoked);
	int64_t lo = 0, hi = 0;
	cr_assert_eq(rd_kafka_query_watermark_offsets(w.mr.producer,
						      "measurements", w.revoked,
						      &lo, &hi, 5000),
		     0);
	cr_assert_eq(su_int(d, q), hi, "the held batch's offsets not stored");
	/* ... with its series' saved values, as of the same offsets: none
	 * older (they would miss what the batch applied) */
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM series_recent r JOIN series s ON s.id "
		 "= r.series_id WHERE s.partition = %d AND r.position = %d",
		 w.revoked, STEPS + EXTRA);
	cr_assert_eq(su_int(d, q), gone,
		     "the revoked series' values not saved with the batch");
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM series_recent r JOIN series s ON s.id "
		 "= r.series_id WHERE s.partition = %d AND r.position <> %d",
		 w.revoked, STEPS + EXTRA);
	cr_assert_eq(su_int(d, q), 0,
		     "values older than the stored offsets kept");
	/* the kept partition's series: saved as of the last value */
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM series_recent r JOIN series s ON s.id "
		 "= r.series_id WHERE s.partition <> %d AND r.position = %d",
		 w.revoked, STEPS + EXTRA);
	cr_assert_eq(su_int(d, q), SERIES - gone);
	sqlite3_close(d);

	rd_kafka_consumer_close(w.intruder);
	rd_kafka_destroy(w.intruder);
	mr_stop(&w.mr);
}
