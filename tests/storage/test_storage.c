/*
 * storage/: the write path, restore, history, versions, rollback,
 * retention, migrations, and every bad file the issue lists (not a
 * database, corrupt, read-only file or directory, newer schema, full disk,
 * checksum failure).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/storage/storeutil.h"

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- restore collector ----------------------------------------------- */

struct got {
	int n, bad;
	char series[16][32];
	uint64_t version[16];
	float first[16];
	int status[16];
	uint16_t average0[16]; /* the first value of the average, if any */
	size_t average_len[16];
	int average_status[16];
};

static int collect(void *user, const struct store_restored *r)
{
	struct got *g = user;
	if (g->n >= 16)
		return 1;
	snprintf(g->series[g->n], 32, "%s", r->series);
	g->version[g->n] = r->version;
	g->status[g->n] = r->status;
	g->first[g->n] = r->adapter ? r->adapter[0] : NAN;
	g->average0[g->n] = r->average ? r->average[0] : 0;
	g->average_len[g->n] = r->average ? r->average_len : 0;
	g->average_status[g->n] = r->average_status;
	if (r->status)
		g->bad++;
	g->n++;
	return 0;
}

static struct got restore_all(struct store *s)
{
	struct got g = {0};
	char err[512];
	size_t bad = 0;
	int r = store_restore(s, NULL, collect, &g, &bad, err, sizeof(err));
	cr_assert_eq(r, 0, "restore: %s", err);
	cr_assert_eq((int)bad, g.bad);
	return g;
}

/* Three series: a with versions 0..2, b with 0..5, c with 0 only. */
static void fill_three(struct store *s)
{
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(su_version(s, "b", STORE_EV_INIT, 0, 0, 1000, 10.0f), 0);
	cr_assert_eq(su_version(s, "c", STORE_EV_INIT, 0, 0, 1000, 20.0f), 0);
	for (int v = 1; v <= 5; v++) {
		if (v <= 2)
			cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED,
						(uint64_t)v - 1, (uint64_t)v,
						1000 + 3600 * v, (float)v),
				     0);
		cr_assert_eq(su_version(s, "b", STORE_EV_ADAPT_ACCEPTED,
					(uint64_t)v - 1, (uint64_t)v,
					1000 + 3600 * v, 10.0f + (float)v),
			     0);
	}
	su_commit(s);
}

Test(storage, open_creates_and_migrates)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	cr_assert_eq(su_int(db, "PRAGMA application_id"), STORE_APPLICATION_ID);
	char mode[16];
	su_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
	cr_assert_str_eq(mode, "wal");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_master WHERE "
				"type = 'view'"),
		     7);
	sqlite3_close(db);
	/* reopening an up-to-date file migrates nothing */
	s = su_open(path, NULL);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, write_restore_and_versions)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 3);
	cr_assert_str_eq(g.series[0], "a");
	cr_assert_eq(g.version[0], 2);
	cr_assert_float_eq(g.first[0], 2.0f, 0);
	cr_assert_eq(g.version[1], 5);
	cr_assert_float_eq(g.first[1], 15.0f, 0);
	cr_assert_eq(g.version[2], 0);
	cr_assert_eq(g.bad, 0);
	store_free(s);

	/* lineage: every version's parent is the previous one */
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions v JOIN series "
				"s ON s.id = v.series_id WHERE s.key = 'b' "
				"AND v.number > 0 AND (v.parent_number != "
				"v.number - 1 OR (SELECT number FROM versions "
				"p WHERE p.id = v.parent_id) != v.number - "
				"1)"),
		     0);
	cr_assert_eq(su_int(db, "SELECT max(depth) FROM v_lineage WHERE "
				"series = 'b' AND version = 5"),
		     5);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions WHERE reason "
				"= 'init' AND parent_id IS NULL"),
		     3);
	sqlite3_close(db);
	su_rmdir(dir);
}

struct vlist {
	int n;
	uint64_t number[16];
	int64_t parent[16];
	bool current[16];
};

static int vcollect(void *user, const struct store_version *v)
{
	struct vlist *l = user;
	l->number[l->n] = v->number;
	l->parent[l->n] = v->parent_number;
	l->current[l->n] = v->current;
	l->n++;
	return l->n >= 16;
}

Test(storage, versions_oldest_first_and_unknown_series)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct vlist l = {0};
	cr_assert_eq(store_versions(s, "a", vcollect, &l, err, sizeof(err)), 0);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(l.number[0], 0);
	cr_assert_eq(l.parent[0], -1);
	cr_assert_eq(l.number[2], 2);
	cr_assert_eq(l.parent[2], 1);
	cr_assert(l.current[2] && !l.current[1]);
	cr_assert_eq(store_versions(s, "nope", vcollect, &l, err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "nope"));
	store_free(s);
	su_rmdir(dir);
}

Test(storage, duplicate_version_refused_batch_survives)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2, 1.0f),
		     0);
	cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 3, 9.0f),
		     -EEXIST);
	cr_assert_eq(store_degraded(s, NULL, 0), 0);
	cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 1, 2, 4, 2.0f),
		     0);
	su_commit(s);
	struct got g = restore_all(s);
	cr_assert_eq(g.version[0], 2);
	cr_assert_float_eq(g.first[0], 2.0f, 0);
	store_free(s);
	sqlite3 *db = su_raw(path);
	/* the refused event left no audit row either */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit"), 3);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, offsets_commit_with_the_batch_only)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	int64_t off = -1;
	bool found = true;
	cr_assert_eq(
	    store_offset_get(s, "in", 3, &off, &found, err, sizeof(err)), 0);
	cr_assert(!found);
	cr_assert_eq(off, 0);
	/* aborted batch: neither the version nor the offset exists */
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	cr_assert_eq(store_offset_put(s, "in", 3, 42, err, sizeof(err)), 0);
	store_batch_abort(s);
	cr_assert_eq(
	    store_offset_get(s, "in", 3, &off, &found, err, sizeof(err)), 0);
	cr_assert(!found);
	cr_assert_eq(restore_all(s).n, 0);
	/* committed batch: both */
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	cr_assert_eq(store_offset_put(s, "in", 3, 42, err, sizeof(err)), 0);
	cr_assert_eq(store_offset_put(s, "in", 3, 43, err, sizeof(err)), 0);
	su_commit(s);
	cr_assert_eq(
	    store_offset_get(s, "in", 3, &off, &found, err, sizeof(err)), 0);
	cr_assert(found);
	cr_assert_eq(off, 43);
	cr_assert_eq(store_offset_put(s, "", 3, 1, err, sizeof(err)), -EINVAL);
	cr_assert_eq(store_offset_put(s, "in", -1, 1, err, sizeof(err)),
		     -EINVAL);
	store_free(s);
	su_rmdir(dir);
}

struct hist {
	int n;
	char series[32][16];
	int type[32];
	int64_t ts[32];
};

static int hcollect(void *user, const struct store_event *ev)
{
	struct hist *h = user;
	snprintf(h->series[h->n], 16, "%s", ev->series);
	h->type[h->n] = ev->type;
	h->ts[h->n] = ev->ts;
	h->n++;
	return h->n >= 32;
}

