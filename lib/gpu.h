/* gpu.h: GPUs, CDI devices and interconnect devices of the host, and which
 * of them a launch may see.
 *
 * Discovery reads the host through a host root: "" (the real host) unless
 * HUSK_HOST_ROOT names a directory, in which case every host path
 * (/dev, /proc/driver/nvidia, /sys/class/kfd, /etc/cdi, the libraries) is
 * looked up below it. Tests point it at a fake tree; nothing else changes.
 *
 * The host's /dev is bound whole into every container, so a GPU the launch
 * may not use is hidden: its device node (and, for NVIDIA, its
 * /proc/driver/nvidia/gpus/BUS directory) goes into husk_host.hide, and the
 * visibility variables are renumbered inside so that the driver's runtime
 * sees devices 0..n-1 of the GPUs left. */
#ifndef HUSK_GPU_H
#define HUSK_GPU_H

#include "husk.h"
#include "conf.h"

#include <stdlib.h>

#define HUSK_GPU_MAX 64

/* Free a NULL-terminated string list (libhusk's husk_strv_free lives on the
 * build side). */
static inline void husk_gpu_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

enum husk_gpu_vendor { HUSK_GPU_NVIDIA = 1, HUSK_GPU_AMD = 2 };

struct husk_gpu {
	int minor;           /* /dev/nvidiaN, or /dev/dri/renderD<minor> */
	char bus[32];        /* PCI address ("0000:3b:00.0"), or "" when unknown */
	char uuid[80];       /* "GPU-...", or "" */
	char node[64];       /* container path of its device node */
	char card[64];       /* AMD: the /dev/dri/cardN of the same device, or "" */
};

/* The GPUs of one vendor, in the order the vendor's runtime numbers them
 * (PCI bus order): gpu[i] is device i of CUDA/ROCm on the host. */
struct husk_gpus {
	enum husk_gpu_vendor vendor;
	struct husk_gpu gpu[HUSK_GPU_MAX];
	size_t n;
	const char *order;   /* where the order came from, for messages */
	char *shared[8];     /* container paths of the vendor's other nodes that exist
	                      * (nvidiactl, nvidia-uvm, /dev/kfd, ...); NULL-terminated */
};

/* The host root: HUSK_HOST_ROOT without trailing '/', or "" (the real host). */
const char *husk_host_root(void);
/* root + path (path absolute), malloc'd. */
char *husk_host_path(const char *root, const char *path);

/* Fill g with the GPUs of one vendor found under root. 0 with g->n == 0
 * when the vendor's driver is not there. */
int husk_gpu_discover(const char *root, enum husk_gpu_vendor vendor, struct husk_gpus *g,
	struct husk_err *err);
void husk_gpus_free(struct husk_gpus *g);
const char *husk_gpu_vendor_name(enum husk_gpu_vendor vendor);

/* Which GPUs the launch may use, from the host environment envp
 * ("NAME=VALUE", NULL-terminated):
 *   1. the allocation: SLURM_STEP_GPUS, else SLURM_JOB_GPUS (Slurm's GPU
 *      ids, taken as the vendor's device indices); else every GPU;
 *   2. NVIDIA: CUDA_VISIBLE_DEVICES, else NVIDIA_VISIBLE_DEVICES;
 *      AMD: ROCR_VISIBLE_DEVICES, then HIP_VISIBLE_DEVICES (or
 *      CUDA_VISIBLE_DEVICES), then GPU_DEVICE_ORDINAL, each choosing among
 *      what the previous one left.
 * An entry is an index or a GPU UUID (a unique prefix will do); a negative
 * index ends the list, as for CUDA. An index is relative to what is left
 * (as the runtime counts: Slurm with ConstrainDevices numbers from 0), but a
 * list that names the allocation itself, or an index only the allocation's
 * own ids explain, is taken as Slurm's ids.
 * On return sel[0..*n_sel) are positions in g->gpu in the order asked for,
 * *restricted tells whether anything narrowed the set (a variable was set),
 * and why says what decided ("CUDA_VISIBLE_DEVICES=1,3"). */
int husk_gpu_select(const struct husk_gpus *g, char *const *envp, size_t *sel, size_t *n_sel,
	bool *restricted, char *why, size_t why_size, struct husk_err *err);

/* ---- what a launch gets ------------------------------------------------ */

struct husk_inject;
struct husk_gpu_opts {
	const char *gpu;         /* "auto", "nvidia", "amd", "none", or NULL: none */
	char **devices;          /* --device NAME (CDI), NULL-terminated, or NULL */
	char *const *envp;       /* the host environment */
	const char *root;        /* host root; NULL: husk_host_root() */
	/* Host injection (lib/inject.h) for the driver's libraries and
	 * programs; NULL: devices only. */
	struct husk_inject *inject;
	/* The gpu profile of each vendor (libraries, programs, paths, env),
	 * indexed by enum husk_gpu_vendor; NULL: husk's built-in list. */
	const struct husk_profile *profile[3];
};

/* Decide GPUs and CDI devices, and add to host: device items, hidden
 * nodes, the renumbered visibility variables, the driver's libraries and
 * programs (read-only binds, on LD_LIBRARY_PATH and PATH inside), and the
 * edits of the CDI devices asked for. Errors: --gpu=VENDOR without such
 * GPUs, a bad visibility variable, an unknown or malformed CDI device. */
int husk_gpu_plan(const struct husk_gpu_opts *o, struct husk_host *host, struct husk_err *err);

/* Interconnect devices of the host (InfiniBand verbs, HPE Slingshot CXI):
 * adds an item per device found and, for InfiniBand, the host's verbs
 * provider configuration (/etc/libibverbs.d) when with_config. Returns the
 * number of devices found. */
int husk_net_plan(const char *root, bool with_config, struct husk_host *host,
	struct husk_err *err);

/* ---- CDI (Container Device Interface) ------------------------------------
 * Specs are read from ROOT/etc/cdi and ROOT/var/run/cdi (*.json, *.yaml,
 * *.yml; the second wins over the first for the same device). */
struct husk_cdi_spec {
	char *file;              /* for messages */
	int priority;            /* 0 /etc/cdi, 1 /var/run/cdi */
	char *version, *kind;    /* cdiVersion, "vendor.com/class" */
	struct json_object *json;  /* the whole spec (YAML converted) */
};
/* Parse one spec file (JSON or YAML by its name) and check its shape:
 * cdiVersion, kind, devices[] with names and containerEdits. Errors name the
 * file and the field. */
int husk_cdi_parse_file(const char *path, struct husk_cdi_spec *spec, struct husk_err *err);
int husk_cdi_parse_text(const char *text, size_t len, bool yaml, const char *what,
	struct husk_cdi_spec *spec, struct husk_err *err);
void husk_cdi_spec_free(struct husk_cdi_spec *spec);
/* Split "vendor.com/class=name" into kind and name (malloc'd). */
int husk_cdi_split_name(const char *qualified, char **kind, char **name, struct husk_err *err);
/* Apply the devices named (each "vendor/class=name" or "vendor/class=all")
 * to host. dev_nodes receives the container paths of the device nodes they
 * add (NULL-terminated, malloc'd), so that --gpu does not hide them. */
int husk_cdi_apply(const char *root, char **names, struct husk_host *host, char ***dev_nodes,
	struct husk_err *err);

#endif
