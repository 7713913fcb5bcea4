/*
 * The configuration table and its loader.
 *
 * Every setting is one row of `options` below: name, type, bounds, default,
 * reloadability and a one-line doc.  Everything else -- INI loading, the
 * --set overrides, the sample config, the effective dump, docs/CONFIG.md --
 * walks this table, so a setting added here is documented and validated
 * everywhere at once.
 *
 * INI syntax is parsed by libinih (Debian's build exposes its compile-time
 * options as globals, which we set before each parse).  inih does not report
 * line numbers to the handler, so we feed it through our own line reader,
 * which counts lines and keeps a copy of each for error messages.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

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

struct option {
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

static int check_brokers(const void *value, char *why, size_t why_size);
static int check_topic(const void *value, char *why, size_t why_size);
static int check_listen(const void *value, char *why, size_t why_size);
static int check_families(const void *value, char *why, size_t why_size);
static int check_one_char(const void *value, char *why, size_t why_size);

static const struct enum_item input_formats[] = {
    {"json", CFG_INPUT_JSON},
    {"influx", CFG_INPUT_INFLUX},
    {NULL, 0},
};

static const struct enum_item offset_resets[] = {
    {"earliest", CFG_OFFSET_EARLIEST},
    {"latest", CFG_OFFSET_LATEST},
    {NULL, 0},
};

static const struct enum_item backbones[] = {
    {"gru", CFG_BACKBONE_GRU},
    {"transformer", CFG_BACKBONE_TRANSFORMER},
    {NULL, 0},
};

static const struct enum_item lr_schedules[] = {
    {"constant", CFG_LR_CONSTANT},
    {"plateau", CFG_LR_PLATEAU},
    {"step", CFG_LR_STEP},
    {"cosine", CFG_LR_COSINE},
    {NULL, 0},
};

static const struct enum_item ts_units[] = {
    {"auto", CFG_TS_AUTO}, {"s", CFG_TS_S},   {"ms", CFG_TS_MS},
    {"us", CFG_TS_US},	   {"ns", CFG_TS_NS}, {NULL, 0},
};

static const struct enum_item ttt_drifts[] = {
    {"none", CFG_TTT_DRIFT_NONE},
    {"page_hinkley", CFG_TTT_DRIFT_PH},
    {"adwin", CFG_TTT_DRIFT_ADWIN},
    {NULL, 0},
};

static const struct enum_item ttt_resets[] = {
    {"rollback", CFG_TTT_RESET_ROLLBACK},
    {"soft", CFG_TTT_RESET_SOFT},
    {"hard", CFG_TTT_RESET_HARD},
    {NULL, 0},
};

static const struct enum_item ttt_scopes[] = {
    {"series", CFG_TTT_SCOPE_SERIES},
    {"group", CFG_TTT_SCOPE_GROUP},
    {"global", CFG_TTT_SCOPE_GLOBAL},
    {NULL, 0},
};

static const struct enum_item log_levels[] = {
    {"error", CFG_LOG_ERROR},	{"warning", CFG_LOG_WARNING},
    {"notice", CFG_LOG_NOTICE}, {"info", CFG_LOG_INFO},
    {"debug", CFG_LOG_DEBUG},	{NULL, 0},
};

#define FIELD(f) offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f)
#define STR(n, f, def, fl, chk, doc)                              \
	{                                                         \
		n, T_STR, FIELD(f), 0, 0, NULL, def, fl, chk, doc \
	}
#define INT(n, f, lo, hi, def, fl, doc)                              \
	{                                                            \
		n, T_INT, FIELD(f), lo, hi, NULL, def, fl, NULL, doc \
	}
#define DBL(n, f, lo, hi, def, fl, doc)                                 \
	{                                                               \
		n, T_DOUBLE, FIELD(f), lo, hi, NULL, def, fl, NULL, doc \
	}
#define BOOL(n, f, def, fl, doc)                                    \
	{                                                           \
		n, T_BOOL, FIELD(f), 0, 1, NULL, def, fl, NULL, doc \
	}
#define ENUM(n, f, items, def, fl, doc)                              \
	{                                                            \
		n, T_ENUM, FIELD(f), 0, 0, items, def, fl, NULL, doc \
	}

/*
 * The table.  Rows of one section stay together (a unit test checks it);
 * the order here is the order of the sample config and of the docs.
 */
