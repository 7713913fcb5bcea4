/*
 * forecast: the numeric core of driftcast; the folder's one public header
 * (private: internal.h, nn*.h).  No I/O beyond datasets and model files,
 * no logging; functions return 0 or a negative errno, with the reason in
 * (errbuf, errbuf_size) where a human needs one.
 */
#ifndef DRIFTCAST_FORECAST_H
#define DRIFTCAST_FORECAST_H

#include <stddef.h>
#include <stdint.h>

/* ---- BLAS: every matrix product is one CBLAS call (GSL's gsl_cblas.h
 * prototypes) into OpenBLAS, never GSL's reference libgslcblas. */
void fc_blas_describe(char *buf, size_t size); /* library, core, threads */
/* Set the number of BLAS threads (>= 1); returns the number in effect. */
int fc_blas_set_threads(int n);

/* ---- the model: one base model serves every series (univariate windows
 * of raw values), each with its own adapter.  A window is normalised, cut
 * into N = (L - P) / S + 2 patches, run through GRU or transformer layers
 * and two heads: forecast [H], and reconstruction of masked points. */
enum fc_backbone { FC_BACKBONE_GRU = 0, FC_BACKBONE_TRANSFORMER = 1 };
#define FC_MAX_LAYERS 4
/* The architecture, stored in the model file; defaults as shown. */
struct fc_config {
	int backbone;	  /* enum fc_backbone; FC_BACKBONE_GRU */
	int lookback;	  /* L, 96; 16..720 */
	int horizon;	  /* H, 96; 1..720 */
	int patch_len;	  /* P, 16 */
	int patch_stride; /* S, 8 */
	int d_model;	  /* D, 64 */
	int n_layers;	  /* 1..FC_MAX_LAYERS; 1 */
	int n_heads;	  /* transformer heads, D % n_heads == 0; 4 */
	int d_ff;	  /* transformer feed-forward width F; 2 * D */
	int lora_rank;	  /* r, 4; 1..64 */
	float mask_ratio; /* share of L hidden by fc_mask_sample; 0.33 */
	int mask_seg;	  /* length of one hidden segment; P */
};
void fc_config_default(struct fc_config *c);
/* 0, or -EINVAL with the first violated rule in errbuf. */
int fc_config_check(const struct fc_config *c, char *errbuf,
		    size_t errbuf_size);
int fc_config_patches(const struct fc_config *c); /* N */
/* "gru", "transformer" (static strings), and back (-EINVAL). */
const char *fc_backbone_name(int backbone);
int fc_backbone_parse(const char *name, int *ret_backbone);

/* Base weights, config and scaler; immutable, so threads share it (each
 * with its own workspace). */
struct fc_model;
/* A new model, initialised deterministically for seed; the caller's. */
int fc_model_new(const struct fc_config *c, uint64_t seed,
		 struct fc_model **ret, char *errbuf, size_t errbuf_size);
void fc_model_free(struct fc_model *m);
const struct fc_config *fc_model_config(const struct fc_model *m); /* in m */
size_t fc_model_param_count(const struct fc_model *m); /* base weights */
/* A 64-bit FNV-1a of the configuration's shape and the base weights'
 * bytes: what state made with one model (ttt/recal.c) checks it is read
 * back by the same. */
uint64_t fc_model_fingerprint(const struct fc_model *m);
/* n channels (0: none); the [n] means, stds, names live as long as m. */
int fc_model_scaler(const struct fc_model *m, const float **ret_mean,
		    const float **ret_std, const char *const **ret_names);
/* Model files (modelfile.c), saved via path.tmp and a rename.  A corrupt,
 * newer or inconsistent file: -EINVAL (I/O: -errno), the reason in errbuf;
 * a loaded model is the caller's. */
int fc_model_save(const struct fc_model *m, const char *path, char *errbuf,
		  size_t errbuf_size);
int fc_model_load(const char *path, struct fc_model **ret, char *errbuf,
		  size_t errbuf_size);

/* ---- adapters: one caller-owned block of fc_adapter_len(m) floats per
 * series (a snapshot or a version is one memcpy), a range per family: ENC,
 * LoRA (delta = B A) on the embedding and backbone projections; NORM,
 * LayerNorm deltas; HEAD, LoRA on the forecast head; CALIB, y' = (1 + a) y
 * + c per horizon step, normalised (only the forecast loss reaches it).
 * The initial adapter forecasts bit-identically to adapter NULL. */
