/*
 * openapi.c: loading every YAML file in api-specs/ and binding operations to routes (see
 * openapi.h). Every problem in every file is reported at once, each with its
 * file and line, so one start-up shows everything to fix.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "openapi.h"

static const char *const spec_methods[] = {"get", "put", "post", "delete", "patch", "head", "options", "trace", NULL};

typedef struct loader {
    gw_openapi_t *api;
    mp_buf_t errs;
    const char *file;
    const mp_yaml_doc_t *doc;
    struct gw_schema_ctx *ctx;
    size_t cap;
} loader_t;

#define spec_errf(l, at, ...) gw_errorf(&(l)->errs, (l)->file, at, __VA_ARGS__)

static const char *spec_scalar(const mp_yaml_node_t *map, const char *key)
{
    const mp_yaml_node_t *n = mp_yaml_get(map, key);
    return n && n->type == MP_YAML_SCALAR ? n->value : NULL;
}

/* Follows a local $ref to `#/components/<kind>/<Name>`; returns the node itself when it is no reference. */
static const mp_yaml_node_t *deref(loader_t *l, const mp_yaml_node_t *n, const char *kind)
{
    const mp_yaml_node_t *ref = mp_yaml_get(n, "$ref");
    char prefix[64];
    if (ref == NULL)
        return n;
    snprintf(prefix, sizeof(prefix), "#/components/%s/", kind);
    if (ref->type != MP_YAML_SCALAR || strncmp(ref->value, prefix, strlen(prefix)) != 0) {
        spec_errf(l, ref, "$ref must point to %s<Name> in the same file", prefix);
        return NULL;
    }
    const mp_yaml_node_t *comps = mp_yaml_get(mp_yaml_get(l->doc->root, "components"), kind);
    const mp_yaml_node_t *target = mp_yaml_get(comps, ref->value + strlen(prefix));
    if (target == NULL || mp_yaml_get(target, "$ref")) {
        spec_errf(l, ref, "$ref %s: %s", ref->value,
                  target ? "a reference to a reference is not supported" : "not found");
        return NULL;
    }
    return target;
}

/* ---- parameters ------------------------------------------------------------------------------- */

static bool load_param(loader_t *l, gw_param_t *p, const mp_yaml_node_t *node)
{
    const mp_yaml_node_t *n = deref(l, node, "parameters");
    if (n == NULL)
        return false;
    const char *name = spec_scalar(n, "name"), *in = spec_scalar(n, "in"), *style = spec_scalar(n, "style");
    const char *req = spec_scalar(n, "required"), *explode = spec_scalar(n, "explode");
    const mp_yaml_node_t *schema = mp_yaml_get(n, "schema");
    if (name == NULL || in == NULL) {
        spec_errf(l, n, "a parameter needs name and in");
        return false;
    }
    if (strcmp(in, "path") == 0) {
        p->in = GW_IN_PATH;
    } else if (strcmp(in, "query") == 0) {
        p->in = GW_IN_QUERY;
    } else if (strcmp(in, "header") == 0) {
        p->in = GW_IN_HEADER;
    } else {
        spec_errf(l, n, "parameter %s: `in: %s` is not supported (path, query or header)", name, in);
        return false;
    }
    if (mp_yaml_get(n, "content")) {
        spec_errf(l, n, "parameter %s: describe it with `schema`, not `content`", name);
        return false;
    }
    if (style && strcmp(style, p->in == GW_IN_QUERY ? "form" : "simple") != 0) {
        spec_errf(l, n, "parameter %s: style %s is not supported", name, style);
        return false;
    }
    p->name = mp_xstrdup(name);
    p->required = req && strcmp(req, "true") == 0;
    p->explode = explode == NULL || strcmp(explode, "true") == 0;
    if (p->in == GW_IN_PATH && !p->required) {
        spec_errf(l, n, "path parameter %s must have required: true", name);
        return false;
    }
    if (schema == NULL) {
        spec_errf(l, n, "parameter %s needs a schema", name);
        return false;
    }
    if ((p->schema = gw_schema_compile(l->ctx, schema, &l->errs)) == NULL)
        return false;
    unsigned t = gw_schema_types(p->schema);
    const gw_schema_t *items = gw_schema_items(p->schema);
    if ((t & GW_T_OBJECT) ||
        ((t & GW_T_ARRAY) && (p->in != GW_IN_QUERY || (gw_schema_types(items) & ~GW_T_NUMBER & ~GW_T_INTEGER &
                                                       ~GW_T_STRING & ~GW_T_BOOLEAN)))) {
        spec_errf(l, schema, "parameter %s: only scalars (and, in the query, arrays of scalars) are supported", name);
        return false;
    }
    return true;
}

