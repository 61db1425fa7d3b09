/*
 * problem.c: RFC 9457 problem bodies (see mp/problem.h). The `type` is
 * "about:blank" so the title is the status's reason phrase, as the RFC
 * prescribes when no more specific type is documented.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "mp/problem.h"

const char *mp_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void put_str(mp_buf_t *out, const char *key, const char *val)
{
    mp_buf_printf(out, ",\"%s\":\"", key);
    mp_buf_json_escape(out, val, strlen(val));
    mp_buf_puts(out, "\"");
}

void mp_problem_render(mp_buf_t *out, int status, const char *detail, const char *request_id, json_t *errors)
{
    mp_buf_puts(out, "{\"type\":\"about:blank\"");
    put_str(out, "title", mp_http_reason(status));
    mp_buf_printf(out, ",\"status\":%d", status);
    put_str(out, "detail", detail && *detail ? detail : mp_http_reason(status));
    if (request_id)
        put_str(out, "request_id", request_id);
    if (errors && json_array_size(errors) > 0) {
        char *e = json_dumps(errors, JSON_COMPACT);
        if (e) {
            mp_buf_puts(out, ",\"errors\":");
            mp_buf_puts(out, e);
            free(e);
        }
    }
    mp_buf_puts(out, "}");
}

/* Shortens `s` (of `len` bytes) so it does not end inside a UTF-8 sequence. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len, cont = 0;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && cont < 3) {
        i--;
        cont++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
    if (need > cont)
        s[i - 1] = '\0';
}

/* Replaces every non-ASCII byte with '?': the fallback for text that is not valid UTF-8. */
static char *ascii_only(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return s;
}

void mp_problem_add(mp_problem_errors_t *e, const char *pointer, const char *fmt, ...)
{
    char msg[512], ptr[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg))
        trim_partial_utf8(msg, sizeof(msg) - 1);
    if (e->list == NULL)
        e->list = json_array();
    json_t *item = json_pack("{s:s, s:s}", "pointer", pointer, "detail", msg);
    if (item == NULL) {
        /* jansson refuses invalid UTF-8; dropping the error would let a bad request through as valid */
        snprintf(ptr, sizeof(ptr), "%s", pointer);
        item = json_pack("{s:s, s:s}", "pointer", ascii_only(ptr), "detail", ascii_only(msg));
    }
    json_array_append_new(e->list, item);
}

size_t mp_problem_count(const mp_problem_errors_t *e)
{
    return e->list ? json_array_size(e->list) : 0;
}

void mp_problem_errors_dispose(mp_problem_errors_t *e)
{
    json_decref(e->list);
    e->list = NULL;
}

void mp_json_pointer_join(char *out, size_t size, const char *prefix, const char *key)
{
    /* snprintf(out, size, "%s/", prefix) without the formatting machinery: validation joins one per field */
    size_t plen = strlen(prefix), n = plen + 1;
    if (n < size) {
        memmove(out, prefix, plen);
        out[plen] = '/';
    } else {
        memmove(out, prefix, size - 1);
    }
    const char *p;
    for (p = key; *p && n + 3 < size; p++) {
        if (*p == '~') {
            out[n++] = '~';
            out[n++] = '0';
        } else if (*p == '/') {
            out[n++] = '~';
            out[n++] = '1';
        } else {
            out[n++] = *p;
        }
    }
    if (n < size && *p != '\0')
        trim_partial_utf8(out, n); /* a long key was cut: not inside a character */
    out[n < size ? n : size - 1] = '\0';
}
