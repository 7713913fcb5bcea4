/*
 * Message parsing: one Kafka message (JSON or Influx line protocol) into
 * observations (series key, timestamp in ns, value), or a reason why not.
 *
 * The formats, the series-key mapping, the timestamp rules and every bound
 * are documented in docs/INPUT.md; keep the two in step.
 *
 * Nothing here allocates per message in the common case.  Line protocol is
 * scanned in place.  JSON goes through jansson (duplicate keys rejected),
 * whose allocator we point at a per-parser bump arena for the duration of
 * one dc_parse() call: jansson's allocation hooks are process-wide, so the
 * hooks consult a thread-local "current arena" and fall back to malloc/free
 * whenever no parse is running on this thread (or the arena is full).
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define ARENA_SIZE  (256u * 1024u)
#define LP_MAX_TAGS 64

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
};

const char *dc_reason_name(int reason)
{
	if (reason < 0 || reason >= DC_REASON_COUNT)
		return "?";
	return reason_names[reason];
}

static size_t utf8_valid_prefix(const unsigned char *s, size_t len);

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
		} else if (i + k <= n &&
			   utf8_valid_prefix((unsigned char *)t + i, k) == k) {
			i += k;
		} else {
			t[i++] = '?';
		}
	}
}

/* Fill err with "<class>: <details>" and return -EBADMSG. */
__attribute__((format(printf, 3, 4))) static int
fail(struct dc_parse_error *err, int reason, const char *fmt, ...)
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

/* ---- jansson arena --------------------------------------------------- */

static __thread struct arena *tl_arena;

static void *arena_malloc(size_t n)
{
	struct arena *a = tl_arena;
	if (a) {
		size_t need = (n + 15u) & ~(size_t)15u;
		if (need >= n && need <= a->size - a->used) {
			void *p = a->base + a->used;
			a->used += need;
			return p;
		}
		a->overflowed = true;
	}
	return malloc(n);
}

static void arena_free(void *ptr)
{
	struct arena *a = tl_arena;
	if (a && (char *)ptr >= a->base && (char *)ptr < a->base + a->size)
		return; /* released wholesale when the parse ends */
	free(ptr);
}

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void install_alloc_funcs(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
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
		pthread_once(&alloc_once, install_alloc_funcs);
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

/* Length of the valid UTF-8 prefix of s[0..len) (== len when valid):
 * rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
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

/* Check a complete series key; `what` names it in the error. */
static int check_series(const char *s, size_t len, const char *what,
			struct dc_parse_error *err)
{
	if (len == 0)
		return fail(err, DC_REASON_BAD_SERIES, "%s is empty", what);
	if (len > DC_SERIES_MAX)
		return fail(err, DC_REASON_BAD_SERIES,
			    "%s is %zu bytes (limit %d)", what, len,
			    DC_SERIES_MAX);
	size_t v = utf8_valid_prefix((const unsigned char *)s, len);
	if (v != len)
		return fail(err, DC_REASON_BAD_UTF8,
			    "%s is not UTF-8 (byte %zu)", what, v);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return fail(err, DC_REASON_BAD_SERIES,
				    "%s has control character 0x%02x", what, c);
	}
	return 0;
}

/* Join prefix [+ "/" + suffix] into out (DC_SERIES_MAX + 1 bytes). */
static int make_series(char *out, const char *prefix, size_t plen,
		       const char *suffix, size_t slen,
		       struct dc_parse_error *err)
{
	size_t total = plen + (suffix ? 1 + slen : 0);
	if (suffix && slen == 0)
		return fail(err, DC_REASON_BAD_SERIES,
			    "empty channel name in series '%.*s'",
			    (int)(plen > 60 ? 60 : plen), prefix);
	if (total > DC_SERIES_MAX)
		return fail(err, DC_REASON_BAD_SERIES,
			    "series key is %zu bytes (limit %d)", total,
			    DC_SERIES_MAX);
	memcpy(out, prefix, plen);
	if (suffix) {
		out[plen] = '/';
		memcpy(out + plen + 1, suffix, slen);
	}
	out[total] = '\0';
	return check_series(out, total, "series key", err);
}

static int check_value(double v, const char *what, struct dc_parse_error *err)
{
	if (!isfinite(v))
		return fail(err, DC_REASON_NON_FINITE, "%s is not finite",
			    what);
	if (fabs(v) > DC_VALUE_MAX)
		return fail(err, DC_REASON_OUT_OF_RANGE,
			    "%s %g exceeds the bound %g", what, v,
			    DC_VALUE_MAX);
	return 0;
}