/* Operation parameters override path-item ones with the same name and location. */
static bool load_params(loader_t *l, gw_op_t *op, const mp_yaml_node_t *common, const mp_yaml_node_t *own)
{
    const mp_yaml_node_t *lists[2] = {own, common};
    bool ok = true;
    size_t cap = (common ? common->n : 0) + (own ? own->n : 0);
    op->params = mp_xcalloc(cap ? cap : 1, sizeof(*op->params));
    for (int k = 0; k < 2; k++) {
        const mp_yaml_node_t *list = lists[k];
        if (list == NULL)
            continue;
        if (list->type != MP_YAML_SEQ) {
            spec_errf(l, list, "parameters must be a list");
            return false;
        }
        for (size_t i = 0; i < list->n; i++) {
            gw_param_t p = {0};
            if (!load_param(l, &p, list->kids[i])) {
                free(p.name);
                ok = false;
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < op->nparams; j++)
                dup |= op->params[j].in == p.in && strcmp(op->params[j].name, p.name) == 0;
            if (dup && k == 0)
                spec_errf(l, list->kids[i], "parameter %s is declared twice", p.name);
            if (dup) {
                free(p.name);
                ok &= k == 1;
                continue;
            }
            op->params[op->nparams++] = p;
        }
    }
    return ok;
}