static const struct option options[] = {
    STR("kafka.brokers", kafka.brokers, "localhost:9092", 0, check_brokers,
	"Comma-separated Kafka bootstrap brokers, each host:port."),
    STR("kafka.group", kafka.group, "driftcast", 0, NULL,
	"Consumer group id; daemons sharing it share the partitions."),
    STR("kafka.input_topic", kafka.input_topic, "measurements", 0, check_topic,
	"Topic the measurements are consumed from."),
    STR("kafka.output_topic", kafka.output_topic, "forecasts", 0, check_topic,
	"Topic forecasts are produced to (JSON)."),
    STR("kafka.deadletter_topic", kafka.deadletter_topic,
	"driftcast-deadletter", 0, check_topic,
	"Topic unusable messages go to, unchanged, with the reason in a "
	"header."),
    ENUM("kafka.input_format", kafka.input_format, input_formats, "json", 0,
	 "Payload format of input messages: json or influx (line "
	 "protocol)."),
    ENUM("kafka.ts_unit", kafka.ts_unit, ts_units, "auto", 0,
	 "Unit of numeric timestamps: auto (by magnitude, see "
	 "docs/INPUT.md), s, ms, us or ns."),
    INT("kafka.max_message_bytes", kafka.max_message_bytes, 64, 16777216,
	"1048576", 0,
	"Input messages larger than this many bytes are dead-lettered "
	"unparsed."),
    INT("kafka.session_timeout_ms", kafka.session_timeout_ms, 1000, 300000,
	"45000", 0,
	"Consumer group session timeout; a dead member's partitions move "
	"after this long."),
    ENUM("kafka.offset_reset", kafka.offset_reset, offset_resets, "earliest", 0,
	 "Where a partition without a committed or applied offset starts: "
	 "earliest or latest."),
    INT("kafka.max_poll_records", kafka.max_poll_records, 1, 1000000, "10000",
	OPT_RELOAD,
	"Messages processed per batch before state is made durable and "
	"offsets are committed."),
    INT("kafka.commit_interval_ms", kafka.commit_interval_ms, 0, 600000, "1000",
	OPT_RELOAD,
	"Commit the applied offsets to Kafka at most this often (and always "
	"when a partition is revoked and at a clean stop); 0 commits after "
	"every batch. SQLite holds the applied offsets of every batch, so a "
	"restart on this host never re-applies a message; the Kafka commit "
	"is where another host taking a partition over starts."),
    INT("kafka.max_in_flight", kafka.max_in_flight, 100, 1000000, "50000",
	OPT_RELOAD,
	"Produced messages (forecasts, dead letters) the broker has not "
	"acknowledged yet; above this the input partitions are paused "
	"(backpressure: memory stays bounded while the broker is slow or "
	"down) and resumed when half of them are delivered."),

    STR("storage.path", storage.path, "/var/lib/driftcast/driftcast.db", 0,
	NULL, "SQLite database holding versions, audit log and offsets."),
    INT("storage.batch_rows", storage.batch_rows, 1, 1000000, "5000", 0,
	"Commit a storage transaction after this many rows (versions, audit "
	"events, forecasts, errors)."),
    INT("storage.batch_ms", storage.batch_ms, 1, 60000, "200", 0,
	"... or this many milliseconds after it began, whichever comes "
	"first."),
    BOOL("storage.flush_when_idle", storage.flush_when_idle, "true", OPT_RELOAD,
	 "Commit the open batch (and send its forecasts) as soon as no more "
	 "input is waiting, instead of holding it open for storage.batch_ms: "
	 "at moderate rates a forecast leaves within the processing time, and "
	 "under load batches still grow to batch_rows or batch_ms. false "
	 "makes fewer, larger transactions at low rates."),
    INT("storage.forecast_sample", storage.forecast_sample, 0, 1000000, "1",
	OPT_RELOAD,
	"Keep 1 in this many forecasts in the forecasts table (chosen by a "
	"hash of series and origin time, so the same ones on a replay); 1 "
	"keeps all, 0 none. Every forecast still goes to the forecasts "
	"topic; a row per forecast is a large share of the daemon's "
	"per-message cost at high rates."),
    INT("storage.busy_timeout_ms", storage.busy_timeout_ms, 0, 600000, "5000",
	0,
	"How long a write waits for another process's lock (e.g. "
	"`driftcast rollback`)."),
    INT("storage.keep_versions", storage.keep_versions, 1, 1000000, "100",
	OPT_RELOAD,
	"Retention: always keep the last this many adapter versions of each "
	"series (and the current one)."),
    INT("storage.keep_days", storage.keep_days, 0, 36500, "90", OPT_RELOAD,
	"Retention: also keep versions, forecasts and realised errors younger "
	"than this many days; 0 keeps everything.  Audit rows are never "
	"deleted."),
    INT("storage.prune_batch", storage.prune_batch, 1, 100000, "500",
	OPT_RELOAD,
	"Retention deletes at most this many rows per step, so the daemon "
	"never stalls."),
    INT("storage.prune_every_ms", storage.prune_every_ms, 10, 3600000, "1000",
	OPT_RELOAD, "Pause between two retention steps."),
    INT("storage.control_poll_ms", storage.control_poll_ms, 50, 1000, "250",
	OPT_RELOAD,
	"How often the daemon looks for operator requests (`driftcast "
	"rollback`) in the database."),
    BOOL("storage.rename_corrupt", storage.rename_corrupt, "false", 0,
	 "At start, move a corrupt database (or a non-database file) to "
	 "PATH.corrupt-TIME and start fresh; inner damage is seen only with "
	 "check_on_start."),
    BOOL("storage.check_on_start", storage.check_on_start, "false", 0,
	 "Run PRAGMA quick_check at start (reads the whole file)."),

    STR("model.path", model.path, "/var/lib/driftcast/model.dcm", 0, NULL,
	"Base model file written by `driftcast train`."),
    INT("model.lookback", model.lookback, 16, 720, "96", 0,
	"Lookback window L in time steps (must match the model file)."),
    INT("model.horizon", model.horizon, 1, 720, "96", 0,
	"Forecast horizon H in time steps (must match the model file)."),
    ENUM("model.backbone", model.backbone, backbones, "gru", 0,
	 "Backbone `driftcast train` builds: gru or transformer (a model "
	 "file records its own)."),
    INT("model.width", model.width, 8, 1024, "64", 0,
	"Model width D (token embedding size) for `driftcast train`."),
    INT("model.layers", model.layers, 1, 4, "1", 0,
	"GRU or transformer layers for `driftcast train`."),
    INT("model.heads", model.heads, 1, 64, "4", 0,
	"Attention heads of the transformer; must divide model.width."),
    INT("model.ff", model.ff, 8, 8192, "128", 0,
	"Feed-forward width of the transformer layers."),
    INT("model.lora_rank", model.lora_rank, 1, 64, "4", 0,
	"Rank of the LoRA adapters on the embedding, backbone and head."),
    DBL("model.mask_ratio", model.mask_ratio, 0.05, 0.9, "0.33", 0,
	"Share of the lookback hidden by the masked-segment objective."),
    INT("model.forecast_batch", model.forecast_batch, 1, 4096, "256", 0,
	"Forecasts of this many series share one batched pass (the daemon's "
	"throughput); a batch is also cut when the storage batch commits, so "
	"no forecast waits longer than storage.batch_ms. 1 forecasts each "
	"message on arrival. Batching applies when ttt.families is calib "
	"or TTT is off."),

    INT("train.epochs", train.epochs, 1, 200, "30", 0,
	"Maximum training epochs (early stopping usually ends sooner)."),
    INT("train.batch", train.batch, 1, 4096, "64", 0,
	"Windows per optimizer step."),
    DBL("train.lr", train.lr, 0, 1, "0.001", 0, "AdamW learning rate."),
    DBL("train.weight_decay", train.weight_decay, 0, 1, "0.0001", 0,
	"AdamW decoupled weight decay."),
    DBL("train.recon_weight", train.recon_weight, 0, 100, "0.5", 0,
	"Weight lambda of the masked-reconstruction loss in pretraining."),
    DBL("train.clip", train.clip, 0.001, 1000, "1.0", 0,
	"Gradients are clipped to this global L2 norm."),
    INT("train.patience", train.patience, 1, 100, "3", 0,
	"Stop after this many epochs without a better validation MSE."),
    INT("train.seed", train.seed, 0, 2147483647, "1", 0,
	"Seed of initialisation, shuffling and masks."),
    INT("train.threads", train.threads, 1, 64, "1", 0,
	"Worker threads splitting each `driftcast train` batch."),
    INT("train.epoch_windows", train.epoch_windows, 0, 100000000, "0", 0,
	"Windows drawn per epoch (0 = every training window)."),
    ENUM("train.lr_schedule", train.lr_schedule, lr_schedules, "constant", 0,
	 "Learning-rate schedule: constant; plateau (multiply by "
	 "train.lr_factor after every epoch whose validation MSE is not the "
	 "best so far); step (multiply by train.lr_factor after every "
	 "epoch); cosine (per step from train.lr down to 0 over "
	 "train.epochs epochs)."),
    DBL("train.lr_factor", train.lr_factor, 0.01, 1, "0.5", 0,
	"Learning-rate multiplier of the plateau and step schedules."),
    DBL("train.ema", train.ema, 0, 0.9999, "0.9998", 0,
	"Decay of an exponential moving average of the weights, updated "
	"after every step (0.9998 averages about the last 5000 steps, for "
	"short runs nearly all of them). When > 0, both the weights and "
	"their average are validated after every epoch, and the better of "
	"the two is the epoch's candidate for early stopping and for the "
	"saved model; 0 = off (the weights only)."),

    BOOL("ttt.enabled", ttt.enabled, "true", OPT_RELOAD,
	 "Adapt per-series adapters at test time; false forecasts with "
	 "the frozen base model."),
    INT("ttt.every", ttt.every, 1, 1000000, "25", OPT_RELOAD,
	"Adapt every this many observations of a series (plus early on "
	"drift)."),
    DBL("ttt.w_recon", ttt.w_recon, 0, 1000, "1.0", OPT_RELOAD,
	"Weight of the masked-segment reconstruction loss on recent "
	"lookback windows (label-free)."),
    DBL("ttt.w_matured", ttt.w_matured, 0, 1000, "1.0", OPT_RELOAD,
	"Weight of the forecast MSE on matured windows (whose whole horizon "
	"has arrived); 0 = reconstruction only."),
    DBL("ttt.w_anchor", ttt.w_anchor, 0, 1000, "0.01", OPT_RELOAD,
	"Weight of the squared distance of the adapter to its anchor."),
    DBL("ttt.lr", ttt.lr, 0, 1, "0.003", OPT_RELOAD,
	"Adam learning rate of the adapter steps."),
    INT("ttt.steps", ttt.steps, 0, 100, "1", OPT_RELOAD,
	"Optimizer steps per adaptation (0 disables adaptation)."),
    DBL("ttt.clip", ttt.clip, 1e-6, 1e6, "1.0", OPT_RELOAD,
	"Gradient L2 norm clip per step."),
    DBL("ttt.max_update", ttt.max_update, 1e-6, 1e6, "0.5", OPT_RELOAD,
	"Largest L2 norm one adaptation may move the adapter (a poisoning "
	"defence); larger updates are scaled down."),
    STR("ttt.families", ttt.families, "calib", 0, check_families,
	"Adapter families that adapt: comma list of enc (LoRA on embedding "
	"and backbone), norm (normalisation affines), head (LoRA on the "
	"forecast head), calib (output calibration)."),
    INT("ttt.recon_windows", ttt.recon_windows, 0, 64, "4", 0,
	"Most recent lookback windows in the reconstruction batch."),
    INT("ttt.step_windows", ttt.step_windows, 0, 64, "4", 0,
	"Matured windows in the step batch (older than the guard's)."),
    INT("ttt.guard_windows", ttt.guard_windows, 1, 64, "2", 0,
	"Most recent matured windows held out from the step for the "
	"guard."),
    INT("ttt.window_stride", ttt.window_stride, 1, 1000, "4", 0,
	"Spacing in time steps between the windows of one batch."),
    BOOL("ttt.guard", ttt.guard, "true", OPT_RELOAD,
	 "Accept a candidate only if the held-out matured error does not "
	 "get worse (false only for ablations)."),
    DBL("ttt.guard_tol", ttt.guard_tol, 0, 10, "0", OPT_RELOAD,
	"Relative tolerance of the guard: accept if the candidate's error "
	"<= the current one's * (1 + tol)."),
    ENUM("ttt.drift", ttt.drift, ttt_drifts, "page_hinkley", OPT_RELOAD,
	 "Drift detector on the reconstruction loss: none, page_hinkley or "
	 "adwin; a drift adapts early."),
    INT("ttt.drift_every", ttt.drift_every, 1, 1000000, "5", OPT_RELOAD,
	"Sample the reconstruction loss for the detector every this many "
	"observations."),
    DBL("ttt.ph_delta", ttt.ph_delta, 0, 1000, "0.01", OPT_RELOAD,
	"Page-Hinkley: tolerated increase of the loss per sample."),
    DBL("ttt.ph_lambda", ttt.ph_lambda, 1e-6, 1e6, "1.0", OPT_RELOAD,
	"Page-Hinkley: alarm threshold of the cumulative increase."),
    DBL("ttt.adwin_delta", ttt.adwin_delta, 1e-9, 0.5, "0.002", OPT_RELOAD,
	"ADWIN: confidence of a cut (smaller = fewer alarms)."),
    INT("ttt.drift_min_gap", ttt.drift_min_gap, 0, 1000000, "5", OPT_RELOAD,
	"Least observations since the last adaptation before a drift "
	"adapts early."),
    INT("ttt.shadow_every", ttt.shadow_every, 0, 1000000, "5", OPT_RELOAD,
	"Score the adapted model and the frozen shadow on the newest matured "
	"window every this many observations (0 = never: no rollback)."),
    DBL("ttt.rollback_margin", ttt.rollback_margin, 0, 10, "0.05", OPT_RELOAD,
	"Roll back when the adapted error exceeds the shadow's by this "
	"relative margin."),
    INT("ttt.rollback_window", ttt.rollback_window, 1, 1000000, "20",
	OPT_RELOAD,
	"Shadow samples averaged (EWMA span) and needed before a "
	"rollback."),
    ENUM("ttt.reset", ttt.reset, ttt_resets, "rollback", OPT_RELOAD,
	 "What a realised-worse adapter falls back to: rollback (last good "
	 "version), soft (toward the anchor by reset_alpha) or hard (the "
	 "anchor)."),
    DBL("ttt.reset_alpha", ttt.reset_alpha, 0, 1, "0.5", OPT_RELOAD,
	"Soft reset: share of the way back to the anchor."),
    ENUM("ttt.scope", ttt.scope, ttt_scopes, "series", 0,
	 "Who owns an adapter: each series, each group (key prefix up to "
	 "the last group_sep) or one global adapter."),
    STR("ttt.group_sep", ttt.group_sep, "/", 0, check_one_char,
	"Separator whose last occurrence ends a series key's group "
	"prefix."),
    BOOL("ttt.ephemeral", ttt.ephemeral, "false", OPT_RELOAD,
	 "Adapt on each forecast's own lookback, forecast, and discard "
	 "(per-request adaptation; no versions)."),
    INT("ttt.max_gap", ttt.max_gap, 0, 100000, "4", OPT_RELOAD,
	"Gaps of up to this many missing steps are filled by linear "
	"interpolation; longer gaps restart the series' history."),
    INT("ttt.seed", ttt.seed, 0, 2147483647, "1", 0,
	"Seed of the reconstruction masks and adapter initialisation."),

    ENUM("log.level", log.level, log_levels, "info", OPT_RELOAD,
	 "Least severe level logged: error, warning, notice, info or "
	 "debug."),

    STR("metrics.listen", metrics.listen, "127.0.0.1:9464", 0, check_listen,
	"Prometheus metrics endpoint as host:port, or off to disable."),
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))
_Static_assert(N_OPTIONS <= CFG_MAX_OPTIONS, "raise CFG_MAX_OPTIONS");

