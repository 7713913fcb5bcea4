/*
 * forecast: the numeric core of driftcast.
 *
 * This folder does no I/O beyond model files and never logs; functions
 * return 0 or a negative errno and explain failures through
 * (errbuf, errbuf_size) where a human needs a reason.
 */
#ifndef DRIFTCAST_FORECAST_H
#define DRIFTCAST_FORECAST_H

#include <stddef.h>
#include <stdint.h>

/* ---- BLAS -------------------------------------------------------------
 * All matrix products go through GSL's gsl_blas_* interface, which the
 * build links against OpenBLAS's CBLAS (never GSL's reference libgslcblas).
 */

/* Describe the BLAS in use ("OpenBLAS 0.3.21 ... threads=1") into buf. */
void fc_blas_describe(char *buf, size_t size);

/* Path of the shared object that provides cblas_sgemm to GSL (static
 * string owned by the dynamic loader).  Must name libopenblas. */
const char *fc_blas_provider(void);

/* Set the number of BLAS threads (>= 1); returns the number in effect. */
int fc_blas_set_threads(int n);

/* ---- the model ---------------------------------------------------------
 * One base model serves every series (channel-independent, univariate
 * windows); each series owns an adapter block.  Dimension letters used in
 * the shape comments below:
 *   B batch (windows), L lookback, H horizon, P patch length, S stride,
 *   N patches = (L - P) / S + 2 (the lookback is padded at its end with S
 *   copies of its last value), D width, F feed-forward width, r LoRA rank.
 *
 * Forward, for each window x[L] (raw values, e.g. dataset-scaled):
 *   instance normalisation (mean/std of the window) -> optional mask
 *   (hidden points get value 0, indicator 1) -> patches [N, 2P] (values and
 *   mask indicator) -> linear embedding 2P -> D (+ learned positions for
 *   the transformer) -> backbone (GRU layers, or pre-LayerNorm transformer
 *   encoder layers) -> final LayerNorm -> two heads:
 *     forecast: flatten [N*D] -> linear -> H -> calibration -> de-normalise
 *     recon:    per token D -> P, overlapping patches averaged back onto
 *               the L time points (normalised space).
 */

enum fc_backbone { FC_BACKBONE_GRU = 0, FC_BACKBONE_TRANSFORMER = 1 };

#define FC_MAX_LAYERS 4

/* The architecture.  Fixed for the lifetime of a model; stored in its
 * file.  fc_config_default() fills the defaults shown. */
