/*
 * test_yaml.c: unit tests for core/yaml.c.
 *
 * Every consumer of the tree reports problems as `file:line`, so the tests
 * check line numbers of nodes and the exact prefix of every error message,
 * not just that parsing failed. Each test frees its document before it
 * asserts on anything computed from it where a failed assert would skip the
 * free; the suite runs under ASan, so a leak on a success path fails it.
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
#include "mp/yaml.h"

/* Parses `text` named "t.yaml" and asserts it succeeded. */
static mp_yaml_doc_t *parse_ok(const char *text)
{
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st = mp_yaml_parse(&doc, "t.yaml", text, strlen(text));
    if (st != MP_OK)
        fprintf(stderr, "parse failed: %s\n", mp_err_get());
    assert_int_equal(st, MP_OK);
    assert_non_null(doc);
    return doc;
}

/* Parses `text` (len bytes) expecting MP_EINVAL with a message that starts with `prefix`. */
static void parse_fails(const char *text, size_t len, const char *prefix)
{
    mp_yaml_doc_t *doc = NULL;
    mp_err_clear();
    assert_int_equal(mp_yaml_parse(&doc, "t.yaml", text, len), MP_EINVAL);
    assert_null(doc);
    if (strncmp(mp_err_get(), prefix, strlen(prefix)) != 0)
        fprintf(stderr, "want prefix \"%s\", got \"%s\"\n", prefix, mp_err_get());
    assert_true(strncmp(mp_err_get(), prefix, strlen(prefix)) == 0);
}

static void test_yaml_block_map_list_and_lines(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("# comment\n"
                                  "name: moonport\n"
                                  "http:\n"
                                  "  listen: \"0.0.0.0:8080\"\n"
                                  "  workers: 4\n"
                                  "peers:\n"
                                  "  - a\n"
                                  "  - 'b c'\n");
    const mp_yaml_node_t *root = doc->root;
    assert_int_equal(root->type, MP_YAML_MAP);
    assert_int_equal(root->n, 3);
    assert_string_equal(root->keys[0], "name");
    assert_string_equal(root->keys[1], "http");
    assert_string_equal(root->keys[2], "peers");

    const mp_yaml_node_t *name = mp_yaml_get(root, "name");
    assert_int_equal(name->type, MP_YAML_SCALAR);
    assert_string_equal(name->value, "moonport");
    assert_true(name->plain);
    assert_int_equal(name->line, 2);

    const mp_yaml_node_t *http = mp_yaml_get(root, "http");
    assert_int_equal(http->type, MP_YAML_MAP);
    assert_int_equal(http->line, 4); /* a block map starts at its first key */
    const mp_yaml_node_t *listen = mp_yaml_get(http, "listen");
    assert_string_equal(listen->value, "0.0.0.0:8080");
    assert_false(listen->plain);
    assert_int_equal(listen->line, 4);
    assert_int_equal(mp_yaml_get(http, "workers")->line, 5);

    const mp_yaml_node_t *peers = mp_yaml_get(root, "peers");
    assert_int_equal(peers->type, MP_YAML_SEQ);
    assert_int_equal(peers->n, 2);
    assert_null(peers->keys);
    assert_string_equal(peers->kids[0]->value, "a");
    assert_int_equal(peers->kids[0]->line, 7);
    assert_string_equal(peers->kids[1]->value, "b c");
    assert_false(peers->kids[1]->plain);
    assert_int_equal(peers->kids[1]->line, 8);

    assert_null(mp_yaml_get(root, "absent"));
    assert_null(mp_yaml_get(peers, "a")); /* not a map */
    assert_null(mp_yaml_get(NULL, "a"));
    assert_string_equal(mp_yaml_kind(root), "a map");
    assert_string_equal(mp_yaml_kind(peers), "a list");
    assert_string_equal(mp_yaml_kind(name), "a value");
    assert_string_equal(mp_yaml_kind(NULL), "nothing");
    assert_string_equal(doc->file, "t.yaml");
    mp_yaml_destroy(doc);
}

