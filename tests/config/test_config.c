/*
 * Unit tests of the configuration table and loader: every bad input the
 * foundation issue lists gets one clear FILE:LINE: error and nothing is
 * assigned; defaults, the sample and the dump round-trip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

static char path[256];

/* Write `text` to a fresh temporary file; its name goes to `path`. */
static const char *write_conf(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/dc-test-config-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	size_t n = strlen(text);
	cr_assert(write(fd, text, n) == (ssize_t)n);
	close(fd);
	return path;
}

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

TestSuite(config, .fini = cleanup);

/* Load text; expect failure; the first error line must start with
 * "PATH:LINE:" and contain `needle`. */
static void expect_error(const char *text, int line, const char *needle)
{
	char err[4096], prefix[300];
	struct cfg c, before;
	const char *p = write_conf(text);
	memset(&c, 0xab, sizeof(c));
	before = c;
	int r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_eq(r, -EINVAL, "expected -EINVAL, got %d (%s)", r, err);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", p, line);
	cr_assert(strncmp(err, prefix, strlen(prefix)) == 0,
		  "error '%s' does not start with '%s'", err, prefix);
	cr_assert(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
	cr_assert(!strchr(err, '\n'), "expected one error line, got '%s'", err);
	cr_assert(memcmp(&c, &before, sizeof(c)) == 0,
		  "config assigned despite the error");
}

Test(config, defaults_pass_their_own_checks)
{
	struct cfg a, b;
	char err[1024];
	cfg_defaults(&a);
	cr_assert_eq(cfg_load(NULL, NULL, 0, &b, NULL, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(a.kafka.brokers, "localhost:9092");
	cr_assert_eq(a.model.lookback, 96);
	cr_assert_eq(a.ttt.every, 25);
	cr_assert_eq(a.ttt.enabled, true);
	cr_assert_eq(a.log.level, CFG_LOG_INFO);
	cr_assert_eq(a.kafka.input_format, CFG_INPUT_JSON);
	cr_assert_str_eq(a.metrics.listen, "127.0.0.1:9464");
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

Test(config, table_sections_are_contiguous_and_names_unique)
{
	size_t n = cfg_option_count();
	cr_assert(n >= 14);
	for (size_t i = 0; i < n; i++) {
		const char *a = cfg_option_name(i);
		cr_assert(strchr(a, '.'), "%s has no section", a);
		for (size_t j = i + 1; j < n; j++) {
			const char *b = cfg_option_name(j);
			cr_assert_str_neq(a, b);
			/* a section seen before j must not reappear after a
			 * different section */
			size_t la = (size_t)(strchr(a, '.') - a);
			size_t lb = (size_t)(strchr(b, '.') - b);
			if (j > i + 1 && la == lb && !strncmp(a, b, la)) {
				const char *m = cfg_option_name(j - 1);
				size_t lm = (size_t)(strchr(m, '.') - m);
				cr_assert(lm == la && !strncmp(a, m, la),
					  "section of %s is split", b);
			}
		}
	}
}

Test(config, good_file_assigns_values_and_sources)
{
	struct cfg c;
	struct cfg_sources src;
	char err[1024];
	const char *p = write_conf("# comment\n"
				   "[kafka]\n"
				   "brokers = a:1, b:2\n"
				   "input_format = influx ; inline comment\n"
				   "\n"
				   "[ttt]\n"
				   "every = 10\n"
				   "enabled = no\n"
				   "[storage]\n"
				   "path = \"/tmp/x.db\"\n");
	cr_assert_eq(cfg_load(p, NULL, 0, &c, &src, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_str_eq(c.kafka.brokers, "a:1, b:2");
	cr_assert_eq(c.kafka.input_format, CFG_INPUT_INFLUX);
	cr_assert_eq(c.ttt.every, 10);
	cr_assert_eq(c.ttt.enabled, false);
	cr_assert_str_eq(c.storage.path, "/tmp/x.db");
	cr_assert_eq(c.model.horizon, 96);
	size_t every = 0;
	for (size_t i = 0; i < cfg_option_count(); i++)
		if (!strcmp(cfg_option_name(i), "ttt.every"))
			every = i;
	cr_assert_eq(src.origin[every], CFG_ORIGIN_FILE);
	cr_assert_eq(src.line[every], 7);
}

Test(config, set_overrides_file)
{
	struct cfg c;
	struct cfg_sources src;
	char err[1024];
	const char *p = write_conf("[ttt]\nevery = 10\n");
	const char *sets[] = {"ttt.every=30", "log.level = debug"};
	cr_assert_eq(cfg_load(p, sets, 2, &c, &src, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(c.ttt.every, 30);
	cr_assert_eq(c.log.level, CFG_LOG_DEBUG);
}

Test(config, missing_file)
{
	char err[1024];
	struct cfg c;
	int r = cfg_load("/nonexistent/driftcast.conf", NULL, 0, &c, NULL, err,
			 sizeof(err));
	cr_assert_eq(r, -ENOENT);
	cr_assert(strstr(err, "/nonexistent/driftcast.conf: cannot open: No "
			      "such file"),
		  "%s", err);
}

Test(config, unreadable_file)
{
	char err[1024];
	struct cfg c;
	const char *p = write_conf("[ttt]\nevery = 3\n");
	cr_assert_eq(chmod(p, 0), 0);
	/* root reads anything: drop to nobody for this test process */
	if (geteuid() == 0)
		cr_assert_eq(seteuid(65534), 0);
	int r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	if (getuid() == 0)
		cr_assert_eq(seteuid(0), 0);
	cr_assert_eq(r, -EACCES, "%d %s", r, err);
	cr_assert(strstr(err, ": cannot open: Permission denied"), "%s", err);
}

Test(config, directory_is_refused)
{
	char err[1024];
	struct cfg c;
	int r = cfg_load("/tmp", NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_lt(r, 0);
	cr_assert(strstr(err, "/tmp: cannot read: not a regular file"), "%s",
		  err);
}

Test(config, syntax_error)
{
	expect_error("[kafka]\nbrokers = a:1\nthis line has no equals\n", 3,
		     "syntax error");
}

/* The loader keeps no copy of the lines: the message finds the line again
 * in the text, trimmed, also the last one without its newline. */
Test(config, syntax_error_quotes_its_line)
{
	expect_error("[kafka]\r\nbrokers = a:1\r\n  odd line\t \r\n", 3,
		     "expected '[section]' or 'key = value', got 'odd line'");
	expect_error("[kafka]\nbrokers = a:1\n\tno equals", 3,
		     "got 'no equals'");
}

/* Values are kept in one buffer of the file's size: the tightest file,
 * "k=v" lines without a final newline, still loads. */
Test(config, values_fill_the_file)
{
	char err[1024];
	struct cfg c;
	const char *p = write_conf("[ttt]\nevery=7\nlr=0.5");
	int r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(c.ttt.every, 7);
	cr_assert_float_eq(c.ttt.lr, 0.5, 1e-12);
}

/* "Did you mean": insertion, deletion, substitution and a transposition
 * are found; a name too far from every setting gets no suggestion. */
static const char *err_of(const char *text)
{
	static char err[4096];
	struct cfg c;
	cr_assert_lt(
	    cfg_load(write_conf(text), NULL, 0, &c, NULL, err, sizeof(err)), 0);
	return err;
}

Test(config, suggestions_by_edit_distance)
{
	expect_error("[model]\nwidthh = 8\n", 2,
		     "(did you mean 'model.width'?)");
	expect_error("[model]\nwdth = 8\n", 2, "(did you mean 'model.width'?)");
	expect_error("[model]\nwidtx = 8\n", 2,
		     "(did you mean 'model.width'?)");
	expect_error("[model]\nwdith = 8\n", 2,
		     "(did you mean 'model.width'?)");
	expect_error("[model]\nqqqqqq = 8\n", 2, "unknown key 'model.qqqqqq'");
	cr_assert(!strstr(err_of("[model]\nqqqqqq = 8\n"), "did you mean"));
}

Test(config, unclosed_section)
{
	expect_error("[kafka\nbrokers = a:1\n", 1, "syntax error");
}

Test(config, unknown_section_with_suggestion)
{
	expect_error("[kafak]\nbrokers = a:1\n", 1,
		     "unknown section [kafak] (did you mean [kafka]?)");
}

Test(config, unknown_key_with_suggestion)
{
	expect_error("[kafka]\nbrokres = a:1\n", 2,
		     "unknown key 'kafka.brokres' (did you mean "
		     "'kafka.brokers'?)");
}

Test(config, unknown_key_without_suggestion)
{
	expect_error("[ttt]\nzzzzzzzzzzzz = 1\n", 2,
		     "unknown key 'ttt.zzzzzzzzzzzz'");
}

Test(config, duplicate_key)
{
	expect_error("[ttt]\nevery = 3\n\nevery = 4\n", 4,
		     "duplicate key 'ttt.every' (first set at line 2)");
}

Test(config, wrong_type)
{
	expect_error("[ttt]\nenabled = maybe\n", 2, "not a boolean");
}

Test(config, wrong_type_integer)
{
	expect_error("[model]\nlookback = ninety-six\n", 2,
		     "model.lookback: not an integer: 'ninety-six'");
}

Test(config, out_of_bounds)
{
	expect_error("[model]\nhorizon = 721\n", 2,
		     "model.horizon: out of range 1..720: '721'");
}

Test(config, out_of_bounds_huge)
{
	expect_error("[ttt]\nevery = 99999999999999999999999\n", 2,
		     "out of range");
}

Test(config, empty_value)
{
	expect_error("[kafka]\ngroup =\n", 2, "kafka.group: empty value");
}

Test(config, trailing_garbage)
{
	expect_error("[ttt]\nevery = 10x\n", 2,
		     "ttt.every: trailing garbage 'x' after the integer 10: "
		     "'10x'");
}

Test(config, bad_enum_lists_choices)
{
	expect_error("[kafka]\ninput_format = xml\n", 2,
		     "must be one of: json, influx");
}

Test(config, bad_broker_list)
{
	expect_error("[kafka]\nbrokers = a:1,,b:2\n", 2, "empty broker");
}

Test(config, bad_port)
{
	expect_error("[metrics]\nlisten = 127.0.0.1:70000\n", 2,
		     "port out of range");
}

Test(config, bad_topic)
{
	expect_error("[kafka]\noutput_topic = fore casts\n", 2,
		     "illegal character ' ' in topic name");
}

Test(config, key_outside_section)
{
	expect_error("every = 3\n", 1, "outside any [section]");
}

Test(config, line_too_long)
{
	char text[6000];
	memcpy(text, "[kafka]\ngroup = ", 16);
	memset(text + 16, 'g', 5000);
	strcpy(text + 5016, "\n");
	expect_error(text, 2, "line longer than 197 bytes");
}

/* The longest line inih reads whole is 199 bytes with its newline (the
 * buffer reader must cut exactly where fgets did). */
Test(config, line_length_limit_is_exact)
{
	char text[300], err[1024];
	struct cfg c;
	strcpy(text, "[storage]\npath = /");
	size_t head = strlen(text), line = strlen("path = /");
	memset(text + head, 'p', 199 - 1 - line);
	strcpy(text + head + 199 - 1 - line, "\n");
	cr_assert_eq(
	    cfg_load(write_conf(text), NULL, 0, &c, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(strlen(c.storage.path), 199 - 1 - strlen("path = "));
	strcpy(text + head + 199 - 1 - line, "p\n");
	expect_error(text, 2, "line longer than 197 bytes");
}

/* A NUL byte used to end the line silently (fgets + strlen): the value
 * before it was taken and the rest ignored. */
Test(config, nul_byte_is_an_error)
{
	static const char text[] = "[kafka]\nbrokers = a:1\0b:2\n";
	char err[1024], prefix[300];
	struct cfg c;
	const char *p = write_conf("");
	FILE *f = fopen(p, "w");
	cr_assert(f);
	cr_assert_eq(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	fclose(f);
	int r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_eq(r, -EINVAL, "%d %s", r, err);
	snprintf(prefix, sizeof(prefix), "%s:2: NUL byte in line", p);
	cr_assert(!strncmp(err, prefix, strlen(prefix)), "%s", err);
}

Test(config, file_over_1_mib_is_refused)
{
	char err[1024];
	struct cfg c;
	const char *p = write_conf("[kafka]\n");
	cr_assert_eq(truncate(p, (1 << 20) + 1), 0);
	int r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_eq(r, -EFBIG, "%d %s", r, err);
	cr_assert(strstr(err, ": cannot read: larger than 1 MiB"), "%s", err);
	cr_assert_eq(truncate(p, 1 << 20), 0);
	r = cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err));
	cr_assert_eq(r, -EINVAL, "a 1 MiB file is read: %d %s", r, err);
	cr_assert(strstr(err, ":2: NUL byte in line"), "%s", err);
}

/* "Did you mean" stops after 16 unknown names: each compares the name with
 * every setting, and a file with hundreds is not a driftcast config. */
Test(config, suggestions_are_capped)
{
	char text[2048] = "[kafka]\n", err[8192];
	struct cfg c;
	for (int i = 0; i < 20; i++)
		strcat(text, "brokrs = x\n");
	cr_assert_eq(
	    cfg_load(write_conf(text), NULL, 0, &c, NULL, err, sizeof(err)),
	    -EINVAL);
	int lines = 0, hints = 0;
	for (char *l = err; l; l = strchr(l + 1, '\n')) {
		lines++;
		char *end = strchr(l + 1, '\n');
		char *hint = strstr(l, "did you mean 'kafka.brokers'");
		hints += hint && (!end || hint < end);
	}
	cr_assert_eq(lines, 20, "%s", err);
	cr_assert_eq(hints, 16, "%s", err);
}

Test(config, cross_field_conflict_blames_later_line)
{
	expect_error("[kafka]\ninput_topic = t1\noutput_topic = t1\n", 3,
		     "kafka.output_topic must differ from kafka.input_topic");
}

/* The state and audit topics were not checked against the others: a state
 * topic that is the input fed the daemon its own records; an audit topic
 * that is the forecasts fed them to its readers.  And a setting left at
 * its default was blamed on the file. */
Test(config, every_topic_differs_from_the_others)
{
	expect_error("[kafka]\nstate_topic = measurements\n", 2,
		     "kafka.state_topic must differ from kafka.input_topic "
		     "(the default)");
	expect_error("[kafka]\naudit_topic = forecasts\n", 2,
		     "kafka.audit_topic must differ from kafka.output_topic");
	expect_error("[kafka]\naudit_topic = driftcast-deadletter\n", 2,
		     "kafka.audit_topic must differ from "
		     "kafka.deadletter_topic");
	expect_error("[kafka]\nstate_topic = x\naudit_topic = x\n", 3,
		     "kafka.audit_topic must differ from kafka.state_topic");
	char err[1024];
	struct cfg c;
	/* off twice is no topic twice */
	cr_assert_eq(cfg_load(write_conf("[kafka]\nstate_topic = off\n"), NULL,
			      0, &c, NULL, err, sizeof(err)),
		     0, "%s", err);
}

/* config check accepted what the engine refuses at start (after the
 * database was made), without a line to blame */
Test(config, adaptation_needs_windows_of_one_kind)
{
	expect_error("[ttt]\nrecon_windows = 0\nstep_windows = 0\n", 3,
		     "ttt.recon_windows and ttt.step_windows are both 0");
}

/* Errors beyond the buffer were cut in the middle of a line, without a
 * word of how many were left out. */
Test(config, errors_beyond_the_buffer_are_counted)
{
	char text[16384], err[1024];
	size_t n = (size_t)snprintf(text, sizeof(text), "[kafka]\n");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "unknown_%d = 1\n", i);
	struct cfg c;
	const char *p = write_conf(text);
	cr_assert_eq(cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err)), -EINVAL);
	int lines = 0;
	char *last = err;
	for (char *l = err; l; l = strchr(l, '\n')) {
		l += *l == '\n';
		last = l;
		lines++;
		if (strncmp(l, "(and ", 5))
			cr_assert(strncmp(l, p, strlen(p)) == 0 &&
				      strchr(l, '\'') != strrchr(l, '\''),
				  "line %d cut: '%.60s'", lines, l);
	}
	char want[64];
	snprintf(want, sizeof(want), "(and %d more errors)", 200 - (lines - 1));
	cr_assert_str_eq(last, want);
	/* one error longer than the whole buffer (a file name of 990 bytes
	 * that cannot be opened): its start, not nothing */
	char name[1000] = "/nonexistent/";
	while (strlen(name) + 16 < sizeof(name))
		strcat(name, "settings-file-");
	cr_assert_lt(cfg_load(name, NULL, 0, &c, NULL, err, sizeof(err)), 0);
	size_t len = strlen(err);
	cr_assert_gt(len, 900, "%s", err); /* the room, not a few bytes */
	cr_assert(strncmp(err, name, len - 3) == 0, "%s", err);
	cr_assert_str_eq(err + len - 3, "...");
}

/* An inline comment inside quotes (" ;" ends the value even there) left a
 * stray quote in the value, and text after a section header was ignored. */
Test(config, a_quote_alone_and_text_after_a_section_are_errors)
{
	expect_error("[storage]\npath = \"/tmp/x ;y\"\n", 2,
		     "storage.path: unbalanced double quote");
	expect_error("[kafka]\ngroup = g\"\n", 2,
		     "kafka.group: unbalanced double quote");
	expect_error("[model] junk\nlookback = 96\n", 1,
		     "text after '[section]': 'junk'");
	char err[1024];
	struct cfg c;
	cr_assert_eq(cfg_load(write_conf("[model] ; a comment\nlookback = "
					 "48\n[kafka]\ngroup = \"g\"\n"),
			      NULL, 0, &c, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(c.model.lookback, 48);
	cr_assert_str_eq(c.kafka.group, "g");
}

Test(config, every_error_is_reported)
{
	char err[4096];
	struct cfg c;
	const char *p = write_conf("[ttt]\nevery = 0\nenabled = 2\n");
	cr_assert_eq(cfg_load(p, NULL, 0, &c, NULL, err, sizeof(err)), -EINVAL);
	cr_assert(strchr(err, '\n'), "expected two lines: %s", err);
	cr_assert(strstr(err, ":2: ttt.every"), "%s", err);
	cr_assert(strstr(err, ":3: ttt.enabled"), "%s", err);
}

Test(config, bad_set_arguments)
{
	char err[1024];
	struct cfg c;
	const char *s1[] = {"ttt.every=10x"};
	cr_assert_eq(cfg_load(NULL, s1, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "--set ttt.every=10x: ttt.every: trailing"), "%s",
		  err);
	const char *s2[] = {"ttt.evry=10"};
	cr_assert_eq(cfg_load(NULL, s2, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "did you mean 'ttt.every'"), "%s", err);
	const char *s3[] = {"noequals"};
	cr_assert_eq(cfg_load(NULL, s3, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "expected section.key=value"), "%s", err);
	const char *s4[] = {"kafka.output_topic=measurements"};
	cr_assert_eq(cfg_load(NULL, s4, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "--set kafka.output_topic=measurements: "
			      "kafka.output_topic must differ"),
		  "%s", err);
}

static char *capture(void (*fn)(FILE *, const struct cfg *),
		     const struct cfg *c)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	cr_assert(f);
	fn(f, c);
	fclose(f);
	return buf;
}

static void dump_fn(FILE *f, const struct cfg *c)
{
	cfg_write_effective(f, c, NULL);
}

static void sample_fn(FILE *f, const struct cfg *c)
{
	(void)c;
	cfg_write_sample(f);
}

Test(config, sample_loads_to_defaults)
{
	struct cfg a, b;
	char err[1024];
	char *s = capture(sample_fn, NULL);
	cr_assert(strstr(s, "#every = 25"));
	cr_assert(strstr(s, "[metrics]"));
	cfg_defaults(&a);
	cr_assert_eq(
	    cfg_load(write_conf(s), NULL, 0, &b, NULL, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	free(s);
}

Test(config, dump_round_trips)
{
	struct cfg a, b;
	char err[1024];
	/* a group with spaces around it, and a quoted path: the dump
	 * wrote them bare, and read back they lost the spaces
	 */
	const char *sets[] = {
	    "ttt.every=7",	     "kafka.brokers=h1:1,h2:2",
	    "log.level=warning",     "ttt.enabled=false",
	    "kafka.group=\"  g  \"", "storage.path=\"/tmp/x y\""};
	cr_assert_eq(cfg_load(NULL, sets, 6, &a, NULL, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(a.kafka.group, "  g  ");
	char *s = capture(dump_fn, &a);
	cr_assert_eq(
	    cfg_load(write_conf(s), NULL, 0, &b, NULL, err, sizeof(err)), 0,
	    "%s\n%s", err, s);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	free(s);
}

Test(config, diff_static_names_restart_only_settings)
{
	struct cfg a, b;
	const char *names[8];
	cfg_defaults(&a);
	b = a;
	b.ttt.every = 3;	     /* reloadable */
	b.log.level = CFG_LOG_DEBUG; /* reloadable */
	cr_assert_eq(cfg_diff_static(&a, &b, names, 8), 0);
	snprintf(b.kafka.group, sizeof(b.kafka.group), "other");
	b.model.horizon = 24;
	cr_assert_eq(cfg_diff_static(&a, &b, names, 8), 2);
	cr_assert_str_eq(names[0], "kafka.group");
	cr_assert_str_eq(names[1], "model.horizon");
}

Test(config, apply_reloadable_copies_exactly_the_reloadable_settings)
{
	struct cfg run, loaded;
	cfg_defaults(&run);
	loaded = run;
	loaded.ttt.every = 3;		  /* reloadable */
	loaded.kafka.max_in_flight = 777; /* reloadable */
	loaded.storage.forecast_sample = 0;
	loaded.log.level = CFG_LOG_DEBUG;
	loaded.model.horizon = 24; /* restart-only */
	snprintf(loaded.kafka.group, sizeof(loaded.kafka.group), "other");
	cfg_apply_reloadable(&run, &loaded);
	cr_assert_eq(run.ttt.every, 3);
	cr_assert_eq(run.kafka.max_in_flight, 777);
	cr_assert_eq(run.storage.forecast_sample, 0);
	cr_assert_eq(run.log.level, CFG_LOG_DEBUG);
	cr_assert_eq(run.model.horizon, 96);
	cr_assert_str_eq(run.kafka.group, "driftcast");
	/* what is left differs in restart-only settings only */
	const char *names[8];
	cr_assert_eq(cfg_diff_static(&run, &loaded, names, 8), 2);
	loaded.model.horizon = 96;
	snprintf(loaded.kafka.group, sizeof(loaded.kafka.group), "driftcast");
	cr_assert_eq(memcmp(&run, &loaded, sizeof(run)), 0);
}

/* ---- librdkafka pass-through ----------------------------------------- */

Test(config, librdkafka_sections_and_set_overrides)
{
	struct cfg c;
	struct cfg_sources src;
	char err[2048];
	const char *p = write_conf("[librdkafka]\n"
				   "client.id = plant-7\n"
				   "\n"
				   "[librdkafka.consumer]\n"
				   "fetch.wait.max.ms = 5\n"
				   "[librdkafka.producer]\n"
				   "linger.ms = 2\n");
	const char *sets[] = {"librdkafka.consumer.fetch.wait.max.ms=7",
			      "librdkafka.producer.batch.size = 1000",
			      "librdkafka.client.id=plant-8"};
	cr_assert_eq(cfg_load(p, sets, 3, &c, &src, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(c.librdkafka.n, 4);
	const struct cfg_kprop *k = c.librdkafka.prop;
	cr_assert_eq(k[0].scope, CFG_KSCOPE_BOTH);
	cr_assert_str_eq(k[0].name, "client.id");
	cr_assert_str_eq(k[0].value, "plant-8"); /* --set wins */
	cr_assert_eq(k[1].scope, CFG_KSCOPE_CONSUMER);
	cr_assert_str_eq(k[1].name, "fetch.wait.max.ms");
	cr_assert_str_eq(k[1].value, "7");
	cr_assert_eq(k[2].scope, CFG_KSCOPE_PRODUCER);
	cr_assert_str_eq(k[2].value, "2");
	cr_assert_str_eq(k[3].name, "batch.size");
	cr_assert_str_eq(k[3].value, "1000");
	/* provenance: --set replaced lines 2 and 5; line 7 stays */
	cr_assert_eq(src.kprop_line[0], 0);
	cr_assert_eq(src.kprop_line[1], 0);
	cr_assert_eq(src.kprop_line[2], 7);
	cr_assert_eq(src.kprop_line[3], 0);
}

Test(config, librdkafka_pinned_properties_are_refused)
{
	expect_error("[librdkafka]\nclient.id = a\ngroup.id = x\n", 3,
		     "librdkafka.group.id: set by driftcast: set kafka.group");
	expect_error("[librdkafka.consumer]\nenable.auto.commit = true\n", 2,
		     "SQLite has made their batch durable");
	expect_error("[librdkafka.producer]\nmessage.timeout.ms = 300000\n", 2,
		     "never drops a forecast");
	struct cfg c;
	char err[1024];
	const char *sets[] = {"librdkafka.partition.assignment.strategy=range"};
	cr_assert_eq(cfg_load(NULL, sets, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "--set librdkafka.partition.assignment.strategy: "
			      "set by driftcast"),
		  "%s", err);
}

Test(config, librdkafka_duplicates_names_and_sections)
{
	expect_error("[librdkafka.consumer]\nfetch.wait.max.ms = 5\n"
		     "fetch.wait.max.ms = 6\n",
		     3,
		     "duplicate key 'librdkafka.consumer.fetch.wait.max.ms' "
		     "(first set at line 2)");
	expect_error("[librdkafka]\nSocket.Timeout.ms = 5\n", 2,
		     "not a librdkafka property name");
	expect_error("[librdkafka.prod]\nlinger.ms = 5\n", 1,
		     "did you mean [librdkafka.producer]?");
	/* the same name in two scopes is two properties */
	struct cfg c;
	char err[1024];
	cr_assert_eq(cfg_load(write_conf("[librdkafka.consumer]\nclient.id = "
					 "a\n[librdkafka.producer]\nclient.id "
					 "= b\n"),
			      NULL, 0, &c, NULL, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(c.librdkafka.n, 2);
}

/* Stands in for librdkafka's parser (config/ does not link it). */
static int fake_check(const char *name, const char *value, char *why, size_t n)
{
	if (!strcmp(name, "no.such.property")) {
		snprintf(why, n, "No such configuration property");
		return -1;
	}
	if (!strcmp(name, "fetch.wait.max.ms") && strcmp(value, "5")) {
		snprintf(why, n, "Invalid value");
		return -1;
	}
	return 0;
}

Test(config, librdkafka_check_errors_carry_file_and_line)
{
	cfg_set_kprop_check(fake_check);
	expect_error("[librdkafka]\n\nno.such.property = 1\n", 3,
		     "librdkafka.no.such.property: No such configuration");
	expect_error("[librdkafka.consumer]\nfetch.wait.max.ms = banana\n", 2,
		     "librdkafka.consumer.fetch.wait.max.ms: Invalid value");
	struct cfg c;
	char err[1024];
	const char *sets[] = {"librdkafka.consumer.fetch.wait.max.ms=6"};
	cr_assert_eq(cfg_load(NULL, sets, 1, &c, NULL, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "--set librdkafka.consumer.fetch.wait.max.ms: "
			      "Invalid value"),
		  "%s", err);
	cfg_set_kprop_check(NULL);
}

Test(config, librdkafka_dump_round_trips_and_hides_secrets)
{
	struct cfg a, b;
	char err[1024];
	const char *sets[] = {"librdkafka.client.id=x",
			      "librdkafka.consumer.fetch.wait.max.ms=5",
			      "librdkafka.producer.linger.ms=1"};
	cr_assert_eq(cfg_load(NULL, sets, 3, &a, NULL, err, sizeof(err)), 0,
		     "%s", err);
	char *s = capture(dump_fn, &a);
	cr_assert(strstr(s, "\n[librdkafka.consumer]\nfetch.wait.max.ms = 5\n"),
		  "%s", s);
	cr_assert_eq(
	    cfg_load(write_conf(s), NULL, 0, &b, NULL, err, sizeof(err)), 0,
	    "%s\n%s", err, s);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	free(s);

	const char *secret[] = {"librdkafka.sasl.password=hunter2",
				"librdkafka.ssl.key.pem=KEYDATA",
				"librdkafka.sasl.oauthbearer.client.secret=s3"};
	cr_assert_eq(cfg_load(NULL, secret, 3, &a, NULL, err, sizeof(err)), 0,
		     "%s", err);
	s = capture(dump_fn, &a);
	cr_assert(strstr(s, "sasl.password = (hidden)"), "%s", s);
	cr_assert(!strstr(s, "hunter2") && !strstr(s, "KEYDATA") &&
		      !strstr(s, "s3\n"),
		  "%s", s);
	free(s);
}

Test(config, librdkafka_changes_need_a_restart)
{
	struct cfg a, b;
	const char *names[8];
	char err[1024];
	const char *s1[] = {"librdkafka.consumer.fetch.wait.max.ms=5"};
	const char *s2[] = {"librdkafka.consumer.fetch.wait.max.ms=6"};
	cr_assert_eq(cfg_load(NULL, s1, 1, &a, NULL, err, sizeof(err)), 0);
	cr_assert_eq(cfg_load(NULL, s2, 1, &b, NULL, err, sizeof(err)), 0);
	cr_assert_eq(cfg_diff_static(&a, &a, names, 8), 0);
	cr_assert_eq(cfg_diff_static(&a, &b, names, 8), 1);
	cr_assert_str_eq(names[0], "librdkafka properties");
	cfg_apply_reloadable(&a, &b);
	cr_assert_str_eq(a.librdkafka.prop[0].value, "5");
}
