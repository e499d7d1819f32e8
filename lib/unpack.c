/* unpack.c: extracting tar streams (rootfs tars, OCI layers) into the root
 * of an image being built, with OCI whiteouts; the writer used for them and
 * for SquashFS images.
 *
 * An archive is hostile input. Every entry name is normalised and checked
 * lexically (no "..", no leading "/"); its parent directory is then opened
 * from the root one component at a time with O_NOFOLLOW, so a symlink that
 * an earlier entry or layer left (a -> /etc, then a/passwd) is an error, never
 * a way out; and the entry itself is made with O_EXCL and O_NOFOLLOW once
 * whatever held its name is removed, so nothing is ever written through a
 * symlink. libarchive's archive_write_disk is not used: its SECURE_SYMLINKS
 * check works on paths from the current directory, which would mean a chdir
 * into the root (process-wide state) and still a check-then-use race.
 *
 * Whiteouts (OCI image spec, layer.md) hide what lower layers left: a set of
 * the paths this layer has written, with their ancestors, tells what a
 * whiteout may remove, so the order of entries within a layer does not
 * matter. */
#include "husk_config.h"
#include "husk.h"
#include "unpack.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"

/* "what: entry 'path': ..." keeps the caller's file:line for -v. */
#define entry_err(w, err, path, errnum, fmt, ...) \
	husk_err_set((err), (errnum), "%s: entry '%s': " fmt, (w)->what, (path), ##__VA_ARGS__)

/* ---- sets of paths, and of file identities ---------------------------- */

struct husk_pathset {
	char **slot;
	size_t cap, n;
};

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;

	while (n--)   /* FNV-1a */
		h = (h ^ *s++) * 1099511628211ULL;
	return h;
}

static char **pathset_slot(struct husk_pathset *ps, const char *s)
{
	size_t i = hash_bytes(s, strlen(s), 14695981039346656037ULL) & (ps->cap - 1);

	while (ps->slot[i] && strcmp(ps->slot[i], s))
		i = (i + 1) & (ps->cap - 1);
	return &ps->slot[i];
}

static bool pathset_has(struct husk_pathset *ps, const char *s)
{
	return *pathset_slot(ps, s) != NULL;
}

static int pathset_add(struct husk_pathset *ps, const char *s)
{
	char **slot;

	if (2 * (ps->n + 1) > ps->cap) {
		struct husk_pathset bigger = { calloc(ps->cap * 2, sizeof(char *)), ps->cap * 2, ps->n };
		if (!bigger.slot)
			return -1;
		for (size_t i = 0; i < ps->cap; i++)
			if (ps->slot[i])
				*pathset_slot(&bigger, ps->slot[i]) = ps->slot[i];
		free(ps->slot);
		*ps = bigger;
	}
	slot = pathset_slot(ps, s);
	if (*slot)
		return 0;
	if (!(*slot = strdup(s)))
		return -1;
	ps->n++;
	return 0;
}

static struct husk_pathset *pathset_new(void)
{
	struct husk_pathset *ps = calloc(1, sizeof(*ps));

	if (ps && !(ps->slot = calloc(ps->cap = 256, sizeof(char *)))) {
		free(ps);
		return NULL;
	}
	return ps;
}

static void pathset_free(struct husk_pathset *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->slot[i]);
	free(ps->slot);
	free(ps);
}

struct husk_linkmap {
	struct linkmap_slot { uint64_t dev, ino; char *path; } *slot;
	size_t cap, n;
};

static struct linkmap_slot *linkmap_slot(struct husk_linkmap *m, uint64_t dev, uint64_t ino)
{
	uint64_t key[2] = { dev, ino };
	size_t i = hash_bytes(key, sizeof(key), 14695981039346656037ULL) & (m->cap - 1);

	while (m->slot[i].path && (m->slot[i].dev != dev || m->slot[i].ino != ino))
		i = (i + 1) & (m->cap - 1);
	return &m->slot[i];
}

struct husk_linkmap *husk_linkmap_new(void)
{
	struct husk_linkmap *m = calloc(1, sizeof(*m));

