/*
 * The SQLite store: open and migrate, the batched write path, restore,
 * history and version reads, rollback with its control-table handshake,
 * and retention.
 *
 * Every statement is a named constant string below, prepared once on first
 * use and cached in s->stmt[]; each use binds, steps and resets it before
 * returning (reset_stmt() at the one `out:` label of each function).
 *
 * Write failures never abort: a failed statement or commit rolls the batch
 * back, the store goes degraded (store_degraded) and the error is returned,
 * so the daemon keeps forecasting and does not commit Kafka offsets.
 */
#include "storage/storage.h"
#include "storage/storage_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

/* ---- SQL ----------------------------------------------------------------- */

/* The first read of a file: "not a database" shows up here. */
static const char SQL_PROBE[] = "SELECT count(*) FROM sqlite_master";
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

static const char SQL_SERIES_GET[] =
    "SELECT id, current_version_id, current_version, last_ts "
    "FROM series WHERE key = ?1";
static const char SQL_SERIES_INSERT[] =
    "INSERT INTO series (key, model_id, created_at) VALUES (?1, ?2, ?3)";
static const char SQL_SERIES_INSERT_NEW[] =
    "INSERT INTO series (key, model_id, created_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (key) DO NOTHING";
static const char SQL_SERIES_SET_CURRENT[] =
    "UPDATE series SET current_version_id = ?2, current_version = ?3, "
    "last_ts = max(coalesce(last_ts, ?4), ?4) WHERE id = ?1";
static const char SQL_SERIES_PUT[] =
    "UPDATE series SET last_ts = max(coalesce(last_ts, ?2), ?2), "
    "status = coalesce(?3, status) WHERE id = ?1";

static const char SQL_VERSION_INSERT[] =
    "INSERT INTO versions (series_id, number, parent_id, parent_number, "
    "model_id, ts, created_at, reason, note, restored_from, loss_before, "
    "loss_after, guard_before, guard_after, adapter, adapter_len, "
    "checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
    "?13, ?14, ?15, ?16, ?17)";
static const char SQL_VERSION_EXISTS[] =
    "SELECT 1 FROM versions WHERE series_id = ?1 AND number = ?2";
static const char SQL_VERSION_BY_NUMBER[] =
    "SELECT id, number, adapter, adapter_len, checksum FROM versions "
    "WHERE series_id = ?1 AND number = ?2";
static const char SQL_VERSION_AT[] =
    "SELECT id, number, adapter, adapter_len, checksum FROM versions "
    "WHERE series_id = ?1 AND ts <= ?2 ORDER BY id DESC LIMIT 1";
static const char SQL_VERSION_RANGE[] =
    "SELECT min(number), max(number), min(ts) FROM versions "
    "WHERE series_id = ?1";

#define AUDIT_INSERT_V1                                                       \
	"INSERT INTO audit (created_at, series_id, ts, event, triggered_by, " \
	"version_from, version_to, steps, loss_before, loss_after, "          \
	"guard_before, guard_after, update_norm, adapted_error, "             \
	"shadow_error, reason"
/* Schemas 1 and 2 (a store opened with an older target_schema) */
static const char SQL_AUDIT_INSERT_V1[] =
    AUDIT_INSERT_V1 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
		    "?11, ?12, ?13, ?14, ?15, ?16)";
static const char SQL_AUDIT_INSERT[] =
    AUDIT_INSERT_V1 ", data_from, data_until, rejected_value, gap_filled, "
		    "detector_stat, version_restored) VALUES (?1, ?2, ?3, ?4, "
		    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
		    "?17, ?18, ?19, ?20, ?21, ?22)";

static const char SQL_FORECAST_PUT[] =
    "INSERT INTO forecasts (series_id, origin_ts, horizon, vals, model_id, "
    "version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (series_id, origin_ts) DO UPDATE SET "
    "horizon = excluded.horizon, vals = excluded.vals, "
    "model_id = excluded.model_id, version = excluded.version";
static const char SQL_ERROR_PUT[] =
    "INSERT INTO errors (series_id, origin_ts, version, adapted_error, "
    "shadow_error, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
    "ON CONFLICT (series_id, origin_ts) DO UPDATE SET "
    "version = excluded.version, adapted_error = excluded.adapted_error, "
    "shadow_error = excluded.shadow_error";

static const char SQL_OFFSET_PUT[] =
    "INSERT INTO kafka_offsets (topic, partition, next_offset, updated_at) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (topic, partition) DO UPDATE SET "
    "next_offset = excluded.next_offset, updated_at = excluded.updated_at";
static const char SQL_OFFSET_GET[] = "SELECT next_offset FROM kafka_offsets "
				     "WHERE topic = ?1 AND partition = ?2";

static const char SQL_MODEL_FIND[] =
    "SELECT id FROM models WHERE checksum = ?1 AND nbytes = ?2";
static const char SQL_MODEL_INSERT[] =
    "INSERT INTO models (name, config, bytes, nbytes, checksum, report, "
    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

#define RESTORE_COLUMNS                                                      \
	"SELECT s.key, s.current_version, s.current_version_id, s.last_ts, " \
	"v.adapter, v.adapter_len, v.checksum FROM series s "                \
	"JOIN versions v ON v.id = s.current_version_id"
static const char SQL_RESTORE_ALL[] = RESTORE_COLUMNS " ORDER BY s.id";
static const char SQL_RESTORE_ONE[] = RESTORE_COLUMNS " WHERE s.key = ?1";

#define HISTORY_COLUMNS                                                       \
	"SELECT a.id, s.key, a.ts, a.event, a.triggered_by, a.version_from, " \
	"a.version_to, a.steps, a.loss_before, a.loss_after, "                \
	"a.guard_before, a.guard_after, a.update_norm, a.adapted_error, "     \
	"a.shadow_error, a.reason, a.created_at, "
#define HISTORY_FROM "FROM audit a JOIN series s ON s.id = a.series_id "
#define HISTORY_V3                                                    \
	"a.data_from, a.data_until, a.rejected_value, a.gap_filled, " \
	"a.detector_stat, a.version_restored "
/* a read-only open does not migrate: older files lack the v3 columns */
#define HISTORY_V1 "NULL, NULL, NULL, NULL, NULL, NULL "
static const char SQL_HISTORY_ALL[] = HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM
    "WHERE a.ts >= ?2 ORDER BY a.ts, a.id";
static const char SQL_HISTORY_ONE[] = HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM
    "WHERE s.key = ?1 AND a.ts >= ?2 ORDER BY a.ts, a.id";
static const char SQL_HISTORY_ALL_V1[] = HISTORY_COLUMNS HISTORY_V1 HISTORY_FROM
    "WHERE a.ts >= ?2 ORDER BY a.ts, a.id";
static const char SQL_HISTORY_ONE_V1[] = HISTORY_COLUMNS HISTORY_V1 HISTORY_FROM
    "WHERE s.key = ?1 AND a.ts >= ?2 ORDER BY a.ts, a.id";

static const char SQL_VERSIONS[] =
    "SELECT v.id, v.number, v.parent_id, v.parent_number, v.model_id, "
    "v.ts, v.created_at, v.reason, v.note, v.loss_before, v.loss_after, "
    "v.guard_before, v.guard_after, v.adapter_len, v.checksum, "
    "v.id = s.current_version_id FROM versions v "
    "JOIN series s ON s.id = v.series_id WHERE s.key = ?1 "
    "ORDER BY v.number";
/* lineage check used by versions: the parent row may have been pruned */

/* The control table of the main database records each applied request
 * in the transaction of its rollback (a re-delivered request is then
 * recognised); requests themselves travel through the sidecar below. */
static const char SQL_CONTROL_RECORD[] =
    "INSERT INTO control (id, created_at, kind, series, by_time, target, "
    "reason, status, result, from_version, restored, new_version, done_at) "
    "VALUES (?1, ?2, 'rollback', ?3, ?4, ?5, ?6, 'applied', ?7, ?8, ?9, "
    "?10, ?11)";
static const char SQL_CONTROL_SEEN[] =
    "SELECT from_version, restored, new_version, result FROM control "
    "WHERE id = ?1";

/*
 * The request sidecar "<path>.control": a tiny SQLite file of its own, so
 * that `driftcast rollback` can leave a request without waiting for the
 * main database's write lock, which a busy daemon holds almost all the
 * time (one batch after another).
 */
static const char SQL_CTL_SCHEMA[] =
    "PRAGMA journal_mode = WAL;\n"
    "CREATE TABLE IF NOT EXISTS requests (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL DEFAULT 'rollback',\n"
    "  series TEXT NOT NULL,\n"
    "  by_time INTEGER NOT NULL,\n"
    "  target INTEGER NOT NULL,\n"
    "  reason TEXT NOT NULL,\n"
    "  status TEXT NOT NULL DEFAULT 'pending',\n"
    "  result TEXT NOT NULL DEFAULT '',\n"
    "  from_version INTEGER,\n"
    "  restored INTEGER,\n"
    "  new_version INTEGER,\n"
    "  done_at INTEGER\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS requests_pending ON requests (id) "
    "WHERE status = 'pending';\n";
static const char SQL_CTL_DATA_VERSION[] = "PRAGMA data_version";
static const char SQL_CTL_PENDING[] =
    "SELECT id, series, by_time, target, reason, created_at FROM requests "
    "WHERE status = 'pending' ORDER BY id LIMIT 1";
static const char SQL_CTL_INSERT[] =
    "INSERT INTO requests (created_at, series, by_time, target, reason) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_CTL_GET[] =
    "SELECT status, result, from_version, restored, new_version "
    "FROM requests WHERE id = ?1";
static const char SQL_CTL_DONE[] =
    "UPDATE requests SET status = ?2, result = ?3, from_version = ?4, "
    "restored = ?5, new_version = ?6, done_at = ?7 "
    "WHERE id = ?1 AND status = 'pending'";

enum cq { CQ_DATA_VERSION, CQ_PENDING, CQ_INSERT, CQ_GET, CQ_DONE, CQ__COUNT };

static const char *const ctl_sql_text[CQ__COUNT] = {
    [CQ_DATA_VERSION] = SQL_CTL_DATA_VERSION,
    [CQ_PENDING] = SQL_CTL_PENDING,
    [CQ_INSERT] = SQL_CTL_INSERT,
    [CQ_GET] = SQL_CTL_GET,
    [CQ_DONE] = SQL_CTL_DONE,
};

static const char SQL_PRUNE_SCAN[] =
    "SELECT v.id, v.id != coalesce(s.current_version_id, -1) AND "
    "(SELECT count(*) FROM versions w WHERE w.series_id = v.series_id "
    "AND w.number > v.number) >= ?3 FROM versions v "
    "JOIN series s ON s.id = v.series_id "
    "WHERE v.id > ?1 AND v.created_at < ?2 ORDER BY v.id LIMIT ?4";
static const char SQL_PRUNE_VERSION[] = "DELETE FROM versions WHERE id = ?1";
/* among the oldest rows (rowid order is write order, see MIGRATION_6),
 * those older than the cutoff */
