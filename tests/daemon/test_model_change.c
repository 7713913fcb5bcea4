/*
 * A retrained model over the same database (daemon/run_restart.c): the
 * daemon runs on model A, stops, and starts on model B.  Every adapted
 * series' stored adapter corrects A's forecasts, so each starts again from
 * the base adapter as a new version that names both models (reason
 * 'reset', audit 'reset' triggered by 'model'), made under B; a series
 * still on version 0, the base adapter of every model, is left alone.  The
 * state topic's records of A are refused as before, and `driftcast
 * rollback` to one of A's adapted versions is refused with the reason.  A
 * third start on B changes nothing.  dc_run in this process against
 * librdkafka's mock cluster.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "tests/daemon/mockrun.h"
#include "tests/testutil.h"

#define SERIES 3
#define GROUP  "model-change"

struct world {
	struct mr_world mr;
	int64_t want; /* messages to consume in this run */
	int64_t t0;
};

static bool tick(void *user, const struct dc_run_stats *st)
{
	struct world *w = user;
	if ((int64_t)(st->messages + st->skipped_replay) >= w->want)
		return true;
	return mr_waited(&w->t0, 60000); /* give up: asserted below */
}

static struct dc_run_stats run(struct world *w, const char *model_set)
{
	const char *sets[] = {w->mr.s_brokers,
			      w->mr.s_db,
			      model_set,
			      "kafka.group=" GROUP,
			      "kafka.state_topic=driftcast-state",
			      "kafka.deadletter_topic=deadletter",
			      "kafka.commit_interval_ms=100",
			      "kafka.session_timeout_ms=6000",
			      "storage.batch_ms=50",
			      "metrics.listen=off",
			      "model.lookback=16",
			      "model.horizon=4",
			      "log.level=error"};
	struct dc_run_options o = {.sets = sets,
				   .nsets = sizeof(sets) / sizeof(sets[0]),
				   .tick = tick,
				   .user = w};
	struct dc_run_stats st;
	w->t0 = 0;
	cr_assert_eq(dc_run(&o, &st), 0);
	cr_assert_geq((int64_t)(st.messages + st.skipped_replay), w->want,
		      "%llu of %lld messages consumed",
		      (unsigned long long)st.messages, (long long)w->want);
	return st;
}

Test(model_change, a_new_model_starts_adapted_series_from_the_base_adapter,
     .timeout = 180)
{
	struct world w = {0};
	char err[512], model_b[160], set_b[200];
	mr_start(&w.mr, 1, true);

	w.want = mr_produce_steps(&w.mr, SERIES, 0, 60);
	/* and one series too short to adapt: it stays on version 0 */
	char late[] = "late", payload[96];
	for (int t = 0; t < 5; t++, w.want++) {
		snprintf(payload, sizeof(payload),
			 "{\"series\":\"late\",\"ts\":%d,\"value\":%d}",
			 1700000000 + 3600 * t, t);
		mr_produce(&w.mr, late, payload);
	}
	cr_assert_eq(rd_kafka_flush(w.mr.producer, 30000), 0);
	struct dc_run_stats st = run(&w, w.mr.s_model);
	cr_assert_eq(st.model_resets, 0);

	sqlite3 *db = su_raw(w.mr.db);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions "
				"WHERE reason = 'reset'"),
		     0);
	/* the series whose current adapter is one A's errors made */
	long long adapted = su_int(db, "SELECT count(*) FROM series s JOIN "
				       "versions v ON v.id = "
				       "s.current_version_id WHERE v.number "
				       "> 0 AND v.adapter_len > 0");
	cr_assert_geq(adapted, 1);
	cr_assert_eq(su_int(db, "SELECT current_version FROM series "
				"WHERE key = 'late'"),
		     0);
	sqlite3_close(db);

	/* the retrained model, of the same shape */
	snprintf(model_b, sizeof(model_b), "%s/model-b.dcm", w.mr.dir);
	struct fc_model *m = tt_small_model_seed(16, 4, 43);
	cr_assert_not_null(m);
	cr_assert_eq(fc_model_save(m, model_b, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);
	snprintf(set_b, sizeof(set_b), "model.path=%s", model_b);
	w.want = mr_produce_steps(&w.mr, SERIES, 60, 70);
	st = run(&w, set_b);
	cr_assert_eq(st.model_resets, (uint64_t)adapted,
		     "%llu of %lld series reset (%llu restored, %llu states "
		     "restored, %llu refused)",
		     (unsigned long long)st.model_resets, adapted,
		     (unsigned long long)st.restored,
		     (unsigned long long)st.states_restored,
		     (unsigned long long)st.states_refused);

	db = su_raw(w.mr.db);
	/* each adapted series: one reset to the base adapter, made under B,
	 * naming A's version; its later versions descend from it */
	cr_assert_eq(su_int(db,
			    "SELECT count(DISTINCT v.series_id) FROM "
			    "versions v JOIN models m ON m.id = v.model_id "
			    "WHERE v.reason = 'reset' AND v.adapter_len = 0 "
			    "AND m.name = 'model-b.dcm' AND v.note LIKE "
			    "'base model changed: version % was made with "
			    "base model 1 (''model.dcm''), this host runs "
			    "base model 2 (''model-b.dcm'')%'"),
		     adapted);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM audit WHERE event = "
				"'reset' AND triggered_by = 'model'"),
		     adapted);
	/* the base adapter belongs to every model: nothing to reset */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions v JOIN series "
				"s ON s.id = v.series_id WHERE s.key = 'late'"),
		     1);
	/* no series' current version is one of A's adapted ones */
	cr_assert_eq(su_int(db, "SELECT count(*) FROM series s JOIN versions "
				"v ON v.id = s.current_version_id "
				"WHERE v.model_id = 1 AND v.adapter_len > 0"),
		     0);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM (SELECT series_id FROM "
				"versions WHERE reason = 'reset' GROUP BY "
				"series_id HAVING count(*) = 1)"),
		     adapted, "a series reset twice");

	/* an operator's rollback to an adapted version of A: refused */
	char key[16] = "", number[24] = "";
	su_text(db,
		"SELECT s.key FROM versions v JOIN series s ON s.id = "
		"v.series_id WHERE v.model_id = 1 AND v.adapter_len > 0 "
		"ORDER BY v.id LIMIT 1",
		key, sizeof(key));
	su_text(db,
		"SELECT v.number FROM versions v JOIN series s ON s.id = "
		"v.series_id WHERE v.model_id = 1 AND v.adapter_len > 0 "
		"ORDER BY v.id LIMIT 1",
		number, sizeof(number));
	sqlite3_close(db);
	cr_assert(*key, "no series adapted under model A");
	char *rollback[] = {"driftcast",      "rollback", "--db",
			    w.mr.db,	      "--series", key,
			    "--to-version",   number,	  "--reason",
			    "to A's adapter", NULL};
	struct run_result res;
	cr_assert_eq(tu_run(&res, rollback), 0);
	cr_assert_eq(res.status, 1, "%s%s", res.out, res.err);
	cr_assert(strstr(res.err, "was made with base model 1 ('model.dcm'), "
				  "and the series runs base model 2 "
				  "('model-b.dcm')"),
		  "%s", res.err);

	/* B again: nothing to reset */
	w.want = mr_produce_steps(&w.mr, SERIES, 70, 75);
	st = run(&w, set_b);
	cr_assert_eq(st.model_resets, 0);
	db = su_raw(w.mr.db);
	cr_assert_eq(su_int(db, "SELECT count(*) FROM versions "
				"WHERE reason = 'reset'"),
		     adapted);
	sqlite3_close(db);
	mr_stop(&w.mr);
}
