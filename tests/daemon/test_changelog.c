/* The state topic's records (daemon/changelog.c) and the restore rule:
 * a record survives encode/decode bit for bit; a damaged record, one of
 * another model or adapter layout is refused with a reason; and which
 * state a partition's series continue from when this host's database is
 * staler than the topic, and the reverse. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "daemon/daemon.h"

#define A 6
#define R 5

static const float adapter[A] = {0.5f, -1.25f, 2.0f, 0.0f, 3.5f, -0.75f};
/* the host the records are read on: model 42, layout A, no base adapter
 * (the records below carry every float) */
static const struct dc_changelog_host host42 = {.model_hash = 42,
						.adapter_len = A};
static const struct dc_changelog_host host43 = {.model_hash = 43,
						.adapter_len = A};
static const struct dc_changelog_host host42_wide = {.model_hash = 42,
						     .adapter_len = A + 1};
static const float ring[R] = {10.0f, 11.0f, 12.5f, 13.0f, 14.25f};

static size_t encode_state(unsigned char *buf, size_t cap, uint64_t model)
{
	struct dc_changelog_rec rec = {
	    .kind = DC_CHANGELOG_STATE,
	    .model_hash = model,
	    .partition = 3,
	    .next_offset = 1200,
	    .made_at_ms = 1700000000000,
	    .host = "host-a",
	    .key = "site1/meter7",
	    .key_len = strlen("site1/meter7"),
	    .version = 7,
	    .parent = 6,
	    .adapter = adapter,
	    .adapter_len = A,
	    .has_ring = true,
	    .last_ts = 1700003600,
	    .step = 3600,
	    .position = 96,
	    .since_adapt = 3,
	    .adaptations = 9,
	    .values = ring,
	    .count = R,
	};
	return dc_changelog_encode(&rec, buf, cap);
}