/* ---- timestamps ------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n decimal digits at s; -1 when any is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int ts_check(int64_t ns, int64_t *ret_ns)
{
	if (ns < DC_TS_MIN_NS || ns >= DC_TS_MAX_NS)
		return -ERANGE;
	*ret_ns = ns;
	return 0;
}

int dc_ts_from_rfc3339(const char *s, size_t len, int64_t *ret_ns)
{
	static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};
	/* YYYY-MM-DDTHH:MM:SS is 19 characters */
	if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -EINVAL;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2),
	    se = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || se < 0 || se > 60)
		return -EINVAL;
	if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
		return -EINVAL;
	size_t i = 19;
	int64_t frac = 0;
	if (s[i] == '.') {
		int nd = 0;
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (nd < 9) {
				frac = frac * 10 + (s[i] - '0');
				nd++;
			}
			i++;
			/* digits beyond nanoseconds are truncated */
		}
		if (nd == 0)
			return -EINVAL;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i >= len)
		return -EINVAL;
	int64_t off = 0;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		if (len - i < 6 || s[i + 3] != ':')
			return -EINVAL;
		int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -EINVAL;
		off = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 60 + om) * 60;
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	/* a leap second (:60) becomes the next minute's :00 */
	int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
		       h * 3600 + mi * 60 + se - off;
	if (secs < DC_TS_MIN_NS / 1000000000 ||
	    secs >= DC_TS_MAX_NS / 1000000000)
		return -ERANGE;
	return ts_check(secs * 1000000000 + frac, ret_ns);
}

/* Auto-detection thresholds, see docs/INPUT.md: each boundary is where the
 * finer unit would fall before 1973-03-03 and the coarser after 5138. */
static int auto_unit(double mag)
{
	if (mag < 1e11)
		return CFG_TS_S;
	if (mag < 1e14)
		return CFG_TS_MS;
	if (mag < 1e17)
		return CFG_TS_US;
	return CFG_TS_NS;
}

static int64_t unit_ns(int unit)
{
	switch (unit) {
	case CFG_TS_S:
		return 1000000000;
	case CFG_TS_MS:
		return 1000000;
	case CFG_TS_US:
		return 1000;
	default:
		return 1;
	}
}

int dc_ts_from_epoch(int64_t v, int unit, int64_t *ret_ns)
{
	if (v < 0)
		return -ERANGE;
	if (unit == CFG_TS_AUTO)
		unit = auto_unit((double)v);
	int64_t mul = unit_ns(unit);
	if (v >= DC_TS_MAX_NS / mul)
		return -ERANGE;
	return ts_check(v * mul, ret_ns);
}

int dc_ts_from_epoch_real(double v, int unit, int64_t *ret_ns)
{
	if (!isfinite(v))
		return -EINVAL;
	if (v < 0)
		return -ERANGE;
	if (unit == CFG_TS_AUTO)
		unit = auto_unit(v);
	int64_t mul = unit_ns(unit);
	if (v >= (double)(DC_TS_MAX_NS / mul))
		return -ERANGE;
	/* whole units exactly, the fraction rounded to the nearest ns */
	double ip = floor(v);
	int64_t ns = (int64_t)ip * mul + llround((v - ip) * (double)mul);
	return ts_check(ns, ret_ns);
}

static int ts_error(int rc, const char *what, struct dc_parse_error *err)
{
	if (rc == -ERANGE)
		return fail(err, DC_REASON_BAD_TIMESTAMP,
			    "%s outside 1970-01-01..2200-01-01", what);
	return fail(err, DC_REASON_BAD_TIMESTAMP, "%s is not RFC 3339", what);
}

/* ---- JSON -------------------------------------------------------------- */

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int json_number(const json_t *j, const char *what, double *ret,
		       struct dc_parse_error *err)
{
	double v;
	if (json_is_integer(j)) {
		json_int_t i = json_integer_value(j);
		if (i > (json_int_t)DC_VALUE_MAX ||
		    i < -(json_int_t)DC_VALUE_MAX)
			return fail(err, DC_REASON_OUT_OF_RANGE,
				    "%s %lld exceeds the bound %g", what,
				    (long long)i, DC_VALUE_MAX);
		v = (double)i;
	} else if (json_is_real(j)) {
		v = json_real_value(j);
	} else {
		return fail(err, DC_REASON_WRONG_TYPE, "%s is %s, not a number",
			    what, json_type_name(j));
	}
	int rc = check_value(v, what, err);
	if (rc < 0)
		return rc;
	*ret = v;
	return 0;
}

static int json_ts(const json_t *j, int unit, int64_t *ret_ns,
		   struct dc_parse_error *err)
{
	int rc;
	if (json_is_integer(j))
		rc = dc_ts_from_epoch(json_integer_value(j), unit, ret_ns);
	else if (json_is_real(j))
		rc = dc_ts_from_epoch_real(json_real_value(j), unit, ret_ns);
	else if (json_is_string(j))
		rc = dc_ts_from_rfc3339(json_string_value(j),
					json_string_length(j), ret_ns);
	else
		return fail(err, DC_REASON_WRONG_TYPE,
			    "\"ts\" is %s, not a number or RFC 3339 string",
			    json_type_name(j));
	return rc < 0 ? ts_error(rc, "\"ts\"", err) : 0;
}

static int json_load_error(const json_error_t *je, struct dc_parse_error *err)
{
	switch (json_error_code(je)) {
	case json_error_invalid_utf8:
		return fail(err, DC_REASON_BAD_UTF8, "at byte %d: %s",
			    je->position, je->text);
	case json_error_numeric_overflow:
		if (strstr(je->text, "real"))
			return fail(err, DC_REASON_NON_FINITE, "at byte %d: %s",
				    je->position, je->text);
		return fail(err, DC_REASON_OUT_OF_RANGE, "at byte %d: %s",
			    je->position, je->text);
	default:
		return fail(err, DC_REASON_BAD_JSON, "at byte %d: %s",
			    je->position, je->text);
	}
}

