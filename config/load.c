/*
 * Loading: defaults, then the file (parsed by ini.c), then the --set
 * overrides; each value converted and range-checked against its row of the
 * table, then the relations between values, and only when all of it holds
 * is anything assigned.  Every error is collected with its FILE:LINE (or
 * its --set argument) and the offending text.
 */
#include "config/internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- error collection ------------------------------------------------ */

void cfg_err_add(struct cfg_errors *e, const char *fmt, ...)
{
	e->count++;
	size_t sep = e->len > 0;
	if (!e->buf || e->size <= e->len + sep + CFG_ERR_TAIL ||
	    e->count != e->shown + 1) /* one did not fit: none after it */
		return;
	size_t room = e->size - e->len - sep - CFG_ERR_TAIL;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->buf + e->len + sep, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room && e->len == 0 && room > 4) {
		/* the first one, longer than the whole buffer: its start */
		memcpy(e->buf + room - 4, "...", 4);
		e->len = room - 1;
		e->shown++;
		return;
	}
	if (n < 0 || (size_t)n >= room) {
		e->buf[e->len] = '\0'; /* not whole: not shown */
		return;
	}
	if (sep)
		e->buf[e->len] = '\n';
	e->len += sep + (size_t)n;
	e->shown++;
}

void cfg_err_finish(struct cfg_errors *e)
{
	if (!e->buf || e->count <= e->shown || e->size <= e->len + 1)
		return;
	int more = e->count - e->shown;
	snprintf(e->buf + e->len, e->size - e->len, "%s(and %d more error%s)",
		 e->len ? "\n" : "", more, more == 1 ? "" : "s");
	if (!e->shown) /* nothing of it fitted */
		snprintf(e->buf, e->size, "%d error%s, too long to show", more,
			 more == 1 ? "" : "s");
	e->len += strlen(e->buf + e->len);
	e->shown = e->count; /* said: once */
}

/* ---- value conversion ------------------------------------------------ */

static const char *bool_true[] = {"true", "yes", "on", "1", NULL};
static const char *bool_false[] = {"false", "no", "off", "0", NULL};

static bool in_list(const char *s, const char **list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/*
 * Convert `text` for option o and store it at dst (inside a struct cfg).
 * Returns 0, or -EINVAL with the reason in why.  dst is untouched on error.
 */
static int convert(const struct cfg_option *o, const char *text, void *dst,
		   char *why, size_t why_size)
{
	size_t len = strlen(text);
	if (len == 0) {
		snprintf(why, why_size, "empty value");
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
			snprintf(why, why_size, "control character in value");
			return -EINVAL;
		}
	}

	switch (o->type) {
	case T_STR: {
		/* One pair of surrounding double quotes is optional; one
		 * alone is what an inline comment (" ;") inside the quotes
		 * leaves of the value */
		if ((text[0] == '"') != (len >= 2 && text[len - 1] == '"') ||
		    (len == 1 && text[0] == '"')) {
			snprintf(why, why_size,
				 "unbalanced double quote (in a file, ' ;' "
				 "starts a comment even inside quotes: such a "
				 "value goes in --set)");
			return -EINVAL;
		}
		if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
			text++;
			len -= 2;
			if (len == 0) {
				snprintf(why, why_size, "empty value");
				return -EINVAL;
			}
		}
		if (len >= o->size) {
			snprintf(why, why_size, "too long (at most %zu bytes)",
				 o->size - 1);
			return -EINVAL;
		}
		char tmp[CFG_PATH_MAX];
		memcpy(tmp, text, len);
		tmp[len] = '\0';
		if (o->check && o->check(tmp, why, why_size) < 0)
			return -EINVAL;
		memcpy(dst, tmp, len + 1);
		return 0;
	}
	case T_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(text, &end, 10);
		if (end == text) {
			snprintf(why, why_size, "not an integer");
			return -EINVAL;
		}
		if (*end) {
			snprintf(why, why_size,
				 "trailing garbage '%s' after the integer %lld",
				 end, v);
			return -EINVAL;
		}
		if (errno == ERANGE || (double)v < o->min ||
		    (double)v > o->max) {
			snprintf(why, why_size, "out of range %.0f..%.0f",
				 o->min, o->max);
			return -EINVAL;
		}
		*(int *)dst = (int)v;
		return 0;
	}
	case T_DOUBLE: {
		char *end;
		errno = 0;
		double v = strtod(text, &end);
		if (end == text) {
			snprintf(why, why_size, "not a number");
			return -EINVAL;
		}
		if (*end) {
			snprintf(why, why_size,
				 "trailing garbage '%s' after the number %g",
				 end, v);
			return -EINVAL;
		}
		if (!isfinite(v) || errno == ERANGE) {
			snprintf(why, why_size, "not a finite number");
			return -EINVAL;
		}
		if (v < o->min || v > o->max) {
			snprintf(why, why_size, "out of range %g..%g", o->min,
				 o->max);
			return -EINVAL;
		}
		*(double *)dst = v;
		return 0;
	}
	case T_BOOL:
		if (in_list(text, bool_true)) {
			*(bool *)dst = true;
			return 0;
		}
		if (in_list(text, bool_false)) {
			*(bool *)dst = false;
			return 0;
		}
		snprintf(why, why_size,
			 "not a boolean (use true/false, yes/no, on/off, 1/0)");
		return -EINVAL;
	case T_ENUM: {
		for (const struct enum_item *it = o->items; it->name; it++) {
			if (!strcmp(text, it->name)) {
				*(int *)dst = it->value;
				return 0;
			}
		}
		size_t off = (size_t)snprintf(why, why_size, "must be one of:");
		for (const struct enum_item *it = o->items;
		     it->name && off < why_size; it++)
			off += (size_t)snprintf(
			    why + off, why_size - off, "%s %s",
			    it == o->items ? "" : ",", it->name);
		return -EINVAL;
	}
	}
	snprintf(why, why_size, "internal error: unknown type");
	return -EINVAL;
}

