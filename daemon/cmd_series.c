/*
 * `driftcast series --db FILE [--series S] [--last N] [--format F]`: every
 * series at a glance -- last data time, last forecast, current adapter
 * version, adaptations, rejections, drift alarms, rollbacks (and the last
 * one), and the realised error of the adapted model against the frozen
 * shadow over its last N matured forecasts.  Opens the database read-only,
 * so it works while a daemon writes.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/fmt.h"
#include "storage/storage.h"

#define SERIES_LAST_DEFAULT 100

static void series_usage(FILE *f)
{
	fprintf(f,
		"Usage: driftcast series --db FILE [--series S] [--last N] "
		"[--format table|csv|json]\n\n"
		"Every series in the database, one line each: its status "
		"(active: this\n"
		"host serves it; stopped: released at this host's clean "
		"stop, taken back\n"
		"at its next start unless another host of its group serves "
		"it meanwhile;\n"
		"handed_over: another host of its group took it), its last "
		"data time, its last\n"
		"stored forecast (and the adapter version that made it), the "
		"current\n"
		"adapter version, how many adaptations were accepted and "
		"rejected, drift\n"
		"alarms, rollbacks (automatic and by an operator) with the "
		"last one, and the\n"
		"realised error (MSE over the horizon) of the adapted model "
		"and of the\n"
		"frozen shadow over the last N matured forecasts, with the "
		"gain: positive\n"
		"when adaptation helps, negative when it hurts.  Times are "
		"UTC; the\n"
		"*_ts fields of csv and json are series time in nanoseconds "
		"since the epoch.\n\n"
		"Options:\n"
		"  -d, --db FILE      the SQLite database (opened read-only)\n"
		"  -s, --series S     only this series\n"
		"  -n, --last N       realised errors averaged per series "
		"(default %d)\n"
		"  -f, --format F     table (default), csv or json\n"
		"  -h, --help         show this help\n\n"
		"Exit status: 0 success, 1 runtime failure, 2 usage error.\n",
		SERIES_LAST_DEFAULT);
}

struct out {
	enum dc_format fmt;
	size_t n;
};

static void when(bool has, int64_t ts, char *buf, size_t n, const char *none)
{
	if (has)
		store_format_time(ts, buf, n);
	else
		snprintf(buf, n, "%s", none);
}

/* 100 * (1 - adapted / frozen): NAN when either is unknown or frozen 0. */
static double gain(const struct store_series_info *i)
{
	if (i->n_errors == 0 || !isfinite(i->adapted_error) ||
	    !isfinite(i->shadow_error) || i->shadow_error <= 0)
		return NAN;
	return 100.0 * (1.0 - i->adapted_error / i->shadow_error);
}

static void num(double v, char *buf, size_t n, const char *fmt,
		const char *none)
{
	if (isfinite(v))
		snprintf(buf, n, fmt, v);
	else
		snprintf(buf, n, "%s", none);
}

static json_t *json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static void rollback_text(const struct store_series_info *i, char *buf,
			  size_t n)
{
	char t[32];
	if (!i->has_rollback) {
		snprintf(buf, n, "-");
		return;
	}
	store_format_time(i->last_rollback_ts, t, sizeof(t));
	snprintf(buf, n, "%s %s to v%llu (=v%llu)", t,
		 i->last_rollback_type == STORE_EV_MANUAL ? "operator"
							  : "shadow",
		 (unsigned long long)i->last_rollback_to,
		 (unsigned long long)i->last_rollback_restored);
}

