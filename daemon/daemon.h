/*
 * daemon: process concerns -- the command line, logging, Kafka, signals,
 * systemd notification, metrics and the demo.  Only this folder logs and
 * decides exit codes.
 *
 * The folder's public header, the one other folders (tests, benchmarks,
 * fuzz targets) include: it gathers the subsystem headers below, each of
 * which owns one concern and is what files inside daemon/ include.
 */
#ifndef DRIFTCAST_DAEMON_H
#define DRIFTCAST_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/changelog.h"
#include "daemon/cli.h"
#include "daemon/control.h"
#include "daemon/fmt.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/parse.h"
#include "daemon/record.h"
#include "daemon/run.h"
#include "daemon/status.h"
#include "daemon/status_page.h"
#include "daemon/ttt_cfg.h"

#endif