enum fc_adapt_family {
	FC_ADAPT_ENC = 1u << 0,
	FC_ADAPT_NORM = 1u << 1,
	FC_ADAPT_HEAD = 1u << 2,
	FC_ADAPT_CALIB = 1u << 3,
	FC_ADAPT_ALL = 0xfu,
};
size_t fc_adapter_len(const struct fc_model *m); /* floats */
/* Fill adapter [fc_adapter_len] with the initial adapter (for seed). */
void fc_adapter_init(const struct fc_model *m, float *adapter, uint64_t seed);
/* The range of one family (a single bit); -EINVAL for another value. */
int fc_adapter_family_range(const struct fc_model *m, unsigned family,
			    size_t *ret_off, size_t *ret_len);

/* ---- workspaces: every buffer of a pass of up to max_batch windows of
 * m's config; the caller's, one per thread, so forecasts and losses
 * allocate nothing (with fc_blas_set_threads(1)).  Merged adapter weights
 * are reused while the same model and equal adapter contents come back. */
struct fc_workspace;
int fc_workspace_new(const struct fc_model *m, int max_batch,
		     struct fc_workspace **ret);
void fc_workspace_free(struct fc_workspace *ws);

/* ---- forecasting: x [b, L] raw values -> y [b, H], same units; adapter
 * NULL: the frozen model.  -EINVAL when b exceeds the workspace or it serves
 * another config, or on a non-finite window (y then unspecified). */
int fc_forecast(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const float *x, int b, float *y);

/* The base weights and, per window, only a calibration: cal[i] a CALIB
 * range (H scales - 1, H shifts) or NULL; cal may be NULL.  Equals
 * fc_forecast() of each window with an adapter initial but for it. */
int fc_forecast_calibrated(const struct fc_model *m, struct fc_workspace *ws,
			   const float *x, int b, const float *const *cal,
			   float *y);

/* The deviation a window of mean `mean` and (population) variance var is
 * divided by, for the model's instance normalisation and the engine's
 * normalised errors: sqrt(var + eps), eps 1e-5 from a variance of 1e-3
 * up, below it 1e-2 var (no more than 1e-5; at least a few float ulps of
 * the mean, and 1e-30), so that a series whose values vary by little is
 * normalised by its own deviation: one of variance 1e-8 was divided by
 * 300 times its deviation, and the model saw it flat.  fc_norm_dvar is
 * d(sd^2)/d(var): 1, or 1.01 where eps is 1e-2 var. */
double fc_norm_sd(double mean, double var);
double fc_norm_dvar(double mean, double var);

/* ---- masks and losses; splitmix64, so masks depend only on a seed */
uint64_t fc_rng_next(uint64_t *state);
float fc_rng_uniform(uint64_t *state); /* [0, 1) */
/* mask [L] (1 = hidden): segments of seg >= 1 points at random starts
 * until round(ratio * L) points are hidden (ratio <= 0.9); advances *rng. */
void fc_mask_sample(float *mask, int L, float ratio, int seg, uint64_t *rng);
/* bf forecast windows with observed horizons, br masked ones (bf + br <=
 * the workspace's max batch). */
struct fc_batch {
	const float *xf; /* [bf, L] raw lookback of forecast windows */
	const float *yf; /* [bf, H] raw observed horizon */
	int bf;
	const float *xr; /* [br, L] raw reconstruction windows */
	const float *mr; /* [br, L] masks, 1 = hidden (fc_mask_sample) */
	int br;
	float wf; /* weight of the forecast MSE */
	float wr; /* weight of the masked-reconstruction MSE */
};
struct fc_loss {
	float total;	/* wf * forecast + wr * recon */
	float forecast; /* mean over bf * H of (y_hat - y)^2, raw units */
	float recon;	/* mean over hidden points, normalised space */
};
/* Loss of a batch and, with grad, its gradient w.r.t. the adapter: grad
 * [fc_adapter_len] overwritten, 0 outside `families`.  adapter NULL:
 * frozen model, grad NULL.  0, -EINVAL (batch too large, non-finite input)
 * or -ERANGE (non-finite loss); *ret untouched on failure. */
int fc_loss_grad(const struct fc_model *m, const float *adapter,
		 struct fc_workspace *ws, const struct fc_batch *batch,
		 float *grad, unsigned families, struct fc_loss *ret);

/* ---- calibration-only fast paths (calib.c): for adapters that differ
 * from the initial one only in CALIB (the last step), one frozen pass
 * serves them all, and fc_calib_* give at O(b H) the floats of
 * fc_forecast() / fc_loss_grad().  cal: a CALIB range, or NULL. */
struct fc_head_raw {
	float *fc;	/* [b, H] head output before calibration */
	float *mu, *sd; /* [b] each window's normalisation mean and std */
};
/* fc_forecast()'s frozen pass over x [b, L] into raw's b rows. */
int fc_forecast_raw(const struct fc_model *m, struct fc_workspace *ws,
		    const float *x, int b, const struct fc_head_raw *raw);