static int print_series(void *user, const struct store_series_info *i)
{
	struct out *o = user;
	char data[32], fc[32], rb[96], ea[32], es[32], g[32], ver[24];
	when(i->has_data, i->last_data_ts, data, sizeof(data), "-");
	when(i->has_forecast, i->last_forecast_ts, fc, sizeof(fc), "-");
	if (i->has_version)
		snprintf(ver, sizeof(ver), "%llu",
			 (unsigned long long)i->current_version);
	else
		snprintf(ver, sizeof(ver), "-");
	double gn = gain(i);
	if (o->fmt == DC_FORMAT_TABLE) {
		rollback_text(i, rb, sizeof(rb));
		num(i->adapted_error, ea, sizeof(ea), "%.4g", "-");
		num(i->shadow_error, es, sizeof(es), "%.4g", "-");
		num(gn, g, sizeof(g), "%+.1f%%", "-");
		printf("%-18s %-11s %-20s %-20s %7s %6lld %5lld %5lld %5lld  "
		       "%5lld %9s %9s %7s  %s\n",
		       i->series, i->status, data, fc, ver,
		       (long long)i->adaptations, (long long)i->rejections,
		       (long long)i->drifts, (long long)i->rollbacks,
		       (long long)i->n_errors, ea, es, g, rb);
	} else if (o->fmt == DC_FORMAT_CSV) {
		dc_csv_field(stdout, i->series);
		putchar(',');
		dc_csv_field(stdout, i->status);
		printf(",%s,", i->has_data ? data : "");
		if (i->has_data)
			printf("%lld", (long long)i->last_data_ts);
		printf(",%s,", i->has_forecast ? fc : "");
		if (i->has_forecast)
			printf("%lld,%llu", (long long)i->last_forecast_ts,
			       (unsigned long long)i->last_forecast_version);
		else
			putchar(',');
		printf(",%s,%lld,%lld,%lld,%lld,%lld,%lld,",
		       i->has_version ? ver : "", (long long)i->versions,
		       (long long)i->adaptations, (long long)i->rejections,
		       (long long)i->drifts, (long long)i->rollbacks,
		       (long long)i->resets);
		if (i->has_rollback) {
			store_format_time(i->last_rollback_ts, rb, sizeof(rb));
			printf("%s,%s,%llu,%llu,", rb,
			       store_event_type_name(i->last_rollback_type),
			       (unsigned long long)i->last_rollback_to,
			       (unsigned long long)i->last_rollback_restored);
		} else {
			printf(",,,,");
		}
		num(i->adapted_error, ea, sizeof(ea), "%.9g", "");
		num(i->shadow_error, es, sizeof(es), "%.9g", "");
		num(gn, g, sizeof(g), "%.3f", "");
		printf("%lld,%s,%s,%s\n", (long long)i->n_errors, ea, es, g);
	} else {
		json_t *j = json_object();
		json_object_set_new(j, "series", json_string(i->series));
		json_object_set_new(j, "status", json_string(i->status));
		json_object_set_new(j, "model", json_string(i->model));
		json_object_set_new(j, "last_data_time",
				    i->has_data ? json_string(data)
						: json_null());
		json_object_set_new(j, "last_data_ts",
				    i->has_data ? json_integer(i->last_data_ts)
						: json_null());
		json_object_set_new(j, "last_forecast_time",
				    i->has_forecast ? json_string(fc)
						    : json_null());
		json_object_set_new(j, "last_forecast_ts",
				    i->has_forecast
					? json_integer(i->last_forecast_ts)
					: json_null());
		json_object_set_new(
		    j, "last_forecast_version",
		    i->has_forecast
			? json_integer((json_int_t)i->last_forecast_version)
			: json_null());
		json_object_set_new(
		    j, "current_version",
		    i->has_version
			? json_integer((json_int_t)i->current_version)
			: json_null());
		json_object_set_new(j, "versions", json_integer(i->versions));
		json_object_set_new(j, "adaptations",
				    json_integer(i->adaptations));
		json_object_set_new(j, "rejections",
				    json_integer(i->rejections));
		json_object_set_new(j, "drift_alarms", json_integer(i->drifts));
		json_object_set_new(j, "rollbacks", json_integer(i->rollbacks));
		json_object_set_new(j, "resets", json_integer(i->resets));
		json_t *r = json_null();
		if (i->has_rollback) {
			store_format_time(i->last_rollback_ts, rb, sizeof(rb));
			r = json_pack(
			    "{s:s, s:s, s:I, s:I}", "time", rb, "event",
			    store_event_type_name(i->last_rollback_type),
			    "version", (json_int_t)i->last_rollback_to,
			    "restored", (json_int_t)i->last_rollback_restored);
		}
		json_object_set_new(j, "last_rollback", r);
		json_object_set_new(j, "realised_n", json_integer(i->n_errors));
		json_object_set_new(j, "adapted_error",
				    json_num(i->adapted_error));
		json_object_set_new(j, "frozen_error",
				    json_num(i->shadow_error));
		json_object_set_new(j, "gain_pct", json_num(gn));
		dc_json_emit(j, o->n);
	}
	o->n++;
	return 0;
}

static int no_row(void *user, const struct store_series_info *i)
{
	(void)user;
	(void)i;
	return 0;
}

int dc_cmd_series(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"last", required_argument, NULL, 'n'},
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *series = NULL;
	struct out o = {DC_FORMAT_TABLE, 0};
	int c, code, last = SERIES_LAST_DEFAULT;

	while ((c = dc_getopt(argc, argv, "d:s:n:f:h", longopts, series_usage,
			      &code)) > 0) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 's':
			series = optarg;
			break;
		case 'n':
			if (dc_parse_int_opt("series", "--last", optarg, 1,
					     1000000, &last) < 0)
				return DC_EXIT_USAGE;
			break;
		case 'f':
			if (dc_format_parse("series", optarg, &o.fmt) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("series", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!db) {
		fprintf(stderr, "driftcast series: --db FILE is required\n");
		return DC_EXIT_USAGE;
	}

	char err[1024];
	struct store *s = dc_open_read_only("series", db);
	if (!s)
		return DC_EXIT_FAILURE;
	/* a series that is not there: the error alone, no empty table */
	if (series && store_series_infos(s, series, last, no_row, NULL, err,
					 sizeof(err)) < 0)
		return dc_output_done("series", s, -1, err);
	if (o.fmt == DC_FORMAT_TABLE)
		printf("%-18s %-11s %-20s %-20s %7s %6s %5s %5s %5s  %5s %9s "
		       "%9s %7s  %s\n",
		       "series", "status", "last data", "last forecast",
		       "version", "adapt", "rej", "drift", "rollb", "n",
		       "adapted", "frozen", "gain", "last rollback");
	else if (o.fmt == DC_FORMAT_CSV)
		printf("series,status,last_data_time,last_data_ts,"
		       "last_forecast_time,last_forecast_ts,"
		       "last_forecast_version,current_version,versions,"
		       "adaptations,rejections,drift_alarms,rollbacks,resets,"
		       "last_rollback_time,last_rollback_event,"
		       "last_rollback_version,last_rollback_restored,"
		       "realised_n,adapted_error,frozen_error,gain_pct\n");
	else
		printf("[");
	int r = store_series_infos(s, series, last, print_series, &o, err,
				   sizeof(err));
	if (o.fmt == DC_FORMAT_JSON)
		printf("%s]\n", o.n ? "\n" : "");
	if (r == 0 && o.fmt == DC_FORMAT_TABLE && o.n == 0)
		fprintf(stderr, "driftcast series: no series in %s\n", db);
	return dc_output_done("series", s, r, err);
}
