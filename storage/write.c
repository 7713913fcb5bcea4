/*
 * The write path.  Writes go into the open batch (one transaction, opened
 * by the first write); store_batch_commit() makes it durable.  A failed
 * statement or commit never aborts: the batch is rolled back, the store
 * goes degraded (store_degraded) and the error is returned, so the daemon
 * keeps forecasting and does not commit Kafka offsets.  Also here: the
 * base-model registry, series rows, immutable versions and audit rows
 * (rollback.c writes through the same functions).
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void degrade(struct store *s, int r, const char *msg)
{
	s->degraded = r;
	snprintf(s->degraded_msg, sizeof(s->degraded_msg), "%s", msg);
}

/* A write in the batch failed: roll the batch back, go degraded. */
int store_batch_fail(struct store *s, int r, char *errbuf, size_t errbuf_size)
{
	char tmp[PATH_MAX + 512];
	snprintf(tmp, sizeof(tmp), "%s", errbuf && errbuf_size ? errbuf : "");
	if (!tmp[0])
		snprintf(tmp, sizeof(tmp), "%s: write failed: %s", s->path,
			 strerror(-r));
	store_batch_abort(s);
	degrade(s, r, tmp);
	s->poisoned = r;
	return r;
}

int store_batch_begin(struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->in_batch)
		return 0;
	if (s->opts.read_only)
		return store_set_err(errbuf, errbuf_size, -EROFS,
				     "%s: opened read-only", s->path);
	if (s->poisoned)
		return store_set_err(
		    errbuf, errbuf_size, s->poisoned,
		    "%s (the batch was rolled back; commit or abort "
		    "it before writing again)",
		    s->degraded_msg);
	int r = store_step_done(s, SQ_BEGIN, errbuf, errbuf_size,
				"beginning a transaction");
	if (r < 0) {
		degrade(s, r, errbuf && errbuf_size ? errbuf : "BEGIN failed");
		s->poisoned = r;
		return r;
	}
	s->in_batch = true;
	s->batch_rows = 0;
	s->batch_start_ms = store_mono_ms();
	return 0;
}

int store_batch_commit(struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->poisoned) {
		int p = s->poisoned;
		s->poisoned = 0;
		return store_set_err(errbuf, errbuf_size, p,
				     "%s (the batch was rolled back)",
				     s->degraded_msg);
	}
	if (!s->in_batch)
		return 0;
	int r = store_step_done(s, SQ_COMMIT, errbuf, errbuf_size,
				"committing a batch");
	if (r < 0) {
		store_batch_fail(s, r, errbuf, errbuf_size);
		s->poisoned = 0; /* the caller learns it right here */
		return r;
	}
	s->in_batch = false;
	s->batch_rows = 0;
	s->degraded = 0;
	s->degraded_msg[0] = '\0';
	return 0;
}

void store_batch_abort(struct store *s)
{
	s->poisoned = 0;
	if (!s->in_batch)
		return;
	/* May fail when SQLite already rolled back (e.g. on SQLITE_FULL). */
	if (sqlite3_get_autocommit(s->db) == 0)
		store_step_done(s, SQ_ROLLBACK, NULL, 0, "rollback");
	s->in_batch = false;
	s->batch_rows = 0;
}

size_t store_batch_rows(const struct store *s)
{
	return s->batch_rows;
}

bool store_batch_due(const struct store *s, int64_t now_ms)
{
	if (!s->in_batch)
		return false;
	return s->batch_rows >= (size_t)s->opts.batch_rows ||
	       now_ms - s->batch_start_ms >= s->opts.batch_ms;
}

int store_degraded(const struct store *s, char *errbuf, size_t errbuf_size)
{
	if (s->degraded)
		store_set_err(errbuf, errbuf_size, 0, "%s", s->degraded_msg);
	return s->degraded;
}

static void bind_float(sqlite3_stmt *st, int i, float v)
{
	if (isfinite(v))
		sqlite3_bind_double(st, i, (double)v);
	else
		sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, int64_t id)
{
	if (id > 0)
		sqlite3_bind_int64(st, i, id);
	else
		sqlite3_bind_null(st, i);
}

