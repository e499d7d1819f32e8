/* image.c: opening an image and telling its kind apart by content: a
 * directory, or a regular file starting with the SquashFS magic "hsqs". */
#include "husk_config.h"
#include "husk.h"
#include "sqfs.h"
#include "util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

struct husk_image_fact {
	char *path;
	char *data;                  /* NULL: the file does not exist */
	size_t len;
};

static int image_open(struct husk_image *img, const char *path, bool lazy,
	struct husk_err *err)
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
	/* An open file without a name (/proc/self/fd/N of an unlinked file, as
	 * `husk build` runs WARM on its unfinished output) keeps the given path. */
	if (!(img->path = realpath(path, NULL)) && (errno != ENOENT || !(img->path = strdup(path))))
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
	img->fd = steal_fd(&fd);
	if (!lazy && !husk_image_sqfs(img, err)) {
		husk_image_close(img);
		return -1;
	}
	return 0;
}

int husk_image_open(struct husk_image *img, const char *path, struct husk_err *err)
{
	return image_open(img, path, false, err);
}

int husk_image_open_lazy(struct husk_image *img, const char *path, struct husk_err *err)
{
	return image_open(img, path, true, err);
}

struct sqfs_reader *husk_image_sqfs(struct husk_image *img, struct husk_err *err)
{
	if (!img->sqfs && husk_sqfs_reader_open(&img->sqfs, img->fd, img->path, err) < 0)
		return NULL;
	return img->sqfs;
}

void husk_image_close(struct husk_image *img)
{
	if (img->sqfs)
		husk_sqfs_reader_close(img->sqfs);
	if (img->fd >= 0)
		close(img->fd);
	free(img->path);
	for (size_t i = 0; i < img->n_facts; i++) {
		free(img->facts[i].path);
		free(img->facts[i].data);
	}
	free(img->facts);
	memset(img, 0, sizeof(*img));
	img->fd = -1;
}

static struct husk_image_fact *fact_find(struct husk_image *img, const char *path)
{
	for (size_t i = 0; i < img->n_facts; i++)
		if (!strcmp(img->facts[i].path, path))
			return &img->facts[i];
	return NULL;
}

/* Remember a small file (data NULL: missing); failure only loses the fact. */
static void fact_add(struct husk_image *img, const char *path, const char *data, size_t len)
{
	struct husk_image_fact *v, f = { .path = strdup(path), .len = len };

	if (fact_find(img, path) || !f.path)
		goto fail;
	if (data && !(f.data = malloc(len + 1)))
		goto fail;
	if (data) {
		memcpy(f.data, data, len);
		f.data[len] = '\0';
	}
	if (!(v = realloc(img->facts, (img->n_facts + 1) * sizeof(*v))))
		goto fail;
	img->facts = v;
	img->facts[img->n_facts++] = f;
	return;
fail:
	free(f.path);
	free(f.data);
}

/* The blob: for each fact, "path\0", a flag byte ('+' present, '-' missing),
 * the length as 8 hex digits, the bytes. */
int husk_image_facts_export(const struct husk_image *img, char **blob, size_t *len)
{
	size_t n = 0, at = 0;
	char *b;

	for (size_t i = 0; i < img->n_facts; i++)
		n += strlen(img->facts[i].path) + 1 + 1 + 8 + img->facts[i].len;
	if (!(b = malloc(n + 1)))
		return -1;
	for (size_t i = 0; i < img->n_facts; i++) {
		const struct husk_image_fact *f = &img->facts[i];
		size_t pl = strlen(f->path) + 1;
		memcpy(b + at, f->path, pl);
		at += pl;
		b[at++] = f->data ? '+' : '-';
		snprintf(b + at, 9, "%08zx", f->len);
		at += 8;
		if (f->len)
			memcpy(b + at, f->data, f->len);
		at += f->len;
	}
	*blob = b;
	*len = at;
	return 0;
}

int husk_image_facts_import(struct husk_image *img, const char *blob, size_t len)
{
	size_t at = 0;

	while (at < len) {
		const char *path = blob + at, *nul = memchr(path, '\0', len - at);
		char hex[9];
		char *end;
		size_t n;
		bool present;

		if (!nul || (size_t)(nul - blob) + 1 + 1 + 8 > len || path[0] != '/')
			return -1;
		at = (size_t)(nul - blob) + 1;
		present = blob[at++] == '+';
		memcpy(hex, blob + at, 8);
		hex[8] = '\0';
		at += 8;
		n = strtoul(hex, &end, 16);
		if (*end || n > len - at || (!present && n))
			return -1;
		fact_add(img, path, present ? blob + at : NULL, n);
		at += n;
	}
	return 0;
}

bool husk_image_exists(struct husk_image *img, const char *path)
{
	int fd;

	if (img->kind == HUSK_IMAGE_SQUASHFS) {
		struct husk_err e = { 0 };
		struct sqfs_reader *r = husk_image_sqfs(img, &e);
		return r && husk_sqfs_reader_exists(r, path);
	}
	if ((fd = husk_resolve(img->fd, path, O_PATH | O_NOFOLLOW)) < 0)
		return false;
	close(fd);
	return true;
}

static int read_file(struct husk_image *img, const char *path, char **buf, size_t *len,
	size_t max, struct husk_err *err)
{
	autoclose int fd = -1;

	if (img->kind == HUSK_IMAGE_SQUASHFS) {
		struct sqfs_reader *rd = husk_image_sqfs(img, err);
		int r;
		if (!rd)
			return -1;
		if ((r = husk_sqfs_reader_read(rd, path, buf, len, max)) < 0)
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

/* Small files only are remembered (they are what a launch reads to plan). */
#define FACT_MAX (256u << 10)

int husk_image_read_file(struct husk_image *img, const char *path, char **buf, size_t *len,
	size_t max, struct husk_err *err)
{
	struct husk_image_fact *f = fact_find(img, path);
	size_t n = 0;
	int r;

	if (f && (!f->data || f->len <= max)) {
		if (!f->data)
			return 1;
		if (!(*buf = malloc(f->len + 1)))
			return husk_err_set(err, ENOMEM, "image '%s': reading '%s'", img->path, path);
		memcpy(*buf, f->data, f->len);
		(*buf)[f->len] = '\0';
		if (len)
			*len = f->len;
		return 0;
	}
	r = read_file(img, path, buf, &n, max, err);
	if (len)
		*len = n;
	if (r == 1 || (r == 0 && n <= FACT_MAX))
		fact_add(img, path, r == 0 ? *buf : NULL, n);
	return r;
}
