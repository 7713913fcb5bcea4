/*
 * `driftcast history` and `driftcast versions` over several hosts'
 * databases (storage/fleet.c): one listing merged by time with each row's
 * database, a lineage that moved between hosts read as one chain, its
 * current version marked in one database (after a stop, after a crash),
 * and the refusals (a missing, damaged or repeated file, too many files).
 */
#include <errno.h>

#include "storage/handover.h"
#include "tests/storage/storeutil.h"
#include "tests/testutil.h"

static struct run_result res;

#define NS INT64_C(1000000000)

/* Host B adopts a's v2 (made on host A) and makes v3 (11800 s). */
static void take_over_a(struct store *s)
{
	char err[512] = "";
	float ad[SU_ADAPTER_LEN];
	su_fill(ad, SU_ADAPTER_LEN, 2.0f);
	struct store_adopted ado = {.series = "a",
				    .number = 2,
				    .parent = 1,
				    .ts = 8200 * NS,
				    .adapter = ad,
				    .adapter_len = SU_ADAPTER_LEN,
				    .note = "from host A"};
	cr_assert_eq(store_version_adopt(s, &ado, NULL, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 2, 3, 11800 * NS, 3.0f),
	    0);
}

/* Series a's v0..v2 (1000, 4600, 8200 s), made on this host. */
static void a_made_v0_to_v2(struct store *s)
{
	for (int v = 0; v <= 2; v++)
		cr_assert_eq(
		    su_version(s, "a",
			       v ? STORE_EV_ADAPT_ACCEPTED : STORE_EV_INIT,
			       v ? (uint64_t)v - 1 : 0, (uint64_t)v,
			       (1000 + 3600 * v) * NS, (float)v),
		    0);
}

/* Host A (database path) made a's v0..v2 (1000, 4600, 8200 s) and let it
 * go with its partition (source: revoked, or stopped at A's own stop),
 * with b's v0 (1000 s) if with_b. */
static void host_a(const char *path, const char *source, bool with_b)
{
	char err[512] = "";
	struct store *s = su_open(path, NULL);
	a_made_v0_to_v2(s);
	if (with_b)
		cr_assert_eq(
		    su_version(s, "b", STORE_EV_INIT, 0, 0, 1000 * NS, 0), 0);
	struct store_handover out = {.series = "a",
				     .partition = 2,
				     .source = source,
				     .version = 2,
				     .next_offset = 40};
	cr_assert_eq(store_handover_put(s, &out, err, sizeof(err)), 0, "%s",
		     err);
	su_commit(s);
	store_free(s);
}

/* Host A as host_a (revoked, with b); host B adopted a's v2 and made v3
 * (11800 s), and made c's v0 at 5000 s. */
static void make_hosts(char *dir, size_t dn, char *a, char *b, size_t pn)
{
	su_tmpdb(dir, dn, a, pn);
	snprintf(b, pn, "%s/b.db", dir);
	host_a(a, "revoked", true);
	struct store *s = su_open(b, NULL);
	cr_assert_eq(su_version(s, "c", STORE_EV_INIT, 0, 0, 5000 * NS, 0), 0);
	take_over_a(s);
	su_commit(s);
	store_free(s);
}

/* The position of needle in res.out (fails when absent). */
static const char *at(const char *needle)
{
	const char *p = strstr(res.out, needle);
	cr_assert(p, "no '%s' in:\n%s", needle, res.out);
	return p;
}

Test(fleet, history_merged_by_time)
{
	char dir[64], a[128], b[128];
	make_hosts(dir, sizeof(dir), a, b, sizeof(a));
	char *c[] = {"driftcast", "history",  "--db", a,   "--db",
		     b,		  "--format", "csv",  NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, ",version_restored,reason,db\n"), "%s",
		  res.out);
	char ea0[160], eb0[160], ea1[160], ec0[160], ea2[160], ea3[160];
	snprintf(ea0, sizeof(ea0), ",1000000000000,a,init,");
	snprintf(eb0, sizeof(eb0), ",1000000000000,b,init,");
	snprintf(ea1, sizeof(ea1), ",4600000000000,a,adapt_accepted,");
	snprintf(ec0, sizeof(ec0), ",5000000000000,c,init,");
	snprintf(ea2, sizeof(ea2), ",8200000000000,a,adapt_accepted,");
	snprintf(ea3, sizeof(ea3), ",11800000000000,a,adapt_accepted,");
	/* host B's c (5000 s) between host A's rows at 4600 and 8200 s */
	cr_assert(at(ea0) < at(ea1) && at(eb0) < at(ea1) && at(ea1) < at(ec0) &&
		      at(ec0) < at(ea2) && at(ea2) < at(ea3),
		  "%s", res.out);
	/* each row names its database */
	char lb[160];
	snprintf(lb, sizeof(lb), ",%s\n", b);
	cr_assert(strchr(at(ec0), '\n') == strstr(at(ec0), lb) + strlen(b) + 1,
		  "%s", res.out);
	snprintf(lb, sizeof(lb), ",%s\n", a);
	cr_assert(strchr(at(ea2), '\n') == strstr(at(ea2), lb) + strlen(a) + 1,
		  "%s", res.out);

	char *t[] = {"driftcast", "history",  "--db", a,   "--db",
		     b,		  "--series", "a",    NULL};
	cr_assert_eq(tu_run(&res, t), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(!strncmp(res.out, "db ", 3), "%s", res.out);
	cr_assert_null(strstr(res.out, " c "), "%s", res.out);
	snprintf(lb, sizeof(lb), "\n%s ", b);
	cr_assert(strstr(at(lb), "adapt_accepted"), "%s", res.out);

	char *j[] = {"driftcast", "history", "--db",	 a,	 "--db", b,
		     "--series",  "c",	     "--format", "json", NULL};
	cr_assert_eq(tu_run(&res, j), 0);
	snprintf(lb, sizeof(lb), "\"db\":\"%s\"", b);
	at(lb);
	su_rmdir(dir);
}