Test(changelog, a_state_round_trips)
{
	unsigned char buf[512];
	float scratch[A + R];
	char why[160];
	struct dc_changelog_rec d;
	size_t n = encode_state(buf, sizeof(buf), 42);
	cr_assert_gt(n, 0);
	cr_assert_eq(dc_changelog_decode(buf, n, &host42, scratch, A + R, &d,
					 why, sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(d.kind, DC_CHANGELOG_STATE);
	cr_assert_eq(d.partition, 3);
	cr_assert_eq(d.next_offset, 1200);
	cr_assert_str_eq(d.host, "host-a");
	cr_assert_eq(d.key_len, strlen("site1/meter7"));
	cr_assert_eq(memcmp(d.key, "site1/meter7", d.key_len), 0);
	cr_assert_eq(d.version, 7);
	cr_assert_eq(d.parent, 6);
	cr_assert_eq(d.adapter_len, A);
	cr_assert_eq(memcmp(d.adapter, adapter, sizeof(adapter)), 0);
	cr_assert(d.has_ring);
	cr_assert_eq(d.last_ts, 1700003600);
	cr_assert_eq(d.step, 3600);
	cr_assert_eq(d.position, 96);
	cr_assert_eq(d.since_adapt, 3);
	cr_assert_eq(d.adaptations, 9);
	cr_assert_eq(d.count, R);
	cr_assert_eq(memcmp(d.values, ring, sizeof(ring)), 0);
	/* too small a buffer: nothing written */
	cr_assert_eq(encode_state(buf, n - 1, 42), 0);
}

Test(changelog, a_mark_round_trips)
{
	unsigned char buf[256];
	struct dc_changelog_rec m = {.kind = DC_CHANGELOG_MARK,
				     .model_hash = 42,
				     .partition = 1,
				     .next_offset = 77,
				     .host = "b"},
				d;
	size_t n = dc_changelog_encode(&m, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq(dc_changelog_decode(buf, n, &host42, NULL, 0, &d, NULL, 0),
		     0);
	cr_assert_eq(d.kind, DC_CHANGELOG_MARK);
	cr_assert_eq(d.next_offset, 77);
	cr_assert_eq(d.partition, 1);
}

Test(changelog, bad_records_are_refused_with_a_reason)
{
	unsigned char buf[512];
	float scratch[A + R];
	char why[160] = "";
	struct dc_changelog_rec d;
	size_t n = encode_state(buf, sizeof(buf), 42);

	/* another model */
	cr_assert_eq(dc_changelog_decode(buf, n, &host43, scratch, A + R, &d,
					 why, sizeof(why)),
		     -EPROTO);
	cr_assert(strstr(why, "another model"), "%s", why);
	/* another adapter layout */
	cr_assert_eq(dc_changelog_decode(buf, n, &host42_wide, scratch, A + R,
					 &d, why, sizeof(why)),
		     -EPROTO);
	cr_assert(strstr(why, "layout"), "%s", why);
	/* more values than this host's ring */
	cr_assert_eq(dc_changelog_decode(buf, n, &host42, scratch, A + R - 1,
					 &d, why, sizeof(why)),
		     -ENOBUFS);
	/* one bit flipped anywhere: the checksum */
	for (size_t i = 0; i < n; i += 7) {
		buf[i] ^= 0x10;
		int e = dc_changelog_decode(buf, n, &host42, scratch, A + R, &d,
					    why, sizeof(why));
		cr_assert(e == -EBADMSG || (i < 4 && e == -EINVAL),
			  "byte %zu: %d %s", i, e, why);
		buf[i] ^= 0x10;
	}
	/* truncated, empty, not ours */
	cr_assert_eq(dc_changelog_decode(buf, n - 9, &host42, scratch, A + R,
					 &d, why, sizeof(why)),
		     -EBADMSG);
	cr_assert_eq(dc_changelog_decode(buf, 0, &host42, scratch, A + R, &d,
					 why, sizeof(why)),
		     -EINVAL);
	cr_assert_eq(dc_changelog_decode("{\"series\":\"s1\"}", 16, &host42,
					 scratch, A + R, &d, why, sizeof(why)),
		     -EINVAL);
	cr_assert(strstr(why, "not a driftcast state record"), "%s", why);
}

/* ---- an adapter as runs over the base adapter -----------------------------
 */

/* the fixed head of a record (daemon/changelog.c's layout) */
#define HEAD_LEN_FOR_TEST 104
#define BIG		  4096 /* floats: a d = 64 GRU's block is ~6000 */

static float big_base[BIG], big_adapter[BIG];

/* A base of distinct values and an adapter that differs from it in two
 * runs (the shape of a series that adapted one family), one of them with
 * a float equal to the base inside (merged into the run), plus -0.0 over
 * +0.0 (a different bit pattern: must travel). */
static void big_setup(void)
{
	for (int i = 0; i < BIG; i++)
		big_base[i] = big_adapter[i] = (float)i * 0.25f;
	big_base[0] = big_adapter[0] = 0.0f;
	for (int i = 100; i < 300; i++)
		big_adapter[i] += 1.5f;
	big_adapter[200] = big_base[200];
	for (int i = BIG - 8; i < BIG; i++)
		big_adapter[i] = -big_adapter[i];
	big_adapter[0] = -0.0f;
}

/* The state of series "s" with the big adapter, over base (NULL: every
 * float carried). */
static struct dc_changelog_rec big_rec(const float *base, uint64_t base_hash)
{
	return (struct dc_changelog_rec){
	    .kind = DC_CHANGELOG_STATE,
	    .model_hash = 42,
	    .partition = 0,
	    .next_offset = 10,
	    .host = "h",
	    .key = "s",
	    .key_len = 1,
	    .version = 3,
	    .parent = 2,
	    .adapter = big_adapter,
	    .adapter_len = BIG,
	    .base = base,
	    .base_hash = base_hash,
	    .has_ring = true,
	    .last_ts = 1,
	    .step = 1,
	    .position = R,
	    .values = ring,
	    .count = R,
	};
}

static size_t encode_big(unsigned char *buf, size_t cap, const float *base,
			 uint64_t base_hash)
{
	struct dc_changelog_rec rec = big_rec(base, base_hash);
	return dc_changelog_encode(&rec, buf, cap);
}

/* A record's checksum made good again after an edit. */
static void re_crc(unsigned char *buf, size_t n)
{
	uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(n - 4));
	for (int i = 0; i < 4; i++)
		buf[n - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
}

/* big_setup(), and the host that reads records made over big_base. */
static struct dc_changelog_host big_host(void)
{
	big_setup();
	return (struct dc_changelog_host){
	    .model_hash = 42,
	    .adapter_len = BIG,
	    .base = big_base,
	    .base_hash = dc_changelog_floats_hash(big_base, BIG)};
}

Test(changelog, an_adapter_travels_as_its_runs_over_the_base)
{
	static unsigned char buf[4 * BIG + 512], dense[4 * BIG + 512];
	static float scratch[BIG + R];
	char why[160] = "";
	struct dc_changelog_rec d;
	struct dc_changelog_host host = big_host();
	uint64_t h = host.base_hash;
	size_t n = encode_big(buf, sizeof(buf), big_base, h);
	size_t nd = encode_big(dense, sizeof(dense), NULL, 0);
	cr_assert_gt(n, 0);
	/* 209 floats differ: the record carries them, not the 4096 */
	cr_assert_lt(n, 4 * 220 + 200, "%zu bytes", n);
	cr_assert_gt(nd, 4 * BIG);
	/* both decode to the same block, bit for bit (-0.0 included) */
	for (int k = 0; k < 2; k++) {
		memset(scratch, 0x7f, sizeof(scratch));
		cr_assert_eq(dc_changelog_decode(k ? dense : buf, k ? nd : n,
						 &host, scratch, BIG + R, &d,
						 why, sizeof(why)),
			     0, "%s", why);
		cr_assert_eq(
		    memcmp(d.adapter, big_adapter, sizeof(big_adapter)), 0);
		cr_assert_eq(memcmp(d.values, ring, sizeof(ring)), 0);
	}
	cr_assert(signbit(d.adapter[0]));
	/* told where the adapter may differ (the engine's active families),
	 * the encoder looks only there: the same bytes */
	static unsigned char seg[4 * BIG + 512];
	size_t off[3] = {0, 90, BIG - 8}, len[3] = {1, 300, 8};
	struct dc_changelog_rec rec;
	cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch, BIG + R, &rec,
					 why, sizeof(why)),
		     0);
	rec.adapter = big_adapter;
	rec.base = big_base;
	rec.base_hash = h;
	rec.seg_off = off;
	rec.seg_len = len;
	rec.nseg = 3;
	cr_assert_eq(dc_changelog_encode(&rec, seg, sizeof(seg)), n);
	cr_assert_eq(memcmp(seg, buf, n), 0);
	/* the adapter equal to the base: no runs at all */
	memcpy(big_adapter, big_base, sizeof(big_base));
	size_t n0 = encode_big(buf, sizeof(buf), big_base, h);
	cr_assert_lt(n0, 4 * R + 200);
	cr_assert_eq(dc_changelog_decode(buf, n0, &host, scratch, BIG + R, &d,
					 why, sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(memcmp(d.adapter, big_base, sizeof(big_base)), 0);
}

Test(changelog, runs_over_another_base_or_out_of_range_are_refused)
{
	static unsigned char buf[4 * BIG + 512];
	static float scratch[BIG + R], other[BIG];
	char why[160] = "";
	struct dc_changelog_rec d;
	big_setup();
	uint64_t h = dc_changelog_floats_hash(big_base, BIG);
	size_t n = encode_big(buf, sizeof(buf), big_base, h);
	/* a reader whose base differs (another ttt.seed) */
	memcpy(other, big_base, sizeof(other));
	other[7] = 99.0f;
	struct dc_changelog_host host = {
	    .model_hash = 42,
	    .adapter_len = BIG,
	    .base = other,
	    .base_hash = dc_changelog_floats_hash(other, BIG)};
	cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch, BIG + R, &d,
					 why, sizeof(why)),
		     -EPROTO);
	cr_assert(strstr(why, "base adapter"), "%s", why);
	/* a run that leaves the block, with a valid checksum: refused */
	host.base = big_base;
	host.base_hash = h;
	size_t at = HEAD_LEN_FOR_TEST + strlen("h") + 1 + 8 + 4; /* 1st run */
	buf[at + 1] = 0x10; /* its offset 0 -> 4096: past the block */
	re_crc(buf, n);
	cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch, BIG + R, &d,
					 why, sizeof(why)),
		     -EINVAL);
	cr_assert(strstr(why, "out of range"), "%s", why);
}

