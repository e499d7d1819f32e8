/* gpu.c: which GPUs the host has, which of them a launch may use, and what
 * the container gets for them (see gpu.h).
 *
 * NVIDIA numbers its GPUs in PCI bus order (nvidia-smi, and CUDA with
 * CUDA_DEVICE_ORDER=PCI_BUS_ID; CUDA's default "fastest first" is the same
 * order on the usual nodes of identical GPUs). The device node of a GPU is
 * /dev/nvidiaN where N is the driver's minor number, which need not be its
 * index: /proc/driver/nvidia/gpus/BUS/information gives "Device Minor", and
 * the directory names are the PCI addresses. Without that directory (driver
 * not loaded, or a trimmed host tree) the nodes /dev/nvidiaN are taken in
 * the order of N.
 *
 * AMD's ROCm numbers the GPU nodes of the KFD topology
 * (/sys/class/kfd/kfd/topology/nodes/N, gpu_id != 0, in the order of N);
 * each names its render node in properties ("drm_render_minor M" for
 * /dev/dri/renderDM). Fallback: the render nodes in the order of M. */
#include "husk_config.h"
#include "gpu.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *husk_host_root(void)
{
	static char root[PATH_MAX];
	const char *v = getenv("HUSK_HOST_ROOT");
	size_t n;

	if (!v || !*v || !strcmp(v, "/"))
		return "";
	snprintf(root, sizeof(root), "%s", v);
	n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		root[--n] = '\0';
	return root;
}

char *husk_host_path(const char *root, const char *path)
{
	return husk_strdup_printf("%s%s", root ? root : "", path);
}

static bool host_exists(const char *root, const char *path)
{
	autofree char *p = husk_host_path(root, path);
	struct stat st;

	return p && lstat(p, &st) == 0;
}

const char *husk_gpu_vendor_name(enum husk_gpu_vendor vendor)
{
	return vendor == HUSK_GPU_NVIDIA ? "NVIDIA" : vendor == HUSK_GPU_AMD ? "AMD" : "?";
}

void husk_gpus_free(struct husk_gpus *g)
{
	for (size_t i = 0; i < sizeof(g->shared) / sizeof(g->shared[0]); i++) {
		free(g->shared[i]);
		g->shared[i] = NULL;
	}
	g->n = 0;
}

static void add_shared(struct husk_gpus *g, const char *root, const char *path)
{
	size_t i = 0;

	if (!host_exists(root, path))
		return;
	while (g->shared[i] && i + 1 < sizeof(g->shared) / sizeof(g->shared[0]))
		i++;
	if (!g->shared[i])
		g->shared[i] = strdup(path);
}

/* Names in a host directory, sorted by cmp; *n of them. NULL when absent. */
static char **list_dir(const char *root, const char *dir, int (*keep)(const char *),
	int (*cmp)(const void *, const void *), size_t *n)
{
	autofree char *p = husk_host_path(root, dir);
	DIR *d = p ? opendir(p) : NULL;
	struct dirent *e;
	char **v = NULL;

	*n = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		char **nv;
		if (e->d_name[0] == '.' || !keep(e->d_name))
			continue;
		if (!(nv = realloc(v, (*n + 2) * sizeof(*v))))
			break;
		v = nv;
		v[(*n)++] = strdup(e->d_name);
		v[*n] = NULL;
	}
	closedir(d);
	if (v)
		qsort(v, *n, sizeof(*v), cmp);
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The number at the end of a name ("nvidia12", "renderD130", "7"). */
static long trailing_number(const char *s)
{
	const char *p = s + strlen(s);

	while (p > s && isdigit((unsigned char)p[-1]))
		p--;
	return *p ? strtol(p, NULL, 10) : -1;
}

static int cmp_num(const void *a, const void *b)
{
	long x = trailing_number(*(char *const *)a), y = trailing_number(*(char *const *)b);
	return x < y ? -1 : x > y;
}

static int keep_any(const char *name)
{
	return 1;
}

