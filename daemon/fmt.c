/*
 * Number formatting for the daemon's JSON output (forecast messages carry
 * H floats each; printf would be the most expensive part of producing
 * them).
 */
#include "daemon/daemon.h"

#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A float as the shortest of up to 9 significant digits (enough to read
 * back the same float), in the plain notation JSON allows.  printf's %g
 * spends ~300 ns per number; this is a few tens.  Out-of-range magnitudes
 * fall back to printf.
 */
size_t dc_format_float(char *p, float f)
{
	static const double pow10[] = {1e0,  1e1,  1e2,	 1e3,  1e4,  1e5,
				       1e6,  1e7,  1e8,	 1e9,  1e10, 1e11,
				       1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
	double a = fabs((double)f);
	size_t n = 0;
	if (a == 0.0) {
		p[0] = '0';
		return 1;
	}
	if (!(a >= 1e-4 && a < 1e9))
		return (size_t)sprintf(p, "%.9g", (double)f);
	if (f < 0)
		p[n++] = '-';
	/* e: decimal exponent of a, a in [10^e, 10^(e+1)) */
	int e = 0;
	if (a >= 1.0) {
		while (e < 8 && a >= pow10[e + 1])
			e++;
	} else {
		e = -1;
		while (e > -4 && a * pow10[-e] < 1.0)
			e--;
	}
	/* 9 digits: m = round(a * 10^(8 - e)), 10^8 <= m < 10^9 */
	int k = 8 - e; /* 0 .. 12 */
	uint64_t m = (uint64_t)llround(a * pow10[k]);
	if (m >= 1000000000u) { /* rounding carried into a 10th digit */
		m /= 10;
		k--;
		e++;
	}
	char d[9];
	for (int i = 8; i >= 0; i--) {
		d[i] = (char)('0' + m % 10);
		m /= 10;
	}
	int last = 8; /* drop trailing zeros after the point */
	while (last > 0 && last > e && d[last] == '0')
		last--;
	if (e >= 0) {
		for (int i = 0; i <= e; i++)
			p[n++] = d[i];
		if (last > e) {
			p[n++] = '.';
			for (int i = e + 1; i <= last; i++)
				p[n++] = d[i];
		}
	} else {
		p[n++] = '0';
		p[n++] = '.';
		for (int i = -1; i > e; i--)
			p[n++] = '0';
		for (int i = 0; i <= last; i++)
			p[n++] = d[i];
	}
	return n;
}

const char *dc_fmt_num(float v, char *buf, size_t n, const char *none)
{
	if (!isfinite(v))
		return none;
	snprintf(buf, n, "%.6g", (double)v);
	return buf;
}

void dc_csv_field(FILE *f, const char *s)
{
	if (!s)
		s = "";
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

json_t *dc_json_num(float v)
{
	return isfinite(v) ? json_real((double)v) : json_null();
}

int dc_format_parse(const char *cmd, const char *text, enum dc_format *ret)
{
	if (!strcmp(text, "table"))
		*ret = DC_FORMAT_TABLE;
	else if (!strcmp(text, "csv"))
		*ret = DC_FORMAT_CSV;
	else if (!strcmp(text, "json"))
		*ret = DC_FORMAT_JSON;
	else {
		fprintf(stderr,
			"driftcast %s: --format '%s': expected table, csv or "
			"json\n",
			cmd, text);
		return -EINVAL;
	}
	return 0;
}

void dc_json_emit(json_t *j, size_t index)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
				    JSON_REAL_PRECISION(7));
	printf("%s%s", index ? ",\n" : "", s ? s : "null");
	free(s);
	json_decref(j);
}
