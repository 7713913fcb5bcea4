/*
 * `driftcast demo`: the whole pipeline on an embedded default, for each of
 * the bundled data/ETTh1.csv and data/ETTh2.csv (or the --data files):
 *
 *   1. a base model per dataset (trained once on its train split, then
 *      cached next to the demo databases);
 *   2. librdkafka's mock cluster, in this process, as the Kafka broker (a
 *      real Kafka protocol peer on 127.0.0.1; its bootstrap address is
 *      printed, so kcat can watch);
 *   3. the test period of each dataset produced as JSON messages, one per
 *      channel and hour, keyed by series (ETTh1/HUFL, ..., ETTh2/OT), to
 *      its own input topic (the first dataset's is `measurements`);
 *   4. the real daemon loop (dc_run, the same code as `driftcast run`)
 *      against each topic with that dataset's model and a fresh SQLite
 *      database (one daemon serves one model);
 *   5. a summary per dataset -- frozen vs adapted vs persistence error of
 *      the published forecasts, adaptations accepted / rejected / rolled
 *      back -- the table of all of them (what adaptation buys where the
 *      shift is adaptable, ETTh2, and where it is not, ETTh1), where the
 *      databases are, and SQL to try.  --serve then serves the first.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/run.h"
#include "forecast/forecast.h"

#define DEMO_INPUT  "measurements"
#define DEMO_OUTPUT "forecasts"
#define DEMO_DEAD   "driftcast-deadletter"
/* The mock cluster keeps at most 5 MiB per partition: 25k forecasts of
 * ~1 KB need more than 4 partitions to be kept whole. */
#define DEMO_OUTPUT_PARTITIONS 16
#define DEMO_MAX_DATA	       4

/* The error of the published forecasts of one dataset (score_published). */
struct score {
	double adapted, frozen, persistence;
	long n;
};

/* One dataset streamed: its model, topic, consumer group and database. */
struct demo_set {
	const char *path;
	char path_buf[PATH_MAX];
	struct fc_dataset *ds;
	char model_path[1200];
	char db_path[1200];
	char topic[300], group[300];
	/* the --set overrides of its daemon run (dc_run_options.sets) */
	char s_brokers[600], s_db[1300], s_model[1300], s_topic[330],
	    s_group[330];
	const char *sets[12];
	uint64_t produced;
	int first, last; /* rows produced */
	struct dc_run_stats st;
	double seconds;
	struct score sc;
	bool scored;
};

struct demo {
	struct demo_set set[DEMO_MAX_DATA];
	int nsets;
	char workdir[1024];
	const char *backbone;
	bool quick;
	bool serve;
	bool tty;
	uint64_t produced;
	uint64_t started_us;
	uint64_t last_print_us;
};

static void demo_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast demo [--quick] [--serve] [--data FILE ...] "
	    "[--workdir DIR]\n"
	    "                      [--backbone gru|transformer]\n\n"
	    "Run the whole pipeline on embedded defaults, for each of the "
	    "bundled ETTh1\n"
	    "and ETTh2 datasets: train (once, then cached) a base model on "
	    "its train\n"
	    "split, start librdkafka's mock Kafka cluster in this process, "
	    "produce its\n"
	    "test period as messages (7 channels = 7 series), run the real "
	    "daemon loop\n"
	    "against them with a fresh SQLite database, and print what "
	    "happened: the\n"
	    "error of the published forecasts, frozen vs adapted vs "
	    "persistence, per\n"
	    "dataset.  About a minute per dataset the first time (the "
	    "training), then\n"
	    "about 10 s each.\n\n"
	    "Options:\n"
	    "  --quick            a short run (the first 600 hours of each "
	    "test period)\n"
	    "  --serve            then keep the broker and the first "
	    "dataset's daemon up\n"
	    "                     until Ctrl-C, for kcat, sqlite3 and "
	    "`driftcast produce`\n"
	    "  --data FILE        a CSV to stream instead (repeatable, up to "
	    "4; default:\n"
	    "                     data/ETTh1.csv and data/ETTh2.csv here, "
	    "or those of the\n"
	    "                     checkout this binary was built in)\n"
	    "  --workdir DIR      model cache and databases (default: "
	    "build/demo here, or\n"
	    "                     demo/ beside this binary when that found "
	    "the data, or\n"
	    "                     ./driftcast-demo)\n"
	    "  --backbone NAME    gru (default) or transformer\n"
	    "  -h, --help         show this help\n");
}

