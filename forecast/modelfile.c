/*
 * Model files.  Little-endian, in this order:
 *
 *   magic       8 bytes "DCMODEL\0"
 *   version     u32 (FORMAT_VERSION)
 *   size        u64 length of the whole file in bytes
 *   config      12 x i32: backbone lookback horizon patch_len patch_stride
 *               d_model n_layers n_heads d_ff lora_rank mask_seg, and
 *               mask_ratio as f32 bits
 *   scaler      u32 n, then n x (f32 mean, f32 std, u8 len, len bytes name)
 *   tensors     u32 count, then count x (u8 kind, u8 layer, u64 offset,
 *               u64 length, 24-byte NUL-padded name), offsets in floats
 *   weights     u64 n_params, then n_params x f32
 *   checksum    u32 CRC-32 (zlib) of every byte before it
 *
 * The whole file is built in memory and written to PATH.tmp, then renamed,
 * so a crash never leaves a half-written model under the real name.
 */
#include "forecast/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FORMAT_VERSION 1u
#define MAGIC	       "DCMODEL"
#define NAME_LEN       24

struct wbuf {
	unsigned char *p;
	size_t n, cap;
	int oom;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (w->oom)
		return;
	if (w->n + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->n + n)
			cap *= 2;
		unsigned char *q = realloc(w->p, cap);
		if (!q) {
			w->oom = 1;
			return;
		}
		w->p = q, w->cap = cap;
	}
	memcpy(w->p + w->n, src, n);
	w->n += n;
}

static void put_u32(struct wbuf *w, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8),
			      (unsigned char)(v >> 16),
			      (unsigned char)(v >> 24)};
	put(w, b, 4);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
	put_u32(w, (uint32_t)v);
	put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(struct wbuf *w, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	put_u32(w, u);
}

static void put_u8(struct wbuf *w, unsigned v)
{
	unsigned char b = (unsigned char)v;
	put(w, &b, 1);
}

int fc_model_save(const struct fc_model *m, const char *path, char *errbuf,
		  size_t errbuf_size)
{
	struct wbuf w = {0};
	const struct fc_config *c = &m->cfg;
	const struct nn_layout *lo = &m->lo;
	put(&w, MAGIC, 8);
	put_u32(&w, FORMAT_VERSION);
	put_u64(&w, 0); /* file size, patched below */
	int32_t ci[11] = {c->backbone,	c->lookback,	 c->horizon,
			  c->patch_len, c->patch_stride, c->d_model,
			  c->n_layers,	c->n_heads,	 c->d_ff,
			  c->lora_rank, c->mask_seg};
	for (int i = 0; i < 11; i++)
		put_u32(&w, (uint32_t)ci[i]);
	put_f32(&w, c->mask_ratio);
	put_u32(&w, (uint32_t)m->n_ch);
	for (int i = 0; i < m->n_ch; i++) {
		size_t len = strlen(m->names[i]);
		put_f32(&w, m->mean[i]);
		put_f32(&w, m->std[i]);
		put_u8(&w, (unsigned)len);
		put(&w, m->names[i], len);
	}
	uint32_t count = 0;
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++)
			count += lo->len[k][l] > 0;
	put_u32(&w, count);
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			if (!lo->len[k][l])
				continue;
			char name[NAME_LEN] = {0};
			snprintf(name, sizeof(name), "%s", nn_tensor_name(k));
			put_u8(&w, (unsigned)k);
			put_u8(&w, (unsigned)l);
			put_u64(&w, lo->off[k][l]);
			put_u64(&w, lo->len[k][l]);
			put(&w, name, NAME_LEN);
		}
	put_u64(&w, lo->n_params);
	for (size_t i = 0; i < lo->n_params; i++)
		put_f32(&w, m->params[i]);
	if (!w.oom) {
		uint64_t total = w.n + 4;
		for (int i = 0; i < 8; i++)
			w.p[12 + i] = (unsigned char)(total >> (8 * i));
		put_u32(&w, (uint32_t)crc32(0L, w.p, (uInt)w.n));
	}
	if (w.oom) {
		free(w.p);
		return fc_fail(errbuf, errbuf_size, -ENOMEM, "out of memory");
	}

	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		free(w.p);
		return fc_fail(errbuf, errbuf_size, -ENAMETOOLONG,
			       "%s: path too long", path);
	}
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		int e = errno;
		free(w.p);
		return fc_fail(errbuf, errbuf_size, -e, "%s: %s", tmp,
			       strerror(e));
	}
	size_t wr = fwrite(w.p, 1, w.n, f);
	int e = ferror(f) ? errno : 0;
	if (fclose(f) != 0 && !e)
		e = errno ? errno : EIO;
	free(w.p);
	if (wr != w.n || e) {
		remove(tmp);
		return fc_fail(errbuf, errbuf_size, -(e ? e : EIO),
			       "%s: write failed: %s", tmp,
			       strerror(e ? e : EIO));
	}
	if (rename(tmp, path) != 0) {
		e = errno;
		remove(tmp);
		return fc_fail(errbuf, errbuf_size, -e, "%s: %s", path,
			       strerror(e));
	}
	return 0;
}

