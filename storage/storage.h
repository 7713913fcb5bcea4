/*
 * storage: the SQLite database of a driftcast deployment -- schema and
 * migrations, base-model registry, immutable adapter versions with parent
 * links, the append-only audit log, forecasts and realised errors, the last
 * applied Kafka offset per topic-partition, retention, the control table a
 * running daemon polls for operator rollbacks, and the views users query.
 *
 * Depends on SQLite (and zlib's crc32) only.  No logging, never exits:
 * functions return 0 or a negative errno, results go through ret_
 * out-parameters untouched on failure, and errbuf (when not NULL) gets one
 * human-readable line.  Error codes used throughout:
 *
 *   -ENOENT           the database (or a series / version) does not exist
 *   -EROFS, -EACCES   the file or its directory is not writable
 *   -ENOTRECOVERABLE  not a SQLite database, not a driftcast database, or
 *                     corrupt (SQLITE_NOTADB / SQLITE_CORRUPT)
 *   -EPROTONOSUPPORT  written by a newer driftcast (schema too new)
 *   -ENOSPC           disk (or max_page_count) full
 *   -EBADMSG          a stored blob fails its checksum
 *   -EBUSY            locked by another writer beyond busy_timeout
 *   -EINVAL           bad argument (refused rollback target, bad name...)
 *   -EIO              any other SQLite failure
 *
 * Time: `ts` values are series timestamps as the engine sees them (epoch
 * seconds in the daemon); `created_at` values are wall-clock epoch
 * milliseconds taken by storage.  Version numbers are per-series counters
 * assigned by the engine (0 = the initial adapter); each version is also a
 * row with a global id and a parent link.
 *
 * Threading: a struct store is one SQLite connection; use it from one
 * thread at a time.  Several processes may open the same file (WAL): any
 * number of readers (the sqlite3 shell included) and writers serialised by
 * SQLite's lock with busy_timeout.
 */
#ifndef DRIFTCAST_STORAGE_H
#define DRIFTCAST_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Latest schema version this build writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 6
#define STORE_KEY_MAX	     256 /* series keys, topic names (bytes, incl. NUL) */
#define STORE_REASON_MAX     512

struct store;

/* ---- open / close ------------------------------------------------------ */

struct store_options {
	/* Open read-only; never creates or migrates.  In a directory it
	 * cannot write, a WAL database without a -wal file is opened as
	 * immutable (nobody can be writing it). */
	bool read_only;
	/* A file that is not a SQLite database or is corrupt is renamed to
	 * "<path>.corrupt-<UTC time>" (with its -wal/-shm) and a fresh
	 * database created.  Off by default: such a file is an error and
	 * nothing is touched. */
	bool rename_corrupt;
	/* Run PRAGMA quick_check at open (O(size): off for big databases;
	 * corruption is also detected by every later statement). */
	bool check;
	/* The running daemon: takes an exclusive flock on "<path>.lock" so
	 * that `driftcast rollback` sends its request through the sidecar
	 * "<path>.control" (see store_control_poll) instead of writing
	 * itself.  Fails with -EBUSY when another daemon holds it. */
	bool daemon;
	int busy_timeout_ms; /* 0 = 5000 */
	int batch_rows;	     /* store_batch_due(): rows per batch, 0 = 1000 */
	int batch_ms;	     /* store_batch_due(): ms per batch, 0 = 200 */
	/* For tests and tools: migrate only up to this schema version (0 =
	 * STORE_SCHEMA_VERSION). */
	int target_schema;
};

/*
 * Open (creating it unless read_only) and migrate the database at path.
 * opts may be NULL for defaults.  On success *ret is a new store owned by
 * the caller (close with store_free).  Migrations run in order, each in one
 * transaction; a failure leaves the file at the last completed version.
 * Writes use WAL with synchronous=FULL: a committed batch survives power
 * loss, so the Kafka offsets it carries may be committed.  A caller that
 * must keep running when the file cannot be written (-EROFS, -EACCES) can
 * retry with read_only to restore state and run without persistence.
 */
int store_open(const char *path, const struct store_options *opts,
	       struct store **ret, char *errbuf, size_t errbuf_size);

/* Commit an open batch (best effort) and close.  Accepts NULL. */
void store_free(struct store *s);

/* Schema version of the open file; the path a corrupt file was renamed to
 * by the last store_open ("" when none; owned by s). */
int store_schema_version(const struct store *s);
const char *store_renamed_path(const struct store *s);

/*
 * Degraded state: after a failed write (disk full, read-only, I/O error,
 * corruption) the batch is rolled back and the store reports it here until
 * a later commit succeeds.  Returns 0 when healthy, else the negative errno
 * of the last failure, with its text in errbuf.  The caller keeps running
 * and must not commit Kafka offsets of a batch that did not commit.
 */