static int mkdir_p(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * The bundled data when --data is not given: data/ETTh1.csv and
 * data/ETTh2.csv here, else those of the checkout this binary sits in
 * (build/driftcast -> ../data/), so the binary can run from anywhere.
 * ETTh1 is needed; ETTh2 is streamed when it is there too.  Fills d->set;
 * *ret_beside: found beside the binary (exe_dir, for the model cache).
 */
static const char *const demo_data[] = {"data/ETTh1.csv", "data/ETTh2.csv"};
static int find_data(struct demo *d, char *exe_dir, size_t exe_dir_size,
		     bool *ret_beside)
{
	char exe[1000], dir[1100] = ".";
	*ret_beside = false;
	if (access(demo_data[0], R_OK) != 0) {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		char *slash, cand[1200];
		if (n <= 0)
			goto none;
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) == NULL)
			goto none;
		*slash = '\0';
		snprintf(cand, sizeof(cand), "%s/../%s", exe, demo_data[0]);
		if (access(cand, R_OK) != 0)
			goto none;
		snprintf(dir, sizeof(dir), "%s/..", exe);
		snprintf(exe_dir, exe_dir_size, "%s", exe);
		*ret_beside = true;
	}
	for (size_t i = 0; i < sizeof(demo_data) / sizeof(demo_data[0]); i++) {
		struct demo_set *s = &d->set[d->nsets];
		char cand[1200];
		snprintf(cand, sizeof(cand), "%s/%s", dir, demo_data[i]);
		if (access(cand, R_OK) != 0 || !realpath(cand, s->path_buf))
			continue;
		/* as the user would type it, when found here */
		s->path = *ret_beside ? s->path_buf : demo_data[i];
		d->nsets++;
	}
	return 0;
none:
	fprintf(stderr,
		"driftcast demo: cannot find the bundled %s (not here, nor in "
		"the checkout of this binary); pass --data FILE (a CSV with a "
		"time column) or run from the driftcast checkout\n",
		demo_data[0]);
	return -ENOENT;
}

/* ---- 1. the model ------------------------------------------------------ */

static int ensure_model(struct demo *d, struct demo_set *set)
{
	const struct fc_dataset *ds = set->ds;
	char err[1024];
	struct fc_model *m = NULL;
	int e;

	/* The fully trained model serves both runs; --quick trains (and
	 * caches) a shorter one only when there is no full one yet. */
	for (int quick = 0; quick <= (d->quick ? 1 : 0); quick++) {
		snprintf(set->model_path, sizeof(set->model_path),
			 "%s/%s-%s-L96-H96%s.dcm", d->workdir, ds->name,
			 d->backbone, quick ? "-quick" : "");
		e = fc_model_load(set->model_path, &m, err, sizeof(err));
		if (e == 0) {
			printf("  using the cached model %s\n",
			       set->model_path);
			fc_model_free(m);
			return 0;
		}
		if (e != -ENOENT)
			printf("  cached model %s unusable (%s): training "
			       "again\n",
			       set->model_path, err);
	}

	struct fc_config mc;
	struct fc_train_config tc;
	struct fc_train_report rep;
	fc_config_default(&mc);
	fc_train_config_default(&tc);
	if (fc_backbone_parse(d->backbone, &mc.backbone) < 0) {
		fprintf(stderr, "driftcast demo: unknown backbone '%s'\n",
			d->backbone);
		return -EINVAL;
	}
	if (mc.backbone == FC_BACKBONE_GRU)
		mc.n_layers = 1;
	if (d->quick && tc.epochs > 4)
		tc.epochs = 4;
	printf("  training a %s base model on the train split of %s (%d "
	       "channels, lookback 96, horizon 96, at most %d epochs); it is "
	       "cached for the next run\n",
	       d->backbone, ds->name, ds->n_cols, tc.epochs);
	struct dc_train_printer pr = {
	    .f = stderr, .tty = d->tty, .indent = "  ", .last = -1};
	e = fc_train(&mc, &tc, ds, dc_train_print_progress, &pr, &m, &rep, err,
		     sizeof(err));
	if (d->tty)
		fprintf(stderr, "\r\033[K");
	if (e < 0) {
		fprintf(stderr, "driftcast demo: training failed: %s\n", err);
		return e;
	}
	printf("  trained in %.0f s: best validation MSE %.4f at epoch %d%s "
	       "(%d BLAS thread%s)\n",
	       rep.seconds, (double)rep.best_val_mse, rep.best_epoch,
	       rep.best_is_ema ? ", weights' average" : "", rep.threads,
	       rep.threads == 1 ? "" : "s");
	e = fc_model_save(m, set->model_path, err, sizeof(err));
	fc_model_free(m);
	if (e < 0) {
		fprintf(stderr, "driftcast demo: %s\n", err);
		return e;
	}
	return 0;
}

