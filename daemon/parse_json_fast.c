/*
 * JSON fast path.  Messages of the documented shape -- one flat object whose
 * keys are only series/ts/value/values, strings without escapes, numbers --
 * are decoded here in one pass without building a DOM.  It only ever
 * *accepts*: anything else, and every message that turns out to be
 * unusable, goes to jansson (parse_json.c), which is the reference and
 * writes every reason.  tests/fuzz/fuzz_parse_json.c checks that both paths
 * agree on every input.
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

bool dc_parse_json_fast(struct dc_parser *p, const char *payload, size_t len,
			const char *key, size_t key_len, struct dc_obs *obs,
			size_t max_obs, size_t *ret_n)
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
			: dc_check_series(series, slen, "", &scratch) < 0)
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
		    dc_make_series(obs[i].series, series, slen, m.names[i].s,
				   m.names[i].len, &scratch) < 0)
			return false;
		obs[i].ts_ns = ts;
	}
	*ret_n = m.nvalues;
	return true;
}
