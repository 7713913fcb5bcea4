/*
 * Central finite-difference gradient checks in double precision (nn_*.c
 * compiled with -DFC_REAL_DOUBLE, names nnd_*), on small random shapes:
 * every layer's inputs and parameters, and the whole model's forecast and
 * reconstruction losses with respect to every base tensor and every
 * adapter tensor, for both backbones.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#define FC_REAL_DOUBLE
#include "forecast/nn_layers.h"

#define EPS 1e-6
#define TOL 1e-6 /* relative, with an absolute floor */

static uint64_t rng = 12345;

/* every buffer of a test, freed by the suite's fini */
static void *allocs[256];
static int n_allocs;

static void *track(void *p)
{
	cr_assert(p);
	cr_assert_lt(n_allocs, 256);
	allocs[n_allocs++] = p;
	return p;
}

static void free_all(void)
{
	while (n_allocs > 0)
		free(allocs[--n_allocs]);
}

TestSuite(gradcheck, .fini = free_all);

static void fill(double *p, size_t n, double scale)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (2.0 * nn_uniform(&rng) - 1.0) * scale;
}

static double *rnd(size_t n, double scale)
{
	double *p = track(malloc(sizeof(double) * (n ? n : 1)));
	fill(p, n, scale);
	return p;
}

static double *zeros(size_t n)
{
	return track(calloc(n ? n : 1, sizeof(double)));
}

static void expect_close(double analytic, double numeric, const char *what,
			 size_t i)
{
	double err = fabs(analytic - numeric);
	double scale = fmax(fabs(analytic), fabs(numeric));
	cr_expect(err <= TOL * fmax(scale, 1e-2) + 1e-9,
		  "%s[%zu]: analytic %.10g numeric %.10g", what, i, analytic,
		  numeric);
}

/* ---- layers: loss = sum(out * proj) for a fixed random proj ---------- */

typedef void (*fwd_fn)(void *ctx, double *out);

struct probe {
	fwd_fn f;
	void *ctx;
	double *out, *proj;
	size_t n_out;
};

static double probe_loss(struct probe *p)
{
	p->f(p->ctx, p->out);
	double s = 0;
	for (size_t i = 0; i < p->n_out; i++)
		s += p->out[i] * p->proj[i];
	return s;
}

static void check_wrt(struct probe *p, double *x, const double *grad, size_t n,
		      const char *what)
{
	size_t stride = n > 60 ? n / 60 : 1;
	for (size_t i = 0; i < n; i += stride) {
		double keep = x[i];
		x[i] = keep + EPS;
		double lp = probe_loss(p);
		x[i] = keep - EPS;
		double lm = probe_loss(p);
		x[i] = keep;
		expect_close(grad[i], (lp - lm) / (2 * EPS), what, i);
	}
}

struct lin {
	double *inp, *w, *b;
	int BT, C, OC;
};

static void lin_f(void *c, double *out)
{
	struct lin *l = c;
	nnd_linear_forward(out, l->inp, l->w, l->b, l->BT, l->C, l->OC);
}

Test(gradcheck, linear)
{
	struct lin l = {rnd(5 * 7, 1), rnd(4 * 7, 1), rnd(4, 1), 5, 7, 4};
	struct probe p = {lin_f, &l, zeros(20), rnd(20, 1), 20};
	double *di = zeros(35), *dw = zeros(28), *db = zeros(4);
	nnd_linear_backward(di, dw, db, p.proj, l.inp, l.w, 5, 7, 4);
	check_wrt(&p, l.inp, di, 35, "linear.dinp");
	check_wrt(&p, l.w, dw, 28, "linear.dw");
	check_wrt(&p, l.b, db, 4, "linear.db");
}

struct ln {
	double *inp, *w, *b, *mean, *rstd;
	int BT, C;
};

static void ln_f(void *c, double *out)
{
	struct ln *l = c;
	nnd_layernorm_forward(out, l->mean, l->rstd, l->inp, l->w, l->b, l->BT,
			      l->C);
}

