/* husk_place.c: husk-place, the helper behind --placement=auto and `husk
 * topology`. It alone links hwloc, so husk run pays for loading hwloc only
 * when placement is asked for.
 *
 *   husk-place rank --rank R --size S [--keep NAME=VALUE]...
 *       one rank's decision, for husk run, as lines on stdout:
 *       "rank R/S", "cpus LIST", "mems LIST", "apply 1" or "apply 0 WHY",
 *       "env NAME=VALUE"..., "summary TEXT"; or one "error TEXT" line
 *       (exit 125). --keep passes a visible-devices variable the user set.
 *   husk-place topology [--local-size N] [--json] [--xml FILE] [--cpus LIST]
 *       what `husk topology` prints. */
#include "husk_config.h"
#include "cli.h"
#include "place.h"
#include "topo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_topology(int argc, char **argv);

static int keep_arg(struct husk_place_keep *keep, const char *nv)
{
	static const char *const names[] = { "CUDA_VISIBLE_DEVICES=", "ROCR_VISIBLE_DEVICES=",
		"UCX_NET_DEVICES=" };
	const char **slot[] = { &keep->cuda, &keep->rocr, &keep->ucx };

	for (size_t i = 0; i < 3; i++)
		if (!strncmp(nv, names[i], strlen(names[i]))) {
			*slot[i] = nv + strlen(names[i]);
			return 0;
		}
	return -1;
}

static int answer_error(const struct husk_err *err)
{
	printf("error %s\n", err->msg);
	return HUSK_EXIT_FAILURE;
}

static int cmd_rank(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rank", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "keep", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct husk_place_keep keep = { 0 };
	struct husk_err err = { 0 };
	struct husk_topo tp;
	struct husk_rank_place *v;
	struct husk_env env;
	char *summary = NULL, *cpus, *mems;
	int rank = -1, size = -1, c, status;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			rank = atoi(optarg);
		else if (c == 's')
			size = atoi(optarg);
		else if (c != 'k' || keep_arg(&keep, optarg) < 0) {
			printf("error husk-place rank: bad arguments; it is run by husk run\n");
			return HUSK_EXIT_FAILURE;
		}
	}
	if (size < 1 || rank < 0 || rank >= size) {
		printf("error husk-place rank: --rank %d --size %d: need 0 <= rank < size\n", rank, size);
		return HUSK_EXIT_FAILURE;
	}
	if (husk_topo_load(&tp, NULL, NULL, &err) < 0) {
		husk_topo_free(&tp);
		return answer_error(&err);
	}
	if (!(v = calloc((size_t)size, sizeof(*v))) || husk_place(&tp, size, &keep, v, &err) < 0) {
		husk_topo_free(&tp);
		return answer_error(&err);
	}
	husk_env_init(&env);
	status = husk_place_env(&tp, &v[rank], rank, size, &env, &summary);
	cpus = husk_bitmap_list(v[rank].cpus);
	mems = husk_bitmap_list(v[rank].mems);
	if (status < 0 || !cpus || !mems) {
		printf("error placement: out of memory\n");
		return HUSK_EXIT_FAILURE;
	}
	printf("rank %d/%d\ncpus %s\nmems %s\n", rank, size, cpus, mems);
	if (tp.this_system)
		printf("apply 1\n");
	else
		printf("apply 0 the topology is %s, not this machine's\n", tp.source);
	for (size_t i = 0; i < env.n; i++)
		printf("env %s\n", env.vars[i]);
	printf("summary %s\n", summary);
	free(cpus), free(mems), free(summary);
	husk_env_free(&env);
	husk_place_free(v, size);
	free(v);
	husk_topo_free(&tp);
	return fflush(stdout) == 0 ? 0 : HUSK_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	/* hwloc dlopens every plugin it finds at init. Placement needs the
	 * Linux CPU/memory discovery, PCI, and the vendors' management
	 * libraries (nvml, rsmi) for device numbers; the OpenGL and OpenCL
	 * plugins only add other names for the same GPUs, libxml2 only a
	 * second XML reader, and the CUDA plugin initialises a CUDA context on
	 * every GPU, from every rank. Leaving them out halves the time to read
	 * the topology here (about 50 ms of CPU to 30). A site or user that
	 * sets the variable decides. */
	if (!getenv("HWLOC_PLUGINS_BLACKLIST") && !getenv("HWLOC_COMPONENTS"))
		setenv("HWLOC_PLUGINS_BLACKLIST", "hwloc_gl,hwloc_opencl,hwloc_cuda,hwloc_xml_libxml", 1);
	if (argc > 1 && !strcmp(argv[1], "rank"))
		return cmd_rank(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "topology"))
		return cmd_topology(argc - 1, argv + 1);
	fprintf(stderr, "husk: husk-place is run by husk ('husk topology', 'husk run "
		"--placement=auto'), not directly\n");
	return HUSK_EXIT_FAILURE;
}
