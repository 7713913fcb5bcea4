/*
 * The recalibration (ttt/recal.c): what a series publishes is its forecast
 * plus an affine correction fitted on the first K steps of its recent
 * forecasts as their values arrive, published while it pays on them.
 * Checked against a reference written here from the rule in recal.c's
 * comment, over a stream that rises, flips, has a short gap (interpolated
 * values, no forecast there) and a long one (positions restart); the
 * batched path gives the same corrections; a restored series starts from
 * zero; a persistent miss is corrected; and no correction reads a value
 * later than its origin.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/handover.h"
#include "ttt/ttt.h"
#include "tests/ttt/small_model.h"

#define L	32
#define H	8
#define K	4
#define FORGET	0.99f
#define RIDGE	2.0f
#define SHARE	0.5f
#define JUDGE	0.95f
#define MARGIN	0.01f
#define LATER	0.9f /* the later segment's judge: steps K..H-1, middle M */
#define M	5
#define EVERY	4 /* its evidence: every 4th origin (recal.c) */
#define MAXTS	1300
#define FLIP_AT 600 /* values rise until here, then flip by 3 every 40 */

#include "tests/ttt/shift_stream.h"

static void params(struct ttt_params *p, int recal_steps)
{
	ttt_params_default(p);
	p->recal_steps = recal_steps;
	p->recal_forget = FORGET;
	p->recal_ridge = RIDGE;
	p->recal_share = SHARE;
	p->recal_judge = JUDGE;
	p->recal_margin = MARGIN;
	p->recal_later = LATER;
}

static struct ttt_engine *engine(struct fc_model *m, int recal_steps, int batch,
				 struct ss_run *r)
{
	struct ttt_params p;
	struct ttt_engine *e;
	char err[256];
	params(&p, recal_steps);
	memset(r, 0, sizeof(*r));
	cr_assert_eq(
	    ttt_engine_new(m, &p, ss_on_event, r, &e, err, sizeof(err)), 0,
	    "%s", err);
	if (batch > 1)
		cr_assert_eq(ttt_engine_defer_forecasts(e, batch), 0);
	return e;
}

/* The reference: the slope A[ts] and offset B[ts] of the correction the
 * rule gives each origin's forecast of run `off` (the recalibration off,
 * otherwise the same engine), in double as recal.c computes them, and
 * whether it is published on the first K steps (on[ts]) and on the later
 * ones (later[ts]). */
static void reference(const struct ss_run *off, float *A, float *B, int *on,
		      int *later)
{
	static struct ss_positions ps;
	const float *y = ps.y;
	const int64_t *at = ps.at;
	double sum[5] = {0}, gain = 0, energy = 0, lgain = 0, lenergy = 0;
	const double lf = pow((double)LATER, EVERY);
	memset(&ps, 0, sizeof(ps));
	ps.last = -1;
	for (int64_t ts = 0; ts < MAXTS; ts++) {
		if (!ss_fed(ts))
			continue;
		long pos = ss_advance(&ps, off, ts);
		if (pos < 0)
			continue;
		for (int i = 0; i < 5; i++)
			sum[i] *= (double)FORGET;
		gain *= (double)JUDGE;
		energy *= (double)JUDGE;
		for (int h = 0; h < K; h++) {
			long p = pos - 1 - h;
			if (p < 0 || at[p] < 0)
				continue;
			double f = (double)off->fc[at[p]][h];
			double r = (double)y[pos] - f;
			double g = (double)A[at[p]] * f + (double)B[at[p]];
			double w = 1.0 / K;
			sum[0] += w * f * f;
			sum[1] += w * f;
			sum[2] += w;
			sum[3] += w * f * r;
			sum[4] += w * r;
			gain += r * r - (r - g) * (r - g);
			energy += r * r;
		}
		/* the value at pos is step M of the forecast made at w */
		long w = pos - M - 1;
		if (w >= 0 && w % EVERY == 0) {
			lgain *= lf;
			lenergy *= lf;
			if (at[w] >= 0) {
				double f = (double)off->fc[at[w]][M];
				double r = (double)y[pos] - f;
				double g =
				    (double)(float)((double)A[at[w]] * f +
						    (double)B[at[w]]);
				lgain += r * r - (r - g) * (r - g);
				lenergy += r * r;
			}
		}
		double a = 0, c = 0, nn = sum[2];
		if (nn > 0) {
			double mf = sum[1] / nn, mr = sum[4] / nn;
			double vf = sum[0] / nn - mf * mf;
			double cfr = sum[3] / nn - mf * mr;
			a = vf > 0 ? cfr / (vf * (1.0 + (double)RIDGE / nn))
				   : 0;
			c = mr * nn / (nn + (double)RIDGE);
			A[ts] = (float)((double)SHARE * a);
			B[ts] = (float)((double)SHARE * (c - a * mf));
		} else
			A[ts] = B[ts] = 0.0f;
		on[ts] = gain > (double)MARGIN * energy &&
			 (A[ts] != 0.0f || B[ts] != 0.0f);
		later[ts] = on[ts] && lgain > (double)MARGIN * lenergy;
	}
}

