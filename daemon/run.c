/*
 * `driftcast run`: the daemon's main loop -- open, loop, close.
 *
 *   poll a message -> skip it if SQLite says it was applied already ->
 *   parse (unusable: to the dead-letter topic, unchanged, with the reason)
 *   -> the TTT engine, whose events go into the open SQLite batch and whose
 *   forecasts go into an outbox (run_message.c, run_outbox.c) -> when the
 *   batch is due, run_batch.c makes it durable in a fixed order: the
 *   batch's dead letters delivered, the SQLite transaction committed (with
 *   the next offset of every partition touched), the forecasts handed to
 *   the producer, the Kafka offsets committed.  Forecasts are not waited
 *   for there: the idempotent producer retries them, and only a stop waits
 *   for their delivery.
 *
 * A crash anywhere replays from the offsets SQLite holds, so no adapter
 * update is applied twice and nothing is lost; forecasts are at least once
 * (idempotent by series and origin time).
 *
 * READY=1 goes out once the database is migrated, the model loaded and the
 * consumer subscribed.  Signal handlers only set flags.  Everything else --
 * reload, stop, the watchdog, STATUS=, operator rollbacks from the control
 * table, retention, backpressure -- happens here, in the loop, between
 * messages.
 */
#include "daemon/run_private.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/changelog.h"
#include "daemon/cli.h"
#include "daemon/fmt.h"
#include "daemon/metrics.h"
#include "daemon/status_page.h"
#include "daemon/notify.h"
#include "daemon/run_handover.h"
#include "daemon/run_audit.h"
#include "daemon/status.h"
#include "daemon/ttt_cfg.h"
#include "forecast/forecast.h"
#include "storage/storage.h"
#include "ttt/ttt.h"

#define STATUS_MS 1000

static volatile sig_atomic_t got_stop, got_reload;

/* The first SIGTERM/SIGINT drains; a second one also gives up waiting for
 * Kafka to accept what is in flight (it is replayed after the restart). */
static void on_stop_signal(int sig)
{
	(void)sig;
	got_stop = got_stop ? 2 : 1;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	got_reload = 1;
}

bool run_stop_forced(const struct run *r)
{
	return got_stop > 1 ||
	       (r->stop_deadline_usec &&
		dc_now_monotonic_usec() >= r->stop_deadline_usec);
}

static bool run_hook_stop_forced(void *user)
{
	return run_stop_forced(user);
}

/* The base model's file into the models table; its name also goes into
 * every forecast message. */
static int register_model(struct run *r)
{
	FILE *f = fopen(r->cfg.model.path, "rb");
	char *bytes = NULL;
	long n;
	int e = -EIO;
	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (bytes = malloc((size_t)n)) &&
	    fread(bytes, 1, (size_t)n, f) == (size_t)n) {
		const char *base = strrchr(r->cfg.model.path, '/');
		snprintf(r->model_name, sizeof(r->model_name), "%.120s",
			 base ? base + 1 : r->cfg.model.path);
		r->model_hash = dc_changelog_model_hash(bytes, (size_t)n);
		char desc[256];
		const struct fc_config *mc = fc_model_config(r->model);
		snprintf(desc, sizeof(desc),
			 "backbone=%s lookback=%d horizon=%d d_model=%d "
			 "layers=%d",
			 fc_backbone_name(mc->backbone), mc->lookback,
			 mc->horizon, mc->d_model, mc->n_layers);
		e = store_model_register(r->store, r->model_name, desc, bytes,
					 (size_t)n, NULL, &r->model_id, r->err,
					 sizeof(r->err));
	}
	free(bytes);
	fclose(f);
	return e;
}

static void apply_runtime_settings(struct run *r, const struct cfg *c)
{
	log_set_level(c->log.level);
	char err[512];
	if (dc_ttt_apply(r->engine, c, ttt_engine_set_params, err,
			 sizeof(err)) < 0)
		log_error("reload: TTT settings refused: %s", err);
}

