/*
 * stage.c — the parent side of one stage (compile or run).
 *
 * On the slot's thread: make the pipes and the stage's cgroup, prepare
 * the keeper's plan, fork the keeper (keeper.c), then one poll loop over
 *   - the stage's stdout and stderr (kept up to output_bytes each, in
 *     read order in cr_stage.chunks; past the cap the stage is stopped;
 *     past CR_MAX_CHUNKS stream switches the order is no longer kept and
 *     finish() closes the list with the rest of stdout, then of stderr),
 *   - its stdin (written non-blocking; EPIPE only means the program did
 *     not want the rest),
 *   - the keeper's report pipe (its end),
 *   - the slot's wake eventfd (px_cancel),
 * with a timeout at the wall deadline, or every CPU_TICK_MS when a CPU
 * limit is enforced through the cgroup's usage. Stopping the stage is one
 * byte to the keeper, which kills the whole tree and reports. If the
 * keeper itself stops answering it is SIGKILLed (last resort).
 *
 * After the report, what is still in the pipes is drained without
 * blocking (everything that could write is dead, but a pipe end leaked
 * to an unrelated process must not hang us), then the status is decided:
 * output > memory > timeout (wall, or CPU: cgroup usage, SIGXCPU, or the
 * RLIMIT_CPU hard SIGKILL) > how the stage process ended.
 *
 * A keeper that reported has killed and reaped the whole tree; waiting
 * for its exit (it tears the namespaces down, about a millisecond) and
 * resetting the cgroup are left to px_slot_tidy, which the slot runs
 * after the reply and every launch runs first.
 */
#include "internal.h"
#include "clock.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CPU_TICK_MS 10
#define KEEPER_GRACE_MS 10000 /* after a stop request, before SIGKILL */
#define READ_CHUNK 65536

enum { STOP_NONE, STOP_WALL, STOP_CPU, STOP_OUTPUT, STOP_CANCEL };

typedef struct stream {
	int fd;
	char *buf;
	size_t len, cap_alloc;
	bool truncated;
} stream;

