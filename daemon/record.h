/*
 * Engine events -> storage rows (daemon/record.c): the one mapping, shared
 * by the daemon loop and `driftcast eval --db`.
 */
#ifndef DRIFTCAST_DAEMON_RECORD_H
#define DRIFTCAST_DAEMON_RECORD_H

#include <stddef.h>

struct store;
struct ttt_event;

/* Record one engine event in the store's open batch: realised errors to
 * the errors table, forecasts to the forecasts table, everything else to
 * the audit log (and a version when it carries an adapter).  series
 * overrides ev->series when not NULL.  0 or the storage's negative errno
 * with errbuf. */
int dc_record_event(struct store *s, const struct ttt_event *ev,
		    const char *series, char *errbuf, size_t errbuf_size);

#endif