struct rbuf {
	const unsigned char *p;
	size_t n, pos;
	int short_read;
};

static int get(struct rbuf *r, void *dst, size_t n)
{
	if (r->short_read || r->n - r->pos < n) {
		r->short_read = 1;
		memset(dst, 0, n);
		return -1;
	}
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
	return 0;
}

static uint32_t get_u32(struct rbuf *r)
{
	unsigned char b[4];
	get(r, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t get_u64(struct rbuf *r)
{
	uint64_t lo = get_u32(r);
	return lo | (uint64_t)get_u32(r) << 32;
}

static float get_f32(struct rbuf *r)
{
	uint32_t u = get_u32(r);
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static unsigned get_u8(struct rbuf *r)
{
	unsigned char b = 0;
	get(r, &b, 1);
	return b;
}

static int parse(const char *path, const unsigned char *buf, size_t n,
		 struct fc_model **ret, char *eb, size_t es)
{
	struct rbuf r = {buf, n, 0, 0};
	char magic[8];
	if (n < 8 + 4 + 8 + 4)
		return fc_fail(eb, es, -EINVAL,
			       "%s: truncated (%zu bytes, not a model file)",
			       path, n);
	get(&r, magic, 8);
	if (memcmp(magic, MAGIC, 8))
		return fc_fail(eb, es, -EINVAL,
			       "%s: not a driftcast model file (wrong magic)",
			       path);
	uint32_t version = get_u32(&r);
	if (version > FORMAT_VERSION)
		return fc_fail(eb, es, -EINVAL,
			       "%s: format version %u is newer than this build "
			       "reads (%u); upgrade driftcast",
			       path, version, FORMAT_VERSION);
	if (version == 0)
		return fc_fail(eb, es, -EINVAL, "%s: invalid format version 0",
			       path);
	uint64_t size = get_u64(&r);
	if (size != n)
		return fc_fail(eb, es, -EINVAL,
			       "%s: %s: %zu bytes, the header says %llu", path,
			       n < size ? "truncated" : "trailing bytes", n,
			       (unsigned long long)size);
	uint32_t stored = (uint32_t)buf[n - 4] | (uint32_t)buf[n - 3] << 8 |
			  (uint32_t)buf[n - 2] << 16 |
			  (uint32_t)buf[n - 1] << 24;
	uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(n - 4));
	struct fc_config c;
	memset(&c, 0, sizeof(c));
	int32_t ci[11];
	for (int i = 0; i < 11; i++)
		ci[i] = (int32_t)get_u32(&r);
	c.backbone = ci[0], c.lookback = ci[1], c.horizon = ci[2];
	c.patch_len = ci[3], c.patch_stride = ci[4], c.d_model = ci[5];
	c.n_layers = ci[6], c.n_heads = ci[7], c.d_ff = ci[8];
	c.lora_rank = ci[9], c.mask_seg = ci[10];
	c.mask_ratio = get_f32(&r);
	uint32_t nch = get_u32(&r);
	if (r.short_read)
		return fc_fail(eb, es, -EINVAL, "%s: truncated in the header",
			       path);
	if (crc != stored) {
		/* a truncated file also fails the checksum: say which */
		return fc_fail(eb, es, -EINVAL,
			       "%s: checksum mismatch (stored %08x, computed "
			       "%08x): the file is truncated or corrupt",
			       path, stored, crc);
	}
	char why[256];
	if (fc_config_check(&c, why, sizeof(why)) < 0)
		return fc_fail(eb, es, -EINVAL, "%s: invalid config: %s", path,
			       why);
	/* each channel takes at least 9 bytes (mean, std, name length):
	 * refuse a count the file cannot hold before allocating for it */
	if (nch > 100000 || (uint64_t)nch * 9 > n - r.pos)
		return fc_fail(eb, es, -EINVAL,
			       "%s: %u scaler channels do not fit in %zu bytes",
			       path, nch, n);
	/* the weights alone must fit in the file before anything is
	 * allocated for them */
	struct nn_layout lo;
	nn_layout(&lo, &c);
	if (lo.n_params > n / 4)
		return fc_fail(
		    eb, es, -EINVAL,
		    "%s: %zu bytes cannot hold the %zu weights of its "
		    "config",
		    path, n, lo.n_params);
	struct fc_model *m;
	if (fc_model_alloc(&c, &m) < 0)
		return fc_fail(eb, es, -ENOMEM, "out of memory");
	float *mean = calloc(nch + 1, sizeof(float));
	float *std = calloc(nch + 1, sizeof(float));
	char(*names)[FC_NAME_MAX] = calloc(nch + 1, FC_NAME_MAX);
	const char **np = calloc(nch + 1, sizeof(char *));
	int ret_code = 0;
	if (!mean || !std || !names || !np) {
		ret_code = fc_fail(eb, es, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < nch; i++) {
		mean[i] = get_f32(&r);
		std[i] = get_f32(&r);
		unsigned len = get_u8(&r);
		if (len >= FC_NAME_MAX) {
			/* the writer never makes one: reading on would
			 * misplace every later field */
			ret_code =
			    fc_fail(eb, es, -EINVAL,
				    "%s: name of scaler channel %u is %u "
				    "bytes (at most %d)",
				    path, i, len, FC_NAME_MAX - 1);
			goto out;
		}
		get(&r, names[i], len);
		np[i] = names[i];
		if (!isfinite(mean[i]) || !isfinite(std[i]) ||
		    !(std[i] > 0.0f)) {
			ret_code = fc_fail(
			    eb, es, -EINVAL,
			    "%s: scaler of channel %u is invalid", path, i);
			goto out;
		}
	}
	uint32_t count = get_u32(&r), want = 0;
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++)
			want += m->lo.len[k][l] > 0;
	if (r.short_read || count != want) {
		ret_code =
		    fc_fail(eb, es, -EINVAL,
			    "%s: tensor table has %u entries, the config "
			    "needs %u",
			    path, count, want);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		unsigned k = get_u8(&r), l = get_u8(&r);
		uint64_t off = get_u64(&r), len = get_u64(&r);
		char name[NAME_LEN + 1] = {0};
		get(&r, name, NAME_LEN);
		if (r.short_read || k >= T_COUNT || l >= FC_MAX_LAYERS ||
		    m->lo.len[k][l] != len || m->lo.off[k][l] != off ||
		    strcmp(name, nn_tensor_name((int)k))) {
			/* the name is the file's bytes: printable only, so
			 * the reason stays one readable line in the log */
			for (char *q = name; *q; q++)
				if ((unsigned char)*q < 0x20 ||
				    (unsigned char)*q > 0x7e)
					*q = '?';
			ret_code =
			    fc_fail(eb, es, -EINVAL,
				    "%s: tensor %u (%s) does not match the "
				    "config",
				    path, i, name);
			goto out;
		}
	}
	uint64_t np_count = get_u64(&r);
	if (np_count != m->lo.n_params || r.n - r.pos != np_count * 4 + 4) {
		ret_code =
		    fc_fail(eb, es, -EINVAL,
			    "%s: %llu weights stored, the config needs %zu",
			    path, (unsigned long long)np_count, m->lo.n_params);
		goto out;
	}
	for (size_t i = 0; i < m->lo.n_params; i++) {
		m->params[i] = get_f32(&r);
		if (!isfinite(m->params[i])) {
			ret_code = fc_fail(eb, es, -EINVAL,
					   "%s: non-finite weight at index %zu",
					   path, i);
			goto out;
		}
	}
	m->n_ch = (int)nch;
	m->mean = mean, m->std = std, m->names = names, m->name_ptrs = np;
	*ret = m;
	return 0;
out:
	free(mean), free(std), free(names), free(np);
	fc_model_free(m);
	return ret_code;
}

int fc_model_load_buffer(const void *buf, size_t n, const char *name,
			 struct fc_model **ret, char *errbuf,
			 size_t errbuf_size)
{
	return parse(name ? name : "model", buf, n, ret, errbuf, errbuf_size);
}

int fc_model_load(const char *path, struct fc_model **ret, char *errbuf,
		  size_t errbuf_size)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		return fc_fail(errbuf, errbuf_size, -e, "%s: %s", path,
			       strerror(e));
	}
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			if (cap > (size_t)1 << 32) {
				free(buf);
				fclose(f);
				return fc_fail(errbuf, errbuf_size, -EFBIG,
					       "%s: too large", path);
			}
			unsigned char *q = realloc(buf, cap);
			if (!q) {
				free(buf);
				fclose(f);
				return fc_fail(errbuf, errbuf_size, -ENOMEM,
					       "out of memory");
			}
			buf = q;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
		/* not a model file: said from its first bytes, not after
		 * reading (and holding) all of it -- /dev/zero has no end */
		if (n >= 8 && memcmp(buf, MAGIC, 8))
			break;
	}
	int e = ferror(f) ? EIO : 0;
	fclose(f);
	if (e) {
		free(buf);
		return fc_fail(errbuf, errbuf_size, -e, "%s: read error", path);
	}
	int r = parse(path, buf, n, ret, errbuf, errbuf_size);
	free(buf);
	return r;
}
