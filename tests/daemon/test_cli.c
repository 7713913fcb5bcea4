/*
 * The command line as a user meets it: exit codes (0 ok, 1 runtime, 2 usage
 * or config), --help on every command, and `config check` printing
 * FILE:LINE: for every kind of bad configuration; `produce`'s usage errors
 * and its messages read back by the daemon's parser.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>

#include "../testutil.h"
#include "daemon/cli.h"
#include "daemon/parse.h"
#include "forecast/forecast.h"
#include "tests/ttt/small_model.h"

/* mkstemp()'s template for a config file: it replaces the X's */
#define CLI_TEMP "/tmp/dc-cli-XXXXXX"

static struct run_result R;

#define RUN(...)                                                  \
	do {                                                      \
		char *argv_[] = {"driftcast", __VA_ARGS__, NULL}; \
		cr_assert_eq(tu_run(&R, argv_), 0);               \
	} while (0)

Test(cli, no_arguments_is_a_usage_error)
{
	char *argv[] = {"driftcast", NULL};
	cr_assert_eq(tu_run(&R, argv), 0);
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "Usage: driftcast <command>"));
}

Test(cli, unknown_command)
{
	RUN("frobnicate");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "unknown command 'frobnicate'"));
}

Test(cli, version)
{
	RUN("--version");
	cr_assert_eq(R.status, 0);
	cr_assert(strstr(R.out, "driftcast "));
	cr_assert(strstr(R.out, "openblas"), "%s", R.out);
	cr_assert_null(strstr(R.out, "gslcblas"));
}

Test(cli, every_command_has_help)
{
	RUN("--help");
	cr_assert_eq(R.status, 0);
	/* each line "  NAME  summary" after "Commands:" names a command */
	char *p = strstr(R.out, "Commands:\n");
	cr_assert(p);
	p += strlen("Commands:\n");
	int n = 0;
	while (p[0] == ' ' && p[1] == ' ') {
		char name[64];
		cr_assert_eq(sscanf(p, " %63s", name), 1);
		struct run_result *h = malloc(sizeof(*h));
		char *argv[] = {"driftcast", name, "--help", NULL};
		cr_assert_eq(tu_run(h, argv), 0);
		cr_assert_eq(h->status, 0, "%s --help exited %d", name,
			     h->status);
		cr_assert(strstr(h->out, "Usage: driftcast"), "%s --help: %s",
			  name, h->out);
		free(h);
		n++;
		p = strchr(p, '\n') + 1;
	}
	cr_assert_geq(n, 2);
}

Test(cli, config_check_ok)
{
	char t[] = CLI_TEMP;
	tu_write_temp(t, "[ttt]\nevery = 12\n");
	RUN("config", "check", t);
	cr_assert_eq(R.status, 0, "%s", R.err);
	cr_assert(strstr(R.out, ": ok"));
	unlink(t);
}

struct bad_case {
	const char *text;
	int line;
	const char *needle;
};

static const struct bad_case bad[] = {
    {"[kafka]\nno equals here\n", 2, "syntax error"},
    {"[nope]\nx = 1\n", 1, "unknown section [nope]"},
    {"[ttt]\nevry = 1\n", 2, "did you mean 'ttt.every'"},
    {"[ttt]\nevery = 1\nevery = 2\n", 3, "duplicate key"},
    {"[ttt]\nenabled = perhaps\n", 2, "not a boolean"},
    {"[model]\nlookback = 5\n", 2, "out of range 16..720"},
    {"[kafka]\nbrokers =\n", 2, "empty value"},
    {"[ttt]\nevery = 10x\n", 2, "trailing garbage 'x'"},
    {"[kafka]\ninput_topic = a\ndeadletter_topic = a\n", 3, "must differ"},
    /* librdkafka pass-through: librdkafka's own parser checks them */
    {"[librdkafka]\nno.such.property = 1\n", 2,
     "librdkafka.no.such.property: No such configuration property"},
    {"[librdkafka.consumer]\nfetch.wait.max.ms = banana\n", 2,
     "Invalid value for configuration property \"fetch.wait.max.ms\""},
    {"[librdkafka.producer]\nlinger.ms = -1\n", 2, "outside allowed range"},
    {"[librdkafka]\nenable.auto.offset.store = true\n", 2, "set by driftcast"},
};

