/*
 * `driftcast produce`: replay a CSV (or .csv.gz) into Kafka as the
 * readings the daemon consumes -- to backfill history or to try driftcast
 * on one's own data.
 *
 * The file is read by the offline trainer's loader (fc_dataset_load: first
 * column the time, through fc_time_parse; one series per numeric column).
 * Each cell becomes one message keyed by its series id, PREFIX/COLUMN, so a
 * series stays on one partition and in order; its payload is in the input
 * format of docs/INPUT.md (dc_produce_message).  Before anything is sent,
 * the first reading of every series goes through the daemon's own parser,
 * so a name the daemon would dead-letter is refused here instead.
 */
#include "daemon/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fmt.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/parse.h"
#include "forecast/forecast.h"

#define PRODUCE_KEY_MAX (DC_SERIES_MAX + 1)
#define PRODUCE_MSG_MAX 2048

static void produce_usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: driftcast produce [options] FILE\n\n"
	    "Replay FILE (.csv or .csv.gz: first column the time, one series "
	    "per numeric\n"
	    "column) into Kafka as the readings `driftcast run` consumes "
	    "(docs/INPUT.md):\n"
	    "one message per cell, row by row, keyed by its series id "
	    "PREFIX/COLUMN.\n"
	    "Brokers, topic and format default to the settings of --config\n"
	    "(kafka.brokers, kafka.input_topic, kafka.input_format), so the "
	    "daemon reading\n"
	    "that file gets the data.\n\n"
	    "Options:\n"
	    "  --brokers LIST        bootstrap brokers (kafka.brokers)\n"
	    "  --topic NAME          topic (kafka.input_topic)\n"
	    "  --format json|influx  payload format (kafka.input_format)\n"
	    "  --series-prefix P     series ids are P/COLUMN (default: the "
	    "file's base name)\n"
	    "  --columns LIST        only these columns (comma list; default "
	    "all numeric)\n"
	    "  --rate N[/s]          at most N messages per second (0: as fast "
	    "as possible)\n"
	    "  --config FILE         settings file (kafka.*, [librdkafka] "
	    "sections)\n"
	    "  -s, --set KEY=VALUE   override one setting, e.g. "
	    "librdkafka.client.id=backfill\n"
	    "  -q, --quiet           no progress output\n"
	    "  -h, --help            show this help\n\n"
	    "JSON payloads carry RFC 3339 times; line protocol carries epoch "
	    "times in\n"
	    "kafka.ts_unit (nanoseconds with auto).  Ctrl-C stops producing, "
	    "waits for what\n"
	    "was sent to be delivered and says how much that was.  A message "
	    "not delivered\n"
	    "within 30 s (librdkafka's message.timeout.ms) counts as "
	    "failed.\n\n"
	    "Exit status: 0 everything delivered, 1 runtime failure "
	    "(undelivered messages,\n"
	    "unreadable file, interrupted), 2 usage or configuration error.\n");
}

/* Split ts (epoch seconds) into whole seconds and nanoseconds. */
static int split_time(double ts, int64_t *ret_s, int64_t *ret_ns)
{
	if (!(ts >= 0) || ts >= (double)(DC_TS_MAX_NS / 1000000000))
		return -ERANGE;
	int64_t s = (int64_t)floor(ts);
	int64_t ns = llround((ts - (double)s) * 1e9);
	if (ns >= 1000000000) {
		s++;
		ns -= 1000000000;
	}
	*ret_s = s;
	*ret_ns = ns;
	return 0;
}

/* s with line protocol's tag-value / field-key escapes (',' '=' ' '). */
static size_t lp_escape(char *dst, const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		if (*s == ',' || *s == '=' || *s == ' ')
			dst[n++] = '\\';
		dst[n++] = *s;
	}
	return n;
}

