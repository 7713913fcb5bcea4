/* dc_format_float: every finite float reads back exactly, in JSON's number
 * syntax, for random bit patterns and typical sensor values alike. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static void roundtrip(float f)
{
	char b[64];
	size_t n = dc_format_float(b, f);
	cr_assert_lt(n, 32);
	b[n] = '\0';
	cr_assert_eq(strtof(b, NULL), f, "%.9g printed as %s", (double)f, b);
	/* JSON numbers: -?digits[.digits][e[+-]digits], no leading '+' */
	cr_assert(b[0] == '-' || (b[0] >= '0' && b[0] <= '9'), "%s", b);
	cr_assert_null(strstr(b, "inf"));
	cr_assert_null(strstr(b, "nan"));
}

Test(fmt, examples)
{
	char b[64];
	b[dc_format_float(b, 0.0f)] = '\0';
	cr_assert_str_eq(b, "0");
	b[dc_format_float(b, 123.5f)] = '\0';
	cr_assert_str_eq(b, "123.5");
	b[dc_format_float(b, -2.0f)] = '\0';
	cr_assert_str_eq(b, "-2");
	b[dc_format_float(b, 0.25f)] = '\0';
	cr_assert_str_eq(b, "0.25");
	b[dc_format_float(b, 4e9f)] = '\0';
	cr_assert_str_eq(b, "4e+09");
}

Test(fmt, random_bit_patterns_round_trip)
{
	uint32_t seed = 12345;
	for (long i = 0; i < 2000000; i++) {
		seed = seed * 1103515245u + 12345u;
		uint32_t bits = seed ^ (seed << 13);
		float f;
		memcpy(&f, &bits, sizeof(f));
		if (isfinite(f))
			roundtrip(f);
	}
}

Test(fmt, sensor_values_round_trip)
{
	for (int i = -200000; i <= 200000; i++) {
		roundtrip((float)i / 1000.0f);
		roundtrip((float)i * 0.37f);
	}
	roundtrip(9.99999999e8f);
	roundtrip(1e-4f);
	roundtrip(9.9999e-5f);
	roundtrip(-1e9f);
}

/* dc_json_escape: what it writes, wrapped in quotes, is a JSON string that
 * jansson reads back as the original bytes. */
static void escapes_to(const char *src, const char *want)
{
	char out[256], doc[300];
	size_t n = dc_json_escape(out, src);
	cr_assert_leq(n, 6 * strlen(src));
	out[n] = '\0';
	cr_assert_str_eq(out, want);
	snprintf(doc, sizeof(doc), "[\"%s\"]", out);
	json_error_t err;
	json_t *j = json_loads(doc, 0, &err);
	cr_assert_not_null(j, "%s: %s", doc, err.text);
	cr_assert_str_eq(json_string_value(json_array_get(j, 0)), src);
	json_decref(j);
}

Test(fmt, json_escape)
{
	escapes_to("meter-17", "meter-17");
	escapes_to("tx-3/OT", "tx-3/OT");
	escapes_to("a\"b", "a\\\"b");
	escapes_to("back\\slash", "back\\\\slash");
	escapes_to("tab\there", "tab\\u0009here");
	escapes_to("\x1f\x01", "\\u001f\\u0001");
	escapes_to("z\xc3\xa4hler", "z\xc3\xa4hler"); /* UTF-8 as it is */
	escapes_to("", "");
}

/* Series time (ns) as the exact decimal seconds of the forecast message. */
Test(fmt, ns_seconds)
{
	static const struct {
		int64_t ns;
		const char *text;
	} ex[] = {
	    {0, "0"},
	    {INT64_C(1700000000000000000), "1700000000"},
	    {INT64_C(1700000000100000000), "1700000000.1"},
	    {INT64_C(1700000000001000000), "1700000000.001"},
	    {INT64_C(1700000000000000001), "1700000000.000000001"},
	    {INT64_C(100000000), "0.1"},
	    {INT64_C(3600000000000), "3600"},
	    {INT64_C(-2500000000), "-2.5"},
	    {INT64_MAX, "9223372036.854775807"},
	    {INT64_MIN, "-9223372036.854775808"},
	};
	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
		char b[64];
		size_t n = dc_format_ns_seconds(b, ex[i].ns);
		cr_assert_lt(n, 32);
		b[n] = '\0';
		cr_assert_str_eq(b, ex[i].text);
		json_t *j = json_loads(b, JSON_DECODE_ANY, NULL);
		cr_assert_not_null(j, "%s is not a JSON number", b);
		json_decref(j);
	}
}