Test(cli, config_check_bad_cases_print_file_line_and_exit_2)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[] = CLI_TEMP, prefix[64];
		tu_write_temp(t, bad[i].text);
		RUN("config", "check", t);
		cr_assert_eq(R.status, 2, "case %zu exited %d", i, R.status);
		snprintf(prefix, sizeof(prefix), "%s:%d: ", t, bad[i].line);
		cr_assert(strncmp(R.err, prefix, strlen(prefix)) == 0,
			  "case %zu: '%s' lacks prefix '%s'", i, R.err, prefix);
		cr_assert(strstr(R.err, bad[i].needle), "case %zu: %s", i,
			  R.err);
		unlink(t);
	}
}

Test(cli, config_check_missing_and_unreadable_files)
{
	RUN("config", "check", "/nonexistent.conf");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "/nonexistent.conf: cannot open: No such file"),
		  "%s", R.err);
	RUN("config", "check", "/tmp");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "/tmp: cannot read: not a regular file"));
	RUN("config", "check");
	cr_assert_eq(R.status, 2);
}

Test(cli, config_dump_applies_set_and_names_origins)
{
	char t[] = CLI_TEMP;
	tu_write_temp(t, "[ttt]\nevery = 12\n");
	RUN("config", "dump", t, "--set", "model.horizon=24");
	cr_assert_eq(R.status, 0, "%s", R.err);
	char expect[128];
	snprintf(expect, sizeof(expect), "every = 12 ; %s:2", t);
	cr_assert(strstr(R.out, expect), "%s", R.out);
	cr_assert(strstr(R.out, "horizon = 24 ; --set"), "%s", R.out);
	cr_assert(strstr(R.out, "lookback = 96 ; default"), "%s", R.out);
	RUN("config", "dump", "--set", "ttt.every=x");
	cr_assert_eq(R.status, 2);
	unlink(t);
}

Test(cli, config_dump_shows_librdkafka_properties_but_not_secrets)
{
	char t[] = CLI_TEMP;
	tu_write_temp(t, "[librdkafka]\nsecurity.protocol = sasl_plaintext\n"
			 "sasl.mechanisms = PLAIN\nsasl.username = dc\n"
			 "sasl.password = hunter2\n");
	RUN("config", "dump", t, "--set", "librdkafka.producer.linger.ms=1");
	cr_assert_eq(R.status, 0, "%s", R.err);
	char expect[128];
	snprintf(expect, sizeof(expect), "sasl.username = dc ; %s:4", t);
	cr_assert(strstr(R.out, expect), "%s", R.out);
	cr_assert(strstr(R.out, "sasl.password = (hidden)"), "%s", R.out);
	cr_assert(!strstr(R.out, "hunter2"), "%s", R.out);
	cr_assert(strstr(R.out, "[librdkafka.producer]\nlinger.ms = 1 ; --set"),
		  "%s", R.out);
	unlink(t);
}

Test(cli, config_sample_is_valid_config)
{
	char t[] = CLI_TEMP;
	RUN("config", "sample");
	cr_assert_eq(R.status, 0);
	cr_assert(strstr(R.out, "[kafka]"));
	tu_write_temp(t, R.out);
	RUN("config", "check", t);
	cr_assert_eq(R.status, 0, "%s", R.err);
	unlink(t);
}

/* The option handling every command shares (dc_getopt, dc_check_operands):
 * an unknown option or a missing argument prints the command's usage to
 * stderr, an operand left over is named; both exit 2 before any work. */
