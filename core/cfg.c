/*
 * cfg.c: typed, validated access to the YAML configuration with environment
 * overrides and file-backed secrets (see mp/cfg.h).
 *
 * Every getter resolves a key the same way: the environment variable first,
 * then the YAML scalar, then the default. Nodes the getters visit are marked
 * `used`; mp_cfg_check() walks the tree afterwards and names every key that
 * nobody read. Errors accumulate in one buffer so a user fixes them all in
 * one round.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/cfg.h"

struct mp_cfg {
    mp_yaml_doc_t *doc;
    char *name;
    mp_buf_t errors;
    char **owned; /* strings and arrays handed out by getters */
    size_t nowned;
};

/* Where a value came from, for messages. */
typedef struct source {
    const char *text;           /* the raw value, or NULL when absent */
    const mp_yaml_node_t *node; /* set when it came from the file */
    char env[128];              /* set when it came from the environment */
} source_t;

static void *own(mp_cfg_t *c, void *p)
{
    c->owned = mp_xrealloc(c->owned, (c->nowned + 1) * sizeof(*c->owned));
    c->owned[c->nowned++] = p;
    return p;
}

mp_status_t mp_cfg_parse(mp_cfg_t **out, const char *name, const char *text)
{
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st = mp_yaml_parse(&doc, name, text, strlen(text));
    if (st != MP_OK)
        return st;
    if (doc->root != NULL && doc->root->type != MP_YAML_MAP) {
        st = mp_err_set(MP_EINVAL, "%s:%d: the configuration must be a map of sections", name, doc->root->line);
        mp_yaml_destroy(doc);
        return st;
    }
    mp_cfg_t *c = mp_xcalloc(1, sizeof(*c));
    c->doc = doc;
    c->name = mp_xstrdup(name);
    *out = c;
    return MP_OK;
}

mp_status_t mp_cfg_load(mp_cfg_t **out, const char *path)
{
    if (path == NULL)
        return mp_cfg_parse(out, "(defaults)", "");
    mp_yaml_doc_t *doc = NULL;
    mp_status_t st = mp_yaml_load_file(&doc, path);
    if (st != MP_OK)
        return st;
    if (doc->root != NULL && doc->root->type != MP_YAML_MAP) {
        st = mp_err_set(MP_EINVAL, "%s:%d: the configuration must be a map of sections", path, doc->root->line);
        mp_yaml_destroy(doc);
        return st;
    }
    mp_cfg_t *c = mp_xcalloc(1, sizeof(*c));
    c->doc = doc;
    c->name = mp_xstrdup(path);
    *out = c;
    return MP_OK;
}

void mp_cfg_destroy(mp_cfg_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    free(c->owned);
    mp_buf_dispose(&c->errors);
    mp_yaml_destroy(c->doc);
    free(c->name);
    free(c);
}

const char *mp_cfg_file(const mp_cfg_t *c)
{
    return c->name;
}

void mp_cfg_env_name(char *buf, size_t size, const char *key)
{
    size_t n = (size_t)snprintf(buf, size, "MOONPORT_");
    for (const char *p = key; *p && n + 1 < size; p++)
        buf[n++] = *p == '.' || *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n < size ? n : size - 1] = '\0';
}