int dc_produce_message(int format, int ts_unit, const char *prefix,
		       const char *column, double ts, float value, char *buf,
		       size_t size, size_t *ret_len)
{
	/* escapes at most sextuple a name; both are at most a series key */
	char esc_p[6 * PRODUCE_KEY_MAX + 1], esc_c[6 * PRODUCE_KEY_MAX + 1];
	char num[32];
	int64_t s, ns;
	int n;
	if (strlen(prefix) + 1 + strlen(column) > DC_SERIES_MAX)
		return -ENAMETOOLONG;
	if (split_time(ts, &s, &ns) < 0 || !isfinite(value))
		return -ERANGE;
	num[dc_format_float(num, value)] = '\0';
	if (format == CFG_INPUT_INFLUX) {
		esc_p[lp_escape(esc_p, prefix)] = '\0';
		esc_c[lp_escape(esc_c, column)] = '\0';
		int64_t t;
		switch (ts_unit) {
		case CFG_TS_S:
			t = s + (ns >= 500000000);
			break;
		case CFG_TS_MS:
			t = s * 1000 + (ns + 500000) / 1000000;
			break;
		case CFG_TS_US:
			t = s * 1000000 + (ns + 500) / 1000;
			break;
		default: /* ns, and auto reads Telegraf's ns */
			t = s * 1000000000 + ns;
		}
		n = snprintf(buf, size, "driftcast,series=%s %s=%s %" PRId64,
			     esc_p, esc_c, num, t);
	} else {
		struct tm tm;
		time_t tt = (time_t)s;
		char frac[32] = "";
		if (!gmtime_r(&tt, &tm))
			return -ERANGE;
		if (ns)
			snprintf(frac, sizeof(frac), ".%09" PRId64, ns);
		esc_p[dc_json_escape(esc_p, prefix)] = '\0';
		esc_c[dc_json_escape(esc_c, column)] = '\0';
		n = snprintf(
		    buf, size,
		    "{\"series\":\"%s/%s\",\"ts\":\"%04d-%02d-%02dT%02d:"
		    "%02d:%02d%sZ\",\"value\":%s}",
		    esc_p, esc_c, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		    tm.tm_hour, tm.tm_min, tm.tm_sec, frac, num);
	}
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	*ret_len = (size_t)n;
	return 0;
}

/* ---- the run ------------------------------------------------------------ */

struct produce {
	const char *file, *topic, *prefix;
	const struct fc_dataset *ds;
	int format, ts_unit;
	double rate; /* messages per second, 0: unlimited */
	bool tty, quiet;
	uint64_t total, sent, delivered, failed;
	char first_error[256];
	uint64_t started_us, last_print_us, last_error_us;
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested++;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	(void)rk;
	struct produce *p = opaque;
	if (!m->err) {
		p->delivered++;
		return;
	}
	if (p->failed++ == 0)
		snprintf(p->first_error, sizeof(p->first_error), "%s",
			 rd_kafka_err2str(m->err));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct produce *p = opaque;
	/* transient errors are retried by librdkafka; say so once a while */
	uint64_t now = dc_now_monotonic_usec();
	if (!p->quiet &&
	    (now - p->last_error_us > 5000000u || !p->last_error_us)) {
		p->last_error_us = now;
		fprintf(stderr, "%sdriftcast produce: kafka: %s (%s)\n",
			p->tty ? "\r\033[K" : "",
			rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	}
}

/* librdkafka's log lines repeat what on_error says; keep only its worst */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	(void)rk;
	if (level <= 2)
		fprintf(stderr, "driftcast produce: kafka %s: %s\n", fac, buf);
}

static void progress(struct produce *p, bool last)
{
	uint64_t now = dc_now_monotonic_usec();
	if (p->quiet ||
	    (!last && now - p->last_print_us < (p->tty ? 200000u : 5000000u)))
		return;
	p->last_print_us = now;
	double secs = (double)(now - p->started_us) / 1e6;
	double rate = secs > 0 ? (double)p->sent / secs : 0;
	double eta = rate > 0 ? (double)(p->total - p->sent) / rate : 0;
	if (!p->tty) {
		if (!last)
			fprintf(stderr,
				"driftcast produce: %" PRIu64 "/%" PRIu64
				" messages, %.0f msg/s\n",
				p->sent, p->total, rate);
		return;
	}
	enum { W = 30 };
	char bar[W + 1];
	int done = p->total
		       ? (int)((double)W * (double)p->sent / (double)p->total)
		       : W;
	for (int i = 0; i < W; i++)
		bar[i] = i < done ? '#' : '.';
	bar[W] = '\0';
	fprintf(stderr,
		"\r\033[K[%s] %" PRIu64 "/%" PRIu64 " messages  %.0f msg/s  "
		"ETA %.0f s",
		bar, p->sent, p->total, rate, eta);
	if (last)
		fprintf(stderr, "\r\033[K");
}