/* The defaults never change: converted once, then copied (every load
 * starts from them, and converting runs each value's checks). */
static struct cfg cfg_default_values;
static pthread_once_t cfg_default_once = PTHREAD_ONCE_INIT;

static void convert_defaults(void)
{
	char why[256];
	for (size_t i = 0; i < cfg_noptions; i++) {
		int r =
		    convert(&cfg_options[i], cfg_options[i].def,
			    (char *)&cfg_default_values + cfg_options[i].off,
			    why, sizeof(why));
		(void)r; /* defaults are checked by tests/config */
	}
}

void cfg_defaults(struct cfg *c)
{
	pthread_once(&cfg_default_once, convert_defaults);
	/* memcpy, not assignment: padding too, for byte-wise comparisons */
	memcpy(c, &cfg_default_values, sizeof(*c));
}

/* ---- cross-field checks ---------------------------------------------- */

struct provenance {
	const char *file;
	int line[CFG_MAX_OPTIONS];	      /* 0: not from the file */
	const char *set_arg[CFG_MAX_OPTIONS]; /* the --set argument, if any */
};

/* "FILE:LINE" or "--set ARG" or "default" for option i, into buf. */
static const char *where(const struct provenance *p, int i, char *buf, size_t n)
{
	if (p->set_arg[i])
		snprintf(buf, n, "--set %s", p->set_arg[i]);
	else if (p->line[i] > 0)
		snprintf(buf, n, "%s:%d", p->file, p->line[i]);
	else
		snprintf(buf, n, "the default");
	return buf;
}

/* Of two options, the one the user set last (the one to blame). */
static int later(const struct provenance *p, int a, int b)
{
	if (p->set_arg[b] && !p->set_arg[a])
		return b;
	if (p->set_arg[a] && !p->set_arg[b])
		return a;
	return p->line[b] >= p->line[a] ? b : a;
}

static void check_distinct(const struct cfg *c, const struct provenance *p,
			   struct cfg_errors *e, const char *na, const char *nb)
{
	int a = cfg_find_option(na), b = cfg_find_option(nb);
	const char *va = (const char *)c + cfg_options[a].off;
	const char *vb = (const char *)c + cfg_options[b].off;
	if (strcmp(va, vb) || !strcmp(va, "off")) /* "off": no topic */
		return;
	int blame = later(p, a, b), other = blame == a ? b : a;
	char w[CFG_PATH_MAX + 64], w2[CFG_PATH_MAX + 64];
	cfg_err_add(e, "%s: %s must differ from %s (%s), both are '%s'",
		    where(p, blame, w, sizeof(w)), cfg_options[blame].name,
		    cfg_options[other].name, where(p, other, w2, sizeof(w2)),
		    va);
}

