/*
 * The rollback handshake between two processes: a "daemon" child holds the
 * database (store_options.daemon) and polls the control table every 250 ms
 * while it writes; the test process plays `driftcast rollback` through
 * store_rollback_request().  The request must be applied by the daemon's
 * connection within one second, and refused or cancelled cleanly
 * otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/storage/storeutil.h"

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Child: hold the daemon lock, write a version of "busy" every 50 ms, poll
 * every 250 ms (or never, with poll = false), and report each applied
 * rollback on the pipe as "series new_version first_float\n". */
static void daemon_child(const char *path, int fd, bool poll, int run_ms)
{
	char err[512], line[128];
	struct store *s = NULL;
	struct store_options o = {.daemon = true, .batch_ms = 100};
	if (store_open(path, &o, &s, err, sizeof(err)) < 0)
		_exit(10);
	if (write(fd, "ready\n", 6) != 6)
		_exit(11);
	int64_t start = now_ms(), last_poll = 0;
	uint64_t v = 1;
	while (now_ms() - start < run_ms) {
		if (su_version(s, "busy", STORE_EV_ADAPT_ACCEPTED, v - 1, v,
			       (int64_t)v, (float)v) < 0)
			_exit(12);
		v++;
		/* a busy daemon: the next batch begins right after the
		 * commit, so the main database is almost always locked */
		if (store_batch_due(s, mono()) &&
		    store_batch_commit(s, err, 512) < 0)
			_exit(13);
		if (poll && now_ms() - last_poll >= 250) {
			struct store_rollback_result res;
			last_poll = now_ms();
			int r = store_control_poll(s, &res, err, sizeof(err));
			if (r == -EAGAIN) { /* the daemon's flush first */
				if (store_batch_commit(s, err, 512) < 0)
					_exit(15);
				r = store_control_poll(s, &res, err,
						       sizeof(err));
			}
			if (r == 1) {
				int n = snprintf(
				    line, sizeof(line), "%s %llu %g\n",
				    res.series,
				    (unsigned long long)res.new_version,
				    (double)res.adapter[0]);
				if (write(fd, line, (size_t)n) != n)
					_exit(14);
			}
		}
		usleep(5000);
	}
	store_free(s);
	_exit(0);
}

static pid_t start_daemon(const char *path, bool poll, int run_ms, int *rfd)
{
	int p[2];
	char buf[8];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		daemon_child(path, p[1], poll, run_ms);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], buf, 6), 6);
	*rfd = p[0];
	return pid;
}

static void prepare(const char *path)
{
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "m", STORE_EV_INIT, 0, 0, 10, 0.0f), 0);
	for (int v = 1; v <= 3; v++)
		cr_assert_eq(su_version(s, "m", STORE_EV_ADAPT_ACCEPTED,
					(uint64_t)v - 1, (uint64_t)v, 10 + v,
					(float)v * 100.0f),
			     0);
	cr_assert_eq(su_version(s, "busy", STORE_EV_INIT, 0, 0, 0, 0.0f), 0);
	su_commit(s);
	store_free(s);
}

