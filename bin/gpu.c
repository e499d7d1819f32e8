/* gpu.c: `husk run --gpu/--nv/--rocm/--device`: the GPUs and CDI devices of
 * the host into the plan's host pieces (see lib/gpu.h), the driver's
 * libraries through the host injection of lib/inject.h. */
#include "husk_config.h"
#include "cli.h"
#include "conf.h"
#include "gpu.h"
#include "inject.h"

#include <stdio.h>
#include <string.h>

extern char **environ;

int cli_gpu_setup(struct husk_plan *plan, const char *gpu, char **devices,
	struct husk_conf *conf, struct husk_host *host)
{
	struct husk_err err = { 0 };
	struct husk_image img = { .fd = -1 };
	struct husk_inject *ctx = NULL;
	struct husk_gpu_opts o = { .devices = devices, .envp = environ };
	int r;

	o.gpu = gpu ? gpu : conf && conf->gpu ? conf->gpu : "none";
	if (!strcmp(o.gpu, "none") && !(devices && devices[0]))
		return 0;
	if (conf && husk_conf_load_profiles(conf, &err) < 0)
		return cli_fail(&err), -1;
	if (conf) {
		o.profile[HUSK_GPU_NVIDIA] = husk_conf_profile(conf, HUSK_PROFILE_GPU, "nvidia");
		o.profile[HUSK_GPU_AMD] = husk_conf_profile(conf, HUSK_PROFILE_GPU, "amd");
	}
	/* The driver's libraries are checked against the image's glibc. */
	if (cli_inject_begin(plan, &img, &ctx, &err) < 0)
		return cli_fail(&err), -1;
	o.inject = ctx;
	/* One reading of HUSK_HOST_ROOT (checked absolute) for every lookup. */
	o.root = husk_inject_host_root(ctx);
	r = husk_gpu_plan(&o, host, &err);
	if (r == 0 && (r = husk_net_plan(o.root, false, host, &err)) > 0)
		r = 0;
	return cli_inject_end(plan, host, &img, ctx, r, &err);
}
