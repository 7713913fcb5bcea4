/*
 * bench-daemon: the daemon loop (dc_run, the code of `driftcast run`)
 * end to end through librdkafka's mock cluster, in one process.
 *
 *   throughput  N series; L warm-up steps each (not timed), then S timed
 *               steps each, every one of which yields a forecast: messages
 *               per second of the timed phase, with TTT on or off.
 *   ingest      N series that never fill a lookback (fewer than L steps),
 *               so no forecast is computed: parse + engine append + SQLite
 *               batches, messages per second, in two phases that cost very
 *               differently:
 *                 first sight  step 0 of every series: each message is a
 *                              new series (engine entry, and a series row,
 *                              version 0 and an audit row in SQLite);
 *                 steady state steps 1..S-1 of the known series, after a
 *                              restart of dc_run on the same database and
 *                              group (the series are restored from SQLite).
 *               Each phase's messages are produced before its dc_run
 *               starts, so the daemon drains a backlog and the producer
 *               does not compete for the cores; the timed window runs from
 *               the first message consumed (the mock's ~3 s group join is
 *               not ingest) to the last, plus the CPU time of the commit
 *               that makes the last one durable (the loop idles up to
 *               100 ms in poll before that commit; idle is not ingest).
 *   latency     messages produced at a fixed rate by a second thread;
 *               end-to-end latency from the message's CreateTime to its
 *               forecast being delivered, p50/p99 from the daemon's own
 *               histogram (driftcast_e2e_latency_seconds), for the whole
 *               run and for every second of it.
 *               The mock broker answers a Fetch by walking the partition's
 *               list of message sets from the oldest (librdkafka 2.0.2
 *               rdkafka_mock.c keeps no offset index), one set per
 *               partition per Fetch, and a paced producer appends ~1/linger
 *               small sets per partition per second: with many partitions
 *               the mock thread's Fetch cost grows with the run's length
 *               until it saturates and latency climbs by the second (64
 *               partitions: seconds after ~15 s).  A real broker indexes
 *               offsets; use --partitions 4 to measure the daemon rather
 *               than that walk.
 *   echo        the latency mode's load and mock, with a plain consumer +
 *               producer (the daemon's client settings) that answers each
 *               message at once with a forecast-sized message: the Kafka
 *               path's own latency on this machine, exact quantiles per
 *               second and overall; the latency mode minus this is what
 *               driftcast adds.
 * Every mode also prints the resident set size at the end (the whole
 * process, so including the in-process mock broker and its messages).
 *
 * Wall-clock rates on a shared machine are noisy, so next to each one the
 * bench prints the CPU time of the thread that runs dc_run (the daemon
 * loop: parse, engine, SQLite, librdkafka's consumer-side API calls;
 * CLOCK_THREAD_CPUTIME_ID read in the tick callback, which runs on that
 * thread) and messages per daemon-CPU-second, plus the CPU time of the
 * whole process over the same window (librdkafka's threads and the mock
 * broker included).  The CLOCK_MONOTONIC window of each timed phase is
 * printed too, for `perf record -k CLOCK_MONOTONIC` + `perf report
 * --time START,END`.
 *
 * The model is a fresh random GRU (d=64 unless --width), L=96, H=96: the
 * cost of a forecast does not depend on the weights.  Everything runs on
 * this machine's cores: the daemon thread, librdkafka's threads, the mock
 * broker thread and (latency mode) the producer thread share them.
 *
 * Usage: bench-daemon [--mode throughput|ingest|latency|echo]
 *                     [--series N] [--steps S] [--ttt on|off]
 *                     [--rate MSG_PER_S] [--seconds T] [--backbone B]
 *                     [--batch-ms MS] (storage.batch_ms, default 200)
 *                     [--set KEY=VALUE ...] (any daemon setting, e.g.
 *                      storage.forecast_sample=0)
 *                     [--partitions N] (of the input topic, default 64)
 *                     [--linger-ms MS] (the load producer's, default 10)
 * The load producer compresses (lz4), so the warm-up backlog fits the
 * mock's 5 MiB per partition with fewer partitions.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "forecast/forecast.h"

#define L  96
#define H  96
#define T0 1700000000

/* A point of a timed window, taken on the daemon thread (in the tick). */
struct mark {
	uint64_t wall_us;  /* CLOCK_MONOTONIC */
	uint64_t cpu_ns;   /* the daemon thread's CPU time */
	uint64_t proc_ns;  /* the whole process's CPU time */
	uint64_t mock_ns;  /* ... of which the mock broker's thread */
	uint64_t wait_ns;  /* the daemon thread's time runnable, not running */
	uint64_t consumed; /* messages consumed (applied or skipped) */
	uint64_t states, states_cpu_ns; /* the state topic's, so far */
};

/* One timed ingest phase: from the first message consumed (start) to the
 * target (last), and on to the commit that makes it durable (end). */
struct window {
	uint64_t target;
	struct mark start, last, end;
	bool started, reached;
	uint64_t prev_batches;
	long rss_kb; /* at the end, inside dc_run (the engine is live) */
	struct dc_run_stats st;
};

