/*
 * The causal evaluator's batched forecasts (ttt/eval.c): the frozen arm
 * scores, bit for bit, what the same batched kernel calls give for the
 * same windows in the same batches (the evaluator's bookkeeping: which
 * forecast is whose row and channel, the last partial batch, the order of
 * the sums); one window per pass (the engine at once, as eval worked
 * before it batched) agrees to float rounding, for the frozen arm and for
 * the adapting arms, whose decisions stay the same.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/forecast.h"
#include "tests/ttt/small_model.h"
#include "ttt/internal.h"
#include "ttt/ttt.h"

#define L 32
#define H 8

static char csv[256];
static struct fc_dataset *d;

/* 400 hourly rows, three channels with a daily cycle and a level shift. */
static void make_data(void)
{
	char err[256];
	snprintf(csv, sizeof(csv), "/tmp/dc-evalb-%d.csv", (int)getpid());
	FILE *f = fopen(csv, "w");
	cr_assert(f);
	fprintf(f, "date,a,b,c\n");
	for (int i = 0; i < 400; i++) {
		int day = 1 + i / 24, h = i % 24;
		float a = sinf((float)i * 0.2618f) + (i > 300 ? 1.5f : 0.0f);
		float b =
		    0.5f * cosf((float)i * 0.2618f) + 0.01f * (float)(i % 7);
		float c = 0.002f * (float)i + 0.3f * sinf((float)i * 0.05f);
		fprintf(f, "2021-01-%02d %02d:00:00,%.5f,%.5f,%.5f\n", day, h,
			(double)a, (double)b, (double)c);
	}
	fclose(f);
	cr_assert_eq(fc_dataset_load(csv, NULL, &d, err, sizeof(err)), 0, "%s",
		     err);
}

static void remove_data(void)
{
	fc_dataset_free(d);
	unlink(csv);
}

TestSuite(eval_batch, .init = make_data, .fini = remove_data);

static struct fc_model *model(int backbone)
{
	struct fc_config c;
	struct fc_model *m = NULL;
	char err[256];
	tt_small_config(&c, L, H);
	c.backbone = backbone;
	cr_assert_eq(fc_model_new(&c, 3, &m, err, sizeof(err)), 0, "%s", err);
	return m;
}

/* The forecasts an arm emitted, in emission order. */
struct tape {
	int n, cap;
	int64_t *ts;
	int *ch;
	float *y; /* [cap, H] */
};

static void on_tap(void *user, int arm, const struct ttt_event *ev)
{
	struct tape *t = user;
	(void)arm;
	if (ev->type != TTT_EV_FORECAST)
		return;
	cr_assert_eq(ev->horizon, H);
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->ts = realloc(t->ts, (size_t)t->cap * sizeof(*t->ts));
		t->ch = realloc(t->ch, (size_t)t->cap * sizeof(*t->ch));
		t->y = realloc(t->y, (size_t)t->cap * H * sizeof(float));
		cr_assert(t->ts && t->ch && t->y);
	}
	t->ts[t->n] = ev->ts;
	t->ch[t->n] = (int)ev->tag;
	memcpy(t->y + (size_t)t->n * H, ev->forecast, H * sizeof(float));
	t->n++;
}

static void tape_free(struct tape *t)
{
	free(t->ts);
	free(t->ch);
	free(t->y);
	memset(t, 0, sizeof(*t));
}

static void run(const struct fc_model *m, int arm, int batch,
		struct ttt_arm_result *ret, struct tape *t)
{
	struct ttt_arm_result res[TTT_ARM_COUNT];
	struct ttt_params p;
	char err[256];
	ttt_params_default(&p);
	p.every = 5; /* many adaptations in a short split */
	cr_assert_eq(ttt_eval_run_batched(m, d, FC_SPLIT_TEST, &p, 1u << arm,
					  batch, NULL, on_tap, t, res, err,
					  sizeof(err)),
		     0, "%s", err);
	*ret = res[arm];
}

/* The frozen arm batched by q against the same kernel calls made here:
 * the windows of the split in the engine's order (row by row, channel by
 * channel), q at a time through fc_forecast, scored in that order. */
