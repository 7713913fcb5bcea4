/*
 * storage/query.h: the reads of `driftcast plot`, `driftcast series` and
 * the status page, and migration 8 (forecasts.value, v_series.last_ts as
 * the last data time), from schema 6 (seconds) and from schema 7 (ns).
 */
#include <errno.h>

#include "storeutil.h"

#define NS   1000000000LL
#define T0S  1700000000LL /* epoch seconds */
#define T0   (T0S * NS)	  /* series time, epoch ns */
#define STEP (3600 * NS)

static void forecast(struct store *s, const char *series, int64_t ts,
		     float value, uint64_t version)
{
	char err[256] = "";
	float vals[3] = {value + 1, value + 2, value + 3};
	struct store_event ev = {
	    .type = STORE_EV_FORECAST,
	    .series = series,
	    .ts = ts,
	    .version_to = version,
	    .forecast = vals,
	    .horizon = 3,
	    .value = value,
	};
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0, "%s", err);
}

/* A series with versions 0 (T0) and 1 (T0 + 20 steps) and values and
 * forecasts up to T0 + 50 steps. */
static void fill(struct store *s, const char *series)
{
	cr_assert_eq(su_version(s, series, STORE_EV_INIT, 0, 0, T0, 0), 0);
	for (int i = 0; i <= 50; i++) {
		if (i == 20)
			cr_assert_eq(su_version(s, series,
						STORE_EV_ADAPT_ACCEPTED, 0, 1,
						T0 + i * STEP, 1),
				     0);
		forecast(s, series, T0 + i * STEP, (float)i, i < 20 ? 0 : 1);
	}
	su_commit(s);
}

/* Regression: v_series.last_ts was series.last_ts, which only a new
 * version moves (T0 + 20 steps here), not the last data time. */
Test(query, v_series_last_time_is_the_last_data_time)
{
	char dir[64], path[PATH_MAX], text[64];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill(s, "a");
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT last_ts FROM v_series WHERE series "
				"= 'a'"),
		     T0 + 50 * STEP);
	su_text(db, "SELECT last_time FROM v_series WHERE series = 'a'", text,
		sizeof(text));
	cr_assert_str_eq(text, "2023-11-17 00:13:20");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts WHERE value "
				"IS NOT NULL"),
		     51);
	sqlite3_close(db);
	su_rmdir(dir);
}

struct got {
	size_t n;
	int64_t first, last;
	float value, v2;
};

static int got_forecast(void *user, const struct store_forecast *f)
{
	struct got *g = user;
	if (g->n++ == 0)
		g->first = f->origin_ts;
	g->last = f->origin_ts;
	g->value = f->value;
	g->v2 = f->horizon == 3 ? f->vals[1] : NAN;
	return 0;
}