struct bench {
	const char *mode;
	int series, steps, width, batch_ms, partitions, linger_ms;
	const char *extra[16]; /* --set K=V, after the bench's own */
	int nextra;
	bool ttt;
	double rate, seconds;
	const char *backbone;
	char dir[64];
	char bootstraps[256];
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *owner;
	rd_kafka_t *producer;
	uint64_t target; /* messages the daemon must have consumed */
	uint64_t t_mark; /* usec when the timed phase started */
	uint64_t m_mark; /* messages consumed when it started */
	uint64_t t_done;
	uint64_t m_done;
	struct mark cpu_mark, cpu_done; /* throughput: the timed phase */
	struct window win;		/* ingest: the running phase */
	int phase;			/* 0 warm-up, 1 timed */
	uint64_t warm_msgs;
	volatile int produced_all;
	struct dc_run_stats last;
	int metrics_port;
	char metrics[65536];	/* scraped when done */
	uint64_t t_sec;		/* latency: last per-second scrape */
	double prev_cnt[3][64]; /* ... its histograms' counts */
	double steady[3][64];	/* bucket counts after the first 3 s */
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t n = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &n) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* GET /metrics from the daemon's own endpoint (HTTP/1.0, one read loop). */
static void scrape(struct bench *b)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)b->metrics_port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t off = 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->metrics[0] = '\0';
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
		ssize_t r;
		while (off + 1 < sizeof(b->metrics) &&
		       (r = read(fd, b->metrics + off,
				 sizeof(b->metrics) - 1 - off)) > 0)
			off += (size_t)r;
	}
	b->metrics[off] = '\0';
	close(fd);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time (ns) of this process's threads named rdk:mock: the in-process
 * broker, which a deployment does not run (utime + stime of
 * /proc/self/task/T/stat, in clock ticks). */
static uint64_t mock_thread_ns(void)
{
	uint64_t sum = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long hz = sysconf(_SC_CLK_TCK);
	while (d && (e = readdir(d))) {
		char path[300], line[1024];
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat",
			 e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(line, 1, sizeof(line) - 1, f);
		fclose(f);
		line[n] = '\0';
		char *open = strchr(line, '('), *close = strrchr(line, ')');
		unsigned long long ut = 0, st = 0;
		if (!open || !close || strncmp(open + 1, "rdk:mock", 8))
			continue;
		/* after ") ": state, then fields 4..13, utime 14, stime 15 */
		if (sscanf(close + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			   "%llu",
			   &ut, &st) == 2 &&
		    hz > 0)
			sum += (ut + st) * (1000000000ull / (uint64_t)hz);
	}
	if (d)
		closedir(d);
	return sum;
}

/* Called on the thread that runs dc_run (tick callbacks run there). */
static void mark_now(struct mark *m, uint64_t consumed)
{
	m->wall_us = dc_now_monotonic_usec();
	m->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	m->proc_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	m->mock_ns = mock_thread_ns();
	m->consumed = consumed;
	/* schedstat: on-CPU ns, ns waiting on a run queue, timeslices */
	unsigned long long run = 0, wait = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	if (f && fscanf(f, "%llu %llu", &run, &wait) == 2)
		m->wait_ns = wait;
	if (f)
		fclose(f);
}

