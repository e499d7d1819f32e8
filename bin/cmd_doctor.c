/* cmd_doctor.c: `husk doctor`: what this machine lets husk do, with fixes. */
#include "husk_config.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

void help_doctor(void)
{
	printf("Usage: husk doctor\n\n"
	       "Check what husk needs on this machine, trying each thing for real as you:\n"
	       "user and mount namespaces (and the setting that blocks them, AppArmor's\n"
	       "included), /dev/fuse and FUSE mounts in a user namespace, unprivileged\n"
	       "overlayfs, the site configuration (husk.conf, or HUSK_CONFIG), kernel\n"
	       "interfaces (openat2, the new mount API), what husk build needs (mksquashfs;\n"
	       "mmdebstrap, newuidmap and subordinate ids for FROM debian:SUITE), GPUs and\n"
	       "interconnect devices, and the Slurm or MPI launcher environment. Each line\n"
	       "says what was found and, when something is missing, the fix.\n\n"
	       "Exit status: 0 when husk can run images here (warnings allowed), 1 when\n"
	       "something it needs fails, 125 on husk's own failure.\n");
}

static void print_check(const struct husk_check *c, void *data)
{
	static const char *const tag[] = { "ok", "info", "warn", "FAIL" };

	(void)data;
	printf("%-5s %-30s %s\n", tag[c->level], c->name, c->detail);
	if (c->fix && c->level >= HUSK_CHECK_WARN)
		printf("      %-30s fix: %s\n", "", c->fix);
}

int cmd_doctor(int argc, char **argv)
{
	struct utsname u;
	int failures;

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			help_doctor();
			return 0;
		}
		return cli_usage_error("doctor", "unexpected argument '%s'", argv[1]);
	}
	cli_log_setup(0, true);
	uname(&u);
	printf("husk doctor: husk %s on Linux %s (%s), uid %u\n", husk_version(), u.release,
		u.machine, (unsigned)getuid());
	fflush(stdout);
	failures = husk_doctor(print_check, NULL);
	printf("%s\n", failures ? "husk cannot run images here until the failures above are fixed"
		: "husk can run images here");
	return failures ? 1 : 0;
}
