/* resolve.c: every path inside a container root goes through here.
 *
 * The image is untrusted: a symlink such as /tmp -> /etc or /home -> / must
 * never lead husk to mount over, create or write anything outside the root.
 * openat2(2) with RESOLVE_IN_ROOT (Linux 5.6) treats the root fd as "/" for
 * absolute symlinks and ".." and is race-free. Where it is missing (ENOSYS,
 * or blocked by a seccomp filter), a walk opens one component at a time with
 * O_NOFOLLOW, expands symlinks itself relative to the root, and keeps a stack
 * of directory fds so that ".." pops a fd and never crosses above the root.
 * Callers receive fds and mount onto fds, never strings. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#ifndef RESOLVE_IN_ROOT
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_IN_ROOT 0x10
struct open_how { unsigned long long flags, mode, resolve; };
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_SYMLINKS 40
#define MAX_DEPTH 256

static bool force_fallback;
static bool openat2_missing;

void husk_resolve_force_fallback(bool force)
{
	force_fallback = force;
}

static int open_in_root_fallback(int root_fd, const char *path, int flags)
{
	int stack[MAX_DEPTH];
	int top = 0, links = 0, ret = -1, saved;
	autofree char *rest = strdup(path);
	char *p;

	if (!rest)
		return -1;
	if ((stack[0] = fcntl(root_fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return -1;
	p = rest;
	for (;;) {
		char *name, *next;
		bool last;
		int fd;
		struct stat st;

		while (*p == '/')
			p++;
		if (!*p) {   /* ended on a directory: reopen it with the caller's flags */
			ret = openat(stack[top], ".", flags | O_CLOEXEC);
			break;
		}
		name = p;
		next = strchr(p, '/');
		if (next)
			*next++ = '\0';
		else
			next = p + strlen(p);
		p = next;
		while (*p == '/')
			p++;
		last = *p == '\0';
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (top > 0)
				close(stack[top--]);
			continue;
		}
		fd = openat(stack[top], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			break;
		if (fstat(fd, &st) < 0) {
			close(fd);
			break;
		}
		if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
			char *joined;

			close(fd);
			if (n < 0)
				break;
			target[n] = '\0';
			if (++links > MAX_SYMLINKS) {
				errno = ELOOP;
				break;
			}
			if (target[0] == '/')
				while (top > 0)
					close(stack[top--]);
			if (!(joined = husk_strdup_printf("%s/%s", target, p)))
				break;
			free(rest);
			rest = joined;
			p = rest;
			continue;
		}
		if (last) {
			if (flags & O_PATH && !(flags & O_DIRECTORY)) {
				ret = fd;
			} else {
				if (flags & O_DIRECTORY && !S_ISDIR(st.st_mode)) {
					close(fd);
					errno = ENOTDIR;
					break;
				}
				/* O_NOFOLLOW: if the entry was swapped for a symlink since, fail. */
				ret = openat(stack[top], name, flags | O_NOFOLLOW | O_CLOEXEC);
				close(fd);
			}
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(fd);
			errno = ENOTDIR;
			break;
		}
		if (top + 1 >= MAX_DEPTH) {
			close(fd);
			errno = ENAMETOOLONG;
			break;
		}
		stack[++top] = fd;
	}
	saved = errno;
	while (top >= 0)
		close(stack[top--]);
	errno = saved;
	return ret;
}

int husk_resolve(int root_fd, const char *path, int flags)
{
	if (!force_fallback && !openat2_missing && !getenv("HUSK_NO_OPENAT2")) {
		struct open_how how = { 0 };
		long fd;

		how.flags = (unsigned long long)(flags | O_CLOEXEC);
		how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
		fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM && errno != E2BIG))
			return (int)fd;
		/* ENOSYS: kernel before 5.6; EPERM: a seccomp filter refusing it. */
		openat2_missing = true;
	}
	return open_in_root_fallback(root_fd, path, flags);
}

int husk_mount_id(int fd, unsigned long long *id)
{
#ifdef STATX_MNT_ID
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) == 0 &&
	    (stx.stx_mask & STATX_MNT_ID)) {
		*id = stx.stx_mnt_id;
		return 0;
	}
#endif
	{
		/* Before Linux 5.8: /proc/self/fdinfo/N has "mnt_id:". */
		char path[64], *buf = NULL, *m;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		if (husk_read_fileat(AT_FDCWD, path, &buf, NULL, 65536) < 0)
			return -1;
		m = strstr(buf, "mnt_id:");
		if (!m) {
			free(buf);
			errno = ENOTSUP;
			return -1;
		}
		*id = strtoull(m + 7, NULL, 10);
		free(buf);
		return 0;
	}
}

/* n < 0: any mount (a root that holds no binds, such as the root that
 * `husk build` fills); n == 0: none. */
static bool mount_allowed(int fd, const unsigned long long *allowed, int n)
{
	unsigned long long id;

	if (n < 0)
		return true;
	if (husk_mount_id(fd, &id) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (allowed[i] == id)
			return true;
	return false;
}

int husk_resolve_create(int root_fd, const char *path, bool as_file,
	const unsigned long long *allowed, int n_allowed, bool *created)
{
	autofree char *norm = husk_path_normalize(path);
	autoclose int parent = -1;
	char *p, *slash;
	int fd;

	*created = false;
	if (!norm) {
		errno = EINVAL;
		return -1;
	}
	fd = husk_resolve(root_fd, norm, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	/* Walk down from the root; create what is missing, one component at a
	 * time, each time resolving again from the root so that a symlink in the
	 * image is followed inside the root, never outside. */
	if ((parent = husk_resolve(root_fd, "/", O_PATH | O_DIRECTORY)) < 0)
		return -1;
	p = norm + 1;
	for (;;) {
		bool last;
		int next;

		slash = strchr(p, '/');
		last = slash == NULL;
		if (slash)
			*slash = '\0';
		next = husk_resolve(root_fd, norm, last ? O_PATH : O_PATH | O_DIRECTORY);
		if (next < 0 && errno == ENOENT) {
			const char *name = strrchr(norm, '/') + 1;
			if (!mount_allowed(parent, allowed, n_allowed)) {
				errno = EXDEV;  /* would create inside a bind of a host directory */
				return -1;
			}
			if (last && as_file) {
				int f = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
				if (f < 0 && errno != EEXIST)
					return -1;
				if (f >= 0)
					close(f);
			} else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
				return -1;
			}
			*created = true;
			next = husk_resolve(root_fd, norm, last ? O_PATH : O_PATH | O_DIRECTORY);
		}
		if (next < 0)
			return -1;
		if (last)
			return next;
		close(parent);
		parent = next;
		*slash = '/';
		p = slash + 1;
	}
}
