/*
 * Storage benchmarks and the synthetic replay behind docs/SQL.md.
 *
 *   bench-storage write   DB [SERIES [EVENTS [FLOATS [BATCH]]]]
 *       batched version + audit writes (one ADAPT_ACCEPTED event with an
 *       adapter = one version row + one audit row), batches of BATCH
 *       (1000) events with their Kafka offset; prints rows/s (goal >=
 *       50k/s) by wall clock and per CPU second
 *   bench-storage init    DB [SERIES [BATCH]]
 *       first sight of SERIES new series as the daemon records it (an
 *       INIT event: series row + version 0 with the empty identity
 *       adapter + audit row), in batches of BATCH (20000) with their
 *       Kafka offset; prints microseconds per new series by wall clock and
 *       by thread CPU time
 *   bench-storage forecasts DB [SERIES [ROWS [BATCH]]]
 *       the daemon's row per forecast (FORECAST event, H = 96 float32
 *       values, series round robin) in batches of BATCH (5000, the
 *       default storage.batch_rows) into DB and, in the same run, into
 *       DB.indexed, the same schema plus the created_at index schema 5
 *       had: microseconds per row by thread CPU time for each, and their
 *       ratio
 *   bench-storage restore DB [SERIES [FLOATS]]
 *       fills DB with SERIES series (one version each) if it is empty,
 *       then times store_open + store_restore of every adapter
 *       (goal 1M series <= 10 s)
 *   bench-storage history DB [ROWS [SERIES]]
 *       fills DB with ROWS audit rows over SERIES series if it is empty,
 *       then times store_history of one series (goal <= 10 ms at 10M rows)
 *   bench-storage demo    DB
 *       a realistic synthetic replay through the storage API (7 series of
 *       an ETTh1-like hourly feed over 60 days: forecasts, realised errors,
 *       scheduled and drift-triggered adaptations, guard rejections, shadow
 *       rollbacks, one reset and one operator rollback); used by
 *       storage/sql-doc.sh to regenerate docs/SQL.md
 *
 * Every number printed is measured in this run.
 */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "storage/storage.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* user + system CPU seconds of this process */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int64_t mono_ms(void)
{
	return (int64_t)(now_s() * 1000.0);
}

/* xorshift64*: deterministic across runs */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ull) >> 11) *
	       (1.0 / 9007199254740992.0);
}

static int die(const char *what, const char *err)
{
	fprintf(stderr, "bench-storage: %s: %s\n", what, err);
	return 1;
}

static struct store *open_or_die(const char *path, int batch_rows)
{
	char err[1024];
	struct store *s = NULL;
	struct store_options o = {.batch_rows = batch_rows};
	if (store_open(path, &o, &s, err, sizeof(err)) < 0) {
		die("open", err);
		return NULL;
	}
	return s;
}

/* ---- write ------------------------------------------------------------- */

