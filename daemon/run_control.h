/*
 * daemon/run_control.h: the calls of run_control.c (operator control
 * records on the input topic, daemon/control.h) and what they use of
 * run_message.c and run_journal.c.  Beside run_private.h, which is full.
 */
#ifndef DRIFTCAST_DAEMON_RUN_CONTROL_H
#define DRIFTCAST_DAEMON_RUN_CONTROL_H

#include <stdbool.h>

#include "daemon/run_private.h"

/* Whether m carries the DC_CONTROL_HEADER header (any value). */
bool run_is_control(const rd_kafka_message_t *m);
/* Apply the control record m of partition m->partition in order with the
 * series' data: a rollback into the open batch (version, audit row with
 * reason and operator), the engine, and the state topic; refused into the
 * dead-letter topic with its reason (bad_control, unknown_series,
 * unknown_version). */
void run_handle_control(struct run *r, const rd_kafka_message_t *m);

/* run_message.c: m to the dead-letter topic with reason (class
 * reason_class of enum dc_reason, -1: none), counted and logged. */
void run_dead_letter(struct run *r, const rd_kafka_message_t *m,
		     const char *reason, int reason_class);
/* run_journal.c: an operator rollback into the open batch, as a version
 * with reason 'manual' and a 'manual' audit row (ev: series, ts,
 * version_from, version_to, version_restored, reason, adapter); kept
 * like the engine's events until the batch commits. */
void run_write_manual(struct run *r, const struct ttt_event *ev);

#endif
