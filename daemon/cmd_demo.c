/*
 * `driftcast demo`: the whole pipeline on an embedded default.
 *
 *   1. a base model for the bundled data/ETTh1.csv (trained once, then
 *      cached next to the demo database);
 *   2. librdkafka's mock cluster, in this process, as the Kafka broker (a
 *      real Kafka protocol peer on 127.0.0.1; its bootstrap address is
 *      printed, so kcat can watch);
 *   3. the test period of ETTh1 produced as JSON messages, one per channel
 *      and hour, keyed by series (ETTh1/HUFL, ..., ETTh1/OT);
 *   4. the real daemon loop (dc_run, the same code as `driftcast run`)
 *      against it, with a fresh SQLite database;
 *   5. a summary: frozen vs adapted error, adaptations accepted / rejected
 *      / rolled back, where the database is, and SQL to try.
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

struct demo {
	const char *data;
	char data_buf[PATH_MAX];
	char workdir[1024];
	char model_path[1200];
	char db_path[1200];
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
	fprintf(f,
		"Usage: driftcast demo [--quick] [--serve] [--data FILE] "
		"[--workdir DIR]\n"
		"                      [--backbone gru|transformer]\n\n"
		"Run the whole pipeline on an embedded default: train (once, "
		"then cached) a\n"
		"base model on the bundled ETTh1 data, start librdkafka's mock "
		"Kafka cluster in\n"
		"this process, produce the test period as messages (7 channels "
		"= 7 series),\n"
		"run the real daemon loop against it with a fresh SQLite "
		"database, and print\n"
		"what happened.\n\n"
		"Options:\n"
		"  --quick            a short run (the first 600 hours of the "
		"test period)\n"
		"  --serve            then keep the broker and the daemon up "
		"until Ctrl-C, for\n"
		"                     kcat, sqlite3 and `driftcast produce` "
		"to use\n"
		"  --data FILE        the CSV to use (default: data/ETTh1.csv "
		"here, or the one\n"
		"                     of the checkout this binary was built "
		"in)\n"
		"  --workdir DIR      model cache and database (default: "
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
 * The bundled data when --data is not given: data/ETTh1.csv here, else the
 * one of the checkout this binary sits in (build/driftcast ->
 * ../data/ETTh1.csv), so the binary can run from anywhere.  Sets d->data;
 * *ret_beside: found beside the binary (exe_dir, for the model cache).
 */
#define DEMO_DATA "data/ETTh1.csv"
static int find_data(struct demo *d, char *exe_dir, size_t exe_dir_size,
		     bool *ret_beside)
{
	char exe[1000];
	*ret_beside = false;
	if (access(DEMO_DATA, R_OK) == 0) {
		d->data = DEMO_DATA;
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			char cand[1100];
			snprintf(cand, sizeof(cand), "%s/../" DEMO_DATA, exe);
			if (access(cand, R_OK) == 0 &&
			    realpath(cand, d->data_buf)) {
				snprintf(exe_dir, exe_dir_size, "%s", exe);
				d->data = d->data_buf;
				*ret_beside = true;
				return 0;
			}
		}
	}
	fprintf(stderr,
		"driftcast demo: cannot find the bundled " DEMO_DATA
		" (not here, nor in the checkout of this binary); pass "
		"--data FILE (a CSV with a time column) or run from the "
		"driftcast checkout\n");
	return -ENOENT;
}

/* ---- 1. the model ------------------------------------------------------ */

