/*
 * The librdkafka property pass-through: the [librdkafka],
 * [librdkafka.consumer] and [librdkafka.producer] sections and their --set
 * form.  Checks a property's name, refuses the ones driftcast's guarantees
 * rest on (cfg_kpinned, also listed in docs/CONFIG.md) and hands the rest
 * to librdkafka's own parser when the program registered it.
 */
#include "config/internal.h"

#include <ctype.h>
#include <string.h>

static cfg_kprop_check_fn kprop_check;

void cfg_set_kprop_check(cfg_kprop_check_fn fn)
{
	kprop_check = fn;
}

static const char *const kscope_names[] = {
    [CFG_KSCOPE_BOTH] = "librdkafka",
    [CFG_KSCOPE_CONSUMER] = "librdkafka.consumer",
    [CFG_KSCOPE_PRODUCER] = "librdkafka.producer",
};

const char *cfg_kscope_name(int scope)
{
	return scope >= CFG_KSCOPE_BOTH && scope <= CFG_KSCOPE_PRODUCER
		   ? kscope_names[scope]
		   : "?";
}

int cfg_kscope_of(const char *section, size_t len)
{
	for (int i = CFG_KSCOPE_PRODUCER; i >= CFG_KSCOPE_BOTH; i--)
		if (strlen(kscope_names[i]) == len &&
		    !strncmp(section, kscope_names[i], len))
			return i;
	return -1;
}

/* What driftcast's guarantees rest on: set by the daemon, never passed. */
#define WHY_OFFSETS                                                           \
	"driftcast commits offsets itself, only after SQLite has made their " \
	"batch durable"
#define WHY_ACKS "the idempotent producer needs acks=all"
#define WHY_TIMEOUT                                                            \
	"the producer never drops a forecast on a timeout (0); a broker that " \
	"is down pauses the input instead"
#define WHY_BROKERS "set kafka.brokers instead"

const struct cfg_kpinned cfg_kpinned[] = {
    {"bootstrap.servers", WHY_BROKERS},
    {"metadata.broker.list", WHY_BROKERS},
    {"group.id", "set kafka.group instead"},
    {"session.timeout.ms", "set kafka.session_timeout_ms instead"},
    {"auto.offset.reset", "set kafka.offset_reset instead"},
    {"queue.buffering.max.messages",
     "derived from kafka.max_in_flight (backpressure)"},
    {"partition.assignment.strategy",
     "driftcast pins cooperative-sticky (incremental rebalancing)"},
    {"enable.auto.commit", WHY_OFFSETS},
    {"auto.commit.enable", WHY_OFFSETS},
    {"enable.auto.offset.store", WHY_OFFSETS},
    {"enable.partition.eof", "the daemon's loop relies on it being off"},
    {"enable.idempotence",
     "forecasts are produced idempotently: a retry never duplicates one"},
    {"acks", WHY_ACKS},
    {"request.required.acks", WHY_ACKS},
    {"message.timeout.ms", WHY_TIMEOUT},
    {"delivery.timeout.ms", WHY_TIMEOUT},
    {"transactional.id", "transactions are not used"},
};
const size_t cfg_nkpinned = sizeof(cfg_kpinned) / sizeof(cfg_kpinned[0]);

int cfg_kprop_validate(const char *name, const char *value, char *why,
		       size_t why_size)
{
	size_t n = strlen(name);
	if (n == 0 || n >= CFG_KPROP_NAME_MAX) {
		snprintf(why, why_size, "property name must be 1..%d bytes",
			 CFG_KPROP_NAME_MAX - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)name[i]) &&
		    !isdigit((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_') {
			snprintf(why, why_size,
				 "not a librdkafka property name (a-z, 0-9, "
				 "'.', '_')");
			return -1;
		}
	for (size_t i = 0; i < cfg_nkpinned; i++)
		if (!strcmp(name, cfg_kpinned[i].name)) {
			snprintf(why, why_size, "set by driftcast: %s",
				 cfg_kpinned[i].why);
			return -1;
		}
	if (!value[0]) {
		snprintf(why, why_size, "empty value");
		return -1;
	}
	if (strlen(value) >= CFG_KPROP_VALUE_MAX) {
		snprintf(why, why_size, "value longer than %d bytes",
			 CFG_KPROP_VALUE_MAX - 1);
		return -1;
	}
	return kprop_check ? kprop_check(name, value, why, why_size) : 0;
}

int cfg_kprop_find(const struct cfg_kprop *kp, int n, int scope,
		   const char *name)
{
	for (int i = 0; i < n; i++)
		if (kp[i].scope == scope && !strcmp(kp[i].name, name))
			return i;
	return -1;
}

bool cfg_kprop_secret(const char *name)
{
	size_t n = strlen(name);
	return strstr(name, "password") || strstr(name, "secret") ||
	       strstr(name, "oauthbearer.config") ||
	       (n >= 4 && !strcmp(name + n - 4, ".pem"));
}

/* --set librdkafka[.consumer|.producer].NAME=VALUE: replaces the same
 * property of the same scope (from the file or an earlier --set), or adds
 * it.  No librdkafka property name starts with "consumer." or "producer.",
 * so the scope is not ambiguous. */
void cfg_kprop_set(struct cfg *c, int *kline, const char *full,
		   const char *value_text, struct cfg_errors *err)
{
	const char *name = full + strlen("librdkafka.");
	int scope = CFG_KSCOPE_BOTH;
	if (!strncmp(name, "consumer.", 9)) {
		scope = CFG_KSCOPE_CONSUMER;
		name += 9;
	} else if (!strncmp(name, "producer.", 9)) {
		scope = CFG_KSCOPE_PRODUCER;
		name += 9;
	}
	char value[CFG_KPROP_VALUE_MAX + 1], why[512];
	snprintf(value, sizeof(value), "%s", value_text);
	char *v = cfg_trim(value);
	if (cfg_kprop_validate(name, v, why, sizeof(why)) < 0) {
		cfg_err_add(err, "--set %s.%s: %s", cfg_kscope_name(scope),
			    name, why);
		return;
	}
	int k =
	    cfg_kprop_find(c->librdkafka.prop, c->librdkafka.n, scope, name);
	if (k < 0) {
		if (c->librdkafka.n == CFG_KPROP_MAX) {
			cfg_err_add(err,
				    "--set %s.%s: more than %d librdkafka "
				    "properties",
				    cfg_kscope_name(scope), name,
				    CFG_KPROP_MAX);
			return;
		}
		k = c->librdkafka.n++;
	}
	struct cfg_kprop *p = &c->librdkafka.prop[k];
	memset(p, 0, sizeof(*p)); /* configurations compare with memcmp */
	p->scope = scope;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->value, sizeof(p->value), "%s", v);
	kline[k] = 0;
}
