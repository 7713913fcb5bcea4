/*
 * Reads: the stored Kafka offsets, the current adapters handed back at
 * start (store_restore) with the recent values saved at a clean stop
 * (store_recent_take, which also deletes them), the audit history and the
 * versions of a series; and the names events and triggers are stored by.
 * Every blob is checksum-verified on its way out.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[STORE_EV__COUNT] = {
    [STORE_EV_FORECAST] = "forecast",
    [STORE_EV_ADAPT_ACCEPTED] = "adapt_accepted",
    [STORE_EV_ADAPT_REJECTED] = "adapt_rejected",
    [STORE_EV_DRIFT] = "drift",
    [STORE_EV_ROLLBACK] = "rollback",
    [STORE_EV_RESET] = "reset",
    [STORE_EV_GAP_FILLED] = "gap_filled",
    [STORE_EV_REJECTED_VALUE] = "rejected_value",
    [STORE_EV_MANUAL] = "manual",
    [STORE_EV_INIT] = "init",
};

static const char *const trigger_names[STORE_TRIGGER__COUNT] = {
    [STORE_TRIGGER_NONE] = "none",     [STORE_TRIGGER_SCHEDULE] = "schedule",
    [STORE_TRIGGER_DRIFT] = "drift",   [STORE_TRIGGER_SHADOW] = "shadow",
    [STORE_TRIGGER_MANUAL] = "manual", [STORE_TRIGGER_FALLBACK] = "fallback",
    [STORE_TRIGGER_MODEL] = "model",
};

const char *store_event_type_name(int type)
{
	if (type < 0 || type >= STORE_EV__COUNT)
		return "?";
	return event_names[type];
}

const char *store_trigger_name(int trigger)
{
	if (trigger < 0 || trigger >= STORE_TRIGGER__COUNT)
		return "?";
	return trigger_names[trigger];
}

static int name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

int store_event_type_parse(const char *name)
{
	return name_index(event_names, STORE_EV__COUNT, name);
}

float store_col_float(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NAN;
	return (float)sqlite3_column_double(st, i);
}

int store_offset_get(struct store *s, const char *topic, int32_t partition,
		     int64_t *ret_next_offset, bool *ret_found, char *errbuf,
		     size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_check_key(topic, "topic", errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_prep(s, SQ_OFFSET_GET, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, partition);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_next_offset = sqlite3_column_int64(st, 0);
		*ret_found = true;
	} else if (rc == SQLITE_DONE) {
		*ret_next_offset = 0;
		*ret_found = false;
	} else {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading an offset");
	}
	reset_stmt(st);
	return r;
}

int store_series_step(struct store *s, const char *series, int64_t *ret_step,
		      char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = store_prep(s, SQ_SERIES_STEP, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret_step = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a series' step");
	reset_stmt(st);
	return r;
}

int store_restore_walk(struct store *s, sqlite3_stmt *st, store_restore_fn fn,
		       void *user, size_t *ret_bad, char *errbuf,
		       size_t errbuf_size)
{
	int r = 0, rc;
	size_t bad = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_restored rr = {
		    .series = (const char *)sqlite3_column_text(st, 0),
		    .version = (uint64_t)sqlite3_column_int64(st, 1),
		    .version_id = sqlite3_column_int64(st, 2),
		    .last_ts = store_ts_read(s, sqlite3_column_int64(st, 3)),
		};
		if (!store_base_adapter(rr.version,
					sqlite3_column_int64(st, 5)))
			rr.model_id = sqlite3_column_int64(st, 9);
		size_t len = 0;
		rr.status =
		    store_blob_copy(st, 4, 5, 6, &s->buf, &s->buf_cap, &len);
		if (rr.status == -ENOMEM) {
			r = store_set_err(errbuf, errbuf_size, -ENOMEM,
					  "out of memory restoring adapters");
			goto out;
		}
		if (rr.status == 0) {
			rr.adapter = s->buf;
			rr.adapter_len = len;
			rr.average_status = store_halves_copy(
			    st, 7, 8, &s->vbuf, &s->vbuf_cap, &len);
			if (rr.average_status == -ENOMEM) {
				r = store_set_err(
				    errbuf, errbuf_size, -ENOMEM,
				    "out of memory restoring adapters");
				goto out;
			}
			if (rr.average_status == 0 && len) {
				rr.average = s->vbuf;
				rr.average_len = len;
			}
		} else {
			bad++;
		}
		int stop = fn(user, &rr);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "restoring adapters");
out:
	reset_stmt(st);
	if (ret_bad)
		*ret_bad = bad;
	return r;
}

int store_restore(struct store *s, const char *series, store_restore_fn fn,
		  void *user, size_t *ret_bad, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;

	bool v11 = s->schema >= STORE_SCHEMA_VERSION_AVERAGE;
	enum sq q = series ? (v11 ? SQ_RESTORE_ONE : SQ_RESTORE_ONE_V10)
			   : (v11 ? SQ_RESTORE_ALL : SQ_RESTORE_ALL_V10);
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	return store_restore_walk(s, st, fn, user, ret_bad, errbuf,
				  errbuf_size);
}

/* The published average of a recent-values row (columns 9-11) into
 * rr: 0 (also when there is none), -EBADMSG (checksum or size: left out),
 * -ENOMEM. */