static double now_s(void)
{
	return (double)dc_now_monotonic_usec() / 1e6;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void produce_range(struct bench *b, int from, int to)
{
	char key[32], payload[128];
	for (int t = from; t < to; t++) {
		for (int s = 0; s < b->series; s++) {
			int kl = snprintf(key, sizeof(key), "m%d", s);
			double v = 10.0 + 3.0 * sin((double)(t + s) * 0.2618) +
				   0.1 * (double)(s % 7);
			int n = snprintf(payload, sizeof(payload),
					 "{\"series\":\"m%d\",\"ts\":%d,"
					 "\"value\":%.4f}",
					 s, T0 + t * 3600, v);
			while (rd_kafka_producev(
				   b->producer,
				   RD_KAFKA_V_TOPIC("measurements"),
				   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				   RD_KAFKA_V_KEY(key, (size_t)kl),
				   RD_KAFKA_V_VALUE(payload, (size_t)n),
				   RD_KAFKA_V_END) ==
			       RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(b->producer, 5);
		}
	}
	rd_kafka_flush(b->producer, 60000);
}

/* The latency mode's producer: `rate` messages per second, round-robin
 * over the series, each series one step further per round. */
static void *paced_producer(void *arg)
{
	struct bench *b = arg;
	char key[32], payload[128];
	while (b->phase == 0) /* the warm-up backlog is consumed first */
		usleep(1000);
	double start = now_s();
	uint64_t sent = 0;
	int t = L, s = 0;
	while (now_s() - start < b->seconds) {
		double due = start + (double)sent / b->rate;
		double wait = due - now_s();
		if (wait > 0)
			usleep((useconds_t)(wait * 1e6));
		int kl = snprintf(key, sizeof(key), "m%d", s);
		int n = snprintf(
		    payload, sizeof(payload),
		    "{\"series\":\"m%d\",\"ts\":%d,\"value\":%.4f}", s,
		    T0 + t * 3600, 10.0 + 3.0 * sin((double)(t + s) * 0.2618));
		rd_kafka_producev(b->producer, RD_KAFKA_V_TOPIC("measurements"),
				  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				  RD_KAFKA_V_KEY(key, (size_t)kl),
				  RD_KAFKA_V_VALUE(payload, (size_t)n),
				  RD_KAFKA_V_END);
		rd_kafka_poll(b->producer, 0);
		sent++;
		if (++s == b->series) {
			s = 0;
			t++;
		}
	}
	rd_kafka_flush(b->producer, 60000);
	b->target += sent;
	b->produced_all = 1;
	return NULL;
}

/* The buckets of one of the daemon's latency histograms (metric name, e.g.
 * driftcast_e2e_latency_seconds) in its metrics text: cumulative counts,
 * upper bounds in seconds; returns how many. */
static int hist_parse(const char *text, const char *name, double *le,
		      double *cnt, int max)
{
	char key[128];
	int n = 0;
	const char *p = text;
	snprintf(key, sizeof(key), "%s_bucket{le=\"", name);
	while ((p = strstr(p, key)) && n < max) {
		p += strlen(key);
		le[n] = strncmp(p, "+Inf", 4) ? atof(p) : (double)INFINITY;
		const char *sp = strchr(p, ' ');
		if (!sp)
			break;
		cnt[n++] = atof(sp + 1);
	}
	return n;
}

/* The upper bound of the bucket holding the q-quantile; NaN when empty. */
static double bucket_quantile(const double *le, const double *cnt, int n,
			      double q)
{
	if (n == 0 || cnt[n - 1] <= 0)
		return NAN;
	for (int i = 0; i < n; i++)
		if (cnt[i] >= q * cnt[n - 1])
			return le[i];
	return (double)INFINITY;
}

/* q-quantile (seconds) of one latency histogram in the metrics text. */
static double hist_quantile(const char *text, const char *name, double q)
{
	double le[64], cnt[64];
	return bucket_quantile(le, cnt, hist_parse(text, name, le, cnt, 64), q);
}

static const char *const lat_names[3] = {
    "driftcast_e2e_latency_seconds",
    "driftcast_processing_latency_seconds",
    "driftcast_delivery_latency_seconds",
};

/* Latency mode: once a second, the quantiles of the forecasts delivered in
 * that second (from the difference of two scrapes), end to end and the
 * daemon's two legs, so a run shows whether latency holds or drifts (e.g.
 * the mock's fetch slowing down) and where a spike comes from. */
static void per_second(struct bench *b, uint64_t consumed)
{
	uint64_t now = dc_now_monotonic_usec();
	if (now - b->t_sec < 1000000)
		return;
	b->t_sec = now;
	scrape(b);
	printf("  t=%5.1f s consumed %" PRIu64, (double)(now - b->t_mark) / 1e6,
	       consumed);
	for (int h = 0; h < 3; h++) {
		double le[64], cnt[64], d[64] = {0};
		int n = hist_parse(b->metrics, lat_names[h], le, cnt, 64);
		for (int i = 0; i < n; i++) {
			d[i] = cnt[i] - b->prev_cnt[h][i];
			b->prev_cnt[h][i] = cnt[i];
			if (now - b->t_mark >= 3000000)
				b->steady[h][i] += d[i];
		}
		if (h == 0)
			printf(" acked %.0f; p50/p99 <=", n ? d[n - 1] : 0.0);
		printf(" %s %g/%g s",
		       h == 0	? "e2e"
		       : h == 1 ? "daemon"
				: "delivery",
		       bucket_quantile(le, d, n, 0.50),
		       bucket_quantile(le, d, n, 0.99));
	}
	putchar('\n');
}

static bool tick(void *user, const struct dc_run_stats *st)
{
	struct bench *b = user;
	uint64_t consumed = st->messages + st->skipped_replay;
	b->last = *st;
	if (b->phase == 1 && !strcmp(b->mode, "latency"))
		per_second(b, consumed);
	if (b->phase == 0 && consumed >= b->warm_msgs) {
		b->phase = 1;
		b->t_mark = dc_now_monotonic_usec();
		b->m_mark = consumed;
		mark_now(&b->cpu_mark, consumed);
		b->cpu_mark.states = st->states_published;
		b->cpu_mark.states_cpu_ns = st->states_cpu_ns;
	}
	if (b->produced_all && consumed >= b->target) {
		/* the last batch's forecasts are delivered at the next flush;
		 * scrape after one more tick */
		if (b->t_done == 0) {
			b->t_done = dc_now_monotonic_usec();
			b->m_done = consumed;
			mark_now(&b->cpu_done, consumed);
			b->cpu_done.states = st->states_published;
			b->cpu_done.states_cpu_ns = st->states_cpu_ns;
			return false;
		}
		scrape(b);
		return true;
	}
	return false;
}

/* The ingest phases' tick: marks the window, stops once the target's
 * batch is durable (st->batches moved on; in the very iteration that
 * consumed the last message, or a later one). */
static bool tick_ingest(void *user, const struct dc_run_stats *st)
{
	struct bench *b = user;
	struct window *w = &b->win;
	uint64_t consumed = st->messages + st->skipped_replay;
	bool committed = st->batches > w->prev_batches;

	w->prev_batches = st->batches;
	if (!w->started && consumed > 0) {
		mark_now(&w->start, consumed);
		w->started = true;
	}
	if (!w->reached) {
		if (consumed < w->target)
			return false;
		mark_now(&w->last, consumed);
		w->reached = true;
	}
	if (!committed && !st->degraded)
		return false;
	mark_now(&w->end, consumed);
	w->rss_kb = rss_kb();
	w->st = *st;
	return true;
}

static void *warm_then_timed(void *arg)
{
	struct bench *b = arg;
	int warm = strcmp(b->mode, "throughput") ? 0 : L - 1;
	if (warm)
		produce_range(b, 0, warm);
	/* the timed phase starts producing only once the warm-up is in */
	while (b->phase == 0 && warm)
		usleep(1000);
	produce_range(b, warm, warm + b->steps);
	b->produced_all = 1;
	return NULL;
}

static int setup(struct bench *b, char *model_path, size_t n)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
	b->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!b->owner || !(b->mc = rd_kafka_mock_cluster_new(b->owner, 1)))
		return -EIO;
	snprintf(b->bootstraps, sizeof(b->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(b->mc));
	/* 64 partitions by default: the mock keeps 5 MiB per partition */
	rd_kafka_mock_topic_create(b->mc, "measurements", b->partitions, 1);
	rd_kafka_mock_topic_create(b->mc, "forecasts", 64, 1);
	rd_kafka_mock_topic_create(b->mc, "deadletter", 1, 1);
	/* the state topic, co-partitioned with the input */
	rd_kafka_mock_topic_create(b->mc, "driftcast-state", b->partitions, 1);

	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", b->bootstraps, err,
			  sizeof(err));
	char linger[16];
	snprintf(linger, sizeof(linger), "%d", b->linger_ms);
	rd_kafka_conf_set(conf, "linger.ms", linger, err, sizeof(err));
	rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err,
			  sizeof(err));
	/* ~4x less of the mock's 5 MiB per partition per message */
	rd_kafka_conf_set(conf, "compression.codec", "lz4", err, sizeof(err));
	b->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!b->producer)
		return -EIO;

	struct fc_config mc;
	struct fc_model *m = NULL;
	fc_config_default(&mc);
	mc.lookback = L;
	mc.horizon = H;
	mc.d_model = b->width;
	if (fc_backbone_parse(b->backbone, &mc.backbone) < 0)
		return -EINVAL;
	if (mc.backbone == FC_BACKBONE_GRU)
		mc.n_layers = 1;
	if (fc_model_new(&mc, 1, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "model: %s\n", err);
		return -EINVAL;
	}
	snprintf(model_path, n, "%s/model.dcm", b->dir);
	int r = fc_model_save(m, model_path, err, sizeof(err));
	fc_model_free(m);
	return r;
}

