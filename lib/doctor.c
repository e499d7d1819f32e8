/* doctor.c: `husk doctor`, what this machine lets husk do, each result with
 * the fix. Every check tries the real thing (a user namespace, a FUSE mount,
 * an overlay in a forked child) instead of guessing from version numbers,
 * and nothing it makes outlives the child that made it. */
#include "husk_config.h"
#include "husk.h"
#include "conf.h"
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct ctx {
	husk_check_fn report;
	void *data;
	int failures;
};

static void say(struct ctx *c, enum husk_check_level level, const char *name, const char *fix,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void say(struct ctx *c, enum husk_check_level level, const char *name, const char *fix,
	const char *fmt, ...)
{
	struct husk_check r = { .level = level, .name = name, .fix = fix };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.detail, sizeof(r.detail), fmt, ap);
	va_end(ap);
	if (level == HUSK_CHECK_FAIL)
		c->failures++;
	c->report(&r, c->data);
}

static long read_long(const char *path)
{
	char buf[64] = "";
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fgets(buf, sizeof(buf), f))
			v = strtol(buf, NULL, 10);
		fclose(f);
	}
	return v;
}

/* What a child found, sent back through a pipe. */
struct probe {
	int userns_errno;            /* 0: user and mount namespaces work */
	char userns_msg[1024];
	int tmpfs_errno;
	int fuse_errno;              /* mounting FUSE inside the namespace */
	int overlay_errno;           /* unprivileged overlayfs */
};

static void child_probe(int fd)
{
	struct probe p = { 0 };
	struct husk_err e = { 0 };
	char opts[256], dir[] = "/tmp", lower[64], upper[64], work[64], merged[64];
	int fuse;

	if (husk_userns_enter(false, getuid(), getgid(), &e) < 0) {
		p.userns_errno = e.errnum ? e.errnum : EPERM;
		snprintf(p.userns_msg, sizeof(p.userns_msg), "%s", e.msg);
		goto out;
	}
	if (mount("husk-doctor", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
		p.tmpfs_errno = errno;
		goto out;
	}
	fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fuse < 0) {
		p.fuse_errno = errno;
	} else {
		snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fuse,
			(unsigned)getuid(), (unsigned)getgid());
		if (mount("husk-doctor", dir, "fuse.husk-doctor", MS_NOSUID | MS_NODEV | MS_RDONLY,
		    opts) < 0)
			p.fuse_errno = errno;
		else
			umount2(dir, MNT_DETACH);
		close(fuse);
	}
	snprintf(lower, sizeof(lower), "%s/l", dir);
	snprintf(upper, sizeof(upper), "%s/u", dir);
	snprintf(work, sizeof(work), "%s/w", dir);
	snprintf(merged, sizeof(merged), "%s/m", dir);
	if (mkdir(lower, 0700) < 0 || mkdir(upper, 0700) < 0 || mkdir(work, 0700) < 0 ||
	    mkdir(merged, 0700) < 0) {
		p.overlay_errno = errno;
	} else {
		snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
		if (mount("overlay", merged, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
			p.overlay_errno = errno;
	}
out:
	husk_write_all(fd, &p, sizeof(p));
	_exit(0);
}

static int run_probe(struct probe *p)
{
	int fds[2], st;
	pid_t pid;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		child_probe(fds[1]);
	}
	close(fds[1]);
	n = read(fds[0], p, sizeof(*p));
	close(fds[0]);
	waitpid(pid, &st, 0);
	return n == (ssize_t)sizeof(*p) ? 0 : -1;
}

