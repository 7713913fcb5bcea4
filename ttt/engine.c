/*
 * The test-time-training engine: per-series online state and the
 * adaptation loop (see ttt.h for the order of work inside one observe()).
 *
 * Memory.  A series is one allocation: its struct, its ring buffer of
 * R = L + H + (guard_windows + step_windows) * stride floats and its key.
 * An adapter state (one per series, per group or one global, by ttt.scope)
 * is one allocation: the active part of the adapter block (the ranges of
 * the adapting families, packed, n_ad floats) and the last good version
 * of it.  The anchor is the identity adapter, shared by every series.
 * Optimizer state, gradients, batches and the full adapter block used to
 * call forecast/ live once per engine and only during an adaptation; so
 * nothing is allocated per observation, only when a series or group is
 * first seen.
 *
 * Windows and the ring.  Values are numbered by their position i since the
 * series (re)started, n values so far (the newest is i = n - 1).  A window
 * with origin i has lookback [i - L + 1, i] and horizon [i + 1, i + H]; it
 * is matured once i + H <= n - 1.  An adaptation at n uses
 *   guard windows (held out):   i = n - 1 - H - j * stride,  j < G
 *   step windows (matured):     i = n - 1 - H - (G + j) * stride, j < M
 *   reconstruction windows:     i = n - 1 - j * stride,  j < Rw
 * all inside the ring.  Matured windows are normalised by their own
 * lookback's mean and std before the loss, so the forecast loss and the
 * guard are scale-free (the model normalises each window the same way, so
 * this changes no forecast).
 *
 * Shadow and rollback.  Every shadow_every observations, the newest
 * matured window is forecast by the current adapter and by the frozen
 * model; both errors feed exponentially weighted means with span
 * rollback_window.  With at least rollback_window samples, an adapter
 * whose mean error exceeds the shadow's by the margin is rolled back (or
 * reset, by policy), and one that does not becomes the last good version.
 *
 * Calibration only.  The output calibration is the model's last step, so
 * with ttt.families = calib every window the learning needs (the shadow's,
 * the drift sample's, an adaptation's guard, step and recon windows) is a
 * frozen pass that no adapter state changes: an adaptation takes one pass
 * over all its windows and computes its losses, gradients, steps and guard
 * from the head outputs (forecast/'s fc_calib_*), and with deferred
 * forecasts and scope series the learning of queued observations waits
 * for the flush, which batches the passes of all of them (two: the second
 * for adaptations that the drift samples of the first trigger) and then
 * replays each observation's steps in order.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"

/* Observations whose learning waits for one flush, at most. */
#define TTT_LEARN_MAX 512

struct adstate {
	struct adstate *next; /* hash chain (group and global scope) */
	float *a;	      /* [n_ad] current, active range */
	float *good;	      /* [n_ad] last good version */
	uint64_t version, good_version, next_version;
	int identity;	   /* a is the anchor: forecast with the frozen path */
	int good_identity; /* good is the anchor */
	float ew_adapt, ew_shadow;
	int n_track;
	size_t bytes;
	char key[];
};

struct series {
	struct series *next; /* hash chain */
	struct adstate *ad;
	float *ring; /* [R] */
	int64_t last_ts, step;
	long n;		  /* values since the series (re)started */
	long since_adapt; /* values since the last adaptation */
	uint64_t n_adapt; /* adaptations so far (mask seeds) */
	uint64_t hash;
	int has_ts;
	int queued; /* learning waits in the queue (flush before more) */
	struct ttt_ph ph;
	struct ttt_adwin adwin;
	size_t bytes;
	char key[];
};

/*
 * One adaptation's windows: ng guard windows (held out) then nm matured
 * step windows as forecast rows fx [ng + nm, L] with their horizons fy
 * [ng + nm, H], and nr reconstruction windows rx [nr, L] with masks rm
 * [nr, L] -- wherever the caller put them (the scratch for an adaptation
 * at once, the learning batch for a deferred one).
 */
struct adapt_job {
	enum ttt_trigger trig;
	int ng, nm, nr;
	int64_t data_from;
	float *fx, *fy, *rx, *rm;
};

struct table {
	void **b; /* buckets; entries chain through their first member */
	size_t nb, count;
};

struct ttt_engine {
	const struct fc_model *m;
	struct ttt_params p;
	ttt_event_fn cb;
	void *user;
	int L, H, R;
	size_t A;		       /* fc_adapter_len */
	size_t seg_off[4], seg_len[4]; /* active family ranges in the block */
	int nseg;
	size_t n_ad; /* floats in the active ranges, packed */
	int maxb;
	struct table series, groups;
	struct adstate *global;
	struct fc_workspace *ws;
	/* scratch, once per engine */
	float *ident;  /* [A] the anchor (identity adapter) */
	float *full;   /* [A] expanded current adapter */
	float *cand;   /* [A] expanded candidate */
	float *grad;   /* [A] */
	float *adam;   /* [2 n_ad] */
	float *anchor; /* [n_ad] the identity, packed */
	float *cc;     /* [n_ad] candidate, packed */
	float *gc;     /* [n_ad] its gradient, packed */
	float *xb;     /* [maxb, L] */
	float *yb;     /* [maxb, H] */
	float *mb;     /* [maxb, L] masks */
	float *yh;     /* [maxb, H] */
	float *out;    /* [H] last forecast */
	/* The calibration-only fast paths (fast = calib_only unless a test
	 * turns them off): an adaptation's frozen pass, its head outputs
	 * (rows as in xb) and the step batch's reconstruction loss. */
	int fast;
	struct fc_head_raw raw; /* into the three below */
	float *rfc;		/* [maxb, H] */
	float *rmu;		/* [maxb] */
	float *rsd;		/* [maxb] */
	float recon_s;
	/* Deferred forecasts (ttt_engine_defer_forecasts): up to qmax queued
	 * windows with a snapshot of their calibration, forecast together by
	 * ttt_engine_flush(). */
	int qmax, qn;
	uint64_t tag; /* ttt_engine_set_tag(), copied into events */
	struct fc_workspace *wsq;
	float *qx;	     /* [qmax, L] lookbacks */
	float *qcal;	     /* [qmax, 2H] calibration snapshots */
	const float **qcalp; /* [qmax] into qcal, or NULL (identity) */
	float *qy;	     /* [qmax, H] */
	struct qslot {
		const char *key; /* the series' own copy (never freed
				    before the engine) */
		int64_t ts;
		uint64_t version, tag;
		/* deferred learning (learn_enqueue), or s = NULL */
		struct series *s;
		unsigned char shadow, drift, fired;
		unsigned char adapt;	   /* 1 on schedule, 2 if drift fires */
		int shadow_row, drift_row; /* in the learning batch, or -1 */
		int job_ok, job_row, job_rrow;
		float stat, recon; /* the drift sample */
		double t_pass;	   /* the job's share of the passes */
		struct adapt_job job;
	} * qs;
	/* Deferred learning (ttt_engine_defer_forecasts, with scope series
	 * and the calibration only): the steps 3 and 4 of up to lmax queued
	 * observations (ln so far) wait for the flush, which runs the
	 * frozen passes of all their windows together (lf forecast rows
	 * with horizons, lr reconstruction rows). */
	int lmax, ln, lf, lr;
	float *lfx;		 /* [lmax (1 + G + M), L]; G guard, M step */
	float *lfy;		 /* [lmax (1 + G + M), H] */
	struct fc_head_raw lraw; /* their rows */
	float *lrx;		 /* [lmax (1 + Rw), L]; Rw recon windows */
	float *lrm;		 /* [lmax (1 + Rw), L] masks */
	double *lrsum;		 /* [lmax (1 + Rw)] */
	int *lrcnt;		 /* [lmax (1 + Rw)] */
	int calib_only; /* the adapting families are the calibration only */
	struct ttt_stats st;
	size_t bytes_shared;
};

/* The same check-and-explain helper as ttt/params.c. */
#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			if (errbuf && errbuf_size)                          \
				snprintf(errbuf, errbuf_size, __VA_ARGS__); \
			return -EINVAL;                                     \
		}                                                           \
	} while (0)

