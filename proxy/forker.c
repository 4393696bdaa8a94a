/*
 * forker.c — makes the keepers, from a small process instead of ours.
 *
 * A keeper is a fork of whoever makes it. Forked from the processor, a
 * threaded program with nng's threads and eight slot threads at work,
 * each fork write-protects the whole address space: every thread then
 * takes copy-on-write faults, each with a TLB shootdown across CPUs, and
 * faults wait on the fork's mmap lock. Measured under load (python,
 * zygote, 8 connections), that was a fifth of the machine's CPU.
 *
 * So px_init, while the processor is still one thread (after the sandbox
 * and cgroups are set up, before any slot or nng thread), forks the
 * forker: a single-threaded copy that only waits on a SOCK_SEQPACKET
 * socket. A slot that needs a keeper sends it the plan, flattened into a
 * memfd (px_plan's strings and vectors as offsets, the cgroup by value)
 * with the plan's fds; the forker maps it, makes the pointers real,
 * clones the keeper with CLONE_PARENT and answers its pid. The keeper is
 * thus the processor's child, as before: the slot waits for it, reads
 * its report and kills it exactly as when it forked it itself. Pointers
 * into init-time state (the slot's px_sandbox) are valid in the forker
 * as they are: it is a fork made after that state was built.
 *
 * One request at a time (a mutex): a fork of the small forker is a
 * fraction of a millisecond. If the forker is gone or fails, the caller
 * falls back to forking the keeper itself (px_keeper_start), so a run is
 * never lost to it; the first failure is logged.
 */
#include "internal.h"
#include "sandbox.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* The plan's fds travel as SCM_RIGHTS, in this order. */
enum { F_STDIN, F_STDOUT, F_STDERR, F_CTL, F_WARM, F_REPORT, F_ZSOCK, F_ZSPEC, F_ZBPF,
       F_CG0, F_MAX = F_CG0 + 5 };

/* The head of the memfd; strings and vectors follow it. */
typedef struct flat {
	px_plan plan;   /* pointers zeroed: see the offsets */
	px_cgroup cg;   /* by value; valid when has_cg */
	bool has_cg;
	pid_t parent;   /* the processor: the keeper's parent */
	size_t exe, workdir, argv, envp; /* offsets; argv/envp: size_t[] ending in 0 */
} flat;

static struct {
	pthread_mutex_t mu;
	pid_t pid;  /* the forker; -1: none */
	int sock;   /* our end */
	bool failed_logged;
} fk = { PTHREAD_MUTEX_INITIALIZER, -1, -1, false };

/* ---- the forker's side --------------------------------------------------- */

static char *at(char *base, size_t off) { return off ? base + off : NULL; }

/* Offsets back to pointers, in the forker's private mapping. */
static void unflatten(char *base, size_t len, px_plan *p)
{
	flat *f = (flat *)base;
	*p = f->plan;
	p->exe = at(base, f->exe);
	p->workdir = at(base, f->workdir);
	char **vec[2] = { NULL, NULL };
	size_t offs[2] = { f->argv, f->envp };
	for (int v = 0; v < 2; v++) {
		if (!offs[v] || offs[v] >= len)
			continue;
		size_t *o = (size_t *)(base + offs[v]);
		char **out = (char **)o; /* same size: converted in place */
		for (size_t i = 0; o[i]; i++)
			out[i] = base + o[i];
		vec[v] = out; /* the terminating 0 is already NULL */
	}
	p->argv = vec[0];
	p->envp = vec[1];
	p->cg = f->has_cg ? &f->cg : NULL;
}

static void set_fds(px_plan *p, flat *f, const int *fd)
{
	p->stdin_fd = fd[F_STDIN], p->stdout_fd = fd[F_STDOUT], p->stderr_fd = fd[F_STDERR];
	p->ctl_fd = fd[F_CTL], p->warm_fd = fd[F_WARM], p->report_fd = fd[F_REPORT];
	p->zygote_sock = fd[F_ZSOCK], p->zygote_spec = fd[F_ZSPEC], p->zygote_bpf = fd[F_ZBPF];
	for (int i = 0; i < 5; i++)
		f->cg.join_fd[i] = fd[F_CG0 + i];
}

