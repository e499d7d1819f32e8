/* sqfs_server.c: SquashFS images, served by husk itself over FUSE.
 *
 * libsquashfuse decodes the image; husk supplies its own low-level FUSE
 * operations so that it can be fast on a read-only image:
 *   - Debian's libsquashfuse (0.1.104) keeps block caches that are not thread
 *     safe, so each FUSE worker thread owns a private `sqfs` instance on the
 *     shared image fd (pread only). On 64-bit systems the mapping between
 *     FUSE inode numbers and SquashFS inode ids is pure arithmetic, so the
 *     instances need no shared state and decompression runs in parallel.
 *   - The image never changes while mounted, so entries, attributes and
 *     negative lookups (ENOENT, frequent in language runtimes' module search)
 *     are cached by the kernel for as long as the mount lives.
 *   - open and opendir answer ENOSYS, which tells the kernel (4.19+ / 5.1+)
 *     to skip the open/release round trips for good and to treat every file
 *     as FOPEN_KEEP_CACHE and every directory as FOPEN_CACHE_DIR: pages and
 *     listings stay in the page cache from one open to the next, and from
 *     one launch of a session to the next. (With no open handler at all,
 *     libfuse 3.14 answered every open itself, without FOPEN_KEEP_CACHE: a
 *     second `cat` of a file, or a second exec of a program, read and
 *     decompressed all of it, and its libraries, again.)
 * The mount is done with mount(2) on an fd we opened (O_CLOEXEC), which is
 * allowed inside a user namespace since Linux 4.18; no fusermount3. */
#include "husk_config.h"

/* squashfuse's headers bring their own config.h with FUSE_USE_VERSION 32;
 * include them first and choose the libfuse API level afterwards. */
#include <squashfuse/squashfuse.h>
#undef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>

#include "blockcache.h"
#include "hugebuf.h"
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#include "husk.h"
#include "sqfs.h"
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* Cache lifetime for a read-only image: effectively "until unmounted". */
#define FOREVER 1e9
/* Blocks held by the shared cache (128 KiB each by default): enough for the
 * blocks that concurrent, misaligned 128 KiB kernel reads straddle and for
 * the fragment blocks that neighbouring small files share; the kernel's page
 * cache holds everything else. Kept small on purpose: a buffer is cheap only
 * once it has been written. With 4 KiB pages, 64 blocks cost about 10 ms of
 * CPU per launch on a paravirtualised VM; from huge pages (hugebuf.c) they
 * cost little, but 64 were no faster than 16 either (import numpy, 2 CPUs). */
#define SHARED_CACHE_BLOCKS 16
/* Blocks of the command's file decompressed ahead (4 MiB of 128 KiB). */
#define PREFETCH_BLOCKS 32
/* Pending push-ahead jobs; more are dropped (they are only an optimisation). */
#define PUSH_RING 512

/* ---- the reader: one `sqfs` plus its fd ------------------------------ */

struct sqfs_reader {
	sqfs fs;
	int fd;
};

static const char *sqfs_err_text(sqfs_err e)
{
	switch (e) {
	case SQFS_BADFORMAT: return "not a valid SquashFS image (bad superblock)";
	case SQFS_BADVERSION: return "unsupported SquashFS version (need 4.0)";
	case SQFS_BADCOMP: return "compression not supported by this libsquashfuse";
	case SQFS_UNSUP: return "unsupported feature";
	default: return "corrupt or truncated image";
	}
}

/* The library's own block caches keep their default sizes: the FUSE path
 * reads file data through the shared cache below, and only metadata (and
 * the small files read before mounting) goes through them. */
static int reader_init(struct sqfs_reader *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	return sqfs_init(&r->fs, fd, 0);
}

int husk_sqfs_reader_open(struct sqfs_reader **out, int fd, const char *path,
	struct husk_err *err)
{
	struct sqfs_reader *r = calloc(1, sizeof(*r));
	struct stat st;
	sqfs_inode root;
	sqfs_err e;

	if (!r)
		return husk_err_set(err, ENOMEM, "image '%s'", path);
	/* A truncated image has a valid superblock but ends early: say so before
	 * anything reads past the end. bytes_used is a little-endian u64 at 40. */
	{
		unsigned char sb[48];
		uint64_t used = 0;
		if (pread(fd, sb, sizeof(sb), 0) == (ssize_t)sizeof(sb) && fstat(fd, &st) == 0) {
			for (int i = 7; i >= 0; i--)
				used = (used << 8) | sb[40 + i];
			if ((uint64_t)st.st_size < used) {
				free(r);
				husk_err_set(err, 0, "image '%s': truncated: the file has %lld bytes, its "
					"superblock says %llu", path, (long long)st.st_size,
					(unsigned long long)used);
				husk_err_hint(err, "copy the image again");
				return -1;
			}
		}
	}
	if ((e = reader_init(r, fd)) != SQFS_OK) {
		free(r);
		husk_err_set(err, 0, "image '%s': %s", path, sqfs_err_text(e));
		husk_err_hint(err, "rebuild it with mksquashfs (gzip, xz, lz4, lzo or zstd)");
		return -1;
	}
	if (sqfs_inode_get(&r->fs, &root, sqfs_inode_root(&r->fs)) != SQFS_OK ||
	    !S_ISDIR(root.base.mode | sqfs_mode(root.base.inode_type))) {
		husk_err_set(err, 0, "image '%s': corrupt: cannot read the root directory", path);
		husk_err_hint(err, "rebuild or copy the image again");
		husk_sqfs_reader_close(r);
		return -1;
	}
	*out = r;
	return 0;
}

void husk_sqfs_reader_close(struct sqfs_reader *r)
{
	if (!r)
		return;
	sqfs_destroy(&r->fs);
	free(r);
}

int husk_sqfs_reader_readlink(struct sqfs_reader *r, const char *path, char *buf, size_t size)
{
	sqfs_inode inode;
	bool found = false;
	size_t n = size;

	if (sqfs_inode_get(&r->fs, &inode, sqfs_inode_root(&r->fs)) != SQFS_OK ||
	    sqfs_lookup_path(&r->fs, &inode, path, &found) != SQFS_OK) {
		errno = EIO;
		return -1;
	}
	if (!found) {
		errno = ENOENT;
		return -1;
	}
	if (!S_ISLNK(inode.base.mode | sqfs_mode(inode.base.inode_type))) {
		errno = EINVAL;
		return -1;
	}
	if (sqfs_readlink(&r->fs, &inode, buf, &n) != SQFS_OK) {
		errno = EIO;
		return -1;
	}
	return (int)strlen(buf);
}

bool husk_sqfs_reader_exists(struct sqfs_reader *r, const char *path)
{
	sqfs_inode inode;
	bool found = false;

	return sqfs_inode_get(&r->fs, &inode, sqfs_inode_root(&r->fs)) == SQFS_OK &&
		sqfs_lookup_path(&r->fs, &inode, path, &found) == SQFS_OK && found;
}

/* The inode of a regular file; 1 when missing. */
static int reg_inode(struct sqfs_reader *r, const char *path, sqfs_inode *inode)
{
	bool found = false;

	if (sqfs_inode_get(&r->fs, inode, sqfs_inode_root(&r->fs)) ||
	    sqfs_lookup_path(&r->fs, inode, path, &found)) {
		errno = EIO;
		return -1;
	}
	if (!found)
		return 1;
	if (!S_ISREG(inode->base.mode | sqfs_mode(inode->base.inode_type))) {
		errno = EISDIR;
		return -1;
	}
	return 0;
}

int husk_sqfs_reader_size(struct sqfs_reader *r, const char *path, uint64_t *size)
{
	sqfs_inode inode;
	int rc = reg_inode(r, path, &inode);

	if (rc == 0)
		*size = inode.xtra.reg.file_size;
	return rc;
}

