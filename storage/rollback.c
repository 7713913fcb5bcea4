/*
 * Operator rollbacks: resolve the target version (by number or by time,
 * checksum verified, with the reason when there is none), then, in one
 * transaction, a new version with the target's content, its audit row
 * and, for a request from the control sidecar, its record in the control
 * table.  Nothing is deleted.
 */
#include "storage/handover.h"
#include "storage/storage_private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Explain why a target does not exist for this series. */
static int target_missing(struct store *s, const struct series_row *sr,
			  const char *series,
			  const struct store_rollback_target *t, char *errbuf,
			  size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r, rc;
	char when[40], first[40];

	if ((r = store_prep(s, SQ_VERSION_RANGE, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading versions");
		goto out;
	}
	int64_t lo = sqlite3_column_int64(st, 0),
		hi = sqlite3_column_int64(st, 1),
		t0 = sqlite3_column_int64(st, 2);
	if (t->by_time) {
		store_format_time(t->at, when, sizeof(when));
		store_format_time(t0, first, sizeof(first));
		r = store_set_err(errbuf, errbuf_size, -EINVAL,
				  "series '%s' had no version at %s (its first "
				  "surviving version is from %s)",
				  series, when, first);
	} else if ((int64_t)t->number >= lo && (int64_t)t->number <= hi) {
		r = store_set_err(
		    errbuf, errbuf_size, -EINVAL,
		    "version %llu of series '%s' is not in this "
		    "database (removed by retention, or made on another "
		    "host; versions %lld..%lld remain in part)",
		    (unsigned long long)t->number, series, (long long)lo,
		    (long long)hi);
	} else {
		r = store_set_err(
		    errbuf, errbuf_size, -EINVAL,
		    "series '%s' has no version %llu (its versions "
		    "are %lld..%lld)",
		    series, (unsigned long long)t->number, (long long)lo,
		    (long long)hi);
	}
out:
	reset_stmt(st);
	return r;
}

/* "base model ID ('NAME')" of models.id model_id into buf. */
static int model_label(struct store *s, int64_t model_id, char *buf,
		       size_t size, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int r = store_prep(s, SQ_MODEL_NAME, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, model_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, size, "base model %lld ('%.80s')",
			 (long long)model_id,
			 (const char *)sqlite3_column_text(st, 0));
	else if (rc == SQLITE_DONE)
		snprintf(buf, size, "base model %lld", (long long)model_id);
	else
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a model's name");
	reset_stmt(st);
	return r;
}

/* The base model a series runs now: the one this process registered, or
 * (an operator's command, which registers none) the current version's;
 * 0 when not recorded. */
static int series_model(struct store *s, const struct series_row *sr,
			int64_t *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	*ret = s->model_id;
	if (*ret)
		return 0;
	int r = store_prep(s, SQ_VERSION_MODEL, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->cur_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a version's model");
	reset_stmt(st);
	return r;
}

/* A version's adapter corrects the forecasts of the base model it was
 * made with: refuse one of another model than the series runs now (the
 * base adapter belongs to every model). */
static int target_model_check(struct store *s, const char *series,
			      const struct series_row *sr,
			      const struct target_row *tr, char *errbuf,
			      size_t errbuf_size)
{
	int64_t now = 0;
	char made[120], runs[120];
	int r;
	if (store_base_adapter(tr->number, (int64_t)tr->adapter_len) ||
	    !tr->model_id)
		return 0;
	if ((r = series_model(s, sr, &now, errbuf, errbuf_size)) < 0)
		return r;
	if (!now || now == tr->model_id)
		return 0;
	if ((r = model_label(s, tr->model_id, made, sizeof(made), errbuf,
			     errbuf_size)) < 0 ||
	    (r = model_label(s, now, runs, sizeof(runs), errbuf, errbuf_size)) <
		0)
		return r;
	return store_set_err(errbuf, errbuf_size, -EXDEV,
			     "version %llu of series '%s' was made with %s, "
			     "and the series runs %s: its adapter corrects "
			     "the other model's forecasts (roll back to a "
			     "version of this model, or to version 0, the "
			     "base adapter)",
			     (unsigned long long)tr->number, series, made,
			     runs);
}

/* Find and verify the target version of a rollback; its adapter goes to
 * s->rb_adapter. */
int store_resolve_target(struct store *s, const char *series,
			 const struct store_rollback_target *t,
			 struct series_row *ret_sr, struct target_row *ret,
			 char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	struct series_row sr;
	struct target_row tr = {0};
	int r, rc;

	if ((r = store_check_key(series, "series key", errbuf, errbuf_size)) <
	    0)
		return r;
	if (!t || (!t->by_time && t->number > (uint64_t)INT64_MAX))
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "rollback target out of range");
	if ((r = store_series_get(s, series, false, &sr, errbuf, errbuf_size)) <
	    0)
		return r;
	if (!sr.cur_id)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "series '%s' has no versions", series);
	bool v11 = s->schema >= STORE_SCHEMA_VERSION_AVERAGE;
	enum sq q = t->by_time ? (v11 ? SQ_VERSION_AT : SQ_VERSION_AT_V10)
			       : (v11 ? SQ_VERSION_BY_NUMBER
				      : SQ_VERSION_BY_NUMBER_V10);
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int64(st, 2, t->by_time ? t->at : (int64_t)t->number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		reset_stmt(st);
		return target_missing(s, &sr, series, t, errbuf, errbuf_size);
	}
	if (rc != SQLITE_ROW) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a version");
		goto out;
	}
	tr.id = sqlite3_column_int64(st, 0);
	tr.number = (uint64_t)sqlite3_column_int64(st, 1);
	tr.model_id = sqlite3_column_int64(st, 7);
	/* The current version itself is a valid target: it re-installs that
	 * content (a running daemon reloads it) as a new version. */
	r = store_blob_copy(st, 2, 3, 4, &s->rb_adapter, &s->rb_cap,
			    &tr.adapter_len);
	if (r == -EBADMSG)
		store_set_err(
		    errbuf, errbuf_size, r,
		    "%s: version %llu of series '%s' fails its checksum; "
		    "refusing to restore it",
		    s->path, (unsigned long long)tr.number, series);
	else if (r < 0)
		store_set_err(errbuf, errbuf_size, r, "out of memory");
	if (r == 0) {
		/* a damaged average leaves the adapter restorable: the series
		 * then publishes from the version itself */
		tr.average_status =
		    store_halves_copy(st, 5, 6, &s->rb_average,
				      &s->rb_average_cap, &tr.average_len);
		if (tr.average_status == -ENOMEM)
			r = store_set_err(errbuf, errbuf_size, -ENOMEM,
					  "out of memory");
		else if (tr.average_status < 0)
			tr.average_len = 0;
	}
out:
	reset_stmt(st);
	if (r == 0)
		r = target_model_check(s, series, &sr, &tr, errbuf,
				       errbuf_size);
	if (r == 0) {
		*ret_sr = sr;
		*ret = tr;
	}
	return r;
}

