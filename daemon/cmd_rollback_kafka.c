/*
 * `driftcast rollback --brokers/--config`: the Kafka form.  The rollback
 * is produced as a control record (daemon/control.h) on the input topic,
 * keyed by the series, so it lands on the series' partition and the host
 * that owns it applies it in order with the series' data
 * (daemon/run_control.c).  This process only waits for the broker to
 * have it; the owner's log and audit say when it is applied.
 */
#include "daemon/cli.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control.h"
#include "daemon/kafka.h"

struct sent {
	rd_kafka_resp_err_t err;
	int32_t partition;
	int64_t offset;
	bool done;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	struct sent *s = opaque;
	(void)rk;
	s->err = m->err;
	s->partition = m->partition;
	s->offset = m->offset;
	s->done = true;
}

static rd_kafka_t *producer(const struct cfg *cfg, const char *brokers,
			    int timeout_ms, struct sent *s)
{
	char err[512], tmo[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
	/* the data producers' partitioner (librdkafka's default unless the
	 * [librdkafka] settings name one): the key must find the partition
	 * the series' readings are on */
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err,
			      sizeof(err)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "message.timeout.ms", tmo, err,
			      sizeof(err)) != RD_KAFKA_CONF_OK ||
	    dc_kafka_conf_passthrough(conf, cfg, CFG_KSCOPE_PRODUCER, err,
				      sizeof(err)) < 0) {
		fprintf(stderr, "driftcast rollback: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, s);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "driftcast rollback: %s\n", err);
	}
	return rk;
}

int dc_rollback_send(const struct cfg *cfg, const char *brokers,
		     const char *topic, const struct dc_control *c,
		     const char *target, int timeout_ms)
{
	struct sent s = {.partition = -1, .offset = -1};
	char *payload = dc_control_encode(c);
	if (!payload) {
		fprintf(stderr, "driftcast rollback: cannot encode the "
				"record (out of memory, or text that is not "
				"UTF-8)\n");
		return DC_EXIT_FAILURE;
	}
	rd_kafka_t *rk = producer(cfg, brokers, timeout_ms, &s);
	if (!rk) {
		free(payload);
		return DC_EXIT_FAILURE;
	}
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    rk, RD_KAFKA_V_TOPIC(topic),
	    RD_KAFKA_V_KEY(c->series, strlen(c->series)),
	    RD_KAFKA_V_VALUE(payload, strlen(payload)),
	    RD_KAFKA_V_HEADER(DC_CONTROL_HEADER, DC_CONTROL_ROLLBACK,
			      (ssize_t)strlen(DC_CONTROL_ROLLBACK)),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	free(payload);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* message.timeout.ms bounds this: the report always comes */
		while (!s.done)
			rd_kafka_poll(rk, 100);
		e = s.err;
	}
	rd_kafka_destroy(rk);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr,
			"driftcast rollback: not delivered to %s at %s: %s\n",
			topic, brokers, rd_kafka_err2str(e));
		return DC_EXIT_FAILURE;
	}
	printf("series %s: rollback to %s sent to %s partition %d offset "
	       "%lld%s; the host that owns partition %d applies it after the "
	       "series' earlier readings (its log: 'operator rollback from "
	       "Kafka'; a refused one goes to the dead-letter topic with the "
	       "reason)\n",
	       c->series, target, topic, s.partition, (long long)s.offset,
	       c->adapter ? " (carrying the version's adapter)" : "",
	       s.partition);
	return DC_EXIT_OK;
}
