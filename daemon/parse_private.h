/*
 * What the message parser's files share: the parser object, the error
 * helper, the checks every format applies to a series key or a value, and
 * the entry of each format.  Only daemon/parse*.c include this.
 *
 *   parse.c           parser object, reasons, key/value checks, dc_parse()
 *   parse_ts.c        timestamps: epoch numbers by unit, RFC 3339 strings
 *   parse_json.c      JSON through jansson (the reference) and its arena
 *   parse_json_fast.c JSON of the documented shape in one pass, no DOM
 *   parse_influx.c    Influx line protocol, scanned in place
 */
#ifndef DRIFTCAST_DAEMON_PARSE_PRIVATE_H
#define DRIFTCAST_DAEMON_PARSE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/parse.h"

/* Nothing here leaves the daemon library: hidden visibility lets the
 * compiler call (and inline) these directly under -fPIC, as it did when
 * they were static functions of one file. */
#pragma GCC visibility push(hidden)

/* The bump arena jansson allocates from during one dc_parse() call. */
struct arena {
	char *base;
	size_t size, used;
	bool overflowed;
};

struct dc_parser {
	struct dc_parse_opts opts;
	struct arena arena;
	uint64_t heap_fallbacks;
	uint64_t fast_hits;
};

/* Fill err with "<class>: <details>" (made safe for a Kafka header and a
 * log line) and return -EBADMSG. */
__attribute__((format(printf, 3, 4))) int
dc_parse_fail(struct dc_parse_error *err, int reason, const char *fmt, ...);

/* Length of the valid UTF-8 prefix of s[0..len) (== len when valid):
 * rejects overlong forms, surrogates and code points above U+10FFFF. */
size_t dc_utf8_valid_prefix(const unsigned char *s, size_t len);

/* Check a complete series key; `what` names it in the error. */
int dc_check_series(const char *s, size_t len, const char *what,
		    struct dc_parse_error *err);

/* Join prefix [+ "/" + suffix] into out (DC_SERIES_MAX + 1 bytes) and
 * check the result. */
int dc_make_series(char *out, const char *prefix, size_t plen,
		   const char *suffix, size_t slen, struct dc_parse_error *err);

/* A finite value within DC_VALUE_MAX; `what` names it in the error. */
int dc_check_value(double v, const char *what, struct dc_parse_error *err);

/* The error for a timestamp helper's rc (-ERANGE or -EINVAL). */
int dc_ts_error(int rc, const char *what, struct dc_parse_error *err);

/* Install the arena allocator as jansson's (once per process). */
void dc_parse_json_setup(void);

/* One payload of each format into obs[0..*ret_n); 0 or -EBADMSG. */
int dc_parse_json(struct dc_parser *p, const char *payload, size_t len,
		  const char *key, size_t key_len, struct dc_obs *obs,
		  size_t max_obs, size_t *ret_n, struct dc_parse_error *err);
int dc_parse_influx(struct dc_parser *p, const char *payload, size_t len,
		    struct dc_obs *obs, size_t max_obs, size_t *ret_n,
		    struct dc_parse_error *err);

/* The single-pass JSON path: true when the message was fully and validly
 * decoded into obs; false sends it to jansson (it never rejects). */
bool dc_parse_json_fast(struct dc_parser *p, const char *payload, size_t len,
			const char *key, size_t key_len, struct dc_obs *obs,
			size_t max_obs, size_t *ret_n);

#pragma GCC visibility pop

#endif
