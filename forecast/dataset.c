/*
 * Datasets: load a CSV (or .csv.gz, through zlib, which also reads plain
 * files transparently), split it and z-score it exactly as
 * docs/EVAL.md says.
 *
 * Format handling:
 *   - the first non-empty line is a header unless every field in it is a
 *     number or a date (LSTNet's exchange_rate.txt.gz has no header and no
 *     timestamp column; its columns are then named "0", "1", ...);
 *   - the first column is a timestamp when its header is date/time/ts/
 *     timestamp or its first value parses as a date; dates are those of
 *     fc_time_parse() (e.g. "Y-M-D[ H:M[:S]]" or "Y/M/D[ H:M[:S]]", UTC
 *     unless a zone says otherwise) or a plain number of epoch seconds;
 *   - CRLF and LF line endings, a missing final newline, a UTF-8 BOM and
 *     header bytes that are not valid UTF-8 (weather's U+FFFD) are all
 *     accepted; header names are kept as opaque bytes;
 *   - rows are kept as they are: duplicated timestamps and gaps do not
 *     change the row-based offline windows (step_seconds is the median
 *     spacing, so one irregularity does not move it).
 * Errors name the file and the physical line: "FILE:LINE: reason".
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "forecast/forecast.h"

#define DS_MIN_ROWS 10

static void ds_err(char *errbuf, size_t errbuf_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ds_err(char *errbuf, size_t errbuf_size, const char *fmt, ...)
{
	va_list ap;
	if (!errbuf || errbuf_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errbuf_size, fmt, ap);
	va_end(ap);
}

/* ---- line reader ----------------------------------------------------- */

struct ds_reader {
	gzFile f;
	char *buf;
	size_t cap;
	int line; /* physical line number of the last line read */
};

/* Read one line without its CR/LF into r->buf.  Returns 1 on a line, 0 at
 * end of file, a negative errno on a read error. */
static int ds_read_line(struct ds_reader *r)
{
	size_t len = 0;
	int got = 0;
	for (;;) {
		if (r->cap - len < 2) {
			size_t ncap = r->cap ? r->cap * 2 : 4096;
			char *nb = realloc(r->buf, ncap);
			if (!nb)
				return -ENOMEM;
			r->buf = nb;
			r->cap = ncap;
		}
		if (!gzgets(r->f, r->buf + len, (int)(r->cap - len))) {
			int zerr;
			gzerror(r->f, &zerr);
			if (zerr != Z_OK && zerr != Z_BUF_ERROR)
				return -EIO;
			break;
		}
		got = 1;
		len += strlen(r->buf + len);
		if (len > 0 && r->buf[len - 1] == '\n')
			break;
	}
	if (!got)
		return 0;
	r->buf[len] = '\0';
	while (len > 0 && (r->buf[len - 1] == '\n' || r->buf[len - 1] == '\r'))
		r->buf[--len] = '\0';
	r->line++;
	return 1;
}

/* Split line in place at commas; returns the number of fields (up to
 * max), fields[] point into line. */
static int ds_split(char *line, char **fields, int max)
{
	int n = 0;
	char *p = line;
	for (;;) {
		if (n == max)
			return max + 1;
		fields[n++] = p;
		char *c = strchr(p, ',');
		if (!c)
			break;
		*c = '\0';
		p = c + 1;
	}
	return n;
}

static int ds_count_fields(const char *line)
{
	int n = 1;
	for (; *line; line++)
		n += *line == ',';
	return n;
}

/* Strip surrounding blanks and double quotes in place. */
static char *ds_trim(char *s)
{
	size_t n;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s[n - 1] = '\0';
		s++;
	}
	return s;
}

/* ---- cell parsing ---------------------------------------------------- */

