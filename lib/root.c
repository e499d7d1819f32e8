/* root.c: the container side of a launch, run by the child of the
 * supervisor: assemble the root from the image and the mounts, pivot_root
 * into it, drop privileges, and exec the command.
 *
 * The image is mounted read-only at STAGE/root. A destination missing from
 * the image (the user's home, a bind target, /etc/passwd in a tiny image)
 * cannot be created on a read-only filesystem, so in that case (and with
 * --writable-tmpfs) the root becomes an overlay of the image under a tmpfs
 * upper layer (unprivileged overlayfs: Linux 5.11). Missing destinations are
 * created in the upper layer only, never on a bound host directory, and the
 * overlay is made read-only again unless --writable-tmpfs was given. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static double since(struct husk_setup *s)
{
	return husk_now_ms() - s->t0;
}

/* Create PATH (relative, no symlinks: we made every component) under dir,
 * directories and, when as_file, an empty file last. */
static int create_chain(int dir, const char *path, bool as_file)
{
	autofree char *copy = strdup(path);
	autoclose int cur = -1;
	char *save = NULL, *name, *next;

	if (!copy || (cur = fcntl(dir, F_DUPFD_CLOEXEC, 3)) < 0)
		return -1;
	for (name = strtok_r(copy, "/", &save); name; name = next) {
		int fd;
		next = strtok_r(NULL, "/", &save);
		if (!next && as_file) {
			fd = openat(cur, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (fd < 0)
				return -1;
			close(fd);
			return 0;
		}
		if (mkdirat(cur, name, 0755) < 0 && errno != EEXIST)
			return -1;
		if ((fd = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			return -1;
		close(cur);
		cur = fd;
	}
	return 0;
}

/* Where, inside the image, does the deepest existing prefix of dst lie (after
 * the image's symlinks, resolved in the root)? Returns the missing rest. */
static int missing_part(struct husk_setup *s, int root_fd, const char *dst, char **exists_at,
	const char **rest)
{
	autofree char *norm = husk_path_normalize(dst);
	char root_path[64], fd_path[64], real[4096], root_real[4096];
	size_t cut = strlen(norm);
	ssize_t n;

	*exists_at = NULL;
	for (;;) {
		autoclose int fd = -1;
		char saved = norm[cut];
		norm[cut] = '\0';
		fd = husk_resolve(root_fd, cut ? norm : "/", O_PATH | O_DIRECTORY);
		norm[cut] = saved;
		if (fd >= 0) {
			snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", fd);
			snprintf(root_path, sizeof(root_path), "/proc/self/fd/%d", root_fd);
			if ((n = readlink(fd_path, real, sizeof(real) - 1)) < 0)
				return -1;
			real[n] = '\0';
			if ((n = readlink(root_path, root_real, sizeof(root_real) - 1)) < 0)
				return -1;
			root_real[n] = '\0';
			if (strncmp(real, root_real, (size_t)n) || (real[n] && real[n] != '/')) {
				errno = EXDEV;
				return -1;
			}
			*exists_at = strdup(real[n] ? real + n + 1 : "");
			*rest = dst + (cut < strlen(dst) ? cut : strlen(dst));
			/* the rest must be relative to exists_at and match norm */
			*rest = strdup(norm + cut + (norm[cut] == '/'));
			return *exists_at && *rest ? 0 : -1;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -1;
		if (cut == 0) {
			errno = ENOENT;
			return -1;
		}
		while (cut > 0 && norm[cut - 1] != '/')
			cut--;
		if (cut > 0)
			cut--;   /* drop the slash too */
	}
}

/* Mount points missing from the image are created in the overlay's upper
 * layer before the overlay is mounted: creating them through the merged view
 * would need write permission on the image's directories, which belong to a
 * root that is not mapped in our namespace. Returns how many were created. */
static int prepare_upper(struct husk_setup *s, int root_fd, struct husk_err *err)
{
	autoclose int upper = -1;
	int created = 0;

	for (size_t i = 0; i < s->n_mnts; i++) {
		struct husk_mnt *m = &s->mnts[i];
		autofree char *at = NULL;
		autofree char *rel = NULL;
		const char *rest = NULL;
		struct stat st;
		int fd;

		if (m->src_fd < 0)
			continue;
		if ((fd = husk_resolve(root_fd, m->dst, O_PATH)) >= 0) {
			close(fd);
			continue;
		}
		if (missing_part(s, root_fd, m->dst, &at, &rest) < 0) {
			if (m->optional)
				continue;
			return husk_err_set(err, errno, "bind destination '%s' inside the image", m->dst);
		}
		if (upper < 0 && (upper = openat(s->stage_fd, "upper", O_PATH | O_DIRECTORY |
		    O_CLOEXEC)) < 0)
			return husk_err_set(err, errno, "overlay upper layer");
		rel = husk_strdup_printf("%s%s%s", at, *at ? "/" : "", rest);
		free((char *)rest);
		if (fstat(m->src_fd, &st) < 0 || !rel || create_chain(upper, rel, !S_ISDIR(st.st_mode)) < 0) {
			if (m->optional)
				continue;
			return husk_err_set(err, errno, "cannot create mount point '%s'", m->dst);
		}
		husk_debug("mount point '%s' created in the overlay as '/%s'", m->dst, rel);
		created++;
	}
	return created;
}

/* Does any destination need creating? Checked in the bare image root. */
static bool needs_overlay(struct husk_setup *s, int root_fd)
{
	if (s->plan->writable_tmpfs)
		return true;
	for (size_t i = 0; i < s->n_mnts; i++) {
		int fd;
		if (s->mnts[i].src_fd < 0)
			continue;
		fd = husk_resolve(root_fd, s->mnts[i].dst, O_PATH);
		if (fd < 0) {
			husk_debug("destination '%s' is missing from the image: %s", s->mnts[i].dst,
				husk_errno_name(errno));
			return true;
		}
		close(fd);
	}
	return false;
}

static int mount_overlay(struct husk_setup *s, int image_root, struct husk_err *err)
{
	autofree char *opts = NULL;
	char merged[4096];
	const char *sp = s->stage_path;

	if (mkdirat(s->stage_fd, "upper", 0755) < 0 || mkdirat(s->stage_fd, "work", 0755) < 0 ||
	    mkdirat(s->stage_fd, "merged", 0755) < 0)
		return husk_err_set(err, errno, "cannot prepare the overlay in '%s'", sp);
	if (prepare_upper(s, image_root, err) < 0)
		return -1;
	snprintf(merged, sizeof(merged), "%s/merged", sp);
	/* userxattr (5.11) keeps overlay metadata in user.* xattrs, which tmpfs
	 * supports since 6.6; before that overlayfs works without it. */
	opts = husk_strdup_printf("lowerdir=%s/root,upperdir=%s/upper,workdir=%s/work,userxattr",
		sp, sp, sp);
	if (mount("overlay", merged, "overlay", MS_NOSUID | MS_NODEV, opts) == 0)
		return 0;
	free(opts);
	opts = husk_strdup_printf("lowerdir=%s/root,upperdir=%s/upper,workdir=%s/work", sp, sp, sp);
	if (mount("overlay", merged, "overlay", MS_NOSUID | MS_NODEV, opts) == 0)
		return 0;
	husk_err_set(err, errno, "cannot create mount points missing from the image (overlayfs)");
	husk_err_hint(err, "unprivileged overlayfs needs Linux 5.11; or add the missing "
		"directories to the image, or drop the binds that need them");
	return -1;
}

static const char *kind(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : "not a directory";
}

static int mount_one(struct husk_setup *s, struct husk_mnt *m, int root_fd,
	const unsigned long long *allowed, int n_allowed, struct husk_err *err)
{
	struct stat sst, dst, rst;
	bool created;
	autoclose int dfd = -1;
	char what[4200];

	if (fstat(m->src_fd, &sst) < 0)
		return husk_err_set(err, errno, "bind source '%s'", m->src);
	dfd = husk_resolve_create(root_fd, m->dst, !S_ISDIR(sst.st_mode), allowed, n_allowed,
		&created);
	if (dfd < 0) {
		int e = errno;
		if (m->optional) {
			husk_debug("skipping %s mount of '%s': %s", m->why, m->dst, strerror(e));
			return 0;
		}
		if (e == EXDEV) {
			husk_err_set(err, 0, "bind destination '%s' does not exist, and its parent is a "
				"directory bound from the host", m->dst);
			husk_err_hint(err, "create it on the host first, or choose another destination");
		} else {
			husk_err_set(err, e, "bind destination '%s' inside the image", m->dst);
		}
		return -1;
	}
	if (fstat(dfd, &dst) < 0 || fstat(root_fd, &rst) < 0)
		return husk_err_set(err, errno, "bind destination '%s'", m->dst);
	if (dst.st_dev == rst.st_dev && dst.st_ino == rst.st_ino) {
		/* A symlink in the image (/dev -> ..) leading to the root itself. */
		if (m->optional)
			return 0;
		return husk_err_set(err, 0, "bind destination '%s' resolves to the container's root "
			"(a symlink in the image); refusing to mount over it", m->dst);
	}
	if (S_ISDIR(sst.st_mode) != S_ISDIR(dst.st_mode)) {
		if (m->optional) {
			husk_debug("skipping %s mount of '%s': type mismatch", m->why, m->dst);
			return 0;
		}
		return husk_err_set(err, 0, "cannot bind '%s' (%s) onto '%s' (%s in the image)",
			m->src, kind(sst.st_mode), m->dst, kind(dst.st_mode));
	}
	snprintf(what, sizeof(what), "'%s' on '%s'", m->src, m->dst);
	if ((m->detached ? husk_attach_tree : husk_bind_fd)(m->src_fd, dfd,
	    (m->ro ? BIND_RO : 0) | (m->nodev ? BIND_NODEV : 0), err, what) < 0)
		return -1;
	husk_debug("mounted %s%s%s", what, m->ro ? " read-only" : "", created ? " (created)" : "");
	return 0;
}

/* Mask a path of the container (a GPU device node of another rank, say):
 * bind the stage's empty file or directory, mode 0, read-only over it.
 * A symlink in the image is followed (inside the root): what it leads to is
 * masked. Nothing to mask when the path does not exist. */
static int hide_one(struct husk_setup *s, struct husk_mnt *m, int root_fd, struct husk_err *err)
{
	autoclose int dfd = -1, src = -1;
	struct stat st;
	int tree;

	if ((dfd = husk_resolve(root_fd, m->dst, O_PATH)) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			husk_debug("nothing to hide at '%s': it does not exist", m->dst);
			return 0;
		}
		return husk_err_set(err, errno, "hidden path '%s' inside the container", m->dst);
	}
	if (fstat(dfd, &st) < 0)
		return husk_err_set(err, errno, "hidden path '%s'", m->dst);
	src = openat(s->stage_fd, S_ISDIR(st.st_mode) ? "masked-dir" : "masked",
		O_PATH | O_CLOEXEC);
	if (src < 0)
		return husk_err_set(err, errno, "the mask for '%s'", m->dst);
	if ((tree = husk_clone_tree(src)) >= 0) {
		autoclose int t = tree;
		if (husk_attach_tree(t, dfd, BIND_RO | BIND_NODEV, err, m->dst) < 0)
			return -1;
	} else if (husk_bind_fd(src, dfd, BIND_RO | BIND_NODEV, err, m->dst) < 0) {
		return -1;
	}
	husk_debug("hid '%s' (%s)", m->dst, S_ISDIR(st.st_mode) ? "an empty directory" :
		"an empty file, mode 0");
	return 0;
}

static int pivot(int root_fd, struct husk_err *err)
{
	/* pivot_root(".", ".") stacks the old root on top of the new one; the
	 * lazy unmount then drops it without needing a put_old directory. */
	if (fchdir(root_fd) < 0)
		return husk_err_set(err, errno, "cannot enter the container root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return husk_err_set(err, errno, "pivot_root into the container root failed");
	if (umount2(".", MNT_DETACH) < 0)
		return husk_err_set(err, errno, "cannot detach the host's root");
	if (chdir("/") < 0)
		return husk_err_set(err, errno, "cannot enter the container root");
	return 0;
}

/* Precedence: --cwd (which must exist), the caller's working directory when
 * it is visible inside, the image's workdir, $HOME, "/". */
static int enter_cwd(struct husk_setup *s, struct husk_err *err)
{
	const char *fallback[] = { s->workdir, s->home, "/" };
	int e;

	if (chdir(s->cwd) == 0) {
		husk_info("working directory '%s' (%s)", s->cwd, s->plan->cwd ? "--cwd" :
			"the caller's");
		return 0;
	}
	e = errno;
	if (s->plan->cwd) {
		husk_err_set(err, e, "--cwd '%s' inside the container", s->cwd);
		husk_err_hint(err, "give a directory that exists in the image or in a bind");
		return -1;
	}
	for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
		if (!fallback[i] || chdir(fallback[i]) < 0)
			continue;
		husk_warn("working directory '%s' is not available in the container (%s); "
			"starting in '%s'%s", s->cwd, strerror(e), fallback[i],
			fallback[i] == s->workdir ? ", the image's workdir" : "");
		return 0;
	}
	return husk_err_set(err, errno, "cannot enter '/'");
}

/* execve through the container's PATH (not husk's own). */
static void exec_command(struct husk_setup *s, struct husk_err *err)
{
	const char *cmd = s->argv[0];
	const char *path = husk_env_get(&s->env, "PATH");
	int saved = ENOENT;

	if (strchr(cmd, '/')) {
		execve(cmd, s->argv, s->env.vars);
		saved = errno;
		if (saved == ENOENT && s->plan->shell_mode) {
			/* husk shell: $SHELL is not in the image; use its /bin/sh. */
			husk_debug("'%s' is not in the image; starting '%s'", cmd, s->plan->shell_mode);
			s->argv[0] = (char *)s->plan->shell_mode;
			execve(s->argv[0], s->argv, s->env.vars);
			saved = errno;
			cmd = s->argv[0];
		}
	} else {
		autofree char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
		char *save = NULL;
		for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
			autofree char *full = husk_strdup_printf("%s/%s", *dir ? dir : ".", cmd);
			execve(full, s->argv, s->env.vars);
			if (errno == EACCES || errno == ENOEXEC || errno == EISDIR)
				saved = errno;
			else if (errno != ENOENT && errno != ENOTDIR) {
				saved = errno;
				break;
			}
		}
	}
	if (saved == ENOENT || saved == ENOTDIR) {
		husk_err_set(err, 0, "command '%s' not found in the image", cmd);
		husk_err_hint(err, strchr(cmd, '/') ? "check the path inside the image" :
			"check the name, or give its full path (PATH inside is '%s')",
			path ? path : "");
		err->status = HUSK_EXIT_NOTFOUND;
	} else {
		husk_err_set(err, saved, "cannot execute '%s'", cmd);
		if (saved == EIO) {
			husk_err_hint(err, "the image '%s' is damaged; rebuild or copy it again",
				s->img.path);
			err->status = HUSK_EXIT_FAILURE;
			return;
		}
		if (saved == EACCES)
			husk_err_hint(err, "it is not executable, or lies on a noexec mount");
		err->status = HUSK_EXIT_NOEXEC;
	}
}

/* Overlay, binds and masks on the image mounted at STAGE/root, then
 * pivot_root into it: the container's mount tree, as its command sees it. */
int husk_container_assemble(struct husk_setup *s, struct husk_err *err)
{
	autoclose int image_root = -1, root = -1;
	unsigned long long root_mnt;
	int n_allowed = 0;
	bool overlay;

	image_root = openat(s->stage_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (image_root < 0)
		return husk_err_set(err, errno, "cannot open the mounted image");
	/* A build step's root is writable: missing mount points are made in it. */
	overlay = !s->plan->build_step && needs_overlay(s, image_root);
	if (overlay) {
		if (mount_overlay(s, image_root, err) < 0)
			return -1;
		root = openat(s->stage_fd, "merged", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		root = steal_fd(&image_root);
	}
	if (root < 0)
		return husk_err_set(err, errno, "cannot open the container root");
	if ((overlay || s->plan->build_step) && husk_mount_id(root, &root_mnt) == 0)
		n_allowed = 1;
	husk_info("root assembled (%s) at %.2f ms", overlay ? "overlay on the image" : "image",
		since(s));
	for (size_t i = 0; i < s->n_mnts; i++) {
		if (s->mnts[i].hide) {
			if (hide_one(s, &s->mnts[i], root, err) < 0)
				return -1;
		} else if (s->mnts[i].src_fd >= 0 &&
		    mount_one(s, &s->mnts[i], root, &root_mnt, n_allowed, err) < 0) {
			return -1;
		}
	}
	if (overlay && !s->plan->writable_tmpfs && husk_setattr_fd(root, false, true, true) < 0)
		return husk_err_set(err, errno, "cannot make the container root read-only");
	husk_info("binds done at %.2f ms", since(s));
	if (pivot(root, err) < 0)
		return -1;
	husk_info("pivot_root done at %.2f ms", since(s));
	return 0;
}

/* In the assembled root: the working directory, the privileges, exec. */
int husk_container_start(struct husk_setup *s, struct husk_err *err)
{
	if (enter_cwd(s, err) < 0)
		return -1;
	if (husk_drop_privileges(s->plan->fake_root, err) < 0)
		return -1;
	if (s->plan->build_step && husk_root_emulation(err) < 0)
		return -1;
	if (husk_provenance_write(s, err) < 0)
		return -1;
	if (sigaction(SIGPIPE, &s->old_pipe, NULL) < 0 ||
	    sigprocmask(SIG_SETMASK, &s->old_mask, NULL) < 0)
		return husk_err_set(err, errno, "cannot restore the signal mask");
	if (s->cpus_pinned)
		sched_setaffinity(0, sizeof(s->cmd_cpus), &s->cmd_cpus);
	husk_info("exec '%s' at %.2f ms", s->argv[0], since(s));
	exec_command(s, err);
	return -1;
}

int husk_container_exec(struct husk_setup *s, struct husk_err *err)
{
	if (husk_container_assemble(s, err) < 0)
		return -1;
	return husk_container_start(s, err);
}
