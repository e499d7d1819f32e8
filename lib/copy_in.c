/* copy_in.c: copying host files and trees into the root of an image being
 * built: a directory build source, and the recipe's COPY.
 *
 * The source is the user's own host tree and is copied as it is: symlinks
 * inside it are copied as symlinks, never followed. The destination is an
 * image that may already hold hostile symlinks (FROM a downloaded image), so
 * every directory of the copy is resolved by husk_resolve_create, which
 * follows the image's symlinks the way the container will see them but never
 * out of the root, and every file is then made by name in that directory,
 * with O_EXCL and O_NOFOLLOW, after a file or symlink holding the name is
 * removed: nothing is written through a symlink. */
#include "husk_config.h"
#include "husk.h"
#include "unpack.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* Each level holds two fds (source and destination directory). */
#define MAX_DEPTH 200

struct copy {
	int root_fd;
	struct husk_unpack_stats *stats;
	struct husk_linkmap *links;   /* multiply-linked source files -> their copy */
	struct stat root;             /* the root being built is never copied into itself */
};

#define src_err(err, host, errnum, fmt, ...) \
	husk_err_set((err), (errnum), "cannot copy '%s' into the image" fmt, (host), ##__VA_ARGS__)
#define dst_err(err, host, cpath, errnum, fmt, ...) \
	husk_err_set((err), (errnum), "cannot copy '%s' into the image: '%s'" fmt, (host), (cpath), \
		##__VA_ARGS__)

static int copy_tree(struct copy *c, int sfd, const char *host, const char *cpath, int dfd,
	int depth, struct husk_err *err);

static char *join(const char *dir, const char *name)
{
	return husk_strdup_printf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
}

/* Make room for name in dfd: a file or symlink there goes, a directory stays
 * and is an error. */
static int clear_name(int dfd, const char *name, const char *host, const char *cpath,
	struct husk_err *err)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : dst_err(err, host, cpath, errno, "");
	if (S_ISDIR(st.st_mode))
		return dst_err(err, host, cpath, 0, " is a directory in the image; only a "
			"directory can be copied onto it");
	if (unlinkat(dfd, name, 0) < 0)
		return dst_err(err, host, cpath, errno, ": cannot replace it");
	return 0;
}

/* Make the directories of cpath one at a time, each made 0755 whatever the
 * umask (a user's 077 must not leave an image whose directories only root
 * can enter). *created tells whether the last one was made. */
static int make_dirs(struct copy *c, const char *cpath, bool *created)
{
	autofree char *prefix = strdup(cpath);
	char *p = prefix;
	int fd = -1;

	if (!prefix)
		return -1;
	do {
		autoclose int mfd = -1;
		char *slash = strchr(p + 1, '/');

		if (slash)
			*slash = '\0';
		if (fd >= 0)
			close(fd);
		if ((fd = husk_resolve_create(c->root_fd, prefix, false, NULL, -1, created)) < 0)
			return -1;
		if (*created && ((mfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
				 fchmod(mfd, 0755) < 0)) {
			close(fd);
			return -1;
		}
		if (slash)
			*slash = '/';
		p = slash;
	} while (p);
	return fd;
}

/* The directory cpath in the image, made if missing (with its parents), as
 * an O_PATH fd; *created when it was. */
static int resolve_dir(struct copy *c, const char *cpath, const char *host, bool *created,
	struct husk_err *err)
{
	int fd = make_dirs(c, cpath, created);
	struct stat st;

	if (fd < 0)
		return dst_err(err, host, cpath, errno, "");
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
		return dst_err(err, host, cpath, 0, " exists in the image and is not a directory");
	}
	return fd;
}

static int set_times_mode(int fd, const struct stat *st)
{
	struct timespec ts[2] = { st->st_mtim, st->st_mtim };

	return fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, ts) < 0 ? -1 : 0;
}

static int copy_data(int in, int out, unsigned long long *bytes)
{
	bool range = true;
	char buf[128 * 1024];

	for (;;) {
		ssize_t n;

		if (range) {
			n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
			/* Across filesystems (EXDEV since Linux 5.19) and on old
			 * kernels: read and write. */
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP || errno == EBADF)) {
				range = false;
				continue;
			}
		} else {
			n = read(in, buf, sizeof(buf));
			if (n > 0 && husk_write_all(out, buf, (size_t)n) < 0)
				return -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		*bytes += (unsigned long long)n;
	}
}

