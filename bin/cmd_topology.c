/* cmd_topology.c: `husk topology`: the node as placement sees it (packages,
 * NUMA nodes, GPUs and NICs with their NUMA node) and the placement each
 * local rank would get. Runs inside husk-place, which links hwloc. */
#include "husk_config.h"
#include "cli.h"
#include "place.h"
#include "topo.h"

#include <getopt.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_topology(int argc, char **argv);

static void help_topology(void)
{
	printf("Usage: husk topology [--local-size N] [--json] [--xml FILE] [--cpus LIST]\n\n"
	       "Show the node's topology as 'husk run --placement=auto' sees it: packages,\n"
	       "NUMA nodes with their CPUs and memory, GPUs and NICs with their NUMA node,\n"
	       "the CPUs ranks may use (this process's affinity: what Slurm or the MPI\n"
	       "launcher gave), then the placement each of N local ranks would get: its\n"
	       "CPUs, NUMA node(s), GPU(s) and NIC(s), and the variables set inside.\n\n"
	       "Options:\n"
	       "      --local-size N  place N local ranks (default: the local size the\n"
	       "                      launcher gives, else one rank per GPU, else one per\n"
	       "                      NUMA node)\n"
	       "      --json          one JSON object instead of text\n"
	       "      --xml FILE      read the topology from an hwloc XML file (lstopo\n"
	       "                      FILE.xml writes one; HWLOC_XMLFILE does the same)\n"
	       "      --cpus LIST     share these CPUs (e.g. 0-15) instead of the allowed ones\n"
	       "      --help          this text\n");
}

static const char *getenv_const(const char *name)
{
	return getenv(name);
}

static int count_type(const struct husk_topo *tp, hwloc_obj_type_t type)
{
	int n = hwloc_get_nbobjs_by_type(tp->t, type);

	return n < 0 ? 0 : n;
}

static int count_kind(const struct husk_topo *tp, enum husk_dev_kind kind)
{
	int n = 0;

	for (size_t i = 0; i < tp->n_devs; i++)
		n += tp->devs[i].kind == kind;
	return n;
}

static int default_size(const struct husk_topo *tp)
{
	struct husk_local l;
	struct husk_err err = { 0 };
	int n;

	if (husk_local_from_env(getenv_const, &l, &err) == 0)
		return l.size;
	if ((n = count_kind(tp, HUSK_DEV_GPU)) > 0)
		return n;
	n = count_type(tp, HWLOC_OBJ_NUMANODE);
	return n > 0 ? n : 1;
}

static char *obj_list(hwloc_const_bitmap_t b)
{
	char *s = b ? husk_bitmap_list(b) : NULL;

	return s ? s : strdup("");
}

/* ---- text ---------------------------------------------------------------- */

static void print_text(const struct husk_topo *tp, const struct husk_rank_place *v, int size)
{
	hwloc_obj_t o = NULL;
	char *s = obj_list(tp->allowed);

	printf("topology: %s%s\n", tp->source, tp->this_system ? "" : " (not this machine's: "
		"husk run shows the placement but does not bind)");
	printf("packages: %d, cores: %d, hardware threads: %d\n", count_type(tp, HWLOC_OBJ_PACKAGE),
		count_type(tp, HWLOC_OBJ_CORE), count_type(tp, HWLOC_OBJ_PU));
	while ((o = hwloc_get_next_obj_by_type(tp->t, HWLOC_OBJ_NUMANODE, o))) {
		char *c = obj_list(o->cpuset);
		unsigned long long mem = o->attr ? o->attr->numanode.local_memory : 0;
		printf("NUMA node %u: cpus %s", o->os_index, *c ? c : "none");
		if (mem)
			printf(", memory %.1f GiB", (double)mem / (1 << 30));
		printf("\n");
		free(c);
	}
	for (size_t i = 0; i < tp->n_devs; i++) {
		const struct husk_dev *d = &tp->devs[i];
		printf("%s %s", d->kind == HUSK_DEV_GPU ? "GPU" : "NIC", d->name);
		if (d->vendor || d->pci)
			printf(" (%s%s%s)", d->vendor ? d->vendor : "", d->vendor && d->pci ? " " : "",
				d->pci ? d->pci : "");
		printf(": NUMA node %s, %s=%s\n", d->numa ? d->numa : "?", d->var, d->value);
	}
	if (!count_kind(tp, HUSK_DEV_GPU))
		printf("GPUs: none found\n");
	if (!count_kind(tp, HUSK_DEV_NIC))
		printf("NICs: none found (OpenFabrics devices)\n");
	printf("allowed cpus: %s\n\n", s);
	free(s);
	printf("placement of %d local rank%s:\n", size, size == 1 ? "" : "s");
	for (int r = 0; r < size; r++) {
		struct husk_env env;
		char *summary = NULL;
		husk_env_init(&env);
		if (husk_place_env(tp, &v[r], r, size, &env, &summary) == 0) {
			printf("  %s\n", summary);
			for (size_t i = 0; i < env.n; i++)
				if (strncmp(env.vars[i], "HUSK_PLACEMENT=", 15))
					printf("      %s\n", env.vars[i]);
		}
		free(summary);
		husk_env_free(&env);
	}
}

/* ---- JSON ---------------------------------------------------------------- */

static json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *jlist(hwloc_const_bitmap_t b)
{
	char *s = obj_list(b);
	json_object *j = json_object_new_string(s);

	free(s);
	return j;
}