/* ---- the published average ---------------------------------------------- */

static const uint16_t big_avg[3] = {0x2e66, 0x8000, 0xb3ff};

/* With and without runs over the base (whose length the decoder derives
 * from the record's size), the average travels bit for bit with its
 * version; a record without one (an older writer's) decodes as none. */
Test(changelog, the_published_average_travels_with_the_ring)
{
	static unsigned char buf[4 * BIG + 512];
	static float scratch[BIG + R + 2];
	char why[160] = "";
	struct dc_changelog_rec d;
	struct dc_changelog_host host = big_host();
	uint64_t h = host.base_hash;
	for (int k = 0; k < 2; k++) {
		struct dc_changelog_rec rec =
		    big_rec(k ? big_base : NULL, k ? h : 0);
		rec.average = big_avg;
		rec.average_len = 3;
		rec.average_version = 3;
		size_t n = dc_changelog_encode(&rec, buf, sizeof(buf));
		cr_assert_gt(n, 0);
		cr_assert_eq(n, dc_changelog_size(&rec));
		cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R + 2, &d, why,
						 sizeof(why)),
			     0, "%s", why);
		cr_assert_eq(
		    memcmp(d.adapter, big_adapter, sizeof(big_adapter)), 0);
		cr_assert_eq(memcmp(d.values, ring, sizeof(ring)), 0);
		cr_assert_eq(d.average_len, 3);
		cr_assert_eq(d.average_version, 3);
		cr_assert_eq(memcmp(d.average, big_avg, sizeof(big_avg)), 0);
		/* no room for it in the scratch: refused, not overrun */
		cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R, &d, why, sizeof(why)),
			     -ENOBUFS);
		/* a non-finite half, checksum made good: refused */
		size_t at = n - 4 - 4 - 8 - 2 * 3; /* the first half */
		buf[at + 1] = 0x7c;
		re_crc(buf, n);
		cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R + 2, &d, why,
						 sizeof(why)),
			     -EINVAL);
		cr_assert(strstr(why, "published average"), "%s", why);
		/* a length that does not fit the record: refused (with runs,
		 * whose length is what the rest leaves, the runs no longer
		 * end where the values start) */
		n = dc_changelog_encode(&rec, buf, sizeof(buf));
		buf[n - 8] = 4;
		re_crc(buf, n);
		cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R + 2, &d, why,
						 sizeof(why)),
			     -EINVAL);
		cr_assert(
		    strstr(why, k ? "runs out of range" : "do not add up"),
		    "%s", why);
	}
	/* the records of before: no average */
	size_t n = encode_big(buf, sizeof(buf), big_base, h);
	cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch, BIG + R + 2,
					 &d, why, sizeof(why)),
		     0, "%s", why);
	cr_assert_null(d.average);
	cr_assert_eq(d.average_len, 0);
}