static int parse_json_root(struct dc_parser *p, json_t *root, const char *key,
			   size_t key_len, struct dc_obs *obs, size_t max_obs,
			   size_t *ret_n, struct dc_parse_error *err)
{
	const char *series;
	size_t slen;
	int64_t ts;
	int rc;

	if (!json_is_object(root))
		return fail(err, DC_REASON_WRONG_TYPE,
			    "payload is %s, not an object",
			    json_type_name(root));
	json_t *js = json_object_get(root, "series");
	json_t *jts = json_object_get(root, "ts");
	json_t *jv = json_object_get(root, "value");
	json_t *jvs = json_object_get(root, "values");

	if (js) {
		if (!json_is_string(js))
			return fail(err, DC_REASON_WRONG_TYPE,
				    "\"series\" is %s, not a string",
				    json_type_name(js));
		series = json_string_value(js);
		slen = json_string_length(js);
		rc = check_series(series, slen, "\"series\"", err);
		if (rc < 0)
			return rc;
		if (key && (key_len != slen || memcmp(key, series, slen)))
			return fail(err, DC_REASON_KEY_MISMATCH,
				    "Kafka key '%.*s' != series '%.*s'",
				    (int)(key_len > 40 ? 40 : key_len), key,
				    (int)(slen > 40 ? 40 : slen), series);
	} else if (key) {
		series = key;
		slen = key_len;
	} else {
		return fail(err, DC_REASON_MISSING_FIELD,
			    "no \"series\" and no Kafka key");
	}
	if (!jts)
		return fail(err, DC_REASON_MISSING_FIELD, "no \"ts\"");
	rc = json_ts(jts, p->opts.ts_unit, &ts, err);
	if (rc < 0)
		return rc;
	if (jv && jvs)
		return fail(err, DC_REASON_BAD_JSON,
			    "both \"value\" and \"values\"");
	if (jv) {
		if (max_obs < 1)
			return fail(err, DC_REASON_TOO_MANY_VALUES,
				    "1 value, room for 0");
		rc = json_number(jv, "\"value\"", &obs[0].value, err);
		if (rc < 0)
			return rc;
		rc = make_series(obs[0].series, series, slen, NULL, 0, err);
		if (rc < 0)
			return rc;
		obs[0].ts_ns = ts;
		*ret_n = 1;
		return 0;
	}
	if (!jvs)
		return fail(err, DC_REASON_MISSING_FIELD,
			    "no \"value\" or \"values\"");
	if (!json_is_object(jvs))
		return fail(err, DC_REASON_WRONG_TYPE,
			    "\"values\" is %s, not an object",
			    json_type_name(jvs));
	size_t n = json_object_size(jvs);
	if (n == 0)
		return fail(err, DC_REASON_MISSING_FIELD,
			    "\"values\" is empty");
	if (n > max_obs)
		return fail(err, DC_REASON_TOO_MANY_VALUES,
			    "%zu values (limit %zu)", n, max_obs);
	const char *name;
	json_t *jx;
	size_t i = 0;
	json_object_foreach(jvs, name, jx)
	{
		char what[64];
		snprintf(what, sizeof(what), "\"values\".\"%.40s\"", name);
		rc = json_number(jx, what, &obs[i].value, err);
		if (rc < 0)
			return rc;
		rc = make_series(obs[i].series, series, slen, name,
				 strlen(name), err);
		if (rc < 0)
			return rc;
		obs[i].ts_ns = ts;
		i++;
	}
	*ret_n = i;
	return 0;
}

/*
 * JSON fast path.  Messages of the documented shape -- one flat object whose
 * keys are only series/ts/value/values, strings without escapes, numbers --
 * are decoded here in one pass without building a DOM.  It only ever
 * *accepts*: anything else, and every message that turns out to be
 * unusable, goes to jansson, which is the reference and writes every reason.
 * tests/fuzz/fuzz_parse_json.c checks that both paths agree on every input.
 */

#define FAST_MAX_VALUES 64

struct fspan {
	const char *s;
	size_t len;
};

struct fast_msg {
	struct fspan series, ts, value;
	bool has_series, has_ts, has_value, has_values, ts_is_string;
	size_t nvalues;
	struct fspan names[FAST_MAX_VALUES], values[FAST_MAX_VALUES];
};

static const char *fast_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++;
	return s;
}

/* A string without escapes or control characters; s at the quote. */
static const char *fast_string(const char *s, const char *end,
			       struct fspan *ret)
{
	const char *b = ++s;
	while (s < end && *s != '"') {
		if (*s == '\\' || (unsigned char)*s < 0x20)
			return NULL;
		s++;
	}
	if (s >= end)
		return NULL;
	*ret = (struct fspan){b, (size_t)(s - b)};
	return s + 1;
}

