/* The start-offset rule (dc_kafka_start_offset) and its use on a real
 * assignment: a partition starts at the later of the group's committed
 * offset and this host's own applied offset, so a host coming back after
 * another served its partition does not re-apply (and re-forecast) what
 * that host did.  The assignment test runs librdkafka's mock cluster in
 * this process (one group join: about 3 s). */
#include <criterion/criterion.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "daemon/daemon.h"

Test(start_offset, the_later_of_committed_and_applied)
{
	enum dc_start_from from;
	/* a returning host: the group moved on while it was away */
	cr_assert_eq(dc_kafka_start_offset(1500, 200, &from), 1500);
	cr_assert_eq(from, DC_START_COMMITTED);
	/* the host applied more than the group committed (a commit was
	 * refused or not yet made): its own state, never a replay */
	cr_assert_eq(dc_kafka_start_offset(200, 260, &from), 260);
	cr_assert_eq(from, DC_START_APPLIED);
	/* equal: this host's state is as new, and it is used */
	cr_assert_eq(dc_kafka_start_offset(300, 300, &from), 300);
	cr_assert_eq(from, DC_START_APPLIED);
}

Test(start_offset, one_side_unknown_or_both)
{
	enum dc_start_from from;
	cr_assert_eq(dc_kafka_start_offset(-1, 42, &from), 42);
	cr_assert_eq(from, DC_START_APPLIED);
	cr_assert_eq(dc_kafka_start_offset(42, -1, &from), 42);
	cr_assert_eq(from, DC_START_COMMITTED);
	cr_assert_eq(dc_kafka_start_offset(-1, -1, &from), -1);
	cr_assert_eq(from, DC_START_RESET);
	cr_assert_eq(dc_kafka_start_offset(0, -1, NULL), 0);
}

/* ---- on a real assignment ------------------------------------------- */

static int64_t applied_5(void *user, const char *topic, int32_t partition)
{
	(void)user, (void)topic, (void)partition;
	return 4; /* this host applied offsets 0..4 long ago */
}

static struct dc_kafka_start seen;
static void on_assign(void *user, struct dc_kafka_start *st, int n)
{
	(void)user;
	if (n > 0)
		seen = st[0];
}

/* A mock cluster (its owner in *owner) with topic "in" of one partition,
 * and 20 one-byte messages in partition 0 of topic fill. */
static rd_kafka_mock_cluster_t *cluster(rd_kafka_t **owner, const char *fill)
{
	char e[512];
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof(e));
	cr_assert_not_null(p, "%s", e);
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(p, 1);
	cr_assert_not_null(mc);
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
	cr_assert_eq(rd_kafka_mock_topic_create(mc, "in", 1, 1), 0);
	if (strcmp(fill, "in"))
		cr_assert_eq(rd_kafka_mock_topic_create(mc, fill, 1, 1), 0);
	rd_kafka_conf_t *c2 = rd_kafka_conf_new();
	rd_kafka_conf_set(c2, "bootstrap.servers", boot, e, sizeof(e));
	rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, c2, e, sizeof(e));
	for (int i = 0; i < 20; i++)
		cr_assert_eq(
		    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(fill),
				      RD_KAFKA_V_PARTITION(0),
				      RD_KAFKA_V_VALUE("x", 1),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				      RD_KAFKA_V_END),
		    0);
	cr_assert_eq(rd_kafka_flush(prod, 10000), 0);
	rd_kafka_destroy(prod);
	*owner = p;
	return mc;
}

Test(start_offset, a_returning_host_starts_at_the_groups_commit, .timeout = 60)
{
	char e[512];
	rd_kafka_t *p = NULL;
	/* 20 messages; another host applied 0..11 and committed 12 */
	rd_kafka_mock_cluster_t *mc = cluster(&p, "in");
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);

	rd_kafka_conf_t *cc = rd_kafka_conf_new();
	rd_kafka_conf_set(cc, "bootstrap.servers", boot, e, sizeof(e));
	rd_kafka_conf_set(cc, "group.id", "g", e, sizeof(e));
	rd_kafka_t *other = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e));
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, "in", 0)->offset = 12;
	cr_assert_eq(rd_kafka_commit(other, l, 0), 0);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_consumer_close(other);
	rd_kafka_destroy(other);

	struct cfg c;
	cfg_defaults(&c);
	snprintf(c.kafka.brokers, sizeof(c.kafka.brokers), "%s", boot);
	snprintf(c.kafka.group, sizeof(c.kafka.group), "g");
	snprintf(c.kafka.input_topic, sizeof(c.kafka.input_topic), "in");
	c.kafka.session_timeout_ms = 6000;
	struct dc_kafka_hooks hooks = {.applied_offset = applied_5,
				       .on_assign = on_assign};
	struct dc_kafka *k = NULL;
	cr_assert_eq(dc_kafka_new(&c, &hooks, &k, e, sizeof(e)), 0, "%s", e);
	rd_kafka_message_t *m = NULL;
	for (int i = 0; i < 300 && !m; i++) {
		m = dc_kafka_poll(k, 100);
		if (m && m->err) {
			rd_kafka_message_destroy(m);
			m = NULL;
		}
	}
	cr_assert_not_null(m, "nothing consumed");
	cr_expect_eq(seen.committed, 12);
	cr_expect_eq(seen.applied_next, 5);
	cr_expect_eq(seen.from, DC_START_COMMITTED);
	/* not 5: offsets 5..11 were applied (and forecast) by the other host */
	cr_expect_eq(m->offset, 12, "started at %lld", (long long)m->offset);
	rd_kafka_message_destroy(m);
	dc_kafka_free(k);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(p);
}

