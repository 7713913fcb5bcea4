/*
 * Several hosts' databases read as one (storage/query.h): a read-only
 * store ATTACHes the other hosts' files, and the audit history and a
 * series' versions are read from all of them with one UNION ALL ordered by
 * time (versions: by number, so a lineage that moved between hosts reads
 * as one chain).  Each row carries the index of its database: 0 the
 * opened one, 1.. the attached ones in attach order.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the SQL of STORE_ATTACH_MAX + 1 databases. */
#define FLEET_SQL_MAX 16384

int store_attach(struct store *s, const char *path, char *errbuf,
		 size_t errbuf_size)
{
	struct store_options so = {.read_only = true};
	struct store *o = NULL;
	char full[PATH_MAX], sql[32];
	int r, rc;

	if (!s->opts.read_only)
		return store_set_err(
		    errbuf, errbuf_size, -EINVAL,
		    "store_attach: the store is not read-only");
	int limit = sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, -1);
	if (s->attached >= limit)
		return store_set_err(errbuf, errbuf_size, -E2BIG,
				     "%s: too many databases: SQLite attaches "
				     "at most %d besides the first",
				     path, limit);
	/* the same checks as a database opened alone, naming this file */
	if ((r = store_open(path, &so, &o, errbuf, errbuf_size)) < 0)
		return r;
	int schema = o->schema;
	store_free(o);
	const char *old = schema < STORE_SCHEMA_NS ? path : NULL;
	if (s->schema < STORE_SCHEMA_NS)
		old = s->path;
	if (old)
		return store_set_err(
		    errbuf, errbuf_size, -EPROTONOSUPPORT,
		    "%s: schema %d stores times in seconds; reading several "
		    "databases needs schema %d or later (a daemon of this "
		    "driftcast migrates it at its start), or read it alone",
		    old, old == path ? schema : s->schema, STORE_SCHEMA_NS);
	if (!realpath(path, full))
		return store_set_err(errbuf, errbuf_size, -errno, "%s: %s",
				     path, strerror(errno));
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA database_list", -1, &st, NULL);
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *f = (const char *)sqlite3_column_text(st, 2);
		if (f && !strcmp(f, full)) {
			sqlite3_finalize(st);
			return store_set_err(errbuf, errbuf_size, -EINVAL,
					     "%s: given twice", path);
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "listing the databases");
	snprintf(sql, sizeof(sql), "ATTACH ?1 AS dc%d", s->attached + 1);
	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return store_db_fail(s, rc, errbuf, errbuf_size, path);
	s->attached++;
	return 0;
}

/* The compound SELECT over every database: each one's copy of part, with
 * '@' replaced by its schema name and '#' by its index; then order. */
static int fleet_sql(struct store *s, char *sql, const char *part,
		     const char *order, char *errbuf, size_t errbuf_size)
{
	size_t n = 0;
	for (int i = 0; i <= s->attached; i++) {
		char name[16], idx[16];
		snprintf(name, sizeof(name), i ? "dc%d" : "main", i);
		snprintf(idx, sizeof(idx), "%d", i);
		if (i)
			n += (size_t)snprintf(sql + n, FLEET_SQL_MAX - n,
					      " UNION ALL ");
		for (const char *p = part; *p && n < FLEET_SQL_MAX; p++)
			n +=
			    (size_t)snprintf(sql + n, FLEET_SQL_MAX - n, "%.*s",
					     *p == '@' || *p == '#' ? -1 : 1,
					     *p == '@'	 ? name
					     : *p == '#' ? idx
							 : p);
		if (n >= FLEET_SQL_MAX)
			break;
	}
	if (n < FLEET_SQL_MAX)
		n += (size_t)snprintf(sql + n, FLEET_SQL_MAX - n, " %s", order);
	if (n >= FLEET_SQL_MAX)
		return store_set_err(errbuf, errbuf_size, -E2BIG,
				     "too many databases for one query");
	return 0;
}

/* fn and its user, and the statement whose column db_col holds the
 * database index (one past the columns store_history_rows /
 * store_version_rows read); st NULL: one database, index 0. */
struct fleet_call {
	sqlite3_stmt *st;
	int db_col;
	void *user;
	store_db_event_fn ev_fn;
	store_db_version_fn v_fn;
};

static int fleet_db(const struct fleet_call *c)
{
	return c->st ? sqlite3_column_int(c->st, c->db_col) : 0;
}

static int fleet_event(void *user, const struct store_event *ev)
{
	struct fleet_call *c = user;
	return c->ev_fn(c->user, fleet_db(c), ev);
}

static int fleet_version(void *user, const struct store_version *v)
{
	struct fleet_call *c = user;
	/* without fn: asked only whether there is one */
	return c->v_fn ? c->v_fn(c->user, fleet_db(c), v) : 1;
}

/* Build and prepare the compound read of part; a failure names the
 * databases (SQLite does not say which one failed). */
