/*
 * The whole model over a pass of R windows: forward, the losses, and
 * backward, which calls the layers' backward kernels in the reverse order
 * of forward.  Forward of a window x [L] (raw values):
 *   instance normalisation (the window's mean and std) -> optional mask
 *   (hidden points get value 0, indicator 1) -> patches [N, 2P] (values
 *   and mask indicators; the lookback padded with S copies of its last
 *   value) -> embedding 2P -> D (+ learned positions, transformer) -> GRU
 *   layers, or pre-LayerNorm transformer encoder layers -> final
 *   LayerNorm -> two heads:
 *     forecast: flatten [N * D] -> H -> calibration -> de-normalise;
 *     recon:    per token D -> P, overlapping patches averaged back onto
 *               the L points (normalised space).
 * The rows are processed in chunks of a few windows so that activations
 * stay in cache between a layer and the next.
 */
#include "forecast/nn_private.h"

#include <errno.h>

#define W(k, l)	 (w->t[k][l])
#define GP(k, l) (gp + lo->off[k][l])
#define GA(k, l) (gad + lo->aoff[k][l])

/* Windows per chunk of a pass: the transformer runs its layers over a few
 * windows at a time so that their activations stay in L2 between a GEMM
 * and the elementwise pass after it; the GRU keeps large chunks (its
 * recurrence is one GEMM per step over the chunk's windows, which wants
 * many rows). */
static int chunk_windows(const struct nn_layout *lo)
{
	if (lo->gru) /* measured: 128 beats 32, 64 and 256 */
		return 128;
	int per = lo->N * (3 * lo->D + lo->F) * (int)sizeof(fc_real);
	int c = (512 << 10) / (per > 0 ? per : 1);
	c &= ~7; /* whole groups of the attention's lanes */
	return c < 8 ? 8 : c > 64 ? 64 : c;
}

/* Windows from which a forecast-only pass runs the fused kernels
 * (nn_fused.c) over weights packed once per pass; below, the packing
 * would cost more than it saves, and one window keeps its GEMV path. */
#define FUSED_MIN 16

/* The packed weights of a forecast-only pass, or on = 0 (GEMM path). */
struct fused {
	int on;
	const fc_real *gru[FC_MAX_LAYERS]; /* nn_gru_pack */
	/* nn_linear_pack, transformer */
	const fc_real *emb, *qkv[FC_MAX_LAYERS], *proj[FC_MAX_LAYERS];
	const fc_real *fc1[FC_MAX_LAYERS], *fc2[FC_MAX_LAYERS];
};

static int fused_ok(const struct nn_layout *lo)
{
	if (lo->gru)
		return nn_gru_fast_ok(lo->D);
	return nn_linear_fast_ok(3 * lo->D) && nn_linear_fast_ok(lo->D) &&
	       nn_linear_fast_ok(lo->F);
}

size_t nn_forecast_scratch(const struct nn_layout *lo)
{
	size_t D = (size_t)lo->D, P2 = 2 * (size_t)lo->P, F = (size_t)lo->F;
	size_t NL = (size_t)lo->NL;
	if (lo->gru) /* the fold of layer 0, then each layer's pack */
		return 3 * D * (P2 + 1) + nn_gru_pack_size((int)P2, lo->D) +
		       (NL - 1) * nn_gru_pack_size(lo->D, lo->D);
	return D * P2 + NL * (3 * D * D + D * D + 2 * F * D);
}

/* The GRU's layer 0 takes the embedding folded into its input weights, as
 * nothing nonlinear sits between them: wih (emb_w tok + emb_b) + bih =
 * (wih emb_w) tok + (wih emb_b + bih), 2P wide instead of D (less than
 * half the products of both). */
static void fused_gru(struct fused *f, const struct nn_layout *lo,
		      const struct nn_weights *w, fc_real *pk)
{
	int D = lo->D, P2 = 2 * lo->P, G = 3 * D;
	fc_real *wf = pk, *bf = wf + (size_t)G * P2;
	const fc_real *wih = W(T_GRU_WIH, 0), *eb = W(T_EMB_B, 0);
	nn_gemm(0, 0, G, P2, D, wih, D, W(T_EMB_W, 0), P2, R_(0.0), wf, P2);
	for (int u = 0; u < G; u++) {
		double s = (double)W(T_GRU_BIH, 0)[u];
		for (int d = 0; d < D; d++)
			s += (double)wih[(size_t)u * D + d] * (double)eb[d];
		bf[u] = (fc_real)s;
	}
	pk = bf + G;
	for (int l = 0; l < lo->NL; l++) {
		int C = l ? D : P2;
		nn_gru_pack(pk, l ? W(T_GRU_WIH, l) : wf,
			    l ? W(T_GRU_BIH, l) : bf, W(T_GRU_WHH, l),
			    W(T_GRU_BHH, l), C, D);
		f->gru[l] = pk;
		pk += nn_gru_pack_size(C, D);
	}
}