/* Every forecast is the one without the recalibration plus the reference's
 * correction where the reference publishes one; the adapter's versions
 * are the same with and without it (it learns from the model's
 * forecasts, not from what is published). */
Test(recal, published_forecast_is_the_forecast_plus_the_rule)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run off, on;
	static float A[MAXTS], B[MAXTS];
	static int pub[MAXTS], late[MAXTS];
	struct ttt_engine *e0 = engine(m, 0, 1, &off),
			  *e1 = engine(m, K, 1, &on);
	ss_feed(e0, 0, MAXTS);
	ss_feed(e1, 0, MAXTS);
	reference(&off, A, B, pub, late);
	int moved = 0, checked = 0, held = 0, first_only = 0, all = 0;
	for (int ts = 0; ts < MAXTS; ts++) {
		cr_assert_eq(off.have[ts], on.have[ts], "ts %d", ts);
		if (!on.have[ts])
			continue;
		cr_assert_eq(off.version[ts], on.version[ts], "ts %d", ts);
		for (int h = 0; h < H; h++) {
			float f = off.fc[ts][h];
			int p = h < K ? pub[ts] : late[ts];
			float want = p ? f + (A[ts] * f + B[ts]) : f;
			/* the reference's double sums in this file's order
			 * and contraction: the correction to a few ulps of
			 * the values (about 15 here) */
			cr_assert_float_eq(on.fc[ts][h], want,
					   1e-5f * (1.0f + fabsf(want)),
					   "ts %d step %d: %.9g vs %.9g", ts, h,
					   (double)on.fc[ts][h], (double)want);
		}
		moved += pub[ts];
		held += !pub[ts] && (A[ts] != 0.0f || B[ts] != 0.0f);
		first_only += pub[ts] && !late[ts];
		all += late[ts];
		checked++;
	}
	cr_log_info("%d forecasts: %d corrected (%d on every step), %d held",
		    checked, moved, all, held);
	/* not vacuous: the rule corrected a good share of the forecasts,
	 * and held back others where its corrections did not pay */
	cr_assert_gt(checked, MAXTS / 2);
	cr_assert_gt(moved, checked / 4, "%d of %d corrected", moved, checked);
	cr_assert_gt(held, 20, "%d held back", held);
	/* ... and the later judge both published the later steps and held
	 * them back where the first steps were corrected */
	cr_assert_gt(all, 20, "%d corrected on every step", all);
	cr_assert_gt(first_only, 20, "%d on the first steps only", first_only);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

/* Once the values rise, the model (normalising each lookback by its own
 * mean) forecasts below them by a persistent miss, and the correction
 * takes a good part of that error away. */
Test(recal, a_persistent_miss_is_corrected)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run off, on;
	struct ttt_engine *e0 = engine(m, 0, 1, &off),
			  *e1 = engine(m, K, 1, &on);
	ss_feed(e0, 0, MAXTS);
	ss_feed(e1, 0, MAXTS);
	double m0 = ss_mse(&off, 100, FLIP_AT), m1 = ss_mse(&on, 100, FLIP_AT);
	cr_log_info("while rising: without %.4f, with the recalibration %.4f",
		    m0, m1);
	cr_assert_lt(m1, 0.9 * m0, "%g vs %g", m1, m0);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

