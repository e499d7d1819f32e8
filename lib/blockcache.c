/* blockcache.c: a cache of decompressed SquashFS blocks shared by every FUSE
 * worker thread of a mount.
 *
 * The kernel asks for 128 KiB windows that rarely line up with SquashFS
 * blocks, and consecutive windows go to different threads; with per-thread
 * caches the same block was decompressed two or three times. Here a block is
 * decompressed once per mount: the first thread to miss inserts a "pending"
 * entry and decompresses outside the lock, others wait on a condition
 * variable; distinct blocks still decompress in parallel. Entries in use are
 * pinned by a reference count; above max_blocks the least recently used
 * unpinned entry is recycled, buffer included: fresh memory costs a page
 * fault per page (and freeing it a TLB shootdown across CPUs), which on a
 * virtual machine cost more than the copy itself. */
#include "husk_config.h"
#include "blockcache.h"
#include "hugebuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct entry {
	uint64_t pos;
	char *data;
	size_t size;
	int refs;
	bool ready, failed;
	struct entry *hnext;               /* hash chain */
	struct entry *prev, *next;         /* LRU list, most recent first */
};

struct husk_bcache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entry **table;
	size_t nbuckets, count, max, block_size;
	struct entry *head, *tail;
	/* Every buffer mapped so far (for husk_bcache_free). */
	char **bufs;
	size_t n_bufs, cap_bufs;
	char *spare[16];   /* buffers of failed fills, for reuse */
	int n_spare;
};

/* A fresh buffer, from the huge-page region (hugebuf.c), taken by the thread
 * that fills it, outside the lock. (Chunks of 8 buffers of 4 KiB pages used
 * to be mapped under the lock: on a paravirtualised VM the first fill of a
 * chunk took 1.1-1.5 ms, and every other thread waited for the lock.) */
static char *new_block(struct husk_bcache *c)
{
	char *m = husk_hugebuf_get(c->block_size);

	if (!m)
		return NULL;
	pthread_mutex_lock(&c->mu);
	if (c->n_bufs == c->cap_bufs) {
		size_t cap = c->cap_bufs ? 2 * c->cap_bufs : 32;
		char **b = realloc(c->bufs, cap * sizeof(*b));
		if (!b) {
			pthread_mutex_unlock(&c->mu);
			husk_hugebuf_put(m, c->block_size);
			return NULL;
		}
		c->bufs = b;
		c->cap_bufs = cap;
	}
	c->bufs[c->n_bufs++] = m;
	pthread_mutex_unlock(&c->mu);
	return m;
}

struct husk_bcache *husk_bcache_new(size_t max_blocks, size_t block_size)
{
	struct husk_bcache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->nbuckets = 1;
	while (c->nbuckets < max_blocks * 2)
		c->nbuckets <<= 1;
	c->table = calloc(c->nbuckets, sizeof(*c->table));
	if (!c->table) {
		free(c);
		return NULL;
	}
	c->max = max_blocks;
	c->block_size = block_size;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	return c;
}

void husk_bcache_free(struct husk_bcache *c)
{
	struct entry *e, *n;

	if (!c)
		return;
	for (e = c->head; e; e = n) {
		n = e->next;
		free(e);     /* buffers are in c->bufs */
	}
	for (size_t i = 0; i < c->n_bufs; i++)
		husk_hugebuf_put(c->bufs[i], c->block_size);
	free(c->bufs);
	free(c->table);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* Give back the buffer of an entry that will not be cached (lock held). */
static void release_block(struct husk_bcache *c, char *data)
{
	if (data && c->n_spare < (int)(sizeof(c->spare) / sizeof(c->spare[0])))
		c->spare[c->n_spare++] = data;
	/* else: kept in c->bufs until the cache is freed (fills fail only on
	 * corrupt images) */
}

static size_t bucket(struct husk_bcache *c, uint64_t pos)
{
	return (size_t)((pos * 0x9E3779B97F4A7C15ull) >> 20) & (c->nbuckets - 1);
}

static void lru_unlink(struct husk_bcache *c, struct entry *e)
{
	if (e->prev) e->prev->next = e->next; else c->head = e->next;
	if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct husk_bcache *c, struct entry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void unhash(struct husk_bcache *c, struct entry *e)
{
	struct entry **pp = &c->table[bucket(c, e->pos)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
}

/* The coldest unpinned, finished entry, unhooked for reuse; NULL if none. */
static struct entry *take_cold(struct husk_bcache *c)
{
	for (struct entry *e = c->tail; e; e = e->prev)
		if (e->refs == 0 && e->ready) {
			lru_unlink(c, e);
			unhash(c, e);
			c->count--;
			return e;
		}
	return NULL;
}

void *husk_bcache_get(struct husk_bcache *c, uint64_t pos, uint32_t hdr, husk_bcache_fill fill,
	void *ctx, struct husk_blk *out)
{
	struct entry *e;
	size_t b = bucket(c, pos);
	int r;

	pthread_mutex_lock(&c->mu);
	for (e = c->table[b]; e && e->pos != pos; e = e->hnext)
		;
	if (e) {
		e->refs++;
		while (!e->ready)
			pthread_cond_wait(&c->cv, &c->mu);
		if (e->failed) {
			/* Already unhashed by the filler; the last one out frees it. */
			if (--e->refs == 0) {
				release_block(c, e->data);
				free(e);
			}
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		lru_unlink(c, e);
		lru_front(c, e);
		pthread_mutex_unlock(&c->mu);
		out->data = e->data;
		out->size = e->size;
		return e;
	}
	if (!fill) {
		pthread_mutex_unlock(&c->mu);   /* only what is cached was asked */
		return NULL;
	}
	e = c->count >= c->max ? take_cold(c) : NULL;
	if (e) {
		char *keep = e->data;
		memset(e, 0, sizeof(*e));
		e->data = keep;
	} else if ((e = calloc(1, sizeof(*e)))) {
		if (c->n_spare > 0)
			e->data = c->spare[--c->n_spare];
	} else {
		pthread_mutex_unlock(&c->mu);
		return NULL;
	}
	e->pos = pos;
	e->refs = 1;
	e->hnext = c->table[b];
	c->table[b] = e;
	lru_front(c, e);
	c->count++;
	pthread_mutex_unlock(&c->mu);

	if (!e->data && !(e->data = new_block(c)))
		r = -1;
	else
		r = fill(ctx, pos, hdr, e->data, c->block_size, &e->size);

	pthread_mutex_lock(&c->mu);
	e->ready = true;
	if (r != 0) {
		/* Forget the failure so that a later read tries again. */
		e->failed = true;
		e->refs--;
		unhash(c, e);
		lru_unlink(c, e);
		c->count--;
		pthread_cond_broadcast(&c->cv);
		if (e->refs == 0) {
			release_block(c, e->data);
			free(e);
		}
		pthread_mutex_unlock(&c->mu);
		return NULL;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	out->data = e->data;
	out->size = e->size;
	return e;
}

void husk_bcache_put(struct husk_bcache *c, void *handle)
{
	struct entry *e = handle;

	pthread_mutex_lock(&c->mu);
	e->refs--;
	pthread_mutex_unlock(&c->mu);
}