Test(query, forecasts_in_a_range_with_values)
{
	char dir[64], path[PATH_MAX], err[256] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill(s, "a");
	struct got g = {0};
	cr_assert_eq(store_forecasts(s, "a", T0 + 10 * STEP, T0 + 30 * STEP,
				     got_forecast, &g, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(g.n, 21);
	cr_assert_eq(g.first, T0 + 10 * STEP);
	cr_assert_eq(g.last, T0 + 30 * STEP);
	cr_assert_float_eq(g.value, 30.0f, 1e-6);
	cr_assert_float_eq(g.v2, 32.0f, 1e-6);
	cr_assert_eq(store_forecasts(s, "nope", 0, 1, got_forecast, &g, err,
				     sizeof(err)),
		     -ENOENT);
	store_free(s);
	su_rmdir(dir);
}

/* A file written at schema `from` (6: times in seconds, 7: ns) has
 * forecasts without values: read-only it reads as it is (times as ns, no
 * values); migrated to 8 its old forecasts read as NAN, new ones carry
 * theirs, and v_series gives the last data time in ns. */
static void migrates_to_8(int from)
{
	char dir[64], path[PATH_MAX], err[256] = "", text[64];
	/* the file's own unit: schema 6 stored seconds */
	const int64_t t0 = from < 7 ? T0S : T0, step = from < 7 ? 3600 : STEP;
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options old = {.target_schema = from};
	struct store *s = su_open(path, &old);
	cr_assert_eq(store_schema_version(s), from);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, t0, 0), 0);
	forecast(s, "a", t0, 5.0f, 0);
	forecast(s, "a", t0 + step, 5.5f, 0);
	su_commit(s);
	store_free(s);

	struct store_options ro = {.read_only = true};
	s = su_open(path, &ro);
	cr_assert_eq(store_schema_version(s), from);
	struct got g = {0};
	cr_assert_eq(store_forecasts(s, "a", T0 + 1, T0 + STEP, got_forecast,
				     &g, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.first, T0 + STEP);
	cr_assert(isnan(g.value));
	store_free(s);

	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	forecast(s, "a", T0 + 2 * STEP, 6.0f, 0);
	su_commit(s);
	memset(&g, 0, sizeof(g));
	cr_assert_eq(
	    store_forecasts(s, "a", T0, T0, got_forecast, &g, err, sizeof(err)),
	    0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.first, T0);
	cr_assert(isnan(g.value));
	memset(&g, 0, sizeof(g));
	cr_assert_eq(store_forecasts(s, "a", T0 + 2 * STEP, T0 + 2 * STEP,
				     got_forecast, &g, err, sizeof(err)),
		     0);
	cr_assert_eq(g.n, 1);
	cr_assert_float_eq(g.value, 6.0f, 1e-6);
	store_free(s);

	sqlite3 *db = su_raw(path);
	/* and on through the later migrations (9: several hosts) */
	cr_assert_eq(su_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	cr_assert_eq(su_int(db, "SELECT last_ts FROM v_series WHERE series "
				"= 'a'"),
		     T0 + 2 * STEP);
	su_text(db, "SELECT last_time FROM v_series WHERE series = 'a'", text,
		sizeof(text));
	cr_assert_str_eq(text, "2023-11-15 00:13:20");
	cr_assert_eq(su_int(db, "SELECT min(origin_ts) FROM forecasts"), T0);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(query, migration_8_from_schema_6)
{
	migrates_to_8(6);
}

Test(query, migration_8_from_schema_7)
{
	migrates_to_8(7);
}

struct infos {
	size_t n;
	struct store_series_info i[4];
	char keys[4][16];
};

static int got_info(void *user, const struct store_series_info *i)
{
	struct infos *g = user;
	cr_assert(g->n < 4);
	g->i[g->n] = *i;
	snprintf(g->keys[g->n], 16, "%s", i->series);
	g->n++;
	return 0;
}

Test(query, series_infos)
{
	char dir[64], path[PATH_MAX], err[256] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill(s, "b");
	fill(s, "a");
	/* realised errors of "a": origins 0..9, adapted i, frozen 10 */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(store_error_put(s, "a", T0 + i * STEP, 0, (float)i,
					     10.0f, err, sizeof(err)),
			     0);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ROLLBACK, 1, 2, T0 + 40 * STEP, 0), 0);
	su_commit(s);
	struct infos g = {0};
	cr_assert_eq(
	    store_series_infos(s, NULL, 4, got_info, &g, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(g.n, 2);
	cr_assert_str_eq(g.keys[0], "a");
	cr_assert_str_eq(g.keys[1], "b");
	const struct store_series_info *a = &g.i[0];
	cr_assert(a->has_data && a->last_data_ts == T0 + 50 * STEP);
	cr_assert(a->has_forecast && a->last_forecast_ts == T0 + 50 * STEP);
	cr_assert(a->has_version && a->current_version == 2);
	cr_assert_eq(a->versions, 3);
	cr_assert_eq(a->adaptations, 1);
	cr_assert_eq(a->rollbacks, 1);
	cr_assert(a->has_rollback && a->last_rollback_ts == T0 + 40 * STEP);
	cr_assert_eq(a->last_rollback_type, STORE_EV_ROLLBACK);
	/* the last 4 matured: adapted 6..9, mean 7.5; frozen 10 */
	cr_assert_eq(a->n_errors, 4);
	cr_assert_float_eq(a->adapted_error, 7.5, 1e-9);
	cr_assert_float_eq(a->shadow_error, 10.0, 1e-9);
	const struct store_series_info *b = &g.i[1];
	cr_assert(!b->has_rollback);
	cr_assert_eq(b->n_errors, 0);
	cr_assert(isnan(b->adapted_error));
	/* one series; an unknown one */
	g.n = 0;
	cr_assert_eq(
	    store_series_infos(s, "b", 4, got_info, &g, err, sizeof(err)), 0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(
	    store_series_infos(s, "zz", 4, got_info, &g, err, sizeof(err)),
	    -ENOENT);
	store_free(s);
	su_rmdir(dir);
}

static int count_event(void *user, const struct store_event *ev)
{
	int64_t *last = user;
	cr_assert(ev->ts <= last[1] || last[0] == 0, "newest first");
	last[0]++;
	last[1] = ev->ts;
	return 0;
}

Test(query, history_last)
{
	char dir[64], path[PATH_MAX], err[256] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill(s, "a");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED,
					(uint64_t)i + 1, (uint64_t)i + 2,
					T0 + (60 + i) * STEP, 1),
			     0);
	su_commit(s);
	int64_t c[2] = {0, 0};
	cr_assert_eq(store_history_last(s, STORE_EV_ADAPT_ACCEPTED,
					STORE_EV_ADAPT_ACCEPTED, 3, count_event,
					c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(c[0], 3);
	cr_assert_eq(c[1], T0 + 62 * STEP);
	store_free(s);
	su_rmdir(dir);
}

static int got_offset(void *user, const char *topic, int32_t partition,
		      int64_t next)
{
	char *out = user;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s/%d=%lld ", topic, (int)partition,
		 (long long)next);
	return 0;
}

Test(query, offsets_by_topic_and_partition)
{
	char dir[64], path[PATH_MAX], err[256] = "", out[256] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(store_offset_put(s, "t", 1, 7, err, sizeof(err)), 0);
	cr_assert_eq(store_offset_put(s, "t", 0, 5, err, sizeof(err)), 0);
	cr_assert_eq(store_offset_put(s, "a", 3, 9, err, sizeof(err)), 0);
	su_commit(s);
	cr_assert_eq(store_offsets(s, got_offset, out, err, sizeof(err)), 0);
	cr_assert_str_eq(out, "a/3=9 t/0=5 t/1=7 ");
	store_free(s);
	su_rmdir(dir);
}
