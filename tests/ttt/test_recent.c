/*
 * Saving and restoring a series' recent values (ttt_engine_each_recent,
 * ttt_engine_restore_recent): what a clean restart of the daemon relies on
 * to forecast at once instead of after a refilled lookback.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

#define L 32
#define H 8

static struct fc_model *model(void)
{
	struct fc_model *m = tt_small_model_seed(L, H, 7);
	cr_assert(m);
	return m;
}

static float value(int i, int series)
{
	return sinf((float)(i + 5 * series) * 0.3f) + 0.01f * (float)(i % 7) +
	       (i >= 120 ? 1.5f : 0.0f);
}

/* The forecasts and adaptations an engine emits, in order. */
struct seen {
	int n;
	int type[4096];
	uint64_t version[4096];
	float first[4096]; /* a forecast's first value, else loss_after */
	float sum[4096];   /* a forecast's sum */
};

static void on_event(void *user, const struct ttt_event *ev)
{
	struct seen *s = user;
	if (s->n == 4096 ||
	    (ev->type != TTT_EV_FORECAST && ev->type != TTT_EV_ADAPT_ACCEPTED &&
	     ev->type != TTT_EV_ADAPT_REJECTED))
		return;
	s->type[s->n] = ev->type;
	s->version[s->n] = ev->version_to;
	float f = 0.0f, sum = 0.0f;
	if (ev->type == TTT_EV_FORECAST) {
		f = ev->forecast[0];
		for (int k = 0; k < ev->horizon; k++)
			sum += ev->forecast[k];
	} else {
		f = ev->loss_after;
	}
	s->first[s->n] = f;
	s->sum[s->n] = sum;
	s->n++;
}

/* Adaptation on schedule only: the drift detector and the shadow's
 * averages start afresh after a restore, so they are left out here. */
static void params(struct ttt_params *p)
{
	ttt_params_default(p);
	p->every = 5;
	p->drift = TTT_DRIFT_NONE;
	p->shadow_every = 0;
}

static void feed(struct ttt_engine *e, int from, int to)
{
	char key[8];
	for (int i = from; i < to; i++)
		for (int k = 0; k < 2; k++) {
			snprintf(key, sizeof(key), "s%d", k);
			cr_assert_eq(ttt_engine_observe(e, key,
							1000 + 60 * (int64_t)i,
							value(i, k)),
				     0);
		}
}

/* Engine b, restored from a's adapters and recent values, continues
 * exactly as a does: the same forecasts, adaptations and versions. */
Test(recent, restored_engine_continues_exactly)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *a = NULL, *b = NULL;
	struct seen *sa = calloc(1, sizeof(*sa)), *sb = calloc(1, sizeof(*sb));
	struct tt_saved sv = {0};
	char err[256];
	params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sa, &a, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sb, &b, err, sizeof(err)),
		     0, "%s", err);
	feed(a, 0, 152);
	cr_assert_eq(ttt_engine_each_recent(a, tt_save_recent, &sv), 0);
	cr_assert_eq(sv.n, 2);
	size_t A = fc_adapter_len(m);
	float *ad = malloc(A * sizeof(float));
	for (int k = 0; k < sv.n; k++) {
		uint64_t ver;
		cr_assert_eq(
		    ttt_engine_series_adapter(a, sv.key[k], ad, A, &ver), 0);
		cr_assert_gt(ver, 1, "series %s never adapted", sv.key[k]);
		cr_assert_eq(ttt_engine_restore_series(b, sv.key[k], ad, A, ver,
						       sv.r[k].last_ts),
			     0);
		cr_assert_eq(ttt_engine_restore_recent(b, &sv.r[k]), 0);
	}
	sa->n = 0;
	feed(a, 152, 200);
	feed(b, 152, 200);
	cr_assert_eq(sa->n, sb->n);
	/* exact: the restored adapters and windows are a's bits, and both
	 * engines run the same code on the same values from here on */
	int forecasts = 0, adaptations = 0;
	for (int i = 0; i < sa->n; i++) {
		cr_assert_eq(sa->type[i], sb->type[i], "event %d", i);
		cr_assert_eq(sa->version[i], sb->version[i], "event %d", i);
		cr_assert_eq(sa->first[i], sb->first[i], "event %d", i);
		cr_assert_eq(sa->sum[i], sb->sum[i], "event %d", i);
		forecasts += sa->type[i] == TTT_EV_FORECAST;
		adaptations += sa->type[i] != TTT_EV_FORECAST;
	}
	/* a forecast for every value from the first one on */
	cr_assert_eq(forecasts, 2 * 48);
	cr_assert_gt(adaptations, 0);
	free(ad);
	ttt_engine_free(a);
	ttt_engine_free(b);
	fc_model_free(m);
	free(sa);
	free(sb);
}

/* A saved average belongs to its version: restored under another one
 * (an operator's rollback while the daemon was stopped makes a new
 * version) the series publishes from the version, as after a rollback --
 * the forecasts of an engine restored without the average; under its own
 * version the average changes them. */