static void test_yaml_flow_style(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("a: {b: 1, c: [x, \"y\", {d: e}]}\n"
                                  "f: []\n"
                                  "g: {}\n");
    const mp_yaml_node_t *a = mp_yaml_get(doc->root, "a");
    assert_int_equal(a->type, MP_YAML_MAP);
    assert_int_equal(a->n, 2);
    const mp_yaml_node_t *c = mp_yaml_get(a, "c");
    assert_int_equal(c->type, MP_YAML_SEQ);
    assert_int_equal(c->n, 3);
    assert_string_equal(c->kids[1]->value, "y");
    assert_false(c->kids[1]->plain);
    assert_string_equal(mp_yaml_get(c->kids[2], "d")->value, "e");
    assert_int_equal(mp_yaml_get(doc->root, "f")->n, 0);
    assert_int_equal(mp_yaml_get(doc->root, "g")->type, MP_YAML_MAP);
    assert_int_equal(mp_yaml_get(doc->root, "g")->line, 3);
    mp_yaml_destroy(doc);
}

static void test_yaml_empty_document_has_no_root(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("");
    assert_null(doc->root);
    mp_yaml_destroy(doc);
    doc = parse_ok("# only a comment\n");
    assert_null(doc->root);
    mp_yaml_destroy(doc);
    mp_yaml_destroy(NULL); /* accepted */
}

static void test_yaml_duplicate_key_reports_file_line(void **state)
{
    const char *text = "a: 1\n"
                       "b:\n"
                       "  c: 2\n"
                       "  c: 3\n";
    parse_fails(text, strlen(text), "t.yaml:4: duplicate key \"c\"");
    parse_fails("{x: 1, x: 2}", 12, "t.yaml:1: duplicate key \"x\"");
}

static void test_yaml_non_scalar_key_refused(void **state)
{
    const char *text = "ok: 1\n? [a, b]\n: 2\n";
    parse_fails(text, strlen(text), "t.yaml:2: a map key must be a plain value");
}

static void test_yaml_alias_refused(void **state)
{
    const char *text = "base: &b {x: 1}\n"
                       "copy: *b\n";
    parse_fails(text, strlen(text), "t.yaml:2: YAML aliases are not supported");
}

static void test_yaml_multiple_documents_refused(void **state)
{
    const char *text = "a: 1\n"
                       "---\n"
                       "b: 2\n";
    parse_fails(text, strlen(text), "t.yaml:2: only one YAML document is allowed");
    /* one explicit document is fine */
    mp_yaml_doc_t *doc = parse_ok("---\na: 1\n...\n");
    assert_string_equal(mp_yaml_get(doc->root, "a")->value, "1");
    mp_yaml_destroy(doc);
}

/* "[[[...x...]]]" nested `depth` levels. */
static char *nested_flow(int depth)
{
    char *s = malloc((size_t)depth * 2 + 2);
    memset(s, '[', (size_t)depth);
    s[depth] = 'x';
    memset(s + depth + 1, ']', (size_t)depth);
    s[2 * depth + 1] = '\0';
    return s;
}

static void test_yaml_nesting_limit_is_64(void **state)
{
    char *ok = nested_flow(64), *deep = nested_flow(65);
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st_ok = mp_yaml_parse(&doc, "t.yaml", ok, strlen(ok));
    const mp_yaml_node_t *n = doc ? doc->root : NULL;
    int levels = 0;
    while (n != NULL && n->type == MP_YAML_SEQ) {
        levels++;
        n = n->kids[0];
    }
    mp_yaml_destroy(doc);
    doc = NULL;
    mp_status_t st_deep = mp_yaml_parse(&doc, "t.yaml", deep, strlen(deep));
    free(ok);
    free(deep);
    assert_int_equal(st_ok, MP_OK);
    assert_int_equal(levels, 64);
    assert_int_equal(st_deep, MP_EINVAL);
    assert_null(doc);
    assert_string_equal(mp_err_get(), "t.yaml:1: nesting deeper than 64 levels");
}

