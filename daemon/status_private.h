/*
 * Inside daemon/status.c: the loop-side table of series (status_series.c)
 * that says which partition each series arrives on and whether its
 * adapter is currently worse than the frozen model, and the realised
 * error histograms.  Used from the loop's thread only.
 */
#ifndef DRIFTCAST_DAEMON_STATUS_PRIVATE_H
#define DRIFTCAST_DAEMON_STATUS_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

struct dc_partition_lag;
struct status_watch;

/* Realised MSE buckets (normalised scale; +Inf implied). */
#define STATUS_ERR_BUCKETS 12
extern const double status_err_bounds[STATUS_ERR_BUCKETS - 1];
enum { STATUS_ADAPTED, STATUS_FROZEN };

/* What the table adds up to over the assigned partitions. */
struct status_totals {
	int64_t owned;	/* series that arrived on an assigned partition */
	int64_t scored; /* ... with at least one realised window */
	int64_t worse;	/* ... whose adapter's mean error is above frozen */
	size_t tracked; /* every series in the table */
	/* the histograms, non-cumulative, by STATUS_ADAPTED/FROZEN */
	uint64_t bucket[2][STATUS_ERR_BUCKETS];
	double sum[2];
};

struct status_watch *status_watch_new(void);
void status_watch_free(struct status_watch *w);
void status_watch_seen(struct status_watch *w, const char *key,
		       int32_t partition);
/* A partition's series no longer counted, their errors' history dropped
 * (the partition was revoked and its series forgotten here). */
void status_watch_forget_partition(struct status_watch *w, int32_t partition);
void status_watch_realised(struct status_watch *w, const char *key,
			   float adapted, float frozen);
/* Totals over parts[0..nparts) (the assignment). */
void status_watch_totals(const struct status_watch *w,
			 const struct dc_partition_lag *parts, int nparts,
			 struct status_totals *ret);

#endif
