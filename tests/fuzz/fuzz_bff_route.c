/*
 * fuzz_bff_route.c: libFuzzer target for the BFF's route templates and
 * matching (bff/routes.c: bff_route_parse, bff_route_match).
 *
 * A fixed client (literal, str, int and uuid parameters, the most segments
 * and parameters a template may have) is parsed once. Each input is split at
 * its first space into "METHOD path" (no space: GET and the whole input) and
 * matched. It must never crash; on a match every parameter value is
 * non-empty, NUL-terminated within its buffer, free of '/' and control
 * characters, an int is an integer of at most 15 characters and a uuid is
 * canonical and lower-case (handlers put them into subjects and queries); on
 * 405 the Allow list is non-empty. The input is then parsed as a template
 * (up to its first NUL): NULL or a message, never a crash or a leak, and a
 * template that parses matches a path made from it, with the right
 * parameters. Seeds: tests/fuzz/corpus/bff_route/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/input.h"
#include "bff_int.h"

static const char *const templates[][2] = {
    {"GET", "/products/{id:uuid}"},
    {"DELETE", "/products/{id:uuid}"},
    {"POST", "/products/{id:uuid}/reviews"},
    {"GET", "/page/{n:int}"},
    {"GET", "/tag/{name}"},
    {"GET", "/search/{q:str}/"},
    {"GET", "/users/{uid:int}/orders/{oid:uuid}/items/{item:str}"},
    {"PATCH", "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h:int}"},
    {"GET", "/a/b/c/d/e/f/g/h/i/j/k/{last}"},
    {"GET", "/home"},
    {"GET", "/"},
};
#define NTEMPLATES (sizeof(templates) / sizeof(templates[0]))

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_bff_route: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void route_dispose(bff_route_t *r)
{
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->path);
}

static bff_client_t *client(void)
{
    static bff_route_t routes[NTEMPLATES];
    static bff_client_t c;

    if (c.routes != NULL)
        return &c;
    for (size_t i = 0; i < NTEMPLATES; i++) {
        snprintf(routes[i].method, sizeof(routes[i].method), "%s", templates[i][0]);
        const char *err = bff_route_parse(&routes[i], templates[i][1]);
        if (err != NULL)
            die(templates[i][1], err);
    }
    c.routes = routes;
    c.nroutes = NTEMPLATES;
    return &c;
}

static bool is_int(const char *v)
{
    char *end;
    size_t len = strlen(v);
    if (len == 0 || len > 15)
        return false;
    (void)strtoll(v, &end, 10);
    return *end == '\0' && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'));
}

/* Checks a successful match of `method` against the route it names. */
static void check_match(const bff_match_t *m, const char *method, size_t mlen)
{
    const bff_route_t *r = m->route;
    size_t want = 0;

    if (r == NULL || strlen(r->method) != mlen || memcmp(r->method, method, mlen) != 0)
        die("matched a route of another method", r ? r->path : NULL);
    for (size_t i = 0; i < r->nsegs; i++)
        want += r->is_param[i];
    if (m->nparams != want || m->nparams > BFF_MAX_PARAMS)
        die("parameter count differs from the template's", r->path);
    for (size_t i = 0, seg = 0; i < m->nparams; i++, seg++) {
        const char *v = m->values[i];
        size_t len = strnlen(v, sizeof(m->values[i]));
        while (!r->is_param[seg])
            seg++;
        if (m->names[i] != r->segs[seg] || m->types[i] != r->ptype[seg])
            die("parameter name or type is not the template's", r->path);
        if (len == 0 || len == sizeof(m->values[i]))
            die("parameter value empty or not NUL-terminated", r->path);
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)v[j] < 0x20 || v[j] == 0x7f || v[j] == '/')
                die("parameter value holds '/' or a control character", v);
        if (m->types[i] == BFF_P_INT && !is_int(v))
            die("int parameter is not an integer", v);
        if (m->types[i] == BFF_P_UUID) {
            if (!mp_uuid_valid(v))
                die("uuid parameter is not a uuid", v);
            for (size_t j = 0; j < len; j++)
                if (v[j] >= 'A' && v[j] <= 'Z')
                    die("uuid parameter is not lower-case", v);
        }
    }
}

