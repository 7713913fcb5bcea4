/*
 * Shared body of the parser fuzz targets.  Input layout: byte 0 selects the
 * timestamp unit (bits 0-2, modulo 5) and whether a Kafka key follows (bit
 * 3); then one length byte and the key; the rest is the payload.  Besides
 * "no crash, no leak, no UB", every result must keep the contract of
 * dc_parse(): observations are valid, errors carry a class and text.
 * For JSON it is also a differential test: the single-pass fast path and
 * jansson must give the same result (observations or reason) on every
 * input.
 */
#ifndef DRIFTCAST_FUZZ_PARSE_H
#define DRIFTCAST_FUZZ_PARSE_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

#define FUZZ_MAX_OBS 64

static int fuzz_parse_one(int format, const uint8_t *data, size_t size)
{
	static struct dc_obs obs[FUZZ_MAX_OBS], ref[FUZZ_MAX_OBS];
	static struct dc_parser *parsers[5], *slow[5];
	struct dc_parse_error ref_err;
	size_t ref_n = 0;
	struct dc_parse_error err;
	const uint8_t *key = NULL;
	size_t key_len = 0, n = 0;

	if (size < 1)
		return 0;
	int unit = (data[0] & 7) % 5;
	bool has_key = data[0] & 8;
	data++, size--;
	if (has_key) {
		if (size < 1)
			return 0;
		key_len = data[0] < size - 1 ? data[0] : size - 1;
		key = data + 1;
		data += 1 + key_len, size -= 1 + key_len;
	}
	if (!parsers[unit]) {
		struct dc_parse_opts o = {.format = format,
					  .ts_unit = unit,
					  .max_message_bytes = 65536};
		parsers[unit] = dc_parser_new(&o);
		o.no_fast_path = true;
		slow[unit] = dc_parser_new(&o);
		if (!parsers[unit] || !slow[unit])
			abort();
	}
	/* copy so that reads past the end are caught by ASan */
	uint8_t *payload = malloc(size ? size : 1);
	memcpy(payload, data, size);
	int rc = dc_parse(parsers[unit], payload, size, key, key_len, obs,
			  FUZZ_MAX_OBS, &n, &err);
	if (format == CFG_INPUT_JSON) {
		int ref_rc = dc_parse(slow[unit], payload, size, key, key_len,
				      ref, FUZZ_MAX_OBS, &ref_n, &ref_err);
		if (ref_rc != rc)
			abort();
		if (rc == 0) {
			if (ref_n != n)
				abort();
			for (size_t i = 0; i < n; i++)
				if (strcmp(ref[i].series, obs[i].series) ||
				    ref[i].ts_ns != obs[i].ts_ns ||
				    memcmp(&ref[i].value, &obs[i].value,
					   sizeof(double)))
					abort();
		} else if (ref_err.reason != err.reason ||
			   strcmp(ref_err.text, err.text)) {
			abort();
		}
	}
	free(payload);
	if (rc == 0) {
		if (n < 1 || n > FUZZ_MAX_OBS)
			abort();
		for (size_t i = 0; i < n; i++) {
			size_t l = strnlen(obs[i].series, DC_SERIES_MAX + 1);
			if (l == 0 || l > DC_SERIES_MAX)
				abort();
			if (!isfinite(obs[i].value) ||
			    fabs(obs[i].value) > DC_VALUE_MAX)
				abort();
			if (obs[i].ts_ns < DC_TS_MIN_NS ||
			    obs[i].ts_ns >= DC_TS_MAX_NS)
				abort();
		}
	} else {
		const char *name = dc_reason_name(err.reason);
		if (rc != -EBADMSG || err.reason <= DC_REASON_NONE ||
		    err.reason >= DC_REASON_COUNT ||
		    strncmp(err.text, name, strlen(name)) ||
		    strnlen(err.text, DC_PARSE_TEXT_MAX) >= DC_PARSE_TEXT_MAX)
			abort();
	}
	return 0;
}

#endif
