/*
 * Offline pretraining and split evaluation.
 *
 * Every channel of the dataset is its own univariate series; a training
 * example is (channel, window).  Each step draws a batch of windows from a
 * seeded shuffle, samples one mask per window, and runs one pass of 2B rows:
 * the B windows unmasked for the forecast loss and the same B windows masked
 * for the reconstruction loss.  With threads > 1 the batch is split into
 * one contiguous slice per worker thread (each with its own workspace,
 * single-threaded BLAS), the slices' losses are weighted by their share of
 * the batch and their gradients summed in a fixed order, so a run is
 * deterministic for a given seed and thread count.  The learning rate
 * follows tc->lr_schedule.  With tc->ema > 0 an exponential moving average
 * of the weights (Polyak averaging) is kept next to them; it does not
 * change the training trajectory, and after every epoch both the weights
 * and their average are validated: the better of the two is the epoch's
 * candidate for early stopping and for the returned model.  No I/O, no
 * logging: progress goes through the callback.
 */
#include "forecast/internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fc_train_config_default(struct fc_train_config *t)
{
	memset(t, 0, sizeof(*t));
	t->epochs = 30;
	t->batch = 64;
	t->lr = 1e-3f;
	t->weight_decay = 1e-4f;
	t->recon_weight = 0.5f;
	t->clip = 1.0f;
	t->patience = 3;
	t->seed = 1;
	t->threads = 1;
	t->epoch_windows = 0;
	t->lr_schedule = FC_LR_CONSTANT;
	t->lr_factor = 0.5f;
	t->ema = 0.9998f;
}

/* Learning rate of step `k` (0-based, of `n` in the whole run) in an epoch
 * whose plateau/step rate is `lr_ep`. */
static float sched_lr(const struct fc_train_config *tc, float lr_ep, long k,
		      long n)
{
	if (tc->lr_schedule != FC_LR_COSINE)
		return lr_ep;
	return (float)((double)tc->lr * 0.5 *
		       (1.0 + cos(M_PI * (double)k / (double)n)));
}

/* window w of channel c starting at row s: x [L], y [H] */
static void gather(const struct fc_dataset *d, int c, int row, int L, int H,
		   float *x, float *y)
{
	const float *v = d->scaled + (size_t)row * d->n_cols + c;
	for (int t = 0; t < L; t++)
		x[t] = v[(size_t)t * d->n_cols];
	if (y)
		for (int t = 0; t < H; t++)
			y[t] = v[(size_t)(L + t) * d->n_cols];
}

int fc_evaluate(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const struct fc_dataset *d,
		enum fc_split split, double *ret_mse, double *ret_mae)
{
	int L = m->cfg.lookback, H = m->cfg.horizon;
	int nw = fc_dataset_split_windows(d, split, L, H);
	int s = fc_dataset_split_start(d, split, L);
	int B = fc_workspace_max_batch(ws);
	if (nw <= 0)
		return -EINVAL;
	/* scratch for one chunk: inputs, targets, outputs in the workspace's
	 * gradient buffers would alias; use the activation-free tail of the
	 * gradient block instead: g.x [B, L], g.pred [B, H], g.fc [B, H] */
	float *x = ws->g.x, *y = ws->g.pred, *out = ws->g.fc;
	double se = 0, ae = 0;
	for (int c = 0; c < d->n_cols; c++)
		for (int i0 = 0; i0 < nw; i0 += B) {
			int b = nw - i0 < B ? nw - i0 : B;
			for (int j = 0; j < b; j++)
				gather(d, c, s + i0 + j, L, H,
				       x + (size_t)j * L, y + (size_t)j * H);
			int r = fc_forecast(m, adapter, ws, x, b, out);
			if (r < 0)
				return r;
			for (size_t k = 0; k < (size_t)b * H; k++) {
				double e = (double)out[k] - (double)y[k];
				se += e * e;
				ae += fabs(e);
			}
		}
	double n = (double)nw * d->n_cols * H;
	*ret_mse = se / n;
	*ret_mae = ae / n;
	return 0;
}

#define MAX_WORKERS 16

struct worker {
	struct fc_model *m;
	struct fc_workspace *ws;
	struct fc_batch bt;
	struct fc_loss loss;
	int rc;
};

struct pool {
	struct fc_model *m;
	int n; /* workers; worker 0 runs on the caller's thread */
	struct worker w[MAX_WORKERS];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->rc = w->bt.bf + w->bt.br > 0 ? fc_pass(w->m, w->m->params, NULL,
						  w->ws, &w->bt, 1, &w->loss)
					: 0;
	return NULL;
}

