/*
 * The state topic's record format (daemon/changelog.h): encoding and the
 * checked decoding every record goes through before it is restored.
 *
 * Layout (little-endian): "DCS1", kind u8, flags u8 (1: ring present),
 * u16 0, model_hash u64, partition i32, next_offset i64, made_at_ms i64,
 * host_len u16, key_len u16, version u64, parent i64, adapter_len u32,
 * last_ts i64, step i64, position i64, since_adapt i64, adaptations u64,
 * count u32, host bytes, key bytes, the adapter, values f32[count], crc32
 * u32 of every byte before it.  The adapter is f32[adapter_len], or, with
 * flag 2, only where it differs from the writer's base adapter: base_hash
 * u64, runs u32, and per run offset u32, len u32, f32[len] (a series
 * adapts a few hundred of the block's floats, ~1/20 at d = 64; the whole
 * block made a record ~25 KB and its cost per commit was all copying).
 * With flag 4 (ring present too), the series' published average follows
 * the values: u16[average_len], average_version u64, average_len u32,
 * read from the end; a host older than the flag refuses such a record.
 * With flag 8 (ring present too), the recalibration's state follows
 * that: u8[recal_len] (the engine's opaque bytes), recal_len u32, read
 * from the end first; likewise refused by older hosts.
 */
#include "daemon/changelog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "forecast/fnv1a.h"

#define MAGIC	 "DCS1"
#define HEAD_LEN (4 + 4 + 8 + 4 + 8 + 8 + 2 + 2 + 8 + 8 + 4 + 8 * 5 + 4)

struct wr {
	unsigned char *p;
};

static void put(struct wr *w, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		*w->p++ = (unsigned char)(v >> (8 * i));
}

static void put_floats(struct wr *w, const float *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &f[i], 4);
		put(w, u, 4);
	}
}

static uint64_t get(const unsigned char **p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)(*p)[i] << (8 * i);
	*p += n;
	return v;
}

static size_t host_len(const struct dc_changelog_rec *rec)
{
	return strnlen(rec->host, DC_CHANGELOG_HOST_MAX - 1);
}

static bool same_bits(float a, float b)
{
	uint32_t x, y;
	memcpy(&x, &a, 4);
	memcpy(&y, &b, 4);
	return x == y;
}

/* The next run of a that differs from base at or after *at, into *off and
 * *len (runs apart by at most 2 equal floats are one: a run's header
 * costs 2 floats); false when there is none. */
static bool next_run(const float *a, const float *base, size_t n, size_t *at,
		     size_t *off, size_t *len)
{
	size_t i = *at;
	/* most of the block is the base: skip it 16 floats at a time */
	while (i + 16 <= n && !memcmp(a + i, base + i, 16 * sizeof(float)))
		i += 16;
	while (i < n && same_bits(a[i], base[i]))
		i++;
	if (i == n)
		return false;
	size_t end = i + 1, j = end;
	while (j < n && j - end <= 2) {
		if (!same_bits(a[j], base[j]))
			end = j + 1;
		j++;
	}
	*off = i;
	*len = end - i;
	*at = end;
	return true;
}

/* The runs of rec's adapter: fn(off, len, user) for each, in order,
 * looking only where rec says it may differ from the base. */
static void each_run(const struct dc_changelog_rec *rec,
		     void (*fn)(size_t off, size_t len, void *user), void *user)
{
	size_t whole = rec->adapter_len, nseg = rec->nseg ? rec->nseg : 1;
	for (size_t i = 0; i < nseg; i++) {
		size_t lo = rec->nseg ? rec->seg_off[i] : 0;
		size_t n = rec->nseg ? rec->seg_len[i] : whole;
		size_t at = 0, off, len;
		if (lo > whole || n > whole - lo)
			continue; /* not in this block */
		while (next_run(rec->adapter + lo, rec->base + lo, n, &at, &off,
				&len))
			fn(lo + off, len, user);
	}
}

static void count_run(size_t off, size_t len, void *user)
{
	size_t *bytes = user;
	(void)off;
	*bytes += 8 + 4 * len;
}

/* Bytes of rec's adapter section. */
static size_t adapter_bytes(const struct dc_changelog_rec *rec)
{
	if (!rec->adapter)
		return 0;
	if (!rec->base)
		return 4 * rec->adapter_len;
	size_t n = 8 + 4;
	each_run(rec, count_run, &n);
	return n;
}

