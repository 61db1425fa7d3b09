/*
 * params.c: checking one request against its operation (see openapi.h):
 * parameters arrive as text and become the JSON types their schemas name
 * before the schema checks them, so a service receives `"limit": 20`, never
 * `"limit": "20"`.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "openapi.h"

/* Text -> the JSON value the scalar schema type asks for; NULL with `why` when the text is not one. */
static json_t *coerce(const gw_schema_t *s, const char *text, const char **why)
{
    unsigned t = gw_schema_types(s);
    char *end;
    if (t == 0 || (t & GW_T_STRING)) {
        json_t *v = json_string(text);
        if (v == NULL)
            *why = "must be valid UTF-8";
        return v;
    }
    if (t & GW_T_BOOLEAN) {
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
            return json_boolean(text[0] == 't');
        *why = "must be true or false";
        return NULL;
    }
    if (text[0] == '\0' || text[0] == ' ' || text[0] == '+') {
        *why = t & GW_T_NUMBER ? "must be a number" : "must be an integer";
        return NULL;
    }
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (*end == '\0' && errno == 0)
        return json_integer(i);
    if (t & GW_T_NUMBER) {
        double d = strtod(text, &end);
        if (*end == '\0' && isfinite(d) && strncasecmp(text, "0x", 2) != 0 && strncasecmp(text, "-0x", 3) != 0)
            return json_real(d);
        *why = "must be a number";
        return NULL;
    }
    *why = "must be an integer";
    return NULL;
}

static void param_error(mp_problem_errors_t *errs, const gw_param_t *p, const char *what)
{
    char ptr[300];
    mp_json_pointer_join(ptr, sizeof(ptr), "", p->name);
    mp_problem_add(errs, ptr, "%s", what);
}

/* Coerces one text value and checks it; the JSON value (new reference) or NULL after recording the problem. */
static json_t *one_value(const gw_param_t *p, const gw_schema_t *s, const char *text, mp_problem_errors_t *errs)
{
    const char *why = NULL;
    json_t *v = coerce(s, text, &why);
    if (v == NULL) {
        param_error(errs, p, why);
        return NULL;
    }
    return v;
}

/* The query parameter's values: repeated keys, or one comma-separated value when explode is false. */
static json_t *array_value(const gw_param_t *p, json_t *raw, mp_problem_errors_t *errs)
{
    const gw_schema_t *items = gw_schema_items(p->schema);
    json_t *out = json_array(), *texts = json_is_array(raw) ? json_incref(raw) : json_pack("[O]", raw);
    size_t i;
    json_t *t;
    json_array_foreach(texts, i, t)
    {
        const char *s = json_string_value(t);
        if (!p->explode) {
            char *copy = strdup(s), *save = NULL;
            for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
                json_t *v = one_value(p, items, part, errs);
                if (v)
                    json_array_append_new(out, v);
            }
            free(copy);
            continue;
        }
        json_t *v = one_value(p, items, s, errs);
        if (v)
            json_array_append_new(out, v);
    }
    json_decref(texts);
    return out;
}

static bool declared_query(const gw_op_t *op, const char *name)
{
    for (size_t i = 0; i < op->nparams; i++)
        if (op->params[i].in == GW_IN_QUERY && strcmp(op->params[i].name, name) == 0)
            return true;
    return false;
}

static const char *path_value(const gw_match_t *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}

bool gw_openapi_check_params(const gw_op_t *op, json_t *in, const gw_match_t *m, json_t *query, gw_header_fn headers,
                             void *arg, mp_problem_errors_t *errs)
{
    size_t before = mp_problem_count(errs);
    const char *key;
    json_t *val;
    json_object_foreach(query, key, val)
    {
        if (!declared_query(op, key)) {
            gw_param_t unknown = {.name = (char *)key};
            param_error(errs, &unknown, "is not a known query parameter");
        }
    }
    for (size_t i = 0; i < op->nparams; i++) {
        const gw_param_t *p = &op->params[i];
        json_t *v = NULL;
        if (p->in == GW_IN_HEADER) {
            size_t len = 0;
            const char *h = headers ? headers(arg, p->name, &len) : NULL;
            if (h == NULL) {
                if (p->required)
                    param_error(errs, p, "is a required header");
                continue;
            }
            char *text = strndup(h, len), ptr[300];
            v = one_value(p, p->schema, text, errs);
            free(text);
            mp_json_pointer_join(ptr, sizeof(ptr), "", p->name);
            if (v)
                gw_schema_validate(p->schema, v, ptr, errs);
            json_decref(v);
            continue;
        }
        json_t *raw = p->in == GW_IN_QUERY ? json_object_get(query, p->name) : NULL;
        const char *text = p->in == GW_IN_PATH ? path_value(m, p->name) : json_string_value(raw);
        if (raw == NULL && text == NULL) {
            if (p->required)
                param_error(errs, p, "is required");
            continue;
        }
        if (gw_schema_types(p->schema) & GW_T_ARRAY)
            v = array_value(p, raw, errs);
        else if (json_is_array(raw))
            param_error(errs, p, "may be given only once");
        else
            v = one_value(p, p->schema, text, errs);
        if (v == NULL)
            continue;
        char ptr[300];
        mp_json_pointer_join(ptr, sizeof(ptr), "", p->name);
        if (gw_schema_validate(p->schema, v, ptr, errs) == 0 && mp_problem_count(errs) == before) {
            if (json_object_get(in, p->name))
                param_error(errs, p, "is given both as a parameter and in the body");
            else
                json_object_set(in, p->name, v);
        }
        json_decref(v);
    }
    return mp_problem_count(errs) == before;
}

bool gw_openapi_check_body(const gw_op_t *op, const json_t *body, mp_problem_errors_t *errs)
{
    if (op->nmedia == 0 && json_is_object(body)) {
        /* the operation takes no body: every field in one is unknown */
        const char *key;
        json_t *v;
        size_t before = mp_problem_count(errs);
        json_object_foreach((json_t *)body, key, v)
        {
            char ptr[300];
            mp_json_pointer_join(ptr, sizeof(ptr), "", key);
            mp_problem_add(errs, ptr, "is not a known field");
        }
        return mp_problem_count(errs) == before;
    }
    if (op->body == NULL)
        return true;
    return gw_schema_validate(op->body, body, "", errs) == 0;
}

bool gw_openapi_accepts(const gw_op_t *op, const char *type, size_t len)
{
    const char *semi = memchr(type, ';', len);
    if (semi)
        len = (size_t)(semi - type);
    while (len > 0 && type[len - 1] == ' ')
        len--;
    for (size_t i = 0; i < op->nmedia; i++) {
        const char *m = op->media[i];
        size_t ml = strlen(m);
        if (strcmp(m, "*/*") == 0)
            return true;
        if (ml == len && strncasecmp(m, type, len) == 0)
            return true;
        /* a range like "image/(any)" */
        if (ml > 2 && strcmp(m + ml - 2, "/*") == 0 && len > ml - 1 && strncasecmp(m, type, ml - 1) == 0)
            return true;
    }
    return false;
}
