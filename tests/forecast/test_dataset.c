/*
 * Dataset loading, splits and scaling (forecast/dataset.c) against
 * docs/EVAL.md, on the benchmark files and on small bad CSVs written here.
 *
 * Benchmark files are read from $DRIFTCAST_DATA, a folder laid out as
 * docs/EVAL.md describes (ETT/ETTh1.csv, ETT/ETTm1.csv.gz, weather/...).
 * Without it, ETTh1 is the bundled data/ETTh1.csv (the same bytes) and the
 * tests of the other files are skipped, saying what to set; with it, a
 * missing file fails, since the setting promised it.  Each test logs the
 * file it read.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/forecast.h"

static char errbuf[512];

/* The benchmark file rel (e.g. "ETT/ETTh1.csv") into buf: under
 * $DRIFTCAST_DATA when it is set, else the bundled copy of ETTh1; NULL
 * when neither has it. */
static const char *data_path(const char *rel, char *buf, size_t size)
{
	const char *dir = getenv("DRIFTCAST_DATA");
	const char *root = getenv("SOURCE_ROOT");
	if (dir && *dir) {
		snprintf(buf, size, "%s/%s", dir, rel);
		return buf;
	}
	if (strcmp(rel, "ETT/ETTh1.csv") == 0) {
		snprintf(buf, size, "%s/data/ETTh1.csv", root ? root : ".");
		return buf;
	}
	return NULL;
}

static struct fc_dataset *load_benchmark(const char *rel, const char *cols)
{
	char p[1024];
	struct fc_dataset *d = NULL;
	if (!data_path(rel, p, sizeof(p)))
		cr_skip_test("%s is not bundled: set DRIFTCAST_DATA=DIR, with "
			     "DIR/%s, to run this test",
			     rel, rel);
	cr_assert_eq(access(p, R_OK), 0, "%s: %s", p, strerror(errno));
	cr_log_info("%s: reading %s", rel, p);
	int rc = fc_dataset_load(p, cols, &d, errbuf, sizeof(errbuf));
	cr_assert_eq(rc, 0, "load %s: %s", p, errbuf);
	return d;
}

