/*
 * The schema, as an ordered list of migrations.  Migration i (1-based)
 * takes a database from PRAGMA user_version i-1 to i; store_open() runs each
 * in one transaction together with the user_version update.  Never edit a
 * released migration: append a new one.
 *
 *   1  base models, series, versions (immutable), audit (append-only),
 *      forecasts, realised errors, Kafka offsets, and their indexes
 *   2  the control table (operator requests to a running daemon) and the
 *      views users query
 *   3  audit columns for the data window of an adaptation, the rejected
 *      value, points gap-filled, the detector statistic and the version a
 *      rollback restored, and v_history with them
 *   4  versions.reason's CHECK written as comparisons, not IN (...): same
 *      constraint, a quarter of the cost of writing a new series' rows
 *   5  series_recent: every series' recent values, saved by the daemon at a
 *      clean stop and taken (read and deleted) at its next start
 *   6  no created_at indexes on forecasts and errors (retention finds their
 *      old rows at the low rowids)
 *   7  series time in nanoseconds since the epoch (was seconds): every ts
 *      column scaled, the views' readable times with their fraction
 *   8  forecasts.value, the value observed at the forecast's origin, and
 *      v_series.last_ts as the last data time (it was the last version's)
 *   9  series.partition (the input partition a series arrives on), the
 *      handovers table (a series' moves between the hosts of a consumer
 *      group) and the version reason 'handover' (a state taken over from
 *      another host, or the base adapter when the state here was stale)
 *  10  series_recent.average: the published average of the versions
 *  11  versions.average: the same with every version
 *  12  series_recent.recal: the recalibration's state
 */
#include "storage/storage_private.h"

static const char MIGRATION_1[] =
    "PRAGMA application_id = 1148347508;\n" /* 0x44726674 "Drft" */
    "CREATE TABLE models (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  config TEXT NOT NULL DEFAULT '',\n"
    "  bytes BLOB,\n"
    "  nbytes INTEGER NOT NULL,\n"
    "  checksum INTEGER NOT NULL,\n"
    "  report TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (checksum, nbytes)\n"
    ");\n"
    "CREATE TABLE series (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  key TEXT NOT NULL UNIQUE,\n"
    "  model_id INTEGER,\n"
    "  current_version_id INTEGER,\n"
    "  current_version INTEGER,\n"
    "  last_ts INTEGER,\n"
    "  status TEXT NOT NULL DEFAULT 'active',\n"
    "  created_at INTEGER NOT NULL\n"
    ");\n"
    /* parent_id is not a foreign key: retention may remove a parent, and
     * parent_number keeps the link readable when it does. */
    "CREATE TABLE versions (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  series_id INTEGER NOT NULL REFERENCES series(id),\n"
    "  number INTEGER NOT NULL,\n"
    "  parent_id INTEGER,\n"
    "  parent_number INTEGER,\n"
    "  model_id INTEGER,\n"
    "  ts INTEGER NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  reason TEXT NOT NULL CHECK (reason IN\n"
    "    ('init', 'ttt', 'drift', 'rollback', 'reset', 'manual')),\n"
    "  note TEXT NOT NULL DEFAULT '',\n"
    "  restored_from INTEGER,\n"
    "  loss_before REAL,\n"
    "  loss_after REAL,\n"
    "  guard_before REAL,\n"
    "  guard_after REAL,\n"
    "  adapter BLOB NOT NULL,\n"
    "  adapter_len INTEGER NOT NULL,\n"
    "  checksum INTEGER NOT NULL,\n"
    "  UNIQUE (series_id, number)\n"
    ");\n"
    "CREATE INDEX versions_created ON versions (created_at);\n"
    "CREATE TRIGGER versions_immutable BEFORE UPDATE ON versions\n"
    "BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;\n"
    "CREATE TABLE audit (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  series_id INTEGER NOT NULL,\n"
    "  ts INTEGER NOT NULL,\n"
    "  event TEXT NOT NULL,\n"
    "  triggered_by TEXT NOT NULL DEFAULT 'none',\n"
    "  version_from INTEGER,\n"
    "  version_to INTEGER,\n"
    "  steps INTEGER,\n"
    "  loss_before REAL,\n"
    "  loss_after REAL,\n"
    "  guard_before REAL,\n"
    "  guard_after REAL,\n"
    "  update_norm REAL,\n"
    "  adapted_error REAL,\n"
    "  shadow_error REAL,\n"
    "  reason TEXT NOT NULL DEFAULT ''\n"
    ");\n"
    "CREATE INDEX audit_series_ts ON audit (series_id, ts);\n"
    "CREATE INDEX audit_ts ON audit (ts);\n"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n"
    "CREATE TABLE forecasts (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  series_id INTEGER NOT NULL,\n"
    "  origin_ts INTEGER NOT NULL,\n"
    "  horizon INTEGER NOT NULL,\n"
    "  vals BLOB NOT NULL,\n"
    "  model_id INTEGER,\n"
    "  version INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (series_id, origin_ts)\n"
    ");\n"
    "CREATE INDEX forecasts_created ON forecasts (created_at);\n"
    "CREATE TABLE errors (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  series_id INTEGER NOT NULL,\n"
    "  origin_ts INTEGER NOT NULL,\n"
    "  version INTEGER,\n"
    "  adapted_error REAL,\n"
    "  shadow_error REAL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (series_id, origin_ts)\n"
    ");\n"
    "CREATE INDEX errors_version ON errors (series_id, version);\n"
    "CREATE INDEX errors_created ON errors (created_at);\n"
    "CREATE TABLE kafka_offsets (\n"
    "  topic TEXT NOT NULL,\n"
    "  partition INTEGER NOT NULL,\n"
    "  next_offset INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (topic, partition)\n"
    ") WITHOUT ROWID;\n";