Test(gradcheck, layernorm)
{
	struct ln l = {rnd(4 * 6, 2), rnd(6, 1), rnd(6, 1), zeros(4),
		       zeros(4),      4,	 6};
	struct probe p = {ln_f, &l, zeros(24), rnd(24, 1), 24};
	probe_loss(&p);
	double *di = zeros(24), *dw = zeros(6), *db = zeros(6);
	nnd_layernorm_backward(di, dw, db, p.proj, l.inp, l.w, l.mean, l.rstd,
			       4, 6);
	check_wrt(&p, l.inp, di, 24, "layernorm.dinp");
	check_wrt(&p, l.w, dw, 6, "layernorm.dw");
	check_wrt(&p, l.b, db, 6, "layernorm.db");
}

struct gl {
	double *inp;
	int n;
};

static void gelu_f(void *c, double *out)
{
	struct gl *g = c;
	nnd_gelu_forward(out, g->inp, g->n);
}

Test(gradcheck, gelu)
{
	struct gl g = {rnd(30, 3), 30};
	struct probe p = {gelu_f, &g, zeros(30), rnd(30, 1), 30};
	double *di = zeros(30);
	nnd_gelu_backward(di, g.inp, p.proj, 30);
	check_wrt(&p, g.inp, di, 30, "gelu.dinp");
}

struct at {
	double *qkv, *att;
	int B, T, C, NH;
};

static void att_f(void *c, double *out)
{
	struct at *a = c;
	nnd_attention_forward(out, a->att, a->qkv, a->B, a->T, a->C, a->NH);
}

Test(gradcheck, attention)
{
	int B = 2, T = 5, C = 6, NH = 2;
	struct at a = {rnd((size_t)B * T * 3 * C, 1),
		       zeros((size_t)B * NH * T * T),
		       B,
		       T,
		       C,
		       NH};
	size_t no = (size_t)B * T * C;
	struct probe p = {att_f, &a, zeros(no), rnd(no, 1), no};
	probe_loss(&p);
	double *dq = zeros((size_t)B * T * 3 * C);
	nnd_attention_backward(dq, p.proj, a.qkv, a.att, B, T, C, NH);
	check_wrt(&p, a.qkv, dq, (size_t)B * T * 3 * C, "attention.dqkv");
}

/* Shapes too large for the lane kernels' stack buffers take the fallback
 * (per-window GEMMs forward, scalar loops backward): T = 44 tokens of head
 * size 2 do, where the check above (T = 5) runs on the lanes. */
Test(gradcheck, attention_fallback)
{
	int B = 2, T = 44, C = 4, NH = 2;
	cr_assert(nnd_attention_uses_lanes(5, 3));
	cr_assert(!nnd_attention_uses_lanes(T, C / NH));
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
	struct at a = {rnd(nq, 1), zeros((size_t)B * NH * T * T), B, T, C, NH};
	struct probe p = {att_f, &a, zeros(no), rnd(no, 1), no};
	probe_loss(&p);
	double *dq = zeros(nq), *dset = rnd(nq, 1);
	nnd_attention_backward(dq, p.proj, a.qkv, a.att, B, T, C, NH);
	check_wrt(&p, a.qkv, dq, nq, "attention fallback.dqkv");
	/* the _set variant overwrites what was there with the same */
	nnd_attention_backward_set(dset, p.proj, a.qkv, a.att, B, T, C, NH);
	cr_assert_arr_eq(dset, dq, sizeof(double) * nq);
}

struct gr {
	double *inp, *wih, *bih, *whh, *bhh, *gi, *gh, *gate;
	int B, T, C, D;
};

static void gru_f(void *c, double *out)
{
	struct gr *g = c;
	nnd_gru_forward(out, g->gi, g->gh, g->gate, g->inp, g->wih, g->bih,
			g->whh, g->bhh, g->B, g->T, g->C, g->D);
}

