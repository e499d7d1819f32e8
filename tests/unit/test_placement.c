/* test_placement.c: placement decisions on hwloc XML topologies with GPUs
 * and NICs attached to NUMA nodes: which rank gets which CPUs, NUMA node,
 * GPU and NIC, for several local sizes, a restricted CPU set, and the
 * user's own visible-devices variable; then the real machine.
 *
 * The topologies are made here: hwloc exports a synthetic description
 * ("pack:2 group:2 [numa] core:8 pu:1") to XML, and a PCI bridge with the
 * GPU (and NIC) of each NUMA node is written into that node's Group. */
#define _GNU_SOURCE
#include "topo.h"
#include "unit.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct io {      /* what each Group (NUMA node) gets, in order */
	const char *gpu_vendor;    /* "10de", "1002", or NULL */
	const char *gpu_class;     /* "0302" */
	const char *gpu_osdev;     /* "nvml2", or NULL for a bare PCI device */
	const char *nic;           /* "mlx5_0" or NULL */
	int extra_gpus;            /* more bare GPUs of the same vendor */
};

static char xml_path[64];

/* Write the synthetic topology, with I/O, to a temporary XML file. */
static const char *make_xml(const char *synthetic, const struct io *io, size_t n_io)
{
	hwloc_topology_t t;
	char *buf = NULL, *p;
	int len, group = 0, gp = 1000, fd;
	FILE *f;

	hwloc_topology_init(&t);
	hwloc_topology_set_synthetic(t, synthetic);
	hwloc_topology_load(t);
	hwloc_topology_export_xmlbuffer(t, &buf, &len, 0);
	snprintf(xml_path, sizeof(xml_path), "topo-XXXXXX");
	fd = mkstemp(xml_path);
	f = fdopen(fd, "w");
	for (p = buf; *p;) {
		char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p + 1) : strlen(p);
		fwrite(p, 1, l, f);
		if (strstr(p, "<object type=\"Group\"") && strstr(p, "<object type=\"Group\"") < p + l &&
		    (size_t)group < n_io) {
			const struct io *d = &io[group];
			int bus = group * 16 + 1;
			fprintf(f, "<object type=\"Bridge\" gp_index=\"%d\" bridge_type=\"0-1\" depth=\"0\" "
				"bridge_pci=\"0000:[%02x-%02x]\">\n", gp++, bus, bus + 8);
			for (int g = 0; d->gpu_vendor && g <= d->extra_gpus; g++) {
				fprintf(f, "<object type=\"PCIDev\" gp_index=\"%d\" pci_busid=\"0000:%02x:00.0\" "
					"pci_type=\"%s [%s:20b0] [%s:1450] a1\" pci_link_speed=\"0.0\">\n",
					gp++, bus + g, d->gpu_class, d->gpu_vendor, d->gpu_vendor);
				if (d->gpu_osdev && g == 0)
					fprintf(f, "<object type=\"OSDev\" gp_index=\"%d\" name=\"%s\" "
						"subtype=\"NVML\" osdev_type=\"1\"/>\n", gp++, d->gpu_osdev);
				fprintf(f, "</object>\n");
			}
			if (d->nic) {
				fprintf(f, "<object type=\"PCIDev\" gp_index=\"%d\" pci_busid=\"0000:%02x:00.0\" "
					"pci_type=\"0207 [15b3:101b] [15b3:0007] 00\" pci_link_speed=\"0.0\">\n",
					gp++, bus + 7);
				fprintf(f, "<object type=\"OSDev\" gp_index=\"%d\" name=\"%s\" osdev_type=\"3\">"
					"<info name=\"Port1State\" value=\"1\"/><info name=\"Port2State\" "
					"value=\"4\"/></object>\n</object>\n", gp++, d->nic);
			}
			fprintf(f, "</object>\n");
			group++;
		}
		p += l;
	}
	fclose(f);
	hwloc_free_xmlbuffer(t, buf);
	hwloc_topology_destroy(t);
	return xml_path;
}

/* The fixture of most cases: 2 packages x 2 NUMA nodes x 8 cores; NUMA node
 * i has the GPU numbered gpus[i] (nvml order is PCI order, not NUMA order);
 * mlx5_0 hangs off NUMA node 1, mlx5_1 off NUMA node 2. */
