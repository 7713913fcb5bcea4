/*
 * Private header of forecast/: the layer kernels (nn_layers.c,
 * nn_attention.c), each a forward/backward pair over caller-owned flat
 * buffers, and the fused forward-only kernels of forecast passes
 * (nn_fused.c).  Forward stores what backward needs; backward accumulates
 * (+=) into gradient buffers unless its name ends in _set, which writes
 * them.
 * Argument order: outputs, inputs, sizes.  Dimension letters: see nn.h;
 * B batch (windows), T tokens, C input and OC output width, BT = B * T
 * rows.  Declared here for nn_model.c and the gradient checks.
 */
#ifndef DRIFTCAST_FORECAST_NN_LAYERS_H
#define DRIFTCAST_FORECAST_NN_LAYERS_H

#include "forecast/nn.h"

/* Instance normalisation: xn [B, L], mu, sd [B] from x [B, L]; -EINVAL on
 * a non-finite window.  Backward takes dL/dxn and, from the
 * de-normalisation y * sd + mu, dL/dmu and dL/dsd (either may be NULL). */
int nn_instnorm_forward(fc_real *xn, fc_real *mu, fc_real *sd, const fc_real *x,
			int B, int L);
void nn_instnorm_backward(fc_real *dx, const fc_real *dxn, const fc_real *dmu,
			  const fc_real *dsd, const fc_real *x,
			  const fc_real *xn, const fc_real *mu,
			  const fc_real *sd, int B, int L);

/* Masking and patching: tok [B, N, 2P] = hidden-zeroed values and mask
 * indicators of patches of xn [B, L], m [B, L] (end padding repeats the
 * last point). */
void nn_patch_forward(fc_real *tok, const fc_real *xn, const fc_real *m, int B,
		      int L, int N, int P, int S);
void nn_patch_backward(fc_real *dxn, const fc_real *dtok, const fc_real *m,
		       int B, int L, int N, int P, int S);

/* The way back: recon [B, L] = at each point the mean of the values of the
 * patches rec [B, N, P] that cover it.  Backward writes drec. */
void nn_unpatch_forward(fc_real *recon, const fc_real *rec, int B, int L, int N,
			int P, int S);
void nn_unpatch_backward(fc_real *drec, const fc_real *drecon, int B, int L,
			 int N, int P, int S);

/* out [BT, OC] = inp [BT, C] W^T [C, OC] + b (b may be NULL) */
void nn_linear_forward(fc_real *out, const fc_real *inp, const fc_real *w,
		       const fc_real *b, int BT, int C, int OC);
/* dinp, dw, db may be NULL; accumulate. */
void nn_linear_backward(fc_real *dinp, fc_real *dw, fc_real *db,
			const fc_real *dout, const fc_real *inp,
			const fc_real *w, int BT, int C, int OC);
/* The same with dinp [BT, C] written (not NULL), dw and db accumulated. */
void nn_linear_backward_set(fc_real *dinp, fc_real *dw, fc_real *db,
			    const fc_real *dout, const fc_real *inp,
			    const fc_real *w, int BT, int C, int OC);
/* out [BT, OC] = res [BT, OC] + inp [BT, C] W^T + b: a linear map and the
 * residual around it.  Backward: nn_linear_backward_set, the residual's
 * gradient being dout itself. */
void nn_residual_linear_forward(fc_real *out, const fc_real *res,
				const fc_real *inp, const fc_real *w,
				const fc_real *b, int BT, int C, int OC);
/* out [B, T, OC] = pos [T, OC] + inp [B, T, C] W^T + b: the transformer's
 * patch embedding with learned positions.  Backward accumulates dpos,
 * dw, db and dinp (each may be NULL). */
void nn_pos_linear_forward(fc_real *out, const fc_real *inp, const fc_real *pos,
			   const fc_real *w, const fc_real *b, int B, int T,
			   int C, int OC);
void nn_pos_linear_backward(fc_real *dinp, fc_real *dpos, fc_real *dw,
			    fc_real *db, const fc_real *dout,
			    const fc_real *inp, const fc_real *w, int B, int T,
			    int C, int OC);
/* db [C] += column sums of dout [BT, C]: a bias's gradient. */
void nn_bias_backward(fc_real *db, const fc_real *dout, int BT, int C);

void nn_layernorm_forward(fc_real *out, fc_real *mean, fc_real *rstd,
			  const fc_real *inp, const fc_real *w,
			  const fc_real *b, int BT, int C);
void nn_layernorm_backward(fc_real *dinp, fc_real *dw, fc_real *db,
			   const fc_real *dout, const fc_real *inp,
			   const fc_real *w, const fc_real *mean,
			   const fc_real *rstd, int BT, int C);