/* The recalibration's state travels with the ring (flag 8), byte for
 * byte, beside the published average or alone; a length that does not
 * fit is refused; a record without it decodes as before. */
Test(changelog, the_recalibration_travels_with_the_ring)
{
	static unsigned char buf[4 * BIG + 1024];
	static float scratch[BIG + R + 2];
	unsigned char rcl[301];
	char why[160] = "";
	struct dc_changelog_rec d;
	struct dc_changelog_host host = big_host();
	uint64_t h = host.base_hash;
	for (size_t i = 0; i < sizeof(rcl); i++)
		rcl[i] = (unsigned char)(i * 13 + 5);
	for (int k = 0; k < 4; k++) {
		struct dc_changelog_rec rec =
		    big_rec(k & 1 ? big_base : NULL, k & 1 ? h : 0);
		if (k & 2) {
			rec.average = big_avg;
			rec.average_len = 3;
			rec.average_version = 3;
		}
		rec.recal = rcl;
		rec.recal_len = sizeof(rcl);
		size_t n = dc_changelog_encode(&rec, buf, sizeof(buf));
		cr_assert_gt(n, 0);
		cr_assert_eq(n, dc_changelog_size(&rec));
		cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R + 2, &d, why,
						 sizeof(why)),
			     0, "%s", why);
		cr_assert_eq(
		    memcmp(d.adapter, big_adapter, sizeof(big_adapter)), 0);
		cr_assert_eq(memcmp(d.values, ring, sizeof(ring)), 0);
		cr_assert_eq(d.recal_len, sizeof(rcl));
		cr_assert_eq(memcmp(d.recal, rcl, sizeof(rcl)), 0);
		if (k & 2) {
			cr_assert_eq(d.average_len, 3);
			cr_assert_eq(d.average_version, 3);
			cr_assert_eq(
			    memcmp(d.average, big_avg, sizeof(big_avg)), 0);
		} else {
			cr_assert_null(d.average);
		}
		/* its length one more than the record holds: refused */
		buf[n - 8] = (unsigned char)(sizeof(rcl) + 1);
		buf[n - 7] = (unsigned char)((sizeof(rcl) + 1) >> 8);
		re_crc(buf, n);
		cr_assert_lt(dc_changelog_decode(buf, n, &host, scratch,
						 BIG + R + 2, &d, why,
						 sizeof(why)),
			     0);
	}
	/* the records of before: none */
	size_t n = encode_big(buf, sizeof(buf), big_base, h);
	cr_assert_eq(dc_changelog_decode(buf, n, &host, scratch, BIG + R + 2,
					 &d, why, sizeof(why)),
		     0, "%s", why);
	cr_assert_null(d.recal);
	cr_assert_eq(d.recal_len, 0);
}