size_t cfg_option_count(void)
{
	return N_OPTIONS;
}

const char *cfg_option_name(size_t i)
{
	return i < N_OPTIONS ? options[i].name : NULL;
}

static const char *enum_name(const struct enum_item *items, int v)
{
	for (; items->name; items++)
		if (items->value == v)
			return items->name;
	return "?";
}

const char *cfg_input_format_name(int v)
{
	return enum_name(input_formats, v);
}

const char *cfg_ts_unit_name(int v)
{
	return enum_name(ts_units, v);
}

const char *cfg_log_level_name(int v)
{
	return enum_name(log_levels, v);
}

/* ---- validators ------------------------------------------------------ */

/* "host:port" with a non-empty host and a port in 1..65535.  IPv6 hosts
 * go in brackets: [::1]:9092. */
static int check_hostport(const char *s, size_t len, char *why, size_t why_size)
{
	const char *colon = NULL;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || close + 1 >= s + len || close[1] != ':') {
			snprintf(why, why_size,
				 "expected [ipv6]:port, got '%.*s'", (int)len,
				 s);
			return -EINVAL;
		}
		colon = close + 1;
	} else {
		for (size_t i = 0; i < len; i++)
			if (s[i] == ':')
				colon = s + i;
	}
	if (!colon || colon == s) {
		snprintf(why, why_size, "expected host:port, got '%.*s'",
			 (int)len, s);
		return -EINVAL;
	}
	const char *p = colon + 1, *end = s + len;
	long port = 0;
	if (p == end) {
		snprintf(why, why_size, "missing port in '%.*s'", (int)len, s);
		return -EINVAL;
	}
	for (; p < end; p++) {
		if (!isdigit((unsigned char)*p) || port > 65535) {
			snprintf(why, why_size, "bad port in '%.*s'", (int)len,
				 s);
			return -EINVAL;
		}
		port = port * 10 + (*p - '0');
	}
	if (port < 1 || port > 65535) {
		snprintf(why, why_size, "port out of range 1..65535 in '%.*s'",
			 (int)len, s);
		return -EINVAL;
	}
	for (p = s; p < colon; p++) {
		if (isspace((unsigned char)*p)) {
			snprintf(why, why_size, "space in host '%.*s'",
				 (int)len, s);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_brokers(const void *value, char *why, size_t why_size)
{
	const char *s = value;
	for (;;) {
		while (*s == ' ')
			s++;
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		while (len > 0 && s[len - 1] == ' ')
			len--;
		if (len == 0) {
			snprintf(why, why_size, "empty broker in list");
			return -EINVAL;
		}
		int r = check_hostport(s, len, why, why_size);
		if (r < 0)
			return r;
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

/* Kafka's legal topic names: [a-zA-Z0-9._-], at most 249 characters. */
static int check_topic(const void *value, char *why, size_t why_size)
{
	const char *s = value;
	size_t n = strlen(s);
	if (n > 249) {
		snprintf(why, why_size,
			 "topic name longer than 249 characters");
		return -EINVAL;
	}
	if (!strcmp(s, ".") || !strcmp(s, "..")) {
		snprintf(why, why_size, "'%s' is not a legal topic name", s);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
			snprintf(
			    why, why_size,
			    "illegal character '%c' in topic name (allowed: "
			    "letters, digits, '.', '_', '-')",
			    isprint(ch) ? ch : '?');
			return -EINVAL;
		}
	}
	return 0;
}

static int check_families(const void *value, char *why, size_t why_size)
{
	static const char *const names[] = {"enc", "norm", "head", "calib"};
	const char *s = value;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		int ok = 0;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i]) == len &&
			    !strncmp(s, names[i], len))
				ok = 1;
		if (!ok) {
			snprintf(why, why_size,
				 "unknown adapter family '%.*s' (allowed: enc, "
				 "norm, head, calib)",
				 (int)len, s);
			return -EINVAL;
		}
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static int check_one_char(const void *value, char *why, size_t why_size)
{
	const char *s = value;
	if (strlen(s) != 1) {
		snprintf(why, why_size, "must be exactly one character");
		return -EINVAL;
	}
	return 0;
}

static int check_listen(const void *value, char *why, size_t why_size)
{
	const char *s = value;
	if (!strcmp(s, "off"))
		return 0;
	return check_hostport(s, strlen(s), why, why_size);
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
static int convert(const struct option *o, const char *text, void *dst,
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
		/* One pair of surrounding double quotes is optional. */
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

void cfg_defaults(struct cfg *c)
{
	char why[256];
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		int r = convert(&options[i], options[i].def,
				(char *)c + options[i].off, why, sizeof(why));
		(void)r; /* defaults are checked by tests/config */
	}
}

/* ---- error collection ------------------------------------------------ */

struct errors {
	char *buf;
	size_t size, len;
	int count;
};

static void err_add(struct errors *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void err_add(struct errors *e, const char *fmt, ...)
{
	e->count++;
	if (!e->buf || e->size == 0 || e->len + 1 >= e->size)
		return;
	if (e->len > 0)
		e->buf[e->len++] = '\n';
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->buf + e->len, e->size - e->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	e->len += (size_t)n;
	if (e->len >= e->size)
		e->len = e->size - 1;
}

/* ---- "did you mean" -------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Closest option name to `name`, or NULL when nothing is close. */
static const char *suggest_option(const char *name)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		size_t d = edit_distance(name, options[i].name);
		if (d < best_d) {
			best_d = d;
			best = options[i].name;
		}
	}
	size_t limit = strlen(name) / 3;
	if (limit < 2)
		limit = 2;
	return best_d <= limit ? best : NULL;
}

static bool section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (!strncmp(options[i].name, section, len) &&
		    options[i].name[len] == '.')
			return true;
	return false;
}

