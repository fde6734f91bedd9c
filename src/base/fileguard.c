#include "fileguard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

static void lock_path(char *out, size_t n, const char *path) { snprintf(out, n, "%s.lock", path); }

/* The pid written in a lock file by its holder, or 0 if unreadable. */
static long holder_pid(int fd)
{
    char buf[32] = "";
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    return got > 0 ? strtol(buf, NULL, 10) : 0;
}

/* 1 if fd is still the file at lock (a releasing holder may have unlinked it meanwhile). */
static int same_file(int fd, const char *lock)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(lock, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int ns_lock_acquire(const char *path, const char *what, const char *flag, char *err)
{
    char lock[4200];
    lock_path(lock, sizeof lock, path);
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return ns_fail(err, "cannot create lock file '%s' for %s '%s': %s (%s)", lock, what,
                           path, strerror(errno), flag);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = holder_pid(fd);
            close(fd);
            if (e == EWOULDBLOCK)
                return ns_fail(err, "%s '%s' is being written by another normscope process "
                                    "(pid %ld, lock '%s'); wait for it to end or give another %s",
                               what, path, pid, lock, flag);
            return ns_fail(err, "cannot lock '%s': %s", lock, strerror(e));
        }
        if (!same_file(fd, lock)) { /* unlinked by its last holder as we opened it: again */
            close(fd);
            continue;
        }
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
            /* the pid is only for the message; a lock without it still locks */
        }
        return fd;
    }
    return ns_fail(err, "cannot lock '%s': it keeps being replaced", lock);
}

void ns_lock_release(int fd, const char *path)
{
    if (fd < 0)
        return;
    char lock[4200];
    lock_path(lock, sizeof lock, path);
    if (same_file(fd, lock))
        unlink(lock); /* while still held: a waiter that opened it sees it unlinked and retries */
    close(fd);
}

int ns_check_space(const char *path, int64_t extra)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    struct rlimit lim;
    if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        (double)st.st_size + (double)extra > (double)lim.rlim_cur)
        return EFBIG;
    struct statvfs vfs;
    if (statvfs(path, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < (double)extra)
        return ENOSPC;
    return 0;
}

int ns_fsync_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return rc;
}

int ns_fsync_dir_of(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        *(slash == dir ? slash + 1 : slash) = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 && errno != EINVAL ? errno : 0;
    close(fd);
    return rc;
}

const char *ns_io_cause(int errnum)
{
    switch (errnum) {
    case ENOSPC: return "disk full (ENOSPC)";
    case EFBIG: return "file size limit reached (EFBIG)";
    case EIO: return "I/O error (EIO)";
    case EDQUOT: return "disk quota exceeded (EDQUOT)";
    case 0: return "HDF5 could not write it (an I/O error, or its metadata is damaged: a run "
                   "killed inside a flush can leave it so)";
    default: return strerror(errnum);
    }
}