static int remove_one(const char *path, const struct stat *sb, int flag,
		      struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* The bench's scratch directory (database, model): gone at the end. */
static void remove_dir(const char *dir)
{
	nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* One dc_run (the code of `driftcast run`) against the mock cluster, with
 * the bench's database and model; returns its exit code. */
/* ---- echo: the Kafka path's own latency, without driftcast ----------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Latencies (ms) of the echo's deliveries, each with its second. */
struct echo {
	double *ms;
	int *sec;
	size_t n, cap;
	double t0;
};

static void echo_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m,
			   void *opaque)
{
	struct echo *e = opaque;
	(void)rk;
	if (m->err || !m->_private || e->n == e->cap)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
	e->ms[e->n] = now_ms - (double)(intptr_t)m->_private;
	e->sec[e->n] = (int)(now_s() - e->t0);
	e->n++;
}

static void echo_report(const char *what, double *v, size_t n)
{
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%s: %zu, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
	       what, n, v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1]);
}

/*
 * The echo mode: what the Kafka path alone costs on this machine.  The same
 * load producer, mock cluster and topics as the latency mode, and in place
 * of the daemon a consumer and an idempotent producer with the daemon's own
 * client settings (group member, fetch.wait.max.ms 20; lz4, linger.ms 5)
 * that answers every message at once with a forecast-sized message (96
 * numbers of JSON).  Latency from the input's CreateTime to the broker's
 * acknowledgement of the answer, exact quantiles per second and overall.
 * driftcast's end-to-end latency minus this is what the daemon adds.
 */
