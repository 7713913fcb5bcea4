/*
 * The layout of the network's memory: which base tensors and adapter
 * tensors a config has, their shapes, names and offsets in the weight and
 * adapter blocks; their initialisation; the activation buffers of a pass
 * carved out of one block; and the effective weights of a pass (the
 * adapter merged into copies of the base tensors) with that merge's
 * backward.
 */
#include "forecast/nn_private.h"

#include <math.h>

/* ---- layout -------------------------------------------------------------- */

static const char *const tensor_names[T_COUNT] = {
    "emb.w",  "emb.b",	 "pos",	    "ln1.w",   "ln1.b",	  "qkv.w", "qkv.b",
    "proj.w", "proj.b",	 "ln2.w",   "ln2.b",   "fc1.w",	  "fc1.b", "fc2.w",
    "fc2.b",  "gru.wih", "gru.bih", "gru.whh", "gru.bhh", "lnf.w", "lnf.b",
    "head.w", "head.b",	 "rec.w",   "rec.b",
};

static const char *const atensor_names[A_COUNT] = {
    "emb.lora_a",     "emb.lora_b",	"gru.wih.lora_a", "gru.wih.lora_b",
    "gru.whh.lora_a", "gru.whh.lora_b", "q.lora_a",	  "q.lora_b",
    "v.lora_a",	      "v.lora_b",	"fc1.lora_a",	  "fc1.lora_b",
    "fc2.lora_a",     "fc2.lora_b",	"ln1.w.delta",	  "ln1.b.delta",
    "ln2.w.delta",    "ln2.b.delta",	"lnf.w.delta",	  "lnf.b.delta",
    "head.lora_a",    "head.lora_b",	"calib.scale",	  "calib.shift",
};

const char *nn_tensor_name(int kind)
{
	return kind >= 0 && kind < T_COUNT ? tensor_names[kind] : "?";
}

const char *nn_atensor_name(int kind)
{
	return kind >= 0 && kind < A_COUNT ? atensor_names[kind] : "?";
}

static int per_layer(int kind)
{
	return kind >= T_LN1_W && kind <= T_GRU_BHH;
}

static int aper_layer(int kind)
{
	return kind >= A_IH_A && kind <= A_LN2_B;
}