static const struct io four_gpus[] = {
	{ "10de", "0302", "nvml2", NULL, 0 },
	{ "10de", "0302", "nvml0", "mlx5_0", 0 },
	{ "10de", "0302", "nvml3", "mlx5_1", 0 },
	{ "10de", "0302", "nvml1", NULL, 0 },
};
#define SYNTH "pack:2 group:2 [numa] core:8 pu:1"

struct want {
	const char *cpus, *mems, *cuda, *ucx;   /* NULL for cuda/ucx: must be unset */
};

static void check_place(const char *what, const struct husk_topo *tp, int size,
	const struct husk_place_keep *keep, const struct want *want, int n_want)
{
	struct husk_rank_place *v = calloc((size_t)size, sizeof(*v));
	struct husk_err err = { 0 };
	char name[256];

	snprintf(name, sizeof(name), "%s: placed", what);
	CHECK(name, husk_place(tp, size, keep, v, &err) == 0);
	for (int i = 0; i < n_want; i++) {
		const struct want *w = &want[i];
		int r = i < size ? i : size - 1;      /* past the table: the last ranks */
		struct husk_env env;
		char *summary = NULL, *cpus, *mems;

		if (n_want < size && i == n_want - 1)
			r = size - 1;
		husk_env_init(&env);
		husk_place_env(tp, &v[r], r, size, &env, &summary);
		cpus = husk_bitmap_list(v[r].cpus);
		mems = husk_bitmap_list(v[r].mems);
		snprintf(name, sizeof(name), "%s: rank %d cpus", what, r);
		CHECK_STR(name, cpus, w->cpus);
		snprintf(name, sizeof(name), "%s: rank %d NUMA nodes", what, r);
		CHECK_STR(name, mems, w->mems);
		snprintf(name, sizeof(name), "%s: rank %d CUDA_VISIBLE_DEVICES", what, r);
		if (w->cuda)
			CHECK_STR(name, husk_env_get(&env, "CUDA_VISIBLE_DEVICES"), w->cuda);
		else
			CHECK(name, !husk_env_get(&env, "CUDA_VISIBLE_DEVICES"));
		snprintf(name, sizeof(name), "%s: rank %d UCX_NET_DEVICES", what, r);
		if (w->ucx)
			CHECK_STR(name, husk_env_get(&env, "UCX_NET_DEVICES"), w->ucx);
		else
			CHECK(name, !husk_env_get(&env, "UCX_NET_DEVICES"));
		snprintf(name, sizeof(name), "%s: rank %d HUSK_PLACEMENT is the summary", what, r);
		CHECK(name, summary && husk_env_get(&env, "HUSK_PLACEMENT") &&
			!strcmp(husk_env_get(&env, "HUSK_PLACEMENT"), summary));
		free(cpus), free(mems), free(summary);
		husk_env_free(&env);
	}
	husk_place_free(v, size);
	free(v);
}

static void load(struct husk_topo *tp, const char *xml, const char *allowed)
{
	struct husk_err err = { 0 };

	if (husk_topo_load(tp, xml, allowed, &err) < 0)
		printf("# %s\n", err.msg);
}

