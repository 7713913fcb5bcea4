/*
 * Retention: store_prune() deletes, a bounded number of rows per call,
 * versions that are neither current, recent nor among the last N of their
 * series, and forecasts and realised errors past the cutoff.  Audit rows
 * are never deleted.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int store_prune(struct store *s, const struct store_retention *ret_,
		int64_t now_ms, size_t *ret_deleted, bool *ret_more,
		char *errbuf, size_t errbuf_size)
{
	sqlite3_stmt *st = NULL;
	int64_t *ids = NULL;
	size_t n = 0, deleted = 0;
	bool more = false;
	int r, rc;

	if (!ret_ || ret_->keep_versions < 1 || ret_->batch < 1 ||
	    ret_->keep_days < 0)
		return store_set_err(
		    errbuf, errbuf_size, -EINVAL,
		    "retention: keep_versions and batch must be "
		    ">= 1, keep_days >= 0");
	if (ret_->keep_days == 0)
		goto done;
	int64_t cutoff = now_ms - (int64_t)ret_->keep_days * 86400000;
	ids = malloc((size_t)ret_->batch * sizeof(*ids));
	if (!ids)
		return store_set_err(errbuf, errbuf_size, -ENOMEM,
				     "out of memory");
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0 ||
	    (r = store_batch_begin(s, errbuf, errbuf_size)) < 0)
		goto out;

	if ((r = store_prep(s, SQ_PRUNE_SCAN, &st, errbuf, errbuf_size)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, s->prune_cursor);
	sqlite3_bind_int64(st, 2, cutoff);
	sqlite3_bind_int(st, 3, ret_->keep_versions);
	sqlite3_bind_int(st, 4, ret_->batch);
	size_t scanned = 0;
	int64_t last = s->prune_cursor;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		scanned++;
		last = sqlite3_column_int64(st, 0);
		if (sqlite3_column_int(st, 1))
			ids[n++] = last;
	}
	reset_stmt(st);
	if (rc != SQLITE_DONE) {
		r = store_db_fail(s, rc, errbuf, errbuf_size,
				  "scanning versions");
		goto fail;
	}
	more = scanned == (size_t)ret_->batch;
	for (size_t i = 0; i < n; i++) {
		if ((r = store_prep(s, SQ_PRUNE_VERSION, &st, errbuf,
				    errbuf_size)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, ids[i]);
		rc = sqlite3_step(st);
		reset_stmt(st);
		if (rc != SQLITE_DONE) {
			r = store_db_fail(s, rc, errbuf, errbuf_size,
					  "pruning a version");
			goto fail;
		}
		deleted++;
	}
	static const enum sq tables[] = {SQ_PRUNE_FORECASTS, SQ_PRUNE_ERRORS};
	for (size_t k = 0; k < 2; k++) {
		int budget = ret_->batch - (int)deleted;
		if (budget <= 0) {
			more = true;
			break;
		}
		if ((r = store_prep(s, tables[k], &st, errbuf, errbuf_size)) <
		    0)
			goto fail;
		sqlite3_bind_int64(st, 1, cutoff);
		sqlite3_bind_int(st, 2, budget);
		rc = sqlite3_step(st);
		reset_stmt(st);
		if (rc != SQLITE_DONE) {
			r = store_db_fail(s, rc, errbuf, errbuf_size,
					  "pruning forecasts or errors");
			goto fail;
		}
		int ch = sqlite3_changes(s->db);
		deleted += (size_t)ch;
		if (ch == budget)
			more = true;
	}
	if ((r = store_batch_commit(s, errbuf, errbuf_size)) < 0)
		goto out;
	s->prune_cursor = scanned == (size_t)ret_->batch ? last : 0;
done:
	*ret_deleted = deleted;
	if (ret_more)
		*ret_more = more;
	r = 0;
	goto out;
fail:
	store_batch_fail(s, r, errbuf, errbuf_size);
out:
	free(ids);
	return r;
}