/* ---- hash tables ----------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t hash_keyn(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct series *series_find(const struct ttt_engine *e, const char *key,
				  uint64_t h)
{
	if (!e->series.nb)
		return NULL;
	for (struct series *s = e->series.b[h & (e->series.nb - 1)]; s;
	     s = s->next)
		if (s->hash == h && strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

/* Grow a table to at least nb buckets; entries are rehashed with hf. */
static int table_grow(struct table *t, uint64_t (*hf)(void *))
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	void **b = calloc(nb, sizeof(void *));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++) {
		void *x = t->b[i];
		while (x) {
			void *next = *(void **)x;
			size_t k = hf(x) & (nb - 1);
			*(void **)x = b[k];
			b[k] = x;
			x = next;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

static uint64_t series_hash(void *x)
{
	return ((struct series *)x)->hash;
}

static uint64_t ad_hash(void *x)
{
	return hash_key(((struct adstate *)x)->key);
}

/* ---- events ---------------------------------------------------------- */

static void emit(struct ttt_engine *e, struct ttt_event *ev)
{
	ev->tag = e->tag;
	if (e->cb)
		e->cb(e->user, ev);
}

static void ev_init(struct ttt_event *ev, enum ttt_event_type type,
		    const struct series *s)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->series = s->key;
	ev->ts = s->last_ts;
}

/* ---- adapter states -------------------------------------------------- */

/* A new adapter state: the identity, sharing the engine's anchor until
 * it first changes (ad_own), so series that never adapt cost no adapter
 * memory. */
static struct adstate *ad_new(struct ttt_engine *e, const char *key,
			      size_t keylen)
{
	size_t bytes = sizeof(struct adstate) + keylen + 1;
	struct adstate *a;
	bytes = (bytes + 15) & ~(size_t)15;
	a = calloc(1, bytes);
	if (!a)
		return NULL;
	memcpy(a->key, key, keylen);
	a->key[keylen] = '\0';
	a->a = a->good = e->anchor;
	a->identity = 1;
	a->good_identity = 1;
	a->next_version = 1;
	a->bytes = bytes;
	e->st.adapters++;
	e->st.bytes_adapters += a->bytes;
	return a;
}

/* Give ad its own current and last-good blocks (copies of the anchor)
 * before they are written; 0 or -ENOMEM. */
static int ad_own(struct ttt_engine *e, struct adstate *ad)
{
	if (ad->a != e->anchor)
		return 0;
	size_t fl = 2 * e->n_ad * sizeof(float);
	float *b = malloc(fl);
	if (!b)
		return -ENOMEM;
	memcpy(b, e->anchor, e->n_ad * sizeof(float));
	memcpy(b + e->n_ad, e->anchor, e->n_ad * sizeof(float));
	ad->a = b;
	ad->good = b + e->n_ad;
	ad->bytes += fl;
	e->st.bytes_adapters += fl;
	return 0;
}

static void ad_free(const struct ttt_engine *e, struct adstate *ad)
{
	if (ad && ad->a != e->anchor)
		free(ad->a);
	free(ad);
}

static struct adstate *ad_for_key(struct ttt_engine *e, const char *key)
{
	size_t len = strlen(key);
	if (e->p.scope == TTT_SCOPE_GLOBAL) {
		if (!e->global)
			e->global = ad_new(e, "*", 1);
		return e->global;
	}
	if (e->p.scope == TTT_SCOPE_GROUP) {
		const char *sep = strrchr(key, e->p.group_sep);
		if (sep)
			len = (size_t)(sep - key);
	}
	uint64_t h = hash_keyn(key, len);
	if (e->groups.nb) {
		for (struct adstate *a = e->groups.b[h & (e->groups.nb - 1)]; a;
		     a = a->next)
			if (strlen(a->key) == len &&
			    memcmp(a->key, key, len) == 0)
				return a;
	}
	if (e->groups.count + 1 > e->groups.nb &&
	    table_grow(&e->groups, ad_hash) < 0)
		return NULL;
	struct adstate *a = ad_new(e, key, len);
	if (!a)
		return NULL;
	size_t k = h & (e->groups.nb - 1);
	a->next = e->groups.b[k];
	e->groups.b[k] = a;
	e->groups.count++;
	return a;
}

static struct series *series_get(struct ttt_engine *e, const char *key)
{
	uint64_t h = hash_key(key);
	struct series *s = series_find(e, key, h);
	size_t keylen, bytes;
	if (s)
		return s;
	if (e->series.count + 1 > e->series.nb &&
	    table_grow(&e->series, series_hash) < 0)
		return NULL;
	keylen = strlen(key);
	bytes = (sizeof(struct series) + keylen + 1 + 15) & ~(size_t)15;
	s = calloc(1, bytes + (size_t)e->R * sizeof(float));
	if (!s)
		return NULL;
	memcpy(s->key, key, keylen + 1);
	s->ring = (float *)((char *)s + bytes);
	s->hash = h;
	s->step = e->p.step;
	s->bytes = bytes + (size_t)e->R * sizeof(float) + sizeof(void *);
	ttt_ph_init(&s->ph);
	ttt_adwin_init(&s->adwin);
	s->ad = ad_for_key(e, key);
	if (!s->ad) {
		free(s);
		return NULL;
	}
	size_t k = h & (e->series.nb - 1);
	s->next = e->series.b[k];
	e->series.b[k] = s;
	e->series.count++;
	e->st.series++;
	e->st.bytes_series += s->bytes;
	return s;
}

/* ---- engine lifetime ------------------------------------------------- */

static void engine_free_tables(struct ttt_engine *e)
{
	for (size_t i = 0; i < e->series.nb; i++) {
		struct series *s = e->series.b[i];
		while (s) {
			struct series *n = s->next;
			free(s);
			s = n;
		}
	}
	free(e->series.b);
	for (size_t i = 0; i < e->groups.nb; i++) {
		struct adstate *a = e->groups.b[i];
		while (a) {
			struct adstate *n = a->next;
			ad_free(e, a);
			a = n;
		}
	}
	free(e->groups.b);
	ad_free(e, e->global);
}

static void queue_free(struct ttt_engine *e);

void ttt_engine_free(struct ttt_engine *e)
{
	if (!e)
		return;
	engine_free_tables(e);
	fc_workspace_free(e->ws);
	queue_free(e);
	free(e->ident);
	free(e);
}

/* The ranges of the families in fam, in block order. */
static int active_segments(struct ttt_engine *e, unsigned fam)
{
	e->nseg = 0;
	e->n_ad = 0;
	for (unsigned bit = 1; bit <= FC_ADAPT_CALIB; bit <<= 1) {
		size_t off, len;
		if (!(fam & bit))
			continue;
		if (fc_adapter_family_range(e->m, bit, &off, &len) < 0)
			return -EINVAL;
		if (len == 0)
			continue;
		e->seg_off[e->nseg] = off;
		e->seg_len[e->nseg] = len;
		e->nseg++;
		e->n_ad += len;
	}
	return e->n_ad ? 0 : -EINVAL;
}

/* Full block -> packed active part, and back. */
static void pack(const struct ttt_engine *e, float *dst, const float *full)
{
	for (int i = 0; i < e->nseg; i++) {
		memcpy(dst, full + e->seg_off[i],
		       e->seg_len[i] * sizeof(float));
		dst += e->seg_len[i];
	}
}

static void unpack(const struct ttt_engine *e, float *full, const float *src)
{
	for (int i = 0; i < e->nseg; i++) {
		memcpy(full + e->seg_off[i], src,
		       e->seg_len[i] * sizeof(float));
		src += e->seg_len[i];
	}
}

int ttt_engine_new(const struct fc_model *m, const struct ttt_params *params,
		   ttt_event_fn cb, void *user, struct ttt_engine **ret,
		   char *errbuf, size_t errbuf_size)
{
	const struct fc_config *c = fc_model_config(m);
	struct ttt_engine *e;
	int rc = ttt_params_check(params, errbuf, errbuf_size);
	if (rc < 0)
		return rc;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->m = m;
	e->p = *params;
	e->cb = cb;
	e->user = user;
	e->L = c->lookback;
	e->H = c->horizon;
	e->R = e->L + e->H +
	       (params->guard_windows + params->step_windows) *
		   params->window_stride;
	e->A = fc_adapter_len(m);
	if (active_segments(e, params->families) < 0) {
		if (errbuf && errbuf_size)
			snprintf(errbuf, errbuf_size,
				 "ttt.families: the model has no adapter "
				 "weights in the chosen families");
		free(e);
		return -EINVAL;
	}
	/* Scratch rows hold the held-out guard windows and the step batch
	 * side by side, and the calibration-only fast path forecasts them
	 * in one pass. */
	e->maxb = params->recon_windows + params->step_windows +
		  params->guard_windows;
	if (e->maxb < 2)
		e->maxb = 2; /* the shadow's frozen + adapted pair */
	int wsb = e->maxb;
	rc = fc_workspace_new(m, wsb, &e->ws);
	if (rc < 0) {
		free(e);
		return rc;
	}
	size_t L = (size_t)e->L, H = (size_t)e->H, B = (size_t)e->maxb;
	size_t nfl = 4 * e->A + 5 * e->n_ad + B * L * 2 + B * H * 3 + H + 2 * B;
	e->ident = calloc(nfl, sizeof(float));
	if (!e->ident) {
		ttt_engine_free(e);
		return -ENOMEM;
	}
	e->full = e->ident + e->A;
	e->cand = e->full + e->A;
	e->grad = e->cand + e->A;
	e->adam = e->grad + e->A;
	e->anchor = e->adam + 2 * e->n_ad;
	e->cc = e->anchor + e->n_ad;
	e->gc = e->cc + e->n_ad;
	e->xb = e->gc + e->n_ad;
	e->mb = e->xb + B * L;
	e->yb = e->mb + B * L;
	e->yh = e->yb + B * H;
	e->out = e->yh + B * H;
	e->rfc = e->out + H;
	e->rmu = e->rfc + B * H;
	e->rsd = e->rmu + B;
	e->raw = (struct fc_head_raw){e->rfc, e->rmu, e->rsd};
	fc_adapter_init(m, e->ident, params->seed);
	memcpy(e->full, e->ident, e->A * sizeof(float));
	memcpy(e->cand, e->ident, e->A * sizeof(float));
	pack(e, e->anchor, e->ident);
	e->calib_only = params->families == FC_ADAPT_CALIB && e->nseg == 1;
	e->fast = e->calib_only;
	e->bytes_shared = sizeof(*e) + nfl * sizeof(float);
	e->st.adapter_params = e->n_ad;
	*ret = e;
	return 0;
}

int ttt_engine_set_params(struct ttt_engine *e, const struct ttt_params *p)
{
	struct ttt_params n = *p;
	if (ttt_params_check(p, NULL, 0) < 0)
		return -EINVAL;
	/* queued forecasts were taken under the old settings */
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	/* restart-only settings keep their running values */
	n.scope = e->p.scope;
	n.group_sep = e->p.group_sep;
	n.families = e->p.families;
	n.recon_windows = e->p.recon_windows;
	n.step_windows = e->p.step_windows;
	n.guard_windows = e->p.guard_windows;
	n.window_stride = e->p.window_stride;
	n.seed = e->p.seed;
	e->p = n;
	return 0;
}

int ttt_engine_set_fast_paths(struct ttt_engine *e, int on)
{
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	e->fast = on && e->calib_only;
	return 0;
}

size_t ttt_engine_series_count(const struct ttt_engine *e)
{
	return e->series.count;
}

void ttt_engine_stats(const struct ttt_engine *e, struct ttt_stats *ret)
{
	*ret = e->st;
	ret->bytes_shared = e->bytes_shared + e->series.nb * sizeof(void *) +
			    e->groups.nb * sizeof(void *);
	ret->adaptations = e->st.accepted + e->st.rejected;
}

/* ---- ring access ----------------------------------------------------- */

/* Copy values [i0, i0 + len) (positions since restart) into dst. */
static void ring_copy(const struct ttt_engine *e, const struct series *s,
		      long i0, int len, float *dst)
{
	for (int k = 0; k < len; k++)
		dst[k] = s->ring[(size_t)((i0 + k) % e->R)];
}

static void ring_push(const struct ttt_engine *e, struct series *s, float v)
{
	s->ring[(size_t)(s->n % e->R)] = v;
	s->n++;
	s->since_adapt++;
}

/* Oldest position still in the ring. */
static long ring_first(const struct ttt_engine *e, const struct series *s)
{
	return s->n > e->R ? s->n - e->R : 0;
}

/* Load the matured window with origin i into x [L] and y [H], both
 * normalised by the lookback's mean and std. */
static void load_matured(const struct ttt_engine *e, const struct series *s,
			 long i, float *x, float *y)
{
	int L = e->L, H = e->H;
	double sum = 0.0, sq = 0.0, mean, sd;
	ring_copy(e, s, i - L + 1, L, x);
	ring_copy(e, s, i + 1, H, y);
	for (int k = 0; k < L; k++)
		sum += (double)x[k];
	mean = sum / L;
	for (int k = 0; k < L; k++)
		sq += ((double)x[k] - mean) * ((double)x[k] - mean);
	sd = sqrt(sq / L + 1e-5);
	for (int k = 0; k < L; k++)
		x[k] = (float)(((double)x[k] - mean) / sd);
	for (int k = 0; k < H; k++)
		y[k] = (float)(((double)y[k] - mean) / sd);
}

/* The adapter block to forecast with for ad: NULL for the identity
 * (bit-identical to the frozen model, and cheaper), else e->full. */
static const float *expand(struct ttt_engine *e, const struct adstate *ad)
{
	if (ad->identity)
		return NULL;
	unpack(e, e->full, ad->a);
	return e->full;
}

/* Mean squared difference of a [n] and b [n], summed in double. */
static float mse(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t k = 0; k < n; k++) {
		double d = (double)a[k] - (double)b[k];
		s += d * d;
	}
	return (float)(s / (double)n);
}

