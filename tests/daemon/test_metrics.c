/*
 * Prometheus metrics: served on an ephemeral loopback port, scraped over a
 * plain socket, parsed line by line; values follow what the loop published,
 * histograms are cumulative and consistent, counters stay monotonic while
 * another thread updates them, and "off" / bad addresses behave.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"

static char resp[1 << 16];

/* HTTP/1.0 request to 127.0.0.1:port; returns the status code and leaves
 * the whole response in resp. */
static int http(int port, const char *method, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char req[256];
	int n =
	    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, path);
	cr_assert_eq(write(fd, req, (size_t)n), n);
	size_t len = 0;
	ssize_t r;
	while ((r = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
		len += (size_t)r;
	resp[len] = '\0';
	close(fd);
	int status = 0;
	cr_assert_eq(sscanf(resp, "HTTP/1.%*d %d", &status), 1, "%s", resp);
	return status;
}

/* The value of the sample line "name value" (name may carry labels). */
static double sample(const char *body, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = body; l && *l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (!strncmp(l, name, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	}
	cr_assert_fail("no sample %s", name);
	return 0;
}

static const char *body(void)
{
	const char *b = strstr(resp, "\r\n\r\n");
	cr_assert_not_null(b);
	return b + 4;
}

Test(metrics, scrape_after_publish)
{
	char err[256];
	struct dc_metrics *m = dc_metrics_new();
	cr_assert_not_null(m);
	cr_assert_eq(dc_metrics_listen(m, "127.0.0.1:0", err, sizeof(err)), 0,
		     "%s", err);
	int port = dc_metrics_port(m);
	cr_assert_gt(port, 0);

	struct dc_run_stats st = {0};
	st.messages = 1000;
	st.skipped_replay = 7;
	st.observations = 7000;
	st.deadlettered = 12;
	st.dead_by_reason[DC_REASON_BAD_JSON] = 5;
	st.dead_by_reason[DC_REASON_NON_FINITE] = 4;
	st.forecasts = 6990;
	st.accepted = 30;
	st.rejected = 8;
	st.rollbacks = 2;
	st.manual_rollbacks = 1;
	st.lag = 42;
	st.series = 7;
	st.assigned = 4;
	st.restored = 6;
	st.model_resets = 5;
	dc_metrics_publish(m, &st);
	dc_metrics_observe_latency(m, DC_LAT_E2E, 800);	     /* <= 1 ms */
	dc_metrics_observe_latency(m, DC_LAT_E2E, 1000);     /* le is <= */
	dc_metrics_observe_latency(m, DC_LAT_E2E, 30000);    /* <= 50 ms */
	dc_metrics_observe_latency(m, DC_LAT_E2E, 20000000); /* +Inf */
	/* the legs are histograms of their own */
	dc_metrics_observe_latency(m, DC_LAT_PROCESSING, 4000);
	dc_metrics_observe_latency(m, DC_LAT_DELIVERY, 3000);
	dc_metrics_observe_latency(m, DC_LAT_DELIVERY, 300000);
	dc_metrics_observe_latency(m, DC_LAT_COUNT, 1); /* ignored */

	cr_assert_eq(http(port, "GET", "/metrics"), 200);
	cr_assert(strstr(resp, "Content-Type: text/plain; version=0.0.4"), "%s",
		  resp);
	const char *b = body();
	cr_assert_eq(sample(b, "driftcast_messages_total"), 1000);
	cr_assert_eq(sample(b, "driftcast_messages_skipped_total"), 7);
	cr_assert_eq(sample(b, "driftcast_observations_total"), 7000);
	cr_assert_eq(
	    sample(b, "driftcast_deadletter_total{reason=\"bad_json\"}"), 5);
	cr_assert_eq(
	    sample(b, "driftcast_deadletter_total{reason=\"non_finite\"}"), 4);
	cr_assert_eq(sample(b, "driftcast_deadletter_total{reason=\"empty\"}"),
		     0);
	cr_assert_eq(sample(b, "driftcast_deadletter_total{reason=\"other\"}"),
		     3);
	cr_assert_eq(sample(b, "driftcast_forecasts_total"), 6990);
	cr_assert_eq(
	    sample(b, "driftcast_adaptations_total{result=\"accepted\"}"), 30);
	cr_assert_eq(
	    sample(b, "driftcast_adaptations_total{result=\"rejected\"}"), 8);
	cr_assert_eq(
	    sample(b, "driftcast_rollbacks_total{trigger=\"automatic\"}"), 2);
	cr_assert_eq(
	    sample(b, "driftcast_rollbacks_total{trigger=\"operator\"}"), 1);
	cr_assert_eq(sample(b, "driftcast_consumer_lag_messages"), 42);
	cr_assert_eq(sample(b, "driftcast_series_in_memory"), 7);
	cr_assert_eq(sample(b, "driftcast_assigned_partitions"), 4);
	cr_assert_eq(sample(b, "driftcast_series_restored"), 6);
	cr_assert_eq(sample(b, "driftcast_series_restored_model_changed"), 5);
	double rss = sample(b, "process_resident_memory_bytes");
	cr_assert(rss > 1e5 && rss < 1e10, "rss %g", rss);
	cr_assert_eq(
	    sample(b, "driftcast_e2e_latency_seconds_bucket{le=\"0.001\"}"), 2);
	cr_assert_eq(
	    sample(b, "driftcast_e2e_latency_seconds_bucket{le=\"0.025\"}"), 2);
	cr_assert_eq(
	    sample(b, "driftcast_e2e_latency_seconds_bucket{le=\"0.05\"}"), 3);
	cr_assert_eq(
	    sample(b, "driftcast_e2e_latency_seconds_bucket{le=\"10\"}"), 3);
	cr_assert_eq(
	    sample(b, "driftcast_e2e_latency_seconds_bucket{le=\"+Inf\"}"), 4);
	cr_assert_eq(sample(b, "driftcast_e2e_latency_seconds_count"), 4);
	cr_assert_float_eq(sample(b, "driftcast_e2e_latency_seconds_sum"),
			   20.0318, 1e-9);
	cr_assert_eq(
	    sample(
		b,
		"driftcast_processing_latency_seconds_bucket{le=\"0.0025\"}"),
	    0);
	cr_assert_eq(
	    sample(b,
		   "driftcast_processing_latency_seconds_bucket{le=\"0.005\"}"),
	    1);
	cr_assert_eq(sample(b, "driftcast_processing_latency_seconds_count"),
		     1);
	cr_assert_eq(
	    sample(b,
		   "driftcast_delivery_latency_seconds_bucket{le=\"0.005\"}"),
	    1);
	cr_assert_eq(
	    sample(b, "driftcast_delivery_latency_seconds_bucket{le=\"0.5\"}"),
	    2);
	cr_assert_float_eq(sample(b, "driftcast_delivery_latency_seconds_sum"),
			   0.303, 1e-9);

	/* every sample line belongs to a family declared by # TYPE */
	char *copy = strdup(b), *save = NULL;
	int samples = 0;
	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#') {
			cr_assert(!strncmp(l, "# HELP ", 7) ||
				      !strncmp(l, "# TYPE ", 7),
				  "%s", l);
			continue;
		}
		char name[128];
		cr_assert_eq(sscanf(l, "%127[a-z0-9_]", name), 1, "%s", l);
		size_t n = strlen(name);
		if (n > 7 && !strcmp(name + n - 7, "_bucket"))
			name[n - 7] = '\0';
		else if (n > 4 && !strcmp(name + n - 4, "_sum"))
			name[n - 4] = '\0';
		else if (n > 6 && !strcmp(name + n - 6, "_count"))
			name[n - 6] = '\0';
		char type[160];
		snprintf(type, sizeof(type), "# TYPE %s ", name);
		cr_assert(strstr(b, type), "no TYPE for %s", l);
		samples++;
	}
	free(copy);
	cr_assert_gt(samples, 30);

	cr_assert_eq(http(port, "GET", "/nope"), 404);
	cr_assert_eq(http(port, "GET", "/"), 200);
	cr_assert_eq(http(port, "POST", "/metrics"), 405);
	dc_metrics_free(m);
}

