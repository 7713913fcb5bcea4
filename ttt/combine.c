/*
 * The combiner (combine.h): per series and horizon bucket, the weight of
 * the adapter's correction in the published forecast, from the realised
 * errors of matured windows.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/combine.h"
#include "ttt/engine_private.h"

void ttt_cmb_update(struct ttt_combiner *c, const float *f, const float *a,
		    const float *y, int H, float decay, float prior)
{
	double dd[TTT_CMB_BUCKETS] = {0}, rd[TTT_CMB_BUCKETS] = {0};
	for (int h = 0; h < H; h++) {
		int b = ttt_cmb_bucket(H, h);
		double d = (double)a[h] - (double)f[h];
		dd[b] += d * d;
		rd[b] += ((double)y[h] - (double)f[h]) * d;
	}
	c->n = decay * c->n + 1.0f;
	float shrink = c->n / (c->n + prior);
	int nb = H < TTT_CMB_BUCKETS ? H : TTT_CMB_BUCKETS;
	for (int b = 0; b < nb; b++) {
		c->sdd[b] = decay * c->sdd[b] + (float)dd[b];
		c->srd[b] = decay * c->srd[b] + (float)rd[b];
		float w = c->sdd[b] > 0.0f ? c->srd[b] / c->sdd[b] : 0.0f;
		w = w < 0.0f ? 0.0f : w > 1.0f ? 1.0f : w;
		c->w[b] = w * shrink;
	}
}

float ttt_mse(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t k = 0; k < n; k++) {
		double d = (double)a[k] - (double)b[k];
		s += d * d;
	}
	return (float)(s / (double)n);
}

float ttt_cmb_error(const struct ttt_combiner *c, const float *f,
		    const float *a, const float *y, int H)
{
	double s = 0.0;
	for (int h = 0; h < H; h++) {
		float p = f[h] + c->w[ttt_cmb_bucket(H, h)] * (a[h] - f[h]);
		double d = (double)p - (double)y[h];
		s += d * d;
	}
	return (float)(s / (double)H);
}

void ttt_cmb_mix(const struct ttt_combiner *c, const float *f, float *a, int H)
{
	for (int h = 0; h < H; h++)
		a[h] = f[h] + c->w[ttt_cmb_bucket(H, h)] * (a[h] - f[h]);
}

int ttt_cmb_calib(const struct ttt_combiner *c, const float *cal, float *out,
		  int H)
{
	int any = 0;
	for (int h = 0; h < H; h++) {
		float w = c->w[ttt_cmb_bucket(H, h)];
		out[h] = w * cal[h];
		out[H + h] = w * cal[H + h];
		any |= w != 0.0f;
	}
	if (!any)
		memset(out, 0, (size_t)2 * (size_t)H * sizeof(float));
	return any;
}

struct issued_entry {
	long pos;
	uint64_t version;
	float sa, sc; /* scales of the deltas and the biases */
	signed char q[];
};

static size_t entry_size(int H)
{
	size_t sz = sizeof(struct issued_entry) + (size_t)2 * (size_t)H;
	return (sz + 7) & ~(size_t)7;
}

static struct issued_entry *entry(const struct ttt_issued *iss, int k)
{
	return (struct issued_entry *)(void *)(iss->data +
					       (size_t)k * entry_size(iss->H));
}

static float quantize(signed char *q, const float *v, int n)
{
	float m = 0.0f;
	for (int i = 0; i < n; i++)
		m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
	float sc = m > 0.0f ? m / 127.0f : 0.0f;
	for (int i = 0; i < n; i++)
		q[i] = sc > 0.0f ? (signed char)lrintf(v[i] / sc) : 0;
	return sc;
}

static struct ttt_issued *issued_get(struct ttt_engine *e, struct series *s)
{
	if (s->iss)
		return s->iss;
	int cap = e->H / e->p.every + 2;
	struct ttt_issued *iss =
	    calloc(1, sizeof(*iss) + (size_t)cap * entry_size(e->H));
	if (!iss)
		return NULL;
	iss->cap = cap;
	iss->H = e->H;
	iss->head = -1;
	s->iss = iss;
	e->st.bytes_series += sizeof(*iss) + (size_t)cap * entry_size(e->H);
	return iss;
}