static const char MIGRATION_2[] =
    "CREATE TABLE control (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('rollback')),\n"
    "  series TEXT NOT NULL,\n"
    "  by_time INTEGER NOT NULL DEFAULT 0,\n"
    "  target INTEGER NOT NULL,\n"
    "  reason TEXT NOT NULL,\n"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN\n"
    "    ('pending', 'applied', 'failed', 'cancelled')),\n"
    "  result TEXT NOT NULL DEFAULT '',\n"
    "  from_version INTEGER,\n"
    "  restored INTEGER,\n"
    "  new_version INTEGER,\n"
    "  done_at INTEGER\n"
    ");\n"
    "CREATE INDEX control_pending ON control (id) WHERE status = "
    "'pending';\n"
    /* history of every series, with readable times */
    "CREATE VIEW v_history AS\n"
    "SELECT a.id, s.key AS series, a.ts,\n"
    "  datetime(a.ts, 'unixepoch') AS time, a.event, a.triggered_by,\n"
    "  a.version_from, a.version_to, a.steps, a.loss_before,\n"
    "  a.loss_after, a.guard_before, a.guard_after, a.update_norm,\n"
    "  a.adapted_error, a.shadow_error, a.reason,\n"
    "  datetime(a.created_at / 1000, 'unixepoch') AS recorded_at\n"
    "FROM audit a JOIN series s ON s.id = a.series_id;\n"
    "CREATE VIEW v_versions AS\n"
    "SELECT v.id, s.key AS series, v.number AS version,\n"
    "  v.parent_number AS parent, v.reason, v.note, v.restored_from,\n"
    "  v.ts, datetime(v.ts, 'unixepoch') AS time, v.loss_before,\n"
    "  v.loss_after, v.guard_before, v.guard_after, v.adapter_len,\n"
    "  printf('%08x', v.checksum) AS checksum,\n"
    "  v.id = s.current_version_id AS current, m.name AS model\n"
    "FROM versions v JOIN series s ON s.id = v.series_id\n"
    "LEFT JOIN models m ON m.id = v.model_id;\n"
    "CREATE VIEW v_series AS\n"
    "SELECT s.key AS series, s.status, s.current_version,\n"
    "  s.last_ts, datetime(s.last_ts, 'unixepoch') AS last_time,\n"
    "  (SELECT count(*) FROM versions v WHERE v.series_id = s.id)\n"
    "    AS versions,\n"
    "  m.name AS model\n"
    "FROM series s LEFT JOIN models m ON m.id = s.model_id;\n"
    /* every (version, ancestor) pair: filter on series and version; for
     * one version of a big database the recursive query in docs/SQL.md
     * starting from that version is faster */
    "CREATE VIEW v_lineage AS\n"
    "WITH RECURSIVE lin (start_id, id, parent_id, depth) AS (\n"
    "  SELECT id, id, parent_id, 0 FROM versions\n"
    "  UNION ALL\n"
    "  SELECT lin.start_id, v.id, v.parent_id, lin.depth + 1\n"
    "  FROM lin JOIN versions v ON v.id = lin.parent_id)\n"
    "SELECT s.key AS series, st.number AS version, lin.depth,\n"
    "  a.number AS ancestor, a.reason, a.note, a.ts,\n"
    "  datetime(a.ts, 'unixepoch') AS time\n"
    "FROM lin JOIN versions st ON st.id = lin.start_id\n"
    "JOIN versions a ON a.id = lin.id\n"
    "JOIN series s ON s.id = st.series_id;\n"
    /* realised error of the forecasts made by the parent vs by the
     * version itself */
    "CREATE VIEW v_adaptation_effect AS\n"
    "SELECT s.key AS series, v.number AS version, v.parent_number AS "
    "parent,\n"
    "  v.reason, v.ts, datetime(v.ts, 'unixepoch') AS time,\n"
    "  (SELECT avg(e.adapted_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.parent_number)\n"
    "    AS error_before,\n"
    "  (SELECT avg(e.adapted_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS error_after,\n"
    "  (SELECT avg(e.shadow_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS shadow_after,\n"
    "  (SELECT count(*) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS n_after\n"
    "FROM versions v JOIN series s ON s.id = v.series_id\n"
    "WHERE v.parent_number IS NOT NULL;\n"
    "CREATE VIEW v_daily_activity AS\n"
    "SELECT date(a.ts, 'unixepoch') AS day, s.key AS series,\n"
    "  sum(a.event = 'adapt_accepted') AS adaptations,\n"
    "  sum(a.event = 'adapt_rejected') AS rejections,\n"
    "  sum(a.event = 'drift') AS drifts,\n"
    "  sum(a.event IN ('rollback', 'manual')) AS rollbacks,\n"
    "  sum(a.event = 'reset') AS resets\n"
    "FROM audit a JOIN series s ON s.id = a.series_id\n"
    "GROUP BY day, s.key;\n"
    "CREATE VIEW v_daily_adaptations AS\n"
    "SELECT day, sum(adaptations) AS adaptations,\n"
    "  sum(rejections) AS rejections, sum(drifts) AS drifts,\n"
    "  sum(rollbacks) AS rollbacks, sum(resets) AS resets,\n"
    "  sum(adaptations > 0) AS series_adapted\n"
    "FROM v_daily_activity GROUP BY day;\n";

