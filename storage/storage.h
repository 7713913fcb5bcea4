/*
 * storage: the SQLite database of a deployment -- migrations, base models,
 * immutable adapter versions with parents, the append-only audit log,
 * forecasts, realised errors, Kafka offsets, retention, operator rollbacks.
 *
 * SQLite (and zlib's crc32) only; no logging, never exits: functions
 * return 0 or a negative errno, results go through ret_ out-parameters
 * untouched on failure, and errbuf (when not NULL) gets one line of text.
 * -ENOENT no such database, series or version; -EROFS, -EACCES the file or
 * its directory is not writable; -ENOTRECOVERABLE not a (driftcast) SQLite
 * database, or corrupt; -EPROTONOSUPPORT written by a newer driftcast;
 * -ENOSPC disk (or max_page_count) full; -EBADMSG a blob fails its
 * checksum; -EBUSY locked beyond busy_timeout; -EINVAL bad argument or
 * refused rollback target; -EIO any other SQLite failure.
 *
 * `ts` is series time (epoch ns, schema 7), `created_at` wall clock (epoch ms).
 * Versions count per series as the engine assigns them (0 = initial adapter).
 *
 * A struct store is one SQLite connection, for one thread at a time; other
 * processes may read the file meanwhile (WAL), writers wait busy_timeout.
 */
#ifndef DRIFTCAST_STORAGE_H
#define DRIFTCAST_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 12	 /* the latest, PRAGMA user_version */
#define STORE_KEY_MAX	     256 /* keys, topics: bytes with the NUL */
#define STORE_REASON_MAX     512 /* rollback reasons, likewise */
struct store;

/* ---- open / close ------------------------------------------------------ */

struct store_options {
	/* Never creates or migrates.  In a directory it cannot write, a WAL
	 * file without a -wal file is opened immutable (nobody can write). */
	bool read_only;
	/* Rename a corrupt or non-SQLite file (and -wal/-shm) aside to
	 * "<path>.corrupt-<UTC time>" (store_renamed_path) and start afresh;
	 * off: -ENOTRECOVERABLE. */
	bool rename_corrupt;
	bool check; /* PRAGMA quick_check at open: O(size) */
	/* The running daemon: an exclusive flock on "<path>.lock" (or -EBUSY)
	 * makes `driftcast rollback` ask it (store_control_poll). */
	bool daemon;
	int busy_timeout_ms; /* 0 = 5000 */
	int batch_rows;	     /* store_batch_due(): rows per batch, 0 = 1000 */
	int batch_ms;	     /* store_batch_due(): ms per batch, 0 = 200 */
	int target_schema;   /* tests, tools: migrate only this far (0 = all) */
	void (*on_busy)(void); /* ~1/s in a long open (check, migrate) */
};

/* Open (creating it unless read_only) and migrate the database at path
 * (opts NULL: defaults); *ret is the caller's (store_free).  A committed
 * batch survives power loss (WAL, synchronous=FULL).  -EROFS, -EACCES: a
 * caller may retry read_only and run without persistence. */
int store_open(const char *path, const struct store_options *opts,
	       struct store **ret, char *errbuf, size_t errbuf_size);
void store_free(struct store *s); /* commits (best effort); accepts NULL */
/* Where store_open renamed a corrupt file to ("" when it did not); s's. */
const char *store_renamed_path(const struct store *s);
/* 0 when healthy; else, from a failed write (its batch rolled back) until
 * a later commit succeeds, its negative errno with the text in errbuf. */
int store_degraded(const struct store *s, char *errbuf, size_t errbuf_size);
/* Register a base model, idempotent by checksum of bytes (report may be
 * NULL), as the model of what s writes next; commits (an open batch too). */
int store_model_register(struct store *s, const char *name,
			 const char *config_text, const void *bytes,
			 size_t nbytes, const char *report, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size);

/* ---- records ------------------------------------------------------------- */

