/*
 * daemon: process concerns -- the command line, logging, Kafka, signals,
 * systemd notification, metrics and the demo.  Only this folder logs and
 * decides exit codes.
 */
#ifndef DRIFTCAST_DAEMON_H
#define DRIFTCAST_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h>

#include <jansson.h>

#include "config/config.h"

/* ---- exit codes -------------------------------------------------------- */

#define DC_EXIT_OK	0 /* success */
#define DC_EXIT_FAILURE 1 /* runtime failure */
#define DC_EXIT_USAGE	2 /* usage or configuration error */

/* ---- command line ----------------------------------------------------- */

/* Entry point of the driftcast binary: dispatches argv[1] to a command.
 * Returns the process exit code. */
int dc_main(int argc, char **argv);

/* One git-style command.  run() gets argv with argv[0] = the command name
 * and returns an exit code. */
struct dc_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* The settings file and --set overrides gathered from a command line. */
#define DC_MAX_SETS 128
struct dc_cfg_args {
	const char *file;
	const char *sets[DC_MAX_SETS];
	size_t nsets;
};

/* Record one --set argument; prints an error and returns -E2BIG when there
 * are too many. */
int dc_cfg_args_add_set(struct dc_cfg_args *a, const char *arg);

/* Load the configuration named by a; on error print every error line to
 * stderr and return DC_EXIT_USAGE.  Returns DC_EXIT_OK on success. */
int dc_cfg_args_load(const struct dc_cfg_args *a, struct cfg *ret_cfg,
		     struct cfg_sources *ret_src);

/* Commands (daemon/cmd_*.c). */
int dc_cmd_config(int argc, char **argv);
int dc_cmd_train(int argc, char **argv);
int dc_cmd_version(int argc, char **argv);
int dc_cmd_history(int argc, char **argv);  /* daemon/cmd_history.c */
int dc_cmd_versions(int argc, char **argv); /* daemon/cmd_versions.c */
int dc_cmd_rollback(int argc, char **argv); /* daemon/cmd_rollback.c */
int dc_cmd_eval(int argc, char **argv);

/* ---- Kafka (daemon/kafka.c) -------------------------------------------
 * One consumer-group member (cooperative-sticky, offsets stored only by
 * dc_kafka_commit after state is durable) and one idempotent producer.
 */
#include <librdkafka/rdkafka.h>

struct dc_kafka;

struct dc_kafka_hooks {
	void *user;
	/* Last offset of topic/partition whose effect is durable in SQLite,
	 * or -1.  Consumption of an assigned partition resumes after it. */
	int64_t (*applied_offset)(void *user, const char *topic,
				  int32_t partition);
	/* Called (from dc_kafka_poll) before partitions are assigned. */
	void (*on_assign)(void *user,
			  const rd_kafka_topic_partition_list_t *parts);
	/* Called before partitions are revoked: make everything applied so
	 * far durable now.  lost: the group already gave them away (do not
	 * commit offsets). */
	void (*on_revoke)(void *user,
			  const rd_kafka_topic_partition_list_t *parts,
			  bool lost);
	/* Called (from dc_kafka_poll/flush) when a message produced with
	 * origin_ms > 0 is delivered (failed: it could not be); produce_us is
	 * the time since it was handed to the producer (-1 if unknown). */
	void (*on_delivered)(void *user, int64_t origin_ms, int64_t produce_us,
			     bool failed);
};

/* Create the consumer (subscribed to kafka.input_topic) and the producer.
 * *ret is owned by the caller (dc_kafka_free closes the consumer, which
 * leaves the group, and flushes the producer for up to 10 s). */
int dc_kafka_new(const struct cfg *c, const struct dc_kafka_hooks *hooks,
		 struct dc_kafka **ret, char *errbuf, size_t errbuf_size);
void dc_kafka_free(struct dc_kafka *k);

/* librdkafka's own check of one pass-through property (cfg_kprop_check_fn;
 * registered with cfg_set_kprop_check before configurations are loaded):
 * 0, or -1 with librdkafka's reason in why. */
int dc_kafka_check_property(const char *name, const char *value, char *why,
			    size_t why_size);

/* Next message or NULL after timeout_ms; serves callbacks.  The caller
 * destroys the message with rd_kafka_message_destroy(). */
rd_kafka_message_t *dc_kafka_poll(struct dc_kafka *k, int timeout_ms);

/* Serve the producer's callbacks (delivery reports) now; dc_kafka_poll
 * serves them only every 256th message while input flows. */
void dc_kafka_serve_producer(struct dc_kafka *k);

