/*
 * The BLAS behind GSL must be OpenBLAS: the symbol cblas_sgemm that
 * gsl_blas_sgemm calls resolves into libopenblas, and neither this test
 * nor the driftcast binary links GSL's reference libgslcblas.
 */
#include <criterion/criterion.h>
#include <gsl/gsl_blas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/internal.h" /* fc_blas_provider */

Test(blas, cblas_sgemm_comes_from_openblas)
{
	const char *p = fc_blas_provider();
	cr_assert(strstr(p, "openblas"), "cblas_sgemm comes from %s", p);
	cr_assert_null(strstr(p, "gslcblas"));
}

Test(blas, driftcast_binary_does_not_link_gslcblas)
{
	const char *bin = getenv("DRIFTCAST");
	char cmd[1024], line[512];
	int saw_openblas = 0;
	cr_assert(bin);
	snprintf(cmd, sizeof(cmd), "ldd '%s'", bin);
	FILE *f = popen(cmd, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		cr_assert_null(strstr(line, "libgslcblas"), "links: %s", line);
		if (strstr(line, "libopenblas"))
			saw_openblas = 1;
	}
	cr_assert_eq(pclose(f), 0);
	cr_assert(saw_openblas, "driftcast does not link libopenblas");
}

Test(blas, gsl_blas_sgemm_computes_a_product)
{
	float a[6] = {1, 2, 3, 4, 5, 6}; /* 2x3 */
	float b[6] = {1, 0, 0, 1, 1, 1}; /* 3x2 */
	float c[4] = {0};
	gsl_matrix_float_view A = gsl_matrix_float_view_array(a, 2, 3);
	gsl_matrix_float_view B = gsl_matrix_float_view_array(b, 3, 2);
	gsl_matrix_float_view C = gsl_matrix_float_view_array(c, 2, 2);
	cr_assert_eq(gsl_blas_sgemm(CblasNoTrans, CblasNoTrans, 1.0f, &A.matrix,
				    &B.matrix, 0.0f, &C.matrix),
		     0);
	cr_assert_float_eq(c[0], 4.0f, 1e-6);
	cr_assert_float_eq(c[1], 5.0f, 1e-6);
	cr_assert_float_eq(c[2], 10.0f, 1e-6);
	cr_assert_float_eq(c[3], 11.0f, 1e-6);
}

Test(blas, thread_count_is_settable)
{
	cr_assert_eq(fc_blas_set_threads(1), 1);
	cr_assert_eq(fc_blas_set_threads(0), 1);
}
