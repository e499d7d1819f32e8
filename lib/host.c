/* host.c: the host pieces a launch adds to the container (struct
 * husk_host, see conf.h): site binds, injected libraries and programs,
 * devices, variables, and the lines of the provenance record that say what
 * was added. Filled by the command before husk_run; run.c and root.c read
 * it. Nothing here touches the system. */
#include "husk_config.h"
#include "conf.h"
#include "util.h"

#include <string.h>

void husk_host_init(struct husk_host *h)
{
	memset(h, 0, sizeof(*h));
	husk_env_init(&h->env);
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void husk_host_free(struct husk_host *h)
{
	for (size_t i = 0; i < h->n_binds; i++) {
		free((char *)h->binds[i].why);
		husk_bind_free(&h->binds[i]);
	}
	free(h->binds);
	husk_env_free(&h->env);
	strv_free(h->ld_library_path);
	strv_free(h->path);
	strv_free(h->hide);
	for (size_t i = 0; i < h->n_items; i++) {
		free(h->items[i].what);
		free(h->items[i].name);
		free(h->items[i].detail);
	}
	free(h->items);
	memset(h, 0, sizeof(*h));
}

/* src: a host path, absolute; dst: the container path (NULL: the same).
 * why: what added it ("husk.conf", "--mpi=host", ...), copied. The bind is
 * not optional: a caller that wants it so sets .optional on the last one. */
int husk_host_add_bind(struct husk_host *h, const char *src, const char *dst, bool ro,
	const char *why)
{
	struct husk_bind *v, *b;

	if (!src || src[0] != '/' || (dst && dst[0] != '/')) {
		errno = EINVAL;
		return -1;
	}
	if (!(v = realloc(h->binds, (h->n_binds + 1) * sizeof(*v))))
		return -1;
	h->binds = v;
	b = &v[h->n_binds];
	memset(b, 0, sizeof(*b));
	b->src = husk_path_normalize(src);
	b->dst = husk_path_normalize(dst ? dst : src);
	b->why = strdup(why ? why : "host");
	b->ro = ro;
	if (!b->src || !b->dst || !b->why) {
		free((char *)b->why);
		husk_bind_free(b);
		errno = ENOMEM;
		return -1;
	}
	h->n_binds++;
	return 0;
}

int husk_host_add_item(struct husk_host *h, const char *what, const char *name,
	const char *detail)
{
	struct husk_host_item *v, *it;

	if (!(v = realloc(h->items, (h->n_items + 1) * sizeof(*v))))
		return -1;
	h->items = v;
	it = &v[h->n_items];
	it->what = strdup(what ? what : "");
	it->name = strdup(name ? name : "");
	it->detail = detail ? strdup(detail) : NULL;
	if (!it->what || !it->name || (detail && !it->detail)) {
		free(it->what);
		free(it->name);
		free(it->detail);
		errno = ENOMEM;
		return -1;
	}
	h->n_items++;
	return 0;
}

int husk_host_add_str(char ***list, const char *s)
{
	size_t n = 0;
	char **v, *copy = strdup(s);

	while (*list && (*list)[n])
		n++;
	if (!copy || !(v = realloc(*list, (n + 2) * sizeof(*v)))) {
		free(copy);
		errno = ENOMEM;
		return -1;
	}
	v[n] = copy;
	v[n + 1] = NULL;
	*list = v;
	return 0;
}
