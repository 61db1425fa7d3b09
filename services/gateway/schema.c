/*
 * schema.c: compiling and checking OpenAPI 3.0 schemas (see schema.h).
 *
 * Compilation walks the YAML tree (which keeps line numbers for messages)
 * and copies everything it needs, so the document can be freed afterwards.
 * A $ref compiles its target once; every reference shares that node, and a
 * reference back into a target still being compiled is a cycle.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/input.h"
#include "pattern.h"
#include "routes.h"
#include "schema.h"

enum { FMT_NONE, FMT_UUID, FMT_DATE_TIME, FMT_DATE, FMT_EMAIL, FMT_INT32, FMT_INT64 };
enum { N_MIN = 1, N_MAX = 2, N_EXCL_MIN = 4, N_EXCL_MAX = 8, N_MULTIPLE = 16 };
enum { ADDL_ANY, ADDL_NONE, ADDL_SCHEMA };

struct gw_schema {
    unsigned types; /* GW_T_*; 0: any */
    bool nullable, read_only;
    json_t *enumv; /* array, or NULL */
    /* strings */
    bool has_min_len, has_max_len, has_re;
    size_t min_len, max_len;
    regex_t re;
    gw_pattern_seq_t *seq; /* the direct matcher for `re`, or NULL: regexec() */
    char *pattern;
    int format;
    /* numbers */
    unsigned nflags;
    double min, max, multiple;
    /* arrays */
    const gw_schema_t *items;
    bool has_min_items, has_max_items, unique;
    size_t min_items, max_items;
    /* objects */
    size_t nprops, nrequired;
    char **names;
    const gw_schema_t **props;
    char **required;
    int additional;
    const gw_schema_t *additional_schema;
    bool has_min_props, has_max_props;
    size_t min_props, max_props;
    gw_schema_t *next; /* the context's list of owned nodes */
};

typedef struct component {
    const char *name;
    const mp_yaml_node_t *node;
    int state; /* 0 not compiled, 1 compiling, 2 done, 3 failed */
    const gw_schema_t *compiled;
} component_t;

struct gw_schema_ctx {
    const char *file;
    component_t *comps;
    size_t ncomps;
    gw_schema_t *nodes;
};

/* ---- context ------------------------------------------------------------------------------------- */

gw_schema_ctx_t *gw_schema_ctx_create(const mp_yaml_doc_t *doc)
{
    gw_schema_ctx_t *ctx = mp_xcalloc(1, sizeof(*ctx));
    ctx->file = doc->file;
    const mp_yaml_node_t *schemas = mp_yaml_path(doc->root, "components.schemas");
    if (schemas && schemas->type == MP_YAML_MAP && schemas->n) {
        ctx->comps = mp_xcalloc(schemas->n, sizeof(*ctx->comps));
        for (size_t i = 0; i < schemas->n; i++)
            ctx->comps[ctx->ncomps++] = (component_t){.name = schemas->keys[i], .node = schemas->kids[i]};
    }
    return ctx;
}

void gw_schema_ctx_destroy(gw_schema_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    for (gw_schema_t *s = ctx->nodes, *next; s; s = next) {
        next = s->next;
        json_decref(s->enumv);
        if (s->has_re)
            regfree(&s->re);
        free(s->seq);
        free(s->pattern);
        for (size_t i = 0; i < s->nprops; i++)
            free(s->names[i]);
        for (size_t i = 0; i < s->nrequired; i++)
            free(s->required[i]);
        free(s->names);
        free(s->props);
        free(s->required);
        free(s);
    }
    free(ctx->comps);
    free(ctx);
}

/* ---- compiling ----------------------------------------------------------------------------------- */

#define schema_errf(ctx, errs, at, ...) gw_errorf(errs, (ctx)->file, at, __VA_ARGS__)

static bool scalar_bool(const mp_yaml_node_t *n, bool *out)
{
    if (n->type != MP_YAML_SCALAR)
        return false;
    if (strcmp(n->value, "true") == 0 || strcmp(n->value, "false") == 0) {
        *out = n->value[0] == 't';
        return true;
    }
    return false;
}

