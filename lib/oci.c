/* oci.c: importing container images saved as files into the root of an
 * image being built: an OCI image layout (a directory), an OCI archive (a tar
 * of one) and a Docker archive (`docker save`, `podman save`).
 *
 * The image is untrusted input. Its JSON (index, manifests, config) is read
 * only after its digest matched the descriptor that names it; a layer is
 * hashed while it is extracted (one pass; on a mismatch the build fails and
 * its root is discarded); blob names are built from validated digests, never
 * taken from the image; and an archive is first extracted, with the same
 * checks as any layer, into a scratch directory that is removed afterwards.
 * References: OCI image-spec image-layout.md, image-index.md, manifest.md,
 * config.md, descriptor.md; Docker's image/spec (v1.2) for docker save. */
#include "husk_config.h"
#include "husk.h"
#include "unpack.h"
#include "util.h"

#include <archive.h>
#include <ctype.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON (16 << 20)      /* an index, manifest or config */
#define MAX_NESTING 4            /* indexes within indexes */
#define REF_NAME "org.opencontainers.image.ref.name"

struct src {
	const char *path;   /* as the user gave it */
	const char *label;  /* "OCI layout", "OCI archive", "Docker archive" */
	int dir_fd;         /* the layout, or the archive extracted */
	const char *ref;    /* the image asked for by tag, or NULL */
};

#define src_err(s, err, errnum, fmt, ...) \
	husk_err_set((err), (errnum), "%s '%s': " fmt, (s)->label, (s)->path, ##__VA_ARGS__)

/* A content descriptor: what a blob must be. */
struct desc {
	char alg[8];          /* "sha256" or "sha512" */
	char hex[129];
	char digest[140];     /* "alg:hex" */
	long long size;
	const char *media_type;   /* NULL when absent; points into the JSON */
};

/* ---- digests ------------------------------------------------------------- */

static bool valid_digest(const char *digest, char alg[8], char hex[129])
{
	const char *colon = strchr(digest, ':');
	size_t want, n;

	if (!colon)
		return false;
	if ((size_t)(colon - digest) == 6 && !strncmp(digest, "sha256", 6))
		want = 64;
	else if ((size_t)(colon - digest) == 6 && !strncmp(digest, "sha512", 6))
		want = 128;
	else
		return false;
	n = strlen(colon + 1);
	if (n != want)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)colon[1 + i]) && !(colon[1 + i] >= 'a' && colon[1 + i] <= 'f'))
			return false;
	memcpy(alg, digest, 6);
	alg[6] = '\0';
	memcpy(hex, colon + 1, n + 1);
	return true;
}

static EVP_MD_CTX *hash_new(const char *alg)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_get_digestbyname(alg);

	if (ctx && (!md || !EVP_DigestInit_ex(ctx, md, NULL))) {
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int hash_end(EVP_MD_CTX *ctx, char hex[129])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (!EVP_DigestFinal_ex(ctx, md, &n))
		return -1;
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int hash_buf(const char *alg, const void *p, size_t n, char hex[129])
{
	EVP_MD_CTX *ctx = hash_new(alg);
	int ret = ctx && EVP_DigestUpdate(ctx, p, n) ? hash_end(ctx, hex) : -1;

	EVP_MD_CTX_free(ctx);
	return ret;
}

/* The digest of a whole file, from its start. */
static int hash_fd(const char *alg, int fd, char hex[129])
{
	EVP_MD_CTX *ctx = hash_new(alg);
	char buf[64 * 1024];
	off_t off = 0;
	int ret = -1;

	while (ctx) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0) {
			ret = hash_end(ctx, hex);
			break;
		}
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			break;
		off += n;
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* The digest of a file's decompressed content (a Docker layer's diff_id
 * when the layer file is compressed). */
static int hash_decompressed(const char *alg, int fd, char hex[129])
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	EVP_MD_CTX *ctx = hash_new(alg);
	char buf[64 * 1024];
	int ret = -1;

	if (!a || !ctx || lseek(fd, 0, SEEK_SET) < 0)
		goto out;
	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_fd(a, fd, sizeof(buf)) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK)
		goto out;
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			goto out;
	}
	ret = hash_end(ctx, hex);
out:
	EVP_MD_CTX_free(ctx);
	if (a)
		archive_read_free(a);
	return ret;
}

static void short_digest(const struct desc *d, char *out, size_t size)
{
	snprintf(out, size, "%s:%.12s...", d->alg, d->hex);
}

