/*
 * ttt: the per-series online loop -- ring buffers, masking, the adaptation
 * schedule, drift detection, the guard, shadow scoring and rollback, and the
 * causal evaluator.  No I/O, no logging: results come back as status codes
 * and as events through a callback.
 *
 * (First cut of the event types, so storage/ and daemon/ can be written
 * against them; the engine API follows in this header.)
 */
#ifndef DRIFTCAST_TTT_H
#define DRIFTCAST_TTT_H

#include <stddef.h>
#include <stdint.h>

enum ttt_event_type {
	TTT_EV_FORECAST = 0,   /* a forecast was issued */
	TTT_EV_ADAPT_ACCEPTED, /* a candidate update passed the guard */
	TTT_EV_ADAPT_REJECTED, /* a candidate update failed the guard */
	TTT_EV_DRIFT,	       /* the drift detector fired */
	TTT_EV_ROLLBACK,       /* back to the last good version */
	TTT_EV_RESET,	       /* soft or hard reset toward the anchor */
	TTT_EV_GAP_FILLED,     /* short gap filled by interpolation */
	TTT_EV_REJECTED_VALUE, /* duplicate, late or non-finite value */
};

enum ttt_trigger {
	TTT_TRIGGER_NONE = 0,
	TTT_TRIGGER_SCHEDULE, /* every ttt.every observations */
	TTT_TRIGGER_DRIFT,    /* early, on drift */
	TTT_TRIGGER_SHADOW,   /* realised error worse than the frozen shadow */
	TTT_TRIGGER_MANUAL,   /* operator (rollback command) */
};

/*
 * One event.  Pointers are valid only during the callback.  Versions are
 * per-series counters assigned by the engine (0 = the initial adapter);
 * storage/ maps them to rows.  Fields that do not apply to a type are 0.
 */
struct ttt_event {
	enum ttt_event_type type;
	enum ttt_trigger trigger;
	const char *series; /* series key */
	int64_t ts;	    /* series timestamp of the observation */
	uint64_t version_from, version_to;
	int steps;			   /* optimizer steps taken */
	float loss_before, loss_after;	   /* objective on the step batch */
	float guard_before, guard_after;   /* forecast MSE, held-out windows */
	float update_norm;		   /* L2 norm of the accepted delta */
	float adapted_error, shadow_error; /* realised, over the window */
	const char *reason;		   /* static human-readable text */
	const float *forecast;		   /* TTT_EV_FORECAST: [horizon] */
	int horizon;
	const float *adapter; /* new version's adapter block, or NULL */
	size_t adapter_len;   /* floats */
};

typedef void (*ttt_event_fn)(void *user, const struct ttt_event *ev);

#endif
