/*
 * test_routes.c: unit tests for services/gateway/routes.c.
 *
 * Routes are loaded from YAML text through mp_yaml_parse(), as the gateway
 * loads config/routes.yaml, so every load error is checked with the
 * `file:line` the operator would see. Matching gets paths as h2o hands them
 * over: percent-encoded and not NUL-terminated. The file includes routes.c
 * (its own directory resolves its "routes.h").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mp/yaml.h"
#include "../../../../services/gateway/routes.c"

/* One route per line so line numbers are easy to read: line N+3 holds routes[N]. */
static const char table_yaml[] =
    "defaults:\n"
    "  timeout: 2s\n"
    "routes:\n"
    "  - {method: GET, path: \"/v1/users/{userId}\", subject: user.v1.get}\n"
    "  - {method: PATCH, path: \"/v1/users/{userId}\", subject: user.v1.update}\n"
    "  - {method: GET, path: /v1/users/me, subject: user.v1.me, auth: optional}\n"
    "  - {method: POST, path: /v1/auth/login, subject: auth.v1.login, auth: none, "
    "body_limit: 16KiB, group: login}\n"
    "  - {method: GET, path: /v1/admin/stats, subject: admin.v1.stats, role: admin, "
    "auth: none}\n"
    "  - {method: PUT, path: /v1/files/, subject: files.v1.put, body: raw, "
    "timeout: 250ms, body_limit: 8MiB}\n"
    "  - {method: GET, path: \"/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}\", subject: p.v1.eight}\n"
    "  - {method: GET, path: /, subject: root.v1.get}\n";

static gw_routes_t table;

static int load_table(void **state)
{
    mp_yaml_doc_t *doc = NULL;
    if (mp_yaml_parse(&doc, "routes.yaml", table_yaml, strlen(table_yaml)) != MP_OK)
        return -1;
    mp_status_t st = gw_routes_load(&table, doc);
    mp_yaml_destroy(doc);
    if (st != MP_OK)
        fprintf(stderr, "%s\n", mp_err_get());
    return st == MP_OK ? 0 : -1;
}

static int free_table(void **state)
{
    gw_routes_dispose(&table);
    return 0;
}

/* Loads `text` expecting failure; compares the whole message with `want`. */
static void load_fails(const char *text, const char *want)
{
    mp_yaml_doc_t *doc = NULL;
    gw_routes_t r;
    assert_int_equal(mp_yaml_parse(&doc, "routes.yaml", text, strlen(text)), MP_OK);
    mp_status_t st = gw_routes_load(&r, doc);
    mp_yaml_destroy(doc);
    gw_routes_dispose(&r);
    if (st != MP_EINVAL || strcmp(mp_err_get(), want) != 0)
        fprintf(stderr, "--- want\n%s\n--- got (%s)\n%s\n", want, mp_status_name(st), mp_err_get());
    assert_int_equal(st, MP_EINVAL);
    assert_string_equal(mp_err_get(), want);
}

/* Loads one route given as a flow map (line 2) and returns it in `r` (dispose it). */
static const gw_route_t *load_one(gw_routes_t *r, const char *route)
{
    char text[512];
    mp_yaml_doc_t *doc = NULL;
    snprintf(text, sizeof(text), "routes:\n  - %s\n", route);
    assert_int_equal(mp_yaml_parse(&doc, "routes.yaml", text, strlen(text)), MP_OK);
    mp_status_t st = gw_routes_load(r, doc);
    mp_yaml_destroy(doc);
    if (st != MP_OK)
        fprintf(stderr, "%s\n", mp_err_get());
    assert_int_equal(st, MP_OK);
    assert_int_equal(r->n, 1);
    return &r->items[0];
}

static gw_match_result_t match(gw_match_t *m, const char *method, const char *path)
{
    return gw_routes_match(m, &table, method, strlen(method), path, strlen(path), NULL, 0);
}

/* ---- loading ------------------------------------------------------------- */