/* Forecasts batched (published from the flush, several of the series'
 * forecasts queued at once) get the corrections of the forecasts made at
 * once: the sums follow the forecasts in the order they were made. */
Test(recal, batched_forecasts_get_the_same_corrections)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run now, later;
	struct ttt_engine *e1 = engine(m, K, 1, &now),
			  *e2 = engine(m, K, 16, &later);
	ss_feed(e1, 0, MAXTS);
	ss_feed(e2, 0, MAXTS);
	cr_assert_eq(now.forecasts, later.forecasts);
	ss_assert_close(&now, &later, 0, MAXTS);
	ttt_engine_free(e1);
	ttt_engine_free(e2);
	fc_model_free(m);
}

/* Recent values saved without the recalibration's state (by an engine
 * with it off, or one that kept none): a series given them publishes no
 * correction until its corrections have paid again.  Its first forecasts
 * after the restore equal, bit for bit, those of the engine without the
 * recalibration that went through the same (the same arithmetic path:
 * nothing is added). */
Test(recal, recent_values_without_its_state_start_it_from_zero)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run b0, b1;
	struct ttt_engine *e0 = engine(m, 0, 1, &b0),
			  *e1 = engine(m, K, 1, &b1);
	struct tt_saved s0 = {0}, s1 = {0};
	ss_feed(e0, 0, 450);
	ss_feed(e1, 0, 450);
	/* corrected just before */
	cr_assert(memcmp(b0.fc[449], b1.fc[449], sizeof(b0.fc[449])));
	cr_assert_eq(ttt_engine_each_recent(e0, tt_save_recent, &s0), 0);
	cr_assert_eq(ttt_engine_each_recent(e1, tt_save_recent, &s1), 0);
	cr_assert(!s0.r[0].recal && s1.r[0].recal);
	s1.r[0].recal = NULL;
	cr_assert_eq(ttt_engine_restore_recent(e0, &s0.r[0]), 0);
	cr_assert_eq(ttt_engine_restore_recent(e1, &s1.r[0]), 0);
	ss_feed(e0, 450, FLIP_AT);
	ss_feed(e1, 450, FLIP_AT);
	int differ = 0;
	for (int ts = 450; ts < FLIP_AT; ts++) {
		cr_assert(b1.have[ts], "ts %d", ts);
		int eq = !memcmp(b0.fc[ts], b1.fc[ts], sizeof(b0.fc[ts]));
		if (ts <= 451)
			cr_assert(eq, "ts %d corrected after a restore", ts);
		differ += !eq;
	}
	cr_assert_gt(differ, (FLIP_AT - 450) / 2, "%d corrected", differ);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	fc_model_free(m);
}

/* Without its saved state nothing of the recalibration survives a
 * restore: a series restored publishes, bit for bit, what a new engine's
 * series given the same recent values publishes (every sum, judge, kept
 * forecast and flag starts from zero; the forecasts of the positions
 * before the restore are not scored).  The adapter's share is 0 here so that
 * what the adapter learnt before the restore, which the new engine lacks, does
 * not enter what is compared. */