Test(cli, commands_refuse_unknown_options_and_extra_operands)
{
	char *names[] = {"run",	    "demo",	"eval",	   "train",
			 "history", "versions", "rollback"};
	char expect[128];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		RUN(names[i], "--no-such-option");
		cr_assert_eq(R.status, 2, "%s", names[i]);
		snprintf(expect, sizeof(expect), "Usage: driftcast %s",
			 names[i]);
		cr_assert(strstr(R.err, expect), "%s", R.err);
		RUN(names[i], "extra");
		cr_assert_eq(R.status, 2, "%s", names[i]);
		snprintf(expect, sizeof(expect),
			 "driftcast %s: unexpected argument 'extra'\n",
			 names[i]);
		cr_assert_str_eq(R.err, expect);
	}
	RUN("history", "--db");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "requires an argument"), "%s", R.err);
	cr_assert(strstr(R.err, "Usage: driftcast history"), "%s", R.err);
	RUN("config", "check", "a.ini", "b.ini");
	cr_assert_eq(R.status, 2);
	cr_assert_str_eq(
	    R.err, "driftcast config check: unexpected argument 'b.ini'\n");
	RUN("config", "sample", "x");
	cr_assert_eq(R.status, 2);
	cr_assert_str_eq(R.err,
			 "driftcast config sample: unexpected argument 'x'\n");
}

Test(cli, produce_usage_errors)
{
	RUN("produce");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "which file?"), "%s", R.err);
	RUN("produce", "--no-such-option", "a.csv");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "Usage: driftcast produce"), "%s", R.err);
	RUN("produce", "a.csv", "b.csv");
	cr_assert_eq(R.status, 2);
	cr_assert_str_eq(R.err,
			 "driftcast produce: unexpected argument 'b.csv'\n");
	RUN("produce", "--rate", "fast", "a.csv");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "invalid --rate 'fast'"), "%s", R.err);
	RUN("produce", "--rate", "-5/s", "a.csv");
	cr_assert_eq(R.status, 2);
	RUN("produce", "--format", "xml", "a.csv");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "unknown --format 'xml'"), "%s", R.err);
	RUN("produce", "--series-prefix", "a/b", "a.csv");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "without '/'"), "%s", R.err);
	RUN("produce", "--set", "librdkafka.acks=0", "a.csv");
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "acks"), "%s", R.err);
	/* a missing file is a runtime failure, as for `train` */
	RUN("produce", "/nonexistent/x.csv");
	cr_assert_eq(R.status, 1);
	cr_assert(strstr(R.err, "/nonexistent/x.csv: cannot open"), "%s",
		  R.err);
}

Test(cli, produce_refuses_files_without_time_or_with_bad_names)
{
	char path[] = CLI_TEMP;
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "a,b\n");
	for (int i = 0; i < 12; i++)
		fprintf(f, "%d.5,%d\n", i, i);
	fclose(f);
	/* brokers that are never contacted: the checks come first */
	RUN("produce", "--brokers", "127.0.0.1:1", path);
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "no time column"), "%s", R.err);

	f = fopen(path, "w");
	fprintf(f, "date,ok,\x01"
		   "ctl\n");
	for (int i = 0; i < 12; i++)
		fprintf(f, "2016-07-01 %02d:00:00,1,2\n", i);
	fclose(f);
	RUN("produce", "--brokers", "127.0.0.1:1", path);
	cr_assert_eq(R.status, 2);
	cr_assert(strstr(R.err, "the daemon would refuse its readings: "
				"bad_series"),
		  "%s", R.err);
	unlink(path);
}

/* What produce sends is what the daemon reads: every message of both
 * formats through dc_parse gives back the series, time and value. */