static int bench_write(const char *path, long nseries, long nevents,
		       long nfloats, long batch)
{
	char err[1024], key[32];
	struct store *s = open_or_die(path, 1 << 30);
	if (!s)
		return 1;
	float *a = calloc((size_t)nfloats, sizeof(float));
	uint64_t *ver = calloc((size_t)nseries, sizeof(uint64_t));
	if (!a || !ver)
		return die("alloc", "out of memory");
	for (long i = 0; i < nfloats; i++)
		a[i] = (float)urand();
	/* initial versions (not timed) */
	for (long i = 0; i < nseries; i++) {
		snprintf(key, sizeof(key), "meter-%06ld", i);
		struct store_event ev = {.type = STORE_EV_INIT,
					 .series = key,
					 .adapter = a,
					 .adapter_len = (size_t)nfloats};
		if (store_event_put(s, &ev, err, sizeof(err)) < 0)
			return die("init", err);
	}
	if (store_batch_commit(s, err, sizeof(err)) < 0)
		return die("commit", err);

	double t0 = now_s(), c0 = cpu_s();
	for (long e = 0; e < nevents; e++) {
		long i = e % nseries;
		snprintf(key, sizeof(key), "meter-%06ld", i);
		a[0] = (float)e;
		struct store_event ev = {
		    .type = STORE_EV_ADAPT_ACCEPTED,
		    .trigger = STORE_TRIGGER_SCHEDULE,
		    .series = key,
		    .ts = 1700000000 + e,
		    .version_from = ver[i],
		    .version_to = ver[i] + 1,
		    .steps = 5,
		    .loss_before = 0.8f,
		    .loss_after = 0.6f,
		    .guard_before = 0.5f,
		    .guard_after = 0.45f,
		    .update_norm = 0.01f,
		    .adapted_error = NAN,
		    .shadow_error = NAN,
		    .reason = "scheduled",
		    .adapter = a,
		    .adapter_len = (size_t)nfloats,
		};
		if (store_event_put(s, &ev, err, sizeof(err)) < 0)
			return die("event", err);
		ver[i]++;
		if ((e + 1) % batch == 0 || e + 1 == nevents) {
			if (store_offset_put(s, "measurements", 0, e + 1, err,
					     sizeof(err)) < 0 ||
			    store_batch_commit(s, err, sizeof(err)) < 0)
				return die("commit", err);
		}
	}
	double dt = now_s() - t0, dc = cpu_s() - c0;
	printf("write: %ld events (1 version of %ld floats + 1 audit row "
	       "each) over %ld series, batches of %ld, synchronous=FULL\n",
	       nevents, nfloats, nseries, batch);
	printf("write: %.2f s wall, %.0f events/s, %.0f rows/s (versions + "
	       "audit rows; goal >= 50000)\n",
	       dt, (double)nevents / dt, 2.0 * (double)nevents / dt);
	printf("write: %.2f s CPU (user+sys), %.0f rows/s per CPU second; "
	       "the rest is fsync and waiting for a shared core\n",
	       dc, 2.0 * (double)nevents / dc);
	free(a);
	free(ver);
	store_free(s);
	return 0;
}

/* ---- init ---------------------------------------------------------------- */

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A new series as daemon/run.c's record_init writes it. */
static int put_new_series(struct store *s, const char *key, char *err,
			  size_t err_size)
{
	static const float identity[1];
	struct store_event ev = {
	    .type = STORE_EV_INIT,
	    .series = key,
	    .ts = 1700000000,
	    .reason = "initial adapter: the identity (forecasts equal "
		      "the base model's); stored empty",
	    .adapter = identity,
	    .adapter_len = 0,
	};
	return store_event_put(s, &ev, err, err_size);
}

static int bench_init(const char *path, long nseries, long batch)
{
	char err[1024], key[32];
	struct store *s = open_or_die(path, 1 << 30);
	if (!s)
		return 1;
	double t0 = now_s(), c0 = thread_cpu_s();
	for (long i = 0; i < nseries; i++) {
		snprintf(key, sizeof(key), "m%ld", i);
		if (put_new_series(s, key, err, sizeof(err)) < 0)
			return die("init", err);
		if ((i + 1) % batch == 0 || i + 1 == nseries) {
			if (store_offset_put(s, "measurements", 0, i + 1, err,
					     sizeof(err)) < 0 ||
			    store_batch_commit(s, err, sizeof(err)) < 0)
				return die("commit", err);
		}
	}
	double dt = now_s() - t0, dc = thread_cpu_s() - c0;
	printf("init: %ld new series (series row + version 0 + audit row "
	       "each), batches of %ld, synchronous=FULL\n",
	       nseries, batch);
	printf("init: %.2f s wall = %.2f us per new series; %.2f s thread CPU "
	       "= %.2f us per new series\n",
	       dt, dt * 1e6 / (double)nseries, dc, dc * 1e6 / (double)nseries);
	store_free(s);
	return 0;
}

/* ---- forecasts ------------------------------------------------------------
 */

/* *ret_us: CPU microseconds per forecast row into a fresh database at
 * path.  0, or 1 after saying why. */
