/*
 * fuzz_route.c: libFuzzer target for gw_routes_match() and gw_pct_decode().
 *
 * A fixed route table (literal, parameter and eight-parameter routes, as in
 * config/routes.yaml) is loaded once. Each input is split at its first space
 * into "METHOD path" (no space: the whole input is the path, method GET) and
 * matched. It must never crash, and when it matches, every parameter must be
 * non-empty, NUL-terminated within its buffer, and free of '/' and control
 * characters (handlers put them into NATS subjects, SQL and logs); on 405 the
 * Allow list must be non-empty. Seeds: tests/fuzz/corpus/route/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/yaml.h"
#include "routes.h"

static const char routes_yaml[] = "defaults: {timeout: 3s}\n"
                                  "routes:\n"
                                  "  - {method: GET, path: \"/v1/users/{userId}\", subject: user.v1.get}\n"
                                  "  - {method: PATCH, path: \"/v1/users/{userId}\", subject: user.v1.update}\n"
                                  "  - {method: GET, path: /v1/users/me, subject: user.v1.me}\n"
                                  "  - {method: POST, path: /v1/auth/login, subject: auth.v1.login, auth: none}\n"
                                  "  - {method: DELETE, path: \"/v1/auth/sessions/{id}\", subject: auth.v1.revoke}\n"
                                  "  - {method: GET, path: \"/v1/orgs/{org}/teams/{team}/\", subject: team.v1.get}\n"
                                  "  - {method: GET, path: \"/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}\", subject: p.v1.p}\n"
                                  "  - {method: GET, path: /.well-known/jwks.json, subject: auth.v1.jwks}\n"
                                  "  - {method: GET, path: /, subject: root.v1.get}\n";

static const gw_routes_t *table(void)
{
    static gw_routes_t routes;
    static int loaded;
    mp_yaml_doc_t *doc = NULL;

    if (loaded)
        return &routes;
    if (mp_yaml_parse(&doc, "routes.yaml", routes_yaml, strlen(routes_yaml)) != MP_OK ||
        gw_routes_load(&routes, doc) != MP_OK) {
        fprintf(stderr, "fuzz_route: route table: %s\n", mp_err_get());
        abort();
    }
    mp_yaml_destroy(doc);
    loaded = 1;
    return &routes;
}

static void check_params(const gw_match_t *m)
{
    if (m->nparams > GW_MAX_PARAMS)
        abort();
    for (size_t i = 0; i < m->nparams; i++) {
        const char *v = m->values[i];
        size_t len = strnlen(v, GW_MAX_PARAM_LEN);
        if (len == 0 || len == GW_MAX_PARAM_LEN || m->names[i] == NULL)
            abort();
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)v[j] < 0x20 || v[j] == 0x7f || v[j] == '/')
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *sp = memchr(text, ' ', size);
    const char *method = sp ? text : "GET", *path = sp ? sp + 1 : text;
    size_t method_len = sp ? (size_t)(sp - text) : 3, path_len = sp ? size - method_len - 1 : size;
    gw_match_t m;
    char allow[64];

    memset(allow, 'X', sizeof(allow));
    switch (gw_routes_match(&m, table(), method, method_len, path, path_len, allow, sizeof(allow))) {
    case GW_MATCH_OK:
        check_params(&m);
        break;
    case GW_MATCH_BAD_METHOD:
        if (memchr(allow, '\0', sizeof(allow)) == NULL || allow[0] == '\0')
            abort();
        break;
    default:
        break;
    }

    /* the decoder on its own, with both '+' rules: it writes at most len+1 bytes, and never decodes a NUL (raw
     * NULs pass through: HTTP parsers refuse them before they get here) */
    char *out = malloc(path_len + 1);
    bool raw_nul = memchr(path, '\0', path_len) != NULL;
    for (int plus = 0; plus < 2; plus++) {
        long n = gw_pct_decode(out, path, path_len, plus);
        if (n > (long)path_len || (n >= 0 && out[n] != '\0') ||
            (n >= 0 && !raw_nul && memchr(out, '\0', (size_t)n) != NULL))
            abort();
    }
    free(out);
    return 0;
}
