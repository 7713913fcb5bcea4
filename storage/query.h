/*
 * storage/query.h: the reads behind the operator's views -- `driftcast
 * plot`, `driftcast series` and the status page: forecasts with the value
 * observed at their origin, realised errors, a summary per series, the
 * newest events of some types, a stored base model's bytes.  Part of
 * storage's public interface (storage.h includes it; that header is at its
 * size limit); the conventions of storage.h apply.
 */
#ifndef DRIFTCAST_STORAGE_QUERY_H
#define DRIFTCAST_STORAGE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_event;
struct store_version;

/* One stored forecast.  Pointers are valid during the callback. */
struct store_forecast {
	int64_t origin_ts; /* series time of the newest value it used */
	uint64_t version;  /* the adapter version that made it */
	int64_t model_id;  /* base model (0: none registered) */
	float value;	   /* observed at origin_ts; NAN: not stored */
	const float *vals; /* [horizon], step k at origin_ts + k * step */
	int horizon;
};
typedef int (*store_forecast_fn)(void *user, const struct store_forecast *f);
/* Forecasts of series with since <= origin_ts <= until, oldest first;
 * -ENOENT for an unknown series; a blob of the wrong size is -EBADMSG. */
int store_forecasts(struct store *s, const char *series, int64_t since,
		    int64_t until, store_forecast_fn fn, void *user,
		    char *errbuf, size_t errbuf_size);

/* One realised error: the MSE over the horizon of the forecast issued at
 * origin_ts, by the adapter (version) and by the frozen shadow. */
struct store_realised {
	int64_t origin_ts;
	uint64_t version;
	float adapted_error, shadow_error; /* NAN when not stored */
};
typedef int (*store_realised_fn)(void *user, const struct store_realised *e);
/* Realised errors of series with since <= origin_ts <= until, oldest
 * first. */
int store_realised(struct store *s, const char *series, int64_t since,
		   int64_t until, store_realised_fn fn, void *user,
		   char *errbuf, size_t errbuf_size);

/* A series at a glance (`driftcast series`).  Strings are valid during the
 * callback; has_* false: that part is unknown (its fields are 0). */
struct store_series_info {
	const char *series, *status, *model; /* model "" when none */
	bool has_data;
	int64_t last_data_ts; /* the newest series time seen (v_series) */
	bool has_forecast;
	int64_t last_forecast_ts; /* origin of the newest stored forecast */
	uint64_t last_forecast_version;
	bool has_version;
	uint64_t current_version;
	int64_t versions, adaptations, rejections, drifts, rollbacks, resets;
	bool has_rollback; /* rollbacks: automatic (rollback) and manual */
	int64_t last_rollback_ts;
	int last_rollback_type; /* STORE_EV_ROLLBACK or STORE_EV_MANUAL */
	uint64_t last_rollback_to, last_rollback_restored;
	/* The mean realised error of the last n_errors (at most last_n)
	 * matured forecasts, adapted and frozen; NAN when n_errors is 0. */
	int64_t n_errors;
	double adapted_error, shadow_error;
};
typedef int (*store_series_info_fn)(void *user,
				    const struct store_series_info *i);
/* Every series (or only series: -ENOENT when unknown) by key, with the
 * realised errors of its last_n (>= 1) matured forecasts. */
int store_series_infos(struct store *s, const char *series, int last_n,
		       store_series_info_fn fn, void *user, char *errbuf,
		       size_t errbuf_size);

/* The newest `limit` audit rows of type_a or type_b (enum
 * store_event_type; pass one twice for one type), newest first, as
 * store_history() gives them. */
int store_history_last(struct store *s, int type_a, int type_b, int limit,
		       int (*fn)(void *user, const struct store_event *ev),
		       void *user, char *errbuf, size_t errbuf_size);

/* At most `limit` audit rows from row id first_id on, by id (the audit
 * topic's cursor: daemon/run_audit.c), as store_history() gives them.
 * Schema 3 or later (a daemon's database is at the latest). */
int store_history_from_id(struct store *s, int64_t first_id, int limit,
			  int (*fn)(void *user, const struct store_event *ev),
			  void *user, char *errbuf, size_t errbuf_size);

/* Every stored Kafka position (topic, partition, next offset to consume),
 * by topic and partition. */
typedef int (*store_offset_fn)(void *user, const char *topic, int32_t partition,
			       int64_t next_offset);
int store_offsets(struct store *s, store_offset_fn fn, void *user, char *errbuf,
		  size_t errbuf_size);

/* The bytes of stored base model model_id into *ret_bytes (malloc'd, the
 * caller's: free()), *ret_n, and its name into name[name_size]; -ENOENT
 * when there is no such model or its bytes were not stored. */
int store_model_bytes(struct store *s, int64_t model_id, void **ret_bytes,
		      size_t *ret_n, char *name, size_t name_size, char *errbuf,
		      size_t errbuf_size);

/* Several hosts' databases as one (storage/fleet.c).  ATTACH the database
 * at path, read-only, to s, a store opened read_only: path gets the checks
 * of store_open (its errors name it) and, like s, schema STORE_SCHEMA_NS
 * (nanosecond times) or later; a file given twice is -EINVAL, more than
 * SQLite's limit (STORE_ATTACH_MAX unless built otherwise) -E2BIG.  It
 * stays attached until store_free. */
#define STORE_ATTACH_MAX 10
int store_attach(struct store *s, const char *path, char *errbuf,
		 size_t errbuf_size);

/* store_history and store_versions over s and its attached databases,
 * each row with its database's index db (0: s's own, then in attach
 * order).  History is merged by series time (then database, then row);
 * versions by number, a version adopted from another host ('handover')
 * after the one made there, so a lineage that moved reads as one chain;
 * current only in a database that has not handed the series over.
 * store_versions_all: -ENOENT when no database has series (fn may be NULL
 * to check only that). */
typedef int (*store_db_event_fn)(void *user, int db,
				 const struct store_event *ev);
typedef int (*store_db_version_fn)(void *user, int db,
				   const struct store_version *v);
int store_history_all(struct store *s, const char *series, int64_t since,
		      store_db_event_fn fn, void *user, char *errbuf,
		      size_t errbuf_size);
int store_versions_all(struct store *s, const char *series,
		       store_db_version_fn fn, void *user, char *errbuf,
		       size_t errbuf_size);

#endif
