/*
 * The SQLite plumbing every piece of storage/ uses: SQLite result codes as
 * errno values with a message, the prepare-once statement cache of the
 * main database (its statements are the table in sql_private.h), the crc32
 * of stored blobs and their verified copies, key checks, and the clocks
 * and time format of the public header.
 */
#include "storage/storage_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "forecast/fnv1a.h"

#define SQL_TEXT_SQ(name, text) [SQ_##name] = text,
const char *const store_sql_text[SQ__COUNT] = {STORE_STATEMENTS(SQL_TEXT_SQ)};

int store_set_err(char *errbuf, size_t errbuf_size, int r, const char *fmt, ...)
{
	if (errbuf && errbuf_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errbuf, errbuf_size, fmt, ap);
		va_end(ap);
	}
	return r;
}

int store_errno_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -ENOTRECOVERABLE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* The one place SQLite codes become errno values with a message. */
int store_db_fail(struct store *s, int rc, char *errbuf, size_t errbuf_size,
		  const char *what)
{
	int r = store_errno_from_sqlite(rc);
	if (r == 0)
		r = -EIO;
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	const char *hint = "";
	if ((rc & 0xff) == SQLITE_FULL)
		hint = " (disk full)";
	else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
		hint = " (the file is corrupt or not a SQLite database)";
	return store_set_err(errbuf, errbuf_size, r, "%s: %s: %s%s", s->path,
			     what, msg, hint);
}

int64_t store_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store_format_time(int64_t ts, char *buf, size_t n)
{
	/* floor division: -1 ns is 1969-12-31T23:59:59.999999999Z */
	int64_t sec = ts / 1000000000, ns = ts % 1000000000;
	if (ns < 0) {
		sec--;
		ns += 1000000000;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	size_t len;
	if (!gmtime_r(&t, &tm) ||
	    !(len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm))) {
		snprintf(buf, n, "%lld", (long long)ts);
		return;
	}
	int digits = 9;
	while (ns && ns % 10 == 0) {
		ns /= 10;
		digits--;
	}
	if (ns)
		snprintf(buf + len, n - len, ".%0*lldZ", digits, (long long)ns);
	else
		snprintf(buf + len, n - len, "Z");
}

/* Prepare sql into *slot on its first use; the statement lives until the
 * connection closes.  Returns a SQLite code. */
int store_prepare_once(sqlite3 *db, const char *sql, sqlite3_stmt **slot)
{
	if (*slot)
		return SQLITE_OK;
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				    slot, NULL);
	if (rc != SQLITE_OK)
		*slot = NULL;
	return rc;
}

int store_prep(struct store *s, enum sq q, sqlite3_stmt **ret, char *errbuf,
	       size_t errbuf_size)
{
	int rc = store_prepare_once(s->db, store_sql_text[q], &s->stmt[q]);
	if (rc != SQLITE_OK)
		return store_db_fail(s, rc, errbuf, errbuf_size,
				     "preparing a statement");
	*ret = s->stmt[q];
	return 0;
}

/* Run a statement that returns no rows. */
int store_step_done(struct store *s, enum sq q, char *errbuf,
		    size_t errbuf_size, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r = store_prep(s, q, &st, errbuf, errbuf_size);
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size, what);
	reset_stmt(st);
	return r;
}

/* Step a bound statement that writes one row of the batch, and reset it. */
int store_step_row(struct store *s, sqlite3_stmt *st, const char *what,
		   char *errbuf, size_t errbuf_size)
{
	int r = 0;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = store_db_fail(s, rc, errbuf, errbuf_size, what);
	else
		s->batch_rows++;
	reset_stmt(st);
	return r;
}

int store_debug_exec(struct store *s, const char *sql, char *errbuf,
		     size_t errbuf_size)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	int r = 0;
	if (rc != SQLITE_OK)
		r = store_set_err(errbuf, errbuf_size,
				  store_errno_from_sqlite(rc), "%s",
				  msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return r;
}

int64_t store_model_hash(const void *p, size_t n)
{
	uint64_t h = fc_fnv1a(FC_FNV1A_INIT, p, n);
	return (int64_t)(h | (1ull << 63)); /* negative: never a CRC-32 */
}

uint32_t store_checksum(const void *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const unsigned char *b = p;
	while (n > 0) { /* crc32 takes a uInt length */
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, b, chunk);
		b += chunk;
		n -= chunk;
	}
	return (uint32_t)c;
}

/* Copy a float blob into *buf (grown as needed) and verify it against its
 * stored length and checksum.  Returns 0 or -EBADMSG. */
int store_blob_copy(sqlite3_stmt *st, int col_blob, int col_len, int col_crc,
		    float **buf, size_t *cap, size_t *ret_len)
{
	const void *p = sqlite3_column_blob(st, col_blob);
	size_t nbytes = (size_t)sqlite3_column_bytes(st, col_blob);
	int64_t len = sqlite3_column_int64(st, col_len);
	uint32_t crc = (uint32_t)sqlite3_column_int64(st, col_crc);

	if (len < 0 || (size_t)len * sizeof(float) != nbytes)
		return -EBADMSG;
	if ((size_t)len > *cap) {
		float *nb = realloc(*buf, (size_t)len * sizeof(float));
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = (size_t)len;
	}
	if (nbytes)
		memcpy(*buf, p, nbytes);
	if (store_checksum(nbytes ? (const void *)*buf : "", nbytes) != crc)
		return -EBADMSG;
	*ret_len = (size_t)len;
	return 0;
}

int store_units_copy(sqlite3_stmt *st, int col_blob, int col_crc, size_t unit,
		     void **buf, size_t *cap, size_t *ret_len)
{
	*ret_len = 0;
	if (sqlite3_column_type(st, col_blob) == SQLITE_NULL)
		return 0;
	const void *p = sqlite3_column_blob(st, col_blob);
	size_t nb = (size_t)sqlite3_column_bytes(st, col_blob);
	size_t len = nb / unit;
	if (nb % unit || nb == 0 ||
	    store_checksum(p, nb) !=
		(uint32_t)sqlite3_column_int64(st, col_crc))
		return -EBADMSG;
	if (len > *cap) {
		void *b = realloc(*buf, nb);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = len;
	}
	memcpy(*buf, p, nb);
	*ret_len = len;
	return 0;
}

int store_halves_copy(sqlite3_stmt *st, int col_blob, int col_crc,
		      uint16_t **buf, size_t *cap, size_t *ret_len)
{
	void *b = *buf;
	int r = store_units_copy(st, col_blob, col_crc, sizeof(uint16_t), &b,
				 cap, ret_len);
	*buf = b;
	return r;
}

int store_check_key(const char *key, const char *what, char *errbuf,
		    size_t errbuf_size)
{
	if (!key || !*key || strlen(key) >= STORE_KEY_MAX)
		return store_set_err(errbuf, errbuf_size, -EINVAL,
				     "%s is empty or longer than %d bytes",
				     what, STORE_KEY_MAX - 1);
	return 0;
}
