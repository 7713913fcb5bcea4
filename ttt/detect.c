/*
 * Drift detectors on a stream of reconstruction losses: Page-Hinkley (a
 * cumulative-sum test for an increase of the mean) and a bounded ADWIN
 * (adaptive windowing over the last TTT_ADWIN_MAX samples: the window is
 * cut where its older and newer parts differ by more than a Hoeffding/
 * Bernstein bound; Bifet and Gavalda 2007, without the exponential
 * histogram, so the state is a fixed array and updates do not allocate).
 */
#include <math.h>

#include "ttt/internal.h"
#include "ttt/ttt.h"

#define PH_WARMUP     10 /* samples before Page-Hinkley may fire */
#define ADWIN_MIN_SUB 4	 /* smallest sub-window ADWIN compares */

void ttt_ph_init(struct ttt_ph *ph)
{
	ph->mean = 0.0;
	ph->cum = 0.0;
	ph->min_cum = 0.0;
	ph->n = 0;
}

int ttt_ph_update(struct ttt_ph *ph, float x, float delta, float lambda,
		  float *ret_stat)
{
	double stat;
	if (!isfinite(x))
		return 0;
	ph->n++;
	ph->mean += ((double)x - ph->mean) / (double)ph->n;
	ph->cum += (double)x - ph->mean - (double)delta;
	if (ph->cum < ph->min_cum)
		ph->min_cum = ph->cum;
	stat = ph->cum - ph->min_cum;
	if (ret_stat)
		*ret_stat = (float)stat;
	if (ph->n >= PH_WARMUP && stat > (double)lambda) {
		ttt_ph_init(ph);
		return 1;
	}
	return 0;
}

void ttt_adwin_init(struct ttt_adwin *a)
{
	a->head = 0;
	a->n = 0;
}

/* i-th oldest sample of the window. */
static float adwin_at(const struct ttt_adwin *a, int i)
{
	int k = a->head - a->n + i;
	if (k < 0)
		k += TTT_ADWIN_MAX;
	return a->v[k];
}

int ttt_adwin_update(struct ttt_adwin *a, float x, float delta, float *ret_stat)
{
	double total = 0.0, sq = 0.0, var, best = 0.0;
	int n, cut = -1;
	if (!isfinite(x))
		return 0;
	a->v[a->head] = x;
	a->head = (a->head + 1) % TTT_ADWIN_MAX;
	if (a->n < TTT_ADWIN_MAX)
		a->n++;
	n = a->n;
	for (int i = 0; i < n; i++) {
		double v = (double)adwin_at(a, i);
		total += v;
		sq += v * v;
	}
	var = sq / n - (total / n) * (total / n);
	if (var < 0.0)
		var = 0.0;
	if (ret_stat)
		*ret_stat = 0.0f;
	if (n < 2 * ADWIN_MIN_SUB)
		return 0;
	double dd = log(2.0 * (double)n / (double)delta);
	double s0 = 0.0;
	for (int k = 1; k < n; k++) {
		s0 += (double)adwin_at(a, k - 1);
		if (k < ADWIN_MIN_SUB || n - k < ADWIN_MIN_SUB)
			continue;
		double mu0 = s0 / k, mu1 = (total - s0) / (n - k);
		double m = 1.0 / (1.0 / k + 1.0 / (n - k));
		/* Normal approximation of ADWIN's bound: the Bernstein
		 * term 2/(3m) ln(2/d') assumes values in [0, 1] and is too
		 * wide for windows this short. */
		double eps = sqrt(2.0 / m * var * dd);
		double diff = fabs(mu0 - mu1);
		if (diff > eps && diff - eps > best) {
			best = diff - eps;
			cut = k;
		}
	}
	if (cut < 0)
		return 0;
	if (ret_stat) {
		double s = 0.0;
		for (int i = 0; i < cut; i++)
			s += (double)adwin_at(a, i);
		*ret_stat = (float)((total - s) / (n - cut) - s / cut);
	}
	a->n = n - cut; /* drop the older part */
	return 1;
}