static void test_routes_load_fields_and_defaults(void **state)
{
    assert_int_equal(table.n, 8);
    const gw_route_t *get = &table.items[0];
    assert_string_equal(get->method, "GET");
    assert_string_equal(get->path, "/v1/users/{userId}");
    assert_string_equal(get->subject, "user.v1.get");
    assert_int_equal(get->nsegs, 3);
    assert_false(get->is_param[1]);
    assert_true(get->is_param[2]);
    assert_string_equal(get->segs[2], "userId");
    assert_int_equal(get->auth, GW_AUTH_REQUIRED); /* the default: deny unless a route says otherwise */
    assert_int_equal(get->timeout_ms, 2000);       /* from defaults */
    assert_int_equal(get->body_limit, 1024 * 1024);
    assert_int_equal(get->body, GW_BODY_JSON);
    assert_string_equal(get->group, "default");
    assert_null(get->role);
    assert_int_equal(get->line, 4);

    assert_int_equal(table.items[2].auth, GW_AUTH_OPTIONAL);
    const gw_route_t *login = &table.items[3];
    assert_int_equal(login->auth, GW_AUTH_NONE);
    assert_int_equal(login->body_limit, 16 * 1024);
    assert_string_equal(login->group, "login");
    const gw_route_t *admin = &table.items[4];
    assert_string_equal(admin->role, "admin");
    assert_int_equal(admin->auth, GW_AUTH_REQUIRED); /* a role implies required, even over auth: none */
    const gw_route_t *files = &table.items[5];
    assert_int_equal(files->body, GW_BODY_RAW);
    assert_int_equal(files->timeout_ms, 250);
    assert_int_equal(files->nsegs, 2); /* a trailing slash adds no segment */
    assert_int_equal(table.items[7].nsegs, 0);
    assert_int_equal(table.max_body, 8 * 1024 * 1024);
}

static void test_routes_default_auth_from_defaults(void **state)
{
    gw_routes_t r;
    mp_yaml_doc_t *doc = NULL;
    const char *text = "defaults: {auth: optional, body_limit: 2k}\n"
                       "routes:\n"
                       "  - {method: GET, path: /a, subject: a.v1.x}\n"
                       "  - {method: GET, path: /b, subject: b.v1.x, auth: required}\n";
    assert_int_equal(mp_yaml_parse(&doc, "r.yaml", text, strlen(text)), MP_OK);
    assert_int_equal(gw_routes_load(&r, doc), MP_OK);
    mp_yaml_destroy(doc);
    assert_int_equal(r.items[0].auth, GW_AUTH_OPTIONAL);
    assert_int_equal(r.items[0].body_limit, 2048);
    assert_int_equal(r.items[1].auth, GW_AUTH_REQUIRED);
    gw_routes_dispose(&r);

    const gw_route_t *rt = load_one(&r, "{method: DELETE, path: /x, subject: x.v1.del, timeout: 1m}");
    assert_int_equal(rt->auth, GW_AUTH_REQUIRED);
    assert_int_equal(rt->timeout_ms, 60000);
    gw_routes_dispose(&r);
    gw_routes_dispose(&r); /* twice is fine */
}