Test(recal, a_restored_series_publishes_as_a_new_one)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run b1, b2;
	struct ttt_params p;
	struct ttt_engine *e1, *e2;
	char err[256];
	params(&p, K);
	p.combine_weight = 0.0f;
	memset(&b1, 0, sizeof(b1));
	memset(&b2, 0, sizeof(b2));
	cr_assert_eq(
	    ttt_engine_new(m, &p, ss_on_event, &b1, &e1, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(
	    ttt_engine_new(m, &p, ss_on_event, &b2, &e2, err, sizeof(err)), 0,
	    "%s", err);
	ss_feed(e1, 0, 450);
	struct tt_saved sv = {0};
	cr_assert_eq(ttt_engine_each_recent(e1, tt_save_recent, &sv), 0);
	cr_assert_eq(sv.n, 1);
	sv.r[0].average = NULL; /* the adapter's: not compared here */
	sv.r[0].recal = NULL;
	cr_assert_eq(ttt_engine_restore_recent(e1, &sv.r[0]), 0);
	cr_assert_eq(ttt_engine_restore_recent(e2, &sv.r[0]), 0);
	ss_feed(e1, 450, MAXTS);
	ss_feed(e2, 450, MAXTS);
	int corrected = 0;
	for (int ts = 450; ts < MAXTS; ts++) {
		cr_assert_eq(b1.have[ts], b2.have[ts], "ts %d", ts);
		cr_assert(!memcmp(b1.fc[ts], b2.fc[ts], sizeof(b1.fc[ts])),
			  "ts %d", ts);
	}
	/* not vacuous: the restored series did correct (against the same
	 * engine without the recalibration) */
	static struct ss_run b0;
	struct ttt_engine *e0;
	p.recal_steps = 0;
	memset(&b0, 0, sizeof(b0));
	cr_assert_eq(
	    ttt_engine_new(m, &p, ss_on_event, &b0, &e0, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(ttt_engine_restore_recent(e0, &sv.r[0]), 0);
	ss_feed(e0, 450, MAXTS);
	for (int ts = 450; ts < MAXTS; ts++)
		corrected += b0.have[ts] &&
			     memcmp(b0.fc[ts], b1.fc[ts], sizeof(b0.fc[ts]));
	cr_assert_gt(corrected, 100, "%d corrected", corrected);
	ttt_engine_free(e0);
	ttt_engine_free(e1);
	ttt_engine_free(e2);
	fc_model_free(m);
}

/* The recalibration is saved with the recent values: a new engine given
 * them continues it exactly -- it publishes from then on, bit for bit,
 * what the engine that never stopped publishes (the adapter's share is 0
 * so that the adapter, restored from storage in the daemon, is not what
 * is compared).  An engine with another model or another K drops the
 * state (it publishes as with none); one that no engine could have made
 * is refused and changes nothing. */
Test(recal, a_restored_series_continues_its_recalibration)
{
	struct fc_model *m = tt_small_model_ok(L, H),
			*m2 = tt_small_model_seed(L, H, 99);
	static struct ss_run a, b, c, d;
	struct ttt_params p;
	struct ttt_engine *ea, *eb, *ec, *ed;
	struct tt_saved sv = {0};
	char err[256];
	float ring[1024];
	params(&p, K);
	p.combine_weight = 0.0f;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	cr_assert_eq(ttt_engine_new(m, &p, ss_on_event, &a, &ea, err, 256), 0);
	cr_assert_eq(ttt_engine_new(m, &p, ss_on_event, &b, &eb, err, 256), 0);
	cr_assert_eq(ttt_engine_new(m, &p, ss_on_event, &c, &ec, err, 256), 0);
	ss_feed(ea, 0, MAXTS);
	ss_feed(eb, 0, 450);
	cr_assert_eq(ttt_engine_each_recent(eb, tt_save_recent, &sv), 0);
	cr_assert_eq(sv.n, 1);
	cr_assert(sv.r[0].recal);
	sv.r[0].average = NULL;
	cr_assert_eq(ttt_engine_restore_recent(ec, &sv.r[0]), 0);
	ss_feed(ec, 450, MAXTS);
	int corrected = 0;
	for (int ts = 450; ts < MAXTS; ts++) {
		cr_assert_eq(a.have[ts], c.have[ts], "ts %d", ts);
		cr_assert(!memcmp(a.fc[ts], c.fc[ts], sizeof(a.fc[ts])),
			  "ts %d", ts);
	}
	/* not vacuous: a new engine given the values without the state
	 * publishes otherwise right after the restore */
	struct ttt_recent none = sv.r[0];
	none.recal = NULL;
	memset(&d, 0, sizeof(d));
	cr_assert_eq(ttt_engine_new(m, &p, ss_on_event, &d, &ed, err, 256), 0);
	cr_assert_eq(ttt_engine_restore_recent(ed, &none), 0);
	ss_feed(ed, 450, MAXTS);
	for (int ts = 450; ts < 500; ts++)
		corrected +=
		    a.have[ts] && memcmp(a.fc[ts], d.fc[ts], sizeof(a.fc[ts]));
	cr_assert_gt(corrected, 10, "%d corrected", corrected);
	ttt_engine_free(ed);

	/* another model, another K: dropped (the same forecasts as with
	 * none), the values taken */
	for (int k = 0; k < 2; k++) {
		struct ttt_params q = p;
		struct ttt_engine *ee;
		q.recal_steps = k ? K + 1 : K;
		memset(&b, 0, sizeof(b));
		memset(&d, 0, sizeof(d));
		cr_assert_eq(ttt_engine_new(k ? m : m2, &q, ss_on_event, &b,
					    &ed, err, 256),
			     0);
		cr_assert_eq(ttt_engine_new(k ? m : m2, &q, ss_on_event, &d,
					    &ee, err, 256),
			     0);
		cr_assert_eq(ttt_engine_restore_recent(ed, &sv.r[0]), 0);
		cr_assert_eq(ttt_engine_restore_recent(ee, &none), 0);
		ss_feed(ed, 450, 600);
		ss_feed(ee, 450, 600);
		for (int ts = 450; ts < 600; ts++)
			cr_assert(!memcmp(b.fc[ts], d.fc[ts], sizeof(b.fc[ts])),
				  "model %d ts %d", k, ts);
		ttt_engine_free(ed);
		ttt_engine_free(ee);
	}

	/* a NaN among its sums (the first, after the 24-byte header that
	 * names its layout and model): refused, nothing changes */
	cr_assert_eq(ttt_engine_new(m, &p, NULL, NULL, &ed, err, 256), 0);
	const double nan = NAN;
	memcpy(sv.recal[0] + 24, &nan, sizeof(nan));
	cr_assert_eq(ttt_engine_restore_recent(ed, &sv.r[0]), -EINVAL);
	struct ttt_recent got;
	cr_assert_eq(ttt_engine_series_recent(ed, "s", ring, 1024, &got),
		     -ENOENT);
	ttt_engine_free(ed);
	ttt_engine_free(ea);
	ttt_engine_free(eb);
	ttt_engine_free(ec);
	fc_model_free(m2);
	fc_model_free(m);
}

/* Causality: the same stream with garbage from T on gives bit-identical
 * forecasts up to T (each origin's correction reads no value after it). */
Test(recal, no_correction_reads_a_later_value)
{
	struct fc_model *m = tt_small_model_ok(L, H);
	static struct ss_run a, b;
	struct ttt_engine *ea = engine(m, K, 1, &a), *eb = engine(m, K, 1, &b);
	const int64_t T = 520;
	ss_feed(ea, 0, MAXTS);
	for (int64_t ts = 0; ts < MAXTS; ts++)
		if (ss_fed(ts))
			cr_assert_eq(ttt_engine_observe(
					 eb, "s", ts,
					 ts <= T ? ss_value(ts)
						 : 1000.0f * (float)(ts % 7)),
				     0);
	cr_assert_eq(ttt_engine_flush(eb), 0);
	int moved = 0;
	for (int64_t ts = 0; ts <= T; ts++) {
		cr_assert_eq(a.have[ts], b.have[ts]);
		if (a.have[ts])
			cr_assert(!memcmp(a.fc[ts], b.fc[ts], sizeof(a.fc[ts])),
				  "ts %ld", (long)ts);
	}
	for (int64_t ts = T + 1; ts < MAXTS; ts++)
		moved += a.have[ts] && b.have[ts] &&
			 memcmp(a.fc[ts], b.fc[ts], sizeof(a.fc[ts]));
	cr_assert_gt(moved, 0); /* the garbage did reach what followed */
	ttt_engine_free(ea);
	ttt_engine_free(eb);
	fc_model_free(m);
}

/* As the level correction's: recent values restored while forecasts of the
 * series wait in the batch reset the recalibration after they are
 * published (without the flush they would reach the fresh sums). */
Test(recal, a_restore_with_forecasts_queued_starts_from_zero_too)
{
	struct ttt_params p;
	params(&p, K);
	ss_restore_with_queue(&p);
}