Test(cli, produce_messages_parse_back)
{
	static const char *const columns[] = {"OT", "low load", "a,b=c",
					      "q\"uo\\te", "\xc3\xa9t\xc3\xa9"};
	static const double times[] = {1467331200.0, 1467334800.5,
				       1700000000.000000001, 0.0};
	static const float values[] = {30.5f, -0.002f, 1e12f, 0.0f, -7.25e-5f};
	int formats[] = {CFG_INPUT_JSON, CFG_INPUT_INFLUX};
	for (int fi = 0; fi < 2; fi++) {
		struct dc_parse_opts po = {.format = formats[fi],
					   .ts_unit = CFG_TS_AUTO};
		struct dc_parser *p = dc_parser_new(&po);
		cr_assert(p);
		for (size_t c = 0; c < 5; c++)
			for (size_t t = 0; t < 4; t++)
				for (size_t v = 0; v < 5; v++) {
					char msg[2048], key[300];
					size_t len, n = 0;
					struct dc_obs obs;
					struct dc_parse_error pe = {0};
					cr_assert_eq(dc_produce_message(
							 formats[fi],
							 CFG_TS_AUTO, "tx-3",
							 columns[c], times[t],
							 values[v], msg,
							 sizeof(msg), &len),
						     0);
					cr_assert_eq(strlen(msg), len);
					snprintf(key, sizeof(key), "tx-3/%s",
						 columns[c]);
					int r = dc_parse(p, msg, len, key,
							 strlen(key), &obs, 1,
							 &n, &pe);
					cr_assert_eq(r, 0, "%s: %s", msg,
						     pe.text);
					cr_assert_eq(n, 1);
					cr_assert_str_eq(obs.series, key, "%s",
							 msg);
					/* the model reads floats */
					cr_assert_eq((float)obs.value,
						     values[v], "%s", msg);
					int64_t want =
					    (int64_t)llround(times[t] * 1e9);
					cr_assert(
					    llabs(obs.ts_ns - want) < 1000,
					    "%s: %" PRId64, msg, obs.ts_ns);
				}
		dc_parser_free(p);
	}
	char msg[64];
	size_t len;
	cr_assert_eq(dc_produce_message(CFG_INPUT_JSON, CFG_TS_AUTO, "p", "c",
					-1.0, 1.0f, msg, sizeof(msg), &len),
		     -ERANGE);
	cr_assert_eq(dc_produce_message(CFG_INPUT_JSON, CFG_TS_AUTO, "p", "c",
					8e9, 1.0f, msg, sizeof(msg), &len),
		     -ERANGE);
	cr_assert_eq(dc_produce_message(CFG_INPUT_INFLUX, CFG_TS_S, "p", "c",
					100.6, 1.0f, msg, sizeof(msg), &len),
		     0);
	cr_assert_str_eq(msg, "driftcast,series=p c=1 101");
	char longname[300];
	memset(longname, 'x', 255);
	longname[255] = '\0';
	cr_assert_eq(dc_produce_message(CFG_INPUT_JSON, CFG_TS_AUTO, "p",
					longname, 0, 1.0f, msg, sizeof(msg),
					&len),
		     -ENAMETOOLONG);
}

/* The epoch line shows the score fc_train keeps (the better of the weights
 * and their average) beside its "best so far": the demo once marked 0.3695
 * best after an epoch of 0.3630, because the average's 0.3586 was kept but
 * never printed. */
Test(cli, train_progress_prints_the_kept_score)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct dc_train_printer pr = {.f = f, .indent = "  ", .last = -1};
	struct fc_train_progress p = {.epoch = 2,
				      .epochs = 30,
				      .epoch_done = 1,
				      .loss = 0.5f,
				      .val_mse = 0.3630f,
				      .val_mse_ema = NAN,
				      .improved = 1,
				      .lr = 1e-3f};
	dc_train_print_progress(&pr, &p);
	p.epoch = 3, p.val_mse = 0.3695f, p.val_mse_ema = 0.3586f;
	dc_train_print_progress(&pr, &p);
	p.epoch = 4, p.val_mse = 0.3600f, p.val_mse_ema = 0.3700f;
	p.improved = 0;
	dc_train_print_progress(&pr, &p);
	p.epoch_done = 0, p.step = 5, p.steps = 10; /* no bar off a tty */
	dc_train_print_progress(&pr, &p);
	fclose(f);
	cr_assert_str_eq(
	    text,
	    "  epoch 2/30: train loss 0.5000, validation MSE 0.3630, lr 0.001 "
	    "(0.0 s)  best so far\n"
	    "  epoch 3/30: train loss 0.5000, validation MSE 0.3586 (weights' "
	    "average; raw 0.3695), lr 0.001 (0.0 s)  best so far\n"
	    "  epoch 4/30: train loss 0.5000, validation MSE 0.3600 (average "
	    "0.3700), lr 0.001 (0.0 s)\n");
	free(text);
}

