/* recipe.c: the recipe language of `husk build`, a subset of the Dockerfile
 * syntax HPC users already know.
 *
 *   # comment                       whole-line comments; blank lines ignored
 *   FROM debian:bookworm            first instruction, exactly once: a Debian
 *   FROM ./base.sqfs                suite (bootstrapped with mmdebstrap), or a
 *                                   local image: directory, .sqfs, tar, OCI
 *                                   layout or archive, Docker archive
 *   RUN apt-get install -y gcc      through /bin/sh -c, inside the image
 *   RUN ["make", "-j4"]             exec form (a JSON array), no shell
 *   COPY src... dst                 from the build context (Docker's rules)
 *   ENV NAME=VALUE ...              also the old form "ENV NAME VALUE"
 *   WORKDIR /path                   created when missing
 *   LABEL key=value ...
 *   ENTRYPOINT ["prog", "arg"]      exec or shell form
 *   CMD ["arg"]
 *   WARM python3 -c 'import numpy'  once the image is built, run this in it
 *                                   and keep what it looked up, listed and
 *                                   read as /.husk/warm, which every launch
 *                                   replays ahead of its command (husk's own;
 *                                   shell or exec form, like RUN)
 *
 * A line ending in a backslash continues on the next. Instruction names are
 * case-insensitive. $NAME and ${NAME} in ENV, WORKDIR, COPY and LABEL expand
 * to the build environment (RUN leaves them to the shell). Words may be
 * quoted with "..." or '...'; a backslash escapes the next character. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <ctype.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum husk_instr kind;
} known[] = {
	{ "FROM", HUSK_I_FROM }, { "RUN", HUSK_I_RUN }, { "COPY", HUSK_I_COPY },
	{ "ENV", HUSK_I_ENV }, { "WORKDIR", HUSK_I_WORKDIR }, { "LABEL", HUSK_I_LABEL },
	{ "ENTRYPOINT", HUSK_I_ENTRYPOINT }, { "CMD", HUSK_I_CMD }, { "WARM", HUSK_I_WARM },
};

/* Docker instructions husk does not take, and what to do instead. */
static const struct {
	const char *name, *fix;
} unsupported[] = {
	{ "ADD", "use COPY (and RUN tar or curl for archives and URLs)" },
	{ "ARG", "use ENV, or set the value in the recipe" },
	{ "USER", "husk images run as the user who starts them; remove it" },
	{ "EXPOSE", "ports are the host's in husk; remove it" },
	{ "VOLUME", "bind host directories at run time with husk run --bind; remove it" },
	{ "SHELL", "write RUN [\"/bin/bash\", \"-c\", \"...\"] instead" },
	{ "ONBUILD", "remove it" }, { "HEALTHCHECK", "remove it" },
	{ "STOPSIGNAL", "remove it" }, { "MAINTAINER", "use LABEL maintainer=..." },
};

void husk_recipe_free(struct husk_recipe *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->steps[i].args);
		free(r->steps[i].text);
	}
	free(r->steps);
	memset(r, 0, sizeof(*r));
}

const char *husk_instr_name(enum husk_instr kind)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i].kind == kind)
			return known[i].name;
	return "?";
}

static int add_step(struct husk_recipe *r, enum husk_instr kind, int line, const char *args,
	size_t args_len, const char *text, size_t text_len)
{
	struct husk_recipe_step *v = realloc(r->steps, (r->n + 1) * sizeof(*v));

	if (!v)
		return -1;
	r->steps = v;
	v[r->n].kind = kind;
	v[r->n].line = line;
	v[r->n].args = strndup(args, args_len);
	v[r->n].text = strndup(text, text_len);
	if (!v[r->n].args || !v[r->n].text)
		return -1;
	r->n++;
	return 0;
}

int husk_recipe_parse(const char *text, size_t len, const char *what, struct husk_recipe *r,
	struct husk_err *err)
{
	const char *p = text, *end = text + len;
	int lineno = 0;
	autofree char *buf = NULL;

