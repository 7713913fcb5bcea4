/*
 * Non-causal multi-head self-attention over the T tokens of each window,
 * forward and backward (declared in nn_layers.h).  Two implementations
 * of the same arithmetic: the lane kernels, which process 32 bytes' worth
 * of windows side by side in stack buffers, and a fallback for shapes too
 * large for those buffers (per-window GEMMs forward, scalar loops
 * backward).  nn_attention_uses_lanes decides; the transformer at
 * lookback 256 with the default patches and width is the first shape on
 * the fallback.
 */
#include "forecast/nn_private.h"

#include <math.h>

static void attention_forward_mm(fc_real *out, fc_real *att, const fc_real *qkv,
				 int B, int T, int C, int NH)
{
	/* non-causal multi-head self-attention over T tokens; per (window,
	 * head) two small GEMMs on strided views of qkv [B, T, 3C] */
	int hs = C / NH;
	fc_real scale = R_(1.0) / SQRT((fc_real)hs);
	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++) {
			const fc_real *q = qkv + (size_t)b * T * 3 * C + h * hs;
			const fc_real *k = q + C, *v = q + 2 * C;
			fc_real *a = att + ((size_t)b * NH + h) * T * T;
			/* a [T, T] = q [T, hs] k^T */
			nn_gemm(0, 1, T, T, hs, q, 3 * C, k, 3 * C, R_(0.0), a,
				T);
			for (int t = 0; t < T; t++) {
				fc_real *row = a + (size_t)t * T;
				fc_real mx = -INFINITY, sum = 0;
				for (int t2 = 0; t2 < T; t2++) {
					row[t2] *= scale;
					if (row[t2] > mx)
						mx = row[t2];
				}
				for (int t2 = 0; t2 < T; t2++) {
					row[t2] = EXP(row[t2] - mx);
					sum += row[t2];
				}
				fc_real inv = R_(1.0) / sum;
				for (int t2 = 0; t2 < T; t2++)
					row[t2] *= inv;
			}
			/* out [T, hs] = a [T, T] v [T, hs] */
			nn_gemm(0, 0, T, hs, T, a, T, v, 3 * C, R_(0.0),
				out + (size_t)b * T * C + h * hs, C);
		}
}

static void attention_backward_ref(fc_real *dqkv, const fc_real *dout,
				   const fc_real *qkv, const fc_real *att,
				   int B, int T, int C, int NH)
{
	int hs = C / NH;
	fc_real scale = R_(1.0) / SQRT((fc_real)hs);
	fc_real datt[NN_MAX_TOKENS];
	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++)
			for (int t = 0; t < T; t++) {
				size_t qo =
				    ((size_t)b * T + t) * 3 * C + h * hs;
				const fc_real *a =
				    att + (((size_t)b * NH + h) * T + t) * T;
				const fc_real *d =
				    dout + ((size_t)b * T + t) * C + h * hs;
				fc_real dot = 0;
				for (int t2 = 0; t2 < T; t2++) {
					size_t vo =
					    ((size_t)b * T + t2) * 3 * C +
					    2 * C + h * hs;
					fc_real s = 0;
					for (int i = 0; i < hs; i++) {
						s += d[i] * qkv[vo + i];
						dqkv[vo + i] += a[t2] * d[i];
					}
					datt[t2] = s;
					dot += a[t2] * s;
				}
				for (int t2 = 0; t2 < T; t2++) {
					fc_real dp =
					    a[t2] * (datt[t2] - dot) * scale;
					size_t ko =
					    ((size_t)b * T + t2) * 3 * C + C +
					    h * hs;
					for (int i = 0; i < hs; i++) {
						dqkv[qo + i] +=
						    dp * qkv[ko + i];
						dqkv[ko + i] +=
						    dp * qkv[qo + i];
					}
				}
			}
}

/*
 * Attention with VL windows side by side: the q, k, v of one head of VL
 * windows are gathered into lane-interleaved buffers ([T, hs] of vectors,
 * lane = window), so that every product, the softmax and its backward are
 * plain vector arithmetic with no tails, no horizontal sums and no tiny
 * GEMM calls (per (window, head) they would be 12 x 12 x 16).  The buffers
 * live on the stack; shapes that do not fit use the loops above.
 */
#define ATT_LANE_MAX 4096 /* vectors of stack buffer (128 KiB) */

