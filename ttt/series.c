/*
 * Series state: the hash tables of series and of adapter states (per
 * series, per group or global, by ttt.scope), the ring buffer of each
 * series' recent values and the windows read from it, and the entry
 * points that restore or inspect that state (restart, rollback command,
 * clean restart).
 *
 * Memory.  A series is one allocation: its struct, its key, its ring
 * buffer of R = L + H + (guard_windows + step_windows) * stride floats and
 * the state of the level correction and the recalibration (level.c,
 * recal.c).  An adapter state (one per series, per group or one global, by
 * ttt.scope) is its struct and, once it first changes, one allocation: the
 * active part of the adapter block (the ranges of the adapting families,
 * packed, n_ad floats), then in half precision, as differences from the
 * anchor, the last good version, the version on probation (ttt/trust.c)
 * and the published average (combine.h).  The anchor is the
 * identity adapter, shared by every series.  Optimizer state, gradients,
 * batches and the full adapter block used to call forecast/ live once per
 * engine and only during an adaptation; so nothing is allocated per
 * observation, only when a series or group is first seen.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/fnv1a.h"
#include "forecast/forecast.h"
#include "ttt/engine_private.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"

/* ---- hash tables ----------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
	return fc_fnv1a_str(FC_FNV1A_INIT, s);
}

static uint64_t hash_keyn(const char *s, size_t n)
{
	return fc_fnv1a(FC_FNV1A_INIT, s, n);
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
	a->a = e->anchor;
	a->identity = 1;
	a->good_identity = 1;
	a->next_version = 1;
	a->bytes = bytes;
	e->st.adapters++;
	e->st.bytes_adapters += a->bytes;
	return a;
}

int ttt_ad_own(struct ttt_engine *e, struct adstate *ad)
{
	if (ad->a != e->anchor)
		return 0;
	/* a, then in halves good (the anchor), tr.pend and the published
	 * average */
	size_t nh = e->p.average_rate > 0.0f ? 3 : 2;
	size_t fl = e->n_ad * (sizeof(float) + nh * sizeof(uint16_t));
	float *b = calloc(1, fl);
	if (!b)
		return -ENOMEM;
	memcpy(b, e->anchor, e->n_ad * sizeof(float));
	ad->a = b;
	if (e->p.average_rate > 0.0f)
		ad->avg = ad_pend(e, ad) + e->n_ad; /* the anchor */
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

void ttt_ad_track_reset(struct adstate *ad)
{
	ad->ew_adapt = ad->ew_shadow = 0.0f;
	ad->n_track = 0;
}

void ttt_ad_set_anchor(struct ttt_engine *e, struct adstate *ad)
{
	if (ad->a != e->anchor) {
		memcpy(ad->a, e->anchor, e->n_ad * sizeof(float));
		ttt_avg_reset(e, ad);
	}
	ad->identity = 1;
}

/* ---- series and their rings ------------------------------------------ */

void ttt_series_layout(struct ttt_engine *e)
{
	size_t ring = ((size_t)e->R * sizeof(float) + 7) & ~(size_t)7;
	size_t lv = e->K ? (sizeof(struct level) +
			    (size_t)e->K * (2 * sizeof(float) + 1) + 7) &
			       ~(size_t)7
			 : 0;
	e->lv_off = ring;
	e->rc_off = ring + lv;
	e->tail_bytes = ring + lv + ttt_recal_layout(e);
}

int ttt_series_refused(const struct ttt_engine *e)
{
	return e->max_series && e->series.count >= e->max_series ? -ENOSPC
								 : -ENOMEM;
}

