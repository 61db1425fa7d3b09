/*
 * cmd_check.c: `moonport bff check [scripts/lua/<client> ...]`: loads every
 * script (syntax and load errors with file:line) and checks each literal
 * service call, bff.call("svc.v1.op", { ... }) or bff.fetch(...), against
 * the operations the services in this binary declare in their
 * <name>.yaml: an unknown subject gets a "did you mean", and a literal input
 * table missing a required field is named. Runs offline, in CI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/service.h"
#include "mp/yaml.h"
#include "bff_int.h"

typedef struct op {
    char subject[96];
    char required[16][64];
    size_t nrequired;
} op_t;

static op_t *ops;
static size_t nops;

static void load_contracts(void)
{
    for (size_t i = 0; mp_services[i]; i++) {
        const mp_service_def_t *def = mp_services[i];
        char yaml[96];
        snprintf(yaml, sizeof(yaml), "%s.yaml", def->name);
        for (const mp_embed_file_t *f = def->files; f && f->name; f++) {
            mp_yaml_doc_t *doc = NULL;
            if (strcmp(f->name, yaml) != 0 || mp_yaml_parse(&doc, f->name, f->data, f->len) != MP_OK)
                continue;
            const mp_yaml_node_t *list = mp_yaml_get(doc->root, "operations");
            for (size_t k = 0; list && list->type == MP_YAML_MAP && k < list->n; k++) {
                ops = mp_xrealloc(ops, (nops + 1) * sizeof(*ops));
                op_t *o = &ops[nops++];
                memset(o, 0, sizeof(*o));
                snprintf(o->subject, sizeof(o->subject), "%s.v1.%s", def->name, list->keys[k]);
                const mp_yaml_node_t *req = mp_yaml_get(list->kids[k], "required");
                for (size_t r = 0; req && req->type == MP_YAML_SEQ && r < req->n && o->nrequired < 16; r++)
                    if (req->kids[r]->type == MP_YAML_SCALAR)
                        snprintf(o->required[o->nrequired++], 64, "%s", req->kids[r]->value);
            }
            mp_yaml_destroy(doc);
        }
    }
}

static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[128], cur[128];
    if (lb >= 127)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]), del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

static const op_t *find_op(const char *subject, const op_t **nearest)
{
    size_t best = 99;
    *nearest = NULL;
    for (size_t i = 0; i < nops; i++) {
        if (strcmp(ops[i].subject, subject) == 0)
            return &ops[i];
        size_t d = distance(subject, ops[i].subject);
        if (d < best) {
            best = d;
            *nearest = &ops[i];
        }
    }
    if (best > 4)
        *nearest = NULL;
    return NULL;
}

/* Copies the source with comments blanked out (keeping newlines, so line numbers hold). */
static char *strip_comments(const char *s, size_t len)
{
    char *out = mp_xstrndup(s, len);
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        if (quote) {
            if (out[i] == '\\')
                i++;
            else if (out[i] == quote)
                quote = 0;
        } else if (out[i] == '"' || out[i] == '\'') {
            quote = out[i];
        } else if (out[i] == '-' && i + 1 < len && out[i + 1] == '-') {
            bool block = i + 3 < len && out[i + 2] == '[' && out[i + 3] == '[';
            const char *end = block ? strstr(out + i, "]]") : strchr(out + i, '\n');
            size_t stop = end ? (size_t)(end - out) + (block ? 2 : 0) : len;
            for (size_t k = i; k < stop && k < len; k++)
                if (out[k] != '\n')
                    out[k] = ' ';
            i = stop ? stop - 1 : i;
        }
    }
    return out;
}

/* The keys of a literal table starting at `p` ('{'), depth 1 only; false when it is not a plain literal. */
static bool literal_keys(const char *p, char keys[][64], size_t *nkeys, size_t max)
{
    int depth = 0;
    *nkeys = 0;
    for (; *p; p++) {
        if (*p == '{' || *p == '(' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ')' || *p == ']') {
            if (--depth == 0)
                return true;
        } else if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q)
                p += *p == '\\' ? 2 : 1;
            if (!*p)
                return false;
        } else if (depth == 1 && (p[-1] == '{' || p[-1] == ',' || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t') &&
                   ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) {
            const char *s = p;
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')
                p++;
            const char *after = p;
            while (*after == ' ' || *after == '\t')
                after++;
            if (*after == '=' && after[1] != '=' && *nkeys < max)
                snprintf(keys[(*nkeys)++], 64, "%.*s", (int)(p - s), s);
            p--;
        }
    }
    return false;
}

