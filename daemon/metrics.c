/*
 * Prometheus metrics: text exposition format 0.0.4 over HTTP (libmicrohttpd)
 * on metrics.listen.
 *
 * The main loop writes, the HTTP thread reads, and they share nothing but
 * relaxed atomics: the loop's counters are monotonic and each value is read
 * on its own, so no lock is needed and a scrape never stalls the loop.
 * (A scrape may see counter A from one loop iteration and B from the next;
 * Prometheus tolerates that, and histogram _count is derived from the
 * buckets read in the same pass, so it stays consistent with them.)
 * /status, /healthz, /readyz and the metrics that need more than a
 * counter are daemon/status.c's, which this server hands those URLs to.
 */
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "daemon/parse.h"
#include "daemon/run.h"
#include "daemon/status.h"

/* Upper bounds of the latency buckets, in microseconds (+Inf implied). */
static const uint64_t lat_bounds_us[] = {
    1000,   2500,   5000,    10000,   15000,   20000,	 25000,
    30000,  40000,  50000,   75000,   100000,  150000,	 200000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
#define N_LAT_BUCKETS (sizeof(lat_bounds_us) / sizeof(lat_bounds_us[0]) + 1)

struct dc_metrics {
	/* counters (monotonic) */
	_Atomic uint64_t messages, skipped, observations, deadlettered;
	_Atomic uint64_t dead_by_reason[DC_REASON_COUNT];
	_Atomic uint64_t forecasts, accepted, rejected, drifts, rollbacks,
	    manual_rollbacks, resets, batches, pauses, state_reads_failed;
	/* gauges */
	_Atomic int64_t lag, series, assigned, degraded, restored, paused;
	_Atomic int64_t model_resets;
	_Atomic int64_t dead_undelivered, restoring;
	_Atomic uint64_t phase_us[DC_PHASE_COUNT];
	/* latency histograms (non-cumulative buckets) */
	struct {
		_Atomic uint64_t bucket[N_LAT_BUCKETS];
		_Atomic uint64_t sum_us;
	} lat[DC_LAT_COUNT];

	struct MHD_Daemon *httpd;
	int port;
	struct dc_status *status;
	dc_metrics_page_fn page; /* GET / */
	char *page_arg;
};

#define LOAD(x)	    atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

struct dc_metrics *dc_metrics_new(void)
{
	struct dc_metrics *m = calloc(1, sizeof(struct dc_metrics));
	if (m && !(m->status = dc_status_new())) {
		free(m);
		return NULL;
	}
	return m;
}

struct dc_status *dc_metrics_status(struct dc_metrics *m)
{
	return m ? m->status : NULL;
}

void dc_metrics_free(struct dc_metrics *m)
{
	if (!m)
		return;
	if (m->httpd)
		MHD_stop_daemon(m->httpd);
	dc_status_free(m->status);
	free(m->page_arg);
	free(m);
}

int dc_metrics_set_page(struct dc_metrics *m, dc_metrics_page_fn page,
			const char *arg)
{
	char *a = strdup(arg ? arg : "");
	if (!a)
		return -ENOMEM;
	free(m->page_arg);
	m->page_arg = a;
	m->page = page;
	return 0;
}

void dc_metrics_view(struct dc_metrics *m, struct dc_metrics_view *v)
{
	*v = (struct dc_metrics_view){
	    .lag = LOAD(m->lag),
	    .series = LOAD(m->series),
	    .assigned = LOAD(m->assigned),
	    .degraded = LOAD(m->degraded),
	    .paused = LOAD(m->paused),
	    .messages = LOAD(m->messages),
	    .forecasts = LOAD(m->forecasts),
	    .accepted = LOAD(m->accepted),
	    .rejected = LOAD(m->rejected),
	    .drifts = LOAD(m->drifts),
	    .rollbacks = LOAD(m->rollbacks),
	    .manual_rollbacks = LOAD(m->manual_rollbacks),
	    .resets = LOAD(m->resets),
	    .deadlettered = LOAD(m->deadlettered),
	};
}

int dc_metrics_port(const struct dc_metrics *m)
{
	return m ? m->port : 0;
}

void dc_metrics_publish(struct dc_metrics *m, const struct dc_run_stats *st)
{
	if (!m)
		return;
	STORE(m->messages, st->messages);
	STORE(m->skipped, st->skipped_replay);
	STORE(m->observations, st->observations);
	STORE(m->deadlettered, st->deadlettered);
	for (int i = 0; i < DC_REASON_COUNT && i < 32; i++)
		STORE(m->dead_by_reason[i], st->dead_by_reason[i]);
	STORE(m->forecasts, st->forecasts);
	STORE(m->accepted, st->accepted);
	STORE(m->rejected, st->rejected);
	STORE(m->drifts, st->drifts);
	STORE(m->rollbacks, st->rollbacks);
	STORE(m->manual_rollbacks, st->manual_rollbacks);
	STORE(m->resets, st->resets);
	STORE(m->batches, st->batches);
	STORE(m->pauses, st->pauses);
	STORE(m->paused, st->paused ? 1 : 0);
	STORE(m->state_reads_failed, st->state_reads_failed);
	STORE(m->restoring, st->restoring);
	STORE(m->lag, st->lag);
	STORE(m->series, (int64_t)st->series);
	STORE(m->assigned, st->assigned);
	STORE(m->degraded, st->degraded ? 1 : 0);
	STORE(m->dead_undelivered, (int64_t)st->deadletter_undelivered);
	STORE(m->restored, (int64_t)st->restored);
	STORE(m->model_resets, (int64_t)st->model_resets);
	for (int i = 0; i < DC_PHASE_COUNT; i++)
		STORE(m->phase_us[i], st->phase_us[i]);
}

const char *dc_phase_name(int phase)
{
	static const char *const names[DC_PHASE_COUNT] = {
	    [DC_PHASE_POLL] = "poll",
	    [DC_PHASE_MESSAGE] = "message",
	    [DC_PHASE_FORECAST] = "forecast",
	    [DC_PHASE_DEADLETTER_WAIT] = "deadletter_wait",
	    [DC_PHASE_COMMIT] = "commit",
	    [DC_PHASE_PRODUCE] = "produce",
	    [DC_PHASE_DELIVERY_WAIT] = "delivery_wait",
	    [DC_PHASE_OTHER] = "other",
	};
	return phase >= 0 && phase < DC_PHASE_COUNT ? names[phase] : "?";
}

void dc_metrics_observe_latency(struct dc_metrics *m, enum dc_latency which,
				uint64_t usec)
{
	size_t b = 0;
	if (!m || which >= DC_LAT_COUNT)
		return;
	while (b < N_LAT_BUCKETS - 1 && usec > lat_bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&m->lat[which].bucket[b], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&m->lat[which].sum_us, usec,
				  memory_order_relaxed);
}

/* ---- exposition ---------------------------------------------------------
 */

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
		name, name, (unsigned long long)v);
}

