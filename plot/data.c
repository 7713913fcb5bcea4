/*
 * The numbers of a picture, from the database: the series' step and
 * horizon, the actual values and published forecasts (forecast rows), the
 * frozen base model's forecasts (recomputed: the shadow's forecasts are
 * not stored, its model and inputs are), the realised errors and the
 * audit events in the range.
 */
#include "plot/internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "forecast/modelbuf.h"
#include "storage/storage.h"

/* Gaps up to this many steps are filled by linear interpolation in a
 * frozen lookback, as the engine does (ttt.max_gap's default). */
#define PLOT_MAX_GAP 4
#define PLOT_PROBE   257 /* rows read to learn the step */
#define PLOT_BATCH   64	 /* frozen windows per forward pass */

int plot_set_err(char *errbuf, size_t n, int r, const char *fmt, ...)
{
	if (errbuf && n) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errbuf, n, fmt, ap);
		va_end(ap);
	}
	return r;
}

int plot_line_add(struct plot_line *l, double t, double v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		double *nt = realloc(l->t, cap * sizeof(double));
		if (!nt)
			return -ENOMEM;
		l->t = nt;
		double *nv = realloc(l->v, cap * sizeof(double));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->t[l->n] = t;
	l->v[l->n] = v;
	l->n++;
	return 0;
}