static const char *suggest_section(const char *section)
{
	static char best[64];
	size_t best_d = SIZE_MAX;
	best[0] = '\0';
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const char *dot = strchr(options[i].name, '.');
		char sec[64];
		size_t n = (size_t)(dot - options[i].name);
		if (n >= sizeof(sec))
			continue;
		memcpy(sec, options[i].name, n);
		sec[n] = '\0';
		size_t d = edit_distance(section, sec);
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
			       : edit_distance(section, k);
		if (d < best_d) {
			best_d = d;
			snprintf(best, sizeof(best), "%s", k);
		}
	}
	return best_d <= 2 ? best : NULL;
}

static int find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (!strcmp(options[i].name, name))
			return (int)i;
	return -1;
}

/* ---- librdkafka pass-through ----------------------------------------- */

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

/* The scope the section name selects, or -1. */
static int kscope_of(const char *section, size_t len)
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

static const struct {
	const char *name, *why;
} kpinned[] = {
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

/* 0, or -1 with why: the name's syntax, pinned names, the value's size,
 * and librdkafka's own check when one is registered. */
static int kprop_validate(const char *name, const char *value, char *why,
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
	for (size_t i = 0; i < sizeof(kpinned) / sizeof(kpinned[0]); i++)
		if (!strcmp(name, kpinned[i].name)) {
			snprintf(why, why_size, "set by driftcast: %s",
				 kpinned[i].why);
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

/* Index of (scope, name) in the list, or -1. */
static int kprop_find(const struct cfg_kprop *kp, int n, int scope,
		      const char *name)
{
	for (int i = 0; i < n; i++)
		if (kp[i].scope == scope && !strcmp(kp[i].name, name))
			return i;
	return -1;
}

/* Values that must not be printed (config dump). */
static bool kprop_secret(const char *name)
{
	size_t n = strlen(name);
	return strstr(name, "password") || strstr(name, "secret") ||
	       strstr(name, "oauthbearer.config") ||
	       (n >= 4 && !strcmp(name + n - 4, ".pem"));
}

/* ---- INI parsing ----------------------------------------------------- */

#define MAX_LINE  4096
#define MAX_LINES 100000

struct loader {
	const char *file;
	FILE *fp;
	int lineno;   /* line most recently handed to inih */
	char **lines; /* copy of every line, for messages */
	size_t nlines, cap;
	bool in_bad_section; /* keys under an unknown [section] */
	int syntax_line;     /* a syntax error we reported ourselves */
	int oom;
	char *text[N_OPTIONS]; /* raw value of each option seen */
	int line[N_OPTIONS];
	struct cfg_kprop kp[CFG_KPROP_MAX]; /* librdkafka sections */
	int kline[CFG_KPROP_MAX];
	int nk;
	struct errors *err;
};

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* fgets-like reader for inih: counts lines, keeps copies, catches lines too
 * long to parse and section headers (inih does not report those). */
static char *loader_read(char *str, int num, void *stream)
{
	struct loader *L = stream;
	if (!fgets(str, num, L->fp))
		return NULL;
	L->lineno++;
	size_t n = strlen(str);
	if (n > 0 && str[n - 1] != '\n' && !feof(L->fp)) {
		int ch;
		while ((ch = fgetc(L->fp)) != EOF && ch != '\n')
			;
		/* Debian's libinih 55 reads lines into a fixed 200-byte buffer
		 * whatever ini_max_line says: report its real limit. */
		err_add(L->err,
			"%s:%d: line longer than %d bytes (the INI parser's "
			"limit; use --set for longer values)",
			L->file, L->lineno, num - 3);
		str[0] = '\0';
		n = 0;
	}
	if (L->nlines == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 64;
		char **p = realloc(L->lines, cap * sizeof(*p));
		if (!p) {
			L->oom = 1;
			return NULL;
		}
		L->lines = p;
		L->cap = cap;
	}
	char *copy = strdup(str);
	if (!copy) {
		L->oom = 1;
		return NULL;
	}
	chomp(copy);
	L->lines[L->nlines++] = copy;
	if (L->nlines > MAX_LINES) {
		err_add(L->err, "%s:%d: file has more than %d lines", L->file,
			L->lineno, MAX_LINES);
		return NULL;
	}

	/* Section header: check the name here, once, at its own line. */
	char tmp[MAX_LINE];
	snprintf(tmp, sizeof(tmp), "%s", copy);
	char *t = trim(tmp);
	if (t[0] == '[') {
		char *close = strchr(t, ']');
		if (!close) {
			/* keys below it would be blamed on the wrong section */
			err_add(
			    L->err,
			    "%s:%d: syntax error: expected '[section]', got "
			    "'%s'",
			    L->file, L->lineno, t);
			L->in_bad_section = true;
			L->syntax_line = L->lineno;
		} else {
			*close = '\0';
			char *name = trim(t + 1);
			L->in_bad_section =
			    !section_known(name, strlen(name)) &&
			    kscope_of(name, strlen(name)) < 0;
			if (L->in_bad_section) {
				const char *s = suggest_section(name);
				if (s)
					err_add(L->err,
						"%s:%d: unknown section [%s] "
						"(did you mean [%s]?)",
						L->file, L->lineno, name, s);
				else
					err_add(L->err,
						"%s:%d: unknown section [%s]",
						L->file, L->lineno, name);
			}
		}
	}
	return str;
}

static int loader_on_value(void *user, const char *section, const char *name,
			   const char *value)
{
	struct loader *L = user;
	if (L->in_bad_section)
		return 1; /* already reported at the section header */
	if (!section[0]) {
		err_add(L->err, "%s:%d: '%s' is outside any [section]", L->file,
			L->lineno, name);
		return 1;
	}

	int scope = kscope_of(section, strlen(section));
	if (scope >= 0) {
		int k = kprop_find(L->kp, L->nk, scope, name);
		if (k >= 0) {
			err_add(L->err,
				"%s:%d: duplicate key '%s.%s' (first set at "
				"line %d)",
				L->file, L->lineno, section, name, L->kline[k]);
			return 1;
		}
		if (L->nk == CFG_KPROP_MAX) {
			err_add(L->err,
				"%s:%d: more than %d librdkafka properties",
				L->file, L->lineno, CFG_KPROP_MAX);
			return 1;
		}
		struct cfg_kprop *p = &L->kp[L->nk];
		if (strlen(name) >= sizeof(p->name) ||
		    strlen(value) >= sizeof(p->value)) {
			err_add(L->err,
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
	int i = find_option(full);
	if (i < 0) {
		const char *s = suggest_option(full);
		if (s)
			err_add(L->err,
				"%s:%d: unknown key '%s' (did you mean '%s'?)",
				L->file, L->lineno, full, s);
		else
			err_add(L->err, "%s:%d: unknown key '%s'", L->file,
				L->lineno, full);
		return 1;
	}
	if (L->text[i]) {
		err_add(L->err,
			"%s:%d: duplicate key '%s' (first set at line %d)",
			L->file, L->lineno, full, L->line[i]);
		return 1;
	}
	L->text[i] = strdup(value);
	if (!L->text[i]) {
		L->oom = 1;
		return 0;
	}
	L->line[i] = L->lineno;
	return 1;
}

static void loader_free(struct loader *L)
{
	for (size_t i = 0; i < L->nlines; i++)
		free(L->lines[i]);
	free(L->lines);
	for (size_t i = 0; i < N_OPTIONS; i++)
		free(L->text[i]);
}

/* Parse the file into L->text/L->line; syntax errors go to L->err.
 * Returns 0 or a negative errno when the file cannot be read at all. */
static int loader_parse(struct loader *L)
{
	struct stat st;
	L->fp = fopen(L->file, "re");
	if (!L->fp) {
		int e = errno;
		err_add(L->err, "%s: cannot open: %s", L->file, strerror(e));
		return -e;
	}
	if (fstat(fileno(L->fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(L->fp);
		L->fp = NULL;
		err_add(L->err, "%s: cannot read: not a regular file", L->file);
		return -EINVAL;
	}
	if (st.st_size > 1 << 20) {
		fclose(L->fp);
		L->fp = NULL;
		err_add(L->err, "%s: cannot read: larger than 1 MiB", L->file);
		return -EFBIG;
	}

	/* inih's options, as runtime globals in Debian's build. */
	ini_use_stack = false;
	ini_max_line = MAX_LINE;
	ini_allow_realloc = false;
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_stop_on_first_error = false;
	ini_allow_no_value = false;

	int r = ini_parse_stream(loader_read, L, loader_on_value, L);
	int read_error = ferror(L->fp);
	fclose(L->fp);
	L->fp = NULL;

	if (read_error) {
		err_add(L->err, "%s: read error", L->file);
		return -EIO;
	}
	if (L->oom || r == -2) {
		err_add(L->err, "%s: out of memory", L->file);
		return -ENOMEM;
	}
	if (r > 0 && r != L->syntax_line) {
		/* inih reports only its first syntax error. */
		const char *text =
		    (size_t)r <= L->nlines ? L->lines[r - 1] : "";
		char tmp[MAX_LINE];
		snprintf(tmp, sizeof(tmp), "%s", text);
		err_add(L->err,
			"%s:%d: syntax error: expected '[section]' or 'key = "
			"value', got '%s'",
			L->file, r, trim(tmp));
	}
	return 0;
}

/* ---- cross-field checks ---------------------------------------------- */

struct provenance {
	const char *file;
	int line[N_OPTIONS];		/* 0: not from the file */
	const char *set_arg[N_OPTIONS]; /* the --set argument, if any */
};

/* "FILE:LINE" or "--set ARG" or "default" for option i, into buf. */
static const char *where(const struct provenance *p, int i, char *buf, size_t n)
{
	if (p->set_arg[i])
		snprintf(buf, n, "--set %s", p->set_arg[i]);
	else if (p->line[i] > 0)
		snprintf(buf, n, "%s:%d", p->file, p->line[i]);
	else
		snprintf(buf, n, "%s", p->file ? p->file : "defaults");
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
			   struct errors *e, const char *na, const char *nb)
{
	int a = find_option(na), b = find_option(nb);
	const char *va = (const char *)c + options[a].off;
	const char *vb = (const char *)c + options[b].off;
	if (strcmp(va, vb))
		return;
	int blame = later(p, a, b), other = blame == a ? b : a;
	char w[CFG_PATH_MAX + 64], w2[CFG_PATH_MAX + 64];
	err_add(e, "%s: %s must differ from %s (%s), both are '%s'",
		where(p, blame, w, sizeof(w)), options[blame].name,
		options[other].name, where(p, other, w2, sizeof(w2)), va);
}

static void check_relations(const struct cfg *c, const struct provenance *p,
			    struct errors *e)
{
	check_distinct(c, p, e, "kafka.input_topic", "kafka.output_topic");
	check_distinct(c, p, e, "kafka.input_topic", "kafka.deadletter_topic");
	check_distinct(c, p, e, "kafka.output_topic", "kafka.deadletter_topic");
	if (c->model.width % c->model.heads) {
		int a = find_option("model.width"),
		    b = find_option("model.heads");
		int blame = later(p, a, b);
		char w[CFG_PATH_MAX + 64];
		err_add(e, "%s: model.heads (%d) must divide model.width (%d)",
			where(p, blame, w, sizeof(w)), c->model.heads,
			c->model.width);
	}
}

/* ---- load ------------------------------------------------------------ */

/* --set librdkafka[.consumer|.producer].NAME=VALUE: replaces the same
 * property of the same scope (from the file or an earlier --set), or adds
 * it.  No librdkafka property name starts with "consumer." or "producer.",
 * so the scope is not ambiguous. */
static void set_kprop(struct cfg *c, int *kline, const char *full,
		      const char *value_text, struct errors *err)
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
	char *v = trim(value);
	if (kprop_validate(name, v, why, sizeof(why)) < 0) {
		err_add(err, "--set %s.%s: %s", cfg_kscope_name(scope), name,
			why);
		return;
	}
	int k = kprop_find(c->librdkafka.prop, c->librdkafka.n, scope, name);
	if (k < 0) {
		if (c->librdkafka.n == CFG_KPROP_MAX) {
			err_add(err,
				"--set %s.%s: more than %d librdkafka "
				"properties",
				cfg_kscope_name(scope), name, CFG_KPROP_MAX);
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

int cfg_load(const char *path, const char *const *sets, size_t nsets,
	     struct cfg *ret_cfg, struct cfg_sources *ret_src, char *errbuf,
	     size_t errbuf_size)
{
	struct errors err = {errbuf, errbuf_size, 0, 0};
	struct loader L = {0};
	struct provenance prov = {0};
	struct cfg tmp;
	int kline[CFG_KPROP_MAX] = {0}; /* of tmp.librdkafka.prop[] */
	char why[512];
	int r = 0;

	if (errbuf && errbuf_size)
		errbuf[0] = '\0';
	cfg_defaults(&tmp);
	prov.file = path;

	/* 1. parse */
	if (path) {
		L.file = path;
		L.err = &err;
		r = loader_parse(&L);
		if (r < 0)
			goto out;
	}

	/* 2. per-key checks, in file order of the table */
	for (size_t i = 0; path && i < N_OPTIONS; i++) {
		if (!L.text[i])
			continue;
		prov.line[i] = L.line[i];
		if (convert(&options[i], L.text[i],
			    (char *)&tmp + options[i].off, why,
			    sizeof(why)) < 0)
			err_add(&err, "%s:%d: %s: %s: '%s'", path, L.line[i],
				options[i].name, why, L.text[i]);
	}

	for (int k = 0; path && k < L.nk; k++) {
		if (kprop_validate(L.kp[k].name, L.kp[k].value, why,
				   sizeof(why)) < 0) {
			err_add(&err, "%s:%d: %s.%s: %s", path, L.kline[k],
				cfg_kscope_name(L.kp[k].scope), L.kp[k].name,
				why);
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
			err_add(&err, "--set %s: expected section.key=value",
				arg);
			continue;
		}
		memcpy(name, arg, (size_t)(eq - arg));
		name[eq - arg] = '\0';
		char *tname = trim(name);
		if (!strncmp(tname, "librdkafka.", strlen("librdkafka."))) {
			set_kprop(&tmp, kline, tname, eq + 1, &err);
			continue;
		}
		int i = find_option(tname);
		if (i < 0) {
			const char *s = suggest_option(tname);
			if (s)
				err_add(&err,
					"--set %s: unknown key '%s' (did you "
					"mean '%s'?)",
					arg, tname, s);
			else
				err_add(&err, "--set %s: unknown key '%s'", arg,
					tname);
			continue;
		}
		char value[MAX_LINE];
		snprintf(value, sizeof(value), "%s", eq + 1);
		if (convert(&options[i], trim(value),
			    (char *)&tmp + options[i].off, why,
			    sizeof(why)) < 0) {
			err_add(&err, "--set %s: %s: %s", arg, options[i].name,
				why);
			continue;
		}
		prov.set_arg[i] = arg;
	}

	/* 3. cross-field checks, only on individually valid values */
	if (err.count == 0)
		check_relations(&tmp, &prov, &err);

	/* 4. assign */
	if (err.count > 0) {
		r = -EINVAL;
		goto out;
	}
	*ret_cfg = tmp;
	if (ret_src) {
		memset(ret_src, 0, sizeof(*ret_src));
		snprintf(ret_src->file, sizeof(ret_src->file), "%s",
			 path ? path : "");
		for (size_t i = 0; i < N_OPTIONS; i++) {
			ret_src->line[i] = prov.line[i];
			ret_src->origin[i] =
			    prov.set_arg[i] ? CFG_ORIGIN_COMMAND_LINE
			    : prov.line[i]  ? CFG_ORIGIN_FILE
					    : CFG_ORIGIN_DEFAULT;
		}
		memcpy(ret_src->kprop_line, kline, sizeof(kline));
	}
out:
	loader_free(&L);
	return r;
}

/* ---- generated text -------------------------------------------------- */

static void format_value(const struct option *o, const struct cfg *c, char *buf,
			 size_t n)
{
	const void *v = (const char *)c + o->off;
	switch (o->type) {
	case T_STR:
		snprintf(buf, n, "%s", (const char *)v);
		break;
	case T_INT:
		snprintf(buf, n, "%d", *(const int *)v);
		break;
	case T_DOUBLE:
		snprintf(buf, n, "%.9g", *(const double *)v);
		break;
	case T_BOOL:
		snprintf(buf, n, "%s", *(const bool *)v ? "true" : "false");
		break;
	case T_ENUM:
		snprintf(buf, n, "%s", enum_name(o->items, *(const int *)v));
		break;
	}
}

static const char *type_name(const struct option *o)
{
	switch (o->type) {
	case T_STR:
		return "string";
	case T_INT:
		return "integer";
	case T_DOUBLE:
		return "number";
	case T_BOOL:
		return "boolean";
	case T_ENUM:
		return "enum";
	}
	return "?";
}

static void format_allowed(const struct option *o, char *buf, size_t n)
{
	size_t off = 0;
	buf[0] = '\0';
	switch (o->type) {
	case T_INT:
		snprintf(buf, n, "%.0f..%.0f", o->min, o->max);
		break;
	case T_DOUBLE:
		snprintf(buf, n, "%g..%g", o->min, o->max);
		break;
	case T_BOOL:
		snprintf(buf, n, "true, false");
		break;
	case T_ENUM:
		for (const struct enum_item *it = o->items; it->name && off < n;
		     it++)
			off += (size_t)snprintf(buf + off, n - off, "%s%s",
						it == o->items ? "" : ", ",
						it->name);
		break;
	case T_STR:
		if (o->check == check_topic)
			snprintf(buf, n, "Kafka topic name");
		else if (o->check == check_brokers)
			snprintf(buf, n, "host:port[,host:port...]");
		else if (o->check == check_listen)
			snprintf(buf, n, "host:port, or off");
		else if (o->check == check_families)
			snprintf(buf, n, "enc, norm, head, calib");
		else if (o->check == check_one_char)
			snprintf(buf, n, "one character");
		else
			snprintf(buf, n, "non-empty text");
		break;
	}
}

/* Section of option i, into buf ("kafka"). */
static const char *section_of(const struct option *o, char *buf, size_t n)
{
	const char *dot = strchr(o->name, '.');
	snprintf(buf, n, "%.*s", (int)(dot - o->name), o->name);
	return buf;
}

/* text as "# " comment lines of at most 78 columns (the INI parser's line
 * limit is 197 bytes, and the sample must load back). */
static void write_comment(FILE *f, const char *text)
{
	const char *p = text;
	while (*p) {
		size_t len = strlen(p), cut = len;
		if (len > 76) {
			cut = 76;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = 76;
		}
		fprintf(f, "# %.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

void cfg_write_sample(FILE *f)
{
	char sec[64], prev[64] = "", allowed[256];
	fprintf(f, "# driftcast configuration (generated by `driftcast config "
		   "sample`).\n"
		   "# Every setting is shown commented out at its default; "
		   "uncomment to change.\n"
		   "# Any setting can also be overridden with "
		   "--set section.key=value.\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		section_of(o, sec, sizeof(sec));
		if (strcmp(sec, prev)) {
			fprintf(f, "\n[%s]\n", sec);
			snprintf(prev, sizeof(prev), "%s", sec);
		}
		format_allowed(o, allowed, sizeof(allowed));
		fputc('\n', f);
		write_comment(f, o->doc);
		fprintf(f, "# %s; %s%s\n#%s = %s\n", type_name(o), allowed,
			(o->flags & OPT_RELOAD) ? "; reloads on SIGHUP" : "",
			strchr(o->name, '.') + 1, o->def);
	}
	fprintf(f, "\n[librdkafka]\n");
	write_comment(f, "librdkafka properties for both Kafka clients, "
			 "passed as they are (restart-only); "
			 "[librdkafka.consumer] and [librdkafka.producer] "
			 "hold those of one client.  See docs/CONFIG.md.");
	fprintf(f, "#security.protocol = SASL_SSL\n"
		   "#sasl.mechanisms = SCRAM-SHA-512\n"
		   "#sasl.username = driftcast\n"
		   "#sasl.password = ...\n");
}

void cfg_write_markdown(FILE *f)
{
	char sec[64], prev[64] = "", allowed[256];
	fprintf(
	    f, "# Configuration reference\n\n"
	       "Generated by `driftcast config doc` from the table in "
	       "`config/config.c`; do not edit by hand\n"
	       "(`meson compile -C build config-md` rebuilds it, and a test "
	       "fails when this file is stale).\n\n"
	       "driftcast reads an INI file (`[section]` then `key = value`; "
	       "`#` or `;` start a comment line,\n"
	       "` ;` an inline comment). Every setting can be overridden on "
	       "the command line with\n"
	       "`--set section.key=value`. Unknown keys, duplicate keys, empty "
	       "values and values with\n"
	       "trailing text are errors that stop start-up with `FILE:LINE:`. "
	       "Settings marked *reload*\n"
	       "change on SIGHUP; the others need a restart.\n");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		section_of(o, sec, sizeof(sec));
		if (strcmp(sec, prev)) {
			fprintf(
			    f,
			    "\n## [%s]\n\n"
			    "| setting | type | default | allowed | reload | "
			    "description |\n"
			    "|---|---|---|---|---|---|\n",
			    sec);
			snprintf(prev, sizeof(prev), "%s", sec);
		}
		format_allowed(o, allowed, sizeof(allowed));
		fprintf(f, "| `%s` | %s | `%s` | %s | %s | %s |\n", o->name,
			type_name(o), o->def, allowed,
			(o->flags & OPT_RELOAD) ? "reload" : "restart", o->doc);
	}
	fprintf(
	    f,
	    "\n## [librdkafka], [librdkafka.consumer], [librdkafka.producer]\n"
	    "\n"
	    "librdkafka properties passed to the Kafka clients as they are: "
	    "`[librdkafka]` to both the\n"
	    "consumer and the producer, the other two to one of them; on the "
	    "command line\n"
	    "`--set librdkafka.NAME=VALUE`, `--set "
	    "librdkafka.consumer.NAME=VALUE`, ...  This is where a\n"
	    "production cluster's `security.protocol`, `sasl.*` and `ssl.*` "
	    "go, and `client.id`,\n"
	    "`debug` or fetch and batching tuning (e.g. `fetch.wait.max.ms` "
	    "of the consumer, `linger.ms`\n"
	    "of the producer). They are applied after driftcast's own client "
	    "settings, need a\n"
	    "restart, and are checked by librdkafka at start-up (`driftcast "
	    "config check` too): an\n"
	    "unknown property or a bad value stops start-up with `FILE:LINE:`. "
	    "At most %d properties.\n"
	    "`driftcast config dump` hides the values of properties whose "
	    "name contains `password`,\n"
	    "`secret` or `oauthbearer.config`, or ends in `.pem`.\n"
	    "\n"
	    "Refused, because driftcast's guarantees rest on them:\n\n"
	    "| property | why |\n|---|---|\n",
	    CFG_KPROP_MAX);
	for (size_t i = 0; i < sizeof(kpinned) / sizeof(kpinned[0]); i++)
		fprintf(f, "| `%s` | %s |\n", kpinned[i].name, kpinned[i].why);
}

void cfg_write_effective(FILE *f, const struct cfg *c,
			 const struct cfg_sources *src)
{
	char sec[64], prev[64] = "", value[CFG_PATH_MAX + 64];
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		section_of(o, sec, sizeof(sec));
		if (strcmp(sec, prev)) {
			fprintf(f, "%s[%s]\n", prev[0] ? "\n" : "", sec);
			snprintf(prev, sizeof(prev), "%s", sec);
		}
		format_value(o, c, value, sizeof(value));
		fprintf(f, "%s = %s", strchr(o->name, '.') + 1, value);
		if (src) {
			switch (src->origin[i]) {
			case CFG_ORIGIN_DEFAULT:
				fprintf(f, " ; default");
				break;
			case CFG_ORIGIN_FILE:
				fprintf(f, " ; %s:%d", src->file, src->line[i]);
				break;
			case CFG_ORIGIN_COMMAND_LINE:
				fprintf(f, " ; --set");
				break;
			}
		}
		fputc('\n', f);
	}
	for (int scope = CFG_KSCOPE_BOTH; scope <= CFG_KSCOPE_PRODUCER;
	     scope++) {
		bool header = false;
		for (int k = 0; k < c->librdkafka.n; k++) {
			const struct cfg_kprop *p = &c->librdkafka.prop[k];
			if (p->scope != scope)
				continue;
			if (!header)
				fprintf(f, "\n[%s]\n", cfg_kscope_name(scope));
			header = true;
			fprintf(f, "%s = %s", p->name,
				kprop_secret(p->name) ? "(hidden)" : p->value);
			if (src && src->kprop_line[k])
				fprintf(f, " ; %s:%d", src->file,
					src->kprop_line[k]);
			else if (src)
				fprintf(f, " ; --set");
			fputc('\n', f);
		}
	}
}

void cfg_apply_reloadable(struct cfg *running, const struct cfg *loaded)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		if (o->flags & OPT_RELOAD)
			memcpy((char *)running + o->off,
			       (const char *)loaded + o->off, o->size);
	}
}

size_t cfg_diff_static(const struct cfg *a, const struct cfg *b,
		       const char **names, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];
		if (o->flags & OPT_RELOAD)
			continue;
		const char *pa = (const char *)a + o->off;
		const char *pb = (const char *)b + o->off;
		bool differ = o->type == T_STR ? strcmp(pa, pb) != 0
					       : memcmp(pa, pb, o->size) != 0;
		if (differ) {
			if (n < max)
				names[n] = o->name;
			n++;
		}
	}
	bool kdiffer = a->librdkafka.n != b->librdkafka.n;
	for (int k = 0; !kdiffer && k < a->librdkafka.n; k++) {
		const struct cfg_kprop *pa = &a->librdkafka.prop[k];
		const struct cfg_kprop *pb = &b->librdkafka.prop[k];
		kdiffer = pa->scope != pb->scope ||
			  strcmp(pa->name, pb->name) ||
			  strcmp(pa->value, pb->value);
	}
	if (kdiffer) {
		if (n < max)
			names[n] = "librdkafka properties";
		n++;
	}
	return n;
}
