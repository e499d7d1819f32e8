/* test_place_env.c: the local rank and size from launcher variables, Slurm's
 * task-count lists, CPU lists, and husk-place's answer (no hwloc needed). */
#include "place.h"
#include "unit.h"

#include <stdlib.h>

static const char *const *table;

static const char *get(const char *name)
{
	size_t n = strlen(name);

	for (const char *const *p = table; p && *p; p++)
		if (!strncmp(*p, name, n) && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

static int local(const char *const *env, struct husk_local *l, struct husk_err *err)
{
	table = env;
	memset(l, 0, sizeof(*l));
	memset(err, 0, sizeof(*err));
	return husk_local_from_env(get, l, err);
}

static void test_launchers(void)
{
	struct husk_local l;
	struct husk_err err;

	const char *ompi[] = { "OMPI_COMM_WORLD_LOCAL_RANK=3", "OMPI_COMM_WORLD_LOCAL_SIZE=4",
		"SLURM_LOCALID=0", "SLURM_TASKS_PER_NODE=1", NULL };
	CHECK("Open MPI's local rank wins over the batch step's SLURM_LOCALID",
		local(ompi, &l, &err) == 0 && l.rank == 3 && l.size == 4 && !strcmp(l.source, "Open MPI"));

	const char *pmix[] = { "PMIX_LOCAL_RANK=1", "PMIX_LOCAL_SIZE=2", NULL };
	CHECK("PMIx local rank and size", local(pmix, &l, &err) == 0 && l.rank == 1 && l.size == 2 &&
		!strcmp(l.source, "PMIx"));

	const char *hydra[] = { "MPI_LOCALRANKID=5", "MPI_LOCALNRANKS=8", NULL };
	CHECK("MPICH/Hydra local rank and size", local(hydra, &l, &err) == 0 && l.rank == 5 &&
		l.size == 8);

	const char *slurm[] = { "SLURM_LOCALID=1", "SLURM_NODEID=3", "SLURM_TASKS_PER_NODE=4(x3),2",
		NULL };
	CHECK("Slurm: node 3 of 4(x3),2 runs 2 tasks", local(slurm, &l, &err) == 0 && l.rank == 1 &&
		l.size == 2 && !strcmp(l.source, "Slurm"));

	const char *step[] = { "SLURM_LOCALID=2", "SLURM_NODEID=0", "SLURM_TASKS_PER_NODE=16",
		"SLURM_STEP_TASKS_PER_NODE=4", NULL };
	CHECK("Slurm: the step's task count wins over the job's", local(step, &l, &err) == 0 &&
		l.rank == 2 && l.size == 4);

	const char *none[] = { "SLURM_JOB_ID=7", "PATH=/bin", NULL };
	CHECK("no local rank: an error naming the variables looked for",
		local(none, &l, &err) < 0 && strstr(err.msg, "OMPI_COMM_WORLD_LOCAL_RANK") &&
		strstr(err.msg, "SLURM_LOCALID") && strstr(err.msg, "--placement"));

	const char *beyond[] = { "OMPI_COMM_WORLD_LOCAL_RANK=4", "OMPI_COMM_WORLD_LOCAL_SIZE=4", NULL };
	CHECK("a local rank not below the local size is refused", local(beyond, &l, &err) < 0 &&
		strstr(err.msg, "OMPI_COMM_WORLD_LOCAL_RANK='4'"));

	const char *nosize[] = { "PMIX_LOCAL_RANK=0", NULL };
	CHECK("a local rank without a size is refused", local(nosize, &l, &err) < 0 &&
		strstr(err.msg, "PMIX_LOCAL_SIZE='(unset)'"));

	const char *badlist[] = { "SLURM_LOCALID=0", "SLURM_TASKS_PER_NODE=2(3)", NULL };
	CHECK("a malformed Slurm task list is refused, naming it", local(badlist, &l, &err) < 0 &&
		strstr(err.msg, "2(3)"));
}

static void test_tasks_list(void)
{
	CHECK("tasks: 8 on node 0", husk_slurm_tasks_on_node("8", 0) == 8);
	CHECK("tasks: one entry, node 1 is beyond", husk_slurm_tasks_on_node("8", 1) == -1);
	CHECK("tasks: 2(x3),1 node 2", husk_slurm_tasks_on_node("2(x3),1", 2) == 2);
	CHECK("tasks: 2(x3),1 node 3", husk_slurm_tasks_on_node("2(x3),1", 3) == 1);
	CHECK("tasks: 1,3,5 node 1", husk_slurm_tasks_on_node("1,3,5", 1) == 3);
	CHECK("tasks: garbage", husk_slurm_tasks_on_node("x", 0) == -1);
	CHECK("tasks: unclosed repeat", husk_slurm_tasks_on_node("2(x3", 0) == -1);
}

static void test_cpulist(void)
{
	unsigned long m[2];

	CHECK("cpulist 0-3,8", husk_cpulist_parse("0-3,8", m, 128) == 0 && m[0] == 0x10f && m[1] == 0);
	CHECK("cpulist 64", husk_cpulist_parse("64", m, 128) == 0 && m[0] == 0 && m[1] == 1);
	CHECK("cpulist beyond the mask", husk_cpulist_parse("128", m, 128) < 0);
	CHECK("cpulist reversed range", husk_cpulist_parse("3-1", m, 128) < 0);
	CHECK("cpulist junk", husk_cpulist_parse("1;2", m, 128) < 0);
}

static void test_answer(void)
{
	struct husk_placement p;
	struct husk_err err = { 0 };

	husk_placement_init(&p);
	CHECK("parse husk-place's answer", husk_placement_parse("rank 1/4\ncpus 8-15\nmems 1\n"
		"apply 0 not bound: the topology is XML\nenv CUDA_VISIBLE_DEVICES=0\n"
		"env UCX_NET_DEVICES=mlx5_0:1\nsummary rank 1/4: cpus 8-15, mem node 1, gpu 0\n",
		&p, &err) == 0);
	CHECK_STR("answer: cpus", p.cpus, "8-15");
	CHECK_STR("answer: mems", p.mems, "1");
	CHECK("answer: not applied, with the reason", !p.apply && p.why_not &&
		!strcmp(p.why_not, "not bound: the topology is XML"));
	CHECK_STR("answer: CUDA_VISIBLE_DEVICES", husk_env_get(&p.env, "CUDA_VISIBLE_DEVICES"), "0");
	CHECK_STR("answer: UCX_NET_DEVICES", husk_env_get(&p.env, "UCX_NET_DEVICES"), "mlx5_0:1");
	CHECK("answer: rank and size", p.rank == 1 && p.size == 4);
	husk_placement_free(&p);

	husk_placement_init(&p);
	CHECK("an error answer becomes the error", husk_placement_parse(
		"error placement: cannot read the topology file 'x.xml'\n", &p, &err) < 0 &&
		!strcmp(err.msg, "placement: cannot read the topology file 'x.xml'"));
	husk_placement_free(&p);

	husk_placement_init(&p);
	CHECK("an empty answer is an error", husk_placement_parse("", &p, &err) < 0 &&
		strstr(err.msg, "no answer"));
	husk_placement_free(&p);

	/* Not applied: binding does nothing, even with impossible CPUs. */
	husk_placement_init(&p);
	husk_placement_parse("cpus 4000\napply 0 xml\nsummary s\n", &p, &err);
	CHECK("apply does nothing for a foreign topology", husk_placement_apply(&p, &err) == 0);
	husk_placement_free(&p);
}

int main(void)
{
	test_launchers();
	test_tasks_list();
	test_cpulist();
	test_answer();
	return unit_done();
}
