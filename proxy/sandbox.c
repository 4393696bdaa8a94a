/*
 * sandbox.c — namespaces, filesystem view, seccomp and capabilities.
 *
 * Levels (weakest first; px_isolation() says which is in force and why):
 *   none        rlimits; uid per slot and cgroups when we are root
 *   seccomp     + a seccomp filter, every capability dropped (bounding
 *               set included), no_new_privs
 *   namespaces  + new pid, mount, network, ipc and uts namespaces per
 *               stage; as non-root through a user namespace
 *   full        namespaces + uid per slot + cgroup memory and pids limits
 * At px_init each level is tried for real, from the best down (a probe
 * keeper builds the whole sandbox once), unless the operator asked for
 * one level exactly; below the operator's minimum px_init fails.
 *
 * The keeper is created by clone() with the new namespaces, so it is
 * PID 1 of the stage's pid namespace: kill(-1) from it reaches every
 * process of the invocation and nothing else, and when it exits the
 * kernel kills whatever is left. Before forking the stage it builds the
 * stage's root on a small tmpfs and pivot_roots into it:
 *   /usr /etc /bin /lib* /sbin /opt  host's, read-only, nosuid, nodev
 *                                    (symlinks such as /bin -> usr/bin
 *                                    are recreated as symlinks)
 *   /etc/shadow, /etc/gshadow, /etc/ssh ...  masked (/dev/null, empty tmpfs)
 *   /runtime                         the runtime dir, read-only: a copy
 *                                    on a tmpfs (runtime_at says why)
 *   /box                             the work dir, read-write: the same
 *                                    path for every run, slot and host
 *   /tmp                             fresh tmpfs of tmp_bytes, 1777
 *   /dev                             null zero full random urandom tty,
 *                                    fd/stdin/stdout/stderr links, /dev/shm
 *   /proc                            fresh: only the invocation's processes
 * and nothing else: not /root, /home, /var, /run, /srv, other work dirs,
 * the processor's state dir or /sys. The network namespace has only lo
 * (brought up, so a program may talk to itself); the hostname is
 * "corral".
 *
 * The seccomp filter (built once with libseccomp, for the native
 * architecture only: a syscall of another ABI the kernel would run, x86's
 * int 0x80 or x32 on x86_64, gets ENOSYS, which closes the compat entry
 * points and makes the filter a third as long; and as a binary tree:
 * attaching it, once per run, costs the kernel a pass over every syscall
 * number, measured 350 µs for the old filter, 110 µs for this one)
 * answers EPERM to what user code never needs: ptrace and
 * process_vm_*, mount family and pivot_root, keyrings, bpf, perf, module,
 * kexec, reboot, swap, clock and time setting, namespace creation
 * (unshare, setns, clone with CLONE_NEW*; clone3 gets ENOSYS so libc
 * falls back to clone, whose flags we can see), io_uring, userfaultfd,
 * open_by_handle_at, TIOCSTI, acct, quotactl, syslog, personality
 * changes. TIOCSTI is matched on the low 32 bits of ioctl's request, as
 * the kernel reads it (an unsigned int). socket and socketpair create
 * only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK with NETLINK_ROUTE
 * (getifaddrs, if_nameindex: node's os.networkInterfaces, ruby's
 * Socket.ip_address_list fail without it); any other domain gets
 * EAFNOSUPPORT, as from a kernel without that family (AF_VSOCK reaches a
 * VM's host, no network namespace covers it; AF_PACKET, AF_ALG ...), and
 * another netlink protocol EPROTONOSUPPORT. These compare all 64 bits: a
 * domain or protocol with upper bits set is refused (libc never passes
 * one), so the int the kernel reads cannot differ from what was checked.
 * Without a memory cgroup the filter also refuses shared anonymous
 * memory, which nothing else would count (deny_shared_memory), and the
 * root's /dev/zero is the host's /dev/full. At init the probe also finds
 * whether RLIMIT_NPROC counts per user namespace (px_sandbox_nproc).
 * Everything after fork here is async-signal-safe: all strings and the
 * BPF program are prepared at px_init.
 *
 * A root worker builds the part of the stage's root (above) that is the
 * same for every run once per slot, in the forker (px_sandbox_prebuild): a mount
 * namespace whose root it is, with /dev read-only. A keeper then joins a
 * private copy of it and mounts only /proc, /tmp, /dev/shm and its work
 * dir at /box (run_mounts): 4 mounts instead of 35, and fewer to tear
 * down when it exits. Without a forker, or through a user namespace, the
 * keeper builds it all itself (build_root); both share common_root and
 * run_mounts.
 *
 * What a run sees of the host (docs/isolation.md): /box and /runtime
 * whatever the host's layout; a keeper blanks its copy of the
 * processor's argv and environment (hide_processor), since it is PID 1
 * of the run's pid namespace; mountinfo's root field of /box is the work
 * dir's path within its filesystem (nothing of the host with the slot's
 * work-dir tmpfs), which no mount trick changes.
 */
#include "sandbox.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <dirent.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
#define MAX_BINDS 16
#define MAX_MASKS 16
#define RT_MAX_FILES 256        /* a runtime dir bigger than these is bound, */
#define RT_MAX_BYTES (4 << 20)  /* not copied (rt_prepare) */

