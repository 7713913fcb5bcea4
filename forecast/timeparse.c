/*
 * The one date grammar of the tree: CSV timestamps (dataset.c), message
 * timestamps (the daemon, strict RFC 3339) and the operator's --since/--at
 * (the daemon's history and rollback commands) all parse dates here.  It
 * lives in forecast/ because dataset.c needs it and the daemon already
 * depends on this folder; storage, which only stores epoch nanoseconds,
 * does not need it.
 *
 *   time     = date [ ("T" / "t" / " ") clock ] [ zone ]
 *   date     = num(4) sep num(2) sep num(2)   ; sep "-" or "/", both alike
 *   clock    = num(2) ":" num(2) [ ":" num(2) [ fraction ] ]
 *   fraction = "." 1*DIGIT [ ("e" / "E") [ "+" / "-" ] 1*DIGIT ]
 *   zone     = "Z" / "z" / ( "+" / "-" ) 2DIGIT ":" 2DIGIT
 *   num(w)   = as sscanf's %<w>d reads it: blanks, then an optional sign
 *              and 1 to w digits, the sign counted in w
 *
 * Fields: month 1..12, day 1..31 (a day past the month's end runs into the
 * next month), hour 0..23, minute 0..59, second 0..60 (a leap second runs
 * into the next minute); the year is any num(4), the proleptic Gregorian
 * calendar throughout.  Without a zone the time is UTC.
 *
 * FC_TIME_RFC3339 narrows this to exactly RFC 3339, which message payloads
 * are held to: num(w) is exactly w digits, sep is "-", the clock with its
 * seconds and the zone are required, the fraction has no exponent and the
 * day must exist in its month.  FC_TIME_EPOCH also accepts a whole number
 * of epoch seconds as strtoll() reads it.
 *
 * The loose grammar is the union of what dataset.c and storage's
 * store_parse_time() accepted before they shared it: the signs and blanks
 * inside fields and the exponent of a fraction are kept for that reason,
 * not because anyone should write them.
 */
#include "forecast/forecast.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Exactly width digits at p; returns the end, or NULL. */
static inline const char *scan_fixed(const char *p, const char *end, int width,
				     int *ret)
{
	int v = 0;
	if (end - p < width)
		return NULL;
	for (int i = 0; i < width; i++) {
		if (!is_digit(p[i]))
			return NULL;
		v = v * 10 + (p[i] - '0');
	}
	*ret = v;
	return p + width;
}

/* As sscanf's %<width>d: blanks, then a sign and digits, at least one
 * digit and at most width characters; returns the end, or NULL. */
