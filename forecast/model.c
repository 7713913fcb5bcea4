/*
 * The public model API: configs, models, adapters, workspaces, forecasting,
 * the masked-segment sampler, losses with gradients, AdamW and clipping.
 * The arithmetic lives in nn.c; this file owns memory and checks input.
 */
#include "forecast/internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* AVX2 versions of the optimizer loops, picked at run time (the build
 * stays portable) */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FC_AVX2 1
#endif

/* ---- models ----------------------------------------------------------------
 */

int fc_model_alloc(const struct fc_config *cfg, struct fc_model **ret)
{
	struct fc_model *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	static uint64_t next_id;
	m->cfg = *cfg;
	m->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	nn_layout(&m->lo, cfg);
	m->params = calloc(m->lo.n_params, sizeof(float));
	if (!m->params) {
		free(m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

int fc_model_new(const struct fc_config *c, uint64_t seed,
		 struct fc_model **ret, char *errbuf, size_t errbuf_size)
{
	struct fc_model *m;
	int r = fc_config_check(c, errbuf, errbuf_size);
	if (r < 0)
		return r;
	r = fc_model_alloc(c, &m);
	if (r < 0)
		return fc_fail(errbuf, errbuf_size, r, "out of memory");
	nn_init_params(&m->lo, m->params, seed);
	*ret = m;
	return 0;
}

static void scaler_free(struct fc_model *m)
{
	free(m->mean);
	free(m->std);
	free(m->names);
	free(m->name_ptrs);
	m->mean = m->std = NULL;
	m->names = NULL;
	m->name_ptrs = NULL;
	m->n_ch = 0;
}

void fc_model_free(struct fc_model *m)
{
	if (!m)
		return;
	scaler_free(m);
	free(m->params);
	free(m);
}

const struct fc_config *fc_model_config(const struct fc_model *m)
{
	return &m->cfg;
}

size_t fc_model_param_count(const struct fc_model *m)
{
	return m->lo.n_params;
}

int fc_model_set_scaler(struct fc_model *m, int n, const float *mean,
			const float *std, const char *const *names)
{
	if (n < 0 || n > 100000)
		return -EINVAL;
	float *mu = calloc((size_t)n + 1, sizeof(float));
	float *sd = calloc((size_t)n + 1, sizeof(float));
	char(*nm)[FC_NAME_MAX] = calloc((size_t)n + 1, FC_NAME_MAX);
	const char **np = calloc((size_t)n + 1, sizeof(char *));
	if (!mu || !sd || !nm || !np) {
		free(mu), free(sd), free(nm), free(np);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		mu[i] = mean[i];
		sd[i] = std[i];
		if (names && names[i])
			snprintf(nm[i], FC_NAME_MAX, "%s", names[i]);
		else
			snprintf(nm[i], FC_NAME_MAX, "%d", i);
		np[i] = nm[i];
	}
	scaler_free(m);
	m->n_ch = n;
	m->mean = mu;
	m->std = sd;
	m->names = nm;
	m->name_ptrs = np;
	return 0;
}

int fc_model_scaler(const struct fc_model *m, const float **ret_mean,
		    const float **ret_std, const char *const **ret_names)
{
	if (ret_mean)
		*ret_mean = m->mean;
	if (ret_std)
		*ret_std = m->std;
	if (ret_names)
		*ret_names = (const char *const *)m->name_ptrs;
	return m->n_ch;
}

/* ---- adapters ------------------------------------------------------------ */

size_t fc_adapter_len(const struct fc_model *m)
{
	return m->lo.n_adapter;
}

void fc_adapter_init(const struct fc_model *m, float *adapter, uint64_t seed)
{
	nn_init_adapter(&m->lo, adapter, seed);
}

int fc_adapter_family_range(const struct fc_model *m, unsigned family,
			    size_t *ret_off, size_t *ret_len)
{
	for (int i = 0; i < 4; i++)
		if (family == 1u << i) {
			*ret_off = m->lo.fam_off[i];
			*ret_len = m->lo.fam_len[i];
			return 0;
		}
	return -EINVAL;
}

size_t fc_adapter_tensor_count(const struct fc_model *m)
{
	size_t n = 0;
	for (int k = 0; k < A_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++)
			if (m->lo.alen[k][l])
				n++;
	return n;
}

int fc_adapter_tensor(const struct fc_model *m, size_t i, const char **ret_name,
		      size_t *ret_off, size_t *ret_len, unsigned *ret_family)
{
	/* in block order: by offset */
	size_t n = 0;
	size_t best_off = 0;
	int bk = -1, bl = -1;
	for (size_t want = 0; want <= i; want++) {
		bk = -1;
		for (int k = 0; k < A_COUNT; k++)
			for (int l = 0; l < FC_MAX_LAYERS; l++) {
				if (!m->lo.alen[k][l])
					continue;
				size_t o = m->lo.aoff[k][l];
				if ((want == 0 || o > best_off) &&
				    (bk < 0 || o < m->lo.aoff[bk][bl])) {
					bk = k;
					bl = l;
				}
			}
		if (bk < 0)
			return -ERANGE;
		best_off = m->lo.aoff[bk][bl];
		n++;
	}
	(void)n;
	if (ret_name)
		*ret_name = nn_atensor_name(bk);
	if (ret_off)
		*ret_off = m->lo.aoff[bk][bl];
	if (ret_len)
		*ret_len = m->lo.alen[bk][bl];
	if (ret_family)
		*ret_family = m->lo.afamily[bk];
	return 0;
}

/* ---- workspaces -------------------------------------------------------- */

int fc_workspace_new(const struct fc_model *m, int max_batch,
		     struct fc_workspace **ret)
{
	if (max_batch < 1 || max_batch > 1000000)
		return -EINVAL;
	struct fc_workspace *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	ws->cfg = m->cfg;
	ws->lo = m->lo;
	ws->max_batch = max_batch;
	size_t na = nn_acts_carve(&ws->a, NULL, &ws->lo, max_batch);
	size_t tot =
	    2 * na + ws->lo.scratch + ws->lo.n_params + 2 * ws->lo.n_adapter;
	ws->mem = calloc(tot, sizeof(float));
	if (!ws->mem) {
		free(ws);
		return -ENOMEM;
	}
	nn_acts_carve(&ws->a, ws->mem, &ws->lo, max_batch);
	nn_acts_carve(&ws->g, ws->mem + na, &ws->lo, max_batch);
	ws->scratch = ws->mem + 2 * na;
	ws->gp = ws->scratch + ws->lo.scratch;
	ws->gad = ws->gp + ws->lo.n_params;
	ws->cached = ws->gad + ws->lo.n_adapter;
	*ret = ws;
	return 0;
}

void fc_workspace_free(struct fc_workspace *ws)
{
	if (!ws)
		return;
	free(ws->mem);
	free(ws);
}

int fc_workspace_max_batch(const struct fc_workspace *ws)
{
	return ws->max_batch;
}

static int ws_fits(const struct fc_model *m, const struct fc_workspace *ws,
		   int rows)
{
	return rows >= 0 && rows <= ws->max_batch &&
	       !memcmp(&ws->cfg, &m->cfg, sizeof(m->cfg));
}

/* ---- forecasting and losses ------------------------------------------- */

/* Merging adapter changes no base weight when every LoRA B and every
 * norm delta is zero (B = 0 makes B @ A = 0 whatever A is): the case of
 * every series that adapts its output calibration only. */
static int merge_is_identity(const struct nn_layout *lo, const float *ad)
{
	static const int zero[] = {A_EMB_B, A_IH_B,  A_HH_B,  A_Q_B,   A_V_B,
				   A_FC1_B, A_FC2_B, A_LN1_W, A_LN1_B, A_LN2_W,
				   A_LN2_B, A_LNF_W, A_LNF_B, A_HEAD_B};
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			const float *t = ad + lo->aoff[zero[i]][l];
			for (size_t k = 0; k < lo->alen[zero[i]][l]; k++)
				if (t[k] != 0.0f)
					return 0;
		}
	return 1;
}

/* Effective weights for base p and adapter (may be NULL), merged into the
 * workspace unless the merge would change nothing or the cached merge is
 * for equal contents. */
static void effective(struct nn_weights *w, const struct fc_model *m,
		      const float *p, const float *adapter,
		      struct fc_workspace *ws)
{
	const struct nn_layout *lo = &m->lo;
	size_t bytes = sizeof(float) * lo->n_adapter;
	if (!adapter) {
		/* base pointers only; the merged copies stay valid */
		nn_weights(w, lo, p, NULL, NULL);
		return;
	}
	if (merge_is_identity(lo, adapter)) {
		/* bit-identical to the merge, without copying the weights */
		nn_weights(w, lo, p, NULL, NULL);
		w->cal_a = adapter + lo->aoff[A_CAL_A][0];
		w->cal_c = adapter + lo->aoff[A_CAL_C][0];
		return;
	}
	if (ws->cache_valid && ws->cached_model == m->id &&
	    ws->cached_params == p && !memcmp(ws->cached, adapter, bytes)) {
		*w = ws->cached_w;
		w->cal_a = adapter + (ws->cached_w.cal_a - ws->cached);
		w->cal_c = adapter + (ws->cached_w.cal_c - ws->cached);
		return;
	}
	nn_weights(w, lo, p, adapter, ws->scratch);
	memcpy(ws->cached, adapter, bytes);
	ws->cached_params = p;
	ws->cached_model = m->id;
	ws->cached_w = *w;
	/* calibration pointers relative to the cached copy */
	ws->cached_w.cal_a = ws->cached + (w->cal_a - adapter);
	ws->cached_w.cal_c = ws->cached + (w->cal_c - adapter);
	ws->cache_valid = 1;
}

/* Forecast b windows x with adapter (may be NULL) and, when cal is not
 * NULL, a calibration per window instead of the adapter's; the results
 * stay in ws->a (pred, and fc, mu, sd of every row). */
static int forecast_pass(const struct fc_model *m, const float *adapter,
			 const float *const *cal, struct fc_workspace *ws,
			 const float *x, int b)
{
	if (!ws_fits(m, ws, b))
		return -EINVAL;
	if (b == 0)
		return 0;
	const struct nn_layout *lo = &m->lo;
	struct nn_weights w;
	effective(&w, m, m->params, adapter, ws);
	w.cal_row = cal;
	memcpy(ws->a.x, x, sizeof(float) * (size_t)b * lo->L);
	memset(ws->a.m, 0, sizeof(float) * (size_t)b * lo->L);
	return nn_forecast(lo, &w, &ws->a, b);
}

/* The same into y [b, H]. */
static int forecast(const struct fc_model *m, const float *adapter,
		    const float *const *cal, struct fc_workspace *ws,
		    const float *x, int b, float *y)
{
	int r = forecast_pass(m, adapter, cal, ws, x, b);
	if (r < 0 || b == 0)
		return r;
	memcpy(y, ws->a.pred, sizeof(float) * (size_t)b * m->lo.H);
	return 0;
}

int fc_forecast(const struct fc_model *m, const float *adapter,
		struct fc_workspace *ws, const float *x, int b, float *y)
{
	return forecast(m, adapter, NULL, ws, x, b, y);
}

int fc_forecast_calibrated(const struct fc_model *m, struct fc_workspace *ws,
			   const float *x, int b, const float *const *cal,
			   float *y)
{
	return forecast(m, NULL, cal, ws, x, b, y);
}

/* The forward pass of fc_pass over batch bt (checked), activations kept
 * in ws->a for a backward; w gets the effective weights. */
static int pass_forward(const struct fc_model *m, const float *p,
			const float *adapter, struct fc_workspace *ws,
			const struct fc_batch *bt, struct nn_weights *w)
{
	const struct nn_layout *lo = &m->lo;
	int bf = bt->bf, br = bt->br, L = lo->L;
	if (bf < 0 || br < 0 || !ws_fits(m, ws, bf + br))
		return -EINVAL;
	if ((bf && (!bt->xf || !bt->yf)) || (br && (!bt->xr || !bt->mr)))
		return -EINVAL;
	for (size_t i = 0; i < (size_t)bf * lo->H; i++)
		if (!isfinite(bt->yf[i]))
			return -EINVAL;
	effective(w, m, p, adapter, ws);
	if (bf) {
		memcpy(ws->a.x, bt->xf, sizeof(float) * (size_t)bf * L);
		memset(ws->a.m, 0, sizeof(float) * (size_t)bf * L);
	}
	if (br) {
		memcpy(ws->a.x + (size_t)bf * L, bt->xr,
		       sizeof(float) * (size_t)br * L);
		memcpy(ws->a.m + (size_t)bf * L, bt->mr,
		       sizeof(float) * (size_t)br * L);
	}
	return nn_forward(lo, w, &ws->a, bf, br);
}

int fc_pass(const struct fc_model *m, const float *p, const float *adapter,
	    struct fc_workspace *ws, const struct fc_batch *bt, int want_grad,
	    struct fc_loss *ret)
{
	const struct nn_layout *lo = &m->lo;
	int bf = bt->bf, br = bt->br;
	struct nn_weights w;
	int r = pass_forward(m, p, adapter, ws, bt, &w);
	if (r < 0)
		return r;
	float lf, lr;
	nn_loss(lo, &ws->a, want_grad ? &ws->g : NULL, bt->yf, bf, br, bt->wf,
		bt->wr, &lf, &lr);
	if (!isfinite(lf) || !isfinite(lr))
		return -ERANGE;
	if (want_grad == FC_PASS_GRAD_CALIB && adapter) {
		/* The output calibration is the model's last step: its
		 * gradient needs no backward pass through the rest (the same
		 * expressions as nn_backward's forecast head). */
		const size_t H = (size_t)lo->H;
		float *ga = ws->gad + lo->aoff[A_CAL_A][0];
		float *gc = ws->gad + lo->aoff[A_CAL_C][0];
		memset(ws->gad, 0, sizeof(float) * lo->n_adapter);
		for (int b = 0; b < bf; b++)
			for (size_t j = 0; j < H; j++) {
				size_t i = (size_t)b * H + j;
				float dy = ws->g.pred[i] * ws->a.sd[b];
				ga[j] += dy * ws->a.fc[i];
				gc[j] += dy;
			}
	} else if (want_grad) {
		nn_backward(lo, &w, adapter, &ws->a, &ws->g, bf, br, ws->gp,
			    adapter ? ws->gad : NULL);
	}
	ret->forecast = lf;
	ret->recon = lr;
	ret->total = bt->wf * lf + bt->wr * lr;
	return 0;
}

int fc_loss_grad(const struct fc_model *m, const float *adapter,
		 struct fc_workspace *ws, const struct fc_batch *batch,
		 float *grad, unsigned families, struct fc_loss *ret)
{
	if (grad && !adapter)
		return -EINVAL;
	struct fc_loss l;
	int want = !grad			? 0
		   : families == FC_ADAPT_CALIB ? FC_PASS_GRAD_CALIB
						: 1;
	int r = fc_pass(m, m->params, adapter, ws, batch, want, &l);
	if (r < 0)
		return r;
	if (grad) {
		memcpy(grad, ws->gad, sizeof(float) * m->lo.n_adapter);
		for (int i = 0; i < 4; i++)
			if (!(families & (1u << i)))
				memset(grad + m->lo.fam_off[i], 0,
				       sizeof(float) * m->lo.fam_len[i]);
	}
	*ret = l;
	return 0;
}

/* ---- the calibration-only fast paths -------------------------------------
 * The same expressions, in the same order, as nn.c's forecast_head (the
 * calibration and de-normalisation), nn_loss (the forecast part) and
 * fc_pass's FC_PASS_GRAD_CALIB branch, so that a loss or forecast built
 * from a cached frozen pass rounds as the full pass would.
 */

static void raw_copy(const struct fc_model *m, const struct fc_workspace *ws,
		     int b, const struct fc_head_raw *raw)
{
	memcpy(raw->fc, ws->a.fc, sizeof(float) * (size_t)b * m->lo.H);
	memcpy(raw->mu, ws->a.mu, sizeof(float) * (size_t)b);
	memcpy(raw->sd, ws->a.sd, sizeof(float) * (size_t)b);
}

int fc_forecast_raw(const struct fc_model *m, struct fc_workspace *ws,
		    const float *x, int b, const struct fc_head_raw *raw)
{
	int r = forecast_pass(m, NULL, NULL, ws, x, b);
	if (r < 0 || b == 0)
		return r;
	raw_copy(m, ws, b, raw);
	return 0;
}

int fc_loss_raw(const struct fc_model *m, struct fc_workspace *ws,
		const struct fc_batch *batch, const struct fc_head_raw *raw,
		float *ret_recon)
{
	struct nn_weights w;
	float lf, lr;
	int r = pass_forward(m, m->params, NULL, ws, batch, &w);
	if (r < 0)
		return r;
	nn_loss(&m->lo, &ws->a, NULL, batch->yf, batch->bf, batch->br,
		batch->wf, batch->wr, &lf, &lr);
	if (!isfinite(lr))
		return -ERANGE;
	if (batch->bf > 0)
		raw_copy(m, ws, batch->bf, raw);
	*ret_recon = lr;
	return 0;
}

/* One frozen forward over rows [r0, r0 + k) of the concatenation of bf
 * forecast rows xf and br recon rows xr (masks mr); k <= max batch.  The
 * forecast rows' head outputs go to raw, the recon rows' sums of squared
 * errors over hidden points and their counts to rsum/rcnt (nn_loss's
 * expressions, per row). */
static int frozen_slice(const struct fc_model *m, struct fc_workspace *ws,
			const float *xf, int bf, const float *xr,
			const float *mr, int r0, int k,
			const struct fc_head_raw *raw, double *rsum, int *rcnt)
{
	const struct nn_layout *lo = &m->lo;
	const size_t L = (size_t)lo->L, H = (size_t)lo->H;
	int nf = bf - r0 < 0 ? 0 : bf - r0 > k ? k : bf - r0, nr = k - nf;
	int q0 = r0 + nf - bf; /* first recon row of the slice */
	struct nn_weights w;
	effective(&w, m, m->params, NULL, ws);
	if (nf) {
		memcpy(ws->a.x, xf + (size_t)r0 * L, sizeof(float) * nf * L);
		memset(ws->a.m, 0, sizeof(float) * nf * L);
	}
	if (nr) {
		memcpy(ws->a.x + nf * L, xr + (size_t)q0 * L,
		       sizeof(float) * nr * L);
		memcpy(ws->a.m + nf * L, mr + (size_t)q0 * L,
		       sizeof(float) * nr * L);
	}
	int rc = nn_forward(lo, &w, &ws->a, nf, nr);
	if (rc < 0)
		return rc;
	if (nf) {
		memcpy(raw->fc + (size_t)r0 * H, ws->a.fc,
		       sizeof(float) * nf * H);
		memcpy(raw->mu + r0, ws->a.mu, sizeof(float) * nf);
		memcpy(raw->sd + r0, ws->a.sd, sizeof(float) * nf);
	}
	for (int b = 0; b < nr; b++) {
		double sum = 0;
		int cnt = 0;
		for (size_t t = 0; t < L; t++) {
			size_t i = (size_t)(nf + b) * L + t;
			if (ws->a.m[i] != 0.0f) {
				double e = (double)ws->a.recon[i] -
					   (double)ws->a.xn[i];
				sum += e * e;
				cnt++;
			}
		}
		rsum[q0 + b] = sum;
		rcnt[q0 + b] = cnt;
	}
	return 0;
}

int fc_frozen_pass(const struct fc_model *m, struct fc_workspace *ws,
		   const float *xf, int bf, const float *xr, const float *mr,
		   int br, const struct fc_head_raw *raw, double *rsum,
		   int *rcnt)
{
	const size_t H = (size_t)m->lo.H;
	int maxb = ws->max_batch, R = bf + br;
	if (bf < 0 || br < 0 || maxb < 1 || !ws_fits(m, ws, 1))
		return -EINVAL;
	for (int r0 = 0; r0 < R; r0 += maxb) {
		int k = R - r0 < maxb ? R - r0 : maxb;
		if (frozen_slice(m, ws, xf, bf, xr, mr, r0, k, raw, rsum,
				 rcnt) == 0)
			continue;
		/* a window that cannot be forecast: find it, keep the rest */
		for (int r = r0; r < r0 + k; r++) {
			if (frozen_slice(m, ws, xf, bf, xr, mr, r, 1, raw, rsum,
					 rcnt) == 0)
				continue;
			if (r < bf) {
				for (size_t j = 0; j < H; j++)
					raw->fc[(size_t)r * H + j] = NAN;
				raw->mu[r] = raw->sd[r] = NAN;
			} else {
				rsum[r - bf] = NAN;
				rcnt[r - bf] = 0;
			}
		}
	}
	return 0;
}

/* Calibrated, de-normalised forecast of row b, step j (forecast_head). */
static inline float calib_pred(const struct fc_head_raw *raw, size_t H, int b,
			       size_t j, const float *cal)
{
	float y = raw->fc[(size_t)b * H + j];
	if (cal)
		y = (1.0f + cal[j]) * y + cal[H + j];
	return y * raw->sd[b] + raw->mu[b];
}

void fc_calib_forecast(const struct fc_model *m, const struct fc_head_raw *raw,
		       int b, const float *cal, float *y)
{
	const size_t H = (size_t)m->lo.H;
	for (int r = 0; r < b; r++)
		for (size_t j = 0; j < H; j++)
			y[(size_t)r * H + j] = calib_pred(raw, H, r, j, cal);
}

int fc_calib_loss_grad(const struct fc_model *m, const struct fc_head_raw *raw,
		       const float *yf, int bf, const float *cal, float wf,
		       float wr, float recon, float *grad, struct fc_loss *ret)
{
	const size_t H = (size_t)m->lo.H;
	double lf = 0;
	for (size_t i = 0; i < (size_t)bf * H; i++)
		if (!isfinite(yf[i]))
			return -EINVAL;
	float sf = bf > 0 ? (float)(2.0 / ((double)bf * (double)H)) : 0;
	if (grad)
		memset(grad, 0, sizeof(float) * 2 * H);
	for (int b = 0; b < bf; b++)
		for (size_t j = 0; j < H; j++) {
			size_t i = (size_t)b * H + j;
			float p = calib_pred(raw, H, b, j, cal);
			double e = (double)p - (double)yf[i];
			lf += e * e;
			if (grad) {
				float dy = wf * sf * (p - yf[i]) * raw->sd[b];
				grad[j] += dy * raw->fc[i];
				grad[H + j] += dy;
			}
		}
	if (bf > 0)
		lf /= (double)bf * (double)H;
	float lff = (float)lf;
	if (!isfinite(lff) || !isfinite(recon))
		return -ERANGE;
	ret->forecast = lff;
	ret->recon = recon;
	ret->total = wf * lff + wr * recon;
	return 0;
}

/* ---- randomness and masks --------------------------------------------------
 */

uint64_t fc_rng_next(uint64_t *state)
{
	return nn_splitmix(state);
}

float fc_rng_uniform(uint64_t *state)
{
	return (float)(nn_splitmix(state) >> 40) * (1.0f / 16777216.0f);
}

void fc_mask_sample(float *mask, int L, float ratio, int seg, uint64_t *rng)
{
	int target = (int)lrintf(ratio * (float)L), hidden = 0;
	if (seg < 1)
		seg = 1;
	if (seg > L)
		seg = L;
	if (target > L)
		target = L;
	memset(mask, 0, sizeof(float) * (size_t)L);
	while (hidden < target) {
		int start = (int)(nn_splitmix(rng) % (uint64_t)(L - seg + 1));
		for (int t = start; t < start + seg && hidden < target; t++)
			if (mask[t] == 0.0f) {
				mask[t] = 1.0f;
				hidden++;
			}
	}
}

/* ---- optimizer ---------------------------------------------------------- */

size_t fc_adam_state_len(size_t n)
{
	return 2 * n;
}

/* Adam's update of elements [i, n): the reference arithmetic, and the
 * tail of the vector version (same expressions, same rounding). */
static void adam_scalar(const struct fc_adam *o, float *restrict param,
			const float *restrict grad, float *restrict mo,
			float *restrict v, size_t i, size_t n, float c1,
			float c2)
{
	for (; i < n; i++) {
		float g = grad[i];
		mo[i] = o->beta1 * mo[i] + (1.0f - o->beta1) * g;
		v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g * g;
		float mh = mo[i] * c1, vh = v[i] * c2;
		param[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) +
				     o->weight_decay * param[i]);
	}
}

#ifdef FC_AVX2

/* Eight elements at a time with AVX2 but without FMA, so that every
 * product and sum rounds as the scalar code's (vsqrtps and vdivps are
 * correctly rounded like sqrtss and divss): the update is bit-identical
 * to adam_scalar. */
__attribute__((target("avx2"))) static size_t
adam_avx2(const struct fc_adam *o, float *restrict param,
	  const float *restrict grad, float *restrict mo, float *restrict v,
	  size_t n, float c1, float c2)
{
	const __m256 b1 = _mm256_set1_ps(o->beta1);
	const __m256 b2 = _mm256_set1_ps(o->beta2);
	const __m256 k1 = _mm256_set1_ps(1.0f - o->beta1);
	const __m256 k2 = _mm256_set1_ps(1.0f - o->beta2);
	const __m256 vc1 = _mm256_set1_ps(c1), vc2 = _mm256_set1_ps(c2);
	const __m256 lr = _mm256_set1_ps(o->lr), eps = _mm256_set1_ps(o->eps);
	const __m256 wd = _mm256_set1_ps(o->weight_decay);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_loadu_ps(grad + i);
		__m256 m =
		    _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(mo + i)),
				  _mm256_mul_ps(k1, g));
		__m256 s =
		    _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
				  _mm256_mul_ps(_mm256_mul_ps(k2, g), g));
		_mm256_storeu_ps(mo + i, m);
		_mm256_storeu_ps(v + i, s);
		__m256 mh = _mm256_mul_ps(m, vc1), vh = _mm256_mul_ps(s, vc2);
		__m256 p = _mm256_loadu_ps(param + i);
		__m256 u = _mm256_add_ps(
		    _mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), eps)),
		    _mm256_mul_ps(wd, p));
		_mm256_storeu_ps(param + i,
				 _mm256_sub_ps(p, _mm256_mul_ps(lr, u)));
	}
	return i;
}

