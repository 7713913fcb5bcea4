/*
 * The small model the TTT tests run on: patches of 8 (stride 4), width 16,
 * feed-forward 32, LoRA rank 2 -- fast enough for hundreds of adaptations
 * in a unit test, with every adapter family present.
 */
#ifndef DRIFTCAST_TESTS_TTT_SMALL_MODEL_H
#define DRIFTCAST_TESTS_TTT_SMALL_MODEL_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"

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

/* ... and the test fails when it cannot be made. */
static inline struct fc_model *tt_small_model_ok(int lookback, int horizon)
{
	struct fc_model *m = tt_small_model(lookback, horizon);
	cr_assert(m, "the small model cannot be made");
	return m;
}

/* Copies of the recent values ttt_engine_each_recent hands out (which
 * point into the engine), for up to 4 series of up to 1024 values each,
 * to restore later; tt_save_recent is the callback. */
struct tt_saved {
	struct ttt_recent r[4];
	char key[4][16];
	float v[4][1024];
	uint16_t avg[4][1024];	      /* the published averages */
	unsigned char recal[4][4096]; /* the recalibrations' states */
	int n;
};

static inline int tt_save_recent(void *user, const struct ttt_recent *r)
{
	struct tt_saved *s = user;
	cr_assert_lt(s->n, 4);
	cr_assert_leq(r->count, 1024);
	s->r[s->n] = *r;
	snprintf(s->key[s->n], sizeof(s->key[0]), "%s", r->key);
	memcpy(s->v[s->n], r->values, (size_t)r->count * sizeof(float));
	s->r[s->n].key = s->key[s->n];
	s->r[s->n].values = s->v[s->n];
	if (r->average) {
		cr_assert_leq(r->average_len, 1024);
		memcpy(s->avg[s->n], r->average,
		       r->average_len * sizeof(uint16_t));
		s->r[s->n].average = s->avg[s->n];
	}
	if (r->recal) {
		cr_assert_leq(r->recal_len, sizeof(s->recal[0]));
		memcpy(s->recal[s->n], r->recal, r->recal_len);
		s->r[s->n].recal = s->recal[s->n];
	}
	s->n++;
	return 0;
}

#endif
