/*
 * Series and their input partitions, and their moves between the hosts
 * of a consumer group: what a host needs to restore a partition's series
 * when it is assigned one and to forget them when it is revoked
 * (daemon/run_handover.c), and the rows that record each move.
 */
#include "storage/handover.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "storage/storage_private.h"

/* Open the batch and find (or create) series' row. */
static int series_row(struct store *s, const char *series,
		      struct series_row *sr, char *errbuf, size_t errbuf_size)
{
	int r;
	if ((r = store_check_key(series, "series key", errbuf, errbuf_size)) <
	    0)
		return r;
	if ((r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		return r;
	r = store_series_get(s, series, true, sr, errbuf, errbuf_size);
	return r < 0 ? store_batch_fail(s, r, errbuf, errbuf_size) : 0;
}

/* Step a bound write of the batch; a failure rolls the batch back. */
static int row_done(struct store *s, sqlite3_stmt *st, const char *what,
		    char *errbuf, size_t errbuf_size)
{
	int r = store_step_row(s, st, what, errbuf, errbuf_size);
	return r < 0 && !store_batch_survives(r)
		   ? store_batch_fail(s, r, errbuf, errbuf_size)
		   : r;
}

int store_series_partition_put(struct store *s, const char *series,
			       int32_t partition, char *errbuf,
			       size_t errbuf_size)
{
	struct series_row sr;
	sqlite3_stmt *st;
	int r;
	if ((r = series_row(s, series, &sr, errbuf, errbuf_size)) < 0 ||
	    (r = store_prep(s, SQ_SERIES_PARTITION_PUT, &st, errbuf,
			    errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int(st, 2, partition);
	return row_done(s, st, "recording a series' partition", errbuf,
			errbuf_size);
}

int store_restore_partition(struct store *s, int32_t partition,
			    store_restore_fn fn, void *user, size_t *ret_bad,
			    char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	bool v11 = s->schema >= STORE_SCHEMA_VERSION_AVERAGE;
	enum sq q = partition < 0 ? (v11 ? SQ_RESTORE_UNPARTITIONED
					 : SQ_RESTORE_UNPARTITIONED_V10)
				  : (v11 ? SQ_RESTORE_PARTITION
					 : SQ_RESTORE_PARTITION_V10);
	int r = store_prep(s, q, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	if (partition >= 0)
		sqlite3_bind_int(st, 1, partition);
	return store_restore_walk(s, st, fn, user, ret_bad, errbuf,
				  errbuf_size);
}

static int skip_recent(void *user, const struct store_recent *r)
{
	(void)user, (void)r;
	return 0;
}

int store_recent_take_partition(struct store *s, int32_t partition,
				store_recent_fn fn, void *user, size_t *ret_n,
				char *errbuf, size_t errbuf_size)
{
	/* in the open batch, not a transaction of its own: committing here
	 * would also make a held batch's rows durable before their dead
	 * letters.  Rows not deleted yet at a crash still describe the
	 * stored state (every batch saves them with its offsets). */
	return store_recent_take_q(
	    s,
	    s->schema >= STORE_SCHEMA_RECAL	? SQ_RECENT_PARTITION
	    : s->schema >= STORE_SCHEMA_AVERAGE ? SQ_RECENT_PARTITION_V11
						: SQ_RECENT_PARTITION_V9,
	    SQ_RECENT_CLEAR_PARTITION, partition < 0 ? -1 : partition, false,
	    fn ? fn : skip_recent, user, ret_n, errbuf, errbuf_size);
}

int store_recent_drop_partition(struct store *s, int32_t partition,
				char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r = store_batch_begin(s, errbuf, errbuf_size);
	if (r < 0)
		return r;
	enum sq q = partition == STORE_ALL_PARTITIONS
			? SQ_RECENT_CLEAR
			: SQ_RECENT_CLEAR_PARTITION;
	if ((r = store_prep(s, q, &st, errbuf, errbuf_size)) < 0)
		return store_batch_fail(s, r, errbuf, errbuf_size);
	if (partition != STORE_ALL_PARTITIONS)
		sqlite3_bind_int(st, 1, partition < 0 ? -1 : partition);
	r = store_step_row(s, st, "deleting saved recent values", errbuf,
			   errbuf_size);
	return r < 0 ? store_batch_fail(s, r, errbuf, errbuf_size) : 0;
}

int store_recent_count_partition(struct store *s, int32_t partition,
				 size_t *ret_n, char *errbuf,
				 size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r =
	    store_prep(s, SQ_RECENT_COUNT_PARTITION, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, partition < 0 ? -1 : partition);
	int rc = sqlite3_step(st);
	*ret_n = rc == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
	reset_stmt(st);
	if (rc != SQLITE_ROW)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "counting saved recent values");
	return 0;
}

int store_handover_put(struct store *s, const struct store_handover *h,
		       char *errbuf, size_t errbuf_size)
{
	struct series_row sr;
	sqlite3_stmt *st;
	int r;
	if ((r = series_row(s, h->series, &sr, errbuf, errbuf_size)) < 0)
		return r;
	if (h->in) {
		if ((r = store_prep(s, SQ_SERIES_PARTITION_PUT, &st, errbuf,
				    errbuf_size)) < 0)
			return r;
		sqlite3_bind_int64(st, 1, sr.id);
		sqlite3_bind_int(st, 2, h->partition);
	} else {
		if ((r = store_prep(s, SQ_SERIES_RELEASED, &st, errbuf,
				    errbuf_size)) < 0)
			return r;
		sqlite3_bind_int64(st, 1, sr.id);
		/* released at this host's own stop: whether another host
		 * takes it, only Kafka knows */
		sqlite3_bind_text(st, 2,
				  h->source && !strcmp(h->source, "stopped")
				      ? "stopped"
				      : "handed_over",
				  -1, SQLITE_STATIC);
	}
	if ((r = row_done(s, st, "marking a series' move", errbuf,
			  errbuf_size)) < 0 ||
	    (r = store_prep(s, SQ_HANDOVER_INSERT, &st, errbuf, errbuf_size)) <
		0)
		return r;
	sqlite3_bind_int64(st, 1, sr.id);
	sqlite3_bind_int(st, 2, h->partition);
	sqlite3_bind_text(st, 3, h->in ? "in" : "out", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, h->source, -1, SQLITE_STATIC);
	if (h->version >= 0)
		sqlite3_bind_int64(st, 5, h->version);
	if (h->next_offset >= 0)
		sqlite3_bind_int64(st, 6, h->next_offset);
	sqlite3_bind_text(st, 7, h->note ? h->note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, store_now_ms());
	return row_done(s, st, "recording a series' move", errbuf, errbuf_size);
}

/* The row id of series' version number, 0 when it has none here. */
static int version_id(struct store *s, int64_t series_id, int64_t number,
		      int64_t *ret, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r = store_prep(s, SQ_VERSION_ID, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, series_id);
	sqlite3_bind_int64(st, 2, number);
	int rc = sqlite3_step(st);
	*ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a version");
	reset_stmt(st);
	return r;
}

/* This database's newest version number of series sr (-1: none) and the
 * checksum of its version number (has: whether it has that one). */
static int lineage_here(struct store *s, const struct series_row *sr,
			uint64_t number, int64_t *ret_max, bool *ret_has,
			int64_t *ret_checksum, char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r = store_prep(s, SQ_VERSION_RANGE, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	int rc = sqlite3_step(st);
	*ret_max = rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL
		       ? sqlite3_column_int64(st, 1)
		       : -1;
	reset_stmt(st);
	if (rc != SQLITE_ROW)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "reading versions");
	if ((r = store_prep(s,
			    s->schema >= STORE_SCHEMA_VERSION_AVERAGE
				? SQ_VERSION_BY_NUMBER
				: SQ_VERSION_BY_NUMBER_V10,
			    &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_int64(st, 1, sr->id);
	sqlite3_bind_int64(st, 2, (int64_t)number);
	rc = sqlite3_step(st);
	*ret_has = rc == SQLITE_ROW;
	*ret_checksum = *ret_has ? sqlite3_column_int64(st, 4) : 0;
	reset_stmt(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "reading a version");
	return 0;
}

int store_version_adopt(struct store *s, const struct store_adopted *a,
			uint64_t *ret_number, char *errbuf, size_t errbuf_size)
{
	static const float none[1];
	struct series_row sr;
	sqlite3_stmt *st;
	int64_t id, parent_id = 0, max, checksum;
	bool has;
	int r;
	if ((r = series_row(s, a->series, &sr, errbuf, errbuf_size)) < 0 ||
	    (r = lineage_here(s, &sr, a->number, &max, &has, &checksum, errbuf,
			      errbuf_size)) < 0)
		return r;
	const float *adapter = a->adapter_len ? a->adapter : none;
	int64_t sum = store_checksum(adapter, a->adapter_len * sizeof(float));
	if (has && checksum == sum && max == (int64_t)a->number) {
		/* made here before the series moved away and back: the
		 * same lineage, current again */
		if ((r = store_prep(s, SQ_SERIES_SET_CURRENT_NUMBER, &st,
				    errbuf, errbuf_size)) < 0)
			return r;
		sqlite3_bind_int64(st, 1, sr.id);
		sqlite3_bind_int64(st, 2, (int64_t)a->number);
		if (ret_number)
			*ret_number = a->number;
		return row_done(s, st, "making a version current", errbuf,
				errbuf_size);
	}
	uint64_t number = a->number;
	int64_t parent = a->parent;
	if (max >= (int64_t)a->number) {
		/* this lineage went further here (versions made after the
		 * state the record carries, by a host that crashed before
		 * publishing them, or numbers another host also used): the
		 * record's adapter becomes the next version here, so that
		 * numbers stay unique and never go back */
		number = (uint64_t)max + 1;
		parent = max;
	}
	if (parent >= 0 && (r = version_id(s, sr.id, parent, &parent_id, errbuf,
					   errbuf_size)) < 0)
		return r;
	struct version_new v = {
	    .reason = "handover",
	    .note = a->note,
	    .restored_from = -1,
	    .ts = a->ts,
	    .number = number,
	    .loss_before = NAN,
	    .loss_after = NAN,
	    .guard_before = NAN,
	    .guard_after = NAN,
	    .adapter = adapter,
	    .adapter_len = a->adapter_len,
	    .average = a->average,
	    .average_len = a->average ? a->average_len : 0,
	    /* the parent as numbered where the version was made (its row
	     * may not be here: then only the number links them) */
	    .parent_given = true,
	    .parent_id = parent_id,
	    .parent_number = parent,
	};
	r = store_version_insert(s, &sr, &v, &id, errbuf, errbuf_size);
	if (r < 0)
		return store_batch_survives(r)
			   ? r
			   : store_batch_fail(s, r, errbuf, errbuf_size);
	if (ret_number)
		*ret_number = number;
	return 0;
}

int store_series_where(struct store *s, const char *series,
		       struct store_series_where *ret, char *errbuf,
		       size_t errbuf_size)
{
	sqlite3_stmt *st;
	int r = store_check_key(series, "series key", errbuf, errbuf_size);
	if (r < 0 ||
	    (r = store_prep(s, SQ_SERIES_WHERE, &st, errbuf, errbuf_size)) < 0)
		return r;
	sqlite3_bind_text(st, 1, series, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret->handed_over = sqlite3_column_int(st, 0) != 0;
		ret->partition = sqlite3_column_type(st, 1) == SQLITE_NULL
				     ? -1
				     : sqlite3_column_int(st, 1);
		ret->since_ms = sqlite3_column_int64(st, 2);
		ret->released_at_stop = sqlite3_column_int(st, 3) != 0;
	} else if (rc == SQLITE_DONE) {
		r = store_set_err(errbuf, errbuf_size, -ENOENT,
				  "%s: no series '%s' in the database", s->path,
				  series);
	} else {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "reading a series");
	}
	reset_stmt(st);
	return r;
}
