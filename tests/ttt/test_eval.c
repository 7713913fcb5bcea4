/*
 * The causal evaluator (ttt/eval.c) and `driftcast eval`: the frozen arm
 * scores exactly the windows and errors of the offline evaluation
 * (fc_evaluate on the test split), the naive arms match a brute-force
 * computation, the JSON has EVAL.md's shape, --forecasts writes the
 * forecasts the report scored, and the [ttt] defaults of the settings
 * table are the engine's defaults.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/daemon.h"
#include "forecast/forecast.h"
#include "tests/testutil.h"
#include "tests/ttt/small_model.h"
#include "ttt/ttt.h"

#define L 32
#define H 8

static char csv[256], model[256];

/* 400 hourly rows, two channels with a daily cycle and a level shift. */
static void make_files(void)
{
	struct fc_config c;
	struct fc_model *m = NULL;
	char err[256];
	snprintf(csv, sizeof(csv), "/tmp/dc-eval-%d.csv", (int)getpid());
	snprintf(model, sizeof(model), "/tmp/dc-eval-%d.dcm", (int)getpid());
	FILE *f = fopen(csv, "w");
	cr_assert(f);
	fprintf(f, "date,a,b\n");
	for (int i = 0; i < 400; i++) {
		int d = 1 + i / 24, h = i % 24;
		float a = sinf((float)i * 0.2618f) + (i > 300 ? 1.5f : 0.0f);
		float b =
		    0.5f * cosf((float)i * 0.2618f) + 0.01f * (float)(i % 7);
		fprintf(f, "2021-01-%02d %02d:00:00,%.5f,%.5f\n", d, h,
			(double)a, (double)b);
	}
	fclose(f);
	tt_small_config(&c, L, H);
	cr_assert_eq(fc_model_new(&c, 3, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_model_save(m, model, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);
}

static void remove_files(void)
{
	unlink(csv);
	unlink(model);
}

TestSuite(eval, .init = make_files, .fini = remove_files);

Test(eval, frozen_arm_matches_offline_evaluation_and_naive_brute_force)
{
	struct fc_model *m = NULL;
	struct fc_dataset *d = NULL;
	struct fc_workspace *ws = NULL;
	struct ttt_params p;
	struct ttt_arm_result res[TTT_ARM_COUNT];
	char err[256];
	double mse, mae;
	cr_assert_eq(fc_model_load(model, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_dataset_load(csv, NULL, &d, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(fc_workspace_new(m, 4, &ws), 0);
	ttt_params_default(&p);
	p.every = 5;
	cr_assert_eq(ttt_eval_run(m, d, FC_SPLIT_TEST, &p,
				  (1u << TTT_ARM_COUNT) - 1, NULL, NULL, NULL,
				  res, err, sizeof(err)),
		     0, "%s", err);
	int nw = fc_dataset_split_windows(d, FC_SPLIT_TEST, L, H);
	cr_assert_gt(nw, 0);
	for (int a = 0; a < TTT_ARM_COUNT; a++) {
		cr_assert(res[a].ran);
		cr_assert_eq(res[a].windows, (long)nw * d->n_cols, "%s",
			     ttt_arm_name(a));
	}
	cr_assert_eq(fc_evaluate(m, NULL, ws, d, FC_SPLIT_TEST, &mse, &mae), 0);
	/* the engine forecasts as the stream comes, fc_evaluate in batches:
	 * other GEMM shapes, a few ulps per forecast (~1e-7 relative),
	 * averaged in double; 1e-6 relative still catches one window
	 * forecast wrongly among thousands */
	cr_assert(fabs(res[TTT_ARM_FROZEN].mse - mse) <= 1e-6 * mse,
		  "frozen %.9f vs offline %.9f", res[TTT_ARM_FROZEN].mse, mse);
	cr_assert(fabs(res[TTT_ARM_FROZEN].mae - mae) <= 1e-6 * mae);
	/* persistence by brute force */
	int start = fc_dataset_split_start(d, FC_SPLIT_TEST, L);
	double se = 0.0;
	long cnt = 0;
	for (int c = 0; c < d->n_cols; c++)
		for (int w = 0; w < nw; w++) {
			int r = start + w + L - 1;
			float last = d->scaled[(size_t)r * 2 + (size_t)c];
			for (int h = 1; h <= H; h++) {
				double diff =
				    (double)d->scaled[(size_t)(r + h) * 2 +
						      (size_t)c] -
				    (double)last;
				se += diff * diff;
				cnt++;
			}
		}
	cr_assert(fabs(res[TTT_ARM_PERSISTENCE].mse - se / (double)cnt) < 1e-9);
	/* hourly data: a 24-step season; the cycle is exactly 24 steps, so
	 * seasonal naive beats persistence */
	cr_assert_lt(res[TTT_ARM_SEASONAL].mse, res[TTT_ARM_PERSISTENCE].mse);
	/* the adapting arms adapted, and the frozen one did not */
	cr_assert_gt(res[TTT_ARM_TTT].stats.adaptations, 0);
	cr_assert_gt(res[TTT_ARM_RECON].stats.adaptations, 0);
	cr_assert_eq(res[TTT_ARM_FROZEN].stats.adaptations, 0);
	cr_assert_gt(res[TTT_ARM_TTT].stats.adapter_params, 0);
	/* the validation split replays the same way */
	cr_assert_eq(ttt_eval_run(m, d, FC_SPLIT_VAL, &p, 1u << TTT_ARM_FROZEN,
				  NULL, NULL, NULL, res, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(fc_evaluate(m, NULL, ws, d, FC_SPLIT_VAL, &mse, &mae), 0);
	cr_assert_eq(res[TTT_ARM_FROZEN].windows,
		     (long)fc_dataset_split_windows(d, FC_SPLIT_VAL, L, H) *
			 d->n_cols);
	cr_assert(fabs(res[TTT_ARM_FROZEN].mse - mse) <= 1e-6 * mse,
		  "val: frozen %.9f vs offline %.9f", res[TTT_ARM_FROZEN].mse,
		  mse);
	cr_assert_eq(res[TTT_ARM_TTT].ran, 0);
	/* and the training split (eval --split train): from row 0 */
	cr_assert_eq(ttt_eval_run(m, d, FC_SPLIT_TRAIN, &p,
				  1u << TTT_ARM_FROZEN, NULL, NULL, NULL, res,
				  err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(fc_evaluate(m, NULL, ws, d, FC_SPLIT_TRAIN, &mse, &mae),
		     0);
	cr_assert_eq(res[TTT_ARM_FROZEN].windows,
		     (long)fc_dataset_split_windows(d, FC_SPLIT_TRAIN, L, H) *
			 d->n_cols);
	cr_assert(fabs(res[TTT_ARM_FROZEN].mse - mse) <= 1e-6 * mse,
		  "train: frozen %.9f vs offline %.9f", res[TTT_ARM_FROZEN].mse,
		  mse);
	fc_workspace_free(ws);
	fc_dataset_free(d);
	fc_model_free(m);
}

Test(eval, cli_writes_eval_md_json)
{
	char out[300], *argv[20];
	struct run_result *r = calloc(1, sizeof(*r));
	json_error_t jerr;
	snprintf(out, sizeof(out), "%s.json", csv);
	int i = 0;
	argv[i++] = "driftcast";
	argv[i++] = "eval";
	argv[i++] = "--model";
	argv[i++] = model;
	argv[i++] = "--data";
	argv[i++] = csv;
	argv[i++] = "--json";
	argv[i++] = out;
	argv[i++] = "--arms";
	argv[i++] = "frozen,ttt,persistence";
	argv[i++] = "--set";
	argv[i++] = "ttt.every=5";
	argv[i++] = "--set";
	argv[i++] = "ttt.combine_weight=0.625";
	argv[i++] = "-q";
	argv[i] = NULL;
	cr_assert_eq(tu_run(r, argv), 0);
	cr_assert_eq(r->status, 0, "stderr: %s", r->err);
	cr_assert(strstr(r->out, "ttt "));
	json_t *o = json_load_file(out, 0, &jerr);
	cr_assert(o, "%s", jerr.text);
	cr_assert_eq(json_integer_value(json_object_get(o, "lookback")), L);
	cr_assert_eq(json_integer_value(json_object_get(o, "horizon")), H);
	/* the settings that shape the ttt arm's numbers, the published share
	 * among them (0.625: exact in binary) */
	json_t *tp = json_object_get(o, "ttt");
	cr_assert_eq(json_integer_value(json_object_get(tp, "every")), 5);
	cr_assert_eq(json_real_value(json_object_get(tp, "combine_weight")),
		     0.625);
	cr_assert(json_is_real(json_object_get(tp, "max_drift")));
	cr_assert(json_is_integer(json_object_get(tp, "fallback_rollbacks")));
	cr_assert(json_is_real(json_object_get(tp, "ph_lambda")));
	cr_assert(json_is_real(json_object_get(tp, "reset_alpha")));
	json_t *split = json_object_get(o, "split");
	cr_assert_eq(json_integer_value(json_object_get(split, "train")), 280);
	cr_assert_eq(json_integer_value(json_object_get(split, "test")), 80);
	cr_assert_eq(json_integer_value(json_object_get(split, "test_windows")),
		     80 + L - L - H + 1);
	json_t *arms = json_object_get(o, "arms");
	cr_assert(json_object_get(arms, "frozen"));
	cr_assert_null(json_object_get(arms, "ttt_recon"));
	json_t *hy = json_object_get(arms, "ttt");
	cr_assert(json_is_real(json_object_get(hy, "mse")));
	cr_assert(json_is_integer(json_object_get(hy, "accepted")));
	cr_assert(json_is_integer(json_object_get(hy, "adapter_params")));
	cr_assert(json_is_real(json_object_get(hy, "adapt_ms_mean")));
	json_decref(o);
	unlink(out);

	/* --db: audit rows and one version per accepted update */
	char db[300], wal[320], shm[320];
	snprintf(db, sizeof(db), "%s.db", csv);
	char *with_db[] = {"driftcast", "eval",	       "--model", model,
			   "--data",	csv,	       "--arms",  "ttt",
			   "--set",	"ttt.every=5", "--db",	  db,
			   "-q",	NULL};
	cr_assert_eq(tu_run(r, with_db), 0);
	cr_assert_eq(r->status, 0, "stderr: %s", r->err);
	sqlite3 *sq;
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_open(db, &sq), SQLITE_OK);
	cr_assert_eq(
	    sqlite3_prepare_v2(sq,
			       "SELECT (SELECT count(*) FROM versions), "
			       "(SELECT count(*) FROM audit)",
			       -1, &st, NULL),
	    SQLITE_OK);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	cr_assert_gt(sqlite3_column_int(st, 0), 0);
	cr_assert_gt(sqlite3_column_int(st, 1), sqlite3_column_int(st, 0) - 1);
	sqlite3_finalize(st);
	sqlite3_close(sq);
	snprintf(wal, sizeof(wal), "%s-wal", db);
	snprintf(shm, sizeof(shm), "%s-shm", db);
	unlink(db);
	unlink(wal);
	unlink(shm);

	/* usage and runtime errors */
	char *bad_arm[] = {"driftcast", "eval",		"--model",
			   model,	"--data",	csv,
			   "--arms",	"frozen,magic", NULL};
	cr_assert_eq(tu_run(r, bad_arm), 0);
	cr_assert_eq(r->status, 2);
	cr_assert(strstr(r->err, "unknown arm 'magic'"));
	char *no_model[] = {"driftcast", "eval", "--data", csv, NULL};
	cr_assert_eq(tu_run(r, no_model), 0);
	cr_assert_eq(r->status, 2);
	char *bad_set[] = {"driftcast", "eval",	 "--model",	model, "--data",
			   csv,		"--set", "ttt.lr=fast", NULL};
	cr_assert_eq(tu_run(r, bad_set), 0);
	cr_assert_eq(r->status, 2);
	cr_assert(strstr(r->err, "ttt.lr"));
	char *no_data[] = {"driftcast", "eval",	  "--model",
			   model,	"--data", "/nonexistent.csv",
			   NULL};
	cr_assert_eq(tu_run(r, no_data), 0);
	cr_assert_eq(r->status, 1);
	char *help[] = {"driftcast", "eval", "--help", NULL};
	cr_assert_eq(tu_run(r, help), 0);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, "Usage: driftcast eval"));
	free(r);
}

/* --forecasts: a CSV row per model arm, channel and window in data units;
 * the squared errors of its scored rows, recomputed from the data file,
 * are the report's MSE.  The tolerance: each value is printed with 9
 * significant digits (a float's exact round trip) after scaling back in
 * float (relative rounding <= 2^-24 per value), so the recomputed MSE
 * differs from the engine's by ~1e-7 relative; 1e-5 leaves room and still
 * catches a window shifted by one row or a wrong scaling (> 1e-2 here). */
Test(eval, cli_writes_every_forecast_as_csv)
{
	char out[300], rep[300], line[4096], err[256];
	struct run_result *r = calloc(1, sizeof(*r));
	snprintf(out, sizeof(out), "%s.forecasts.csv", csv);
	snprintf(rep, sizeof(rep), "%s.forecasts.json", csv);
	char *argv[] = {
	    "driftcast", "eval",	"--model",     model,
	    "--data",	 csv,		"--arms",      "frozen,ttt,persistence",
	    "--set",	 "ttt.every=5", "--forecasts", out,
	    "--json",	 rep,		"-q",	       NULL};
	cr_assert_eq(tu_run(r, argv), 0);
	cr_assert_eq(r->status, 0, "stderr: %s", r->err);
	struct fc_dataset *d = NULL;
	cr_assert_eq(fc_dataset_load(csv, NULL, &d, err, sizeof(err)), 0, "%s",
		     err);
	json_error_t jerr;
	json_t *o = json_load_file(rep, 0, &jerr);
	cr_assert(o, "%s", jerr.text);
	long windows = (long)json_integer_value(
	    json_object_get(json_object_get(o, "split"), "test_windows"));

	FILE *f = fopen(out, "r");
	cr_assert(f);
	cr_assert(fgets(line, sizeof(line), f));
	cr_assert_str_eq(line, "arm,column,row,time,scored,f1,f2,f3,f4,f5,f6,"
			       "f7,f8\n");
	double sum[2] = {0, 0};
	long scored[2] = {0, 0}, rows = 0;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *arm = strtok_r(line, ",", &save);
		char *col = strtok_r(NULL, ",", &save);
		int row = atoi(strtok_r(NULL, ",", &save));
		char *when = strtok_r(NULL, ",", &save);
		int sc = atoi(strtok_r(NULL, ",", &save));
		int a = !strcmp(arm, "frozen") ? 0
			: !strcmp(arm, "ttt")  ? 1
					       : -1;
		cr_assert_neq(a, -1, "arm %s", arm); /* none of persistence */
		int c = !strcmp(col, "a") ? 0 : 1;
		cr_assert(strchr(when, 'T') && strchr(when, 'Z'), "%s", when);
		cr_assert_geq(row, d->val_end - 1);
		rows++;
		for (int h = 1; h <= H; h++) {
			char *v = strtok_r(NULL, ",\n", &save);
			cr_assert(v, "row %d: %d values", row, h - 1);
			if (!sc)
				continue;
			cr_assert_lt(row + h, d->n_rows);
			double e = (strtod(v, NULL) -
				    (double)d->raw[(size_t)(row + h) * 2 + c]) /
				   (double)d->std[c];
			sum[a] += e * e;
		}
		cr_assert_null(strtok_r(NULL, ",\n", &save));
		scored[a] += sc;
	}
	fclose(f);
	json_t *arms = json_object_get(o, "arms");
	const char *names[2] = {"frozen", "ttt"};
	for (int a = 0; a < 2; a++) {
		cr_assert_eq(scored[a], windows * 2, "%s: %ld scored rows",
			     names[a], scored[a]);
		double mse = json_real_value(
		    json_object_get(json_object_get(arms, names[a]), "mse"));
		double got = sum[a] / (double)(scored[a] * H);
		cr_assert_lt(fabs(got / mse - 1), 1e-5, "%s: %.9g vs %.9g",
			     names[a], got, mse);
	}
	cr_assert_gt(rows, scored[0] + scored[1]); /* the unscored ends too */
	json_decref(o);
	fc_dataset_free(d);
	unlink(out);
	unlink(rep);

	/* a file that cannot be made: exit 1, nothing left behind */
	char *bad[] = {"driftcast",   "eval",
		       "--model",     model,
		       "--data",      csv,
		       "--arms",      "frozen",
		       "--forecasts", "/nonexistent-dir/f.csv",
		       "-q",	      NULL};
	cr_assert_eq(tu_run(r, bad), 0);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "/nonexistent-dir/f.csv"), "%s", r->err);
	free(r);
}

Test(eval, settings_table_defaults_are_the_engine_defaults)
{
	struct cfg c;
	struct ttt_params a, b;
	char err[256];
	cfg_defaults(&c);
	cr_assert_eq(dc_ttt_params_from_cfg(&a, &c, err, sizeof(err)), 0, "%s",
		     err);
	ttt_params_default(&b);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0,
		     "config/config.c [ttt] defaults differ from "
		     "ttt_params_default()");
}