	if (m && !(m->slot = calloc(m->cap = 64, sizeof(*m->slot)))) {
		free(m);
		return NULL;
	}
	return m;
}

void husk_linkmap_free(struct husk_linkmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slot[i].path);
	free(m->slot);
	free(m);
}

const char *husk_linkmap_get(struct husk_linkmap *m, uint64_t dev, uint64_t ino)
{
	return linkmap_slot(m, dev, ino)->path;
}

int husk_linkmap_put(struct husk_linkmap *m, uint64_t dev, uint64_t ino, const char *path)
{
	struct linkmap_slot *s;

	if (2 * (m->n + 1) > m->cap) {
		struct husk_linkmap bigger = { calloc(m->cap * 2, sizeof(*m->slot)), m->cap * 2, m->n };
		if (!bigger.slot)
			return -1;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slot[i].path)
				*linkmap_slot(&bigger, m->slot[i].dev, m->slot[i].ino) = m->slot[i];
		free(m->slot);
		*m = bigger;
	}
	s = linkmap_slot(m, dev, ino);
	if (s->path)
		return 0;
	if (!(s->path = strdup(path)))
		return -1;
	s->dev = dev;
	s->ino = ino;
	m->n++;
	return 0;
}

/* ---- directories -------------------------------------------------------- */

/* The names in the directory open on fd (any kind of fd), without "." and "..". */
static char **list_names(int fd, size_t *count)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return NULL;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 2 > cap) {
			char **more = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(char *));
			if (!more)
				goto fail;
			names = more;
		}
		if (!(names[n] = strdup(de->d_name)))
			goto fail;
		names[++n] = NULL;
		errno = 0;
	}
	if (errno)
		goto fail;
	closedir(d);
	if (!names)
		names = calloc(1, sizeof(char *));
	*count = n;
	return names;
fail:
	{
		int e = errno ? errno : ENOMEM;
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		closedir(d);
		errno = e;
		return NULL;
	}
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int husk_remove_tree(int dirfd, const char *name)
{
	struct stat st;
	autoclose int fd = -1;
	char **names;
	size_t n;
	int ret = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	/* Without CAP_DAC_OVERRIDE (a plain user), a read-only directory would
	 * keep its entries; it is ours, so open it up first. */
	if ((st.st_mode & S_IRWXU) != S_IRWXU)
		(void)fchmod(fd, (st.st_mode | S_IRWXU) & 07777);
	if (!(names = list_names(fd, &n)))
		return -1;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = husk_remove_tree(fd, names[i]);
	free_names(names, n);
	if (ret == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

char *husk_mkdtempat(int dirfd, const char *prefix)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";

	for (int tries = 0; tries < 64; tries++) {
		unsigned char rnd[8];
		char suffix[sizeof(rnd) + 1], *name;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return NULL;
		for (size_t i = 0; i < sizeof(rnd); i++)
			suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
		suffix[sizeof(rnd)] = '\0';
		if (!(name = husk_strdup_printf("%s-%s", prefix, suffix)))
			return NULL;
		if (mkdirat(dirfd, name, 0700) == 0)
			return name;
		free(name);
		if (errno != EEXIST)
			return NULL;
	}
	errno = EEXIST;
	return NULL;
}

/* ---- entry paths ---------------------------------------------------------- */

/* Normalise an entry path into out ("./a//b/" -> "a/b", "./" -> "").
 * Returns NULL with *why set when the path must be refused. */
static const char *entry_norm(const char *raw, char *out, size_t size, const char **why)
{
	const char *p = raw;
	size_t n = 0;

	if (*raw == '/') {
		*why = "absolute path (names in an archive are relative to its root)";
		return NULL;
	}
	while (*p) {
		const char *c = p;
		size_t len;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - c);
		while (*p == '/')
			p++;
		if (len == 0 || (len == 1 && c[0] == '.'))
			continue;
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			*why = "a '..' component would leave the root";
			return NULL;
		}
		if (len > NAME_MAX || n + len + 2 > size) {
			*why = "name too long";
			return NULL;
		}
		if (n)
			out[n++] = '/';
		memcpy(out + n, c, len);
		n += len;
	}
	out[n] = '\0';
	return out;
}