static int fleet_prep(struct store *s, const char *part, const char *order,
		      sqlite3_stmt **ret, char *errbuf, size_t errbuf_size)
{
	char *sql = malloc(FLEET_SQL_MAX);
	int r;
	if (!sql)
		return store_set_err(errbuf, errbuf_size, -ENOMEM,
				     "out of memory");
	r = fleet_sql(s, sql, part, order, errbuf, errbuf_size);
	int rc =
	    r < 0 ? SQLITE_OK : sqlite3_prepare_v2(s->db, sql, -1, ret, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading it with the attached databases");
	return r;
}

/* Every database's audit rows, as HISTORY_ALL / HISTORY_ONE. */
#define FLEET_HISTORY                                                       \
	HISTORY_COLUMNS HISTORY_V3 ", # FROM @.audit a JOIN @.series s ON " \
				   "s.id = a.series_id WHERE (?1 IS NULL "  \
				   "OR s.key = ?1) AND a.ts >= ?2"

int store_history_all(struct store *s, const char *series, int64_t since,
		      store_db_event_fn fn, void *user, char *errbuf,
		      size_t errbuf_size)
{
	struct fleet_call c = {.db_col = 23, .user = user, .ev_fn = fn};
	int r;

	if (s->attached == 0) /* one database: the plain read */
		return store_history(s, series, since, fleet_event, &c, errbuf,
				     errbuf_size);
	/* by series time, then database, then row: merged by time */
	if ((r = fleet_prep(s, FLEET_HISTORY, "ORDER BY 3, 24, 1", &c.st,
			    errbuf, errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(c.st, 1, series, -1, SQLITE_STATIC);
	sqlite3_bind_int64(c.st, 2, store_ts_query(s, since));
	r = store_history_rows(s, c.st, fleet_event, &c, errbuf, errbuf_size);
	sqlite3_finalize(c.st);
	return r;
}

/* Every database's versions of ?1, as VERSIONS; current in database ?2
 * only (fleet_owner), and whether the row is an adoption ('handover'). */
#define FLEET_VERSIONS                                                        \
	"SELECT v.id, v.number, v.parent_id, v.parent_number, v.model_id, "   \
	"v.ts, v.created_at, v.reason, v.note, v.loss_before, v.loss_after, " \
	"v.guard_before, v.guard_after, v.adapter_len, v.checksum, "          \
	"v.id = s.current_version_id AND # = ?2, #, v.reason = 'handover' "   \
	"FROM @.versions v JOIN @.series s ON s.id = v.series_id "            \
	"WHERE s.key = ?1"

/* Every database's row of series ?1: its index, whether its host released
 * it at its stop, whether it was handed over, its current version's time
 * (wall-clock ms) and number, and its last data time (series time). */
#define FLEET_OWNER                                                      \
	"SELECT #, s.status = 'stopped', s.status = 'handed_over', "     \
	"coalesce(v.created_at, 0), coalesce(s.current_version, -1), "   \
	"coalesce(s.last_ts, -9223372036854775807 - 1) FROM @.series s " \
	"LEFT JOIN @.versions v ON v.id = s.current_version_id "         \
	"WHERE s.key = ?1"

struct owner_row {
	int db;
	int64_t last_ts, at, number;
};

/* Whether o is a later holder of the series than best (best->db < 0:
 * none yet): by last data time (with by_data), then by the current
 * version made or adopted last, then by the higher number. */
static bool owner_later(const struct owner_row *o, const struct owner_row *best,
			bool by_data)
{
	if (best->db < 0)
		return true;
	if (by_data && o->last_ts != best->last_ts)
		return o->last_ts > best->last_ts;
	if (o->at != best->at)
		return o->at > best->at;
	return o->number > best->number;
}

/* The database whose current version of series is the current one, *ret
 * (-1: none, every database handed the series over).  Among those that
 * serve it (not handed over, not released at a stop), the one that saw its
 * newest data -- two serve it when a host crashed without recording the
 * revocation and another took the partition, and the crashed one stopped
 * seeing data then -- then the newest current version.  When none serves
 * it, the stopped one whose current version is the newest (made or adopted
 * last; then the higher number): a host that stopped cannot know whether
 * another took the series, the others' databases can (data times are not
 * compared there: a host whose stop took the series back with its
 * partition saw no data of it since). */
static int fleet_owner(struct store *s, const char *series, int *ret,
		       char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r = fleet_prep(s, FLEET_OWNER, "", &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	struct owner_row served = {.db = -1}, stopped = {.db = -1};
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct owner_row o = {.db = sqlite3_column_int(st, 0),
				      .at = sqlite3_column_int64(st, 3),
				      .number = sqlite3_column_int64(st, 4),
				      .last_ts = sqlite3_column_int64(st, 5)};
		if (sqlite3_column_int(st, 1)) {
			if (owner_later(&o, &stopped, false))
				stopped = o;
		} else if (!sqlite3_column_int(st, 2) &&
			   owner_later(&o, &served, true)) {
			served = o;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "reading the series in every database");
	*ret = served.db >= 0 ? served.db : stopped.db;
	return 0;
}

int store_versions_all(struct store *s, const char *series,
		       store_db_version_fn fn, void *user, char *errbuf,
		       size_t errbuf_size)
{
	struct fleet_call c = {.db_col = 16, .user = user, .v_fn = fn};
	int r;

	if ((r = store_check_key(series, "series key", errbuf, errbuf_size)) <
	    0)
		return r;
	if (s->attached == 0)
		return store_versions(s, series, fn ? fleet_version : NULL, &c,
				      errbuf, errbuf_size);
	int owner = -1;
	if ((r = fleet_owner(s, series, &owner, errbuf, errbuf_size)) < 0)
		return r;
	/* One chain: by number; a version adopted from another host after
	 * the one made there, then by time and database. */
	if ((r = fleet_prep(s, FLEET_VERSIONS, "ORDER BY 2, 18, 6, 17", &c.st,
			    errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(c.st, 1, series, -1, SQLITE_STATIC);
	sqlite3_bind_int(c.st, 2, owner);
	r = store_version_rows(s, c.st, series, fleet_version, &c, errbuf,
			       errbuf_size);
	sqlite3_finalize(c.st);
	if (r == 1) /* fn NULL: there is one */
		return 0;
	if (r == 0 && !fn)
		r = store_set_err(errbuf, errbuf_size, -ENOENT,
				  "no series '%s' in any of the %d databases",
				  series, s->attached + 1);
	return r;
}
