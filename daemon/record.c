/*
 * Engine events -> storage rows: the one mapping, used by `driftcast run`
 * (and the demo) and by `driftcast eval --db`, so that a replay can be
 * studied in SQL exactly as the daemon would have recorded it.
 */
#include "daemon/record.h"

#include "storage/storage.h"
#include "ttt/ttt.h"

/* The storage enums mirror the engine's, value for value. */
_Static_assert((int)STORE_EV_FORECAST == (int)TTT_EV_FORECAST &&
		   (int)STORE_EV_ADAPT_ACCEPTED == (int)TTT_EV_ADAPT_ACCEPTED &&
		   (int)STORE_EV_ADAPT_REJECTED == (int)TTT_EV_ADAPT_REJECTED &&
		   (int)STORE_EV_DRIFT == (int)TTT_EV_DRIFT &&
		   (int)STORE_EV_ROLLBACK == (int)TTT_EV_ROLLBACK &&
		   (int)STORE_EV_RESET == (int)TTT_EV_RESET &&
		   (int)STORE_EV_GAP_FILLED == (int)TTT_EV_GAP_FILLED &&
		   (int)STORE_EV_REJECTED_VALUE == (int)TTT_EV_REJECTED_VALUE,
	       "storage/storage.h and ttt/ttt.h event types diverged");
_Static_assert((int)STORE_TRIGGER_SCHEDULE == (int)TTT_TRIGGER_SCHEDULE &&
		   (int)STORE_TRIGGER_DRIFT == (int)TTT_TRIGGER_DRIFT &&
		   (int)STORE_TRIGGER_SHADOW == (int)TTT_TRIGGER_SHADOW &&
		   (int)STORE_TRIGGER_MANUAL == (int)TTT_TRIGGER_MANUAL &&
		   (int)STORE_TRIGGER_FALLBACK == (int)TTT_TRIGGER_FALLBACK,
	       "storage/storage.h and ttt/ttt.h triggers diverged");

int dc_record_event(struct store *s, const struct ttt_event *ev,
		    const char *series, char *errbuf, size_t errbuf_size)
{
	if (!series)
		series = ev->series;
	if (ev->type == TTT_EV_REALISED)
		return store_error_put(s, series, ev->ts, ev->version_to,
				       ev->adapted_error, ev->shadow_error,
				       errbuf, errbuf_size);
	struct store_event se = {
	    .type = (int)ev->type,
	    .trigger = (int)ev->trigger,
	    .series = series,
	    .ts = ev->ts,
	    .version_from = ev->version_from,
	    .version_to = ev->version_to,
	    .steps = ev->steps,
	    .loss_before = ev->loss_before,
	    .loss_after = ev->loss_after,
	    .guard_before = ev->guard_before,
	    .guard_after = ev->guard_after,
	    .update_norm = ev->update_norm,
	    .adapted_error = ev->adapted_error,
	    .shadow_error = ev->shadow_error,
	    .reason = ev->reason,
	    .forecast = ev->forecast,
	    .horizon = ev->horizon,
	    .adapter = ev->adapter,
	    .adapter_len = ev->adapter_len,
	    .average = ev->average,
	    .average_len = ev->average_len,
	    .data_from = ev->data_from,
	    .data_until = ev->data_until,
	    .value = ev->value,
	    .filled = ev->filled,
	    .detector_stat = ev->detector_stat,
	    .version_restored = ev->version_restored,
	};
	return store_event_put(s, &se, errbuf, errbuf_size);
}
