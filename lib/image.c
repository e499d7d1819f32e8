/* image.c: opening an image and telling its kind apart by content: a
 * directory, or a regular file starting with the SquashFS magic "hsqs". */
#include "husk_config.h"
#include "husk.h"
#include "sqfs.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

int husk_image_open(struct husk_image *img, const char *path, struct husk_err *err)
{
	struct stat st;
	char magic[4];
	ssize_t n;
	autoclose int fd = -1;

	memset(img, 0, sizeof(*img));
	img->fd = -1;
	if (!*path)
		return husk_err_set(err, 0, "image '': empty path; give a directory or a .sqfs file");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == EACCES && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		husk_err_set(err, errno, "image '%s'", path);
		if (errno == ENOENT)
			husk_err_hint(err, "check the path (a directory or a SquashFS file)");
		else if (errno == EACCES)
			husk_err_hint(err, "the image must be readable by you");
		return -1;
	}
	if (fstat(fd, &st) < 0)
		return husk_err_set(err, errno, "image '%s'", path);
	if (!(img->path = realpath(path, NULL)))
		return husk_err_set(err, errno, "image '%s'", path);
	if (S_ISDIR(st.st_mode)) {
		img->kind = HUSK_IMAGE_DIR;
		img->fd = steal_fd(&fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		husk_image_close(img);
		return husk_err_set(err, 0, "image '%s': not a directory or a regular file; "
			"give a directory or a SquashFS file", path);
	}
	n = pread(fd, magic, sizeof(magic), 0);
	if (n != (ssize_t)sizeof(magic) || memcmp(magic, "hsqs", 4)) {
		husk_image_close(img);
		return husk_err_set(err, 0, "image '%s': not a SquashFS image (no 'hsqs' magic) and "
			"not a directory; build one with 'mksquashfs DIR IMAGE.sqfs'", path);
	}
	img->kind = HUSK_IMAGE_SQUASHFS;
	if (husk_sqfs_reader_open(&img->sqfs, fd, img->path, err) < 0) {
		husk_image_close(img);
		return -1;
	}
	img->fd = steal_fd(&fd);
	return 0;
}

void husk_image_close(struct husk_image *img)
{
	if (img->sqfs)
		husk_sqfs_reader_close(img->sqfs);
	if (img->fd >= 0)
		close(img->fd);
	free(img->path);
	memset(img, 0, sizeof(*img));
	img->fd = -1;
}

bool husk_image_exists(struct husk_image *img, const char *path)
{
	int fd;

	if (img->kind == HUSK_IMAGE_SQUASHFS)
		return husk_sqfs_reader_exists(img->sqfs, path);
	if ((fd = husk_resolve(img->fd, path, O_PATH | O_NOFOLLOW)) < 0)
		return false;
	close(fd);
	return true;
}

int husk_image_read_file(struct husk_image *img, const char *path, char **buf, size_t *len,
	size_t max, struct husk_err *err)
{
	autoclose int fd = -1;

	if (img->kind == HUSK_IMAGE_SQUASHFS) {
		int r = husk_sqfs_reader_read(img->sqfs, path, buf, len, max);
		if (r < 0)
			return husk_err_set(err, errno, "image '%s': reading '%s'", img->path, path);
		return r;
	}
	fd = husk_resolve(img->fd, path, O_RDONLY | O_NOCTTY);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return 1;
	if (fd < 0 || husk_read_fd(fd, buf, len, max) < 0)
		return husk_err_set(err, errno, "image '%s': reading '%s'", img->path, path);
	return 0;
}
