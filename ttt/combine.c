/*
 * The combiner (combine.h): the share of the adapter's correction that a
 * series publishes, and the published forecast itself.
 */
#include <math.h>
#include <stdbool.h>
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

/* ---- half precision -------------------------------------------------- */

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

uint16_t ttt_half(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t mag = u & 0x7fffffffu;
	if (mag > 0x7f800000u) /* NaN: stays a (quiet) NaN */
		return (uint16_t)(sign | 0x7e00u);
	if (mag >= 0x477ff000u) /* 65520 and up round to infinity */
		return (uint16_t)(sign | 0x7c00u);
	if (mag < 0x38800000u) {
		/* below the smallest normal half (2^-14): a multiple of 2^-24,
		 * rounded to nearest even by rintf (scaling by 2^24 is exact)
		 */
		float m = rintf(f32_from_bits(mag) * 16777216.0f);
		return (uint16_t)(sign | (uint16_t)m);
	}
	/* normal: drop 13 mantissa bits, to nearest, ties to even; a carry
	 * into the exponent is the right result */
	mag += 0x0fffu + ((mag >> 13) & 1u);
	mag -= (uint32_t)112 << 23; /* exponent bias 127 -> 15 */
	return (uint16_t)(sign | (mag >> 13));
}

float ttt_unhalf(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu;
	if (ex == 0) { /* zero and subnormals: man 2^-24, exact */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	if (ex == 31)
		return f32_from_bits(sign | 0x7f800000u | (man << 13));
	return f32_from_bits(sign | ((ex + 112) << 23) | (man << 13));
}

/* ---- adapters kept as differences from the anchor ------------------- */

bool ttt_halves_finite(const uint16_t *h, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if ((h[k] & 0x7c00u) == 0x7c00u)
			return false;
	return true;
}

bool ttt_halves_put(const struct ttt_engine *e, uint16_t *h, const float *a)
{
	for (size_t k = 0; k < e->n_ad; k++)
		h[k] = ttt_half(a[k] - e->anchor[k]);
	return ttt_halves_finite(h, e->n_ad);
}

void ttt_halves_get(const struct ttt_engine *e, float *a, const uint16_t *h)
{
	for (size_t k = 0; k < e->n_ad; k++)
		a[k] = e->anchor[k] + ttt_unhalf(h[k]);
}

/* ---- the published average ----------------------------------------- */

void ttt_avg_reset(const struct ttt_engine *e, struct adstate *ad)
{
	if (ad->avg)
		ttt_halves_put(e, ad->avg, ad->a);
}

void ttt_avg_update(const struct ttt_engine *e, struct adstate *ad)
{
	const float r = e->p.average_rate;
	if (!ad->avg)
		return;
	for (size_t k = 0; k < e->n_ad; k++) {
		float d = ttt_unhalf(ad->avg[k]);
		d += r * (ad->a[k] - e->anchor[k] - d);
		ad->avg[k] = ttt_half(d);
	}
}

void ttt_avg_event(const struct ttt_engine *e, const struct adstate *ad,
		   struct ttt_event *ev)
{
	if (ad->avg && !ad->identity) {
		ev->average = ad->avg;
		ev->average_len = e->n_ad;
	}
}

const float *ttt_published(struct ttt_engine *e, const struct adstate *ad)
{
	if (!ad->avg)
		return ad->a;
	ttt_halves_get(e, e->pub, ad->avg);
	return e->pub;
}

/* ---- the published forecast ------------------------------------------ */

/* The adapter block that forecasts what ad publishes (w = 1), or on the
 * calibration-only path the shrunk calibration of the share w, in e->full;
 * NULL when that is the frozen model. */
static const float *published_block(struct ttt_engine *e,
				    const struct adstate *ad, float w)
{
	const float *src = ttt_published(e, ad);
	if (e->calib_only) {
		/* the combination is a shrunk calibration: one pass */
		if (!ttt_cmb_calib(w, src, e->gc, e->H))
			return NULL;
		src = e->gc;
	}
	unpack(e, e->full, src);
	return e->full;
}

int ttt_publish_forecast(struct ttt_engine *e, struct series *s, const float *x,
			 float *out)
{
	const struct adstate *ad = s->ad;
	const float w = e->p.combine_weight;
	if (!e->p.enabled || ad->identity || w == 0.0f)
		return fc_forecast(e->m, NULL, e->ws, x, 1, out);
	const float *blk = published_block(e, ad, w);
	int rc = fc_forecast(e->m, blk, e->ws, x, 1, out);
	if (rc == 0 && w != 1.0f && !e->calib_only) {
		rc = fc_forecast(e->m, NULL, e->ws, x, 1, e->yh);
		if (rc == 0)
			ttt_cmb_mix(w, e->yh, out, e->H);
	}
	return rc;
}

int ttt_publish_window(struct ttt_engine *e, const struct adstate *ad,
		       const float *x, const struct fc_head_raw *raw,
		       const float *f, float *out)
{
	const float w = e->p.combine_weight;
	if (!e->p.enabled || ad->identity || w == 0.0f) {
		memcpy(out, f, (size_t)e->H * sizeof(float));
		return 0;
	}
	if (e->calib_only && raw) {
		const float *src = ttt_published(e, ad);
		ttt_cmb_calib(w, src, e->gc, e->H);
		fc_calib_forecast(e->m, raw, 1, e->gc, out);
		return 0;
	}
	int rc = fc_forecast(e->m, published_block(e, ad, w), e->ws, x, 1, out);
	if (rc == 0 && w != 1.0f && !e->calib_only)
		ttt_cmb_mix(w, f, out, e->H);
	return rc;
}

int ttt_publish_calib(struct ttt_engine *e, struct series *s, float *cal)
{
	if (!e->p.enabled || s->ad->identity)
		return 0;
	return ttt_cmb_calib(e->p.combine_weight, ttt_published(e, s->ad), cal,
			     e->H);
}
