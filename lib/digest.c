/* digest.c: the SHA-256 digest of an image file, with a per-user cache so
 * that a large image is hashed once rather than at every launch of every
 * rank.
 *
 * What is hashed is the open fd, read with pread: a pinned run checks the
 * very file description the SquashFS server reads afterwards, never the path
 * again (a path could be renamed over in between).
 *
 * The cache ($XDG_CACHE_HOME/husk/digests, default ~/.cache/husk/digests;
 * none when neither is set to an absolute path) holds one small file per
 * file version, named after and containing its key: device, inode, size,
 * mtime and ctime, both to the nanosecond. Why a cached digest cannot make a
 * changed file pass:
 *
 *  - Any change of content, through write(2), truncate or a writable mmap,
 *    sets ctime to the current time, and nobody but root (by moving the
 *    system clock) can set ctime back: utimensat(2) and `touch -d` restore
 *    mtime, and in doing so set ctime to now. A new file in a reused inode
 *    has a new ctime too. So a changed file has a new key and misses.
 *  - Timestamps are coarse (a clock tick, or one second on some
 *    filesystems): two writes within one tick can leave ctime unchanged. An
 *    entry is therefore written only for a file whose ctime is at least
 *    CACHE_MIN_AGE in the past when hashing starts; any write after that
 *    moment gets a later ctime. And if the key changed while the file was
 *    being read, the digest is refused, not cached.
 *  - Filesystems whose ctime is not a kernel-kept change time get no cache:
 *    FAT and exFAT (ctime is the creation time) and FUSE (the server says
 *    what it likes; sshfs cannot even see the remote ctime).
 *  - Entries are read only from a directory and files owned by the user and
 *    writable by nobody else, opened without following symlinks, and only
 *    when their content repeats the key exactly: a corrupt, truncated,
 *    foreign or renamed entry is ignored, and rewritten after hashing.
 *    Entries are written under a temporary name and renamed into place, so a
 *    reader sees a whole entry or none, even with many ranks at once.
 *
 * The cache can be deleted at any time. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#ifndef EXFAT_SUPER_MAGIC
#define EXFAT_SUPER_MAGIC 0x2011BAB0
#endif
#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

#define HASH_CHUNK (1 << 20)
#define CACHE_MIN_AGE_NS (2 * 1000000000LL)
#define ENTRY_MAX 512

static long long ns_of(const struct timespec *ts)
{
	return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* ---- hashing --------------------------------------------------------- */

