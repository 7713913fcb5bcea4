/*
 * Message timestamps: epoch numbers scaled by the configured unit (or by
 * magnitude), and RFC 3339 strings, all checked against the accepted range
 * DC_TS_MIN_NS..DC_TS_MAX_NS.
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <math.h>

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

int dc_ts_error(int rc, const char *what, struct dc_parse_error *err)
{
	if (rc == -ERANGE)
		return dc_parse_fail(err, DC_REASON_BAD_TIMESTAMP,
				     "%s outside 1970-01-01..2200-01-01", what);
	return dc_parse_fail(err, DC_REASON_BAD_TIMESTAMP, "%s is not RFC 3339",
			     what);
}
