/*
 * The status page, GET / on the metrics listener: what the daemon is doing
 * (partitions, lag, series, storage, counters), where the consumer stands,
 * the latest adaptations and rollbacks, and the series whose adapted model
 * is furthest above and below the frozen shadow, each with a small SVG
 * picture drawn by plot/ (the code of `driftcast plot`).  Plain HTML and
 * inline SVG: no script, no external asset, works offline.
 *
 * It runs on the HTTP thread and reads the database through its own
 * read-only connection, opened per request (the loop's connection belongs
 * to the loop's thread); a failure to read it is shown on the page.
 */
#include "daemon/status_page.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/metrics.h"
#include "plot/plot.h"
#include "storage/storage.h"

#define PAGE_RANKED	3   /* series above and below frozen, each */
#define PAGE_EVENTS	10  /* latest adaptations, latest rollbacks */
#define PAGE_LAST_N	100 /* realised errors per series in the ranking */
#define PAGE_MIN_N	10  /* fewer: not ranked */
#define PAGE_STEPS	240 /* steps in a picture */
#define PAGE_MAX_SERIES 100000

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
}

static void utc(int64_t t, char *buf, size_t n)
{
	store_format_time(t, buf, n);
}

static const char style[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:75em}"
    "h1{font-size:1.5em;margin-bottom:0.2em}h2{font-size:1.15em;"
    "margin-top:1.6em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:0.4em 0}"
    "td,th{padding:0.2em 0.7em;text-align:left;border-bottom:1px solid "
    "#eee;font-size:0.92em}th{background:#f4f4f4}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}.bad{color:#b00}.good{color:#070}"
    ".muted{color:#777}.card{display:inline-block;vertical-align:top;"
    "margin:0 1em 1em 0;border:1px solid #ddd;padding:0.5em}"
    ".card svg{width:520px;height:auto;display:block}"
    ".key span{margin-right:1em;white-space:nowrap;display:inline-block}";

/* ---- the loop's numbers ------------------------------------------------ */

