/* ns.h: internal interfaces between the pieces of `husk run`. */
#ifndef HUSK_NS_H
#define HUSK_NS_H

#include "husk.h"

#include <sched.h>
#include <signal.h>

struct json_object;

/* One mount of the container, in the order they are made. */
struct husk_mnt {
	char *src;           /* host path, for messages and dry-run */
	char *dst;           /* container path, normalised */
	int src_fd;          /* a detached clone of the source tree (open_tree), or an
	                      * O_PATH fd on kernels without the new mount API */
	bool detached;       /* src_fd is a detached tree: attach it once */
	bool ro, nodev, optional, generated;
	bool hide;           /* mask dst (husk_host.hide): an empty file or directory,
	                      * mode 0, is bound over it; skipped when dst is missing */
	const char *why;     /* "default", "--bind", "HUSK_BIND", "generated", "hide",
	                      * or what added a host bind ("husk.conf", ...) */
};

/* A node-local session: the launches of one job step on one node share one
 * user namespace and one mount of the image, served by a session server. */
struct husk_session {
	bool on;                     /* this launch joins a session */
	bool started;                /* ... and started its server */
	char key[65];                /* sha256 hex of uid, launcher, image, fake_root */
	char *launcher;              /* what named it, for messages ("--join=T") */
	int conn_fd;                 /* connection to the server, or -1 */
	int userns_fd, mntns_fd;     /* the server's namespaces, or -1 */
	char stage[64];              /* the server's stage; the image is at STAGE/root */
	int root_fd;                 /* the image root cloned from the server, or -1 */
	/* The shared root: the server assembles the container's mount tree once,
	 * for the plan of the launch that started it; a member whose plan is the
	 * same (binds, masks, generated files: root_key) joins that mount
	 * namespace and only has its command to start. */
	char root_key[65];           /* sha256 hex of the mount plan, "" for none */
	char offered_key[65];        /* the key of the root the server offered */
	int rootns_fd;               /* the shared root's mount namespace, or -1 */
};

/* Everything `husk run` decided before touching the system, plus the fds the
 * supervisor opens; shared by the three processes of a launch. */
struct husk_setup {
	struct husk_plan *plan;
	struct husk_image img;
	struct husk_mnt *mnts;
	size_t n_mnts;
	struct husk_env env;         /* the command's final environment */
	char *passwd, *group;        /* generated identity files */
	char *host_cwd;              /* the caller's working directory */
	char *cwd;                   /* wanted working directory inside */
	char *home;                  /* $HOME (host), or NULL */
	char **argv;                 /* command to run */
	char **image_argv;           /* entrypoint + cmd of the image, when argv is that */
	struct husk_meta meta;       /* /.husk/metadata.json, empty when there is none */
	const char *workdir;         /* the image's workdir (in meta), or NULL */
	char digest[65];             /* the image file's SHA-256, when computed ... */
	bool have_digest;            /* ... (pinned runs and provenance) */
	int prov_fd;                 /* --provenance file (O_APPEND), or -1 */
	int warm_fd;                 /* --warm-record file, or -1 */
	struct husk_sqfs_server *warming;   /* replaying the image's warm profile */
	struct json_object *prov;    /* its record, completed by the command process */
	uid_t uid;
	gid_t gid;
	sigset_t old_mask;           /* the caller's signal mask, restored for exec */
	cpu_set_t cmd_cpus;          /* the caller's CPUs, when cpus_pinned */
	bool cpus_pinned;            /* root assembly runs on one CPU (run.c) */
	struct sigaction old_pipe;   /* the caller's SIGPIPE disposition, likewise */
	double t0;                   /* start time, for -v phase timing */
	/* Filled in by the supervisor (inside the namespaces): */
	int proc_fd;
	int stage_fd;                /* our private tmpfs, holding the mounts below */
	const char *stage_path;
	int dir_image_fd;            /* directory image, reopened inside the namespace */
	bool dir_image_detached;     /* ... as a detached tree */
	struct husk_session sess;    /* node-local session (session.c) */
};

/* session.c: decide (no system change), join (top process: connect, or
 * start the server and connect), enter (supervisor: setns into the user
 * namespace, then a private copy of the host's mount tree), and take the
 * image (supervisor, after open_sources: clone the server's image root). */
int husk_session_plan(struct husk_setup *s, struct husk_err *err);
int husk_session_join(struct husk_setup *s, struct husk_err *err);
int husk_session_peek(struct husk_setup *s, struct husk_err *err);
int husk_session_enter(struct husk_setup *s, struct husk_err *err);
int husk_session_take_image(struct husk_setup *s, struct husk_err *err);
/* After the mounts and identity files are planned: the shared root's key. */
void husk_session_plan_root(struct husk_setup *s);
/* A member with the shared root: setns into it (supervisor). */
int husk_session_enter_root(struct husk_setup *s, struct husk_err *err);
void husk_session_free(struct husk_session *sess);
/* run.c: what the session server does for the image: a private stage and
 * the image mounted at STAGE/root (FUSE threads not started yet). */
