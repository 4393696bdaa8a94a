/*
 * fsutil.c — remove and copy trees with *at() calls, so that a path is
 * resolved once and a symlink is never followed; see fsutil.h. Removal is
 * made for trees hostile code shaped (its comment below), copy for the
 * operator's runtime dir.
 */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- removal ---------------------------------------------------------------
 *
 * The tree may have been shaped by hostile code to defeat this walk, so it
 * trusts no name in it and needs no room that grows with the tree:
 *   - one folder open at a time: going down opens the subfolder and closes
 *     its parent; a folder emptied is left by opening its "..", which must
 *     be the folder we came down from (inode checked against the path
 *     walked, so a folder moved meanwhile cannot lead the walk out of the
 *     tree); the parent is then read again from its start and the empty
 *     folder removed like any entry. Any depth, one fd, no recursion;
 *     memory: an inode number per level.
 *   - nothing is renamed or created: no name of ours can be taken first.
 *   - every open is O_NOFOLLOW|O_DIRECTORY relative to a folder's fd, and a
 *     symlink, fifo, socket or device is only ever unlinked.
 *   - a folder the code made unreadable or read-only (we are its owner, or
 *     root) is chmod'ed 0700 once it is known to be a folder.
 *   - the walk stays on the tree's file system: a mount point inside it is
 *     an error (EBUSY), never entered.
 * Callers make sure nothing else changes the tree meanwhile (a run's dirs:
 * every process of the run is dead). The first error ends the walk with
 * errno; it can be tried again from the start. */
typedef struct walk {
	int fd;     /* the folder being emptied */
	dev_t dev;  /* the tree's file system */
	ino_t *ino; /* ino[i]: the folder at depth i, ino[0] the top */
	size_t depth, alloc;
} walk;

static int reopen_locked(int dfd, const char *name, struct stat *st)
{
	/* mode 000 and no CAP_DAC_OVERRIDE: know it is a folder, then chmod */
	int p = openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p < 0)
		return -1;
	int bad = fstat(p, st) < 0 || fchmodat(dfd, name, 0700, 0) < 0;
	close(p);
	return bad ? -1 : openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Opens folder name below dfd (never through a symlink), made 0700 when
 * the code took our rights away; only on file system dev (0: any). */
static int open_dir(int dfd, const char *name, dev_t dev, struct stat *st)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		fd = reopen_locked(dfd, name, st);
	if (fd < 0)
		return -1;
	int e = fstat(fd, st) < 0 ? errno : dev && st->st_dev != dev ? EBUSY : 0;
	if (!e && (st->st_mode & 0700) != 0700 && fchmod(fd, 0700) < 0)
		e = errno;
	if (e) {
		close(fd);
		errno = e; /* EBUSY: a mount point, not ours to empty */
		return -1;
	}
	return fd;
}

/* Goes down into folder name of the current one. */
static int walk_down(walk *w, const char *name)
{
	struct stat st;
	if (w->depth + 1 == w->alloc) {
		ino_t *n = realloc(w->ino, w->alloc * 2 * sizeof *n);
		if (!n)
			return -1;
		w->ino = n;
		w->alloc *= 2;
	}
	int fd = open_dir(w->fd, name, w->dev, &st);
	if (fd < 0)
		return -1;
	close(w->fd);
	w->fd = fd;
	w->ino[++w->depth] = st.st_ino;
	return 0;
}

/* Back up to the parent, which must be the folder we came down from. */
static int walk_up(walk *w)
{
	struct stat st;
	int fd = openat(w->fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_dev != w->dev || st.st_ino != w->ino[w->depth - 1]) {
		close(fd);
		errno = ESTALE; /* moved while we walked: only a live process could */
		return -1;
	}
	close(w->fd);
	w->fd = fd;
	w->depth--;
	return 0;
}

/* Removes entry name of the current folder: 0 done, 1 a folder with
 * something in it (to go down into), -1 error. */