/* Write text to a fresh temporary file named like name; returns path. */
static char *write_tmp(const char *name, const char *text, char *buf,
		       size_t size)
{
	snprintf(buf, size, "/tmp/dc-ds-%d-%s", (int)getpid(), name);
	FILE *f = fopen(buf, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
	return buf;
}

Test(dataset, etth1_split_matches_eval_md)
{
	struct fc_dataset *d = load_benchmark("ETT/ETTh1.csv", NULL);
	cr_assert_str_eq(d->name, "ETTh1");
	cr_assert_eq(d->n_rows, 17420);
	cr_assert_eq(d->n_cols, 7);
	cr_assert_str_eq(d->col_names[0], "HUFL");
	cr_assert_str_eq(d->col_names[6], "OT");
	cr_assert_eq(d->train_end, 10452);
	cr_assert_eq(d->val_end, 13936);
	cr_assert_eq(d->n_rows - d->val_end, 3484);
	cr_assert_eq(fc_dataset_split_start(d, FC_SPLIT_TEST, 96), 13840);
	cr_assert_eq(fc_dataset_split_start(d, FC_SPLIT_VAL, 96), 10356);
	cr_assert_eq(fc_dataset_split_start(d, FC_SPLIT_TRAIN, 96), 0);
	cr_assert_eq(fc_dataset_split_windows(d, FC_SPLIT_TEST, 96, 96), 3389);
	cr_assert_eq(fc_dataset_split_windows(d, FC_SPLIT_TRAIN, 96, 96),
		     10452 - 192 + 1);
	cr_assert_eq(fc_dataset_split_windows(d, FC_SPLIT_TEST, 96, 720),
		     3580 - 816 + 1);
	cr_assert_float_eq(d->step_seconds, 3600.0, 1e-9);
	/* 2016-07-01 00:00:00 UTC */
	cr_assert_float_eq(d->timestamps[0], 1467331200.0, 1e-6);
	cr_assert_float_eq(d->raw[6], 30.5310001373291f, 1e-4);
	/* Scaling uses the train rows only: train mean 0, std 1 ... */
	for (int j = 0; j < d->n_cols; j++) {
		double s = 0, ss = 0;
		for (int i = 0; i < d->train_end; i++) {
			double v = d->scaled[(size_t)i * 7 + (size_t)j];
			s += v;
			ss += v * v;
		}
		s /= d->train_end;
		cr_assert(fabs(s) < 1e-4, "col %d train mean %g", j, s);
		cr_assert(fabs(ss / d->train_end - s * s - 1.0) < 1e-3);
		cr_assert(d->std[j] > 0.0f);
	}
	/* ... and the test rows of OT are shifted (the regime change). */
	double t = 0;
	for (int i = d->val_end; i < d->n_rows; i++)
		t += (double)d->scaled[(size_t)i * 7 + 6];
	cr_assert(t / (d->n_rows - d->val_end) < -0.5);
	fc_dataset_free(d);
}

Test(dataset, ettm1_gz_split)
{
	struct fc_dataset *d = load_benchmark("ETT/ETTm1.csv.gz", "OT");
	cr_assert_str_eq(d->name, "ETTm1");
	cr_assert_eq(d->n_rows, 69680);
	cr_assert_eq(d->n_cols, 1);
	cr_assert_eq(d->train_end, 41808);
	cr_assert_eq(d->val_end, 55744);
	cr_assert_float_eq(d->step_seconds, 900.0, 1e-9);
	fc_dataset_free(d);
}

Test(dataset, weather_crlf_replacement_bytes_duplicate_and_gap)
{
	struct fc_dataset *d = load_benchmark("weather/weather.csv.gz", NULL);
	cr_assert_str_eq(d->name, "weather");
	cr_assert_eq(d->n_rows, 52696);
	cr_assert_eq(d->n_cols, 21);
	cr_assert_eq(d->train_end, 36887);
	cr_assert_eq(d->val_end, 42157);
	cr_assert_eq(d->n_rows - d->val_end, 10539);
	cr_assert_str_eq(d->col_names[0], "p (mbar)");
	cr_assert_str_eq(d->col_names[20], "OT"); /* no '\r' left */
	cr_assert_str_eq(d->col_names[16], "SWDR (W/m\xEF\xBF\xBD)");
	cr_assert_float_eq(d->step_seconds, 600.0, 1e-9);
	/* Rows kept as they are: the duplicated timestamp stays. */
	cr_assert_float_eq(d->timestamps[19043], d->timestamps[19044], 1e-9);
	cr_assert_float_eq(d->raw[20], 428.1f, 1e-3);
	fc_dataset_free(d);
}

Test(dataset, exchange_rate_csv_dates_and_no_final_newline)
{
	struct fc_dataset *d =
	    load_benchmark("exchange_rate/exchange_rate.csv", "OT,0");
	cr_assert_str_eq(d->name, "exchange_rate");
	cr_assert_eq(d->n_rows, 7588);
	cr_assert_eq(d->n_cols, 2);
	cr_assert_str_eq(d->col_names[0], "OT");
	cr_assert_str_eq(d->col_names[1], "0");
	cr_assert_eq(d->train_end, 5311);
	cr_assert_eq(d->val_end, 6071);
	cr_assert_eq(fc_dataset_split_windows(d, FC_SPLIT_TEST, 96, 96),
		     1517 + 96 - 192 + 1);
	cr_assert_float_eq(d->timestamps[0], 631152000.0, 1e-6); /* 1990 */
	cr_assert_float_eq(d->step_seconds, 86400.0, 1e-9);
	cr_assert_float_eq(d->raw[0], 0.593f, 1e-6);
	cr_assert_float_eq(d->raw[1], 0.7855f, 1e-6);
	fc_dataset_free(d);
}

Test(dataset, exchange_rate_txt_gz_no_header_no_time)
{
	struct fc_dataset *d =
	    load_benchmark("exchange_rate/exchange_rate.txt.gz", NULL);
	cr_assert_str_eq(d->name, "exchange_rate");
	cr_assert_eq(d->n_rows, 7588);
	cr_assert_eq(d->n_cols, 8);
	cr_assert_str_eq(d->col_names[6], "6");
	cr_assert_float_eq(d->raw[6], 0.593f, 1e-6); /* LSTNet col 6 = OT */
	cr_assert_float_eq(d->timestamps[5], 5.0, 0);
	cr_assert_eq(d->train_end, 5311);
	fc_dataset_free(d);
}

static void expect_error(const char *name, const char *text, const char *cols,
			 const char *want)
{
	char p[256], want_full[512];
	struct fc_dataset *d = (struct fc_dataset *)0x1;
	write_tmp(name, text, p, sizeof(p));
	errbuf[0] = '\0';
	int rc = fc_dataset_load(p, cols, &d, errbuf, sizeof(errbuf));
	cr_assert_lt(rc, 0, "%s loaded", name);
	cr_assert_eq(d, (struct fc_dataset *)0x1, "ret touched on failure");
	snprintf(want_full, sizeof(want_full), "%s%s", p, want);
	cr_assert(strstr(errbuf, want_full), "got '%s', want '%s'", errbuf,
		  want_full);
	unlink(p);
}

#define ROWS10                                         \
	"2020-01-01 00:00,1,2\n2020-01-01 01:00,2,3\n" \
	"2020-01-01 02:00,3,4\n2020-01-01 03:00,4,5\n" \
	"2020-01-01 04:00,5,6\n2020-01-01 05:00,6,7\n" \
	"2020-01-01 06:00,7,8\n2020-01-01 07:00,8,9\n" \
	"2020-01-01 08:00,9,10\n"

Test(dataset, bad_csvs_report_file_and_line)
{
	expect_error("ragged.csv", "date,a,b\n2020-01-01,1,2\n2020-01-02,1\n",
		     NULL, ":3: too few fields");
	expect_error("long.csv", "date,a,b\n2020-01-01,1,2,3\n", NULL,
		     ":2: too many fields");
	expect_error("nonnum.csv",
		     "date,a,b\n2020-01-01,1,2\n2020-01-02,1,x1\n", NULL,
		     ":3: column 'b': not a finite number: 'x1'");
	expect_error("empty.csv", "date,a,b\n2020-01-01,1,\n", NULL,
		     ":2: column 'b': empty cell");
	expect_error("nan.csv", "date,a,b\n2020-01-01,1,nan\n", NULL,
		     ":2: column 'b': not a finite number");
	expect_error("badts.csv", "date,a\n2020-13-01,1\n", NULL,
		     ":2: column 'date': not a timestamp");
	expect_error("unknown.csv", "date,a,b\n" ROWS10, "a,zz",
		     ":1: unknown column 'zz'");
	expect_error("few.csv", "date,a,b\n2020-01-01,1,2\n", NULL,
		     ":2: too few rows (1 data rows");
	expect_error("nothing.csv", "", NULL, ":1: empty file");
}

/* "every numeric column" stopped at the first text column; and a column
 * named twice in --columns was trained on twice. */
Test(dataset, text_columns_are_not_channels_and_none_is_named_twice)
{
	char path[256];
	const char *p = write_tmp(
	    "site.csv",
	    "date,a,site,b\n"
	    "2020-01-01 00:00,1,north,2\n2020-01-01 01:00,2,north,3\n"
	    "2020-01-01 02:00,3,north,4\n2020-01-01 03:00,4,north,5\n"
	    "2020-01-01 04:00,5,north,6\n2020-01-01 05:00,6,north,7\n"
	    "2020-01-01 06:00,7,north,8\n2020-01-01 07:00,8,north,9\n"
	    "2020-01-01 08:00,9,north,10\n2020-01-01 09:00,10,north,11\n",
	    path, sizeof(path));
	struct fc_dataset *d = NULL;
	cr_assert_eq(fc_dataset_load(p, NULL, &d, errbuf, sizeof(errbuf)), 0,
		     "%s", errbuf);
	cr_assert_eq(d->n_cols, 2);
	cr_assert_str_eq(d->col_names[0], "a");
	cr_assert_str_eq(d->col_names[1], "b");
	cr_assert_str_eq(d->skipped, "'site'"); /* for the commands' note */
	fc_dataset_free(d);
	unlink(p);
	expect_error("twice.csv", "date,a,b\n" ROWS10, "a,b,a",
		     ": column 'a' named twice in 'a,b,a'");
	expect_error("text.csv", "date,site\n2020-01-01,north\n", NULL,
		     ":2: no numeric column");
}

Test(dataset, missing_file)
{
	struct fc_dataset *d = NULL;
	int rc = fc_dataset_load("/nonexistent/x.csv", NULL, &d, errbuf,
				 sizeof(errbuf));
	cr_assert_eq(rc, -ENOENT);
	cr_assert(strstr(errbuf, "/nonexistent/x.csv: cannot open"));
}

Test(dataset, small_file_seventy_ten_twenty_and_constant_column)
{
	char p[256];
	struct fc_dataset *d = NULL;
	/* 10 rows, CRLF, a BOM, quoted header, a constant column. */
	write_tmp("small.csv",
		  "\xEF\xBB\xBF\"ts\",\"a\",c\r\n"
		  "0,1,5\r\n3600,2,5\r\n7200,3,5\r\n10800,4,5\r\n14400,5,5\r\n"
		  "18000,6,5\r\n21600,7,5\r\n25200,8,5\r\n28800,9,5\r\n"
		  "32400,10,5",
		  p, sizeof(p));
	cr_assert_eq(fc_dataset_load(p, "all", &d, errbuf, sizeof(errbuf)), 0,
		     "%s", errbuf);
	cr_assert_eq(d->n_rows, 10);
	cr_assert_eq(d->n_cols, 2);
	cr_assert_str_eq(d->col_names[0], "a");
	cr_assert_eq(d->train_end, 7);
	cr_assert_eq(d->val_end, 8);
	cr_assert_float_eq(d->timestamps[9], 32400.0, 0);
	cr_assert_float_eq(d->step_seconds, 3600.0, 0);
	cr_assert_float_eq(d->mean[0], 4.0f, 1e-6);
	cr_assert_float_eq(d->std[0], 2.0f, 1e-6); /* population std 1..7 */
	cr_assert_float_eq(d->scaled[(size_t)9 * 2], 3.0f, 1e-6);
	cr_assert_float_eq(d->std[1], 1.0f, 0); /* constant: scale 1 */
	cr_assert_float_eq(d->scaled[1], 0.0f, 0);
	fc_dataset_free(d);
	unlink(p);
}

/* ---- the one date grammar (forecast/timeparse.c) ---------------------- */

static int tp(const char *s, unsigned flags, struct fc_time *t)
{
	*t = (struct fc_time){-1, -1, -1.0};
	return fc_time_parse(s, strlen(s), flags, t);
}

/* s parses under flags to whole seconds sec; returns the result. */
static struct fc_time expect_sec(const char *s, unsigned flags, int64_t sec)
{
	struct fc_time t;
	cr_assert_eq(tp(s, flags, &t), 0, "%s", s);
	cr_assert_eq(t.sec, sec, "%s -> %lld", s, (long long)t.sec);
	return t;
}

/* Every string of list[0..n) gives rc_strict under FC_TIME_RFC3339 and
 * rc_loose without it. */
static void expect_rcs(const char *const *list, size_t n, int rc_strict,
		       int rc_loose)
{
	struct fc_time t;
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(tp(list[i], FC_TIME_RFC3339, &t), rc_strict, "%s",
			     list[i]);
		cr_assert_eq(tp(list[i], 0, &t), rc_loose, "%s", list[i]);
	}
}

