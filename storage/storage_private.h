/*
 * storage internals shared by the storage sources and the storage tests
 * (never included outside storage/ and tests/storage/): the definition of
 * struct store and the helpers the pieces call across files.
 *
 *   open.c        open, migrate, close
 *   checkpoint.c  the daemon's background WAL checkpointer
 *   db.c          errno mapping, the statement cache, checksums, times
 *   write.c       batches and the write path (events, versions, offsets)
 *   read.c        restore, recent values, history, versions
 *   handover.c    series and their input partitions, moves between hosts
 *   rollback.c    operator rollbacks (one transaction each)
 *   control.c     the rollback handshake with a running daemon
 *   retention.c   retention: pruning old versions, forecasts, errors
 *   schema.c      the migrations; sql_private.h the statements
 */
#ifndef DRIFTCAST_STORAGE_PRIVATE_H
#define DRIFTCAST_STORAGE_PRIVATE_H

#include "storage/sql_private.h"
#include "storage/storage.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>

#define STORE_APPLICATION_ID 1148347508 /* 0x44726674, "Drft" */

/* Series time is ns from schema 7; a read-only open of an older file
 * (not migrated) holds seconds, which reads convert (store_ts_read) and
 * queries compare in (store_ts_query). */
#define STORE_SCHEMA_NS 7
/* forecasts.value (the value observed at the origin) from schema 8 */
#define STORE_SCHEMA_VALUE 8
/* series_recent has the published average */
#define STORE_SCHEMA_AVERAGE 10
/* versions have the published average */
#define STORE_SCHEMA_VERSION_AVERAGE 11
/* series_recent has the recalibration's state */
#define STORE_SCHEMA_RECAL 12
#define STORE_NS	   1000000000

struct store {
	sqlite3 *db;
	char path[PATH_MAX];
	struct store_options opts;
	sqlite3_stmt *stmt[SQ__COUNT]; /* prepared on first use (store_prep) */
	int schema;
	int attached; /* databases ATTACHed as dc1.. (storage/fleet.c) */
	char renamed[PATH_MAX + 64];
	int lock_fd;	 /* daemon lock on "<path>.lock", or -1 */
	int64_t busy_ms; /* opts.on_busy last called (CLOCK_MONOTONIC) */

	int64_t model_id; /* base model of new rows, 0 = none */

	bool in_batch;
	size_t batch_rows;
	int64_t batch_start_ms; /* CLOCK_MONOTONIC */

	int degraded; /* 0 or the negative errno of the last failed write */
	/* A write of the open batch failed and it was rolled back: later
	 * writes are refused with this error until the caller learns it from
	 * store_batch_commit() (or drops it with store_batch_abort()), so a
	 * batch is never committed with a hole in it. */
	int poisoned;
	char degraded_msg[PATH_MAX + 512];

	sqlite3 *ctl; /* the request sidecar, opened on first use */
	sqlite3_stmt *cstmt[CQ__COUNT];
	int64_t control_dv; /* sidecar data_version at the last empty poll */
	bool control_dv_valid;

	float *buf; /* blob copies (restore), grown as needed */
	size_t buf_cap;
	uint16_t *abuf; /* a published average's copy (recent values) */
	size_t abuf_cap;
	uint16_t *vbuf; /* the same of a restored version */
	size_t vbuf_cap;
	void *rbuf; /* a recalibration's state (recent values) */
	size_t rbuf_cap;
	float *rb_adapter; /* the last rollback result's adapter */
	size_t rb_cap;
	uint16_t *rb_average; /* and its published average */
	size_t rb_average_cap;

	int64_t prune_cursor; /* last version id scanned by store_prune */

	/* daemon: the background checkpointer (see store_ckpt_start) */
	bool ckpt_running, ckpt_stop;
	pthread_t ckpt_thread;
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	sqlite3 *ckpt_db;
};

/* ---- schema.c ------------------------------------------------------------ */

/* The SQL of migration `version` (1-based), or NULL. */
const char *store_migration_sql(int version);

/* Whether migration `version` edits sqlite_schema directly (writable_schema):
 * the migration then also increments PRAGMA schema_version, and the
 * connection is reopened after it, since SQLite does not reload the schema
 * of the connection that made such an edit. */
bool store_migration_edits_schema(int version);

/* Schema version of the open file. */
int store_schema_version(const struct store *s);
/* Rows written in the open batch. */
size_t store_batch_rows(const struct store *s);

/* ---- db.c: errors, statements, blobs ------------------------------------- */

extern const char *const store_sql_text[SQ__COUNT];