/* ---- JSON ------------------------------------------------------------------ */

static json_object *parse_json(struct src *s, const char *name, const char *buf, size_t len,
	struct husk_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;
	enum json_tokener_error je;
	size_t end;

	if (!tok || len > (size_t)INT32_MAX) {
		json_tokener_free(tok);
		src_err(s, err, tok ? EFBIG : ENOMEM, "%s", name);
		return NULL;
	}
	o = json_tokener_parse_ex(tok, buf, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (o && end < len && isspace((unsigned char)buf[end]))
		end++;
	if (o && je == json_tokener_success && end == len)
		return o;
	json_object_put(o);
	if (je == json_tokener_continue)
		src_err(s, err, 0, "%s: malformed JSON: unexpected end", name);
	else if (je == json_tokener_success)
		src_err(s, err, 0, "%s: malformed JSON: data after the end", name);
	else
		src_err(s, err, 0, "%s: malformed JSON: %s", name, json_tokener_error_desc(je));
	return NULL;
}

static json_object *member(json_object *o, const char *key, json_type type)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v = member(o, key, json_type_string);
	return v ? json_object_get_string(v) : NULL;
}

/* Does o have key with a value that is neither null nor of this type? */
static bool wrong_type(json_object *o, const char *key, json_type type)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v && !json_object_is_type(v, type);
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* A JSON list of strings as a NULL-terminated vector; NULL for null. */
static int strv_of(json_object *arr, char ***out)
{
	size_t n = json_object_array_length(arr);
	char **v = calloc(n + 1, sizeof(char *));

	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(x, json_type_string) ||
		    !(v[i] = strdup(json_object_get_string(x)))) {
			strv_free(v);
			return -1;
		}
	}
	*out = v;
	return 0;
}

static int parse_desc(struct src *s, json_object *o, const char *role, struct desc *d,
	struct husk_err *err)
{
	const char *digest = member_str(o, "digest");
	json_object *size = member(o, "size", json_type_int);

	memset(d, 0, sizeof(*d));
	if (!digest || !valid_digest(digest, d->alg, d->hex))
		return src_err(s, err, 0, "%s: malformed descriptor: digest '%s' is not "
			"sha256:<64 hex digits> or sha512:<128 hex digits>", role, digest ? digest : "");
	if (!size || json_object_get_int64(size) < 0)
		return src_err(s, err, 0, "%s: malformed descriptor: no valid size", role);
	snprintf(d->digest, sizeof(d->digest), "%s:%s", d->alg, d->hex);
	d->size = json_object_get_int64(size);
	d->media_type = member_str(o, "mediaType");
	return 0;
}

/* ---- blobs ------------------------------------------------------------------ */

/* Open a file of the layout (path from its top), refusing anything but a
 * regular file: a FIFO planted in an archive would block the open. */