static json_object *dev_names(const struct husk_topo *tp, const size_t *idx, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(tp->devs[idx[i]].name));
	return a;
}

static void print_json(const struct husk_topo *tp, const struct husk_rank_place *v, int size)
{
	json_object *top = json_object_new_object(), *numa = json_object_new_array();
	json_object *gpus = json_object_new_array(), *nics = json_object_new_array();
	json_object *ranks = json_object_new_array();
	hwloc_obj_t o = NULL;

	json_object_object_add(top, "source", jstr(tp->source));
	json_object_object_add(top, "this_system", json_object_new_boolean(tp->this_system));
	json_object_object_add(top, "packages", json_object_new_int(count_type(tp, HWLOC_OBJ_PACKAGE)));
	json_object_object_add(top, "cores", json_object_new_int(count_type(tp, HWLOC_OBJ_CORE)));
	json_object_object_add(top, "pus", json_object_new_int(count_type(tp, HWLOC_OBJ_PU)));
	while ((o = hwloc_get_next_obj_by_type(tp->t, HWLOC_OBJ_NUMANODE, o))) {
		json_object *n = json_object_new_object();
		json_object_object_add(n, "os_index", json_object_new_int((int)o->os_index));
		json_object_object_add(n, "cpus", jlist(o->cpuset));
		json_object_object_add(n, "memory", json_object_new_int64(
			(int64_t)(o->attr ? o->attr->numanode.local_memory : 0)));
		json_object_array_add(numa, n);
	}
	for (size_t i = 0; i < tp->n_devs; i++) {
		const struct husk_dev *d = &tp->devs[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", jstr(d->name));
		json_object_object_add(j, "vendor", jstr(d->vendor));
		json_object_object_add(j, "pci", jstr(d->pci));
		json_object_object_add(j, "numa", jstr(d->numa));
		json_object_object_add(j, "variable", jstr(d->var));
		json_object_object_add(j, "value", jstr(d->value));
		json_object_array_add(d->kind == HUSK_DEV_GPU ? gpus : nics, j);
	}
	json_object_object_add(top, "numa_nodes", numa);
	json_object_object_add(top, "gpus", gpus);
	json_object_object_add(top, "nics", nics);
	json_object_object_add(top, "allowed_cpus", jlist(tp->allowed));
	json_object_object_add(top, "local_size", json_object_new_int(size));
	for (int r = 0; r < size; r++) {
		json_object *j = json_object_new_object(), *env = json_object_new_object();
		struct husk_env e;
		char *summary = NULL;
		husk_env_init(&e);
		husk_place_env(tp, &v[r], r, size, &e, &summary);
		json_object_object_add(j, "rank", json_object_new_int(r));
		json_object_object_add(j, "cpus", jlist(v[r].cpus));
		json_object_object_add(j, "mems", jlist(v[r].mems));
		json_object_object_add(j, "gpus", dev_names(tp, v[r].gpus, v[r].n_gpus));
		json_object_object_add(j, "nics", dev_names(tp, v[r].nics, v[r].n_nics));
		for (size_t i = 0; i < e.n; i++) {
			char *eq = strchr(e.vars[i], '=');
			*eq = '\0';
			json_object_object_add(env, e.vars[i], json_object_new_string(eq + 1));
		}
		json_object_object_add(j, "env", env);
		json_object_object_add(j, "summary", jstr(summary));
		json_object_array_add(ranks, j);
		free(summary);
		husk_env_free(&e);
	}
	json_object_object_add(top, "ranks", ranks);
	printf("%s\n", json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
		JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(top);
}

int cmd_topology(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_XML, OPT_CPUS, OPT_SIZE, OPT_HELP };
	static const struct option opts[] = {
		{ "local-size", required_argument, NULL, OPT_SIZE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "xml", required_argument, NULL, OPT_XML },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *xml = NULL, *cpus = NULL;
	struct husk_place_keep keep = { getenv("CUDA_VISIBLE_DEVICES"),
		getenv("ROCR_VISIBLE_DEVICES"), getenv("UCX_NET_DEVICES") };
	struct husk_err err = { 0 };
	struct husk_topo tp;
	struct husk_rank_place *v;
	bool json = false;
	int size = 0, c;
	char *end;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SIZE:
			size = (int)strtol(optarg, &end, 10);
			if (*end || size < 1 || size > 4096)
				return cli_usage_error("topology", "--local-size '%s': want a number "
					"from 1 to 4096", optarg);
			break;
		case OPT_JSON: json = true; break;
		case OPT_XML: xml = optarg; break;
		case OPT_CPUS: cpus = optarg; break;
		case OPT_HELP: help_topology(); return 0;
		case ':':
			return cli_usage_error("topology", "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error("topology", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("topology", "unexpected argument '%s'", argv[optind]);
	if (husk_topo_load(&tp, xml, cpus, &err) < 0) {
		husk_topo_free(&tp);
		return cli_fail(&err);
	}
	if (!size)
		size = default_size(&tp);
	if (!(v = calloc((size_t)size, sizeof(*v))) || husk_place(&tp, size, &keep, v, &err) < 0) {
		husk_topo_free(&tp);
		return cli_fail(&err);
	}
	if (json)
		print_json(&tp, v, size);
	else
		print_text(&tp, v, size);
	husk_place_free(v, size);
	free(v);
	husk_topo_free(&tp);
	return fflush(stdout) == 0 ? 0 : HUSK_EXIT_FAILURE;
}