/* The id of the model row (checksum, nbytes) whose stored bytes are bytes,
 * 0 when none. */
static int model_find(struct store *s, int64_t checksum, const void *bytes,
		      size_t nbytes, int64_t *ret_id, char *errbuf,
		      size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r = store_prep(s, SQ_MODEL_FIND, &st, errbuf, errbuf_size), rc;
	if (r < 0)
		return r;
	*ret_id = 0;
	sqlite3_bind_int64(st, 1, checksum);
	sqlite3_bind_int64(st, 2, (int64_t)nbytes);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((size_t)sqlite3_column_bytes(st, 1) == nbytes &&
		    (nbytes == 0 ||
		     memcmp(sqlite3_column_blob(st, 1), bytes, nbytes) == 0)) {
			*ret_id = sqlite3_column_int64(st, 0);
			break;
		}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "finding a model");
	reset_stmt(st);
	return r;
}

int store_model_register(struct store *s, const char *name,
			 const char *config_text, const void *bytes,
			 size_t nbytes, const char *report, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	int64_t id = 0;

	if (!name || !*name || (!bytes && nbytes) || nbytes > INT_MAX)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "model: empty name or bad bytes");
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	int64_t hash = store_model_hash(bytes, nbytes);
	if ((r = model_find(s, hash, bytes, nbytes, &id, errbuf, errbuf_size)) <
		0 ||
	    id)
		goto out;
	/* registered before the hash, under its CRC-32: the row becomes
	 * this file's */
	if ((r = model_find(s, store_checksum(bytes, nbytes), bytes, nbytes,
			    &id, errbuf, errbuf_size)) < 0)
		goto out;
	if (id) {
		if ((r = store_prep(s, SQ_MODEL_REHASH, &st, errbuf,
				    errbuf_size)) < 0)
			return r;
		sqlite3_bind_int64(st, 1, hash);
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			r = store_db_fail(s, rc, errbuf, errbuf_size,
					  "registering a model");
		goto out;
	}
	if ((r = store_prep(s, SQ_MODEL_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, config_text ? config_text : "", -1,
			  SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, bytes, (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)nbytes);
	sqlite3_bind_int64(st, 5, hash);
	if (report)
		sqlite3_bind_text(st, 6, report, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, store_now_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "registering a model");
		goto out;
	}
	id = sqlite3_last_insert_rowid(s->db);
out:
	reset_stmt(st);
	if (r == 0) {
		s->model_id = id;
		*ret_id = id;
	}
	return r;
}

/* The parameters of SQ_SERIES_INSERT and SQ_SERIES_INSERT_NEW: key, the
 * base model, the time it was first seen. */
static void bind_new_series(struct store *s, sqlite3_stmt *st, const char *key)
{
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	bind_id(st, 2, s->model_id);
	sqlite3_bind_int64(st, 3, store_now_ms());
}

/* Look the series up; with create, insert it when missing.  Returns
 * -ENOENT when missing and !create. */
int store_series_get(struct store *s, const char *key, bool create,
		     struct series_row *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	struct series_row row = {0};

	if ((r = store_prep(s, SQ_SERIES_GET, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row.id = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
			row.cur_id = sqlite3_column_int64(st, 1);
			row.cur_number = sqlite3_column_int64(st, 2);
		}
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			row.has_last_ts = true;
			row.last_ts = sqlite3_column_int64(st, 3);
		}
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a series");
		goto out;
	}
	if (!create) {
		r = store_set_err(errbuf, errbuf_size, -ENOENT,
				  "%s: no series '%s' in the database", s->path,
				  key);
		goto out;
	}
	reset_stmt(st);
	if ((r = store_prep(s, SQ_SERIES_INSERT, &st, errbuf, errbuf_size)) < 0)
		return r;
	bind_new_series(s, st, key);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "adding a series");
		goto out;
	}
	row.id = sqlite3_last_insert_rowid(s->db);
	s->batch_rows++;
out:
	reset_stmt(st);
	if (r == 0)
		*ret = row;
	return r;
}

