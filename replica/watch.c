/* The watch table: per path, a list of registrations; per owner, the same registrations. */
#include "watch.h"

#include "path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct watch_reg {
    struct watch_owner *owner;
    struct watch_path *wp;
    enum watch_kind kind;
    struct watch_reg *p_prev, *p_next; /* in wp->regs */
    struct watch_reg *o_prev, *o_next; /* in owner->regs */
};

struct watch_path {
    char *path;
    struct watch_reg *regs;
    UT_hash_handle hh;
};

void watch_init(struct watch_mgr *m, watch_deliver_cb deliver, void *arg)
{
    memset(m, 0, sizeof(*m));
    m->deliver = deliver;
    m->arg = arg;
}

static void reg_unlink(struct watch_mgr *m, struct watch_reg *r)
{
    struct watch_path *wp = r->wp;
    if (r->p_prev)
        r->p_prev->p_next = r->p_next;
    else
        wp->regs = r->p_next;
    if (r->p_next)
        r->p_next->p_prev = r->p_prev;
    if (r->o_prev)
        r->o_prev->o_next = r->o_next;
    else
        r->owner->regs = r->o_next;
    if (r->o_next)
        r->o_next->o_prev = r->o_prev;
    r->owner->count--;
    m->total--;
    if (r->kind == WATCH_RECURSIVE)
        m->n_recursive--;
    free(r);
    if (!wp->regs) {
        HASH_DEL(m->paths, wp);
        free(wp->path);
        free(wp);
    }
}

void watch_close(struct watch_mgr *m)
{
    struct watch_path *wp, *tmp;
    HASH_ITER(hh, m->paths, wp, tmp)
    {
        while (wp->regs && wp->regs->p_next)
            reg_unlink(m, wp->regs->p_next);
        reg_unlink(m, wp->regs); /* frees wp */
    }
}

int watch_add(struct watch_mgr *m, struct watch_owner *o, const char *path, enum watch_kind kind)
{
    struct watch_path *wp = NULL;
    HASH_FIND_STR(m->paths, path, wp);
    if (wp) {
        for (struct watch_reg *r = wp->regs; r; r = r->p_next)
            if (r->owner == o && r->kind == kind)
                return 0;
    } else {
        wp = calloc(1, sizeof(*wp));
        if (!wp || !(wp->path = strdup(path))) {
            free(wp);
            return -ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, m->paths, wp->path, strlen(wp->path), wp);
    }
    struct watch_reg *r = calloc(1, sizeof(*r));
    if (!r) {
        if (!wp->regs) {
            HASH_DEL(m->paths, wp);
            free(wp->path);
            free(wp);
        }
        return -ENOMEM;
    }
    r->owner = o;
    r->wp = wp;
    r->kind = kind;
    r->p_next = wp->regs;
    if (wp->regs)
        wp->regs->p_prev = r;
    wp->regs = r;
    r->o_next = o->regs;
    if (o->regs)
        o->regs->o_prev = r;
    o->regs = r;
    o->count++;
    m->total++;
    if (kind == WATCH_RECURSIVE)
        m->n_recursive++;
    return 0;
}

int watch_remove(struct watch_mgr *m, struct watch_owner *o, const char *path, unsigned kinds)
{
    struct watch_path *wp = NULL;
    HASH_FIND_STR(m->paths, path, wp);
    if (!wp)
        return 0;
    int removed = 0;
    struct watch_reg *r = wp->regs;
    while (r) {
        struct watch_reg *next = r->p_next;
        int last = next == NULL;
        if (r->owner == o && (kinds & (1u << r->kind))) {
            /* unlinking the last registration frees wp: stop touching it afterwards */
            int frees_wp = wp->regs == r && next == NULL;
            reg_unlink(m, r);
            removed++;
            if (frees_wp)
                break;
        }
        if (last)
            break;
        r = next;
    }
    return removed;
}

void watch_remove_owner(struct watch_mgr *m, struct watch_owner *o)
{
    while (o->regs)
        reg_unlink(m, o->regs);
}

/* Owners already notified by the current trigger: few, so a small array does. */
struct fired {
    struct watch_owner **v;
    size_t n, cap;
};

static int fired_add(struct fired *f, struct watch_owner *o)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i] == o)
            return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct watch_owner **nv = realloc(f->v, cap * sizeof(*nv));
        if (!nv)
            return 1; /* deliver anyway: a duplicate event beats a lost one */
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = o;
    return 1;
}

static int kind_fires(enum watch_kind kind, int type, int at_path)
{
    if (type == EV_META_CHANGED)
        return kind == WATCH_PERSISTENT || kind == WATCH_RECURSIVE;
    if (!at_path)
        return kind == WATCH_RECURSIVE && type != EV_CHILDREN_CHANGED;
    switch (kind) {
    case WATCH_DATA:
    case WATCH_EXIST:
        return type == EV_CREATED || type == EV_DELETED || type == EV_DATA_CHANGED;
    case WATCH_CHILD:
        return type == EV_CHILDREN_CHANGED || type == EV_DELETED;
    case WATCH_PERSISTENT:
        return 1;
    case WATCH_RECURSIVE:
        return type != EV_CHILDREN_CHANGED;
    }
    return 0;
}

static void fire_at(struct watch_mgr *m, const char *wpath, int type, const char *path,
                    int64_t zxid, int at_path, struct fired *f)
{
    struct watch_path *wp = NULL;
    HASH_FIND_STR(m->paths, wpath, wp);
    if (!wp)
        return;
    struct watch_reg *r = wp->regs;
    while (r) {
        struct watch_reg *next = r->p_next;
        int last = next == NULL;
        if (kind_fires(r->kind, type, at_path)) {
            struct watch_owner *o = r->owner;
            int one_shot = r->kind <= WATCH_CHILD;
            int frees_wp = one_shot && wp->regs == r && next == NULL;
            if (one_shot)
                reg_unlink(m, r);
            if (fired_add(f, o))
                m->deliver(o, type, path, zxid, m->arg);
            if (frees_wp)
                return;
        }
        if (last)
            break;
        r = next;
    }
}

void watch_trigger(struct watch_mgr *m, int type, const char *path, int64_t zxid)
{
    if (!m->paths)
        return;
    struct fired f = {0};
    fire_at(m, path, type, path, zxid, 1, &f);
    if (m->n_recursive > 0 && type != EV_CHILDREN_CHANGED) {
        size_t n = strlen(path);
        char *anc = malloc(n + 1);
        if (anc) {
            memcpy(anc, path, n + 1);
            size_t len;
            while ((len = path_parent_len(anc)) > 0) {
                anc[len] = 0;
                fire_at(m, anc, type, path, zxid, 0, &f);
            }
            free(anc);
        }
    }
    free(f.v);
}

uint64_t watch_count(const struct watch_mgr *m)
{
    return m->total;
}

uint32_t watch_path_count(const struct watch_mgr *m)
{
    return HASH_COUNT(m->paths);
}