#ifdef FC_REAL_DOUBLE
ALWAYS_INLINE void vexp(vreal *x)
{
	for (int k = 0; k < VL; k++)
		(*x)[k] = exp((*x)[k]);
}
#else
/* e^x for x <= 0 (the softmax's shifted scores), as Cephes' expf: x =
 * n ln2 + r, |r| <= ln2 / 2, a degree-5 polynomial for e^r and 2^n by
 * exponent bits; within 2 ulp of expf.  Below -87.3 it returns about
 * 1e-38 instead of a denormal or 0 (next to the softmax's max term, 1). */
ALWAYS_INLINE void vexp(vreal *px)
{
	const vreal lo = {-87.3365f, -87.3365f, -87.3365f, -87.3365f,
			  -87.3365f, -87.3365f, -87.3365f, -87.3365f};
	vreal x = *px;
	vmask below = x < lo;
	x = (vreal)(((vmask)lo & below) | ((vmask)x & ~below));
	vreal magic = (vreal){0} + 12582912.0f; /* 1.5 * 2^23: rounds */
	vreal n = (x * 1.44269504088896341f + magic) - magic;
	vreal r = x - n * 0.693359375f;
	r = r - n * -2.12194440e-4f;
	vreal p = (vreal){0} + 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * (r * r) + r + 1.0f;
	vmask e = (__builtin_convertvector(n, vmask) + 127) << 23;
	*px = p * (vreal)e;
}
#endif

/* *m = max(*m, *a) per lane (by pointer: 32-byte vectors passed by value
 * would change the ABI of the baseline build) */
ALWAYS_INLINE void vmax(vreal *m, const vreal *a)
{
	vmask gt = *a > *m;
	*m = (vreal)(((vmask)*a & gt) | ((vmask)*m & ~gt));
}

#ifdef __clang__
/* clang (the fuzz build, tests/fuzz) has no __builtin_shuffle: the same
 * two-vector shuffle, lane by lane (gcc's path is unchanged). */
#define __builtin_shuffle(a, b, m)                                     \
	({                                                             \
		vreal sa_ = (a), sb_ = (b), sr_;                       \
		vmask sm_ = (m);                                       \
		for (int sk_ = 0; sk_ < VL; sk_++)                     \
			sr_[sk_] = sm_[sk_] < VL ? sa_[sm_[sk_]]       \
						 : sb_[sm_[sk_] - VL]; \
		sr_;                                                   \
	})
#endif

/* r [VL] rows of VL -> its columns, in registers */
ALWAYS_INLINE void vtranspose(vreal *r)
{
#ifdef FC_REAL_DOUBLE
	const vmask lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7};
	const vmask l2 = {0, 1, 4, 5}, h2 = {2, 3, 6, 7};
	vreal t0 = __builtin_shuffle(r[0], r[1], lo);
	vreal t1 = __builtin_shuffle(r[0], r[1], hi);
	vreal t2 = __builtin_shuffle(r[2], r[3], lo);
	vreal t3 = __builtin_shuffle(r[2], r[3], hi);
	r[0] = __builtin_shuffle(t0, t2, l2);
	r[1] = __builtin_shuffle(t1, t3, l2);
	r[2] = __builtin_shuffle(t0, t2, h2);
	r[3] = __builtin_shuffle(t1, t3, h2);
#else
	const vmask ulo = {0, 8, 1, 9, 4, 12, 5, 13};
	const vmask uhi = {2, 10, 3, 11, 6, 14, 7, 15};
	const vmask slo = {0, 1, 8, 9, 4, 5, 12, 13};
	const vmask shi = {2, 3, 10, 11, 6, 7, 14, 15};
	const vmask plo = {0, 1, 2, 3, 8, 9, 10, 11};
	const vmask phi = {4, 5, 6, 7, 12, 13, 14, 15};
	vreal t[8], u[8];
	for (int k = 0; k < 8; k += 2) {
		t[k] = __builtin_shuffle(r[k], r[k + 1], ulo);
		t[k + 1] = __builtin_shuffle(r[k], r[k + 1], uhi);
	}
	for (int k = 0; k < 8; k += 4) {
		u[k] = __builtin_shuffle(t[k], t[k + 2], slo);
		u[k + 1] = __builtin_shuffle(t[k], t[k + 2], shi);
		u[k + 2] = __builtin_shuffle(t[k + 1], t[k + 3], slo);
		u[k + 3] = __builtin_shuffle(t[k + 1], t[k + 3], shi);
	}
	for (int k = 0; k < 4; k++) {
		r[k] = __builtin_shuffle(u[k], u[k + 4], plo);
		r[k + 4] = __builtin_shuffle(u[k], u[k + 4], phi);
	}
