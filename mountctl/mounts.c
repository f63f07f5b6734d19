/* mountctl mount/umount: run zkfs-fused or fusermount3 and check /proc/self/mountinfo. */
#include "mounts.h"
#include "mountinfo.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MOUNT_WAIT_MS 10000

/* The zkfs-fused installed next to this mountctl, else the one on PATH. */
static void fused_path(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, len, "%s/zkfs-fused", self);
            if (access(buf, X_OK) == 0)
                return;
        }
    }
    snprintf(buf, len, "zkfs-fused");
}

/* The filesystem type mounted at path (canonical), copied into type; 0 if none. */
static int mounted_type(const char *path, char *type, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        *sep = 0;
        char *save = NULL, *fields[6] = {0};
        char *t = strtok_r(line, " ", &save);
        for (int i = 0; t && i < 6; i++, t = strtok_r(NULL, " ", &save))
            fields[i] = t;
        if (!fields[4])
            continue;
        mountinfo_unescape(fields[4]);
        if (strcmp(fields[4], path) != 0)
            continue;
        char *fstype = sep + 3, *sp = strchr(fstype, ' ');
        if (sp)
            *sp = 0;
        snprintf(type, len, "%s", fstype);
        found = 1; /* the last one wins: it is on top */
    }
    free(line);
    fclose(f);
    return found;
}

/* Runs argv and waits for it; what it writes on stderr before exiting is passed on, but its
 * descendants (a daemon, fusermount3's auto-unmount helper) are not waited for. Returns the
 * exit status, or -1 if it could not run. */
static int run_child(char *const argv[])
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        dup2(pfd[1], STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    int status = 0;
    for (;;) {
        char buf[4096];
        ssize_t n;
        while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
            if (fwrite(buf, 1, (size_t)n, stderr) != (size_t)n)
                break;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        poll(&p, 1, 50);
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
        if (fwrite(buf, 1, (size_t)n, stderr) != (size_t)n)
            break;
    close(pfd[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int mounts_mount(const char *servers, const char *mountpoint, const char *opts, int timeout_ms)
{
    char real[PATH_MAX], type[64];
    if (!realpath(mountpoint, real)) {
        fprintf(stderr, "mountctl: mount: %s: %s\n", mountpoint, strerror(errno));
        return CLI_EXIT_ERR;
    }
    if (mounted_type(real, type, sizeof(type)) && strcmp(type, "fuse.zkfs") == 0) {
        fprintf(stderr, "mountctl: mount: %s is already a zkfs mount\n", real);
        return CLI_EXIT_ERR;
    }
    char prog[PATH_MAX + 16];
    fused_path(prog, sizeof(prog));
    char *av[6] = {prog, (char *)servers, real, NULL, NULL, NULL};
    if (opts) {
        av[3] = "-o";
        av[4] = (char *)opts;
    }
    int rc = run_child(av);
    if (rc != 0) {
        fprintf(stderr, "mountctl: mount: %s exited with status %d\n", prog, rc);
        return CLI_EXIT_ERR;
    }
    /* The daemon mounts before it goes to the background; check anyway. */
    for (int waited = 0;; waited += 20) {
        if (mounted_type(real, type, sizeof(type)) && strncmp(type, "fuse", 4) == 0)
            return 0;
        if (waited >= timeout_ms || waited >= MOUNT_WAIT_MS)
            break;
        usleep(20000);
    }
    fprintf(stderr, "mountctl: mount: %s did not appear as a mount\n", real);
    return CLI_EXIT_ERR;
}

int mounts_umount(const char *mountpoint, int lazy)
{
    char real[PATH_MAX], type[64];
    /* realpath would stat the mount point, which hangs or fails on a dead mount. */
    if (mountpoint[0] == '/')
        snprintf(real, sizeof(real), "%s", mountpoint);
    else if (!realpath(mountpoint, real))
        snprintf(real, sizeof(real), "%s", mountpoint);
    if (!mounted_type(real, type, sizeof(type))) {
        fprintf(stderr, "mountctl: umount: %s is not mounted\n", real);
        return CLI_EXIT_ERR;
    }
    char *av[] = {"fusermount3", lazy ? "-uz" : "-u", real, NULL};
    int rc = run_child(av);
    if (rc != 0) {
        fprintf(stderr, "mountctl: umount: fusermount3 exited with status %d%s\n", rc,
                lazy ? "" : " (busy? -z unmounts lazily)");
        return CLI_EXIT_ERR;
    }
    return 0;
}