struct fc_config {
	int backbone;	  /* enum fc_backbone; FC_BACKBONE_GRU */
	int lookback;	  /* L, 96; 16..720 */
	int horizon;	  /* H, 96; 1..720 */
	int patch_len;	  /* P, 16 */
	int patch_stride; /* S, 8 */
	int d_model;	  /* D, 64 */
	int n_layers;	  /* 1 (gru) .. FC_MAX_LAYERS; 2 */
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

/* N, the number of patches (tokens) for the config. */
int fc_config_patches(const struct fc_config *c);

/* Name of a backbone ("gru", "transformer"), and back (-EINVAL). */
const char *fc_backbone_name(int backbone);
int fc_backbone_parse(const char *name, int *ret_backbone);

/*
 * struct fc_model: the base weights, the config, and the scaler of the
 * data it was trained on (per-channel train mean/std and channel names).
 * Immutable after load: any number of threads may forecast with one model
 * at the same time, each with its own workspace.
 */
struct fc_model;

/* A new model with freshly initialised weights (deterministic for seed),
 * owned by the caller; free with fc_model_free(). */
int fc_model_new(const struct fc_config *c, uint64_t seed,
		 struct fc_model **ret, char *errbuf, size_t errbuf_size);
void fc_model_free(struct fc_model *m);

/* The config (lives as long as m). */
const struct fc_config *fc_model_config(const struct fc_model *m);

/* Number of base weights (floats). */
size_t fc_model_param_count(const struct fc_model *m);

/*
 * The scaler stored with the model: n channels with their train mean and
 * std and names (NULL names = "0", "1", ...).  set copies its arguments;
 * get returns pointers that live as long as m (n = 0 when none is set).
 */
int fc_model_set_scaler(struct fc_model *m, int n, const float *mean,
			const float *std, const char *const *names);
int fc_model_scaler(const struct fc_model *m, const float **ret_mean,
		    const float **ret_std, const char *const **ret_names);

/*
 * Model files: magic "DCMODEL\0", format version, full config, scaler,
 * tensor table, weights, CRC-32 of everything before it.  Saving writes
 * path.tmp and renames it.  Loading refuses (-EINVAL, or -errno for I/O)
 * a truncated file, a wrong magic, a newer format version, a checksum
 * mismatch, an invalid config, a tensor table that does not match the
 * config and non-finite weights, each with the reason in errbuf.  The
 * loaded model is owned by the caller.
 */
int fc_model_save(const struct fc_model *m, const char *path, char *errbuf,
		  size_t errbuf_size);
int fc_model_load(const char *path, struct fc_model **ret, char *errbuf,
		  size_t errbuf_size);

/* The same from n bytes in memory (e.g. a BLOB); name stands for the path
 * in messages (NULL: "model").  buf is not kept. */
int fc_model_load_buffer(const void *buf, size_t n, const char *name,
			 struct fc_model **ret, char *errbuf,
			 size_t errbuf_size);

/* ---- adapters ------------------------------------------------------------
 * All adapter weights of one series are one contiguous float block of
 * fc_adapter_len(m) floats with a fixed layout (so a snapshot, a rollback
 * and a stored version are one memcpy / one BLOB).  The block is grouped by
 * family, each family one contiguous range:
 *   FC_ADAPT_ENC:   LoRA (A [r, in], B [out, r], delta = B A) on the patch
 *                   embedding and on the backbone's projections (GRU input
 *                   and hidden weights; attention query and value, and
 *                   both feed-forward weights);
 *   FC_ADAPT_NORM:  additive deltas on every LayerNorm's gain and bias;
 *   FC_ADAPT_HEAD:  LoRA on the forecast head (optional);
 *   FC_ADAPT_CALIB: the output calibration y' = (1 + a) * y + c per horizon
 *                   step (normalised space); only forecast loss reaches it.
 * fc_adapter_init() gives B = 0 (A small random), every delta 0 and a = c =
 * 0, so forecasting with the initial adapter is bit-identical to the frozen
 * model (adapter NULL).
 */
enum fc_adapt_family {
	FC_ADAPT_ENC = 1u << 0,
	FC_ADAPT_NORM = 1u << 1,
	FC_ADAPT_HEAD = 1u << 2,
	FC_ADAPT_CALIB = 1u << 3,
	FC_ADAPT_ALL = 0xfu,
};

size_t fc_adapter_len(const struct fc_model *m); /* floats */

/* Fill adapter[fc_adapter_len] with the identity adapter (deterministic
 * for seed). */
void fc_adapter_init(const struct fc_model *m, float *adapter, uint64_t seed);

/* The range [*ret_off, *ret_off + *ret_len) of one family (a single bit)
 * in the block; -EINVAL for an unknown family. */
int fc_adapter_family_range(const struct fc_model *m, unsigned family,
			    size_t *ret_off, size_t *ret_len);

/* The adapter tensor table, i = 0 .. count-1: name (static or owned by m),
 * offset and length in floats, family bit.  -ERANGE past the end. */
size_t fc_adapter_tensor_count(const struct fc_model *m);
int fc_adapter_tensor(const struct fc_model *m, size_t i, const char **ret_name,
		      size_t *ret_off, size_t *ret_len, unsigned *ret_family);

/* ---- workspaces ----------------------------------------------------------
 * Every activation and gradient buffer of a forward/backward pass for up
 * to max_batch windows (forecast windows + reconstruction windows), for
 * models with this config.  Allocated once; forecast and loss calls do no
 * allocation (with fc_blas_set_threads(1): OpenBLAS's threaded GEMM
 * allocates inside each call).  One workspace per thread; not shared.
 * It keeps the merged weights of the last adapter and reuses them while
 * the same model and an adapter with equal contents come back (compared
 * on every call, so adapters may be updated in place).
 */
struct fc_workspace;

int fc_workspace_new(const struct fc_model *m, int max_batch,
		     struct fc_workspace **ret);
void fc_workspace_free(struct fc_workspace *ws);
int fc_workspace_max_batch(const struct fc_workspace *ws);

/* ---- forecasting ----------------------------------------------------- */

/*
 * Forecast b windows: x [b, L] raw values -> y [b, H], same units.
 * adapter: a block of fc_adapter_len floats, or NULL for the frozen model.
 * Returns 0; -EINVAL when b > the workspace's max batch or the workspace
 * was made for another config, or when a window holds a non-finite value
 * (y is then unspecified).
 */
int fc_forecast(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const float *x, int b, float *y);

/*
 * Forecast b windows x [b, L] into y [b, H] with the base weights and, per
 * window, only an adapter's output calibration: cal[i] points at the
 * calibration family of window i's adapter block (the range
 * fc_adapter_family_range(m, FC_ADAPT_CALIB, ...) gives: H scales - 1, then
 * H shifts), or is NULL for the identity; cal itself may be NULL.  The same
 * as fc_forecast() of each window with its own adapter when that adapter's
 * other families are at their initial values -- which lets the windows of
 * many series share one batched pass.
 */
int fc_forecast_calibrated(const struct fc_model *m, struct fc_workspace *ws,
			   const float *x, int b, const float *const *cal,
			   float *y);

/* ---- masking and losses --------------------------------------------------
 * A tiny deterministic RNG (splitmix64), so that masks and initialisation
 * depend only on a seed.
 */
uint64_t fc_rng_next(uint64_t *state);
float fc_rng_uniform(uint64_t *state); /* [0, 1) */

/*
 * Masked-segment sampler: mask [L], 1 = hidden, 0 = visible.  Hides
 * contiguous segments of seg points at uniformly random starts until
 * exactly round(ratio * L) points are hidden (the last segment is cut
 * short; segments may touch or overlap).  Deterministic given *rng, which
 * it advances.  ratio in [0, 0.9], seg >= 1.
 */
void fc_mask_sample(float *mask, int L, float ratio, int seg, uint64_t *rng);

/*
 * One batch for the loss: bf forecast windows with their observed
 * horizon (matured windows), and br reconstruction windows with their
 * masks.  Either part may be empty.  bf + br <= the workspace's max batch.
 */
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
	float recon;	/* mean over hidden points of the squared error,
			   in each window's normalised space */
};