static int rm_entry(walk *w, const char *name, unsigned char type)
{
	if (type != DT_DIR) {
		if (unlinkat(w->fd, name, 0) == 0 || errno == ENOENT)
			return 0;
		if (errno != EISDIR)
			return -1;
	}
	if (unlinkat(w->fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return errno == ENOTEMPTY || errno == EEXIST ? 1 : -1; /* EBUSY: a mount point */
}

/* One pass over the current folder: 0 it was empty, 1 entries went (pass
 * again) or we went down into one, -1 error. */
static int rm_pass(walk *w)
{
	char buf[16384];
	int seen = 0;
	if (lseek(w->fd, 0, SEEK_SET) < 0)
		return -1;
	for (;;) {
		ssize_t n = getdents64(w->fd, buf, sizeof buf);
		if (n <= 0)
			return n < 0 ? -1 : seen;
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			off += e->d_reclen;
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			seen = 1;
			int r = rm_entry(w, e->d_name, e->d_type);
			if (r != 0)
				return r < 0 || walk_down(w, e->d_name) < 0 ? -1 : 1;
		}
	}
}

/* Empties the folder open as fd (fd itself stays where it is). */
static int rm_walk(int fd)
{
	struct stat st;
	walk w = { .fd = -1, .alloc = 64 };
	w.ino = malloc(w.alloc * sizeof *w.ino);
	if (!w.ino || fstat(fd, &st) < 0 || (w.fd = dup(fd)) < 0) {
		free(w.ino);
		return -1;
	}
	w.dev = st.st_dev;
	w.ino[0] = st.st_ino;
	int r;
	while ((r = rm_pass(&w)) >= 0)
		if (r == 0 && (w.depth == 0 || walk_up(&w) < 0))
			break;
	int saved = errno;
	close(w.fd);
	free(w.ino);
	errno = saved;
	return r == 0 && w.depth == 0 ? 0 : -1;
}

/* Empties folder path, then removes it when rm. */
static int rm_path(const char *path, bool rm)
{
	struct stat st;
	int fd = open_dir(AT_FDCWD, path, 0, &st);
	if (fd < 0)
		return -1;
	int rc = rm_walk(fd);
	int saved = errno;
	close(fd);
	if (rc == 0 && rm)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	errno = saved;
	return rc;
}

int cr_rmtree(const char *path)
{
	if (unlink(path) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return -1;
	if (rmdir(path) == 0)
		return 0;
	return rm_path(path, true);
}

int cr_emptydir(const char *path)
{
	if (rm_path(path, false) == 0)
		return 0;
	return errno == ENOENT ? 0 : -1;
}

static int copy_file(int sfd, int dfd, const char *name, mode_t mode)
{
	int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -1;
	mode_t m = (mode & 0111) ? 0755 : 0644;
	int out = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, m);
	if (out < 0) {
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0)
		rc = -1;
	fchmod(out, m);
	close(in);
	if (close(out))
		rc = -1;
	return rc;
}

static int copy_dir(int sfd, int dfd, int depth)
{
	if (depth > 64) {
		errno = ELOOP;
		return -1;
	}
	int sdup = dup(sfd);
	DIR *d = sdup >= 0 ? fdopendir(sdup) : NULL;
	if (!d) {
		if (sdup >= 0)
			close(sdup);
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(sfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = -1;
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_file(sfd, dfd, e->d_name, st.st_mode);
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dfd, e->d_name, 0755) && errno != EEXIST)
				return closedir(d), -1;
			int s2 = openat(sfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int d2 = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = (s2 < 0 || d2 < 0) ? -1 : copy_dir(s2, d2, depth + 1);
			if (s2 >= 0)
				close(s2);
			if (d2 >= 0)
				close(d2);
		}
	}
	closedir(d);
	return rc;
}

int cr_copytree(const char *src, const char *dst)
{
	if (mkdir(dst, 0755) && errno != EEXIST)
		return -1;
	chmod(dst, 0755);
	int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int d = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = (s < 0 || d < 0) ? -1 : copy_dir(s, d, 0);
	int saved = errno;
	if (s >= 0)
		close(s);
	if (d >= 0)
		close(d);
	errno = saved;
	return rc;
}
