/*
 * The recalibration (on by default: ttt.recal_steps = 12; 0 turns it off):
 * each series corrects what it publishes by an affine map fitted on its own
 * freshest errors, y' = y + s (a (y - mu) + c).  Chosen with the adapter's
 * share 0.4 on the validation and training splits: docs/RESULTS.md, "The
 * recalibration on by default".
 *
 * Every forecast's first K = ttt.recal_steps steps are known 1..K values
 * after its origin.  When a value arrives it is the h-th step of the
 * forecasts made h = 1..K positions before, and each such pair (f, the
 * step forecast; r, the value minus f) enters exponentially weighted sums
 * with weight 1/K (forgetting ttt.recal_forget per value): the freshest
 * evidence there is of how the forecasts miss, at every level the series
 * takes.  The correction regresses r on f -- the slope a toward what the
 * misses depend on (a forecast that overshoots its swings), the intercept
 * c the mean miss -- both shrunk toward 0 by ttt.recal_ridge values'
 * worth of evidence:
 *     mu = mean f,  a = cov(f, r) / (var f (1 + ridge / n)),
 *     c = mean r n / (n + ridge),
 * n the weights.  Both are invariant to the series' units and offset.
 * ttt.recal_share s of it is published, and only while it is judged to
 * pay: each pair also scores the correction its forecast was made with
 * (r^2 minus (r - correction)^2, whether it was published or not), summed
 * with forgetting ttt.recal_judge; the correction is published while that
 * sum exceeds ttt.recal_margin times the likewise summed r^2.
 *
 * That judge reads the first K steps only; a correction that pays there
 * can lose further out (exchange_rate, weather: docs/RESULTS.md).  So the
 * later steps are published by segments -- [K, 48), [48, 96), [96, 192),
 * [192, 336), [336, 720), cut at the horizon -- each only while, in
 * addition, the corrections gained on its middle step m: when a value
 * arrives it is step m of the forecast made m + 1 positions before, whose
 * step and correction were kept (from every RECAL_EVERY-th origin), and
 * the pair scores that correction as above, with forgetting
 * ttt.recal_later_judge per value and the same margin.  Evidence m values
 * old instead of the horizon's; ttt.recal_later_judge = 0 publishes the
 * later steps on the first judge alone.
 *
 * This is a second learner beside the adapter, fitted in closed form
 * instead of by gradient steps, on the elapsed prefix of unfinished
 * horizons (causal: a pair enters when its value has arrived).  Measured
 * in docs/RESULTS.md, "A recalibration from the freshest errors".
 *
 * State (struct recal, after the series' ring and level state, only when
 * K > 0): the sums; K (K + 1) / 2 floats, a ring of h + 1 for each step
 * h < K, holding at p % (h + 1) step h of the forecast made at position p
 * before this correction (read when the value at p + 1 + h arrives, just
 * before the forecast made there takes its place); [K][2] floats, the
 * slope and offset of the correction it was made with (s a and s (c - a
 * mu)); [K] flags, whether position p % K had a forecast; then one
 * struct recal_seg per later segment, its ring of m / RECAL_EVERY + 1
 * kept pairs.  The flags move with the values (push, observe), the kept
 * steps, pairs and sums with the forecasts when they are published -- at
 * once, or from a deferred batch in the same order with the value and the
 * flags observe() saw (struct ttt_fresh_in) -- so both paths publish the
 * same.  Saved with the series' recent values (ttt_recal_save, below):
 * a restart or a move continues it exactly when the same model and
 * layout read it back, else it starts from zero (judged off until its
 * corrections have paid).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ttt/engine_private.h"

/* The later segments' judges keep every RECAL_EVERY-th origin's middle
 * step: a quarter of the memory, and in numpy on eleven cells the same
 * gains as every origin's (at 8, weather's gain is lost). */
#define RECAL_EVERY 4

static int recal_on(const struct ttt_engine *e)
{
	return e->p.enabled && e->KR > 0;
}

/* After the series' ring and level state (series.c); NULL when off. */
static struct recal *state(const struct ttt_engine *e, const struct series *s)
{
	return e->KR > 0 ? (struct recal *)((char *)s->ring + e->rc_off) : NULL;
}

/* Floats of the steps' rings: K (K + 1) / 2. */
static size_t steps_len(int K)
{
	return (size_t)K * (size_t)(K + 1) / 2;
}