Test(storage, history_by_series_and_since)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct store_event rej = {
	    .type = STORE_EV_ADAPT_REJECTED,
	    .trigger = STORE_TRIGGER_DRIFT,
	    .series = "a",
	    .ts = 99999,
	    .version_from = 2,
	    .version_to = 2,
	    .guard_before = 1.0f,
	    .guard_after = 3.0f,
	    .reason = "guard: worse on held-out windows",
	};
	cr_assert_eq(store_event_put(s, &rej, err, sizeof(err)), 0);
	su_commit(s);
	struct hist h = {0};
	cr_assert_eq(store_history(s, "a", 0, hcollect, &h, err, sizeof(err)),
		     0);
	cr_assert_eq(h.n, 4);
	cr_assert_eq(h.type[0], STORE_EV_INIT);
	cr_assert_eq(h.type[3], STORE_EV_ADAPT_REJECTED);
	for (int i = 1; i < h.n; i++)
		cr_assert(h.ts[i] >= h.ts[i - 1]);
	memset(&h, 0, sizeof(h));
	cr_assert_eq(store_history(s, NULL, 1000 + 3600 * 2, hcollect, &h, err,
				   sizeof(err)),
		     0);
	/* a@2, b@2..5, the rejection */
	cr_assert_eq(h.n, 1 + 4 + 1);
	memset(&h, 0, sizeof(h));
	cr_assert_eq(store_history(s, "zzz", 0, hcollect, &h, err, sizeof(err)),
		     0);
	cr_assert_eq(h.n, 0);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, versions_immutable_audit_append_only)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	char *msg = NULL;
	cr_assert_neq(sqlite3_exec(db, "UPDATE versions SET note = 'x'", NULL,
				   NULL, &msg),
		      SQLITE_OK);
	cr_assert(strstr(msg, "immutable"), "%s", msg);
	sqlite3_free(msg);
	cr_assert_neq(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, &msg),
		      SQLITE_OK);
	cr_assert(strstr(msg, "append-only"), "%s", msg);
	sqlite3_free(msg);
	cr_assert_neq(
	    sqlite3_exec(db, "UPDATE audit SET reason = 'x'", NULL, NULL, &msg),
	    SQLITE_OK);
	sqlite3_free(msg);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Flip a byte of one version's blob behind the trigger's back. */
static void damage_blob(const char *path, const char *series, int number)
{
	char sql[512];
	sqlite3 *db = su_raw(path);
	snprintf(sql, sizeof(sql),
		 "DROP TRIGGER IF EXISTS versions_immutable; "
		 "UPDATE versions SET adapter = "
		 "cast(zeroblob(length(adapter)) AS BLOB) WHERE number = %d "
		 "AND series_id = (SELECT id FROM series WHERE key = '%s');",
		 number, series);
	su_exec(db, sql);
	sqlite3_close(db);
}

Test(storage, checksum_failure_reported_on_restore_and_rollback)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	store_free(s);
	damage_blob(path, "b", 5); /* b's current */
	damage_blob(path, "a", 0); /* an old version of a */
	s = su_open(path, NULL);
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(g.bad, 1);
	cr_assert_eq(g.status[1], -EBADMSG);
	cr_assert(isnan(g.first[1]));
	cr_assert_eq(g.status[0], 0);
	cr_assert_eq(g.status[2], 0);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 0};
	cr_assert_eq(store_rollback(s, "a", &t, "test", &res, err, sizeof(err)),
		     -EBADMSG);
	cr_assert(strstr(err, "checksum"), "%s", err);
	/* nothing was written, the store is not degraded */
	cr_assert_eq(store_degraded(s, NULL, 0), 0);
	g = restore_all(s);
	cr_assert_eq(g.version[0], 2);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, rollback_by_number_and_time)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(store_rollback(s, "b", &t, "bad adaptation", &res, err,
				    sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(res.from_version, 5);
	cr_assert_eq(res.restored, 1);
	cr_assert_eq(res.new_version, 6);
	cr_assert_eq(res.adapter_len, SU_ADAPTER_LEN);
	cr_assert_float_eq(res.adapter[0], 11.0f, 0);
	cr_assert(!res.via_daemon);
	struct got g = restore_all(s);
	cr_assert_eq(g.version[1], 6);
	cr_assert_float_eq(g.first[1], 11.0f, 0);

	/* by time: at ts 1000 + 3600 * 3 + 10 version 3 was current */
	t = (struct store_rollback_target){.by_time = true,
					   .at = 1000 + 3600 * 3 + 10};
	cr_assert_eq(
	    store_rollback(s, "b", &t, "back to 3", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(res.restored, 3);
	cr_assert_eq(res.new_version, 7);
	cr_assert_float_eq(res.adapter[0], 13.0f, 0);
	store_free(s);

	sqlite3 *db = su_raw(path);
	/* nothing deleted: 6 original + 2 new versions of b */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM v_versions WHERE series "
				"= 'b'"),
		     8);
	cr_assert_eq(su_int(db, "SELECT parent FROM v_versions WHERE series = "
				"'b' AND version = 7"),
		     6);
	cr_assert_eq(su_int(db, "SELECT restored_from FROM v_versions WHERE "
				"series = 'b' AND version = 7"),
		     3);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM v_history WHERE series "
				"= 'b' AND event = 'manual' AND "
				"triggered_by = 'manual'"),
		     2);
	char why[256];
	su_text(db,
		"SELECT reason FROM v_history WHERE series = 'b' AND "
		"version_to = 6",
		why, sizeof(why));
	cr_assert(strstr(why, "bad adaptation"), "%s", why);
	/* content of the new version is byte-identical to the restored one */
	cr_assert_eq(su_int(db, "SELECT a.adapter = b.adapter FROM versions "
				"a, versions b, series s WHERE s.key = 'b' "
				"AND a.series_id = s.id AND b.series_id = s.id "
				"AND a.number = 6 AND b.number = 1"),
		     1);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, rollback_refusals)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct store_rollback_result res;
	/* version 4 exists for b, not for a */
	struct store_rollback_target t = {.number = 4};
	cr_assert_eq(store_rollback(s, "a", &t, "x", &res, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "has no version 4"), "%s", err);
	t.number = 99;
	cr_assert_eq(store_rollback(s, "b", &t, "x", &res, err, sizeof(err)),
		     -EINVAL);
	t.number = 1;
	cr_assert_eq(store_rollback(s, "nope", &t, "x", &res, err, sizeof(err)),
		     -ENOENT);
	cr_assert_eq(store_rollback(s, "b", &t, "", &res, err, sizeof(err)),
		     -EINVAL);
	t = (struct store_rollback_target){.by_time = true, .at = 10};
	cr_assert_eq(store_rollback(s, "b", &t, "x", &res, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "no version at"), "%s", err);
	cr_assert_eq(store_degraded(s, NULL, 0), 0);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"), 3 + 6 + 1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit WHERE event = "
				"'manual'"),
		     0);
	sqlite3_close(db);
	su_rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(data, 1, n, f), n);
	fclose(f);
}

static size_t read_file(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t k = fread(buf, 1, n, f);
	fclose(f);
	return k;
}

