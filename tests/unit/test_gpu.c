/* test_gpu.c: GPU discovery in a fake host tree (index to device node),
 * the choice of visible GPUs from the environment, what a launch gets
 * (hidden nodes, renumbered variables, libraries), and CDI specs. */
#include "husk_config.h"
#include "gpu.h"
#include "unit.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void put(const char *path, const char *fmt, ...)
{
	char full[512], dir[512];
	va_list ap;
	FILE *f;

	snprintf(full, sizeof(full), "%s%s", root, path);
	for (char *p = full + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(p - full), full);
		mkdir(dir, 0755);
	}
	f = fopen(full, "w");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void link_at(const char *target, const char *path)
{
	char full[512];

	snprintf(full, sizeof(full), "%s%s", root, path);
	symlink(target, full);
}

static void new_root(const char *name)
{
	snprintf(root, sizeof(root), "%s/%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
	mkdir(root, 0755);
}

/* 4 NVIDIA GPUs whose minors are not in bus order. */
static void nvidia_tree(void)
{
	static const char *const bus[] = { "0000:1a:00.0", "0000:3b:00.0", "0000:86:00.0",
		"0000:af:00.0" };
	static const int minor[] = { 2, 0, 3, 1 };

	for (int i = 0; i < 4; i++) {
		char p[128];
		snprintf(p, sizeof(p), "/proc/driver/nvidia/gpus/%s/information", bus[i]);
		put(p, "Model: \t\t Fake GPU\nIRQ:   42\nGPU UUID: \t GPU-%d%d%d%d-aaaa\n"
			"Device Minor: \t %d\nBus Location: \t %s\n", i, i, i, i, minor[i], bus[i]);
		snprintf(p, sizeof(p), "/dev/nvidia%d", i);
		put(p, "gpu %d\n", i);
	}
	put("/dev/nvidiactl", "");
	put("/dev/nvidia-uvm", "");
	put("/usr/lib/x86_64-linux-gnu/libcuda.so.550.1", "fake");
	link_at("libcuda.so.550.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
	put("/usr/bin/nvidia-smi", "#!/bin/sh\n");
	{
		char p[512];
		snprintf(p, sizeof(p), "%s/usr/bin/nvidia-smi", root);
		chmod(p, 0755);
	}
}

static int sel_of(const struct husk_gpus *g, char **envp, char *out, size_t size,
	struct husk_err *err)
{
	size_t sel[HUSK_GPU_MAX], n = 0, len = 0;
	bool restricted;
	char why[256];

	out[0] = '\0';
	if (husk_gpu_select(g, envp, sel, &n, &restricted, why, sizeof(why), err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "", g->gpu[sel[i]].node);
	if (!restricted)
		snprintf(out + len, size - len, "%s(all)", n ? " " : "");
	return 0;
}

#define SEL(name, want, ...) do { \
	char *env_[] = { __VA_ARGS__, NULL }; \
	char got_[1200]; \
	struct husk_err e_ = { 0 }; \
	if (sel_of(&g, env_, got_, sizeof(got_), &e_) < 0) \
		snprintf(got_, sizeof(got_), "error: %s", e_.msg); \
	CHECK_STR(name, got_, want); \
} while (0)

#define SEL_ERR(name, needle, ...) do { \
	char *env_[] = { __VA_ARGS__, NULL }; \
	char got_[1200]; \
	struct husk_err e_ = { 0 }; \
	int r_ = sel_of(&g, env_, got_, sizeof(got_), &e_); \
	CHECK(name, r_ < 0 && strstr(e_.msg, needle)); \
	if (r_ == 0 || !strstr(e_.msg, needle)) \
		printf("# got: %s / %s\n", got_, e_.msg); \
} while (0)

static void test_nvidia(void)
{
	struct husk_gpus g;
	struct husk_err err = { 0 };

	new_root("nv");
	nvidia_tree();
	CHECK("nvidia: discovery", husk_gpu_discover(root, HUSK_GPU_NVIDIA, &g, &err) == 0 &&
		g.n == 4);
	CHECK_STR("nvidia: index 0 is the first bus, minor 2", g.gpu[0].node, "/dev/nvidia2");
	CHECK_STR("nvidia: index 3 is minor 1", g.gpu[3].node, "/dev/nvidia1");
	CHECK_STR("nvidia: uuid read", g.gpu[1].uuid, "GPU-1111-aaaa");
	CHECK("nvidia: shared nodes", g.shared[0] && !strcmp(g.shared[0], "/dev/nvidiactl") &&
		g.shared[1] && !strcmp(g.shared[1], "/dev/nvidia-uvm") && !g.shared[2]);

	SEL("no variable: all", "/dev/nvidia2,/dev/nvidia0,/dev/nvidia3,/dev/nvidia1 (all)", "X=1");
	SEL("CUDA_VISIBLE_DEVICES=1,3", "/dev/nvidia0,/dev/nvidia1", "CUDA_VISIBLE_DEVICES=1,3");
	SEL("CUDA_VISIBLE_DEVICES order kept", "/dev/nvidia1,/dev/nvidia0",
		"CUDA_VISIBLE_DEVICES=3, 1");
	SEL("negative index ends the list", "/dev/nvidia2", "CUDA_VISIBLE_DEVICES=0,-1,2");
	SEL("empty: no GPU", "", "CUDA_VISIBLE_DEVICES=");
	SEL("NoDevFiles: no GPU", "", "CUDA_VISIBLE_DEVICES=NoDevFiles");
	SEL("UUID prefix", "/dev/nvidia3,/dev/nvidia0", "CUDA_VISIBLE_DEVICES=GPU-2222,GPU-1111-aaaa");
	SEL_ERR("index out of range", "there is no GPU 5", "CUDA_VISIBLE_DEVICES=5");
	SEL_ERR("garbage entry", "'abc' is neither", "CUDA_VISIBLE_DEVICES=1,abc");
	SEL_ERR("duplicate entry", "listed twice", "CUDA_VISIBLE_DEVICES=1,1");
	SEL_ERR("unknown UUID", "no GPU on this host has UUID", "CUDA_VISIBLE_DEVICES=GPU-9");
	SEL_ERR("MIG refused", "MIG", "CUDA_VISIBLE_DEVICES=MIG-abc");
	SEL("SLURM_STEP_GPUS", "/dev/nvidia0,/dev/nvidia1", "SLURM_STEP_GPUS=1,3");
	SEL("SLURM_JOB_GPUS when no step list", "/dev/nvidia3", "SLURM_JOB_GPUS=2");
	SEL("step list wins over job list", "/dev/nvidia0", "SLURM_JOB_GPUS=0,1,2,3",
		"SLURM_STEP_GPUS=1");
	SEL("Slurm ConstrainDevices: CUDA counts from 0", "/dev/nvidia0,/dev/nvidia1",
		"SLURM_STEP_GPUS=1,3", "CUDA_VISIBLE_DEVICES=0,1");
	SEL("Slurm without constraint: CUDA = Slurm ids", "/dev/nvidia0,/dev/nvidia1",
		"SLURM_STEP_GPUS=1,3", "CUDA_VISIBLE_DEVICES=1,3");
	SEL("per-rank: CUDA_VISIBLE_DEVICES=1 of Slurm's 1,3", "/dev/nvidia1",
		"SLURM_STEP_GPUS=1,3", "CUDA_VISIBLE_DEVICES=1");
	SEL("an index only Slurm's ids explain", "/dev/nvidia1",
		"SLURM_STEP_GPUS=1,3", "CUDA_VISIBLE_DEVICES=3");
	SEL_ERR("Slurm id not on this node", "GPU 7 is not on this node", "SLURM_STEP_GPUS=7");
	SEL_ERR("CUDA index outside the allocation", "there is no GPU 2",
		"SLURM_STEP_GPUS=1,3", "CUDA_VISIBLE_DEVICES=2");
	SEL("NVIDIA_VISIBLE_DEVICES", "/dev/nvidia3", "NVIDIA_VISIBLE_DEVICES=2");
	SEL("NVIDIA_VISIBLE_DEVICES=all", "/dev/nvidia2,/dev/nvidia0,/dev/nvidia3,/dev/nvidia1",
		"NVIDIA_VISIBLE_DEVICES=all");
	SEL("NVIDIA_VISIBLE_DEVICES=none", "", "NVIDIA_VISIBLE_DEVICES=none");
	SEL("CUDA_VISIBLE_DEVICES wins over NVIDIA_VISIBLE_DEVICES", "/dev/nvidia0",
		"NVIDIA_VISIBLE_DEVICES=2", "CUDA_VISIBLE_DEVICES=1");
	husk_gpus_free(&g);
}

static void test_nvidia_fallback(void)
{
	struct husk_gpus g;
	struct husk_err err = { 0 };

	new_root("nvnodes");
	put("/dev/nvidia10", "");
	put("/dev/nvidia2", "");
	put("/dev/nvidia0", "");
	put("/dev/nvidiactl", "");
	put("/dev/nvidia-caps/nvidia-cap1", "");
	CHECK("nvidia without /proc: nodes in number order", husk_gpu_discover(root,
		HUSK_GPU_NVIDIA, &g, &err) == 0 && g.n == 3 && !strcmp(g.gpu[0].node, "/dev/nvidia0") &&
		!strcmp(g.gpu[1].node, "/dev/nvidia2") && !strcmp(g.gpu[2].node, "/dev/nvidia10"));
	SEL("fallback: index 2 is /dev/nvidia10", "/dev/nvidia10", "CUDA_VISIBLE_DEVICES=2");
	husk_gpus_free(&g);
	new_root("empty");
	CHECK("no driver: no GPU, no error", husk_gpu_discover(root, HUSK_GPU_NVIDIA, &g, &err) == 0
		&& g.n == 0);
	CHECK("no driver: no AMD GPU either", husk_gpu_discover(root, HUSK_GPU_AMD, &g, &err) == 0 &&
		g.n == 0);
}

static void test_amd(void)
{
	struct husk_gpus g;
	struct husk_err err = { 0 };

	new_root("amd");
	put("/dev/kfd", "");
	put("/dev/dri/renderD128", "");
	put("/dev/dri/renderD129", "");
	put("/dev/dri/card0", "");
	put("/dev/dri/card1", "");
	put("/sys/class/kfd/kfd/topology/nodes/0/gpu_id", "0\n");
	put("/sys/class/kfd/kfd/topology/nodes/0/properties", "cpu_cores_count 8\n");
	put("/sys/class/kfd/kfd/topology/nodes/1/gpu_id", "4242\n");
	put("/sys/class/kfd/kfd/topology/nodes/1/properties", "simd_count 4\ndrm_render_minor 129\n");
	put("/sys/class/kfd/kfd/topology/nodes/2/gpu_id", "4343\n");
	put("/sys/class/kfd/kfd/topology/nodes/2/properties", "drm_render_minor 128\n");
	put("/sys/devices/pci0/0000:03:00.0/x", "");
	put("/sys/devices/pci0/0000:83:00.0/x", "");
	{
		char p[512];
		snprintf(p, sizeof(p), "%s/sys/class/drm", root);
		mkdir(p, 0755);
	}
	link_at("../../devices/pci0/0000:03:00.0", "/sys/class/drm/renderD129");
	link_at("../../devices/pci0/0000:83:00.0", "/sys/class/drm/renderD128");
	link_at("../../devices/pci0/0000:83:00.0", "/sys/class/drm/card0");
	link_at("../../devices/pci0/0000:03:00.0", "/sys/class/drm/card1");
	/* sysfs: <dev>/device leads to the PCI device; here the link is the
	 * device itself, so give each a "device" entry pointing at itself. */
	link_at(".", "/sys/devices/pci0/0000:03:00.0/device");
	link_at(".", "/sys/devices/pci0/0000:83:00.0/device");
	CHECK("amd: KFD order", husk_gpu_discover(root, HUSK_GPU_AMD, &g, &err) == 0 && g.n == 2 &&
		!strcmp(g.gpu[0].node, "/dev/dri/renderD129") &&
		!strcmp(g.gpu[1].node, "/dev/dri/renderD128"));
	CHECK_STR("amd: card of GPU 0", g.gpu[0].card, "/dev/dri/card1");
	CHECK_STR("amd: card of GPU 1", g.gpu[1].card, "/dev/dri/card0");
	SEL("ROCR_VISIBLE_DEVICES=1", "/dev/dri/renderD128", "ROCR_VISIBLE_DEVICES=1");
	SEL("HIP_VISIBLE_DEVICES counts what ROCR left", "/dev/dri/renderD128",
		"ROCR_VISIBLE_DEVICES=1,0", "HIP_VISIBLE_DEVICES=0");
	SEL("HIP reads CUDA_VISIBLE_DEVICES", "/dev/dri/renderD128", "CUDA_VISIBLE_DEVICES=1");
	SEL("GPU_DEVICE_ORDINAL", "/dev/dri/renderD129", "GPU_DEVICE_ORDINAL=0");
	husk_gpus_free(&g);
}

static bool has(char **v, const char *s)
{
	for (char **p = v; p && *p; p++)
		if (!strcmp(*p, s))
			return true;
	return false;
}

static const char *bind_src(struct husk_host *h, const char *dst)
{
	for (size_t i = 0; i < h->n_binds; i++)
		if (!strcmp(h->binds[i].dst, dst))
			return h->binds[i].src;
	return NULL;
}

static void test_plan(void)
{
	struct husk_host h;
	struct husk_err err = { 0 };
	char *env13[] = { "CUDA_VISIBLE_DEVICES=3,1", "PATH=/usr/bin", NULL };
	char *none[] = { NULL };
	struct husk_gpu_opts o = { .gpu = "nvidia", .envp = env13 };
	char want[512];

	new_root("nv");
	o.root = root;
	husk_host_init(&h);
	CHECK("plan: --gpu=nvidia", husk_gpu_plan(&o, &h, &err) == 0);
	if (err.msg[0])
		printf("# %s\n", err.msg);
	CHECK("plan: hides the GPUs not chosen", has(h.hide, "/dev/nvidia2") &&
		has(h.hide, "/dev/nvidia3") && !has(h.hide, "/dev/nvidia0") &&
		!has(h.hide, "/dev/nvidia1"));
	CHECK("plan: hides their /proc entries", has(h.hide, "/proc/driver/nvidia/gpus/0000:1a:00.0")
		&& !has(h.hide, "/proc/driver/nvidia/gpus/0000:3b:00.0"));
	CHECK_STR("plan: renumbered, order kept", husk_env_get(&h.env, "CUDA_VISIBLE_DEVICES"), "1,0");
	CHECK("plan: without host injection, no libraries", h.n_binds == 1 && !h.ld_library_path);
	snprintf(want, sizeof(want), "%s/dev", root);
	CHECK_STR("plan: the host root's /dev", bind_src(&h, "/dev"), want);
	husk_host_free(&h);

	o.envp = none;
	husk_host_init(&h);
	CHECK("plan: no variable, nothing hidden, nothing renumbered", husk_gpu_plan(&o, &h, &err) == 0
		&& !h.hide && !husk_env_get(&h.env, "CUDA_VISIBLE_DEVICES"));
	husk_host_free(&h);

	new_root("empty");
	husk_host_init(&h);
	CHECK("plan: --gpu=nvidia without GPUs fails", husk_gpu_plan(&o, &h, &err) < 0 &&
		strstr(err.msg, "--gpu=nvidia: no NVIDIA GPU"));
	husk_host_free(&h);
	husk_host_init(&h);
	o.gpu = "auto";
	CHECK("plan: --gpu=auto without GPUs adds nothing", husk_gpu_plan(&o, &h, &err) == 0 &&
		h.n_items == 0 && !h.hide && h.env.n == 0);
	husk_host_free(&h);
	husk_host_init(&h);
	o.gpu = "cuda";
	CHECK("plan: bad --gpu value", husk_gpu_plan(&o, &h, &err) < 0 &&
		strstr(err.msg, "expected auto, nvidia, amd or none"));
	husk_host_free(&h);
}

/* ---- CDI ------------------------------------------------------------------ */

static const char *good_yaml =
	"cdiVersion: 0.6.0\n"
	"kind: example.com/gpu\n"
	"containerEdits:\n"
	"  env: [EXAMPLE_DRIVER=1]\n"
	"devices:\n"
	"  - name: gpu0\n"
	"    containerEdits:\n"
	"      deviceNodes:\n"
	"        - path: /dev/example0\n"
	"          type: c\n"
	"          major: 195\n"
	"      env:\n"
	"        - EXAMPLE_GPU=0\n"
	"  - name: gpu1\n"
	"    containerEdits:\n"
	"      deviceNodes: [{path: /dev/example1}]\n"
	"      mounts:\n"
	"        - hostPath: /opt/example/lib\n"
	"          containerPath: /usr/lib/example\n"
	"          options: [ro, nosuid, bind]\n"
	"      hooks:\n"
	"        - hookName: createContainer\n"
	"          path: /usr/bin/example-hook\n";

static void bad_spec(const char *name, const char *text, bool yaml, const char *needle)
{
	struct husk_cdi_spec s;
	struct husk_err err = { 0 };
	int r = husk_cdi_parse_text(text, strlen(text), yaml, "/etc/cdi/bad.yaml", &s, &err);

	CHECK(name, r < 0 && strstr(err.msg, "/etc/cdi/bad.yaml") && strstr(err.msg, needle));
	if (r == 0 || !strstr(err.msg, needle))
		printf("# message: %s\n", r == 0 ? "(accepted)" : err.msg);
	if (r == 0)
		husk_cdi_spec_free(&s);
}

static void test_cdi_parse(void)
{
	struct husk_cdi_spec s;
	struct husk_err err = { 0 };
	const char *json = "{\"cdiVersion\":\"0.5.0\",\"kind\":\"vendor.io/net\",\"devices\":"
		"[{\"name\":\"nic0\",\"containerEdits\":{\"env\":[\"A=1\"]}}]}";
	char *kind, *name;

	CHECK("cdi: good YAML", husk_cdi_parse_text(good_yaml, strlen(good_yaml), true, "g.yaml", &s,
		&err) == 0 && !strcmp(s.kind, "example.com/gpu") && !strcmp(s.version, "0.6.0"));
	if (err.msg[0])
		printf("# %s\n", err.msg);
	husk_cdi_spec_free(&s);
	CHECK("cdi: good JSON", husk_cdi_parse_text(json, strlen(json), false, "n.json", &s, &err) == 0
		&& !strcmp(s.kind, "vendor.io/net"));
	husk_cdi_spec_free(&s);
	CHECK("cdi: JSON read as YAML too", husk_cdi_parse_text(json, strlen(json), true, "n.yaml", &s,
		&err) == 0);
	husk_cdi_spec_free(&s);
	bad_spec("cdi: no cdiVersion", "kind: a.com/b\ndevices: [{name: x, containerEdits: {}}]\n",
		true, "cdiVersion");
	bad_spec("cdi: bad kind", "cdiVersion: 0.6.0\nkind: nokind\ndevices: [{name: x, "
		"containerEdits: {}}]\n", true, "'nokind' is not vendor.com/class");
	bad_spec("cdi: no devices", "cdiVersion: 0.6.0\nkind: a.com/b\n", true, "no \"devices\"");
	bad_spec("cdi: device without a name", "cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n"
		"  - containerEdits: {}\n", true, "devices[0] has no \"name\"");
	bad_spec("cdi: device twice", "cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n"
		"  - {name: x, containerEdits: {}}\n  - {name: x, containerEdits: {}}\n", true,
		"device 'x' is defined twice");
	bad_spec("cdi: relative device path", "cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n"
		"  - name: x\n    containerEdits:\n      deviceNodes: [{path: dev/x}]\n", true,
		"device 'x': deviceNodes[0] has no absolute \"path\"");
	bad_spec("cdi: env without '='", "cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n"
		"  - name: x\n    containerEdits:\n      env: [NOEQ]\n", true, "env[0] is not a NAME=VALUE");
	bad_spec("cdi: YAML syntax error has a line", "cdiVersion: 0.6.0\nkind: a.com/b\n"
		"devices: [\n  - oops: : :\n", true, "YAML error at line");
	bad_spec("cdi: JSON syntax error", "{\"cdiVersion\": ", false, "JSON error");
	CHECK("cdi: split name", husk_cdi_split_name("nvidia.com/gpu=0", &kind, &name, &err) == 0 &&
		!strcmp(kind, "nvidia.com/gpu") && !strcmp(name, "0"));
	free(kind);
	free(name);
	CHECK("cdi: a path is not a CDI name", husk_cdi_split_name("/dev/nvidia0", &kind, &name, &err) < 0
		&& strstr(err.msg, "not a CDI device name"));
}

static void test_cdi_apply(void)
{
	struct husk_host h;
	struct husk_err err = { 0 };
	char **nodes = NULL;
	char *one[] = { "example.com/gpu=gpu1", NULL };
	char *all[] = { "example.com/gpu=all", NULL };
	char *unknown[] = { "example.com/gpu=gpu7", NULL };
	char *nokind[] = { "other.org/x=y", NULL };
	char want[512];

	new_root("cdi");
	put("/etc/cdi/example.yaml", "%s", good_yaml);
	put("/etc/cdi/broken.json", "{");
	put("/var/run/cdi/override.json", "{\"cdiVersion\":\"0.6.0\",\"kind\":\"example.com/gpu\","
		"\"devices\":[{\"name\":\"gpu0\",\"containerEdits\":{\"env\":[\"FROM_RUN=1\"],"
		"\"deviceNodes\":[{\"path\":\"/dev/example0\",\"hostPath\":\"/dev/example9\"}]}}]}");
	put("/dev/example0", "");
	put("/dev/example1", "");
	put("/dev/example9", "");
	put("/opt/example/lib/libexample.so.1", "");
	husk_host_init(&h);
	CHECK("cdi apply: one device", husk_cdi_apply(root, one, &h, &nodes, &err) == 0);
	if (err.msg[0])
		printf("# %s\n", err.msg);
	CHECK("cdi apply: spec env and device node", husk_env_get(&h.env, "EXAMPLE_DRIVER") &&
		!husk_env_get(&h.env, "EXAMPLE_GPU") && has(nodes, "/dev/example1"));
	snprintf(want, sizeof(want), "%s/opt/example/lib", root);
	CHECK_STR("cdi apply: mount", bind_src(&h, "/usr/lib/example"), want);
	CHECK("cdi apply: mount read-only", h.n_binds == 1 && h.binds[0].ro);
	husk_gpu_strv_free(nodes);
	husk_host_free(&h);

	husk_host_init(&h);
	CHECK("cdi apply: /var/run/cdi wins", husk_cdi_apply(root, (char *[]){ "example.com/gpu=gpu0",
		NULL }, &h, &nodes, &err) == 0 && husk_env_get(&h.env, "FROM_RUN") &&
		!husk_env_get(&h.env, "EXAMPLE_GPU"));
	snprintf(want, sizeof(want), "%s/dev/example9", root);
	CHECK_STR("cdi apply: hostPath bound on path", bind_src(&h, "/dev/example0"), want);
	husk_gpu_strv_free(nodes);
	husk_host_free(&h);

	husk_host_init(&h);
	CHECK("cdi apply: =all", husk_cdi_apply(root, all, &h, &nodes, &err) == 0 &&
		has(nodes, "/dev/example0") && has(nodes, "/dev/example1"));
	CHECK("cdi apply: =all takes gpu0 from /var/run/cdi only", husk_env_get(&h.env, "FROM_RUN") &&
		!husk_env_get(&h.env, "EXAMPLE_GPU"));
	husk_gpu_strv_free(nodes);
	husk_host_free(&h);

	husk_host_init(&h);
	CHECK("cdi apply: unknown device", husk_cdi_apply(root, unknown, &h, &nodes, &err) < 0 &&
		strstr(err.msg, "'example.com/gpu=gpu7' not found") && strstr(err.msg, "broken.json"));
	printf("# %s\n", err.msg);
	husk_host_free(&h);
	husk_host_init(&h);
	CHECK("cdi apply: unknown kind", husk_cdi_apply(root, nokind, &h, &nodes, &err) < 0 &&
		strstr(err.msg, "no CDI spec of kind 'other.org/x'"));
	husk_host_free(&h);

	put("/dev/example1", "");
	unlink(strcat(strcpy(want, root), "/dev/example1"));
	husk_host_init(&h);
	CHECK("cdi apply: missing host node", husk_cdi_apply(root, one, &h, &nodes, &err) < 0 &&
		strstr(err.msg, "device node") && strstr(err.msg, "/dev/example1"));
	husk_host_free(&h);
}

static void test_net(void)
{
	struct husk_host h;
	struct husk_err err = { 0 };
	char want[512];

	new_root("net");
	put("/dev/infiniband/uverbs0", "");
	put("/dev/infiniband/rdma_cm", "");
	put("/sys/class/infiniband/mlx5_0/ports/1/state", "4: ACTIVE\n");
	put("/etc/libibverbs.d/mlx5.driver", "driver mlx5\n");
	put("/dev/cxi0", "");
	husk_host_init(&h);
	CHECK("net: InfiniBand and CXI devices found", husk_net_plan(root, true, &h, &err) == 3);
	CHECK("net: items", h.n_items == 5 && !strcmp(h.items[h.n_items - 1].what, "path"));
	snprintf(want, sizeof(want), "%s/etc/libibverbs.d", root);
	CHECK_STR("net: verbs provider configuration", bind_src(&h, "/etc/libibverbs.d"), want);
	husk_host_free(&h);
	new_root("empty");
	husk_host_init(&h);
	CHECK("net: none on a host without", husk_net_plan(root, true, &h, &err) == 0 &&
		h.n_items == 0 && h.n_binds == 0);
	husk_host_free(&h);
}

int main(void)
{
	char tmpl[] = "/tmp/husk-gpu-unit.XXXXXX";
	char cmd[300];

	if (!mkdtemp(tmpl))
		return 1;
	setenv("TMPDIR", tmpl, 1);
	husk_log_set(NULL, -1);
	test_nvidia();
	test_nvidia_fallback();
	test_amd();
	test_plan();
	test_cdi_parse();
	test_cdi_apply();
	test_net();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpl);
	return unit_done();
}