/* Where step h of the forecast made at position p is kept. */
static float *step_at(struct recal *rc, int h, long p)
{
	return &rc->slot[steps_len(h) + (size_t)(p % (h + 1))];
}

static float *applied(const struct ttt_engine *e, struct recal *rc)
{
	return rc->slot + steps_len(e->KR);
}

static unsigned char *rflags(const struct ttt_engine *e, struct recal *rc)
{
	return (unsigned char *)(rc->slot + steps_len(e->KR) +
				 2 * (size_t)e->KR);
}

static struct recal_seg *seg(const struct ttt_engine *e, struct recal *rc,
			     int i)
{
	return (struct recal_seg *)((char *)rc + e->rseg[i].off);
}

size_t ttt_recal_layout(struct ttt_engine *e)
{
	static const int edge[] = {48, 96, 192, 336, 720};
	e->nrseg = 0;
	if (e->KR <= 0)
		return 0;
	size_t k = (size_t)e->KR;
	size_t bytes = sizeof(struct recal) +
		       (steps_len(e->KR) + 2 * k) * sizeof(float) + k;
	/* [K, 48), [48, 96), ... cut at H: the ends above K and below H,
	 * then H */
	int end[RECAL_MAX_SEGS], n = 0, s0 = e->KR;
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
		if (edge[i] > e->KR && edge[i] < e->H)
			end[n++] = edge[i];
	if (e->KR < e->H)
		end[n++] = e->H;
	for (int i = 0; i < n; i++) {
		int s1 = end[i];
		struct recal_geo *g = &e->rseg[e->nrseg++];
		g->s0 = s0;
		g->s1 = s1;
		g->m = (s0 + s1 - 1) / 2;
		/* read before the forecast at its position is kept: the
		 * origins pos - m - 1 .. pos - 1 hold at most this many */
		g->nslot = g->m / RECAL_EVERY + 1;
		bytes = (bytes + 7) & ~(size_t)7;
		g->off = bytes;
		bytes += sizeof(struct recal_seg) +
			 (size_t)g->nslot * sizeof(struct recal_pair);
		s0 = s1;
	}
	return (bytes + 7) & ~(size_t)7;
}

void ttt_recal_clear(const struct ttt_engine *e, struct series *s)
{
	struct recal *rc = state(e, s);
	if (!rc)
		return;
	memset(rflags(e, rc), 0, (size_t)e->KR);
	for (int i = 0; i < e->nrseg; i++)
		memset(seg(e, rc, i)->slot, 0,
		       (size_t)e->rseg[i].nslot * sizeof(struct recal_pair));
}

void ttt_recal_reset(const struct ttt_engine *e, struct series *s)
{
	struct recal *rc = state(e, s);
	if (!rc)
		return;
	ttt_recal_clear(e, s);
	memset(rc->sum, 0, sizeof(rc->sum));
	rc->gain = rc->energy = 0.0;
	rc->prev = 0;
	for (int i = 0; i < e->nrseg; i++)
		seg(e, rc, i)->gain = seg(e, rc, i)->energy = 0.0;
}

void ttt_recal_push(const struct ttt_engine *e, struct series *s)
{
	struct recal *rc = state(e, s);
	if (!rc)
		return;
	unsigned char *bit = &rflags(e, rc)[(size_t)((s->n - 1) % e->KR)];
	rc->prev = *bit; /* position n - 1 - K had a forecast */
	*bit = 0;
}

void ttt_recal_observe(const struct ttt_engine *e, struct series *s,
		       struct ttt_fresh_in *in)
{
	in->y = s->ring[(size_t)((s->n - 1) % e->R)];
	in->rmask = 0;
	if (!recal_on(e))
		return;
	const int K = e->KR;
	const long pos = s->n - 1;
	struct recal *rc = state(e, s);
	unsigned char *fl = rflags(e, rc);
	/* bit h: the forecast made at pos - 1 - h exists */
	for (int h = 0; h < K; h++) {
		long p = pos - 1 - h;
		if (p < 0)
			break;
		int had = h == K - 1 ? rc->prev : fl[(size_t)(p % K)];
		if (had)
			in->rmask |= (uint64_t)1 << h;
	}
	fl[(size_t)(pos % K)] = 1;
}

/* The fit's slope and offset of the published correction (s a, s (c - a
 * mu)); 0, 0 until there is evidence. */