static bool norm_or_err(struct husk_wr *w, const char *raw, char *out, struct husk_err *err)
{
	const char *why;

	if (entry_norm(raw, out, PATH_MAX, &why))
		return true;
	entry_err(w, err, raw, 0, "%s", why);
	husk_err_hint(err, "the archive is malformed or hostile");
	return false;
}

bool husk_link_climbs(const char *rel, const char *target)
{
	long depth = 0;
	const char *p;

	for (p = rel; *p; p++)   /* the link's directory is this deep */
		depth += *p == '/';
	for (p = target; *p;) {
		const char *c = p;
		size_t len;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - c);
		while (*p == '/')
			p++;
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (len && !(len == 1 && c[0] == '.')) {
			depth++;
		}
	}
	return false;
}

/* ---- the writer -------------------------------------------------------------- */

int husk_wr_init(struct husk_wr *w, int root_fd, const char *what, bool whiteouts,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	memset(w, 0, sizeof(*w));
	w->root_fd = root_fd;
	w->what = what ? what : "archive";
	w->stats = stats;
	w->cache_fd = -1;
	if (whiteouts && !(w->layer = pathset_new()))
		return husk_err_set(err, ENOMEM, "%s", w->what);
	return 0;
}

void husk_wr_free(struct husk_wr *w)
{
	for (size_t i = 0; i < w->n_dirs; i++)
		free(w->dirs[i].path);
	free(w->dirs);
	pathset_free(w->layer);
	free(w->cache_path);
	if (w->cache_fd >= 0)
		close(w->cache_fd);
	memset(w, 0, sizeof(*w));
	w->cache_fd = -1;
}

/* Open the directory rel[0..len) under root_fd (O_PATH), one component at a
 * time, never following a symlink; with create, missing components are made
 * (mode 0755). On failure errno is set (ELOOP for a symlink, ENOTDIR for
 * another non-directory) and *bad is the length of the prefix that failed. */
static int walk(int root_fd, const char *rel, size_t len, bool create, size_t *bad)
{
	int fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
	size_t i = 0;

	*bad = 0;
	while (fd >= 0 && i < len) {
		char name[NAME_MAX + 1];
		size_t j = i;
		int next, e;
		struct stat st;

		while (j < len && rel[j] != '/')
			j++;
		if (j - i > NAME_MAX) {
			next = -1;
			errno = ENAMETOOLONG;
		} else {
			memcpy(name, rel + i, j - i);
			name[j - i] = '\0';
			next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0 && errno == ENOENT && create &&
		    (mkdirat(fd, name, 0755) == 0 || errno == EEXIST)) {
			/* A parent the archive does not list: 0755 whatever the umask. */
			next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (next >= 0)
				(void)fchmod(next, 0755);
		}
		if (next < 0 && (errno == ENOTDIR || errno == ELOOP))
			errno = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
		e = errno;
		close(fd);
		if (next < 0) {
			*bad = j;
			errno = e;
			return -1;
		}
		fd = next;
		i = j + 1;
	}
	return fd;
}

/* A new fd on the parent directory of rel; *name is rel's last component.
 * The last parent is cached: archives list a directory's entries together.
 * Every removal is of a child of the parent just opened, so the cached
 * directory itself is never removed while cached. */
