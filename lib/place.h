/* place.h: placement of local ranks (--placement=auto, husk topology).
 *
 * Two halves, so that husk run never loads hwloc unless asked to:
 *
 *  - placement.c (libhusk-place, linked with hwloc, used by the husk-place
 *    helper and the unit tests) reads the node's topology and decides, for
 *    each of N local ranks, its share of the allowed CPUs, the NUMA nodes of
 *    that share, and the nearest GPUs and NICs.
 *  - place_run.c (libhusk, no hwloc) finds the local rank and size from the
 *    launcher's environment, asks husk-place for one rank's decision (a small
 *    line protocol on a pipe), and applies it to the calling process:
 *    sched_setaffinity and set_mempolicy(MPOL_BIND), both inherited by every
 *    process husk starts afterwards.
 *
 * Order in husk run (bin/cmd_run.c): placement is decided and applied right
 * after the options are parsed, before anything else reads the environment
 * meant for the container, so that the GPU logic that decides which device
 * nodes appear sees the CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES chosen
 * here (in the plan's environment, see husk_placement_env). */
#ifndef HUSK_PLACE_H
#define HUSK_PLACE_H

#include "husk.h"

/* ---- the launcher's view: which local rank am I? ------------------------ */

struct husk_local {
	int rank, size;           /* 0 <= rank < size */
	const char *source;       /* "Open MPI", "PMIx", "MPICH/Hydra", "Slurm", ... */
};
/* From the environment, through getenv_fn (getenv in husk; a table in
 * tests), in this order: OMPI_COMM_WORLD_LOCAL_RANK/_LOCAL_SIZE,
 * PMIX_LOCAL_RANK/PMIX_LOCAL_SIZE, MPI_LOCALRANKID/MPI_LOCALNRANKS (Hydra),
 * SLURM_LOCALID with the node's task count from SLURM_STEP_TASKS_PER_NODE
 * (else SLURM_TASKS_PER_NODE) indexed by SLURM_NODEID ("2(x3),1" form).
 * An MPI launcher's variables come first: an mpirun inside an allocation
 * inherits the batch step's SLURM_LOCALID=0. Returns 0, or -1 naming what
 * was looked for (or which value is malformed). */
HUSK_API int husk_local_from_env(const char *(*getenv_fn)(const char *name),
	struct husk_local *out, struct husk_err *err);
/* Tasks on node `node` from a Slurm "N(xM),N,..." list; -1 if malformed. */
HUSK_API int husk_slurm_tasks_on_node(const char *list, int node);

/* ---- one rank's decision, as husk-place reports it ---------------------- */

struct husk_placement {
	int rank, size;
	char *cpus;               /* "8-15" (the share), list form */
	char *mems;               /* "1" (NUMA nodes of the share), or NULL */
	bool apply;               /* false: topology is not this machine's (XML) */
	char *why_not;            /* when !apply: why the binding is not applied */
	struct husk_env env;      /* CUDA_VISIBLE_DEVICES, UCX_NET_DEVICES, HUSK_PLACEMENT */
	char *summary;            /* "rank 1/4: cpus 8-15, mem node 1, gpu 1, nic mlx5_0" */
};
HUSK_API void husk_placement_init(struct husk_placement *p);
HUSK_API void husk_placement_free(struct husk_placement *p);
/* Parse husk-place's answer (lines "cpus L", "mems L", "apply 1|0 [WHY]",
 * "env NAME=VALUE", "summary TEXT", or a single "error TEXT"). */
HUSK_API int husk_placement_parse(const char *text, struct husk_placement *p,
	struct husk_err *err);
/* Run `helper rank --rank R --size S [--keep NAME=VALUE]...` (keep: the
 * visible-devices variables the user already set, which are only narrowed,
 * never widened) and parse its answer. */
HUSK_API int husk_placement_query(const char *helper, const struct husk_local *l,
	char *const *keep, struct husk_placement *p, struct husk_err *err);
/* Bind the calling process (and so everything it starts later): CPUs with
 * sched_setaffinity, memory with set_mempolicy(MPOL_BIND) on the share's
 * NUMA nodes. Does nothing when !p->apply. */
HUSK_API int husk_placement_apply(const struct husk_placement *p, struct husk_err *err);
/* Give the calling process back the CPUs and memory policy it had before
 * husk_placement_apply (nothing if it was not called): for a session
 * server, which serves every rank of the node. */
HUSK_API void husk_placement_unbind(void);

/* A "0-3,8" list into a bit array of `bits` bits (unsigned long words);
 * -1 on a malformed list or a number >= bits. */
HUSK_API int husk_cpulist_parse(const char *list, unsigned long *mask, size_t bits);

#endif
