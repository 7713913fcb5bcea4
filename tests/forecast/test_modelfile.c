/*
 * Model files that must be refused, each with its reason: missing,
 * empty, truncated, wrong magic, newer format version, checksum mismatch,
 * non-finite weights (with a valid checksum), an invalid config, trailing
 * bytes.  And a good file loads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "forecast/internal.h" /* fc_model_load_buffer */

static char path[64];
static unsigned char *bytes;
static size_t n_bytes;

static void setup(void)
{
	struct fc_config c;
	struct fc_model *m;
	char err[256];
	fc_config_default(&c);
	c.lookback = 32;
	c.horizon = 8;
	c.d_model = 8;
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "/tmp/dc-mf-%d.dcm", (int)getpid());
	cr_assert_eq(fc_model_save(m, path, err, sizeof(err)), 0, "%s", err);
	fc_model_free(m);
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	fseek(f, 0, SEEK_END);
	n_bytes = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	bytes = malloc(n_bytes);
	cr_assert_eq(fread(bytes, 1, n_bytes, f), n_bytes);
	fclose(f);
}

static void teardown(void)
{
	unlink(path);
	free(bytes);
	bytes = NULL;
}

TestSuite(modelfile, .init = setup, .fini = teardown);

static void write_file(const unsigned char *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(b, 1, n, f), n);
	fclose(f);
}