static int read_average(struct store *s, sqlite3_stmt *st,
			struct store_recent *rr)
{
	size_t len;
	int r = store_halves_copy(st, 9, 11, &s->abuf, &s->abuf_cap, &len);
	if (r < 0 || len == 0)
		return r;
	rr->average = s->abuf;
	rr->average_len = len;
	rr->average_version = (uint64_t)sqlite3_column_int64(st, 10);
	return 0;
}

/* The recalibration's state of a recent-values row (columns 12-13) into
 * rr: 0 (also when there is none), -EBADMSG (checksum: left out),
 * -ENOMEM. */
static int read_recal(struct store *s, sqlite3_stmt *st,
		      struct store_recent *rr)
{
	size_t len;
	int r = store_units_copy(st, 12, 13, 1, &s->rbuf, &s->rbuf_cap, &len);
	if (r < 0 || len == 0)
		return r;
	rr->recal = s->rbuf;
	rr->recal_len = len;
	return 0;
}

int store_recent_walk(struct store *s, sqlite3_stmt *st, store_recent_fn fn,
		      void *user, size_t *ret_n, char *errbuf,
		      size_t errbuf_size)
{
	size_t n = 0;
	int r = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_recent rr = {
		    .series = (const char *)sqlite3_column_text(st, 0),
		    .last_ts = store_ts_read(s, sqlite3_column_int64(st, 1)),
		    .step = store_ts_read(s, sqlite3_column_int64(st, 2)),
		    .position = sqlite3_column_int64(st, 3),
		    .since_adapt = sqlite3_column_int64(st, 4),
		    .adaptations = (uint64_t)sqlite3_column_int64(st, 5),
		};
		size_t len = 0;
		rr.status =
		    store_blob_copy(st, 6, 7, 8, &s->buf, &s->buf_cap, &len);
		if (rr.status == -ENOMEM) {
			r = store_set_err(
			    errbuf, errbuf_size, -ENOMEM,
			    "out of memory reading recent values");
			goto out;
		}
		if (rr.status == 0) {
			rr.values = s->buf;
			rr.count = len;
		}
		rr.average_status = read_average(s, st, &rr);
		rr.recal_status = read_recal(s, st, &rr);
		if (rr.average_status == -ENOMEM ||
		    rr.recal_status == -ENOMEM) {
			r = store_set_err(
			    errbuf, errbuf_size, -ENOMEM,
			    "out of memory reading recent values");
			goto out;
		}
		n++;
		if ((r = fn(user, &rr)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading saved recent values");
out:
	reset_stmt(st);
	if (ret_n)
		*ret_n = n;
	return r;
}

int store_recent_take_q(struct store *s, enum sq walk, enum sq clear, int bind,
			bool commit, store_recent_fn fn, void *user,
			size_t *ret_n, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int r;

	if (ret_n)
		*ret_n = 0;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_prep(s, walk, &st, errbuf, errbuf_size)) < 0)
		goto fail;
	if (bind != INT_MIN)
		sqlite3_bind_int(st, 1, bind);
	if ((r = store_recent_walk(s, st, fn, user, &n, errbuf, errbuf_size)) !=
		0 ||
	    (r = store_prep(s, clear, &st, errbuf, errbuf_size)) < 0)
		goto fail;
	if (bind != INT_MIN)
		sqlite3_bind_int(st, 1, bind);
	if ((r = store_step_row(s, st, "deleting saved recent values", errbuf,
				errbuf_size)) < 0) {
		if (!commit) /* the caller's batch: failed as any write */
			return store_batch_fail(s, r, errbuf, errbuf_size);
		goto fail;
	}
	if (commit && (r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	if (ret_n)
		*ret_n = n;
	return 0;
fail:
	/* nothing written yet: the caller's batch stays as it was */
	if (commit)
		store_batch_abort(s);
	return r;
}

int store_recent_take(struct store *s, store_recent_fn fn, void *user,
		      size_t *ret_n, char *errbuf, size_t errbuf_size)
{
	return store_recent_take_q(
	    s,
	    s->schema >= STORE_SCHEMA_RECAL	? SQ_RECENT_ALL
	    : s->schema >= STORE_SCHEMA_AVERAGE ? SQ_RECENT_ALL_V11
						: SQ_RECENT_ALL_V9,
	    SQ_RECENT_CLEAR, INT_MIN, true, fn, user, ret_n, errbuf,
	    errbuf_size);
}

int store_history(struct store *s, const char *series, int64_t since,
		  store_event_fn fn, void *user, char *errbuf,
		  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;

	enum sq q = s->schema >= 3
			? (series ? SQ_HISTORY_ONE : SQ_HISTORY_ALL)
			: (series ? SQ_HISTORY_ONE_V1 : SQ_HISTORY_ALL_V1);
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	if (series)
		sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_ts_query(s, since));
	return store_history_rows(s, st, fn, user, errbuf, errbuf_size);
}

int store_history_rows(struct store *s, sqlite3_stmt *st, store_event_fn fn,
		       void *user, char *errbuf, size_t errbuf_size)
{
	int r = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event ev = {
		    .id = sqlite3_column_int64(st, 0),
		    .series = (const char *)sqlite3_column_text(st, 1),
		    .ts = store_ts_read(s, sqlite3_column_int64(st, 2)),
		    .type =
			name_index(event_names, STORE_EV__COUNT,
				   (const char *)sqlite3_column_text(st, 3)),
		    .trigger =
			name_index(trigger_names, STORE_TRIGGER__COUNT,
				   (const char *)sqlite3_column_text(st, 4)),
		    .version_from = (uint64_t)sqlite3_column_int64(st, 5),
		    .version_to = (uint64_t)sqlite3_column_int64(st, 6),
		    .steps = sqlite3_column_int(st, 7),
		    .loss_before = store_col_float(st, 8),
		    .loss_after = store_col_float(st, 9),
		    .guard_before = store_col_float(st, 10),
		    .guard_after = store_col_float(st, 11),
		    .update_norm = store_col_float(st, 12),
		    .adapted_error = store_col_float(st, 13),
		    .shadow_error = store_col_float(st, 14),
		    .reason = (const char *)sqlite3_column_text(st, 15),
		    .created_at = sqlite3_column_int64(st, 16),
		    .data_from = store_ts_read(s, sqlite3_column_int64(st, 17)),
		    .data_until =
			store_ts_read(s, sqlite3_column_int64(st, 18)),
		    .value = store_col_float(st, 19),
		    .filled = sqlite3_column_int(st, 20),
		    .detector_stat = store_col_float(st, 21),
		    .version_restored = (uint64_t)sqlite3_column_int64(st, 22),
		};
		int stop = fn(user, &ev);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading history");
out:
	reset_stmt(st);
	return r;
}

int store_versions(struct store *s, const char *series, store_version_fn fn,
		   void *user, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	struct series_row sr;
	int r;

	if ((r = store_check_key(series, "series key", errbuf, errbuf_size)) <
	    0)
		return r;
	if ((r = store_series_get(s, series, false, &sr, errbuf, errbuf_size)) <
	    0)
		return r;
	if (!fn)
		return 0;
	if ((r = store_prep(s, SQ_VERSIONS, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	return store_version_rows(s, st, series, fn, user, errbuf, errbuf_size);
}

int store_version_rows(struct store *s, sqlite3_stmt *st, const char *series,
		       store_version_fn fn, void *user, char *errbuf,
		       size_t errbuf_size)
{
	int r = 0, rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_version v = {
		    .id = sqlite3_column_int64(st, 0),
		    .series = series,
		    .number = (uint64_t)sqlite3_column_int64(st, 1),
		    .parent_id = sqlite3_column_int64(st, 2),
		    .parent_number = sqlite3_column_type(st, 3) == SQLITE_NULL
					 ? -1
					 : sqlite3_column_int64(st, 3),
		    .model_id = sqlite3_column_int64(st, 4),
		    .ts = store_ts_read(s, sqlite3_column_int64(st, 5)),
		    .created_at = sqlite3_column_int64(st, 6),
		    .reason = (const char *)sqlite3_column_text(st, 7),
		    .note = (const char *)sqlite3_column_text(st, 8),
		    .loss_before = store_col_float(st, 9),
		    .loss_after = store_col_float(st, 10),
		    .guard_before = store_col_float(st, 11),
		    .guard_after = store_col_float(st, 12),
		    .adapter_len = (size_t)sqlite3_column_int64(st, 13),
		    .checksum = (uint32_t)sqlite3_column_int64(st, 14),
		    .current = sqlite3_column_int(st, 15) != 0,
		};
		int stop = fn(user, &v);
		if (stop) {
			r = stop;
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading versions");
out:
	reset_stmt(st);
	return r;
}