Test(recent, an_average_of_another_version_is_not_taken)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *a = NULL, *e[3] = {NULL};
	struct seen *sa = calloc(1, sizeof(*sa));
	struct seen *se[3];
	struct tt_saved sv = {0};
	char err[256];
	params(&p);
	cr_assert_gt(p.average_rate, 0.0f, "the default publishes the average");
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sa, &a, err, sizeof(err)),
		     0, "%s", err);
	feed(a, 0, 152);
	cr_assert_eq(ttt_engine_each_recent(a, tt_save_recent, &sv), 0);
	size_t A = fc_adapter_len(m);
	float *ad = malloc(A * sizeof(float));
	uint64_t ver[2];
	for (int k = 0; k < 2; k++) {
		cr_assert_not_null(sv.r[k].average, "series %s", sv.key[k]);
		cr_assert_eq(
		    ttt_engine_series_adapter(a, sv.key[k], ad, A, &ver[k]), 0);
		cr_assert_eq(sv.r[k].average_version, ver[k]);
	}
	/* e[0]: the average dropped; e[1]: restored under version + 1;
	 * e[2]: under its own version */
	for (int i = 0; i < 3; i++) {
		se[i] = calloc(1, sizeof(*se[i]));
		cr_assert_eq(ttt_engine_new(m, &p, on_event, se[i], &e[i], err,
					    sizeof(err)),
			     0, "%s", err);
		for (int k = 0; k < 2; k++) {
			uint64_t v;
			cr_assert_eq(
			    ttt_engine_series_adapter(a, sv.key[k], ad, A, &v),
			    0);
			cr_assert_eq(ttt_engine_restore_series(
					 e[i], sv.key[k], ad, A,
					 i == 1 ? v + 1 : v, sv.r[k].last_ts),
				     0);
			struct ttt_recent r = sv.r[k];
			if (i == 0)
				r.average = NULL;
			cr_assert_eq(ttt_engine_restore_recent(e[i], &r), 0);
		}
		feed(e[i], 152, 160);
	}
	cr_assert_eq(se[0]->n, se[1]->n);
	cr_assert_gt(se[0]->n, 0);
	int differ = 0;
	for (int i = 0; i < se[0]->n; i++) {
		cr_assert_eq(se[0]->first[i], se[1]->first[i], "event %d", i);
		cr_assert_eq(se[0]->sum[i], se[1]->sum[i], "event %d", i);
		differ += se[0]->sum[i] != se[2]->sum[i];
	}
	cr_assert_gt(differ, 0, "the average changed no forecast");
	for (int i = 0; i < 3; i++) {
		ttt_engine_free(e[i]);
		free(se[i]);
	}
	free(ad);
	ttt_engine_free(a);
	fc_model_free(m);
	free(sa);
}

Test(recent, refused_restores_change_nothing)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *e = NULL;
	struct seen *s = calloc(1, sizeof(*s));
	char err[256];
	float v[L];
	params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, s, &e, err, sizeof(err)),
		     0);
	for (int k = 0; k < L; k++)
		v[k] = value(k, 0);
	struct ttt_recent r = {.key = "x",
			       .last_ts = 5000,
			       .step = 60,
			       .position = L,
			       .values = v,
			       .count = L};
	/* stored state moved on since the save */
	cr_assert_eq(ttt_engine_restore_series(e, "x", NULL, 0, 3, 9000), 0);
	cr_assert_eq(ttt_engine_restore_recent(e, &r), -ESTALE);
	r.key = "y";
	r.position = L - 1;
	cr_assert_eq(ttt_engine_restore_recent(e, &r), -EINVAL);
	r.position = L;
	r.step = 0;
	cr_assert_eq(ttt_engine_restore_recent(e, &r), -EINVAL);
	r.step = 60;
	v[3] = NAN;
	cr_assert_eq(ttt_engine_restore_recent(e, &r), -EINVAL);
	v[3] = 0.0f;
	uint16_t inf_avg[2 * H] = {0};
	inf_avg[5] = 0x7c00; /* +infinity in half precision */
	r.average = inf_avg;
	r.average_len = 2 * H;
	cr_assert_eq(ttt_engine_restore_recent(e, &r), -EINVAL);
	/* x has no values: its next one is not forecast */
	cr_assert_eq(ttt_engine_observe(e, "x", 9060, 1.0f), 0);
	cr_assert_eq(s->n, 0);
	ttt_engine_free(e);
	fc_model_free(m);
	free(s);
}

/* Values saved by an engine with a longer ring keep the newest; the next
 * forecast is the one of the same lookback. */