static int open_parent(struct husk_wr *w, const char *raw, const char *rel, bool create,
	const char **name, struct husk_err *err)
{
	const char *slash = strrchr(rel, '/');
	size_t len = slash ? (size_t)(slash - rel) : 0, bad = 0;
	int fd, e;

	*name = slash ? slash + 1 : rel;
	if (w->cache_fd >= 0 && strlen(w->cache_path) == len && !strncmp(w->cache_path, rel, len))
		fd = fcntl(w->cache_fd, F_DUPFD_CLOEXEC, 3);
	else
		fd = walk(w->root_fd, rel, len, create, &bad);
	if (fd < 0) {
		e = errno;
		if (errno == ELOOP) {
			entry_err(w, err, raw, 0, "'%.*s' is a symbolic link in the root; refusing to "
				"write through it", (int)bad, rel);
			husk_err_hint(err, "the archive is malformed or hostile");
		} else if (errno == ENOTDIR) {
			entry_err(w, err, raw, 0, "'%.*s' is not a directory", (int)bad, rel);
		} else {
			entry_err(w, err, raw, errno, "cannot open directory '%.*s'", (int)bad, rel);
		}
		errno = e;   /* ENOENT tells a caller that there is nothing there */
		return -1;
	}
	if (w->cache_path && strlen(w->cache_path) == len && !strncmp(w->cache_path, rel, len))
		return fd;
	free(w->cache_path);
	if (w->cache_fd >= 0)
		close(w->cache_fd);
	w->cache_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	w->cache_path = strndup(rel, len);
	if (!w->cache_path && w->cache_fd >= 0) {
		close(w->cache_fd);
		w->cache_fd = -1;
	}
	return fd;
}

/* Make room for name in dirfd. Returns 1 when a directory is there and
 * keep_dir, 0 when the name is free (what held it is removed, a directory
 * with its contents), -1 with errno. */
static int clear_leaf(int dirfd, const char *name, bool keep_dir)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(st.st_mode) && keep_dir)
		return 1;
	return husk_remove_tree(dirfd, name);
}

/* Remember that this layer wrote rel (and so its ancestors): whiteouts of the
 * same layer leave it alone. */
static int mark(struct husk_wr *w, const char *rel)
{
	char buf[PATH_MAX];
	char *slash;

	if (!w->layer)
		return 0;
	snprintf(buf, sizeof(buf), "%s", rel);
	for (;;) {
		if (pathset_has(w->layer, buf))
			return 0;
		if (pathset_add(w->layer, buf) < 0)
			return -1;
		if (!(slash = strrchr(buf, '/')))
			return pathset_has(w->layer, "") ? 0 : pathset_add(w->layer, "");
		*slash = '\0';
	}
}

static int written(struct husk_wr *w, const char *raw, const char *rel, struct husk_err *err)
{
	if (mark(w, rel) < 0)
		return entry_err(w, err, raw, ENOMEM, "cannot record it");
	w->stats->entries++;
	return 0;
}

static int not_root(struct husk_wr *w, const char *raw, const char *rel, struct husk_err *err)
{
	if (*rel)
		return 0;
	entry_err(w, err, raw, 0, "names the root, which can only be a directory");
	husk_err_hint(err, "the archive is malformed or hostile");
	return -1;
}

int husk_wr_dir(struct husk_wr *w, const char *path, mode_t perm,
	const struct timespec *mtime, struct husk_err *err)
{
	char rel[PATH_MAX];
	const char *name;
	autoclose int pfd = -1;
	struct husk_wr_dir *d;
	int r;

	if (!norm_or_err(w, path, rel, err))
		return -1;
	if (!*rel)   /* "./": the root keeps the mode the build gave it */
		return 0;
	if ((pfd = open_parent(w, path, rel, true, &name, err)) < 0)
		return -1;
	/* 0700 until husk_wr_finish: the entries inside must still be written. */
	if ((r = clear_leaf(pfd, name, true)) < 0 || (r == 0 && mkdirat(pfd, name, 0700) < 0))
		return entry_err(w, err, path, errno, "cannot make the directory");
	if (w->n_dirs == w->cap_dirs) {
		size_t cap = w->cap_dirs ? 2 * w->cap_dirs : 64;
		struct husk_wr_dir *more = realloc(w->dirs, cap * sizeof(*more));
		if (!more)
			return entry_err(w, err, path, ENOMEM, "cannot record it");
		w->dirs = more;
		w->cap_dirs = cap;
	}
	d = &w->dirs[w->n_dirs];
	if (!(d->path = strdup(rel)))
		return entry_err(w, err, path, ENOMEM, "cannot record it");
	d->seq = w->n_dirs++;
	d->perm = perm & 07777;
	d->has_mtime = mtime != NULL;
	if (mtime)
		d->mtime = *mtime;
	return written(w, path, rel, err);
}

