/*
 * What a rollback restores and when a series falls back to the frozen
 * model (ttt/trust.c), under a synthetic poisoning attack on the small
 * model: a version fitted to the attack beats the frozen shadow while the
 * attack lasts, and must not become the version rollbacks restore after
 * it; a series that keeps failing falls back to the frozen model, pauses
 * adapting and says so in a reset event with trigger FALLBACK.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "storage/storage.h"
#include "ttt/engine_private.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

#define L  32
#define H  8
#define A0 200 /* the attack: observations [A0, A1) */
#define A1 240
#define N  600

/* A daily-like cycle with noise; during the attack a sawtooth replaces
 * it, which the adapter learns and then beats the frozen model on -- the
 * lure that made such a version the last good one. */
static float attacked_value(int i)
{
	uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
	float noise = 0.2f * (fc_rng_uniform(&s) - 0.5f);
	float v = sinf((float)i * 0.3f) + 0.5f * sinf((float)i * 0.05f);
	if (i >= A0 && i < A1)
		v = (float)(i % 10) / 5.0f - 1.0f;
	return v + noise;
}

/* Adaptation strong enough to follow the attack (every family, large
 * steps), a shadow that scores often. */
static void attack_params(struct ttt_params *p)
{
	ttt_params_default(p);
	p->every = 5;
	p->steps = 5;
	p->lr = 0.05f;
	p->max_update = 1.0f;
	p->window_stride = 2;
	p->shadow_every = 2;
	p->rollback_window = 8;
	p->rollback_margin = 0.0f;
	p->drift_every = 2;
	p->families = FC_ADAPT_ALL;
	p->combine_weight = 1.0f;
	p->fallback_rollbacks = 0;
}

/* Fall back after 2 rollbacks or resets within 100 observations, for 60
 * observations. */
static void with_fall_back(struct ttt_params *p)
{
	p->fallback_rollbacks = 2;
	p->fallback_within = 100;
	p->fallback_pause = 60;
}

struct rec {
	enum ttt_event_type type;
	enum ttt_trigger trigger;
	uint64_t version_to, version_restored;
	int obs; /* the observation that caused it */
};

struct log {
	struct rec *v;
	int n, cap;
};

static void on_event(void *user, const struct ttt_event *ev)
{
	struct log *lg = user;
	if (ev->type == TTT_EV_FORECAST || ev->type == TTT_EV_REALISED)
		return;
	if (lg->n == lg->cap) {
		lg->cap = lg->cap ? 2 * lg->cap : 256;
		lg->v = realloc(lg->v, (size_t)lg->cap * sizeof(*lg->v));
		cr_assert(lg->v);
	}
	/* obs: the causing observation's time (deferred learning emits its
	 * events at the flush) */
	lg->v[lg->n++] = (struct rec){ev->type, ev->trigger, ev->version_to,
				      ev->version_restored, (int)ev->ts};
}

/* The attacked series through an engine with p, forecasts (and with the
 * calibration only, learning) deferred in batches of batch. */
