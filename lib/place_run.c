/* place_run.c: the side of --placement=auto that lives in husk run itself,
 * without hwloc: which local rank this is (from the launcher's variables),
 * asking the husk-place helper for the rank's share, and binding the calling
 * process to it. Binding husk itself, before the container's processes
 * exist, makes everything it starts inherit the binding: the affinity mask
 * and the memory policy are both copied by fork and kept across execve. */
#include "husk_config.h"
#include "place.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/mempolicy.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- local rank and size ------------------------------------------------ */

static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

int husk_slurm_tasks_on_node(const char *list, int node)
{
	const char *p = list;

	while (p && *p) {
		char *end;
		long n = strtol(p, &end, 10), reps = 1;

		if (end == p || n < 0)
			return -1;
		p = end;
		if (*p == '(') {
			if (p[1] != 'x')
				return -1;
			reps = strtol(p + 2, &end, 10);
			if (end == p + 2 || *end != ')' || reps < 1)
				return -1;
			p = end + 1;
		}
		if (node < reps)
			return (int)n;
		node -= (int)reps;
		if (*p == ',')
			p++;
		else if (*p)
			return -1;
	}
	return -1;
}

struct pair { const char *rank, *size, *source; };

int husk_local_from_env(const char *(*get)(const char *name), struct husk_local *out,
	struct husk_err *err)
{
	static const struct pair pairs[] = {
		{ "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "Open MPI" },
		{ "PMIX_LOCAL_RANK", "PMIX_LOCAL_SIZE", "PMIx" },
		{ "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MPICH/Hydra" },
	};
	const char *tasks, *tasks_var = "SLURM_STEP_TASKS_PER_NODE", *node_s;
	int node = 0;

	for (size_t i = 0; i < sizeof(pairs) / sizeof(*pairs); i++) {
		const char *r = get(pairs[i].rank), *s = get(pairs[i].size);
		if (!r)
			continue;
		if (parse_int(r, &out->rank) < 0 || parse_int(s, &out->size) < 0 ||
		    out->rank >= out->size)
			return husk_err_set(err, 0, "--placement=auto: %s='%s' with %s='%s' is not a "
				"local rank below a local size", pairs[i].rank, r, pairs[i].size,
				s ? s : "(unset)");
		out->source = pairs[i].source;
		return 0;
	}
	if (get("SLURM_LOCALID")) {
		if (!(tasks = get(tasks_var)))
			tasks = get(tasks_var = "SLURM_TASKS_PER_NODE");
		node_s = get("SLURM_NODEID");
		if (parse_int(get("SLURM_LOCALID"), &out->rank) < 0 || !tasks ||
		    (node_s && parse_int(node_s, &node) < 0) ||
		    (out->size = husk_slurm_tasks_on_node(tasks, node)) < 1 || out->rank >= out->size)
			return husk_err_set(err, 0, "--placement=auto: SLURM_LOCALID='%s' with %s='%s' "
				"and SLURM_NODEID='%s' give no local rank below the node's task count",
				get("SLURM_LOCALID"), tasks_var, tasks ? tasks : "(unset)",
				node_s ? node_s : "(unset)");
		out->source = "Slurm";
		return 0;
	}
	return husk_err_set(err, 0, "--placement=auto: cannot tell this process's local rank: "
		"none of OMPI_COMM_WORLD_LOCAL_RANK, PMIX_LOCAL_RANK, MPI_LOCALRANKID or "
		"SLURM_LOCALID is set; start husk under srun or mpirun, or leave --placement out");
}

/* ---- husk-place's answer ---------------------------------------------------- */

void husk_placement_init(struct husk_placement *p)
{
	memset(p, 0, sizeof(*p));
	husk_env_init(&p->env);
}

void husk_placement_free(struct husk_placement *p)
{
	free(p->cpus);
	free(p->mems);
	free(p->why_not);
	free(p->summary);
	husk_env_free(&p->env);
	memset(p, 0, sizeof(*p));
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	return (*dst = strdup(v)) ? 0 : -1;
}

int husk_placement_parse(const char *text, struct husk_placement *p, struct husk_err *err)
{
	autofree char *copy = strdup(text);
	char *save = NULL;

	if (!copy)
		return husk_err_set(err, ENOMEM, "placement");
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(l, ' '), *v = sp ? sp + 1 : (char *)"";
		int r = 0;

		if (sp)
			*sp = '\0';
		if (!strcmp(l, "error"))
			return husk_err_set(err, 0, "%s", v);
		if (!strcmp(l, "cpus"))
			r = set_str(&p->cpus, v);
		else if (!strcmp(l, "mems"))
			r = *v ? set_str(&p->mems, v) : 0;
		else if (!strcmp(l, "apply")) {
			p->apply = v[0] == '1';
			if (!p->apply && strlen(v) > 2)
				r = set_str(&p->why_not, v + 2);
		} else if (!strcmp(l, "env"))
			r = husk_env_put(&p->env, v);
		else if (!strcmp(l, "summary"))
			r = set_str(&p->summary, v);
		else if (!strcmp(l, "rank"))
			r = sscanf(v, "%d/%d", &p->rank, &p->size) == 2 ? 0 : -1;
		if (r < 0)
			return husk_err_set(err, 0, "placement: husk-place answered a malformed line "
				"'%s %s'", l, v);
	}
	if (!p->cpus || !p->summary)
		return husk_err_set(err, 0, "placement: husk-place gave no answer; reinstall husk");
	return 0;
}

