/*
 * The settings table: every setting is one row of `cfg_options` below --
 * name, type, bounds, default, reloadability, a one-line doc -- with the
 * value lists of its enums and the checks of its string values.  Everything
 * else walks this table: loading and --set (load.c, ini.c), the sample
 * config, the effective dump and docs/CONFIG.md (write.c), and the reload
 * helpers at the end of this file; a setting added here is documented and
 * validated everywhere at once.
 */
#include "config/internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <syslog.h>

static int check_brokers(const void *value, char *why, size_t why_size);
static int check_topic(const void *value, char *why, size_t why_size);
static int check_listen(const void *value, char *why, size_t why_size);
static int check_families(const void *value, char *why, size_t why_size);
static int check_one_char(const void *value, char *why, size_t why_size);

/* kafka.audit_format: daemon/run_audit.c's enum audit_format */
static const struct enum_item audit_formats[] = {
    {"json", 0},
    {"connect", 1},
    {NULL, 0},
};

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

/* enum cfg_log_level is handed to the daemon's logger as a priority. */
_Static_assert(CFG_LOG_ERROR == LOG_ERR && CFG_LOG_WARNING == LOG_WARNING &&
		   CFG_LOG_NOTICE == LOG_NOTICE && CFG_LOG_INFO == LOG_INFO &&
		   CFG_LOG_DEBUG == LOG_DEBUG,
	       "enum cfg_log_level must equal the syslog(3) priorities");

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
const struct cfg_option cfg_options[] = {
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
    STR("kafka.state_topic", kafka.state_topic, "off", 0, check_topic,
	"Changelog of every series' state (adapter, version, recent "
	"values), keyed by series and co-partitioned with the input (at least "
	"as many partitions): a host that is assigned a partition restores "
	"its series from it. off (the default): none, state stays on each "
	"host, as one host needs. Set it (e.g. driftcast-state) on every "
	"host when several hosts share the group; create the topic first (it "
	"costs a few per cent of the loop's CPU: docs/OPERATIONS.md). In "
	"production: cleanup.policy=compact (see docs/OPERATIONS.md, Running "
	"several hosts)."),
    STR("kafka.audit_topic", kafka.audit_topic, "off", 0, check_topic,
	"Topic every audit row (what driftcast history shows: adaptations, "
	"rejections, drift alarms, rollbacks, resets, new series, operator "
	"actions) is also published to, as JSON keyed by series "
	"(docs/OUTPUT.md), once the database has committed it, at least once, "
	"so that a fleet's history can be sunk into one database "
	"(docs/OPERATIONS.md). Turned on for an existing database, it "
	"publishes the whole audit log first. off (the default): none."),
    ENUM("kafka.audit_format", kafka.audit_format, audit_formats, "json", 0,
	 "json: the audit message is the event's JSON object. connect: "
	 "wrapped in Kafka Connect's JsonConverter envelope "
	 "{\"schema\":...,\"payload\":event}, as the JDBC sink connector "
	 "needs with value.converter.schemas.enable=true."),
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
    INT("kafka.future_tolerance_s", kafka.future_tolerance_s, 0, 315360000,
	"60", OPT_RELOAD,
	"A value dated more than this many seconds after this host's clock "
	"is dead-lettered as future_timestamp, unless it lies within "
	"kafka.max_ahead_steps steps of its series' newest value: applied, "
	"it would make every later real value of its series late. Values in "
	"the past (history, replays) are never refused (docs/INPUT.md)."),
    INT("kafka.max_ahead_steps", kafka.max_ahead_steps, 1, 1000000000, "100",
	OPT_RELOAD,
	"A value more than kafka.future_tolerance_s ahead of this host's "
	"clock is still used when it lies within this many steps of its "
	"series' newest value (a sender whose clock runs ahead keeps its "
	"series going); a future value accepted makes at most about this "
	"many readings late."),
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
    INT("kafka.stop_timeout_ms", kafka.stop_timeout_ms, 1000, 3600000, "30000",
	OPT_RELOAD,
	"How long a stop (SIGTERM) waits for the broker to accept the last "
	"dead letters and forecasts and for a full disk to take the last "
	"batch. Then the daemon exits with status 1 without committing the "
	"offsets of what was not delivered or stored, and logs how many "
	"messages of which partitions are replayed at the next start. Keep "
	"it below systemd's TimeoutStopSec (60 s in the shipped unit) minus "
	"about 15 s for the final offset commit and the producer's close. "
	"With kafka.state_topic, also how long a revoke waits for its "
	"partitions' states to be acknowledged before it commits (not "
	"committed then: their next owner replays from the last commit)."),
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
	"series (and the current one, and version 0: the base adapter)."),
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
	 "PATH.corrupt-TIME and start fresh (logged at warning with both "
	 "names); off, such a database stops start-up.  Inner damage is "
	 "seen only with check_on_start."),
    BOOL("storage.check_on_start", storage.check_on_start, "true", 0,
	 "Run PRAGMA quick_check at start and refuse a database damaged "
	 "inside (it reads the whole file: 0.7 s warm, 4.9 s from a cold "
	 "page cache for a 380 MB database of 1M series)."),

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
    DBL("ttt.max_drift", ttt.max_drift, 1e-6, 1e6, "4", OPT_RELOAD,
	"Largest L2 distance an adapter may drift from its anchor (the "
	"trained model) over all its updates; a candidate beyond it is "
	"pulled back onto the bound (a poisoning defence)."),
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
	 "adwin; a drift adapts early. A change at a reload starts every "
	 "series' detector afresh."),
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
	 "version, kept in half precision as its difference from the "
	 "anchor), soft (toward the anchor by reset_alpha) or hard (the "
	 "anchor)."),
    DBL("ttt.reset_alpha", ttt.reset_alpha, 0, 1, "0.5", OPT_RELOAD,
	"Soft reset: share of the way back to the anchor."),
    INT("ttt.fallback_rollbacks", ttt.fallback_rollbacks, 0, 1000000, "3",
	OPT_RELOAD,
	"A series rolled back or reset this many times within "
	"ttt.fallback_within observations falls back to the frozen model "
	"(audit: event reset, triggered_by fallback) and pauses adapting "
	"(0 = never)."),
    INT("ttt.fallback_within", ttt.fallback_within, 1, 100000000, "500",
	OPT_RELOAD,
	"Observations from the first of those rollbacks within which the "
	"others must come to count."),
    INT("ttt.fallback_pause", ttt.fallback_pause, 0, 100000000, "500",
	OPT_RELOAD,
	"Observations a series that fell back to the frozen model waits "
	"before it adapts again; also the forecasts a series whose level "
	"corrections lost publishes without one."),
    ENUM("ttt.scope", ttt.scope, ttt_scopes, "series", 0,
	 "Who owns an adapter: each series, each group (key prefix up to "
	 "the last group_sep) or one global adapter."),
    STR("ttt.group_sep", ttt.group_sep, "/", 0, check_one_char,
	"Separator whose last occurrence ends a series key's group "
	"prefix."),
    BOOL("ttt.ephemeral", ttt.ephemeral, "false", OPT_RELOAD,
	 "Adapt on each forecast's own lookback, forecast, and discard "
	 "(per-request adaptation; no versions)."),
    DBL("ttt.combine_weight", ttt.combine_weight, 0, 1, "0.4", OPT_RELOAD,
	"Share w of the adapter's correction that is published: the "
	"forecast is frozen + w (adapted - frozen). 1 publishes the adapted "
	"forecast as it is; 0 the frozen one (adaptation still runs and is "
	"recorded). Chosen on the validation and training splits "
	"(docs/RESULTS.md)."),
    DBL("ttt.average_rate", ttt.average_rate, 0, 1, "0.03", 0,
	"What a series publishes the share of: 0 its newest adapter "
	"version; r > 0 a running average of its accepted versions, moved "
	"by r of the way to each new one and set to the current version by "
	"the engine's rollbacks and resets. Stored with every version and "
	"with the recent values, so a restart, a moved partition or an "
	"operator's rollback publishes what it would have (what the version "
	"published). Chosen on the "
	"validation and training splits (docs/RESULTS.md). Needs a restart "
	"to change."),
    INT("ttt.max_gap", ttt.max_gap, 0, 100000, "4", OPT_RELOAD,
	"Gaps of up to this many missing steps are filled by linear "
	"interpolation; longer gaps restart the series' history."),
    INT("ttt.level_steps", ttt.level_steps, 0, 100000, "0", 0,
	"Level correction, off by default (0): each series adds to every "
	"step it publishes the mean error of its freshest forecasts' first "
	"level_steps steps (24 is the setting measured), shrunk toward 0 by "
	"its own noise; the model's horizon if that is shorter. It gained "
	"on the validation splits but cost more than 0.2 % on exchange "
	"rates' training split (docs/RESULTS.md). Starts from zero after a "
	"restart or a move."),
    DBL("ttt.level_forget", ttt.level_forget, 0.5, 0.99999, "0.999", OPT_RELOAD,
	"Level correction: weight kept per value by the sums of its errors "
	"(0.999: a memory of about 1000 values)."),
    DBL("ttt.level_shrink", ttt.level_shrink, 0, 1000, "4", OPT_RELOAD,
	"Level correction: how hard its mean error is shrunk toward 0 by "
	"its noise: the correction is mean (1 - level_shrink var / (n "
	"mean^2)), at least 0, with n the number of non-overlapping "
	"errors; 0 publishes the mean as it is. A series whose corrections "
	"lost (summed with forgetting 0.99) publishes none for "
	"ttt.fallback_pause forecasts."),
    DBL("ttt.level_share", ttt.level_share, 0, 1, "0.5", OPT_RELOAD,
	"Level correction: the share of it that is published (and judged)."),
    INT("ttt.recal_steps", ttt.recal_steps, 0, 64, "12", 0,
	"Recalibration (0: off): each series corrects what it publishes by "
	"an affine map of the forecast fitted on its freshest errors -- the "
	"first recal_steps steps of its recent forecasts, as each value "
	"arrives -- and publishes it while it pays on them "
	"(docs/RESULTS.md, \"A recalibration\"). The model's horizon if "
	"that is shorter. Costs about 832 B per series at 12 and H = 96 "
	"(recal_steps (recal_steps + 5) / 2 floats, and per later segment "
	"of the horizon 12 B for every 4 steps up to its middle step); "
	"3688 B at H = 720. Saved with the recent values and in the state "
	"topic: a restart or a move continues it."),
    DBL("ttt.recal_forget", ttt.recal_forget, 0.5, 0.99999, "0.9998",
	OPT_RELOAD,
	"Recalibration: weight kept per value by the sums it is fitted on "
	"(0.9998: a memory of about 5000 values)."),
    DBL("ttt.recal_ridge", ttt.recal_ridge, 0, 1e6, "10", OPT_RELOAD,
	"Recalibration: how many values' worth of evidence its slope and "
	"offset are shrunk toward 0 by."),
    DBL("ttt.recal_share", ttt.recal_share, 0, 1, "0.25", OPT_RELOAD,
	"Recalibration: the share of it that is published (and judged)."),
    DBL("ttt.recal_judge", ttt.recal_judge, 0.5, 0.99999, "0.99", OPT_RELOAD,
	"Recalibration: forgetting per value of what its corrections gained "
	"on the values that arrived."),
    DBL("ttt.recal_margin", ttt.recal_margin, 0, 10, "0.01", OPT_RELOAD,
	"Recalibration: published while what it gained exceeds this share "
	"of the squared errors it was judged on."),
    DBL("ttt.recal_later_judge", ttt.recal_later, 0, 0.99999, "0.995",
	OPT_RELOAD,
	"Recalibration: the steps after the first recal_steps are published "
	"by segments (up to 48, 96, 192, 336, 720), each only while, in "
	"addition, the corrections gained on its middle step as its values "
	"arrived (every 4th forecast, with this forgetting per value). 0: "
	"they follow the first steps' judge alone."),
    INT("ttt.seed", ttt.seed, 0, 2147483647, "1", 0,
	"Seed of the reconstruction masks and adapter initialisation."),
    INT("ttt.max_series", ttt.max_series, 0, 2147483647, "0", 0,
	"At most this many series in memory at once (0: no limit). The "
	"values of a new series beyond them are dead-lettered as "
	"rejected_value (series restored at an assignment are kept, and "
	"count): a bound on memory when keys multiply by mistake (about 4 KB "
	"a series at L = H = 96; driftcast_series_in_memory counts them)."),

    ENUM("log.level", log.level, log_levels, "info", OPT_RELOAD,
	 "Least severe level logged: error, warning, notice, info or "
	 "debug."),

    STR("metrics.listen", metrics.listen, "127.0.0.1:9464", 0, check_listen,
	"HTTP endpoint of /metrics (Prometheus), /status, /healthz and "
	"/readyz as host:port, or off to disable."),
};

