/*
 * routes.c: loading and matching the gateway's routes (see routes.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "routes.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

/* every problem in the file, reported at once */
typedef struct errs {
    const char *file;
    mp_buf_t buf;
} errs_t;

void gw_errorf(mp_buf_t *errs, const char *file, const mp_yaml_node_t *at, const char *fmt, ...)
{
    char msg[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mp_buf_printf(errs, "%s%s:%d: %s", errs->len ? "\n" : "", file, at ? at->line : 0, msg);
}

#define route_error(e, node, ...) gw_errorf(&(e)->buf, (e)->file, node, __VA_ARGS__)

/* ---- loading ----------------------------------------------------------------- */

static const char *scalar(const mp_yaml_node_t *map, const char *key)
{
    const mp_yaml_node_t *n = mp_yaml_get(map, key);
    return n && n->type == MP_YAML_SCALAR ? n->value : NULL;
}

/* Parses "3s"/"250ms" durations (ms) and "16KiB"/"1MiB" sizes (bytes). */
static bool parse_scaled(const char *text, bool duration, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || v < 0 || errno != 0)
        return false;
    const char *u = end;
    struct unit {
        const char *name;
        int64_t f;
    };
    static const struct unit durs[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {NULL, 0}};
    static const struct unit sizes[] = {{"", 1},          {"B", 1},       {"KiB", 1024}, {"k", 1024},
                                        {"MiB", 1048576}, {"M", 1048576}, {NULL, 0}};
    for (const struct unit *x = duration ? durs : sizes; x->name; x++) {
        if (strcmp(u, x->name) == 0) {
            if (v > INT64_MAX / x->f)
                return false; /* would wrap around into a small, accepted value */
            *out = v * x->f;
            return true;
        }
    }
    return false;
}

static bool split_template(gw_route_t *rt, errs_t *e, const mp_yaml_node_t *node)
{
    const char *p = rt->path;
    size_t nparams = 0;
    if (p[0] != '/') {
        route_error(e, node, "route path \"%s\" must start with /", rt->path);
        return false;
    }
    while (*p == '/' && p[1] != '\0') {
        p++;
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || rt->nsegs == GW_MAX_SEGMENTS) {
            route_error(e, node, "route path \"%s\" has an empty segment or too many segments", rt->path);
            return false;
        }
        bool param = p[0] == '{' && p[len - 1] == '}' && len > 2;
        if (param && ++nparams > GW_MAX_PARAMS) {
            route_error(e, node, "route path \"%s\" has more than %d parameters", rt->path, GW_MAX_PARAMS);
            return false;
        }
        if (!param && (memchr(p, '{', len) || memchr(p, '}', len))) {
            route_error(e, node, "route path \"%s\": a parameter must be a whole segment like {id}", rt->path);
            return false;
        }
        rt->is_param[rt->nsegs] = param;
        rt->segs[rt->nsegs++] = param ? mp_xstrndup(p + 1, len - 2) : mp_xstrndup(p, len);
        p += len;
    }
    return true;
}

static const char *setting(const mp_yaml_node_t *node, const mp_yaml_node_t *defaults, const char *key)
{
    return scalar(node, key) ? scalar(node, key) : scalar(defaults, key);
}

/* Per-route policies: load shedding and retries. */
static bool load_policies(gw_route_t *rt, errs_t *e, const mp_yaml_node_t *node, const mp_yaml_node_t *defaults)
{
    const char *inflight = setting(node, defaults, "max_inflight"), *retry = setting(node, defaults, "retry");
    const char *attempt = setting(node, defaults, "attempt_timeout");
    if (inflight) {
        char *end;
        long v = strtol(inflight, &end, 10);
        if (*end != '\0' || v < 1 || v > 1000000) {
            route_error(e, node, "route max_inflight \"%s\" must be an integer from 1 to 1000000", inflight);
            return false;
        }
        rt->max_inflight = (int)v;
    }
    rt->retry = -1;
    if (retry) {
        if (strcmp(retry, "true") != 0 && strcmp(retry, "false") != 0) {
            route_error(e, node, "route retry \"%s\" must be true or false", retry);
            return false;
        }
        rt->retry = retry[0] == 't';
    }
    if (attempt && (!parse_scaled(attempt, true, &rt->attempt_timeout_ms) || rt->attempt_timeout_ms < 1 ||
                    rt->attempt_timeout_ms > rt->timeout_ms)) {
        route_error(e, node, "route attempt_timeout \"%s\" must be a duration no longer than the timeout", attempt);
        return false;
    }
    return true;
}

