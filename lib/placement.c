/* placement.c: where each local rank should run, decided on the node's
 * topology as hwloc sees it (this machine, or an XML/synthetic description).
 *
 * Shares: the allowed CPUs (the process's affinity: what Slurm's task plugin
 * or the MPI launcher already gave, never more) are split with hwloc's
 * distrib over a copy of the topology restricted to them, so shares follow
 * package, NUMA and core boundaries and stay contiguous in rank order.
 * Devices: a GPU is a PCI display/accelerator function of NVIDIA or AMD (its
 * number taken from hwloc's nvml/cuda/rsmi OS device when there is one, else
 * from its position in PCI order, the order nvidia-smi and ROCm use); a NIC
 * is an OpenFabrics OS device (mlx5_0), used as UCX names it ("mlx5_0:1").
 * Nearness is the depth of the common ancestor of the share's covering
 * object and the device's first non-I/O ancestor: the same NUMA node beats
 * the same package beats the machine. */
#include "husk_config.h"
#include "topo.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *husk_bitmap_list(hwloc_const_bitmap_t b)
{
	char *s = NULL;

	if (hwloc_bitmap_list_asprintf(&s, b) < 0)
		return NULL;
	return s;
}

/* ---- devices ---------------------------------------------------------- */

static const char *vendor_name(unsigned id)
{
	switch (id) {
	case 0x10de: return "NVIDIA";
	case 0x1002: return "AMD";
	case 0x15b3: return "Mellanox";
	case 0x8086: return "Intel";
	case 0x17db: return "HPE";
	default: return NULL;
	}
}

static char *pci_busid(hwloc_obj_t pci)
{
	if (!pci || pci->type != HWLOC_OBJ_PCI_DEVICE)
		return NULL;
	return husk_strdup_printf("%04x:%02x:%02x.%01x", pci->attr->pcidev.domain,
		pci->attr->pcidev.bus, pci->attr->pcidev.dev, pci->attr->pcidev.func);
}

static int add_dev(struct husk_topo *tp, struct husk_dev *d)
{
	struct husk_dev *v = realloc(tp->devs, (tp->n_devs + 1) * sizeof(*v));

	if (!v)
		return -1;
	tp->devs = v;
	v[tp->n_devs++] = *d;
	return 0;
}

/* The number in an OS device name with this prefix ("nvml3" -> 3), or -1. */
static int osdev_number(hwloc_obj_t pci, const char *prefix)
{
	size_t n = strlen(prefix);

	for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling) {
		char *end;
		long v;

		if (c->type != HWLOC_OBJ_OS_DEVICE || !c->name || strncmp(c->name, prefix, n))
			continue;
		v = strtol(c->name + n, &end, 10);
		if (end != c->name + n && !*end && v >= 0 && v < INT_MAX)
			return (int)v;
	}
	return -1;
}

static const char *osdev_info(hwloc_obj_t pci, const char *name)
{
	for (hwloc_obj_t c = pci->io_first_child; c; c = c->next_sibling) {
		const char *v = c->type == HWLOC_OBJ_OS_DEVICE ? hwloc_obj_get_info_by_name(c, name) : NULL;
		if (v)
			return v;
	}
	return NULL;
}

static bool is_gpu(hwloc_obj_t pci)
{
	unsigned cls = pci->attr->pcidev.class_id >> 8, v = pci->attr->pcidev.vendor_id;

	/* 0x03: display controllers; 0x12: processing accelerators (AMD Instinct). */
	return (v == 0x10de || v == 0x1002) && (cls == 0x03 || cls == 0x12);
}

static void fill_near(struct husk_topo *tp, struct husk_dev *d, hwloc_obj_t obj)
{
	d->near = hwloc_get_non_io_ancestor_obj(tp->t, obj);
	if (d->near && d->near->nodeset && !hwloc_bitmap_iszero(d->near->nodeset))
		d->numa = husk_bitmap_list(d->near->nodeset);
}

/* GPUs in the order of their variable and number, so that lists read
 * "0,2" whatever the order of the PCI tree. */
static int gpu_cmp(const void *a, const void *b)
{
	const struct husk_dev *x = a, *y = b;
	int c = strcmp(x->var, y->var);

	return c ? c : atoi(x->value) - atoi(y->value);
}