/* Each caller's forms: CSV cells, RFC 3339 payloads, --since/--at. */
Test(timeparse, every_callers_forms)
{
	struct fc_time t;
	/* CSV (dataset.c): ETT, exchange_rate, slashes, short fields */
	t = expect_sec("2016-07-01 00:00:00", 0, 1467331200);
	cr_assert_eq(t.frac, 0.0);
	expect_sec("1990/1/1 0:00", 0, 631152000);
	expect_sec("2016/07/01", 0, 1467331200);
	expect_sec("2016-07-01Z", 0, 1467331200);
	expect_sec("2016-07-01T01:02:03Z", 0, 1467331200 + 3723);
	/* RFC 3339 (message payloads) */
	t = expect_sec("2023-11-14T22:13:20Z", FC_TIME_RFC3339, 1700000000);
	cr_assert_eq(t.nsec, 0);
	expect_sec("2023-11-14t22:13:20z", FC_TIME_RFC3339, 1700000000);
	expect_sec("2023-11-14 22:13:20Z", FC_TIME_RFC3339, 1700000000);
	/* --since/--at: epoch seconds (strtoll's blanks and sign) or a date */
	int64_t s = 0;
	cr_assert_eq(fc_time_parse_seconds("1700000000", &s), 0);
	cr_assert_eq(s, 1700000000);
	cr_assert_eq(fc_time_parse_seconds(" -5", &s), 0);
	cr_assert_eq(s, -5);
	cr_assert_eq(fc_time_parse_seconds("1970-01-01T02:00", &s), 0);
	cr_assert_eq(s, 7200);
	cr_assert_eq(fc_time_parse_seconds("1970-01-01 00:00:07Z", &s), 0);
	cr_assert_eq(s, 7);
	cr_assert_eq(fc_time_parse_seconds("9223372036854775807", &s), 0);
	cr_assert_eq(s, INT64_MAX);
	cr_assert_eq(fc_time_parse_seconds("-9223372036854775808", &s), 0);
	cr_assert_eq(s, INT64_MIN);
	s = 42;
	const char *bad[] = {"",    "yesterday",	   "12 ",
			     "1e9", "9223372036854775808", "2024-01-01 ",
			     "+",   "2024-01-01T10",	   "2024-01-01T10:00:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fc_time_parse_seconds(bad[i], &s), -EINVAL, "%s",
			     bad[i]);
	cr_assert_eq(s, 42); /* untouched on failure */
	/* epoch numbers only with FC_TIME_EPOCH */
	cr_assert_eq(tp("1700000000", 0, &t), -EINVAL);
}