static const char *scan_loose(const char *p, const char *end, int width,
			      int *ret)
{
	int v = 0, n = 0;
	bool neg = false;
	while (p < end && is_blank(*p))
		p++;
	if (p < end && (*p == '+' || *p == '-')) {
		neg = *p++ == '-';
		n++;
	}
	const char *digits = p;
	while (n < width && p < end && is_digit(*p)) {
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (p == digits)
		return NULL;
	*ret = neg ? -v : v;
	return p;
}

/* num(width) at p (see the top of the file). */
static inline const char *scan_num(const char *p, const char *end, int width,
				   bool strict, int *ret)
{
	return strict ? scan_fixed(p, end, width, ret)
		      : scan_loose(p, end, width, ret);
}

/* A whole number of epoch seconds filling s[0..len), as strtoll() reads it
 * (blanks, sign, decimal digits, no overflow). */
static bool scan_epoch(const char *s, const char *end, int64_t *ret)
{
	const char *p = s;
	bool neg = false;
	uint64_t v = 0, lim;
	while (p < end && is_blank(*p))
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (p == end)
		return false;
	for (; p < end; p++) {
		if (!is_digit(*p))
			return false;
		unsigned dg = (unsigned)(*p - '0');
		if (v > (lim - dg) / 10)
			return false;
		v = v * 10 + dg;
	}
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* The fraction at *pp ('.'), moving *pp past it; sets t->nsec (its first
 * nine digits) and, for the loose grammar, t->frac as strtod() reads the
 * whole fraction.  0, -EINVAL or -ENOMEM. */
static int scan_fraction(const char **pp, const char *end, bool strict,
			 struct fc_time *t)
{
	const char *b = *pp, *p = b + 1;
	int32_t ns = 0;
	int nd = 0;
	while (p < end && is_digit(*p)) {
		if (nd < 9) { /* digits beyond nanoseconds are truncated */
			ns = ns * 10 + (*p - '0');
			nd++;
		}
		p++;
	}
	if (nd == 0)
		return -EINVAL;
	for (; nd < 9; nd++)
		ns *= 10;
	t->nsec = ns;
	if (!strict) {
		if (p < end && (*p == 'e' || *p == 'E')) {
			const char *e = p + 1;
			if (e < end && (*e == '+' || *e == '-'))
				e++;
			if (e < end && is_digit(*e)) {
				while (e < end && is_digit(*e))
					e++;
				p = e;
			}
		}
		/* strtod, so that the value is the correctly rounded double
		 * of the text whatever its length; s need not end in a NUL */
		char buf[64], *copy = buf;
		size_t n = (size_t)(p - b);
		if (n >= sizeof(buf) && !(copy = malloc(n + 1)))
			return -ENOMEM;
		memcpy(copy, b, n);
		copy[n] = '\0';
		t->frac = strtod(copy, NULL);
		if (copy != buf)
			free(copy);
	}
	*pp = p;
	return 0;
}

/* The zone at p ("Z", "z" or +-HH:MM) as seconds east of UTC. */
static const char *scan_zone(const char *p, const char *end, int64_t *ret)
{
	if (*p == 'Z' || *p == 'z') {
		*ret = 0;
		return p + 1;
	}
	if (*p != '+' && *p != '-')
		return NULL;
	int oh, om;
	if (end - p < 6 || p[3] != ':' || !scan_fixed(p + 1, end, 2, &oh) ||
	    !scan_fixed(p + 4, end, 2, &om) || oh > 23 || om > 59)
		return NULL;
	*ret = (*p == '-' ? -1 : 1) * (int64_t)(oh * 60 + om) * 60;
	return p + 6;
}

int fc_time_parse(const char *s, size_t len, unsigned flags,
		  struct fc_time *ret)
{
	static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};
	const bool strict = flags & FC_TIME_RFC3339;
	const char *p = s, *end = s + len;
	struct fc_time t = {0, 0, 0.0};
	int y, mo, d, h = 0, mi = 0, se = 0;
	int64_t off = 0;
	char sep;
	int rc;

	if ((flags & FC_TIME_EPOCH) && scan_epoch(s, end, &t.sec)) {
		*ret = t;
		return 0;
	}
	/* date */
	if (!(p = scan_num(p, end, 4, strict, &y)) || p == end ||
	    (*p != '-' && (strict || *p != '/')))
		return -EINVAL;
	sep = *p++;
	if (!(p = scan_num(p, end, 2, strict, &mo)) || p == end || *p != sep ||
	    !(p = scan_num(p + 1, end, 2, strict, &d)))
		return -EINVAL;
	/* clock */
	if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
		if (!(p = scan_num(p + 1, end, 2, strict, &h)) || p == end ||
		    *p != ':' || !(p = scan_num(p + 1, end, 2, strict, &mi)))
			return -EINVAL;
		if (p < end && *p == ':') {
			if (!(p = scan_num(p + 1, end, 2, strict, &se)))
				return -EINVAL;
			if (p < end && *p == '.' &&
			    (rc = scan_fraction(&p, end, strict, &t)) < 0)
				return rc;
		} else if (strict) {
			return -EINVAL;
		}
	} else if (strict) {
		return -EINVAL;
	}
	/* zone */
	if (p < end) {
		if (!(p = scan_zone(p, end, &off)))
			return -EINVAL;
	} else if (strict) {
		return -EINVAL;
	}
	if (p != end || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
		return -EINVAL;
	if (strict && d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
		return -EINVAL;
	t.sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
		h * 3600 + mi * 60 + se - off;
	*ret = t;
	return 0;
}

int fc_time_parse_seconds(const char *text, int64_t *ret_sec)
{
	struct fc_time t;
	int rc = fc_time_parse(text, strlen(text), FC_TIME_EPOCH, &t);
	if (rc < 0)
		return rc;
	*ret_sec = t.sec;
	return 0;
}
