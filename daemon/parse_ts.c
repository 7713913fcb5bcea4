/*
 * Message timestamps: epoch numbers scaled by the configured unit (or by
 * magnitude), and RFC 3339 strings (through the tree's one date grammar,
 * fc_time_parse), all checked against the accepted range
 * DC_TS_MIN_NS..DC_TS_MAX_NS.
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <math.h>

#include "forecast/forecast.h"

static int ts_check(int64_t ns, int64_t *ret_ns)
{
	if (ns < DC_TS_MIN_NS || ns >= DC_TS_MAX_NS)
		return -ERANGE;
	*ret_ns = ns;
	return 0;
}

int dc_ts_from_rfc3339(const char *s, size_t len, int64_t *ret_ns)
{
	struct fc_time t;
	int rc = fc_time_parse(s, len, FC_TIME_RFC3339, &t);
	if (rc < 0)
		return rc;
	if (t.sec < DC_TS_MIN_NS / 1000000000 ||
	    t.sec >= DC_TS_MAX_NS / 1000000000)
		return -ERANGE;
	return ts_check(t.sec * 1000000000 + t.nsec, ret_ns);
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
