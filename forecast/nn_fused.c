/*
 * The fused forward kernels of forecast-only passes (nn_forecast of many
 * windows, no backward follows): a GRU layer and the transformer's linear
 * maps, each over weights packed once per pass, with the bias, residual,
 * gates or GELU applied in registers as the sums finish.  They replace a
 * GEMM call plus one or two elementwise passes over its output, and
 * OpenBLAS's packing of the weights at every call.  Their sums run in
 * another order than the GEMM path's, so they agree with it to rounding
 * (tested against it: tests/forecast/test_gradcheck.c in double,
 * test_model.c in float).
 */
#include "forecast/nn_private.h"

#include <math.h>

/* every lane = s: a broadcast (the (vreal){0} + s idiom costs an add, as
 * 0 + -0 is +0; a loop over the lanes compiles to lane inserts) */
#ifdef FC_REAL_DOUBLE
#define vsplat(s)                        \
	({                               \
		fc_real s_ = (s);        \
		(vreal){s_, s_, s_, s_}; \
	})
#else
#define vsplat(s)                                        \
	({                                               \
		fc_real s_ = (s);                        \
		(vreal){s_, s_, s_, s_, s_, s_, s_, s_}; \
	})
#endif

#ifdef FC_REAL_DOUBLE
ALWAYS_INLINE void vtanh(vreal *x)
{
	for (int k = 0; k < VL; k++)
		(*x)[k] = tanh((*x)[k]);
}
#else
/* fast_tanhf in every lane, the same operations in the same order */
ALWAYS_INLINE void vtanh(vreal *px)
{
	const vreal hi = (vreal){0} + NN_TANH_CLAMP, lo = -hi;
	vreal x = *px;
	vmask m = x < hi;
	x = (vreal)(((vmask)x & m) | ((vmask)hi & ~m));
	m = x > lo;
	x = (vreal)(((vmask)x & m) | ((vmask)lo & ~m));
	*px = NN_TANH_RATIONAL(vreal, x);
}
#endif

ALWAYS_INLINE void vsigm(vreal *x)
{
	*x = *x * R_(0.5);
	vtanh(x);
	*x = *x * R_(0.5) + R_(0.5);
}

/* ---- the GRU ---------------------------------------------------------------
 * One kernel per step computes, for GRU_MR windows and VL units, all three
 * gates' input and hidden projections in registers (weights packed once
 * per pass, so each k of the sums is three vector loads) and applies the
 * gates there: no gi, gh or gate buffers, no per-step bias copies, no
 * GEMM packing. */

#define GRU_MR 3 /* windows per kernel call: 4 accumulators each */

int nn_gru_fast_ok(int D)
{
	return D % VL == 0;
}

size_t nn_gru_pack_size(int C, int D)
{
	return (size_t)3 * D * (C + D + 1);
}

void nn_gru_pack(fc_real *pk, const fc_real *wi, const fc_real *bi,
		 const fc_real *whh, const fc_real *bhh, int C, int D)
{
	/* [D / VL][C][3][VL] input, [D / VL][D][3][VL] hidden weights: unit
	 * block jb's k-th products of the three gates are adjacent */
	fc_real *wp = pk, *hp = pk + (size_t)3 * D * C;
	fc_real *bp = hp + (size_t)3 * D * D;
	for (int jb = 0; jb < D / VL; jb++)
		for (int g = 0; g < 3; g++)
			for (int v = 0; v < VL; v++) {
				size_t u = (size_t)g * D + (size_t)jb * VL + v;
				for (int k = 0; k < C; k++)
					wp[(((size_t)jb * C + k) * 3 + g) * VL +
					   v] = wi[u * C + k];
				for (int k = 0; k < D; k++)
					hp[(((size_t)jb * D + k) * 3 + g) * VL +
					   v] = whh[u * D + k];
			}
	/* r and z add both biases; n adds bhh inside r's product */
	for (int u = 0; u < 3 * D; u++)
		bp[u] = bi[u] + (u < 2 * D ? bhh[u] : R_(0.0));
}

/* acc[i][g] += x_i [K] against the packed block w [K][3][VL] */
ALWAYS_INLINE void gru_dot(vreal acc[GRU_MR][4], int a0,
			   const fc_real *const *x, const fc_real *w, int K)
{
	for (int k = 0; k < K; k++, w += 3 * VL) {
		vreal w0 = vload(w), w1 = vload(w + VL), w2 = vload(w + 2 * VL);
		for (int i = 0; i < GRU_MR; i++) {
			vreal a = vsplat(x[i][k]);
			acc[i][0] += a * w0;
			acc[i][1] += a * w1;
			acc[i][a0] += a * w2;
		}
	}
}

