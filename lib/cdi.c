/* cdi.c: Container Device Interface specs (github.com/cncf-tags/
 * container-device-interface, SPEC.md): the vendor describes a device as
 * edits to a container (device nodes, mounts, environment, hooks), in
 * JSON or YAML files under /etc/cdi and /var/run/cdi; `--device
 * vendor.com/class=name` applies them.
 *
 * YAML is read with libyaml and turned into the same json-c tree as a JSON
 * spec, so one walker checks and applies both. husk binds the host's device
 * nodes (it cannot mknod), so type/major/minor/fileMode of deviceNodes are
 * not used; hooks are skipped with a warning, since husk runs no OCI hooks. */
#include "husk_config.h"
#include "gpu.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define SPEC_MAX (4 << 20)

void husk_cdi_spec_free(struct husk_cdi_spec *spec)
{
	free(spec->file);
	free(spec->version);
	free(spec->kind);
	if (spec->json)
		json_object_put(spec->json);
	memset(spec, 0, sizeof(*spec));
}

/* ---- YAML into json-c --------------------------------------------------- */

static struct json_object *yaml_node_json(yaml_document_t *doc, yaml_node_t *node, int depth)
{
	struct json_object *o;

	if (!node || depth > 64)
		return NULL;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		return json_object_new_string_len((const char *)node->data.scalar.value,
			(int)node->data.scalar.length);
	case YAML_SEQUENCE_NODE:
		o = json_object_new_array();
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     o && it < node->data.sequence.items.top; it++) {
			struct json_object *v = yaml_node_json(doc, yaml_document_get_node(doc, *it),
				depth + 1);
			if (!v) {
				json_object_put(o);
				return NULL;
			}
			json_object_array_add(o, v);
		}
		return o;
	case YAML_MAPPING_NODE:
		o = json_object_new_object();
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
		     o && p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			struct json_object *v;
			if (!k || k->type != YAML_SCALAR_NODE) {
				json_object_put(o);
				return NULL;
			}
			v = yaml_node_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
			if (!v) {
				json_object_put(o);
				return NULL;
			}
			json_object_object_add(o, (const char *)k->data.scalar.value, v);
		}
		return o;
	default:
		return NULL;
	}
}

