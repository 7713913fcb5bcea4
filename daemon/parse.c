/*
 * Message parsing: one Kafka message (JSON or Influx line protocol) into
 * observations (series key, timestamp in ns, value), or a reason why not.
 * This file owns the parser object, the reason classes and their error
 * text, the checks every format applies to a series key and a value, and
 * the entry point; each format has its own file (see parse_private.h).
 *
 * The formats, the series-key mapping, the timestamp rules and every bound
 * are documented in docs/INPUT.md; keep the two in step.
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_SIZE (256u * 1024u)

static const char *const reason_names[DC_REASON_COUNT] = {
    [DC_REASON_NONE] = "none",
    [DC_REASON_EMPTY] = "empty",
    [DC_REASON_TOO_LARGE] = "too_large",
    [DC_REASON_BAD_UTF8] = "bad_utf8",
    [DC_REASON_BAD_JSON] = "bad_json",
    [DC_REASON_BAD_LINE] = "bad_line",
    [DC_REASON_MISSING_FIELD] = "missing_field",
    [DC_REASON_WRONG_TYPE] = "wrong_type",
    [DC_REASON_NON_NUMERIC] = "non_numeric",
    [DC_REASON_NON_FINITE] = "non_finite",
    [DC_REASON_OUT_OF_RANGE] = "out_of_range",
    [DC_REASON_BAD_TIMESTAMP] = "bad_timestamp",
    [DC_REASON_BAD_SERIES] = "bad_series",
    [DC_REASON_KEY_MISMATCH] = "key_mismatch",
    [DC_REASON_TOO_MANY_VALUES] = "too_many_values",
    [DC_REASON_REJECTED_VALUE] = "rejected_value",
    [DC_REASON_FUTURE_TIMESTAMP] = "future_timestamp",
    [DC_REASON_BAD_CONTROL] = "bad_control",
    [DC_REASON_UNKNOWN_SERIES] = "unknown_series",
    [DC_REASON_UNKNOWN_VERSION] = "unknown_version",
};

const char *dc_reason_name(int reason)
{
	if (reason < 0 || reason >= DC_REASON_COUNT)
		return "?";
	return reason_names[reason];
}

/* Make the reason text safe for a Kafka header and a log line: control
 * characters and bytes that are not UTF-8 (jansson quotes input tokens; we
 * truncate series names) become '?'. */
static void sanitize(char *t)
{
	size_t n = strlen(t), i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)t[i];
		size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				t[i] = '?';
			i++;
		} else if (i + k <= n && dc_utf8_valid_prefix(
					     (unsigned char *)t + i, k) == k) {
			i += k;
		} else {
			t[i++] = '?';
		}
	}
}

int dc_parse_fail(struct dc_parse_error *err, int reason, const char *fmt, ...)
{
	va_list ap;
	int n;
	err->reason = reason;
	n = snprintf(err->text, sizeof(err->text),
		     "%s: ", dc_reason_name(reason));
	if (n < 0 || (size_t)n >= sizeof(err->text))
		return -EBADMSG;
	va_start(ap, fmt);
	vsnprintf(err->text + n, sizeof(err->text) - (size_t)n, fmt, ap);
	va_end(ap);
	sanitize(err->text);
	return -EBADMSG;
}

/* ---- parser object --------------------------------------------------- */

struct dc_parser *dc_parser_new(const struct dc_parse_opts *opts)
{
	struct dc_parser *p;
	if (!opts || (opts->format != CFG_INPUT_JSON &&
		      opts->format != CFG_INPUT_INFLUX))
		return NULL;
	if (opts->ts_unit < CFG_TS_AUTO || opts->ts_unit > CFG_TS_NS)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->opts = *opts;
	if (opts->format == CFG_INPUT_JSON) {
		dc_parse_json_setup();
		p->arena.base = malloc(ARENA_SIZE);
		if (!p->arena.base) {
			free(p);
			return NULL;
		}
		p->arena.size = ARENA_SIZE;
	}
	return p;
}

void dc_parser_free(struct dc_parser *p)
{
	if (!p)
		return;
	free(p->arena.base);
	free(p);
}

