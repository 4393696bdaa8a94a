/*
 * workdir.c — the private work dir of one invocation.
 *
 * Filling: every path component is created or opened relative to the
 * parent's fd (mkdirat/openat) with O_NOFOLLOW, so no symlink can lead a
 * write outside the dir, even though the codec already rejects "..".
 * Everything is created O_EXCL: a name given twice, or used both as a
 * file and as a folder, is an error rather than a silent overwrite.
 * Ownership goes to the slot uid with fchown on the open fd.
 *
 * Removal must work whatever the user's code did to the tree, and runs
 * only once every process of the run is dead (px_tidy, after the keeper
 * is reaped): common's cr_rmtree, a walk that holds one fd at any depth,
 * renames and creates nothing (no name of ours the code could take
 * first), follows no symlink, chmods back folders made unreadable and
 * never leaves the tree's file system (fsutil.c says how). When it
 * fails, the slot leaves service until a retry succeeds (px_tidy).
 */
#include "internal.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int own(int fd, int uid, int gid)
{
	return uid >= 0 ? fchown(fd, (uid_t)uid, (gid_t)gid) : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Opens (creating when missing) folder `name` below dirfd; -1 on error. */
static int open_subdir(int dirfd, const char *name, int uid, int gid)
{
	if (mkdirat(dirfd, name, 0700) == 0) {
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && own(fd, uid, gid) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
	if (errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int put_file(int rootfd, const cr_file *f, int uid, int gid, char *err,
                    size_t errlen)
{
	char path[PATH_MAX];
	if (strlen(f->name) >= sizeof path || f->name[0] == '\0' || f->name[0] == '/') {
		snprintf(err, errlen, "bad file name");
		return -1;
	}
	strcpy(path, f->name);
	int dirfd = dup(rootfd);
	if (dirfd < 0)
		goto fail;
	char *comp = path, *slash;
	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0 || !*comp) {
			close(dirfd);
			snprintf(err, errlen, "bad file name '%s'", f->name);
			return -1;
		}
		int sub = open_subdir(dirfd, comp, uid, gid);
		close(dirfd);
		if (sub < 0)
			goto fail;
		dirfd = sub;
		comp = slash + 1;
	}
	if (!*comp || strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0) {
		close(dirfd);
		snprintf(err, errlen, "bad file name '%s'", f->name);
		return -1;
	}
	int fd = openat(dirfd, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	close(dirfd);
	if (fd < 0)
		goto fail;
	int rc = write_all(fd, f->data, f->len) | own(fd, uid, gid);
	int saved = errno;
	if (close(fd) < 0 && rc == 0) {
		saved = errno;
		rc = -1;
	}
	if (rc == 0)
		return 0;
	errno = saved;
fail:
	snprintf(err, errlen, "cannot create file '%s' in the work dir: %s", f->name,
	         errno == EEXIST ? "given twice, or as both a file and a folder"
	                         : strerror(errno));
	return -1;
}

int px_workdir_fill(const char *dir, const cr_file *files, size_t nfiles,
                    int uid, int gid, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0) {
		snprintf(err, errlen, "cannot create work dir %s: %s", dir, strerror(errno));
		return -1;
	}
	return px_workdir_put(dir, files, nfiles, uid, gid, err, errlen);
}

int px_workdir_put(const char *dir, const cr_file *files, size_t nfiles,
                   int uid, int gid, char *err, size_t errlen)
{
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0 || own(rootfd, uid, gid) < 0) {
		snprintf(err, errlen, "cannot open work dir %s: %s", dir, strerror(errno));
		if (rootfd >= 0)
			close(rootfd);
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		rc = put_file(rootfd, &files[i], uid, gid, err, errlen);
	close(rootfd);
	return rc;
}

/* ---- removal -------------------------------------------------------------- */

int px_rmtree(const char *path, char *err, size_t errlen)
{
	if (cr_rmtree(path) == 0)
		return 0;
	snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
	return -1;
}
