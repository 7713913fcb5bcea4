/*
 * driftcast-mockbroker: librdkafka's in-memory mock cluster as a process,
 * so that tests, the demo's external clients and kcat talk to a real Kafka
 * protocol peer over TCP.
 *
 * The cluster hangs off a throwaway producer handle (as librdkafka's own
 * tests do).  Topics are created with explicit partition counts, since the
 * mock has no Admin API.  The bootstrap string is printed and written to a
 * file, because the mock picks random loopback ports (no fixed port in
 * 2.0.2).  Fault injection is driven by text commands on stdin and/or a
 * FIFO, one per line, each answered on stdout with "ok" or "error: ...".
 * The mock is for tests and demos only: it keeps everything in memory,
 * truncates partitions at 5 MiB, and crashes when group members use
 * different assignors (see docs/OPERATIONS.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <systemd/sd-daemon.h>

#include "daemon/cli.h"
#include "daemon/log.h"

#define MAX_TOPICS 32
#define MAX_ERRS   64

/* Kafka protocol ApiKeys (not public in librdkafka's headers). */
static const struct {
	const char *name;
	int16_t key;
} apikeys[] = {
    {"Produce", 0},	     {"Fetch", 1},
    {"ListOffsets", 2},	     {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},	     {"LeaveGroup", 13},
    {"SyncGroup", 14},	     {"ApiVersion", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

static const char usage[] =
    "Usage: driftcast-mockbroker [options]\n"
    "\n"
    "Run librdkafka's mock Kafka cluster on 127.0.0.1 (random ports) until\n"
    "SIGTERM or SIGINT.  For tests and demos only: in memory, no auth.\n"
    "\n"
    "Options:\n"
    "  -b, --brokers N            number of brokers (default 1, max 16)\n"
    "  -t, --topic NAME[:PARTS]   create a topic (default 4 partitions);\n"
    "                             repeatable; unknown topics are also\n"
    "                             auto-created with 4 partitions\n"
    "  -f, --bootstraps-file PATH write the bootstrap servers there\n"
    "                             (atomically, with a trailing newline)\n"
    "  -c, --control PATH         also read commands from this FIFO\n"
    "                             (created if missing)\n"
    "  -h, --help                 this text\n"
    "\n"
    "Prints the bootstrap servers as the first line of stdout, then sends\n"
    "READY=1 when $NOTIFY_SOCKET is set.  Commands, one per line on stdin or\n"
    "the FIFO, each answered with \"ok\" or \"error: ...\" on stdout:\n"
    "  error APIKEY COUNT ERR [ERR...]  the next COUNT requests of APIKEY\n"
    "                                   (name or number, e.g. Produce, 0)\n"
    "                                   fail with ERR (a librdkafka name\n"
    "                                   such as NOT_LEADER_FOR_PARTITION or\n"
    "                                   _TRANSPORT, or a number); the last\n"
    "                                   ERR repeats to fill COUNT\n"
    "  clear APIKEY                     drop pending injected errors\n"
    "  down BROKER | up BROKER          refuse / accept connections\n"
    "                                   (BROKER is 1..N, or -1 for all)\n"
    "  rtt BROKER MS                    add MS of latency to responses\n"
    "  leader TOPIC PARTITION BROKER    move a partition's leader\n"
    "  topic NAME PARTITIONS            create a topic\n"
    "  bootstraps                       print the bootstrap servers (the\n"
    "                                   answer instead of \"ok\")\n"
    "Blank lines and lines starting with # are ignored.\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime failure, 2 on a\n"
    "usage error.\n";

static int parse_apikey(const char *s, int16_t *ret)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end && v >= 0 && v < 100) {
		*ret = (int16_t)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(apikeys) / sizeof(apikeys[0]); i++)
		if (!strcasecmp(s, apikeys[i].name)) {
			*ret = apikeys[i].key;
			return 0;
		}
	return -EINVAL;
}

static int parse_err(const char *s, rd_kafka_resp_err_t *ret)
{
	const struct rd_kafka_err_desc *d;
	size_t n;
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end) {
		*ret = (rd_kafka_resp_err_t)v;
		return 0;
	}
	if (!strncmp(s, "RD_KAFKA_RESP_ERR_", 18))
		s += 18;
	rd_kafka_get_err_descs(&d, &n);
	for (size_t i = 0; i < n; i++)
		if (d[i].name && !strcasecmp(d[i].name, s)) {
			*ret = d[i].code;
			return 0;
		}
	return -EINVAL;
}