static const char MIGRATION_3[] =
    "ALTER TABLE audit ADD COLUMN data_from INTEGER;\n"
    "ALTER TABLE audit ADD COLUMN data_until INTEGER;\n"
    "ALTER TABLE audit ADD COLUMN rejected_value REAL;\n"
    "ALTER TABLE audit ADD COLUMN gap_filled INTEGER;\n"
    "ALTER TABLE audit ADD COLUMN detector_stat REAL;\n"
    "ALTER TABLE audit ADD COLUMN version_restored INTEGER;\n"
    "DROP VIEW v_history;\n"
    "CREATE VIEW v_history AS\n"
    "SELECT a.id, s.key AS series, a.ts,\n"
    "  datetime(a.ts, 'unixepoch') AS time, a.event, a.triggered_by,\n"
    "  a.version_from, a.version_to, a.steps, a.loss_before,\n"
    "  a.loss_after, a.guard_before, a.guard_after, a.update_norm,\n"
    "  a.adapted_error, a.shadow_error, a.reason,\n"
    "  a.data_from, a.data_until, a.rejected_value, a.gap_filled,\n"
    "  a.detector_stat, a.version_restored,\n"
    "  datetime(a.created_at / 1000, 'unixepoch') AS recorded_at\n"
    "FROM audit a JOIN series s ON s.id = a.series_id;\n";