static void test_routes_each_error_has_file_line(void **state)
{
    load_fails("routes:\n  - {method: FETCH, path: /a, subject: s}\n",
               "routes.yaml:2: route method \"FETCH\" is not one of GET, POST, PUT, PATCH, DELETE");
    load_fails("routes:\n  - {method: GET, path: /a}\n", "routes.yaml:2: a route needs method, path and subject");
    load_fails("routes:\n  - {method: GET, path: \"/a/x{id}\", subject: s}\n",
               "routes.yaml:2: route path \"/a/x{id}\": a parameter must be a whole segment like {id}");
    load_fails("routes:\n  - {method: GET, path: a/b, subject: s}\n",
               "routes.yaml:2: route path \"a/b\" must start with /");
    load_fails("routes:\n  - {method: GET, path: /a//b, subject: s}\n",
               "routes.yaml:2: route path \"/a//b\" has an empty segment or too many segments");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, timeout: 3 weeks}\n",
               "routes.yaml:2: route timeout \"3 weeks\" must be a duration like 250ms or 3s");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, timeout: 0s}\n",
               "routes.yaml:2: route timeout \"0s\" must be a duration like 250ms or 3s");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, timeout: 301s}\n",
               "routes.yaml:2: route timeout \"301s\" must be a duration like 250ms or 3s");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, body_limit: lots}\n",
               "routes.yaml:2: route body_limit \"lots\" must be a size like 16KiB or 1MiB");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, body_limit: 65MiB}\n",
               "routes.yaml:2: route body_limit \"65MiB\" must be a size like 16KiB or 1MiB");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, body_limit: -1}\n",
               "routes.yaml:2: route body_limit \"-1\" must be a size like 16KiB or 1MiB");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, auth: maybe}\n",
               "routes.yaml:2: route auth \"maybe\" must be none, optional or required");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, body: xml}\n",
               "routes.yaml:2: route body \"xml\" must be json or raw");
    load_fails("routes:\n  - method: GET\n    path: /a\n    subject: s\n    timout: 3s\n",
               "routes.yaml:5: unknown route setting \"timout\"");
    load_fails("routes:\n  - [GET, /a]\n", "routes.yaml:2: a route must be a map with method, path and subject");
    load_fails("routes:\n  - {method: GET, path: \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\", subject: s}\n",
               "routes.yaml:2: route path \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\" has more than 8 parameters");
    load_fails("routes: {}\n", "routes.yaml:1: the routes file needs a `routes:` list");
    load_fails("other: 1\n", "routes.yaml:1: the routes file needs a `routes:` list");
}

static void test_routes_duplicate_route(void **state)
{
    /* the same template with another parameter name is the same route */
    load_fails("routes:\n"
               "  - {method: GET, path: \"/u/{id}\", subject: a}\n"
               "  - {method: POST, path: \"/u/{id}\", subject: b}\n"
               "  - {method: GET, path: \"/u/{userId}/\", subject: c}\n",
               "routes.yaml:4: route GET /u/{userId}/ repeats the one on line 2");
}

static void test_routes_all_errors_reported_at_once(void **state)
{
    /* a broken route before valid ones: every problem listed, and no crash comparing with the broken one */
    load_fails("routes:\n"
               "  - {method: FETCH, path: /a, subject: s}\n"
               "  - {method: GET, path: /a, subject: s}\n"
               "  - {path: /b, subject: s}\n"
               "  - {method: GET, path: /b, subject: s, timeout: soon}\n"
               "  - {method: GET, path: /c, subject: s}\n"
               "  - {method: GET, path: /c, subject: s}\n",
               "routes.yaml:2: route method \"FETCH\" is not one of GET, POST, PUT, PATCH, DELETE\n"
               "routes.yaml:4: a route needs method, path and subject\n"
               "routes.yaml:5: route timeout \"soon\" must be a duration like 250ms or 3s\n"
               "routes.yaml:7: route GET /c repeats the one on line 6");
}

static void test_routes_sizes_and_durations_do_not_overflow(void **state)
{
    /* 18014398509482000 KiB is 2^64 + 16384 bytes, and 538030035483195256m wraps to 32000 ms in int64 */
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, body_limit: 18014398509482000KiB}\n",
               "routes.yaml:2: route body_limit \"18014398509482000KiB\" must be a size like 16KiB or 1MiB");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, timeout: 538030035483195256m}\n",
               "routes.yaml:2: route timeout \"538030035483195256m\" must be a duration like 250ms or 3s");
    load_fails("routes:\n  - {method: GET, path: /a, subject: s, timeout: 99999999999999999999ms}\n",
               "routes.yaml:2: route timeout \"99999999999999999999ms\" must be a duration like 250ms or 3s");
    gw_routes_t r;
    const gw_route_t *rt = load_one(&r, "{method: GET, path: /a, subject: s, body_limit: 64MiB, timeout: 5m}");
    assert_int_equal(rt->body_limit, 64 * 1024 * 1024);
    assert_int_equal(rt->timeout_ms, 300000);
    gw_routes_dispose(&r);
}

/* ---- matching ------------------------------------------------------------ */