Test(storage, not_a_database_refused_then_renamed_on_request)
{
	char dir[64], path[128], err[512], buf[256];
	static const char text[] = "this is not a database, but a text file "
				   "of enough length to be read as a header";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	write_file(path, text, sizeof(text));
	struct store *s = NULL;
	cr_assert_eq(store_open(path, NULL, &s, err, sizeof(err)),
		     -ENOTRECOVERABLE);
	cr_assert(strstr(err, "not a database") || strstr(err, "corrupt"), "%s",
		  err);
	cr_assert_null(s);
	/* untouched */
	cr_assert_eq(read_file(path, buf, sizeof(buf)), sizeof(text));
	cr_assert_eq(memcmp(buf, text, sizeof(text)), 0);
	struct store_options ro = {.read_only = true};
	cr_assert_eq(store_open(path, &ro, &s, err, sizeof(err)),
		     -ENOTRECOVERABLE);

	struct store_options o = {.rename_corrupt = true};
	s = su_open(path, &o);
	const char *aside = store_renamed_path(s);
	cr_assert(strstr(aside, ".corrupt-"), "%s", aside);
	cr_assert_eq(read_file(aside, buf, sizeof(buf)), sizeof(text));
	cr_assert_eq(memcmp(buf, text, sizeof(text)), 0);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	su_commit(s);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, foreign_sqlite_database_refused)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	sqlite3 *db = su_raw(path);
	su_exec(db, "CREATE TABLE customers (id INTEGER, name TEXT); "
		    "INSERT INTO customers VALUES (1, 'x');");
	sqlite3_close(db);
	struct store *s = NULL;
	cr_assert_eq(store_open(path, NULL, &s, err, sizeof(err)),
		     -ENOTRECOVERABLE);
	cr_assert(strstr(err, "not a driftcast"), "%s", err);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM customers"), 1);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), 0);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, corrupt_database_detected_and_renamed_on_request)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	for (int i = 0; i < 200; i++) {
		char key[32];
		snprintf(key, sizeof(key), "series-%03d", i);
		cr_assert_eq(
		    su_version(s, key, STORE_EV_INIT, 0, 0, 1, (float)i), 0);
	}
	su_commit(s);
	store_free(s); /* checkpoints the WAL into the file */
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_size > 16 * 4096);
	/* garbage over pages 3..8 */
	int fd = open(path, O_WRONLY);
	char junk[6 * 4096];
	memset(junk, 0xA5, sizeof(junk));
	cr_assert_eq(pwrite(fd, junk, sizeof(junk), 2 * 4096),
		     (ssize_t)sizeof(junk));
	close(fd);

	struct store_options chk = {.check = true};
	cr_assert_eq(store_open(path, &chk, &s, err, sizeof(err)),
		     -ENOTRECOVERABLE);
	cr_assert(strstr(err, "corrupt"), "%s", err);
	cr_assert_null(strchr(err, '\n'), "a log line: %s", err);
	/* without the up-front check, the first read that meets it fails */
	struct store_options ro = {.read_only = true};
	int r = store_open(path, &ro, &s, err, sizeof(err));
	if (r == 0) {
		struct got g = {0};
		r = store_restore(s, NULL, collect, &g, NULL, err, sizeof(err));
		store_free(s);
	}
	cr_assert_eq(r, -ENOTRECOVERABLE, "%d %s", r, err);
	cr_assert_eq(stat(path, &st), 0, "the corrupt file is kept");

	chk.rename_corrupt = true;
	s = su_open(path, &chk);
	cr_assert(strstr(store_renamed_path(s), ".corrupt-"));
	cr_assert_eq(restore_all(s).n, 0);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, newer_schema_refused_untouched)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	su_exec(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	struct stat a, b;
	cr_assert_eq(stat(path, &a), 0);
	cr_assert_eq(store_open(path, NULL, &s, err, sizeof(err)),
		     -EPROTONOSUPPORT);
	cr_assert(strstr(err, "newer driftcast"), "%s", err);
	struct store_options ro = {.read_only = true};
	cr_assert_eq(store_open(path, &ro, &s, err, sizeof(err)),
		     -EPROTONOSUPPORT);
	cr_assert_eq(stat(path, &b), 0);
	cr_assert_eq(a.st_size, b.st_size);
	cr_assert_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
	cr_assert_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), 99);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, missing_file_read_only)
{
	char err[512];
	struct store *s = NULL;
	struct store_options ro = {.read_only = true};
	cr_assert_eq(
	    store_open("/tmp/dc-no-such-dir/x.db", &ro, &s, err, sizeof(err)),
	    -ENOENT);
	cr_assert(strstr(err, "x.db"));
	cr_assert_eq(
	    store_open("/tmp/dc-no-such-dir/x.db", NULL, &s, err, sizeof(err)),
	    -ENOENT);
}

/* Run fn as an unprivileged user (root ignores file modes). */
static int as_nobody(int (*fn)(const char *), const char *path)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(100);
		_exit(fn(path));
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Exit codes: 0 = refused with a clear message and the read-only open
 * works, else a step number. */
static int try_write_then_read(const char *path)
{
	char err[512];
	struct store *s = NULL;
	int r = store_open(path, NULL, &s, err, sizeof(err));
	if (r != -EACCES && r != -EROFS)
		return 1;
	if (!strstr(err, "not writable"))
		return 2;
	struct store_options ro = {.read_only = true};
	if (store_open(path, &ro, &s, err, sizeof(err)) < 0)
		return 3;
	size_t bad = 1;
	struct got g = {0};
	r = store_restore(s, NULL, collect, &g, &bad, err, sizeof(err));
	int ok = r == 0 && g.n == 3 && bad == 0;
	if (ok &&
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 2, 3, 1, 0) != -EROFS)
		ok = 0;
	store_free(s);
	return ok ? 0 : 4;
}

Test(storage, read_only_file_and_directory)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	store_free(s);
	/* read-only file in a writable directory */
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(chmod(path, 0444), 0);
	cr_assert_eq(as_nobody(try_write_then_read, path), 0, "step %d",
		     as_nobody(try_write_then_read, path));
	/* writable file (for nobody) in a read-only directory */
	cr_assert_eq(chmod(path, 0666), 0);
	cr_assert_eq(chmod(dir, 0555), 0);
	cr_assert_eq(as_nobody(try_write_then_read, path), 0, "step %d",
		     as_nobody(try_write_then_read, path));
	chmod(dir, 0755);
	su_rmdir(dir);
}

