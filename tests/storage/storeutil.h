/*
 * Helpers shared by the storage tests: temporary databases, writing a few
 * versions, and a raw SQLite connection to inspect (or damage) the file
 * behind the store's back.
 */
#ifndef DRIFTCAST_TESTS_STOREUTIL_H
#define DRIFTCAST_TESTS_STOREUTIL_H

#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "storage/storage_private.h"

#define SU_ADAPTER_LEN 64

/* A fresh directory (0755, so a dropped-privilege child can enter it) and
 * "<dir>/t.db" in path. */
static inline void su_tmpdb(char *dir, size_t dir_size, char *path,
			    size_t path_size)
{
	snprintf(dir, dir_size, "/tmp/dc-store-XXXXXX");
	cr_assert(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(path, path_size, "%s/t.db", dir);
}

static inline void su_rmdir(const char *dir)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static inline struct store *su_open(const char *path,
				    const struct store_options *o)
{
	struct store *s = NULL;
	char err[1024] = "";
	int r = store_open(path, o, &s, err, sizeof(err));
	cr_assert_eq(r, 0, "store_open: %d %s", r, err);
	return s;
}

static inline void su_fill(float *a, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		a[i] = v + 0.001f * (float)i;
}

/* One version-creating event: adapter filled from value v, the average
 * published from it avg [avg_len] (NULL: none). */
static inline int su_version_avg(struct store *s, const char *series, int type,
				 uint64_t from, uint64_t to, int64_t ts,
				 float v, const uint16_t *avg, size_t avg_len)
{
	float a[SU_ADAPTER_LEN];
	char err[1024] = "";
	su_fill(a, SU_ADAPTER_LEN, v);
	struct store_event ev = {
	    .type = type,
	    .trigger = type == STORE_EV_ADAPT_ACCEPTED ? STORE_TRIGGER_SCHEDULE
						       : STORE_TRIGGER_NONE,
	    .series = series,
	    .ts = ts,
	    .version_from = from,
	    .version_to = to,
	    .steps = 3,
	    .loss_before = 1.0f,
	    .loss_after = 0.5f,
	    .guard_before = 2.0f,
	    .guard_after = 1.5f,
	    .update_norm = 0.1f,
	    .adapted_error = NAN,
	    .shadow_error = NAN,
	    .reason = "test",
	    .adapter = a,
	    .adapter_len = SU_ADAPTER_LEN,
	    .average = avg,
	    .average_len = avg_len,
	};
	return store_event_put(s, &ev, err, sizeof(err));
}

/* The same without an average. */
static inline int su_version(struct store *s, const char *series, int type,
			     uint64_t from, uint64_t to, int64_t ts, float v)
{
	return su_version_avg(s, series, type, from, to, ts, v, NULL, 0);
}

static inline void su_commit(struct store *s)
{
	char err[1024] = "";
	int r = store_batch_commit(s, err, sizeof(err));
	cr_assert_eq(r, 0, "commit: %d %s", r, err);
}

/* A raw connection to the file. */
static inline sqlite3 *su_raw(const char *path)
{
	sqlite3 *db = NULL;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* First column of the first row of sql, as integer (-1 when no row). */
static inline long long su_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static inline void su_text(sqlite3 *db, const char *sql, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, n, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static inline void su_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
}

#endif