static void test_routes_match_literal_and_param(void **state)
{
    gw_match_t m;
    assert_int_equal(match(&m, "GET", "/v1/users/42"), GW_MATCH_OK);
    assert_ptr_equal(m.route, &table.items[0]);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "userId");
    assert_string_equal(m.values[0], "42");
    assert_int_equal(match(&m, "PATCH", "/v1/users/42"), GW_MATCH_OK);
    assert_string_equal(m.route->subject, "user.v1.update");
    assert_int_equal(match(&m, "POST", "/v1/auth/login"), GW_MATCH_OK);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(match(&m, "GET", "/"), GW_MATCH_OK);
    assert_string_equal(m.route->subject, "root.v1.get");
    /* the method and the path need no NUL */
    const char req[] = "GETX /v1/users/7?x=1";
    assert_int_equal(gw_routes_match(&m, &table, req, 3, req + 5, 11, NULL, 0), GW_MATCH_OK);
    assert_string_equal(m.values[0], "7");
    assert_int_equal(gw_routes_match(&m, &table, req, 4, req + 5, 11, NULL, 0), GW_MATCH_BAD_METHOD);
}

static void test_routes_match_percent_decoding(void **state)
{
    gw_match_t m;
    assert_int_equal(match(&m, "GET", "/v1/users/caf%C3%A9%20x+y"), GW_MATCH_OK);
    assert_string_equal(m.values[0], "caf\xc3\xa9 x+y"); /* '+' is not a space in a path */
    assert_int_equal(match(&m, "GET", "/v1/users/%7e%2e"), GW_MATCH_OK);
    assert_string_equal(m.values[0], "~.");
    /* literal segments are compared as sent */
    assert_int_equal(match(&m, "POST", "/v1/auth/log%69n"), GW_MATCH_NOT_FOUND);
}

static void test_routes_match_refuses_bad_params(void **state)
{
    gw_match_t m;
    static const char *bad[] = {
        "/v1/users/a%2Fb",  /* decodes to '/' */
        "/v1/users/a%2fb",  /* lower case too */
        "/v1/users/a%00b",  /* NUL */
        "/v1/users/a%0Ab",  /* newline */
        "/v1/users/%1b[0m", /* escape */
        "/v1/users/a%7Fb",  /* DEL */
        "/v1/users/a%G1",   /* not hex */
        "/v1/users/a%4",    /* cut short */
        "/v1/users/a%",     /* cut shorter */
        "/v1/users/a\x01",  /* a raw control character */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_match_result_t r = match(&m, "GET", bad[i]);
        if (r != GW_MATCH_BAD_PATH)
            fprintf(stderr, "%s -> %d\n", bad[i], r);
        assert_int_equal(r, GW_MATCH_BAD_PATH);
    }
}

static void test_routes_match_param_length_limit(void **state)
{
    gw_match_t m;
    char path[600];
    strcpy(path, "/v1/users/");
    size_t base = strlen(path);
    memset(path + base, 'a', 255);
    path[base + 255] = '\0';
    assert_int_equal(match(&m, "GET", path), GW_MATCH_OK);
    assert_int_equal(strlen(m.values[0]), 255);
    memset(path + base, 'a', 256);
    path[base + 256] = '\0';
    assert_int_equal(match(&m, "GET", path), GW_MATCH_BAD_PATH);
    /* the raw length counts, even when it would decode shorter */
    path[base] = '\0';
    for (int i = 0; i < 86; i++)
        strcat(path, "%41");
    assert_int_equal(match(&m, "GET", path), GW_MATCH_BAD_PATH);
}