/* Refuse, before sending anything, a reading the daemon would dead-letter:
 * the first row of every series through dc_parse. */
static int self_check(const struct produce *p)
{
	struct dc_parse_opts po = {.format = p->format, .ts_unit = p->ts_unit};
	struct dc_parser *parser = dc_parser_new(&po);
	char key[PRODUCE_KEY_MAX + 1], msg[PRODUCE_MSG_MAX];
	int rc = 0;
	if (!parser)
		return -ENOMEM;
	for (int c = 0; c < p->ds->n_cols && rc == 0; c++) {
		const char *col = p->ds->col_names[c];
		struct dc_obs obs;
		struct dc_parse_error pe = {0};
		size_t len, n = 0;
		int r = dc_produce_message(
		    p->format, p->ts_unit, p->prefix, col, p->ds->timestamps[0],
		    p->ds->raw[c], msg, sizeof(msg), &len);
		if (r == -ENAMETOOLONG) {
			fprintf(stderr,
				"driftcast produce: series id '%s/%s' is "
				"longer than %d bytes\n",
				p->prefix, col, DC_SERIES_MAX);
		} else if (r == -ERANGE) {
			fprintf(stderr,
				"driftcast produce: %s: time %.0f is outside "
				"1970..2200\n",
				p->file, p->ds->timestamps[0]);
		} else if (r == 0) {
			snprintf(key, sizeof(key), "%s/%s", p->prefix, col);
			r = dc_parse(parser, msg, len, key, strlen(key), &obs,
				     1, &n, &pe);
			if (r == 0 && (n != 1 || strcmp(obs.series, key)))
				r = -EINVAL; /* cannot happen: a formatter bug
					      */
			if (r < 0)
				fprintf(stderr,
					"driftcast produce: column '%s': the "
					"daemon would refuse its readings: "
					"%s\n",
					col, pe.text[0] ? pe.text : "?");
		}
		rc = r;
	}
	dc_parser_free(parser);
	return rc;
}

/* Wait for what is in flight; a second Ctrl-C stops waiting. */
static void drain(rd_kafka_t *rk, int stops_seen)
{
	while (rd_kafka_outq_len(rk) > 0 && stop_requested <= stops_seen)
		rd_kafka_flush(rk, 100);
}

static int produce_all(struct produce *p, rd_kafka_t *rk)
{
	const struct fc_dataset *ds = p->ds;
	char key[PRODUCE_KEY_MAX + 1], msg[PRODUCE_MSG_MAX];
	p->started_us = p->last_print_us = dc_now_monotonic_usec();
	for (int row = 0; row < ds->n_rows && !stop_requested; row++) {
		for (int c = 0; c < ds->n_cols && !stop_requested; c++) {
			size_t len;
			int r = dc_produce_message(
			    p->format, p->ts_unit, p->prefix, ds->col_names[c],
			    ds->timestamps[row],
			    ds->raw[(size_t)row * (size_t)ds->n_cols +
				    (size_t)c],
			    msg, sizeof(msg), &len);
			if (r < 0) {
				fprintf(stderr,
					"%sdriftcast produce: %s: data row "
					"%d: time %.0f is outside 1970..2200\n",
					p->tty && !p->quiet ? "\r\033[K" : "",
					p->file, row + 1, ds->timestamps[row]);
				return -ERANGE;
			}
			int klen = snprintf(key, sizeof(key), "%s/%s",
					    p->prefix, ds->col_names[c]);
			/* the rate is kept on average from the start, so a
			 * slow moment is made up for, within 1 s */
			if (p->rate > 0) {
				uint64_t due =
				    p->started_us +
				    (uint64_t)((double)p->sent * 1e6 / p->rate);
				uint64_t now;
				while (!stop_requested &&
				       (now = dc_now_monotonic_usec()) < due) {
					uint64_t ms = (due - now + 999) / 1000;
					rd_kafka_poll(rk,
						      ms > 100 ? 100 : (int)ms);
					progress(p, false);
				}
				if (stop_requested)
					break;
			}
			rd_kafka_resp_err_t e;
			while (
			    (e = rd_kafka_producev(
				 rk, RD_KAFKA_V_TOPIC(p->topic),
				 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				 RD_KAFKA_V_KEY(key, (size_t)klen),
				 RD_KAFKA_V_VALUE(msg, len), RD_KAFKA_V_END)) ==
				RD_KAFKA_RESP_ERR__QUEUE_FULL &&
			    !stop_requested)
				rd_kafka_poll(rk, 50);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break; /* stopped while the queue was full */
			if (e) {
				fprintf(stderr, "driftcast produce: %s\n",
					rd_kafka_err2str(e));
				return -EIO;
			}
			p->sent++;
			rd_kafka_poll(rk, 0);
			progress(p, false);
		}
	}
	return 0;
}

