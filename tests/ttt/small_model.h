/*
 * The small model the TTT tests run on: patches of 8 (stride 4), width 16,
 * feed-forward 32, LoRA rank 2 -- fast enough for hundreds of adaptations
 * in a unit test, with every adapter family present.
 */
#ifndef DRIFTCAST_TESTS_TTT_SMALL_MODEL_H
#define DRIFTCAST_TESTS_TTT_SMALL_MODEL_H

#include <stdint.h>

#include "forecast/forecast.h"

static inline void tt_small_config(struct fc_config *c, int lookback,
				   int horizon)
{
	fc_config_default(c);
	c->lookback = lookback;
	c->horizon = horizon;
	c->patch_len = 8;
	c->patch_stride = 4;
	c->mask_seg = 8;
	c->d_model = 16;
	c->d_ff = 32;
	c->lora_rank = 2;
}

/* The small model with one layer and weights from seed (NULL if it
 * cannot be made). */
static inline struct fc_model *tt_small_model_seed(int lookback, int horizon,
						   uint64_t seed)
{
	struct fc_config c;
	struct fc_model *m = NULL;
	tt_small_config(&c, lookback, horizon);
	c.n_layers = 1;
	return fc_model_new(&c, seed, &m, NULL, 0) == 0 ? m : NULL;
}

/* ... seed 42. */
static inline struct fc_model *tt_small_model(int lookback, int horizon)
{
	return tt_small_model_seed(lookback, horizon, 42);
}

#endif
