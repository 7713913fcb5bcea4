/*
 * `driftcast history --db FILE [--db FILE...] [--series S] [--since T]
 * [--format F]`: the audit log (adaptations, rejections, drift alarms,
 * resets, rollbacks, operator actions, handovers) of one series or of all,
 * oldest first, as a table, CSV or JSON; with several hosts' databases,
 * merged by time with the database of each row.  Opens the databases
 * read-only, so it works while daemons write.
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
#include "forecast/forecast.h"
#include "storage/storage.h"

static void history_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast history --db FILE [--db FILE...] [--series S] "
	    "[--since T]\n"
	    "                         [--format table|csv|json]\n\n"
	    "Print the audit log of one series (or all), oldest first.\n\n"
	    "Options:\n"
	    "  -d, --db FILE      the SQLite database (opened read-only); "
	    "repeat it (up\n"
	    "                     to %d) for the databases of several hosts: "
	    "one listing\n"
	    "                     merged by time, each row with its database "
	    "(first\n"
	    "                     column of the table, last csv column "
	    "\"db\", json \"db\")\n"
	    "  -s, --series S     only this series\n"
	    "  -S, --since T      only events at or after series time T: "
	    "epoch seconds\n"
	    "                     or YYYY-MM-DD[THH:MM[:SS[.frac]]] (UTC)\n"
	    "  -f, --format F     table (default), csv or json; csv and "
	    "json carry\n"
	    "                     a series column, and ts (also data_from, "
	    "data_until)\n"
	    "                     in nanoseconds since the epoch\n"
	    "  -h, --help         show this help\n\n"
	    "Exit status: 0 success, 1 runtime failure (also: a database "
	    "missing,\n"
	    "damaged or older than schema 7 among several), 2 usage "
	    "error.\n",
	    DC_DB_MAX);
}

struct out {
	enum dc_format fmt;
	size_t n;
	const char *dbs[DC_DB_MAX]; /* as given; shown when more than one */
	int ndb, width;
};

/* The fields that apply to one event type only: empty elsewhere.
 * Columns data_from,data_until,value,filled,detector_stat,
 * version_restored. */
static void print_extra_csv(const struct store_event *ev)
{
	char b[2][32];
	bool adapt = ev->type == STORE_EV_ADAPT_ACCEPTED ||
		     ev->type == STORE_EV_ADAPT_REJECTED;
	if (adapt && (ev->data_from || ev->data_until))
		printf("%lld,%lld,", (long long)ev->data_from,
		       (long long)ev->data_until);
	else
		printf(",,");
	if (ev->type == STORE_EV_REJECTED_VALUE && !isnan(ev->value))
		printf("%.9g,", (double)ev->value);
	else
		printf(",");
	if (ev->type == STORE_EV_GAP_FILLED)
		printf("%d,", ev->filled);
	else
		printf(",");
	printf("%s,", ev->type == STORE_EV_DRIFT
			  ? dc_fmt_num(ev->detector_stat, b[0], 32, "")
			  : "");
	if (ev->type == STORE_EV_ROLLBACK)
		snprintf(b[1], 32, "%llu",
			 (unsigned long long)ev->version_restored);
	else
		b[1][0] = '\0';
	printf("%s,", b[1]);
}

