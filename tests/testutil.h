/*
 * Helpers shared by the Criterion tests: run the driftcast binary (path in
 * $DRIFTCAST, set by meson) and capture its exit code, stdout and stderr.
 */
#ifndef DRIFTCAST_TESTUTIL_H
#define DRIFTCAST_TESTUTIL_H

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct run_result {
	int status; /* exit code, or 128 + signal */
	char out[65536];
	char err[65536];
};

static inline void tu_slurp(const char *file, char *buf, size_t size)
{
	FILE *f = fopen(file, "r");
	size_t n = 0;
	if (f) {
		n = fread(buf, 1, size - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Run argv (argv[0] = "driftcast" is replaced by $DRIFTCAST) with stdin
 * from /dev/null.  Returns 0, or -1 when the process could not start. */
static inline int tu_run(struct run_result *r, char *const argv[])
{
	char outf[] = "/tmp/dc-test-out-XXXXXX",
	     errf[] = "/tmp/dc-test-err-XXXXXX";
	int ofd = mkstemp(outf), efd = mkstemp(errf);
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rc;
	const char *bin = getenv("DRIFTCAST");
	if (ofd < 0 || efd < 0 || !bin)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, ofd, 1);
	posix_spawn_file_actions_adddup2(&fa, efd, 2);
	char *args[64];
	int i = 0;
	args[0] = (char *)bin;
	for (i = 1; argv[i] && i < 63; i++)
		args[i] = argv[i];
	args[i] = NULL;
	rc = posix_spawn(&pid, bin, &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(ofd);
	close(efd);
	if (rc == 0 && waitpid(pid, &st, 0) == pid)
		r->status =
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	else
		r->status = -1;
	tu_slurp(outf, r->out, sizeof(r->out));
	tu_slurp(errf, r->err, sizeof(r->err));
	unlink(outf);
	unlink(errf);
	return rc == 0 ? 0 : -1;
}

/* Write text to a new temporary file named by the template; returns it. */
static inline char *tu_write_temp(char *tmpl, const char *text)
{
	int fd = mkstemp(tmpl);
	if (fd < 0)
		return NULL;
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		return NULL;
	}
	close(fd);
	return tmpl;
}

#endif
