/*
 * The combiner (combine.h): the share of the adapter's correction that a
 * series publishes, and the published forecast itself.
 */
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/combine.h"
#include "ttt/engine_private.h"

float ttt_mse(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t k = 0; k < n; k++) {
		double d = (double)a[k] - (double)b[k];
		s += d * d;
	}
	return (float)(s / (double)n);
}

void ttt_cmb_mix(float w, const float *f, float *a, int H)
{
	for (int h = 0; h < H; h++)
		a[h] = f[h] + w * (a[h] - f[h]);
}

int ttt_cmb_calib(float w, const float *cal, float *out, int H)
{
	if (w == 0.0f) {
		memset(out, 0, (size_t)2 * (size_t)H * sizeof(float));
		return 0;
	}
	for (int k = 0; k < 2 * H; k++)
		out[k] = w * cal[k];
	return 1;
}

int ttt_publish_forecast(struct ttt_engine *e, struct series *s, const float *x,
			 float *out)
{
	const struct adstate *ad = s->ad;
	const float w = e->p.combine_weight;
	if (!e->p.enabled || ad->identity || w == 0.0f)
		return fc_forecast(e->m, NULL, e->ws, x, 1, out);
	if (w == 1.0f)
		return fc_forecast(e->m, expand(e, ad), e->ws, x, 1, out);
	if (e->calib_only) {
		/* the combination is a shrunk calibration: one pass */
		ttt_cmb_calib(w, ad->a, e->gc, e->H);
		unpack(e, e->full, e->gc);
		return fc_forecast(e->m, e->full, e->ws, x, 1, out);
	}
	int rc = fc_forecast(e->m, expand(e, ad), e->ws, x, 1, out);
	if (rc == 0)
		rc = fc_forecast(e->m, NULL, e->ws, x, 1, e->yh);
	if (rc == 0)
		ttt_cmb_mix(w, e->yh, out, e->H);
	return rc;
}

int ttt_publish_calib(struct ttt_engine *e, struct series *s, float *cal)
{
	if (!e->p.enabled || s->ad->identity)
		return 0;
	if (e->p.combine_weight == 1.0f) {
		memcpy(cal, s->ad->a, (size_t)2 * (size_t)e->H * sizeof(float));
		return 1;
	}
	return ttt_cmb_calib(e->p.combine_weight, s->ad->a, cal, e->H);
}
