/*
 * The daemon's status (daemon/status.c, status_series.c): when /healthz
 * and /readyz say yes and why they say no, the last-minute counts and
 * rates, the series counted as owned (only those of assigned partitions),
 * the series worse than frozen, the realised error histograms, and the
 * /status JSON the command reads.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/daemon.h"

#define SEC 1000000ull

static struct dc_run_stats st;

/* Publish st at now (s) with the given partitions assigned. */
static void publish(struct dc_status *s, uint64_t now_s, const int *parts,
		    int nparts)
{
	int max;
	struct dc_partition_lag *buf = dc_status_lag_buffer(s, &max);
	cr_assert_geq(max, nparts);
	for (int i = 0; i < nparts; i++)
		buf[i] = (struct dc_partition_lag){.partition = parts[i],
						   .lag = 10 * i};
	dc_status_publish(s, &(struct dc_status_report){
				 .st = &st,
				 .model = "m.dcm",
				 .topic = "in",
				 .nparts = nparts,
				 .now_usec = 1000 * SEC + now_s * SEC,
			     });
}

static json_t *status_json(struct dc_status *s, uint64_t now_s)
{
	char *text = dc_status_json(s, 1000 * SEC + now_s * SEC);
	cr_assert_not_null(text);
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert_not_null(j, "%s: %s", e.text, text);
	free(text);
	return j;
}

static json_int_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	cr_assert(json_is_integer(v), "%s is not an integer", key);
	return json_integer_value(v);
}

/* The value of the sample "name value" in the metrics text. */
static double sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = text; l && *l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (!strncmp(l, name, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	}
	cr_assert_fail("no sample %s in\n%s", name, text);
	return 0;
}

/* Publish at now_s with parts assigned; /status must count series owned
 * series, scored of them scored, worse of them worse than frozen. */
static void expect_series(struct dc_status *s, uint64_t now_s, const int *parts,
			  int nparts, json_int_t series, json_int_t scored,
			  json_int_t worse)
{
	publish(s, now_s, parts, nparts);
	json_t *j = status_json(s, now_s);
	cr_assert_eq(jint(j, "series"), series);
	cr_assert_eq(jint(j, "series_scored"), scored);
	cr_assert_eq(jint(j, "series_worse_than_frozen"), worse);
	json_decref(j);
}

static char *metrics_text(struct dc_status *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	dc_status_write_metrics(s, f);
	fclose(f);
	return buf;
}

Test(status, health_and_readiness)
{
	struct dc_status *s = dc_status_new();
	struct dc_health h;
	cr_assert_not_null(s);
	memset(&st, 0, sizeof(st));

	dc_status_health(s, 1000 * SEC, &h);
	cr_assert(h.alive, "starting counts as alive");
	cr_assert_not(h.ready);
	cr_assert_str_eq(h.why, "starting");

	publish(s, 0, NULL, 0);
	dc_status_health(s, 1000 * SEC, &h);
	cr_assert(h.alive);
	cr_assert_not(h.ready);
	cr_assert_str_eq(h.why, "no input partitions assigned");

	int parts[] = {0, 1};
	publish(s, 1, parts, 2);
	dc_status_health(s, 1001 * SEC, &h);
	cr_assert(h.alive && h.ready, "%s", h.why);
	cr_assert_str_eq(h.why, "");

	/* 29 s without a publish is still alive, 30 s is a stall */
	dc_status_health(s, 1030 * SEC, &h);
	cr_assert(h.alive && h.ready);
	dc_status_health(s, 1031 * SEC, &h);
	cr_assert_not(h.alive);
	cr_assert_not(h.ready);
	cr_assert(strstr(h.why, "no progress for 30 s"), "%s", h.why);
	/* a wait that ticks the watchdog is progress too */
	notify_watchdog_tick(1025 * SEC);
	dc_status_health(s, 1031 * SEC, &h);
	cr_assert(h.alive && h.ready, "%s", h.why);
	cr_assert_float_eq(h.loop_age_s, 6, 1e-9);
	dc_status_health(s, 1055 * SEC, &h);
	cr_assert_not(h.alive);

	st.degraded = true;
	publish(s, 40, parts, 2);
	dc_status_health(s, 1040 * SEC, &h);
	cr_assert(h.alive);
	cr_assert_not(h.ready);
	cr_assert(strstr(h.why, "storage degraded"), "%s", h.why);

	st.degraded = false;
	publish(s, 41, parts, 2);
	dc_status_stopping(s);
	dc_status_health(s, 1041 * SEC, &h);
	cr_assert(h.alive);
	cr_assert_not(h.ready);
	cr_assert_str_eq(h.why, "stopping");
	dc_status_free(s);
}

