/*
 * `driftcast rollback`: restore an earlier adapter of one series.  The
 * rollback is a new version whose content is the restored one and whose
 * parent is the current one, plus a `manual` audit event naming the
 * operator; nothing is deleted.  Two forms:
 *
 *   --brokers/--topic/--config (Kafka): a control record on the input
 *   topic keyed by the series, applied by whichever host of the consumer
 *   group owns the series' partition, in order with its data
 *   (daemon/cmd_rollback_kafka.c, daemon/run_control.c).  --db FILE here
 *   names a database that holds the version: its block travels with the
 *   record, for an owner that never had it.
 *
 *   --db FILE alone: this host's database.  When a daemon holds it, the
 *   request goes through the control table and the daemon applies it (it
 *   polls every storage.control_poll_ms) so that its in-memory adapter
 *   changes too; otherwise this process writes it (store_rollback_request).
 *   A series the database handed over to another host is refused.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/control.h"
#include "forecast/forecast.h"
#include "storage/handover.h"
#include "storage/storage.h"

static void rollback_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast rollback --series S (--to-version V | --at "
	    "TIME)\n"
	    "                          --reason TEXT [--by NAME]\n"
	    "                          (--brokers LIST | --topic T | --config "
	    "FILE) [--db FILE]\n"
	    "       driftcast rollback --db FILE --series S (--to-version V | "
	    "--at TIME)\n"
	    "                          --reason TEXT [--by NAME]\n\n"
	    "Roll one series back to an earlier adapter version.  The rollback "
	    "is a new\n"
	    "version (content = the restored one, parent = the current one) "
	    "plus a 'manual'\n"
	    "audit event with the reason and who asked; nothing is deleted.\n\n"
	    "Through Kafka (any of --brokers, --topic, --config, --set): the "
	    "rollback is\n"
	    "sent as a control record on the input topic, keyed by the series, "
	    "and the\n"
	    "daemon that owns the series' partition -- whichever host of the "
	    "consumer\n"
	    "group that is now -- applies it after the series' earlier "
	    "readings, within\n"
	    "a batch (storage.batch_ms).  This command waits until the broker "
	    "has it.  A\n"
	    "record the owner cannot apply (unknown series or version) goes "
	    "to the\n"
	    "dead-letter topic with the reason.  With --db, the version is "
	    "looked up in\n"
	    "that database and its adapter travels with the record (for a "
	    "version made\n"
	    "on another host than the owner).  Use this form whenever several "
	    "hosts\n"
	    "share the input (docs/OPERATIONS.md, \"Running several "
	    "hosts\").\n\n"
	    "With --db alone: this host's database; a running daemon on it "
	    "applies the\n"
	    "rollback within a second.  A series that database handed over "
	    "to another\n"
	    "host is refused (use the Kafka form).\n\n"
	    "A version made with another base model than the series runs "
	    "now (after a\n"
	    "new model.path) is refused in either form: its adapter corrects "
	    "the other\n"
	    "model's forecasts.  Version 0, the base adapter, belongs to "
	    "every model.\n\n"
	    "Options:\n"
	    "  -s, --series S        the series\n"
	    "  -v, --to-version V    restore version V of that series\n"
	    "  -a, --at TIME         restore the version that was current at "
	    "series time\n"
	    "                        TIME (epoch seconds or "
	    "YYYY-MM-DD[THH:MM[:SS[.frac]]], UTC)\n"
	    "  -r, --reason TEXT     why (required, one line; stored in the "
	    "audit log)\n"
	    "  -u, --by NAME         who asks (one line, stored in the audit "
	    "log;\n"
	    "                        default: your user name)\n"
	    "  -d, --db FILE         the SQLite database (Kafka form: where "
	    "the version is\n"
	    "                        read from, optional)\n"
	    "      --brokers LIST    bootstrap brokers (kafka.brokers)\n"
	    "      --topic NAME      the input topic (kafka.input_topic)\n"
	    "  -c, --config FILE     the daemons' settings file (kafka.*, "
	    "[librdkafka]:\n"
	    "                        security, the partitioner)\n"
	    "      --set KEY=VALUE   override one setting\n"
	    "  -t, --timeout SEC     wait this long for a running daemon "
	    "(--db form,\n"
	    "                        default 5) or for the broker (Kafka "
	    "form, default 30)\n"
	    "  -h, --help            show this help\n\n"
	    "Exit status: 0 done (Kafka form: delivered to the broker), 1 "
	    "refused or\n"
	    "failed (unknown series or version, corrupt version, a version of "
	    "another\n"
	    "base model, handed-over series, database error, no answer from "
	    "the daemon,\n"
	    "not delivered), 2 usage error.\n");
}

/* --by's default: the user name of this process. */
static const char *user_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	const char *u = pw && pw->pw_name ? pw->pw_name : getenv("USER");
	return u && *u ? u : "unknown";
}