static void fit(const struct ttt_engine *e, const struct recal *rc,
		float *slope, float *offset)
{
	const double n = rc->sum[2];
	*slope = *offset = 0.0f;
	if (!(n > 0.0))
		return;
	const double mf = rc->sum[1] / n, mr = rc->sum[4] / n;
	const double vf = rc->sum[0] / n - mf * mf;
	const double cfr = rc->sum[3] / n - mf * mr;
	const double ridge = (double)e->p.recal_ridge;
	double a = vf > 0.0 ? cfr / (vf * (1.0 + ridge / n)) : 0.0;
	double c = mr * n / (n + ridge);
	double sh = (double)e->p.recal_share;
	double A = sh * a, B = sh * (c - a * mf);
	if (isfinite(A) && isfinite(B)) {
		*slope = (float)A;
		*offset = (float)B;
	}
}

/* The value y at pos is step m of the forecast made at pos - m - 1: the
 * later segments' judges score the correction it was made with. */
static void judge_later(const struct ttt_engine *e, struct recal *rc, float y,
			long pos)
{
	const double f2 = (double)e->p.recal_later * (double)e->p.recal_later;
	_Static_assert(RECAL_EVERY == 4, "forget is the 4th power");
	const double forget = f2 * f2; /* per kept origin */
	for (int i = 0; i < e->nrseg; i++) {
		const struct recal_geo *g = &e->rseg[i];
		struct recal_seg *sg = seg(e, rc, i);
		long w = pos - g->m - 1;
		if (w < 0 || w % RECAL_EVERY)
			continue;
		sg->gain *= forget;
		sg->energy *= forget;
		const struct recal_pair *p =
		    &sg->slot[(size_t)((w / RECAL_EVERY) % g->nslot)];
		if (p->tag != (uint32_t)(w + 1))
			continue; /* no forecast was made there */
		double r = (double)y - (double)p->f, c = (double)p->g;
		sg->gain += r * r - (r - c) * (r - c);
		sg->energy += r * r;
	}
}

/* The forecast fc made at pos with the correction A f + B: each later
 * segment keeps its middle step and correction from every RECAL_EVERY-th
 * origin. */
static void keep_later(const struct ttt_engine *e, struct recal *rc, long pos,
		       const float *fc, float A, float B)
{
	if (pos % RECAL_EVERY)
		return;
	for (int i = 0; i < e->nrseg; i++) {
		const struct recal_geo *g = &e->rseg[i];
		struct recal_pair *p =
		    &seg(e, rc, i)
			 ->slot[(size_t)((pos / RECAL_EVERY) % g->nslot)];
		p->f = fc[g->m];
		p->g = (float)((double)A * (double)fc[g->m] + (double)B);
		p->tag = (uint32_t)(pos + 1);
	}
}

void ttt_recal_publish(const struct ttt_engine *e, struct series *s,
		       const struct ttt_fresh_in *in, long pos, float *fc)
{
	if (!recal_on(e))
		return;
	struct recal *rc = state(e, s);
	const int K = e->KR;
	float *app = applied(e, rc);
	/* the value at pos is finite: observe() refuses others */
	const double lam = (double)e->p.recal_forget;
	const double jf = (double)e->p.recal_judge;
	for (int i = 0; i < 5; i++)
		rc->sum[i] *= lam;
	rc->gain *= jf;
	rc->energy *= jf;
	for (int h = 0; h < K; h++) {
		if (!(in->rmask >> h & 1))
			continue;
		size_t j = (size_t)((pos - 1 - h) % K);
		double f = (double)*step_at(rc, h, pos - 1 - h);
		if (!isfinite(f))
			continue;
		double r = (double)in->y - f;
		double g = (double)app[2 * j] * f + (double)app[2 * j + 1];
		double w = 1.0 / K;
		rc->sum[0] += w * f * f;
		rc->sum[1] += w * f;
		rc->sum[2] += w;
		rc->sum[3] += w * f * r;
		rc->sum[4] += w * r;
		rc->gain += r * r - (r - g) * (r - g);
		rc->energy += r * r;
	}
	judge_later(e, rc, in->y, pos);
	float A, B;
	fit(e, rc, &A, &B);
	const size_t j = (size_t)(pos % K);
	for (int h = 0; h < K; h++)
		*step_at(rc, h, pos) = fc[h];
	app[2 * j] = A;
	app[2 * j + 1] = B;
	keep_later(e, rc, pos, fc, A, B);
	const double margin = (double)e->p.recal_margin;
	if (!(rc->gain > margin * rc->energy))
		return;
	if (A == 0.0f && B == 0.0f)
		return;
	int upto = e->nrseg > 0 ? e->rseg[0].s0 : e->H;
	for (int h = 0; h < upto; h++)
		fc[h] += A * fc[h] + B;
	for (int i = 0; i < e->nrseg; i++) {
		const struct recal_seg *sg = seg(e, rc, i);
		if (e->p.recal_later > 0.0f &&
		    !(sg->gain > margin * sg->energy))
			continue;
		for (int h = e->rseg[i].s0; h < e->rseg[i].s1; h++)
			fc[h] += A * fc[h] + B;
	}
}

