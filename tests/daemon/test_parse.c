/*
 * Message parsing: a catalogue of malformed messages, each with the reason
 * class and text it must produce (these become dead-letter headers and
 * metric labels), the good cases of both formats, the series-key mapping
 * and the timestamp rules of docs/INPUT.md.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/daemon.h"

#define J      CFG_INPUT_JSON
#define I      CFG_INPUT_INFLUX
#define MAXOBS 16
#define LIMIT  4096

static struct dc_obs obs[MAXOBS];

static int parse(int fmt, int unit, const char *payload, size_t len,
		 const char *key, size_t *ret_n, struct dc_parse_error *err)
{
	struct dc_parse_opts o = {
	    .format = fmt, .ts_unit = unit, .max_message_bytes = LIMIT};
	struct dc_parser *p = dc_parser_new(&o);
	cr_assert_not_null(p);
	int rc = dc_parse(p, payload, len, key, key ? strlen(key) : 0, obs,
			  MAXOBS, ret_n, err);
	dc_parser_free(p);
	return rc;
}

/* Minimal UTF-8 well-formedness check for reason texts. */
static bool g_utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int k = *p < 0x80    ? 0
			: *p >= 0xf0 ? 3
			: *p >= 0xe0 ? 2
			: *p >= 0xc2 ? 1
				     : -1;
		if (k < 0)
			return false;
		p++;
		for (; k > 0; k--, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

struct bad {
	int fmt;
	const char *payload;
	int len; /* -1: strlen */
	const char *key;
	int reason;
	const char *text; /* substring of err.text */
};

#define BAD(f, p, r, t)              \
	{                            \
		f, p, -1, NULL, r, t \
	}
#define BADK(f, p, k, r, t)       \
	{                         \
		f, p, -1, k, r, t \
	}
#define BADN(f, p, n, r, t)         \
	{                           \
		f, p, n, NULL, r, t \
	}

static const struct bad catalogue[] = {
    /* framing */
    BAD(J, "", DC_REASON_EMPTY, "empty payload"),
    BAD(I, "", DC_REASON_EMPTY, "empty payload"),
    BAD(I, "\n\n# only a comment\n   \n", DC_REASON_EMPTY, "no lines"),
    /* JSON syntax */
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1",
	DC_REASON_BAD_JSON, "'}' expected"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1}}",
	DC_REASON_BAD_JSON, "end of file expected"),
    BAD(J, "not json at all", DC_REASON_BAD_JSON, "invalid token"),
    BAD(J, "{'series': 'a'}", DC_REASON_BAD_JSON, "string or '}'"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": NaN}",
	DC_REASON_BAD_JSON, "invalid token"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": Infinity}",
	DC_REASON_BAD_JSON, "invalid token"),
    BAD(J, "{\"series\": \"a\", \"series\": \"b\", \"ts\": 1, \"value\": 1}",
	DC_REASON_BAD_JSON, "duplicate object key"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1, \"values\": "
	"{\"x\": 2}}",
	DC_REASON_BAD_JSON, "both \"value\" and \"values\""),
    BAD(J, "measurements,host=a v=1 1700000000000000000", DC_REASON_BAD_JSON,
	"invalid token"),
    BAD(J, "{\"series\": \"a\\u0000b\", \"ts\": 1, \"value\": 1}",
	DC_REASON_BAD_JSON, "\\u0000"),
    /* UTF-8 */
    BAD(J, "{\"series\": \"caf\xc3\", \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_BAD_UTF8, "unable to decode"),
    BAD(J, "{\"series\": \"\xed\xa0\x80\", \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_BAD_UTF8, "unable to decode"),
    BAD(I, "m\xff,a=b v=1 1700000000000000000", DC_REASON_BAD_UTF8,
	"payload is not UTF-8 (byte 1)"),
    BAD(I, "m v=1 1700000000000000000\nm\xc0\xaf v=2 1700000000000000000",
	DC_REASON_BAD_UTF8, "byte 27"),
    BADK(J, "{\"ts\": 1700000000, \"value\": 1}", "k\xe2\x82",
	 DC_REASON_BAD_UTF8, "Kafka key is not UTF-8"),
    /* structure and types */
    BAD(J, "[1, 2, 3]", DC_REASON_WRONG_TYPE, "payload is an array"),
    BAD(J, "42", DC_REASON_WRONG_TYPE, "payload is a number"),
    BAD(J, "\"meter-17\"", DC_REASON_WRONG_TYPE, "payload is a string"),
    BAD(J, "null", DC_REASON_WRONG_TYPE, "payload is null"),
    BAD(J, "{\"ts\": 1700000000, \"value\": 1}", DC_REASON_MISSING_FIELD,
	"no \"series\" and no Kafka key"),
    BAD(J, "{\"series\": \"a\", \"value\": 1}", DC_REASON_MISSING_FIELD,
	"no \"ts\""),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000}", DC_REASON_MISSING_FIELD,
	"no \"value\" or \"values\""),
    BAD(J, "{}", DC_REASON_MISSING_FIELD, "no \"series\""),
    BAD(J, "{\"series\": 17, \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_WRONG_TYPE, "\"series\" is a number, not a string"),
    BAD(J, "{\"series\": {\"id\": \"a\"}, \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_WRONG_TYPE, "\"series\" is an object"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": \"12.3\"}",
	DC_REASON_WRONG_TYPE, "\"value\" is a string, not a number"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": null}",
	DC_REASON_WRONG_TYPE, "\"value\" is null"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": true}",
	DC_REASON_WRONG_TYPE, "\"value\" is a boolean"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": [1, [2, {}]]}",
	DC_REASON_WRONG_TYPE, "\"value\" is an array"),
    BAD(J, "{\"series\": \"a\", \"ts\": [1700000000], \"value\": 1}",
	DC_REASON_WRONG_TYPE, "\"ts\" is an array"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"values\": [1, 2]}",
	DC_REASON_WRONG_TYPE, "\"values\" is an array"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"values\": {}}",
	DC_REASON_MISSING_FIELD, "\"values\" is empty"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": 1700000000, \"values\": {\"OT\": 1, "
	"\"HUFL\": \"x\"}}",
	DC_REASON_WRONG_TYPE, "\"values\".\"HUFL\" is a string"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"values\": {\"\": 1}}",
	DC_REASON_BAD_SERIES, "empty channel name"),
    /* numbers */
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1e308}",
	DC_REASON_OUT_OF_RANGE, "exceeds the bound"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": -1e16}",
	DC_REASON_OUT_OF_RANGE, "exceeds the bound"),
    BAD(J, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1e309}",
	DC_REASON_NON_FINITE, "real number overflow"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": 1700000000, \"value\": "
	"99999999999999999999999}",
	DC_REASON_OUT_OF_RANGE, "too big integer"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": 1700000000, \"value\": "
	"2000000000000000}",
	DC_REASON_OUT_OF_RANGE, "2000000000000000 exceeds"),
    /* timestamps */
    BAD(J, "{\"series\": \"a\", \"ts\": -5, \"value\": 1}",
	DC_REASON_BAD_TIMESTAMP, "outside 1970-01-01..2200-01-01"),
    BAD(J, "{\"series\": \"a\", \"ts\": 9000000000, \"value\": 1}",
	DC_REASON_BAD_TIMESTAMP, "outside"),
    BAD(J, "{\"series\": \"a\", \"ts\": 9223372036854775807, \"value\": 1}",
	DC_REASON_BAD_TIMESTAMP, "outside"),
    BAD(J, "{\"series\": \"a\", \"ts\": \"yesterday\", \"value\": 1}",
	DC_REASON_BAD_TIMESTAMP, "\"ts\" is not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"2023-02-29T00:00:00Z\", \"value\": "
	"1}",
	DC_REASON_BAD_TIMESTAMP, "not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"2023-11-14T22:13:20\", \"value\": "
	"1}",
	DC_REASON_BAD_TIMESTAMP, "not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"2023-11-14T25:13:20Z\", \"value\": "
	"1}",
	DC_REASON_BAD_TIMESTAMP, "not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"2023-11-14T22:13:20.Z\", \"value\": "
	"1}",
	DC_REASON_BAD_TIMESTAMP, "not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"2023-11-14T22:13:20+0100\", "
	"\"value\": 1}",
	DC_REASON_BAD_TIMESTAMP, "not RFC 3339"),
    BAD(J,
	"{\"series\": \"a\", \"ts\": \"1969-12-31T23:59:59Z\", \"value\": "
	"1}",
	DC_REASON_BAD_TIMESTAMP, "outside"),
    BAD(J, "{\"series\": \"a\", \"ts\": true, \"value\": 1}",
	DC_REASON_WRONG_TYPE, "\"ts\" is a boolean"),
    /* series keys */
    BAD(J, "{\"series\": \"\", \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_BAD_SERIES, "\"series\" is empty"),
    BAD(J, "{\"series\": \"a\\nb\", \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_BAD_SERIES, "control character 0x0a"),
    BADK(J, "{\"series\": \"meter-17\", \"ts\": 1700000000, \"value\": 1}",
	 "meter-18", DC_REASON_KEY_MISMATCH,
	 "Kafka key 'meter-18' != series 'meter-17'"),
    BADK(J, "{\"ts\": 1700000000, \"value\": 1}", "bad\x01key",
	 DC_REASON_BAD_SERIES, "Kafka key has control character 0x01"),
    /* line protocol */
    BAD(I, "cpu,host=a 1700000000000000000", DC_REASON_MISSING_FIELD,
	"line 1: no fields"),
    BAD(I, "cpu", DC_REASON_MISSING_FIELD, "line 1: no fields"),
    BAD(I, "cpu,host=a   ", DC_REASON_MISSING_FIELD, "no fields"),
    BAD(I, "cpu status=\"ok\" 1700000000000000000", DC_REASON_NON_NUMERIC,
	"field 'status' is a string"),
    BAD(I, "cpu up=true 1700000000000000000", DC_REASON_NON_NUMERIC,
	"field 'up' is a boolean"),
    BAD(I, "cpu a=1,b=F 1700000000000000000", DC_REASON_NON_NUMERIC,
	"field 'b' is a boolean"),
    BAD(I, "cpu v=NaN 1700000000000000000", DC_REASON_NON_FINITE,
	"field 'v' is NaN"),
    BAD(I, "cpu v=-inf 1700000000000000000", DC_REASON_NON_FINITE, "is -inf"),
    BAD(I, "cpu v=1e999 1700000000000000000", DC_REASON_NON_FINITE,
	"overflows"),
    BAD(I, "cpu v=1e20 1700000000000000000", DC_REASON_OUT_OF_RANGE,
	"exceeds the bound"),
    BAD(I, "cpu v=18446744073709551616u 1700000000000000000",
	DC_REASON_OUT_OF_RANGE, "exceeds the bound"),
    BAD(I, "cpu v=-3u 1700000000000000000", DC_REASON_BAD_LINE, "bad integer"),
    BAD(I, "cpu v=0x10 1700000000000000000", DC_REASON_BAD_LINE,
	"bad number '0x10'"),
    BAD(I, "cpu v= 1700000000000000000", DC_REASON_BAD_LINE,
	"field 'v' has no value"),
    BAD(I, "cpu v=1", DC_REASON_MISSING_FIELD, "no timestamp"),
    BAD(I, "cpu v=1 17e8", DC_REASON_BAD_TIMESTAMP, "not an integer"),
    BAD(I, "cpu v=1 -1700000000000000000", DC_REASON_BAD_TIMESTAMP, "outside"),
    BAD(I, "cpu v=1 99999999999999999999", DC_REASON_BAD_TIMESTAMP, "outside"),
    BAD(I, "cpu v=1 1700000000000000000 extra", DC_REASON_BAD_LINE,
	"junk after the timestamp"),
    BAD(I, ",host=a v=1 1700000000000000000", DC_REASON_BAD_LINE,
	"empty measurement"),
    BAD(I, "cpu,host v=1 1700000000000000000", DC_REASON_BAD_LINE, "bad tag"),
    BAD(I, "cpu,host= v=1 1700000000000000000", DC_REASON_BAD_LINE,
	"bad tag value"),
    BAD(I, "cpu,b=1,a=2,b=3 v=1 1700000000000000000", DC_REASON_BAD_LINE,
	"duplicate tag 'b'"),
    BAD(I, "cpu v=1,v=2 1700000000000000000", DC_REASON_BAD_LINE,
	"duplicate field 'v'"),
    BAD(I, "cpu s=\"unterminated 1700000000000000000", DC_REASON_BAD_LINE,
	"unterminated string"),
    BAD(I, "cpu =1 1700000000000000000", DC_REASON_BAD_LINE, "bad field"),
    BAD(I, "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1}",
	DC_REASON_BAD_LINE, "bad field"),
    BAD(I, "cpu v=1 1700000000000000000\ncpu\n", DC_REASON_MISSING_FIELD,
	"line 2: no fields"),
    BADN(I, "cpu v=1\0 1700000000000000000", 28, DC_REASON_BAD_LINE,
	 "NUL byte"),
    /* reason texts stay printable UTF-8 whatever the input quoted */
    BAD(J, "{\"series\": \"a\", \"ts\": 1, \"value\": \x01\x02}",
	DC_REASON_BAD_JSON, "invalid token near '?'"),
    BADK(J, "{\"series\": \"b\", \"ts\": 1, \"value\": 1}",
	 "012345678901234567890123456789012345678\xc3\xa4",
	 DC_REASON_KEY_MISMATCH, "345678?' != series 'b'"),
};

