/*
 * storage/handover.c: a series' input partition, its moves out and in,
 * versions adopted from another host (their number and parent kept), the
 * restore and the saved recent values of one partition, `driftcast
 * rollback` refusing a series this database handed over (pointing to the
 * Kafka form), the resolution of a rollback record from Kafka (a version
 * here, one only another host holds, unknown ones), and the migrations of
 * a schema-8 file to 9 and of a schema-9 file to 10.
 */
#include <errno.h>
#include <math.h>
#include <time.h>

#include "storage/handover.h"
#include "tests/storage/storeutil.h"
#include "tests/testutil.h"

struct got {
	int n;
	char series[8][16];
	uint64_t version[8];
	size_t len[8];
};

static int got_one(void *user, const struct store_restored *r)
{
	struct got *g = user;
	cr_assert_lt(g->n, 8);
	snprintf(g->series[g->n], sizeof(g->series[0]), "%s", r->series);
	g->version[g->n] = r->version;
	g->len[g->n++] = r->adapter_len;
	return 0;
}

static int count_recent(void *user, const struct store_recent *r)
{
	(void)r;
	++*(int *)user;
	return 0;
}

/* Take partition's saved recent values; how many there were. */
static int take_count(struct store *s, int partition)
{
	char err[512] = "";
	int n = 0;
	cr_assert_eq(store_recent_take_partition(s, partition, count_recent, &n,
						 NULL, err, sizeof(err)),
		     0, "%s", err);
	return n;
}

static void put_recent(struct store *s, const char *series)
{
	float v[3] = {1, 2, 3};
	struct store_recent r = {.series = series,
				 .last_ts = 5000,
				 .step = 60,
				 .position = 3,
				 .values = v,
				 .count = 3};
	cr_assert_eq(store_recent_put(s, &r, NULL, 0), 0);
}

/* Series "a" takes version number (parent number - 1, a 4-float adapter)
 * from another host's state topic record. */
static void adopt(struct store *s, uint64_t number, int64_t ts)
{
	char err[512] = "";
	float ad[4] = {1, 2, 3, 4};
	struct store_adopted a = {.series = "a",
				  .number = number,
				  .parent = (int64_t)number - 1,
				  .ts = ts,
				  .adapter = ad,
				  .adapter_len = 4,
				  .note = "from the state topic"};
	cr_assert_eq(store_version_adopt(s, &a, NULL, err, sizeof(err)), 0,
		     "%s", err);
}

/* adopt(), and the move in of partition p recorded. */
static void adopt_in(struct store *s, uint64_t number, int64_t ts, int32_t p,
		     int64_t next_offset)
{
	char err[512] = "";
	adopt(s, number, ts);
	struct store_handover in = {.series = "a",
				    .partition = p,
				    .in = true,
				    .source = "changelog",
				    .version = (int64_t)number,
				    .next_offset = next_offset};
	cr_assert_eq(store_handover_put(s, &in, err, sizeof(err)), 0, "%s",
		     err);
}

