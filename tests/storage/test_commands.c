/*
 * `driftcast history`, `driftcast versions` and `driftcast rollback` on a
 * database written through the storage API: formats, the series and
 * version columns, oldest-first order, refusals and exit codes.
 */
#include <errno.h>

#include "tests/storage/storeutil.h"
#include "tests/testutil.h"

static struct run_result res;

#define NS INT64_C(1000000000) /* series time is ns (schema 7) */

/* a: 0..2; b: 0..3 (ts 1000 + 3600 v seconds) */
static void make_db(char *dir, size_t dn, char *path, size_t pn)
{
	su_tmpdb(dir, dn, path, pn);
	struct store *s = su_open(path, NULL);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000 * NS, 0.0f),
		     0);
	cr_assert_eq(su_version(s, "b", STORE_EV_INIT, 0, 0, 1000 * NS, 10.0f),
		     0);
	for (int v = 1; v <= 3; v++) {
		if (v <= 2)
			cr_assert_eq(su_version(s, "a", STORE_EV_ADAPT_ACCEPTED,
						(uint64_t)v - 1, (uint64_t)v,
						(1000 + 3600 * v) * NS,
						(float)v),
				     0);
		cr_assert_eq(su_version(s, "b", STORE_EV_ADAPT_ACCEPTED,
					(uint64_t)v - 1, (uint64_t)v,
					(1000 + 3600 * v) * NS,
					10.0f + (float)v),
			     0);
	}
	su_commit(s);
	store_free(s);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(storage_commands, history_formats)
{
	char dir[64], path[128];
	make_db(dir, sizeof(dir), path, sizeof(path));
	char *t[] = {"driftcast", "history", "--db", path,
		     "--series",  "a",	     NULL};
	cr_assert_eq(tu_run(&res, t), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, "adapt_accepted"));
	cr_assert_eq(count_lines(res.out), 1 + 3);
	cr_assert_null(strstr(res.out, " b "));

	char *c[] = {"driftcast", "history",	      "--db",
		     path,	  "--format",	      "csv",
		     "--since",	  "1970-01-01T02:00", NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(!strncmp(res.out, "id,time,ts,series,event,", 24), "%s",
		  res.out);
	/* since 7200: a@2 (8200), b@2, b@3 */
	cr_assert_eq(count_lines(res.out), 1 + 3, "%s", res.out);
	cr_assert(strstr(res.out, "1970-01-01T02:16:40Z,8200000000000,a,"
				  "adapt_accepted,schedule,1,2,"),
		  "%s", res.out);

	char *j[] = {"driftcast", "history",  "--db", path, "--format",
		     "json",	  "--series", "b",    NULL};
	cr_assert_eq(tu_run(&res, j), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert_eq(res.out[0], '[');
	cr_assert(strstr(res.out, "\"series\":\"b\""), "%s", res.out);
	cr_assert(strstr(res.out, "\"version_to\":3"), "%s", res.out);
	cr_assert(strstr(res.out, "\"loss_after\":0.5"), "%s", res.out);
	/* a series not in the database: an error, as for `versions` (an
	 * empty log and status 0 before) */
	char *u[] = {"driftcast", "history", "--db", path,
		     "--series",  "zz",	     NULL};
	cr_assert_eq(tu_run(&res, u), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "no series 'zz'"), "%s", res.err);
	cr_assert_eq(res.out[0], '\0', "%s", res.out);
	su_rmdir(dir);
}

Test(storage_commands, versions_oldest_first)
{
	char dir[64], path[128];
	make_db(dir, sizeof(dir), path, sizeof(path));
	char *c[] = {"driftcast", "versions", "--db", path, "--series",
		     "b",	  "--format", "csv",  NULL};
	cr_assert_eq(tu_run(&res, c), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(!strncmp(res.out, "series,version,parent,", 22));
	cr_assert_eq(count_lines(res.out), 1 + 4);
	const char *v0 = strstr(res.out, "\nb,0,,init,");
	const char *v3 = strstr(res.out, "\nb,3,2,ttt,");
	cr_assert(v0 && v3 && v0 < v3, "%s", res.out);
	char *j[] = {"driftcast", "versions", "--db", path, "--series",
		     "a",	  "--format", "json", NULL};
	cr_assert_eq(tu_run(&res, j), 0);
	cr_assert(strstr(res.out, "\"version\":2,\"parent\":1"), "%s", res.out);
	cr_assert(strstr(res.out, "\"current\":true"), "%s", res.out);
	char *u[] = {"driftcast", "versions", "--db", path,
		     "--series",  "zz",	      NULL};
	cr_assert_eq(tu_run(&res, u), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "no series 'zz'"), "%s", res.err);
	char *m[] = {"driftcast", "versions", "--db", path, NULL};
	cr_assert_eq(tu_run(&res, m), 0);
	cr_assert_eq(res.status, 2);
	su_rmdir(dir);
}

