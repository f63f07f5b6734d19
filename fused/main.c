/* zkfs-fused: mounts a zkfs cluster's znode tree with FUSE. Options and wiring only. */
#include "fs.h"
#include "ops.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZKFS_FUSED_VERSION "0.1"
#define DEFAULT_SESSION_TIMEOUT_MS 10000
#define DEFAULT_MAX_DATA (1024 * 1024)
#define DEFAULT_CACHE_TIMEOUT 86400.0
#define DEFAULT_MAX_THREADS 64

struct cli {
    char *servers, *mountpoint;
    int nonopt;
    int foreground, debug, singlethread, help, version;
    int ro, sync_write;
    int session_timeout, op_timeout;
    unsigned max_data, max_threads;
    double entry_timeout, attr_timeout;
    long long uid, gid;
    char *log, *logfile;
    int has_fsname, has_subtype;
};

enum { KEY_RO, KEY_FG, KEY_DEBUG, KEY_SINGLE, KEY_HELP, KEY_VERSION, KEY_FSNAME, KEY_SUBTYPE };

#define OPT(t, f)                                                                                  \
    {                                                                                              \
        t, offsetof(struct cli, f), 1                                                              \
    }
static const struct fuse_opt cli_opts[] = {
    OPT("session_timeout=%d", session_timeout),
    OPT("op_timeout=%d", op_timeout),
    OPT("sync_write", sync_write),
    OPT("max_data=%u", max_data),
    OPT("max_threads=%u", max_threads),
    OPT("entry_timeout=%lf", entry_timeout),
    OPT("attr_timeout=%lf", attr_timeout),
    OPT("uid=%lld", uid),
    OPT("gid=%lld", gid),
    OPT("log=%s", log),
    OPT("logfile=%s", logfile),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("-f", KEY_FG),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("-s", KEY_SINGLE),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("fsname=", KEY_FSNAME),
    FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
    FUSE_OPT_END,
};

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s SERVERS MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]\n"
            "\n"
            "Mounts the znode tree of a zkfs cluster. SERVERS is a ZooKeeper connect string,\n"
            "HOST:PORT[,HOST:PORT...][/CHROOT]. The daemon goes to the background once mounted\n"
            "unless -f is given; -d also prints every FUSE request; -s runs one thread.\n"
            "\n"
            "zkfs options:\n"
            "  session_timeout=MS   session timeout asked of the cluster (default %d)\n"
            "  op_timeout=MS        how long an operation waits for a server before EIO\n"
            "                       (default: the session timeout)\n"
            "  sync_write           commit at every write(2), not only at close/fsync\n"
            "  ro                   read-only: changes fail with EROFS; no open/flush round trips\n"
            "  max_data=BYTES       znode data limit; writes past it fail with EFBIG (default %d)\n"
            "  entry_timeout=S, attr_timeout=S\n"
            "                       how long the kernel may cache names and attributes (default\n"
            "                       %.0f; the watch invalidates them on every change)\n"
            "  uid=N, gid=N         owner shown for every file (default: the daemon's)\n"
            "  max_threads=N        FUSE worker threads at most (default %d)\n"
            "  log=LEVEL            error, warn, info (default) or debug\n"
            "  logfile=PATH         append the log there (a background daemon has no stderr)\n"
            "\n"
            "FUSE options: allow_other, default_permissions, auto_unmount, fsname=NAME,\n"
            "subtype=NAME, and the other mount options of mount.fuse3(8).\n",
            prog, DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_MAX_DATA, DEFAULT_CACHE_TIMEOUT,
            DEFAULT_MAX_THREADS);
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
    (void)out;
    struct cli *c = data;
    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (c->nonopt == 0)
            c->servers = strdup(arg);
        else if (c->nonopt == 1)
            c->mountpoint = strdup(arg);
        else {
            fprintf(stderr, "zkfs-fused: unexpected argument '%s'\n", arg);
            return -1;
        }
        c->nonopt++;
        return 0;
    case KEY_RO:
        /* Not passed to the kernel: the daemon must still be able to replay remote changes
         * through the mount for inotify; it refuses changes itself. */
        c->ro = 1;
        return 0;
    case KEY_FG:
        c->foreground = 1;
        return 0;
    case KEY_DEBUG:
        c->debug = 1;
        c->foreground = 1;
        return 1;
    case KEY_SINGLE:
        c->singlethread = 1;
        return 0;
    case KEY_HELP:
        c->help = 1;
        return 0;
    case KEY_VERSION:
        c->version = 1;
        return 0;
    case KEY_FSNAME:
        c->has_fsname = 1;
        return 1;
    case KEY_SUBTYPE:
        c->has_subtype = 1;
        return 1;
    default:
        return 1;
    }
}

/* "-ofsname=..." with the commas and backslashes of SERVERS escaped for fuse_opt. */
static char *fsname_arg(const char *servers)
{
    size_t n = strlen(servers);
    char *s = malloc(strlen("-ofsname=") + 2 * n + 1);
    if (!s)
        return NULL;
    char *p = s + sprintf(s, "-ofsname=");
    for (const char *q = servers; *q; q++) {
        if (*q == ',' || *q == '\\')
            *p++ = '\\';
        *p++ = *q;
    }
    *p = 0;
    return s;
}

static int parse_level(const char *s, enum log_level *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .link = op_link,
    .rename = op_rename,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
};

