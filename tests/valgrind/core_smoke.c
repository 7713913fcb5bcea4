/*
 * The numeric core under valgrind: a model built and saved and loaded, a
 * batch forecast, a loss and gradient with an adapter, AdamW steps, and
 * the TTT engine adapting a few series over a stream, then everything
 * freed.  Run by meson under `valgrind --error-exitcode=1
 * --leak-check=full` (tests/valgrind/meson.build): any invalid access,
 * use of uninitialised memory or leak fails the test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"

static long events;

static void on_event(void *user, const struct ttt_event *ev)
{
	(void)user;
	(void)ev;
	events++;
}

static int check(int ok, const char *what)
{
	if (!ok)
		fprintf(stderr, "core_smoke: %s\n", what);
	return ok ? 0 : 1;
}

static int restore_into(void *user, const struct ttt_recent *r)
{
	return ttt_engine_restore_recent(user, r);
}

static int run(int backbone)
{
	char err[512], path[64];
	struct fc_config c;
	struct fc_model *m = NULL, *m2 = NULL;
	struct fc_workspace *ws = NULL;
	struct ttt_engine *e = NULL;
	int bad = 0;

	fc_config_default(&c);
	c.backbone = backbone;
	c.lookback = 32;
	c.horizon = 8;
	c.d_model = 16;
	c.n_layers = 1;
	c.n_heads = 2;
	c.d_ff = 32;
	c.lora_rank = 2;
	bad |= check(fc_model_new(&c, 7, &m, err, sizeof(err)) == 0, err);
	if (bad)
		return 1;
	snprintf(path, sizeof(path), "/tmp/dc-vg-%d-%d.dcm", (int)getpid(),
		 backbone);
	bad |= check(fc_model_save(m, path, err, sizeof(err)) == 0, err);
	bad |= check(fc_model_load(path, &m2, err, sizeof(err)) == 0, err);
	unlink(path);
	bad |= check(fc_workspace_new(m2, 8, &ws) == 0, "workspace");

	size_t n = fc_adapter_len(m2);
	float *a = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float));
	float *st = calloc(fc_adam_state_len(n), sizeof(float));
	float x[4 * 32], y[4 * 8], mask[4 * 32];
	uint64_t rng = 3;
	for (int i = 0; i < 4 * 32; i++)
		x[i] = sinf((float)i * 0.3f) + 0.1f * (float)(i % 5);
	for (int i = 0; i < 4 * 8; i++)
		y[i] = cosf((float)i * 0.2f);
	for (int w = 0; w < 4; w++)
		fc_mask_sample(mask + w * 32, 32, 0.33f, 4, &rng);
	fc_adapter_init(m2, a, 1);
	bad |= check(fc_forecast(m2, a, ws, x, 4, y) == 0, "forecast");
	struct fc_batch b = {.xf = x,
			     .yf = y,
			     .bf = 4,
			     .xr = x,
			     .mr = mask,
			     .br = 4,
			     .wf = 1.0f,
			     .wr = 1.0f};
	struct fc_adam opt = {
	    .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
	struct fc_loss loss;
	for (long s = 1; s <= 3; s++) {
		bad |= check(
		    fc_loss_grad(m2, a, ws, &b, g, FC_ADAPT_ALL, &loss) == 0,
		    "loss_grad");
		fc_grad_clip(g, n, 1.0f);
		fc_adam_step(&opt, a, g, st, n, s);
	}
	bad |= check(isfinite(loss.total), "finite loss");

	struct ttt_params p;
	ttt_params_default(&p);
	p.every = 5;
	p.shadow_every = 2;
	bad |= check(
	    ttt_engine_new(m2, &p, on_event, NULL, &e, err, sizeof(err)) == 0,
	    err);
	/* forecasts queued and batched (ttt_engine_defer_forecasts) */
	bad |= check(!e || ttt_engine_defer_forecasts(e, 4) == 0, "defer");
	for (int t = 0; e && t < 120; t++)
		for (int k = 0; k < 3; k++) {
			char key[16];
			snprintf(key, sizeof(key), "s%d", k);
			ttt_engine_observe(e, key, 1000 + t * 60,
					   sinf((float)(t + k) * 0.26f) +
					       (t > 80 ? 2.0f : 0.0f));
		}
	bad |= check(!e || ttt_engine_flush(e) == 0, "flush");
	bad |= check(events > 0, "events");
	/* a clean restart's recent values, into a second engine */
	struct ttt_engine *e2 = NULL;
	bad |= check(
	    ttt_engine_new(m2, &p, on_event, NULL, &e2, err, sizeof(err)) == 0,
	    err);
	bad |=
	    check(!e || !e2 || ttt_engine_each_recent(e, restore_into, e2) == 0,
		  "recent values");
	bad |= check(
	    !e2 || ttt_engine_observe(e2, "s0", 1000 + 120 * 60, 0.5f) == 0,
	    "observe after restore");
	ttt_engine_free(e2);
	ttt_engine_free(e);
	free(a);
	free(g);
	free(st);
	fc_workspace_free(ws);
	fc_model_free(m2);
	fc_model_free(m);
	return bad;
}

int main(void)
{
	int bad = run(FC_BACKBONE_GRU) | run(FC_BACKBONE_TRANSFORMER);
	printf("core_smoke: %s (%ld engine events)\n", bad ? "FAILED" : "ok",
	       events);
	return bad;
}
