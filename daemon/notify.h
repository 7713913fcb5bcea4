/*
 * systemd notification (daemon/notify.c): sd_notify(3) over
 * $NOTIFY_SOCKET -- readiness, reload, stop, STATUS= lines and the
 * watchdog.  Every call is a no-op without $NOTIFY_SOCKET.  Process-wide
 * state, used from the main loop's thread only.  Functions return 0 (or 1
 * when a rate-limited message was actually sent) or a negative errno from
 * the socket.
 */
#ifndef DRIFTCAST_DAEMON_NOTIFY_H
#define DRIFTCAST_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read the watchdog interval ($WATCHDOG_USEC, sd_watchdog_enabled) and
 * reset the rate limits.  Call once at start-up. */
int notify_init(void);
/* The interval systemd expects pings within; 0 when the watchdog is off. */
uint64_t notify_watchdog_usec(void);
/* "READY=1": at start-up once the DB is migrated, the model loaded and the
 * consumer subscribed, and again after each reload. */
int notify_ready(void);
/* "STOPPING=1" when a stop was requested, before draining. */
int notify_stopping(void);
/* "RELOADING=1\nMONOTONIC_USEC=now" (CLOCK_MONOTONIC), then reload, then
 * notify_ready(). */
int notify_reloading(uint64_t now_monotonic_usec);
/* "EXTEND_TIMEOUT_USEC=usec" during a long start-up. */
int notify_extend_timeout(uint64_t usec);
/* "STATUS=<text>" (newlines become spaces), at most once per second unless
 * force; returns 1 when sent. */
int notify_status(uint64_t now_usec, bool force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Call from the main loop each time it makes progress: sends "WATCHDOG=1"
 * when half the interval has passed since the last ping (returns 1), else
 * returns 0 after one comparison. */
int notify_watchdog_tick(uint64_t now_usec);
/* The now_usec of the last notify_watchdog_tick() (0: none), whether or
 * not the watchdog is on.  Any thread. */
uint64_t notify_last_progress_usec(void);

#endif