static bool load_route(gw_route_t *rt, errs_t *e, const mp_yaml_node_t *node, const mp_yaml_node_t *defaults)
{
    const char *method = scalar(node, "method"), *path = scalar(node, "path"), *subject = scalar(node, "subject");
    static const char *const known[] = {"method",     "path", "subject", "auth",         "role",  "timeout",
                                        "body_limit", "body", "group",   "max_inflight", "retry", "attempt_timeout",
                                        NULL};
    if (node->type != MP_YAML_MAP) {
        route_error(e, node, "a route must be a map with method, path and subject");
        return false;
    }
    for (size_t i = 0; i < node->n; i++) {
        bool ok = false;
        for (size_t k = 0; known[k]; k++)
            ok |= strcmp(node->keys[i], known[k]) == 0;
        if (!ok) {
            route_error(e, node->kids[i], "unknown route setting \"%s\"", node->keys[i]);
            return false;
        }
    }
    if (!method || !path || !subject) {
        route_error(e, node, "a route needs method, path and subject");
        return false;
    }
    bool method_ok = false;
    for (size_t i = 0; methods[i]; i++)
        method_ok |= strcmp(methods[i], method) == 0;
    if (!method_ok) {
        route_error(e, node, "route method \"%s\" is not one of GET, POST, PUT, PATCH, DELETE", method);
        return false;
    }
    rt->line = node->line;
    rt->method = mp_xstrdup(method);
    rt->path = mp_xstrdup(path);
    rt->subject = mp_xstrdup(subject);
    if (!split_template(rt, e, node))
        return false;

    const char *auth = scalar(node, "auth") ? scalar(node, "auth") : scalar(defaults, "auth");
    if (auth == NULL || strcmp(auth, "required") == 0) {
        rt->auth = GW_AUTH_REQUIRED; /* deny by default: a route is public only when it says so */
    } else if (strcmp(auth, "none") == 0) {
        rt->auth = GW_AUTH_NONE;
    } else if (strcmp(auth, "optional") == 0) {
        rt->auth = GW_AUTH_OPTIONAL;
    } else {
        route_error(e, node, "route auth \"%s\" must be none, optional or required", auth);
        return false;
    }
    const char *role = scalar(node, "role");
    if (role) {
        rt->role = mp_xstrdup(role);
        rt->auth = GW_AUTH_REQUIRED;
    }
    const char *timeout = scalar(node, "timeout") ? scalar(node, "timeout") : scalar(defaults, "timeout");
    rt->timeout_ms = 3000;
    if (timeout && (!parse_scaled(timeout, true, &rt->timeout_ms) || rt->timeout_ms < 1 || rt->timeout_ms > 300000)) {
        route_error(e, node, "route timeout \"%s\" must be a duration like 250ms or 3s", timeout);
        return false;
    }
    const char *limit = scalar(node, "body_limit") ? scalar(node, "body_limit") : scalar(defaults, "body_limit");
    rt->body_limit = 1024 * 1024;
    if (limit && (!parse_scaled(limit, false, &rt->body_limit) || rt->body_limit > 64 * 1024 * 1024)) {
        route_error(e, node, "route body_limit \"%s\" must be a size like 16KiB or 1MiB", limit);
        return false;
    }
    const char *body = scalar(node, "body");
    rt->body = body && strcmp(body, "raw") == 0 ? GW_BODY_RAW : GW_BODY_JSON;
    if (body && rt->body != GW_BODY_RAW && strcmp(body, "json") != 0) {
        route_error(e, node, "route body \"%s\" must be json or raw", body);
        return false;
    }
    const char *group = scalar(node, "group");
    rt->group = mp_xstrdup(group ? group : "default");
    return load_policies(rt, e, node, defaults);
}

static bool same_template(const gw_route_t *a, const gw_route_t *b)
{
    if (a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++)
        if (a->is_param[i] != b->is_param[i] || (!a->is_param[i] && strcmp(a->segs[i], b->segs[i]) != 0))
            return false;
    return true;
}

mp_status_t gw_routes_load(gw_routes_t *out, const mp_yaml_doc_t *doc)
{
    errs_t errs = {.file = doc->file}, *e = &errs;
    const mp_yaml_node_t *defaults = mp_yaml_get(doc->root, "defaults"), *list = mp_yaml_get(doc->root, "routes");
    bool ok = true;
    memset(out, 0, sizeof(*out));
    if (list == NULL || list->type != MP_YAML_SEQ) {
        route_error(e, doc->root, "the routes file needs a `routes:` list");
        mp_status_t st = mp_err_set(MP_EINVAL, "%s", e->buf.base);
        mp_buf_dispose(&e->buf);
        return st;
    }
    out->items = mp_xcalloc(list->n ? list->n : 1, sizeof(*out->items));
    for (size_t i = 0; i < list->n; i++) {
        gw_route_t *rt = &out->items[out->n++];
        rt->index = out->n - 1;
        if (!load_route(rt, e, list->kids[i], defaults)) {
            ok = false;
            continue;
        }
        for (size_t j = 0; j + 1 < out->n; j++) {
            /* a route refused before its method was read has none */
            if (out->items[j].method != NULL && strcmp(out->items[j].method, rt->method) == 0 &&
                same_template(&out->items[j], rt)) {
                route_error(e, list->kids[i], "route %s %s repeats the one on line %d", rt->method, rt->path,
                            out->items[j].line);
                ok = false;
            }
        }
        if (rt->body_limit > out->max_body)
            out->max_body = rt->body_limit;
    }
    mp_status_t st = ok ? MP_OK : mp_err_set(MP_EINVAL, "%s", e->buf.base);
    mp_buf_dispose(&e->buf);
    return st;
}