/* ---- 2. the broker ----------------------------------------------------- */

struct cluster {
	rd_kafka_t *owner; /* the handle the mock cluster lives on */
	rd_kafka_mock_cluster_t *mc;
	char bootstraps[512];
};

static int cluster_start(struct cluster *c, const struct demo *d)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
	c->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!c->owner) {
		fprintf(stderr, "driftcast demo: %s\n", err);
		return -EIO;
	}
	c->mc = rd_kafka_mock_cluster_new(c->owner, 1);
	if (!c->mc) {
		fprintf(stderr, "driftcast demo: cannot start the mock Kafka "
				"cluster\n");
		return -EIO;
	}
	snprintf(c->bootstraps, sizeof(c->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(c->mc));
	for (int i = 0; i < d->nsets; i++)
		if (rd_kafka_mock_topic_create(c->mc, d->set[i].topic, 4, 1)) {
			fprintf(stderr, "driftcast demo: cannot create "
					"topics\n");
			return -EIO;
		}
	if (rd_kafka_mock_topic_create(c->mc, DEMO_OUTPUT,
				       DEMO_OUTPUT_PARTITIONS, 1) ||
	    rd_kafka_mock_topic_create(c->mc, DEMO_DEAD, 1, 1)) {
		fprintf(stderr, "driftcast demo: cannot create topics\n");
		return -EIO;
	}
	return 0;
}

static void cluster_stop(struct cluster *c)
{
	if (c->mc)
		rd_kafka_mock_cluster_destroy(c->mc);
	if (c->owner)
		rd_kafka_destroy(c->owner);
}

/* ---- 3. the messages ----------------------------------------------------- */