struct husk_sqfs_server;
int husk_stage_image(struct husk_setup *s, struct husk_sqfs_server **srv,
	struct husk_err *err);
/* run.c: open the bind sources as detached trees (the server, before its
 * stage covers any of them), and assemble the root in a mount namespace of
 * its own, as a member would (the server's helper process). */
int husk_open_bind_sources(struct husk_setup *s, struct husk_err *err);
int husk_assemble_shared_root(struct husk_setup *s, struct husk_err *err);

/* root.c: run in the child; assembles the root, pivots, execs. Returns only
 * on failure. Assemble is the part up to pivot_root, start the rest (working
 * directory, privileges, exec), which a member of a shared root runs alone. */
int husk_container_exec(struct husk_setup *s, struct husk_err *err);
int husk_container_assemble(struct husk_setup *s, struct husk_err *err);
int husk_container_start(struct husk_setup *s, struct husk_err *err);

/* provenance.c: one JSON line per launch, appended to --provenance FILE.
 * open and prepare run in the top process before anything is set up (a file
 * that cannot be opened stops the launch); write runs in the command process
 * just before exec, so every command that runs has its record. */
int husk_provenance_open(struct husk_setup *s, struct husk_err *err);
int husk_provenance_prepare(struct husk_setup *s, struct husk_err *err);
int husk_provenance_write(struct husk_setup *s, struct husk_err *err);
void husk_provenance_free(struct husk_setup *s);

/* userns.c */
int husk_userns_enter(bool fake_root, uid_t uid, gid_t gid, struct husk_err *err);

/* privs.c */
int husk_drop_privileges(bool keep_caps, struct husk_err *err);

/* identity.c: /etc/passwd and /etc/group with the user's entries. */
int husk_identity_files(struct husk_image *img, bool fake_root, uid_t uid, gid_t gid,
	const char *home, char **passwd, char **group, struct husk_err *err);

/* mounts.c */
enum husk_bind_attr { BIND_RO = 1, BIND_NODEV = 2 };
int husk_bind_fd(int src_fd, int dst_fd, unsigned attrs, struct husk_err *err,
	const char *what);
/* Clone the mount tree at fd into a detached tree (-1 with ENOSYS before 5.2). */
int husk_clone_tree(int fd);
/* Does the kernel have open_tree (5.2)? Needs no privilege. */
bool husk_have_open_tree(void);
/* Attach a detached tree (from husk_clone_tree) on dst_fd with attributes. */
int husk_attach_tree(int tree_fd, int dst_fd, unsigned attrs, struct husk_err *err,
	const char *what);
int husk_setattr_fd(int fd, bool recursive, bool ro, bool nodev);
int husk_mount_tmpfs(int dir_fd, const char *opts);

/* rootemu.c: a seccomp filter that makes chown, the set*id calls and
 * device-node mknod succeed without effect (needs no_new_privs). */
int husk_root_emulation(struct husk_err *err);

/* supervise.c */
int husk_kill_descendants(int proc_fd, pid_t root, int sig);
void husk_kill_all_and_reap(int proc_fd);
/* The same for our children, allocating nothing (the top process). */
void husk_end_children(void);
int husk_signals_forwarded(int *sigs, int max);

/* launcher.c: the host directories a launcher's task must see (PMIx
 * rendezvous), normalised and malloc'ed into out; returns how many, or -1. */
int husk_launcher_dirs(char **out, int max);

/* sigrelay.c: the top process relays signals to the supervisor through a
 * pipe; a signal whose sender also signalled the command itself (the
 * terminal, Slurm's slurmstepd) reaches the command once. */
#define HUSK_NSIG 65
struct husk_relay {
	int sig;
	pid_t origin;   /* a slurmstepd above us that sent it, or 0 */
};
/* What goes through the pipe: the signal and its sender as they came. */
struct husk_relay_msg {
	int sig, code;
	pid_t pid;
};
struct husk_relay_state {
	pid_t direct[HUSK_NSIG], pend[HUSK_NSIG];
	double direct_t[HUSK_NSIG], pend_t[HUSK_NSIG];
};
bool husk_signal_from_terminal(const siginfo_t *si);
int husk_relay_send(int fd, const siginfo_t *si);
/* The supervisor's reading of a relayed signal: who sent it. */
void husk_relay_decode(const struct husk_relay_msg *w, struct husk_relay *m);
void husk_relay_init(struct husk_relay_state *st);
/* The supervisor got sig from another process than the top one. */
void husk_relay_direct(struct husk_relay_state *st, int sig, pid_t from, double now);
/* A relayed signal: returns the signal to pass on now, or 0. */
int husk_relay_received(struct husk_relay_state *st, const struct husk_relay *m, double now);
/* A signal whose wait is over (0: none), and the next wait in *timeout_ms. */
int husk_relay_due(struct husk_relay_state *st, double now, int *timeout_ms);

#endif
