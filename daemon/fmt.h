/*
 * Output formatting (daemon/fmt.c): floats and strings as JSON text for
 * the forecast messages, built without printf, and the table / CSV / JSON
 * output of the read-only commands (history, versions).
 */
#ifndef DRIFTCAST_DAEMON_FMT_H
#define DRIFTCAST_DAEMON_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "storage/query.h"

/* f as JSON text that strtof() reads back as the same float (up to 9
 * significant digits, plain notation between 1e-4 and 1e9, %g outside),
 * into p (at least 32 bytes); returns the length, no NUL written.  f must
 * be finite. */
size_t dc_format_float(char *p, float f);

/* ns nanoseconds as exact decimal seconds ("1700000000", "-2.5", "0.001":
 * the fraction's trailing zeros dropped, none for whole seconds), into p
 * (at least 32 bytes); returns the length, no NUL written. */
size_t dc_format_ns_seconds(char *p, int64_t ns);

/* src as the inside of a JSON string: '"' and '\' escaped, control
 * characters as \u00XX, everything else (UTF-8 included) as it is.
 * Writes at most 6 * strlen(src) bytes to dst, no NUL; returns the length.
 * (Series keys are printable UTF-8 after parsing, but may hold quotes.) */
size_t dc_json_escape(char *dst, const char *src);

/* Output of the read-only commands (history, versions). */
enum dc_format { DC_FORMAT_TABLE, DC_FORMAT_CSV, DC_FORMAT_JSON };
/* v with 6 digits into buf, or `none` (a static string) when not finite;
 * returns the string to print. */
const char *dc_fmt_num(float v, char *buf, size_t n, const char *none);
/* One CSV field, quoted when it holds a comma, quote or line break. */
void dc_csv_field(FILE *f, const char *s);
/* v as a JSON number, or null when not finite (a new reference). */
json_t *dc_json_num(float v);
/* --format TEXT of command cmd; prints the error and returns -EINVAL. */
int dc_format_parse(const char *cmd, const char *text, enum dc_format *ret);
/* Print j compactly as element `index` of a JSON array (a ",\n" before
 * every element but the first) and release it. */
void dc_json_emit(json_t *j, size_t index);

/* An audit row as JSON (`driftcast history --format json`, the audit
 * topic: docs/OUTPUT.md), a new reference. */
struct store_event;
json_t *dc_event_json(const struct store_event *ev);

/* The read-only commands' database, opened read-only (it works while a
 * daemon writes); NULL with "driftcast CMD: reason" printed. */
struct store;
struct store *dc_open_read_only(const char *cmd, const char *db);
/* Several hosts' databases (history, versions): --db given up to
 * DC_DB_MAX times, collected into dbs[*n] by dc_db_arg (false with the
 * error printed: one too many); then the first opened read-only and the
 * others attached (store_attach), NULL with the reason printed. */
#define DC_DB_MAX (STORE_ATTACH_MAX + 1)
bool dc_db_arg(const char *cmd, const char **dbs, int *n, const char *db);
/* The width of the table's db column: the longest of dbs[n] and "db". */
int dc_db_width(const char *const *dbs, int n);
struct store *dc_open_read_only_many(const char *cmd, const char *const *dbs,
				     int n);
/* The read-only commands' ending: closes s; r < 0 prints err; stdout is
 * flushed (a write error is a failure).  Returns the exit code. */
int dc_output_done(const char *cmd, struct store *s, int r, const char *err);

#endif
