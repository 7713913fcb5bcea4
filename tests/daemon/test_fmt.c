/* dc_format_float: every finite float reads back exactly, in JSON's number
 * syntax, for random bit patterns and typical sensor values alike. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
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