int husk_wr_file_open(struct husk_wr *w, const char *path, int *fd, struct husk_err *err)
{
	char rel[PATH_MAX];
	const char *name;
	autoclose int pfd = -1;

	*fd = -1;
	if (!norm_or_err(w, path, rel, err) || not_root(w, path, rel, err) < 0)
		return -1;
	if ((pfd = open_parent(w, path, rel, true, &name, err)) < 0)
		return -1;
	if (clear_leaf(pfd, name, false) < 0)
		return entry_err(w, err, path, errno, "cannot replace what is there");
	*fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return entry_err(w, err, path, errno, "cannot create the file");
	return written(w, path, rel, err);
}

static void times_of(struct timespec ts[2], const struct timespec *mtime)
{
	if (mtime) {
		ts[0] = ts[1] = *mtime;   /* atime = mtime: nothing depends on when we ran */
	} else {
		ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
		ts[0].tv_sec = ts[1].tv_sec = 0;
	}
}

int husk_wr_file_close(struct husk_wr *w, const char *path, int fd, mode_t perm,
	const struct timespec *mtime, struct husk_err *err)
{
	struct timespec ts[2];
	int ret = 0;

	times_of(ts, mtime);
	/* fchmod after the data: a write by a process without CAP_FSETID clears
	 * the setuid and setgid bits. */
	if (fchmod(fd, perm & 07777) < 0 || futimens(fd, ts) < 0)
		ret = entry_err(w, err, path, errno, "cannot set its mode and time");
	if (close(fd) < 0 && ret == 0)
		ret = entry_err(w, err, path, errno, "cannot write the file");
	return ret;
}

int husk_wr_symlink(struct husk_wr *w, const char *path, const char *target,
	const struct timespec *mtime, struct husk_err *err)
{
	char rel[PATH_MAX];
	const char *name;
	autoclose int pfd = -1;
	struct timespec ts[2];

	if (!norm_or_err(w, path, rel, err) || not_root(w, path, rel, err) < 0)
		return -1;
	if (!*target)
		return entry_err(w, err, path, 0, "symbolic link with an empty target");
	/* An absolute target is resolved inside the container when used; a
	 * relative one that climbs above the root can only be a trap. */
	if (target[0] != '/' && husk_link_climbs(rel, target)) {
		entry_err(w, err, path, 0, "symbolic link target '%s' leads out of the root", target);
		husk_err_hint(err, "the archive is malformed or hostile");
		return -1;
	}
	if ((pfd = open_parent(w, path, rel, true, &name, err)) < 0)
		return -1;
	if (clear_leaf(pfd, name, false) < 0)
		return entry_err(w, err, path, errno, "cannot replace what is there");
	if (symlinkat(target, pfd, name) < 0)
		return entry_err(w, err, path, errno, "cannot make the symbolic link");
	times_of(ts, mtime);
	if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return entry_err(w, err, path, errno, "cannot set its time");
	return written(w, path, rel, err);
}

int husk_wr_hardlink(struct husk_wr *w, const char *path, const char *target,
	struct husk_err *err)
{
	char rel[PATH_MAX], trel[PATH_MAX];
	const char *name, *tname, *why = "it names the root";
	autoclose int pfd = -1;
	autoclose int tfd = -1;
	struct stat st;

