/* sqfs_import.c: extracting a SquashFS image into the root of an image
 * being built (`FROM img.sqfs`).
 *
 * libsquashfuse, through husk's own reader, walks the image and the entries
 * go through the same writer as tar layers (unpack.c), so a crafted image
 * gets the same checks as a crafted archive, device nodes are skipped and
 * counted rather than failing, and ownership is not restored. unsquashfs
 * would do the extraction but, run as root of a user namespace, it tries to
 * chown to ids that are not mapped and to mknod devices, and reports that
 * only as text. */
#include "husk_config.h"

/* squashfuse's headers bring their own config.h: include them first. */
#include <squashfuse/squashfuse.h>

#include "husk.h"
#include "sqfs.h"
#include "unpack.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* Directories nest at most this deep; more means a crafted loop. */
#define MAX_DEPTH 256
#define CHUNK (1024 * 1024)

struct walk {
	sqfs *fs;
	struct husk_wr *w;
	struct husk_linkmap *links;   /* inode number -> first path, for hard links */
	char *buf;                    /* CHUNK bytes of file data */
};

static int corrupt(struct walk *k, const char *path, struct husk_err *err)
{
	husk_err_set(err, 0, "%s: entry '%s': corrupt image", k->w->what, path);
	husk_err_hint(err, "rebuild or copy the image again");
	return -1;
}

static int import_file(struct walk *k, sqfs_inode *inode, const char *path, struct husk_err *err)
{
	const char *first;
	uint64_t size = inode->xtra.reg.file_size, off = 0;
	struct timespec mtime = { .tv_sec = inode->base.mtime };
	int fd;

	/* A regular file with several links keeps its inode number in each
	 * directory entry: the first is extracted, the others link to it. */
	if (inode->nlink > 1) {
		if ((first = husk_linkmap_get(k->links, 0, inode->base.inode_number)))
			return husk_wr_hardlink(k->w, path, first, err);
		if (husk_linkmap_put(k->links, 0, inode->base.inode_number, path) < 0)
			return husk_err_set(err, ENOMEM, "%s", k->w->what);
	}
	if (husk_wr_file_open(k->w, path, &fd, err) < 0)
		return -1;
	while (off < size) {
		sqfs_off_t n = (sqfs_off_t)(size - off < CHUNK ? size - off : CHUNK);
		if (sqfs_read_range(k->fs, inode, (sqfs_off_t)off, &n, k->buf) != SQFS_OK || n <= 0) {
			close(fd);
			return corrupt(k, path, err);
		}
		if (husk_write_all(fd, k->buf, (size_t)n) < 0) {
			husk_err_set(err, errno, "%s: entry '%s': cannot write the file", k->w->what, path);
			close(fd);
			return -1;
		}
		off += (uint64_t)n;
	}
	k->w->stats->bytes += size;
	return husk_wr_file_close(k->w, path, fd, inode->base.mode & 07777, &mtime, err);
}

static int import_symlink(struct walk *k, sqfs_inode *inode, const char *path,
	struct husk_err *err)
{
	char target[PATH_MAX];
	size_t size = sizeof(target);
	struct timespec mtime = { .tv_sec = inode->base.mtime };

	if (inode->xtra.symlink_size >= sizeof(target))
		return husk_err_set(err, 0, "%s: entry '%s': symbolic link target too long",
			k->w->what, path);
	if (sqfs_readlink(k->fs, inode, target, &size) != SQFS_OK)
		return corrupt(k, path, err);
	return husk_wr_symlink(k->w, path, target, &mtime, err);
}

static int import_dir(struct walk *k, sqfs_inode *dir, const char *path, int depth,
	struct husk_err *err);

static int import_entry(struct walk *k, sqfs_inode *inode, const char *path, int depth,
	struct husk_err *err)
{
	struct timespec mtime = { .tv_sec = inode->base.mtime };
	mode_t perm = inode->base.mode & 07777;

	switch (inode->base.mode & S_IFMT) {
	case S_IFDIR:
		if (husk_wr_dir(k->w, path, perm, &mtime, err) < 0)
			return -1;
		return import_dir(k, inode, path, depth + 1, err);
	case S_IFREG:
		return import_file(k, inode, path, err);
	case S_IFLNK:
		return import_symlink(k, inode, path, err);
	case S_IFIFO:
		return husk_wr_fifo(k->w, path, perm, &mtime, err);
	default:   /* device nodes and sockets */
		husk_wr_skip(k->w, path);
		return 0;
	}
}

static int import_dir(struct walk *k, sqfs_inode *dir, const char *path, int depth,
	struct husk_err *err)
{
	sqfs_dir d;
	sqfs_dir_entry entry;
	sqfs_name name;
	sqfs_err serr = SQFS_OK;

	if (depth > MAX_DEPTH)
		return corrupt(k, path, err);
	if (sqfs_dir_open(k->fs, dir, &d, 0) != SQFS_OK)
		return corrupt(k, path, err);
	sqfs_dentry_init(&entry, name);
	while (sqfs_dir_next(k->fs, &d, &entry, &serr)) {
		const char *n = sqfs_dentry_name(&entry);
		autofree char *child = NULL;
		sqfs_inode inode;

		/* The writer refuses "..", but a name must not hold a "/" either:
		 * "a/b" would land somewhere the image never said. */
		if (!*n || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, "..")) {
			husk_err_set(err, 0, "%s: directory '%s' holds an invalid name '%s'",
				k->w->what, *path ? path : "/", n);
			husk_err_hint(err, "the image is corrupt or hostile");
			return -1;
		}
		if (!(child = *path ? husk_strdup_printf("%s/%s", path, n) : strdup(n)))
			return husk_err_set(err, ENOMEM, "%s", k->w->what);
		if (sqfs_inode_get(k->fs, &inode, sqfs_dentry_inode(&entry)) != SQFS_OK)
			return corrupt(k, child, err);
		if (import_entry(k, &inode, child, depth, err) < 0)
			return -1;
	}
	return serr == SQFS_OK ? 0 : corrupt(k, *path ? path : "/", err);
}

int husk_import_squashfs(int root_fd, const char *root_path, const char *image,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	autoclose int fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	autofree char *what = husk_strdup_printf("SquashFS image '%s'", image);
	struct sqfs_reader *r = NULL;
	struct husk_wr w;
	struct walk k = { 0 };
	sqfs_inode root;
	int ret = -1;

	(void)root_path;
	if (fd < 0)
		return husk_err_set(err, errno, "SquashFS image '%s'", image);
	if (!what || husk_wr_init(&w, root_fd, what, false, stats, err) < 0)
		return husk_err_set(err, ENOMEM, "SquashFS image '%s'", image);
	if (husk_sqfs_reader_open(&r, fd, image, err) < 0)
		goto out;
	k.fs = husk_sqfs_reader_fs(r);
	k.w = &w;
	if (!(k.links = husk_linkmap_new()) || !(k.buf = malloc(CHUNK))) {
		husk_err_set(err, ENOMEM, "%s", what);
		goto out;
	}
	if (sqfs_inode_get(k.fs, &root, sqfs_inode_root(k.fs)) != SQFS_OK) {
		corrupt(&k, "/", err);
		goto out;
	}
	if (import_dir(&k, &root, "", 0, err) == 0)
		ret = husk_wr_finish(&w, err);
out:
	free(k.buf);
	husk_linkmap_free(k.links);
	husk_sqfs_reader_close(r);
	husk_wr_free(&w);
	return ret;
}
