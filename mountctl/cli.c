/* mountctl: the error reports, JSON strings and request round trip every command shares. */
#include "cli.h"

#include "err.h"

int cli_fail(struct cli *x, const char *what, int err)
{
    fprintf(stderr, "mountctl: %s %s: %s: %s\n", x->cmd, what, err_name(err), err_msg(err));
    return err == ZE_CONNECTIONLOSS ? CLI_EXIT_UNREACHABLE : CLI_EXIT_ERR;
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int cli_call(struct cli *x, const struct zc_req *req, cli_show_cb show)
{
    struct zc_result r;
    int rc = zc_call(x->zc, req, &r);
    int ret = rc ? cli_fail(x, req->path, rc) : show ? show(x, req, &r) : 0;
    zc_result_free(&r);
    return ret;
}
