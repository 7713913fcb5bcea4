/*
 * Influx line protocol: every non-empty, non-comment line of a payload is
 * one measurement, tag set, field set and integer timestamp; each numeric
 * field becomes one observation.  Lines are scanned in place, with the
 * escape rules of InfluxDB's own parser.
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LP_MAX_TAGS 64

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
		return dc_parse_fail(err, DC_REASON_BAD_LINE,
				     "line %d: field '%.40s' has no value",
				     line, fname);
	if (s[0] == '"')
		return dc_parse_fail(err, DC_REASON_NON_NUMERIC,
				     "line %d: field '%.40s' is a string", line,
				     fname);
	if (lp_is_bool(s, n))
		return dc_parse_fail(err, DC_REASON_NON_NUMERIC,
				     "line %d: field '%.40s' is a boolean",
				     line, fname);
	if (lp_is_nonfinite(s, n))
		return dc_parse_fail(err, DC_REASON_NON_FINITE,
				     "line %d: field '%.40s' is %.*s", line,
				     fname, (int)n, s);
	if (s[n - 1] == 'i' || s[n - 1] == 'u') {
		bool neg = s[0] == '-' && s[n - 1] == 'i';
		bool plus = s[0] == '+' && s[n - 1] == 'i';
		size_t off = (neg || plus) ? 1 : 0;
		rc = lp_u64(s + off, n - 1 - off, &u);
		if (rc == -EINVAL)
			return dc_parse_fail(
			    err, DC_REASON_BAD_LINE,
			    "line %d: field '%.40s': bad integer "
			    "'%.*s'",
			    line, fname, (int)(n > 40 ? 40 : n), s);
		if (rc == -ERANGE || u > (uint64_t)DC_VALUE_MAX)
			return dc_parse_fail(
			    err, DC_REASON_OUT_OF_RANGE,
			    "line %d: field '%.40s' %.*s exceeds the "
			    "bound %g",
			    line, fname, (int)(n > 40 ? 40 : n), s,
			    DC_VALUE_MAX);
		*ret = neg ? -(double)u : (double)u;
		return 0;
	}
	if (!lp_is_float(s, n) || n >= 64)
		return dc_parse_fail(
		    err, DC_REASON_BAD_LINE,
		    "line %d: field '%.40s': bad number '%.*s'", line, fname,
		    (int)(n > 40 ? 40 : n), s);
	char buf[64];
	memcpy(buf, s, n);
	buf[n] = '\0';
	double d = strtod(buf, NULL);
	if (!isfinite(d))
		return dc_parse_fail(err, DC_REASON_NON_FINITE,
				     "line %d: field '%.40s' %s overflows",
				     line, fname, buf);
	if (fabs(d) > DC_VALUE_MAX)
		return dc_parse_fail(
		    err, DC_REASON_OUT_OF_RANGE,
		    "line %d: field '%.40s' %s exceeds the bound %g", line,
		    fname, buf, DC_VALUE_MAX);
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

/* The measurement and tag set of one line, as spans of the payload.  A
 * tag's span is the whole "key=value" (as it joins the series prefix). */
struct lp_head {
	struct span meas;
	struct span tagk[LP_MAX_TAGS], tag[LP_MAX_TAGS];
	size_t ntags;
};

/* Scan the measurement and the tag set from s; *ret_q is where the fields
 * begin (after the separating blanks). */
static int lp_measurement_tags(const char *s, const char *end, int line,
			       struct lp_head *h, const char **ret_q,
			       struct dc_parse_error *err)
{
	const char *q;

	/* measurement: escapes for ',' and ' ' */
	q = lp_scan(s, end, LP_COMMA | LP_SPACE, LP_COMMA | LP_SPACE);
	h->meas = (struct span){s, (size_t)(q - s)};
	h->ntags = 0;
	if (h->meas.len == 0)
		return dc_parse_fail(err, DC_REASON_BAD_LINE,
				     "line %d: empty measurement", line);
	while (q < end && *q == ',') {
		const char *k = q + 1;
		const char *eq = lp_scan(k, end, LP_ALL, LP_ALL);
		if (eq >= end || *eq != '=' || eq == k)
			return dc_parse_fail(
			    err, DC_REASON_BAD_LINE,
			    "line %d: bad tag (want key=value)", line);
		const char *v = eq + 1;
		q = lp_scan(v, end, LP_ALL, LP_ALL);
		if (q == v || (q < end && *q == '='))
			return dc_parse_fail(err, DC_REASON_BAD_LINE,
					     "line %d: bad tag value", line);
		if (h->ntags == LP_MAX_TAGS)
			return dc_parse_fail(err, DC_REASON_BAD_LINE,
					     "line %d: more than %d tags", line,
					     LP_MAX_TAGS);
		h->tagk[h->ntags] = (struct span){k, (size_t)(eq - k)};
		h->tag[h->ntags] = (struct span){k, (size_t)(q - k)};
		h->ntags++;
	}
	if (q >= end || *q != ' ')
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "line %d: no fields", line);
	while (q < end && *q == ' ')
		q++;
	if (q >= end)
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "line %d: no fields", line);
	*ret_q = q;
	return 0;
}

