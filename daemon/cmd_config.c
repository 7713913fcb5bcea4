/*
 * `driftcast config check|sample|dump|doc|man`: validate a settings file,
 * and print the generated sample, the effective settings, or the reference
 * documentation (docs/CONFIG.md is `doc`'s output, driftcast.conf(5) is
 * `man`'s).
 */
#include "daemon/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void config_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast config check FILE [--set section.key=value "
	    "...]\n"
	    "       driftcast config dump [FILE] [--set section.key=value "
	    "...]\n"
	    "       driftcast config sample\n"
	    "       driftcast config doc\n"
	    "       driftcast config man\n\n"
	    "  check   validate FILE; on error print FILE:LINE: reason and "
	    "exit 2\n"
	    "  dump    print the effective settings (defaults, then FILE, "
	    "then --set)\n"
	    "          with where each value came from\n"
	    "  sample  print a commented sample file with every setting at "
	    "its default\n"
	    "  doc     print the settings reference in Markdown "
	    "(docs/CONFIG.md)\n"
	    "  man     print the same reference as the man page "
	    "driftcast.conf(5) (roff)\n\n"
	    "Options:\n"
	    "  -s, --set section.key=value  override one setting (repeatable)\n"
	    "  -h, --help                   show this help\n");
}

/* Parse `config SUB [FILE] [--set ...]` into *a; returns an exit code or -1
 * to continue. */
static int parse_args(int argc, char **argv, struct dc_cfg_args *a,
		      int max_files)
{
	static const struct option longopts[] = {
	    {"set", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char cmd[64];
	int c, code;
	while ((c = dc_getopt(argc, argv, "s:h", longopts, config_usage,
			      &code)) > 0) {
		switch (c) {
		case 's':
			if (dc_cfg_args_add_set(a, optarg) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0)
		return code;
	snprintf(cmd, sizeof(cmd), "config %s", argv[0]);
	if ((code = dc_check_operands(cmd, argc, argv, max_files)) !=
	    DC_EXIT_OK)
		return code;
	if (optind < argc)
		a->file = argv[optind];
	return -1;
}

int dc_cmd_config(int argc, char **argv)
{
	struct dc_cfg_args a = {0};
	struct cfg cfg;
	struct cfg_sources src;
	int r;

	if (argc < 2) {
		config_usage(stderr);
		return DC_EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		config_usage(stdout);
		return DC_EXIT_OK;
	}
	argc--;
	argv++;

	if (!strcmp(sub, "check")) {
		if ((r = parse_args(argc, argv, &a, 1)) >= 0)
			return r;
		if (!a.file) {
			fprintf(stderr,
				"driftcast config check: missing FILE\n");
			return DC_EXIT_USAGE;
		}
		if ((r = dc_cfg_args_load(&a, &cfg, &src)) != DC_EXIT_OK)
			return r;
		printf("%s: ok\n", a.file);
		return DC_EXIT_OK;
	}
	if (!strcmp(sub, "dump")) {
		if ((r = parse_args(argc, argv, &a, 1)) >= 0)
			return r;
		if ((r = dc_cfg_args_load(&a, &cfg, &src)) != DC_EXIT_OK)
			return r;
		cfg_write_effective(stdout, &cfg, &src);
		return DC_EXIT_OK;
	}
	if (!strcmp(sub, "sample") || !strcmp(sub, "doc") ||
	    !strcmp(sub, "man")) {
		if ((r = parse_args(argc, argv, &a, 0)) >= 0)
			return r;
		if (a.nsets) {
			fprintf(stderr,
				"driftcast config %s: --set does not "
				"apply\n",
				sub);
			return DC_EXIT_USAGE;
		}
		if (!strcmp(sub, "sample"))
			cfg_write_sample(stdout);
		else if (!strcmp(sub, "doc"))
			cfg_write_markdown(stdout);
		else
			cfg_write_man(stdout);
		return DC_EXIT_OK;
	}
	fprintf(stderr, "driftcast config: unknown subcommand '%s'\n\n", sub);
	config_usage(stderr);
	return DC_EXIT_USAGE;
}