struct series *ttt_series_get(struct ttt_engine *e, const char *key,
			      bool capped)
{
	uint64_t h = hash_key(key);
	struct series *s = series_find(e, key, h);
	size_t keylen, bytes;
	if (s)
		return s;
	if (capped && e->max_series && e->series.count >= e->max_series)
		return NULL;
	if (e->series.count + 1 > e->series.nb &&
	    table_grow(&e->series, series_hash) < 0)
		return NULL;
	keylen = strlen(key);
	bytes = (sizeof(struct series) + keylen + 1 + 15) & ~(size_t)15;
	s = calloc(1, bytes + e->tail_bytes);
	if (!s)
		return NULL;
	memcpy(s->key, key, keylen + 1);
	s->ring = (float *)((char *)s + bytes);
	s->hash = h;
	s->step = e->p.step;
	s->bytes = bytes + e->tail_bytes + sizeof(void *);
	ttt_drift_reset(e, s);
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

void ttt_series_free_all(struct ttt_engine *e)
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

void ttt_load_matured(const struct ttt_engine *e, const struct series *s,
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
	sd = fc_norm_sd(mean, sq / L);
	for (int k = 0; k < L; k++)
		x[k] = (float)(((double)x[k] - mean) / sd);
	for (int k = 0; k < H; k++)
		y[k] = (float)(((double)y[k] - mean) / sd);
}

/* ---- restore and inspection ------------------------------------------ */

/* ad publishes the average avg [e->n_ad], made with its version `version`:
 * 1 taken, 0 not (no average kept, the base adapter, another version). */
static int take_average(const struct ttt_engine *e, struct adstate *ad,
			const uint16_t *avg, uint64_t version)
{
	if (!ad->avg || ad->identity || version != ad->version)
		return 0;
	memcpy(ad->avg, avg, e->n_ad * sizeof(uint16_t));
	return 1;
}

/* s's queued learning run done, so that a restore lands after it: 0 or
 * the flush's negative errno. */
static int settle(struct ttt_engine *e, const struct series *s)
{
	return s->queued ? ttt_engine_flush(e) : 0;
}

/* Series key (created if needed) with its queued learning run, so that a
 * restore lands after it; 0, -ENOMEM or the flush's negative errno. */
static int series_settled(struct ttt_engine *e, const char *key,
			  struct series **ret)
{
	/* a restore is not capped: the series is this host's already (its
	 * versions in the database), and a fresh start would number them
	 * again */
	struct series *s = ttt_series_get(e, key, false);
	*ret = NULL;
	if (!s)
		return -ENOMEM;
	int rc = settle(e, s);
	if (rc < 0)
		return rc;
	*ret = s;
	return 0;
}

size_t ttt_engine_series_count(const struct ttt_engine *e)
{
	return e->series.count;
}

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
	int rc = series_settled(e, key, &s);
	if (rc < 0)
		return rc;
	ad = s->ad;
	if (adapter) {
		if (ttt_ad_own(e, ad) < 0)
			return -ENOMEM;
		pack(e, ad->a, adapter);
		ttt_avg_reset(e, ad);
		ad->identity = 0;
	} else {
		ttt_ad_set_anchor(e, ad);
	}
	/* Not trusted: its probation (ttt/trust.c) is not known here, and a
	 * restart must not make a poisoned version the rollback target. */
	if (ad_good(e, ad))
		memset(ad_good(e, ad), 0, e->n_ad * sizeof(uint16_t));
	ad->good_identity = 1;
	ad->good_version = 0;
	ad->version = version;
	if (ad->next_version <= version)
		ad->next_version = version + 1;
	ttt_ad_track_reset(ad);
	ttt_trust_restart(ad);
	if (last_ts != INT64_MIN) {
		s->last_ts = last_ts;
		s->has_ts = 1;
	}
	return 0;
}