/* Mean squared error of forecasting b windows x [b, L] against y [b, H]
 * (normalised) with adapter (may be NULL).  NAN on failure. */
static float batch_mse(struct ttt_engine *e, const float *adapter,
		       const float *x, const float *y, int b)
{
	if (fc_forecast(e->m, adapter, e->ws, x, b, e->yh) < 0)
		return NAN;
	return mse(e->yh, y, (size_t)b * (size_t)e->H);
}

/* batch_mse on the calibration-only fast path: the frozen head outputs
 * of b windows (raw) calibrated by cal (packed; NULL for the identity)
 * against y [b, H]. */
static float calib_mse(struct ttt_engine *e, const struct fc_head_raw *raw,
		       const float *cal, const float *y, int b)
{
	fc_calib_forecast(e->m, raw, b, cal, e->yh);
	return mse(e->yh, y, (size_t)b * (size_t)e->H);
}

static float sqdist(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - (double)b[i];
		s += d * d;
	}
	return (float)s;
}

/* ---- adaptation ------------------------------------------------------ */

static uint64_t mask_seed(const struct ttt_engine *e, const struct series *s,
			  uint64_t salt)
{
	uint64_t st = e->p.seed ^ s->hash ^ (salt * 0x9E3779B97F4A7C15ull);
	return fc_rng_next(&st);
}

/*
 * The data part of the objective on batch at the packed candidate c, and
 * with g not NULL its packed gradient: with raw (the calibration-only
 * fast path) from the cached frozen pass over the batch (raw's rows are
 * the batch's forecast windows, recon_s its reconstruction loss), else
 * from a full pass.
 */
static int step_loss(struct ttt_engine *e, const struct fc_batch *batch,
		     const struct fc_head_raw *raw, const float *c, float *g,
		     struct fc_loss *loss)
{
	if (raw)
		return fc_calib_loss_grad(e->m, raw, batch->yf, batch->bf, c,
					  batch->wf, batch->wr, e->recon_s, g,
					  loss);
	unpack(e, e->cand, c);
	int rc = fc_loss_grad(e->m, e->cand, e->ws, batch, g ? e->grad : NULL,
			      e->p.families, loss);
	if (rc == 0 && g)
		pack(e, g, e->grad);
	return rc;
}

/*
 * Run the bounded optimizer steps from the packed candidate e->cc on
 * batch (raw: see step_loss); cc is updated in place.  Returns the loss
 * before the first and after the last step, and the steps taken.
 */
