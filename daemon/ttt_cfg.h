/*
 * The [ttt] settings as engine parameters (daemon/ttt_cfg.c): ttt/ does
 * not depend on config/, so the one mapping lives in daemon/, used by
 * `driftcast run`, `driftcast demo` and `driftcast eval` alike.
 */
#ifndef DRIFTCAST_DAEMON_TTT_CFG_H
#define DRIFTCAST_DAEMON_TTT_CFG_H

#include <stddef.h>

#include "config/config.h"

struct ttt_engine;
struct ttt_params;

/* The [ttt] settings of c as engine parameters; 0 or -EINVAL with the
 * reason. */
int dc_ttt_params_from_cfg(struct ttt_params *p, const struct cfg *c,
			   char *errbuf, size_t errbuf_size);
/* How dc_ttt_apply hands the parameters to the engine:
 * ttt_engine_set_params (a test passes a stand-in that fails). */
typedef int (*dc_ttt_set_fn)(struct ttt_engine *e, const struct ttt_params *p);
/* The [ttt] settings of c into the running engine e through set (a
 * reload); 0, or a negative errno with the reason in errbuf, which is set
 * on every failure (set itself returns only an errno). */
int dc_ttt_apply(struct ttt_engine *e, const struct cfg *c, dc_ttt_set_fn set,
		 char *errbuf, size_t errbuf_size);
/* families: "enc,norm,head,calib" -> FC_ADAPT_* bits; 0 or -EINVAL with
 * the reason. */
int dc_ttt_families(const char *list, unsigned *ret, char *errbuf,
		    size_t errbuf_size);

#endif