static void reload(struct run *r)
{
	struct cfg c;
	char err[8192];
	const char *names[16];

	notify_reloading(dc_now_monotonic_usec());
	if (cfg_load(r->opts->config_path, r->opts->sets, r->opts->nsets, &c,
		     NULL, err, sizeof(err)) < 0) {
		log_error(
		    "reload failed, keeping the running configuration:\n%s",
		    err);
		notify_status(dc_now_monotonic_usec(), true,
			      "reload failed: %s", err);
		notify_ready();
		return;
	}
	size_t n = cfg_diff_static(&r->cfg, &c, names, 16);
	for (size_t i = 0; i < n && i < 16; i++)
		log_warning("reload: %s changed but needs a restart; the "
			    "running value stays",
			    names[i]);
	/* restart-only settings keep their running values */
	cfg_apply_reloadable(&r->cfg, &c);
	apply_runtime_settings(r, &r->cfg);
	log_notice("configuration reloaded (%zu restart-only change%s "
		   "ignored)",
		   n, n == 1 ? "" : "s");
	notify_ready();
}

static void control_poll(struct run *r)
{
	struct store_rollback_result rb;
	int waited = 0;
	/* a held batch first: its rows are not durable yet */
	if (r->held)
		return;
	for (;;) {
		int e =
		    store_control_poll(r->store, &rb, r->err, sizeof(r->err));
		if (e == 0)
			return;
		if (e == -EAGAIN) {
			/* a request waits for the open batch: durable first,
			 * with its offsets (a failure holds it); rows of no
			 * message (none dirty) are committed as they are */
			if (waited++ == 0) {
				if (run_batch_flush(r, true) < 0 || r->held)
					return;
			} else if (waited > 2 ||
				   store_batch_commit(r->store, r->err,
						      sizeof(r->err)) < 0) {
				log_ratelimited(&r->rl_store, LOG_ERR,
						"operator rollback waits: %s",
						r->err);
				return;
			}
			continue;
		}
		if (e < 0) {
			log_error("operator rollback refused: %s", r->err);
			return;
		}
		e = run_restore_version(r, rb.series, rb.adapter,
					rb.adapter_len, rb.new_version,
					rb.average, rb.average_len);
		if (e < 0)
			log_error("operator rollback of %s to version %" PRIu64
				  " stored but not applied: %s",
				  rb.series, rb.restored, strerror(-e));
		else
			log_notice("operator rollback: %s now runs version "
				   "%" PRIu64 " (content of version %" PRIu64
				   "%s)",
				   rb.series, rb.new_version, rb.restored,
				   e ? ", publishing its stored average" : "");
		r->st.manual_rollbacks++;
	}
}

/* One small retention step (at most storage.prune_batch rows), between
 * batches, so the loop never stalls on a big delete. */
static void prune_step(struct run *r)
{
	struct store_retention ret = {
	    .keep_versions = r->cfg.storage.keep_versions,
	    .keep_days = r->cfg.storage.keep_days,
	    .batch = r->cfg.storage.prune_batch,
	};
	size_t deleted = 0;
	if (r->cfg.storage.keep_days == 0 || r->batch_dirty)
		return;
	if (store_prune(r->store, &ret, store_now_ms(), &deleted, NULL, r->err,
			sizeof(r->err)) < 0)
		log_ratelimited(&r->rl_store, LOG_WARNING, "retention: %s",
				r->err);
	else if (deleted)
		log_debug("retention: %zu old rows pruned", deleted);
}

static void publish_status(struct run *r)
{
	struct dc_status *status = dc_metrics_status(r->metrics);
	int max, nparts;
	struct dc_partition_lag *lags = dc_status_lag_buffer(status, &max);
	r->st.lag = dc_kafka_lags(r->kafka, lags, max, &nparts);
	r->st.series = ttt_engine_series_count(r->engine);
	r->st.assigned = dc_kafka_assigned_count(r->kafka);
	r->st.restoring = r->nrestoring;
	dc_metrics_publish(r->metrics, &r->st);
	dc_status_publish(status, &(struct dc_status_report){
				      .st = &r->st,
				      .model = r->model_name,
				      .topic = r->cfg.kafka.input_topic,
				      .nparts = nparts,
				      .now_usec = dc_now_monotonic_usec(),
				  });
	char held[96] = "";
	if (r->st.deadletter_undelivered)
		snprintf(held, sizeof(held),
			 ", DEAD LETTERS UNDELIVERED (%zu), input paused",
			 r->st.deadletter_undelivered);
	else if (r->degraded)
		snprintf(held, sizeof(held),
			 ", STORAGE DEGRADED, input paused");
	else if (r->nrestoring)
		snprintf(held, sizeof(held),
			 ", %d PARTITIONS HELD (state topic unread)",
			 r->nrestoring);
	notify_status(dc_now_monotonic_usec(), false,
		      "%d partitions, %zu series, lag %" PRId64 ", %" PRIu64
		      " adaptations accepted, %" PRIu64 " rejected, %" PRIu64
		      " rollbacks%s",
		      r->st.assigned, r->st.series, r->st.lag, r->st.accepted,
		      r->st.rejected, r->st.rollbacks, held);
}

