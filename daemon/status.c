/*
 * What a running daemon says about itself on the metrics listener:
 *   GET /status   JSON for `driftcast status` (version, uptime, model,
 *                 partitions and lag, series, rates, adaptations in the
 *                 last minute and since start, dead letters, storage,
 *                 last error, health);
 *   GET /healthz  200 while the loop makes progress (it publishes every
 *                 second; its waits tick the watchdog), 503 once it has
 *                 made none for DC_STATUS_STALL_USEC;
 *   GET /readyz   200 when the loop runs with the database open, the
 *                 model loaded, partitions assigned and storage writable;
 * and the metrics that come from here (owned series, series worse than
 * frozen, realised error histograms, readiness, process_*).
 *
 * The loop publishes a snapshot about once a second under a lock; the
 * HTTP thread reads the snapshot under the same lock.  The lock is held
 * for a copy or for building one small reply, so the loop never waits
 * for more than that.
 */
#include "daemon/status.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config/config.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/notify.h"
#include "daemon/run.h"
#include "daemon/status_private.h"

/* Samples of the loop's counters, one per publish (about 1 s apart), for
 * the last-minute counts and the rates. */
#define WINDOW_USEC  (60u * 1000000u)
#define RING_SAMPLES 128

struct sample {
	uint64_t t_usec;
	uint64_t messages, forecasts, accepted, rejected, rollbacks, dead;
};

/* What the loop published last: read by the HTTP thread under lock. */
struct snapshot {
	bool published, stopping;
	uint64_t heartbeat_usec;
	struct dc_run_stats st;
	char model[128], topic[CFG_NAME_MAX];
	int nparts;
	struct dc_partition_lag parts[DC_STATUS_MAX_PARTITIONS];
	struct status_totals tot;
	struct sample minute; /* counts over the last window_s seconds */
	double window_s;
};

struct dc_status {
	/* the loop's side */
	struct status_watch *watch;
	struct dc_partition_lag lag_buf[DC_STATUS_MAX_PARTITIONS];
	struct sample ring[RING_SAMPLES];
	unsigned ring_next, ring_n;

	pthread_mutex_t lock;
	struct snapshot pub;
	double start_time; /* the process's, epoch seconds */
};

/* The process's start time in epoch seconds: its start in clock ticks
 * after boot (/proc/self/stat field 22) plus the boot time (/proc/stat
 * btime), as Prometheus' own client libraries compute it; now if /proc
 * does not say. */
static double process_start_time(void)
{
	char buf[1024];
	unsigned long long ticks = 0, btime = 0;
	double now = (double)time(NULL);
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return now;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the command name, which may hold spaces and parentheses */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
			 "%*u %*d %*d %*d %*d %*d %*d %llu",
			 &ticks) != 1)
		return now;
	if (!(f = fopen("/proc/stat", "r")))
		return now;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (!btime || hz <= 0)
		return now;
	return (double)btime + (double)ticks / (double)hz;
}

struct dc_status *dc_status_new(void)
{
	struct dc_status *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->watch = status_watch_new();
	if (!s->watch || pthread_mutex_init(&s->lock, NULL)) {
		status_watch_free(s->watch);
		free(s);
		return NULL;
	}
	s->start_time = process_start_time();
	return s;
}

