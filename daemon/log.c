/*
 * Logging to stderr.  Under systemd, the journal reads "<N>" priority
 * prefixes; we only use them when JOURNAL_STREAM names the very file our
 * stderr is (as systemd's own log.c does), so a redirected stderr in a unit
 * gets plain lines.  One write(2) per line keeps concurrent lines whole.
 */
#include "daemon/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_max_level = LOG_INFO;

/* The last line logged at error level or worse, for `driftcast status`
 * (read by the metrics thread, hence the lock: errors are rare). */
static pthread_mutex_t last_error_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[512];
static int64_t last_error_ms;
static enum { LOG_PLAIN, LOG_TIMESTAMPED, LOG_JOURNAL } log_style = LOG_PLAIN;

static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(void)
{
	if (stderr_is_journal())
		log_style = LOG_JOURNAL;
	else if (isatty(STDERR_FILENO))
		log_style = LOG_PLAIN;
	else
		log_style = LOG_TIMESTAMPED;
}

void log_set_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_max_level = level;
}

static const char *level_word(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void log_emit(int level, const char *fmt, ...)
{
	char line[2048];
	size_t off = 0;
	int errno_saved = errno;

	if (log_style == LOG_JOURNAL) {
		off = (size_t)snprintf(line, sizeof(line), "<%d>", level);
	} else {
		if (log_style == LOG_TIMESTAMPED) {
			struct timespec ts;
			struct tm tm;
			clock_gettime(CLOCK_REALTIME, &ts);
			gmtime_r(&ts.tv_sec, &tm);
			off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S",
				       &tm);
			off +=
			    (size_t)snprintf(line + off, sizeof(line) - off,
					     ".%03ldZ ", ts.tv_nsec / 1000000);
		}
		off += (size_t)snprintf(line + off, sizeof(line) - off,
					"%s: ", level_word(level));
	}

	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (level <= LOG_ERR) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		pthread_mutex_lock(&last_error_lock);
		snprintf(last_error, sizeof(last_error), "%s", line + off);
		last_error_ms =
		    (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		pthread_mutex_unlock(&last_error_lock);
	}
	off += (size_t)n;
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2;
	line[off++] = '\n';

	const char *p = line;
	while (off > 0) {
		ssize_t w = write(STDERR_FILENO, p, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		off -= (size_t)w;
	}
	errno = errno_saved;
}

int64_t log_last_error(char *buf, size_t size)
{
	pthread_mutex_lock(&last_error_lock);
	int64_t t = last_error_ms;
	if (size)
		snprintf(buf, size, "%s", last_error);
	pthread_mutex_unlock(&last_error_lock);
	return t;
}

uint64_t dc_now_monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool log_ratelimit_test(struct log_ratelimit *rl, uint64_t now_usec,
			unsigned *ret_missed)
{
	*ret_missed = 0;
	if (rl->interval_usec == 0 || rl->burst == 0)
		return true;
	if (rl->num == 0 || now_usec < rl->begin_usec ||
	    now_usec - rl->begin_usec >= rl->interval_usec) {
		*ret_missed = rl->missed;
		rl->begin_usec = now_usec;
		rl->num = 1;
		rl->missed = 0;
		return true;
	}
	if (rl->num < rl->burst) {
		rl->num++;
		return true;
	}
	rl->missed++;
	return false;
}
