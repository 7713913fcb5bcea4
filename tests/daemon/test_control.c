/*
 * daemon/control.c: operator control records on the input topic.  What
 * `driftcast rollback --brokers` encodes decodes to the same request
 * (a carried block float for float); a record the owner must not apply
 * (not JSON, another control, no reason, two targets or none, a key that
 * is not the series, a block of another layout or with a non-finite
 * float) is refused as bad_control with the reason.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control.h"

static int dec(const char *json, const char *key, size_t alen,
	       struct dc_control *c, char *err)
{
	return dc_control_decode(json, strlen(json), key, key ? strlen(key) : 0,
				 alen, c, err, 256);
}

Test(control, encode_decode_round_trip_with_block)
{
	float block[5] = {0.1f, -3.4028235e38f, 1e-45f, 7.0f, -0.0f};
	struct dc_control c = {
	    .to_version = 42, .adapter = block, .adapter_len = 5};
	strcpy(c.series, "ett/HUFL \xc3\xa9");
	strcpy(c.reason, "bad \"sensor\"\\");
	strcpy(c.by, "alice");
	char *json = dc_control_encode(&c);
	cr_assert(json);
	struct dc_control d;
	char err[256];
	cr_assert_eq(dec(json, c.series, 5, &d, err), 0, "%s: %s", err, json);
	cr_assert_str_eq(d.series, c.series);
	cr_assert_str_eq(d.reason, c.reason);
	cr_assert_str_eq(d.by, "alice");
	cr_assert(!d.by_time);
	cr_assert_eq(d.to_version, 42);
	cr_assert_eq(d.adapter_len, 5);
	/* 9 significant digits: every float32 back exactly */
	cr_assert_eq(memcmp(d.adapter, block, sizeof(block)), 0);
	dc_control_clear(&d);
	free(json);

	/* by time, no block, no by */
	struct dc_control t = {.by_time = true, .at_ns = 1700000000000000000};
	strcpy(t.series, "s");
	strcpy(t.reason, "r");
	json = dc_control_encode(&t);
	cr_assert(json);
	cr_assert_eq(dec(json, NULL, 5, &d, err), 0, "%s", err);
	cr_assert(d.by_time);
	cr_assert_eq(d.at_ns, 1700000000000000000);
	cr_assert_null(d.adapter);
	cr_assert_str_eq(d.by, "");
	dc_control_clear(&d);
	free(json);
}

Test(control, empty_block_is_the_identity)
{
	struct dc_control d;
	char err[256];
	cr_assert_eq(dec("{\"control\":\"rollback\",\"series\":\"s\","
			 "\"to_version\":0,\"reason\":\"r\",\"adapter\":[]}",
			 "s", 5, &d, err),
		     0, "%s", err);
	cr_assert_not_null(d.adapter);
	cr_assert_eq(d.adapter_len, 0);
	dc_control_clear(&d);
}

Test(control, refusals_say_why)
{
	static const struct {
		const char *json, *key, *why;
	} bad[] = {
	    {"", "s", "empty payload"},
	    {"{\"control\":", "s", "bad_control: "},
	    {"[1]", "s", "not a JSON object"},
	    {"{\"series\":\"s\",\"ts\":1,\"value\":2}", "s", "no \"control\""},
	    {"{\"control\":\"reset\",\"series\":\"s\",\"to_version\":1,"
	     "\"reason\":\"r\"}",
	     "s", "unknown control \"reset\""},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1}",
	     "s", "no \"reason\""},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1,"
	     "\"reason\":\"\"}",
	     "s", "\"reason\" is empty"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"reason\":\"r\"}",
	     "s", "exactly one of"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1,"
	     "\"at_ns\":5,\"reason\":\"r\"}",
	     "s", "exactly one of"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":-1,"
	     "\"reason\":\"r\"}",
	     "s", "non-negative integer"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":\"1\","
	     "\"reason\":\"r\"}",
	     "s", "non-negative integer"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1,"
	     "\"reason\":\"r\"}",
	     "t", "the Kafka key is not the series"},
	    {"{\"control\":\"rollback\",\"series\":\"s\\n\",\"to_version\":1,"
	     "\"reason\":\"r\"}",
	     "s\n", "control character"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1,"
	     "\"reason\":\"r\",\"adapter\":[1,2]}",
	     "s", "has 2 floats, this model's adapter 5"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"to_version\":1,"
	     "\"reason\":\"r\",\"adapter\":[1,2,1e39,4,5]}",
	     "s", "[2] is not a finite float"},
	    {"{\"control\":\"rollback\",\"series\":\"s\",\"at_ns\":1,"
	     "\"reason\":\"r\",\"adapter\":[1,2,3,4,5]}",
	     "s", "goes with \"to_version\""},
	    {"{\"control\":\"rollback\",\"control\":\"rollback\"}", "s",
	     "bad_control: "},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dc_control d;
		char err[256] = "";
		cr_assert_eq(dec(bad[i].json, bad[i].key, 5, &d, err), -EBADMSG,
			     "%s", bad[i].json);
		cr_expect(!strncmp(err, "bad_control: ", 13), "%s", err);
		cr_expect(strstr(err, bad[i].why), "%s: got '%s'", bad[i].json,
			  err);
		cr_assert_null(d.adapter);
	}
}
