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

void mp_problem_add(mp_problem_errors_t *e, const char *pointer, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->list == NULL)
        e->list = json_array();
    json_t *item = json_pack("{s:s, s:s}", "pointer", pointer, "detail", msg);
    if (item)
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
    size_t n = (size_t)snprintf(out, size, "%s/", prefix);
    for (const char *p = key; *p && n + 3 < size; p++) {
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
    out[n < size ? n : size - 1] = '\0';
}