/* sum of squares in double, four lanes and two accumulators */
__attribute__((target("avx2"))) static double sumsq_avx2(const float *g,
							 size_t n)
{
	__m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256d x = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
		__m256d y = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4));
		a0 = _mm256_add_pd(a0, _mm256_mul_pd(x, x));
		a1 = _mm256_add_pd(a1, _mm256_mul_pd(y, y));
	}
	double s[4];
	_mm256_storeu_pd(s, _mm256_add_pd(a0, a1));
	double t = (s[0] + s[2]) + (s[1] + s[3]);
	for (; i < n; i++)
		t += (double)g[i] * (double)g[i];
	return t;
}
#endif

void fc_adam_step(const struct fc_adam *o, float *param, const float *grad,
		  float *state, size_t n, long step)
{
	float *mo = state, *v = state + n;
	double bc1 = 1.0 - pow((double)o->beta1, (double)step);
	double bc2 = 1.0 - pow((double)o->beta2, (double)step);
	float c1 = (float)(1.0 / bc1), c2 = (float)(1.0 / bc2);
	size_t i = 0;
#ifdef FC_AVX2
	if (__builtin_cpu_supports("avx2"))
		i = adam_avx2(o, param, grad, mo, v, n, c1, c2);
#endif
	adam_scalar(o, param, grad, mo, v, i, n, c1, c2);
}

float fc_grad_clip(float *grad, size_t n, float max_norm)
{
	double s = 0;
#ifdef FC_AVX2
	if (__builtin_cpu_supports("avx2"))
		s = sumsq_avx2(grad, n);
	else
#endif
		for (size_t i = 0; i < n; i++)
			s += (double)grad[i] * (double)grad[i];
	float norm = (float)sqrt(s);
	if (norm > max_norm && norm > 0.0f) {
		float k = max_norm / norm;
		for (size_t i = 0; i < n; i++)
			grad[i] *= k;
	}
	return norm;
}
