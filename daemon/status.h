/*
 * The daemon's own view of itself (daemon/status.c, status_series.c):
 * GET /status (JSON, what `driftcast status` prints), /healthz and /readyz
 * on the metrics listener, and the metrics that need more than a counter
 * -- the series owned by this member, the series whose adapter is
 * currently worse than the frozen model, the realised error histograms,
 * Prometheus' standard process_* metrics.
 *
 * Two threads: the loop feeds it (series seen, realised errors, and once a
 * second a report of its counters and partitions); the HTTP thread reads
 * what the last report published, under a lock held for a copy.  Every
 * function accepts s == NULL (metrics off) and does nothing.
 */
#ifndef DRIFTCAST_DAEMON_STATUS_H
#define DRIFTCAST_DAEMON_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dc_partition_lag;
struct dc_run_stats;
struct dc_status;

/* The loop counts as stalled (GET /healthz: 503) when it has made no
 * progress -- no publish, no notify_watchdog_tick() -- for this long; the
 * shipped unit's WatchdogSec is the same. */
#define DC_STATUS_STALL_USEC (30u * 1000000u)
/* Partition numbers tracked per partition (higher ones are not counted
 * in the owned series). */
#define DC_STATUS_MAX_PARTITIONS 4096

/* A zeroed status; NULL without memory.  dc_status_free accepts NULL. */
struct dc_status *dc_status_new(void);
void dc_status_free(struct dc_status *s);

/* ---- the loop's thread */

/* An observation of series key arrived on partition (a hash lookup;
 * allocates only when the table of series grows). */
void dc_status_series_seen(struct dc_status *s, const char *key,
			   int32_t partition);
/* The series of a revoked partition forgotten (run_handover_out): not
 * counted as owned, and their worse-than-frozen history dropped, should
 * the partition come back after another host served it. */
void dc_status_partition_forgotten(struct dc_status *s, int32_t partition);
/* A matured window of series key scored: the adapted and the frozen
 * model's realised MSE (normalised scale). */
void dc_status_realised(struct dc_status *s, const char *key, float adapted,
			float frozen);
/* Where the loop writes the partitions' lags before dc_status_publish
 * (dc_kafka_lags); *ret_max entries.  NULL (0) for s == NULL. */
struct dc_partition_lag *dc_status_lag_buffer(struct dc_status *s,
					      int *ret_max);

struct dc_status_report {
	const struct dc_run_stats *st;
	const char *model; /* base model's name */
	const char *topic; /* input topic */
	int nparts;	   /* entries of the lag buffer filled */
	uint64_t now_usec; /* dc_now_monotonic_usec() */
};
/* Publish the loop's state (about once a second; also the heartbeat that
 * /healthz checks). */
void dc_status_publish(struct dc_status *s, const struct dc_status_report *r);
/* The loop is draining to stop: /readyz answers 503 from now on. */
void dc_status_stopping(struct dc_status *s);

/* ---- any thread */

/* Whether the daemon is alive and ready at now_usec, and if not, why
 * (";"-separated, "" when ready). */
struct dc_health {
	bool alive, ready;
	double loop_age_s; /* since the last publish; -1 before the first */
	char why[256];
};
void dc_status_health(struct dc_status *s, uint64_t now_usec,
		      struct dc_health *ret);

/* The body of GET /status as a JSON text (free() it), NULL without
 * memory. */
char *dc_status_json(struct dc_status *s, uint64_t now_usec);

/* Answer url if it is /status, /healthz or /readyz: true with the HTTP
 * code, a malloc()ed body (*ret_body, *ret_len) and its content type;
 * false for other URLs (and *ret_body NULL without memory). */
bool dc_status_route(struct dc_status *s, const char *url, unsigned *ret_code,
		     char **ret_body, size_t *ret_len, const char **ret_type);

/* The Prometheus exposition of what this module owns: the series
 * gauges, the realised error histograms, readiness, process_*. */
void dc_status_write_metrics(struct dc_status *s, FILE *f);

#endif