Test(timeparse, leap_years_and_month_ends)
{
	struct fc_time t;
	expect_sec("2024-02-29T12:00:00Z", FC_TIME_RFC3339, 1709208000);
	expect_sec("2000-02-29T00:00:00Z", FC_TIME_RFC3339, 951782400);
	cr_assert_eq(tp("1900-02-29T00:00:00Z", FC_TIME_RFC3339, &t), -EINVAL);
	cr_assert_eq(tp("2023-02-29T00:00:00Z", FC_TIME_RFC3339, &t), -EINVAL);
	cr_assert_eq(tp("2023-04-31T00:00:00Z", FC_TIME_RFC3339, &t), -EINVAL);
	cr_assert_eq(tp("2023-12-31T00:00:00Z", FC_TIME_RFC3339, &t), 0);
	/* the loose grammar lets a day past the month's end run on, as the CSV
	 * and --since/--at grammars did (timegm's normalisation) */
	expect_sec("2023-02-29", 0, 1677628800); /* 2023-03-01 */
	expect_sec("2023-02-31", 0, 1677628800 + 2 * 86400);
	cr_assert_eq(tp("2023-01-32", 0, &t), -EINVAL);
	/* a leap second runs into the next minute, in both grammars */
	expect_sec("2016-12-31T23:59:60Z", FC_TIME_RFC3339, 1483228800);
	expect_sec("2016-12-31 23:59:60", 0, 1483228800);
	/* proleptic Gregorian before 1970 and at the ends of num(4) */
	expect_sec("1969-12-31 23:59:59", 0, -1);
	expect_sec("0000-03-01", 0, INT64_C(-62162035200));
	expect_sec("-001-01-01", 0, INT64_C(-62198755200));
	expect_sec("9999-12-31T23:59:59Z", FC_TIME_RFC3339,
		   INT64_C(253402300799));
}