void nn_gelu_forward(fc_real *out, const fc_real *inp, int n);
void nn_gelu_backward(fc_real *dinp, const fc_real *inp, const fc_real *dout,
		      int n);
/* fch [BT, F] += b [F]; out = gelu(fch): the bias of the product in fch
 * and the activation, in one pass. */
void nn_bias_gelu_forward(fc_real *out, fc_real *fch, const fc_real *b, int BT,
			  int F);
/* The same when a backward follows: fch becomes GELU's derivative at
 * fch + b (dgelu), so that backward multiplies instead of evaluating tanh
 * again.  Backward: dfch [n] = dgelu * dout, written. */
void nn_bias_gelu_forward_train(fc_real *out, fc_real *fch, const fc_real *b,
				int BT, int F);
void nn_bias_gelu_backward(fc_real *dfch, const fc_real *dgelu,
			   const fc_real *dout, int n);

/* Non-causal multi-head self-attention: qkv [B, T, 3C] -> out [B, T, C],
 * att [B, NH, T, T] (the softmax, for backward only: in groups of 8
 * windows (4 in double) it is stored interleaved by window, so the same B
 * must be passed to both).  Shapes whose head size hs = C / NH and T fit
 * the lane kernels' stack buffers (nn_attention_uses_lanes) run on them;
 * the others (e.g. T = 32, hs = 16: lookback 256 with the default patches
 * and width) on a fallback of per-window GEMMs and scalar loops. */
int nn_attention_uses_lanes(int T, int hs);
void nn_attention_forward(fc_real *out, fc_real *att, const fc_real *qkv, int B,
			  int T, int C, int NH);
void nn_attention_backward(fc_real *dqkv, const fc_real *dout,
			   const fc_real *qkv, const fc_real *att, int B, int T,
			   int C, int NH);
void nn_attention_backward_set(fc_real *dqkv, const fc_real *dout,
			       const fc_real *qkv, const fc_real *att, int B,
			       int T, int C, int NH);

/* One GRU layer over T steps: inp [B, T, C] -> h [B, T, D]; gi, gh, gate
 * [B, T, 3D] saved.  Backward: dh [B, T, D] holds dL/dh and is consumed
 * (the recurrence adds into it); dgi, dgh [B, T, 3D] scratch. */
void nn_gru_forward(fc_real *h, fc_real *gi, fc_real *gh, fc_real *gate,
		    const fc_real *inp, const fc_real *wih, const fc_real *bih,
		    const fc_real *whh, const fc_real *bhh, int B, int T, int C,
		    int D);
void nn_gru_backward(fc_real *dinp, fc_real *dwih, fc_real *dbih, fc_real *dwhh,
		     fc_real *dbhh, fc_real *dh, fc_real *dgi, fc_real *dgh,
		     const fc_real *inp, const fc_real *h, const fc_real *gh,
		     const fc_real *gate, const fc_real *wih,
		     const fc_real *whh, int B, int T, int C, int D);

/* The same forward when no backward follows (forecasts of many windows),
 * for D a multiple of the vector width (nn_gru_fast_ok): only h is
 * written.  nn_gru_pack lays wi [3D, C], bi [3D], whh [3D, D] and bhh's r
 * and z parts out in pk [nn_gru_pack_size] for it; nn_gru_forecast takes
 * bhh [3D] itself too (n's part sits inside r's product).  Agrees with
 * nn_gru_forward to rounding (its sums run in another order). */
int nn_gru_fast_ok(int D);
size_t nn_gru_pack_size(int C, int D);
void nn_gru_pack(fc_real *pk, const fc_real *wi, const fc_real *bi,
		 const fc_real *whh, const fc_real *bhh, int C, int D);
void nn_gru_forecast(fc_real *h, const fc_real *inp, const fc_real *pk,
		     const fc_real *bhh, int B, int T, int C, int D);

/* out [BT, OC] = inp [BT, C] w^T + b (+ res; then GELU if gelu), as
 * nn_linear_forward, nn_residual_linear_forward (res [BT, OC], res_rows =
 * BT), nn_pos_linear_forward (res = pos [T, OC], res_rows = T: row i adds
 * res row i % res_rows) and the GELU pass, for OC a multiple of twice the
 * vector width (nn_linear_fast_ok), from w [OC, C] laid out by
 * nn_linear_pack in pk [OC * C] (nn_fused.c). */
int nn_linear_fast_ok(int OC);
void nn_linear_pack(fc_real *pk, const fc_real *w, int C, int OC);
void nn_linear_fast(fc_real *out, const fc_real *inp, const fc_real *pk,
		    const fc_real *b, const fc_real *res, int res_rows,
		    int gelu, int BT, int C, int OC);

#ifndef FC_REAL_DOUBLE
/* The float build's rational tanh, for its accuracy test. */
float nn_tanh_for_test(float x);
#endif

#endif