/*
 * SQLite checks `x IN (<more than two constants>)` by building a temporary
 * index of the list in every execution of the statement: for the CHECK of
 * versions.reason, in every version insert (6 of the ~21 us of the rows of
 * a new series, bench-storage init).  The same constraint as an OR of
 * comparisons costs nothing.  Only the schema text changes (no row can
 * differ), so instead of rebuilding the table the text is edited in place:
 * SQLite's documented procedure for changing a CHECK constraint ("Making
 * Other Kinds Of Table Schema Changes" in its ALTER TABLE page).  migrate()
 * bumps schema_version in the same transaction and reopens the connection
 * after it (see store_migration_edits_schema).
 */
static const char MIGRATION_4[] =
    "PRAGMA writable_schema = ON;\n"
    "UPDATE sqlite_schema SET sql = replace(sql,\n"
    "  'reason IN\n"
    "    (''init'', ''ttt'', ''drift'', ''rollback'', ''reset'', "
    "''manual''))',\n"
    "  'reason = ''init'' OR reason = ''ttt'' OR reason = ''drift'' OR\n"
    "    reason = ''rollback'' OR reason = ''reset'' OR reason = "
    "''manual'')')\n"
    "WHERE type = 'table' AND name = 'versions';\n"
    "PRAGMA writable_schema = OFF;\n";

/*
 * A series' ring buffer (the engine's recent values, oldest first, as
 * float32 in the host's byte order with a CRC-32) and where it stands, so a
 * restart forecasts at once instead of refilling a lookback.  Written with
 * every batch for the series it changed, in the transaction of its
 * offsets, so a row always describes the stored state, after a crash too
 * (they were once written only at a clean stop and deleted by the next
 * start; such rows read the same).
 */
static const char MIGRATION_5[] =
    "CREATE TABLE series_recent (\n"
    "  series_id INTEGER PRIMARY KEY REFERENCES series(id),\n"
    "  last_ts INTEGER NOT NULL,\n"
    "  step INTEGER NOT NULL CHECK (step > 0),\n"
    "  position INTEGER NOT NULL,\n"
    "  since_adapt INTEGER NOT NULL,\n"
    "  adaptations INTEGER NOT NULL,\n"
    "  vals BLOB NOT NULL,\n"
    "  count INTEGER NOT NULL,\n"
    "  checksum INTEGER NOT NULL,\n"
    "  saved_at INTEGER NOT NULL\n"
    ");\n";

/*
 * Forecasts and realised errors are written in time order (their
 * created_at is the first write's: a replay's upsert keeps it), so
 * retention finds the old ones at the low rowids and needs no index on
 * created_at, which cost every forecast row a third B-tree insert (7.5-8.2
 * instead of 6.2-6.9 us a row, `bench-storage forecasts`; a message costs
 * the daemon ~30 us with TTT off).
 */
static const char MIGRATION_6[] = "DROP INDEX forecasts_created;\n"
				  "DROP INDEX errors_created;\n";