static int poll_timeout_ms(struct run *r, uint64_t now)
{
	/* a held batch is due at its next try, not at once */
	bool open = r->batch_dirty && !r->held;
	return dc_poll_wait_ms(open || r->held,
			       open && r->cfg.storage.flush_when_idle,
			       r->held ? r->hold_retry_usec : r->batch_due_usec,
			       now, dc_kafka_in_flight(r->kafka));
}

/* Whether the open batch is to be made durable now. */
static bool flush_due(struct run *r, bool polled, uint64_t now)
{
	if (r->held)
		return now >= r->hold_retry_usec;
	return r->batch_dirty &&
	       (!polled ||
		r->batch_messages >= (size_t)r->cfg.kafka.max_poll_records ||
		store_batch_due(r->store, (int64_t)(now / 1000)));
}

/* Backpressure: pause the input while too much is unacknowledged, or
 * while a batch is held (a dead letter not delivered, a full disk). */
static void backpressure(struct run *r)
{
	long n = dc_kafka_in_flight(r->kafka);
	bool paused = dc_kafka_paused(r->kafka);
	if (!paused && r->held) {
		if (dc_kafka_pause(r->kafka, true) == 0) {
			r->st.pauses++;
			log_warning("input paused: the batch is held until %s",
				    r->held == HOLD_DEADLETTER
					? "its dead letters are delivered"
					: "the database takes it");
		}
	} else if (!paused && n > r->cfg.kafka.max_in_flight) {
		if (dc_kafka_pause(r->kafka, true) == 0) {
			r->st.pauses++;
			log_warning("input paused: %ld produced messages not "
				    "yet acknowledged (kafka.max_in_flight = "
				    "%d)",
				    n, r->cfg.kafka.max_in_flight);
		}
	} else if (paused && !r->held && n <= r->cfg.kafka.max_in_flight / 2) {
		if (dc_kafka_pause(r->kafka, false) == 0)
			log_notice("input resumed: %ld in flight", n);
	}
	r->st.paused = dc_kafka_paused(r->kafka);
}

/* A long store_open (the quick_check, or a migration rewriting every row
 * of a big file): keep systemd's start timeout ahead of it. */
static void storage_busy(void)
{
	static bool said;
	if (!said) {
		said = true;
		log_notice("storage: opening the database takes a while (its "
			   "quick_check, or a schema migration); the start-up "
			   "timeout is extended while it works");
	}
	notify_extend_timeout(UINT64_C(15000000));
}

/*
 * Everything the loop needs, opened before READY=1: settings, signals, the
 * model, the migrated database, the engine restored from it, the parser,
 * metrics, and the subscribed consumer.  *ret_run is NULL when nothing
 * was opened (no memory, or the settings do not load); otherwise the
 * caller closes it whatever the exit code returned.
 */
