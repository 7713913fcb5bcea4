/*
 * plot/: a picture rendered from a known database.  The database has a
 * real (tiny, untrained) base model, hourly values with their forecasts,
 * realised errors, and audit events of every kind inside and outside the
 * range drawn.  The PNG is decoded with cairo and checked (signature and
 * size, ink in the panels and the legend, white margins); the SVG is read
 * back to count the vertical marker lines of each kind actually drawn,
 * which must equal the audit rows in the range.
 */
#include <cairo.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/storeutil.h"
#include "forecast/forecast.h"
#include "plot/plot.h"

#define NS     1000000000LL
#define T0     (1700000000LL * NS) /* epoch ns, hourly steps */
#define STEP   (3600 * NS)
#define L      16
#define H      4
#define N      240 /* values */
#define SERIES "meter/7"

/* Range drawn: values 60..200. */
#define SINCE (T0 + 60 * STEP)
#define UNTIL (T0 + 200 * STEP)

static char dir[64], path[PATH_MAX];

static void put_event(struct store *s, int type, int64_t ts, uint64_t from,
		      uint64_t to)
{
	char err[256] = "";
	struct store_event ev = {
	    .type = type,
	    .trigger = STORE_TRIGGER_SCHEDULE,
	    .series = SERIES,
	    .ts = ts,
	    .version_from = from,
	    .version_to = to,
	    .adapted_error = NAN,
	    .shadow_error = NAN,
	    .reason = "test",
	};
	cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)), 0, "%s", err);
}

