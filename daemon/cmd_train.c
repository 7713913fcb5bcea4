/*
 * `driftcast train`: pretrain a base model offline on a CSV, split and
 * scaled as docs/EVAL.md says, and write the model file (with the
 * scaler).  Settings come from [model] and [train] (config file and --set),
 * the flags below override them.  A progress bar on a TTY, plain lines
 * otherwise; --json writes a report with the per-epoch curve and the
 * frozen validation and test accuracy of the returned (best) model.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/forecast.h"

static void train_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast train --data FILE --out MODEL [options]\n\n"
	    "Pretrain a base model on FILE (.csv or .csv.gz) with the joint\n"
	    "forecast + masked-reconstruction loss and early stopping on the\n"
	    "validation forecast MSE.  Split: ETT* files 60/20/20 of the\n"
	    "rows, others 70/10/20; every channel z-scored with its train\n"
	    "rows' mean and std, which are stored in MODEL (docs/EVAL.md).\n"
	    "After every epoch the weights and their moving average\n"
	    "(train.ema, 0 = off) are both validated and the better one is\n"
	    "the epoch's candidate.\n"
	    "Optimiser settings are [train] keys (train.lr, train.ema,\n"
	    "train.lr_schedule, ...: `driftcast config doc`), see --set.\n\n"
	    "Options:\n"
	    "  --data FILE           training data (first column timestamp)\n"
	    "  --out MODEL           model file to write\n"
	    "  --lookback L          lookback (model.lookback, 96)\n"
	    "  --horizon H           horizon (model.horizon, 96)\n"
	    "  --backbone NAME       gru or transformer (model.backbone)\n"
	    "  --columns LIST|all    channels to use (default all numeric)\n"
	    "  --seed N              seed (train.seed)\n"
	    "  --epochs N            maximum epochs (train.epochs)\n"
	    "  --threads N           worker threads per batch (train.threads)\n"
	    "  --json REPORT         write a JSON report\n"
	    "  --config FILE         settings file ([model], [train])\n"
	    "  -s, --set KEY=VALUE   override one setting (repeatable)\n"
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

/* The score fc_train keeps for an epoch: the better of the weights and
 * their average (train.c), which is what `improved` and the final "best"
 * compare -- printing the raw weights' score next to the mark would show
 * a "best" that is worse than an earlier epoch's. */
static float kept_mse(const struct fc_train_progress *p, bool *ret_average)
{
	*ret_average = !isnan(p->val_mse_ema) && p->val_mse_ema < p->val_mse;
	return *ret_average ? p->val_mse_ema : p->val_mse;
}

int dc_train_print_progress(void *user, const struct fc_train_progress *p)
{
	struct dc_train_printer *s = user;
	if (s->quiet)
		return 0;
	const char *in = s->indent ? s->indent : "";
	if (p->epoch_done) {
		bool avg;
		float kept = kept_mse(p, &avg);
		fprintf(s->f,
			"%s%sepoch %d/%d: train loss %.4f, validation MSE "
			"%.4f",
			s->tty ? "\r\033[K" : "", in, p->epoch, p->epochs,
			(double)p->loss, (double)kept);
		if (avg)
			fprintf(s->f, " (weights' average; raw %.4f)",
				(double)p->val_mse);
		else if (!isnan(p->val_mse_ema))
			fprintf(s->f, " (average %.4f)",
				(double)p->val_mse_ema);
		fprintf(s->f, ", lr %.3g (%.1f s)%s\n", (double)p->lr,
			p->elapsed, p->improved ? "  best so far" : "");
		return 0;
	}
	if (!s->tty)
		return 0;
	if (p->elapsed - s->last < 0.2 && p->step != p->steps)
		return 0;
	s->last = p->elapsed;
	int width = 30, done = (int)((double)width * p->step / p->steps);
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < done ? '#' : '.';
	bar[width] = '\0';
	fprintf(s->f, "\r\033[K%sepoch %d/%d [%s] %d/%d loss %.4f ETA %.0fs",
		in, p->epoch, p->epochs, bar, p->step, p->steps,
		(double)p->loss, p->eta);
	return 0;
}

