/*
 * driftcast-mockbroker against an external Kafka client (Debian's kcat):
 * it starts, writes its bootstraps, says READY=1 on $NOTIFY_SOCKET, serves
 * produce/consume and a consumer group (cooperative-sticky, as everything
 * that joins a group here must be), obeys fault-injection commands on stdin
 * (a broker down really refuses clients, and comes back up), and exits 0
 * with STOPPING=1 on SIGTERM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char dir[] = "/tmp/dc-mockbroker-XXXXXX";
static char exe_path[1024];

/* The helper is built next to the tests: $BUILD_ROOT/daemon/. */
static const char *mockbroker_exe(void)
{
	const char *root = getenv("BUILD_ROOT");
	cr_assert_not_null(root, "BUILD_ROOT not set");
	snprintf(exe_path, sizeof(exe_path), "%s/daemon/driftcast-mockbroker",
		 root);
	return exe_path;
}
static char bs[1024];
static char fifo[600];
static int notify_fd = -1, cmd_fd = -1;
static FILE *reply;
static pid_t pid;

/* Wait up to timeout_ms for a datagram containing `want`. */
static bool notify_wait(const char *want, int timeout_ms)
{
	char buf[4096];
	for (int waited = 0; waited < timeout_ms; waited += 100) {
		struct pollfd p = {.fd = notify_fd, .events = POLLIN};
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = '\0';
				if (strstr(buf, want))
					return true;
			}
		}
	}
	return false;
}

static void start(void)
{
	char path[512], sock[512];
	const char *exe = mockbroker_exe();
	cr_assert_not_null(mkdtemp(dir));

	snprintf(sock, sizeof(sock), "%s/notify", dir);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cr_assert_lt(strlen(sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	cr_assert_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sock, 1);

	int in[2], out[2];
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	snprintf(path, sizeof(path), "%s/bootstraps", dir);
	snprintf(fifo, sizeof(fifo), "%s/control", dir);
	char errf[512];
	snprintf(errf, sizeof(errf), "%s/stderr", dir);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, errf,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char *argv[] = {(char *)exe,
			"--brokers",
			"3",
			"--topic",
			"measurements:4",
			"-t",
			"forecasts:2",
			"--bootstraps-file",
			path,
			"--control",
			fifo,
			NULL};
	cr_assert_eq(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	unsetenv("NOTIFY_SOCKET");
	close(in[0]);
	close(out[1]);
	cmd_fd = in[1];
	reply = fdopen(out[0], "r");

	cr_assert(notify_wait("READY=1", 15000), "no READY=1");
	/* the first line of stdout is the bootstraps, as in the file */
	cr_assert_not_null(fgets(bs, sizeof(bs), reply));
	char file_bs[1024] = "";
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(file_bs, sizeof(file_bs), f));
	fclose(f);
	cr_assert_str_eq(bs, file_bs);
	bs[strcspn(bs, "\n")] = '\0';
	/* three brokers on loopback */
	int commas = 0;
	for (char *c = bs; *c; c++)
		commas += *c == ',';
	cr_assert_eq(commas, 2, "%s", bs);
	cr_assert(!strncmp(bs, "127.0.0.1:", 10), "%s", bs);
}

static void stop(void)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (reply)
		fclose(reply);
	if (cmd_fd >= 0)
		close(cmd_fd);
	if (notify_fd >= 0)
		close(notify_fd);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* Send one command; return its reply line (static buffer). */
static const char *command(const char *line)
{
	static char buf[512];
	cr_assert_eq(write(cmd_fd, line, strlen(line)), (ssize_t)strlen(line));
	cr_assert_eq(write(cmd_fd, "\n", 1), 1);
	cr_assert_not_null(fgets(buf, sizeof(buf), reply));
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* Run a shell command line with $BS set; returns its exit status. */
static int sh(const char *fmt, const char *arg)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), fmt, arg);
	setenv("BS", bs, 1);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

