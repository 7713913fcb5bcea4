/*
 * Series time in the daemon loop's pieces: which future-dated values are
 * refused (run_future_refused, kafka.future_tolerance_s and
 * kafka.max_ahead_steps), and the forecast message's origin and step
 * (outbox_add_forecast) at hourly, 10 Hz and 1 kHz steps.  The whole path
 * is tests/integration/timestamps.sh.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/run_private.h"
#include "ttt/ttt.h"

#define NS  INT64_C(1000000000)
#define NOW (INT64_C(1764914400) * NS) /* 2025-12-05T06:00:00Z */
#define TOL (60 * NS)

Test(run_time, future_refused_only_ahead_of_both_clocks)
{
	int64_t hour = 3600 * NS, last = NOW - hour;
	/* the past is never refused: history, replays, catching up */
	cr_assert_not(
	    run_future_refused(NOW - 1000 * hour, NOW, TOL, last, hour, 100));
	cr_assert_not(
	    run_future_refused(NOW - 1000 * hour, NOW, TOL, 0, 0, 100));
	/* a replay far behind the series' clock, or a jump far ahead of it
	 * that is still before now */
	cr_assert_not(run_future_refused(NOW - 10 * NS, NOW, TOL,
					 NOW - 5000 * hour, hour, 100));
	/* within the tolerance of now: accepted however far from the series */
	cr_assert_not(run_future_refused(NOW + TOL, NOW, TOL, NOW - 5000 * hour,
					 hour, 1));
	/* ahead of now, but within max_ahead steps of the series' clock (a
	 * sender whose clock runs ahead keeps its series going) */
	cr_assert_not(run_future_refused(NOW + 2 * hour, NOW, TOL, NOW + hour,
					 hour, 100));
	cr_assert_not(
	    run_future_refused(last + 100 * hour, NOW, TOL, last, hour, 100));
	/* ahead of both: refused */
	cr_assert(
	    run_future_refused(last + 101 * hour, NOW, TOL, last, hour, 100));
	int64_t y2199 = INT64_C(7226582400) * NS;
	cr_assert(run_future_refused(y2199, NOW, TOL, last, hour, 100));
	/* a series without a clock yet (no step): now decides alone */
	cr_assert(run_future_refused(NOW + TOL + 1, NOW, TOL, 0, 0, 100));
	cr_assert_not(run_future_refused(NOW + TOL, NOW, TOL, 0, 0, 100));
	/* 10 Hz: 100 steps are 10 s */
	int64_t ds = NS / 10;
	cr_assert_not(run_future_refused(NOW + 70 * NS, NOW, TOL,
					 NOW + 70 * NS - 100 * ds, ds, 100));
	cr_assert(run_future_refused(NOW + 70 * NS, NOW, TOL,
				     NOW + 70 * NS - 101 * ds, ds, 100));
}

static char raw[512]; /* the last message's text */

/* The message of one forecast event, parsed (its text in raw). */
static json_t *message(int64_t ts, int64_t step)
{
	float f[3] = {1.5f, 2.0f, -3.25f};
	struct ttt_event ev = {.type = TTT_EV_FORECAST,
			       .series = "s\"1",
			       .ts = ts,
			       .step = step,
			       .forecast = f,
			       .horizon = 3,
			       .version_to = 7};
	struct outbox o = {0};
	size_t n;
	char *fields =
	    outbox_forecast_fields("m.dcm", "edge-\"3", "/var/lib/d c.db", &n);
	cr_assert_not_null(fields);
	cr_assert_eq(outbox_add_forecast(&o, &ev, fields, n), 0);
	free(fields);
	cr_assert_eq(o.nrec, 1);
	const size_t *rec = o.rec;
	cr_assert_eq(rec[1], strlen("s\"1"));
	json_error_t err;
	cr_assert_lt(rec[3], sizeof(raw));
	memcpy(raw, o.buf + rec[2], rec[3]);
	raw[rec[3]] = '\0';
	json_t *j = json_loadb(raw, rec[3], 0, &err);
	cr_assert_not_null(j, "%.*s: %s", (int)rec[3], o.buf + rec[2],
			   err.text);
	outbox_free(&o);
	return j;
}

/* The number of "key": as the message writes it (jansson would re-print
 * it from a double). */
static const char *text_of(const char *key, char *buf, size_t n)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(raw, pat);
	cr_assert_not_null(p, "%s", raw);
	p += strlen(pat);
	snprintf(buf, n, "%.*s", (int)strcspn(p, ",}"), p);
	return buf;
}

Test(run_time, forecast_message_says_when_steps_fall)
{
	char b[64];
	json_t *j = message(INT64_C(1700000000) * NS, 3600 * NS);
	cr_assert_str_eq(json_string_value(json_object_get(j, "series")),
			 "s\"1");
	cr_assert_eq(json_integer_value(json_object_get(j, "origin")),
		     1700000000);
	cr_assert_eq(json_integer_value(json_object_get(j, "step_seconds")),
		     3600);
	cr_assert_eq(json_integer_value(json_object_get(j, "adapter_version")),
		     7);
	/* which model, and whose version 7: the host and database */
	cr_assert_str_eq(json_string_value(json_object_get(j, "model")),
			 "m.dcm");
	cr_assert_str_eq(json_string_value(json_object_get(j, "host")),
			 "edge-\"3");
	cr_assert_str_eq(json_string_value(json_object_get(j, "db")),
			 "/var/lib/d c.db");
	cr_assert_eq(json_array_size(json_object_get(j, "horizon")), 3);
	json_decref(j);

	/* 10 Hz and 1 kHz: the fraction is there, exactly as decimal text */
	j = message(INT64_C(1700000000) * NS + 9 * NS / 10, NS / 10);
	cr_assert_str_eq(text_of("origin", b, sizeof(b)), "1700000000.9");
	cr_assert_str_eq(text_of("step_seconds", b, sizeof(b)), "0.1");
	json_decref(j);
	j = message(INT64_C(1700000000) * NS + 299 * NS / 1000, NS / 1000);
	cr_assert_str_eq(text_of("origin", b, sizeof(b)), "1700000000.299");
	cr_assert_str_eq(text_of("step_seconds", b, sizeof(b)), "0.001");
	json_decref(j);
	/* a step not known yet is null */
	j = message(INT64_C(1700000000) * NS, 0);
	cr_assert(json_is_null(json_object_get(j, "step_seconds")));
	json_decref(j);
}