/* True after a fatal librdkafka error; *ret_reason describes it. */
bool dc_kafka_fatal(const struct dc_kafka *k, const char **ret_reason);

/* Produce a copy of payload to topic, keyed; reason (may be NULL) goes in
 * a "driftcast-reason" header; origin_ms > 0 comes back to the
 * on_delivered hook.  Blocks while the producer queue is full. */
int dc_kafka_produce(struct dc_kafka *k, const char *topic, const void *key,
		     size_t key_len, const void *payload, size_t len,
		     const char *reason, int64_t origin_ms);

/* Messages produced and not yet delivered (or failed). */
long dc_kafka_in_flight(const struct dc_kafka *k);

/* Wait until everything produced is delivered; *ret_failed = deliveries
 * that failed since the previous flush.  -ETIMEDOUT if still in flight. */
int dc_kafka_flush(struct dc_kafka *k, int timeout_ms, long *ret_failed);

/* Asynchronously commit offsets (next offset to read per partition). */
int dc_kafka_commit(struct dc_kafka *k,
		    const rd_kafka_topic_partition_list_t *offsets);

/* Pause or resume every assigned partition, and those assigned while
 * paused (backpressure). */
int dc_kafka_pause(struct dc_kafka *k, bool pause);
bool dc_kafka_paused(const struct dc_kafka *k);

/* Messages behind the high watermark over the assignment, or -1. */
int64_t dc_kafka_lag(struct dc_kafka *k);
int dc_kafka_assigned_count(const struct dc_kafka *k);

/* ---- the daemon loop (daemon/run.c) ------------------------------------
 * `driftcast run` and `driftcast demo` both call dc_run().
 */
/* Phases of the loop's time (dc_run_stats.phase_us). */
enum dc_phase {
	DC_PHASE_POLL,	   /* waiting for / fetching the next message */
	DC_PHASE_MESSAGE,  /* parse, engine (adaptation included), rows */
	DC_PHASE_FORECAST, /* batched forecast passes at batch end */
	DC_PHASE_DEADLETTER_WAIT, /* dead letters delivered before commit */
	DC_PHASE_COMMIT,	  /* SQLite batch commit */
	DC_PHASE_PRODUCE,	  /* forecasts handed to librdkafka */
	DC_PHASE_DELIVERY_WAIT,	  /* forecasts acknowledged by Kafka */
	DC_PHASE_OTHER,		  /* control, retention, status, commit */
	DC_PHASE_COUNT
};

/* "poll", "message", ... */
const char *dc_phase_name(int phase);

struct dc_run_stats {
	uint64_t messages;	 /* consumed and not skipped */
	uint64_t skipped_replay; /* at or below the applied offset */
	uint64_t deadlettered;
	uint64_t dead_by_reason[32]; /* by enum dc_reason */
	uint64_t observations;
	uint64_t forecasts;
	uint64_t accepted, rejected, drifts, rollbacks, resets;
	uint64_t manual_rollbacks; /* operator rollbacks applied */
	uint64_t restored;	   /* series restored at start */
	uint64_t batches;	   /* SQLite transactions committed */
	uint64_t pauses;	   /* input paused for backpressure */
	bool paused;		   /* input paused now */
	/* Where the loop's wall time went, in microseconds, by phase */
	uint64_t phase_us[DC_PHASE_COUNT];
	int64_t lag; /* consumer lag, -1 unknown */
	size_t series;
	int assigned;  /* partitions */
	bool degraded; /* storage cannot write */
};

struct dc_run_options {
	const char *config_path; /* may be NULL: defaults */
	const char *const *sets; /* --set overrides */
	size_t nsets;
	/* Called from the loop about every 100 ms; return true to stop as on
	 * SIGTERM (the demo stops when it has consumed everything). */
	bool (*tick)(void *user, const struct dc_run_stats *st);
	void *user;
};

/* Run until SIGTERM/SIGINT (or tick says stop).  Returns an exit code:
 * 0 after a clean drain, 1 on a runtime failure, 2 on a configuration or
 * model problem.  *ret_stats (may be NULL) gets the final counters. */
int dc_run(const struct dc_run_options *opts, struct dc_run_stats *ret_stats);

/* How long the loop may wait in the consumer poll, in ms (dc_run's
 * batching rule).  With a batch open and flush_when_idle: 0, so the first
 * empty poll commits the batch and its forecasts leave.  Otherwise up to
 * 100 ms, not past an open batch's due time (its forecasts wait for it),
 * and at most 5 ms while produced messages are unacknowledged (their
 * delivery reports are served between waits). */
