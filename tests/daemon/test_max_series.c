/*
 * Values the engine refuses whole (ttt.max_series reached; out of memory
 * takes the same path) go to the dead letters.  They were only logged,
 * their offsets committed with the rest: lost without a trace.  dc_run in
 * this process against librdkafka's mock cluster, at most 2 series of 3.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/parse.h"
#include "tests/daemon/mockrun.h"

#define SERIES 3
#define STEPS  30

struct world {
	struct mr_world mr;
	int64_t want;
};

static bool tick(void *user, const struct dc_run_stats *st)
{
	const struct world *w = user;
	return st->messages + st->skipped_replay >= (uint64_t)w->want;
}

Test(max_series, values_beyond_it_are_dead_lettered, .timeout = 120)
{
	struct world w = {0};
	mr_start(&w.mr, 1, false);
	w.want = mr_produce_steps(&w.mr, SERIES, 0, STEPS);
	const char *sets[] = {w.mr.s_brokers,
			      w.mr.s_db,
			      w.mr.s_model,
			      "kafka.group=max-series",
			      "kafka.deadletter_topic=deadletter",
			      "kafka.session_timeout_ms=6000",
			      "storage.batch_ms=50",
			      "metrics.listen=off",
			      "model.lookback=16",
			      "model.horizon=4",
			      "ttt.max_series=2",
			      "log.level=error"};
	struct dc_run_options o = {.sets = sets,
				   .nsets = sizeof(sets) / sizeof(sets[0]),
				   .tick = tick,
				   .user = &w};
	struct dc_run_stats st;
	cr_assert_eq(dc_run(&o, &st), 0);
	/* s0 and s1 come first at every step: s2 is the one refused */
	cr_assert_eq(st.deadlettered, STEPS);
	cr_assert_eq(st.dead_by_reason[DC_REASON_REJECTED_VALUE], STEPS);
	cr_assert_eq(st.forecasts, 2 * (STEPS - 16 + 1));
	mr_stop(&w.mr);
}
