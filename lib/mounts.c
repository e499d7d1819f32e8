/* mounts.c: bind mounts between fds.
 *
 * With the mount API of Linux 5.2+ (open_tree, move_mount) and
 * mount_setattr (5.12), a bind is cloned detached, made read-only / nosuid /
 * nodev on every submount while nobody can see it, and only then attached on
 * the destination fd: there is no window where a read-only bind is writable,
 * and no path string is looked up again. mount_setattr only adds attributes,
 * so the flags the kernel locked on mounts inherited from a more privileged
 * namespace (nosuid, nodev, noexec, atime) are kept, as they must be.
 *
 * Fallback for older kernels: mount(2) through /proc/self/fd/N magic links,
 * then a remount of the top mount that repeats its current flags (statvfs)
 * since a remount that drops a locked flag fails with EPERM. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#ifdef HAVE_LINUX_MOUNT_H
#include <linux/mount.h>
#endif

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x04
#define MOVE_MOUNT_T_EMPTY_PATH 0x40
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#endif
#ifndef MOUNT_ATTR_SIZE_VER0
struct mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

static bool new_api_missing;

static int setattr_new(int fd, bool recursive, unsigned long long set)
{
	struct mount_attr attr = { .attr_set = set };

	return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH |
		(recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr));
}

static int remount_old(int fd, bool ro, bool nodev)
{
	struct statvfs sv;
	unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID;
	char path[64];

	if (fstatvfs(fd, &sv) < 0)
		return -1;
	if (sv.f_flag & ST_RDONLY || ro) flags |= MS_RDONLY;
	if (sv.f_flag & ST_NODEV || nodev) flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return mount(NULL, path, NULL, flags, NULL);
}

int husk_setattr_fd(int fd, bool recursive, bool ro, bool nodev)
{
	unsigned long long set = MOUNT_ATTR_NOSUID | (ro ? MOUNT_ATTR_RDONLY : 0) |
		(nodev ? MOUNT_ATTR_NODEV : 0);

	if (!new_api_missing) {
		if (setattr_new(fd, recursive, set) == 0)
			return 0;
		if (errno != ENOSYS)
			return -1;
		new_api_missing = true;
	}
	return remount_old(fd, ro, nodev);
}

/* Fallback bind for kernels without the new mount API (before 5.2), or
 * when a source could not be cloned: mount(2) through /proc/self/fd magic
 * links, then a remount of the top mount that keeps its locked flags. */
int husk_bind_fd(int src_fd, int dst_fd, unsigned attrs, struct husk_err *err,
	const char *what)
{
	char src[64], dst[64];
	autoclose int top = -1;

	char real[4096];
	ssize_t n;

	snprintf(src, sizeof(src), "/proc/self/fd/%d", src_fd);
	snprintf(dst, sizeof(dst), "/proc/self/fd/%d", dst_fd);
	/* The destination's path in our namespace, taken before the mount: a
	 * magic link leads to the directory the new mount covers, while a path
	 * walk crosses into the mount, and the remount needs the mount's root.
	 * Everything on this path is husk's own (the stage, the read-only image,
	 * the overlay's private upper layer), so it cannot change meanwhile. */
	if ((n = readlink(dst, real, sizeof(real) - 1)) < 0)
		return husk_err_set(err, errno, "cannot bind %s", what);
	real[n] = '\0';
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return husk_err_set(err, errno, "cannot bind %s", what);
	if ((top = open(real, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    remount_old(top, attrs & BIND_RO, attrs & BIND_NODEV) < 0)
		return husk_err_set(err, errno, "cannot set mount flags on %s", what);
	return 0;
}

int husk_clone_tree(int fd)
{
	if (new_api_missing) {
		errno = ENOSYS;
		return -1;
	}
	int tree = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
		AT_EMPTY_PATH | AT_RECURSIVE);
	if (tree < 0 && errno == ENOSYS)
		new_api_missing = true;
	return tree;
}

bool husk_have_open_tree(void)
{
	/* Without OPEN_TREE_CLONE it is a plain O_PATH open: no privilege. */
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	return errno != ENOSYS;
}

int husk_attach_tree(int tree, int dst_fd, unsigned attrs, struct husk_err *err,
	const char *what)
{
	unsigned long long set = MOUNT_ATTR_NOSUID | (attrs & BIND_RO ? MOUNT_ATTR_RDONLY : 0) |
		(attrs & BIND_NODEV ? MOUNT_ATTR_NODEV : 0);

	bool remount = false;

	/* Attributes first, while nobody can see the tree: no window where a
	 * read-only bind is writable. ENOSYS (before 5.12): remount afterwards. */
	if (setattr_new(tree, true, set) < 0) {
		if (errno != ENOSYS)
			return husk_err_set(err, errno, "cannot set mount flags on %s", what);
		remount = true;
	}
	if (syscall(SYS_move_mount, tree, "", dst_fd, "", MOVE_MOUNT_F_EMPTY_PATH |
	    MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return husk_err_set(err, errno, "cannot mount %s", what);
	if (remount) {
		char dst[64];
		autoclose int top = -1;
		snprintf(dst, sizeof(dst), "/proc/self/fd/%d", dst_fd);
		if ((top = open(dst, O_PATH | O_CLOEXEC)) < 0 ||
		    remount_old(top, attrs & BIND_RO, attrs & BIND_NODEV) < 0)
			return husk_err_set(err, errno, "cannot set mount flags on %s", what);
	}
	return 0;
}

int husk_mount_tmpfs(int dir_fd, const char *opts)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", dir_fd);
	return mount("husk", path, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}