void nn_layout(struct nn_layout *lo, const struct fc_config *c)
{
	memset(lo, 0, sizeof(*lo));
	int gru = c->backbone == FC_BACKBONE_GRU, tf = !gru;
	int L = c->lookback, H = c->horizon, P = c->patch_len;
	int S = c->patch_stride, D = c->d_model, F = c->d_ff;
	int N = fc_config_patches(c), r = c->lora_rank;
	lo->gru = gru;
	lo->L = L, lo->H = H, lo->P = P, lo->S = S, lo->N = N, lo->D = D;
	lo->F = F, lo->NL = c->n_layers, lo->NH = c->n_heads, lo->r = r;
	int rows[T_COUNT] = {
	    [T_EMB_W] = D,
	    [T_EMB_B] = D,
	    [T_POS] = tf ? N : 0,
	    [T_LN1_W] = tf * D,
	    [T_LN1_B] = tf * D,
	    [T_QKV_W] = tf * 3 * D,
	    [T_QKV_B] = tf * 3 * D,
	    [T_PROJ_W] = tf * D,
	    [T_PROJ_B] = tf * D,
	    [T_LN2_W] = tf * D,
	    [T_LN2_B] = tf * D,
	    [T_FC1_W] = tf * F,
	    [T_FC1_B] = tf * F,
	    [T_FC2_W] = tf * D,
	    [T_FC2_B] = tf * D,
	    [T_GRU_WIH] = gru * 3 * D,
	    [T_GRU_BIH] = gru * 3 * D,
	    [T_GRU_WHH] = gru * 3 * D,
	    [T_GRU_BHH] = gru * 3 * D,
	    [T_LNF_W] = D,
	    [T_LNF_B] = D,
	    [T_HEAD_W] = H,
	    [T_HEAD_B] = H,
	    [T_REC_W] = P,
	    [T_REC_B] = P,
	};
	int cols[T_COUNT] = {
	    [T_EMB_W] = 2 * P,	[T_POS] = D,   [T_QKV_W] = D,	[T_PROJ_W] = D,
	    [T_FC1_W] = D,	[T_FC2_W] = F, [T_GRU_WIH] = D, [T_GRU_WHH] = D,
	    [T_HEAD_W] = N * D, [T_REC_W] = D,
	};
	size_t off = 0;
	for (int k = 0; k < T_COUNT; k++) {
		lo->rows[k] = rows[k];
		lo->cols[k] = cols[k] ? cols[k] : 1;
		int nl = per_layer(k) ? lo->NL : 1;
		for (int l = 0; l < nl; l++) {
			lo->off[k][l] = off;
			lo->len[k][l] = (size_t)rows[k] * (size_t)lo->cols[k];
			off += lo->len[k][l];
		}
	}
	lo->n_params = off;

	/* adapter: [r, in] and [out, r] pairs, grouped by family */
	int arows[A_COUNT] = {
	    [A_EMB_A] = r,	    [A_EMB_B] = D,	[A_IH_A] = gru * r,
	    [A_IH_B] = gru * 3 * D, [A_HH_A] = gru * r, [A_HH_B] = gru * 3 * D,
	    [A_Q_A] = tf * r,	    [A_Q_B] = tf * D,	[A_V_A] = tf * r,
	    [A_V_B] = tf * D,	    [A_FC1_A] = tf * r, [A_FC1_B] = tf * F,
	    [A_FC2_A] = tf * r,	    [A_FC2_B] = tf * D, [A_LN1_W] = tf * D,
	    [A_LN1_B] = tf * D,	    [A_LN2_W] = tf * D, [A_LN2_B] = tf * D,
	    [A_LNF_W] = D,	    [A_LNF_B] = D,	[A_HEAD_A] = r,
	    [A_HEAD_B] = H,	    [A_CAL_A] = H,	[A_CAL_C] = H,
	};
	int acols[A_COUNT] = {
	    [A_EMB_A] = 2 * P, [A_EMB_B] = r, [A_IH_A] = D,
	    [A_IH_B] = r,      [A_HH_A] = D,  [A_HH_B] = r,
	    [A_Q_A] = D,       [A_Q_B] = r,   [A_V_A] = D,
	    [A_V_B] = r,       [A_FC1_A] = D, [A_FC1_B] = r,
	    [A_FC2_A] = F,     [A_FC2_B] = r, [A_HEAD_A] = N * D,
	    [A_HEAD_B] = r,
	};
	off = 0;
	for (int fam = 0; fam < 4; fam++) {
		lo->fam_off[fam] = off;
		for (int k = 0; k < A_COUNT; k++) {
			unsigned f = k <= A_FC2_B    ? FC_ADAPT_ENC
				     : k <= A_LNF_B  ? FC_ADAPT_NORM
				     : k <= A_HEAD_B ? FC_ADAPT_HEAD
						     : FC_ADAPT_CALIB;
			if (f != 1u << fam)
				continue;
			lo->afamily[k] = f;
			lo->arows[k] = arows[k];
			lo->acols[k] = acols[k] ? acols[k] : 1;
			int nl = aper_layer(k) ? lo->NL : 1;
			for (int l = 0; l < nl; l++) {
				lo->aoff[k][l] = off;
				lo->alen[k][l] =
				    (size_t)arows[k] * (size_t)lo->acols[k];
				off += lo->alen[k][l];
			}
		}
		lo->fam_len[fam] = off - lo->fam_off[fam];
	}
	lo->n_adapter = off;
	/* merged copies: emb.w, head.w, and per layer the adapted weights */
	size_t s = lo->len[T_EMB_W][0] + lo->len[T_HEAD_W][0];
	for (int l = 0; l < lo->NL; l++)
		s += lo->len[T_GRU_WIH][l] + lo->len[T_GRU_WHH][l] +
		     lo->len[T_QKV_W][l] + lo->len[T_FC1_W][l] +
		     lo->len[T_FC2_W][l] + lo->len[T_LN1_W][l] +
		     lo->len[T_LN1_B][l] + lo->len[T_LN2_W][l] +
		     lo->len[T_LN2_B][l];
	s += lo->len[T_LNF_W][0] + lo->len[T_LNF_B][0];
	lo->scratch = s;
}

/* ---- initialisation -------------------------------------------------- */

