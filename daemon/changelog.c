/*
 * The state topic's record format (daemon/changelog.h): encoding and the
 * checked decoding every record goes through before it is restored.
 *
 * Layout (little-endian): "DCS1", kind u8, flags u8 (1: ring present),
 * u16 0, model_hash u64, partition i32, next_offset i64, made_at_ms i64,
 * host_len u16, key_len u16, version u64, parent i64, adapter_len u32,
 * last_ts i64, step i64, position i64, since_adapt i64, adaptations u64,
 * count u32, host bytes, key bytes, adapter f32[adapter_len], values
 * f32[count], crc32 u32 of every byte before it.
 */
#include "daemon/changelog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

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

size_t dc_changelog_size(const struct dc_changelog_rec *rec)
{
	size_t n = HEAD_LEN + host_len(rec) + 4;
	if (rec->kind == DC_CHANGELOG_STATE)
		n += rec->key_len + 4 * ((rec->adapter ? rec->adapter_len : 0) +
					 (rec->has_ring ? rec->count : 0));
	return n;
}

size_t dc_changelog_encode(const struct dc_changelog_rec *rec, void *buf,
			   size_t cap)
{
	size_t n = dc_changelog_size(rec);
	bool state = rec->kind == DC_CHANGELOG_STATE;
	size_t alen = state && rec->adapter ? rec->adapter_len : 0;
	size_t count = state && rec->has_ring ? rec->count : 0;
	size_t klen = state ? rec->key_len : 0;
	if (n > cap || klen > 65535 || alen > UINT32_MAX || count > UINT32_MAX)
		return 0;
	struct wr w = {buf};
	memcpy(w.p, MAGIC, 4);
	w.p += 4;
	put(&w, (uint64_t)rec->kind, 1);
	put(&w, state && rec->has_ring ? 1 : 0, 1);
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
	put_floats(&w, rec->adapter, alen);
	put_floats(&w, rec->values, count);
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

int dc_changelog_decode(const void *buf, size_t len, uint64_t model_hash,
			size_t adapter_len, float *scratch, size_t cap,
			struct dc_changelog_rec *ret, char *why,
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
	if (HEAD_LEN + hlen + r.key_len + 4 * (r.adapter_len + r.count) + 4 !=
	    len)
		return refuse(why, why_size, -EINVAL,
			      "lengths do not add up to the record's size");
	if (r.model_hash != model_hash)
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
	if (r.adapter_len && r.adapter_len != adapter_len)
		return refuse(why, why_size, -EPROTO,
			      "adapter of another layout (length differs)");
	if (r.has_ring && (r.step <= 0 || r.position < (int64_t)r.count))
		return refuse(why, why_size, -EINVAL,
			      "recent values out of range");
	if (!r.has_ring && r.count)
		return refuse(why, why_size, -EINVAL, "values without a ring");
	if (scratch && r.adapter_len + r.count > cap)
		return refuse(why, why_size, -ENOBUFS,
			      "more recent values than this host keeps");
	r.key = (const char *)p;
	p += r.key_len;
	float *a = scratch, *v = scratch ? scratch + r.adapter_len : NULL;
	if (!get_floats(&p, r.adapter_len, a) || !get_floats(&p, r.count, v))
		return refuse(why, why_size, -EINVAL,
			      "non-finite adapter weight or value");
	r.adapter = r.adapter_len ? a : NULL;
	r.values = v;
	*ret = r;
	return 0;
}

uint64_t dc_changelog_model_hash(const void *bytes, size_t n)
{
	const unsigned char *p = bytes;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
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
