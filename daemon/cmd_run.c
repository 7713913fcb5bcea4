/*
 * `driftcast run --config FILE [--set section.key=value ...]`: the daemon,
 * as systemd runs it (Type=notify; see daemon/driftcast.service).
 */
#include "daemon/cli.h"

#include <getopt.h>
#include <stdio.h>

#include "daemon/run.h"

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: driftcast run [--config FILE] [--set section.key=value "
		"...]\n\n"
		"Consume measurements from Kafka, forecast every series, adapt "
		"per-series\n"
		"adapters at test time, record every version in SQLite and "
		"publish forecasts.\n"
		"Runs until SIGTERM or SIGINT (drains the current batch, "
		"commits, exits 0);\n"
		"SIGHUP reloads the settings that can change at run time "
		"(docs/CONFIG.md).\n\n"
		"Options:\n"
		"  -c, --config FILE             settings file (INI); without "
		"it, defaults\n"
		"  -s, --set section.key=value   override one setting "
		"(repeatable)\n"
		"  -h, --help                    show this help\n\n"
		"Under systemd it sends READY=1 once the database is migrated, "
		"the model loaded\n"
		"and the consumer subscribed, STATUS= lines, WATCHDOG=1 from "
		"the main loop,\n"
		"RELOADING=1 and STOPPING=1.  Exit status: 0 clean stop, 1 "
		"runtime failure,\n"
		"2 configuration or model error.\n");
}

int dc_cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"set", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dc_cfg_args a = {0};
	int c, code;

	while ((c = dc_getopt(argc, argv, "c:s:h", longopts, run_usage,
			      &code)) > 0)
		if (dc_cfg_args_option(&a, c, optarg) < 0)
			return DC_EXIT_USAGE;
	if (c < 0 ||
	    (code = dc_check_operands("run", argc, argv, 0)) != DC_EXIT_OK)
		return code;

	struct dc_run_options o = {
	    .config_path = a.file,
	    .sets = a.sets,
	    .nsets = a.nsets,
	};
	return dc_run(&o, NULL);
}