static void test_four_gpus(void)
{
	const char *xml = make_xml(SYNTH, four_gpus, 4);
	struct husk_topo tp;

	load(&tp, xml, NULL);
	CHECK("XML topology: not this system", !tp.this_system);
	CHECK("XML topology: 4 GPUs and 2 NICs found", tp.n_devs == 6);
	CHECK_STR("XML topology: GPUs sorted by number, first nvml0", tp.devs[0].name, "nvml0");
	CHECK_STR("XML topology: nvml0 is near NUMA node 1", tp.devs[0].numa, "1");
	CHECK_STR("XML topology: mlx5_1 is near NUMA node 2", tp.devs[5].numa, "2");
	CHECK_STR("XML topology: UCX names the active port", tp.devs[4].value, "mlx5_0:2");

	static const struct want four[] = {
		{ "0-7", "0", "2", "mlx5_0:2" }, { "8-15", "1", "0", "mlx5_0:2" },
		{ "16-23", "2", "3", "mlx5_1:2" }, { "24-31", "3", "1", "mlx5_1:2" },
	};
	check_place("4 ranks", &tp, 4, NULL, four, 4);

	static const struct want two[] = {
		{ "0-15", "0-1", "0,2", "mlx5_0:2" }, { "16-31", "2-3", "1,3", "mlx5_1:2" },
	};
	check_place("2 ranks (a package each: both GPUs of it)", &tp, 2, NULL, two, 2);

	static const struct want one[] = { { "0-31", "0-3", "0,1,2,3", "mlx5_0:2,mlx5_1:2" } };
	check_place("1 rank (everything)", &tp, 1, NULL, one, 1);

	static const struct want three[] = {
		{ "0-7", "0", "2", "mlx5_0:2" }, { "8-15", "1", "0", "mlx5_0:2" },
		{ "16-31", "2-3", "1,3", "mlx5_1:2" },
	};
	check_place("3 ranks (no GPU left unused)", &tp, 3, NULL, three, 3);

	static const struct want eight[] = {
		{ "0-3", "0", "2", "mlx5_0:2" }, { "4-7", "0", "2", "mlx5_0:2" },
		{ "8-11", "1", "0", "mlx5_0:2" }, { "12-15", "1", "0", "mlx5_0:2" },
		{ "16-19", "2", "3", "mlx5_1:2" }, { "20-23", "2", "3", "mlx5_1:2" },
		{ "24-27", "3", "1", "mlx5_1:2" }, { "28-31", "3", "1", "mlx5_1:2" },
	};
	check_place("8 ranks (two per NUMA node share its GPU)", &tp, 8, NULL, eight, 8);

	static const struct want many[] = {
		{ "0", "0", "2", "mlx5_0:2" }, { "0", "0", "2", "mlx5_0:2" },
		{ "31", "3", "1", "mlx5_1:2" },
	};
	check_place("64 ranks on 32 CPUs (two per CPU)", &tp, 64, NULL, many, 3);

	/* What the user set is only narrowed. */
	struct husk_place_keep keep = { .cuda = "1,3" };
	static const struct want kept[] = {
		{ "0-7", "0", "1", "mlx5_0:2" }, { "8-15", "1", "3", "mlx5_0:2" },
		{ "16-23", "2", "3", "mlx5_1:2" }, { "24-31", "3", "1", "mlx5_1:2" },
	};
	check_place("CUDA_VISIBLE_DEVICES=1,3 already set: only 1 and 3", &tp, 4, &keep, kept, 4);

	struct husk_place_keep mig = { .cuda = "MIG-5f3a", .ucx = "mlx5_1:1" };
	static const struct want untouched[] = {
		{ "0-15", "0-1", NULL, NULL }, { "16-31", "2-3", NULL, NULL },
	};
	check_place("a MIG id and UCX_NET_DEVICES already set: both left alone", &tp, 2, &mig,
		untouched, 2);

	struct husk_place_keep empty = { .cuda = "" };
	static const struct want nogpu[] = {
		{ "0-15", "0-1", NULL, "mlx5_0:2" }, { "16-31", "2-3", NULL, "mlx5_1:2" },
	};
	check_place("CUDA_VISIBLE_DEVICES='' (no GPU): none given", &tp, 2, &empty, nogpu, 2);
	husk_topo_free(&tp);

	/* A restricted CPU set: what Slurm gave is shared, never more. With
	 * fewer ranks than GPUs, the far GPUs still go to their nearest rank:
	 * the package's other GPU. */
	load(&tp, xml, "8-23");
	static const struct want restricted[] = {
		{ "8-15", "1", "0,2", "mlx5_0:2" }, { "16-23", "2", "1,3", "mlx5_1:2" },
	};
	check_place("allowed 8-23, 2 ranks", &tp, 2, NULL, restricted, 2);
	static const struct want restricted4[] = {
		{ "8-11", "1", "0", "mlx5_0:2" }, { "12-15", "1", "0", "mlx5_0:2" },
		{ "16-19", "2", "3", "mlx5_1:2" }, { "20-23", "2", "3", "mlx5_1:2" },
	};
	check_place("allowed 8-23, 4 ranks", &tp, 4, NULL, restricted4, 4);
	husk_topo_free(&tp);

	load(&tp, xml, "4-11");
	/* GPUs 0 and 2 are near; 1 and 3 (the other package) are equally far
	 * from both and go to the rank with fewer. NICs: one each is enough. */
	static const struct want straddle[] = {
		{ "4-7", "0", "1,2", "mlx5_0:2" }, { "8-11", "1", "0,3", "mlx5_0:2" },
	};
	check_place("allowed 4-11 (across two NUMA nodes), 2 ranks", &tp, 2, NULL, straddle, 2);
	husk_topo_free(&tp);

	load(&tp, xml, "0-3");
	static const struct want onenode[] = {
		{ "0-3", "0", "0,1,2,3", "mlx5_0:2,mlx5_1:2" },
	};
	check_place("allowed 0-3, 1 rank: still every GPU (none is wasted)", &tp, 1, NULL, onenode, 1);
	husk_topo_free(&tp);

	struct husk_err err = { 0 };
	CHECK("allowed CPUs outside the topology: an error", husk_topo_load(&tp, xml, "40-47", &err) < 0 &&
		strstr(err.msg, "40-47"));
	husk_topo_free(&tp);
	CHECK("a malformed CPU list: an error", husk_topo_load(&tp, xml, "a-b", &err) < 0 &&
		strstr(err.msg, "'a-b'"));
	husk_topo_free(&tp);
	unlink(xml);
	CHECK("a missing XML file: an error naming it", husk_topo_load(&tp, xml, NULL, &err) < 0 &&
		strstr(err.msg, xml));
	husk_topo_free(&tp);
}

