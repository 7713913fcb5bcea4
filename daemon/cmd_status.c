/*
 * `driftcast status [--config FILE] [--set metrics.listen=HOST:PORT]
 * [--format text|json]`: ask a running daemon, over its metrics listener
 * (GET /status, daemon/status.c), what it is doing, print a summary, and
 * say in the exit status whether it is healthy.
 *
 * The HTTP client is a few lines over a socket: one GET to a listener we
 * know, HTTP/1.0 with Connection: close, so the reply ends at EOF -- a
 * library would add a dependency for nothing.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon/log.h"
#include "daemon/metrics.h"

/* Exit codes beyond cli.h's: the daemon answered but is not ready, and
 * no usable answer at all (or a stalled loop). */
#define EXIT_NOT_READY	 1
#define EXIT_UNREACHABLE 3

#define DEFAULT_CONFIG "/etc/driftcast/driftcast.conf"
#define MAX_REPLY      (4u << 20)

static void status_usage(FILE *f)
{
	fprintf(f,
		"Usage: driftcast status [--config FILE] [--set "
		"metrics.listen=HOST:PORT]\n"
		"                        [--format text|json] [--timeout "
		"SEC]\n\n"
		"Ask the running daemon what it is doing, over its metrics "
		"listener\n"
		"(GET /status on metrics.listen), and print a summary: "
		"version, uptime, model,\n"
		"owned partitions with their lag, series, messages and "
		"forecasts per second,\n"
		"adaptations accepted / rejected / rolled back in the last "
		"minute and since\n"
		"start, dead letters, storage state and the last error.\n\n"
		"Options:\n"
		"  -c, --config FILE             the daemon's settings file "
		"(default\n"
		"                                " DEFAULT_CONFIG
		" when it exists,\n"
		"                                else the defaults)\n"
		"  -s, --set section.key=value   override one setting, e.g. "
		"--set\n"
		"                                "
		"metrics.listen=127.0.0.1:9464 (repeatable)\n"
		"  -f, --format FORMAT           text (default) or json (the "
		"daemon's reply)\n"
		"  -t, --timeout SEC             give up after this long "
		"(default 5)\n"
		"  -h, --help                    show this help\n\n"
		"The same listener answers GET /healthz (200 while the main "
		"loop makes\n"
		"progress) and GET /readyz (200 when the database is open, the "
		"model loaded,\n"
		"partitions assigned and storage writable), for probes and "
		"load balancers.\n\n"
		"Exit status: 0 the daemon is healthy and ready, 1 it answers "
		"but is not\n"
		"ready (starting, stopping, no partitions assigned, storage "
		"degraded: the\n"
		"reasons are printed), 2 usage or configuration error, 3 no "
		"answer (nothing\n"
		"listens there, a timeout, a reply that is not driftcast's) or "
		"its main loop\n"
		"has made no progress for 30 s.\n");
}

/* ---- the HTTP client --------------------------------------------------- */

static int64_t deadline_left_ms(uint64_t deadline_usec)
{
	uint64_t now = dc_now_monotonic_usec();
	return now >= deadline_usec ? 0 : (int64_t)(deadline_usec - now) / 1000;
}

/* Wait for events on fd until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_usec)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t ms = deadline_left_ms(deadline_usec);
		int n = poll(&p, 1, (int)(ms > 60000 ? 60000 : ms));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0 && deadline_left_ms(deadline_usec) == 0)
			return -ETIMEDOUT;
	}
}

static int connect_one(const struct addrinfo *a, uint64_t deadline_usec)
{
	int fd =
	    socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
	int e = 0;
	socklen_t elen = sizeof(e);
	if (fd < 0)
		return -errno;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			e = -errno;
		} else if ((e = wait_fd(fd, POLLOUT, deadline_usec)) == 0 &&
			   getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) ==
			       0) {
			e = -e;
		}
	}
	if (e < 0) {
		close(fd);
		return e;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline_usec)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			int e = wait_fd(fd, POLLOUT, deadline_usec);
			if (e < 0)
				return e;
			continue;
		}
		if (w < 0 && errno != EINTR)
			return -errno;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	return 0;
}

/* GET path from host:port; the whole reply (NUL-terminated) in *ret (free
 * it).  0 or a negative errno with what happened in err. */