int husk_sqfs_reader_pread(struct sqfs_reader *r, const char *path, uint64_t off, size_t len,
	void *dst)
{
	sqfs_inode inode;
	sqfs_off_t n = (sqfs_off_t)len;
	int rc = reg_inode(r, path, &inode);

	if (rc != 0)
		return rc > 0 ? (errno = ENOENT, -1) : -1;
	if (sqfs_read_range(&r->fs, &inode, (sqfs_off_t)off, &n, dst)) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int husk_sqfs_reader_read(struct sqfs_reader *r, const char *path, char **buf, size_t *len,
	size_t max)
{
	sqfs_inode inode;
	bool found = false;
	sqfs_off_t size;
	char *b;

	if (sqfs_inode_get(&r->fs, &inode, sqfs_inode_root(&r->fs)) ||
	    sqfs_lookup_path(&r->fs, &inode, path, &found)) {
		errno = EIO;
		return -1;
	}
	if (!found)
		return 1;
	if (!S_ISREG(inode.base.mode | sqfs_mode(inode.base.inode_type))) {
		errno = EISDIR;
		return -1;
	}
	if (inode.xtra.reg.file_size > max) {
		errno = EFBIG;
		return -1;
	}
	size = (sqfs_off_t)inode.xtra.reg.file_size;
	if (!(b = malloc((size_t)size + 1)))
		return -1;
	if (sqfs_read_range(&r->fs, &inode, 0, &size, b)) {
		free(b);
		errno = EIO;
		return -1;
	}
	b[size] = '\0';
	*buf = b;
	if (len)
		*len = (size_t)size;
	return 0;
}

sqfs *husk_sqfs_reader_fs(struct sqfs_reader *r)
{
	return &r->fs;
}

/* ---- the server ------------------------------------------------------- */

struct husk_sqfs_server {
	int image_fd;
	int fuse_fd;
	struct fuse_session *se;
	pthread_key_t key;          /* the calling worker's struct sqfs_reader */
	pthread_t loop;
	struct husk_bcache *cache;   /* decompressed data blocks, shared */
	bool has_xattrs;
	/* Push-ahead: decompressed data the kernel did not ask for (yet). */
	pthread_mutex_t push_mu;
	pthread_cond_t push_cv;
	struct push_job { fuse_ino_t ino; uint64_t id; off_t off; size_t len; } push_ring[PUSH_RING];
	unsigned push_head, push_tail;
	struct sqfs_reader push_reader;
	bool pushing;
	bool no_open, no_opendir;    /* the kernel takes ENOSYS for "no open needed" */
	/* Request-serving threads: one to start with, more (up to max_workers)
	 * when a request waits while none is free (serve). */
	pthread_mutex_t workers_mu;
	pthread_t workers[8];
	int n_workers, max_workers, idle;
	cpu_set_t cpus;              /* their CPUs, when cpus_set */
	bool cpus_set;
	/* What the kernel asked (-v): updated atomically by the workers. */
	unsigned long n_lookup, n_open, n_read, read_bytes, pushed_bytes, warmed_bytes;
	struct warm_rec *rec;        /* recording a warm profile, or NULL */
	pthread_mutex_t warm_mu;     /* the replay's lookup child: */
	int warm_pidfd;              /* the child, once started; -1 before */
	bool warm_stopping;          /* the command ended: none to start */
};

#define COUNT(srv, field, n) __atomic_fetch_add(&(srv)->field, (n), __ATOMIC_RELAXED)

void husk_sqfs_server_stats(struct husk_sqfs_server *srv, char *buf, size_t size)
{
	snprintf(buf, size, "%lu lookups, %lu opens, %lu reads (%lu KiB), %lu KiB pushed ahead, "
		"%lu KiB warmed, %d of %d threads",
		__atomic_load_n(&srv->n_lookup, __ATOMIC_RELAXED),
		__atomic_load_n(&srv->n_open, __ATOMIC_RELAXED),
		__atomic_load_n(&srv->n_read, __ATOMIC_RELAXED),
		__atomic_load_n(&srv->read_bytes, __ATOMIC_RELAXED) >> 10,
		__atomic_load_n(&srv->pushed_bytes, __ATOMIC_RELAXED) >> 10,
		__atomic_load_n(&srv->warmed_bytes, __ATOMIC_RELAXED) >> 10,
		__atomic_load_n(&srv->n_workers, __ATOMIC_RELAXED), srv->max_workers);
}

static void reader_free(void *p)
{
	husk_sqfs_reader_close(p);
}

/* The calling thread's private reader, created on first use. */
static sqfs *thread_fs(fuse_req_t req)
{
	struct husk_sqfs_server *srv = fuse_req_userdata(req);
	struct sqfs_reader *r = pthread_getspecific(srv->key);

	if (!r) {
		if (!(r = malloc(sizeof(*r))))
			return NULL;
		if (reader_init(r, srv->image_fd) != SQFS_OK) {
			free(r);
			return NULL;
		}
		pthread_setspecific(srv->key, r);
	}
	return &r->fs;
}

/* 64-bit inode mapping: the FUSE root is 1; SquashFS inode id 0 would clash
 * with "no inode", and ids 1 and 2 never occur (an inode header is larger). */
static sqfs_inode_id ino_to_id(sqfs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return sqfs_inode_root(fs);
	return ino == 2 ? 0 : (sqfs_inode_id)ino;
}

static fuse_ino_t id_to_ino(sqfs *fs, sqfs_inode_id id)
{
	if (id == sqfs_inode_root(fs))
		return FUSE_ROOT_ID;
	return id == 0 ? 2 : (fuse_ino_t)id;
}

static int inode_stat(sqfs *fs, sqfs_inode *inode, fuse_ino_t ino, struct stat *st)
{
	sqfs_id_t id;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = inode->base.mode | sqfs_mode(inode->base.inode_type);
	st->st_nlink = inode->nlink;
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)inode->base.mtime;
	if (sqfs_id_get(fs, inode->base.uid, &id))
		return -1;
	st->st_uid = id;
	if (sqfs_id_get(fs, inode->base.guid, &id))
		return -1;
	st->st_gid = id;
	if (S_ISREG(st->st_mode)) {
		st->st_size = (off_t)inode->xtra.reg.file_size;
		st->st_blocks = (blkcnt_t)((inode->xtra.reg.file_size + 511) / 512);
	} else if (S_ISLNK(st->st_mode)) {
		st->st_size = (off_t)inode->xtra.symlink_size;
	} else if (S_ISDIR(st->st_mode)) {
		st->st_size = inode->xtra.dir.dir_size;
	} else if (S_ISBLK(st->st_mode) || S_ISCHR(st->st_mode)) {
		st->st_rdev = makedev((unsigned)inode->xtra.dev.major, (unsigned)inode->xtra.dev.minor);
	}
	st->st_blksize = (blksize_t)fs->sb.block_size;
	return 0;
}

static int get_inode(fuse_req_t req, fuse_ino_t ino, sqfs **fsp, sqfs_inode *inode)
{
	sqfs *fs = thread_fs(req);

	if (!fs) {
		fuse_reply_err(req, ENOMEM);
		return -1;
	}
	if (sqfs_inode_get(fs, inode, ino_to_id(fs, ino))) {
		fuse_reply_err(req, EIO);
		return -1;
	}
	inode->base.mode |= sqfs_mode(inode->base.inode_type);
	*fsp = fs;
	return 0;
}

/* ---- warm profiles: recording ------------------------------------------ *
 * With --warm-record (and `husk build`'s WARM), the server notes what the
 * command asked, as a profile that a later launch replays ahead of the
 * command (warmer below):
 *   husk-warm 1                 the header
 *   L PATH                      a lookup, of a name that exists or not
 *   D PATH                      a directory listed
 *   R OFFSET LENGTH PATH        data, in whole blocks
 * PATH is relative to the image's root ("." for the root itself). Names with
 * a newline are not recorded. Lookups and listings come in the order the
 * command made them; the blocks read of a file follow its lookup, sorted and
 * merged, or come at the end (files the kernel knew from a listing), sorted
 * by path. Requests may be served by several threads at once, so the order
 * of the reads themselves is not kept: a command that does the same each time
 * gives the same profile, and `husk build` the same image. */