Test(mockbroker, kcat_round_trip_faults_and_clean_exit, .init = start,
     .fini = stop, .timeout = 120)
{
	char out[600];

	cr_assert_str_eq(command("# comment lines are ignored\nbootstraps"),
			 bs);
	cr_assert_str_eq(command("frob"), "error: unknown command 'frob'");
	cr_assert(!strncmp(command("error Nope 1 NOT_LEADER_FOR_PARTITION"),
			   "error: usage", 12));
	cr_assert_str_eq(command("error Produce 1 NO_SUCH_ERROR"),
			 "error: unknown error name 'NO_SUCH_ERROR'");
	cr_assert_str_eq(command("down 7"), "error: usage: down BROKER (1..3 "
					    "or -1)");
	/* the same commands work through the FIFO */
	int ctl = open(fifo, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(ctl, 0);
	cr_assert_eq(write(ctl, "rtt 1 0\n", 8), 8);
	close(ctl);
	char line[256];
	cr_assert_not_null(fgets(line, sizeof(line), reply));
	cr_assert_str_eq(line, "ok\n");
	cr_assert_str_eq(command("topic extra 2"), "ok");
	cr_assert_str_eq(command("rtt 2 5"), "ok");
	cr_assert_str_eq(command("leader measurements 0 2"), "ok");

	/* produce 20 keyed messages through two injected Produce errors
	 * (the client retries), then read them back */
	cr_assert_str_eq(
	    command(
		"error Produce 2 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT"),
	    "ok");
	cr_assert_eq(sh("for i in $(seq 1 20); do echo \"k$i:v$i\"; done | "
			"kcat -P -b \"$BS\" -t measurements -K: %s",
			""),
		     0);
	snprintf(out, sizeof(out), "%s/consumed", dir);
	cr_assert_eq(sh("kcat -C -b \"$BS\" -t measurements -e -q "
			"-f '%%k=%%s\\n' | sort > '%s'",
			out),
		     0);
	cr_assert_eq(count_lines(out), 20);
	cr_assert_eq(sh("grep -qx k17=v17 '%s'", out), 0);

	/* the same messages through a consumer group */
	snprintf(out, sizeof(out), "%s/group", dir);
	cr_assert_eq(sh("timeout 60 kcat -b \"$BS\" -G dc-test -q -e "
			"-X partition.assignment.strategy=cooperative-sticky "
			"-X session.timeout.ms=6000 "
			"-X auto.offset.reset=earliest "
			"-f '%%k=%%s\\n' measurements > '%s'",
			out),
		     0);
	cr_assert_eq(count_lines(out), 20);

	/* all brokers down: a producer gives up; up again: it works */
	cr_assert_str_eq(command("down -1"), "ok");
	cr_assert_neq(sh("echo lost | kcat -P -b \"$BS\" -t measurements "
			 "-X message.timeout.ms=1500 -m 2 %s 2>/dev/null",
			 ""),
		      0);
	cr_assert_str_eq(command("up -1"), "ok");
	cr_assert_eq(
	    sh("echo back | kcat -P -b \"$BS\" -t measurements %s", ""), 0);

	/* SIGTERM: STOPPING=1 and exit 0 */
	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_assert(notify_wait("STOPPING=1", 10000));
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	pid = 0;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(mockbroker, help_and_usage_errors)
{
	const char *exe = mockbroker_exe();
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "'%s' --help | grep -q '^Usage: driftcast-mockbroker'", exe);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "'%s' --brokers 0 2>/dev/null", exe);
	int st = system(cmd);
	cr_assert_eq(WEXITSTATUS(st), 2);
	snprintf(cmd, sizeof(cmd), "'%s' --topic x:0 2>/dev/null", exe);
	st = system(cmd);
	cr_assert_eq(WEXITSTATUS(st), 2);
	snprintf(cmd, sizeof(cmd), "'%s' extra 2>/dev/null", exe);
	st = system(cmd);
	cr_assert_eq(WEXITSTATUS(st), 2);
}
