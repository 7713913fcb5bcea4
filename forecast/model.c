/*
 * The model object and what serves it: the base weights and scaler, the
 * adapter block's table, workspaces with their cache of merged adapter
 * weights, forecasting, losses with gradients, and the seeded RNG and
 * masked-segment sampler (the RNG is the public face of the splitmix64
 * that initialises weights and adapters, and the masks feed the
 * reconstruction rows of fc_batch).  The arithmetic lives in nn_*.c; this
 * file owns memory and checks input.
 */
#include "forecast/internal.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "forecast/fnv1a.h"

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

/* eps = 1e-5 from FC_NORM_VAR up; below, FC_NORM_REL of the variance */
#define FC_NORM_EPS 1e-5
#define FC_NORM_VAR 1e-3
#define FC_NORM_REL (FC_NORM_EPS / FC_NORM_VAR)

/* eps below FC_NORM_VAR, and whether it is the relative one */
static double small_eps(double mean, double var, bool *relative)
{
	double ulps = fabs(mean) * 0x1p-20; /* 8 float ulps of the mean */
	double floor = fmax(ulps * ulps, 1e-30), eps = FC_NORM_REL * var;
	*relative = eps >= floor && eps <= FC_NORM_EPS;
	return fmin(fmax(eps, floor), FC_NORM_EPS);
}

double fc_norm_sd(double mean, double var)
{
	bool rel;
	if (var >= FC_NORM_VAR)
		return sqrt(var + FC_NORM_EPS);
	return sqrt(var + small_eps(mean, var, &rel));
}

double fc_norm_dvar(double mean, double var)
{
	bool rel = false;
	if (var < FC_NORM_VAR)
		small_eps(mean, var, &rel);
	return rel ? 1.0 + FC_NORM_REL : 1.0;
}

uint64_t fc_model_fingerprint(const struct fc_model *m)
{
	const struct fc_config *c = &m->cfg;
	int32_t shape[] = {c->backbone, c->lookback, c->horizon, c->d_model,
			   c->n_layers};
	uint64_t h = fc_fnv1a(FC_FNV1A_INIT, shape, sizeof(shape));
	return fc_fnv1a(h, m->params, m->lo.n_params * sizeof(float));
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

/* Large blocks come straight from mmap: their pages are zero and cost
 * nothing until touched.  A forecast-only pass touches only its first
 * chunk's activations (nn_forecast) and none of the gradients, which are
 * most of a block of 256 rows (27 MB for the transformer); from calloc,
 * a block that glibc recycles from its heap is cleared in full at every
 * allocation (measured: 3-6 % of a batched `driftcast eval` frozen arm,
 * which allocates one per run). */
#define WS_MMAP_MIN (1u << 20)

static int ws_alloc(struct fc_workspace *ws, size_t n)
{
	size_t bytes = n * sizeof(float);
	if (bytes >= WS_MMAP_MIN) {
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		ws->mem = p;
		ws->mem_mapped = bytes;
		return 0;
	}
	ws->mem = calloc(n, sizeof(float));
	return ws->mem ? 0 : -ENOMEM;
}

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
	size_t tot = 2 * na + ws->lo.scratch + ws->lo.n_params +
		     2 * ws->lo.n_adapter + nn_forecast_scratch(&ws->lo);
	if (ws_alloc(ws, tot) < 0) {
		free(ws);
		return -ENOMEM;
	}
	nn_acts_carve(&ws->a, ws->mem, &ws->lo, max_batch);
	nn_acts_carve(&ws->g, ws->mem + na, &ws->lo, max_batch);
	ws->scratch = ws->mem + 2 * na;
	ws->gp = ws->scratch + ws->lo.scratch;
	ws->gad = ws->gp + ws->lo.n_params;
	ws->cached = ws->gad + ws->lo.n_adapter;
	ws->packed = ws->cached + ws->lo.n_adapter;
	*ret = ws;
	return 0;
}

void fc_workspace_free(struct fc_workspace *ws)
{
	if (!ws)
		return;
	if (ws->mem_mapped)
		munmap(ws->mem, ws->mem_mapped);
	else
		free(ws->mem);
	free(ws);
}

int fc_workspace_max_batch(const struct fc_workspace *ws)
{
	return ws->max_batch;
}

int fc_ws_fits(const struct fc_model *m, const struct fc_workspace *ws,
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

void fc_effective_weights(struct nn_weights *w, const struct fc_model *m,
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

int fc_forecast_pass(const struct fc_model *m, const float *adapter,
		     const float *const *cal, struct fc_workspace *ws,
		     const float *x, int b)
{
	if (!fc_ws_fits(m, ws, b))
		return -EINVAL;
	if (b == 0)
		return 0;
	const struct nn_layout *lo = &m->lo;
	struct nn_weights w;
	fc_effective_weights(&w, m, m->params, adapter, ws);
	w.cal_row = cal;
	memcpy(ws->a.x, x, sizeof(float) * (size_t)b * lo->L);
	memset(ws->a.m, 0, sizeof(float) * (size_t)b * lo->L);
	return nn_forecast(lo, &w, &ws->a, b, ws->packed,
			   nn_forecast_scratch(lo));
}

/* The same into y [b, H]. */
static int forecast(const struct fc_model *m, const float *adapter,
		    const float *const *cal, struct fc_workspace *ws,
		    const float *x, int b, float *y)
{
	int r = fc_forecast_pass(m, adapter, cal, ws, x, b);
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

int fc_pass_forward(const struct fc_model *m, const float *p,
		    const float *adapter, struct fc_workspace *ws,
		    const struct fc_batch *bt, struct nn_weights *w)
{
	const struct nn_layout *lo = &m->lo;
	int bf = bt->bf, br = bt->br, L = lo->L;
	if (bf < 0 || br < 0 || !fc_ws_fits(m, ws, bf + br))
		return -EINVAL;
	if ((bf && (!bt->xf || !bt->yf)) || (br && (!bt->xr || !bt->mr)))
		return -EINVAL;
	for (size_t i = 0; i < (size_t)bf * lo->H; i++)
		if (!isfinite(bt->yf[i]))
			return -EINVAL;
	fc_effective_weights(w, m, p, adapter, ws);
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
	int r = fc_pass_forward(m, p, adapter, ws, bt, &w);
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