/* Not blank, and no line break or other control character (a reason
 * split the rows of `driftcast history`). */
static bool one_line(const char *s)
{
	size_t len = strlen(s);
	return strspn(s, " ") < len && dc_control_char_at(s, len) < 0;
}

/* A rollback acts on a database that exists: a mistyped --db is an error,
 * as for the read-only commands, not a new empty database. */
static bool db_missing(const char *db)
{
	struct stat st;
	if (stat(db, &st) == 0)
		return false;
	fprintf(stderr, "driftcast rollback: %s: %s\n", db, strerror(errno));
	return true;
}

/* The Kafka form: the record, with the version's block when a database
 * that holds it is named. */
static int rollback_kafka(const struct dc_cfg_args *ca, const char *brokers,
			  const char *topic, const char *db,
			  struct dc_control *c, double timeout)
{
	struct cfg cfg;
	char err[1024], target[64];
	int code = dc_cfg_args_load(ca, &cfg, NULL);
	if (code != DC_EXIT_OK)
		return code;
	if (db && db_missing(db))
		return DC_EXIT_FAILURE;
	if (db) {
		struct store *s = NULL;
		struct store_rollback_result rb;
		struct store_rollback_target t = {.by_time = c->by_time,
						  .number = c->to_version,
						  .at = c->at_ns};
		if (store_open(db, NULL, &s, err, sizeof(err)) < 0 ||
		    store_rollback_prepare(s, c->series, &t, NULL, 0, &rb, err,
					   sizeof(err)) < 0) {
			fprintf(stderr, "driftcast rollback: %s\n", err);
			store_free(s);
			return DC_EXIT_FAILURE;
		}
		/* the exact version found, and its block */
		c->by_time = false;
		c->to_version = rb.restored;
		c->adapter_len = rb.adapter_len;
		c->adapter = malloc((rb.adapter_len ? rb.adapter_len : 1) *
				    sizeof(float));
		if (c->adapter && rb.adapter_len)
			memcpy(c->adapter, rb.adapter,
			       rb.adapter_len * sizeof(float));
		store_free(s);
		if (!c->adapter) {
			fprintf(stderr, "driftcast rollback: out of memory\n");
			return DC_EXIT_FAILURE;
		}
	}
	if (c->by_time) {
		char when[40];
		store_format_time(c->at_ns, when, sizeof(when));
		snprintf(target, sizeof(target), "the version current at %s",
			 when);
	} else {
		snprintf(target, sizeof(target), "version %llu",
			 (unsigned long long)c->to_version);
	}
	code = dc_rollback_send(&cfg, brokers ? brokers : cfg.kafka.brokers,
				topic ? topic : cfg.kafka.input_topic, c,
				target, (int)(timeout * 1000.0));
	dc_control_clear(c);
	return code;
}