static void fix_crc(unsigned char *b, size_t n)
{
	uint32_t c = (uint32_t)crc32(0L, b, (uInt)(n - 4));
	for (int i = 0; i < 4; i++)
		b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* load must fail with -EINVAL (or want) and a reason containing `why` */
static void refused(int want, const char *why)
{
	struct fc_model *m = NULL;
	char err[512] = "";
	int r = fc_model_load(path, &m, err, sizeof(err));
	cr_assert_eq(r, want, "load returned %d (%s)", r, err);
	cr_assert_null(m);
	cr_assert(strstr(err, why), "reason '%s' lacks '%s'", err, why);
	cr_assert(strstr(err, path), "reason '%s' lacks the path", err);
}

Test(modelfile, good_file_loads)
{
	struct fc_model *m = NULL;
	char err[256];
	cr_assert_eq(fc_model_load(path, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fc_model_config(m)->lookback, 32);
	fc_model_free(m);
}

Test(modelfile, missing_file)
{
	unlink(path);
	refused(-ENOENT, "No such file");
}

Test(modelfile, empty_file)
{
	write_file(bytes, 0);
	refused(-EINVAL, "truncated");
}

Test(modelfile, truncated_file)
{
	write_file(bytes, n_bytes - 100);
	refused(-EINVAL, "truncated");
	write_file(bytes, 30);
	refused(-EINVAL, "truncated");
}

Test(modelfile, trailing_bytes)
{
	unsigned char *b = malloc(n_bytes + 3);
	memcpy(b, bytes, n_bytes);
	memset(b + n_bytes, 0, 3);
	write_file(b, n_bytes + 3);
	free(b);
	refused(-EINVAL, "trailing bytes");
}

Test(modelfile, wrong_magic)
{
	bytes[0] = 'X';
	write_file(bytes, n_bytes);
	refused(-EINVAL, "wrong magic");
}

Test(modelfile, newer_version)
{
	bytes[8] = 2; /* version u32 little-endian after the magic */
	fix_crc(bytes, n_bytes);
	write_file(bytes, n_bytes);
	refused(-EINVAL, "newer");
}

Test(modelfile, checksum_mismatch)
{
	bytes[n_bytes / 2] ^= 0x10; /* one bit in the weights */
	write_file(bytes, n_bytes);
	refused(-EINVAL, "checksum mismatch");
}

Test(modelfile, non_finite_weight)
{
	float nan = NAN;
	memcpy(bytes + n_bytes - 4 - 4 * 3, &nan, 4); /* a rec.b weight */
	fix_crc(bytes, n_bytes);
	write_file(bytes, n_bytes);
	refused(-EINVAL, "non-finite weight");
}

Test(modelfile, invalid_config)
{
	/* d_model is the 6th i32 of the config, after magic, version, size */
	size_t off = 8 + 4 + 8 + 5 * 4;
	bytes[off] = 0;
	bytes[off + 1] = 0;
	fix_crc(bytes, n_bytes);
	write_file(bytes, n_bytes);
	refused(-EINVAL, "invalid config");
}

/* A file without the magic is refused from its first bytes: /dev/zero was
 * read (and held) to the 4 GiB limit, and then called too large. */
Test(modelfile, not_a_model_is_refused_before_it_is_read, .timeout = 30)
{
	struct fc_model *m = NULL;
	char err[256];
	cr_assert_eq(fc_model_load("/dev/zero", &m, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "wrong magic"), "%s", err);
	cr_assert_null(m);
}

#define NCH_AT 68 /* magic 8, version 4, size 8, config 11 x 4, ratio 4 */

/* A count of scaler channels the file cannot hold is refused before
 * anything is allocated for it (it allocated 6 MB for a 5 KB file). */
Test(modelfile, scaler_count_beyond_the_file)
{
	bytes[NCH_AT] = 0xa0, bytes[NCH_AT + 1] = 0x86, bytes[NCH_AT + 2] = 1;
	fix_crc(bytes, n_bytes);
	write_file(bytes, n_bytes);
	refused(-EINVAL, "100000 scaler channels do not fit in");
}

/* The fuzz seeds (tests/fuzz/corpus/model) are real models of both
 * backbones; they must keep loading or the fuzzer stops at the header. */
static unsigned char *read_seed(const char *name, size_t *ret_n)
{
	char p[4096];
	const char *root = getenv("SOURCE_ROOT");
	snprintf(p, sizeof(p), "%s/tests/fuzz/corpus/model/%s",
		 root ? root : "..", name);
	FILE *f = fopen(p, "rb");
	cr_assert(f, "%s", p);
	unsigned char *b = malloc(1 << 16);
	*ret_n = fread(b, 1, 1 << 16, f);
	fclose(f);
	return b;
}

Test(modelfile, fuzz_seeds_load)
{
	const char *seeds[] = {"gru-small.dcm", "gru-2layers.dcm",
			       "transformer-small.dcm"};
	int backbones = 0;
	for (size_t i = 0; i < 3; i++) {
		size_t n;
		unsigned char *b = read_seed(seeds[i], &n);
		struct fc_model *m = NULL;
		char err[512];
		cr_assert_eq(
		    fc_model_load_buffer(b, n, seeds[i], &m, err, sizeof(err)),
		    0, "%s", err);
		const float *mean, *std;
		const char *const *names;
		cr_assert_eq(fc_model_scaler(m, &mean, &std, &names), 7);
		backbones |= 1 << fc_model_config(m)->backbone;
		fc_model_free(m);
		free(b);
	}
	cr_assert_eq(backbones,
		     1 << FC_BACKBONE_GRU | 1 << FC_BACKBONE_TRANSFORMER);
}

/* A channel name longer than the writer makes used to be cut short and
 * the rest read as the next fields. */
Test(modelfile, scaler_name_too_long)
{
	size_t n;
	unsigned char *b = read_seed("gru-small.dcm", &n);
	cr_assert_eq(b[NCH_AT + 12], 4, "first name is HUFL");
	b[NCH_AT + 12] = 64;
	fix_crc(b, n);
	write_file(b, n);
	free(b);
	refused(-EINVAL, "name of scaler channel 0 is 64 bytes (at most 63)");
}

/* A tensor name is quoted in the reason with its unprintable bytes as
 * '?' (they came out raw: binary in the log). */
Test(modelfile, tensor_name_is_quoted_printable)
{
	size_t n;
	unsigned char *b = read_seed("gru-small.dcm", &n);
	/* the first tensor entry: after the 7 scaler channels (8 bytes and
	 * a name each) and the tensor count; its name after kind, layer,
	 * offset and length */
	size_t at = NCH_AT + 4;
	for (int i = 0; i < 7; i++)
		at += 9 + b[at + 8];
	at += 4 + 1 + 1 + 8 + 8;
	cr_assert_eq(memcmp(b + at, "emb.w", 6), 0, "%.24s", b + at);
	b[at + 1] = 0xff, b[at + 2] = 0x1b;
	fix_crc(b, n);
	write_file(b, n);
	free(b);
	refused(-EINVAL, "tensor 0 (e??.w) does not match the config");
}

Test(modelfile, save_to_unwritable_place)
{
	struct fc_config c;
	struct fc_model *m;
	char err[256];
	fc_config_default(&c);
	cr_assert_eq(fc_model_new(&c, 1, &m, err, sizeof(err)), 0);
	int r = fc_model_save(m, "/nonexistent-dir/x.dcm", err, sizeof(err));
	fc_model_free(m);
	cr_assert_eq(r, -ENOENT);
	cr_assert(strstr(err, "/nonexistent-dir/x.dcm"), "%s", err);
}

/* Mutation fuzzing in-process (deterministic): random bit flips, byte
 * overwrites and truncations, half of them with a repaired checksum so
 * that the parser behind it is reached.  Every load either succeeds or
 * fails with -EINVAL and a reason; never a crash (ASan build) or a model
 * with non-finite weights. */
Test(modelfile, mutations_never_crash)
{
	uint64_t r = 99;
	unsigned char *b = malloc(n_bytes);
	cr_assert(b);
	int ok = 0, refused_n = 0;
	for (int it = 0; it < 3000; it++) {
		size_t n = n_bytes;
		memcpy(b, bytes, n_bytes);
		int kind = (int)(fc_rng_next(&r) % 4);
		int edits = 1 + (int)(fc_rng_next(&r) % 4);
		for (int e = 0; e < edits; e++) {
			/* bias towards the header, where the structure is */
			size_t lim = fc_rng_next(&r) % 2 ? 160 : n;
			size_t at =
			    (size_t)(fc_rng_next(&r) % (lim < n ? lim : n));
			if (kind == 0)
				b[at] ^=
				    (unsigned char)(1u
						    << (fc_rng_next(&r) % 8));
			else if (kind == 1)
				b[at] = (unsigned char)fc_rng_next(&r);
			else if (kind == 2)
				b[at] = 0xff;
		}
		if (kind == 3)
			n = (size_t)(fc_rng_next(&r) % n_bytes);
		if (fc_rng_next(&r) % 2 && n >= 4)
			fix_crc(b, n);
		struct fc_model *m = NULL;
		char err[512] = "";
		int rc =
		    fc_model_load_buffer(b, n, "fuzz", &m, err, sizeof(err));
		if (rc == 0) {
			cr_assert(m);
			ok++;
			fc_model_free(m);
		} else {
			cr_assert_eq(rc, -EINVAL, "rc %d: %s", rc, err);
			cr_assert_null(m);
			cr_assert(strstr(err, "fuzz"), "%s", err);
			refused_n++;
		}
	}
	free(b);
	cr_assert_gt(refused_n, 1000);
}