static int open_file(struct src *s, const char *path, struct stat *st)
{
	int fd = husk_resolve(s->dir_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

static int open_blob(struct src *s, const struct desc *d, const char *role, struct husk_err *err)
{
	char path[180];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/blobs/%s/%s", d->alg, d->hex);
	if ((fd = open_file(s, path, &st)) < 0) {
		int e = errno;
		src_err(s, err, e == ENOENT ? 0 : e, "%s: %s blob '%s'", role,
			e == ENOENT ? "missing" : "cannot read", d->digest);
		if (e == ENOENT)
			husk_err_hint(err, "the image is incomplete; save or copy it again");
		return -1;
	}
	if (st.st_size != d->size) {
		close(fd);
		src_err(s, err, 0, "%s: blob '%s' has %lld bytes, its descriptor says %lld", role,
			d->digest, (long long)st.st_size, d->size);
		husk_err_hint(err, "the image was damaged or tampered with; save or copy it again");
		return -1;
	}
	return fd;
}

static int mismatch(struct src *s, const char *role, const char *digest, const char *alg,
	const char *got, struct husk_err *err)
{
	src_err(s, err, 0, "%s: blob '%s' does not match its digest (its content has %s:%s)", role,
		digest, alg, got);
	husk_err_hint(err, "the image was damaged or tampered with; save or copy it again");
	return -1;
}

/* Read a JSON blob, check its digest, parse it. */
static json_object *read_blob_json(struct src *s, const struct desc *d, const char *role,
	struct husk_err *err)
{
	autoclose int fd = -1;
	autofree char *buf = NULL;
	char got[129];
	size_t len;

	if (d->size > MAX_JSON) {
		src_err(s, err, 0, "%s: blob '%s' is too large for JSON (%lld bytes)", role, d->digest,
			d->size);
		return NULL;
	}
	if ((fd = open_blob(s, d, role, err)) < 0)
		return NULL;
	if (husk_read_fd(fd, &buf, &len, MAX_JSON) < 0) {
		src_err(s, err, errno, "%s: blob '%s'", role, d->digest);
		return NULL;
	}
	if (hash_buf(d->alg, buf, len, got) < 0) {
		src_err(s, err, ENOMEM, "%s: cannot hash blob '%s'", role, d->digest);
		return NULL;
	}
	if (strcmp(got, d->hex)) {
		mismatch(s, role, d->digest, d->alg, got, err);
		return NULL;
	}
	return parse_json(s, role, buf, len, err);
}

/* A JSON file of the layout named by path (index.json, manifest.json...). */
static json_object *read_file_json(struct src *s, const char *path, char **text, size_t *len,
	struct husk_err *err)
{
	autoclose int fd = -1;
	char *buf = NULL;
	size_t n;
	struct stat st;
	json_object *o;

	if ((fd = open_file(s, path, &st)) < 0 || husk_read_fd(fd, &buf, &n, MAX_JSON) < 0) {
		int e = errno;
		if (e == EINVAL) {
			src_err(s, err, 0, "'%s' is not a regular file", path + 1);
			return NULL;
		}
		src_err(s, err, e, "'%s'", path + 1);
		if (e == ENOENT)
			husk_err_hint(err, "the image is incomplete; save or copy it again");
		return NULL;
	}
	o = parse_json(s, path + 1, buf, n, err);
	if (o && text) {
		*text = buf;
		*len = n;
	} else {
		free(buf);
	}
	return o;
}

/* Extract a layer blob open on fd with whiteouts, hashing it on the way. */
static int apply_layer(struct src *s, int fd, const char *alg, unsigned index, const char *id,
	int root_fd, struct husk_unpack_stats *stats, char got[129], bool *compressed,
	struct husk_err *err)
{
	autofree char *what = husk_strdup_printf("layer %u (%s) of '%s'", index, id, s->path);
	EVP_MD_CTX *ctx = hash_new(alg);
	int ret = -1;

	if (!what || !ctx)
		src_err(s, err, ENOMEM, "layer %u", index);
	else if (husk_unpack_tar_md(root_fd, fd, true, what, stats, ctx, compressed, err) == 0 &&
		 hash_end(ctx, got) == 0)
		ret = 0;
	EVP_MD_CTX_free(ctx);
	return ret;
}

/* ---- the image config ------------------------------------------------------ */

static int fill_config(struct src *s, json_object *root, const char *role,
	struct husk_oci_config *cfg, struct husk_err *err)
{
	json_object *c = member(root, "config", json_type_object), *v, *labels;
	static const struct { const char *key; size_t off; } lists[] = {
		{ "Env", offsetof(struct husk_oci_config, env) },
		{ "Entrypoint", offsetof(struct husk_oci_config, entrypoint) },
		{ "Cmd", offsetof(struct husk_oci_config, cmd) },
	};
	const char *wd;

	if (!json_object_is_type(root, json_type_object))
		return src_err(s, err, 0, "%s: malformed: not a JSON object", role);
	if (!c)   /* "config" is optional: an image with no defaults */
		return wrong_type(root, "config", json_type_object) ?
			src_err(s, err, 0, "%s: malformed: 'config' is not an object", role) : 0;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char ***field = (char ***)((char *)cfg + lists[i].off);
		if (wrong_type(c, lists[i].key, json_type_array) ||
		    ((v = member(c, lists[i].key, json_type_array)) && strv_of(v, field) < 0))
			return src_err(s, err, 0, "%s: malformed: '%s' is not a list of strings", role,
				lists[i].key);
	}
	if (wrong_type(c, "WorkingDir", json_type_string))
		return src_err(s, err, 0, "%s: malformed: 'WorkingDir' is not a string", role);
	if ((wd = member_str(c, "WorkingDir")) && *wd && !(cfg->workdir = strdup(wd)))
		return src_err(s, err, ENOMEM, "%s", role);
	if (wrong_type(c, "Labels", json_type_object))
		return src_err(s, err, 0, "%s: malformed: 'Labels' is not an object", role);
	if ((labels = member(c, "Labels", json_type_object))) {
		size_t n = (size_t)json_object_object_length(labels), i = 0;
		if (!(cfg->labels = calloc(n + 1, sizeof(char *))))
			return src_err(s, err, ENOMEM, "%s", role);
		json_object_object_foreach(labels, key, val) {
			if (!json_object_is_type(val, json_type_string))
				return src_err(s, err, 0, "%s: malformed: label '%s' is not a string",
					role, key);
			if (!(cfg->labels[i++] = husk_strdup_printf("%s=%s", key,
					json_object_get_string(val))))
				return src_err(s, err, ENOMEM, "%s", role);
		}
	}
	return 0;
}

void husk_oci_config_free(struct husk_oci_config *cfg)
{
	strv_free(cfg->env);
	strv_free(cfg->entrypoint);
	strv_free(cfg->cmd);
	strv_free(cfg->labels);
	free(cfg->workdir);
	free(cfg->manifest_digest);
	free(cfg->config_digest);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- OCI layouts ---------------------------------------------------------------- */

/* A manifest found in the index (or in an index it names). */
struct cand {
	struct desc d;
	char platform[128];   /* "os/arch[/variant]", or "" */
	char ref[128];        /* the ref.name annotation, or "" */
};
struct cands { struct cand *v; size_t n, cap; };

static const char *host_arch(void)
{
	/* GOARCH names, as OCI platforms use. */
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
#elif defined(__loongarch64)
	return "loong64";
#elif defined(__arm__)
	return "arm";
#else
	return "unknown";
#endif
}

static bool is_index_type(const char *t)
{
	return t && (!strcmp(t, "application/vnd.oci.image.index.v1+json") ||
		!strcmp(t, "application/vnd.docker.distribution.manifest.list.v2+json"));
}

static bool is_manifest_type(const char *t)
{
	return !t || !strcmp(t, "application/vnd.oci.image.manifest.v1+json") ||
		!strcmp(t, "application/vnd.docker.distribution.manifest.v2+json");
}

static int add_cand(struct cands *cs, const struct desc *d, json_object *item)
{
	json_object *p = member(item, "platform", json_type_object);
	struct cand *c;
	const char *os = member_str(p, "os"), *arch = member_str(p, "architecture");
	const char *variant = member_str(p, "variant"), *ref;

	for (size_t i = 0; i < cs->n; i++)   /* two tags of one image are one image */
		if (!strcmp(cs->v[i].d.digest, d->digest))
			return 0;
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? 2 * cs->cap : 8;
		struct cand *more = realloc(cs->v, cap * sizeof(*more));
		if (!more)
			return -1;
		cs->v = more;
		cs->cap = cap;
	}
	c = &cs->v[cs->n++];
	c->d = *d;
	c->d.media_type = NULL;   /* points into JSON freed before use */
	c->platform[0] = c->ref[0] = '\0';
	if (os && arch)
		snprintf(c->platform, sizeof(c->platform), "%s/%s%s%s", os, arch,
			variant ? "/" : "", variant ? variant : "");
	if ((ref = member_str(member(item, "annotations", json_type_object), REF_NAME)))
		snprintf(c->ref, sizeof(c->ref), "%s", ref);
	return 0;
}

/* Gather the manifests an index lists, following nested indexes. */
static int collect(struct src *s, json_object *index, const char *role, int depth,
	struct cands *cs, struct husk_err *err)
{
	json_object *list = member(index, "manifests", json_type_array);
	size_t n = list ? json_object_array_length(list) : 0;

	if (!list)
		return src_err(s, err, 0, "%s: malformed: no 'manifests' list", role);
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(list, i), *sub;
		struct desc d;
		int r;

		if (parse_desc(s, item, role, &d, err) < 0)
			return -1;
		if (is_index_type(d.media_type)) {
			if (depth >= MAX_NESTING)
				return src_err(s, err, 0, "%s: indexes nested too deep", role);
			if (!(sub = read_blob_json(s, &d, "image index", err)))
				return -1;
			r = collect(s, sub, "image index", depth + 1, cs, err);
			json_object_put(sub);
			if (r < 0)
				return -1;
		} else if (is_manifest_type(d.media_type) && add_cand(cs, &d, item) < 0) {
			return src_err(s, err, ENOMEM, "%s", role);
		}   /* anything else (signatures, attestations, artifacts) is not an image */
	}
	return 0;
}

