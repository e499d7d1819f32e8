/* metadata.c: reading /.husk/metadata.json, the description `husk build`
 * writes into an image (schema in husk.h). The file is checked strictly:
 * a field of the wrong type is an error naming the image, the file and the
 * field, because a run must not guess at a command or a working directory.
 * Unknown fields are ignored, so later versions may add to format 1; a file
 * that declares a newer format is refused rather than half understood. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <json.h>
#include <string.h>

#define META_PATH "/.husk/metadata.json"
#define META_MAX (4 << 20)
#define META_VERSION 1

/* What the checks need to name the culprit. */
struct ctx {
	const char *image;
	struct husk_err *err;
};

static const char *type_name(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double: return "a number";
	case json_type_int: return "an integer";
	case json_type_object: return "an object";
	case json_type_array: return "an array";
	case json_type_string: return "a string";
	}
	return "something else";
}

static int bad(struct ctx *c, const char *field, const char *want, json_object *got)
{
	return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field '%s': expected %s, "
		"got %s; rebuild the image or fix the file", c->image, field, want, type_name(got));
}

/* A string without NUL bytes (json-c accepts "\u0000"; C strings cannot). */
static int get_string(struct ctx *c, const char *field, json_object *o, const char **out)
{
	if (!json_object_is_type(o, json_type_string))
		return bad(c, field, "a string", o);
	if (strlen(json_object_get_string(o)) != (size_t)json_object_get_string_len(o))
		return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field '%s': the string "
			"holds a NUL character", c->image, field);
	*out = json_object_get_string(o);
	return 0;
}

static void free_list(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* An array of strings into a NULL-terminated list. */
static int get_string_list(struct ctx *c, const char *field, json_object *o, char ***out)
{
	size_t n;
	char **v;

	if (!json_object_is_type(o, json_type_array))
		return bad(c, field, "an array of strings", o);
	n = json_object_array_length(o);
	if (!(v = calloc(n + 1, sizeof(*v))))
		return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
	for (size_t i = 0; i < n; i++) {
		char name[128];
		const char *s;
		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (get_string(c, name, json_object_array_get_idx(o, i), &s) < 0) {
			free_list(v);
			return -1;
		}
		if (!(v[i] = strdup(s))) {
			free_list(v);
			return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
		}
	}
	*out = v;
	return 0;
}

/* A field that may be absent or null (returns 1 then), else its value. */
static int field(json_object *obj, const char *key, json_object **out)
{
	*out = NULL;
	return json_object_object_get_ex(obj, key, out) && *out ? 0 : 1;
}

static int read_version(struct ctx *c, json_object *top)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(top, "husk_metadata", &v))
		return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field 'husk_metadata' "
			"is missing; the file must declare its format version (1)", c->image);
	if (!json_object_is_type(v, json_type_int))
		return bad(c, "husk_metadata", "an integer", v);
	n = json_object_get_int64(v);
	if (n > META_VERSION)
		return husk_err_set(c->err, 0, "image '%s': '" META_PATH "' has format version %lld, "
			"and this husk (%s) reads version %d only; use a newer husk", c->image,
			(long long)n, husk_version(), META_VERSION);
	if (n < 1)
		return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field 'husk_metadata': "
			"version %lld does not exist; rebuild the image", c->image, (long long)n);
	return 0;
}

static int read_env(struct ctx *c, json_object *top, struct husk_meta *m)
{
	json_object *o;

	if (field(top, "env", &o))
		return 0;
	if (get_string_list(c, "env", o, &m->env) < 0)
		return -1;
	for (size_t i = 0; m->env[i]; i++) {
		const char *eq = strchr(m->env[i], '=');
		if (!eq || !husk_env_name_ok(m->env[i], (size_t)(eq - m->env[i])))
			return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field 'env[%zu]': "
				"expected NAME=VALUE, got '%s'", c->image, i, m->env[i]);
	}
	return 0;
}

static int read_labels(struct ctx *c, json_object *top, struct husk_meta *m)
{
	json_object *o;
	size_t n = 0;

	if (field(top, "labels", &o))
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return bad(c, "labels", "an object of strings", o);
	if (!(m->labels = calloc((size_t)json_object_object_length(o) + 1, sizeof(char *))))
		return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
	json_object_object_foreach(o, key, val) {
		char name[300];
		const char *s;
		snprintf(name, sizeof(name), "labels.%s", key);
		if (get_string(c, name, val, &s) < 0)
			return -1;
		if (!(m->labels[n++] = husk_strdup_printf("%s=%s", key, s)))
			return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
	}
	return 0;
}

static int read_workdir(struct ctx *c, json_object *top, struct husk_meta *m)
{
	json_object *o;
	const char *s;

	if (field(top, "workdir", &o))
		return 0;
	if (get_string(c, "workdir", o, &s) < 0)
		return -1;
	if (s[0] != '/')
		return husk_err_set(c->err, 0, "image '%s': '" META_PATH "': field 'workdir': '%s' is "
			"not an absolute path", c->image, s);
	if (!(m->workdir = strdup(s)))
		return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
	return 0;
}

/* Check that a known field, when present and not null, has the type wanted. */
static int check_type(struct ctx *c, json_object *obj, const char *key, const char *name,
	json_type want, const char *want_name)
{
	json_object *o;

	if (field(obj, key, &o) || json_object_is_type(o, want))
		return 0;
	return bad(c, name, want_name, o);
}

