/*
 * Prometheus metrics (daemon/metrics.c): the loop's counters, gauges and
 * latency histograms, served as text on GET /metrics.
 *
 * The main loop writes relaxed atomics (no locks); an HTTP thread
 * (libmicrohttpd) only reads them and renders the text format.  Names and
 * labels are documented in the output's # HELP lines.  Update functions
 * accept NULL (metrics off).
 */
#ifndef DRIFTCAST_DAEMON_METRICS_H
#define DRIFTCAST_DAEMON_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dc_metrics;
struct dc_run_stats;
struct dc_status;

/* Zeroed metrics, not yet served; NULL on allocation failure.  Free with
 * dc_metrics_free() (accepts NULL), which also stops the HTTP thread. */
struct dc_metrics *dc_metrics_new(void);
void dc_metrics_free(struct dc_metrics *m);
/* Serve on listen ("host:port", "[v6]:port", port 0 = any free port), or do
 * nothing for "off".  0, or a negative errno with the reason in errbuf. */
int dc_metrics_listen(struct dc_metrics *m, const char *listen, char *errbuf,
		      size_t errbuf_size);
/* Split metrics.listen ("host:port", "[v6]:port") into host (brackets
 * removed) and port; -EINVAL when it has no port or a part is too long. */
int dc_listen_split(const char *listen, char *host, size_t host_size,
		    char *port, size_t port_size);
/* The status object the server answers /status, /healthz and /readyz
 * from (daemon/status.h), owned by m; NULL for m == NULL. */
struct dc_status *dc_metrics_status(struct dc_metrics *m);
/* The bound TCP port, 0 when not listening. */
int dc_metrics_port(const struct dc_metrics *m);
/* Copy the loop's counters and gauges (a few dozen relaxed stores). */
void dc_metrics_publish(struct dc_metrics *m, const struct dc_run_stats *st);
/* The latency histograms: end to end, and the two legs the daemon can
 * tell apart (the third, the input's way to the daemon, is the rest). */
enum dc_latency {
	DC_LAT_E2E,	   /* input's Kafka CreateTime -> forecast acked */
	DC_LAT_PROCESSING, /* input consumed -> forecast handed to the
			      producer (batching, model, SQLite commit) */
	DC_LAT_DELIVERY,   /* forecast handed to the producer -> acked */
	DC_LAT_COUNT,
};
/* One latency sample, in microseconds. */
void dc_metrics_observe_latency(struct dc_metrics *m, enum dc_latency which,
				uint64_t usec);
/* The exposition text, as served (for tests and `driftcast` tools). */
void dc_metrics_write(struct dc_metrics *m, FILE *f);

/* GET / (daemon/status_page.c): page(arg, m, f) writes the HTML into f and
 * returns 0 (or a negative errno: 500).  arg is copied.  Call before
 * dc_metrics_listen(). */
typedef int (*dc_metrics_page_fn)(const char *arg, struct dc_metrics *m,
				  FILE *f);
int dc_metrics_set_page(struct dc_metrics *m, dc_metrics_page_fn page,
			const char *arg);
/* The loop's numbers as last published, for the page. */
struct dc_metrics_view {
	int64_t lag, series, assigned, degraded, paused;
	uint64_t messages, forecasts, accepted, rejected, drifts, rollbacks,
	    manual_rollbacks, resets, deadlettered;
};
void dc_metrics_view(struct dc_metrics *m, struct dc_metrics_view *ret);

#endif