static void gauge(FILE *f, const char *name, const char *help, int64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name,
		name, (long long)v);
}

/* Write the whole exposition to f. */
void dc_metrics_write(struct dc_metrics *m, FILE *f)
{
	fprintf(f,
		"# HELP driftcast_build_info Version of the running "
		"daemon.\n# TYPE driftcast_build_info gauge\n"
		"driftcast_build_info{version=\"%s\"} 1\n",
		DRIFTCAST_VERSION);
	counter(f, "driftcast_messages_total",
		"Input messages consumed (replays of applied offsets "
		"excluded).",
		LOAD(m->messages));
	counter(f, "driftcast_messages_skipped_total",
		"Replayed messages at or below the applied offset, skipped.",
		LOAD(m->skipped));
	counter(f, "driftcast_observations_total",
		"Observations (series, time, value) parsed from messages.",
		LOAD(m->observations));

	fprintf(f, "# HELP driftcast_deadletter_total Messages sent to the "
		   "dead-letter topic, by reason class (docs/INPUT.md).\n"
		   "# TYPE driftcast_deadletter_total counter\n");
	uint64_t classified = 0;
	for (int i = 1; i < DC_REASON_COUNT; i++) {
		uint64_t v = LOAD(m->dead_by_reason[i]);
		classified += v;
		fprintf(f, "driftcast_deadletter_total{reason=\"%s\"} %llu\n",
			dc_reason_name(i), (unsigned long long)v);
	}
	uint64_t all = LOAD(m->deadlettered);
	fprintf(f, "driftcast_deadletter_total{reason=\"other\"} %llu\n",
		(unsigned long long)(all > classified ? all - classified : 0));

	counter(f, "driftcast_forecasts_total", "Forecasts produced.",
		LOAD(m->forecasts));
	fprintf(f,
		"# HELP driftcast_adaptations_total Test-time adaptation "
		"steps, by guard verdict.\n"
		"# TYPE driftcast_adaptations_total counter\n"
		"driftcast_adaptations_total{result=\"accepted\"} %llu\n"
		"driftcast_adaptations_total{result=\"rejected\"} %llu\n",
		(unsigned long long)LOAD(m->accepted),
		(unsigned long long)LOAD(m->rejected));
	fprintf(f,
		"# HELP driftcast_rollbacks_total Series rolled back to an "
		"earlier adapter version.\n"
		"# TYPE driftcast_rollbacks_total counter\n"
		"driftcast_rollbacks_total{trigger=\"automatic\"} %llu\n"
		"driftcast_rollbacks_total{trigger=\"operator\"} %llu\n",
		(unsigned long long)LOAD(m->rollbacks),
		(unsigned long long)LOAD(m->manual_rollbacks));
	counter(f, "driftcast_drift_alarms_total", "Drift detector alarms.",
		LOAD(m->drifts));
	counter(f, "driftcast_resets_total",
		"Adapter resets (soft or hard) by policy.", LOAD(m->resets));
	counter(f, "driftcast_batches_total",
		"SQLite transactions committed by the loop.", LOAD(m->batches));
	fprintf(f, "# HELP driftcast_loop_seconds_total Wall time of the main "
		   "loop by phase (what bounds throughput).\n"
		   "# TYPE driftcast_loop_seconds_total counter\n");
	for (int i = 0; i < DC_PHASE_COUNT; i++)
		fprintf(f, "driftcast_loop_seconds_total{phase=\"%s\"} %.6f\n",
			dc_phase_name(i), (double)LOAD(m->phase_us[i]) / 1e6);

	gauge(f, "driftcast_consumer_lag_messages",
	      "Messages behind the end of the assigned partitions (-1: "
	      "unknown).",
	      LOAD(m->lag));
	gauge(f, "driftcast_series_in_memory",
	      "Series held by the engine (those of partitions revoked since "
	      "included; driftcast_series counts the owned ones).",
	      LOAD(m->series));
	gauge(f, "driftcast_assigned_partitions",
	      "Input partitions assigned to this member.", LOAD(m->assigned));
	counter(f, "driftcast_input_pauses_total",
		"Times the input was paused because more than "
		"kafka.max_in_flight produced messages were unacknowledged.",
		LOAD(m->pauses));
	gauge(f, "driftcast_input_paused",
	      "1 while the input is paused for backpressure.", LOAD(m->paused));
	gauge(f, "driftcast_partitions_held",
	      "Input partitions assigned and held, nothing of them consumed, "
	      "until their state partition is read to its end.",
	      LOAD(m->restoring));
	counter(f, "driftcast_state_reads_failed_total",
		"Reads of a state-topic partition that did not reach its end "
		"(no leader, a timeout, out of memory); the partition is held "
		"and read again.",
		LOAD(m->state_reads_failed));
	gauge(f, "driftcast_storage_degraded",
	      "1 when the database cannot be written.", LOAD(m->degraded));
	gauge(f, "driftcast_deadletter_undelivered",
	      "Dead letters the broker refused or has not acknowledged; "
	      "above 0 their batch is held (input paused, offsets kept).",
	      LOAD(m->dead_undelivered));
	gauge(f, "driftcast_series_restored",
	      "Series restored from the database at start.", LOAD(m->restored));
	gauge(f, "driftcast_series_restored_model_changed",
	      "Of the series restored, those whose versions were made with "
	      "another base model file: they started again from the base "
	      "adapter.",
	      LOAD(m->model_resets));

	static const struct {
		const char *name, *help;
	} lat[DC_LAT_COUNT] = {
	    [DC_LAT_E2E] = {"driftcast_e2e_latency_seconds",
			    "From the input message's Kafka timestamp (its "
			    "produce time) to the broker's acknowledgement of "
			    "its forecast."},
	    [DC_LAT_PROCESSING] = {"driftcast_processing_latency_seconds",
				   "From the input message being consumed to "
				   "its forecast being handed to the producer "
				   "(batching, model, SQLite commit)."},
	    [DC_LAT_DELIVERY] = {"driftcast_delivery_latency_seconds",
				 "From a forecast being handed to the producer "
				 "to the broker's acknowledgement."},
	};
	for (int h = 0; h < DC_LAT_COUNT; h++) {
		const char *name = lat[h].name;
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name,
			lat[h].help, name);
		uint64_t cum = 0;
		for (size_t b = 0; b < N_LAT_BUCKETS; b++) {
			cum += LOAD(m->lat[h].bucket[b]);
			if (b < N_LAT_BUCKETS - 1)
				fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name,
					(double)lat_bounds_us[b] / 1e6,
					(unsigned long long)cum);
			else
				fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n",
					name, (unsigned long long)cum);
		}
		fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name,
			(double)LOAD(m->lat[h].sum_us) / 1e6, name,
			(unsigned long long)cum);
	}
	dc_status_write_metrics(m->status, f);
}