Test(storage, disk_full_degrades_then_recovers)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	cr_assert_eq(store_offset_put(s, "in", 0, 10, err, sizeof(err)), 0);
	su_commit(s);
	char sql[64];
	sqlite3 *db = su_raw(path);
	long long pages = su_int(db, "PRAGMA page_count");
	sqlite3_close(db);
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", pages);
	cr_assert_eq(store_debug_exec(s, sql, err, sizeof(err)), 0);

	/* big adapters until the file cannot grow */
	static float big[16384];
	int r = 0;
	for (int v = 6; v < 200 && r == 0; v++) {
		struct store_event ev = {
		    .type = STORE_EV_ADAPT_ACCEPTED,
		    .series = "b",
		    .version_from = (uint64_t)v - 1,
		    .version_to = (uint64_t)v,
		    .reason = "fill",
		    .adapter = big,
		    .adapter_len = 16384,
		};
		r = store_event_put(s, &ev, err, sizeof(err));
		if (r == 0)
			r = store_offset_put(s, "in", 0, 10 + v, err,
					     sizeof(err));
		if (r == 0 && v % 4 == 0)
			r = store_batch_commit(s, err, sizeof(err));
	}
	cr_assert_eq(r, -ENOSPC, "%d %s", r, err);
	cr_assert(strstr(err, "full"), "%s", err);
	char why[512];
	cr_assert_eq(store_degraded(s, why, sizeof(why)), -ENOSPC);
	cr_assert(strstr(why, "full"), "%s", why);
	/* reads keep working; the failed batch left nothing behind */
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 3);
	int64_t off;
	bool found;
	cr_assert_eq(
	    store_offset_get(s, "in", 0, &off, &found, err, sizeof(err)), 0);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT current_version FROM series WHERE "
				"key = 'b'"),
		     (long long)(off - 10 < 5 ? 5 : off - 10));
	sqlite3_close(db);
	/* space again, but the failed batch must be reported before more of
	 * it is written: no batch with a hole in it gets committed */
	cr_assert_eq(store_debug_exec(s, "PRAGMA max_page_count = 1000000", err,
				      sizeof(err)),
		     0);
	cr_assert_eq(su_version(s, "c", STORE_EV_ADAPT_ACCEPTED, 0, 1, 5, 1.0f),
		     -ENOSPC);
	cr_assert_eq(store_offset_put(s, "in", 0, 999, err, sizeof(err)),
		     -ENOSPC);
	cr_assert_eq(store_batch_commit(s, err, sizeof(err)), -ENOSPC);
	cr_assert(strstr(err, "rolled back"), "%s", err);
	cr_assert_eq(
	    store_offset_get(s, "in", 0, &off, &found, err, sizeof(err)), 0);
	cr_assert_neq(off, 999);
	/* the next batch commits and the state clears */
	cr_assert_eq(su_version(s, "c", STORE_EV_ADAPT_ACCEPTED, 0, 1, 5, 1.0f),
		     0);
	su_commit(s);
	cr_assert_eq(store_degraded(s, NULL, 0), 0);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, migrates_v1_in_place)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v1 = {.target_schema = 1};
	struct store *s = su_open(path, &v1);
	cr_assert_eq(store_schema_version(s), 1);
	fill_three(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), 1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_master WHERE "
				"name = 'control'"),
		     0);
	sqlite3_close(db);
	/* a read-only open of an older schema works and does not migrate */
	struct store_options ro = {.read_only = true};
	s = su_open(path, &ro);
	cr_assert_eq(store_schema_version(s), 1);
	cr_assert_eq(restore_all(s).n, 3);
	store_free(s);

	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(g.version[1], 5);
	store_free(s);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM v_history"), 3 + 2 + 5);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM control"), 0);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, batch_due_by_rows_and_time)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options o = {.batch_rows = 4, .batch_ms = 100};
	struct store *s = su_open(path, &o);
	cr_assert(!store_batch_due(s, mono()));
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	/* series + version + audit */
	cr_assert_eq(store_batch_rows(s), 3);
	cr_assert(!store_batch_due(s, mono()));
	cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2, 1.0f),
		     0);
	cr_assert(store_batch_due(s, mono()));
	su_commit(s);
	cr_assert(!store_batch_due(s, mono()));
	cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 1, 2, 3, 2.0f),
		     0);
	cr_assert(!store_batch_due(s, mono()));
	usleep(150000);
	cr_assert(store_batch_due(s, mono()));
	store_free(s); /* commits */
	s = su_open(path, NULL);
	cr_assert_eq(restore_all(s).version[0], 2);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, forecasts_and_errors_idempotent)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	float f[4] = {1, 2, 3, 4};
	struct store_event ev = {.type = STORE_EV_FORECAST,
				 .series = "a",
				 .ts = 100,
				 .version_to = 0,
				 .forecast = f,
				 .horizon = 4};
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0);
	f[0] = 9;
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0);
	ev.horizon = 0;
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), -EINVAL);
	cr_assert_eq(
	    store_error_put(s, "a", 100, 0, 0.5f, 0.7f, err, sizeof(err)), 0);
	cr_assert_eq(
	    store_error_put(s, "a", 100, 0, 0.25f, 0.7f, err, sizeof(err)), 0);
	cr_assert_eq(store_series_put(s, "a", 100, "active", err, sizeof(err)),
		     0);
	su_commit(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"), 1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit"), 0);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM errors"), 1);
	cr_assert_eq(su_int(db, "SELECT horizon * 4 = length(vals) FROM "
				"forecasts"),
		     1);
	cr_assert_eq(su_int(db, "SELECT adapted_error * 4 FROM errors"), 1);
	cr_assert_eq(su_int(db, "SELECT last_ts FROM series"), 100);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Forecasts are pruned oldest first by rowid (schema 6 has no created_at
 * index): only rows older than the cutoff go, a young one among the oldest
 * stays, and a replay's upsert keeps the row's first created_at (so rowid
 * order stays write order). */
Test(storage, prune_forecasts_oldest_first_and_replays_keep_created_at)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	float f[2] = {1, 2};
	struct store_event ev = {.type = STORE_EV_FORECAST,
				 .series = "a",
				 .forecast = f,
				 .horizon = 2};
	for (int i = 0; i < 6; i++) {
		ev.ts = i;
		cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0);
	}
	su_commit(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
				"name IN ('forecasts_created', "
				"'errors_created')"),
		     0);
	/* origins 0, 1, 3, 4 written long ago; 2 and 5 now */
	su_exec(db, "UPDATE forecasts SET created_at = 1000 WHERE origin_ts IN "
		    "(0, 1, 3, 4)");
	su_exec(db, "UPDATE forecasts SET created_at = created_at - 5000 "
		    "WHERE origin_ts = 2");
	long long young =
	    su_int(db, "SELECT created_at FROM forecasts WHERE origin_ts = 2");
	/* a replay of origin 2 with other values keeps its created_at */
	f[0] = 7;
	ev.ts = 2;
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0);
	su_commit(s);
	cr_assert_eq(
	    su_int(db, "SELECT created_at FROM forecasts WHERE origin_ts = 2"),
	    young);
	struct store_retention keep = {
	    .keep_versions = 1000, .keep_days = 30, .batch = 3};
	size_t del = 0, total = 0;
	bool more = false;
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(store_prune(s, &keep, store_now_ms(), &del, &more,
					 err, sizeof(err)),
			     0, "%s", err);
		cr_assert_leq(del, 3);
		total += del;
	}
	cr_assert_eq(total, 4);
	char list[64];
	su_text(db,
		"SELECT group_concat(origin_ts) FROM (SELECT origin_ts FROM "
		"forecasts ORDER BY id)",
		list, sizeof(list));
	cr_assert_str_eq(list, "2,5");
	store_free(s);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, prune_keeps_last_n_current_and_audit)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	float f[2] = {1, 2};
	for (int i = 0; i < 10; i++) {
		struct store_event ev = {.type = STORE_EV_FORECAST,
					 .series = "a",
					 .ts = i,
					 .forecast = f,
					 .horizon = 2};
		cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0);
		cr_assert_eq(
		    store_error_put(s, "a", i, 1, 0.1f, 0.2f, err, sizeof(err)),
		    0);
	}
	su_commit(s);
	struct store_retention keep = {
	    .keep_versions = 2, .keep_days = 30, .batch = 3};
	size_t del = 0, total = 0;
	bool more = false;
	/* now: nothing is older than 30 days */
	cr_assert_eq(store_prune(s, &keep, store_now_ms(), &del, &more, err,
				 sizeof(err)),
		     0);
	cr_assert_eq(del, 0);
	/* 31 days later, in batches of at most 3 rows */
	int64_t later = store_now_ms() + 31LL * 86400000;
	int calls = 0;
	do {
		cr_assert_eq(
		    store_prune(s, &keep, later, &del, &more, err, sizeof(err)),
		    0, "%s", err);
		cr_assert_leq(del, 3);
		total += del;
		calls++;
	} while ((more || del) && calls < 100);
	/* a: 3 -> 3 versions (version 0, the base adapter, and the last 2),
	 * b: 6 -> 3, c: 1 -> 1; 10 forecasts, 10 errors */
	cr_assert_eq(total, 0 + 3 + 10 + 10);
	cr_assert_gt(calls, 5);
	keep.keep_days = 0; /* retention off */
	cr_assert_eq(
	    store_prune(s, &keep, later, &del, &more, err, sizeof(err)), 0);
	cr_assert_eq(del, 0);
	struct got g = restore_all(s);
	cr_assert_eq(g.version[1], 5);
	cr_assert_eq(g.bad, 0);
	store_free(s);
	sqlite3 *db = su_raw(path);
	char list[64];
	su_text(db,
		"SELECT group_concat(version) FROM (SELECT version FROM "
		"v_versions WHERE series = 'b' ORDER BY version)",
		list, sizeof(list));
	cr_assert_str_eq(list, "0,4,5");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit"), 3 + 2 + 5);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"), 0);
	/* a dangling parent link still names its number */
	cr_assert_eq(su_int(db, "SELECT parent FROM v_versions WHERE series = "
				"'b' AND version = 4"),
		     3);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Count versions through the sqlite3 shell; -1 when it failed. */
