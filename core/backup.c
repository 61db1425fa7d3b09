/*
 * backup.c: `moonport backup` and `moonport restore` step by step (see
 * mp/backup.h); the parts are in backup_manifest.c, backup_pg.c and
 * backup_nats.c.
 *
 * Schemas are grouped by the database their DSN names. Before the stream is
 * taken, each database's clock is read ("events_since"): every outbox row
 * marked published at or after it may be missing from the snapshot, and a
 * restore marks those rows for publishing again. After the stream, the
 * schemas of a database are dumped from one exported snapshot, so they
 * agree with each other to the transaction; a restore puts them back in one
 * transaction. Schemas in different databases agree only through the saga
 * (docs/operations.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "backup_int.h"
#include "mp/alloc.h"
#include "mp/backup.h"
#include "mp/db.h"
#include "mp/events.h"
#include "mp/json.h"
#include "mp/outbox.h"

#define STREAM_FILE MP_EVENTS_STREAM ".snapshot"
#define STREAM_INFO_FILE MP_EVENTS_STREAM ".json"

/* One database the schemas live in. */
typedef struct backup_db {
    const char *dsn; /* borrowed from the options */
    mp_db_t *db;
    char name[64];  /* current_database() */
    char since[40]; /* its clock when opened, minus a second for a clock that steps back */
} backup_db_t;

struct mp_backup_plan {
    mp_backup_opts_t o;
    json_t *manifest;
    backup_db_t *dbs;
    size_t ndbs;
    bool stream_exists;
};

static const char *dsn_of(const mp_backup_opts_t *o, const char *schema)
{
    for (size_t i = 0; i < o->nschemas; i++)
        if (strcmp(o->schemas[i].name, schema) == 0)
            return o->schemas[i].dsn;
    return NULL;
}