static int run_open(const struct dc_run_options *opts, struct run **ret_run)
{
	struct run *r = calloc(1, sizeof(*r));
	struct sigaction sa = {0};
	struct store_options so = {0};
	int e;

	*ret_run = NULL;
	if (!r)
		return DC_EXIT_FAILURE;
	r->opts = opts;
	if (gethostname(r->host, sizeof(r->host) - 1) < 0 || !r->host[0])
		snprintf(r->host, sizeof(r->host), "unknown");
	r->rl_dead = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	r->rl_store = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	r->rl_engine = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 10);
	for (int p = 0; p < MAX_PARTITIONS; p++)
		r->applied_next[p] = r->batch_next[p] = r->kafka_next[p] =
		    r->durable_next[p] = -1;

	/* also when called without dc_main (benchmarks, tests) */
	cfg_set_kprop_check(dc_kafka_check_property);
	if (cfg_load(opts->config_path, opts->sets, opts->nsets, &r->cfg, NULL,
		     r->err, sizeof(r->err)) < 0) {
		fprintf(stderr, "%s\n", r->err);
		free(r);
		return DC_EXIT_USAGE;
	}
	*ret_run = r;
	log_set_level(r->cfg.log.level);
	notify_init();
	/* One thread: the loop forecasts small batches, where OpenBLAS's
	 * worker threads only spin (sched_yield) and steal the core. */
	fc_blas_set_threads(1);

	got_stop = got_reload = 0;
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_reload_signal;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* model */
	e = fc_model_load(r->cfg.model.path, &r->model, r->err, sizeof(r->err));
	if (e < 0) {
		log_error("model %s: %s", r->cfg.model.path, r->err);
		return DC_EXIT_USAGE;
	}
	const struct fc_config *mc = fc_model_config(r->model);
	if (mc->lookback != r->cfg.model.lookback ||
	    mc->horizon != r->cfg.model.horizon) {
		log_error("model %s has lookback %d and horizon %d, the "
			  "configuration says model.lookback = %d, "
			  "model.horizon = %d",
			  r->cfg.model.path, mc->lookback, mc->horizon,
			  r->cfg.model.lookback, r->cfg.model.horizon);
		return DC_EXIT_USAGE;
	}

	/* storage: migrated before READY */
	so.daemon = true;
	so.batch_rows = r->cfg.storage.batch_rows;
	so.batch_ms = r->cfg.storage.batch_ms;
	so.busy_timeout_ms = r->cfg.storage.busy_timeout_ms;
	so.rename_corrupt = r->cfg.storage.rename_corrupt;
	so.check = r->cfg.storage.check_on_start;
	so.on_busy = storage_busy;
	e = store_open(r->cfg.storage.path, &so, &r->store, r->err,
		       sizeof(r->err));
	if (e == -ENOTRECOVERABLE && !so.rename_corrupt) {
		log_error("storage %s: %s (refusing to write into it: restore "
			  "a backup, or set storage.rename_corrupt = true to "
			  "move it aside and start a fresh database)",
			  r->cfg.storage.path, r->err);
		return DC_EXIT_FAILURE;
	}
	if (e < 0) {
		log_error("storage %s: %s", r->cfg.storage.path, r->err);
		return DC_EXIT_FAILURE;
	}
	if (*store_renamed_path(r->store))
		log_warning("storage: %s was damaged or not a database; moved "
			    "it (and its -wal/-shm) to %s and started a fresh "
			    "database: every series starts from the base model",
			    r->cfg.storage.path, store_renamed_path(r->store));
	if (register_model(r) < 0)
		log_warning("storage: cannot register the base model: %s",
			    r->err);
	r->forecast_fields =
	    outbox_forecast_fields(r->model_name, r->host, r->cfg.storage.path,
				   &r->forecast_fields_len);
	if (!r->forecast_fields) {
		log_error("out of memory");
		return DC_EXIT_FAILURE;
	}

	/* engine, restored from storage */
	struct ttt_params tp;
	if (dc_ttt_params_from_cfg(&tp, &r->cfg, r->err, sizeof(r->err)) < 0) {
		log_error("[ttt] settings: %s", r->err);
		return DC_EXIT_USAGE;
	}
	e = ttt_engine_new(r->model, &tp, run_on_engine_event, r, &r->engine,
			   r->err, sizeof(r->err));
	if (e < 0) {
		log_error("engine: %s", r->err);
		return DC_EXIT_FAILURE;
	}
	ttt_engine_set_max_series(r->engine, (size_t)r->cfg.ttt.max_series);
	e = ttt_engine_defer_forecasts(r->engine, r->cfg.model.forecast_batch);
	if (e < 0) {
		log_error("engine: forecast batches of %d: %s",
			  r->cfg.model.forecast_batch, strerror(-e));
		return DC_EXIT_FAILURE;
	}
	r->adapter_len = fc_adapter_len(r->model);
	r->adapter_buf =
	    calloc(r->adapter_len ? r->adapter_len : 1, sizeof(float));
	if (!r->adapter_buf) {
		log_error("out of memory");
		return DC_EXIT_FAILURE;
	}
	run_restore(r);

	struct dc_parse_opts po = {
	    .format = r->cfg.kafka.input_format,
	    .ts_unit = r->cfg.kafka.ts_unit,
	    .max_message_bytes = (size_t)r->cfg.kafka.max_message_bytes,
	};
	r->parser = dc_parser_new(&po);
	r->obs = calloc(MAX_OBS_PER_MESSAGE, sizeof(*r->obs));
	if (!r->parser || !r->obs) {
		log_error("out of memory");
		return DC_EXIT_FAILURE;
	}

	r->metrics = dc_metrics_new();
	if (!r->metrics ||
	    dc_metrics_set_page(r->metrics, dc_status_page,
				r->cfg.storage.path) < 0 ||
	    dc_metrics_listen(r->metrics, r->cfg.metrics.listen, r->err,
			      sizeof(r->err)) < 0) {
		log_error("metrics on %s: %s", r->cfg.metrics.listen, r->err);
		return DC_EXIT_USAGE;
	}
	if (dc_metrics_port(r->metrics) > 0)
		log_info("metrics on http://%s/metrics (port %d)",
			 r->cfg.metrics.listen, dc_metrics_port(r->metrics));

	struct dc_kafka_hooks hooks = {
	    .user = r,
	    .applied_offset = run_hook_applied_offset,
	    .on_assign = run_hook_on_assign,
	    .on_revoke = run_hook_on_revoke,
	    .on_delivered = run_hook_on_delivered,
	    .stop_forced = run_hook_stop_forced,
	};
	e = dc_kafka_new(&r->cfg, &hooks, &r->kafka, r->err, sizeof(r->err));
	if (e < 0) {
		log_error("kafka: %s", r->err);
		return DC_EXIT_FAILURE;
	}
	if (run_audit_open(r) < 0)
		return DC_EXIT_FAILURE;

	log_notice("driftcast %s running: %s -> %s (dead letters: %s), "
		   "model %s, database %s",
		   DRIFTCAST_VERSION, r->cfg.kafka.input_topic,
		   r->cfg.kafka.output_topic, r->cfg.kafka.deadletter_topic,
		   r->cfg.model.path, r->cfg.storage.path);
	notify_ready();
	return DC_EXIT_OK;
}