static int http_get(const char *host, const char *port, const char *path,
		    double timeout_s, char **ret, size_t *ret_len, char *err,
		    size_t err_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV},
			*ai = NULL;
	uint64_t deadline =
	    dc_now_monotonic_usec() + (uint64_t)(timeout_s * 1e6);
	int g = getaddrinfo(host, port, &hints, &ai);
	if (g) {
		snprintf(err, err_size, "%s", gai_strerror(g));
		return -EHOSTUNREACH;
	}
	int fd = -ENOENT;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
		fd = connect_one(a, deadline);
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, err_size, "%s", strerror(-fd));
		return fd;
	}
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.0\r\nHost: %s:%s\r\n"
			 "User-Agent: driftcast/" DRIFTCAST_VERSION "\r\n"
			 "Accept: application/json\r\n"
			 "Connection: close\r\n\r\n",
			 path, host, port);
	int e = send_all(fd, req, (size_t)n, deadline);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	while (e == 0) {
		if (cap - len < 4096) {
			char *b = len + 65536 > MAX_REPLY
				      ? NULL
				      : realloc(buf, cap + 65536);
			if (!b) {
				e = -EMSGSIZE;
				break;
			}
			buf = b;
			cap += 65536;
		}
		ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
		if (r > 0)
			len += (size_t)r;
		else if (r == 0)
			break;
		else if (errno == EAGAIN)
			e = wait_fd(fd, POLLIN, deadline);
		else if (errno != EINTR)
			e = -errno;
	}
	close(fd);
	if (e < 0) {
		snprintf(err, err_size, "%s",
			 e == -EMSGSIZE ? "reply too large" : strerror(-e));
		free(buf);
		return e;
	}
	if (!buf && !(buf = malloc(1))) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- the summary ------------------------------------------------------- */

static void duration(char *buf, size_t n, double s)
{
	long t = s > 0 ? (long)s : 0;
	if (t >= 86400)
		snprintf(buf, n, "%ldd %02ldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, n, "%ldh %02ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, n, "%ldm %02lds", t / 60, t % 60);
	else
		snprintf(buf, n, "%lds", t);
}

/* A string member, "?" when a daemon of another version lacks it. */
static const char *sval(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "?";
}