static const char *const level_names[PX_NLEVELS] = { "none", "seccomp", "namespaces", "full" };

const char *px_level_name(int level)
{
	return level >= 0 && level < PX_NLEVELS ? level_names[level] : "?";
}

int px_level_parse(const char *name)
{
	for (int i = 0; i < PX_NLEVELS; i++)
		if (!strcmp(name, level_names[i]))
			return i;
	return -1;
}

/* A host path shown in the stage's root. */
typedef struct hostpath {
	char path[PX_PATH];
	char link[PX_PATH]; /* non-empty: a symlink with this target */
	unsigned long locked; /* mount flags the remount must keep */
	bool dir;
} hostpath;

/* One entry of the runtime dir, read at init (rt_load). */
typedef struct rt_file {
	char path[PX_PATH]; /* below the runtime dir, starting with '/' */
	char kind;          /* 'd', 'f' or 'l' (data: the link's target) */
	mode_t mode;
	char *data;
	size_t len;
} rt_file;

static struct {
	int level;
	bool seccomp_ok, ns_ok, userns;
	struct sock_filter *filter;
	size_t nfilter;
	hostpath binds[MAX_BINDS];
	int nbinds;
	hostpath masks[MAX_MASKS];
	int nmasks;
	unsigned long rt_locked, wd_locked;
	rt_file *rt;   /* the runtime dir's copy (rt_load); NULL: bind it */
	int nrt;
	size_t rt_bytes;
	unsigned long arg_start, arg_end, env_start, env_end; /* ours (hide_processor) */
	px_sandbox *slots;
	int nslots;
	char why[256]; /* why the next level up is not in force */
	bool shm_rules;  /* no memory cgroup: shared memory refused (deny_shared_memory) */
	bool nproc_ns;   /* RLIMIT_NPROC counts per user namespace (probe) */
} sbx;

/* ---- seccomp ------------------------------------------------------------- */

static const char *const denied[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	"mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig",
	"fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	"add_key", "request_key", "keyctl", "bpf", "perf_event_open",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
	"sethostname", "setdomainname", "unshare", "setns",
	"io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
	"open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
	"iopl", "ioperm", "vhangup", "nfsservctl", "uselib", "ustat", "sysfs",
	"vm86", "vm86old", "_sysctl", "personality", "landlock_create_ruleset",
	"move_pages", "migrate_pages",
};

static int add_rule(scmp_filter_ctx ctx, const char *name, uint32_t action,
                    unsigned n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a syscall anywhere we filter */
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	return rc == -EDOM || rc == -EFAULT ? 0 : rc; /* absent on some arch */
}

/* The socket families a run may create (socket, socketpair): ascending,
 * the last the largest. AF_NETLINK for NETLINK_ROUTE only. */
static const unsigned long families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };
#define LAST_FAMILY (sizeof families / sizeof *families - 1)

static bool family_allowed(unsigned long f)
{
	for (size_t i = 0; i <= LAST_FAMILY; i++)
		if (families[i] == f)
			return true;
	return false;
}

/* EAFNOSUPPORT for any domain but families[], compared on all 64 bits:
 * the kernel reads an int, but a value with upper bits set is refused
 * whatever its lower half says (libc never passes one). The rules do not
 * overlap: each domain value meets at most one. */
static int deny_families(scmp_filter_ctx ctx, const char *call)
{
	const uint32_t nosup = SCMP_ACT_ERRNO(EAFNOSUPPORT);
	int rc = 0;
	for (unsigned long f = 0; rc == 0 && f < families[LAST_FAMILY]; f++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, f);
		if (!family_allowed(f))
			rc = add_rule(ctx, call, nosup, 1, &c);
	}
	struct scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, families[LAST_FAMILY]);
	struct scmp_arg_cmp nl[2] = { SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
	                              SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE) };
	if (rc == 0)
		rc = add_rule(ctx, call, nosup, 1, &above);
	if (rc == 0) /* what a kernel without that netlink protocol says */
		rc = add_rule(ctx, call, SCMP_ACT_ERRNO(EPROTONOSUPPORT), 2, nl);
	return rc;
}

/* Without a memory cgroup nothing counts shared memory (RLIMIT_DATA
 * counts private mappings only), so what would make it unbounded is
 * refused: anonymous shared mappings (MAP_SHARED or MAP_SHARED_VALIDATE
 * with MAP_ANONYMOUS) get ENOMEM, memfd_create, memfd_secret, SysV shmget
 * and msgget ENOSYS, as from a kernel without them. Shared memory stays
 * possible in files of /dev/shm and /tmp, size-capped tmpfs at the
 * namespace levels, where /dev/zero (whose shared mapping is anonymous
 * memory) is /dev/full (make_dev). */