/* fc_loss_grad()'s frozen pass: raw gets the bf forecast rows, *ret_recon
 * the reconstruction loss (no calibration reaches it). */
int fc_loss_raw(const struct fc_model *m, struct fc_workspace *ws,
		const struct fc_batch *batch, const struct fc_head_raw *raw,
		float *ret_recon);
/* The frozen pass: xf [bf, L] -> raw; xr, mr [br, L] -> rsum, rcnt [br],
 * each window's summed squared reconstruction error over its hidden points
 * and their count (NAN for a non-finite window).  0, or -EINVAL. */
int fc_frozen_pass(const struct fc_model *m, struct fc_workspace *ws,
		   const float *xf, int bf, const float *xr, const float *mr,
		   int br, const struct fc_head_raw *raw, double *rsum,
		   int *rcnt);
/* y [b, H] = the calibrated, de-normalised forecast of raw's b rows. */
void fc_calib_forecast(const struct fc_model *m, const struct fc_head_raw *raw,
		       int b, const float *cal, float *y);
/* fc_loss_grad()'s loss of raw's bf rows against yf [bf, H] plus recon,
 * calibrated by cal; grad [2H] (or NULL) its gradient w.r.t. cal.  0,
 * -EINVAL or -ERANGE as fc_loss_grad(). */
int fc_calib_loss_grad(const struct fc_model *m, const struct fc_head_raw *raw,
		       const float *yf, int bf, const float *cal, float wf,
		       float wr, float recon, float *grad, struct fc_loss *ret);

/* ---- optimizer (optim.c): AdamW over caller-owned state of
 * fc_adam_state_len(n) floats, zeroed to start; step is 1-based. */
struct fc_adam {
	float lr, beta1, beta2, eps, weight_decay; /* 1e-3 .9 .999 1e-8 0 */
};
size_t fc_adam_state_len(size_t n);
void fc_adam_step(const struct fc_adam *opt, float *param, const float *grad,
		  float *state, size_t n, long step);
/* Scale grad [n] to L2 norm <= max_norm (> 0); returns the norm before. */
float fc_grad_clip(float *grad, size_t n, float max_norm);

/* ---- datasets (dataset.c): a CSV (or .csv.gz), a timestamp column (or
 * none), numeric ones; splits ETT* 60/20/20, others 70/rest/20, scaled
 * with train statistics.  Window i of a split of rows [a, b), s = a - L (0
 * for train): lookback [s + i, +L), horizon [s + i + L, +H).  Buffers: d's. */
struct fc_dataset {
	char name[64];	    /* file base name, e.g. "ETTh1" */
	int n_rows;	    /* time steps */
	int n_cols;	    /* channels (selected numeric columns) */
	char **col_names;   /* [n_cols] */
	double *timestamps; /* [n_rows] epoch seconds; row index if none */
	float *raw;	    /* [n_rows, n_cols] values as read */
	float *scaled; /* [n_rows, n_cols] z-scored with train statistics */
	float *mean;   /* [n_cols] train mean */
	float *std;    /* [n_cols] train std (population), >= 1e-8 */
	int train_end; /* train rows [0, train_end) */
	int val_end;   /* val rows [train_end, val_end); test [val_end, n) */
	double step_seconds; /* median spacing of timestamps (0 if none) */
	/* the columns left out as not numeric (their first cell is text;
	 * by default only), "'a', 'b'" or empty, cut at its size */
	char skipped[256];
};
enum fc_split { FC_SPLIT_TRAIN, FC_SPLIT_VAL, FC_SPLIT_TEST };
/* columns: NULL, "all" or a comma list; *ret the caller's; errors with
 * "FILE:LINE: reason" in errbuf. */
int fc_dataset_load(const char *path, const char *columns,
		    struct fc_dataset **ret, char *errbuf, size_t errbuf_size);
void fc_dataset_free(struct fc_dataset *d);
/* s of a split, and its number of windows (0 if too short). */
int fc_dataset_split_start(const struct fc_dataset *d, enum fc_split s,
			   int lookback);
int fc_dataset_split_windows(const struct fc_dataset *d, enum fc_split s,
			     int lookback, int horizon);

/* ---- offline training (train.c): every channel a univariate series; loss
 * = forecast MSE + recon_weight * masked-reconstruction MSE; early stopping
 * on the validation forecast MSE (weights, and their average with ema > 0).
 * Deterministic per seed and thread count; never reads the test split. */