	memset(r, 0, sizeof(*r));
	if (memchr(text, '\0', len))
		return husk_err_set(err, 0, "recipe '%s': binary data; give a text recipe", what);
	while (p < end) {
		/* Join a logical line from physical lines ending in a backslash. */
		size_t blen = 0, bcap = 256;
		int first = lineno + 1;
		const char *word, *w_end, *args;
		size_t wlen, i;

		free(buf);
		if (!(buf = malloc(bcap)))
			return husk_err_set(err, ENOMEM, "recipe '%s'", what);
		for (;;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *le = nl ? nl : end;
			size_t n = (size_t)(le - p);
			bool cont;

			lineno++;
			/* A comment line inside a continuation is dropped, as Docker does. */
			if (blen > 0) {
				const char *q = p;
				while (q < le && isspace((unsigned char)*q))
					q++;
				if (q < le && *q == '#') {
					p = nl ? nl + 1 : end;
					if (p >= end)
						break;
					continue;
				}
			}
			while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
				n--;
			/* A continued line joins with one space. */
			if (blen > 0)
				while (n > 0 && (*p == ' ' || *p == '\t')) {
					p++;
					n--;
				}
			cont = n > 0 && p[n - 1] == '\\';
			if (cont)
				n--;
			while (cont && n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
				n--;
			if (blen + n + 2 > bcap) {
				char *nb;
				bcap = (blen + n + 2) * 2;
				if (!(nb = realloc(buf, bcap)))
					return husk_err_set(err, ENOMEM, "recipe '%s'", what);
				buf = nb;
			}
			memcpy(buf + blen, p, n);
			blen += n;
			if (cont)
				buf[blen++] = ' ';
			buf[blen] = '\0';
			p = nl ? nl + 1 : end;
			if (!cont || p >= end)
				break;
		}
		word = buf;
		while (*word && isspace((unsigned char)*word))
			word++;
		if (!*word || *word == '#')
			continue;
		for (w_end = word; *w_end && !isspace((unsigned char)*w_end); w_end++)
			;
		wlen = (size_t)(w_end - word);
		args = w_end;
		while (*args && isspace((unsigned char)*args))
			args++;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strlen(known[i].name) == wlen && !strncasecmp(word, known[i].name, wlen))
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			for (size_t j = 0; j < sizeof(unsupported) / sizeof(unsupported[0]); j++)
				if (strlen(unsupported[j].name) == wlen &&
				    !strncasecmp(word, unsupported[j].name, wlen))
					return husk_err_set(err, 0, "recipe '%s' line %d: instruction '%.*s' is "
						"not supported by husk build; %s", what, first, (int)wlen, word,
						unsupported[j].fix);
			return husk_err_set(err, 0, "recipe '%s' line %d: unknown instruction '%.*s'; "
				"husk build knows FROM, RUN, COPY, ENV, WORKDIR, LABEL, ENTRYPOINT, CMD and WARM",
				what, first, (int)wlen, word);
		}
		if (!*args)
			return husk_err_set(err, 0, "recipe '%s' line %d: %s needs an argument", what,
				first, known[i].name);
		if (known[i].kind == HUSK_I_FROM && r->n > 0)
			return husk_err_set(err, 0, "recipe '%s' line %d: a second FROM; husk build "
				"makes one image from one base (no multi-stage builds); build the stages "
				"as separate recipes and FROM the first image", what, first);
		if (known[i].kind != HUSK_I_FROM && r->n == 0)
			return husk_err_set(err, 0, "recipe '%s' line %d: %s before FROM; a recipe starts "
				"with FROM (a Debian suite such as debian:bookworm, or a local image)", what,
				first, known[i].name);
		if (add_step(r, known[i].kind, first, args, strlen(args), word, strlen(word)) < 0)
			return husk_err_set(err, ENOMEM, "recipe '%s'", what);
	}
	if (r->n == 0)
		return husk_err_set(err, 0, "recipe '%s': no instructions; a recipe starts with FROM",
			what);
	return 0;
}

/* ---- words -------------------------------------------------------------- */

struct sbuf {
	char *s;
	size_t n, cap;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *v = realloc(b->s, cap);
		if (!v)
			return -1;
		b->s = v;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
	return 0;
}

static int strv_push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

	if (!nv)
		return -1;
	*v = nv;
	nv[(*n)++] = s;
	nv[*n] = NULL;
	return 0;
}

