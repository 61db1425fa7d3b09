/*
 * test_cfg.c: unit tests for core/cfg.c.
 *
 * A configuration error must name where to fix it, so every refusal is
 * checked through mp_cfg_check()'s text (`file:line: key: ...`, or
 * `environment NAME: ...`). Tests that set MOONPORT_* variables unset them
 * in the teardown, so a failing test cannot leak an override into the next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/cfg.h"

static const char *const env_vars[] = {"MOONPORT_HTTP_PORT",    "MOONPORT_HTTP_LISTEN", "MOONPORT_LOG_LEVEL",
                                       "MOONPORT_NATS_SERVERS", "MOONPORT_DB_PASSWORD", "MOONPORT_DB_PASSWORD_FILE",
                                       "MOONPORT_HTTP_TIMEOUT", "MOONPORT_HTTP_DEBUG",  "MOONPORT_HTTP_BODY_SIZE",
                                       "MOONPORT_HTTP_RATIO",   "MOONPORT_API_KEY",     NULL};

static char secret_path[64];

static int cleanup(void **state)
{
    for (size_t i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    if (secret_path[0]) {
        unlink(secret_path);
        secret_path[0] = '\0';
    }
    return 0;
}

static mp_cfg_t *cfg_of(const char *text)
{
    mp_cfg_t *c = NULL;
    mp_status_t st = mp_cfg_parse(&c, "moonport.yaml", text);
    if (st != MP_OK)
        fprintf(stderr, "parse: %s\n", mp_err_get());
    assert_int_equal(st, MP_OK);
    return c;
}

/* Runs mp_cfg_check() and compares its whole report with `want` (NULL: must pass); frees `c`. */
static void check_report(mp_cfg_t *c, const char *want)
{
    mp_status_t st = mp_cfg_check(c);
    mp_cfg_destroy(c);
    if (want == NULL) {
        if (st != MP_OK)
            fprintf(stderr, "unexpected errors:\n%s\n", mp_err_get());
        assert_int_equal(st, MP_OK);
        return;
    }
    if (st != MP_EINVAL || strcmp(mp_err_get(), want) != 0)
        fprintf(stderr, "--- want\n%s\n--- got (%s)\n%s\n", want, mp_status_name(st), mp_err_get());
    assert_int_equal(st, MP_EINVAL);
    assert_string_equal(mp_err_get(), want);
}

