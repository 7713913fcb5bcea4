/*
 * `driftcast series` and `driftcast plot` as an operator runs them, on a
 * database written through the storage API: the columns and their values
 * in the three formats, the picture file, refusals and exit codes.
 */
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>

#include "tests/storage/storeutil.h"
#include "tests/testutil.h"

#define NS   1000000000LL
#define T0   (1700000000LL * NS) /* epoch ns */
#define STEP (3600 * NS)

static struct run_result res;

static void forecast(struct store *s, const char *series, int64_t ts,
		     float value)
{
	char err[256] = "";
	float vals[2] = {value + 1, value + 2};
	struct store_event ev = {
	    .type = STORE_EV_FORECAST,
	    .series = series,
	    .ts = ts,
	    .forecast = vals,
	    .horizon = 2,
	    .value = value,
	};
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0, "%s", err);
}

/* "m/1": values to T0 + 99 steps, versions 0..3 (the last an operator
 * rollback to 1), realised errors adapted 1.0 and frozen 2.0 (adaptation
 * halves the error: gain 50%); "m/2": one version, nothing else. */
static void make_db(char *dir, size_t dn, char *path, size_t pn)
{
	char err[256] = "";
	su_tmpdb(dir, dn, path, pn);
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "m/1", STORE_EV_INIT, 0, 0, T0, 0), 0);
	cr_assert_eq(su_version(s, "m/2", STORE_EV_INIT, 0, 0, T0, 0), 0);
	for (int i = 0; i < 100; i++) {
		forecast(s, "m/1", T0 + i * STEP, (float)i);
		if (i == 30 || i == 60)
			cr_assert_eq(
			    su_version(s, "m/1", STORE_EV_ADAPT_ACCEPTED,
				       i == 30 ? 0 : 1, i == 30 ? 1 : 2,
				       T0 + i * STEP, 1),
			    0);
		if (i >= 2)
			cr_assert_eq(
			    store_error_put(s, "m/1", T0 + (i - 2) * STEP, 1,
					    1.0f, 2.0f, err, sizeof(err)),
			    0);
	}
	su_commit(s);
	struct store_rollback_target t = {.number = 1};
	struct store_rollback_result rr;
	cr_assert_eq(
	    store_rollback(s, "m/1", &t, "test", &rr, err, sizeof(err)), 0,
	    "%s", err);
	store_free(s);
}