/* a GRU layer of random weights and input */
static struct gr gru_case(int B, int T, int C, int D)
{
	int G = 3 * D;
	return (struct gr){rnd((size_t)B * T * C, 1),
			   rnd((size_t)G * C, 0.7),
			   rnd(G, 0.5),
			   rnd((size_t)G * D, 0.7),
			   rnd(G, 0.5),
			   zeros((size_t)B * T * G),
			   zeros((size_t)B * T * G),
			   zeros((size_t)B * T * G),
			   B,
			   T,
			   C,
			   D};
}

Test(gradcheck, gru)
{
	int B = 2, T = 4, C = 3, D = 5, G = 15;
	struct gr g = gru_case(B, T, C, D);
	size_t no = (size_t)B * T * D;
	struct probe p = {gru_f, &g, zeros(no), rnd(no, 1), no};
	probe_loss(&p);
	double *dh = zeros(no), *di = zeros((size_t)B * T * C);
	double *dwih = zeros((size_t)G * C), *dbih = zeros(G);
	double *dwhh = zeros((size_t)G * D), *dbhh = zeros(G);
	double *dgi = zeros((size_t)B * T * G), *dgh = zeros((size_t)B * T * G);
	memcpy(dh, p.proj, sizeof(double) * no);
	nnd_gru_backward(di, dwih, dbih, dwhh, dbhh, dh, dgi, dgh, g.inp, p.out,
			 g.gh, g.gate, g.wih, g.whh, B, T, C, D);
	check_wrt(&p, g.inp, di, (size_t)B * T * C, "gru.dinp");
	check_wrt(&p, g.wih, dwih, (size_t)G * C, "gru.dwih");
	check_wrt(&p, g.bih, dbih, G, "gru.dbih");
	check_wrt(&p, g.whh, dwhh, (size_t)G * D, "gru.dwhh");
	check_wrt(&p, g.bhh, dbhh, G, "gru.dbhh");
}

/* The forecast-only GRU kernel against nn_gru_forward: D a multiple of the
 * vector width (4 doubles), C not, B not a multiple of the kernel's 3
 * windows.  The same products summed in another order: in double, errors
 * of ~1e-16 relative per sum of ~C + D terms of size ~1, so 1e-12
 * catches any wrong weight, gate or row while allowing the order. */
Test(gradcheck, gru_forecast_matches_forward)
{
	int B = 7, T = 5, C = 6, D = 8;
	cr_assert(nnd_gru_fast_ok(D));
	struct gr g = gru_case(B, T, C, D);
	size_t no = (size_t)B * T * D;
	double *want = zeros(no), *got = zeros(no);
	double *pk = zeros(nnd_gru_pack_size(C, D));
	gru_f(&g, want);
	nnd_gru_pack(pk, g.wih, g.bih, g.whh, g.bhh, C, D);
	nnd_gru_forecast(got, g.inp, pk, g.bhh, B, T, C, D);
	for (size_t i = 0; i < no; i++)
		cr_assert(fabs(got[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])),
			  "h[%zu]: %.17g vs %.17g", i, got[i], want[i]);
}

/* The forecast-only linear kernel against the GEMM path in its four
 * uses: bias; residual and bias; positions (a residual of period T) and
 * bias; bias then GELU.  Rows not a multiple of the kernel's 6, two
 * blocks of 8 outputs.  Errors as above: 1e-12. */