int ttt_engine_series_clock(const struct ttt_engine *e, const char *key,
			    int64_t *ret_last_ts, int64_t *ret_step)
{
	const struct series *s = series_find(e, key, hash_key(key));
	if (!s || !s->has_ts)
		return -ENOENT;
	*ret_last_ts = s->last_ts;
	*ret_step = s->step;
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

int ttt_engine_series_adapter_active(const struct ttt_engine *e,
				     const char *key, float *full, size_t len,
				     uint64_t *ret_version)
{
	const struct series *s = series_find(e, key, hash_key(key));
	if (!s)
		return -ENOENT;
	if (len != e->A)
		return -EINVAL;
	unpack(e, full, s->ad->a);
	if (ret_version)
		*ret_version = s->ad->version;
	return 0;
}

/* Floats of fill_recent's buf: the ring's R, then the recalibration's
 * saved state. */
static size_t recent_len(const struct ttt_engine *e)
{
	return (size_t)e->R +
	       (ttt_recal_saved_len(e) + sizeof(float) - 1) / sizeof(float);
}

/* s's recent values into *rc (values and the recalibration's state in
 * buf [recent_len]); false when it has none to give (no time step or no
 * values yet). */
static bool fill_recent(const struct ttt_engine *e, const struct series *s,
			float *buf, struct ttt_recent *rc)
{
	if (!s->has_ts || s->step <= 0 || s->n == 0)
		return false;
	long first = ring_first(e, s);
	*rc = (struct ttt_recent){
	    .key = s->key,
	    .last_ts = s->last_ts,
	    .step = s->step,
	    .position = s->n,
	    .since_adapt = s->since_adapt,
	    .adaptations = s->n_adapt,
	    .values = buf,
	    .count = (int)(s->n - first),
	};
	if (s->ad->avg && !s->ad->identity) {
		rc->average = s->ad->avg;
		rc->average_len = e->n_ad;
		rc->average_version = s->ad->version;
	}
	if (e->KR > 0) {
		ttt_recal_save(e, s, buf + e->R);
		rc->recal = buf + e->R;
		rc->recal_len = ttt_recal_saved_len(e);
	}
	ring_copy(e, s, first, rc->count, buf);
	return true;
}

int ttt_engine_each_recent(const struct ttt_engine *e, ttt_recent_fn fn,
			   void *user)
{
	if (e->ln > 0 || e->qn > 0)
		return -EBUSY; /* queued work would change them */
	float *buf = malloc(recent_len(e) * sizeof(float));
	int r = 0;
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < e->series.nb && r == 0; i++)
		for (const struct series *s = e->series.b[i]; s && r == 0;
		     s = s->next) {
			struct ttt_recent rc;
			if (fill_recent(e, s, buf, &rc))
				r = fn(user, &rc);
		}
	free(buf);
	return r;
}

void ttt_series_changed(struct ttt_engine *e, struct series *s)
{
	if (s->changed)
		return;
	s->changed = 1;
	s->chg_prev = NULL;
	s->chg_next = e->changed;
	if (e->changed)
		e->changed->chg_prev = s;
	e->changed = s;
}

static void changed_unlink(struct ttt_engine *e, struct series *s)
{
	if (!s->changed)
		return;
	if (s->chg_prev)
		s->chg_prev->chg_next = s->chg_next;
	else
		e->changed = s->chg_next;
	if (s->chg_next)
		s->chg_next->chg_prev = s->chg_prev;
	s->chg_prev = s->chg_next = NULL;
	s->changed = 0;
}

int ttt_engine_each_changed_recent(const struct ttt_engine *e, ttt_recent_fn fn,
				   void *user)
{
	if (e->ln > 0 || e->qn > 0)
		return -EBUSY; /* queued work would change them */
	if (!e->changed)
		return 0;
	float *buf = malloc(recent_len(e) * sizeof(float));
	int r = 0;
	if (!buf)
		return -ENOMEM;
	for (const struct series *s = e->changed; s && r == 0;
	     s = s->chg_next) {
		struct ttt_recent rc;
		if (fill_recent(e, s, buf, &rc))
			r = fn(user, &rc);
	}
	free(buf);
	return r;
}

void ttt_engine_recent_saved(struct ttt_engine *e)
{
	while (e->changed)
		changed_unlink(e, e->changed);
}

int ttt_engine_series_recent(const struct ttt_engine *e, const char *key,
			     float *buf, size_t len, struct ttt_recent *ret)
{
	const struct series *s = series_find(e, key, hash_key(key));
	if (!s)
		return -ENOENT;
	if (len < recent_len(e))
		return -EINVAL;
	if (s->queued)
		return -EBUSY;
	return fill_recent(e, s, buf, ret) ? 0 : -ENODATA;
}