static int deny_shared_memory(scmp_filter_ctx ctx)
{
	const unsigned long mask = MAP_ANONYMOUS | MAP_SHARED_VALIDATE; /* 0x20 | 0x03 */
	struct scmp_arg_cmp c[2] = {
		SCMP_A3(SCMP_CMP_MASKED_EQ, mask, MAP_ANONYMOUS | MAP_SHARED),
		SCMP_A3(SCMP_CMP_MASKED_EQ, mask, MAP_ANONYMOUS | MAP_SHARED_VALIDATE) };
	static const char *const calls[] = { "memfd_create", "memfd_secret", "shmget", "msgget" };
	int rc = 0;
	for (int i = 0; rc == 0 && i < 2; i++) {
		rc = add_rule(ctx, "mmap", SCMP_ACT_ERRNO(ENOMEM), 1, &c[i]);
		if (rc == 0)
			rc = add_rule(ctx, "mmap2", SCMP_ACT_ERRNO(ENOMEM), 1, &c[i]);
	}
	for (size_t i = 0; rc == 0 && i < sizeof calls / sizeof *calls; i++)
		rc = add_rule(ctx, calls[i], SCMP_ACT_ERRNO(ENOSYS), 0, NULL);
	return rc;
}

static int build_filter(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; rc == 0 && i < sizeof denied / sizeof *denied; i++)
		rc = add_rule(ctx, denied[i], SCMP_ACT_ERRNO(EPERM), 0, NULL);
	/* personality(PER_LINUX) and the query are harmless and used by libc */
	static const unsigned long ns_bits[] = { CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID,
		CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, 0x80 /* NEWTIME */ };
	for (size_t i = 0; rc == 0 && i < sizeof ns_bits / sizeof *ns_bits; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_bits[i], ns_bits[i]);
		rc = add_rule(ctx, "clone", SCMP_ACT_ERRNO(EPERM), 1, &c);
	}
	if (rc == 0)
		rc = add_rule(ctx, "clone3", SCMP_ACT_ERRNO(ENOSYS), 0, NULL);
	/* ioctl's cmd is an unsigned int: the kernel ignores the upper half */
	struct scmp_arg_cmp sti = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCSTI);
	if (rc == 0)
		rc = add_rule(ctx, "ioctl", SCMP_ACT_ERRNO(EPERM), 1, &sti);
	if (rc == 0)
		rc = deny_families(ctx, "socket");
	if (rc == 0)
		rc = deny_families(ctx, "socketpair");
	if (rc == 0 && sbx.shm_rules)
		rc = deny_shared_memory(ctx);
	int fd = rc == 0 ? memfd_create("corral-seccomp", MFD_CLOEXEC) : -1;
	if (rc != 0 || fd < 0 || seccomp_export_bpf(ctx, fd) != 0) {
		snprintf(err, errlen, "cannot build the seccomp filter: %s",
		         strerror(rc ? -rc : errno));
		if (fd >= 0)
			close(fd);
		seccomp_release(ctx);
		return -1;
	}
	seccomp_release(ctx);
	off_t size = lseek(fd, 0, SEEK_END);
	sbx.filter = size > 0 ? malloc((size_t)size) : NULL;
	if (!sbx.filter || pread(fd, sbx.filter, (size_t)size, 0) != size) {
		snprintf(err, errlen, "cannot read the seccomp filter back");
		close(fd);
		return -1;
	}
	close(fd);
	sbx.nfilter = (size_t)size / sizeof(struct sock_filter);
	return 0;
}

/* ---- what the root shows, found at init ---------------------------------- */

static unsigned long locked_flags(const char *path)
{
	struct statvfs v;
	unsigned long f = 0;
	if (statvfs(path, &v) < 0)
		return 0;
	if (v.f_flag & ST_NOSUID) f |= MS_NOSUID;
	if (v.f_flag & ST_NODEV) f |= MS_NODEV;
	if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
	if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
	if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
	if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
	return f;
}

static void add_bind(hostpath *list, int *n, int max, const char *path)
{
	struct stat st;
	if (*n >= max || lstat(path, &st) < 0)
		return;
	hostpath *b = &list[*n];
	memset(b, 0, sizeof *b);
	snprintf(b->path, sizeof b->path, "%s", path);
	if (S_ISLNK(st.st_mode)) {
		ssize_t l = readlink(path, b->link, sizeof b->link - 1);
		if (l <= 0)
			return;
		b->link[l] = '\0';
	} else {
		b->dir = S_ISDIR(st.st_mode);
		b->locked = locked_flags(path);
	}
	(*n)++;
}

static void find_binds(void)
{
	static const char *const sys[] = { "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32",
		"/lib64", "/libx32", "/opt" };
	static const char *const secret[] = { "/etc/shadow", "/etc/shadow-", "/etc/gshadow",
		"/etc/gshadow-", "/etc/ssh", "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d",
		"/etc/security/opasswd", "/etc/corral", "/etc/machine-id", "/etc/s6" };
	sbx.nbinds = sbx.nmasks = 0;
	for (size_t i = 0; i < sizeof sys / sizeof *sys; i++)
		add_bind(sbx.binds, &sbx.nbinds, MAX_BINDS, sys[i]);
	for (size_t i = 0; i < sizeof secret / sizeof *secret; i++) {
		struct stat st;
		if (stat(secret[i], &st) == 0) /* a symlink is masked at its target's kind */
			add_bind(sbx.masks, &sbx.nmasks, MAX_MASKS, secret[i]);
		if (sbx.nmasks && !sbx.masks[sbx.nmasks - 1].link[0] && S_ISDIR(st.st_mode))
			sbx.masks[sbx.nmasks - 1].dir = true;
	}
}