/*
 * Loss of a batch and, when grad is not NULL, its gradient with respect to
 * the adapter block: grad [fc_adapter_len] is overwritten; entries of
 * families not in `families` are set to 0.  adapter may be NULL (frozen
 * model; grad must then be NULL).  No allocation.  Returns 0, or -EINVAL
 * (batch too large, non-finite input; *ret untouched).
 */
int fc_loss_grad(const struct fc_model *m, const float *adapter,
		 struct fc_workspace *ws, const struct fc_batch *batch,
		 float *grad, unsigned families, struct fc_loss *ret);

/* ---- the calibration-only fast paths ---------------------------------------
 * The output calibration is the model's last step, so while it is the only
 * adapter family that differs from its initial values, the forward pass up
 * to the forecast head does not depend on the adapter.  One frozen pass
 * then serves any number of calibrations: fc_forecast_raw() and
 * fc_loss_raw() keep the head's output before calibration, and
 * fc_calib_forecast() / fc_calib_loss_grad() give, at O(b H) cost, what
 * fc_forecast() / fc_loss_grad(families = FC_ADAPT_CALIB) would give for
 * an adapter with that calibration: the same expressions in the same
 * order, so the same floats when the frozen pass had the same rows.
 * cal below is a calibration range as in fc_forecast_calibrated() (H
 * scales - 1, then H shifts), or NULL for the identity.
 */
struct fc_head_raw {
	float *fc;	/* [b, H] head output before calibration (each
			   window's normalised space) */
	float *mu, *sd; /* [b] each window's normalisation mean and std */
};

/* The frozen forecast pass of fc_forecast() over x [b, L]; raw's buffers
 * (caller-owned) get its b rows.  0 or -EINVAL as fc_forecast(). */
int fc_forecast_raw(const struct fc_model *m, struct fc_workspace *ws,
		    const float *x, int b, const struct fc_head_raw *raw);

/* The frozen pass of fc_loss_grad() over batch: raw gets the batch's bf
 * forecast windows, *ret_recon its reconstruction loss (which no
 * calibration reaches).  0, -EINVAL or -ERANGE as fc_loss_grad(). */
int fc_loss_raw(const struct fc_model *m, struct fc_workspace *ws,
		const struct fc_batch *batch, const struct fc_head_raw *raw,
		float *ret_recon);

/*
 * The frozen pass over many windows at once, in slices of the workspace's
 * max batch: bf forecast windows xf [bf, L] -> raw (rows [0, bf)), and br
 * reconstruction windows xr [br, L] with masks mr [br, L] -> rsum [br]
 * (double), rcnt [br]: each window's sum of squared reconstruction errors
 * over its hidden points and their count, so that the reconstruction loss
 * of any set of them is sum(rsum) / sum(rcnt) (0 for no hidden point) --
 * the windows of many series share one batched pass.  A window that
 * cannot be forecast (non-finite) comes back as NAN (raw's row, or its
 * rsum) without failing the others.  0, or -EINVAL (bad arguments).
 */
