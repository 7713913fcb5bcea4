/*
 * `driftcast eval`: replay the test split (or, with --split val, the
 * validation split) of a CSV through the TTT engine the daemon uses
 * (ttt_eval_run -> ttt_engine_observe), causally, as docs/EVAL.md
 * says, and report frozen vs adapted vs naive accuracy:
 * a table on stdout and, with --json, the object docs/EVAL.md describes;
 * with --forecasts, every forecast of the model arms as CSV.
 * The [ttt] settings map onto the engine's parameters through
 * dc_ttt_params_from_cfg() (daemon/ttt_cfg.c), as for `driftcast run`.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/record.h"
#include "daemon/ttt_cfg.h"
#include "forecast/forecast.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

/* ---- the command -------------------------------------------------------- */

static void eval_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast eval --model MODEL --data FILE [options]\n\n"
	    "Replay the test split of FILE (ETT* files 60/20/20 of the rows,\n"
	    "others 70/10/20, z-scored with the train rows' statistics)\n"
	    "through the online TTT engine, causally: every window is\n"
	    "forecast and scored before the engine sees any value of its\n"
	    "horizon.  Prints MSE and MAE per arm; --json writes the report.\n"
	    "The protocol, the arms and the report: docs/EVAL.md.\n\n"
	    "Options:\n"
	    "  --model MODEL         model file from `driftcast train`\n"
	    "  --data FILE           .csv or .csv.gz (first column timestamp)\n"
	    "  --json OUT            write the JSON report to OUT\n"
	    "  --forecasts OUT       write every forecast of the model arms\n"
	    "                        (frozen and the ttt arms) to OUT, a CSV\n"
	    "                        row per arm, channel and window, in the\n"
	    "                        data's units (docs/EVAL.md)\n"
	    "  --arms LIST           comma list of frozen, ttt (what `run`\n"
	    "                        runs), ttt_recon, ttt_supervised,\n"
	    "                        ttt_nocombine, persistence,\n"
	    "                        seasonal_naive (default all)\n"
	    "  --columns LIST|all    channels (default: all numeric)\n"
	    "  --split test|val|train  replay the test split (default), the\n"
	    "                        validation split, to tune settings, or\n"
	    "                        the training split (the model fits it:\n"
	    "                        adaptation should cost nothing there)\n"
	    "  --db FILE             also write the adapting arms' audit "
	    "events\n"
	    "                        and adapter versions to this SQLite "
	    "file\n"
	    "                        (series \"ARM/DATASET/COLUMN\"; no "
	    "forecast rows)\n"
	    "  --config FILE         settings file ([ttt]), as `run` reads "
	    "it\n"
	    "  -s, --set KEY=VALUE   override one setting, e.g. "
	    "ttt.lr=1e-3\n"
	    "  -q, --quiet           no progress output\n"
	    "  -h, --help            show this help\n\n"
	    "Exit status: 0 success, 1 runtime failure, 2 usage or "
	    "configuration error.\n");
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct progress {
	int tty, quiet;
	double last;
	double t0;
	/* --db */
	struct store *store;
	long stored, store_errors;
	char store_err[512];
	/* --forecasts: d's rows and channels, the split's end */
	FILE *fc;
	const struct fc_dataset *d;
	int H, end;
	long fc_rows;
};

/* --forecasts: the header, and one row per forecast event of a model
 * arm: the window whose lookback ends at row (ev->ts, the evaluator's
 * time) of channel ev->tag, in data units (scaled back with the train
 * statistics), scored when its whole horizon lies in the split. */
static void forecasts_header(FILE *f, int H)
{
	fputs("arm,column,row,time,scored", f);
	for (int h = 1; h <= H; h++)
		fprintf(f, ",f%d", h);
	fputc('\n', f);
}