	if (!norm_or_err(w, path, rel, err) || not_root(w, path, rel, err) < 0)
		return -1;
	if (!entry_norm(target, trel, sizeof(trel), &why) || !*trel) {
		entry_err(w, err, path, 0, "hard link target '%s': %s", target, why);
		husk_err_hint(err, "the archive is malformed or hostile");
		return -1;
	}
	if (!strcmp(rel, trel))
		return 0;
	if ((tfd = open_parent(w, path, trel, false, &tname, err)) < 0 && errno != ENOENT)
		return -1;
	if (tfd < 0 || fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		entry_err(w, err, path, 0, "hard link target '%s' does not exist", target);
		husk_err_hint(err, "a hard link must come after its target in the archive");
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return entry_err(w, err, path, 0, "hard link target '%s' is a directory", target);
	if ((pfd = open_parent(w, path, rel, true, &name, err)) < 0)
		return -1;
	if (clear_leaf(pfd, name, false) < 0)
		return entry_err(w, err, path, errno, "cannot replace what is there");
	if (linkat(tfd, tname, pfd, name, 0) < 0)
		return entry_err(w, err, path, errno, "cannot make a hard link to '%s'", target);
	return written(w, path, rel, err);
}

int husk_wr_fifo(struct husk_wr *w, const char *path, mode_t perm,
	const struct timespec *mtime, struct husk_err *err)
{
	char rel[PATH_MAX];
	const char *name;
	autoclose int pfd = -1;
	autoclose int fd = -1;
	struct timespec ts[2];

	if (!norm_or_err(w, path, rel, err) || not_root(w, path, rel, err) < 0)
		return -1;
	if ((pfd = open_parent(w, path, rel, true, &name, err)) < 0)
		return -1;
	if (clear_leaf(pfd, name, false) < 0)
		return entry_err(w, err, path, errno, "cannot replace what is there");
	if (mkfifoat(pfd, name, 0600) < 0)
		return entry_err(w, err, path, errno, "cannot make the FIFO");
	/* Opening a FIFO to read with O_NONBLOCK does not wait for a writer;
	 * the fd then sets mode and time on what we made, not on a symlink. */
	times_of(ts, mtime);
	if ((fd = openat(pfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fchmod(fd, perm & 07777) < 0 || futimens(fd, ts) < 0)
		return entry_err(w, err, path, errno, "cannot set its mode and time");
	return written(w, path, rel, err);
}

void husk_wr_skip(struct husk_wr *w, const char *path)
{
	if (w->stats->skipped++ == 0)
		snprintf(w->stats->first_skipped, sizeof(w->stats->first_skipped), "%s", path);
}

/* Remove what lower layers left in the directory dirfd (rel): entries this
 * layer did not write go, directories it wrote into are pruned in turn. */
static int prune(struct husk_wr *w, int dirfd, const char *rel)
{
	char **names;
	size_t n;
	int ret = 0;

	if (!(names = list_names(dirfd, &n)))
		return -1;
	for (size_t i = 0; i < n && ret == 0; i++) {
		autofree char *child = *rel ? husk_strdup_printf("%s/%s", rel, names[i]) :
			strdup(names[i]);
		struct stat st;

		if (!child) {
			errno = ENOMEM;
			ret = -1;
		} else if (!pathset_has(w->layer, child)) {
			ret = husk_remove_tree(dirfd, names[i]);
		} else if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			   S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd, names[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			ret = cfd < 0 ? -1 : prune(w, cfd, child);
			if (cfd >= 0)
				close(cfd);
		}
	}
	free_names(names, n);
	return ret;
}

int husk_wr_whiteout(struct husk_wr *w, const char *path, struct husk_err *err)
{
	char rel[PATH_MAX], target[PATH_MAX];
	const char *base, *name, *marker;
	autoclose int pfd = -1;
	struct stat st;
	size_t dlen;
	bool opaque;

	if (!w->layer)
		return 0;
	if (!norm_or_err(w, path, rel, err))
		return -1;
	base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	if (strncmp(base, WHITEOUT, strlen(WHITEOUT)))
		return 0;
	dlen = (size_t)(base - rel);   /* "dir/" or "" */
	name = base + strlen(WHITEOUT);
	opaque = !strcmp(base, OPAQUE);
	if (!opaque && !strncmp(name, WHITEOUT, strlen(WHITEOUT)))
		return 1;   /* other ".wh..wh." names are aufs bookkeeping: nothing to do */
	if (!opaque && (!*name || !strcmp(name, ".") || !strcmp(name, ".."))) {
		entry_err(w, err, path, 0, "whiteout of no valid name");
		husk_err_hint(err, "the archive is malformed or hostile");
		return -1;
	}
	if ((pfd = open_parent(w, path, rel, false, &marker, err)) < 0)
		return errno == ENOENT ? 1 : -1;   /* nothing below to hide */
	if (opaque) {
		snprintf(target, sizeof(target), "%.*s", dlen ? (int)dlen - 1 : 0, rel);
		if (prune(w, pfd, target) < 0)
			return entry_err(w, err, path, errno, "cannot empty the opaque directory");
		return 1;
	}
	snprintf(target, sizeof(target), "%.*s%s", (int)dlen, rel, name);
	if (!pathset_has(w->layer, target)) {
		if (husk_remove_tree(pfd, name) < 0)
			return entry_err(w, err, path, errno, "cannot remove '%s'", target);
	} else if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		/* Written by this very layer: only what lower layers put inside goes. */
		autoclose int cfd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0 || prune(w, cfd, target) < 0)
			return entry_err(w, err, path, errno, "cannot remove '%s'", target);
	}
	return 1;
}

static int cmp_dirs(const void *a, const void *b)
{
	const struct husk_wr_dir *x = a, *y = b;
	int c = strcmp(y->path, x->path);

	return c ? c : (x->seq < y->seq) - (x->seq > y->seq);
}

/* Set one directory's mode and mtime. One that a later entry replaced is
 * left alone. */
static int finish_dir(struct husk_wr *w, const struct husk_wr_dir *d, struct husk_err *err)
{
	const char *slash = strrchr(d->path, '/');
	size_t len = slash ? (size_t)(slash - d->path) : 0, bad;
	autoclose int pfd = walk(w->root_fd, d->path, len, false, &bad);
	autoclose int fd = -1;
	struct timespec ts[2];

	if (pfd < 0)
		return 0;
	fd = openat(pfd, slash ? slash + 1 : d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 :
			husk_err_set(err, errno, "%s: directory '%s'", w->what, d->path);
	times_of(ts, d->has_mtime ? &d->mtime : NULL);
	if (fchmod(fd, d->perm) < 0 || futimens(fd, ts) < 0)
		return husk_err_set(err, errno, "%s: directory '%s': cannot set its mode and time",
			w->what, d->path);
	return 0;
}

int husk_wr_finish(struct husk_wr *w, struct husk_err *err)
{
	/* Reverse order of names puts a directory's descendants before it, so
	 * a directory that becomes read-only (or unsearchable) is done last;
	 * for a directory listed twice the last listing wins. */
	if (w->n_dirs)
		qsort(w->dirs, w->n_dirs, sizeof(*w->dirs), cmp_dirs);
	for (size_t i = 0; i < w->n_dirs; i++) {
		if (i > 0 && !strcmp(w->dirs[i].path, w->dirs[i - 1].path))
			continue;
		if (finish_dir(w, &w->dirs[i], err) < 0)
			return -1;
	}
	return 0;
}

/* ---- tar streams ------------------------------------------------------------- */

struct reader {
	int fd;
	EVP_MD_CTX *md;
	char buf[64 * 1024];
};

static la_ssize_t reader_read(struct archive *a, void *data, const void **out)
{
	struct reader *r = data;
	ssize_t n;

	do
		n = read(r->fd, r->buf, sizeof(r->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "read error");
		return -1;
	}
	if (r->md && n > 0 && !EVP_DigestUpdate(r->md, r->buf, (size_t)n)) {
		archive_set_error(a, ENOMEM, "cannot hash");
		return -1;
	}
	*out = r->buf;
	return n;
}

/* Hash what follows the end of the archive too: the digest covers the file. */
static int drain(struct reader *r)
{
	for (;;) {
		ssize_t n = read(r->fd, r->buf, sizeof(r->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		if (!EVP_DigestUpdate(r->md, r->buf, (size_t)n)) {
			errno = ENOMEM;
			return -1;
		}
	}
}

static int extract_file(struct husk_wr *w, struct archive *a, struct archive_entry *e,
	const char *path, mode_t perm, const struct timespec *mtime, struct husk_err *err)
{
	int fd;

	if (husk_wr_file_open(w, path, &fd, err) < 0)
		return -1;
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &size, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			entry_err(w, err, path, 0, "corrupt or truncated archive: %s",
				archive_error_string(a));
			close(fd);
			return -1;
		}
		for (size_t done = 0; done < size;) {
			ssize_t k = pwrite(fd, (const char *)buf + done, size - done, off + (off_t)done);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				entry_err(w, err, path, errno, "cannot write the file");
				close(fd);
				return -1;
			}
			done += (size_t)k;
		}
		w->stats->bytes += size;
	}
	/* A sparse file may end in a hole. */
	if (archive_entry_size_is_set(e) && ftruncate(fd, archive_entry_size(e)) < 0) {
		entry_err(w, err, path, errno, "cannot write the file");
		close(fd);
		return -1;
	}
	return husk_wr_file_close(w, path, fd, perm, mtime, err);
}

static int extract_entry(struct husk_wr *w, struct archive *a, struct archive_entry *e,
	struct husk_err *err)
{
	const char *path = archive_entry_pathname(e), *link;
	mode_t perm = archive_entry_perm(e);
	struct timespec ts, *mtime = NULL;
	int r;

