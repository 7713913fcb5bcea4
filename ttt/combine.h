/*
 * Private to ttt/: the combiner, which decides how much of the adapter's
 * correction a series publishes.  The published forecast is
 *     p = f + w (a - f)
 * with f the frozen model's forecast, a the adapted one and w in [0, 1]
 * the engine's ttt.combine_weight.  Squared error is convex in w, and per
 * window and step exactly
 *     (p - y)^2 = (1 - w) (f - y)^2 + w (a - y)^2 - w (1 - w) (a - f)^2,
 * so the published error is at most the w-weighted mean of the frozen and
 * the adapted one, and below both when the adapter's correction is noisy.
 *
 * Why one fixed weight and not one learnt per series from realised
 * errors: a series' matured windows overlap by all but a few steps, so
 * even a few hundred of them are a handful of independent samples, and a
 * weight fitted on them (least squares per horizon eighth, shrunk, from
 * the versions really published) flipped between 0 and 1 and lost to
 * every fixed weight on the validation and the training split
 * (docs/RESULTS.md).  The shadow's rollback is what stops an adapter that
 * realised errors show to be harmful.
 *
 * With ttt.average_rate r > 0, a in that formula is not the newest version
 * but a running average of the accepted ones (Polyak averaging): each
 * accepted version moves it by r of the way, m += r (a - m), and a
 * rollback, a reset or a restore from storage sets it to the version then
 * current.  A single step's noise is damped by the average and its
 * direction kept, which published better than the newest version at
 * every share measured, on the validation and the training splits
 * (docs/RESULTS.md).  It is kept in half precision as its difference from
 * the anchor (calibration deltas are small, so the difference keeps ~11
 * significant bits where the value itself would lose the step), and it
 * is saved with the series' recent values so that a restored series
 * publishes what it would have.
 */
#ifndef DRIFTCAST_TTT_COMBINE_H
#define DRIFTCAST_TTT_COMBINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct adstate;
struct fc_head_raw;
struct ttt_engine;
struct series;
struct ttt_event;

/* IEEE half precision, round to nearest even (overflow to infinity). */
uint16_t ttt_half(float f);
float ttt_unhalf(uint16_t h);

/* Packed adapters [n_ad] kept in half precision as their differences from
 * the anchor: the published average, the last good version and the one
 * on probation (trust.c).  put is false when a difference overflows (it is
 * then infinite); get decodes. */
bool ttt_halves_put(const struct ttt_engine *e, uint16_t *h, const float *a);
/* No infinity or NaN among n half-precision values. */
bool ttt_halves_finite(const uint16_t *h, size_t n);
void ttt_halves_get(const struct ttt_engine *e, float *a, const uint16_t *h);

/* The published average of ad := its current adapter (a no-op while
 * ttt.average_rate is 0 or ad has no memory of its own). */
void ttt_avg_reset(const struct ttt_engine *e, struct adstate *ad);
/* The published average of ad moves toward its current adapter: after an
 * accepted version. */
void ttt_avg_update(const struct ttt_engine *e, struct adstate *ad);
/* The packed adapter [n_ad] whose share ad publishes: its average, decoded
 * into the engine's scratch (valid until the next call), or ad->a. */
const float *ttt_published(struct ttt_engine *e, const struct adstate *ad);

/* A new version's event carries the average ad publishes from it on (the
 * daemon stores it with the version), unless ad publishes the version. */
void ttt_avg_event(const struct ttt_engine *e, const struct adstate *ad,
		   struct ttt_event *ev);

/* Mean squared difference of a [n] and b [n], summed in double. */
float ttt_mse(const float *a, const float *b, size_t n);
/* a [H] := f + w (a - f). */
void ttt_cmb_mix(float w, const float *f, float *a, int H);
/* The calibration block cal [2H] (scale deltas, then biases) shrunk by w
 * into out [2H]: the same forecast as ttt_cmb_mix of the frozen and the
 * calibrated one.  Returns 0 when w is 0 (out is then the identity:
 * forecast with the frozen path). */
int ttt_cmb_calib(float w, const float *cal, float *out, int H);

/* The forecast s publishes for lookback x [L] into out [H]: frozen while
 * TTT is off or the adapter is the anchor, else the adapted forecast
 * combined with the frozen one.  0 or forecast/'s errno. */
int ttt_publish_forecast(struct ttt_engine *e, struct series *s, const float *x,
			 float *out);
/* The same for a window of the past whose frozen forecast f [H] is known
 * (the shadow's), from its frozen head output raw on the calibration-only
 * path (else NULL and x [L] is forecast again). */
int ttt_publish_window(struct ttt_engine *e, const struct adstate *ad,
		       const float *x, const struct fc_head_raw *raw,
		       const float *f, float *out);
/* The calibration snapshot of s's published forecast into cal [2H] for a
 * deferred forecast (calibration-only engines); 0 when it is the
 * identity (cal unused). */
int ttt_publish_calib(struct ttt_engine *e, struct series *s, float *cal);

#endif