size_t ttt_engine_ring_len(const struct ttt_engine *e)
{
	return recent_len(e);
}

const float *ttt_engine_base_adapter(const struct ttt_engine *e)
{
	return e->ident;
}

size_t ttt_engine_adapter_segments(const struct ttt_engine *e, size_t *off,
				   size_t *len, size_t max)
{
	for (size_t i = 0; i < (size_t)e->nseg && i < max; i++) {
		off[i] = e->seg_off[i];
		len[i] = e->seg_len[i];
	}
	return (size_t)e->nseg;
}

int ttt_engine_forget_series(struct ttt_engine *e, const char *key)
{
	uint64_t h = hash_key(key);
	struct series *s = series_find(e, key, h);
	if (!s)
		return -ENOENT;
	/* queued forecasts and learning point at the series */
	if (e->qn > 0 || e->ln > 0) {
		int rc = ttt_engine_flush(e);
		if (rc < 0)
			return rc;
	}
	struct series **pp =
	    (struct series **)&e->series.b[h & (e->series.nb - 1)];
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	changed_unlink(e, s);
	e->series.count--;
	e->st.series--;
	e->st.bytes_series -= s->bytes;
	/* its own adapter state (scope series); a shared one stays */
	struct adstate *ad = s->ad;
	if (e->p.scope == TTT_SCOPE_SERIES && ad != e->global) {
		uint64_t ha = hash_key(ad->key);
		struct adstate **ap =
		    (struct adstate **)&e->groups.b[ha & (e->groups.nb - 1)];
		while (*ap && *ap != ad)
			ap = &(*ap)->next;
		if (*ap) {
			*ap = ad->next;
			e->groups.count--;
			e->st.adapters--;
			e->st.bytes_adapters -= ad->bytes;
			ad_free(e, ad);
		}
	}
	free(s);
	return 0;
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
	if (r->average && !ttt_halves_finite(r->average, r->average_len))
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
	/* the recalibration's state, while the positions continue */
	int take_recal = 0;
	if (r->recal && pos == r->position) {
		take_recal = ttt_recal_fits(e, r->recal, r->recal_len, pos);
		if (take_recal < 0)
			return take_recal;
	}
	struct series *s = NULL;
	/* queued forecasts, whose corrections (level, recalibration) the
	 * reset must follow */
	int rc = (e->K > 0 || e->KR > 0) && e->qn > 0 ? ttt_engine_flush(e) : 0;
	if (rc == 0)
		rc = series_settled(e, r->key, &s);
	if (rc < 0)
		return rc;
	if (s->has_ts && s->last_ts != r->last_ts)
		return -ESTALE;
	s->n = (long)pos;
	for (int k = 0; k < count; k++)
		s->ring[(size_t)((s->n - count + k) % e->R)] = v[k];
	/* the level correction's forecasts are not saved; the
	 * recalibration's are, and continue while the positions do */
	ttt_level_reset(e, s);
	ttt_recal_reset(e, s);
	if (take_recal)
		ttt_recal_take(e, s, r->recal);
	ttt_series_changed(e, s);
	s->since_adapt = (long)r->since_adapt;
	s->n_adapt = r->adaptations;
	s->last_ts = r->last_ts;
	s->step = r->step;
	s->has_ts = 1;
	/* a step learnt again is saved once its next gap gave it; one saved
	 * before that (a single value since) is taken as it is */
	s->relearn = 0;
	s->off_bits = 0;
	ttt_drift_reset(e, s);
	if (r->average && r->average_len == e->n_ad)
		take_average(e, s->ad, r->average, r->average_version);
	return 0;
}

int ttt_engine_restore_average(struct ttt_engine *e, const char *key,
			       const uint16_t *average, size_t len,
			       uint64_t version)
{
	if (!key || !average || len != e->n_ad ||
	    !ttt_halves_finite(average, len))
		return -EINVAL;
	struct series *s = series_find(e, key, hash_key(key));
	if (!s)
		return -ENOENT;
	int rc = settle(e, s);
	return rc < 0 ? rc : take_average(e, s->ad, average, version);
}
