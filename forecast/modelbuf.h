/*
 * forecast/modelbuf.h: a model file read from memory -- the bytes a
 * database keeps of the base model it served (storage's models.bytes), so
 * that a tool can run the very model the daemon ran.  Part of forecast/'s
 * public interface, kept out of forecast.h (at its size limit).
 */
#ifndef DRIFTCAST_FORECAST_MODELBUF_H
#define DRIFTCAST_FORECAST_MODELBUF_H

#include <stddef.h>

struct fc_model;

/* fc_model_load() from n bytes in memory (e.g. a BLOB); name stands for
 * the path in messages (NULL: "model").  buf is not kept; *ret is the
 * caller's (fc_model_free). */
int fc_model_load_buffer(const void *buf, size_t n, const char *name,
			 struct fc_model **ret, char *errbuf,
			 size_t errbuf_size);

#endif