Test(status, routes)
{
	struct dc_status *s = dc_status_new();
	unsigned code = 0;
	char *body;
	size_t len;
	const char *type;
	cr_assert_not(
	    dc_status_route(s, "/metrics", &code, &body, &len, &type));
	cr_assert_not(
	    dc_status_route(s, "/statusx", &code, &body, &len, &type));

	/* /healthz and /readyz before the loop, then ready, then stopping */
	cr_assert(dc_status_route(s, "/healthz", &code, &body, &len, &type));
	cr_assert_eq(code, 200);
	cr_assert_str_eq(body, "ok\n");
	cr_assert_eq(len, 3);
	free(body);
	cr_assert(dc_status_route(s, "/readyz", &code, &body, &len, &type));
	cr_assert_eq(code, 503);
	cr_assert_str_eq(body, "not ok: starting\n");
	free(body);

	memset(&st, 0, sizeof(st));
	int parts[] = {3};
	/* the route asks the monotonic clock: publish at its now */
	dc_status_publish(s, &(struct dc_status_report){
				 .st = &st,
				 .nparts = 0,
				 .now_usec = dc_now_monotonic_usec(),
			     });
	int max;
	dc_status_lag_buffer(s, &max)[0] =
	    (struct dc_partition_lag){.partition = parts[0], .lag = 5};
	dc_status_publish(s, &(struct dc_status_report){
				 .st = &st,
				 .nparts = 1,
				 .now_usec = dc_now_monotonic_usec(),
			     });
	cr_assert(dc_status_route(s, "/readyz", &code, &body, &len, &type));
	cr_assert_eq(code, 200, "%s", body);
	free(body);
	cr_assert(dc_status_route(s, "/status", &code, &body, &len, &type));
	cr_assert_eq(code, 200);
	cr_assert_str_eq(type, "application/json");
	cr_assert(strstr(body, "\"ready\": true"), "%s", body);
	free(body);
	dc_status_stopping(s);
	cr_assert(dc_status_route(s, "/readyz", &code, &body, &len, &type));
	cr_assert_eq(code, 503);
	cr_assert_str_eq(body, "not ok: stopping\n");
	free(body);
	cr_assert(dc_status_route(s, "/healthz", &code, &body, &len, &type));
	cr_assert_eq(code, 200);
	free(body);

	/* metrics off: no routes */
	cr_assert_not(
	    dc_status_route(NULL, "/status", &code, &body, &len, &type));
	dc_status_free(s);
}

Test(status, last_minute_counts_and_rates)
{
	struct dc_status *s = dc_status_new();
	int parts[] = {0};
	memset(&st, 0, sizeof(st));
	st.messages = 100;
	st.accepted = 1;
	publish(s, 0, parts, 1);
	for (int t = 1; t <= 90; t++) {
		/* 10 messages, 5 forecasts a second; 1 adaptation and 1 dead
		 * letter every 10 s; a rollback and a reset at 80 s */
		st.messages += 10;
		st.forecasts += 5;
		if (t % 10 == 0) {
			st.accepted++;
			st.deadlettered++;
		}
		if (t == 80) {
			st.rollbacks++;
			st.resets++;
		}
		publish(s, (uint64_t)t, parts, 1);
	}
	json_t *j = status_json(s, 90);
	json_t *m = json_object_get(j, "last_minute");
	cr_assert_float_eq(
	    json_number_value(json_object_get(j, "window_seconds")), 60, 1e-9);
	cr_assert_eq(jint(m, "messages"), 600);
	cr_assert_eq(jint(m, "forecasts"), 300);
	cr_assert_eq(jint(m, "accepted"), 6);
	cr_assert_eq(jint(m, "dead_letters"), 6);
	cr_assert_eq(jint(m, "rolled_back"), 2);
	cr_assert_float_eq(
	    json_number_value(json_object_get(j, "messages_per_second")), 10,
	    1e-9);
	cr_assert_float_eq(
	    json_number_value(json_object_get(j, "forecasts_per_second")), 5,
	    1e-9);
	json_t *since = json_object_get(j, "since_start");
	cr_assert_eq(jint(since, "messages"), 1000);
	cr_assert_eq(jint(since, "accepted"), 10);
	cr_assert_eq(jint(since, "rolled_back"), 2);
	cr_assert_str_eq(json_string_value(json_object_get(j, "storage")),
			 "ok");
	cr_assert_str_eq(json_string_value(json_object_get(j, "model")),
			 "m.dcm");
	cr_assert(json_is_null(json_object_get(j, "last_error")));
	json_decref(j);

	/* the last line logged at error level, with its time */
	log_emit(LOG_WARNING, "a warning is not an error");
	log_emit(LOG_ERR, "storage: disk full (%s)", "test");
	log_emit(LOG_NOTICE, "nor is a notice");
	j = status_json(s, 90);
	json_t *le = json_object_get(j, "last_error");
	cr_assert_str_eq(json_string_value(json_object_get(le, "message")),
			 "storage: disk full (test)");
	cr_assert_eq(strlen(json_string_value(json_object_get(le, "time"))),
		     20); /* 2026-12-05T06:40:22Z */
	json_decref(j);

	/* right after a start the window is what there is */
	struct dc_status *s2 = dc_status_new();
	memset(&st, 0, sizeof(st));
	publish(s2, 0, parts, 1);
	st.messages = 20;
	publish(s2, 2, parts, 1);
	j = status_json(s2, 2);
	cr_assert_float_eq(
	    json_number_value(json_object_get(j, "messages_per_second")), 10,
	    1e-9);
	json_decref(j);
	dc_status_free(s2);
	dc_status_free(s);
}

