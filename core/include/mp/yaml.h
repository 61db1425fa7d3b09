/*
 * mp/yaml.h: a YAML document as a small tree that remembers line numbers, so
 * every consumer (config, routes, service descriptors, OpenAPI specs) can
 * report problems as `file:line: what is wrong`.
 *
 * Built on libyaml's event parser. Supports block and flow maps and
 * sequences and all scalar styles; anchors and aliases are refused (no
 * configuration here needs them, and they make line numbers ambiguous).
 * Duplicate keys are an error. A document is immutable once parsed except
 * for the `used` marks the config layer keeps. Not thread-safe.
 */
#ifndef MP_YAML_H
#define MP_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mp/status.h"

typedef enum { MP_YAML_SCALAR, MP_YAML_MAP, MP_YAML_SEQ } mp_yaml_type_t;

typedef struct mp_yaml_node mp_yaml_node_t;
struct mp_yaml_node {
    mp_yaml_type_t type;
    int line;              /* 1-based line where the node starts */
    char *value;           /* scalars: the text */
    bool plain;            /* scalars: unquoted, so `123`/`true`/`null` take their YAML core-schema types */
    size_t n;              /* maps and sequences: number of children */
    mp_yaml_node_t **kids; /* children (map values, in file order) */
    char **keys;           /* maps: keys, parallel to kids */
    bool used;             /* set by consumers that read the node (mp_cfg's unknown-key check) */
};

typedef struct mp_yaml_doc {
    char *file;           /* the name used in messages */
    mp_yaml_node_t *root; /* NULL for an empty document */
} mp_yaml_doc_t;

/** Parses `len` bytes of YAML named `file` (for messages). Errors: MP_EINVAL with "file:line: problem" in
 *  mp_err_get(). Caller owns `*out`; free with mp_yaml_destroy(). */
mp_status_t mp_yaml_parse(mp_yaml_doc_t **out, const char *file, const char *text, size_t len);
/** Reads and parses the file at `path`. Errors: MP_EIO (cannot read), MP_EINVAL (syntax). */
mp_status_t mp_yaml_load_file(mp_yaml_doc_t **out, const char *path);
/** Frees a document. Accepts NULL. */
void mp_yaml_destroy(mp_yaml_doc_t *doc);

/** Returns the value of `key` in a map node, or NULL (also when `map` is NULL or not a map). Borrowed. */
mp_yaml_node_t *mp_yaml_get(const mp_yaml_node_t *map, const char *key);
/** Follows a dotted path ("http.listen") from `node` through maps. Borrowed; NULL when absent. */
mp_yaml_node_t *mp_yaml_path(const mp_yaml_node_t *node, const char *path);
/** Converts a subtree to JSON using the YAML core schema for plain scalars (null, booleans, integers, floats);
 *  quoted scalars stay strings. New reference; NULL for a NULL node. */
json_t *mp_yaml_to_json(const mp_yaml_node_t *node);
/** The kind of a node as a word for messages ("a map", "a list", "a scalar"). */
const char *mp_yaml_kind(const mp_yaml_node_t *node);

#endif
