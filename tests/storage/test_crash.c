/*
 * kill -9 at random moments of a write.  A writer child resumes from the
 * stored Kafka offset (as the daemon does on assign) and writes batches
 * forever: for batch k, every series gets version k (adapter filled from k,
 * parent k-1), an audit row, a forecast and a realised error, and the
 * offset becomes k + 1, all in one transaction.  The parent kills it after
 * a random delay, then checks: PRAGMA integrity_check is ok, the offset and
 * every series' current version agree (state and offset commit together),
 * every version's parent is the previous number, no version exists beyond
 * the offset (no half-written batch), and every blob passes its checksum
 * with the content of its number.  A kill during a migration leaves the
 * schema version before or after it, never in between.
 *
 * CRASH_ITERS sets the number of kills (the slow suite runs many more).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/storage/storeutil.h"

#ifndef CRASH_ITERS
#define CRASH_ITERS 30
#endif
#define NSERIES 8

/* The writer writes one byte to done_fd after each batch it committed. */
static void writer(const char *path, int done_fd)
{
	char err[512], key[32];
	struct store *s = NULL;
	struct store_options o = {.busy_timeout_ms = 10000};
	if (store_open(path, &o, &s, err, sizeof(err)) < 0)
		_exit(10);
	int64_t k = 0;
	bool found;
	if (store_offset_get(s, "in", 0, &k, &found, err, sizeof(err)) < 0)
		_exit(11);
	for (;; k++) {
		for (int i = 0; i < NSERIES; i++) {
			float f[8];
			su_fill(f, 8, (float)k);
			snprintf(key, sizeof(key), "s%d", i);
			if (su_version(s, key,
				       k ? STORE_EV_ADAPT_ACCEPTED
					 : STORE_EV_INIT,
				       (uint64_t)(k ? k - 1 : 0), (uint64_t)k,
				       1000 + k, (float)k) < 0)
				_exit(12);
			struct store_event fc = {.type = STORE_EV_FORECAST,
						 .series = key,
						 .ts = 1000 + k,
						 .version_to = (uint64_t)k,
						 .forecast = f,
						 .horizon = 8};
			if (store_event_put(s, &fc, err, sizeof(err)) < 0 ||
			    store_error_put(s, key, 1000 + k, (uint64_t)k, 0.5f,
					    0.6f, err, sizeof(err)) < 0)
				_exit(13);
		}
		if (store_offset_put(s, "in", 0, k + 1, err, sizeof(err)) < 0 ||
		    store_batch_commit(s, err, sizeof(err)) < 0)
			_exit(14);
		if (write(done_fd, "c", 1) != 1)
			_exit(15);
	}
}

struct check {
	int n, bad;
	int64_t want;
};

static int check_restored(void *user, const struct store_restored *r)
{
	struct check *c = user;
	c->n++;
	if (r->status || (int64_t)r->version != c->want ||
	    r->adapter[0] != (float)c->want ||
	    r->adapter[SU_ADAPTER_LEN - 1] !=
		(float)c->want + 0.001f * (float)(SU_ADAPTER_LEN - 1))
		c->bad++;
	return 0;
}