static const char SQL_PRUNE_FORECASTS[] =
    "DELETE FROM forecasts WHERE id IN (SELECT id FROM (SELECT id, "
    "created_at FROM forecasts ORDER BY id LIMIT ?2) WHERE created_at < ?1)";
static const char SQL_PRUNE_ERRORS[] =
    "DELETE FROM errors WHERE id IN (SELECT id FROM (SELECT id, created_at "
    "FROM errors ORDER BY id LIMIT ?2) WHERE created_at < ?1)";

static const char SQL_RECENT_PUT[] =
    "INSERT OR REPLACE INTO series_recent (series_id, last_ts, step, "
    "position, since_adapt, adaptations, vals, count, checksum, saved_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char SQL_RECENT_ALL[] =
    "SELECT s.key, r.last_ts, r.step, r.position, r.since_adapt, "
    "r.adaptations, r.vals, r.count, r.checksum FROM series_recent r "
    "JOIN series s ON s.id = r.series_id ORDER BY r.series_id";
static const char SQL_RECENT_CLEAR[] = "DELETE FROM series_recent";

enum sq {
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_SERIES_GET,
	SQ_SERIES_INSERT,
	SQ_SERIES_INSERT_NEW,
	SQ_SERIES_SET_CURRENT,
	SQ_SERIES_PUT,
	SQ_VERSION_INSERT,
	SQ_VERSION_EXISTS,
	SQ_VERSION_BY_NUMBER,
	SQ_VERSION_AT,
	SQ_VERSION_RANGE,
	SQ_AUDIT_INSERT,
	SQ_AUDIT_INSERT_V1,
	SQ_FORECAST_PUT,
	SQ_ERROR_PUT,
	SQ_OFFSET_PUT,
	SQ_OFFSET_GET,
	SQ_MODEL_FIND,
	SQ_MODEL_INSERT,
	SQ_RESTORE_ALL,
	SQ_RESTORE_ONE,
	SQ_HISTORY_ALL,
	SQ_HISTORY_ONE,
	SQ_HISTORY_ALL_V1,
	SQ_HISTORY_ONE_V1,
	SQ_VERSIONS,
	SQ_CONTROL_RECORD,
	SQ_CONTROL_SEEN,
	SQ_PRUNE_SCAN,
	SQ_PRUNE_VERSION,
	SQ_PRUNE_FORECASTS,
	SQ_PRUNE_ERRORS,
	SQ_RECENT_PUT,
	SQ_RECENT_ALL,
	SQ_RECENT_CLEAR,
	SQ__COUNT
};

static const char *const sql_text[SQ__COUNT] = {
    [SQ_BEGIN] = SQL_BEGIN,
    [SQ_COMMIT] = SQL_COMMIT,
    [SQ_ROLLBACK] = SQL_ROLLBACK,
    [SQ_SERIES_GET] = SQL_SERIES_GET,
    [SQ_SERIES_INSERT] = SQL_SERIES_INSERT,
    [SQ_SERIES_INSERT_NEW] = SQL_SERIES_INSERT_NEW,
    [SQ_SERIES_SET_CURRENT] = SQL_SERIES_SET_CURRENT,
    [SQ_SERIES_PUT] = SQL_SERIES_PUT,
    [SQ_VERSION_INSERT] = SQL_VERSION_INSERT,
    [SQ_VERSION_EXISTS] = SQL_VERSION_EXISTS,
    [SQ_VERSION_BY_NUMBER] = SQL_VERSION_BY_NUMBER,
    [SQ_VERSION_AT] = SQL_VERSION_AT,
    [SQ_VERSION_RANGE] = SQL_VERSION_RANGE,
    [SQ_AUDIT_INSERT] = SQL_AUDIT_INSERT,
    [SQ_AUDIT_INSERT_V1] = SQL_AUDIT_INSERT_V1,
    [SQ_FORECAST_PUT] = SQL_FORECAST_PUT,
    [SQ_ERROR_PUT] = SQL_ERROR_PUT,
    [SQ_OFFSET_PUT] = SQL_OFFSET_PUT,
    [SQ_OFFSET_GET] = SQL_OFFSET_GET,
    [SQ_MODEL_FIND] = SQL_MODEL_FIND,
    [SQ_MODEL_INSERT] = SQL_MODEL_INSERT,
    [SQ_RESTORE_ALL] = SQL_RESTORE_ALL,
    [SQ_RESTORE_ONE] = SQL_RESTORE_ONE,
    [SQ_HISTORY_ALL] = SQL_HISTORY_ALL,
    [SQ_HISTORY_ONE] = SQL_HISTORY_ONE,
    [SQ_HISTORY_ALL_V1] = SQL_HISTORY_ALL_V1,
    [SQ_HISTORY_ONE_V1] = SQL_HISTORY_ONE_V1,
    [SQ_VERSIONS] = SQL_VERSIONS,
    [SQ_CONTROL_RECORD] = SQL_CONTROL_RECORD,
    [SQ_CONTROL_SEEN] = SQL_CONTROL_SEEN,
    [SQ_PRUNE_SCAN] = SQL_PRUNE_SCAN,
    [SQ_PRUNE_VERSION] = SQL_PRUNE_VERSION,
    [SQ_PRUNE_FORECASTS] = SQL_PRUNE_FORECASTS,
    [SQ_PRUNE_ERRORS] = SQL_PRUNE_ERRORS,
    [SQ_RECENT_PUT] = SQL_RECENT_PUT,
    [SQ_RECENT_ALL] = SQL_RECENT_ALL,
    [SQ_RECENT_CLEAR] = SQL_RECENT_CLEAR,
};

/* ---- the store ----------------------------------------------------------- */

struct store {
	sqlite3 *db;
	char path[PATH_MAX];
	struct store_options opts;
	sqlite3_stmt *stmt[SQ__COUNT];
	int schema;
	char renamed[PATH_MAX + 64];
	int lock_fd; /* daemon lock on "<path>.lock", or -1 */

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
	float *rb_adapter; /* the last rollback result's adapter */
	size_t rb_cap;

	int64_t prune_cursor; /* last version id scanned by store_prune */

	/* daemon: the background checkpointer (see ckpt_start) */
	bool ckpt_running, ckpt_stop;
	pthread_t ckpt_thread;
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	sqlite3 *ckpt_db;
};

static const char *const event_names[STORE_EV__COUNT] = {
    [STORE_EV_FORECAST] = "forecast",
    [STORE_EV_ADAPT_ACCEPTED] = "adapt_accepted",
    [STORE_EV_ADAPT_REJECTED] = "adapt_rejected",
    [STORE_EV_DRIFT] = "drift",
    [STORE_EV_ROLLBACK] = "rollback",
    [STORE_EV_RESET] = "reset",
    [STORE_EV_GAP_FILLED] = "gap_filled",
    [STORE_EV_REJECTED_VALUE] = "rejected_value",
    [STORE_EV_MANUAL] = "manual",
    [STORE_EV_INIT] = "init",
};

static const char *const trigger_names[STORE_TRIGGER__COUNT] = {
    [STORE_TRIGGER_NONE] = "none",     [STORE_TRIGGER_SCHEDULE] = "schedule",
    [STORE_TRIGGER_DRIFT] = "drift",   [STORE_TRIGGER_SHADOW] = "shadow",
    [STORE_TRIGGER_MANUAL] = "manual",
};

const char *store_event_type_name(int type)
{
	if (type < 0 || type >= STORE_EV__COUNT)
		return "?";
	return event_names[type];
}

const char *store_trigger_name(int trigger)
{
	if (trigger < 0 || trigger >= STORE_TRIGGER__COUNT)
		return "?";
	return trigger_names[trigger];
}

static int name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

/* ---- errors -------------------------------------------------------------- */