typedef struct run {
	const px_stage_spec *spec;
	px_slot *slot;
	px_cgroup cg;
	stream out, err;
	int in_fd, report_fd, ctl_fd;
	size_t in_off;
	int32_t *chunks;
	size_t nchunks, chunks_alloc;
	int stop;
	int64_t stop_at;
	px_report rep;
	bool have_report;
	bool oom_chunks; /* allocation failed: we stop the stage */
	bool chunks_full; /* CR_MAX_CHUNKS reached: order no longer recorded */
	int warm_fd;         /* a warm stage's socket: the handoff goes there */
	const char *handoff;
	size_t ho_len, ho_off;
	bool handed_over;    /* all of the handoff was written (or none was due) */
} run;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Appends n to the chunk list; past CR_MAX_CHUNKS entries only a `last`
 * (finish's remainders) is taken. */
static void push_chunk(run *r, int32_t n, bool last)
{
	if (!last && r->chunks_full)
		return;
	if (r->nchunks && ((r->chunks[r->nchunks - 1] > 0) == (n > 0)) &&
	    (int64_t)r->chunks[r->nchunks - 1] + n < INT32_MAX &&
	    (int64_t)r->chunks[r->nchunks - 1] + n > -INT32_MAX) {
		r->chunks[r->nchunks - 1] += n;
		return;
	}
	if (!last && r->nchunks >= CR_MAX_CHUNKS) {
		r->chunks_full = true;
		return;
	}
	if (r->nchunks == r->chunks_alloc) {
		size_t na = r->chunks_alloc ? r->chunks_alloc * 2 : 16;
		int32_t *c = realloc(r->chunks, na * sizeof *c);
		if (!c) {
			r->oom_chunks = true;
			return;
		}
		r->chunks = c;
		r->chunks_alloc = na;
	}
	r->chunks[r->nchunks++] = n;
}

static void add_chunk(run *r, int32_t n)
{
	push_chunk(r, n, false);
}

/* Once the order stopped being recorded: what the chunks do not cover,
 * stdout's rest then stderr's, so that they add up to both streams. */
static void close_chunks(run *r)
{
	int64_t left[2] = { (int64_t)r->out.len, (int64_t)r->err.len };
	for (size_t i = 0; i < r->nchunks; i++)
		if (r->chunks[i] > 0)
			left[0] -= r->chunks[i];
		else
			left[1] += r->chunks[i];
	for (int s = 0; s < 2; s++)
		while (left[s] > 0 && !r->oom_chunks) {
			int32_t n = left[s] < INT32_MAX ? (int32_t)left[s] : INT32_MAX;
			push_chunk(r, s ? -n : n, true);
			left[s] -= n;
		}
}

/* SIGPIPE is blocked on this thread while a stage runs; a write to a
 * closed pipe leaves one pending here, which we take so it never fires. */
static void eat_sigpipe(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
		;
}

static void request_stop(run *r, int why)
{
	if (r->stop)
		return;
	r->stop = why;
	r->stop_at = cr_now_ms();
	if (r->ctl_fd >= 0 && write(r->ctl_fd, "k", 1) < 0)
		eat_sigpipe(); /* the keeper is gone already: its report or EOF comes */
}

/* Keeps what fits under the cap; true when the stream stays open. */
static bool keep_output(run *r, stream *s, const char *p, size_t n, bool is_out)
{
	int64_t capb = r->spec->lim->output_bytes;
	size_t room = capb < 0 ? n : (size_t)capb > s->len ? (size_t)capb - s->len : 0;
	size_t keep = n < room ? n : room;
	if (keep) {
		if (s->len + keep > s->cap_alloc) {
			size_t na = s->cap_alloc ? s->cap_alloc : 4096;
			while (na < s->len + keep)
				na *= 2;
			char *b = realloc(s->buf, na);
			if (!b) {
				r->oom_chunks = true;
				request_stop(r, STOP_OUTPUT);
				return false;
			}
			s->buf = b;
			s->cap_alloc = na;
		}
		memcpy(s->buf + s->len, p, keep);
		s->len += keep;
		add_chunk(r, is_out ? (int32_t)keep : -(int32_t)keep);
	}
	if (keep < n) {
		s->truncated = true;
		request_stop(r, STOP_OUTPUT);
	}
	return true;
}

/* Reads what is there; false at EOF or error (the fd is then closed). */
static bool read_stream(run *r, stream *s, bool is_out)
{
	static __thread char tmp[READ_CHUNK];
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(s->fd, tmp, sizeof tmp);
		if (n > 0) {
			keep_output(r, s, tmp, (size_t)n, is_out);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		close_fd(&s->fd);
		return false;
	}
	return true;
}

static void write_stdin(run *r)
{
	const px_stage_spec *sp = r->spec;
	while (r->in_off < sp->stdin_len) {
		ssize_t n = write(r->in_fd, sp->stdin_data + r->in_off, sp->stdin_len - r->in_off);
		if (n > 0) {
			r->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		eat_sigpipe();
		break; /* EPIPE: the program closed its stdin, fine */
	}
	close_fd(&r->in_fd); /* all written, or no reader: EOF */
}

static void read_report(run *r)
{
	ssize_t n = read(r->report_fd, &r->rep, sizeof r->rep);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	r->have_report = n == (ssize_t)sizeof r->rep;
	close_fd(&r->report_fd);
}

static int poll_timeout(run *r, int64_t deadline, bool cpu_tick)
{
	int64_t now = cr_now_ms(), t = -1;
	if (r->stop)
		t = r->stop_at + KEEPER_GRACE_MS - now;
	else if (deadline >= 0)
		t = deadline - now;
	if (cpu_tick && !r->stop && (t < 0 || t > CPU_TICK_MS))
		t = CPU_TICK_MS;
	return t < 0 ? (r->stop || deadline >= 0 ? 0 : -1) : (int)t;
}

static void check_limits(run *r, int64_t deadline, bool cpu_tick, pid_t keeper)
{
	int64_t now = cr_now_ms();
	if (!r->stop && deadline >= 0 && now >= deadline)
		request_stop(r, STOP_WALL);
	if (!r->stop && cpu_tick) {
		int64_t ns = px_cg_cpu_ns(&r->cg);
		if (ns >= 0 && ns / 1000000 >= r->spec->lim->cpu_ms)
			request_stop(r, STOP_CPU);
	}
	if (!r->stop && px_slot_cancelled(r->slot))
		request_stop(r, STOP_CANCEL);
	if (r->stop && now >= r->stop_at + KEEPER_GRACE_MS)
		kill(keeper, SIGKILL);
}

static void write_handoff(run *r);

static void loop(run *r, pid_t keeper, int64_t deadline, bool cpu_tick)
{
	while (r->report_fd >= 0) {
		struct pollfd pf[6];
		int n = 0, iout = -1, ierr = -1, iin = -1, iwarm = -1;
		pf[n++] = (struct pollfd){ r->report_fd, POLLIN, 0 };
		pf[n++] = (struct pollfd){ r->slot->wake_fd, POLLIN, 0 };
		if (r->out.fd >= 0)
			iout = n, pf[n++] = (struct pollfd){ r->out.fd, POLLIN, 0 };
		if (r->err.fd >= 0)
			ierr = n, pf[n++] = (struct pollfd){ r->err.fd, POLLIN, 0 };
		if (r->in_fd >= 0)
			iin = n, pf[n++] = (struct pollfd){ r->in_fd, POLLOUT, 0 };
		if (r->warm_fd >= 0)
			iwarm = n, pf[n++] = (struct pollfd){ r->warm_fd, POLLOUT, 0 };
		int rc = poll(pf, (nfds_t)n, poll_timeout(r, deadline, cpu_tick));
		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0) {
			if (iout >= 0 && pf[iout].revents)
				read_stream(r, &r->out, true);
			if (ierr >= 0 && pf[ierr].revents)
				read_stream(r, &r->err, false);
			if (iin >= 0 && pf[iin].revents)
				write_stdin(r);
			if (iwarm >= 0 && pf[iwarm].revents)
				write_handoff(r);
			if (pf[1].revents) {
				uint64_t v;
				if (read(r->slot->wake_fd, &v, sizeof v) < 0) {
					/* EAGAIN: another reader took it; the flag is what counts */
				}
			}
			if (pf[0].revents)
				read_report(r);
		}
		check_limits(r, deadline, cpu_tick, keeper);
	}
}

/* The tree is dead: take what is left in the pipes, without waiting. */
static void drain(run *r)
{
	for (int i = 0; i < 64 && (r->out.fd >= 0 || r->err.fd >= 0); i++) {
		bool more = false;
		if (r->out.fd >= 0 && read_stream(r, &r->out, true) && r->out.fd >= 0)
			more = true;
		if (r->err.fd >= 0 && read_stream(r, &r->err, false) && r->err.fd >= 0)
			more = true;
		if (!more)
			break;
		/* an open, empty pipe: its writer leaked somewhere; stop here */
		struct pollfd pf[2] = { { r->out.fd, POLLIN, 0 }, { r->err.fd, POLLIN, 0 } };
		if (poll(pf, 2, 0) <= 0)
			break;
	}
}

static void add_rlimit(px_plan *p, int res, int64_t v)
{
	rlim_t l = v < 0 ? RLIM_INFINITY : (rlim_t)v;
	p->rlimits[p->nrlimits].res = res;
	p->rlimits[p->nrlimits].lim = (struct rlimit){ l, l };
	p->nrlimits++;
}

/* Memory without a memory cgroup: private mappings (RLIMIT_DATA; not AS,
 * V8 reserves far more than it uses) and the main thread's stack, which
 * DATA does not count, both at most bytes. Shared memory: sandbox.c
 * (deny_shared_memory). */
static void plan_memory(px_plan *p, int64_t bytes)
{
	add_rlimit(p, RLIMIT_DATA, bytes);
	struct rlimit st;
	rlim_t b = (rlim_t)bytes;
	if (getrlimit(RLIMIT_STACK, &st) < 0)
		st.rlim_cur = st.rlim_max = RLIM_INFINITY;
	p->rlimits[p->nrlimits].res = RLIMIT_STACK;
	p->rlimits[p->nrlimits].lim = (struct rlimit){ st.rlim_cur < b ? st.rlim_cur : b,
	                                               st.rlim_max < b ? st.rlim_max : b };
	p->nrlimits++;
}

void px_plan_limits(px_plan *p, const cr_limits *lim)
{
	if (lim->cpu_ms >= 0) {
		/* seconds; the cgroup poll is precise, this is the backstop */
		rlim_t s = (rlim_t)((lim->cpu_ms + 999) / 1000);
		if (s < 1)
			s = 1;
		p->rlimits[p->nrlimits].res = RLIMIT_CPU;
		p->rlimits[p->nrlimits].lim = (struct rlimit){ s, s + 1 };
		p->nrlimits++;
	}
	if (lim->file_bytes >= 0)
		add_rlimit(p, RLIMIT_FSIZE, lim->file_bytes);
	if (lim->pids >= 0 && px_w.uid_drop) /* per real uid: ours alone */
		add_rlimit(p, RLIMIT_NPROC, lim->pids);
	else if (lim->pids >= 0 && px_sandbox_nproc()) /* per user namespace: the run's */
		add_rlimit(p, RLIMIT_NPROC, lim->pids + 1 + p->zygote); /* + keeper, runner */
	if (lim->memory_bytes >= 0 && !px_cg_has_memory())
		plan_memory(p, lim->memory_bytes);
	add_rlimit(p, RLIMIT_CORE, 0);
	add_rlimit(p, RLIMIT_NOFILE, 4096);
}

static int make_pipes(int fds[5][2], char *err, size_t errlen)
{
	for (int i = 0; i < 5; i++)
		fds[i][0] = fds[i][1] = -1;
	for (int i = 0; i < 5; i++)
		if (pipe2(fds[i], O_CLOEXEC) < 0) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			return -1;
		}
	return 0;
}

