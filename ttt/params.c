/*
 * The [ttt] parameters: defaults (the same as config/config.c's table)
 * and their checks.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"

/* ---- parameters ------------------------------------------------------ */

void ttt_params_default(struct ttt_params *p)
{
	memset(p, 0, sizeof(*p));
	p->enabled = 1;
	p->every = 25;
	p->w_recon = 1.0f;
	p->w_matured = 1.0f;
	p->w_anchor = 0.01f;
	p->lr = 3e-3f;
	p->steps = 1;
	p->clip = 1.0f;
	p->max_update = 0.5f;
	p->max_drift = 4.0f;
	p->families = FC_ADAPT_CALIB;
	p->recon_windows = 4;
	p->step_windows = 4;
	p->guard_windows = 2;
	p->window_stride = 4;
	p->guard = 1;
	p->guard_tol = 0.0f;
	p->drift = TTT_DRIFT_PH;
	p->drift_every = 5;
	p->ph_delta = 0.01f;
	p->ph_lambda = 1.0f;
	p->adwin_delta = 0.002f;
	p->drift_min_gap = 5;
	p->shadow_every = 5;
	p->rollback_margin = 0.05f;
	p->rollback_window = 20;
	p->reset_policy = TTT_RESET_ROLLBACK;
	p->reset_alpha = 0.5f;
	p->fallback_rollbacks = 3;
	p->fallback_within = 500;
	p->fallback_pause = 500;
	p->scope = TTT_SCOPE_SERIES;
	p->group_sep = '/';
	p->ephemeral = 0;
	p->combine_weight = 0.4f;
	/* docs/RESULTS.md, "The average of the versions" */
	p->average_rate = 0.03f;
	p->level_steps = 0; /* off: docs/RESULTS.md, "A level correction" */
	p->level_forget = 0.999f;
	p->level_shrink = 4.0f;
	p->level_share = 0.5f;
	p->recal_steps = 12;
	p->recal_forget = 0.9998f;
	p->recal_ridge = 10.0f;
	p->recal_share = 0.25f;
	p->recal_judge = 0.99f;
	p->recal_margin = 0.01f;
	p->recal_later = 0.995f;
	p->max_gap = 4;
	p->step = 0;
	p->seed = 1;
}

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			if (errbuf && errbuf_size)                          \
				snprintf(errbuf, errbuf_size, __VA_ARGS__); \
			return -EINVAL;                                     \
		}                                                           \
	} while (0)