/* A JSON number token, by the grammar; returns its end or NULL. */
static const char *fast_number(const char *s, const char *end,
			       struct fspan *ret)
{
	const char *b = s;
	if (s < end && *s == '-')
		s++;
	if (s < end && *s == '0')
		s++;
	else if (s < end && *s >= '1' && *s <= '9')
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	else
		return NULL;
	if (s < end && *s == '.') {
		s++;
		if (s >= end || *s < '0' || *s > '9')
			return NULL;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || *s < '0' || *s > '9')
			return NULL;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	}
	*ret = (struct fspan){b, (size_t)(s - b)};
	return s;
}

static bool fspan_eq(struct fspan a, const char *lit)
{
	return a.len == strlen(lit) && !memcmp(a.s, lit, a.len);
}

/* After an object member at *ps: ',' gives 1 with *ps at the next member,
 * '}' gives 0 with *ps just past it, anything else -1. */
static int fast_next_member(const char **ps, const char *end)
{
	const char *s = fast_ws(*ps, end);
	if (s < end && *s == ',') {
		*ps = fast_ws(s + 1, end);
		return 1;
	}
	if (s >= end || *s != '}')
		return -1;
	*ps = s + 1;
	return 0;
}

/* Scan the document into m; false when it is not of the fast shape. */
static bool fast_scan(const char *s, const char *end, struct fast_msg *m)
{
	struct fspan k;
	s = fast_ws(s, end);
	if (s >= end || *s != '{')
		return false;
	s = fast_ws(s + 1, end);
	for (;;) {
		if (s >= end || *s != '"' || !(s = fast_string(s, end, &k)))
			return false;
		s = fast_ws(s, end);
		if (s >= end || *s != ':')
			return false;
		s = fast_ws(s + 1, end);
		if (s >= end)
			return false;
		if (fspan_eq(k, "series") && !m->has_series && *s == '"') {
			s = fast_string(s, end, &m->series);
			m->has_series = true;
		} else if (fspan_eq(k, "ts") && !m->has_ts) {
			m->ts_is_string = *s == '"';
			s = m->ts_is_string ? fast_string(s, end, &m->ts)
					    : fast_number(s, end, &m->ts);
			m->has_ts = true;
		} else if (fspan_eq(k, "value") && !m->has_value) {
			s = fast_number(s, end, &m->value);
			m->has_value = true;
		} else if (fspan_eq(k, "values") && !m->has_values &&
			   *s == '{') {
			m->has_values = true;
			s = fast_ws(s + 1, end);
			for (;;) {
				size_t i = m->nvalues;
				if (i == FAST_MAX_VALUES || s >= end ||
				    *s != '"' ||
				    !(s = fast_string(s, end, &m->names[i])))
					return false;
				for (size_t j = 0; j < i; j++)
					if (m->names[j].len ==
						m->names[i].len &&
					    !memcmp(m->names[j].s,
						    m->names[i].s,
						    m->names[i].len))
						return false; /* duplicate */
				s = fast_ws(s, end);
				if (s >= end || *s != ':')
					return false;
				s = fast_ws(s + 1, end);
				if (!(s = fast_number(s, end, &m->values[i])))
					return false;
				m->nvalues++;
				int more = fast_next_member(&s, end);
				if (more < 0)
					return false;
				if (!more)
					break;
			}
		} else {
			return false;
		}
		if (!s)
			return false;
		int more = fast_next_member(&s, end);
		if (more < 0)
			return false;
		if (!more)
			return fast_ws(s, end) == end;
	}
}

static bool fast_is_integer(struct fspan t)
{
	return !memchr(t.s, '.', t.len) && !memchr(t.s, 'e', t.len) &&
	       !memchr(t.s, 'E', t.len);
}

/*
 * The common number tokens without libc (whose strtod/strtoll were a fifth
 * of the parse): at most 18 significant digits, and for a real a decimal
 * exponent within +-22 and a mantissa below 2^53.  Then mantissa and power
 * of ten are exact doubles and one multiplication or division is correctly
 * rounded, as strtod is (Clinger's fast path), so the result is the same
 * bit for bit.  false: let fast_convert use libc.
 */
static bool fast_digits(struct fspan t, bool *is_int, long long *ret_i,
			double *ret_d)
{
	static const double pow10[] = {1e0,  1e1,  1e2,	 1e3,  1e4,  1e5,
				       1e6,  1e7,  1e8,	 1e9,  1e10, 1e11,
				       1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
				       1e18, 1e19, 1e20, 1e21, 1e22};
	const char *p = t.s, *end = t.s + t.len;
	bool neg = p < end && *p == '-';
	uint64_t m = 0;
	int nd = 0, frac = 0, e = 0;

	p += neg;
	for (; p < end && *p >= '0' && *p <= '9'; p++, nd++)
		m = m * 10 + (uint64_t)(*p - '0');
	*is_int = p == end;
	if (!*is_int && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, nd++, frac++)
			m = m * 10 + (uint64_t)(*p - '0');
	if (nd > 18) /* m may have overflowed; leading zeros count too */
		return false;
	if (*is_int) {
		*ret_i = neg ? -(long long)m : (long long)m;
		return true;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool eneg = ++p < end && *p == '-';
		int x = 0;
		p += p < end && (*p == '-' || *p == '+');
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if ((x = x * 10 + (*p - '0')) > 1000)
				return false;
		e = eneg ? -x : x;
	}
	e -= frac;
	if (p != end || m > (UINT64_C(1) << 53) || e < -22 || e > 22)
		return false;
	double d = (double)m;
	d = e < 0 ? d / pow10[-e] : d * pow10[e];
	*ret_d = neg ? -d : d;
	return true;
}