Test(timeparse, zone_offsets)
{
	struct fc_time t;
	expect_sec("2023-11-14T23:13:20+01:00", FC_TIME_RFC3339, 1700000000);
	expect_sec("2023-11-14T20:43:20-01:30", FC_TIME_RFC3339, 1700000000);
	expect_sec("2023-11-14T22:13:20-00:00", FC_TIME_RFC3339, 1700000000);
	expect_sec("2023-11-14 23:13+01:00", 0, 1700000000 - 20);
	expect_sec("1970-01-02+23:59", 0, 60);
	const char *bad[] = {
	    "2023-01-01T00:00:00+24:00", "2023-01-01T00:00:00+00:60",
	    "2023-01-01T00:00:00+0100",	 "2023-01-01T00:00:00+1:00",
	    "2023-01-01T00:00:00+01",	 "2023-01-01T00:00:00 +01:00",
	    "2023-01-01T00:00:00ZZ",	 "2023-01-01T00:00:00UTC"};
	expect_rcs(bad, sizeof(bad) / sizeof(bad[0]), -EINVAL, -EINVAL);
	/* RFC 3339 requires the zone */
	cr_assert_eq(tp("2023-01-01T00:00:00", FC_TIME_RFC3339, &t), -EINVAL);
}

Test(timeparse, fractional_seconds)
{
	struct fc_time t;
	/* nanoseconds: digits beyond the ninth are truncated */
	cr_assert_eq(
	    tp("2024-02-29T12:00:00.123456789123Z", FC_TIME_RFC3339, &t), 0);
	cr_assert_eq(t.sec, 1709208000);
	cr_assert_eq(t.nsec, 123456789);
	cr_assert_eq(tp("2024-02-29T12:00:00.5Z", FC_TIME_RFC3339, &t), 0);
	cr_assert_eq(t.nsec, 500000000);
	cr_assert_eq(tp("2024-02-29T12:00:00.Z", FC_TIME_RFC3339, &t), -EINVAL);
	cr_assert_eq(tp("2024-02-29T12:00:00.5e1Z", FC_TIME_RFC3339, &t),
		     -EINVAL);
	/* the loose grammar: frac is strtod's double of the text, exponent
	 * included (dataset.c always read it so) */
	t = expect_sec("2016-07-01 00:00:00.25", 0, 1467331200);
	cr_assert_eq(t.frac, 0.25);
	cr_assert_eq(t.nsec, 250000000);
	cr_assert_eq(tp("2016-07-01 00:00:00.1", 0, &t), 0);
	cr_assert_eq(t.frac, strtod(".1", NULL));
	cr_assert_eq(tp("2016-07-01 00:00:00.5e1", 0, &t), 0);
	cr_assert_eq(t.frac, 5.0);
	cr_assert_eq(tp("2016-07-01 00:00:00.5e", 0, &t), -EINVAL);
	const char *longf = "2016-07-01 00:00:00."
			    "33333333333333333333333333333333333333333333333"
			    "333333333333333333333333333333333";
	cr_assert_eq(tp(longf, 0, &t), 0);
	cr_assert_eq(t.frac, strtod(strchr(longf, '.'), NULL));
	/* a fraction needs seconds; --since/--at drop it */
	cr_assert_eq(tp("2016-07-01 00:00.5", 0, &t), -EINVAL);
	int64_t s = 0;
	cr_assert_eq(fc_time_parse_seconds("1970-01-01T00:00:07.9Z", &s), 0);
	cr_assert_eq(s, 7);
}