/* The number a series' next version takes: the highest one + 1
 * (retention never removes the current or the last versions). */
static int next_number(struct store *s, const struct series_row *sr,
		       uint64_t *ret, char *errbuf, size_t errbuf_size)
{
	uint64_t number = (uint64_t)sr->cur_number + 1;
	bool exists = true;
	int r;
	while (exists) {
		if ((r = store_version_exists(s, sr->id, number, &exists,
					      errbuf, errbuf_size)) < 0)
			return r;
		if (exists)
			number++;
	}
	*ret = number;
	return 0;
}

struct store_event store_event_unmeasured(int type, int trigger,
					  const char *series, int64_t ts,
					  uint64_t from, uint64_t to,
					  const char *note)
{
	return (struct store_event){
	    .type = type,
	    .trigger = trigger,
	    .series = series,
	    .ts = ts,
	    .version_from = from,
	    .version_to = to,
	    .loss_before = NAN,
	    .loss_after = NAN,
	    .guard_before = NAN,
	    .guard_after = NAN,
	    .update_norm = NAN,
	    .adapted_error = NAN,
	    .shadow_error = NAN,
	    .reason = note,
	};
}

int store_model_reset(struct store *s, const struct store_restored *rs,
		      uint64_t *ret_number, char *errbuf, size_t errbuf_size)
{
	static const float identity[1]; /* the base adapter: stored empty */
	struct series_row sr;
	uint64_t number;
	char made[120], runs[120], note[STORE_REASON_MAX];
	int r;
	if ((r = store_series_get(s, rs->series, false, &sr, errbuf,
				  errbuf_size)) < 0 ||
	    (r = next_number(s, &sr, &number, errbuf, errbuf_size)) < 0 ||
	    (r = model_label(s, rs->model_id, made, sizeof(made), errbuf,
			     errbuf_size)) < 0 ||
	    (r = model_label(s, s->model_id, runs, sizeof(runs), errbuf,
			     errbuf_size)) < 0)
		return r;
	snprintf(note, sizeof(note),
		 "base model changed: version %llu was made with %s, this "
		 "host runs %s; the series starts again from the base adapter",
		 (unsigned long long)rs->version, made, runs);
	struct store_event ev = store_event_unmeasured(
	    STORE_EV_RESET, STORE_TRIGGER_MODEL, rs->series,
	    sr.has_last_ts ? sr.last_ts : 0, rs->version, number, note);
	ev.adapter = identity;
	if ((r = store_event_put(s, &ev, errbuf, errbuf_size)) < 0)
		return r;
	*ret_number = number;
	return 0;
}