static void fused_transformer(struct fused *f, const struct nn_layout *lo,
			      const struct nn_weights *w, fc_real *pk)
{
	int D = lo->D, F = lo->F;
	nn_linear_pack(pk, W(T_EMB_W, 0), 2 * lo->P, D);
	f->emb = pk;
	pk += (size_t)D * 2 * lo->P;
	for (int l = 0; l < lo->NL; l++) {
		nn_linear_pack(pk, W(T_QKV_W, l), D, 3 * D);
		f->qkv[l] = pk;
		pk += (size_t)3 * D * D;
		nn_linear_pack(pk, W(T_PROJ_W, l), D, D);
		f->proj[l] = pk;
		pk += (size_t)D * D;
		nn_linear_pack(pk, W(T_FC1_W, l), D, F);
		f->fc1[l] = pk;
		pk += (size_t)F * D;
		nn_linear_pack(pk, W(T_FC2_W, l), F, D);
		f->fc2[l] = pk;
		pk += (size_t)D * F;
	}
}

/* Packs a forecast pass's weights into pk [npk] when the fused kernels
 * apply to its b rows. */
static void fused_prepare(struct fused *f, const struct nn_layout *lo,
			  const struct nn_weights *w, int b, fc_real *pk,
			  size_t npk)
{
	memset(f, 0, sizeof(*f));
	if (b < FUSED_MIN || !pk || npk < nn_forecast_scratch(lo) ||
	    !fused_ok(lo))
		return;
	if (lo->gru)
		fused_gru(f, lo, w, pk);
	else
		fused_transformer(f, lo, w, pk);
	f->on = 1;
}

/* Forecast head of rows [0, bf) of a (views at the first row):
 * fc = head(lnf), pred = calibrated and de-normalised fc. */
static void forecast_head(const struct nn_layout *lo,
			  const struct nn_weights *w, struct nn_acts *a, int bf)
{
	int N = lo->N, D = lo->D, H = lo->H;
	nn_linear_forward(a->fc, a->lnf, W(T_HEAD_W, 0), W(T_HEAD_B, 0), bf,
			  N * D, H);
	for (int b = 0; b < bf; b++) {
		const fc_real *ca = w->cal_a, *cc = w->cal_c;
		if (w->cal_row) {
			ca = w->cal_row[b];
			cc = ca ? ca + H : NULL;
		}
		for (int j = 0; j < H; j++) {
			fc_real y = a->fc[(size_t)b * H + j];
			if (ca)
				y = (R_(1.0) + ca[j]) * y + cc[j];
			a->pred[(size_t)b * H + j] = y * a->sd[b] + a->mu[b];
		}
	}
}

/* One pre-LayerNorm transformer encoder layer l over RN = R * N rows of
 * tokens: res2 = res1 + fc2(gelu(fc1(ln2(res1)))), res1 = cur +
 * proj(attention(qkv(ln1(cur)))).  keep: a backward follows. */