/* The last committed batch, -1 if none. */
static int64_t verify(const char *path)
{
	char err[512], res[64];
	sqlite3 *db = su_raw(path);
	su_text(db, "PRAGMA integrity_check", res, sizeof(res));
	cr_assert_str_eq(res, "ok");
	/* killed during a migration: it is all or nothing */
	long long uv = su_int(db, "PRAGMA user_version");
	if (uv == 0) {
		cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_master"),
			     0);
		sqlite3_close(db);
		return -1;
	}
	cr_assert_eq(su_int(db, "SELECT count(*) FROM sqlite_master WHERE "
				"name = 'control'"),
		     uv >= 2 ? 1 : 0);
	long long next = su_int(db, "SELECT next_offset FROM kafka_offsets");
	if (next < 0) { /* killed before the first commit */
		cr_assert_lt(su_int(db, "SELECT count(*) FROM versions"), 1);
		sqlite3_close(db);
		return -1;
	}
	long long k = next - 1;
	/* no version beyond the committed batch, none missing below it */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions"),
		     NSERIES * (k + 1));
	cr_assert_eq(su_int(db, "SELECT max(number) FROM versions"), k);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series WHERE "
				"current_version IS NOT "
				"(SELECT number FROM versions v WHERE v.id = "
				"current_version_id)"),
		     0);
	/* lineage */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions v WHERE "
				"v.number > 0 AND NOT EXISTS (SELECT 1 FROM "
				"versions p WHERE p.id = v.parent_id AND "
				"p.series_id = v.series_id AND p.number = "
				"v.number - 1)"),
		     0);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit"),
		     NSERIES * (k + 1));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM forecasts"),
		     NSERIES * (k + 1));
	cr_assert_eq(su_int(db, "SELECT count(*) FROM errors"),
		     NSERIES * (k + 1));
	sqlite3_close(db);

	struct store *s = su_open(path, NULL);
	struct check c = {.want = k};
	size_t bad = 0;
	cr_assert_eq(
	    store_restore(s, NULL, check_restored, &c, &bad, err, sizeof(err)),
	    0, "%s", err);
	cr_assert_eq(c.n, NSERIES);
	cr_assert_eq(c.bad, 0);
	cr_assert_eq(bad, 0);
	store_free(s);
	return k;
}

/* Wait until the writer has committed `commits` batches (bytes on
 * done_fd), then SIGKILL it once it has used cpu_ns more of its own CPU
 * time, or after 10 s of wall time (a writer blocked in fsync uses none).
 * Waiting for commits makes progress independent of how slow the build or
 * machine is; the CPU-time delay lands the kill anywhere inside the open,
 * a migration, a batch or a commit. */
static void kill_after(pid_t pid, int done_fd, int commits, long cpu_ns)
{
	char c;
	for (int n = 0; n < commits; n++) {
		struct pollfd p = {.fd = done_fd, .events = POLLIN};
		cr_assert_eq(poll(&p, 1, 120000), 1,
			     "the writer made no commit in 120 s");
		cr_assert_eq(read(done_fd, &c, 1), 1);
	}
	clockid_t cid;
	struct timespec t0, now, used;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long start = -1;
	if (clock_getcpuclockid(pid, &cid) == 0)
		for (;;) {
			if (clock_gettime(cid, &used) < 0)
				break;
			long ns = used.tv_sec * 1000000000L + used.tv_nsec;
			if (start < 0)
				start = ns;
			if (ns - start >= cpu_ns)
				break;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - t0.tv_sec >= 10)
				break;
			usleep(100);
		}
	kill(pid, SIGKILL);
}

Test(storage_crash, kill9_never_leaves_half_a_batch, .timeout = 600)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	unsigned seed = (unsigned)time(NULL);
	int64_t last = -1, progressed = 0;
	for (int it = 0; it < CRASH_ITERS; it++) {
		int fds[2];
		cr_assert_eq(pipe(fds), 0);
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			writer(path, fds[1]);
		}
		close(fds[1]);
		/* one kill in four before the first commit of this run (in the
		 * open, a migration or the first batch), the others after 1..3
		 * commits; then after 0..20 ms more of the writer's CPU */
		int commits = it % 4;
		long cpu_us = (long)(rand_r(&seed) % 20000);
		kill_after(pid, fds[0], commits, cpu_us * 1000L);
		close(fds[0]);
		int st;
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
			  "the writer failed by itself (status %d, iter %d)",
			  st, it);
		int64_t k = verify(path);
		cr_assert_geq(k, last, "state went back");
		if (commits > 0)
			cr_assert_geq(k, last + commits,
				      "a commit the writer saw return is gone "
				      "(iter %d)",
				      it);
		if (k > last)
			progressed++;
		last = k;
	}
	/* every run that saw a commit made progress */
	cr_assert_geq(progressed, CRASH_ITERS - (CRASH_ITERS + 3) / 4);
	su_rmdir(dir);
}
