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

/* Decompress the block stored at pos into buf (cap bytes), setting *size;
 * called without the lock. */
typedef int (*husk_bcache_fill)(void *ctx, uint64_t pos, uint32_t hdr, char *buf, size_t cap,
	size_t *size);

/* max_blocks buffers of block_size bytes each, allocated as needed and then
 * recycled: after warm-up a read touches no new memory. */
struct husk_bcache *husk_bcache_new(size_t max_blocks, size_t block_size);
void husk_bcache_free(struct husk_bcache *c);
/* Look up or decompress the block at pos. Concurrent callers asking for the
 * same block wait for one decompression. Returns a handle to release, or
 * NULL when fill failed. With fill NULL, only a block that is cached (or
 * being decompressed): NULL when it is not. */
void *husk_bcache_get(struct husk_bcache *c, uint64_t pos, uint32_t hdr, husk_bcache_fill fill,
	void *ctx, struct husk_blk *out);
void husk_bcache_put(struct husk_bcache *c, void *handle);

#endif