static void transformer_layer_forward(const struct nn_layout *lo,
				      const struct nn_weights *w,
				      struct nn_acts *a, int l,
				      const fc_real *cur, int R, int keep,
				      const struct fused *f)
{
	int N = lo->N, D = lo->D, F = lo->F, RN = R * N;
	nn_layernorm_forward(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], cur,
			     W(T_LN1_W, l), W(T_LN1_B, l), RN, D);
	if (f->on) { /* the same layer through the fused kernels */
		nn_linear_fast(a->qkv[l], a->ln1[l], f->qkv[l], W(T_QKV_B, l),
			       NULL, 0, 0, RN, D, 3 * D);
		nn_attention_forward(a->atty[l], a->att[l], a->qkv[l], R, N, D,
				     lo->NH);
		nn_linear_fast(a->res1[l], a->atty[l], f->proj[l],
			       W(T_PROJ_B, l), cur, RN, 0, RN, D, D);
		nn_layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l],
				     a->res1[l], W(T_LN2_W, l), W(T_LN2_B, l),
				     RN, D);
		nn_linear_fast(a->fcg[l], a->ln2[l], f->fc1[l], W(T_FC1_B, l),
			       NULL, 0, 1, RN, D, F);
		nn_linear_fast(a->res2[l], a->fcg[l], f->fc2[l], W(T_FC2_B, l),
			       a->res1[l], RN, 0, RN, F, D);
		return;
	}
	nn_linear_forward(a->qkv[l], a->ln1[l], W(T_QKV_W, l), W(T_QKV_B, l),
			  RN, D, 3 * D);
	nn_attention_forward(a->atty[l], a->att[l], a->qkv[l], R, N, D, lo->NH);
	nn_residual_linear_forward(a->res1[l], cur, a->atty[l], W(T_PROJ_W, l),
				   W(T_PROJ_B, l), RN, D, D);
	nn_layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l],
			     a->res1[l], W(T_LN2_W, l), W(T_LN2_B, l), RN, D);
	/* fc1 without its bias, which the GELU pass adds */
	nn_linear_forward(a->fch[l], a->ln2[l], W(T_FC1_W, l), NULL, RN, D, F);
	if (keep) /* a->fch becomes a->dgelu */
		nn_bias_gelu_forward_train(a->fcg[l], a->fch[l], W(T_FC1_B, l),
					   RN, F);
	else
		nn_bias_gelu_forward(a->fcg[l], a->fch[l], W(T_FC1_B, l), RN,
				     F);
	nn_residual_linear_forward(a->res2[l], a->res1[l], a->fcg[l],
				   W(T_FC2_W, l), W(T_FC2_B, l), RN, F, D);
}

/* Forward of the rows of one chunk: bf forecast rows, then br recon rows,
 * a and w->cal_row are views at the chunk's first row.  keep: a backward
 * may follow (the activations are kept, a->dgelu replaces a->fch, and the
 * caller runs the forecast head over all chunks at once).  f: the fused
 * kernels' weights, if f->on.  head_later: the caller runs the head (keep
 * implies it). */
static int forward_rows(const struct nn_layout *lo, const struct nn_weights *w,
			struct nn_acts *a, int bf, int br, int keep,
			const struct fused *f, int head_later)
{
	int R = bf + br, L = lo->L, N = lo->N, D = lo->D, P = lo->P;
	int S = lo->S, RN = R * N;
	if (nn_instnorm_forward(a->xn, a->mu, a->sd, a->x, R, L) < 0)
		return -EINVAL;
	nn_patch_forward(a->tok, a->xn, a->m, R, L, N, P, S);
	const fc_real *cur = a->emb;
	int fused_gru = f->on && lo->gru;
	if (fused_gru) {
		int C = 2 * P; /* layer 0 reads the tokens: the fold */
		for (int l = 0; l < lo->NL; l++) {
			nn_gru_forecast(a->h[l], l ? a->h[l - 1] : a->tok,
					f->gru[l], W(T_GRU_BHH, l), R, N, C, D);
			C = D;
		}
		cur = a->h[lo->NL - 1];
	} else if (lo->gru)
		nn_linear_forward(a->emb, a->tok, W(T_EMB_W, 0), W(T_EMB_B, 0),
				  RN, 2 * P, D);
	else if (f->on) /* the positions as a residual of period N */
		nn_linear_fast(a->emb, a->tok, f->emb, W(T_EMB_B, 0),
			       W(T_POS, 0), N, 0, RN, 2 * P, D);
	else
		nn_pos_linear_forward(a->emb, a->tok, W(T_POS, 0),
				      W(T_EMB_W, 0), W(T_EMB_B, 0), R, N, 2 * P,
				      D);
	for (int l = 0; l < lo->NL && !fused_gru; l++) {
		if (lo->gru) {
			nn_gru_forward(a->h[l], a->gi[l], a->gh[l], a->gate[l],
				       cur, W(T_GRU_WIH, l), W(T_GRU_BIH, l),
				       W(T_GRU_WHH, l), W(T_GRU_BHH, l), R, N,
				       D, D);
			cur = a->h[l];
		} else {
			transformer_layer_forward(lo, w, a, l, cur, R, keep, f);
			cur = a->res2[l];
		}
	}
	nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, cur,
			     W(T_LNF_W, 0), W(T_LNF_B, 0), RN, D);
	/* forecast head on rows [0, bf), unless the caller runs it over
	 * all chunks' forecast rows at once */
	if (bf > 0 && !keep && !head_later)
		forecast_head(lo, w, a, bf);
	/* reconstruction head on rows [bf, R) */
	if (br > 0) {
		size_t o = (size_t)bf * N;
		nn_linear_forward(a->rec + o * P, a->lnf + o * D, W(T_REC_W, 0),
				  W(T_REC_B, 0), br * N, D, P);
		nn_unpatch_forward(a->recon + (size_t)bf * L, a->rec + o * P,
				   br, L, N, P, S);
	}
	return 0;
}