static void list_cands(const struct cands *cs, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < cs->n && used + 1 < size; i++) {
		char id[32];
		const struct cand *c = &cs->v[i];
		int k;

		short_digest(&c->d, id, sizeof(id));
		k = snprintf(out + used, size - used, "%s%s (%s%s%s%s)", i ? ", " : "", id,
			*c->platform ? c->platform : "no platform", *c->ref ? ", '" : "", c->ref,
			*c->ref ? "'" : "");
		if (k < 0)
			break;
		used += (size_t)k;
	}
}

static int pick_manifest(struct src *s, const struct cands *cs, struct desc *out,
	struct husk_err *err)
{
	char want[64], list[600];
	const struct cand *match = NULL;
	size_t n_match = 0;

	if (cs->n == 0)
		return src_err(s, err, 0, "index.json lists no image manifest");
	if (s->ref) {
		/* Asked for by tag: that image (for this platform when the tag
		 * names several). */
		struct cands tagged = { 0 };
		int r;
		for (size_t i = 0; i < cs->n; i++)
			if (!strcmp(cs->v[i].ref, s->ref)) {
				struct cand *v = realloc(tagged.v, (tagged.n + 1) * sizeof(*v));
				if (!v) {
					free(tagged.v);
					return husk_err_set(err, ENOMEM, "OCI index");
				}
				tagged.v = v;
				tagged.v[tagged.n++] = cs->v[i];
			}
		if (tagged.n == 0) {
			list_cands(cs, list, sizeof(list));
			src_err(s, err, 0, "has no image tagged '%s': %s", s->ref, list);
			husk_err_hint(err, "give one of the tags listed");
			return -1;
		}
		s->ref = NULL;
		r = pick_manifest(s, &tagged, out, err);
		free(tagged.v);
		return r;
	}
	if (cs->n == 1) {
		*out = cs->v[0].d;
		return 0;
	}
	snprintf(want, sizeof(want), "linux/%s", host_arch());
	for (size_t i = 0; i < cs->n; i++) {
		const char *p = cs->v[i].platform;
		size_t k = strlen(want);
		if (!strncmp(p, want, k) && (p[k] == '\0' || p[k] == '/')) {
			match = &cs->v[i];
			n_match++;
		}
	}
	if (n_match == 1) {
		*out = match->d;
		return 0;
	}
	list_cands(cs, list, sizeof(list));
	src_err(s, err, 0, "holds %zu images and %s for %s: %s", cs->n,
		n_match ? "more than one" : "none", want, list);
	husk_err_hint(err, "pick one by tag: %s:TAG", s->path);
	return -1;
}