static void match_input(const char *text, size_t size)
{
    const char *sp = memchr(text, ' ', size);
    const char *method = sp ? text : "GET", *path = sp ? sp + 1 : text;
    size_t mlen = sp ? (size_t)(sp - text) : 3, plen = sp ? size - mlen - 1 : size;
    bff_match_t m;
    char allow[64];

    memset(&m, 0xa5, sizeof(m)); /* no stale NULs to hide a missing terminator */
    memset(allow, 'X', sizeof(allow));
    switch (bff_route_match(&m, client(), method, mlen, path, plen, allow, sizeof(allow))) {
    case BFF_MATCH_OK:
        check_match(&m, method, mlen);
        break;
    case BFF_MATCH_METHOD:
        if (memchr(allow, '\0', sizeof(allow)) == NULL || allow[0] == '\0')
            die("405 without an Allow list", NULL);
        break;
    default:
        break;
    }
}

/* A template that parses must match a path built from it: literals as written, a value of each parameter's type. */
static void check_template(bff_route_t *r, const char *tmpl)
{
    static const char *const sample[] = {
        [BFF_P_STR] = "x%41", [BFF_P_INT] = "-42", [BFF_P_UUID] = "0F8FAD5B-D9CB-469F-A165-70867728950E"};
    char path[4096];
    size_t len = 0, nparams = 0;

    if (r->path == NULL || strcmp(r->path, tmpl) != 0)
        die("the parsed route does not keep its template", tmpl);
    if (r->nsegs > BFF_MAX_SEGS)
        die("more segments than a route holds", tmpl);
    for (size_t i = 0; i < r->nsegs; i++) {
        const char *seg = r->is_param[i] ? sample[r->ptype[i]] : r->segs[i];
        if (r->segs[i] == NULL || r->segs[i][0] == '\0' || strchr(r->segs[i], '/'))
            die("a segment is missing, empty or holds '/'", tmpl);
        if (r->is_param[i] && strpbrk(r->segs[i], "{}:"))
            die("a parameter name holds a brace or a colon", tmpl);
        nparams += r->is_param[i];
        len += (size_t)snprintf(path + len, sizeof(path) - len, "/%s", seg);
        if (len >= sizeof(path))
            return; /* a template longer than any sample path: nothing more to check */
    }
    if (nparams > BFF_MAX_PARAMS)
        die("more parameters than a match holds", tmpl);
    if (r->nsegs == 0)
        len = (size_t)snprintf(path, sizeof(path), "/");

    bff_client_t c = {.routes = r, .nroutes = 1};
    bff_match_t m;
    char allow[64];
    if (bff_route_match(&m, &c, r->method, strlen(r->method), path, len, allow, sizeof(allow)) != BFF_MATCH_OK)
        die("a template does not match a path made from it", path);
    check_match(&m, r->method, strlen(r->method));
    for (size_t i = 0; i < m.nparams; i++)
        if (strcmp(m.values[i], m.types[i] == BFF_P_STR   ? "xA"
                                : m.types[i] == BFF_P_INT ? "-42"
                                                          : "0f8fad5b-d9cb-469f-a165-70867728950e") != 0)
            die("a parameter value was not decoded as expected", m.values[i]);
}

static void parse_input(const char *text, size_t size)
{
    char *tmpl = strndup(text, size);
    bff_route_t r = {.method = "GET"};
    if (bff_route_parse(&r, tmpl) == NULL)
        check_template(&r, tmpl);
    route_dispose(&r);
    free(tmpl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    match_input((const char *)data, size);
    parse_input((const char *)data, size);
    return 0;
}