	if (!path)
		return husk_err_set(err, 0, "%s: an entry has no name, or one that cannot be decoded",
			w->what);
	if (archive_entry_mtime_is_set(e)) {
		ts.tv_sec = archive_entry_mtime(e);
		ts.tv_nsec = archive_entry_mtime_nsec(e);
		mtime = &ts;
	}
	if ((r = husk_wr_whiteout(w, path, err)) != 0)
		return r < 0 ? -1 : 0;
	if ((link = archive_entry_hardlink(e)))
		return husk_wr_hardlink(w, path, link, err);
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return extract_file(w, a, e, path, perm, mtime, err);
	case AE_IFDIR:
		return husk_wr_dir(w, path, perm, mtime, err);
	case AE_IFLNK:
		link = archive_entry_symlink(e);
		return husk_wr_symlink(w, path, link ? link : "", mtime, err);
	case AE_IFIFO:
		return husk_wr_fifo(w, path, perm, mtime, err);
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFSOCK:
		husk_wr_skip(w, path);
		return 0;
	default:
		return entry_err(w, err, path, 0, "unknown file type");
	}
}

int husk_unpack_tar_md(int root_fd, int archive_fd, bool whiteouts, const char *what,
	struct husk_unpack_stats *stats, EVP_MD_CTX *md, bool *compressed, struct husk_err *err)
{
	struct archive *a = archive_read_new();
	autofree struct reader *rd = malloc(sizeof(*rd));
	struct archive_entry *e;
	struct husk_wr w;
	char last[256] = "";
	int ret = -1;