static int set_err(char *errbuf, size_t errbuf_size, int r, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));
static int set_err(char *errbuf, size_t errbuf_size, int r, const char *fmt,
		   ...)
{
	if (errbuf && errbuf_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errbuf, errbuf_size, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int errno_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -ENOTRECOVERABLE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* The one place SQLite codes become errno values with a message. */
static int db_fail(struct store *s, int rc, char *errbuf, size_t errbuf_size,
		   const char *what)
{
	int r = errno_from_sqlite(rc);
	if (r == 0)
		r = -EIO;
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	const char *hint = "";
	if ((rc & 0xff) == SQLITE_FULL)
		hint = " (disk full)";
	else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
		hint = " (the file is corrupt or not a SQLite database)";
	return set_err(errbuf, errbuf_size, r, "%s: %s: %s%s", s->path, what,
		       msg, hint);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- statements ---------------------------------------------------------- */

static int prep(struct store *s, enum sq q, sqlite3_stmt **ret, char *errbuf,
		size_t errbuf_size)
{
	if (!s->stmt[q]) {
		int rc = sqlite3_prepare_v3(s->db, sql_text[q], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[q], NULL);
		if (rc != SQLITE_OK) {
			s->stmt[q] = NULL;
			return db_fail(s, rc, errbuf, errbuf_size,
				       "preparing a statement");
		}
	}
	*ret = s->stmt[q];
	return 0;
}

static void reset_stmt(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

static void bind_float(sqlite3_stmt *st, int i, float v)
{
	if (isfinite(v))
		sqlite3_bind_double(st, i, (double)v);
	else
		sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, int64_t id)
{
	if (id > 0)
		sqlite3_bind_int64(st, i, id);
	else
		sqlite3_bind_null(st, i);
}

static float col_float(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NAN;
	return (float)sqlite3_column_double(st, i);
}

/* Run a statement that returns no rows. */
static int step_done(struct store *s, enum sq q, char *errbuf,
		     size_t errbuf_size, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r = prep(s, q, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, what);
	reset_stmt(st);
	return r;
}

int store_debug_exec(struct store *s, const char *sql, char *errbuf,
		     size_t errbuf_size)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	int r = 0;
	if (rc != SQLITE_OK)
		r = set_err(errbuf, errbuf_size, errno_from_sqlite(rc), "%s",
			    msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return r;
}

/* ---- open, migrate, close --------------------------------------------------
 */

static void finalize_all(struct store *s)
{
	for (int i = 0; i < SQ__COUNT; i++) {
		sqlite3_finalize(s->stmt[i]);
		s->stmt[i] = NULL;
	}
}

static void ctl_close(struct store *s);

static void close_db(struct store *s)
{
	ctl_close(s);
	finalize_all(s);
	if (s->db)
		sqlite3_close_v2(s->db);
	s->db = NULL;
}

/* Run a multi-statement script (migrations, pragmas). */
static int exec_script(struct store *s, const char *sql, char *errbuf,
		       size_t errbuf_size, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	int r = 0;
	if (rc != SQLITE_OK) {
		int e = errno_from_sqlite(sqlite3_extended_errcode(s->db));
		r = set_err(errbuf, errbuf_size, e ? e : -EIO, "%s: %s: %s",
			    s->path, what, msg ? msg : sqlite3_errstr(rc));
	}
	sqlite3_free(msg);
	return r;
}

static int pragma_int(struct store *s, const char *sql, int64_t *ret,
		      char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	int r = 0;
	if (rc != SQLITE_OK) {
		r = db_fail(s, rc, errbuf, errbuf_size,
			    sql == SQL_PROBE ? "reading the database" : sql);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = db_fail(s, rc, errbuf, errbuf_size,
			    sql == SQL_PROBE ? "reading the database" : sql);
out:
	sqlite3_finalize(st);
	return r;
}

static int quick_check(struct store *s, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int rc =
	    sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	int r = 0;
	if (rc != SQLITE_OK) {
		r = db_fail(s, rc, errbuf, errbuf_size, "quick_check");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = db_fail(s, rc, errbuf, errbuf_size, "quick_check");
		goto out;
	}
	const char *res = (const char *)sqlite3_column_text(st, 0);
	if (!res || strcmp(res, "ok"))
		r = set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
			    "%s: the database is corrupt: %s", s->path,
			    res ? res : "?");
out:
	sqlite3_finalize(st);
	return r;
}

/* A migration that edited sqlite_schema in place: SQLite's procedure for
 * it increments schema_version in the same transaction, so that other
 * connections reload the schema. */
static int bump_schema_version(struct store *s, char *errbuf,
			       size_t errbuf_size, const char *what)
{
	char sql[64];
	int64_t sv = 0;
	int r =
	    pragma_int(s, "PRAGMA schema_version", &sv, errbuf, errbuf_size);
	if (r < 0)
		return r;
	snprintf(sql, sizeof(sql), "PRAGMA schema_version = %lld",
		 (long long)sv + 1);
	return exec_script(s, sql, errbuf, errbuf_size, what);
}

/* Migrate from..to, each step in one transaction.  *ret_reopen is set when
 * a step edited the schema text, which this connection does not reload. */
static int migrate(struct store *s, int from, int to, bool *ret_reopen,
		   char *errbuf, size_t errbuf_size)
{
	char what[64], uv[64];
	for (int v = from + 1; v <= to; v++) {
		int r;
		bool edits = store_migration_edits_schema(v);
		snprintf(what, sizeof(what), "migration to schema %d", v);
		snprintf(uv, sizeof(uv), "PRAGMA user_version = %d", v);
		if ((r = exec_script(s, "BEGIN IMMEDIATE", errbuf, errbuf_size,
				     what)) < 0)
			return r;
		if ((r = exec_script(s, store_migration_sql(v), errbuf,
				     errbuf_size, what)) < 0 ||
		    (edits && (r = bump_schema_version(s, errbuf, errbuf_size,
						       what)) < 0) ||
		    (r = exec_script(s, uv, errbuf, errbuf_size, what)) < 0 ||
		    (r = exec_script(s, "COMMIT", errbuf, errbuf_size, what)) <
			0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
		s->schema = v;
		if (edits)
			*ret_reopen = true;
	}
	return 0;
}

/* Rename path and its -wal/-shm to "<path>.corrupt-<UTC>". */
static int rename_aside(struct store *s, char *errbuf, size_t errbuf_size)
{
	char stamp[32], from[PATH_MAX + 8], to[sizeof(s->renamed) + 8];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(s->renamed, sizeof(s->renamed), "%s.corrupt-%s", s->path,
		 stamp);
	if (rename(s->path, s->renamed) < 0) {
		int e = errno;
		s->renamed[0] = '\0';
		return set_err(errbuf, errbuf_size, -e,
			       "%s: cannot rename the corrupt file aside: %s",
			       s->path, strerror(e));
	}
	static const char *const sfx[] = {"-wal", "-shm"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "%s%s", s->path, sfx[i]);
		snprintf(to, sizeof(to), "%s%s", s->renamed, sfx[i]);
		if (rename(from, to) < 0 && errno != ENOENT)
			return set_err(errbuf, errbuf_size, -errno,
				       "%s: cannot rename %s aside: %s",
				       s->path, from, strerror(errno));
	}
	return 0;
}

static int take_daemon_lock(struct store *s, char *errbuf, size_t errbuf_size)
{
	char lp[PATH_MAX + 8];
	snprintf(lp, sizeof(lp), "%s.lock", s->path);
	int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) /* read-only directory: the open itself reports it */
		return 0;
	for (int i = 0; i < 100; i++) { /* the CLI holds it briefly */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			s->lock_fd = fd;
			return 0;
		}
		if (errno != EWOULDBLOCK)
			break;
		usleep(20000);
	}
	close(fd);
	return set_err(errbuf, errbuf_size, -EBUSY,
		       "%s: another driftcast daemon uses this database "
		       "(%s is locked)",
		       s->path, lp);
}

/* Check that writing can work before SQLite turns it into a vague error. */
static int check_writable(struct store *s, char *errbuf, size_t errbuf_size)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", s->path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (access(s->path, F_OK) == 0 && access(s->path, W_OK) < 0)
		return set_err(errbuf, errbuf_size, -errno,
			       "%s: the database file is not writable: %s",
			       s->path, strerror(errno));
	if (access(dir, W_OK) < 0)
		return set_err(errbuf, errbuf_size, -errno,
			       "%s: directory %s is not writable (SQLite "
			       "needs to create the -wal and -shm files "
			       "there): %s",
			       s->path, dir, strerror(errno));
	return 0;
}

/*
 * A read-only open of a WAL database needs a -shm file it can create or
 * read.  In a directory we cannot write and without a -wal file nobody can
 * be writing either (a writer would have to create it), so the file is
 * safe to open as immutable.
 */
static int reopen_immutable(struct store *s, char *errbuf, size_t errbuf_size)
{
	char wal[PATH_MAX + 8], uri[3 * PATH_MAX + 32];
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	if (access(wal, F_OK) == 0)
		return -EACCES;
	size_t n = (size_t)snprintf(uri, sizeof(uri), "file:");
	for (const char *p = s->path; *p && n + 4 < sizeof(uri); p++) {
		if (*p == '%' || *p == '?' || *p == '#')
			n += (size_t)snprintf(uri + n, sizeof(uri) - n,
					      "%%%02X", (unsigned char)*p);
		else
			uri[n++] = *p;
	}
	snprintf(uri + n, sizeof(uri) - n, "?immutable=1");
	close_db(s);
	int rc = sqlite3_open_v2(
	    uri, &s->db,
	    SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, errbuf, errbuf_size, "cannot open");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, s->opts.busy_timeout_ms);
	return 0;
}

/* Open the file and make sure it is a usable driftcast database. */
static int open_once(struct store *s, char *errbuf, size_t errbuf_size)
{
	const struct store_options *o = &s->opts;
	int flags = SQLITE_OPEN_NOMUTEX;
	int rc, r;
	int64_t uv = 0, appid = 0, ntables = 0;

	if (o->read_only) {
		struct stat st;
		if (stat(s->path, &st) < 0)
			return set_err(errbuf, errbuf_size, -errno, "%s: %s",
				       s->path, strerror(errno));
		flags |= SQLITE_OPEN_READONLY;
	} else {
		if ((r = check_writable(s, errbuf, errbuf_size)) < 0)
			return r;
		flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, errbuf, errbuf_size, "cannot open");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, o->busy_timeout_ms);
	if (!o->read_only && sqlite3_db_readonly(s->db, "main") == 1)
		return set_err(errbuf, errbuf_size, -EROFS,
			       "%s: the database file is read-only", s->path);

	/* The first read of the header: NOTADB shows up here. */
	r = pragma_int(s, SQL_PROBE, &ntables, errbuf, errbuf_size);
	if (r < 0 && o->read_only &&
	    (sqlite3_errcode(s->db) == SQLITE_CANTOPEN ||
	     sqlite3_errcode(s->db) == SQLITE_READONLY) &&
	    (r = reopen_immutable(s, errbuf, errbuf_size)) == 0)
		r = pragma_int(s, SQL_PROBE, &ntables, errbuf, errbuf_size);
	if (r < 0)
		return r;
	if ((r = pragma_int(s, "PRAGMA user_version", &uv, errbuf,
			    errbuf_size)) < 0 ||
	    (r = pragma_int(s, "PRAGMA application_id", &appid, errbuf,
			    errbuf_size)) < 0)
		return r;
	if ((uv > 0 || appid != 0) && appid != STORE_APPLICATION_ID)
		return set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
			       "%s: a SQLite database, but not a driftcast "
			       "one (application_id %lld)",
			       s->path, (long long)appid);
	if (uv == 0 && ntables > 0)
		return set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
			       "%s: a SQLite database with tables, but not a "
			       "driftcast one (user_version 0)",
			       s->path);
	if (uv > STORE_SCHEMA_VERSION)
		return set_err(errbuf, errbuf_size, -EPROTONOSUPPORT,
			       "%s: schema version %lld was written by a "
			       "newer driftcast (this one knows up to %d); "
			       "upgrade driftcast",
			       s->path, (long long)uv, STORE_SCHEMA_VERSION);
	if (o->read_only && uv == 0)
		return set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
			       "%s: empty file, not a driftcast database",
			       s->path);
	s->schema = (int)uv;
	if (o->check && (r = quick_check(s, errbuf, errbuf_size)) < 0)
		return r;
	if (o->read_only)
		return 0;

	/* synchronous=FULL: a commit is durable before the caller commits the
	 * Kafka offsets it carries, even across power loss. */
	if ((r = exec_script(s,
			     "PRAGMA journal_mode = WAL; "
			     "PRAGMA synchronous = FULL; "
			     "PRAGMA cache_size = -65536; "
			     "PRAGMA wal_autocheckpoint = 8192;",
			     errbuf, errbuf_size, "setting WAL mode")) < 0)
		return r;
	int target = o->target_schema ? o->target_schema : STORE_SCHEMA_VERSION;
	bool reopen = false;
	if (target > s->schema && (r = migrate(s, s->schema, target, &reopen,
					       errbuf, errbuf_size)) < 0)
		return r;
	if (reopen) { /* once: the file is at the target schema now */
		close_db(s);
		return open_once(s, errbuf, errbuf_size);
	}
	return 0;
}

/* ---- background checkpoints (daemon) -------------------------------------
 * With wal_autocheckpoint, the commit that crosses the threshold copies the
 * WAL into the database and fsyncs it on the committing thread: at a
 * forecast row per message that is a stall of tens to hundreds of ms every
 * few seconds in the daemon's loop, and its latency tail.  In daemon mode
 * the writer never checkpoints (wal_autocheckpoint = 0); a thread with a
 * connection of its own runs a PASSIVE checkpoint every CKPT_MS (it never
 * waits for the writer or readers, and the writer is never blocked by it),
 * and the writer starts the WAL over at its next commit once it has all
 * been copied.  The last close checkpoints what is left, as before.
 */
#define CKPT_MS 100