/* The values of enum ttt_event_type up to REJECTED_VALUE, then storage's
 * own; store_trigger mirrors enum ttt_trigger up to FALLBACK
 * (daemon/record.c asserts), then storage's own. */
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

enum store_trigger {
	STORE_TRIGGER_NONE = 0,
	STORE_TRIGGER_SCHEDULE,
	STORE_TRIGGER_DRIFT,
	STORE_TRIGGER_SHADOW,
	STORE_TRIGGER_MANUAL,
	STORE_TRIGGER_FALLBACK, /* a reset: the series kept failing */
	/* storage's own: a reset because the versions were made with another
	 * base model (store_model_reset) */
	STORE_TRIGGER_MODEL,
	STORE_TRIGGER__COUNT
};

/* Stored names ("adapt_accepted", ...): static strings, "?" if unknown. */
const char *store_event_type_name(int type);
const char *store_trigger_name(int trigger);
/* One engine event (the stored fields of struct ttt_event).  Pointers are
 * borrowed for the call, or valid during the callback of a read. */
struct store_event {
	int type;    /* enum store_event_type */
	int trigger; /* enum store_trigger */
	const char *series;
	int64_t ts;
	uint64_t version_from, version_to;
	int steps;
	float loss_before, loss_after, guard_before, guard_after;
	float update_norm, adapted_error, shadow_error;
	const char *reason;
	const float *forecast; /* STORE_EV_FORECAST: [horizon] */
	int horizon;
	const float *adapter; /* a new version's adapter block, or NULL */
	size_t adapter_len;   /* floats */
	/* with it, the average published from it on (ttt_event), or NULL */
	const uint16_t *average;
	size_t average_len;
	/* Stored only for the types named (NULL in the other audit rows): */
	int64_t data_from, data_until; /* ADAPT_*: data window used */
	float value;		       /* REJECTED_VALUE, FORECAST: value */
	int filled;		       /* GAP_FILLED: points filled */
	float detector_stat;	       /* DRIFT: statistic that fired */
	uint64_t version_restored;     /* ROLLBACK: the version it repeats */
	int64_t created_at, id;	       /* reads: wall-clock ms, audit row id */
};

/* ---- the write path: batches ---------------------------------------------
 * Writes go into the open batch (one transaction; the first write opens
 * it).  Only after store_batch_commit() may the caller commit the Kafka
 * offsets it recorded with store_offset_put(). */

/* The event of a version no adaptation made (an initial adapter, an
 * operator's rollback, a change of base model): no losses, norms or
 * errors (NULL in the audit row). */
struct store_event store_event_unmeasured(int type, int trigger,
					  const char *series, int64_t ts,
					  uint64_t from, uint64_t to,
					  const char *note);

/* FORECAST: a forecast row (ts its origin, by version_to), idempotent by
 * (series, origin).  Other types: an audit row and, with an adapter, a new
 * version version_to whose parent is the series' current one (none for
 * version 0 of a new series), which becomes current; a number the series
 * has is -EEXIST (the batch stays usable).  Creates the series row. */
int store_event_put(struct store *s, const struct store_event *ev, char *errbuf,
		    size_t errbuf_size);
/* A realised error of the forecast issued at origin_ts by version. */
int store_error_put(struct store *s, const char *series, int64_t origin_ts,
		    uint64_t version, float adapted_error, float shadow_error,
		    char *errbuf, size_t errbuf_size);
/* Last timestamp seen and status word ("active", ...; NULL keeps it). */
int store_series_put(struct store *s, const char *series, int64_t last_ts,
		     const char *status, char *errbuf, size_t errbuf_size);
/* The next Kafka offset to consume (last applied + 1). */
int store_offset_put(struct store *s, const char *topic, int32_t partition,
		     int64_t next_offset, char *errbuf, size_t errbuf_size);
/* Whether to commit now: opts.batch_rows written or opts.batch_ms elapsed
 * since the batch opened (now_ms: CLOCK_MONOTONIC ms). */
