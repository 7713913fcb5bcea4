/* dc_poll_wait_ms: the daemon loop's batching rule.  An open batch with
 * storage.flush_when_idle is committed at the first empty poll; without
 * it, the batch is held until its due time; unacknowledged messages cap
 * the wait so their delivery reports are served. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"

#define MS 1000u

Test(poll_wait, idle_input_commits_an_open_batch_at_once)
{
	uint64_t now = 1000000 * MS;
	cr_assert_eq(dc_poll_wait_ms(true, true, now + 30000 * MS, now, 0), 0);
	cr_assert_eq(dc_poll_wait_ms(true, true, now + 30000 * MS, now, 7), 0);
}

Test(poll_wait, without_flush_when_idle_a_batch_waits_for_its_due_time)
{
	uint64_t now = 1000000 * MS;
	cr_assert_eq(dc_poll_wait_ms(true, false, now + 30000 * MS, now, 0),
		     100);
	cr_assert_eq(dc_poll_wait_ms(true, false, now + 40 * MS, now, 0), 40);
	/* rounded up: never a busy loop of zero waits before the due time */
	cr_assert_eq(dc_poll_wait_ms(true, false, now + 1, now, 0), 1);
	cr_assert_eq(dc_poll_wait_ms(true, false, now, now, 0), 0);
	cr_assert_eq(dc_poll_wait_ms(true, false, now - MS, now, 0), 0);
}

Test(poll_wait, nothing_open_waits_up_to_100_ms_or_5_with_messages_in_flight)
{
	uint64_t now = 1000000 * MS;
	cr_assert_eq(dc_poll_wait_ms(false, true, 0, now, 0), 100);
	cr_assert_eq(dc_poll_wait_ms(false, false, 0, now, 0), 100);
	cr_assert_eq(dc_poll_wait_ms(false, true, 0, now, 1), 5);
	cr_assert_eq(dc_poll_wait_ms(true, false, now + 3 * MS, now, 1), 3);
	cr_assert_eq(dc_poll_wait_ms(true, false, now + 30 * MS, now, 1), 5);
}
