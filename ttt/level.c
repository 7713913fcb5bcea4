/*
 * The level correction (off by default: ttt.level_steps = 0): each series
 * shifts what it publishes by the mean error of its own freshest forecasts.
 *
 * Every forecast's first K = ttt.level_steps steps are known K values after
 * its origin.  Their mean error e (data units: the values that arrived
 * minus the mean of what was published for them, before this correction)
 * feeds exponentially weighted sums of e, e^2 and the weights (forgetting
 * ttt.level_forget).  The correction added to every step of the next
 * forecast is ttt.level_share times their mean, shrunk toward 0 by its own
 * noise (positive-part James-Stein):
 *     b = share * mean * max(0, 1 - c var / (n mean^2)),
 * with var the weighted variance of the errors, n = weights / K the number
 * of errors that do not overlap (consecutive ones share K - 1 values) and
 * c = ttt.level_shrink; nothing until n >= 2.  Each correction is judged
 * when its K values have arrived: what it gained (e^2 minus the squared
 * error with it) is summed with forgetting 0.99, and while that sum is
 * negative the series publishes none, for ttt.fallback_pause forecasts,
 * then judges afresh.
 *
 * This is the elapsed prefix of unfinished horizons as evidence (the
 * adapter's step windows use matured windows only), used for one number
 * per series.  Measured on the validation and training splits of the six
 * benchmark datasets (docs/RESULTS.md, "A level correction from the
 * freshest errors"): it gained on validation, but no setting kept every
 * training-split cell within 0.2 % of frozen, so it is off by default.
 *
 * State (struct level, after the series' ring, only when K > 0): the sums;
 * 2 K floats -- slot p % K holds the mean of the first K published steps of
 * the forecast made at position p, then the correction it published -- and
 * K flags, whether position p % K had a forecast (interpolated values and
 * a refilling lookback have none).  The flags move with the values, in
 * observe(); the slots and the sums with the forecasts, when they are
 * published -- at once, or from a deferred batch in the same order, with
 * what observe() saw (struct ttt_fresh_in) -- so both paths give the same
 * corrections.  Not saved: after a restart or a move to another host it
 * starts from zero (no correction until 2 K new values have arrived).
 */
#include <math.h>
#include <string.h>

#include "ttt/engine_private.h"

/* Forgetting of the sum of what the corrections gained. */
#define LEVEL_GAIN_FORGET 0.99

static int level_on(const struct ttt_engine *e)
{
	return e->p.enabled && e->K > 0;
}

/* s's level correction, after its ring (ttt_series_layout); NULL with
 * ttt.level_steps 0. */
static struct level *level_of(const struct ttt_engine *e,
			      const struct series *s)
{
	return e->K > 0 ? (struct level *)((char *)s->ring + e->lv_off) : NULL;
}

static unsigned char *flags(const struct ttt_engine *e, struct level *lv)
{
	return (unsigned char *)(lv->slot + 2 * e->K);
}

void ttt_level_reset(const struct ttt_engine *e, struct series *s)
{
	struct level *lv = level_of(e, s);
	if (!lv)
		return;
	memset(flags(e, lv), 0, (size_t)e->K);
	lv->m = lv->q = lv->w = lv->gain = 0.0;
	lv->off = 0;
}

void ttt_level_clear(const struct ttt_engine *e, struct series *s)
{
	struct level *lv = level_of(e, s);
	if (lv)
		memset(flags(e, lv), 0, (size_t)e->K);
}

void ttt_level_push(const struct ttt_engine *e, struct series *s)
{
	struct level *lv = level_of(e, s);
	if (!lv)
		return;
	unsigned char *bit = &flags(e, lv)[(size_t)((s->n - 1) % e->K)];
	lv->prev = *bit; /* position n - 1 - K had a forecast */
	*bit = 0;
}

struct ttt_fresh_in ttt_level_observe(const struct ttt_engine *e,
				      struct series *s)
{
	struct ttt_fresh_in in = {0};
	if (!level_on(e))
		return in;
	const int K = e->K;
	const long pos = s->n - 1;
	struct level *lv = level_of(e, s);
	in.valid = lv->prev && pos >= K;
	if (in.valid) {
		double sum = 0.0;
		for (long i = pos - K + 1; i <= pos; i++)
			sum += (double)s->ring[(size_t)(i % e->R)];
		in.ymean = sum / K;
	}
	flags(e, lv)[(size_t)(pos % K)] = 1;
	return in;
}

static float level_now(const struct ttt_engine *e, const struct level *lv)
{
	if (lv->w <= 0.0)
		return 0.0f;
	const double n = lv->w / e->K;
	if (n < 2.0)
		return 0.0f;
	const double mean = lv->m / lv->w;
	double var = lv->q / lv->w - mean * mean;
	if (var < 0.0)
		var = 0.0;
	const double m2 = mean * mean;
	const double c = (double)e->p.level_shrink * var;
	if (!(m2 * n > c))
		return 0.0f;
	return (float)(mean * (1.0 - c / (n * m2)));
}

void ttt_level_publish(const struct ttt_engine *e, struct series *s,
		       const struct ttt_fresh_in *in, long pos, float *fc)
{
	if (!level_on(e))
		return;
	struct level *lv = level_of(e, s);
	const size_t j = (size_t)(pos % e->K);
	float *slot = &lv->slot[j], *applied = &lv->slot[e->K + j];
	if (in->valid && isfinite(*slot)) {
		/* the forecast made at pos - K against its K values */
		double err = in->ymean - (double)*slot;
		double f = (double)e->p.level_forget;
		lv->m = f * lv->m + err;
		lv->q = f * lv->q + err * err;
		lv->w = f * lv->w + 1.0;
		/* what its correction gained: squared error without it
		 * minus with it */
		double after = err - (double)*applied;
		lv->gain =
		    LEVEL_GAIN_FORGET * lv->gain + err * err - after * after;
	}
	/* a correction that lost is off for ttt.fallback_pause forecasts,
	 * then judged afresh */
	if (lv->gain < 0.0 && ++lv->off > e->p.fallback_pause) {
		lv->gain = 0.0;
		lv->off = 0;
	}
	float b = lv->gain < 0.0 ? 0.0f : e->p.level_share * level_now(e, lv);
	double sum = 0.0;
	for (int k = 0; k < e->K; k++)
		sum += (double)fc[k];
	*slot = (float)(sum / e->K);
	*applied = b;
	if (b != 0.0f)
		for (int h = 0; h < e->H; h++)
			fc[h] += b;
}