static void *ckpt_main(void *arg)
{
	struct store *s = arg;
	pthread_mutex_lock(&s->ckpt_mu);
	while (!s->ckpt_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += CKPT_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
		if (s->ckpt_stop)
			break;
		pthread_mutex_unlock(&s->ckpt_mu);
		/* SQLITE_BUSY (another checkpoint runs) and I/O errors are
		 * left to the next round and to the writer's own errors */
		(void)sqlite3_wal_checkpoint_v2(
		    s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&s->ckpt_mu);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

static int ckpt_start(struct store *s, char *errbuf, size_t errbuf_size)
{
	int rc =
	    sqlite3_open_v2(s->path, &s->ckpt_db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int r = set_err(errbuf, errbuf_size, -EIO,
				"%s: opening the checkpoint connection: %s",
				s->path, sqlite3_errstr(rc));
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		return r;
	}
	/* a fresh connection is not in WAL mode until it has read the file
	 * (sqlite3_wal_checkpoint_v2 would do nothing) */
	rc = sqlite3_exec(s->ckpt_db, "SELECT count(*) FROM sqlite_schema",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 0", NULL,
				  NULL, NULL);
	if (rc != SQLITE_OK || pthread_mutex_init(&s->ckpt_mu, NULL) != 0) {
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		return set_err(errbuf, errbuf_size, -EIO,
			       "%s: setting up background checkpoints",
			       s->path);
	}
	if (pthread_cond_init(&s->ckpt_cv, NULL) != 0 ||
	    pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
		pthread_mutex_destroy(&s->ckpt_mu);
		sqlite3_close_v2(s->ckpt_db);
		s->ckpt_db = NULL;
		/* the writer checkpoints by itself again */
		sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 8192", NULL,
			     NULL, NULL);
		return set_err(errbuf, errbuf_size, -EAGAIN,
			       "%s: starting the checkpoint thread", s->path);
	}
	s->ckpt_running = true;
	return 0;
}

static void ckpt_stop(struct store *s)
{
	if (!s->ckpt_running)
		return;
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_stop = true;
	pthread_cond_signal(&s->ckpt_cv);
	pthread_mutex_unlock(&s->ckpt_mu);
	pthread_join(s->ckpt_thread, NULL);
	pthread_cond_destroy(&s->ckpt_cv);
	pthread_mutex_destroy(&s->ckpt_mu);
	sqlite3_close_v2(s->ckpt_db);
	s->ckpt_db = NULL;
	s->ckpt_running = false;
}

int store_open(const char *path, const struct store_options *opts,
	       struct store **ret, char *errbuf, size_t errbuf_size)
{
	struct store *s;
	int r;

	if (!path || !*path || strlen(path) >= PATH_MAX - 16)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "database path is empty or too long");
	if (opts && (opts->target_schema < 0 ||
		     opts->target_schema > STORE_SCHEMA_VERSION))
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "target schema %d out of range",
			       opts->target_schema);
	s = calloc(1, sizeof(*s));
	if (!s)
		return set_err(errbuf, errbuf_size, -ENOMEM, "out of memory");
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (opts)
		s->opts = *opts;
	if (s->opts.busy_timeout_ms <= 0)
		s->opts.busy_timeout_ms = 5000;
	if (s->opts.batch_rows <= 0)
		s->opts.batch_rows = 1000;
	if (s->opts.batch_ms <= 0)
		s->opts.batch_ms = 200;
	s->lock_fd = -1;

	if (s->opts.daemon && !s->opts.read_only &&
	    (r = take_daemon_lock(s, errbuf, errbuf_size)) < 0)
		goto fail;
	r = open_once(s, errbuf, errbuf_size);
	if (r == -ENOTRECOVERABLE && s->opts.rename_corrupt &&
	    !s->opts.read_only) {
		close_db(s);
		if ((r = rename_aside(s, errbuf, errbuf_size)) < 0)
			goto fail;
		r = open_once(s, errbuf, errbuf_size);
	}
	if (r < 0)
		goto fail;
	if (s->opts.daemon && !s->opts.read_only &&
	    (r = ckpt_start(s, errbuf, errbuf_size)) < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store_free(s);
	return r;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->in_batch)
		store_batch_commit(s, NULL, 0);
	ckpt_stop(s);
	close_db(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->buf);
	free(s->rb_adapter);
	free(s);
}

int store_schema_version(const struct store *s)
{
	return s->schema;
}

const char *store_renamed_path(const struct store *s)
{
	return s->renamed;
}

int store_degraded(const struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->degraded)
		set_err(errbuf, errbuf_size, 0, "%s", s->degraded_msg);
	return s->degraded;
}

/* ---- transactions and batches -------------------------------------------- */

static void degrade(struct store *s, int r, const char *msg)
{
	s->degraded = r;
	snprintf(s->degraded_msg, sizeof(s->degraded_msg), "%s", msg);
}

/* A write in the batch failed: roll the batch back, go degraded. */
static int batch_fail(struct store *s, int r, char *errbuf, size_t errbuf_size)
{
	char tmp[PATH_MAX + 512];
	snprintf(tmp, sizeof(tmp), "%s", errbuf && errbuf_size ? errbuf : "");
	if (!tmp[0])
		snprintf(tmp, sizeof(tmp), "%s: write failed: %s", s->path,
			 strerror(-r));
	store_batch_abort(s);
	degrade(s, r, tmp);
	s->poisoned = r;
	return r;
}

int store_batch_begin(struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->in_batch)
		return 0;
	if (s->opts.read_only)
		return set_err(errbuf, errbuf_size, -EROFS,
			       "%s: opened read-only", s->path);
	if (s->poisoned)
		return set_err(errbuf, errbuf_size, s->poisoned,
			       "%s (the batch was rolled back; commit or abort "
			       "it before writing again)",
			       s->degraded_msg);
	int r = step_done(s, SQ_BEGIN, errbuf, errbuf_size,
			  "beginning a transaction");
	if (r < 0) {
		degrade(s, r, errbuf && errbuf_size ? errbuf : "BEGIN failed");
		s->poisoned = r;
		return r;
	}
	s->in_batch = true;
	s->batch_rows = 0;
	s->batch_start_ms = mono_ms();
	return 0;
}

int store_batch_commit(struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->poisoned) {
		int p = s->poisoned;
		s->poisoned = 0;
		return set_err(errbuf, errbuf_size, p,
			       "%s (the batch was rolled back)",
			       s->degraded_msg);
	}
	if (!s->in_batch)
		return 0;
	int r =
	    step_done(s, SQ_COMMIT, errbuf, errbuf_size, "committing a batch");
	if (r < 0) {
		batch_fail(s, r, errbuf, errbuf_size);
		s->poisoned = 0; /* the caller learns it right here */
		return r;
	}
	s->in_batch = false;
	s->batch_rows = 0;
	s->degraded = 0;
	s->degraded_msg[0] = '\0';
	return 0;
}

void store_batch_abort(struct store *s)
{
	s->poisoned = 0;
	if (!s->in_batch)
		return;
	/* May fail when SQLite already rolled back (e.g. on SQLITE_FULL). */
	if (sqlite3_get_autocommit(s->db) == 0)
		step_done(s, SQ_ROLLBACK, NULL, 0, "rollback");
	s->in_batch = false;
	s->batch_rows = 0;
}

size_t store_batch_rows(const struct store *s)
{
	return s->batch_rows;
}

bool store_batch_due(const struct store *s, int64_t now_ms)
{
	if (!s->in_batch)
		return false;
	return s->batch_rows >= (size_t)s->opts.batch_rows ||
	       now_ms - s->batch_start_ms >= s->opts.batch_ms;
}

/* ---- base models ----------------------------------------------------------
 */

static uint32_t checksum(const void *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const unsigned char *b = p;
	while (n > 0) { /* crc32 takes a uInt length */
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, b, chunk);
		b += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

int store_model_register(struct store *s, const char *name,
			 const char *config_text, const void *bytes,
			 size_t nbytes, const char *report, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	int64_t id = 0;

	if (!name || !*name || (!bytes && nbytes) || nbytes > INT_MAX)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "model: empty name or bad bytes");
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	uint32_t crc = checksum(bytes, nbytes);
	if ((r = prep(s, SQ_MODEL_FIND, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, crc);
	sqlite3_bind_int64(st, 2, (int64_t)nbytes);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "finding a model");
		goto out;
	}
	reset_stmt(st);
	if ((r = prep(s, SQ_MODEL_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, config_text ? config_text : "", -1,
			  SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, bytes, (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)nbytes);
	sqlite3_bind_int64(st, 5, crc);
	if (report)
		sqlite3_bind_text(st, 6, report, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "registering a model");
		goto out;
	}
	id = sqlite3_last_insert_rowid(s->db);
out:
	reset_stmt(st);
	if (r == 0) {
		s->model_id = id;
		*ret_id = id;
	}
	return r;
}

/* ---- the write path ---------------------------------------------------------
 */

struct series_row {
	int64_t id;
	int64_t cur_id; /* 0 when no version yet */
	int64_t cur_number;
	int64_t last_ts;
	bool has_last_ts;
};

static int check_key(const char *key, const char *what, char *errbuf,
		     size_t errbuf_size)
{
	if (!key || !*key || strlen(key) >= STORE_KEY_MAX)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "%s is empty or longer than %d bytes", what,
			       STORE_KEY_MAX - 1);
	return 0;
}

/* The parameters of SQ_SERIES_INSERT and SQ_SERIES_INSERT_NEW: key, the
 * base model, the time it was first seen. */
static void bind_new_series(struct store *s, sqlite3_stmt *st, const char *key)
{
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	bind_id(st, 2, s->model_id);
	sqlite3_bind_int64(st, 3, store_now_ms());
}

/* Look the series up; with create, insert it when missing.  Returns
 * -ENOENT when missing and !create. */
static int series_get(struct store *s, const char *key, bool create,
		      struct series_row *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	struct series_row row = {0};

	if ((r = prep(s, SQ_SERIES_GET, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row.id = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
			row.cur_id = sqlite3_column_int64(st, 1);
			row.cur_number = sqlite3_column_int64(st, 2);
		}
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			row.has_last_ts = true;
			row.last_ts = sqlite3_column_int64(st, 3);
		}
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "reading a series");
		goto out;
	}
	if (!create) {
		r = set_err(errbuf, errbuf_size, -ENOENT,
			    "%s: no series '%s' in the database", s->path, key);
		goto out;
	}
	reset_stmt(st);
	if ((r = prep(s, SQ_SERIES_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	bind_new_series(s, st, key);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "adding a series");
		goto out;
	}
	row.id = sqlite3_last_insert_rowid(s->db);
	s->batch_rows++;
out:
	reset_stmt(st);
	if (r == 0)
		*ret = row;
	return r;
}

/* series_get() for a series the caller believes new (STORE_EV_INIT, its
 * first event): insert first and look up only if the key was there after
 * all, which saves the lookup of a key that almost never is. */
static int series_get_new(struct store *s, const char *key,
			  struct series_row *ret, char *errbuf,
			  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = prep(s, SQ_SERIES_INSERT_NEW, &st, errbuf, errbuf_size)) < 0)
		return r;
	bind_new_series(s, st, key);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "adding a series");
	} else if (sqlite3_changes(s->db) == 1) {
		*ret =
		    (struct series_row){.id = sqlite3_last_insert_rowid(s->db)};
		s->batch_rows++;
	} else {
		reset_stmt(st);
		return series_get(s, key, true, ret, errbuf, errbuf_size);
	}
	reset_stmt(st);
	return r;
}