static int forecast_rows(const char *path, bool indexed, long nseries,
			 long nrows, long batch, double *ret_us)
{
	char err[1024], key[32];
	static float
	    vals[96 + 1024]; /* rows' values, not computed in the timing */
	for (int k = 0; k < 96 + 1024; k++)
		vals[k] = 10.0f + (float)sin(0.1 * (double)k);
	unlink(path);
	struct store *s = open_or_die(path, 1 << 30);
	if (!s)
		return 1;
	for (long i = 0; i < nseries; i++) {
		snprintf(key, sizeof(key), "m%ld", i);
		if (put_new_series(s, key, err, sizeof(err)) < 0)
			return die("init", err);
	}
	if (store_batch_commit(s, err, sizeof(err)) < 0)
		return die("commit", err);
	if (indexed) {
		sqlite3 *db = NULL;
		int rc = sqlite3_open(path, &db);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db,
					  "CREATE INDEX forecasts_created ON "
					  "forecasts (created_at)",
					  NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return die("index", sqlite3_errmsg(db));
		sqlite3_close(db);
	}
	double c0 = thread_cpu_s();
	for (long r = 0; r < nrows; r++) {
		snprintf(key, sizeof(key), "m%ld", r % nseries);
		struct store_event ev = {
		    .type = STORE_EV_FORECAST,
		    .series = key,
		    .ts = 1700000000 + 3600 * (r / nseries + 1),
		    .forecast = vals + r % 1024,
		    .horizon = 96,
		};
		if (store_event_put(s, &ev, err, sizeof(err)) < 0)
			return die("forecast", err);
		if (((r + 1) % batch == 0 || r + 1 == nrows) &&
		    (store_offset_put(s, "measurements", 0, r + 1, err,
				      sizeof(err)) < 0 ||
		     store_batch_commit(s, err, sizeof(err)) < 0))
			return die("commit", err);
	}
	*ret_us = (thread_cpu_s() - c0) * 1e6 / (double)nrows;
	store_free(s);
	return 0;
}

static int bench_forecasts(const char *path, long nseries, long nrows,
			   long batch)
{
	char indexed[4096];
	snprintf(indexed, sizeof(indexed), "%s.indexed", path);
	/* alternating, twice each: the second pair is the one reported */
	double us = 0, us_ix = 0;
	for (int round = 0; round < 2; round++) {
		if (forecast_rows(path, false, nseries, nrows, batch, &us) ||
		    forecast_rows(indexed, true, nseries, nrows, batch, &us_ix))
			return 1;
	}
	printf("forecasts: %ld rows of 96 values over %ld series, batches of "
	       "%ld, synchronous=FULL, thread CPU per row:\n",
	       nrows, nseries, batch);
	printf("forecasts:   schema %d: %.2f us\n", STORE_SCHEMA_VERSION, us);
	printf("forecasts:   with the created_at index of schema 5: %.2f us "
	       "(%.2fx)\n",
	       us_ix, us_ix / us);
	return 0;
}

/* ---- restore ------------------------------------------------------------- */

struct rsum {
	size_t n;
	double sum;
};

static int restore_cb(void *user, const struct store_restored *r)
{
	struct rsum *x = user;
	x->n++;
	if (r->adapter)
		x->sum += (double)r->adapter[r->adapter_len - 1];
	return 0;
}

static int bench_restore(const char *path, long nseries, long nfloats)
{
	char err[1024], key[32];
	struct store *s = open_or_die(path, 1 << 30);
	if (!s)
		return 1;
	struct rsum x = {0};
	if (store_restore(s, NULL, restore_cb, &x, NULL, err, sizeof(err)) < 0)
		return die("restore", err);
	if (x.n == 0) {
		float *a = calloc((size_t)nfloats, sizeof(float));
		if (!a)
			return die("alloc", "out of memory");
		double t0 = now_s();
		for (long i = 0; i < nseries; i++) {
			snprintf(key, sizeof(key), "meter-%07ld", i);
			a[0] = (float)i;
			a[nfloats - 1] = 1.0f;
			struct store_event ev = {.type = STORE_EV_INIT,
						 .series = key,
						 .adapter = a,
						 .adapter_len =
						     (size_t)nfloats};
			if (store_event_put(s, &ev, err, sizeof(err)) < 0)
				return die("fill", err);
			if ((i + 1) % 10000 == 0 &&
			    store_batch_commit(s, err, sizeof(err)) < 0)
				return die("commit", err);
		}
		if (store_batch_commit(s, err, sizeof(err)) < 0)
			return die("commit", err);
		printf("restore: filled %ld series x %ld floats in %.1f s\n",
		       nseries, nfloats, now_s() - t0);
		free(a);
	}
	store_free(s);

	double t0 = now_s();
	s = open_or_die(path, 0);
	if (!s)
		return 1;
	double t1 = now_s();
	memset(&x, 0, sizeof(x));
	size_t bad = 0;
	if (store_restore(s, NULL, restore_cb, &x, &bad, err, sizeof(err)) < 0)
		return die("restore", err);
	double t2 = now_s();
	printf("restore: open %.3f s + restore %.3f s = %.3f s for %zu "
	       "series (%zu bad checksums; checksum %.0f; goal <= 10 s at "
	       "1M)\n",
	       t1 - t0, t2 - t1, t2 - t0, x.n, bad, x.sum);
	store_free(s);
	return 0;
}

