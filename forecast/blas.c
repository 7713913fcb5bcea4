/*
 * Which BLAS we run on, and how many threads it uses.
 *
 * OpenBLAS's own cblas.h clashes with GSL's gsl_cblas.h (both declare the
 * cblas_* prototypes), so the OpenBLAS extensions we need are declared
 * here instead.
 */
#include "forecast/internal.h"

#include <dlfcn.h>
#include <gsl/gsl_cblas.h>
#include <stdio.h>

char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

void fc_blas_describe(char *buf, size_t size)
{
	snprintf(buf, size,
		 "gsl_blas_* -> cblas_sgemm from %s (%s; core %s; threads %d)",
		 fc_blas_provider(), openblas_get_config(),
		 openblas_get_corename(), openblas_get_num_threads());
}

int fc_blas_set_threads(int n)
{
	if (n < 1)
		n = 1;
	openblas_set_num_threads(n);
	return openblas_get_num_threads();
}

const char *fc_blas_provider(void)
{
	Dl_info info;
	if (!dladdr((void *)cblas_sgemm, &info) || !info.dli_fname)
		return "unknown";
	return info.dli_fname;
}