#define REC_BUCKETS 4096
#define REC_MAX (16u << 20)   /* bytes of profile text */

struct rec_ino {
	fuse_ino_t ino;
	struct rec_ino *next;
	uint64_t *blks;          /* blocks read, in no order, each once */
	size_t n_blks, cap_blks;
	bool done;               /* its R lines are written */
	char path[];
};

struct rec_blk {
	fuse_ino_t ino;
	uint64_t blk;
	struct rec_blk *next;
};

struct warm_rec {
	pthread_mutex_t mu;
	struct rec_ino *tab[REC_BUCKETS];
	struct rec_blk *seen[REC_BUCKETS];
	/* The L and D lines; after each L line of a file, where its R lines go. */
	char *text;
	size_t len, cap;
	struct rec_anchor { size_t at; struct rec_ino *file; } *anchors;
	size_t n_anchors, cap_anchors;
	size_t bs;
	char *out;               /* the profile, made by husk_sqfs_server_profile */
};

static struct rec_ino *rec_find(struct warm_rec *r, fuse_ino_t ino)
{
	for (struct rec_ino *e = r->tab[ino % REC_BUCKETS]; e; e = e->next)
		if (e->ino == ino)
			return e;
	return NULL;
}

static const char *rec_path(struct warm_rec *r, fuse_ino_t ino)
{
	struct rec_ino *e;

	if (ino == FUSE_ROOT_ID)
		return ".";
	return (e = rec_find(r, ino)) ? e->path : NULL;
}

static bool grow(void *pp, size_t *cap, size_t need, size_t size)
{
	void *p;
	size_t n = *cap ? *cap : 16;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	if (!(p = realloc(*(void **)pp, n * size)))
		return false;
	*(void **)pp = p;
	*cap = n;
	return true;
}

static void text_add(char **text, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void text_add(char **text, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || *len + (size_t)n + 1 > REC_MAX || !grow(text, cap, *len + (size_t)n + 1, 1))
		return;   /* full: the profile ends here */
	va_start(ap, fmt);
	vsnprintf(*text + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
}

/* "dir/name" (or "name" under the root), remembered for ino when it is not
 * 0, and noted as a lookup when line. */
static void rec_name(struct husk_sqfs_server *srv, fuse_ino_t parent, const char *name,
	fuse_ino_t ino, bool line)
{
	struct warm_rec *r = srv->rec;
	struct rec_ino *e = NULL;
	const char *dir;

	if (!r || strchr(name, '\n'))
		return;
	pthread_mutex_lock(&r->mu);
	if ((dir = rec_path(r, parent))) {
		bool top = !strcmp(dir, ".");
		size_t n = (top ? 0 : strlen(dir) + 1) + strlen(name) + 1;
		if (ino && !(e = rec_find(r, ino)) && (e = calloc(1, sizeof(*e) + n))) {
			snprintf(e->path, n, "%s%s%s", top ? "" : dir, top ? "" : "/", name);
			e->ino = ino;
			e->next = r->tab[ino % REC_BUCKETS];
			r->tab[ino % REC_BUCKETS] = e;
		}
		if (line) {
			text_add(&r->text, &r->len, &r->cap, "L %s%s%s\n", top ? "" : dir,
				top ? "" : "/", name);
			if (e && grow(&r->anchors, &r->cap_anchors, r->n_anchors + 1,
			    sizeof(*r->anchors)))
				r->anchors[r->n_anchors++] = (struct rec_anchor){ r->len, e };
		}
	}
	pthread_mutex_unlock(&r->mu);
}

static void rec_lookup(struct husk_sqfs_server *srv, fuse_ino_t parent, const char *name,
	fuse_ino_t ino)
{
	rec_name(srv, parent, name, ino, true);
}

static void rec_listed(struct husk_sqfs_server *srv, fuse_ino_t ino)
{
	struct warm_rec *r = srv->rec;
	const char *dir;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	if ((dir = rec_path(r, ino)))
		text_add(&r->text, &r->len, &r->cap, "D %s\n", dir);
	pthread_mutex_unlock(&r->mu);
}

/* Has block blk of ino been recorded? Marks it. */
static bool rec_seen(struct warm_rec *r, fuse_ino_t ino, uint64_t blk)
{
	size_t h = (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ blk) % REC_BUCKETS;
	struct rec_blk *e;

	for (e = r->seen[h]; e; e = e->next)
		if (e->ino == ino && e->blk == blk)
			return true;
	if ((e = malloc(sizeof(*e)))) {
		e->ino = ino;
		e->blk = blk;
		e->next = r->seen[h];
		r->seen[h] = e;
	}
	return false;
}

/* A read, as the whole blocks it touched (the replay stores whole blocks):
 * the profile does not depend on how the kernel cut its readahead. */
static void rec_read(struct husk_sqfs_server *srv, fuse_ino_t ino, uint64_t off, size_t len,
	size_t bs)
{
	struct warm_rec *r = srv->rec;
	struct rec_ino *e;

	if (!r || len == 0)
		return;
	pthread_mutex_lock(&r->mu);
	r->bs = bs;
	if ((e = rec_find(r, ino)))
		for (uint64_t b = off / bs; b <= (off + len - 1) / bs; b++)
			if (!rec_seen(r, ino, b) && grow(&e->blks, &e->cap_blks, e->n_blks + 1,
			    sizeof(*e->blks)))
				e->blks[e->n_blks++] = b;
	pthread_mutex_unlock(&r->mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp((*(struct rec_ino *const *)a)->path, (*(struct rec_ino *const *)b)->path);
}

/* A file's blocks as R lines: sorted, consecutive ones merged. */
static void rec_emit(struct warm_rec *r, struct rec_ino *e, size_t *len, size_t *cap)
{
	e->done = true;
	qsort(e->blks, e->n_blks, sizeof(*e->blks), cmp_u64);
	for (size_t i = 0, j; i < e->n_blks; i = j) {
		for (j = i + 1; j < e->n_blks && e->blks[j] == e->blks[j - 1] + 1; j++)
			;
		text_add(&r->out, len, cap, "R %llu %llu %s\n",
			(unsigned long long)(e->blks[i] * r->bs),
			(unsigned long long)((e->blks[j - 1] - e->blks[i] + 1) * r->bs), e->path);
	}
}

void husk_sqfs_server_record(struct husk_sqfs_server *srv)
{
	struct warm_rec *r = calloc(1, sizeof(*r));

	if (!r)
		return;
	pthread_mutex_init(&r->mu, NULL);
	srv->rec = r;
}

const char *husk_sqfs_server_profile(struct husk_sqfs_server *srv, size_t *len)
{
	struct warm_rec *r = srv->rec;
	struct rec_ino **rest = NULL;
	size_t n_rest = 0, cap_rest = 0, at = 0, cap = 0;

	if (!r)
		return NULL;
	pthread_mutex_lock(&r->mu);
	free(r->out);
	r->out = NULL;
	*len = 0;
	for (size_t i = 0; i < REC_BUCKETS; i++)
		for (struct rec_ino *e = r->tab[i]; e; e = e->next)
			e->done = false;
	text_add(&r->out, len, &cap, "husk-warm 1\n");
	for (size_t i = 0; i <= r->n_anchors; i++) {
		size_t to = i < r->n_anchors ? r->anchors[i].at : r->len;
		text_add(&r->out, len, &cap, "%.*s", (int)(to - at), r->text ? r->text + at : "");
		at = to;
		if (i < r->n_anchors && !r->anchors[i].file->done && r->anchors[i].file->n_blks)
			rec_emit(r, r->anchors[i].file, len, &cap);
	}
	for (size_t i = 0; i < REC_BUCKETS; i++)
		for (struct rec_ino *e = r->tab[i]; e; e = e->next)
			if (!e->done && e->n_blks && grow(&rest, &cap_rest, n_rest + 1, sizeof(*rest)))
				rest[n_rest++] = e;
	qsort(rest, n_rest, sizeof(*rest), cmp_path);
	for (size_t i = 0; i < n_rest; i++)
		rec_emit(r, rest[i], len, &cap);
	free(rest);
	pthread_mutex_unlock(&r->mu);
	return r->out ? r->out : "";
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct husk_sqfs_server *srv = userdata;
	const unsigned want = FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_ASYNC_READ |
		FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_READDIRPLUS;

	conn->want |= conn->capable & want;
	/* Always "plus": the image never changes, attributes are good forever. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* op_open and op_opendir say ENOSYS themselves where the kernel takes it
	 * (4.19 and 5.1); libfuse's own answer without them was an open without
	 * FOPEN_KEEP_CACHE. */
	conn->want &= ~(FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_NO_OPENDIR_SUPPORT);
	srv->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	srv->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
	/* No writes ever: no need for the kernel to ask about flushes or locks. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	conn->max_readahead = 1u << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	sqfs_inode dir, inode;
	sqfs_dir_entry entry;
	sqfs_name namebuf;
	bool found = false;
	sqfs *fs;

	COUNT((struct husk_sqfs_server *)fuse_req_userdata(req), n_lookup, 1);
	if (get_inode(req, parent, &fs, &dir))
		return;
	if (!S_ISDIR(dir.base.mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	sqfs_dentry_init(&entry, namebuf);
	if (sqfs_dir_lookup(fs, &dir, name, strlen(name), &entry, &found)) {
		fuse_reply_err(req, EIO);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.entry_timeout = FOREVER;
	if (!found) {
		/* ino 0 with a timeout: a negative entry the kernel caches. */
		rec_lookup(fuse_req_userdata(req), parent, name, 0);
		fuse_reply_entry(req, &e);
		return;
	}
	e.ino = id_to_ino(fs, sqfs_dentry_inode(&entry));
	if (sqfs_inode_get(fs, &inode, sqfs_dentry_inode(&entry)) ||
	    inode_stat(fs, &inode, e.ino, &e.attr)) {
		fuse_reply_err(req, EIO);
		return;
	}
	e.attr_timeout = FOREVER;
	/* Before the reply: the kernel may ask for the new inode at once. */
	rec_lookup(fuse_req_userdata(req), parent, name, e.ino);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sqfs_inode inode;
	struct stat st;
	sqfs *fs;

	if (get_inode(req, ino, &fs, &inode))
		return;
	if (inode_stat(fs, &inode, ino, &st))
		fuse_reply_err(req, EIO);
	else
		fuse_reply_attr(req, &st, FOREVER);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[4097];
	size_t size = sizeof(target);
	sqfs_inode inode;
	sqfs *fs;

	if (get_inode(req, ino, &fs, &inode))
		return;
	if (!S_ISLNK(inode.base.mode))
		fuse_reply_err(req, EINVAL);
	else if (inode.xtra.symlink_size >= sizeof(target))
		fuse_reply_err(req, ENAMETOOLONG);
	else if (sqfs_readlink(fs, &inode, target, &size))
		fuse_reply_err(req, EIO);
	else
		fuse_reply_readlink(req, target);
}

/* Reused reply buffer of the calling thread. */
static __thread char *tls_buf;
static __thread size_t tls_cap;

/* Per-thread buffers, from the huge-page region (hugebuf.c), kept. */
static char *populated(char *old, size_t old_cap, size_t size)
{
	char *b = husk_hugebuf_get(size);

	if (!b)
		return NULL;
	husk_hugebuf_put(old, old_cap);
	return b;
}

static char *thread_buf(size_t size)
{
	if (size > tls_cap) {
		/* The kernel asks for 128 KiB at most (its readahead window and
		 * FUSE's default max_pages): no more than that to start with. */
		size_t cap = size < (128u << 10) ? (128u << 10) : size;
		char *b = populated(tls_buf, tls_cap, cap);
		if (!b)
			return NULL;
		tls_buf = b;
		tls_cap = cap;
	}
	return tls_buf;
}

/* Say once per mount where the image is damaged; readers get EIO. */
static void report_corruption(uint64_t pos)
{
	static int reported;

	if (__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED) == 0)
		husk_warn("the SquashFS image is corrupt: a data block at byte %llu does not "
			"decompress; rebuild or copy the image again", (unsigned long long)pos);
}