static bool scalar_size(const mp_yaml_node_t *n, size_t *out)
{
    char *end;
    if (n->type != MP_YAML_SCALAR || n->value[0] < '0' || n->value[0] > '9')
        return false;
    unsigned long long v = strtoull(n->value, &end, 10);
    if (*end != '\0' || v > (1ULL << 40))
        return false;
    *out = (size_t)v;
    return true;
}

static bool scalar_number(const mp_yaml_node_t *n, double *out)
{
    char *end;
    if (n->type != MP_YAML_SCALAR || n->value[0] == '\0')
        return false;
    double v = strtod(n->value, &end);
    if (*end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static const char *const annotations[] = {"title",      "description", "example", "examples",     "default",
                                          "deprecated", "writeOnly",   "xml",     "externalDocs", NULL};

static bool is_annotation(const char *key)
{
    if (strncmp(key, "x-", 2) == 0)
        return true;
    for (size_t i = 0; annotations[i]; i++)
        if (strcmp(annotations[i], key) == 0)
            return true;
    return false;
}

static unsigned type_bit(const char *t)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {{"boolean", GW_T_BOOLEAN}, {"integer", GW_T_INTEGER}, {"number", GW_T_NUMBER},
                 {"string", GW_T_STRING},   {"array", GW_T_ARRAY},     {"object", GW_T_OBJECT}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, t) == 0)
            return types[i].bit;
    return 0;
}

static int format_of(const char *f)
{
    static const char *const names[] = {"", "uuid", "date-time", "date", "email", "int32", "int64", NULL};
    for (int i = 1; names[i]; i++)
        if (strcmp(names[i], f) == 0)
            return i;
    return FMT_NONE; /* other formats are annotations (OpenAPI) */
}

static const gw_schema_t *compile(gw_schema_ctx_t *ctx, const mp_yaml_node_t *node, mp_buf_t *errs);

static const gw_schema_t *resolve_ref(gw_schema_ctx_t *ctx, const mp_yaml_node_t *ref, mp_buf_t *errs)
{
    static const char prefix[] = "#/components/schemas/";
    if (ref->type != MP_YAML_SCALAR || strncmp(ref->value, prefix, sizeof(prefix) - 1) != 0) {
        schema_errf(ctx, errs, ref, "$ref must point to #/components/schemas/<Name> in the same file");
        return NULL;
    }
    const char *name = ref->value + sizeof(prefix) - 1;
    for (size_t i = 0; i < ctx->ncomps; i++) {
        component_t *c = &ctx->comps[i];
        if (strcmp(c->name, name) != 0)
            continue;
        if (c->state == 1) {
            schema_errf(ctx, errs, ref, "$ref %s refers back to a schema that contains it (a cycle)", ref->value);
            return NULL;
        }
        if (c->state == 0) {
            c->state = 1;
            c->compiled = compile(ctx, c->node, errs);
            c->state = c->compiled ? 2 : 3;
        }
        return c->compiled;
    }
    schema_errf(ctx, errs, ref, "$ref %s: no such schema under components.schemas", ref->value);
    return NULL;
}

static bool compile_props(gw_schema_ctx_t *ctx, gw_schema_t *s, const mp_yaml_node_t *props, mp_buf_t *errs)
{
    if (props->type != MP_YAML_MAP) {
        schema_errf(ctx, errs, props, "properties must be a map of schemas");
        return false;
    }
    s->names = mp_xcalloc(props->n + 1, sizeof(*s->names));
    s->props = mp_xcalloc(props->n + 1, sizeof(*s->props));
    bool ok = true;
    for (size_t i = 0; i < props->n; i++) {
        const gw_schema_t *p = compile(ctx, props->kids[i], errs);
        if (p == NULL) {
            ok = false;
            continue;
        }
        s->names[s->nprops] = mp_xstrdup(props->keys[i]);
        s->props[s->nprops++] = p;
    }
    return ok;
}

static bool compile_required(gw_schema_ctx_t *ctx, gw_schema_t *s, const mp_yaml_node_t *req, mp_buf_t *errs)
{
    if (req->type != MP_YAML_SEQ) {
        schema_errf(ctx, errs, req, "required must be a list of property names");
        return false;
    }
    s->required = mp_xcalloc(req->n + 1, sizeof(*s->required));
    for (size_t i = 0; i < req->n; i++) {
        if (req->kids[i]->type != MP_YAML_SCALAR) {
            schema_errf(ctx, errs, req->kids[i], "required must list property names");
            return false;
        }
        s->required[s->nrequired++] = mp_xstrdup(req->kids[i]->value);
    }
    return true;
}

