/*
 * storage/query.h: the reads of `driftcast plot`, `driftcast series` and
 * the status page, and migration 7 (forecasts.value, v_series.last_ts as
 * the last data time).
 */
#include <errno.h>

#include "storeutil.h"

#define T0   1700000000LL
#define STEP 3600

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

/* A file written at schema 6 has forecasts without values: after the
 * migration they read as NAN, new ones carry theirs. */
Test(query, migration_7_keeps_old_forecasts)
{
	char dir[64], path[PATH_MAX], err[256] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options o6 = {.target_schema = 6};
	struct store *s = su_open(path, &o6);
	cr_assert_eq(store_schema_version(s), 6);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, T0, 0), 0);
	forecast(s, "a", T0, 5.0f, 0);
	su_commit(s);
	store_free(s);
	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	forecast(s, "a", T0 + STEP, 6.0f, 0);
	su_commit(s);
	struct got g = {0};
	cr_assert_eq(
	    store_forecasts(s, "a", T0, T0, got_forecast, &g, err, sizeof(err)),
	    0);
	cr_assert_eq(g.n, 1);
	cr_assert(isnan(g.value));
	cr_assert_eq(store_forecasts(s, "a", T0 + STEP, T0 + STEP, got_forecast,
				     &g, err, sizeof(err)),
		     0);
	cr_assert_float_eq(g.value, 6.0f, 1e-6);
	store_free(s);
	su_rmdir(dir);
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