/* ---- the runtime dir's copy, read at init -------------------------------- */

static void rt_free(void)
{
	for (int i = 0; i < sbx.nrt; i++)
		free(sbx.rt[i].data);
	free(sbx.rt);
	sbx.rt = NULL;
	sbx.nrt = 0;
	sbx.rt_bytes = 0;
}

/* The content of a regular file or a link's target into f; -1 when it
 * cannot be read or the copy would pass RT_MAX_BYTES. */
static int rt_read(rt_file *f, const char *full, const struct stat *st)
{
	size_t n = (size_t)st->st_size;
	if (sbx.rt_bytes + n + 1 > RT_MAX_BYTES || !(f->data = malloc(n + 1)))
		return -1;
	sbx.rt_bytes += n + 1;
	if (f->kind == 'l') {
		ssize_t l = readlink(full, f->data, n + 1);
		if (l < 0 || (size_t)l > n)
			return -1;
		f->data[l] = '\0';
		return 0;
	}
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t r = fd >= 0 ? pread(fd, f->data, n, 0) : -1;
	if (fd >= 0)
		close(fd);
	f->len = n;
	return r == (ssize_t)n ? 0 : -1;
}

/* Appends dir's entries (rel: their path below the runtime dir), a
 * folder before what it holds; -1 when the dir is too big or unreadable. */
static int rt_load(const char *dir, const char *rel, int depth)
{
	DIR *d = depth < 16 ? opendir(dir) : NULL;
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char full[PX_PATH * 2];
		struct stat st;
		rt_file *f = &sbx.rt[sbx.nrt];
		if (sbx.nrt >= RT_MAX_FILES ||
		    (size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full ||
		    (size_t)snprintf(f->path, sizeof f->path, "%s/%s", rel, e->d_name) >=
		        sizeof f->path || lstat(full, &st) < 0) {
			rc = -1;
			break;
		}
		f->mode = st.st_mode & 07777;
		f->kind = S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' :
		          S_ISLNK(st.st_mode) ? 'l' : 0;
		if (!f->kind)
			continue; /* a fifo, socket or device: not part of a runtime */
		sbx.nrt++;
		rc = f->kind == 'd' ? rt_load(full, f->path, depth + 1) : rt_read(f, full, &st);
	}
	closedir(d);
	return rc;
}

/* Reads the runtime dir for copying; a bind of it when it is too big. */
static void rt_prepare(void)
{
	sbx.rt = calloc(RT_MAX_FILES, sizeof *sbx.rt);
	if (sbx.rt && rt_load(px_w.runtime_dir, "", 0) == 0)
		return;
	rt_free();
	cr_log("warn", "runtime dir bound, not copied: mountinfo shows its host path",
	       "max_files=%d max_bytes=%d", RT_MAX_FILES, RT_MAX_BYTES);
}

/* Where the kernel keeps our argv and environment strings
 * (/proc/self/stat fields 48-51): what /proc/PID/cmdline and environ
 * show, which hide_processor blanks in a keeper. */
static void find_arg_area(void)
{
	char buf[2048];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long v[4];
	for (int field = 2, i = 0; p && i < 4; field++) { /* p: before field "field" */
		p = strchr(p + 1, ' ');
		if (p && field + 1 >= 48)
			v[i++] = strtoul(p + 1, NULL, 10);
	}
	if (p && v[1] > v[0] && v[3] >= v[2])
		sbx.arg_start = v[0], sbx.arg_end = v[1], sbx.env_start = v[2], sbx.env_end = v[3];
}

/* ---- after fork: async-signal-safe helpers ------------------------------- */

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* dst = a + b; -1 (ENAMETOOLONG) when it does not fit */
static int cat2(char *dst, size_t len, const char *a, const char *b)
{
	size_t la = slen(a), lb = slen(b);
	if (la + lb + 1 > len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb + 1);
	return 0;
}

static char *utoa(char *buf, size_t len, unsigned long long v)
{
	char *p = buf + len - 1;
	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) && p > buf);
	return p;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, slen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)slen(s) ? 0 : -1;
}

/* mkdir -p of root+path (path absolute), dirs mode 0755. */
static int mkdirs(const char *root, const char *path, bool last_is_file)
{
	char p[PX_PATH * 2];
	if (cat2(p, sizeof p, root, path) < 0)
		return -1;
	size_t rl = slen(root);
	for (char *s = p + rl + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		int rc;
		if (c == '\0' && last_is_file) {
			int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			rc = fd < 0 ? -1 : close(fd);
		} else {
			rc = mkdir(p, 0755);
		}
		if (rc < 0 && errno != EEXIST)
			return -1;
		if (c == '\0')
			return 0;
		*s = c;
	}
}