/* Convert a number token as jansson would: integers with strtoll (range
 * errors are jansson's), reals with strtod (overflow is jansson's). */
static bool fast_convert(struct fspan t, bool *is_int, long long *ret_i,
			 double *ret_d)
{
	char buf[64];
	if (fast_digits(t, is_int, ret_i, ret_d))
		return true;
	if (t.len >= sizeof(buf))
		return false;
	memcpy(buf, t.s, t.len);
	buf[t.len] = '\0';
	errno = 0;
	*is_int = fast_is_integer(t);
	if (*is_int) {
		*ret_i = strtoll(buf, NULL, 10);
		return errno != ERANGE;
	}
	*ret_d = strtod(buf, NULL);
	return isfinite(*ret_d);
}

static bool fast_value(struct fspan t, double *ret)
{
	bool is_int;
	long long i = 0;
	double d = 0;
	if (!fast_convert(t, &is_int, &i, &d))
		return false;
	if (is_int) {
		if (i > (long long)DC_VALUE_MAX || i < -(long long)DC_VALUE_MAX)
			return false;
		d = (double)i;
	}
	if (fabs(d) > DC_VALUE_MAX)
		return false;
	*ret = d;
	return true;
}

/* true when the message was fully and validly decoded into obs. */
static bool parse_json_fast(struct dc_parser *p, const char *payload,
			    size_t len, const char *key, size_t key_len,
			    struct dc_obs *obs, size_t max_obs, size_t *ret_n)
{
	struct fast_msg m;
	struct dc_parse_error scratch;
	const char *series;
	size_t slen;
	int64_t ts;

	m.has_series = m.has_ts = m.has_value = m.has_values = false;
	m.nvalues = 0;
	if (!fast_scan(payload, payload + len, &m) || !m.has_ts ||
	    m.has_value == m.has_values)
		return false;
	if (m.has_series) {
		series = m.series.s;
		slen = m.series.len;
		/* the same bytes as the key, which dc_parse() checked */
		if (key ? key_len != slen || memcmp(key, series, slen)
			: check_series(series, slen, "", &scratch) < 0)
			return false;
	} else if (key) {
		series = key;
		slen = key_len;
	} else {
		return false;
	}
	if (m.ts_is_string) {
		if (dc_ts_from_rfc3339(m.ts.s, m.ts.len, &ts) < 0)
			return false;
	} else {
		bool is_int;
		long long i = 0;
		double d = 0;
		if (!fast_convert(m.ts, &is_int, &i, &d))
			return false;
		if ((is_int
			 ? dc_ts_from_epoch(i, p->opts.ts_unit, &ts)
			 : dc_ts_from_epoch_real(d, p->opts.ts_unit, &ts)) < 0)
			return false;
	}
	if (m.has_value) {
		/* the series key is the checked series as it is */
		if (max_obs < 1 || !fast_value(m.value, &obs[0].value))
			return false;
		memcpy(obs[0].series, series, slen);
		obs[0].series[slen] = '\0';
		obs[0].ts_ns = ts;
		*ret_n = 1;
		return true;
	}
	if (m.nvalues == 0 || m.nvalues > max_obs)
		return false;
	for (size_t i = 0; i < m.nvalues; i++) {
		if (!fast_value(m.values[i], &obs[i].value) ||
		    make_series(obs[i].series, series, slen, m.names[i].s,
				m.names[i].len, &scratch) < 0)
			return false;
		obs[i].ts_ns = ts;
	}
	*ret_n = m.nvalues;
	return true;
}

static int parse_json(struct dc_parser *p, const char *payload, size_t len,
		      const char *key, size_t key_len, struct dc_obs *obs,
		      size_t max_obs, size_t *ret_n, struct dc_parse_error *err)
{
	json_error_t je;
	json_t *root;
	int rc;

	if (!p->opts.no_fast_path &&
	    parse_json_fast(p, payload, len, key, key_len, obs, max_obs,
			    ret_n)) {
		p->fast_hits++;
		return 0;
	}
	p->arena.used = 0;
	p->arena.overflowed = false;
	tl_arena = &p->arena;
	root = json_loadb(payload, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root)
		rc = json_load_error(&je, err);
	else
		rc = parse_json_root(p, root, key, key_len, obs, max_obs, ret_n,
				     err);
	json_decref(root);
	tl_arena = NULL;
	if (p->arena.overflowed)
		p->heap_fallbacks++;
	return rc;
}

/* ---- Influx line protocol --------------------------------------------- */

/* A span of the payload. */
struct span {
	const char *s;
	size_t len;
};

