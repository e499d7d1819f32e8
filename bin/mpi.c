/* mpi.c: `husk run --mpi=host|container`. With host, the image's MPI is
 * replaced by the host's (see lib/inject.h): the MPI profile matching the
 * image's MPI library is injected into the plan's host pieces, or the launch
 * is refused with one line saying why. */
#include "husk_config.h"
#include "cli.h"
#include "conf.h"
#include "inject.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Does a profile's `detect` entry (a path or glob, under the host root)
 * match anything on this host? */
static bool detected(const struct husk_profile *p, const char *root)
{
	for (char **d = p->detect; d && *d; d++) {
		char *pattern = NULL;
		glob_t g;
		bool hit;
		if (asprintf(&pattern, "%s%s", root, *d) < 0)
			return false;
		hit = glob(pattern, GLOB_NOSORT, NULL, &g) == 0;
		if (hit)
			globfree(&g);
		free(pattern);
		if (hit)
			return true;
	}
	return false;
}

/* The host's interconnect stacks (InfiniBand verbs providers, UCX, libfabric
 * and CXI: the `interconnect` profiles whose `detect` path exists here),
 * which the host's MPI loads. A library missing on the host or needing a
 * newer glibc than the image has is left out with a warning. */
static int inject_interconnects(struct husk_inject *ctx, struct husk_host *host,
	const struct husk_conf *conf, struct husk_err *err)
{
	const char *root = husk_inject_host_root(ctx);

	for (size_t i = 0; i < conf->n_profiles; i++) {
		const struct husk_profile *p = &conf->profiles[i];
		if (p->kind != HUSK_PROFILE_NET || !detected(p, root))
			continue;
		if (husk_inject_profile(ctx, host, p, HUSK_INJECT_LEAVE_OUT, err) < 0)
			return -1;
		if (husk_host_add_item(host, "interconnect", p->name, p->file) < 0)
			return husk_err_set(err, ENOMEM, "interconnect profile '%s'", p->name);
	}
	return 0;
}

/* mpi: --mpi's value, or NULL (then HUSK_MPI, then husk.conf's mpi =, then
 * container). */
int cli_mpi_setup(struct husk_plan *plan, const char *mpi, struct husk_conf *conf,
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
	if (husk_conf_load_profiles(conf, &err) < 0 ||
	    cli_inject_begin(plan, &img, &ctx, &err) < 0)
		return cli_fail(&err), -1;
	r = husk_inject_mpi(ctx, host, conf, &err);
	if (r == 0)
		r = inject_interconnects(ctx, host, conf, &err);
	return cli_inject_end(plan, host, &img, ctx, r, &err);
}