/* Read (and decompress) one data block into buf, for the shared cache; runs
 * outside its lock. The compressed bytes go through a per-thread buffer that
 * is reused, so that no new memory is touched per block. */
static __thread char *tls_in;
static __thread size_t tls_in_cap;

/* gzip blocks: libdeflate when available (2-3 times faster than the zlib
 * that libsquashfuse calls), one decompressor per thread. */
static int inflate_block(sqfs *fs, void *in, size_t insize, char *out, size_t cap,
	size_t *outsize)
{
#ifdef HAVE_LIBDEFLATE
	static __thread struct libdeflate_decompressor *d;

	if (sqfs_compression(fs) == ZLIB_COMPRESSION) {
		if (!d && !(d = libdeflate_alloc_decompressor()))
			return -1;
		return libdeflate_zlib_decompress(d, in, insize, out, cap, outsize) ==
			LIBDEFLATE_SUCCESS ? 0 : -1;
	}
#endif
	*outsize = cap;
	return fs->decompressor(in, insize, out, outsize) == SQFS_OK ? 0 : -1;
}

static int fill_block(void *ctx, uint64_t pos, uint32_t hdr, char *buf, size_t cap,
	size_t *size)
{
	sqfs *fs = ctx;
	bool compressed;
	uint32_t insize;
	size_t outsize = cap;

	sqfs_data_header(hdr, &compressed, &insize);
	if (insize > cap) {
		report_corruption(pos);
		return -1;
	}
	if (!compressed) {
		if (pread(fs->fd, buf, insize, (off_t)(pos + fs->offset)) != (ssize_t)insize) {
			report_corruption(pos);
			return -1;
		}
		*size = insize;
		return 0;
	}
	if (insize > tls_in_cap) {
		char *b = populated(tls_in, tls_in_cap, cap);
		if (!b)
			return -1;
		tls_in = b;
		tls_in_cap = cap;
	}
	if (pread(fs->fd, tls_in, insize, (off_t)(pos + fs->offset)) != (ssize_t)insize ||
	    inflate_block(fs, tls_in, insize, buf, cap, &outsize) < 0) {
		report_corruption(pos);
		return -1;
	}
	*size = outsize;
	return 0;
}

/* A block through the shared cache or, with scratch (block_size bytes), into
 * scratch and past the cache: a thread of idle priority must not leave a
 * pending entry that a worker would wait for. */
static void *get_block(struct husk_sqfs_server *srv, sqfs *fs, uint64_t pos, uint32_t hdr,
	husk_bcache_fill fill, char *scratch, struct husk_blk *blk)
{
	if (!scratch)
		return husk_bcache_get(srv->cache, pos, hdr, fill, fs, blk);
	if (fill(fs, pos, hdr, scratch, fs->sb.block_size, &blk->size) != 0)
		return NULL;
	blk->data = scratch;
	return scratch;
}

static void put_block(struct husk_sqfs_server *srv, void *h, char *scratch)
{
	if (!scratch)
		husk_bcache_put(srv->cache, h);
}

/* Copy [off, off+size) of a regular file into buf through the shared cache,
 * decompressing with fill (NULL: only blocks that are cached), or through
 * scratch (see get_block). Returns the number of bytes, or -1. */