#endif
}

/* Gather rows [T, n] (row stride ld) of the VL windows src[w] into dst
 * [T, n] of vectors (lane w = window w), VL x VL blocks at a time. */
ALWAYS_INLINE void lane_gather(vreal *restrict dst,
			       const fc_real *const *restrict src, int T, int n,
			       size_t ld)
{
	for (int t = 0; t < T; t++) {
		vreal *d = dst + (size_t)t * n;
		size_t o = (size_t)t * ld;
		int i = 0;
		for (; i + VL <= n; i += VL) {
			vreal r[VL];
			for (int w = 0; w < VL; w++)
				r[w] = vload(src[w] + o + i);
			vtranspose(r);
			for (int j = 0; j < VL; j++)
				d[i + j] = r[j];
		}
		for (; i < n; i++)
			for (int w = 0; w < VL; w++)
				d[i][w] = src[w][o + i];
	}
}

/* The other way: v [VL] (lane w = window w, element j) -> dst[w] [VL] for
 * the nb first windows; stored, or added (acc). */
ALWAYS_INLINE void lane_scatter(fc_real *const *restrict dst, vreal *v, int nb,
				int acc)
{
	vtranspose(v);
	for (int w = 0; w < nb; w++) {
		if (acc)
			v[w] += vload(dst[w]);
		memcpy(dst[w], &v[w], sizeof(vreal));
	}
}

/* c [n] of the nb first windows = lanes of v [n] (n scalars per window) */
ALWAYS_INLINE void lane_put(fc_real *const *restrict dst, size_t off,
			    const vreal *restrict v, int n, int nb, int acc)
{
	int i = 0;
	for (; i + VL <= n; i += VL) {
		vreal r[VL];
		fc_real *d[VL];
		for (int j = 0; j < VL; j++)
			r[j] = v[i + j];
		for (int w = 0; w < nb; w++)
			d[w] = dst[w] + off + i;
		lane_scatter(d, r, nb, acc);
	}
	for (; i < n; i++)
		for (int w = 0; w < nb; w++) {
			if (acc)
				dst[w][off + i] += v[i][w];
			else
				dst[w][off + i] = v[i][w];
		}
}

/* o [n] = sum_t2 s [t2] x [t2, n] (x row stride n), all vectors */
ALWAYS_INLINE void lane_matvec(vreal *restrict o, const vreal *restrict s,
			       size_t ss, const vreal *restrict x, int T, int n)
{
	int i = 0;
	for (; i + VL <= n; i += VL) {
		vreal a[VL] = {{0}};
		for (int t2 = 0; t2 < T; t2++) {
			const vreal *xr = x + (size_t)t2 * n + i;
			vreal sv = s[(size_t)t2 * ss];
			for (int j = 0; j < VL; j++)
				a[j] += sv * xr[j];
		}
		for (int j = 0; j < VL; j++)
			o[i + j] = a[j];
	}
	for (; i < n; i++) {
		vreal a0 = {0};
		for (int t2 = 0; t2 < T; t2++)
			a0 += s[(size_t)t2 * ss] * x[(size_t)t2 * n + i];
		o[i] = a0;
	}
}

/* s [t2] = (q . k [t2]) * scale, t2 < T: dot products over n, four
 * at a time */
ALWAYS_INLINE void lane_dots(vreal *restrict s, const vreal *restrict q,
			     const vreal *restrict k, int T, int n,
			     fc_real scale)
{
	int t2 = 0;
	for (; t2 + 4 <= T; t2 += 4) {
		const vreal *k0 = k + (size_t)t2 * n;
		vreal a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
		for (int i = 0; i < n; i++) {
			a0 += q[i] * k0[i];
			a1 += q[i] * k0[n + i];
			a2 += q[i] * k0[2 * n + i];
			a3 += q[i] * k0[3 * n + i];
		}
		s[t2] = a0 * scale;
		s[t2 + 1] = a1 * scale;
		s[t2 + 2] = a2 * scale;
		s[t2 + 3] = a3 * scale;
	}
	for (; t2 < T; t2++) {
		const vreal *k0 = k + (size_t)t2 * n;
		vreal a0 = {0};
		for (int i = 0; i < n; i++)
			a0 += q[i] * k0[i];
		s[t2] = a0 * scale;
	}
}