int store_degraded(const struct store *s, char *errbuf, size_t errbuf_size);

/* ---- base models --------------------------------------------------------- */

/*
 * Register a base model (idempotent by checksum of bytes): name, its
 * configuration text, the model file's bytes and the training report (text,
 * may be NULL).  The returned id becomes the base model of versions and
 * forecasts written afterwards through this store.  Commits on its own
 * (not inside a batch).
 */
int store_model_register(struct store *s, const char *name,
			 const char *config_text, const void *bytes,
			 size_t nbytes, const char *report, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size);

/* ---- records ------------------------------------------------------------- */

/* Mirror of enum ttt_event_type (same order), plus storage's own. */
enum store_event_type {
	STORE_EV_FORECAST = 0,
	STORE_EV_ADAPT_ACCEPTED,
	STORE_EV_ADAPT_REJECTED,
	STORE_EV_DRIFT,
	STORE_EV_ROLLBACK,
	STORE_EV_RESET,
	STORE_EV_GAP_FILLED,
	STORE_EV_REJECTED_VALUE,
	STORE_EV_MANUAL, /* operator rollback (driftcast rollback) */
	STORE_EV_INIT,	 /* a series got its initial adapter (version 0) */
	STORE_EV__COUNT
};

/* Mirror of enum ttt_trigger (same order). */
enum store_trigger {
	STORE_TRIGGER_NONE = 0,
	STORE_TRIGGER_SCHEDULE,
	STORE_TRIGGER_DRIFT,
	STORE_TRIGGER_SHADOW,
	STORE_TRIGGER_MANUAL,
	STORE_TRIGGER__COUNT
};

/* Names as stored in the database ("adapt_accepted", "schedule", ...);
 * static strings, "?" when out of range. */
const char *store_event_type_name(int type);
const char *store_trigger_name(int trigger);

/*
 * One engine event, field for field struct ttt_event.  Pointers are
 * borrowed for the duration of the call.  `created_at` (wall-clock ms) is
 * filled by storage on write and by the readers on read.
 */
struct store_event {
	int type;    /* enum store_event_type */
	int trigger; /* enum store_trigger */
	const char *series;
	int64_t ts;
	uint64_t version_from, version_to;
	int steps;
	float loss_before, loss_after;
	float guard_before, guard_after;
	float update_norm;
	float adapted_error, shadow_error;
	const char *reason;
	const float *forecast; /* STORE_EV_FORECAST: [horizon] */
	int horizon;
	const float *adapter; /* a new version's adapter block, or NULL */
	size_t adapter_len;   /* floats */
	/* Later engine fields (schema 3), stored where they apply: */
	int64_t data_from, data_until; /* ADAPT_*: data window used */
	float value;		       /* REJECTED_VALUE: the value */
	int filled;		       /* GAP_FILLED: points filled */
	float detector_stat;	       /* DRIFT: statistic that fired */
	uint64_t version_restored;     /* ROLLBACK: the good version whose
					* content version_to repeats */
	int64_t created_at;	       /* read side only */
	int64_t id;		       /* read side only: audit row id */
};

/* ---- the write path: batches ---------------------------------------------
 * Writes go into the open batch (one transaction); the first write of a
 * batch opens it.  store_batch_commit() makes it durable; only then may the
 * caller commit the Kafka offsets it recorded with store_offset_put().
 */

/* Open a batch explicitly (BEGIN IMMEDIATE).  No-op if one is open. */
int store_batch_begin(struct store *s, char *errbuf, size_t errbuf_size);

/*
 * Record one engine event:
 *  - STORE_EV_FORECAST: a forecast row (series, ts as origin, values,
 *    version_to as the version that produced it); idempotent by
 *    (series, origin).
 *  - every other type: one audit row; when adapter != NULL also a new
 *    immutable version numbered version_to whose parent is the series'
 *    current version, and the series' current version moves to it.
 *    Version 0 with no current version is the initial version (no parent).
 * The series row is created on first use.  A version number that already
 * exists for the series is refused with -EEXIST (the batch stays usable).
 */
int store_event_put(struct store *s, const struct store_event *ev, char *errbuf,
		    size_t errbuf_size);

/* A realised error of the forecast issued at origin_ts by version. */
int store_error_put(struct store *s, const char *series, int64_t origin_ts,
		    uint64_t version, float adapted_error, float shadow_error,
		    char *errbuf, size_t errbuf_size);

/* Series bookkeeping: last timestamp seen and a status word ("active",
 * "degraded", ...; NULL keeps the current one). */
int store_series_put(struct store *s, const char *series, int64_t last_ts,
		     const char *status, char *errbuf, size_t errbuf_size);

