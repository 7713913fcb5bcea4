/*
 * Series time in the engine: nanoseconds since the epoch at 10 Hz and
 * 1 kHz (every value used, none a duplicate), the series' step carried on
 * its forecast events -- emitted at once and from the deferred queue --
 * and ttt_engine_series_clock.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "forecast/forecast.h"
#include "tests/ttt/small_model.h"
#include "ttt/ttt.h"

#define L  32
#define H  8
#define NS INT64_C(1000000000)
#define T0 (INT64_C(1700000000) * NS)

struct seen {
	int forecasts, rejected;
	int64_t first_ts, last_ts, step;
	int steps_ok; /* every forecast carried the step */
};

static void on_event(void *user, const struct ttt_event *ev)
{
	struct seen *s = user;
	if (ev->type == TTT_EV_REJECTED_VALUE)
		s->rejected++;
	if (ev->type != TTT_EV_FORECAST)
		return;
	if (s->forecasts++ == 0)
		s->first_ts = ev->ts;
	s->last_ts = ev->ts;
	s->steps_ok += ev->step == s->step;
}

static void run(int64_t step, int defer)
{
	struct fc_config c;
	struct fc_model *m = NULL;
	struct ttt_engine *e = NULL;
	struct ttt_params p;
	char err[256];
	tt_small_config(&c, L, H);
	c.n_layers = 1;
	cr_assert_eq(fc_model_new(&c, 7, &m, err, sizeof(err)), 0, "%s", err);
	ttt_params_default(&p);
	p.enabled = 0; /* time handling only */
	struct seen s = {.step = step};
	cr_assert_eq(ttt_engine_new(m, &p, on_event, &s, &e, err, sizeof(err)),
		     0, "%s", err);
	if (defer)
		cr_assert_eq(ttt_engine_defer_forecasts(e, 16), 0);
	int64_t last = 0, st = 0;
	cr_assert_eq(ttt_engine_series_clock(e, "x", &last, &st), -ENOENT);
	const int n = 300;
	for (int i = 0; i < n; i++)
		cr_assert_eq(ttt_engine_observe(e, "x", T0 + i * step,
						sinf(0.2f * (float)i)),
			     0);
	cr_assert_eq(ttt_engine_flush(e), 0);
	cr_assert_eq(s.rejected, 0);
	cr_assert_eq(s.forecasts, n - L + 1);
	cr_assert_eq(s.steps_ok, s.forecasts);
	cr_assert_eq(s.first_ts, T0 + (L - 1) * step);
	cr_assert_eq(s.last_ts, T0 + (n - 1) * step);
	cr_assert_eq(ttt_engine_series_clock(e, "x", &last, &st), 0);
	cr_assert_eq(last, T0 + (n - 1) * step);
	cr_assert_eq(st, step);
	/* a repeat of the newest time is still a duplicate */
	cr_assert_eq(ttt_engine_observe(e, "x", last, 1.0f), 0);
	cr_assert_eq(s.rejected, 1);
	ttt_engine_free(e);
	fc_model_free(m);
}

Test(ttt_time, hz10_in_ns)
{
	run(NS / 10, 0);
}
Test(ttt_time, khz_in_ns)
{
	run(NS / 1000, 0);
}
Test(ttt_time, khz_in_ns_deferred)
{
	run(NS / 1000, 1);
}
Test(ttt_time, hourly_in_ns_deferred)
{
	run(3600 * NS, 1);
}
