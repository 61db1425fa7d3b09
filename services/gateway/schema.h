/*
 * schema.h: the JSON Schema subset of OpenAPI 3.0, compiled once at start-up
 * into an immutable tree and checked against request bodies and parameters.
 *
 * Supported: type, nullable, enum, format (uuid, date-time, date, email,
 * int32, int64; other formats are annotations), minLength/maxLength (code
 * points), pattern (see pattern.h), minimum/maximum/exclusiveMinimum/
 * exclusiveMaximum (3.0 booleans), multipleOf, items, minItems/maxItems,
 * uniqueItems, properties, required, additionalProperties (boolean or
 * schema), minProperties/maxProperties, readOnly (a request may not send a
 * read-only property, and it is never required of a request), and $ref to
 * `#/components/schemas/<Name>` in the same file, resolved at load (a cycle
 * is refused). Annotations (title, description, example, default, ...,
 * x-*) are ignored. Anything else, oneOf/anyOf/allOf/not included, is refused
 * at load with `file:line: why`, so a spec never promises a check the
 * gateway does not make.
 *
 * Validation reports one error per failing field (the first rule it breaks),
 * as an RFC 6901 pointer and a sentence, at most GW_SCHEMA_MAX_ERRORS.
 *
 * A context (one per spec file) owns every node compiled through it. Nodes
 * are immutable after compilation and may be used from any thread.
 */
#ifndef MP_GW_SCHEMA_H
#define MP_GW_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mp/buf.h"
#include "mp/problem.h"
#include "mp/yaml.h"

#define GW_SCHEMA_MAX_ERRORS 50

/* type bits */
enum {
    GW_T_BOOLEAN = 1 << 0,
    GW_T_INTEGER = 1 << 1,
    GW_T_NUMBER = 1 << 2,
    GW_T_STRING = 1 << 3,
    GW_T_ARRAY = 1 << 4,
    GW_T_OBJECT = 1 << 5,
};

typedef struct gw_schema gw_schema_t;
typedef struct gw_schema_ctx gw_schema_ctx_t;

/** Creates a compile context for one spec document (its components resolve $refs). `doc` is borrowed and must
 *  outlive the compile calls only. Caller owns the result; free with gw_schema_ctx_destroy(), which frees every node
 *  compiled through it. */
gw_schema_ctx_t *gw_schema_ctx_create(const mp_yaml_doc_t *doc);
/** Frees the context and its nodes. Accepts NULL. */
void gw_schema_ctx_destroy(gw_schema_ctx_t *ctx);

/** Compiles the Schema Object at `node`. Returns NULL on error after appending "file:line: why" lines to `errs`.
 *  The result is owned by `ctx`. */
const gw_schema_t *gw_schema_compile(gw_schema_ctx_t *ctx, const mp_yaml_node_t *node, mp_buf_t *errs);

/** Checks `v` against `s`, adding one error per failing field to `errs` with pointers under `pointer` ("" for the
 *  root). Returns the number of errors added. Any thread. */
size_t gw_schema_validate(const gw_schema_t *s, const json_t *v, const char *pointer, mp_problem_errors_t *errs);

/** The schema's allowed types (GW_T_* bits; 0 when it allows any). */
unsigned gw_schema_types(const gw_schema_t *s);
/** An array schema's item schema, or NULL. */
const gw_schema_t *gw_schema_items(const gw_schema_t *s);

#endif