static void forecasts_row(struct progress *s, int arm,
			  const struct ttt_event *ev)
{
	const struct fc_dataset *d = s->d;
	int c = (int)ev->tag;
	int64_t row = ev->ts;
	char when[32];
	if (c < 0 || c >= d->n_cols || row < 0 || row >= d->n_rows)
		return; /* not a window of d: cannot happen */
	if (d->step_seconds > 0) {
		time_t t = (time_t)d->timestamps[row];
		struct tm tm;
		if (!gmtime_r(&t, &tm) ||
		    !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
			snprintf(when, sizeof(when), "%.0f",
				 d->timestamps[row]);
	} else {
		snprintf(when, sizeof(when), "%" PRId64, row);
	}
	fprintf(s->fc, "%s,%s,%" PRId64 ",%s,%d", ttt_arm_name(arm),
		d->col_names[c], row, when, ttt_eval_scored(row, s->H, s->end));
	for (int h = 0; h < ev->horizon; h++)
		fprintf(s->fc, ",%.9g",
			(double)(ev->forecast[h] * d->std[c] + d->mean[c]));
	fputc('\n', s->fc);
	s->fc_rows++;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Row `row` of d as series time in ns: its time in the file (whole
 * seconds kept exact), or row seconds after the epoch when the file has
 * no time column. */
static int64_t row_ns(const struct fc_dataset *d, int64_t row)
{
	if (d->step_seconds > 0 && row >= 0 && row < d->n_rows) {
		double t = d->timestamps[row], whole = floor(t);
		return (int64_t)whole * 1000000000 +
		       (int64_t)llround((t - whole) * 1e9);
	}
	return row * 1000000000;
}

/* Store every audit event of the adapting arms (not forecasts: one row
 * per window per arm would dwarf the rest), one transaction per batch;
 * forecasts go to --forecasts. */
static void on_tap(void *user, int arm, const struct ttt_event *ev)
{
	struct progress *s = user;
	char key[STORE_KEY_MAX];
	if (ev->type == TTT_EV_FORECAST) {
		if (s->fc)
			forecasts_row(s, arm, ev);
		return;
	}
	if (!s->store)
		return;
	snprintf(key, sizeof(key), "%s/%s", ttt_arm_name(arm), ev->series);
	/* the evaluator's time is the row index; stored series time is ns */
	struct ttt_event e = *ev;
	e.ts = row_ns(s->d, ev->ts);
	if (ev->data_from || ev->data_until) { /* 0, 0: none */
		e.data_from = row_ns(s->d, ev->data_from);
		e.data_until = row_ns(s->d, ev->data_until);
	}
	if (dc_record_event(s->store, &e, key, s->store_err,
			    sizeof(s->store_err)) < 0)
		s->store_errors++;
	else
		s->stored++;
	if (store_batch_due(s->store, mono_ms()) &&
	    store_batch_commit(s->store, s->store_err, sizeof(s->store_err)) <
		0)
		s->store_errors++;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_progress(void *user, int arm, long done, long total)
{
	struct progress *s = user;
	if (interrupted)
		return 1;
	if (s->quiet || !s->tty)
		return 0;
	double now = mono();
	if (now - s->last < 0.2 && done != total)
		return 0;
	s->last = now;
	int width = 30, k = total ? (int)((double)width * done / total) : 0;
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < k ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r\033[K%-15s [%s] %ld/%ld", ttt_arm_name(arm), bar,
		done, total);
	return 0;
}

static int parse_arms(const char *s, unsigned *ret)
{
	unsigned mask = 0;
	char *copy = strdup(s), *save = NULL;
	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int arm;
		if (ttt_arm_parse(t, &arm) < 0) {
			fprintf(stderr,
				"driftcast eval: unknown arm '%s' (allowed: "
				"frozen, ttt, ttt_recon, ttt_supervised, "
				"ttt_nocombine, persistence, seasonal_naive)\n",
				t);
			free(copy);
			return -EINVAL;
		}
		mask |= 1u << arm;
	}
	free(copy);
	if (!mask) {
		fprintf(stderr, "driftcast eval: --arms is empty\n");
		return -EINVAL;
	}
	*ret = mask;
	return 0;
}

static const char *drift_name(int d)
{
	return d == TTT_DRIFT_PH      ? "page_hinkley"
	       : d == TTT_DRIFT_ADWIN ? "adwin"
				      : "none";
}

static json_t *params_json(const struct ttt_params *p, const char *families)
{
	static const char *const scopes[] = {"series", "group", "global"};
	static const char *const resets[] = {"rollback", "soft", "hard"};
	json_t *o = json_object();
	json_object_set_new(o, "every", json_integer(p->every));
	json_object_set_new(o, "w_recon", json_real((double)p->w_recon));
	json_object_set_new(o, "w_matured", json_real((double)p->w_matured));
	json_object_set_new(o, "w_anchor", json_real((double)p->w_anchor));
	json_object_set_new(o, "lr", json_real((double)p->lr));
	json_object_set_new(o, "steps", json_integer(p->steps));
	json_object_set_new(o, "clip", json_real((double)p->clip));
	json_object_set_new(o, "max_update", json_real((double)p->max_update));
	json_object_set_new(o, "max_drift", json_real((double)p->max_drift));
	json_object_set_new(o, "families", json_string(families));
	json_object_set_new(o, "recon_windows", json_integer(p->recon_windows));
	json_object_set_new(o, "step_windows", json_integer(p->step_windows));
	json_object_set_new(o, "guard_windows", json_integer(p->guard_windows));
	json_object_set_new(o, "window_stride", json_integer(p->window_stride));
	json_object_set_new(o, "guard", json_boolean(p->guard));
	json_object_set_new(o, "guard_tol", json_real((double)p->guard_tol));
	json_object_set_new(o, "drift", json_string(drift_name(p->drift)));
	json_object_set_new(o, "drift_every", json_integer(p->drift_every));
	json_object_set_new(o, "drift_min_gap", json_integer(p->drift_min_gap));
	json_object_set_new(o, "ph_delta", json_real((double)p->ph_delta));
	json_object_set_new(o, "ph_lambda", json_real((double)p->ph_lambda));
	json_object_set_new(o, "adwin_delta",
			    json_real((double)p->adwin_delta));
	json_object_set_new(o, "shadow_every", json_integer(p->shadow_every));
	json_object_set_new(o, "rollback_margin",
			    json_real((double)p->rollback_margin));
	json_object_set_new(o, "rollback_window",
			    json_integer(p->rollback_window));
	json_object_set_new(o, "reset", json_string(resets[p->reset_policy]));
	json_object_set_new(o, "reset_alpha",
			    json_real((double)p->reset_alpha));
	json_object_set_new(o, "scope", json_string(scopes[p->scope]));
	json_object_set_new(o, "ephemeral", json_boolean(p->ephemeral));
	/* the share published by the ttt arm (ttt_nocombine publishes 1) */
	json_object_set_new(o, "combine_weight",
			    json_real((double)p->combine_weight));
	json_object_set_new(o, "average_rate",
			    json_real((double)p->average_rate));
	json_object_set_new(o, "fallback_rollbacks",
			    json_integer(p->fallback_rollbacks));
	json_object_set_new(o, "fallback_within",
			    json_integer(p->fallback_within));
	json_object_set_new(o, "fallback_pause",
			    json_integer(p->fallback_pause));
	json_object_set_new(o, "max_gap", json_integer(p->max_gap));
	json_object_set_new(o, "level_steps", json_integer(p->level_steps));
	json_object_set_new(o, "level_forget",
			    json_real((double)p->level_forget));
	json_object_set_new(o, "level_shrink",
			    json_real((double)p->level_shrink));
	json_object_set_new(o, "level_share",
			    json_real((double)p->level_share));
	json_object_set_new(o, "recal_steps", json_integer(p->recal_steps));
	json_object_set_new(o, "recal_forget",
			    json_real((double)p->recal_forget));
	json_object_set_new(o, "recal_ridge",
			    json_real((double)p->recal_ridge));
	json_object_set_new(o, "recal_share",
			    json_real((double)p->recal_share));
	json_object_set_new(o, "recal_judge",
			    json_real((double)p->recal_judge));
	json_object_set_new(o, "recal_margin",
			    json_real((double)p->recal_margin));
	json_object_set_new(o, "recal_later_judge",
			    json_real((double)p->recal_later));
	json_object_set_new(o, "seed", json_integer((json_int_t)p->seed));
	return o;
}

static json_t *arm_json(int arm, const struct ttt_arm_result *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "mse", json_real(r->mse));
	json_object_set_new(o, "mae", json_real(r->mae));
	json_object_set_new(o, "windows", json_integer(r->windows));
	json_object_set_new(o, "seconds", json_real(r->seconds));
	if (arm >= TTT_ARM_TTT && arm <= TTT_ARM_NOCOMBINE) {
		const struct ttt_stats *s = &r->stats;
		json_object_set_new(o, "accepted",
				    json_integer((json_int_t)s->accepted));
		json_object_set_new(o, "rejected",
				    json_integer((json_int_t)s->rejected));
		json_object_set_new(o, "rollbacks",
				    json_integer((json_int_t)s->rollbacks));
		json_object_set_new(o, "resets",
				    json_integer((json_int_t)s->resets));
		json_object_set_new(o, "drifts",
				    json_integer((json_int_t)s->drifts));
		json_object_set_new(
		    o, "adapter_params",
		    json_integer((json_int_t)s->adapter_params));
		json_object_set_new(o, "adapt_ms_mean",
				    json_real(r->adapt_ms_mean));
		json_object_set_new(
		    o, "bytes_per_series",
		    json_integer((json_int_t)(s->series ? (s->bytes_series +
							   s->bytes_adapters) /
							      s->series
							: 0)));
	}
	return o;
}

static const char *split_name(enum fc_split split)
{
	return split == FC_SPLIT_VAL	 ? "val"
	       : split == FC_SPLIT_TRAIN ? "train"
					 : "test";
}

static int write_json(const char *path, enum fc_split split,
		      const struct fc_dataset *d, const struct fc_config *mc,
		      const struct ttt_params *p, const char *families,
		      const struct ttt_arm_result *res)
{
	json_t *o = json_object(), *arms = json_object();
	json_object_set_new(o, "dataset", json_string(d->name));
	json_object_set_new(o, "lookback", json_integer(mc->lookback));
	json_object_set_new(o, "horizon", json_integer(mc->horizon));
	json_object_set_new(o, "backbone",
			    json_string(fc_backbone_name(mc->backbone)));
	json_object_set_new(
	    o, "split",
	    json_pack("{s:i, s:i, s:i, s:i, s:i}", "train", d->train_end, "val",
		      d->val_end - d->train_end, "test", d->n_rows - d->val_end,
		      "test_windows",
		      fc_dataset_split_windows(d, FC_SPLIT_TEST, mc->lookback,
					       mc->horizon),
		      "channels", d->n_cols));
	json_object_set_new(o, "replayed_split",
			    json_string(split_name(split)));
	json_object_set_new(o, "season_period",
			    json_integer(ttt_season_period(d->step_seconds)));
	json_object_set_new(o, "ttt", params_json(p, families));
	for (int a = 0; a < TTT_ARM_COUNT; a++)
		if (res[a].ran)
			json_object_set_new(arms, ttt_arm_name(a),
					    arm_json(a, &res[a]));
	json_object_set_new(o, "arms", arms);
	int r = json_dump_file(o, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return r == 0 ? 0 : -EIO;
}

int dc_cmd_eval(int argc, char **argv)
{
	enum {
		O_MODEL = 256,
		O_DATA,
		O_JSON,
		O_ARMS,
		O_COLUMNS,
		O_CONFIG,
		O_DB,
		O_SPLIT,
		O_FORECASTS,
	};
	static const struct option longopts[] = {
	    {"model", required_argument, NULL, O_MODEL},
	    {"data", required_argument, NULL, O_DATA},
	    {"json", required_argument, NULL, O_JSON},
	    {"arms", required_argument, NULL, O_ARMS},
	    {"columns", required_argument, NULL, O_COLUMNS},
	    {"config", required_argument, NULL, O_CONFIG},
	    {"db", required_argument, NULL, O_DB},
	    {"split", required_argument, NULL, O_SPLIT},
	    {"forecasts", required_argument, NULL, O_FORECASTS},
	    {"set", required_argument, NULL, 's'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dc_cfg_args ca = {0};
	const char *model_path = NULL, *data = NULL, *json = NULL;
	const char *columns = NULL, *db = NULL, *forecasts = NULL;
	unsigned arms = (1u << TTT_ARM_COUNT) - 1;
	int quiet = 0, c, code;
	enum fc_split split = FC_SPLIT_TEST;
	optind = 1;
	while ((c = dc_getopt(argc, argv, "s:qh", longopts, eval_usage,
			      &code)) > 0) {
		switch (c) {
		case O_MODEL:
			model_path = optarg;
			break;
		case O_DATA:
			data = optarg;
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_ARMS:
			if (parse_arms(optarg, &arms) < 0)
				return DC_EXIT_USAGE;
			break;
		case O_COLUMNS:
			columns = optarg;
			break;
		case O_CONFIG:
			ca.file = optarg;
			break;
		case O_DB:
			db = optarg;
			break;
		case O_FORECASTS:
			forecasts = optarg;
			break;
		case O_SPLIT:
			if (!strcmp(optarg, "test")) {
				split = FC_SPLIT_TEST;
			} else if (!strcmp(optarg, "val")) {
				split = FC_SPLIT_VAL;
			} else if (!strcmp(optarg, "train")) {
				split = FC_SPLIT_TRAIN;
			} else {
				fprintf(stderr, "driftcast eval: --split must "
						"be test, val or train\n");
				return DC_EXIT_USAGE;
			}
			break;
		case 's':
			if (dc_cfg_args_add_set(&ca, optarg) < 0)
				return DC_EXIT_USAGE;
			break;
		case 'q':
			quiet = 1;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("eval", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!model_path || !data) {
		fprintf(stderr, "driftcast eval: --model and --data are "
				"required (see --help)\n");
		return DC_EXIT_USAGE;
	}
	struct cfg cfg;
	struct cfg_sources src;
	int r = dc_cfg_args_load(&ca, &cfg, &src);
	if (r != DC_EXIT_OK)
		return r;
	struct ttt_params tp;
	char err[1024];
	if (dc_ttt_params_from_cfg(&tp, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast eval: %s\n", err);
		return DC_EXIT_USAGE;
	}

	struct fc_model *m = NULL;
	struct fc_dataset *d = NULL;
	struct ttt_arm_result res[TTT_ARM_COUNT];
	int rc;
	/* an output that cannot be written, or would overwrite an input, is
	 * said before the run, not after it */
	const struct dc_file_arg files[] = {
	    {"--model", model_path, false},
	    {"--data", data, false},
	    {"--json", json, true},
	    {"--forecasts", forecasts, true},
	    {"--db", db, true},
	};
	if ((rc = dc_check_files("eval", files, 5)) != DC_EXIT_OK)
		return rc;
	if (fc_model_load(model_path, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast eval: %s\n", err);
		return DC_EXIT_FAILURE;
	}
	if ((rc = fc_dataset_load(data, columns, &d, err, sizeof(err))) < 0) {
		fprintf(stderr, "driftcast eval: %s\n", err);
		fc_model_free(m);
		/* as train and produce: a file that is not there is a
		 * runtime failure, one it cannot use (or a bad --columns) a
		 * usage error */
		return rc == -ENOENT || rc == -EACCES ? DC_EXIT_FAILURE
						      : DC_EXIT_USAGE;
	}
	dc_note_skipped("eval", data, d);
	const struct fc_config *mc = fc_model_config(m);
	const float *smean, *sstd;
	const char *const *snames;
	int ns = fc_model_scaler(m, &smean, &sstd, &snames);
	if (ns > 0 && ns != d->n_cols && !quiet)
		fprintf(stderr,
			"driftcast eval: note: the model was trained on %d "
			"channels, %d %s of %s\n",
			ns, d->n_cols,
			columns ? "selected by --columns" : "are numeric",
			data);

	/* One series at a time at batch 1: BLAS threads only add overhead
	 * (and spin on a shared machine). */
	fc_blas_set_threads(1);
	struct progress ps = {.tty = isatty(2), .quiet = quiet, .t0 = mono()};
	if (db && store_open(db, NULL, &ps.store, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast eval: %s\n", err);
		fc_dataset_free(d);
		fc_model_free(m);
		return DC_EXIT_FAILURE;
	}
	ps.d = d; /* rows to times (--db), forecasts' rows (--forecasts) */
	/* --forecasts: written to OUT.tmp, renamed when complete */
	char fc_tmp[4096];
	if (forecasts) {
		if ((size_t)snprintf(fc_tmp, sizeof(fc_tmp), "%s.tmp",
				     forecasts) >= sizeof(fc_tmp))
			errno = ENAMETOOLONG;
		else
			ps.fc = fopen(fc_tmp, "w");
		if (!ps.fc) {
			fprintf(stderr, "driftcast eval: %s.tmp: %s\n",
				forecasts, strerror(errno));
			store_free(ps.store);
			fc_dataset_free(d);
			fc_model_free(m);
			return DC_EXIT_FAILURE;
		}
		ps.H = mc->horizon;
		ps.end = ttt_eval_split_end(d, split);
		forecasts_header(ps.fc, mc->horizon);
	}
	struct sigaction sa = {0}, old;
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old);
	rc = ttt_eval_run(m, d, split, &tp, arms, on_progress, on_tap, &ps, res,
			  err, sizeof(err));
	if (ps.store) {
		if (store_batch_commit(ps.store, ps.store_err,
				       sizeof(ps.store_err)) < 0)
			ps.store_errors++;
		if (ps.store_errors)
			fprintf(stderr,
				"driftcast eval: %s: %ld event(s) not stored, "
				"last: %s\n",
				db, ps.store_errors, ps.store_err);
		else if (!quiet)
			fprintf(stderr,
				"driftcast eval: %ld events stored in %s\n",
				ps.stored, db);
		store_free(ps.store);
		if (ps.store_errors && rc == 0) {
			snprintf(err, sizeof(err), "storage failed");
			rc = -EIO;
		}
	}
	if (ps.fc) {
		int bad = ferror(ps.fc), e = errno;
		if (fclose(ps.fc) != 0 && !bad) {
			bad = 1;
			e = errno;
		}
		if (!bad && rc == 0 && rename(fc_tmp, forecasts) < 0) {
			bad = 1;
			e = errno;
		}
		if (bad && rc == 0) {
			snprintf(err, sizeof(err), "cannot write %s: %s",
				 forecasts, strerror(e));
			rc = -EIO;
		}
		if (rc < 0)
			unlink(fc_tmp); /* no partial file */
		else if (!quiet)
			fprintf(stderr,
				"driftcast eval: %ld forecasts written to %s\n",
				ps.fc_rows, forecasts);
	}
	sigaction(SIGINT, &old, NULL);
	if (ps.tty && !quiet)
		fprintf(stderr, "\r\033[K");
	if (rc < 0) {
		fprintf(stderr, "driftcast eval: %s\n",
			rc == -ECANCELED ? "interrupted" : err);
		fc_dataset_free(d);
		fc_model_free(m);
		return DC_EXIT_FAILURE;
	}

	printf("%s  L=%d H=%d %s  %s windows %d x %d channels\n", d->name,
	       mc->lookback, mc->horizon, fc_backbone_name(mc->backbone),
	       split_name(split),
	       fc_dataset_split_windows(d, split, mc->lookback, mc->horizon),
	       d->n_cols);
	printf("%-15s %9s %9s %8s %8s %6s %6s %9s %8s\n", "arm", "mse", "mae",
	       "accepted", "rejected", "rollbk", "resets", "adapt_ms",
	       "seconds");
	for (int a = 0; a < TTT_ARM_COUNT; a++) {
		if (!res[a].ran)
			continue;
		if (a >= TTT_ARM_TTT && a <= TTT_ARM_NOCOMBINE)
			printf("%-15s %9.5f %9.5f %8llu %8llu %6llu %6llu "
			       "%9.3f %8.1f\n",
			       ttt_arm_name(a), res[a].mse, res[a].mae,
			       (unsigned long long)res[a].stats.accepted,
			       (unsigned long long)res[a].stats.rejected,
			       (unsigned long long)res[a].stats.rollbacks,
			       (unsigned long long)res[a].stats.resets,
			       res[a].adapt_ms_mean, res[a].seconds);
		else
			printf("%-15s %9.5f %9.5f %8s %8s %6s %6s %9s %8.1f\n",
			       ttt_arm_name(a), res[a].mse, res[a].mae, "-",
			       "-", "-", "-", "-", res[a].seconds);
	}
	rc = DC_EXIT_OK;
	errno = 0;
	if (json &&
	    write_json(json, split, d, mc, &tp, cfg.ttt.families, res) < 0) {
		fprintf(stderr, "driftcast eval: cannot write %s%s%s\n", json,
			errno ? ": " : "", errno ? strerror(errno) : "");
		rc = DC_EXIT_FAILURE;
	}
	fc_dataset_free(d);
	fc_model_free(m);
	return rc;
}
