/*
 * Drawing a picture with PLplot: the page, its two panels (values and
 * forecasts; realised error), the event markers, the legend, and
 * plot_render(), which gathers the data and draws it.
 *
 * PLplot keeps its state in globals, so renders take turns under one
 * mutex.  Its output goes to a memfd (PLplot opens and closes the file by
 * name, /proc/self/fd/N), copied to the caller's FILE afterwards.  The
 * cairo driver (PNG) leaves ~4.6 kB of fontconfig and libltdl state behind
 * per picture, so a long-running process draws SVG (PLplot's own driver,
 * which frees everything): the status page does.  A fatal
 * PLplot error calls the exit handler, which jumps back here instead of
 * ending the process; PLplot is not used again by this process after one.
 */
#include "plot/internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <plplot/plplot.h>

#include "storage/storage.h"

#define LEGEND_X 0.795 /* the legends' left edge, share of the page */

/* cmap0 indices */
enum {
	C_BG = 0,
	C_FG,
	C_GRID,
	C_ACTUAL,
	C_ADAPTED, /* PLOT_MAX_STEPS of them */
	C_FROZEN = C_ADAPTED + PLOT_MAX_STEPS,
	C_MARK = C_FROZEN + PLOT_MAX_STEPS, /* PLOT_MARK__COUNT */
	C__COUNT = C_MARK + PLOT_MARK__COUNT
};

static const struct {
	unsigned char r, g, b;
	double a;
} palette[C__COUNT] = {
    [C_BG] = {255, 255, 255, 1},
    [C_FG] = {0, 0, 0, 1},
    [C_GRID] = {215, 215, 215, 1},
    [C_ACTUAL] = {20, 20, 20, 1},
    [C_ADAPTED + 0] = {31, 119, 180, 1},
    [C_ADAPTED + 1] = {106, 61, 154, 1},
    [C_ADAPTED + 2] = {23, 190, 207, 1},
    [C_ADAPTED + 3] = {0, 68, 27, 1},
    [C_FROZEN + 0] = {255, 127, 14, 1},
    [C_FROZEN + 1] = {188, 140, 34, 1},
    [C_FROZEN + 2] = {140, 86, 75, 1},
    [C_FROZEN + 3] = {247, 182, 210, 1},
    [C_MARK + PLOT_MARK_ACCEPTED] = {44, 160, 44, 0.55},
    [C_MARK + PLOT_MARK_REJECTED] = {127, 127, 127, 0.55},
    [C_MARK + PLOT_MARK_DRIFT] = {230, 171, 2, 0.8},
    [C_MARK + PLOT_MARK_ROLLBACK] = {214, 39, 40, 0.9},
    [C_MARK + PLOT_MARK_MANUAL] = {227, 26, 180, 0.9},
    [C_MARK + PLOT_MARK_RESET] = {148, 103, 189, 0.9},
};

/* Line style per marker (pllsty: 1 solid, 2 short dashes, 3 long). */
static const int mark_style[PLOT_MARK__COUNT] = {1, 2, 3, 1, 1, 3};
static const double mark_width[PLOT_MARK__COUNT] = {0.8, 0.8, 1.2,
						    2.0, 2.0, 2.0};

static const char *const mark_names[PLOT_MARK__COUNT] = {
    [PLOT_MARK_ACCEPTED] = "accepted",	      [PLOT_MARK_REJECTED] = "rejected",
    [PLOT_MARK_DRIFT] = "drift alarm",	      [PLOT_MARK_ROLLBACK] = "rollback",
    [PLOT_MARK_MANUAL] = "operator rollback", [PLOT_MARK_RESET] = "reset",
};

const char *plot_marker_name(int marker)
{
	if (marker < 0 || marker >= PLOT_MARK__COUNT)
		return "?";
	return mark_names[marker];
}

static pthread_mutex_t pl_mu = PTHREAD_MUTEX_INITIALIZER;
static jmp_buf pl_jmp;
static bool pl_broken;
static char pl_msg[256];

static int on_plexit(const char *msg)
{
	snprintf(pl_msg, sizeof(pl_msg), "%s", msg ? msg : "");
	pl_broken = true;
	longjmp(pl_jmp, 1);
}

/* ---- pieces ----------------------------------------------------------- */