Test(gradcheck, linear_fast_matches_gemm_path)
{
	int B = 3, T = 3, BT = B * T, C = 5, OC = 16;
	size_t no = (size_t)BT * OC;
	double *inp = rnd((size_t)BT * C, 1), *w = rnd((size_t)OC * C, 0.7);
	double *b = rnd(OC, 0.5), *res = rnd(no, 1), *pk = zeros(no);
	double *want = zeros(no), *got = zeros(no), *pre = zeros(no);
	cr_assert(nnd_linear_fast_ok(OC));
	nnd_linear_pack(pk, w, C, OC);
	for (int use = 0; use < 4; use++) {
		if (use == 0)
			nnd_linear_forward(want, inp, w, b, BT, C, OC);
		else if (use == 1)
			nnd_residual_linear_forward(want, res, inp, w, b, BT, C,
						    OC);
		else if (use == 2) /* res's first T rows as the positions */
			nnd_pos_linear_forward(want, inp, res, w, b, B, T, C,
					       OC);
		else { /* fc1 then the GELU pass that adds the bias */
			nnd_linear_forward(pre, inp, w, NULL, BT, C, OC);
			nnd_bias_gelu_forward(want, pre, b, BT, OC);
		}
		nnd_linear_fast(got, inp, pk, b,
				use == 1 || use == 2 ? res : NULL,
				use == 2 ? T : BT, use == 3, BT, C, OC);
		for (size_t i = 0; i < no; i++)
			cr_assert(fabs(got[i] - want[i]) <=
				      1e-12 * (1 + fabs(want[i])),
				  "use %d [%zu]: %.17g vs %.17g", use, i,
				  got[i], want[i]);
	}
}

/* instance normalisation -> masking and patching, with the window
 * statistics as outputs too (the de-normalisation uses them) */
struct inp {
	double *x, *m, *xn, *mu, *sd;
	int B, L, N, P, S;
};

static void inp_f(void *c, double *out)
{
	struct inp *q = c;
	size_t nt = (size_t)q->B * q->N * 2 * q->P;
	cr_assert_eq(
	    nnd_instnorm_forward(q->xn, q->mu, q->sd, q->x, q->B, q->L), 0);
	nnd_patch_forward(out, q->xn, q->m, q->B, q->L, q->N, q->P, q->S);
	memcpy(out + nt, q->mu, sizeof(double) * q->B);
	memcpy(out + nt + q->B, q->sd, sizeof(double) * q->B);
}

/* windows of values scale * U(-1, 1) + offset */
static void instnorm_case(double scale, double offset, const char *what)
{
	int B = 2, L = 20, P = 6, S = 3, N = (L - P) / S + 2;
	size_t nt = (size_t)B * N * 2 * P, no = nt + 2 * (size_t)B;
	double *x = rnd((size_t)B * L, scale);
	for (int i = 0; i < B * L; i++)
		x[i] += offset;
	struct inp q = {x,
			zeros((size_t)B * L),
			zeros((size_t)B * L),
			zeros(B),
			zeros(B),
			B,
			L,
			N,
			P,
			S};
	for (int t = 4; t < 9; t++) /* a hidden segment */
		q.m[L + t] = 1;
	q.m[L - 1] = 1; /* the last point, repeated by the padding */
	struct probe p = {inp_f, &q, zeros(no), rnd(no, 1), no};
	probe_loss(&p);
	double *dxn = zeros((size_t)B * L), *dx = zeros((size_t)B * L);
	nnd_patch_backward(dxn, p.proj, q.m, B, L, N, P, S);
	nnd_instnorm_backward(dx, dxn, p.proj + nt, p.proj + nt + B, q.x, q.xn,
			      q.mu, q.sd, B, L);
	check_wrt(&p, q.x, dx, (size_t)B * L, what);
}

Test(gradcheck, instnorm_and_patching)
{
	instnorm_case(2, 0, "instnorm+patch.dx");
	/* variance about 1e-4: the normalising deviation's eps follows the
	 * variance there (fc_norm_sd), and so does its gradient */
	instnorm_case(0.02, 5, "instnorm+patch.dx (small variance)");
}

/* ---- the whole model ----------------------------------------------- */

struct whole {
	struct nn_layout lo;
	double *p, *ad, *scratch, *y, *actmem, *gradmem, *gp, *gad;
	struct nn_acts a, g;
	int bf, br;
	double wf, wr;
};

