/*
 * `driftcast rollback --db FILE --series S (--to-version V | --at TIME)
 * --reason TEXT`: restore an earlier adapter of one series.  The rollback
 * is a new version whose content is the restored one and whose parent is
 * the current one, plus a `manual` audit event; nothing is deleted.
 *
 * When a daemon holds the database, the request goes through the control
 * table and the daemon applies it (it polls every storage.control_poll_ms)
 * so that its in-memory adapter changes too; otherwise this process writes
 * it.  See store_rollback_request().
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "storage/handover.h"
#include "storage/storage.h"

static void rollback_usage(FILE *f)
{
	fprintf(f,
		"Usage: driftcast rollback --db FILE --series S "
		"(--to-version V | --at TIME) --reason TEXT\n\n"
		"Roll one series back to an earlier adapter version.  The "
		"rollback is a new\n"
		"version (content = the restored one, parent = the current "
		"one) plus a\n"
		"'manual' audit event; nothing is deleted.  A running daemon "
		"applies it\n"
		"within a second.\n\n"
		"Options:\n"
		"  -d, --db FILE         the SQLite database\n"
		"  -s, --series S        the series\n"
		"  -v, --to-version V    restore version V of that series\n"
		"  -a, --at TIME         restore the version that was current "
		"at series time\n"
		"                        TIME (epoch seconds or "
		"YYYY-MM-DD[THH:MM[:SS[.frac]]], UTC)\n"
		"  -r, --reason TEXT     why (required; stored in the audit "
		"log)\n"
		"  -t, --timeout SEC     wait this long for a running daemon "
		"(default 5)\n"
		"  -h, --help            show this help\n\n"
		"Exit status: 0 done, 1 refused or failed (unknown series or "
		"version, corrupt\n"
		"version, database error, no answer from the daemon), 2 usage "
		"error.\n");
}

int dc_cmd_rollback(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"to-version", required_argument, NULL, 'v'},
	    {"at", required_argument, NULL, 'a'},
	    {"reason", required_argument, NULL, 'r'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *series = NULL, *reason = NULL;
	struct store_rollback_target t = {0};
	int ntargets = 0;
	double timeout = 5.0;
	char *end;
	int c, code;

	while ((c = dc_getopt(argc, argv, "d:s:v:a:r:t:h", longopts,
			      rollback_usage, &code)) > 0) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 's':
			series = optarg;
			break;
		case 'v':
			errno = 0;
			t.number = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end ||
			    optarg[0] == '-') {
				fprintf(stderr,
					"driftcast rollback: --to-version "
					"'%s': not a version number\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			t.by_time = false;
			ntargets++;
			break;
		case 'a':
			if (dc_time_arg_ns(optarg, &t.at) < 0) {
				fprintf(stderr,
					"driftcast rollback: --at '%s': not a "
					"time (epoch seconds or "
					"YYYY-MM-DD[THH:MM[:SS]])\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			t.by_time = true;
			ntargets++;
			break;
		case 'r':
			reason = optarg;
			break;
		case 't':
			if (dc_parse_timeout("rollback", optarg, &timeout) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("rollback", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!db || !series) {
		fprintf(stderr, "driftcast rollback: --db FILE and --series S "
				"are required\n");
		return DC_EXIT_USAGE;
	}
	if (ntargets != 1) {
		fprintf(stderr, "driftcast rollback: give exactly one of "
				"--to-version V and --at TIME\n");
		return DC_EXIT_USAGE;
	}
	if (!reason || !*reason) {
		fprintf(stderr, "driftcast rollback: --reason TEXT is "
				"required\n");
		return DC_EXIT_USAGE;
	}

	char err[1024];
	struct store *s = NULL;
	if (store_open(db, NULL, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast rollback: %s\n", err);
		return DC_EXIT_FAILURE;
	}
	/* a series another host serves now: a rollback here would change
	 * nothing it does, and come back stale with the partition */
	struct store_series_where w = {0};
	if (store_series_where(s, series, &w, err, sizeof(err)) == 0 &&
	    w.handed_over) {
		char when[32];
		store_format_time(w.since_ms / 1000, when, sizeof(when));
		fprintf(stderr,
			"driftcast rollback: series %s was handed over to "
			"another host of the consumer group (input partition "
			"%d, %s): %s no longer serves it, and a rollback here "
			"would change nothing that host does. Roll it back in "
			"the database of the host that owns partition %d now "
			"(its log says '[%d] assigned').\n",
			series, w.partition, when, db, w.partition,
			w.partition);
		store_free(s);
		return DC_EXIT_FAILURE;
	}
	struct store_rollback_result res;
	int r = store_rollback_request(s, series, &t, reason,
				       (int)(timeout * 1000.0), &res, err,
				       sizeof(err));
	store_free(s);
	if (r < 0) {
		fprintf(stderr, "driftcast rollback: %s\n", err);
		return DC_EXIT_FAILURE;
	}
	printf("series %s: version %llu restored as new version %llu (parent "
	       "%llu)%s\n",
	       res.series, (unsigned long long)res.restored,
	       (unsigned long long)res.new_version,
	       (unsigned long long)res.from_version,
	       res.via_daemon ? "; applied by the running daemon" : "");
	return DC_EXIT_OK;
}
