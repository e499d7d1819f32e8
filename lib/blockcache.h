/* blockcache.h: decompressed SquashFS blocks shared by the FUSE workers. */
#ifndef HUSK_BLOCKCACHE_H
#define HUSK_BLOCKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct husk_bcache;
struct husk_blk {
	const char *data;
	size_t size;
};

/* Produce the decompressed block stored at pos (called without the lock). */
typedef int (*husk_bcache_fill)(void *ctx, uint64_t pos, uint32_t hdr, char **data,
	size_t *size);

struct husk_bcache *husk_bcache_new(size_t max_blocks);
void husk_bcache_free(struct husk_bcache *c);
/* Look up or decompress the block at pos. Concurrent callers asking for the
 * same block wait for one decompression. Returns a handle to release, or
 * NULL when fill failed. */
void *husk_bcache_get(struct husk_bcache *c, uint64_t pos, uint32_t hdr, husk_bcache_fill fill,
	void *ctx, struct husk_blk *out);
void husk_bcache_put(struct husk_bcache *c, void *handle);

#endif
