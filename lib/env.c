/* env.c: the container's environment as an ordered list, and the parser of
 * environment files (the image's /.husk/environment and --env-file).
 *
 * File syntax, one assignment a line:  [export ]NAME=VALUE
 *   - blank lines and lines starting with '#' are ignored;
 *   - VALUE may be 'single quoted' (taken literally), "double quoted" or bare;
 *   - outside single quotes, $NAME and ${NAME} expand to the value assigned so
 *     far (earlier lines, lower-precedence sources); \$ \" \\ escape.
 * Anything else is an error naming the file and line. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <ctype.h>
#include <string.h>

void husk_env_init(struct husk_env *env)
{
	env->vars = NULL;
	env->n = env->cap = 0;
}

void husk_env_free(struct husk_env *env)
{
	for (size_t i = 0; i < env->n; i++)
		free(env->vars[i]);
	free(env->vars);
	husk_env_init(env);
}

bool husk_env_name_ok(const char *name, size_t len)
{
	if (len == 0 || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
			return false;
	return true;
}

static ssize_t env_find(const struct husk_env *env, const char *name, size_t len)
{
	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->vars[i], name, len) && env->vars[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

int husk_env_put(struct husk_env *env, const char *nv)
{
	const char *eq = strchr(nv, '=');
	ssize_t i;
	char *copy;

	if (!eq)
		return -1;
	if (!(copy = strdup(nv)))
		return -1;
	if ((i = env_find(env, nv, (size_t)(eq - nv))) >= 0) {
		free(env->vars[i]);
		env->vars[i] = copy;
		return 0;
	}
	if (env->n + 2 > env->cap) {
		size_t cap = env->cap ? env->cap * 2 : 32;
		char **v = realloc(env->vars, cap * sizeof(*v));
		if (!v) {
			free(copy);
			return -1;
		}
		env->vars = v;
		env->cap = cap;
	}
	env->vars[env->n++] = copy;
	env->vars[env->n] = NULL;
	return 0;
}

int husk_env_set(struct husk_env *env, const char *name, const char *value)
{
	autofree char *nv = husk_strdup_printf("%s=%s", name, value);
	return nv ? husk_env_put(env, nv) : -1;
}

void husk_env_unset(struct husk_env *env, const char *name)
{
	ssize_t i = env_find(env, name, strlen(name));

	if (i < 0)
		return;
	free(env->vars[i]);
	memmove(&env->vars[i], &env->vars[i + 1], (env->n - (size_t)i) * sizeof(char *));
	env->n--;
}

const char *husk_env_get(const struct husk_env *env, const char *name)
{
	ssize_t i = env_find(env, name, strlen(name));
	return i < 0 ? NULL : strchr(env->vars[i], '=') + 1;
}

bool husk_env_keep_clean(const char *nv)
{
	/* The user's identity and locale, and what MPI launchers and Slurm pass
	 * to wire ranks up (Open MPI/PRRTE/PMIx, MPICH's Hydra, Slurm). */
	static const char *const exact[] = { "HOME", "USER", "LOGNAME", "TERM", "LANG", "TZ",
		"MPI_LOCALNRANKS", "MPI_LOCALRANKID", NULL };
	static const char *const prefix[] = { "LC_", "SLURM_", "SLURMD_", "PMIX_", "PMI_",
		"OMPI_", "PRTE_", "OPAL_", "HYDRA_", NULL };
	const char *eq = strchr(nv, '=');
	size_t len = eq ? (size_t)(eq - nv) : strlen(nv);

	for (int i = 0; exact[i]; i++)
		if (strlen(exact[i]) == len && !strncmp(nv, exact[i], len))
			return true;
	for (int i = 0; prefix[i]; i++)
		if (!strncmp(nv, prefix[i], strlen(prefix[i])))
			return true;
	return false;
}

/* A growing string for building values. */
struct sbuf { char *s; size_t n, cap; };

static int sb_add(struct sbuf *b, const char *p, size_t len)
{
	if (b->n + len + 1 > b->cap) {
		size_t cap = (b->n + len + 1) * 2;
		char *s = realloc(b->s, cap);
		if (!s)
			return -1;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->n, p, len);
	b->n += len;
	b->s[b->n] = '\0';
	return 0;
}

