/*
 * `driftcast train` end to end on a small generated CSV: usage errors exit
 * 2, a missing file exits 1, a short run writes a loadable model (with the
 * scaler) and a JSON report, and two runs with the same seed write
 * byte-identical model files.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/forecast.h"
#include "tests/testutil.h"

static char csv[64], model[64], model2[64], report[64];

static void setup(void)
{
	int pid = (int)getpid();
	snprintf(csv, sizeof(csv), "/tmp/dc-train-%d.csv", pid);
	snprintf(model, sizeof(model), "/tmp/dc-train-%d.dcm", pid);
	snprintf(model2, sizeof(model2), "/tmp/dc-train-%d-2.dcm", pid);
	snprintf(report, sizeof(report), "/tmp/dc-train-%d.json", pid);
	FILE *f = fopen(csv, "w");
	cr_assert(f);
	fprintf(f, "date,load,temp\n");
	for (int t = 0; t < 700; t++)
		fprintf(f, "2020-01-%02d %02d:00:00,%.4f,%.4f\n", 1 + t / 24,
			t % 24, 10.0 + 3.0 * sin(t * 0.2618),
			20.0 + 0.01 * t + cos(t * 0.1));
	fclose(f);
}

static void teardown(void)
{
	unlink(csv);
	unlink(model);
	unlink(model2);
	unlink(report);
}

TestSuite(train_cmd, .init = setup, .fini = teardown, .timeout = 120);

Test(train_cmd, help_and_usage_errors)
{
	struct run_result *r = malloc(sizeof(*r));
	cr_assert(r);
	char *help[] = {"driftcast", "train", "--help", NULL};
	tu_run(r, help);
	cr_assert_eq(r->status, 0);
	cr_assert(strstr(r->out, "Usage: driftcast train"));
	char *none[] = {"driftcast", "train", NULL};
	tu_run(r, none);
	cr_assert_eq(r->status, 2);
	cr_assert(strstr(r->err, "--data"), "%s", r->err);
	char *bad[] = {"driftcast", "train",	  "--data", csv, "--out",
		       model,	    "--backbone", "lstm",   NULL};
	tu_run(r, bad);
	cr_assert_eq(r->status, 2);
	cr_assert(strstr(r->err, "lstm"), "%s", r->err);
	char *badh[] = {"driftcast", "train",	  "--data", csv, "--out",
			model,	     "--horizon", "0",	    NULL};
	tu_run(r, badh);
	cr_assert_eq(r->status, 2);
	char *missing[] = {"driftcast", "train", "--data", "/nonexistent.csv",
			   "--out",	model,	 NULL};
	tu_run(r, missing);
	cr_assert_eq(r->status, 1, "%s", r->err);
	free(r);
}

Test(train_cmd, trains_saves_reports_deterministically)
{
	struct run_result *r = malloc(sizeof(*r));
	cr_assert(r);
	char *args[] = {"driftcast",  "train",	  "--data",
			csv,	      "--out",	  model,
			"--lookback", "48",	  "--horizon",
			"12",	      "--epochs", "2",
			"--seed",     "5",	  "--json",
			report,	      "--set",	  "model.width=16",
			NULL};
	tu_run(r, args);
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(strstr(r->out, "test mse"), "%s", r->out);
	cr_assert(strstr(r->err, "epoch 2/2"), "plain progress lines: %s",
		  r->err);
	cr_assert_null(strstr(r->err, "\r"), "a bar without a TTY");

	struct fc_model *m = NULL;
	char err[256];
	cr_assert_eq(fc_model_load(model, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_model_config(m)->lookback, 48);
	cr_assert_eq(fc_model_config(m)->d_model, 16);
	const char *const *names;
	cr_assert_eq(fc_model_scaler(m, NULL, NULL, &names), 2);
	cr_assert_str_eq(names[1], "temp");
	fc_model_free(m);

	json_error_t je;
	json_t *j = json_load_file(report, 0, &je);
	cr_assert(j, "%s", je.text);
	cr_assert_eq(json_integer_value(json_object_get(j, "epochs_run")), 2);
	cr_assert_eq(json_array_size(json_object_get(j, "curve")), 2);
	double tm =
	    json_real_value(json_object_get(json_object_get(j, "test"), "mse"));
	cr_assert(tm > 0 && tm < 10, "test mse %g", tm);
	cr_assert_eq(json_integer_value(json_object_get(j, "threads")), 1);
	json_decref(j);

	args[5] = model2;
	args[14] = "-q"; /* same run without --json, quietly */
	args[15] = "-q";
	tu_run(r, args);
	cr_assert_eq(r->status, 0, "%s", r->err);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", model, model2);
	cr_assert_eq(system(cmd), 0, "same seed, different model files");
	free(r);
}

