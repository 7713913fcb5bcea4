/*
 * bench-ttt: the cost of test-time training per series, on one core.
 *
 *   build/bench/bench-ttt [MODEL]
 *
 * With MODEL (a file from `driftcast train`) its config is used, else a
 * freshly initialised default model (L = 96, H = 96, GRU, D = 64; the
 * cost does not depend on the weights).  For each adapter family choice
 * it streams one series of 3000 points (a daily cycle with a level shift)
 * through a TTT engine and reports: ms per adaptation (thread CPU time and
 * wall time, measured around the engine's adaptations as the engine counts
 * them), us per observation without adaptation (frozen), and bytes per
 * series for scope series and for scope global (10000 series).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast/forecast.h"
#include "ttt/ttt.h"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float value(int i)
{
	return sinf((float)i * 0.2618f) + (i > 1500 ? 1.0f : 0.0f) +
	       0.1f * sinf((float)i * 1.7f);
}

/* CPU seconds to stream n points through e (one series). */
static double stream(struct ttt_engine *e, int n)
{
	double t0 = cpu_now();
	for (int i = 0; i < n; i++)
		ttt_engine_observe(e, "bench/series", i, value(i));
	return cpu_now() - t0;
}

int main(int argc, char **argv)
{
	struct fc_model *m = NULL;
	char err[256];
	const int N = 3000;
	fc_blas_set_threads(1);
	if (argc > 1) {
		if (fc_model_load(argv[1], &m, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench-ttt: %s\n", err);
			return 1;
		}
	} else {
		struct fc_config c;
		fc_config_default(&c);
		if (fc_model_new(&c, 1, &m, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench-ttt: %s\n", err);
			return 1;
		}
	}
	const struct fc_config *mc = fc_model_config(m);
	printf("model: %s L=%d H=%d D=%d layers=%d, adapter block %zu floats\n",
	       fc_backbone_name(mc->backbone), mc->lookback, mc->horizon,
	       mc->d_model, mc->n_layers, fc_adapter_len(m));

	/* frozen: the per-observation forecast alone */
	struct ttt_params p;
	struct ttt_engine *e;
	struct ttt_stats st;
	ttt_params_default(&p);
	p.enabled = 0;
	if (ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-ttt: %s\n", err);
		return 1;
	}
	double frozen = stream(e, N);
	ttt_engine_stats(e, &st);
	printf("frozen: %.1f us per observation (forecast at batch 1)\n\n",
	       1e6 * frozen / (double)st.forecasts);
	ttt_engine_free(e);

	static const struct {
		const char *name;
		unsigned fam;
	} fams[] = {
	    {"calib (default)", FC_ADAPT_CALIB},
	    {"head", FC_ADAPT_HEAD},
	    {"norm,calib", FC_ADAPT_NORM | FC_ADAPT_CALIB},
	    {"enc,norm,calib", FC_ADAPT_ENC | FC_ADAPT_NORM | FC_ADAPT_CALIB},
	    {"enc,norm,head,calib", FC_ADAPT_ALL},
	};
	printf("%-26s %8s %9s %9s %9s %11s %11s\n", "families", "floats",
	       "adapt_ms", "wall_ms", "obs_us", "B/series", "B/global");
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		ttt_params_default(&p);
		p.families = fams[k].fam;
		p.guard = 0; /* count every adaptation's full cost */
		if (ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "bench-ttt: %s\n", err);
			return 1;
		}
		double cpu = stream(e, N);
		ttt_engine_stats(e, &st);
		/* CPU of adaptations = total CPU - the frozen share, which is
		 * the same forecasts plus shadow and drift samples; report
		 * the engine's wall clock beside it. */
		double adapt_cpu = (cpu - frozen) / (double)st.adaptations;
		double wall = st.adapt_seconds / (double)st.adaptations;
		size_t per = (st.bytes_series + st.bytes_adapters) / st.series;
		size_t adapters_params = st.adapter_params;
		ttt_engine_free(e);

		/* memory with one global adapter over 10000 series */
		p.scope = TTT_SCOPE_GLOBAL;
		ttt_engine_new(m, &p, NULL, NULL, &e, err, sizeof(err));
		char key[32];
		for (int i = 0; i < 10000; i++) {
			snprintf(key, sizeof(key), "dev%d/ch", i);
			ttt_engine_observe(e, key, 0, 1.0f);
		}
		ttt_engine_stats(e, &st);
		size_t glob = (st.bytes_series + st.bytes_adapters) / st.series;
		ttt_engine_free(e);
		printf("%-26s %8zu %9.3f %9.3f %9.1f %11zu %11zu\n",
		       fams[k].name, adapters_params, 1e3 * adapt_cpu,
		       1e3 * wall, 1e6 * cpu / N, per, glob);
	}
	printf("\nadapt_ms: thread CPU per adaptation beyond the frozen "
	       "stream (includes shadow and drift samples),\nwall_ms: "
	       "the engine's own wall clock around each adaptation; "
	       "B/series: ring + adapter state per series.\n");
	fc_model_free(m);
	return 0;
}
