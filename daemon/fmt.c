/*
 * Output formatting: floats and strings as JSON text for the forecast
 * messages (they carry H floats each; printf would be the most expensive
 * part of producing them), and the table / CSV / JSON helpers of the
 * read-only commands.
 */
#include "daemon/fmt.h"

#include "daemon/cli.h"
#include "storage/storage.h"

#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A float as up to 9 significant digits (enough to read back the same
 * float; trailing zeros dropped), in the plain notation JSON allows.
 * printf's %g spends ~300 ns per number; this ~20 (the digits from one
 * rounded integer, written two at a time).  Out-of-range magnitudes fall
 * back to printf.
 */

/* digit pairs "00".."99" */
static const char pairs[201] = "00010203040506070809"
			       "10111213141516171819"
			       "20212223242526272829"
			       "30313233343536373839"
			       "40414243444546474849"
			       "50515253545556575859"
			       "60616263646566676869"
			       "70717273747576777879"
			       "80818283848586878889"
			       "90919293949596979899";

size_t dc_format_float(char *p, float f)
{
	/* 10^k for k = -4 .. 13 at p10[k + 4] */
	static const double p10[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0,  1e1,
				     1e2,  1e3,	 1e4,  1e5,  1e6,  1e7,
				     1e8,  1e9,	 1e10, 1e11, 1e12, 1e13};
	double a = fabs((double)f);
	if (a == 0.0) {
		p[0] = '0';
		return 1;
	}
	if (!(a >= 1e-4 && a < 1e9))
		return (size_t)sprintf(p, "%.9g", (double)f);
	char *s = p;
	if (f < 0)
		*s++ = '-';
	/* e: decimal exponent of a, a in [10^e, 10^(e+1)); from the binary
	 * exponent of the (normal: >= 1e-4) float, log10(2) ~ 1233 / 4096 */
	uint32_t bits;
	memcpy(&bits, &f, sizeof(bits));
	int e2 = (int)((bits >> 23) & 0xff) - 127; /* a in [2^e2, 2^(e2+1)) */
	int e = e2 * 1233 / 4096; /* ~e2 * log10(2), within one */
	if (e < -4)
		e = -4;
	if (a < p10[e + 4])
		e--;
	else if (a >= p10[e + 5])
		e++;
	/* 9 digits: m = round(a * 10^(8 - e)), 10^8 <= m < 10^9 */
	uint32_t m = (uint32_t)(a * p10[8 - e + 4] + 0.5);
	if (m >= 1000000000u) { /* rounding carried into a 10th digit */
		m = 100000000u;
		e++;
	}
	/* the 9 digits, d[0] first */
	char d[10];
	uint32_t hi = m / 10000000u, lo = m % 10000000u; /* 2 + 7 digits */
	memcpy(d, pairs + 2 * hi, 2);
	uint32_t x = lo / 100000u, y = lo % 100000u;
	memcpy(d + 2, pairs + 2 * x, 2);
	x = y / 1000u, y %= 1000u;
	memcpy(d + 4, pairs + 2 * x, 2);
	x = y / 10u;
	memcpy(d + 6, pairs + 2 * x, 2);
	d[8] = (char)('0' + y % 10u);
	int last = 8; /* drop trailing zeros after the point */
	while (last > e && last > 0 && d[last] == '0')
		last--;
	if (e >= 0) {
		memcpy(s, d, (size_t)e + 1);
		s += e + 1;
		if (last > e) {
			*s++ = '.';
			memcpy(s, d + e + 1, (size_t)(last - e));
			s += last - e;
		}
	} else {
		*s++ = '0';
		*s++ = '.';
		for (int i = -1; i > e; i--)
			*s++ = '0';
		memcpy(s, d, (size_t)last + 1);
		s += last + 1;
	}
	return (size_t)(s - p);
}

size_t dc_format_ns_seconds(char *p, int64_t ns)
{
	char d[32];
	size_t n = 0, len = 0;
	/* unsigned: -INT64_MIN does not overflow */
	uint64_t u = ns < 0 ? -(uint64_t)ns : (uint64_t)ns;
	uint64_t whole = u / 1000000000u, frac = u % 1000000000u;
	if (ns < 0)
		p[len++] = '-';
	do {
		d[n++] = (char)('0' + whole % 10);
		whole /= 10;
	} while (whole);
	while (n)
		p[len++] = d[--n];
	if (frac) {
		int digits = 9;
		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		p[len++] = '.';
		for (int i = digits - 1; i >= 0; i--, frac /= 10)
			p[len + (size_t)i] = (char)('0' + frac % 10);
		len += (size_t)digits;
	}
	return len;
}