static void frozen_same_batches(int backbone, int q)
{
	struct fc_model *m = model(backbone);
	struct fc_workspace *ws = NULL;
	struct ttt_arm_result r;
	struct tape t = {0};
	int C = d->n_cols, n = d->n_rows;
	int start = fc_dataset_split_start(d, FC_SPLIT_TEST, L);
	run(m, TTT_ARM_FROZEN, q, &r, &t);
	cr_assert_eq(t.n, (n - (start + L - 1)) * C, "every window forecast");

	cr_assert_eq(fc_workspace_new(m, q, &ws), 0);
	float *x = malloc((size_t)q * L * sizeof(float));
	float *y = malloc((size_t)q * H * sizeof(float));
	int *rows = malloc((size_t)q * sizeof(int));
	int *chs = malloc((size_t)q * sizeof(int));
	cr_assert(x && y && rows && chs);
	double se = 0.0, ae = 0.0;
	long scored = 0;
	int k = 0, nb = 0;
	for (int row = start + L - 1; row < n; row++)
		for (int c = 0; c < C; c++) {
			for (int i = 0; i < L; i++)
				x[(size_t)nb * L + (size_t)i] =
				    d->scaled[(size_t)(row - L + 1 + i) * C +
					      (size_t)c];
			rows[nb] = row;
			chs[nb++] = c;
			if (nb < q && !(row == n - 1 && c == C - 1))
				continue;
			cr_assert_eq(fc_forecast(m, NULL, ws, x, nb, y), 0);
			/* the forecasts of this batch, bit for bit, in order */
			for (int b = 0; b < nb; b++, k++) {
				int br = rows[b], bc = chs[b];
				const float *yb = y + (size_t)b * H;
				cr_assert_eq(t.ts[k], br, "forecast %d", k);
				cr_assert_eq(t.ch[k], bc, "forecast %d", k);
				cr_assert_eq(memcmp(t.y + (size_t)k * H, yb,
						    H * sizeof(float)),
					     0,
					     "forecast %d (row %d channel %d) "
					     "is not the batched kernel's",
					     k, br, bc);
				if (br + H > n - 1)
					continue;
				for (int h = 0; h < H; h++) {
					double diff =
					    (double)yb[h] -
					    (double)
						d->scaled[(size_t)(br + 1 + h) *
							      C +
							  (size_t)bc];
					se += diff * diff;
					ae += fabs(diff);
				}
				scored++;
			}
			nb = 0;
		}
	cr_assert_eq(k, t.n);
	cr_assert_eq(r.windows, scored);
	cr_assert_eq(
	    scored, (long)fc_dataset_split_windows(d, FC_SPLIT_TEST, L, H) * C);
	/* the same sums in the same order: the same doubles */
	cr_assert(r.mse == se / ((double)scored * H), "mse %.17g vs %.17g",
		  r.mse, se / ((double)scored * H));
	cr_assert(r.mae == ae / ((double)scored * H));
	free(x);
	free(y);
	free(rows);
	free(chs);
	tape_free(&t);
	fc_workspace_free(ws);
	fc_model_free(m);
}

Test(eval_batch, frozen_arm_scores_the_batched_kernel_bit_for_bit)
{
	/* q = 7: batches straddle rows, the last one is partial */
	frozen_same_batches(FC_BACKBONE_GRU, 7);
	frozen_same_batches(FC_BACKBONE_GRU, TTT_EVAL_BATCH);
	frozen_same_batches(FC_BACKBONE_TRANSFORMER, 7);
	frozen_same_batches(FC_BACKBONE_TRANSFORMER, TTT_EVAL_BATCH);
}

/*
 * One window per pass against batches.  Not the same arithmetic: a batch
 * of one goes through GEMV (nn_gemm's one-row path), a batch through GEMM,
 * and OpenBLAS picks GEMM's kernels by the shape, so a forecast may differ
 * in its last bits (float32: a few ulp through each layer's dot products
 * of at most a few hundred terms).  1e-5 relative per value is far above
 * that and far below any real error (a wrong window, channel or
 * calibration moves values by 1e-2 and more).  The adapting arms learn
 * from the same windows: their decisions must not change here (their
 * margins are far above rounding on this data), so the counts are equal
 * and the errors agree to 1e-6 relative.
 */
static void at_once_vs_batched(int backbone, int arm)
{
	struct fc_model *m = model(backbone);
	struct ttt_arm_result r1, rb;
	struct tape t1 = {0}, tb = {0};
	run(m, arm, 1, &r1, &t1);
	run(m, arm, TTT_EVAL_BATCH, &rb, &tb);
	cr_assert_eq(t1.n, tb.n);
	for (int k = 0; k < t1.n; k++) {
		cr_assert_eq(t1.ts[k], tb.ts[k]);
		cr_assert_eq(t1.ch[k], tb.ch[k]);
		for (int h = 0; h < H; h++) {
			float a = t1.y[(size_t)k * H + (size_t)h];
			float b = tb.y[(size_t)k * H + (size_t)h];
			cr_assert(fabsf(a - b) <= 1e-5f * (1.0f + fabsf(a)),
				  "%s %s forecast %d step %d: %.9g vs %.9g",
				  backbone ? "transformer" : "gru",
				  ttt_arm_name(arm), k, h, (double)a,
				  (double)b);
		}
	}
	cr_assert_eq(r1.windows, rb.windows);
	cr_assert(fabs(r1.mse - rb.mse) <= 1e-6 * r1.mse, "%.12g vs %.12g",
		  r1.mse, rb.mse);
	cr_assert(fabs(r1.mae - rb.mae) <= 1e-6 * r1.mae);
	cr_assert_eq(r1.stats.adaptations, rb.stats.adaptations);
	cr_assert_eq(r1.stats.accepted, rb.stats.accepted);
	cr_assert_eq(r1.stats.rejected, rb.stats.rejected);
	cr_assert_eq(r1.stats.rollbacks, rb.stats.rollbacks);
	if (arm == TTT_ARM_TTT)
		cr_assert_gt(rb.stats.accepted, 0,
			     "the arm must adapt for the test to mean "
			     "anything");
	tape_free(&t1);
	tape_free(&tb);
	fc_model_free(m);
}

Test(eval_batch, one_window_per_pass_agrees_to_rounding)
{
	for (int bb = 0; bb < 2; bb++) {
		int backbone = bb ? FC_BACKBONE_TRANSFORMER : FC_BACKBONE_GRU;
		at_once_vs_batched(backbone, TTT_ARM_FROZEN);
		at_once_vs_batched(backbone, TTT_ARM_TTT);
		at_once_vs_batched(backbone, TTT_ARM_RECON);
	}
}