/* Writes `text` to a fresh temp file whose path is kept in secret_path (removed by cleanup). */
static const char *write_secret_file(const char *text)
{
    strcpy(secret_path, "/tmp/test_cfg_secret_XXXXXX");
    int fd = mkstemp(secret_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return secret_path;
}

static void test_cfg_getters_read_file_and_defaults(void **state)
{
    mp_cfg_t *c = cfg_of("http:\n"
                         "  listen: 0.0.0.0:8080\n"
                         "  port: 8080\n"
                         "  debug: yes\n"
                         "  ratio: 0.25\n"
                         "log:\n"
                         "  level: warn\n");
    assert_string_equal(mp_cfg_str(c, "http.listen", "x"), "0.0.0.0:8080");
    assert_int_equal(mp_cfg_int(c, "http.port", 1, 1, 65535), 8080);
    assert_true(mp_cfg_bool(c, "http.debug", false));
    assert_true(mp_cfg_double(c, "http.ratio", 1, 0, 1) == 0.25);
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    assert_int_equal(mp_cfg_enum(c, "log.level", "info", levels), 2);
    /* absent keys give the defaults */
    assert_string_equal(mp_cfg_str(c, "http.name", "gw"), "gw");
    assert_null(mp_cfg_str(c, "http.other", NULL));
    assert_int_equal(mp_cfg_int(c, "http.workers", 4, 1, 64), 4);
    assert_false(mp_cfg_bool(c, "http.trace", false));
    assert_true(mp_cfg_double(c, "http.x", 2.5, 0, 10) == 2.5);
    assert_int_equal(mp_cfg_enum(c, "log.format", "error", levels), 3);
    assert_int_equal(mp_cfg_duration_ms(c, "http.timeout", 3000, 1, 60000), 3000);
    assert_int_equal(mp_cfg_size(c, "http.body", 1024, 0, 1 << 20), 1024);
    assert_string_equal(mp_cfg_file(c), "moonport.yaml");
    check_report(c, NULL);
}

static void test_cfg_bool_spellings(void **state)
{
    mp_cfg_t *c = cfg_of("b: {a: true, b: 'no', c: ON, d: 0, e: Off, f: \"1\", g: maybe}\n");
    assert_true(mp_cfg_bool(c, "b.a", false));
    assert_false(mp_cfg_bool(c, "b.b", true));
    assert_true(mp_cfg_bool(c, "b.c", false));
    assert_false(mp_cfg_bool(c, "b.d", true));
    assert_false(mp_cfg_bool(c, "b.e", true));
    assert_true(mp_cfg_bool(c, "b.f", false));
    assert_true(mp_cfg_bool(c, "b.g", true)); /* the default, and an error */
    check_report(c, "moonport.yaml:1: b.g: expected true or false, got \"maybe\"");
}

static void test_cfg_env_override_wins(void **state)
{
    mp_cfg_t *c = cfg_of("http:\n  port: 8080\n  listen: a\n");
    setenv("MOONPORT_HTTP_PORT", "9090", 1);
    setenv("MOONPORT_HTTP_LISTEN", "b", 1);
    setenv("MOONPORT_LOG_LEVEL", "debug", 1); /* a key absent from the file */
    assert_int_equal(mp_cfg_int(c, "http.port", 1, 1, 65535), 9090);
    assert_string_equal(mp_cfg_str(c, "http.listen", "x"), "b");
    assert_string_equal(mp_cfg_str(c, "log.level", "info"), "debug");
    /* the file's key counts as read even though the environment won */
    check_report(c, NULL);
}

static void test_cfg_bad_env_value_names_the_variable(void **state)
{
    mp_cfg_t *c = cfg_of("http:\n  port: 8080\n");
    setenv("MOONPORT_HTTP_PORT", "80x", 1);
    assert_int_equal(mp_cfg_int(c, "http.port", 7, 1, 65535), 7);
    check_report(c, "environment MOONPORT_HTTP_PORT: expected an integer from 1 to 65535, got \"80x\"");
}

static void test_cfg_bad_values_report_file_line_key(void **state)
{
    mp_cfg_t *c = cfg_of("http:\n"
                         "  port: 99999\n"
                         "  workers: four\n"
                         "  listen: [a, b]\n");
    assert_int_equal(mp_cfg_int(c, "http.port", 80, 1, 65535), 80);
    assert_int_equal(mp_cfg_int(c, "http.workers", 2, 1, 64), 2);
    assert_string_equal(mp_cfg_str(c, "http.listen", "dflt"), "dflt");
    check_report(c, "moonport.yaml:2: http.port: expected an integer from 1 to 65535, got \"99999\"\n"
                    "moonport.yaml:3: http.workers: expected an integer from 1 to 64, got \"four\"\n"
                    "moonport.yaml:4: http.listen: expected a single value, found a list");
}

static void test_cfg_unknown_key_reported_with_line(void **state)
{
    mp_cfg_t *c = cfg_of("http:\n"
                         "  port: 80\n"
                         "  prot: 81\n"
                         "extra:\n"
                         "  a: 1\n");
    assert_int_equal(mp_cfg_int(c, "http.port", 1, 1, 65535), 80);
    /* a nested unknown is named by its full path; an unread section is named once, not key by key */
    check_report(c, "moonport.yaml:3: unknown key \"http.prot\"\n"
                    "moonport.yaml:5: unknown key \"extra\"");
}

static void test_cfg_accept_and_node_mark_sections(void **state)
{
    mp_cfg_t *c = cfg_of("other_role:\n  x: 1\n  y: {z: 2}\nroutes:\n  - a\n");
    mp_cfg_accept(c, "other_role");
    const mp_yaml_node_t *n = mp_cfg_node(c, "routes");
    assert_non_null(n);
    assert_int_equal(n->type, MP_YAML_SEQ);
    mp_cfg_error_at(c, n->kids[0], "route %d is wrong", 1);
    mp_cfg_error_at(c, NULL, "something global");
    assert_null(mp_cfg_node(c, "absent"));
    check_report(c, "moonport.yaml:5: route 1 is wrong\n"
                    "moonport.yaml: something global");
}

static void test_cfg_several_errors_at_once_then_cleared(void **state)
{
    mp_cfg_t *c = cfg_of("a:\n  i: x\n  d: 5parsecs\n  s: 3 apples\n  e: purple\n  b: perhaps\n  n: NaN\n");
    static const char *const colors[] = {"red", "green", NULL};
    mp_cfg_int(c, "a.i", 0, 0, 10);
    mp_cfg_duration_ms(c, "a.d", 0, 0, 1000);
    mp_cfg_size(c, "a.s", 0, 0, 1000);
    assert_int_equal(mp_cfg_enum(c, "a.e", "green", colors), 1);
    mp_cfg_bool(c, "a.b", false);
    mp_cfg_double(c, "a.n", 0, 0, 1);
    assert_int_equal(mp_cfg_check(c), MP_EINVAL);
    const char *report = mp_err_get();
    size_t lines = 1;
    for (const char *p = report; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 6);
    assert_non_null(strstr(report, "moonport.yaml:2: a.i: "));
    assert_non_null(strstr(report, "moonport.yaml:3: a.d: expected a duration"));
    assert_non_null(strstr(report, "moonport.yaml:4: a.s: expected a size"));
    assert_non_null(strstr(report, "moonport.yaml:5: a.e: expected one of red, green, got \"purple\""));
    assert_non_null(strstr(report, "moonport.yaml:6: a.b: "));
    assert_non_null(strstr(report, "moonport.yaml:7: a.n: expected a number"));
    /* the errors were reported; a second check has nothing left to say */
    check_report(c, NULL);
}

static void test_cfg_durations(void **state)
{
    mp_cfg_t *c = cfg_of("d: {a: 250ms, b: 3s, c: 15m, e: 2h, f: 30d, g: 42, h: 5 s, i: -1s, j: 3 fortnights, "
                         "k: 1.5s, l: 18014398509481985d, m: 99999999999999999999ms}\n");
    const int64_t max = INT64_MAX;
    assert_int_equal(mp_cfg_duration_ms(c, "d.a", 0, 0, max), 250);
    assert_int_equal(mp_cfg_duration_ms(c, "d.b", 0, 0, max), 3000);
    assert_int_equal(mp_cfg_duration_ms(c, "d.c", 0, 0, max), 15 * 60000);
    assert_int_equal(mp_cfg_duration_ms(c, "d.e", 0, 0, max), 2 * 3600000);
    assert_int_equal(mp_cfg_duration_ms(c, "d.f", 0, 0, max), 30LL * 86400000);
    assert_int_equal(mp_cfg_duration_ms(c, "d.g", 0, 0, max), 42); /* bare: milliseconds */
    assert_int_equal(mp_cfg_duration_ms(c, "d.h", 0, 0, max), 5000);
    assert_int_equal(mp_cfg_duration_ms(c, "d.i", 7, 0, max), 7);
    assert_int_equal(mp_cfg_duration_ms(c, "d.j", 7, 0, max), 7);
    assert_int_equal(mp_cfg_duration_ms(c, "d.k", 7, 0, max), 7);
    assert_int_equal(mp_cfg_duration_ms(c, "d.l", 7, 0, max), 7); /* 2^54+1 days wraps to exactly one day in int64 ms */
    assert_int_equal(mp_cfg_duration_ms(c, "d.m", 7, 0, max), 7);
    check_report(c, "moonport.yaml:1: d.i: expected a duration from 0ms to 9223372036854775807ms (like 250ms, 3s, "
                    "15m), got \"-1s\"\n"
                    "moonport.yaml:1: d.j: expected a duration from 0ms to 9223372036854775807ms (like 250ms, 3s, "
                    "15m), got \"3 fortnights\"\n"
                    "moonport.yaml:1: d.k: expected a duration from 0ms to 9223372036854775807ms (like 250ms, 3s, "
                    "15m), got \"1.5s\"\n"
                    "moonport.yaml:1: d.l: expected a duration from 0ms to 9223372036854775807ms (like 250ms, 3s, "
                    "15m), got \"18014398509481985d\"\n"
                    "moonport.yaml:1: d.m: expected a duration from 0ms to 9223372036854775807ms (like 250ms, 3s, "
                    "15m), got \"99999999999999999999ms\"");
}

static void test_cfg_duration_bounds(void **state)
{
    mp_cfg_t *c = cfg_of("t: {low: 5ms, high: 2m}\n");
    setenv("MOONPORT_HTTP_TIMEOUT", "30s", 1);
    assert_int_equal(mp_cfg_duration_ms(c, "http.timeout", 0, 0, 60000), 30000);
    assert_int_equal(mp_cfg_duration_ms(c, "t.low", 100, 10, 60000), 100);
    assert_int_equal(mp_cfg_duration_ms(c, "t.high", 100, 10, 60000), 100);
    check_report(c, "moonport.yaml:1: t.low: expected a duration from 10ms to 60000ms (like 250ms, 3s, 15m), got "
                    "\"5ms\"\n"
                    "moonport.yaml:1: t.high: expected a duration from 10ms to 60000ms (like 250ms, 3s, 15m), got "
                    "\"2m\"");
}

static void test_cfg_sizes(void **state)
{
    mp_cfg_t *c = cfg_of("s: {a: 16KiB, b: 1MiB, c: 512k, d: 2G, e: 100, f: 7B, g: 3 MB, h: 1TiB, i: 1.5MiB, j: "
                         "18014398509482000KiB}\n");
    const int64_t max = INT64_MAX;
    assert_int_equal(mp_cfg_size(c, "s.a", 0, 0, max), 16 * 1024);
    assert_int_equal(mp_cfg_size(c, "s.b", 0, 0, max), 1024 * 1024);
    assert_int_equal(mp_cfg_size(c, "s.c", 0, 0, max), 512 * 1024);
    assert_int_equal(mp_cfg_size(c, "s.d", 0, 0, max), 2LL << 30);
    assert_int_equal(mp_cfg_size(c, "s.e", 0, 0, max), 100);
    assert_int_equal(mp_cfg_size(c, "s.f", 0, 0, max), 7);
    assert_int_equal(mp_cfg_size(c, "s.g", 0, 0, max), 3 * 1048576);
    assert_int_equal(mp_cfg_size(c, "s.h", 9, 0, max), 9);
    assert_int_equal(mp_cfg_size(c, "s.i", 9, 0, max), 9);
    assert_int_equal(mp_cfg_size(c, "s.j", 9, 0, max), 9); /* 2^54+16 KiB wraps to 16 KiB in int64 */
    setenv("MOONPORT_HTTP_BODY_SIZE", "64k", 1);
    assert_int_equal(mp_cfg_size(c, "http.body_size", 0, 0, 1 << 20), 65536);
    setenv("MOONPORT_HTTP_BODY_SIZE", "2MiB", 1);
    assert_int_equal(mp_cfg_size(c, "http.body_size", 1, 0, 1 << 20), 1);
    check_report(c, "moonport.yaml:1: s.h: expected a size from 0 to 9223372036854775807 bytes (like 16KiB, 1MiB), "
                    "got \"1TiB\"\n"
                    "moonport.yaml:1: s.i: expected a size from 0 to 9223372036854775807 bytes (like 16KiB, 1MiB), "
                    "got \"1.5MiB\"\n"
                    "moonport.yaml:1: s.j: expected a size from 0 to 9223372036854775807 bytes (like 16KiB, 1MiB), "
                    "got \"18014398509482000KiB\"\n"
                    "environment MOONPORT_HTTP_BODY_SIZE: expected a size from 0 to 1048576 bytes (like 16KiB, 1MiB), "
                    "got \"2MiB\"");
}

static void test_cfg_enum_default_and_error(void **state)
{
    static const char *const modes[] = {"off", "dev", "prod", NULL};
    mp_cfg_t *c = cfg_of("m: {a: prod, b: Prod}\n");
    assert_int_equal(mp_cfg_enum(c, "m.a", "dev", modes), 2);
    assert_int_equal(mp_cfg_enum(c, "m.b", "dev", modes), 1); /* case matters: error, default */
    assert_int_equal(mp_cfg_enum(c, "m.c", "dev", modes), 1);
    assert_int_equal(mp_cfg_enum(c, "m.d", NULL, modes), 0);
    check_report(c, "moonport.yaml:1: m.b: expected one of off, dev, prod, got \"Prod\"");
}

static void test_cfg_double_bounds(void **state)
{
    mp_cfg_t *c = cfg_of("r: {a: 0.5, b: 1.5, c: inf, d: 1e999}\n");
    setenv("MOONPORT_HTTP_RATIO", "0.75", 1);
    assert_true(mp_cfg_double(c, "http.ratio", 0, 0, 1) == 0.75);
    assert_true(mp_cfg_double(c, "r.a", 0, 0, 1) == 0.5);
    assert_true(mp_cfg_double(c, "r.b", 0.1, 0, 1) == 0.1);
    assert_true(mp_cfg_double(c, "r.c", 0.1, 0, 1e300) == 0.1);
    assert_true(mp_cfg_double(c, "r.d", 0.1, 0, 1e300) == 0.1);
    assert_int_equal(mp_cfg_check(c), MP_EINVAL);
    mp_cfg_destroy(c);
    assert_non_null(strstr(mp_err_get(), "r.b: expected a number from 0 to 1, got \"1.5\""));
    assert_non_null(strstr(mp_err_get(), "r.c: "));
    assert_non_null(strstr(mp_err_get(), "r.d: "));
}

static void test_cfg_strv_list_string_env_default(void **state)
{
    const char *const *items;
    mp_cfg_t *c = cfg_of("nats:\n"
                         "  list: [nats://a:4222, nats://b:4222]\n"
                         "  text: \" x , y,,z \"\n"
                         "  empty: []\n"
                         "  bad: {}\n"
                         "  mixed:\n"
                         "    - ok\n"
                         "    - [nested]\n");
    assert_int_equal(mp_cfg_strv(c, "nats.list", NULL, &items), 2);
    assert_string_equal(items[0], "nats://a:4222");
    assert_string_equal(items[1], "nats://b:4222");
    assert_int_equal(mp_cfg_strv(c, "nats.text", NULL, &items), 3); /* trimmed, empty items dropped */
    assert_string_equal(items[0], "x");
    assert_string_equal(items[1], "y");
    assert_string_equal(items[2], "z");
    assert_null(items[3]);
    assert_int_equal(mp_cfg_strv(c, "nats.empty", "d", &items), 0);
    assert_int_equal(mp_cfg_strv(c, "nats.absent", "p, q", &items), 2);
    assert_string_equal(items[1], "q");
    assert_int_equal(mp_cfg_strv(c, "nats.none", NULL, &items), 0);
    assert_int_equal(mp_cfg_strv(c, "nats.bad", "d1,d2", &items), 2); /* a map: error, the default */
    assert_string_equal(items[0], "d1");
    assert_int_equal(mp_cfg_strv(c, "nats.mixed", NULL, &items), 1);
    assert_string_equal(items[0], "ok");
    setenv("MOONPORT_NATS_SERVERS", "nats://e:1,nats://f:2", 1);
    assert_int_equal(mp_cfg_strv(c, "nats.servers", "x", &items), 2);
    assert_string_equal(items[0], "nats://e:1");
    assert_string_equal(items[1], "nats://f:2");
    check_report(c, "moonport.yaml:5: nats.bad: expected a list, found a map\n"
                    "moonport.yaml:8: nats.mixed: list items must be single values");
}

static void test_cfg_secret_literal_in_file_is_error(void **state)
{
    mp_cfg_t *c = cfg_of("db:\n  dsn: postgres://x\n  password: hunter2\n");
    mp_cfg_str(c, "db.dsn", NULL);
    setenv("MOONPORT_DB_PASSWORD", "from-env", 1); /* even with an override, the file must not hold it */
    assert_null(mp_cfg_secret(c, "db.password"));
    check_report(c, "moonport.yaml:3: db.password: secrets may not be written in the file; use db.password_file or "
                    "the environment");
}

static void test_cfg_secret_from_env(void **state)
{
    mp_cfg_t *c = cfg_of("db:\n  dsn: x\n");
    mp_cfg_str(c, "db.dsn", NULL);
    assert_null(mp_cfg_secret(c, "db.password")); /* none configured: not an error */
    setenv("MOONPORT_DB_PASSWORD", "s3cret", 1);
    char *s = mp_cfg_secret(c, "db.password");
    assert_string_equal(s, "s3cret");
    mp_cfg_secret_free(s);
    mp_cfg_secret_free(NULL);
    check_report(c, NULL);
}

static void test_cfg_secret_from_env_file_drops_newline(void **state)
{
    mp_cfg_t *c = cfg_of("");
    setenv("MOONPORT_DB_PASSWORD_FILE", write_secret_file("pa ss\n"), 1);
    char *s = mp_cfg_secret(c, "db.password");
    assert_string_equal(s, "pa ss");
    mp_cfg_secret_free(s);
    /* the direct variable wins over the file */
    setenv("MOONPORT_DB_PASSWORD", "direct", 1);
    s = mp_cfg_secret(c, "db.password");
    assert_string_equal(s, "direct");
    mp_cfg_secret_free(s);
    check_report(c, NULL);
}

static void test_cfg_secret_from_key_file(void **state)
{
    char text[160];
    snprintf(text, sizeof(text), "api:\n  key_file: %s\n", write_secret_file("k3y\r\n"));
    mp_cfg_t *c = cfg_of(text);
    char *s = mp_cfg_secret(c, "api.key");
    assert_string_equal(s, "k3y");
    mp_cfg_secret_free(s);
    check_report(c, NULL); /* key_file was read */
}

static void test_cfg_secret_env_wins_over_key_file(void **state)
{
    /* an operator overriding a file-backed secret from the environment: the _file key is not "unknown" */
    mp_cfg_t *c = cfg_of("api:\n  key_file: /nonexistent/secret\n");
    setenv("MOONPORT_API_KEY", "from-env", 1);
    char *s = mp_cfg_secret(c, "api.key");
    assert_string_equal(s, "from-env");
    mp_cfg_secret_free(s);
    check_report(c, NULL);
}

static void test_cfg_secret_unreadable_file_is_error(void **state)
{
    mp_cfg_t *c = cfg_of("api:\n  key_file: /nonexistent/secret\n");
    assert_null(mp_cfg_secret(c, "api.key"));
    check_report(c, "moonport.yaml:2: api.key_file: cannot read secret file \"/nonexistent/secret\": No such file or "
                    "directory");
    c = cfg_of("");
    setenv("MOONPORT_DB_PASSWORD_FILE", "/nonexistent/pw", 1);
    assert_null(mp_cfg_secret(c, "db.password"));
    check_report(c, "environment MOONPORT_DB_PASSWORD_FILE: cannot read secret file \"/nonexistent/pw\": No such "
                    "file or directory");
}

static void test_cfg_env_name(void **state)
{
    char buf[64];
    mp_cfg_env_name(buf, sizeof(buf), "http.listen");
    assert_string_equal(buf, "MOONPORT_HTTP_LISTEN");
    mp_cfg_env_name(buf, sizeof(buf), "db.pool-size");
    assert_string_equal(buf, "MOONPORT_DB_POOL_SIZE");
    mp_cfg_env_name(buf, sizeof(buf), "auth.jwt_ttl");
    assert_string_equal(buf, "MOONPORT_AUTH_JWT_TTL");
    char small[12];
    mp_cfg_env_name(small, sizeof(small), "http.listen"); /* truncated, still terminated */
    assert_string_equal(small, "MOONPORT_HT");
}

static void test_cfg_parse_and_load_reject_non_map(void **state)
{
    mp_cfg_t *c = NULL;
    assert_int_equal(mp_cfg_parse(&c, "m.yaml", "- a\n- b\n"), MP_EINVAL);
    assert_null(c);
    assert_string_equal(mp_err_get(), "m.yaml:1: the configuration must be a map of sections");
    assert_int_equal(mp_cfg_parse(&c, "m.yaml", "a: 1\na: 2\n"), MP_EINVAL);
    assert_string_equal(mp_err_get(), "m.yaml:2: duplicate key \"a\"");
    assert_int_equal(mp_cfg_load(&c, "/nonexistent/moonport.yaml"), MP_EIO);
    assert_null(c);
    assert_int_equal(mp_cfg_load(&c, NULL), MP_OK); /* defaults and environment only */
    setenv("MOONPORT_HTTP_PORT", "81", 1);
    assert_int_equal(mp_cfg_int(c, "http.port", 80, 1, 65535), 81);
    check_report(c, NULL);
    mp_cfg_destroy(NULL);
}

#define T(f) cmocka_unit_test_teardown(f, cleanup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cfg_getters_read_file_and_defaults),
        T(test_cfg_bool_spellings),
        T(test_cfg_env_override_wins),
        T(test_cfg_bad_env_value_names_the_variable),
        T(test_cfg_bad_values_report_file_line_key),
        T(test_cfg_unknown_key_reported_with_line),
        T(test_cfg_accept_and_node_mark_sections),
        T(test_cfg_several_errors_at_once_then_cleared),
        T(test_cfg_durations),
        T(test_cfg_duration_bounds),
        T(test_cfg_sizes),
        T(test_cfg_enum_default_and_error),
        T(test_cfg_double_bounds),
        T(test_cfg_strv_list_string_env_default),
        T(test_cfg_secret_literal_in_file_is_error),
        T(test_cfg_secret_from_env),
        T(test_cfg_secret_from_env_file_drops_newline),
        T(test_cfg_secret_from_key_file),
        T(test_cfg_secret_env_wins_over_key_file),
        T(test_cfg_secret_unreadable_file_is_error),
        T(test_cfg_env_name),
        T(test_cfg_parse_and_load_reject_non_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