/* Whether rec carries a published average (flag 4). */
static bool has_average(const struct dc_changelog_rec *rec)
{
	return rec->kind == DC_CHANGELOG_STATE && rec->has_ring &&
	       rec->average && rec->average_len;
}

/* Whether rec carries the recalibration's state (flag 8). */
static bool has_recal(const struct dc_changelog_rec *rec)
{
	return rec->kind == DC_CHANGELOG_STATE && rec->has_ring && rec->recal &&
	       rec->recal_len;
}

size_t dc_changelog_size(const struct dc_changelog_rec *rec)
{
	size_t n = HEAD_LEN + host_len(rec) + 4;
	if (rec->kind == DC_CHANGELOG_STATE)
		n += rec->key_len + adapter_bytes(rec) +
		     4 * (rec->has_ring ? rec->count : 0);
	if (has_average(rec))
		n += 2 * rec->average_len + 8 + 4;
	if (has_recal(rec))
		n += rec->recal_len + 4;
	return n;
}

struct run_wr {
	struct wr *w;
	const float *adapter;
	size_t nruns;
};

static void put_run(size_t off, size_t len, void *user)
{
	struct run_wr *x = user;
	put(x->w, off, 4);
	put(x->w, len, 4);
	put_floats(x->w, x->adapter + off, len);
	x->nruns++;
}

size_t dc_changelog_encode(const struct dc_changelog_rec *rec, void *buf,
			   size_t cap)
{
	size_t n = dc_changelog_size(rec);
	bool state = rec->kind == DC_CHANGELOG_STATE;
	size_t alen = state && rec->adapter ? rec->adapter_len : 0;
	size_t count = state && rec->has_ring ? rec->count : 0;
	size_t klen = state ? rec->key_len : 0;
	bool avg = has_average(rec), rcl = has_recal(rec);
	if (n > cap || klen > 65535 || alen > UINT32_MAX ||
	    count > UINT32_MAX || (avg && rec->average_len > UINT32_MAX) ||
	    (rcl && rec->recal_len > UINT32_MAX))
		return 0;
	struct wr w = {buf};
	memcpy(w.p, MAGIC, 4);
	w.p += 4;
	bool runs = alen && rec->base;
	put(&w, (uint64_t)rec->kind, 1);
	put(&w,
	    (state && rec->has_ring ? 1 : 0) | (runs ? 2 : 0) | (avg ? 4 : 0) |
		(rcl ? 8 : 0),
	    1);
	put(&w, 0, 2);
	put(&w, rec->model_hash, 8);
	put(&w, (uint32_t)rec->partition, 4);
	put(&w, (uint64_t)rec->next_offset, 8);
	put(&w, (uint64_t)rec->made_at_ms, 8);
	put(&w, host_len(rec), 2);
	put(&w, klen, 2);
	put(&w, state ? rec->version : 0, 8);
	put(&w, (uint64_t)(state ? rec->parent : -1), 8);
	put(&w, alen, 4);
	put(&w, (uint64_t)(count ? rec->last_ts : 0), 8);
	put(&w, (uint64_t)(count ? rec->step : 0), 8);
	put(&w, (uint64_t)(count ? rec->position : 0), 8);
	put(&w, (uint64_t)(count ? rec->since_adapt : 0), 8);
	put(&w, count ? rec->adaptations : 0, 8);
	put(&w, count, 4);
	memcpy(w.p, rec->host, host_len(rec));
	w.p += host_len(rec);
	if (klen)
		memcpy(w.p, rec->key, klen);
	w.p += klen;
	if (runs) {
		struct run_wr x = {.w = &w, .adapter = rec->adapter};
		unsigned char *count_at = w.p + 8;
		put(&w, rec->base_hash, 8);
		put(&w, 0, 4);
		each_run(rec, put_run, &x);
		struct wr c = {count_at};
		put(&c, x.nruns, 4);
	} else {
		put_floats(&w, rec->adapter, alen);
	}
	put_floats(&w, rec->values, count);
	if (avg) {
		for (size_t i = 0; i < rec->average_len; i++)
			put(&w, rec->average[i], 2);
		put(&w, rec->average_version, 8);
		put(&w, rec->average_len, 4);
	}
	if (rcl) {
		memcpy(w.p, rec->recal, rec->recal_len);
		w.p += rec->recal_len;
		put(&w, rec->recal_len, 4);
	}
	put(&w, crc32(0L, buf, (uInt)(n - 4)), 4);
	return n;
}