static struct json_object *parse_yaml(const char *text, size_t len, const char *what,
	struct husk_err *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct json_object *o = NULL;

	if (!yaml_parser_initialize(&parser)) {
		husk_err_set(err, ENOMEM, "CDI spec '%s'", what);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		husk_err_set(err, 0, "CDI spec '%s': YAML error at line %zu: %s", what,
			parser.problem_mark.line + 1, parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return NULL;
	}
	if (!yaml_document_get_root_node(&doc))
		husk_err_set(err, 0, "CDI spec '%s': empty file", what);
	else if (!(o = yaml_node_json(&doc, yaml_document_get_root_node(&doc), 0)))
		husk_err_set(err, 0, "CDI spec '%s': unsupported YAML (aliases, complex keys, "
			"or nesting deeper than 64)", what);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return o;
}

static struct json_object *parse_json(const char *text, size_t len, const char *what,
	struct husk_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	enum json_tokener_error e;

	if (!tok) {
		husk_err_set(err, ENOMEM, "CDI spec '%s'", what);
		return NULL;
	}
	o = json_tokener_parse_ex(tok, text, (int)len);
	e = json_tokener_get_error(tok);
	if (!o || e != json_tokener_success) {
		husk_err_set(err, 0, "CDI spec '%s': JSON error at byte %zu: %s", what,
			json_tokener_get_parse_end(tok), json_tokener_error_desc(
				e == json_tokener_continue ? json_tokener_error_parse_eof : e));
		if (o)
			json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* ---- checking the shape ----------------------------------------------------- */

static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool name_ok(const char *s, const char *extra)
{
	if (!s || !isalnum((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

/* "vendor.com/class": vendor a domain-like name, class a plain name. */
static bool kind_ok(const char *kind)
{
	const char *slash = kind ? strchr(kind, '/') : NULL;
	autofree char *vendor = NULL;

	if (!slash || slash == kind || strchr(slash + 1, '/'))
		return false;
	vendor = strndup(kind, (size_t)(slash - kind));
	return vendor && name_ok(vendor, ".-") && name_ok(slash + 1, "_.-");
}

static int check_strings(struct json_object *arr, const char *what, const char *field,
	bool need_eq, bool need_abs, struct husk_err *err)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) :
			NULL;
		if (!s || (need_eq && !strchr(s, '=')) || (need_abs && s[0] != '/'))
			return husk_err_set(err, 0, "%s: %s[%zu] is not %s", what, field, i, need_eq ?
				"a NAME=VALUE string" : need_abs ? "an absolute path" : "a string");
	}
	return 0;
}

static int array_field(struct json_object *o, const char *key, struct json_object **arr,
	const char *what, struct husk_err *err)
{
	*arr = NULL;
	if (!json_object_object_get_ex(o, key, arr) || json_object_is_type(*arr, json_type_null)) {
		*arr = NULL;
		return 0;
	}
	if (!json_object_is_type(*arr, json_type_array))
		return husk_err_set(err, 0, "%s: \"%s\" is not a list", what, key);
	return 0;
}

static int check_edits(struct json_object *edits, const char *what, struct husk_err *err)
{
	struct json_object *arr;

	if (!json_object_is_type(edits, json_type_object))
		return husk_err_set(err, 0, "%s: \"containerEdits\" is not a mapping", what);
	if (array_field(edits, "env", &arr, what, err) < 0 ||
	    (arr && check_strings(arr, what, "env", true, false, err) < 0))
		return -1;
	if (array_field(edits, "deviceNodes", &arr, what, err) < 0)
		return -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *n = json_object_array_get_idx(arr, i);
		const char *path = str_field(n, "path"), *host = str_field(n, "hostPath");
		if (!path || path[0] != '/')
			return husk_err_set(err, 0, "%s: deviceNodes[%zu] has no absolute \"path\"",
				what, i);
		if (json_object_object_get_ex(n, "hostPath", NULL) && (!host || host[0] != '/'))
			return husk_err_set(err, 0, "%s: deviceNodes[%zu]: \"hostPath\" is not an "
				"absolute path", what, i);
	}
	if (array_field(edits, "mounts", &arr, what, err) < 0)
		return -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		struct json_object *m = json_object_array_get_idx(arr, i), *opts;
		const char *h = str_field(m, "hostPath"), *c = str_field(m, "containerPath");
		if (!h || h[0] != '/' || !c || c[0] != '/')
			return husk_err_set(err, 0, "%s: mounts[%zu] needs absolute \"hostPath\" and "
				"\"containerPath\"", what, i);
		if (array_field(m, "options", &opts, what, err) < 0 ||
		    (opts && check_strings(opts, what, "mounts options", false, false, err) < 0))
			return -1;
	}
	return array_field(edits, "hooks", &arr, what, err);
}

static int check_spec(struct json_object *o, const char *what, struct husk_cdi_spec *spec,
	struct husk_err *err)
{
	struct json_object *devs, *edits;
	const char *version, *kind;

	if (!json_object_is_type(o, json_type_object))
		return husk_err_set(err, 0, "CDI spec '%s': not a mapping", what);
	if (!(version = str_field(o, "cdiVersion")) || !isdigit((unsigned char)version[0]))
		return husk_err_set(err, 0, "CDI spec '%s': no \"cdiVersion\" (such as \"0.6.0\")",
			what);
	if (!(kind = str_field(o, "kind")) || !kind_ok(kind))
		return husk_err_set(err, 0, "CDI spec '%s': \"kind\" %s%s%s is not vendor.com/class",
			what, kind ? "'" : "missing", kind ? kind : "", kind ? "'" : "");
	if (!json_object_object_get_ex(o, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array) || json_object_array_length(devs) == 0)
		return husk_err_set(err, 0, "CDI spec '%s': no \"devices\" list", what);
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i), *de;
		const char *name = str_field(d, "name");
		char where[600];
		if (!name || !name_ok(name, "_.:-"))
			return husk_err_set(err, 0, "CDI spec '%s': devices[%zu] has %s \"name\"%s%s%s",
				what, i, name ? "a bad" : "no", name ? " '" : "", name ? name : "",
				name ? "'" : "");
		for (size_t k = 0; k < i; k++)
			if (!strcmp(str_field(json_object_array_get_idx(devs, k), "name"), name))
				return husk_err_set(err, 0, "CDI spec '%s': device '%s' is defined twice",
					what, name);
		snprintf(where, sizeof(where), "CDI spec '%s': device '%s'", what, name);
		if (!json_object_object_get_ex(d, "containerEdits", &de))
			return husk_err_set(err, 0, "%s: no \"containerEdits\"", where);
		if (check_edits(de, where, err) < 0)
			return -1;
	}
	if (json_object_object_get_ex(o, "containerEdits", &edits)) {
		char where[600];
		snprintf(where, sizeof(where), "CDI spec '%s'", what);
		if (check_edits(edits, where, err) < 0)
			return -1;
	}
	spec->version = strdup(version);
	spec->kind = strdup(kind);
	return spec->version && spec->kind ? 0 : husk_err_set(err, ENOMEM, "CDI spec");
}