/* Write the message to errbuf (when not NULL) and return r. */
int store_set_err(char *errbuf, size_t errbuf_size, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A SQLite result code as a negative errno (0 for OK, ROW, DONE). */
int store_errno_from_sqlite(int rc);
/* The one place SQLite codes become errno values with a message. */
int store_db_fail(struct store *s, int rc, char *errbuf, size_t errbuf_size,
		  const char *what);

int64_t store_mono_ms(void); /* CLOCK_MONOTONIC in ms */

/* Prepare sql into *slot on its first use; the statement lives until the
 * connection closes.  Returns a SQLite code. */
int store_prepare_once(sqlite3 *db, const char *sql, sqlite3_stmt **slot);
/* The cached statement q of the main database (owned by s). */
int store_prep(struct store *s, enum sq q, sqlite3_stmt **ret, char *errbuf,
	       size_t errbuf_size);
/* Run statement q, which returns no rows. */
int store_step_done(struct store *s, enum sq q, char *errbuf,
		    size_t errbuf_size, const char *what);
/* Step a bound statement that writes one row of the batch, and reset it. */
int store_step_row(struct store *s, sqlite3_stmt *st, const char *what,
		   char *errbuf, size_t errbuf_size);

static inline void reset_stmt(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* Whether version number, of adapter_len floats, is the base adapter --
 * version 0, or a version stored empty (store_model_reset's) -- which
 * belongs to every base model. */
static inline bool store_base_adapter(uint64_t number, int64_t adapter_len)
{
	return number == 0 || adapter_len == 0;
}

/* crc32 of n bytes: what the checksum columns hold. */
uint32_t store_checksum(const void *p, size_t n);
/* What identifies a base model in models.checksum: a 64-bit hash of the
 * file's bytes, always negative.  Rows registered before it hold the
 * CRC-32 of the file (0 .. 2^32 - 1), the same for every model file of a
 * size, since a file that ends with its own CRC-32 -- as a model file does
 * -- has a constant one: store_model_register gives such a row the hash
 * when this file is its stored bytes; the others stay ambiguous (their
 * versions' model is read as not recorded). */
int64_t store_model_hash(const void *p, size_t n);
/* Copy the float blob of column col_blob into *buf (grown as needed) and
 * verify it against its stored length and checksum.  Returns 0, -EBADMSG
 * or -ENOMEM. */
int store_blob_copy(sqlite3_stmt *st, int col_blob, int col_len, int col_crc,
		    float **buf, size_t *cap, size_t *ret_len);
/* A blob of units of `unit` bytes that may be NULL (*ret_len 0) and whose
 * length is its size, verified against its checksum, into *buf (grown as
 * needed; *cap and *ret_len in units).  0, -EBADMSG or -ENOMEM. */
int store_units_copy(sqlite3_stmt *st, int col_blob, int col_crc, size_t unit,
		     void **buf, size_t *cap, size_t *ret_len);
/* The same for a half-precision blob (a published average). */
int store_halves_copy(sqlite3_stmt *st, int col_blob, int col_crc,
		      uint16_t **buf, size_t *cap, size_t *ret_len);
/* -EINVAL (with the reason, naming `what`) for an empty or too long key. */
int store_check_key(const char *key, const char *what, char *errbuf,
		    size_t errbuf_size);

/* Test hook: run sql on the store's connection (e.g. PRAGMA
 * max_page_count to simulate a full disk).  Returns 0 or a negative errno
 * with sqlite's message in errbuf. */
int store_debug_exec(struct store *s, const char *sql, char *errbuf,
		     size_t errbuf_size);

/* ---- read.c: shared by query.c ------------------------------------------ */

/* Column i as a float, NAN for NULL. */
float store_col_float(sqlite3_stmt *st, int i);
/* enum store_event_type of a stored name, -1 when unknown. */
int store_event_type_parse(const char *name);
/* Step st, a bound HISTORY_* statement, to fn (store_history's rows). */
int store_history_rows(struct store *s, sqlite3_stmt *st, store_event_fn fn,
		       void *user, char *errbuf, size_t errbuf_size);
/* Step st, a bound VERSIONS statement of series, to fn. */
int store_version_rows(struct store *s, sqlite3_stmt *st, const char *series,
		       store_version_fn fn, void *user, char *errbuf,
		       size_t errbuf_size);

/* ---- checkpoint.c -------------------------------------------------------- */

int store_ckpt_start(struct store *s, char *errbuf, size_t errbuf_size);
void store_ckpt_stop(struct store *s); /* no-op when not running */

/* ---- write.c: batches and rows --------------------------------------------
 */

/* Open a batch explicitly (BEGIN IMMEDIATE).  No-op if one is open. */
int store_batch_begin(struct store *s, char *errbuf, size_t errbuf_size);
/* A write in the batch failed: roll the batch back, go degraded; returns
 * r. */
int store_batch_fail(struct store *s, int r, char *errbuf, size_t errbuf_size);
/* Errors that leave the batch usable: bad input, refused duplicates. */
bool store_batch_survives(int r);

struct series_row {
	int64_t id;
	int64_t cur_id; /* 0 when no version yet */
	int64_t cur_number;
	int64_t last_ts;
	bool has_last_ts;
};

/* Look the series up; with create, insert it when missing.  Returns
 * -ENOENT when missing and !create. */
int store_series_get(struct store *s, const char *key, bool create,
		     struct series_row *ret, char *errbuf, size_t errbuf_size);

struct version_new {
	const char *reason;
	const char *note;
	int64_t restored_from; /* -1 = none */
	int64_t ts;
	uint64_t number;
	float loss_before, loss_after, guard_before, guard_after;
	const float *adapter;
	size_t adapter_len;
	const uint16_t *average; /* published from it on; NULL: none */
	size_t average_len;
	/* the parent as given (id 0: not here; number -1: none), not the
	 * series' current version */
	bool parent_given;
	int64_t parent_id, parent_number;
};

/* Insert a version as the series' new current one (sr is updated). */
int store_version_insert(struct store *s, struct series_row *sr,
			 const struct version_new *v, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size);
int store_version_exists(struct store *s, int64_t series_id, uint64_t number,
			 bool *ret, char *errbuf, size_t errbuf_size);
int store_audit_insert(struct store *s, int64_t series_id,
		       const struct store_event *ev, char *errbuf,
		       size_t errbuf_size);

/* ---- read.c: the walks shared with handover.c ---------------------------
 * Step st (prepared and bound; reset after) and hand each row to fn as
 * store_restore / store_recent_take do. */
int store_restore_walk(struct store *s, sqlite3_stmt *st, store_restore_fn fn,
		       void *user, size_t *ret_bad, char *errbuf,
		       size_t errbuf_size);
int store_recent_walk(struct store *s, sqlite3_stmt *st, store_recent_fn fn,
		      void *user, size_t *ret_n, char *errbuf,
		      size_t errbuf_size);
/* store_recent_take with the statements walk and clear, each bound to
 * bind as ?1 (INT_MIN: not bound), in the open batch; committed when
 * commit is true (else left to the caller: a failed read or fn stopping
 * leaves the batch as it was, a failed deletion fails it). */
int store_recent_take_q(struct store *s, enum sq walk, enum sq clear, int bind,
			bool commit, store_recent_fn fn, void *user,
			size_t *ret_n, char *errbuf, size_t errbuf_size);

/* ---- rollback.c and control.c ----------------------------------------------
 */

struct target_row {
	int64_t id;
	uint64_t number;
	size_t adapter_len; /* floats, copied into s->rb_adapter */
	size_t average_len; /* its published average, into s->rb_average */
	int average_status; /* -EBADMSG: the average failed its checksum */
	int64_t model_id;   /* the base model it was made with, 0: unknown */
};

/* An operator request read from the sidecar. */
struct ctl_req {
	int64_t id;
	int64_t created_at;
	char series[STORE_KEY_MAX];
	struct store_rollback_target t;
	char reason[STORE_REASON_MAX];
};

/* Find and verify the target version of a rollback; its adapter goes to
 * s->rb_adapter.  A version made with another base model than the series
 * runs (the one registered here, else its current version's) is refused
 * with -EXDEV: it does not cross from one model to another. */
int store_resolve_target(struct store *s, const char *series,
			 const struct store_rollback_target *t,
			 struct series_row *ret_sr, struct target_row *ret,
			 char *errbuf, size_t errbuf_size);
/* store_rollback(), and with a request q its record in the control table,
 * in one transaction. */
int store_rollback_one(struct store *s, const char *series,
		       const struct store_rollback_target *t,
		       const char *reason, const struct ctl_req *q,
		       struct store_rollback_result *ret, char *errbuf,
		       size_t errbuf_size);
/* Errors that refuse the request itself (acknowledged as failed). */
bool store_rollback_refused(int r);

/* Record an applied request in the main database (same transaction as its
 * rollback). */
int store_control_record(struct store *s, const struct ctl_req *q,
			 const struct store_rollback_result *res,
			 const char *result, char *errbuf, size_t errbuf_size);
void store_ctl_close(struct store *s); /* the sidecar, if open */

static inline int64_t store_ts_read(const struct store *s, int64_t v)
{
	return s->schema < STORE_SCHEMA_NS ? v * STORE_NS : v;
}

static inline int64_t store_ts_query(const struct store *s, int64_t ns)
{
	if (s->schema >= STORE_SCHEMA_NS)
		return ns;
	/* the whole seconds at or after ns */
	return ns / STORE_NS + (ns > 0 && ns % STORE_NS != 0);
}

/* store_ts_query for an upper bound: the whole seconds at or before ns */
static inline int64_t store_ts_query_until(const struct store *s, int64_t ns)
{
	if (s->schema >= STORE_SCHEMA_NS)
		return ns;
	return ns / STORE_NS - (ns < 0 && ns % STORE_NS != 0);
}

#endif