/* Character sets of line-protocol syntax, as bit masks. */
#define LP_COMMA 1u
#define LP_EQ	 2u
#define LP_SPACE 4u
#define LP_ALL	 (LP_COMMA | LP_EQ | LP_SPACE)

static inline unsigned lp_class(char c)
{
	return c == ',' ? LP_COMMA : c == '=' ? LP_EQ : c == ' ' ? LP_SPACE : 0;
}

/*
 * Scan an element up to an unescaped stop character (or end).  `escapable`
 * is what a backslash escapes in this element; any other backslash is
 * literal, as in InfluxDB's parser.
 */
static const char *lp_scan(const char *s, const char *end, unsigned stops,
			   unsigned escapable)
{
	while (s < end) {
		if (*s == '\\' && s + 1 < end && (lp_class(s[1]) & escapable)) {
			s += 2;
			continue;
		}
		if (lp_class(*s) & stops)
			return s;
		s++;
	}
	return s;
}

/* Copy an element into out, removing escapes; returns the length. */
static size_t lp_unescape(char *out, struct span sp, unsigned escapable)
{
	size_t n = 0;
	for (size_t i = 0; i < sp.len; i++) {
		if (sp.s[i] == '\\' && i + 1 < sp.len &&
		    (lp_class(sp.s[i + 1]) & escapable))
			i++;
		out[n++] = sp.s[i];
	}
	return n;
}

static bool lp_is_bool(const char *s, size_t n)
{
	static const char *const names[] = {"t",     "T",     "true", "True",
					    "TRUE",  "f",     "F",    "false",
					    "False", "FALSE", NULL};
	if (!strchr("tTfF", s[0]))
		return false;
	for (size_t i = 0; names[i]; i++)
		if (strlen(names[i]) == n && !memcmp(names[i], s, n))
			return true;
	return false;
}

static bool lp_is_nonfinite(const char *s, size_t n)
{
	if (n > 0 && (*s == '+' || *s == '-')) {
		s++;
		n--;
	}
	return (n == 3 && !strncasecmp(s, "nan", 3)) ||
	       (n == 3 && !strncasecmp(s, "inf", 3)) ||
	       (n == 8 && !strncasecmp(s, "infinity", 8));
}

/* [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)? over the whole of s[0..n). */
static bool lp_is_float(const char *s, size_t n)
{
	size_t i = 0, d = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, d++;
	}
	if (d == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, e++;
		if (e == 0)
			return false;
	}
	return i == n;
}

/* Parse unsigned decimal digits s[0..n) (n >= 1) into *ret; -ERANGE on
 * overflow, -EINVAL on a non-digit. */
static int lp_u64(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned dgt = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - dgt) / 10)
			return -ERANGE;
		v = v * 10 + dgt;
	}
	*ret = v;
	return 0;
}

static int lp_value(struct span v, const char *fname, int line, double *ret,
		    struct dc_parse_error *err)
{
	const char *s = v.s;
	size_t n = v.len;
	uint64_t u = 0;
	int rc;

	if (n == 0)
		return fail(err, DC_REASON_BAD_LINE,
			    "line %d: field '%.40s' has no value", line, fname);
	if (s[0] == '"')
		return fail(err, DC_REASON_NON_NUMERIC,
			    "line %d: field '%.40s' is a string", line, fname);
	if (lp_is_bool(s, n))
		return fail(err, DC_REASON_NON_NUMERIC,
			    "line %d: field '%.40s' is a boolean", line, fname);
	if (lp_is_nonfinite(s, n))
		return fail(err, DC_REASON_NON_FINITE,
			    "line %d: field '%.40s' is %.*s", line, fname,
			    (int)n, s);
	if (s[n - 1] == 'i' || s[n - 1] == 'u') {
		bool neg = s[0] == '-' && s[n - 1] == 'i';
		bool plus = s[0] == '+' && s[n - 1] == 'i';
		size_t off = (neg || plus) ? 1 : 0;
		rc = lp_u64(s + off, n - 1 - off, &u);
		if (rc == -EINVAL)
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: field '%.40s': bad integer "
				    "'%.*s'",
				    line, fname, (int)(n > 40 ? 40 : n), s);
		if (rc == -ERANGE || u > (uint64_t)DC_VALUE_MAX)
			return fail(err, DC_REASON_OUT_OF_RANGE,
				    "line %d: field '%.40s' %.*s exceeds the "
				    "bound %g",
				    line, fname, (int)(n > 40 ? 40 : n), s,
				    DC_VALUE_MAX);
		*ret = neg ? -(double)u : (double)u;
		return 0;
	}
	if (!lp_is_float(s, n) || n >= 64)
		return fail(err, DC_REASON_BAD_LINE,
			    "line %d: field '%.40s': bad number '%.*s'", line,
			    fname, (int)(n > 40 ? 40 : n), s);
	char buf[64];
	memcpy(buf, s, n);
	buf[n] = '\0';
	double d = strtod(buf, NULL);
	if (!isfinite(d))
		return fail(err, DC_REASON_NON_FINITE,
			    "line %d: field '%.40s' %s overflows", line, fname,
			    buf);
	if (fabs(d) > DC_VALUE_MAX)
		return fail(err, DC_REASON_OUT_OF_RANGE,
			    "line %d: field '%.40s' %s exceeds the bound %g",
			    line, fname, buf, DC_VALUE_MAX);
	*ret = d;
	return 0;
}