/* store_series_get() for a series the caller believes new (STORE_EV_INIT, its
 * first event): insert first and look up only if the key was there after
 * all, which saves the lookup of a key that almost never is. */
static int series_get_new(struct store *s, const char *key,
			  struct series_row *ret, char *errbuf,
			  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prep(s, SQ_SERIES_INSERT_NEW, &st, errbuf,
			    errbuf_size)) < 0)
		return r;
	bind_new_series(s, st, key);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "adding a series");
	} else if (sqlite3_changes(s->db) == 1) {
		*ret =
		    (struct series_row){.id = sqlite3_last_insert_rowid(s->db)};
		s->batch_rows++;
	} else {
		reset_stmt(st);
		return store_series_get(s, key, true, ret, errbuf, errbuf_size);
	}
	reset_stmt(st);
	return r;
}

static const char *version_reason(const struct store_event *ev,
				  const struct series_row *sr)
{
	switch (ev->type) {
	case STORE_EV_ROLLBACK:
		return "rollback";
	case STORE_EV_RESET:
		return "reset";
	case STORE_EV_MANUAL:
		return "manual";
	case STORE_EV_INIT:
		return "init";
	case STORE_EV_ADAPT_ACCEPTED:
		if (ev->trigger == STORE_TRIGGER_DRIFT)
			return "drift";
		return "ttt";
	default:
		if (!sr->cur_id && ev->version_to == 0)
			return "init";
		return "ttt";
	}
}