static int bench_echo(struct bench *b)
{
	char err[512], group_err[512];
	struct echo e = {0};
	e.cap = (size_t)(b->rate * b->seconds * 1.2) + 1000;
	e.ms = malloc(e.cap * sizeof(*e.ms));
	e.sec = malloc(e.cap * sizeof(*e.sec));
	rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
	const char *cset[][2] = {
	    {"bootstrap.servers", b->bootstraps},
	    {"group.id", "echo"},
	    {"partition.assignment.strategy", "cooperative-sticky"},
	    {"enable.auto.commit", "false"},
	    {"session.timeout.ms", "6000"},
	    {"fetch.wait.max.ms", "20"},
	    {"socket.nagle.disable", "true"},
	    {"auto.offset.reset", "latest"},
	};
	const char *pset[][2] = {
	    {"bootstrap.servers", b->bootstraps},
	    {"enable.idempotence", "true"},
	    {"linger.ms", "5"},
	    {"compression.codec", "lz4"},
	    {"socket.nagle.disable", "true"},
	};
	for (size_t i = 0; i < sizeof(cset) / sizeof(cset[0]); i++)
		rd_kafka_conf_set(cc, cset[i][0], cset[i][1], err, sizeof(err));
	for (size_t i = 0; i < sizeof(pset) / sizeof(pset[0]); i++)
		rd_kafka_conf_set(pc, pset[i][0], pset[i][1], err, sizeof(err));
	/* --set librdkafka[.consumer|.producer].NAME=VALUE, as the daemon
	 * takes them, so both sides of a comparison run the same tuning */
	for (int i = 0; i < b->nextra; i++) {
		const char *x = b->extra[i], *pre = "librdkafka.";
		const char *eq = strchr(x, '=');
		char name[128];
		if (strncmp(x, pre, strlen(pre)) || !eq)
			continue;
		x += strlen(pre);
		bool to_c = true, to_p = true;
		if (!strncmp(x, "consumer.", 9))
			x += 9, to_p = false;
		else if (!strncmp(x, "producer.", 9))
			x += 9, to_c = false;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - x), x);
		if ((to_c &&
		     rd_kafka_conf_set(cc, name, eq + 1, err, sizeof(err)) !=
			 RD_KAFKA_CONF_OK) ||
		    (to_p &&
		     rd_kafka_conf_set(pc, name, eq + 1, err, sizeof(err)) !=
			 RD_KAFKA_CONF_OK))
			fprintf(stderr, "bench-daemon: echo: %s\n", err);
	}
	rd_kafka_conf_set_opaque(pc, &e);
	rd_kafka_conf_set_dr_msg_cb(pc, echo_delivered);
	rd_kafka_t *c =
	    rd_kafka_new(RD_KAFKA_CONSUMER, cc, group_err, sizeof(group_err));
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
	if (!c || !p || !e.ms || !e.sec) {
		fprintf(stderr, "bench-daemon: echo clients: %s %s\n",
			group_err, err);
		return 1;
	}
	rd_kafka_poll_set_consumer(c);
	rd_kafka_topic_partition_list_t *t =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, "measurements",
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(c, t);
	rd_kafka_topic_partition_list_destroy(t);

	pthread_t th;
	pthread_create(&th, NULL, paced_producer, b);
	char payload[2048];
	uint64_t answered = 0;
	e.t0 = now_s();
	double joined = 0;
	while (!b->produced_all || answered < b->target) {
		if (b->phase == 0) {
			/* start the load once the group has given us partitions
			 */
			rd_kafka_topic_partition_list_t *a = NULL;
			if (rd_kafka_assignment(c, &a) == 0 && a->cnt > 0) {
				b->phase = 1;
				e.t0 = joined = now_s();
			}
			if (a)
				rd_kafka_topic_partition_list_destroy(a);
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1);
		if (m && !m->err) {
			rd_kafka_timestamp_type_t tt;
			int64_t created = rd_kafka_message_timestamp(m, &tt);
			int n = 0;
			for (int i = 0; i < H && n < (int)sizeof(payload) - 16;
			     i++)
				n += snprintf(payload + n, sizeof(payload) - n,
					      "%s%.4f", i ? "," : "[",
					      sin((double)(answered + i)));
			payload[n++] = ']';
			rd_kafka_producev(
			    p, RD_KAFKA_V_TOPIC("forecasts"),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			    RD_KAFKA_V_KEY(m->key, m->key_len),
			    RD_KAFKA_V_VALUE(payload, (size_t)n),
			    RD_KAFKA_V_OPAQUE((void *)(intptr_t)created),
			    RD_KAFKA_V_END);
			answered++;
		}
		if (m)
			rd_kafka_message_destroy(m);
		rd_kafka_poll(p, 0);
	}
	pthread_join(th, NULL);
	rd_kafka_flush(p, 10000);
	printf("  echo: group joined after the load was ready; %" PRIu64
	       " messages answered\n",
	       answered);
	double *tmp = malloc(e.cap * sizeof(*tmp));
	int last = (int)(now_s() - joined);
	for (int s = 0; tmp && s <= last; s++) {
		size_t k = 0;
		for (size_t i = 0; i < e.n; i++)
			if (e.sec[i] == s)
				tmp[k++] = e.ms[i];
		char what[64];
		snprintf(what, sizeof(what), "  t=%3d s acked", s);
		echo_report(what, tmp, k);
	}
	size_t k = 0;
	for (size_t i = 0; tmp && i < e.n; i++)
		if (e.sec[i] >= 3)
			tmp[k++] = e.ms[i];
	echo_report("  echo latency (CreateTime -> answer acked) after the "
		    "first 3 s",
		    tmp, k);
	echo_report("  echo latency (CreateTime -> answer acked), all", e.ms,
		    e.n);
	free(tmp);
	free(e.ms);
	free(e.sec);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	rd_kafka_destroy(p);
	return 0;
}