static void row(FILE *f, const char *name, const char *cls, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
static void row(FILE *f, const char *name, const char *cls, const char *fmt,
		...)
{
	va_list ap;
	fprintf(f, "<tr><th>%s</th><td class=\"n%s%s\">", name, cls ? " " : "",
		cls ? cls : "");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputs("</td></tr>\n", f);
}

static void loop_numbers(FILE *f, struct dc_metrics *m)
{
	struct dc_metrics_view v;
	dc_metrics_view(m, &v);
	fputs("<h2>The daemon</h2>\n<table>\n", f);
	row(f, "owned partitions", NULL, "%lld", (long long)v.assigned);
	if (v.lag >= 0)
		row(f, "consumer lag", v.lag > 10000 ? "bad" : NULL,
		    "%lld messages", (long long)v.lag);
	else
		row(f, "consumer lag", "muted", "unknown");
	row(f, "series (owned, in memory)", NULL, "%lld", (long long)v.series);
	row(f, "storage", v.degraded ? "bad" : "good", "%s",
	    v.degraded ? "DEGRADED: writes fail" : "ok");
	row(f, "input", v.paused ? "bad" : NULL, "%s",
	    v.paused ? "paused (backpressure)" : "flowing");
	row(f, "messages / forecasts", NULL, "%llu / %llu",
	    (unsigned long long)v.messages, (unsigned long long)v.forecasts);
	row(f, "adaptations accepted / rejected", NULL, "%llu / %llu",
	    (unsigned long long)v.accepted, (unsigned long long)v.rejected);
	row(f, "drift alarms", NULL, "%llu", (unsigned long long)v.drifts);
	row(f, "rollbacks (shadow / operator) / resets", NULL,
	    "%llu / %llu / %llu", (unsigned long long)v.rollbacks,
	    (unsigned long long)v.manual_rollbacks,
	    (unsigned long long)v.resets);
	row(f, "dead letters", v.deadlettered ? "bad" : NULL, "%llu",
	    (unsigned long long)v.deadlettered);
	fputs("</table>\n<p class=\"muted\">Counters since the daemon "
	      "started; <a href=\"/metrics\">/metrics</a> has them all.</p>\n",
	      f);
}

/* ---- stored positions ---------------------------------------------------- */

static int offset_row(void *user, const char *topic, int32_t partition,
		      int64_t next)
{
	FILE *f = user;
	fputs("<tr><td>", f);
	esc(f, topic);
	fprintf(f,
		"</td><td class=\"n\">%d</td><td class=\"n\">%lld</td></tr>\n",
		(int)partition, (long long)next);
	return 0;
}

/* ---- events ------------------------------------------------------------- */

struct event_ctx {
	FILE *f;
	int n;
};

static int event_row(void *user, const struct store_event *ev)
{
	struct event_ctx *c = user;
	FILE *f = c->f;
	char t[32];
	c->n++;
	utc(ev->ts, t, sizeof(t));
	fprintf(f, "<tr><td>%s</td><td>", t);
	esc(f, ev->series);
	fprintf(f,
		"</td><td>%s</td><td>%s</td><td class=\"n\">%llu &rarr; "
		"%llu</td><td>",
		store_event_type_name(ev->type),
		store_trigger_name(ev->trigger),
		(unsigned long long)ev->version_from,
		(unsigned long long)ev->version_to);
	esc(f, ev->reason);
	fputs("</td></tr>\n", f);
	return 0;
}

static void events(FILE *f, struct store *s, const char *title, int a, int b)
{
	char err[512];
	fprintf(f,
		"<h2>%s</h2>\n<table>\n<tr><th>series time</th><th>series"
		"</th><th>event</th><th>trigger</th><th>version</th>"
		"<th>reason</th></tr>\n",
		title);
	struct event_ctx c = {f, 0};
	int r = store_history_last(s, a, b, PAGE_EVENTS, event_row, &c, err,
				   sizeof(err));
	fputs("</table>\n", f);
	if (r < 0) {
		fputs("<p class=\"bad\">", f);
		esc(f, err);
		fputs("</p>\n", f);
	} else if (c.n == 0) {
		fputs("<p class=\"muted\">none yet</p>\n", f);
	}
}

/* ---- adapted vs frozen ----------------------------------------------------
 */

struct ranked {
	char series[STORE_KEY_MAX];
	int64_t until, n;
	double adapted, frozen, gain;
};

struct ranking {
	struct ranked *v;
	size_t n, cap, total;
};

static int rank_row(void *user, const struct store_series_info *i)
{
	struct ranking *k = user;
	k->total++;
	if (i->n_errors < PAGE_MIN_N || !isfinite(i->adapted_error) ||
	    !isfinite(i->shadow_error) || i->shadow_error <= 0 ||
	    !i->has_forecast || k->n >= PAGE_MAX_SERIES)
		return 0;
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		struct ranked *nv = realloc(k->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		k->v = nv;
		k->cap = cap;
	}
	struct ranked *r = &k->v[k->n++];
	snprintf(r->series, sizeof(r->series), "%s", i->series);
	r->until = i->last_forecast_ts;
	r->n = i->n_errors;
	r->adapted = i->adapted_error;
	r->frozen = i->shadow_error;
	r->gain = 100.0 * (1.0 - i->adapted_error / i->shadow_error);
	return 0;
}

static int by_gain(const void *a, const void *b)
{
	double x = ((const struct ranked *)a)->gain;
	double y = ((const struct ranked *)b)->gain;
	return (x > y) - (x < y);
}

/* svg (NUL-terminated) from its <svg, with every id prefixed by pfx so
 * that several pictures share one document. */
static void svg_inline(FILE *f, const char *svg, const char *pfx)
{
	const char *p = strstr(svg, "<svg");
	if (!p)
		return;
	while (*p) {
		const char *a = strstr(p, "id=\""), *b = strstr(p, "url(#");
		const char *q = a && (!b || a < b) ? a : b;
		if (!q) {
			fputs(p, f);
			break;
		}
		size_t len = q == a ? 4 : 5;
		fwrite(p, 1, (size_t)(q - p) + len, f);
		fputs(pfx, f);
		p = q + len;
	}
}

static void picture(FILE *f, struct store *s, const struct ranked *r, int k)
{
	char *buf = NULL, err[512], pfx[16];
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	struct plot_request rq = {
	    .series = r->series,
	    .since = INT64_MIN,
	    .until = r->until,
	    .last = PAGE_STEPS,
	    .steps = {1},
	    .nsteps = 1,
	    .format = PLOT_SVG,
	    .width = 520,
	    .height = 230,
	    .compact = true,
	};
	int e = m ? plot_render(s, &rq, m, NULL, err, sizeof(err)) : -ENOMEM;
	if (m && fputc('\0', m) == EOF)
		e = -ENOMEM;
	if (m)
		fclose(m);
	if (e == 0) {
		snprintf(pfx, sizeof(pfx), "p%d-", k);
		svg_inline(f, buf, pfx);
	} else {
		fputs("<p class=\"bad\">no picture: ", f);
		esc(f, m ? err : "out of memory");
		fputs("</p>", f);
	}
	free(buf);
}

static void cards(FILE *f, struct store *s, const struct ranking *k, bool worst)
{
	size_t shown = 0;
	for (size_t j = 0; j < k->n && shown < PAGE_RANKED; j++) {
		const struct ranked *r = &k->v[worst ? j : k->n - 1 - j];
		if (worst ? r->gain >= 0 : r->gain <= 0)
			break;
		fputs("<div class=\"card\"><b>", f);
		esc(f, r->series);
		fprintf(f,
			"</b> &mdash; adapted %.4g vs frozen %.4g: <span "
			"class=\"%s\">%+.1f%%</span> over the last %lld "
			"realised errors\n",
			r->adapted, r->frozen, worst ? "bad" : "good", r->gain,
			(long long)r->n);
		picture(f, s, r, (int)(worst ? shown : PAGE_RANKED + shown));
		fputs("</div>\n", f);
		shown++;
	}
	if (!shown)
		fputs("<p class=\"muted\">none</p>\n", f);
}

static void ranking(FILE *f, struct store *s)
{
	struct ranking k = {0};
	char err[512];
	int r = store_series_infos(s, NULL, PAGE_LAST_N, rank_row, &k, err,
				   sizeof(err));
	if (r < 0) {
		fputs("<p class=\"bad\">", f);
		esc(f, r == -ENOMEM ? "out of memory" : err);
		fputs("</p>\n", f);
		free(k.v);
		return;
	}
	qsort(k.v, k.n, sizeof(*k.v), by_gain);
	fprintf(f,
		"<h2>Adapted vs frozen</h2>\n<p>%zu series in the database, "
		"%zu with at least %d realised errors. Gain = 1 &minus; "
		"adapted / frozen mean error over each series' last %d "
		"matured forecasts.</p>\n",
		k.total, k.n, PAGE_MIN_N, PAGE_LAST_N);
	fputs("<p class=\"key muted\"><span>&#9473; actual (black)</span>"
	      "<span>&#9473; adapted, 1 step ahead (blue)</span>"
	      "<span>&#9476; frozen, 1 step ahead (orange)</span>"
	      "<span>markers:</span><span>accepted (green)</span>"
	      "<span>rejected (grey, dashed)</span><span>drift alarm "
	      "(yellow)</span><span>rollback (red)</span><span>operator "
	      "rollback (magenta)</span><span>reset (purple)</span></p>\n",
	      f);
	fputs("<h3>Adaptation hurting most (adapted error furthest above "
	      "frozen)</h3>\n",
	      f);
	cards(f, s, &k, true);
	fputs("<h3>Adaptation helping most (adapted error furthest below "
	      "frozen)</h3>\n",
	      f);
	cards(f, s, &k, false);
	free(k.v);
}

int dc_status_page(const char *db, struct dc_metrics *m, FILE *f)
{
	char now[32], err[1024];
	struct store *s = NULL;
	struct store_options so = {.read_only = true};

	utc((int64_t)time(NULL) * 1000000000, now, sizeof(now));
	fprintf(f,
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
		"charset=\"utf-8\"><title>driftcast status</title>"
		/* no icon: else browsers ask for /favicon.ico */
		"<link rel=\"icon\" href=\"data:,\">"
		"<style>%s</style></head><body>\n"
		"<h1>driftcast %s</h1>\n<p class=\"muted\">%s (wall clock, "
		"UTC); database ",
		style, DRIFTCAST_VERSION, now);
	esc(f, db);
	fputs("; times below are series time, UTC.</p>\n", f);
	loop_numbers(f, m);
	int r = store_open(db, &so, &s, err, sizeof(err));
	if (r < 0) {
		fputs("<p class=\"bad\">cannot read the database: ", f);
		esc(f, err);
		fputs("</p>\n</body></html>\n", f);
		return 0;
	}
	fputs("<h2>Where the consumer stands (stored positions)</h2>\n<table>"
	      "<tr><th>topic</th><th>partition</th><th>next offset</th></tr>\n",
	      f);
	r = store_offsets(s, offset_row, f, err, sizeof(err));
	fputs("</table>\n", f);
	if (r < 0) {
		fputs("<p class=\"bad\">", f);
		esc(f, err);
		fputs("</p>\n", f);
	}
	ranking(f, s);
	events(f, s, "Latest adaptations", STORE_EV_ADAPT_ACCEPTED,
	       STORE_EV_ADAPT_ACCEPTED);
	events(f, s, "Latest rollbacks", STORE_EV_ROLLBACK, STORE_EV_MANUAL);
	store_free(s);
	fputs("</body></html>\n", f);
	return 0;
}
