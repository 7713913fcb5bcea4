/*
 * The daemon loop's calls for the audit topic (kafka.audit_topic,
 * daemon/run_audit.c), kept out of run_private.h so that each header
 * stays within 300 lines.  Used from the loop's thread only.
 */
#ifndef DRIFTCAST_DAEMON_RUN_AUDIT_H
#define DRIFTCAST_DAEMON_RUN_AUDIT_H

#include "daemon/run_private.h"

/* r->audit from the configuration and the stored cursor (NULL when the
 * topic is off); -errno with the reason logged. */
int run_audit_open(struct run *r);
void run_audit_free(struct run_audit *a);
/* After a batch's SQLite commit: the rows committed since the last call
 * to the producer. */
void run_audit_publish(struct run *r);
/* Before a batch's commit: the acknowledged cursor into the batch. */
void run_audit_persist(struct run *r);
/* An audit message's delivery report. */
void run_audit_delivered(struct run *r, bool failed);
/* Between batches, every kafka.commit_interval_ms (or now: force): the
 * cursor stored and rows committed outside a batch flush published. */
void run_audit_tick(struct run *r, uint64_t now, bool force);

#endif