/* Series time t (epoch ns) in UTC as fmt says. */
static void utc(int64_t t, char *buf, size_t n, const char *fmt)
{
	time_t tt = (time_t)(t / PLOT_NS - (t < 0 && t % PLOT_NS != 0));
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, n, fmt, &tm))
		snprintf(buf, n, "%lld", (long long)t);
}

/* Tick labels that fit the span in seconds (PLplot formats them, in
 * UTC). */
static const char *time_format(double span)
{
	if (span > 60 * 86400)
		return "%Y-%m-%d";
	if (span > 3 * 86400)
		return "%m-%d";
	if (span > 86400)
		return "%m-%d %H:%M";
	if (span > 600)
		return "%H:%M";
	return "%H:%M:%S";
}

static void bounds(const struct plot_line *l, double *lo, double *hi)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i] < *lo)
			*lo = l->v[i];
		if (l->v[i] > *hi)
			*hi = l->v[i];
	}
}

static void pad(double *lo, double *hi)
{
	if (!(*lo <= *hi)) {
		*lo = 0;
		*hi = 1;
	}
	double m = (*hi - *lo) * 0.05;
	if (m == 0)
		m = fabs(*hi) > 0 ? fabs(*hi) * 0.05 : 1;
	*lo -= m;
	*hi += m;
}

static void draw_line(const struct plot_line *l, int color, int style,
		      double width)
{
	if (l->n == 0)
		return;
	plcol0(color);
	pllsty(style);
	plwidth(width);
	if (l->n == 1)
		plpoin(1, l->t, l->v, 2);
	else
		plline((PLINT)l->n, l->t, l->v);
	pllsty(1);
}

/* Vertical markers over the panel's window; counts them when asked. */
static void draw_marks(const struct plot_data *d, double ylo, double yhi,
		       struct plot_stats *st)
{
	/* the frequent kinds first, so rare ones are drawn on top */
	for (int k = 0; k < PLOT_MARK__COUNT; k++)
		for (size_t i = 0; i < d->nmarks; i++) {
			if (d->marks[i].kind != k)
				continue;
			PLFLT x[2] = {d->marks[i].t, d->marks[i].t};
			PLFLT y[2] = {ylo, yhi};
			plcol0(C_MARK + k);
			pllsty(mark_style[k]);
			plwidth(mark_width[k]);
			plline(2, x, y);
			if (st) {
				st->markers++;
				st->by_marker[k]++;
			}
		}
	pllsty(1);
}

static void axes(const struct plot_data *d, bool labels)
{
	plcol0(C_GRID);
	plwidth(0.5);
	pltimefmt(time_format(plot_secs(d->to) - plot_secs(d->from)));
	plbox("gd", 0, 0, "g", 0, 0);
	plcol0(C_FG);
	plwidth(1);
	plbox(labels ? "bcnstd" : "bcstd", 0, 0, "bcnstv", 0, 0);
}

/* A legend in the right margin, its top y below the page's top. */
static void legend_at(double y, int n, const PLINT *opt, const PLINT *tcol,
		      const char *const *tp, const PLINT *lcol,
		      const PLINT *lsty, const PLFLT *lw, double scale)
{
	PLFLT w, h;
	pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
		 PL_POSITION_SUBPAGE | PL_POSITION_INSIDE | PL_POSITION_LEFT |
		     PL_POSITION_TOP,
		 LEGEND_X, y, 0.035, C_BG, C_FG, 1, 0, 0, n, opt, 0.5, scale,
		 1.7, 0.0, tcol, tp, NULL, NULL, NULL, NULL, lcol, lsty, lw,
		 NULL, NULL, NULL, NULL);
}

