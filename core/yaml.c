/*
 * yaml.c: libyaml's event stream folded into an mp_yaml_node_t tree with line
 * numbers (see mp/yaml.h).
 *
 * The builder keeps an explicit stack of open collections; each scalar or
 * finished collection is attached to the collection on top. In a map, nodes
 * alternate key, value: a pending key waits in the frame until its value
 * arrives. Keys must be scalars.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "mp/alloc.h"
#include "mp/yaml.h"

#define MAX_DEPTH 64

typedef struct frame {
    mp_yaml_node_t *node;
    char *pending_key; /* maps: key read, value not yet */
    int pending_line;
} frame_t;

typedef struct builder {
    const char *file;
    frame_t stack[MAX_DEPTH];
    int depth;
    mp_yaml_node_t *root;
} builder_t;

static mp_yaml_node_t *node_new(mp_yaml_type_t type, int line)
{
    mp_yaml_node_t *n = mp_xcalloc(1, sizeof(*n));
    n->type = type;
    n->line = line;
    return n;
}

static void node_free(mp_yaml_node_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->kids[i]);
        if (n->keys)
            free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->value);
    free(n);
}

static void push_child(mp_yaml_node_t *parent, char *key, mp_yaml_node_t *child)
{
    parent->kids = mp_xrealloc(parent->kids, (parent->n + 1) * sizeof(*parent->kids));
    if (parent->type == MP_YAML_MAP) {
        parent->keys = mp_xrealloc(parent->keys, (parent->n + 1) * sizeof(*parent->keys));
        parent->keys[parent->n] = key;
    }
    parent->kids[parent->n++] = child;
}

/* Attaches a finished node to the open collection, or makes it the root. */
static mp_status_t attach(builder_t *b, mp_yaml_node_t *node)
{
    if (b->depth == 0) {
        b->root = node;
        return MP_OK;
    }
    frame_t *top = &b->stack[b->depth - 1];
    if (top->node->type == MP_YAML_SEQ) {
        push_child(top->node, NULL, node);
        return MP_OK;
    }
    if (top->pending_key == NULL) {
        if (node->type != MP_YAML_SCALAR) {
            mp_err_set(MP_EINVAL, "%s:%d: a map key must be a plain value", b->file, node->line);
            node_free(node);
            return MP_EINVAL;
        }
        if (mp_yaml_get(top->node, node->value) != NULL) {
            mp_err_set(MP_EINVAL, "%s:%d: duplicate key \"%s\"", b->file, node->line, node->value);
            node_free(node);
            return MP_EINVAL;
        }
        top->pending_key = node->value;
        top->pending_line = node->line;
        node->value = NULL;
        node_free(node);
        return MP_OK;
    }
    push_child(top->node, top->pending_key, node);
    top->pending_key = NULL;
    return MP_OK;
}

static mp_status_t open_collection(builder_t *b, mp_yaml_type_t type, int line)
{
    if (b->depth == MAX_DEPTH)
        return mp_err_set(MP_EINVAL, "%s:%d: nesting deeper than %d levels", b->file, line, MAX_DEPTH);
    b->stack[b->depth].node = node_new(type, line);
    b->stack[b->depth].pending_key = NULL;
    b->depth++;
    return MP_OK;
}

static mp_status_t close_collection(builder_t *b)
{
    frame_t f = b->stack[--b->depth];
    free(f.pending_key); /* libyaml guarantees pairs, but stay leak-free regardless */
    return attach(b, f.node);
}

static mp_status_t on_event(builder_t *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    mp_yaml_node_t *n;

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(MP_YAML_SCALAR, line);
        n->value = mp_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return attach(b, n);
    case YAML_SEQUENCE_START_EVENT:
        return open_collection(b, MP_YAML_SEQ, line);
    case YAML_MAPPING_START_EVENT:
        return open_collection(b, MP_YAML_MAP, line);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(b);
    case YAML_ALIAS_EVENT:
        return mp_err_set(MP_EINVAL, "%s:%d: YAML aliases are not supported", b->file, line);
    default:
        return MP_OK;
    }
}