/* train.lr_schedule=step halves the rate every epoch (the JSON curve says
 * so), train.ema validates the weights' average next to them and saves the
 * better, and both stay deterministic for a seed; out-of-range values are
 * usage errors. */
Test(train_cmd, lr_schedule_and_ema)
{
	struct run_result *r = malloc(sizeof(*r));
	cr_assert(r);
	char *args[] = {"driftcast",  "train",
			"--data",     csv,
			"--out",      model,
			"--lookback", "48",
			"--horizon",  "12",
			"--epochs",   "3",
			"--json",     report,
			"--set",      "model.width=16",
			"--set",      "train.lr_schedule=step",
			"--set",      "train.ema=0.9",
			"--set",      "train.patience=5",
			NULL};
	tu_run(r, args);
	cr_assert_eq(r->status, 0, "%s", r->err);
	json_error_t je;
	json_t *j = json_load_file(report, 0, &je);
	cr_assert(j, "%s", je.text);
	json_t *curve = json_object_get(j, "curve");
	cr_assert_eq(json_array_size(curve), 3);
	for (int e = 0; e < 3; e++) {
		json_t *c = json_array_get(curve, (size_t)e);
		double lr = json_real_value(json_object_get(c, "lr"));
		double vm = json_real_value(json_object_get(c, "val_mse"));
		double ve = json_real_value(json_object_get(c, "val_mse_ema"));
		cr_assert_float_eq(lr, 1e-3 / (1 << e), 1e-9, "epoch %d lr %g",
				   e + 1, lr);
		cr_assert(isfinite(vm) && vm > 0, "epoch %d val %g", e + 1, vm);
		cr_assert(isfinite(ve) && ve > 0, "epoch %d average %g", e + 1,
			  ve);
	}
	json_t *tr = json_object_get(j, "train");
	cr_assert_str_eq(json_string_value(json_object_get(tr, "lr_schedule")),
			 "step");
	cr_assert_float_eq(json_real_value(json_object_get(tr, "ema")), 0.9,
			   1e-6);
	/* the saved model is the better of the best epoch's two */
	int best = (int)json_integer_value(json_object_get(j, "best_epoch"));
	json_t *cb = json_array_get(curve, (size_t)best - 1);
	double vraw = json_real_value(json_object_get(cb, "val_mse"));
	double vavg = json_real_value(json_object_get(cb, "val_mse_ema"));
	double vbest = vavg < vraw ? vavg : vraw;
	cr_assert_str_eq(json_string_value(json_object_get(j, "best_weights")),
			 vavg < vraw ? "average" : "raw");
	double vsaved =
	    json_real_value(json_object_get(json_object_get(j, "val"), "mse"));
	/* the same weights evaluated again: only the order of the double
	 * accumulation of the squared errors may differ */
	cr_assert_float_eq(vsaved, vbest, 1e-5 * vbest, "%g vs %g", vsaved,
			   vbest);
	json_decref(j);

	args[5] = model2;
	tu_run(r, args);
	cr_assert_eq(r->status, 0, "%s", r->err);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "cmp -s %s %s", model, model2);
	cr_assert_eq(system(cmd), 0, "same seed, different model files");

	args[19] = "train.ema=1";
	tu_run(r, args);
	cr_assert_eq(r->status, 2, "%s", r->err);
	args[19] = "train.ema=0.9";
	args[17] = "train.lr_schedule=linear";
	tu_run(r, args);
	cr_assert_eq(r->status, 2, "%s", r->err);
	free(r);
}