/* The fixture; returns how many marker events fall in [SINCE, UNTIL]. */
static void make_db(size_t expect[PLOT_MARK__COUNT])
{
	char err[1024] = "", mpath[PATH_MAX];
	struct fc_config c;
	struct fc_model *m = NULL;

	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	fc_config_default(&c);
	c.lookback = L;
	c.horizon = H;
	c.patch_len = 8;
	c.patch_stride = 4;
	c.mask_seg = 8;
	c.d_model = 8;
	c.n_heads = 2;
	c.d_ff = 16;
	c.lora_rank = 2;
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0, "%s", err);
	snprintf(mpath, sizeof(mpath), "%s/m.dcm", dir);
	cr_assert_eq(fc_model_save(m, mpath, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);
	FILE *f = fopen(mpath, "rb");
	cr_assert(f);
	static unsigned char bytes[1 << 20];
	size_t nb = fread(bytes, 1, sizeof(bytes), f);
	fclose(f);
	cr_assert(nb > 0 && nb < sizeof(bytes));

	struct store *s = su_open(path, NULL);
	int64_t mid = 0;
	cr_assert_eq(store_model_register(s, "tiny.dcm", "", bytes, nb, NULL,
					  &mid, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(su_version(s, SERIES, STORE_EV_INIT, 0, 0, T0, 0), 0);
	uint64_t v = 0;
	for (int i = 0; i < N; i++) {
		int64_t ts = T0 + (int64_t)i * STEP;
		float value = 10.0f + 3.0f * sinf((float)i * 0.26f);
		if (i == 120)
			continue; /* a one-step gap: interpolated */
		if (i >= L - 1) {
			float vals[H];
			for (int k = 0; k < H; k++)
				vals[k] = value + 0.5f * (float)(k + 1);
			struct store_event ev = {
			    .type = STORE_EV_FORECAST,
			    .series = SERIES,
			    .ts = ts,
			    .version_to = v,
			    .forecast = vals,
			    .horizon = H,
			    .value = value,
			};
			cr_assert_eq(store_event_put(s, &ev, err, sizeof(err)),
				     0, "%s", err);
		}
		if (i >= L + H && i % 5 == 0)
			cr_assert_eq(store_error_put(s, SERIES, ts - H * STEP,
						     v, 1.0f + 0.01f * i, 1.2f,
						     err, sizeof(err)),
				     0, "%s", err);
		/* events: every kind, inside and outside the range */
		if (i % 30 == 7) {
			cr_assert_eq(su_version(s, SERIES,
						STORE_EV_ADAPT_ACCEPTED, v,
						v + 1, ts, (float)i),
				     0);
			v++;
		}
		if (i % 40 == 11)
			put_event(s, STORE_EV_ADAPT_REJECTED, ts, v, v);
		if (i % 50 == 13)
			put_event(s, STORE_EV_DRIFT, ts, v, v);
		if (i == 150 || i == 230) {
			cr_assert_eq(su_version(s, SERIES, STORE_EV_ROLLBACK, v,
						v + 1, ts, 0.5f),
				     0);
			v++;
		}
		if (i == 170 || i == 20) {
			cr_assert_eq(su_version(s, SERIES, STORE_EV_RESET, v,
						v + 1, ts, 0.25f),
				     0);
			v++;
		}
		if (i == 90)
			put_event(s, STORE_EV_GAP_FILLED, ts, v, v);
	}
	su_commit(s);
	/* an operator's rollback, at the series' last version time */
	struct store_rollback_target t = {.number = 1};
	struct store_rollback_result rr;
	cr_assert_eq(store_rollback(s, SERIES, &t, "operator test", &rr, err,
				    sizeof(err)),
		     0, "%s", err);
	store_free(s);

	/* what the range holds, by SQL */
	static const char *const names[PLOT_MARK__COUNT] = {
	    "adapt_accepted", "adapt_rejected", "drift",
	    "rollback",	      "manual",		"reset"};
	sqlite3 *db = su_raw(path);
	for (int k = 0; k < PLOT_MARK__COUNT; k++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM audit WHERE event = '%s' AND "
			 "ts BETWEEN %lld AND %lld",
			 names[k], SINCE, UNTIL);
		expect[k] = (size_t)su_int(db, sql);
	}
	sqlite3_close(db);
}

static struct store *open_ro(void)
{
	struct store_options o = {.read_only = true};
	return su_open(path, &o);
}

static void render(enum plot_format fmt, const char *out, struct plot_stats *st)
{
	char err[1024] = "";
	struct plot_request rq = {
	    .series = SERIES,
	    .since = SINCE,
	    .until = UNTIL,
	    .steps = {1, H},
	    .nsteps = 2,
	    .format = fmt,
	};
	struct store *s = open_ro();
	FILE *f = fopen(out, "wb");
	cr_assert(f);
	int r = plot_render(s, &rq, f, st, err, sizeof(err));
	cr_assert_eq(r, 0, "plot_render: %d %s", r, err);
	cr_assert_eq(fclose(f), 0);
	store_free(s);
}

/* Pixels in the rectangle that are not (near) white. */
static size_t ink(cairo_surface_t *img, int x0, int y0, int x1, int y1)
{
	int stride = cairo_image_surface_get_stride(img);
	const unsigned char *p = cairo_image_surface_get_data(img);
	size_t n = 0;
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++) {
			uint32_t px;
			memcpy(&px, p + (size_t)y * stride + (size_t)x * 4, 4);
			int r = (px >> 16) & 255, g = (px >> 8) & 255,
			    b = px & 255;
			if (r < 240 || g < 240 || b < 240)
				n++;
		}
	return n;
}

