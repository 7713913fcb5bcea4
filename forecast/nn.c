/*
 * The network: layers as forward/backward pairs over caller-owned flat
 * buffers (karpathy/llm.c style), the layout of base weights and adapter
 * blocks, and the whole-model forward, loss and backward.
 *
 * Forward stores what backward needs; backward mirrors forward in reverse
 * and accumulates (+=) into gradient buffers.  Argument order: outputs,
 * inputs, sizes.  Written over fc_real so that the same code compiles in
 * double precision for the gradient checks (see nn.h).  Dimension letters:
 * see nn.h.
 */
#include "forecast/nn.h"

#include <errno.h>
#include <gsl/gsl_cblas.h>
#include <math.h>
#include <string.h>

#ifdef FC_REAL_DOUBLE
#define GEMM  cblas_dgemm
#define GEMV  cblas_dgemv
#define R_(x) (x)
#define SQRT  sqrt
#define EXP   exp
#define TANH  tanh
#else
#define GEMM  cblas_sgemm
#define GEMV  cblas_sgemv
#define R_(x) ((float)(x))
#define SQRT  sqrtf
#define EXP   expf
#define TANH  fast_tanhf
/* tanh as a rational function (the 13/6 approximation Eigen uses for
 * float): no libm call, so gcc vectorises the GELU and GRU loops; libm's
 * tanhf was a third of the transformer's training time.  Error within a few
 * 1e-7 of tanhf (tested); saturates to +-1 beyond |x| = 7.9. */
static inline float fast_tanhf(float x)
{
	const float clamp = 7.90531110763549805f;
	/* two selects that map onto minps/maxps (NaN passes through) */
	x = x < clamp ? x : clamp;
	x = x > -clamp ? x : -clamp;
	float x2 = x * x;
	float p = -2.76076847742355e-16f;
	p = p * x2 + 2.00018790482477e-13f;
	p = p * x2 + -8.60467152213735e-11f;
	p = p * x2 + 5.12229709037114e-08f;
	p = p * x2 + 1.48572235717979e-05f;
	p = p * x2 + 6.37261928875436e-04f;
	p = p * x2 + 4.89352455891786e-03f;
	p = p * x;
	float q = 1.19825839466702e-06f;
	q = q * x2 + 1.18534705686654e-04f;
	q = q * x2 + 2.26843463243900e-03f;
	q = q * x2 + 4.89352518554385e-03f;
	return p / q;
}

float nn_tanh_for_test(float x);
float nn_tanh_for_test(float x)
{
	return fast_tanhf(x);
}
#endif

