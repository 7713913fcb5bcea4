/*
 * Private header of forecast/: the network over caller-owned flat buffers,
 * as the rest of the folder sees it -- the weight and adapter layouts, the
 * activations, and the whole-model forward, loss and backward.  The layer
 * kernels are declared in nn_layers.h, what only the nn_*.c files share in
 * nn_private.h.
 *
 * The nn_*.c files are written over fc_real and compiled twice: as float
 * into the library, and with -DFC_REAL_DOUBLE into a test-only library
 * (sgemm -> dgemm) for the finite-difference gradient checks.  Both can be
 * linked into one program, so the double build renames every external
 * name nn_x to nnd_x: the list below is every function the nn_*.c files
 * export, definitions included, so that each is defined and found as
 * plain nn_x in the source.  The macros are function-like so that the
 * struct tags nn_layout and nn_weights keep their names.
 *
 * Legend of dimension letters: R rows (windows) of a pass, the first bf of
 * them forecast windows and the next br reconstruction windows; L lookback,
 * H horizon, P patch length, S stride, N patches, D width, F feed-forward
 * width, NH heads, r LoRA rank.
 */
#ifndef DRIFTCAST_FORECAST_NN_H
#define DRIFTCAST_FORECAST_NN_H

#include <stddef.h>
#include <stdint.h>

#include "forecast/forecast.h"

#ifdef FC_REAL_DOUBLE
typedef double fc_real;
/* nn.h: layout, activations, whole model */
#define nn_layout(...)	     nnd_layout(__VA_ARGS__)
#define nn_tensor_name(...)  nnd_tensor_name(__VA_ARGS__)
#define nn_atensor_name(...) nnd_atensor_name(__VA_ARGS__)
#define nn_init_params(...)  nnd_init_params(__VA_ARGS__)
#define nn_init_adapter(...) nnd_init_adapter(__VA_ARGS__)
#define nn_acts_carve(...)   nnd_acts_carve(__VA_ARGS__)
#define nn_weights(...)	     nnd_weights(__VA_ARGS__)
#define nn_forward(...)	     nnd_forward(__VA_ARGS__)
#define nn_forecast(...)     nnd_forecast(__VA_ARGS__)
#define nn_loss(...)	     nnd_loss(__VA_ARGS__)
#define nn_backward(...)     nnd_backward(__VA_ARGS__)
/* nn_layers.h: the layer kernels */
#define nn_instnorm_forward(...)	nnd_instnorm_forward(__VA_ARGS__)
#define nn_instnorm_backward(...)	nnd_instnorm_backward(__VA_ARGS__)
#define nn_patch_forward(...)		nnd_patch_forward(__VA_ARGS__)
#define nn_patch_backward(...)		nnd_patch_backward(__VA_ARGS__)
#define nn_unpatch_forward(...)		nnd_unpatch_forward(__VA_ARGS__)
#define nn_unpatch_backward(...)	nnd_unpatch_backward(__VA_ARGS__)
#define nn_linear_forward(...)		nnd_linear_forward(__VA_ARGS__)
#define nn_linear_backward(...)		nnd_linear_backward(__VA_ARGS__)
#define nn_linear_backward_set(...)	nnd_linear_backward_set(__VA_ARGS__)
#define nn_residual_linear_forward(...) nnd_residual_linear_forward(__VA_ARGS__)
#define nn_pos_linear_forward(...)	nnd_pos_linear_forward(__VA_ARGS__)
#define nn_pos_linear_backward(...)	nnd_pos_linear_backward(__VA_ARGS__)
#define nn_bias_backward(...)		nnd_bias_backward(__VA_ARGS__)
#define nn_layernorm_forward(...)	nnd_layernorm_forward(__VA_ARGS__)
#define nn_layernorm_backward(...)	nnd_layernorm_backward(__VA_ARGS__)
#define nn_gelu_forward(...)		nnd_gelu_forward(__VA_ARGS__)
#define nn_gelu_backward(...)		nnd_gelu_backward(__VA_ARGS__)
#define nn_bias_gelu_forward(...)	nnd_bias_gelu_forward(__VA_ARGS__)
#define nn_bias_gelu_forward_train(...) nnd_bias_gelu_forward_train(__VA_ARGS__)
#define nn_bias_gelu_backward(...)	nnd_bias_gelu_backward(__VA_ARGS__)
#define nn_attention_uses_lanes(...)	nnd_attention_uses_lanes(__VA_ARGS__)
#define nn_attention_forward(...)	nnd_attention_forward(__VA_ARGS__)
#define nn_attention_backward(...)	nnd_attention_backward(__VA_ARGS__)
#define nn_attention_backward_set(...)	nnd_attention_backward_set(__VA_ARGS__)
#define nn_gru_forward(...)		nnd_gru_forward(__VA_ARGS__)
#define nn_gru_backward(...)		nnd_gru_backward(__VA_ARGS__)
#define nn_gru_fast_ok(...)		nnd_gru_fast_ok(__VA_ARGS__)
#define nn_gru_pack_size(...)		nnd_gru_pack_size(__VA_ARGS__)
#define nn_gru_pack(...)		nnd_gru_pack(__VA_ARGS__)
#define nn_gru_forecast(...)		nnd_gru_forecast(__VA_ARGS__)
#define nn_linear_fast_ok(...)		nnd_linear_fast_ok(__VA_ARGS__)
#define nn_linear_pack(...)		nnd_linear_pack(__VA_ARGS__)
#define nn_linear_fast(...)		nnd_linear_fast(__VA_ARGS__)
#define nn_forecast_scratch(...)	nnd_forecast_scratch(__VA_ARGS__)
/* nn_private.h */
#define nn_gemm(...)		 nnd_gemm(__VA_ARGS__)
#define nn_acts_view(...)	 nnd_acts_view(__VA_ARGS__)
#define nn_weights_backward(...) nnd_weights_backward(__VA_ARGS__)
#else
typedef float fc_real;
#endif