static int collect_gpus(struct husk_topo *tp)
{
	int seen_nv = 0, seen_amd = 0;

	for (hwloc_obj_t pci = NULL; (pci = hwloc_get_next_pcidev(tp->t, pci));) {
		struct husk_dev d = { .kind = HUSK_DEV_GPU };
		bool nv = pci->attr->pcidev.vendor_id == 0x10de;
		int idx, pos;
		const char *pfx;

		if (!is_gpu(pci))
			continue;
		pos = nv ? seen_nv++ : seen_amd++;
		/* The vendor library's own numbering when hwloc had it. */
		if (nv && (idx = osdev_number(pci, "nvml")) >= 0)
			pfx = "nvml";
		else if (nv && (idx = osdev_number(pci, "cuda")) >= 0)
			pfx = "cuda";
		else if (!nv && (idx = osdev_number(pci, "rsmi")) >= 0)
			pfx = "rsmi";
		else {
			idx = pos;
			pfx = NULL;
		}
		d.pci = pci_busid(pci);
		d.name = pfx ? husk_strdup_printf("%s%d", pfx, idx) : strdup(d.pci ? d.pci : "gpu");
		d.vendor = strdup(nv ? "NVIDIA" : "AMD");
		d.var = strdup(nv ? "CUDA_VISIBLE_DEVICES" : "ROCR_VISIBLE_DEVICES");
		d.value = husk_strdup_printf("%d", idx);
		if (osdev_info(pci, nv ? "NVIDIAUUID" : "AMDUUID"))
			d.uuid = strdup(osdev_info(pci, nv ? "NVIDIAUUID" : "AMDUUID"));
		fill_near(tp, &d, pci);
		if (!d.name || !d.vendor || !d.var || !d.value || add_dev(tp, &d) < 0)
			return -1;
	}
	if (tp->n_devs)
		qsort(tp->devs, tp->n_devs, sizeof(*tp->devs), gpu_cmp);
	return 0;
}

/* The first active port (state 4) of an OpenFabrics device, else 1. */
static unsigned ib_port(hwloc_obj_t os)
{
	for (unsigned i = 0; i < os->infos_count; i++) {
		unsigned port;
		char rest[16];

		if (sscanf(os->infos[i].name, "Port%uStat%15s", &port, rest) == 2 &&
		    !strcmp(rest, "e") && !strcmp(os->infos[i].value, "4"))
			return port;
	}
	return 1;
}

static int collect_nics(struct husk_topo *tp)
{
	for (hwloc_obj_t os = NULL; (os = hwloc_get_next_osdev(tp->t, os));) {
		struct husk_dev d = { .kind = HUSK_DEV_NIC };
		hwloc_obj_t pci = os->parent;

		if (os->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS || !os->name)
			continue;
		d.name = strdup(os->name);
		d.pci = pci_busid(pci);
		if (pci && pci->type == HWLOC_OBJ_PCI_DEVICE && vendor_name(pci->attr->pcidev.vendor_id))
			d.vendor = strdup(vendor_name(pci->attr->pcidev.vendor_id));
		d.var = strdup("UCX_NET_DEVICES");
		d.value = husk_strdup_printf("%s:%u", os->name, ib_port(os));
		fill_near(tp, &d, os);
		if (!d.name || !d.var || !d.value || add_dev(tp, &d) < 0)
			return -1;
	}
	return 0;
}

/* ---- loading ---------------------------------------------------------- */

static int load_allowed(struct husk_topo *tp, const char *allowed, struct husk_err *err)
{
	hwloc_const_bitmap_t all = hwloc_topology_get_allowed_cpuset(tp->t);

	if (!(tp->allowed = hwloc_bitmap_alloc()))
		return husk_err_set(err, ENOMEM, "placement");
	if (allowed) {
		if (hwloc_bitmap_list_sscanf(tp->allowed, allowed) < 0)
			return husk_err_set(err, 0, "placement: CPU list '%s' is malformed; "
				"write it like 0-7,16", allowed);
	} else if (tp->this_system) {
		if (hwloc_get_cpubind(tp->t, tp->allowed, HWLOC_CPUBIND_PROCESS) < 0)
			return husk_err_set(err, errno, "placement: cannot read this process's CPU affinity");
	} else {
		hwloc_bitmap_copy(tp->allowed, all);
	}
	hwloc_bitmap_and(tp->allowed, tp->allowed, all);
	if (hwloc_bitmap_iszero(tp->allowed))
		return husk_err_set(err, 0, "placement: none of the allowed CPUs (%s) is in the "
			"topology (%s); check the CPU list or HWLOC_XMLFILE",
			allowed ? allowed : "the process's affinity", tp->source);
	return 0;
}