static void check_relations(const struct cfg *c, const struct provenance *p,
			    struct cfg_errors *e)
{
	/* every topic the daemon reads or writes is its own: a state or audit
	 * topic that is the input would feed the daemon its own records (as
	 * dead letters), one that is the forecasts would feed them to its
	 * readers */
	static const char *const topics[] = {
	    "kafka.input_topic", "kafka.output_topic", "kafka.deadletter_topic",
	    "kafka.state_topic", "kafka.audit_topic"};
	size_t nt = sizeof(topics) / sizeof(topics[0]);
	for (size_t i = 0; i < nt; i++)
		for (size_t j = i + 1; j < nt; j++)
			check_distinct(c, p, e, topics[i], topics[j]);
	if (c->ttt.recon_windows + c->ttt.step_windows < 1) {
		int a = cfg_find_option("ttt.recon_windows"),
		    b = cfg_find_option("ttt.step_windows");
		char w[CFG_PATH_MAX + 64];
		cfg_err_add(e,
			    "%s: ttt.recon_windows and ttt.step_windows are "
			    "both 0: an adaptation needs windows of one kind",
			    where(p, later(p, a, b), w, sizeof(w)));
	}
	if (c->model.width % c->model.heads) {
		int a = cfg_find_option("model.width"),
		    b = cfg_find_option("model.heads");
		int blame = later(p, a, b);
		char w[CFG_PATH_MAX + 64];
		cfg_err_add(e,
			    "%s: model.heads (%d) must divide model.width (%d)",
			    where(p, blame, w, sizeof(w)), c->model.heads,
			    c->model.width);
	}
}

/* ---- load ------------------------------------------------------------ */

int cfg_load_buffer(const char *file, const char *text, size_t size,
		    const char *const *sets, size_t nsets, struct cfg *ret_cfg,
		    struct cfg_sources *ret_src, char *errbuf,
		    size_t errbuf_size)
{
	struct cfg_errors err = {errbuf, errbuf_size, 0, 0, 0};
	struct cfg_loader L = {0};
	/* not zeroed: 37 KB, of which the parser fills nk entries */
	struct cfg_kprop kp[CFG_KPROP_MAX];
	struct provenance prov = {0};
	struct cfg tmp;
	int kline[CFG_KPROP_MAX] = {0}; /* of tmp.librdkafka.prop[] */
	char why[512];
	int r = 0;
	/* the file's name in messages; NULL: no file, defaults only */
	const char *path = text ? (file ? file : "config") : NULL;

	if (errbuf && errbuf_size)
		errbuf[0] = '\0';
	cfg_defaults(&tmp);
	prov.file = path;

	/* 1. parse */
	if (path) {
		L.file = path;
		L.buf = text;
		L.size = size;
		L.err = &err;
		L.kp = kp;
		r = cfg_loader_parse(&L);
		if (r < 0)
			goto out;
	}

	/* 2. per-key checks, in table order */
	for (size_t i = 0; path && i < cfg_noptions; i++) {
		if (!L.text[i])
			continue;
		prov.line[i] = L.line[i];
		if (convert(&cfg_options[i], L.text[i],
			    (char *)&tmp + cfg_options[i].off, why,
			    sizeof(why)) < 0)
			cfg_err_add(&err, "%s:%d: %s: %s: '%s'", path,
				    L.line[i], cfg_options[i].name, why,
				    L.text[i]);
	}

	for (int k = 0; path && k < L.nk; k++) {
		if (cfg_kprop_validate(L.kp[k].name, L.kp[k].value, why,
				       sizeof(why)) < 0) {
			cfg_err_add(&err, "%s:%d: %s.%s: %s", path, L.kline[k],
				    cfg_kscope_name(L.kp[k].scope),
				    L.kp[k].name, why);
			continue;
		}
		int n = tmp.librdkafka.n++;
		tmp.librdkafka.prop[n] = L.kp[k];
		kline[n] = L.kline[k];
	}

	/* command-line overrides, in order; later ones win */
	for (size_t k = 0; k < nsets; k++) {
		const char *arg = sets[k];
		const char *eq = strchr(arg, '=');
		char name[CFG_NAME_MAX];
		if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name)) {
			cfg_err_add(
			    &err, "--set %s: expected section.key=value", arg);
			continue;
		}
		memcpy(name, arg, (size_t)(eq - arg));
		name[eq - arg] = '\0';
		char *tname = cfg_trim(name);
		if (!strncmp(tname, "librdkafka.", strlen("librdkafka."))) {
			cfg_kprop_set(&tmp, kline, tname, eq + 1, &err);
			continue;
		}
		int i = cfg_find_option(tname);
		if (i < 0) {
			const char *s = cfg_suggest_option(tname);
			if (s)
				cfg_err_add(
				    &err,
				    "--set %s: unknown key '%s' (did you "
				    "mean '%s'?)",
				    arg, tname, s);
			else
				cfg_err_add(&err, "--set %s: unknown key '%s'",
					    arg, tname);
			continue;
		}
		char value[CFG_LINE_MAX];
		snprintf(value, sizeof(value), "%s", eq + 1);
		if (convert(&cfg_options[i], cfg_trim(value),
			    (char *)&tmp + cfg_options[i].off, why,
			    sizeof(why)) < 0) {
			cfg_err_add(&err, "--set %s: %s: %s", arg,
				    cfg_options[i].name, why);
			continue;
		}
		prov.set_arg[i] = arg;
	}

	/* 3. cross-field checks, only on individually valid values */
	if (err.count == 0)
		check_relations(&tmp, &prov, &err);

	/* 4. assign */
	if (err.count > 0) {
		cfg_err_finish(&err);
		r = -EINVAL;
		goto out;
	}
	*ret_cfg = tmp;
	if (ret_src) {
		memset(ret_src, 0, sizeof(*ret_src));
		snprintf(ret_src->file, sizeof(ret_src->file), "%s",
			 path ? path : "");
		for (size_t i = 0; i < cfg_noptions; i++) {
			ret_src->line[i] = prov.line[i];
			ret_src->origin[i] =
			    prov.set_arg[i] ? CFG_ORIGIN_COMMAND_LINE
			    : prov.line[i]  ? CFG_ORIGIN_FILE
					    : CFG_ORIGIN_DEFAULT;
		}
		memcpy(ret_src->kprop_line, kline, sizeof(kline));
	}
