/*
 * The git-style command line: `driftcast <command> [options]`.
 *
 * Each command lives in its own daemon/cmd_*.c and is one row of the
 * table below.  Exit codes: 0 success, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_version.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "daemon/kafka.h"
#include "daemon/log.h"
#include "forecast/forecast.h"

static const struct dc_command commands[] = {
    {"config", "check, show or generate configuration", dc_cmd_config},
    {"demo", "the whole pipeline on bundled data and an in-process Kafka",
     dc_cmd_demo},
    {"eval", "replay a CSV through the online engine, causally", dc_cmd_eval},
    {"produce", "replay a CSV into Kafka as input messages", dc_cmd_produce},
    {"run", "the daemon: Kafka in, forecasts out, adapt, persist", dc_cmd_run},
    {"history", "the adaptation audit log of a series, from SQLite",
     dc_cmd_history},
    {"plot", "draw a series: actuals, forecasts, events, error (PNG/SVG)",
     dc_cmd_plot},
    {"rollback", "roll a series back to an earlier adapter version",
     dc_cmd_rollback},
    {"series", "every series at a glance: versions, adaptations, error",
     dc_cmd_series},
    {"status", "ask the running daemon what it is doing, and if it is healthy",
     dc_cmd_status},
    {"train", "pretrain a base model on a CSV", dc_cmd_train},
    {"version", "print versions of driftcast and its libraries",
     dc_cmd_version},
    {"versions", "the adapter versions of a series, oldest first",
     dc_cmd_versions},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: driftcast <command> [options]\n"
		   "       driftcast <command> --help\n"
		   "       driftcast --version\n\n"
		   "A streaming forecasting daemon that adapts at test "
		   "time.\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nExit status: 0 success, 1 runtime failure, 2 usage or "
		   "configuration error.\n");
}

int dc_cmd_version(int argc, char **argv)
{
	char blas[512];
	if (argc > 1 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: driftcast version\n\nPrint the version of "
		       "driftcast and of the libraries it runs on.\n");
		return DC_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "driftcast version: unexpected argument '%s'\n",
			argv[1]);
		return DC_EXIT_USAGE;
	}
	fc_blas_describe(blas, sizeof(blas));
	printf("driftcast %s\n", DRIFTCAST_VERSION);
	printf("  BLAS:       %s\n", blas);
	printf("  GSL:        %s\n", gsl_version);
	printf("  SQLite:     %s\n", sqlite3_libversion());
	printf("  librdkafka: %s\n", rd_kafka_version_str());
	printf("  jansson:    %s\n", jansson_version_str());
	printf("  zlib:       %s\n", zlibVersion());
	return DC_EXIT_OK;
}

int dc_getopt(int argc, char **argv, const char *shortopts,
	      const struct option *longopts, void (*cmd_usage)(FILE *f),
	      int *ret_exit)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c == -1)
		return 0;
	if (c == 'h') {
		cmd_usage(stdout);
		*ret_exit = DC_EXIT_OK;
		return -1;
	}
	if (c == '?' || c == ':') {
		cmd_usage(stderr);
		*ret_exit = DC_EXIT_USAGE;
		return -1;
	}
	return c;
}

int dc_time_arg_ns(const char *text, int64_t *ret_ns)
{
	struct fc_time t;
	if (fc_time_parse(text, strlen(text), FC_TIME_EPOCH, &t) < 0 ||
	    t.sec <= INT64_MIN / 1000000000 || t.sec >= INT64_MAX / 1000000000)
		return -EINVAL;
	*ret_ns = t.sec * 1000000000 + t.nsec;
	return 0;
}

/* path's directory ("." for a bare name) into dir. */
static int dir_of(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return snprintf(dir, n, ".") < (int)n ? 0 : -ENAMETOOLONG;
	int len = slash == path ? 1 : (int)(slash - path);
	return snprintf(dir, n, "%.*s", len, path) < (int)n ? 0 : -ENAMETOOLONG;
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	char da[PATH_MAX], db[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
	const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
	na = na ? na + 1 : a;
	nb = nb ? nb + 1 : b;
	if (strcmp(na, nb) || dir_of(a, da, sizeof(da)) < 0 ||
	    dir_of(b, db, sizeof(db)) < 0 || !realpath(da, ra) ||
	    !realpath(db, rb))
		return false;
	return !strcmp(ra, rb);
}

int dc_check_files(const char *cmd, const struct dc_file_arg *files, int n)
{
	for (int i = 0; i < n; i++) {
		if (!files[i].path || !files[i].output)
			continue;
		for (int j = 0; j < n; j++) {
			if (j == i || !files[j].path ||
			    (files[j].output && j > i) ||
			    !same_file(files[i].path, files[j].path))
				continue;
			fprintf(stderr,
				"driftcast %s: %s %s is the file of %s: it "
				"would be overwritten\n",
				cmd, files[i].opt, files[i].path, files[j].opt);
			return DC_EXIT_USAGE;
		}
		char dir[PATH_MAX];
		int e = dir_of(files[i].path, dir, sizeof(dir));
		if (e == 0 && access(dir, W_OK | X_OK) < 0)
			e = -errno;
		if (e < 0) {
			fprintf(stderr, "driftcast %s: %s %s: %s\n", cmd,
				files[i].opt, files[i].path, strerror(-e));
			return DC_EXIT_FAILURE;
		}
	}
	return DC_EXIT_OK;
}

void dc_note_skipped(const char *cmd, const char *file,
		     const struct fc_dataset *d)
{
	if (d->skipped[0])
		fprintf(stderr,
			"driftcast %s: note: %s: %s %s left out: not numeric "
			"(the first value is text)\n",
			cmd, file,
			strchr(d->skipped, ',') ? "columns" : "column",
			d->skipped);
}

int dc_check_operands(const char *cmd, int argc, char **argv, int max)
{
	if (argc - optind <= max)
		return DC_EXIT_OK;
	fprintf(stderr, "driftcast %s: unexpected argument '%s'\n", cmd,
		argv[optind + max]);
	return DC_EXIT_USAGE;
}

int dc_parse_int_opt(const char *cmd, const char *opt, const char *text, int lo,
		     int hi, int *ret)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < lo || v > hi) {
		fprintf(stderr,
			"driftcast %s: %s '%s': not a whole number in %d..%d\n",
			cmd, opt, text, lo, hi);
		return -EINVAL;
	}
	*ret = (int)v;
	return 0;
}

