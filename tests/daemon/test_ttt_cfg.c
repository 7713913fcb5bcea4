/* dc_ttt_apply: a reload's [ttt] settings into the running engine.  Every
 * failure leaves a reason in the error buffer, which the daemon logs as
 * it is -- also when the engine itself refuses (issue 13 item 9: the
 * reload logged a buffer nothing had written). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "config/config.h"
#include "daemon/ttt_cfg.h"
#include "ttt/ttt.h"

static int calls;

static int set_fails(struct ttt_engine *e, const struct ttt_params *p)
{
	(void)e;
	(void)p;
	calls++;
	return -ENOMEM;
}

static int set_ok(struct ttt_engine *e, const struct ttt_params *p)
{
	(void)e;
	calls++;
	return p->every > 0 ? 0 : -EINVAL;
}

/* A buffer as the stack leaves it: no NUL anywhere. */
static void poison(char *buf, size_t n)
{
	memset(buf, 0xa5, n);
}

Test(ttt_cfg, engine_refusal_leaves_a_reason)
{
	struct cfg c;
	char err[512];
	cfg_defaults(&c);
	poison(err, sizeof(err));
	calls = 0;
	cr_assert_eq(dc_ttt_apply(NULL, &c, set_fails, err, sizeof(err)),
		     -ENOMEM);
	cr_assert_eq(calls, 1);
	cr_assert_not_null(memchr(err, '\0', sizeof(err)),
			   "the reason is a string");
	cr_assert_not_null(strstr(err, strerror(ENOMEM)), "reason: %s", err);
}

Test(ttt_cfg, invalid_settings_name_the_setting_and_skip_the_engine)
{
	struct cfg c;
	char err[512];
	cfg_defaults(&c);
	snprintf(c.ttt.families, sizeof(c.ttt.families), "enc,bogus");
	poison(err, sizeof(err));
	calls = 0;
	cr_assert_eq(dc_ttt_apply(NULL, &c, set_fails, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(calls, 0);
	cr_assert_not_null(strstr(err, "bogus"), "reason: %s", err);
}

Test(ttt_cfg, valid_settings_reach_the_engine)
{
	struct cfg c;
	char err[512] = "";
	cfg_defaults(&c);
	calls = 0;
	cr_assert_eq(dc_ttt_apply(NULL, &c, set_ok, err, sizeof(err)), 0);
	cr_assert_eq(calls, 1);
}