static json_int_t ival(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void counts_line(FILE *f, json_t *c)
{
	fprintf(f, "%lld accepted, %lld rejected, %lld rolled back",
		(long long)ival(c, "accepted"), (long long)ival(c, "rejected"),
		(long long)ival(c, "rolled_back"));
}

#define SHOWN_PARTITIONS 16

static void print_text(FILE *f, json_t *j)
{
	char up[64];
	const char *s;
	duration(up, sizeof(up),
		 json_number_value(json_object_get(j, "uptime_seconds")));
	fprintf(f, "driftcast %s, pid %lld, up %s (since %s)\n",
		sval(j, "version"), (long long)ival(j, "pid"), up,
		sval(j, "start_time"));

	json_t *why = json_object_get(j, "not_ready");
	if (json_is_true(json_object_get(j, "ready"))) {
		fprintf(f, "state:        ready\n");
	} else {
		fprintf(f, "state:        %s: ",
			json_is_true(json_object_get(j, "healthy"))
			    ? "NOT READY"
			    : "NOT HEALTHY");
		for (size_t i = 0; i < json_array_size(why); i++)
			fprintf(f, "%s%s", i ? "; " : "",
				json_string_value(json_array_get(why, i))
				    ?: "?");
		fputc('\n', f);
	}
	s = sval(j, "model");
	fprintf(f, "model:        %s\n", *s ? s : "-");

	json_t *parts = json_object_get(j, "partitions");
	size_t np = json_array_size(parts);
	fprintf(f, "partitions:   %zu of %s assigned, total lag %lld", np,
		sval(j, "input_topic"), (long long)ival(j, "lag"));
	for (size_t i = 0; i < np && i < SHOWN_PARTITIONS; i++) {
		json_t *p = json_array_get(parts, i);
		json_int_t lag = ival(p, "lag");
		fprintf(f, "%s[%lld] ", i ? ", " : ": ",
			(long long)ival(p, "partition"));
		if (lag < 0)
			fprintf(f, "lag ?");
		else
			fprintf(f, "lag %lld", (long long)lag);
	}
	if (np > SHOWN_PARTITIONS)
		fprintf(f, ", ... (%zu more: --format json)",
			np - SHOWN_PARTITIONS);
	fputc('\n', f);

	fprintf(f,
		"series:       %lld owned (%lld in memory); %lld of %lld "
		"scored do worse adapted than frozen\n",
		(long long)ival(j, "series"),
		(long long)ival(j, "series_in_memory"),
		(long long)ival(j, "series_worse_than_frozen"),
		(long long)ival(j, "series_scored"));
	fprintf(f,
		"throughput:   %.1f messages/s, %.1f forecasts/s (last %.0f "
		"s)%s\n",
		json_number_value(json_object_get(j, "messages_per_second")),
		json_number_value(json_object_get(j, "forecasts_per_second")),
		json_number_value(json_object_get(j, "window_seconds")),
		json_is_true(json_object_get(j, "input_paused"))
		    ? "; input paused (backpressure)"
		    : "");
	json_t *minute = json_object_get(j, "last_minute"),
	       *since = json_object_get(j, "since_start");
	fprintf(f, "adaptations:  last minute ");
	counts_line(f, minute);
	fprintf(f, "\n              since start ");
	counts_line(f, since);
	fprintf(f, "; %lld operator rollbacks, %lld drift alarms\n",
		(long long)ival(since, "operator_rollbacks"),
		(long long)ival(since, "drift_alarms"));
	fprintf(f, "dead letters: %lld last minute, %lld since start\n",
		(long long)ival(minute, "dead_letters"),
		(long long)ival(since, "dead_letters"));
	fprintf(f, "storage:      %s\n", sval(j, "storage"));
	json_t *le = json_object_get(j, "last_error");
	if (json_is_object(le))
		fprintf(f, "last error:   %s %s\n", sval(le, "time"),
			sval(le, "message"));
	else
		fprintf(f, "last error:   none\n");
}

/* ---- the command ------------------------------------------------------- */

/* Where to ask, from metrics.listen: a wildcard address is asked on the
 * loopback of its family. */
static int target(const char *listen, char *host, size_t hsize, char *port,
		  size_t psize)
{
	if (dc_listen_split(listen, host, hsize, port, psize) < 0)
		return -EINVAL;
	if (!strcmp(host, "0.0.0.0") || !*host)
		snprintf(host, hsize, "127.0.0.1");
	else if (!strcmp(host, "::"))
		snprintf(host, hsize, "::1");
	return 0;
}

/* Where the loaded value of setting name came from, as the loader
 * recorded it: FILE:LINE, --set or the defaults. */
static void origin_of(const struct cfg_sources *src, const char *name,
		      char *buf, size_t n)
{
	snprintf(buf, n, "the defaults");
	for (size_t i = 0; i < cfg_option_count(); i++) {
		if (strcmp(cfg_option_name(i), name))
			continue;
		if (src->origin[i] == CFG_ORIGIN_FILE)
			snprintf(buf, n, "%s:%d", src->file, src->line[i]);
		else if (src->origin[i] == CFG_ORIGIN_COMMAND_LINE)
			snprintf(buf, n, "--set");
		return;
	}
}

int dc_cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"set", required_argument, NULL, 's'},
	    {"format", required_argument, NULL, 'f'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dc_cfg_args a = {0};
	bool json_out = false;
	double timeout = 5.0;
	int c, code;

	while ((c = dc_getopt(argc, argv, "c:s:f:t:h", longopts, status_usage,
			      &code)) > 0) {
		int o = dc_cfg_args_option(&a, c, optarg);
		if (o < 0)
			return DC_EXIT_USAGE;
		switch (o ? 0 : c) {
		case 'f':
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				fprintf(stderr,
					"driftcast status: --format '%s': "
					"expected text or json\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			json_out = !strcmp(optarg, "json");
			break;
		case 't':
			if (dc_parse_timeout("status", optarg, &timeout) < 0)
				return DC_EXIT_USAGE;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("status", argc, argv, 0)) != DC_EXIT_OK)
		return code;
	if (!a.file && access(DEFAULT_CONFIG, R_OK) == 0)
		a.file = DEFAULT_CONFIG;

	struct cfg cfg;
	struct cfg_sources src;
	if ((code = dc_cfg_args_load(&a, &cfg, &src)) != DC_EXIT_OK)
		return code;
	const char *listen = cfg.metrics.listen;
	char from[CFG_PATH_MAX + 16];
	origin_of(&src, "metrics.listen", from, sizeof(from));
	char host[CFG_NAME_MAX], port[16];
	if (!strcmp(listen, "off")) {
		fprintf(stderr,
			"driftcast status: metrics.listen = off (from %s): the "
			"daemon serves no status; pass --config with its "
			"settings file or --set metrics.listen=HOST:PORT\n",
			from);
		return DC_EXIT_USAGE;
	}
	if (target(listen, host, sizeof(host), port, sizeof(port)) < 0 ||
	    !strcmp(port, "0")) {
		fprintf(stderr,
			"driftcast status: metrics.listen = %s (from %s) does "
			"not name one port; pass --set "
			"metrics.listen=HOST:PORT with the port the daemon "
			"logged\n",
			listen, from);
		return DC_EXIT_USAGE;
	}

	char err[256], *reply = NULL;
	size_t len = 0;
	bool v6 = strchr(host, ':') != NULL;
	if (http_get(host, port, "/status", timeout, &reply, &len, err,
		     sizeof(err)) < 0) {
		fprintf(
		    stderr,
		    "driftcast status: no answer from http://%s%s%s:%s/status "
		    "(metrics.listen from %s): %s\n",
		    v6 ? "[" : "", host, v6 ? "]" : "", port, from, err);
		return EXIT_UNREACHABLE;
	}
	int http_code = 0;
	const char *body = strstr(reply, "\r\n\r\n");
	json_error_t jerr;
	json_t *j = NULL;
	if (sscanf(reply, "HTTP/1.%*d %d", &http_code) == 1 &&
	    http_code == 200 && body)
		j = json_loads(body + 4, 0, &jerr);
	if (!json_is_object(j) ||
	    !json_is_string(json_object_get(j, "version"))) {
		fprintf(stderr,
			"driftcast status: http://%s%s%s:%s/status did not "
			"answer with a driftcast status (HTTP %d%s%s); is "
			"something else listening there?\n",
			v6 ? "[" : "", host, v6 ? "]" : "", port, http_code,
			j ? "" : ", ", j ? "" : "no JSON object");
		json_decref(j);
		free(reply);
		return EXIT_UNREACHABLE;
	}
	free(reply);

	if (json_out) {
		char *text =
		    json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				      JSON_REAL_PRECISION(6));
		printf("%s\n", text ? text : "null");
		free(text);
	} else {
		print_text(stdout, j);
	}
	code = !json_is_true(json_object_get(j, "healthy")) ? EXIT_UNREACHABLE
	       : !json_is_true(json_object_get(j, "ready")) ? EXIT_NOT_READY
							    : DC_EXIT_OK;
	json_decref(j);
	return code;
}