static int run_daemon(struct bench *b, const char *model,
		      bool (*tick_fn)(void *, const struct dc_run_stats *),
		      struct dc_run_stats *st)
{
	char s_brokers[300], s_db[128], s_model[160], s_ttt[32];
	char s_metrics[64], s_batch[64];
	snprintf(s_batch, sizeof(s_batch), "storage.batch_ms=%d", b->batch_ms);
	b->metrics_port = free_port();
	snprintf(s_metrics, sizeof(s_metrics), "metrics.listen=127.0.0.1:%d",
		 b->metrics_port);
	snprintf(s_brokers, sizeof(s_brokers), "kafka.brokers=%s",
		 b->bootstraps);
	snprintf(s_db, sizeof(s_db), "storage.path=%s/bench.db", b->dir);
	snprintf(s_model, sizeof(s_model), "model.path=%s", model);
	snprintf(s_ttt, sizeof(s_ttt), "ttt.enabled=%s",
		 b->ttt ? "true" : "false");
	const char *sets[32] = {s_brokers,
				s_db,
				s_model,
				s_ttt,
				"kafka.deadletter_topic=deadletter",
				"kafka.group=bench",
				"kafka.session_timeout_ms=6000",
				"kafka.max_poll_records=20000",
				s_metrics,
				s_batch,
				getenv("BENCH_LOG") ? "log.level=info"
						    : "log.level=warning"};
	size_t nsets = 11;
	for (int i = 0; i < b->nextra; i++)
		sets[nsets++] = b->extra[i];
	struct dc_run_options o = {
	    .sets = sets, .nsets = nsets, .tick = tick_fn, .user = b};
	return dc_run(&o, st);
}

static void print_totals(int rc, double total, const struct dc_run_stats *st)
{
	printf("  run exit %d, %.1f s in all; %" PRIu64 " messages, %" PRIu64
	       " forecasts, %" PRIu64 " adaptations accepted, %" PRIu64
	       " rejected, %" PRIu64 " dead letters\n",
	       rc, total, st->messages, st->forecasts, st->accepted,
	       st->rejected, st->deadlettered);
	if (st->states_published)
		printf("  state topic: %" PRIu64
		       " states published, %.0f bytes "
		       "each, %.2f us of daemon-thread CPU each to make and "
		       "produce; %.2f s waiting for acknowledgements\n",
		       st->states_published,
		       (double)st->states_bytes / (double)st->states_published,
		       (double)st->states_cpu_ns / 1e3 /
			   (double)st->states_published,
		       (double)st->states_wait_us / 1e6);
}

/* "daemon thread X s CPU = N messages per CPU-second (U us/message);
 * process Y s CPU" for a window of msgs messages, and where the daemon
 * thread's wall time went: on a core, runnable but waiting for one (the
 * machine is shared), or blocked (Kafka, fsync, idle). */
static void print_cpu(const char *what, const struct mark *a,
		      const struct mark *z, uint64_t msgs)
{
	double cpu = (double)(z->cpu_ns - a->cpu_ns) / 1e9;
	double proc = (double)(z->proc_ns - a->proc_ns) / 1e9;
	printf("  %s: daemon thread %.2f s CPU = %.0f messages per "
	       "daemon-CPU-second (%.2f us/message); whole process %.2f s "
	       "CPU (%.2f us/message)\n",
	       what, cpu, cpu > 0 ? (double)msgs / cpu : 0,
	       msgs ? cpu * 1e6 / (double)msgs : 0, proc,
	       msgs ? proc * 1e6 / (double)msgs : 0);
	double mock = (double)(z->mock_ns - a->mock_ns) / 1e9;
	printf("  %s: whole process but the mock broker's thread %.2f s CPU "
	       "(%.2f us/message)\n",
	       what, proc - mock,
	       msgs ? (proc - mock) * 1e6 / (double)msgs : 0);
	double wall = (double)(z->wall_us - a->wall_us) / 1e6;
	double wait = (double)(z->wait_ns - a->wait_ns) / 1e9;
	printf("  %s: daemon thread's %.2f s of wall clock: %.2f s on a core, "
	       "%.2f s runnable waiting for a core, %.2f s blocked\n",
	       what, wall, cpu, wait, wall - cpu - wait);
	uint64_t states = z->states - a->states;
	double scpu = (double)(z->states_cpu_ns - a->states_cpu_ns) / 1e9;
	if (states && cpu > 0)
		printf("  %s: %" PRIu64 " states published (%.3f per message), "
		       "%.2f us of daemon-thread CPU each: %.1f %% of the "
		       "daemon thread's CPU\n",
		       what, states, (double)states / (double)msgs,
		       scpu * 1e6 / (double)states, 100.0 * scpu / cpu);
}