static int refuse(char *why, size_t n, int e, const char *text)
{
	snprintf(why, n, "%s", text);
	return e;
}

/* n floats from p into dst (when not NULL), each finite. */
static bool get_floats(const unsigned char **p, size_t n, float *dst)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)get(p, 4);
		float f;
		memcpy(&f, &u, 4);
		if (!isfinite(f))
			return false;
		if (dst)
			dst[i] = f;
	}
	return true;
}

/* The runs section at p (end: where the values start) into a, over the
 * host's base; false when a run is out of range or not finite. */
static bool get_runs(const unsigned char *p, const unsigned char *end, size_t n,
		     const float *base, float *a)
{
	uint32_t nruns = (uint32_t)get(&p, 4);
	size_t next = 0;
	if (a)
		memcpy(a, base, n * sizeof(float));
	for (uint32_t k = 0; k < nruns; k++) {
		if (end - p < 8)
			return false;
		size_t off = (size_t)get(&p, 4), len = (size_t)get(&p, 4);
		/* in order, apart, inside the block and the record */
		if (off < next || len == 0 || len > n || off > n - len ||
		    (size_t)(end - p) / 4 < len)
			return false;
		if (!get_floats(&p, len, a ? a + off : NULL))
			return false;
		next = off + len;
	}
	return p == end;
}