static void to_hex(const unsigned char *md, char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

/* Hash the whole file from offset 0 to end of file through fd. nettle
 * (rather than libcrypto) because husk run loads it on every launch: it costs
 * a tenth of libcrypto's start-up, and its SHA-256 uses the CPU's SHA
 * extensions all the same. */
static int hash_fd(int fd, const char *what, char out[65], struct husk_err *err)
{
	autofree unsigned char *buf = malloc(HASH_CHUNK);
	struct sha256_ctx ctx;
	unsigned char md[SHA256_DIGEST_SIZE];
	off_t off = 0;

	if (!buf)
		return husk_err_set(err, ENOMEM, "image '%s': digest", what);
	sha256_init(&ctx);
	/* A larger read-ahead window for a file read once from start to end. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = pread(fd, buf, HASH_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return husk_err_set(err, errno, "image '%s': reading it for its digest", what);
		if (n == 0)
			break;
		sha256_update(&ctx, (size_t)n, buf);
		off += n;
	}
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, md);
	to_hex(md, out);
	return 0;
}

/* ---- the cache --------------------------------------------------------- */

struct key {
	unsigned long long dev, ino;
	long long size;
	struct timespec mtim, ctim;
};

static void key_of(const struct stat *st, struct key *k)
{
	k->dev = (unsigned long long)st->st_dev;
	k->ino = (unsigned long long)st->st_ino;
	k->size = (long long)st->st_size;
	k->mtim = st->st_mtim;
	k->ctim = st->st_ctim;
}

static bool key_eq(const struct key *a, const struct key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		ns_of(&a->mtim) == ns_of(&b->mtim) && ns_of(&a->ctim) == ns_of(&b->ctim);
}

static void entry_name(const struct key *k, char *buf, size_t size)
{
	snprintf(buf, size, "%llx-%llx-%llx-%llx.%lx-%llx.%lx", k->dev, k->ino,
		(unsigned long long)k->size, (unsigned long long)k->mtim.tv_sec,
		(unsigned long)k->mtim.tv_nsec, (unsigned long long)k->ctim.tv_sec,
		(unsigned long)k->ctim.tv_nsec);
}

/* The entry's text up to the digest; the digest and "\n" follow. */
static void entry_prefix(const struct key *k, char *buf, size_t size)
{
	snprintf(buf, size, "husk-digest 1 dev=%llu ino=%llu size=%lld mtime=%lld.%09ld "
		"ctime=%lld.%09ld sha256=", k->dev, k->ino, k->size, (long long)k->mtim.tv_sec,
		k->mtim.tv_nsec, (long long)k->ctim.tv_sec, k->ctim.tv_nsec);
}

/* Owned by us and writable by nobody else? */
static bool private_to_us(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

/* mkdir -p, new directories 0700 (the XDG base directory rule). */
static int mkdir_p(const char *path)
{
	autofree char *copy = strdup(path);

	if (!copy)
		return -1;
	for (char *p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = c;
		if (!c)
			return 0;
	}
}

static int sub_dir(int parent, const char *name)
{
	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Open (creating it) the cache directory; -1 when there is none to use. */
static int cache_open(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	autofree char *base = NULL;
	autoclose int b = -1, h = -1;
	int d;
	struct stat st;

	if (xdg && xdg[0] == '/')
		base = strdup(xdg);
	else if (home && home[0] == '/')
		base = husk_strdup_printf("%s/.cache", home);
	if (!base)
		return -1;
	if (mkdir_p(base) < 0 || (b = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (h = sub_dir(b, "husk")) < 0 || (d = sub_dir(h, "digests")) < 0) {
		husk_debug("no digest cache under '%s': %s", base, strerror(errno));
		return -1;
	}
	if (fstat(d, &st) < 0 || !private_to_us(&st)) {
		husk_debug("no digest cache: '%s/husk/digests' is not private to this user", base);
		close(d);
		return -1;
	}
	return d;
}

static bool cache_get(int dir, const struct key *k, char out[65])
{
	char name[160], want[ENTRY_MAX], text[ENTRY_MAX + 1];
	autoclose int fd = -1;
	struct stat st;
	size_t plen;
	ssize_t n;

	entry_name(k, name, sizeof(name));
	fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !private_to_us(&st) ||
	    st.st_size > ENTRY_MAX)
		return false;
	n = pread(fd, text, ENTRY_MAX, 0);
	if (n < 0)
		return false;
	text[n] = '\0';
	entry_prefix(k, want, sizeof(want));
	plen = strlen(want);
	if ((size_t)n != plen + 65 || memcmp(text, want, plen) || text[plen + 64] != '\n')
		return false;
	for (size_t i = plen; i < plen + 64; i++)
		if (!text[i] || !strchr("0123456789abcdef", text[i]))
			return false;
	memcpy(out, text + plen, 64);
	out[64] = '\0';
	return true;
}

static void cache_put(int dir, const struct key *k, const char hex[65])
{
	char name[160], tmp[200], text[ENTRY_MAX];
	autoclose int fd = -1;
	int tries = 0;

	entry_name(k, name, sizeof(name));
	entry_prefix(k, text, sizeof(text));
	strcat(text, hex);
	strcat(text, "\n");
	do {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(tmp, sizeof(tmp), ".tmp-%d-%lx", (int)getpid(), (unsigned long)ts.tv_nsec);
		fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	} while (fd < 0 && errno == EEXIST && ++tries < 8);
	if (fd < 0) {
		husk_debug("digest cache: cannot create an entry: %s", strerror(errno));
		return;
	}
	if (husk_write_all(fd, text, strlen(text)) < 0 || renameat(dir, tmp, dir, name) < 0) {
		husk_debug("digest cache: cannot write entry '%s': %s", name, strerror(errno));
		unlinkat(dir, tmp, 0);
	}
}

/* May this file version be cached at all (see the top of the file)? */
static bool cacheable(int fd, const struct stat *st)
{
	struct statfs fs;
	struct timespec now;

	if (fstatfs(fd, &fs) < 0)
		return false;
	switch ((unsigned long)fs.f_type) {
	case MSDOS_SUPER_MAGIC:
	case EXFAT_SUPER_MAGIC:
	case FUSE_SUPER_MAGIC:
		husk_debug("no digest cache: the filesystem keeps no reliable change time");
		return false;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (ns_of(&now) - ns_of(&st->st_ctim) < CACHE_MIN_AGE_NS) {
		husk_debug("no digest cache entry: the file changed less than %lld s ago",
			CACHE_MIN_AGE_NS / 1000000000LL);
		return false;
	}
	return true;
}

int husk_image_digest(int fd, const char *what, char out[65], struct husk_err *err)
{
	struct stat before, after;
	struct key k, k2;
	autoclose int dir = -1;
	bool can_cache;
	double t0 = husk_now_ms();

	if (fstat(fd, &before) < 0)
		return husk_err_set(err, errno, "image '%s'", what);
	if (!S_ISREG(before.st_mode))
		return husk_err_set(err, 0, "image '%s': not a regular file; only an image file has "
			"a digest", what);
	key_of(&before, &k);
	if ((dir = cache_open()) >= 0 && cache_get(dir, &k, out)) {
		husk_info("digest of '%s' from the cache", what);
		return 0;
	}
	can_cache = dir >= 0 && cacheable(fd, &before);
	if (hash_fd(fd, what, out, err) < 0)
		return -1;
	if (fstat(fd, &after) < 0)
		return husk_err_set(err, errno, "image '%s'", what);
	key_of(&after, &k2);
	if (!key_eq(&k, &k2))
		return husk_err_set(err, 0, "image '%s' changed while its digest was computed; try "
			"again once it is complete", what);
	husk_info("digest of '%s' (%lld bytes) computed in %.1f ms", what, k.size,
		husk_now_ms() - t0);
	if (can_cache)
		cache_put(dir, &k, out);
	return 0;
}