/*
 * Series time was whole seconds, so a 10 Hz series had nine of every ten
 * readings refused as duplicates; it is nanoseconds now, as the parser
 * reads it (exact for every input form; int64 holds it until 2262 and
 * input stops at 2200).  Every stored series time is scaled, inside the
 * append-only and immutability triggers (dropped and re-created in this
 * one transaction); the values all lie below 7.3e9 s (the parser's bound),
 * so none overflows.  The views keep their columns: `time` is
 * "YYYY-MM-DD HH:MM:SS" as before, with ".SSS" only when the time has a
 * fraction (%f is the only one in the text, so '.000' is that).
 */
static const char MIGRATION_7[] =
    "DROP TRIGGER versions_immutable;\n"
    "DROP TRIGGER audit_no_update;\n"
    "UPDATE series SET last_ts = last_ts * 1000000000;\n"
    "UPDATE versions SET ts = ts * 1000000000;\n"
    /* rebuilt by sorting, not updated row by row: half the time */
    "DROP INDEX audit_series_ts;\n"
    "DROP INDEX audit_ts;\n"
    "UPDATE audit SET ts = ts * 1000000000,\n"
    "  data_from = data_from * 1000000000,\n"
    "  data_until = data_until * 1000000000;\n"
    "CREATE INDEX audit_series_ts ON audit (series_id, ts);\n"
    "CREATE INDEX audit_ts ON audit (ts);\n"
    "UPDATE forecasts SET origin_ts = origin_ts * 1000000000;\n"
    "UPDATE errors SET origin_ts = origin_ts * 1000000000;\n"
    "UPDATE series_recent SET last_ts = last_ts * 1000000000,\n"
    "  step = step * 1000000000;\n"
    "UPDATE control SET target = target * 1000000000 WHERE by_time;\n"
    "CREATE TRIGGER versions_immutable BEFORE UPDATE ON versions\n"
    "BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;\n"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n"
    "DROP VIEW v_history;\n"
    "DROP VIEW v_versions;\n"
    "DROP VIEW v_series;\n"
    "DROP VIEW v_lineage;\n"
    "DROP VIEW v_adaptation_effect;\n"
    "DROP VIEW v_daily_adaptations;\n"
    "DROP VIEW v_daily_activity;\n"
    "CREATE VIEW v_history AS\n"
    "SELECT a.id, s.key AS series, a.ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', a.ts / 1e9, 'unixepoch'), '.000', "
    "'') AS time,\n"
    "  a.event, a.triggered_by,\n"
    "  a.version_from, a.version_to, a.steps, a.loss_before,\n"
    "  a.loss_after, a.guard_before, a.guard_after, a.update_norm,\n"
    "  a.adapted_error, a.shadow_error, a.reason,\n"
    "  a.data_from, a.data_until, a.rejected_value, a.gap_filled,\n"
    "  a.detector_stat, a.version_restored,\n"
    "  datetime(a.created_at / 1000, 'unixepoch') AS recorded_at\n"
    "FROM audit a JOIN series s ON s.id = a.series_id;\n"
    "CREATE VIEW v_versions AS\n"
    "SELECT v.id, s.key AS series, v.number AS version,\n"
    "  v.parent_number AS parent, v.reason, v.note, v.restored_from,\n"
    "  v.ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', v.ts / 1e9, 'unixepoch'), '.000', "
    "'') AS time,\n"
    "  v.loss_before,\n"
    "  v.loss_after, v.guard_before, v.guard_after, v.adapter_len,\n"
    "  printf('%08x', v.checksum) AS checksum,\n"
    "  v.id = s.current_version_id AS current, m.name AS model\n"
    "FROM versions v JOIN series s ON s.id = v.series_id\n"
    "LEFT JOIN models m ON m.id = v.model_id;\n"
    "CREATE VIEW v_series AS\n"
    "SELECT s.key AS series, s.status, s.current_version, s.last_ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', s.last_ts / 1e9, 'unixepoch'), "
    "'.000', '') AS last_time,\n"
    "  (SELECT count(*) FROM versions v WHERE v.series_id = s.id)\n"
    "    AS versions,\n"
    "  m.name AS model\n"
    "FROM series s LEFT JOIN models m ON m.id = s.model_id;\n"
    "CREATE VIEW v_lineage AS\n"
    "WITH RECURSIVE lin (start_id, id, parent_id, depth) AS (\n"
    "  SELECT id, id, parent_id, 0 FROM versions\n"
    "  UNION ALL\n"
    "  SELECT lin.start_id, v.id, v.parent_id, lin.depth + 1\n"
    "  FROM lin JOIN versions v ON v.id = lin.parent_id)\n"
    "SELECT s.key AS series, st.number AS version, lin.depth,\n"
    "  a.number AS ancestor, a.reason, a.note, a.ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', a.ts / 1e9, 'unixepoch'), '.000', "
    "'') AS time\n"
    "FROM lin JOIN versions st ON st.id = lin.start_id\n"
    "JOIN versions a ON a.id = lin.id\n"
    "JOIN series s ON s.id = st.series_id;\n"
    "CREATE VIEW v_adaptation_effect AS\n"
    "SELECT s.key AS series, v.number AS version, v.parent_number AS "
    "parent,\n"
    "  v.reason, v.ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', v.ts / 1e9, 'unixepoch'), '.000', "
    "'') AS time,\n"
    "  (SELECT avg(e.adapted_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.parent_number)\n"
    "    AS error_before,\n"
    "  (SELECT avg(e.adapted_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS error_after,\n"
    "  (SELECT avg(e.shadow_error) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS shadow_after,\n"
    "  (SELECT count(*) FROM errors e\n"
    "   WHERE e.series_id = v.series_id AND e.version = v.number)\n"
    "    AS n_after\n"
    "FROM versions v JOIN series s ON s.id = v.series_id\n"
    "WHERE v.parent_number IS NOT NULL;\n"
    "CREATE VIEW v_daily_activity AS\n"
    "SELECT date(a.ts / 1000000000, 'unixepoch') AS day, s.key AS series,\n"
    "  sum(a.event = 'adapt_accepted') AS adaptations,\n"
    "  sum(a.event = 'adapt_rejected') AS rejections,\n"
    "  sum(a.event = 'drift') AS drifts,\n"
    "  sum(a.event IN ('rollback', 'manual')) AS rollbacks,\n"
    "  sum(a.event = 'reset') AS resets\n"
    "FROM audit a JOIN series s ON s.id = a.series_id\n"
    "GROUP BY day, s.key;\n"
    "CREATE VIEW v_daily_adaptations AS\n"
    "SELECT day, sum(adaptations) AS adaptations,\n"
    "  sum(rejections) AS rejections, sum(drifts) AS drifts,\n"
    "  sum(rollbacks) AS rollbacks, sum(resets) AS resets,\n"
    "  sum(adaptations > 0) AS series_adapted\n"
    "FROM v_daily_activity GROUP BY day;\n";

