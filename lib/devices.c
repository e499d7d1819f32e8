/* devices.c: what a launch gets for --gpu, --device and the interconnect:
 * the decisions of gpu.c and cdi.c turned into husk_host entries (hidden
 * nodes, renumbered variables, driver libraries and programs, items for the
 * dry run and the provenance record).
 *
 * The host's /dev is bound whole, so the nodes of the GPUs a launch may use
 * are already there; the others are hidden. Under a host root (tests) the
 * root's /dev replaces the host's, so that its fake nodes are what the
 * container sees. */
#include "husk_config.h"
#include "gpu.h"
#include "inject.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int strv_add(char ***v, const char *s)
{
	size_t n = 0;
	char **nv;

	for (char **p = *v; p && *p; p++) {
		if (!strcmp(*p, s))
			return 0;
		n++;
	}
	if (!(nv = realloc(*v, (n + 2) * sizeof(*nv))) || !(nv[n] = strdup(s)))
		return -1;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

static bool strv_has(char **v, const char *s)
{
	for (char **p = v; p && *p; p++)
		if (!strcmp(*p, s))
			return true;
	return false;
}

static void strv_remove(char **v, const char *s)
{
	size_t i = 0, j = 0;

	for (; v && v[i]; i++) {
		if (!strcmp(v[i], s))
			free(v[i]);
		else
			v[j++] = v[i];
	}
	if (v)
		v[j] = NULL;
}

/* ---- host libraries and programs ----------------------------------------
 * Through the host injection of inject.c: the host's linker cache, what the
 * libraries need, the image's glibc. */

/* Used when the site has no gpu profile for the vendor (the shipped
 * profiles/nvidia.conf is the full list): the user-space driver of
 * NVIDIA's compute and utility capabilities. AMD's user space (ROCm) lives
 * in the image; only the kernel driver is the host's. */
static char *nvidia_libs[] = { "libcuda.so.1", "libnvidia-ml.so.1",
	"libnvidia-ptxjitcompiler.so.1", "libnvidia-nvvm.so.4", NULL };
static char *nvidia_progs[] = { "nvidia-smi", NULL };

static int inject_vendor(const struct husk_gpu_opts *o, enum husk_gpu_vendor v,
	struct husk_host *host, struct husk_err *err)
{
	struct husk_profile builtin = { .name = "nvidia (built-in)", .kind = HUSK_PROFILE_GPU,
		.flavour = "nvidia", .libraries = nvidia_libs, .programs = nvidia_progs };
	const struct husk_profile *p = o->profile[v];

	if (!p && v == HUSK_GPU_NVIDIA)
		p = &builtin;
	if (!p)
		return 0;
	if (!o->inject) {
		husk_debug("%s GPUs: no host injection: devices only", husk_gpu_vendor_name(v));
		return 0;
	}
	/* Libraries a driver version lacks, or that need a newer glibc than
	 * the image has, are left out with a warning. */
	if (husk_inject_profile(o->inject, host, p, HUSK_INJECT_LEAVE_OUT, err) == 0)
		return 0;
	if (strcmp(o->gpu, "auto"))
		return -1;
	/* --gpu=auto is best effort: the devices without the libraries. */
	husk_warn("%s; the GPUs are there, their driver libraries are not", err->msg);
	memset(err, 0, sizeof(*err));
	return 0;
}

/* ---- GPUs ------------------------------------------------------------------- */

static const char *lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (char *const *e = envp; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* "0,1,...,n-1" in the order asked for: inside, the GPUs left are numbered
 * by their order on the host. */
static char *inside_list(const size_t *sel, size_t n, bool identity)
{
	char *out = calloc(1, n * 4 + 1);
	size_t len = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t rank = 0;
		for (size_t k = 0; k < n && !identity; k++)
			rank += sel[k] < sel[i];
		len += (size_t)sprintf(out + len, "%s%zu", i ? "," : "", identity ? i : rank);
	}
	return out;
}

static int set_env(struct husk_host *host, const char *name, const char *value,
	struct husk_err *err)
{
	if (husk_env_set(&host->env, name, value) < 0)
		return husk_err_set(err, ENOMEM, "environment");
	return 0;
}

static int renumber(enum husk_gpu_vendor v, char *const *envp, const size_t *sel, size_t n,
	struct husk_host *host, struct husk_err *err)
{
	autofree char *ordered = inside_list(sel, n, false);
	autofree char *identity = inside_list(sel, n, true);

	if (!ordered || !identity)
		return husk_err_set(err, ENOMEM, "environment");
	if (v == HUSK_GPU_NVIDIA)
		return set_env(host, "CUDA_VISIBLE_DEVICES", ordered, err);
	/* ROCr applies the order; what HIP and OpenCL read after it is then the
	 * identity over what ROCr shows. */
	if (set_env(host, "ROCR_VISIBLE_DEVICES", ordered, err) < 0)
		return -1;
	if (lookup(envp, "HIP_VISIBLE_DEVICES") &&
	    set_env(host, "HIP_VISIBLE_DEVICES", identity, err) < 0)
		return -1;
	if (lookup(envp, "CUDA_VISIBLE_DEVICES") &&
	    set_env(host, "CUDA_VISIBLE_DEVICES", identity, err) < 0)
		return -1;
	if (lookup(envp, "GPU_DEVICE_ORDINAL") &&
	    set_env(host, "GPU_DEVICE_ORDINAL", identity, err) < 0)
		return -1;
	return 0;
}

static bool selected(const size_t *sel, size_t n, size_t pos)
{
	for (size_t i = 0; i < n; i++)
		if (sel[i] == pos)
			return true;
	return false;
}

/* Hide the GPUs not selected; items for all. */
static int plan_vendor(const struct husk_gpu_opts *o, const char *root,
	const struct husk_gpus *g, const size_t *sel, size_t n_sel, bool restricted,
	const char *why, struct husk_host *host, struct husk_err *err)
{
	const char *vn = husk_gpu_vendor_name(g->vendor);

	husk_info("%s GPUs: %zu on the host (order: %s), %zu visible%s%s%s", vn, g->n, g->order,
		n_sel, *why ? " (" : "", why, *why ? ")" : "");
	for (size_t i = 0; i < g->n; i++) {
		const struct husk_gpu *x = &g->gpu[i];
		autofree char *detail = NULL;
		if (selected(sel, n_sel, i)) {
			size_t rank = 0;
			for (size_t k = 0; k < n_sel; k++)
				rank += sel[k] < i;
			detail = husk_strdup_printf("%s GPU %zu%s%s%s%s, device %zu inside", vn, i,
				*x->bus ? " " : "", x->bus, *x->uuid ? " " : "", x->uuid, rank);
			if (!detail || husk_host_add_item(host, "gpu", x->node, detail) < 0)
				return husk_err_set(err, ENOMEM, "items");
			continue;
		}
		detail = husk_strdup_printf("%s GPU %zu%s%s: not visible (%s)", vn, i,
			*x->bus ? " " : "", x->bus, why);
		if (!detail || husk_host_add_item(host, "hidden", x->node, detail) < 0 ||
		    strv_add(&host->hide, x->node) < 0)
			return husk_err_set(err, ENOMEM, "hidden devices");
		if (*x->card && strv_add(&host->hide, x->card) < 0)
			return husk_err_set(err, ENOMEM, "hidden devices");
		if (g->vendor == HUSK_GPU_NVIDIA && *x->bus) {
			autofree char *proc = husk_strdup_printf("/proc/driver/nvidia/gpus/%s", x->bus);
			if (!proc || strv_add(&host->hide, proc) < 0)
				return husk_err_set(err, ENOMEM, "hidden devices");
		}
	}
	for (size_t i = 0; g->shared[i]; i++)
		if (husk_host_add_item(host, "device", g->shared[i], vn) < 0)
			return husk_err_set(err, ENOMEM, "items");
	if (restricted && renumber(g->vendor, o->envp, sel, n_sel, host, err) < 0)
		return -1;
	return inject_vendor(o, g->vendor, host, err);
}

/* --device without --gpu: the GPUs the CDI devices name are the visible ones. */
static int cdi_gpus(const struct husk_gpus *g, char **cdi_nodes, const struct husk_gpu_opts *o,
	struct husk_host *host, struct husk_err *err)
{
	size_t sel[HUSK_GPU_MAX], n = 0;
	char why[64];

	for (size_t i = 0; i < g->n; i++)
		if (strv_has(cdi_nodes, g->gpu[i].node))
			sel[n++] = i;
	if (n == 0)
		return 0;   /* the CDI devices are not GPUs of this vendor */
	snprintf(why, sizeof(why), "the CDI devices asked for");
	for (size_t i = 0; i < g->n; i++) {
		if (selected(sel, n, i))
			continue;
		if (strv_add(&host->hide, g->gpu[i].node) < 0 ||
		    (*g->gpu[i].card && strv_add(&host->hide, g->gpu[i].card) < 0))
			return husk_err_set(err, ENOMEM, "hidden devices");
		if (husk_host_add_item(host, "hidden", g->gpu[i].node, why) < 0)
			return husk_err_set(err, ENOMEM, "items");
	}
	/* A visibility variable of the host would count GPUs that are not there. */
	if ((lookup(o->envp, "CUDA_VISIBLE_DEVICES") || lookup(o->envp, "ROCR_VISIBLE_DEVICES")) &&
	    renumber(g->vendor, o->envp, sel, n, host, err) < 0)
		return -1;
	return 0;
}

static int check_mode(const char *mode, struct husk_err *err)
{
	static const char *const ok[] = { "auto", "nvidia", "amd", "none", NULL };

	for (int i = 0; ok[i]; i++)
		if (!strcmp(mode, ok[i]))
			return 0;
	return husk_err_set(err, 0, "--gpu='%s': expected auto, nvidia, amd or none", mode);
}

static int no_gpu_error(const char *root, enum husk_gpu_vendor v, struct husk_err *err)
{
	husk_err_set(err, 0, "--gpu=%s: no %s GPU on this host%s%s%s (%s)",
		v == HUSK_GPU_NVIDIA ? "nvidia" : "amd", husk_gpu_vendor_name(v),
		*root ? " (host root '" : "", root, *root ? "')" : "",
		v == HUSK_GPU_NVIDIA ? "no /proc/driver/nvidia/gpus, no /dev/nvidiaN" :
		"no /dev/kfd, or no GPU node in /sys/class/kfd");
	husk_err_hint(err, "run on a node with GPUs (is the driver loaded?), or use --gpu=auto, "
		"which adds GPUs only when there are some");
	return -1;
}

int husk_gpu_plan(const struct husk_gpu_opts *o, struct husk_host *host, struct husk_err *err)
{
	const char *root = o->root ? o->root : husk_host_root();
	const char *mode = o->gpu ? o->gpu : "none";
	bool cdi = o->devices && o->devices[0];
	char **cdi_nodes = NULL;
	int found = 0, r = 0;

	if (check_mode(mode, err) < 0)
		return -1;
	if (!strcmp(mode, "none") && !cdi)
		return 0;
	if (*root) {
		/* Tests: the fake host's /dev is the container's. */
		autofree char *dev = husk_host_path(root, "/dev");
		struct stat st;
		if (dev && stat(dev, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (husk_host_add_bind(host, dev, "/dev", false, "HUSK_HOST_ROOT") < 0 ||
		     husk_host_add_item(host, "path", "/dev", dev) < 0))
			return husk_err_set(err, ENOMEM, "binds");
	}
	if (cdi && husk_cdi_apply(root, o->devices, host, &cdi_nodes, err) < 0)
		return -1;
	for (enum husk_gpu_vendor v = HUSK_GPU_NVIDIA; v <= HUSK_GPU_AMD && r == 0; v++) {
		struct husk_gpus g;
		size_t sel[HUSK_GPU_MAX], n_sel = 0;
		/* auto: the first vendor found (a node with both is rare, and
		 * Slurm's ids and CUDA_VISIBLE_DEVICES, which HIP reads too, would
		 * not say which vendor they mean). */
		bool restricted = false, wanted = (!strcmp(mode, "auto") && !found) ||
			!strcmp(mode, v == HUSK_GPU_NVIDIA ? "nvidia" : "amd");
		char why[512];
		if (!wanted && !cdi)
			continue;
		if ((r = husk_gpu_discover(root, v, &g, err)) < 0)
			break;
		if (g.n == 0) {
			if (wanted && strcmp(mode, "auto"))
				r = no_gpu_error(root, v, err);
			husk_gpus_free(&g);
			continue;
		}
		if (!wanted) {
			r = cdi_gpus(&g, cdi_nodes, o, host, err);
			husk_gpus_free(&g);
			continue;
		}
		found++;
		r = husk_gpu_select(&g, o->envp, sel, &n_sel, &restricted, why, sizeof(why), err);
		if (r == 0)
			r = plan_vendor(o, root, &g, sel, n_sel, restricted, why, host, err);
		husk_gpus_free(&g);
	}
	/* Nodes a CDI device asked for stay, whatever --gpu hid. */
	for (char **p = cdi_nodes; p && *p; p++)
		strv_remove(host->hide, *p);
	husk_gpu_strv_free(cdi_nodes);
	if (r == 0 && !found && !strcmp(mode, "auto"))
		husk_info("--gpu=auto: no GPU on this host; nothing added");
	return r;
}

/* ---- interconnect --------------------------------------------------------------- */

static int items_of_dir(const char *root, const char *dir, const char *prefix,
	const char *what, struct husk_host *host, int *n)
{
	autofree char *p = husk_host_path(root, dir);
	DIR *d = p ? opendir(p) : NULL;
	struct dirent *e;
	int r = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && r == 0) {
		autofree char *name = NULL;
		if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		name = husk_strdup_printf("%s/%s", dir, e->d_name);
		r = name ? husk_host_add_item(host, "device", name, what) : -1;
		(*n)++;
	}
	closedir(d);
	return r;
}

/* The host's verbs provider configuration, for host verbs libraries. */
static int host_config_dir(const char *root, struct husk_host *host, struct husk_err *err)
{
	autofree char *p = husk_host_path(root, "/etc/libibverbs.d");
	struct stat st;

	if (!p || stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (husk_host_add_bind(host, p, "/etc/libibverbs.d", true, "interconnect") < 0 ||
	    husk_host_add_item(host, "path", "/etc/libibverbs.d", p) < 0)
		return husk_err_set(err, ENOMEM, "binds");
	return 0;
}

int husk_net_plan(const char *root, bool with_config, struct husk_host *host,
	struct husk_err *err)
{
	int n = 0, hcas = 0;

	if (!root)
		root = husk_host_root();
	if (items_of_dir(root, "/dev/infiniband", "", "InfiniBand verbs", host, &n) < 0 ||
	    items_of_dir(root, "/sys/class/infiniband", "", "InfiniBand adapter", host, &hcas) < 0 ||
	    items_of_dir(root, "/dev", "cxi", "HPE Slingshot CXI", host, &n) < 0)
		return husk_err_set(err, ENOMEM, "interconnect devices");
	if (with_config && n && host_config_dir(root, host, err) < 0)
		return -1;
	return n;
}