/* A hard link to the copy already made of the same source file. */
static int link_to_first(struct copy *c, const char *first, int dfd, const char *name,
	const char *host, const char *cpath, struct husk_err *err)
{
	const char *slash = strrchr(first, '/');   /* first is absolute */
	autofree char *dir = strndup(first, slash > first ? (size_t)(slash - first) : 1);
	autoclose int pfd = -1;

	if (!dir || (pfd = husk_resolve(c->root_fd, dir, O_PATH | O_DIRECTORY)) < 0)
		return dst_err(err, host, cpath, errno, ": cannot link it to '%s'", first);
	if (clear_name(dfd, name, host, cpath, err) < 0)
		return -1;
	if (linkat(pfd, slash + 1, dfd, name, 0) < 0)
		return dst_err(err, host, cpath, errno, ": cannot link it to '%s'", first);
	c->stats->entries++;
	return 0;
}

/* Copy the regular file open on in to name in dfd (cpath in the image). */
static int copy_file(struct copy *c, int in, const char *host, int dfd, const char *name,
	const char *cpath, struct husk_err *err)
{
	struct stat st;
	autoclose int out = -1;

	if (fstat(in, &st) < 0)
		return src_err(err, host, errno, "");
	if (!S_ISREG(st.st_mode))
		return src_err(err, host, 0, ": it changed while being copied");
	if (st.st_nlink > 1) {
		const char *first = husk_linkmap_get(c->links, st.st_dev, st.st_ino);
		if (first)
			return link_to_first(c, first, dfd, name, host, cpath, err);
	}
	if (clear_name(dfd, name, host, cpath, err) < 0)
		return -1;
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return dst_err(err, host, cpath, errno, "");
	if (copy_data(in, out, &c->stats->bytes) < 0)
		return src_err(err, host, errno, "");
	/* Mode after the data: a write can clear setuid and setgid bits. */
	if (set_times_mode(out, &st) < 0)
		return dst_err(err, host, cpath, errno, ": cannot set its mode and time");
	if (close(steal_fd(&out)) < 0)
		return dst_err(err, host, cpath, errno, "");
	if (st.st_nlink > 1 && husk_linkmap_put(c->links, st.st_dev, st.st_ino, cpath) < 0)
		return src_err(err, host, ENOMEM, "");
	c->stats->entries++;
	return 0;
}