Test(storage_control, daemon_applies_rollback_within_a_second, .timeout = 120)
{
	char dir[64], path[128], err[512], line[128] = "";
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	prepare(path);
	int rfd;
	pid_t pid = start_daemon(path, true, 3000, &rfd);

	struct store *cli = su_open(path, NULL);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 1};
	int64_t t0 = now_ms();
	int r = store_rollback_request(cli, "m", &t, "operator test", 5000,
				       &res, err, sizeof(err));
	int64_t took = now_ms() - t0;
	cr_assert_eq(r, 0, "%s", err);
	cr_assert(res.via_daemon);
	cr_assert_eq(res.restored, 1);
	cr_assert_eq(res.from_version, 3);
	cr_assert_eq(res.new_version, 4);
	cr_assert_lt(took, 1000, "applied after %lld ms", (long long)took);

	/* the daemon's side got the adapter to load into its engine */
	ssize_t n = read(rfd, line, sizeof(line) - 1);
	cr_assert_gt(n, 0);
	line[n] = '\0';
	cr_assert_str_eq(line, "m 4 100\n");

	/* refused before asking: another series' number */
	t.number = 40;
	cr_assert_eq(store_rollback_request(cli, "m", &t, "x", 5000, &res, err,
					    sizeof(err)),
		     -EINVAL);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon status %d",
		  st);
	close(rfd);
	store_free(cli);

	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM control WHERE status = "
				"'applied' AND new_version = 4"),
		     1);
	cr_assert_eq(su_int(db, "SELECT restored_from FROM v_versions WHERE "
				"series = 'm' AND version = 4"),
		     1);
	cr_assert_eq(su_int(db, "SELECT parent FROM v_versions WHERE series "
				"= 'm' AND version = 4"),
		     3);
	/* the daemon's own writes went on around it */
	cr_assert_gt(su_int(db, "SELECT current_version FROM series WHERE key "
				"= 'busy'"),
		     10);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage_control, silent_daemon_times_out_and_request_is_cancelled,
     .timeout = 120)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	prepare(path);
	int rfd;
	pid_t pid = start_daemon(path, false, 1500, &rfd);
	struct store *cli = su_open(path, NULL);
	struct store_rollback_result res;
	struct store_rollback_target t = {.number = 2};
	cr_assert_eq(store_rollback_request(cli, "m", &t, "x", 400, &res, err,
					    sizeof(err)),
		     -ETIMEDOUT);
	cr_assert(strstr(err, "cancelled"), "%s", err);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	close(rfd);
	/* no daemon any more: the same request is applied directly */
	cr_assert_eq(store_rollback_request(cli, "m", &t, "x", 400, &res, err,
					    sizeof(err)),
		     0, "%s", err);
	cr_assert(!res.via_daemon);
	cr_assert_eq(res.new_version, 4);
	store_free(cli);
	char side[160];
	snprintf(side, sizeof(side), "%s.control", path);
	sqlite3 *db = su_raw(side);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM requests WHERE status = "
				"'cancelled'"),
		     1);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM requests WHERE status = "
				"'pending'"),
		     0);
	sqlite3_close(db);
	/* the direct rollback did not go through the sidecar */
	db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM control"), 0);
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(storage_control, second_daemon_refused)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	prepare(path);
	int rfd;
	pid_t pid = start_daemon(path, false, 3000, &rfd);
	struct store *s = NULL;
	struct store_options o = {.daemon = true};
	cr_assert_eq(store_open(path, &o, &s, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "another driftcast daemon"), "%s", err);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	close(rfd);
	/* the kernel drops the lock of a killed daemon */
	s = su_open(path, &o);
	store_free(s);
	su_rmdir(dir);
}

Test(storage_control, poll_is_cheap_when_nothing_changed)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	prepare(path);
	struct store_options o = {.daemon = true};
	struct store *s = su_open(path, &o);
	struct store_rollback_result res;
	int64_t t0 = now_ms();
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), 0);
	int64_t took = now_ms() - t0;
	/* well under a millisecond per poll, even under the sanitizers */
	cr_assert_lt(took, 5000, "%lld ms for 10000 polls", (long long)took);
	store_free(s);
	su_rmdir(dir);
}

/* A rollback request of `driftcast rollback`, left as the CLI leaves it. */
static void request(const char *path, const char *series, int target)
{
	char cp[160], sql[256];
	snprintf(cp, sizeof(cp), "%s.control", path);
	sqlite3 *c;
	cr_assert_eq(sqlite3_open(cp, &c), SQLITE_OK);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO requests (created_at, series, by_time, target, "
		 "reason) VALUES (1, '%s', 0, %d, 'op');",
		 series, target);
	cr_assert_eq(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
		     sqlite3_errmsg(c));
	sqlite3_close(c);
}

static long long count(const char *path, const char *sql)
{
	sqlite3 *db = su_raw(path);
	long long n = su_int(db, sql);
	sqlite3_close(db);
	return n;
}

/* A request that finds the daemon's batch open waits until the daemon has
 * made it durable, with its offsets: a rollback commits, and took the
 * batch's rows without their offsets (a crash then applied those messages
 * twice), and, when a write had failed in the batch, took its error for
 * the rollback's and forgot it (the daemon's next commit then stored
 * offsets past the rows lost). */