/* One keyword of a schema; false when it is bad (already reported). */
static bool keyword(gw_schema_ctx_t *ctx, gw_schema_t *s, const char *k, const mp_yaml_node_t *v, mp_buf_t *errs)
{
    char why[200];
    double d;
    bool b;
    if (strcmp(k, "type") == 0) {
        if (v->type != MP_YAML_SCALAR || (s->types = type_bit(v->value)) == 0) {
            schema_errf(ctx, errs, v,
                        "type must be one of boolean, integer, number, string, array, object (use "
                        "nullable: true for null)");
            return false;
        }
        if (s->types == GW_T_NUMBER)
            s->types |= GW_T_INTEGER; /* every integer is a number */
    } else if (strcmp(k, "nullable") == 0 || strcmp(k, "readOnly") == 0 || strcmp(k, "uniqueItems") == 0 ||
               strcmp(k, "exclusiveMinimum") == 0 || strcmp(k, "exclusiveMaximum") == 0) {
        if (!scalar_bool(v, &b)) {
            schema_errf(ctx, errs, v, "%s must be true or false", k);
            return false;
        }
        if (k[0] == 'n')
            s->nullable = b;
        else if (k[0] == 'r')
            s->read_only = b;
        else if (k[0] == 'u')
            s->unique = b;
        else if (b)
            s->nflags |= strcmp(k, "exclusiveMinimum") == 0 ? N_EXCL_MIN : N_EXCL_MAX;
    } else if (strcmp(k, "enum") == 0) {
        if (v->type != MP_YAML_SEQ || v->n == 0) {
            schema_errf(ctx, errs, v, "enum must be a non-empty list");
            return false;
        }
        s->enumv = mp_yaml_to_json(v);
    } else if (strcmp(k, "format") == 0) {
        s->format = v->type == MP_YAML_SCALAR ? format_of(v->value) : FMT_NONE;
    } else if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0) {
        size_t n;
        if (!scalar_size(v, &n)) {
            schema_errf(ctx, errs, v, "%s must be a non-negative integer", k);
            return false;
        }
        if (k[1] == 'i')
            s->min_len = n, s->has_min_len = true;
        else
            s->max_len = n, s->has_max_len = true;
    } else if (strcmp(k, "pattern") == 0) {
        if (v->type != MP_YAML_SCALAR || !gw_pattern_compile(&s->re, v->value, why, sizeof(why))) {
            schema_errf(ctx, errs, v, "pattern: %s", v->type == MP_YAML_SCALAR ? why : "must be a string");
            return false;
        }
        s->has_re = true;
        s->seq = gw_pattern_seq_compile(v->value);
        s->pattern = mp_xstrdup(v->value);
    } else if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0 || strcmp(k, "multipleOf") == 0) {
        if (!scalar_number(v, &d) || (k[0] == 'm' && k[1] == 'u' && d <= 0)) {
            schema_errf(ctx, errs, v, "%s must be a number%s", k, k[1] == 'u' ? " above 0" : "");
            return false;
        }
        if (k[1] == 'u')
            s->multiple = d, s->nflags |= N_MULTIPLE;
        else if (k[1] == 'i')
            s->min = d, s->nflags |= N_MIN;
        else
            s->max = d, s->nflags |= N_MAX;
    } else if (strcmp(k, "minItems") == 0 || strcmp(k, "maxItems") == 0 || strcmp(k, "minProperties") == 0 ||
               strcmp(k, "maxProperties") == 0) {
        size_t n;
        if (!scalar_size(v, &n)) {
            schema_errf(ctx, errs, v, "%s must be a non-negative integer", k);
            return false;
        }
        bool min = k[1] == 'i', items = strchr(k, 'I') != NULL;
        if (items && min)
            s->min_items = n, s->has_min_items = true;
        else if (items)
            s->max_items = n, s->has_max_items = true;
        else if (min)
            s->min_props = n, s->has_min_props = true;
        else
            s->max_props = n, s->has_max_props = true;
    } else if (strcmp(k, "items") == 0) {
        return (s->items = compile(ctx, v, errs)) != NULL;
    } else if (strcmp(k, "properties") == 0) {
        return compile_props(ctx, s, v, errs);
    } else if (strcmp(k, "required") == 0) {
        return compile_required(ctx, s, v, errs);
    } else if (strcmp(k, "additionalProperties") == 0) {
        if (scalar_bool(v, &b)) {
            s->additional = b ? ADDL_ANY : ADDL_NONE;
        } else {
            s->additional = ADDL_SCHEMA;
            return (s->additional_schema = compile(ctx, v, errs)) != NULL;
        }
    } else if (strcmp(k, "oneOf") == 0 || strcmp(k, "anyOf") == 0 || strcmp(k, "allOf") == 0 || strcmp(k, "not") == 0 ||
               strcmp(k, "discriminator") == 0) {
        schema_errf(ctx, errs, v, "%s is not supported by the gateway's validator; describe the body with one schema",
                    k);
        return false;
    } else if (!is_annotation(k)) {
        schema_errf(ctx, errs, v, "unknown schema keyword \"%s\"", k);
        return false;
    }
    return true;
}