static int parse_rate(const char *s, double *ret)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end != s && !strcmp(end, "/s"))
		end += 2;
	if (errno || end == s || *end || !(v >= 0) || v > 1e9)
		return -EINVAL;
	*ret = v;
	return 0;
}

static rd_kafka_t *producer_new(struct produce *p, const struct cfg *cfg,
				const char *brokers)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* idempotent: a retry neither duplicates nor reorders a series;
	 * a bounded delivery timeout, so an unreachable broker ends the run
	 * with an error instead of librdkafka's 5 minutes */
	const char *own[][2] = {
	    {"bootstrap.servers", brokers},
	    {"enable.idempotence", "true"},
	    {"linger.ms", "20"},
	    {"message.timeout.ms", "30000"},
	};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		if (rd_kafka_conf_set(conf, own[i][0], own[i][1], err,
				      sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "driftcast produce: %s=%s: %s\n",
				own[i][0], own[i][1], err);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	if (dc_kafka_conf_passthrough(conf, cfg, CFG_KSCOPE_PRODUCER, err,
				      sizeof(err)) < 0) {
		fprintf(stderr, "driftcast produce: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "driftcast produce: %s\n", err);
	}
	return rk;
}

int dc_cmd_produce(int argc, char **argv)
{
	enum {
		O_BROKERS = 256,
		O_TOPIC,
		O_FORMAT,
		O_PREFIX,
		O_COLUMNS,
		O_RATE,
		O_CONFIG,
	};
	static const struct option longopts[] = {
	    {"brokers", required_argument, NULL, O_BROKERS},
	    {"topic", required_argument, NULL, O_TOPIC},
	    {"format", required_argument, NULL, O_FORMAT},
	    {"series-prefix", required_argument, NULL, O_PREFIX},
	    {"columns", required_argument, NULL, O_COLUMNS},
	    {"rate", required_argument, NULL, O_RATE},
	    {"config", required_argument, NULL, O_CONFIG},
	    {"set", required_argument, NULL, 's'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dc_cfg_args ca = {0};
	struct produce p = {0};
	const char *brokers = NULL, *format = NULL, *columns = NULL;
	int c, code;
	while ((c = dc_getopt(argc, argv, "s:qh", longopts, produce_usage,
			      &code)) > 0) {
		switch (c) {
		case O_BROKERS:
			brokers = optarg;
			break;
		case O_TOPIC:
			p.topic = optarg;
			break;
		case O_FORMAT:
			format = optarg;
			break;
		case O_PREFIX:
			p.prefix = optarg;
			break;
		case O_COLUMNS:
			columns = optarg;
			break;
		case O_RATE:
			if (parse_rate(optarg, &p.rate) < 0) {
				fprintf(stderr,
					"driftcast produce: invalid --rate "
					"'%s' (messages per second, e.g. 500 "
					"or 500/s; 0: unlimited)\n",
					optarg);
				return DC_EXIT_USAGE;
			}
			break;
		case O_CONFIG:
			ca.file = optarg;
			break;
		case 's':
			if (dc_cfg_args_add_set(&ca, optarg) < 0)
				return DC_EXIT_USAGE;
			break;
		case 'q':
			p.quiet = true;
			break;
		}
	}
	if (c < 0 ||
	    (code = dc_check_operands("produce", argc, argv, 1)) != DC_EXIT_OK)
		return code;
	if (optind >= argc) {
		fprintf(stderr,
			"driftcast produce: which file? (see --help)\n");
		return DC_EXIT_USAGE;
	}
	p.file = argv[optind];
	if (p.prefix && (!*p.prefix || strchr(p.prefix, '/'))) {
		fprintf(stderr,
			"driftcast produce: --series-prefix '%s' must be "
			"non-empty and without '/' (the channel separator)\n",
			p.prefix);
		return DC_EXIT_USAGE;
	}
	if (p.topic && !*p.topic) {
		fprintf(stderr, "driftcast produce: --topic is empty\n");
		return DC_EXIT_USAGE;
	}
	struct cfg cfg;
	int r = dc_cfg_args_load(&ca, &cfg, NULL);
	if (r != DC_EXIT_OK)
		return r;
	p.format = cfg.kafka.input_format;
	p.ts_unit = cfg.kafka.ts_unit;
	if (format && !strcmp(format, "json")) {
		p.format = CFG_INPUT_JSON;
	} else if (format && !strcmp(format, "influx")) {
		p.format = CFG_INPUT_INFLUX;
	} else if (format) {
		fprintf(stderr,
			"driftcast produce: unknown --format '%s' (json or "
			"influx)\n",
			format);
		return DC_EXIT_USAGE;
	}
	if (!brokers)
		brokers = cfg.kafka.brokers;
	if (!p.topic)
		p.topic = cfg.kafka.input_topic;

	char err[1024];
	struct fc_dataset *ds = NULL;
	r = fc_dataset_load(p.file, columns, &ds, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "driftcast produce: %s\n", err);
		return r == -ENOENT || r == -EACCES ? DC_EXIT_FAILURE
						    : DC_EXIT_USAGE;
	}
	dc_note_skipped("produce", p.file, ds);
	/* the loader numbers the rows when the file has no time column */
	bool timed = false;
	for (int i = 0; i < ds->n_rows && !timed; i++)
		timed = ds->timestamps[i] != (double)i;
	if (!timed) {
		fprintf(stderr,
			"driftcast produce: %s: no time column (the first "
			"column must be a date or epoch seconds)\n",
			p.file);
		fc_dataset_free(ds);
		return DC_EXIT_USAGE;
	}
	p.ds = ds;
	if (!p.prefix)
		p.prefix = ds->name;
	p.total = (uint64_t)ds->n_rows * (uint64_t)ds->n_cols;
	p.tty = isatty(STDERR_FILENO);
	code = DC_EXIT_USAGE;
	if (self_check(&p) < 0)
		goto out;

	code = DC_EXIT_FAILURE;
	rd_kafka_t *rk = producer_new(&p, &cfg, brokers);
	if (!rk)
		goto out;
	struct sigaction sa = {0}, old_int, old_term;
	sa.sa_handler = on_stop;
	stop_requested = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	r = produce_all(&p, rk);
	int stops = stop_requested;
	progress(&p, true);
	if (stops && !p.quiet)
		fprintf(stderr,
			"driftcast produce: interrupted; waiting for %d "
			"messages in flight (Ctrl-C again to stop waiting)\n",
			rd_kafka_outq_len(rk));
	drain(rk, stops);
	double secs = (double)(dc_now_monotonic_usec() - p.started_us) / 1e6;
	long left = rd_kafka_outq_len(rk);
	rd_kafka_destroy(rk);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);

	printf("%" PRIu64 " messages (%d series x %" PRIu64
	       " rows) produced to %s in %.1f s, %.0f msg/s; %" PRIu64
	       " delivered\n",
	       p.sent, ds->n_cols,
	       ds->n_cols ? p.sent / (uint64_t)ds->n_cols : 0, p.topic, secs,
	       secs > 0 ? (double)p.sent / secs : 0.0, p.delivered);
	if (p.failed)
		fprintf(stderr,
			"driftcast produce: %" PRIu64 " messages not "
			"delivered (%s)\n",
			p.failed, p.first_error);
	if (left > 0)
		fprintf(stderr,
			"driftcast produce: %ld messages still in flight "
			"when stopped\n",
			left);
	if (stops)
		fprintf(stderr,
			"driftcast produce: interrupted after %" PRIu64
			" of %" PRIu64 " messages\n",
			p.sent, p.total);
	if (r == 0 && !p.failed && left <= 0 && !stops &&
	    p.delivered == p.total)
		code = DC_EXIT_OK;
out:
	fc_dataset_free(ds);
	return code;
}
