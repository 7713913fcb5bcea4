/*
 * Logging (daemon/log.c): leveled lines on stderr, a rate limit for the
 * per-message paths, and the monotonic clock both use.  Only daemon/ logs.
 *
 * Levels are syslog(3) priorities.  The macros test the level before any
 * argument is evaluated or formatted.  Under systemd (JOURNAL_STREAM names
 * our stderr) lines carry "<N>" priority prefixes; otherwise they are plain,
 * with a timestamp unless stderr is a terminal.
 */
#ifndef DRIFTCAST_DAEMON_LOG_H
#define DRIFTCAST_DAEMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

extern int log_max_level;

void log_init(void);
void log_set_level(int level);
void log_emit(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                              \
	do {                                            \
		if ((level) <= log_max_level)           \
			log_emit((level), __VA_ARGS__); \
	} while (0)
#define log_error(...)	 log_at(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_at(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	 log_at(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	 log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	 log_at(LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limiting for per-message paths: at most `burst` messages per
 * `interval_usec`.  When a new interval begins after suppressions,
 * log_ratelimit_test() reports how many were suppressed in *ret_missed.
 */
struct log_ratelimit {
	uint64_t interval_usec;
	unsigned burst;
	uint64_t begin_usec;
	unsigned num;
	unsigned missed;
};

#define LOG_RATELIMIT_INIT(interval_ms, burst_)                 \
	{                                                       \
		.interval_usec = (uint64_t)(interval_ms)*1000u, \
		.burst = (burst_)                               \
	}

/* Returns true when a message may be logged at time now_usec. */
bool log_ratelimit_test(struct log_ratelimit *rl, uint64_t now_usec,
			unsigned *ret_missed);

/* The last line logged at LOG_ERR or worse (without prefix) into buf,
 * and when, in ms since the epoch; 0 (buf empty) when there was none.
 * Thread-safe. */
int64_t log_last_error(char *buf, size_t size);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t dc_now_monotonic_usec(void);

#define log_ratelimited(rl, level, ...)                                      \
	do {                                                                 \
		unsigned missed_;                                            \
		if ((level) <= log_max_level &&                              \
		    log_ratelimit_test((rl), dc_now_monotonic_usec(),        \
				       &missed_)) {                          \
			if (missed_)                                         \
				log_emit((level),                            \
					 "(%u similar messages suppressed)", \
					 missed_);                           \
			log_emit((level), __VA_ARGS__);                      \
		}                                                            \
	} while (0)

#endif