/* contrib/telegraf/driftcast.conf: its example lines give the series it
 * says they give, through the daemon's line-protocol parser, and its
 * output is set up as it explains. */
Test(cli, telegraf_sample_maps_to_the_documented_series)
{
	char path[1024], line[1024], *text = NULL;
	const char *root = getenv("SOURCE_ROOT");
	cr_assert(root);
	snprintf(path, sizeof(path), "%s/contrib/telegraf/driftcast.conf",
		 root);
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s", path);
	struct dc_parse_opts po = {.format = CFG_INPUT_INFLUX};
	struct dc_parser *p = dc_parser_new(&po);
	int examples = 0, routing = 0, format = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		routing |= !strcmp(line, "  routing_tag = \"series\"");
		format |= !strcmp(line, "  data_format = \"influx\"");
		if (!strncmp(line, "#   line: ", 10)) {
			free(text);
			text = strdup(line + 10);
			continue;
		}
		if (strncmp(line, "#   keys: ", 10))
			continue;
		cr_assert(text, "keys without a line");
		struct dc_obs obs[8];
		struct dc_parse_error pe = {0};
		size_t n = 0;
		cr_assert_eq(
		    dc_parse(p, text, strlen(text), NULL, 0, obs, 8, &n, &pe),
		    0, "%s: %s", text, pe.text);
		char got[1024] = "";
		for (size_t i = 0; i < n; i++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got),
				 "%s%s", i ? " " : "", obs[i].series);
		cr_assert_str_eq(got, line + 10);
		cr_assert_eq(obs[0].ts_ns, INT64_C(1700000000000000000));
		examples++;
	}
	fclose(f);
	free(text);
	dc_parser_free(p);
	cr_assert_eq(examples, 2);
	cr_assert(routing && format);
}

/* A mistyped --db is refused as a missing file (exit 1), as the read-only
 * commands refuse it; it made a new, empty database at that path. */
