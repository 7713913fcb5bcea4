/*
 * The daemon loop (daemon/run.c and the run_*.c beside it): what
 * `driftcast run` and `driftcast demo` call -- dc_run(), its options and
 * counters, the phases its time is charged to, and its batching rule for
 * the consumer poll.
 */
#ifndef DRIFTCAST_DAEMON_RUN_H
#define DRIFTCAST_DAEMON_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* "poll", "message", ... (daemon/metrics.c, which labels them). */
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
	uint64_t restored;	   /* series restored (start, assignment) */
	/* ... of them, started from the base adapter: their stored version
	 * was made with another base model (model.path changed) */
	uint64_t model_resets;
	/* the state topic: states published, series restored from it,
	 * records refused (unparsable, checksum, other model or layout) */
	uint64_t states_published, states_restored, states_refused;
	/* reads of a state partition that did not reach its end (the
	 * partition held until one does), and the partitions held now */
	uint64_t state_reads_failed;
	int restoring;
	uint64_t states_bytes;	 /* of the states published */
	uint64_t states_cpu_ns;	 /* loop thread CPU making and producing them */
	uint64_t states_wait_us; /* waiting for their acknowledgement */
	uint64_t batches;	 /* SQLite transactions committed */
	uint64_t pauses;	 /* input paused for backpressure */
	bool paused;		 /* input paused now */
	/* Where the loop's wall time went, in microseconds, by phase */
	uint64_t phase_us[DC_PHASE_COUNT];
	int64_t lag; /* consumer lag, -1 unknown */
	size_t series;
	int assigned;  /* partitions */
	bool degraded; /* storage cannot write */
	/* dead letters the broker refused or has not acknowledged, holding
	 * their batch (its offsets) back */
	size_t deadletter_undelivered;
};

struct dc_run_options {
	const char *config_path; /* may be NULL: defaults */
	const char *const *sets; /* --set overrides */
	size_t nsets;
	/* Called after every poll of the loop -- a message, delivery reports,
	 * or at most about 100 ms of nothing: not a clock; return true to stop
	 * as on SIGTERM (the demo stops when it has consumed everything). */
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

#endif