static int ensure_model(struct demo *d, const struct fc_dataset *ds)
{
	char err[1024];
	struct fc_model *m = NULL;
	int e;

	/* The fully trained model serves both runs; --quick trains (and
	 * caches) a shorter one only when there is no full one yet. */
	for (int quick = 0; quick <= (d->quick ? 1 : 0); quick++) {
		snprintf(d->model_path, sizeof(d->model_path),
			 "%s/%s-%s-L96-H96%s.dcm", d->workdir, ds->name,
			 d->backbone, quick ? "-quick" : "");
		e = fc_model_load(d->model_path, &m, err, sizeof(err));
		if (e == 0) {
			printf("  using the cached model %s\n", d->model_path);
			fc_model_free(m);
			return 0;
		}
		if (e != -ENOENT)
			printf("  cached model %s unusable (%s): training "
			       "again\n",
			       d->model_path, err);
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
	e = fc_model_save(m, d->model_path, err, sizeof(err));
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

static int cluster_start(struct cluster *c)
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
	if (rd_kafka_mock_topic_create(c->mc, DEMO_INPUT, 4, 1) ||
	    rd_kafka_mock_topic_create(c->mc, DEMO_OUTPUT,
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
			       const struct fc_dataset *ds, int *ret_first,
			       int *ret_last)
{
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
					row + 1, d->data);
				rd_kafka_destroy(p);
				return -EINVAL;
			}
			rd_kafka_resp_err_t e;
			while ((e = rd_kafka_producev(
				    p, RD_KAFKA_V_TOPIC(DEMO_INPUT),
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
			d->produced++;
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
	*ret_first = first;
	*ret_last = last;
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
struct score {
	double adapted, frozen, persistence;
	long n;
};

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

static int score_published(const struct demo *d, sqlite3 *db,
			   const struct fc_dataset *ds, struct score *sc)
{
	char err[512];
	struct fc_model *m = NULL;
	struct fc_workspace *ws = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	memset(sc, 0, sizeof(*sc));
	if (fc_model_load(d->model_path, &m, err, sizeof(err)) < 0 ||
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
		score_one(ds, m, ws, (const char *)sqlite3_column_text(st, 0),
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

static void summary(struct demo *d, const struct fc_dataset *ds,
		    const struct dc_run_stats *st, double seconds)
{
	sqlite3 *db = NULL;
	char uri[1300];
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", d->db_path);
	if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
			    NULL) != SQLITE_OK) {
		printf("cannot open %s: %s\n", d->db_path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}

	double versions = query_double(db, "SELECT count(*) FROM versions");
	double audit = query_double(db, "SELECT count(*) FROM audit");
	struct score score, *sc = &score;
	if (score_published(d, db, ds, sc) < 0)
		printf("  (cannot score the recorded forecasts: %s)\n",
		       sqlite3_errmsg(db));
	sqlite3_close(db);

	printf("\n== what happened (%.0f s of streaming)\n", seconds);
	printf("  %" PRIu64 " messages -> %" PRIu64 " forecasts of the next "
	       "96 hours, %" PRIu64 " dead-lettered\n",
	       st->messages, st->forecasts, st->deadlettered);
	if (sc->n > 0) {
		double fa = sc->adapted / (double)sc->n;
		double fs = sc->frozen / (double)sc->n;
		printf("  error of the %ld published forecasts whose 96 hours "
		       "have passed\n"
		       "  (MSE in train-scaled units, as in docs/EVAL.md; each "
		       "forecast issued before its hours arrived):\n"
		       "    frozen base model   %.4f\n"
		       "    with adaptation     %.4f  (%+.2f %%)\n"
		       "    naive persistence   %.4f\n",
		       sc->n, fs, fa, fs > 0 ? 100.0 * (fa - fs) / fs : 0.0,
		       sc->persistence / (double)sc->n);
	} else {
		printf("  no published forecast has matured yet\n");
	}
	printf("  adaptations: %" PRIu64 " accepted, %" PRIu64
	       " rejected by the guard, %" PRIu64 " rolled back, %" PRIu64
	       " drift alarms\n",
	       st->accepted, st->rejected, st->rollbacks, st->drifts);
	printf("  database: %s (%.0f adapter versions, %.0f audit events)\n",
	       d->db_path, versions, audit);
	printf("\n== try\n");
	printf("  sqlite3 -header -column %s \"SELECT event, count(*) FROM "
	       "audit GROUP BY event;\"\n",
	       d->db_path);
	printf("  sqlite3 -header -column %s \"SELECT series, version, "
	       "error_before, error_after, n_after FROM v_adaptation_effect "
	       "WHERE n_after > 0 LIMIT 10;\"\n",
	       d->db_path);
	printf("  build/driftcast versions --db %s --series %s/OT\n",
	       d->db_path, ds->name);
	printf("  (docs/SQL.md has more queries; `driftcast rollback --db "
	       "... --series ... --to-version N --reason ...` rolls a series "
	       "back)\n");
}

/*
 * --serve: the broker stays up and the daemon runs again on the same
 * database and group (it resumes after the committed offsets) until
 * SIGINT/SIGTERM, which dc_run handles: it drains, and then the broker
 * goes.  So the commands printed here work for as long as they are shown.
 */
static int serve(struct demo *d, const struct cluster *c,
		 struct dc_run_options *o)
{
	printf("\n== serving until Ctrl-C: the broker and the daemon stay "
	       "up\n");
	printf("  brokers %s\n", c->bootstraps);
	printf("  kcat -b %s -L\n", c->bootstraps);
	printf("  kcat -b %s -C -t %s -o -5 -e\n", c->bootstraps, DEMO_OUTPUT);
	printf("  driftcast produce --brokers %s --topic %s FILE.csv   "
	       "(more input: the daemon forecasts it)\n",
	       c->bootstraps, DEMO_INPUT);
	printf("  sqlite3 %s \"SELECT count(*) FROM forecasts;\"\n",
	       d->db_path);
	o->tick = NULL;
	int rc = dc_run(o, NULL);
	printf("\n== stopped; the broker is gone, the database stays: %s\n",
	       d->db_path);
	return rc;
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
	struct fc_dataset *ds = NULL;
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
			d.data = optarg;
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
	if (!d.data && find_data(&d, exe_dir, sizeof(exe_dir), &beside) < 0)
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

	printf("== 1. data and base model\n");
	if (fc_dataset_load(d.data, NULL, &ds, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast demo: %s\n", err);
		return DC_EXIT_USAGE;
	}
	printf("  %s: %d rows x %d channels; train %d / validation %d / "
	       "test %d rows\n",
	       d.data, ds->n_rows, ds->n_cols, ds->train_end,
	       ds->val_end - ds->train_end, ds->n_rows - ds->val_end);
	if (mkdir_p(d.workdir) < 0) {
		fprintf(stderr, "driftcast demo: cannot create %s: %s\n",
			d.workdir, strerror(errno));
		goto out;
	}
	if (ensure_model(&d, ds) < 0)
		goto out;

	printf("\n== 2. Kafka: librdkafka's mock cluster, in this process\n");
	if (cluster_start(&c) < 0)
		goto out;
	printf("  brokers %s; topics %s (4 partitions), %s (%d), %s (1)\n",
	       c.bootstraps, DEMO_INPUT, DEMO_OUTPUT, DEMO_OUTPUT_PARTITIONS,
	       DEMO_DEAD);
	if (!d.serve)
		printf("  (it lives as long as the demo; --serve keeps it up "
		       "afterwards for kcat)\n");

	printf("\n== 3. producing the test period\n");
	int first, last;
	if (produce_test_period(&d, &c, ds, &first, &last) < 0)
		goto out;
	printf("  %" PRIu64 " messages: rows %d..%d of %s, %d series, keyed "
	       "by series\n",
	       d.produced, first, last - 1, d.data, ds->n_cols);

	printf("\n== 4. the daemon loop (the code of `driftcast run`)\n");
	snprintf(d.db_path, sizeof(d.db_path), "%s/demo.db", d.workdir);
	const char *suffixes[] = {"", "-wal", "-shm", ".lock"};
	for (size_t i = 0; i < 4; i++) {
		char p[1300];
		snprintf(p, sizeof(p), "%s%s", d.db_path, suffixes[i]);
		unlink(p);
	}
	char s_brokers[600], s_db[1300], s_model[1300];
	snprintf(s_brokers, sizeof(s_brokers), "kafka.brokers=%s",
		 c.bootstraps);
	snprintf(s_db, sizeof(s_db), "storage.path=%s", d.db_path);
	snprintf(s_model, sizeof(s_model), "model.path=%s", d.model_path);
	const char *sets[] = {
	    s_brokers,
	    s_db,
	    s_model,
	    "kafka.input_topic=" DEMO_INPUT,
	    "kafka.output_topic=" DEMO_OUTPUT,
	    "kafka.deadletter_topic=" DEMO_DEAD,
	    "kafka.group=driftcast-demo",
	    "kafka.session_timeout_ms=6000",
	    "metrics.listen=off",
	    "log.level=warning",
	};
	struct dc_run_options o = {
	    .sets = sets,
	    .nsets = sizeof(sets) / sizeof(sets[0]),
	    .tick = demo_tick,
	    .user = &d,
	};
	struct dc_run_stats st;
	d.started_us = dc_now_monotonic_usec();
	rc = dc_run(&o, &st);
	double secs = (double)(dc_now_monotonic_usec() - d.started_us) / 1e6;
	if (rc != DC_EXIT_OK) {
		fprintf(stderr, "%sdriftcast demo: the daemon loop failed\n",
			d.tty ? "\n" : "");
		goto out;
	}
	print_progress(&d, &st, dc_now_monotonic_usec(), true);
	summary(&d, ds, &st, secs);
	/* dc_run also stops on Ctrl-C: serve only after a complete run */
	if (d.serve && st.messages + st.skipped_replay >= d.produced)
		rc = serve(&d, &c, &o);
out:
	cluster_stop(&c);
	fc_dataset_free(ds);
	return rc;
}
