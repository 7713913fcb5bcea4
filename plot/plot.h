/*
 * plot/: the picture of one series from a driftcast database, as `driftcast
 * plot` writes it and the status page shows it: the actual values; the
 * published (adapted) forecasts and the frozen base model's at chosen
 * horizon steps; vertical markers for accepted and rejected adaptations,
 * drift alarms, rollbacks and resets; and, below, the realised error of
 * the adapted model against the frozen shadow.  Drawn with PLplot (its
 * cairo driver for PNG, its SVG driver for SVG).
 *
 * Where the numbers come from: actual values ride in the forecast rows
 * (forecasts.value, schema 8); the adapted forecasts are the published
 * rows; the frozen forecasts are not stored, so they are recomputed here
 * from the stored base model (models.bytes) on the stored values, the same
 * model and lookback the shadow ran; realised errors are the errors table.
 *
 * No logging, never exits (a PLplot fatal error is caught); functions
 * return 0 or a negative errno with one line in errbuf.  Thread-safe:
 * PLplot's state is global, so renders take turns.
 */
#ifndef DRIFTCAST_PLOT_PLOT_H
#define DRIFTCAST_PLOT_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

#define PLOT_MAX_STEPS 4 /* horizon steps in one picture */

enum plot_format { PLOT_PNG = 0, PLOT_SVG };

/* The event markers, in legend order. */
enum plot_marker {
	PLOT_MARK_ACCEPTED = 0, /* adapt_accepted */
	PLOT_MARK_REJECTED,	/* adapt_rejected */
	PLOT_MARK_DRIFT,	/* drift */
	PLOT_MARK_ROLLBACK,	/* rollback (the shadow's) */
	PLOT_MARK_MANUAL,	/* manual: an operator's rollback */
	PLOT_MARK_RESET,	/* reset */
	PLOT_MARK__COUNT
};

struct plot_request {
	const char *series;
	int64_t since, until; /* series time (ns), inclusive (INT64_MIN/MAX) */
	int last; /* > 0, with until: only the last `last` steps to until */
	/* horizon steps, 1..H; nsteps 0: step 1 and the last step H */
	int steps[PLOT_MAX_STEPS];
	int nsteps;
	enum plot_format format;
	int width, height; /* pixels (SVG: points); 0: 1200 x 800 */
	/* the status page's thumbnail: one panel, no legend, small type */
	bool compact;
};

/* What was drawn (for tests and the command's summary). */
struct plot_stats {
	int64_t from, to; /* the time axis drawn, series time (ns) */
	int64_t step;	  /* the series' step (ns), from the data */
	int horizon;	  /* H of the forecasts */
	size_t actuals;	  /* actual values drawn */
	size_t forecasts; /* forecast points drawn, all steps */
	size_t frozen;	  /* frozen forecast points drawn, all steps */
	size_t realised;  /* realised-error rows drawn */
	size_t markers;	  /* vertical event markers drawn */
	size_t by_marker[PLOT_MARK__COUNT];
	char frozen_note[160]; /* why no frozen line, or "" */
};

/* Draw series from s (a store opened read-only will do) as rq says into
 * out (the caller's; written, not closed).  -ENOENT: no such series;
 * -ENODATA: nothing stored in the range; -EINVAL: a bad request; -EIO:
 * PLplot failed.  *ret_stats (may be NULL) says what was drawn. */
int plot_render(struct store *s, const struct plot_request *rq, FILE *out,
		struct plot_stats *ret_stats, char *errbuf, size_t errbuf_size);

/* Short legend names ("accepted", "drift alarm", ...): static strings. */
const char *plot_marker_name(int marker);

#endif
