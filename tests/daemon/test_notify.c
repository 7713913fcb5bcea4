/*
 * systemd notification: the exact datagrams on $NOTIFY_SOCKET, the STATUS
 * rate limit, the watchdog pinging at half its interval only when the loop
 * ticks, and silence without a socket or a watchdog.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/daemon.h"

static int fd = -1;
static char path[108];

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(path, sizeof(path), "/tmp/dc-notify-%d", (int)getpid());
	unlink(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_geq(fd, 0);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void teardown(void)
{
	close(fd);
	unlink(path);
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, or "" when none is queued. */
static const char *next(void)
{
	static char buf[1024];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		cr_assert_eq(errno, EAGAIN);
		n = 0;
	}
	buf[n] = '\0';
	return buf;
}

Test(notify, lifecycle_datagrams, .init = setup, .fini = teardown)
{
	cr_assert_eq(notify_init(), 0);
	cr_assert_eq(notify_watchdog_usec(), 0);
	cr_assert_eq(notify_ready(), 0);
	cr_assert_str_eq(next(), "READY=1");
	cr_assert_eq(notify_reloading(123456789), 0);
	cr_assert_str_eq(next(), "RELOADING=1\nMONOTONIC_USEC=123456789");
	cr_assert_eq(notify_ready(), 0);
	cr_assert_str_eq(next(), "READY=1");
	cr_assert_eq(notify_extend_timeout(30000000), 0);
	cr_assert_str_eq(next(), "EXTEND_TIMEOUT_USEC=30000000");
	cr_assert_eq(notify_stopping(), 0);
	cr_assert_str_eq(next(), "STOPPING=1");
	cr_assert_str_eq(next(), "");
	/* without a watchdog, ticks send nothing */
	for (uint64_t t = 0; t < 100000000; t += 1000000)
		cr_assert_eq(notify_watchdog_tick(t), 0);
	cr_assert_str_eq(next(), "");
}

Test(notify, status_is_rate_limited, .init = setup, .fini = teardown)
{
	uint64_t t0 = 5000000;
	cr_assert_eq(notify_init(), 0);
	cr_assert_eq(notify_status(t0, false, "lag %d, %d series", 3, 12873),
		     1);
	cr_assert_str_eq(next(), "STATUS=lag 3, 12873 series");
	cr_assert_eq(notify_status(t0 + 300000, false, "dropped"), 0);
	cr_assert_eq(notify_status(t0 + 999999, false, "dropped"), 0);
	cr_assert_str_eq(next(), "");
	cr_assert_eq(notify_status(t0 + 1000000, false, "two\nlines"), 1);
	cr_assert_str_eq(next(), "STATUS=two lines");
	/* force: e.g. "reload failed" must not wait */
	cr_assert_eq(notify_status(t0 + 1000001, true, "reload failed: x"), 1);
	cr_assert_str_eq(next(), "STATUS=reload failed: x");
	cr_assert_str_eq(next(), "");
}

Test(notify, watchdog_pings_at_half_interval_on_ticks, .init = setup,
     .fini = teardown)
{
	setenv("WATCHDOG_USEC", "2000000", 1);
	cr_assert_eq(notify_init(), 0);
	cr_assert_eq(notify_watchdog_usec(), 2000000);
	uint64_t t0 = 7000000;
	cr_assert_eq(notify_watchdog_tick(t0), 1);
	cr_assert_str_eq(next(), "WATCHDOG=1");
	cr_assert_eq(notify_watchdog_tick(t0 + 500000), 0);
	cr_assert_eq(notify_watchdog_tick(t0 + 999999), 0);
	cr_assert_str_eq(next(), "");
	cr_assert_eq(notify_watchdog_tick(t0 + 1000000), 1);
	cr_assert_str_eq(next(), "WATCHDOG=1");
	/* a loop that stops ticking sends nothing, however long it hangs;
	 * its next tick pings at once */
	cr_assert_str_eq(next(), "");
	cr_assert_eq(notify_watchdog_tick(t0 + 60000000), 1);
	cr_assert_str_eq(next(), "WATCHDOG=1");
	/* a watchdog meant for another process is not ours */
	setenv("WATCHDOG_PID", "1", 1);
	cr_assert_eq(notify_init(), 0);
	cr_assert_eq(notify_watchdog_usec(), 0);
	cr_assert_eq(notify_watchdog_tick(t0 + 90000000), 0);
	cr_assert_str_eq(next(), "");
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
}

Test(notify, no_socket_is_a_quiet_no_op)
{
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "1000000", 1);
	cr_assert_eq(notify_init(), 0);
	cr_assert_eq(notify_ready(), 0);
	cr_assert_eq(notify_status(0, true, "x"), 1);
	cr_assert_geq(notify_watchdog_tick(0), 0);
	cr_assert_eq(notify_stopping(), 0);
	unsetenv("WATCHDOG_USEC");
}