Test(recent, longer_history_keeps_the_newest)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *a = NULL, *b = NULL;
	struct seen *sa = calloc(1, sizeof(*sa)), *sb = calloc(1, sizeof(*sb));
	char err[256];
	params(&p);
	p.enabled = false; /* forecasts only: the frozen model */
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sa, &a, err, sizeof(err)),
		     0);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sb, &b, err, sizeof(err)),
		     0);
	float v[400];
	for (int i = 0; i < 400; i++)
		v[i] = value(i, 1);
	struct ttt_recent r = {.key = "s1",
			       .last_ts = 1000 + 60 * 399,
			       .step = 60,
			       .position = 400,
			       .values = v,
			       .count = 400};
	cr_assert_eq(ttt_engine_restore_recent(b, &r), 0);
	for (int i = 0; i < 401; i++)
		cr_assert_eq(ttt_engine_observe(a, "s1", 1000 + 60 * (int64_t)i,
						i < 400 ? v[i] : 0.5f),
			     0);
	cr_assert_eq(ttt_engine_observe(b, "s1", 1000 + 60 * 400, 0.5f), 0);
	cr_assert_eq(sb->n, 1);
	cr_assert_eq(sa->first[sa->n - 1], sb->first[0]);
	cr_assert_eq(sa->sum[sa->n - 1], sb->sum[0]);
	ttt_engine_free(a);
	ttt_engine_free(b);
	fc_model_free(m);
	free(sa);
	free(sb);
}

static int count_changed(struct ttt_engine *e, struct tt_saved *sv)
{
	memset(sv, 0, sizeof(*sv));
	cr_assert_eq(ttt_engine_each_changed_recent(e, tt_save_recent, sv), 0);
	return sv->n;
}

/* What the daemon writes with every durable batch: exactly the series
 * whose recent values changed since the last save -- a value appended or
 * values restored; not a refused value, not a forgotten series -- and
 * each as ttt_engine_each_recent gives it, so a crash finds them as they
 * are.  While forecasts are queued it refuses (they would change them). */
Test(recent, changed_series_are_listed_until_saved)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *e = NULL;
	struct seen *se = calloc(1, sizeof(*se));
	struct tt_saved *sv = calloc(1, sizeof(*sv)),
			*all = calloc(1, sizeof(*all));
	char err[256];
	params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, se, &e, err, sizeof(err)),
		     0);
	cr_assert_eq(count_changed(e, sv), 0);
	feed(e, 0, 40);
	cr_assert_eq(count_changed(e, sv), 2);
	cr_assert_eq(ttt_engine_each_recent(e, tt_save_recent, all), 0);
	for (int k = 0; k < 2; k++) {
		int j = strcmp(sv->r[k].key, all->r[0].key) == 0 ? 0 : 1;
		cr_assert_str_eq(sv->r[k].key, all->r[j].key);
		cr_assert_eq(sv->r[k].position, all->r[j].position);
		cr_assert_eq(sv->r[k].last_ts, all->r[j].last_ts);
		cr_assert_eq(sv->r[k].count, all->r[j].count);
		cr_assert_eq(memcmp(sv->v[k], all->v[j],
				    (size_t)sv->r[k].count * sizeof(float)),
			     0);
	}
	ttt_engine_recent_saved(e);
	cr_assert_eq(count_changed(e, sv), 0);

	/* one series gets a value: only it; a refused value changes nothing */
	cr_assert_eq(ttt_engine_observe(e, "s1", 1000 + 60 * 40, 0.25f), 0);
	cr_assert_eq(ttt_engine_observe(e, "s0", 1000 + 60 * 39, 0.25f), 0);
	cr_assert_eq(count_changed(e, sv), 1);
	cr_assert_str_eq(sv->r[0].key, "s1");
	cr_assert_eq(sv->r[0].last_ts, 1000 + 60 * 40);
	cr_assert_eq(sv->v[0][sv->r[0].count - 1], 0.25f);

	/* a forgotten series leaves the list (the others stay) */
	cr_assert_eq(ttt_engine_observe(e, "s0", 1000 + 60 * 40, 0.5f), 0);
	cr_assert_eq(count_changed(e, sv), 2);
	cr_assert_eq(ttt_engine_forget_series(e, "s1"), 0);
	cr_assert_eq(count_changed(e, sv), 1);
	cr_assert_str_eq(sv->r[0].key, "s0");
	ttt_engine_recent_saved(e);

	/* restored values are listed: the restore's source may be gone */
	struct ttt_recent r = all->r[0];
	r.key = "s9";
	cr_assert_eq(ttt_engine_restore_recent(e, &r), 0);
	cr_assert_eq(count_changed(e, sv), 1);
	cr_assert_str_eq(sv->r[0].key, "s9");
	cr_assert_eq(sv->r[0].position, r.position);
	ttt_engine_recent_saved(e);

	/* queued forecasts: refused until flushed */
	cr_assert_eq(ttt_engine_defer_forecasts(e, 8), 0);
	cr_assert_eq(ttt_engine_observe(e, "s0", 1000 + 60 * 41, 0.5f), 0);
	cr_assert_eq(ttt_engine_each_changed_recent(e, tt_save_recent, sv),
		     -EBUSY);
	cr_assert_eq(ttt_engine_flush(e), 0);
	cr_assert_eq(count_changed(e, sv), 1);
	ttt_engine_free(e);
	fc_model_free(m);
	free(se);
	free(sv);
	free(all);
}
