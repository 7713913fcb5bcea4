/*
 * A series handed to another host (ttt/handover.h): one series' recent
 * values exported with ttt_engine_series_recent and its adapter restored
 * into another engine continue it exactly; ttt_engine_forget_series drops
 * it (and its adapter state) from the engine that gave it away, flushing
 * queued forecasts first.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "tests/ttt/small_model.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"

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
	return sinf((float)(i + 5 * series) * 0.3f) + 0.01f * (float)(i % 7);
}

struct seen {
	int n, forecasts;
	uint64_t version[1024];
	float sum[1024];
};

static void on_event(void *user, const struct ttt_event *ev)
{
	struct seen *s = user;
	if (ev->type == TTT_EV_FORECAST)
		s->forecasts++;
	if (s->n == 1024 ||
	    (ev->type != TTT_EV_FORECAST && ev->type != TTT_EV_ADAPT_ACCEPTED))
		return;
	float sum = 0.0f;
	for (int k = 0; ev->forecast && k < ev->horizon; k++)
		sum += ev->forecast[k];
	s->version[s->n] = ev->version_to;
	s->sum[s->n++] = sum;
}

static void params(struct ttt_params *p)
{
	ttt_params_default(p);
	p->every = 5;
	p->drift = TTT_DRIFT_NONE;
	p->shadow_every = 0;
}

static void feed(struct ttt_engine *e, const char *key, int k, int from, int to)
{
	for (int i = from; i < to; i++)
		cr_assert_eq(ttt_engine_observe(e, key, 1000 + 60 * (int64_t)i,
						value(i, k)),
			     0);
}

Test(handover, an_exported_series_continues_exactly_elsewhere)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *a = NULL, *b = NULL;
	struct seen *sa = calloc(1, sizeof(*sa)), *sb = calloc(1, sizeof(*sb));
	char err[256];
	params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sa, &a, err, sizeof(err)),
		     0);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, sb, &b, err, sizeof(err)),
		     0);
	feed(a, "s0", 0, 0, 150);
	feed(a, "s1", 1, 0, 150);

	size_t A = fc_adapter_len(m), R = ttt_engine_ring_len(a);
	float *ad = malloc(A * sizeof(float)),
	      *ring = malloc(R * sizeof(float));
	uint64_t ver;
	struct ttt_recent rc;
	cr_assert_eq(ttt_engine_series_recent(a, "s0", ring, R - 1, &rc),
		     -EINVAL);
	cr_assert_eq(ttt_engine_series_recent(a, "nope", ring, R, &rc),
		     -ENOENT);
	cr_assert_eq(ttt_engine_series_recent(a, "s0", ring, R, &rc), 0);
	cr_assert_eq(rc.position, 150);
	cr_assert_eq(rc.last_ts, 1000 + 60 * 149);
	cr_assert_eq(ttt_engine_series_adapter(a, "s0", ad, A, &ver), 0);
	cr_assert_gt(ver, 1);
	/* the active ranges over the base give the same block, and differ
	 * from the base only inside those ranges (what a state record
	 * carries) */
	{
		float *act = malloc(A * sizeof(float));
		const float *base = ttt_engine_base_adapter(a);
		size_t off[4], len[4],
		    n = ttt_engine_adapter_segments(a, off, len, 4);
		uint64_t v2 = 0;
		cr_assert(n >= 1 && n <= 4);
		memcpy(act, base, A * sizeof(float));
		cr_assert_eq(
		    ttt_engine_series_adapter_active(a, "s0", act, A, &v2), 0);
		cr_assert_eq(v2, ver);
		cr_assert_eq(memcmp(act, ad, A * sizeof(float)), 0);
		size_t inside = 0, differ = 0;
		for (size_t i = 0; i < A; i++) {
			bool in = false;
			for (size_t k = 0; k < n; k++)
				in |= i >= off[k] && i < off[k] + len[k];
			inside += in;
			if (memcmp(&ad[i], &base[i], sizeof(float))) {
				cr_assert(in, "float %zu differs outside", i);
				differ++;
			}
		}
		cr_assert_gt(differ, 0);
		cr_assert_lt(inside, A);
		cr_assert_eq(
		    ttt_engine_series_adapter_active(a, "nope", act, A, &v2),
		    -ENOENT);
		free(act);
	}
	cr_assert_eq(ttt_engine_restore_series(b, "s0", ad, A, ver, INT64_MIN),
		     0);
	cr_assert_eq(ttt_engine_restore_recent(b, &rc), 0);

	sa->n = sb->n = 0;
	feed(a, "s0", 0, 150, 190);
	feed(b, "s0", 0, 150, 190);
	cr_assert_eq(sa->n, sb->n);
	for (int i = 0; i < sa->n; i++) {
		cr_assert_eq(sa->version[i], sb->version[i], "event %d", i);
		cr_assert_eq(sa->sum[i], sb->sum[i], "event %d", i);
	}
	free(ad);
	free(ring);
	ttt_engine_free(a);
	ttt_engine_free(b);
	fc_model_free(m);
	free(sa);
	free(sb);
}

Test(handover, a_forgotten_series_is_gone_and_starts_afresh)
{
	struct fc_model *m = model();
	struct ttt_params p;
	struct ttt_engine *e = NULL;
	struct seen *s = calloc(1, sizeof(*s));
	char err[256];
	params(&p);
	cr_assert_eq(ttt_engine_new(m, &p, on_event, s, &e, err, sizeof(err)),
		     0);
	/* forecasts wait in the queue: forgetting flushes them first */
	cr_assert_eq(ttt_engine_defer_forecasts(e, 64), 0);
	feed(e, "s0", 0, 0, 100);
	feed(e, "s1", 1, 0, 100);
	struct ttt_stats before, after;
	ttt_engine_stats(e, &before);
	int forecasts = s->forecasts;
	cr_assert_eq(ttt_engine_forget_series(e, "s0"), 0);
	cr_assert_gt(s->forecasts, forecasts, "queued forecasts not flushed");
	cr_assert_eq(ttt_engine_forget_series(e, "s0"), -ENOENT);
	ttt_engine_stats(e, &after);
	cr_assert_eq(ttt_engine_series_count(e), 1);
	cr_assert_eq(after.series, before.series - 1);
	cr_assert_eq(after.adapters, before.adapters - 1);
	cr_assert_lt(after.bytes_series, before.bytes_series);
	cr_assert_lt(after.bytes_adapters, before.bytes_adapters);
	size_t A = fc_adapter_len(m);
	float *ad = malloc(A * sizeof(float));
	uint64_t ver = 99;
	cr_assert_eq(ttt_engine_series_adapter(e, "s0", ad, A, &ver), -ENOENT);
	/* the other series goes on; s0 seen again starts from nothing */
	feed(e, "s1", 1, 100, 110);
	feed(e, "s0", 0, 100, 110);
	cr_assert_eq(ttt_engine_flush(e), 0);
	cr_assert_eq(ttt_engine_series_adapter(e, "s0", ad, A, &ver), 0);
	cr_assert_eq(ver, 0);
	free(ad);
	ttt_engine_free(e);
	fc_model_free(m);
	free(s);
}