static ssize_t read_range(struct husk_sqfs_server *srv, sqfs *fs, sqfs_inode *inode,
	off_t off, size_t size, char *buf, husk_bcache_fill fill, char *scratch)
{
	uint64_t file_size = inode->xtra.reg.file_size;
	size_t bs = fs->sb.block_size, done = 0;
	sqfs_blocklist bl;

	if ((uint64_t)off >= file_size)
		return 0;
	if (size > file_size - (uint64_t)off)
		size = (size_t)(file_size - (uint64_t)off);
	if (sqfs_blockidx_blocklist(fs, inode, &bl, off))
		return -1;
	while (done < size) {
		uint64_t at = (uint64_t)off + done;
		size_t in_block = (size_t)(at % bs), take;
		struct husk_blk blk = { 0 };
		void *h = NULL;
		uint32_t frag_off = 0;

		if (bl.remain == 0) {
			/* The tail of the file lives in a fragment block. */
			struct squashfs_fragment_entry frag;
			if (inode->xtra.reg.frag_idx == SQUASHFS_INVALID_FRAG ||
			    sqfs_frag_entry(fs, &frag, inode->xtra.reg.frag_idx))
				return -1;
			if (!(h = get_block(srv, fs, frag.start_block, frag.size, fill, scratch,
			    &blk)))
				return -1;
			frag_off = inode->xtra.reg.frag_off;
		} else {
			if (sqfs_blocklist_next(&bl))
				return -1;
			if (bl.pos + bs <= at)
				continue;
			take = bs - in_block < size - done ? bs - in_block : size - done;
			if (bl.input_size != 0) {
				bool compressed;
				uint32_t insize;
				sqfs_data_header(bl.header, &compressed, &insize);
				if (!compressed) {
					/* Stored as is (incompressible data): read what is
					 * asked straight into the reply, without a cache
					 * slot or a second copy. */
					if (in_block + take > insize || pread(fs->fd, buf + done, take,
					    (off_t)(bl.block + fs->offset + in_block)) != (ssize_t)take) {
						report_corruption(bl.block);
						return -1;
					}
					done += take;
					continue;
				}
				if (!(h = get_block(srv, fs, bl.block, bl.header, fill, scratch,
				    &blk)))
					return -1;
			}
		}
		take = bs - in_block;
		if (take > size - done)
			take = size - done;
		if (!h) {
			memset(buf + done, 0, take);   /* a hole */
		} else {
			if (frag_off + in_block + take > blk.size) {
				put_block(srv, h, scratch);
				return -1;
			}
			memcpy(buf + done, blk.data + frag_off + in_block, take);
			put_block(srv, h, scratch);
		}
		done += take;
	}
	return (ssize_t)done;
}

/* The parts of the blocks just decompressed that lie outside [off, off+len):
 * a pusher thread stores them into the kernel's page cache, so that the
 * faults and reads that would ask for them next never reach us. Only a
 * thread that serves no request may do that: storing waits on page locks,
 * which an in-flight read holds until a worker answers it. */
static void push_job(struct husk_sqfs_server *srv, fuse_ino_t ino, off_t from, off_t to)
{
	if (to <= from)
		return;
	pthread_mutex_lock(&srv->push_mu);
	if (srv->push_tail - srv->push_head < PUSH_RING) {
		struct push_job *j = &srv->push_ring[srv->push_tail++ % PUSH_RING];
		j->ino = ino;
		j->off = from;
		j->len = (size_t)(to - from);
		pthread_cond_signal(&srv->push_cv);
	}
	pthread_mutex_unlock(&srv->push_mu);
}

static void push_rest(struct husk_sqfs_server *srv, fuse_ino_t ino, sqfs_inode *inode,
	size_t bs, off_t off, size_t len)
{
	off_t size = (off_t)inode->xtra.reg.file_size;
	off_t first = off - off % (off_t)bs, last = off + (off_t)len;

	if (len == 0 || !srv->pushing)
		return;
	last = last % (off_t)bs ? last - last % (off_t)bs + (off_t)bs : last;
	if (last > size)
		last = size;
	/* Page-aligned pieces: the kernel stores whole pages. */
	push_job(srv, ino, first, off & ~(off_t)4095);
	push_job(srv, ino, (off + (off_t)len + 4095) & ~(off_t)4095, last);
}

/* Speculative work (push-ahead, prefetch) runs on idle CPU only: under
 * SCHED_IDLE a worker or the command that wakes up preempts it at once. With
 * nice 10 instead, a worker woken by a read waited up to 1.2 ms for a prefetch
 * thread's time slice to end, on 2 CPUs (seen with sched_switch tracing).
 * The policy applies to the calling thread only; nice 19 where SCHED_IDLE is
 * refused (a seccomp filter, say). */
static void idle_only(void)
{
	struct sched_param sp = { 0 };

	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
}