Test(parse, catalogue_of_malformed_messages)
{
	size_t nbad = sizeof(catalogue) / sizeof(catalogue[0]);
	cr_assert_geq(nbad, 30);
	for (size_t i = 0; i < nbad; i++) {
		const struct bad *b = &catalogue[i];
		struct dc_parse_error err;
		size_t n = 12345;
		size_t len = b->len < 0 ? strlen(b->payload) : (size_t)b->len;
		int rc = parse(b->fmt, CFG_TS_AUTO, b->payload, len, b->key, &n,
			       &err);
		cr_expect_eq(rc, -EBADMSG, "#%zu accepted: %s", i, b->payload);
		cr_expect_eq(n, 12345, "#%zu: ret_n touched", i);
		cr_expect_eq(err.reason, b->reason,
			     "#%zu: reason %s, want %s (%s) for: %s", i,
			     dc_reason_name(err.reason),
			     dc_reason_name(b->reason), err.text, b->payload);
		cr_expect(strstr(err.text, b->text),
			  "#%zu: text '%s' lacks '%s'", i, err.text, b->text);
		for (const unsigned char *c = (const unsigned char *)err.text;
		     *c; c++)
			cr_expect(*c >= 0x20 && *c != 0x7f,
				  "#%zu: control byte in '%s'", i, err.text);
		cr_expect(g_utf8_ok(err.text), "#%zu: text not UTF-8: %s", i,
			  err.text);
		cr_expect(!strncmp(err.text, dc_reason_name(b->reason),
				   strlen(dc_reason_name(b->reason))),
			  "#%zu: text '%s' does not start with its class", i,
			  err.text);
	}
}