/* ---- the restore rule --------------------------------------------------- */

/* A host comes back: its database applied up to 150, another host served
 * the partition since and committed 250, publishing states at 200 and 250
 * (and one at 300 whose commit did not land). */
Test(restore_rule, stale_local_state_and_a_newer_changelog)
{
	enum dc_start_from from;
	int64_t start = dc_kafka_start_offset(250, 150, &from);
	cr_assert_eq(start, 250);
	cr_assert_eq(from, DC_START_COMMITTED);
	int64_t consistent = 250; /* the commit */
	int64_t next[] = {100, 200, 250, 300};
	/* the state at 250, not this host's (150), not the one at 300 */
	cr_assert_eq(dc_changelog_pick(next, 4, start, consistent), 2);
	/* a series that changed last at 200 continues from that record
	 * (it had no message after 200: the state is exact at 250) */
	cr_assert_eq(dc_changelog_pick(next, 2, start, consistent), 1);
	/* only a record past the start: none (its messages are replayed;
	 * the series continues from the base adapter, numbering on) */
	int64_t ahead[] = {300};
	cr_assert_eq(dc_changelog_pick(ahead, 1, start, consistent), -1);
}

/* The reverse: this host's database applied up to 300, the group only
 * committed 250 (its last commit was refused); the topic holds older
 * states.  This host's own state wins. */
Test(restore_rule, local_state_newer_than_the_changelog)
{
	enum dc_start_from from;
	int64_t start = dc_kafka_start_offset(250, 300, &from);
	cr_assert_eq(start, 300);
	cr_assert_eq(from, DC_START_APPLIED);
	int64_t next[] = {100, 200, 250};
	cr_assert_eq(dc_changelog_pick(next, 3, start, 250), -1);
	/* ... unless the topic is consistent at the start (this host marked
	 * 300 when it handed the partition over, and the commit was
	 * refused): then every series' newest record is exact there and
	 * has the recent values, which the database has not */
	cr_assert_eq(dc_changelog_pick(next, 3, start, 300), 2);
	int64_t handed[] = {100, 300};
	cr_assert_eq(dc_changelog_pick(handed, 2, start, 300), 1);
}

Test(restore_rule, nothing_known)
{
	int64_t next[] = {5};
	cr_assert_eq(dc_changelog_pick(next, 1, -1, -1), -1);
	cr_assert_eq(dc_changelog_pick(next, 0, 10, 10), -1);
}
