/*
 * Fuzz target: model files, fc_model_load_buffer() (forecast/modelfile.c,
 * the path fc_model_load() takes after reading the file).  Each input is
 * loaded twice: as it is, which exercises the size and checksum checks,
 * and with its size field and CRC-32 made right, so that mutations get
 * past the checksum to the config, scaler, tensor table and weight checks
 * (the loader's fuzzing mode lives here, so the loader fuzzed is the one
 * shipped).  A load succeeds with a model that passes the config checks
 * and forecasts, or fails with -EINVAL and the file's name in a reason of
 * printable characters.
 * Seeds: real small models of both backbones (corpus/model).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "forecast/internal.h" /* fc_model_load_buffer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIZE_AT 12 /* magic 8, version 4, then the u64 file size */

static void load_one(const uint8_t *buf, size_t n)
{
	struct fc_model *m = NULL;
	char err[512] = "";
	int r = fc_model_load_buffer(buf, n, "fuzz.dcm", &m, err, sizeof(err));
	if (r < 0) {
		if (m || (r != -EINVAL && r != -ENOMEM) ||
		    !strstr(err, "fuzz.dcm"))
			abort();
		for (const char *c = err; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				abort(); /* the file's bytes, unescaped */
		return;
	}
	const struct fc_config *c = fc_model_config(m);
	if (!m || fc_config_check(c, err, sizeof(err)) < 0 ||
	    fc_model_param_count(m) > n / 4)
		abort();
	/* a model that loads is usable: one frozen forecast */
	struct fc_workspace *ws;
	float *x = calloc((size_t)c->lookback, sizeof(float));
	float *y = calloc((size_t)c->horizon, sizeof(float));
	if (!x || !y || fc_workspace_new(m, 1, &ws) < 0)
		abort();
	for (int i = 0; i < c->lookback; i++)
		x[i] = (float)(i % 7) - 3.0f;
	if (fc_forecast(m, NULL, ws, x, 1, y) < 0)
		abort();
	fc_workspace_free(ws);
	free(y);
	free(x);
	fc_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once++)
		fc_blas_set_threads(1); /* no thread pool per forecast */
	/* a copy, so that reads past the end are caught by ASan */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	load_one(buf, size);
	if (size >= SIZE_AT + 8 + 4) {
		for (int i = 0; i < 8; i++)
			buf[SIZE_AT + i] = (uint8_t)((uint64_t)size >> (8 * i));
		uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(size - 4));
		for (int i = 0; i < 4; i++)
			buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
		if (memcmp(buf, data, size))
			load_one(buf, size);
	}
	free(buf);
	return 0;
}
