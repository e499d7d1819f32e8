/* cmd_build.c: `husk build [OPTIONS] SOURCE OUTPUT.sqfs`. */
#include "husk_config.h"
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_CONTEXT = 256, OPT_MIRROR, OPT_HELP };

static const struct option build_opts[] = {
	{ "compression", required_argument, NULL, 'c' },
	{ "context", required_argument, NULL, OPT_CONTEXT },
	{ "mirror", required_argument, NULL, OPT_MIRROR },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

void help_build(void)
{
	printf("Usage: husk build [OPTIONS] SOURCE OUTPUT.sqfs\n\n"
	       "Build a SquashFS image as an ordinary user. SOURCE is told apart by content:\n"
	       "  a recipe        Dockerfile-like: FROM, RUN, COPY, ENV, WORKDIR, LABEL,\n"
	       "                  ENTRYPOINT, CMD; FROM debian:SUITE (mmdebstrap), FROM scratch\n"
	       "                  or FROM a local image of any kind below; and WARM COMMAND:\n"
	       "                  run COMMAND in the built image and keep what it reads as\n"
	       "                  the image's warm profile, replayed ahead of every launch\n"
	       "  a directory     a root file system\n"
	       "  a tar archive   a root file system (any compression)\n"
	       "  an OCI layout, OCI archive or Docker archive (skopeo copy, podman save);\n"
	       "                  SOURCE:TAG picks the image tagged TAG when it holds several\n"
	       "  a SquashFS image\n\n"
	       "Options:\n"
	       "  -c, --compression C    lz4 (default: fastest to read), zstd, gzip, xz, lzo\n"
	       "      --context DIR      where COPY takes its sources (default: the recipe's\n"
	       "                         directory)\n"
	       "      --mirror URL       Debian mirror for FROM debian:SUITE (default:\n"
	       "                         mmdebstrap's, with the host's apt proxy settings)\n"
	       "  -v, --verbose          say more\n"
	       "  -q, --quiet            no progress, only errors and the result\n"
	       "      --help             this text\n\n"
	       "RUN steps run inside the image through husk itself, as root of a user\n"
	       "namespace with root emulation (chown and set*id succeed without effect), so\n"
	       "apt-get install works without privilege. The result is reproducible: the\n"
	       "same inputs and SOURCE_DATE_EPOCH (default: the source's modification time)\n"
	       "give the same bytes. Metadata goes to /.husk/ in the image (husk inspect).\n\n"
	       "Prints 'OUTPUT sha256:DIGEST' on success. Exit status: 0 on success, 125 on\n"
	       "failure (nothing is left behind).\n");
}

static void show_progress(const char *msg)
{
	fprintf(stderr, "husk build: %s\n", msg);
}

int cmd_build(int argc, char **argv)
{
	struct husk_build_opts o = { .source_date_epoch = -1, .progress = show_progress };
	struct husk_err err = { 0 };
	char digest[65];
	int c, verbose = 0;
	bool quiet = false;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+c:vq", build_opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.compression = optarg; break;
		case OPT_CONTEXT: o.context = optarg; break;
		case OPT_MIRROR: o.mirror = optarg; break;
		case 'v': verbose++; break;
		case 'q': quiet = true; break;
		case OPT_HELP: help_build(); return 0;
		default:
			return cli_usage_error("build", "unknown or incomplete option '%s'",
				argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("build", "give a SOURCE and an OUTPUT image");
	o.source = argv[optind];
	o.output = argv[optind + 1];
	o.quiet = quiet;
	if (quiet)
		o.progress = NULL;
	cli_log_setup(verbose, quiet);
	if (husk_check_privilege(&err) < 0)
		return cli_fail(&err);
	if (husk_build(&o, digest, &err) < 0)
		return cli_fail(&err);
	printf("%s sha256:%s\n", o.output, digest);
	return 0;
}