int husk_cdi_parse_text(const char *text, size_t len, bool yaml, const char *what,
	struct husk_cdi_spec *spec, struct husk_err *err)
{
	struct json_object *o;

	memset(spec, 0, sizeof(*spec));
	o = yaml ? parse_yaml(text, len, what, err) : parse_json(text, len, what, err);
	if (!o)
		return -1;
	spec->json = o;
	if (!(spec->file = strdup(what)) || check_spec(o, what, spec, err) < 0) {
		husk_cdi_spec_free(spec);
		return -1;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

int husk_cdi_parse_file(const char *path, struct husk_cdi_spec *spec, struct husk_err *err)
{
	autofree char *text = NULL;
	size_t len;

	memset(spec, 0, sizeof(*spec));
	if (husk_read_fileat(AT_FDCWD, path, &text, &len, SPEC_MAX) < 0)
		return husk_err_set(err, errno, "CDI spec '%s'", path);
	return husk_cdi_parse_text(text, len, !ends_with(path, ".json"), path, spec, err);
}

int husk_cdi_split_name(const char *q, char **kind, char **name, struct husk_err *err)
{
	const char *eq = strchr(q, '=');

	*kind = *name = NULL;
	if (!eq || !(*kind = strndup(q, (size_t)(eq - q))) || !kind_ok(*kind) ||
	    !name_ok(eq + 1, "_.:-")) {
		free(*kind);
		*kind = NULL;
		husk_err_set(err, 0, "--device '%s': not a CDI device name", q);
		husk_err_hint(err, "write vendor.com/class=name (or =all), as listed by the "
			"vendor's CDI spec in /etc/cdi or /var/run/cdi");
		return -1;
	}
	*name = strdup(eq + 1);
	return 0;
}

/* ---- the specs of the host ------------------------------------------------- */

struct registry {
	struct husk_cdi_spec *specs;
	size_t n;
	char bad[1100];          /* the first spec that could not be read, for messages */
	size_t n_bad;
};

static void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		husk_cdi_spec_free(&r->specs[i]);
	free(r->specs);
}

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void load_dir(const char *root, const char *dir, int priority, struct registry *r)
{
	autofree char *p = husk_host_path(root, dir);
	struct dirent **ents = NULL;
	int n = p ? scandir(p, &ents, NULL, cmp_name) : -1;

	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		autofree char *file = husk_strdup_printf("%s/%s", p, nm);
		struct husk_err err = { 0 };
		struct husk_cdi_spec spec, *v;
		if (nm[0] != '.' && file && (ends_with(nm, ".json") || ends_with(nm, ".yaml") ||
		    ends_with(nm, ".yml"))) {
			if (husk_cdi_parse_file(file, &spec, &err) < 0) {
				husk_warn("%s; the spec is skipped", err.msg);
				if (r->n_bad++ == 0)
					snprintf(r->bad, sizeof(r->bad), "%s", err.msg);
			} else if ((v = realloc(r->specs, (r->n + 1) * sizeof(*v)))) {
				spec.priority = priority;
				r->specs = v;
				r->specs[r->n++] = spec;
			} else {
				husk_cdi_spec_free(&spec);
			}
		}
		free(ents[i]);
	}
	free(ents);
}

/* ---- applying edits ----------------------------------------------------------- */

static bool has_option(struct json_object *m, const char *opt)
{
	struct json_object *opts;

	if (!json_object_object_get_ex(m, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(opts); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(opts, i)), opt))
			return true;
	return false;
}