static void fill_uniform(fc_real *p, size_t n, double bound, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (fc_real)((2.0 * nn_uniform(rng) - 1.0) * bound);
}

void nn_init_params(const struct nn_layout *lo, fc_real *p, uint64_t seed)
{
	uint64_t rng = seed ^ 0x5eed0000f00dull;
	for (int k = 0; k < T_COUNT; k++) {
		int nl = per_layer(k) ? lo->NL : 1;
		for (int l = 0; l < nl; l++) {
			fc_real *t = p + lo->off[k][l];
			size_t n = lo->len[k][l];
			switch (k) {
			case T_LN1_W:
			case T_LN2_W:
			case T_LNF_W:
				for (size_t i = 0; i < n; i++)
					t[i] = R_(1.0);
				break;
			case T_LN1_B:
			case T_LN2_B:
			case T_LNF_B:
				memset(t, 0, sizeof(fc_real) * n);
				break;
			case T_POS:
				fill_uniform(t, n, 0.02, &rng);
				break;
			case T_GRU_WIH:
			case T_GRU_BIH:
			case T_GRU_WHH:
			case T_GRU_BHH:
				fill_uniform(t, n, 1.0 / sqrt((double)lo->D),
					     &rng);
				break;
			default: {
				/* linear (PyTorch): U(-1/sqrt(in), 1/sqrt(in))
				 * for the weight and its bias */
				int wk = (k == T_EMB_B || k == T_QKV_B ||
					  k == T_PROJ_B || k == T_FC1_B ||
					  k == T_FC2_B || k == T_HEAD_B ||
					  k == T_REC_B)
					     ? k - 1
					     : k;
				fill_uniform(t, n,
					     1.0 / sqrt((double)lo->cols[wk]),
					     &rng);
			}
			}
		}
	}
}

void nn_init_adapter(const struct nn_layout *lo, fc_real *a, uint64_t seed)
{
	uint64_t rng = seed ^ 0xada97e55ull;
	memset(a, 0, sizeof(fc_real) * lo->n_adapter);
	/* LoRA A: U(-1/sqrt(in), 1/sqrt(in)); B, deltas, calibration: 0 */
	static const int akinds[] = {A_EMB_A, A_IH_A,  A_HH_A,	A_Q_A,
				     A_V_A,   A_FC1_A, A_FC2_A, A_HEAD_A};
	for (size_t i = 0; i < sizeof(akinds) / sizeof(akinds[0]); i++) {
		int k = akinds[i];
		int nl = aper_layer(k) ? lo->NL : 1;
		for (int l = 0; l < nl; l++)
			fill_uniform(a + lo->aoff[k][l], lo->alen[k][l],
				     1.0 / sqrt((double)lo->acols[k]), &rng);
	}
}

/* ---- activations ------------------------------------------------------- */

/* Every buffer of struct nn_acts with its floats per row (window): the
 * one list behind acts_carve and acts_view. */
#define ACTS_FIELDS(F)                                 \
	do {                                           \
		F(x, L);                               \
		F(m, L);                               \
		F(mu, 1);                              \
		F(sd, 1);                              \
		F(xn, L);                              \
		F(tok, N * 2 * P);                     \
		F(emb, N *D);                          \
		for (int l = 0; l < lo->NL; l++) {     \
			if (lo->gru) {                 \
				F(gi[l], N * 3 * D);   \
				F(gh[l], N * 3 * D);   \
				F(gate[l], N * 3 * D); \
				F(h[l], N *D);         \
			} else {                       \
				F(ln1[l], N *D);       \
				F(ln1_mean[l], N);     \
				F(ln1_rstd[l], N);     \
				F(qkv[l], N * 3 * D);  \
				F(att[l], NH *N *N);   \
				F(atty[l], N *D);      \
				F(res1[l], N *D);      \
				F(ln2[l], N *D);       \
				F(ln2_mean[l], N);     \
				F(ln2_rstd[l], N);     \
				F(fch[l], N *F_);      \
				F(fcg[l], N *F_);      \
				F(res2[l], N *D);      \
			}                              \
		}                                      \
		F(lnf, N *D);                          \
		F(lnf_mean, N);                        \
		F(lnf_rstd, N);                        \
		F(fc, H);                              \
		F(pred, H);                            \
		F(rec, N *P);                          \
		F(recon, L);                           \
		F(tmp, 3 * D);                         \
	} while (0)

