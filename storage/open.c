/*
 * Open, migrate and close a store: checks that the file can be written
 * (or opened read-only, immutable where nobody can be writing), tells a
 * corrupt, foreign or newer file from a driftcast database (and renames a
 * corrupt one aside on request), runs the migrations of schema.c in order
 * (each in one transaction), takes the daemon's lock and starts its
 * checkpointer.  The other pieces are listed in storage_private.h.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The first read of a file: "not a database" shows up here. */
static const char SQL_PROBE[] = "SELECT count(*) FROM sqlite_master";

static void finalize_all(struct store *s)
{
	for (int i = 0; i < SQ__COUNT; i++) {
		sqlite3_finalize(s->stmt[i]);
		s->stmt[i] = NULL;
	}
}

static void close_db(struct store *s)
{
	store_ctl_close(s);
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
		int e =
		    store_errno_from_sqlite(sqlite3_extended_errcode(s->db));
		r = store_set_err(errbuf, errbuf_size, e ? e : -EIO,
				  "%s: %s: %s", s->path, what,
				  msg ? msg : sqlite3_errstr(rc));
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
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  sql == SQL_PROBE ? "reading the database"
						   : sql);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  sql == SQL_PROBE ? "reading the database"
						   : sql);
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
		r = store_db_fail(s, rc, errbuf, errbuf_size, "quick_check");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = store_db_fail(s, rc, errbuf, errbuf_size, "quick_check");
		goto out;
	}
	const char *res = (const char *)sqlite3_column_text(st, 0);
	if (!res || strcmp(res, "ok")) {
		r = store_set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
				  "%s: the database is corrupt: %s", s->path,
				  res ? res : "?");
		/* SQLite's report spans lines; a log line must not */
		for (char *p = errbuf_size ? errbuf : NULL; p && *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
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
/* SQLite's progress handler while a store opens: the quick_check and a
 * migration rewriting every row (schema 7) take minutes on a big file, so
 * the caller hears about it (the daemon extends systemd's start timeout
 * instead of being killed, and rolled back, in a loop). */
static int open_progress(void *user)
{
	struct store *s = user;
	int64_t now = store_mono_ms();
	if (now - s->busy_ms >= 1000) {
		s->busy_ms = now;
		s->opts.on_busy();
	}
	return 0;
}

static int migrate(struct store *s, int from, int to, bool *ret_reopen,
		   char *errbuf, size_t errbuf_size)
{
	char what[64], uv[64];
	for (int v = from + 1; v <= to; v++) {
		int r;
		bool edits = store_migration_edits_schema(v);
		snprintf(what, sizeof(what), "migration to schema %d", v);
		snprintf(uv, sizeof(uv), "PRAGMA user_version = %d", v);
		if ((r = exec_script(s, store_sql_text[SQ_BEGIN], errbuf,
				     errbuf_size, what)) < 0)
			return r;
		if ((r = exec_script(s, store_migration_sql(v), errbuf,
				     errbuf_size, what)) < 0 ||
		    (edits && (r = bump_schema_version(s, errbuf, errbuf_size,
						       what)) < 0) ||
		    (r = exec_script(s, uv, errbuf, errbuf_size, what)) < 0 ||
		    (r = exec_script(s, store_sql_text[SQ_COMMIT], errbuf,
				     errbuf_size, what)) < 0) {
			sqlite3_exec(s->db, store_sql_text[SQ_ROLLBACK], NULL,
				     NULL, NULL);
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
		return store_set_err(
		    errbuf, errbuf_size, -e,
		    "%s: cannot rename the corrupt file aside: %s", s->path,
		    strerror(e));
	}
	static const char *const sfx[] = {"-wal", "-shm"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(from, sizeof(from), "%s%s", s->path, sfx[i]);
		snprintf(to, sizeof(to), "%s%s", s->renamed, sfx[i]);
		if (rename(from, to) < 0 && errno != ENOENT)
			return store_set_err(errbuf, errbuf_size, -errno,
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
	return store_set_err(errbuf, errbuf_size, -EBUSY,
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
		return store_set_err(
		    errbuf, errbuf_size, -errno,
		    "%s: the database file is not writable: %s", s->path,
		    strerror(errno));
	if (access(dir, W_OK) < 0)
		return store_set_err(errbuf, errbuf_size, -errno,
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
		return store_db_fail(s, rc, errbuf, errbuf_size, "cannot open");
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
			return store_set_err(errbuf, errbuf_size, -errno,
					     "%s: %s", s->path,
					     strerror(errno));
		flags |= SQLITE_OPEN_READONLY;
	} else {
		if ((r = check_writable(s, errbuf, errbuf_size)) < 0)
			return r;
		flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
	if (rc != SQLITE_OK)
		return store_db_fail(s, rc, errbuf, errbuf_size, "cannot open");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, o->busy_timeout_ms);
	if (o->on_busy) /* until store_open returns */
		sqlite3_progress_handler(s->db, 100000, open_progress, s);
	if (!o->read_only && sqlite3_db_readonly(s->db, "main") == 1)
		return store_set_err(errbuf, errbuf_size, -EROFS,
				     "%s: the database file is read-only",
				     s->path);

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
		return store_set_err(
		    errbuf, errbuf_size, -ENOTRECOVERABLE,
		    "%s: a SQLite database, but not a driftcast "
		    "one (application_id %lld)",
		    s->path, (long long)appid);
	if (uv == 0 && ntables > 0)
		return store_set_err(
		    errbuf, errbuf_size, -ENOTRECOVERABLE,
		    "%s: a SQLite database with tables, but not a "
		    "driftcast one (user_version 0)",
		    s->path);
	if (uv > STORE_SCHEMA_VERSION)
		return store_set_err(
		    errbuf, errbuf_size, -EPROTONOSUPPORT,
		    "%s: schema version %lld was written by a "
		    "newer driftcast (this one knows up to %d); "
		    "upgrade driftcast",
		    s->path, (long long)uv, STORE_SCHEMA_VERSION);
	if (o->read_only && uv == 0)
		return store_set_err(errbuf, errbuf_size, -ENOTRECOVERABLE,
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

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->in_batch)
		store_batch_commit(s, NULL, 0);
	store_ckpt_stop(s);
	close_db(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->buf);
	free(s->abuf);
	free(s->vbuf);
	free(s->rbuf);
	free(s->rb_adapter);
	free(s->rb_average);
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

int store_open(const char *path, const struct store_options *opts,
	       struct store **ret, char *errbuf, size_t errbuf_size)
{
	struct store *s;
	int r;

	if (!path || !*path || strlen(path) >= PATH_MAX - 16)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "database path is empty or too long");
	if (opts && (opts->target_schema < 0 ||
		     opts->target_schema > STORE_SCHEMA_VERSION))
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "target schema %d out of range",
				     opts->target_schema);
	s = calloc(1, sizeof(*s));
	if (!s)
		return store_set_err(errbuf, errbuf_size, -ENOMEM,
				     "out of memory");
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
	s->busy_ms = store_mono_ms();
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
	if (s->opts.on_busy)
		sqlite3_progress_handler(s->db, 0, NULL, NULL);
	if (s->opts.daemon && !s->opts.read_only &&
	    (r = store_ckpt_start(s, errbuf, errbuf_size)) < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store_free(s);
	return r;
}