static void test_routes_match_slashes(void **state)
{
    gw_match_t m;
    assert_int_equal(match(&m, "GET", "/v1/users/42/"), GW_MATCH_OK); /* a trailing slash is tolerated */
    assert_string_equal(m.values[0], "42");
    assert_int_equal(match(&m, "PUT", "/v1/files"), GW_MATCH_OK);
    assert_int_equal(match(&m, "PUT", "/v1/files/"), GW_MATCH_OK);
    assert_int_equal(match(&m, "GET", "/v1//users/42"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "/v1/users/42//"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "//"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "/v1/users/"), GW_MATCH_NOT_FOUND); /* an empty parameter is no match */
    assert_int_equal(match(&m, "GET", "v1/users/42"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", ""), GW_MATCH_NOT_FOUND);
}

static void test_routes_match_405_with_allow(void **state)
{
    gw_match_t m;
    char allow[64];
    assert_int_equal(gw_routes_match(&m, &table, "DELETE", 6, "/v1/users/9", 11, allow, sizeof(allow)),
                     GW_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, PATCH");
    /* a literal route that also matches adds its method once: GET is not repeated */
    assert_int_equal(gw_routes_match(&m, &table, "POST", 4, "/v1/users/me", 12, allow, sizeof(allow)),
                     GW_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, PATCH");
    char tiny[6];
    assert_int_equal(gw_routes_match(&m, &table, "DELETE", 6, "/v1/users/9", 11, tiny, sizeof(tiny)),
                     GW_MATCH_BAD_METHOD);
    assert_string_equal(tiny, ""); /* nothing fits: empty, not cut */
    assert_int_equal(gw_routes_match(&m, &table, "DELETE", 6, "/v1/users/9", 11, NULL, 0), GW_MATCH_BAD_METHOD);
}

static void test_routes_match_unknown_path_404(void **state)
{
    gw_match_t m;
    assert_int_equal(match(&m, "GET", "/v1/nothing"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "/v1/users/42/extra"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "/v1"), GW_MATCH_NOT_FOUND);
    /* more segments than any route can have */
    assert_int_equal(match(&m, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r"), GW_MATCH_NOT_FOUND);
}

static void test_routes_match_eight_params(void **state)
{
    gw_match_t m;
    assert_int_equal(match(&m, "GET", "/p/1/2/3/4/5/6/7/8"), GW_MATCH_OK);
    assert_int_equal(m.nparams, 8);
    const char *names = "abcdefgh";
    for (size_t i = 0; i < 8; i++) {
        char want[2] = {(char)('1' + i), '\0'}, name[2] = {names[i], '\0'};
        assert_string_equal(m.values[i], want);
        assert_string_equal(m.names[i], name);
    }
    assert_int_equal(match(&m, "GET", "/p/1/2/3/4/5/6/7"), GW_MATCH_NOT_FOUND);
    assert_int_equal(match(&m, "GET", "/p/1/2/3/4/5/6/7/8/9"), GW_MATCH_NOT_FOUND);
}

static void test_routes_pct_decode(void **state)
{
    char out[32];
    assert_int_equal(gw_pct_decode(out, "a+b%20c", 7, false), 7 - 2);
    assert_string_equal(out, "a+b c");
    assert_int_equal(gw_pct_decode(out, "a+b", 3, true), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(gw_pct_decode(out, "%41%62", 6, false), 2);
    assert_string_equal(out, "Ab");
    assert_int_equal(gw_pct_decode(out, "", 0, false), 0);
    assert_string_equal(out, "");
    assert_int_equal(gw_pct_decode(out, "%00", 3, false), -1);
    assert_int_equal(gw_pct_decode(out, "%4", 2, false), -1);
    assert_int_equal(gw_pct_decode(out, "%", 1, false), -1);
    assert_int_equal(gw_pct_decode(out, "%x1", 3, false), -1);
    assert_int_equal(gw_pct_decode(out, "%41", 2, false), -1); /* only `len` bytes are read */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_load_fields_and_defaults),
        cmocka_unit_test(test_routes_default_auth_from_defaults),
        cmocka_unit_test(test_routes_each_error_has_file_line),
        cmocka_unit_test(test_routes_duplicate_route),
        cmocka_unit_test(test_routes_all_errors_reported_at_once),
        cmocka_unit_test(test_routes_sizes_and_durations_do_not_overflow),
        cmocka_unit_test(test_routes_match_literal_and_param),
        cmocka_unit_test(test_routes_match_percent_decoding),
        cmocka_unit_test(test_routes_match_refuses_bad_params),
        cmocka_unit_test(test_routes_match_param_length_limit),
        cmocka_unit_test(test_routes_match_slashes),
        cmocka_unit_test(test_routes_match_405_with_allow),
        cmocka_unit_test(test_routes_match_unknown_path_404),
        cmocka_unit_test(test_routes_match_eight_params),
        cmocka_unit_test(test_routes_pct_decode),
    };
    return cmocka_run_group_tests(tests, load_table, free_table);
}