/* Binds host path src at root+dst, read-only unless rw. */
static int bind_at(const char *root, const char *src, const char *dst, bool dir, bool rw,
                   unsigned long locked)
{
	char t[PX_PATH * 2];
	if (mkdirs(root, dst, !dir) < 0 || cat2(t, sizeof t, root, dst) < 0)
		return -1;
	if (mount(src, t, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	unsigned long f = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | locked;
	return mount(NULL, t, NULL, rw ? f : f | MS_RDONLY, NULL);
}

static int tmpfs_at(const char *root, const char *dst, const char *opts, unsigned long fl)
{
	char t[PX_PATH * 2];
	if (mkdirs(root, dst, false) < 0 || cat2(t, sizeof t, root, dst) < 0)
		return -1;
	return mount("tmpfs", t, "tmpfs", fl, opts);
}

static int make_dev(const char *root)
{
	static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full",
		"/dev/random", "/dev/urandom", "/dev/tty" };
	static const char *const links[][2] = { { "/proc/self/fd", "/dev/fd" },
		{ "/proc/self/fd/0", "/dev/stdin" }, { "/proc/self/fd/1", "/dev/stdout" },
		{ "/proc/self/fd/2", "/dev/stderr" } };
	if (tmpfs_at(root, "/dev", "mode=0755,size=64k", MS_NOSUID | MS_NOEXEC) < 0)
		return -1;
	for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
		char t[PX_PATH * 2];
		/* shm_rules: /dev/full reads zeros too, but cannot be mapped */
		const char *src = sbx.shm_rules && i == 1 ? "/dev/full" : nodes[i];
		if (mkdirs(root, nodes[i], true) < 0 || cat2(t, sizeof t, root, nodes[i]) < 0 ||
		    mount(src, t, NULL, MS_BIND, NULL) < 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		char t[PX_PATH * 2];
		if (cat2(t, sizeof t, root, links[i][1]) < 0 || symlink(links[i][0], t) < 0)
			return -1;
	}
	return mkdirs(root, "/dev/shm", false);
}

static int user_maps(const px_sandbox *sb)
{
	char line[64], num[24];
	if (write_file("/proc/self/setgroups", "deny") < 0)
		return -1;
	if (cat2(line, sizeof line, "0 ", utoa(num, sizeof num, (unsigned)sb->outer_gid)) < 0 ||
	    cat2(line, sizeof line, line, " 1") < 0 || write_file("/proc/self/gid_map", line) < 0)
		return -1;
	if (cat2(line, sizeof line, "0 ", utoa(num, sizeof num, (unsigned)sb->outer_uid)) < 0 ||
	    cat2(line, sizeof line, line, " 1") < 0 || write_file("/proc/self/uid_map", line) < 0)
		return -1;
	return 0;
}

static int lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* One entry of the runtime's copy at path t. */
static int rt_put(const rt_file *f, const char *t)
{
	if (f->kind == 'l')
		return symlink(f->data, t);
	if (f->kind == 'd')
		return mkdir(t, 0700) < 0 ? -1 : chmod(t, f->mode);
	int fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, f->data, f->len) < 0 || fchmod(fd, f->mode) < 0 ? -1 : 0;
	close(fd);
	return rc;
}

/* The runtime dir at r/runtime, read-only: a copy on a tmpfs of its
 * own (read at init: rt_prepare), since a bind's line in mountinfo names
 * its source's path on the host's filesystem; a bind when it was too
 * big to copy. */
static int runtime_at(const char *r)
{
	char t[PX_PATH * 3], top[PX_PATH * 2], opts[64], num[24];
	if (!sbx.rt)
		return bind_at(r, px_w.runtime_dir, PX_RUNTIME, true, false, sbx.rt_locked);
	unsigned long long size = sbx.rt_bytes + ((unsigned long long)sbx.nrt + 16) * 4096;
	if (cat2(opts, sizeof opts, "mode=0755,size=", utoa(num, sizeof num, size)) < 0 ||
	    tmpfs_at(r, PX_RUNTIME, opts, MS_NOSUID | MS_NODEV) < 0 ||
	    cat2(top, sizeof top, r, PX_RUNTIME) < 0)
		return -1;
	for (int i = 0; i < sbx.nrt; i++)
		if (cat2(t, sizeof t, top, sbx.rt[i].path) < 0 || rt_put(&sbx.rt[i], t) < 0)
			return -1;
	return mount(NULL, top, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
	             NULL);
}

/* The part of a root that is the same for every run: a small tmpfs at r
 * with the host's read-only binds and symlinks, the masks, /dev (its
 * nodes bound, /dev/shm a mount point) and /proc and /tmp mount points. */