#define NN_MAX_TOKENS 128 /* N for L = 720 is 90 */
#define NN_LN_EPS     1e-5

/* Base weights, PyTorch layout ([out, in] for linear maps).  Tensors of a
 * kind that does not apply to the backbone have length 0. */
enum nn_tensor {
	T_EMB_W,   /* [D, 2P] */
	T_EMB_B,   /* [D] */
	T_POS,	   /* [N, D] transformer */
	T_LN1_W,   /* [D] per layer, transformer */
	T_LN1_B,   /* [D] */
	T_QKV_W,   /* [3D, D] */
	T_QKV_B,   /* [3D] */
	T_PROJ_W,  /* [D, D] */
	T_PROJ_B,  /* [D] */
	T_LN2_W,   /* [D] */
	T_LN2_B,   /* [D] */
	T_FC1_W,   /* [F, D] */
	T_FC1_B,   /* [F] */
	T_FC2_W,   /* [D, F] */
	T_FC2_B,   /* [D] */
	T_GRU_WIH, /* [3D, D] per layer, gru; gates r, z, n */
	T_GRU_BIH, /* [3D] */
	T_GRU_WHH, /* [3D, D] */
	T_GRU_BHH, /* [3D] */
	T_LNF_W,   /* [D] */
	T_LNF_B,   /* [D] */
	T_HEAD_W,  /* [H, N*D] */
	T_HEAD_B,  /* [H] */
	T_REC_W,   /* [P, D] */
	T_REC_B,   /* [P] */
	T_COUNT
};

/* Adapter tensors; LoRA pairs are A [r, in] then B [out, r]. */
enum nn_atensor {
	A_EMB_A,
	A_EMB_B,
	A_IH_A, /* per layer, gru */
	A_IH_B,
	A_HH_A,
	A_HH_B,
	A_Q_A, /* per layer, transformer: rows [0, D) of qkv */
	A_Q_B,
	A_V_A, /* rows [2D, 3D) of qkv */
	A_V_B,
	A_FC1_A,
	A_FC1_B,
	A_FC2_A,
	A_FC2_B,
	A_LN1_W, /* [D] deltas, per layer, transformer (family NORM) */
	A_LN1_B,
	A_LN2_W,
	A_LN2_B,
	A_LNF_W,
	A_LNF_B,
	A_HEAD_A, /* family HEAD */
	A_HEAD_B,
	A_CAL_A, /* [H] scale - 1, family CALIB */
	A_CAL_C, /* [H] shift */
	A_COUNT
};

struct nn_layout {
	int gru; /* backbone is the GRU */
	int L, H, P, S, N, D, F, NL, NH, r;
	size_t off[T_COUNT][FC_MAX_LAYERS], len[T_COUNT][FC_MAX_LAYERS];
	int rows[T_COUNT], cols[T_COUNT];
	size_t n_params;
	size_t aoff[A_COUNT][FC_MAX_LAYERS], alen[A_COUNT][FC_MAX_LAYERS];
	int arows[A_COUNT], acols[A_COUNT];
	unsigned afamily[A_COUNT];
	size_t n_adapter;
	size_t fam_off[4], fam_len[4]; /* by bit index */
	size_t scratch;		       /* floats for merged (adapted) weights */
};

/* Effective weights of one pass: base tensors, or merged copies. */
struct nn_weights {
	const fc_real *t[T_COUNT][FC_MAX_LAYERS];
	const fc_real *cal_a, *cal_c; /* [H] or NULL (identity) */
	/* Forward only: when set, row b of the forecast head is calibrated
	 * by cal_row[b] ([2H]: scale - 1, then shift; NULL = identity)
	 * instead of by cal_a/cal_c. */
	const fc_real *const *cal_row;
};

/* Activations of one pass for up to R rows; the same struct, allocated a
 * second time, holds their gradients. */
