/*
 * The operator-control handshake.  `driftcast rollback` with no daemon
 * running rolls back itself (holding the daemon lock meanwhile); with one
 * running, it validates the target, leaves a request in the sidecar
 * "<path>.control" and waits for the daemon's answer.  The daemon polls the
 * sidecar (store_control_poll), applies the oldest pending request with
 * the rollback of rollback.c, records it in the main database's control
 * table in the same transaction and acknowledges it in the sidecar; a
 * request applied just before a crash is recognised and only acknowledged.
 *
 * The sidecar is a tiny SQLite file of its own so that a request never
 * waits for the main database's write lock, which a busy daemon holds
 * almost all the time (one batch after another).
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

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

#define SQL_TEXT_CQ(name, text) [CQ_##name] = text,
static const char *const ctl_sql_text[CQ__COUNT] = {
    CONTROL_STATEMENTS(SQL_TEXT_CQ)};

static int ctl_fail(struct store *s, int rc, char *errbuf, size_t errbuf_size,
		    const char *what)
{
	int r = store_errno_from_sqlite(rc);
	return store_set_err(
	    errbuf, errbuf_size, r ? r : -EIO, "%s.control: %s: %s", s->path,
	    what, s->ctl ? sqlite3_errmsg(s->ctl) : sqlite3_errstr(rc));
}

void store_ctl_close(struct store *s)
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
		/* Two connections making the file at once (the daemon's first
		 * poll and an operator's first request): switching it to WAL
		 * may answer "locked" at once, without the busy handler (it
		 * would deadlock).  Tried again for the busy timeout. */
		for (int ms = 0;
		     (rc & 0xff) == SQLITE_BUSY && ms < s->opts.busy_timeout_ms;
		     ms += 10) {
			sqlite3_free(msg);
			msg = NULL;
			sqlite3_sleep(10);
			rc = sqlite3_exec(s->ctl, SQL_CTL_SCHEMA, NULL, NULL,
					  &msg);
		}
	}
	if (rc != SQLITE_OK) {
		int r = store_set_err(errbuf, errbuf_size,
				      store_errno_from_sqlite(rc)
					  ? store_errno_from_sqlite(rc)
					  : -EIO,
				      "%s: %s", cp,
				      msg ? msg
					  : (s->ctl ? sqlite3_errmsg(s->ctl)
						    : sqlite3_errstr(rc)));
		sqlite3_free(msg);
		store_ctl_close(s);
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
	int rc = store_prepare_once(s->ctl, ctl_sql_text[q], &s->cstmt[q]);
	if (rc != SQLITE_OK)
		return ctl_fail(s, rc, errbuf, errbuf_size,
				"preparing a statement");
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
int store_control_record(struct store *s, const struct ctl_req *q,
			 const struct store_rollback_result *res,
			 const char *result, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = store_prep(s, SQ_CONTROL_RECORD, &st, errbuf, errbuf_size)) <
	    0)
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
		r = store_db_fail(s, rc, errbuf, errbuf_size,
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
	if ((r = store_prep(s, SQ_CONTROL_SEEN, &st, errbuf, errbuf_size)) < 0)
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
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading the control table");
	}
	reset_stmt(st);
	return r;
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
		r = rc == SQLITE_DONE
			? store_set_err(errbuf, errbuf_size, -ENOENT,
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
		return store_set_err(
		    errbuf, errbuf_size, -EINVAL,
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
		return store_set_err(
		    errbuf, errbuf_size, -EPROTONOSUPPORT,
		    "%s: schema %d has no control table; stop the "
		    "daemon or let it migrate the database",
		    s->path, s->schema);

	/* Refuse bad targets here, with the reason, before asking. */
	if ((r = store_resolve_target(s, series, t, &sr, &tr, errbuf,
				      errbuf_size)) < 0)
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

	int64_t deadline = store_mono_ms() + timeout_ms;
	for (;;) {
		sleep_ms(20);
		if ((r = ctl_read(s, id, &res, result, sizeof(result), &status,
				  errbuf, errbuf_size)) < 0)
			return r;
		if (status != 0)
			break;
		if (store_mono_ms() < deadline)
			continue;
		/* Cancel unless the daemon took it in the meantime. */
		bool changed = false;
		if ((r = ctl_done(s, id, "cancelled",
				  "no daemon answered in time", NULL, &changed,
				  errbuf, errbuf_size)) < 0)
			return r;
		if (changed)
			return store_set_err(
			    errbuf, errbuf_size, -ETIMEDOUT,
			    "%s: a daemon holds the database but "
			    "did not apply the rollback within "
			    "%d ms; request %lld cancelled",
			    s->path, timeout_ms, (long long)id);
	}
	if (status != 1)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "the daemon refused the rollback: %s",
				     result);
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
	/* A rollback is its own transaction: the daemon's open batch (rows
	 * whose offsets it writes at its flush) would be committed without
	 * them, and the error of a write that failed in it (poisoned) taken
	 * for the rollback's and forgotten.  The daemon flushes first. */
	if (s->in_batch || s->poisoned)
		return store_set_err(errbuf, errbuf_size, -EAGAIN,
				     "a request waits for the open batch");

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

	r = store_rollback_one(s, q.series, &q.t, q.reason, &q, ret, errbuf,
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
	if (store_rollback_refused(r)) {
		char msg[STORE_REASON_MAX];
		snprintf(msg, sizeof(msg), "%s",
			 errbuf && errbuf_size ? errbuf : strerror(-r));
		ctl_done(s, q.id, "failed", msg, NULL, NULL, NULL, 0);
	}
	return r;
}