/* Walks the dotted key, marking every node on the way as used. */
static mp_yaml_node_t *walk(mp_cfg_t *c, const char *key)
{
    char part[128];
    mp_yaml_node_t *cur = c->doc->root;
    const char *p = key;

    while (cur != NULL && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        cur = mp_yaml_get(cur, part);
        if (cur != NULL)
            cur->used = true;
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

static void errorf(mp_cfg_t *c, const source_t *src, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errorf(mp_cfg_t *c, const source_t *src, const char *key, const char *fmt, ...)
{
    va_list ap;
    char msg[512];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (src->env[0])
        mp_buf_printf(&c->errors, "environment %s: %s\n", src->env, msg);
    else if (src->node)
        mp_buf_printf(&c->errors, "%s:%d: %s: %s\n", c->name, src->node->line, key, msg);
    else
        mp_buf_printf(&c->errors, "%s: %s: %s\n", c->name, key, msg);
}

/* Resolves a scalar key: environment, then file. Returns false when absent. */
static bool lookup(mp_cfg_t *c, const char *key, source_t *src)
{
    memset(src, 0, sizeof(*src));
    mp_cfg_env_name(src->env, sizeof(src->env), key);
    mp_yaml_node_t *node = walk(c, key);
    const char *env = getenv(src->env);
    if (env != NULL) {
        src->text = env;
        return true;
    }
    src->env[0] = '\0';
    if (node == NULL)
        return false;
    src->node = node;
    if (node->type != MP_YAML_SCALAR) {
        errorf(c, src, key, "expected a single value, found %s", mp_yaml_kind(node));
        return false;
    }
    src->text = node->value;
    return true;
}

const char *mp_cfg_str(mp_cfg_t *c, const char *key, const char *def)
{
    source_t src;
    return lookup(c, key, &src) ? src.text : def;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

int64_t mp_cfg_int(mp_cfg_t *c, const char *key, int64_t def, int64_t min, int64_t max)
{
    source_t src;
    int64_t v;
    if (!lookup(c, key, &src))
        return def;
    if (!parse_int(src.text, &v) || v < min || v > max) {
        errorf(c, &src, key, "expected an integer from %lld to %lld, got \"%s\"", (long long)min, (long long)max,
               src.text);
        return def;
    }
    return v;
}

bool mp_cfg_bool(mp_cfg_t *c, const char *key, bool def)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    source_t src;
    if (!lookup(c, key, &src))
        return def;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(src.text, yes[i]) == 0)
            return true;
        if (strcasecmp(src.text, no[i]) == 0)
            return false;
    }
    errorf(c, &src, key, "expected true or false, got \"%s\"", src.text);
    return def;
}

double mp_cfg_double(mp_cfg_t *c, const char *key, double def, double min, double max)
{
    source_t src;
    char *end;
    if (!lookup(c, key, &src))
        return def;
    errno = 0;
    double v = strtod(src.text, &end);
    if (end == src.text || *end != '\0' || errno != 0 || !isfinite(v) || v < min || v > max) {
        errorf(c, &src, key, "expected a number from %g to %g, got \"%s\"", min, max, src.text);
        return def;
    }
    return v;
}

/* Parses "<int><unit>" with the unit's multiplier from `units` (name, factor pairs). */
static bool parse_scaled(const char *s, const char *const *names, const int64_t *factors, size_t nunits, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v < 0)
        return false;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(end, names[i]) == 0) {
            if (factors[i] != 0 && v > INT64_MAX / factors[i])
                return false;
            *out = v * factors[i];
            return true;
        }
    }
    return false;
}

int64_t mp_cfg_duration_ms(mp_cfg_t *c, const char *key, int64_t def, int64_t min, int64_t max)
{
    static const char *names[] = {"", "ms", "s", "m", "h", "d"};
    static const int64_t factors[] = {1, 1, 1000, 60000, 3600000, 86400000};
    source_t src;
    int64_t v;
    if (!lookup(c, key, &src))
        return def;
    if (!parse_scaled(src.text, names, factors, 6, &v) || v < min || v > max) {
        errorf(c, &src, key, "expected a duration from %lldms to %lldms (like 250ms, 3s, 15m), got \"%s\"",
               (long long)min, (long long)max, src.text);
        return def;
    }
    return v;
}

int64_t mp_cfg_size(mp_cfg_t *c, const char *key, int64_t def, int64_t min, int64_t max)
{
    static const char *names[] = {"", "B", "k", "K", "KiB", "KB", "m", "M", "MiB", "MB", "g", "G", "GiB", "GB"};
    static const int64_t factors[] = {1,       1,       1024,    1024,       1024,       1024,       1048576,
                                      1048576, 1048576, 1048576, 1073741824, 1073741824, 1073741824, 1073741824};
    source_t src;
    int64_t v;
    if (!lookup(c, key, &src))
        return def;
    if (!parse_scaled(src.text, names, factors, sizeof(names) / sizeof(names[0]), &v) || v < min || v > max) {
        errorf(c, &src, key, "expected a size from %lld to %lld bytes (like 16KiB, 1MiB), got \"%s\"", (long long)min,
               (long long)max, src.text);
        return def;
    }
    return v;
}

int mp_cfg_enum(mp_cfg_t *c, const char *key, const char *def, const char *const *choices)
{
    source_t src;
    int def_idx = 0;
    for (int i = 0; choices[i]; i++)
        if (def && strcmp(choices[i], def) == 0)
            def_idx = i;
    if (!lookup(c, key, &src))
        return def_idx;
    mp_buf_t list = MP_BUF_INIT;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(choices[i], src.text) == 0) {
            mp_buf_dispose(&list);
            return i;
        }
        mp_buf_printf(&list, "%s%s", i ? ", " : "", choices[i]);
    }
    errorf(c, &src, key, "expected one of %s, got \"%s\"", list.base, src.text);
    mp_buf_dispose(&list);
    return def_idx;
}

/* Splits a comma-separated string into owned, trimmed items. */
static size_t split_commas(mp_cfg_t *c, const char *s, const char *const **items)
{
    size_t n = 0;
    const char **arr = own(c, mp_xcalloc(strlen(s) / 2 + 2, sizeof(*arr)));
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b)
            arr[n++] = own(c, mp_xstrndup(b, (size_t)(e - b)));
        p += len + (comma ? 1 : 0);
    }
    *items = arr;
    return n;
}