int dc_cfg_args_add_set(struct dc_cfg_args *a, const char *arg)
{
	if (a->nsets >= DC_MAX_SETS) {
		fprintf(stderr, "driftcast: too many --set options (max %d)\n",
			DC_MAX_SETS);
		return -E2BIG;
	}
	a->sets[a->nsets++] = arg;
	return 0;
}

int dc_cfg_args_option(struct dc_cfg_args *a, int c, const char *arg)
{
	if (c == 'c') {
		a->file = arg;
		return 1;
	}
	if (c == 's')
		return dc_cfg_args_add_set(a, arg) < 0 ? -E2BIG : 1;
	return 0;
}

int dc_parse_timeout(const char *cmd, const char *text, double *ret)
{
	char *end;
	double t = strtod(text, &end);
	if (end == text || *end || !(t > 0) || t > 3600) {
		fprintf(stderr,
			"driftcast %s: --timeout '%s': expected seconds in (0, "
			"3600]\n",
			cmd, text);
		return -EINVAL;
	}
	*ret = t;
	return 0;
}

int dc_cfg_args_load(const struct dc_cfg_args *a, struct cfg *ret_cfg,
		     struct cfg_sources *ret_src)
{
	char err[8192];
	int r = cfg_load(a->file, a->sets, a->nsets, ret_cfg, ret_src, err,
			 sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return DC_EXIT_USAGE;
	}
	return DC_EXIT_OK;
}

/* GSL aborts on errors by default; nothing below main may abort. */
static void gsl_quiet_handler(const char *reason, const char *file, int line,
			      int gsl_errno)
{
	(void)reason;
	(void)file;
	(void)line;
	(void)gsl_errno;
}

int dc_main(int argc, char **argv)
{
	log_init();
	gsl_set_error_handler(gsl_quiet_handler);
	cfg_set_kprop_check(dc_kafka_check_property);

	if (argc < 2) {
		usage(stderr);
		return DC_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
	    !strcmp(name, "help")) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			/* `driftcast help CMD` = `driftcast CMD --help` */
			for (size_t i = 0; i < N_COMMANDS; i++) {
				if (!strcmp(argv[2], commands[i].name)) {
					char *sub[] = {argv[2], "--help", NULL};
					optind = 0;
					return commands[i].run(2, sub);
				}
			}
		}
		usage(stdout);
		return DC_EXIT_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V"))
		return dc_cmd_version(1, argv + 1);

	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (!strcmp(name, commands[i].name)) {
			optind = 0; /* each command runs its own getopt */
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "driftcast: unknown command '%s'\n\n", name);
	usage(stderr);
	return DC_EXIT_USAGE;
}