/* Run one ingest phase over what was produced; 0 or dc_run's code. */
static int ingest_phase(struct bench *b, const char *model, uint64_t target,
			const char *name, double *ret_wall, double *ret_cpu,
			uint64_t *ret_msgs)
{
	struct dc_run_stats st;
	memset(&b->win, 0, sizeof(b->win));
	b->win.target = target;
	double t0 = now_s();
	int rc = run_daemon(b, model, tick_ingest, &st);
	double total = now_s() - t0;
	struct window *w = &b->win;
	print_totals(rc, total, &st);
	if (!w->started || !w->reached || w->end.wall_us == 0) {
		printf("  %s: did not complete\n", name);
		return rc ? rc : 1;
	}
	uint64_t msgs = w->end.consumed - w->start.consumed;
	/* wall: first to last message, plus the final commit's CPU time
	 * (the loop idles in poll up to 100 ms before it commits) */
	double wall = (double)(w->last.wall_us - w->start.wall_us) / 1e6 +
		      (double)(w->end.cpu_ns - w->last.cpu_ns) / 1e9;
	double cpu = (double)(w->end.cpu_ns - w->start.cpu_ns) / 1e9;
	printf("  %s: %" PRIu64 " messages in %.2f s wall = %.0f "
	       "messages/s\n",
	       name, msgs, wall, wall > 0 ? (double)msgs / wall : 0);
	print_cpu(name, &w->start, &w->end, msgs);
	printf("  %s: CLOCK_MONOTONIC window %.6f..%.6f s; resident memory "
	       "%.1f MiB at its end (whole process)\n",
	       name, (double)w->start.wall_us / 1e6,
	       (double)w->end.wall_us / 1e6, (double)w->rss_kb / 1024.0);
	*ret_wall = wall;
	*ret_cpu = cpu;
	*ret_msgs = msgs;
	return rc;
}