Test(view_commands, series_table_csv_json)
{
	char dir[64], path[128];
	make_db(dir, sizeof(dir), path, sizeof(path));

	char *t[] = {"driftcast", "series", "--db", path, NULL};
	cr_assert_eq(tu_run(&res, t), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, "last data"), "%s", res.out);
	/* the last data time, not the last version's (T0 + 60 steps) */
	cr_assert(strstr(res.out, "m/1 "), "%s", res.out);
	cr_assert(strstr(res.out, "2023-11-19T01:13:20Z"), "%s", res.out);
	cr_assert(strstr(res.out, "+50.0%"), "%s", res.out);
	cr_assert(strstr(res.out, "operator to v3 (=v1)"), "%s", res.out);

	char *c[] = {"driftcast", "series", "--db",   path,
		     "--format",  "csv",    "--last", "10",
		     "--series",  "m/1",    NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(!strncmp(res.out, "series,status,last_data_time,", 29));
	cr_assert(strstr(res.out, "\nm/1,active,2023-11-19T01:13:20Z,"
				  "1700356400000000000,"),
		  "%s", res.out);
	cr_assert(strstr(res.out, ",manual,3,1,10,1,2,50.000\n"), "%s",
		  res.out);

	char *j[] = {"driftcast", "series", "--db", path,
		     "--format",  "json",   NULL};
	cr_assert_eq(tu_run(&res, j), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	json_error_t je;
	json_t *a = json_loads(res.out, 0, &je);
	cr_assert(json_is_array(a), "%s: %s", je.text, res.out);
	cr_assert_eq(json_array_size(a), 2);
	json_t *m1 = json_array_get(a, 0), *m2 = json_array_get(a, 1);
	cr_assert_eq(json_integer_value(json_object_get(m1, "last_data_ts")),
		     T0 + 99 * STEP);
	/* --help promises every *_ts field in json as in csv */
	cr_assert(json_is_integer(json_object_get(m1, "last_forecast_ts")));
	cr_assert_eq(
	    json_integer_value(json_object_get(m1, "last_forecast_ts")),
	    json_integer_value(json_object_get(m1, "last_data_ts")));
	cr_assert_eq(json_integer_value(json_object_get(m1, "current_version")),
		     3);
	cr_assert_eq(json_integer_value(json_object_get(m1, "adaptations")), 2);
	cr_assert_eq(json_integer_value(json_object_get(m1, "rollbacks")), 1);
	cr_assert_eq(json_integer_value(json_object_get(m1, "realised_n")),
		     98 < 100 ? 98 : 100);
	cr_assert_float_eq(json_real_value(json_object_get(m1, "gain_pct")),
			   50.0, 1e-9);
	cr_assert(json_is_null(json_object_get(m2, "adapted_error")));
	cr_assert(json_is_null(json_object_get(m2, "last_rollback")));
	json_decref(a);

	char *bad[] = {"driftcast", "series", "--db", path,
		       "--last",    "0",      NULL};
	cr_assert_eq(tu_run(&res, bad), 0);
	cr_assert_eq(res.status, 2);
	/* a series that is not there: the error, and no empty table */
	char *nope[] = {"driftcast", "series",	 "--db", path, "--series",
			"NOPE",	     "--format", "csv",	 NULL};
	cr_assert_eq(tu_run(&res, nope), 0);
	cr_assert_eq(res.status, 1);
	cr_assert_str_eq(res.out, "");
	cr_assert(strstr(res.err, "no series 'NOPE'"), "%s", res.err);
	char *none[] = {"driftcast", "series", "--db", "/nonexistent/x.db",
			NULL};
	cr_assert_eq(tu_run(&res, none), 0);
	cr_assert_eq(res.status, 1);
	su_rmdir(dir);
}

Test(view_commands, plot_writes_the_file_or_says_why)
{
	char dir[64], path[128], out[192], svg[192];
	struct stat st;
	make_db(dir, sizeof(dir), path, sizeof(path));
	snprintf(out, sizeof(out), "%s/m1.png", dir);
	snprintf(svg, sizeof(svg), "%s/m1.svg", dir);

	char *p[] = {
	    "driftcast", "plot",  "--db", path,	     "--series",
	    "m/1",	 "--out", out,	  "--since", "2023-11-15T00:00",
	    NULL};
	cr_assert_eq(tu_run(&res, p), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(stat(out, &st) == 0 && st.st_size > 1000);
	cr_assert(strstr(res.out, "event markers: 2 accepted, 1 operator "
				  "rollback"),
		  "%s", res.out);
	/* the model is not stored: said, the rest drawn */
	cr_assert(strstr(res.out, "note: no base model"), "%s", res.out);

	char *s[] = {"driftcast", "plot",  "--db", path, "--series",
		     "m/1",	  "--out", svg,	   "-q", "--horizon-step",
		     "2",	  NULL};
	cr_assert_eq(tu_run(&res, s), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert_eq(res.out[0], '\0');
	cr_assert(stat(svg, &st) == 0 && st.st_size > 1000);

	char *ext[] = {"driftcast", "plot",  "--db",  path, "--series",
		       "m/1",	    "--out", "x.jpg", NULL};
	cr_assert_eq(tu_run(&res, ext), 0);
	cr_assert_eq(res.status, 2);
	cr_assert(strstr(res.err, ".png or .svg"), "%s", res.err);

	char *step[] = {"driftcast",	  "plot", "--db",  path,
			"--series",	  "m/1",  "--out", out,
			"--horizon-step", "3",	  NULL};
	cr_assert_eq(tu_run(&res, step), 0);
	cr_assert_eq(res.status, 2, "%s", res.err);
	cr_assert(strstr(res.err, "steps 1..2"), "%s", res.err);

	char *unknown[] = {"driftcast", "plot",	 "--db", path, "--series",
			   "nope",	"--out", out,	 NULL};
	cr_assert_eq(tu_run(&res, unknown), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "nope"), "%s", res.err);
	char *empty[] = {"driftcast", "plot",  "--db", path, "--series",
			 "m/2",	      "--out", out,    NULL};
	cr_assert_eq(tu_run(&res, empty), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "no stored forecasts"), "%s", res.err);
	/* no temporary file left behind by the failures */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c tmp", dir);
	FILE *f = popen(cmd, "r");
	int n = -1;
	cr_assert(f && fscanf(f, "%d", &n) == 1);
	pclose(f);
	cr_assert_eq(n, 0);
	su_rmdir(dir);
}