int husk_topo_load(struct husk_topo *tp, const char *xml, const char *allowed,
	struct husk_err *err)
{
	const char *env_xml = getenv("HWLOC_XMLFILE"), *env_syn = getenv("HWLOC_SYNTHETIC");

	memset(tp, 0, sizeof(*tp));
	if (hwloc_topology_init(&tp->t) < 0)
		return husk_err_set(err, errno, "placement: hwloc_topology_init");
	hwloc_topology_set_io_types_filter(tp->t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
	if (xml)
		tp->source = husk_strdup_printf("XML file '%s'", xml);
	else if (env_xml && *env_xml)
		tp->source = husk_strdup_printf("HWLOC_XMLFILE='%s'", env_xml);
	else if (env_syn && *env_syn)
		tp->source = husk_strdup_printf("HWLOC_SYNTHETIC='%s'", env_syn);
	else
		tp->source = strdup("this machine");
	/* hwloc quietly falls back to this machine when HWLOC_XMLFILE cannot
	 * be read: a placement decided on the wrong topology. */
	if (!xml && env_xml && *env_xml && access(env_xml, R_OK) < 0) {
		husk_err_set(err, errno, "placement: HWLOC_XMLFILE='%s'", env_xml);
		husk_err_hint(err, "point it at a topology written by lstopo FILE.xml, or unset it");
		return -1;
	}
	if (xml && hwloc_topology_set_xml(tp->t, xml) < 0)
		return husk_err_set(err, errno, "placement: cannot read the topology file '%s'", xml);
	if (hwloc_topology_load(tp->t) < 0)
		return husk_err_set(err, errno, "placement: cannot load the topology from %s",
			tp->source);
	tp->this_system = hwloc_topology_is_thissystem(tp->t);
	if (load_allowed(tp, allowed, err) < 0)
		return -1;
	if (collect_gpus(tp) < 0 || collect_nics(tp) < 0)
		return husk_err_set(err, ENOMEM, "placement: listing GPUs and NICs");
	return 0;
}

void husk_topo_free(struct husk_topo *tp)
{
	for (size_t i = 0; i < tp->n_devs; i++) {
		struct husk_dev *d = &tp->devs[i];
		free(d->name), free(d->vendor), free(d->pci), free(d->var), free(d->value);
		free(d->uuid), free(d->numa);
	}
	free(tp->devs);
	free(tp->source);
	if (tp->allowed)
		hwloc_bitmap_free(tp->allowed);
	if (tp->t)
		hwloc_topology_destroy(tp->t);
	memset(tp, 0, sizeof(*tp));
}

/* ---- shares ----------------------------------------------------------- */

static int shares(const struct husk_topo *tp, int size, struct husk_rank_place *out,
	struct husk_err *err)
{
	hwloc_topology_t t2;
	hwloc_bitmap_t *sets = calloc((size_t)size, sizeof(*sets));
	hwloc_obj_t root;
	int r = -1;

	if (!sets)
		return husk_err_set(err, ENOMEM, "placement");
	if (hwloc_topology_dup(&t2, tp->t) < 0) {
		free(sets);
		return husk_err_set(err, errno, "placement: hwloc_topology_dup");
	}
	if (hwloc_topology_restrict(t2, tp->allowed, 0) < 0) {
		husk_err_set(err, errno, "placement: cannot restrict the topology to the allowed CPUs");
		goto out;
	}
	root = hwloc_get_root_obj(t2);
	if (hwloc_distrib(t2, &root, 1, sets, (unsigned)size, INT_MAX, 0) < 0) {
		husk_err_set(err, errno, "placement: hwloc_distrib");
		goto out;
	}
	for (int i = 0; i < size; i++) {
		out[i].cpus = sets[i];
		out[i].mems = hwloc_bitmap_alloc();
		if (!out[i].cpus || !out[i].mems) {
			husk_err_set(err, ENOMEM, "placement");
			goto out;
		}
		hwloc_cpuset_to_nodeset(tp->t, out[i].cpus, out[i].mems);
		sets[i] = NULL;
	}
	r = 0;
out:
	for (int i = 0; i < size; i++)
		if (sets[i])
			hwloc_bitmap_free(sets[i]);
	free(sets);
	hwloc_topology_destroy(t2);
	return r;
}

/* ---- devices for shares ------------------------------------------------- */

static bool token_in(const char *list, const char *tok)
{
	size_t n;

	if (!tok)
		return false;
	n = strlen(tok);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && !strncmp(p, tok, n))
			return true;
		/* NVIDIA writes UUIDs with a "GPU-" prefix; hwloc may not. */
		if (len == n + 4 && !strncmp(p, "GPU-", 4) && !strncmp(p + 4, tok, n))
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

/* Does every token of the user's list name a device of this variable? If
 * not (a MIG instance, an index hwloc does not know), placement leaves the
 * variable and those devices alone. */
static bool list_known(const struct husk_topo *tp, const char *var, const char *list)
{
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < tp->n_devs && !found; i++) {
			const struct husk_dev *d = &tp->devs[i];
			autofree char *tok = strndup(p, len);
			found = d->var && !strcmp(d->var, var) && tok &&
				(token_in(d->value, tok) || (d->uuid && token_in(tok, d->uuid)));
		}
		if (!found)
			return false;
		p += len + (p[len] == ',');
	}
	return true;
}