static const char *version_reason(const struct store_event *ev,
				  const struct series_row *sr)
{
	switch (ev->type) {
	case STORE_EV_ROLLBACK:
		return "rollback";
	case STORE_EV_RESET:
		return "reset";
	case STORE_EV_MANUAL:
		return "manual";
	case STORE_EV_INIT:
		return "init";
	case STORE_EV_ADAPT_ACCEPTED:
		if (ev->trigger == STORE_TRIGGER_DRIFT)
			return "drift";
		return "ttt";
	default:
		if (!sr->cur_id && ev->version_to == 0)
			return "init";
		return "ttt";
	}
}

struct version_new {
	const char *reason;
	const char *note;
	int64_t restored_from; /* -1 = none */
	int64_t ts;
	uint64_t number;
	float loss_before, loss_after, guard_before, guard_after;
	const float *adapter;
	size_t adapter_len;
};

/* Insert a version as the series' new current one. */
static int version_insert(struct store *s, struct series_row *sr,
			  const struct version_new *v, int64_t *ret_id,
			  char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	size_t nbytes = v->adapter_len * sizeof(float);

	if (v->adapter_len > (size_t)INT_MAX / sizeof(float))
		return set_err(errbuf, errbuf_size, -E2BIG,
			       "adapter of %zu floats is too large",
			       v->adapter_len);
	if (v->number > (uint64_t)INT64_MAX)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "version number out of range");
	if ((r = prep(s, SQ_VERSION_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	sqlite3_bind_int64(st, 2, (int64_t)v->number);
	bind_id(st, 3, sr->cur_id);
	if (sr->cur_id)
		sqlite3_bind_int64(st, 4, sr->cur_number);
	bind_id(st, 5, s->model_id);
	sqlite3_bind_int64(st, 6, v->ts);
	sqlite3_bind_int64(st, 7, store_now_ms());
	sqlite3_bind_text(st, 8, v->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, v->note ? v->note : "", -1, SQLITE_STATIC);
	if (v->restored_from >= 0)
		sqlite3_bind_int64(st, 10, v->restored_from);
	bind_float(st, 11, v->loss_before);
	bind_float(st, 12, v->loss_after);
	bind_float(st, 13, v->guard_before);
	bind_float(st, 14, v->guard_after);
	sqlite3_bind_blob(st, 15, nbytes ? (const void *)v->adapter : "",
			  (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, (int64_t)v->adapter_len);
	sqlite3_bind_int64(st, 17, checksum(v->adapter, nbytes));
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		/* the statement is undone, the transaction goes on */
		r = set_err(errbuf, errbuf_size, -EEXIST,
			    "%s: the series already has a version %llu "
			    "(versions are immutable)",
			    s->path, (unsigned long long)v->number);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "writing a version");
		goto out;
	}
	int64_t id = sqlite3_last_insert_rowid(s->db);
	reset_stmt(st);
	if ((r = prep(s, SQ_SERIES_SET_CURRENT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, (int64_t)v->number);
	sqlite3_bind_int64(st, 4, v->ts);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "moving a series");
		goto out;
	}
	sr->cur_id = id;
	sr->cur_number = (int64_t)v->number;
	s->batch_rows++;
	*ret_id = id;
out:
	reset_stmt(st);
	return r;
}

static int version_exists(struct store *s, int64_t series_id, uint64_t number,
			  bool *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = prep(s, SQ_VERSION_EXISTS, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, (int64_t)number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = true;
	else if (rc == SQLITE_DONE)
		*ret = false;
	else
		r = db_fail(s, rc, errbuf, errbuf_size, "reading versions");
	reset_stmt(st);
	return r;
}

static int audit_insert(struct store *s, int64_t series_id,
			const struct store_event *ev, char *errbuf,
			size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	bool v3 = s->schema >= 3;
	if ((r = prep(s, v3 ? SQ_AUDIT_INSERT : SQ_AUDIT_INSERT_V1, &st, errbuf,
		      errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, store_now_ms());
	sqlite3_bind_int64(st, 2, series_id);
	sqlite3_bind_int64(st, 3, ev->ts);
	sqlite3_bind_text(st, 4, store_event_type_name(ev->type), -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 5, store_trigger_name(ev->trigger), -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)ev->version_from);
	sqlite3_bind_int64(st, 7, (int64_t)ev->version_to);
	sqlite3_bind_int(st, 8, ev->steps);
	bind_float(st, 9, ev->loss_before);
	bind_float(st, 10, ev->loss_after);
	bind_float(st, 11, ev->guard_before);
	bind_float(st, 12, ev->guard_after);
	bind_float(st, 13, ev->update_norm);
	bind_float(st, 14, ev->adapted_error);
	bind_float(st, 15, ev->shadow_error);
	sqlite3_bind_text(st, 16, ev->reason ? ev->reason : "", -1,
			  SQLITE_STATIC);
	if (v3) { /* each only where it applies, else NULL */
		if ((ev->type == STORE_EV_ADAPT_ACCEPTED ||
		     ev->type == STORE_EV_ADAPT_REJECTED) &&
		    (ev->data_from || ev->data_until)) {
			sqlite3_bind_int64(st, 17, ev->data_from);
			sqlite3_bind_int64(st, 18, ev->data_until);
		}
		/* an infinite rejected value is kept; NaN becomes NULL */
		if (ev->type == STORE_EV_REJECTED_VALUE)
			sqlite3_bind_double(st, 19, (double)ev->value);
		if (ev->type == STORE_EV_GAP_FILLED)
			sqlite3_bind_int(st, 20, ev->filled);
		if (ev->type == STORE_EV_DRIFT)
			bind_float(st, 21, ev->detector_stat);
		if (ev->type == STORE_EV_ROLLBACK)
			sqlite3_bind_int64(st, 22,
					   (int64_t)ev->version_restored);
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "writing an audit row");
	else
		s->batch_rows++;
	reset_stmt(st);
	return r;
}

static int forecast_insert(struct store *s, int64_t series_id,
			   const struct store_event *ev, char *errbuf,
			   size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if (ev->horizon <= 0 || !ev->forecast ||
	    (size_t)ev->horizon > (size_t)INT_MAX / sizeof(float))
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "forecast of series '%s' has no values",
			       ev->series);
	if ((r = prep(s, SQ_FORECAST_PUT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, ev->ts);
	sqlite3_bind_int(st, 3, ev->horizon);
	sqlite3_bind_blob(st, 4, ev->forecast,
			  (int)((size_t)ev->horizon * sizeof(float)),
			  SQLITE_STATIC);
	bind_id(st, 5, s->model_id);
	sqlite3_bind_int64(st, 6, (int64_t)ev->version_to);
	sqlite3_bind_int64(st, 7, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "writing a forecast");
	else
		s->batch_rows++;
	reset_stmt(st);
	return r;
}

/* Errors that leave the batch usable: bad input, refused duplicates. */
static bool batch_survives(int r)
{
	return r == -EINVAL || r == -EEXIST || r == -E2BIG;
}

int store_event_put(struct store *s, const struct store_event *ev, char *errbuf,
		    size_t errbuf_size)
{
	struct series_row sr;
	int64_t vid;
	int r;

	if (!ev || ev->type < 0 || ev->type >= STORE_EV__COUNT ||
	    ev->trigger < 0 || ev->trigger >= STORE_TRIGGER__COUNT)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "event type or trigger out of range");
	if ((r = check_key(ev->series, "series key", errbuf, errbuf_size)) < 0)
		return r;
	if (ev->adapter_len && !ev->adapter)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "adapter_len without adapter");
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	r = ev->type == STORE_EV_INIT
		? series_get_new(s, ev->series, &sr, errbuf, errbuf_size)
		: series_get(s, ev->series, true, &sr, errbuf, errbuf_size);
	if (r < 0)
		goto out;
	if (ev->type == STORE_EV_FORECAST) {
		r = forecast_insert(s, sr.id, ev, errbuf, errbuf_size);
		goto out;
	}
	if (ev->adapter) {
		struct version_new v = {
		    .reason = version_reason(ev, &sr),
		    .note = ev->reason,
		    .restored_from = ev->type == STORE_EV_ROLLBACK
					 ? (int64_t)ev->version_restored
					 : -1,
		    .ts = ev->ts,
		    .number = ev->version_to,
		    .loss_before = ev->loss_before,
		    .loss_after = ev->loss_after,
		    .guard_before = ev->guard_before,
		    .guard_after = ev->guard_after,
		    .adapter = ev->adapter,
		    .adapter_len = ev->adapter_len,
		};
		if ((r = version_insert(s, &sr, &v, &vid, errbuf,
					errbuf_size)) < 0)
			goto out;
	}
	r = audit_insert(s, sr.id, ev, errbuf, errbuf_size);
out:
	if (r < 0 && !batch_survives(r))
		return batch_fail(s, r, errbuf, errbuf_size);
	return r;
}

int store_error_put(struct store *s, const char *series, int64_t origin_ts,
		    uint64_t version, float adapted_error, float shadow_error,
		    char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = check_key(series, "series key", errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = series_get(s, series, true, &sr, errbuf, errbuf_size)) < 0)
		goto out;
	if ((r = prep(s, SQ_ERROR_PUT, &st, errbuf, errbuf_size)) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int64(st, 2, origin_ts);
	sqlite3_bind_int64(st, 3, (int64_t)version);
	bind_float(st, 4, adapted_error);
	bind_float(st, 5, shadow_error);
	sqlite3_bind_int64(st, 6, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size,
			    "writing a realised error");
	else
		s->batch_rows++;
out:
	reset_stmt(st);
	if (r < 0 && !batch_survives(r))
		return batch_fail(s, r, errbuf, errbuf_size);
	return r;
}

int store_series_put(struct store *s, const char *series, int64_t last_ts,
		     const char *status, char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = check_key(series, "series key", errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = series_get(s, series, true, &sr, errbuf, errbuf_size)) < 0)
		goto out;
	if ((r = prep(s, SQ_SERIES_PUT, &st, errbuf, errbuf_size)) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int64(st, 2, last_ts);
	if (status)
		sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "updating a series");
	else
		s->batch_rows++;
out:
	reset_stmt(st);
	if (r < 0 && !batch_survives(r))
		return batch_fail(s, r, errbuf, errbuf_size);
	return r;
}

int store_offset_put(struct store *s, const char *topic, int32_t partition,
		     int64_t next_offset, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = check_key(topic, "topic", errbuf, errbuf_size)) < 0)
		return r;
	if (partition < 0 || next_offset < 0)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "negative partition or offset");
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = prep(s, SQ_OFFSET_PUT, &st, errbuf, errbuf_size)) < 0)
		goto out;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, partition);
	sqlite3_bind_int64(st, 3, next_offset);
	sqlite3_bind_int64(st, 4, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "writing an offset");
	else
		s->batch_rows++;
out:
	reset_stmt(st);
	if (r < 0 && !batch_survives(r))
		return batch_fail(s, r, errbuf, errbuf_size);
	return r;
}