static bool is_layer_type(const char *t)
{
	/* OCI: ...image.layer.v1.tar[+gzip|+zstd], nondistributable too; Docker:
	 * ...image.rootfs.diff.tar.gzip, ...rootfs.foreign.diff.tar.gzip. Not
	 * encrypted layers (+encrypted), which need keys. */
	return !t || ((strstr(t, ".layer.") || strstr(t, ".rootfs.")) && strstr(t, ".tar") &&
		!strstr(t, "encrypted"));
}

static bool is_config_type(const char *t)
{
	return !t || !strcmp(t, "application/vnd.oci.image.config.v1+json") ||
		!strcmp(t, "application/vnd.docker.container.image.v1+json");
}

static int import_manifest(struct src *s, const struct desc *md, int root_fd,
	struct husk_oci_config *cfg, struct husk_unpack_stats *stats, struct husk_err *err)
{
	json_object *m = read_blob_json(s, md, "manifest", err), *layers, *conf = NULL;
	struct desc cd;
	size_t n;
	int ret = -1;

	if (!m)
		return -1;
	layers = member(m, "layers", json_type_array);
	if (!layers || !member(m, "config", json_type_object)) {
		src_err(s, err, 0, "manifest '%s': malformed: no 'config' or 'layers'", md->digest);
		goto out;
	}
	if (parse_desc(s, member(m, "config", json_type_object), "config", &cd, err) < 0)
		goto out;
	if (!is_config_type(cd.media_type)) {
		src_err(s, err, 0, "manifest '%s' is not a container image (config media type '%s')",
			md->digest, cd.media_type);
		goto out;
	}
	if (!(conf = read_blob_json(s, &cd, "config", err)) || fill_config(s, conf, "config", cfg, err) < 0)
		goto out;
	n = json_object_array_length(layers);
	for (size_t i = 0; i < n; i++) {
		struct desc ld;
		char role[32], id[32], got[129];
		autoclose int fd = -1;

		snprintf(role, sizeof(role), "layer %zu", i + 1);
		if (parse_desc(s, json_object_array_get_idx(layers, i), role, &ld, err) < 0)
			goto out;
		if (!is_layer_type(ld.media_type)) {
			src_err(s, err, 0, "%s: media type '%s' is not a tar layer", role, ld.media_type);
			goto out;
		}
		if ((fd = open_blob(s, &ld, role, err)) < 0)
			goto out;
		short_digest(&ld, id, sizeof(id));
		if (apply_layer(s, fd, ld.alg, (unsigned)i + 1, id, root_fd, stats, got, NULL, err) < 0) {
			/* A damaged blob reads as a damaged archive: name the cause. */
			if (hash_fd(ld.alg, fd, got) == 0 && strcmp(got, ld.hex))
				mismatch(s, role, ld.digest, ld.alg, got, err);
			goto out;
		}
		if (strcmp(got, ld.hex)) {
			mismatch(s, role, ld.digest, ld.alg, got, err);
			goto out;
		}
	}
	cfg->n_layers = (unsigned)n;
	if (!(cfg->manifest_digest = strdup(md->digest)) || !(cfg->config_digest = strdup(cd.digest))) {
		src_err(s, err, ENOMEM, "manifest");
		goto out;
	}
	ret = 0;
out:
	json_object_put(conf);
	json_object_put(m);
	return ret;
}