static void decide(run *r, cr_stage *st, const px_cg_usage *u)
{
	const px_report *rep = &r->rep;
	const cr_limits *lim = r->spec->lim;
	int ws = rep->main_status;
	st->exit_code = -1;
	st->signal = 0;
	if (rep->main_reaped && WIFEXITED(ws))
		st->exit_code = WEXITSTATUS(ws);
	else if (rep->main_reaped && WIFSIGNALED(ws))
		st->signal = WTERMSIG(ws);
	else
		st->signal = SIGKILL; /* never reaped: the keeper was killed */
	bool cpu_over = lim->cpu_ms >= 0 && st->cpu_ms >= lim->cpu_ms;
	if (r->stop == STOP_OUTPUT)
		st->status = CR_ST_OUTPUT;
	else if (u->oom_killed)
		st->status = CR_ST_MEMORY;
	else if (r->stop == STOP_WALL || r->stop == STOP_CPU || st->signal == SIGXCPU ||
	         (st->signal == SIGKILL && cpu_over))
		st->status = CR_ST_TIMEOUT;
	else if (st->signal)
		st->status = CR_ST_SIGNAL;
	else
		st->status = st->exit_code == 0 ? CR_ST_OK : CR_ST_EXIT;
}

/* A keeper that reported has killed and reaped the whole tree: what is
 * left (its exit, which tears the namespaces down, and the cgroup's
 * reset) is the slot's to do after the reply (px_slot_tidy). */