Test(fleet, versions_one_chain)
{
	char dir[64], a[128], b[128], l[160];
	make_hosts(dir, sizeof(dir), a, b, sizeof(a));
	char *c[] = {"driftcast", "versions", "--db",	  b,	 "--db", a,
		     "--series",  "a",	      "--format", "csv", NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, ",checksum,note,db\n"), "%s", res.out);
	/* by number whatever the order of --db: A's v0..v2, B's adopted v2
	 * after A's, B's v3; current only where the series lives (B) */
	const char *p[5];
	snprintf(l, sizeof(l), "\na,0,,init,");
	p[0] = at(l);
	snprintf(l, sizeof(l), "\na,1,0,ttt,");
	p[1] = at(l);
	/* A's v2 is not current: A handed the series over */
	snprintf(l, sizeof(l),
		 "\na,2,1,ttt,1970-01-01T02:16:40Z,8200000000000,0,");
	p[2] = at(l);
	snprintf(l, sizeof(l),
		 "\na,2,1,handover,1970-01-01T02:16:40Z,8200000000000,0,");
	p[3] = at(l);
	snprintf(l, sizeof(l),
		 "\na,3,2,ttt,1970-01-01T03:16:40Z,11800000000000,1,");
	p[4] = at(l);
	for (int i = 0; i < 4; i++)
		cr_assert(p[i] < p[i + 1], "%d:\n%s", i, res.out);
	/* each from its database: A's v2, then B's adoption of it */
	snprintf(l, sizeof(l), ",%s\n", a);
	cr_assert(strstr(p[2], l) < p[3], "%s", res.out);
	snprintf(l, sizeof(l), ",%s\n", b);
	cr_assert(strstr(p[3], l) < p[4], "%s", res.out);
	char *u[] = {"driftcast", "versions", "--db",	 a,   "--db",
		     b,		  "--series", "nowhere", NULL};
	cr_assert_eq(tu_run(&res, u), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "no series 'nowhere' in any of the 2"), "%s",
		  res.err);
	su_rmdir(dir);
}

/* The current flag (0 or 1) of series a's version number in database db,
 * from `driftcast versions --db a --db b --series a --format csv`. */