static void line_free(struct plot_line *l)
{
	free(l->t);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void plot_data_free(struct plot_data *d)
{
	line_free(&d->actual);
	for (int k = 0; k < PLOT_MAX_STEPS; k++) {
		line_free(&d->adapted[k]);
		line_free(&d->frozen[k]);
	}
	line_free(&d->err_adapted);
	line_free(&d->err_frozen);
	free(d->marks);
	d->marks = NULL;
	d->nmarks = d->capmarks = 0;
}

/* ---- the step: the median spacing of the first forecast origins -------- */

struct probe {
	int64_t t[PLOT_PROBE];
	int n, horizon;
	int64_t model_id;
};

static int probe_row(void *user, const struct store_forecast *f)
{
	struct probe *p = user;
	if (p->n == 0)
		p->model_id = f->model_id;
	p->t[p->n++] = f->origin_ts;
	if (f->horizon > p->horizon)
		p->horizon = f->horizon;
	return p->n == PLOT_PROBE ? 1 : 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t gcd_i64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The step of p's origins (p->n >= 2; p->t becomes their spacings): the
 * one the engine learnt (known, 0 if none saved) when every spacing is a
 * whole number of it; else their greatest common divisor, which
 * storage.forecast_sample's 1 in N rows keep (the median spacing of those
 * is N steps or so); the median where the divisor is far below it --
 * origins on more than one grid, the step learnt again (ttt/engine.c) --
 * or where none is positive. */
static int64_t probe_step(struct probe *p, int64_t known)
{
	int64_t g = 0;
	bool on_known = known > 0;
	for (int i = 0; i + 1 < p->n; i++) {
		p->t[i] = p->t[i + 1] - p->t[i];
		if (p->t[i] > 0)
			g = gcd_i64(p->t[i], g);
		if (on_known) /* known > 0 */
			on_known = p->t[i] > 0 && p->t[i] % known == 0;
	}
	if (on_known)
		return known;
	qsort(p->t, (size_t)p->n - 1, sizeof(int64_t), cmp_i64);
	int64_t median = p->t[(p->n - 1) / 2];
	return g > 0 && median / g <= 4096 ? g : median;
}

/* ---- the rows of the range ------------------------------------------- */

struct rows {
	size_t n, cap;
	int64_t *t, *model;
	float *value;
	float *vals; /* [n, nsteps]: the published forecast at each step */
	int nsteps;
	const int *steps;
};

static int row_add(void *user, const struct store_forecast *f)
{
	struct rows *r = user;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 1024;
		int64_t *t = realloc(r->t, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		r->t = t;
		int64_t *m = realloc(r->model, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		r->model = m;
		float *v = realloc(r->value, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->value = v;
		float *vs =
		    realloc(r->vals, cap * (size_t)r->nsteps * sizeof(*vs));
		if (!vs)
			return -ENOMEM;
		r->vals = vs;
		r->cap = cap;
	}
	r->t[r->n] = f->origin_ts;
	r->model[r->n] = f->model_id;
	r->value[r->n] = f->value;
	for (int k = 0; k < r->nsteps; k++)
		r->vals[r->n * (size_t)r->nsteps + (size_t)k] =
		    r->steps[k] <= f->horizon ? f->vals[r->steps[k] - 1] : NAN;
	r->n++;
	return 0;
}

static void rows_free(struct rows *r)
{
	free(r->t);
	free(r->model);
	free(r->value);
	free(r->vals);
}

static int64_t sat_sub(int64_t a, int64_t b) /* a - b, b >= 0 */
{
	return a < INT64_MIN + b ? INT64_MIN : a - b;
}

static bool in_range(const struct plot_request *rq, int64_t t)
{
	return t >= rq->since && t <= rq->until;
}

/* The lookback x [L] of the window whose newest value is row i: stored
 * values back through the rows, short gaps interpolated; false when the
 * rows do not reach back L steps or a gap is too long. */
static bool lookback(const struct rows *r, size_t i, int64_t step, int L,
		     float *x)
{
	int pos = L - 1;
	if (!isfinite(r->value[i]))
		return false;
	x[pos--] = r->value[i];
	size_t c = i;
	while (pos >= 0) {
		if (c == 0)
			return false;
		int64_t d = r->t[c] - r->t[c - 1];
		if (d <= 0 || d % step != 0 || d / step - 1 > PLOT_MAX_GAP)
			return false;
		float v0 = r->value[c - 1], v1 = r->value[c];
		if (!isfinite(v0))
			return false;
		int gap = (int)(d / step) - 1;
		for (int k = gap; k >= 1 && pos >= 0; k--)
			x[pos--] = v0 + (v1 - v0) * (float)k / (float)(gap + 1);
		if (pos >= 0)
			x[pos--] = v0;
		c--;
	}
	return true;
}

/* Whether row i's forecast lands in the range at one of the steps. */
static bool needed(const struct plot_request *rq, const struct plot_data *d,
		   int64_t origin)
{
	for (int k = 0; k < d->nsteps; k++)
		if (in_range(rq, origin + (int64_t)d->steps[k] * d->step))
			return true;
	return false;
}

/* The frozen forecasts: the stored base model, adapter NULL (what the
 * shadow runs), on each needed window. */
static int frozen_lines(struct store *s, const struct plot_request *rq,
			const struct rows *r, int64_t model_id,
			struct plot_data *d)
{
	char err[256], name[128];
	void *bytes = NULL;
	size_t nbytes = 0;
	struct fc_model *m = NULL;
	struct fc_workspace *ws = NULL;
	float *x = NULL, *y = NULL;
	size_t *idx = NULL;
	int rc;

	if (model_id <= 0) {
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "no base model registered with the forecasts");
		return 0;
	}
	rc = store_model_bytes(s, model_id, &bytes, &nbytes, name, sizeof(name),
			       err, sizeof(err));
	if (rc == -ENOENT) {
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "base model %lld is not stored", (long long)model_id);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = fc_model_load_buffer(bytes, nbytes, name, &m, err, sizeof(err));
	free(bytes);
	if (rc < 0) {
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "stored base model unreadable: %.100s", err);
		return 0;
	}
	const struct fc_config *c = fc_model_config(m);
	const int L = c->lookback, H = c->horizon;
	if (H != d->horizon) {
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "the stored base model's horizon (%d) is not the "
			 "forecasts' (%d)",
			 H, d->horizon);
		goto out;
	}
	if ((rc = fc_workspace_new(m, PLOT_BATCH, &ws)) < 0)
		goto out;
	x = malloc(sizeof(float) * (size_t)PLOT_BATCH * (size_t)L);
	y = malloc(sizeof(float) * (size_t)PLOT_BATCH * (size_t)H);
	idx = malloc(sizeof(size_t) * PLOT_BATCH);
	if (!x || !y || !idx) {
		rc = -ENOMEM;
		goto out;
	}
	int b = 0;
	size_t want = 0, done = 0;
	for (size_t i = 0; i <= r->n; i++) {
		bool need = i < r->n && r->model[i] == model_id &&
			    needed(rq, d, r->t[i]);
		want += need;
		if (need && lookback(r, i, d->step, L, x + (size_t)b * L)) {
			idx[b++] = i;
			done++;
		}
		if (b == 0 || (b < PLOT_BATCH && i < r->n))
			continue;
		if ((rc = fc_forecast(m, NULL, ws, x, b, y)) < 0)
			goto out;
		for (int j = 0; j < b; j++)
			for (int k = 0; k < d->nsteps; k++) {
				int64_t t = r->t[idx[j]] +
					    (int64_t)d->steps[k] * d->step;
				if (!in_range(rq, t))
					continue;
				rc = plot_line_add(
				    &d->frozen[k], plot_secs(t),
				    y[(size_t)j * H + (size_t)d->steps[k] - 1]);
				if (rc < 0)
					goto out;
			}
		b = 0;
	}
	/* a window needs the L values before its origin: missing with
	 * storage.forecast_sample > 1, long gaps, or at the series' start */
	if (want > 0 && done < want / 2)
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "frozen forecasts: %zu of %zu windows lack their %d "
			 "stored values (storage.forecast_sample > 1 or gaps)",
			 want - done, want, L);
	rc = 0;