FC_VEC void nn_gru_forecast(fc_real *restrict h, const fc_real *restrict inp,
			    const fc_real *restrict pk,
			    const fc_real *restrict bhh, int B, int T, int C,
			    int D)
{
	const fc_real *wp = pk, *hw = pk + (size_t)3 * D * C;
	const fc_real *bp = hw + (size_t)3 * D * D, *bn = bhh + 2 * D;
	for (int t = 0; t < T; t++)
		for (int jb = 0; jb < D / VL; jb++) {
			int j = jb * VL;
			const fc_real *wj = wp + (size_t)jb * C * 3 * VL;
			const fc_real *hj = hw + (size_t)jb * D * 3 * VL;
			for (int b0 = 0; b0 < B; b0 += GRU_MR) {
				int nb = B - b0 < GRU_MR ? B - b0 : GRU_MR;
				const fc_real *x[GRU_MR], *hp[GRU_MR];
				for (int i = 0; i < GRU_MR; i++) {
					/* a short last block repeats its
					 * last window (not written twice) */
					size_t o =
					    (size_t)(b0 +
						     (i < nb ? i : nb - 1)) *
						T +
					    t;
					x[i] = inp + o * C;
					hp[i] = h + (o - (t > 0)) * D;
				}
				/* acc: r, z, n's input and n's hidden part */
				vreal acc[GRU_MR][4];
				for (int i = 0; i < GRU_MR; i++) {
					acc[i][0] = vload(bp + j);
					acc[i][1] = vload(bp + D + j);
					acc[i][2] = vload(bp + 2 * D + j);
					acc[i][3] = vload(bn + j);
				}
				gru_dot(acc, 2, x, wj, C);
				if (t > 0)
					gru_dot(acc, 3, hp, hj, D);
				for (int i = 0; i < nb; i++) {
					vreal r = acc[i][0], z = acc[i][1];
					vsigm(&r);
					vsigm(&z);
					vreal n = acc[i][2] + r * acc[i][3];
					vtanh(&n);
					vreal prev = t > 0 ? vload(hp[i] + j)
							   : (vreal){0};
					vreal out =
					    (R_(1.0) - z) * n + z * prev;
					size_t o = (size_t)(b0 + i) * T + t;
					memcpy(h + o * D + j, &out,
					       sizeof(out));
				}
			}
		}
}

/* ---- the transformer's linear maps
 * ------------------------------------------- LIN_MR rows x LIN_NB outputs per
 * kernel call (12 accumulators), weights packed [OC / LIN_NB][C][LIN_NB]; the
 * epilogue adds the bias, and the residual or GELU, in the order of the GEMM
 * path (bias and residual first, then the product). */

#define LIN_MR 6
#define LIN_NB (2 * VL)
#define GELU_K R_(0.7978845608028654) /* sqrt(2 / pi), as nn_layers.c */

int nn_linear_fast_ok(int OC)
{
	return OC % LIN_NB == 0;
}

void nn_linear_pack(fc_real *pk, const fc_real *w, int C, int OC)
{
	for (int jb = 0; jb < OC / LIN_NB; jb++)
		for (int k = 0; k < C; k++)
			for (int v = 0; v < LIN_NB; v++)
				pk[((size_t)jb * C + k) * LIN_NB + v] =
				    w[((size_t)jb * LIN_NB + v) * C + k];
}

/* y = gelu(y), as nn_bias_gelu_forward */
ALWAYS_INLINE void vgelu(vreal *y)
{
	vreal x = *y;
	vreal u = GELU_K * (x + R_(0.044715) * x * x * x);
	vtanh(&u);
	*y = R_(0.5) * x * (R_(1.0) + u);
}

FC_VEC void nn_linear_fast(fc_real *restrict out, const fc_real *restrict inp,
			   const fc_real *restrict pk,
			   const fc_real *restrict b,
			   const fc_real *restrict res, int res_rows, int gelu,
			   int BT, int C, int OC)
{
	for (int i0 = 0; i0 < BT; i0 += LIN_MR) {
		int nr = BT - i0 < LIN_MR ? BT - i0 : LIN_MR;
		const fc_real *x[LIN_MR];
		for (int i = 0; i < LIN_MR; i++) /* a short block repeats */
			x[i] = inp + (size_t)(i0 + (i < nr ? i : nr - 1)) * C;
		for (int j = 0; j < OC; j += LIN_NB) {
			const fc_real *w = pk + (size_t)j * C;
			vreal acc[LIN_MR][2];
			for (int i = 0; i < LIN_MR; i++)
				acc[i][0] = acc[i][1] = (vreal){0};
			for (int k = 0; k < C; k++, w += LIN_NB) {
				vreal w0 = vload(w), w1 = vload(w + VL);
				for (int i = 0; i < LIN_MR; i++) {
					vreal a = vsplat(x[i][k]);
					acc[i][0] += a * w0;
					acc[i][1] += a * w1;
				}
			}
			for (int i = 0; i < nr; i++) {
				const fc_real *rr =
				    res ? res +
					      (size_t)((i0 + i) % res_rows) *
						  OC +
					      j
					: NULL;
				for (int h = 0; h < 2; h++) {
					size_t o = (size_t)(i0 + i) * OC + j +
						   (size_t)h * VL;
					vreal c = b ? vload(b + j + h * VL)
						    : (vreal){0};
					if (res)
						c = vload(rr + h * VL) + c;
					vreal y =
					    res ? c + acc[i][h] : acc[i][h] + c;
					if (gelu)
						vgelu(&y);
					memcpy(out + o, &y, sizeof(y));
				}
			}
		}
	}
}