static void builder_dispose(builder_t *b)
{
    while (b->depth > 0) {
        frame_t *f = &b->stack[--b->depth];
        free(f->pending_key);
        node_free(f->node);
    }
    node_free(b->root);
    b->root = NULL;
}

mp_status_t mp_yaml_parse(mp_yaml_doc_t **out, const char *file, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    builder_t b = {.file = file};
    mp_status_t st = MP_OK;
    int docs = 0;

    if (!yaml_parser_initialize(&parser))
        return mp_err_set(MP_ENOMEM, "%s: cannot create the YAML parser", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            st = mp_err_set(MP_EINVAL, "%s:%d: %s", file, (int)parser.problem_mark.line + 1,
                            parser.problem ? parser.problem : "syntax error");
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            st = mp_err_set(MP_EINVAL, "%s:%d: only one YAML document is allowed", file, (int)ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        st = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (st != MP_OK || done)
            break;
    }
    yaml_parser_delete(&parser);
    if (st != MP_OK) {
        builder_dispose(&b);
        return st;
    }
    mp_yaml_doc_t *doc = mp_xcalloc(1, sizeof(*doc));
    doc->file = mp_xstrdup(file);
    doc->root = b.root;
    *out = doc;
    return MP_OK;
}

mp_status_t mp_yaml_load_file(mp_yaml_doc_t **out, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            text = mp_xrealloc(text, cap);
        }
        size_t n = fread(text + len, 1, cap - len, fp);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(fp);
    fclose(fp);
    mp_status_t st = err ? mp_err_set(MP_EIO, "%s: read error", path) : mp_yaml_parse(out, path, text, len);
    free(text);
    return st;
}

void mp_yaml_destroy(mp_yaml_doc_t *doc)
{
    if (doc == NULL)
        return;
    node_free(doc->root);
    free(doc->file);
    free(doc);
}

mp_yaml_node_t *mp_yaml_get(const mp_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != MP_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->kids[i];
    return NULL;
}

mp_yaml_node_t *mp_yaml_path(const mp_yaml_node_t *node, const char *path)
{
    char key[128];
    const char *p = path;
    mp_yaml_node_t *cur = (mp_yaml_node_t *)node;

    while (cur != NULL && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = mp_yaml_get(cur, key);
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

/* YAML 1.2 core schema for plain scalars. */
static json_t *plain_scalar_to_json(const char *s)
{
    if (*s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
        return json_null();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return json_true();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && (s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return json_integer(i);
    errno = 0;
    double d = strtod(s, &end);
    if (*end == '\0' && errno == 0 && isfinite(d) &&
        (s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')))
        return json_real(d);
    return json_string(s);
}

json_t *mp_yaml_to_json(const mp_yaml_node_t *node)
{
    if (node == NULL)
        return NULL;
    switch (node->type) {
    case MP_YAML_SCALAR: {
        json_t *j = node->plain ? plain_scalar_to_json(node->value) : json_string(node->value);
        return j ? j : json_null(); /* unreachable: libyaml rejects invalid UTF-8 input */
    }
    case MP_YAML_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < node->n; i++)
            json_array_append_new(a, mp_yaml_to_json(node->kids[i]));
        return a;
    }
    case MP_YAML_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i < node->n; i++)
            json_object_set_new(o, node->keys[i], mp_yaml_to_json(node->kids[i]));
        return o;
    }
    }
    return json_null();
}

const char *mp_yaml_kind(const mp_yaml_node_t *node)
{
    if (node == NULL)
        return "nothing";
    switch (node->type) {
    case MP_YAML_SCALAR:
        return "a value";
    case MP_YAML_MAP:
        return "a map";
    case MP_YAML_SEQ:
        return "a list";
    }
    return "?";
}