Test(cli, rollback_refuses_a_database_that_does_not_exist)
{
	char dir[] = CLI_TEMP, path[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/typo.db", dir);
	RUN("rollback", "--db", path, "--series", "s", "--to-version", "1",
	    "--reason", "r");
	cr_assert_eq(R.status, 1);
	cr_assert(strstr(R.err, "typo.db: No such file or directory"), "%s",
		  R.err);
	cr_assert_neq(access(path, F_OK), 0, "rollback created %s", path);
	rmdir(dir);
}

/* --reason and --by are one line of text: a blank one said nothing, a line
 * break split the rows of `driftcast history`. */
Test(cli, rollback_refuses_a_blank_or_multiline_reason)
{
	static char cases[][2][16] = {{"   ", "alice"},
				      {"two\nlines", "alice"},
				      {"tab\there", "alice"},
				      {"ok", ""},
				      {"ok", "bo\nb"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RUN("rollback", "--db", "/nonexistent/x.db", "--series", "s",
		    "--to-version", "1", "--reason", cases[i][0], "--by",
		    cases[i][1]);
		cr_assert_eq(R.status, 2, "case %zu: %s", i, R.err);
		cr_assert(strstr(R.err, "one line of text"), "%s", R.err);
	}
}

/* An --json that cannot be written is said before the evaluation runs (it
 * was said after, without the reason). */
Test(cli, eval_refuses_an_unwritable_json_before_running)
{
	RUN("eval", "--model", "/nonexistent/m.dcm", "--data",
	    "/nonexistent/d.csv", "--json", "/nonexistent/dir/report.json");
	cr_assert_eq(R.status, 1);
	cr_assert(strstr(R.err, "--json /nonexistent/dir/report.json: No such "
				"file or directory"),
		  "%s", R.err);
}

/* train and eval wrote over their own inputs, or one output over another:
 * `train --out` the training data, `eval --json` the model, `eval
 * --forecasts` the data.  And train found an --out it cannot write only
 * after training. */
Test(cli, outputs_never_overwrite_inputs)
{
	char dir[] = CLI_TEMP, data[64], json[64], model[64];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/d.csv", dir);
	snprintf(json, sizeof(json), "%s/./d.csv", dir);
	snprintf(model, sizeof(model), "%s/m.dcm", dir);
	FILE *f = fopen(data, "w");
	cr_assert_not_null(f);
	fputs("date,a\n2020-01-01 00:00:00,1\n", f);
	fclose(f);
	struct stat before, after;
	cr_assert_eq(stat(data, &before), 0);

	RUN("train", "--data", data, "--out", data);
	cr_assert_eq(R.status, 2, "%s", R.err);
	cr_assert(strstr(R.err, "--out ") && strstr(R.err, "is the file of "
							   "--data"),
		  "%s", R.err);
	RUN("train", "--data", data, "--out", model, "--json", model);
	cr_assert_eq(R.status, 2, "%s", R.err);
	cr_assert(strstr(R.err, "is the file of --out"), "%s", R.err);
	RUN("train", "--data", data, "--out", "/nonexistent/dir/m.dcm");
	cr_assert_eq(R.status, 1);
	cr_assert(strstr(R.err, "--out /nonexistent/dir/m.dcm: No such file"),
		  "%s", R.err);
	RUN("eval", "--model", model, "--data", data, "--forecasts", json);
	cr_assert_eq(R.status, 2, "%s", R.err);
	cr_assert(strstr(R.err, "is the file of --data"), "%s", R.err);
	RUN("eval", "--model", data, "--data", model, "--json", data);
	cr_assert_eq(R.status, 2, "%s", R.err);
	cr_assert(strstr(R.err, "is the file of --model"), "%s", R.err);

	cr_assert_eq(stat(data, &after), 0);
	cr_assert_eq(after.st_size, before.st_size, "the data was overwritten");
	unlink(data);
	rmdir(dir);
}

/* eval said 1 for a --columns it cannot use, where train and produce say 2
 * (a usage error); 1 stays for a file that is not there. */
Test(cli, eval_exit_codes_for_data_match_train)
{
	char dir[] = CLI_TEMP, model[64], data[64], err[256];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(model, sizeof(model), "%s/m.dcm", dir);
	snprintf(data, sizeof(data), "%s/d.csv", dir);
	struct fc_model *m = tt_small_model_ok(16, 4);
	cr_assert_eq(fc_model_save(m, model, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);
	FILE *f = fopen(data, "w");
	cr_assert_not_null(f);
	fputs("date,a\n", f);
	for (int i = 0; i < 100; i++)
		fprintf(f, "2020-01-%02d %02d:00,%d\n", 1 + i / 24, i % 24, i);
	fclose(f);
	RUN("eval", "--model", model, "--data", data, "--columns", "NOPE");
	cr_assert_eq(R.status, 2, "%s", R.err);
	cr_assert(strstr(R.err, "unknown column 'NOPE'"), "%s", R.err);
	RUN("eval", "--model", model, "--data", "/nonexistent/d.csv");
	cr_assert_eq(R.status, 1, "%s", R.err);
	unlink(model);
	unlink(data);
	rmdir(dir);
}