static int run_steps(struct ttt_engine *e, const struct fc_batch *batch,
		     const struct fc_head_raw *raw, float *ret_before,
		     float *ret_after)
{
	const float *anchor = e->anchor;
	float *c = e->cc, *g = e->gc;
	struct fc_adam opt = {e->p.lr, 0.9f, 0.999f, 1e-8f, 0.0f};
	struct fc_loss loss;
	int steps = 0;
	memset(e->adam, 0, 2 * e->n_ad * sizeof(float));
	for (int k = 0; k < e->p.steps; k++) {
		if (step_loss(e, batch, raw, c, g, &loss) < 0)
			return -EINVAL;
		float anc = e->p.w_anchor * sqdist(c, anchor, e->n_ad);
		if (k == 0)
			*ret_before = loss.total + anc;
		for (size_t i = 0; i < e->n_ad; i++)
			g[i] += 2.0f * e->p.w_anchor * (c[i] - anchor[i]);
		fc_grad_clip(g, e->n_ad, e->p.clip);
		fc_adam_step(&opt, c, g, e->adam, e->n_ad, k + 1);
		steps++;
	}
	if (step_loss(e, batch, raw, c, NULL, &loss) < 0)
		return -EINVAL;
	*ret_after = loss.total + e->p.w_anchor * sqdist(c, anchor, e->n_ad);
	if (steps == 0)
		*ret_before = *ret_after;
	return steps;
}