static int add_node_path(char ***v, const char *s)
{
	size_t n = 0;
	char **nv;

	while (*v && (*v)[n])
		n++;
	if (!(nv = realloc(*v, (n + 2) * sizeof(*nv))) || !(nv[n] = strdup(s)))
		return -1;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

static int host_source(const char *root, const char *host_path, const char *what,
	const char *kind_of, char **out, struct husk_err *err)
{
	struct stat st;

	*out = husk_host_path(root, host_path);
	if (!*out)
		return husk_err_set(err, ENOMEM, "CDI");
	if (lstat(*out, &st) < 0) {
		husk_err_set(err, errno, "%s: %s '%s' on the host", what, kind_of, *out);
		husk_err_hint(err, "is the driver loaded? the CDI spec may be stale: regenerate it");
		return -1;
	}
	return 0;
}

static int apply_edits(const char *root, struct json_object *edits, const char *what,
	struct husk_host *host, char ***dev_nodes, struct husk_err *err)
{
	struct json_object *arr;
	static const char *const unsupported[] = { "additionalGids", "intelRdt", "netDevices",
		NULL };

	if (json_object_object_get_ex(edits, "env", &arr) && json_object_is_type(arr, json_type_array))
		for (size_t i = 0; i < json_object_array_length(arr); i++)
			if (husk_env_put(&host->env,
			    json_object_get_string(json_object_array_get_idx(arr, i))) < 0)
				return husk_err_set(err, ENOMEM, "environment");
	if (json_object_object_get_ex(edits, "deviceNodes", &arr) &&
	    json_object_is_type(arr, json_type_array))
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *n = json_object_array_get_idx(arr, i);
			const char *path = str_field(n, "path"), *hp = str_field(n, "hostPath");
			autofree char *src = NULL;
			if (!hp)
				hp = path;
			if (host_source(root, hp, what, "device node", &src, err) < 0)
				return -1;
			if (add_node_path(dev_nodes, path) < 0 ||
			    husk_host_add_item(host, "device", path, what) < 0)
				return husk_err_set(err, ENOMEM, "CDI");
			/* The container's /dev is the host's: the same name is there. */
			if (!strcmp(path, hp) && !strncmp(path, "/dev/", 5))
				continue;
			if (husk_host_add_bind(host, src, path, false, "CDI device node") < 0)
				return husk_err_set(err, ENOMEM, "CDI");
		}
	if (json_object_object_get_ex(edits, "mounts", &arr) && json_object_is_type(arr, json_type_array))
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *m = json_object_array_get_idx(arr, i);
			const char *type = str_field(m, "type");
			autofree char *src = NULL;
			if (type && *type && strcmp(type, "bind") && strcmp(type, "none")) {
				husk_warn("%s: mount of type '%s' on '%s' skipped: husk makes bind mounts "
					"only", what, type, str_field(m, "containerPath"));
				continue;
			}
			if (host_source(root, str_field(m, "hostPath"), what, "mount source", &src, err) < 0)
				return -1;
			if (husk_host_add_bind(host, src, str_field(m, "containerPath"),
			    has_option(m, "ro"), "CDI mount") < 0 ||
			    husk_host_add_item(host, "path", str_field(m, "containerPath"), src) < 0)
				return husk_err_set(err, ENOMEM, "CDI");
		}
	if (json_object_object_get_ex(edits, "hooks", &arr) && json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) > 0) {
		struct json_object *h0 = json_object_array_get_idx(arr, 0);
		husk_warn("%s: %zu hook(s) skipped (the first: %s '%s'): husk runs no CDI or OCI "
			"hooks", what, json_object_array_length(arr),
			str_field(h0, "hookName") ? str_field(h0, "hookName") : "?",
			str_field(h0, "path") ? str_field(h0, "path") : "?");
	}
	for (int i = 0; unsupported[i]; i++)
		if (json_object_object_get_ex(edits, unsupported[i], NULL))
			husk_warn("%s: \"%s\" is not supported by husk and is skipped", what,
				unsupported[i]);
	return 0;
}

/* One device (or, with name "all", each) of kind, from the specs of the
 * highest priority that define it. */
struct pick {
	size_t spec;
	struct json_object *dev;
};

static int find(struct registry *r, const char *q, const char *kind, const char *name,
	struct pick *picks, size_t *n_picks, size_t max, struct husk_err *err)
{
	int best = -1;
	size_t first = *n_picks, kinds = 0;