/* One request: the memfd and the plan's fds in; the keeper's pid (or
 * -errno) out. Returns false when the processor is gone. */
static bool serve_one(void)
{
	int fds[1 + F_MAX];
	uint32_t mask = 0; /* bit i: the plan's fd i was sent (else it is -1) */
	struct iovec iov = { &mask, sizeof mask };
	union { char buf[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	                    .msg_controllen = sizeof u.buf };
	ssize_t r = recvmsg(fk.sock, &m, MSG_CMSG_CLOEXEC);
	if (r < 0 && errno == EINTR)
		return true;
	if (r <= 0)
		return false;
	int n = 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
	}
	int answer = -EINVAL;
	struct stat st;
	char *base = MAP_FAILED;
	int planfd[F_MAX];
	for (int i = 0, k = 1; i < F_MAX; i++)
		planfd[i] = mask & (1u << i) && k < n ? fds[k++] : -1;
	if (r == sizeof mask && n == 1 + __builtin_popcount(mask) && fstat(fds[0], &st) == 0 &&
	    (size_t)st.st_size >= sizeof(flat))
		base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fds[0], 0);
	if (base != MAP_FAILED) {
		px_plan p;
		unflatten(base, (size_t)st.st_size, &p);
		set_fds(&p, (flat *)base, planfd);
		pid_t pid = px_keeper_clone(&p, ((flat *)base)->parent, CLONE_PARENT);
		answer = pid > 0 ? pid : -errno;
		munmap(base, (size_t)st.st_size);
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return send(fk.sock, &answer, sizeof answer, MSG_NOSIGNAL) == sizeof answer;
}

static void forker_main(int sock)
{
	int keep[2] = { 2, sock }; /* stderr, for what glibc may print */
	px_close_except(keep, 2);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL); /* a terminal's ^C is the processor's */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "corral-forker");
	fk.sock = sock;
	if (px_w.root)
		cr_log("info", "forker ready", "base_roots=%d", px_sandbox_prebuild());
	while (serve_one())
		;
	_exit(0);
}

/* ---- the processor's side ------------------------------------------------- */

int px_forker_start(char *err, size_t errlen)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "forker: socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork(); /* we are still one thread: see the top */
	if (pid == 0) {
		close(sv[0]);
		forker_main(sv[1]);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		snprintf(err, errlen, "forker: fork: %s", strerror(errno));
		return -1;
	}
	fk.pid = pid;
	fk.sock = sv[0];
	return 0;
}

void px_forker_stop(void)
{
	if (fk.sock >= 0)
		close(fk.sock); /* EOF: it ends */
	if (fk.pid > 0)
		waitpid(fk.pid, NULL, 0);
	fk.sock = fk.pid = -1;
}

/* Appends n bytes to the blob; returns their offset. */
static size_t put(char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
	size_t off = (*len + 7) & ~(size_t)7; /* vectors of size_t stay aligned */
	if (off + n > *cap) {
		size_t c = (*cap ? *cap * 2 : 4096);
		while (c < off + n)
			c *= 2;
		char *nb = realloc(*b, c);
		if (!nb)
			return 0;
		*b = nb, *cap = c;
	}
	memset(*b + *len, 0, off - *len);
	memcpy(*b + off, p, n);
	*len = off + n;
	return off;
}

static size_t put_vec(char **b, size_t *len, size_t *cap, char *const *v)
{
	if (!v)
		return 0;
	size_t n = 0;
	while (v[n])
		n++;
	size_t *offs = calloc(n + 1, sizeof *offs);
	if (!offs)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(offs[i] = put(b, len, cap, v[i], strlen(v[i]) + 1))) {
			free(offs);
			return 0;
		}
	size_t at = put(b, len, cap, offs, (n + 1) * sizeof *offs);
	free(offs);
	return at;
}

