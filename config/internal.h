/*
 * Private to config/: the row type of the settings table and what the
 * folder's files share.  config.c holds the table and its value checks,
 * ini.c reads the INI file, load.c converts and checks values and assigns
 * them, kprop.c passes librdkafka properties through, write.c generates the
 * sample, the reference doc and the effective dump.  Other folders include
 * config/config.h only.
 */
#ifndef DRIFTCAST_CONFIG_INTERNAL_H
#define DRIFTCAST_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"

/* ---- the table (config.c) ---------------------------------------------- */

enum opt_type {
	T_STR,
	T_INT,
	T_DOUBLE,
	T_BOOL,
	T_ENUM,
};

#define OPT_RELOAD 0x1u /* may change on SIGHUP without a restart */

struct enum_item {
	const char *name;
	int value;
};

/* A validator for one value; returns 0 or fills `why`. */
typedef int (*opt_check_fn)(const void *value, char *why, size_t why_size);

struct cfg_option {
	const char *name; /* "section.key" */
	enum opt_type type;
	size_t off;  /* offset of the field in struct cfg */
	size_t size; /* size of the field (the buffer size for strings) */
	double min, max;
	const struct enum_item *items; /* T_ENUM: NULL-terminated */
	const char *def;	       /* default, as text */
	unsigned flags;
	opt_check_fn check; /* optional */
	const char *doc;
};

/* The rows, cfg_noptions of them (<= CFG_MAX_OPTIONS, so per-option arrays
 * elsewhere are sized by that). */
extern const struct cfg_option cfg_options[];
extern const size_t cfg_noptions;

/* Name of value v among items, or "?". */
const char *cfg_enum_name(const struct enum_item *items, int v);

/* What a string option accepts, by its validator, for the generated text:
 * "Kafka topic name", ... */
const char *cfg_check_allowed(opt_check_fn check);

/* ---- error collection (load.c) ---------------------------------------- */

/* Error lines collected into the caller's errbuf, one per line; count goes
 * on when the buffer is full. */
struct cfg_errors {
	char *buf;
	size_t size, len;
	int count, shown; /* errors, and those whole in buf */
};
/* Room cfg_err_add leaves at the end of buf for cfg_err_finish's line. */
#define CFG_ERR_TAIL 48

/* One error line, kept only if it fits whole (a line cut in the middle
 * misleads); counted either way. */
void cfg_err_add(struct cfg_errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* After the last one: "(and N more errors)" for those that did not fit. */
void cfg_err_finish(struct cfg_errors *e);

/* ---- the INI file and names (ini.c) ------------------------------------ */

#define CFG_LINE_MAX 4096      /* longest line read, longest --set value */
#define CFG_FILE_MAX (1 << 20) /* largest file read */

/*
 * cfg_load() on a file's text already in memory: `text`, `size` bytes (NUL
 * bytes in it are errors), named `file` in messages; text NULL for the
 * defaults only.  Everything else as cfg_load(), which reads the file and
 * calls this, so there is one parser path (the fuzz target calls it too).
 */
int cfg_load_buffer(const char *file, const char *text, size_t size,
		    const char *const *sets, size_t nsets, struct cfg *ret_cfg,
		    struct cfg_sources *ret_src, char *errbuf,
		    size_t errbuf_size);

/* s without leading and trailing white space (in place). */
char *cfg_trim(char *s);

/* Index of the option named "section.key", or -1; the closest option name
 * when nothing matches, or NULL when nothing is close. */
int cfg_find_option(const char *name);
const char *cfg_suggest_option(const char *name);

/* One read of a file's text: the raw text and line of each option met, and
 * the librdkafka properties in file order.  Zero it before use, then set
 * kp (and the file's name, text and errors). */
struct cfg_loader {
	const char *file; /* the name in messages */
	const char *buf;  /* the text, size bytes (not NUL-terminated) */
	size_t size, pos;
	int lineno;	     /* line most recently handed to inih */
	size_t line_max;     /* longest line inih takes (its buffer - 1) */
	bool in_bad_section; /* keys under an unknown [section] */
	int syntax_line;     /* a syntax error we reported ourselves */
	int suggested;	     /* "did you mean"s given (ini.c caps them) */
	int oom;
	const char *text[CFG_MAX_OPTIONS]; /* raw value of each option seen */
	int line[CFG_MAX_OPTIONS];
	char *values; /* where text[] points: size + 1 bytes, one malloc */
	size_t values_len;
	struct cfg_kprop *kp; /* librdkafka sections: the caller's array of
			       * CFG_KPROP_MAX, nk of them filled in */
	int kline[CFG_KPROP_MAX];
	int nk;
	struct cfg_errors *err;
};

/* Parse L->buf into L->text/L->line and L->kp; syntax errors go to L->err.
 * Returns 0 or -ENOMEM.  cfg_loader_free releases what parsing kept, also
 * after an error. */
int cfg_loader_parse(struct cfg_loader *L);
void cfg_loader_free(struct cfg_loader *L);

/* ---- librdkafka pass-through (kprop.c) --------------------------------- */

/* Properties driftcast sets itself, with the reason (docs/CONFIG.md). */
struct cfg_kpinned {
	const char *name, *why;
};
extern const struct cfg_kpinned cfg_kpinned[];
extern const size_t cfg_nkpinned;

/* The scope the section name selects, or -1. */
int cfg_kscope_of(const char *section, size_t len);

/* 0, or -1 with why: the name's syntax, pinned names, the value's size,
 * and librdkafka's own check when one is registered. */
int cfg_kprop_validate(const char *name, const char *value, char *why,
		       size_t why_size);

/* Index of (scope, name) in the list, or -1. */
int cfg_kprop_find(const struct cfg_kprop *kp, int n, int scope,
		   const char *name);

/* Values that must not be printed (config dump). */
bool cfg_kprop_secret(const char *name);

/* --set librdkafka[.consumer|.producer].NAME=VALUE into c; kline[] runs
 * parallel to c->librdkafka.prop[] (0 marks a --set). */
void cfg_kprop_set(struct cfg *c, int *kline, const char *full,
		   const char *value_text, struct cfg_errors *err);

#endif