/* Scale the update cand - cur to at most max_update; returns its norm. */
static float bound_update(struct ttt_engine *e, const float *cur)
{
	float *c = e->cc;
	float norm = sqrtf(sqdist(c, cur, e->n_ad));
	if (norm > e->p.max_update) {
		float f = e->p.max_update / norm;
		for (size_t i = 0; i < e->n_ad; i++)
			c[i] = cur[i] + f * (c[i] - cur[i]);
		norm = e->p.max_update;
	}
	unpack(e, e->cand, c);
	return norm;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * Load the windows of an adaptation of s into fx, fy, rx, rm (room for
 * guard + step windows, and recon windows); 0 when there is not enough
 * matured data yet (nothing changes), else 1 with the adaptation under
 * way (since_adapt and the mask counter advanced).
 */
static int adapt_load(struct ttt_engine *e, struct series *s,
		      enum ttt_trigger trig, float *fx, float *fy, float *rx,
		      float *rm, struct adapt_job *j)
{
	const int L = e->L, H = e->H, stride = e->p.window_stride;
	const long first = ring_first(e, s), last = s->n - 1;
	int ng = 0, nm = 0, nr = 0;
	long oldest = last;

	for (int k = 0; k < e->p.guard_windows; k++) {
		long i = last - H - (long)k * stride;
		if (i - L + 1 < first)
			break;
		load_matured(e, s, i, fx + (size_t)ng * L, fy + (size_t)ng * H);
		oldest = i - L + 1;
		ng++;
	}
	if (ng == 0)
		return 0; /* not enough matured data yet: wait */
	s->since_adapt = 0;

	size_t cap = (size_t)e->maxb - (size_t)ng;
	float *sx = fx + (size_t)ng * L, *sy = fy + (size_t)ng * H;
	if (e->p.w_matured > 0.0f) {
		for (int k = 0; k < e->p.step_windows && (size_t)nm < cap;
		     k++) {
			long i =
			    last - H - (long)(e->p.guard_windows + k) * stride;
			if (i - L + 1 < first)
				break;
			load_matured(e, s, i, sx + (size_t)nm * L,
				     sy + (size_t)nm * H);
			if (i - L + 1 < oldest)
				oldest = i - L + 1;
			nm++;
		}
	}
	if (e->p.w_recon > 0.0f) {
		uint64_t rng = mask_seed(e, s, s->n_adapt + 1);
		for (int k = 0;
		     k < e->p.recon_windows && (size_t)(nm + nr) < cap; k++) {
			long i = last - (long)k * stride;
			if (i - L + 1 < first)
				break;
			ring_copy(e, s, i - L + 1, L, rx + (size_t)nr * L);
			fc_mask_sample(rm + (size_t)nr * L, L,
				       fc_model_config(e->m)->mask_ratio,
				       fc_model_config(e->m)->mask_seg, &rng);
			if (i - L + 1 < oldest)
				oldest = i - L + 1;
			nr++;
		}
	}
	s->n_adapt++;
	*j = (struct adapt_job){
	    .trig = trig,
	    .ng = ng,
	    .nm = nm,
	    .nr = nr,
	    .data_from = s->last_ts - (int64_t)(last - oldest) * s->step,
	    .fx = fx,
	    .fy = fy,
	    .rx = rx,
	    .rm = rm,
	};
	return 1;
}

/*
 * Steps, bound, guard and decision of the adaptation j of s, and its
 * event.  raw: the calibration-only fast path, the frozen head outputs
 * of j's ng + nm forecast rows with recon the loss of its recon windows
 * (every loss, gradient and guard evaluation comes from them); NULL: the
 * general path (full passes).  t0: when the adaptation's work started.
 */
static void adapt_run(struct ttt_engine *e, struct series *s,
		      const struct adapt_job *j, const struct fc_head_raw *raw,
		      float recon, double t0)
{
	struct adstate *ad = s->ad;
	const int L = e->L, H = e->H, ng = j->ng, nm = j->nm;
	struct ttt_event ev;
	float before = 0, after = 0, g_before, g_after, norm;

	/* Candidate from the current adapter. */
	memcpy(e->cc, ad->a, e->n_ad * sizeof(float));
	unpack(e, e->cand, e->cc);
	ev_init(&ev, TTT_EV_ADAPT_REJECTED, s);
	ev.trigger = j->trig;
	ev.version_from = ad->version;
	ev.data_until = s->last_ts;
	ev.data_from = j->data_from;
	if (nm + j->nr == 0) {
		ev.reason = "no data for the step batch";
		goto rejected;
	}
	struct fc_batch batch = {
	    .xf = j->fx + (size_t)ng * L,
	    .yf = j->fy + (size_t)ng * H,
	    .bf = nm,
	    .xr = j->rx,
	    .mr = j->rm,
	    .br = j->nr,
	    .wf = e->p.w_matured,
	    .wr = e->p.w_recon,
	};
	struct fc_head_raw raw_s = {0};
	if (raw) {
		raw_s = (struct fc_head_raw){raw->fc + (size_t)ng * H,
					     raw->mu + ng, raw->sd + ng};
		e->recon_s = recon;
	}
	/* Guard error of the current adapter */
	if (raw)
		g_before =
		    calib_mse(e, raw, ad->identity ? NULL : ad->a, j->fy, ng);
	else
		g_before = batch_mse(e, expand(e, ad), j->fx, j->fy, ng);
	int steps = run_steps(e, &batch, raw ? &raw_s : NULL, &before, &after);
	if (steps < 0) {
		ev.reason = "loss evaluation failed (non-finite data)";
		goto rejected;
	}
	norm = bound_update(e, ad->a);
	g_after = raw ? calib_mse(e, raw, e->cc, j->fy, ng)
		      : batch_mse(e, e->cand, j->fx, j->fy, ng);
	ev.steps = steps;
	ev.loss_before = before;
	ev.loss_after = after;
	ev.guard_before = g_before;
	ev.guard_after = g_after;
	ev.update_norm = norm;
	if (!(norm > 0.0f)) {
		/* e.g. reconstruction only with families it does not reach
		 * (calib): no new version for an unchanged adapter */
		ev.reason = "zero update: no gradient reaches the adapting "
			    "families";
		goto rejected;
	}
	if (!isfinite(g_after) || !isfinite(before) || !isfinite(after)) {
		ev.reason = "non-finite loss";
		goto rejected;
	}
	if (e->p.guard && !(g_after <= g_before * (1.0f + e->p.guard_tol))) {
		ev.reason = "guard: held-out matured error got worse";
		goto rejected;
	}
	/* Accepted: a new version. */
	if (ad_own(e, ad) < 0) {
		ev.reason = "out of memory for the adapter";
		goto rejected;
	}
	memcpy(ad->a, e->cc, e->n_ad * sizeof(float));
	ad->identity = 0;
	ad->version = ad->next_version++;
	ev.type = TTT_EV_ADAPT_ACCEPTED;
	ev.version_to = ad->version;
	ev.reason = j->trig == TTT_TRIGGER_DRIFT ? "drift" : "schedule";
	ev.adapter = e->cand;
	ev.adapter_len = e->A;
	e->st.accepted++;
	e->st.adapt_seconds += now_seconds() - t0;
	emit(e, &ev);
	return;
rejected:
	ev.version_to = ad->version;
	e->st.rejected++;
	e->st.adapt_seconds += now_seconds() - t0;
	emit(e, &ev);
}

/* An adaptation at once: windows in the scratch (guard and step windows
 * in rows [0, guard + step) of xb/yb, recon windows after them). */
static void adapt(struct ttt_engine *e, struct series *s, enum ttt_trigger trig)
{
	const size_t L = (size_t)e->L;
	const size_t nf = (size_t)(e->p.guard_windows + e->p.step_windows);
	double t0 = now_seconds();
	struct adapt_job j;
	if (!adapt_load(e, s, trig, e->xb, e->yb, e->xb + nf * L, e->mb, &j))
		return;
	/* Calibration only: the backbone does not depend on the candidate,
	 * so one frozen pass over the guard windows and the step batch
	 * serves every loss, gradient and guard evaluation.  When it fails
	 * (non-finite data), the general path finds out why. */
	const struct fc_head_raw *raw = NULL;
	float recon = 0.0f;
	if (e->fast && j.nm + j.nr > 0) {
		struct fc_batch all = {.xf = j.fx,
				       .yf = j.fy,
				       .bf = j.ng + j.nm,
				       .xr = j.rx,
				       .mr = j.rm,
				       .br = j.nr,
				       .wf = e->p.w_matured,
				       .wr = e->p.w_recon};
		if (fc_loss_raw(e->m, e->ws, &all, &e->raw, &recon) == 0)
			raw = &e->raw;
	}
	adapt_run(e, s, &j, raw, recon, t0);
}

/* Ephemeral mode: adapt a copy on the current lookback only (masked
 * reconstruction, anchored, bounded), forecast with it into e->out and
 * discard it. */
static int forecast_ephemeral(struct ttt_engine *e, struct series *s)
{
	const int L = e->L;
	float before, after;
	double t0 = now_seconds();
	uint64_t rng = mask_seed(e, s, (uint64_t)s->n);
	ring_copy(e, s, s->n - L, L, e->xb);
	fc_mask_sample(e->mb, L, fc_model_config(e->m)->mask_ratio,
		       fc_model_config(e->m)->mask_seg, &rng);
	memcpy(e->cc, s->ad->a, e->n_ad * sizeof(float));
	unpack(e, e->cand, e->cc);
	struct fc_batch batch = {.xr = e->xb,
				 .mr = e->mb,
				 .br = 1,
				 .wr =
				     e->p.w_recon > 0.0f ? e->p.w_recon : 1.0f};
	if (run_steps(e, &batch, NULL, &before, &after) >= 0)
		bound_update(e, s->ad->a);
	else
		unpack(e, e->cand, s->ad->a);
	e->st.adapt_seconds += now_seconds() - t0;
	return fc_forecast(e->m, e->cand, e->ws, e->xb, 1, e->out);
}

/* ---- shadow, rollback, reset ----------------------------------------- */

static void track_reset(struct adstate *ad)
{
	ad->ew_adapt = ad->ew_shadow = 0.0f;
	ad->n_track = 0;
}

static void set_anchor(struct ttt_engine *e, struct adstate *ad)
{
	if (ad->a != e->anchor)
		memcpy(ad->a, e->anchor, e->n_ad * sizeof(float));
	ad->identity = 1;
}

/* The shadow's window, the newest matured one, into x [L] and y [H]
 * (normalised); 0 when it is not in the ring yet. */
static int shadow_load(const struct ttt_engine *e, const struct series *s,
		       float *x, float *y)
{
	long i = s->n - 1 - e->H;
	if (i - e->L + 1 < ring_first(e, s))
		return 0;
	load_matured(e, s, i, x, y);
	return 1;
}

/* The shadow's two errors on the calibration-only fast path: the frozen
 * head output of its window (raw, one row) against y [H]. */
static void shadow_calib(struct ttt_engine *e, const struct adstate *ad,
			 const struct fc_head_raw *raw, const float *y,
			 float *ret_es, float *ret_ea)
{
	*ret_es = calib_mse(e, raw, NULL, y, 1);
	*ret_ea = ad->identity ? *ret_es : calib_mse(e, raw, ad->a, y, 1);
}

/* Score the shadow's window: es, the frozen model's error, ea the
 * current adapter's; tracking, rollback and reset. */
static void shadow_score(struct ttt_engine *e, struct series *s, float es,
			 float ea)
{
	struct adstate *ad = s->ad;
	const int H = e->H;
	struct ttt_event ev;
	if (!isfinite(ea) || !isfinite(es))
		return;
	/* The realised error of the newest matured window, for the record
	 * (storage's errors table): its origin is H steps back. */
	ev_init(&ev, TTT_EV_REALISED, s);
	ev.ts = s->last_ts - (int64_t)H * s->step;
	ev.version_from = ev.version_to = ad->version;
	ev.adapted_error = ea;
	ev.shadow_error = es;
	ev.horizon = H;
	emit(e, &ev);
	if (ad->identity || ad_own(e, ad) < 0)
		return;
	float w = 2.0f / ((float)e->p.rollback_window + 1.0f);
	if (ad->n_track == 0) {
		ad->ew_adapt = ea;
		ad->ew_shadow = es;
	} else {
		ad->ew_adapt += w * (ea - ad->ew_adapt);
		ad->ew_shadow += w * (es - ad->ew_shadow);
	}
	ad->n_track++;
	if (ad->n_track < e->p.rollback_window)
		return;
	if (ad->ew_adapt <= ad->ew_shadow * (1.0f + e->p.rollback_margin)) {
		if (ad->ew_adapt <= ad->ew_shadow &&
		    ad->good_version != ad->version) {
			memcpy(ad->good, ad->a, e->n_ad * sizeof(float));
			ad->good_version = ad->version;
			ad->good_identity = ad->identity;
		}
		return;
	}
	/* Realised-worse than the frozen shadow: fall back. */
	ev_init(&ev, TTT_EV_ROLLBACK, s);
	ev.trigger = TTT_TRIGGER_SHADOW;
	ev.version_from = ad->version;
	ev.adapted_error = ad->ew_adapt;
	ev.shadow_error = ad->ew_shadow;
	if (e->p.reset_policy == TTT_RESET_ROLLBACK &&
	    ad->good_version != ad->version) {
		/* The restored content becomes a new version (versions are
		 * immutable; storage links it to its parent). */
		memcpy(ad->a, ad->good, e->n_ad * sizeof(float));
		ev.version_restored = ad->good_version;
		ad->version = ad->next_version++;
		ad->identity = ad->good_identity;
		ev.reason = "adapted error above the shadow's: back to the "
			    "last good version";
		e->st.rollbacks++;
	} else if (e->p.reset_policy == TTT_RESET_SOFT) {
		const float *anc = e->anchor;
		for (size_t k = 0; k < e->n_ad; k++)
			ad->a[k] += e->p.reset_alpha * (anc[k] - ad->a[k]);
		ad->version = ad->next_version++;
		if (e->p.reset_alpha >= 1.0f)
			ad->identity = 1;
		ev.type = TTT_EV_RESET;
		ev.reason = "adapted error above the shadow's: soft reset "
			    "toward the anchor";
		e->st.resets++;
	} else {
		set_anchor(e, ad);
		ad->version = ad->next_version++;
		memcpy(ad->good, ad->a, e->n_ad * sizeof(float));
		ad->good_version = ad->version;
		ad->good_identity = 1;
		ev.type = TTT_EV_RESET;
		ev.reason = "adapted error above the shadow's: hard reset to "
			    "the anchor";
		e->st.resets++;
	}
	ev.version_to = ad->version;
	ev.adapter = expand(e, ad);
	if (!ev.adapter) {
		memcpy(e->full, e->ident, e->A * sizeof(float));
		ev.adapter = e->full;
	}
	ev.adapter_len = e->A;
	track_reset(ad);
	emit(e, &ev);
}

static void shadow_step(struct ttt_engine *e, struct series *s)
{
	struct adstate *ad = s->ad;
	float es = NAN, ea = NAN;
	if (!shadow_load(e, s, e->xb, e->yb))
		return;
	if (e->fast) {
		/* frozen and adapted from one frozen pass: they share the
		 * backbone */
		if (fc_forecast_raw(e->m, e->ws, e->xb, 1, &e->raw) == 0)
			shadow_calib(e, ad, &e->raw, e->yb, &es, &ea);
	} else {
		es = batch_mse(e, NULL, e->xb, e->yb, 1);
		ea = ad->identity
			 ? es
			 : batch_mse(e, expand(e, ad), e->xb, e->yb, 1);
	}
	shadow_score(e, s, es, ea);
}

/* The drift sample's window, the current lookback, into x [L] with its
 * mask m [L]. */
static void drift_load(const struct ttt_engine *e, const struct series *s,
		       float *x, float *m)
{
	const int L = e->L;
	uint64_t rng = mask_seed(e, s, ~(uint64_t)s->n);
	ring_copy(e, s, s->n - L, L, x);
	fc_mask_sample(m, L, fc_model_config(e->m)->mask_ratio,
		       fc_model_config(e->m)->mask_seg, &rng);
}

/* Feed the drift detector the sampled reconstruction loss; 1 when it
 * fires (*ret_stat: the statistic). */
static int drift_update(struct ttt_engine *e, struct series *s, float recon,
			float *ret_stat)
{
	*ret_stat = 0.0f;
	if (e->p.drift == TTT_DRIFT_PH)
		return ttt_ph_update(&s->ph, recon, e->p.ph_delta,
				     e->p.ph_lambda, ret_stat);
	return ttt_adwin_update(&s->adwin, recon, e->p.adwin_delta, ret_stat);
}

static void drift_emit(struct ttt_engine *e, struct series *s, float stat,
		       float recon)
{
	struct ttt_event ev;
	ev_init(&ev, TTT_EV_DRIFT, s);
	ev.trigger = TTT_TRIGGER_DRIFT;
	ev.detector_stat = stat;
	ev.loss_after = recon;
	ev.version_from = ev.version_to = s->ad->version;
	ev.reason = e->p.drift == TTT_DRIFT_PH
			? "Page-Hinkley: reconstruction loss rose"
			: "ADWIN: reconstruction loss changed";
	e->st.drifts++;
	emit(e, &ev);
}

/* Sample the reconstruction loss of the current lookback and feed the
 * drift detector; returns 1 when it fires. */
static int drift_step(struct ttt_engine *e, struct series *s)
{
	struct fc_loss loss;
	float stat;
	drift_load(e, s, e->xb, e->mb);
	struct fc_batch batch = {.xr = e->xb, .mr = e->mb, .br = 1, .wr = 1.0f};
	/* The reconstruction head does not pass through the output
	 * calibration: with calibration-only adapters the frozen pass gives
	 * the same loss without merging the adapter into the weights. */
	if (fc_loss_grad(e->m, e->calib_only ? NULL : expand(e, s->ad), e->ws,
			 &batch, NULL, e->p.families, &loss) < 0)
		return 0;
	if (!drift_update(e, s, loss.recon, &stat))
		return 0;
	drift_emit(e, s, stat, loss.recon);
	return 1;
}

/* ---- observe ------------------------------------------------------------ */

static void reject_value(struct ttt_engine *e, struct series *s, int64_t ts,
			 float v, const char *why)
{
	struct ttt_event ev;
	ev_init(&ev, TTT_EV_REJECTED_VALUE, s);
	ev.ts = ts;
	ev.value = v;
	ev.reason = why;
	ev.version_from = ev.version_to = s->ad->version;
	e->st.rejected_values++;
	emit(e, &ev);
}

/* ---- deferred forecasts and learning ----------------------------------- */

/* Queued forecasts share one batched pass: the frozen backbone with each
 * window's own output calibration, which is exact when the calibration is
 * the only adapting family (or TTT is off, or the adapter is the
 * identity).  Other families merge into the weights: forecast at once. */
static int deferrable(const struct ttt_engine *e)
{
	if (e->qmax == 0)
		return 0;
	if (!e->p.enabled)
		return 1;
	return e->calib_only && !(e->p.ephemeral && e->p.steps > 0);
}

/* Whether the learning of a queued observation waits for the flush too:
 * on the calibration-only fast path every window it needs is a frozen
 * pass, which does not depend on the state the learning changes, so the
 * windows of many series can share one pass.  Only where series do not
 * share adapters (scope series, the condition for the buffers). */
static int learning_deferrable(const struct ttt_engine *e)
{
	return e->lmax > 0 && e->fast && e->p.enabled && !e->p.ephemeral;
}

static void enqueue_forecast(struct ttt_engine *e, struct series *s)
{
	const int L = e->L, H = e->H;
	int k = e->qn;
	ring_copy(e, s, s->n - L, L, e->qx + (size_t)k * L);
	if (!e->p.enabled || s->ad->identity) {
		e->qcalp[k] = NULL;
	} else {
		float *c = e->qcal + (size_t)k * 2 * H;
		memcpy(c, s->ad->a, (size_t)2 * H * sizeof(float));
		e->qcalp[k] = c;
	}
	e->qs[k] = (struct qslot){.key = s->key,
				  .ts = s->last_ts,
				  .version = s->ad->version,
				  .tag = e->tag};
	e->qn++;
}

/* Steps 3 and 4 of observe() (ttt.h) for s, at once. */
static void learn_now(struct ttt_engine *e, struct series *s)
{
	if (e->p.shadow_every > 0 && s->n % e->p.shadow_every == 0)
		shadow_step(e, s);
	int drift = 0;
	if (e->p.drift != TTT_DRIFT_NONE && s->n % e->p.drift_every == 0)
		drift = drift_step(e, s);
	if (e->p.steps > 0) {
		if (s->since_adapt >= e->p.every)
			adapt(e, s, TTT_TRIGGER_SCHEDULE);
		else if (drift && s->since_adapt >= e->p.drift_min_gap)
			adapt(e, s, TTT_TRIGGER_DRIFT);
	}
}

/* The same deferred: what steps 3 and 4 will do for the observation just
 * queued (the series is not observed again before the flush, so nothing
 * these decisions read can change before then). */
static void learn_enqueue(struct ttt_engine *e, struct series *s)
{
	struct qslot *q = &e->qs[e->qn - 1];
	int shadow = e->p.shadow_every > 0 && s->n % e->p.shadow_every == 0;
	int drift =
	    e->p.drift != TTT_DRIFT_NONE && s->n % e->p.drift_every == 0;
	int adapt = 0;
	if (e->p.steps > 0) {
		if (s->since_adapt >= e->p.every)
			adapt = 1;
		else if (drift && s->since_adapt >= e->p.drift_min_gap)
			adapt = 2;
	}
	if (!shadow && !drift && !adapt)
		return;
	q->s = s;
	q->shadow = shadow;
	q->drift = drift;
	q->adapt = adapt;
	q->fired = 0;
	q->job_ok = 0;
	q->shadow_row = q->drift_row = -1;
	s->queued = 1;
	e->ln++;
}

/* Load the windows of q's learning into the learning batch: phase 0 the
 * shadow's window, the drift sample and a scheduled adaptation's windows;
 * phase 1 an adaptation on drift, once the drift sample fired. */
static void learn_load(struct ttt_engine *e, struct qslot *q, int phase)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	struct series *s = q->s;
	if (phase == 0) {
		if (q->shadow && shadow_load(e, s, e->lfx + (size_t)e->lf * L,
					     e->lfy + (size_t)e->lf * H))
			q->shadow_row = e->lf++;
		if (q->drift) {
			drift_load(e, s, e->lrx + (size_t)e->lr * L,
				   e->lrm + (size_t)e->lr * L);
			q->drift_row = e->lr++;
		}
	}
	if (q->adapt != (phase == 0 ? 1 : 2) || (phase == 1 && !q->fired))
		return;
	q->job_row = e->lf;
	q->job_rrow = e->lr;
	q->job_ok = adapt_load(
	    e, s, phase == 0 ? TTT_TRIGGER_SCHEDULE : TTT_TRIGGER_DRIFT,
	    e->lfx + (size_t)e->lf * L, e->lfy + (size_t)e->lf * H,
	    e->lrx + (size_t)e->lr * L, e->lrm + (size_t)e->lr * L, &q->job);
	if (q->job_ok) {
		e->lf += q->job.ng + q->job.nm;
		e->lr += q->job.nr;
	}
}