/* The plan as a memfd (see "flat"); -1 (errno). */
static int flatten(const px_plan *p)
{
	flat f;
	memset(&f, 0, sizeof f);
	f.plan = *p;
	f.plan.exe = f.plan.workdir = NULL;
	f.plan.argv = f.plan.envp = NULL;
	f.plan.cg = NULL;
	if (p->cg)
		f.cg = *p->cg, f.has_cg = true;
	f.parent = getpid();
	char *b = NULL;
	size_t len = 0, cap = 0;
	bool ok = put(&b, &len, &cap, &f, sizeof f) == 0 && b; /* the head, at 0 */
	flat *h;
	size_t exe = ok && p->exe ? put(&b, &len, &cap, p->exe, strlen(p->exe) + 1) : 0;
	size_t wd = ok && p->workdir ? put(&b, &len, &cap, p->workdir, strlen(p->workdir) + 1) : 0;
	size_t argv = ok ? put_vec(&b, &len, &cap, p->argv) : 0;
	size_t envp = ok ? put_vec(&b, &len, &cap, p->envp) : 0;
	ok = ok && (exe || !p->exe) && (wd || !p->workdir) && (argv || !p->argv) &&
	     (envp || !p->envp);
	int fd = ok ? memfd_create("corral-plan", MFD_CLOEXEC) : -1;
	if (fd >= 0) {
		h = (flat *)b;
		h->exe = exe, h->workdir = wd, h->argv = argv, h->envp = envp;
		size_t done = 0;
		while (done < len) {
			ssize_t w = write(fd, b + done, len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				close(fd);
				fd = -1;
				break;
			}
			done += (size_t)w;
		}
	}
	free(b);
	if (fd < 0 && !ok)
		errno = ENOMEM;
	return fd;
}

static int ask(int memfd, const px_plan *p)
{
	int plan[F_MAX] = { p->stdin_fd, p->stdout_fd, p->stderr_fd, p->ctl_fd, p->warm_fd,
	                    p->report_fd, p->zygote_sock, p->zygote_spec, p->zygote_bpf };
	for (int i = 0; i < 5; i++)
		plan[F_CG0 + i] = p->cg && i < p->cg->njoin ? p->cg->join_fd[i] : -1;
	int fds[1 + F_MAX] = { memfd }, n = 1;
	uint32_t mask = 0; /* SCM_RIGHTS takes no -1: the absent ones are left out */
	for (int i = 0; i < F_MAX; i++)
		if (plan[i] >= 0)
			mask |= 1u << i, fds[n++] = plan[i];
	int answer = 0;
	pthread_mutex_lock(&fk.mu);
	ssize_t w = px_send_fds(fk.sock, &mask, sizeof mask, fds, n, 0);
	ssize_t r = w == sizeof mask ? recv(fk.sock, &answer, sizeof answer, 0) : -1;
	pthread_mutex_unlock(&fk.mu);
	if (r != sizeof answer) {
		errno = EPIPE;
		return -1;
	}
	if (answer < 0) {
		errno = -answer;
		return -1;
	}
	return answer;
}

pid_t px_forker_keeper(const px_plan *p)
{
	if (fk.sock < 0) {
		errno = ENOSYS;
		return -1;
	}
	int memfd = flatten(p);
	if (memfd < 0)
		return -1;
	pid_t pid = ask(memfd, p);
	int e = errno;
	close(memfd);
	if (pid < 0 && !fk.failed_logged) {
		fk.failed_logged = true; /* benign race: at worst logged twice */
		char q[256];
		cr_log("warn", "the forker failed: keepers are forked here", "error=%s",
		       cr_log_quote(q, sizeof q, strerror(e)));
	}
	errno = e;
	return pid;
}
