/* source.c: telling the kinds of `husk build` sources apart by what they
 * hold, not by their names: a .tar may be a rootfs, an OCI archive or a
 * `docker save` file, and a recipe may be called anything. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SNIFF 65536   /* bytes read to recognise a recipe */

const char *husk_source_kind_name(enum husk_source_kind kind)
{
	switch (kind) {
	case HUSK_SRC_DIR: return "directory";
	case HUSK_SRC_TAR: return "tar";
	case HUSK_SRC_OCI_LAYOUT: return "oci-layout";
	case HUSK_SRC_OCI_ARCHIVE: return "oci-archive";
	case HUSK_SRC_DOCKER_ARCHIVE: return "docker-archive";
	case HUSK_SRC_SQUASHFS: return "squashfs";
	case HUSK_SRC_RECIPE: return "recipe";
	}
	return "unknown";
}

static bool regular_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

/* The first instruction of a text: the first line that is neither blank nor
 * a comment. Returns its length, or -1 when buf is not text (a NUL byte). */
static long first_instruction(const char *buf, size_t len, const char **start)
{
	size_t i = 0;

	if (memchr(buf, '\0', len))
		return -1;
	while (i < len) {
		size_t end = i;

		while (end < len && buf[end] != '\n')
			end++;
		while (i < end && isspace((unsigned char)buf[i]))
			i++;
		if (i < end && buf[i] != '#') {
			*start = buf + i;
			return (long)(end - i);
		}
		i = end + 1;
	}
	*start = buf + len;
	return 0;
}

static bool is_from(const char *line, long n)
{
	return n >= 4 && !strncasecmp(line, "FROM", 4) &&
		(n == 4 || isspace((unsigned char)line[4]));
}

/* Which tar is it? Names at the top of the archive decide. Returns 1 when
 * libarchive does not recognise a tar archive at all. */
static int classify_tar(const char *path, int fd, enum husk_source_kind *kind,
	struct husk_err *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	bool layout = false, index = false, manifest = false;
	int r = ARCHIVE_FATAL, ret = -1;

	if (!a)
		return husk_err_set(err, ENOMEM, "build source '%s'", path);
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (lseek(fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
		ret = 1;
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);

		while (name && name[0] == '.' && name[1] == '/')
			name += 2;
		if (!name)
			continue;
		layout |= !strcmp(name, "oci-layout");
		index |= !strcmp(name, "index.json");
		manifest |= !strcmp(name, "manifest.json");
		if (layout && index)
			break;
	}
	if (r != ARCHIVE_EOF && r != ARCHIVE_OK && r != ARCHIVE_WARN) {
		husk_err_set(err, 0, "build source '%s': corrupt or truncated archive: %s", path,
			archive_error_string(a));
		goto out;
	}
	*kind = layout && index ? HUSK_SRC_OCI_ARCHIVE : manifest ? HUSK_SRC_DOCKER_ARCHIVE :
		HUSK_SRC_TAR;
	ret = 0;
out:
	archive_read_free(a);
	return ret;
}

static int detect_file(const char *path, int fd, enum husk_source_kind *kind,
	struct husk_err *err)
{
	autofree char *buf = malloc(SNIFF);
	const char *line;
	ssize_t n;
	long len;
	int r;

	if (!buf)
		return husk_err_set(err, ENOMEM, "build source '%s'", path);
	do
		n = read(fd, buf, SNIFF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return husk_err_set(err, errno, "build source '%s'", path);
	if (n == 0)
		return husk_err_set(err, 0, "build source '%s': empty file", path);
	if (n >= 4 && !memcmp(buf, "hsqs", 4)) {
		*kind = HUSK_SRC_SQUASHFS;
		return 0;
	}
	len = first_instruction(buf, (size_t)n, &line);
	if (len > 0 && is_from(line, len)) {
		*kind = HUSK_SRC_RECIPE;
		return 0;
	}
	if ((r = classify_tar(path, fd, kind, err)) <= 0)
		return r;
	if (len >= 0) {
		husk_err_set(err, 0, "build source '%s': a text file whose first instruction is "
			"not FROM ('%.*s')", path, len > 40 ? 40 : (int)len, line);
		husk_err_hint(err, "a recipe starts with FROM IMAGE");
	} else {
		husk_err_set(err, 0, "build source '%s': not a directory, a SquashFS image, a tar "
			"archive or a recipe", path);
		husk_err_hint(err, "an archive must be a tar, optionally compressed");
	}
	return -1;
}

int husk_source_detect(const char *path, enum husk_source_kind *kind, struct husk_err *err)
{
	autoclose int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		husk_err_set(err, errno, "build source '%s'", path);
		if (errno == ENOENT)
			husk_err_hint(err, "give a directory, a tar archive, an OCI layout or archive, "
				"a docker save archive, a SquashFS image or a recipe");
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		*kind = regular_at(fd, "oci-layout") && regular_at(fd, "index.json") ?
			HUSK_SRC_OCI_LAYOUT : HUSK_SRC_DIR;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return husk_err_set(err, 0, "build source '%s': not a directory or a regular file",
			path);
	return detect_file(path, fd, kind, err);
}