static int current_in(const char *a, const char *b, int number, const char *db)
{
	char *c[] = {"driftcast", "versions", "--db",	  (char *)a,
		     "--db",	  (char *)b,  "--series", "a",
		     "--format",  "csv",      NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	char l[64], tail[160];
	snprintf(l, sizeof(l), "\na,%d,", number);
	snprintf(tail, sizeof(tail), ",%s\n", db);
	for (const char *p = strstr(res.out, l); p; p = strstr(p + 1, l)) {
		const char *end = strchr(p + 1, '\n');
		const char *t = strstr(p, tail);
		if (!end || t != end - strlen(tail) + 1)
			continue;
		/* series,number,parent,reason,time,ts,current,... */
		const char *f = p + 1;
		for (int i = 0; i < 6; i++)
			f = strchr(f, ',') + 1;
		return *f == '1';
	}
	cr_assert_fail("no version %d of a from %s in:\n%s", number, db,
		       res.out);
	return -1;
}

Test(fleet, a_host_that_stopped_keeps_the_current_version)
{
	char dir[64], a[128], b[128], err[512] = "";
	su_tmpdb(dir, sizeof(dir), a, sizeof(a));
	snprintf(b, sizeof(b), "%s/b.db", dir);
	/* host A made a's v0..v2 and stopped cleanly; B has another series */
	host_a(a, "stopped", false);
	struct store *s = su_open(b, NULL);
	cr_assert_eq(su_version(s, "c", STORE_EV_INIT, 0, 0, 5000 * NS, 0), 0);
	su_commit(s);
	store_free(s);
	/* nobody else has served it: A's v2 is its current version (the
	 * fleet view once showed none after a clean stop) */
	cr_assert_eq(current_in(a, b, 2, a), 1, "%s", res.out);

	/* B takes it over (adopts v2, makes v3): current only on B */
	s = su_open(b, NULL);
	take_over_a(s);
	su_commit(s);
	cr_assert_eq(current_in(a, b, 2, a), 0, "%s", res.out);
	cr_assert_eq(current_in(a, b, 3, b), 1, "%s", res.out);

	/* B stops cleanly too: the newer of the two stopped hosts' versions
	 * (B's) is current, in either order of --db */
	struct store_handover stop = {.series = "a",
				      .partition = 2,
				      .source = "stopped",
				      .version = 3,
				      .next_offset = 60};
	cr_assert_eq(store_handover_put(s, &stop, err, sizeof(err)), 0, "%s",
		     err);
	su_commit(s);
	store_free(s);
	cr_assert_eq(current_in(a, b, 3, b), 1, "%s", res.out);
	cr_assert_eq(current_in(a, b, 2, a), 0, "%s", res.out);
	cr_assert_eq(current_in(b, a, 3, b), 1, "%s", res.out);
	cr_assert_eq(current_in(b, a, 2, a), 0, "%s", res.out);
	su_rmdir(dir);
}

/* Host A crashed: its database still serves series a (no revocation
 * recorded) while host B took the partition over.  Only one database's
 * version is current: the one that saw the newest data, whatever the
 * order of --db (both were once marked current). */
/* Series a's last value at ts (series time) on this host; s committed and
 * closed. */
static void close_at(struct store *s, int64_t ts)
{
	char err[512] = "";
	cr_assert_eq(store_series_put(s, "a", ts, NULL, err, sizeof(err)), 0,
		     "%s", err);
	su_commit(s);
	store_free(s);
}

Test(fleet, after_a_crash_one_host_serves)
{
	char dir[64], a[128], b[128];
	su_tmpdb(dir, sizeof(dir), a, sizeof(a));
	snprintf(b, sizeof(b), "%s/b.db", dir);
	/* A: v0..v2, its last value at 8200 s, and no move out */
	struct store *s = su_open(a, NULL);
	a_made_v0_to_v2(s);
	close_at(s, 8200 * NS);
	/* B: adopted v2, made v3, saw values up to 11800 s */
	s = su_open(b, NULL);
	take_over_a(s);
	close_at(s, 11800 * NS);
	cr_assert_eq(current_in(a, b, 3, b), 1, "%s", res.out);
	cr_assert_eq(current_in(a, b, 2, a), 0, "%s", res.out);
	cr_assert_eq(current_in(b, a, 3, b), 1, "%s", res.out);
	cr_assert_eq(current_in(b, a, 2, a), 0, "%s", res.out);

	/* the data time decides before the versions' age: A (restarted,
	 * given the partition back, its version re-made now) saw values up
	 * to 15400 s, B none since 11800 s */
	s = su_open(a, NULL);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 2, 4, 15400 * NS, 4.0f),
	    0);
	close_at(s, 15400 * NS);
	s = su_open(b, NULL);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 3, 5, 11800 * NS, 5.0f),
	    0);
	su_commit(s);
	store_free(s);
	cr_assert_eq(current_in(a, b, 4, a), 1, "%s", res.out);
	cr_assert_eq(current_in(a, b, 5, b), 0, "%s", res.out);
	cr_assert_eq(current_in(b, a, 4, a), 1, "%s", res.out);
	su_rmdir(dir);
}

Test(fleet, refusals_name_the_file)
{
	char dir[64], a[128], b[128], bad[160], missing[160];
	make_hosts(dir, sizeof(dir), a, b, sizeof(a));
	snprintf(missing, sizeof(missing), "%s/missing.db", dir);
	char *m[] = {"driftcast", "history", "--db", a, "--db", missing, NULL};
	cr_assert_eq(tu_run(&res, m), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, missing), "%s", res.err);
	cr_assert_eq(res.out[0], '\0', "%s", res.out);

	snprintf(bad, sizeof(bad), "%s/damaged.db", dir);
	FILE *f = fopen(bad, "w");
	cr_assert(f);
	for (int i = 0; i < 1000; i++)
		fputs("not a database at all ", f);
	fclose(f);
	char *d[] = {"driftcast", "versions", "--db", a,   "--db",
		     bad,	  "--series", "a",    NULL};
	cr_assert_eq(tu_run(&res, d), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, bad), "%s", res.err);

	char *twice[] = {"driftcast", "history", "--db", a,   "--db",
			 b,	      "--db",	 a,	 NULL};
	cr_assert_eq(tu_run(&res, twice), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "given twice"), "%s", res.err);

	char *many[2 + 2 * 12 + 1] = {"driftcast", "history"};
	for (int i = 0; i < 12; i++) {
		many[2 + 2 * i] = "--db";
		many[3 + 2 * i] = i % 2 ? a : b;
	}
	cr_assert_eq(tu_run(&res, many), 0);
	cr_assert_eq(res.status, 2);
	cr_assert(strstr(res.err, "at most 11 databases"), "%s", res.err);
	su_rmdir(dir);
}