int fc_frozen_pass(const struct fc_model *m, struct fc_workspace *ws,
		   const float *xf, int bf, const float *xr, const float *mr,
		   int br, const struct fc_head_raw *raw, double *rsum,
		   int *rcnt);

/* y [b, H] = the calibrated, de-normalised forecast of raw's b rows. */
void fc_calib_forecast(const struct fc_model *m, const struct fc_head_raw *raw,
		       int b, const float *cal, float *y);

/* The loss of fc_loss_grad() for bf forecast windows with raw outputs raw
 * and observed horizons yf [bf, H] (weight wf) plus recon (from
 * fc_loss_raw, weight wr), calibrated by cal; with grad [2H] not NULL,
 * its gradient with respect to the calibration range.  0, or -EINVAL
 * (non-finite yf) / -ERANGE (non-finite loss) with *ret untouched. */
int fc_calib_loss_grad(const struct fc_model *m, const struct fc_head_raw *raw,
		       const float *yf, int bf, const float *cal, float wf,
		       float wr, float recon, float *grad, struct fc_loss *ret);

/* ---- optimizer -----------------------------------------------------------
 * Adam with decoupled weight decay (AdamW).  Its state is a caller-owned
 * block of fc_adam_state_len(n) floats (first and second moments) kept
 * next to the n parameters it updates; zero it to start.  step is the
 * 1-based step count (bias correction).  With lr = 0 nothing changes.
 */
struct fc_adam {
	float lr;	    /* 1e-3 */
	float beta1, beta2; /* 0.9, 0.999 */
	float eps;	    /* 1e-8 */
	float weight_decay; /* 0 */
};

size_t fc_adam_state_len(size_t n);
void fc_adam_step(const struct fc_adam *opt, float *param, const float *grad,
		  float *state, size_t n, long step);

/* Scale grad [n] so that its L2 norm is at most max_norm (> 0); returns
 * the norm before clipping. */
float fc_grad_clip(float *grad, size_t n, float max_norm);

/* ---- datasets (forecast/dataset.c) -----------------------------------
 * A CSV (or .csv.gz) of time series: first column a timestamp (or none, for
 * LSTNet-style files), then numeric columns.  Split and scaling follow
 * ../shared/EVAL.md exactly: ETT* files 60/20/20, every other file
 * 70/rest/20 (int() of the ratio times N for train and test, val is the
 * rest); each channel z-scored with mean/std of the train rows only.
 * Windows of a split with rows [a, b) start at a - L (a = 0 for train) and
 * have their horizon end inside the split:
 *   window i: lookback rows [s + i, s + i + L), horizon [s + i + L, +H).
 */
struct fc_dataset {
	char name[64];	  /* file base name without extensions, e.g. "ETTh1" */
	int n_rows;	  /* time steps */
	int n_cols;	  /* channels (selected numeric columns) */
	char **col_names; /* [n_cols] */
	double *timestamps; /* [n_rows] epoch seconds; row index if none */
	float *raw;	    /* [n_rows, n_cols] values as read */
	float *scaled; /* [n_rows, n_cols] z-scored with train statistics */
	float *mean;   /* [n_cols] train mean */
	float *std;    /* [n_cols] train std (population), >= 1e-8 */
	int train_end; /* train rows [0, train_end) */
	int val_end;   /* val rows [train_end, val_end); test [val_end, n) */
	double step_seconds; /* median spacing of timestamps (0 if none) */
};

enum fc_split { FC_SPLIT_TRAIN, FC_SPLIT_VAL, FC_SPLIT_TEST };

/*
 * Load path (.csv or .csv.gz).  columns: NULL or "all" for every numeric
 * column, else a comma-separated list of column names.  On success *ret is
 * a new dataset owned by the caller (free with fc_dataset_free).  Errors
 * (unreadable file, ragged rows, non-numeric cell, unknown column, too few
 * rows) return a negative errno with "FILE:LINE: reason" in errbuf.
 */
int fc_dataset_load(const char *path, const char *columns,
		    struct fc_dataset **ret, char *errbuf, size_t errbuf_size);
void fc_dataset_free(struct fc_dataset *d);

/* First row of the first window of a split (a - L; 0 for train), and the
 * number of windows of lookback L and horizon H in it (0 if too short). */
int fc_dataset_split_start(const struct fc_dataset *d, enum fc_split s,
			   int lookback);
