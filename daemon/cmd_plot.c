/*
 * `driftcast plot --db FILE --series S [--since T] [--until T]
 * [--horizon-step K ...] --out FILE.png|FILE.svg`: the picture of one
 * series (plot/): actual values, adapted and frozen forecasts, event
 * markers, realised error.  Opens the database read-only (works while a
 * daemon writes) and writes the file through a temporary name and a
 * rename, so a reader never sees half a picture.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/fmt.h"
#include "forecast/forecast.h"
#include "plot/plot.h"
#include "storage/storage.h"

static void plot_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast plot --db FILE --series S [--since T] "
	    "[--until T]\n"
	    "                      [--horizon-step K ...] --out FILE.png|"
	    "FILE.svg\n\n"
	    "Draw one series from the database: the actual values; the "
	    "published\n"
	    "(adapted) forecasts and the frozen base model's, each at the "
	    "chosen\n"
	    "horizon steps (a K-step line shows, at each time, the forecast "
	    "made K\n"
	    "steps earlier); vertical markers for accepted and rejected "
	    "adaptations,\n"
	    "drift alarms, rollbacks (by the shadow or an operator) and "
	    "resets; and\n"
	    "below, the realised error (MSE over the horizon) of the adapted "
	    "model\n"
	    "against the frozen shadow.  Times are UTC.  The frozen forecasts "
	    "are\n"
	    "recomputed from the base model stored in the database, on the "
	    "stored\n"
	    "values; actual values are stored from schema 8 on.\n\n"
	    "Options:\n"
	    "  -d, --db FILE          the SQLite database (opened "
	    "read-only)\n"
	    "  -s, --series S         the series key\n"
	    "  -S, --since T          from series time T: epoch seconds or\n"
	    "                         YYYY-MM-DD[THH:MM[:SS]] (UTC); default: "
	    "the first\n"
	    "  -U, --until T          to series time T (inclusive); "
	    "default: the last\n"
	    "  -k, --horizon-step K   a horizon step to draw, 1..H; repeat "
	    "or give a\n"
	    "                         comma list (at most %d); default: 1 "
	    "and H\n"
	    "  -o, --out FILE         FILE.png or FILE.svg (by its "
	    "extension)\n"
	    "  -W, --width PX         picture width in pixels (default "
	    "1200)\n"
	    "  -H, --height PX        picture height in pixels (default "
	    "800)\n"
	    "  -q, --quiet            no summary on stdout\n"
	    "  -h, --help             show this help\n\n"
	    "Exit status: 0 success, 1 runtime failure (also: nothing "
	    "stored in the\n"
	    "range), 2 usage error.\n",
	    PLOT_MAX_STEPS);
}

static int parse_time(const char *opt, const char *text, int64_t *ret)
{
	if (dc_time_arg_ns(text, ret) < 0) {
		fprintf(stderr,
			"driftcast plot: %s '%s': not a time (epoch "
			"seconds or YYYY-MM-DD[THH:MM[:SS]])\n",
			opt, text);
		return -EINVAL;
	}
	return 0;
}

/* --horizon-step K[,K...] into rq->steps. */
static int parse_steps(const char *text, struct plot_request *rq)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (rq->nsteps == PLOT_MAX_STEPS) {
			fprintf(stderr,
				"driftcast plot: at most %d horizon steps\n",
				PLOT_MAX_STEPS);
			return -EINVAL;
		}
		if (dc_parse_int_opt("plot", "--horizon-step", t, 1, 100000,
				     &rq->steps[rq->nsteps]) < 0)
			return -EINVAL;
		rq->nsteps++;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcasecmp(s + n - m, suffix);
}