/* Insert a version as the series' new current one. */
int store_version_insert(struct store *s, struct series_row *sr,
			 const struct version_new *v, int64_t *ret_id,
			 char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	size_t nbytes = v->adapter_len * sizeof(float);

	if (v->adapter_len > (size_t)INT_MAX / sizeof(float))
		return store_set_err(errbuf, errbuf_size, -E2BIG,
				     "adapter of %zu floats is too large",
				     v->adapter_len);
	if (v->number > (uint64_t)INT64_MAX)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "version number out of range");
	bool v11 = s->schema >= STORE_SCHEMA_VERSION_AVERAGE;
	if (v->average_len > (size_t)INT_MAX / sizeof(uint16_t))
		return store_set_err(errbuf, errbuf_size, -E2BIG,
				     "average of %zu values is too large",
				     v->average_len);
	if ((r = store_prep(s, v11 ? SQ_VERSION_INSERT : SQ_VERSION_INSERT_V10,
			    &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	sqlite3_bind_int64(st, 2, (int64_t)v->number);
	if (v->parent_given) { /* made on another host (handover.c) */
		bind_id(st, 3, v->parent_id);
		if (v->parent_number >= 0)
			sqlite3_bind_int64(st, 4, v->parent_number);
	} else {
		bind_id(st, 3, sr->cur_id);
		if (sr->cur_id)
			sqlite3_bind_int64(st, 4, sr->cur_number);
	}
	bind_id(st, 5, s->model_id);
	sqlite3_bind_int64(st, 6, v->ts);
	sqlite3_bind_int64(st, 7, store_now_ms());
	sqlite3_bind_text(st, 8, v->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, v->note ? v->note : "", -1, SQLITE_STATIC);
	if (v->restored_from >= 0)
		sqlite3_bind_int64(st, 10, v->restored_from);
	bind_float(st, 11, v->loss_before);
	bind_float(st, 12, v->loss_after);
	bind_float(st, 13, v->guard_before);
	bind_float(st, 14, v->guard_after);
	sqlite3_bind_blob(st, 15, nbytes ? (const void *)v->adapter : "",
			  (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, (int64_t)v->adapter_len);
	sqlite3_bind_int64(st, 17, store_checksum(v->adapter, nbytes));
	if (v11 && v->average && v->average_len) {
		size_t ab = v->average_len * sizeof(uint16_t);
		sqlite3_bind_blob(st, 18, v->average, (int)ab, SQLITE_STATIC);
		sqlite3_bind_int64(st, 19, store_checksum(v->average, ab));
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		/* the statement is undone, the transaction goes on */
		r = store_set_err(errbuf, errbuf_size, -EEXIST,
				  "%s: the series already has a version %llu "
				  "(versions are immutable)",
				  s->path, (unsigned long long)v->number);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "writing a version");
		goto out;
	}
	int64_t id = sqlite3_last_insert_rowid(s->db);
	reset_stmt(st);
	if ((r = store_prep(s, SQ_SERIES_SET_CURRENT, &st, errbuf,
			    errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, (int64_t)v->number);
	sqlite3_bind_int64(st, 4, v->ts);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "moving a series");
		goto out;
	}
	sr->cur_id = id;
	sr->cur_number = (int64_t)v->number;
	s->batch_rows++;
	*ret_id = id;
out:
	reset_stmt(st);
	return r;
}

int store_version_exists(struct store *s, int64_t series_id, uint64_t number,
			 bool *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	if ((r = store_prep(s, SQ_VERSION_EXISTS, &st, errbuf, errbuf_size)) <
	    0)
		return r;
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, (int64_t)number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = true;
	else if (rc == SQLITE_DONE)
		*ret = false;
	else
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading versions");
	reset_stmt(st);
	return r;
}

int store_audit_insert(struct store *s, int64_t series_id,
		       const struct store_event *ev, char *errbuf,
		       size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;
	bool v3 = s->schema >= 3;
	if ((r = store_prep(s, v3 ? SQ_AUDIT_INSERT : SQ_AUDIT_INSERT_V1, &st,
			    errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, store_now_ms());
	sqlite3_bind_int64(st, 2, series_id);
	sqlite3_bind_int64(st, 3, ev->ts);
	sqlite3_bind_text(st, 4, store_event_type_name(ev->type), -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 5, store_trigger_name(ev->trigger), -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)ev->version_from);
	sqlite3_bind_int64(st, 7, (int64_t)ev->version_to);
	sqlite3_bind_int(st, 8, ev->steps);
	bind_float(st, 9, ev->loss_before);
	bind_float(st, 10, ev->loss_after);
	bind_float(st, 11, ev->guard_before);
	bind_float(st, 12, ev->guard_after);
	bind_float(st, 13, ev->update_norm);
	bind_float(st, 14, ev->adapted_error);
	bind_float(st, 15, ev->shadow_error);
	sqlite3_bind_text(st, 16, ev->reason ? ev->reason : "", -1,
			  SQLITE_STATIC);
	if (v3) { /* each only where it applies, else NULL */
		if ((ev->type == STORE_EV_ADAPT_ACCEPTED ||
		     ev->type == STORE_EV_ADAPT_REJECTED) &&
		    (ev->data_from || ev->data_until)) {
			sqlite3_bind_int64(st, 17, ev->data_from);
			sqlite3_bind_int64(st, 18, ev->data_until);
		}
		/* an infinite rejected value is kept; NaN becomes NULL */
		if (ev->type == STORE_EV_REJECTED_VALUE)
			sqlite3_bind_double(st, 19, (double)ev->value);
		if (ev->type == STORE_EV_GAP_FILLED)
			sqlite3_bind_int(st, 20, ev->filled);
		if (ev->type == STORE_EV_DRIFT)
			bind_float(st, 21, ev->detector_stat);
		if (ev->type == STORE_EV_ROLLBACK ||
		    ev->type == STORE_EV_MANUAL)
			sqlite3_bind_int64(st, 22,
					   (int64_t)ev->version_restored);
	}
	return store_step_row(s, st, "writing an audit row", errbuf,
			      errbuf_size);
}

static int forecast_insert(struct store *s, int64_t series_id,
			   const struct store_event *ev, char *errbuf,
			   size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r;
	if (ev->horizon <= 0 || !ev->forecast ||
	    (size_t)ev->horizon > (size_t)INT_MAX / sizeof(float))
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "forecast of series '%s' has no values",
				     ev->series);
	/* files below schema 8 (tests, tools) have no value column */
	enum sq q = s->schema >= STORE_SCHEMA_VALUE ? SQ_FORECAST_PUT
						    : SQ_FORECAST_PUT_V6;
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, ev->ts);
	sqlite3_bind_int(st, 3, ev->horizon);
	sqlite3_bind_blob(st, 4, ev->forecast,
			  (int)((size_t)ev->horizon * sizeof(float)),
			  SQLITE_STATIC);
	bind_id(st, 5, s->model_id);
	sqlite3_bind_int64(st, 6, (int64_t)ev->version_to);
	sqlite3_bind_int64(st, 7, store_now_ms());
	if (q == SQ_FORECAST_PUT && isfinite(ev->value))
		sqlite3_bind_double(st, 8, (double)ev->value);
	return store_step_row(s, st, "writing a forecast", errbuf, errbuf_size);
}

/* Errors that leave the batch usable: bad input, refused duplicates. */
bool store_batch_survives(int r)
{
	return r == -EINVAL || r == -EEXIST || r == -E2BIG;
}

/* How every write of the batch ends: a failure that does not leave the
 * batch usable rolls it back (batch_fail). */
static int put_failed(struct store *s, int r, char *errbuf, size_t errbuf_size)
{
	if (r < 0 && !store_batch_survives(r))
		return store_batch_fail(s, r, errbuf, errbuf_size);
	return r;
}

/*
 * The start of a one-statement write: when series is not NULL, check its
 * key (the caller may have checked it already); open the batch (refused
 * when read-only or after a failed write); find or create the series (its
 * row id in *ret_series_id) and fetch statement q into *ret_st for the
 * caller to bind; then put_end().  On failure the batch is handled as
 * put_failed() says and nothing is left to reset.
 */
static int put_begin(struct store *s, enum sq q, const char *series,
		     int64_t *ret_series_id, sqlite3_stmt **ret_st,
		     char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	int r;

	if (series && (r = store_check_key(series, "series key", errbuf,
					   errbuf_size)) < 0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	if (series && (r = store_series_get(s, series, true, &sr, errbuf,
					    errbuf_size)) < 0)
		return put_failed(s, r, errbuf, errbuf_size);
	if ((r = store_prep(s, q, ret_st, errbuf, errbuf_size)) < 0)
		return put_failed(s, r, errbuf, errbuf_size);
	if (series)
		*ret_series_id = sr.id;
	return 0;
}

/* Step the statement put_begin() fetched and the caller bound. */
static int put_end(struct store *s, sqlite3_stmt *st, const char *what,
		   char *errbuf, size_t errbuf_size)
{
	return put_failed(s, store_step_row(s, st, what, errbuf, errbuf_size),
			  errbuf, errbuf_size);
}

int store_event_put(struct store *s, const struct store_event *ev, char *errbuf,
		    size_t errbuf_size)
{
	struct series_row sr;
	int64_t vid;
	int r;

	if (!ev || ev->type < 0 || ev->type >= STORE_EV__COUNT ||
	    ev->trigger < 0 || ev->trigger >= STORE_TRIGGER__COUNT)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "event type or trigger out of range");
	if ((r = store_check_key(ev->series, "series key", errbuf,
				 errbuf_size)) < 0)
		return r;
	if (ev->adapter_len && !ev->adapter)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "adapter_len without adapter");
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	r = ev->type == STORE_EV_INIT
		? series_get_new(s, ev->series, &sr, errbuf, errbuf_size)
		: store_series_get(s, ev->series, true, &sr, errbuf,
				   errbuf_size);
	if (r < 0)
		goto out;
	if (ev->type == STORE_EV_FORECAST) {
		r = forecast_insert(s, sr.id, ev, errbuf, errbuf_size);
		goto out;
	}
	if (ev->adapter) {
		struct version_new v = {
		    .reason = version_reason(ev, &sr),
		    .note = ev->reason,
		    .restored_from = ev->type == STORE_EV_ROLLBACK ||
					     ev->type == STORE_EV_MANUAL
					 ? (int64_t)ev->version_restored
					 : -1,
		    .ts = ev->ts,
		    .number = ev->version_to,
		    .loss_before = ev->loss_before,
		    .loss_after = ev->loss_after,
		    .guard_before = ev->guard_before,
		    .guard_after = ev->guard_after,
		    .adapter = ev->adapter,
		    .adapter_len = ev->adapter_len,
		    .average = ev->average,
		    .average_len = ev->average ? ev->average_len : 0,
		};
		if ((r = store_version_insert(s, &sr, &v, &vid, errbuf,
					      errbuf_size)) < 0)
			goto out;
	}
	r = store_audit_insert(s, sr.id, ev, errbuf, errbuf_size);
out:
	return put_failed(s, r, errbuf, errbuf_size);
}