/*
 * What `driftcast plot` and `driftcast series` need.  The actual values:
 * every forecast is made right after its origin's value arrived, so that
 * value rides in the forecast row (no row more per message; NULL in rows
 * written before).  v_series.last_ts was series.last_ts, which only a new
 * version moves: the last data time is the newest of it, the newest
 * forecast origin and the newest audit row, each an index lookup.
 */
static const char MIGRATION_8[] =
    "ALTER TABLE forecasts ADD COLUMN value REAL;\n"
    "DROP VIEW v_series;\n"
    "CREATE VIEW v_series AS\n"
    "SELECT series, status, current_version, last_ts,\n"
    "  replace(strftime('%Y-%m-%d %H:%M:%f', last_ts / 1e9, 'unixepoch'), "
    "'.000', '') AS last_time,\n"
    "  versions, model\n"
    "FROM (SELECT s.key AS series, s.status, s.current_version,\n"
    "  (SELECT max(t) FROM (SELECT s.last_ts AS t\n"
    "    UNION ALL SELECT max(f.origin_ts) FROM forecasts f\n"
    "      WHERE f.series_id = s.id\n"
    "    UNION ALL SELECT max(a.ts) FROM audit a\n"
    "      WHERE a.series_id = s.id)) AS last_ts,\n"
    "  (SELECT count(*) FROM versions v WHERE v.series_id = s.id)\n"
    "    AS versions,\n"
    "  m.name AS model\n"
    "FROM series s LEFT JOIN models m ON m.id = s.model_id);\n";