/* The body of /metrics, or of the page (its error in *ret_e), written into
 * memory; NULL on failure. */
static struct MHD_Response *written(struct dc_metrics *m, bool page, int *ret_e)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	if (!f)
		return NULL;
	if (page)
		*ret_e = m->page(m->page_arg, m, f);
	else
		dc_metrics_write(m, f);
	struct MHD_Response *r = NULL;
	if (fclose(f) == 0)
		r = MHD_create_response_from_buffer(len, body,
						    MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(body);
	return r;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c,
			     const char *url, const char *method,
			     const char *version, const char *upload,
			     size_t *upload_size, void **con_cls)
{
	struct dc_metrics *m = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;
	char *body = NULL;
	size_t len = 0;
	const char *type = NULL;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		static const char msg[] = "method not allowed\n";
		r = MHD_create_response_from_buffer(
		    sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	} else if (dc_status_route(m->status, url, &status, &body, &len,
				   &type)) {
		if (!body)
			return MHD_NO;
		r = MHD_create_response_from_buffer(len, body,
						    MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type", type);
	} else if (!strcmp(url, "/metrics") || (!strcmp(url, "/") && m->page)) {
		bool page = url[1] == '\0';
		int e = 0;
		if (!(r = written(m, page, &e)))
			return MHD_NO;
		MHD_add_response_header(r, "Content-Type",
					page ? "text/html; charset=utf-8"
					     : "text/plain; version=0.0.4; "
					       "charset=utf-8");
		if (e < 0)
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	} else {
		static const char msg[] =
		    "driftcast: metrics are at /metrics\n";
		r = MHD_create_response_from_buffer(
		    sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		status = strcmp(url, "/") ? MHD_HTTP_NOT_FOUND : MHD_HTTP_OK;
	}
	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

int dc_listen_split(const char *listen, char *host, size_t host_size,
		    char *port, size_t port_size)
{
	const char *colon = strrchr(listen, ':');
	size_t hlen;
	if (!colon || strlen(colon + 1) >= port_size ||
	    (size_t)(colon - listen) >= host_size)
		return -EINVAL;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
		memcpy(host, listen + 1, hlen - 2);
		host[hlen - 2] = '\0';
	} else {
		memcpy(host, listen, hlen);
		host[hlen] = '\0';
	}
	snprintf(port, port_size, "%s", colon + 1);
	return 0;
}

int dc_metrics_listen(struct dc_metrics *m, const char *listen, char *errbuf,
		      size_t errbuf_size)
{
	char host[CFG_NAME_MAX], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
			*ai = NULL;

	if (!strcmp(listen, "off"))
		return 0;
	if (m->httpd) {
		snprintf(errbuf, errbuf_size, "metrics already listening");
		return -EALREADY;
	}
	if (dc_listen_split(listen, host, sizeof(host), port, sizeof(port)) <
	    0) {
		snprintf(errbuf, errbuf_size, "bad metrics.listen '%s'",
			 listen);
		return -EINVAL;
	}
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e) {
		snprintf(errbuf, errbuf_size, "metrics.listen '%s': %s", listen,
			 gai_strerror(e));
		return -EINVAL;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->httpd = MHD_start_daemon(
	    flags, 0, NULL, NULL, serve, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
	    10u, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!m->httpd) {
		snprintf(errbuf, errbuf_size,
			 "cannot listen on %s for metrics (in use?)", listen);
		return -EADDRINUSE;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
	m->port = info ? info->port : 0;
	return 0;
}
