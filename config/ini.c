/*
 * Reading the INI file.  The syntax is parsed by libinih (Debian's build
 * exposes its compile-time options as globals, which we set before each
 * parse).  inih does not report line numbers to the handler, so we feed it
 * through our own line reader, which counts lines and keeps a copy of each
 * for error messages.  Also the name lookups the handler and --set share:
 * exact, and "did you mean" for unknown keys and sections.
 */
#include "config/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

/* ---- "did you mean" -------------------------------------------------- */

/* A name that others are compared with: for each byte, the positions at
 * which it occurs (Myers' bit-parallel edit distance, as Hyyrö gives it
 * for whole strings).  One pass over the other name, a few word operations
 * per byte, instead of the full table of the textbook algorithm. */
struct pattern {
	uint64_t peq[256];
	size_t len;
};

static void pattern_init(struct pattern *p, const char *a)
{
	memset(p->peq, 0, sizeof(p->peq));
	p->len = strlen(a);
	for (size_t i = 0; i < p->len && i < 64; i++)
		p->peq[(unsigned char)a[i]] |= UINT64_C(1) << i;
}

/* Levenshtein distance of p's name and b, or SIZE_MAX once it must exceed
 * bound (the caller only wants distances up to it). */
static size_t edit_distance(const struct pattern *p, const char *b,
			    size_t bound)
{
	size_t m = p->len, lb = strlen(b);
	if (m > 64 || lb > 64 || (m > lb ? m - lb : lb - m) > bound)
		return SIZE_MAX;
	if (m == 0)
		return lb;
	/* Pv/Mv: the vertical deltas +1/-1 of the current column, bit i for
	 * row i + 1; score: the last row's value, the distance so far */
	uint64_t pv = ~UINT64_C(0), mv = 0, top = UINT64_C(1) << (m - 1);
	size_t score = m;
	for (size_t j = 0; j < lb; j++) {
		uint64_t eq = p->peq[(unsigned char)b[j]];
		uint64_t xv = eq | mv;
		uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
		uint64_t ph = mv | ~(xh | pv), mh = pv & xh;
		if (ph & top)
			score++;
		else if (mh & top)
			score--;
		/* the first row grows by one per column: shift in a +1 */
		ph = ph << 1 | 1;
		mh <<= 1;
		pv = mh | ~(xv | ph);
		mv = ph & xv;
		/* each remaining column lowers it by one at most */
		if (score > bound + (lb - 1 - j))
			return SIZE_MAX;
	}
	return score <= bound ? score : SIZE_MAX;
}

const char *cfg_suggest_option(const char *name)
{
	const char *best = NULL;
	size_t limit = strlen(name) / 3;
	if (limit < 2)
		limit = 2;
	/* only a distance within limit and below the best so far counts */
	size_t best_d = limit + 1;
	struct pattern p;
	pattern_init(&p, name);
	for (size_t i = 0; i < cfg_noptions && best_d > 0; i++) {
		size_t d = edit_distance(&p, cfg_options[i].name, best_d - 1);
		if (d < best_d) {
			best_d = d;
			best = cfg_options[i].name;
		}
	}
	return best;
}

static bool section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < cfg_noptions; i++)
		if (!strncmp(cfg_options[i].name, section, len) &&
		    cfg_options[i].name[len] == '.')
			return true;
	return false;
}

static const char *suggest_section(const char *section)
{
	static char best[64];
	size_t best_d = SIZE_MAX;
	struct pattern p;
	pattern_init(&p, section);
	best[0] = '\0';
	for (size_t i = 0; i < cfg_noptions; i++) {
		const char *dot = strchr(cfg_options[i].name, '.');
		char sec[64];
		size_t n = (size_t)(dot - cfg_options[i].name);
		if (n >= sizeof(sec))
			continue;
		memcpy(sec, cfg_options[i].name, n);
		sec[n] = '\0';
		size_t d = edit_distance(&p, sec, 2);
		if (d < best_d) {
			best_d = d;
			memcpy(best, sec, n + 1);
		}
	}
	for (int i = CFG_KSCOPE_BOTH; i <= CFG_KSCOPE_PRODUCER; i++) {
		const char *k = cfg_kscope_name(i);
		/* a shortened [librdkafka.prod] counts as close */
		size_t d = strlen(section) > strlen("librdkafka.") &&
				   !strncmp(k, section, strlen(section))
			       ? 1
			       : edit_distance(&p, k, 2);
		if (d < best_d) {
			best_d = d;
			snprintf(best, sizeof(best), "%s", k);
		}
	}
	return best_d <= 2 ? best : NULL;
}

