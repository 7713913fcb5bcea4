/*
 * The layer kernels of the network, each a forward/backward pair over
 * caller-owned flat buffers (karpathy/llm.c style; declared and described
 * in nn_layers.h): instance normalisation, patching and its inverse,
 * linear maps (with the residual and position variants the transformer
 * fuses), LayerNorm, GELU, the GRU layer; and the GEMM wrapper every
 * product of the network goes through.  Attention is nn_attention.c.
 *
 * Forward stores what backward needs; backward mirrors forward in reverse
 * and accumulates (+=) into gradient buffers.  Written over fc_real so
 * that the same code compiles in double precision for the gradient checks
 * (see nn.h).
 */
#include "forecast/nn_private.h"

#include <errno.h>
#include <math.h>

#ifdef FC_REAL_DOUBLE
#define TANH tanh
#else
#define TANH fast_tanhf
/* tanh as a rational function (the 13/6 approximation Eigen uses for
 * float): no libm call, so gcc vectorises the GELU and GRU loops; libm's
 * tanhf would be a third of the transformer's training time.  Error within a
 * few 1e-7 of tanhf (tested); saturates to +-1 beyond |x| = 7.9. */
static inline float fast_tanhf(float x)
{
	const float clamp = NN_TANH_CLAMP;
	/* two selects that map onto minps/maxps (NaN passes through) */
	x = x < clamp ? x : clamp;
	x = x > -clamp ? x : -clamp;
	return NN_TANH_RATIONAL(float, x);
}

float nn_tanh_for_test(float x)
{
	return fast_tanhf(x);
}
#endif

void nn_gemm(int ta, int tb, int M, int N, int K, const fc_real *A, int lda,
	     const fc_real *B, int ldb, fc_real beta, fc_real *C, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++)
				C[(size_t)i * ldc + j] *= beta;
		return;
	}
	if (M == 1) {
		/* one row: GEMV, which skips GEMM's packing of B (most of the
		 * time of a batch-1 forecast otherwise) */
		int inca = ta ? lda : 1;
		if (tb) /* C [1, N] = B [N, K] a */
			GEMV(CblasRowMajor, CblasNoTrans, N, K, R_(1.0), B, ldb,
			     A, inca, beta, C, 1);
		else /* C [1, N] = B [K, N]^T a */
			GEMV(CblasRowMajor, CblasTrans, K, N, R_(1.0), B, ldb,
			     A, inca, beta, C, 1);
		return;
	}
	if (beta == R_(0.0) && ldc == N) {
		/* OpenBLAS clears C for beta 0 with its own loop over the
		 * columns of C (short rows here, N <= 3D), measured at 3 % of
		 * a transformer training step; glibc's memset of the
		 * contiguous block is several times faster */
		memset(C, 0, sizeof(fc_real) * (size_t)M * N);
		beta = R_(1.0);
	}
	GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	     tb ? CblasTrans : CblasNoTrans, M, N, K, R_(1.0), A, lda, B, ldb,
	     beta, C, ldc);
}

int nn_instnorm_forward(fc_real *xn, fc_real *mu, fc_real *sd, const fc_real *x,
			int B, int L)
{
	for (int b = 0; b < B; b++) {
		const fc_real *xb = x + (size_t)b * L;
		fc_real *o = xn + (size_t)b * L;
		double m = 0, var = 0; /* double: long windows, large offsets */
		for (int t = 0; t < L; t++)
			m += (double)xb[t];
		m /= L;
		for (int t = 0; t < L; t++)
			var += ((double)xb[t] - m) * ((double)xb[t] - m);
		var /= L;
		if (!isfinite(m) || !isfinite(var))
			return -EINVAL;
		fc_real s = (fc_real)fc_norm_sd(m, var);
		mu[b] = (fc_real)m;
		sd[b] = s;
		for (int t = 0; t < L; t++)
			o[t] = (xb[t] - mu[b]) / s;
	}
	return 0;
}