/* Sort the tags by key (insertion sort: lines carry a handful), refuse a
 * duplicate key, and find the `series` tag (*ret_series_tag, or -1). */
static int lp_sort_tags(struct lp_head *h, int line, int *ret_series_tag,
			struct dc_parse_error *err)
{
	int series_tag = -1;
	for (size_t i = 1; i < h->ntags; i++) {
		struct span kk = h->tagk[i], tt = h->tag[i];
		size_t j = i;
		for (; j > 0 && span_cmp(h->tagk[j - 1], kk) > 0; j--) {
			h->tagk[j] = h->tagk[j - 1];
			h->tag[j] = h->tag[j - 1];
		}
		h->tagk[j] = kk;
		h->tag[j] = tt;
	}
	for (size_t i = 0; i < h->ntags; i++) {
		if (i > 0 && span_cmp(h->tagk[i - 1], h->tagk[i]) == 0)
			return dc_parse_fail(
			    err, DC_REASON_BAD_LINE,
			    "line %d: duplicate tag '%.*s'", line,
			    (int)(h->tagk[i].len > 40 ? 40 : h->tagk[i].len),
			    h->tagk[i].s);
		if (h->tagk[i].len == 6 && !memcmp(h->tagk[i].s, "series", 6))
			series_tag = (int)i;
	}
	*ret_series_tag = series_tag;
	return 0;
}

/* The series prefix into prefix (DC_SERIES_MAX + 1 bytes): the `series`
 * tag's value, or the measurement and the sorted tag set as written. */
static int lp_prefix(const struct lp_head *h, int series_tag, int line,
		     char *prefix, size_t *ret_plen, struct dc_parse_error *err)
{
	size_t plen;
	if (series_tag >= 0) {
		struct span v = h->tag[series_tag];
		v.s += 7;
		v.len -= 7;
		if (v.len > DC_SERIES_MAX)
			return dc_parse_fail(err, DC_REASON_BAD_SERIES,
					     "line %d: series tag is %zu bytes "
					     "(limit %d)",
					     line, v.len, DC_SERIES_MAX);
		*ret_plen = lp_unescape(prefix, v, LP_ALL);
		return 0;
	}
	size_t need = h->meas.len;
	for (size_t i = 0; i < h->ntags; i++)
		need += 1 + h->tag[i].len;
	if (need > DC_SERIES_MAX)
		return dc_parse_fail(err, DC_REASON_BAD_SERIES,
				     "line %d: measurement and tags are %zu "
				     "bytes (limit %d)",
				     line, need, DC_SERIES_MAX);
	memcpy(prefix, h->meas.s, h->meas.len);
	plen = h->meas.len;
	for (size_t i = 0; i < h->ntags; i++) {
		prefix[plen++] = ',';
		memcpy(prefix + plen, h->tag[i].s, h->tag[i].len);
		plen += h->tag[i].len;
	}
	*ret_plen = plen;
	return 0;
}

/* The value of a field starting at v: a quoted string is skipped whole (so
 * the error names the field), anything else runs to ',' or ' '. */
static int lp_field_value(const char *v, const char *end, int line,
			  struct span *ret, struct dc_parse_error *err)
{
	const char *q;
	if (v < end && *v == '"') {
		const char *c = v + 1;
		while (c < end && *c != '"')
			c += (*c == '\\' && c + 1 < end) ? 2 : 1;
		if (c >= end)
			return dc_parse_fail(err, DC_REASON_BAD_LINE,
					     "line %d: unterminated string",
					     line);
		q = c + 1;
	} else {
		q = lp_scan(v, end, LP_COMMA | LP_SPACE, 0);
	}
	*ret = (struct span){v, (size_t)(q - v)};
	return 0;
}

/* The field set from *pq; each field becomes obs[*n] with series
 * "prefix/field".  *pq ends after the last field. */