/* The frozen pass over the learning rows loaded since rows f0 and r0
 * (forecast and recon); returns its time per row. */
static double learn_pass(struct ttt_engine *e, int f0, int r0)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	int nf = e->lf - f0, nr = e->lr - r0;
	if (nf + nr == 0)
		return 0.0;
	double t0 = now_seconds();
	struct fc_head_raw raw = {e->lraw.fc + (size_t)f0 * H, e->lraw.mu + f0,
				  e->lraw.sd + f0};
	if (fc_frozen_pass(e->m, e->wsq, e->lfx + (size_t)f0 * L, nf,
			   e->lrx + (size_t)r0 * L, e->lrm + (size_t)r0 * L, nr,
			   &raw, e->lrsum + r0, e->lrcnt + r0) < 0) {
		/* cannot happen (the workspace fits); as windows that
		 * failed, every step takes its at-once path's fallback */
		for (int r = f0; r < e->lf; r++)
			e->lraw.mu[r] = NAN;
		for (int r = r0; r < e->lr; r++)
			e->lrsum[r] = NAN;
	}
	return (now_seconds() - t0) / (double)(nf + nr);
}

/* The reconstruction loss of learning recon rows [r0, r0 + n) as nn_loss
 * has it (to rounding: summed per row first); NAN if one failed. */
