/*
 * db_migrate.c: per-service schema migrations (see mp_db_migrate() in
 * mp/db.h).
 *
 * Each file runs in its own transaction that first takes a transaction-scoped
 * advisory lock keyed by the schema, so replicas starting together apply
 * every file exactly once; the version and file name are recorded in
 * <schema>.schema_migrations in the same transaction, so a failing file
 * leaves nothing behind. Names are checked before anything runs. The schema
 * name is spliced into DDL (identifiers cannot be parameters), so it is held
 * to [a-z_][a-z0-9_]* and quoted with PQescapeIdentifier as well.
 */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/db.h"
#include "mp/log.h"
#include "db_int.h"

typedef struct migration {
    const mp_embed_file_t *file;
    int version;
} migration_t;

static bool valid_schema(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
    return s[n] == '\0' && n <= 63; /* NAMEDATALEN - 1 */
}

/* ^[0-9]+_[A-Za-z0-9_-]+\.sql$, returning the leading number. */
static bool parse_name(int *version, const char *name)
{
    size_t nd = strspn(name, "0123456789");
    const char *rest = name + nd;
    size_t nw =
        rest[0] == '_' ? strspn(rest + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") : 0;
    if (nd == 0 || nw == 0 || strcmp(rest + 1 + nw, ".sql") != 0)
        return false;
    errno = 0;
    long v = strtol(name, NULL, 10);
    if (errno || v > INT_MAX)
        return false;
    *version = (int)v;
    return true;
}

static int cmp_migration(const void *a, const void *b)
{
    int x = ((const migration_t *)a)->version, y = ((const migration_t *)b)->version;
    return (x > y) - (x < y);
}

/* Runs SQL with the quoted schema spliced in by `fmt`. Identifiers cannot be parameters; the schema is a checked
 * name quoted by PQescapeIdentifier, and every value still goes in `params`. */
static mp_status_t execf(mp_db_res_t **res, mp_db_conn_t *c, int n, const char *const *params, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static mp_status_t execf(mp_db_res_t **res, mp_db_conn_t *c, int n, const char *const *params, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        sql = NULL;
    va_end(ap);
    if (sql == NULL)
        return mp_err_set(MP_ENOMEM, "migrate: out of memory");
    mp_status_t st = mp_db_exec(res, c, sql, n, params);
    free(sql);
    return st;
}

/* Applies one migration in its own transaction, unless it is already recorded. */
static mp_status_t apply_one(mp_db_conn_t *c, const char *schema, const char *qs, const migration_t *m, bool *applied)
{
    char ver[16];
    mp_db_res_t *r = NULL;
    PGconn *pg = mp_db__pg(c);
    snprintf(ver, sizeof(ver), "%d", m->version);
    mp_status_t st = mp_db_begin(c);
    /* replicas starting together queue here; the lock ends with the transaction */
    if (st == MP_OK)
        st = mp_db_exec(NULL, c, "SELECT pg_advisory_xact_lock(hashtext('moonport.migrate.' || $1))", 1,
                        MP_DB_PARAMS(schema));
    if (st == MP_OK)
        st = execf(NULL, c, 0, NULL, "CREATE SCHEMA IF NOT EXISTS %s", qs);
    if (st == MP_OK)
        st = execf(NULL, c, 0, NULL,
                   "CREATE TABLE IF NOT EXISTS %s.schema_migrations (version integer PRIMARY KEY, "
                   "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                   qs);
    if (st == MP_OK)
        st = execf(&r, c, 1, MP_DB_PARAMS(ver), "SELECT name FROM %s.schema_migrations WHERE version = $1", qs);
    if (st == MP_OK && mp_db_rows(r) > 0) {
        if (strcmp(mp_db_get(r, 0, 0), m->file->name) != 0)
            st = mp_err_set(MP_EINVAL, "migration %d was applied as %s; migrations are append-only", m->version,
                            mp_db_get(r, 0, 0));
        goto cleanup;
    }
    /* files may use unqualified names */
    if (st == MP_OK)
        st = execf(NULL, c, 0, NULL, "SET LOCAL search_path TO %s, public", qs);
    if (st == MP_OK) {
        /* The one plain PQexec in moonport: a migration file is trusted code from the repository, carries no
         * outside values, and may hold several statements, which PQexecParams refuses. */
        PGresult *res = PQexec(pg, m->file->data);
        if ((st = mp_db__check(c, res)) == MP_OK)
            PQclear(res);
        if (st == MP_OK && PQtransactionStatus(pg) != PQTRANS_INTRANS)
            st = mp_err_set(MP_EINVAL, "a migration must not end its transaction (COMMIT/ROLLBACK)");
    }
    if (st == MP_OK)
        st = execf(NULL, c, 2, MP_DB_PARAMS(ver, m->file->name),
                   "INSERT INTO %s.schema_migrations (version, name) VALUES ($1, $2)", qs);
    *applied = st == MP_OK;
cleanup:
    mp_db_res_free(r);
    if (st == MP_OK)
        st = mp_db_commit(c);
    else
        mp_db_rollback(c);
    return st;
}

mp_status_t mp_db_migrate(mp_db_t *db, const char *schema, const mp_embed_file_t *files)
{
    size_t n = 0;
    mp_status_t st = MP_OK;
    mp_db_conn_t *c = NULL;
    char *qs = NULL, *q = NULL;
    if (schema == NULL || !valid_schema(schema))
        return mp_err_set(MP_EINVAL, "migrate: schema name \"%s\" must match [a-z_][a-z0-9_]*",
                          schema ? schema : "(null)");
    size_t total = 0;
    while (files[total].name)
        total++;
    migration_t *ms = mp_xcalloc(total ? total : 1, sizeof(*ms));
    /* check every name before touching the database, so a bad set applies nothing; the embedded table also holds
     * the service's descriptor, so only .sql files are migrations */
    for (size_t i = 0; i < total; i++) {
        size_t len = strlen(files[i].name);
        if (len < 4 || strcmp(files[i].name + len - 4, ".sql") != 0)
            continue;
        ms[n].file = &files[i];
        if (!parse_name(&ms[n].version, files[i].name)) {
            st = mp_err_set(MP_EINVAL, "migrate %s: file %s is not named NNNN_name.sql", schema, files[i].name);
            goto cleanup;
        }
        n++;
    }
    qsort(ms, n, sizeof(*ms), cmp_migration);
    for (size_t i = 1; i < n; i++) {
        if (ms[i].version == ms[i - 1].version) {
            st = mp_err_set(MP_EINVAL, "migrate %s: %s and %s share number %d", schema, ms[i - 1].file->name,
                            ms[i].file->name, ms[i].version);
            goto cleanup;
        }
    }
    if ((st = mp_db_acquire(&c, db, mp_db__wait_ms(db))) != MP_OK)
        goto cleanup;
    q = PQescapeIdentifier(mp_db__pg(c), schema, strlen(schema));
    if (q == NULL) {
        st = mp_err_set(MP_ENOMEM, "migrate: out of memory");
        goto cleanup;
    }
    qs = mp_xstrdup(q);
    PQfreemem(q);
    for (size_t i = 0; i < n; i++) {
        bool applied = false;
        if ((st = apply_one(c, schema, qs, &ms[i], &applied)) != MP_OK) {
            char why[1024];
            snprintf(why, sizeof(why), "%s", mp_err_get());
            mp_err_set(st, "migrate %s: %s failed: %s", schema, ms[i].file->name, why);
            goto cleanup;
        }
        if (applied) {
            char ver[16];
            snprintf(ver, sizeof(ver), "%d", ms[i].version);
            mp_log_kv(MP_LOG_INFO, NULL, "migration applied", "schema", schema, "version", ver, "name",
                      ms[i].file->name, NULL);
        }
    }
cleanup:
    mp_db_release(c);
    free(qs);
    free(ms);
    return st;
}