/* The next Kafka offset to consume for (topic, partition), i.e. last
 * applied + 1, in the same transaction as the state it produced. */
int store_offset_put(struct store *s, const char *topic, int32_t partition,
		     int64_t next_offset, char *errbuf, size_t errbuf_size);

/* Rows written in the open batch, and whether it should be committed now:
 * opts.batch_rows reached, or opts.batch_ms elapsed since it opened.
 * now_ms is CLOCK_MONOTONIC in milliseconds (storage stamps the batch's
 * start with the same clock). */
size_t store_batch_rows(const struct store *s);
bool store_batch_due(const struct store *s, int64_t now_ms);

/* Commit the open batch (no-op when none).  On failure the batch is rolled
 * back, the store is degraded (see store_degraded) and the error returned:
 * none of the batch's rows, versions or offsets exist.
 *
 * A write that fails other than by refusing its own input (-EINVAL,
 * -EEXIST, -E2BIG) rolls the whole batch back at once; every later write
 * then returns the same error, and this call returns it too (and clears
 * it), so a batch with a hole in it is never committed together with its
 * Kafka offsets.  The next write after that starts a fresh batch. */
int store_batch_commit(struct store *s, char *errbuf, size_t errbuf_size);

/* Roll back the open batch (and forget a failed one). */
void store_batch_abort(struct store *s);

/* ---- reads --------------------------------------------------------------- */

/* The stored next offset for (topic, partition): 0 and *ret_found = false
 * when none was stored. */
int store_offset_get(struct store *s, const char *topic, int32_t partition,
		     int64_t *ret_next_offset, bool *ret_found, char *errbuf,
		     size_t errbuf_size);

/* One series' current state, as handed to store_restore's callback.  The
 * pointers are valid during the callback only. */
struct store_restored {
	const char *series;
	uint64_t version; /* per-series number of the current version */
	int64_t version_id;
	int64_t last_ts;
	const float *adapter; /* NULL when status != 0 */
	size_t adapter_len;
	int status; /* 0, or -EBADMSG when the checksum failed */
};

/* Return nonzero from the callback to stop early (store_restore returns
 * it). */
typedef int (*store_restore_fn)(void *user, const struct store_restored *r);

/*
 * Hand the current adapter of every series (or of those whose key is
 * series, when not NULL) to fn, checksum verified.  A series whose blob
 * fails the check is reported with status -EBADMSG and the walk goes on;
 * *ret_bad (may be NULL) counts them.
 */
int store_restore(struct store *s, const char *series, store_restore_fn fn,
		  void *user, size_t *ret_bad, char *errbuf,
		  size_t errbuf_size);

/*
 * A series' recent values (the engine's ring, oldest first) and where it
 * stands: saved at a clean stop so the next start forecasts at once.
 */
struct store_recent {
	const char *series;
	int64_t last_ts, step, position, since_adapt;
	uint64_t adaptations;
	const float *values;
	size_t count;
	int status; /* store_recent_take: 0, or -EBADMSG (checksum) */
};

/* Save r in the open batch (one row per series, replacing an older one);
 * the caller commits with store_batch_commit. */
int store_recent_put(struct store *s, const struct store_recent *r,
		     char *errbuf, size_t errbuf_size);

/*
 * Hand every saved series_recent row to fn (a row whose blob fails its
 * checksum comes with status -EBADMSG and no values) and delete them all,
 * in one transaction of its own: called at start, before anything is
 * applied, so a crash later on finds none.  *ret_n (may be NULL) counts
 * the rows.  A nonzero return from fn stops the walk; nothing is deleted
 * then and that value is returned.
 */
typedef int (*store_recent_fn)(void *user, const struct store_recent *r);
int store_recent_take(struct store *s, store_recent_fn fn, void *user,
		      size_t *ret_n, char *errbuf, size_t errbuf_size);

/* Audit rows of one series (NULL: all), with ts >= since, oldest first.
 * Stop early by returning nonzero from fn. */
typedef int (*store_event_fn)(void *user, const struct store_event *ev);
int store_history(struct store *s, const char *series, int64_t since,
		  store_event_fn fn, void *user, char *errbuf,
		  size_t errbuf_size);

/* One version row as read back (pointers valid during the callback). */
struct store_version {
	int64_t id;
	const char *series;
	uint64_t number;
	int64_t parent_id;     /* 0 for the initial version or when pruned */
	int64_t parent_number; /* -1 for the initial version */
	int64_t model_id;      /* 0 when none registered */
	int64_t ts;	       /* series time it was created at */
	int64_t created_at;    /* wall-clock ms */
	const char *reason;    /* init|ttt|drift|rollback|reset|manual */
	const char *note;      /* free text (rollback reason, ...) or "" */
	float loss_before, loss_after, guard_before, guard_after;
	size_t adapter_len; /* floats */
	uint32_t checksum;  /* crc32 of the blob bytes */
	bool current;
};
typedef int (*store_version_fn)(void *user, const struct store_version *v);