static long shell_count(const char *path)
{
	char cmd[512], out[64] = "";
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 -readonly -cmd '.timeout 0' '%s' 'SELECT count(*) "
		 "FROM versions' 2>&1",
		 path);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	if (!fgets(out, sizeof(out), p))
		out[0] = '\0';
	int st = pclose(p);
	char *end;
	long n = strtol(out, &end, 10);
	if (st != 0 || end == out)
		return -1;
	return n;
}

Test(storage, sqlite3_shell_reads_while_a_batch_is_open)
{
	char dir[64], path[128];
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
		cr_skip_test("no sqlite3 shell");
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	/* an open batch holds the write lock; readers see the last commit
	 * without waiting (.timeout 0: a lock would fail the shell) */
	cr_assert_eq(su_version(s, "c", STORE_EV_ADAPT_ACCEPTED, 0, 1, 9, 1.0f),
		     0);
	cr_assert_eq(shell_count(path), 10);
	su_commit(s);
	cr_assert_eq(shell_count(path), 11);
	store_free(s);
	su_rmdir(dir);
}

Test(storage, another_writer_between_batches_is_seen)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *a = su_open(path, NULL);
	cr_assert_eq(su_version(a, "x", STORE_EV_INIT, 0, 0, 1, 0.0f), 0);
	cr_assert_eq(su_version(a, "x", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2, 1.0f),
		     0);
	su_commit(a);
	/* another connection rolls x back to 0 (as version 2) */
	struct store *b = su_open(path, NULL);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 0};
	cr_assert_eq(store_rollback(b, "x", &t, "op", &res, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(res.new_version, 2);
	store_free(b);
	/* a's next version hangs under the rollback, not under its own last
	 * version (its cached series row is stale) */
	cr_assert_eq(su_version(a, "x", STORE_EV_ADAPT_ACCEPTED, 2, 3, 3, 3.0f),
		     0);
	su_commit(a);
	store_free(a);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT parent FROM v_versions WHERE series = "
				"'x' AND version = 3"),
		     2);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, rollback_to_the_current_version_reinstalls_it)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 0};
	cr_assert_eq(
	    store_rollback(s, "c", &t, "reload", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(res.from_version, 0);
	cr_assert_eq(res.restored, 0);
	cr_assert_eq(res.new_version, 1);
	cr_assert_float_eq(res.adapter[0], 20.0f, 0);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM v_versions WHERE series "
				"= 'c' AND version = 1 AND parent = 0 AND "
				"reason = 'manual'"),
		     1);
	sqlite3_close(db);
	su_rmdir(dir);
}

struct evs {
	int n;
	struct store_event ev[8];
};

static int ecollect(void *user, const struct store_event *ev)
{
	struct evs *e = user;
	if (e->n < 8)
		e->ev[e->n++] = *ev; /* pointers are not kept */
	return 0;
}

Test(storage, engine_fields_round_trip)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s); /* a: 0..2 */
	float a[SU_ADAPTER_LEN];
	su_fill(a, SU_ADAPTER_LEN, 1.0f);
	struct store_event evs[] = {
	    {.type = STORE_EV_ADAPT_ACCEPTED,
	     .series = "a",
	     .ts = 90000,
	     .version_from = 2,
	     .version_to = 3,
	     .data_from = 80000,
	     .data_until = 89000,
	     .adapter = a,
	     .adapter_len = SU_ADAPTER_LEN},
	    {.type = STORE_EV_DRIFT,
	     .series = "a",
	     .ts = 90001,
	     .detector_stat = 7.5f},
	    {.type = STORE_EV_ROLLBACK,
	     .trigger = STORE_TRIGGER_SHADOW,
	     .series = "a",
	     .ts = 90002,
	     .version_from = 3,
	     .version_to = 4,
	     .version_restored = 1,
	     .adapter = a,
	     .adapter_len = SU_ADAPTER_LEN},
	    {.type = STORE_EV_REJECTED_VALUE,
	     .series = "a",
	     .ts = 90003,
	     .value = INFINITY},
	    {.type = STORE_EV_GAP_FILLED,
	     .series = "a",
	     .ts = 90004,
	     .filled = 3,
	     .detector_stat = 99.0f /* not a drift: not stored */},
	};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		cr_assert_eq(store_event_put(s, &evs[i], err, sizeof(err)), 0,
			     "%s", err);
	su_commit(s);
	struct evs got = {0};
	cr_assert_eq(
	    store_history(s, "a", 90000, ecollect, &got, err, sizeof(err)), 0);
	cr_assert_eq(got.n, 5);
	cr_assert_eq(got.ev[0].data_from, 80000);
	cr_assert_eq(got.ev[0].data_until, 89000);
	cr_assert_float_eq(got.ev[1].detector_stat, 7.5f, 0);
	cr_assert_eq(got.ev[2].version_restored, 1);
	cr_assert(isinf(got.ev[3].value));
	cr_assert_eq(got.ev[4].filled, 3);
	cr_assert(isnan(got.ev[4].detector_stat));
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT restored_from FROM v_versions WHERE "
				"series = 'a' AND version = 4"),
		     1);
	cr_assert_eq(su_int(db, "SELECT version_restored FROM v_history "
				"WHERE event = 'rollback'"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit WHERE "
				"data_from IS NOT NULL"),
		     1);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage, migrates_v2_to_v3_and_reads_old_files)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v2 = {.target_schema = 2};
	struct store *s = su_open(path, &v2);
	fill_three(s);
	store_free(s);
	/* a read-only open of the old file reads its history */
	struct store_options ro = {.read_only = true};
	s = su_open(path, &ro);
	cr_assert_eq(store_schema_version(s), 2);
	struct evs got = {0};
	cr_assert_eq(store_history(s, "c", 0, ecollect, &got, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got.n, 1);
	store_free(s);
	/* in place to the latest */
	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	cr_assert_eq(restore_all(s).version[1], 5);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM v_history WHERE "
				"version_restored IS NULL"),
		     10);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Opcodes of the statement sql on db that are op (EXPLAIN). */
