/* userns.c: entering a user and mount namespace as an ordinary user.
 *
 * The caller's uid and gid are mapped to themselves by default (PMIx refuses a
 * client whose uid inside differs from the job's), or to 0 with --fake-root.
 * An unprivileged process may write a single-line map of its own ids; for
 * gid_map, setgroups must be denied first (Linux 3.19, CVE-2014-8989). */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

static long read_knob(const char *path)
{
	autofree char *buf = NULL;

	if (husk_read_fileat(AT_FDCWD, path, &buf, NULL, 64) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* Name the knob that blocks unprivileged user namespaces. */
static void userns_hint(struct husk_err *err)
{
	if (read_knob("/proc/sys/user/max_user_namespaces") == 0)
		husk_err_hint(err, "user namespaces are disabled: an admin must set "
			"sysctl user.max_user_namespaces to a positive value (e.g. 15000)");
	else if (read_knob("/proc/sys/kernel/unprivileged_userns_clone") == 0)
		husk_err_hint(err, "an admin must set sysctl kernel.unprivileged_userns_clone=1");
	else if (read_knob("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
		husk_err_hint(err, "AppArmor restricts unprivileged user namespaces: an admin must "
			"load husk's AppArmor profile (" HUSK_APPARMOR_PROFILE ", from configure "
			"--with-apparmor; apparmor_parser -r " HUSK_APPARMOR_PROFILE ") for this husk's "
			"path, or set sysctl kernel.apparmor_restrict_unprivileged_userns=0");
	else
		husk_err_hint(err, "check user.max_user_namespaces, "
			"kernel.unprivileged_userns_clone and "
			"kernel.apparmor_restrict_unprivileged_userns, and seccomp filters");
}

static int write_proc(const char *file, const char *text, struct husk_err *err)
{
	autoclose int fd = open(file, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || husk_write_all(fd, text, strlen(text)) < 0) {
		husk_err_set(err, errno, "cannot write '%s'", file);
		if (errno == EPERM)
			userns_hint(err);
		return -1;
	}
	return 0;
}

int husk_userns_enter(bool fake_root, uid_t uid, gid_t gid, struct husk_err *err)
{
	char line[64];

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		husk_err_set(err, errno, "cannot create a user namespace");
		userns_hint(err);
		return -1;
	}
	husk_idmap_line(line, sizeof(line), fake_root ? 0 : (unsigned)uid, (unsigned)uid);
	if (write_proc("/proc/self/uid_map", line, err) < 0)
		return -1;
	if (write_proc("/proc/self/setgroups", "deny", err) < 0)
		return -1;
	husk_idmap_line(line, sizeof(line), fake_root ? 0 : (unsigned)gid, (unsigned)gid);
	if (write_proc("/proc/self/gid_map", line, err) < 0)
		return -1;
	/* Nothing we mount may propagate back to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return husk_err_set(err, errno, "cannot make the mount tree private");
	return 0;
}