int store_error_put(struct store *s, const char *series, int64_t origin_ts,
		    uint64_t version, float adapted_error, float shadow_error,
		    char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	int r;

	if ((r = put_begin(s, SQ_ERROR_PUT, series, &id, &st, errbuf,
			   errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, origin_ts);
	sqlite3_bind_int64(st, 3, (int64_t)version);
	bind_float(st, 4, adapted_error);
	bind_float(st, 5, shadow_error);
	sqlite3_bind_int64(st, 6, store_now_ms());
	return put_end(s, st, "writing a realised error", errbuf, errbuf_size);
}

int store_series_put(struct store *s, const char *series, int64_t last_ts,
		     const char *status, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	int r;

	if ((r = put_begin(s, SQ_SERIES_PUT, series, &id, &st, errbuf,
			   errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, last_ts);
	if (status)
		sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
	return put_end(s, st, "updating a series", errbuf, errbuf_size);
}

int store_offset_put(struct store *s, const char *topic, int32_t partition,
		     int64_t next_offset, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r;

	if ((r = store_check_key(topic, "topic", errbuf, errbuf_size)) < 0)
		return r;
	if (partition < 0 || next_offset < 0)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "negative partition or offset");
	if ((r = put_begin(s, SQ_OFFSET_PUT, NULL, NULL, &st, errbuf,
			   errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, partition);
	sqlite3_bind_int64(st, 3, next_offset);
	sqlite3_bind_int64(st, 4, store_now_ms());
	return put_end(s, st, "writing an offset", errbuf, errbuf_size);
}

int store_recent_put(struct store *s, const struct store_recent *r,
		     char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	int r0;

	if ((r0 = store_check_key(r->series, "series key", errbuf,
				  errbuf_size)) < 0)
		return r0;
	if (r->step <= 0 || r->count > INT_MAX / sizeof(float) ||
	    r->average_len > INT_MAX / sizeof(uint16_t))
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "series %s: recent values out of range",
				     r->series);
	bool v10 = s->schema >= STORE_SCHEMA_AVERAGE,
	     v12 = s->schema >= STORE_SCHEMA_RECAL;
	if (r->recal_len > INT_MAX)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "series %s: recalibration state too long",
				     r->series);
	if ((r0 = put_begin(s,
			    v12	  ? SQ_RECENT_PUT
			    : v10 ? SQ_RECENT_PUT_V11
				  : SQ_RECENT_PUT_V9,
			    r->series, &id, &st, errbuf, errbuf_size)) < 0)
		return r0;
	size_t nbytes = r->count * sizeof(float);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, r->last_ts);
	sqlite3_bind_int64(st, 3, r->step);
	sqlite3_bind_int64(st, 4, r->position);
	sqlite3_bind_int64(st, 5, r->since_adapt);
	sqlite3_bind_int64(st, 6, (int64_t)r->adaptations);
	sqlite3_bind_blob(st, 7, nbytes ? (const void *)r->values : "",
			  (int)nbytes, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (int64_t)r->count);
	sqlite3_bind_int64(
	    st, 9,
	    store_checksum(nbytes ? (const void *)r->values : "", nbytes));
	sqlite3_bind_int64(st, 10, store_now_ms());
	if (v10 && r->average && r->average_len) {
		size_t ab = r->average_len * sizeof(uint16_t);
		sqlite3_bind_blob(st, 11, r->average, (int)ab, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, (int64_t)r->average_version);
		sqlite3_bind_int64(st, 13, store_checksum(r->average, ab));
	}
	if (v12 && r->recal && r->recal_len) {
		sqlite3_bind_blob(st, 14, r->recal, (int)r->recal_len,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 15,
				   store_checksum(r->recal, r->recal_len));
	}
	return put_end(s, st, "saving a series' recent values", errbuf,
		       errbuf_size);
}