static mp_status_t open_db(backup_db_t *d, const mp_backup_opts_t *o)
{
    mp_db_opts_t dbo = {.dsn = d->dsn, .password = o->pg_password, .pool_size = 1, .app_name = "moonport-backup"};
    mp_db_res_t *r = NULL;
    mp_status_t st = mp_db_create(&d->db, &dbo);
    if (st == MP_OK)
        st = mp_db_exec_once(&r, d->db,
                             "SELECT current_database(), to_char(clock_timestamp() AT TIME ZONE 'UTC' - interval '1 "
                             "second', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                             0, NULL);
    if (st == MP_OK) {
        snprintf(d->name, sizeof(d->name), "%s", mp_db_get(r, 0, 0));
        snprintf(d->since, sizeof(d->since), "%s", mp_db_get(r, 0, 1));
    }
    mp_db_res_free(r);
    return st;
}

static void close_dbs(backup_db_t *dbs, size_t n)
{
    for (size_t i = 0; dbs && i < n; i++)
        mp_db_destroy(dbs[i].db);
    free(dbs);
}

/* The databases of the schemas `names`, each opened once however many schemas share its DSN. */
static mp_status_t open_dbs(backup_db_t **out, size_t *n, const mp_backup_opts_t *o, const char *const *names,
                            size_t nnames)
{
    backup_db_t *dbs = mp_xcalloc(nnames ? nnames : 1, sizeof(*dbs));
    size_t k = 0;
    mp_status_t st = MP_OK;
    for (size_t i = 0; i < nnames && st == MP_OK; i++) {
        const char *dsn = dsn_of(o, names[i]);
        size_t j = 0;
        while (j < k && strcmp(dbs[j].dsn, dsn) != 0)
            j++;
        if (j == k) {
            dbs[k].dsn = dsn;
            st = open_db(&dbs[k++], o);
        }
    }
    if (st != MP_OK) {
        close_dbs(dbs, k);
        return st;
    }
    *out = dbs;
    *n = k;
    return MP_OK;
}

static void now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double kib(const json_t *files, const char *name)
{
    return (double)json_integer_value(json_object_get(json_object_get(files, name), "bytes")) / 1024.0;
}

/* ---- backup --------------------------------------------------------------------------------- */

/* Creates the folder, private to us (its parent must exist); refuses one that holds a backup already. */
static mp_status_t prepare_dir(const char *dir)
{
    char manifest[4096];
    struct stat sb;
    if (*dir == '\0' || strlen(dir) > 3000)
        return mp_err_set(MP_EINVAL, "--out: the folder name is empty or too long");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return mp_err_set(MP_EIO, "cannot create %s: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mp_err_set(MP_EINVAL, "%s is not a folder", dir);
    snprintf(manifest, sizeof(manifest), "%s/%s", dir, MP_BACKUP_MANIFEST);
    if (access(manifest, F_OK) == 0)
        return mp_err_set(MP_EINVAL, "%s already holds a backup; give another folder", dir);
    return MP_OK;
}

/* The EVENTS stream's snapshot and definition, and the manifest's "stream" entry. */
static mp_status_t take_stream(json_t **entry, json_t *files, const mp_backup_opts_t *o)
{
    char path[4096];
    json_t *info = NULL;
    snprintf(path, sizeof(path), "%s/%s", o->dir, STREAM_FILE);
    mp_status_t st = mp_backup__js_snapshot(&info, o->bus, MP_EVENTS_STREAM, path);
    if (st == MP_ENOTFOUND)
        return mp_err_set(st, "there is no %s stream to back up (a platform that ever started has one): %s",
                          MP_EVENTS_STREAM, mp_err_get());
    if (st == MP_OK)
        st = mp_backup__write_json(o->dir, STREAM_INFO_FILE, info);
    if (st == MP_OK)
        st = mp_backup__add_file(files, o->dir, STREAM_FILE);
    if (st == MP_OK)
        st = mp_backup__add_file(files, o->dir, STREAM_INFO_FILE);
    if (st == MP_OK) {
        json_t *state = json_object_get(info, "state");
        *entry = json_pack("{s:s, s:s, s:s, s:O*, s:O*, s:O*, s:O*}", "name", MP_EVENTS_STREAM, "file", STREAM_FILE,
                           "info_file", STREAM_INFO_FILE, "messages", json_object_get(state, "messages"), "first_seq",
                           json_object_get(state, "first_seq"), "last_seq", json_object_get(state, "last_seq"),
                           "consumers", json_object_get(state, "consumer_count"));
        printf("stream %s: %lld messages, last sequence %lld, %lld consumers: %s (%.1f KiB)\n", MP_EVENTS_STREAM,
               (long long)json_integer_value(json_object_get(*entry, "messages")),
               (long long)json_integer_value(json_object_get(*entry, "last_seq")),
               (long long)json_integer_value(json_object_get(*entry, "consumers")), STREAM_FILE,
               kib(files, STREAM_FILE));
    }
    json_decref(info);
    return st;
}

/* An exported snapshot of `c`'s transaction, which pg_dump processes can share while the transaction lasts. */
static mp_status_t export_snapshot(char out[64], mp_db_conn_t *c)
{
    mp_db_res_t *r = NULL;
    mp_status_t st = mp_db_begin(c);
    if (st == MP_OK)
        st = mp_db_exec(NULL, c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL);
    /* the transaction sits idle while the dumps run, and each dump imports the snapshot only while it lasts */
    if (st == MP_OK)
        st = mp_db_exec(NULL, c, "SET LOCAL idle_in_transaction_session_timeout = 0", 0, NULL);
    if (st == MP_OK)
        st = mp_db_exec(&r, c, "SELECT pg_export_snapshot()", 0, NULL);
    if (st == MP_OK)
        snprintf(out, 64, "%s", mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return st;
}

/* Every schema of database `d`, dumped from one snapshot. */
static mp_status_t dump_db(json_t *schemas, json_t *files, backup_db_t *d, const mp_backup_opts_t *o)
{
    char snapshot[64], file[160], path[4096];
    mp_db_conn_t *c = NULL;
    mp_status_t st = mp_db_acquire(&c, d->db, 5000);
    if (st == MP_OK)
        st = export_snapshot(snapshot, c);
    for (size_t i = 0; st == MP_OK && i < o->nschemas; i++) {
        const mp_serve_schema_t *s = &o->schemas[i];
        if (strcmp(s->dsn, d->dsn) != 0)
            continue;
        snprintf(file, sizeof(file), "%s.dump", s->name);
        snprintf(path, sizeof(path), "%s/%s", o->dir, file);
        st = mp_backup__pg_dump(d->dsn, o->pg_password, s->name, snapshot, path);
        if (st == MP_OK)
            st = mp_backup__add_file(files, o->dir, file);
        if (st != MP_OK)
            break;
        json_array_append_new(schemas, json_pack("{s:s, s:s, s:s, s:s}", "name", s->name, "file", file, "database",
                                                 d->name, "events_since", d->since));
        printf("schema %s: %s (%.1f KiB)\n", s->name, file, kib(files, file));
    }
    mp_db_release(c); /* ends the snapshot's transaction */
    return st;
}

mp_status_t mp_backup_create(const mp_backup_opts_t *o)
{
    char started[32];
    backup_db_t *dbs = NULL;
    size_t ndbs = 0;
    json_t *files = json_object(), *schemas = json_array(), *stream = NULL;
    const char **names = mp_xcalloc(o->nschemas ? o->nschemas : 1, sizeof(*names));
    for (size_t i = 0; i < o->nschemas; i++)
        names[i] = o->schemas[i].name;
    now_rfc3339(started);
    mp_status_t st = prepare_dir(o->dir);
    /* the clocks first, then the stream, then the schemas: see the top of this file */
    if (st == MP_OK)
        st = open_dbs(&dbs, &ndbs, o, names, o->nschemas);
    if (st == MP_OK)
        st = take_stream(&stream, files, o);
    for (size_t i = 0; st == MP_OK && i < ndbs; i++)
        st = dump_db(schemas, files, &dbs[i], o);
    if (st == MP_OK) {
        json_t *m = json_pack("{s:s, s:i, s:s, s:s, s:O, s:O, s:O}", "format", MP_BACKUP_FORMAT, "format_version",
                              MP_BACKUP_FORMAT_VERSION, "created_at", started, "moonport_version", MP_VERSION,
                              "schemas", schemas, "stream", stream, "files", files);
        st = mp_backup__write_json(o->dir, MP_BACKUP_MANIFEST, m);
        json_decref(m);
    }
    close_dbs(dbs, ndbs);
    free(names);
    json_decref(files);
    json_decref(schemas);
    json_decref(stream);
    return st;
}

/* ---- check -------------------------------------------------------------------------------- */

static mp_status_t check_archives(mp_backup_plan_t *p)
{
    char path[4096], tool[512];
    size_t i;
    json_t *s;
    mp_status_t st = mp_backup__pg_tool(tool, sizeof(tool), "psql");
    json_array_foreach(json_object_get(p->manifest, "schemas"), i, s)
    {
        snprintf(path, sizeof(path), "%s/%s", p->o.dir, mp_json_str(s, "file"));
        if (st == MP_OK)
            st = mp_backup__pg_list(path);
    }
    return st;
}

static mp_status_t check_stream(mp_backup_plan_t *p)
{
    json_t *info = NULL;
    mp_status_t st = mp_backup__js_info(&info, p->o.bus, MP_EVENTS_STREAM);
    json_decref(info);
    p->stream_exists = st == MP_OK;
    return st == MP_ENOTFOUND ? MP_OK : st;
}

/* A running service would write into schemas being replaced, and its consumers re-create the stream at once. */
static mp_status_t check_idle(mp_backup_plan_t *p)
{
    char names[256];
    size_t count = 0;
    mp_status_t st = mp_backup__running(&count, names, sizeof(names), p->o.bus, 500);
    if (st == MP_OK && count > 0)
        st = mp_err_set(MP_ECONFLICT,
                        "moonport services are running (%s answered $SRV.PING): stop the platform first, or give "
                        "--force if they are not this platform's",
                        names);
    return st;
}

mp_status_t mp_backup_check(mp_backup_plan_t **out, const mp_backup_opts_t *o)
{
    mp_backup_plan_t *p = mp_xcalloc(1, sizeof(*p));
    const char **names = mp_xcalloc(o->nschemas ? o->nschemas : 1, sizeof(*names));
    size_t n = 0, i;
    json_t *s;
    p->o = *o;
    for (i = 0; i < o->nschemas; i++)
        names[i] = o->schemas[i].name;
    mp_status_t st = mp_backup__manifest_read(&p->manifest, o->dir, names, o->nschemas);
    if (st == MP_OK) {
        json_array_foreach(json_object_get(p->manifest, "schemas"), i, s)
        {
            names[n++] = mp_json_str(s, "name");
        }
        st = check_archives(p);
    }
    if (st == MP_OK)
        st = open_dbs(&p->dbs, &p->ndbs, o, names, n);
    if (st == MP_OK)
        st = check_stream(p);
    if (st == MP_OK && !o->force)
        st = check_idle(p);
    free(names);
    if (st != MP_OK) {
        mp_backup_plan_destroy(p);
        return st;
    }
    *out = p;
    return MP_OK;
}

void mp_backup_plan_destroy(mp_backup_plan_t *p)
{
    if (p == NULL)
        return;
    close_dbs(p->dbs, p->ndbs);
    json_decref(p->manifest);
    free(p);
}

/* ---- restore ------------------------------------------------------------------------------ */

/* The backup's schemas in database `d`, in one transaction, then their outbox rows the stream may lack. */
static mp_status_t restore_db(mp_backup_plan_t *p, backup_db_t *d)
{
    json_t *all = json_object_get(p->manifest, "schemas"), *s;
    size_t n = 0, i;
    const char **names = mp_xcalloc(json_array_size(all), sizeof(*names));
    char **paths = mp_xcalloc(json_array_size(all), sizeof(*paths));
    json_array_foreach(all, i, s)
    {
        if (strcmp(dsn_of(&p->o, mp_json_str(s, "name")), d->dsn) != 0)
            continue;
        names[n] = mp_json_str(s, "name");
        paths[n++] = mp_xasprintf("%s/%s", p->o.dir, mp_json_str(s, "file"));
    }
    mp_status_t st = mp_backup__pg_restore(d->dsn, p->o.pg_password, names, (const char *const *)paths, n);
    if (st == MP_OK)
        printf("database %s: %zu schemas restored in one transaction\n", d->name, n);
    json_array_foreach(all, i, s)
    {
        long rows = 0;
        if (st != MP_OK || strcmp(dsn_of(&p->o, mp_json_str(s, "name")), d->dsn) != 0)
            continue;
        st = mp_outbox_republish(&rows, d->db, mp_json_str(s, "name"), mp_json_str(s, "events_since"));
        if (st == MP_OK && rows > 0)
            printf("schema %s: %ld events published after the stream was taken will be sent again\n",
                   mp_json_str(s, "name"), rows);
    }
    for (i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(names);
    return st;
}

static mp_status_t restore_stream(mp_backup_plan_t *p)
{
    json_t *entry = json_object_get(p->manifest, "stream"), *info = NULL, *state = NULL;
    char path[4096], info_path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s", p->o.dir, mp_json_str(entry, "file"));
    snprintf(info_path, sizeof(info_path), "%s/%s", p->o.dir, mp_json_str(entry, "info_file"));
    if ((info = json_load_file(info_path, 0, &jerr)) == NULL)
        return mp_err_set(MP_EINVAL, "%s: %s", info_path, jerr.text);
    mp_status_t st = p->stream_exists ? mp_backup__js_delete(p->o.bus, MP_EVENTS_STREAM) : MP_OK;
    if (st == MP_OK)
        st = mp_backup__js_restore(&state, p->o.bus, MP_EVENTS_STREAM, info, path);
    /* the server reads the snapshot's last block as it is when it gets there, so it may hold a few messages
     * published after the state it reported (and the manifest recorded); never fewer */
    json_int_t want = json_integer_value(json_object_get(entry, "last_seq"));
    json_int_t got = json_integer_value(json_object_get(state, "last_seq"));
    if (st == MP_OK && got < want)
        st = mp_err_set(MP_EINTERNAL, "the restored stream ends at sequence %lld, before the backup's %lld",
                        (long long)got, (long long)want);
    if (st == MP_OK)
        printf("stream %s: restored, %lld messages, last sequence %lld\n", MP_EVENTS_STREAM,
               (long long)json_integer_value(json_object_get(state, "messages")), (long long)got);
    json_decref(state);
    json_decref(info);
    return st;
}

/* A service added since the backup was taken: its schema is left alone, and its migrations make it at start. */
static void note_missing(const mp_backup_plan_t *p)
{
    size_t i;
    json_t *s;
    for (size_t k = 0; k < p->o.nschemas; k++) {
        bool found = false;
        json_array_foreach(json_object_get(p->manifest, "schemas"), i, s)
        {
            found |= strcmp(mp_json_str(s, "name"), p->o.schemas[k].name) == 0;
        }
        if (!found)
            printf("schema %s: not in this backup; left as it is\n", p->o.schemas[k].name);
    }
}

mp_status_t mp_backup_restore(mp_backup_plan_t *p)
{
    mp_status_t st = MP_OK;
    note_missing(p);
    for (size_t i = 0; st == MP_OK && i < p->ndbs; i++)
        st = restore_db(p, &p->dbs[i]);
    if (st == MP_OK)
        st = restore_stream(p);
    return st;
}

/* ---- commands ------------------------------------------------------------------------------ */

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

static int backup_tool(const mp_serve_tool_t *t, int argc, char **argv)
{
    umask(077); /* the archives hold password hashes and personal data: readable by us alone, like the folder */
    char *password = mp_cfg_secret(t->cfg, "postgres.password");
    mp_backup_opts_t o = {.dir = mp_serve_opt(argc, argv, "--out"),
                          .schemas = t->schemas,
                          .nschemas = t->nschemas,
                          .pg_password = password,
                          .bus = t->bus};
    mp_status_t st = mp_backup_create(&o);
    mp_cfg_secret_free(password);
    if (st != MP_OK) {
        fprintf(stderr, "moonport backup: %s\n", mp_err_get());
        return 1;
    }
    printf("backup complete: %s/%s\n", o.dir, MP_BACKUP_MANIFEST);
    return 0;
}

static int restore_tool(const mp_serve_tool_t *t, int argc, char **argv)
{
    char *password = mp_cfg_secret(t->cfg, "postgres.password");
    mp_backup_plan_t *plan = NULL;
    mp_backup_opts_t o = {.dir = mp_serve_opt(argc, argv, "--from"),
                          .schemas = t->schemas,
                          .nschemas = t->nschemas,
                          .pg_password = password,
                          .bus = t->bus,
                          .force = has_flag(argc, argv, "--force")};
    int rc = 0;
    if (mp_backup_check(&plan, &o) != MP_OK) {
        fprintf(stderr, "moonport restore: refused, nothing was changed: %s\n", mp_err_get());
        rc = 3;
    } else if (mp_backup_restore(plan) != MP_OK) {
        fprintf(stderr,
                "moonport restore: failed: %s\n(what is reported above as restored stays so; fix the cause and "
                "run the restore again)\n",
                mp_err_get());
        rc = 1;
    } else {
        printf("restore complete from %s: start the platform\n", o.dir);
    }
    mp_backup_plan_destroy(plan);
    mp_cfg_secret_free(password);
    return rc;
}

int mp_backup_main(int argc, char **argv)
{
    if (mp_serve_opt(argc, argv, "--out") == NULL) {
        fprintf(stderr, "usage: moonport backup --out DIR [--config F]\n");
        return 2;
    }
    return mp_serve_tool("backup", backup_tool, argc, argv);
}

int mp_restore_main(int argc, char **argv)
{
    if (mp_serve_opt(argc, argv, "--from") == NULL) {
        fprintf(stderr, "usage: moonport restore --from DIR [--force] [--config F]\n");
        return 2;
    }
    return mp_serve_tool("restore", restore_tool, argc, argv);
}
