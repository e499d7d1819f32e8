/* test_hugebuf.c: the SquashFS server's working buffers (lib/hugebuf.c):
 * zeroed, page-aligned, never overlapping, also when threads take them at
 * once and the huge-page region runs out; the region carries the huge-page
 * advice wherever the kernel has transparent huge pages. */
#include "husk_config.h"
#include "hugebuf.h"
#include "unit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define THREADS 4
#define PER_THREAD 16
#define SIZE (128u << 10)   /* 4 x 16 x 128 KiB = 8 MiB: more than the region */

static char *bufs[THREADS][PER_THREAD];

static void *take(void *arg)
{
	char **mine = arg;

	for (int i = 0; i < PER_THREAD; i++)
		if ((mine[i] = husk_hugebuf_get(SIZE)))
			memset(mine[i], 0x5a, SIZE);   /* writable, and seen by the overlap check */
	return NULL;
}

/* Does the mapping that holds p carry the MADV_HUGEPAGE advice ("hg")? */
static bool advised_huge(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, hg = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			hg = strstr(line, " hg") != NULL;
	}
	fclose(f);
	return hg;
}

int main(void)
{
	pthread_t t[THREADS];
	bool all = true, aligned = true, zero = true, apart = true;
	char *first;

	/* Zeroed: the first buffer, before anything wrote to it. */
	first = husk_hugebuf_get(SIZE);
	CHECK("a buffer is given", first != NULL);
	for (size_t i = 0; first && i < SIZE; i++)
		if (first[i]) {
			zero = false;
			break;
		}
	CHECK("a fresh buffer is zeroed", first && zero);
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
		CHECK("it lies in memory advised for huge pages", first && advised_huge(first));
	else
		printf("ok - # SKIP no transparent huge pages in this kernel\n");

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, take, bufs[i]);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS * PER_THREAD; i++) {
		char *a = bufs[i / PER_THREAD][i % PER_THREAD];
		if (!a) {
			all = false;
			continue;
		}
		if ((uintptr_t)a % 4096)
			aligned = false;
		if ((a < first + SIZE && first < a + SIZE))
			apart = false;
		for (int j = i + 1; j < THREADS * PER_THREAD; j++) {
			char *b = bufs[j / PER_THREAD][j % PER_THREAD];
			if (b && a < b + SIZE && b < a + SIZE)
				apart = false;
		}
	}
	CHECK("64 buffers from 4 threads at once, past the region's end, are all given", all);
	CHECK("... page-aligned", aligned);
	CHECK("... and no two overlap", apart);
	/* Each thread wrote its own buffers whole; an overlap would show here
	 * too, as a buffer another thread's memset reached. */
	for (int i = 0; i < THREADS * PER_THREAD; i++) {
		char *a = bufs[i / PER_THREAD][i % PER_THREAD];
		if (a && (a[0] != 0x5a || a[SIZE - 1] != 0x5a))
			apart = false;
	}
	CHECK("... and each still holds what its thread wrote", apart);
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		husk_hugebuf_put(bufs[i / PER_THREAD][i % PER_THREAD], SIZE);
	husk_hugebuf_put(first, SIZE);
	husk_hugebuf_put(NULL, SIZE);
	return unit_done();
}
