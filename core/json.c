/*
 * json.c: strict JSON parsing with moonport's limits (see mp/json.h).
 *
 * jansson's own depth limit is 2048; a tiny request nested 2,000 levels
 * still costs a deep recursion in every later walk, so the depth is checked
 * on the raw bytes first, which is one linear pass.
 */
#include <string.h>
#include "mp/json.h"

size_t mp_json_compact(char *out, const char *in, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        out[n++] = c;
        if (c != '"')
            continue;
        /* a string: copied whole, up to its closing quote (a backslash takes the next byte with it) */
        for (i++; i < len && in[i] != '"'; i++) {
            out[n++] = in[i];
            if (in[i] == '\\' && i + 1 < len)
                out[n++] = in[++i];
        }
        if (i < len)
            out[n++] = '"';
    }
    return n;
}

bool mp_json_depth_ok(const char *text, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

mp_status_t mp_json_parse(json_t **out, const char *text, size_t len)
{
    json_error_t err;
    if (!mp_json_depth_ok(text, len, MP_JSON_MAX_DEPTH))
        return mp_err_set(MP_EINVAL, "JSON nested deeper than %d levels", MP_JSON_MAX_DEPTH);
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL)
        return mp_err_set(MP_EINVAL, "line %d column %d: %s", err.line, err.column, err.text);
    *out = v;
    return MP_OK;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    mp_buf_append(data, buf, size);
    return 0;
}

void mp_json_dump(mp_buf_t *out, const json_t *v)
{
    json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY);
}

const char *mp_json_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}
