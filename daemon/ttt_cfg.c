/*
 * struct cfg ([ttt] settings) -> struct ttt_params.  ttt/ does not depend
 * on config/, so the one mapping lives here, used by `driftcast run`,
 * `driftcast demo` and `driftcast eval` alike.  Also the compile-time
 * checks that the cfg_* enums equal the fc_* and ttt_* enums their values
 * are assigned to (here and in cmd_train.c): this file is where config.h,
 * forecast.h and ttt.h meet.
 */
#include "daemon/ttt_cfg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"

#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " != " #b)
SAME(CFG_BACKBONE_GRU, FC_BACKBONE_GRU);
SAME(CFG_BACKBONE_TRANSFORMER, FC_BACKBONE_TRANSFORMER);
SAME(CFG_LR_CONSTANT, FC_LR_CONSTANT);
SAME(CFG_LR_PLATEAU, FC_LR_PLATEAU);
SAME(CFG_LR_STEP, FC_LR_STEP);
SAME(CFG_LR_COSINE, FC_LR_COSINE);
SAME(CFG_TTT_DRIFT_NONE, TTT_DRIFT_NONE);
SAME(CFG_TTT_DRIFT_PH, TTT_DRIFT_PH);
SAME(CFG_TTT_DRIFT_ADWIN, TTT_DRIFT_ADWIN);
SAME(CFG_TTT_RESET_ROLLBACK, TTT_RESET_ROLLBACK);
SAME(CFG_TTT_RESET_SOFT, TTT_RESET_SOFT);
SAME(CFG_TTT_RESET_HARD, TTT_RESET_HARD);
SAME(CFG_TTT_SCOPE_SERIES, TTT_SCOPE_SERIES);
SAME(CFG_TTT_SCOPE_GROUP, TTT_SCOPE_GROUP);
SAME(CFG_TTT_SCOPE_GLOBAL, TTT_SCOPE_GLOBAL);
#undef SAME

int dc_ttt_families(const char *list, unsigned *ret, char *err, size_t n)
{
	unsigned f = 0;
	char buf[CFG_NAME_MAX], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", ", &save); t;
	     t = strtok_r(NULL, ", ", &save)) {
		if (!strcmp(t, "enc"))
			f |= FC_ADAPT_ENC;
		else if (!strcmp(t, "norm"))
			f |= FC_ADAPT_NORM;
		else if (!strcmp(t, "head"))
			f |= FC_ADAPT_HEAD;
		else if (!strcmp(t, "calib"))
			f |= FC_ADAPT_CALIB;
		else {
			snprintf(err, n, "unknown adapter family '%s'", t);
			return -EINVAL;
		}
	}
	*ret = f;
	return 0;
}

int dc_ttt_params_from_cfg(struct ttt_params *p, const struct cfg *c, char *err,
			   size_t n)
{
	ttt_params_default(p);
	p->enabled = c->ttt.enabled;
	p->every = c->ttt.every;
	p->w_recon = (float)c->ttt.w_recon;
	p->w_matured = (float)c->ttt.w_matured;
	p->w_anchor = (float)c->ttt.w_anchor;
	p->lr = (float)c->ttt.lr;
	p->steps = c->ttt.steps;
	p->clip = (float)c->ttt.clip;
	p->max_update = (float)c->ttt.max_update;
	p->max_drift = (float)c->ttt.max_drift;
	if (dc_ttt_families(c->ttt.families, &p->families, err, n) < 0)
		return -EINVAL;
	p->recon_windows = c->ttt.recon_windows;
	p->step_windows = c->ttt.step_windows;
	p->guard_windows = c->ttt.guard_windows;
	p->window_stride = c->ttt.window_stride;
	p->guard = c->ttt.guard;
	p->guard_tol = (float)c->ttt.guard_tol;
	p->drift = c->ttt.drift;
	p->drift_every = c->ttt.drift_every;
	p->ph_delta = (float)c->ttt.ph_delta;
	p->ph_lambda = (float)c->ttt.ph_lambda;
	p->adwin_delta = (float)c->ttt.adwin_delta;
	p->drift_min_gap = c->ttt.drift_min_gap;
	p->shadow_every = c->ttt.shadow_every;
	p->rollback_margin = (float)c->ttt.rollback_margin;
	p->rollback_window = c->ttt.rollback_window;
	p->reset_policy = c->ttt.reset;
	p->reset_alpha = (float)c->ttt.reset_alpha;
	p->fallback_rollbacks = c->ttt.fallback_rollbacks;
	p->fallback_within = c->ttt.fallback_within;
	p->fallback_pause = c->ttt.fallback_pause;
	p->scope = c->ttt.scope;
	p->group_sep = c->ttt.group_sep[0];
	p->ephemeral = c->ttt.ephemeral;
	p->combine_weight = (float)c->ttt.combine_weight;
	p->average_rate = (float)c->ttt.average_rate;
	p->max_gap = c->ttt.max_gap;
	p->level_steps = c->ttt.level_steps;
	p->level_forget = (float)c->ttt.level_forget;
	p->level_shrink = (float)c->ttt.level_shrink;
	p->level_share = (float)c->ttt.level_share;
	p->recal_steps = c->ttt.recal_steps;
	p->recal_forget = (float)c->ttt.recal_forget;
	p->recal_ridge = (float)c->ttt.recal_ridge;
	p->recal_share = (float)c->ttt.recal_share;
	p->recal_judge = (float)c->ttt.recal_judge;
	p->recal_margin = (float)c->ttt.recal_margin;
	p->recal_later = (float)c->ttt.recal_later;
	p->seed = (uint64_t)c->ttt.seed;
	return ttt_params_check(p, err, n);
}

int dc_ttt_apply(struct ttt_engine *e, const struct cfg *c, dc_ttt_set_fn set,
		 char *err, size_t n)
{
	struct ttt_params tp;
	int r = dc_ttt_params_from_cfg(&tp, c, err, n);
	if (r < 0)
		return r;
	r = set(e, &tp);
	/* set reports an errno only (e.g. the flush of the queued forecasts
	 * failed): the reason is made here */
	if (r < 0)
		snprintf(err, n, "the engine refused them: %s", strerror(-r));
	return r;
}
