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
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "forecast/forecast.h"
#include "tests/storage/storeutil.h"
#include "tests/ttt/small_model.h"

#define PARTS  2
#define SERIES 6
#define STEPS  40
#define GROUP  "state-commit"
/* the Kafka protocol's ApiKey of Produce (librdkafka's public headers do
 * not name them) */
#define PRODUCE_APIKEY 0

struct world {
	rd_kafka_t *owner, *producer, *reader;
	rd_kafka_mock_cluster_t *mc;
	char bootstraps[256], dir[64];
	int phase, ticks, committed_while_failing;
	int64_t want; /* messages produced in all */
	uint64_t applied_at_clear;
	bool failing, done;
};

static void produce_steps(struct world *w, int from, int to)
{
	char key[16], payload[96];
	for (int t = from; t < to; t++)
		for (int s = 0; s < SERIES; s++) {
			int kl = snprintf(key, sizeof(key), "s%d", s);
			int n = snprintf(payload, sizeof(payload),
					 "{\"series\":\"s%d\",\"ts\":%d,"
					 "\"value\":%.3f}",
					 s, 1700000000 + 3600 * t,
					 (double)((t * 7 + s * 3) % 11));
			cr_assert_eq(
			    rd_kafka_producev(
				w->producer, RD_KAFKA_V_TOPIC("measurements"),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_KEY(key, (size_t)kl),
				RD_KAFKA_V_VALUE(payload, (size_t)n),
				RD_KAFKA_V_END),
			    0);
			w->want++;
		}
	cr_assert_eq(rd_kafka_flush(w->producer, 30000), 0);
}

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

/* About every 100 ms on the loop's thread. */
static bool tick(void *user, const struct dc_run_stats *st)
{
	struct world *w = user;
	uint64_t applied = st->messages + st->skipped_replay;
	if (!w->failing) {
		/* from the loop's first tick (the group join takes seconds:
		 * nothing is consumed yet), the broker refuses every Produce:
		 * no state record (nor forecast) is acknowledged */
		rd_kafka_resp_err_t fail[1] = {
		    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED};
		for (int i = 0; i < 1000; i++)
			rd_kafka_mock_push_request_errors_array(
			    w->mc, PRODUCE_APIKEY, 1, fail);
		w->failing = true;
		cr_assert_eq(applied, 0);
	}
	if (w->phase == 0 && applied >= (uint64_t)w->want) {
		/* everything applied, produce refused: 2 s of commits due
		 * (every 100 ms), none may be made */
		if (++w->ticks < 20)
			return false;
		if (committed(w) != 0)
			w->committed_while_failing = 1;
		rd_kafka_mock_clear_request_errors(w->mc, PRODUCE_APIKEY);
		w->applied_at_clear = applied;
		w->phase = 1;
		w->ticks = 0;
		return false;
	}
	if (w->phase == 1) {
		/* produce works again: the next commit covers everything */
		if (committed(w) == w->want) {
			w->done = true;
			return true;
		}
		return ++w->ticks > 150; /* 15 s: give up */
	}
	return false;
}

Test(state_commit, offsets_wait_for_their_states, .timeout = 120)
{
	struct world w = {0};
	char err[512];
	char db[160];
	su_tmpdb(w.dir, sizeof(w.dir), db, sizeof(db));

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	w.owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(w.owner, "%s", err);
	w.mc = rd_kafka_mock_cluster_new(w.owner, 1);
	cr_assert_not_null(w.mc);
	snprintf(w.bootstraps, sizeof(w.bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(w.mc));
	rd_kafka_mock_topic_create(w.mc, "measurements", PARTS, 1);
	rd_kafka_mock_topic_create(w.mc, "forecasts", PARTS, 1);
	rd_kafka_mock_topic_create(w.mc, "deadletter", 1, 1);
	rd_kafka_mock_topic_create(w.mc, "driftcast-state", PARTS, 1);

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", w.bootstraps, err,
			  sizeof(err));
	w.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(w.producer, "%s", err);
	/* reads the group's commits without joining it */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", w.bootstraps, err,
			  sizeof(err));
	rd_kafka_conf_set(conf, "group.id", GROUP, err, sizeof(err));
	rd_kafka_conf_set(conf, "partition.assignment.strategy",
			  "cooperative-sticky", err, sizeof(err));
	w.reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	cr_assert_not_null(w.reader, "%s", err);

	char model[128];
	snprintf(model, sizeof(model), "%s/model.dcm", w.dir);
	struct fc_model *m = tt_small_model(16, 4);
	cr_assert_not_null(m);
	cr_assert_eq(fc_model_save(m, model, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);

	produce_steps(&w, 0, STEPS);
	char s_brokers[300], s_db[192], s_model[160];
	snprintf(s_brokers, sizeof(s_brokers), "kafka.brokers=%s",
		 w.bootstraps);
	snprintf(s_db, sizeof(s_db), "storage.path=%s", db);
	snprintf(s_model, sizeof(s_model), "model.path=%s", model);
	const char *sets[] = {s_brokers,
			      s_db,
			      s_model,
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
	rd_kafka_destroy(w.producer);
	rd_kafka_mock_cluster_destroy(w.mc);
	rd_kafka_destroy(w.owner);
	su_rmdir(w.dir);
}
