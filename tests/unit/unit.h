/* unit.h: a tiny test harness. Each check prints "ok - NAME" or
 * "not ok - NAME" (with the failing expression), and unit_done() makes the
 * exit status non-zero when anything failed. */
#ifndef HUSK_UNIT_H
#define HUSK_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failed;

#define CHECK(name, expr) do { \
	if (expr) { printf("ok - %s\n", name); } \
	else { printf("not ok - %s\n# %s:%d: %s\n", name, __FILE__, __LINE__, #expr); unit_failed++; } \
} while (0)

#define CHECK_STR(name, got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	if (g_ && w_ && !strcmp(g_, w_)) { printf("ok - %s\n", name); } \
	else { printf("not ok - %s\n# %s:%d: got '%s', want '%s'\n", name, __FILE__, __LINE__, \
		g_ ? g_ : "(null)", w_ ? w_ : "(null)"); unit_failed++; } \
} while (0)

static inline int unit_done(void)
{
	fflush(stdout);
	return unit_failed ? 1 : 0;
}

#endif
