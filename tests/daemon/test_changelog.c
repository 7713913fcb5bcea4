/* The state topic's records (daemon/changelog.c) and the restore rule:
 * a record survives encode/decode bit for bit; a damaged record, one of
 * another model or adapter layout is refused with a reason; and which
 * state a partition's series continue from when this host's database is
 * staler than the topic, and the reverse. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "daemon/daemon.h"

#define A 6
#define R 5

static const float adapter[A] = {0.5f, -1.25f, 2.0f, 0.0f, 3.5f, -0.75f};
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
	cr_assert_eq(dc_changelog_decode(buf, n, 42, A, scratch, A + R, &d, why,
					 sizeof(why)),
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
	cr_assert_eq(dc_changelog_decode(buf, n, 42, A, NULL, 0, &d, NULL, 0),
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
	cr_assert_eq(dc_changelog_decode(buf, n, 43, A, scratch, A + R, &d, why,
					 sizeof(why)),
		     -EPROTO);
	cr_assert(strstr(why, "another model"), "%s", why);
	/* another adapter layout */
	cr_assert_eq(dc_changelog_decode(buf, n, 42, A + 1, scratch, A + R, &d,
					 why, sizeof(why)),
		     -EPROTO);
	cr_assert(strstr(why, "layout"), "%s", why);
	/* more values than this host's ring */
	cr_assert_eq(dc_changelog_decode(buf, n, 42, A, scratch, A + R - 1, &d,
					 why, sizeof(why)),
		     -ENOBUFS);
	/* one bit flipped anywhere: the checksum */
	for (size_t i = 0; i < n; i += 7) {
		buf[i] ^= 0x10;
		int e = dc_changelog_decode(buf, n, 42, A, scratch, A + R, &d,
					    why, sizeof(why));
		cr_assert(e == -EBADMSG || (i < 4 && e == -EINVAL),
			  "byte %zu: %d %s", i, e, why);
		buf[i] ^= 0x10;
	}
	/* truncated, empty, not ours */
	cr_assert_eq(dc_changelog_decode(buf, n - 9, 42, A, scratch, A + R, &d,
					 why, sizeof(why)),
		     -EBADMSG);
	cr_assert_eq(dc_changelog_decode(buf, 0, 42, A, scratch, A + R, &d, why,
					 sizeof(why)),
		     -EINVAL);
	cr_assert_eq(dc_changelog_decode("{\"series\":\"s1\"}", 16, 42, A,
					 scratch, A + R, &d, why, sizeof(why)),
		     -EINVAL);
	cr_assert(strstr(why, "not a driftcast state record"), "%s", why);
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