static const gw_schema_t *compile(gw_schema_ctx_t *ctx, const mp_yaml_node_t *node, mp_buf_t *errs)
{
    if (node->type != MP_YAML_MAP) {
        schema_errf(ctx, errs, node, "a schema must be a map, found %s", mp_yaml_kind(node));
        return NULL;
    }
    const mp_yaml_node_t *ref = mp_yaml_get(node, "$ref");
    if (ref)
        return resolve_ref(ctx, ref, errs); /* OpenAPI 3.0: siblings of $ref are ignored */
    gw_schema_t *s = mp_xcalloc(1, sizeof(*s));
    s->next = ctx->nodes;
    ctx->nodes = s;
    bool ok = true;
    for (size_t i = 0; i < node->n; i++)
        ok &= keyword(ctx, s, node->keys[i], node->kids[i], errs);
    if (ok && s->items == NULL && s->types == GW_T_ARRAY) {
        schema_errf(ctx, errs, node, "an array schema needs items");
        ok = false;
    }
    return ok ? s : NULL;
}

const gw_schema_t *gw_schema_compile(gw_schema_ctx_t *ctx, const mp_yaml_node_t *node, mp_buf_t *errs)
{
    return compile(ctx, node, errs);
}

unsigned gw_schema_types(const gw_schema_t *s)
{
    return s->types;
}

const gw_schema_t *gw_schema_items(const gw_schema_t *s)
{
    return s->items;
}