FC_VEC static void attention_forward_lanes(fc_real *out, fc_real *att,
					   const fc_real *qkv, int B, int T,
					   int C, int NH)
{
	int hs = C / NH;
	fc_real scale = R_(1.0) / SQRT((fc_real)hs);
	size_t T3C = (size_t)T * 3 * C;
	vreal buf[ATT_LANE_MAX];
	vreal *Q = buf, *K = Q + T * hs, *V = K + T * hs, *S = V + T * hs;
	vreal *O = S + T * T;
	for (int b0 = 0; b0 < B; b0 += VL) {
		int nb = B - b0 < VL ? B - b0 : VL;
		for (int h = 0; h < NH; h++) {
			/* lanes past the end repeat window b0 (discarded) */
			const fc_real *sq[VL], *sk[VL], *sv[VL];
			fc_real *so[VL], *sa[VL];
			for (int w = 0; w < VL; w++) {
				size_t b = (size_t)b0 + (w < nb ? w : 0);
				sq[w] = qkv + b * T3C + (size_t)h * hs;
				sk[w] = sq[w] + C;
				sv[w] = sq[w] + 2 * C;
				so[w] = out + b * T * C + (size_t)h * hs;
				sa[w] = att + (b * NH + h) * T * T;
			}
			lane_gather(Q, sq, T, hs, 3 * (size_t)C);
			lane_gather(K, sk, T, hs, 3 * (size_t)C);
			lane_gather(V, sv, T, hs, 3 * (size_t)C);
			for (int t = 0; t < T; t++) {
				vreal *s = S + (size_t)t * T;
				lane_dots(s, Q + (size_t)t * hs, K, T, hs,
					  scale);
				vreal mx = s[0];
				for (int t2 = 1; t2 < T; t2++)
					vmax(&mx, &s[t2]);
				vreal sum = {0};
				for (int t2 = 0; t2 < T; t2++) {
					vreal e = s[t2] - mx;
					vexp(&e);
					s[t2] = e;
					sum += e;
				}
				vreal inv = R_(1.0) / sum;
				for (int t2 = 0; t2 < T; t2++)
					s[t2] *= inv;
				/* out [t, hs] = s [T] V [T, hs] */
				lane_matvec(O + (size_t)t * hs, s, 1, V, T, hs);
			}
			for (int t = 0; t < T; t++)
				lane_put(so, (size_t)t * C, O + (size_t)t * hs,
					 hs, nb, 0);
			/* att for backward: a full group of VL windows keeps
			 * its softmax lane-interleaved ([NH, T, T] vectors
			 * over the group's rows of att), a partial one as
			 * [B, NH, T, T] */
			if (nb == VL)
				memcpy(att +
					   ((size_t)b0 * NH + (size_t)h * VL) *
					       T * T,
				       S, sizeof(vreal) * T * T);
			else
				lane_put(sa, 0, S, T * T, nb, 0);
		}
	}
}