static void run_batched(const struct ttt_params *p, struct log *lg, int batch)
{
	struct fc_model *m = tt_small_model(L, H);
	struct ttt_engine *e;
	char err[256];
	cr_assert(m);
	cr_assert_eq(ttt_engine_new(m, p, on_event, lg, &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_defer_forecasts(e, batch), 0);
	for (int i = 0; i < N; i++)
		cr_assert_eq(ttt_engine_observe(e, "s", i, attacked_value(i)),
			     0);
	cr_assert_eq(ttt_engine_flush(e), 0);
	ttt_engine_free(e);
	fc_model_free(m);
}

static void run(const struct ttt_params *p, struct log *lg)
{
	run_batched(p, lg, 1);
}

/* The observation at which the content of version v was made by an
 * adaptation (a rollback's version repeats the one it restored); -1: the
 * anchor (version 0 or a reset's). */
static int made_at(const struct log *lg, uint64_t v)
{
	for (int i = lg->n - 1; i >= 0; i--) {
		if (lg->v[i].version_to != v)
			continue;
		if (lg->v[i].type == TTT_EV_ADAPT_ACCEPTED)
			return lg->v[i].obs;
		if (lg->v[i].type == TTT_EV_ROLLBACK)
			return made_at(lg, lg->v[i].version_restored);
	}
	return -1;
}

Test(rollback, never_restores_a_version_fitted_to_an_attack)
{
	struct ttt_params p;
	struct log lg = {0};
	attack_params(&p);
	run(&p, &lg);
	int after = 0, from_attack = 0;
	for (int i = 0; i < lg.n; i++) {
		if (lg.v[i].type != TTT_EV_ROLLBACK)
			continue;
		int at = made_at(&lg, lg.v[i].version_restored);
		cr_log_info("rollback at %d restores version %llu made at %d",
			    lg.v[i].obs,
			    (unsigned long long)lg.v[i].version_restored, at);
		after += lg.v[i].obs >= A1;
		/* fitted to attacked values: its windows read them */
		from_attack += at >= A0 && at < A1 + L + H;
	}
	cr_assert_gt(after, 0,
		     "no rollback after the attack: the test is void");
	cr_assert_eq(from_attack, 0,
		     "%d rollbacks restored a version fitted to the attack",
		     from_attack);
	free(lg.v);
}

Test(rollback, a_series_that_keeps_failing_falls_back_to_the_frozen_model)
{
	struct ttt_params p;
	struct log lg = {0};
	attack_params(&p);
	with_fall_back(&p);
	run(&p, &lg);
	int fb = -1, fails = 0;
	for (int i = 0; i < lg.n && fb < 0; i++) {
		if (lg.v[i].type != TTT_EV_ROLLBACK &&
		    lg.v[i].type != TTT_EV_RESET)
			continue;
		fails++;
		if (lg.v[i].trigger == TTT_TRIGGER_FALLBACK)
			fb = i;
	}
	cr_assert_geq(fb, 0, "no fall-back to the frozen model");
	cr_assert_eq(lg.v[fb].type, TTT_EV_RESET);
	/* what an operator queries: audit.triggered_by = 'fallback' */
	cr_assert_str_eq(store_trigger_name((int)lg.v[fb].trigger), "fallback");
	cr_assert_geq(fails, 2);
	/* the rollback or reset before it came within fallback_within */
	int prev = -1;
	for (int i = fb - 1; i >= 0 && prev < 0; i--)
		if (lg.v[i].type == TTT_EV_ROLLBACK ||
		    lg.v[i].type == TTT_EV_RESET)
			prev = lg.v[i].obs;
	cr_assert_geq(prev, 0);
	cr_assert_leq(lg.v[fb].obs - prev, p.fallback_within);
	/* paused: no adaptation for fallback_pause observations, then
	 * adaptation resumes */
	int t0 = lg.v[fb].obs, resumed = -1;
	for (int i = fb + 1; i < lg.n; i++) {
		if (lg.v[i].type != TTT_EV_ADAPT_ACCEPTED &&
		    lg.v[i].type != TTT_EV_ADAPT_REJECTED)
			continue;
		cr_assert_geq(lg.v[i].obs, t0 + p.fallback_pause,
			      "adapted at %d, during the pause after %d",
			      lg.v[i].obs, t0);
		if (resumed < 0)
			resumed = lg.v[i].obs;
	}
	cr_assert_geq(resumed, t0 + p.fallback_pause,
		      "adaptation never resumed");
	free(lg.v);
}

/* With fallback_rollbacks = 0 a series never falls back. */
Test(rollback, no_fall_back_when_turned_off)
{
	struct ttt_params p;
	struct log lg = {0};
	attack_params(&p);
	run(&p, &lg);
	int fails = 0;
	for (int i = 0; i < lg.n; i++) {
		cr_assert_neq(lg.v[i].trigger, TTT_TRIGGER_FALLBACK);
		fails += lg.v[i].type == TTT_EV_ROLLBACK ||
			 lg.v[i].type == TTT_EV_RESET;
	}
	cr_assert_geq(fails, 2, "too few rollbacks: the test is void");
	free(lg.v);
}

/* The fall-back and the probation take the same decisions when learning
 * waits for the flush (the calibration only: the queue's batched passes;
 * its shadow windows score the version on probation from the batch's
 * frozen head outputs). */
Test(rollback, deferred_learning_decides_the_same)
{
	struct ttt_params p;
	struct log l1 = {0}, l2 = {0};
	attack_params(&p);
	p.families = FC_ADAPT_CALIB;
	p.lr = 0.2f;
	with_fall_back(&p);
	run_batched(&p, &l1, 1);
	run_batched(&p, &l2, 8);
	int fails = 0, restored = 0;
	cr_assert_eq(l1.n, l2.n, "%d events at once, %d deferred", l1.n, l2.n);
	for (int i = 0; i < l1.n; i++) {
		cr_assert_eq(l1.v[i].type, l2.v[i].type, "event %d", i);
		cr_assert_eq(l1.v[i].trigger, l2.v[i].trigger, "event %d", i);
		cr_assert_eq(l1.v[i].obs, l2.v[i].obs, "event %d", i);
		cr_assert_eq(l1.v[i].version_restored, l2.v[i].version_restored,
			     "event %d", i);
		fails += l1.v[i].trigger == TTT_TRIGGER_FALLBACK;
		restored += l1.v[i].type == TTT_EV_ROLLBACK &&
			    l1.v[i].version_restored > 0;
	}
	cr_log_info("%d fall-backs, %d rollbacks to a promoted version", fails,
		    restored);
	cr_assert_gt(fails, 0, "no fall-back: the test is void");
	free(l1.v);
	free(l2.v);
}

/* A restored version (a restart, another host, an operator) has no
 * probation behind it: it is current, and the rollback target is the
 * anchor until a version earns it. */
Test(rollback, a_restored_version_is_not_the_rollback_target)
{
	struct fc_model *m = tt_small_model(L, H);
	struct ttt_params p;
	struct ttt_engine *e;
	struct log lg = {0};
	char err[256];
	cr_assert(m);
	size_t A = fc_adapter_len(m), off, len;
	float *a = malloc(A * sizeof(float));
	cr_assert(a);
	fc_adapter_init(m, a, 1);
	/* a bad calibration: every forecast scaled and shifted */
	cr_assert_eq(fc_adapter_family_range(m, FC_ADAPT_CALIB, &off, &len), 0);
	for (size_t i = 0; i < len; i++)
		a[off + i] += 1.5f;
	attack_params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_restore_series(e, "s", a, A, 7, INT64_MIN), 0);
	for (int i = 0; i < A0; i++)
		cr_assert_eq(ttt_engine_observe(e, "s", i, attacked_value(i)),
			     0);
	int rollbacks = 0;
	for (int i = 0; i < lg.n; i++)
		if (lg.v[i].type == TTT_EV_ROLLBACK) {
			cr_assert_eq(
			    lg.v[i].version_restored, 0,
			    "restored version %llu",
			    (unsigned long long)lg.v[i].version_restored);
			rollbacks++;
		}
	cr_assert_gt(rollbacks, 0,
		     "the restored version was never rolled "
		     "back: the test is void");
	ttt_engine_free(e);
	fc_model_free(m);
	free(a);
	free(lg.v);
}

