/*
 * A new base model over an old database (storage/rollback.c): a restored
 * version names the model it was made with; store_model_reset starts the
 * series again from the base adapter as a new version with its audit row,
 * naming both models; a rollback to a version of another model than the
 * series runs is refused -- by a daemon (its registered model) and by an
 * operator's command (the current version's) -- and never replaced by the
 * block a Kafka record carries, while version 0, the base adapter, stays a
 * target.
 */
#include <errno.h>
#include <math.h>

#include "storage/handover.h"
#include "tests/storage/storeutil.h"

static const char MODEL_A[] = "the old model's bytes";
static const char MODEL_B[] = "the retrained model's bytes";

struct restored {
	int n;
	uint64_t version;
	size_t len;
	int64_t model_id;
	char series[16];
};

static int take(void *user, const struct store_restored *rs)
{
	struct restored *g = user;
	g->n++;
	g->version = rs->version;
	g->len = rs->adapter_len;
	g->model_id = rs->model_id;
	snprintf(g->series, sizeof(g->series), "%s", rs->series);
	return 0;
}

static int64_t reg(struct store *s, const char *name, const char *bytes)
{
	char err[512];
	int64_t id = 0;
	cr_assert_eq(store_model_register(s, name, "", bytes, strlen(bytes),
					  NULL, &id, err, sizeof(err)),
		     0, "%s", err);
	return id;
}