size_t dc_json_escape(char *dst, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (; *src; src++) {
		unsigned char ch = (unsigned char)*src;
		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex[ch >> 4];
			dst[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			dst[o++] = (char)ch;
		}
	}
	return o;
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

/* The fields that apply to one event type only: null elsewhere. */
static void event_json_extra(json_t *j, const struct store_event *ev)
{
	bool adapt = ev->type == STORE_EV_ADAPT_ACCEPTED ||
		     ev->type == STORE_EV_ADAPT_REJECTED;
	bool window = adapt && (ev->data_from || ev->data_until);
	json_object_set_new(j, "data_from",
			    window ? json_integer(ev->data_from) : json_null());
	json_object_set_new(j, "data_until",
			    window ? json_integer(ev->data_until)
				   : json_null());
	/* JSON has no infinity: a non-finite rejected value is a string */
	json_t *v = json_null();
	if (ev->type == STORE_EV_REJECTED_VALUE && isfinite(ev->value))
		v = json_real((double)ev->value);
	else if (ev->type == STORE_EV_REJECTED_VALUE && isinf(ev->value))
		v = json_string(ev->value > 0 ? "inf" : "-inf");
	json_object_set_new(j, "value", v);
	json_object_set_new(j, "filled",
			    ev->type == STORE_EV_GAP_FILLED
				? json_integer(ev->filled)
				: json_null());
	json_object_set_new(j, "detector_stat",
			    ev->type == STORE_EV_DRIFT
				? dc_json_num(ev->detector_stat)
				: json_null());
	json_object_set_new(j, "version_restored",
			    ev->type == STORE_EV_ROLLBACK
				? json_integer((json_int_t)ev->version_restored)
				: json_null());
}

json_t *dc_event_json(const struct store_event *ev)
{
	char t[32];
	const char *type = store_event_type_name(ev->type);
	const char *trig = store_trigger_name(ev->trigger);
	store_format_time(ev->ts, t, sizeof(t));
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(ev->id));
	json_object_set_new(j, "time", json_string(t));
	json_object_set_new(j, "ts", json_integer(ev->ts));
	json_object_set_new(j, "series", json_string(ev->series));
	json_object_set_new(j, "event", json_string(type));
	json_object_set_new(j, "trigger", json_string(trig));
	json_object_set_new(j, "version_from",
			    json_integer((json_int_t)ev->version_from));
	json_object_set_new(j, "version_to",
			    json_integer((json_int_t)ev->version_to));
	json_object_set_new(j, "steps", json_integer(ev->steps));
	json_object_set_new(j, "loss_before", dc_json_num(ev->loss_before));
	json_object_set_new(j, "loss_after", dc_json_num(ev->loss_after));
	json_object_set_new(j, "guard_before", dc_json_num(ev->guard_before));
	json_object_set_new(j, "guard_after", dc_json_num(ev->guard_after));
	json_object_set_new(j, "update_norm", dc_json_num(ev->update_norm));
	json_object_set_new(j, "adapted_error", dc_json_num(ev->adapted_error));
	json_object_set_new(j, "shadow_error", dc_json_num(ev->shadow_error));
	event_json_extra(j, ev);
	json_object_set_new(j, "reason",
			    json_string(ev->reason ? ev->reason : ""));
	return j;
}

struct store *dc_open_read_only(const char *cmd, const char *db)
{
	char err[1024];
	struct store *s = NULL;
	struct store_options so = {.read_only = true};
	if (store_open(db, &so, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "driftcast %s: %s\n", cmd, err);
		return NULL;
	}
	return s;
}

bool dc_db_arg(const char *cmd, const char **dbs, int *n, const char *db)
{
	if (*n >= DC_DB_MAX) {
		fprintf(stderr,
			"driftcast %s: --db '%s': at most %d databases at once "
			"(SQLite attaches %d to the first)\n",
			cmd, db, DC_DB_MAX, STORE_ATTACH_MAX);
		return false;
	}
	dbs[(*n)++] = db;
	return true;
}

int dc_db_width(const char *const *dbs, int n)
{
	size_t w = 2;
	for (int i = 0; i < n; i++)
		if (strlen(dbs[i]) > w)
			w = strlen(dbs[i]);
	return (int)w;
}

struct store *dc_open_read_only_many(const char *cmd, const char *const *dbs,
				     int n)
{
	char err[1024];
	struct store *s = dc_open_read_only(cmd, dbs[0]);
	for (int i = 1; s && i < n; i++)
		if (store_attach(s, dbs[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "driftcast %s: %s\n", cmd, err);
			store_free(s);
			s = NULL;
		}
	return s;
}

int dc_output_done(const char *cmd, struct store *s, int r, const char *err)
{
	store_free(s);
	if (r < 0) {
		fprintf(stderr, "driftcast %s: %s\n", cmd, err);
		return DC_EXIT_FAILURE;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "driftcast %s: writing output: %s\n", cmd,
			strerror(errno));
		return DC_EXIT_FAILURE;
	}
	return DC_EXIT_OK;
}
