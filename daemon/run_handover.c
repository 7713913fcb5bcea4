/*
 * A partition's series changing hands between the hosts of a consumer
 * group (docs/OPERATIONS.md, "Running several hosts"): where an assigned
 * partition starts and whose state its series continue from.
 */
#include "daemon/run_private.h"

#include <inttypes.h>

#include "daemon/log.h"

void run_hook_on_assign(void *user, struct dc_kafka_start *st, int n)
{
	struct run *r = user;
	for (int i = 0; i < n; i++) {
		int32_t p = st[i].partition;
		if (p < 0 || p >= MAX_PARTITIONS)
			continue;
		if (st[i].from == DC_START_COMMITTED && st[i].applied_next >= 0)
			log_notice("%s[%d]: this host's state (offset %" PRId64
				   ") is older than the group's committed "
				   "offset %" PRId64
				   ": another host served the partition since; "
				   "it is not re-applied",
				   st[i].topic, p, st[i].applied_next,
				   st[i].committed);
		/* messages below the start were applied by some host */
		r->applied_next[p] = r->durable_next[p] = st[i].start;
	}
}
