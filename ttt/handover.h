/*
 * ttt/handover.h: what a host needs when a series moves to another host
 * (daemon/run_handover.c): one series' recent values and position, and
 * forgetting a series.  Beside ttt.h, which is full; same conventions.
 */
#ifndef DRIFTCAST_TTT_HANDOVER_H
#define DRIFTCAST_TTT_HANDOVER_H

#include <stddef.h>

#include "ttt/ttt.h"

/* The size of buf for ttt_engine_series_recent, in floats: a series' ring
 * and its recalibration's saved state. */
size_t ttt_engine_ring_len(const struct ttt_engine *e);

/* Series key's recent values (copied into buf, len >= ttt_engine_ring_len)
 * and where it stands, in *ret (ret->key points into the engine, valid
 * until the series is forgotten).  -ENOENT unknown series, -ENODATA none
 * yet, -EBUSY while its learning is queued (flush first), -EINVAL len. */
int ttt_engine_series_recent(const struct ttt_engine *e, const char *key,
			     float *buf, size_t len, struct ttt_recent *ret);

/* The base adapter [fc_adapter_len] every series starts from (the model's
 * identity adapter for ttt.seed), owned by the engine. */
const float *ttt_engine_base_adapter(const struct ttt_engine *e);

/* The ranges of the adapter block that adaptation changes (the active
 * families, at most 4, in order): every other float of a series' block is
 * the base adapter's.  The count; off[] and len[] get min(count, max). */
size_t ttt_engine_adapter_segments(const struct ttt_engine *e, size_t *off,
				   size_t *len, size_t max);

/* ttt_engine_series_adapter that writes only those ranges of full
 * [len = fc_adapter_len]: the caller keeps the rest the base adapter. */
int ttt_engine_series_adapter_active(const struct ttt_engine *e,
				     const char *key, float *full, size_t len,
				     uint64_t *ret_version);

/* Forget series key: its ring, position, detector and (with scope
 * series) its adapter state; queued forecasts and learning are flushed
 * first.  With scope group or global the shared adapter stays.  0,
 * -ENOENT, or the flush's negative errno.  No event is emitted. */
int ttt_engine_forget_series(struct ttt_engine *e, const char *key);

#endif
