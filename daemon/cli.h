/*
 * The command line (daemon/cli.c and daemon/cmd_*.c): the exit codes, the
 * git-style command table's entry points, the settings file and --set
 * overrides every command gathers, and the getopt handling they share.
 * Only this folder decides exit codes.
 */
#ifndef DRIFTCAST_DAEMON_CLI_H
#define DRIFTCAST_DAEMON_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

#define DC_EXIT_OK	0 /* success */
#define DC_EXIT_FAILURE 1 /* runtime failure */
#define DC_EXIT_USAGE	2 /* usage or configuration error */

/* Entry point of the driftcast binary: dispatches argv[1] to a command.
 * Returns the process exit code. */
int dc_main(int argc, char **argv);

/* One git-style command.  run() gets argv with argv[0] = the command name
 * and returns an exit code. */
struct dc_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* The commands, one per daemon/cmd_*.c (version: daemon/cli.c). */
int dc_cmd_config(int argc, char **argv);
int dc_cmd_demo(int argc, char **argv);
int dc_cmd_eval(int argc, char **argv);
int dc_cmd_history(int argc, char **argv);
int dc_cmd_plot(int argc, char **argv);
int dc_cmd_produce(int argc, char **argv);
int dc_cmd_rollback(int argc, char **argv);
int dc_cmd_run(int argc, char **argv);
int dc_cmd_series(int argc, char **argv);
int dc_cmd_status(int argc, char **argv);
int dc_cmd_train(int argc, char **argv);
int dc_cmd_version(int argc, char **argv);
int dc_cmd_versions(int argc, char **argv);

/*
 * One reading as `driftcast produce` sends it (daemon/cmd_produce.c), in
 * format (enum cfg_input_format) for the series PREFIX/COLUMN: JSON
 * {"series":"P/C","ts":"<RFC 3339, UTC>","value":V}, or the line
 * "driftcast,series=P C=V T" with T in ts_unit (enum cfg_ts_unit; auto:
 * ns).  ts: epoch seconds.  Writes buf (NUL-terminated) and *ret_len.
 * Returns 0, -ENAMETOOLONG (the series id is over DC_SERIES_MAX),
 * -ERANGE (ts outside 1970..2200, value not finite) or -ENOSPC.
 */
int dc_produce_message(int format, int ts_unit, const char *prefix,
		       const char *column, double ts, float value, char *buf,
		       size_t size, size_t *ret_len);

/*
 * Training progress as `driftcast train` and the demo print it
 * (daemon/cmd_train.c): a progress bar on a TTY, and a line per epoch with
 * the validation score fc_train keeps (the better of the weights and their
 * average), marked "best so far" when it is.  user: a dc_train_printer.
 */
struct fc_train_progress;
struct dc_train_printer {
	FILE *f;
	bool tty, quiet;
	const char *indent; /* before every line, may be NULL */
	double last;	    /* elapsed at the last bar; start with -1 */
};
int dc_train_print_progress(void *user, const struct fc_train_progress *p);

/*
 * getopt_long() with the endings every command shares.  Returns the next
 * option for the command to handle (> 0), 0 once the options are done, or
 * -1 when the command is over with the exit code in *ret_exit:
 * -h/--help printed usage to stdout (DC_EXIT_OK); an unknown option or a
 * missing argument (getopt_long() has printed which) printed it to stderr
 * (DC_EXIT_USAGE).  shortopts holds 'h' for --help.
 */
int dc_getopt(int argc, char **argv, const char *shortopts,
	      const struct option *longopts, void (*usage)(FILE *f),
	      int *ret_exit);

/* After dc_getopt() returned 0: the operands argv[optind..argc), at most
 * max of them.  One more prints "driftcast CMD: unexpected argument 'X'"
 * and returns DC_EXIT_USAGE; otherwise DC_EXIT_OK. */
int dc_check_operands(const char *cmd, int argc, char **argv, int max);

/* A command's files, named by their options: what it writes must not be
 * what it reads, nor two outputs one file (compared by device and inode
 * when they exist, else by their directories' real paths and names), and
 * each output's directory must be writable -- said before the work, not
 * after it.  files[i].path NULL: not given.  DC_EXIT_OK, or the message
 * printed and DC_EXIT_USAGE (one file twice) or DC_EXIT_FAILURE. */
struct dc_file_arg {
	const char *opt; /* "--out" */
	const char *path;
	bool output;
};
int dc_check_files(const char *cmd, const struct dc_file_arg *files, int n);

struct fc_dataset;
/* "driftcast CMD: note: FILE: column 'x' left out: ..." on stderr when
 * the loader left columns out as not numeric (d->skipped). */
void dc_note_skipped(const char *cmd, const char *file,
		     const struct fc_dataset *d);

/* An operator's time argument (--since, --at: epoch seconds or a date,
 * fc_time_parse's FC_TIME_EPOCH grammar, fraction kept) as series time,
 * epoch ns; 0, or -EINVAL (not a time, or outside 1678..2262). */
int dc_time_arg_ns(const char *text, int64_t *ret_ns);

/* An option's whole number in lo..hi into *ret, or "driftcast CMD: OPT
 * 'TEXT': not a whole number in LO..HI" printed and -EINVAL. */
int dc_parse_int_opt(const char *cmd, const char *opt, const char *text, int lo,
		     int hi, int *ret);

/* The settings file and --set overrides gathered from a command line. */
#define DC_MAX_SETS 128
struct dc_cfg_args {
	const char *file;
	const char *sets[DC_MAX_SETS];
	size_t nsets;
};

/* Record one --set argument; prints an error and returns -E2BIG when there
 * are too many. */
int dc_cfg_args_add_set(struct dc_cfg_args *a, const char *arg);

/* -c/--config FILE and -s/--set K=V of the commands that take the
 * daemon's settings, as dc_getopt() returned them: 1 when c was one of
 * them (recorded in a), 0 when it was not, -E2BIG (printed) for too many
 * --set. */
int dc_cfg_args_option(struct dc_cfg_args *a, int c, const char *arg);

/* --timeout SEC of command cmd into *ret: seconds in (0, 3600]; prints
 * the error and returns -EINVAL otherwise. */
int dc_parse_timeout(const char *cmd, const char *text, double *ret);

/* Load the configuration named by a; on error print every error line to
 * stderr and return DC_EXIT_USAGE.  Returns DC_EXIT_OK on success. */
int dc_cfg_args_load(const struct dc_cfg_args *a, struct cfg *ret_cfg,
		     struct cfg_sources *ret_src);

/* `driftcast rollback`'s Kafka form (daemon/cmd_rollback_kafka.c): c as
 * a control record on topic keyed by its series, waited for until the
 * broker has it (at most timeout_ms); prints where it went, or why not.
 * target describes it ("version 5").  Returns an exit code. */
struct dc_control;
int dc_rollback_send(const struct cfg *cfg, const char *brokers,
		     const char *topic, const struct dc_control *c,
		     const char *target, int timeout_ms);

#endif