static int check_file(const bff_file_t *f, size_t *ncalls)
{
    int problems = 0;
    char *src = strip_comments(f->text, f->len);
    static const char *const markers[] = {"call(", "fetch(", NULL};
    for (size_t m = 0; markers[m]; m++) {
        for (const char *p = src; (p = strstr(p, markers[m])) != NULL; p += strlen(markers[m])) {
            const char *q = p + strlen(markers[m]);
            while (*q == ' ')
                q++;
            if (*q != '"' && *q != '\'')
                continue; /* not a literal subject: checked at run time instead */
            char quote = *q++, subject[96];
            const char *end = strchr(q, quote);
            if (end == NULL || end - q >= (long)sizeof(subject))
                continue;
            snprintf(subject, sizeof(subject), "%.*s", (int)(end - q), q);
            int line = 1;
            for (const char *c = src; c < p; c++)
                line += *c == '\n';
            (*ncalls)++;
            const op_t *near = NULL, *op = find_op(subject, &near);
            if (op == NULL) {
                if (near)
                    printf("%s:%d: no service offers \"%s\" (did you mean \"%s\"?)\n", f->path, line, subject,
                           near->subject);
                else
                    printf("%s:%d: no service offers \"%s\"\n", f->path, line, subject);
                problems++;
                continue;
            }
            const char *t = end + 1;
            while (*t == ' ' || *t == '\n' || *t == '\t')
                t++;
            char keys[32][64];
            size_t nkeys = 0;
            if (*t != ',')
                continue;
            t++;
            while (*t == ' ' || *t == '\n' || *t == '\t')
                t++;
            if (*t != '{' || !literal_keys(t, keys, &nkeys, 32))
                continue;
            for (size_t r = 0; r < op->nrequired; r++) {
                bool have = false;
                for (size_t k = 0; k < nkeys; k++)
                    have |= strcmp(keys[k], op->required[r]) == 0;
                if (!have) {
                    printf("%s:%d: %s needs the field \"%s\"\n", f->path, line, subject, op->required[r]);
                    problems++;
                }
            }
        }
    }
    free(src);
    return problems;
}

int mp_bff_cmd_check(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "scripts/lua";
    char scripts_dir[1024];
    snprintf(scripts_dir, sizeof(scripts_dir), "%s", dir);
    /* a client directory (scripts/lua/web) checks the whole tree it belongs to */
    size_t n = strlen(scripts_dir);
    while (n > 1 && scripts_dir[n - 1] == '/')
        scripts_dir[--n] = '\0';
    bff_snapshot_t *snap = NULL;
    bff_vm_t *vm = NULL;
    bff_limits_t limits = {10000000, 256u << 20, 64u << 20};
    if (bff_snapshot_load(&snap, scripts_dir) != MP_OK || bff_snapshot_retain(snap) == NULL ||
        bff_vm_create(&vm, snap, &limits, false) != MP_OK) {
        char *slash = strrchr(scripts_dir, '/');
        bff_snapshot_release(snap);
        snap = NULL;
        if (slash == NULL || (*slash = '\0', bff_snapshot_load(&snap, scripts_dir) != MP_OK) ||
            bff_vm_create(&vm, snap, &limits, false) != MP_OK) {
            printf("%s\n", mp_err_get());
            bff_snapshot_release(snap);
            return 1;
        }
    } else {
        bff_snapshot_release(snap);
    }
    load_contracts();
    int problems = 0;
    size_t calls = 0, files = 0;
    for (size_t i = 0; i < vm->snap->nfiles; i++) {
        const bff_file_t *f = &vm->snap->files[i];
        size_t len = strlen(f->path);
        if (strncmp(f->path, "prelude/", 8) == 0 || (len > 9 && strcmp(f->path + len - 9, "_test.lua") == 0))
            continue;
        files++;
        problems += check_file(f, &calls);
    }
    printf("bff check: %zu scripts, %zu service calls, %d problem%s\n", files, calls, problems,
           problems == 1 ? "" : "s");
    bff_vm_destroy(vm);
    bff_snapshot_release(snap);
    free(ops);
    ops = NULL;
    nops = 0;
    return problems ? 1 : 0;
}
