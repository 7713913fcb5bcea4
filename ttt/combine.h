/*
 * Private to ttt/: the combiner, which decides how much of the adapter's
 * correction a series publishes.  The published forecast is
 *     p_h = f_h + w_b (a_h - f_h)
 * with f the frozen model's forecast, a the adapted one and w_b in [0, 1]
 * the weight of the horizon bucket b that step h falls in.  w_b is the
 * least-squares coefficient of the realised residual r = y - f on the
 * correction d = a - f over the series' recent matured windows (decayed
 * sums), shrunk toward 0 while the evidence is thin: a correction that
 * has not been seen to help is not published.  Squared error is convex,
 * so for any fixed weight in [0, 1] the published error is at most the
 * weighted mean of the frozen and the adapted one; the coefficient itself
 * is what the data supported.
 */
#ifndef DRIFTCAST_TTT_COMBINE_H
#define DRIFTCAST_TTT_COMBINE_H

#include <stddef.h>

#define TTT_CMB_BUCKETS 8

struct ttt_combiner {
	float sdd[TTT_CMB_BUCKETS]; /* decayed sum of d^2 per bucket */
	float srd[TTT_CMB_BUCKETS]; /* decayed sum of r d per bucket */
	float w[TTT_CMB_BUCKETS];   /* the published weights */
	float n;		    /* decayed count of windows */
};

/* Bucket of horizon step h (0-based) of H. */
static inline int ttt_cmb_bucket(int H, int h)
{
	return H < TTT_CMB_BUCKETS ? h : (int)((long)h * TTT_CMB_BUCKETS / H);
}

/* Feed one matured window: frozen f, adapted a and actual y [H]; decay
 * the old evidence by decay, then weights with prior pseudo-windows. */
void ttt_cmb_update(struct ttt_combiner *c, const float *f, const float *a,
		    const float *y, int H, float decay, float prior);
/* MSE of the published forecast f + w (a - f) against y [H]. */
float ttt_cmb_error(const struct ttt_combiner *c, const float *f,
		    const float *a, const float *y, int H);
/* Mean squared difference of a [n] and b [n], summed in double. */
float ttt_mse(const float *a, const float *b, size_t n);
/* a [H] := f + w (a - f). */
void ttt_cmb_mix(const struct ttt_combiner *c, const float *f, float *a, int H);
/* The calibration block cal [2H] (scale deltas, then biases) shrunk by
 * the weights into out [2H]: the same forecast as ttt_cmb_mix of the
 * frozen and the calibrated one.  Returns 0 when every weight is 0 (out
 * is then the identity: forecast with the frozen path). */
int ttt_cmb_calib(const struct ttt_combiner *c, const float *cal, float *out,
		  int H);

struct ttt_engine;
struct series;
struct fc_head_raw;

/* The calibrations that published forecasts were issued with: a ring of
 * the adapter versions a series published since about H values ago, each
 * from the position of its first forecast, quantized to 8 bits per weight
 * (scale deltas and biases each on their own scale).  When the shadow
 * scores a matured window, the version in effect at its origin gives the
 * forecast that was really published for it, so the combiner learns from
 * what was issued, never from a later adapter's hindsight on data it was
 * fitted near.  About H / ttt.every + 2 versions: ~1 KB at H = 96. */
struct ttt_issued {
	int cap, n, head; /* entries, used, index of the newest */
	int H;
	/* per entry: long pos; uint64_t version; float sa, sc;
	 * signed char q[2H]; laid out by combine.c */
	unsigned char data[];
};
/* Record the version s publishes with now (calibration-only engines). */
void ttt_cmb_issue(struct ttt_engine *e, struct series *s);
/* The adapted forecast published for the window with origin pos into
 * a [H], from its frozen head output raw (one row); 0 when the version
 * then is no longer (or not) recorded. */
int ttt_cmb_issued(struct ttt_engine *e, struct series *s, long pos,
		   const struct fc_head_raw *raw, float *a);
/* Forget what was recorded (the series' positions restart). */
void ttt_cmb_forget(struct series *s);
/* Free what was recorded and its bytes' count (the series is dropped). */
void ttt_cmb_free(struct ttt_engine *e, struct series *s);

/* The forecast s publishes for lookback x [L] into out [H]: frozen while
 * TTT is off or the adapter is the anchor, else the adapted forecast
 * combined with the frozen one (ttt.combine).  0 or forecast/'s errno. */
int ttt_publish_forecast(struct ttt_engine *e, struct series *s, const float *x,
			 float *out);
/* The calibration snapshot of s's published forecast into cal [2H] for a
 * deferred forecast (calibration-only engines); 0 when it is the
 * identity (cal unused). */
int ttt_publish_calib(struct ttt_engine *e, struct series *s, float *cal);

#endif