static bool candidate(const struct husk_topo *tp, const struct husk_dev *d,
	const struct husk_place_keep *keep)
{
	const char *user = NULL;

	if (d->kind == HUSK_DEV_NIC)
		return !(keep && keep->ucx);
	if (keep && !strcmp(d->var, "CUDA_VISIBLE_DEVICES"))
		user = keep->cuda;
	else if (keep && !strcmp(d->var, "ROCR_VISIBLE_DEVICES"))
		user = keep->rocr;
	if (!user)
		return true;
	if (!list_known(tp, d->var, user))
		return false;
	return token_in(user, d->value) || (d->uuid && token_in(user, d->uuid));
}

static int append(size_t **v, size_t *n, size_t x)
{
	size_t *nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	nv[(*n)++] = x;
	*v = nv;
	return 0;
}

/* Nearness of share r's covering object to device d: the depth of their
 * common ancestor (deeper is nearer). */
static int score(const struct husk_topo *tp, hwloc_obj_t home, const struct husk_dev *d)
{
	hwloc_obj_t c = d->near ? hwloc_get_common_ancestor_obj(tp->t, home, d->near) : NULL;

	return c ? c->depth : 0;
}

static int assign(const struct husk_topo *tp, enum husk_dev_kind kind, int size,
	const struct husk_place_keep *keep, hwloc_obj_t *home, struct husk_rank_place *out)
{
	size_t n = 0, *devs = NULL;
	int rc = -1;

	for (size_t i = 0; i < tp->n_devs; i++)
		if (tp->devs[i].kind == kind && candidate(tp, &tp->devs[i], keep) &&
		    append(&devs, &n, i) < 0)
			goto out;
	if (!n)
		return 0;
	if ((size_t)size >= n) {
		/* One device each: the nearest; ranks tied on the same set of
		 * nearest devices take them in turn. */
		size_t (*best)[64] = calloc((size_t)size, sizeof(*best));
		size_t *nbest = calloc((size_t)size, sizeof(*nbest));
		if (!best || !nbest) {
			free(best), free(nbest);
			goto out;
		}
		for (int r = 0; r < size; r++) {
			int top = -1;
			for (size_t j = 0; j < n; j++) {
				int s = score(tp, home[r], &tp->devs[devs[j]]);
				if (s > top)
					top = s, nbest[r] = 0;
				if (s == top && nbest[r] < 64)
					best[r][nbest[r]++] = devs[j];
			}
			size_t k = 0;
			for (int q = 0; q < r; q++)
				k += nbest[q] == nbest[r] &&
					!memcmp(best[q], best[r], nbest[r] * sizeof(size_t));
			size_t pick = best[r][k % nbest[r]];
			if (kind == HUSK_DEV_GPU ? append(&out[r].gpus, &out[r].n_gpus, pick) :
			    append(&out[r].nics, &out[r].n_nics, pick)) {
				free(best), free(nbest);
				goto out;
			}
		}
		free(best), free(nbest);
	} else {
		/* Fewer ranks than devices: each device to its nearest rank, ties
		 * to the rank that has fewer so far, so that none is left over. */
		for (size_t j = 0; j < n; j++) {
			int win = 0, top = -1;
			for (int r = 0; r < size; r++) {
				int s = score(tp, home[r], &tp->devs[devs[j]]);
				size_t have = kind == HUSK_DEV_GPU ? out[r].n_gpus : out[r].n_nics;
				size_t whave = kind == HUSK_DEV_GPU ? out[win].n_gpus : out[win].n_nics;
				if (s > top || (s == top && have < whave))
					top = s, win = r;
			}
			if (kind == HUSK_DEV_GPU ? append(&out[win].gpus, &out[win].n_gpus, devs[j]) :
			    append(&out[win].nics, &out[win].n_nics, devs[j]))
				goto out;
		}
	}
	rc = 0;
out:
	free(devs);
	return rc;
}