static float learn_recon(const struct ttt_engine *e, int r0, int n)
{
	double sum = 0.0, cnt = 0.0;
	for (int r = r0; r < r0 + n; r++) {
		sum += e->lrsum[r];
		cnt += (double)e->lrcnt[r];
	}
	if (cnt > 0)
		sum /= cnt;
	return (float)sum;
}

/* Phase 0 and phase 1: every frozen pass the queued learning needs, and
 * the drift detectors fed in between (what fires decides phase 1). */
static void learn_prepare(struct ttt_engine *e, int n)
{
	for (int k = 0; k < n; k++)
		if (e->qs[k].s)
			learn_load(e, &e->qs[k], 0);
	double per_row0 = learn_pass(e, 0, 0);
	int f1 = e->lf, r1 = e->lr;
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (!q->s || q->drift_row < 0)
			continue;
		/* drift_step: a failed sample feeds nothing */
		q->recon = learn_recon(e, q->drift_row, 1);
		q->fired = isfinite(q->recon) &&
			   drift_update(e, q->s, q->recon, &q->stat);
		if (q->adapt == 2 && q->fired)
			learn_load(e, q, 1);
	}
	double per_row1 = learn_pass(e, f1, r1);
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (q->s && q->job_ok)
			q->t_pass = (q->job_row < f1 ? per_row0 : per_row1) *
				    (double)(q->job.ng + q->job.nm + q->job.nr);
	}
}

/* Steps 3 and 4 of q's observation from the learning batch, in the order
 * learn_now() takes them. */
static void learn_run(struct ttt_engine *e, struct qslot *q)
{
	const size_t H = (size_t)e->H;
	struct series *s = q->s;
	if (q->shadow_row >= 0) {
		size_t r = (size_t)q->shadow_row;
		struct fc_head_raw raw = {e->lraw.fc + r * H, e->lraw.mu + r,
					  e->lraw.sd + r};
		float es = NAN, ea = NAN;
		if (isfinite(raw.mu[0])) /* else its pass failed */
			shadow_calib(e, s->ad, &raw, e->lfy + r * H, &es, &ea);
		shadow_score(e, s, es, ea);
	}
	if (q->fired)
		drift_emit(e, s, q->stat, q->recon);
	if (!q->job_ok)
		return;
	/* adapt(): the general path when the frozen pass of any of the
	 * job's windows failed or its loss is not finite */
	const struct adapt_job *j = &q->job;
	size_t r0 = (size_t)q->job_row, nf = (size_t)(j->ng + j->nm);
	struct fc_head_raw raw = {e->lraw.fc + r0 * H, e->lraw.mu + r0,
				  e->lraw.sd + r0};
	float recon = learn_recon(e, q->job_rrow, j->nr);
	int ok = j->nm + j->nr > 0 && isfinite(recon);
	for (size_t r = 0; ok && r < nf; r++)
		ok = isfinite(raw.mu[r]);
	for (size_t i = 0; ok && i < nf * H; i++)
		ok = isfinite(j->fy[i]);
	adapt_run(e, s, j, ok ? &raw : NULL, recon, now_seconds() - q->t_pass);
}

int ttt_engine_flush(struct ttt_engine *e)
{
	int n = e->qn, rc;
	if (n == 0)
		return 0;
	e->qn = 0;
	rc = fc_forecast_calibrated(e->m, e->wsq, e->qx, n, e->qcalp, e->qy);
	if (e->ln > 0)
		learn_prepare(e, n);
	/* in the order of the observations, each one's forecast and then
	 * its learning's events, as at once */
	uint64_t tag = e->tag;
	for (int k = 0; k < n; k++) {
		struct qslot *q = &e->qs[k];
		if (rc == 0) {
			struct ttt_event ev;
			memset(&ev, 0, sizeof(ev));
			ev.type = TTT_EV_FORECAST;
			ev.series = q->key;
			ev.ts = q->ts;
			ev.version_from = ev.version_to = q->version;
			ev.forecast = e->qy + (size_t)k * e->H;
			ev.horizon = e->H;
			ev.tag = q->tag;
			e->st.forecasts++;
			if (e->cb)
				e->cb(e->user, &ev);
		}
		if (!q->s)
			continue;
		e->tag = q->tag;
		learn_run(e, q);
		q->s->queued = 0;
	}
	e->tag = tag;
	e->ln = e->lf = e->lr = 0;
	return rc;
}

static void queue_free(struct ttt_engine *e)
{
	fc_workspace_free(e->wsq);
	free(e->qx);
	free(e->qs);
	free(e->qcalp);
	free(e->lfx);
	free(e->lrsum);
	free(e->lrcnt);
	e->wsq = NULL;
	e->qx = NULL;
	e->qs = NULL;
	e->qcalp = NULL;
	e->lfx = NULL;
	e->lrsum = NULL;
	e->lrcnt = NULL;
	e->qmax = 0;
	e->lmax = 0;
}

/* Learning buffers for lmax queued observations: per observation the
 * shadow's window and up to guard + step forecast rows, the drift sample
 * and up to recon_windows recon rows. */
static int learn_alloc(struct ttt_engine *e, int lmax)
{
	const size_t L = (size_t)e->L, H = (size_t)e->H;
	const size_t F =
	    (size_t)lmax * (size_t)(1 + e->p.guard_windows + e->p.step_windows);
	const size_t R = (size_t)lmax * (size_t)(1 + e->p.recon_windows);
	e->lfx = malloc((F * (L + 2 * H + 2) + 2 * R * L) * sizeof(float));
	e->lrsum = malloc(R * sizeof(*e->lrsum));
	e->lrcnt = malloc(R * sizeof(*e->lrcnt));
	if (!e->lfx || !e->lrsum || !e->lrcnt)
		return -ENOMEM;
	e->lfy = e->lfx + F * L;
	e->lraw.fc = e->lfy + F * H;
	e->lraw.mu = e->lraw.fc + F * H;
	e->lraw.sd = e->lraw.mu + F;
	e->lrx = e->lraw.sd + F;
	e->lrm = e->lrx + R * L;
	e->lmax = lmax;
	return 0;
}

int ttt_engine_defer_forecasts(struct ttt_engine *e, int max)
{
	if (max < 0 || max > 65536)
		return -EINVAL;
	int rc = ttt_engine_flush(e);
	if (rc < 0)
		return rc;
	queue_free(e);
	if (max <= 1)
		return 0;
	size_t L = (size_t)e->L, H = (size_t)e->H, Q = (size_t)max;
	rc = fc_workspace_new(e->m, max, &e->wsq);
	if (rc < 0)
		return rc;
	e->qx = malloc(Q * (L + 3 * H) * sizeof(float));
	e->qs = malloc(Q * sizeof(*e->qs));
	e->qcalp = malloc(Q * sizeof(*e->qcalp));
	if (!e->qx || !e->qs || !e->qcalp ||
	    (e->calib_only && e->p.scope == TTT_SCOPE_SERIES &&
	     learn_alloc(e, max < TTT_LEARN_MAX ? max : TTT_LEARN_MAX) < 0)) {
		queue_free(e);
		return -ENOMEM;
	}
	e->qcal = e->qx + Q * L;
	e->qy = e->qcal + Q * 2 * H;
	e->qmax = max;
	return 0;
}

void ttt_engine_set_tag(struct ttt_engine *e, uint64_t tag)
{
	e->tag = tag;
}

