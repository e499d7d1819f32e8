/* husk_build.c: the husk-build program, which `husk build` runs. The build
 * side links libarchive and libcrypto; keeping it out of the husk binary
 * keeps them from being loaded on every `husk run`. */
#include "husk_config.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "build"))
		return cmd_build(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
		printf("husk-build %s\n", husk_version());
		return 0;
	}
	fprintf(stderr, "husk-build: run it as 'husk build [OPTIONS] SOURCE OUTPUT.sqfs'; see "
		"'husk help build'\n");
	return HUSK_EXIT_FAILURE;
}
