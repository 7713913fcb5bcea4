/*
 * Naive baselines that every accuracy report includes (EVAL.md): last
 * value persistence and seasonal naive, and the seasonal period implied by
 * a sampling step.
 */
#include <math.h>

#include "ttt/internal.h"
#include "ttt/ttt.h"

void ttt_naive_persistence(float *y, const float *x, int n, int H)
{
	for (int h = 0; h < H; h++)
		y[h] = x[n - 1];
}

void ttt_naive_seasonal(float *y, const float *x, int n, int H, int period)
{
	for (int h = 0; h < H; h++)
		y[h] = x[n - period + h % period];
}

int ttt_season_period(double step_seconds)
{
	const double day = 86400.0;
	if (!(step_seconds > 0.0))
		return 1;
	if (fabs(step_seconds - day) < 1.0)
		return 7; /* daily data: one week */
	double per = day / step_seconds;
	if (per >= 2.0 && fabs(per - round(per)) < 1e-6 && per <= 10000.0)
		return (int)round(per); /* one day: 24, 96, 144, ... */
	return 1;
}