void dc_status_free(struct dc_status *s)
{
	if (!s)
		return;
	status_watch_free(s->watch);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void dc_status_series_seen(struct dc_status *s, const char *key,
			   int32_t partition)
{
	if (s)
		status_watch_seen(s->watch, key, partition);
}

void dc_status_partition_forgotten(struct dc_status *s, int32_t partition)
{
	if (s)
		status_watch_forget_partition(s->watch, partition);
}

void dc_status_realised(struct dc_status *s, const char *key, float adapted,
			float frozen)
{
	if (s)
		status_watch_realised(s->watch, key, adapted, frozen);
}

struct dc_partition_lag *dc_status_lag_buffer(struct dc_status *s, int *ret_max)
{
	*ret_max = s ? DC_STATUS_MAX_PARTITIONS : 0;
	return s ? s->lag_buf : NULL;
}

/* The counts of the last minute: now's sample against the oldest one at
 * most WINDOW_USEC older (or the oldest there is, after a start). */
static void window(struct dc_status *s, const struct sample *now,
		   struct sample *ret, double *ret_seconds)
{
	const struct sample *old = now;
	for (unsigned i = 1; i <= s->ring_n; i++) {
		const struct sample *c =
		    &s->ring[(s->ring_next + RING_SAMPLES - i) % RING_SAMPLES];
		if (now->t_usec - c->t_usec > WINDOW_USEC)
			break;
		old = c;
	}
	ret->t_usec = now->t_usec - old->t_usec;
	ret->messages = now->messages - old->messages;
	ret->forecasts = now->forecasts - old->forecasts;
	ret->accepted = now->accepted - old->accepted;
	ret->rejected = now->rejected - old->rejected;
	ret->rollbacks = now->rollbacks - old->rollbacks;
	ret->dead = now->dead - old->dead;
	*ret_seconds = (double)ret->t_usec / 1e6;
}

/* The counts of st at t; rolled back: automatic rollbacks and resets,
 * the two ways the engine falls back from an adapter. */
static struct sample sample_of(const struct dc_run_stats *st, uint64_t t)
{
	return (struct sample){
	    .t_usec = t,
	    .messages = st->messages,
	    .forecasts = st->forecasts,
	    .accepted = st->accepted,
	    .rejected = st->rejected,
	    .rollbacks = st->rollbacks + st->resets,
	    .dead = st->deadlettered,
	};
}

void dc_status_publish(struct dc_status *s, const struct dc_status_report *r)
{
	if (!s)
		return;
	const struct dc_run_stats *st = r->st;
	struct sample now = sample_of(st, r->now_usec);
	struct sample minute;
	double window_s;
	window(s, &now, &minute, &window_s);
	s->ring[s->ring_next] = now;
	s->ring_next = (s->ring_next + 1) % RING_SAMPLES;
	if (s->ring_n < RING_SAMPLES)
		s->ring_n++;
	int nparts = r->nparts < DC_STATUS_MAX_PARTITIONS
			 ? r->nparts
			 : DC_STATUS_MAX_PARTITIONS;
	struct status_totals tot;
	status_watch_totals(s->watch, s->lag_buf, nparts, &tot);

	pthread_mutex_lock(&s->lock);
	struct snapshot *p = &s->pub;
	p->published = true;
	p->heartbeat_usec = r->now_usec;
	p->st = *st;
	snprintf(p->model, sizeof(p->model), "%s", r->model ? r->model : "");
	snprintf(p->topic, sizeof(p->topic), "%s", r->topic ? r->topic : "");
	p->nparts = nparts;
	memcpy(p->parts, s->lag_buf, (size_t)nparts * sizeof(p->parts[0]));
	p->tot = tot;
	p->minute = minute;
	p->window_s = window_s;
	pthread_mutex_unlock(&s->lock);
}

void dc_status_stopping(struct dc_status *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->pub.stopping = true;
	pthread_mutex_unlock(&s->lock);
}

/* ---- health ------------------------------------------------------------ */

static void why_add(struct dc_health *h, const char *text)
{
	size_t l = strlen(h->why);
	snprintf(h->why + l, sizeof(h->why) - l, "%s%s", l ? "; " : "", text);
}

/* With s->lock held. */
static void health_locked(const struct dc_status *s, uint64_t now_usec,
			  struct dc_health *h)
{
	const struct snapshot *p = &s->pub;
	memset(h, 0, sizeof(*h));
	h->loop_age_s = -1;
	h->alive = true; /* starting counts as alive */
	if (p->published) {
		/* progress: a publish, or a watchdog tick from a wait that
		 * serves the watchdog (a dead letter waiting for the broker
		 * is alive, as systemd sees it) */
		uint64_t last = p->heartbeat_usec;
		uint64_t tick = notify_last_progress_usec();
		if (tick > last && tick <= now_usec)
			last = tick;
		uint64_t age = now_usec > last ? now_usec - last : 0;
		h->loop_age_s = (double)age / 1e6;
		if (age >= DC_STATUS_STALL_USEC) {
			char t[96];
			snprintf(t, sizeof(t),
				 "the main loop has made no progress for "
				 "%.0f s",
				 h->loop_age_s);
			why_add(h, t);
			h->alive = false;
		}
	}
	if (!p->published)
		why_add(h, "starting");
	if (p->stopping)
		why_add(h, "stopping");
	if (p->published && p->st.degraded)
		why_add(h, "storage degraded: the database cannot be written");
	if (p->published && p->nparts == 0)
		why_add(h, "no input partitions assigned");
	if (p->published && p->st.restoring > 0) {
		char t[96];
		snprintf(t, sizeof(t),
			 "%d input partitions held: their state partition is "
			 "not read yet",
			 p->st.restoring);
		why_add(h, t);
	}
	h->ready = !h->why[0];
}

void dc_status_health(struct dc_status *s, uint64_t now_usec,
		      struct dc_health *ret)
{
	if (!s) {
		memset(ret, 0, sizeof(*ret));
		return;
	}
	pthread_mutex_lock(&s->lock);
	health_locked(s, now_usec, ret);
	pthread_mutex_unlock(&s->lock);
}

/* ---- GET /status ------------------------------------------------------- */

/* A JSON string of text that may not be valid UTF-8 (a log line quoting
 * input): bytes outside ASCII become '?' if jansson refuses it. */
static json_t *json_text(const char *text)
{
	json_t *j = json_string(text);
	if (j)
		return j;
	char safe[512];
	size_t i = 0;
	for (; text[i] && i < sizeof(safe) - 1; i++)
		safe[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
	safe[i] = '\0';
	return json_string(safe);
}

static json_t *iso_time(double epoch_s)
{
	char buf[64];
	time_t t = (time_t)epoch_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *counts(const struct sample *c)
{
	return json_pack(
	    "{sIsIsIsIsIsI}", "messages", (json_int_t)c->messages, "forecasts",
	    (json_int_t)c->forecasts, "accepted", (json_int_t)c->accepted,
	    "rejected", (json_int_t)c->rejected, "rolled_back",
	    (json_int_t)c->rollbacks, "dead_letters", (json_int_t)c->dead);
}

static double rate(uint64_t n, double seconds)
{
	return seconds > 0 ? (double)n / seconds : 0.0;
}

/* With s->lock held. */
static json_t *status_locked(const struct dc_status *s, uint64_t now_usec)
{
	const struct snapshot *p = &s->pub;
	const struct dc_run_stats *st = &p->st;
	struct dc_health h;
	health_locked(s, now_usec, &h);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	double now_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;

	json_t *parts = json_array();
	for (int i = 0; i < p->nparts; i++)
		json_array_append_new(
		    parts,
		    json_pack("{sisI}", "partition", (int)p->parts[i].partition,
			      "lag", (json_int_t)p->parts[i].lag));
	json_t *why = json_array();
	for (char *w = h.why; *w;) {
		char *end = strstr(w, "; ");
		size_t n = end ? (size_t)(end - w) : strlen(w);
		json_array_append_new(why, json_stringn(w, n));
		w += n + (end ? 2 : 0);
	}
	struct sample total = sample_of(st, 0);
	json_t *since = counts(&total);
	json_object_set_new(since, "operator_rollbacks",
			    json_integer((json_int_t)st->manual_rollbacks));
	json_object_set_new(since, "drift_alarms",
			    json_integer((json_int_t)st->drifts));

	char err[512];
	int64_t err_ms = log_last_error(err, sizeof(err));
	json_t *last_error =
	    err_ms ? json_pack("{soso}", "time", iso_time((double)err_ms / 1e3),
			       "message", json_text(err))
		   : json_null();

	json_t *j = json_object();
	json_object_set_new(j, "version", json_string(DRIFTCAST_VERSION));
	json_object_set_new(j, "pid", json_integer(getpid()));
	json_object_set_new(j, "start_time", iso_time(s->start_time));
	json_object_set_new(j, "uptime_seconds",
			    json_real(fmax(0, now_s - s->start_time)));
	json_object_set_new(j, "healthy", json_boolean(h.alive));
	json_object_set_new(j, "ready", json_boolean(h.ready));
	json_object_set_new(j, "not_ready", why);
	json_object_set_new(j, "loop_seconds_since_progress",
			    h.loop_age_s < 0 ? json_null()
					     : json_real(h.loop_age_s));
	json_object_set_new(j, "model", json_text(p->model));
	json_object_set_new(j, "input_topic", json_text(p->topic));
	json_object_set_new(j, "partitions", parts);
	json_object_set_new(j, "lag", json_integer(st->lag));
	json_object_set_new(j, "series", json_integer(p->tot.owned));
	json_object_set_new(j, "series_in_memory",
			    json_integer((json_int_t)st->series));
	json_object_set_new(j, "series_scored", json_integer(p->tot.scored));
	json_object_set_new(j, "series_worse_than_frozen",
			    json_integer(p->tot.worse));
	json_object_set_new(j, "window_seconds", json_real(p->window_s));
	json_object_set_new(j, "messages_per_second",
			    json_real(rate(p->minute.messages, p->window_s)));
	json_object_set_new(j, "forecasts_per_second",
			    json_real(rate(p->minute.forecasts, p->window_s)));
	json_object_set_new(j, "last_minute", counts(&p->minute));
	json_object_set_new(j, "since_start", since);
	json_object_set_new(j, "storage",
			    json_string(st->degraded ? "degraded" : "ok"));
	json_object_set_new(j, "input_paused", json_boolean(st->paused));
	json_object_set_new(j, "last_error", last_error);
	return j;
}

char *dc_status_json(struct dc_status *s, uint64_t now_usec)
{
	if (!s)
		return NULL;
	pthread_mutex_lock(&s->lock);
	json_t *j = status_locked(s, now_usec);
	pthread_mutex_unlock(&s->lock);
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
					   JSON_REAL_PRECISION(6))
		       : NULL;
	json_decref(j);
	if (!text)
		return NULL;
	/* a final newline, for curl and shells */
	size_t n = strlen(text);
	char *out = realloc(text, n + 2);
	if (!out) {
		free(text);
		return NULL;
	}
	memcpy(out + n, "\n", 2);
	return out;
}

bool dc_status_route(struct dc_status *s, const char *url, unsigned *ret_code,
		     char **ret_body, size_t *ret_len, const char **ret_type)
{
	bool healthz = !strcmp(url, "/healthz"),
	     readyz = !strcmp(url, "/readyz");
	*ret_body = NULL;
	if (!s || (!healthz && !readyz && strcmp(url, "/status")))
		return false;
	uint64_t now = dc_now_monotonic_usec();
	if (!healthz && !readyz) {
		*ret_body = dc_status_json(s, now);
		*ret_code = 200;
		*ret_type = "application/json";
	} else {
		struct dc_health h;
		dc_status_health(s, now, &h);
		bool ok = healthz ? h.alive : h.ready;
		*ret_code = ok ? 200 : 503;
		*ret_type = "text/plain; charset=utf-8";
		if (asprintf(ret_body, "%s%s\n",
			     ok ? "ok" : "not ok: ", ok ? "" : h.why) < 0)
			*ret_body = NULL;
	}
	*ret_len = *ret_body ? strlen(*ret_body) : 0;
	return true;
}

/* ---- metrics ----------------------------------------------------------- */

static long resident_bytes(void)
{
	long pages_total = 0, pages_rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2)
		pages_rss = -1;
	fclose(f);
	return pages_rss < 0 ? -1 : pages_rss * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* not the directory's own descriptor */
}

static void metric(FILE *f, const char *type, const char *name,
		   const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name,
		type, name, v);
}

