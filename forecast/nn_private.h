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

/* v = the rows [r0, ...) of a (every buffer is row-major by window) */
void nn_acts_view(struct nn_acts *v, const struct nn_acts *a,
		  const struct nn_layout *lo, int r0);

/* The backward of nn_weights: the adapter's gradients gad (LoRA pairs and
 * norm deltas; the calibration is the forecast head's) from those of the
 * effective weights, gp. */
void nn_weights_backward(fc_real *gad, const fc_real *gp, const fc_real *ad,
			 const struct nn_layout *lo);

#endif