static int copy_symlink(struct copy *c, int sfd, const char *sname, const struct stat *st,
	const char *host, int dfd, const char *cpath, struct husk_err *err)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(sfd, sname, target, sizeof(target) - 1);
	struct timespec ts[2] = { st->st_mtim, st->st_mtim };

	if (n < 0)
		return src_err(err, host, errno, "");
	target[n] = '\0';
	if (clear_name(dfd, sname, host, cpath, err) < 0)
		return -1;
	if (symlinkat(target, dfd, sname) < 0 || utimensat(dfd, sname, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return dst_err(err, host, cpath, errno, "");
	c->stats->entries++;
	return 0;
}

static int copy_fifo(struct copy *c, const struct stat *st, const char *host, int dfd,
	const char *name, const char *cpath, struct husk_err *err)
{
	autoclose int fd = -1;

	if (clear_name(dfd, name, host, cpath, err) < 0)
		return -1;
	/* O_NONBLOCK: opening a FIFO to read then waits for no writer. */
	if (mkfifoat(dfd, name, 0600) < 0 ||
	    (fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    set_times_mode(fd, st) < 0)
		return dst_err(err, host, cpath, errno, "");
	c->stats->entries++;
	return 0;
}

/* Copy the source directory open on sfd to cpath. */
static int copy_dir(struct copy *c, int sfd, const char *host, const char *cpath, int depth,
	struct husk_err *err)
{
	autoclose int dfd = -1;
	autoclose int mfd = -1;
	struct stat st;
	bool created;

	if (depth > MAX_DEPTH)
		return src_err(err, host, 0, ": more than %d directories deep", MAX_DEPTH);
	if (fstat(sfd, &st) < 0)
		return src_err(err, host, errno, "");
	if (st.st_dev == c->root.st_dev && st.st_ino == c->root.st_ino)
		return src_err(err, host, 0, ": it holds the image being built");
	if ((dfd = resolve_dir(c, cpath, host, &created, err)) < 0)
		return -1;
	if (copy_tree(c, sfd, host, cpath, dfd, depth, err) < 0)
		return -1;
	c->stats->entries++;
	if (!created)   /* an existing directory keeps its mode */
		return 0;
	if ((mfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    set_times_mode(mfd, &st) < 0)
		return dst_err(err, host, cpath, errno, ": cannot set its mode and time");
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int copy_entry(struct copy *c, int sfd, const char *name, const char *host,
	int dfd, const char *cpath, int depth, struct husk_err *err)
{
	struct stat st;
	autoclose int in = -1;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return src_err(err, host, errno, "");
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		if ((in = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			return src_err(err, host, errno, "");
		return copy_dir(c, in, host, cpath, depth + 1, err);
	case S_IFREG:
		if ((in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)) < 0)
			return src_err(err, host, errno, "");
		return copy_file(c, in, host, dfd, name, cpath, err);
	case S_IFLNK:
		return copy_symlink(c, sfd, name, &st, host, dfd, cpath, err);
	case S_IFIFO:
		return copy_fifo(c, &st, host, dfd, name, cpath, err);
	default:   /* device nodes and sockets: an unprivileged build cannot make them */
		if (c->stats->skipped++ == 0)
			snprintf(c->stats->first_skipped, sizeof(c->stats->first_skipped), "%s", host);
		return 0;
	}
}

/* Copy the entries of the source directory sfd into dfd (cpath), in name
 * order, so which of several hard links becomes the file is reproducible. */
static int copy_tree(struct copy *c, int sfd, const char *host, const char *cpath, int dfd,
	int depth, struct husk_err *err)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0, dup_fd = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dup_fd < 0 || !(d = fdopendir(dup_fd))) {
		if (dup_fd >= 0)
			close(dup_fd);
		return src_err(err, host, errno, "");
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **more = realloc(names, (cap = cap ? 2 * cap : 32) * sizeof(char *));
			if (!more)
				break;
			names = more;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	if (errno)
		ret = src_err(err, host, errno, "");
	closedir(d);
	if (n)
		qsort(names, n, sizeof(char *), cmp_names);
	for (size_t i = 0; i < n && ret == 0; i++) {
		autofree char *h = join(host, names[i]);
		autofree char *cp = join(cpath, names[i]);
		ret = h && cp ? copy_entry(c, sfd, names[i], h, dfd, cp, depth, err) :
			src_err(err, host, ENOMEM, "");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

/* The last component of a host path ("a/b/" -> "b"). */
static char *base_name(const char *path)
{
	size_t end = strlen(path), start;

	while (end > 1 && path[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	return strndup(path + start, end - start);
}

static int copy_top_file(struct copy *c, const char *src, const char *cdst, bool into,
	struct husk_err *err)
{
	autofree char *name = base_name(src);
	autofree char *cpath = NULL;
	autofree char *dir = NULL;
	autoclose int in = -1;
	autoclose int dfd = -1;
	const char *slash;
	bool created;

	if (!name)
		return src_err(err, src, ENOMEM, "");
	if (!(cpath = into ? join(cdst, name) : strdup(cdst)))
		return src_err(err, src, ENOMEM, "");
	slash = strrchr(cpath, '/');
	if (!slash[1])
		return dst_err(err, src, cpath, 0, " is the root; a file cannot replace it");
	if (!(dir = strndup(cpath, slash > cpath ? (size_t)(slash - cpath) : 1)))
		return src_err(err, src, ENOMEM, "");
	if ((in = open(src, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		return src_err(err, src, errno, "");
	if ((dfd = resolve_dir(c, dir, src, &created, err)) < 0)
		return -1;
	return copy_file(c, in, src, dfd, slash + 1, cpath, err);
}

static int copy_top_dir(struct copy *c, const char *src, const char *cdst, struct husk_err *err)
{
	/* The source itself may be a symlink (a path the user gave): open it
	 * following that; nothing inside is followed. */
	autoclose int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (sfd < 0)
		return src_err(err, src, errno, "");
	return copy_dir(c, sfd, src, cdst, 0, err);
}

int husk_copy_in(int root_fd, const char *src, const char *dst,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	struct copy c = { .root_fd = root_fd, .stats = stats };
	autofree char *abs = NULL;
	autofree char *cdst = NULL;
	autoclose int probe = -1;
	struct stat st;
	bool into;
	int ret;

	if (!src || !*src)
		return husk_err_set(err, 0, "cannot copy '': empty source path");
	if (!dst || !*dst)
		return husk_err_set(err, 0, "cannot copy '%s' into the image: empty destination", src);
	abs = dst[0] == '/' ? strdup(dst) : husk_strdup_printf("/%s", dst);
	if (!abs || !(cdst = husk_path_normalize(abs)))
		return src_err(err, src, ENOMEM, "");
	if (fstat(root_fd, &c.root) < 0)
		return husk_err_set(err, errno, "cannot copy '%s' into the image: the root", src);
	if (stat(src, &st) < 0) {
		src_err(err, src, errno, "");
		if (errno == ENOENT)
			husk_err_hint(err, "check the path on the host");
		return -1;
	}
	probe = husk_resolve(root_fd, cdst, O_PATH | O_DIRECTORY);
	into = dst[strlen(dst) - 1] == '/' || probe >= 0;
	if (!(c.links = husk_linkmap_new()))
		return src_err(err, src, ENOMEM, "");
	if (S_ISDIR(st.st_mode))
		ret = copy_top_dir(&c, src, cdst, err);
	else if (S_ISREG(st.st_mode))
		ret = copy_top_file(&c, src, cdst, into, err);
	else
		ret = src_err(err, src, 0, ": not a regular file or a directory");
	husk_linkmap_free(c.links);
	return ret;
}