static void *pusher(void *p)
{
	struct husk_sqfs_server *srv = p;
	size_t cap = srv->push_reader.fs.sb.block_size;
	char *buf = husk_hugebuf_get(cap);

	if (!buf)
		return NULL;
	idle_only();
	for (;;) {
		struct push_job j;
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
		sqfs_inode inode;
		ssize_t got;

		pthread_mutex_lock(&srv->push_mu);
		while (srv->push_head == srv->push_tail)
			pthread_cond_wait(&srv->push_cv, &srv->push_mu);
		j = srv->push_ring[srv->push_head++ % PUSH_RING];
		pthread_mutex_unlock(&srv->push_mu);
		if (j.len > cap)
			j.len = cap;
		if (sqfs_inode_get(&srv->push_reader.fs, &inode, ino_to_id(&srv->push_reader.fs, j.ino)))
			continue;
		/* Only blocks still cached: the pusher never decompresses one
		 * itself, since a worker that asked for the same block would then
		 * wait for this idle-priority thread, which gets almost no CPU
		 * while the command keeps every CPU busy. */
		got = read_range(srv, &srv->push_reader.fs, &inode, j.off, j.len, buf, NULL, NULL);
		if (got <= 0)
			continue;
		bv.buf[0].mem = buf;
		bv.buf[0].size = (size_t)got;
		/* -ENOENT: the kernel forgot the inode; nothing to do. */
		if (fuse_lowlevel_notify_store(srv->se, j.ino, j.off, &bv, 0) == 0)
			COUNT(srv, pushed_bytes, (unsigned long)got);
	}
	return NULL;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	struct husk_sqfs_server *srv = fuse_req_userdata(req);
	sqfs_inode inode;
	ssize_t got;
	char *buf;
	sqfs *fs;

	if (get_inode(req, ino, &fs, &inode))
		return;
	if (!S_ISREG(inode.base.mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!(buf = thread_buf(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	got = read_range(srv, fs, &inode, off, size, buf, fill_block, NULL);
	if (got < 0) {
		fuse_reply_err(req, EIO);
		return;
	}
	rec_read(srv, ino, (uint64_t)off, (size_t)got, fs->sb.block_size);
	fuse_reply_buf(req, buf, (size_t)got);
	COUNT(srv, n_read, 1);
	COUNT(srv, read_bytes, (unsigned long)got);
	push_rest(srv, ino, &inode, fs->sb.block_size, off, (size_t)got);
}

/* READDIR and READDIRPLUS. "Plus" gives every entry with its attributes, so
 * that the lookups that follow a listing (a language runtime scanning its
 * module path, find, ls -l) are answered from the kernel's dentry cache, not
 * one round trip each. */
static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	sqfs_inode inode, child;
	sqfs_dir dir;
	sqfs_dir_entry entry;
	sqfs_name namebuf;
	sqfs_err serr = SQFS_OK;
	size_t used = 0;
	char *buf;
	sqfs *fs;

	if (get_inode(req, ino, &fs, &inode))
		return;
	if (!S_ISDIR(inode.base.mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (sqfs_dir_open(fs, &inode, &dir, off)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!(buf = thread_buf(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off == 0)
		rec_listed(fuse_req_userdata(req), ino);
	sqfs_dentry_init(&entry, namebuf);
	while (sqfs_dir_next(fs, &dir, &entry, &serr)) {
		struct fuse_entry_param e;
		off_t next = (off_t)sqfs_dentry_next_offset(&entry);
		const char *name = sqfs_dentry_name(&entry);
		size_t esize;

		memset(&e, 0, sizeof(e));
		e.ino = id_to_ino(fs, sqfs_dentry_inode(&entry));
		if (plus) {
			if (sqfs_inode_get(fs, &child, sqfs_dentry_inode(&entry)) ||
			    inode_stat(fs, &child, e.ino, &e.attr)) {
				serr = SQFS_ERR;
				break;
			}
			e.attr_timeout = e.entry_timeout = FOREVER;
			esize = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
			/* The kernel now knows the entry without a lookup. */
			if (esize <= size - used)
				rec_name(fuse_req_userdata(req), ino, name, e.ino, false);
		} else {
			e.attr.st_ino = e.ino;
			e.attr.st_mode = sqfs_dentry_mode(&entry);
			esize = fuse_add_direntry(req, buf + used, size - used, name, &e.attr, next);
		}
		if (esize > size - used)
			break;
		used += esize;
	}
	if (serr)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, buf, used);
}

/* Nothing to open on a read-only image (the kernel refuses writes on the
 * read-only mount). ENOSYS tells the kernel (4.19+) to stop sending OPEN and
 * RELEASE for this mount and to keep every file's pages (FOPEN_KEEP_CACHE);
 * where it cannot take that, the open says FOPEN_KEEP_CACHE itself. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct husk_sqfs_server *srv = fuse_req_userdata(req);

	COUNT(srv, n_open, 1);
	if (srv->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

/* The same for directories (5.1+): listings stay cached (FOPEN_CACHE_DIR). */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct husk_sqfs_server *srv = fuse_req_userdata(req);

	if (srv->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fi->cache_readdir = 1;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, true);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct husk_sqfs_server *srv = fuse_req_userdata(req);
	sqfs_inode inode;
	size_t real = size;
	char *buf;
	sqfs *fs;

	if (!srv->has_xattrs) {
		/* ENOSYS once: the kernel stops asking for the rest of the mount. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (get_inode(req, ino, &fs, &inode))
		return;
	if (!(buf = malloc(size ? size : 1))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (sqfs_xattr_lookup(fs, &inode, name, buf, &real))
		fuse_reply_err(req, EIO);
	else if (real == 0)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, real);
	else if (size < real)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, real);
	free(buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };
	sqfs *fs = thread_fs(req);

	if (!fs) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	sv.f_bsize = sv.f_frsize = fs->sb.block_size;
	sv.f_blocks = (fsblkcnt_t)((fs->sb.bytes_used + fs->sb.block_size - 1) / fs->sb.block_size);
	sv.f_files = fs->sb.inodes;
	sv.f_namemax = SQUASHFS_NAME_LEN;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops sqfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.read = op_read,
	.open = op_open,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.getxattr = op_getxattr,
	.statfs = op_statfs,
};

int husk_sqfs_server_mount(struct husk_sqfs_server **out, int image_fd, int target_fd,
	struct husk_err *err)
{
	char *argv[] = { "husk", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct husk_sqfs_server *srv;
	struct sqfs_reader probe;
	char opts[256], target[64], fdpath[64];

	if (!(srv = calloc(1, sizeof(*srv))))
		return husk_err_set(err, ENOMEM, "SquashFS server");
	srv->image_fd = image_fd;
	srv->fuse_fd = -1;
	if (reader_init(&probe, image_fd) != SQFS_OK) {
		free(srv);
		return husk_err_set(err, 0, "SquashFS image: cannot read its superblock");
	}
	srv->has_xattrs = probe.fs.sb.xattr_id_table_start != (uint64_t)SQUASHFS_INVALID_BLK &&
		probe.fs.xattr_info.xattr_ids > 0;
	srv->cache = husk_bcache_new(SHARED_CACHE_BLOCKS, probe.fs.sb.block_size);
	srv->push_reader = probe;   /* kept: the pusher thread decodes with it */
	pthread_mutex_init(&srv->push_mu, NULL);
	pthread_cond_init(&srv->push_cv, NULL);
	pthread_mutex_init(&srv->warm_mu, NULL);
	srv->warm_pidfd = -1;
	if (!srv->cache || pthread_key_create(&srv->key, reader_free)) {
		husk_bcache_free(srv->cache);
		free(srv);
		return husk_err_set(err, EAGAIN, "SquashFS server");
	}
	srv->fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (srv->fuse_fd < 0) {
		int e = errno;
		free(srv);
		husk_err_set(err, e, "cannot open '/dev/fuse'");
		if (e == EACCES || e == EPERM)
			husk_err_hint(err, "FUSE needs /dev/fuse mode 0666 (Debian's fuse3 package "
				"sets it; an admin can run 'chmod 0666 /dev/fuse'), or use a directory image");
		else if (e == ENOENT || e == ENODEV)
			husk_err_hint(err, "load the fuse kernel module ('modprobe fuse'), or use a "
				"directory image");
		return -1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,"
		"allow_other,default_permissions,max_read=1048576", srv->fuse_fd,
		(unsigned)getuid(), (unsigned)getgid());
	snprintf(target, sizeof(target), "/proc/self/fd/%d", target_fd);
	if (mount("husk", target, "fuse.husk", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0) {
		int e = errno;
		close(srv->fuse_fd);
		free(srv);
		husk_err_set(err, e, "cannot mount the SquashFS image with FUSE");
		if (e == EPERM)
			husk_err_hint(err, "unprivileged FUSE mounts need Linux 4.18 or later; "
				"or use a directory image");
		return -1;
	}
	if (!(srv->se = fuse_session_new(&args, &sqfs_ops, sizeof(sqfs_ops), srv))) {
		umount2(target, MNT_DETACH);
		close(srv->fuse_fd);
		free(srv);
		return husk_err_set(err, 0, "cannot create the FUSE session");
	}
	/* libfuse takes over an fd we mounted ourselves through "/dev/fd/N". */
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", srv->fuse_fd);
	if (fuse_session_mount(srv->se, fdpath) != 0) {
		fuse_session_destroy(srv->se);
		umount2(target, MNT_DETACH);
		free(srv);
		return husk_err_set(err, 0, "cannot attach the FUSE session to its device");
	}
	fuse_opt_free_args(&args);
	*out = srv;
	return 0;
}

static int server_threads(void);
static int add_worker(struct husk_sqfs_server *srv);

/* One worker: block in read(2) on /dev/fuse, answer, repeat. The kernel
 * hands each request to the reader that has waited longest, so with two
 * workers a serial stream of requests (one process starting up) alternates
 * between them, and each pays for its own first use of fresh memory (about
 * 5 us a page on a paravirtualised VM: 0.3-0.5 ms for a worker's first read).
 * So there is one worker until requests come faster than it answers: when it
 * takes one while no other worker waits and another request is already
 * queued (POLLIN), it starts a helper, up to max_workers; concurrent requests
 * (parallel ranks, readahead) then decompress in parallel. libfuse's own
 * multi-threaded loop was measured slower on 2 cores (122 ms against 77 ms
 * for a 40 MiB read) because of its per-request worker bookkeeping. */
static void *serve(void *p)
{
	struct husk_sqfs_server *srv = p;
	struct fuse_buf buf = { 0 };
	int fd = fuse_session_fd(srv->se);

	while (!fuse_session_exited(srv->se)) {
		int r;
		__atomic_add_fetch(&srv->idle, 1, __ATOMIC_RELAXED);
		r = fuse_session_receive_buf(srv->se, &buf);
		if (__atomic_sub_fetch(&srv->idle, 1, __ATOMIC_RELAXED) == 0 && r > 0 &&
		    __atomic_load_n(&srv->n_workers, __ATOMIC_RELAXED) < srv->max_workers) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN))
				add_worker(srv);
		}
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0)
			break;   /* -ENODEV: unmounted */
		fuse_session_process_buf(srv->se, &buf);
	}
	free(buf.mem);
	return NULL;
}

struct prefetch_arg {
	struct husk_sqfs_server *srv;
	int part, parts;     /* this thread takes blocks i with i % parts == part */
	char path[4096];
};

/* Look a path up component by component, so that the final inode id is
 * known (the FUSE inode number derives from it). */
static int walk_path(sqfs *fs, const char *path, sqfs_inode *inode, sqfs_inode_id *id)
{
	char copy[8200], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", path);
	*id = sqfs_inode_root(fs);
	if (sqfs_inode_get(fs, inode, *id))
		return -1;
	for (char *name = strtok_r(copy, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		sqfs_dir_entry entry;
		sqfs_name namebuf;
		bool found = false;

		sqfs_dentry_init(&entry, namebuf);
		if (sqfs_dir_lookup(fs, inode, name, strlen(name), &entry, &found) || !found)
			return -1;
		*id = sqfs_dentry_inode(&entry);
		if (sqfs_inode_get(fs, inode, *id))
			return -1;
	}
	inode->base.mode |= sqfs_mode(inode->base.inode_type);
	return 0;
}

/* Find path in the image, following symlinks in its last component. */
static int lookup_file(sqfs *fs, const char *path, sqfs_inode *inode, sqfs_inode_id *id)
{
	char cur[8200];

	snprintf(cur, sizeof(cur), "%s", path);
	for (int depth = 0; depth < 8; depth++) {
		char target[4096];
		size_t size = sizeof(target);
		if (walk_path(fs, cur, inode, id))
			return -1;
		if (S_ISREG(inode->base.mode))
			return 0;
		if (!S_ISLNK(inode->base.mode) || sqfs_readlink(fs, inode, target, &size))
			return -1;
		if (target[0] == '/') {
			snprintf(cur, sizeof(cur), "%s", target);
		} else {
			char *slash = strrchr(cur, '/');
			char dir[4096];
			snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - cur) : 0, cur);
			snprintf(cur, sizeof(cur), "%s/%s", dir, target);
		}
	}
	return -1;
}

/* Store a decompressed block into the kernel's page cache for ino. The kernel
 * knows the inode only once exec has looked it up, which is usually about
 * when the block is ready: retry ENOENT for a little while. Called only from
 * threads that serve no request (storing waits on page locks). */
static void store_block(struct husk_sqfs_server *srv, fuse_ino_t ino, off_t off,
	const struct husk_blk *blk)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(blk->size);

	bv.buf[0].mem = (void *)blk->data;
	for (int tries = 0; tries < 100; tries++) {
		int r = fuse_lowlevel_notify_store(srv->se, ino, off, &bv, 0);
		if (r == 0)
			COUNT(srv, pushed_bytes, (unsigned long)blk->size);
		if (r != -ENOENT)
			return;
		usleep(200);
	}
}

static void *prefetch_file(void *p)
{
	struct prefetch_arg *a = p;
	struct husk_sqfs_server *srv = a->srv;
	struct sqfs_reader r;
	sqfs_inode inode;
	sqfs_inode_id id;
	sqfs_blocklist bl;
	int n = 0;

	/* Idle CPU only: the requests of the root being assembled come first. */
	idle_only();
	if (reader_init(&r, srv->image_fd) != SQFS_OK) {
		free(a);
		return NULL;
	}
	if (lookup_file(&r.fs, a->path, &inode, &id) == 0) {
		fuse_ino_t ino = id_to_ino(&r.fs, id);
		sqfs_blocklist_init(&r.fs, &inode, &bl);
		size_t bs = r.fs.sb.block_size;
		/* Pushed blocks go straight into the page cache from one buffer of
		 * this thread's: a slot of the shared cache per block meant fresh
		 * memory per block (with 4 KiB pages on a paravirtualised VM, a
		 * 128 KiB block took 0.3-1 ms to decompress into a fresh slot, 35 us
		 * into a used buffer). */
		char *own = srv->pushing ? populated(NULL, 0, bs) : NULL;
		while (bl.remain > 0 && n < PREFETCH_BLOCKS && !sqfs_blocklist_next(&bl)) {
			struct husk_blk blk;
			void *h;
			if (n++ % a->parts != a->part || !bl.input_size)
				continue;
			if (own) {
				if (fill_block(&r.fs, bl.block, bl.header, own, bs, &blk.size) == 0) {
					blk.data = own;
					store_block(srv, ino, (off_t)bl.pos, &blk);
				}
			} else if ((h = husk_bcache_get(srv->cache, bl.block, bl.header, fill_block, &r.fs,
			    &blk))) {
				husk_bcache_put(srv->cache, h);
			}
		}
		if (own)
			husk_hugebuf_put(own, bs);
	}
	sqfs_destroy(&r.fs);
	free(a);
	return NULL;
}

void husk_sqfs_server_prefetch(struct husk_sqfs_server *srv, const char *path)
{
	/* The command's blocks decompress while the child assembles the root
	 * (which keeps one CPU busy, see pin_for_assembly in run.c) and then
	 * faults them in: two threads where there are CPUs to spare, one on 2
	 * CPUs (a second thread only cost its start and fresh buffers there:
	 * tiny.sqfs /bin/true 14.8 -> 14.1 ms with one). */
	int parts = server_threads() > 2 ? 2 : 1;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < parts; i++) {
		struct prefetch_arg *a = malloc(sizeof(*a));
		pthread_t t;
		if (!a)
			break;
		a->srv = srv;
		a->part = i;
		a->parts = parts;
		snprintf(a->path, sizeof(a->path), "%s", path);
		if (pthread_create(&t, &attr, prefetch_file, a) != 0)
			free(a);
	}
	pthread_attr_destroy(&attr);
}