struct nn_acts {
	fc_real *x, *m;		      /* [R, L] raw input, mask (1 = hidden) */
	fc_real *mu, *sd;	      /* [R] */
	fc_real *xn;		      /* [R, L] normalised */
	fc_real *tok;		      /* [R, N, 2P] */
	fc_real *emb;		      /* [R, N, D] */
	fc_real *gi[FC_MAX_LAYERS];   /* [R, N, 3D] gru input projections */
	fc_real *gh[FC_MAX_LAYERS];   /* [R, N, 3D] gru hidden projections */
	fc_real *gate[FC_MAX_LAYERS]; /* [R, N, 3D] r, z, n */
	fc_real *h[FC_MAX_LAYERS];    /* [R, N, D] gru outputs */
	fc_real *ln1[FC_MAX_LAYERS];  /* [R, N, D] */
	fc_real *ln1_mean[FC_MAX_LAYERS], *ln1_rstd[FC_MAX_LAYERS]; /* [R, N] */
	fc_real *qkv[FC_MAX_LAYERS];  /* [R, N, 3D] */
	fc_real *att[FC_MAX_LAYERS];  /* [R, NH, N, N] softmax (layout
					 private to the attention layer) */
	fc_real *atty[FC_MAX_LAYERS]; /* [R, N, D] */
	fc_real *res1[FC_MAX_LAYERS]; /* [R, N, D] */
	fc_real *ln2[FC_MAX_LAYERS];  /* [R, N, D] */
	fc_real *ln2_mean[FC_MAX_LAYERS], *ln2_rstd[FC_MAX_LAYERS]; /* [R, N] */
	/* [R, N, F] fc1's output h (in g: dL/dh).  nn_forward, which a
	 * backward follows, overwrites h in place with GELU's derivative at
	 * h, dgelu: the only use backward has for h. */
	union {
		fc_real *fch[FC_MAX_LAYERS];
		fc_real *dgelu[FC_MAX_LAYERS];
	};
	fc_real *fcg[FC_MAX_LAYERS];  /* [R, N, F] gelu */
	fc_real *res2[FC_MAX_LAYERS]; /* [R, N, D] */
	fc_real *lnf;		      /* [R, N, D] */
	fc_real *lnf_mean, *lnf_rstd; /* [R, N] */
	fc_real *fc;		      /* [R, H] head, normalised */
	fc_real *pred;		      /* [R, H] calibrated, de-normalised */
	fc_real *rec;		      /* [R, N, P] */
	fc_real *recon;		      /* [R, L] */
	fc_real *tmp;		      /* [R, 3D] scratch */
};

/* The splitmix64 generator behind fc_rng_*. */
static inline uint64_t nn_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline double nn_uniform(uint64_t *s)
{
	return (double)(nn_splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Layout of a (checked) config. */
void nn_layout(struct nn_layout *lo, const struct fc_config *c);
const char *nn_tensor_name(int kind);
const char *nn_atensor_name(int kind);

/* Initialise base weights [n_params] / the identity adapter [n_adapter]. */
void nn_init_params(const struct nn_layout *lo, fc_real *p, uint64_t seed);
void nn_init_adapter(const struct nn_layout *lo, fc_real *a, uint64_t seed);

/* Carve the activation struct out of mem (NULL: only count); returns the
 * number of fc_real needed for R rows. */
size_t nn_acts_carve(struct nn_acts *a, fc_real *mem,
		     const struct nn_layout *lo, int R);

/* Effective weights: base p, plus the adapter (may be NULL) merged into
 * copies in scratch [lo->scratch]. */
void nn_weights(struct nn_weights *w, const struct nn_layout *lo,
		const fc_real *p, const fc_real *adapter, fc_real *scratch);

/* Forward of R = bf + br rows whose a->x and a->m are filled (mask rows
 * of forecast windows all 0).  Returns -EINVAL on a non-finite window. */
int nn_forward(const struct nn_layout *lo, const struct nn_weights *w,
	       struct nn_acts *a, int bf, int br);

/* The same for b forecast rows when no backward follows: only a->pred
 * (and a->fc, mu, sd) hold results for every row afterwards; the other
 * buffers are scratch (faster: they stay in cache).  From 16 rows on it
 * runs the fused kernels (nn_fused.c) over weights it packs into pk [npk]
 * when npk >= nn_forecast_scratch(lo). */
int nn_forecast(const struct nn_layout *lo, const struct nn_weights *w,
		struct nn_acts *a, int b, fc_real *pk, size_t npk);
size_t nn_forecast_scratch(const struct nn_layout *lo);

/* Losses of a forward pass; fills g->pred [bf, H] and g->recon [br, L]
 * (rows bf..) with their gradients scaled by wf and wr.  y [bf, H]. */
void nn_loss(const struct nn_layout *lo, const struct nn_acts *a,
	     struct nn_acts *g, const fc_real *y, int bf, int br, fc_real wf,
	     fc_real wr, fc_real *ret_lf, fc_real *ret_lr);

/* Backward: gradients of the effective weights into gp [n_params]
 * (overwritten), and when gadapter is not NULL, of the adapter (all
 * families; overwritten).  g holds the loss gradients from nn_loss; its
 * other buffers are scratch. */
void nn_backward(const struct nn_layout *lo, const struct nn_weights *w,
		 const fc_real *adapter, const struct nn_acts *a,
		 struct nn_acts *g, int bf, int br, fc_real *gp,
		 fc_real *gadapter);

#endif