bool store_batch_due(const struct store *s, int64_t now_ms);
/* Commit the open batch (no-op when none).  On failure it is rolled back
 * (none of its rows or offsets exist), the store degraded.  A write failing
 * other than by refusing its input (-EINVAL, -EEXIST, -E2BIG) rolls the
 * batch back at once; later writes and this call (clearing it) return its
 * error, so a batch with a hole never commits its offsets. */
int store_batch_commit(struct store *s, char *errbuf, size_t errbuf_size);
void store_batch_abort(struct store *s); /* also forgets a failed batch */

/* ---- reads: what a callback gets is valid during the callback only; a
 * nonzero return stops the walk and is returned. */

/* The step of series' saved recent values (series time, ns): what the
 * engine learnt; -ENOENT when none is saved (an eval database, a series
 * never forecast). */
int store_series_step(struct store *s, const char *series, int64_t *ret_step,
		      char *errbuf, size_t errbuf_size);

/* The stored next offset; 0 and *ret_found = false when none. */
int store_offset_get(struct store *s, const char *topic, int32_t partition,
		     int64_t *ret_next_offset, bool *ret_found, char *errbuf,
		     size_t errbuf_size);
struct store_restored {
	const char *series;
	uint64_t version; /* per-series number of the current version */
	int64_t version_id, last_ts;
	const float *adapter; /* NULL when status != 0 */
	size_t adapter_len;
	int status; /* 0, or -EBADMSG when the checksum failed */
	/* The average published from it (store_event), NULL: none, or
	 * average_status -EBADMSG: it failed its checksum (left out). */
	const uint16_t *average;
	size_t average_len;
	int average_status;
	/* The base model the version was made with (models.id): its
	 * adapter corrects that model's forecasts only.  0 when not recorded,
	 * or when the version is the base adapter (version 0 or stored
	 * empty), which belongs to every model. */
	int64_t model_id;
};

typedef int (*store_restore_fn)(void *user, const struct store_restored *r);
/* The current adapter of every series (or of series) to fn; *ret_bad (may
 * be NULL) counts those failing their checksum. */
int store_restore(struct store *s, const char *series, store_restore_fn fn,
		  void *user, size_t *ret_bad, char *errbuf,
		  size_t errbuf_size);
/* A series' recent values (the engine's ring, oldest first) and where it
 * stands, saved with every batch that changed it so the next start (clean
 * or after a crash) forecasts at once. */
struct store_recent {
	const char *series;
	int64_t last_ts, step, position, since_adapt;
	uint64_t adaptations;
	const float *values;
	size_t count;
	int status; /* store_recent_take: 0, or -EBADMSG (no values) */
	/* The published average (ttt_recent), NULL: none; reading, a
	 * checksum mismatch drops it with average_status -EBADMSG. */
	const uint16_t *average;
	size_t average_len;
	uint64_t average_version;
	int average_status;
	/* The recalibration's state (ttt_recent), NULL: none; reading, a
	 * checksum mismatch drops it with recal_status -EBADMSG. */
	const void *recal;
	size_t recal_len;
	int recal_status;
};

/* Save r in the open batch (replaces the series' older row). */
int store_recent_put(struct store *s, const struct store_recent *r,
		     char *errbuf, size_t errbuf_size);
/* At start: every saved row to fn, then all deleted in one transaction of
 * its own (a later crash finds none; when fn stops, none is deleted);
 * *ret_n (may be NULL) counts them. */
typedef int (*store_recent_fn)(void *user, const struct store_recent *r);
int store_recent_take(struct store *s, store_recent_fn fn, void *user,
		      size_t *ret_n, char *errbuf, size_t errbuf_size);
/* Audit rows of one series (NULL: all) with ts >= since, oldest first. */
typedef int (*store_event_fn)(void *user, const struct store_event *ev);
int store_history(struct store *s, const char *series, int64_t since,
		  store_event_fn fn, void *user, char *errbuf,
		  size_t errbuf_size);
