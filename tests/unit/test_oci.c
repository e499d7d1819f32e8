/* test_oci.c: importing OCI image layouts (made by umoci), OCI archives and
 * Docker archives (written here, and by skopeo when it is installed) into a
 * root, as `husk build` does: config fields, whiteouts across layers, the
 * choice of a manifest in an index, and refusal of tampered or incomplete
 * images, with the scratch directory left empty every time. */
#include "husk_config.h"
#include "husk.h"
#include "import.h"

#include <json-c/json.h>

static char base[PATH_MAX];
static bool have_umoci;

static const char *host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "unknown";
#endif
}

/* Two architectures that are not this one. */
static const char *other_arch(int i)
{
	static const char *archs[] = { "s390x", "mips64le", "ppc64le" };
	int k = 0;

	for (int j = 0; j < 3; j++)
		if (strcmp(archs[j], host_arch()) && k++ == i)
			return archs[j];
	return "none";
}

static char *sha256_of(const char *file)
{
	char out[65] = "";
	FILE *p = popen(fmt("sha256sum '%s'", file), "r");

	if (!p || fscanf(p, "%64s", out) != 1)
		out[0] = '\0';
	if (p)
		pclose(p);
	return strdup(out);
}

static long size_of(const char *file)
{
	struct stat st;
	return stat(file, &st) == 0 ? (long)st.st_size : -1;
}

/* Store text as a blob of the layout; returns "sha256:HEX". */
static char *put_blob(const char *layout, const char *text)
{
	char *tmp = fmt("%s/blob.tmp", base), *hex;
	FILE *f = fopen(tmp, "w");

	fputs(text, f);
	fclose(f);
	hex = sha256_of(tmp);
	rename(tmp, fmt("%s/blobs/sha256/%s", layout, hex));
	return fmt("sha256:%s", hex);
}

static char *blob_path(const char *layout, const char *digest)
{
	return fmt("%s/blobs/sha256/%s", layout, digest + strlen("sha256:"));
}

