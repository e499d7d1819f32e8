/* util.h: small helpers shared inside libhusk: scope-bound cleanup of fds,
 * memory and FILE*, string building, whole-file reads, and a monotonic clock. */
#ifndef HUSK_UTIL_H
#define HUSK_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void husk_freep(void *p) { free(*(void **)p); }
static inline void husk_closep(int *fd) { if (*fd >= 0) { int e = errno; close(*fd); errno = e; } }
static inline void husk_fclosep(FILE **f) { if (*f) fclose(*f); }

/* Variables released when they go out of scope; steal_fd/steal_ptr hand over. */
#define autofree __attribute__((cleanup(husk_freep)))
#define autoclose __attribute__((cleanup(husk_closep)))
#define autofclose __attribute__((cleanup(husk_fclosep)))

static inline int steal_fd(int *fd) { int r = *fd; *fd = -1; return r; }
#define steal_ptr(pp) ({ __typeof__(*(pp)) _p = *(pp); *(pp) = NULL; _p; })

char *husk_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file (at most max bytes) at dirfd/path; NUL-terminated. */
int husk_read_fileat(int dirfd, const char *path, char **buf, size_t *len, size_t max);
int husk_read_fd(int fd, char **buf, size_t *len, size_t max);
int husk_write_all(int fd, const void *buf, size_t len);
int husk_write_fileat(int dirfd, const char *path, const char *text, mode_t mode);
double husk_now_ms(void);
const char *husk_errno_name(int e);
/* Find an executable in $PATH, then in /usr/sbin, /sbin, /usr/bin (tools such
 * as mksquashfs and newuidmap live in sbin, often missing from a user's PATH).
 * Writes the path to out; 0 when found, -1 otherwise. */
int husk_find_tool(const char *name, char *out, size_t size);
/* Append a copy of s to the NULL-terminated list *v of *n entries (grown
 * as needed, kept NULL-terminated). 0, or -1 when out of memory. */
int husk_strv_push(char ***v, size_t *n, const char *s);
/* Does /etc/subuid or /etc/subgid (file) give user (or uid) a range? */
bool husk_has_subids(const char *file, const char *user, uid_t uid);

#endif