static int common_root(const char *r)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", r, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		return -1;
	for (int i = 0; i < sbx.nbinds; i++) {
		const hostpath *b = &sbx.binds[i];
		char t[PX_PATH * 2];
		if (b->link[0]) {
			if (cat2(t, sizeof t, r, b->path) < 0 || symlink(b->link, t) < 0)
				return -1;
		} else if (bind_at(r, b->path, b->path, b->dir, false, b->locked) < 0) {
			return -1;
		}
	}
	for (int i = 0; i < sbx.nmasks; i++) {
		const hostpath *m = &sbx.masks[i];
		char t[PX_PATH * 2];
		if (cat2(t, sizeof t, r, m->path) < 0)
			return -1;
		if (m->dir ? mount("tmpfs", t, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		                   "mode=0000,size=4k")
		           : mount("/dev/null", t, NULL, MS_BIND, NULL))
			if (errno != ENOENT)
				return -1;
	}
	return make_dev(r) < 0 || mkdirs(r, "/proc", false) < 0 || mkdirs(r, "/tmp", false) < 0 ||
	               mkdirs(r, PX_BOX, false) < 0 || runtime_at(r) < 0
	           ? -1 : 0;
}

/* A detached copy of the mount tree at path (open_tree): attached later
 * with attach_at, also in another mount namespace. */
