/*
 * Drift detectors, naive baselines and parameter checks (ttt/detect.c,
 * ttt/naive.c): no model needed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

/* A deterministic noisy level: level +- 0.05 (xorshift64). */
static float noise(uint64_t *s, float level)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return level + 0.1f * ((float)(*s >> 40) / 16777216.0f - 0.5f);
}

Test(detect, page_hinkley_quiet_on_stationary_fires_on_rise)
{
	struct ttt_ph ph;
	uint64_t rng = 7;
	float stat;
	ttt_ph_init(&ph);
	for (int i = 0; i < 500; i++)
		cr_assert_eq(
		    ttt_ph_update(&ph, noise(&rng, 0.2f), 0.01f, 1.0f, &stat),
		    0, "false alarm at %d (stat %g)", i, (double)stat);
	int fired_at = -1;
	for (int i = 0; i < 100 && fired_at < 0; i++)
		if (ttt_ph_update(&ph, noise(&rng, 0.5f), 0.01f, 1.0f, &stat))
			fired_at = i;
	cr_assert(fired_at >= 0 && fired_at < 10, "fired at %d", fired_at);
	/* It reset itself: the next sample does not fire. */
	cr_assert_eq(ph.n, 0);
	cr_assert_eq(ttt_ph_update(&ph, 0.5f, 0.01f, 1.0f, &stat), 0);
	/* A decrease is not an alarm. */
	ttt_ph_init(&ph);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(ttt_ph_update(&ph, i < 100 ? 0.5f : 0.1f, 0.01f,
					   1.0f, NULL),
			     0);
}

Test(detect, adwin_detects_a_shift_and_drops_the_old_part)
{
	struct ttt_adwin a;
	uint64_t rng = 3;
	float stat;
	ttt_adwin_init(&a);
	for (int i = 0; i < 300; i++)
		cr_assert_eq(
		    ttt_adwin_update(&a, noise(&rng, 0.2f), 0.002f, &stat), 0,
		    "false alarm at %d", i);
	cr_assert_eq(a.n, TTT_ADWIN_MAX);
	int fired_at = -1;
	for (int i = 0; i < 32 && fired_at < 0; i++)
		if (ttt_adwin_update(&a, noise(&rng, 0.6f), 0.002f, &stat))
			fired_at = i;
	cr_assert(fired_at >= 0, "no alarm");
	cr_assert_gt(stat, 0.2f);
	cr_assert_lt(a.n, TTT_ADWIN_MAX);
	/* Non-finite input is ignored. */
	int n = a.n;
	cr_assert_eq(ttt_adwin_update(&a, NAN, 0.002f, NULL), 0);
	cr_assert_eq(a.n, n);
}

/* A series' two detectors share its memory (engine_private.h): when
 * ttt.drift changes at a reload, every series' new detector starts afresh
 * -- the same alarms and statistics as a new one given the same samples
 * -- instead of reading the other's state as its own. */
Test(detect, a_changed_detector_starts_afresh)
{
	struct fc_model *m = tt_small_model_ok(16, 4);
	struct ttt_params p;
	struct ttt_engine *e;
	struct ttt_ph ph;
	struct ttt_adwin aw;
	char err[256];
	uint64_t rng = 7;
	float stat, want;
	ttt_params_default(&p);
	p.drift = TTT_DRIFT_ADWIN;
	cr_assert_eq(ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err)), 0,
		     "%s", err);
	struct series *s = ttt_series_get(e, "s", false);
	cr_assert(s);
	for (int i = 0; i < 40; i++)
		ttt_drift_update(e, s, noise(&rng, 0.2f), &stat);

	p.drift = TTT_DRIFT_PH;
	cr_assert_eq(ttt_engine_set_params(e, &p), 0);
	ttt_ph_init(&ph);
	int alarms = 0;
	for (int i = 0; i < 300; i++) {
		float x = noise(&rng, i < 200 ? 0.2f : 0.5f);
		int fired =
		    ttt_ph_update(&ph, x, p.ph_delta, p.ph_lambda, &want);
		cr_assert_eq(ttt_drift_update(e, s, x, &stat), fired, "%d", i);
		cr_assert_eq(stat, want, "sample %d", i);
		alarms += fired;
	}
	cr_assert_gt(alarms, 0, "Page-Hinkley never fired: the test is void");

	p.drift = TTT_DRIFT_ADWIN;
	cr_assert_eq(ttt_engine_set_params(e, &p), 0);
	ttt_adwin_init(&aw);
	alarms = 0;
	for (int i = 0; i < 100; i++) {
		float x = noise(&rng, i < 50 ? 0.2f : 0.6f);
		int fired = ttt_adwin_update(&aw, x, p.adwin_delta, &want);
		cr_assert_eq(ttt_drift_update(e, s, x, &stat), fired, "%d", i);
		cr_assert_eq(stat, want, "sample %d", i);
		alarms += fired;
	}
	cr_assert_gt(alarms, 0, "ADWIN never fired: the test is void");
	ttt_engine_free(e);
	fc_model_free(m);
}

Test(naive, persistence_and_seasonal)
{
	float x[30], y[10];
	for (int i = 0; i < 30; i++)
		x[i] = (float)i;
	ttt_naive_persistence(y, x, 30, 10);
	for (int h = 0; h < 10; h++)
		cr_assert_eq(y[h], 29.0f);
	ttt_naive_seasonal(y, x, 30, 10, 4);
	/* period 4: 26 27 28 29 26 27 ... */
	for (int h = 0; h < 10; h++)
		cr_assert_eq(y[h], (float)(26 + h % 4));
}

Test(naive, season_period_from_step)
{
	cr_assert_eq(ttt_season_period(3600.0), 24);
	cr_assert_eq(ttt_season_period(900.0), 96);
	cr_assert_eq(ttt_season_period(600.0), 144);
	cr_assert_eq(ttt_season_period(86400.0), 7);
	cr_assert_eq(ttt_season_period(0.0), 1);
	cr_assert_eq(ttt_season_period(7000.0), 1);
}

Test(params, defaults_valid_and_bad_values_named)
{
	struct ttt_params p;
	char err[256];
	ttt_params_default(&p);
	cr_assert_eq(ttt_params_check(&p, err, sizeof(err)), 0, "%s", err);
	p.every = 0;
	cr_assert_eq(ttt_params_check(&p, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "ttt.every"));
	ttt_params_default(&p);
	p.families = 0;
	cr_assert_eq(ttt_params_check(&p, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "families"));
	ttt_params_default(&p);
	p.reset_alpha = 1.5f;
	cr_assert_eq(ttt_params_check(&p, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "reset_alpha"));
}

Test(arms, names_round_trip)
{
	for (int i = 0; i < TTT_ARM_COUNT; i++) {
		int a = -1;
		cr_assert_eq(ttt_arm_parse(ttt_arm_name(i), &a), 0);
		cr_assert_eq(a, i);
	}
	int a;
	cr_assert_eq(ttt_arm_parse("ttt_hybrid", &a), 0); /* its old name */
	cr_assert_eq(a, TTT_ARM_TTT);
	cr_assert_eq(ttt_arm_parse("tt", &a), -EINVAL);
}