int dc_cmd_rollback(int argc, char **argv)
{
	enum { O_BROKERS = 256, O_TOPIC, O_SET };
	static const struct option longopts[] = {
	    {"by", required_argument, NULL, 'u'},
	    {"brokers", required_argument, NULL, O_BROKERS},
	    {"topic", required_argument, NULL, O_TOPIC},
	    {"config", required_argument, NULL, 'c'},
	    {"set", required_argument, NULL, O_SET},
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"to-version", required_argument, NULL, 'v'},
	    {"at", required_argument, NULL, 'a'},
	    {"reason", required_argument, NULL, 'r'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *series = NULL, *reason = NULL, *by = NULL;
	const char *brokers = NULL, *topic = NULL;
	struct dc_cfg_args ca = {0};
	struct store_rollback_target t = {0};
	int ntargets = 0;
	double timeout = 0;
	char *end;
	int c, code;

	while ((c = dc_getopt(argc, argv, "d:s:v:a:r:u:c:t:h", longopts,
			      rollback_usage, &code)) > 0) {
		switch (c) {
		case 'u':
			by = optarg;
			break;
		case O_BROKERS:
			brokers = optarg;
			break;
		case O_TOPIC:
			topic = optarg;
			break;
		case 'c':
			ca.file = optarg;
			break;
		case O_SET:
			if (dc_cfg_args_add_set(&ca, optarg) < 0)
				return DC_EXIT_USAGE;
			break;
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
	bool kafka = brokers || topic || ca.file || ca.nsets;
	if (!series || (!db && !kafka)) {
		fprintf(stderr, "driftcast rollback: --series S is required, "
				"and --brokers LIST (or --topic, --config) to "
				"send it through Kafka, or --db FILE for this "
				"host's database\n");
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
	if (!one_line(reason) || (by && !one_line(by))) {
		fprintf(stderr, "driftcast rollback: --reason and --by are "
				"one line of text each (not blank, no control "
				"characters): they are read in the audit "
				"log\n");
		return DC_EXIT_USAGE;
	}
	if (!by)
		by = user_name();
	if (kafka) {
		struct dc_control k = {.by_time = t.by_time,
				       .to_version = t.number,
				       .at_ns = t.at};
		if (strlen(series) > DC_SERIES_MAX ||
		    strlen(reason) > DC_CONTROL_REASON_MAX ||
		    strlen(by) > DC_CONTROL_BY_MAX) {
			fprintf(stderr,
				"driftcast rollback: too long (series at "
				"most %d bytes, --reason %d, --by %d)\n",
				DC_SERIES_MAX, DC_CONTROL_REASON_MAX,
				DC_CONTROL_BY_MAX);
			return DC_EXIT_USAGE;
		}
		snprintf(k.series, sizeof(k.series), "%s", series);
		snprintf(k.reason, sizeof(k.reason), "%s", reason);
		snprintf(k.by, sizeof(k.by), "%s", by);
		return rollback_kafka(&ca, brokers, topic, db, &k,
				      timeout > 0 ? timeout : 30.0);
	}
	if (timeout <= 0)
		timeout = 5.0;

	char err[1024];
	struct store *s = NULL;
	if (db_missing(db))
		return DC_EXIT_FAILURE;
	if (store_open(db, NULL, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast rollback: %s\n", err);
		return DC_EXIT_FAILURE;
	}
	/* a series another host serves now: a rollback here would change
	 * nothing it does, and come back stale with the partition */
	struct store_series_where w = {0};
	if (store_series_where(s, series, &w, err, sizeof(err)) == 0 &&
	    w.handed_over) {
		char when[48];
		/* wall-clock ms of the handover; the format takes ns */
		store_format_time(w.since_ms * 1000000, when, sizeof(when));
		if (!w.released_at_stop) {
			fprintf(
			    stderr,
			    "driftcast rollback: series %s was handed over "
			    "to another host of the consumer group (input "
			    "partition %d, %s): %s no longer serves it, and "
			    "a rollback here would change nothing that host "
			    "does. Roll it back through Kafka: `driftcast "
			    "rollback --brokers LIST --series %s ...` (or "
			    "--config FILE) reaches the host that owns "
			    "partition %d now, in order with the series' "
			    "data.\n",
			    series, w.partition, when, db, series, w.partition);
			store_free(s);
			return DC_EXIT_FAILURE;
		}
		/* released at this host's own stop: it takes the series back
		 * at its next start unless another host of its group has
		 * served the partition since, which only Kafka knows */
		fprintf(stderr,
			"driftcast rollback: note: %s released series %s at "
			"its stop (%s) and takes it back from this database "
			"at its next start. If another host of its consumer "
			"group has served input partition %d since, roll it "
			"back through Kafka instead (`driftcast rollback "
			"--brokers LIST ...`): that host would not see this "
			"one.\n",
			db, series, when, w.partition);
	}
	struct store_rollback_result res;
	char why[STORE_REASON_MAX];
	if (snprintf(why, sizeof(why), "%s (by %s)", reason, by) >=
	    (int)sizeof(why)) {
		fprintf(stderr,
			"driftcast rollback: --reason and --by are too long "
			"(%d bytes together)\n",
			STORE_REASON_MAX - 7);
		store_free(s);
		return DC_EXIT_USAGE;
	}
	int r =
	    store_rollback_request(s, series, &t, why, (int)(timeout * 1000.0),
				   &res, err, sizeof(err));
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
