/* mountctl mount and umount: zkfs-fused mounts, found in /proc/self/mountinfo. */
#ifndef ZKFS_MOUNTCTL_MOUNTS_H
#define ZKFS_MOUNTCTL_MOUNTS_H

/* Mounts the cluster servers ("HOST:PORT,...[/CHROOT]") at mountpoint by running the
 * zkfs-fused next to this program (else the one on PATH), with "-o opts" if opts is not NULL,
 * and returns once the mount is there, waiting at most timeout_ms (and 10 s) for it.
 * Refuses a mountpoint that already is a zkfs mount. Arguments are borrowed. 0, or
 * CLI_EXIT_ERR after a message on stderr (the daemon's own included). */
int mounts_mount(const char *servers, const char *mountpoint, const char *opts, int timeout_ms);

/* Unmounts mountpoint with fusermount3 (-z: lazily, even if busy); a relative mountpoint is
 * resolved, an absolute one is not (that would stat a dead mount). 0, or CLI_EXIT_ERR after
 * a message on stderr, also when nothing is mounted there. */
int mounts_umount(const char *mountpoint, int lazy);

#endif