static int explain_count(sqlite3 *db, const char *sql, const char *op)
{
	char buf[1024];
	sqlite3_stmt *st = NULL;
	int n = 0;
	snprintf(buf, sizeof(buf), "EXPLAIN %s", sql);
	cr_assert_eq(sqlite3_prepare_v2(db, buf, -1, &st, NULL), SQLITE_OK,
		     "%s", sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW)
		n += !strcmp((const char *)sqlite3_column_text(st, 1), op);
	sqlite3_finalize(st);
	return n;
}

#define VERSION_INSERT                                                        \
	"INSERT INTO versions (series_id, number, ts, created_at, reason, "   \
	"adapter, adapter_len, checksum) VALUES (1, 99, 0, 0, '%s', x'', 0, " \
	"0)"

/* Schema 4: the CHECK on versions.reason is the same constraint, written so
 * that a version insert builds no temporary index of the allowed values. */
static void check_reason_constraint(const char *path)
{
	char sql[512], err[256];
	sqlite3 *db = su_raw(path);
	su_text(db, "PRAGMA integrity_check", err, sizeof(err));
	cr_assert_str_eq(err, "ok");
	snprintf(sql, sizeof(sql), VERSION_INSERT, "ttt");
	cr_assert_eq(explain_count(db, sql, "OpenEphemeral"), 0);
	snprintf(sql, sizeof(sql), VERSION_INSERT, "bogus");
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL),
		     SQLITE_CONSTRAINT);
	static const char *const ok[] = {"init",     "ttt",   "drift",
					 "rollback", "reset", "manual"};
	su_exec(db, "BEGIN");
	for (int i = 0; i < 6; i++) {
		snprintf(sql, sizeof(sql),
			 VERSION_INSERT " ON CONFLICT DO NOTHING", ok[i]);
		su_exec(db, sql);
	}
	su_exec(db, "ROLLBACK");
	sqlite3_close(db);
}

Test(storage, version_reason_check_without_temporary_index)
{
	char dir[64], path[128], sql[512], err[1024] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	fill_three(s);
	/* the store's own connection (reopened after the migration) checks
	 * with the new text: SQLite names the failed constraint */
	snprintf(sql, sizeof(sql), VERSION_INSERT, "bogus");
	cr_assert_lt(store_debug_exec(s, sql, err, sizeof(err)), 0);
	cr_assert(strstr(err, "reason = 'init' OR"), "%s", err);
	store_free(s);
	check_reason_constraint(path);
	su_rmdir(dir);
}

Test(storage, migrates_v3_to_v4_in_place)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v3 = {.target_schema = 3};
	struct store *s = su_open(path, &v3);
	fill_three(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	char sql[512];
	snprintf(sql, sizeof(sql), VERSION_INSERT, "ttt");
	cr_assert_eq(explain_count(db, sql, "OpenEphemeral"), 1);
	long long sv = su_int(db, "PRAGMA schema_version");
	sqlite3_close(db);

	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(g.version[1], 5);
	/* writes go on after the reopen */
	cr_assert_eq(
	    su_version(s, "c", STORE_EV_ADAPT_ACCEPTED, 0, 1, 9000, 1.0f), 0);
	su_commit(s);
	store_free(s);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	cr_assert_gt(su_int(db, "PRAGMA schema_version"), sv);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"),
		     3 + 2 + 5 + 1);
	sqlite3_close(db);
	check_reason_constraint(path);
	su_rmdir(dir);
}

/* The first event of a series (INIT) inserts before it looks up: a series
 * that exists after all (here from a forecast) keeps its row. */