/* Until `until` (or the stop's end), in slices that feed the watchdog and
 * serve the producer's delivery reports. */
static void wait_until(struct run *r, uint64_t until)
{
	for (;;) {
		uint64_t now = dc_now_monotonic_usec();
		notify_watchdog_tick(now);
		dc_kafka_serve_producer(r->kafka);
		if (now >= until || run_stop_forced(r))
			return;
		uint64_t left = until - now < 100000 ? until - now : 100000;
		struct timespec ts = {0, (long)left * 1000};
		nanosleep(&ts, NULL);
	}
}

/*
 * A stop: the last batch durable, its offsets committed, every forecast
 * acknowledged, then the recent values saved (they must be exactly the
 * state the stored offsets describe).  Waiting for the broker or the disk
 * ends kafka.stop_timeout_ms after it began (systemd's TimeoutStopSec is
 * the operator's budget): what is not durable then is neither committed
 * nor saved, it is consumed again at the next start, and the exit status
 * says so (DC_EXIT_FAILURE).
 */
static int run_finish(struct run *r)
{
	int rc = DC_EXIT_OK;
	uint64_t t0 = dc_now_monotonic_usec();
	notify_stopping();
	dc_status_stopping(dc_metrics_status(r->metrics));
	r->stop_deadline_usec =
	    t0 + (uint64_t)r->cfg.kafka.stop_timeout_ms * 1000u;
	log_notice("stopping: making the last batch durable (waiting at most "
		   "%d ms for the broker and the disk: kafka.stop_timeout_ms)",
		   r->cfg.kafka.stop_timeout_ms);
	while (run_batch_flush(r, true) == -EAGAIN && !run_stop_forced(r))
		wait_until(r, r->hold_retry_usec);
	if (r->held) {
		char parts[512];
		log_error(
		    "stop: gave up after %.1f s: %zu messages (%zu dead "
		    "letters undelivered%s) are neither stored nor "
		    "committed; they are consumed again at the next start "
		    "from partition %s",
		    (double)(dc_now_monotonic_usec() - t0) / 1e6,
		    r->batch_messages, r->dead.inflight + r->dead.failed,
		    r->degraded ? ", the database refusing the batch" : "",
		    run_batch_describe(r, parts, sizeof(parts)));
		rc = DC_EXIT_FAILURE;
	}
	run_commit_offsets(r, true, true, true); /* what is durable */
	run_lap(r, DC_PHASE_OTHER);
	if (run_drain_deliveries(r, "forecasts topic") == -ETIMEDOUT) {
		long fc = dc_kafka_in_flight(r->kafka) - (long)r->dead.inflight;
		if (fc > 0)
			log_error(
			    "stop: gave up after %.1f s with %ld "
			    "forecasts unacknowledged by %s: their inputs "
			    "are stored, so they are not sent again",
			    (double)(dc_now_monotonic_usec() - t0) / 1e6, fc,
			    r->cfg.kafka.output_topic);
		rc = DC_EXIT_FAILURE;
	}
	run_audit_tick(r, dc_now_monotonic_usec(), true); /* its cursor */
	run_lap(r, DC_PHASE_DELIVERY_WAIT);
	if (!r->held) /* else they would describe values not stored */
		run_save_recent(r);
	run_lap(r, DC_PHASE_OTHER);
	publish_status(r);
	char phases[512];
	size_t o = 0;
	for (int i = 0; i < DC_PHASE_COUNT && o < sizeof(phases); i++)
		o += (size_t)snprintf(
		    phases + o, sizeof(phases) - o, "%s%s %.2f", i ? ", " : "",
		    dc_phase_name(i), (double)r->st.phase_us[i] / 1e6);
	log_info("loop seconds by phase: %s", phases);
	return rc;
}