/* Hot elementwise loops are compiled twice, for x86-64-v3 (AVX2, FMA) and
 * baseline, and picked at load time (the build itself stays portable). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define FC_VEC __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FC_VEC
#endif

/* C [M, N] = op(A) [M, K] op(B) [K, N] + beta C, row-major. */
static void mm(int ta, int tb, int M, int N, int K, const fc_real *A, int lda,
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

/* ---- layers ------------------------------------------------------------ */

void NN(linear_forward)(fc_real *out, const fc_real *inp, const fc_real *w,
			const fc_real *b, int BT, int C, int OC)
{
	/* out [BT, OC] = inp [BT, C] @ w [OC, C]^T + b [OC]; the bias is
	 * copied first and the product added (beta 1), one pass fewer than
	 * zeroing, multiplying and adding the bias */
	if (b) {
		for (int i = 0; i < BT; i++)
			memcpy(out + (size_t)i * OC, b, sizeof(fc_real) * OC);
		mm(0, 1, BT, OC, C, inp, C, w, C, R_(1.0), out, OC);
	} else {
		mm(0, 1, BT, OC, C, inp, C, w, C, R_(0.0), out, OC);
	}
}

void NN(linear_backward)(fc_real *dinp, fc_real *dw, fc_real *db,
			 const fc_real *dout, const fc_real *inp,
			 const fc_real *w, int BT, int C, int OC)
{
	if (dinp) /* dinp [BT, C] += dout [BT, OC] @ w [OC, C] */
		mm(0, 0, BT, C, OC, dout, OC, w, C, R_(1.0), dinp, C);
	if (dw) /* dw [OC, C] += dout^T @ inp */
		mm(1, 0, OC, C, BT, dout, OC, inp, C, R_(1.0), dw, C);
	if (db)
		for (int i = 0; i < BT; i++)
			for (int o = 0; o < OC; o++)
				db[o] += dout[(size_t)i * OC + o];
}

/* 32-byte vectors of fc_real (8 floats or 4 doubles), written with gcc's
 * vector extension: in the x86-64-v3 clones they are AVX registers, in the
 * baseline build pairs of SSE registers.  Never passed by value to a
 * function that is not inlined (that would change the baseline ABI). */
#define VL ((int)(32 / sizeof(fc_real)))
typedef fc_real vreal __attribute__((vector_size(32)));
#ifdef FC_REAL_DOUBLE
typedef int64_t vmask __attribute__((vector_size(32)));
#else
typedef int32_t vmask __attribute__((vector_size(32)));
#endif
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* an unaligned load (a macro: an inline function would return a vector) */
#define vload(p)                              \
	({                                    \
		vreal v_;                     \
		memcpy(&v_, (p), sizeof(v_)); \
		v_;                           \
	})

ALWAYS_INLINE fc_real hsum(const vreal *v)
{
	fc_real s[VL];
	memcpy(s, v, sizeof(s));
	for (int k = VL / 2; k > 0; k /= 2)
		for (int j = 0; j < k; j++)
			s[j] += s[j + k];
	return s[0];
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

FC_VEC void NN(layernorm_forward)(fc_real *out, fc_real *mean, fc_real *rstd,
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

FC_VEC void NN(layernorm_backward)(fc_real *dinp, fc_real *dw, fc_real *db,
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

FC_VEC void NN(gelu_forward)(fc_real *out, const fc_real *inp, int n)
{
	for (int i = 0; i < n; i++) {
		fc_real x = inp[i];
		fc_real u = GELU_K * (x + R_(0.044715) * x * x * x);
		out[i] = R_(0.5) * x * (R_(1.0) + TANH(u));
	}
}

FC_VEC void NN(gelu_backward)(fc_real *dinp, const fc_real *inp,
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
			mm(0, 1, T, T, hs, q, 3 * C, k, 3 * C, R_(0.0), a, T);
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
			mm(0, 0, T, hs, T, a, T, v, 3 * C, R_(0.0),
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

/* Whether a shape runs on the lane kernels (their stack buffers hold it);
 * forward and backward must agree: they share att's layout. */
static int att_lanes(int T, int hs)
{
	return (size_t)4 * T * hs + (size_t)hs + (size_t)2 * T * T <=
	       ATT_LANE_MAX;
}

void NN(attention_forward)(fc_real *out, fc_real *att, const fc_real *qkv,
			   int B, int T, int C, int NH)
{
	int hs = C / NH;
	if (att_lanes(T, hs))
		attention_forward_lanes(out, att, qkv, B, T, C, NH);
	else
		attention_forward_mm(out, att, qkv, B, T, C, NH);
}

void NN(attention_backward)(fc_real *dqkv, const fc_real *dout,
			    const fc_real *qkv, const fc_real *att, int B,
			    int T, int C, int NH)
{
	int hs = C / NH;
	if (att_lanes(T, hs))
		attention_backward_lanes(dqkv, dout, qkv, att, B, T, C, NH, 1);
	else
		attention_backward_ref(dqkv, dout, qkv, att, B, T, C, NH);
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

void NN(gru_forward)(fc_real *h, fc_real *gi, fc_real *gh, fc_real *gate,
		     const fc_real *inp, const fc_real *wih, const fc_real *bih,
		     const fc_real *whh, const fc_real *bhh, int B, int T,
		     int C, int D)
{
	int G = 3 * D;
	/* gi [B*T, 3D] = inp @ wih^T + bih, all steps at once */
	NN(linear_forward)(gi, inp, wih, bih, B * T, C, G);
	for (int t = 0; t < T; t++) {
		/* gh[:, t] [B, 3D] = h[:, t-1] @ whh^T + bhh (h[-1] = 0) */
		for (int b = 0; b < B; b++)
			memcpy(gh + ((size_t)b * T + t) * G, bhh,
			       sizeof(fc_real) * (size_t)G);
		if (t > 0)
			mm(0, 1, B, G, D, h + (size_t)(t - 1) * D, T * D, whh,
			   D, R_(1.0), gh + (size_t)t * G, T * G);
		for (int b = 0; b < B; b++) {
			size_t o = ((size_t)b * T + t);
			gru_gates(gate + o * G, h + o * D, gi + o * G,
				  gh + o * G, t > 0 ? h + (o - 1) * D : zeros,
				  D);
		}
	}
}

void NN(gru_backward)(fc_real *dinp, fc_real *dwih, fc_real *dbih,
		      fc_real *dwhh, fc_real *dbhh, fc_real *dh, fc_real *dgi,
		      fc_real *dgh, const fc_real *inp, const fc_real *h,
		      const fc_real *gh, const fc_real *gate,
		      const fc_real *wih, const fc_real *whh, int B, int T,
		      int C, int D)
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
			mm(0, 0, B, D, G, dgh + (size_t)t * G, T * G, whh, D,
			   R_(1.0), dh + (size_t)(t - 1) * D, T * D);
	}
	/* weights: dwhh += sum_t dgh[:, t]^T @ h[:, t-1]; dbhh over all t */
	if (dwhh)
		for (int t = 1; t < T; t++)
			mm(1, 0, G, D, B, dgh + (size_t)t * G, T * G,
			   h + (size_t)(t - 1) * D, T * D, R_(1.0), dwhh, D);
	if (dbhh)
		for (size_t i = 0; i < (size_t)B * T; i++)
			for (int k = 0; k < G; k++)
				dbhh[k] += dgh[i * G + k];
	NN(linear_backward)(dinp, dwih, dbih, dgi, inp, wih, B * T, C, G);
}

int NN(instnorm_forward)(fc_real *xn, fc_real *mu, fc_real *sd,
			 const fc_real *x, int B, int L)
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
		fc_real s = (fc_real)sqrt(var + NN_IN_EPS);
		mu[b] = (fc_real)m;
		sd[b] = s;
		for (int t = 0; t < L; t++)
			o[t] = (xb[t] - mu[b]) / s;
	}
	return 0;
}

void NN(instnorm_backward)(fc_real *dx, const fc_real *dxn, const fc_real *dmu,
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
		for (int t = 0; t < L; t++)
			dx[(size_t)b * L + t] +=
			    (d[t] - mean_d - n[t] * mean_dn) / sd[b] + gmu +
			    gsd * (xb[t] - mu[b]);
	}
}

void NN(patch_forward)(fc_real *tok, const fc_real *xn, const fc_real *m, int B,
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

void NN(patch_backward)(fc_real *dxn, const fc_real *dtok, const fc_real *m,
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

const char *NN(tensor_name)(int kind)
{
	return kind >= 0 && kind < T_COUNT ? tensor_names[kind] : "?";
}

const char *NN(atensor_name)(int kind)
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

void NN(layout)(struct nn_layout *lo, const struct fc_config *c)
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

void NN(init_params)(const struct nn_layout *lo, fc_real *p, uint64_t seed)
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

void NN(init_adapter)(const struct nn_layout *lo, fc_real *a, uint64_t seed)
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

size_t NN(acts_carve)(struct nn_acts *a, fc_real *mem,
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

/* v = the rows [r0, ...) of a (every buffer is row-major by window) */
static void acts_view(struct nn_acts *v, const struct nn_acts *a,
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

/* dst [out, in] = src + B [out, r] @ A [r, in] (rows of dst from row0) */
static void lora_merge(fc_real *dst, const fc_real *A, const fc_real *B,
		       int out, int in, int r)
{
	mm(0, 0, out, in, r, B, r, A, in, R_(1.0), dst, in);
}

void NN(weights)(struct nn_weights *w, const struct nn_layout *lo,
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

/* ---- the model ----------------------------------------------------------- */

#define W(k, l) (w->t[k][l])

/* ---- fused elementwise passes of the transformer layer ------------------ */

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

/* fch [BT, F] += b [F]; fcg = gelu(fch): the bias of the GEMM that wrote
 * fch, and the activation, in one pass */
FC_VEC static void bias_gelu(fc_real *restrict fcg, fc_real *restrict fch,
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

/* The same for a pass that backward follows: fch = gelu'(fch + b) instead
 * (the only use backward has for the pre-activation), so that backward
 * multiplies instead of evaluating tanh again. */
FC_VEC static void bias_gelu_deriv(fc_real *restrict fcg, fc_real *restrict fch,
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

/* out [n] = a [n] * b [n] */
FC_VEC static void mul_set(fc_real *restrict out, const fc_real *restrict a,
			   const fc_real *restrict b, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = a[i] * b[i];
}

/* db [C] += column sums of d [BT, C] */
FC_VEC static void bias_grad(fc_real *restrict db, const fc_real *restrict d,
			     int BT, int C)
{
	for (size_t i = 0; i < (size_t)BT; i++)
		for (int c = 0; c < C; c++)
			db[c] += d[i * C + c];
}

/* out [BT, OC] (+)= inp [BT, C] @ w [OC, C]^T, no bias */
static void matmul_wt(fc_real *out, const fc_real *inp, const fc_real *w,
		      int BT, int C, int OC, fc_real beta)
{
	mm(0, 1, BT, OC, C, inp, C, w, C, beta, out, OC);
}

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

/* Forecast head of rows [0, bf) of a (views at the first row):
 * fc = head(lnf), pred = calibrated and de-normalised fc. */
static void forecast_head(const struct nn_layout *lo,
			  const struct nn_weights *w, struct nn_acts *a, int bf)
{
	int N = lo->N, D = lo->D, H = lo->H;
	NN(linear_forward)
	(a->fc, a->lnf, W(T_HEAD_W, 0), W(T_HEAD_B, 0), bf, N * D, H);
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

/* Forward of the rows of one chunk: bf forecast rows, then br recon rows,
 * a and w->cal_row are views at the chunk's first row.  keep: a backward
 * may follow (the activations are kept, fch holds GELU's derivative, and
 * the caller runs the forecast head over all chunks at once). */
static int forward_rows(const struct nn_layout *lo, const struct nn_weights *w,
			struct nn_acts *a, int bf, int br, int keep)
{
	int R = bf + br, L = lo->L, N = lo->N, D = lo->D, P = lo->P;
	int S = lo->S, F = lo->F;
	int RN = R * N;
	/* instance normalisation, masking, patching */
	if (NN(instnorm_forward)(a->xn, a->mu, a->sd, a->x, R, L) < 0)
		return -EINVAL;
	NN(patch_forward)(a->tok, a->xn, a->m, R, L, N, P, S);
	if (lo->gru) {
		NN(linear_forward)
		(a->emb, a->tok, W(T_EMB_W, 0), W(T_EMB_B, 0), RN, 2 * P, D);
	} else {
		/* emb = bias + positions, then the product on top */
		for (int b = 0; b < R; b++)
			residual_bias(a->emb + (size_t)b * N * D, W(T_POS, 0),
				      W(T_EMB_B, 0), N, D);
		matmul_wt(a->emb, a->tok, W(T_EMB_W, 0), RN, 2 * P, D, R_(1.0));
	}
	const fc_real *cur = a->emb;
	for (int l = 0; l < lo->NL; l++) {
		if (lo->gru) {
			NN(gru_forward)
			(a->h[l], a->gi[l], a->gh[l], a->gate[l], cur,
			 W(T_GRU_WIH, l), W(T_GRU_BIH, l), W(T_GRU_WHH, l),
			 W(T_GRU_BHH, l), R, N, D, D);
			cur = a->h[l];
			continue;
		}
		NN(layernorm_forward)
		(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], cur, W(T_LN1_W, l),
		 W(T_LN1_B, l), RN, D);
		NN(linear_forward)
		(a->qkv[l], a->ln1[l], W(T_QKV_W, l), W(T_QKV_B, l), RN, D,
		 3 * D);
		NN(attention_forward)
		(a->atty[l], a->att[l], a->qkv[l], R, N, D, lo->NH);
		/* res1 = cur + proj(atty) */
		residual_bias(a->res1[l], cur, W(T_PROJ_B, l), RN, D);
		matmul_wt(a->res1[l], a->atty[l], W(T_PROJ_W, l), RN, D, D,
			  R_(1.0));
		NN(layernorm_forward)
		(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l], a->res1[l],
		 W(T_LN2_W, l), W(T_LN2_B, l), RN, D);
		matmul_wt(a->fch[l], a->ln2[l], W(T_FC1_W, l), RN, D, F,
			  R_(0.0));
		if (!keep)
			bias_gelu(a->fcg[l], a->fch[l], W(T_FC1_B, l), RN, F);
		else
			bias_gelu_deriv(a->fcg[l], a->fch[l], W(T_FC1_B, l), RN,
					F);
		/* res2 = res1 + fc2(fcg) */
		residual_bias(a->res2[l], a->res1[l], W(T_FC2_B, l), RN, D);
		matmul_wt(a->res2[l], a->fcg[l], W(T_FC2_W, l), RN, F, D,
			  R_(1.0));
		cur = a->res2[l];
	}
	NN(layernorm_forward)
	(a->lnf, a->lnf_mean, a->lnf_rstd, cur, W(T_LNF_W, 0), W(T_LNF_B, 0),
	 RN, D);
	/* forecast head on rows [0, bf), unless the caller runs it over
	 * all chunks' forecast rows at once */
	if (bf > 0 && !keep)
		forecast_head(lo, w, a, bf);
	/* reconstruction head on rows [bf, R) */
	if (br > 0) {
		size_t o = (size_t)bf * N;
		fc_real *rec = a->rec + o * P;
		NN(linear_forward)
		(rec, a->lnf + o * D, W(T_REC_W, 0), W(T_REC_B, 0), br * N, D,
		 P);
		for (int b = 0; b < br; b++) {
			fc_real *rc = a->recon + (size_t)(bf + b) * L;
			const fc_real *rb = rec + (size_t)b * N * P;
			memset(rc, 0, sizeof(fc_real) * (size_t)L);
			for (int n = 0; n < N; n++)
				for (int p = 0; p < P; p++)
					if (n * S + p < L)
						rc[n * S + p] +=
						    rb[(size_t)n * P + p];
			for (int t = 0; t < L; t++) {
				/* patches covering t: n with nS <= t < nS+P */
				int hi = t / S, lo_n = (t - P) / S + 1;
				if (t < P)
					lo_n = 0;
				if (hi > N - 1)
					hi = N - 1;
				rc[t] /= (fc_real)(hi - lo_n + 1);
			}
		}
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
			  int br, int keep)
{
	int R = bf + br, cw = chunk_windows(lo);
	for (int c0 = 0; c0 < R; c0 += cw) {
		int nr = R - c0 < cw ? R - c0 : cw;
		int nf = chunk_forecast_rows(c0, nr, bf);
		struct nn_acts v;
		struct nn_weights wc = *w;
		acts_view(&v, a, lo, keep ? c0 : 0);
		if (!keep) {
			size_t r0 = (size_t)c0;
			v.x = a->x + r0 * lo->L;
			v.m = a->m + r0 * lo->L;
			v.mu = a->mu + r0;
			v.sd = a->sd + r0;
			v.fc = a->fc + r0 * lo->H;
			v.pred = a->pred + r0 * lo->H;
		}
		if (w->cal_row && nf > 0)
			wc.cal_row = w->cal_row + c0;
		int r = forward_rows(lo, &wc, &v, nf, nr - nf, keep);
		if (r < 0)
			return r;
	}
	/* with the activations kept, the head runs once over all forecast
	 * rows: one GEMM that packs the head's weights once */
	if (keep && bf > 0)
		forecast_head(lo, w, a, bf);
	return 0;
}

int NN(forward)(const struct nn_layout *lo, const struct nn_weights *w,
		struct nn_acts *a, int bf, int br)
{
	return forward_chunks(lo, w, a, bf, br, 1);
}

int NN(forecast)(const struct nn_layout *lo, const struct nn_weights *w,
		 struct nn_acts *a, int b)
{
	return forward_chunks(lo, w, a, b, 0, 0);
}

void NN(loss)(const struct nn_layout *lo, const struct nn_acts *a,
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

/* dA [r, in] = B^T @ dW; dB [out, r] = dW @ A^T (dW [out, in] rows) */
static void lora_grad(fc_real *dA, fc_real *dB, const fc_real *dW,
		      const fc_real *A, const fc_real *B, int out, int in,
		      int r)
{
	mm(1, 0, r, in, out, B, r, dW, in, R_(0.0), dA, in);
	mm(0, 1, out, r, in, dW, in, A, in, R_(0.0), dB, r);
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
#define GP(k, l) (gp + lo->off[k][l])
#define GA(k, l) (gad + lo->aoff[k][l])
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
	mm(0, 0, bf, N * D, H, g->fc, H, W(T_HEAD_W, 0), N * D, R_(0.0), g->lnf,
	   N * D);
	NN(linear_backward)
	(NULL, GP(T_HEAD_W, 0), GP(T_HEAD_B, 0), g->fc, a->lnf, W(T_HEAD_W, 0),
	 bf, N * D, H);
#undef GP
#undef GA
}

/* Backward of the rows of one chunk (views, as forward_rows) after
 * forecast_head_backward, adding into gp. */
static void backward_rows(const struct nn_layout *lo,
			  const struct nn_weights *w, const struct nn_acts *a,
			  struct nn_acts *g, int bf, int br, fc_real *gp)
{
	int R = bf + br, L = lo->L, N = lo->N, D = lo->D, P = lo->P;
	int S = lo->S, RN = R * N, F = lo->F;
#define GP(k, l) (gp + lo->off[k][l])
	/* g->lnf: the forecast rows were written by forecast_head_backward,
	 * the recon rows are written here (beta 0) */
	if (br > 0) {
		size_t o = (size_t)bf * N;
		fc_real *drec = g->rec + o * P;
		for (int b = 0; b < br; b++) {
			const fc_real *dr = g->recon + (size_t)(bf + b) * L;
			fc_real *db = drec + (size_t)b * N * P;
			for (int n = 0; n < N; n++)
				for (int p = 0; p < P; p++) {
					int t = n * S + p;
					fc_real v = 0;
					if (t < L) {
						int hi = t / S,
						    lo_n =
							t < P ? 0
							      : (t - P) / S + 1;
						if (hi > N - 1)
							hi = N - 1;
						v = dr[t] /
						    (fc_real)(hi - lo_n + 1);
					}
					db[(size_t)n * P + p] = v;
				}
		}
		mm(0, 0, br * N, D, P, drec, P, W(T_REC_W, 0), D, R_(0.0),
		   g->lnf + o * D, D);
		NN(linear_backward)
		(NULL, GP(T_REC_W, 0), GP(T_REC_B, 0), drec, a->lnf + o * D,
		 W(T_REC_W, 0), br * N, D, P);
	}
	/* final LayerNorm: dcur = gradient w.r.t. the backbone output */
	const fc_real *last = lo->gru ? a->h[lo->NL - 1] : a->res2[lo->NL - 1];
	fc_real *dcur = lo->gru ? g->h[lo->NL - 1] : g->res2[lo->NL - 1];
	memset(dcur, 0, sizeof(fc_real) * (size_t)RN * D);
	NN(layernorm_backward)
	(dcur, GP(T_LNF_W, 0), GP(T_LNF_B, 0), g->lnf, last, W(T_LNF_W, 0),
	 a->lnf_mean, a->lnf_rstd, RN, D);
	for (int l = lo->NL - 1; l >= 0; l--) {
		const fc_real *in = l == 0    ? a->emb
				    : lo->gru ? a->h[l - 1]
					      : a->res2[l - 1];
		if (lo->gru) {
			fc_real *din = l == 0 ? g->emb : g->h[l - 1];
			memset(din, 0, sizeof(fc_real) * (size_t)RN * D);
			NN(gru_backward)
			(din, GP(T_GRU_WIH, l), GP(T_GRU_BIH, l),
			 GP(T_GRU_WHH, l), GP(T_GRU_BHH, l), g->h[l], g->gi[l],
			 g->gh[l], in, a->h[l], a->gh[l], a->gate[l],
			 W(T_GRU_WIH, l), W(T_GRU_WHH, l), R, N, D, D);
			continue;
		}
		/* res2 = res1 + fc2(gelu(fc1(ln2(res1)))); the residual
		 * gradients are not copied: dres2 itself is dres1's start,
		 * and dres1 becomes din in place (one buffer, dcur, for
		 * every layer: g->res2 of the other layers and g->emb stay
		 * unused) */
		fc_real *dres1 = dcur;
		mm(0, 0, RN, F, D, dres1, D, W(T_FC2_W, l), F, R_(0.0),
		   g->fcg[l], F);
		mm(1, 0, D, F, RN, dres1, D, a->fcg[l], F, R_(1.0),
		   GP(T_FC2_W, l), F);
		bias_grad(GP(T_FC2_B, l), dres1, RN, D);
		/* a->fch holds GELU's derivative (bias_gelu_deriv) */
		mul_set(g->fch[l], a->fch[l], g->fcg[l], RN * F);
		mm(0, 0, RN, D, F, g->fch[l], F, W(T_FC1_W, l), D, R_(0.0),
		   g->ln2[l], D);
		mm(1, 0, F, D, RN, g->fch[l], F, a->ln2[l], D, R_(1.0),
		   GP(T_FC1_W, l), D);
		bias_grad(GP(T_FC1_B, l), g->fch[l], RN, F);
		NN(layernorm_backward)
		(dres1, GP(T_LN2_W, l), GP(T_LN2_B, l), g->ln2[l], a->res1[l],
		 W(T_LN2_W, l), a->ln2_mean[l], a->ln2_rstd[l], RN, D);
		/* res1 = in + proj(attn(qkv(ln1(in)))): din is dres1 plus
		 * the LayerNorm's gradient, added last (nothing reads dres1
		 * after the projection's backward) */
		mm(0, 0, RN, D, D, dres1, D, W(T_PROJ_W, l), D, R_(0.0),
		   g->atty[l], D);
		mm(1, 0, D, D, RN, dres1, D, a->atty[l], D, R_(1.0),
		   GP(T_PROJ_W, l), D);
		bias_grad(GP(T_PROJ_B, l), dres1, RN, D);
		if (att_lanes(N, D / lo->NH)) {
			attention_backward_lanes(g->qkv[l], g->atty[l],
						 a->qkv[l], a->att[l], R, N, D,
						 lo->NH, 0);
		} else {
			memset(g->qkv[l], 0,
			       sizeof(fc_real) * (size_t)RN * 3 * D);
			NN(attention_backward)
			(g->qkv[l], g->atty[l], a->qkv[l], a->att[l], R, N, D,
			 lo->NH);
		}
		mm(0, 0, RN, D, 3 * D, g->qkv[l], 3 * D, W(T_QKV_W, l), D,
		   R_(0.0), g->ln1[l], D);
		mm(1, 0, 3 * D, D, RN, g->qkv[l], 3 * D, a->ln1[l], D, R_(1.0),
		   GP(T_QKV_W, l), D);
		bias_grad(GP(T_QKV_B, l), g->qkv[l], RN, 3 * D);
		NN(layernorm_backward)
		(dres1, GP(T_LN1_W, l), GP(T_LN1_B, l), g->ln1[l], in,
		 W(T_LN1_W, l), a->ln1_mean[l], a->ln1_rstd[l], RN, D);
	}
	/* gradient of the embedding output */
	const fc_real *demb = lo->gru ? g->emb : dcur;
	if (!lo->gru) /* positions: summed over the windows, in order */
		bias_grad(GP(T_POS, 0), demb, R, N * D);
	NN(linear_backward)
	(NULL, GP(T_EMB_W, 0), GP(T_EMB_B, 0), demb, a->tok, W(T_EMB_W, 0), RN,
	 2 * P, D);
#undef GP
}

void NN(backward)(const struct nn_layout *lo, const struct nn_weights *w,
		  const fc_real *ad, const struct nn_acts *a, struct nn_acts *g,
		  int bf, int br, fc_real *gp, fc_real *gad)
{
	int R = bf + br, N = lo->N, D = lo->D, P = lo->P;
	int H = lo->H, F = lo->F, cw = chunk_windows(lo);
	memset(gp, 0, sizeof(fc_real) * lo->n_params);
	if (gad)
		memset(gad, 0, sizeof(fc_real) * lo->n_adapter);
	if (bf > 0)
		forecast_head_backward(lo, w, a, g, bf, gp, gad);
	for (int c0 = 0; c0 < R; c0 += cw) {
		int nr = R - c0 < cw ? R - c0 : cw;
		int nf = chunk_forecast_rows(c0, nr, bf);
		struct nn_acts va, vg;
		acts_view(&va, a, lo, c0);
		/* the gradients inside a chunk are scratch: every chunk uses
		 * the first chunk's rows, which stay in cache (the memsets
		 * and GEMM writes to rows last touched a chunk ago went to
		 * L3); only what crosses the chunk loop is at its rows */
		acts_view(&vg, g, lo, 0);
		vg.lnf = g->lnf + (size_t)c0 * N * D;
		vg.recon = g->recon + (size_t)c0 * lo->L;
		backward_rows(lo, w, &va, &vg, nf, nr - nf, gp);
	}
#define GP(k, l) (gp + lo->off[k][l])
#define GA(k, l) (gad + lo->aoff[k][l])
#define AD(k, l) (ad + lo->aoff[k][l])
	if (!gad || !ad)
		return;
	/* adapter gradients from the effective weights' gradients */
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
