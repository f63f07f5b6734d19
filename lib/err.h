/* One table of zkfs error codes: name, message, ZooKeeper code and errno for FUSE. */
#ifndef ZKFS_ERR_H
#define ZKFS_ERR_H

/*
 * Functions return 0 or a negative code. Codes above ERR_BASE are negative errno values
 * (OS and libuv errors); protocol errors are ERR_BASE + ZooKeeper's code, so they never
 * collide with errno.
 */
#define ERR_BASE (-10000)
#define ERR_ZK(zk) (ERR_BASE + (zk))

enum {
    ZE_SYSTEMERROR = ERR_ZK(-1),
    ZE_RUNTIMEINCONSISTENCY = ERR_ZK(-2),
    ZE_DATAINCONSISTENCY = ERR_ZK(-3),
    ZE_CONNECTIONLOSS = ERR_ZK(-4),
    ZE_MARSHALLINGERROR = ERR_ZK(-5),
    ZE_UNIMPLEMENTED = ERR_ZK(-6),
    ZE_OPERATIONTIMEOUT = ERR_ZK(-7),
    ZE_BADARGUMENTS = ERR_ZK(-8),
    ZE_UNKNOWNSESSION = ERR_ZK(-12),
    ZE_APIERROR = ERR_ZK(-100),
    ZE_NONODE = ERR_ZK(-101),
    ZE_NOAUTH = ERR_ZK(-102),
    ZE_BADVERSION = ERR_ZK(-103),
    ZE_NOCHILDRENFOREPHEMERALS = ERR_ZK(-108),
    ZE_NODEEXISTS = ERR_ZK(-110),
    ZE_NOTEMPTY = ERR_ZK(-111),
    ZE_SESSIONEXPIRED = ERR_ZK(-112),
    ZE_INVALIDCALLBACK = ERR_ZK(-113),
    ZE_INVALIDACL = ERR_ZK(-114),
    ZE_AUTHFAILED = ERR_ZK(-115),
    ZE_SESSIONMOVED = ERR_ZK(-118),
    ZE_NOTREADONLY = ERR_ZK(-119),
    ZE_EPHEMERALONLOCALSESSION = ERR_ZK(-120),
    ZE_NOWATCHER = ERR_ZK(-121),
    ZE_REQUESTTIMEOUT = ERR_ZK(-122),
    ZE_RECONFIGDISABLED = ERR_ZK(-123),
    ZE_QUOTAEXCEEDED = ERR_ZK(-125),
    ZE_THROTTLEDOP = ERR_ZK(-127),
};

/* Short upper-case name ("NONODE", "ENOENT"); never NULL. */
const char *err_name(int code);
/* Human-readable message; never NULL. */
const char *err_msg(int code);
/* ZooKeeper's numeric code for the wire (0 for 0, SYSTEMERROR for unknown codes). */
int err_to_zk(int code);
/* Inverse of err_to_zk: 0 -> 0, ZooKeeper code -> zkfs code. */
int err_from_zk(int zk);
/* Positive errno a FUSE reply should carry (NONODE -> ENOENT, CONNECTIONLOSS -> EIO...). */
int err_to_errno(int code);

#endif
