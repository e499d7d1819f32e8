/* util.c: helpers used across libhusk (see util.h). */
#include "husk_config.h"
#include "util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

char *husk_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int husk_read_fileat(int dirfd, const char *path, char **buf, size_t *len, size_t max)
{
	autoclose int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -1;
	return husk_read_fd(fd, buf, len, max);
}

int husk_read_fd(int fd, char **buf, size_t *len, size_t max)
{
	size_t cap = 4096, n = 0;
	char *b;

	if (!(b = malloc(cap + 1)))
		return -1;
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap >= max) {
				free(b);
				errno = EFBIG;
				return -1;
			}
			cap *= 2;
			if (!(nb = realloc(b, cap + 1))) {
				free(b);
				return -1;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	if (len)
		*len = n;
	return 0;
}

int husk_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int husk_write_fileat(int dirfd, const char *path, const char *text, mode_t mode)
{
	autoclose int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

	if (fd < 0)
		return -1;
	return husk_write_all(fd, text, strlen(text));
}

double husk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *husk_errno_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

int husk_find_tool(const char *name, char *out, size_t size)
{
	static const char *const extra[] = { "/usr/sbin", "/sbin", "/usr/bin", NULL };
	const char *path = getenv("PATH");
	autofree char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;

	if (!copy)
		return -1;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	for (int i = 0; extra[i]; i++) {
		snprintf(out, size, "%s/%s", extra[i], name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

bool husk_has_subids(const char *file, const char *user, uid_t uid)
{
	FILE *f = fopen(file, "re");
	char line[512], num[32];
	bool found = false;

	if (!f)
		return false;
	snprintf(num, sizeof(num), "%u", (unsigned)uid);
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		found = (user && !strcmp(line, user)) || !strcmp(line, num);
	}
	fclose(f);
	return found;
}

int husk_strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(*nv));

	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	nv[++*n] = NULL;
	return 0;
}