static void summary(const char *out, const struct plot_request *rq,
		    const struct plot_stats *st)
{
	char a[32], b[32];
	store_format_time(st->from, a, sizeof(a));
	store_format_time(st->to, b, sizeof(b));
	printf("%s: %s, %s .. %s (step %gs, horizon %d)\n", out, rq->series, a,
	       b, (double)st->step / 1e9, st->horizon);
	printf("  %zu actual values, %zu adapted and %zu frozen forecast "
	       "points, %zu realised errors\n",
	       st->actuals, st->forecasts, st->frozen, st->realised);
	printf("  %zu event markers", st->markers);
	const char *sep = ": ";
	for (int k = 0; k < PLOT_MARK__COUNT; k++)
		if (st->by_marker[k]) {
			printf("%s%zu %s", sep, st->by_marker[k],
			       plot_marker_name(k));
			sep = ", ";
		}
	printf("\n");
	if (st->frozen_note[0])
		printf("  note: %s\n", st->frozen_note);
}

int dc_cmd_plot(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"series", required_argument, NULL, 's'},
	    {"since", required_argument, NULL, 'S'},
	    {"until", required_argument, NULL, 'U'},
	    {"horizon-step", required_argument, NULL, 'k'},
	    {"out", required_argument, NULL, 'o'},
	    {"width", required_argument, NULL, 'W'},
	    {"height", required_argument, NULL, 'H'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *out = NULL;
	struct plot_request rq = {.since = INT64_MIN, .until = INT64_MAX};
	bool quiet = false;
	int c, code;

	while ((c = dc_getopt(argc, argv, "d:s:S:U:k:o:W:H:qh", longopts,
			      plot_usage, &code)) > 0) {
		int r = 0;
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 's':
			rq.series = optarg;
			break;
		case 'S':
			r = parse_time("--since", optarg, &rq.since);
			break;
		case 'U':
			r = parse_time("--until", optarg, &rq.until);
			break;
		case 'k':
			r = parse_steps(optarg, &rq);
			break;
		case 'o':
			out = optarg;
			break;
		case 'W':
			r = dc_parse_int_opt("plot", "--width", optarg, 200,
					     10000, &rq.width);
			break;
		case 'H':
			r = dc_parse_int_opt("plot", "--height", optarg, 150,
					     10000, &rq.height);
			break;
		case 'q':
			quiet = true;
			break;
		}
		if (r < 0)
			return DC_EXIT_USAGE;
	}
	if (c < 0 ||
	    (code = dc_check_operands("plot", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!db || !rq.series || !out) {
		fprintf(stderr, "driftcast plot: --db FILE, --series S and "
				"--out FILE are required\n");
		return DC_EXIT_USAGE;
	}
	if (ends_with(out, ".png"))
		rq.format = PLOT_PNG;
	else if (ends_with(out, ".svg"))
		rq.format = PLOT_SVG;
	else {
		fprintf(stderr,
			"driftcast plot: --out '%s': name a .png or .svg "
			"file\n",
			out);
		return DC_EXIT_USAGE;
	}
	if (rq.since > rq.until) {
		fprintf(stderr, "driftcast plot: --since is after --until\n");
		return DC_EXIT_USAGE;
	}

	char err[4200], tmp[4096];
	struct store *s = dc_open_read_only("plot", db);
	if (!s)
		return DC_EXIT_FAILURE;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out,
			     (long)getpid()) >= sizeof(tmp)) {
		store_free(s);
		fprintf(stderr, "driftcast plot: --out: name too long\n");
		return DC_EXIT_USAGE;
	}
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		fprintf(stderr, "driftcast plot: %s: %s\n", tmp,
			strerror(errno));
		store_free(s);
		return DC_EXIT_FAILURE;
	}
	struct plot_stats st;
	int r = plot_render(s, &rq, f, &st, err, sizeof(err));
	store_free(s);
	if (fclose(f) != 0 && r == 0) {
		snprintf(err, sizeof(err), "%s: %s", tmp, strerror(errno));
		r = -EIO;
	}
	if (r == 0 && rename(tmp, out) != 0) {
		snprintf(err, sizeof(err), "%s: %s", out, strerror(errno));
		r = -errno;
	}
	if (r < 0) {
		unlink(tmp);
		fprintf(stderr, "driftcast plot: %s\n", err);
		return r == -EINVAL ? DC_EXIT_USAGE : DC_EXIT_FAILURE;
	}
	if (!quiet)
		summary(out, &rq, &st);
	return DC_EXIT_OK;
}