static void defer(run *r, pid_t keeper)
{
	px_slot *s = r->slot;
	px_slot_tidy(s); /* (nothing is pending: launch tidied) */
	s->tidy.keeper = keeper;
	s->tidy.cg = r->cg;
	s->tidy.has_cg = true;
}

void px_slot_tidy(px_slot *s)
{
	if (s->tidy.keeper > 0) {
		int ks;
		while (waitpid(s->tidy.keeper, &ks, 0) < 0 && errno == EINTR)
			;
		s->tidy.keeper = -1;
	}
	if (s->tidy.has_cg)
		px_cg_destroy(&s->tidy.cg);
	s->tidy.has_cg = false;
}

static int finish(run *r, pid_t keeper, int64_t start, cr_stage *st, bool *cancelled,
                  char *err, size_t errlen)
{
	int ks = 0;
	if (!r->have_report)
		while (waitpid(keeper, &ks, 0) < 0 && errno == EINTR)
			;
	drain(r);
	px_cg_usage u;
	px_cg_read_usage(&r->cg, &u);
	if (r->have_report)
		defer(r, keeper);
	else
		px_cg_destroy(&r->cg);
	st->wall_ms = cr_now_ms() - start;
	st->cpu_ms = u.cpu_ns >= 0 ? u.cpu_ns / 1000000 : r->rep.cpu_us / 1000;
	st->memory_bytes = u.mem_peak >= 0 ? u.mem_peak : r->rep.maxrss_kb * 1024;
	st->out = r->out.buf, st->out_len = r->out.len, st->out_truncated = r->out.truncated;
	st->err = r->err.buf, st->err_len = r->err.len, st->err_truncated = r->err.truncated;
	if (r->chunks_full)
		close_chunks(r);
	st->chunks = r->chunks, st->nchunks = r->nchunks;
	r->out.buf = r->err.buf = NULL;
	r->chunks = NULL;
	*cancelled = r->stop == STOP_CANCEL;
	if (!r->have_report) {
		snprintf(err, errlen, "the stage's keeper failed (%s %d)",
		         WIFSIGNALED(ks) ? "signal" : "exit",
		         WIFSIGNALED(ks) ? WTERMSIG(ks) : WEXITSTATUS(ks));
		return -1;
	}
	if (r->rep.exec_errno) {
		snprintf(err, errlen, "cannot execute %s: %s", r->spec->exe,
		         strerror(r->rep.exec_errno));
		return -1;
	}
	if (r->rep.setup_errno) {
		snprintf(err, errlen, "stage setup failed at %s: %s",
		         px_step_name(r->rep.setup_step), strerror(r->rep.setup_errno));
		return -1;
	}
	decide(r, st, &u);
	return 0;
}