static void restart_history(struct series *s)
{
	s->n = 0;
	s->since_adapt = 0;
	ttt_ph_init(&s->ph);
	ttt_adwin_init(&s->adwin);
}

static int observe(struct ttt_engine *e, struct series *s, int64_t ts,
		   float value)
{
	struct ttt_event ev;
	e->st.observations++;

	/* 1. validate and append */
	if (!isfinite(value)) {
		reject_value(e, s, ts, value, "non-finite value");
		return 0;
	}
	if (s->has_ts) {
		int64_t d = ts - s->last_ts;
		if (d == 0) {
			reject_value(e, s, ts, value, "duplicate timestamp");
			return 0;
		}
		if (d < 0) {
			reject_value(e, s, ts, value,
				     "late value (timestamp before the last)");
			return 0;
		}
		if (s->step == 0)
			s->step = d;
		if (d % s->step != 0) {
			reject_value(e, s, ts, value,
				     "timestamp not on the series' step");
			return 0;
		}
		int64_t missing = d / s->step - 1;
		if (missing > 0 && missing <= e->p.max_gap && s->n > 0) {
			float v0 = s->ring[(size_t)((s->n - 1) % e->R)];
			for (int64_t k = 1; k <= missing; k++)
				ring_push(e, s,
					  v0 + (value - v0) * (float)k /
						   (float)(missing + 1));
			ev_init(&ev, TTT_EV_GAP_FILLED, s);
			ev.ts = ts;
			ev.filled = (int)missing;
			ev.reason = "short gap filled by linear interpolation";
			ev.version_from = ev.version_to = s->ad->version;
			e->st.gap_filled++;
			emit(e, &ev);
		} else if (missing > 0) {
			restart_history(s);
			ev_init(&ev, TTT_EV_GAP_FILLED, s);
			ev.ts = ts;
			ev.filled = 0;
			ev.reason = "gap longer than ttt.max_gap: history "
				    "restarted";
			ev.version_from = ev.version_to = s->ad->version;
			e->st.gap_filled++;
			emit(e, &ev);
		}
	}
	s->has_ts = 1;
	s->last_ts = ts;
	ring_push(e, s, value);
	if (s->n < e->L)
		return 0;

	/* 2. forecast, emitted (or queued with a snapshot of the adapter)
	 * before anything can learn from this value */
	int rc, queued = 0;
	if (deferrable(e)) {
		enqueue_forecast(e, s);
		queued = 1;
		goto learn;
	}
	if (e->p.enabled && e->p.ephemeral && e->p.steps > 0)
		rc = forecast_ephemeral(e, s);
	else {
		ring_copy(e, s, s->n - e->L, e->L, e->xb);
		rc = fc_forecast(e->m, e->p.enabled ? expand(e, s->ad) : NULL,
				 e->ws, e->xb, 1, e->out);
	}
	if (rc < 0)
		return rc;
	e->st.forecasts++;
	ev_init(&ev, TTT_EV_FORECAST, s);
	ev.forecast = e->out;
	ev.horizon = e->H;
	ev.version_from = ev.version_to = s->ad->version;
	emit(e, &ev);
learn:
	/* 3. shadow scoring and drift sampling; 4. adapt on schedule or
	 * early on drift -- at once, or queued with the forecast */
	if (e->p.enabled && !e->p.ephemeral) {
		if (queued && learning_deferrable(e))
			learn_enqueue(e, s);
		else
			learn_now(e, s);
	}
	if (queued && (e->qn == e->qmax || (e->lmax && e->ln == e->lmax)))
		return ttt_engine_flush(e);
	return 0;
}

int ttt_engine_observe(struct ttt_engine *e, const char *key, int64_t ts,
		       float value)
{
	struct series *s;
	if (!key || !*key)
		return -EINVAL;
	s = series_get(e, key);
	if (!s)
		return -ENOMEM;
	/* its queued learning first: this value must not reach it, and the
	 * series' events stay in order */
	int frc = s->queued ? ttt_engine_flush(e) : 0;
	int rc = observe(e, s, ts, value);
	return rc < 0 ? rc : frc;
}

/* ---- restore and inspection ------------------------------------------- */

int ttt_engine_restore_series(struct ttt_engine *e, const char *key,
			      const float *adapter, size_t len,
			      uint64_t version, int64_t last_ts)
{
	struct series *s;
	struct adstate *ad;
	if (!key || !*key)
		return -EINVAL;
	if (adapter) {
		if (len != e->A)
			return -EINVAL;
		for (size_t i = 0; i < len; i++)
			if (!isfinite(adapter[i]))
				return -EINVAL;
	}
	s = series_get(e, key);
	if (!s)
		return -ENOMEM;
	if (s->queued) {
		int rc = ttt_engine_flush(e);
		if (rc < 0)
			return rc;
	}
	ad = s->ad;
	if (adapter) {
		if (ad_own(e, ad) < 0)
			return -ENOMEM;
		pack(e, ad->a, adapter);
		ad->identity = 0;
	} else {
		set_anchor(e, ad);
	}
	if (ad->a != e->anchor)
		memcpy(ad->good, ad->a, e->n_ad * sizeof(float));
	ad->good_identity = ad->identity;
	ad->version = ad->good_version = version;
	if (ad->next_version <= version)
		ad->next_version = version + 1;
	track_reset(ad);
	if (last_ts != INT64_MIN) {
		s->last_ts = last_ts;
		s->has_ts = 1;
	}
	return 0;
}

int ttt_engine_series_adapter(const struct ttt_engine *e, const char *key,
			      float *out, size_t len, uint64_t *ret_version)
{
	const struct series *s = series_find(e, key, hash_key(key));
	if (!s)
		return -ENOENT;
	if (len != e->A)
		return -EINVAL;
	memcpy(out, e->ident, e->A * sizeof(float));
	unpack(e, out, s->ad->a);
	if (ret_version)
		*ret_version = s->ad->version;
	return 0;
}

int ttt_engine_each_recent(const struct ttt_engine *e, ttt_recent_fn fn,
			   void *user)
{
	if (e->ln > 0)
		return -EBUSY; /* queued learning would change them */
	float *buf = malloc((size_t)e->R * sizeof(float));
	int r = 0;
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < e->series.nb && r == 0; i++)
		for (const struct series *s = e->series.b[i]; s && r == 0;
		     s = s->next) {
			if (!s->has_ts || s->step <= 0 || s->n == 0)
				continue;
			long first = ring_first(e, s);
			struct ttt_recent rc = {
			    .key = s->key,
			    .last_ts = s->last_ts,
			    .step = s->step,
			    .position = s->n,
			    .since_adapt = s->since_adapt,
			    .adaptations = s->n_adapt,
			    .values = buf,
			    .count = (int)(s->n - first),
			};
			ring_copy(e, s, first, rc.count, buf);
			r = fn(user, &rc);
		}
	free(buf);
	return r;
}

int ttt_engine_restore_recent(struct ttt_engine *e, const struct ttt_recent *r)
{
	if (!r || !r->key || !*r->key || r->step <= 0 || r->count < 0 ||
	    r->position < r->count || r->since_adapt < 0 ||
	    (r->count > 0 && !r->values))
		return -EINVAL;
	for (int k = 0; k < r->count; k++)
		if (!isfinite(r->values[k]))
			return -EINVAL;
	/* Saved by an engine with another ring size: keep the newest R; a
	 * shorter history than the ring restarts the position at its start
	 * (the ring must hold every position from ring_first on). */
	const float *v = r->values;
	int count = r->count;
	int64_t pos = r->position;
	if (count > e->R) {
		v += count - e->R;
		count = e->R;
	}
	if (count < e->R && pos > count)
		pos = count;
	struct series *s = series_get(e, r->key);
	if (!s)
		return -ENOMEM;
	if (s->queued) {
		int rc = ttt_engine_flush(e);
		if (rc < 0)
			return rc;
	}
	if (s->has_ts && s->last_ts != r->last_ts)
		return -ESTALE;
	s->n = (long)pos;
	for (int k = 0; k < count; k++)
		s->ring[(size_t)((s->n - count + k) % e->R)] = v[k];
	s->since_adapt = (long)r->since_adapt;
	s->n_adapt = r->adaptations;
	s->last_ts = r->last_ts;
	s->step = r->step;
	s->has_ts = 1;
	ttt_ph_init(&s->ph);
	ttt_adwin_init(&s->adwin);
	return 0;
}