static int import_layout(struct src *s, int root_fd, struct husk_oci_config *cfg,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	json_object *layout, *index;
	struct cands cs = { 0 };
	struct desc md;
	const char *version;
	int ret = -1;

	if (!(layout = read_file_json(s, "/oci-layout", NULL, NULL, err)))
		return -1;
	version = member_str(layout, "imageLayoutVersion");
	if (!version || strncmp(version, "1.", 2)) {
		src_err(s, err, 0, "oci-layout: unsupported imageLayoutVersion '%s' (need 1.x)",
			version ? version : "");
		json_object_put(layout);
		return -1;
	}
	json_object_put(layout);
	if (!(index = read_file_json(s, "/index.json", NULL, NULL, err)))
		return -1;
	if (collect(s, index, "index.json", 0, &cs, err) == 0 &&
	    pick_manifest(s, &cs, &md, err) == 0)
		ret = import_manifest(s, &md, root_fd, cfg, stats, err);
	free(cs.v);
	json_object_put(index);
	return ret;
}

/* ---- Docker archives ------------------------------------------------------------- */

/* The digest a file name promises: "<hex>.json", "<hex>.tar", "blobs/sha256/<hex>". */
static bool digest_of_name(const char *path, char hex[129])
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t n = strspn(base, "0123456789abcdef");
	char alg[8];
	char digest[80];

	if (n != 64 || (base[n] && strcmp(base + n, ".json") && strcmp(base + n, ".tar")))
		return false;
	snprintf(digest, sizeof(digest), "sha256:%.64s", base);
	return valid_digest(digest, alg, hex);
}

static int pick_docker_image(struct src *s, json_object *manifest, json_object **out,
	struct husk_err *err)
{
	size_t n = json_object_array_length(manifest), used = 0;
	char list[600] = "";

	if (n == 0)
		return src_err(s, err, 0, "manifest.json lists no image");
	for (size_t i = 0; s->ref && i < n; i++) {
		/* RepoTags hold "name:tag": either the whole or the tag matches. */
		json_object *tags = member(json_object_array_get_idx(manifest, i), "RepoTags",
			json_type_array);
		for (size_t j = 0; tags && j < json_object_array_length(tags); j++) {
			json_object *t = json_object_array_get_idx(tags, j);
			const char *tag = json_object_is_type(t, json_type_string) ?
				json_object_get_string(t) : "";
			const char *colon = strrchr(tag, ':');
			if (!strcmp(tag, s->ref) || (colon && !strcmp(colon + 1, s->ref))) {
				*out = json_object_array_get_idx(manifest, i);
				return 0;
			}
		}
	}
	if (n == 1 && !s->ref) {
		*out = json_object_array_get_idx(manifest, 0);
		return 0;
	}
	for (size_t i = 0; i < n && used + 1 < sizeof(list); i++) {
		json_object *tags = member(json_object_array_get_idx(manifest, i), "RepoTags",
			json_type_array);
		json_object *t = tags ? json_object_array_get_idx(tags, 0) : NULL;
		int k = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
			t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) :
			"untagged");
		if (k < 0)
			break;
		used += (size_t)k;
	}
	if (s->ref) {
		src_err(s, err, 0, "has no image tagged '%s' (%s)", s->ref, list);
		husk_err_hint(err, "give one of the tags listed");
		return -1;
	}
	src_err(s, err, 0, "holds %zu images (%s)", n, list);
	husk_err_hint(err, "pick one by tag: %s:TAG", s->path);
	return -1;
}