static int span_cmp(struct span a, struct span b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = memcmp(a.s, b.s, n);
	if (c)
		return c;
	return a.len < b.len ? -1 : a.len > b.len;
}

/* One non-empty, non-comment line s[0..end); appends to obs[*n..). */
static int lp_line(struct dc_parser *p, const char *s, const char *end,
		   int line, struct dc_obs *obs, size_t max_obs, size_t *n,
		   struct dc_parse_error *err)
{
	struct span meas, tagk[LP_MAX_TAGS], tag[LP_MAX_TAGS];
	size_t ntags = 0, first = *n;
	char prefix[DC_SERIES_MAX + 1];
	size_t plen = 0;
	int series_tag = -1;
	const char *q;
	int rc;

	/* measurement: escapes for ',' and ' ' */
	q = lp_scan(s, end, LP_COMMA | LP_SPACE, LP_COMMA | LP_SPACE);
	meas = (struct span){s, (size_t)(q - s)};
	if (meas.len == 0)
		return fail(err, DC_REASON_BAD_LINE,
			    "line %d: empty measurement", line);
	/* tag set */
	while (q < end && *q == ',') {
		const char *k = q + 1;
		const char *eq = lp_scan(k, end, LP_ALL, LP_ALL);
		if (eq >= end || *eq != '=' || eq == k)
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: bad tag (want key=value)", line);
		const char *v = eq + 1;
		q = lp_scan(v, end, LP_ALL, LP_ALL);
		if (q == v || (q < end && *q == '='))
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: bad tag value", line);
		if (ntags == LP_MAX_TAGS)
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: more than %d tags", line,
				    LP_MAX_TAGS);
		tagk[ntags] = (struct span){k, (size_t)(eq - k)};
		tag[ntags] = (struct span){k, (size_t)(q - k)};
		ntags++;
	}
	if (q >= end || *q != ' ')
		return fail(err, DC_REASON_MISSING_FIELD, "line %d: no fields",
			    line);
	while (q < end && *q == ' ')
		q++;
	if (q >= end)
		return fail(err, DC_REASON_MISSING_FIELD, "line %d: no fields",
			    line);

	/* sort tags by key (insertion sort: lines carry a handful) */
	for (size_t i = 1; i < ntags; i++) {
		struct span kk = tagk[i], tt = tag[i];
		size_t j = i;
		for (; j > 0 && span_cmp(tagk[j - 1], kk) > 0; j--) {
			tagk[j] = tagk[j - 1];
			tag[j] = tag[j - 1];
		}
		tagk[j] = kk;
		tag[j] = tt;
	}
	for (size_t i = 0; i < ntags; i++) {
		if (i > 0 && span_cmp(tagk[i - 1], tagk[i]) == 0)
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: duplicate tag '%.*s'", line,
				    (int)(tagk[i].len > 40 ? 40 : tagk[i].len),
				    tagk[i].s);
		if (tagk[i].len == 6 && !memcmp(tagk[i].s, "series", 6))
			series_tag = (int)i;
	}

	/* the series prefix: the `series` tag's value, or the measurement
	 * and the sorted tag set as written */
	if (series_tag >= 0) {
		struct span v = tag[series_tag];
		v.s += 7;
		v.len -= 7;
		if (v.len > DC_SERIES_MAX)
			return fail(err, DC_REASON_BAD_SERIES,
				    "line %d: series tag is %zu bytes (limit "
				    "%d)",
				    line, v.len, DC_SERIES_MAX);
		plen = lp_unescape(prefix, v, LP_ALL);
	} else {
		size_t need = meas.len;
		for (size_t i = 0; i < ntags; i++)
			need += 1 + tag[i].len;
		if (need > DC_SERIES_MAX)
			return fail(err, DC_REASON_BAD_SERIES,
				    "line %d: measurement and tags are %zu "
				    "bytes (limit %d)",
				    line, need, DC_SERIES_MAX);
		memcpy(prefix, meas.s, meas.len);
		plen = meas.len;
		for (size_t i = 0; i < ntags; i++) {
			prefix[plen++] = ',';
			memcpy(prefix + plen, tag[i].s, tag[i].len);
			plen += tag[i].len;
		}
	}

	/* field set */
	for (;;) {
		const char *k = q;
		const char *eq = lp_scan(k, end, LP_ALL, LP_ALL);
		char fname[DC_SERIES_MAX + 1];
		size_t flen;
		if (*n == first && (eq >= end || *eq == ' '))
			return fail(err, DC_REASON_MISSING_FIELD,
				    "line %d: no fields", line);
		if (eq >= end || *eq != '=' || eq == k)
			return fail(err, DC_REASON_BAD_LINE,
				    "line %d: bad field (want key=value)",
				    line);
		struct span fk = {k, (size_t)(eq - k)};
		if (fk.len > DC_SERIES_MAX)
			return fail(err, DC_REASON_BAD_SERIES,
				    "line %d: field key is %zu bytes", line,
				    fk.len);
		flen = lp_unescape(fname, fk, LP_ALL);
		fname[flen] = '\0';
		const char *v = eq + 1;
		if (v < end && *v == '"') {
			/* a string: skip it so the error names the field */
			const char *c = v + 1;
			while (c < end && *c != '"')
				c += (*c == '\\' && c + 1 < end) ? 2 : 1;
			if (c >= end)
				return fail(err, DC_REASON_BAD_LINE,
					    "line %d: unterminated string",
					    line);
			q = c + 1;
		} else {
			q = lp_scan(v, end, LP_COMMA | LP_SPACE, 0);
		}
		double val = 0;
		rc = lp_value((struct span){v, (size_t)(q - v)}, fname, line,
			      &val, err);
		if (rc < 0)
			return rc;
		if (*n >= max_obs)
			return fail(err, DC_REASON_TOO_MANY_VALUES,
				    "more than %zu values", max_obs);
		rc =
		    make_series(obs[*n].series, prefix, plen, fname, flen, err);
		if (rc < 0)
			return rc;
		for (size_t i = first; i < *n; i++)
			if (!strcmp(obs[i].series, obs[*n].series))
				return fail(err, DC_REASON_BAD_LINE,
					    "line %d: duplicate field "
					    "'%.40s'",
					    line, fname);
		obs[*n].value = val;
		(*n)++;
		if (q >= end || *q != ',')
			break;
		q++;
	}

	/* timestamp */
	while (q < end && *q == ' ')
		q++;
	if (q >= end)
		return fail(err, DC_REASON_MISSING_FIELD,
			    "line %d: no timestamp", line);
	const char *t = q;
	while (q < end && *q != ' ')
		q++;
	const char *tend = q;
	while (q < end && *q == ' ')
		q++;
	if (q != end)
		return fail(err, DC_REASON_BAD_LINE,
			    "line %d: junk after the timestamp", line);
	uint64_t tv = 0;
	bool neg = *t == '-';
	rc = lp_u64(t + neg, (size_t)(tend - t) - neg, &tv);
	if (rc == -EINVAL)
		return fail(err, DC_REASON_BAD_TIMESTAMP,
			    "line %d: timestamp '%.*s' is not an integer", line,
			    (int)(tend - t > 40 ? 40 : tend - t), t);
	int64_t ts;
	if (neg || rc == -ERANGE || tv > INT64_MAX ||
	    dc_ts_from_epoch((int64_t)tv, p->opts.ts_unit, &ts) < 0)
		return fail(err, DC_REASON_BAD_TIMESTAMP,
			    "line %d: timestamp outside "
			    "1970-01-01..2200-01-01",
			    line);
	for (size_t i = first; i < *n; i++)
		obs[i].ts_ns = ts;
	return 0;
}