void nn_instnorm_backward(fc_real *dx, const fc_real *dxn, const fc_real *dmu,
			  const fc_real *dsd, const fc_real *x,
			  const fc_real *xn, const fc_real *mu,
			  const fc_real *sd, int B, int L)
{
	for (int b = 0; b < B; b++) {
		const fc_real *d = dxn + (size_t)b * L, *n = xn + (size_t)b * L;
		const fc_real *xb = x + (size_t)b * L;
		fc_real mean_d = 0, mean_dn = 0;
		for (int t = 0; t < L; t++) {
			mean_d += d[t];
			mean_dn += d[t] * n[t];
		}
		mean_d /= (fc_real)L;
		mean_dn /= (fc_real)L;
		fc_real gmu = dmu ? dmu[b] / (fc_real)L : R_(0.0);
		fc_real gsd = dsd ? dsd[b] / ((fc_real)L * sd[b]) : R_(0.0);
		/* sd's own slope in the variance, where its eps follows it
		 * (fc_norm_sd: small variances): 1 elsewhere */
		double var = 0;
		for (int t = 0; t < L; t++)
			var += ((double)xb[t] - (double)mu[b]) *
			       ((double)xb[t] - (double)mu[b]);
		double k = fc_norm_dvar((double)mu[b], var / L);
		if (k != 1.0) {
			mean_dn *= (fc_real)k;
			gsd *= (fc_real)k;
		}
		for (int t = 0; t < L; t++)
			dx[(size_t)b * L + t] +=
			    (d[t] - mean_d - n[t] * mean_dn) / sd[b] + gmu +
			    gsd * (xb[t] - mu[b]);
	}
}

void nn_patch_forward(fc_real *tok, const fc_real *xn, const fc_real *m, int B,
		      int L, int N, int P, int S)
{
	for (int b = 0; b < B; b++) {
		const fc_real *xb = xn + (size_t)b * L, *mb = m + (size_t)b * L;
		fc_real *tk = tok + (size_t)b * N * 2 * P;
		for (int n = 0; n < N; n++)
			for (int p = 0; p < P; p++) {
				int t = n * S + p;
				if (t > L - 1)
					t = L - 1; /* end padding */
				tk[(size_t)n * 2 * P + p] =
				    xb[t] * (R_(1.0) - mb[t]);
				tk[(size_t)n * 2 * P + P + p] = mb[t];
			}
	}
}

void nn_patch_backward(fc_real *dxn, const fc_real *dtok, const fc_real *m,
		       int B, int L, int N, int P, int S)
{
	for (int b = 0; b < B; b++) {
		const fc_real *mb = m + (size_t)b * L;
		const fc_real *dt = dtok + (size_t)b * N * 2 * P;
		for (int n = 0; n < N; n++)
			for (int p = 0; p < P; p++) {
				int t = n * S + p;
				if (t > L - 1)
					t = L - 1;
				dxn[(size_t)b * L + t] +=
				    dt[(size_t)n * 2 * P + p] *
				    (R_(1.0) - mb[t]);
			}
	}
}

/* Patches of rec [B, N, P] that cover point t (n with nS <= t < nS + P). */
static int covering(int t, int N, int P, int S)
{
	int hi = t / S, lo_n = t < P ? 0 : (t - P) / S + 1;
	if (hi > N - 1)
		hi = N - 1;
	return hi - lo_n + 1;
}

void nn_unpatch_forward(fc_real *recon, const fc_real *rec, int B, int L, int N,
			int P, int S)
{
	for (int b = 0; b < B; b++) {
		fc_real *rc = recon + (size_t)b * L;
		const fc_real *rb = rec + (size_t)b * N * P;
		memset(rc, 0, sizeof(fc_real) * (size_t)L);
		for (int n = 0; n < N; n++)
			for (int p = 0; p < P; p++)
				if (n * S + p < L)
					rc[n * S + p] += rb[(size_t)n * P + p];
		for (int t = 0; t < L; t++)
			rc[t] /= (fc_real)covering(t, N, P, S);
	}
}

