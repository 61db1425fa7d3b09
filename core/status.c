/*
 * status.c: names, messages and HTTP codes for mp_status_t, and the
 * thread-local error detail buffer (see mp/status.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "mp/status.h"
#include "status_int.h"

static const struct {
    const char *name;
    const char *msg;
    int http;
} status_table[] = {
#define MP__STATUS_ROW(name, http, msg) {#name, msg, http},
    MP_STATUS_MAP(MP__STATUS_ROW)
#undef MP__STATUS_ROW
};

static __thread char err_detail[MP_ERR_MAX];
/* where mp_err_set() writes: this thread's buffer, or the running fiber's (core/fiber.c) */
static __thread char *err_buf;

void mp_err__use(char *buf)
{
    err_buf = buf;
}

static char *detail(void)
{
    return err_buf ? err_buf : err_detail;
}

const char *mp_status_str(mp_status_t s)
{
    if ((unsigned)s >= MP__STATUS_COUNT)
        return "unknown status";
    return status_table[s].msg;
}

const char *mp_status_name(mp_status_t s)
{
    if ((unsigned)s >= MP__STATUS_COUNT)
        return "EUNKNOWN";
    return status_table[s].name;
}

int mp_status_http(mp_status_t s)
{
    if ((unsigned)s >= MP__STATUS_COUNT)
        return 500;
    return status_table[s].http;
}

mp_status_t mp_status_from_http(int http)
{
    if (http >= 100 && http < 400)
        return MP_OK;
    for (int i = 1; i < MP__STATUS_COUNT; i++)
        if (status_table[i].http == http)
            return (mp_status_t)i;
    return http >= 500 ? MP_EINTERNAL : MP_EINVAL;
}

mp_status_t mp_err_set(mp_status_t s, const char *fmt, ...)
{
    /* through a copy: callers may wrap the previous detail ("...: %s", mp_err_get()) */
    char tmp[MP_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    memcpy(detail(), tmp, strlen(tmp) + 1);
    return s;
}

const char *mp_err_get(void)
{
    return detail();
}

void mp_err_clear(void)
{
    detail()[0] = '\0';
}