void husk_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Expand $NAME or ${NAME} at *pp (pointing at '$'); an unset name is empty. */
static int expand_var(const char **pp, const struct husk_env *env, struct sbuf *b)
{
	const char *p = *pp + 1, *name = p, *val;
	size_t n = 0;
	bool braced = *p == '{';
	autofree char *copy = NULL;

	if (braced)
		name = ++p;
	while (isalnum((unsigned char)name[n]) || name[n] == '_')
		n++;
	if (n == 0 || (braced && name[n] != '}')) {
		*pp += 1;
		return sb_add(b, "$", 1);
	}
	if (!(copy = strndup(name, n)))
		return -1;
	val = env ? husk_env_get(env, copy) : NULL;
	*pp = name + n + (braced ? 1 : 0);
	return val ? sb_add(b, val, strlen(val)) : 0;
}

int husk_recipe_words(const char *args, const struct husk_env *env, char ***out,
	struct husk_err *err)
{
	const char *p = args;
	char **v = NULL;
	size_t n = 0;

	*out = NULL;
	for (;;) {
		struct sbuf b = { 0 };

		while (*p && isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		while (*p && !isspace((unsigned char)*p)) {
			int r = 0;
			if (*p == '\'') {
				const char *q = strchr(p + 1, '\'');
				if (!q)
					goto unterminated;
				r = sb_add(&b, p + 1, (size_t)(q - p - 1));
				p = q + 1;
			} else if (*p == '"') {
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1]) {
						r = sb_add(&b, p + 1, 1);
						p += 2;
					} else if (*p == '$') {
						r = expand_var(&p, env, &b);
					} else {
						r = sb_add(&b, p++, 1);
					}
					if (r < 0)
						break;
				}
				if (!*p)
					goto unterminated;
				p++;
			} else if (*p == '\\' && p[1]) {
				r = sb_add(&b, p + 1, 1);
				p += 2;
			} else if (*p == '$') {
				r = expand_var(&p, env, &b);
			} else {
				r = sb_add(&b, p++, 1);
			}
			if (r < 0) {
				free(b.s);
				husk_strv_free(v);
				return husk_err_set(err, ENOMEM, "recipe");
			}
		}
		if (!b.s && sb_add(&b, "", 0) < 0) {   /* "" is a word too */
			husk_strv_free(v);
			return husk_err_set(err, ENOMEM, "recipe");
		}
		if (strv_push(&v, &n, b.s) < 0) {
			free(b.s);
			husk_strv_free(v);
			return husk_err_set(err, ENOMEM, "recipe");
		}
		continue;
unterminated:
		free(b.s);
		husk_strv_free(v);
		return husk_err_set(err, 0, "unterminated quote in '%s'; close it or escape it with a "
			"backslash", args);
	}
	if (!v && !(v = calloc(1, sizeof(*v))))
		return husk_err_set(err, ENOMEM, "recipe");
	*out = v;
	return 0;
}

int husk_recipe_argv(const char *args, char ***out, bool *exec_form, struct husk_err *err)
{
	struct json_object *j;
	char **v = NULL;
	size_t n = 0, len;

	*out = NULL;
	*exec_form = false;
	if (args[0] != '[') {
		/* Shell form. */
		char *copy = strdup(args);
		if (!copy || strv_push(&v, &n, strdup("/bin/sh")) < 0 ||
		    strv_push(&v, &n, strdup("-c")) < 0 || strv_push(&v, &n, copy) < 0) {
			husk_strv_free(v);
			return husk_err_set(err, ENOMEM, "recipe");
		}
		*out = v;
		return 0;
	}
	j = json_tokener_parse(args);
	if (!j || !json_object_is_type(j, json_type_array)) {
		json_object_put(j);
		return husk_err_set(err, 0, "'%s' is not a JSON array of strings; write [\"prog\", "
			"\"arg\"] with double quotes, or drop the brackets for the shell form", args);
	}
	len = json_object_array_length(j);
	if (len == 0) {
		json_object_put(j);
		return husk_err_set(err, 0, "'%s': an empty command", args);
	}
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(j, i);
		char *s;
		if (!json_object_is_type(e, json_type_string)) {
			json_object_put(j);
			husk_strv_free(v);
			return husk_err_set(err, 0, "'%s': element %zu is not a string", args, i + 1);
		}
		if (!(s = strdup(json_object_get_string(e))) || strv_push(&v, &n, s) < 0) {
			free(s);
			json_object_put(j);
			husk_strv_free(v);
			return husk_err_set(err, ENOMEM, "recipe");
		}
	}
	json_object_put(j);
	*out = v;
	*exec_form = true;
	return 0;
}