/* ---- reads ------------------------------------------------------------------
 */

int store_offset_get(struct store *s, const char *topic, int32_t partition,
		     int64_t *ret_next_offset, bool *ret_found, char *errbuf,
		     size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = check_key(topic, "topic", errbuf, errbuf_size)) < 0)
		return r;
	if ((r = prep(s, SQ_OFFSET_GET, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, partition);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_next_offset = sqlite3_column_int64(st, 0);
		*ret_found = true;
	} else if (rc == SQLITE_DONE) {
		*ret_next_offset = 0;
		*ret_found = false;
	} else {
		r = db_fail(s, rc, errbuf, errbuf_size, "reading an offset");
	}
	reset_stmt(st);
	return r;
}

/* Copy a float blob into *buf (grown as needed) and verify it against its
 * stored length and checksum.  Returns 0 or -EBADMSG. */
static int blob_copy(sqlite3_stmt *st, int col_blob, int col_len, int col_crc,
		     float **buf, size_t *cap, size_t *ret_len)
{
	const void *p = sqlite3_column_blob(st, col_blob);
	size_t nbytes = (size_t)sqlite3_column_bytes(st, col_blob);
	int64_t len = sqlite3_column_int64(st, col_len);
	uint32_t crc = (uint32_t)sqlite3_column_int64(st, col_crc);

	if (len < 0 || (size_t)len * sizeof(float) != nbytes)
		return -EBADMSG;
	if ((size_t)len > *cap) {
		float *nb = realloc(*buf, (size_t)len * sizeof(float));
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = (size_t)len;
	}
	if (nbytes)
		memcpy(*buf, p, nbytes);
	if (checksum(nbytes ? (const void *)*buf : "", nbytes) != crc)
		return -EBADMSG;
	*ret_len = (size_t)len;
	return 0;
}

