/*
 * No allocation in the per-step path: forecast, loss + gradient, the
 * optimizer step and clipping, for both backbones, after the model and the
 * workspace exist.  malloc/calloc/realloc are interposed in this binary
 * and counted while the loop runs.  Under ASan the allocator belongs to the
 * sanitizer, so the test skips itself there (the plain build runs it).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "forecast/forecast.h"
#include "tests/alloc_count.h"

static void steps(int backbone)
{
#if INTERPOSED
	struct fc_config c;
	struct fc_model *m;
	struct fc_workspace *ws;
	char err[256];
	/* OpenBLAS's threaded GEMM mallocs per call; the per-step path runs
	 * single-threaded BLAS (one workspace per thread instead) */
	cr_assert_eq(fc_blas_set_threads(1), 1);
	fc_config_default(&c);
	c.backbone = backbone;
	c.n_layers = 2;
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0);
	cr_assert_eq(fc_workspace_new(m, 16, &ws), 0);
	size_t n = fc_adapter_len(m), L = 96, H = 96;
	float *ad = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float));
	float *st = calloc(fc_adam_state_len(n), sizeof(float));
	float *x = calloc(8 * L, sizeof(float)), *y = calloc(8 * H, 4);
	float *mk = calloc(8 * L, sizeof(float)), *out = calloc(8 * H, 4);
	cr_assert(ad && g && st && x && y && mk && out);
	uint64_t r = 1;
	for (size_t i = 0; i < 8 * L; i++)
		x[i] = fc_rng_uniform(&r);
	for (size_t i = 0; i < 8 * H; i++)
		y[i] = fc_rng_uniform(&r);
	fc_adapter_init(m, ad, 1);
	struct fc_batch bt = {x, y, 8, x, mk, 8, 1.0f, 0.5f};
	struct fc_adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
	struct fc_loss l;
	/* warm-up: OpenBLAS sets up its buffers on first use */
	cr_assert_eq(fc_forecast(m, ad, ws, x, 8, out), 0);
	cr_assert_eq(fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ALL, &l), 0);

	allocations = 0;
	counting = 1;
	int bad = 0;
	for (int s = 1; s <= 5; s++) {
		for (int i = 0; i < 8; i++)
			fc_mask_sample(mk + (size_t)i * L, (int)L, 0.33f, 16,
				       &r);
		bad |= fc_forecast(m, NULL, ws, x, 1, out);
		bad |= fc_forecast(m, ad, ws, x, 8, out);
		bad |= fc_loss_grad(m, ad, ws, &bt, g, FC_ADAPT_ALL, &l);
		fc_grad_clip(g, n, 1.0f);
		fc_adam_step(&o, ad, g, st, n, s);
	}
	counting = 0;
	cr_assert_eq(bad, 0);
	cr_assert_eq(allocations, 0, "%ld allocations in the step loop",
		     allocations);

	/* the counter itself works */
	counting = 1;
	void *volatile p = malloc(16);
	counting = 0;
	free(p);
	cr_assert_eq(allocations, 1);
	free(ad), free(g), free(st), free(x), free(y), free(mk), free(out);
	fc_workspace_free(ws);
	fc_model_free(m);
#else
	(void)backbone;
	cr_skip_test("allocator interposition is off under ASan");
#endif
}

Test(noalloc, gru_step_loop)
{
	steps(FC_BACKBONE_GRU);
}

Test(noalloc, transformer_step_loop)
{
	steps(FC_BACKBONE_TRANSFORMER);
}
