/*
 * The state topic's records (daemon/changelog.c): one series' state, or a
 * partition's handover mark, as bytes and back.  Pure code, no I/O.
 *
 * A state record (Kafka key: the series key) carries what a new owner of
 * the series needs to continue it: the adapter block (none: the base
 * adapter), its version and parent, the model it belongs to, the input
 * partition and the offset its state reflects (every message below it
 * applied, none after), and the series' recent values and position.  A
 * handover mark (key DC_CHANGELOG_MARK_KEY) says that the partition's
 * state is complete in the topic up to its offset.  Little-endian, with a
 * CRC-32 over everything before it; docs/OPERATIONS.md has the layout.
 */
#ifndef DRIFTCAST_DAEMON_CHANGELOG_H
#define DRIFTCAST_DAEMON_CHANGELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DC_CHANGELOG_MARK_KEY "\001driftcast-handover-mark"
#define DC_CHANGELOG_HOST_MAX 64

enum dc_changelog_kind { DC_CHANGELOG_STATE = 1, DC_CHANGELOG_MARK = 2 };

struct dc_changelog_rec {
	int kind; /* enum dc_changelog_kind */
	uint64_t model_hash;
	int32_t partition;
	int64_t next_offset;
	int64_t made_at_ms; /* wall clock */
	char host[DC_CHANGELOG_HOST_MAX];
	/* DC_CHANGELOG_STATE only: */
	const char *key; /* into the decoded bytes */
	size_t key_len;
	uint64_t version;
	int64_t parent;	      /* -1: none */
	const float *adapter; /* [adapter_len], NULL: the base adapter */
	size_t adapter_len;
	/* Encoding: with base [adapter_len] (the writer's base adapter, of
	 * FNV-1a base_hash), only the runs of adapter that differ from it
	 * are written; NULL writes every float.  Decoding: base_hash of the
	 * record (0 when it carries every float). */
	const float *base;
	uint64_t base_hash;
	/* Encoding with base: where adapter may differ from it (nseg ranges
	 * of seg_off[i], seg_len[i] floats, in order); nseg 0: anywhere. */
	const size_t *seg_off, *seg_len;
	size_t nseg;
	bool has_ring;	       /* the fields below are set */
	int64_t last_ts, step; /* series time, ns (as the engine) */
	int64_t position, since_adapt;
	uint64_t adaptations;
	const float *values; /* [count], oldest first */
	size_t count;
	/* with has_ring: the published average (ttt_recent), NULL: none.
	 * Decoding, it takes (average_len + 1) / 2 floats of the scratch
	 * after the values. */
	const uint16_t *average;
	size_t average_len;
	uint64_t average_version;
	/* with has_ring: the recalibration's state (ttt_recent), NULL:
	 * none.  Decoding, it points into buf. */
	const void *recal;
	size_t recal_len;
};

/* The encoded size of rec. */
size_t dc_changelog_size(const struct dc_changelog_rec *rec);
/* Encode rec into buf (cap >= dc_changelog_size); returns the length, or
 * 0 when it does not fit. */
size_t dc_changelog_encode(const struct dc_changelog_rec *rec, void *buf,
			   size_t cap);

/* What a reading host checks a record against: its model file's hash,
 * its adapter layout (adapter_len floats) and its base adapter (base
 * [adapter_len] of hash base_hash: a record that carries only what
 * differs from the writer's base must have been made from the same). */
struct dc_changelog_host {
	uint64_t model_hash;
	size_t adapter_len;
	const float *base;
	uint64_t base_hash;
	/* Encoding with base: where adapter may differ from it (nseg ranges
	 * of seg_off[i], seg_len[i] floats, in order); nseg 0: anywhere. */
	const size_t *seg_off, *seg_len;
	size_t nseg;
};

/* Decode len bytes into *ret, checked against host; the arrays are
 * copied into scratch (cap floats; NULL and 0 to only check), the adapter
 * whole (the base where the record has no runs), and ret->key points into
 * buf.  0, or -EINVAL / -EBADMSG / -EPROTO / -ENOBUFS with the reason in
 * why (what a log line says of a refused record). */
int dc_changelog_decode(const void *buf, size_t len,
			const struct dc_changelog_host *host, float *scratch,
			size_t cap, struct dc_changelog_rec *ret, char *why,
			size_t why_size);

/* FNV-1a of n floats' bytes: which base adapter a record's runs are on. */
uint64_t dc_changelog_floats_hash(const float *f, size_t n);

/* The restore rule, per series of a partition assigned at start: next[]
 * holds the offsets its valid records reflect, in log order.  The topic
 * is consistent at every offset N some host committed or marked: each
 * series' newest record at or below N is its exact state at N (a series
 * changed after its record would have a newer one).  consistent: the
 * newest such N (the group's commit, the newest mark).  When it is the
 * start, the newest record at or below it is the series' state there
 * (records above it were written by a host whose commit did not land:
 * those messages are replayed).  When the start is later (this host's
 * database went further than the topic), no record is exact: -1, and
 * this host's own state is used.  The index, or -1. */
long dc_changelog_pick(const int64_t *next, size_t n, int64_t start,
		       int64_t consistent);

/* FNV-1a of a model file's bytes: which model a state belongs to. */
uint64_t dc_changelog_model_hash(const void *bytes, size_t n);

#endif
