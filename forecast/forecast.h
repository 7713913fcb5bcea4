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

/* ---- datasets (forecast/dataset.c) -----------------------------------
 * A CSV (or .csv.gz) of time series: first column a timestamp (or none, for
 * LSTNet-style files), then numeric columns.  Split and scaling follow
 * ../shared/EVAL.md exactly: ETT* files 60/20/20, every other file
 * 70/rest/20 (int() of the ratio times N for train and test, val is the
 * rest); each channel z-scored with mean/std of the train rows only.
 * Windows of a split with rows [a, b) start at a - L (a = 0 for train) and
 * have their horizon end inside the split:
 *   window i: lookback rows [s + i, s + i + L), horizon [s + i + L, +H).
 */
struct fc_dataset {
	char name[64];	  /* file base name without extensions, e.g. "ETTh1" */
	int n_rows;	  /* time steps */
	int n_cols;	  /* channels (selected numeric columns) */
	char **col_names; /* [n_cols] */
	double *timestamps; /* [n_rows] epoch seconds; row index if none */
	float *raw;	    /* [n_rows, n_cols] values as read */
	float *scaled; /* [n_rows, n_cols] z-scored with train statistics */
	float *mean;   /* [n_cols] train mean */
	float *std;    /* [n_cols] train std (population), >= 1e-8 */
	int train_end; /* train rows [0, train_end) */
	int val_end;   /* val rows [train_end, val_end); test [val_end, n) */
	double step_seconds; /* median spacing of timestamps (0 if none) */
};

enum fc_split { FC_SPLIT_TRAIN, FC_SPLIT_VAL, FC_SPLIT_TEST };

/*
 * Load path (.csv or .csv.gz).  columns: NULL or "all" for every numeric
 * column, else a comma-separated list of column names.  On success *ret is
 * a new dataset owned by the caller (free with fc_dataset_free).  Errors
 * (unreadable file, ragged rows, non-numeric cell, unknown column, too few
 * rows) return a negative errno with "FILE:LINE: reason" in errbuf.
 */
int fc_dataset_load(const char *path, const char *columns,
		    struct fc_dataset **ret, char *errbuf, size_t errbuf_size);
void fc_dataset_free(struct fc_dataset *d);

/* First row of the first window of a split (a - L; 0 for train), and the
 * number of windows of lookback L and horizon H in it (0 if too short). */
int fc_dataset_split_start(const struct fc_dataset *d, enum fc_split s,
			   int lookback);
int fc_dataset_split_windows(const struct fc_dataset *d, enum fc_split s,
			     int lookback, int horizon);

#endif