/* acc = 0: dqkv is written, not added to (every element of it is) */
FC_VEC static void attention_backward_lanes(fc_real *dqkv, const fc_real *dout,
					    const fc_real *qkv,
					    const fc_real *att, int B, int T,
					    int C, int NH, int acc)
{
	int hs = C / NH;
	fc_real scale = R_(1.0) / SQRT((fc_real)hs);
	size_t T3C = (size_t)T * 3 * C, TC = (size_t)T * C;
	vreal buf[ATT_LANE_MAX];
	vreal *Q = buf, *K = Q + T * hs, *V = K + T * hs, *Dd = V + T * hs;
	vreal *A = Dd + T * hs, *P = A + T * T, *G = P + T * T;
	for (int b0 = 0; b0 < B; b0 += VL) {
		int nb = B - b0 < VL ? B - b0 : VL;
		for (int h = 0; h < NH; h++) {
			const fc_real *sq[VL], *sk[VL], *sv[VL], *sd[VL],
			    *sa[VL];
			fc_real *gq[VL], *gk[VL], *gv[VL];
			for (int w = 0; w < VL; w++) {
				size_t b = (size_t)b0 + (w < nb ? w : 0);
				sq[w] = qkv + b * T3C + (size_t)h * hs;
				sk[w] = sq[w] + C;
				sv[w] = sq[w] + 2 * C;
				sd[w] = dout + b * TC + (size_t)h * hs;
				sa[w] = att + (b * NH + h) * T * T;
				gq[w] = dqkv + b * T3C + (size_t)h * hs;
				gk[w] = gq[w] + C;
				gv[w] = gq[w] + 2 * C;
			}
			lane_gather(Q, sq, T, hs, 3 * (size_t)C);
			lane_gather(K, sk, T, hs, 3 * (size_t)C);
			lane_gather(V, sv, T, hs, 3 * (size_t)C);
			lane_gather(Dd, sd, T, hs, (size_t)C);
			if (nb == VL) /* see attention_forward_lanes */
				memcpy(A,
				       att +
					   ((size_t)b0 * NH + (size_t)h * VL) *
					       T * T,
				       sizeof(vreal) * T * T);
			else
				lane_gather(A, (const fc_real *const *)sa, 1,
					    T * T, 0);
			/* datt [t, t2] = d [t] . v [t2]; then the softmax's
			 * backward, scaled: p = a (datt - a . datt) scale */
			for (int t = 0; t < T; t++) {
				vreal *p = P + (size_t)t * T;
				const vreal *a = A + (size_t)t * T;
				lane_dots(p, Dd + (size_t)t * hs, V, T, hs,
					  R_(1.0));
				vreal dot = {0};
				for (int t2 = 0; t2 < T; t2++)
					dot += a[t2] * p[t2];
				for (int t2 = 0; t2 < T; t2++)
					p[t2] = a[t2] * (p[t2] - dot) * scale;
			}
			/* dq [t] = sum_t2 p [t, t2] k [t2]; dk [t2] = sum_t
			 * p [t, t2] q [t]; dv [t2] = sum_t a [t, t2] d [t] */
			for (int t = 0; t < T; t++) {
				size_t o = (size_t)t * 3 * C;
				lane_matvec(G, P + (size_t)t * T, 1, K, T, hs);
				lane_put(gq, o, G, hs, nb, acc);
				lane_matvec(G, P + t, (size_t)T, Q, T, hs);
				lane_put(gk, o, G, hs, nb, acc);
				lane_matvec(G, A + t, (size_t)T, Dd, T, hs);
				lane_put(gv, o, G, hs, nb, acc);
			}
		}
	}
}

/* A shape runs on the lane kernels when their stack buffers hold it
 * (attention_backward_lanes' is the larger); forward and backward must
 * agree: they share att's layout. */
int nn_attention_uses_lanes(int T, int hs)
{
	return (size_t)4 * T * hs + (size_t)hs + (size_t)2 * T * T <=
	       ATT_LANE_MAX;
}

void nn_attention_forward(fc_real *out, fc_real *att, const fc_real *qkv, int B,
			  int T, int C, int NH)
{
	int hs = C / NH;
	if (nn_attention_uses_lanes(T, hs))
		attention_forward_lanes(out, att, qkv, B, T, C, NH);
	else
		attention_forward_mm(out, att, qkv, B, T, C, NH);
}

void nn_attention_backward(fc_real *dqkv, const fc_real *dout,
			   const fc_real *qkv, const fc_real *att, int B, int T,
			   int C, int NH)
{
	int hs = C / NH;
	if (nn_attention_uses_lanes(T, hs))
		attention_backward_lanes(dqkv, dout, qkv, att, B, T, C, NH, 1);
	else
		attention_backward_ref(dqkv, dout, qkv, att, B, T, C, NH);
}

void nn_attention_backward_set(fc_real *dqkv, const fc_real *dout,
			       const fc_real *qkv, const fc_real *att, int B,
			       int T, int C, int NH)
{
	int hs = C / NH;
	if (nn_attention_uses_lanes(T, hs)) {
		attention_backward_lanes(dqkv, dout, qkv, att, B, T, C, NH, 0);
	} else {
		memset(dqkv, 0, sizeof(fc_real) * (size_t)B * T * 3 * C);
		attention_backward_ref(dqkv, dout, qkv, att, B, T, C, NH);
	}
}
