/* session.c: node-local sessions.
 *
 * The launches of one job step on one node (the ranks of an MPI job) share
 * one user namespace and one mount of the image. Open MPI's single-copy path
 * (CMA, process_vm_readv) then works between ranks, and the image is read
 * and decompressed once for all of them.
 *
 * The session key is a SHA-256 of the uid, the launcher's identity (--join,
 * Slurm's job and step id, PMIx's namespace or Open MPI's job id), the
 * identity of the opened image (device, inode, size, mtime, ctime) and
 * --fake-root.
 * The rendezvous is an abstract unix socket named after the uid and the key:
 * nothing exists in the file system, so nothing can be left behind.
 *
 * The first launch to find no server binds the socket and listens (later
 * launches queue on it from then on) and starts a server that inherits it: a
 * process outside every launch's process tree (double fork, setsid) that
 * sets up the user and mount
 * namespaces and mounts the image as a single launch's supervisor would,
 * then hands each member (after checking its uid) fds of its user and mount
 * namespaces, the stage path and the small files of the image it read to
 * plan (so that members plan without opening the image).
 *
 * The server also assembles, in a helper process, the container root of the
 * launch that started it, and keeps that mount namespace (the shared root).
 * A member whose mounts are the same (root_key: binds, masks, generated
 * files) joins it and only enters its directory and execs. Any other member
 * joins the user namespace, copies the host's mount tree for its own
 * sources, then copies the server's mount tree to clone the image root from
 * it, and assembles its root as usual.
 *
 * The server exits when its last member's connection closes (members hold
 * it until all their processes are gone), or after 10 s without any
 * member. */
#include "husk_config.h"
#include "husk.h"
#include "place.h"
#include "ns.h"
#include "sqfs.h"
#include "util.h"

#include <fcntl.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define IDLE_MS 10000
#define MAGIC "husk-s3"

struct hello {
	char magic[8];
	char stage[64];
	char root_key[65];   /* the shared root's key; its fd is the third, if any */
	uint32_t facts_len;  /* the image's small files follow (husk_image_facts_*) */
};
/* More is not sent (the files a launch reads to plan are a few KB). */
#define FACTS_MAX (1u << 20)

/* What the server tells the launch that started it. */
enum { REP_READY = 1, REP_ERROR };
struct server_report {
	int kind;
	struct husk_err err;
};

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* The launcher's identity, or NULL for no session. */
static char *launcher_identity(struct husk_plan *p, char **what)
{
	const char *v, *job, *step;

	if (p->join) {
		*what = husk_strdup_printf("--join=%s", p->join);
		return strdup(p->join);
	}
	if ((v = env_nonempty("HUSK_JOIN"))) {
		*what = husk_strdup_printf("HUSK_JOIN=%s", v);
		return strdup(v);
	}
	job = env_nonempty("SLURM_JOB_ID");
	step = env_nonempty("SLURM_STEP_ID");
	if (job && step) {
		*what = husk_strdup_printf("Slurm job step %s.%s", job, step);
		return husk_strdup_printf("slurm:%s.%s", job, step);
	}
	if ((v = env_nonempty("PMIX_NAMESPACE"))) {
		*what = husk_strdup_printf("PMIx namespace %s", v);
		return husk_strdup_printf("pmix:%s", v);
	}
	if ((v = env_nonempty("OMPI_MCA_orte_ess_jobid")) ||
	    (v = env_nonempty("OMPI_MCA_ess_base_jobid"))) {
		*what = husk_strdup_printf("Open MPI job %s", v);
		return husk_strdup_printf("ompi:%s", v);
	}
	return NULL;
}

