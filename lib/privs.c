/* privs.c: the privilege posture of an unprivileged tool.
 *
 * husk refuses to run setuid or setgid: it is designed to hold no privilege
 * but the user's own, and a setuid install would turn every option into an
 * attack surface. Before the user's command runs, every capability is dropped
 * (the bounding set too, so a setuid or file-capability binary in the image
 * gains nothing even as uid 0 inside) and no_new_privs is set. With
 * --fake-root the capabilities are kept, but they only act inside the user
 * namespace. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"

#include <errno.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

int husk_check_privilege(struct husk_err *err)
{
	if (getuid() != geteuid() || getgid() != getegid()) {
		husk_err_set(err, 0, "refusing to run setuid or setgid (uid %u euid %u, gid %u "
			"egid %u)", (unsigned)getuid(), (unsigned)geteuid(), (unsigned)getgid(),
			(unsigned)getegid());
		husk_err_hint(err, "husk needs no privilege: install it without the setuid/setgid "
			"bit (chmod u-s,g-s)");
		return -1;
	}
	return 0;
}

int husk_drop_privileges(bool keep_caps, struct husk_err *err)
{
	if (!keep_caps) {
		cap_t none;

		for (cap_value_t c = 0; c <= CAP_LAST_CAP || cap_valid(c); c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				return husk_err_set(err, errno, "cannot drop capability %d", (int)c);
		/* One call (libcap's cap_reset_ambient asks about each capability
		 * first); EINVAL: a kernel without ambient capabilities (< 4.3). */
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
			return husk_err_set(err, errno, "cannot clear ambient capabilities");
		if (!(none = cap_init()))
			return husk_err_set(err, errno, "cannot drop capabilities");
		if (cap_set_proc(none) < 0) {
			cap_free(none);
			return husk_err_set(err, errno, "cannot drop capabilities");
		}
		cap_free(none);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return husk_err_set(err, errno, "cannot set no_new_privs");
	return 0;
}
