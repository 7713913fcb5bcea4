/*
 * bench-parse: messages per second through dc_parse() for each input shape,
 * JSON through the fast path and through jansson alone (same run, so the
 * ratio is meaningful on a shared machine), and line protocol.  One thread,
 * no Kafka: this is the parser's share of the ingest budget.
 * Usage: bench-parse [SECONDS_PER_CASE]   (default 1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/daemon.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct bcase {
	const char *name;
	int format;
	bool no_fast_path;
	const char *key;
	const char *payload;
};

int main(int argc, char **argv)
{
	static struct dc_obs obs[64];
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	const char *one = "{\"series\": \"meter-17\", \"ts\": 1700000000123, "
			  "\"value\": 12.3}";
	const char *seven =
	    "{\"series\": \"tx-3\", \"ts\": \"2016-07-01T00:00:00Z\", "
	    "\"values\": {\"HUFL\": 5.827, \"HULL\": 2.009, \"MUFL\": 1.599, "
	    "\"MULL\": 0.462, \"LUFL\": 4.203, \"LULL\": 1.340, \"OT\": "
	    "30.531}}";
	const struct bcase cases[] = {
	    {"json value, fast path", CFG_INPUT_JSON, false, "meter-17", one},
	    {"json value, jansson", CFG_INPUT_JSON, true, "meter-17", one},
	    {"json 7 values, fast path", CFG_INPUT_JSON, false, "tx-3", seven},
	    {"json 7 values, jansson", CFG_INPUT_JSON, true, "tx-3", seven},
	    {"influx 1 field", CFG_INPUT_INFLUX, false, NULL,
	     "cpu,host=server01,region=eu usage=12.3 1700000000123000000"},
	    {"influx 7 fields", CFG_INPUT_INFLUX, false, NULL,
	     "ett,series=tx-3 HUFL=5.827,HULL=2.009,MUFL=1.599,MULL=0.462,"
	     "LUFL=4.203,LULL=1.34,OT=30.531 1467331200000000000"},
	};
	printf("%-26s %12s %12s %10s\n", "case", "msgs/s", "obs/s", "ns/msg");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct bcase *b = &cases[c];
		struct dc_parse_opts o = {.format = b->format,
					  .max_message_bytes = 1 << 20,
					  .no_fast_path = b->no_fast_path};
		struct dc_parser *p = dc_parser_new(&o);
		struct dc_parse_error err;
		size_t n = 0, len = strlen(b->payload);
		size_t klen = b->key ? strlen(b->key) : 0;
		long iters = 0;
		double t0 = now(), t = t0;
		while (t - t0 < secs) {
			for (int i = 0; i < 10000; i++)
				if (dc_parse(p, b->payload, len, b->key, klen,
					     obs, 64, &n, &err) < 0) {
					fprintf(stderr, "%s: %s\n", b->name,
						err.text);
					return 1;
				}
			iters += 10000;
			t = now();
		}
		double dt = t - t0;
		printf("%-26s %12.0f %12.0f %10.0f\n", b->name,
		       (double)iters / dt, (double)iters * (double)n / dt,
		       dt / (double)iters * 1e9);
		dc_parser_free(p);
	}
	return 0;
}