static int detach_copy(const char *path)
{
	return (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
}

/* Attaches the detached tree fd at r+path, read-only unless rw. */
static int attach_at(const char *r, int fd, const char *path, bool rw, unsigned long locked)
{
	char t[PX_PATH * 2];
	if (mkdirs(r, path, false) < 0 || cat2(t, sizeof t, r, path) < 0 ||
	    syscall(SYS_move_mount, fd, "", AT_FDCWD, t, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return -1;
	unsigned long f = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | locked;
	return mount(NULL, t, NULL, rw ? f : f | MS_RDONLY, NULL);
}

/* Mounts, at r, what each run has of its own: /proc (of its pid
 * namespace), /tmp and /dev/shm (fresh tmpfs) and its work dir at /box
 * (writable, from wd, its detach_copy). */
static int run_mounts(const px_sandbox *sb, const char *r, int wd)
{
	char opts[64], num[24], t[PX_PATH * 2];
	if (cat2(t, sizeof t, r, "/proc") < 0 ||
	    mount("proc", t, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -1;
	if (cat2(opts, sizeof opts, "mode=1777,size=",
	         utoa(num, sizeof num, (unsigned long long)sb->tmp_bytes)) < 0 ||
	    tmpfs_at(r, "/tmp", opts, MS_NOSUID | MS_NODEV) < 0 ||
	    tmpfs_at(r, "/dev/shm", "mode=1777,size=16m", MS_NOSUID | MS_NODEV) < 0)
		return -1;
	return attach_at(r, wd, PX_BOX, true, sbx.wd_locked);
}

/* Makes r read-only and our root. */
static int enter_root(const char *r)
{
	if (mount(NULL, r, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return -1;
	if (chdir(r) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0)
		return -1;
	return chdir("/");
}

/* A run's root built whole, in the keeper's new mount namespace. */
static int build_root(const px_sandbox *sb, const px_plan *p)
{
	int wd = detach_copy(p->workdir);
	int rc = wd < 0 || common_root(sb->root) < 0 ||
	         run_mounts(sb, sb->root, wd) < 0 ? -1 : enter_root(sb->root);
	int e = errno;
	if (wd >= 0)
		close(wd);
	errno = e;
	return rc;
}

/* ---- per-slot base roots (a root worker's forker) ------------------------ */

/* The forker, at its start, builds each slot's common root once, in a
 * mount namespace of its own whose root it then is, and keeps an fd of that namespace
 * in its copy of the slot's px_sandbox. A keeper it makes opens its work
 * dir, joins a copy of that namespace and mounts only the run's own
 * parts: 7 or 8 mounts instead of 35, and fewer to tear down at its end. */
static int build_base(const px_sandbox *sb)
{
	const char *r = sb->root;
	char t[PX_PATH * 2];
	if (common_root(r) < 0 || cat2(t, sizeof t, r, "/dev") < 0 ||
	    mount(NULL, t, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
		return -1;
	return enter_root(r);
}

static int base_ns_of(px_sandbox *sb)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0) {
		char c = unshare(CLONE_NEWNS) == 0 && build_base(sb) == 0 ? 'y' : 'n';
		if (write(pfd[1], &c, 1) == 1)
			pause(); /* until the forker has our namespace and kills us */
		_exit(1);
	}
	close(pfd[1]);
	char c = 'n', path[64];
	int fd = -1;
	if (pid > 0 && read(pfd[0], &c, 1) == 1 && c == 'y') {
		snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	close(pfd[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return fd;
}

int px_sandbox_prebuild(void)
{
	int n = 0;
	for (int i = 0; i < sbx.nslots && i < px_w.nslots; i++) {
		px_sandbox *sb = &sbx.slots[i];
		if (!sb->namespaces || sb->userns)
			continue;
		sb->base_ns = base_ns_of(sb);
		n += sb->base_ns >= 0;
	}
	return n;
}

/* A run's root from the slot's base: a private copy of that namespace,
 * the run's own mounts on top. */
static int enter_base(const px_sandbox *sb, const px_plan *p)
{
	int wd = detach_copy(p->workdir); /* from the host's view, still */
	int rc = wd < 0 || setns(sb->base_ns, CLONE_NEWNS) < 0 || unshare(CLONE_NEWNS) < 0 ||
	         run_mounts(sb, "", wd) < 0 || chdir("/") < 0 ? -1 : 0;
	int e = errno;
	close(sb->base_ns);
	if (wd >= 0)
		close(wd);
	errno = e;
	return rc;
}

/* ---- keeper and stage hooks ---------------------------------------------- */

unsigned long px_sandbox_ns_flags(const px_sandbox *sb)
{
	if (!sb->namespaces)
		return 0;
	unsigned long f = NS_FLAGS | (sb->userns ? CLONE_NEWUSER : 0);
	return sb->base_ns >= 0 ? f & ~(unsigned long)CLONE_NEWNS : f; /* enter_base */
}

pid_t px_sandbox_clone(const px_sandbox *sb)
{
	if (!sb->namespaces)
		return fork();
	return (pid_t)syscall(SYS_clone, SIGCHLD | px_sandbox_ns_flags(sb), 0, NULL, NULL, 0);
}

/* The keeper is PID 1 of the run's pid namespace, and a fork of the
 * processor that never execs: its /proc/1/cmdline and environ would show
 * the processor's (its argv, the state dir...). It blanks its copy of
 * those strings (copy-on-write: the processor's stay) and its name. */
static void hide_processor(void)
{
	static const char name[] = "corral-keeper";
	if (sbx.arg_end > sbx.arg_start) {
		size_t n = sbx.arg_end - sbx.arg_start;
		memset((char *)sbx.arg_start, 0, n);
		memcpy((char *)sbx.arg_start, name, n > sizeof name ? sizeof name : n - 1);
	}
	if (sbx.env_end > sbx.env_start)
		memset((char *)sbx.env_start, 0, sbx.env_end - sbx.env_start);
	prctl(PR_SET_NAME, name);
}

int px_sandbox_keeper(const px_sandbox *sb, const px_plan *p)
{
	if (!sb->namespaces)
		return 0;
	hide_processor();
	if (sb->userns && user_maps(sb) < 0)
		return -1;
	if ((sb->base_ns >= 0 ? enter_base(sb, p) : build_root(sb, p)) < 0)
		return -1;
	if (sethostname("corral", 6) < 0 || lo_up() < 0)
		return -1;
	return 0;
}

void px_sandbox_kill_all(void)
{
	kill(-1, SIGKILL); /* PID 1 of the namespace: everyone but us */
}

int px_sandbox_drop_bounding(const px_sandbox *sb)
{
	if (!px_w.root && !sb->userns)
		return 0; /* no capabilities to drop, and no right to touch the set */
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL
	               ? -1 : 0;
}

int px_sandbox_lock(const px_sandbox *sb)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -1;
	if (!sb->seccomp)
		return 0;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sb->prog);
}

/* ---- detection ------------------------------------------------------------ */

/* In a probe keeper with its own user namespace: whether RLIMIT_NPROC
 * counts only that namespace's processes (ucounts, Linux 5.14), not every
 * process of our uid. With a limit of 2 we can fork once: we and the
 * child are 2 in the namespace, while our uid has at least the processor
 * and us outside it. */
static int nproc_per_ns(void)
{
	struct rlimit two = { 2, 2 };
	if (setrlimit(RLIMIT_NPROC, &two) < 0)
		return 0;
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return pid > 0;
}

/* Builds the whole sandbox once in a throw-away keeper and runs a stage
 * step in it; 0 when it all worked, else errno with the step in err. */
static int probe(px_sandbox *sb, char *err, size_t errlen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return errno;
	px_plan p = { .workdir = px_w.work_root };
	pid_t pid = px_sandbox_clone(sb);
	if (pid == 0) {
		int msg[3] = { 0, 0, 0 };
		if (px_sandbox_keeper(sb, &p) < 0)
			msg[0] = 1, msg[1] = errno;
		else if (px_sandbox_drop_bounding(sb) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			msg[0] = 2, msg[1] = errno;
		else if (px_sandbox_lock(sb) < 0)
			msg[0] = 3, msg[1] = errno;
		else if (unshare(0) == 0 || errno != EPERM)
			msg[0] = 4, msg[1] = errno ? errno : EINVAL; /* only the filter stops it */
		else if (sb->userns)
			msg[2] = nproc_per_ns();
		ssize_t n = write(pfd[1], msg, sizeof msg);
		_exit(n == sizeof msg ? 0 : 1);
	}
	close(pfd[1]);
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		snprintf(err, errlen, "clone with namespaces: %s", strerror(e));
		return e;
	}
	int msg[3] = { -1, EIO, 0 }, st;
	ssize_t n = read(pfd[0], msg, sizeof msg);
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (n != sizeof msg) {
		snprintf(err, errlen, "sandbox probe died");
		return EIO;
	}
	static const char *const step[] = { "", "namespace setup", "dropping capabilities",
		"seccomp", "the seccomp filter let unshare through" };
	if (msg[0])
		snprintf(err, errlen, "%s: %s", step[msg[0] > 0 && msg[0] < 5 ? msg[0] : 0],
		         strerror(msg[1]));
	else if (sb->userns)
		sbx.nproc_ns = msg[2] == 1;
	return msg[0] ? msg[1] : 0;
}

static int try_level(int level, char *err, size_t errlen)
{
	px_sandbox sb = {
		.level = level,
		.seccomp = level >= PX_LEVEL_SECCOMP,
		.namespaces = level >= PX_LEVEL_NAMESPACES,
		.userns = level >= PX_LEVEL_NAMESPACES && !px_w.root,
		.outer_uid = (int)geteuid(), .outer_gid = (int)getegid(),
		.prog = { (unsigned short)sbx.nfilter, sbx.filter },
		.tmp_bytes = 16 << 20,
		.base_ns = -1,
	};
	if (level == PX_LEVEL_NONE)
		return 0;
	if (level == PX_LEVEL_FULL &&
	    (!px_w.uid_drop || !px_cg_has_memory() || !px_cg_has_pids())) {
		snprintf(err, errlen, "full needs root with a slot uid base and cgroup memory "
		                      "and pids controllers (uid drop %s, memory %s, pids %s)",
		         px_w.uid_drop ? "yes" : "no", px_cg_has_memory() ? "yes" : "no",
		         px_cg_has_pids() ? "yes" : "no");
		return -1;
	}
	/* the probe needs a mount point like the slots' */
	if ((size_t)snprintf(sb.root, sizeof sb.root, "%s/%d.probe", px_w.work_root,
	                     (int)getpid()) >= sizeof sb.root) {
		snprintf(err, errlen, "work root path too long");
		return -1;
	}
	mkdir(sb.root, 0755);
	int rc = probe(&sb, err, errlen);
	rmdir(sb.root);
	return rc ? -1 : 0;
}

int px_sandbox_init(int want, char *err, size_t errlen)
{
	memset(&sbx, 0, sizeof sbx);
	sbx.shm_rules = !px_cg_has_memory();
	if (build_filter(err, errlen) < 0)
		return -1;
	find_binds();
	find_arg_area();
	rt_prepare();
	sbx.rt_locked = locked_flags(px_w.runtime_dir);
	sbx.wd_locked = locked_flags(px_w.nslots > 0 ? px_w.slots[0].dir : px_w.work_root);
	char why[256] = "";
	int level = want >= 0 ? want : PX_LEVEL_FULL;
	while (try_level(level, why, sizeof why) < 0) {
		if (want >= 0) {
			snprintf(err, errlen, "isolation level %s is not available here: %s",
			         px_level_name(want), why);
			px_sandbox_fini();
			return -1;
		}
		if (!sbx.why[0])
			snprintf(sbx.why, sizeof sbx.why, "%s: %s", px_level_name(level), why);
		level--;
	}
	sbx.level = level;
	sbx.nslots = px_w.nslots;
	sbx.slots = calloc((size_t)sbx.nslots, sizeof *sbx.slots);
	if (!sbx.slots) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < sbx.nslots; i++) {
		px_sandbox *sb = &sbx.slots[i];
		*sb = (px_sandbox){
			.level = level,
			.seccomp = level >= PX_LEVEL_SECCOMP,
			.namespaces = level >= PX_LEVEL_NAMESPACES,
			.userns = level >= PX_LEVEL_NAMESPACES && !px_w.root,
			.outer_uid = (int)geteuid(), .outer_gid = (int)getegid(),
			.prog = { (unsigned short)sbx.nfilter, sbx.filter },
			.tmp_bytes = px_w.tmp_bytes,
			.base_ns = -1,
		};
		if ((size_t)snprintf(sb->root, sizeof sb->root, "%s/%d.root%d", px_w.work_root,
		                     (int)getpid(), i) >= sizeof sb->root ||
		    (sb->namespaces && mkdir(sb->root, 0755) < 0 && errno != EEXIST)) {
			snprintf(err, errlen, "mkdir %s: %s", sb->root, strerror(errno));
			return -1;
		}
	}
	return 0;
}

void px_sandbox_fini(void)
{
	for (int i = 0; i < sbx.nslots; i++)
		if (sbx.slots[i].namespaces)
			rmdir(sbx.slots[i].root);
	free(sbx.slots);
	free(sbx.filter);
	rt_free();
	memset(&sbx, 0, sizeof sbx);
}

int px_sandbox_level(void) { return sbx.level; }

bool px_sandbox_nproc(void)
{
	return sbx.level >= PX_LEVEL_NAMESPACES && !px_w.root && sbx.nproc_ns;
}

const px_sandbox *px_sandbox_for(int slot)
{
	if (sbx.level < PX_LEVEL_SECCOMP || slot < 0 || slot >= sbx.nslots)
		return NULL;
	return &sbx.slots[slot];
}

void px_sandbox_describe(char *desc, size_t len)
{
	size_t o = strlen(desc);
	if (sbx.level >= PX_LEVEL_SECCOMP)
		o += (size_t)snprintf(desc + o, len - o, "+seccomp+nocaps");
	if (o < len && sbx.level >= PX_LEVEL_NAMESPACES)
		o += (size_t)snprintf(desc + o, len - o, "+ns(pid,mnt,net,ipc,uts%s)",
		                      sbx.userns || !px_w.root ? ",user" : "");
	if (o < len && sbx.why[0])
		snprintf(desc + o, len - o, " [not %s]", sbx.why);
}