void nn_unpatch_backward(fc_real *drec, const fc_real *drecon, int B, int L,
			 int N, int P, int S)
{
	for (int b = 0; b < B; b++) {
		const fc_real *dr = drecon + (size_t)b * L;
		fc_real *db = drec + (size_t)b * N * P;
		for (int n = 0; n < N; n++)
			for (int p = 0; p < P; p++) {
				int t = n * S + p;
				db[(size_t)n * P + p] =
				    t < L
					? dr[t] / (fc_real)covering(t, N, P, S)
					: R_(0.0);
			}
	}
}

void nn_linear_forward(fc_real *out, const fc_real *inp, const fc_real *w,
		       const fc_real *b, int BT, int C, int OC)
{
	/* out [BT, OC] = inp [BT, C] @ w [OC, C]^T + b [OC]; the bias is
	 * copied first and the product added (beta 1), one pass fewer than
	 * zeroing, multiplying and adding the bias */
	if (b) {
		for (int i = 0; i < BT; i++)
			memcpy(out + (size_t)i * OC, b, sizeof(fc_real) * OC);
		nn_gemm(0, 1, BT, OC, C, inp, C, w, C, R_(1.0), out, OC);
	} else {
		nn_gemm(0, 1, BT, OC, C, inp, C, w, C, R_(0.0), out, OC);
	}
}

void nn_linear_backward(fc_real *dinp, fc_real *dw, fc_real *db,
			const fc_real *dout, const fc_real *inp,
			const fc_real *w, int BT, int C, int OC)
{
	if (dinp) /* dinp [BT, C] += dout [BT, OC] @ w [OC, C] */
		nn_gemm(0, 0, BT, C, OC, dout, OC, w, C, R_(1.0), dinp, C);
	if (dw) /* dw [OC, C] += dout^T @ inp */
		nn_gemm(1, 0, OC, C, BT, dout, OC, inp, C, R_(1.0), dw, C);
	if (db)
		nn_bias_backward(db, dout, BT, OC);
}

void nn_linear_backward_set(fc_real *dinp, fc_real *dw, fc_real *db,
			    const fc_real *dout, const fc_real *inp,
			    const fc_real *w, int BT, int C, int OC)
{
	/* dinp [BT, C] = dout [BT, OC] @ w [OC, C] */
	nn_gemm(0, 0, BT, C, OC, dout, OC, w, C, R_(0.0), dinp, C);
	nn_linear_backward(NULL, dw, db, dout, inp, w, BT, C, OC);
}

/* out [BT, C] = inp [BT, C] + b [C]: a residual and the bias of the GEMM
 * that then accumulates into out (one pass instead of two) */
FC_VEC static void residual_bias(fc_real *restrict out,
				 const fc_real *restrict inp,
				 const fc_real *restrict b, int BT, int C)
{
	for (size_t i = 0; i < (size_t)BT; i++)
		for (int c = 0; c < C; c++)
			out[i * C + c] = inp[i * C + c] + b[c];
}

void nn_residual_linear_forward(fc_real *out, const fc_real *res,
				const fc_real *inp, const fc_real *w,
				const fc_real *b, int BT, int C, int OC)
{
	residual_bias(out, res, b, BT, OC);
	nn_gemm(0, 1, BT, OC, C, inp, C, w, C, R_(1.0), out, OC);
}

void nn_pos_linear_forward(fc_real *out, const fc_real *inp, const fc_real *pos,
			   const fc_real *w, const fc_real *b, int B, int T,
			   int C, int OC)
{
	for (int i = 0; i < B; i++)
		residual_bias(out + (size_t)i * T * OC, pos, b, T, OC);
	nn_gemm(0, 1, B * T, OC, C, inp, C, w, C, R_(1.0), out, OC);
}

void nn_pos_linear_backward(fc_real *dinp, fc_real *dpos, fc_real *dw,
			    fc_real *db, const fc_real *dout,
			    const fc_real *inp, const fc_real *w, int B, int T,
			    int C, int OC)
{
	/* the positions' gradient: summed over the windows, in order */
	if (dpos)
		nn_bias_backward(dpos, dout, B, T * OC);
	nn_linear_backward(dinp, dw, db, dout, inp, w, B * T, C, OC);
}