	if (!what)
		what = "archive";
	if (!a || !rd || husk_wr_init(&w, root_fd, what, whiteouts, stats, err) < 0) {
		if (a)
			archive_read_free(a);
		return husk_err_set(err, ENOMEM, "%s", what);
	}
	rd->fd = archive_fd;
	rd->md = md;
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open(a, rd, NULL, reader_read, NULL) != ARCHIVE_OK) {
		husk_err_set(err, 0, "%s: not a tar archive (%s)", what, archive_error_string(a));
		husk_err_hint(err, "give a tar archive, optionally compressed (gzip, xz, zstd, ...)");
		goto out;
	}
	for (;;) {
		int r = archive_read_next_header(a, &e);

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			if (*last)
				husk_err_set(err, 0, "%s: corrupt or truncated archive after entry '%s': %s",
					what, last, archive_error_string(a));
			else
				husk_err_set(err, 0, "%s: corrupt or truncated archive: %s", what,
					archive_error_string(a));
			goto out;
		}
		if (extract_entry(&w, a, e, err) < 0)
			goto out;
		snprintf(last, sizeof(last), "%s", archive_entry_pathname(e));
	}
	if (md && drain(rd) < 0) {
		husk_err_set(err, errno, "%s: read error", what);
		goto out;
	}
	if (compressed)
		*compressed = archive_filter_count(a) > 1;
	ret = husk_wr_finish(&w, err);
out:
	husk_wr_free(&w);
	archive_read_free(a);
	return ret;
}

int husk_unpack_tar(int root_fd, int archive_fd, bool whiteouts, const char *what,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	return husk_unpack_tar_md(root_fd, archive_fd, whiteouts, what, stats, NULL, NULL, err);
}
