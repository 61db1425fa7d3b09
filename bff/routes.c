/*
 * routes.c: route templates declared by scripts, with typed parameters:
 * "/products/{id:uuid}", "/page/{n:int}", "/tag/{name}" (a string). A value
 * that does not fit its type is a 400, so handlers never see a malformed id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/input.h"
#include "mp/url.h"
#include "bff_int.h"

const char *bff_route_parse(bff_route_t *r, const char *tmpl)
{
    const char *p = tmpl;
    size_t nparams = 0;
    r->path = mp_xstrdup(tmpl);
    if (*p != '/')
        return "a path must start with /";
    while (*p == '/' && p[1] != '\0') {
        p++;
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return "a path may not contain an empty segment";
        if (r->nsegs == BFF_MAX_SEGS)
            return "too many path segments";
        bool param = p[0] == '{' && p[len - 1] == '}';
        if (!param && (memchr(p, '{', len) || memchr(p, '}', len)))
            return "a parameter must be a whole segment, like {id}";
        r->is_param[r->nsegs] = param;
        if (param) {
            if (++nparams > BFF_MAX_PARAMS)
                return "too many parameters";
            const char *colon = memchr(p, ':', len);
            size_t nlen = colon ? (size_t)(colon - p - 1) : len - 2;
            if (nlen == 0)
                return "a parameter needs a name";
            r->ptype[r->nsegs] = BFF_P_STR;
            if (colon) {
                size_t tlen = (size_t)(p + len - 1 - colon - 1);
                if (tlen == 3 && memcmp(colon + 1, "int", 3) == 0)
                    r->ptype[r->nsegs] = BFF_P_INT;
                else if (tlen == 4 && memcmp(colon + 1, "uuid", 4) == 0)
                    r->ptype[r->nsegs] = BFF_P_UUID;
                else if (!(tlen == 3 && memcmp(colon + 1, "str", 3) == 0))
                    return "parameter types are str, int and uuid";
            }
            r->segs[r->nsegs++] = mp_xstrndup(p + 1, nlen);
        } else {
            r->segs[r->nsegs++] = mp_xstrndup(p, len);
        }
        p += len;
    }
    return NULL;
}

static bool typed_ok(bff_ptype_t t, char *v, long len)
{
    if (len <= 0)
        return false;
    for (long i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '/')
            return false;
    if (t == BFF_P_INT) {
        if (len > 15)
            return false;
        for (long i = v[0] == '-' ? 1 : 0; i < len; i++)
            if (v[i] < '0' || v[i] > '9')
                return false;
        return len > (v[0] == '-' ? 1 : 0);
    }
    if (t == BFF_P_UUID) {
        if (!mp_uuid_valid(v))
            return false;
        for (long i = 0; i < len; i++)
            if (v[i] >= 'A' && v[i] <= 'F')
                v[i] = (char)(v[i] - 'A' + 'a');
    }
    return true;
}

bff_match_result_t bff_route_match(bff_match_t *m, bff_client_t *c, const char *method, size_t mlen, const char *path,
                                   size_t len, char *allow, size_t allow_size)
{
    const char *segs[BFF_MAX_SEGS + 1];
    size_t lens[BFF_MAX_SEGS + 1], n = 0, alen = 0;
    bool other = false;
    if (allow_size)
        allow[0] = '\0';
    /* split; a trailing slash is tolerated */
    for (size_t i = 0; i < len;) {
        if (path[i] != '/')
            return BFF_MATCH_NONE;
        size_t s = ++i;
        while (i < len && path[i] != '/')
            i++;
        if (i == s) {
            if (i == len)
                break;
            return BFF_MATCH_NONE;
        }
        if (n == BFF_MAX_SEGS + 1)
            return BFF_MATCH_NONE;
        segs[n] = path + s;
        lens[n++] = i - s;
    }
    for (size_t ri = 0; ri < c->nroutes; ri++) {
        bff_route_t *r = &c->routes[ri];
        if (r->nsegs != n)
            continue;
        bool same = true;
        for (size_t i = 0; i < n && same; i++)
            same = r->is_param[i] || (strlen(r->segs[i]) == lens[i] && memcmp(r->segs[i], segs[i], lens[i]) == 0);
        if (!same)
            continue;
        if (strlen(r->method) != mlen || memcmp(r->method, method, mlen) != 0) {
            other = true;
            if (alen + strlen(r->method) + 3 < allow_size)
                alen += (size_t)snprintf(allow + alen, allow_size - alen, "%s%s", alen ? ", " : "", r->method);
            continue;
        }
        m->route = r;
        m->nparams = 0;
        for (size_t i = 0; i < n; i++) {
            if (!r->is_param[i])
                continue;
            char *v = m->values[m->nparams];
            if (lens[i] >= sizeof(m->values[0]))
                return BFF_MATCH_BAD_PARAM;
            long dl = mp_url_decode(v, segs[i], lens[i], false);
            if (!typed_ok(r->ptype[i], v, dl))
                return BFF_MATCH_BAD_PARAM;
            m->names[m->nparams] = r->segs[i];
            m->types[m->nparams++] = r->ptype[i];
        }
        return BFF_MATCH_OK;
    }
    return other ? BFF_MATCH_METHOD : BFF_MATCH_NONE;
}