/* `levels` block maps nested one per line: line i opens level i; the innermost holds "leaf: 1". */
static size_t nested_block(char *text, size_t size, int levels)
{
    size_t len = 0;
    for (int i = 0; i < levels - 1; i++)
        len += (size_t)snprintf(text + len, size - len, "%*sk%d:\n", i, "", i);
    len += (size_t)snprintf(text + len, size - len, "%*sleaf: 1\n", levels - 1, "");
    return len;
}

static void test_yaml_nesting_limit_block_maps(void **state)
{
    char text[66 * 80];
    mp_yaml_doc_t *doc = NULL;
    size_t len = nested_block(text, sizeof(text), 64);
    mp_status_t st = mp_yaml_parse(&doc, "t.yaml", text, len);
    mp_yaml_destroy(doc);
    assert_int_equal(st, MP_OK);
    /* the 65th map opens on line 65 */
    len = nested_block(text, sizeof(text), 65);
    parse_fails(text, len, "t.yaml:65: nesting deeper than 64 levels");
}

static void test_yaml_path_follows_maps(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("http:\n  tls:\n    cert: /c.pem\n  list: [a]\n");
    assert_string_equal(mp_yaml_path(doc->root, "http.tls.cert")->value, "/c.pem");
    assert_int_equal(mp_yaml_path(doc->root, "http.tls")->type, MP_YAML_MAP);
    assert_ptr_equal(mp_yaml_path(doc->root, ""), doc->root);
    assert_null(mp_yaml_path(doc->root, "http.tls.key"));
    assert_null(mp_yaml_path(doc->root, "http.list.a")); /* lists are not walked */
    assert_null(mp_yaml_path(doc->root, "nope.tls"));
    assert_null(mp_yaml_path(NULL, "http"));
    char longkey[300];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_null(mp_yaml_path(doc->root, longkey)); /* longer than any key it can hold: absent, no overflow */
    mp_yaml_destroy(doc);
}

static void test_yaml_to_json_typing(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("int: 123\n"
                                  "neg: -7\n"
                                  "quoted_int: \"123\"\n"
                                  "single_quoted: 'true'\n"
                                  "yes_bool: true\n"
                                  "no_bool: False\n"
                                  "nul: null\n"
                                  "tilde: ~\n"
                                  "empty:\n"
                                  "float: 1.5\n"
                                  "exp: -2.5e3\n"
                                  "dotted: .5\n"
                                  "word: hello\n"
                                  "version: 1.2.3\n"
                                  "list: [1, \"2\", x]\n");
    json_t *j = mp_yaml_to_json(doc->root);
    mp_yaml_destroy(doc);
    assert_true(json_is_object(j));
    assert_true(json_is_integer(json_object_get(j, "int")));
    assert_int_equal(json_integer_value(json_object_get(j, "int")), 123);
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -7);
    assert_string_equal(json_string_value(json_object_get(j, "quoted_int")), "123");
    assert_string_equal(json_string_value(json_object_get(j, "single_quoted")), "true");
    assert_true(json_is_true(json_object_get(j, "yes_bool")));
    assert_true(json_is_false(json_object_get(j, "no_bool")));
    assert_true(json_is_null(json_object_get(j, "nul")));
    assert_true(json_is_null(json_object_get(j, "tilde")));
    assert_true(json_is_null(json_object_get(j, "empty")));
    assert_true(json_is_real(json_object_get(j, "float")));
    assert_true(json_real_value(json_object_get(j, "float")) == 1.5);
    assert_true(json_real_value(json_object_get(j, "exp")) == -2500.0);
    assert_true(json_real_value(json_object_get(j, "dotted")) == 0.5);
    assert_string_equal(json_string_value(json_object_get(j, "word")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "version")), "1.2.3");
    json_t *list = json_object_get(j, "list");
    assert_int_equal(json_array_size(list), 3);
    assert_true(json_is_integer(json_array_get(list, 0)));
    assert_true(json_is_string(json_array_get(list, 1)));
    assert_string_equal(json_string_value(json_array_get(list, 2)), "x");
    json_decref(j);
    assert_null(mp_yaml_to_json(NULL));
}