FC_VEC void nn_bias_backward(fc_real *restrict db, const fc_real *restrict dout,
			     int BT, int C)
{
	for (size_t i = 0; i < (size_t)BT; i++)
		for (int c = 0; c < C; c++)
			db[c] += dout[i * C + c];
}

/* The reductions of LayerNorm in two vector accumulators (a single float
 * accumulator is a chain of C dependent adds that gcc may not reorder);
 * the order of the sum changes, not its precision. */
ALWAYS_INLINE fc_real vsum(const fc_real *x, int n)
{
	vreal a0 = {0}, a1 = {0};
	int c = 0;
	for (; c + 2 * VL <= n; c += 2 * VL) {
		a0 += vload(x + c);
		a1 += vload(x + c + VL);
	}
	a0 += a1;
	fc_real s = hsum(&a0);
	for (; c < n; c++)
		s += x[c];
	return s;
}

ALWAYS_INLINE fc_real vsumsq(const fc_real *x, fc_real m, int n)
{
	vreal a0 = {0}, a1 = {0};
	int c = 0;
	for (; c + 2 * VL <= n; c += 2 * VL) {
		vreal u = vload(x + c) - m, v = vload(x + c + VL) - m;
		a0 += u * u;
		a1 += v * v;
	}
	a0 += a1;
	fc_real s = hsum(&a0);
	for (; c < n; c++)
		s += (x[c] - m) * (x[c] - m);
	return s;
}

FC_VEC void nn_layernorm_forward(fc_real *out, fc_real *mean, fc_real *rstd,
				 const fc_real *inp, const fc_real *w,
				 const fc_real *b, int BT, int C)
{
	/* four rows at a time: each row's statistics are a chain of
	 * dependent steps (sum, mean, squares, sqrt, division) that the
	 * other rows' chains overlap */
	for (int i0 = 0; i0 < BT; i0 += 4) {
		int nr = BT - i0 < 4 ? BT - i0 : 4;
		fc_real m[4], s[4];
		for (int k = 0; k < nr; k++)
			m[k] = vsum(inp + (size_t)(i0 + k) * C, C) / (fc_real)C;
		for (int k = 0; k < nr; k++)
			s[k] = vsumsq(inp + (size_t)(i0 + k) * C, m[k], C) /
			       (fc_real)C;
		for (int k = 0; k < nr; k++)
			s[k] = R_(1.0) / SQRT(s[k] + R_(NN_LN_EPS));
		for (int k = 0; k < nr; k++) {
			const fc_real *restrict x = inp + (size_t)(i0 + k) * C;
			fc_real *restrict o = out + (size_t)(i0 + k) * C;
			for (int c = 0; c < C; c++)
				o[c] = (x[c] - m[k]) * s[k] * w[c] + b[c];
			mean[i0 + k] = m[k];
			rstd[i0 + k] = s[k];
		}
	}
}

FC_VEC void nn_layernorm_backward(fc_real *dinp, fc_real *dw, fc_real *db,
				  const fc_real *dout, const fc_real *inp,
				  const fc_real *w, const fc_real *mean,
				  const fc_real *rstd, int BT, int C)
{
	for (int i = 0; i < BT; i++) {
		const fc_real *restrict x = inp + (size_t)i * C;
		const fc_real *restrict d = dout + (size_t)i * C;
		fc_real m = mean[i], s = rstd[i];
		/* mean of dn = w d and of dn * n, n = (x - m) s */
		vreal a1 = {0}, a2 = {0};
		int c = 0;
		for (; c + VL <= C; c += VL) {
			vreal dn = vload(w + c) * vload(d + c);
			a1 += dn;
			a2 += dn * ((vload(x + c) - m) * s);
		}
		fc_real dnorm_mean = hsum(&a1), dnorm_norm_mean = hsum(&a2);
		for (; c < C; c++) {
			fc_real dn = w[c] * d[c];
			dnorm_mean += dn;
			dnorm_norm_mean += dn * ((x[c] - m) * s);
		}
		dnorm_mean /= (fc_real)C;
		dnorm_norm_mean /= (fc_real)C;
		if (db)
			for (c = 0; c < C; c++)
				db[c] += d[c];
		if (dw)
			for (c = 0; c < C; c++)
				dw[c] += ((x[c] - m) * s) * d[c];
		if (dinp) {
			fc_real *restrict di = dinp + (size_t)i * C;
			for (c = 0; c < C; c++) {
				fc_real n = (x[c] - m) * s;
				fc_real dn = w[c] * d[c];
				di[c] +=
				    (dn - dnorm_mean - n * dnorm_norm_mean) * s;
			}
		}
	}
}

