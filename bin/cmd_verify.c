/* cmd_verify.c: `husk verify`: does an image file have the digest it should?
 * Exit status 0 when it does, 1 when it does not, 125 when husk could not
 * tell (no such file, unreadable, a directory). */
#include "husk_config.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_MISMATCH 1

enum { OPT_DIGEST = 256, OPT_HELP };

static const struct option verify_opts[] = {
	{ "digest", required_argument, NULL, OPT_DIGEST },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

void help_verify(void)
{
	printf("Usage: husk verify IMAGE --digest sha256:HEX\n"
	       "       husk verify IMAGE@sha256:HEX\n\n"
	       "Compute the SHA-256 digest of the image file IMAGE and compare it with\n"
	       "the one given. On a match, print \"IMAGE: OK sha256:HEX\".\n\n"
	       "Options:\n"
	       "      --digest sha256:HEX       the digest IMAGE must have (64 lowercase hex\n"
	       "                                digits; the 'sha256:' prefix may be left out)\n"
	       "  -v, --verbose                 say where the digest came from (the cache)\n"
	       "  -q, --quiet                   no warnings\n"
	       "      --help                    this text\n\n"
	       "Digests are cached per user in $XDG_CACHE_HOME/husk/digests (default\n"
	       "~/.cache/husk/digests), keyed by the file's device, inode, size, mtime and\n"
	       "ctime, so that a changed file is always hashed again.\n\n"
	       "Exit status: 0 if the digest matches; 1 if it does not; 125 if husk\n"
	       "failed (no such file, not readable, a directory, a bad option).\n");
}

/* "sha256:HEX" or bare HEX into HEX; NULL when malformed. */
static const char *digest_arg(const char *s)
{
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	return cli_is_sha256_hex(s) ? s : NULL;
}

static int verify(const char *path, const char *want)
{
	struct husk_err err = { 0 };
	char got[65];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		husk_err_set(&err, errno, "image '%s'", path);
		return cli_fail(&err);
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		husk_err_set(&err, 0, "image '%s' is a directory, and only an image file has a "
			"digest; verify a SquashFS file", path);
		return cli_fail(&err);
	}
	if (husk_image_digest(fd, path, got, &err) < 0) {
		close(fd);
		return cli_fail(&err);
	}
	close(fd);
	if (strcmp(got, want)) {
		fprintf(stderr, "husk: image '%s': digest sha256:%s does not match sha256:%s\n",
			path, got, want);
		return EXIT_MISMATCH;
	}
	printf("%s: OK sha256:%s\n", path, got);
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	const char *opt_digest = NULL;
	char *path = NULL, *pin = NULL;
	int c, verbosity = 0, status;
	bool quiet = false;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":vq", verify_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DIGEST:
			if (!(opt_digest = digest_arg(optarg)))
				return cli_usage_error("verify", "--digest '%s': expected sha256: followed "
					"by 64 lowercase hex digits", optarg);
			break;
		case 'v': verbosity++; break;
		case 'q': quiet = true; break;
		case OPT_HELP:
			help_verify();
			return 0;
		case ':':
			return cli_usage_error("verify", "option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				return cli_usage_error("verify", "unknown option '-%c'", optopt);
			return cli_usage_error("verify", "unknown option '%s'", argv[optind - 1]);
		}
	}
	cli_log_setup(verbosity, quiet);
	if (optind >= argc)
		return cli_usage_error("verify", "no image given");
	if (optind + 1 < argc)
		return cli_usage_error("verify", "one image at a time ('%s' is one too many)",
			argv[optind + 1]);
	if (cli_split_pin(argv[optind], "verify", &path, &pin) < 0)
		return HUSK_EXIT_FAILURE;
	if (!pin && !opt_digest)
		status = cli_usage_error("verify", "no digest to compare with; give --digest "
			"sha256:HEX or IMAGE@sha256:HEX");
	else if (pin && opt_digest && strcmp(pin, opt_digest))
		status = cli_usage_error("verify", "two different digests given (IMAGE@sha256: and "
			"--digest)");
	else
		status = verify(path, pin ? pin : opt_digest);
	free(path);
	free(pin);
	return status;
}
