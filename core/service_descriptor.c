/*
 * service_descriptor.c: a service's <name>.yaml, compiled into the binary,
 * checked against its C endpoints at start-up so the declared contract and
 * the code cannot drift: every operation described is served, and every
 * endpoint served is described.
 *
 * The descriptor:
 *     version: 1.0.0
 *     description: Accounts, passwords, tokens and sessions
 *     operations:
 *       login:
 *         summary: Exchange credentials for tokens
 *         required: [email, password]      # what callers must send
 *         optional: [device]
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/reqctx.h"
#include "service_int.h"

static const mp_embed_file_t *find_yaml(const mp_service_def_t *def)
{
    char want[96];
    snprintf(want, sizeof(want), "%s.yaml", def->name);
    for (const mp_embed_file_t *f = def->files; f && f->name; f++)
        if (strcmp(f->name, want) == 0)
            return f;
    return NULL;
}

static bool semver_ok(const char *v)
{
    regex_t re;
    int ok = regcomp(&re, "^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$", REG_EXTENDED | REG_NOSUB);
    if (ok != 0)
        return false;
    ok = regexec(&re, v, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static const mp_endpoint_t *endpoint_named(const mp_service_def_t *def, const char *op)
{
    for (const mp_endpoint_t *ep = def->endpoints; ep && ep->op; ep++)
        if (strcmp(ep->op, op) == 0)
            return ep;
    return NULL;
}

mp_status_t mp_svc__load_descriptor(mp_svc_t *svc)
{
    const mp_service_def_t *def = svc->def;
    const mp_embed_file_t *f = find_yaml(def);
    char name[128];
    mp_status_t st;

    if (f == NULL)
        return mp_err_set(MP_EINVAL, "service %s: services/%s/%s.yaml is missing", def->name, def->name, def->name);
    snprintf(name, sizeof(name), "services/%s/%s", def->name, f->name);
    if ((st = mp_yaml_parse(&svc->descriptor, name, f->data, f->len)) != MP_OK)
        return st;
    const mp_yaml_node_t *root = svc->descriptor->root;
    const mp_yaml_node_t *ver = mp_yaml_get(root, "version"), *desc = mp_yaml_get(root, "description");
    const mp_yaml_node_t *ops = mp_yaml_get(root, "operations");
    if (ver == NULL || ver->type != MP_YAML_SCALAR || !semver_ok(ver->value))
        return mp_err_set(MP_EINVAL, "%s: `version` must be a semantic version like 1.0.0", name);
    svc->version = ver->value;
    svc->description = desc && desc->type == MP_YAML_SCALAR ? desc->value : "";
    if (ops != NULL && ops->type != MP_YAML_MAP)
        return mp_err_set(MP_EINVAL, "%s:%d: `operations` must be a map of operation names", name, ops->line);

    for (size_t i = 0; ops && i < ops->n; i++)
        if (endpoint_named(def, ops->keys[i]) == NULL)
            return mp_err_set(MP_EINVAL, "%s:%d: operation \"%s\" is described but services/%s has no handler for it",
                              name, ops->kids[i]->line, ops->keys[i], def->name);
    size_t n = 0;
    for (const mp_endpoint_t *ep = def->endpoints; ep && ep->op; ep++, n++)
        if (mp_yaml_get(ops, ep->op) == NULL)
            return mp_err_set(MP_EINVAL, "%s: the handler for \"%s\" has no entry under `operations`", name, ep->op);

    svc->stats = mp_xcalloc(n ? n : 1, sizeof(*svc->stats));
    svc->nstats = n;
    for (size_t i = 0; i < n; i++) {
        mp_ep_stats_t *s = &svc->stats[i];
        s->svc = svc;
        s->ep = &def->endpoints[i];
        snprintf(s->subject, sizeof(s->subject), "%s.v1.%s", def->name, s->ep->op);
        pthread_mutex_init(&s->mu, NULL);
    }
    /* instance id for discovery: unique per process start */
    mp_rand_hex(svc->id, 8);
    for (char *p = svc->id; *p; p++)
        *p = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(svc->started, sizeof(svc->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return MP_OK;
}
