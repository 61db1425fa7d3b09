/*
 * log.c: JSON-lines logging to stderr (see mp/log.h).
 *
 * Each line is formatted into a thread-local buffer and written with a
 * single write(2): POSIX keeps such writes whole on pipes up to PIPE_BUF and
 * in practice on files, so concurrent threads never splice lines together.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mp/buf.h"
#include "mp/log.h"

static const char *proc_service = "moonport";
static mp_log_level_t min_level = MP_LOG_INFO;
static int log_fd = 2;
static __thread const char *thread_service;
static __thread mp_buf_t line;
static pthread_key_t line_key; /* frees a thread's line buffer when the thread exits */
static pthread_once_t line_once = PTHREAD_ONCE_INIT;

static void free_line(void *p)
{
    mp_buf_dispose(p);
}

static void make_key(void)
{
    pthread_key_create(&line_key, free_line);
}

static const char *level_names[] = {"debug", "info", "warn", "error", "fatal"};

void mp_log_init(const char *service, mp_log_level_t lvl)
{
    if (service)
        proc_service = service;
    min_level = lvl;
}

void mp_log_set_thread_service(const char *service)
{
    thread_service = service;
}

void mp_log_set_fd(int fd)
{
    log_fd = fd;
}

bool mp_log_level_parse(mp_log_level_t *out, const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (mp_log_level_t)i;
            return true;
        }
    }
    return false;
}

bool mp_log_enabled(mp_log_level_t lvl)
{
    return lvl >= min_level;
}

static void put_field(mp_buf_t *b, const char *key, const char *val)
{
    mp_buf_puts(b, ",\"");
    mp_buf_json_escape(b, key, strlen(key));
    mp_buf_puts(b, "\":\"");
    mp_buf_json_escape(b, val, strlen(val));
    mp_buf_puts(b, "\"");
}

static void begin_line(mp_log_level_t lvl, const mp_log_ctx_t *ctx, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char tbuf[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);

    if (line.base == NULL) {
        pthread_once(&line_once, make_key);
        pthread_setspecific(line_key, &line);
    }
    mp_buf_reset(&line);
    mp_buf_printf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"", tbuf, ts.tv_nsec / 1000000, level_names[lvl]);
    put_field(&line, "service", thread_service ? thread_service : proc_service);
    put_field(&line, "msg", msg);
    if (ctx && ctx->request_id)
        put_field(&line, "request_id", ctx->request_id);
    if (ctx && ctx->trace_id)
        put_field(&line, "trace_id", ctx->trace_id);
}

static void end_line(void)
{
    mp_buf_puts(&line, "}\n");
    const char *p = line.base;
    size_t left = line.len;
    while (left > 0) {
        ssize_t n = write(log_fd, p, left);
        if (n <= 0)
            break; /* nowhere left to report a failing log write */
        p += n;
        left -= (size_t)n;
    }
}

void mp_log(mp_log_level_t lvl, const mp_log_ctx_t *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (lvl < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    begin_line(lvl, ctx, msg);
    end_line();
}

void mp_log_kv(mp_log_level_t lvl, const mp_log_ctx_t *ctx, const char *msg, ...)
{
    va_list ap;
    const char *k, *v;

    if (lvl < min_level)
        return;
    begin_line(lvl, ctx, msg);
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        v = va_arg(ap, const char *);
        if (v != NULL)
            put_field(&line, k, v);
    }
    va_end(ap);
    end_line();
}

bool mp_log_now_and_then(mp_log_limiter_t *l, int64_t every_ms, uint64_t *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1; /* never 0, the "none yet" mark */
    int64_t last = atomic_load(&l->last_ms);
    if ((last != 0 && now - last < every_ms) || !atomic_compare_exchange_strong(&l->last_ms, &last, now)) {
        atomic_fetch_add(&l->suppressed, 1);
        return false;
    }
    uint64_t n = atomic_exchange(&l->suppressed, 0);
    if (suppressed)
        *suppressed = n;
    return true;
}