static int parse_int(const char *s, long lo, long hi, long *ret)
{
	char *end;
	if (!s)
		return -EINVAL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Run one command line; writes the answer to stdout. */
static void run_command(rd_kafka_mock_cluster_t *mc, int nbrokers, char *line)
{
	char *argv[MAX_ERRS + 8];
	int argc = 0;
	char *save = NULL;
	char msg[256] = "";
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	long a, b, c;
	int16_t api;

	for (char *t = strtok_r(line, " \t\r\n", &save);
	     t && argc < (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	     t = strtok_r(NULL, " \t\r\n", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	if (argc == 0 || argv[0][0] == '#')
		return;

	const char *cmd = argv[0];
	if (!strcmp(cmd, "error")) {
		rd_kafka_resp_err_t errs[MAX_ERRS];
		if (argc < 4 || parse_apikey(argv[1], &api) < 0 ||
		    parse_int(argv[2], 1, MAX_ERRS, &a) < 0) {
			snprintf(msg, sizeof(msg),
				 "usage: error APIKEY COUNT(1..%d) ERR...",
				 MAX_ERRS);
			goto out;
		}
		for (long i = 0; i < a; i++) {
			int k = 3 + (int)i < argc ? 3 + (int)i : argc - 1;
			if (parse_err(argv[k], &errs[i]) < 0) {
				snprintf(msg, sizeof(msg),
					 "unknown error name '%s'", argv[k]);
				goto out;
			}
		}
		rd_kafka_mock_push_request_errors_array(mc, api, (size_t)a,
							errs);
	} else if (!strcmp(cmd, "clear")) {
		if (argc != 2 || parse_apikey(argv[1], &api) < 0) {
			snprintf(msg, sizeof(msg), "usage: clear APIKEY");
			goto out;
		}
		rd_kafka_mock_clear_request_errors(mc, api);
	} else if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
		if (argc != 2 || parse_int(argv[1], -1, nbrokers, &a) < 0 ||
		    a == 0) {
			snprintf(msg, sizeof(msg),
				 "usage: %s BROKER (1..%d or -1)", cmd,
				 nbrokers);
			goto out;
		}
		e = cmd[0] == 'd'
			? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
			: rd_kafka_mock_broker_set_up(mc, (int32_t)a);
	} else if (!strcmp(cmd, "rtt")) {
		if (argc != 3 || parse_int(argv[1], -1, nbrokers, &a) < 0 ||
		    a == 0 || parse_int(argv[2], 0, 600000, &b) < 0) {
			snprintf(msg, sizeof(msg), "usage: rtt BROKER MS");
			goto out;
		}
		e = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
	} else if (!strcmp(cmd, "leader")) {
		if (argc != 4 || parse_int(argv[2], 0, 100000, &b) < 0 ||
		    parse_int(argv[3], -1, nbrokers, &c) < 0) {
			snprintf(msg, sizeof(msg),
				 "usage: leader TOPIC PARTITION BROKER");
			goto out;
		}
		e = rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t)b,
						       (int32_t)c);
	} else if (!strcmp(cmd, "topic")) {
		if (argc != 3 || parse_int(argv[2], 1, 10000, &a) < 0) {
			snprintf(msg, sizeof(msg),
				 "usage: topic NAME PARTITIONS");
			goto out;
		}
		e = rd_kafka_mock_topic_create(mc, argv[1], (int)a,
					       nbrokers < 3 ? nbrokers : 3);
	} else if (!strcmp(cmd, "bootstraps")) {
		/* the answer is the bootstraps line itself */
		printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
		fflush(stdout);
		return;
	} else {
		snprintf(msg, sizeof(msg), "unknown command '%s'", cmd);
	}
	if (e)
		snprintf(msg, sizeof(msg), "%s", rd_kafka_err2str(e));
out:
	if (msg[0]) {
		printf("error: %s\n", msg);
		log_warning("command '%s': %s", cmd, msg);
	} else {
		printf("ok\n");
		log_info("command '%s' done", cmd);
	}
	fflush(stdout);
}

/* A line buffer per command source. */
struct source {
	int fd;
	char buf[4096];
	size_t len;
};

/* Read what is available; run complete lines.  Returns 0, or -1 at EOF. */
static int source_read(struct source *s, rd_kafka_mock_cluster_t *mc,
		       int nbrokers)
{
	ssize_t r = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
	if (r < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (r == 0)
		return -1;
	s->len += (size_t)r;
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->len);
		if (!nl) {
			if (s->len == sizeof(s->buf) - 1) {
				log_warning("command line too long, dropped");
				s->len = 0;
			}
			return 0;
		}
		*nl = '\0';
		run_command(mc, nbrokers, s->buf);
		size_t used = (size_t)(nl + 1 - s->buf);
		memmove(s->buf, nl + 1, s->len - used);
		s->len -= used;
	}
}

static int write_bootstraps(const char *path, const char *bs)
{
	char tmp[CFG_PATH_MAX + 16];
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", bs);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static void rk_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	(void)rk;
	log_at(level, "rdkafka %s: %s", fac, buf);
}

