/*
 * Operator control records (daemon/control.h): their JSON payload,
 * encoded by `driftcast rollback --brokers` and decoded by the daemon
 * (run_control.c).  Rare, so jansson's DOM and an allocation are fine.
 */
#include "daemon/control.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long dc_control_char_at(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (long)i;
	return -1;
}

static int refuse(char *err, size_t n, const char *fmt, ...)
{
	int o = snprintf(err, n, "bad_control: ");
	va_list ap;
	va_start(ap, fmt);
	if (o >= 0 && (size_t)o < n)
		vsnprintf(err + o, n - (size_t)o, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* A string member into dst[max + 1]: present (unless optional), no control
 * characters, at most max bytes. */
static int get_text(json_t *o, const char *name, bool required, char *dst,
		    size_t max, char *err, size_t n)
{
	json_t *v = json_object_get(o, name);
	if (!v) {
		if (required)
			return refuse(err, n, "no \"%s\"", name);
		dst[0] = '\0';
		return 0;
	}
	if (!json_is_string(v))
		return refuse(err, n, "\"%s\" is not a string", name);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len > max || strlen(s) != len)
		return refuse(err, n,
			      "\"%s\" is longer than %zu bytes or has "
			      "a NUL",
			      name, max);
	long bad = dc_control_char_at(s, len);
	if (bad >= 0)
		return refuse(err, n,
			      "\"%s\" has control character "
			      "0x%02x",
			      name, (unsigned char)s[bad]);
	memcpy(dst, s, len + 1);
	return 0;
}

static int get_adapter(json_t *a, size_t adapter_len, struct dc_control *c,
		       char *err, size_t n)
{
	if (!json_is_array(a))
		return refuse(err, n, "\"adapter\" is not an array");
	/* [] is the identity: version 0, stored empty */
	if (json_array_size(a) == 0)
		adapter_len = 0;
	else if (json_array_size(a) != adapter_len)
		return refuse(err, n,
			      "\"adapter\" has %zu floats, this model's "
			      "adapter %zu (another model or layout)",
			      json_array_size(a), adapter_len);
	if (c->by_time)
		return refuse(err, n, "\"adapter\" goes with \"to_version\"");
	c->adapter = malloc((adapter_len ? adapter_len : 1) * sizeof(float));
	if (!c->adapter)
		return refuse(err, n, "out of memory");
	c->adapter_len = adapter_len;
	for (size_t i = 0; i < adapter_len; i++) {
		json_t *v = json_array_get(a, i);
		double d =
		    json_is_number(v) ? json_number_value(v) : (double)NAN;
		float f = (float)d;
		if (!isfinite(f))
			return refuse(err, n,
				      "\"adapter\"[%zu] is not a finite "
				      "float",
				      i);
		c->adapter[i] = f;
	}
	return 0;
}

static int decode(json_t *o, const void *key, size_t key_len,
		  size_t adapter_len, struct dc_control *c, char *err, size_t n)
{
	int r;
	char kind[16];
	if (!json_is_object(o))
		return refuse(err, n, "the payload is not a JSON object");
	if ((r = get_text(o, "control", true, kind, sizeof(kind) - 1, err, n)) <
	    0)
		return r;
	if (strcmp(kind, DC_CONTROL_ROLLBACK))
		return refuse(err, n, "unknown control \"%s\" (known: %s)",
			      kind, DC_CONTROL_ROLLBACK);
	if ((r = get_text(o, "series", true, c->series, DC_SERIES_MAX, err,
			  n)) < 0 ||
	    (r = get_text(o, "reason", true, c->reason, DC_CONTROL_REASON_MAX,
			  err, n)) < 0 ||
	    (r = get_text(o, "by", false, c->by, DC_CONTROL_BY_MAX, err, n)) <
		0)
		return r;
	if (!c->series[0])
		return refuse(err, n, "\"series\" is empty");
	if (!c->reason[0])
		return refuse(err, n, "\"reason\" is empty");
	/* the key routes the record to the series' partition: another key
	 * would reach another partition's owner */
	if (key &&
	    (key_len != strlen(c->series) || memcmp(key, c->series, key_len)))
		return refuse(err, n,
			      "the Kafka key is not the series \"%s\" (the "
			      "key routes it to the series' owner)",
			      c->series);
	json_t *v = json_object_get(o, "to_version");
	json_t *at = json_object_get(o, "at_ns");
	if (!v == !at)
		return refuse(err, n,
			      "give exactly one of \"to_version\" and "
			      "\"at_ns\"");
	json_t *num = v ? v : at;
	if (!json_is_integer(num) || json_integer_value(num) < 0)
		return refuse(err, n, "\"%s\" is not a non-negative integer",
			      v ? "to_version" : "at_ns");
	c->by_time = at != NULL;
	if (v)
		c->to_version = (uint64_t)json_integer_value(v);
	else
		c->at_ns = (int64_t)json_integer_value(at);
	json_t *a = json_object_get(o, "adapter");
	return a ? get_adapter(a, adapter_len, c, err, n) : 0;
}

int dc_control_decode(const void *payload, size_t len, const void *key,
		      size_t key_len, size_t adapter_len,
		      struct dc_control *ret, char *err, size_t err_size)
{
	json_error_t je;
	memset(ret, 0, sizeof(*ret));
	if (!payload || !len)
		return refuse(err, err_size, "empty payload");
	json_t *o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return refuse(err, err_size, "%s", je.text);
	int r = decode(o, key, key_len, adapter_len, ret, err, err_size);
	json_decref(o);
	if (r < 0)
		dc_control_clear(ret);
	return r;
}

char *dc_control_encode(const struct dc_control *c)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad =
	    json_object_set_new(o, "control", json_string(DC_CONTROL_ROLLBACK));
	bad |= json_object_set_new(o, "series", json_string(c->series));
	if (c->by_time)
		bad |= json_object_set_new(o, "at_ns",
					   json_integer((json_int_t)c->at_ns));
	else
		bad |= json_object_set_new(
		    o, "to_version", json_integer((json_int_t)c->to_version));
	bad |= json_object_set_new(o, "reason", json_string(c->reason));
	bad |= json_object_set_new(o, "by", json_string(c->by));
	if (c->adapter) {
		json_t *a = json_array();
		bad |= json_object_set_new(o, "adapter", a);
		for (size_t i = 0; a && i < c->adapter_len; i++)
			bad |= json_array_append_new(
			    a, json_real((double)c->adapter[i]));
	}
	/* 9 significant digits: every float32 round-trips */
	char *s =
	    bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(o);
	return s;
}

void dc_control_clear(struct dc_control *c)
{
	free(c->adapter);
	c->adapter = NULL;
	c->adapter_len = 0;
}
