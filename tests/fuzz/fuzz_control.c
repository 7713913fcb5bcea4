/*
 * Fuzz target: dc_control_decode() on operator control records (the
 * payload of an input message with the driftcast-control header).  Byte
 * 0: bit 0 set, the Kafka key is the bytes up to the first NUL after it
 * (else no key); the rest is the payload.  Checked besides "no crash, no
 * leak, no UB": an accepted record has a non-empty series and reason, a
 * block of the expected length or the identity, and re-encodes to a
 * payload that decodes to the same request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control.h"

#define FUZZ_ADAPTER_LEN 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dc_control c, d;
	char err[256];
	const char *key = NULL;
	size_t key_len = 0;
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	if (data[0] & 1) {
		const uint8_t *z = memchr(p, 0, n);
		if (!z)
			return 0;
		key = (const char *)p;
		key_len = (size_t)(z - p);
		n -= key_len + 1;
		p = z + 1;
	}
	if (dc_control_decode(p, n, key, key_len, FUZZ_ADAPTER_LEN, &c, err,
			      sizeof(err)) < 0) {
		if (strncmp(err, "bad_control: ", 13))
			abort();
		return 0;
	}
	if (!c.series[0] || !c.reason[0] ||
	    (c.adapter && c.adapter_len != FUZZ_ADAPTER_LEN &&
	     c.adapter_len != 0))
		abort();
	char *json = dc_control_encode(&c);
	if (!json)
		abort();
	if (dc_control_decode(json, strlen(json), NULL, 0, FUZZ_ADAPTER_LEN, &d,
			      err, sizeof(err)) < 0 ||
	    strcmp(c.series, d.series) || strcmp(c.reason, d.reason) ||
	    strcmp(c.by, d.by) || c.by_time != d.by_time ||
	    c.to_version != d.to_version || c.at_ns != d.at_ns ||
	    c.adapter_len != d.adapter_len || !c.adapter != !d.adapter ||
	    (c.adapter_len &&
	     memcmp(c.adapter, d.adapter, c.adapter_len * sizeof(float))))
		abort();
	free(json);
	dc_control_clear(&c);
	dc_control_clear(&d);
	return 0;
}
