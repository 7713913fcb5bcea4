/*
 * daemon/control.h: operator control records on the input topic (issue 12
 * item 5).  An operator's rollback travels as a record on the input topic
 * keyed by its series, so it reaches whichever host owns the series' input
 * partition and is applied in order with the series' data.  What marks a
 * record as control is its Kafka header DC_CONTROL_HEADER (value
 * "rollback"), never its payload: a reading can never be taken for a
 * control record nor a control record for a reading, whatever the input
 * format.  The payload is one JSON object (docs/OPERATIONS.md):
 *
 *   {"control": "rollback", "series": S, "to_version": N | "at_ns": T,
 *    "reason": R, "by": U, "adapter": [floats]  (optional)}
 *
 * "adapter" carries version N's block for an owner whose database lacks
 * it (the version was made on another host); [] is the identity (version
 * 0, stored empty).  Encoded with 9 significant digits, so every float32
 * comes back exactly.
 */
#ifndef DRIFTCAST_DAEMON_CONTROL_H
#define DRIFTCAST_DAEMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/parse.h"

#define DC_CONTROL_HEADER     "driftcast-control"
#define DC_CONTROL_ROLLBACK   "rollback"
#define DC_CONTROL_REASON_MAX 400 /* bytes; the audit note adds the rest */
#define DC_CONTROL_BY_MAX     64

struct dc_control {
	char series[DC_SERIES_MAX + 1];
	bool by_time;	     /* false: to_version; true: the version at at_ns */
	uint64_t to_version; /* per-series version number */
	int64_t at_ns;	     /* series time */
	char reason[DC_CONTROL_REASON_MAX + 1];
	char by[DC_CONTROL_BY_MAX + 1];
	float *adapter;	    /* the carried block of to_version, or NULL;
			       owned, freed by dc_control_clear */
	size_t adapter_len; /* floats */
};

/* Decode a control record's payload (the header said it is one): series
 * equal to the Kafka key when there is one, a reason, at most one target,
 * a carried block of exactly adapter_len finite floats (or [], then
 * ret->adapter_len is 0).  0, or -EBADMSG
 * with "bad_control: ..." in err.  *ret is cleared first; free it with
 * dc_control_clear() on success. */
int dc_control_decode(const void *payload, size_t len, const void *key,
		      size_t key_len, size_t adapter_len,
		      struct dc_control *ret, char *err, size_t err_size);

/* The payload of c as a NUL-terminated JSON string (malloc'd, the caller
 * frees it), or NULL when out of memory. */
char *dc_control_encode(const struct dc_control *c);

/* Free what dc_control_decode allocated (accepts a cleared struct). */
void dc_control_clear(struct dc_control *c);

/* The index of the first control character (below 0x20, or DEL) of
 * s[0..len), or -1: a record's text fields have none, and `driftcast
 * rollback` refuses them before it writes one. */
long dc_control_char_at(const char *s, size_t len);

#endif
