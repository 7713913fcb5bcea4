/*
 * Message parsing (daemon/parse*.c; formats in docs/INPUT.md).
 *
 * One Kafka message (payload, optional key) becomes up to `max_obs`
 * observations (series key, timestamp, value) written into a caller-owned
 * array, or is rejected with a reason class (a metric label) and a short
 * specific text (the dead-letter header).  Parsing a message allocates
 * nothing in the common case: JSON is decoded by jansson into a per-parser
 * arena (messages whose DOM outgrows it fall back to malloc), line protocol
 * is scanned in place.  A parser is used by one thread at a time.
 */
#ifndef DRIFTCAST_DAEMON_PARSE_H
#define DRIFTCAST_DAEMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define DC_SERIES_MAX 255 /* bytes of a series key, without the NUL */

/* Values are bounded so that a sum of squares over a 720-step window stays
 * finite in float32 (720 * 1e30 < 3.4e38); see docs/INPUT.md. */
#define DC_VALUE_MAX 1e15

/* Accepted timestamps: [1970-01-01T00:00:00Z, 2200-01-01T00:00:00Z). */
#define DC_TS_MIN_NS INT64_C(0)
#define DC_TS_MAX_NS INT64_C(7258118400000000000)

struct dc_obs {
	int64_t ts_ns; /* nanoseconds since the Unix epoch, UTC */
	double value;  /* finite, |value| <= DC_VALUE_MAX */
	char series[DC_SERIES_MAX + 1]; /* NUL-terminated, valid UTF-8 */
};

/* Reason classes; dc_reason_name() gives the stable label. */
enum dc_reason {
	DC_REASON_NONE = 0,
	DC_REASON_EMPTY,	 /* empty payload or no lines */
	DC_REASON_TOO_LARGE,	 /* payload > max_message_bytes */
	DC_REASON_BAD_UTF8,	 /* payload or key is not UTF-8 */
	DC_REASON_BAD_JSON,	 /* JSON syntax, duplicate key, ... */
	DC_REASON_BAD_LINE,	 /* line protocol syntax */
	DC_REASON_MISSING_FIELD, /* series, ts, value(s), fields */
	DC_REASON_WRONG_TYPE,	 /* e.g. "value": "12" */
	DC_REASON_NON_NUMERIC,	 /* string or boolean field value */
	DC_REASON_NON_FINITE,	 /* NaN, inf, overflow to inf */
	DC_REASON_OUT_OF_RANGE,	 /* |value| > DC_VALUE_MAX, integer overflow */
	DC_REASON_BAD_TIMESTAMP, /* unparsable or outside the bounds */
	DC_REASON_BAD_SERIES,	 /* empty, too long, control characters */
	DC_REASON_KEY_MISMATCH,	 /* Kafka key != payload series */
	DC_REASON_TOO_MANY_VALUES,  /* more than max_obs observations */
	DC_REASON_REJECTED_VALUE,   /* the engine refused a value (duplicate,
				       late or off-step timestamp) */
	DC_REASON_FUTURE_TIMESTAMP, /* dated ahead of the clocks (kafka.
				       future_tolerance_s, max_ahead_steps) */
	DC_REASON_BAD_CONTROL,	    /* an operator control record that does not
				       parse (daemon/control.h) */
	DC_REASON_UNKNOWN_SERIES,   /* a control record for a series this host
				       has never served */
	DC_REASON_UNKNOWN_VERSION,  /* ... for a version nobody can restore */
	DC_REASON_COUNT
};

/* "empty", "too_large", ...; a static string ("?" when out of range). */
const char *dc_reason_name(int reason);

#define DC_PARSE_TEXT_MAX 160
struct dc_parse_error {
	int reason;		      /* enum dc_reason */
	char text[DC_PARSE_TEXT_MAX]; /* "bad_json: ...", NUL-terminated */
};

struct dc_parse_opts {
	int format;		  /* enum cfg_input_format */
	int ts_unit;		  /* enum cfg_ts_unit */
	size_t max_message_bytes; /* 0: no limit */
	bool no_fast_path;	  /* JSON: always decode with jansson (tests) */
};

struct dc_parser;

/* A parser for one format; NULL on allocation failure or a bad format.
 * Owned by the caller; free with dc_parser_free() (accepts NULL). */
struct dc_parser *dc_parser_new(const struct dc_parse_opts *opts);
void dc_parser_free(struct dc_parser *p);

/*
 * Parse one message.  key may be NULL (no Kafka key).  On success returns
 * 0 and sets *ret_n (>= 1) observations in obs[0..n).  A message that
 * cannot be used returns -EBADMSG and fills *err (obs may have been
 * written).  Nothing points into payload or key after return.
 */
int dc_parse(struct dc_parser *p, const void *payload, size_t len,
	     const void *key, size_t key_len, struct dc_obs *obs,
	     size_t max_obs, size_t *ret_n, struct dc_parse_error *err);

/* Messages whose JSON did not fit the arena (heap was used), for tests and
 * metrics. */
uint64_t dc_parser_heap_fallbacks(const struct dc_parser *p);
/* JSON messages accepted by the single-pass fast path (no jansson DOM). */
uint64_t dc_parser_fast_hits(const struct dc_parser *p);

/*
 * Timestamp helpers, exposed for tests.  dc_ts_from_rfc3339 parses
 * s[0..len) (RFC 3339 with 'T', 't' or ' ', fractions to ns, 'Z' or
 * +-HH:MM); dc_ts_from_epoch scales an integer by unit (AUTO: by magnitude).
 * Both return 0 or -EINVAL / -ERANGE (outside DC_TS_MIN_NS..DC_TS_MAX_NS).
 */
int dc_ts_from_rfc3339(const char *s, size_t len, int64_t *ret_ns);
int dc_ts_from_epoch(int64_t v, int unit, int64_t *ret_ns);
int dc_ts_from_epoch_real(double v, int unit, int64_t *ret_ns);

#endif