/* --mode ingest: first sight of every series, then the steady state. */
static int bench_ingest(struct bench *b, const char *model)
{
	double wa, ca, wb, cb;
	uint64_t ma, mb;
	int rc;

	b->target = (uint64_t)b->series;
	produce_range(b, 0, 1);
	long rss0 = rss_kb();
	rc = ingest_phase(b, model, (uint64_t)b->series,
			  "first sight (every message a new series)", &wa, &ca,
			  &ma);
	if (rc)
		return rc;
	long rss_a = b->win.rss_kb;
	produce_range(b, 1, b->steps);
	rc = ingest_phase(
	    b, model, (uint64_t)b->series * (uint64_t)(b->steps - 1),
	    "steady state (known series, restored at start)", &wb, &cb, &mb);
	if (rc)
		return rc;
	printf("  ingest, both phases: %" PRIu64 " messages in %.2f s wall = "
	       "%.0f messages/s; daemon thread %.2f s CPU = %.0f messages "
	       "per daemon-CPU-second\n",
	       ma + mb, wa + wb, (double)(ma + mb) / (wa + wb), ca + cb,
	       (double)(ma + mb) / (ca + cb));
	printf("  resident memory %.1f MiB with %d series after first sight "
	       "(whole process, mock broker and its messages included; %.1f "
	       "MiB before the daemon started, with step 0 of every series in "
	       "the mock)\n",
	       (double)rss_a / 1024.0, b->series, (double)rss0 / 1024.0);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"series", required_argument, NULL, 'n'},
	    {"steps", required_argument, NULL, 's'},
	    {"ttt", required_argument, NULL, 't'},
	    {"rate", required_argument, NULL, 'r'},
	    {"seconds", required_argument, NULL, 'S'},
	    {"width", required_argument, NULL, 'w'},
	    {"backbone", required_argument, NULL, 'b'},
	    {"batch-ms", required_argument, NULL, 'B'},
	    {"set", required_argument, NULL, 'X'},
	    {"partitions", required_argument, NULL, 'P'},
	    {"linger-ms", required_argument, NULL, 'G'},
	    {NULL, 0, NULL, 0},
	};
	struct bench b = {.mode = "throughput",
			  .series = 10000,
			  .steps = 20,
			  .width = 64,
			  .ttt = true,
			  .rate = 10000,
			  .seconds = 20,
			  .backbone = "gru",
			  .batch_ms = 200,
			  .partitions = 64,
			  .linger_ms = 10};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			b.mode = optarg;
			break;
		case 'n':
			b.series = atoi(optarg);
			break;
		case 's':
			b.steps = atoi(optarg);
			break;
		case 't':
			b.ttt = !strcmp(optarg, "on");
			break;
		case 'r':
			b.rate = atof(optarg);
			break;
		case 'S':
			b.seconds = atof(optarg);
			break;
		case 'w':
			b.width = atoi(optarg);
			break;
		case 'b':
			b.backbone = optarg;
			break;
		case 'B':
			b.batch_ms = atoi(optarg);
			break;
		case 'P':
			b.partitions = atoi(optarg);
			break;
		case 'G':
			b.linger_ms = atoi(optarg);
			break;
		case 'X':
			if (b.nextra == sizeof(b.extra) / sizeof(b.extra[0])) {
				fprintf(stderr,
					"bench-daemon: too many --set\n");
				return 2;
			}
			b.extra[b.nextra++] = optarg;
			break;
		default:
			fprintf(stderr,
				"see the header of bench/bench_daemon.c\n");
			return 2;
		}
	}
	if (!strcmp(b.mode, "ingest") && b.steps >= L)
		b.steps = L - 1;
	if (!strcmp(b.mode, "ingest") && b.steps < 2)
		b.steps = 2; /* a first-sight and a steady-state step */
	log_init();
	log_set_level(getenv("BENCH_LOG") ? LOG_INFO : LOG_WARNING);
	/* the run's directory: mkdtemp() replaces the X's */
	const char *tmpdir = getenv("TMPDIR");
	int dn = snprintf(b.dir, sizeof(b.dir), "%s/dc-bench-daemon-XXXXXX",
			  tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (dn < 0 || (size_t)dn >= sizeof(b.dir) || !mkdtemp(b.dir)) {
		fprintf(stderr,
			"bench-daemon: cannot make a directory in "
			"TMPDIR (at most %zu characters)\n",
			sizeof(b.dir) - 24);
		return 1;
	}
	char model[128];
	if (setup(&b, model, sizeof(model)) < 0) {
		fprintf(stderr, "bench-daemon: setup failed\n");
		remove_dir(b.dir);
		return 1;
	}
	printf("bench-daemon mode=%s backbone=%s width=%d series=%d ttt=%s\n",
	       b.mode, b.backbone, b.width, b.series, b.ttt ? "on" : "off");

	int rc;
	if (!strcmp(b.mode, "ingest")) {
		rc = bench_ingest(&b, model);
	} else if (!strcmp(b.mode, "echo")) {
		rc = bench_echo(&b);
	} else {
		pthread_t th;
		int warm = !strcmp(b.mode, "throughput") ? L - 1 : 0;
		if (!strcmp(b.mode, "latency")) {
			/* warm every series up first, untimed */
			b.warm_msgs = (uint64_t)b.series * (uint64_t)(L - 1);
			b.target = b.warm_msgs;
			produce_range(&b, 0, L - 1);
			pthread_create(&th, NULL, paced_producer, &b);
		} else {
			b.warm_msgs = (uint64_t)b.series * (uint64_t)warm;
			b.target = b.warm_msgs +
				   (uint64_t)b.series * (uint64_t)b.steps;
			pthread_create(&th, NULL, warm_then_timed, &b);
		}
		double t0 = now_s();
		struct dc_run_stats st;
		rc = run_daemon(&b, model, tick, &st);
		pthread_join(th, NULL);
		double total = now_s() - t0;
		long rss = rss_kb();

		print_totals(rc, total, &st);
		if (strcmp(b.mode, "latency")) {
			double secs = (double)(b.t_done - b.t_mark) / 1e6;
			uint64_t msgs = b.m_done - b.m_mark;
			printf("  timed phase: %" PRIu64
			       " messages in %.2f s = %.0f messages/s\n",
			       msgs, secs, secs > 0 ? (double)msgs / secs : 0);
			print_cpu("timed phase", &b.cpu_mark, &b.cpu_done,
				  msgs);
		}
		printf("  resident memory %.1f MiB with %zu series (whole "
		       "process, mock broker and its messages included)\n",
		       (double)rss / 1024.0, st.series);
		static const char *const legs[3] = {
		    "end to end (message CreateTime -> forecast acked)",
		    "  in the daemon (consumed -> handed to the producer)",
		    "  delivery (handed to the producer -> acked)",
		};
		printf("  latency from the daemon's histograms (bucket upper "
		       "bounds):\n");
		for (int i = 0; i < 3; i++)
			printf("    %-54s p50 <= %g s, p99 <= %g s\n", legs[i],
			       hist_quantile(b.metrics, lat_names[i], 0.50),
			       hist_quantile(b.metrics, lat_names[i], 0.99));
		printf("  ... the same after the first 3 s (start-up and the "
		       "group join left out):\n");
		for (int i = 0; i < 3; i++) {
			double le[64], cnt[64];
			int n =
			    hist_parse(b.metrics, lat_names[i], le, cnt, 64);
			printf("    %-54s p50 <= %g s, p99 <= %g s\n", legs[i],
			       bucket_quantile(le, b.steady[i], n, 0.50),
			       bucket_quantile(le, b.steady[i], n, 0.99));
		}
	}
	rd_kafka_destroy(b.producer);
	rd_kafka_mock_cluster_destroy(b.mc);
	rd_kafka_destroy(b.owner);
	remove_dir(b.dir);
	return rc;
}