static struct restored restore_a(struct store *s)
{
	char err[512];
	struct restored g = {0};
	cr_assert_eq(store_restore(s, "a", take, &g, NULL, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(g.n, 1);
	return g;
}

/* Series "a" with versions 0 (the base adapter) and 1 (adapted) made with
 * model A, in a database at path; returns A's id. */
static int64_t old_series(const char *path)
{
	struct store *s = su_open(path, NULL);
	int64_t a = reg(s, "a.dcm", MODEL_A);
	cr_assert_eq(su_version(s, "a", STORE_EV_INIT, 0, 0, 1000, 0.0f), 0);
	cr_assert_eq(
	    su_version(s, "a", STORE_EV_ADAPT_ACCEPTED, 0, 1, 2000, 1.0f), 0);
	su_commit(s);
	store_free(s);
	return a;
}

Test(model_change, a_version_of_another_model_restarts_from_the_base_adapter)
{
	char dir[64], path[128], err[512], text[512];
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	int64_t a = old_series(path);

	/* the same model again: nothing to do */
	struct store *s = su_open(path, NULL);
	cr_assert_eq(reg(s, "a.dcm", MODEL_A), a);
	struct restored g = restore_a(s);
	cr_assert_eq(g.model_id, a);
	cr_assert_eq(g.version, 1);
	store_free(s);

	/* the retrained model: the restore says whose version it is */
	s = su_open(path, NULL);
	int64_t b = reg(s, "b.dcm", MODEL_B);
	cr_assert_neq(b, a);
	g = restore_a(s);
	cr_assert_eq(g.model_id, a);
	cr_assert_eq(g.len, SU_ADAPTER_LEN);
	struct store_restored rs = {
	    .series = "a", .version = g.version, .model_id = g.model_id};
	uint64_t number = 0;
	cr_assert_eq(store_model_reset(s, &rs, &number, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(number, 2);
	su_commit(s);
	g = restore_a(s);
	cr_assert_eq(g.version, 2);
	cr_assert_eq(g.len, 0, "not the base adapter");
	/* made under B, read as no model's: the base adapter is every one's */
	cr_assert_eq(g.model_id, 0);
	store_free(s);

	sqlite3 *db = su_raw(path);
	cr_assert_eq(su_int(db, "SELECT model_id FROM versions "
				"WHERE number = 2"),
		     b);
	su_text(db,
		"SELECT reason || ' | ' || note FROM versions WHERE number = 2",
		text, sizeof(text));
	cr_assert(strstr(text, "reset | base model changed: version 1 was made "
			       "with base model 1 ('a.dcm'), this host runs "
			       "base model 2 ('b.dcm')"),
		  "%s", text);
	cr_assert_eq(su_int(db, "SELECT parent_number FROM versions "
				"WHERE number = 2"),
		     1);
	su_text(db,
		"SELECT event || ' ' || triggered_by || ' ' || version_from "
		"|| ' ' || version_to FROM audit ORDER BY id DESC LIMIT 1",
		text, sizeof(text));
	cr_assert_str_eq(text, "reset model 1 2");
	sqlite3_close(db);
	su_rmdir(dir);
}

Test(model_change, a_rollback_to_another_models_version_is_refused)
{
	char dir[64], path[128], err[512];
	float carried[SU_ADAPTER_LEN];
	struct store_rollback_result rb;
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	old_series(path);

	/* a daemon running the retrained model, before the series is
	 * restored (its current version still model A's): its model decides */
	struct store *s = su_open(path, NULL);
	reg(s, "b.dcm", MODEL_B);
	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(
	    store_rollback_prepare(s, "a", &t, NULL, 0, &rb, err, sizeof(err)),
	    -EXDEV);
	cr_assert(strstr(err, "version 1 of series 'a' was made with base "
			      "model 1 ('a.dcm'), and the series runs base "
			      "model 2 ('b.dcm')"),
		  "%s", err);
	/* a Kafka record's carried block does not stand in for it: that is
	 * for versions this database lacks */
	su_fill(carried, SU_ADAPTER_LEN, 4.0f);
	cr_assert_eq(store_rollback_prepare(s, "a", &t, carried, SU_ADAPTER_LEN,
					    &rb, err, sizeof(err)),
		     -EXDEV);
	/* the base adapter belongs to every model */
	t.number = 0;
	cr_assert_eq(store_rollback(s, "a", &t, "back to the base", &rb, err,
				    sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(rb.new_version, 2);
	store_free(s);

	/* an operator's command registers no model: the current version's
	 * (2, made under model B) decides */
	s = su_open(path, NULL);
	t.number = 1;
	cr_assert_eq(
	    store_rollback(s, "a", &t, "back to 1", &rb, err, sizeof(err)),
	    -EXDEV);
	cr_assert(strstr(err, "the series runs base model 2 ('b.dcm')"), "%s",
		  err);
	store_free(s);
	su_rmdir(dir);
}

/* A model row of an earlier release (the file's CRC-32, which every model
 * file of a size shares, so it may stand for several models): its
 * versions' model reads as not recorded, and nothing is reset or refused
 * for it -- until its own file is registered again and the row is
 * certain. */
Test(model_change, a_row_of_an_earlier_release_is_not_trusted)
{
	char dir[64], path[128], err[512];
	struct store_rollback_result rb;
	su_tmpdb(dir, sizeof(dir), path, sizeof(path));
	int64_t a = old_series(path);
	sqlite3 *db = su_raw(path);
	su_exec(db, "UPDATE models SET checksum = 12345 WHERE id = 1");
	sqlite3_close(db);

	struct store *s = su_open(path, NULL);
	reg(s, "b.dcm", MODEL_B);
	struct restored g = restore_a(s);
	cr_assert_eq(g.model_id, 0);
	struct store_rollback_target t = {.number = 1};
	cr_assert_eq(
	    store_rollback_prepare(s, "a", &t, NULL, 0, &rb, err, sizeof(err)),
	    0, "%s", err);
	store_free(s);

	/* model A's file again, under its CRC-32 as an earlier release
	 * registered it: the row is A's for certain */
	db = su_raw(path);
	char sql[96];
	snprintf(sql, sizeof(sql),
		 "UPDATE models SET checksum = %u WHERE id = 1",
		 (unsigned)store_checksum(MODEL_A, strlen(MODEL_A)));
	su_exec(db, sql);
	sqlite3_close(db);
	s = su_open(path, NULL);
	cr_assert_eq(reg(s, "a.dcm", MODEL_A), a);
	g = restore_a(s);
	cr_assert_eq(g.model_id, a);
	store_free(s);
	su_rmdir(dir);
}