int husk_placement_query(const char *helper, const struct husk_local *l, char *const *keep,
	struct husk_placement *p, struct husk_err *err)
{
	char rank[16], size[16];
	const char *argv[64];
	int n = 0, fds[2], status;
	autofree char *out = NULL;
	size_t len;
	pid_t pid;

	snprintf(rank, sizeof(rank), "%d", l->rank);
	snprintf(size, sizeof(size), "%d", l->size);
	argv[n++] = "husk-place";
	argv[n++] = "rank";
	argv[n++] = "--rank";
	argv[n++] = rank;
	argv[n++] = "--size";
	argv[n++] = size;
	for (; keep && *keep && n < 60; keep++) {
		argv[n++] = "--keep";
		argv[n++] = *keep;
	}
	argv[n] = NULL;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return husk_err_set(err, errno, "placement: pipe");
	if ((pid = fork()) < 0) {
		close(fds[0]), close(fds[1]);
		return husk_err_set(err, errno, "placement: fork");
	}
	if (pid == 0) {
		if (dup2(fds[1], 1) < 0)
			_exit(127);
		execv(helper, (char *const *)argv);
		dprintf(1, "error placement: cannot run '%s': %s; reinstall husk\n", helper,
			strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	if (husk_read_fd(fds[0], &out, &len, 1 << 20) < 0)
		out = NULL;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!out)
		return husk_err_set(err, errno, "placement: reading husk-place's answer");
	if (husk_placement_parse(out, p, err) < 0)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return husk_err_set(err, 0, "placement: husk-place failed (status %d)", status);
	return 0;
}

/* ---- binding ------------------------------------------------------------------ */

int husk_cpulist_parse(const char *list, unsigned long *mask, size_t bits)
{
	const size_t w = 8 * sizeof(unsigned long);
	const char *p = list;

	memset(mask, 0, (bits + w - 1) / w * sizeof(unsigned long));
	while (*p) {
		char *end;
		unsigned long a = strtoul(p, &end, 10), b = a;

		if (end == p)
			return -1;
		p = end;
		if (*p == '-') {
			b = strtoul(p + 1, &end, 10);
			if (end == p + 1 || b < a)
				return -1;
			p = end;
		}
		if (b >= bits)
			return -1;
		for (unsigned long i = a; i <= b; i++)
			mask[i / w] |= 1UL << (i % w);
		if (*p == ',')
			p++;
		else if (*p)
			return -1;
	}
	return 0;
}

#define MAX_CPUS 8192
#define MAX_NODES 1024

/* The affinity this process had before placement bound it, for the one
 * process husk starts that serves every rank: a session server must not
 * stay on the first rank's share and memory (husk_placement_unbind). A
 * process-wide value, because the server is forked deep inside husk_run. */
static cpu_set_t *before;

void husk_placement_unbind(void)
{
	if (!before)
		return;
	sched_setaffinity(0, CPU_ALLOC_SIZE(MAX_CPUS), before);
	syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0UL);
}

int husk_placement_apply(const struct husk_placement *p, struct husk_err *err)
{
	unsigned long nodes[MAX_NODES / (8 * sizeof(unsigned long))];
	cpu_set_t *set;
	size_t setsize = CPU_ALLOC_SIZE(MAX_CPUS);

	if (!p->apply)
		return 0;
	if (!(set = CPU_ALLOC(MAX_CPUS)))
		return husk_err_set(err, ENOMEM, "placement");
	/* cpu_set_t is an array of unsigned long bits, the layout parse fills. */
	if (husk_cpulist_parse(p->cpus, (unsigned long *)set, MAX_CPUS) < 0) {
		CPU_FREE(set);
		return husk_err_set(err, 0, "placement: CPU list '%s' from husk-place is malformed",
			p->cpus);
	}
	if (!before && (before = CPU_ALLOC(MAX_CPUS)) &&
	    sched_getaffinity(0, setsize, before) < 0) {
		CPU_FREE(before);
		before = NULL;
	}
	if (sched_setaffinity(0, setsize, set) < 0) {
		int e = errno;
		CPU_FREE(set);
		return husk_err_set(err, e, "placement: cannot bind to CPUs %s", p->cpus);
	}
	CPU_FREE(set);
	if (!p->mems)
		return 0;
	if (husk_cpulist_parse(p->mems, nodes, MAX_NODES) < 0)
		return husk_err_set(err, 0, "placement: NUMA node list '%s' from husk-place is malformed",
			p->mems);
	/* MPOL_BIND: allocations only from the share's nodes (what srun
	 * --mem-bind=local and Open MPI's binding do). maxnode counts bits
	 * and the kernel reads maxnode - 1 of them. ENOSYS: a kernel without
	 * NUMA support, where there is nothing to bind. */
	if (syscall(SYS_set_mempolicy, MPOL_BIND, nodes, (unsigned long)MAX_NODES + 1) < 0 &&
	    errno != ENOSYS)
		return husk_err_set(err, errno, "placement: cannot bind memory to NUMA node(s) %s",
			p->mems);
	return 0;
}