/* One step over the whole batch: every worker takes a contiguous slice
 * (threads 1..n-1 are started for the step and joined); returns the first
 * error; the summed gradient is left in worker 0's ws->gp. */
static int pool_step(struct pool *p, const float *x, const float *y,
		     const float *mk, int b, int L, int H, float wr,
		     struct fc_loss *ret)
{
	int per = (b + p->n - 1) / p->n, started = 0;
	pthread_t th[MAX_WORKERS];
	for (int i = 0; i < p->n; i++) {
		int lo = i * per, hi = lo + per < b ? lo + per : b;
		int nb = hi > lo ? hi - lo : 0;
		float share = (float)nb / (float)b;
		p->w[i].bt = (struct fc_batch){x + (size_t)lo * L,
					       y + (size_t)lo * H,
					       nb,
					       x + (size_t)lo * L,
					       mk + (size_t)lo * L,
					       nb,
					       share,
					       share * wr};
	}
	for (int i = 1; i < p->n; i++) {
		if (pthread_create(&th[i], NULL, worker_main, &p->w[i]) != 0)
			break;
		started = i;
	}
	for (int i = started + 1; i < p->n; i++) /* could not start: here */
		worker_main(&p->w[i]);
	worker_main(&p->w[0]);
	for (int i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	struct fc_loss sum = {0, 0, 0};
	size_t np = p->m->lo.n_params;
	for (int i = 0; i < p->n; i++) {
		struct worker *w = &p->w[i];
		if (w->rc < 0)
			return w->rc;
		if (w->bt.bf == 0)
			continue;
		sum.total += w->loss.total;
		sum.forecast += w->bt.wf * w->loss.forecast;
		sum.recon += w->bt.wf * w->loss.recon;
		if (i > 0)
			for (size_t k = 0; k < np; k++)
				p->w[0].ws->gp[k] += w->ws->gp[k];
	}
	*ret = sum;
	return 0;
}

static void pool_free(struct pool *p)
{
	for (int i = 0; i < p->n; i++)
		fc_workspace_free(p->w[i].ws);
}

/* n workers with workspaces for their slice of b windows (x2 rows). */
static int pool_init(struct pool *p, struct fc_model *m, int n, int b)
{
	memset(p, 0, sizeof(*p));
	p->m = m;
	int per = (b + n - 1) / n;
	for (int i = 0; i < n; i++) {
		p->w[i].m = m;
		p->n = i + 1;
		if (fc_workspace_new(m, 2 * per, &p->w[i].ws) < 0)
			return -ENOMEM;
	}
	return 0;
}

int fc_train(const struct fc_config *mc, const struct fc_train_config *tc,
	     const struct fc_dataset *d, fc_train_progress_fn progress,
	     void *user, struct fc_model **ret, struct fc_train_report *rep,
	     char *errbuf, size_t errbuf_size)
{
	int L = mc->lookback, H = mc->horizon, r;
	r = fc_config_check(mc, errbuf, errbuf_size);
	if (r < 0)
		return r;
	if (tc->epochs < 1 || tc->epochs > FC_TRAIN_MAX_EPOCHS ||
	    tc->batch < 1 || tc->batch > 65536 || !(tc->lr >= 0.0f) ||
	    tc->patience < 1 || !(tc->clip > 0.0f) || tc->threads < 1 ||
	    tc->lr_schedule < FC_LR_CONSTANT ||
	    tc->lr_schedule > FC_LR_COSINE ||
	    !(tc->lr_factor > 0.0f && tc->lr_factor <= 1.0f) ||
	    !(tc->ema >= 0.0f && tc->ema < 1.0f))
		return fc_fail(errbuf, errbuf_size, -EINVAL,
			       "invalid training settings (epochs 1..%d, batch "
			       ">= 1, lr >= 0, patience >= 1, clip > 0, "
			       "lr_factor in (0, 1], ema in [0, 1))",
			       FC_TRAIN_MAX_EPOCHS);
	int ntr = fc_dataset_split_windows(d, FC_SPLIT_TRAIN, L, H);
	int nva = fc_dataset_split_windows(d, FC_SPLIT_VAL, L, H);
	int s_tr = fc_dataset_split_start(d, FC_SPLIT_TRAIN, L);
	if (ntr < 1 || nva < 1)
		return fc_fail(errbuf, errbuf_size, -EINVAL,
			       "%s: too short for lookback %d and horizon %d "
			       "(%d train, %d validation windows)",
			       d->name, L, H, ntr, nva);
	memset(rep, 0, sizeof(*rep));
	/* own split across worker threads; BLAS stays single-threaded */
	fc_blas_set_threads(1);
	int nthreads = tc->threads < MAX_WORKERS ? tc->threads : MAX_WORKERS;
	if (nthreads > tc->batch)
		nthreads = tc->batch;
	rep->threads = nthreads;
	rep->train_windows = ntr;
	rep->val_windows = nva;
	rep->channels = d->n_cols;

	struct fc_model *m = NULL;
	struct fc_workspace *ws = NULL;
	struct pool pool = {0};
	int B = tc->batch, C = d->n_cols;
	size_t total = (size_t)ntr * (size_t)C;
	size_t np;
	uint32_t *idx = NULL;
	float *xb = NULL, *best = NULL, *adam = NULL, *ema = NULL, *raw = NULL;
	r = fc_model_new(mc, tc->seed, &m, errbuf, errbuf_size);
	if (r < 0)
		return r;
	np = m->lo.n_params;
	r = fc_model_set_scaler(m, C, d->mean, d->std,
				(const char *const *)d->col_names);
	if (r >= 0)
		r = fc_workspace_new(m, 2 * B, &ws);
	if (r >= 0)
		r = pool_init(&pool, m, nthreads, B);
	idx = malloc(sizeof(*idx) * total);
	xb = malloc(sizeof(float) * (size_t)B * (2 * (size_t)L + (size_t)H));
	best = malloc(sizeof(float) * np);
	adam = calloc(fc_adam_state_len(np), sizeof(float));
	if (tc->ema > 0.0f) {
		ema = calloc(np, sizeof(float));
		raw = malloc(sizeof(float) * np);
	}
	if (r < 0 || !idx || !xb || !best || !adam ||
	    (tc->ema > 0.0f && (!ema || !raw))) {
		r = fc_fail(errbuf, errbuf_size, -ENOMEM, "out of memory");
		goto out;
	}
	float *yb = xb + (size_t)B * L, *mb = yb + (size_t)B * H;
	for (size_t i = 0; i < total; i++)
		idx[i] = (uint32_t)i;
	memcpy(best, m->params, sizeof(float) * np);

	struct fc_adam opt = {tc->lr, 0.9f, 0.999f, 1e-8f, tc->weight_decay};
	uint64_t rng = tc->seed * 0x9e3779b97f4a7c15ull + 7;
	size_t per_epoch = total;
	if (tc->epoch_windows > 0 && (size_t)tc->epoch_windows < total)
		per_epoch = (size_t)tc->epoch_windows;
	int steps = (int)((per_epoch + (size_t)B - 1) / (size_t)B);
	long step_no = 0;
	float best_val = INFINITY, lr_ep = tc->lr;
	int bad = 0;
	double t0 = now_sec(), c0 = cpu_sec();
	for (int ep = 1; ep <= tc->epochs; ep++) {
		/* Fisher-Yates over all windows; the epoch uses a prefix */
		for (size_t i = total - 1; i > 0; i--) {
			size_t j = (size_t)(fc_rng_next(&rng) % (i + 1));
			uint32_t t = idx[i];
			idx[i] = idx[j];
			idx[j] = t;
		}
		double sum = 0, te = now_sec();
		rep->lr[ep - 1] =
		    sched_lr(tc, lr_ep, step_no, (long)tc->epochs * steps);
		for (int st = 0; st < steps; st++) {
			size_t i0 = (size_t)st * (size_t)B;
			int b = per_epoch - i0 < (size_t)B
				    ? (int)(per_epoch - i0)
				    : B;
			for (int j = 0; j < b; j++) {
				uint32_t id = idx[i0 + (size_t)j];
				int c = (int)(id / (uint32_t)ntr);
				int w = (int)(id % (uint32_t)ntr);
				gather(d, c, s_tr + w, L, H, xb + (size_t)j * L,
				       yb + (size_t)j * H);
				fc_mask_sample(mb + (size_t)j * L, L,
					       mc->mask_ratio, mc->mask_seg,
					       &rng);
			}
			struct fc_loss loss;
			r = pool_step(&pool, xb, yb, mb, b, L, H,
				      tc->recon_weight, &loss);
			if (r < 0) {
				r = fc_fail(errbuf, errbuf_size, r,
					    "epoch %d step %d: %s", ep, st + 1,
					    r == -ERANGE ? "loss is not finite"
							 : "invalid window");
				goto out;
			}
			float *gp = pool.w[0].ws->gp;
			fc_grad_clip(gp, np, tc->clip);
			opt.lr = sched_lr(tc, lr_ep, step_no,
					  (long)tc->epochs * steps);
			fc_adam_step(&opt, m->params, gp, adam, np, ++step_no);
			if (ema) { /* from 0; debiased when it is used */
				float k = 1.0f - tc->ema;
				for (size_t i = 0; i < np; i++)
					ema[i] += k * (m->params[i] - ema[i]);
			}
			sum += (double)loss.total;
			if (progress) {
				double el = now_sec() - te;
				struct fc_train_progress p = {
				    .epoch = ep,
				    .epochs = tc->epochs,
				    .step = st + 1,
				    .steps = steps,
				    .loss = (float)(sum / (st + 1)),
				    .elapsed = now_sec() - t0,
				    .eta = el / (st + 1) * (steps - st - 1),
				    .lr = opt.lr,
				};
				if (progress(user, &p)) {
					r = fc_fail(errbuf, errbuf_size,
						    -ECANCELED, "interrupted");
					goto out;
				}
			}
		}
		double mse, mae, mse_ema = NAN;
		int use_ema = 0;
		r = fc_evaluate(m, NULL, ws, d, FC_SPLIT_VAL, &mse, &mae);
		if (r >= 0 && ema) {
			/* the average (bias-corrected as Adam's moments are)
			 * is a second candidate: whichever of the two
			 * validates better is this epoch's model */
			float cb = (float)(1.0 / (1.0 - pow((double)tc->ema,
							    (double)step_no)));
			memcpy(raw, m->params, sizeof(float) * np);
			for (size_t i = 0; i < np; i++)
				m->params[i] = ema[i] * cb;
			r = fc_evaluate(m, NULL, ws, d, FC_SPLIT_VAL, &mse_ema,
					&mae);
			use_ema = mse_ema < mse;
			if (!use_ema)
				memcpy(m->params, raw, sizeof(float) * np);
		}
		if (r < 0) {
			r = fc_fail(errbuf, errbuf_size, r,
				    "validation failed: invalid window");
			goto out;
		}
		rep->epochs_run = ep;
		rep->train_loss[ep - 1] = (float)(sum / steps);
		rep->val_mse[ep - 1] = (float)mse;
		rep->val_mse_ema[ep - 1] = (float)mse_ema;
		float v = (float)(use_ema ? mse_ema : mse);
		int improved = v < best_val;
		if (improved) {
			best_val = v;
			rep->best_epoch = ep;
			rep->best_is_ema = use_ema;
			memcpy(best, m->params, sizeof(float) * np);
			bad = 0;
		} else {
			bad++;
			if (tc->lr_schedule == FC_LR_PLATEAU)
				lr_ep *= tc->lr_factor;
		}
		if (tc->lr_schedule == FC_LR_STEP)
			lr_ep *= tc->lr_factor;
		if (use_ema)
			memcpy(m->params, raw, sizeof(float) * np);
		if (progress) {
			struct fc_train_progress p = {
			    .epoch = ep,
			    .epochs = tc->epochs,
			    .step = steps,
			    .steps = steps,
			    .loss = rep->train_loss[ep - 1],
			    .elapsed = now_sec() - t0,
			    .epoch_done = 1,
			    .val_mse = (float)mse,
			    .val_mse_ema = (float)mse_ema,
			    .improved = improved,
			    .lr = rep->lr[ep - 1],
			};
			if (progress(user, &p)) {
				r = fc_fail(errbuf, errbuf_size, -ECANCELED,
					    "interrupted");
				goto out;
			}
		}
		if (bad >= tc->patience)
			break;
	}
	memcpy(m->params, best, sizeof(float) * np);
	rep->best_val_mse = best_val;
	rep->seconds = now_sec() - t0;
	rep->cpu_seconds = cpu_sec() - c0;
	*ret = m;
	m = NULL;
	r = 0;
out:
	fc_model_free(m);
	fc_workspace_free(ws);
	pool_free(&pool);
	free(idx);
	free(xb);
	free(best);
	free(adam);
	free(ema);
	free(raw);
	return r;
}