static int produce_test_period(struct demo *d, const struct cluster *c,
			       struct demo_set *set)
{
	const struct fc_dataset *ds = set->ds;
	char err[512], key[256], payload[2048];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "driftcast demo: %s\n", err);
		return -EINVAL;
	}
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "driftcast demo: %s\n", err);
		return -EIO;
	}
	int first = fc_dataset_split_start(ds, FC_SPLIT_TEST, 96);
	int last = ds->n_rows;
	if (d->quick && last > first + 96 + 600)
		last = first + 96 + 600;
	for (int row = first; row < last; row++) {
		for (int ch = 0; ch < ds->n_cols; ch++) {
			snprintf(key, sizeof(key), "%s/%s", ds->name,
				 ds->col_names[ch]);
			/* the message `driftcast produce` would send */
			size_t n;
			if (dc_produce_message(
				CFG_INPUT_JSON, CFG_TS_AUTO, ds->name,
				ds->col_names[ch], ds->timestamps[row],
				ds->raw[(size_t)row * (size_t)ds->n_cols +
					(size_t)ch],
				payload, sizeof(payload), &n) < 0) {
				fprintf(stderr,
					"driftcast demo: row %d of %s cannot "
					"be sent (time or name out of "
					"range)\n",
					row + 1, set->path);
				rd_kafka_destroy(p);
				return -EINVAL;
			}
			rd_kafka_resp_err_t e;
			while ((e = rd_kafka_producev(
				    p, RD_KAFKA_V_TOPIC(set->topic),
				    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				    RD_KAFKA_V_KEY(key, strlen(key)),
				    RD_KAFKA_V_VALUE(payload, n),
				    RD_KAFKA_V_END)) ==
			       RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(p, 10);
			if (e) {
				fprintf(stderr, "driftcast demo: produce: %s\n",
					rd_kafka_err2str(e));
				rd_kafka_destroy(p);
				return -EIO;
			}
			set->produced++;
		}
	}
	rd_kafka_flush(p, 30000);
	int left = rd_kafka_outq_len(p);
	rd_kafka_destroy(p);
	if (left > 0) {
		fprintf(stderr, "driftcast demo: %d messages not delivered\n",
			left);
		return -EIO;
	}
	set->first = first;
	set->last = last;
	return 0;
}

/* ---- 4. the daemon ------------------------------------------------------- */

static void print_progress(struct demo *d, const struct dc_run_stats *st,
			   uint64_t now, bool last)
{
	double secs = (double)(now - d->started_us) / 1e6;
	fprintf(stderr,
		"%s  %" PRIu64 "/%" PRIu64 " messages  %" PRIu64
		" forecasts  %" PRIu64 " adaptations accepted  %" PRIu64
		" rejected  %" PRIu64 " rolled back  %.0f s%s",
		d->tty ? "\r\033[K" : "", st->messages, d->produced,
		st->forecasts, st->accepted, st->rejected, st->rollbacks, secs,
		d->tty && !last ? "" : "\n");
}

/* Progress while the loop runs; the last line is printed from the final
 * statistics, after the loop's last batch (dc_cmd_demo). */
static bool demo_tick(void *user, const struct dc_run_stats *st)
{
	struct demo *d = user;
	uint64_t now = dc_now_monotonic_usec();
	bool done = st->messages + st->skipped_replay >= d->produced;
	if (!done && now - d->last_print_us > (d->tty ? 250000u : 5000000u)) {
		d->last_print_us = now;
		print_progress(d, st, now, false);
	}
	return done;
}

/* ---- 5. the summary ------------------------------------------------- */

/*
 * Score what was published, causally: every forecast the daemon recorded
 * (the forecasts table holds exactly what went to the forecasts topic)
 * against the values that arrived later, next to the frozen base model's
 * forecast of the same window (recomputed here) and persistence, in
 * train-scaled units as in docs/EVAL.md.
 */

/* Add one recorded forecast to sc; ignores what it cannot place. */
static void score_one(const struct fc_dataset *ds, const struct fc_model *m,
		      struct fc_workspace *ws, const char *series,
		      int64_t origin, const float *f, int horizon,
		      struct score *sc)
{
	enum { L = 96, H = 96 };
	float x[L], y[H];
	const char *slash = series ? strrchr(series, '/') : NULL;
	int ch = -1;
	for (int k = 0; slash && k < ds->n_cols; k++)
		if (!strcmp(slash + 1, ds->col_names[k]))
			ch = k;
	double step = ds->step_seconds;
	int row =
	    step > 0 ? (int)llround(((double)origin - ds->timestamps[0]) / step)
		     : -1;
	if (ch < 0 || horizon != H || row < L - 1 || row + H >= ds->n_rows ||
	    fabs(ds->timestamps[row] - (double)origin) > 0.5)
		return;
	size_t nc = (size_t)ds->n_cols;
	for (int k = 0; k < L; k++)
		x[k] = ds->raw[(size_t)(row - L + 1 + k) * nc + (size_t)ch];
	if (fc_forecast(m, NULL, ws, x, 1, y) < 0)
		return;
	double ea = 0, ef = 0, ep = 0, sd = (double)ds->std[ch];
	for (int h = 0; h < H; h++) {
		double truth =
		    (double)ds->raw[(size_t)(row + 1 + h) * nc + (size_t)ch];
		double da = ((double)f[h] - truth) / sd;
		double df = ((double)y[h] - truth) / sd;
		double dp = ((double)x[L - 1] - truth) / sd;
		ea += da * da;
		ef += df * df;
		ep += dp * dp;
	}
	sc->adapted += ea / H;
	sc->frozen += ef / H;
	sc->persistence += ep / H;
	sc->n++;
}

