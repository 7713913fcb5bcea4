/*
 * forecast: the numeric core of driftcast.
 *
 * This folder does no I/O beyond model files and never logs; functions
 * return 0 or a negative errno and explain failures through
 * (errbuf, errbuf_size) where a human needs a reason.
 */
#ifndef DRIFTCAST_FORECAST_H
#define DRIFTCAST_FORECAST_H

#include <stddef.h>

/* ---- BLAS -------------------------------------------------------------
 * All matrix products go through GSL's gsl_blas_* interface, which the
 * build links against OpenBLAS's CBLAS (never GSL's reference libgslcblas).
 */

/* Describe the BLAS in use ("OpenBLAS 0.3.21 ... threads=1") into buf. */
void fc_blas_describe(char *buf, size_t size);

/* Path of the shared object that provides cblas_sgemm to GSL (static
 * string owned by the dynamic loader).  Must name libopenblas. */
const char *fc_blas_provider(void);

/* Set the number of BLAS threads (>= 1); returns the number in effect. */
int fc_blas_set_threads(int n);

#endif