Test(handover, partitions_moves_and_adopted_versions)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(su_version(s, "b", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(su_version(s, "old", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(store_series_partition_put(s, "a", 2, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(store_series_partition_put(s, "b", 3, err, sizeof(err)), 0,
		     "%s", err);
	put_recent(s, "a");
	put_recent(s, "old");
	su_commit(s);

	/* the restore of one partition, and of series without one */
	struct got g = {0};
	cr_assert_eq(
	    store_restore_partition(s, 2, got_one, &g, NULL, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.series[0], "a");
	g.n = 0;
	cr_assert_eq(
	    store_restore_partition(s, -1, got_one, &g, NULL, err, sizeof(err)),
	    0);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.series[0], "old");

	/* a moves out: handed over, its saved values stay until taken */
	struct store_handover out = {.series = "a",
				     .partition = 2,
				     .source = "revoked",
				     .version = 0,
				     .next_offset = 40};
	cr_assert_eq(store_handover_put(s, &out, err, sizeof(err)), 0, "%s",
		     err);
	su_commit(s);
	struct store_series_where w;
	cr_assert_eq(store_series_where(s, "a", &w, err, sizeof(err)), 0);
	cr_assert(w.handed_over);
	cr_assert_eq(w.partition, 2);
	cr_assert_gt(w.since_ms, 0);
	cr_assert(!w.released_at_stop);
	cr_assert_eq(store_series_where(s, "b", &w, err, sizeof(err)), 0);
	cr_assert(!w.handed_over);
	cr_assert_eq(store_series_where(s, "zz", &w, err, sizeof(err)),
		     -ENOENT);
	/* old was released at its host's own stop */
	struct store_handover stop = {.series = "old",
				      .partition = 5,
				      .source = "stopped",
				      .version = 0,
				      .next_offset = 40};
	cr_assert_eq(store_handover_put(s, &stop, err, sizeof(err)), 0, "%s",
		     err);
	su_commit(s);
	cr_assert_eq(store_series_where(s, "old", &w, err, sizeof(err)), 0);
	cr_assert(w.handed_over && w.released_at_stop);
	/* and the database says so: stopped, not handed over (a single host
	 * that stopped cleanly once listed every series as handed to
	 * another host) */
	sqlite3 *raw = su_raw(path);
	char status[32];
	su_text(raw, "SELECT status FROM v_series WHERE series = 'old'", status,
		sizeof(status));
	cr_assert_str_eq(status, "stopped");
	su_text(raw, "SELECT status FROM v_series WHERE series = 'a'", status,
		sizeof(status));
	cr_assert_str_eq(status, "handed_over");
	sqlite3_close(raw);

	/* `driftcast rollback` on a handed-over series says where it went */
	store_free(s);
	struct run_result res;
	char *rb[] = {
	    "driftcast",    "rollback", "--db",	    path,   "--series", "a",
	    "--to-version", "0",	"--reason", "test", NULL};
	cr_assert_eq(tu_run(&res, rb), 0);
	cr_assert_eq(res.status, 1, "%s", res.out);
	cr_assert(strstr(res.err, "handed over to another host"), "%s",
		  res.err);
	cr_assert(strstr(res.err, "partition 2"), "%s", res.err);
	/* when it left: this year, not 1970 (the time was once read as ns
	 * after a division by 1000 of its ms) */
	char year[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	cr_assert_gt(
	    strftime(year, sizeof(year), "(input partition 2, %Y-", &tm), 0);
	cr_assert(strstr(res.err, year), "%s", res.err);
	cr_assert(strstr(res.err, "driftcast rollback --brokers"), "%s",
		  res.err);
	char *rb2[] = {
	    "driftcast",    "rollback", "--db",	    path,   "--series", "b",
	    "--to-version", "0",	"--reason", "test", NULL};
	cr_assert_eq(tu_run(&res, rb2), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	/* released at this host's stop (a single host stopped cleanly):
	 * rolled back here, with a note on the Kafka form */
	char *rb3[] = {
	    "driftcast",    "rollback", "--db",	    path,   "--series", "old",
	    "--to-version", "0",	"--reason", "test", NULL};
	cr_assert_eq(tu_run(&res, rb3), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.err, "released series old at its stop"), "%s",
		  res.err);
	cr_assert(strstr(res.out, "restored as new version 1"), "%s", res.out);
	s = su_open(path, NULL);

	/* a comes back from another host at its version 7 (parent 6) */
	adopt_in(s, 7, 9000, 2, 90);
	/* the same version again (it was made here): current again */
	adopt(s, 7, 9000);
	su_commit(s);
	cr_assert_eq(store_series_where(s, "a", &w, err, sizeof(err)), 0);
	cr_assert(!w.handed_over);
	g.n = 0;
	cr_assert_eq(
	    store_restore_partition(s, 2, got_one, &g, NULL, err, sizeof(err)),
	    0);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.version[0], 7);
	cr_assert_eq(g.len[0], 4);

	/* the saved values of partition 2 are taken (or dropped) once */
	size_t saved = 0;
	cr_assert_eq(
	    store_recent_count_partition(s, 2, &saved, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(saved, 1);
	cr_assert_eq(take_count(s, 2), 1);
	cr_assert_eq(take_count(s, 2), 0);
	cr_assert_eq(
	    store_recent_count_partition(s, 2, &saved, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(saved, 0);
	cr_assert_eq(store_recent_take_partition(s, -1, NULL, NULL, NULL, err,
						 sizeof(err)),
		     0);
	store_free(s);

	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series_recent"), 0);
	cr_assert_eq(su_int(db, "SELECT parent_number FROM versions v JOIN "
				"series s ON s.id = v.series_id WHERE s.key = "
				"'a' AND v.number = 7"),
		     6);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions WHERE reason = "
				"'handover'"),
		     1);
	/* a's out and in, old's stop */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM handovers"), 3);
	cr_assert_eq(su_int(db, "SELECT current_version FROM series WHERE key "
				"= 'a'"),
		     7);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* A state from the topic older than this database's lineage (this host
 * went further, then crashed before publishing it) or a number that holds
 * another adapter here becomes the next version here, its parent the
 * newest: a number is never used twice, never goes back.  The same number
 * with the same adapter at the head is the lineage coming back. */
static uint64_t adopt_as(struct store *s, uint64_t number, float v)
{
	char err[512] = "";
	float ad[4] = {v, v, v, v};
	uint64_t got = 0;
	struct store_adopted a = {.series = "c",
				  .number = number,
				  .parent = (int64_t)number - 1,
				  .ts = 100,
				  .adapter = ad,
				  .adapter_len = 4,
				  .note = "from the state topic"};
	cr_assert_eq(store_version_adopt(s, &a, &got, err, sizeof(err)), 0,
		     "%s", err);
	su_commit(s);
	return got;
}

Test(handover, adopted_state_behind_this_lineage_takes_the_next_number)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "c", STORE_EV_INIT, 0, 0, 10, 0.0f), 0);
	for (uint64_t v = 1; v <= 3; v++)
		cr_assert_eq(su_version(s, "c", STORE_EV_ADAPT_ACCEPTED, v - 1,
					v, 10 + (int64_t)v, (float)v),
			     0);
	su_commit(s);
	/* version 2 as published before a crash; 3 was made after it */
	cr_assert_eq(adopt_as(s, 2, 2.0f), 4);
	/* the head again, same adapter: current again, no new row */
	cr_assert_eq(adopt_as(s, 4, 2.0f), 4);
	/* number 4 from elsewhere with another adapter */
	cr_assert_eq(adopt_as(s, 4, 9.0f), 5);
	/* ahead of this lineage: the other host's number */
	cr_assert_eq(adopt_as(s, 8, 9.5f), 8);
	store_free(s);

	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"), 7);
	cr_assert_eq(su_int(db, "SELECT count(DISTINCT number) FROM versions"),
		     7);
	cr_assert_eq(su_int(db, "SELECT parent_number FROM versions WHERE "
				"number = 4"),
		     3);
	cr_assert_eq(su_int(db, "SELECT parent_number FROM versions WHERE "
				"number = 5"),
		     4);
	cr_assert_eq(su_int(db, "SELECT parent_number FROM versions WHERE "
				"number = 8"),
		     7);
	cr_assert_eq(su_int(db, "SELECT current_version FROM series"), 8);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* A database main wrote at schema 8 (forecasts.value; before the
 * handovers of schema 9) migrates to 9 at its next open and keeps every
 * row: versions, forecasts with their values, saved recent values,
 * offsets.  Its series have no partition yet (restored as partition -1),
 * and the versions CHECK edited by migration 9 takes a 'handover' row. */
Test(handover, schema_8_file_migrates_to_9_and_keeps_its_rows)
{
	char dir[64], path[128], err[512] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v8 = {.target_schema = 8};
	struct store *s = su_open(path, &v8);
	cr_assert_eq(store_schema_version(s), 8);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2000, 1.0f), 0);
	float vals[3] = {6, 7, 8};
	struct store_event fc = {.type = STORE_EV_FORECAST,
				 .series = "a",
				 .ts = 3000,
				 .version_to = 1,
				 .forecast = vals,
				 .horizon = 3,
				 .value = 5.0f};
	cr_assert_eq(store_event_put(s, &fc, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_offset_put(s, "in", 0, 41, err, sizeof(err)), 0);
	put_recent(s, "a");
	su_commit(s);
	store_free(s);

	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), 8);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_schema WHERE "
				"name = 'handovers'"),
		     0);
	sqlite3_close(db);

	struct store_options v9 = {.target_schema = 9};
	s = su_open(path, &v9);
	cr_assert_eq(store_schema_version(s), 9);
	struct got g = {0};
	cr_assert_eq(
	    store_restore_partition(s, -1, got_one, &g, NULL, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.series[0], "a");
	cr_assert_eq(g.version[0], 1);
	int64_t next = 0;
	bool found = false;
	cr_assert_eq(
	    store_offset_get(s, "in", 0, &next, &found, err, sizeof(err)), 0);
	cr_assert(found);
	cr_assert_eq(next, 41);
	cr_assert_eq(store_series_partition_put(s, "a", 1, err, sizeof(err)), 0,
		     "%s", err);
	adopt_in(s, 5, 4000, 1, 41);
	su_commit(s);
	cr_assert_eq(take_count(s, 1), 1);
	store_free(s);

	db = su_raw(path);
	cr_assert_eq(su_int(db, "PRAGMA user_version"), 9);
	char text[32];
	su_text(db, "PRAGMA integrity_check", text, sizeof(text));
	cr_assert_str_eq(text, "ok");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"), 3);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions WHERE reason = "
				"'handover'"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"), 1);
	cr_assert_eq(su_int(db, "SELECT CAST(value * 10 AS INTEGER) FROM "
				"forecasts"),
		     50);
	cr_assert_eq(su_int(db, "SELECT partition FROM series WHERE key = "
				"'a'"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM handovers"), 1);
	/* main's v_series of schema 8: the last data time, every version */
	cr_assert_eq(su_int(db, "SELECT versions FROM v_series WHERE series "
				"= 'a'"),
		     3);
	cr_assert_eq(su_int(db, "SELECT current_version FROM v_series WHERE "
				"series = 'a'"),
		     5);
	cr_assert_eq(su_int(db, "SELECT last_ts FROM v_series WHERE series "
				"= 'a'"),
		     4000);
	sqlite3_close(db);
	su_rmdir(dir);
}

/* A schema-9 file's recent values (saved without a published average)
 * survive migration 10 and read as having none; after it, the average
 * is saved and read back. */
static int avg_len(void *user, const struct store_recent *r)
{
	*(long *)user = r->average ? (long)r->average_len : -1;
	return 0;
}

Test(handover, schema_9_file_migrates_and_keeps_its_rows)
{
	char dir[64], path[128], err[512] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store_options v9 = {.target_schema = 9};
	struct store *s = su_open(path, &v9);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	put_recent(s, "a");
	su_commit(s);
	long got = 0;
	cr_assert_eq(store_recent_take_partition(s, -1, avg_len, &got, NULL,
						 err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got, -1);
	put_recent(s, "a");
	su_commit(s);
	store_free(s);

	s = su_open(path, NULL);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	cr_assert_eq(STORE_SCHEMA_VERSION, 12);
	got = 0;
	cr_assert_eq(store_recent_take_partition(s, -1, avg_len, &got, NULL,
						 err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got, -1, "a schema-9 row has no average");
	float v[3] = {1, 2, 3};
	uint16_t avg[2] = {1, 2};
	struct store_recent r = {.series = "a",
				 .last_ts = 6000,
				 .step = 60,
				 .position = 3,
				 .values = v,
				 .count = 3,
				 .average = avg,
				 .average_len = 2,
				 .average_version = 1};
	cr_assert_eq(store_recent_put(s, &r, err, sizeof(err)), 0, "%s", err);
	su_commit(s);
	cr_assert_eq(store_recent_take_partition(s, -1, avg_len, &got, NULL,
						 err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(got, 2);
	store_free(s);
	sqlite3 *db = su_raw(path);
	char text[32];
	su_text(db, "PRAGMA integrity_check", text, sizeof(text));
	cr_assert_str_eq(text, "ok");
	sqlite3_close(db);
	su_rmdir(dir);
}

/* The owner's side of a rollback sent through Kafka: resolved inside the
 * open batch, nothing written; a version this database lacks below the
 * current one takes the carried block; unknown series and versions are
 * refused with the errno run_control.c maps to a dead-letter reason. */
Test(handover, rollback_prepare_local_carried_and_unknown)
{
	char dir[64], path[128], err[512];
	float carried[SU_ADAPTER_LEN];
	struct store_rollback_result rb;
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2000, 1.0f), 0);
	/* versions 2..6 were made on another host; 7 came from there */
	adopt_in(s, 7, 9000, 2, 90);

	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(
	    store_rollback_prepare(s, "a", &t, NULL, 0, &rb, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(rb.from_version, 7);
	cr_assert_eq(rb.restored, 1);
	cr_assert_eq(rb.new_version, 8);
	cr_assert_eq(rb.adapter_len, SU_ADAPTER_LEN);
	cr_assert_float_eq(rb.adapter[0], 1.0f, 0.0f);

	/* version 4: not here; without a block refused, with one taken */
	t.number = 4;
	cr_assert_eq(
	    store_rollback_prepare(s, "a", &t, NULL, 0, &rb, err, sizeof(err)),
	    -EINVAL);
	cr_assert(
	    strstr(err, "version 4 of series 'a' is not in this database"),
	    "%s", err);
	su_fill(carried, SU_ADAPTER_LEN, 4.0f);
	cr_assert_eq(store_rollback_prepare(s, "a", &t, carried, SU_ADAPTER_LEN,
					    &rb, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(rb.restored, 4);
	cr_assert_eq(rb.new_version, 8);
	cr_assert_eq(rb.adapter, carried);
	/* a number above the current one exists nowhere: refused, block or
	 * not */
	t.number = 9;
	cr_assert_eq(store_rollback_prepare(s, "a", &t, carried, SU_ADAPTER_LEN,
					    &rb, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(store_rollback_prepare(s, "zz", &t, carried,
					    SU_ADAPTER_LEN, &rb, err,
					    sizeof(err)),
		     -ENOENT);
	/* nothing was written: still current 7, next 8 */
	t.number = 1;
	cr_assert_eq(
	    store_rollback_prepare(s, "a", &t, NULL, 0, &rb, err, sizeof(err)),
	    0);
	cr_assert_eq(rb.from_version, 7);
	cr_assert_eq(rb.new_version, 8);
	store_free(s);
	su_rmdir(dir);
}

/* Taking a partition's saved recent values joins the open batch and does
 * not commit it: an assignment while the daemon's batch is held (dead
 * letters undelivered) must not make that batch's rows durable before
 * them.  The rows taken and the batch's own rows are both gone when the
 * batch is abandoned, both there when it commits; the values taken within
 * the batch are given once. */
Test(handover, taking_recent_values_does_not_commit_the_open_batch)
{
	char dir[64], path[128], err[512] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(store_series_partition_put(s, "a", 2, err, sizeof(err)), 0,
		     "%s", err);
	put_recent(s, "a");
	su_commit(s);

	/* a batch is open (the held one): a version of series b */
	cr_assert_eq(su_version(s, "b", STORE_EV_INIT, 0, 0, 2000, 0.0f), 0);
	cr_assert_eq(take_count(s, 2), 1);
	cr_assert_eq(take_count(s, 2), 0, "taken twice within the batch");
	store_batch_abort(s); /* the held batch abandoned (a stop gave up) */
	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series WHERE key = 'b'"),
		     0, "the open batch was committed by the take");
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series_recent"), 1,
		     "the take's deletion outlived its batch");
	sqlite3_close(db);

	/* committed with its batch */
	cr_assert_eq(su_version(s, "b", STORE_EV_INIT, 0, 0, 2000, 0.0f), 0);
	cr_assert_eq(take_count(s, 2), 1);
	su_commit(s);
	db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series WHERE key = 'b'"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series_recent"), 0);
	sqlite3_close(db);
	store_free(s);
	su_rmdir(dir);
}
