/*
 * fuzz_yaml_cfg.c: libFuzzer target for mp_yaml_parse(), mp_yaml_to_json()
 * and the configuration layer on top (mp_cfg_parse(), its getters and
 * mp_cfg_check()).
 *
 * Each input is parsed as YAML; a tree must convert to JSON, and every line
 * number must lie within the input. The same text (up to its first NUL, as
 * mp_cfg_parse takes a C string) is then read as a configuration: a few keys
 * through every getter, then mp_cfg_check(), whose report must be non-empty
 * exactly when it fails. No MOONPORT_* variables are set by the target, so
 * secrets only come from `<key>_file` keys, which point at files we never
 * create. Seeds: tests/fuzz/corpus/yaml_cfg/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/cfg.h"
#include "mp/yaml.h"

static int max_line;

static void check_lines(const mp_yaml_node_t *n)
{
    if (n->line < 1 || n->line > max_line)
        abort();
    for (size_t i = 0; i < n->n; i++) {
        if (n->kids[i] == NULL || (n->type == MP_YAML_MAP && n->keys[i] == NULL))
            abort();
        check_lines(n->kids[i]);
    }
}

static void check_yaml(const char *text, size_t size)
{
    mp_yaml_doc_t *doc = NULL;
    if (mp_yaml_parse(&doc, "fuzz.yaml", text, size) != MP_OK)
        return;
    /* an upper bound: libyaml also breaks lines at NEL (C2 85), LS and PS (E2 80 A8/A9), and an empty node at the
     * end of a text without a final newline sits on the line after (libyaml's stream end forces a new line) */
    max_line = 2;
    for (size_t i = 0; i < size; i++)
        max_line += text[i] == '\n' || text[i] == '\r' ||
                    (text[i] == '\xc2' && i + 1 < size && text[i + 1] == '\x85') ||
                    (text[i] == '\xe2' && i + 2 < size && text[i + 1] == '\x80' &&
                     (text[i + 2] == '\xa8' || text[i + 2] == '\xa9'));
    if (doc->root != NULL) {
        check_lines(doc->root);
        json_t *j = mp_yaml_to_json(doc->root);
        if (j == NULL)
            abort();
        json_decref(j);
        (void)mp_yaml_path(doc->root, "http.listen");
    }
    mp_yaml_destroy(doc);
}

static void check_cfg(const char *text)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    const char *const *items;
    mp_cfg_t *c = NULL;

    if (mp_cfg_parse(&c, "fuzz.yaml", text) != MP_OK)
        return;
    (void)mp_cfg_str(c, "http.listen", "0.0.0.0:8080");
    (void)mp_cfg_int(c, "http.workers", 2, 1, 64);
    (void)mp_cfg_bool(c, "http.debug", false);
    (void)mp_cfg_double(c, "http.ratio", 0.5, 0, 1);
    (void)mp_cfg_duration_ms(c, "http.timeout", 3000, 1, INT64_MAX);
    (void)mp_cfg_size(c, "http.body_limit", 1 << 20, 0, INT64_MAX);
    (void)mp_cfg_enum(c, "log.level", "info", levels);
    size_t n = mp_cfg_strv(c, "nats.servers", "nats://127.0.0.1:4222", &items);
    for (size_t i = 0; i < n; i++)
        if (items[i] == NULL)
            abort();
    mp_cfg_secret_free(mp_cfg_secret(c, "db.password"));
    (void)mp_cfg_node(c, "routes");
    mp_status_t st = mp_cfg_check(c);
    if (st != MP_OK && (st != MP_EINVAL || mp_err_get()[0] == '\0'))
        abort();
    mp_cfg_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    mp_err_clear();
    check_yaml(text, size);
    check_cfg(text);
    free(text);
    return 0;
}