	for (size_t s = 0; s < r->n; s++) {
		struct json_object *devs;
		if (strcmp(r->specs[s].kind, kind))
			continue;
		kinds++;
		json_object_object_get_ex(r->specs[s].json, "devices", &devs);
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *d = json_object_array_get_idx(devs, i);
			if (strcmp(name, "all") && strcmp(str_field(d, "name"), name))
				continue;
			if (r->specs[s].priority > best && strcmp(name, "all")) {
				*n_picks = first;   /* a higher-priority spec replaces */
				best = r->specs[s].priority;
			} else if (r->specs[s].priority < best) {
				continue;
			} else if (strcmp(name, "all") && *n_picks > first) {
				return husk_err_set(err, 0, "CDI device '%s' is defined twice, in '%s' and "
					"'%s'; remove one", q, r->specs[picks[first].spec].file,
					r->specs[s].file);
			}
			if (*n_picks >= max)
				return husk_err_set(err, 0, "--device: too many CDI devices");
			picks[(*n_picks)++] = (struct pick){ .spec = s, .dev = d };
		}
	}
	if (*n_picks > first && !strcmp(name, "all")) {
		/* =all: a device both directories define comes from /var/run/cdi. */
		size_t k = first;
		for (size_t i = first; i < *n_picks; i++) {
			bool shadowed = false;
			for (size_t j = first; j < *n_picks; j++)
				shadowed |= r->specs[picks[j].spec].priority >
					r->specs[picks[i].spec].priority &&
					!strcmp(str_field(picks[j].dev, "name"), str_field(picks[i].dev, "name"));
			if (!shadowed)
				picks[k++] = picks[i];
		}
		*n_picks = k;
	}
	if (*n_picks > first)
		return 0;
	if (kinds)
		husk_err_set(err, 0, "CDI device '%s' not found: the specs of kind '%s' have no "
			"device '%s'", q, kind, name);
	else
		husk_err_set(err, 0, "CDI device '%s' not found: no CDI spec of kind '%s' in "
			"/etc/cdi or /var/run/cdi%s", q, kind, r->n_bad ? "" : "");
	if (r->n_bad)
		husk_err_hint(err, "%zu spec(s) could not be read, the first: %s", r->n_bad, r->bad);
	else
		husk_err_hint(err, "check the name (vendor.com/class=name) against the specs, or "
			"regenerate them (e.g. nvidia-ctk cdi generate)");
	return -1;
}

int husk_cdi_apply(const char *root, char **names, struct husk_host *host, char ***dev_nodes,
	struct husk_err *err)
{
	struct registry r = { 0 };
	struct pick picks[256];
	size_t n = 0;
	bool spec_done[256] = { false };
	int ret = 0;

	*dev_nodes = NULL;
	load_dir(root, "/etc/cdi", 0, &r);
	load_dir(root, "/var/run/cdi", 1, &r);
	for (char **q = names; q && *q && ret == 0; q++) {
		autofree char *kind = NULL;
		autofree char *name = NULL;
		if (husk_cdi_split_name(*q, &kind, &name, err) < 0 ||
		    find(&r, *q, kind, name, picks, &n, 256, err) < 0)
			ret = -1;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct husk_cdi_spec *s = &r.specs[picks[i].spec];
		const char *dname = str_field(picks[i].dev, "name");
		autofree char *what = husk_strdup_printf("CDI device '%s=%s' ('%s')", s->kind, dname,
			s->file);
		struct json_object *edits;
		bool dup = false;
		for (size_t k = 0; k < i; k++)
			dup = dup || picks[k].dev == picks[i].dev;
		if (dup)
			continue;
		if (!what) {
			ret = husk_err_set(err, ENOMEM, "CDI");
			break;
		}
		/* The spec's own edits, once, before its first device's. */
		if (picks[i].spec < 256 && !spec_done[picks[i].spec] &&
		    json_object_object_get_ex(s->json, "containerEdits", &edits)) {
			autofree char *swhat = husk_strdup_printf("CDI spec '%s'", s->file);
			ret = apply_edits(root, edits, swhat, host, dev_nodes, err);
		}
		spec_done[picks[i].spec < 256 ? picks[i].spec : 0] = true;
		if (ret == 0 && json_object_object_get_ex(picks[i].dev, "containerEdits", &edits))
			ret = apply_edits(root, edits, what, host, dev_nodes, err);
		if (ret == 0) {
			autofree char *qn = husk_strdup_printf("%s=%s", s->kind, dname);
			ret = husk_host_add_item(host, "cdi", qn, s->file);
		}
	}
	registry_free(&r);
	if (ret < 0) {
		husk_gpu_strv_free(*dev_nodes);
		*dev_nodes = NULL;
	}
	return ret;
}
