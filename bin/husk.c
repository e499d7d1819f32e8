/* husk.c: the husk command: dispatch to a subcommand. */
#include "husk_config.h"
#include "cli.h"

#include <stdio.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: husk COMMAND [OPTIONS] ...\n\n"
		"Run programs, MPI ranks above all, inside read-only SquashFS or directory\n"
		"images, as an ordinary user: no setuid, no daemon.\n\n"
		"Commands:\n"
		"  run IMAGE [--] CMD [ARG...]   run a command inside an image (without CMD:\n"
		"                                the image's entrypoint and cmd)\n"
		"  shell IMAGE                   an interactive shell inside an image\n"
		"  build SOURCE OUTPUT.sqfs      build an image from a recipe, a directory,\n"
		"                                a tar, OCI or Docker archive\n"
		"  inspect [--json] IMAGE        path, kind, size, digest and metadata of an image\n"
		"  verify IMAGE@sha256:HEX       check an image file's digest (exit 1: mismatch)\n"
		"  doctor                        check what this machine lets husk do, with fixes\n"
		"  topology [--local-size N]     the node's CPUs, NUMA nodes, GPUs and NICs, and\n"
		"                                the placement each local rank would get\n"
		"  help [COMMAND]                help on a command\n"
		"  version                       print the version\n\n"
		"IMAGE@sha256:HEX pins run and shell to an image file's digest.\n"
		"See 'husk help COMMAND' and the husk(1) manual page.\n");
}

/* husk build runs husk-build: from beside this husk (a build tree, a staged
 * copy), else from where make install put it. */
static int exec_build(int argc, char **argv)
{
	char self[PATH_MAX], beside[PATH_MAX + 16];
	const char *installed = HUSK_LIBEXECDIR "/husk-build";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	if (!args)
		return HUSK_EXIT_FAILURE;
	args[0] = "husk-build";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	if (n > 0) {
		self[n] = '\0';
		snprintf(beside, sizeof(beside), "%s/husk-build", dirname(self));
		execv(beside, args);
	}
	execv(installed, args);
	fprintf(stderr, "husk: cannot run husk-build (looked beside husk and in '%s'): %s; "
		"reinstall husk, or keep husk-build next to the husk binary\n", HUSK_LIBEXECDIR,
		strerror(errno));
	free(args);
	return HUSK_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	const char *spank = getenv("HUSK_SPANK_ARGV");

	/* A task of a Slurm step started with --husk-image (spank_task.c). */
	if (spank && *spank)
		return cmd_spank_task(argc, argv, spank);
	if (!cmd) {
		usage(stderr);
		return HUSK_EXIT_FAILURE;
	}
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1, false);
	if (!strcmp(cmd, "shell"))
		return cmd_run(argc - 1, argv + 1, true);
	if (!strcmp(cmd, "build"))
		return exec_build(argc - 1, argv + 1);
	if (!strcmp(cmd, "doctor"))
		return cmd_doctor(argc - 1, argv + 1);
	if (!strcmp(cmd, "inspect"))
		return cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(cmd, "topology"))
		return cli_exec_topology(argc - 1, argv + 1);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("husk %s\n", husk_version());
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "help")) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[2], "run") || !strcmp(argv[2], "shell")) {
			help_run(!strcmp(argv[2], "shell"));
			return 0;
		}
		if (!strcmp(argv[2], "build")) {
			char *args[] = { "build", "--help", NULL };
			return exec_build(2, args);
		}
		if (!strcmp(argv[2], "doctor")) {
			help_doctor();
			return 0;
		}
		if (!strcmp(argv[2], "inspect")) {
			help_inspect();
			return 0;
		}
		if (!strcmp(argv[2], "topology")) {
			char *args[] = { "topology", "--help", NULL };
			return cli_exec_topology(2, args);
		}
		if (!strcmp(argv[2], "verify")) {
			help_verify();
			return 0;
		}
		fprintf(stderr, "husk: no help for '%s': unknown command; see 'husk help'\n", argv[2]);
		return HUSK_EXIT_FAILURE;
	}
	fprintf(stderr, "husk: unknown command '%s'; see 'husk help'\n", cmd);
	return HUSK_EXIT_FAILURE;
}
