/*
 * `driftcast versions --db FILE [--db FILE...] --series S [--format F]`:
 * the adapter versions of one series, oldest first, with their parent,
 * reason, losses, size and checksum, and which one is current; with
 * several hosts' databases, one chain by version number with the database
 * of each row.  Read-only.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/fmt.h"
#include "storage/storage.h"

static void versions_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast versions --db FILE [--db FILE...] --series S "
	    "[--format table|csv|json]\n\n"
	    "Print the adapter versions of one series, oldest first, the "
	    "current one\n"
	    "marked (*).  Over several hosts' databases the current "
	    "version is the one\n"
	    "of the host that serves the series -- of two that do (one "
	    "crashed without\n"
	    "recording that it let the series go), the one that saw its "
	    "newest data;\n"
	    "when none does (each released it at its clean stop), of the "
	    "host that\n"
	    "held it last.\n\n"
	    "Options:\n"
	    "  -d, --db FILE      the SQLite database (opened read-only); "
	    "repeat it (up\n"
	    "                     to %d) for the databases of several hosts: "
	    "one chain\n"
	    "                     by version number (a version that moved "
	    "with its\n"
	    "                     partition shows where it was made, then "
	    "'handover'\n"
	    "                     where it went), each row with its database "
	    "(first\n"
	    "                     column of the table, last csv column "
	    "\"db\", json \"db\")\n"
	    "  -s, --series S     the series (required)\n"
	    "  -f, --format F     table (default), csv or json (their ts: "
	    "series time in\n"
	    "                     nanoseconds since the epoch)\n"
	    "  -h, --help         show this help\n\n"
	    "Exit status: 0 success, 1 runtime failure (also: unknown "
	    "series; a\n"
	    "database missing, damaged or older than schema 7 among "
	    "several), 2 usage\n"
	    "error.\n",
	    DC_DB_MAX);
}

struct out {
	enum dc_format fmt;
	size_t n;
	const char *dbs[DC_DB_MAX]; /* as given; shown when more than one */
	int ndb, width;
};

static int print_version(void *user, int db, const struct store_version *v)
{
	struct out *o = user;
	const char *dbname = o->ndb > 1 ? o->dbs[db] : NULL;
	char t[32], parent[24], b[4][32];
	store_format_time(v->ts, t, sizeof(t));
	if (v->parent_number >= 0)
		snprintf(parent, sizeof(parent), "%lld",
			 (long long)v->parent_number);
	else
		parent[0] = '\0';
	if (o->fmt == DC_FORMAT_TABLE) {
		if (dbname)
			printf("%-*s ", o->width, dbname);
		printf("%7llu %7s %-8s %-20s %-3s %9s %9s %9s %9s %7zu %08x  "
		       "%s\n",
		       (unsigned long long)v->number, parent[0] ? parent : "-",
		       v->reason, t, v->current ? "*" : "",
		       dc_fmt_num(v->loss_before, b[0], 32, "-"),
		       dc_fmt_num(v->loss_after, b[1], 32, "-"),
		       dc_fmt_num(v->guard_before, b[2], 32, "-"),
		       dc_fmt_num(v->guard_after, b[3], 32, "-"),
		       v->adapter_len, v->checksum, v->note);
	} else if (o->fmt == DC_FORMAT_CSV) {
		dc_csv_field(stdout, v->series);
		printf(",%llu,%s,%s,%s,%lld,%d,%s,%s,%s,%s,%zu,%08x,",
		       (unsigned long long)v->number, parent, v->reason, t,
		       (long long)v->ts, v->current ? 1 : 0,
		       dc_fmt_num(v->loss_before, b[0], 32, ""),
		       dc_fmt_num(v->loss_after, b[1], 32, ""),
		       dc_fmt_num(v->guard_before, b[2], 32, ""),
		       dc_fmt_num(v->guard_after, b[3], 32, ""), v->adapter_len,
		       v->checksum);
		dc_csv_field(stdout, v->note);
		if (dbname) {
			putchar(',');
			dc_csv_field(stdout, dbname);
		}
		putchar('\n');
	} else {
		char crc[16];
		snprintf(crc, sizeof(crc), "%08x", v->checksum);
		json_t *j = json_object();
		json_object_set_new(j, "series", json_string(v->series));
		json_object_set_new(j, "version",
				    json_integer((json_int_t)v->number));
		json_object_set_new(j, "parent",
				    v->parent_number >= 0
					? json_integer(v->parent_number)
					: json_null());
		json_object_set_new(j, "reason", json_string(v->reason));
		json_object_set_new(j, "time", json_string(t));
		json_object_set_new(j, "ts", json_integer(v->ts));
		json_object_set_new(j, "current", json_boolean(v->current));
		json_object_set_new(j, "loss_before",
				    dc_json_num(v->loss_before));
		json_object_set_new(j, "loss_after",
				    dc_json_num(v->loss_after));
		json_object_set_new(j, "guard_before",
				    dc_json_num(v->guard_before));
		json_object_set_new(j, "guard_after",
				    dc_json_num(v->guard_after));
		json_object_set_new(j, "adapter_len",
				    json_integer((json_int_t)v->adapter_len));
		json_object_set_new(j, "checksum", json_string(crc));
		json_object_set_new(j, "note", json_string(v->note));
		if (dbname)
			json_object_set_new(j, "db", json_string(dbname));
		dc_json_emit(j, o->n);
	}
	o->n++;
	return 0;
}

int dc_cmd_versions(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *series = NULL;
	struct out o = {.fmt = DC_FORMAT_TABLE};
	int c, code;

	while ((c = dc_getopt(argc, argv, "d:s:f:h", longopts, versions_usage,
			      &code)) > 0) {
		switch (c) {
		case 'd':
			if (!dc_db_arg("versions", o.dbs, &o.ndb, optarg))
				return DC_EXIT_USAGE;
			break;
		case 's':
			series = optarg;
			break;
		case 'f':
			if (dc_format_parse("versions", optarg, &o.fmt) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("versions", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!o.ndb || !series) {
		fprintf(stderr, "driftcast versions: --db FILE and --series S "
				"are required\n");
		return DC_EXIT_USAGE;
	}

	char err[1024];
	struct store *s = dc_open_read_only_many("versions", o.dbs, o.ndb);
	if (!s)
		return DC_EXIT_FAILURE;
	o.width = dc_db_width(o.dbs, o.ndb);
	/* Print the header only once the series is known to exist. */
	int r = store_versions_all(s, series, NULL, NULL, err, sizeof(err));
	if (r == 0) {
		if (o.fmt == DC_FORMAT_TABLE && o.ndb > 1)
			printf("%-*s ", o.width, "db");
		if (o.fmt == DC_FORMAT_TABLE)
			printf("%7s %7s %-8s %-20s %-3s %9s %9s %9s %9s %7s "
			       "%-8s  %s\n",
			       "version", "parent", "reason", "time", "cur",
			       "loss_bef", "loss_aft", "guard_bef", "guard_aft",
			       "floats", "crc32", "note");
		else if (o.fmt == DC_FORMAT_CSV)
			printf("series,version,parent,reason,time,ts,current,"
			       "loss_before,loss_after,guard_before,"
			       "guard_after,adapter_len,checksum,note%s\n",
			       o.ndb > 1 ? ",db" : "");
		else
			printf("[");
		r = store_versions_all(s, series, print_version, &o, err,
				       sizeof(err));
		if (o.fmt == DC_FORMAT_JSON)
			printf("%s]\n", o.n ? "\n" : "");
	}
	return dc_output_done("versions", s, r, err);
}