static void check_namespaces(struct ctx *c)
{
	struct probe p;
	long max = read_long("/proc/sys/user/max_user_namespaces");

	if (run_probe(&p) < 0) {
		say(c, HUSK_CHECK_FAIL, "user namespaces", "report this as a bug in husk",
			"the probe process failed");
		return;
	}
	if (p.userns_errno) {
		say(c, HUSK_CHECK_FAIL, "user namespaces", NULL, "%.500s", p.userns_msg);
		return;
	}
	say(c, HUSK_CHECK_OK, "user namespaces", NULL, "a user and a mount namespace can be made "
		"(user.max_user_namespaces = %ld)", max);
	if (read_long("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
		say(c, HUSK_CHECK_INFO, "AppArmor", NULL, "kernel.apparmor_restrict_unprivileged_userns "
			"= 1, and husk may make user namespaces (its profile, %s, is loaded, or "
			"husk runs unconfined)", HUSK_APPARMOR_PROFILE);
	if (p.tmpfs_errno) {
		say(c, HUSK_CHECK_FAIL, "tmpfs in a user namespace", "check for a security module "
			"that forbids mounts in user namespaces", "%s", strerror(p.tmpfs_errno));
		return;
	}
	if (p.fuse_errno == ENOENT || p.fuse_errno == ENODEV)
		say(c, HUSK_CHECK_FAIL, "FUSE (SquashFS images)", "install fuse3 (apt-get install "
			"fuse3) or load the fuse module (modprobe fuse)", "/dev/fuse: %s",
			strerror(p.fuse_errno));
	else if (p.fuse_errno == EACCES || p.fuse_errno == EPERM)
		say(c, HUSK_CHECK_FAIL, "FUSE (SquashFS images)", "make /dev/fuse mode 0666 (as "
			"root: chmod 0666 /dev/fuse; Debian's fuse3 package does it)",
			"/dev/fuse or a FUSE mount in a user namespace: %s", strerror(p.fuse_errno));
	else if (p.fuse_errno)
		say(c, HUSK_CHECK_FAIL, "FUSE (SquashFS images)", "FUSE mounts in user namespaces "
			"need Linux 4.18 or later", "mounting FUSE: %s", strerror(p.fuse_errno));
	else
		say(c, HUSK_CHECK_OK, "FUSE (SquashFS images)", NULL, "/dev/fuse opens and FUSE "
			"mounts work inside a user namespace");
	if (p.overlay_errno)
		say(c, HUSK_CHECK_WARN, "overlayfs in a user namespace", "Linux 5.11 or later; "
			"meanwhile images need every mount point (home, binds) to exist already",
			"%s: bind destinations missing from an image cannot be created",
			strerror(p.overlay_errno));
	else
		say(c, HUSK_CHECK_OK, "overlayfs in a user namespace", NULL, "mount points missing "
			"from an image can be created (in a tmpfs overlay)");
}

static void check_kernel(struct ctx *c)
{
	long r;
	struct utsname u;
	bool tree, setattr;

	uname(&u);
	r = syscall(SYS_openat2, -1, NULL, NULL, 0);
	if (r < 0 && errno == ENOSYS)
		say(c, HUSK_CHECK_WARN, "openat2 (Linux 5.6)", "none needed: husk walks paths "
			"itself, one component at a time", "not available on %s: symlinks in images are "
			"resolved by a slower walk", u.release);
	else
		say(c, HUSK_CHECK_OK, "openat2 (Linux 5.6)", NULL, "paths inside images are resolved "
			"with RESOLVE_IN_ROOT");
	r = syscall(SYS_open_tree, -1, NULL, 0);
	tree = !(r < 0 && errno == ENOSYS);
	r = syscall(SYS_mount_setattr, -1, NULL, 0, NULL, 0);
	setattr = !(r < 0 && errno == ENOSYS);
	if (tree && setattr)
		say(c, HUSK_CHECK_OK, "new mount API (Linux 5.12)", NULL, "binds are detached "
			"clones with their attributes set before they are attached");
	else
		say(c, HUSK_CHECK_WARN, "new mount API (Linux 5.12)", "none needed: husk falls "
			"back to mount(2)", "%s missing on %s", tree ? "mount_setattr" :
			"open_tree/move_mount", u.release);
}

static bool on_path(const char *tool)
{
	char path[4096];

	return husk_find_tool(tool, path, sizeof(path)) == 0;
}

static void check_build(struct ctx *c)
{
	const char *user = getenv("USER");

	if (on_path("mksquashfs"))
		say(c, HUSK_CHECK_OK, "husk build", NULL, "mksquashfs is installed");
	else
		say(c, HUSK_CHECK_WARN, "husk build", "apt-get install squashfs-tools",
			"mksquashfs is missing: husk build cannot write images");
	if (!on_path("mmdebstrap") || !on_path("newuidmap"))
		say(c, HUSK_CHECK_WARN, "FROM debian:SUITE", "apt-get install mmdebstrap uidmap",
			"mmdebstrap or newuidmap is missing (other bases still work)");
	else if (!husk_has_subids("/etc/subuid", user, getuid()) ||
	    !husk_has_subids("/etc/subgid", user, getuid()))
		say(c, HUSK_CHECK_WARN, "FROM debian:SUITE", "as root: usermod --add-subuids "
			"100000-165535 --add-subgids 100000-165535 USER",
			"no subordinate ids for %s in /etc/subuid and /etc/subgid", user ? user : "you");
	else
		say(c, HUSK_CHECK_OK, "FROM debian:SUITE", NULL, "mmdebstrap, newuidmap and "
			"subordinate ids are there");
}

static int count_glob(const char *pattern)
{
	glob_t g;
	int n = 0;

	if (glob(pattern, 0, NULL, &g) == 0)
		n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

static void check_devices(struct ctx *c)
{
	int nv = count_glob("/dev/nvidia[0-9]*"), kfd = count_glob("/dev/kfd");
	int ib = count_glob("/dev/infiniband/uverbs*"), cxi = count_glob("/dev/cxi*");

	if (nv || kfd)
		say(c, HUSK_CHECK_INFO, "GPUs", NULL, "%d NVIDIA device%s, %s", nv, nv == 1 ? "" : "s",
			kfd ? "an AMD KFD device" : "no AMD KFD device");
	else
		say(c, HUSK_CHECK_INFO, "GPUs", NULL, "none on this machine");
	if (ib || cxi)
		say(c, HUSK_CHECK_INFO, "interconnect", NULL, "%d InfiniBand verbs device%s, %d "
			"CXI device%s", ib, ib == 1 ? "" : "s", cxi, cxi == 1 ? "" : "s");
	else
		say(c, HUSK_CHECK_INFO, "interconnect", NULL, "no InfiniBand or CXI device");
}

static void check_launcher(struct ctx *c)
{
	const char *job = getenv("SLURM_JOB_ID"), *step = getenv("SLURM_STEP_ID");
	const char *pmix = getenv("PMIX_NAMESPACE"), *tmp = getenv("PMIX_SERVER_TMPDIR");

	if (job)
		say(c, HUSK_CHECK_INFO, "launcher", NULL, "Slurm job %s%s%s%s", job,
			step ? ", step " : "", step ? step : "",
			pmix ? " with PMIx" : "");
	else if (pmix)
		say(c, HUSK_CHECK_INFO, "launcher", NULL, "an MPI launcher (PMIx namespace %s)", pmix);
	else
		say(c, HUSK_CHECK_INFO, "launcher", NULL, "not under Slurm or an MPI launcher");
	if (tmp && access(tmp, R_OK | X_OK) < 0)
		say(c, HUSK_CHECK_FAIL, "PMIx", "ask the administrator: PMIX_SERVER_TMPDIR must be "
			"reachable by the job's user", "PMIX_SERVER_TMPDIR '%s': %s", tmp,
			strerror(errno));
}

/* The site configuration husk run would use (HUSK_CONFIG included): does it
 * parse, is it owned as it must be, what does it set. */
static void check_config(struct ctx *c)
{
	struct husk_conf conf;
	struct husk_err e = { 0 };
	const char *user = getenv("HUSK_CONFIG");
	char names[200] = "", imgs[64];
	size_t n = 0, forbid = 0, dirs = 0;

	if (husk_conf_load(&conf, user && *user ? user : NULL, &e) < 0 ||
	    husk_conf_load_profiles(&conf, &e) < 0) {
		say(c, HUSK_CHECK_FAIL, "site configuration", NULL, "%.500s", e.msg);
		return;
	}
	for (size_t i = 0; i < conf.n_profiles && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
			conf.profiles[i].name);
	for (char **f = conf.forbid_bind; f && *f; f++)
		forbid++;
	for (char **d = conf.image_paths; d && *d; d++)
		dirs++;
	if (dirs)
		snprintf(imgs, sizeof(imgs), "below %zu director%s", dirs, dirs == 1 ? "y" : "ies");
	else
		snprintf(imgs, sizeof(imgs), "anywhere");
	if (!conf.path)
		say(c, HUSK_CHECK_INFO, "site configuration", NULL, "none (%s/husk.conf does not "
			"exist): no site binds or rules; --config and HUSK_CONFIG allowed; %zu "
			"profile(s)%s%s", husk_conf_dir(), conf.n_profiles, n ? ": " : "", names);
	else
		say(c, HUSK_CHECK_OK, "site configuration", NULL, "%s%s: %zu bind(s), %zu forbidden "
			"bind destination(s), images %s, user files %s, %zu profile(s)%s%s",
			conf.path, conf.user ? " (HUSK_CONFIG)" : "", conf.n_binds, forbid, imgs,
			conf.user ? "in use" : conf.allow_user_config ? "allowed" : "not allowed",
			conf.n_profiles, n ? ": " : "", names);
	husk_conf_free(&conf);
}

int husk_doctor(husk_check_fn report, void *data)
{
	struct ctx c = { .report = report, .data = data };
	struct husk_err e = { 0 };

	if (husk_check_privilege(&e) < 0)
		say(&c, HUSK_CHECK_FAIL, "husk itself", "install husk without setuid or setgid bits",
			"%s", e.msg);
	check_namespaces(&c);
	check_config(&c);
	check_kernel(&c);
	check_build(&c);
	check_devices(&c);
	check_launcher(&c);
	return c.failures;
}