#define FC_TRAIN_MAX_EPOCHS 200
enum fc_lr_schedule {
	FC_LR_CONSTANT = 0, /* lr throughout */
	FC_LR_PLATEAU = 1,  /* *= lr_factor after an epoch without gain */
	FC_LR_STEP = 2,	    /* *= lr_factor after every epoch */
	FC_LR_COSINE = 3,   /* per step, cosine from lr to 0 over `epochs` */
};
struct fc_train_config {
	int epochs;	    /* maximum, 30 */
	int batch;	    /* windows per step, 64 */
	float lr;	    /* 1e-3 */
	float weight_decay; /* AdamW, 1e-4 */
	float recon_weight; /* lambda, 0.5 */
	float clip;	    /* global gradient norm, 1.0 */
	int patience;	    /* epochs without validation gain, 3 */
	uint64_t seed;	    /* 1 */
	int threads;	    /* worker threads splitting each batch, 1 */
	int epoch_windows;  /* windows drawn per epoch, 0 = all of them */
	int lr_schedule;    /* enum fc_lr_schedule, FC_LR_CONSTANT */
	float lr_factor;    /* PLATEAU and STEP multiplier, 0.5 */
	float ema; /* decay of the weights' moving average; 0 = off, 0.9998 */
};
void fc_train_config_default(struct fc_train_config *t);
struct fc_train_progress {
	int epoch, epochs;   /* 1-based epoch, maximum */
	int step, steps;     /* 1-based step within the epoch, steps in it */
	float loss;	     /* running mean training loss of this epoch */
	double elapsed, eta; /* seconds since the start, left in the epoch */
	int epoch_done;	     /* 1 at the end of an epoch: val_mse is set */
	float val_mse, val_mse_ema; /* validation forecast MSE (scaled), and
				       the weights' average's (NAN: off) */
	int improved;		    /* the epoch is the best so far */
	float lr;		    /* learning rate of the current step */
};
/* After every step and epoch; nonzero stops fc_train (-ECANCELED). */
typedef int (*fc_train_progress_fn)(void *user,
				    const struct fc_train_progress *p);
struct fc_train_report {
	int epochs_run, best_epoch;
	int train_windows, val_windows; /* per channel */
	int channels;
	int threads;	/* worker threads used (BLAS runs single-threaded) */
	double seconds; /* wall clock */
	double cpu_seconds; /* CPU time of the process (all threads) */
	float train_loss[FC_TRAIN_MAX_EPOCHS];	/* per epoch, mean */
	float val_mse[FC_TRAIN_MAX_EPOCHS];	/* per epoch */
	float val_mse_ema[FC_TRAIN_MAX_EPOCHS]; /* average's, NAN: no ema */
	float lr[FC_TRAIN_MAX_EPOCHS]; /* per epoch, at its first step */
	float best_val_mse;
	int best_is_ema; /* the returned model is the weights' average */
};
/* *ret: the best model (the caller's, scaler from d); progress: or NULL. */
int fc_train(const struct fc_config *mc, const struct fc_train_config *tc,
	     const struct fc_dataset *d, fc_train_progress_fn progress,
	     void *user, struct fc_model **ret, struct fc_train_report *report,
	     char *errbuf, size_t errbuf_size);
/* MSE and MAE of every window and channel of a split, scaled space, per
 * docs/EVAL.md; adapter may be NULL. */
int fc_evaluate(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const struct fc_dataset *d,
		enum fc_split split, double *ret_mse, double *ret_mae);

/* ---- dates (timeparse.c): the tree's one date grammar, for CSV and
 * message timestamps and the operator's --since/--at: "2016-07-01
 * 00:00:00", "2016/7/1 0:00", "2016-07-01T00:00:00.5+02:00", "2016-07-01";
 * proleptic Gregorian, UTC unless a zone says otherwise. */
#define FC_TIME_RFC3339 1u /* exactly RFC 3339 (message payloads) */
#define FC_TIME_EPOCH	2u /* also whole epoch seconds, as strtoll() */
struct fc_time {
	int64_t sec;  /* whole seconds since the epoch, zone applied */
	int32_t nsec; /* the fraction's first nine digits */
	double frac;  /* the fraction as strtod() reads it (not RFC3339) */
};
/* s[0..len) (no NUL needed) into *ret, untouched on failure: 0, -EINVAL
 * (not a time of the grammar flags select) or -ENOMEM. */
int fc_time_parse(const char *s, size_t len, unsigned flags,
		  struct fc_time *ret);
/* --since/--at text (FC_TIME_EPOCH) as whole epoch seconds. */
int fc_time_parse_seconds(const char *text, int64_t *ret_sec);

#endif
