/*
 * Private to the nn_*.c files: the arithmetic of the precision switch, the
 * one GEMM wrapper every product goes through, the 32-byte vectors of the
 * hand-vectorised kernels, and the pieces of the layout the whole-model
 * passes use.  Nothing outside nn_*.c includes it.
 */
#ifndef DRIFTCAST_FORECAST_NN_PRIVATE_H
#define DRIFTCAST_FORECAST_NN_PRIVATE_H

#include <gsl/gsl_cblas.h>
#include <string.h>

#include "forecast/nn_layers.h"

#ifdef FC_REAL_DOUBLE
#define GEMM  cblas_dgemm
#define GEMV  cblas_dgemv
#define R_(x) (x)
#define SQRT  sqrt
#define EXP   exp
#else
#define GEMM  cblas_sgemm
#define GEMV  cblas_sgemv
#define R_(x) ((float)(x))
#define SQRT  sqrtf
#define EXP   expf
#endif

/* Hot elementwise loops are compiled twice, for x86-64-v3 (AVX2, FMA) and
 * baseline, and picked at load time (the build itself stays portable). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define FC_VEC __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FC_VEC
#endif

/* C [M, N] = op(A) [M, K] op(B) [K, N] + beta C, row-major; ta, tb:
 * transpose A, B.  Every matrix product of the network is one call. */
void nn_gemm(int ta, int tb, int M, int N, int K, const fc_real *A, int lda,
	     const fc_real *B, int ldb, fc_real beta, fc_real *C, int ldc);

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

#ifndef FC_REAL_DOUBLE
/* tanh as a rational function (the 13/6 approximation Eigen uses for
 * float) of x clamped to +-NN_TANH_CLAMP, for T float or vreal: one
 * expression for the scalar fast_tanhf (nn_layers.c) and the vector
 * kernels (nn_fused.c), which therefore round alike. */
#define NN_TANH_CLAMP 7.90531110763549805f
#define NN_TANH_RATIONAL(T, x)                                               \
	({                                                                   \
		T x_ = (x), x2_ = x_ * x_;                                   \
		T p_ = x2_ * -2.76076847742355e-16f + 2.00018790482477e-13f; \
		p_ = p_ * x2_ + -8.60467152213735e-11f;                      \
		p_ = p_ * x2_ + 5.12229709037114e-08f;                       \
		p_ = p_ * x2_ + 1.48572235717979e-05f;                       \
		p_ = p_ * x2_ + 6.37261928875436e-04f;                       \
		p_ = p_ * x2_ + 4.89352455891786e-03f;                       \
		p_ = p_ * x_;                                                \
		T q_ = x2_ * 1.19825839466702e-06f + 1.18534705686654e-04f;  \
		q_ = q_ * x2_ + 2.26843463243900e-03f;                       \
		q_ = q_ * x2_ + 4.89352518554385e-03f;                       \
		p_ / q_;                                                     \
	})
#endif

/* v = the rows [r0, ...) of a (every buffer is row-major by window) */
void nn_acts_view(struct nn_acts *v, const struct nn_acts *a,
		  const struct nn_layout *lo, int r0);

/* The backward of nn_weights: the adapter's gradients gad (LoRA pairs and
 * norm deltas; the calibration is the forecast head's) from those of the
 * effective weights, gp. */
void nn_weights_backward(fc_real *gad, const fc_real *gp, const fc_real *ad,
			 const struct nn_layout *lo);

#endif
