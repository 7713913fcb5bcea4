/*
 * Private to ttt/ and its tests: switches that exist so that tests can
 * compare the engine's fast paths with the general code they replace.
 */
#ifndef DRIFTCAST_TTT_INTERNAL_H
#define DRIFTCAST_TTT_INTERNAL_H

#include "ttt/ttt.h"

/*
 * The calibration-only fast paths (on by default when the calibration is
 * the only adapting family): an adaptation's losses, gradients and guard
 * from one frozen pass, the shadow's two scores from one.  on = 0 makes
 * the engine take the general path (full passes per evaluation) for the
 * same work; results agree to float rounding.  Flushes queued work first;
 * 0 or its negative errno.
 */
int ttt_engine_set_fast_paths(struct ttt_engine *e, int on);

#endif