void dc_status_write_metrics(struct dc_status *s, FILE *f)
{
	struct dc_health h;
	struct status_totals tot;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	health_locked(s, dc_now_monotonic_usec(), &h);
	tot = s->pub.tot;
	pthread_mutex_unlock(&s->lock);

	metric(f, "gauge", "driftcast_series",
	       "Series whose input arrives on a partition this member owns "
	       "now.",
	       (double)tot.owned);
	metric(f, "gauge", "driftcast_series_worse_than_frozen_ratio",
	       "Fraction of the owned series with a realised error whose "
	       "adapted model currently does worse than the frozen one "
	       "(EWMA over about 20 matured windows); 0 when none is scored.",
	       tot.scored ? (double)tot.worse / (double)tot.scored : 0.0);
	fprintf(f, "# HELP driftcast_realised_error Mean squared error of a "
		   "matured forecast window, on the series' normalised scale, "
		   "by model: adapted (published) and frozen (the base model "
		   "shadowing it).\n"
		   "# TYPE driftcast_realised_error histogram\n");
	static const char *const model[2] = {"adapted", "frozen"};
	for (int m = 0; m < 2; m++) {
		uint64_t cum = 0;
		for (int b = 0; b < STATUS_ERR_BUCKETS; b++) {
			cum += tot.bucket[m][b];
			if (b < STATUS_ERR_BUCKETS - 1)
				fprintf(f,
					"driftcast_realised_error_bucket{model="
					"\"%s\",le=\"%g\"} %llu\n",
					model[m], status_err_bounds[b],
					(unsigned long long)cum);
			else
				fprintf(f,
					"driftcast_realised_error_bucket{model="
					"\"%s\",le=\"+Inf\"} %llu\n",
					model[m], (unsigned long long)cum);
		}
		fprintf(f,
			"driftcast_realised_error_sum{model=\"%s\"} %.9g\n"
			"driftcast_realised_error_count{model=\"%s\"} %llu\n",
			model[m], tot.sum[m], model[m],
			(unsigned long long)cum);
	}
	metric(f, "gauge", "driftcast_healthy",
	       "1 while the main loop makes progress (GET /healthz).", h.alive);
	metric(f, "gauge", "driftcast_ready",
	       "1 when ready: loop running, database open, model loaded, "
	       "partitions assigned, storage writable (GET /readyz).",
	       h.ready);
	metric(f, "gauge", "driftcast_loop_seconds_since_progress",
	       "Seconds since the main loop last made progress (it publishes "
	       "every second while it runs); -1 before it started.",
	       h.loop_age_s);

	struct rusage ru;
	double cpu = -1;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		      ((double)ru.ru_utime.tv_usec +
		       (double)ru.ru_stime.tv_usec) /
			  1e6;
	struct rlimit rl;
	double max_fds = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max_fds = (double)rl.rlim_cur;
	metric(f, "counter", "process_cpu_seconds_total",
	       "Total user and system CPU time spent in seconds.", cpu);
	metric(f, "gauge", "process_resident_memory_bytes",
	       "Resident memory size in bytes.", (double)resident_bytes());
	metric(f, "gauge", "process_start_time_seconds",
	       "Start time of the process since unix epoch in seconds.",
	       s->start_time);
	metric(f, "gauge", "process_open_fds",
	       "Number of open file descriptors.", (double)open_fds());
	metric(f, "gauge", "process_max_fds",
	       "Maximum number of open file descriptors.", max_fds);
}