static int count_one(void *user, int64_t offset, const void *key,
		     size_t key_len, const void *payload, size_t len)
{
	int *n = user;
	(void)offset, (void)key, (void)key_len, (void)payload, (void)len;
	(*n)++;
	return 0;
}

/* The state topic's reader starts at the partition's low watermark; when
 * the broker says that offset is out of range (a record deleted between
 * the watermark query and the fetch: retention, or the mock's 5 MiB
 * limit), it starts again at the new low watermark, not at the end (where
 * it would wait for the timeout and restore from a part of the log). */
Test(state_reader, an_offset_out_of_range_reads_from_the_start, .timeout = 60)
{
	char e[512];
	rd_kafka_t *p = NULL;
	rd_kafka_mock_cluster_t *mc = cluster(&p, "st");
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);

	struct cfg c;
	cfg_defaults(&c);
	snprintf(c.kafka.brokers, sizeof(c.kafka.brokers), "%s", boot);
	snprintf(c.kafka.group, sizeof(c.kafka.group), "g2");
	snprintf(c.kafka.input_topic, sizeof(c.kafka.input_topic), "in");
	struct dc_kafka_hooks hooks = {0};
	struct dc_kafka *k = NULL;
	cr_assert_eq(dc_kafka_new(&c, &hooks, &k, e, sizeof(e)), 0, "%s", e);
	/* the reader's first fetch: OFFSET_OUT_OF_RANGE (ApiKey 1: Fetch) */
	rd_kafka_mock_push_request_errors(
	    mc, 1, 1, RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE);
	int n = 0;
	int64_t from = -1;
	int r = dc_kafka_read_partition(k, "st", 0, count_one, &n, &from, 8000,
					e, sizeof(e));
	cr_expect_eq(r, 0, "%d: %s", r, e);
	cr_expect_eq(n, 20);
	cr_expect_eq(from, 20);
	/* again from where it stopped: nothing more */
	n = 0;
	cr_expect_eq(dc_kafka_read_partition(k, "st", 0, count_one, &n, &from,
					     8000, e, sizeof(e)),
		     0, "%s", e);
	cr_expect_eq(n, 0);
	from = 15; /* or from an offset of its own */
	cr_expect_eq(dc_kafka_read_partition(k, "st", 0, count_one, &n, &from,
					     8000, e, sizeof(e)),
		     0, "%s", e);
	cr_expect_eq(n, 5);
	/* from beyond the end (the topic made again since): refused, to be
	 * read again from its start */
	from = 25;
	cr_expect_eq(dc_kafka_read_partition(k, "st", 0, count_one, &n, &from,
					     8000, e, sizeof(e)),
		     -ERANGE);
	dc_kafka_free(k);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(p);
}

static void hold_all(void *user, struct dc_kafka_start *st, int n)
{
	(void)user;
	for (int i = 0; i < n; i++)
		st[i].hold = true;
}

/* Messages of k consumed within ms milliseconds; the first one's offset in
 * *first (-1: none). */
static int consumed(struct dc_kafka *k, int ms, int64_t *first)
{
	int n = 0;
	*first = -1;
	for (int i = 0; i < ms / 50; i++) {
		rd_kafka_message_t *m = dc_kafka_poll(k, 50);
		if (!m)
			continue;
		if (!m->err && n++ == 0)
			*first = m->offset;
		rd_kafka_message_destroy(m);
	}
	return n;
}

/* A partition held at its assignment (its state not read yet) is consumed
 * only once released, from the offset the release names -- also when the
 * input was paused and resumed for backpressure meanwhile (the resume
 * took every assigned partition). */
Test(held, a_held_partition_waits_for_its_release, .timeout = 90)
{
	char e[512];
	rd_kafka_t *p = NULL;
	rd_kafka_mock_cluster_t *mc = cluster(&p, "in"); /* 20 messages */
	const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
	struct cfg c;
	cfg_defaults(&c);
	snprintf(c.kafka.brokers, sizeof(c.kafka.brokers), "%s", boot);
	snprintf(c.kafka.group, sizeof(c.kafka.group), "g3");
	snprintf(c.kafka.input_topic, sizeof(c.kafka.input_topic), "in");
	c.kafka.session_timeout_ms = 6000;
	struct dc_kafka_hooks hooks = {.on_assign = hold_all};
	struct dc_kafka *k = NULL;
	cr_assert_eq(dc_kafka_new(&c, &hooks, &k, e, sizeof(e)), 0, "%s", e);
	int64_t first;
	int n = 0;
	for (int i = 0; i < 60 && dc_kafka_assigned_count(k) == 0; i++)
		n += consumed(k, 500, &first);
	cr_assert_eq(dc_kafka_assigned_count(k), 1, "never assigned");
	n += consumed(k, 1500, &first);
	cr_assert_eq(n, 0, "%d messages of a held partition consumed", n);
	cr_assert_eq(dc_kafka_pause(k, true), 0);
	cr_assert_eq(dc_kafka_pause(k, false), 0);
	n = consumed(k, 1500, &first);
	cr_assert_eq(n, 0, "the backpressure resume released it: %d", n);
	cr_assert_eq(dc_kafka_release(k, 0, 7, e, sizeof(e)), 0, "%s", e);
	n = consumed(k, 5000, &first);
	cr_assert_eq(n, 13, "%d consumed after the release", n);
	cr_assert_eq(first, 7);
	cr_assert_eq(dc_kafka_release(k, 0, 7, e, sizeof(e)), -ENOENT);
	dc_kafka_free(k);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(p);
}