#define GELU_K R_(0.7978845608028654) /* sqrt(2 / pi) */

FC_VEC void nn_gelu_forward(fc_real *out, const fc_real *inp, int n)
{
	for (int i = 0; i < n; i++) {
		fc_real x = inp[i];
		fc_real u = GELU_K * (x + R_(0.044715) * x * x * x);
		out[i] = R_(0.5) * x * (R_(1.0) + TANH(u));
	}
}

FC_VEC void nn_gelu_backward(fc_real *dinp, const fc_real *inp,
			     const fc_real *dout, int n)
{
	for (int i = 0; i < n; i++) {
		fc_real x = inp[i];
		fc_real u = GELU_K * (x + R_(0.044715) * x * x * x);
		fc_real t = TANH(u);
		fc_real du = GELU_K * (R_(1.0) + R_(3.0 * 0.044715) * x * x);
		fc_real g = R_(0.5) * (R_(1.0) + t) +
			    R_(0.5) * x * (R_(1.0) - t * t) * du;
		dinp[i] += g * dout[i];
	}
}

FC_VEC void nn_bias_gelu_forward(fc_real *restrict fcg, fc_real *restrict fch,
				 const fc_real *restrict b, int BT, int F)
{
	for (size_t i = 0; i < (size_t)BT; i++)
		for (int c = 0; c < F; c++) {
			fc_real x = fch[i * F + c] + b[c];
			fc_real u = GELU_K * (x + R_(0.044715) * x * x * x);
			fch[i * F + c] = x;
			fcg[i * F + c] = R_(0.5) * x * (R_(1.0) + TANH(u));
		}
}

FC_VEC void nn_bias_gelu_forward_train(fc_real *restrict fcg,
				       fc_real *restrict fch,
				       const fc_real *restrict b, int BT, int F)
{
	for (size_t i = 0; i < (size_t)BT; i++)
		for (int c = 0; c < F; c++) {
			fc_real x = fch[i * F + c] + b[c];
			fc_real u = GELU_K * (x + R_(0.044715) * x * x * x);
			fc_real t = TANH(u);
			fc_real du =
			    GELU_K * (R_(1.0) + R_(3.0 * 0.044715) * x * x);
			fch[i * F + c] = R_(0.5) * (R_(1.0) + t) +
					 R_(0.5) * x * (R_(1.0) - t * t) * du;
			fcg[i * F + c] = R_(0.5) * x * (R_(1.0) + t);
		}
}

FC_VEC void nn_bias_gelu_backward(fc_real *restrict dfch,
				  const fc_real *restrict dgelu,
				  const fc_real *restrict dout, int n)
{
	for (int i = 0; i < n; i++)
		dfch[i] = dgelu[i] * dout[i];
}

static inline fc_real sigm(fc_real x)
{
	/* through tanh, which is vectorisable in the float build */
	return R_(0.5) + R_(0.5) * TANH(R_(0.5) * x);
}

static const fc_real zeros[1024]; /* h[-1]; D <= 1024 (fc_config_check) */

/* One step's gates of one window: g [3D] = r, z, n; ho [D]. */
FC_VEC static void gru_gates(fc_real *restrict g, fc_real *restrict ho,
			     const fc_real *restrict xi,
			     const fc_real *restrict hh,
			     const fc_real *restrict hp, int D)
{
	for (int j = 0; j < D; j++) {
		fc_real r = sigm(xi[j] + hh[j]);
		fc_real z = sigm(xi[D + j] + hh[D + j]);
		fc_real n = TANH(xi[2 * D + j] + r * hh[2 * D + j]);
		g[j] = r;
		g[D + j] = z;
		g[2 * D + j] = n;
		ho[j] = (R_(1.0) - z) * n + z * hp[j];
	}
}