#define ACTS_DIMS                                                        \
	size_t N = (size_t)lo->N, D = (size_t)lo->D, L = (size_t)lo->L;  \
	size_t F_ = (size_t)lo->F, H = (size_t)lo->H, P = (size_t)lo->P; \
	size_t NH = (size_t)lo->NH

size_t nn_acts_carve(struct nn_acts *a, fc_real *mem,
		     const struct nn_layout *lo, int R)
{
	size_t tot = 0, r = (size_t)R;
	ACTS_DIMS;
	memset(a, 0, sizeof(*a));
#define CARVE(field, per_row)                            \
	do {                                             \
		size_t n_ = r * (per_row);               \
		a->field = mem && n_ ? mem + tot : NULL; \
		tot += n_;                               \
	} while (0)
	ACTS_FIELDS(CARVE);
#undef CARVE
	return tot;
}

void nn_acts_view(struct nn_acts *v, const struct nn_acts *a,
		  const struct nn_layout *lo, int r0)
{
	size_t r = (size_t)r0;
	ACTS_DIMS;
	memset(v, 0, sizeof(*v));
#define VIEW(field, per_row)                                           \
	do {                                                           \
		v->field = a->field ? a->field + r * (per_row) : NULL; \
	} while (0)
	ACTS_FIELDS(VIEW);
#undef VIEW
}

/* ---- adapters merged into effective weights ---------------------------- */

/* dst [out, in] += B [out, r] @ A [r, in] (dst holds a copy of the base
 * tensor) */
static void lora_merge(fc_real *dst, const fc_real *A, const fc_real *B,
		       int out, int in, int r)
{
	nn_gemm(0, 0, out, in, r, B, r, A, in, R_(1.0), dst, in);
}

void nn_weights(struct nn_weights *w, const struct nn_layout *lo,
		const fc_real *p, const fc_real *ad, fc_real *scratch)
{
	memset(w, 0, sizeof(*w));
	for (int k = 0; k < T_COUNT; k++) {
		int nl = per_layer(k) ? lo->NL : 1;
		for (int l = 0; l < nl; l++)
			w->t[k][l] = lo->len[k][l] ? p + lo->off[k][l] : NULL;
	}
	if (!ad)
		return;
	int D = lo->D, r = lo->r;
	fc_real *s = scratch;
#define COPY(k, l)                                       \
	({                                               \
		fc_real *d_ = s;                         \
		memcpy(d_, p + lo->off[k][l],            \
		       sizeof(fc_real) * lo->len[k][l]); \
		s += lo->len[k][l];                      \
		w->t[k][l] = d_;                         \
		d_;                                      \
	})
#define AD(k, l) (ad + lo->aoff[k][l])
	fc_real *e = COPY(T_EMB_W, 0);
	lora_merge(e, AD(A_EMB_A, 0), AD(A_EMB_B, 0), D, 2 * lo->P, r);
	for (int l = 0; l < lo->NL; l++) {
		if (lo->gru) {
			e = COPY(T_GRU_WIH, l);
			lora_merge(e, AD(A_IH_A, l), AD(A_IH_B, l), 3 * D, D,
				   r);
			e = COPY(T_GRU_WHH, l);
			lora_merge(e, AD(A_HH_A, l), AD(A_HH_B, l), 3 * D, D,
				   r);
			continue;
		}
		e = COPY(T_QKV_W, l);
		lora_merge(e, AD(A_Q_A, l), AD(A_Q_B, l), D, D, r);
		lora_merge(e + (size_t)2 * D * D, AD(A_V_A, l), AD(A_V_B, l), D,
			   D, r);
		e = COPY(T_FC1_W, l);
		lora_merge(e, AD(A_FC1_A, l), AD(A_FC1_B, l), lo->F, D, r);
		e = COPY(T_FC2_W, l);
		lora_merge(e, AD(A_FC2_A, l), AD(A_FC2_B, l), D, lo->F, r);
		static const int nk[4] = {T_LN1_W, T_LN1_B, T_LN2_W, T_LN2_B};
		static const int na[4] = {A_LN1_W, A_LN1_B, A_LN2_W, A_LN2_B};
		for (int i = 0; i < 4; i++) {
			e = COPY(nk[i], l);
			for (int j = 0; j < D; j++)
				e[j] += AD(na[i], l)[j];
		}
	}
	e = COPY(T_LNF_W, 0);
	for (int j = 0; j < D; j++)
		e[j] += AD(A_LNF_W, 0)[j];
	e = COPY(T_LNF_B, 0);
	for (int j = 0; j < D; j++)
		e[j] += AD(A_LNF_B, 0)[j];
	e = COPY(T_HEAD_W, 0);
	lora_merge(e, AD(A_HEAD_A, 0), AD(A_HEAD_B, 0), lo->H, lo->N * D, r);
	w->cal_a = AD(A_CAL_A, 0);
	w->cal_c = AD(A_CAL_C, 0);
#undef COPY
#undef AD
}