static int on_progress(void *user, const struct fc_train_progress *p)
{
	if (interrupted)
		return 1;
	return dc_train_print_progress(user, p);
}

static int parse_int(const char *s, int lo, int hi, int *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

static const char *lr_schedule_name(int s)
{
	static const char *const names[] = {"constant", "plateau", "step",
					    "cosine"};
	return s >= 0 && s < 4 ? names[s] : "?";
}

static int write_report(const char *path, const char *data,
			const struct fc_dataset *d, const struct fc_config *mc,
			const struct fc_train_config *tc,
			const struct fc_train_report *rep, size_t adapter_len,
			size_t n_params, double val_mse, double val_mae,
			double test_mse, double test_mae)
{
	json_t *o = json_object(), *curve = json_array();
	for (int i = 0; i < rep->epochs_run; i++) {
		json_t *e = json_pack("{s:i, s:f, s:f, s:f}", "epoch", i + 1,
				      "train_loss", (double)rep->train_loss[i],
				      "val_mse", (double)rep->val_mse[i], "lr",
				      (double)rep->lr[i]);
		if (!isnan(rep->val_mse_ema[i])) /* of the weights' average */
			json_object_set_new(
			    e, "val_mse_ema",
			    json_real((double)rep->val_mse_ema[i]));
		json_array_append_new(curve, e);
	}
	json_object_set_new(o, "dataset", json_string(d->name));
	json_object_set_new(o, "data", json_string(data));
	json_object_set_new(o, "backbone",
			    json_string(fc_backbone_name(mc->backbone)));
	json_object_set_new(o, "lookback", json_integer(mc->lookback));
	json_object_set_new(o, "horizon", json_integer(mc->horizon));
	json_object_set_new(
	    o, "model",
	    json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I}", "width",
		      mc->d_model, "layers", mc->n_layers, "heads", mc->n_heads,
		      "ff", mc->d_ff, "lora_rank", mc->lora_rank, "params",
		      (json_int_t)n_params, "adapter_params",
		      (json_int_t)adapter_len));
	json_object_set_new(
	    o, "train",
	    json_pack("{s:i, s:i, s:f, s:f, s:f, s:i, s:I, s:i, s:s, s:f, "
		      "s:f}",
		      "epochs", tc->epochs, "batch", tc->batch, "lr",
		      (double)tc->lr, "weight_decay", (double)tc->weight_decay,
		      "recon_weight", (double)tc->recon_weight, "patience",
		      tc->patience, "seed", (json_int_t)tc->seed,
		      "epoch_windows", tc->epoch_windows, "lr_schedule",
		      lr_schedule_name(tc->lr_schedule), "lr_factor",
		      (double)tc->lr_factor, "ema", (double)tc->ema));
	json_object_set_new(
	    o, "split",
	    json_pack("{s:i, s:i, s:i, s:i, s:i}", "train", d->train_end, "val",
		      d->val_end - d->train_end, "test", d->n_rows - d->val_end,
		      "channels", d->n_cols, "train_windows",
		      rep->train_windows));
	json_object_set_new(o, "threads", json_integer(rep->threads));
	json_object_set_new(o, "seconds", json_real(rep->seconds));
	json_object_set_new(o, "cpu_seconds", json_real(rep->cpu_seconds));
	json_object_set_new(o, "epochs_run", json_integer(rep->epochs_run));
	json_object_set_new(o, "best_epoch", json_integer(rep->best_epoch));
	json_object_set_new(o, "best_weights",
			    json_string(rep->best_is_ema ? "average" : "raw"));
	json_object_set_new(
	    o, "seconds_per_epoch",
	    json_real(rep->epochs_run ? rep->seconds / rep->epochs_run : 0));
	json_object_set_new(o, "curve", curve);
	json_object_set_new(
	    o, "val", json_pack("{s:f, s:f}", "mse", val_mse, "mae", val_mae));
	json_object_set_new(
	    o, "test",
	    json_pack("{s:f, s:f}", "mse", test_mse, "mae", test_mae));
	int r = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	return r == 0 ? 0 : -EIO;
}

