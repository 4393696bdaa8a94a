/*
 * uidlock.c — one worker per slot uid.
 *
 * The end of a run kills every process of its slot uid (keeper.c,
 * kill_uid), so two workers given overlapping uid ranges kill each
 * other's runs at random. At px_init, as root, the worker therefore locks
 * its uid range for as long as it lives: one lock file for the host
 * (/run/corral/uids.lock, or /tmp/corral-root/uids.lock when /run is not
 * writable), a POSIX record lock on bytes [base, base + nslots), one byte
 * per uid. POSIX (not OFD, not flock) locks because F_GETLK then names the
 * holder's pid, so the refusal can say who holds the uid; they are the
 * process's, never inherited by the keepers we fork, and the kernel drops
 * them when the worker dies, however it dies.
 *
 * Once the range is ours, whatever those uids still run belongs to a
 * predecessor that was SIGKILLed (its keepers died with it, its stages
 * may not have): it is killed before any run of ours can start, so it
 * can neither touch our runs nor be mistaken for them.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int lock_fd = -1;

/* dir (made 0700 if missing) must be a real folder owned by root. */
static bool private_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return false;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
	       !(st.st_mode & 022);
}

static int open_lock_file(char *path, size_t len)
{
	static const char *const dirs[] = { "/run/corral", "/tmp/corral-root" };
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		snprintf(path, len, "%s/uids.lock", dirs[i]);
		if (!private_dir(dirs[i]))
			continue;
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
	}
	return -1;
}

/* Kills every process of uid, wherever it runs (a helper that becomes
 * the uid: kill(-1) then reaches exactly that uid's processes). */
static void kill_uid_now(int uid)
{
	pid_t h = fork();
	if (h == 0) {
		if (syscall(SYS_setresuid, uid, uid, uid) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (h > 0)
		while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
			;
}

int px_uid_lock(int base, int n, char *err, size_t errlen)
{
	char path[64];
	if (lock_fd >= 0) {
		snprintf(err, errlen, "slot uids are locked already");
		return -1;
	}
	int fd = open_lock_file(path, sizeof path);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open the slot uid lock file %s: %s", path,
		         strerror(errno));
		return -1;
	}
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = base, .l_len = n };
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int e = errno;
		struct flock who = fl;
		if ((e == EAGAIN || e == EACCES) && fcntl(fd, F_GETLK, &who) == 0 &&
		    who.l_type != F_UNLCK) {
			long uid = who.l_start > base ? (long)who.l_start : base;
			snprintf(err, errlen, "slot uid %ld (of %d..%d) is in use by another corral "
			                      "worker, pid %d: give this worker another --uid-base",
			         uid, base, base + n - 1, (int)who.l_pid);
		} else {
			snprintf(err, errlen, "cannot lock slot uids %d..%d in %s: %s", base,
			         base + n - 1, path, strerror(e));
		}
		close(fd);
		return -1;
	}
	lock_fd = fd;
	for (int i = 0; i < n; i++)
		kill_uid_now(base + i);
	return 0;
}

void px_uid_unlock(void)
{
	if (lock_fd >= 0)
		close(lock_fd); /* drops the record lock */
	lock_fd = -1;
}
