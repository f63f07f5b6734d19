/* mountctl status: ask each replica of the list what it is (ServerInfo over the native
 * protocol, no session needed) and print one row per replica. */
#include "status.h"

#include "client.pb-c.h"
#include "frame.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STATUS_TIMEOUT_MS 3000

struct row {
    char server[300];
    int ok;
    char err[128];
    uint32_t id, epoch, sessions, znodes, leader;
    char role[16];
    int serving;
    uint64_t last_zxid, applied;
};

static int wait_fd(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int rc = poll(&p, 1, ms);
    return rc > 0 ? 0 : rc == 0 ? -ETIMEDOUT : -errno;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (wait_fd(fd, POLLIN, STATUS_TIMEOUT_MS))
            return -ETIMEDOUT;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return r == 0 ? -ECONNRESET : -errno;
        got += (size_t)r;
    }
    return 0;
}

static int dial(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    if (getaddrinfo(host, port, &hints, &res))
        return -EHOSTUNREACH;
    int fd = -ECONNREFUSED;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_fd(fd, POLLOUT, STATUS_TIMEOUT_MS) == 0)) {
            int soerr = 0;
            socklen_t l = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
            if (soerr == 0)
                break;
        }
        close(fd);
        fd = -ECONNREFUSED;
    }
    freeaddrinfo(res);
    return fd;
}

static void probe(struct row *w)
{
    char hp[300];
    snprintf(hp, sizeof(hp), "%s", w->server);
    char *colon = strrchr(hp, ':');
    if (!colon) {
        snprintf(w->err, sizeof(w->err), "no port");
        return;
    }
    *colon = 0;
    char *host = hp;
    if (host[0] == '[') { /* [v6]:port */
        host++;
        host[strlen(host) - 1] = 0;
    }
    int fd = dial(host, colon + 1);
    if (fd < 0) {
        snprintf(w->err, sizeof(w->err), "%s", strerror(-fd));
        return;
    }
    Zkfs__Cli__Request req = ZKFS__CLI__REQUEST__INIT;
    req.xid = 1;
    req.op_case = ZKFS__CLI__REQUEST__OP_SERVER_INFO;
    req.server_info = 1;
    size_t n = zkfs__cli__request__get_packed_size(&req);
    uint8_t out[64];
    memcpy(out, "zkfs", 4);
    frame_put_u32(out + 4, (uint32_t)n);
    zkfs__cli__request__pack(&req, out + 8);
    int rc = write(fd, out, n + 8) == (ssize_t)(n + 8) ? 0 : -EIO;
    uint8_t hdr[4], *body = NULL;
    if (!rc)
        rc = read_full(fd, hdr, 4);
    uint32_t blen = rc ? 0 : frame_get_u32(hdr);
    if (!rc && blen > (1u << 20))
        rc = -EMSGSIZE;
    if (!rc && !(body = malloc(blen ? blen : 1)))
        rc = -ENOMEM;
    if (!rc)
        rc = read_full(fd, body, blen);
    close(fd);
    Zkfs__Cli__ServerMessage *m = rc ? NULL : zkfs__cli__server_message__unpack(NULL, blen, body);
    free(body);
    if (rc || !m || m->msg_case != ZKFS__CLI__SERVER_MESSAGE__MSG_REPLY || !m->reply->info) {
        snprintf(w->err, sizeof(w->err), "%s",
                 rc ? strerror(-rc) : "no answer (not a zkfs replica, or not serving)");
        if (m)
            zkfs__cli__server_message__free_unpacked(m, NULL);
        return;
    }
    const Zkfs__Cli__ServerInfo *i = m->reply->info;
    w->ok = 1;
    w->id = i->id;
    snprintf(w->role, sizeof(w->role), "%s", i->role);
    w->serving = i->serving;
    w->epoch = i->epoch;
    w->last_zxid = i->last_zxid;
    w->applied = i->applied;
    w->sessions = i->sessions;
    w->znodes = i->znodes;
    w->leader = i->leader;
    zkfs__cli__server_message__free_unpacked(m, NULL);
}

int status_run(const char *servers, int json)
{
    char list[4096];
    snprintf(list, sizeof(list), "%s", servers);
    char *slash = strchr(list, '/');
    if (slash)
        *slash = 0; /* a chroot does not matter here */
    struct row rows[64];
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok && n < 64; tok = strtok_r(NULL, ",", &save)) {
        memset(&rows[n], 0, sizeof(rows[n]));
        snprintf(rows[n].server, sizeof(rows[n].server), "%s", tok);
        probe(&rows[n++]);
    }
    uint64_t top = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].ok && rows[i].serving && rows[i].applied > top)
            top = rows[i].applied;
        bad |= !rows[i].ok;
    }
    if (json)
        printf("[");
    else
        printf("%-4s %-10s %-7s %-6s %-14s %-14s %-8s %-8s %-6s %s\n", "ID", "ROLE", "SERVING",
               "EPOCH", "ZXID", "APPLIED", "SESSIONS", "ZNODES", "LAG", "SERVER");
    for (int i = 0; i < n; i++) {
        struct row *w = &rows[i];
        /* lag: committed txns this replica has still to apply, when the epochs agree */
        long long lag =
            w->ok && (top >> 32) == (w->applied >> 32) ? (long long)(top - w->applied) : -1;
        if (json) {
            if (w->ok)
                printf("%s{\"server\":\"%s\",\"id\":%u,\"role\":\"%s\",\"serving\":%s,"
                       "\"epoch\":%u,\"zxid\":%llu,\"applied\":%llu,\"sessions\":%u,"
                       "\"znodes\":%u,\"leader\":%u,\"lag\":%lld}",
                       i ? "," : "", w->server, w->id, w->role, w->serving ? "true" : "false",
                       w->epoch, (unsigned long long)w->last_zxid, (unsigned long long)w->applied,
                       w->sessions, w->znodes, w->leader, lag);
            else
                printf("%s{\"server\":\"%s\",\"error\":\"%s\"}", i ? "," : "", w->server, w->err);
        } else if (w->ok) {
            char z[24], a[24], l[24];
            snprintf(z, sizeof(z), "0x%llx", (unsigned long long)w->last_zxid);
            snprintf(a, sizeof(a), "0x%llx", (unsigned long long)w->applied);
            if (lag >= 0)
                snprintf(l, sizeof(l), "%lld", lag);
            else
                snprintf(l, sizeof(l), "?");
            printf("%-4u %-10s %-7s %-6u %-14s %-14s %-8u %-8u %-6s %s\n", w->id, w->role,
                   w->serving ? "yes" : "no", w->epoch, z, a, w->sessions, w->znodes, l, w->server);
        } else {
            printf("%-4s %-10s %-7s %-6s %-14s %-14s %-8s %-8s %-6s %s (%s)\n", "-", "unreachable",
                   "-", "-", "-", "-", "-", "-", "-", w->server, w->err);
        }
    }
    if (json)
        printf("]\n");
    fflush(stdout);
    if (bad)
        fprintf(stderr, "mountctl: status: some replicas are unreachable\n");
    return bad ? 1 : 0;
}