out:
	cfg_err_finish(&err);
	cfg_loader_free(&L);
	return r;
}

/* The whole file, at most CFG_FILE_MAX bytes, into *ret_text (malloc'd). */
static int read_file(const char *path, char **ret_text, size_t *ret_size,
		     struct cfg_errors *err)
{
	struct stat st;
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		cfg_err_add(err, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		cfg_err_add(err, "%s: cannot read: not a regular file", path);
		return -EINVAL;
	}
	/* one byte more than allowed, to notice a file that grew */
	char *text =
	    st.st_size <= CFG_FILE_MAX ? malloc(CFG_FILE_MAX + 1) : NULL;
	if (!text) {
		fclose(f);
		if (st.st_size <= CFG_FILE_MAX) {
			cfg_err_add(err, "%s: out of memory", path);
			return -ENOMEM;
		}
		cfg_err_add(err, "%s: cannot read: larger than 1 MiB", path);
		return -EFBIG;
	}
	size_t n = fread(text, 1, CFG_FILE_MAX + 1, f);
	int read_error = ferror(f);
	fclose(f);
	if (read_error) {
		free(text);
		cfg_err_add(err, "%s: read error", path);
		return -EIO;
	}
	if (n > CFG_FILE_MAX) {
		free(text);
		cfg_err_add(err, "%s: cannot read: larger than 1 MiB", path);
		return -EFBIG;
	}
	*ret_text = text;
	*ret_size = n;
	return 0;
}

int cfg_load(const char *path, const char *const *sets, size_t nsets,
	     struct cfg *ret_cfg, struct cfg_sources *ret_src, char *errbuf,
	     size_t errbuf_size)
{
	struct cfg_errors err = {errbuf, errbuf_size, 0, 0, 0};
	char *text = NULL;
	size_t size = 0;

	if (errbuf && errbuf_size)
		errbuf[0] = '\0';
	if (path) {
		int r = read_file(path, &text, &size, &err);
		if (r < 0) {
			cfg_err_finish(&err);
			return r;
		}
	}
	int r = cfg_load_buffer(path, text, size, sets, nsets, ret_cfg, ret_src,
				errbuf, errbuf_size);
	free(text);
	return r;
}
