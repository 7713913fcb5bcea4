/* Unit tests of the logging helpers: level filtering happens before the
 * arguments are evaluated, and the rate limiter counts what it drops. */
#include <criterion/criterion.h>

#include "daemon/daemon.h"

static int evaluated;

static int side_effect(void)
{
	return ++evaluated;
}

Test(log, level_is_checked_before_formatting)
{
	log_set_level(LOG_WARNING);
	evaluated = 0;
	log_debug("never %d", side_effect());
	log_info("never %d", side_effect());
	cr_assert_eq(evaluated, 0);
	log_set_level(LOG_DEBUG);
	log_debug("now %d", side_effect());
	cr_assert_eq(evaluated, 1);
}

Test(log, level_is_clamped)
{
	log_set_level(99);
	cr_assert_eq(log_max_level, LOG_DEBUG);
	log_set_level(-5);
	cr_assert_eq(log_max_level, LOG_EMERG);
}

Test(log, ratelimit_allows_burst_then_counts_suppressed)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 3);
	unsigned missed;
	uint64_t t = 5000000;
	for (int i = 0; i < 3; i++) {
		cr_assert(log_ratelimit_test(&rl, t + (uint64_t)i, &missed));
		cr_assert_eq(missed, 0);
	}
	for (int i = 0; i < 10; i++)
		cr_assert_not(log_ratelimit_test(&rl, t + 100, &missed));
	/* next interval: allowed again, reports the 10 it dropped */
	cr_assert(log_ratelimit_test(&rl, t + 1000000, &missed));
	cr_assert_eq(missed, 10);
	cr_assert(log_ratelimit_test(&rl, t + 1000001, &missed));
	cr_assert_eq(missed, 0);
}

Test(log, ratelimit_zero_means_unlimited)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(0, 0);
	unsigned missed;
	for (int i = 0; i < 1000; i++)
		cr_assert(log_ratelimit_test(&rl, 1, &missed));
}