static int parse_influx(struct dc_parser *p, const char *payload, size_t len,
			struct dc_obs *obs, size_t max_obs, size_t *ret_n,
			struct dc_parse_error *err)
{
	size_t v = utf8_valid_prefix((const unsigned char *)payload, len);
	if (v != len)
		return fail(err, DC_REASON_BAD_UTF8,
			    "payload is not UTF-8 (byte %zu)", v);
	const char *s = payload, *end = payload + len;
	size_t n = 0;
	int line = 0;
	while (s < end) {
		const char *e = memchr(s, '\n', (size_t)(end - s));
		if (!e)
			e = end;
		const char *le = e;
		line++;
		if (le > s && le[-1] == '\r')
			le--;
		const char *b = s;
		while (b < le && (*b == ' ' || *b == '\t'))
			b++;
		if (b < le && *b != '#') {
			if (memchr(b, '\0', (size_t)(le - b)))
				return fail(err, DC_REASON_BAD_LINE,
					    "line %d: NUL byte", line);
			int rc = lp_line(p, b, le, line, obs, max_obs, &n, err);
			if (rc < 0)
				return rc;
		}
		s = e + 1;
	}
	if (n == 0)
		return fail(err, DC_REASON_EMPTY, "no lines");
	*ret_n = n;
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
		return fail(err, DC_REASON_EMPTY, "empty payload");
	if (p->opts.max_message_bytes && len > p->opts.max_message_bytes)
		return fail(err, DC_REASON_TOO_LARGE, "%zu bytes (limit %zu)",
			    len, p->opts.max_message_bytes);
	/* an empty key counts as no key */
	if (key && key_len == 0)
		key = NULL;
	if (key && p->opts.format == CFG_INPUT_JSON) {
		rc = check_series(key, key_len, "Kafka key", err);
		if (rc < 0)
			return rc;
	}
	if (p->opts.format == CFG_INPUT_JSON)
		rc = parse_json(p, payload, len, key, key_len, obs, max_obs, &n,
				err);
	else
		rc = parse_influx(p, payload, len, obs, max_obs, &n, err);
	if (rc < 0)
		return rc;
	*ret_n = n;
	return 0;
}
