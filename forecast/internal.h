/*
 * Private to forecast/ (and its tests): the definitions behind the opaque
 * model and workspace types, the passes model.c and calib.c share, the
 * functions only forecast/ and its tests call, and the errbuf helper.
 */
#ifndef DRIFTCAST_FORECAST_INTERNAL_H
#define DRIFTCAST_FORECAST_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

#include "forecast/forecast.h"
#include "forecast/modelbuf.h"
#include "forecast/nn.h"

#define FC_NAME_MAX 64 /* channel names in the scaler, with the NUL */

struct fc_model {
	struct fc_config cfg;
	struct nn_layout lo;
	uint64_t id;   /* unique in the process: workspace caches key on it */
	float *params; /* [lo.n_params], one block */
	int n_ch;      /* scaler */
	float *mean, *std;	    /* [n_ch] */
	char (*names)[FC_NAME_MAX]; /* [n_ch] */
	const char **name_ptrs;	    /* [n_ch] into names */
};

struct fc_workspace {
	struct fc_config cfg; /* of the models it serves */
	struct nn_layout lo;
	int max_batch;
	float *mem; /* one block: acts, grads, scratch, gp, grad adapter */
	size_t mem_mapped; /* bytes of mem when mmap'ed, else 0 (calloc) */
	struct nn_acts a, g;
	float *scratch; /* [lo.scratch] merged adapted weights */
	float *gp;	/* [lo.n_params] gradients of the effective weights */
	float *gad;	/* [lo.n_adapter] adapter gradient (all families) */
	float *packed;	/* [nn_forecast_scratch] nn_forecast's packed weights */
	/* merged weights of the last adapter: reused while the same model
	 * and an adapter with equal contents come back (a series forecasting
	 * step after step with an unchanged adapter) */
	float *cached;		    /* [lo.n_adapter] copy of that adapter */
	uint64_t cached_model;	    /* id of the model they belong to */
	const float *cached_params; /* the base weights they were merged into */
	struct nn_weights cached_w;
	int cache_valid;
};

/* Allocate a model's blocks for cfg (params zeroed); no init. */
int fc_model_alloc(const struct fc_config *cfg, struct fc_model **ret);

/* ---- used by forecast/ and its tests only ----------------------------- */

/* Path of the shared object that provides cblas_sgemm (static string
 * owned by the dynamic loader).  Must name libopenblas. */
const char *fc_blas_provider(void);

/* Set the scaler: n channels with their train mean and std and names
 * (NULL names = "0", "1", ...); copies its arguments. */
int fc_model_set_scaler(struct fc_model *m, int n, const float *mean,
			const float *std, const char *const *names);

/* fc_model_load_buffer(): forecast/modelbuf.h */

/* The adapter tensor table in block order, i = 0 .. count-1: name
 * (static), offset and length in floats, family bit; -ERANGE past the
 * end. */
size_t fc_adapter_tensor_count(const struct fc_model *m);
int fc_adapter_tensor(const struct fc_model *m, size_t i, const char **ret_name,
		      size_t *ret_off, size_t *ret_len, unsigned *ret_family);

int fc_workspace_max_batch(const struct fc_workspace *ws);

/* ---- passes shared by model.c and calib.c ----------------------------- */

/* Whether ws serves m's config and holds rows windows. */
int fc_ws_fits(const struct fc_model *m, const struct fc_workspace *ws,
	       int rows);

/* Effective weights for base p and adapter (may be NULL), merged into the
 * workspace unless the merge would change nothing or the cached merge is
 * for equal contents. */
void fc_effective_weights(struct nn_weights *w, const struct fc_model *m,
			  const float *p, const float *adapter,
			  struct fc_workspace *ws);

/* Forecast b windows x with adapter (may be NULL) and, when cal is not
 * NULL, a calibration per window instead of the adapter's; the results
 * stay in ws->a (pred, and fc, mu, sd of every row). */
int fc_forecast_pass(const struct fc_model *m, const float *adapter,
		     const float *const *cal, struct fc_workspace *ws,
		     const float *x, int b);

/* The forward pass of fc_pass over batch bt (checked), activations kept
 * in ws->a for a backward; w gets the effective weights. */
int fc_pass_forward(const struct fc_model *m, const float *p,
		    const float *adapter, struct fc_workspace *ws,
		    const struct fc_batch *bt, struct nn_weights *w);

/* fc_pass(want_grad): the adapter's calibration gradient only (in
 * ws->gad; ws->gp untouched). */
#define FC_PASS_GRAD_CALIB 2

/* Loss (and with want_grad the gradients: base weights in ws->gp, adapter
 * in ws->gad when adapter is not NULL) of a batch under params p. */
int fc_pass(const struct fc_model *m, const float *p, const float *adapter,
	    struct fc_workspace *ws, const struct fc_batch *b, int want_grad,
	    struct fc_loss *ret);

/* Write the reason into errbuf (when given) and return err: the one place
 * forecast/ formats an error for a human. */
static inline int fc_fail(char *errbuf, size_t size, int err, const char *fmt,
			  ...) __attribute__((format(printf, 4, 5)));

static inline int fc_fail(char *errbuf, size_t size, int err, const char *fmt,
			  ...)
{
	if (errbuf && size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errbuf, size, fmt, ap);
		va_end(ap);
	}
	return err;
}

#endif