Test(parse, oversized_payload_and_series)
{
	struct dc_parse_error err;
	size_t n;
	char *big = malloc(LIMIT + 2);
	memset(big, ' ', LIMIT + 1);
	big[LIMIT + 1] = '\0';
	cr_assert_eq(parse(J, 0, big, LIMIT + 1, NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_TOO_LARGE);
	cr_assert_str_eq(err.text, "too_large: 4097 bytes (limit 4096)");
	cr_assert_eq(parse(I, 0, big, LIMIT + 1, NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_TOO_LARGE);

	/* a 256-byte series key is one too many */
	char name[300];
	memset(name, 'x', 256);
	name[256] = '\0';
	snprintf(big, LIMIT, "{\"series\": \"%s\", \"ts\": 1, \"value\": 1}",
		 name);
	cr_assert_eq(parse(J, 0, big, strlen(big), NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_BAD_SERIES);
	cr_assert(strstr(err.text, "256 bytes (limit 255)"), "%s", err.text);
	name[255] = '\0';
	snprintf(big, LIMIT, "{\"series\": \"%s\", \"ts\": 1, \"value\": 1}",
		 name);
	cr_assert_eq(parse(J, 0, big, strlen(big), NULL, &n, &err), 0, "%s",
		     err.text);
	/* "/OT" pushes it over */
	snprintf(big, LIMIT,
		 "{\"series\": \"%s\", \"ts\": 1, \"values\": {\"OT\": 1}}",
		 name);
	cr_assert_eq(parse(J, 0, big, strlen(big), NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_BAD_SERIES);
	snprintf(big, LIMIT, "%s v=1 1700000000000000000", name);
	cr_assert_eq(parse(I, 0, big, strlen(big), NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_BAD_SERIES, "%s", err.text);

	/* deep nesting: jansson's depth limit, not a stack overflow */
	size_t depth = 3000;
	char *deep = malloc(2 * depth + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = '\0';
	struct dc_parse_opts o = {.format = J, .max_message_bytes = 0};
	struct dc_parser *p = dc_parser_new(&o);
	cr_assert_eq(
	    dc_parse(p, deep, 2 * depth, NULL, 0, obs, MAXOBS, &n, &err),
	    -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_BAD_JSON);
	cr_assert(strstr(err.text, "depth"), "%s", err.text);
	dc_parser_free(p);
	free(deep);
	free(big);
}

Test(parse, too_many_values)
{
	struct dc_parse_error err;
	size_t n;
	char buf[2048];
	int k = snprintf(buf, sizeof(buf),
			 "{\"series\": \"a\", \"ts\": 1, "
			 "\"values\": {");
	for (int i = 0; i < MAXOBS + 1; i++)
		k += snprintf(buf + k, sizeof(buf) - (size_t)k, "%s\"c%d\": %d",
			      i ? ", " : "", i, i);
	snprintf(buf + k, sizeof(buf) - (size_t)k, "}}");
	cr_assert_eq(parse(J, 0, buf, strlen(buf), NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_TOO_MANY_VALUES);
	cr_assert_str_eq(err.text, "too_many_values: 17 values (limit 16)");

	k = 0;
	for (int i = 0; i < MAXOBS + 1; i++)
		k += snprintf(buf + k, sizeof(buf) - (size_t)k,
			      "m v%d=1 1700000000000000000\n", i);
	cr_assert_eq(parse(I, 0, buf, strlen(buf), NULL, &n, &err), -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_TOO_MANY_VALUES);
}

/* ---- good messages ------------------------------------------------------ */

#define T0 INT64_C(1700000000000000000) /* 2023-11-14T22:13:20Z */

Test(parse, json_single_value)
{
	struct dc_parse_error err;
	size_t n = 0;
	const char *m =
	    "{\"series\": \"meter-17\", \"ts\": 1700000000, \"value\": 12.3}";
	cr_assert_eq(parse(J, 0, m, strlen(m), NULL, &n, &err), 0, "%s",
		     err.text);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(obs[0].series, "meter-17");
	cr_assert_eq(obs[0].ts_ns, T0);
	cr_assert_eq(obs[0].value, 12.3);
	/* the matching Kafka key is fine; so is extra metadata */
	m = "{\"series\": \"meter-17\", \"ts\": 1700000000, \"value\": -4, "
	    "\"unit\": \"kWh\", \"meta\": {\"site\": [1, 2]}}";
	cr_assert_eq(parse(J, 0, m, strlen(m), "meter-17", &n, &err), 0, "%s",
		     err.text);
	cr_assert_eq(obs[0].value, -4.0);
	/* the key alone names the series */
	m = "{\"ts\": \"2023-11-14T22:13:20Z\", \"value\": 0}";
	cr_assert_eq(parse(J, 0, m, strlen(m), "meter-9", &n, &err), 0, "%s",
		     err.text);
	cr_assert_str_eq(obs[0].series, "meter-9");
	cr_assert_eq(obs[0].ts_ns, T0);
	/* UTF-8 series names, escaped or raw */
	m = "{\"series\": \"z\\u00e4hler/\xe2\x82\xac\", \"ts\": 1, \"value\": "
	    "1e15}";
	cr_assert_eq(parse(J, 0, m, strlen(m), NULL, &n, &err), 0, "%s",
		     err.text);
	cr_assert_str_eq(obs[0].series, "z\xc3\xa4hler/\xe2\x82\xac");
	cr_assert_eq(obs[0].ts_ns, INT64_C(1000000000));
	cr_assert_eq(obs[0].value, 1e15);
}

Test(parse, json_values_become_channels)
{
	struct dc_parse_error err;
	size_t n = 0;
	const char *m = "{\"series\": \"tx-3\", \"ts\": 1700000000000, "
			"\"values\": {\"OT\": 30.5, \"HUFL\": 5, \"LULL\": "
			"-1.25e-3}}";
	cr_assert_eq(parse(J, 0, m, strlen(m), "tx-3", &n, &err), 0, "%s",
		     err.text);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(obs[0].series, "tx-3/OT");
	cr_assert_str_eq(obs[1].series, "tx-3/HUFL");
	cr_assert_str_eq(obs[2].series, "tx-3/LULL");
	cr_assert_eq(obs[0].value, 30.5);
	cr_assert_eq(obs[1].value, 5.0);
	cr_assert_eq(obs[2].value, -1.25e-3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(obs[i].ts_ns, T0);
}

Test(parse, influx_lines_map_to_series)
{
	struct dc_parse_error err;
	size_t n = 0;
	/* tags are sorted, escapes kept in the measurement/tag part; field
	 * keys unescaped; i and u suffixes; several lines; CRLF; comments */
	const char *m =
	    "# Telegraf output\n"
	    "cpu,zone=b,host=a\\ 1 usage=1.5,idle=3i,n=7u 1700000000000000000\n"
	    "\n"
	    "weather,series=tx-3 OT=30.5,HUFL=-2i 1700000000000000001\r\n"
	    "my\\,meas,t\\=k=v\\,w f\\ x=0.25 1700000000000000002";
	cr_assert_eq(parse(I, 0, m, strlen(m), "ignored", &n, &err), 0, "%s",
		     err.text);
	cr_assert_eq(n, 6);
	cr_assert_str_eq(obs[0].series, "cpu,host=a\\ 1,zone=b/usage");
	cr_assert_str_eq(obs[1].series, "cpu,host=a\\ 1,zone=b/idle");
	cr_assert_str_eq(obs[2].series, "cpu,host=a\\ 1,zone=b/n");
	cr_assert_eq(obs[0].value, 1.5);
	cr_assert_eq(obs[1].value, 3.0);
	cr_assert_eq(obs[2].value, 7.0);
	cr_assert_eq(obs[0].ts_ns, T0);
	cr_assert_eq(obs[2].ts_ns, T0);
	/* the `series` tag names the series, like JSON's "series" */
	cr_assert_str_eq(obs[3].series, "tx-3/OT");
	cr_assert_str_eq(obs[4].series, "tx-3/HUFL");
	cr_assert_eq(obs[4].value, -2.0);
	cr_assert_eq(obs[3].ts_ns, T0 + 1);
	cr_assert_str_eq(obs[5].series, "my\\,meas,t\\=k=v\\,w/f x");
	cr_assert_eq(obs[5].value, 0.25);
	cr_assert_eq(obs[5].ts_ns, T0 + 2);
}

Test(parse, timestamp_units_auto_and_forced)
{
	struct dc_parse_error err;
	size_t n;
	const char *forms[] = {"1700000000",
			       "1700000000000",
			       "1700000000000000",
			       "1700000000000000000",
			       "1700000000.0",
			       "\"2023-11-14T22:13:20Z\"",
			       "\"2023-11-14t22:13:20z\"",
			       "\"2023-11-14 23:13:20+01:00\"",
			       "\"2023-11-14T20:43:20.000000000-01:30\""};
	char buf[256];
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(buf, sizeof(buf),
			 "{\"series\": \"a\", \"ts\": %s, \"value\": 1}",
			 forms[i]);
		cr_assert_eq(
		    parse(J, CFG_TS_AUTO, buf, strlen(buf), NULL, &n, &err), 0,
		    "%s: %s", forms[i], err.text);
		cr_assert_eq(obs[0].ts_ns, T0, "%s -> %lld", forms[i],
			     (long long)obs[0].ts_ns);
	}
	/* forced units: 1700000000 as ms is 1970-01-20 */
	const char *m = "{\"series\": \"a\", \"ts\": 1700000000, \"value\": 1}";
	cr_assert_eq(parse(J, CFG_TS_MS, m, strlen(m), NULL, &n, &err), 0);
	cr_assert_eq(obs[0].ts_ns, INT64_C(1700000000000000));
	cr_assert_eq(parse(J, CFG_TS_NS, m, strlen(m), NULL, &n, &err), 0);
	cr_assert_eq(obs[0].ts_ns, INT64_C(1700000000));
	/* forced seconds with a nanosecond-sized number is out of range */
	m = "{\"series\": \"a\", \"ts\": 1700000000000000000, \"value\": 1}";
	cr_assert_eq(parse(J, CFG_TS_S, m, strlen(m), NULL, &n, &err),
		     -EBADMSG);
	cr_assert_eq(err.reason, DC_REASON_BAD_TIMESTAMP);
	/* line protocol: same rules */
	m = "m v=1 1700000000";
	cr_assert_eq(parse(I, CFG_TS_AUTO, m, strlen(m), NULL, &n, &err), 0);
	cr_assert_eq(obs[0].ts_ns, T0);
	cr_assert_eq(parse(I, CFG_TS_NS, m, strlen(m), NULL, &n, &err), 0);
	cr_assert_eq(obs[0].ts_ns, INT64_C(1700000000));
}

Test(parse, timestamp_helpers)
{
	int64_t t = 0;
	/* auto thresholds */
	cr_assert_eq(dc_ts_from_epoch(7258118399, CFG_TS_AUTO, &t), 0);
	cr_assert_eq(t, INT64_C(7258118399) * 1000000000);
	/* below 1e11 counts as seconds, so 5138 is out of range */
	cr_assert_eq(dc_ts_from_epoch(99999999999, CFG_TS_AUTO, &t), -ERANGE);
	cr_assert_eq(dc_ts_from_epoch(INT64_C(100000000000), CFG_TS_AUTO, &t),
		     0);
	cr_assert_eq(t, INT64_C(100000000000) * 1000000);
	cr_assert_eq(dc_ts_from_epoch(INT64_C(100000000000000), 0, &t), 0);
	cr_assert_eq(t, INT64_C(100000000000000) * 1000);
	cr_assert_eq(dc_ts_from_epoch(INT64_C(100000000000000000), 0, &t), 0);
	cr_assert_eq(t, INT64_C(100000000000000000));
	cr_assert_eq(dc_ts_from_epoch(0, 0, &t), 0);
	cr_assert_eq(t, 0);
	cr_assert_eq(dc_ts_from_epoch(-1, 0, &t), -ERANGE);
	cr_assert_eq(dc_ts_from_epoch(INT64_MAX, 0, &t), -ERANGE);
	cr_assert_eq(dc_ts_from_epoch(INT64_MAX, CFG_TS_S, &t), -ERANGE);
	cr_assert_eq(dc_ts_from_epoch(7258118399, CFG_TS_S, &t), 0);
	cr_assert_eq(dc_ts_from_epoch(7258118400, CFG_TS_S, &t), -ERANGE);
	/* fractions */
	cr_assert_eq(dc_ts_from_epoch_real(1700000000.25, 0, &t), 0);
	cr_assert_eq(t, T0 + 250000000);
	cr_assert_eq(dc_ts_from_epoch_real(1e300, 0, &t), -ERANGE);
	cr_assert_eq(dc_ts_from_epoch_real(-0.5, 0, &t), -ERANGE);
	/* RFC 3339 */
	const char *s = "2024-02-29T12:00:00.123456789123Z";
	cr_assert_eq(dc_ts_from_rfc3339(s, strlen(s), &t), 0);
	cr_assert_eq(t, INT64_C(1709208000123456789));
	s = "1970-01-01T00:00:00Z";
	cr_assert_eq(dc_ts_from_rfc3339(s, strlen(s), &t), 0);
	cr_assert_eq(t, 0);
	s = "2016-12-31T23:59:60Z"; /* leap second -> next minute */
	cr_assert_eq(dc_ts_from_rfc3339(s, strlen(s), &t), 0);
	cr_assert_eq(t, INT64_C(1483228800) * 1000000000);
	s = "2200-01-01T00:00:00Z";
	cr_assert_eq(dc_ts_from_rfc3339(s, strlen(s), &t), -ERANGE);
	s = "2199-12-31T23:59:59.999999999Z";
	cr_assert_eq(dc_ts_from_rfc3339(s, strlen(s), &t), 0);
	const char *bad[] = {"2023-13-01T00:00:00Z",
			     "2023-00-01T00:00:00Z",
			     "2023-04-31T00:00:00Z",
			     "2023-01-01T00:60:00Z",
			     "2023-01-01T00:00:00+24:00",
			     "2023-01-01T00:00:00Zjunk",
			     "2023-1-01T00:00:00Z",
			     "2023-01-01",
			     "",
			     "+2023-01-01T00:00:00Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(dc_ts_from_rfc3339(bad[i], strlen(bad[i]), &t),
			     -EINVAL, "%s", bad[i]);
}

Test(parse, reason_names_are_distinct_labels)
{
	for (int i = 0; i < DC_REASON_COUNT; i++) {
		const char *a = dc_reason_name(i);
		cr_assert(a && *a && strcmp(a, "?"));
		for (size_t k = 0; a[k]; k++)
			cr_assert((a[k] >= 'a' && a[k] <= 'z') ||
				  (a[k] >= '0' && a[k] <= '9') || a[k] == '_');
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(a, dc_reason_name(j));
	}
	cr_assert_str_eq(dc_reason_name(DC_REASON_COUNT), "?");
	cr_assert_str_eq(dc_reason_name(-1), "?");
}

Test(parse, json_uses_the_arena_not_the_heap)
{
	struct dc_parse_opts o = {
	    .format = J, .max_message_bytes = 1 << 20, .no_fast_path = true};
	struct dc_parser *p = dc_parser_new(&o);
	struct dc_parse_error err;
	size_t n;
	const char *m =
	    "{\"series\": \"tx-3\", \"ts\": 1700000000, \"values\": "
	    "{\"HUFL\": 5.8, \"HULL\": 2.0, \"MUFL\": 1.5, \"MULL\": "
	    "0.4, \"LUFL\": 4.2, \"LULL\": 1.3, \"OT\": 30.5}}";
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(
		    dc_parse(p, m, strlen(m), NULL, 0, obs, MAXOBS, &n, &err),
		    0);
	cr_assert_eq(dc_parser_heap_fallbacks(p), 0);
	/* a big message spills to the heap, is counted, and still works */
	size_t cap = 300000;
	char *big = malloc(cap);
	int k = snprintf(big, cap, "{\"series\": \"a\", \"ts\": 1, \"pad\": [");
	for (int i = 0; i < 20000; i++)
		k += snprintf(big + k, cap - (size_t)k, "%s[]", i ? "," : "");
	snprintf(big + k, cap - (size_t)k, "], \"value\": 2}");
	cr_assert_eq(
	    dc_parse(p, big, strlen(big), NULL, 0, obs, MAXOBS, &n, &err), 0,
	    "%s", err.text);
	cr_assert_eq(dc_parser_heap_fallbacks(p), 1);
	/* jansson objects made outside a parse use the ordinary heap */
	json_t *j = json_pack("{s:i}", "x", 1);
	char *txt = json_dumps(j, 0);
	cr_assert_str_eq(txt, "{\"x\": 1}");
	free(txt);
	json_decref(j);
	dc_parser_free(p);
	free(big);
}

Test(parse, parser_new_rejects_bad_options)
{
	struct dc_parse_opts o = {.format = 7};
	cr_assert_null(dc_parser_new(&o));
	o.format = J;
	o.ts_unit = 9;
	cr_assert_null(dc_parser_new(&o));
	cr_assert_null(dc_parser_new(NULL));
	dc_parser_free(NULL);
}

/* The JSON fast path takes the documented shapes and agrees with jansson on
 * everything (the fuzz target checks the same on arbitrary input). */
Test(parse, json_fast_path_agrees_with_jansson)
{
	struct dc_parse_opts fo = {.format = J, .max_message_bytes = LIMIT};
	struct dc_parse_opts so = fo;
	so.no_fast_path = true;
	struct dc_parser *fast = dc_parser_new(&fo), *slow = dc_parser_new(&so);
	static struct dc_obs a[MAXOBS], b[MAXOBS];
	const char *good[] = {
	    "{\"series\": \"meter-17\", \"ts\": 1700000000, \"value\": 12.3}",
	    "{\"value\":-0.5e-3,\"ts\":\"2023-11-14T22:13:20.5+01:00\","
	    "\"series\":\"m\"}",
	    " {\"series\": \"tx-3\", \"ts\": 1700000000000, \"values\": "
	    "{\"OT\": 30.5, \"HUFL\": 5, \"x\": 0}}\r\n",
	    "{\"series\": \"z\xc3\xa4hler\", \"ts\": 1700000000.25, \"value\": "
	    "1e-400}",
	    "{\"series\": \"a\", \"ts\": 0, \"value\": -1000000000000000}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct dc_parse_error ea, eb;
		size_t na = 0, nb = 0;
		uint64_t hits = dc_parser_fast_hits(fast);
		cr_assert_eq(dc_parse(fast, good[i], strlen(good[i]), NULL, 0,
				      a, MAXOBS, &na, &ea),
			     0, "%s: %s", good[i], ea.text);
		cr_assert_eq(dc_parser_fast_hits(fast), hits + 1, "%s",
			     good[i]);
		cr_assert_eq(dc_parse(slow, good[i], strlen(good[i]), NULL, 0,
				      b, MAXOBS, &nb, &eb),
			     0);
		cr_assert_eq(na, nb);
		for (size_t k = 0; k < na; k++) {
			cr_assert_str_eq(a[k].series, b[k].series);
			cr_assert_eq(a[k].ts_ns, b[k].ts_ns);
			cr_assert(
			    !memcmp(&a[k].value, &b[k].value, sizeof(double)));
		}
	}
	cr_assert_eq(dc_parser_fast_hits(slow), 0);
	/* every malformed JSON message gets jansson's verdict */
	for (size_t i = 0; i < sizeof(catalogue) / sizeof(catalogue[0]); i++) {
		const struct bad *c = &catalogue[i];
		struct dc_parse_error ea, eb;
		size_t na, nb;
		if (c->fmt != J)
			continue;
		size_t len = c->len < 0 ? strlen(c->payload) : (size_t)c->len;
		size_t klen = c->key ? strlen(c->key) : 0;
		int ra = dc_parse(fast, c->payload, len, c->key, klen, a,
				  MAXOBS, &na, &ea);
		int rb = dc_parse(slow, c->payload, len, c->key, klen, b,
				  MAXOBS, &nb, &eb);
		cr_assert_eq(ra, rb, "#%zu", i);
		cr_assert_str_eq(ea.text, eb.text, "#%zu", i);
	}
	dc_parser_free(fast);
	dc_parser_free(slow);
}

/* The fast path converts common number tokens itself (exact decimal
 * mantissa times an exact power of ten, else libc): every value must be the
 * double jansson's strtod gives, bit for bit, on edge cases and on random
 * tokens of every length, exponent and sign. */
Test(parse, json_fast_numbers_bit_identical)
{
	struct dc_parse_opts fo = {.format = J, .max_message_bytes = LIMIT};
	struct dc_parse_opts so = fo;
	so.no_fast_path = true;
	struct dc_parser *fast = dc_parser_new(&fo), *slow = dc_parser_new(&so);
	static struct dc_obs a[MAXOBS], b[MAXOBS];
	static const char *const edge[] = {
	    "0",
	    "-0",
	    "-0.0",
	    "0.1",
	    "2.675",
	    "12.3456",
	    "9007199254740992.0",
	    "9007199254740993.0",
	    "900719925474099.3",
	    "123456789012345678",
	    "-123456789012345678",
	    "1234567890123456789",
	    "0.000000000000000000001",
	    "1e22",
	    "1e-22",
	    "1e23",
	    "4.9e-324",
	    "123456789012345678e-40",
	    "1.0E+2",
	    "1E-0",
	    "0.30000000000000004",
	    "999999999999999999",
	    "1e15",
	    "1e16",
	};
	uint64_t x = 0x9E3779B97F4A7C15ull;
	char tok[64], msg[160];
	size_t nfast = 0;
	for (int i = 0; i < 40000; i++) {
		if ((size_t)i < sizeof(edge) / sizeof(edge[0])) {
			snprintf(tok, sizeof(tok), "%s", edge[i]);
		} else {
			/* xorshift: digits before/after the point, exponent */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			int nint = 1 + (int)(x % 12),
			    nfrac = (int)(x >> 8) % 12;
			int hasexp = (int)(x >> 16) % 3 == 0;
			int ex = (int)((x >> 20) % 41) - 25;
			size_t o = 0;
			if ((x >> 30) & 1)
				tok[o++] = '-';
			uint64_t d = x >> 32;
			for (int k = 0; k < nint;
			     k++, d = d * 6364136223846793005ull + 1)
				tok[o++] = (char)('0' + (k == 0 && nint > 1
							     ? 1 + (d >> 60) % 9
							     : (d >> 60) % 10));
			if (nfrac) {
				tok[o++] = '.';
				for (int k = 0; k < nfrac;
				     k++, d = d * 6364136223846793005ull + 1)
					tok[o++] = (char)('0' + (d >> 60) % 10);
			}
			if (hasexp)
				o += (size_t)snprintf(tok + o, sizeof(tok) - o,
						      "e%d", ex);
			tok[o] = '\0';
		}
		int n = snprintf(msg, sizeof(msg),
				 "{\"series\":\"s\",\"ts\":1700000000,"
				 "\"value\":%s}",
				 tok);
		struct dc_parse_error ea, eb;
		size_t na = 0, nb = 0;
		uint64_t hits = dc_parser_fast_hits(fast);
		int ra = dc_parse(fast, msg, (size_t)n, NULL, 0, a, MAXOBS, &na,
				  &ea);
		int rb = dc_parse(slow, msg, (size_t)n, NULL, 0, b, MAXOBS, &nb,
				  &eb);
		cr_assert_eq(ra, rb, "%s", tok);
		nfast += dc_parser_fast_hits(fast) - hits;
		if (ra == 0)
			cr_assert(
			    !memcmp(&a[0].value, &b[0].value, sizeof(double)),
			    "%s: %.17g vs %.17g", tok, a[0].value, b[0].value);
		else
			cr_assert_str_eq(ea.text, eb.text, "%s", tok);
	}
	cr_assert_gt(nfast, 20000, "%zu", nfast);
	dc_parser_free(fast);
	dc_parser_free(slow);
}
