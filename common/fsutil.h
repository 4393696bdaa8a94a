/*
 * fsutil.h — file-tree helpers the programs share.
 */
#ifndef CR_FSUTIL_H
#define CR_FSUTIL_H

#include <sys/types.h>

/* Remove path and everything below it, whatever shape hostile code gave
 * the tree: any depth with one fd, never following a symlink, nothing
 * renamed or created, folders made unreadable chmod'ed back, never
 * leaving path's file system (a mount point below is EBUSY). Nothing else
 * may change the tree meanwhile. 0, or -1 with errno (the first error;
 * what is left can be tried again). */
int cr_rmtree(const char *path);
/* Remove everything inside folder path the same way, keeping the folder
 * (which may be a mount point). 0 also when path does not exist. */
int cr_emptydir(const char *path);

/* Copy folder src to dst (created with mode 0755), regular files and
 * folders only; files keep their exec bits and become world-readable. */
int cr_copytree(const char *src, const char *dst);

#endif
