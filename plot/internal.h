/*
 * Private to plot/: the numbers of one picture (data.c gathers them from
 * the database, recomputing the frozen forecasts; render.c draws them).
 */
#ifndef DRIFTCAST_PLOT_INTERNAL_H
#define DRIFTCAST_PLOT_INTERNAL_H

#include "plot/plot.h"

#include <math.h>

#define PLOT_NS 1000000000LL

/* Series time (epoch ns) as the axes' epoch seconds, exact to the
 * double's precision (a plain (double)ns / 1e9 rounds the ns first). */
static inline double plot_secs(int64_t ns)
{
	return (double)(ns / PLOT_NS) + (double)(ns % PLOT_NS) / 1e9;
}

/* The inverse, for the axis ends (exact for whole seconds). */
static inline int64_t plot_ns(double secs)
{
	double w = floor(secs);
	return (int64_t)w * PLOT_NS + (int64_t)llround((secs - w) * 1e9);
}

/* One line: n points (t epoch seconds, v value), t ascending. */
struct plot_line {
	double *t, *v;
	size_t n, cap;
};

struct plot_mark {
	double t;
	int kind; /* enum plot_marker */
};

struct plot_data {
	int64_t step; /* ns between values */
	int horizon;  /* H */
	int nsteps;   /* horizon steps drawn */
	int steps[PLOT_MAX_STEPS];
	int64_t from, to; /* the time axis, series time (ns) */
	struct plot_line actual;
	struct plot_line adapted[PLOT_MAX_STEPS], frozen[PLOT_MAX_STEPS];
	struct plot_line err_adapted, err_frozen; /* realised MSE */
	struct plot_mark *marks;
	size_t nmarks, capmarks;
	char frozen_note[160]; /* why frozen lines are missing, or "" */
};

/* Fill d (zeroed by the caller) for rq; plot_data_free() after, also on
 * failure. */
int plot_data_load(struct store *s, const struct plot_request *rq,
		   struct plot_data *d, char *errbuf, size_t errbuf_size);
void plot_data_free(struct plot_data *d);

/* Write the message to errbuf (when not NULL) and return r. */
int plot_set_err(char *errbuf, size_t n, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Append (t, v) to l; -ENOMEM. */
int plot_line_add(struct plot_line *l, double t, double v);

#endif