/* ---- saved with the recent values ------------------------------------ */

/* What a saved state says it is: its layout and the model it was made
 * with, then the state's bytes as a series holds them. */
struct recal_head {
	uint32_t magic; /* RECAL_MAGIC */
	uint32_t K, H;
	uint32_t bytes;
	uint64_t model; /* fc_model_fingerprint */
};
#define RECAL_MAGIC 0x314c4352u /* "RCL1" */

static size_t region(const struct ttt_engine *e)
{
	return e->tail_bytes - e->rc_off;
}

size_t ttt_recal_saved_len(const struct ttt_engine *e)
{
	return e->KR > 0 ? sizeof(struct recal_head) + region(e) : 0;
}

void ttt_recal_save(const struct ttt_engine *e, const struct series *s,
		    void *out)
{
	struct recal_head h = {RECAL_MAGIC, (uint32_t)e->KR, (uint32_t)e->H,
			       (uint32_t)region(e), e->model_fp};
	memcpy(out, &h, sizeof(h));
	memcpy((char *)out + sizeof(h), state(e, s), region(e));
}

static bool finite_sums(double gain, double energy)
{
	return isfinite(gain) && isfinite(energy) && energy >= 0.0;
}

/* Whether rc, at position pos, is a state this engine could have made:
 * finite sums, flags 0 or 1, corrections finite, and every kept pair
 * finite and from an origin before pos. */
static bool plausible(const struct ttt_engine *e, struct recal *rc, long pos)
{
	const size_t K = (size_t)e->KR;
	for (int i = 0; i < 5; i++)
		if (!isfinite(rc->sum[i]))
			return false;
	if (!(rc->sum[0] >= 0.0 && rc->sum[2] >= 0.0) ||
	    !finite_sums(rc->gain, rc->energy) || (rc->prev & ~1))
		return false;
	const float *app = applied(e, rc);
	const unsigned char *fl = rflags(e, rc);
	for (size_t k = 0; k < K; k++)
		if (!isfinite(app[2 * k]) || !isfinite(app[2 * k + 1]) ||
		    (fl[k] & ~1))
			return false;
	for (int i = 0; i < e->nrseg; i++) {
		const struct recal_seg *sg = seg(e, rc, i);
		if (!finite_sums(sg->gain, sg->energy))
			return false;
		for (int k = 0; k < e->rseg[i].nslot; k++) {
			const struct recal_pair *p = &sg->slot[k];
			if (p->tag && ((long)p->tag > pos || !isfinite(p->f) ||
				       !isfinite(p->g)))
				return false;
		}
	}
	return true;
}

int ttt_recal_fits(const struct ttt_engine *e, const void *in, size_t len,
		   long pos)
{
	struct recal_head h;
	if (e->KR <= 0 || len != ttt_recal_saved_len(e))
		return 0;
	memcpy(&h, in, sizeof(h));
	if (h.magic != RECAL_MAGIC || h.K != (uint32_t)e->KR ||
	    h.H != (uint32_t)e->H || h.bytes != region(e) ||
	    h.model != e->model_fp)
		return 0;
	struct recal *rc = malloc(region(e)); /* aligned, to read it */
	if (!rc)
		return -ENOMEM;
	memcpy(rc, (const char *)in + sizeof(h), region(e));
	int ok = plausible(e, rc, pos);
	free(rc);
	return ok ? 1 : -EINVAL;
}

void ttt_recal_take(const struct ttt_engine *e, struct series *s,
		    const void *in)
{
	memcpy(state(e, s), (const char *)in + sizeof(struct recal_head),
	       region(e));
}
