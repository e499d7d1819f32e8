/* hugebuf.c: working buffers of the SquashFS server (decompressed blocks,
 * reply and input buffers), carved out of one region that the kernel backs
 * with transparent huge pages.
 *
 * A launch starts a new process, so every buffer the server uses is fresh
 * memory, and fresh memory is what costs on a virtual machine: each 4 KiB
 * page that a process touches for the first time costs a fault that the
 * hypervisor has to shadow. Measured on the 2-CPU PVM guest these numbers
 * come from: the first write to 4 MiB of 4 KiB pages took 13 ms (7 ms with
 * MAP_POPULATE), to 4 MiB with MADV_HUGEPAGE 0.25-0.35 ms, two faults in
 * all. A SquashFS launch needs about 2.5 MiB of such buffers.
 *
 * The region is only a hint: where transparent huge pages are off, it is
 * plain memory faulted in page by page; where madvise refuses, buffers are
 * mapped one by one, populated, as before. Requests beyond the region get a
 * mapping of their own. */
#include "husk_config.h"
#include "hugebuf.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)
/* 16 blocks of the shared cache at 128 KiB, the reply and input buffers of
 * up to 4 threads, the prefetch and push buffers: 3.3 MiB; two huge pages. */
#define REGION (4u << 20)
#define PAGE 4096u

static char *region;
static size_t used;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void region_init(void)
{
	char *m = mmap(NULL, REGION + HUGE_PAGE, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *start;

	if (m == MAP_FAILED)
		return;
	/* Huge pages need a 2 MiB aligned range: trim both ends. */
	start = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (start > m)
		munmap(m, (size_t)(start - m));
	if (start + REGION < m + REGION + HUGE_PAGE)
		munmap(start + REGION, (size_t)(m + REGION + HUGE_PAGE - (start + REGION)));
	if (madvise(start, REGION, MADV_HUGEPAGE) != 0) {
		munmap(start, REGION);
		return;
	}
	region = start;
}

static bool in_region(const void *p)
{
	return region && (const char *)p >= region && (const char *)p < region + REGION;
}

void *husk_hugebuf_get(size_t size)
{
	size_t n = (size + PAGE - 1) & ~(size_t)(PAGE - 1), at;
	void *m;

	pthread_once(&once, region_init);
	if (region && n <= REGION) {
		at = __atomic_fetch_add(&used, n, __ATOMIC_RELAXED);
		if (at + n <= REGION)
			return region + at;
	}
	m = mmap(NULL, size, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

void husk_hugebuf_put(void *p, size_t size)
{
	if (p && !in_region(p))
		munmap(p, size);
}
