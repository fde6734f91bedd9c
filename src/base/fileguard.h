/* What makes an output file survive faults: an advisory lock naming its one writer, room
 * reserved on disk before a write that must not fail half-way, fsync of a file and of its
 * directory (for an atomic rename), and the cause of a failed write in words.
 *
 * Locks are flock(2) locks on "<file>.lock", which holds the writer's pid. flock, not fcntl: an
 * fcntl lock is dropped when the process closes *any* descriptor of the file (HDF5 opens and
 * closes the log at each flush), and a lock on the file itself would collide with HDF5's own
 * flock. The kernel drops the lock when the process dies, so a killed run never blocks the
 * next; readers never take it. */
#ifndef NS_FILEGUARD_H
#define NS_FILEGUARD_H

#include <stdint.h>

/* Takes the writer's lock of `path` (what: "run log", flag: "--out"), or fails at once naming
 * the process that holds it. Returns a descriptor to pass to ns_lock_release, or -1 with err. */
int ns_lock_acquire(const char *path, const char *what, const char *flag, char *err);
void ns_lock_release(int fd, const char *path); /* fd < 0: nothing */

/* Checks that `path` can grow by `extra` bytes: within the file size limit (RLIMIT_FSIZE) and
 * the free space of its file system, so that the writes that follow do not fail half-way for
 * want of space. Returns 0 or an errno (EFBIG, ENOSPC, ENOENT). (A check, not a reservation:
 * posix_fallocate would leave the file that much larger, as HDF5 does not truncate it.) */
int ns_check_space(const char *path, int64_t extra);

/* fsync of a file, and of the directory holding path (so a rename into it is durable).
 * Return 0 or an errno. */
int ns_fsync_file(const char *path);
int ns_fsync_dir_of(const char *path);

/* "disk full (ENOSPC)", "file size limit reached (EFBIG)", "I/O error (EIO)", or strerror. */
const char *ns_io_cause(int errnum);

#endif