/* Versions of one series, oldest first.  -ENOENT for an unknown series;
 * fn may be NULL to check only that. */
int store_versions(struct store *s, const char *series, store_version_fn fn,
		   void *user, char *errbuf, size_t errbuf_size);

/* ---- rollback and the control table ------------------------------------- */

struct store_rollback_target {
	bool by_time;	 /* false: number; true: the version current at `at` */
	uint64_t number; /* per-series version number */
	int64_t at;	 /* series time */
};

struct store_rollback_result {
	char series[STORE_KEY_MAX];
	uint64_t from_version; /* current before */
	uint64_t restored;     /* the version whose content was restored */
	uint64_t new_version;  /* the new version (content = restored) */
	float *adapter;	       /* new version's adapter, owned by the store
				* until its next rollback call */
	size_t adapter_len;
	bool via_daemon; /* applied by a running daemon */
};

/*
 * Roll series back: a new version whose content is the target's (checksum
 * verified), whose parent is the current version and whose number is the
 * current + 1, plus a STORE_EV_MANUAL audit event carrying reason; all in
 * one transaction (an open batch is committed first).  Nothing is deleted.
 * The current version is a valid target (its content is re-installed).
 * Refuses (-EINVAL, with the reason) a number that does not exist for the
 * series (even if it exists for another), a time before the first version;
 * -ENOENT for an unknown series; -EBADMSG when the target blob is corrupt.
 */
int store_rollback(struct store *s, const char *series,
		   const struct store_rollback_target *t, const char *reason,
		   struct store_rollback_result *ret, char *errbuf,
		   size_t errbuf_size);

/*
 * What `driftcast rollback` calls.  When no daemon holds the database's
 * lock ("<path>.lock"), performs store_rollback() itself (holding the lock
 * meanwhile).  Otherwise it validates the target, leaves a request in the
 * sidecar database "<path>.control" (its own small SQLite file, so the
 * request never waits for the main database's write lock, which a busy
 * daemon holds batch after batch) and waits up to timeout_ms for the
 * daemon to apply it (ret->via_daemon = true, ret->adapter = NULL); on
 * timeout the request is cancelled and -ETIMEDOUT returned.
 */
int store_rollback_request(struct store *s, const char *series,
			   const struct store_rollback_target *t,
			   const char *reason, int timeout_ms,
			   struct store_rollback_result *ret, char *errbuf,
			   size_t errbuf_size);

/*
 * The daemon's side, cheap enough to call every 250 ms: returns 0 when no
 * request is pending (one PRAGMA data_version on the sidecar when nothing
 * changed), or 1 after applying the oldest pending request with
 * store_rollback() (an open batch is committed first); the request is
 * recorded in the main database's control table in the rollback's own
 * transaction, then acknowledged in the sidecar (a request applied just
 * before a crash is recognised and only acknowledged).  *ret then says what
 * to load into the engine (series, new_version, adapter).  A refused
 * request is acknowledged as failed and the error returned (negative), so
 * the caller logs it and polls again.
 */
int store_control_poll(struct store *s, struct store_rollback_result *ret,
		       char *errbuf, size_t errbuf_size);

/* ---- retention ------------------------------------------------------------
 */

struct store_retention {
	int keep_versions; /* keep at least the last N versions per series */
	int keep_days;	   /* and everything younger than this */
	int batch;	   /* delete at most this many rows per call */
};

/*
 * Delete, in one short transaction of at most r->batch rows, versions that
 * are neither among the last keep_versions of their series, nor younger
 * than keep_days, nor current; and forecasts and realised errors older than
 * keep_days.  Audit rows are never deleted.  now_ms is wall-clock ms.
 * keep_days = 0 turns retention off (nothing is old enough to go).
 * *ret_deleted gets the number of rows removed; *ret_more (may be NULL) is
 * true while the pass over the versions has not reached the end, i.e.
 * while another call right away may find more.  An open batch is
 * committed first.
 */
int store_prune(struct store *s, const struct store_retention *r,
		int64_t now_ms, size_t *ret_deleted, bool *ret_more,
		char *errbuf, size_t errbuf_size);

/* ---- helpers ----------------------------------------------------------------
 */

/* Wall clock in epoch ms (what created_at holds). */
int64_t store_now_ms(void);

/* Epoch seconds ts as UTC "YYYY-MM-DDTHH:MM:SSZ" into buf (the number
 * itself when out of range): how series times are shown to people. */
void store_format_time(int64_t ts, char *buf, size_t n);

#endif
