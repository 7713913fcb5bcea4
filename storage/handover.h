/*
 * storage/handover.h: which input partition each series arrives on, and
 * its moves between the hosts of a consumer group (the handovers table,
 * schema 9).  Same conventions as storage.h: 0 or a negative errno,
 * errbuf gets one line, writes join the open batch.
 */
#ifndef DRIFTCAST_STORAGE_HANDOVER_H
#define DRIFTCAST_STORAGE_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

/* Series key arrives on input partition p: recorded (the series row is
 * created if needed) and the series is active here again. */
int store_series_partition_put(struct store *s, const char *series,
			       int32_t partition, char *errbuf,
			       size_t errbuf_size);

/* store_restore() for the series of one input partition, or with
 * partition -1 for those whose partition is not known (recorded before
 * schema 9). */
int store_restore_partition(struct store *s, int32_t partition,
			    store_restore_fn fn, void *user, size_t *ret_bad,
			    char *errbuf, size_t errbuf_size);

/* The recent values saved for the series of partition
 * (-1: unknown partition) to fn (NULL: none is used), then deleted, in the
 * open batch (begun if none is): the caller commits it.  A failed
 * deletion fails the batch, as any write of it does. */
int store_recent_take_partition(struct store *s, int32_t partition,
				store_recent_fn fn, void *user, size_t *ret_n,
				char *errbuf, size_t errbuf_size);

/* The saved recent values of the series of partition (-1: unknown
 * partition; STORE_ALL_PARTITIONS: every series) deleted in the open batch:
 * when they would no longer describe the state the batch stores. */
#define STORE_ALL_PARTITIONS (-2)
int store_recent_drop_partition(struct store *s, int32_t partition,
				char *errbuf, size_t errbuf_size);

/* How many series of partition (-1: unknown) have saved recent values
 * (every durable batch saves those it changed; a database written before
 * that holds them only after a clean stop or a revoke). */
int store_recent_count_partition(struct store *s, int32_t partition,
				 size_t *ret_n, char *errbuf,
				 size_t errbuf_size);

/* One move of a series: "out" marks the series handed_over (source
 * revoked, lost: another host has it) or stopped (source stopped: released
 * at this host's own stop, whether another host takes it is not known
 * here); "in" (local, changelog, anchor) makes it active here.  (Recent
 * values saved at a clean stop stay until the partition comes back:
 * store_recent_take_partition uses or deletes them.)  version and
 * next_offset: -1 unknown. */
struct store_handover {
	const char *series;
	int32_t partition;
	bool in;
	const char *source;
	int64_t version;
	int64_t next_offset; /* the partition offset the state reflects */
	const char *note;    /* may be NULL */
};
int store_handover_put(struct store *s, const struct store_handover *h,
		       char *errbuf, size_t errbuf_size);

/* A version made elsewhere joins the series' lineage here as its current
 * version (reason 'handover', note says from where): number and its
 * parent's number (-1: none) as the other host numbered them; adapter NULL
 * or len 0 for the base adapter.  When that number is this database's
 * newest and holds the same adapter (made here before the series moved
 * away and back), that version becomes current again.  When the lineage
 * here has the number or a later one otherwise (this host went further,
 * then crashed before publishing it), the adapter becomes a new version
 * numbered after the newest here, its parent: numbers never repeat or go
 * back.  *ret_number (may be NULL): the number it has here. */
struct store_adopted {
	const char *series;
	uint64_t number;
	int64_t parent;
	int64_t ts;
	const float *adapter;
	size_t adapter_len;
	const uint16_t *average; /* published from it on (ttt_event), or NULL */
	size_t average_len;
	const char *note;
};
int store_version_adopt(struct store *s, const struct store_adopted *a,
			uint64_t *ret_number, char *errbuf, size_t errbuf_size);

/* A series restored (rs, from store_restore_partition) whose current
 * version was made with another base model than the one registered here
 * (store_model_register): the adapter corrects the other model's
 * forecasts, so the series starts again from the base adapter, as a new
 * version after its highest number (reason 'reset', the note naming both
 * models) with its audit row (event 'reset', triggered by 'model'), in the
 * open batch.  *ret_number: the new version. */
int store_model_reset(struct store *s, const struct store_restored *rs,
		      uint64_t *ret_number, char *errbuf, size_t errbuf_size);

/* Whether this database still serves series: handed_over when its last
 * move was out, to another host or at this host's stop (then partition,
 * -1 unknown, and when, wall-clock ms).
 * -ENOENT for an unknown series. */
struct store_series_where {
	bool handed_over;
	int32_t partition;
	int64_t since_ms;
	/* the newest hand-over out was this host's own stop (source
	 * 'stopped'), not another host taking the partition */
	bool released_at_stop;
};
int store_series_where(struct store *s, const char *series,
		       struct store_series_where *ret, char *errbuf,
		       size_t errbuf_size);

/* The rollback of an operator record on the input topic (the daemon's
 * run_control.c): resolves target t of series (checksum verified) inside
 * the open batch, without writing, into *ret: from_version (current),
 * restored, new_version (highest + 1) and the adapter to install (the
 * store's copy, valid until its next rollback).  A version this database
 * lacks (made on another host, or pruned) below the current one takes the
 * carried block (NULL: none; not copied).  -ENOENT unknown series,
 * -EINVAL no such version, -EBADMSG corrupt, -EXDEV made with another base
 * model than the series runs, with the reason in errbuf. */
int store_rollback_prepare(struct store *s, const char *series,
			   const struct store_rollback_target *t,
			   const float *carried, size_t carried_len,
			   struct store_rollback_result *ret, char *errbuf,
			   size_t errbuf_size);

/* The rows of rollback rb (from store_rollback_prepare) into the open
 * batch: version rb->new_version (reason 'manual', parent the current,
 * restored_from rb->restored, content rb->adapter: rb->adapter_len 0 is
 * the identity) and its 'manual' audit row, both with note, at series
 * time ts.  As store_event_put. */
int store_rollback_put(struct store *s, const struct store_rollback_result *rb,
		       int64_t ts, const char *note, char *errbuf,
		       size_t errbuf_size);

#endif