size_t mp_cfg_strv(mp_cfg_t *c, const char *key, const char *def, const char *const **items)
{
    char env[128];
    mp_cfg_env_name(env, sizeof(env), key);
    mp_yaml_node_t *node = walk(c, key);
    const char *ev = getenv(env);
    if (ev != NULL)
        return split_commas(c, ev, items);
    if (node == NULL)
        return split_commas(c, def ? def : "", items);
    if (node->type == MP_YAML_SCALAR)
        return split_commas(c, node->value, items);
    if (node->type != MP_YAML_SEQ) {
        mp_cfg_error_at(c, node, "%s: expected a list, found %s", key, mp_yaml_kind(node));
        return split_commas(c, def ? def : "", items);
    }
    const char **arr = own(c, mp_xcalloc(node->n + 1, sizeof(*arr)));
    size_t n = 0;
    for (size_t i = 0; i < node->n; i++) {
        node->kids[i]->used = true;
        if (node->kids[i]->type != MP_YAML_SCALAR)
            mp_cfg_error_at(c, node->kids[i], "%s: list items must be single values", key);
        else
            arr[n++] = node->kids[i]->value;
    }
    *items = arr;
    return n;
}

static char *read_secret_file(mp_cfg_t *c, const source_t *src, const char *key, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        errorf(c, src, key, "cannot read secret file \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    mp_buf_t b = MP_BUF_INIT;
    char chunk[1024];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        mp_buf_append(&b, chunk, n);
    fclose(fp);
    memset(chunk, 0, sizeof(chunk));
    while (b.len > 0 && (b.base[b.len - 1] == '\n' || b.base[b.len - 1] == '\r'))
        b.base[--b.len] = '\0';
    return mp_buf_steal(&b);
}

char *mp_cfg_secret(mp_cfg_t *c, const char *key)
{
    char file_key[160];
    source_t src;

    /* a literal secret in the file would end up in the repo */
    mp_yaml_node_t *literal = walk(c, key);
    if (literal != NULL) {
        mp_cfg_error_at(c, literal, "%s: secrets may not be written in the file; use %s_file or the environment", key,
                        key);
        return NULL;
    }
    memset(&src, 0, sizeof(src));
    mp_cfg_env_name(src.env, sizeof(src.env), key);
    snprintf(file_key, sizeof(file_key), "%s_file", key);
    const char *v = getenv(src.env);
    if (v != NULL) {
        walk(c, file_key); /* overridden, but read: a `<key>_file` in the file is not an unknown key */
        return mp_xstrdup(v);
    }
    if (!lookup(c, file_key, &src))
        return NULL;
    return read_secret_file(c, &src, file_key, src.text);
}

void mp_cfg_secret_free(char *secret)
{
    if (secret == NULL)
        return;
    volatile char *p = secret;
    while (*p)
        *p++ = '\0';
    free(secret);
}

static void mark_tree(mp_yaml_node_t *n)
{
    n->used = true;
    for (size_t i = 0; i < n->n; i++)
        mark_tree(n->kids[i]);
}

mp_yaml_node_t *mp_cfg_node(mp_cfg_t *c, const char *key)
{
    mp_yaml_node_t *n = walk(c, key);
    if (n != NULL)
        mark_tree(n);
    return n;
}

void mp_cfg_accept(mp_cfg_t *c, const char *key)
{
    mp_cfg_node(c, key);
}

void mp_cfg_error_at(mp_cfg_t *c, const mp_yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    char msg[512];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (node)
        mp_buf_printf(&c->errors, "%s:%d: %s\n", c->name, node->line, msg);
    else
        mp_buf_printf(&c->errors, "%s: %s\n", c->name, msg);
}

static void find_unused(mp_cfg_t *c, const mp_yaml_node_t *map, const char *prefix)
{
    for (size_t i = 0; i < map->n; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", map->keys[i]);
        const mp_yaml_node_t *kid = map->kids[i];
        if (!kid->used)
            mp_cfg_error_at(c, kid, "unknown key \"%s\"", path);
        else if (kid->type == MP_YAML_MAP)
            find_unused(c, kid, path);
    }
}

mp_status_t mp_cfg_check(mp_cfg_t *c)
{
    if (c->doc->root != NULL)
        find_unused(c, c->doc->root, "");
    if (c->errors.len == 0)
        return MP_OK;
    /* drop the final newline so callers can print it as one block */
    c->errors.base[--c->errors.len] = '\0';
    mp_status_t st = mp_err_set(MP_EINVAL, "%s", c->errors.base);
    mp_buf_reset(&c->errors);
    return st;
}
