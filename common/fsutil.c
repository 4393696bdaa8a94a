/*
 * fsutil.c — recursive remove and copy with *at() calls, so that a path
 * is resolved once and a symlink is never followed; see fsutil.h.
 */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_at(int dfd, const char *name, int depth);

/* Removes everything in the open folder fd (which it closes). */
static int rm_children(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (rm_at(fd, e->d_name, depth + 1))
			rc = -1;
	}
	closedir(d);
	return rc;
}

static int rm_at(int dfd, const char *name, int depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth > 256) {
		errno = ELOOP;
		return -1;
	}
	fchmodat(dfd, name, 0700, 0);
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = rm_children(fd, depth);
	if (unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT)
		rc = -1;
	return rc;
}

int cr_rmtree(const char *path) { return rm_at(AT_FDCWD, path, 0); }

int cr_emptydir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	return rm_children(fd, 0);
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