static int keep_nvidia_node(const char *name)
{
	const char *p = name + 6;

	if (strncmp(name, "nvidia", 6) || !*p)
		return 0;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

static int keep_render(const char *name)
{
	return !strncmp(name, "renderD", 7) && trailing_number(name) >= 0;
}

static int keep_number(const char *name)
{
	for (const char *p = name; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return 1;
}

static void strv_free_n(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The value after "key" on a line of a small host file ("Device Minor:",
 * "drm_render_minor "), trimmed; false when absent. */
static bool file_field(const char *root, const char *path, const char *key, char *out,
	size_t size)
{
	autofree char *p = husk_host_path(root, path);
	autofree char *text = NULL;
	size_t len, klen = strlen(key);

	if (!p || husk_read_fileat(AT_FDCWD, p, &text, &len, 1 << 16) < 0)
		return false;
	for (char *line = text; line && *line; ) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (!strncmp(line, key, klen)) {
			char *v = line + klen;
			size_t n;
			while (*v == ' ' || *v == '\t')
				v++;
			n = strlen(v);
			while (n && isspace((unsigned char)v[n - 1]))
				v[--n] = '\0';
			snprintf(out, size, "%s", v);
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

static int add_gpu(struct husk_gpus *g, int minor, const char *bus, const char *uuid,
	const char *node, struct husk_err *err)
{
	struct husk_gpu *x;

	if (g->n >= HUSK_GPU_MAX)
		return husk_err_set(err, 0, "more than %d %s GPUs on this host", HUSK_GPU_MAX,
			husk_gpu_vendor_name(g->vendor));
	x = &g->gpu[g->n++];
	memset(x, 0, sizeof(*x));
	x->minor = minor;
	snprintf(x->bus, sizeof(x->bus), "%s", bus ? bus : "");
	snprintf(x->uuid, sizeof(x->uuid), "%s", uuid ? uuid : "");
	snprintf(x->node, sizeof(x->node), "%s", node);
	return 0;
}

static int nvidia_discover(const char *root, struct husk_gpus *g, struct husk_err *err)
{
	size_t n;
	char **bus = list_dir(root, "/proc/driver/nvidia/gpus", keep_any, cmp_str, &n);
	int r = 0;

	if (bus && n) {
		g->order = "/proc/driver/nvidia/gpus (PCI bus order)";
		for (size_t i = 0; i < n && r == 0; i++) {
			autofree char *info = husk_strdup_printf("/proc/driver/nvidia/gpus/%s/information",
				bus[i]);
			char minor[32], uuid[80] = "", node[64];
			char *end;
			long m;
			if (!file_field(root, info, "Device Minor:", minor, sizeof(minor))) {
				husk_warn("NVIDIA GPU %s: no 'Device Minor' in '%s%s'; skipping it", bus[i],
					root, info);
				continue;
			}
			m = strtol(minor, &end, 10);
			if (*end || m < 0 || m > 255) {
				husk_warn("NVIDIA GPU %s: bad 'Device Minor: %s'; skipping it", bus[i], minor);
				continue;
			}
			file_field(root, info, "GPU UUID:", uuid, sizeof(uuid));
			snprintf(node, sizeof(node), "/dev/nvidia%ld", m);
			r = add_gpu(g, (int)m, bus[i], uuid, node, err);
		}
	} else {
		char **nodes = list_dir(root, "/dev", keep_nvidia_node, cmp_num, &n);
		g->order = "the numbers of the /dev/nvidiaN nodes";
		for (size_t i = 0; i < n && r == 0; i++) {
			char node[64];
			snprintf(node, sizeof(node), "/dev/%s", nodes[i]);
			r = add_gpu(g, (int)trailing_number(nodes[i]), NULL, NULL, node, err);
		}
		strv_free_n(nodes, n);
		n = 0;
	}
	strv_free_n(bus, n);
	if (r < 0 || g->n == 0)
		return r;
	add_shared(g, root, "/dev/nvidiactl");
	add_shared(g, root, "/dev/nvidia-uvm");
	add_shared(g, root, "/dev/nvidia-uvm-tools");
	add_shared(g, root, "/dev/nvidia-modeset");
	add_shared(g, root, "/dev/nvidia-caps");
	return 0;
}

/* The real path of a host sysfs link, inside the host root. */
static bool sys_device(const char *root, const char *path, char *out, size_t size)
{
	autofree char *p = husk_host_path(root, path);
	char buf[PATH_MAX];

	if (!p || !realpath(p, buf))
		return false;
	snprintf(out, size, "%s", buf);
	return true;
}

/* The /dev/dri/cardN of the PCI device behind renderD<minor>. */
static void amd_card(const char *root, struct husk_gpu *x)
{
	char want[PATH_MAX], have[PATH_MAX];
	autofree char *render = husk_strdup_printf("/sys/class/drm/renderD%d/device", x->minor);
	size_t n;
	char **cards;

	if (!render || !sys_device(root, render, want, sizeof(want)))
		return;
	cards = list_dir(root, "/sys/class/drm", keep_any, cmp_num, &n);
	for (size_t i = 0; i < n; i++) {
		autofree char *dev = husk_strdup_printf("/sys/class/drm/%s/device", cards[i]);
		if (strncmp(cards[i], "card", 4) || strchr(cards[i], '-') || !dev ||
		    !sys_device(root, dev, have, sizeof(have)) || strcmp(want, have))
			continue;
		snprintf(x->card, sizeof(x->card), "/dev/dri/%s", cards[i]);
		break;
	}
	strv_free_n(cards, n);
}

static int amd_discover(const char *root, struct husk_gpus *g, struct husk_err *err)
{
	const char *topo = "/sys/class/kfd/kfd/topology/nodes";
	size_t n;
	char **nodes;
	int r = 0;

	/* ROCm computes through /dev/kfd; without it there is no usable GPU. */
	if (!host_exists(root, "/dev/kfd"))
		return 0;
	nodes = list_dir(root, topo, keep_number, cmp_num, &n);
	if (nodes && n) {
		g->order = "/sys/class/kfd/kfd/topology (KFD node order)";
		for (size_t i = 0; i < n && r == 0; i++) {
			autofree char *gid = husk_strdup_printf("%s/%s/gpu_id", topo, nodes[i]);
			autofree char *props = husk_strdup_printf("%s/%s/properties", topo, nodes[i]);
			autofree char *gtext = NULL;
			autofree char *gpath = husk_host_path(root, gid);
			char minor[32], node[64];
			size_t len;
			if (!gpath || husk_read_fileat(AT_FDCWD, gpath, &gtext, &len, 64) < 0 ||
			    strtoul(gtext, NULL, 10) == 0)
				continue;   /* a CPU node */
			if (!file_field(root, props, "drm_render_minor", minor, sizeof(minor)))
				continue;
			snprintf(node, sizeof(node), "/dev/dri/renderD%ld", strtol(minor, NULL, 10));
			r = add_gpu(g, (int)strtol(minor, NULL, 10), NULL, NULL, node, err);
		}
	}
	strv_free_n(nodes, n);
	if (r == 0 && g->n == 0) {
		nodes = list_dir(root, "/dev/dri", keep_render, cmp_num, &n);
		g->order = "the numbers of the /dev/dri/renderDN nodes";
		for (size_t i = 0; i < n && r == 0; i++) {
			char node[64];
			snprintf(node, sizeof(node), "/dev/dri/%s", nodes[i]);
			r = add_gpu(g, (int)trailing_number(nodes[i]), NULL, NULL, node, err);
		}
		strv_free_n(nodes, n);
	}
	for (size_t i = 0; i < g->n; i++)
		amd_card(root, &g->gpu[i]);
	if (g->n)
		add_shared(g, root, "/dev/kfd");
	return r;
}

int husk_gpu_discover(const char *root, enum husk_gpu_vendor vendor, struct husk_gpus *g,
	struct husk_err *err)
{
	memset(g, 0, sizeof(*g));
	g->vendor = vendor;
	g->order = "";
	if (vendor == HUSK_GPU_NVIDIA)
		return nvidia_discover(root, g, err);
	return amd_discover(root, g, err);
}

/* ---- selection ----------------------------------------------------------- */

static const char *env_lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (char *const *e = envp; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

struct gset {
	size_t pos[HUSK_GPU_MAX];   /* positions in g->gpu */
	size_t n;
};

static void append_why(char *why, size_t size, const char *name, const char *value)
{
	size_t n = strlen(why);

	snprintf(why + n, size - n, "%s%s=%s", n ? ", " : "", name, value);
}

/* Split a list value into trimmed tokens (in place); returns their count. */
static size_t tokens(char *v, char **tok, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	if (!*v)
		return 0;
	for (char *t = strtok_r(v, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
		size_t len;
		while (isspace((unsigned char)*t))
			t++;
		len = strlen(t);
		while (len && isspace((unsigned char)t[len - 1]))
			t[--len] = '\0';
		tok[n++] = t;
	}
	return n;
}

static bool is_index(const char *t)
{
	if (*t == '-')
		t++;
	if (!*t)
		return false;
	for (; *t; t++)
		if (!isdigit((unsigned char)*t))
			return false;
	return true;
}

static bool in_set(const struct gset *s, size_t pos)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->pos[i] == pos)
			return true;
	return false;
}

static void range_text(const struct gset *cand, char *out, size_t size)
{
	if (cand->n == 0)
		snprintf(out, size, "none");
	else if (cand->n == 1)
		snprintf(out, size, "0");
	else
		snprintf(out, size, "0-%zu", cand->n - 1);
}

/* Apply one visibility variable to cand. alloc: Slurm's allocation (ids are
 * positions in g), or NULL. */
static int apply_var(const struct husk_gpus *g, const char *name, const char *value,
	struct gset *cand, const struct gset *alloc, bool absolute_only, struct husk_err *err)
{
	autofree char *copy = strdup(value);
	char *tok[HUSK_GPU_MAX + 1];
	size_t nt, idx[HUSK_GPU_MAX + 1], ni = 0;
	struct gset out = { .n = 0 };
	bool global = absolute_only, all_in_alloc = true, beyond = false;
	char range[32];

	if (!copy)
		return husk_err_set(err, ENOMEM, "%s", name);
	if (!strcmp(value, "all") && absolute_only)
		return 0;
	if (!strcmp(value, "none") || !strcmp(value, "void") || !strcmp(value, "NoDevFiles")) {
		cand->n = 0;
		return 0;
	}
	nt = tokens(copy, tok, HUSK_GPU_MAX + 1);
	if (nt > HUSK_GPU_MAX)
		return husk_err_set(err, 0, "%s='%s': more than %d entries", name, value, HUSK_GPU_MAX);
	/* Which positions do the tokens name? Indices are resolved below, once
	 * we know whether they are relative or Slurm's ids. */
	for (size_t i = 0; i < nt; i++) {
		const char *t = tok[i];
		if (is_index(t)) {
			long v = strtol(t, NULL, 10);
			if (v < 0)
				break;   /* as CUDA: a negative index ends the list */
			idx[ni++] = (size_t)v;
			if (alloc && !in_set(alloc, (size_t)v))
				all_in_alloc = false;
			if ((size_t)v >= cand->n)
				beyond = true;
			continue;
		}
		if (!strncmp(t, "MIG-", 4))
			return husk_err_set(err, 0, "%s='%s': MIG instances ('%s') are not supported by "
				"husk yet; name whole GPUs (indices or GPU-UUIDs)", name, value, t);
		if (!strncmp(t, "GPU-", 4) && strlen(t) > 4) {
			size_t found = SIZE_MAX;
			for (size_t k = 0; k < cand->n; k++)
				if (!strncmp(g->gpu[cand->pos[k]].uuid, t, strlen(t))) {
					if (found != SIZE_MAX)
						return husk_err_set(err, 0, "%s='%s': '%s' matches more than one "
							"GPU; give more of the UUID", name, value, t);
					found = cand->pos[k];
				}
			if (found == SIZE_MAX)
				return husk_err_set(err, 0, "%s='%s': no GPU %s has UUID '%s'", name, value,
					alloc ? "of the allocation" : "on this host", t);
			if (in_set(&out, found))
				return husk_err_set(err, 0, "%s='%s': GPU '%s' is listed twice", name, value, t);
			/* UUIDs name GPUs absolutely: resolve now, in order. */
			idx[ni++] = SIZE_MAX - 1 - found;
			continue;
		}
		return husk_err_set(err, 0, "%s='%s': '%s' is neither a GPU index nor a GPU UUID",
			name, value, t);
	}
	/* Slurm without ConstrainDevices sets CUDA_VISIBLE_DEVICES to its own
	 * ids; with it, to 0..n-1. A list equal to the allocation, or one that
	 * only the allocation's ids explain, is taken as ids. */
	if (alloc && !global && all_in_alloc && ni > 0) {
		bool same = ni == alloc->n;
		for (size_t i = 0; i < ni && same; i++)
			same = idx[i] < SIZE_MAX / 2 && in_set(alloc, idx[i]);
		global = same || beyond;
	}
	range_text(cand, range, sizeof(range));
	for (size_t i = 0; i < ni; i++) {
		size_t pos;
		if (idx[i] >= SIZE_MAX / 2) {
			pos = SIZE_MAX - 1 - idx[i];
		} else if (global) {
			if (idx[i] >= g->n || !in_set(cand, idx[i]))
				return husk_err_set(err, 0, "%s='%s': %s GPU %zu is not one this job may "
					"use (not in %s)", name, value, husk_gpu_vendor_name(g->vendor), idx[i],
					alloc ? "Slurm's allocation" : "the host's GPUs");
			pos = idx[i];
		} else {
			if (idx[i] >= cand->n) {
				husk_err_set(err, 0, "%s='%s': there is no GPU %zu: the job may use %zu %s "
					"GPU%s (%s)", name, value, idx[i], cand->n,
					husk_gpu_vendor_name(g->vendor), cand->n == 1 ? "" : "s", range);
				husk_err_hint(err, "indices count the GPUs left by %s", alloc ?
					"Slurm's allocation and the variables before it" : "the variables before it");
				return -1;
			}
			pos = cand->pos[idx[i]];
		}
		if (in_set(&out, pos))
			return husk_err_set(err, 0, "%s='%s': GPU %zu is listed twice", name, value, pos);
		out.pos[out.n++] = pos;
	}
	*cand = out;
	return 0;
}

/* Slurm's GPU ids: absolute, each must be a GPU of this host. */
static int apply_slurm(const struct husk_gpus *g, const char *name, const char *value,
	struct gset *cand, struct husk_err *err)
{
	autofree char *copy = strdup(value);
	char *tok[HUSK_GPU_MAX + 1];
	size_t nt;
	struct gset out = { .n = 0 };

	if (!copy)
		return husk_err_set(err, ENOMEM, "%s", name);
	nt = tokens(copy, tok, HUSK_GPU_MAX + 1);
	for (size_t i = 0; i < nt && i < HUSK_GPU_MAX; i++) {
		char *end;
		long v = strtol(tok[i], &end, 10);
		if (*end || end == tok[i] || v < 0)
			return husk_err_set(err, 0, "%s='%s': '%s' is not a GPU id", name, value, tok[i]);
		if ((size_t)v >= g->n) {
			husk_err_set(err, 0, "%s='%s': GPU %ld is not on this node (%zu %s GPU%s found "
				"through %s)", name, value, v, g->n, husk_gpu_vendor_name(g->vendor),
				g->n == 1 ? "" : "s", g->order);
			husk_err_hint(err, "check gres.conf against the node's GPUs");
			return -1;
		}
		if (!in_set(&out, (size_t)v))
			out.pos[out.n++] = (size_t)v;
	}
	*cand = out;
	return 0;
}

int husk_gpu_select(const struct husk_gpus *g, char *const *envp, size_t *sel, size_t *n_sel,
	bool *restricted, char *why, size_t why_size, struct husk_err *err)
{
	static const char *const nv_vars[] = { "CUDA_VISIBLE_DEVICES", NULL };
	static const char *const amd_vars[] = { "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
		"GPU_DEVICE_ORDINAL", NULL };
	const char *const *vars = g->vendor == HUSK_GPU_NVIDIA ? nv_vars : amd_vars;
	struct gset cand = { .n = g->n }, alloc = { .n = 0 };
	const struct gset *allocp = NULL;
	const char *v, *slurm = "SLURM_STEP_GPUS";
	bool first = true;

	why[0] = '\0';
	*restricted = false;
	for (size_t i = 0; i < g->n; i++)
		cand.pos[i] = i;
	if (!(v = env_lookup(envp, slurm)) || !*v)
		v = env_lookup(envp, slurm = "SLURM_JOB_GPUS");
	if (v && *v) {
		if (apply_slurm(g, slurm, v, &cand, err) < 0)
			return -1;
		alloc = cand;
		allocp = &alloc;
		*restricted = true;
		append_why(why, why_size, slurm, v);
	}
	for (int i = 0; vars[i]; i++) {
		const char *name = vars[i];
		v = env_lookup(envp, name);
		/* HIP also reads CUDA_VISIBLE_DEVICES when HIP_VISIBLE_DEVICES is unset. */
		if (!v && g->vendor == HUSK_GPU_AMD && !strcmp(name, "HIP_VISIBLE_DEVICES"))
			v = env_lookup(envp, name = "CUDA_VISIBLE_DEVICES");
		if (!v)
			continue;
		if (apply_var(g, name, v, &cand, first ? allocp : NULL, false, err) < 0)
			return -1;
		first = false;
		*restricted = true;
		append_why(why, why_size, name, v);
	}
	/* The container toolkit's variable, when the runtime's is not set. */
	if (g->vendor == HUSK_GPU_NVIDIA && !env_lookup(envp, "CUDA_VISIBLE_DEVICES") &&
	    (v = env_lookup(envp, "NVIDIA_VISIBLE_DEVICES"))) {
		if (apply_var(g, "NVIDIA_VISIBLE_DEVICES", v, &cand, NULL, true, err) < 0)
			return -1;
		*restricted = true;
		append_why(why, why_size, "NVIDIA_VISIBLE_DEVICES", v);
	}
	for (size_t i = 0; i < cand.n; i++)
		sel[i] = cand.pos[i];
	*n_sel = cand.n;
	return 0;
}