struct hammer {
	struct dc_metrics *m;
	volatile bool stop;
	volatile long rounds;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct dc_run_stats st = {0};
	while (!h->stop) {
		st.messages++;
		st.forecasts++;
		dc_metrics_publish(h->m, &st);
		dc_metrics_observe_latency(h->m, DC_LAT_E2E, 1500);
		h->rounds++;
	}
	return NULL;
}

Test(metrics, counters_stay_monotonic_under_concurrent_updates)
{
	char err[256];
	struct hammer h = {.m = dc_metrics_new()};
	cr_assert_eq(dc_metrics_listen(h.m, "127.0.0.1:0", err, sizeof(err)),
		     0);
	pthread_t t;
	pthread_create(&t, NULL, hammer_main, &h);
	/* on a loaded machine the writer may not have run yet */
	for (int w = 0; w < 5000 && h.rounds == 0; w++)
		usleep(1000);
	cr_assert_gt(h.rounds, 0, "the writer thread never ran");
	double last = -1, last_count = -1;
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(http(dc_metrics_port(h.m), "GET", "/metrics"),
			     200);
		double v = sample(body(), "driftcast_messages_total");
		double c =
		    sample(body(), "driftcast_e2e_latency_seconds_count");
		double inf =
		    sample(body(),
			   "driftcast_e2e_latency_seconds_bucket{le=\"+Inf\"}");
		cr_assert_geq(v, last);
		cr_assert_geq(c, last_count);
		cr_assert_eq(c, inf);
		last = v;
		last_count = c;
	}
	h.stop = true;
	pthread_join(t, NULL);
	cr_assert_gt(last, 0);
	dc_metrics_free(h.m);
}

Test(metrics, off_and_bad_addresses)
{
	char err[256];
	struct dc_metrics *m = dc_metrics_new();
	cr_assert_eq(dc_metrics_listen(m, "off", err, sizeof(err)), 0);
	cr_assert_eq(dc_metrics_port(m), 0);
	cr_assert_lt(dc_metrics_listen(m, "nonsense", err, sizeof(err)), 0);
	cr_assert(strstr(err, "nonsense"), "%s", err);
	cr_assert_lt(dc_metrics_listen(m, "256.1.1.1:80", err, sizeof(err)), 0);
	/* a port in use is an error, not a silent no-op */
	struct dc_metrics *m2 = dc_metrics_new();
	cr_assert_eq(dc_metrics_listen(m, "127.0.0.1:0", err, sizeof(err)), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", dc_metrics_port(m));
	cr_assert_eq(dc_metrics_listen(m2, addr, err, sizeof(err)),
		     -EADDRINUSE);
	cr_assert(strstr(err, "cannot listen"), "%s", err);
	dc_metrics_free(m2);
	dc_metrics_free(m);
	/* NULL metrics: updates are no-ops */
	struct dc_run_stats st = {0};
	dc_metrics_publish(NULL, &st);
	dc_metrics_observe_latency(NULL, DC_LAT_E2E, 1);
	dc_metrics_free(NULL);
}
