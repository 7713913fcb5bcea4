/*
 * dc_run in the test's own process against librdkafka's mock cluster, for
 * tests that drive the daemon loop through its tick: the cluster with the
 * daemon's topics, a producer of measurements, the small model in a fresh
 * directory, and the --set strings that name them.
 */
#ifndef DRIFTCAST_TESTS_DAEMON_MOCKRUN_H
#define DRIFTCAST_TESTS_DAEMON_MOCKRUN_H

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "forecast/forecast.h"
#include "tests/storage/storeutil.h"
#include "tests/ttt/small_model.h"

/* the Kafka protocol's ApiKey of Produce (librdkafka's public headers do
 * not name them) */
#define MR_PRODUCE_APIKEY 0

struct mr_world {
	rd_kafka_t *owner, *producer;
	rd_kafka_mock_cluster_t *mc;
	char bootstraps[256], dir[64], db[160], model[128];
	/* kafka.brokers=, storage.path=, model.path= */
	char s_brokers[300], s_db[192], s_model[160];
};

/* The cluster: measurements and forecasts of parts partitions, deadletter,
 * and driftcast-state when state_topic; the model: L = 16, H = 4. */
static inline void mr_start(struct mr_world *w, int parts, bool state_topic)
{
	char err[512];
	su_tmpdb(w->dir, sizeof(w->dir), w->db, sizeof(w->db));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	w->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(w->owner, "%s", err);
	w->mc = rd_kafka_mock_cluster_new(w->owner, 1);
	cr_assert_not_null(w->mc);
	snprintf(w->bootstraps, sizeof(w->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(w->mc));
	rd_kafka_mock_topic_create(w->mc, "measurements", parts, 1);
	rd_kafka_mock_topic_create(w->mc, "forecasts", parts, 1);
	rd_kafka_mock_topic_create(w->mc, "deadletter", 1, 1);
	if (state_topic)
		rd_kafka_mock_topic_create(w->mc, "driftcast-state", parts, 1);

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", w->bootstraps, err,
			  sizeof(err));
	w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	cr_assert_not_null(w->producer, "%s", err);

	snprintf(w->model, sizeof(w->model), "%s/model.dcm", w->dir);
	struct fc_model *m = tt_small_model_ok(16, 4);
	cr_assert_eq(fc_model_save(m, w->model, err, sizeof(err)), 0, "%s",
		     err);
	fc_model_free(m);
	snprintf(w->s_brokers, sizeof(w->s_brokers), "kafka.brokers=%s",
		 w->bootstraps);
	snprintf(w->s_db, sizeof(w->s_db), "storage.path=%s", w->db);
	snprintf(w->s_model, sizeof(w->s_model), "model.path=%s", w->model);
}

static inline void mr_stop(struct mr_world *w)
{
	rd_kafka_destroy(w->producer);
	rd_kafka_mock_cluster_destroy(w->mc);
	rd_kafka_destroy(w->owner);
	su_rmdir(w->dir);
}

/* One message to measurements, keyed (not flushed). */
static inline void mr_produce(struct mr_world *w, char *key, char *payload)
{
	cr_assert_eq(
	    rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC("measurements"),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_KEY(key, strlen(key)),
			      RD_KAFKA_V_VALUE(payload, strlen(payload)),
			      RD_KAFKA_V_END),
	    0);
}

/* Hourly steps [from, to) of series s0 .. s<series - 1>, keyed by series,
 * flushed; returns how many messages. */
static inline int64_t mr_produce_steps(struct mr_world *w, int series, int from,
				       int to)
{
	char key[16], payload[96];
	int64_t n = 0;
	for (int t = from; t < to; t++)
		for (int s = 0; s < series; s++, n++) {
			snprintf(key, sizeof(key), "s%d", s);
			snprintf(payload, sizeof(payload),
				 "{\"series\":\"s%d\",\"ts\":%d,"
				 "\"value\":%.3f}",
				 s, 1700000000 + 3600 * t,
				 (double)((t * 7 + s * 3) % 11));
			mr_produce(w, key, payload);
		}
	cr_assert_eq(rd_kafka_flush(w->producer, 30000), 0);
	return n;
}

/* Whether ms milliseconds have passed since the first call with *t0 = 0
 * (which starts the wait; set *t0 = 0 again for the next one).  A tick's
 * clock: dc_run calls the tick after every poll -- a message, a delivery
 * report, or about 100 ms of nothing -- so a count of ticks is no measure
 * of time (150 of them once passed in less than a second). */
static inline bool mr_waited(int64_t *t0, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (*t0 == 0)
		*t0 = now;
	return now - *t0 >= ms;
}

/* Every Produce request refused from now (1000 of them), as a broker that
 * refuses the daemon's writes. */
static inline void mr_refuse_produce(struct mr_world *w)
{
	rd_kafka_resp_err_t fail[1] = {
	    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED};
	for (int i = 0; i < 1000; i++)
		rd_kafka_mock_push_request_errors_array(
		    w->mc, MR_PRODUCE_APIKEY, 1, fail);
}

#endif
