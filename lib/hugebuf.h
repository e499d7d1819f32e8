/* hugebuf.h: working buffers of the SquashFS server, carved out of one
 * region backed by transparent huge pages. */
#ifndef HUSK_HUGEBUF_H
#define HUSK_HUGEBUF_H

#include <stdbool.h>
#include <stddef.h>

/* size bytes of zeroed, page-aligned memory; NULL when out of memory. From
 * the huge-page region while it lasts, then a mapping of its own. */
void *husk_hugebuf_get(size_t size);
/* Give back what husk_hugebuf_get returned (size as asked); memory of the
 * region is kept for the life of the process. */
void husk_hugebuf_put(void *p, size_t size);

#endif