static int run_loop(struct fs *fs, const struct cli *c)
{
    if (c->singlethread)
        return fuse_session_loop(fs->se);
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg)
        return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_idle_threads(cfg, 10);
    fuse_loop_cfg_set_max_threads(cfg, c->max_threads);
    int rc = fuse_session_loop_mt(fs->se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct cli c = {.session_timeout = DEFAULT_SESSION_TIMEOUT_MS,
                    .max_data = DEFAULT_MAX_DATA,
                    .max_threads = DEFAULT_MAX_THREADS,
                    .entry_timeout = DEFAULT_CACHE_TIMEOUT,
                    .attr_timeout = DEFAULT_CACHE_TIMEOUT,
                    .uid = -1,
                    .gid = -1};
    static struct fs fs_storage;
    struct fs *fs = &fs_storage;
    int ret = 1;
    enum log_level level = LOG_LEVEL_INFO;

    log_init("zkfs-fused", LOG_LEVEL_INFO);
    signal(SIGPIPE, SIG_IGN);
    if (fuse_opt_parse(&args, &c, cli_opts, cli_proc) != 0)
        goto out_args;
    if (c.help) {
        usage(stdout, argv[0]);
        ret = 0;
        goto out_args;
    }
    if (c.version) {
        printf("zkfs-fused %s (libfuse %s)\n", ZKFS_FUSED_VERSION, fuse_pkgversion());
        ret = 0;
        goto out_args;
    }
    if (!c.servers || !c.mountpoint) {
        usage(stderr, argv[0]);
        goto out_args;
    }
    if (c.log && parse_level(c.log, &level) < 0) {
        fprintf(stderr, "zkfs-fused: invalid log level '%s' (error, warn, info, debug)\n", c.log);
        goto out_args;
    }
    if (c.log)
        log_set_level(level);
    if (c.session_timeout <= 0 || c.op_timeout < 0 || c.max_data == 0 || c.max_threads == 0 ||
        c.entry_timeout < 0 || c.attr_timeout < 0) {
        fprintf(stderr, "zkfs-fused: invalid option value (see --help)\n");
        goto out_args;
    }
    char real[PATH_MAX];
    if (!realpath(c.mountpoint, real)) {
        fprintf(stderr, "zkfs-fused: %s: %s\n", c.mountpoint, strerror(errno));
        goto out_args;
    }
    /* A bad connect string fails here, before anything is mounted. */
    struct zc *probe = NULL;
    struct zc_opts po = {.servers = c.servers, .session_timeout_ms = c.session_timeout};
    if (zc_new(&probe, &po) != 0) {
        fprintf(stderr, "zkfs-fused: invalid server list '%s' (HOST:PORT,...[/CHROOT])\n",
                c.servers);
        goto out_args;
    }
    zc_free(probe);

    if (!c.has_subtype)
        fuse_opt_add_arg(&args, "-osubtype=zkfs");
    if (!c.has_fsname) {
        char *a = fsname_arg(c.servers);
        if (!a || fuse_opt_add_arg(&args, a) != 0) {
            free(a);
            goto out_args;
        }
        free(a);
    }

    memset(fs, 0, sizeof(*fs));
    fs->o.servers = c.servers;
    fs->o.mountpoint = real;
    fs->o.session_timeout_ms = c.session_timeout;
    fs->o.op_timeout_ms = c.op_timeout > 0 ? c.op_timeout : c.session_timeout;
    fs->o.sync_write = c.sync_write;
    fs->o.ro = c.ro;
    fs->o.max_data = c.max_data;
    fs->o.entry_timeout = c.entry_timeout;
    fs->o.attr_timeout = c.attr_timeout;
    fs->o.uid = c.uid >= 0 ? (uid_t)c.uid : getuid();
    fs->o.gid = c.gid >= 0 ? (gid_t)c.gid : getgid();
    fs->o.file_mode = 0644; /* even read-only: the replays open files for writing */
    fs->o.dir_mode = 0755;
    if (fs_init(fs) != 0) {
        fprintf(stderr, "zkfs-fused: out of memory\n");
        goto out_args;
    }
    the_fs = fs;

    fs->se = fuse_session_new(&args, &ops, sizeof(ops), fs);
    if (!fs->se)
        goto out_fs; /* libfuse printed why (an unknown option, ...) */
    if (fuse_set_signal_handlers(fs->se) != 0)
        goto out_session;
    if (fuse_session_mount(fs->se, real) != 0)
        goto out_signals;
    /* Mounted: from here mount(8) may return. Threads start after the fork. */
    if (fuse_daemonize(c.foreground) != 0)
        goto out_unmount;
    if (c.logfile) {
        int fd = open(c.logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        } else {
            LOG_ERROR("cannot open the log file %s: %s", c.logfile, strerror(errno));
        }
    }
    if (sess_start(fs) != 0)
        goto out_unmount;
    if (replay_start(fs) != 0) {
        LOG_ERROR("cannot start the replay thread");
        goto out_sess;
    }
    LOG_INFO("serving %s at %s (session timeout %d ms, op timeout %d ms%s%s)", c.servers, real,
             fs->o.session_timeout_ms, fs->o.op_timeout_ms, c.sync_write ? ", sync_write" : "",
             c.ro ? ", read-only" : "");
    ret = run_loop(fs, &c) != 0;
    LOG_INFO("unmounting %s", real);
    replay_stop_begin(fs);
    fuse_session_unmount(fs->se);
    replay_stop(fs);
    sess_close(fs);
    fuse_remove_signal_handlers(fs->se);
    fuse_session_destroy(fs->se);
    fs_close(fs);
    LOG_INFO("stopped");
    goto out_args;

out_sess:
    sess_close(fs);
out_unmount:
    fuse_session_unmount(fs->se);
out_signals:
    fuse_remove_signal_handlers(fs->se);
out_session:
    fuse_session_destroy(fs->se);
out_fs:
    fs_close(fs);
out_args:
    fuse_opt_free_args(&args);
    free(c.servers);
    free(c.mountpoint);
    free(c.log);
    free(c.logfile);
    return ret;
}