/* The diff_id of a layer file: the digest of its content, decompressed when
 * it is compressed. */
static int diff_id_of(const char *alg, int fd, char hex[129])
{
	char raw[129];

	if (hash_decompressed(alg, fd, hex) == 0)
		return 0;
	if (hash_fd(alg, fd, raw) < 0)
		return -1;
	memcpy(hex, raw, sizeof(raw));
	return 0;
}

/* Apply one Docker layer and check it against its diff_id (the digest of
 * the uncompressed tar). */
static int docker_layer(struct src *s, const char *path, const char *diff_id, unsigned index,
	int root_fd, struct husk_unpack_stats *stats, struct husk_err *err)
{
	char alg[8], want[129], got[129], role[32], id[32], file[4200];
	autoclose int fd = -1;
	struct stat st;
	bool compressed = false;

	snprintf(role, sizeof(role), "layer %u", index);
	if (!diff_id || !valid_digest(diff_id, alg, want))
		return src_err(s, err, 0, "config: malformed diff_id for %s", role);
	snprintf(file, sizeof(file), "/%s", path);
	if ((fd = open_file(s, file, &st)) < 0) {
		int e = errno;
		src_err(s, err, e == ENOENT ? 0 : e, "%s: %s '%s'", role,
			e == ENOENT ? "missing layer file" : "cannot read", path);
		if (e == ENOENT)
			husk_err_hint(err, "the image is incomplete; save it again");
		return -1;
	}
	snprintf(id, sizeof(id), "%s:%.12s...", alg, want);
	if (apply_layer(s, fd, alg, index, id, root_fd, stats, got, &compressed, err) < 0) {
		/* A damaged file reads as a damaged archive: name the cause. */
		if (diff_id_of(alg, fd, got) == 0 && strcmp(got, want))
			mismatch(s, role, diff_id, alg, got, err);
		return -1;
	}
	if (strcmp(got, want) && compressed && diff_id_of(alg, fd, got) < 0)
		return src_err(s, err, errno, "%s: cannot read '%s' again", role, path);
	if (strcmp(got, want))
		return mismatch(s, role, diff_id, alg, got, err);
	return 0;
}