/* The rows [c0, c0 + nr) of a pass with bf forecast rows: how many of
 * them are forecast rows. */
static int chunk_forecast_rows(int c0, int nr, int bf)
{
	int nf = bf - c0;
	return nf < 0 ? 0 : nf > nr ? nr : nf;
}

/* Forward in chunks; keep = 0 (forecast only): every chunk's activations
 * overwrite the first chunk's, which stay in cache, and only the per-row
 * results (pred, fc, mu, sd) land at their rows. */
static int forward_chunks(const struct nn_layout *lo,
			  const struct nn_weights *w, struct nn_acts *a, int bf,
			  int br, int keep, fc_real *pk, size_t npk)
{
	int R = bf + br, cw = chunk_windows(lo);
	struct fused f;
	fused_prepare(&f, lo, w, keep || br ? 0 : bf, pk, npk);
	/* a forecast pass of several chunks runs the head once too, from
	 * lnf at the chunks' rows: the head's weights (H x N D, the largest
	 * tensor) are packed once instead of per chunk, and its GEMM has
	 * all rows */
	int head_later = keep || (bf > cw && br == 0);
	for (int c0 = 0; c0 < R; c0 += cw) {
		int nr = R - c0 < cw ? R - c0 : cw;
		int nf = chunk_forecast_rows(c0, nr, bf);
		struct nn_acts v;
		struct nn_weights wc = *w;
		nn_acts_view(&v, a, lo, keep ? c0 : 0);
		if (!keep) {
			size_t r0 = (size_t)c0;
			v.x = a->x + r0 * lo->L;
			v.m = a->m + r0 * lo->L;
			v.mu = a->mu + r0;
			v.sd = a->sd + r0;
			v.fc = a->fc + r0 * lo->H;
			v.pred = a->pred + r0 * lo->H;
			if (head_later)
				v.lnf = a->lnf + r0 * lo->N * lo->D;
		}
		if (w->cal_row && nf > 0)
			wc.cal_row = w->cal_row + c0;
		int r = forward_rows(lo, &wc, &v, nf, nr - nf, keep, &f,
				     head_later);
		if (r < 0)
			return r;
	}
	/* with the activations kept, the head runs once over all forecast
	 * rows: one GEMM that packs the head's weights once */
	if (head_later && bf > 0)
		forecast_head(lo, w, a, bf);
	return 0;
}

int nn_forward(const struct nn_layout *lo, const struct nn_weights *w,
	       struct nn_acts *a, int bf, int br)
{
	return forward_chunks(lo, w, a, bf, br, 1, NULL, 0);
}

int nn_forecast(const struct nn_layout *lo, const struct nn_weights *w,
		struct nn_acts *a, int b, fc_real *pk, size_t npk)
{
	return forward_chunks(lo, w, a, b, 0, 0, pk, npk);
}

void nn_loss(const struct nn_layout *lo, const struct nn_acts *a,
	     struct nn_acts *g, const fc_real *y, int bf, int br, fc_real wf,
	     fc_real wr, fc_real *ret_lf, fc_real *ret_lr)
{
	int H = lo->H, L = lo->L;
	double lf = 0, lr = 0, cnt = 0;
	for (size_t i = 0; i < (size_t)bf * H; i++) {
		double e = (double)a->pred[i] - (double)y[i];
		lf += e * e;
	}
	if (bf > 0)
		lf /= (double)bf * H;
	for (int b = bf; b < bf + br; b++)
		for (int t = 0; t < L; t++) {
			size_t i = (size_t)b * L + t;
			if (a->m[i] != R_(0.0)) {
				double e =
				    (double)a->recon[i] - (double)a->xn[i];
				lr += e * e;
				cnt += 1;
			}
		}
	if (cnt > 0)
		lr /= cnt;
	if (g) {
		fc_real sf = bf > 0 ? (fc_real)(2.0 / ((double)bf * H)) : 0;
		for (size_t i = 0; i < (size_t)bf * H; i++)
			g->pred[i] = wf * sf * (a->pred[i] - y[i]);
		fc_real sr = cnt > 0 ? (fc_real)(2.0 / cnt) : 0;
		for (int b = bf; b < bf + br; b++)
			for (int t = 0; t < L; t++) {
				size_t i = (size_t)b * L + t;
				g->recon[i] =
				    a->m[i] != R_(0.0)
					? wr * sr * (a->recon[i] - a->xn[i])
					: R_(0.0);
			}
	}
	*ret_lf = (fc_real)lf;
	*ret_lr = (fc_real)lr;
}