int store_rollback_prepare(struct store *s, const char *series,
			   const struct store_rollback_target *t,
			   const float *carried, size_t carried_len,
			   struct store_rollback_result *ret, char *errbuf,
			   size_t errbuf_size)
{
	struct series_row sr;
	struct target_row tr = {0};
	uint64_t number = 0;
	char scratch[64];
	int r =
	    store_resolve_target(s, series, t, &sr, &tr, errbuf, errbuf_size);
	if (r == 0)
		r = next_number(s, &sr, &number, errbuf, errbuf_size);
	/* a version made on another host (or pruned here): the block the
	 * request carries, for a number below the current one */
	bool use_carried = r == -EINVAL && carried && !t->by_time &&
			   store_series_get(s, series, false, &sr, scratch,
					    sizeof(scratch)) == 0 &&
			   sr.cur_id && t->number < (uint64_t)sr.cur_number;
	if (use_carried)
		r = next_number(s, &sr, &number, errbuf, errbuf_size);
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->series, sizeof(ret->series), "%s", series);
	ret->from_version = (uint64_t)sr.cur_number;
	ret->restored = use_carried ? t->number : tr.number;
	ret->new_version = number;
	ret->adapter = use_carried ? (float *)carried : s->rb_adapter;
	ret->adapter_len = use_carried ? carried_len : tr.adapter_len;
	if (!use_carried && tr.average_len) {
		ret->average = s->rb_average;
		ret->average_len = tr.average_len;
	}
	ret->average_damaged = !use_carried && tr.average_status == -EBADMSG;
	return 0;
}

int store_rollback_put(struct store *s, const struct store_rollback_result *rb,
		       int64_t ts, const char *note, char *errbuf,
		       size_t errbuf_size)
{
	static const float identity[1]; /* version 0: stored empty */
	struct store_event ev = store_event_unmeasured(
	    STORE_EV_MANUAL, STORE_TRIGGER_MANUAL, rb->series, ts,
	    rb->from_version, rb->new_version, note);
	ev.version_restored = rb->restored;
	ev.adapter = rb->adapter_len ? rb->adapter : identity;
	ev.adapter_len = rb->adapter_len;
	ev.average = rb->average;
	ev.average_len = rb->average_len;
	return store_event_put(s, &ev, errbuf, errbuf_size);
}

/* The rollback itself, inside an open transaction.  With a request q, it
 * is recorded in the control table in the same transaction. */
static int rollback_txn(struct store *s, const char *series,
			const struct store_rollback_target *t,
			const char *reason, const struct ctl_req *q,
			struct store_rollback_result *ret, char *errbuf,
			size_t errbuf_size)
{
	struct series_row sr;
	struct store_rollback_result res;
	char note[STORE_REASON_MAX + 160];
	int r;

	if ((r = store_rollback_prepare(s, series, t, NULL, 0, &res, errbuf,
					errbuf_size)) < 0 ||
	    (r = store_series_get(s, series, false, &sr, errbuf, errbuf_size)) <
		0)
		return r;
	snprintf(note, sizeof(note), "rollback to version %llu%s: %s",
		 (unsigned long long)res.restored,
		 res.average_damaged ? " (its published average fails its "
				       "checksum: the version itself is "
				       "published)"
				     : "",
		 reason);
	if ((r = store_rollback_put(s, &res, sr.has_last_ts ? sr.last_ts : 0,
				    note, errbuf, errbuf_size)) < 0)
		return r;
	if (q && (r = store_control_record(s, q, &res, note, errbuf,
					   errbuf_size)) < 0)
		return r;
	*ret = res;
	return 0;
}

bool store_rollback_refused(int r)
{
	return r == -EINVAL || r == -ENOENT || r == -EBADMSG || r == -EXDEV;
}

int store_rollback_one(struct store *s, const char *series,
		       const struct store_rollback_target *t,
		       const char *reason, const struct ctl_req *q,
		       struct store_rollback_result *ret, char *errbuf,
		       size_t errbuf_size)
{
	int r;
	if (!reason || !*reason || strlen(reason) >= STORE_REASON_MAX)
		return store_set_err(
		    errbuf, errbuf_size, -EINVAL,
		    "a rollback needs a reason (at most %d bytes)",
		    STORE_REASON_MAX - 1);
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	r = rollback_txn(s, series, t, reason, q, ret, errbuf, errbuf_size);
	if (r < 0) {
		if (store_batch_survives(r) || store_rollback_refused(r))
			store_batch_abort(s);
		else
			store_batch_fail(s, r, errbuf, errbuf_size);
		return r;
	}
	return store_batch_commit(s, errbuf, errbuf_size);
}

int store_rollback(struct store *s, const char *series,
		   const struct store_rollback_target *t, const char *reason,
		   struct store_rollback_result *ret, char *errbuf,
		   size_t errbuf_size)
{
	return store_rollback_one(s, series, t, reason, NULL, ret, errbuf,
				  errbuf_size);
}