int dc_poll_wait_ms(bool batch_open, bool flush_when_idle, uint64_t due_usec,
		    uint64_t now_usec, long in_flight);

/* The [ttt] settings of c as engine parameters (daemon/ttt_cfg.c); 0 or
 * -EINVAL with the reason.  families: "enc,norm,head,calib" -> FC_ADAPT_*
 * bits. */
struct ttt_params;
int dc_ttt_params_from_cfg(struct ttt_params *p, const struct cfg *c,
			   char *errbuf, size_t errbuf_size);
int dc_ttt_families(const char *list, unsigned *ret, char *errbuf,
		    size_t errbuf_size);

/* Record one engine event in the store's open batch (daemon/record.c):
 * realised errors to the errors table, forecasts to the forecasts table,
 * everything else to the audit log (and a version when it carries an
 * adapter).  series overrides ev->series when not NULL.  0 or the
 * storage's negative errno with errbuf. */
struct store;
struct ttt_event;
int dc_record_event(struct store *s, const struct ttt_event *ev,
		    const char *series, char *errbuf, size_t errbuf_size);

int dc_cmd_run(int argc, char **argv);
int dc_cmd_demo(int argc, char **argv);

/* ---- formatting (daemon/fmt.c) ------------------------------------------
 * f as JSON text that strtof() reads back as the same float (up to 9
 * significant digits, plain notation between 1e-4 and 1e9, %g outside),
 * into p (at least 32 bytes); returns the length, no NUL written.  f must
 * be finite.
 */
size_t dc_format_float(char *p, float f);

/* src as the inside of a JSON string: '"' and '\' escaped, control
 * characters as \u00XX, everything else (UTF-8 included) as it is.
 * Writes at most 6 * strlen(src) bytes to dst, no NUL; returns the length.
 * (Series keys are printable UTF-8 after parsing, but may hold quotes.) */
size_t dc_json_escape(char *dst, const char *src);

/* Output of the read-only commands (history, versions). */
enum dc_format { DC_FORMAT_TABLE, DC_FORMAT_CSV, DC_FORMAT_JSON };
/* v with 6 digits into buf, or `none` (a static string) when not finite;
 * returns the string to print. */
const char *dc_fmt_num(float v, char *buf, size_t n, const char *none);
/* One CSV field, quoted when it holds a comma, quote or line break. */
void dc_csv_field(FILE *f, const char *s);
/* v as a JSON number, or null when not finite (a new reference). */
json_t *dc_json_num(float v);
/* --format TEXT of command cmd; prints the error and returns -EINVAL. */
int dc_format_parse(const char *cmd, const char *text, enum dc_format *ret);
/* Print j compactly as element `index` of a JSON array (a ",\n" before
 * every element but the first) and release it. */
void dc_json_emit(json_t *j, size_t index);

/* ---- logging -----------------------------------------------------------
 * Levels are syslog(3) priorities.  The macros test the level before any
 * argument is evaluated or formatted.  Under systemd (JOURNAL_STREAM names
 * our stderr) lines carry "<N>" priority prefixes; otherwise they are plain,
 * with a timestamp unless stderr is a terminal.
 */

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

#include "daemon/parse.h"

/* ---- systemd notification (daemon/notify.c) -----------------------------
 * sd_notify(3) over $NOTIFY_SOCKET; every call is a no-op without it.
 * Process-wide state, used from the main loop's thread only.  Functions
 * return 0 (or 1 when a rate-limited message was actually sent) or a
 * negative errno from the socket.
 */

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

/* ---- Prometheus metrics (daemon/metrics.c) ------------------------------
 * The main loop writes relaxed atomics (no locks); an HTTP thread
 * (libmicrohttpd) only reads them and renders the text format on
 * GET /metrics.  Names and labels are documented in the output's # HELP
 * lines.  Update functions accept NULL (metrics off).
 */
struct dc_metrics;
struct dc_run_stats;

/* Zeroed metrics, not yet served; NULL on allocation failure.  Free with
 * dc_metrics_free() (accepts NULL), which also stops the HTTP thread. */
struct dc_metrics *dc_metrics_new(void);
void dc_metrics_free(struct dc_metrics *m);
/* Serve on listen ("host:port", "[v6]:port", port 0 = any free port), or do
 * nothing for "off".  0, or a negative errno with the reason in errbuf. */
int dc_metrics_listen(struct dc_metrics *m, const char *listen, char *errbuf,
		      size_t errbuf_size);
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

#endif
