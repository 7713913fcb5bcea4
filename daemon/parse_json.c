/*
 * JSON messages through jansson, the reference decoder: it writes every
 * reason a message is refused (duplicate keys rejected).  Messages of the
 * documented shape are first offered to the single-pass fast path
 * (parse_json_fast.c), which only ever accepts.
 *
 * jansson's allocator is pointed at a per-parser bump arena for the
 * duration of one dc_parse() call: jansson's allocation hooks are
 * process-wide, so the hooks consult a thread-local "current arena" and
 * fall back to malloc/free whenever no parse is running on this thread (or
 * the arena is full).
 */
#include "daemon/parse.h"
#include "daemon/parse_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- jansson arena --------------------------------------------------- */

static __thread struct arena *tl_arena;

static void *arena_malloc(size_t n)
{
	struct arena *a = tl_arena;
	if (a) {
		size_t need = (n + 15u) & ~(size_t)15u;
		if (need >= n && need <= a->size - a->used) {
			void *p = a->base + a->used;
			a->used += need;
			return p;
		}
		a->overflowed = true;
	}
	return malloc(n);
}

static void arena_free(void *ptr)
{
	struct arena *a = tl_arena;
	if (a && (char *)ptr >= a->base && (char *)ptr < a->base + a->size)
		return; /* released wholesale when the parse ends */
	free(ptr);
}

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;

static void install_alloc_funcs(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
}

void dc_parse_json_setup(void)
{
	pthread_once(&alloc_once, install_alloc_funcs);
}

/* ---- decoding with jansson ------------------------------------------- */

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int json_number(const json_t *j, const char *what, double *ret,
		       struct dc_parse_error *err)
{
	double v;
	if (json_is_integer(j)) {
		json_int_t i = json_integer_value(j);
		if (i > (json_int_t)DC_VALUE_MAX ||
		    i < -(json_int_t)DC_VALUE_MAX)
			return dc_parse_fail(err, DC_REASON_OUT_OF_RANGE,
					     "%s %lld exceeds the bound %g",
					     what, (long long)i, DC_VALUE_MAX);
		v = (double)i;
	} else if (json_is_real(j)) {
		v = json_real_value(j);
	} else {
		return dc_parse_fail(err, DC_REASON_WRONG_TYPE,
				     "%s is %s, not a number", what,
				     json_type_name(j));
	}
	int rc = dc_check_value(v, what, err);
	if (rc < 0)
		return rc;
	*ret = v;
	return 0;
}

static int json_ts(const json_t *j, int unit, int64_t *ret_ns,
		   struct dc_parse_error *err)
{
	int rc;
	if (json_is_integer(j))
		rc = dc_ts_from_epoch(json_integer_value(j), unit, ret_ns);
	else if (json_is_real(j))
		rc = dc_ts_from_epoch_real(json_real_value(j), unit, ret_ns);
	else if (json_is_string(j))
		rc = dc_ts_from_rfc3339(json_string_value(j),
					json_string_length(j), ret_ns);
	else
		return dc_parse_fail(
		    err, DC_REASON_WRONG_TYPE,
		    "\"ts\" is %s, not a number or RFC 3339 string",
		    json_type_name(j));
	return rc < 0 ? dc_ts_error(rc, "\"ts\"", err) : 0;
}

static int json_load_error(const json_error_t *je, struct dc_parse_error *err)
{
	switch (json_error_code(je)) {
	case json_error_invalid_utf8:
		return dc_parse_fail(err, DC_REASON_BAD_UTF8, "at byte %d: %s",
				     je->position, je->text);
	case json_error_numeric_overflow:
		if (strstr(je->text, "real"))
			return dc_parse_fail(err, DC_REASON_NON_FINITE,
					     "at byte %d: %s", je->position,
					     je->text);
		return dc_parse_fail(err, DC_REASON_OUT_OF_RANGE,
				     "at byte %d: %s", je->position, je->text);
	default:
		return dc_parse_fail(err, DC_REASON_BAD_JSON, "at byte %d: %s",
				     je->position, je->text);
	}
}

