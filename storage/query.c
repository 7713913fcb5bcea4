/*
 * The reads behind the operator's views (storage/query.h): forecasts with
 * their observed values and realised errors over a time range, the
 * per-series summary of `driftcast series`, the newest events of some
 * types, and a stored base model's bytes.  Read-only statements; they work
 * on a store opened read_only while a daemon writes.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The id of series (-ENOENT with the message when unknown). */
static int series_id(struct store *s, const char *series, int64_t *ret_id,
		     char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	int r = store_check_key(series, "series key", errbuf, errbuf_size);
	if (r < 0 || (r = store_series_get(s, series, false, &sr, errbuf,
					   errbuf_size)) < 0)
		return r;
	*ret_id = sr.id;
	return 0;
}

/* Statement q for series' rows with since <= origin_ts <= until. */
static int range_stmt(struct store *s, enum sq q, const char *series,
		      int64_t since, int64_t until, sqlite3_stmt **ret,
		      char *errbuf, size_t errbuf_size)
{
	int64_t id;
	int r;
	if ((r = series_id(s, series, &id, errbuf, errbuf_size)) < 0 ||
	    (r = store_prep(s, q, ret, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(*ret, 1, id);
	sqlite3_bind_int64(*ret, 2, store_ts_query(s, since));
	sqlite3_bind_int64(*ret, 3, store_ts_query_until(s, until));
	return 0;
}

int store_forecasts(struct store *s, const char *series, int64_t since,
		    int64_t until, store_forecast_fn fn, void *user,
		    char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	/* files below schema 8 store no values: NULL, so NAN */
	enum sq q = s->schema >= STORE_SCHEMA_VALUE ? SQ_FORECASTS_RANGE
						    : SQ_FORECASTS_RANGE_V6;
	if ((r = range_stmt(s, q, series, since, until, &st, errbuf,
			    errbuf_size)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_forecast f = {
		    .origin_ts = store_ts_read(s, sqlite3_column_int64(st, 0)),
		    .version = (uint64_t)sqlite3_column_int64(st, 1),
		    .model_id = sqlite3_column_int64(st, 2),
		    .horizon = sqlite3_column_int(st, 4),
		    .value = store_col_float(st, 5),
		};
		/* the blob is not aligned for floats: copy it */
		size_t nbytes = (size_t)sqlite3_column_bytes(st, 3);
		const void *p = sqlite3_column_blob(st, 3);
		if (f.horizon <= 0 ||
		    nbytes != (size_t)f.horizon * sizeof(float)) {
			r = store_set_err(errbuf, errbuf_size, -EBADMSG,
					  "%s: forecast of '%s' at %lld has "
					  "%zu bytes for %d steps",
					  s->path, series,
					  (long long)f.origin_ts, nbytes,
					  f.horizon);
			goto out;
		}
		if ((size_t)f.horizon > s->buf_cap) {
			float *nb = realloc(s->buf, nbytes);
			if (!nb) {
				r = store_set_err(errbuf, errbuf_size, -ENOMEM,
						  "out of memory reading "
						  "forecasts");
				goto out;
			}
			s->buf = nb;
			s->buf_cap = (size_t)f.horizon;
		}
		memcpy(s->buf, p, nbytes);
		f.vals = s->buf;
		if ((r = fn(user, &f)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading forecasts");
out:
	reset_stmt(st);
	return r;
}

int store_realised(struct store *s, const char *series, int64_t since,
		   int64_t until, store_realised_fn fn, void *user,
		   char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = range_stmt(s, SQ_REALISED_RANGE, series, since, until, &st,
			    errbuf, errbuf_size)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_realised e = {
		    .origin_ts = store_ts_read(s, sqlite3_column_int64(st, 0)),
		    .version = (uint64_t)sqlite3_column_int64(st, 1),
		    .adapted_error = store_col_float(st, 2),
		    .shadow_error = store_col_float(st, 3),
		};
		if ((r = fn(user, &e)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading realised errors");
out:
	reset_stmt(st);
	return r;
}

static double col_double_nan(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NAN;
	return sqlite3_column_double(st, i);
}

int store_series_infos(struct store *s, const char *series, int last_n,
		       store_series_info_fn fn, void *user, char *errbuf,
		       size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int64_t id;
	int r, rc;

	if (last_n < 1)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "the number of realised errors to "
				     "average must be at least 1");
	if (series && (r = series_id(s, series, &id, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_prep(s, SQ_SERIES_INFO, &st, errbuf, errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, last_n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_series_info i = {
		    .series = (const char *)sqlite3_column_text(st, 0),
		    .status = (const char *)sqlite3_column_text(st, 1),
		    .model = (const char *)sqlite3_column_text(st, 2),
		    .has_data = sqlite3_column_type(st, 3) != SQLITE_NULL,
		    .last_data_ts =
			store_ts_read(s, sqlite3_column_int64(st, 3)),
		    .has_forecast = sqlite3_column_type(st, 4) != SQLITE_NULL,
		    .last_forecast_ts =
			store_ts_read(s, sqlite3_column_int64(st, 4)),
		    .last_forecast_version =
			(uint64_t)sqlite3_column_int64(st, 5),
		    .has_version = sqlite3_column_type(st, 6) != SQLITE_NULL,
		    .current_version = (uint64_t)sqlite3_column_int64(st, 6),
		    .versions = sqlite3_column_int64(st, 7),
		    .adaptations = sqlite3_column_int64(st, 8),
		    .rejections = sqlite3_column_int64(st, 9),
		    .drifts = sqlite3_column_int64(st, 10),
		    .rollbacks = sqlite3_column_int64(st, 11),
		    .resets = sqlite3_column_int64(st, 12),
		    .has_rollback = sqlite3_column_type(st, 13) != SQLITE_NULL,
		    .last_rollback_ts =
			store_ts_read(s, sqlite3_column_int64(st, 13)),
		    .last_rollback_type = store_event_type_parse(
			(const char *)sqlite3_column_text(st, 14)),
		    .last_rollback_to = (uint64_t)sqlite3_column_int64(st, 15),
		    .last_rollback_restored =
			(uint64_t)sqlite3_column_int64(st, 16),
		    .n_errors = sqlite3_column_int64(st, 17),
		    .adapted_error = col_double_nan(st, 18),
		    .shadow_error = col_double_nan(st, 19),
		};
		if (!i.status)
			i.status = "";
		if (!i.model)
			i.model = "";
		if ((r = fn(user, &i)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading the series");
out:
	reset_stmt(st);
	return r;
}

int store_history_last(struct store *s, int type_a, int type_b, int limit,
		       int (*fn)(void *user, const struct store_event *ev),
		       void *user, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (type_a < 0 || type_a >= STORE_EV__COUNT || type_b < 0 ||
	    type_b >= STORE_EV__COUNT || limit < 0)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "store_history_last: bad argument");
	enum sq q = s->schema >= 3 ? SQ_HISTORY_LAST : SQ_HISTORY_LAST_V1;
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, store_event_type_name(type_a), -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 2, store_event_type_name(type_b), -1,
			  SQLITE_STATIC);
	sqlite3_bind_int(st, 3, limit);
	return store_history_rows(s, st, fn, user, errbuf, errbuf_size);
}

int store_history_from_id(struct store *s, int64_t first_id, int limit,
			  int (*fn)(void *user, const struct store_event *ev),
			  void *user, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (s->schema < 3 || limit < 0)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "store_history_from_id: bad argument");
	if ((r = store_prep(s, SQ_HISTORY_FROM_ID, &st, errbuf, errbuf_size)) <
	    0)
		return r;
	sqlite3_bind_int64(st, 1, first_id);
	sqlite3_bind_int(st, 2, limit);
	return store_history_rows(s, st, fn, user, errbuf, errbuf_size);
}

int store_offsets(struct store *s, store_offset_fn fn, void *user, char *errbuf,
		  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prep(s, SQ_OFFSETS, &st, errbuf, errbuf_size)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = fn(user, (const char *)sqlite3_column_text(st, 0),
			    sqlite3_column_int(st, 1),
			    sqlite3_column_int64(st, 2))) != 0)
			goto out;
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading Kafka offsets");
out:
	reset_stmt(st);
	return r;
}

int store_model_bytes(struct store *s, int64_t model_id, void **ret_bytes,
		      size_t *ret_n, char *name, size_t name_size, char *errbuf,
		      size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prep(s, SQ_MODEL_BYTES, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, model_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 1) == SQLITE_BLOB) {
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		void *b = malloc(n ? n : 1);
		if (!b) {
			r = store_set_err(errbuf, errbuf_size, -ENOMEM,
					  "out of memory reading a model");
			goto out;
		}
		memcpy(b, sqlite3_column_blob(st, 1), n);
		const char *nm = (const char *)sqlite3_column_text(st, 0);
		snprintf(name, name_size, "%s", nm ? nm : "");
		*ret_bytes = b;
		*ret_n = n;
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		r = store_set_err(errbuf, errbuf_size, -ENOENT,
				  "%s: base model %lld is not stored", s->path,
				  (long long)model_id);
	} else {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a model");
	}
out:
	reset_stmt(st);
	return r;
}
