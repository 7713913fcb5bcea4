/*
 * The loop's table of series for the status and metrics: the partition a
 * series arrives on (so driftcast_series counts only the series of the
 * partitions this member owns now, whatever the engine still holds after
 * a rebalance) and whether its adapter is currently worse than the frozen
 * model, with per-partition counts so that the totals over an assignment
 * cost one pass over the assigned partitions, not over the series.  Also
 * the realised error histograms (bounded: two models, a dozen buckets,
 * never per series).
 *
 * Series are keyed by a 64-bit hash of their name, not the name: 24 bytes
 * a series, and a collision (about 1 in 10^10 among a million series)
 * would only merge two series' counts.
 */
#include "daemon/status_private.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/kafka.h"
#include "daemon/status.h"
#include "forecast/fnv1a.h"

/* "Currently worse": an exponentially weighted mean of the realised
 * errors with a span of this many windows, as the engine's rollback
 * tracking does, but kept for every series (the engine keeps it only for
 * adapted ones, and resets it on every new version). */
#define WORSE_SPAN 20

const double status_err_bounds[STATUS_ERR_BUCKETS - 1] = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25,
};

struct entry {
	uint64_t h;   /* 0: empty */
	int32_t part; /* -1: not known */
	uint8_t scored, worse;
	float ew_adapted, ew_frozen;
};

struct status_watch {
	struct entry *tab;
	size_t cap, n; /* cap: a power of two */
	/* per partition: series, of them scored, of them worse */
	int32_t n_series[DC_STATUS_MAX_PARTITIONS];
	int32_t n_scored[DC_STATUS_MAX_PARTITIONS];
	int32_t n_worse[DC_STATUS_MAX_PARTITIONS];
	uint64_t bucket[2][STATUS_ERR_BUCKETS];
	double sum[2];
};

struct status_watch *status_watch_new(void)
{
	return calloc(1, sizeof(struct status_watch));
}

void status_watch_free(struct status_watch *w)
{
	if (!w)
		return;
	free(w->tab);
	free(w);
}

static uint64_t key_hash(const char *key)
{
	uint64_t h = fc_fnv1a_str(FC_FNV1A_INIT, key);
	h ^= h >> 31;
	h *= 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	return h ? h : 1;
}

static struct entry *slot(struct entry *tab, size_t cap, uint64_t h)
{
	size_t i = (size_t)h & (cap - 1);
	while (tab[i].h && tab[i].h != h)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static int grow(struct status_watch *w)
{
	size_t cap = w->cap ? w->cap * 2 : 256;
	struct entry *tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return -1;
	for (size_t i = 0; i < w->cap; i++)
		if (w->tab[i].h)
			*slot(tab, cap, w->tab[i].h) = w->tab[i];
	free(w->tab);
	w->tab = tab;
	w->cap = cap;
	return 0;
}

/* The entry of key, created (partition unknown) if needed; NULL without
 * memory (the series is then not counted). */
static struct entry *lookup(struct status_watch *w, const char *key)
{
	uint64_t h = key_hash(key);
	if (w->cap) {
		struct entry *e = slot(w->tab, w->cap, h);
		if (e->h)
			return e;
	}
	if ((w->n + 1) * 2 > w->cap && grow(w) < 0)
		return NULL;
	struct entry *e = slot(w->tab, w->cap, h);
	*e = (struct entry){.h = h, .part = -1};
	w->n++;
	return e;
}

static bool counted(int32_t p)
{
	return p >= 0 && p < DC_STATUS_MAX_PARTITIONS;
}

/* Add (sign 1) or remove (-1) e's share of its partition's counts. */
static void count(struct status_watch *w, const struct entry *e, int sign)
{
	if (!counted(e->part))
		return;
	w->n_series[e->part] += sign;
	w->n_scored[e->part] += sign * e->scored;
	w->n_worse[e->part] += sign * e->worse;
}

void status_watch_seen(struct status_watch *w, const char *key,
		       int32_t partition)
{
	if (!w)
		return;
	struct entry *e = lookup(w, key);
	if (!e || e->part == partition)
		return;
	count(w, e, -1);
	e->part = partition;
	count(w, e, 1);
}

void status_watch_forget_partition(struct status_watch *w, int32_t partition)
{
	if (!w || !counted(partition))
		return;
	for (size_t i = 0; i < w->cap; i++) {
		struct entry *e = &w->tab[i];
		if (!e->h || e->part != partition)
			continue;
		count(w, e, -1);
		e->part = -1; /* counted again when seen on a partition here */
		e->scored = e->worse = 0;
	}
}

static void observe(struct status_watch *w, int model, double err)
{
	size_t b = 0;
	while (b < STATUS_ERR_BUCKETS - 1 && err > status_err_bounds[b])
		b++;
	w->bucket[model][b]++;
	w->sum[model] += err;
}

void status_watch_realised(struct status_watch *w, const char *key,
			   float adapted, float frozen)
{
	if (!w || !isfinite(adapted) || !isfinite(frozen))
		return;
	observe(w, STATUS_ADAPTED, (double)adapted);
	observe(w, STATUS_FROZEN, (double)frozen);
	struct entry *e = lookup(w, key);
	if (!e)
		return;
	count(w, e, -1);
	if (!e->scored) {
		e->ew_adapted = adapted;
		e->ew_frozen = frozen;
		e->scored = 1;
	} else {
		const float a = 2.0f / (WORSE_SPAN + 1.0f);
		e->ew_adapted += a * (adapted - e->ew_adapted);
		e->ew_frozen += a * (frozen - e->ew_frozen);
	}
	e->worse = e->ew_adapted > e->ew_frozen;
	count(w, e, 1);
}

void status_watch_totals(const struct status_watch *w,
			 const struct dc_partition_lag *parts, int nparts,
			 struct status_totals *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!w)
		return;
	for (int i = 0; i < nparts; i++) {
		int32_t p = parts[i].partition;
		if (!counted(p))
			continue;
		ret->owned += w->n_series[p];
		ret->scored += w->n_scored[p];
		ret->worse += w->n_worse[p];
	}
	ret->tracked = w->n;
	memcpy(ret->bucket, w->bucket, sizeof(ret->bucket));
	memcpy(ret->sum, w->sum, sizeof(ret->sum));
}