#define N_OPTIONS (sizeof(cfg_options) / sizeof(cfg_options[0]))
_Static_assert(N_OPTIONS <= CFG_MAX_OPTIONS, "raise CFG_MAX_OPTIONS");
const size_t cfg_noptions = N_OPTIONS;

size_t cfg_option_count(void)
{
	return N_OPTIONS;
}

const char *cfg_option_name(size_t i)
{
	return i < N_OPTIONS ? cfg_options[i].name : NULL;
}

const char *cfg_enum_name(const struct enum_item *items, int v)
{
	for (; items->name; items++)
		if (items->value == v)
			return items->name;
	return "?";
}

const char *cfg_input_format_name(int v)
{
	return cfg_enum_name(input_formats, v);
}

const char *cfg_ts_unit_name(int v)
{
	return cfg_enum_name(ts_units, v);
}

const char *cfg_log_level_name(int v)
{
	return cfg_enum_name(log_levels, v);
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

const char *cfg_check_allowed(opt_check_fn check)
{
	if (check == check_topic)
		return "Kafka topic name";
	if (check == check_brokers)
		return "host:port[,host:port...]";
	if (check == check_listen)
		return "host:port, or off";
	if (check == check_families)
		return "enc, norm, head, calib";
	if (check == check_one_char)
		return "one character";
	return "non-empty text";
}

/* ---- reload ------------------------------------------------------------ */

void cfg_apply_reloadable(struct cfg *running, const struct cfg *loaded)
{
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct cfg_option *o = &cfg_options[i];
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
		const struct cfg_option *o = &cfg_options[i];
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
