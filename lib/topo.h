/* topo.h: the node's topology as placement sees it, and the placement of N
 * local ranks on it (placement.c, linked with hwloc; see place.h). */
#ifndef HUSK_TOPO_H
#define HUSK_TOPO_H

#include "husk.h"

#include <hwloc.h>

enum husk_dev_kind { HUSK_DEV_GPU = 1, HUSK_DEV_NIC };

struct husk_dev {
	enum husk_dev_kind kind;
	char *name;               /* "nvml1", "cuda1", "rsmi0", "mlx5_0", or the PCI bus id */
	char *vendor;             /* "NVIDIA", "AMD", "Mellanox", ... or NULL */
	char *pci;                /* "0000:3b:00.0" or NULL */
	char *var;                /* CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, UCX_NET_DEVICES, or NULL */
	char *value;              /* the token for var: "1", "mlx5_0:1" */
	char *uuid;               /* GPU UUID when hwloc knows it, else NULL */
	char *numa;               /* NUMA nodes near it ("1", "0-1"), or NULL */
	hwloc_obj_t near;         /* its first non-I/O ancestor */
};

struct husk_topo {
	hwloc_topology_t t;
	bool this_system;         /* false: an XML or synthetic topology */
	char *source;             /* "this machine", "HWLOC_XMLFILE=...", "xml ..." */
	hwloc_bitmap_t allowed;   /* the CPUs ranks share: process affinity (this
	                           * system) or the topology's allowed set */
	struct husk_dev *devs;
	size_t n_devs;
};

/* Load the topology: from xml (a file) when given, else as hwloc would
 * (this machine, or HWLOC_XMLFILE / HWLOC_SYNTHETIC), with I/O devices.
 * allowed: a CPU list ("0-7,16") to share among ranks; NULL: the calling
 * process's affinity (what Slurm or the MPI launcher gave) on this machine,
 * the topology's allowed set otherwise. */
int husk_topo_load(struct husk_topo *tp, const char *xml, const char *allowed,
	struct husk_err *err);
void husk_topo_free(struct husk_topo *tp);

struct husk_rank_place {
	hwloc_bitmap_t cpus;      /* the share */
	hwloc_bitmap_t mems;      /* NUMA nodes (os indexes) of the share */
	size_t *gpus, n_gpus;     /* indexes into tp->devs */
	size_t *nics, n_nics;
};

/* Filters from the user's environment: a visible-devices variable already
 * set narrows the candidates to what it lists (never widened); a variable
 * set to "" means none. UCX_NET_DEVICES already set: NICs are not chosen. */
struct husk_place_keep {
	const char *cuda, *rocr, *ucx;   /* NULL: not set */
};

/* Split the allowed CPUs into `size` shares along the topology (hwloc's
 * distrib: whole packages, NUMA nodes, cores where possible) and pick for
 * each share the nearest GPUs and NICs: the deepest common ancestor of the
 * share and the device's locality wins; ranks with the same nearest devices
 * take them in turn; with fewer ranks than devices, each device goes to its
 * nearest rank (ties to the rank with fewer), so none is left unused.
 * out: `size` entries, freed with husk_place_free. */
int husk_place(const struct husk_topo *tp, int size, const struct husk_place_keep *keep,
	struct husk_rank_place *out, struct husk_err *err);
void husk_place_free(struct husk_rank_place *v, int size);

/* The variables for one rank (CUDA_VISIBLE_DEVICES/ROCR_VISIBLE_DEVICES,
 * UCX_NET_DEVICES, HUSK_PLACEMENT) and its one-line summary. */
int husk_place_env(const struct husk_topo *tp, const struct husk_rank_place *r, int rank,
	int size, struct husk_env *env, char **summary);

/* A bitmap as a list "0-3,8" (malloc'd). */
char *husk_bitmap_list(hwloc_const_bitmap_t b);

#endif
