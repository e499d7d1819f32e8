/* bindspec.c: parsing "SRC[:DST[:ro|rw]]" bind specifications and lexical
 * path normalisation. Nothing here touches the filesystem. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <string.h>

char *husk_path_normalize(const char *path)
{
	size_t len = strlen(path), n = 0;
	char *out;
	const char *p = path;

	if (path[0] != '/')
		return NULL;
	if (!(out = malloc(len + 2)))
		return NULL;
	out[n++] = '/';
	while (*p) {
		const char *seg;
		size_t sl;

		while (*p == '/')
			p++;
		seg = p;
		while (*p && *p != '/')
			p++;
		sl = (size_t)(p - seg);
		if (sl == 0 || (sl == 1 && seg[0] == '.'))
			continue;
		if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
			/* Back up one component, never above "/". */
			while (n > 1 && out[n - 1] != '/')
				n--;
			if (n > 1)
				n--;
			continue;
		}
		if (n > 1)
			out[n++] = '/';
		memcpy(out + n, seg, sl);
		n += sl;
	}
	out[n] = '\0';
	return out;
}

void husk_bind_free(struct husk_bind *b)
{
	free(b->src);
	free(b->dst);
	b->src = b->dst = NULL;
}

int husk_bind_parse(const char *spec, const char *cwd, struct husk_bind *out,
	struct husk_err *err)
{
	autofree char *copy = strdup(spec);
	autofree char *abs_src = NULL;
	char *src, *dst = NULL, *opt = NULL, *c;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return husk_err_set(err, ENOMEM, "bind '%s'", spec);
	src = copy;
	if ((c = strchr(src, ':'))) {
		*c = '\0';
		dst = c + 1;
		if ((c = strchr(dst, ':'))) {
			*c = '\0';
			opt = c + 1;
		}
	}
	if (!*src)
		return husk_err_set(err, 0, "bind '%s': empty source; use SRC[:DST[:ro|rw]]", spec);
	if (opt && strcmp(opt, "ro") && strcmp(opt, "rw"))
		return husk_err_set(err, 0, "bind '%s': unknown option '%s'; the third field is 'ro' or 'rw'",
			spec, opt);
	if (dst && !*dst)
		dst = NULL;
	if (dst && dst[0] != '/')
		return husk_err_set(err, 0, "bind '%s': destination '%s' is not absolute; "
			"give a path inside the container starting with '/'", spec, dst);
	if (src[0] != '/') {
		if (!cwd)
			return husk_err_set(err, 0, "bind '%s': relative source and no working directory", spec);
		abs_src = husk_strdup_printf("%s/%s", cwd, src);
		src = abs_src;
	}
	out->src = husk_path_normalize(src);
	out->dst = husk_path_normalize(dst ? dst : src);
	out->ro = opt && !strcmp(opt, "ro");
	if (!out->src || !out->dst) {
		husk_bind_free(out);
		return husk_err_set(err, ENOMEM, "bind '%s'", spec);
	}
	if (!strcmp(out->dst, "/")) {
		husk_bind_free(out);
		return husk_err_set(err, 0, "bind '%s': cannot bind over the container's root '/'; "
			"choose a destination below it", spec);
	}
	return 0;
}