uint64_t dc_parser_heap_fallbacks(const struct dc_parser *p)
{
	return p->heap_fallbacks;
}

uint64_t dc_parser_fast_hits(const struct dc_parser *p)
{
	return p->fast_hits;
}

/* ---- text checks ----------------------------------------------------- */

size_t dc_utf8_valid_prefix(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			/* ASCII runs, eight bytes at a time */
			uint64_t w;
			i++;
			while (i + 8 <= len) {
				memcpy(&w, s + i, 8);
				if (w & UINT64_C(0x8080808080808080))
					break;
				i += 8;
			}
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		i += n + 1;
	}
	return i;
}

int dc_check_series(const char *s, size_t len, const char *what,
		    struct dc_parse_error *err)
{
	if (len == 0)
		return dc_parse_fail(err, DC_REASON_BAD_SERIES, "%s is empty",
				     what);
	if (len > DC_SERIES_MAX)
		return dc_parse_fail(err, DC_REASON_BAD_SERIES,
				     "%s is %zu bytes (limit %d)", what, len,
				     DC_SERIES_MAX);
	size_t v = dc_utf8_valid_prefix((const unsigned char *)s, len);
	if (v != len)
		return dc_parse_fail(err, DC_REASON_BAD_UTF8,
				     "%s is not UTF-8 (byte %zu)", what, v);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return dc_parse_fail(err, DC_REASON_BAD_SERIES,
					     "%s has control character 0x%02x",
					     what, c);
	}
	return 0;
}

int dc_make_series(char *out, const char *prefix, size_t plen,
		   const char *suffix, size_t slen, struct dc_parse_error *err)
{
	size_t total = plen + (suffix ? 1 + slen : 0);
	if (suffix && slen == 0)
		return dc_parse_fail(err, DC_REASON_BAD_SERIES,
				     "empty channel name in series '%.*s'",
				     (int)(plen > 60 ? 60 : plen), prefix);
	if (total > DC_SERIES_MAX)
		return dc_parse_fail(err, DC_REASON_BAD_SERIES,
				     "series key is %zu bytes (limit %d)",
				     total, DC_SERIES_MAX);
	memcpy(out, prefix, plen);
	if (suffix) {
		out[plen] = '/';
		memcpy(out + plen + 1, suffix, slen);
	}
	out[total] = '\0';
	return dc_check_series(out, total, "series key", err);
}

int dc_check_value(double v, const char *what, struct dc_parse_error *err)
{
	if (!isfinite(v))
		return dc_parse_fail(err, DC_REASON_NON_FINITE,
				     "%s is not finite", what);
	if (fabs(v) > DC_VALUE_MAX)
		return dc_parse_fail(err, DC_REASON_OUT_OF_RANGE,
				     "%s %g exceeds the bound %g", what, v,
				     DC_VALUE_MAX);
	return 0;
}

/* ---- entry point -------------------------------------------------------- */

int dc_parse(struct dc_parser *p, const void *payload, size_t len,
	     const void *key, size_t key_len, struct dc_obs *obs,
	     size_t max_obs, size_t *ret_n, struct dc_parse_error *err)
{
	size_t n = 0;
	int rc;

	err->reason = DC_REASON_NONE;
	err->text[0] = '\0';
	if (!payload || len == 0)
		return dc_parse_fail(err, DC_REASON_EMPTY, "empty payload");
	if (p->opts.max_message_bytes && len > p->opts.max_message_bytes)
		return dc_parse_fail(err, DC_REASON_TOO_LARGE,
				     "%zu bytes (limit %zu)", len,
				     p->opts.max_message_bytes);
	/* an empty key counts as no key */
	if (key && key_len == 0)
		key = NULL;
	if (key && p->opts.format == CFG_INPUT_JSON) {
		rc = dc_check_series(key, key_len, "Kafka key", err);
		if (rc < 0)
			return rc;
	}
	if (p->opts.format == CFG_INPUT_JSON)
		rc = dc_parse_json(p, payload, len, key, key_len, obs, max_obs,
				   &n, err);
	else
		rc = dc_parse_influx(p, payload, len, obs, max_obs, &n, err);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}