void gw_routes_dispose(gw_routes_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_route_t *rt = &r->items[i];
        for (size_t s = 0; s < rt->nsegs; s++)
            free(rt->segs[s]);
        free(rt->method);
        free(rt->path);
        free(rt->subject);
        free(rt->role);
        free(rt->group);
    }
    free(r->items);
    memset(r, 0, sizeof(*r));
}

/* ---- matching ----------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long gw_pct_decode(char *out, const char *in, size_t len, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(in[i + 1]), lo = hi < 0 ? -1 : hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

typedef struct seg {
    const char *p;
    size_t len;
} seg_t;

/* Splits "/a/b/c" into segments; false when there are too many or an empty one (except a trailing slash). */
static bool split_path(seg_t *segs, size_t *n, const char *path, size_t len)
{
    size_t i = 0;
    *n = 0;
    if (len == 0 || path[0] != '/')
        return false;
    if (len == 1)
        return true;
    while (i < len) {
        i++; /* skip the slash */
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (i == start)
            return i == len; /* trailing slash is tolerated; "//" is not */
        if (*n == GW_MAX_SEGMENTS + 1)
            return false;
        segs[(*n)++] = (seg_t){path + start, i - start};
    }
    return true;
}

static bool valid_param(const char *v, long len)
{
    if (len <= 0)
        return false;
    for (long i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '/')
            return false;
    return true;
}

static bool segments_match(const gw_route_t *rt, const seg_t *segs, size_t n)
{
    if (rt->nsegs != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!rt->is_param[i] && (strlen(rt->segs[i]) != segs[i].len || memcmp(rt->segs[i], segs[i].p, segs[i].len)))
            return false;
    return true;
}

/* True when `method` is already in the ", "-separated list `allow`. */
static bool allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

gw_match_result_t gw_routes_match(gw_match_t *m, const gw_routes_t *r, const char *method, size_t method_len,
                                  const char *path, size_t len, char *allow, size_t allow_size)
{
    seg_t segs[GW_MAX_SEGMENTS + 1];
    size_t n, allow_len = 0;
    bool other_method = false;

    if (!split_path(segs, &n, path, len) || n > GW_MAX_SEGMENTS)
        return GW_MATCH_NOT_FOUND;
    if (allow && allow_size)
        allow[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const gw_route_t *rt = &r->items[i];
        if (!segments_match(rt, segs, n))
            continue;
        if (strlen(rt->method) != method_len || memcmp(rt->method, method, method_len) != 0) {
            other_method = true;
            /* several templates can match one path (/users/me, /users/{id}): list each method once */
            if (allow && allow_len + strlen(rt->method) + 3 < allow_size && !allow_has(allow, rt->method))
                allow_len += (size_t)snprintf(allow + allow_len, allow_size - allow_len, "%s%s", allow_len ? ", " : "",
                                              rt->method);
            continue;
        }
        m->route = rt;
        m->nparams = 0;
        for (size_t s = 0; s < n; s++) {
            if (!rt->is_param[s])
                continue;
            if (segs[s].len >= GW_MAX_PARAM_LEN)
                return GW_MATCH_BAD_PATH;
            long dl = gw_pct_decode(m->values[m->nparams], segs[s].p, segs[s].len, false);
            if (!valid_param(m->values[m->nparams], dl))
                return GW_MATCH_BAD_PATH;
            m->names[m->nparams++] = rt->segs[s];
        }
        return GW_MATCH_OK;
    }
    return other_method ? GW_MATCH_BAD_METHOD : GW_MATCH_NOT_FOUND;
}

bool gw_query_parse(json_t *q, const char *qs, size_t len, char *why, size_t why_size)
{
    const char *p = qs, *end = qs + len;
    size_t count = 0;
    bool ok = true;
    while (p < end && ok) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t klen = (size_t)((eq ? eq : stop) - p), vlen = eq ? (size_t)(stop - eq - 1) : 0;
        if (klen > 0) {
            if (++count > GW_MAX_QUERY_PARAMS) {
                snprintf(why, why_size, "more than %d query parameters", GW_MAX_QUERY_PARAMS);
                return false;
            }
            char *key = mp_xmalloc(klen + 1), *val = mp_xmalloc(vlen + 1);
            json_t *jk = NULL, *jv = NULL;
            if (gw_pct_decode(key, p, klen, true) < 0 || gw_pct_decode(val, eq ? eq + 1 : "", vlen, true) < 0 ||
                (jk = json_string(key)) == NULL || (jv = json_string(val)) == NULL) {
                snprintf(why, why_size, "the query string is not valid percent-encoded UTF-8");
                ok = false;
            } else {
                json_t *have = json_object_get(q, key);
                if (have == NULL)
                    json_object_set_new(q, key, jv);
                else if (json_is_array(have))
                    json_array_append_new(have, jv);
                else
                    json_object_set_new(q, key, json_pack("[O o]", have, jv));
            }
            json_decref(jk);
            free(key);
            free(val);
        }
        p = stop + 1;
    }
    return ok;
}
