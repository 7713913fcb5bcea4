/*
 * systemd notification (sd_notify(3) over $NOTIFY_SOCKET): readiness,
 * status lines, the watchdog, reload and stop.
 *
 * The state is process-wide, like $NOTIFY_SOCKET itself, and belongs to
 * the main loop's thread.  The watchdog is pinged from the main loop only
 * (notify_watchdog_tick), at half the interval systemd asked for, so a loop
 * that stops making progress stops the pings and systemd restarts us -- a
 * timer thread would keep pinging a stuck daemon.  Without $NOTIFY_SOCKET
 * every call is a cheap no-op.
 */
#include "daemon/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#define STATUS_INTERVAL_USEC 1000000u

static struct {
	uint64_t watchdog_usec; /* 0: watchdog off */
	uint64_t last_ping_usec;
	uint64_t last_status_usec;
	bool pinged, statused;
} st;

/* When the loop last reported progress; read by the metrics thread
 * (GET /healthz), hence atomic. */
static _Atomic uint64_t last_progress_usec;

uint64_t notify_last_progress_usec(void)
{
	return atomic_load_explicit(&last_progress_usec, memory_order_relaxed);
}

int notify_init(void)
{
	uint64_t usec = 0;
	st.watchdog_usec = 0;
	st.pinged = st.statused = false;
	/* unset_environment=0: children we spawn are not ours to supervise,
	 * but tests re-read the variables, so leave them */
	int r = sd_watchdog_enabled(0, &usec);
	if (r > 0)
		st.watchdog_usec = usec;
	return r < 0 ? r : 0;
}

uint64_t notify_watchdog_usec(void)
{
	return st.watchdog_usec;
}

static int notify_send(const char *text)
{
	int r = sd_notify(0, text);
	return r < 0 ? r : 0;
}

int notify_ready(void)
{
	return notify_send("READY=1");
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

int notify_reloading(uint64_t now_monotonic_usec)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)now_monotonic_usec);
	return notify_send(buf);
}

int notify_extend_timeout(uint64_t usec)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "EXTEND_TIMEOUT_USEC=%llu",
		 (unsigned long long)usec);
	return notify_send(buf);
}

int notify_status(uint64_t now_usec, bool force, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (!force && st.statused &&
	    now_usec - st.last_status_usec < STATUS_INTERVAL_USEC)
		return 0;
	int n = snprintf(buf, sizeof(buf), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	/* a status is one line: newlines would start new assignments */
	for (char *c = buf; *c; c++)
		if (*c == '\n')
			*c = ' ';
	st.last_status_usec = now_usec;
	st.statused = true;
	int r = notify_send(buf);
	return r < 0 ? r : 1;
}

int notify_watchdog_tick(uint64_t now_usec)
{
	atomic_store_explicit(&last_progress_usec, now_usec,
			      memory_order_relaxed);
	if (st.watchdog_usec == 0)
		return 0;
	if (st.pinged && now_usec - st.last_ping_usec < st.watchdog_usec / 2)
		return 0;
	st.last_ping_usec = now_usec;
	st.pinged = true;
	int r = notify_send("WATCHDOG=1");
	return r < 0 ? r : 1;
}
