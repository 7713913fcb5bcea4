/*
 * The calibration-only fast paths: one frozen forward pass (no adapter)
 * whose head outputs before calibration are kept, and the forecasts,
 * losses and calibration gradients of any number of calibrations computed
 * from them at O(b H) cost.  They must round exactly as the full pass
 * would: every expression below repeats, in the same order, one of
 * nn_model.c's forecast_head (calibration and de-normalisation), nn_loss
 * (the forecast part) and fc_pass's FC_PASS_GRAD_CALIB branch (model.c).
 */
#include "forecast/internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

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
	int r = fc_forecast_pass(m, NULL, NULL, ws, x, b);
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
	int r = fc_pass_forward(m, m->params, NULL, ws, batch, &w);
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
	fc_effective_weights(&w, m, m->params, NULL, ws);
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
	if (bf < 0 || br < 0 || maxb < 1 || !fc_ws_fits(m, ws, 1))
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