/*
 * Poll, apply, flush when due, and between messages everything else, until
 * SIGTERM/SIGINT or the tick says stop; then stop (run_finish).  A
 * fatal Kafka error ends it at once: what SQLite can still commit is
 * committed, offsets are not (DC_EXIT_FAILURE).
 */
static int run_loop(struct run *r)
{
	const struct dc_run_options *opts = r->opts;
	uint64_t last_control = 0, last_status = 0, last_prune = 0,
		 last_delivery = 0;
	r->t_lap = dc_now_monotonic_usec();
	while (!got_stop) {
		uint64_t t = run_lap(r, DC_PHASE_OTHER);
		rd_kafka_message_t *m =
		    dc_kafka_poll(r->kafka, poll_timeout_ms(r, t));
		uint64_t now = run_lap(r, DC_PHASE_POLL);
		if (m) {
			if (!m->err)
				run_handle_message(r, m);
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_ratelimited(&r->rl_dead, LOG_WARNING,
						"consumer: %s",
						rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			now = run_lap(r, DC_PHASE_MESSAGE);
		}
		/* delivery reports at least every millisecond: they time the
		 * end-to-end latency and count what is in flight */
		if (now - last_delivery >= 1000) {
			last_delivery = now;
			dc_kafka_serve_producer(r->kafka);
		}
		if (flush_due(r, m != NULL, now))
			run_batch_flush(r, true);
		run_commit_offsets(r, false, false,
				   false); /* what waits for the interval */

		const char *why;
		if (dc_kafka_fatal(r->kafka, &why)) {
			log_error("stopping on a fatal Kafka error: %s", why);
			run_batch_flush(r, false);
			return DC_EXIT_FAILURE;
		}
		run_audit_tick(r, now, false);
		if (now - last_control >=
		    (uint64_t)r->cfg.storage.control_poll_ms * 1000u) {
			last_control = now;
			control_poll(r);
		}
		if (now - last_prune >=
		    (uint64_t)r->cfg.storage.prune_every_ms * 1000u) {
			last_prune = now;
			prune_step(r);
		}
		if (now - last_status >= STATUS_MS * 1000u) {
			last_status = now;
			publish_status(r);
		}
		run_handover_retry(r, now);
		backpressure(r);
		notify_watchdog_tick(now);
		if (got_reload) {
			got_reload = 0;
			reload(r);
		}
		if (opts->tick && opts->tick(opts->user, &r->st))
			break;
	}
	return run_finish(r);
}

/* The final counters to *ret_stats (may be NULL), then everything closed:
 * the consumer first, which leaves the group (its revoke hook may still
 * flush a batch), the store last. */
static void run_close(struct run *r, struct dc_run_stats *ret_stats)
{
	if (ret_stats)
		*ret_stats = r->st;
	dc_kafka_free(r->kafka); /* leaves the group */
	dc_metrics_free(r->metrics);
	dc_parser_free(r->parser);
	free(r->obs);
	outbox_free(&r->forecasts);
	run_audit_free(r->audit);
	run_dead_free(&r->dead);
	run_journal_free(&r->journal);
	run_owners_free(r);
	run_changelog_free(r);
	free(r->adapter_buf);
	free(r->forecast_fields);
	ttt_engine_free(r->engine);
	/* a batch the stop gave up on (held): its rows are not stored, as
	 * the log said -- its messages are applied again at the next start,
	 * from the stored offsets; store_free would commit them without */
	if (r->held)
		store_batch_abort(r->store);
	store_free(r->store);
	fc_model_free(r->model);
	free(r);
}

int dc_run(const struct dc_run_options *opts, struct dc_run_stats *ret_stats)
{
	struct run *r;
	int rc = run_open(opts, &r);
	if (!r)
		return rc;
	if (rc == DC_EXIT_OK)
		rc = run_loop(r);
	run_close(r, ret_stats);
	return rc;
}