/* ---- warm profiles: replay --------------------------------------------- *
 * A profile in the image (/.husk/warm, from `husk build`'s WARM, format
 * above) lists what its command looked up, listed and read. It is replayed
 * from the start of a launch, on CPU the command leaves idle, and never
 * waits for the command:
 *   - a child process looks up and lists what the profile names, through the
 *     mount: the kernel then keeps those entries and attributes for the life
 *     of the mount, and the command's own lookups never reach us. A process
 *     of its own, holding no /dev/fuse descriptor: a thread of ours waiting
 *     for one of our own answers would keep this process from ever dying if
 *     it were killed (the kernel waits out a request a server has taken, and
 *     the connection ends only when its last descriptor closes);
 *   - for each file it found, a thread of ours decompresses the blocks the
 *     profile names and stores them straight into the page cache: no request.
 * Every path is resolved beneath the mount's root with no symlink and no
 * other mount on the way: a profile, even a hostile one, reaches nothing
 * outside the image. The child is ended when the command ends
 * (husk_sqfs_server_warm_stop), or by the kernel when we die. */
#define WARM_MAX_BYTES (512ull << 20)
#define WARM_STACK (64u << 10)

struct warm_line {
	char kind;
	const char *path;
	unsigned long long off, len;
};

struct warm_arg {
	struct husk_sqfs_server *srv;
	int root_fd, fuse_fd, pipe_fd;
	char *text;
	struct warm_line *lines;
	size_t n;
};

struct warm_found {
	uint32_t line;
	uint64_t ino;
};

static int warm_open(int root, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			RESOLVE_NO_XDEV,
	};

	return (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
}

/* The lookup child: on our memory (CLONE_VM), its own descriptors; system
 * calls only. Tells the thread the inode of each file an R line names. */
static int warm_child(void *p)
{
	const struct warm_arg *a = p;
	char d[4096];

	int lo = a->root_fd < a->pipe_fd ? a->root_fd : a->pipe_fd;
	int hi = a->root_fd < a->pipe_fd ? a->pipe_fd : a->root_fd;

	syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* Nothing but the mount's root and the pipe: not /dev/fuse, and not the
	 * supervisor's pipes, whose end of file it waits for. */
	syscall(SYS_close, a->fuse_fd);
	if (lo > 0)
		syscall(SYS_close_range, 0, lo - 1, 0);
	if (hi > lo + 1)
		syscall(SYS_close_range, lo + 1, hi - 1, 0);
	syscall(SYS_close_range, hi + 1, ~0u, 0);
	for (size_t i = 0; i < a->n; i++) {
		const struct warm_line *l = &a->lines[i];
		struct stat st;
		int fd = warm_open(a->root_fd, l->path, l->kind == 'D' ? O_RDONLY | O_DIRECTORY : O_PATH);
		if (fd < 0)
			continue;
		if (l->kind == 'D') {
			while (syscall(SYS_getdents64, fd, d, sizeof(d)) > 0)
				;
		} else if (l->kind == 'R' && syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode)) {
			struct warm_found f = { (uint32_t)i, (uint64_t)st.st_ino };
			if (syscall(SYS_write, a->pipe_fd, &f, sizeof(f)) != (long)sizeof(f))
				break;
		}
		syscall(SYS_close, fd);
	}
	syscall(SYS_exit, 0);
	return 0;
}

