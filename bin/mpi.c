/* mpi.c: `husk run --mpi=host|container`. With host, the image's MPI is
 * replaced by the host's (see lib/inject.h): the MPI profile matching the
 * image's MPI library is injected into the plan's host pieces, or the launch
 * is refused with one line saying why. */
#include "husk_config.h"
#include "cli.h"
#include "conf.h"
#include "inject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mpi: --mpi's value, or NULL (then HUSK_MPI, then husk.conf's mpi =, then
 * container). */
int cli_mpi_setup(struct husk_plan *plan, const char *mpi, const struct husk_conf *conf,
	struct husk_host *host)
{
	struct husk_err err = { 0 };
	struct husk_image img;
	struct husk_inject *ctx = NULL;
	const char *env = getenv("HUSK_MPI");
	int r;

	if (!mpi)
		mpi = env && *env ? env : conf->mpi ? conf->mpi : "container";
	if (!strcmp(mpi, "container"))
		return 0;
	if (strcmp(mpi, "host")) {
		fprintf(stderr, "husk: --mpi '%s': unknown; give host (the host's MPI replaces the "
			"image's) or container (the image's own)\n", mpi);
		return -1;
	}
	if (husk_image_open(&img, plan->image_path, &err) < 0)
		return cli_fail(&err), -1;
	r = husk_inject_open(&ctx, &img, &err);
	if (r == 0)
		r = husk_inject_mpi(ctx, host, conf, &err);
	husk_inject_close(ctx);
	husk_image_close(&img);
	if (r < 0)
		return cli_fail(&err), -1;
	plan->host = host;
	return 0;
}
