/* sqfs.h: SquashFS images through libsquashfuse: a reader for small files
 * (no mount needed) and the FUSE server that husk runs in-process. */
#ifndef HUSK_SQFS_H
#define HUSK_SQFS_H

#include "husk.h"

#include <sched.h>
#include <stdint.h>

struct sqfs_reader;
/* Validate the image open on fd (superblock, size, compression, root inode). */
int husk_sqfs_reader_open(struct sqfs_reader **out, int fd, const char *path,
	struct husk_err *err);
void husk_sqfs_reader_close(struct sqfs_reader *r);
bool husk_sqfs_reader_exists(struct sqfs_reader *r, const char *path);
/* The target of the symlink at path (not following it): its length, or -1
 * with errno ENOENT, EINVAL (not a symlink) or EIO. */
int husk_sqfs_reader_readlink(struct sqfs_reader *r, const char *path, char *buf, size_t size);
/* The size of a regular file (1: missing), and a range of it. */
int husk_sqfs_reader_size(struct sqfs_reader *r, const char *path, uint64_t *size);
int husk_sqfs_reader_pread(struct sqfs_reader *r, const char *path, uint64_t off, size_t len,
	void *dst);
int husk_sqfs_reader_read(struct sqfs_reader *r, const char *path, char **buf, size_t *len,
	size_t max);
/* The libsquashfuse instance behind a reader, for walking the whole image
 * (`husk build FROM img.sqfs` extracts it). */
struct sqfs *husk_sqfs_reader_fs(struct sqfs_reader *r);

struct husk_sqfs_server;
/* Mount the image open on image_fd at the directory target_fd (O_PATH), read
 * only, nosuid, nodev, in the current (user-owned) mount namespace. Nothing
 * serves requests until husk_sqfs_server_start(). */
int husk_sqfs_server_mount(struct husk_sqfs_server **out, int image_fd, int target_fd,
	struct husk_err *err);
/* Decompress the file at path (the command about to be exec'd) into the
 * block cache in a background thread, while the root is being assembled.
 * Call after husk_sqfs_server_start. Best effort: failures are ignored. */
void husk_sqfs_server_prefetch(struct husk_sqfs_server *srv, const char *path);
/* Start serving in background threads (call after fork). */
int husk_sqfs_server_start(struct husk_sqfs_server *srv, struct husk_err *err);
/* Let the request-serving threads run on the CPUs of set only. */
void husk_sqfs_server_set_cpus(struct husk_sqfs_server *srv, const cpu_set_t *set);
/* Warm profiles (format in sqfs_server.c): record what the command asks,
 * from the start (call before husk_sqfs_server_start); the profile so far
 * (owned by the server), or NULL when not recording. */
void husk_sqfs_server_record(struct husk_sqfs_server *srv);
const char *husk_sqfs_server_profile(struct husk_sqfs_server *srv, size_t *len);
/* Replay a profile (NUL-terminated text, taken over, as is root_fd: the
 * mount's root) in a background thread of idle priority and a child process
 * (see sqfs_server.c). Best effort. The caller must be a subreaper that
 * reaps all its children, and call husk_sqfs_server_warm_stop when the
 * command has ended: the child is then killed (SIGKILL), to be reaped. */
void husk_sqfs_server_warm(struct husk_sqfs_server *srv, int root_fd, char *text);
void husk_sqfs_server_warm_stop(struct husk_sqfs_server *srv);
/* What the kernel asked of the server so far, for -v: "N lookups, N opens,
 * N reads (K KiB), N KiB pushed ahead, N of M threads" (the threads serving
 * requests so far, of those it may start). */
void husk_sqfs_server_stats(struct husk_sqfs_server *srv, char *buf, size_t size);

#endif
