/*
 * Fuzz target: the configuration loader, cfg_load_buffer() (config/load.c,
 * the path cfg_load() takes after reading the file).  Input: the file's
 * text (a single NUL byte in it is the file's), then optionally two NUL
 * bytes and --set arguments, one per line.
 * Besides "no crash, no leak, no UB" the loader's contract must hold:
 * 0 with an empty errbuf and a configuration whose relations hold, or a
 * negative errno with every error line blaming the file or a --set, and
 * nothing assigned, the messages cut to the caller's buffer whatever its
 * size.  A loaded configuration is also dumped (config dump).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h" /* cfg_load_buffer */

#define FUZZ_MAX_SETS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken contract: say which, then crash (libFuzzer keeps the input). */
static void fail(const char *what, int r, const char *err)
{
	fprintf(stderr, "fuzz-config: %s (returned %d)\n%s\n", what, r, err);
	abort();
}

/* line starts with prefix */
static int starts_with(const char *line, const char *prefix)
{
	return !strncmp(line, prefix, strlen(prefix));
}

/* Every line of err is whole and starts with "fuzz.conf:" or "--set ",
 * but a last "(and N more errors)" for those that did not fit, or err is
 * "N errors, too long to show". */
static int blames_an_input(const char *err)
{
	size_t digits = strspn(err, "0123456789");
	if (digits && (!strcmp(err + digits, " errors, too long to show") ||
		       !strcmp(err + digits, " error, too long to show")))
		return 1;
	for (const char *l = err; l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (starts_with(l, "(and ") && !strchr(l, '\n'))
			break;
		if (!starts_with(l, "fuzz.conf:") && !starts_with(l, "--set "))
			return 0;
	}
	return 1;
}

/* Every byte of p is still FILL (nothing assigned). */
#define FILL 0xa5
static int untouched(const void *p, size_t n)
{
	const unsigned char *b = p;
	return n == 0 || (b[0] == FILL && !memcmp(b, b + 1, n - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	/* filled with FILL, again only after a load assigned it (most inputs
	 * are refused: 42 KB less to write and copy for each) */
	static struct cfg c;
	static int assigned = 1;
	const uint8_t *nul = memmem(data, size, "\0\0", 2);
	size_t file_len = nul ? (size_t)(nul - data) : size;
	const char *sets[FUZZ_MAX_SETS];
	size_t nsets = 0;
	struct cfg_sources src;
	/* the message buffer's size varies with the input (1..2048 bytes),
	 * on the heap, so that writing past it is caught */
	size_t err_size = 1 + size % 2048;
	char *err = malloc(err_size);
	if (!err)
		abort();

	/* copies, so that reads past the end are caught by ASan */
	char *text = malloc(file_len ? file_len : 1);
	char *set_text = NULL;
	if (!text)
		abort();
	memcpy(text, data, file_len);
	if (nul) {
		size_t n = size - file_len - 2;
		set_text = malloc(n + 1);
		if (!set_text)
			abort();
		memcpy(set_text, nul + 2, n);
		set_text[n] = '\0';
		for (char *s = set_text, *e; s && nsets < FUZZ_MAX_SETS;
		     s = e) {
			e = strchr(s, '\n');
			if (e)
				*e++ = '\0';
			sets[nsets++] = s;
		}
	}

	if (assigned)
		memset(&c, FILL, sizeof(c));
	assigned = 0;
	int r = cfg_load_buffer("fuzz.conf", text, file_len, sets, nsets, &c,
				&src, err, err_size);
	if (r == 0) {
		assigned = 1;
		if (err[0])
			fail("success with an error message", r, err);
		if (!strcmp(c.kafka.input_topic, c.kafka.output_topic) ||
		    !strcmp(c.kafka.input_topic, c.kafka.deadletter_topic) ||
		    !strcmp(c.kafka.output_topic, c.kafka.deadletter_topic) ||
		    !strcmp(c.kafka.state_topic, c.kafka.input_topic) ||
		    !strcmp(c.kafka.audit_topic, c.kafka.output_topic) ||
		    (strcmp(c.kafka.state_topic, "off") &&
		     !strcmp(c.kafka.state_topic, c.kafka.audit_topic)) ||
		    c.ttt.recon_windows + c.ttt.step_windows < 1 ||
		    c.model.heads < 1 || c.model.width % c.model.heads)
			fail("a loaded configuration breaks a relation", r, "");
		if (!sink && !(sink = fopen("/dev/null", "w")))
			abort();
		cfg_write_effective(sink, &c, &src);
	} else {
		if (r != -EINVAL && r != -ENOMEM)
			fail("unexpected error code", r, err);
		if (!err[0] && err_size > 1)
			fail("failure without a message", r, err);
		/* below a line and the count's room, nothing need be whole */
		if (err_size >= 64 && !blames_an_input(err))
			fail("an error line names neither the file nor a --set",
			     r, err);
		if (!untouched(&c, sizeof(c)))
			fail("assigned despite the error", r, err);
	}
	free(err);
	free(set_text);
	free(text);
	return 0;
}