Test(storage, init_of_an_existing_series_uses_its_row)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	float f[4] = {1, 2, 3, 4};
	struct store_event fc = {.type = STORE_EV_FORECAST,
				 .series = "x",
				 .ts = 100,
				 .forecast = f,
				 .horizon = 4};
	cr_assert_eq(store_event_put(s, &fc, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(su_version(s, "x", STORE_EV_INIT, 0, 0, 100, 1.0f), 0);
	cr_assert_eq(su_version(s, "y", STORE_EV_INIT, 0, 0, 100, 2.0f), 0);
	/* version 0 again: refused, the batch survives */
	cr_assert_eq(su_version(s, "y", STORE_EV_INIT, 0, 0, 100, 2.0f),
		     -EEXIST);
	su_commit(s);
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 2);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series"), 2);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions v JOIN series s "
				"ON s.id = v.series_id WHERE s.key = 'x' AND "
				"v.id = s.current_version_id"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"), 1);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* ---- recent values across a clean restart ------------------------------ */

struct took {
	int n, bad;
	char key[4][16];
	float first[4];
	size_t count[4];
	int64_t position[4], step[4];
	int stop_at; /* return 7 from the n-th call (1-based), 0 never */
};

static int take_one(void *user, const struct store_recent *r)
{
	struct took *t = user;
	if (t->n < 4) {
		snprintf(t->key[t->n], sizeof(t->key[0]), "%s", r->series);
		t->first[t->n] = r->values ? r->values[0] : NAN;
		t->count[t->n] = r->count;
		t->position[t->n] = r->position;
		t->step[t->n] = r->step;
	}
	t->bad += r->status != 0;
	t->n++;
	return t->n == t->stop_at ? 7 : 0;
}

Test(storage, recent_values_are_taken_once)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	float v[100];
	su_fill(v, 100, 3.0f);
	struct store_recent a = {.series = "a",
				 .last_ts = 5000,
				 .step = 60,
				 .position = 250,
				 .since_adapt = 3,
				 .adaptations = 9,
				 .values = v,
				 .count = 100};
	struct store_recent b = a;
	b.series = "b";
	b.values = v + 10;
	b.count = 20;
	b.position = 20;
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_recent_put(s, &b, err, sizeof(err)), 0, "%s", err);
	a.values = v + 1; /* a second save of a replaces the first */
	a.count = 99;
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);

	/* a callback that stops: nothing deleted */
	struct took t = {.stop_at = 1};
	size_t n = 99;
	cr_assert_eq(store_recent_take(s, take_one, &t, &n, err, sizeof(err)),
		     7);
	cr_assert_eq(n, 0);
	t = (struct took){0};
	cr_assert_eq(store_recent_take(s, take_one, &t, &n, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(t.bad, 0);
	cr_assert_str_eq(t.key[0], "a");
	cr_assert_eq(t.first[0], v[1]);
	cr_assert_eq(t.count[0], 99);
	cr_assert_eq(t.position[0], 250);
	cr_assert_eq(t.step[0], 60);
	cr_assert_str_eq(t.key[1], "b");
	cr_assert_eq(t.count[1], 20);
	/* taken: a second start finds none */
	t = (struct took){0};
	cr_assert_eq(store_recent_take(s, take_one, &t, &n, err, sizeof(err)),
		     0);
	cr_assert_eq(n, 0);

	/* a damaged blob comes back flagged, without values */
	cr_assert_eq(store_recent_put(s, &b, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	su_exec(db, "UPDATE series_recent SET checksum = checksum + 1");
	sqlite3_close(db);
	s = su_open(path, NULL);
	t = (struct took){0};
	cr_assert_eq(store_recent_take(s, take_one, &t, &n, err, sizeof(err)),
		     0);
	cr_assert_eq(n, 1);
	cr_assert_eq(t.bad, 1);
	cr_assert(isnan(t.first[0]));
	store_free(s);
	su_rmdir(dir);
}

/* The published average saved with the recent values comes back with
 * its version, bit for bit; a row without one reads as none; a damaged
 * one is left out and flagged while the values are still used. */
struct took_avg {
	int n, status, bad;
	uint16_t first, last;
	size_t len;
	uint64_t version;
	bool has;
};

static int take_avg(void *user, const struct store_recent *r)
{
	struct took_avg *t = user;
	t->n++;
	t->bad += r->status != 0;
	t->status = r->average_status;
	t->has = r->average != NULL;
	t->len = r->average_len;
	t->version = r->average_version;
	if (r->average) {
		t->first = r->average[0];
		t->last = r->average[r->average_len - 1];
	}
	return 0;
}

Test(storage, recent_values_keep_the_published_average)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	float v[10];
	uint16_t avg[5] = {0x1234, 0x8001, 0, 0x3c00, 0xbbff};
	su_fill(v, 10, 2.0f);
	struct store_recent a = {.series = "a",
				 .last_ts = 5000,
				 .step = 60,
				 .position = 10,
				 .values = v,
				 .count = 10,
				 .average = avg,
				 .average_len = 5,
				 .average_version = 42};
	struct store_recent b = a;
	b.series = "b";
	b.average = NULL;
	b.average_len = 0;
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	struct took_avg t = {0};
	cr_assert_eq(store_recent_take(s, take_avg, &t, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert(t.has);
	cr_assert_eq(t.status, 0);
	cr_assert_eq(t.len, 5);
	cr_assert_eq(t.version, 42);
	cr_assert_eq(t.first, 0x1234);
	cr_assert_eq(t.last, 0xbbff);

	cr_assert_eq(store_recent_put(s, &b, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	t = (struct took_avg){0};
	cr_assert_eq(store_recent_take(s, take_avg, &t, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert(!t.has);
	cr_assert_eq(t.status, 0);

	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	su_exec(db, "UPDATE series_recent SET average_checksum = "
		    "average_checksum + 1");
	sqlite3_close(db);
	s = su_open(path, NULL);
	t = (struct took_avg){0};
	cr_assert_eq(store_recent_take(s, take_avg, &t, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert_eq(t.bad, 0, "the values are intact");
	cr_assert(!t.has);
	cr_assert_eq(t.status, -EBADMSG);
	store_free(s);
	su_rmdir(dir);
}

struct took_recal {
	int n, status;
	size_t len;
	unsigned char bytes[64];
};

static int take_recal(void *user, const struct store_recent *r)
{
	struct took_recal *t = user;
	t->n++;
	t->status = r->recal_status;
	t->len = r->recal ? r->recal_len : 0;
	if (r->recal && r->recal_len <= sizeof(t->bytes))
		memcpy(t->bytes, r->recal, r->recal_len);
	return 0;
}

/* The recalibration's state goes with the recent values byte for byte
 * (schema 12), none reads as none, and a checksum mismatch drops it (the
 * values stay). */
Test(storage, recent_values_keep_the_recalibration)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	float v[10];
	unsigned char rc[37];
	for (size_t i = 0; i < sizeof(rc); i++)
		rc[i] = (unsigned char)(i * 7 + 1);
	su_fill(v, 10, 2.0f);
	struct store_recent a = {.series = "a",
				 .last_ts = 5000,
				 .step = 60,
				 .position = 10,
				 .values = v,
				 .count = 10,
				 .recal = rc,
				 .recal_len = sizeof(rc)};
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	struct took_recal t = {0};
	cr_assert_eq(
	    store_recent_take(s, take_recal, &t, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert_eq(t.status, 0);
	cr_assert_eq(t.len, sizeof(rc));
	cr_assert_eq(memcmp(t.bytes, rc, sizeof(rc)), 0);

	a.recal = NULL;
	a.recal_len = 0;
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	t = (struct took_recal){0};
	cr_assert_eq(
	    store_recent_take(s, take_recal, &t, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert_eq(t.len, 0);
	cr_assert_eq(t.status, 0);

	a.recal = rc;
	a.recal_len = sizeof(rc);
	cr_assert_eq(store_recent_put(s, &a, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	store_free(s);
	sqlite3 *db = su_raw(path);
	su_exec(db, "UPDATE series_recent SET recal_checksum = "
		    "recal_checksum + 1");
	sqlite3_close(db);
	s = su_open(path, NULL);
	t = (struct took_recal){0};
	cr_assert_eq(
	    store_recent_take(s, take_recal, &t, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(t.n, 1);
	cr_assert_eq(t.len, 0);
	cr_assert_eq(t.status, -EBADMSG);
	store_free(s);
	su_rmdir(dir);
}

/* ---- background checkpoints (daemon mode) ------------------------------ */

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The writer never checkpoints in daemon mode: its thread does, so the WAL
 * stays near one pause's worth of commits instead of growing (a writer that
 * checkpointed nothing, e.g. without the thread, would hold all ~8 MB). */
static long long wal_high_water(bool daemon)
{
	char dir[64], path[128], wal[160], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	snprintf(wal, sizeof(wal), "%s-wal", path);
	struct store_options o = {.daemon = daemon};
	struct store *s = su_open(path, &o);
	if (!daemon) /* no thread and no automatic checkpoints either */
		cr_assert_eq(store_debug_exec(s,
					      "PRAGMA wal_autocheckpoint = 0",
					      err, sizeof(err)),
			     0, "%s", err);
	float f[96];
	su_fill(f, 96, 1.0f);
	long long high = 0;
	for (int b = 0; b < 8; b++) {
		for (int i = 0; i < 2000; i++) {
			struct store_event ev = {.type = STORE_EV_FORECAST,
						 .series = "a",
						 .ts = b * 2000 + i,
						 .forecast = f,
						 .horizon = 96};
			cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)),
				     0, "%s", err);
		}
		su_commit(s);
		usleep(250 * 1000); /* > 2 checkpoint rounds */
		long long w = file_size(wal);
		if (w > high)
			high = w;
	}
	store_free(s);
	/* everything is in the database after the last close */
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"), 16000);
	sqlite3_close(db);
	su_rmdir(dir);
	return high;
}

Test(storage, daemon_checkpoints_in_the_background)
{
	long long with = wal_high_water(true), without = wal_high_water(false);
	cr_assert_gt(without, 6 << 20, "WAL without checkpoints: %lld",
		     without);
	cr_assert_lt(with, without / 3, "WAL %lld with the thread vs %lld",
		     with, without);
}

/* Each version keeps the average published from it (schema 11), under its
 * own checksum; a rollback hands the target's average on with its content
 * and stores it with the new version; a version without one restores
 * without one; a damaged average leaves the rollback to the version itself
 * and says so in its note. */
Test(storage, a_versions_average_goes_with_its_rollback)
{
	char dir[64], path[128], err[512];
	uint16_t a1[6] = {1, 2, 3, 0x3c00, 0x8001, 7},
		 a2[6] = {9, 9, 9, 9, 9, 9};
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	cr_assert_eq(su_version(s, "v", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(su_version_avg(s, "v", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2000,
				    1.0f, a1, 6),
		     0);
	cr_assert_eq(su_version_avg(s, "v", STORE_EV_ADAPT_ACCEPTED, 1, 2, 3000,
				    2.0f, a2, 6),
		     0);
	cr_assert_eq(
	    su_version(s, "v", STORE_EV_ADAPT_ACCEPTED, 2, 3, 4000, 3.0f), 0);
	su_commit(s);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(
	    store_rollback(s, "v", &t, "back to 1", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(res.new_version, 4);
	cr_assert_not_null(res.average);
	cr_assert_eq(res.average_len, 6);
	cr_assert_arr_eq(res.average, a1, sizeof(a1));
	cr_assert(!res.average_damaged);
	/* a restart restores the current version with it */
	struct got g = restore_all(s);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.version[0], 4);
	cr_assert_eq(g.average_len[0], 6);
	cr_assert_eq(g.average0[0], a1[0]);
	t.number = 3;
	cr_assert_eq(
	    store_rollback(s, "v", &t, "back to 3", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_null(res.average);
	cr_assert_eq(res.average_len, 0);
	store_free(s);

	sqlite3 *db = su_raw(path);
	/* the new versions carry their targets' averages, byte for byte */
	cr_assert_eq(su_int(db, "SELECT a.average = b.average AND "
				"a.average_checksum = b.average_checksum FROM "
				"versions a, versions b WHERE a.number = 4 AND "
				"b.number = 1"),
		     1);
	cr_assert_eq(su_int(db, "SELECT length(average) FROM versions WHERE "
				"number = 2"),
		     12);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions WHERE average "
				"IS NULL AND number IN (0, 3, 5)"),
		     3);
	su_exec(db, "DROP TRIGGER IF EXISTS versions_immutable; "
		    "UPDATE versions SET average = zeroblob(12) WHERE number "
		    "= 2;");
	sqlite3_close(db);

	s = su_open(path, NULL);
	t.number = 2;
	cr_assert_eq(
	    store_rollback(s, "v", &t, "back to 2", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_null(res.average);
	cr_assert(res.average_damaged);
	cr_assert_float_eq(res.adapter[0], 2.0f, 0);
	g = restore_all(s); /* version 6: none */
	cr_assert_eq(g.average_len[0], 0);
	cr_assert_eq(g.average_status[0], 0);
	t.number = 4;
	cr_assert_eq(
	    store_rollback(s, "v", &t, "back to 4", &res, err, sizeof(err)), 0,
	    "%s", err);
	store_free(s);
	db = su_raw(path);
	su_exec(db, "UPDATE versions SET average = zeroblob(12) WHERE number "
		    "= 7;");
	sqlite3_close(db);
	s = su_open(path, NULL);
	g = restore_all(s); /* a damaged average is left out, the adapter not */
	cr_assert_eq(g.version[0], 7);
	cr_assert_eq(g.status[0], 0);
	cr_assert_eq(g.average_len[0], 0);
	cr_assert_eq(g.average_status[0], -EBADMSG);
	store_free(s);
	db = su_raw(path);
	char note[512];
	su_text(db, "SELECT note FROM versions WHERE number = 6", note,
		sizeof(note));
	cr_assert(strstr(note, "average fails its checksum"), "%s", note);
	cr_assert_eq(su_int(db, "SELECT average IS NULL FROM versions WHERE "
				"number = 6"),
		     1);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* A file of schema 10 keeps its versions (without averages) and gains the
 * columns; its rollbacks restore without an average. */
Test(storage, schema_10_versions_migrate_without_an_average)
{
	char dir[64], path[128], err[512];
	uint16_t a1[4] = {1, 2, 3, 4};
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v10 = {.target_schema = 10};
	struct store *s = su_open(path, &v10);
	cr_assert_eq(store_schema_version(s), 10);
	cr_assert_eq(su_version(s, "v", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	/* an average given to a file without the column is not written */
	cr_assert_eq(su_version_avg(s, "v", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2000,
				    1.0f, a1, 4),
		     0);
	su_commit(s);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(
	    store_rollback(s, "v", &t, "on 10", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_null(res.average);
	store_free(s);
	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	t.number = 1;
	cr_assert_eq(
	    store_rollback(s, "v", &t, "on 11", &res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_null(res.average);
	cr_assert_float_eq(res.adapter[0], 1.0f, 0);
	store_free(s);
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"), 4);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions WHERE average "
				"IS NOT NULL"),
		     0);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* Bytes that end with their own CRC-32 (little-endian), as a model file
 * does: b[n - 4 .. n) = crc32(b[0 .. n - 4)). */
static void crc_trailed(unsigned char *b, size_t n, unsigned char fill)
{
	memset(b, fill, n - 4);
	uint32_t c = store_checksum(b, n - 4);
	for (int i = 0; i < 4; i++)
		b[n - 4 + (size_t)i] = (unsigned char)(c >> (8 * i));
}

/* Two model files of one size are two models.  Each ends with its own
 * CRC-32, so the CRC-32 of the whole file -- what identified a model --
 * is the same constant for both: the second registered as the first, and
 * its versions and forecasts named the first one's bytes (the frozen line
 * of `driftcast plot` came from the wrong model).  A row registered that
 * way before is taken over by the file it holds, not by another one. */
Test(storage, model_files_of_one_size_are_told_apart)
{
	char dir[64], path[128], err[512], name[64];
	unsigned char a[64], b[64];
	int64_t ia = 0, ib = 0, again = 0;
	void *got = NULL;
	size_t n = 0;
	crc_trailed(a, sizeof(a), 'a');
	crc_trailed(b, sizeof(b), 'b');
	cr_assert_eq(store_checksum(a, sizeof(a)), store_checksum(b, sizeof(b)),
		     "the premise: one CRC-32 for both files");
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(store_model_register(s, "a.dcm", "", a, sizeof(a), NULL,
					  &ia, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(store_model_register(s, "b.dcm", "", b, sizeof(b), NULL,
					  &ib, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_neq(ia, ib, "two model files registered as one");
	cr_assert_eq(store_model_register(s, "a-again.dcm", "", a, sizeof(a),
					  NULL, &again, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(again, ia);
	cr_assert_eq(store_model_bytes(s, ib, &got, &n, name, sizeof(name), err,
				       sizeof(err)),
		     0, "%s", err);
	cr_assert(n == sizeof(b) && memcmp(got, b, n) == 0);
	cr_assert_str_eq(name, "b.dcm");
	free(got);
	store_free(s);

	/* a row of an earlier release: the CRC-32 of the file it holds */
	char sql[96];
	snprintf(sql, sizeof(sql),
		 "UPDATE models SET checksum = %u WHERE id = 1",
		 (unsigned)store_checksum(a, sizeof(a)));
	sqlite3 *db = su_raw(path);
	su_exec(db, sql);
	sqlite3_close(db);
	s = su_open(path, NULL);
	cr_assert_eq(store_model_register(s, "b.dcm", "", b, sizeof(b), NULL,
					  &again, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(again, ib);
	cr_assert_eq(store_model_register(s, "a.dcm", "", a, sizeof(a), NULL,
					  &again, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(again, ia, "the earlier row not taken over");
	store_free(s);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM models"), 2);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM models "
				"WHERE checksum < 0"),
		     2);
	sqlite3_close(db);
	su_rmdir(dir);
}