static void close_launch_fds(px_launch *l)
{
	close_fd(&l->in_fd);
	close_fd(&l->out_fd);
	close_fd(&l->err_fd);
	close_fd(&l->ctl_fd);
	close_fd(&l->report_fd);
	close_fd(&l->warm_fd);
}

int px_stage_launch(px_slot *s, const px_stage_spec *spec, bool warm, px_launch *l,
                    char *err, size_t errlen)
{
	px_slot_tidy(s); /* the slot's cgroup is reused: the last run's reset first */
	memset(l, 0, sizeof *l);
	l->in_fd = l->out_fd = l->err_fd = l->ctl_fd = l->report_fd = l->warm_fd = -1;
	l->keeper = -1;
	int fds[5][2]; /* stdin, stdout, stderr, ctl, report */
	int wsock[2] = { -1, -1 };
	if (make_pipes(fds, err, errlen) < 0)
		goto fail;
	if (warm && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, wsock) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	if (px_cg_create(&l->cg, s->index, spec->lim, err, errlen) < 0)
		goto fail;
	px_plan p = {
		.exe = spec->exe, .argv = spec->argv, .envp = spec->envp,
		.workdir = spec->workdir,
		.uid = px_slot_uid(s->index),
		.gid = px_slot_gid(s->index),
		.uid_kill = px_w.uid_drop,
		.stdin_fd = fds[0][0], .stdout_fd = fds[1][1], .stderr_fd = fds[2][1],
		.ctl_fd = fds[3][0], .report_fd = fds[4][1], .warm_fd = wsock[1],
		.cg = px_cg_mode() != PX_CG_NONE || l->cg.unified[0] ? &l->cg : NULL,
		.sb = px_sandbox_for(s->index),
		.zygote = spec->zygote,
		.zygote_sock = spec->zygote ? px_zygote_sock() : -1,
		.zygote_spec = spec->zygote ? spec->zygote_spec : -1,
		.zygote_bpf = spec->zygote ? px_zygote_bpf() : -1,
	};
	l->has_cg = p.cg != NULL;
	px_plan_limits(&p, spec->lim);
	l->keeper = px_keeper_start(&p);
	if (l->keeper < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		px_cg_destroy(&l->cg);
		goto fail;
	}
	for (int i = 0; i < 5; i++) /* close the child's ends */
		close(i == 0 || i == 3 ? fds[i][0] : fds[i][1]);
	if (wsock[1] >= 0)
		close(wsock[1]);
	l->in_fd = fds[0][1], l->out_fd = fds[1][0], l->err_fd = fds[2][0];
	l->ctl_fd = fds[3][1], l->report_fd = fds[4][0], l->warm_fd = wsock[0];
	int nb[] = { l->in_fd, l->out_fd, l->err_fd, l->report_fd, l->warm_fd };
	for (int i = 0; i < 5; i++)
		if (nb[i] >= 0)
			fcntl(nb[i], F_SETFL, O_NONBLOCK);
	return 0;
fail:
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 2; j++)
			if (fds[i][j] >= 0)
				close(fds[i][j]);
	if (wsock[0] >= 0)
		close(wsock[0]), close(wsock[1]);
	return -1;
}

