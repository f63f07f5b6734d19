/* Allocation and release of requests. */
#include "request.h"

#include <stdlib.h>

struct request *request_new(void)
{
    return calloc(1, sizeof(struct request));
}

void req_op_args_free(struct req_op_args *a)
{
    free(a->path);
    free(a->data);
    acl_free(a->acls, a->n_acls);
}

void request_free(struct request *r)
{
    if (!r)
        return;
    req_op_args_free(&r->args);
    for (uint32_t i = 0; i < r->n_ops; i++)
        req_op_args_free(&r->ops[i]);
    free(r->ops);
    for (int k = 0; k < 5; k++) {
        for (uint32_t i = 0; i < r->n_watch_paths[k]; i++)
            free(r->watch_paths[k][i]);
        free(r->watch_paths[k]);
    }
    for (uint32_t i = 0; i < r->n_results; i++)
        free(r->results[i].path);
    free(r->results);
    free(r);
}