struct store_version {
	int64_t id;
	const char *series;
	uint64_t number;
	int64_t parent_id;	/* 0 for the initial version or when pruned */
	int64_t parent_number;	/* -1 for the initial version */
	int64_t model_id;	/* 0 when none registered */
	int64_t ts, created_at; /* series time; wall-clock ms */
	const char *reason;	/* init|ttt|drift|rollback|reset|manual */
	const char *note;	/* free text (rollback reason, ...) or "" */
	float loss_before, loss_after, guard_before, guard_after;
	size_t adapter_len; /* floats */
	uint32_t checksum;  /* crc32 of the blob bytes */
	bool current;
};

typedef int (*store_version_fn)(void *user, const struct store_version *v);
/* Versions of one series, oldest first; -ENOENT for an unknown series (fn
 * may be NULL to check only that). */
int store_versions(struct store *s, const char *series, store_version_fn fn,
		   void *user, char *errbuf, size_t errbuf_size);

/* ---- rollback and the control table -------------------------------------- */

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
	float *adapter;	       /* owned by the store until its next rollback */
	size_t adapter_len;
	/* The average the restored version published (ttt_event.average;
	 * owned likewise), given to the engine with the adapter so that the
	 * series publishes what it published then; NULL: none stored (the
	 * version itself, or a version made before schema 11). */
	uint16_t *average;
	size_t average_len;
	bool average_damaged; /* it failed its checksum: left out */
	bool via_daemon;      /* applied by a running daemon */
};

/* A new version with the target's content (checksum verified; the current
 * version is a valid target), parent the current one, number current + 1,
 * and a STORE_EV_MANUAL audit row with reason, in one transaction (an open
 * batch is committed first); nothing is deleted.  -EINVAL with the reason
 * for a number the series lacks or a time before its first version. */
int store_rollback(struct store *s, const char *series,
		   const struct store_rollback_target *t, const char *reason,
		   struct store_rollback_result *ret, char *errbuf,
		   size_t errbuf_size);
/* `driftcast rollback`: store_rollback() if no daemon holds the lock, else
 * a checked request left in "<path>.control" for it, awaited timeout_ms
 * (ret->via_daemon, no adapter), then cancelled: -ETIMEDOUT. */
int store_rollback_request(struct store *s, const char *series,
			   const struct store_rollback_target *t,
			   const char *reason, int timeout_ms,
			   struct store_rollback_result *ret, char *errbuf,
			   size_t errbuf_size);
/* The daemon's side, cheap enough for every 250 ms: 0 when nothing is
 * pending; 1 after applying the oldest request (store_rollback, once even
 * across a crash), *ret saying what to load into the engine.  A refused request
 * is acknowledged as failed and its error returned: log it and poll again.
 * -EAGAIN, nothing done, while a batch is open (or failed and not yet
 * committed): make it durable first, then poll again. */
int store_control_poll(struct store *s, struct store_rollback_result *ret,
		       char *errbuf, size_t errbuf_size);

/* ---- retention ----------------------------------------------------------- */

struct store_retention {
	int keep_versions; /* keep at least the last N versions per series */
	int keep_days;	   /* and everything younger; 0 = retention off */
	int batch;	   /* delete at most this many rows per call */
};

/* Delete, in one transaction of at most r->batch rows (an open batch is
 * committed first), versions neither current, among the last keep_versions
 * nor younger than keep_days (now_ms: wall clock), and older forecasts and
 * errors; never audit rows.  *ret_more (may be NULL): call again at once. */
int store_prune(struct store *s, const struct store_retention *r,
		int64_t now_ms, size_t *ret_deleted, bool *ret_more,
		char *errbuf, size_t errbuf_size);

/* ---- helpers ------------------------------------------------------------- */

/* Wall clock in epoch ms (what created_at holds). */
int64_t store_now_ms(void);

/* Epoch ns ts as UTC "YYYY-MM-DDTHH:MM:SS[.fraction]Z" into buf (the
 * number itself when out of range): how series times are shown to people. */
void store_format_time(int64_t ts, char *buf, size_t n);

#include "storage/query.h" /* the reads of plot, series, status */
#endif
