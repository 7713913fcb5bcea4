/*
 * 64-bit FNV-1a, the one hash of every layer: series keys (hash tables,
 * the forecast sample, owners), model files and adapter blocks (their
 * identity in the database and the state topic).  Each byte is xored in
 * and multiplied by the FNV prime, from FC_FNV1A_INIT -- which is not the
 * published offset basis (14695981039346656037) but that number without
 * its last digit, as the first copy of this loop had it.  Any basis hashes
 * as well; values are stored (models.checksum, state records), so it
 * stays.  Header-only, so storage/ needs no forecast library.
 */
#ifndef DRIFTCAST_FORECAST_FNV1A_H
#define DRIFTCAST_FORECAST_FNV1A_H

#include <stddef.h>
#include <stdint.h>

#define FC_FNV1A_INIT 1469598103934665603ull

/* h continued over p[0..n) (start with FC_FNV1A_INIT). */
static inline uint64_t fc_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* h continued over the string s, without its NUL. */
static inline uint64_t fc_fnv1a_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

#endif