/* Backward of forecast_head over rows [0, bf) (all chunks at once):
 * writes g->lnf of those rows, adds into gp and, for the calibration,
 * gad. */
static void forecast_head_backward(const struct nn_layout *lo,
				   const struct nn_weights *w,
				   const struct nn_acts *a, struct nn_acts *g,
				   int bf, fc_real *gp, fc_real *gad)
{
	int N = lo->N, D = lo->D, H = lo->H;
	for (int b = 0; b < bf; b++)
		for (int j = 0; j < H; j++) {
			size_t i = (size_t)b * H + j;
			fc_real dy = g->pred[i] * a->sd[b];
			if (w->cal_a) {
				if (gad) {
					GA(A_CAL_A, 0)[j] += dy * a->fc[i];
					GA(A_CAL_C, 0)[j] += dy;
				}
				dy *= R_(1.0) + w->cal_a[j];
			}
			g->fc[i] = dy;
		}
	nn_linear_backward_set(g->lnf, GP(T_HEAD_W, 0), GP(T_HEAD_B, 0), g->fc,
			       a->lnf, W(T_HEAD_W, 0), bf, N * D, H);
}

/* Backward of transformer_layer_forward, its calls in reverse order.
 * dres holds dL/dres2 and becomes dL/dcur in place: the residuals'
 * gradients are not copied (dres2 itself is dres1's start, and
 * LayerNorm's backward adds into it), so one buffer serves every layer.
 * in is the layer's input (cur). */
static void transformer_layer_backward(const struct nn_layout *lo,
				       const struct nn_weights *w,
				       const struct nn_acts *a,
				       struct nn_acts *g, int l,
				       const fc_real *in, fc_real *dres, int R,
				       fc_real *gp)
{
	int N = lo->N, D = lo->D, F = lo->F, RN = R * N;
	nn_linear_backward_set(g->fcg[l], GP(T_FC2_W, l), GP(T_FC2_B, l), dres,
			       a->fcg[l], W(T_FC2_W, l), RN, F, D);
	nn_bias_gelu_backward(g->fch[l], a->dgelu[l], g->fcg[l], RN * F);
	nn_linear_backward_set(g->ln2[l], GP(T_FC1_W, l), GP(T_FC1_B, l),
			       g->fch[l], a->ln2[l], W(T_FC1_W, l), RN, D, F);
	nn_layernorm_backward(dres, GP(T_LN2_W, l), GP(T_LN2_B, l), g->ln2[l],
			      a->res1[l], W(T_LN2_W, l), a->ln2_mean[l],
			      a->ln2_rstd[l], RN, D);
	nn_linear_backward_set(g->atty[l], GP(T_PROJ_W, l), GP(T_PROJ_B, l),
			       dres, a->atty[l], W(T_PROJ_W, l), RN, D, D);
	nn_attention_backward_set(g->qkv[l], g->atty[l], a->qkv[l], a->att[l],
				  R, N, D, lo->NH);
	nn_linear_backward_set(g->ln1[l], GP(T_QKV_W, l), GP(T_QKV_B, l),
			       g->qkv[l], a->ln1[l], W(T_QKV_W, l), RN, D,
			       3 * D);
	nn_layernorm_backward(dres, GP(T_LN1_W, l), GP(T_LN1_B, l), g->ln1[l],
			      in, W(T_LN1_W, l), a->ln1_mean[l], a->ln1_rstd[l],
			      RN, D);
}

/* Backward of the rows of one chunk (views, as forward_rows) after
 * forecast_head_backward, adding into gp. */