int ttt_params_check(const struct ttt_params *p, char *errbuf,
		     size_t errbuf_size)
{
	CHECK(p->every >= 1, "ttt.every must be >= 1");
	CHECK(p->w_recon >= 0.0f && p->w_matured >= 0.0f && p->w_anchor >= 0.0f,
	      "ttt weights must be >= 0");
	CHECK(isfinite(p->lr) && p->lr >= 0.0f && p->lr <= 1.0f,
	      "ttt.lr must be in 0..1");
	CHECK(p->steps >= 0 && p->steps <= 100, "ttt.steps must be 0..100");
	CHECK(p->clip > 0.0f, "ttt.clip must be > 0");
	CHECK(p->max_update > 0.0f, "ttt.max_update must be > 0");
	CHECK(p->max_drift > 0.0f, "ttt.max_drift must be > 0");
	CHECK(p->families != 0 && (p->families & ~(unsigned)FC_ADAPT_ALL) == 0,
	      "ttt.families: no valid adapter family");
	CHECK(p->recon_windows >= 0 && p->recon_windows <= 64,
	      "ttt.recon_windows must be 0..64");
	CHECK(p->step_windows >= 0 && p->step_windows <= 64,
	      "ttt.step_windows must be 0..64");
	CHECK(p->guard_windows >= 1 && p->guard_windows <= 64,
	      "ttt.guard_windows must be 1..64");
	CHECK(p->recon_windows + p->step_windows >= 1,
	      "ttt needs recon or step windows");
	CHECK(p->window_stride >= 1 && p->window_stride <= 1000,
	      "ttt.window_stride must be 1..1000");
	CHECK(p->guard_tol >= 0.0f, "ttt.guard_tol must be >= 0");
	CHECK(p->drift >= TTT_DRIFT_NONE && p->drift <= TTT_DRIFT_ADWIN,
	      "ttt.drift: unknown detector");
	CHECK(p->drift_every >= 1, "ttt.drift_every must be >= 1");
	CHECK(p->ph_lambda > 0.0f && p->ph_delta >= 0.0f,
	      "ttt.ph_lambda must be > 0, ttt.ph_delta >= 0");
	CHECK(p->adwin_delta > 0.0f && p->adwin_delta < 1.0f,
	      "ttt.adwin_delta must be in (0, 1)");
	CHECK(p->drift_min_gap >= 0, "ttt.drift_min_gap must be >= 0");
	CHECK(p->shadow_every >= 0, "ttt.shadow_every must be >= 0");
	CHECK(p->rollback_margin >= 0.0f, "ttt.rollback_margin must be >= 0");
	CHECK(p->rollback_window >= 1, "ttt.rollback_window must be >= 1");
	CHECK(p->reset_policy >= TTT_RESET_ROLLBACK &&
		  p->reset_policy <= TTT_RESET_HARD,
	      "ttt.reset: unknown policy");
	CHECK(p->reset_alpha >= 0.0f && p->reset_alpha <= 1.0f,
	      "ttt.reset_alpha must be in 0..1");
	CHECK(p->fallback_rollbacks >= 0 && p->fallback_rollbacks <= 1000000,
	      "ttt.fallback_rollbacks must be 0..1000000");
	CHECK(p->fallback_within >= 1 && p->fallback_within <= 100000000,
	      "ttt.fallback_within must be 1..100000000");
	CHECK(p->fallback_pause >= 0 && p->fallback_pause <= 100000000,
	      "ttt.fallback_pause must be 0..100000000");
	CHECK(p->scope >= TTT_SCOPE_SERIES && p->scope <= TTT_SCOPE_GLOBAL,
	      "ttt.scope: unknown scope");
	CHECK(p->max_gap >= 0 && p->max_gap <= 100000,
	      "ttt.max_gap must be 0..100000");
	CHECK(p->step >= 0, "ttt step must be >= 0");
	CHECK(p->combine_weight >= 0.0f && p->combine_weight <= 1.0f,
	      "ttt.combine_weight must be in [0, 1]");
	CHECK(p->average_rate >= 0.0f && p->average_rate <= 1.0f,
	      "ttt.average_rate must be in [0, 1]");
	CHECK(p->level_steps >= 0 && p->level_steps <= 100000,
	      "ttt.level_steps must be 0..100000");
	CHECK(p->level_forget > 0.0f && p->level_forget < 1.0f,
	      "ttt.level_forget must be in (0, 1)");
	CHECK(isfinite(p->level_shrink) && p->level_shrink >= 0.0f,
	      "ttt.level_shrink must be >= 0");
	CHECK(p->level_share >= 0.0f && p->level_share <= 1.0f,
	      "ttt.level_share must be in [0, 1]");
	CHECK(p->recal_steps >= 0 && p->recal_steps <= 64,
	      "ttt.recal_steps must be 0..64");
	CHECK(p->recal_forget > 0.0f && p->recal_forget < 1.0f,
	      "ttt.recal_forget must be in (0, 1)");
	CHECK(isfinite(p->recal_ridge) && p->recal_ridge >= 0.0f,
	      "ttt.recal_ridge must be >= 0");
	CHECK(p->recal_share >= 0.0f && p->recal_share <= 1.0f,
	      "ttt.recal_share must be in [0, 1]");
	CHECK(p->recal_judge > 0.0f && p->recal_judge < 1.0f,
	      "ttt.recal_judge must be in (0, 1)");
	CHECK(isfinite(p->recal_margin) && p->recal_margin >= 0.0f,
	      "ttt.recal_margin must be >= 0");
	CHECK(p->recal_later == 0.0f ||
		  (p->recal_later > 0.0f && p->recal_later < 1.0f),
	      "ttt.recal_later_judge must be 0 or in (0, 1)");
	return 0;
}
