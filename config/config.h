/*
 * config: every driftcast setting, declared once in one table
 * (config/config.c), with its type, bounds, default and documentation.
 *
 * Loading goes parse -> per-key checks -> cross-field checks -> assign.
 * Nothing is assigned unless everything is valid, and every error names the
 * file, the line and the offending text.  The sample config, the effective
 * config dump and docs/CONFIG.md are all generated from the same table.
 *
 * This folder does no logging and never exits; errors come back as negative
 * errno values plus human-readable text in a caller-provided buffer.
 */
#ifndef DRIFTCAST_CONFIG_H
#define DRIFTCAST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_NAME_MAX 256  /* topics, group ids, host:port */
#define CFG_PATH_MAX 1024 /* file system paths, broker lists */

/*
 * librdkafka properties given in the sections [librdkafka] (both clients),
 * [librdkafka.consumer] and [librdkafka.producer], or with --set
 * librdkafka[.consumer|.producer].NAME=VALUE: security.protocol, sasl.*,
 * ssl.*, client.id, debug, fetch and batching tuning...  They are applied
 * after driftcast's own client settings.  The properties driftcast's
 * guarantees rest on (group and offset handling, idempotence, the broker
 * list) are refused with the setting to use instead.
 */
#define CFG_KPROP_MAX	    32
#define CFG_KPROP_NAME_MAX  128
#define CFG_KPROP_VALUE_MAX 1024

enum cfg_kscope {
	CFG_KSCOPE_BOTH = 0, /* [librdkafka] */
	CFG_KSCOPE_CONSUMER, /* [librdkafka.consumer] */
	CFG_KSCOPE_PRODUCER, /* [librdkafka.producer] */
};

struct cfg_kprop {
	int scope; /* enum cfg_kscope */
	char name[CFG_KPROP_NAME_MAX];
	char value[CFG_KPROP_VALUE_MAX];
};

enum cfg_input_format {
	CFG_INPUT_JSON = 0,
	CFG_INPUT_INFLUX = 1,
};

/* Unit of numeric input timestamps (docs/INPUT.md); AUTO detects it from
 * the magnitude. */
enum cfg_ts_unit {
	CFG_TS_AUTO = 0,
	CFG_TS_S = 1,
	CFG_TS_MS = 2,
	CFG_TS_US = 3,
	CFG_TS_NS = 4,
};

/* [ttt] enums; the values equal ttt/ttt.h's (ttt_drift_kind,
 * ttt_reset_policy, ttt_scope), checked by daemon/ttt_cfg.c. */
enum cfg_ttt_drift {
	CFG_TTT_DRIFT_NONE = 0,
	CFG_TTT_DRIFT_PH = 1,
	CFG_TTT_DRIFT_ADWIN = 2,
};
enum cfg_ttt_reset {
	CFG_TTT_RESET_ROLLBACK = 0,
	CFG_TTT_RESET_SOFT = 1,
	CFG_TTT_RESET_HARD = 2,
};
enum cfg_ttt_scope {
	CFG_TTT_SCOPE_SERIES = 0,
	CFG_TTT_SCOPE_GROUP = 1,
	CFG_TTT_SCOPE_GLOBAL = 2,
};
enum cfg_offset_reset {
	CFG_OFFSET_EARLIEST = 0,
	CFG_OFFSET_LATEST = 1,
};

/* Same values as forecast.h's enum fc_backbone (daemon/ttt_cfg.c). */
enum cfg_backbone {
	CFG_BACKBONE_GRU = 0,
	CFG_BACKBONE_TRANSFORMER = 1,
};

/* Same values as forecast.h's enum fc_lr_schedule (daemon/ttt_cfg.c). */
enum cfg_lr_schedule {
	CFG_LR_CONSTANT = 0,
	CFG_LR_PLATEAU = 1,
	CFG_LR_STEP = 2,
	CFG_LR_COSINE = 3,
};