void px_stage_abandon(px_launch *l)
{
	if (l->keeper > 0) {
		/* closing ctl is "stop now" for the keeper: it kills the tree */
		close_fd(&l->ctl_fd);
		int st;
		while (waitpid(l->keeper, &st, 0) < 0 && errno == EINTR)
			;
		l->keeper = -1;
		px_cg_destroy(&l->cg);
	}
	close_launch_fds(l);
}

/* Moves the handoff into the warm process's socket; at the end, EOF. */
static void write_handoff(run *r)
{
	while (r->ho_off < r->ho_len) {
		ssize_t n = send(r->warm_fd, r->handoff + r->ho_off, r->ho_len - r->ho_off,
		                 MSG_NOSIGNAL);
		if (n > 0) {
			r->ho_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		break; /* the warm process is gone: its report comes */
	}
	if (r->ho_off == r->ho_len)
		r->handed_over = true;
	shutdown(r->warm_fd, SHUT_WR);
	close_fd(&r->warm_fd);
}

/* What the warm process wrote before it was handed anything (it should
 * write nothing) is not the user's output. */
static void discard_pending(int fd)
{
	char buf[4096];
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0)
		;
}

int px_stage_finish(px_slot *s, const px_stage_spec *spec, px_launch *l,
                    const char *handoff, size_t handoff_len, cr_stage *st,
                    bool *cancelled, bool *lost, char *err, size_t errlen)
{
	memset(st, 0, sizeof *st);
	st->exit_code = -1;
	*cancelled = false;
	if (lost)
		*lost = false;
	sigset_t pipe_set, old_mask;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
	run r = { .spec = spec, .slot = s, .cg = l->cg, .handoff = handoff,
	          .ho_len = handoff_len, .handed_over = handoff == NULL };
	r.in_fd = l->in_fd, r.out.fd = l->out_fd, r.err.fd = l->err_fd;
	r.ctl_fd = l->ctl_fd, r.report_fd = l->report_fd, r.warm_fd = l->warm_fd;
	l->in_fd = l->out_fd = l->err_fd = l->ctl_fd = l->report_fd = l->warm_fd = -1;
	pid_t keeper = l->keeper;
	l->keeper = -1;
	if (handoff) {
		discard_pending(r.out.fd);
		discard_pending(r.err.fd);
	} else {
		close_fd(&r.warm_fd);
	}
	if (spec->stdin_len == 0)
		close_fd(&r.in_fd);
	int64_t start = cr_now_ms();
	int64_t deadline = spec->lim->wall_ms >= 0 ? start + spec->lim->wall_ms : -1;
	bool cpu_tick = spec->lim->cpu_ms >= 0 && px_cg_has_cpu() && l->has_cg;
	loop(&r, keeper, deadline, cpu_tick);
	close_fd(&r.ctl_fd);
	close_fd(&r.in_fd);
	close_fd(&r.warm_fd);
	int rc = finish(&r, keeper, start, st, cancelled, err, errlen);
	if (lost && !r.handed_over) {
		*lost = true; /* died before it had the invocation: nothing of it ran */
		cr_stage_free(st);
		memset(st, 0, sizeof *st);
	}
	close_fd(&r.out.fd);
	close_fd(&r.err.fd);
	close_fd(&r.report_fd);
	free(r.out.buf);
	free(r.err.buf);
	free(r.chunks);
	eat_sigpipe();
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return rc;
}

int px_stage_run(px_slot *s, const px_stage_spec *spec, cr_stage *st, bool *cancelled,
                 char *err, size_t errlen)
{
	px_launch l;
	*cancelled = false;
	if (px_stage_launch(s, spec, false, &l, err, errlen) < 0)
		return -1;
	return px_stage_finish(s, spec, &l, NULL, 0, st, cancelled, NULL, err, errlen);
}
