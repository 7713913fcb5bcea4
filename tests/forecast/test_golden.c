/*
 * Golden test against PyTorch (the second, independent gradient oracle):
 * tests/golden/golden.bin holds, for both backbones, weights, a non-identity
 * adapter, inputs, and PyTorch's outputs, losses and the gradient of the
 * joint loss for every base and adapter tensor (computed in float64 by
 * tests/golden/gen_golden.py; see there how to regenerate).  This test
 * loads them into a model and compares the float build's forward pass and
 * gradients, without needing torch.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/internal.h"

struct rec {
	char name[33];
	uint32_t n;
	float *v;
};

static struct rec recs[512];
static int n_recs;

static void load(void)
{
	char path[2048];
	const char *root = getenv("SOURCE_ROOT");
	snprintf(path, sizeof(path), "%s/tests/golden/golden.bin",
		 root ? root : ".");
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	unsigned char hdr[36];
	while (fread(hdr, 1, 36, f) == 36) {
		cr_assert_lt(n_recs, 512);
		struct rec *r = &recs[n_recs++];
		memcpy(r->name, hdr, 32);
		r->name[32] = '\0';
		r->n = (uint32_t)hdr[32] | (uint32_t)hdr[33] << 8 |
		       (uint32_t)hdr[34] << 16 | (uint32_t)hdr[35] << 24;
		r->v = malloc(sizeof(float) * (r->n ? r->n : 1));
		cr_assert(r->v);
		cr_assert_eq(fread(r->v, sizeof(float), r->n, f), r->n);
	}
	fclose(f);
	cr_assert_gt(n_recs, 50);
}

static void unload(void)
{
	while (n_recs > 0)
		free(recs[--n_recs].v);
}

TestSuite(golden, .init = load, .fini = unload);

static const struct rec *get(const char *bb, const char *what)
{
	char name[64];
	snprintf(name, sizeof(name), "%s/%s", bb, what);
	for (int i = 0; i < n_recs; i++)
		if (!strcmp(recs[i].name, name))
			return &recs[i];
	cr_assert_fail("golden.bin has no %s", name);
	return NULL;
}

/* relative L2 error of a against the reference r */
static double rel_err(const float *a, const float *r, size_t n)
{
	double d = 0, s = 0;
	for (size_t i = 0; i < n; i++) {
		d += ((double)a[i] - (double)r[i]) *
		     ((double)a[i] - (double)r[i]);
		s += (double)r[i] * (double)r[i];
	}
	return sqrt(d) / (sqrt(s) + 1e-12);
}

static void tensor_name(char *buf, size_t n, const char *base, int per_layer,
			int l)
{
	if (per_layer)
		snprintf(buf, n, "%s.%d", base, l);
	else
		snprintf(buf, n, "%s", base);
}