/* Values are syslog(3) priorities, as the journal understands them. */
enum cfg_log_level {
	CFG_LOG_ERROR = 3,
	CFG_LOG_WARNING = 4,
	CFG_LOG_NOTICE = 5,
	CFG_LOG_INFO = 6,
	CFG_LOG_DEBUG = 7,
};

/*
 * The effective configuration.  Plain data: copy it with '=' and compare
 * fields directly.  Every field is described by one row of the table.
 */
struct cfg {
	struct {
		char brokers[CFG_PATH_MAX];
		char group[CFG_NAME_MAX];
		char input_topic[CFG_NAME_MAX];
		char output_topic[CFG_NAME_MAX];
		char deadletter_topic[CFG_NAME_MAX];
		char state_topic[CFG_NAME_MAX],
		    audit_topic[CFG_NAME_MAX]; /* off */
		int input_format,
		    audit_format; /* enum cfg_(input|audit)_format */
		int session_timeout_ms;
		int offset_reset; /* enum cfg_offset_reset */
		int max_poll_records;
		int max_in_flight; /* unacknowledged produced messages */
		int commit_interval_ms, stop_timeout_ms; /* commits; a stop */
		int ts_unit; /* enum cfg_ts_unit (parsing: daemon/parse*.c) */
		int max_message_bytes; /* larger payloads are dead-lettered */
		int future_tolerance_s, max_ahead_steps; /* future_timestamp */
	} kafka;
	struct {
		char path[CFG_PATH_MAX];
		int batch_rows;	      /* commit a batch after this many rows */
		int batch_ms;	      /* ... or this long after it opened */
		bool flush_when_idle; /* commit when no input is waiting */
		int forecast_sample;  /* keep 1 in N forecasts as rows */
		int busy_timeout_ms;  /* wait for another writer's lock */
		int keep_versions;   /* retention: last N versions per series */
		int keep_days;	     /* ... plus everything younger; 0 = all */
		int prune_batch;     /* rows deleted per pruning step */
		int prune_every_ms;  /* pause between pruning steps */
		int control_poll_ms; /* operator requests (rollback) */
		bool rename_corrupt; /* move a corrupt file aside */
		bool check_on_start; /* PRAGMA quick_check at start */
	} storage;
	struct {
		char path[CFG_PATH_MAX];
		int lookback;
		int horizon;
		int backbone; /* enum cfg_backbone */
		int width;
		int layers;
		int heads;
		int ff;
		int lora_rank;
		double mask_ratio;
		int forecast_batch; /* windows per batched forecast pass */
	} model;
	struct {
		int epochs;
		int batch;
		double lr;
		double weight_decay;
		double recon_weight;
		double clip;
		int patience;
		int seed;
		int threads;
		int epoch_windows;
		int lr_schedule; /* enum cfg_lr_schedule */
		double lr_factor;
		double ema;
	} train;
	struct {
		bool enabled;
		int every;
		double w_recon, w_matured, w_anchor;
		double lr;
		int steps;
		double clip, max_update, max_drift;
		char families[CFG_NAME_MAX]; /* "enc,norm,head,calib" subset */
		int recon_windows, step_windows, guard_windows;
		int window_stride;
		bool guard;
		double guard_tol;
		int drift; /* enum cfg_ttt_drift */
		int drift_every;
		double ph_delta, ph_lambda, adwin_delta;
		int drift_min_gap, shadow_every;
		double rollback_margin;
		int rollback_window, fallback_rollbacks, fallback_within,
		    fallback_pause;
		int reset; /* enum cfg_ttt_reset */
		double reset_alpha, combine_weight, average_rate;
		int scope; /* enum cfg_ttt_scope */
		char group_sep[8];
		bool ephemeral;
		int max_gap;
		int level_steps;
		double level_forget, level_shrink, level_share;
		int recal_steps;
		double recal_forget, recal_ridge, recal_share, recal_judge,
		    recal_margin, recal_later;
		int seed;
		int max_series; /* 0: no limit */
	} ttt;
	struct {
		int level; /* enum cfg_log_level */
	} log;
	struct {
		char listen[CFG_NAME_MAX]; /* "host:port" or "off" */
	} metrics;
	/* librdkafka properties passed through (restart-only), in the
	 * order given; see cfg_kprop. */
	struct {
		struct cfg_kprop prop[CFG_KPROP_MAX];
		int n;
	} librdkafka;
};