Test(plot, png_from_a_known_database)
{
	size_t expect[PLOT_MARK__COUNT], total = 0;
	char out[PATH_MAX];
	struct plot_stats st;

	make_db(expect);
	snprintf(out, sizeof(out), "%s/p.png", dir);
	render(PLOT_PNG, out, &st);

	/* the header: PNG signature, IHDR 1200 x 800 */
	unsigned char hdr[24];
	FILE *f = fopen(out, "rb");
	cr_assert(f);
	cr_assert_eq(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	cr_assert(!memcmp(hdr, "\x89PNG\r\n\x1a\n", 8));
	cr_assert(!memcmp(hdr + 12, "IHDR", 4));
	cr_assert_eq((hdr[16] << 24 | hdr[17] << 16 | hdr[18] << 8 | hdr[19]),
		     1200);
	cr_assert_eq((hdr[20] << 24 | hdr[21] << 16 | hdr[22] << 8 | hdr[23]),
		     800);

	/* what was drawn */
	for (int k = 0; k < PLOT_MARK__COUNT; k++) {
		cr_expect_eq(st.by_marker[k], expect[k],
			     "%s: %zu drawn, %zu "
			     "audit rows in range",
			     plot_marker_name(k), st.by_marker[k], expect[k]);
		total += expect[k];
	}
	cr_assert_eq(st.markers, total);
	cr_assert(
	    expect[PLOT_MARK_ACCEPTED] > 0 && expect[PLOT_MARK_REJECTED] > 0 &&
	    expect[PLOT_MARK_DRIFT] > 0 && expect[PLOT_MARK_ROLLBACK] > 0 &&
	    expect[PLOT_MARK_RESET] > 0);
	cr_assert_eq(st.step, STEP);
	cr_assert_eq(st.horizon, H);
	cr_assert_eq(st.actuals, 200 - 60 + 1 - 1, "actuals %zu", st.actuals);
	cr_assert(st.forecasts > 2 * 100, "forecasts %zu", st.forecasts);
	/* the frozen model ran on the stored values (and across the
	 * one-step gap, interpolated) */
	cr_assert(st.frozen > 2 * 100, "frozen %zu: %s", st.frozen,
		  st.frozen_note);
	cr_assert_eq(st.frozen_note[0], '\0', "%s", st.frozen_note);
	cr_assert(st.realised > 20);

	/* the pixels: ink in both panels and the legend, white margins */
	cairo_surface_t *img = cairo_image_surface_create_from_png(out);
	cr_assert_eq(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
	cr_assert_eq(cairo_image_surface_get_width(img), 1200);
	cr_assert_eq(cairo_image_surface_get_height(img), 800);
	size_t upper = ink(img, 130, 100, 880, 330);
	size_t lower = ink(img, 130, 560, 880, 700);
	size_t legend = ink(img, 960, 80, 1190, 300);
	size_t corner = ink(img, 0, 0, 60, 60);
	cr_expect(upper > 5000, "upper panel ink %zu", upper);
	cr_expect(lower > 2000, "lower panel ink %zu", lower);
	cr_expect(legend > 1000, "legend ink %zu", legend);
	cr_expect_eq(corner, 0, "the top left corner is blank: %zu", corner);
	cairo_surface_destroy(img);
	su_rmdir(dir);
}

/* Distinct x of the vertical polylines of one stroke colour in an SVG. */
static size_t vertical_lines(const char *svg, const char *color)
{
	double xs[512];
	size_t n = 0;
	char key[64];
	snprintf(key, sizeof(key), "stroke=\"#%s\"", color);
	for (const char *p = strstr(svg, key); p; p = strstr(p + 1, key)) {
		const char *q = strstr(p, "points=\"");
		const char *end = strstr(p, "/>");
		double x0, y0, x1, y1;
		if (!q || (end && q > end) ||
		    sscanf(q, "points=\"%lf,%lf %lf,%lf", &x0, &y0, &x1, &y1) !=
			4 ||
		    fabs(x0 - x1) > 1e-6)
			continue;
		bool seen = false;
		for (size_t i = 0; i < n; i++)
			seen |= fabs(xs[i] - x0) < 1e-6;
		if (!seen && n < 512)
			xs[n++] = x0;
	}
	return n;
}

Test(plot, svg_draws_one_marker_per_audit_row)
{
	static const char *const colors[PLOT_MARK__COUNT] = {
	    "2CA02C", "7F7F7F", "E6AB02", "D62728", "E31AB4", "9467BD"};
	size_t expect[PLOT_MARK__COUNT];
	char out[PATH_MAX];
	struct plot_stats st;

	make_db(expect);
	snprintf(out, sizeof(out), "%s/p.svg", dir);
	render(PLOT_SVG, out, &st);
	FILE *f = fopen(out, "rb");
	cr_assert(f);
	static char svg[8 << 20];
	size_t n = fread(svg, 1, sizeof(svg) - 1, f);
	fclose(f);
	svg[n] = '\0';
	cr_assert(strstr(svg, "<svg"));
	cr_assert(strstr(svg, "</svg>"));
	/* every event at its own time in the fixture: one vertical line
	 * position per audit row */
	for (int k = 0; k < PLOT_MARK__COUNT; k++)
		cr_expect_eq(vertical_lines(svg, colors[k]), expect[k],
			     "%s: %zu lines in the SVG, %zu audit rows",
			     plot_marker_name(k),
			     vertical_lines(svg, colors[k]), expect[k]);
	/* text (as character references): titles, labels, ticks, legend */
	size_t texts = 0;
	for (const char *p = strstr(svg, "<text"); p;
	     p = strstr(p + 1, "<text"))
		texts++;
	cr_assert(texts > 30, "%zu text elements", texts);
	su_rmdir(dir);
}

/* The status page's pictures: the last N steps up to a time. */
Test(plot, the_last_steps_up_to_a_time)
{
	size_t expect[PLOT_MARK__COUNT];
	char err[512] = "";
	struct plot_stats st;
	make_db(expect);
	struct store *s = open_ro();
	FILE *f = tmpfile();
	struct plot_request rq = {.series = SERIES,
				  .since = INT64_MIN,
				  .until = T0 + 200 * STEP,
				  .last = 50,
				  .steps = {1},
				  .nsteps = 1,
				  .format = PLOT_SVG,
				  .compact = true};
	cr_assert_eq(plot_render(s, &rq, f, &st, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(st.to, T0 + 200 * STEP);
	cr_assert_geq(st.from, T0 + 150 * STEP);
	cr_assert_eq(st.actuals, 51);
	cr_assert(ftell(f) > 1000);
	fclose(f);
	store_free(s);
	su_rmdir(dir);
}

/* storage.forecast_sample keeps 1 in N forecasts, at irregular origins:
 * the plot took the median of their spacings for the step (3 steps here)
 * and drew every forecast that far off its time. */
Test(plot, sampled_forecasts_keep_the_step)
{
	size_t expect[PLOT_MARK__COUNT];
	char err[512] = "";
	struct plot_stats st;
	make_db(expect);
	sqlite3 *db = su_raw(path);
	/* keeps the ids 2, 5, 8 and 10 of every 11: spacings 3, 3, 2, 3 */
	cr_assert_eq(sqlite3_exec(db,
				  "DELETE FROM forecasts WHERE (id * 37) % 11 "
				  "< 7",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);
	struct store *s = open_ro();
	FILE *f = tmpfile();
	struct plot_request rq = {.series = SERIES,
				  .since = SINCE,
				  .until = UNTIL,
				  .steps = {1, H},
				  .nsteps = 2,
				  .format = PLOT_SVG};
	cr_assert_eq(plot_render(s, &rq, f, &st, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(st.step, STEP, "step %lld s", (long long)(st.step / NS));
	cr_assert_leq(st.to, UNTIL);
	fclose(f);
	store_free(s);

	/* spacings of 2 and 4 steps only: their divisor is 2 steps; the
	 * step the engine saved with the series' recent values is the one */
	db = su_raw(path);
	cr_assert_eq(sqlite3_exec(db,
				  "DELETE FROM forecasts WHERE origin_ts / "
				  "3600000000000 % 6 NOT IN (0, 2)",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	cr_assert_eq(
	    sqlite3_exec(db,
			 "INSERT INTO series_recent (series_id, last_ts, step, "
			 "position, since_adapt, adaptations, vals, count, "
			 "checksum, saved_at) SELECT id, 0, 3600000000000, 0, "
			 "0, 0, x'00', 0, 0, 0 FROM series",
			 NULL, NULL, NULL),
	    SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	s = open_ro();
	f = tmpfile();
	rq.since = T0 + 130 * STEP;
	rq.until = T0 + 230 * STEP;
	cr_assert_eq(plot_render(s, &rq, f, &st, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(st.step, STEP, "step %lld s", (long long)(st.step / NS));
	fclose(f);
	store_free(s);
	su_rmdir(dir);
}

Test(plot, errors_are_reported_not_fatal)
{
	size_t expect[PLOT_MARK__COUNT];
	char err[512] = "";
	make_db(expect);
	struct store *s = open_ro();
	FILE *f = tmpfile();
	struct plot_request rq = {
	    .series = "no/such", .since = INT64_MIN, .until = INT64_MAX};
	cr_assert_eq(plot_render(s, &rq, f, NULL, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "no/such"), "%s", err);
	rq.series = SERIES;
	rq.since = T0 + 10000 * STEP; /* after everything */
	cr_assert_eq(plot_render(s, &rq, f, NULL, err, sizeof(err)), -ENODATA,
		     "%s", err);
	rq.since = INT64_MIN;
	rq.steps[0] = H + 1;
	rq.nsteps = 1;
	cr_assert_eq(plot_render(s, &rq, f, NULL, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "1..4"), "%s", err);
	fclose(f);
	store_free(s);
	su_rmdir(dir);
}