/* Expand "$NAME" or "${NAME}" at *pp (which points at '$'). */
static int expand_var(struct sbuf *b, const char **pp, const char *end,
	const struct husk_env *env)
{
	const char *p = *pp + 1, *name;
	size_t len;
	bool brace = p < end && *p == '{';
	const char *val;
	char tmp[256];

	if (brace)
		p++;
	name = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
		p++;
	len = (size_t)(p - name);
	if (brace) {
		if (p >= end || *p != '}' || len == 0)
			return -1;
		p++;
	}
	if (len == 0) {            /* a lone '$' is literal */
		*pp += 1;
		return sb_add(b, "$", 1);
	}
	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, name, len);
	tmp[len] = '\0';
	val = husk_env_get(env, tmp);
	*pp = p;
	return val ? sb_add(b, val, strlen(val)) : 0;
}

/* Parse the value part of one line into b. Returns 0, or -1 with *why set. */
static int parse_value(struct sbuf *b, const char *p, const char *end,
	const struct husk_env *env, const char **why)
{
	while (p < end) {
		if (*p == '\'') {
			const char *q = memchr(p + 1, '\'', (size_t)(end - p - 1));
			if (!q)
				return *why = "unterminated single quote", -1;
			if (sb_add(b, p + 1, (size_t)(q - p - 1)))
				return *why = "out of memory", -1;
			p = q + 1;
		} else if (*p == '"') {
			p++;
			while (p < end && *p != '"') {
				if (*p == '\\' && p + 1 < end && strchr("\"\\$", p[1])) {
					if (sb_add(b, p + 1, 1))
						return *why = "out of memory", -1;
					p += 2;
				} else if (*p == '$') {
					if (expand_var(b, &p, end, env))
						return *why = "bad ${...} reference", -1;
				} else {
					if (sb_add(b, p, 1))
						return *why = "out of memory", -1;
					p++;
				}
			}
			if (p >= end)
				return *why = "unterminated double quote", -1;
			p++;
		} else if (*p == '\\' && p + 1 < end) {
			if (sb_add(b, p + 1, 1))
				return *why = "out of memory", -1;
			p += 2;
		} else if (*p == '$') {
			if (expand_var(b, &p, end, env))
				return *why = "bad ${...} reference", -1;
		} else if (*p == ' ' || *p == '\t') {
			/* Unquoted whitespace ends the value; only a comment may follow. */
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < end && *p != '#')
				return *why = "unquoted space in value (quote the value)", -1;
			return 0;
		} else {
			if (sb_add(b, p, 1))
				return *why = "out of memory", -1;
			p++;
		}
	}
	return 0;
}

int husk_env_parse(struct husk_env *env, const char *text, size_t len, const char *what,
	struct husk_err *err)
{
	const char *p = text, *end = text + len;
	int lineno = 0;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end, *name, *eq;
		struct sbuf val = { 0 };
		const char *why = NULL;
		char namebuf[256];

		lineno++;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
		while (p < line_end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == line_end || *p == '#')
			goto next;
		if (line_end - p > 7 && !strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t')) {
			p += 7;
			while (p < line_end && (*p == ' ' || *p == '\t'))
				p++;
		}
		name = p;
		eq = memchr(p, '=', (size_t)(line_end - p));
		if (!eq || !husk_env_name_ok(name, (size_t)(eq - name)) ||
		    (size_t)(eq - name) >= sizeof(namebuf))
			return husk_err_set(err, 0, "%s line %d: expected NAME=VALUE with NAME made of "
				"letters, digits and '_'", what, lineno);
		memcpy(namebuf, name, (size_t)(eq - name));
		namebuf[eq - name] = '\0';
		if (sb_add(&val, "", 0) || parse_value(&val, eq + 1, line_end, env, &why)) {
			free(val.s);
			return husk_err_set(err, 0, "%s line %d: %s", what, lineno, why ? why : "out of memory");
		}
		if (husk_env_set(env, namebuf, val.s)) {
			free(val.s);
			return husk_err_set(err, ENOMEM, "%s line %d", what, lineno);
		}
		free(val.s);
next:
		p = eol ? eol + 1 : end;
	}
	return 0;
}
