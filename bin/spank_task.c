/* spank_task.c: husk as the task of a Slurm step started with --husk-image.
 *
 * The SPANK plugin (mpi-integration/slurm/spank_husk.c) cannot add words to
 * the argv that slurmstepd executes; it makes argv[0] husk's path and puts
 * the words that belong between husk and the task's own arguments in
 * HUSK_SPANK_ARGV: "run", options, the image, "--" and the task's original
 * argv[0], separated by \x1f. Here they are put back in place, and the
 * variable leaves the environment before anything runs in the image. */
#include "husk_config.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP '\x1f'

int cmd_spank_task(int argc, char **argv, const char *spec)
{
	char *copy = strdup(spec), **args;
	size_t n = 1, i = 0;

	if (!copy)
		return HUSK_EXIT_FAILURE;
	unsetenv("HUSK_SPANK_ARGV");
	for (const char *p = copy; *p; p++)
		n += *p == SEP;
	if (!(args = calloc(n + (size_t)argc + 1, sizeof(*args))))
		return HUSK_EXIT_FAILURE;
	args[i++] = argv[0];
	for (char *p = copy, *s; p; p = s) {
		if ((s = strchr(p, SEP)))
			*s++ = '\0';
		args[i++] = p;
	}
	if (i < 2 || strcmp(args[1], "run")) {
		fprintf(stderr, "husk: HUSK_SPANK_ARGV: not what the Slurm plugin spank_husk.so "
			"writes; unset it to run husk by hand\n");
		return HUSK_EXIT_FAILURE;
	}
	for (int k = 1; k < argc; k++)
		args[i++] = argv[k];
	args[i] = NULL;
	return cmd_run((int)i - 1, args + 1, false);
}