static int import_docker(struct src *s, int root_fd, struct husk_oci_config *cfg,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	json_object *manifest, *image = NULL, *conf = NULL, *layers, *diff_ids;
	const char *config_path;
	autofree char *text = NULL;
	autofree char *cpath = NULL;
	char hex[129], named[129];
	size_t len, n;
	int ret = -1;

	if (!(manifest = read_file_json(s, "/manifest.json", NULL, NULL, err)))
		return -1;
	if (!json_object_is_type(manifest, json_type_array)) {
		src_err(s, err, 0, "manifest.json: malformed: not a list");
		goto out;
	}
	if (pick_docker_image(s, manifest, &image, err) < 0)
		goto out;
	config_path = member_str(image, "Config");
	layers = member(image, "Layers", json_type_array);
	if (!config_path || !layers) {
		src_err(s, err, 0, "manifest.json: malformed: no 'Config' or 'Layers'");
		goto out;
	}
	if (!(cpath = husk_strdup_printf("/%s", config_path))) {
		src_err(s, err, ENOMEM, "config");
		goto out;
	}
	if (!(conf = read_file_json(s, cpath, &text, &len, err)))
		goto out;
	if (hash_buf("sha256", text, len, hex) < 0) {
		src_err(s, err, ENOMEM, "config");
		goto out;
	}
	/* The config's file name is its digest (the image ID). */
	if (digest_of_name(config_path, named) && strcmp(named, hex)) {
		char digest[140];
		snprintf(digest, sizeof(digest), "sha256:%s", named);
		mismatch(s, "config", digest, "sha256", hex, err);
		goto out;
	}
	if (fill_config(s, conf, "config", cfg, err) < 0)
		goto out;
	diff_ids = member(member(conf, "rootfs", json_type_object), "diff_ids", json_type_array);
	n = json_object_array_length(layers);
	if (!diff_ids || json_object_array_length(diff_ids) != n) {
		src_err(s, err, 0, "config: malformed: rootfs.diff_ids does not list the %zu layers", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		json_object *d = json_object_array_get_idx(diff_ids, i);
		if (!json_object_is_type(l, json_type_string)) {
			src_err(s, err, 0, "manifest.json: malformed: layer %zu is not a path", i + 1);
			goto out;
		}
		if (docker_layer(s, json_object_get_string(l), json_object_is_type(d, json_type_string) ?
				json_object_get_string(d) : NULL, (unsigned)i + 1, root_fd, stats, err) < 0)
			goto out;
	}
	cfg->n_layers = (unsigned)n;
	if (!(cfg->config_digest = husk_strdup_printf("sha256:%s", hex))) {
		src_err(s, err, ENOMEM, "config");
		goto out;
	}
	ret = 0;
out:
	json_object_put(conf);
	json_object_put(manifest);
	return ret;
}

/* ---- entry point ------------------------------------------------------------------ */

/* Extract the archive at s->path into a new directory under scratch_fd. */
static int extract_archive(struct src *s, int scratch_fd, char **tmp, struct husk_err *err)
{
	struct husk_unpack_stats ignored = { 0 };
	autofree char *what = husk_strdup_printf("%s '%s'", s->label, s->path);
	autoclose int afd = -1;

	if (!what)
		return src_err(s, err, ENOMEM, "extracting");
	if (!(*tmp = husk_mkdtempat(scratch_fd, "husk-import")))
		return src_err(s, err, errno, "cannot make a temporary directory to extract it");
	if ((s->dir_fd = openat(scratch_fd, *tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return src_err(s, err, errno, "cannot open its temporary directory");
	if ((afd = open(s->path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0)
		return husk_err_set(err, errno, "%s '%s'", s->label, s->path);
	return husk_unpack_tar(s->dir_fd, afd, false, what, &ignored, err);
}

int husk_oci_import(int root_fd, const char *path, enum husk_source_kind kind,
	int scratch_fd, struct husk_oci_config *cfg, struct husk_unpack_stats *stats,
	struct husk_err *err)
{
	return husk_oci_import_ref(root_fd, path, NULL, kind, scratch_fd, cfg, stats, err);
}

int husk_oci_import_ref(int root_fd, const char *path, const char *ref,
	enum husk_source_kind kind, int scratch_fd, struct husk_oci_config *cfg,
	struct husk_unpack_stats *stats, struct husk_err *err)
{
	struct src s = { .path = path, .dir_fd = -1, .ref = ref };
	struct husk_oci_config c = { 0 };
	autofree char *tmp = NULL;
	int ret = -1;

	switch (kind) {
	case HUSK_SRC_OCI_LAYOUT:
		s.label = "OCI layout";
		if ((s.dir_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			husk_err_set(err, errno, "OCI layout '%s'", path);
			return -1;
		}
		break;
	case HUSK_SRC_OCI_ARCHIVE:
		s.label = "OCI archive";
		break;
	case HUSK_SRC_DOCKER_ARCHIVE:
		s.label = "Docker archive";
		break;
	default:
		return husk_err_set(err, 0, "'%s': a %s source is not an OCI or Docker image", path,
			husk_source_kind_name(kind));
	}
	if (kind == HUSK_SRC_OCI_LAYOUT || extract_archive(&s, scratch_fd, &tmp, err) == 0)
		ret = kind == HUSK_SRC_DOCKER_ARCHIVE ? import_docker(&s, root_fd, &c, stats, err) :
			import_layout(&s, root_fd, &c, stats, err);
	if (s.dir_fd >= 0)
		close(s.dir_fd);
	if (tmp && husk_remove_tree(scratch_fd, tmp) < 0) {
		if (ret == 0)
			ret = src_err(&s, err, errno, "cannot remove the temporary directory '%s'", tmp);
		else
			husk_warn("cannot remove the temporary directory '%s': %s", tmp, strerror(errno));
	}
	if (ret == 0)
		*cfg = c;
	else
		husk_oci_config_free(&c);
	return ret;
}