static int score_published(const struct demo_set *set, sqlite3 *db,
			   struct score *sc)
{
	char err[512];
	struct fc_model *m = NULL;
	struct fc_workspace *ws = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	memset(sc, 0, sizeof(*sc));
	if (fc_model_load(set->model_path, &m, err, sizeof(err)) < 0 ||
	    fc_workspace_new(m, 1, &ws) < 0)
		goto out;
	if (sqlite3_prepare_v2(db,
			       "SELECT s.key, f.origin_ts, f.horizon, f.vals "
			       "FROM forecasts f JOIN series s ON s.id = "
			       "f.series_id",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int horizon = sqlite3_column_int(st, 2);
		const void *blob = sqlite3_column_blob(st, 3);
		int bytes = sqlite3_column_bytes(st, 3);
		if (!blob || bytes != horizon * (int)sizeof(float))
			continue;
		score_one(set->ds, m, ws,
			  (const char *)sqlite3_column_text(st, 0),
			  /* origin_ts: series time in ns (docs/SQL.md) */
			  sqlite3_column_int64(st, 1) / 1000000000, blob,
			  horizon, sc);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	fc_workspace_free(ws);
	fc_model_free(m);
	return rc;
}

static double query_double(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	double v = NAN;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return v;
}

static double pct(double a, double f)
{
	return f > 0 ? 100.0 * (a - f) / f : 0.0;
}

/* What happened to one dataset's stream; scores it into set->sc. */
static void summary(struct demo_set *set)
{
	const struct dc_run_stats *st = &set->st;
	struct score *sc = &set->sc;
	sqlite3 *db = NULL;
	char uri[1300];
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", set->db_path);
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK) {
		printf("cannot open %s: %s\n", set->db_path,
		       sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}

	double versions = query_double(db, "SELECT count(*) FROM versions");
	double audit = query_double(db, "SELECT count(*) FROM audit");
	if (score_published(set, db, sc) < 0)
		printf("  (cannot score the recorded forecasts: %s)\n",
		       sqlite3_errmsg(db));
	else
		set->scored = sc->n > 0;
	sqlite3_close(db);

	printf("\n== what happened to %s (%.0f s of streaming)\n",
	       set->ds->name, set->seconds);
	printf("  %" PRIu64 " messages -> %" PRIu64 " forecasts of the next "
	       "96 hours, %" PRIu64 " dead-lettered\n",
	       st->messages, st->forecasts, st->deadlettered);
	if (set->scored) {
		double fa = sc->adapted / (double)sc->n;
		double fs = sc->frozen / (double)sc->n;
		printf("  error of the %ld published forecasts whose 96 hours "
		       "have passed\n"
		       "  (MSE in train-scaled units, as in docs/EVAL.md; each "
		       "forecast issued before its hours arrived):\n"
		       "    frozen base model   %.4f\n"
		       "    with adaptation     %.4f  (%+.2f %%)\n"
		       "    naive persistence   %.4f\n",
		       sc->n, fs, fa, pct(fa, fs),
		       sc->persistence / (double)sc->n);
	} else {
		printf("  no published forecast has matured yet\n");
	}
	printf("  adaptations: %" PRIu64 " accepted, %" PRIu64
	       " rejected by the guard, %" PRIu64 " rolled back, %" PRIu64
	       " drift alarms\n",
	       st->accepted, st->rejected, st->rollbacks, st->drifts);
	printf("  database: %s (%.0f adapter versions, %.0f audit events)\n",
	       set->db_path, versions, audit);
}

/* The datasets side by side, then what to try on the first database. */
static void conclusion(const struct demo *d)
{
	const struct demo_set *s0 = &d->set[0];
	printf("\n== what adaptation buys: MSE of the published forecasts, "
	       "per dataset\n");
	printf("  %-10s %9s %9s %9s %9s %12s\n", "dataset", "forecasts",
	       "frozen", "adapted", "change", "persistence");
	for (int i = 0; i < d->nsets; i++) {
		const struct demo_set *s = &d->set[i];
		const struct score *sc = &s->sc;
		if (!s->scored) {
			printf("  %-10s %9s\n", s->ds->name, "-");
			continue;
		}
		double n = (double)sc->n, fa = sc->adapted / n,
		       fs = sc->frozen / n;
		printf("  %-10s %9ld %9.4f %9.4f %+8.2f%% %12.4f\n",
		       s->ds->name, sc->n, fs, fa, pct(fa, fs),
		       sc->persistence / n);
	}
	printf("  (change < 0: adaptation lowered the error of the same "
	       "forecasts; whether it\n"
	       "  can depends on the shift of the period, and a --quick run "
	       "is too short to tell)\n");
	printf("\n== try\n");
	printf("  sqlite3 -header -column %s \"SELECT event, count(*) FROM "
	       "audit GROUP BY event;\"\n",
	       s0->db_path);
	printf("  sqlite3 -header -column %s \"SELECT series, version, "
	       "error_before, error_after, n_after FROM v_adaptation_effect "
	       "WHERE n_after > 0 LIMIT 10;\"\n",
	       s0->db_path);
	for (int i = 0; i < d->nsets; i++)
		printf("  build/driftcast versions --db %s --series %s/OT\n",
		       d->set[i].db_path, d->set[i].ds->name);
	printf("  (docs/SQL.md has more queries; `driftcast rollback --db "
	       "... --series ... --to-version N --reason ...` rolls a series "
	       "back)\n");
}

/* ---- 4. the daemon ------------------------------------------------------- */

/* The settings of set's daemon run: its topic, group, model and a fresh
 * database (removed here); the output and dead-letter topics are shared. */
static void run_options(struct demo *d, const struct cluster *c,
			struct demo_set *set, struct dc_run_options *o)
{
	snprintf(set->db_path, sizeof(set->db_path), "%s/%s.db", d->workdir,
		 set == &d->set[0] ? "demo"
				   : set->group + strlen("driftcast-"));
	snprintf(set->s_brokers, sizeof(set->s_brokers), "kafka.brokers=%s",
		 c->bootstraps);
	snprintf(set->s_db, sizeof(set->s_db), "storage.path=%s", set->db_path);
	snprintf(set->s_model, sizeof(set->s_model), "model.path=%s",
		 set->model_path);
	snprintf(set->s_topic, sizeof(set->s_topic), "kafka.input_topic=%s",
		 set->topic);
	snprintf(set->s_group, sizeof(set->s_group), "kafka.group=%s",
		 set->group);
	const char *sets[] = {
	    set->s_brokers,
	    set->s_db,
	    set->s_model,
	    set->s_topic,
	    set->s_group,
	    "kafka.output_topic=" DEMO_OUTPUT,
	    "kafka.deadletter_topic=" DEMO_DEAD,
	    "kafka.session_timeout_ms=6000",
	    "metrics.listen=off",
	    "log.level=warning",
	};
	_Static_assert(sizeof(sets) <= sizeof(set->sets), "set->sets");
	memcpy(set->sets, sets, sizeof(sets));
	*o = (struct dc_run_options){
	    .sets = set->sets,
	    .nsets = sizeof(sets) / sizeof(sets[0]),
	    .tick = demo_tick,
	    .user = d,
	};
}

/* Stream set's test period through a daemon loop of its own. */
static int run_one(struct demo *d, const struct cluster *c,
		   struct demo_set *set)
{
	struct dc_run_options o;
	printf("\n== 4. the daemon loop (the code of `driftcast run`): %s\n",
	       set->ds->name);
	run_options(d, c, set, &o);
	const char *suffixes[] = {"", "-wal", "-shm", ".lock"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char p[1300];
		snprintf(p, sizeof(p), "%s%s", set->db_path, suffixes[i]);
		unlink(p);
	}
	d->produced = set->produced;
	d->started_us = dc_now_monotonic_usec();
	d->last_print_us = d->started_us;
	int rc = dc_run(&o, &set->st);
	set->seconds = (double)(dc_now_monotonic_usec() - d->started_us) / 1e6;
	if (rc != DC_EXIT_OK) {
		fprintf(stderr, "%sdriftcast demo: the daemon loop failed\n",
			d->tty ? "\n" : "");
		return rc;
	}
	print_progress(d, &set->st, dc_now_monotonic_usec(), true);
	summary(set);
	return DC_EXIT_OK;
}

/*
 * --serve: the broker stays up and the first dataset's daemon runs again on
 * the same database and group (it resumes after the committed offsets)
 * until SIGINT/SIGTERM, which dc_run handles: it drains, and then the
 * broker goes.  So the commands printed here work for as long as they are
 * shown.
 */
static int serve(struct demo *d, const struct cluster *c)
{
	struct demo_set *set = &d->set[0];
	struct dc_run_options o;
	run_options(d, c, set, &o);
	printf("\n== serving until Ctrl-C: the broker and the daemon of %s "
	       "stay up\n",
	       set->ds->name);
	printf("  brokers %s\n", c->bootstraps);
	printf("  kcat -b %s -L\n", c->bootstraps);
	printf("  kcat -b %s -C -t %s -o -5 -e\n", c->bootstraps, DEMO_OUTPUT);
	printf("  driftcast produce --brokers %s --topic %s FILE.csv   "
	       "(more input: the daemon forecasts it)\n",
	       c->bootstraps, set->topic);
	printf("  sqlite3 %s \"SELECT count(*) FROM forecasts;\"\n",
	       set->db_path);
	o.tick = NULL;
	int rc = dc_run(&o, NULL);
	printf("\n== stopped; the broker is gone, the database stays: %s\n",
	       set->db_path);
	return rc;
}

/* Topic and group of each set, by its dataset's name (unique). */
static int name_sets(struct demo *d)
{
	for (int i = 0; i < d->nsets; i++) {
		struct demo_set *s = &d->set[i];
		for (int j = 0; j < i; j++)
			if (!strcmp(d->set[j].ds->name, s->ds->name)) {
				fprintf(stderr,
					"driftcast demo: %s and %s are both "
					"named %s: the series keys would "
					"clash\n",
					d->set[j].path, s->path, s->ds->name);
				return -EINVAL;
			}
		if (i == 0)
			snprintf(s->topic, sizeof(s->topic), DEMO_INPUT);
		else
			snprintf(s->topic, sizeof(s->topic), DEMO_INPUT "-%s",
				 s->ds->name);
		snprintf(s->group, sizeof(s->group), "driftcast-demo%s%s",
			 i ? "-" : "", i ? s->ds->name : "");
	}
	return 0;
}

int dc_cmd_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"quick", no_argument, NULL, 'q'},
	    {"serve", no_argument, NULL, 'S'},
	    {"data", required_argument, NULL, 'd'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"backbone", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct demo d = {.backbone = "gru"};
	const char *workdir = NULL;
	struct cluster c = {0};
	char err[1024];
	int opt, code, rc = DC_EXIT_FAILURE;

	while ((opt = dc_getopt(argc, argv, "h", longopts, demo_usage, &code)) >
	       0) {
		switch (opt) {
		case 'q':
			d.quick = true;
			break;
		case 'S':
			d.serve = true;
			break;
		case 'd':
			if (d.nsets == DEMO_MAX_DATA) {
				fprintf(stderr,
					"driftcast demo: at most %d --data "
					"files\n",
					DEMO_MAX_DATA);
				return DC_EXIT_USAGE;
			}
			d.set[d.nsets++].path = optarg;
			break;
		case 'w':
			workdir = optarg;
			break;
		case 'b':
			d.backbone = optarg;
			break;
		}
	}
	if (opt < 0 ||
	    (code = dc_check_operands("demo", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	char exe_dir[1000]; /* + "/demo" fits d.workdir */
	bool beside = false;
	if (d.nsets == 0 &&
	    find_data(&d, exe_dir, sizeof(exe_dir), &beside) < 0)
		return DC_EXIT_USAGE;
	struct stat sb;
	if (workdir)
		snprintf(d.workdir, sizeof(d.workdir), "%s", workdir);
	else if (stat("build", &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(d.workdir, sizeof(d.workdir), "build/demo");
	else if (beside)
		snprintf(d.workdir, sizeof(d.workdir), "%s/demo", exe_dir);
	else
		snprintf(d.workdir, sizeof(d.workdir), "driftcast-demo");
	d.tty = isatty(STDERR_FILENO);
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("== 1. data and base models\n");
	for (int i = 0; i < d.nsets; i++) {
		struct demo_set *s = &d.set[i];
		if (fc_dataset_load(s->path, NULL, &s->ds, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "driftcast demo: %s\n", err);
			rc = DC_EXIT_USAGE;
			goto out;
		}
		printf("  %s: %d rows x %d channels; train %d / validation "
		       "%d / test %d rows\n",
		       s->path, s->ds->n_rows, s->ds->n_cols, s->ds->train_end,
		       s->ds->val_end - s->ds->train_end,
		       s->ds->n_rows - s->ds->val_end);
	}
	if (name_sets(&d) < 0) {
		rc = DC_EXIT_USAGE;
		goto out;
	}
	if (mkdir_p(d.workdir) < 0) {
		fprintf(stderr, "driftcast demo: cannot create %s: %s\n",
			d.workdir, strerror(errno));
		goto out;
	}
	for (int i = 0; i < d.nsets; i++)
		if (ensure_model(&d, &d.set[i]) < 0)
			goto out;

	printf("\n== 2. Kafka: librdkafka's mock cluster, in this process\n");
	if (cluster_start(&c, &d) < 0)
		goto out;
	printf("  brokers %s; topics", c.bootstraps);
	for (int i = 0; i < d.nsets; i++)
		printf(" %s (4 partitions),", d.set[i].topic);
	printf(" %s (%d), %s (1)\n", DEMO_OUTPUT, DEMO_OUTPUT_PARTITIONS,
	       DEMO_DEAD);
	if (!d.serve)
		printf("  (it lives as long as the demo; --serve keeps it up "
		       "afterwards for kcat)\n");

	printf("\n== 3. producing the test periods\n");
	for (int i = 0; i < d.nsets; i++) {
		struct demo_set *s = &d.set[i];
		if (produce_test_period(&d, &c, s) < 0)
			goto out;
		printf("  %" PRIu64 " messages to %s: rows %d..%d of %s, %d "
		       "series, keyed by series\n",
		       s->produced, s->topic, s->first, s->last - 1, s->path,
		       s->ds->n_cols);
	}

	for (int i = 0; i < d.nsets; i++) {
		rc = run_one(&d, &c, &d.set[i]);
		/* dc_run also stops on Ctrl-C: then no more */
		if (rc != DC_EXIT_OK ||
		    d.set[i].st.messages + d.set[i].st.skipped_replay <
			d.set[i].produced)
			goto out;
	}
	conclusion(&d);
	if (d.serve)
		rc = serve(&d, &c);
out:
	cluster_stop(&c);
	for (int i = 0; i < d.nsets; i++)
		fc_dataset_free(d.set[i].ds);
	return rc;
}
