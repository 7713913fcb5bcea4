/*
 * The level correction: each series shifts what it publishes by the mean
 * error of its own freshest forecasts.
 *
 * Every forecast's first K = ttt.level_steps steps are known K values after
 * its origin.  Their mean error e (data units: the values that arrived
 * minus the mean of what was published for them, before this correction)
 * feeds exponentially weighted sums of e, e^2 and the weights (forgetting
 * ttt.level_forget).  The correction added to every step of the next
 * forecast is their mean b, shrunk toward 0 by its own noise (positive-part
 * James-Stein):
 *     b = mean * max(0, 1 - c var / (n mean^2)),
 * with var the weighted variance of the errors, n = weights / K the number
 * of errors that do not overlap (consecutive ones share K - 1 values) and
 * c = ttt.level_shrink; nothing until n >= 2.  A persistent offset of the
 * model's forecasts against the newest values is corrected; an error that
 * changes sign from day to day is noise and is not.
 *
 * This is the elapsed prefix of unfinished horizons as evidence (the
 * adapter's step windows use matured windows only): the freshest values a
 * causal forecaster may read, used for one number per series.  Chosen on
 * the validation and training splits of the six benchmark datasets
 * (docs/RESULTS.md, "A level correction from the freshest errors").
 *
 * State per series: K floats (slot p % K holds the mean of the first K
 * published steps of the forecast made at position p, or NaN when no
 * forecast was made there) and the three sums.  Not saved: after a restart
 * or a move to another host the sums start from zero, so the correction is
 * 0 until 2 K new values have arrived.
 */
#include <math.h>

#include "ttt/engine_private.h"

/* Forgetting of the sum of what the corrections gained. */
#define LEVEL_GAIN_FORGET 0.99

static int level_on(const struct ttt_engine *e)
{
	return e->p.enabled && e->K > 0;
}

void ttt_level_reset(const struct ttt_engine *e, struct series *s)
{
	memset(s->lvbit, 0, (size_t)e->K);
	s->lv_m = s->lv_q = s->lv_w = s->lv_gain = 0.0;
	s->lv_off = 0;
}

void ttt_level_clear(const struct ttt_engine *e, struct series *s)
{
	memset(s->lvbit, 0, (size_t)e->K);
}

void ttt_level_push(const struct ttt_engine *e, struct series *s)
{
	if (e->K == 0)
		return;
	unsigned char *bit = &s->lvbit[(size_t)((s->n - 1) % e->K)];
	s->lv_prev = *bit; /* position n - 1 - K had a forecast */
	*bit = 0;
}

struct ttt_level_in ttt_level_observe(const struct ttt_engine *e,
				      struct series *s)
{
	struct ttt_level_in in = {0};
	if (!level_on(e))
		return in;
	const int K = e->K;
	const long pos = s->n - 1;
	in.valid = s->lv_prev && pos >= K;
	if (in.valid) {
		double sum = 0.0;
		for (long i = pos - K + 1; i <= pos; i++)
			sum += (double)s->ring[(size_t)(i % e->R)];
		in.ymean = sum / K;
	}
	s->lvbit[(size_t)(pos % K)] = 1;
	return in;
}

static float level_now(const struct ttt_engine *e, const struct series *s)
{
	if (s->lv_w <= 0.0)
		return 0.0f;
	const double n = s->lv_w / e->K;
	if (n < 2.0)
		return 0.0f;
	const double mean = s->lv_m / s->lv_w;
	double var = s->lv_q / s->lv_w - mean * mean;
	if (var < 0.0)
		var = 0.0;
	const double m2 = mean * mean;
	const double c = (double)e->p.level_shrink * var;
	if (!(m2 * n > c))
		return 0.0f;
	return (float)(mean * (1.0 - c / (n * m2)));
}

void ttt_level_publish(const struct ttt_engine *e, struct series *s,
		       const struct ttt_level_in *in, long pos, float *fc)
{
	if (!level_on(e))
		return;
	const size_t j = (size_t)(pos % e->K);
	float *slot = &s->lvl[j], *applied = &s->lvl[e->K + j];
	if (in->valid && isfinite(*slot)) {
		/* the forecast made at pos - K against its K values */
		double err = in->ymean - (double)*slot;
		double f = (double)e->p.level_forget;
		s->lv_m = f * s->lv_m + err;
		s->lv_q = f * s->lv_q + err * err;
		s->lv_w = f * s->lv_w + 1.0;
		/* what its correction gained: squared error without it
		 * minus with it */
		double after = err - (double)*applied;
		s->lv_gain =
		    LEVEL_GAIN_FORGET * s->lv_gain + err * err - after * after;
	}
	/* a correction that lost is off for ttt.fallback_pause forecasts,
	 * then judged afresh */
	if (s->lv_gain < 0.0 && ++s->lv_off > e->p.fallback_pause) {
		s->lv_gain = 0.0;
		s->lv_off = 0;
	}
	float b = s->lv_gain < 0.0 ? 0.0f : e->p.level_share * level_now(e, s);
	double sum = 0.0;
	for (int k = 0; k < e->K; k++)
		sum += (double)fc[k];
	*slot = (float)(sum / e->K);
	*applied = b;
	if (b != 0.0f)
		for (int h = 0; h < e->H; h++)
			fc[h] += b;
}