/* Where the current value of a setting came from. */
enum cfg_origin {
	CFG_ORIGIN_DEFAULT = 0,
	CFG_ORIGIN_FILE,
	CFG_ORIGIN_COMMAND_LINE,
};

/*
 * The provenance of every setting of one load, parallel to the table: for
 * setting i, origin[i] and line[i] (the line in `file` when origin is FILE).
 */
#define CFG_MAX_OPTIONS 128

struct cfg_sources {
	char file[CFG_PATH_MAX];
	enum cfg_origin origin[CFG_MAX_OPTIONS];
	int line[CFG_MAX_OPTIONS];
	int kprop_line[CFG_KPROP_MAX]; /* librdkafka.prop[i]; 0: --set */
};

/* Fill *c with every setting's default.  Cannot fail (a unit test parses
 * every default through the same checks as user input). */
void cfg_defaults(struct cfg *c);

/*
 * Load the configuration: defaults, then the INI file at `path` (may be
 * NULL for defaults only), then `nsets` command-line overrides of the form
 * "section.key=value" (later ones win).
 *
 * On success returns 0, assigns *ret_cfg and, if ret_src is not NULL,
 * *ret_src.  On failure returns -ENOENT/-EACCES/... when the file cannot be
 * read, or -EINVAL when anything in it is invalid; *ret_cfg and *ret_src are
 * untouched, and errbuf receives one line per error, each starting with
 * "FILE:LINE: " (or "--set ...: " for overrides, "FILE: " when the file
 * itself cannot be read).
 */
int cfg_load(const char *path, const char *const *sets, size_t nsets,
	     struct cfg *ret_cfg, struct cfg_sources *ret_src, char *errbuf,
	     size_t errbuf_size);

/* Generated text, written to f: a commented sample configuration whose
 * loading yields the defaults; the reference in Markdown and as the man page
 * driftcast.conf(5); the effective configuration c as INI with where each
 * value came from (src may be NULL). */
void cfg_write_sample(FILE *f);
void cfg_write_markdown(FILE *f);
void cfg_write_man(FILE *f);
void cfg_write_effective(FILE *f, const struct cfg *c,
			 const struct cfg_sources *src);

/* Reload support: copy every setting the table marks reloadable from
 * loaded into running; restart-only settings keep their running values. */
void cfg_apply_reloadable(struct cfg *running, const struct cfg *loaded);

/*
 * Reload support: compare two configurations.  Returns the number of
 * settings that differ and cannot change at run time, and stores up to
 * `max` of their names (static strings) in names.
 */
size_t cfg_diff_static(const struct cfg *a, const struct cfg *b,
		       const char **names, size_t max);

/*
 * librdkafka properties are checked by librdkafka's own parser, which this
 * folder does not link: the program registers it once, before loading
 * (daemon/kafka.c's dc_kafka_check_property).  The check returns 0, or -1
 * with the reason in why.  Without one, only names and pinned properties are
 * checked here and librdkafka reports the rest when the clients are made.
 */
typedef int (*cfg_kprop_check_fn)(const char *name, const char *value,
				  char *why, size_t why_size);
void cfg_set_kprop_check(cfg_kprop_check_fn fn);

/* "librdkafka", "librdkafka.consumer" or "librdkafka.producer". */
const char *cfg_kscope_name(int scope);

/* Table introspection, for tests and tools.  Names are static strings. */
size_t cfg_option_count(void);
const char *cfg_option_name(size_t i);

/* Names of enum values, e.g. cfg_log_level_name(CFG_LOG_INFO) = "info".
 * Return static strings. */
const char *cfg_input_format_name(int v);
const char *cfg_ts_unit_name(int v);
const char *cfg_log_level_name(int v);

#endif