out:
	free(x);
	free(y);
	free(idx);
	fc_workspace_free(ws);
	fc_model_free(m);
	return rc;
}

/* Frozen points are added window by window: put each line in time order
 * (they are, per step, since windows are taken in origin order). */

/* ---- realised errors and events --------------------------------------- */

static int realised_row(void *user, const struct store_realised *e)
{
	struct plot_data *d = user;
	int r = 0;
	if (isfinite(e->adapted_error))
		r = plot_line_add(&d->err_adapted, plot_secs(e->origin_ts),
				  e->adapted_error);
	if (r == 0 && isfinite(e->shadow_error))
		r = plot_line_add(&d->err_frozen, plot_secs(e->origin_ts),
				  e->shadow_error);
	return r;
}

struct ev_ctx {
	struct plot_data *d;
	int64_t until;
};

static int event_row(void *user, const struct store_event *ev)
{
	struct ev_ctx *c = user;
	struct plot_data *d = c->d;
	int kind;
	if (ev->ts > c->until)
		return 1; /* oldest first: the rest are later still */
	switch (ev->type) {
	case STORE_EV_ADAPT_ACCEPTED:
		kind = PLOT_MARK_ACCEPTED;
		break;
	case STORE_EV_ADAPT_REJECTED:
		kind = PLOT_MARK_REJECTED;
		break;
	case STORE_EV_DRIFT:
		kind = PLOT_MARK_DRIFT;
		break;
	case STORE_EV_ROLLBACK:
		kind = PLOT_MARK_ROLLBACK;
		break;
	case STORE_EV_MANUAL:
		kind = PLOT_MARK_MANUAL;
		break;
	case STORE_EV_RESET:
		kind = PLOT_MARK_RESET;
		break;
	default:
		return 0;
	}
	if (d->nmarks == d->capmarks) {
		size_t cap = d->capmarks ? 2 * d->capmarks : 64;
		struct plot_mark *nm = realloc(d->marks, cap * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		d->marks = nm;
		d->capmarks = cap;
	}
	d->marks[d->nmarks++] = (struct plot_mark){plot_secs(ev->ts), kind};
	return 0;
}

/* ---- all of it ---------------------------------------------------------- */

/* The lines' times are the axes' seconds (plot_secs). */
static void extent(const struct plot_line *l, double *lo, double *hi)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->t[i] < *lo)
			*lo = l->t[i];
		if (l->t[i] > *hi)
			*hi = l->t[i];
	}
}

int plot_data_load(struct store *s, const struct plot_request *request,
		   struct plot_data *d, char *errbuf, size_t errbuf_size)
{
	struct plot_request q = *request; /* since moves with q.last */
	const struct plot_request *rq = &q;
	struct probe *p = calloc(1, sizeof(*p));
	struct rows r = {0};
	int rc;