static int check_string_map(struct ctx *c, json_object *obj, const char *key, const char *name)
{
	json_object *o;

	if (field(obj, key, &o))
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return bad(c, name, "an object of strings", o);
	json_object_object_foreach(o, k, v) {
		char sub[300];
		snprintf(sub, sizeof(sub), "%s.%s", name, k);
		if (!json_object_is_type(v, json_type_string))
			return bad(c, sub, "a string", v);
	}
	return 0;
}

/* "build" is for people and `husk inspect`; only its types are checked. */
static int check_build(struct ctx *c, json_object *top)
{
	static const char *const strings[] = { "husk_version", "date", "compression", NULL };
	json_object *b, *o;

	if (field(top, "build", &b))
		return 0;
	if (!json_object_is_type(b, json_type_object))
		return bad(c, "build", "an object", b);
	for (int i = 0; strings[i]; i++) {
		char name[64];
		snprintf(name, sizeof(name), "build.%s", strings[i]);
		if (check_type(c, b, strings[i], name, json_type_string, "a string") < 0)
			return -1;
	}
	if (check_type(c, b, "source_date_epoch", "build.source_date_epoch", json_type_int,
	    "an integer") < 0 || check_string_map(c, b, "tools", "build.tools") < 0)
		return -1;
	if (!field(b, "source", &o)) {
		if (!json_object_is_type(o, json_type_object))
			return bad(c, "build.source", "an object", o);
		if (check_type(c, o, "kind", "build.source.kind", json_type_string, "a string") < 0 ||
		    check_type(c, o, "path", "build.source.path", json_type_string, "a string") < 0 ||
		    check_type(c, o, "sha256", "build.source.sha256", json_type_string,
		    "a string or null") < 0)
			return -1;
	}
	if (!field(b, "inputs", &o)) {
		if (!json_object_is_type(o, json_type_array))
			return bad(c, "build.inputs", "an array of objects", o);
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			json_object *in = json_object_array_get_idx(o, i);
			char name[64], what[64], sha[64];
			snprintf(name, sizeof(name), "build.inputs[%zu]", i);
			snprintf(what, sizeof(what), "build.inputs[%zu].what", i);
			snprintf(sha, sizeof(sha), "build.inputs[%zu].sha256", i);
			if (!json_object_is_type(in, json_type_object))
				return bad(c, name, "an object", in);
			if (check_type(c, in, "what", what, json_type_string, "a string") < 0 ||
			    check_type(c, in, "sha256", sha, json_type_string, "a string or null") < 0)
				return -1;
		}
	}
	return 0;
}

static int parse(struct ctx *c, const char *text, size_t len, struct husk_meta *m)
{
	json_tokener *tok = json_tokener_new();
	json_object *top = NULL, *o;
	size_t end;
	int r = -1;

	if (!tok)
		return husk_err_set(c->err, ENOMEM, "image '%s': '" META_PATH "'", c->image);
	/* Strict: standard JSON only (no single quotes, no trailing commas). */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	top = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (!top || json_tokener_get_error(tok) != json_tokener_success ||
	    text[end + strspn(text + end, " \t\r\n")] != '\0') {
		enum json_tokener_error e = json_tokener_get_error(tok);
		husk_err_set(c->err, 0, "image '%s': '" META_PATH "' is not valid JSON (%s, at byte "
			"%zu); rebuild the image or fix the file", c->image,
			!top && e == json_tokener_continue ? "unexpected end" :
			top ? "text after the object" : json_tokener_error_desc(e),
			end);
		goto out;
	}
	if (!json_object_is_type(top, json_type_object)) {
		bad(c, "(top level)", "an object", top);
		goto out;
	}
	if (read_version(c, top) < 0 || read_env(c, top, m) < 0 || read_labels(c, top, m) < 0 ||
	    read_workdir(c, top, m) < 0 || check_build(c, top) < 0)
		goto out;
	if (!field(top, "entrypoint", &o) && get_string_list(c, "entrypoint", o, &m->entrypoint) < 0)
		goto out;
	if (!field(top, "cmd", &o) && get_string_list(c, "cmd", o, &m->cmd) < 0)
		goto out;
	r = 0;
out:
	json_object_put(top);
	json_tokener_free(tok);
	return r;
}

int husk_meta_read(struct husk_image *img, struct husk_meta *m, struct husk_err *err)
{
	struct ctx c = { .image = img->path, .err = err };
	char *text = NULL;
	size_t len;
	int r;

	memset(m, 0, sizeof(*m));
	r = husk_image_read_file(img, META_PATH, &text, &len, META_MAX, err);
	if (r != 0)
		return r;
	if (strlen(text) != len) {
		free(text);
		return husk_err_set(err, 0, "image '%s': '" META_PATH "' holds a NUL byte; it must "
			"be JSON text", img->path);
	}
	if (parse(&c, text, len, m) < 0) {
		free(text);
		husk_meta_free(m);
		return -1;
	}
	m->json = text;
	return 0;
}

void husk_meta_free(struct husk_meta *m)
{
	free_list(m->env);
	free_list(m->labels);
	free_list(m->entrypoint);
	free_list(m->cmd);
	free(m->workdir);
	free(m->json);
	memset(m, 0, sizeof(*m));
}