static void golden(const char *bb, int backbone)
{
	const struct rec *cf = get(bb, "config");
	cr_assert_eq(cf->n, 13);
	struct fc_config c;
	fc_config_default(&c);
	c.backbone = backbone;
	c.lookback = (int)cf->v[0];
	c.horizon = (int)cf->v[1];
	c.patch_len = (int)cf->v[2];
	c.patch_stride = (int)cf->v[3];
	c.d_model = (int)cf->v[4];
	c.n_layers = (int)cf->v[5];
	c.n_heads = (int)cf->v[6];
	c.d_ff = (int)cf->v[7];
	c.lora_rank = (int)cf->v[8];
	c.mask_seg = 4;
	int bf = (int)cf->v[9], br = (int)cf->v[10];
	float wf = cf->v[11], wr = cf->v[12];
	struct fc_model *m;
	struct fc_workspace *ws;
	char err[256], name[64];
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_workspace_new(m, bf + br, &ws), 0);
	const struct nn_layout *lo = &m->lo;
	float *ad = calloc(lo->n_adapter, sizeof(float));
	cr_assert(ad);

	/* weights and adapter from the file, every tensor accounted for */
	size_t filled = 0, afilled = 0;
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			if (!lo->len[k][l])
				continue;
			char what[96];
			tensor_name(name, sizeof(name), nn_tensor_name(k),
				    k >= T_LN1_W && k <= T_GRU_BHH, l);
			snprintf(what, sizeof(what), "w/%s", name);
			const struct rec *r = get(bb, what);
			cr_assert_eq(r->n, lo->len[k][l], "%s", what);
			memcpy(m->params + lo->off[k][l], r->v,
			       sizeof(float) * r->n);
			filled += r->n;
		}
	cr_assert_eq(filled, lo->n_params);
	for (int k = 0; k < A_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			if (!lo->alen[k][l])
				continue;
			char what[96];
			tensor_name(name, sizeof(name), nn_atensor_name(k),
				    k >= A_IH_A && k <= A_LN2_B, l);
			snprintf(what, sizeof(what), "a/%s", name);
			const struct rec *r = get(bb, what);
			cr_assert_eq(r->n, lo->alen[k][l], "%s", what);
			memcpy(ad + lo->aoff[k][l], r->v, sizeof(float) * r->n);
			afilled += r->n;
		}
	cr_assert_eq(afilled, lo->n_adapter);

	const struct rec *x = get(bb, "x"), *mk = get(bb, "mask");
	const struct rec *y = get(bb, "y");
	int L = c.lookback;
	struct fc_batch b = {
	    x->v, y->v, bf, x->v + (size_t)bf * L, mk->v + (size_t)bf * L,
	    br,	  wf,	wr};
	struct fc_loss loss;
	cr_assert_eq(fc_pass(m, m->params, ad, ws, &b, 1, &loss), 0);

	/* float32 here, float64 in the reference: a few ulps (6e-8) per
	 * operation over a dozen layers give ~1e-6 relative on outputs and
	 * losses (1e-5 allowed), more on gradients, which sum over the batch
	 * and pass back through every layer (1e-4, as a norm ratio); a wrong
	 * formula is off by 1e-2 or more */
	const struct rec *lref = get(bb, "loss");
	cr_expect_float_eq(loss.forecast, lref->v[0], 1e-5f * lref->v[0],
			   "%s forecast loss %g vs %g", bb,
			   (double)loss.forecast, (double)lref->v[0]);
	cr_expect_float_eq(loss.recon, lref->v[1], 1e-5f * lref->v[1],
			   "%s recon loss %g vs %g", bb, (double)loss.recon,
			   (double)lref->v[1]);
	const struct rec *pred = get(bb, "pred"), *recon = get(bb, "recon");
	cr_expect_lt(rel_err(ws->a.pred, pred->v, pred->n), 1e-5, "%s forecast",
		     bb);
	cr_expect_lt(rel_err(ws->a.recon + (size_t)bf * L, recon->v, recon->n),
		     1e-5, "%s reconstruction", bb);

	int checked = 0;
	for (int k = 0; k < T_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			if (!lo->len[k][l])
				continue;
			char what[96];
			tensor_name(name, sizeof(name), nn_tensor_name(k),
				    k >= T_LN1_W && k <= T_GRU_BHH, l);
			snprintf(what, sizeof(what), "g/%s", name);
			const struct rec *r = get(bb, what);
			double e = rel_err(ws->gp + lo->off[k][l], r->v, r->n);
			cr_expect_lt(e, 1e-4, "%s %s: relative error %g", bb,
				     what, e);
			checked++;
		}
	for (int k = 0; k < A_COUNT; k++)
		for (int l = 0; l < FC_MAX_LAYERS; l++) {
			if (!lo->alen[k][l])
				continue;
			char what[96];
			tensor_name(name, sizeof(name), nn_atensor_name(k),
				    k >= A_IH_A && k <= A_LN2_B, l);
			snprintf(what, sizeof(what), "ga/%s", name);
			const struct rec *r = get(bb, what);
			double e =
			    rel_err(ws->gad + lo->aoff[k][l], r->v, r->n);
			cr_expect_lt(e, 1e-4, "%s %s: relative error %g", bb,
				     what, e);
			checked++;
		}
	cr_assert_gt(checked, 20);
	free(ad);
	fc_workspace_free(ws);
	fc_model_free(m);
}

Test(golden, gru_matches_pytorch)
{
	golden("gru", FC_BACKBONE_GRU);
}

Test(golden, transformer_matches_pytorch)
{
	golden("transformer", FC_BACKBONE_TRANSFORMER);
}
