/*
 * Every prepared statement of storage/, each declared once as a row
 * X(NAME, "SQL text") of an X-macro table.  The statement enums (SQ_NAME:
 * the main database; CQ_NAME: the request sidecar "<path>.control") and the
 * text arrays of the prepare-once caches (store_prep(), control.c's cprep())
 * are generated from these tables.  The schema is schema.c's migrations.
 */
#ifndef DRIFTCAST_STORAGE_SQL_PRIVATE_H
#define DRIFTCAST_STORAGE_SQL_PRIVATE_H

/* Column lists shared by several statements. */
#define AUDIT_INSERT_V1                                                       \
	"INSERT INTO audit (created_at, series_id, ts, event, triggered_by, " \
	"version_from, version_to, steps, loss_before, loss_after, "          \
	"guard_before, guard_after, update_norm, adapted_error, "             \
	"shadow_error, reason"
/* The base model a version v was made with, models m joined: NULL when
 * not recorded, or when m was registered under the CRC-32 of its file,
 * which all model files of a size share (store_model_hash). */
#define VERSION_MODEL_ID "CASE WHEN m.checksum < 0 THEN v.model_id END"
/* Every series' current version and the base model it was made with;
 * *_V10 (VERSION_V10 below): without the published average. */
#define RESTORE_SELECT                                                       \
	"SELECT s.key, s.current_version, s.current_version_id, s.last_ts, " \
	"v.adapter, v.adapter_len, v.checksum, "
#define RESTORE_FROM                                                    \
	"FROM series s JOIN versions v ON v.id = s.current_version_id " \
	"LEFT JOIN models m ON m.id = v.model_id"
#define RESTORE_COLUMNS \
	RESTORE_SELECT VERSION_V11 ", " VERSION_MODEL_ID " " RESTORE_FROM
#define RESTORE_V10 \
	RESTORE_SELECT VERSION_V10 ", " VERSION_MODEL_ID " " RESTORE_FROM
#define HISTORY_COLUMNS                                                       \
	"SELECT a.id, s.key, a.ts, a.event, a.triggered_by, a.version_from, " \
	"a.version_to, a.steps, a.loss_before, a.loss_after, "                \
	"a.guard_before, a.guard_after, a.update_norm, a.adapted_error, "     \
	"a.shadow_error, a.reason, a.created_at, "
#define HISTORY_FROM "FROM audit a JOIN series s ON s.id = a.series_id "
#define HISTORY_V3                                                    \
	"a.data_from, a.data_until, a.rejected_value, a.gap_filled, " \
	"a.detector_stat, a.version_restored "
#define HISTORY_V1 "NULL, NULL, NULL, NULL, NULL, NULL "
#define FORECAST_UPSERT                                               \
	"ON CONFLICT (series_id, origin_ts) DO UPDATE SET horizon = " \
	"excluded.horizon, vals = excluded.vals, model_id = "         \
	"excluded.model_id, version = excluded.version"

/* query.c: the operator's views (storage/query.h). */
#define FORECASTS_COLUMNS \
	"SELECT f.origin_ts, f.version, f.model_id, f.vals, f.horizon, "
#define FORECASTS_RANGE                                                    \
	"FROM forecasts f WHERE f.series_id = ?1 AND f.origin_ts BETWEEN " \
	"?2 AND ?3 ORDER BY f.origin_ts"
/* ?1 one series' key or NULL for all, ?2 how many of the newest realised
 * errors to average; v_series gives the last data time. */
#define LAST_ERRORS                                                   \
	"FROM (SELECT e.adapted_error, e.shadow_error FROM errors e " \
	"WHERE e.series_id = s.id ORDER BY e.origin_ts DESC LIMIT ?2))"
