/*
 * input.c: field-by-field checking of request bodies with JSON pointers in
 * every error (see mp/input.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "mp/input.h"
#include "mp/service.h"

void mp_input_init(mp_input_t *in, json_t *obj)
{
    memset(in, 0, sizeof(*in));
    in->obj = obj;
}

void mp_input_dispose(mp_input_t *in)
{
    mp_problem_errors_dispose(&in->errs);
}

size_t mp_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

static void pointer_of(char *out, size_t size, const char *key)
{
    mp_json_pointer_join(out, size, "", key);
}

void mp_input_fail(mp_input_t *in, const char *key, const char *fmt, ...)
{
    char ptr[256], msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pointer_of(ptr, sizeof(ptr), key);
    mp_problem_add(&in->errs, ptr, "%s", msg);
}

static void param_fail(mp_input_t *in, const char *key, const char *what)
{
    if (!in->bad_param)
        snprintf(in->param_detail, sizeof(in->param_detail), "parameter %s: %s", key, what);
    in->bad_param = 1;
    mp_input_fail(in, key, "%s", what);
}

/* Returns the field, or NULL when absent (recording "required" if so) or null-and-allowed. */
static json_t *field(mp_input_t *in, const char *key, unsigned flags)
{
    json_t *v = in->obj ? json_object_get(in->obj, key) : NULL;
    if (v == NULL || (json_is_null(v) && (flags & MP_IN_NULLABLE))) {
        if (v == NULL && (flags & MP_IN_REQUIRED)) {
            if (flags & MP_IN_PARAM)
                param_fail(in, key, "is required");
            else
                mp_input_fail(in, key, "is required");
        }
        return NULL;
    }
    return v;
}

const char *mp_input_str(mp_input_t *in, const char *key, unsigned flags, size_t min, size_t max)
{
    json_t *v = field(in, key, flags);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        if (flags & MP_IN_PARAM)
            param_fail(in, key, "must be a string");
        else
            mp_input_fail(in, key, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = mp_utf8_len(s);
    if (n < min || n > max) {
        char what[96];
        if (min == max)
            snprintf(what, sizeof(what), "must be %zu characters long", min);
        else
            snprintf(what, sizeof(what), "must be %zu to %zu characters long", min, max);
        if (flags & MP_IN_PARAM)
            param_fail(in, key, what);
        else
            mp_input_fail(in, key, "%s", what);
        return NULL;
    }
    return s;
}

bool mp_input_int(mp_input_t *in, const char *key, unsigned flags, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = field(in, key, flags);
    int64_t n;
    if (v == NULL)
        return false;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if ((flags & MP_IN_PARAM) && json_is_string(v)) {
        /* query strings carry numbers as text; only the canonical form (strtoll alone would skip spaces) */
        const char *s = json_string_value(v), *digits = s[0] == '-' ? s + 1 : s;
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*digits < '0' || *digits > '9' || (digits[0] == '0' && digits[1] != '\0') || *end != '\0' || errno != 0) {
            param_fail(in, key, "must be an integer");
            return false;
        }
        n = x;
    } else {
        if (flags & MP_IN_PARAM)
            param_fail(in, key, "must be an integer");
        else
            mp_input_fail(in, key, "must be an integer");
        return false;
    }
    if (n < min || n > max) {
        char what[96];
        snprintf(what, sizeof(what), "must be from %lld to %lld", (long long)min, (long long)max);
        if (flags & MP_IN_PARAM)
            param_fail(in, key, what);
        else
            mp_input_fail(in, key, "%s", what);
        return false;
    }
    *out = n;
    return true;
}

bool mp_input_bool(mp_input_t *in, const char *key, unsigned flags, bool *out)
{
    json_t *v = field(in, key, flags);
    if (v == NULL)
        return false;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if ((flags & MP_IN_PARAM) && json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
            *out = s[0] == 't';
            return true;
        }
        param_fail(in, key, "must be true or false");
        return false;
    }
    mp_input_fail(in, key, "must be true or false");
    return false;
}

json_t *mp_input_json(mp_input_t *in, const char *key, unsigned flags, json_type type)
{
    static const char *names[] = {"an object", "an array", "a string", "an integer",
                                  "a number",  "true",     "false",    "null"};
    json_t *v = field(in, key, flags);
    if (v == NULL)
        return NULL;
    if (json_typeof(v) != type) {
        mp_input_fail(in, key, "must be %s", names[type]);
        return NULL;
    }
    return v;
}

void mp_input_only(mp_input_t *in, const char *const *allowed)
{
    const char *key;
    json_t *v;
    if (in->obj == NULL)
        return;
    json_object_foreach(in->obj, key, v)
    {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(allowed[i], key) == 0)
                known = 1;
        if (!known)
            mp_input_fail(in, key, "is not a known field");
    }
}

bool mp_input_ok(const mp_input_t *in)
{
    return mp_problem_count(&in->errs) == 0 && !in->bad_param;
}

mp_status_t mp_input_reply(mp_svc_req_t *req, mp_input_t *in)
{
    mp_status_t st;
    if (in->bad_param)
        st = mp_svc_reply_problem(req, 400, in->param_detail, &in->errs);
    else
        st = mp_svc_reply_problem(req, 422, "the request has invalid fields", &in->errs);
    mp_input_dispose(in);
    return st;
}

void mp_input_page(mp_input_t *in, int64_t *limit, const char **cursor)
{
    *limit = 20;
    mp_input_int(in, "limit", MP_IN_PARAM, 1, 100, limit);
    *cursor = mp_input_str(in, "cursor", MP_IN_PARAM | MP_IN_NULLABLE, 1, 512);
}

bool mp_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool mp_input_uuid(mp_input_t *in, const char *key, unsigned flags, char out[37])
{
    json_t *v = field(in, key, flags);
    if (v == NULL)
        return false;
    const char *s = json_string_value(v);
    if (!mp_uuid_valid(s)) {
        if (flags & MP_IN_PARAM)
            param_fail(in, key, "must be an id (a UUID)");
        else
            mp_input_fail(in, key, "must be an id (a UUID)");
        return false;
    }
    for (int i = 0; i < 36; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
    out[36] = '\0';
    return true;
}

bool mp_https_url_valid(const char *url)
{
    size_t n = strlen(url);
    if (n > 2048 || strncasecmp(url, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f || url[i] == '\\')
            return false;
    const char *host = url + 8;
    size_t hl = strcspn(host, "/?#");
    /* userinfo would let "https://good.example@evil.example" read as the good host */
    return hl > 0 && memchr(host, '@', hl) == NULL && host[0] != ':' && host[0] != '.';
}
