/*
 * Counting allocations in a test binary: malloc, calloc and realloc are
 * interposed and counted while `counting` is set.  Include it in one
 * source file of a test executable (it defines those functions).  Under
 * ASan the allocator belongs to the sanitizer: INTERPOSED is 0 there and
 * the counting tests skip themselves (the plain build runs them).
 */
#ifndef DRIFTCAST_TESTS_ALLOC_COUNT_H
#define DRIFTCAST_TESTS_ALLOC_COUNT_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define INTERPOSED 0
#else
#define INTERPOSED 1

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);

static volatile int counting;
static volatile long allocations;

void *malloc(size_t n)
{
	if (counting)
		allocations++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (counting)
		allocations++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	if (counting)
		allocations++;
	return __libc_realloc(p, n);
}
#endif

#endif