/* dA [r, in] = B^T @ dW; dB [out, r] = dW @ A^T (dW [out, in] rows) */
static void lora_grad(fc_real *dA, fc_real *dB, const fc_real *dW,
		      const fc_real *A, const fc_real *B, int out, int in,
		      int r)
{
	nn_gemm(1, 0, r, in, out, B, r, dW, in, R_(0.0), dA, in);
	nn_gemm(0, 1, out, r, in, dW, in, A, in, R_(0.0), dB, r);
}

void nn_weights_backward(fc_real *gad, const fc_real *gp, const fc_real *ad,
			 const struct nn_layout *lo)
{
#define GP(k, l) (gp + lo->off[k][l])
#define GA(k, l) (gad + lo->aoff[k][l])
#define AD(k, l) (ad + lo->aoff[k][l])
	int D = lo->D, P = lo->P, H = lo->H, N = lo->N, F = lo->F;
	int r = lo->r;
	lora_grad(GA(A_EMB_A, 0), GA(A_EMB_B, 0), GP(T_EMB_W, 0),
		  AD(A_EMB_A, 0), AD(A_EMB_B, 0), D, 2 * P, r);
	for (int l = 0; l < lo->NL; l++) {
		if (lo->gru) {
			lora_grad(GA(A_IH_A, l), GA(A_IH_B, l),
				  GP(T_GRU_WIH, l), AD(A_IH_A, l),
				  AD(A_IH_B, l), 3 * D, D, r);
			lora_grad(GA(A_HH_A, l), GA(A_HH_B, l),
				  GP(T_GRU_WHH, l), AD(A_HH_A, l),
				  AD(A_HH_B, l), 3 * D, D, r);
			continue;
		}
		lora_grad(GA(A_Q_A, l), GA(A_Q_B, l), GP(T_QKV_W, l),
			  AD(A_Q_A, l), AD(A_Q_B, l), D, D, r);
		lora_grad(GA(A_V_A, l), GA(A_V_B, l),
			  GP(T_QKV_W, l) + (size_t)2 * D * D, AD(A_V_A, l),
			  AD(A_V_B, l), D, D, r);
		lora_grad(GA(A_FC1_A, l), GA(A_FC1_B, l), GP(T_FC1_W, l),
			  AD(A_FC1_A, l), AD(A_FC1_B, l), F, D, r);
		lora_grad(GA(A_FC2_A, l), GA(A_FC2_B, l), GP(T_FC2_W, l),
			  AD(A_FC2_A, l), AD(A_FC2_B, l), D, F, r);
		memcpy(GA(A_LN1_W, l), GP(T_LN1_W, l), sizeof(fc_real) * D);
		memcpy(GA(A_LN1_B, l), GP(T_LN1_B, l), sizeof(fc_real) * D);
		memcpy(GA(A_LN2_W, l), GP(T_LN2_W, l), sizeof(fc_real) * D);
		memcpy(GA(A_LN2_B, l), GP(T_LN2_B, l), sizeof(fc_real) * D);
	}
	memcpy(GA(A_LNF_W, 0), GP(T_LNF_W, 0), sizeof(fc_real) * D);
	memcpy(GA(A_LNF_B, 0), GP(T_LNF_B, 0), sizeof(fc_real) * D);
	lora_grad(GA(A_HEAD_A, 0), GA(A_HEAD_B, 0), GP(T_HEAD_W, 0),
		  AD(A_HEAD_A, 0), AD(A_HEAD_B, 0), H, N * D, r);
#undef GP
#undef GA
#undef AD
}