Test(storage_commands, rollback_and_refusals)
{
	char dir[64], path[128];
	make_db(dir, sizeof(dir), path, sizeof(path));
	char *ok[] = {
	    "driftcast",    "rollback", "--db",	    path,   "--series", "b",
	    "--to-version", "1",	"--reason", "test", NULL};
	cr_assert_eq(tu_run(&res, ok), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, "version 1 restored as new version 4 "
				  "(parent 3)"),
		  "%s", res.out);
	/* a version that exists only for another series */
	char *other[] = {
	    "driftcast",    "rollback", "--db",	    path, "--series", "a",
	    "--to-version", "3",	"--reason", "x",  NULL};
	cr_assert_eq(tu_run(&res, other), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "has no version 3"), "%s", res.err);
	char *at[] = {"driftcast", "rollback", "--db", path,
		      "--series",  "a",	       "--at", "4700",
		      "--reason",  "x",	       NULL};
	cr_assert_eq(tu_run(&res, at), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	cr_assert(strstr(res.out, "version 1 restored as new version 3"), "%s",
		  res.out);
	char *noreason[] = {"driftcast",    "rollback", "--db",
			    path,	    "--series", "a",
			    "--to-version", "1",	NULL};
	cr_assert_eq(tu_run(&res, noreason), 0);
	cr_assert_eq(res.status, 2);
	char *both[] = {"driftcast", "rollback", "--db",	 path,
			"--series",  "a",	 "--to-version", "1",
			"--at",	     "5",	 "--reason",	 "x",
			NULL};
	cr_assert_eq(tu_run(&res, both), 0);
	cr_assert_eq(res.status, 2);
	char *help[] = {"driftcast", "rollback", "--help", NULL};
	cr_assert_eq(tu_run(&res, help), 0);
	cr_assert_eq(res.status, 0);
	cr_assert(!strncmp(res.out, "Usage: driftcast rollback", 25));

	/* the history shows both manual events */
	char *h[] = {"driftcast", "history", "--db", path, "--format",
		     "csv",	  "--since", "0",    NULL};
	cr_assert_eq(tu_run(&res, h), 0);
	cr_assert(strstr(res.out, ",b,manual,manual,3,4,"), "%s", res.out);
	cr_assert(strstr(res.out, ",a,manual,manual,2,3,"), "%s", res.out);
	su_rmdir(dir);
}

Test(storage_commands, bad_files)
{
	char dir[64], path[128];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	FILE *f = fopen(path, "w");
	fputs("definitely not a database, just some text in a file\n", f);
	fclose(f);
	char *h[] = {"driftcast", "history", "--db", path, NULL};
	cr_assert_eq(tu_run(&res, h), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "not a database"), "%s", res.err);
	char *r[] = {
	    "driftcast",    "rollback", "--db",	    path, "--series", "a",
	    "--to-version", "0",	"--reason", "x",  NULL};
	cr_assert_eq(tu_run(&res, r), 0);
	cr_assert_eq(res.status, 1);
	char buf[64];
	f = fopen(path, "r");
	cr_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_assert(!strncmp(buf, "definitely not", 14), "file untouched");
	char *m[] = {"driftcast", "history", "--db", "/tmp/dc-none/x.db", NULL};
	cr_assert_eq(tu_run(&res, m), 0);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "x.db"), "%s", res.err);
	char *bad[] = {"driftcast", "history",	 "--db", path,
		       "--since",   "yesterday", NULL};
	cr_assert_eq(tu_run(&res, bad), 0);
	cr_assert_eq(res.status, 2);
	su_rmdir(dir);
}
