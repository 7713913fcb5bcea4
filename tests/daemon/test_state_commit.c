/*
 * The state topic and the offsets (daemon/run_changelog.c): the loop does
 * not wait for a commit's state records, but the group's offsets are
 * committed only once every one of them is acknowledged.  dc_run in this
 * process against librdkafka's mock cluster: while the broker answers
 * every Produce request with an error (the idempotent producer holds the
 * records and tries again), messages are applied and no offset is
 * committed; once produce works again, the offsets of everything applied
 * are committed within seconds, without a new message, and every series'
 * state is in the topic.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "tests/daemon/mockrun.h"

#define PARTS  2
#define SERIES 6
#define STEPS  40
#define GROUP  "state-commit"

struct world {
	struct mr_world mr;
	rd_kafka_t *reader;
	int phase, committed_while_failing;
	int64_t t0;   /* the current wait's start (mr_waited) */
	int64_t want; /* messages produced in all */
	uint64_t applied_at_clear;
	bool failing, done;
};

/* The group's committed offsets summed over the partitions (none: 0). */
static int64_t committed(struct world *w)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(PARTS);
	for (int p = 0; p < PARTS; p++)
		rd_kafka_topic_partition_list_add(l, "measurements", p);
	int64_t sum = 0;
	if (rd_kafka_committed(w->reader, l, 5000) == 0)
		for (int p = 0; p < PARTS; p++)
			if (l->elems[p].offset >= 0)
				sum += l->elems[p].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return sum;
}

/* After every poll of the loop, on its thread. */
static bool tick(void *user, const struct dc_run_stats *st)
{
	struct world *w = user;
	uint64_t applied = st->messages + st->skipped_replay;
	if (!w->failing) {
		/* from the loop's first tick (the group join takes seconds:
		 * nothing is consumed yet), the broker refuses every Produce:
		 * no state record (nor forecast) is acknowledged */
		mr_refuse_produce(&w->mr);
		w->failing = true;
		cr_assert_eq(applied, 0);
	}
	if (w->phase == 0 && applied >= (uint64_t)w->want) {
		/* everything applied, produce refused: 2 s of commits due
		 * (every 100 ms), none may be made */
		if (!mr_waited(&w->t0, 2000))
			return false;
		if (committed(w) != 0)
			w->committed_while_failing = 1;
		rd_kafka_mock_clear_request_errors(w->mr.mc, MR_PRODUCE_APIKEY);
		w->applied_at_clear = applied;
		w->phase = 1;
		w->t0 = 0;
		return false;
	}
	if (w->phase == 1) {
		/* produce works again: the next commit covers everything */
		if (committed(w) == w->want) {
			w->done = true;
			return true;
		}
		return mr_waited(&w->t0, 15000); /* give up */
	}
	return false;
}

Test(state_commit, offsets_wait_for_their_states, .timeout = 120)
{
	struct world w = {0};
	char err[512];
	mr_start(&w.mr, PARTS, true);
	rd_kafka_conf_t *conf;
	/* reads the group's commits without joining it */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", w.mr.bootstraps, err,
			  sizeof(err));
	rd_kafka_conf_set(conf, "group.id", GROUP, err, sizeof(err));
	rd_kafka_conf_set(conf, "partition.assignment.strategy",
			  "cooperative-sticky", err, sizeof(err));
	w.reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	cr_assert_not_null(w.reader, "%s", err);

	w.want = mr_produce_steps(&w.mr, SERIES, 0, STEPS);
	const char *sets[] = {w.mr.s_brokers,
			      w.mr.s_db,
			      w.mr.s_model,
			      "kafka.group=" GROUP,
			      "kafka.state_topic=driftcast-state",
			      "kafka.deadletter_topic=deadletter",
			      "kafka.commit_interval_ms=100",
			      "kafka.session_timeout_ms=6000",
			      "storage.batch_ms=50",
			      "metrics.listen=off",
			      "model.lookback=16",
			      "model.horizon=4",
			      "log.level=error"};
	struct dc_run_options o = {.sets = sets,
				   .nsets = sizeof(sets) / sizeof(sets[0]),
				   .tick = tick,
				   .user = &w};
	struct dc_run_stats st;
	int rc = dc_run(&o, &st);
	cr_assert_eq(rc, 0);
	cr_assert_geq(w.applied_at_clear, (uint64_t)w.want,
		      "not everything applied before produce came back");
	cr_assert_eq(w.committed_while_failing, 0,
		     "offsets committed before their states were acknowledged");
	cr_assert(w.done,
		  "offsets not committed once produce worked (%ld of "
		  "%ld)",
		  (long)committed(&w), (long)w.want);
	cr_assert_gt(st.states_published, 0);
	/* every series has its state in the topic, and every partition a
	 * handover mark */
	int64_t stored = 0;
	for (int p = 0; p < PARTS; p++) {
		int64_t lo = 0, hi = 0;
		cr_assert_eq(
		    rd_kafka_query_watermark_offsets(
			w.reader, "driftcast-state", p, &lo, &hi, 5000),
		    0);
		stored += hi - lo;
	}
	cr_assert_geq(stored, SERIES + PARTS, "%ld records in the state topic",
		      (long)stored);

	rd_kafka_destroy(w.reader);
	mr_stop(&w.mr);
}