int husk_session_plan(struct husk_setup *s, struct husk_err *err)
{
	struct husk_plan *p = s->plan;
	struct husk_session *x = &s->sess;
	autofree char *id = NULL;
	autofree char *text = NULL;
	struct sha256_ctx ctx;
	uint8_t md[SHA256_DIGEST_SIZE];
	struct stat st;

	x->conn_fd = x->userns_fd = x->mntns_fd = x->root_fd = x->rootns_fd = -1;
	x->root_key[0] = '\0';
	if (p->no_join || p->build_step)
		return 0;
	if (p->join && !*p->join)
		return husk_err_set(err, 0, "--join: give a non-empty TAG");
	if (!(id = launcher_identity(p, &x->launcher)))
		return 0;
	if (fstat(s->img.fd, &st) < 0)
		return husk_err_set(err, errno, "image '%s'", s->img.path);
	/* The ctime too: a file rewritten in place keeps its inode, and its
	 * size and mtime can be put back, but its ctime cannot (only the clock
	 * sets it). */
	text = husk_strdup_printf("uid=%u\nlauncher=%s\nimage=%llu:%llu:%lld:%lld.%09ld:"
		"%lld.%09ld\nfake_root=%d\n", (unsigned)s->uid, id,
		(unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
		(long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
		st.st_ctim.tv_nsec, p->fake_root ? 1 : 0);
	if (!text)
		return husk_err_set(err, ENOMEM, "session key");
	sha256_init(&ctx);
	sha256_update(&ctx, strlen(text), (const uint8_t *)text);
	sha256_digest(&ctx, sizeof(md), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(x->key + 2 * i, 3, "%02x", md[i]);
	x->on = true;
	return 0;
}

static void hash_str(struct sha256_ctx *ctx, const char *v)
{
	/* With its terminating NUL: "a","bc" and "ab","c" differ. */
	v = v ? v : "";
	sha256_update(ctx, strlen(v) + 1, (const uint8_t *)v);
}

/* The shared root's key: everything the assembled mount tree depends on
 * (the image and the ids are in the session key). The working directory is
 * not: each member enters its own. --writable-tmpfs gives each launch a
 * private writable layer, so it never shares. */
void husk_session_plan_root(struct husk_setup *s)
{
	struct husk_session *x = &s->sess;
	struct sha256_ctx ctx;
	uint8_t md[SHA256_DIGEST_SIZE];

	x->root_key[0] = '\0';
	if (!x->on || s->plan->writable_tmpfs || s->plan->build_step)
		return;
	sha256_init(&ctx);
	hash_str(&ctx, "husk-root-1");
	hash_str(&ctx, x->key);
	for (size_t i = 0; i < s->n_mnts; i++) {
		const struct husk_mnt *m = &s->mnts[i];
		char flags[8];
		snprintf(flags, sizeof(flags), "%d%d%d%d%d", m->ro, m->nodev, m->optional,
			m->generated, m->hide);
		hash_str(&ctx, m->src);
		hash_str(&ctx, m->dst);
		hash_str(&ctx, flags);
	}
	hash_str(&ctx, s->passwd);
	hash_str(&ctx, s->group);
	sha256_digest(&ctx, sizeof(md), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(x->root_key + 2 * i, 3, "%02x", md[i]);
}

void husk_session_free(struct husk_session *x)
{
	int *fds[] = { &x->conn_fd, &x->userns_fd, &x->mntns_fd, &x->root_fd, &x->rootns_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	free(x->launcher);
	x->launcher = NULL;
}

static socklen_t session_addr(struct husk_setup *s, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "husk-session-%u-%s",
		(unsigned)s->uid, s->sess.key);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* ---- the server ------------------------------------------------------- */

static void report(int fd, int kind, struct husk_err *err)
{
	struct server_report r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	if (err)
		r.err = *err;
	husk_write_all(fd, &r, sizeof(r));
}

struct offer {
	int userns_fd, mntns_fd;
	const char *stage;
	const char *root_key;        /* "" when there is no shared root */
	int rootns_fd;               /* or -1 */
	char *facts;                 /* husk_image_facts_export of our image */
	size_t facts_len;
};

static void send_hello(int c, const struct offer *o)
{
	struct hello h;
	int fds[3] = { o->userns_fd, o->mntns_fd, o->rootns_fd };
	size_t nfd = o->rootns_fd >= 0 ? 3 : 2;
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		.msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, sizeof(MAGIC));
	snprintf(h.stage, sizeof(h.stage), "%s", o->stage);
	if (o->rootns_fd >= 0)
		snprintf(h.root_key, sizeof(h.root_key), "%s", o->root_key);
	h.facts_len = (uint32_t)o->facts_len;
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));
	if (sendmsg(c, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(h) && o->facts_len)
		(void)husk_write_all(c, o->facts, o->facts_len);
}

/* Serve members until the last one is gone. Never returns. */
static void serve(int lfd, const struct offer *o)
{
	struct pollfd *pfd = NULL;
	size_t n = 0, cap = 0;
	bool seen = false;
	double deadline = husk_now_ms() + IDLE_MS;

	for (;;) {
		int timeout = -1, c;

		if (n == 0 && seen)
			break;
		if (n == 0) {
			double left = deadline - husk_now_ms();
			if (left <= 0)
				break;
			timeout = (int)left + 1;
		}
		if (n + 2 > cap) {
			struct pollfd *v = realloc(pfd, (cap = cap ? 2 * cap : 64) * sizeof(*v));
			if (!v)
				break;
			pfd = v;
		}
		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		if (poll(pfd, n + 1, timeout) < 0 && errno != EINTR)
			break;
		for (size_t i = 0; i < n; ) {
			char buf[64];
			if (pfd[i].revents && read(pfd[i].fd, buf, sizeof(buf)) <= 0) {
				close(pfd[i].fd);
				pfd[i] = pfd[--n];
				continue;
			}
			pfd[i].revents = 0;
			i++;
		}
		while ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			struct ucred cr;
			socklen_t len = sizeof(cr);
			/* Only our own user (as mapped in our namespace) may join. */
			if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
			    cr.uid != getuid()) {
				close(c);
				continue;
			}
			send_hello(c, o);
			if (n + 2 > cap) {
				struct pollfd *v = realloc(pfd, (cap = cap ? 2 * cap : 64) * sizeof(*v));
				if (!v) {
					close(c);
					continue;
				}
				pfd = v;
			}
			pfd[n].fd = c;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
			seen = true;
		}
	}
	/* Closing the socket first: a launch that connects now gets no hello
	 * and starts a new server. The mount goes with the last process of
	 * the namespace; the FUSE threads end with us. */
	close(lfd);
	_exit(0);
}

/* One fd through a unix socket. */
static int send_fd(int sock, int fd)
{
	char c = 'r', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		.msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char c, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		.msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd = -1;

	if (recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The shared root: a helper process assembles it (run.c) while our threads
 * serve the image to it, and hands us its mount namespace, which lives as
 * long as we hold the fd. -1 when there is none: members then assemble
 * their own roots, and report what went wrong themselves.
 *
 * The helper is a vfork child: only this thread waits, and nothing of our
 * address space (the block cache, the threads' stacks) is copied, which a
 * fork did in 1 to 3 ms on a 2-core VM, with as much again for the child's
 * first faults and its exit. It works on copies of the setup and of the
 * mount list, so that the stage, fds and flags it sets stay its own. */
static void __attribute__((noreturn)) helper_main(struct husk_setup *h, int sock)
{
	struct husk_err e = { 0 };
	int ns;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (husk_assemble_shared_root(h, &e) < 0 ||
	    (ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)) < 0 || send_fd(sock, ns) < 0)
		_exit(1);
	_exit(0);
}

/* The helper's exit status: true when it sent the namespace. */
static bool run_helper(struct husk_setup *h, int sock)
{
	pid_t pid = vfork();
	int st;

	if (pid == 0)
		helper_main(h, sock);
	if (pid < 0)
		return false;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int shared_root(struct husk_setup *s)
{
	struct husk_setup h = *s;
	autofree struct husk_mnt *mnts = NULL;
	int sp[2], fd = -1;

	if (s->n_mnts && !(mnts = malloc(s->n_mnts * sizeof(*mnts))))
		return -1;
	if (s->n_mnts)
		memcpy(mnts, s->mnts, s->n_mnts * sizeof(*mnts));
	h.mnts = mnts;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	if (run_helper(&h, sp[1]))
		fd = recv_fd(sp[0]);
	close(sp[0]);
	close(sp[1]);
	return fd;
}

/* The session server, in the grandchild of the launch that starts it, which
 * bound the socket and listens on lfd. */
static void server_main(struct husk_setup *s, int rep, int lfd)
{
	struct husk_err err = { 0 };
	struct husk_sqfs_server *srv = NULL;
	int img, devnull;
	struct offer o = { .userns_fd = -1, .mntns_fd = -1, .rootns_fd = -1 };
	sigset_t all;
	struct rlimit rl;

	setsid();
	/* It serves every rank: not on the first one's share (--placement). */
	husk_placement_unbind();
	/* One fd per member: many ranks may join. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* No fd of the caller stays open: only /dev/null, the report pipe, the
	 * image, and the socket, at fixed numbers. */
	devnull = open("/dev/null", O_RDWR);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
		_exit(1);
	rep = fcntl(rep, F_DUPFD_CLOEXEC, 10);
	img = fcntl(s->img.fd, F_DUPFD_CLOEXEC, 10);
	lfd = fcntl(lfd, F_DUPFD_CLOEXEC, 10);
	if (rep < 0 || img < 0 || lfd < 0 || dup2(rep, 3) < 0 || dup2(img, 4) < 0 ||
	    dup2(lfd, 5) < 0)
		_exit(1);
	rep = 3;
	s->img.fd = 4;
	lfd = 5;
	close_range(6, ~0U, 0);
	fcntl(rep, F_SETFD, FD_CLOEXEC);
	fcntl(s->img.fd, F_SETFD, FD_CLOEXEC);
	fcntl(lfd, F_SETFD, FD_CLOEXEC);
	prctl(PR_SET_NAME, "husk-session");
	s->proc_fd = -1;
	s->sess.on = false;   /* the server mounts the image itself */
	if (husk_userns_enter(s->plan->fake_root, s->uid, s->gid, &err) < 0) {
		report(rep, REP_ERROR, &err);
		_exit(1);
	}
	/* The bind sources of the shared root, opened while our copy of the
	 * host's tree is not yet covered by the stage. A failure only means no
	 * shared root: the launches say what is wrong. */
	if (s->sess.root_key[0] && husk_open_bind_sources(s, &err) < 0) {
		s->sess.root_key[0] = '\0';
		memset(&err, 0, sizeof(err));
	}
	if (husk_stage_image(s, &srv, &err) < 0 ||
	    (srv && husk_sqfs_server_start(srv, &err) < 0)) {
		report(rep, REP_ERROR, &err);
		_exit(1);
	}
	o.userns_fd = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
	o.mntns_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (o.userns_fd < 0 || o.mntns_fd < 0) {
		husk_err_set(&err, errno, "session server: cannot open its namespaces");
		report(rep, REP_ERROR, &err);
		_exit(1);
	}
	if (s->sess.root_key[0])
		o.rootns_fd = shared_root(s);
	for (size_t i = 0; i < s->n_mnts; i++)
		if (s->mnts[i].src_fd >= 0) {
			close(s->mnts[i].src_fd);
			s->mnts[i].src_fd = -1;
		}
	o.stage = s->stage_path;
	o.root_key = s->sess.root_key;
	if (husk_image_facts_export(&s->img, &o.facts, &o.facts_len) < 0 || o.facts_len > FACTS_MAX)
		o.facts_len = 0;
	report(rep, REP_READY, NULL);
	close(rep);
	serve(lfd, &o);
}

/* A session that cannot be set up: which one, what failed (errno e, or 0),
 * and the way around. */
static int session_error(struct husk_setup *s, int e, const char *what, struct husk_err *err)
{
	husk_err_set(err, e, "session %s (%s) of image '%s': %s", s->sess.key,
		s->sess.launcher, s->img.path, what);
	husk_err_hint(err, "run with --no-join to launch without a session");
	return -1;
}

/* Start a server; 0 when one is (now) there to connect to. */
static int spawn_server(struct husk_setup *s, bool *started, struct husk_err *err)
{
	struct sockaddr_un sa;
	socklen_t salen = session_addr(s, &sa);
	autoclose int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int p[2], st;
	pid_t a;
	struct server_report r;
	ssize_t got = 0, k;

	if (lfd < 0)
		return session_error(s, errno, "cannot create its socket", err);
	/* Bound and listening before the server exists: the launches that
	 * come meanwhile queue on it and are answered once the image is up,
	 * instead of starting servers of their own that lose the race. */
	if (bind(lfd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno != EADDRINUSE)
			return session_error(s, errno, "cannot bind its socket", err);
		/* Another launch is starting one (or one is leaving): connect
		 * again, a moment later. */
		usleep(1000);
		return 0;
	}
	if (listen(lfd, SOMAXCONN) < 0)
		return session_error(s, errno, "cannot listen on its socket", err);
	if (pipe2(p, O_CLOEXEC) < 0)
		return session_error(s, errno, "cannot create a pipe to its server", err);
	fflush(NULL);
	/* The middle process only forks the server (reparented away from us
	 * when it exits): a vfork child, on our memory, while we wait. */
	a = vfork();
	if (a < 0) {
		close(p[0]);
		close(p[1]);
		return session_error(s, errno, "cannot start its server", err);
	}
	if (a == 0) {
		close(p[0]);
		if (fork() == 0)
			server_main(s, p[1], lfd);
		_exit(0);
	}
	close(p[1]);
	while (waitpid(a, &st, 0) < 0 && errno == EINTR)
		;
	memset(&r, 0, sizeof(r));
	while (got < (ssize_t)sizeof(r) &&
	       ((k = read(p[0], (char *)&r + got, sizeof(r) - (size_t)got)) > 0 ||
		(k < 0 && errno == EINTR)))
		if (k > 0)
			got += k;
	close(p[0]);
	if (got != (ssize_t)sizeof(r))
		return session_error(s, 0, "its server did not start (out of processes or open "
			"files?)", err);
	if (r.kind == REP_ERROR) {
		*err = r.err;
		return -1;
	}
	*started = r.kind == REP_READY;
	return 0;
}

/* Connect; 1 on success, 0 when nobody serves (or the server was leaving). */
static int try_connect(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;
	struct sockaddr_un sa;
	socklen_t salen = session_addr(s, &sa);
	autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct hello h;
	int fds[3] = { -1, -1, -1 };
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
		.msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	struct pollfd pfd;
	ssize_t n;
	size_t nfd = 0;

	if (fd < 0)
		return session_error(s, errno, "cannot create its socket", err);
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno == ECONNREFUSED || errno == ENOENT)
			return 0;
		return session_error(s, errno, "cannot connect to its socket", err);
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return husk_err_set(err, errno, "session server credentials");
	if (cr.uid != s->uid) {
		husk_err_set(err, 0, "session %s: its socket is held by uid %u (pid %d), not by "
			"you", x->key, (unsigned)cr.uid, (int)cr.pid);
		husk_err_hint(err, "someone is squatting the session name; run with --no-join, or "
			"pick another tag with --join");
		return -1;
	}
	/* The server answers once the image is mounted. */
	pfd.fd = fd;
	pfd.events = POLLIN;
	while ((n = poll(&pfd, 1, 60000)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return session_error(s, 0, "its server did not answer in 60 s", err);
	memset(cbuf, 0, sizeof(cbuf));
	while ((n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len >= CMSG_LEN(0)) {
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		nfd = nfd > 3 ? 3 : nfd;
		memcpy(fds, CMSG_DATA(cm), nfd * sizeof(int));
	}
	if (n != (ssize_t)sizeof(h) || memcmp(h.magic, MAGIC, sizeof(MAGIC)) || nfd < 2) {
		for (size_t i = 0; i < nfd; i++)
			close(fds[i]);
		if (n <= 0)
			return 0;   /* the server was leaving: start another */
		return husk_err_set(err, 0, "session %s: unexpected answer from its server", x->key);
	}
	x->userns_fd = fds[0];
	x->mntns_fd = fds[1];
	h.stage[sizeof(h.stage) - 1] = '\0';
	h.root_key[sizeof(h.root_key) - 1] = '\0';
	snprintf(x->stage, sizeof(x->stage), "%s", h.stage);
	/* The server's root is ours only if it was assembled from our plan,
	 * which husk_session_join checks once the plan is complete. */
	if (nfd == 3) {
		x->rootns_fd = fds[2];
		snprintf(x->offered_key, sizeof(x->offered_key), "%s", h.root_key);
	}
	if (h.facts_len && h.facts_len <= FACTS_MAX) {
		autofree char *facts = malloc(h.facts_len);
		size_t got = 0;
		while (facts && got < h.facts_len &&
		       ((n = read(fd, facts + got, h.facts_len - got)) > 0 || (n < 0 && errno == EINTR)))
			if (n > 0)
				got += (size_t)n;
		/* Without them (or with a bad blob) the image is read as usual. */
		if (facts && got == h.facts_len)
			(void)husk_image_facts_import(&s->img, facts, got);
	}
	x->conn_fd = steal_fd(&fd);
	return 1;
}

/* A member planning its launch: connect to a server that is already there
 * (starting none), for the files of the image it read (husk_image_facts). */
int husk_session_peek(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;
	int r;

	if (!x->on || !husk_have_open_tree())
		return 0;
	if ((r = try_connect(s, err)) < 0)
		return -1;
	if (r > 0)
		husk_debug("session %s is up: planning with the files its server read", x->key);
	return 0;
}

/* Once the plan is complete: the server's root is ours only if it was
 * assembled from the same mounts. */
static void check_offer(struct husk_session *x)
{
	if (x->rootns_fd >= 0 && (!x->root_key[0] || strcmp(x->offered_key, x->root_key))) {
		close(x->rootns_fd);
		x->rootns_fd = -1;
	}
}

int husk_session_join(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;

	if (!x->on)
		return 0;
	if (x->conn_fd >= 0) {
		/* Connected while planning (husk_session_peek). */
		check_offer(x);
		husk_info("joined session %s (existing) at %.2f ms, %s", x->key,
			husk_now_ms() - s->t0, x->rootns_fd >= 0 ? "its shared root" : "a root of our own");
		return 0;
	}
	if (!husk_have_open_tree()) {
		husk_debug("not joining session %s (%s): the kernel has no open_tree (5.2); "
			"this launch mounts the image itself", x->key, x->launcher);
		x->on = false;
		return 0;
	}
	for (int attempt = 0; attempt < 10; attempt++) {
		bool started = false;
		int r = try_connect(s, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			check_offer(x);
			husk_info("joined session %s (%s) at %.2f ms, %s", x->key,
				x->started ? "started it" : "existing", husk_now_ms() - s->t0,
				x->rootns_fd >= 0 ? "its shared root" : "a root of our own");
			return 0;
		}
		if (spawn_server(s, &started, err) < 0)
			return -1;
		x->started = x->started || started;
	}
	return husk_err_set(err, 0, "session %s: could not reach its server", x->key);
}

/* ---- a member's supervisor ------------------------------------------- */

int husk_session_enter(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;

	if (setns(x->userns_fd, CLONE_NEWUSER) < 0)
		return husk_err_set(err, errno, "cannot join the session's user namespace");
	close(x->userns_fd);
	x->userns_fd = -1;
	/* A copy of the host's mount tree, owned by the shared namespace: the
	 * bind sources are cloned from it, as in a single launch. */
	if (unshare(CLONE_NEWNS) < 0)
		return husk_err_set(err, errno, "cannot create a mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return husk_err_set(err, errno, "cannot make the mount tree private");
	return 0;
}

int husk_session_take_image(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;
	autoclose int fd = -1;

	/* A private copy of the server's tree, which has the image mounted. */
	if (setns(x->mntns_fd, CLONE_NEWNS) < 0)
		return husk_err_set(err, errno, "cannot join the session's mount namespace");
	close(x->mntns_fd);
	x->mntns_fd = -1;
	if (unshare(CLONE_NEWNS) < 0)
		return husk_err_set(err, errno, "cannot create a mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return husk_err_set(err, errno, "cannot make the mount tree private");
	fd = openat(AT_FDCWD, x->stage, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		int root = openat(fd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = root;
	}
	if (fd < 0 || (x->root_fd = husk_clone_tree(fd)) < 0)
		return husk_err_set(err, errno, "cannot take the image from session %s", x->key);
	return 0;
}

/* A member whose plan is the shared root's: into the session's user
 * namespace, then the root's mount namespace, which makes the container
 * root our root and working directory; the command's process only has to
 * enter its working directory and exec. */
int husk_session_enter_root(struct husk_setup *s, struct husk_err *err)
{
	struct husk_session *x = &s->sess;

	if (setns(x->userns_fd, CLONE_NEWUSER) < 0)
		return husk_err_set(err, errno, "cannot join the session's user namespace");
	if (setns(x->rootns_fd, CLONE_NEWNS) < 0)
		return husk_err_set(err, errno, "cannot join the session's container root");
	close(x->userns_fd);
	close(x->mntns_fd);
	x->userns_fd = x->mntns_fd = -1;
	return 0;
}