void ttt_cmb_issue(struct ttt_engine *e, struct series *s)
{
	if (!e->p.combine || !e->calib_only || e->p.shadow_every <= 0)
		return;
	const struct adstate *ad = s->ad;
	struct ttt_issued *iss = issued_get(e, s);
	if (!iss)
		return; /* no memory: the combiner learns less */
	if (iss->n > 0 && entry(iss, iss->head)->version == ad->version)
		return;
	iss->head = (iss->head + 1) % iss->cap;
	if (iss->n < iss->cap)
		iss->n++;
	struct issued_entry *x = entry(iss, iss->head);
	x->pos = s->n - 1;
	x->version = ad->version;
	if (ad->identity) {
		x->sa = x->sc = 0.0f;
		memset(x->q, 0, (size_t)2 * (size_t)e->H);
	} else {
		x->sa = quantize(x->q, ad->a, e->H);
		x->sc = quantize(x->q + e->H, ad->a + e->H, e->H);
	}
}

int ttt_cmb_issued(struct ttt_engine *e, struct series *s, long pos,
		   const struct fc_head_raw *raw, float *a)
{
	const struct ttt_issued *iss = s->iss;
	const int H = e->H;
	if (!iss || iss->H != H || pos < 0)
		return 0;
	/* the newest version first published at or before pos */
	for (int j = 0; j < iss->n; j++) {
		const struct issued_entry *x =
		    entry(iss, (iss->head - j + iss->cap) % iss->cap);
		if (x->pos > pos)
			continue;
		float *cal = e->gc; /* [2H] scratch, not in use here */
		for (int h = 0; h < H; h++) {
			cal[h] = x->sa * (float)x->q[h];
			cal[H + h] = x->sc * (float)x->q[H + h];
		}
		fc_calib_forecast(e->m, raw, 1, cal, a);
		return 1;
	}
	return 0;
}

void ttt_cmb_forget(struct series *s)
{
	if (s->iss) {
		s->iss->n = 0;
		s->iss->head = -1;
	}
}

void ttt_cmb_free(struct ttt_engine *e, struct series *s)
{
	if (!s->iss)
		return;
	e->st.bytes_series -=
	    sizeof(*s->iss) + (size_t)s->iss->cap * entry_size(s->iss->H);
	free(s->iss);
	s->iss = NULL;
}

int ttt_publish_forecast(struct ttt_engine *e, struct series *s, const float *x,
			 float *out)
{
	const struct adstate *ad = s->ad;
	if (e->p.enabled)
		ttt_cmb_issue(e, s);
	if (!e->p.enabled || ad->identity)
		return fc_forecast(e->m, NULL, e->ws, x, 1, out);
	if (!e->p.combine)
		return fc_forecast(e->m, expand(e, ad), e->ws, x, 1, out);
	if (e->calib_only) {
		/* the combination is a shrunk calibration: one pass */
		if (!ttt_cmb_calib(&s->cmb, ad->a, e->gc, e->H))
			return fc_forecast(e->m, NULL, e->ws, x, 1, out);
		unpack(e, e->full, e->gc);
		return fc_forecast(e->m, e->full, e->ws, x, 1, out);
	}
	int rc = fc_forecast(e->m, expand(e, ad), e->ws, x, 1, out);
	if (rc == 0)
		rc = fc_forecast(e->m, NULL, e->ws, x, 1, e->yh);
	if (rc == 0)
		ttt_cmb_mix(&s->cmb, e->yh, out, e->H);
	return rc;
}

int ttt_publish_calib(struct ttt_engine *e, struct series *s, float *cal)
{
	if (e->p.enabled)
		ttt_cmb_issue(e, s);
	if (!e->p.enabled || s->ad->identity)
		return 0;
	if (e->p.combine)
		return ttt_cmb_calib(&s->cmb, s->ad->a, cal, e->H);
	memcpy(cal, s->ad->a, (size_t)2 * (size_t)e->H * sizeof(float));
	return 1;
}