Test(storage_control, a_request_waits_for_the_open_batch)
{
	char dir[64], path[128], err[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	prepare(path);
	struct store_options o = {.daemon = true};
	struct store *s = su_open(path, &o);
	struct store_rollback_result res;
	cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), 0);
	cr_assert_eq(store_offset_put(s, "in", 0, 10, err, sizeof(err)), 0);
	su_commit(s);

	/* an open batch (busy adapts; its offset comes at the flush) */
	cr_assert_eq(
	    su_version(s, "busy", STORE_EV_ADAPT_ACCEPTED, 0, 1, 20, 1.0f), 0);
	request(path, "m", 1);
	cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), -EAGAIN,
		     "%s", err);
	store_batch_abort(s); /* the daemon never made it durable */
	cr_assert_eq(count(path, "SELECT count(*) FROM versions v JOIN series "
				 "s ON s.id = v.series_id WHERE s.key = "
				 "'busy'"),
		     1, "the batch's rows were committed by the rollback");
	/* with no batch open, the request is applied */
	cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(res.new_version, 4);

	/* a write fails in the open batch (a full disk, then space again) */
	cr_assert_eq(
	    su_version(s, "busy", STORE_EV_ADAPT_ACCEPTED, 0, 1, 20, 1.0f), 0);
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
		 count(path, "PRAGMA page_count"));
	cr_assert_eq(store_debug_exec(s, sql, err, sizeof(err)), 0);
	static float big[16384];
	struct store_event ev = {.type = STORE_EV_ADAPT_ACCEPTED,
				 .series = "busy",
				 .version_from = 1,
				 .version_to = 2,
				 .reason = "fill",
				 .adapter = big,
				 .adapter_len = 16384};
	int r = 0;
	for (int i = 0; i < 100 && r == 0; i++)
		r = store_event_put(s, &ev, err, sizeof(err));
	cr_assert_eq(r, -ENOSPC, "%d %s", r, err);
	cr_assert_eq(
	    store_debug_exec(s, "PRAGMA max_page_count = 1000000", err, 512),
	    0);
	request(path, "m", 2);
	cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), -EAGAIN,
		     "%s", err);
	/* the daemon's flush still learns that its batch was lost */
	cr_assert_eq(store_offset_put(s, "in", 0, 20, err, sizeof(err)),
		     -ENOSPC);
	cr_assert_eq(store_batch_commit(s, err, sizeof(err)), -ENOSPC);
	int64_t off;
	bool found;
	cr_assert_eq(
	    store_offset_get(s, "in", 0, &off, &found, err, sizeof(err)), 0);
	cr_assert_eq(off, 10, "an offset stored past the rows lost");
	cr_assert_eq(store_control_poll(s, &res, err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(res.new_version, 5);
	store_free(s);
	su_rmdir(dir);
}

/* The daemon's first poll and an operator's first request make the control
 * file at once: switching a new file to WAL answered "database is locked"
 * to one of them at once, busy timeout or not (seen in CI as a refused
 * rollback).  Three processes open a new control file together, 30 times:
 * every one gets it. */
Test(storage_control, opening_a_new_control_file_together, .timeout = 120)
{
	int failed = 0;
	for (int round = 0; round < 30; round++) {
		char dir[64], path[128];
		su_tmpdb(dir, sizeof(dir), path, sizeof(path));
		prepare(path);
		int64_t go = now_ms() + 30;
		pid_t pid[3];
		for (int i = 0; i < 3; i++) {
			pid[i] = fork();
			cr_assert(pid[i] >= 0);
			if (pid[i] == 0) {
				char err[512];
				struct store *s = NULL;
				struct store_rollback_result res;
				if (store_open(path, NULL, &s, err,
					       sizeof(err)) < 0)
					_exit(2);
				while (now_ms() < go)
					;
				int r = store_control_poll(s, &res, err,
							   sizeof(err));
				if (r < 0)
					fprintf(stderr, "%s\n", err);
				store_free(s);
				_exit(r < 0 ? 1 : 0);
			}
		}
		for (int i = 0; i < 3; i++) {
			int st;
			cr_assert_eq(waitpid(pid[i], &st, 0), pid[i]);
			failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
		}
		su_rmdir(dir);
	}
	cr_assert_eq(failed, 0, "%d of 90 could not open the control file",
		     failed);
}