	if (!p)
		return plot_set_err(errbuf, errbuf_size, -ENOMEM,
				    "out of memory");
	/* the step and horizon: from the range, else the whole series */
	rc = store_forecasts(s, rq->series, rq->since, INT64_MAX, probe_row, p,
			     errbuf, errbuf_size);
	if (rc >= 0 && p->n < 2) {
		p->n = 0;
		rc = store_forecasts(s, rq->series, INT64_MIN, INT64_MAX,
				     probe_row, p, errbuf, errbuf_size);
	}
	if (rc < 0)
		goto out;
	if (p->n < 2) {
		rc = plot_set_err(
		    errbuf, errbuf_size, -ENODATA,
		    "series '%s' has %s stored forecast%s: nothing "
		    "to plot",
		    rq->series, p->n ? "only one" : "no", p->n ? "" : "s");
		goto out;
	}
	int64_t known = 0;
	if (store_series_step(s, rq->series, &known, NULL, 0) < 0)
		known = 0;
	d->step = probe_step(p, known);
	d->horizon = p->horizon;
	int64_t span;
	if (q.last > 0 && q.until != INT64_MAX &&
	    !__builtin_mul_overflow((int64_t)q.last, d->step, &span) &&
	    sat_sub(q.until, span) > q.since)
		q.since = sat_sub(q.until, span);
	d->nsteps = rq->nsteps;
	memcpy(d->steps, rq->steps, sizeof(d->steps));
	if (d->nsteps == 0) {
		d->steps[d->nsteps++] = 1;
		if (d->horizon > 1)
			d->steps[d->nsteps++] = d->horizon;
	}
	for (int k = 0; k < d->nsteps; k++)
		if (d->steps[k] < 1 || d->steps[k] > d->horizon) {
			rc = plot_set_err(errbuf, errbuf_size, -EINVAL,
					  "--horizon-step %d: the forecasts of "
					  "'%s' have steps 1..%d",
					  d->steps[k], rq->series, d->horizon);
			goto out;
		}

	/* every row whose forecast or lookback reaches into the range */
	int64_t back = 0;
	if (d->step > 0 && d->horizon + 721 < INT64_MAX / d->step)
		back = (int64_t)(d->horizon + 721) * d->step; /* H + max L */
	r.nsteps = d->nsteps;
	r.steps = d->steps;
	rc = store_forecasts(s, rq->series, sat_sub(rq->since, back), rq->until,
			     row_add, &r, errbuf, errbuf_size);
	if (rc == -ENOMEM)
		plot_set_err(errbuf, errbuf_size, rc, "out of memory");
	if (rc < 0)
		goto out;
	size_t no_value = 0;
	for (size_t i = 0; i < r.n && rc == 0; i++) {
		if (in_range(rq, r.t[i])) {
			if (isfinite(r.value[i]))
				rc = plot_line_add(
				    &d->actual, plot_secs(r.t[i]), r.value[i]);
			else
				no_value++;
		}
		for (int k = 0; k < d->nsteps && rc == 0; k++) {
			int64_t t = r.t[i] + (int64_t)d->steps[k] * d->step;
			float v = r.vals[i * (size_t)d->nsteps + (size_t)k];
			if (in_range(rq, t) && isfinite(v))
				rc = plot_line_add(&d->adapted[k], plot_secs(t),
						   v);
		}
	}
	if (rc < 0)
		goto out;
	if (r.n > 0 && (rc = frozen_lines(s, rq, &r, p->model_id, d)) < 0) {
		plot_set_err(errbuf, errbuf_size, rc,
			     "recomputing the frozen forecasts of '%s' failed",
			     rq->series);
		goto out;
	}
	if (no_value && !d->frozen_note[0])
		snprintf(d->frozen_note, sizeof(d->frozen_note),
			 "%zu forecast rows carry no actual value (written "
			 "before schema 8)",
			 no_value);

	rc = store_realised(s, rq->series, rq->since, rq->until, realised_row,
			    d, errbuf, errbuf_size);
	if (rc < 0)
		goto out;
	struct ev_ctx ec = {d, rq->until};
	rc = store_history(s, rq->series, rq->since, event_row, &ec, errbuf,
			   errbuf_size);
	if (rc == 1)
		rc = 0;
	if (rc < 0)
		goto out;

	double lo = INFINITY, hi = -INFINITY;
	extent(&d->actual, &lo, &hi);
	for (int k = 0; k < d->nsteps; k++) {
		extent(&d->adapted[k], &lo, &hi);
		extent(&d->frozen[k], &lo, &hi);
	}
	extent(&d->err_adapted, &lo, &hi);
	for (size_t i = 0; i < d->nmarks; i++) {
		if (d->marks[i].t < lo)
			lo = d->marks[i].t;
		if (d->marks[i].t > hi)
			hi = d->marks[i].t;
	}
	if (lo > hi) {
		rc = plot_set_err(errbuf, errbuf_size, -ENODATA,
				  "series '%s': nothing stored in the range",
				  rq->series);
		goto out;
	}
	d->from = plot_ns(lo);
	d->to = hi > lo ? plot_ns(hi) : d->from + d->step;
	rc = 0;
out:
	if (rc == -ENOMEM)
		plot_set_err(errbuf, errbuf_size, rc, "out of memory");
	rows_free(&r);
	free(p);
	return rc;
}