/* Every {name} in the path template is a required path parameter, and every path parameter is in the template. */
static bool check_path_params(loader_t *l, gw_op_t *op, const mp_yaml_node_t *at)
{
    bool ok = true;
    for (const char *p = strchr(op->path, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        bool found = false;
        for (size_t i = 0; end && i < op->nparams; i++)
            found |= op->params[i].in == GW_IN_PATH && strlen(op->params[i].name) == (size_t)(end - p - 1) &&
                     strncmp(op->params[i].name, p + 1, (size_t)(end - p - 1)) == 0;
        if (!found) {
            spec_errf(l, at, "%s %s: path parameter %.*s is not declared under parameters", op->method, op->path,
                      end ? (int)(end - p - 1) : 0, p + 1);
            ok = false;
        }
    }
    for (size_t i = 0; i < op->nparams; i++) {
        char want[300];
        snprintf(want, sizeof(want), "{%s}", op->params[i].name);
        if (op->params[i].in == GW_IN_PATH && strstr(op->path, want) == NULL) {
            spec_errf(l, at, "%s %s: path parameter %s is not in the path", op->method, op->path, op->params[i].name);
            ok = false;
        }
    }
    return ok;
}

/* ---- request bodies ------------------------------------------------------------------------------ */

static bool is_json_media(const char *t)
{
    return strcmp(t, "application/json") == 0;
}

static bool load_body(loader_t *l, gw_op_t *op, const mp_yaml_node_t *node)
{
    const mp_yaml_node_t *rb = deref(l, node, "requestBodies");
    if (rb == NULL)
        return false;
    const mp_yaml_node_t *content = mp_yaml_get(rb, "content");
    const char *req = spec_scalar(rb, "required");
    op->body_required = req && strcmp(req, "true") == 0;
    if (content == NULL || content->type != MP_YAML_MAP || content->n == 0) {
        spec_errf(l, rb, "requestBody needs content with at least one media type");
        return false;
    }
    op->media = mp_xcalloc(content->n, sizeof(*op->media));
    for (size_t i = 0; i < content->n; i++) {
        op->media[op->nmedia++] = mp_xstrdup(content->keys[i]);
        if (!is_json_media(content->keys[i]))
            continue;
        op->has_json_body = true;
        const mp_yaml_node_t *schema = mp_yaml_get(content->kids[i], "schema");
        if (schema == NULL) {
            spec_errf(l, content->kids[i], "%s %s: the application/json body needs a schema", op->method, op->path);
            return false;
        }
        if ((op->body = gw_schema_compile(l->ctx, schema, &l->errs)) == NULL)
            return false;
    }
    return true;
}

/* ---- operations ---------------------------------------------------------------------------------- */

static void load_op(loader_t *l, const char *path, const char *method, const mp_yaml_node_t *node,
                    const mp_yaml_node_t *common)
{
    char upper[16];
    size_t i;
    for (i = 0; method[i] && i + 1 < sizeof(upper); i++)
        upper[i] = (char)(method[i] - 'a' + 'A');
    upper[i] = '\0';
    if (strcmp(method, "head") == 0 || strcmp(method, "options") == 0 || strcmp(method, "trace") == 0) {
        spec_errf(l, node, "%s %s: the gateway has no routes for %s", upper, path, upper);
        return;
    }
    const char *id = spec_scalar(node, "operationId");
    if (node->type != MP_YAML_MAP || id == NULL) {
        spec_errf(l, node, "%s %s needs an operationId (the NATS subject its route calls)", upper, path);
        return;
    }
    for (size_t k = 0; k < l->api->nops; k++) {
        gw_op_t *o = &l->api->ops[k];
        if (strcmp(o->id, id) == 0)
            spec_errf(l, node, "operationId %s is also used at %s:%d", id, o->file, o->line);
        if (strcmp(o->method, upper) == 0 && strcmp(o->path, path) == 0)
            spec_errf(l, node, "%s %s is also described at %s:%d", upper, path, o->file, o->line);
    }
    if (l->api->nops == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->api->ops = mp_xrealloc(l->api->ops, l->cap * sizeof(*l->api->ops));
    }
    gw_op_t *op = &l->api->ops[l->api->nops++];
    memset(op, 0, sizeof(*op));
    op->id = mp_xstrdup(id);
    const char *xs = spec_scalar(node, "x-subject");
    op->subject = mp_xstrdup(xs ? xs : id);
    op->method = mp_xstrdup(upper);
    op->path = mp_xstrdup(path);
    op->file = l->file;
    op->line = node->line;
    if (load_params(l, op, common, mp_yaml_get(node, "parameters")))
        check_path_params(l, op, node);
    const mp_yaml_node_t *body = mp_yaml_get(node, "requestBody");
    if (body)
        load_body(l, op, body);
}

static void load_doc(loader_t *l)
{
    const mp_yaml_node_t *root = l->doc->root;
    const char *version = spec_scalar(root, "openapi");
    if (root == NULL || root->type != MP_YAML_MAP || version == NULL || strncmp(version, "3.0.", 4) != 0) {
        spec_errf(l, root, "not an OpenAPI 3.0 document (`openapi: 3.0.x` is required; 3.1 is not supported)");
        return;
    }
    const mp_yaml_node_t *paths = mp_yaml_get(root, "paths");
    if (paths == NULL || paths->type != MP_YAML_MAP) {
        spec_errf(l, root, "the document needs a `paths` map");
        return;
    }
    for (size_t i = 0; i < paths->n; i++) {
        const mp_yaml_node_t *item = paths->kids[i];
        if (paths->keys[i][0] != '/' || item->type != MP_YAML_MAP) {
            spec_errf(l, item, "path \"%s\" must start with / and hold a map of operations", paths->keys[i]);
            continue;
        }
        const mp_yaml_node_t *common = mp_yaml_get(item, "parameters");
        for (size_t m = 0; spec_methods[m]; m++) {
            const mp_yaml_node_t *op = mp_yaml_get(item, spec_methods[m]);
            if (op)
                load_op(l, paths->keys[i], spec_methods[m], op, common);
        }
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mp_status_t list_specs(char ***names, size_t *n, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return mp_err_set(MP_EIO, "cannot read the API specs directory %s: %m", dir);
    size_t cap = 0;
    *names = NULL;
    *n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 ||
            (strcmp(e->d_name + len - 5, ".yaml") != 0 && strcmp(e->d_name + len - 4, ".yml") != 0))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = mp_xrealloc(*names, cap * sizeof(**names));
        }
        (*names)[(*n)++] = mp_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(*names, *n, sizeof(**names), cmp_names);
    return MP_OK;
}

mp_status_t gw_openapi_load(gw_openapi_t *out, const char *dir)
{
    loader_t l = {.api = out};
    memset(out, 0, sizeof(*out));
    mp_status_t st = list_specs(&out->files, &out->nfiles, dir);
    if (st != MP_OK)
        return st;
    out->ctxs = mp_xcalloc(out->nfiles ? out->nfiles : 1, sizeof(*out->ctxs));
    for (size_t i = 0; i < out->nfiles; i++) {
        mp_yaml_doc_t *doc = NULL;
        if ((st = mp_yaml_load_file(&doc, out->files[i])) != MP_OK) {
            mp_buf_printf(&l.errs, "%s%s", l.errs.len ? "\n" : "", mp_err_get());
            continue;
        }
        l.file = out->files[i];
        l.doc = doc;
        l.ctx = out->ctxs[out->nctxs++] = gw_schema_ctx_create(doc);
        load_doc(&l);
        mp_yaml_destroy(doc);
    }
    st = l.errs.len ? mp_err_set(MP_EINVAL, "%s", l.errs.base) : MP_OK;
    mp_buf_dispose(&l.errs);
    return st;
}

/* ---- binding ------------------------------------------------------------------------------------- */

mp_status_t gw_openapi_bind(gw_openapi_t *api, gw_routes_t *routes, const char *routes_file)
{
    mp_buf_t e = MP_BUF_INIT;
    for (size_t i = 0; i < api->nops; i++)
        api->ops[i].bound = false;
    for (size_t r = 0; r < routes->n; r++) {
        gw_route_t *rt = &routes->items[r];
        gw_op_t *op = NULL;
        for (size_t i = 0; i < api->nops && op == NULL; i++)
            if (strcmp(api->ops[i].method, rt->method) == 0 && strcmp(api->ops[i].path, rt->path) == 0)
                op = &api->ops[i];
        rt->op = op;
        const char *sep = e.len ? "\n" : "";
        if (op == NULL) {
            mp_buf_printf(&e, "%s%s:%d: route %s %s (%s) has no operation with this method and path in the API specs",
                          sep, routes_file, rt->line, rt->method, rt->path, rt->subject);
            continue;
        }
        op->bound = true;
        if (strcmp(op->subject, rt->subject) != 0)
            mp_buf_printf(&e, "%s%s:%d: route %s %s calls %s but its operation (%s:%d) is for %s", sep, routes_file,
                          rt->line, rt->method, rt->path, rt->subject, op->file, op->line, op->subject);
        else if (rt->body == GW_BODY_RAW && op->has_json_body)
            mp_buf_printf(&e, "%s%s:%d: route %s %s takes a raw body but its operation (%s:%d) takes JSON", sep,
                          routes_file, rt->line, rt->method, rt->path, op->file, op->line);
        else if (rt->body == GW_BODY_JSON && op->nmedia > 0 && !op->has_json_body)
            mp_buf_printf(&e, "%s%s:%d: route %s %s takes JSON but its operation (%s:%d) takes no application/json",
                          sep, routes_file, rt->line, rt->method, rt->path, op->file, op->line);
    }
    for (size_t i = 0; i < api->nops; i++)
        if (!api->ops[i].bound)
            mp_buf_printf(&e, "%s%s:%d: operation %s (%s %s) has no route in %s", e.len ? "\n" : "", api->ops[i].file,
                          api->ops[i].line, api->ops[i].id, api->ops[i].method, api->ops[i].path, routes_file);
    mp_status_t st = e.len ? mp_err_set(MP_EINVAL, "%s", e.base) : MP_OK;
    mp_buf_dispose(&e);
    return st;
}

void gw_openapi_dispose(gw_openapi_t *api)
{
    for (size_t i = 0; i < api->nops; i++) {
        gw_op_t *op = &api->ops[i];
        for (size_t p = 0; p < op->nparams; p++)
            free(op->params[p].name);
        for (size_t m = 0; m < op->nmedia; m++)
            free(op->media[m]);
        free(op->params);
        free(op->media);
        free(op->id);
        free(op->subject);
        free(op->method);
        free(op->path);
    }
    for (size_t i = 0; i < api->nctxs; i++)
        gw_schema_ctx_destroy(api->ctxs[i]);
    for (size_t i = 0; i < api->nfiles; i++)
        free(api->files[i]);
    free(api->ops);
    free(api->ctxs);
    free(api->files);
    memset(api, 0, sizeof(*api));
}
