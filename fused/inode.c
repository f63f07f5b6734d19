/* fused's inode table: node ids for the kernel, bound to znode paths, counted and forgotten. */
#include "inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t inode_number(const char *path, int64_t czxid)
{
    if (strcmp(path, "/") == 0)
        return INODE_ROOT;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        h = (h ^ *p) * 16777619u;
    uint64_t hash16 = (h ^ (h >> 16)) & 0xffff;
    uint64_t ino = ((uint64_t)czxid & 0x0000ffffffffffffULL) ^ (hash16 << 48);
    if (ino <= INODE_ROOT)
        ino |= 1ULL << 63;
    return ino;
}

static struct inode *inode_alloc(struct inodes *in, const char *path)
{
    struct inode *ino = calloc(1, sizeof(*ino));
    if (!ino || !(ino->path = strdup(path))) {
        free(ino);
        return NULL;
    }
    ino->nodeid = in->next_id++;
    HASH_ADD(hh, in->by_id, nodeid, sizeof(ino->nodeid), ino);
    return ino;
}

static void inode_free(struct inodes *in, struct inode *ino)
{
    if (ino->bound)
        HASH_DELETE(hp, in->by_path, ino);
    HASH_DELETE(hh, in->by_id, ino);
    blob_unref(ino->data);
    free(ino->path);
    free(ino);
}

int inodes_init(struct inodes *in)
{
    memset(in, 0, sizeof(*in));
    in->next_id = INODE_ROOT;
    struct inode *root = inode_alloc(in, "/");
    if (!root)
        return -ENOMEM;
    root->is_dir = 1;
    root->nlookup = 1;
    root->bound = 1;
    HASH_ADD_KEYPTR(hp, in->by_path, root->path, strlen(root->path), root);
    return 0;
}

void inodes_close(struct inodes *in)
{
    struct inode *ino, *tmp;
    HASH_ITER(hh, in->by_id, ino, tmp)
    {
        inode_free(in, ino);
    }
}

struct inode *inode_get(struct inodes *in, uint64_t nodeid)
{
    struct inode *ino = NULL;
    HASH_FIND(hh, in->by_id, &nodeid, sizeof(nodeid), ino);
    return ino;
}

struct inode *inode_at(struct inodes *in, const char *path)
{
    struct inode *ino = NULL;
    HASH_FIND(hp, in->by_path, path, strlen(path), ino);
    return ino;
}

void inode_detach(struct inodes *in, struct inode *ino)
{
    if (!ino->bound || ino->nodeid == INODE_ROOT)
        return;
    HASH_DELETE(hp, in->by_path, ino);
    ino->bound = 0;
    if (ino->nlookup == 0 && ino->pins == 0) {
        inode_free(in, ino);
        return;
    }
    if (in->data_of && !ino->is_dir && !ino->data)
        ino->data = in->data_of(in->arg, ino->path, ino->czxid);
}

int inode_bind(struct inodes *in, struct inode *ino, const char *path)
{
    struct inode *old = inode_at(in, path);
    if (old == ino)
        return 0;
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    if (old)
        inode_detach(in, old);
    if (ino->bound)
        HASH_DELETE(hp, in->by_path, ino);
    free(ino->path);
    ino->path = p;
    ino->bound = 1;
    ino->synthetic = 0;
    HASH_ADD_KEYPTR(hp, in->by_path, ino->path, strlen(ino->path), ino);
    return 0;
}

struct inode *inode_for(struct inodes *in, const char *path, const struct zc_stat *st, int is_dir)
{
    struct inode *ino = inode_at(in, path);
    if (ino && ino->nodeid == INODE_ROOT) {
        ino->st = *st;
        ino->czxid = st->czxid;
        return ino;
    }
    if (ino && ino->czxid == st->czxid && ino->is_dir == is_dir && !ino->synthetic) {
        ino->st = *st;
        return ino;
    }
    struct inode *n = inode_alloc(in, path);
    if (!n)
        return NULL;
    if (ino)
        inode_detach(in, ino);
    n->czxid = st->czxid;
    n->is_dir = is_dir;
    n->st = *st;
    n->bound = 1;
    HASH_ADD_KEYPTR(hp, in->by_path, n->path, strlen(n->path), n);
    return n;
}

struct inode *inode_new_detached(struct inodes *in, const char *path, const struct zc_stat *st,
                                 int is_dir, int synthetic)
{
    struct inode *n = inode_alloc(in, path);
    if (!n)
        return NULL;
    n->czxid = st->czxid;
    n->is_dir = is_dir;
    n->st = *st;
    n->synthetic = synthetic;
    return n;
}

int inode_forget(struct inodes *in, struct inode *ino, uint64_t n, char **was_bound_path)
{
    if (was_bound_path)
        *was_bound_path = NULL;
    if (ino->nodeid == INODE_ROOT)
        return 0;
    ino->nlookup = n >= ino->nlookup ? 0 : ino->nlookup - n;
    if (ino->nlookup || ino->pins)
        return 0;
    if (ino->bound && was_bound_path)
        *was_bound_path = strdup(ino->path);
    inode_free(in, ino);
    return 1;
}

void inode_pin(struct inode *ino)
{
    ino->pins++;
}

void inode_unpin(struct inodes *in, struct inode *ino)
{
    if (ino->pins > 0)
        ino->pins--;
    if (ino->pins == 0 && ino->nlookup == 0 && !ino->bound && ino->nodeid != INODE_ROOT)
        inode_free(in, ino);
}
