/*
 * The status page (daemon/status_page.c): GET / on the metrics listener,
 * an HTML summary of the running daemon with small SVG pictures of the
 * series whose adaptation hurts or helps most.
 */
#ifndef DRIFTCAST_DAEMON_STATUS_PAGE_H
#define DRIFTCAST_DAEMON_STATUS_PAGE_H

#include <stdio.h>

struct dc_metrics;

/* Write the page into f: the loop's numbers from m, the rest read from the
 * database at db (read-only, a connection of its own).  A database that
 * cannot be read is said on the page.  A dc_metrics_page_fn. */
int dc_status_page(const char *db, struct dc_metrics *m, FILE *f);

#endif