int store_restore(struct store *s, const char *series, store_restore_fn fn,
		  void *user, size_t *ret_bad, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	size_t bad = 0;

	if ((r = prep(s, series ? SQ_RESTORE_ONE : SQ_RESTORE_ALL, &st, errbuf,
		      errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_restored rr = {
		    .series = (const char *)sqlite3_column_text(st, 0),
		    .version = (uint64_t)sqlite3_column_int64(st, 1),
		    .version_id = sqlite3_column_int64(st, 2),
		    .last_ts = sqlite3_column_int64(st, 3),
		};
		size_t len = 0;
		rr.status = blob_copy(st, 4, 5, 6, &s->buf, &s->buf_cap, &len);
		if (rr.status == -ENOMEM) {
			r = set_err(errbuf, errbuf_size, -ENOMEM,
				    "out of memory restoring adapters");
			goto out;
		}
		if (rr.status == 0) {
			rr.adapter = s->buf;
			rr.adapter_len = len;
		} else {
			bad++;
		}
		int stop = fn(user, &rr);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "restoring adapters");
out:
	reset_stmt(st);
	if (ret_bad)
		*ret_bad = bad;
	return r;
}

int store_recent_put(struct store *s, const struct store_recent *r,
		     char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	sqlite3_stmt *st = NULL;
	int r0, rc;

	if ((r0 = check_key(r->series, "series key", errbuf, errbuf_size)) < 0)
		return r0;
	if (r->step <= 0 || r->count > INT_MAX / sizeof(float))
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "series %s: recent values out of range",
			       r->series);
	if ((r0 = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r0;
	if ((r0 = series_get(s, r->series, true, &sr, errbuf, errbuf_size)) < 0)
		goto out;
	if ((r0 = prep(s, SQ_RECENT_PUT, &st, errbuf, errbuf_size)) < 0)
		goto out;
	size_t nbytes = r->count * sizeof(float);
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int64(st, 2, r->last_ts);
	sqlite3_bind_int64(st, 3, r->step);
	sqlite3_bind_int64(st, 4, r->position);
	sqlite3_bind_int64(st, 5, r->since_adapt);
	sqlite3_bind_int64(st, 6, (int64_t)r->adaptations);
	sqlite3_bind_blob(st, 7, nbytes ? (const void *)r->values : "",
			  (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (int64_t)r->count);
	sqlite3_bind_int64(
	    st, 9, checksum(nbytes ? (const void *)r->values : "", nbytes));
	sqlite3_bind_int64(st, 10, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r0 = db_fail(s, rc, errbuf, errbuf_size,
			     "saving a series' recent values");
	else
		s->batch_rows++;
out:
	reset_stmt(st);
	if (r0 < 0 && !batch_survives(r0))
		return batch_fail(s, r0, errbuf, errbuf_size);
	return r0;
}

int store_recent_take(struct store *s, store_recent_fn fn, void *user,
		      size_t *ret_n, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int r, rc;

	if (ret_n)
		*ret_n = 0;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = prep(s, SQ_RECENT_ALL, &st, errbuf, errbuf_size)) < 0)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_recent rr = {
		    .series = (const char *)sqlite3_column_text(st, 0),
		    .last_ts = sqlite3_column_int64(st, 1),
		    .step = sqlite3_column_int64(st, 2),
		    .position = sqlite3_column_int64(st, 3),
		    .since_adapt = sqlite3_column_int64(st, 4),
		    .adaptations = (uint64_t)sqlite3_column_int64(st, 5),
		};
		size_t len = 0;
		rr.status = blob_copy(st, 6, 7, 8, &s->buf, &s->buf_cap, &len);
		if (rr.status == -ENOMEM) {
			r = set_err(errbuf, errbuf_size, -ENOMEM,
				    "out of memory reading recent values");
			goto fail;
		}
		if (rr.status == 0) {
			rr.values = s->buf;
			rr.count = len;
		}
		n++;
		if ((r = fn(user, &rr)) != 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size,
			    "reading saved recent values");
		goto fail;
	}
	reset_stmt(st);
	st = NULL;
	if ((r = step_done(s, SQ_RECENT_CLEAR, errbuf, errbuf_size,
			   "deleting saved recent values")) < 0)
		goto fail;
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	if (ret_n)
		*ret_n = n;
	return 0;
fail:
	reset_stmt(st);
	store_batch_abort(s);
	return r;
}

int store_history(struct store *s, const char *series, int64_t since,
		  store_event_fn fn, void *user, char *errbuf,
		  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	enum sq q = s->schema >= 3
			? (series ? SQ_HISTORY_ONE : SQ_HISTORY_ALL)
			: (series ? SQ_HISTORY_ONE_V1 : SQ_HISTORY_ALL_V1);
	if ((r = prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event ev = {
		    .id = sqlite3_column_int64(st, 0),
		    .series = (const char *)sqlite3_column_text(st, 1),
		    .ts = sqlite3_column_int64(st, 2),
		    .type =
			name_index(event_names, STORE_EV__COUNT,
				   (const char *)sqlite3_column_text(st, 3)),
		    .trigger =
			name_index(trigger_names, STORE_TRIGGER__COUNT,
				   (const char *)sqlite3_column_text(st, 4)),
		    .version_from = (uint64_t)sqlite3_column_int64(st, 5),
		    .version_to = (uint64_t)sqlite3_column_int64(st, 6),
		    .steps = sqlite3_column_int(st, 7),
		    .loss_before = col_float(st, 8),
		    .loss_after = col_float(st, 9),
		    .guard_before = col_float(st, 10),
		    .guard_after = col_float(st, 11),
		    .update_norm = col_float(st, 12),
		    .adapted_error = col_float(st, 13),
		    .shadow_error = col_float(st, 14),
		    .reason = (const char *)sqlite3_column_text(st, 15),
		    .created_at = sqlite3_column_int64(st, 16),
		    .data_from = sqlite3_column_int64(st, 17),
		    .data_until = sqlite3_column_int64(st, 18),
		    .value = col_float(st, 19),
		    .filled = sqlite3_column_int(st, 20),
		    .detector_stat = col_float(st, 21),
		    .version_restored = (uint64_t)sqlite3_column_int64(st, 22),
		};
		int stop = fn(user, &ev);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "reading history");
out:
	reset_stmt(st);
	return r;
}

int store_versions(struct store *s, const char *series, store_version_fn fn,
		   void *user, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	struct series_row sr;
	int r, rc;

	if ((r = check_key(series, "series key", errbuf, errbuf_size)) < 0)
		return r;
	if ((r = series_get(s, series, false, &sr, errbuf, errbuf_size)) < 0)
		return r;
	if (!fn)
		return 0;
	if ((r = prep(s, SQ_VERSIONS, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_version v = {
		    .id = sqlite3_column_int64(st, 0),
		    .series = series,
		    .number = (uint64_t)sqlite3_column_int64(st, 1),
		    .parent_id = sqlite3_column_int64(st, 2),
		    .parent_number = sqlite3_column_type(st, 3) == SQLITE_NULL
					 ? -1
					 : sqlite3_column_int64(st, 3),
		    .model_id = sqlite3_column_int64(st, 4),
		    .ts = sqlite3_column_int64(st, 5),
		    .created_at = sqlite3_column_int64(st, 6),
		    .reason = (const char *)sqlite3_column_text(st, 7),
		    .note = (const char *)sqlite3_column_text(st, 8),
		    .loss_before = col_float(st, 9),
		    .loss_after = col_float(st, 10),
		    .guard_before = col_float(st, 11),
		    .guard_after = col_float(st, 12),
		    .adapter_len = (size_t)sqlite3_column_int64(st, 13),
		    .checksum = (uint32_t)sqlite3_column_int64(st, 14),
		    .current = sqlite3_column_int(st, 15) != 0,
		};
		int stop = fn(user, &v);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size, "reading versions");
out:
	reset_stmt(st);
	return r;
}

/* ---- rollback
 * ----------------------------------------------------------------- */

struct target_row {
	int64_t id;
	uint64_t number;
	size_t adapter_len; /* floats, copied into s->rb_adapter */
};

void store_format_time(int64_t ts, char *buf, size_t n)
{
	time_t t = (time_t)ts;
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(buf, n, "%lld", (long long)ts);
}

/* Explain why a target does not exist for this series. */
static int target_missing(struct store *s, const struct series_row *sr,
			  const char *series,
			  const struct store_rollback_target *t, char *errbuf,
			  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	char when[40], first[40];

	if ((r = prep(s, SQ_VERSION_RANGE, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = db_fail(s, rc, errbuf, errbuf_size, "reading versions");
		goto out;
	}
	int64_t lo = sqlite3_column_int64(st, 0),
		hi = sqlite3_column_int64(st, 1),
		t0 = sqlite3_column_int64(st, 2);
	if (t->by_time) {
		store_format_time(t->at, when, sizeof(when));
		store_format_time(t0, first, sizeof(first));
		r = set_err(errbuf, errbuf_size, -EINVAL,
			    "series '%s' had no version at %s (its first "
			    "surviving version is from %s)",
			    series, when, first);
	} else if ((int64_t)t->number >= lo && (int64_t)t->number <= hi) {
		r = set_err(errbuf, errbuf_size, -EINVAL,
			    "version %llu of series '%s' was removed by "
			    "retention (versions %lld..%lld remain in part)",
			    (unsigned long long)t->number, series,
			    (long long)lo, (long long)hi);
	} else {
		r = set_err(errbuf, errbuf_size, -EINVAL,
			    "series '%s' has no version %llu (its versions "
			    "are %lld..%lld)",
			    series, (unsigned long long)t->number,
			    (long long)lo, (long long)hi);
	}
out:
	reset_stmt(st);
	return r;
}

/* Find and verify the target version of a rollback; its adapter goes to
 * s->rb_adapter. */
static int resolve_target(struct store *s, const char *series,
			  const struct store_rollback_target *t,
			  struct series_row *ret_sr, struct target_row *ret,
			  char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	struct series_row sr;
	struct target_row tr = {0};
	int r, rc;

	if ((r = check_key(series, "series key", errbuf, errbuf_size)) < 0)
		return r;
	if (!t || (!t->by_time && t->number > (uint64_t)INT64_MAX))
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "rollback target out of range");
	if ((r = series_get(s, series, false, &sr, errbuf, errbuf_size)) < 0)
		return r;
	if (!sr.cur_id)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "series '%s' has no versions", series);
	if ((r = prep(s, t->by_time ? SQ_VERSION_AT : SQ_VERSION_BY_NUMBER, &st,
		      errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int64(st, 2, t->by_time ? t->at : (int64_t)t->number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		reset_stmt(st);
		return target_missing(s, &sr, series, t, errbuf, errbuf_size);
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(s, rc, errbuf, errbuf_size, "reading a version");
		goto out;
	}
	tr.id = sqlite3_column_int64(st, 0);
	tr.number = (uint64_t)sqlite3_column_int64(st, 1);
	/* The current version itself is a valid target: it re-installs that
	 * content (a running daemon reloads it) as a new version. */
	r = blob_copy(st, 2, 3, 4, &s->rb_adapter, &s->rb_cap, &tr.adapter_len);
	if (r == -EBADMSG)
		set_err(errbuf, errbuf_size, r,
			"%s: version %llu of series '%s' fails its checksum; "
			"refusing to restore it",
			s->path, (unsigned long long)tr.number, series);
	else if (r < 0)
		set_err(errbuf, errbuf_size, r, "out of memory");
out:
	reset_stmt(st);
	if (r == 0) {
		*ret_sr = sr;
		*ret = tr;
	}
	return r;
}

/* ---- the request sidecar ---------------------------------------------- */

struct ctl_req {
	int64_t id;
	int64_t created_at;
	char series[STORE_KEY_MAX];
	struct store_rollback_target t;
	char reason[STORE_REASON_MAX];
};

static int ctl_fail(struct store *s, int rc, char *errbuf, size_t errbuf_size,
		    const char *what)
{
	int r = errno_from_sqlite(rc);
	return set_err(errbuf, errbuf_size, r ? r : -EIO, "%s.control: %s: %s",
		       s->path, what,
		       s->ctl ? sqlite3_errmsg(s->ctl) : sqlite3_errstr(rc));
}

static void ctl_close(struct store *s)
{
	for (int i = 0; i < CQ__COUNT; i++) {
		sqlite3_finalize(s->cstmt[i]);
		s->cstmt[i] = NULL;
	}
	if (s->ctl)
		sqlite3_close_v2(s->ctl);
	s->ctl = NULL;
}

static int ctl_open(struct store *s, char *errbuf, size_t errbuf_size)
{
	char cp[PATH_MAX + 16], *msg = NULL;
	int rc;
	if (s->ctl)
		return 0;
	snprintf(cp, sizeof(cp), "%s.control", s->path);
	rc = sqlite3_open_v2(cp, &s->ctl,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(s->ctl, 1);
		sqlite3_busy_timeout(s->ctl, s->opts.busy_timeout_ms);
		rc = sqlite3_exec(s->ctl, SQL_CTL_SCHEMA, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK) {
		int r = set_err(errbuf, errbuf_size,
				errno_from_sqlite(rc) ? errno_from_sqlite(rc)
						      : -EIO,
				"%s: %s", cp,
				msg ? msg
				    : (s->ctl ? sqlite3_errmsg(s->ctl)
					      : sqlite3_errstr(rc)));
		sqlite3_free(msg);
		ctl_close(s);
		return r;
	}
	return 0;
}

static int cprep(struct store *s, enum cq q, sqlite3_stmt **ret, char *errbuf,
		 size_t errbuf_size)
{
	int r = ctl_open(s, errbuf, errbuf_size);
	if (r < 0)
		return r;
	if (!s->cstmt[q]) {
		int rc = sqlite3_prepare_v3(s->ctl, ctl_sql_text[q], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &s->cstmt[q], NULL);
		if (rc != SQLITE_OK) {
			s->cstmt[q] = NULL;
			return ctl_fail(s, rc, errbuf, errbuf_size,
					"preparing a statement");
		}
	}
	*ret = s->cstmt[q];
	return 0;
}

/* Mark a request done (only if still pending); *ret_changed tells. */
static int ctl_done(struct store *s, int64_t id, const char *status,
		    const char *result, const struct store_rollback_result *res,
		    bool *ret_changed, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = cprep(s, CQ_DONE, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, result, -1, SQLITE_STATIC);
	if (res) {
		sqlite3_bind_int64(st, 4, (int64_t)res->from_version);
		sqlite3_bind_int64(st, 5, (int64_t)res->restored);
		sqlite3_bind_int64(st, 6, (int64_t)res->new_version);
	}
	sqlite3_bind_int64(st, 7, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = ctl_fail(s, rc, errbuf, errbuf_size,
			     "acknowledging a request");
	else if (ret_changed)
		*ret_changed = sqlite3_changes(s->ctl) == 1;
	reset_stmt(st);
	return r;
}

/* Record an applied request in the main database (same transaction as its
 * rollback). */
static int control_record(struct store *s, const struct ctl_req *q,
			  const struct store_rollback_result *res,
			  const char *result, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = prep(s, SQ_CONTROL_RECORD, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, q->id);
	sqlite3_bind_int64(st, 2, q->created_at);
	sqlite3_bind_text(st, 3, q->series, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, q->t.by_time);
	sqlite3_bind_int64(st, 5,
			   q->t.by_time ? q->t.at : (int64_t)q->t.number);
	sqlite3_bind_text(st, 6, q->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, result, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (int64_t)res->from_version);
	sqlite3_bind_int64(st, 9, (int64_t)res->restored);
	sqlite3_bind_int64(st, 10, (int64_t)res->new_version);
	sqlite3_bind_int64(st, 11, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_fail(s, rc, errbuf, errbuf_size,
			    "recording a control request");
	reset_stmt(st);
	return r;
}

/* Was request id already applied (and recorded) in the main database? */
static int control_seen(struct store *s, int64_t id,
			struct store_rollback_result *res, char *result,
			size_t result_size, bool *ret_seen, char *errbuf,
			size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = prep(s, SQ_CONTROL_SEEN, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	*ret_seen = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		res->from_version = (uint64_t)sqlite3_column_int64(st, 0);
		res->restored = (uint64_t)sqlite3_column_int64(st, 1);
		res->new_version = (uint64_t)sqlite3_column_int64(st, 2);
		snprintf(result, result_size, "%s",
			 (const char *)sqlite3_column_text(st, 3));
	} else if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size,
			    "reading the control table");
	}
	reset_stmt(st);
	return r;
}

/* ---- rollback ------------------------------------------------------------ */

/* The rollback itself, inside an open transaction.  With a request q, it
 * is recorded in the control table in the same transaction. */
static int rollback_txn(struct store *s, const char *series,
			const struct store_rollback_target *t,
			const char *reason, const struct ctl_req *q,
			struct store_rollback_result *ret, char *errbuf,
			size_t errbuf_size)
{
	struct series_row sr;
	struct target_row tr;
	struct store_rollback_result res = {0};
	char note[STORE_REASON_MAX + 64];
	int64_t vid;
	int r;

	if ((r = resolve_target(s, series, t, &sr, &tr, errbuf, errbuf_size)) <
	    0)
		return r;
	/* The new number follows the highest one; retention never removes
	 * the current or the last versions, so this is max + 1. */
	uint64_t from = (uint64_t)sr.cur_number;
	uint64_t number = from + 1;
	bool exists = true;
	while (exists) {
		if ((r = version_exists(s, sr.id, number, &exists, errbuf,
					errbuf_size)) < 0)
			return r;
		if (exists)
			number++;
	}
	int64_t ts = sr.has_last_ts ? sr.last_ts : 0;
	struct version_new v = {
	    .reason = "manual",
	    .note = reason,
	    .restored_from = (int64_t)tr.number,
	    .ts = ts,
	    .number = number,
	    .loss_before = NAN,
	    .loss_after = NAN,
	    .guard_before = NAN,
	    .guard_after = NAN,
	    .adapter = s->rb_adapter,
	    .adapter_len = tr.adapter_len,
	};
	if ((r = version_insert(s, &sr, &v, &vid, errbuf, errbuf_size)) < 0)
		return r;
	snprintf(note, sizeof(note), "rollback to version %llu: %s",
		 (unsigned long long)tr.number, reason);
	struct store_event ev = {
	    .type = STORE_EV_MANUAL,
	    .trigger = STORE_TRIGGER_MANUAL,
	    .series = series,
	    .ts = ts,
	    .version_from = from,
	    .version_to = number,
	    .loss_before = NAN,
	    .loss_after = NAN,
	    .guard_before = NAN,
	    .guard_after = NAN,
	    .update_norm = NAN,
	    .adapted_error = NAN,
	    .shadow_error = NAN,
	    .reason = note,
	};
	if ((r = audit_insert(s, sr.id, &ev, errbuf, errbuf_size)) < 0)
		return r;
	snprintf(res.series, sizeof(res.series), "%s", series);
	res.from_version = from;
	res.restored = tr.number;
	res.new_version = number;
	res.adapter = s->rb_adapter;
	res.adapter_len = tr.adapter_len;
	if (q &&
	    (r = control_record(s, q, &res, note, errbuf, errbuf_size)) < 0)
		return r;
	*ret = res;
	return 0;
}

static bool refused(int r)
{
	return r == -EINVAL || r == -ENOENT || r == -EBADMSG;
}

static int rollback_one(struct store *s, const char *series,
			const struct store_rollback_target *t,
			const char *reason, const struct ctl_req *q,
			struct store_rollback_result *ret, char *errbuf,
			size_t errbuf_size)
{
	int r;
	if (!reason || !*reason || strlen(reason) >= STORE_REASON_MAX)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "a rollback needs a reason (at most %d bytes)",
			       STORE_REASON_MAX - 1);
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	r = rollback_txn(s, series, t, reason, q, ret, errbuf, errbuf_size);
	if (r < 0) {
		if (batch_survives(r) || refused(r))
			store_batch_abort(s);
		else
			batch_fail(s, r, errbuf, errbuf_size);
		return r;
	}
	return store_batch_commit(s, errbuf, errbuf_size);
}

int store_rollback(struct store *s, const char *series,
		   const struct store_rollback_target *t, const char *reason,
		   struct store_rollback_result *ret, char *errbuf,
		   size_t errbuf_size)
{
	return rollback_one(s, series, t, reason, NULL, ret, errbuf,
			    errbuf_size);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Read a request's outcome: *ret_status 0 pending, 1 applied, 2 failed,
 * 3 cancelled. */
static int ctl_read(struct store *s, int64_t id,
		    struct store_rollback_result *res, char *result,
		    size_t result_size, int *ret_status, char *errbuf,
		    size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = cprep(s, CQ_GET, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? set_err(errbuf, errbuf_size, -ENOENT,
						"control request %lld vanished",
						(long long)id)
				      : ctl_fail(s, rc, errbuf, errbuf_size,
						 "reading a request");
		goto out;
	}
	const char *status = (const char *)sqlite3_column_text(st, 0);
	snprintf(result, result_size, "%s",
		 (const char *)sqlite3_column_text(st, 1));
	res->from_version = (uint64_t)sqlite3_column_int64(st, 2);
	res->restored = (uint64_t)sqlite3_column_int64(st, 3);
	res->new_version = (uint64_t)sqlite3_column_int64(st, 4);
	*ret_status = !strcmp(status, "pending")   ? 0
		      : !strcmp(status, "applied") ? 1
		      : !strcmp(status, "failed")  ? 2
						   : 3;
out:
	reset_stmt(st);
	return r;
}

int store_rollback_request(struct store *s, const char *series,
			   const struct store_rollback_target *t,
			   const char *reason, int timeout_ms,
			   struct store_rollback_result *ret, char *errbuf,
			   size_t errbuf_size)
{
	char lp[PATH_MAX + 8], result[STORE_REASON_MAX + 64];
	struct series_row sr;
	struct target_row tr;
	struct store_rollback_result res = {0};
	sqlite3_stmt *st = NULL;
	int r, rc, status = 0;
	int64_t id;

	if (!reason || !*reason || strlen(reason) >= STORE_REASON_MAX)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "a rollback needs a reason (at most %d bytes)",
			       STORE_REASON_MAX - 1);
	if (timeout_ms <= 0)
		timeout_ms = 5000;
	snprintf(lp, sizeof(lp), "%s.lock", s->path);
	int fd = open(lp, O_RDWR | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0 ||
	    errno != EWOULDBLOCK) {
		/* No daemon: apply it here, holding the lock meanwhile. */
		r = store_rollback(s, series, t, reason, ret, errbuf,
				   errbuf_size);
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	if (s->schema < 2)
		return set_err(errbuf, errbuf_size, -EPROTONOSUPPORT,
			       "%s: schema %d has no control table; stop the "
			       "daemon or let it migrate the database",
			       s->path, s->schema);

	/* Refuse bad targets here, with the reason, before asking. */
	if ((r = resolve_target(s, series, t, &sr, &tr, errbuf, errbuf_size)) <
	    0)
		return r;
	if ((r = cprep(s, CQ_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, store_now_ms());
	sqlite3_bind_text(st, 2, series, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, t->by_time);
	sqlite3_bind_int64(st, 4, t->by_time ? t->at : (int64_t)t->number);
	sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	id = sqlite3_last_insert_rowid(s->ctl);
	if (rc != SQLITE_DONE)
		r = ctl_fail(s, rc, errbuf, errbuf_size,
			     "writing a control request");
	reset_stmt(st);
	if (r < 0)
		return r;

	int64_t deadline = mono_ms() + timeout_ms;
	for (;;) {
		sleep_ms(20);
		if ((r = ctl_read(s, id, &res, result, sizeof(result), &status,
				  errbuf, errbuf_size)) < 0)
			return r;
		if (status != 0)
			break;
		if (mono_ms() < deadline)
			continue;
		/* Cancel unless the daemon took it in the meantime. */
		bool changed = false;
		if ((r = ctl_done(s, id, "cancelled",
				  "no daemon answered in time", NULL, &changed,
				  errbuf, errbuf_size)) < 0)
			return r;
		if (changed)
			return set_err(errbuf, errbuf_size, -ETIMEDOUT,
				       "%s: a daemon holds the database but "
				       "did not apply the rollback within "
				       "%d ms; request %lld cancelled",
				       s->path, timeout_ms, (long long)id);
	}
	if (status != 1)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "the daemon refused the rollback: %s", result);
	snprintf(res.series, sizeof(res.series), "%s", series);
	res.via_daemon = true;
	*ret = res;
	return 0;
}

/* The oldest pending request; 0 when none, 1 when *q is filled. */
static int ctl_pending(struct store *s, struct ctl_req *q, char *errbuf,
		       size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int64_t dv = 0;
	int r, rc;

	if ((r = cprep(s, CQ_DATA_VERSION, &st, errbuf, errbuf_size)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		dv = sqlite3_column_int64(st, 0);
	else
		r = ctl_fail(s, rc, errbuf, errbuf_size, "data_version");
	reset_stmt(st);
	if (r < 0)
		return r;
	if (s->control_dv_valid && dv == s->control_dv)
		return 0;

	if ((r = cprep(s, CQ_PENDING, &st, errbuf, errbuf_size)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		s->control_dv = dv;
		s->control_dv_valid = true;
	} else if (rc == SQLITE_ROW) {
		memset(q, 0, sizeof(*q));
		q->id = sqlite3_column_int64(st, 0);
		snprintf(q->series, sizeof(q->series), "%s",
			 sqlite3_column_text(st, 1));
		q->t.by_time = sqlite3_column_int(st, 2) != 0;
		if (q->t.by_time)
			q->t.at = sqlite3_column_int64(st, 3);
		else
			q->t.number = (uint64_t)sqlite3_column_int64(st, 3);
		snprintf(q->reason, sizeof(q->reason), "%s",
			 sqlite3_column_text(st, 4));
		q->created_at = sqlite3_column_int64(st, 5);
		/* more may be pending: look again at the next poll */
		s->control_dv_valid = false;
		r = 1;
	} else {
		r = ctl_fail(s, rc, errbuf, errbuf_size, "reading requests");
	}
	reset_stmt(st);
	return r;
}

int store_control_poll(struct store *s, struct store_rollback_result *ret,
		       char *errbuf, size_t errbuf_size)
{
	char result[STORE_REASON_MAX + 64];
	struct ctl_req q;
	int r;

	if (s->schema < 2 || s->opts.read_only)
		return 0;
	if ((r = ctl_pending(s, &q, errbuf, errbuf_size)) <= 0)
		return r;

	/* Applied before a crash, not yet acknowledged: acknowledge only. */
	struct store_rollback_result done = {0};
	bool seen = false;
	if ((r = control_seen(s, q.id, &done, result, sizeof(result), &seen,
			      errbuf, errbuf_size)) < 0)
		return r;
	if (seen) {
		r = ctl_done(s, q.id, "applied", result, &done, NULL, errbuf,
			     errbuf_size);
		return r < 0 ? r : 0;
	}

	r = rollback_one(s, q.series, &q.t, q.reason, &q, ret, errbuf,
			 errbuf_size);
	if (r == 0) {
		char note[STORE_REASON_MAX + 64];
		snprintf(note, sizeof(note), "rollback to version %llu: %s",
			 (unsigned long long)ret->restored, q.reason);
		/* An acknowledgement lost here is repeated from the control
		 * table at the next poll. */
		ctl_done(s, q.id, "applied", note, ret, NULL, NULL, 0);
		ret->via_daemon = true;
		return 1;
	}
	if (refused(r)) {
		char msg[STORE_REASON_MAX];
		snprintf(msg, sizeof(msg), "%s",
			 errbuf && errbuf_size ? errbuf : strerror(-r));
		ctl_done(s, q.id, "failed", msg, NULL, NULL, NULL, 0);
	}
	return r;
}

/* ---- retention
 * ------------------------------------------------------------------ */

int store_prune(struct store *s, const struct store_retention *ret_,
		int64_t now_ms, size_t *ret_deleted, bool *ret_more,
		char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int64_t *ids = NULL;
	size_t n = 0, deleted = 0;
	bool more = false;
	int r, rc;

	if (!ret_ || ret_->keep_versions < 1 || ret_->batch < 1 ||
	    ret_->keep_days < 0)
		return set_err(errbuf, errbuf_size, -EINVAL,
			       "retention: keep_versions and batch must be "
			       ">= 1, keep_days >= 0");
	if (ret_->keep_days == 0)
		goto done;
	int64_t cutoff = now_ms - (int64_t)ret_->keep_days * 86400000;
	ids = malloc((size_t)ret_->batch * sizeof(*ids));
	if (!ids)
		return set_err(errbuf, errbuf_size, -ENOMEM, "out of memory");
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0 ||
	    (r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		goto out;

	if ((r = prep(s, SQ_PRUNE_SCAN, &st, errbuf, errbuf_size)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, s->prune_cursor);
	sqlite3_bind_int64(st, 2, cutoff);
	sqlite3_bind_int(st, 3, ret_->keep_versions);
	sqlite3_bind_int(st, 4, ret_->batch);
	size_t scanned = 0;
	int64_t last = s->prune_cursor;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		scanned++;
		last = sqlite3_column_int64(st, 0);
		if (sqlite3_column_int(st, 1))
			ids[n++] = last;
	}
	reset_stmt(st);
	if (rc != SQLITE_DONE) {
		r = db_fail(s, rc, errbuf, errbuf_size, "scanning versions");
		goto fail;
	}
	more = scanned == (size_t)ret_->batch;
	for (size_t i = 0; i < n; i++) {
		if ((r = prep(s, SQ_PRUNE_VERSION, &st, errbuf, errbuf_size)) <
		    0)
			goto fail;
		sqlite3_bind_int64(st, 1, ids[i]);
		rc = sqlite3_step(st);
		reset_stmt(st);
		if (rc != SQLITE_DONE) {
			r = db_fail(s, rc, errbuf, errbuf_size,
				    "pruning a version");
			goto fail;
		}
		deleted++;
	}
	static const enum sq tables[] = {SQ_PRUNE_FORECASTS, SQ_PRUNE_ERRORS};
	for (size_t k = 0; k < 2; k++) {
		int budget = ret_->batch - (int)deleted;
		if (budget <= 0) {
			more = true;
			break;
		}
		if ((r = prep(s, tables[k], &st, errbuf, errbuf_size)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, cutoff);
		sqlite3_bind_int(st, 2, budget);
		rc = sqlite3_step(st);
		reset_stmt(st);
		if (rc != SQLITE_DONE) {
			r = db_fail(s, rc, errbuf, errbuf_size,
				    "pruning forecasts or errors");
			goto fail;
		}
		int ch = sqlite3_changes(s->db);
		deleted += (size_t)ch;
		if (ch == budget)
			more = true;
	}
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		goto out;
	s->prune_cursor = scanned == (size_t)ret_->batch ? last : 0;
done:
	*ret_deleted = deleted;
	if (ret_more)
		*ret_more = more;
	r = 0;
	goto out;
fail:
	batch_fail(s, r, errbuf, errbuf_size);
out:
	free(ids);
	return r;
}