/* ---- formats ------------------------------------------------------------------------------------- */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static bool valid_date(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return false;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    return !(m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

static bool valid_date_time(const char *s, size_t len)
{
    if (len < 20 || !valid_date(s) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    if (num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60)
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z'))
        return true;
    return i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' &&
           digits(s + i + 4, 2) && num(s + i + 1, 2) < 24 && num(s + i + 4, 2) < 60;
}

static bool valid_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || at == s || len > 254 || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
        return false;
    const char *dom = at + 1;
    size_t dlen = len - (size_t)(dom - s);
    if (dlen < 3 || dom[0] == '.' || dom[dlen - 1] == '.' || memchr(dom, '.', dlen) == NULL)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

/* ---- validating ---------------------------------------------------------------------------------- */

typedef struct vctx {
    mp_problem_errors_t *errs;
    size_t added;
    char ptr[1024];
    size_t len;
} vctx_t;

static void schema_fail(vctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void schema_fail(vctx_t *c, const char *fmt, ...)
{
    char msg[300];
    if (mp_problem_count(c->errs) >= GW_SCHEMA_MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mp_problem_add(c->errs, c->ptr, "%s", msg);
    c->added++;
}

/* Appends "/<key>" (RFC 6901 escaped) to the pointer; returns the old length to restore. */
static size_t push(vctx_t *c, const char *key)
{
    size_t old = c->len;
    mp_json_pointer_join(c->ptr, sizeof(c->ptr), c->ptr, key); /* joins in place (memmove) */
    c->len = strlen(c->ptr);
    return old;
}

static void pop(vctx_t *c, size_t old)
{
    c->len = old;
    c->ptr[old] = '\0';
}

static void fmt_num(char *out, size_t size, double d)
{
    if (d == floor(d) && fabs(d) < 1e15)
        snprintf(out, size, "%.0f", d);
    else
        snprintf(out, size, "%g", d);
}

static const char *type_words(unsigned t)
{
    if (t & GW_T_NUMBER)
        return "a number";
    if (t & GW_T_INTEGER)
        return "an integer";
    if (t & GW_T_STRING)
        return "a string";
    if (t & GW_T_BOOLEAN)
        return "true or false";
    if (t & GW_T_ARRAY)
        return "an array";
    return "an object";
}

static unsigned json_type_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return GW_T_OBJECT;
    case JSON_ARRAY:
        return GW_T_ARRAY;
    case JSON_STRING:
        return GW_T_STRING;
    case JSON_INTEGER:
        return GW_T_INTEGER;
    case JSON_REAL:
        return GW_T_NUMBER;
    default:
        return GW_T_BOOLEAN;
    }
}

static void enum_text(char *out, size_t size, const json_t *enumv)
{
    size_t n = 0, i;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(enumv, i, e)
    {
        char *t = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT);
        if (t && n + strlen(t) + 8 < size)
            n += (size_t)snprintf(out + n, size - n, "%s%s", i ? ", " : "", t);
        else if (n + 5 < size)
            n += (size_t)snprintf(out + n, size - n, ", ...");
        free(t);
        if (n + 8 >= size)
            break;
    }
}

static bool check_string(vctx_t *c, const gw_schema_t *s, const json_t *v)
{
    const char *str = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (s->has_min_len || s->has_max_len) {
        size_t n = mp_utf8_len(str);
        if ((s->has_min_len && n < s->min_len) || (s->has_max_len && n > s->max_len)) {
            if (s->has_min_len && s->has_max_len && s->min_len == s->max_len)
                schema_fail(c, "must be %zu characters long", s->min_len);
            else if (s->has_min_len && s->has_max_len)
                schema_fail(c, "must be %zu to %zu characters long", s->min_len, s->max_len);
            else if (s->has_min_len)
                schema_fail(c, "must be at least %zu characters long", s->min_len);
            else
                schema_fail(c, "must be at most %zu characters long", s->max_len);
            return false;
        }
    }
    bool ok = true;
    switch (s->format) {
    case FMT_UUID:
        if (!(ok = mp_uuid_valid(str)))
            schema_fail(c, "must be an id (a UUID)");
        break;
    case FMT_DATE:
        if (!(ok = bytes == 10 && valid_date(str)))
            schema_fail(c, "must be a date like 2026-11-23");
        break;
    case FMT_DATE_TIME:
        if (!(ok = valid_date_time(str, bytes)))
            schema_fail(c, "must be an RFC 3339 timestamp like 2026-11-23T21:07:08Z");
        break;
    case FMT_EMAIL:
        if (!(ok = valid_email(str, bytes)))
            schema_fail(c, "must be an e-mail address");
        break;
    }
    if (ok && s->has_re && !(s->seq ? gw_pattern_seq_match(s->seq, str) : regexec(&s->re, str, 0, NULL, 0) == 0)) {
        schema_fail(c, "must match the pattern %s", s->pattern);
        ok = false;
    }
    return ok;
}

static void check_number(vctx_t *c, const gw_schema_t *s, const json_t *v)
{
    double d = json_number_value(v);
    char a[40];
    if (s->format == FMT_INT32 && json_is_integer(v) &&
        (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)) {
        schema_fail(c, "must fit in 32 bits");
        return;
    }
    if ((s->nflags & N_MIN) && (d < s->min || ((s->nflags & N_EXCL_MIN) && d == s->min))) {
        fmt_num(a, sizeof(a), s->min);
        schema_fail(c, (s->nflags & N_EXCL_MIN) ? "must be greater than %s" : "must be at least %s", a);
    } else if ((s->nflags & N_MAX) && (d > s->max || ((s->nflags & N_EXCL_MAX) && d == s->max))) {
        fmt_num(a, sizeof(a), s->max);
        schema_fail(c, (s->nflags & N_EXCL_MAX) ? "must be less than %s" : "must be at most %s", a);
    } else if ((s->nflags & N_MULTIPLE) && fabs(remainder(d, s->multiple)) > 1e-9 * fabs(s->multiple)) {
        fmt_num(a, sizeof(a), s->multiple);
        schema_fail(c, "must be a multiple of %s", a);
    }
}

static void validate(vctx_t *c, const gw_schema_t *s, const json_t *v);

static void check_array(vctx_t *c, const gw_schema_t *s, const json_t *v)
{
    size_t n = json_array_size(v);
    if (s->has_min_items && n < s->min_items) {
        schema_fail(c, "must have at least %zu item%s", s->min_items, s->min_items == 1 ? "" : "s");
        return;
    }
    if (s->has_max_items && n > s->max_items) {
        schema_fail(c, "must have at most %zu item%s", s->max_items, s->max_items == 1 ? "" : "s");
        return;
    }
    if (s->unique)
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (json_equal(json_array_get(v, i), json_array_get(v, j))) {
                    schema_fail(c, "must not contain the same item twice");
                    return;
                }
    if (s->items == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        snprintf(idx, sizeof(idx), "%zu", i);
        size_t old = push(c, idx);
        validate(c, s->items, json_array_get(v, i));
        pop(c, old);
    }
}

static const gw_schema_t *prop(const gw_schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->nprops; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->props[i];
    return NULL;
}

static void check_object(vctx_t *c, const gw_schema_t *s, const json_t *v)
{
    size_t n = json_object_size(v);
    if (s->has_min_props && n < s->min_props) {
        schema_fail(c, "must have at least %zu field%s", s->min_props, s->min_props == 1 ? "" : "s");
        return;
    }
    if (s->has_max_props && n > s->max_props) {
        schema_fail(c, "must have at most %zu field%s", s->max_props, s->max_props == 1 ? "" : "s");
        return;
    }
    for (size_t i = 0; i < s->nrequired; i++) {
        const gw_schema_t *p = prop(s, s->required[i]);
        if (json_object_get(v, s->required[i]) == NULL && !(p && p->read_only)) {
            size_t old = push(c, s->required[i]);
            schema_fail(c, "is required");
            pop(c, old);
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        const gw_schema_t *p = prop(s, key);
        size_t old = push(c, key);
        if (p && p->read_only)
            schema_fail(c, "is read-only");
        else if (p)
            validate(c, p, val);
        else if (s->additional == ADDL_NONE)
            schema_fail(c, "is not a known field");
        else if (s->additional == ADDL_SCHEMA)
            validate(c, s->additional_schema, val);
        pop(c, old);
    }
}

static void validate(vctx_t *c, const gw_schema_t *s, const json_t *v)
{
    if (json_is_null(v)) {
        if (s->types && !s->nullable)
            schema_fail(c, "must not be null");
        return;
    }
    unsigned t = json_type_bit(v);
    if (s->types && !(s->types & t)) {
        schema_fail(c, "must be %s", type_words(s->types));
        return;
    }
    if (s->enumv) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(s->enumv) && !found; i++)
            found = json_equal(json_array_get(s->enumv, i), (json_t *)v);
        if (!found) {
            char list[200];
            enum_text(list, sizeof(list), s->enumv);
            schema_fail(c, "must be one of %s", list);
            return;
        }
    }
    switch (t) {
    case GW_T_STRING:
        check_string(c, s, v);
        break;
    case GW_T_INTEGER:
    case GW_T_NUMBER:
        check_number(c, s, v);
        break;
    case GW_T_ARRAY:
        check_array(c, s, v);
        break;
    case GW_T_OBJECT:
        check_object(c, s, v);
        break;
    default:
        break;
    }
}

size_t gw_schema_validate(const gw_schema_t *s, const json_t *v, const char *pointer, mp_problem_errors_t *errs)
{
    vctx_t c = {.errs = errs};
    size_t len = pointer ? strlen(pointer) : 0;
    c.len = len < sizeof(c.ptr) ? len : sizeof(c.ptr) - 1;
    memcpy(c.ptr, pointer ? pointer : "", c.len);
    c.ptr[c.len] = '\0';
    validate(&c, s, v);
    return c.added;
}