/* AMD GPUs hwloc has no ROCm SMI device for: numbered in PCI order,
 * ROCR_VISIBLE_DEVICES; two per NUMA node; no NIC. */
static void test_amd(void)
{
	static const struct io amd[] = {
		{ "1002", "1200", NULL, NULL, 1 },
		{ "1002", "1200", NULL, NULL, 1 },
	};
	const char *xml = make_xml("pack:1 group:2 [numa] core:2 pu:2", amd, 2);
	struct husk_topo tp;
	struct husk_rank_place v[4];
	struct husk_err err = { 0 };

	load(&tp, xml, NULL);
	CHECK("AMD: 4 GPUs from PCI alone", tp.n_devs == 4 && tp.devs[0].kind == HUSK_DEV_GPU);
	CHECK_STR("AMD: the variable is ROCR_VISIBLE_DEVICES", tp.devs[0].var, "ROCR_VISIBLE_DEVICES");
	CHECK("AMD: 4 ranks placed", husk_place(&tp, 4, NULL, v, &err) == 0);
	for (int r = 0; r < 4; r++) {
		struct husk_env env;
		char *summary = NULL, name[64], want[2] = { (char)('0' + r), 0 };
		husk_env_init(&env);
		husk_place_env(&tp, &v[r], r, 4, &env, &summary);
		snprintf(name, sizeof(name), "AMD: rank %d gets GPU %d", r, r);
		CHECK_STR(name, husk_env_get(&env, "ROCR_VISIBLE_DEVICES"), want);
		snprintf(name, sizeof(name), "AMD: rank %d has whole cores (2 threads)", r);
		CHECK(name, hwloc_bitmap_weight(v[r].cpus) == 2);
		free(summary);
		husk_env_free(&env);
	}
	husk_place_free(v, 4);
	husk_topo_free(&tp);
	unlink(xml);
}

/* This machine: the allowed CPUs are this process's affinity. */
static void test_this_machine(void)
{
	struct husk_topo tp;
	struct husk_err err = { 0 };
	cpu_set_t set;
	int n = 0;

	CHECK("this machine: loads", husk_topo_load(&tp, NULL, NULL, &err) == 0);
	CHECK("this machine: is this system", tp.this_system);
	sched_getaffinity(0, sizeof(set), &set);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && hwloc_bitmap_isset(tp.allowed, (unsigned)c))
			n++;
	CHECK("this machine: allowed = the process's affinity", n == CPU_COUNT(&set) &&
		hwloc_bitmap_weight(tp.allowed) == n);
	if (n >= 2) {
		struct husk_rank_place *v = calloc((size_t)n, sizeof(*v));
		CHECK("this machine: one rank per allowed CPU", husk_place(&tp, n, NULL, v, &err) == 0);
		for (int r = 0; r < n; r++)
			CHECK("this machine: each rank's share is one CPU", hwloc_bitmap_weight(v[r].cpus) == 1);
		CHECK("this machine: ranks 0 and 1 do not share", !hwloc_bitmap_isequal(v[0].cpus, v[1].cpus));
		husk_place_free(v, n);
		free(v);
	}
	husk_topo_free(&tp);
}

int main(void)
{
	test_four_gpus();
	test_amd();
	test_this_machine();
	return unit_done();
}
