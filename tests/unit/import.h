/* import.h: helpers of the import tests (test_unpack, test_oci): writing tar
 * archives with libarchive, entering the user namespace the build worker
 * runs in, and looking at what landed in a root. */
#ifndef HUSK_TEST_IMPORT_H
#define HUSK_TEST_IMPORT_H

#include "unit.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* One archive entry. type: 'f' file, 'd' directory, 'l' symlink, 'h' hard
 * link, 'p' FIFO, 'c' character device, 'b' block device. */
struct ent {
	char type;
	const char *path;
	const char *arg;      /* file content, or link target */
	mode_t perm;          /* 0: 0644 for files, 0755 for directories */
	time_t mtime;         /* 0: 1000000000 */
};
#define T_MTIME 1000000000

/* Write entries as a pax tar to file; filter "gzip", "xz", ... or NULL. */
static inline int make_tar(const char *file, const char *filter, const struct ent *e, size_t n)
{
	struct archive *a = archive_write_new();
	int ret = 0;

	archive_write_set_format_pax_restricted(a);
	if (filter)
		archive_write_add_filter_by_name(a, filter);
	if (archive_write_open_filename(a, file) != ARCHIVE_OK) {
		printf("# make_tar %s: %s\n", file, archive_error_string(a));
		archive_write_free(a);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		size_t len = e[i].type == 'f' && e[i].arg ? strlen(e[i].arg) : 0;

		archive_entry_set_pathname(ae, e[i].path);
		archive_entry_set_mtime(ae, e[i].mtime ? e[i].mtime : T_MTIME, 0);
		switch (e[i].type) {
		case 'f':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_size(ae, (la_int64_t)len);
			break;
		case 'd':
			archive_entry_set_filetype(ae, AE_IFDIR);
			break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e[i].arg);
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].arg);
			break;
		case 'p':
			archive_entry_set_filetype(ae, AE_IFIFO);
			break;
		case 'c':
		case 'b':
			archive_entry_set_filetype(ae, e[i].type == 'c' ? AE_IFCHR : AE_IFBLK);
			archive_entry_set_rdevmajor(ae, 1);
			archive_entry_set_rdevminor(ae, 3);
			break;
		}
		archive_entry_set_perm(ae, e[i].perm ? e[i].perm : e[i].type == 'd' ? 0755 : 0644);
		if (archive_write_header(a, ae) < ARCHIVE_WARN ||
		    (len && archive_write_data(a, e[i].arg, len) != (la_ssize_t)len)) {
			printf("# make_tar %s: %s: %s\n", file, e[i].path, archive_error_string(a));
			ret = -1;
		}
		archive_entry_free(ae);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		ret = -1;
	archive_write_free(a);
	return ret;
}

/* Become root of a new user namespace that maps only us, in a new mount
 * namespace: what `husk build`'s worker runs as. */
static inline int enter_build_userns(void)
{
	char line[64];
	unsigned uid = (unsigned)getuid(), gid = (unsigned)getgid();
	int fd;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return -1;
	snprintf(line, sizeof(line), "0 %u 1\n", uid);
	if ((fd = open("/proc/self/uid_map", O_WRONLY)) < 0 || write(fd, line, strlen(line)) < 0)
		return -1;
	close(fd);
	if ((fd = open("/proc/self/setgroups", O_WRONLY)) < 0 || write(fd, "deny", 4) < 0)
		return -1;
	close(fd);
	snprintf(line, sizeof(line), "0 %u 1\n", gid);
	if ((fd = open("/proc/self/gid_map", O_WRONLY)) < 0 || write(fd, line, strlen(line)) < 0)
		return -1;
	close(fd);
	return 0;
}

static inline char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* A formatted string that lives until the test ends (tests leak on purpose). */
static inline char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static inline int run(const char *cmd)
{
	int r = system(cmd);
	if (r != 0)
		printf("# command failed (%d): %s\n", r, cmd);
	return r;
}

/* Content of a regular file under dirfd (not following a final symlink). */
static inline char *slurp(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	static char buf[4096];
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static inline bool has_content(int dirfd, const char *path, const char *want)
{
	char *got = slurp(dirfd, path);
	bool ok = got && !strcmp(got, want);

	free(got);
	return ok;
}

static inline bool exists(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static inline mode_t mode_of(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mode : 0;
}

static inline time_t mtime_of(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mtime : 0;
}

static inline bool link_is(int dirfd, const char *path, const char *want)
{
	char buf[PATH_MAX];
	ssize_t n = readlinkat(dirfd, path, buf, sizeof(buf) - 1);

	if (n < 0)
		return false;
	buf[n] = '\0';
	return !strcmp(buf, want);
}

static inline bool same_inode(int dirfd, const char *a, const char *b)
{
	struct stat x, y;

	return fstatat(dirfd, a, &x, AT_SYMLINK_NOFOLLOW) == 0 &&
		fstatat(dirfd, b, &y, AT_SYMLINK_NOFOLLOW) == 0 &&
		x.st_ino == y.st_ino && x.st_dev == y.st_dev;
}

/* Does the message contain every one of the NULL-terminated strings? */
static inline bool says(const char *msg, ...)
{
	va_list ap;
	const char *s;
	bool ok = true;

	va_start(ap, msg);
	while ((s = va_arg(ap, const char *)))
		ok = ok && strstr(msg, s) != NULL;
	va_end(ap);
	if (!ok)
		printf("# message: %s\n", msg);
	return ok;
}

/* Number of entries in a directory (without . and ..), -1 on error. */
static inline int count_entries(const char *dir)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 | wc -l", dir);
	if ((p = popen(cmd, "r"))) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

#endif