#define SERIES_INFO_SQL                                                      \
	"SELECT vs.series, vs.status, coalesce(vs.model, ''), vs.last_ts, "  \
	"f.origin_ts, f.version, s.current_version, vs.versions, "           \
	"coalesce(a.adaptations, 0), coalesce(a.rejections, 0), "            \
	"coalesce(a.drifts, 0), coalesce(a.rollbacks, 0), "                  \
	"coalesce(a.resets, 0), r.ts, r.event, r.version_to, "               \
	"(SELECT v.restored_from FROM versions v WHERE v.series_id = s.id "  \
	"AND v.number = r.version_to), "                                     \
	"(SELECT count(*) " LAST_ERRORS ", "                                 \
	"(SELECT avg(adapted_error) " LAST_ERRORS ", "                       \
	"(SELECT avg(shadow_error) " LAST_ERRORS " "                         \
	"FROM v_series vs JOIN series s ON s.key = vs.series "               \
	"LEFT JOIN (SELECT series_id, "                                      \
	"sum(event = 'adapt_accepted') AS adaptations, "                     \
	"sum(event = 'adapt_rejected') AS rejections, "                      \
	"sum(event = 'drift') AS drifts, "                                   \
	"sum(event = 'rollback' OR event = 'manual') AS rollbacks, "         \
	"sum(event = 'reset') AS resets FROM audit GROUP BY series_id) a "   \
	"ON a.series_id = s.id "                                             \
	"LEFT JOIN forecasts f ON f.id = (SELECT id FROM forecasts "         \
	"WHERE series_id = s.id ORDER BY origin_ts DESC LIMIT 1) "           \
	"LEFT JOIN audit r ON r.id = (SELECT id FROM audit WHERE series_id " \
	"= s.id AND (event = 'rollback' OR event = 'manual') "               \
	"ORDER BY ts DESC, id DESC LIMIT 1) "                                \
	"WHERE ?1 IS NULL OR vs.series = ?1 ORDER BY vs.series"

/* Saved recent values; *_V9: files below schema 10 have no published
 * average, *_V11 below 12 no recalibration (read as NULL, written
 * without). */
#define RECENT_COLUMNS                                                 \
	"SELECT s.key, r.last_ts, r.step, r.position, r.since_adapt, " \
	"r.adaptations, r.vals, r.count, r.checksum, "
#define RECENT_V10  "r.average, r.average_version, r.average_checksum, "
#define RECENT_V9   "NULL, NULL, NULL, "
#define RECENT_V12  "r.recal, r.recal_checksum "
#define RECENT_V11  "NULL, NULL "
#define RECENT_FROM "FROM series_recent r JOIN series s ON s.id = r.series_id "

/* A rollback's target version (then its model_id); *_V10: files below
 * schema 11 have no published average with their versions (read as NULL,
 * written without). */
#define VERSION_TARGET "v.id, v.number, v.adapter, v.adapter_len, v.checksum, "
#define VERSION_V11    "v.average, v.average_checksum "
#define VERSION_V10    "NULL, NULL "

/*
 * The main database.  The *_V1 rows serve files below schema 3, which lack
 * the audit columns data_from ... version_restored: a store opened with an
 * older target_schema, or read-only (which never migrates).  CONTROL_*:
 * the control table records each request a daemon applied, in the
 * transaction of its rollback, so that a re-delivered request is
 * recognised.  PRUNE_FORECASTS/ERRORS look among the oldest rows (rowid
 * order is write order, see MIGRATION_6) for those older than the cutoff.
 */