int dc_cmd_train(int argc, char **argv)
{
	enum {
		O_DATA = 256,
		O_OUT,
		O_LOOKBACK,
		O_HORIZON,
		O_BACKBONE,
		O_COLUMNS,
		O_SEED,
		O_EPOCHS,
		O_THREADS,
		O_JSON,
		O_CONFIG,
	};
	static const struct option longopts[] = {
	    {"data", required_argument, NULL, O_DATA},
	    {"out", required_argument, NULL, O_OUT},
	    {"lookback", required_argument, NULL, O_LOOKBACK},
	    {"horizon", required_argument, NULL, O_HORIZON},
	    {"backbone", required_argument, NULL, O_BACKBONE},
	    {"columns", required_argument, NULL, O_COLUMNS},
	    {"seed", required_argument, NULL, O_SEED},
	    {"epochs", required_argument, NULL, O_EPOCHS},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"json", required_argument, NULL, O_JSON},
	    {"config", required_argument, NULL, O_CONFIG},
	    {"set", required_argument, NULL, 's'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dc_cfg_args ca = {0};
	const char *data = NULL, *out = NULL, *columns = NULL, *json = NULL;
	const char *backbone = NULL;
	int lookback = -1, horizon = -1, seed = -1, epochs = -1, threads = -1;
	int quiet = 0, c, code;
	while ((c = dc_getopt(argc, argv, "s:qh", longopts, train_usage,
			      &code)) > 0) {
		int bad = 0;
		switch (c) {
		case O_DATA:
			data = optarg;
			break;
		case O_OUT:
			out = optarg;
			break;
		case O_COLUMNS:
			columns = optarg;
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_BACKBONE:
			backbone = optarg;
			break;
		case O_CONFIG:
			ca.file = optarg;
			break;
		case O_LOOKBACK:
			bad = parse_int(optarg, 16, 720, &lookback);
			break;
		case O_HORIZON:
			bad = parse_int(optarg, 1, 720, &horizon);
			break;
		case O_SEED:
			bad = parse_int(optarg, 0, 2147483647, &seed);
			break;
		case O_EPOCHS:
			bad =
			    parse_int(optarg, 1, FC_TRAIN_MAX_EPOCHS, &epochs);
			break;
		case O_THREADS:
			bad = parse_int(optarg, 1, 64, &threads);
			break;
		case 's':
			if (dc_cfg_args_add_set(&ca, optarg) < 0)
				return DC_EXIT_USAGE;
			break;
		case 'q':
			quiet = 1;
			break;
		}
		if (bad) {
			fprintf(stderr,
				"driftcast train: invalid value '%s' for "
				"--%s\n",
				optarg, longopts[c - O_DATA].name);
			return DC_EXIT_USAGE;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("train", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!data || !out) {
		fprintf(stderr, "driftcast train: --data and --out are "
				"required (see --help)\n");
		return DC_EXIT_USAGE;
	}
	struct cfg cfg;
	int r = dc_cfg_args_load(&ca, &cfg, NULL);
	if (r != DC_EXIT_OK)
		return r;
	/* before hours of training, not after them */
	const struct dc_file_arg files[] = {
	    {"--data", data, false},
	    {"--out", out, true},
	    {"--json", json, true},
	};
	if ((r = dc_check_files("train", files, 3)) != DC_EXIT_OK)
		return r;

	struct fc_config mc;
	struct fc_train_config tc;
	fc_config_default(&mc);
	fc_train_config_default(&tc);
	mc.lookback = lookback > 0 ? lookback : cfg.model.lookback;
	mc.horizon = horizon > 0 ? horizon : cfg.model.horizon;
	mc.backbone = cfg.model.backbone;
	if (backbone && fc_backbone_parse(backbone, &mc.backbone) < 0) {
		fprintf(stderr,
			"driftcast train: unknown backbone '%s' (gru or "
			"transformer)\n",
			backbone);
		return DC_EXIT_USAGE;
	}
	mc.d_model = cfg.model.width;
	mc.n_layers = cfg.model.layers;
	mc.n_heads = cfg.model.heads;
	mc.d_ff = cfg.model.ff;
	mc.lora_rank = cfg.model.lora_rank;
	mc.mask_ratio = (float)cfg.model.mask_ratio;
	tc.epochs = epochs > 0 ? epochs : cfg.train.epochs;
	tc.batch = cfg.train.batch;
	tc.lr = (float)cfg.train.lr;
	tc.weight_decay = (float)cfg.train.weight_decay;
	tc.recon_weight = (float)cfg.train.recon_weight;
	tc.clip = (float)cfg.train.clip;
	tc.patience = cfg.train.patience;
	tc.seed = (uint64_t)(seed >= 0 ? seed : cfg.train.seed);
	tc.threads = threads > 0 ? threads : cfg.train.threads;
	tc.epoch_windows = cfg.train.epoch_windows;
	tc.lr_schedule = cfg.train.lr_schedule;
	tc.lr_factor = (float)cfg.train.lr_factor;
	tc.ema = (float)cfg.train.ema;
	char err[1024];
	if (fc_config_check(&mc, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast train: %s\n", err);
		return DC_EXIT_USAGE;
	}

	struct fc_dataset *d = NULL;
	r = fc_dataset_load(data, columns, &d, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "driftcast train: %s\n", err);
		return r == -ENOENT || r == -EACCES ? DC_EXIT_FAILURE
						    : DC_EXIT_USAGE;
	}
	dc_note_skipped("train", data, d);
	struct dc_train_printer ps = {
	    .f = stderr, .tty = isatty(2), .quiet = quiet, .last = -1};
	struct sigaction sa = {0}, old_int, old_term;
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	if (!quiet)
		fprintf(stderr,
			"driftcast train: %s, %d channels, %d train rows; %s "
			"L=%d H=%d D=%d layers=%d; batch %d, lr %g (%s), "
			"threads %d\n",
			d->name, d->n_cols, d->train_end,
			fc_backbone_name(mc.backbone), mc.lookback, mc.horizon,
			mc.d_model, mc.n_layers, tc.batch, (double)tc.lr,
			lr_schedule_name(tc.lr_schedule), tc.threads);
	struct fc_model *m = NULL;
	struct fc_train_report rep;
	r = fc_train(&mc, &tc, d, on_progress, &ps, &m, &rep, err, sizeof(err));
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r < 0) {
		if (ps.tty && !quiet)
			fprintf(stderr, "\n");
		fprintf(stderr, "driftcast train: %s\n", err);
		fc_dataset_free(d);
		return r == -EINVAL ? DC_EXIT_USAGE : DC_EXIT_FAILURE;
	}
	code = DC_EXIT_OK;
	r = fc_model_save(m, out, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "driftcast train: %s\n", err);
		code = DC_EXIT_FAILURE;
		goto done;
	}
	/* report the returned model's frozen accuracy; the test split is
	 * evaluated only here, after training has ended */
	struct fc_workspace *ws = NULL;
	double vm = NAN, va = NAN, tm = NAN, ta = NAN;
	if (fc_workspace_new(m, 256, &ws) == 0) {
		fc_evaluate(m, NULL, ws, d, FC_SPLIT_VAL, &vm, &va);
		if (fc_dataset_split_windows(d, FC_SPLIT_TEST, mc.lookback,
					     mc.horizon) > 0)
			fc_evaluate(m, NULL, ws, d, FC_SPLIT_TEST, &tm, &ta);
	}
	fc_workspace_free(ws);
	printf("%s: %s L=%d H=%d, %d epochs (best %d%s), %.1f s (%.1f s CPU), "
	       "%d thread%s; val mse %.4f mae %.4f; test mse %.4f mae %.4f\n",
	       out, fc_backbone_name(mc.backbone), mc.lookback, mc.horizon,
	       rep.epochs_run, rep.best_epoch,
	       rep.best_is_ema ? ", weights' average" : "", rep.seconds,
	       rep.cpu_seconds, rep.threads, rep.threads == 1 ? "" : "s", vm,
	       va, tm, ta);
	if (json &&
	    write_report(json, data, d, &mc, &tc, &rep, fc_adapter_len(m),
			 fc_model_param_count(m), vm, va, tm, ta) < 0) {
		fprintf(stderr, "driftcast train: cannot write %s\n", json);
		code = DC_EXIT_FAILURE;
	}
done:
	fc_model_free(m);
	fc_dataset_free(d);
	return code;
}
