/* The error table: every zkfs code with its name, message, ZooKeeper code and errno. */
#include "err.h"

#include <errno.h>
#include <string.h>

struct err_entry {
    int code;
    const char *name;
    const char *msg;
    int eno;
};

static const struct err_entry table[] = {
    {ZE_SYSTEMERROR, "SYSTEMERROR", "system error", EIO},
    {ZE_RUNTIMEINCONSISTENCY, "RUNTIMEINCONSISTENCY", "an earlier operation of the multi failed",
     EIO},
    {ZE_DATAINCONSISTENCY, "DATAINCONSISTENCY", "data inconsistency", EIO},
    {ZE_CONNECTIONLOSS, "CONNECTIONLOSS", "connection to the cluster lost", EIO},
    {ZE_MARSHALLINGERROR, "MARSHALLINGERROR", "malformed request", EINVAL},
    {ZE_UNIMPLEMENTED, "UNIMPLEMENTED", "operation not implemented", ENOSYS},
    {ZE_OPERATIONTIMEOUT, "OPERATIONTIMEOUT", "operation timed out", ETIMEDOUT},
    {ZE_BADARGUMENTS, "BADARGUMENTS", "invalid arguments", EINVAL},
    {ZE_UNKNOWNSESSION, "UNKNOWNSESSION", "unknown session", EIO},
    {ZE_APIERROR, "APIERROR", "API error", EIO},
    {ZE_NONODE, "NONODE", "no such node", ENOENT},
    {ZE_NOAUTH, "NOAUTH", "not authorized", EACCES},
    {ZE_BADVERSION, "BADVERSION", "version mismatch", ESTALE},
    {ZE_NOCHILDRENFOREPHEMERALS, "NOCHILDRENFOREPHEMERALS", "ephemeral nodes cannot have children",
     EPERM},
    {ZE_NODEEXISTS, "NODEEXISTS", "node already exists", EEXIST},
    {ZE_NOTEMPTY, "NOTEMPTY", "node has children", ENOTEMPTY},
    {ZE_SESSIONEXPIRED, "SESSIONEXPIRED", "session expired", EIO},
    {ZE_INVALIDCALLBACK, "INVALIDCALLBACK", "invalid callback", EINVAL},
    {ZE_INVALIDACL, "INVALIDACL", "invalid ACL", EINVAL},
    {ZE_AUTHFAILED, "AUTHFAILED", "authentication failed", EACCES},
    {ZE_SESSIONMOVED, "SESSIONMOVED", "session moved to another server", EIO},
    {ZE_NOTREADONLY, "NOTREADONLY", "server is read-only", EROFS},
    {ZE_EPHEMERALONLOCALSESSION, "EPHEMERALONLOCALSESSION", "ephemeral on a local session", EPERM},
    {ZE_NOWATCHER, "NOWATCHER", "no such watcher", ENOENT},
    {ZE_REQUESTTIMEOUT, "REQUESTTIMEOUT", "request timed out", ETIMEDOUT},
    {ZE_RECONFIGDISABLED, "RECONFIGDISABLED", "reconfiguration is disabled", EPERM},
    {ZE_QUOTAEXCEEDED, "QUOTAEXCEEDED", "quota exceeded", EDQUOT},
    {ZE_THROTTLEDOP, "THROTTLEDOP", "operation throttled", EAGAIN},
};

static const struct err_entry *find(int code)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].code == code)
            return &table[i];
    return NULL;
}

const char *err_name(int code)
{
    if (code == 0)
        return "OK";
    const struct err_entry *e = find(code);
    if (e)
        return e->name;
    if (code > ERR_BASE && code < 0) {
        const char *n = strerrorname_np(-code);
        return n ? n : "ERRNO";
    }
    return "UNKNOWN";
}

const char *err_msg(int code)
{
    if (code == 0)
        return "ok";
    const struct err_entry *e = find(code);
    if (e)
        return e->msg;
    if (code > ERR_BASE && code < 0)
        return strerror(-code);
    return "unknown error";
}

int err_to_zk(int code)
{
    if (code == 0)
        return 0;
    if (find(code))
        return code - ERR_BASE;
    return ZE_SYSTEMERROR - ERR_BASE;
}

int err_from_zk(int zk)
{
    if (zk == 0)
        return 0;
    int code = ERR_ZK(zk);
    return find(code) ? code : ZE_SYSTEMERROR;
}

int err_to_errno(int code)
{
    if (code == 0)
        return 0;
    const struct err_entry *e = find(code);
    if (e)
        return e->eno;
    if (code > ERR_BASE && code < 0)
        return -code;
    return EIO;
}
