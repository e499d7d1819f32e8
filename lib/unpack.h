/* unpack.h: internals shared by the importers of `husk build`: the writer
 * that puts entries into a root by relative path (tar and OCI layers,
 * SquashFS images), and helpers the host copy and the OCI reader use. */
#ifndef HUSK_UNPACK_H
#define HUSK_UNPACK_H

#include "husk.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

struct husk_pathset;

/* Directory modes and mtimes are applied after every entry is in: a
 * directory's mtime changes as entries are added, and a read-only directory
 * must stay writable until then. */
struct husk_wr_dir {
	char *path;
	size_t seq;                     /* order of appearance: the last one wins */
	mode_t perm;
	struct timespec mtime;
	bool has_mtime;
};

struct husk_wr {
	int root_fd;
	const char *what;               /* names the source in errors */
	struct husk_unpack_stats *stats;
	struct husk_pathset *layer;     /* whiteouts: the paths this layer wrote; else NULL */
	struct husk_wr_dir *dirs;
	size_t n_dirs, cap_dirs;
	char *cache_path;               /* the last parent directory opened... */
	int cache_fd;                   /* ...and its O_PATH fd, or -1 */
};

/* Entry paths are relative to the root as they appear in the source ("./a/b",
 * "a//b/" and "a/b" are the same); ".." and a leading "/" are refused. The
 * functions name the entry in errors as given. */
int husk_wr_init(struct husk_wr *w, int root_fd, const char *what, bool whiteouts,
	struct husk_unpack_stats *stats, struct husk_err *err);
void husk_wr_free(struct husk_wr *w);
/* Apply the directories' modes and mtimes; call once, after the last entry. */
int husk_wr_finish(struct husk_wr *w, struct husk_err *err);

int husk_wr_dir(struct husk_wr *w, const char *path, mode_t perm,
	const struct timespec *mtime, struct husk_err *err);
/* A regular file: husk_wr_file_open gives an fd to write the content to, then
 * husk_wr_file_close sets its mode and mtime and closes it (on error too). */
int husk_wr_file_open(struct husk_wr *w, const char *path, int *fd, struct husk_err *err);
int husk_wr_file_close(struct husk_wr *w, const char *path, int fd, mode_t perm,
	const struct timespec *mtime, struct husk_err *err);
int husk_wr_symlink(struct husk_wr *w, const char *path, const char *target,
	const struct timespec *mtime, struct husk_err *err);
/* A hard link to target, an entry path written earlier. */
int husk_wr_hardlink(struct husk_wr *w, const char *path, const char *target,
	struct husk_err *err);
int husk_wr_fifo(struct husk_wr *w, const char *path, mode_t perm,
	const struct timespec *mtime, struct husk_err *err);
/* A device node or socket: counted in stats, not made. */
void husk_wr_skip(struct husk_wr *w, const char *path);
/* When w honours whiteouts and path is one (".wh.NAME", ".wh..wh..opq"),
 * apply it and return 1; 0 when it is an ordinary entry; -1 on error. */
int husk_wr_whiteout(struct husk_wr *w, const char *path, struct husk_err *err);

/* husk_unpack_tar, also hashing every byte read from archive_fd (then the
 * rest of the file after the end of the archive) into md when not NULL.
 * *compressed tells whether the stream was compressed. */
int husk_unpack_tar_md(int root_fd, int archive_fd, bool whiteouts, const char *what,
	struct husk_unpack_stats *stats, EVP_MD_CTX *md, bool *compressed, struct husk_err *err);

/* Remove name in dirfd, recursively, never following symlinks. 0 when it
 * did not exist. */
int husk_remove_tree(int dirfd, const char *name);
/* A new unique directory name under dirfd, made with mode 0700: "PREFIX-XXXXXX". */
char *husk_mkdtempat(int dirfd, const char *prefix);

/* A map from a file identity (device and inode) to the path of its first copy,
 * to keep hard links. */
struct husk_linkmap;
struct husk_linkmap *husk_linkmap_new(void);
void husk_linkmap_free(struct husk_linkmap *m);
const char *husk_linkmap_get(struct husk_linkmap *m, uint64_t dev, uint64_t ino);
int husk_linkmap_put(struct husk_linkmap *m, uint64_t dev, uint64_t ino, const char *path);

/* Does a symlink at rel (a normalised entry path) with this relative target
 * climb above the root, counting from the link's own directory? */
bool husk_link_climbs(const char *rel, const char *target);

#endif