static char *desc_json(const char *layout, const char *type, const char *digest,
	const char *arch, const char *ref)
{
	return fmt("{\"mediaType\":\"application/vnd.oci.image.%s.v1+json\",\"digest\":\"%s\","
		"\"size\":%ld%s%s%s%s%s}", type, digest, size_of(blob_path(layout, digest)),
		arch ? ",\"platform\":{\"architecture\":\"" : "", arch ? arch : "",
		arch ? "\",\"os\":\"linux\"}" : "",
		ref ? ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"" : "",
		ref ? fmt("%s\"}", ref) : "");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* ---- fixtures, made before entering the user namespace -------------------- */

static void make_umoci_layout(void)
{
	const char *cmd = fmt(
		"set -e; cd '%s'; exec >umoci.log 2>&1\n"
		"umoci init --layout lay\n"
		"umoci new --image lay:t\n"
		"umoci unpack --rootless --image lay:t b\n"
		"mkdir -p b/rootfs/etc b/rootfs/d b/rootfs/bin\n"
		"echo hi >b/rootfs/etc/hello; echo old >b/rootfs/d/old; echo keep >b/rootfs/d/keep\n"
		"printf '#!/bin/sh\\n' >b/rootfs/bin/tool; chmod 0755 b/rootfs/bin/tool\n"
		"ln -s /etc/hello b/rootfs/link\n"
		"umoci repack --image lay:t b\n"
		"rm -rf b; umoci unpack --rootless --image lay:t b\n"
		"rm b/rootfs/etc/hello b/rootfs/d/old; echo new >b/rootfs/d/new\n"
		"umoci repack --image lay:t b\n"
		"umoci config --image lay:t --config.env FOO=bar --config.env BAZ=qux "
		"--config.workingdir /d --config.entrypoint /bin/sh --config.cmd -c --config.cmd echo "
		"--config.label a=b\n"
		"umoci gc --layout lay\n"
		"tar -C lay -cf oci.tar . && tar -C lay -czf oci.tar.gz .\n", base);

	have_umoci = system("command -v umoci >/dev/null") == 0;
	if (!have_umoci) {
		printf("skip - OCI layouts: umoci not installed\n");
		return;
	}
	have_umoci = run(cmd) == 0;
	CHECK("umoci makes a two-layer layout", have_umoci);
	if (!have_umoci)
		run(fmt("cat '%s/umoci.log'", base));
}

/* A docker save archive written by hand: two layers (the second gzipped,
 * with whiteouts), a config named by its digest, manifest.json. */
static void make_docker_archive(void)
{
	const char *d = fmt("%s/docker", base);
	const struct ent l1[] = {
		{ 'f', "a/x", "x", 0, 0 }, { 'f', "a/y", "y", 0, 0 },
		{ 'f', "o/lower", "l", 0, 0 }, { 'f', "keep", "keepdata", 0, 0 },
		{ 'l', "sh", "/bin/busybox", 0, 0 },
	};
	const struct ent l2[] = {
		{ 'f', "a/.wh.x", "", 0, 0 }, { 'f', "o/.wh..wh..opq", "", 0, 0 },
		{ 'f', "o/upper", "u", 0, 0 }, { 'f', "new", "new", 0, 0 },
	};
	char *id1, *id2, *config, *chex;

	run(fmt("mkdir -p '%s/l1' '%s/l2'", d, d));
	make_tar(fmt("%s/l1/layer.tar", d), NULL, l1, sizeof(l1) / sizeof(l1[0]));
	make_tar(fmt("%s/l2.tar", d), NULL, l2, sizeof(l2) / sizeof(l2[0]));
	id1 = sha256_of(fmt("%s/l1/layer.tar", d));
	id2 = sha256_of(fmt("%s/l2.tar", d));
	run(fmt("gzip -c '%s/l2.tar' >'%s/l2/layer.tar.gz' && rm '%s/l2.tar'", d, d, d));
	config = fmt("{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{\"Env\":"
		"[\"PATH=/usr/bin:/bin\"],\"Cmd\":[\"/bin/true\"],\"WorkingDir\":\"/w\","
		"\"Labels\":{\"k\":\"v\",\"org.example\":\"x=y\"}},\"rootfs\":{\"type\":\"layers\","
		"\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}", host_arch(), id1, id2);
	write_file(fmt("%s/config.json", d), config);
	chex = sha256_of(fmt("%s/config.json", d));
	rename(fmt("%s/config.json", d), fmt("%s/%s.json", d, chex));
	write_file(fmt("%s/manifest.json", d), fmt("[{\"Config\":\"%s.json\",\"RepoTags\":"
		"[\"hand:1\"],\"Layers\":[\"l1/layer.tar\",\"l2/layer.tar.gz\"]}]", chex));
	run(fmt("tar -C '%s' -cf '%s/docker.tar' .", d, base));
	write_file(fmt("%s/docker.digest", base), chex);
}

static void make_skopeo_archive(void)
{
	if (!have_umoci || system("command -v skopeo >/dev/null") != 0)
		return;
	if (run(fmt("cd '%s' && skopeo --tmpdir '%s' copy -q oci:lay:t "
		    "docker-archive:skopeo.tar:husk/test:1 >skopeo.log 2>&1", base, base)) != 0)
		run(fmt("cat '%s/skopeo.log'", base));
}

/* ---- imports ------------------------------------------------------------------ */

struct result {
	int r;
	struct husk_oci_config cfg;
	struct husk_unpack_stats st;
	struct husk_err err;
	int root_fd;
	char *root;
	int scratch_left;   /* entries left in the scratch directory */
};

static void drop(struct result *x)
{
	husk_oci_config_free(&x->cfg);
	if (x->root_fd >= 0)
		close(x->root_fd);
	x->root_fd = -1;
}

static struct result import(const char *name, const char *path, enum husk_source_kind kind)
{
	struct result x = { 0 };
	char *scratch = fmt("%s/%s.scratch", base, name);
	int sfd;

	x.root = fmt("%s/%s.root", base, name);
	mkdir(x.root, 0755);
	mkdir(scratch, 0755);
	x.root_fd = open(x.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sfd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	x.r = husk_oci_import(x.root_fd, path, kind, sfd, &x.cfg, &x.st, &x.err);
	close(sfd);
	x.scratch_left = count_entries(scratch);
	if (x.r < 0)
		printf("# %s: %s\n", name, x.err.msg);
	return x;
}

static bool strv_is(char **v, const char *a, const char *b)
{
	return v && v[0] && !strcmp(v[0], a) && (b ? v[1] && !strcmp(v[1], b) && !v[2] : !v[1]);
}

/* The tree and config of the umoci image, however it was packed. */
static void check_umoci_image(const char *name, struct result *x, bool docker)
{
	int fd = x->root_fd;

	CHECK(fmt("%s: imports", name), x->r == 0);
	CHECK(fmt("%s: files of both layers", name), has_content(fd, "d/keep", "keep\n") &&
		has_content(fd, "d/new", "new\n") && link_is(fd, "link", "/etc/hello") &&
		(mode_of(fd, "bin/tool") & 07777) == 0755);
	CHECK(fmt("%s: files deleted in the second layer are gone (whiteouts)", name),
		!exists(fd, "etc/hello") && !exists(fd, "d/old") && S_ISDIR(mode_of(fd, "etc")));
	CHECK(fmt("%s: no whiteout files left", name),
		run(fmt("test -z \"$(find '%s' -name '.wh.*')\"", x->root)) == 0);
	CHECK(fmt("%s: Env", name), strv_is(x->cfg.env, "FOO=bar", "BAZ=qux"));
	CHECK(fmt("%s: Entrypoint and Cmd", name), strv_is(x->cfg.entrypoint, "/bin/sh", NULL) &&
		strv_is(x->cfg.cmd, "-c", "echo"));
	CHECK(fmt("%s: WorkingDir and Labels", name), x->cfg.workdir &&
		!strcmp(x->cfg.workdir, "/d") && strv_is(x->cfg.labels, "a=b", NULL));
	CHECK(fmt("%s: digests and layer count", name), x->cfg.n_layers == 2 &&
		x->cfg.config_digest && strlen(x->cfg.config_digest) == 71 &&
		(docker ? !x->cfg.manifest_digest : x->cfg.manifest_digest &&
		 strlen(x->cfg.manifest_digest) == 71));
	CHECK(fmt("%s: stats", name), x->st.entries >= 8 && x->st.bytes > 0);
	CHECK(fmt("%s: the scratch directory is left empty", name), x->scratch_left == 0);
}

static void test_layouts(void)
{
	const char *lay = fmt("%s/lay", base);
	struct result x = { .root_fd = -1 };
	char *index;

	if (!have_umoci)
		return;
	drop(&x);
	x = import("layout", lay, HUSK_SRC_OCI_LAYOUT);
	check_umoci_image("layout", &x, false);
	index = slurp(AT_FDCWD, fmt("%s/index.json", lay));
	CHECK("layout: the manifest digest is the one index.json names",
		x.cfg.manifest_digest && index && strstr(index, x.cfg.manifest_digest));
	drop(&x);
	x = import("archive", fmt("%s/oci.tar", base), HUSK_SRC_OCI_ARCHIVE);
	check_umoci_image("OCI archive", &x, false);
	drop(&x);
	x = import("archive-gz", fmt("%s/oci.tar.gz", base), HUSK_SRC_OCI_ARCHIVE);
	check_umoci_image("OCI archive (gzip)", &x, false);
	if (exists(AT_FDCWD, fmt("%s/skopeo.tar", base))) {
		drop(&x);
		x = import("skopeo", fmt("%s/skopeo.tar", base), HUSK_SRC_DOCKER_ARCHIVE);
		check_umoci_image("Docker archive by skopeo", &x, true);
	} else {
		printf("skip - Docker archive by skopeo: skopeo not installed or failed\n");
	}
	drop(&x);
}

static void test_docker(void)
{
	struct result x = import("docker", fmt("%s/docker.tar", base), HUSK_SRC_DOCKER_ARCHIVE);
	char *chex = slurp(AT_FDCWD, fmt("%s/docker.digest", base));
	int fd = x.root_fd;

	CHECK("docker: imports", x.r == 0);
	CHECK("docker: layer files", has_content(fd, "a/y", "y") && has_content(fd, "keep", "keepdata") &&
		has_content(fd, "new", "new") && link_is(fd, "sh", "/bin/busybox"));
	CHECK("docker: .wh.x in the gzipped second layer removes a/x", !exists(fd, "a/x"));
	CHECK("docker: opaque directory", !exists(fd, "o/lower") && has_content(fd, "o/upper", "u"));
	CHECK("docker: config", strv_is(x.cfg.env, "PATH=/usr/bin:/bin", NULL) &&
		strv_is(x.cfg.cmd, "/bin/true", NULL) && !x.cfg.entrypoint && x.cfg.workdir &&
		!strcmp(x.cfg.workdir, "/w") && strv_is(x.cfg.labels, "k=v", "org.example=x=y"));
	CHECK("docker: the config digest is the config's file name", chex && x.cfg.config_digest &&
		!strcmp(x.cfg.config_digest, fmt("sha256:%s", chex)) && !x.cfg.manifest_digest &&
		x.cfg.n_layers == 2);
	CHECK("docker: the scratch directory is left empty", x.scratch_left == 0);
	drop(&x);
	CHECK("docker: config freed", !x.cfg.env && !x.cfg.config_digest);
}

/* ---- tampered and incomplete images ------------------------------------------ */

/* The digest of the manifest's layer i, or of its config (i < 0). */
static char *manifest_blob(const char *layout, const char *manifest_digest, int i)
{
	json_object *m = json_object_from_file(blob_path(layout, manifest_digest)), *d, *v;
	char *out = NULL;

	if (i < 0)
		json_object_object_get_ex(m, "config", &d);
	else if (json_object_object_get_ex(m, "layers", &v))
		d = json_object_array_get_idx(v, (size_t)i);
	if (m && json_object_object_get_ex(d, "digest", &v))
		out = strdup(json_object_get_string(v));
	json_object_put(m);
	return out;
}

static char *copy_layout(const char *name)
{
	char *dir = fmt("%s/%s", base, name);

	run(fmt("cp -a '%s/lay' '%s' && chmod -R u+w '%s'", base, dir, dir));
	return dir;
}

/* Overwrite one byte of a file in place. */
static void poke(const char *file, long off, char c)
{
	int fd = open(file, O_WRONLY);

	if (fd < 0 || pwrite(fd, &c, 1, off) != 1)
		printf("# cannot change %s\n", file);
	if (fd >= 0)
		close(fd);
}

static void refused(const char *name, const char *path, enum husk_source_kind kind,
	const char *want1, const char *want2)
{
	struct result x = import(name, path, kind);

	CHECK(fmt("%s: refused with a message naming it", name), x.r == -1 &&
		says(x.err.msg, want1, want2, NULL));
	CHECK(fmt("%s: the scratch directory is left empty", name), x.scratch_left == 0);
	drop(&x);
}

static void test_tampered(void)
{
	char *manifest, *layer2, *config, *lay, *tar;
	struct result ok;

	if (!have_umoci)
		return;
	ok = import("reference", fmt("%s/lay", base), HUSK_SRC_OCI_LAYOUT);
	if (ok.r < 0)
		return;
	manifest = ok.cfg.manifest_digest;

	/* The gzip header's mtime: the layer still decompresses and extracts,
	 * so only the digest check can catch it. */
	lay = copy_layout("t-gzip-header");
	layer2 = manifest_blob(lay, manifest, 1);
	poke(blob_path(lay, layer2), 5, 0x55);
	refused("tampered layer (gzip header)", lay, HUSK_SRC_OCI_LAYOUT, layer2,
		"does not match its digest");

	lay = copy_layout("t-gzip-data");
	poke(blob_path(lay, layer2), size_of(blob_path(lay, layer2)) / 2, 0x55);
	refused("tampered layer (compressed data)", lay, HUSK_SRC_OCI_LAYOUT, layer2,
		"does not match its digest");

	lay = copy_layout("t-config");
	config = manifest_blob(lay, manifest, -1);
	run(fmt("sed -i 's/FOO=bar/FOO=baz/' '%s'", blob_path(lay, config)));
	refused("tampered config", lay, HUSK_SRC_OCI_LAYOUT, fmt("config: blob '%s'", config),
		"does not match its digest");

	lay = copy_layout("t-size");
	run(fmt("echo >>'%s'", blob_path(lay, manifest)));
	refused("manifest of another size", lay, HUSK_SRC_OCI_LAYOUT, manifest,
		"its descriptor says");

	lay = copy_layout("t-missing");
	unlink(blob_path(lay, layer2));
	refused("missing layer blob", lay, HUSK_SRC_OCI_LAYOUT, fmt("layer 2: missing blob '%s'",
		layer2), "incomplete");

	lay = copy_layout("t-json");
	write_file(fmt("%s/index.json", lay), "{\"schemaVersion\":2,\"manifests\":[");
	refused("malformed index.json", lay, HUSK_SRC_OCI_LAYOUT, "index.json: malformed JSON", NULL);

	lay = copy_layout("t-archive");
	poke(blob_path(lay, layer2), 5, 0x55);
	tar = fmt("%s/t-archive.tar", base);
	run(fmt("tar -C '%s' -cf '%s' .", lay, tar));
	refused("tampered layer in an OCI archive", tar, HUSK_SRC_OCI_ARCHIVE,
		fmt("OCI archive '%s': layer 2: blob '%s'", tar, layer2), "does not match");

	/* docker: change a byte of a file's data in the uncompressed layer */
	run(fmt("rm -rf '%s/t-docker' && cp -a '%s/docker' '%s/t-docker' && "
		"sed -i 's/keepdata/keepDATA/' '%s/t-docker/l1/layer.tar' && "
		"tar -C '%s/t-docker' -cf '%s/t-docker.tar' .", base, base, base, base, base, base));
	refused("tampered Docker layer", fmt("%s/t-docker.tar", base), HUSK_SRC_DOCKER_ARCHIVE,
		"layer 1: blob 'sha256:", "does not match its digest");
	run(fmt("rm -rf '%s/t-docker2' && cp -a '%s/docker' '%s/t-docker2' && "
		"sed -i 's/bin:/bon:/' '%s'/t-docker2/*.json && "
		"tar -C '%s/t-docker2' -cf '%s/t-docker2.tar' .", base, base, base, base, base, base));
	refused("tampered Docker config", fmt("%s/t-docker2.tar", base), HUSK_SRC_DOCKER_ARCHIVE,
		"config: blob 'sha256:", "does not match its digest");
	run(fmt("rm -rf '%s/t-docker3' && cp -a '%s/docker' '%s/t-docker3' && "
		"rm '%s/t-docker3/l2/layer.tar.gz' && "
		"tar -C '%s/t-docker3' -cf '%s/t-docker3.tar' .", base, base, base, base, base, base));
	refused("missing Docker layer", fmt("%s/t-docker3.tar", base), HUSK_SRC_DOCKER_ARCHIVE,
		"layer 2: missing layer file 'l2/layer.tar.gz'", NULL);
	drop(&ok);
}

/* ---- choosing a manifest ------------------------------------------------------ */

static void test_index(void)
{
	struct result ok, x = { .root_fd = -1 };
	char *a, *a_text, *b, *lay, *nested, *bad_cfg, *bad_manifest;

	if (!have_umoci)
		return;
	ok = import("index-ref", fmt("%s/lay", base), HUSK_SRC_OCI_LAYOUT);
	if (ok.r < 0)
		return;
	a = ok.cfg.manifest_digest;
	lay = copy_layout("index");
	/* A second image: the same manifest with an annotation (another digest). */
	a_text = slurp(AT_FDCWD, blob_path(lay, a));
	b = put_blob(lay, fmt("{\"annotations\":{\"x\":\"y\"},%s", a_text + 1));

	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		desc_json(lay, "manifest", a, NULL, "one"), desc_json(lay, "manifest", a, NULL, "two")));
	drop(&x);
	x = import("index-dup", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: two tags of one image are one image", x.r == 0 &&
		!strcmp(x.cfg.manifest_digest, a));

	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		desc_json(lay, "manifest", b, other_arch(0), NULL),
		desc_json(lay, "manifest", a, host_arch(), NULL)));
	drop(&x);
	x = import("index-arch", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: the manifest for this architecture is chosen", x.r == 0 &&
		!strcmp(x.cfg.manifest_digest, a));

	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		desc_json(lay, "manifest", b, other_arch(0), NULL),
		desc_json(lay, "manifest", a, other_arch(1), "t")));
	drop(&x);
	x = import("index-none", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: none for this architecture: an error listing them", x.r == -1 &&
		says(x.err.msg, "holds 2 images and none for linux/", fmt("linux/%s", other_arch(0)),
			fmt("linux/%s, 't'", other_arch(1)), fmt("%.19s", b), NULL));
	CHECK("index: the scratch directory is left empty", x.scratch_left == 0);

	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		desc_json(lay, "manifest", b, NULL, NULL), desc_json(lay, "manifest", a, NULL, NULL)));
	drop(&x);
	x = import("index-noplatform", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: two images without platforms: an error", x.r == -1 &&
		says(x.err.msg, "holds 2 images", "no platform", NULL));

	nested = put_blob(lay, fmt("{\"schemaVersion\":2,\"manifests\":[%s,%s]}",
		desc_json(lay, "manifest", b, other_arch(0), NULL),
		desc_json(lay, "manifest", a, host_arch(), NULL)));
	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s]}",
		desc_json(lay, "index", nested, NULL, "multi")));
	drop(&x);
	x = import("index-nested", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: a nested image index is followed", x.r == 0 &&
		!strcmp(x.cfg.manifest_digest, a));

	/* A config whose Env is not a list. */
	bad_cfg = put_blob(lay, "{\"config\":{\"Env\":\"FOO=bar\"},\"rootfs\":{\"diff_ids\":[]}}");
	bad_manifest = put_blob(lay, fmt("{\"schemaVersion\":2,\"config\":{\"mediaType\":"
		"\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%ld},"
		"\"layers\":[]}", bad_cfg, size_of(blob_path(lay, bad_cfg))));
	write_file(fmt("%s/index.json", lay), fmt("{\"schemaVersion\":2,\"manifests\":[%s]}",
		desc_json(lay, "manifest", bad_manifest, NULL, NULL)));
	drop(&x);
	x = import("index-badconfig", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: a malformed config is an error", x.r == -1 &&
		says(x.err.msg, "config: malformed: 'Env' is not a list of strings", NULL));

	write_file(fmt("%s/index.json", lay), "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
		"\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:../../etc/passwd\","
		"\"size\":1}]}");
	drop(&x);
	x = import("index-baddigest", lay, HUSK_SRC_OCI_LAYOUT);
	CHECK("index: a digest that is not hex is refused", x.r == -1 &&
		says(x.err.msg, "digest 'sha256:../../etc/passwd'", NULL));
	drop(&x);
	drop(&ok);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/husk-oci-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	/* umoci and skopeo run as the user, before the namespace. */
	make_umoci_layout();
	make_docker_archive();
	make_skopeo_archive();
	if (enter_build_userns() < 0) {
		printf("skip - OCI import tests: cannot enter a user namespace: %s\n", strerror(errno));
	} else {
		test_layouts();
		test_docker();
		test_tampered();
		test_index();
	}
	if (run(fmt("chmod -R u+rwX '%s' && rm -rf '%s'", base, base)) != 0)
		printf("# could not remove %s\n", base);
	return unit_done();
}