static double whole_loss(struct whole *w)
{
	struct nn_weights ew;
	double lf, lr;
	nnd_weights(&ew, &w->lo, w->p, w->ad, w->scratch);
	cr_assert_eq(nnd_forward(&w->lo, &ew, &w->a, w->bf, w->br), 0);
	nnd_loss(&w->lo, &w->a, NULL, w->y, w->bf, w->br, w->wf, w->wr, &lf,
		 &lr);
	return w->wf * lf + w->wr * lr;
}

/* The small shapes of the whole-model checks. */
static void small_config(struct fc_config *c, int backbone)
{
	fc_config_default(c);
	c->backbone = backbone;
	c->lookback = 32;
	c->horizon = 5;
	c->patch_len = 8;
	c->patch_stride = 4;
	c->d_model = 8;
	c->n_layers = 2;
	c->n_heads = 2;
	c->d_ff = 12;
	c->lora_rank = 2;
	c->mask_seg = 5;
}

static void whole_check_config(const struct fc_config *c, double wf, double wr,
			       int with_adapter, int bf, int br)
{
	int backbone = c->backbone;
	char err[256];
	cr_assert_eq(fc_config_check(c, err, sizeof(err)), 0, "%s", err);
	struct whole w = {.bf = bf, .br = br, .wf = wf, .wr = wr};
	nnd_layout(&w.lo, c);
	int R = w.bf + w.br, L = w.lo.L;
	w.p = zeros(w.lo.n_params);
	nnd_init_params(&w.lo, w.p, 7);
	for (size_t i = 0; i < w.lo.n_params; i++) /* break symmetries */
		w.p[i] += (2.0 * nn_uniform(&rng) - 1.0) * 0.2;
	w.ad = with_adapter ? rnd(w.lo.n_adapter, 0.3) : NULL;
	w.scratch = zeros(w.lo.scratch);
	size_t na = nnd_acts_carve(&w.a, NULL, &w.lo, R);
	w.actmem = zeros(na);
	w.gradmem = zeros(na);
	nnd_acts_carve(&w.a, w.actmem, &w.lo, R);
	nnd_acts_carve(&w.g, w.gradmem, &w.lo, R);
	fill(w.a.x, (size_t)R * L, 2.0);
	for (int b = w.bf; b < R; b++) {
		float m[720]; /* the longest lookback */
		fc_mask_sample(m, L, 0.33f, 5, &rng);
		for (int t = 0; t < L; t++)
			w.a.m[(size_t)b * L + t] = m[t];
	}
	w.y = rnd((size_t)w.bf * w.lo.H, 1.5);
	w.gp = zeros(w.lo.n_params);
	w.gad = zeros(w.lo.n_adapter);

	/* analytic */
	struct nn_weights ew;
	double lf, lr;
	nnd_weights(&ew, &w.lo, w.p, w.ad, w.scratch);
	cr_assert_eq(nnd_forward(&w.lo, &ew, &w.a, w.bf, w.br), 0);
	nnd_loss(&w.lo, &w.a, &w.g, w.y, w.bf, w.br, wf, wr, &lf, &lr);
	cr_assert(lf > 0 && lr > 0);
	nnd_backward(&w.lo, &ew, w.ad, &w.a, &w.g, w.bf, w.br, w.gp,
		     w.ad ? w.gad : NULL);

	int checked = 0;
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			size_t n = w.lo.len[k][l];
			if (!n)
				continue;
			double *t = w.p + w.lo.off[k][l];
			const double *gt = w.gp + w.lo.off[k][l];
			size_t stride = n > 12 ? n / 12 : 1;
			char what[64];
			snprintf(what, sizeof(what), "%s %s[%d]",
				 backbone ? "transformer" : "gru",
				 nnd_tensor_name(k), l);
			double gnorm = 0;
			for (size_t i = 0; i < n; i++)
				gnorm += fabs(gt[i]);
			/* the other head's weights get no gradient */
			int idle = (k == T_HEAD_W || k == T_HEAD_B) ? wf == 0
				   : (k == T_REC_W || k == T_REC_B) ? wr == 0
								    : 0;
			if (idle)
				cr_expect_eq(gnorm, 0.0, "%s not idle", what);
			else
				cr_expect(gnorm > 0, "%s has no gradient",
					  what);
			for (size_t i = 0; i < n; i += stride) {
				double keep = t[i];
				t[i] = keep + EPS;
				double lp = whole_loss(&w);
				t[i] = keep - EPS;
				double lm = whole_loss(&w);
				t[i] = keep;
				expect_close(gt[i], (lp - lm) / (2 * EPS), what,
					     i);
				checked++;
			}
		}
	cr_assert_gt(checked, 100);
	if (!w.ad)
		return;
	for (int k = 0; k < A_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			size_t n = w.lo.alen[k][l];
			if (!n)
				continue;
			double *t = w.ad + w.lo.aoff[k][l];
			const double *gt = w.gad + w.lo.aoff[k][l];
			size_t stride = n > 8 ? n / 8 : 1;
			char what[64];
			snprintf(what, sizeof(what), "%s adapter %s[%d]",
				 backbone ? "transformer" : "gru",
				 nnd_atensor_name(k), l);
			for (size_t i = 0; i < n; i += stride) {
				double keep = t[i];
				t[i] = keep + EPS;
				double lp = whole_loss(&w);
				t[i] = keep - EPS;
				double lm = whole_loss(&w);
				t[i] = keep;
				expect_close(gt[i], (lp - lm) / (2 * EPS), what,
					     i);
			}
		}
}