static int ds_parse_number(const char *s, double *ret)
{
	char *end;
	double v;
	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	if (end == s || *end || errno == ERANGE)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A date cell (fc_time_parse's loose grammar) as epoch seconds: the
 * whole seconds plus the fraction as strtod() reads it. */
static int ds_parse_date(const char *s, double *ret)
{
	struct fc_time t;
	int rc = fc_time_parse(s, strlen(s), 0, &t);
	if (rc < 0)
		return rc;
	*ret = (double)t.sec + t.frac;
	return 0;
}

static int ds_is_time_name(const char *s)
{
	static const char *const names[] = {"date", "time", "timestamp", "ts",
					    "datetime"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return 1;
	return 0;
}

/* ---- public API ------------------------------------------------------ */

void fc_dataset_free(struct fc_dataset *d)
{
	if (!d)
		return;
	if (d->col_names)
		for (int i = 0; i < d->n_cols; i++)
			free(d->col_names[i]);
	free(d->col_names);
	free(d->timestamps);
	free(d->raw);
	free(d->scaled);
	free(d->mean);
	free(d->std);
	free(d);
}

static void ds_base_name(const char *path, char *out, size_t size)
{
	static const char *const exts[] = {".gz", ".csv", ".txt", ".tsv"};
	const char *b = strrchr(path, '/');
	size_t n;
	b = b ? b + 1 : path;
	snprintf(out, size, "%s", b);
	for (int again = 1; again;) {
		again = 0;
		n = strlen(out);
		for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
			size_t e = strlen(exts[i]);
			if (n > e && strcmp(out + n - e, exts[i]) == 0) {
				out[n - e] = '\0';
				again = 1;
				break;
			}
		}
	}
}

static int ds_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Fill the split borders, statistics, scaled copy and step of d (rows
 * and raw values already read). */
static int ds_finish(struct fc_dataset *d, const double *vals)
{
	int n = d->n_rows, c = d->n_cols;
	int ett = strncmp(d->name, "ETT", 3) == 0;
	/* Python's int(ratio * N), as the reference loaders compute it. */
	int n_train = (int)((ett ? 0.6 : 0.7) * (double)n);
	int n_test = (int)(0.2 * (double)n);
	d->train_end = n_train;
	d->val_end = n - n_test;

	d->mean = calloc((size_t)c, sizeof(float));
	d->std = calloc((size_t)c, sizeof(float));
	d->scaled = malloc((size_t)n * (size_t)c * sizeof(float));
	if (!d->mean || !d->std || !d->scaled)
		return -ENOMEM;
	for (int j = 0; j < c; j++) {
		double s = 0.0, ss = 0.0, m, sd;
		for (int i = 0; i < n_train; i++)
			s += vals[(size_t)i * (size_t)c + (size_t)j];
		m = s / (double)n_train;
		for (int i = 0; i < n_train; i++) {
			double dv = vals[(size_t)i * (size_t)c + (size_t)j] - m;
			ss += dv * dv;
		}
		sd = sqrt(ss / (double)n_train);
		/* A constant column has no scale; like scikit-learn's
		 * StandardScaler, use 1 rather than dividing by ~0. */
		if (sd < 1e-8)
			sd = 1.0;
		d->mean[j] = (float)m;
		d->std[j] = (float)sd;
		for (int i = 0; i < n; i++) {
			size_t k = (size_t)i * (size_t)c + (size_t)j;
			d->scaled[k] = (float)((vals[k] - m) / sd);
		}
	}

	d->step_seconds = 0.0;
	if (n > 1) {
		double *diff = malloc((size_t)(n - 1) * sizeof(double));
		if (!diff)
			return -ENOMEM;
		for (int i = 0; i + 1 < n; i++)
			diff[i] = d->timestamps[i + 1] - d->timestamps[i];
		qsort(diff, (size_t)(n - 1), sizeof(double), ds_cmp_double);
		d->step_seconds = diff[(n - 1) / 2];
		free(diff);
	}
	return 0;
}

int fc_dataset_load(const char *path, const char *columns,
		    struct fc_dataset **ret, char *errbuf, size_t errbuf_size)
{
	struct ds_reader r = {0};
	struct fc_dataset *d = NULL;
	char **fields = NULL, **hdr = NULL;
	int *sel = NULL; /* [n_cols] source field index of each channel */
	double *vals = NULL;
	size_t cap_rows = 0;
	int nf = 0, has_header = 0, has_ts = 0, rc = 0, fc;

	r.f = gzopen(path, "rb");
	if (!r.f) {
		rc = errno ? -errno : -ENOMEM;
		ds_err(errbuf, errbuf_size, "%s: cannot open: %s", path,
		       strerror(-rc));
		return rc;
	}
	gzbuffer(r.f, 1 << 17);
	d = calloc(1, sizeof(*d));
	if (!d) {
		rc = -ENOMEM;
		goto fail;
	}
	ds_base_name(path, d->name, sizeof(d->name));

	/* First non-empty line: header or first data row. */
	do {
		rc = ds_read_line(&r);
	} while (rc == 1 && r.buf[0] == '\0');
	if (rc <= 0) {
		if (rc == 0) {
			rc = -EINVAL;
			ds_err(errbuf, errbuf_size, "%s:%d: empty file", path,
			       r.line + 1);
		} else {
			ds_err(errbuf, errbuf_size, "%s:%d: read error", path,
			       r.line + 1);
		}
		goto fail;
	}
	if (r.line == 1 && (unsigned char)r.buf[0] == 0xEF &&
	    (unsigned char)r.buf[1] == 0xBB && (unsigned char)r.buf[2] == 0xBF)
		memmove(r.buf, r.buf + 3, strlen(r.buf + 3) + 1);
	nf = ds_count_fields(r.buf);
	fields = calloc((size_t)nf + 1, sizeof(char *));
	hdr = calloc((size_t)nf, sizeof(char *));
	sel = calloc((size_t)nf, sizeof(int));
	if (!fields || !hdr || !sel) {
		rc = -ENOMEM;
		goto fail;
	}
	ds_split(r.buf, fields, nf);
	{
		double v;
		has_header = 0;
		for (int i = 0; i < nf; i++) {
			char *t = fields[i] = ds_trim(fields[i]);
			if (ds_parse_number(t, &v) < 0 &&
			    ds_parse_date(t, &v) < 0)
				has_header = 1;
		}
		for (int i = 0; i < nf; i++) {
			char name[32];
			if (has_header) {
				hdr[i] = strdup(fields[i]);
			} else {
				snprintf(name, sizeof(name), "%d", i);
				hdr[i] = strdup(name);
			}
			if (!hdr[i]) {
				rc = -ENOMEM;
				goto fail;
			}
		}
		if (!has_header) {
			/* Timestamp column iff the first cell is a date. */
			has_ts = ds_parse_number(fields[0], &v) < 0;
		}
	}

	/* Read data rows.  When there is a header, the first data row decides
	 * whether column 0 is a timestamp. */
	int first_data_pending = has_header;
	int pending_line_in_buf = !has_header; /* buf holds a data row */
	int ts_col_checked = !has_header;
	for (;;) {
		if (!pending_line_in_buf) {
			rc = ds_read_line(&r);
			if (rc < 0) {
				ds_err(errbuf, errbuf_size, "%s:%d: read error",
				       path, r.line + 1);
				goto fail;
			}
			if (rc == 0)
				break;
			if (r.buf[0] == '\0')
				continue;
			fc = ds_split(r.buf, fields, nf);
		} else {
			fc = nf; /* already split above */
			pending_line_in_buf = 0;
		}
		if (fc != nf) {
			rc = -EINVAL;
			ds_err(errbuf, errbuf_size,
			       "%s:%d: %s fields, expected %d (ragged row)",
			       path, r.line, fc > nf ? "too many" : "too few",
			       nf);
			goto fail;
		}
		if (!ts_col_checked) {
			double v;
			char *t = ds_trim(fields[0]);
			has_ts = ds_is_time_name(hdr[0]) ||
				 ds_parse_date(t, &v) == 0;
			ts_col_checked = 1;
		}
		if (first_data_pending) {
			/* Resolve the selected channels once. */
			int first = has_ts ? 1 : 0;
			first_data_pending = 0;
			if (nf - first < 1) {
				rc = -EINVAL;
				ds_err(errbuf, errbuf_size,
				       "%s:%d: no value columns", path, r.line);
				goto fail;
			}
		}
		if (d->n_cols == 0) {
			int first = has_ts ? 1 : 0;
			if (!columns || !*columns ||
			    strcmp(columns, "all") == 0) {
				/* every numeric column: one whose first cell
				 * is text (a site name, a unit) is not */
				for (int i = first; i < nf; i++) {
					char *t = ds_trim(fields[i]);
					double v;
					if (!*t ||
					    ds_parse_number(t, &v) == 0) {
						sel[d->n_cols++] = i;
						continue;
					}
					size_t l = strlen(d->skipped);
					snprintf(d->skipped + l,
						 sizeof(d->skipped) - l,
						 "%s'%s'", l ? ", " : "",
						 hdr[i]);
				}
				if (d->n_cols == 0) {
					rc = -EINVAL;
					ds_err(errbuf, errbuf_size,
					       "%s:%d: no numeric column", path,
					       r.line);
					goto fail;
				}
			} else {
				char *list = strdup(columns), *save = NULL;
				if (!list) {
					rc = -ENOMEM;
					goto fail;
				}
				for (char *tok = strtok_r(list, ",", &save);
				     tok; tok = strtok_r(NULL, ",", &save)) {
					int found = -1;
					for (int i = first; i < nf; i++)
						if (strcmp(hdr[i], tok) == 0)
							found = i;
					if (found < 0) {
						rc = -EINVAL;
						ds_err(errbuf, errbuf_size,
						       "%s:%d: unknown column "
						       "'%s'",
						       path, 1, tok);
						free(list);
						goto fail;
					}
					for (int j = 0; j < d->n_cols; j++)
						if (sel[j] == found)
							found = -2;
					if (found == -2) {
						rc = -EINVAL;
						ds_err(errbuf, errbuf_size,
						       "%s: column '%s' named "
						       "twice in '%s'",
						       path, tok, columns);
						free(list);
						goto fail;
					}
					if (d->n_cols >= nf) {
						rc = -EINVAL;
						ds_err(errbuf, errbuf_size,
						       "%s: too many columns "
						       "in '%s'",
						       path, columns);
						free(list);
						goto fail;
					}
					sel[d->n_cols++] = found;
				}
				free(list);
				if (d->n_cols == 0) {
					rc = -EINVAL;
					ds_err(errbuf, errbuf_size,
					       "%s: no columns in '%s'", path,
					       columns);
					goto fail;
				}
			}
		}
		if ((size_t)d->n_rows == cap_rows) {
			size_t ncap = cap_rows ? cap_rows * 2 : 1024;
			double *nv = realloc(vals, ncap * (size_t)d->n_cols *
						       sizeof(double));
			double *nt;
			if (!nv) {
				rc = -ENOMEM;
				goto fail;
			}
			vals = nv;
			nt = realloc(d->timestamps, ncap * sizeof(double));
			if (!nt) {
				rc = -ENOMEM;
				goto fail;
			}
			d->timestamps = nt;
			cap_rows = ncap;
		}
		double *row = vals + (size_t)d->n_rows * (size_t)d->n_cols;
		if (has_ts) {
			char *t = ds_trim(fields[0]);
			double tv;
			if (ds_parse_date(t, &tv) < 0 &&
			    ds_parse_number(t, &tv) < 0) {
				rc = -EINVAL;
				ds_err(errbuf, errbuf_size,
				       "%s:%d: column '%s': not a timestamp: "
				       "'%.40s'",
				       path, r.line, hdr[0], t);
				goto fail;
			}
			d->timestamps[d->n_rows] = tv;
		} else {
			d->timestamps[d->n_rows] = (double)d->n_rows;
		}
		for (int j = 0; j < d->n_cols; j++) {
			char *t = ds_trim(fields[sel[j]]);
			double v;
			if (ds_parse_number(t, &v) < 0 || !isfinite(v)) {
				rc = -EINVAL;
				ds_err(errbuf, errbuf_size,
				       "%s:%d: column '%s': %s '%.40s'", path,
				       r.line, hdr[sel[j]],
				       *t ? "not a finite number:"
					  : "empty cell",
				       t);
				goto fail;
			}
			row[j] = v;
		}
		d->n_rows++;
	}
	if (d->n_rows < DS_MIN_ROWS) {
		rc = -EINVAL;
		ds_err(errbuf, errbuf_size,
		       "%s:%d: too few rows (%d data rows, need at least %d)",
		       path, r.line, d->n_rows, DS_MIN_ROWS);
		goto fail;
	}

	d->col_names = calloc((size_t)d->n_cols, sizeof(char *));
	d->raw = malloc((size_t)d->n_rows * (size_t)d->n_cols * sizeof(float));
	if (!d->col_names || !d->raw) {
		rc = -ENOMEM;
		goto fail;
	}
	for (int j = 0; j < d->n_cols; j++) {
		d->col_names[j] = strdup(hdr[sel[j]]);
		if (!d->col_names[j]) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (size_t k = 0; k < (size_t)d->n_rows * (size_t)d->n_cols; k++)
		d->raw[k] = (float)vals[k];
	rc = ds_finish(d, vals);
	if (rc < 0)
		goto fail;

	free(vals);
	free(fields);
	for (int i = 0; i < nf; i++)
		free(hdr[i]);
	free(hdr);
	free(sel);
	free(r.buf);
	gzclose(r.f);
	*ret = d;
	return 0;

fail:
	if (rc == -ENOMEM)
		ds_err(errbuf, errbuf_size, "%s: out of memory", path);
	free(vals);
	free(fields);
	if (hdr)
		for (int i = 0; i < nf; i++)
			free(hdr[i]);
	free(hdr);
	free(sel);
	free(r.buf);
	gzclose(r.f);
	fc_dataset_free(d);
	return rc;
}

int fc_dataset_split_start(const struct fc_dataset *d, enum fc_split s,
			   int lookback)
{
	int a;
	switch (s) {
	case FC_SPLIT_TRAIN:
		return 0;
	case FC_SPLIT_VAL:
		a = d->train_end - lookback;
		break;
	default:
		a = d->val_end - lookback;
		break;
	}
	return a < 0 ? 0 : a;
}

int fc_dataset_split_windows(const struct fc_dataset *d, enum fc_split s,
			     int lookback, int horizon)
{
	int start = fc_dataset_split_start(d, s, lookback);
	int end = s == FC_SPLIT_TRAIN ? d->train_end
		  : s == FC_SPLIT_VAL ? d->val_end
				      : d->n_rows;
	int n = end - start - lookback - horizon + 1;
	return n > 0 ? n : 0;
}