/* The shadow's count of scored windows (int) was never reset by an accepted
 * adaptation: after 2^31 of them (about 124 days of a 1 kHz series scored
 * every 5th value) it wrapped negative, and no rollback happened for the
 * next 2^31.  It stops at INT_MAX now. */
Test(rollback, the_shadow_count_does_not_wrap)
{
	struct ttt_params p;
	attack_params(&p);
	struct log lg = {0};
	struct fc_model *m = tt_small_model(L, H);
	struct ttt_engine *e;
	char err[256];
	cr_assert(m);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &lg, &e, err, sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < N; i++) {
		if (i == A0 - 20) {
			struct series *s = ttt_series_get(e, "s", false);
			cr_assert(s && s->ad && !s->ad->identity,
				  "no adapted version to score");
			s->ad->n_track = INT_MAX;
		}
		cr_assert_eq(ttt_engine_observe(e, "s", i, attacked_value(i)),
			     0);
	}
	int rollbacks = 0;
	for (int i = 0; i < lg.n; i++)
		rollbacks +=
		    lg.v[i].obs >= A0 - 20 && lg.v[i].type == TTT_EV_ROLLBACK;
	cr_assert_gt(rollbacks, 0);
	ttt_engine_free(e);
	fc_model_free(m);
	free(lg.v);
}