Test(status, owned_series_and_worse_than_frozen)
{
	struct dc_status *s = dc_status_new();
	memset(&st, 0, sizeof(st));
	st.series = 5;
	dc_status_series_seen(s, "s1", 0);
	dc_status_series_seen(s, "s2", 1);
	dc_status_series_seen(s, "s3", 0);
	dc_status_series_seen(s, "s4", 2);
	dc_status_series_seen(s, "s5", 5000); /* beyond the tracked range */
	dc_status_series_seen(s, "s1", 0);    /* seen again: counted once */
	/* s1 adapted worse than frozen, s3 better, s2 worse (not owned) */
	dc_status_realised(s, "s1", 2.0f, 1.0f);
	dc_status_realised(s, "s3", 0.5f, 1.0f);
	dc_status_realised(s, "s2", 3.0f, 1.0f);
	dc_status_realised(s, "s4", NAN, 1.0f); /* ignored */

	int owned[] = {0, 2};
	publish(s, 0, owned, 2);
	json_t *j = status_json(s, 0);
	cr_assert_eq(jint(j, "series"), 3); /* s1, s3, s4 */
	cr_assert_eq(jint(j, "series_in_memory"), 5);
	cr_assert_eq(jint(j, "series_scored"), 2);
	cr_assert_eq(jint(j, "series_worse_than_frozen"), 1);
	json_t *p = json_object_get(j, "partitions");
	cr_assert_eq(json_array_size(p), 2);
	cr_assert_eq(jint(json_array_get(p, 1), "partition"), 2);
	cr_assert_eq(jint(json_array_get(p, 1), "lag"), 10);
	json_decref(j);

	char *text = metrics_text(s);
	cr_assert_eq(sample(text, "driftcast_series"), 3);
	cr_assert_float_eq(
	    sample(text, "driftcast_series_worse_than_frozen_ratio"), 0.5,
	    1e-12);
	free(text);

	/* s1 recovers: an EWMA, so it takes a few windows below frozen */
	for (int i = 0; i < 10; i++)
		dc_status_realised(s, "s1", 0.1f, 1.0f);
	/* a rebalance: partition 1 arrives, 2 leaves */
	int owned2[] = {0, 1};
	/* s1, s2, s3 owned and scored; s2 worse */
	expect_series(s, 1, owned2, 2, 3, 3, 1);

	/* a series that moves partition is counted on its new one */
	dc_status_series_seen(s, "s2", 2);
	expect_series(s, 2, owned2, 2, 2, 2, 0);
	dc_status_free(s);
}

Test(status, many_series_grow_the_table)
{
	struct dc_status *s = dc_status_new();
	char key[32];
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "meter-%d", i);
		dc_status_series_seen(s, key, i % 4);
		if (i % 2)
			dc_status_realised(s, key, 2.0f, 1.0f);
	}
	int parts[] = {0, 1, 2, 3};
	expect_series(s, 0, parts, 4, 5000, 2500, 2500);
	dc_status_free(s);
}

Test(status, realised_error_histograms)
{
	struct dc_status *s = dc_status_new();
	memset(&st, 0, sizeof(st));
	dc_status_series_seen(s, "a", 0);
	dc_status_realised(s, "a", 0.01f, 0.2f);  /* le 0.01 | le 0.25 */
	dc_status_realised(s, "a", 0.3f, 0.3f);	  /* le 0.5 both */
	dc_status_realised(s, "a", 100.0f, 1.0f); /* +Inf | le 1 */
	int parts[] = {0};
	publish(s, 0, parts, 1);
	char *t = metrics_text(s);
	cr_assert(strstr(t, "# TYPE driftcast_realised_error histogram"));
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"adapted\","
			    "le=\"0.01\"}"),
		     1);
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"adapted\","
			    "le=\"0.5\"}"),
		     2);
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"adapted\","
			    "le=\"25\"}"),
		     2);
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"adapted\","
			    "le=\"+Inf\"}"),
		     3);
	cr_assert_eq(
	    sample(t, "driftcast_realised_error_count{model=\"adapted\"}"), 3);
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"frozen\","
			    "le=\"0.1\"}"),
		     0);
	cr_assert_eq(sample(t,
			    "driftcast_realised_error_bucket{model=\"frozen\","
			    "le=\"1\"}"),
		     3);
	cr_assert_float_eq(
	    sample(t, "driftcast_realised_error_sum{model=\"frozen\"}"), 1.5,
	    1e-6);
	/* the standard process metrics */
	cr_assert_gt(sample(t, "process_resident_memory_bytes"), 0);
	cr_assert_gt(sample(t, "process_open_fds"), 2);
	cr_assert_geq(sample(t, "process_cpu_seconds_total"), 0);
	double start = sample(t, "process_start_time_seconds");
	cr_assert(fabs(start - (double)time(NULL)) < 3600, "%f", start);
	free(t);
	dc_status_free(s);
}