Test(timeparse, out_of_range_fields_and_strict_widths)
{
	struct fc_time t;
	const char *bad[] = {"2023-13-01T00:00:00Z", "2023-00-01T00:00:00Z",
			     "2023-01-00T00:00:00Z", "2023-01-32T00:00:00Z",
			     "2023-01-01T24:00:00Z", "2023-01-01T00:60:00Z",
			     "2023-01-01T00:00:61Z", "2023-01-01T-1:00:00Z",
			     "2023-01-01X00:00:00Z", "2023-01/01T00:00:00Z",
			     /* the sign counts in num(4), as in sscanf */
			     "+2023-01-01T00:00:00Z"};
	expect_rcs(bad, sizeof(bad) / sizeof(bad[0]), -EINVAL, -EINVAL);
	/* forms only the loose grammar takes */
	const char *loose[] = {"2023-1-01T00:00:00Z",  "2023-01-01",
			       "2023/01/01T00:00:00Z", "2023-01-01T00:00Z",
			       "+23-01-01T00:00:00Z",  "2023- 1-01T00:00:00Z",
			       "23-01-01T00:00:00Z"};
	expect_rcs(loose, sizeof(loose) / sizeof(loose[0]), -EINVAL, 0);
	expect_sec("2023- 1-01T00:00:00Z", 0, 1672531200);
	cr_assert_eq(tp("-0-01-01", 0, &t), 0); /* "-0" is 0, as sscanf */
	cr_assert_eq(tp("2023--1-01", 0, &t), -EINVAL);
	cr_assert_eq(tp("20231-01-01", 0, &t), -EINVAL);
	cr_assert_eq(tp("2023-01-01T0:0:0", 0, &t), 0);
	cr_assert_eq(tp("2023-01-01T000:00", 0, &t), -EINVAL);
	/* s[0..len) only: what follows len is not read */
	const char *s = "2023-01-01T00:00:00Z trailing";
	cr_assert_eq(fc_time_parse(s, 20, FC_TIME_RFC3339, &t), 0);
	cr_assert_eq(t.sec, 1672531200);
	cr_assert_eq(fc_time_parse(s, 19, FC_TIME_RFC3339, &t), -EINVAL);
	cr_assert_eq(fc_time_parse("2023-01-01 9", 10, 0, &t), 0);
	cr_assert_eq(t.sec, 1672531200);
	cr_assert_eq(fc_time_parse(s, 0, 0, &t), -EINVAL);
}