struct topic_arg {
	char name[CFG_NAME_MAX];
	long partitions;
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"brokers", required_argument, NULL, 'b'},
	    {"topic", required_argument, NULL, 't'},
	    {"bootstraps-file", required_argument, NULL, 'f'},
	    {"control", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct topic_arg topics[MAX_TOPICS];
	size_t ntopics = 0;
	long nbrokers = 1;
	const char *bs_file = NULL, *control = NULL;
	int opt, rc = DC_EXIT_FAILURE;
	char errstr[512];

	log_init();
	while ((opt = getopt_long(argc, argv, "b:t:f:c:h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'b':
			if (parse_int(optarg, 1, 16, &nbrokers) < 0) {
				fprintf(stderr,
					"driftcast-mockbroker: --brokers "
					"wants 1..16, not '%s'\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			break;
		case 't': {
			char *colon = strrchr(optarg, ':');
			struct topic_arg *t = &topics[ntopics];
			size_t nlen =
			    colon ? (size_t)(colon - optarg) : strlen(optarg);
			t->partitions = 4;
			if (ntopics == MAX_TOPICS || nlen == 0 ||
			    nlen >= sizeof(t->name) ||
			    (colon && parse_int(colon + 1, 1, 10000,
						&t->partitions) < 0)) {
				fprintf(stderr,
					"driftcast-mockbroker: bad --topic "
					"'%s' (want NAME[:PARTITIONS], at "
					"most %d)\n",
					optarg, MAX_TOPICS);
				return DC_EXIT_USAGE;
			}
			memcpy(t->name, optarg, nlen);
			t->name[nlen] = '\0';
			ntopics++;
			break;
		}
		case 'f':
			bs_file = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return DC_EXIT_OK;
		default:
			fputs(usage, stderr);
			return DC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "driftcast-mockbroker: unexpected '%s'\n%s",
			argv[optind], usage);
		return DC_EXIT_USAGE;
	}

	/* Signals arrive through a signalfd polled by the main loop. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before librdkafka threads */
	sigdelset(&mask, SIGPIPE);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %m");
		return DC_EXIT_FAILURE;
	}

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, rk_log);
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		log_error("rd_kafka_new: %s", errstr);
		close(sfd);
		return DC_EXIT_FAILURE;
	}
	rd_kafka_mock_cluster_t *mc =
	    rd_kafka_mock_cluster_new(rk, (int)nbrokers);
	struct source src[2] = {{.fd = STDIN_FILENO}, {.fd = -1}};
	if (!mc) {
		log_error("rd_kafka_mock_cluster_new failed");
		goto out;
	}
	for (size_t i = 0; i < ntopics; i++) {
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
		    mc, topics[i].name, (int)topics[i].partitions,
		    nbrokers < 3 ? (int)nbrokers : 3);
		if (e) {
			log_error("creating topic %s: %s", topics[i].name,
				  rd_kafka_err2str(e));
			goto out;
		}
	}
	if (control) {
		if (mkfifo(control, 0600) < 0 && errno != EEXIST) {
			log_error("mkfifo %s: %m", control);
			goto out;
		}
		/* O_RDWR: the FIFO never reports EOF when writers go away */
		src[1].fd = open(control, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (src[1].fd < 0) {
			log_error("open %s: %m", control);
			goto out;
		}
	}
	const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
	if (bs_file) {
		int e = write_bootstraps(bs_file, bs);
		if (e < 0) {
			log_error("writing %s: %s", bs_file, strerror(-e));
			goto out;
		}
	}
	printf("%s\n", bs);
	fflush(stdout);
	log_notice("mock cluster with %ld broker(s) at %s", nbrokers, bs);
	sd_notifyf(0, "READY=1\nSTATUS=mock cluster at %s", bs);

	for (;;) {
		struct pollfd p[3] = {{.fd = sfd, .events = POLLIN},
				      {.fd = src[0].fd, .events = POLLIN},
				      {.fd = src[1].fd, .events = POLLIN}};
		if (poll(p, 3, 1000) < 0 && errno != EINTR) {
			log_error("poll: %m");
			goto out;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				log_notice("signal %u, shutting down",
					   si.ssi_signo);
				sd_notify(0, "STOPPING=1");
				rc = DC_EXIT_OK;
				goto out;
			}
		}
		for (int i = 0; i < 2; i++)
			if (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))
				if (source_read(&src[i], mc, (int)nbrokers) < 0)
					src[i].fd = -1; /* EOF: stop polling */
	}
out:
	if (src[1].fd >= 0)
		close(src[1].fd);
	if (mc)
		rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	close(sfd);
	return rc;
}