static int parse_json_root(struct dc_parser *p, json_t *root, const char *key,
			   size_t key_len, struct dc_obs *obs, size_t max_obs,
			   size_t *ret_n, struct dc_parse_error *err)
{
	const char *series;
	size_t slen;
	int64_t ts;
	int rc;

	if (!json_is_object(root))
		return dc_parse_fail(err, DC_REASON_WRONG_TYPE,
				     "payload is %s, not an object",
				     json_type_name(root));
	json_t *js = json_object_get(root, "series");
	json_t *jts = json_object_get(root, "ts");
	json_t *jv = json_object_get(root, "value");
	json_t *jvs = json_object_get(root, "values");

	if (js) {
		if (!json_is_string(js))
			return dc_parse_fail(err, DC_REASON_WRONG_TYPE,
					     "\"series\" is %s, not a string",
					     json_type_name(js));
		series = json_string_value(js);
		slen = json_string_length(js);
		rc = dc_check_series(series, slen, "\"series\"", err);
		if (rc < 0)
			return rc;
		if (key && (key_len != slen || memcmp(key, series, slen)))
			return dc_parse_fail(
			    err, DC_REASON_KEY_MISMATCH,
			    "Kafka key '%.*s' != series '%.*s'",
			    (int)(key_len > 40 ? 40 : key_len), key,
			    (int)(slen > 40 ? 40 : slen), series);
	} else if (key) {
		series = key;
		slen = key_len;
	} else {
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "no \"series\" and no Kafka key");
	}
	if (!jts)
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD, "no \"ts\"");
	rc = json_ts(jts, p->opts.ts_unit, &ts, err);
	if (rc < 0)
		return rc;
	if (jv && jvs)
		return dc_parse_fail(err, DC_REASON_BAD_JSON,
				     "both \"value\" and \"values\"");
	if (jv) {
		if (max_obs < 1)
			return dc_parse_fail(err, DC_REASON_TOO_MANY_VALUES,
					     "1 value, room for 0");
		rc = json_number(jv, "\"value\"", &obs[0].value, err);
		if (rc < 0)
			return rc;
		rc = dc_make_series(obs[0].series, series, slen, NULL, 0, err);
		if (rc < 0)
			return rc;
		obs[0].ts_ns = ts;
		*ret_n = 1;
		return 0;
	}
	if (!jvs)
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "no \"value\" or \"values\"");
	if (!json_is_object(jvs))
		return dc_parse_fail(err, DC_REASON_WRONG_TYPE,
				     "\"values\" is %s, not an object",
				     json_type_name(jvs));
	size_t n = json_object_size(jvs);
	if (n == 0)
		return dc_parse_fail(err, DC_REASON_MISSING_FIELD,
				     "\"values\" is empty");
	if (n > max_obs)
		return dc_parse_fail(err, DC_REASON_TOO_MANY_VALUES,
				     "%zu values (limit %zu)", n, max_obs);
	const char *name;
	json_t *jx;
	size_t i = 0;
	json_object_foreach(jvs, name, jx)
	{
		char what[64];
		snprintf(what, sizeof(what), "\"values\".\"%.40s\"", name);
		rc = json_number(jx, what, &obs[i].value, err);
		if (rc < 0)
			return rc;
		rc = dc_make_series(obs[i].series, series, slen, name,
				    strlen(name), err);
		if (rc < 0)
			return rc;
		obs[i].ts_ns = ts;
		i++;
	}
	*ret_n = i;
	return 0;
}

int dc_parse_json(struct dc_parser *p, const char *payload, size_t len,
		  const char *key, size_t key_len, struct dc_obs *obs,
		  size_t max_obs, size_t *ret_n, struct dc_parse_error *err)
{
	json_error_t je;
	json_t *root;
	int rc;

	if (!p->opts.no_fast_path &&
	    dc_parse_json_fast(p, payload, len, key, key_len, obs, max_obs,
			       ret_n)) {
		p->fast_hits++;
		return 0;
	}
	p->arena.used = 0;
	p->arena.overflowed = false;
	tl_arena = &p->arena;
	root = json_loadb(payload, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root)
		rc = json_load_error(&je, err);
	else
		rc = parse_json_root(p, root, key, key_len, obs, max_obs, ret_n,
				     err);
	json_decref(root);
	tl_arena = NULL;
	if (p->arena.overflowed)
		p->heap_fallbacks++;
	return rc;
}