/* The legend of the upper panel: lines, then the markers present. */
static void legend(const struct plot_data *d, const struct plot_stats *st,
		   double y, double scale)
{
	enum { N = 1 + 2 * PLOT_MAX_STEPS + PLOT_MARK__COUNT };
	PLINT opt[N], tcol[N], lcol[N], lsty[N];
	PLFLT lw[N];
	char text[N][64];
	const char *tp[N];
	int n = 0;

	snprintf(text[n], 64, "actual");
	lcol[n] = C_ACTUAL, lsty[n] = 1, lw[n++] = 1.5;
	for (int k = 0; k < d->nsteps; k++) {
		snprintf(text[n], 64, "adapted, %d ahead", d->steps[k]);
		lcol[n] = C_ADAPTED + k, lsty[n] = 1, lw[n++] = 1.5;
		snprintf(text[n], 64, "frozen, %d ahead", d->steps[k]);
		lcol[n] = C_FROZEN + k, lsty[n] = 2, lw[n++] = 1.5;
	}
	for (int k = 0; k < PLOT_MARK__COUNT; k++) {
		if (!st->by_marker[k])
			continue;
		snprintf(text[n], 64, "%s (%zu)", mark_names[k],
			 st->by_marker[k]);
		lcol[n] = C_MARK + k, lsty[n] = mark_style[k];
		lw[n++] = mark_width[k] < 1.5 ? 1.5 : mark_width[k];
	}
	for (int i = 0; i < n; i++) {
		opt[i] = PL_LEGEND_LINE;
		tcol[i] = C_FG;
		tp[i] = text[i];
	}
	legend_at(y, n, opt, tcol, tp, lcol, lsty, lw, scale);
}

static void error_legend(double y, double scale)
{
	PLINT opt[2] = {PL_LEGEND_LINE, PL_LEGEND_LINE};
	PLINT tcol[2] = {C_FG, C_FG}, lcol[2] = {C_ADAPTED, C_FROZEN};
	PLINT lsty[2] = {1, 2};
	PLFLT lw[2] = {1.5, 1.5};
	const char *tp[2] = {"adapted model", "frozen shadow"};
	legend_at(y, 2, opt, tcol, tp, lcol, lsty, lw, scale);
}

/* ---- the page ------------------------------------------------------------ */

static void draw_page(const struct plot_data *d, const struct plot_request *rq,
		      struct plot_stats *st)
{
	const bool compact = rq->compact;
	const double xr = compact ? 0.97 : LEGEND_X - 0.02; /* legend right */
	char a[40], b[40], title[STORE_KEY_MAX + 160];
	double lo = INFINITY, hi = -INFINITY;

	plschr(0, compact ? 1.25 : 0.8);
	pladv(0);
	utc(d->from, a, sizeof(a), "%Y-%m-%d %H:%M");
	utc(d->to, b, sizeof(b), "%Y-%m-%d %H:%M");
	snprintf(title, sizeof(title), "%s: actual values and forecasts",
		 rq->series);
	plcol0(C_FG);
	/* upper panel: values */
	plvpor(compact ? 0.11 : 0.09, xr, compact ? 0.22 : 0.45,
	       compact ? 0.88 : 0.90);
	bounds(&d->actual, &lo, &hi);
	for (int k = 0; k < d->nsteps; k++) {
		bounds(&d->adapted[k], &lo, &hi);
		bounds(&d->frozen[k], &lo, &hi);
	}
	pad(&lo, &hi);
	plwind(plot_secs(d->from), plot_secs(d->to), lo, hi);
	draw_marks(d, lo, hi, st);
	axes(d, compact);
	plcol0(C_FG);
	plmtex("t", compact ? 1.2 : 3.2, 0.5, 0.5, title);
	if (!compact) {
		char sub[160];
		snprintf(sub, sizeof(sub),
			 "%s .. %s UTC, step %gs, horizon %d steps", a, b,
			 (double)d->step / 1e9, d->horizon);
		plschr(0, 0.7);
		plmtex("t", 1.2, 0.5, 0.5, sub);
		plschr(0, 0.8);
	} else {
		plmtex("b", 2.6, 0.5, 0.5, "time (UTC)");
	}
	plmtex("l", compact ? 3.2 : 4.0, 0.5, 0.5,
	       compact ? "value" : "value (series units)");
	/* frozen dashes over adapted lines: where they agree, both show */
	draw_line(&d->actual, C_ACTUAL, 1, compact ? 1.0 : 1.4);
	for (int k = 0; k < d->nsteps; k++) {
		draw_line(&d->adapted[k], C_ADAPTED + k, 1,
			  compact ? 1.2 : 1.6);
		draw_line(&d->frozen[k], C_FROZEN + k, 2, compact ? 0.8 : 1.0);
		st->forecasts += d->adapted[k].n;
		st->frozen += d->frozen[k].n;
	}
	st->actuals = d->actual.n;
	if (compact)
		return;
	legend(d, st, 0.10, 0.65);
	if (d->frozen_note[0]) {
		plschr(0, 0.65);
		plmtex("b", -1.2, 0.01, 0.0, d->frozen_note);
		plschr(0, 0.8);
	}