int cfg_find_option(const char *name)
{
	for (size_t i = 0; i < cfg_noptions; i++)
		if (!strcmp(cfg_options[i].name, name))
			return (int)i;
	return -1;
}

/* ---- the line reader ------------------------------------------------- */

/* "Did you mean" for the first SUGGEST_MAX unknown names of a file: a file
 * with hundreds of them is not a driftcast configuration, and each
 * suggestion compares the name with every setting. */
#define SUGGEST_MAX 16

static bool suggest_more(struct cfg_loader *L)
{
	return L->suggested < SUGGEST_MAX && ++L->suggested;
}

#define MAX_LINES 100000

char *cfg_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* The line inih reads as line lineno: the text up to its newline, or
 * empty when the reader blanked it (a NUL byte, or too long). */
static const char *raw_line(const struct cfg_loader *L, int lineno,
			    size_t *ret_len)
{
	const char *line = L->buf, *end = L->buf + L->size;
	for (int n = 1; n < lineno && line < end; n++) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		line = nl ? nl + 1 : end;
	}
	const char *nl = memchr(line, '\n', (size_t)(end - line));
	size_t len = nl ? (size_t)(nl - line) + 1 : (size_t)(end - line);
	/* the reader's tests, on the line with its newline */
	*ret_len = memchr(line, '\0', len) || len > L->line_max ? 0
		   : nl						? len - 1
								: len;
	return line;
}

/* s[0..n) without leading and trailing white space: its start, and n. */
static const char *trim_span(const char *s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)*s))
		s++, (*n)--;
	while (*n > 0 && isspace((unsigned char)s[*n - 1]))
		(*n)--;
	return s;
}

/* A "[name]" line: check the name here, once, at its own line. */
static void check_section_header(struct cfg_loader *L, const char *t, size_t n)
{
	const char *close = memchr(t, ']', n);
	if (!close) {
		/* keys below it would be blamed on the wrong section */
		cfg_err_add(L->err,
			    "%s:%d: syntax error: expected '[section]', got "
			    "'%.*s'",
			    L->file, L->lineno, (int)n, t);
		L->in_bad_section = true;
		L->syntax_line = L->lineno;
		return;
	}
	size_t after = n - (size_t)(close + 1 - t);
	const char *rest = trim_span(close + 1, &after);
	if (after > 0 && rest[0] != ';' && rest[0] != '#') {
		cfg_err_add(L->err,
			    "%s:%d: syntax error: text after '[section]': "
			    "'%.*s'",
			    L->file, L->lineno, (int)after, rest);
		L->in_bad_section = true;
		L->syntax_line = L->lineno;
		return;
	}
	size_t len = (size_t)(close - t - 1);
	const char *name = trim_span(t + 1, &len);
	L->in_bad_section =
	    !section_known(name, len) && cfg_kscope_of(name, len) < 0;
	if (!L->in_bad_section)
		return;
	char copy[CFG_LINE_MAX];
	snprintf(copy, sizeof(copy), "%.*s", (int)len, name);
	const char *s = suggest_more(L) ? suggest_section(copy) : NULL;
	if (s)
		cfg_err_add(L->err,
			    "%s:%d: unknown section [%s] (did you mean [%s]?)",
			    L->file, L->lineno, copy, s);
	else
		cfg_err_add(L->err, "%s:%d: unknown section [%s]", L->file,
			    L->lineno, copy);
}

/* fgets-like reader for inih over the buffer: counts lines, catches lines
 * too long to parse, NUL bytes and section headers (inih does not report
 * those).  It copies nothing but into inih's buffer: a message that quotes
 * a line finds it again in L->buf (raw_line). */
static char *loader_read(char *str, int num, void *stream)
{
	struct cfg_loader *L = stream;
	if (L->pos >= L->size)
		return NULL;
	const char *line = L->buf + L->pos;
	size_t rest = L->size - L->pos;
	const char *nl = memchr(line, '\n', rest);
	size_t len = nl ? (size_t)(nl - line) + 1 : rest;
	L->pos += len;
	L->lineno++;
	L->line_max = (size_t)num - 1;
	if (memchr(line, '\0', len)) {
		/* inih would silently drop the rest of the line */
		cfg_err_add(L->err,
			    "%s:%d: NUL byte in line (not a text file?)",
			    L->file, L->lineno);
		len = 0;
	} else if (len > (size_t)num - 1) {
		/* Debian's libinih 55 reads lines into a fixed 200-byte buffer
		 * whatever ini_max_line says: report its real limit. */
		cfg_err_add(
		    L->err,
		    "%s:%d: line longer than %d bytes (the INI parser's "
		    "limit; use --set for longer values)",
		    L->file, L->lineno, num - 3);
		len = 0;
	}
	memcpy(str, line, len);
	str[len] = '\0';
	if (L->lineno > MAX_LINES) {
		cfg_err_add(L->err, "%s:%d: file has more than %d lines",
			    L->file, L->lineno, MAX_LINES);
		return NULL;
	}
	size_t n = len;
	const char *t = trim_span(str, &n);
	if (n > 0 && t[0] == '[')
		check_section_header(L, t, n);
	return str;
}