#define STORE_STATEMENTS(X)                                                    \
	X(BEGIN, "BEGIN IMMEDIATE")                                            \
	X(COMMIT, "COMMIT")                                                    \
	X(ROLLBACK, "ROLLBACK")                                                \
	X(SERIES_GET,                                                          \
	  "SELECT id, current_version_id, current_version, last_ts "           \
	  "FROM series WHERE key = ?1")                                        \
	X(SERIES_INSERT, "INSERT INTO series (key, model_id, created_at) "     \
			 "VALUES (?1, ?2, ?3)")                                \
	X(SERIES_INSERT_NEW,                                                   \
	  "INSERT INTO series (key, model_id, created_at) "                    \
	  "VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING")                  \
	X(SERIES_SET_CURRENT,                                                  \
	  "UPDATE series SET current_version_id = ?2, current_version = "      \
	  "?3, last_ts = max(coalesce(last_ts, ?4), ?4) WHERE id = ?1")        \
	X(SERIES_PUT,                                                          \
	  "UPDATE series SET last_ts = max(coalesce(last_ts, ?2), ?2), "       \
	  "status = coalesce(?3, status) WHERE id = ?1")                       \
	X(VERSION_INSERT,                                                      \
	  "INSERT INTO versions (series_id, number, parent_id, "               \
	  "parent_number, model_id, ts, created_at, reason, note, "            \
	  "restored_from, loss_before, loss_after, guard_before, "             \
	  "guard_after, adapter, adapter_len, checksum, average, "             \
	  "average_checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "     \
	  "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)")                 \
	X(VERSION_INSERT_V10,                                                  \
	  "INSERT INTO versions (series_id, number, parent_id, "               \
	  "parent_number, model_id, ts, created_at, reason, note, "            \
	  "restored_from, loss_before, loss_after, guard_before, "             \
	  "guard_after, adapter, adapter_len, checksum) VALUES (?1, ?2, "      \
	  "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "    \
	  "?17)")                                                              \
	X(VERSION_EXISTS,                                                      \
	  "SELECT 1 FROM versions WHERE series_id = ?1 AND number = ?2")       \
	X(VERSION_BY_NUMBER,                                                   \
	  "SELECT " VERSION_TARGET VERSION_V11 ", " VERSION_MODEL_ID " "       \
	  "FROM versions v LEFT JOIN models m ON m.id = v.model_id "           \
	  "WHERE v.series_id = ?1 AND v.number = ?2")                          \
	X(VERSION_AT,                                                          \
	  "SELECT " VERSION_TARGET VERSION_V11 ", " VERSION_MODEL_ID " "       \
	  "FROM versions v LEFT JOIN models m ON m.id = v.model_id "           \
	  "WHERE v.series_id = ?1 AND v.ts <= ?2 ORDER BY v.id DESC LIMIT 1")  \
	X(VERSION_BY_NUMBER_V10,                                               \
	  "SELECT " VERSION_TARGET VERSION_V10 ", " VERSION_MODEL_ID " "       \
	  "FROM versions v LEFT JOIN models m ON m.id = v.model_id "           \
	  "WHERE v.series_id = ?1 AND v.number = ?2")                          \
	X(VERSION_AT_V10,                                                      \
	  "SELECT " VERSION_TARGET VERSION_V10 ", " VERSION_MODEL_ID " "       \
	  "FROM versions v LEFT JOIN models m ON m.id = v.model_id "           \
	  "WHERE v.series_id = ?1 AND v.ts <= ?2 ORDER BY v.id DESC LIMIT 1")  \
	X(VERSION_RANGE,                                                       \
	  "SELECT min(number), max(number), min(ts) FROM versions "            \
	  "WHERE series_id = ?1")                                              \
	X(AUDIT_INSERT, AUDIT_INSERT_V1                                        \
	  ", data_from, data_until, rejected_value, gap_filled, "              \
	  "detector_stat, version_restored) VALUES (?1, ?2, ?3, ?4, ?5, "      \
	  "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "      \
	  "?19, ?20, ?21, ?22)")                                               \
	X(AUDIT_INSERT_V1, AUDIT_INSERT_V1                                     \
	  ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "      \
	  "?13, ?14, ?15, ?16)")                                               \
	X(FORECAST_PUT,                                                        \
	  "INSERT INTO forecasts (series_id, origin_ts, horizon, vals, "       \
	  "model_id, version, created_at, value) "                             \
	  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) " FORECAST_UPSERT           \
	  ", value = excluded.value")                                          \
	X(FORECAST_PUT_V6,                                                     \
	  "INSERT INTO forecasts (series_id, origin_ts, horizon, vals, "       \
	  "model_id, version, created_at) "                                    \
	  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) " FORECAST_UPSERT)              \
	X(ERROR_PUT,                                                           \
	  "INSERT INTO errors (series_id, origin_ts, version, "                \
	  "adapted_error, shadow_error, created_at) "                          \
	  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "                                   \
	  "ON CONFLICT (series_id, origin_ts) DO UPDATE SET version = "        \
	  "excluded.version, adapted_error = excluded.adapted_error, "         \
	  "shadow_error = excluded.shadow_error")                              \
	X(OFFSET_PUT,                                                          \
	  "INSERT INTO kafka_offsets (topic, partition, next_offset, "         \
	  "updated_at) VALUES (?1, ?2, ?3, ?4) "                               \
	  "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "        \
	  "excluded.next_offset, updated_at = excluded.updated_at")            \
	X(OFFSET_GET, "SELECT next_offset FROM kafka_offsets "                 \
		      "WHERE topic = ?1 AND partition = ?2")                   \
	X(SERIES_STEP, "SELECT r.step FROM series_recent r "                   \
		       "JOIN series s ON s.id = r.series_id WHERE s.key = ?1") \
	X(MODEL_FIND, "SELECT id, bytes FROM models "                          \
		      "WHERE checksum = ?1 AND nbytes = ?2")                   \
	X(MODEL_REHASH, "UPDATE models SET checksum = ?1 WHERE id = ?2")       \
	X(MODEL_INSERT,                                                        \
	  "INSERT INTO models (name, config, bytes, nbytes, checksum, "        \
	  "report, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")           \
	X(RESTORE_ALL, RESTORE_COLUMNS " ORDER BY s.id")                       \
	X(RESTORE_ONE, RESTORE_COLUMNS " WHERE s.key = ?1")                    \
	X(RESTORE_ALL_V10, RESTORE_V10 " ORDER BY s.id")                       \
	X(RESTORE_ONE_V10, RESTORE_V10 " WHERE s.key = ?1")                    \
	X(HISTORY_ALL, HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM                 \
	  "WHERE a.ts >= ?2 ORDER BY a.ts, a.id")                              \
	X(HISTORY_ONE, HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM                 \
	  "WHERE s.key = ?1 AND a.ts >= ?2 ORDER BY a.ts, a.id")               \
	X(HISTORY_ALL_V1, HISTORY_COLUMNS HISTORY_V1 HISTORY_FROM              \
	  "WHERE a.ts >= ?2 ORDER BY a.ts, a.id")                              \
	X(HISTORY_ONE_V1, HISTORY_COLUMNS HISTORY_V1 HISTORY_FROM              \
	  "WHERE s.key = ?1 AND a.ts >= ?2 ORDER BY a.ts, a.id")               \
	X(VERSIONS,                                                            \
	  "SELECT v.id, v.number, v.parent_id, v.parent_number, "              \
	  "v.model_id, v.ts, v.created_at, v.reason, v.note, "                 \
	  "v.loss_before, v.loss_after, v.guard_before, v.guard_after, "       \
	  "v.adapter_len, v.checksum, v.id = s.current_version_id "            \
	  "FROM versions v JOIN series s ON s.id = v.series_id "               \
	  "WHERE s.key = ?1 ORDER BY v.number")                                \
	X(CONTROL_RECORD,                                                      \
	  "INSERT INTO control (id, created_at, kind, series, by_time, "       \
	  "target, reason, status, result, from_version, restored, "           \
	  "new_version, done_at) VALUES (?1, ?2, 'rollback', ?3, ?4, ?5, "     \
	  "?6, 'applied', ?7, ?8, ?9, ?10, ?11)")                              \
	X(CONTROL_SEEN,                                                        \
	  "SELECT from_version, restored, new_version, result FROM control "   \
	  "WHERE id = ?1")                                                     \
	X(PRUNE_SCAN,                                                          \
	  "SELECT v.id, v.id != coalesce(s.current_version_id, -1) AND "       \
	  "v.number != 0 AND (SELECT count(*) FROM versions w "                \
	  "WHERE w.series_id = v.series_id AND w.number > v.number) >= ?3 "    \
	  "FROM versions v JOIN series s ON s.id = v.series_id "               \
	  "WHERE v.id > ?1 AND v.created_at < ?2 ORDER BY v.id LIMIT ?4")      \
	X(PRUNE_VERSION, "DELETE FROM versions WHERE id = ?1")                 \
	X(PRUNE_FORECASTS, "DELETE FROM forecasts WHERE id IN (SELECT id "     \
			   "FROM (SELECT id, created_at FROM forecasts "       \
			   "ORDER BY id LIMIT ?2) WHERE created_at < ?1)")     \
	X(PRUNE_ERRORS,                                                        \
	  "DELETE FROM errors WHERE id IN (SELECT id "                         \
	  "FROM (SELECT id, created_at FROM errors ORDER BY id LIMIT ?2) "     \
	  "WHERE created_at < ?1)")                                            \
	X(RECENT_PUT,                                                          \
	  "INSERT OR REPLACE INTO series_recent (series_id, last_ts, step, "   \
	  "position, since_adapt, adaptations, vals, count, checksum, "        \
	  "saved_at, average, average_version, average_checksum, recal, "      \
	  "recal_checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "  \
	  "?11, ?12, ?13, ?14, ?15)")                                          \
	X(RECENT_PUT_V11,                                                      \
	  "INSERT OR REPLACE INTO series_recent (series_id, last_ts, step, "   \
	  "position, since_adapt, adaptations, vals, count, checksum, "        \
	  "saved_at, average, average_version, average_checksum) VALUES "      \
	  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")          \
	X(RECENT_PUT_V9,                                                       \
	  "INSERT OR REPLACE INTO series_recent (series_id, last_ts, step, "   \
	  "position, since_adapt, adaptations, vals, count, checksum, "        \
	  "saved_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")        \
	X(RECENT_ALL, RECENT_COLUMNS RECENT_V10 RECENT_V12 RECENT_FROM         \
	  "ORDER BY r.series_id")                                              \
	X(RECENT_ALL_V11, RECENT_COLUMNS RECENT_V10 RECENT_V11 RECENT_FROM     \
	  "ORDER BY r.series_id")                                              \
	X(RECENT_ALL_V9, RECENT_COLUMNS RECENT_V9 RECENT_V11 RECENT_FROM       \
	  "ORDER BY r.series_id")                                              \
	X(RECENT_CLEAR, "DELETE FROM series_recent")                           \
	X(FORECASTS_RANGE, FORECASTS_COLUMNS "f.value " FORECASTS_RANGE)       \
	X(FORECASTS_RANGE_V6, FORECASTS_COLUMNS "NULL " FORECASTS_RANGE)       \
	X(REALISED_RANGE,                                                      \
	  "SELECT origin_ts, version, adapted_error, shadow_error "            \
	  "FROM errors WHERE series_id = ?1 AND origin_ts BETWEEN ?2 AND "     \
	  "?3 ORDER BY origin_ts")                                             \
	X(SERIES_INFO, SERIES_INFO_SQL)                                        \
	X(HISTORY_LAST, HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM                \
	  "WHERE a.event = ?1 OR a.event = ?2 ORDER BY a.id DESC LIMIT ?3")    \
	X(HISTORY_LAST_V1, HISTORY_COLUMNS HISTORY_V1 HISTORY_FROM             \
	  "WHERE a.event = ?1 OR a.event = ?2 ORDER BY a.id DESC LIMIT ?3")    \
	X(HISTORY_FROM_ID, HISTORY_COLUMNS HISTORY_V3 HISTORY_FROM             \
	  "WHERE a.id >= ?1 ORDER BY a.id LIMIT ?2")                           \
	X(MODEL_BYTES, "SELECT name, bytes FROM models WHERE id = ?1")         \
	X(MODEL_NAME, "SELECT name FROM models WHERE id = ?1")                 \
	X(VERSION_MODEL,                                                       \
	  "SELECT " VERSION_MODEL_ID " FROM versions v "                       \
	  "LEFT JOIN models m ON m.id = v.model_id WHERE v.id = ?1")           \
	X(OFFSETS, "SELECT topic, partition, next_offset FROM kafka_offsets "  \
		   "ORDER BY topic, partition")                                \
	X(RESTORE_PARTITION, RESTORE_COLUMNS " WHERE s.partition = ?1 "        \
					     "ORDER BY s.id")                  \
	X(RESTORE_UNPARTITIONED,                                               \
	  RESTORE_COLUMNS " WHERE s.partition IS NULL ORDER BY s.id")          \
	X(RESTORE_PARTITION_V10, RESTORE_V10 " WHERE s.partition = ?1 "        \
					     "ORDER BY s.id")                  \
	X(RESTORE_UNPARTITIONED_V10,                                           \
	  RESTORE_V10 " WHERE s.partition IS NULL ORDER BY s.id")              \
	X(RECENT_PARTITION, RECENT_COLUMNS RECENT_V10 RECENT_V12 RECENT_FROM   \
	  "WHERE coalesce(s.partition, -1) = ?1 ORDER BY r.series_id")         \
	X(RECENT_PARTITION_V11,                                                \
	  RECENT_COLUMNS RECENT_V10 RECENT_V11 RECENT_FROM                     \
	  "WHERE coalesce(s.partition, -1) = ?1 ORDER BY r.series_id")         \
	X(RECENT_PARTITION_V9, RECENT_COLUMNS RECENT_V9 RECENT_V11 RECENT_FROM \
	  "WHERE coalesce(s.partition, -1) = ?1 ORDER BY r.series_id")         \
	X(RECENT_COUNT_PARTITION,                                              \
	  "SELECT count(*) FROM series_recent r JOIN series s ON s.id = "      \
	  "r.series_id WHERE coalesce(s.partition, -1) = ?1")                  \
	X(RECENT_CLEAR_PARTITION,                                              \
	  "DELETE FROM series_recent WHERE series_id IN (SELECT id FROM "      \
	  "series WHERE coalesce(partition, -1) = ?1)")                        \
	X(SERIES_PARTITION_PUT,                                                \
	  "UPDATE series SET partition = ?2, status = 'active' WHERE id = ?1") \
	X(SERIES_SET_CURRENT_NUMBER,                                           \
	  "UPDATE series SET current_version_id = (SELECT id FROM versions "   \
	  "WHERE series_id = ?1 AND number = ?2), current_version = ?2 "       \
	  "WHERE id = ?1")                                                     \
	X(SERIES_RELEASED, "UPDATE series SET status = ?2 WHERE id = ?1")      \
	X(HANDOVER_INSERT,                                                     \
	  "INSERT INTO handovers (series_id, partition, direction, source, "   \
	  "version, next_offset, note, created_at) VALUES (?1, ?2, ?3, ?4, "   \
	  "?5, ?6, ?7, ?8)")                                                   \
	X(VERSION_ID, "SELECT id FROM versions WHERE series_id = ?1 AND "      \
		      "number = ?2")                                           \
	X(SERIES_WHERE,                                                        \
	  "SELECT s.status IN ('handed_over', 'stopped'), s.partition, "       \
	  "h.created_at, "                                                     \
	  "h.source = 'stopped' FROM series s LEFT JOIN handovers h ON h.id "  \
	  "= (SELECT max(id) FROM handovers WHERE series_id = s.id AND "       \
	  "direction = 'out') WHERE s.key = ?1")

/* The request sidecar; its schema is a script in control.c. */
#define CONTROL_STATEMENTS(X)                                                \
	X(DATA_VERSION, "PRAGMA data_version")                               \
	X(PENDING,                                                           \
	  "SELECT id, series, by_time, target, reason, created_at "          \
	  "FROM requests WHERE status = 'pending' ORDER BY id LIMIT 1")      \
	X(INSERT,                                                            \
	  "INSERT INTO requests (created_at, series, by_time, target, "      \
	  "reason) VALUES (?1, ?2, ?3, ?4, ?5)")                             \
	X(GET, "SELECT status, result, from_version, restored, new_version " \
	       "FROM requests WHERE id = ?1")                                \
	X(DONE,                                                              \
	  "UPDATE requests SET status = ?2, result = ?3, from_version = "    \
	  "?4, restored = ?5, new_version = ?6, done_at = ?7 "               \
	  "WHERE id = ?1 AND status = 'pending'")

#define SQL_ENUM_SQ(name, text) SQ_##name,
#define SQL_ENUM_CQ(name, text) CQ_##name,

enum sq { STORE_STATEMENTS(SQL_ENUM_SQ) SQ__COUNT };
enum cq { CONTROL_STATEMENTS(SQL_ENUM_CQ) CQ__COUNT };

#endif