	/* lower panel: realised error, adapted vs frozen */
	lo = 0;
	hi = -INFINITY;
	bounds(&d->err_adapted, &lo, &hi);
	bounds(&d->err_frozen, &lo, &hi);
	pad(&lo, &hi);
	if (lo < 0)
		lo = 0;
	plvpor(0.09, xr, 0.10, 0.32);
	plwind(plot_secs(d->from), plot_secs(d->to), lo, hi);
	draw_marks(d, lo, hi, NULL);
	axes(d, true);
	plcol0(C_FG);
	plmtex("t", 1.0, 0.5, 0.5,
	       "realised error of the forecast issued at each time");
	plmtex("l", 4.0, 0.5, 0.5, "MSE over H (normalised)");
	plmtex("b", 3.0, 0.5, 0.5, "time (UTC)");
	draw_line(&d->err_adapted, C_ADAPTED, 1, 1.6);
	draw_line(&d->err_frozen, C_FROZEN, 2, 1.0);
	st->realised = d->err_adapted.n;
	error_legend(1.0 - 0.32, 0.65);
}

/* Copy fd (from its start) to out. */
static int copy_out(int fd, FILE *out)
{
	char buf[65536];
	ssize_t n;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, out) != (size_t)n)
			return -EIO;
	return n < 0 ? -errno : 0;
}

static int draw_locked(const struct plot_data *d, const struct plot_request *rq,
		       int fd, struct plot_stats *st, char *errbuf,
		       size_t errbuf_size)
{
	char path[64];
	int w = rq->width > 0 ? rq->width : 1200;
	int h = rq->height > 0 ? rq->height : 800;

	if (pl_broken)
		return plot_set_err(errbuf, errbuf_size, -EIO,
				    "PLplot failed earlier in this process: %s",
				    pl_msg);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (setjmp(pl_jmp)) {
		return plot_set_err(errbuf, errbuf_size, -EIO, "PLplot: %s",
				    pl_msg);
	}
	plsexit(on_plexit);
	plsdev(rq->format == PLOT_SVG ? "svg" : "pngcairo");
	plsfnam(path);
	plspage(0, 0, w, h, 0, 0);
	plscmap0n(C__COUNT);
	for (int i = 0; i < C__COUNT; i++)
		plscol0a(i, palette[i].r, palette[i].g, palette[i].b,
			 palette[i].a);
	plinit();
	draw_page(d, rq, st);
	plend();
	return 0;
}

int plot_render(struct store *s, const struct plot_request *rq, FILE *out,
		struct plot_stats *ret_stats, char *errbuf, size_t errbuf_size)
{
	struct plot_data d;
	struct plot_stats st;
	int r, fd = -1;

	if (!rq || !rq->series || !out || rq->since > rq->until ||
	    rq->nsteps < 0 || rq->nsteps > PLOT_MAX_STEPS || rq->width < 0 ||
	    rq->height < 0 || rq->width > 10000 || rq->height > 10000)
		return plot_set_err(errbuf, errbuf_size, -EINVAL,
				    "bad plot request");
	memset(&d, 0, sizeof(d));
	memset(&st, 0, sizeof(st));
	if ((r = plot_data_load(s, rq, &d, errbuf, errbuf_size)) < 0)
		goto out;
	st.from = d.from;
	st.to = d.to;
	st.step = d.step;
	st.horizon = d.horizon;
	snprintf(st.frozen_note, sizeof(st.frozen_note), "%s", d.frozen_note);
	if ((fd = memfd_create("driftcast-plot", MFD_CLOEXEC)) < 0) {
		r = plot_set_err(errbuf, errbuf_size, -errno,
				 "memfd_create: %s", strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&pl_mu);
	r = draw_locked(&d, rq, fd, &st, errbuf, errbuf_size);
	pthread_mutex_unlock(&pl_mu);
	if (r == 0 && (r = copy_out(fd, out)) < 0)
		plot_set_err(errbuf, errbuf_size, r, "writing the picture: %s",
			     strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	plot_data_free(&d);
	if (r == 0 && ret_stats)
		*ret_stats = st;
	return r;
}