int dc_changelog_decode(const void *buf, size_t len,
			const struct dc_changelog_host *host, float *scratch,
			size_t cap, struct dc_changelog_rec *ret, char *why,
			size_t why_size)
{
	const unsigned char *p = buf;
	struct dc_changelog_rec r = {0};
	if (!buf || len < HEAD_LEN + 4 || memcmp(p, MAGIC, 4) != 0)
		return refuse(why, why_size, -EINVAL,
			      "not a driftcast state record");
	uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(len - 4));
	const unsigned char *t = p + len - 4;
	if (get(&t, 4) != crc)
		return refuse(why, why_size, -EBADMSG, "checksum mismatch");
	p += 4;
	r.kind = (int)get(&p, 1);
	int flags = (int)get(&p, 1);
	get(&p, 2);
	r.model_hash = get(&p, 8);
	r.partition = (int32_t)(uint32_t)get(&p, 4);
	r.next_offset = (int64_t)get(&p, 8);
	r.made_at_ms = (int64_t)get(&p, 8);
	size_t hlen = (size_t)get(&p, 2);
	r.key_len = (size_t)get(&p, 2);
	r.version = get(&p, 8);
	r.parent = (int64_t)get(&p, 8);
	r.adapter_len = (size_t)get(&p, 4);
	r.last_ts = (int64_t)get(&p, 8);
	r.step = (int64_t)get(&p, 8);
	r.position = (int64_t)get(&p, 8);
	r.since_adapt = (int64_t)get(&p, 8);
	r.adaptations = get(&p, 8);
	r.count = (size_t)get(&p, 4);
	r.has_ring = flags & 1;
	if (r.kind != DC_CHANGELOG_STATE && r.kind != DC_CHANGELOG_MARK)
		return refuse(why, why_size, -EPROTO, "unknown record kind");
	bool runs = (flags & 2) && r.adapter_len;
	/* the recalibration's trailer, then the published average's, read
	 * from the end */
	size_t tail = 0;
	if ((flags & 8) && r.has_ring) {
		const unsigned char *q = (const unsigned char *)buf + len - 8;
		r.recal_len = (size_t)get(&q, 4);
		/* the exact size is checked with the others below */
		if (r.recal_len == 0 || r.recal_len > len - HEAD_LEN - 8)
			return refuse(why, why_size, -EINVAL,
				      "lengths do not add up to the record's "
				      "size");
		tail = r.recal_len + 4;
		r.recal = (const unsigned char *)buf + len - 8 - r.recal_len;
	}
	if ((flags & 4) && r.has_ring) {
		const unsigned char *q =
		    (const unsigned char *)buf + len - 8 - tail;
		r.average_len = (size_t)get(&q, 4);
		/* the exact size is checked with the others below */
		if (r.average_len == 0 || r.average_len > len / 2)
			return refuse(why, why_size, -EINVAL,
				      "lengths do not add up to the record's "
				      "size");
		tail += 2 * r.average_len + 8 + 4;
	}
	/* the adapter's bytes: all of them, or what the runs leave */
	size_t fixed = HEAD_LEN + hlen + r.key_len + 4 * r.count + 4 + tail;
	size_t abytes =
	    runs ? (len >= fixed ? len - fixed : 0) : 4 * r.adapter_len;
	if (fixed + abytes != len || (runs && abytes < 12))
		return refuse(why, why_size, -EINVAL,
			      "lengths do not add up to the record's size");
	if (r.model_hash != host->model_hash)
		return refuse(why, why_size, -EPROTO,
			      "made with another model (model file checksum "
			      "differs)");
	if (r.next_offset < 0 || r.partition < 0)
		return refuse(why, why_size, -EINVAL,
			      "negative partition or offset");
	if (hlen >= DC_CHANGELOG_HOST_MAX)
		return refuse(why, why_size, -EINVAL, "host name too long");
	memcpy(r.host, p, hlen);
	p += hlen;
	if (r.kind == DC_CHANGELOG_MARK) {
		*ret = r;
		return 0;
	}
	if (r.key_len == 0)
		return refuse(why, why_size, -EINVAL, "empty series key");
	if (r.adapter_len && r.adapter_len != host->adapter_len)
		return refuse(why, why_size, -EPROTO,
			      "adapter of another layout (length differs)");
	if (r.has_ring && (r.step <= 0 || r.position < (int64_t)r.count))
		return refuse(why, why_size, -EINVAL,
			      "recent values out of range");
	if (!r.has_ring && r.count)
		return refuse(why, why_size, -EINVAL, "values without a ring");
	size_t avg_floats = (r.average_len + 1) / 2; /* u16 pairs */
	if (scratch && r.adapter_len + r.count + avg_floats > cap)
		return refuse(why, why_size, -ENOBUFS,
			      "more recent values than this host keeps");
	r.key = (const char *)p;
	p += r.key_len;
	float *a = scratch, *v = scratch ? scratch + r.adapter_len : NULL;
	if (runs) {
		const unsigned char *q = p;
		r.base_hash = get(&q, 8);
		if (r.base_hash != host->base_hash || !host->base)
			return refuse(why, why_size, -EPROTO,
				      "made from another base adapter "
				      "(ttt.seed differs)");
		if (!get_runs(q, p + abytes, r.adapter_len, host->base, a))
			return refuse(why, why_size, -EINVAL,
				      "adapter runs out of range or "
				      "non-finite");
		p += abytes;
	} else if (!get_floats(&p, r.adapter_len, a)) {
		return refuse(why, why_size, -EINVAL,
			      "non-finite adapter weight or value");
	}
	if (!get_floats(&p, r.count, v))
		return refuse(why, why_size, -EINVAL,
			      "non-finite adapter weight or value");
	if (r.average_len) {
		uint16_t *av =
		    scratch ? (uint16_t *)(void *)(v + r.count) : NULL;
		for (size_t i = 0; i < r.average_len; i++) {
			uint16_t h = (uint16_t)get(&p, 2);
			if ((h & 0x7c00u) == 0x7c00u) /* inf or NaN */
				return refuse(why, why_size, -EINVAL,
					      "non-finite published average");
			if (av)
				av[i] = h;
		}
		r.average = av;
		r.average_version = get(&p, 8);
	}
	r.adapter = r.adapter_len ? a : NULL;
	r.values = v;
	*ret = r;
	return 0;
}

uint64_t dc_changelog_floats_hash(const float *f, size_t n)
{
	return dc_changelog_model_hash(f, n * sizeof(float));
}

uint64_t dc_changelog_model_hash(const void *bytes, size_t n)
{
	return fc_fnv1a(FC_FNV1A_INIT, bytes, n);
}

long dc_changelog_pick(const int64_t *next, size_t n, int64_t start,
		       int64_t consistent)
{
	long best = -1;
	if (start < 0 || consistent != start)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (next[i] <= start)
			best = (long)i;
	return best;
}