static void whole_check_rows(int backbone, double wf, double wr,
			     int with_adapter, int bf, int br)
{
	struct fc_config c;
	small_config(&c, backbone);
	whole_check_config(&c, wf, wr, with_adapter, bf, br);
}

static void whole_check(int backbone, double wf, double wr, int with_adapter)
{
	whole_check_rows(backbone, wf, wr, with_adapter, 3, 2);
}

/* one window of each kind: the GEMV paths of batch 1 */
Test(gradcheck, gru_model_one_window_each)
{
	whole_check_rows(FC_BACKBONE_GRU, 1.0, 0.7, 1, 1, 1);
}

Test(gradcheck, transformer_model_one_window_each)
{
	whole_check_rows(FC_BACKBONE_TRANSFORMER, 1.0, 0.7, 1, 1, 1);
}

Test(gradcheck, gru_model_forecast_loss)
{
	whole_check(FC_BACKBONE_GRU, 1.0, 0.0, 1);
}

Test(gradcheck, gru_model_recon_loss)
{
	whole_check(FC_BACKBONE_GRU, 0.0, 1.0, 1);
}

Test(gradcheck, gru_model_joint_frozen)
{
	whole_check(FC_BACKBONE_GRU, 1.0, 0.7, 0);
}

Test(gradcheck, transformer_model_forecast_loss)
{
	whole_check(FC_BACKBONE_TRANSFORMER, 1.0, 0.0, 1);
}

Test(gradcheck, transformer_model_recon_loss)
{
	whole_check(FC_BACKBONE_TRANSFORMER, 0.0, 1.0, 1);
}

Test(gradcheck, transformer_model_joint_frozen)
{
	whole_check(FC_BACKBONE_TRANSFORMER, 1.0, 0.7, 0);
}

/* The whole transformer on the attention's fallback (as at lookback 256
 * with the default patches and width): N = (44 - 4) / 1 + 2 = 42 tokens of
 * head size 4, which the lane kernels' buffers do not hold. */
Test(gradcheck, transformer_model_fallback_attention)
{
	struct fc_config c;
	small_config(&c, FC_BACKBONE_TRANSFORMER);
	c.lookback = 44;
	c.patch_len = 4;
	c.patch_stride = 1;
	c.n_layers = 1;
	cr_assert_eq(fc_config_patches(&c), 42);
	cr_assert(!nnd_attention_uses_lanes(fc_config_patches(&c),
					    c.d_model / c.n_heads));
	whole_check_config(&c, 1.0, 0.7, 1, 3, 2);
}