int fc_dataset_split_windows(const struct fc_dataset *d, enum fc_split s,
			     int lookback, int horizon);

/* ---- offline training (forecast/train.c) -------------------------------
 * Pretrain a model on the train split of a dataset, every channel as its
 * own univariate series: loss = forecast MSE + recon_weight * masked-
 * reconstruction MSE (each window is seen twice: unmasked for the forecast,
 * masked for the reconstruction), AdamW, gradient clipping, early stopping
 * on the validation forecast MSE (the best epoch's weights are returned;
 * with ema > 0 the moving average of the weights is validated too, and
 * the better of the two is the epoch's candidate).
 * Deterministic for a given seed and thread count (it sets BLAS to one
 * thread and splits batches itself).  The test split is
 * never looked at.
 */
#define FC_TRAIN_MAX_EPOCHS 200

/* Learning-rate schedule of fc_train (lr is the starting rate). */
enum fc_lr_schedule {
	FC_LR_CONSTANT = 0, /* lr throughout */
	FC_LR_PLATEAU = 1,  /* lr *= lr_factor after an epoch without a
			     * better validation MSE */
	FC_LR_STEP = 2,	    /* lr *= lr_factor after every epoch */
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
	float ema;	    /* decay of an exponential moving average of
			     * the weights, validated next to them; 0 =
			     * off, 0.9998 */
};

void fc_train_config_default(struct fc_train_config *t);

struct fc_train_progress {
	int epoch, epochs; /* 1-based epoch, maximum */
	int step, steps;   /* 1-based step within the epoch, steps in it */
	float loss;	   /* running mean training loss of this epoch */
	double elapsed;	   /* seconds since training started */
	double eta;	   /* seconds left in this epoch (estimate) */
	int epoch_done;	   /* 1 at the end of an epoch: val_mse is set */
	float val_mse;	   /* validation forecast MSE (scaled space) */
	float val_mse_ema; /* the same of the weights' average (NAN: off) */
	int improved;	   /* the epoch is the best so far */
	float lr;	   /* learning rate of the current step */
};

/* Called after every step and at the end of every epoch; return nonzero
 * to stop training (fc_train then returns -ECANCELED). */
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

/*
 * Train a new model with config mc on d (scaled values), lookback and
 * horizon from mc.  On success *ret is the best model (owned by the
 * caller, scaler set from d) and *report is filled.  progress may be NULL.
 */
int fc_train(const struct fc_config *mc, const struct fc_train_config *tc,
	     const struct fc_dataset *d, fc_train_progress_fn progress,
	     void *user, struct fc_model **ret, struct fc_train_report *report,
	     char *errbuf, size_t errbuf_size);

/*
 * Forecast accuracy on a split under ../shared/EVAL.md: every window
 * (stride 1) of every channel, scaled space, MSE and MAE over every
 * horizon step.  adapter may be NULL.  ws must allow >= 1 window.
 */
int fc_evaluate(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const struct fc_dataset *d,
		enum fc_split split, double *ret_mse, double *ret_mae);

/* ---- dates (forecast/timeparse.c) ---------------------------------------
 * The one date grammar of the tree (written out at the top of
 * forecast/timeparse.c): CSV timestamps, message timestamps and the
 * operator's --since/--at.  "2016-07-01 00:00:00", "2016/7/1 0:00",
 * "2016-07-01T00:00:00.5+02:00", "2016-07-01"; always proleptic Gregorian,
 * UTC unless a zone says otherwise.
 */
#define FC_TIME_RFC3339 1u /* exactly RFC 3339 (message payloads) */
#define FC_TIME_EPOCH	2u /* also whole epoch seconds, as strtoll() */

/* A parsed time: sec counts whole seconds since 1970-01-01T00:00:00Z with
 * the zone applied; nsec holds the fraction's first nine digits; frac (not
 * under FC_TIME_RFC3339) the fraction as strtod() reads it, exponent
 * included.  Both are 0 without a fraction. */
struct fc_time {
	int64_t sec;
	int32_t nsec;
	double frac;
};

/* Parse s[0..len) (no NUL needed) into *ret, untouched on failure.  0,
 * -EINVAL when it is not a time of the grammar flags select, -ENOMEM. */
int fc_time_parse(const char *s, size_t len, unsigned flags,
		  struct fc_time *ret);

/* The NUL-terminated text of an operator's --since/--at (FC_TIME_EPOCH) as
 * whole epoch seconds, a fraction dropped; 0 or -EINVAL/-ENOMEM. */
int fc_time_parse_seconds(const char *text, int64_t *ret_sec);

#endif