static int lp_fields(const char **pq, const char *end, int line,
		     const char *prefix, size_t plen, struct dc_obs *obs,
		     size_t max_obs, size_t *n, struct dc_parse_error *err)
{
	const char *q = *pq;
	size_t first = *n;
	int rc;
	for (;;) {
		const char *k = q;
		const char *eq = lp_scan(k, end, LP_ALL, LP_ALL);
		char fname[DC_SERIES_MAX + 1];
		size_t flen;
		if (*n == first && (eq >= end || *eq == ' '))
			return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
					     "line %d: no fields", line);
		if (eq >= end || *eq != '=' || eq == k)
			return dc_parse_fail(
			    err, DC_REASON_BAD_LINE,
			    "line %d: bad field (want key=value)", line);
		struct span fk = {k, (size_t)(eq - k)};
		if (fk.len > DC_SERIES_MAX)
			return dc_parse_fail(err, DC_REASON_BAD_SERIES,
					     "line %d: field key is %zu bytes",
					     line, fk.len);
		flen = lp_unescape(fname, fk, LP_ALL);
		fname[flen] = '\0';
		struct span fv = {eq, 0};
		rc = lp_field_value(eq + 1, end, line, &fv, err);
		if (rc < 0)
			return rc;
		q = fv.s + fv.len;
		double val = 0;
		rc = lp_value(fv, fname, line, &val, err);
		if (rc < 0)
			return rc;
		if (*n >= max_obs)
			return dc_parse_fail(err, DC_REASON_TOO_MANY_VALUES,
					     "more than %zu values", max_obs);
		rc = dc_make_series(obs[*n].series, prefix, plen, fname, flen,
				    err);
		if (rc < 0)
			return rc;
		for (size_t i = first; i < *n; i++)
			if (!strcmp(obs[i].series, obs[*n].series))
				return dc_parse_fail(err, DC_REASON_BAD_LINE,
						     "line %d: duplicate field "
						     "'%.40s'",
						     line, fname);
		obs[*n].value = val;
		(*n)++;
		if (q >= end || *q != ',')
			break;
		q++;
	}
	*pq = q;
	return 0;
}

/* The timestamp after the fields, from q: one integer, then only blanks. */
static int lp_timestamp(const char *q, const char *end, int line, int unit,
			int64_t *ret_ts, struct dc_parse_error *err)
{
	while (q < end && *q == ' ')
		q++;
	if (q >= end)
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "line %d: no timestamp", line);
	const char *t = q;
	while (q < end && *q != ' ')
		q++;
	const char *tend = q;
	while (q < end && *q == ' ')
		q++;
	if (q != end)
		return dc_parse_fail(err, DC_REASON_BAD_LINE,
				     "line %d: junk after the timestamp", line);
	uint64_t tv = 0;
	bool neg = *t == '-';
	int rc = lp_u64(t + neg, (size_t)(tend - t) - neg, &tv);
	if (rc == -EINVAL)
		return dc_parse_fail(
		    err, DC_REASON_BAD_TIMESTAMP,
		    "line %d: timestamp '%.*s' is not an integer", line,
		    (int)(tend - t > 40 ? 40 : tend - t), t);
	if (neg || rc == -ERANGE || tv > INT64_MAX ||
	    dc_ts_from_epoch((int64_t)tv, unit, ret_ts) < 0)
		return dc_parse_fail(err, DC_REASON_BAD_TIMESTAMP,
				     "line %d: timestamp outside "
				     "1970-01-01..2200-01-01",
				     line);
	return 0;
}

/* One non-empty, non-comment line s[0..end); appends to obs[*n..). */
static int lp_line(struct dc_parser *p, const char *s, const char *end,
		   int line, struct dc_obs *obs, size_t max_obs, size_t *n,
		   struct dc_parse_error *err)
{
	struct lp_head h;
	char prefix[DC_SERIES_MAX + 1];
	size_t plen = 0, first = *n;
	int series_tag = -1;
	const char *q = s;
	int64_t ts = 0;
	int rc;

	if ((rc = lp_measurement_tags(s, end, line, &h, &q, err)) < 0 ||
	    (rc = lp_sort_tags(&h, line, &series_tag, err)) < 0 ||
	    (rc = lp_prefix(&h, series_tag, line, prefix, &plen, err)) < 0 ||
	    (rc = lp_fields(&q, end, line, prefix, plen, obs, max_obs, n,
			    err)) < 0 ||
	    (rc = lp_timestamp(q, end, line, p->opts.ts_unit, &ts, err)) < 0)
		return rc;
	for (size_t i = first; i < *n; i++)
		obs[i].ts_ns = ts;
	return 0;
}

int dc_parse_influx(struct dc_parser *p, const char *payload, size_t len,
		    struct dc_obs *obs, size_t max_obs, size_t *ret_n,
		    struct dc_parse_error *err)
{
	size_t v = dc_utf8_valid_prefix((const unsigned char *)payload, len);
	if (v != len)
		return dc_parse_fail(err, DC_REASON_BAD_UTF8,
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
				return dc_parse_fail(err, DC_REASON_BAD_LINE,
						     "line %d: NUL byte", line);
			int rc = lp_line(p, b, le, line, obs, max_obs, &n, err);
			if (rc < 0)
				return rc;
		}
		s = e + 1;
	}
	if (n == 0)
		return dc_parse_fail(err, DC_REASON_EMPTY, "no lines");
	*ret_n = n;
	return 0;
}