int husk_place(const struct husk_topo *tp, int size, const struct husk_place_keep *keep,
	struct husk_rank_place *out, struct husk_err *err)
{
	hwloc_obj_t *home;

	if (size < 1)
		return husk_err_set(err, 0, "placement: local size %d: must be at least 1", size);
	memset(out, 0, (size_t)size * sizeof(*out));
	if (shares(tp, size, out, err) < 0)
		return -1;
	if (!(home = calloc((size_t)size, sizeof(*home))))
		return husk_err_set(err, ENOMEM, "placement");
	for (int r = 0; r < size; r++) {
		home[r] = hwloc_get_obj_covering_cpuset(tp->t, out[r].cpus);
		if (!home[r])
			home[r] = hwloc_get_root_obj(tp->t);
	}
	if (assign(tp, HUSK_DEV_GPU, size, keep, home, out) < 0 ||
	    assign(tp, HUSK_DEV_NIC, size, keep, home, out) < 0) {
		free(home);
		return husk_err_set(err, ENOMEM, "placement");
	}
	free(home);
	return 0;
}

void husk_place_free(struct husk_rank_place *v, int size)
{
	for (int i = 0; v && i < size; i++) {
		if (v[i].cpus)
			hwloc_bitmap_free(v[i].cpus);
		if (v[i].mems)
			hwloc_bitmap_free(v[i].mems);
		free(v[i].gpus);
		free(v[i].nics);
	}
}

/* ---- what a rank is told ------------------------------------------------ */

/* "1,3" of the chosen devices' values for one variable (short names for the
 * summary when shortname). */
static char *join_values(const struct husk_topo *tp, const size_t *idx, size_t n,
	const char *var, bool shortname)
{
	char *s = strdup("");

	for (size_t i = 0; s && i < n; i++) {
		const struct husk_dev *d = &tp->devs[idx[i]];
		char *t;
		if (var && strcmp(d->var, var))
			continue;
		t = husk_strdup_printf("%s%s%s", s, *s ? "," : "", shortname && d->kind == HUSK_DEV_NIC ?
			d->name : d->value);
		free(s);
		s = t;
	}
	return s;
}

int husk_place_env(const struct husk_topo *tp, const struct husk_rank_place *r, int rank,
	int size, struct husk_env *env, char **summary)
{
	static const char *const gvars[] = { "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES" };
	autofree char *cpus = husk_bitmap_list(r->cpus), *mems = husk_bitmap_list(r->mems);
	autofree char *gpus = join_values(tp, r->gpus, r->n_gpus, NULL, true);
	autofree char *nics = join_values(tp, r->nics, r->n_nics, NULL, true);
	char *s;

	if (!cpus || !mems || !gpus || !nics)
		return -1;
	for (size_t i = 0; i < sizeof(gvars) / sizeof(*gvars); i++) {
		autofree char *v = join_values(tp, r->gpus, r->n_gpus, gvars[i], false);
		if (!v || (*v && husk_env_set(env, gvars[i], v) < 0))
			return -1;
	}
	if (r->n_nics) {
		autofree char *v = join_values(tp, r->nics, r->n_nics, "UCX_NET_DEVICES", false);
		if (!v || husk_env_set(env, "UCX_NET_DEVICES", v) < 0)
			return -1;
	}
	s = husk_strdup_printf("rank %d/%d: cpus %s%s%s%s%s%s%s", rank, size, cpus,
		*mems ? (hwloc_bitmap_weight(r->mems) > 1 ? ", mem nodes " : ", mem node ") : "", mems,
		*gpus ? (r->n_gpus > 1 ? ", gpus " : ", gpu ") : "", gpus,
		*nics ? (r->n_nics > 1 ? ", nics " : ", nic ") : "", nics);
	if (!s || husk_env_set(env, "HUSK_PLACEMENT", s) < 0) {
		free(s);
		return -1;
	}
	*summary = s;
	return 0;
}