static int loader_on_value(void *user, const char *section, const char *name,
			   const char *value)
{
	struct cfg_loader *L = user;
	if (L->in_bad_section)
		return 1; /* already reported at the section header */
	if (!section[0]) {
		cfg_err_add(L->err, "%s:%d: '%s' is outside any [section]",
			    L->file, L->lineno, name);
		return 1;
	}

	int scope = cfg_kscope_of(section, strlen(section));
	if (scope >= 0) {
		int k = cfg_kprop_find(L->kp, L->nk, scope, name);
		if (k >= 0) {
			cfg_err_add(
			    L->err,
			    "%s:%d: duplicate key '%s.%s' (first set at "
			    "line %d)",
			    L->file, L->lineno, section, name, L->kline[k]);
			return 1;
		}
		if (L->nk == CFG_KPROP_MAX) {
			cfg_err_add(L->err,
				    "%s:%d: more than %d librdkafka properties",
				    L->file, L->lineno, CFG_KPROP_MAX);
			return 1;
		}
		struct cfg_kprop *p = &L->kp[L->nk];
		if (strlen(name) >= sizeof(p->name) ||
		    strlen(value) >= sizeof(p->value)) {
			cfg_err_add(L->err,
				    "%s:%d: %s.%.40s: name longer than %zu or "
				    "value longer than %zu bytes",
				    L->file, L->lineno, section, name,
				    sizeof(p->name) - 1, sizeof(p->value) - 1);
			return 1;
		}
		p->scope = scope;
		snprintf(p->name, sizeof(p->name), "%s", name);
		snprintf(p->value, sizeof(p->value), "%s", value);
		L->kline[L->nk++] = L->lineno;
		return 1;
	}

	char full[CFG_NAME_MAX * 2];
	snprintf(full, sizeof(full), "%s.%s", section, name);
	int i = cfg_find_option(full);
	if (i < 0) {
		const char *s =
		    suggest_more(L) ? cfg_suggest_option(full) : NULL;
		if (s)
			cfg_err_add(
			    L->err,
			    "%s:%d: unknown key '%s' (did you mean '%s'?)",
			    L->file, L->lineno, full, s);
		else
			cfg_err_add(L->err, "%s:%d: unknown key '%s'", L->file,
				    L->lineno, full);
		return 1;
	}
	if (L->text[i]) {
		cfg_err_add(L->err,
			    "%s:%d: duplicate key '%s' (first set at line %d)",
			    L->file, L->lineno, full, L->line[i]);
		return 1;
	}
	/* Each value stored is part of its own line, after the '=' or ':'
	 * (which makes room for its NUL): together they fit in the file's
	 * size.  Checked all the same. */
	size_t len = strlen(value);
	if (!L->values || len + 1 > L->size + 1 - L->values_len) {
		L->oom = 1;
		return 0;
	}
	char *copy = L->values + L->values_len;
	memcpy(copy, value, len + 1);
	L->values_len += len + 1;
	L->text[i] = copy;
	L->line[i] = L->lineno;
	return 1;
}

void cfg_loader_free(struct cfg_loader *L)
{
	free(L->values);
}

int cfg_loader_parse(struct cfg_loader *L)
{
	/* inih's options, as runtime globals in Debian's build. */
	ini_use_stack = false;
	ini_max_line = CFG_LINE_MAX;
	ini_allow_realloc = false;
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_stop_on_first_error = false;
	ini_allow_no_value = false;

	L->values = malloc(L->size + 1);
	int r = L->values ? ini_parse_stream(loader_read, L, loader_on_value, L)
			  : -2;
	if (L->oom || r == -2) {
		cfg_err_add(L->err, "%s: out of memory", L->file);
		return -ENOMEM;
	}
	if (r > 0 && r != L->syntax_line) {
		/* inih reports only its first syntax error. */
		size_t n;
		const char *text = raw_line(L, r, &n);
		text = trim_span(text, &n);
		cfg_err_add(
		    L->err,
		    "%s:%d: syntax error: expected '[section]' or 'key = "
		    "value', got '%.*s'",
		    L->file, r, n < CFG_LINE_MAX ? (int)n : CFG_LINE_MAX - 1,
		    text);
	}
	return 0;
}
