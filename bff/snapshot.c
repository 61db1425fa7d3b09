/*
 * snapshot.c: an immutable, reference-counted copy of scripts/lua: every
 * .lua file and each client's bff.yaml, read in one pass.
 *
 * Loop threads build their Lua states from a snapshot, never from the
 * disk, so a reload never sees a file half-written by an editor, and every
 * thread runs exactly the same code.
 *
 * Layout: scripts/lua/<client>/... is a client (a BFF mounted at
 * /bff/<client>/), except scripts/lua/lib/ (modules every client may
 * require) and scripts/lua/prelude/ (the engine's own Lua, also compiled in).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mp/alloc.h"
#include "mp/yaml.h"
#include "bff_int.h"

#define MAX_FILES 2000
#define MAX_FILE_SIZE (1024 * 1024)

static bool is_client_dir(const char *name)
{
    return name[0] != '.' && strcmp(name, "lib") != 0 && strcmp(name, "prelude") != 0;
}

static mp_status_t read_whole(char **text, size_t *len, const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    mp_buf_t b = MP_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0 && b.len <= MAX_FILE_SIZE)
        mp_buf_append(&b, chunk, n);
    fclose(fp);
    if (b.len > MAX_FILE_SIZE) {
        mp_buf_dispose(&b);
        return mp_err_set(MP_EINVAL, "%s: larger than 1 MiB", path);
    }
    *len = b.len;
    *text = mp_buf_steal(&b);
    return MP_OK;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const bff_file_t *)a)->path, ((const bff_file_t *)b)->path);
}

/* Adds every .lua file under dir/rel (recursively) to the snapshot. */
static mp_status_t scan(bff_snapshot_t *s, const char *dir, const char *rel, int depth)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    DIR *d = opendir(path);
    mp_status_t st = MP_OK;
    if (d == NULL)
        return depth == 0 ? mp_err_set(MP_EIO, "%s: %s", path, strerror(errno)) : MP_OK;
    for (struct dirent *e; st == MP_OK && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char child[1024], full[1200];
        snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", dir, child);
        struct stat sb;
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            if (depth < 6 && strcmp(e->d_name, "fixtures") != 0)
                st = scan(s, dir, child, depth + 1);
            continue;
        }
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".lua") != 0)
            continue;
        if (s->nfiles == MAX_FILES) {
            st = mp_err_set(MP_EINVAL, "%s: more than %d scripts", dir, MAX_FILES);
            break;
        }
        bff_file_t *f = &s->files[s->nfiles];
        if ((st = read_whole(&f->text, &f->len, full)) == MP_OK) {
            f->path = mp_xstrdup(child);
            s->nfiles++;
        }
    }
    closedir(d);
    return st;
}

static mp_status_t client_config(bff_client_cfg_t *c, const char *dir)
{
    char path[1024];
    mp_yaml_doc_t *doc = NULL;
    c->auth_required = true; /* deny by default: a BFF is public only when its settings say so */
    c->deadline_ms = 1000;
    c->server_timing = -1;
    snprintf(path, sizeof(path), "%s/%s/bff.yaml", dir, c->name);
    if (access(path, R_OK) != 0)
        return MP_OK;
    mp_status_t st = mp_yaml_load_file(&doc, path);
    if (st != MP_OK)
        return st;
    const mp_yaml_node_t *root = doc->root;
    for (size_t i = 0; root && root->type == MP_YAML_MAP && i < root->n && st == MP_OK; i++) {
        const char *k = root->keys[i];
        const mp_yaml_node_t *v = root->kids[i];
        const char *val = v->type == MP_YAML_SCALAR ? v->value : NULL;
        if (strcmp(k, "auth") == 0 && val && (strcmp(val, "required") == 0 || strcmp(val, "none") == 0)) {
            c->auth_required = strcmp(val, "required") == 0;
        } else if (strcmp(k, "deadline_ms") == 0 && val && atoll(val) > 0 && atoll(val) <= 60000) {
            c->deadline_ms = atoll(val);
        } else if (strcmp(k, "server_timing") == 0 && val && (strcmp(val, "true") == 0 || strcmp(val, "false") == 0)) {
            c->server_timing = val[0] == 't';
        } else if (strcmp(k, "cors_origins") == 0 && v->type == MP_YAML_SEQ) {
            c->cors_origins = mp_xcalloc(v->n + 1, sizeof(char *));
            for (size_t j = 0; j < v->n; j++)
                if (v->kids[j]->type == MP_YAML_SCALAR)
                    c->cors_origins[c->ncors++] = mp_xstrdup(v->kids[j]->value);
        } else {
            st = mp_err_set(MP_EINVAL,
                            "%s:%d: unknown or invalid setting \"%s\" (auth: required|none, deadline_ms: "
                            "1-60000, server_timing: true|false, cors_origins: [list])",
                            path, v->line, k);
        }
    }
    mp_yaml_destroy(doc);
    return st;
}

mp_status_t bff_snapshot_load(bff_snapshot_t **out, const char *dir)
{
    bff_snapshot_t *s = mp_xcalloc(1, sizeof(*s));
    mp_status_t st = MP_OK;
    atomic_init(&s->refs, 1);
    s->dir = mp_xstrdup(dir);
    s->files = mp_xcalloc(MAX_FILES, sizeof(*s->files));
    if ((st = scan(s, dir, "", 0)) != MP_OK)
        goto fail;
    qsort(s->files, s->nfiles, sizeof(*s->files), by_path);

    DIR *d = opendir(dir);
    if (d == NULL) {
        st = mp_err_set(MP_EIO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    s->clients = mp_xcalloc(64, sizeof(*s->clients));
    for (struct dirent *e; st == MP_OK && (e = readdir(d)) != NULL;) {
        char full[1024];
        struct stat sb;
        snprintf(full, sizeof(full), "%s/%s", dir, e->d_name);
        if (!is_client_dir(e->d_name) || stat(full, &sb) != 0 || !S_ISDIR(sb.st_mode) || s->nclients == 64)
            continue;
        bff_client_cfg_t *c = &s->clients[s->nclients++];
        c->name = mp_xstrdup(e->d_name);
        st = client_config(c, dir);
    }
    closedir(d);
    if (st != MP_OK)
        goto fail;
    *out = s;
    return MP_OK;
fail:
    bff_snapshot_release(s);
    return st;
}

bff_snapshot_t *bff_snapshot_retain(bff_snapshot_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void bff_snapshot_release(bff_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].text);
    }
    for (size_t i = 0; i < s->nclients; i++) {
        for (size_t j = 0; j < s->clients[i].ncors; j++)
            free(s->clients[i].cors_origins[j]);
        free(s->clients[i].cors_origins);
        free(s->clients[i].name);
    }
    free(s->clients);
    free(s->files);
    free(s->dir);
    free(s);
}

const bff_file_t *bff_snapshot_file(const bff_snapshot_t *s, const char *path)
{
    size_t lo = 0, hi = s->nfiles;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->files[mid].path, path);
        if (c == 0)
            return &s->files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