static int print_event(void *user, int db, const struct store_event *ev)
{
	struct out *o = user;
	const char *dbname = o->ndb > 1 ? o->dbs[db] : NULL;
	char t[32], b[8][32];
	store_format_time(ev->ts, t, sizeof(t));
	const char *type = store_event_type_name(ev->type);
	const char *trig = store_trigger_name(ev->trigger);
	if (o->fmt == DC_FORMAT_TABLE) {
		if (dbname)
			printf("%-*s ", o->width, dbname);
		printf("%-20s %-16s %-14s %-8s %5llu %5llu %9s %9s %9s %9s  "
		       "%s\n",
		       t, ev->series, type, trig,
		       (unsigned long long)ev->version_from,
		       (unsigned long long)ev->version_to,
		       dc_fmt_num(ev->loss_before, b[0], 32, "-"),
		       dc_fmt_num(ev->loss_after, b[1], 32, "-"),
		       dc_fmt_num(ev->guard_before, b[2], 32, "-"),
		       dc_fmt_num(ev->guard_after, b[3], 32, "-"), ev->reason);
	} else if (o->fmt == DC_FORMAT_CSV) {
		printf("%lld,%s,%lld,", (long long)ev->id, t,
		       (long long)ev->ts);
		dc_csv_field(stdout, ev->series);
		printf(",%s,%s,%llu,%llu,%d,%s,%s,%s,%s,%s,%s,%s,", type, trig,
		       (unsigned long long)ev->version_from,
		       (unsigned long long)ev->version_to, ev->steps,
		       dc_fmt_num(ev->loss_before, b[0], 32, ""),
		       dc_fmt_num(ev->loss_after, b[1], 32, ""),
		       dc_fmt_num(ev->guard_before, b[2], 32, ""),
		       dc_fmt_num(ev->guard_after, b[3], 32, ""),
		       dc_fmt_num(ev->update_norm, b[4], 32, ""),
		       dc_fmt_num(ev->adapted_error, b[5], 32, ""),
		       dc_fmt_num(ev->shadow_error, b[6], 32, ""));
		print_extra_csv(ev);
		dc_csv_field(stdout, ev->reason);
		if (dbname) {
			putchar(',');
			dc_csv_field(stdout, dbname);
		}
		putchar('\n');
	} else {
		json_t *j = dc_event_json(ev);
		if (dbname)
			json_object_set_new(j, "db", json_string(dbname));
		dc_json_emit(j, o->n);
	}
	o->n++;
	return 0;
}

int dc_cmd_history(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"since", required_argument, NULL, 'S'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *series = NULL;
	int64_t since = INT64_MIN;
	struct out o = {.fmt = DC_FORMAT_TABLE};
	int c, code;

	while ((c = dc_getopt(argc, argv, "d:s:S:f:h", longopts, history_usage,
			      &code)) > 0) {
		switch (c) {
		case 'd':
			if (!dc_db_arg("history", o.dbs, &o.ndb, optarg))
				return DC_EXIT_USAGE;
			break;
		case 's':
			series = optarg;
			break;
		case 'S':
			if (dc_time_arg_ns(optarg, &since) < 0) {
				fprintf(stderr,
					"driftcast history: --since '%s': not "
					"a time (epoch seconds or "
					"YYYY-MM-DD[THH:MM[:SS]])\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			break;
		case 'f':
			if (dc_format_parse("history", optarg, &o.fmt) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("history", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!o.ndb) {
		fprintf(stderr, "driftcast history: --db FILE is required\n");
		return DC_EXIT_USAGE;
	}

	char err[1024];
	struct store *s = dc_open_read_only_many("history", o.dbs, o.ndb);
	if (!s)
		return DC_EXIT_FAILURE;
	o.width = dc_db_width(o.dbs, o.ndb);
	/* a series that is not there is an error, as for `versions` (it
	 * printed an empty log and exited 0): versions hold every series */
	if (series) {
		int e =
		    store_versions_all(s, series, NULL, NULL, err, sizeof(err));
		if (e < 0)
			return dc_output_done("history", s, e, err);
	}
	if (o.fmt == DC_FORMAT_TABLE && o.ndb > 1)
		printf("%-*s ", o.width, "db");
	if (o.fmt == DC_FORMAT_TABLE)
		printf("%-20s %-16s %-14s %-8s %5s %5s %9s %9s %9s %9s  %s\n",
		       "time", "series", "event", "trigger", "from", "to",
		       "loss_bef", "loss_aft", "guard_bef", "guard_aft",
		       "reason");
	else if (o.fmt == DC_FORMAT_CSV)
		printf("id,time,ts,series,event,trigger,version_from,"
		       "version_to,steps,loss_before,loss_after,guard_before,"
		       "guard_after,update_norm,adapted_error,shadow_error,"
		       "data_from,data_until,value,filled,detector_stat,"
		       "version_restored,reason%s\n",
		       o.ndb > 1 ? ",db" : "");
	else
		printf("[");
	int r = store_history_all(s, series, since, print_event, &o, err,
				  sizeof(err));
	if (o.fmt == DC_FORMAT_JSON)
		printf("%s]\n", o.n ? "\n" : "");
	return dc_output_done("history", s, r, err);
}
