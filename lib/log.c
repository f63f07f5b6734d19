/* Logging: each message is formatted into one buffer and written with a single write(2). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "zkfs";
static enum log_level log_level = LOG_LEVEL_INFO;

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *prog, enum log_level level)
{
    log_prog = prog;
    log_level = level;
    const char *env = getenv("ZKFS_LOG");
    if (!env)
        return;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(env, level_names[i]) == 0)
            log_level = (enum log_level)i;
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

int log_enabled(enum log_level level)
{
    return level <= log_level;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d]: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], log_prog, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    /* Keep each entry on one line whatever the message holds. */
    for (size_t i = (size_t)n; i < len; i++)
        if (buf[i] == '\n')
            buf[i] = ' ';
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}