/* ---- history ---------------------------------------------------------------
 */

static int count_cb(void *user, const struct store_event *ev)
{
	(void)ev;
	(*(size_t *)user)++;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int bench_history(const char *path, long nrows, long nseries)
{
	char err[1024], key[32];
	struct store *s = open_or_die(path, 1 << 30);
	if (!s)
		return 1;
	size_t n = 0;
	snprintf(key, sizeof(key), "meter-%06ld", 0L);
	if (store_history(s, key, INT64_MIN, count_cb, &n, err, sizeof(err)) <
	    0)
		return die("history", err);
	if (n == 0) {
		double t0 = now_s();
		for (long e = 0; e < nrows; e++) {
			long i = e % nseries;
			snprintf(key, sizeof(key), "meter-%06ld", i);
			struct store_event ev = {
			    .type = (e / nseries) % 3 ? STORE_EV_ADAPT_REJECTED
						      : STORE_EV_DRIFT,
			    .trigger = STORE_TRIGGER_SCHEDULE,
			    .series = key,
			    .ts = 1700000000 + e / nseries * 3600,
			    .version_from = 0,
			    .version_to = 0,
			    .steps = 5,
			    .loss_before = 0.8f,
			    .loss_after = 0.7f,
			    .guard_before = 0.5f,
			    .guard_after = 0.6f,
			    .update_norm = 0.02f,
			    .adapted_error = NAN,
			    .shadow_error = NAN,
			    .reason = "guard: worse on held-out windows",
			};
			if (store_event_put(s, &ev, err, sizeof(err)) < 0)
				return die("fill", err);
			if ((e + 1) % 50000 == 0 &&
			    store_batch_commit(s, err, sizeof(err)) < 0)
				return die("commit", err);
			if ((e + 1) % 1000000 == 0)
				fprintf(stderr, "history: %ld rows, %.0f s\n",
					e + 1, now_s() - t0);
		}
		if (store_batch_commit(s, err, sizeof(err)) < 0)
			return die("commit", err);
		printf("history: filled %ld audit rows over %ld series in "
		       "%.1f s (%.0f rows/s)\n",
		       nrows, nseries, now_s() - t0,
		       (double)nrows / (now_s() - t0));
	}
	store_free(s);
	s = open_or_die(path, 0);
	if (!s)
		return 1;
	enum { Q = 200 };
	double t[Q];
	size_t rows = 0;
	for (int q = 0; q < Q; q++) {
		snprintf(key, sizeof(key), "meter-%06ld",
			 (long)(urand() * (double)nseries));
		n = 0;
		double t0 = now_s();
		if (store_history(s, key, INT64_MIN, count_cb, &n, err,
				  sizeof(err)) < 0)
			return die("history", err);
		t[q] = (now_s() - t0) * 1e3;
		rows += n;
	}
	qsort(t, Q, sizeof(double), cmp_double);
	printf("history: one series (%zu rows on average) from the audit "
	       "log: median %.3f ms, p95 %.3f ms, max %.3f ms over %d "
	       "random series (goal <= 10 ms)\n",
	       rows / Q, t[Q / 2], t[Q * 95 / 100], t[Q - 1], Q);
	store_free(s);
	return 0;
}

/* ---- demo: a synthetic replay for docs/SQL.md
 * -------------------------------- */

#define DEMO_SERIES  7
#define DEMO_HORIZON 24
#define DEMO_FLOATS  96

struct dseries {
	const char *key;
	uint64_t version; /* current */
	uint64_t good;	  /* last version with a good record */
	double level;	  /* error level of the adapted model */
	double shadow;	  /* error level of the frozen model */
	int since_update;
	float adapter[DEMO_FLOATS];
	float good_adapter[DEMO_FLOATS];
};

static int demo_put(struct store *s, const struct store_event *ev)
{
	char err[1024];
	int r = store_event_put(s, ev, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "bench-storage demo: %s\n", err);
	return r;
}

/* `driftcast rollback` from a child process while this one plays the
 * daemon and polls the control table, as the real daemon does. */
static int demo_operator(struct store *s, const char *path,
			 struct store_rollback_result *ret)
{
	char err[1024];
	pid_t pid = fork();
	if (pid < 0)
		return die("fork", strerror(errno));
	if (pid == 0) {
		struct store *cli = NULL;
		struct store_rollback_result res;
		struct store_rollback_target t = {.number = 3};
		if (store_open(path, NULL, &cli, err, sizeof(err)) < 0 ||
		    store_rollback_request(cli, "ETTh1/MULL", &t,
					   "ticket OPS-1533: compare with the "
					   "July adapter",
					   5000, &res, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench-storage demo: operator: %s\n",
				err);
			_exit(1);
		}
		store_free(cli);
		_exit(0);
	}
	struct store_rollback_result res;
	int r = 0;
	for (int i = 0; i < 200 && r == 0; i++) {
		r = store_control_poll(s, &res, err, sizeof(err));
		if (r == 0)
			nanosleep(&(struct timespec){0, 25000000}, NULL);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (r != 1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return die("control", r < 0 ? err : "request not applied");
	*ret = res;
	return 0;
}

static int bench_demo(const char *path)
{
	static const char *const keys[DEMO_SERIES] = {
	    "ETTh1/HUFL", "ETTh1/HULL", "ETTh1/MUFL", "ETTh1/MULL",
	    "ETTh1/LUFL", "ETTh1/LULL", "ETTh1/OT"};
	struct dseries ds[DEMO_SERIES];
	char err[1024];
	struct store *s = NULL;
	struct store_options so = {.daemon = true};
	if (store_open(path, &so, &s, err, sizeof(err)) < 0)
		return die("open", err);
	static const char model[] = "synthetic model bytes: transformer "
				    "d=64 L=96 H=24";
	int64_t mid;
	if (store_model_register(
		s, "etth1-transformer", "backbone=transformer\nlookback=96\n",
		model, sizeof(model),
		"val forecast MSE 0.412, val reconstruction MSE 0.233, "
		"early stop at epoch 31",
		&mid, err, sizeof(err)) < 0)
		return die("model", err);

	/* series time is ns (storage/schema.c, schema 7) */
	const int64_t hour = INT64_C(3600000000000);
	const int64_t t0 = INT64_C(1467331200) * 1000000000; /* 2016-07-01 */
	const int hours = 60 * 24;
	for (int i = 0; i < DEMO_SERIES; i++) {
		ds[i] = (struct dseries){.key = keys[i],
					 .level = 0.30 + 0.05 * i,
					 .shadow = 0.30 + 0.05 * i};
		for (int k = 0; k < DEMO_FLOATS; k++)
			ds[i].adapter[k] = ds[i].good_adapter[k] = 0.0f;
		struct store_event ev = {.type = STORE_EV_INIT,
					 .series = keys[i],
					 .ts = t0,
					 .adapted_error = NAN,
					 .shadow_error = NAN,
					 .loss_before = NAN,
					 .loss_after = NAN,
					 .guard_before = NAN,
					 .guard_after = NAN,
					 .update_norm = NAN,
					 .reason = "initial adapter (identity)",
					 .adapter = ds[i].adapter,
					 .adapter_len = DEMO_FLOATS};
		if (demo_put(s, &ev) < 0)
			return 1;
	}
	float fc[DEMO_HORIZON];
	int64_t offset = 0;
	for (int h = 0; h < hours; h++) {
		int64_t ts = t0 + (int64_t)h * hour;
		int day = h / 24;
		for (int i = 0; i < DEMO_SERIES; i++) {
			struct dseries *d = &ds[i];
			/* regime shifts: the frozen model gets worse */
			bool shifted = (i == 6 && day >= 12) ||
				       (i == 2 && day >= 25) ||
				       (i == 4 && day >= 40 && day < 50);
			double base = 0.30 + 0.05 * i;
			d->shadow = shifted ? base * 2.2 : base;
			for (int k = 0; k < DEMO_HORIZON; k++)
				fc[k] =
				    (float)(10.0 + 3.0 * sin((h + k) * 0.2618) +
					    0.1 * i);
			if (store_series_put(s, d->key, ts, NULL, err,
					     sizeof(err)) < 0)
				return die("series", err);
			struct store_event f = {.type = STORE_EV_FORECAST,
						.series = d->key,
						.ts = ts,
						.version_to = d->version,
						.forecast = fc,
						.horizon = DEMO_HORIZON};
			if (demo_put(s, &f) < 0)
				return 1;
			/* the forecast made DEMO_HORIZON hours ago matures */
			if (h >= DEMO_HORIZON) {
				double noise = 0.9 + 0.2 * urand();
				float ae = (float)(d->level * noise);
				float se = (float)(d->shadow * noise);
				if (store_error_put(s, d->key,
						    ts - DEMO_HORIZON * hour,
						    d->version, ae, se, err,
						    sizeof(err)) < 0)
					return die("error", err);
			}
			/* a shift pulls the adapted model's error toward the
			 * frozen one's until adaptation catches up */
			if (shifted)
				d->level += 0.03 * (d->shadow - d->level);
			else if (d->level > base)
				d->level += 0.05 * (base - d->level);
			d->since_update++;
			bool drift =
			    shifted && d->level > base * 1.5 && urand() < 0.08;
			if (drift) {
				struct store_event ev = {
				    .type = STORE_EV_DRIFT,
				    .trigger = STORE_TRIGGER_DRIFT,
				    .series = d->key,
				    .ts = ts,
				    .version_from = d->version,
				    .version_to = d->version,
				    .loss_before = (float)(d->level * 1.3),
				    .loss_after = NAN,
				    .guard_before = NAN,
				    .guard_after = NAN,
				    .update_norm = NAN,
				    .adapted_error = (float)d->level,
				    .shadow_error = (float)d->shadow,
				    .reason = "Page-Hinkley on the "
					      "reconstruction loss",
				    .detector_stat =
					(float)(50.0 * (d->level - base)),
				};
				if (demo_put(s, &ev) < 0)
					return 1;
			}
			if (d->since_update < 25 && !drift)
				continue;
			d->since_update = 0;
			/* an update: accepted when it helps on held-out
			 * matured windows */
			double gain = shifted ? 0.25 + 0.1 * urand()
					      : 0.02 * urand() - 0.012;
			float gb = (float)d->level;
			float ga = (float)(d->level * (1.0 - gain));
			bool ok = ga < gb;
			struct store_event ev = {
			    .type = ok ? STORE_EV_ADAPT_ACCEPTED
				       : STORE_EV_ADAPT_REJECTED,
			    .trigger = drift ? STORE_TRIGGER_DRIFT
					     : STORE_TRIGGER_SCHEDULE,
			    .series = d->key,
			    .ts = ts,
			    .version_from = d->version,
			    .version_to = ok ? d->version + 1 : d->version,
			    .steps = 5,
			    .loss_before = (float)(d->level * 1.1),
			    .loss_after =
				(float)(d->level * (1.0 - gain) * 1.05),
			    .guard_before = gb,
			    .guard_after = ga,
			    .update_norm = (float)(0.01 + 0.05 * urand()),
			    .adapted_error = NAN,
			    .shadow_error = NAN,
			    .reason = ok ? "guard passed"
					 : "guard: worse on held-out windows",
			    .data_from = ts - 96 * hour,
			    .data_until = ts,
			};
			if (ok) {
				for (int k = 0; k < DEMO_FLOATS; k++)
					d->adapter[k] +=
					    (float)(0.01 * (urand() - 0.5));
				ev.adapter = d->adapter;
				ev.adapter_len = DEMO_FLOATS;
			}
			if (demo_put(s, &ev) < 0)
				return 1;
			if (ok) {
				d->version++;
				d->level *= 1.0 - gain;
				/* now and then an update that passed the guard
				 * overfits: realised error goes up */
				if (!shifted && urand() < 0.12)
					d->level = d->shadow * 1.25;
				else {
					d->good = d->version;
					memcpy(d->good_adapter, d->adapter,
					       sizeof(d->adapter));
				}
			}
			/* adapted worse than the frozen shadow: roll back */
			if (d->level > d->shadow * 1.1 &&
			    d->version != d->good) {
				struct store_event rb = {
				    .type = STORE_EV_ROLLBACK,
				    .trigger = STORE_TRIGGER_SHADOW,
				    .series = d->key,
				    .ts = ts,
				    .version_from = d->version,
				    .version_to = d->version + 1,
				    .loss_before = NAN,
				    .loss_after = NAN,
				    .guard_before = NAN,
				    .guard_after = NAN,
				    .update_norm = NAN,
				    .adapted_error = (float)d->level,
				    .shadow_error = (float)d->shadow,
				    .reason = "realised error above the "
					      "frozen shadow by 10% over 48 "
					      "windows",
				    .adapter = d->good_adapter,
				    .adapter_len = DEMO_FLOATS,
				    .version_restored = d->good,
				};
				if (demo_put(s, &rb) < 0)
					return 1;
				memcpy(d->adapter, d->good_adapter,
				       sizeof(d->adapter));
				d->version++;
				d->good = d->version;
				d->level = base;
			}
		}
		/* the regime of LUFL ends: a soft reset toward the anchor */
		if (h == 50 * 24) {
			struct dseries *d = &ds[4];
			for (int k = 0; k < DEMO_FLOATS; k++)
				d->adapter[k] *= 0.5f;
			struct store_event ev = {
			    .type = STORE_EV_RESET,
			    .trigger = STORE_TRIGGER_SHADOW,
			    .series = d->key,
			    .ts = ts,
			    .version_from = d->version,
			    .version_to = d->version + 1,
			    .loss_before = NAN,
			    .loss_after = NAN,
			    .guard_before = NAN,
			    .guard_after = NAN,
			    .update_norm = NAN,
			    .adapted_error = (float)d->level,
			    .shadow_error = (float)d->shadow,
			    .reason = "soft reset, alpha 0.5",
			    .adapter = d->adapter,
			    .adapter_len = DEMO_FLOATS,
			};
			if (demo_put(s, &ev) < 0)
				return 1;
			d->version++;
			d->level = 0.30 + 0.05 * 4;
		}
		if (store_offset_put(s, "measurements", 0, ++offset, err,
				     sizeof(err)) < 0)
			return die("offset", err);
		if (store_batch_due(s, mono_ms()) &&
		    store_batch_commit(s, err, sizeof(err)) < 0)
			return die("commit", err);
		/* day 45: an operator asks the running "daemon" (this
		 * process) to roll MULL back, from another process */
		if (h == 45 * 24) {
			struct store_rollback_result res = {0};
			if (demo_operator(s, path, &res) < 0)
				return 1;
			ds[3].version = res.new_version;
			memcpy(ds[3].adapter, res.adapter,
			       sizeof(ds[3].adapter));
		}
		/* day 30: an operator rolls OT back to version 2 */
		if (h == 30 * 24) {
			struct store_rollback_target t = {.number = 2};
			struct store_rollback_result res;
			if (store_rollback(s, "ETTh1/OT", &t,
					   "ticket OPS-1412: OT forecasts "
					   "too low after the sensor swap",
					   &res, err, sizeof(err)) < 0)
				return die("rollback", err);
			ds[6].version = res.new_version;
			memcpy(ds[6].adapter, res.adapter,
			       sizeof(ds[6].adapter));
		}
	}
	if (store_batch_commit(s, err, sizeof(err)) < 0)
		return die("commit", err);
	store_free(s);
	printf("demo: %s written (%d series, %d hours)\n", path, DEMO_SERIES,
	       hours);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-storage write|init|forecasts|"
				"restore|history|demo DB [args]\n");
		return 2;
	}
	const char *mode = argv[1], *db = argv[2];
	long a = argc > 3 ? atol(argv[3]) : 0;
	long b = argc > 4 ? atol(argv[4]) : 0;
	long c = argc > 5 ? atol(argv[5]) : 0;
	if (!strcmp(mode, "write"))
		return bench_write(
		    db, a ? a : 10000, b ? b : 200000, c ? c : 256,
		    argc > 6 && atol(argv[6]) > 0 ? atol(argv[6]) : 1000);
	if (!strcmp(mode, "init"))
		return bench_init(db, a ? a : 100000, b ? b : 20000);
	if (!strcmp(mode, "forecasts"))
		return bench_forecasts(db, a ? a : 10000, b ? b : 500000,
				       c ? c : 5000);
	if (!strcmp(mode, "restore"))
		return bench_restore(db, a ? a : 1000000, b ? b : 256);
	if (!strcmp(mode, "history"))
		return bench_history(db, a ? a : 10000000, b ? b : 100000);
	if (!strcmp(mode, "demo"))
		return bench_demo(db);
	fprintf(stderr, "bench-storage: unknown mode '%s'\n", mode);
	return 2;
}
