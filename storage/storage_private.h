/*
 * storage internals shared by the storage sources and the storage tests (never
 * included outside storage/ and tests/storage/).
 */
#ifndef DRIFTCAST_STORAGE_PRIVATE_H
#define DRIFTCAST_STORAGE_PRIVATE_H

#include "storage/storage.h"

#define STORE_APPLICATION_ID 1148347508 /* 0x44726674, "Drft" */

/* The SQL of migration `version` (1-based), or NULL. */
const char *store_migration_sql(int version);

/* Whether migration `version` edits sqlite_schema directly (writable_schema):
 * the migration then also increments PRAGMA schema_version, and the
 * connection is reopened after it, since SQLite does not reload the schema
 * of the connection that made such an edit. */
bool store_migration_edits_schema(int version);

/* Test hook: run sql on the store's connection (e.g. PRAGMA
 * max_page_count to simulate a full disk).  Returns 0 or a negative errno
 * with sqlite's message in errbuf. */
int store_debug_exec(struct store *s, const char *sql, char *errbuf,
		     size_t errbuf_size);

#endif