static void backward_rows(const struct nn_layout *lo,
			  const struct nn_weights *w, const struct nn_acts *a,
			  struct nn_acts *g, int bf, int br, fc_real *gp)
{
	int R = bf + br, L = lo->L, N = lo->N, D = lo->D, P = lo->P;
	int S = lo->S, RN = R * N;
	/* g->lnf: the forecast rows were written by forecast_head_backward,
	 * the recon rows are written here */
	if (br > 0) {
		size_t o = (size_t)bf * N;
		nn_unpatch_backward(g->rec + o * P, g->recon + (size_t)bf * L,
				    br, L, N, P, S);
		nn_linear_backward_set(g->lnf + o * D, GP(T_REC_W, 0),
				       GP(T_REC_B, 0), g->rec + o * P,
				       a->lnf + o * D, W(T_REC_W, 0), br * N, D,
				       P);
	}
	/* final LayerNorm: dcur = gradient w.r.t. the backbone output */
	const fc_real *last = lo->gru ? a->h[lo->NL - 1] : a->res2[lo->NL - 1];
	fc_real *dcur = lo->gru ? g->h[lo->NL - 1] : g->res2[lo->NL - 1];
	memset(dcur, 0, sizeof(fc_real) * (size_t)RN * D);
	nn_layernorm_backward(dcur, GP(T_LNF_W, 0), GP(T_LNF_B, 0), g->lnf,
			      last, W(T_LNF_W, 0), a->lnf_mean, a->lnf_rstd, RN,
			      D);
	for (int l = lo->NL - 1; l >= 0; l--) {
		const fc_real *in = l == 0    ? a->emb
				    : lo->gru ? a->h[l - 1]
					      : a->res2[l - 1];
		if (lo->gru) {
			fc_real *din = l == 0 ? g->emb : g->h[l - 1];
			memset(din, 0, sizeof(fc_real) * (size_t)RN * D);
			nn_gru_backward(din, GP(T_GRU_WIH, l), GP(T_GRU_BIH, l),
					GP(T_GRU_WHH, l), GP(T_GRU_BHH, l),
					g->h[l], g->gi[l], g->gh[l], in,
					a->h[l], a->gh[l], a->gate[l],
					W(T_GRU_WIH, l), W(T_GRU_WHH, l), R, N,
					D, D);
		} else {
			/* dcur: dres2 of layer l in, dres2 of layer l - 1
			 * (g->res2 of the other layers and g->emb stay
			 * unused) */
			transformer_layer_backward(lo, w, a, g, l, in, dcur, R,
						   gp);
		}
	}
	/* the embedding */
	if (lo->gru)
		nn_linear_backward(NULL, GP(T_EMB_W, 0), GP(T_EMB_B, 0), g->emb,
				   a->tok, W(T_EMB_W, 0), RN, 2 * P, D);
	else
		nn_pos_linear_backward(NULL, GP(T_POS, 0), GP(T_EMB_W, 0),
				       GP(T_EMB_B, 0), dcur, a->tok,
				       W(T_EMB_W, 0), R, N, 2 * P, D);
}

void nn_backward(const struct nn_layout *lo, const struct nn_weights *w,
		 const fc_real *ad, const struct nn_acts *a, struct nn_acts *g,
		 int bf, int br, fc_real *gp, fc_real *gad)
{
	int R = bf + br, N = lo->N, D = lo->D, cw = chunk_windows(lo);
	memset(gp, 0, sizeof(fc_real) * lo->n_params);
	if (gad)
		memset(gad, 0, sizeof(fc_real) * lo->n_adapter);
	if (bf > 0)
		forecast_head_backward(lo, w, a, g, bf, gp, gad);
	for (int c0 = 0; c0 < R; c0 += cw) {
		int nr = R - c0 < cw ? R - c0 : cw;
		int nf = chunk_forecast_rows(c0, nr, bf);
		struct nn_acts va, vg;
		nn_acts_view(&va, a, lo, c0);
		/* the gradients inside a chunk are scratch: every chunk uses
		 * the first chunk's rows, which stay in cache (memsets
		 * and GEMM writes to rows last touched a chunk ago would go
		 * to L3); only what crosses the chunk loop is at its rows */
		nn_acts_view(&vg, g, lo, 0);
		vg.lnf = g->lnf + (size_t)c0 * N * D;
		vg.recon = g->recon + (size_t)c0 * lo->L;
		backward_rows(lo, w, &va, &vg, nf, nr - nf, gp);
	}
	if (gad && ad)
		nn_weights_backward(gad, gp, ad, lo);
}