/*
 * Scale-out across hosts (docs/OPERATIONS.md, "Running several hosts"):
 * each series' input partition, so a host can restore and forget a
 * partition's series when the group moves it; each move in and out; and
 * the version reason 'handover', edited into the CHECK in place as in
 * migration 4.
 */
static const char MIGRATION_9[] =
    "ALTER TABLE series ADD COLUMN partition INTEGER;\n"
    "CREATE INDEX series_partition ON series (partition);\n"
    "CREATE TABLE handovers (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  series_id INTEGER NOT NULL REFERENCES series(id),\n"
    "  partition INTEGER NOT NULL,\n"
    "  direction TEXT NOT NULL CHECK (direction = 'in' OR direction = "
    "'out'),\n"
    "  source TEXT NOT NULL,\n"
    "  version INTEGER,\n"
    "  next_offset INTEGER,\n"
    "  note TEXT NOT NULL DEFAULT '',\n"
    "  created_at INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX handovers_series ON handovers (series_id, id);\n"
    "PRAGMA writable_schema = ON;\n"
    "UPDATE sqlite_schema SET sql = replace(sql,\n"
    "  'reason = ''manual'')',\n"
    "  'reason = ''manual'' OR reason = ''handover'')')\n"
    "WHERE type = 'table' AND name = 'versions';\n"
    "PRAGMA writable_schema = OFF;\n";

/*
 * The published average of a series' adapter versions (ttt.average_rate):
 * what the series publishes depends on it, so it is saved with the recent
 * values, for the version it belongs to (a rollback or a restart from
 * another version starts it afresh), with its own checksum.  NULL: none.
 */
static const char MIGRATION_10[] =
    "ALTER TABLE series_recent ADD COLUMN average BLOB;\n"
    "ALTER TABLE series_recent ADD COLUMN average_version INTEGER;\n"
    "ALTER TABLE series_recent ADD COLUMN average_checksum INTEGER;\n";

/*
 * The same average with every version, as it stood when the version was
 * made: what a series publishes is the version's share of that average,
 * so forecasts.version names everything that made a forecast, and an
 * operator's rollback to a version publishes what it published.  NULL:
 * none (the version itself is published, or the version predates this).
 */
static const char MIGRATION_11[] =
    "ALTER TABLE versions ADD COLUMN average BLOB;\n"
    "ALTER TABLE versions ADD COLUMN average_checksum INTEGER;\n";

/*
 * The recalibration's state (ttt.recal_steps; opaque bytes the engine
 * names its model and layout in) with the recent values: a restart
 * continues it instead of starting it from zero.  NULL: none.
 */
static const char MIGRATION_12[] =
    "ALTER TABLE series_recent ADD COLUMN recal BLOB;\n"
    "ALTER TABLE series_recent ADD COLUMN recal_checksum INTEGER;\n";

static const char *const migrations[] = {
    MIGRATION_1, MIGRATION_2,  MIGRATION_3,  MIGRATION_4,
    MIGRATION_5, MIGRATION_6,  MIGRATION_7,  MIGRATION_8,
    MIGRATION_9, MIGRATION_10, MIGRATION_11, MIGRATION_12};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
		   STORE_SCHEMA_VERSION,
	       "one migration per schema version");

bool store_migration_edits_schema(int version)
{
	return version == 4 || version == 9;
}

const char *store_migration_sql(int version)
{
	if (version < 1 || version > STORE_SCHEMA_VERSION)
		return NULL;
	return migrations[version - 1];
}