/* Store [off, off+len) of inode ino (whole blocks) into the page cache.
 * Returns the bytes stored. */
static size_t warm_range(struct husk_sqfs_server *srv, sqfs *fs, fuse_ino_t ino, uint64_t off,
	uint64_t len, char *scratch, char *out)
{
	size_t bs = fs->sb.block_size, stored = 0;
	sqfs_inode inode;
	uint64_t size;

	if (sqfs_inode_get(fs, &inode, ino_to_id(fs, ino)) != 0 ||
	    !S_ISREG(inode.base.mode | sqfs_mode(inode.base.inode_type)))
		return 0;
	size = inode.xtra.reg.file_size;
	for (uint64_t at = off - off % bs; at < off + len && at < size; at += bs) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
		ssize_t got = read_range(srv, fs, &inode, (off_t)at, bs, out, fill_block, scratch);
		if (got <= 0)
			break;
		bv.buf[0].mem = out;
		bv.buf[0].size = (size_t)got;
		if (fuse_lowlevel_notify_store(srv->se, ino, (off_t)at, &bv, 0) != 0)
			break;
		stored += (size_t)got;
	}
	COUNT(srv, warmed_bytes, stored);
	return stored;
}

/* The lines husk replays; NULL (nothing to do) for another version. */
static struct warm_line *warm_parse(char *text, size_t *n)
{
	struct warm_line *v = NULL;
	size_t cap = 0;
	char *line, *save = NULL;

	*n = 0;
	line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, "husk-warm 1") != 0)
		return NULL;
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct warm_line l = { line[0], line + 2, 0, 0 };
		int at = 0;
		if (line[0] == '\0' || line[1] != ' ' || !strchr("LDR", line[0]))
			continue;
		if (l.kind == 'R') {
			if (sscanf(line + 2, "%llu %llu %n", &l.off, &l.len, &at) != 2 || at <= 0)
				continue;
			l.path = line + 2 + at;
		}
		if (!grow(&v, &cap, *n + 1, sizeof(*v)))
			break;
		v[(*n)++] = l;
	}
	return v;
}

static void *warmer(void *p)
{
	struct warm_arg *a = p;
	struct husk_sqfs_server *srv = a->srv;
	struct sqfs_reader r;
	char *scratch = NULL, *out = NULL, *stack = MAP_FAILED;
	unsigned long long stored = 0;
	struct warm_found f;
	int fds[2] = { -1, -1 }, pidfd = -1;
	size_t bs = 0;
	pid_t pid;

	idle_only();
	if (!(a->lines = warm_parse(a->text, &a->n)) || reader_init(&r, srv->image_fd) != SQFS_OK)
		goto done;
	bs = r.fs.sb.block_size;
	if (!(scratch = husk_hugebuf_get(bs)) || !(out = husk_hugebuf_get(bs)) ||
	    pipe2(fds, O_CLOEXEC) < 0 ||
	    (stack = mmap(NULL, WARM_STACK, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0)) == MAP_FAILED)
		goto done_fs;
	a->pipe_fd = fds[1];
	a->fuse_fd = fuse_session_fd(srv->se);
	/* A pidfd, so that ending the child can never hit another process that
	 * got its pid once the supervisor had reaped it. Without pidfds (before
	 * Linux 5.2) the child is not ended early: it only takes longer. */
	pthread_mutex_lock(&srv->warm_mu);
	pid = -1;
	if (!srv->warm_stopping &&
	    (pid = clone(warm_child, stack + WARM_STACK, CLONE_VM | CLONE_PIDFD | SIGCHLD, a,
	    &pidfd)) < 0 && errno == EINVAL)
		pid = clone(warm_child, stack + WARM_STACK, CLONE_VM | SIGCHLD, a);
	else if (pid > 0)
		srv->warm_pidfd = pidfd;
	pthread_mutex_unlock(&srv->warm_mu);
	close(fds[1]);
	fds[1] = -1;
	if (pid > 0)
		/* EOF: the child is done, or was ended. */
		while (stored < WARM_MAX_BYTES && read(fds[0], &f, sizeof(f)) == (ssize_t)sizeof(f))
			if (f.line < a->n)
				stored += warm_range(srv, &r.fs, (fuse_ino_t)f.ino, a->lines[f.line].off,
					a->lines[f.line].len, scratch, out);
	/* The stack stays mapped: the child may still be on it; it dies with us. */
done_fs:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	husk_hugebuf_put(scratch, bs);
	husk_hugebuf_put(out, bs);
	sqfs_destroy(&r.fs);
done:
	return NULL;
}

void husk_sqfs_server_warm(struct husk_sqfs_server *srv, int root_fd, char *text)
{
	struct warm_arg *a = calloc(1, sizeof(*a));
	pthread_attr_t attr;
	pthread_t t;

	if (!a) {
		close(root_fd);
		free(text);
		return;
	}
	a->srv = srv;
	a->root_fd = root_fd;
	a->text = text;
	/* Kept (with root_fd) for the life of the process: the child reads them. */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	if (pthread_create(&t, &attr, warmer, a) != 0) {
		close(root_fd);
		free(text);
		free(a);
	}
	pthread_attr_destroy(&attr);
}

void husk_sqfs_server_warm_stop(struct husk_sqfs_server *srv)
{
	pthread_mutex_lock(&srv->warm_mu);
	srv->warm_stopping = true;
	if (srv->warm_pidfd >= 0)   /* reaped by the caller, a subreaper */
		syscall(SYS_pidfd_send_signal, srv->warm_pidfd, SIGKILL, NULL, 0);
	pthread_mutex_unlock(&srv->warm_mu);
}

/* As many workers as CPUs we may run on, within [2, 8]. */
static int server_threads(void)
{
	cpu_set_t set;
	int n = 2;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	return n < 2 ? 2 : n > 8 ? 8 : n;
}

/* Start one more worker, with the workers' CPUs. Returns 0 or an errno. */
static int add_worker(struct husk_sqfs_server *srv)
{
	pthread_attr_t attr;
	int e = EAGAIN;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	pthread_mutex_lock(&srv->workers_mu);
	if (srv->cpus_set)
		pthread_attr_setaffinity_np(&attr, sizeof(srv->cpus), &srv->cpus);
	if (srv->n_workers < srv->max_workers &&
	    (e = pthread_create(&srv->workers[srv->n_workers], &attr, serve, srv)) == 0)
		__atomic_add_fetch(&srv->n_workers, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&srv->workers_mu);
	pthread_attr_destroy(&attr);
	return e;
}

int husk_sqfs_server_start(struct husk_sqfs_server *srv, struct husk_err *err)
{
	pthread_attr_t attr;
	int e;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	/* No push-ahead while recording: what the kernel asks then depends on
	 * the command alone, and so does the profile. */
	srv->pushing = !getenv("HUSK_NO_PUSH") && !srv->rec &&
		pthread_create(&srv->loop, &attr, pusher, srv) == 0;
	pthread_attr_destroy(&attr);
	pthread_mutex_init(&srv->workers_mu, NULL);
	srv->max_workers = server_threads();
	if ((e = add_worker(srv)) != 0)
		return husk_err_set(err, e, "cannot start the SquashFS server thread");
	return 0;
}

void husk_sqfs_server_set_cpus(struct husk_sqfs_server *srv, const cpu_set_t *set)
{
	pthread_mutex_lock(&srv->workers_mu);
	srv->cpus = *set;
	srv->cpus_set = true;
	for (int i = 0; i < srv->n_workers; i++)
		pthread_setaffinity_np(srv->workers[i], sizeof(*set), set);
	pthread_mutex_unlock(&srv->workers_mu);
}
