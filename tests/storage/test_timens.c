/*
 * Series time in the database is nanoseconds since the epoch (schema 7):
 * a database of schema 6 (seconds) is migrated in place with every time
 * scaled and the views' readable times unchanged, a read-only open of an
 * old file reads its times as ns too, sub-second times are distinct rows,
 * and store_format_time shows the fraction.
 */
#include <errno.h>

#include "tests/storage/storeutil.h"

#define NS   INT64_C(1000000000)
#define T0   INT64_C(1700000000) /* 2023-11-14 22:13:20 */
#define HOUR INT64_C(3600)

/* The rows of every table that holds a series time, written at schema 6 in
 * seconds (as the daemon wrote them then). */
static void fill_seconds(struct store *s)
{
	char err[1024] = "";
	float a[SU_ADAPTER_LEN], f[4] = {1, 2, 3, 4}, vals[3] = {5, 6, 7};
	su_fill(a, SU_ADAPTER_LEN, 1.0f);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, T0, 0.0f), 0);
	struct store_event ad = {
	    .type = STORE_EV_ADAPT_ACCEPTED,
	    .trigger = STORE_TRIGGER_SCHEDULE,
	    .series = "a",
	    .ts = T0 + HOUR,
	    .version_from = 0,
	    .version_to = 1,
	    .loss_before = NAN,
	    .loss_after = NAN,
	    .guard_before = NAN,
	    .guard_after = NAN,
	    .update_norm = NAN,
	    .adapted_error = NAN,
	    .shadow_error = NAN,
	    .reason = "test",
	    .adapter = a,
	    .adapter_len = SU_ADAPTER_LEN,
	    .data_from = T0 - 10 * HOUR,
	    .data_until = T0 + HOUR,
	};
	cr_assert_eq(store_event_put(s, &ad, err, sizeof(err)), 0, "%s", err);
	struct store_event fc = {.type = STORE_EV_FORECAST,
				 .series = "a",
				 .ts = T0 + HOUR,
				 .version_to = 1,
				 .forecast = f,
				 .horizon = 4};
	cr_assert_eq(store_event_put(s, &fc, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(
	    store_error_put(s, "a", T0, 0, 0.5f, 0.6f, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    store_series_put(s, "a", T0 + 2 * HOUR, NULL, err, sizeof(err)), 0,
	    "%s", err);
	struct store_recent r = {.series = "a",
				 .last_ts = T0 + 2 * HOUR,
				 .step = HOUR,
				 .position = 3,
				 .values = vals,
				 .count = 3};
	cr_assert_eq(store_recent_put(s, &r, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
}

static int one_event(void *user, const struct store_event *ev)
{
	int64_t *got = user;
	if (ev->type == STORE_EV_ADAPT_ACCEPTED) {
		got[0] = ev->ts;
		got[1] = ev->data_from;
		got[2] = ev->data_until;
	}
	got[3]++;
	return 0;
}

static int one_recent(void *user, const struct store_recent *r)
{
	int64_t *got = user;
	got[0] = r->last_ts;
	got[1] = r->step;
	return 0;
}

/* The readable times of every view, in one string. */
static void view_times(sqlite3 *db, char *out, size_t n)
{
	su_text(db,
		"SELECT (SELECT group_concat(time, '|') FROM v_history) || "
		"'/' || (SELECT group_concat(time, '|') FROM v_versions) || "
		"'/' || (SELECT group_concat(last_time) FROM v_series) || "
		"'/' || (SELECT group_concat(time, '|') FROM v_lineage) || "
		"'/' || (SELECT group_concat(time, '|') FROM "
		"v_adaptation_effect) || '/' || (SELECT group_concat(day) "
		"FROM v_daily_adaptations)",
		out, n);
}

Test(storage_time, migrates_seconds_to_ns)
{
	char dir[64], path[128], before[1024], after[1024];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v6 = {.target_schema = 6};
	struct store *s = su_open(path, &v6);
	fill_seconds(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	/* a pending operator rollback by time, and a by-number one */
	su_exec(db, "INSERT INTO control (created_at, kind, series, by_time, "
		    "target, reason) VALUES (0, 'rollback', 'a', 1, "
		    "1700003600, 'x'), (0, 'rollback', 'a', 0, 1, 'y')");
	view_times(db, before, sizeof(before));
	cr_assert(strstr(before, "2023-11-14 23:13:20"), "%s", before);
	sqlite3_close(db);

	/* read-only: not migrated, but its times are read as ns */
	struct store_options ro = {.read_only = true};
	s = su_open(path, &ro);
	cr_assert_eq(store_schema_version(s), 6);
	int64_t got[4] = {0};
	char err[1024] = "";
	cr_assert_eq(store_history(s, "a", (T0 + 1) * NS, one_event, got, err,
				   sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got[3], 1); /* only the adaptation is at or after */
	cr_assert_eq(got[0], (T0 + HOUR) * NS);
	cr_assert_eq(got[1], (T0 - 10 * HOUR) * NS);
	cr_assert_eq(got[2], (T0 + HOUR) * NS);
	store_free(s);

	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	memset(got, 0, sizeof(got));
	cr_assert_eq(store_history(s, "a", (T0 + 1) * NS, one_event, got, err,
				   sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got[3], 1);
	cr_assert_eq(got[0], (T0 + HOUR) * NS);
	int64_t rec[2] = {0};
	cr_assert_eq(
	    store_recent_take(s, one_recent, rec, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(rec[0], (T0 + 2 * HOUR) * NS);
	cr_assert_eq(rec[1], HOUR * NS);
	store_free(s);

	db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	cr_assert_eq(su_int(db, "SELECT min(ts) FROM versions"), T0 * NS);
	cr_assert_eq(su_int(db, "SELECT max(ts) FROM audit"), (T0 + HOUR) * NS);
	cr_assert_eq(su_int(db, "SELECT data_from FROM audit WHERE event = "
				"'adapt_accepted'"),
		     (T0 - 10 * HOUR) * NS);
	cr_assert_eq(su_int(db, "SELECT origin_ts FROM forecasts"),
		     (T0 + HOUR) * NS);
	cr_assert_eq(su_int(db, "SELECT origin_ts FROM errors"), T0 * NS);
	cr_assert_eq(su_int(db, "SELECT last_ts FROM series"),
		     (T0 + 2 * HOUR) * NS);
	cr_assert_eq(su_int(db, "SELECT target FROM control WHERE by_time"),
		     (T0 + HOUR) * NS);
	cr_assert_eq(su_int(db, "SELECT target FROM control WHERE NOT by_time"),
		     1);
	view_times(db, after, sizeof(after));
	cr_assert_str_eq(after, before);
	/* the append-only and immutability triggers are back */
	cr_assert_neq(
	    sqlite3_exec(db, "UPDATE audit SET ts = 0", NULL, NULL, NULL),
	    SQLITE_OK);
	cr_assert_neq(
	    sqlite3_exec(db, "UPDATE versions SET ts = 0", NULL, NULL, NULL),
	    SQLITE_OK);
	cr_assert_neq(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL),
		      SQLITE_OK);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Two forecasts a tenth of a second apart are two rows (they were one
 * row, the second overwriting the first, when times were seconds), and
 * the views show the fraction. */
Test(storage_time, sub_second_rows)
{
	char dir[64], path[128], err[1024] = "", t[64];
	float f[2] = {1, 2};
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "hz", STORE_EV_INIT, 0, 0, T0 * NS, 0.0f),
		     0);
	for (int k = 1; k <= 2; k++) {
		struct store_event fc = {.type = STORE_EV_FORECAST,
					 .series = "hz",
					 .ts = T0 * NS + k * NS / 10,
					 .forecast = f,
					 .horizon = 2};
		cr_assert_eq(store_event_put(s, &fc, err, sizeof(err)), 0, "%s",
			     err);
	}
	cr_assert_eq(su_version(s, "hz", STORE_EV_ADAPT_ACCEPTED, 0, 1,
				T0 * NS + NS / 4, 1.0f),
		     0);
	su_commit(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(DISTINCT origin_ts) FROM "
				"forecasts"),
		     2);
	su_text(db,
		"SELECT time FROM v_history WHERE event = "
		"'adapt_accepted'",
		t, sizeof(t));
	cr_assert_str_eq(t, "2023-11-14 22:13:20.250");
	su_text(db, "SELECT time FROM v_history WHERE event = 'init'", t,
		sizeof(t));
	cr_assert_str_eq(t, "2023-11-14 22:13:20");
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage_time, format_time_shows_the_fraction)
{
	char b[64];
	store_format_time(T0 * NS, b, sizeof(b));
	cr_assert_str_eq(b, "2023-11-14T22:13:20Z");
	store_format_time(T0 * NS + NS / 10, b, sizeof(b));
	cr_assert_str_eq(b, "2023-11-14T22:13:20.1Z");
	store_format_time(T0 * NS + 1000, b, sizeof(b));
	cr_assert_str_eq(b, "2023-11-14T22:13:20.000001Z");
	store_format_time(T0 * NS + 1, b, sizeof(b));
	cr_assert_str_eq(b, "2023-11-14T22:13:20.000000001Z");
	store_format_time(-1, b, sizeof(b));
	cr_assert_str_eq(b, "1969-12-31T23:59:59.999999999Z");
	store_format_time(0, b, sizeof(b));
	cr_assert_str_eq(b, "1970-01-01T00:00:00Z");
}
