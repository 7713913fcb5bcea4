/*
 * The optimizer: AdamW over a flat parameter block with its moments in a
 * caller-owned state block, and global-norm gradient clipping.  Shared by
 * offline training (train.c) and test-time adaptation (ttt/).
 */
#include "forecast/forecast.h"

#include <math.h>
#include <stddef.h>

/* AVX2 versions of the optimizer loops, picked at run time (the build
 * stays portable) */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FC_AVX2 1
#endif

size_t fc_adam_state_len(size_t n)
{
	return 2 * n;
}

/* Adam's update of elements [i, n): the reference arithmetic, and the
 * tail of the vector version (same expressions, same rounding). */
static void adam_scalar(const struct fc_adam *o, float *restrict param,
			const float *restrict grad, float *restrict mo,
			float *restrict v, size_t i, size_t n, float c1,
			float c2)
{
	for (; i < n; i++) {
		float g = grad[i];
		mo[i] = o->beta1 * mo[i] + (1.0f - o->beta1) * g;
		v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g * g;
		float mh = mo[i] * c1, vh = v[i] * c2;
		param[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) +
				     o->weight_decay * param[i]);
	}
}

#ifdef FC_AVX2

/* Eight elements at a time with AVX2 but without FMA, so that every
 * product and sum rounds as the scalar code's (vsqrtps and vdivps are
 * correctly rounded like sqrtss and divss): the update is bit-identical
 * to adam_scalar. */
__attribute__((target("avx2"))) static size_t
adam_avx2(const struct fc_adam *o, float *restrict param,
	  const float *restrict grad, float *restrict mo, float *restrict v,
	  size_t n, float c1, float c2)
{
	const __m256 b1 = _mm256_set1_ps(o->beta1);
	const __m256 b2 = _mm256_set1_ps(o->beta2);
	const __m256 k1 = _mm256_set1_ps(1.0f - o->beta1);
	const __m256 k2 = _mm256_set1_ps(1.0f - o->beta2);
	const __m256 vc1 = _mm256_set1_ps(c1), vc2 = _mm256_set1_ps(c2);
	const __m256 lr = _mm256_set1_ps(o->lr), eps = _mm256_set1_ps(o->eps);
	const __m256 wd = _mm256_set1_ps(o->weight_decay);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_loadu_ps(grad + i);
		__m256 m =
		    _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(mo + i)),
				  _mm256_mul_ps(k1, g));
		__m256 s =
		    _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
				  _mm256_mul_ps(_mm256_mul_ps(k2, g), g));
		_mm256_storeu_ps(mo + i, m);
		_mm256_storeu_ps(v + i, s);
		__m256 mh = _mm256_mul_ps(m, vc1), vh = _mm256_mul_ps(s, vc2);
		__m256 p = _mm256_loadu_ps(param + i);
		__m256 u = _mm256_add_ps(
		    _mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), eps)),
		    _mm256_mul_ps(wd, p));
		_mm256_storeu_ps(param + i,
				 _mm256_sub_ps(p, _mm256_mul_ps(lr, u)));
	}
	return i;
}

/* sum of squares in double, four lanes and two accumulators */
__attribute__((target("avx2"))) static double sumsq_avx2(const float *g,
							 size_t n)
{
	__m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256d x = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
		__m256d y = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4));
		a0 = _mm256_add_pd(a0, _mm256_mul_pd(x, x));
		a1 = _mm256_add_pd(a1, _mm256_mul_pd(y, y));
	}
	double s[4];
	_mm256_storeu_pd(s, _mm256_add_pd(a0, a1));
	double t = (s[0] + s[2]) + (s[1] + s[3]);
	for (; i < n; i++)
		t += (double)g[i] * (double)g[i];
	return t;
}
#endif

void fc_adam_step(const struct fc_adam *o, float *param, const float *grad,
		  float *state, size_t n, long step)
{
	float *mo = state, *v = state + n;
	double bc1 = 1.0 - pow((double)o->beta1, (double)step);
	double bc2 = 1.0 - pow((double)o->beta2, (double)step);
	float c1 = (float)(1.0 / bc1), c2 = (float)(1.0 / bc2);
	size_t i = 0;
#ifdef FC_AVX2
	if (__builtin_cpu_supports("avx2"))
		i = adam_avx2(o, param, grad, mo, v, n, c1, c2);
#endif
	adam_scalar(o, param, grad, mo, v, i, n, c1, c2);
}

float fc_grad_clip(float *grad, size_t n, float max_norm)
{
	double s = 0;
#ifdef FC_AVX2
	if (__builtin_cpu_supports("avx2"))
		s = sumsq_avx2(grad, n);
	else
#endif
		for (size_t i = 0; i < n; i++)
			s += (double)grad[i] * (double)grad[i];
	float norm = (float)sqrt(s);
	if (norm > max_norm && norm > 0.0f) {
		float k = max_norm / norm;
		for (size_t i = 0; i < n; i++)
			grad[i] *= k;
	}
	return norm;
}