static void test_yaml_to_json_keeps_key_order(void **state)
{
    mp_yaml_doc_t *doc = parse_ok("z: 1\na: 2\nm: 3\n");
    json_t *j = mp_yaml_to_json(doc->root);
    mp_yaml_destroy(doc);
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    int same = strcmp(text, "{\"z\":1,\"a\":2,\"m\":3}") == 0;
    free(text);
    assert_true(same);
}

static void test_yaml_invalid_utf8_refused(void **state)
{
    static const char *bad[] = {
        "a: \xff\xfe\n",     /* not UTF-8 at all */
        "a: \xc3\n",         /* truncated 2-byte sequence */
        "a: \xc0\xaf\n",     /* overlong '/' */
        "a: \xed\xa0\x80\n", /* UTF-16 surrogate */
        "k\x80y: 1\n",       /* stray continuation byte in a key */
        "a: \"\\uD800\"\n",  /* escaped lone surrogate */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i], strlen(bad[i]), "t.yaml:");
    /* valid multi-byte text is kept byte for byte */
    mp_yaml_doc_t *doc = parse_ok("name: \"caf\xc3\xa9 \xf0\x9f\x8c\x99\"\n");
    assert_string_equal(mp_yaml_get(doc->root, "name")->value, "caf\xc3\xa9 \xf0\x9f\x8c\x99");
    mp_yaml_destroy(doc);
}

static void test_yaml_syntax_error_has_line(void **state)
{
    const char *text = "a: 1\nb: [unclosed\nc: 2\n";
    parse_fails(text, strlen(text), "t.yaml:");
    const char *tab = "a:\n\tb: 1\n"; /* tabs are not indentation */
    parse_fails(tab, strlen(tab), "t.yaml:2:");
}

static void test_yaml_load_file(void **state)
{
    char path[] = "/tmp/test_yaml_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "a:\n  b: [1, 2]\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st = mp_yaml_load_file(&doc, path);
    unlink(path);
    assert_int_equal(st, MP_OK);
    assert_string_equal(doc->file, path);
    assert_int_equal(mp_yaml_path(doc->root, "a.b")->n, 2);
    assert_int_equal(mp_yaml_path(doc->root, "a.b")->line, 2);
    mp_yaml_destroy(doc);

    doc = NULL;
    assert_int_equal(mp_yaml_load_file(&doc, "/nonexistent/moonport.yaml"), MP_EIO);
    assert_null(doc);
    assert_non_null(strstr(mp_err_get(), "/nonexistent/moonport.yaml: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_block_map_list_and_lines),
        cmocka_unit_test(test_yaml_flow_style),
        cmocka_unit_test(test_yaml_empty_document_has_no_root),
        cmocka_unit_test(test_yaml_duplicate_key_reports_file_line),
        cmocka_unit_test(test_yaml_non_scalar_key_refused),
        cmocka_unit_test(test_yaml_alias_refused),
        cmocka_unit_test(test_yaml_multiple_documents_refused),
        cmocka_unit_test(test_yaml_nesting_limit_is_64),
        cmocka_unit_test(test_yaml_nesting_limit_block_maps),
        cmocka_unit_test(test_yaml_path_follows_maps),
        cmocka_unit_test(test_yaml_to_json_typing),
        cmocka_unit_test(test_yaml_to_json_keeps_key_order),
        cmocka_unit_test(test_yaml_invalid_utf8_refused),
        cmocka_unit_test(test_yaml_syntax_error_has_line),
        cmocka_unit_test(test_yaml_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