void nn_gru_forward(fc_real *h, fc_real *gi, fc_real *gh, fc_real *gate,
		    const fc_real *inp, const fc_real *wih, const fc_real *bih,
		    const fc_real *whh, const fc_real *bhh, int B, int T, int C,
		    int D)
{
	int G = 3 * D;
	/* gi [B*T, 3D] = inp @ wih^T + bih, all steps at once */
	nn_linear_forward(gi, inp, wih, bih, B * T, C, G);
	for (int t = 0; t < T; t++) {
		/* gh[:, t] [B, 3D] = h[:, t-1] @ whh^T + bhh (h[-1] = 0) */
		for (int b = 0; b < B; b++)
			memcpy(gh + ((size_t)b * T + t) * G, bhh,
			       sizeof(fc_real) * (size_t)G);
		if (t > 0)
			nn_gemm(0, 1, B, G, D, h + (size_t)(t - 1) * D, T * D,
				whh, D, R_(1.0), gh + (size_t)t * G, T * G);
		for (int b = 0; b < B; b++) {
			size_t o = ((size_t)b * T + t);
			gru_gates(gate + o * G, h + o * D, gi + o * G,
				  gh + o * G, t > 0 ? h + (o - 1) * D : zeros,
				  D);
		}
	}
}

void nn_gru_backward(fc_real *dinp, fc_real *dwih, fc_real *dbih, fc_real *dwhh,
		     fc_real *dbhh, fc_real *dh, fc_real *dgi, fc_real *dgh,
		     const fc_real *inp, const fc_real *h, const fc_real *gh,
		     const fc_real *gate, const fc_real *wih,
		     const fc_real *whh, int B, int T, int C, int D)
{
	/* dh [B, T, D] holds dL/dh from above; the recurrence adds into it
	 * as we go back in time (it is consumed). */
	int G = 3 * D;
	for (int t = T - 1; t >= 0; t--) {
		for (int b = 0; b < B; b++) {
			size_t o = ((size_t)b * T + t);
			const fc_real *g = gate + o * G, *hh = gh + o * G;
			const fc_real *d = dh + o * D;
			fc_real *dxi = dgi + o * G, *dhh = dgh + o * G;
			fc_real *dprev = t > 0 ? dh + (o - 1) * D : NULL;
			const fc_real *hp = t > 0 ? h + (o - 1) * D : NULL;
			for (int j = 0; j < D; j++) {
				fc_real r = g[j], z = g[D + j],
					n = g[2 * D + j];
				fc_real prev = hp ? hp[j] : R_(0.0);
				fc_real dn = d[j] * (R_(1.0) - z);
				fc_real dz = d[j] * (prev - n);
				if (dprev)
					dprev[j] += d[j] * z;
				fc_real dan = dn * (R_(1.0) - n * n);
				fc_real dr = dan * hh[2 * D + j];
				fc_real dar = dr * r * (R_(1.0) - r);
				fc_real daz = dz * z * (R_(1.0) - z);
				dxi[j] = dar;
				dxi[D + j] = daz;
				dxi[2 * D + j] = dan;
				dhh[j] = dar;
				dhh[D + j] = daz;
				dhh[2 * D + j] = dan * r;
			}
		}
		if (t > 0) /* dh[:, t-1] += dgh[:, t] @ whh */
			nn_gemm(0, 0, B, D, G, dgh + (size_t)t * G, T * G, whh,
				D, R_(1.0), dh + (size_t)(t - 1) * D, T * D);
	}
	/* weights: dwhh += sum_t dgh[:, t]^T @ h[:, t-1]; dbhh over all t */
	if (dwhh)
		for (int t = 1; t < T; t++)
			nn_gemm(1, 0, G, D, B, dgh + (size_t)t * G, T * G,
				h + (size_t)(t - 1) * D, T * D, R_(1.0), dwhh,
				D);
	if (dbhh)
		nn_bias_backward(dbhh, dgh, B * T, G);
	nn_linear_backward(dinp, dwih, dbih, dgi, inp, wih, B * T, C, G);
}
